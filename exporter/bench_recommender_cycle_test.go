package exporter

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/recommend"
)

// windowServer answers the recommender's window queries like Prometheus
// would for a cluster of nsCount namespaces of perNS Deployments with the
// containers "app" and "sidecar": one series per workload container and
// query, one point per window of the range. CPU, memory and the CFS
// counters have series; OOM kills, the limits of the pods they hit, and
// starts, rare, have none.
type windowServer struct {
	perNS  int
	busy   atomic.Int64
	fail   atomic.Bool // answer every query with an error
	asked  atomic.Int64
	series atomic.Int64 // series answered
}

// windowAPI serves h over HTTP until t ends and returns a Prometheus API
// client of it.
func windowAPI(t testing.TB, h http.Handler) v1.API {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client, err := api.NewClient(api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return v1.NewAPI(client)
}

var (
	nsMatcher = regexp.MustCompile(`namespace=~"([^"]*)"`)
	rangeSel  = regexp.MustCompile(`\)\[([0-9a-z]+):5m\]`)
)

func (s *windowServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.busy.Add(int64(time.Since(start))) }()
	s.asked.Add(1)
	if s.fail.Load() {
		http.Error(w, `{"status":"error","errorType":"execution","error":"overloaded"}`, http.StatusServiceUnavailable)
		return
	}
	_ = r.ParseForm()
	q := r.Form.Get("query")
	at, _ := strconv.ParseFloat(r.Form.Get("time"), 64)
	value := ""
	switch {
	case strings.Contains(q, "rate(container_cpu_usage_seconds_total"):
		value = "0.3"
	case strings.Contains(q, "container_memory_working_set_bytes"):
		value = "300000000"
	case strings.Contains(q, "container_cpu_cfs_throttled_periods_total"):
		value = "0"
	case strings.Contains(q, "container_cpu_cfs_periods_total"):
		value = "3000"
	}
	points := 1
	if m := rangeSel.FindStringSubmatch(q); m != nil {
		if d, err := time.ParseDuration(m[1]); err == nil {
			points = int((d + time.Second) / history.WindowStep)
		}
	}
	buf := make([]byte, 0, 1<<20)
	buf = append(buf, `{"status":"success","data":{"resultType":"matrix","result":[`...)
	first := true
	if m := nsMatcher.FindStringSubmatch(q); m != nil && value != "" {
		for _, ns := range strings.Split(strings.ReplaceAll(m[1], `\\`, ``), "|") {
			for i := range s.perNS {
				for _, c := range []string{"app", "sidecar"} {
					s.series.Add(1)
					buf = appendSeriesLabels(buf, &first, c, ns, i)
					buf = append(buf, `,"values":[`...)
					for p := range points {
						if p > 0 {
							buf = append(buf, ',')
						}
						buf = append(buf, '[')
						buf = strconv.AppendFloat(buf, at-float64(points-1-p)*history.WindowStep.Seconds(), 'f', -1, 64)
						buf = append(buf, `,"`...)
						buf = append(buf, value...)
						buf = append(buf, `"]`...)
					}
					buf = append(buf, `]}`...)
				}
			}
		}
	}
	buf = append(buf, `]}}`...)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf)
}

// oldServer answers each of the eight per-container window queries the
// cycle ran before the recommender kept state with what Prometheus would:
// an instant vector of one sample per workload container.
type oldServer struct {
	nsCount, perNS int
	busy           atomic.Int64
}

func (s *oldServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.busy.Add(int64(time.Since(start))) }()
	_ = r.ParseForm()
	ts := r.Form.Get("time")
	buf := make([]byte, 0, 16<<20)
	buf = append(buf, `{"status":"success","data":{"resultType":"vector","result":[`...)
	first := true
	for n := range s.nsCount {
		for i := range s.perNS {
			for _, c := range []string{"app", "sidecar"} {
				buf = appendSeriesLabels(buf, &first, c, fmt.Sprintf("ns-%03d", n), i)
				buf = append(buf, `,"value":[`...)
				buf = append(buf, ts...)
				buf = append(buf, `,"0.3"]}`...)
			}
		}
	}
	buf = append(buf, `]}}`...)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf)
}

// oldAggregates are one workload's answers to the old per-container
// window queries.
type oldAggregates struct {
	cpu, memory         map[string]*history.Usage
	oomKills, throttled map[string]float64
}

