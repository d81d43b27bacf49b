package exporter

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/config"
)

// hourlyQuerier answers history.UsageQuery like Prometheus would for
// the workloads it knows: one point per hour of the subquery's range,
// valued by a function of the workload, the resource and the hour. It
// records the ranges asked by resource and namespace.
type hourlyQuerier struct {
	mu    sync.Mutex
	keys  []history.Key
	asked [history.Resources]map[string][]string // namespace → ranges
	fail  bool
	// failMemory fails only the memory queries.
	failMemory bool
}

func newHourlyQuerier(keys []history.Key) *hourlyQuerier {
	q := &hourlyQuerier{keys: keys}
	q.reset()
	return q
}

func (q *hourlyQuerier) reset() {
	for r := range q.asked {
		q.asked[r] = map[string][]string{}
	}
}

var (
	hourlyRange = regexp.MustCompile(`\)\[([0-9a-z]+):1h\]$`)
	hourlyNS    = regexp.MustCompile(`namespace=~"([^"]*)"`)
)

func hourlyValue(r history.Resource, k history.Key, t time.Time) float64 {
	h := float64(t.Unix()) / 3600
	v := 0.1*float64(len(k.Workload)+len(k.Namespace)) + 0.05*math.Sin(2*math.Pi*h/24+float64(len(k.Workload)))
	if r == history.Memory {
		// Bytes, with a shape of their own.
		return (v + 0.02*math.Cos(2*math.Pi*h/24)) * (1 << 30)
	}
	return v
}

func (q *hourlyQuerier) Query(_ context.Context, query string, ts time.Time, _ ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail {
		return nil, nil, nil, errors.New("prometheus is down")
	}
	m := hourlyRange.FindStringSubmatch(query)
	nsm := hourlyNS.FindStringSubmatch(query)
	if m == nil || nsm == nil {
		return nil, nil, nil, errors.New("not a usage query")
	}
	r := history.CPU
	if strings.Contains(query, "container_memory_working_set_bytes") {
		r = history.Memory
		if q.failMemory {
			return nil, nil, nil, errors.New("memory query timed out")
		}
	}
	parsed, err := model.ParseDuration(m[1])
	if err != nil {
		return nil, nil, nil, err
	}
	// The query asks a second short of the range it wants.
	rng := time.Duration(parsed) + time.Second
	nss := map[string]bool{}
	for _, ns := range strings.Split(nsm[1], "|") {
		nss[ns] = true
		q.asked[r][ns] = append(q.asked[r][ns], model.Duration(rng).String())
	}
	var out model.Matrix
	for _, k := range q.keys {
		if !nss[k.Namespace] {
			continue
		}
		ss := &model.SampleStream{Metric: model.Metric{"namespace": model.LabelValue(k.Namespace), "kind": model.LabelValue(k.Kind), "workload": model.LabelValue(k.Workload)}}
		for t := ts.Add(-rng).Add(time.Hour); !t.After(ts); t = t.Add(time.Hour) {
			ss.Values = append(ss.Values, model.SamplePair{Timestamp: model.TimeFromUnixNano(t.UnixNano()), Value: model.SampleValue(hourlyValue(r, k, t))})
		}
		out = append(out, ss)
	}
	return out, nil, nil, nil
}