// inputs is how the analysis turned them into a container's inputs.
func (h *oldAggregates) inputs(cur inventory.Container, replicas float64, prices recommend.Prices, window time.Duration) recommend.Inputs {
	c := cur.Name
	in := recommend.Inputs{
		Window:   window,
		Current:  recommend.Resources{CPURequest: cur.CPURequest, CPULimit: cur.CPULimit, MemoryRequest: cur.MemoryRequest, MemoryLimit: cur.MemoryLim},
		Replicas: replicas, Prices: prices, Coverage: 1, MemoryPeak: math.NaN(),
	}
	if u := h.cpu[c]; u != nil {
		var q recommend.FixedQuantiles
		for _, p := range []struct {
			p float64
			v *float64
		}{{0.5, u.P50}, {0.95, u.P95}, {1, u.Max}} {
			if p.v != nil {
				q = append(q, recommend.QuantilePoint{P: p.p, V: *p.v})
			}
		}
		if len(q) > 0 {
			in.CPU = q
		}
	}
	if u := h.memory[c]; u != nil && u.Max != nil {
		in.MemoryPeak = *u.Max
	}
	if n := h.oomKills[c]; n >= 0.5 {
		in.OOMKills = int(math.Round(n))
		in.OOMMemory = cur.MemoryLim
	}
	in.ThrottledRatio = h.throttled[c]
	return in
}

// oldCycle is the exporter's side of the cycle before this change: the
// eight per-container queries' answers decoded and applied as
// history.Snapshot did, and every container recommended from the
// quantiles.
func oldCycle(ctx context.Context, b *testing.B, q v1.API, a *analyzer, inv inventory.Snapshot, at time.Time, prices recommend.Prices) int {
	hist := map[history.Key]*oldAggregates{}
	for _, name := range []string{"cpu_p50", "cpu_p95", "cpu_max", "memory_p50", "memory_p95", "memory_max", "oom_kills", "throttled_ratio"} {
		v, _, _, err := q.Query(ctx, "old_"+name, at)
		if err != nil {
			b.Fatal(err)
		}
		for _, smp := range v.(model.Vector) {
			m := smp.Metric
			k := history.Key{Namespace: string(m["namespace"]), Kind: string(m["kind"]), Workload: string(m["workload"])}
			h := hist[k]
			if h == nil {
				h = &oldAggregates{cpu: map[string]*history.Usage{}, memory: map[string]*history.Usage{}, oomKills: map[string]float64{}, throttled: map[string]float64{}}
				hist[k] = h
			}
			c, x := string(m["container"]), float64(smp.Value)
			if strings.HasPrefix(name, "memory") {
				x = 3e8
			}
			use := func(u map[string]*history.Usage) *history.Usage {
				if u[c] == nil {
					u[c] = &history.Usage{}
				}
				return u[c]
			}
			switch name {
			case "cpu_p50":
				use(h.cpu).P50 = &x
			case "cpu_p95":
				use(h.cpu).P95 = &x
			case "cpu_max":
				use(h.cpu).Max = &x
			case "memory_p50":
				use(h.memory).P50 = &x
			case "memory_p95":
				use(h.memory).P95 = &x
			case "memory_max":
				use(h.memory).Max = &x
			case "oom_kills":
				h.oomKills[c] = 0
			case "throttled_ratio":
				h.throttled[c] = 0
			}
		}
	}
	recs := 0
	for _, w := range inv.Workloads {
		h := hist[history.Key{Namespace: w.Namespace, Kind: w.Kind, Workload: w.Name}]
		if h == nil {
			continue
		}
		for _, c := range w.Containers {
			if recommend.Recommend(h.inputs(c, 2, prices, a.window), clusterPolicy(a)).OK {
				recs++
			}
		}
	}
	return recs
}