func forecastService(q history.Querier, clock *time.Time, keys []history.Key) *Service {
	cfg := config.Default()
	s := &Service{
		opts:   Options{Exporter: cfg.Exporter, Prometheus: cfg.Prometheus, Querier: q, Now: func() time.Time { return *clock }},
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	res := &Results{}
	for _, k := range keys {
		res.Workloads = append(res.Workloads, WorkloadResult{Namespace: k.Namespace, Kind: k.Kind, Name: k.Workload})
	}
	s.last = res
	return s
}

// TestForecastReadsOnlyNewHours runs the forecast loop through a first
// run, a later one, a new namespace, a failure and a gap longer than the
// window, and holds the kept history to what a fresh exporter reading the
// whole window at the same time gets, while asking Prometheus only for
// the hours since the last run.
func TestForecastReadsOnlyNewHours(t *testing.T) {
	keys := []history.Key{{Namespace: "a", Kind: "Deployment", Workload: "web"}, {Namespace: "a", Kind: "Deployment", Workload: "api"}, {Namespace: "b", Kind: "StatefulSet", Workload: "db"}}
	t0 := time.Date(2026, 11, 20, 10, 17, 0, 0, time.UTC)
	clock := t0
	q := newHourlyQuerier(keys)
	svc := forecastService(q, &clock, keys)

	same := func(step string, want map[string]string) {
		t.Helper()
		// The ranges asked this run, by resource and namespace: every
		// resource reads the same hours.
		for r := range q.asked {
			for ns, want := range want {
				got := q.asked[r][ns]
				if want == "" && len(got) != 0 {
					t.Errorf("%s: %s of namespace %s read %v, want nothing", step, history.Resource(r), ns, got)
				}
				if want != "" && (len(got) != 1 || got[0] != want) {
					t.Errorf("%s: %s of namespace %s read %v, want one read of %s", step, history.Resource(r), ns, got, want)
				}
			}
		}
		q.reset()
		fq := newHourlyQuerier(q.keys)
		fresh := forecastService(fq, &clock, nil)
		fresh.last = svc.last
		if err := fresh.Forecast(context.Background()); err != nil {
			t.Fatal(err)
		}
		for r := range svc.usage {
			kept, read := svc.usage[r].series, fresh.usage[r].series
			if len(read) != len(kept) {
				t.Fatalf("%s: %d %s series kept, a fresh read has %d", step, len(kept), history.Resource(r), len(read))
			}
			for k, want := range read {
				got := kept[k]
				for i := range want {
					if got[i] != want[i] && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
						t.Fatalf("%s: %s of %v hour %d = %v, a fresh read gives %v", step, history.Resource(r), k, i, got[i], want[i])
					}
				}
			}
		}
		if len(svc.forecasts.byKey) != len(fresh.forecasts.byKey) {
			t.Errorf("%s: %d forecasts, fresh %d", step, len(svc.forecasts.byKey), len(fresh.forecasts.byKey))
		}
		for k, f := range svc.forecasts.byKey {
			if len(f.CPU) == 0 || len(f.Memory) == 0 {
				t.Errorf("%s: %v has %d CPU and %d memory summaries, want both", step, k, len(f.CPU), len(f.Memory))
			}
			for _, m := range f.Memory {
				if m.P50 < 0.1*(1<<30) || m.P10 > m.P50 || m.P50 > m.P90 {
					t.Errorf("%s: %v memory %s p10/p50/p90 = %g/%g/%g, want ordered and in GiB", step, k, m.Horizon, m.P10, m.P50, m.P90)
				}
			}
		}
	}

	if err := svc.Forecast(context.Background()); err != nil {
		t.Fatal(err)
	}
	same("first run", map[string]string{"a": "2w", "b": "2w"})
	if len(svc.forecasts.byKey) != 3 {
		t.Errorf("first run fitted %d workloads, want 3", len(svc.forecasts.byKey))
	}

	clock = t0.Add(5*time.Hour + 20*time.Minute)
	if err := svc.Forecast(context.Background()); err != nil {
		t.Fatal(err)
	}
	same("five hours later", map[string]string{"a": "5h", "b": "5h"})

	// A namespace seen for the first time is read whole, the others not.
	q.keys = append(q.keys, history.Key{Namespace: "c", Kind: "Deployment", Workload: "new"})
	svc.last = &Results{Workloads: append(append([]WorkloadResult{}, svc.last.Workloads...), WorkloadResult{Namespace: "c", Kind: "Deployment", Name: "new"})}
	clock = t0.Add(6 * time.Hour)
	if err := svc.Forecast(context.Background()); err != nil {
		t.Fatal(err)
	}
	same("a new namespace", map[string]string{"a": "1h", "b": "1h", "c": "2w"})

	// The same hour again reads nothing new.
	clock = t0.Add(6*time.Hour + 30*time.Minute)
	if err := svc.Forecast(context.Background()); err != nil {
		t.Fatal(err)
	}
	same("same hour", map[string]string{"a": "", "b": "", "c": ""})

	// A failed read keeps the forecasts and the history where they were;
	// the next run reads on from there. A read that fails for memory alone
	// moves neither resource, so both read on from the same hour.
	q.failMemory = true
	clock = t0.Add(7 * time.Hour)
	if err := svc.Forecast(context.Background()); err == nil || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("a failed memory read gave %v, want the run failed naming memory", err)
	}
	q.failMemory = false
	q.fail = true
	clock = t0.Add(9 * time.Hour)
	if err := svc.Forecast(context.Background()); err == nil {
		t.Fatal("a failed read did not fail the run")
	}
	for r := range svc.usage {
		if end := svc.usage[r].end; !end.Equal(t0.Add(6*time.Hour).Truncate(time.Hour)) || len(svc.forecasts.byKey) != 4 {
			t.Errorf("after a failure: %s history ends %s with %d forecasts, want the hour of the last good run and 4", history.Resource(r), end, len(svc.forecasts.byKey))
		}
	}
	q.fail = false
	q.reset()
	if err := svc.Forecast(context.Background()); err != nil {
		t.Fatal(err)
	}
	same("after a failure", map[string]string{"a": "3h", "b": "3h", "c": "3h"})

	// A gap of more than the window reads everything whole again.
	clock = t0.Add(20 * 24 * time.Hour)
	if err := svc.Forecast(context.Background()); err != nil {
		t.Fatal(err)
	}
	same("after a long gap", map[string]string{"a": "2w", "b": "2w", "c": "2w"})
}