// BenchmarkRecommenderCycle is one steady-state cycle of the recommender
// at 100,000 workload containers (100 namespaces × 500 Deployments × 2
// containers) whose states already hold history: fetch the window the
// cycle adds (50 batches of history.WindowQueries over HTTP, JSON decoded
// by the Prometheus client), observe it, and compute every container's
// inputs, usage quantiles and recommendation. The fake server's own time
// is subtracted (exporter-ns/cycle). It reports the queries and series
// the fake answered per cycle, so that a query added to WindowQueries
// shows in the figures it is compared by, and the state's memory per
// container (its estimate, and the live heap after GC divided by the
// containers, which includes the benchmark's inventory).
//
//	go test ./exporter -run '^$' -bench RecommenderCycle -benchtime 3x
func BenchmarkRecommenderCycle(b *testing.B) {
	const nsCount, perNS = 100, 500
	ws := &windowServer{perNS: perNS}
	q := windowAPI(b, ws)
	olds := &oldServer{nsCount: nsCount, perNS: perNS}
	osrv := httptest.NewServer(olds)
	defer osrv.Close()
	oclient, err := api.NewClient(api.Config{Address: osrv.URL})
	if err != nil {
		b.Fatal(err)
	}
	oq := v1.NewAPI(oclient)

	policy := recommend.DefaultPolicy()
	window := 14 * 24 * time.Hour
	r := newRecommender(policy, window, 24*time.Hour, 0, time.Minute, 2000, slog.Default())
	a := &analyzer{window: window, recWindow: window, policy: policy}
	var inv inventory.Snapshot
	containers := []inventory.Container{
		{Name: "app", CPURequest: 1, MemoryRequest: 1 << 30},
		{Name: "sidecar", CPURequest: 0.1, MemoryRequest: 128 << 20},
	}
	now := time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC)
	for n := range nsCount {
		ns := fmt.Sprintf("ns-%03d", n)
		for i := range perNS {
			inv.Workloads = append(inv.Workloads, inventory.Workload{ID: inventory.ID{Namespace: ns, Kind: "Deployment", Name: fmt.Sprintf("w%d", i)}, Containers: containers, Pods: 2})
		}
		r.through[ns], r.caughtUp[ns] = now, true
	}
	// Fourteen days of history per container, in hourly samples (a
	// 5-minute feed of 14 days for 100,000 states would take minutes to
	// set up): a daily wave with noise, so the histograms hold the
	// buckets a real container's would and every day slot is in use.
	for _, w := range inv.Workloads {
		for ci, c := range containers {
			s := recommend.NewState(r.policy)
			for i := range 14 * 24 {
				t := now.Add(-window + time.Duration(i)*time.Hour)
				x := 0.3 + 0.15*math.Sin(float64(i)/3.8+float64(ci)) + 0.02*math.Sin(float64(i)*7.1)
				s.Observe(recommend.Sample{Time: t, Duration: time.Hour, CPU: x * c.CPURequest, MemoryPeak: 3e8 + 5e7*math.Sin(float64(i)/7.6), Periods: 36000})
			}
			r.states[history.ContainerKey{Key: history.Key{Namespace: w.Namespace, Kind: w.Kind, Workload: w.Name}, Container: c.Name}] = s
		}
	}
	n := len(r.states)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap := ms.HeapAlloc

	ctx := context.Background()
	prices := recommend.Prices{CPUCoreHour: 0.03, MemoryGiBHour: 0.004}
	b.ReportAllocs()
	b.ResetTimer()
	ws.busy.Store(0)
	ws.asked.Store(0)
	ws.series.Store(0)
	recs, oldRecs := 0, 0
	var newTime, oldTime time.Duration
	for b.Loop() {
		// The old cycle runs in the same iteration, so both see the same
		// machine: this one is shared, and only the ratio is meaningful.
		start := time.Now()
		oldRecs = oldCycle(ctx, b, oq, a, inv, now, prices)
		oldTime += time.Since(start)
		start = time.Now()
		now = now.Add(history.WindowStep)
		if err := r.update(ctx, q, inv, now.Add(history.Settle)); err != nil {
			b.Fatal(err)
		}
		hist := &history.Snapshot{Workloads: map[history.Key]*history.Workload{}}
		r.fill(hist, now)
		recs = 0
		for _, w := range inv.Workloads {
			h := hist.Workloads[history.Key{Namespace: w.Namespace, Kind: w.Kind, Workload: w.Name}]
			if h == nil {
				continue
			}
			for _, c := range w.Containers {
				if a.recommend(h, c.Name, c, nil, inventory.PodResources{}, 2, prices, clusterPolicy(a)).OK {
					recs++
				}
			}
		}
		newTime += time.Since(start)
	}
	b.StopTimer()
	if recs != n {
		b.Fatalf("%d recommendations for %d containers", recs, n)
	}
	_, bytes := r.stateBytes()
	cycles := float64(b.N)
	if oldRecs != n {
		b.Fatalf("old path: %d recommendations for %d containers", oldRecs, n)
	}
	inc := float64(newTime.Nanoseconds() - ws.busy.Load())
	was := float64(oldTime.Nanoseconds() - olds.busy.Load())
	b.ReportMetric(inc/cycles, "exporter-ns/cycle")
	b.ReportMetric(was/cycles, "old-exporter-ns/cycle")
	b.ReportMetric(inc/was, "new/old-time")
	b.ReportMetric(float64(ws.asked.Load())/cycles, "queries/cycle")
	b.ReportMetric(float64(ws.series.Load())/cycles, "series/cycle")
	b.ReportMetric(float64(bytes)/float64(n), "state-bytes/ctr")
	b.ReportMetric(float64(heap)/float64(n), "heap-bytes/ctr")
}

// clusterPolicy is the policy of a workload without overrides.
func clusterPolicy(a *analyzer) recommend.Policy {
	p := a.policy
	p.Window = a.window
	return p
}

// appendSeriesLabels starts one series of an answer, a comma before all
// but the first: the labels of container c of workload w<i> in ns.
func appendSeriesLabels(buf []byte, first *bool, c, ns string, i int) []byte {
	if !*first {
		buf = append(buf, ',')
	}
	*first = false
	buf = append(buf, `{"metric":{"container":"`...)
	buf = append(buf, c...)
	buf = append(buf, `","kind":"Deployment","namespace":"`...)
	buf = append(buf, ns...)
	buf = append(buf, `","workload":"w`...)
	buf = strconv.AppendInt(buf, int64(i), 10)
	return append(buf, `"}`...)
}
