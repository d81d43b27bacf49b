package exporter_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/upid-dev/upid/exporter"
	upidhistory "github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/web"
)

// The benchmarks below measure the exporter at Kubernetes' scale limits
// (5,000 nodes, 150,000 pods) through its real code paths: client-go
// informers with the inventory's transforms filled by a fake kube-apiserver
// over HTTP, history decoded by client_golang from a fake Prometheus over
// HTTP, exporter.Cycle, and a gzipped OpenMetrics scrape of the exporter's
// /metrics (internal/web, one family at a time).
// The fakes run in the benchmark's process, on the same cores. See
// bench_cluster_test.go for the cluster and docs/benchmarks.md for the
// numbers. Run them with
//
//	go test ./exporter -run '^$' -bench . -benchtime 1x
//
// BenchmarkCycle reports, per cluster size:
//
//	cycle-s             one Cycle (inventory snapshot, queries, analysis)
//	inventory-share     share of the cycle in each stage, from the exporter's
//	prometheus-share    own upid_exporter_cycle_stage_duration_seconds
//	analysis-share
//	fakeprom-s          time the fake Prometheus spent serving in a cycle
//	first-scrape-s      the first scrape of /metrics after a cycle: collect,
//	                    encode and compress the stored families, then the
//	                    live ones, transfer (the exporter's Run encodes the
//	                    stored ones within a second of a cycle, ahead of it)
//	scrape-s            each later scrape until the next cycle: the bytes
//	                    encoded then, the live families, transfer
//	expo-B, gzip-B      size of the exposition, uncompressed and as sent
//	series              samples in the exposition
//	sync-s              Start: informers filled and synced
//	peak-RSS-MiB        VmHWM from Start to the last scrape (reset before Start)
//	sync-peak-RSS-MiB   the same during Start, the cycles, the scrapes (VmHWM
//	cycle-peak-RSS-MiB  reset before each; each includes what the process
//	scrape-peak-RSS-MiB still holds from the phases before)
//	harness-RSS-MiB     RSS when it was reset: the fixtures, the Go runtime
//	retained-B/pod      live heap after the cycles, informers, recommender
//	                    states and last results alive, minus the heap before
//	                    exporter.New, per pod
//	recommender-states  workload containers given a seeded state
//	state-B/ctr         heap those states took, per state
//	cache-B/pod         the same right after Start: the transformed caches
//	plain-cache-B/pod   the baseline: plain informers for the same resources
//	                    on the same client, no transform, in the same run
//	cache-ratio         cache-B/pod / plain-cache-B/pod
//
// Peak RSS is per process; it is reset through /proc/self/clear_refs, and
// where that fails it is the process's peak so far: then run the 150k case
// alone (-bench 'Cycle/pods=150000') to read it.

var (
	benchPodsFlag  = flag.String("upid.bench.pods", "15000,150000", "cluster sizes of BenchmarkCycle, in pods")
	benchPlainMax  = flag.Int("upid.bench.plain-max", 15000, "largest cluster, in pods, for which BenchmarkCycle also fills untransformed informers (the baseline; about 40 KB of heap per pod)")
	benchSyncPods  = flag.Int("upid.bench.sync-pods", 15000, "cluster size of BenchmarkSync and BenchmarkCacheByResource, in pods")
	benchEachQuery = flag.Bool("upid.bench.each-query", false, "BenchmarkQueryCost also leaves each query out in turn (without=<query>): 15 more cases a size")
)

func benchSizes(b *testing.B) []int {
	var out []int
	for _, f := range strings.Split(*benchPodsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1000 {
			b.Fatalf("-upid.bench.pods: %q is not a number of pods of at least 1000", f)
		}
		out = append(out, n)
	}
	return out
}

func BenchmarkCycle(b *testing.B) {
	for _, pods := range benchSizes(b) {
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) { benchCycle(b, pods) })
	}
}

// BenchmarkSync fills the exporter's informers (exporter.New, Start), at
// -upid.bench.sync-pods, the ways client-go does:
//
//	api=watchlist       against kube-apiserver 1.34 or later, in protobuf
//	                    (the same as BenchmarkCycle's sync)
//	api=list            against older servers: watch-list refused, paged LIST
//	api=watchlist,json  with the client configured for JSON, which the
//	                    exporter is not: what the protobuf default saves
//
// Reports sync-s, peak-RSS-MiB, cache-B/pod and pod-wire-B, the size of a
// pod as sent.
func BenchmarkSync(b *testing.B) {
	pods := *benchSyncPods
	for _, v := range []struct {
		name            string
		watchList, json bool
	}{{"watchlist", true, false}, {"list", false, false}, {"watchlist,json", true, true}} {
		b.Run(fmt.Sprintf("pods=%d/api=%s", pods, v.name), func(b *testing.B) {
			cl := newBenchCluster(pods)
			cfg := benchConfig()
			kube := newBenchKube(cl, v.watchList)
			defer kube.Close()
			conf := &rest.Config{Host: kube.URL, QPS: 50, Burst: 100, UserAgent: "upid-bench"}
			if v.json {
				conf.ContentType = "application/json"
			}
			kc, err := kubernetes.NewForConfig(conf)
			if err != nil {
				b.Fatal(err)
			}
			m := benchStartMeasure()
			var svc *exporter.Service
			var sync time.Duration
			for b.Loop() {
				if svc != nil {
					svc.Shutdown()
				}
				svc, sync = benchStart(b, cfg, kc, benchPromClient(b, "http://127.0.0.1:9"), kube, time.Now)
			}
			b.StopTimer()
			b.ReportMetric(sync.Seconds(), "sync-s")
			b.ReportMetric(benchPeakRSSMiB(), "peak-RSS-MiB")
			b.ReportMetric(m.harnessRSS, "harness-RSS-MiB")
			b.ReportMetric(float64(m.heapSince())/float64(pods), "cache-B/pod")
			b.ReportMetric(float64(kube.resources["/api/v1/pods"].bytes.Load())/float64(kube.resources["/api/v1/pods"].items.Load()), "pod-wire-B")
			runtime.KeepAlive(svc)
			svc.Shutdown()
		})
	}
}

// BenchmarkFetch isolates the prometheus stage of a cycle: history.Fetch
// through client_golang against the fake Prometheus, with the exporter's
// query options. Reports fetch-s, series and peak-RSS-MiB (reset before the
// first fetch: the decoded answers, nothing of the inventory), and the
// JSON answered: json-MB in all, req-coverage-series and
// req-coverage-json-MB for the request sources' coverage queries.
func BenchmarkFetch(b *testing.B) {
	for _, pods := range benchSizes(b) {
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) {
			cl := newBenchCluster(pods)
			cfg := benchConfig()
			at := cl.created.Add(30 * 24 * time.Hour)
			params := benchParams(cfg)
			prom := newBenchProm(cl, params, at)
			defer prom.Close()
			pq := benchPromClient(b, prom.URL)
			m := benchStartMeasure()
			var workloads int
			for b.Loop() {
				snap, err := upidhistory.Fetch(b.Context(), pq, at, upidhistory.Options{
					Params: params, Timeout: time.Duration(cfg.Prometheus.Timeout), Concurrency: cfg.Prometheus.Concurrency,
				})
				if err != nil || len(snap.Errors) > 0 {
					b.Fatal(err, snap.Errors)
				}
				workloads = len(snap.Workloads)
			}
			b.StopTimer()
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "fetch-s")
			b.ReportMetric(float64(prom.totalSeries()), "series")
			b.ReportMetric(float64(prom.raw)/1e6, "json-MB")
			covSeries, covBytes := prom.requestCoverage()
			b.ReportMetric(float64(covSeries), "req-coverage-series")
			b.ReportMetric(float64(covBytes)/1e6, "req-coverage-json-MB")
			b.ReportMetric(float64(workloads), "workloads")
			b.ReportMetric(benchPeakRSSMiB(), "peak-RSS-MiB")
			b.ReportMetric(m.harnessRSS, "harness-RSS-MiB")
		})
	}
}

// BenchmarkQueryCost prices the queries of BenchmarkFetch apart, in one
// run: history.Fetch as there, but with some queries answered as if
// Prometheus had no series for them (an empty vector, at no cost), so that
// what a query adds is the difference to queries=all, in the same process
// and under the same load:
//
//	queries=all                   every query answered: BenchmarkFetch
//	queries=no-request-coverage   the request sources' coverage queries
//	                              empty: the 11 queries before them
//	without=<query>               that query empty, the others answered
//	                              (with -upid.bench.each-query)
//
// Reports fetch-s, cpu-s (the process's user and system CPU per fetch, the
// fake Prometheus's included, less moved by other processes than wall
// time), series and json-MB answered, and with -benchmem allocs/op, which
// load does not move at all: allocs/op of queries=all minus another case,
// over the series it left out, is what each series of those queries costs.
// Time each case in a process of its own (-bench '.../queries=all$'): the
// first case of a process took 1.09 times the CPU of the same work after it.
func BenchmarkQueryCost(b *testing.B) {
	for _, pods := range benchSizes(b) {
		cl := newBenchCluster(pods)
		cfg := benchConfig()
		at := cl.created.Add(30 * 24 * time.Hour)
		params := benchParams(cfg)
		prom := newBenchProm(cl, params, at)
		queries := upidhistory.Queries(params)
		cases := []struct {
			name string
			skip func(name string) bool
		}{
			{"queries=all", func(string) bool { return false }},
			{"queries=no-request-coverage", func(n string) bool { return strings.HasPrefix(n, "request_coverage_") }},
		}
		for _, qu := range queries {
			if !*benchEachQuery {
				break
			}
			cases = append(cases, struct {
				name string
				skip func(name string) bool
			}{"without=" + qu.Name, func(n string) bool { return n == qu.Name }})
		}
		for _, c := range cases {
			b.Run(fmt.Sprintf("pods=%d/%s", pods, c.name), func(b *testing.B) {
				q := benchOnly{q: benchPromClient(b, prom.URL), answer: map[string]bool{}}
				series, raw := 0, int64(0)
				for _, qu := range queries {
					if !c.skip(qu.Name) {
						q.answer[qu.Expr] = true
						series += prom.series[qu.Name]
						raw += prom.bytes[qu.Name]
					}
				}
				runtime.GC()
				cpu := benchCPU()
				for b.Loop() {
					snap, err := upidhistory.Fetch(b.Context(), q, at, upidhistory.Options{
						Params: params, Timeout: time.Duration(cfg.Prometheus.Timeout), Concurrency: cfg.Prometheus.Concurrency,
					})
					if err != nil || len(snap.Errors) > 0 {
						b.Fatal(err, snap.Errors)
					}
				}
				b.StopTimer()
				b.ReportMetric((benchCPU()-cpu).Seconds()/float64(b.N), "cpu-s")
				b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "fetch-s")
				b.ReportMetric(float64(series), "series")
				b.ReportMetric(float64(raw)/1e6, "json-MB")
			})
		}
		prom.Close()
	}
}

// benchOnly passes the queries whose expression is in answer to q and
// answers the others with an empty vector.
type benchOnly struct {
	q      upidhistory.Querier
	answer map[string]bool
}

func (o benchOnly) Query(ctx context.Context, query string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	if !o.answer[query] {
		return model.Vector{}, nil, nil, nil
	}
	return o.q.Query(ctx, query, ts, opts...)
}

// benchCPU is the user and system CPU the process has used.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCacheByResource tells where the inventory's heap goes: for each
// resource it fills the exporter's informers with that resource only and
// reports the live heap they hold, per pod of the cluster, as
// <resource>-B/pod (the sum is about BenchmarkCycle's cache-B/pod).
func BenchmarkCacheByResource(b *testing.B) {
	pods := *benchSyncPods
	b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) {
		cl := newBenchCluster(pods)
		cfg := benchConfig()
		kube := newBenchKube(cl, true)
		paths := make([]string, 0, len(kube.resources))
		for p := range kube.resources {
			paths = append(paths, p)
		}
		kube.Close()
		sort.Strings(paths)
		perPod := map[string]float64{}
		for b.Loop() {
			for _, p := range paths {
				kube := newBenchKube(cl, true)
				kube.only(p)
				m := benchStartMeasure()
				svc, _ := benchStart(b, cfg, benchKubeClient(b, kube.URL), benchPromClient(b, "http://127.0.0.1:9"), kube, time.Now)
				perPod[p[strings.LastIndex(p, "/")+1:]] = float64(m.heapSince()) / float64(pods)
				runtime.KeepAlive(svc)
				svc.Shutdown()
				kube.Close()
			}
		}
		for r, v := range perPod {
			b.ReportMetric(v, r+"-B/pod")
		}
	})
}

func benchConfig() config.Config {
	cfg := config.Default()
	cfg.Exporter.NamespaceLabels = []string{"team"}
	return cfg
}

// benchParams shape the cycle's queries as the exporter does from cfg.
func benchParams(cfg config.Config) upidhistory.Params {
	return upidhistory.Params{
		Window: time.Duration(cfg.Exporter.Window), Step: time.Duration(cfg.Exporter.Step),
		RateWindow: time.Duration(cfg.Exporter.RateWindow), Sources: cfg.Exporter.RequestSources,
	}
}

// benchKubeClient and benchPromClient build clients as cmd/upid does.
func benchKubeClient(b *testing.B, url string) kubernetes.Interface {
	c, err := kubernetes.NewForConfig(&rest.Config{Host: url, QPS: 50, Burst: 100, UserAgent: "upid-bench"})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func benchPromClient(b *testing.B, url string) v1.API {
	rt, err := promconfig.NewRoundTripperFromConfig(promconfig.DefaultHTTPClientConfig, "upid")
	if err != nil {
		b.Fatal(err)
	}
	c, err := api.NewClient(api.Config{Address: url, RoundTripper: rt})
	if err != nil {
		b.Fatal(err)
	}
	return v1.NewAPI(c)
}

// benchMeasure holds the heap and RSS before the exporter exists.
type benchMeasure struct {
	heap       uint64
	harnessRSS float64
}

func benchStartMeasure() benchMeasure {
	debug.FreeOSMemory() // also runs a GC
	m := benchMeasure{heap: benchHeap()}
	benchResetPeakRSS()
	m.harnessRSS = benchProcStatusMiB("VmRSS")
	return m
}

var benchResetFailed bool

// benchResetPeakRSS sets VmHWM to the current RSS.
func benchResetPeakRSS() {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil && !benchResetFailed {
		benchResetFailed = true
		fmt.Fprintf(os.Stderr, "bench: cannot reset the peak RSS (%v): peak-RSS-MiB is the process's peak so far\n", err)
	}
}

// heapSince is the live heap now minus the heap at the start.
func (m benchMeasure) heapSince() int64 { return int64(benchHeap()) - int64(m.heap) }

func benchHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func benchPeakRSSMiB() float64 { return benchProcStatusMiB("VmHWM") }

func benchProcStatusMiB(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// benchStart builds the exporter and runs its informers until they sync.
func benchStart(b *testing.B, cfg config.Config, kc kubernetes.Interface, pq v1.API, kube *benchKube, now func() time.Time) (*exporter.Service, time.Duration) {
	svc, err := exporter.New(exporter.Options{
		Exporter: cfg.Exporter, Prometheus: cfg.Prometheus, Kube: kc, Querier: pq,
		Logger: slog.New(slog.DiscardHandler), Now: now,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	if err := svc.Start(ctx); err != nil {
		b.Fatalf("%v; requests for resources the fake API server does not serve: %v", err, kube.unknownPaths())
	}
	if u := kube.unknownPaths(); len(u) > 0 {
		b.Logf("the inventory watches resources the fixture serves empty: %v; extend bench_cluster_test.go", u)
	}
	return svc, time.Since(start)
}

func benchCycle(b *testing.B, pods int) {
	cl := newBenchCluster(pods)
	cfg := benchConfig()
	at := cl.created.Add(30 * 24 * time.Hour)
	prom := newBenchProm(cl, benchParams(cfg), at)
	defer prom.Close()
	if len(prom.missing) > 0 {
		b.Logf("the fake Prometheus has no data for %v: they answer empty vectors; extend bench_prom_test.go", prom.missing)
	}
	kube := newBenchKube(cl, true)
	defer kube.Close()
	kc := benchKubeClient(b, kube.URL)
	pq := benchPromClient(b, prom.URL)

	m := benchStartMeasure()
	svc, sync := benchStart(b, cfg, kc, pq, kube, func() time.Time { return at })
	syncPeak := benchPeakRSSMiB()
	cache := m.heapSince()
	// The fake Prometheus serves no window queries (two weeks of points per
	// container); the recommender's states are seeded as a finished
	// backfill leaves them, so that their memory, the recommendations and
	// the container series are in the figures. Each container's CPU and
	// memory move daily and hourly around a level of its own.
	states, err := exporter.SeedRecommender(svc, at, time.Hour, func(c, i int) (float64, float64) {
		level := 0.05 + float64(c%97)/97
		day, hour := math.Sin(2*math.Pi*float64(i)/24), math.Sin(2*math.Pi*float64(i*7+c)/5)
		return level * (1 + 0.4*day + 0.1*hour), (64 << 20) * (1 + float64(c%31)) * (1 + 0.05*day)
	})
	if err != nil {
		b.Fatal(err)
	}
	seeded := m.heapSince() - cache
	var cyclePeak, scrapePeak float64

	// Scrapes go through the exporter's own /metrics, internal/web's
	// family-at-a-time exposition.
	reg, err := web.New(web.Options{Component: "exporter", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := reg.Stream(svc.Scrape); err != nil {
		b.Fatal(err)
	}
	self := benchSelfRegistry(b, svc.Collectors())
	scrapeSrv := httptest.NewServer(reg.Mux)
	scraper := &http.Client{Transport: &http.Transport{DisableCompression: true}}

	var cycleT, encodeT, scrapeT time.Duration
	stages := map[string]float64{}
	var gz []byte
	busy0 := prom.busy.Load()
	for b.Loop() {
		benchResetPeakRSS()
		start := time.Now()
		if err := svc.Cycle(b.Context()); err != nil {
			b.Fatal(err)
		}
		cycleT += time.Since(start)
		cyclePeak = max(cyclePeak, benchPeakRSSMiB())
		benchStages(b, self, stages)
		// The first scrape after a cycle encodes the stored families
		// (Run's Encode does it within a second, ahead of the scrapes);
		// the next ones write the bytes encoded then.
		benchResetPeakRSS()
		start = time.Now()
		gz = benchScrape(b, scraper, scrapeSrv.URL+"/metrics")
		encodeT += time.Since(start)
		start = time.Now()
		// Only the live families (Go runtime, the results' age) differ.
		if again := benchScrape(b, scraper, scrapeSrv.URL+"/metrics"); len(again) < len(gz)*99/100 {
			b.Errorf("the second scrape of a cycle served %d bytes, the first %d", len(again), len(gz))
		}
		scrapeT += time.Since(start)
		scrapePeak = max(scrapePeak, benchPeakRSSMiB())
	}
	b.StopTimer()
	n := float64(b.N)
	gzBytes := len(gz)
	expo, samples, families := benchExposition(b, gz)
	gz = nil
	retained := m.heapSince()
	runtime.KeepAlive(svc)
	runtime.KeepAlive(reg)

	res := svc.Last()
	if got, want := len(res.Workloads), len(cl.workloads); got != want {
		b.Errorf("%d workloads analysed, want %d", got, want)
	}
	if got := res.Objects["pod"]; got != float64(pods) {
		b.Errorf("%v pods in the inventory, want %d", got, pods)
	}
	verdicts := map[string]int{}
	for _, w := range res.Workloads {
		verdicts[w.Idle.State]++
	}
	covSeries, covBytes := prom.requestCoverage()
	b.Logf("%d workloads %v; %d series (%.1f MB of JSON, %.1f MB gzipped; request coverage %d series, %.1f MB) from the fake Prometheus; pods sent as %.0f B on average",
		len(res.Workloads), verdicts, prom.totalSeries(), float64(prom.raw)/1e6, float64(prom.gzipped())/1e6, covSeries, float64(covBytes)/1e6,
		float64(kube.resources["/api/v1/pods"].bytes.Load())/float64(kube.resources["/api/v1/pods"].items.Load()))
	b.Logf("largest metric families of %d: %v", len(families), benchTop(families, 10))
	res = nil

	scrapeSrv.Close()
	svc.Shutdown()
	svc, reg, self = nil, nil, nil
	var plain int64
	if pods <= *benchPlainMax {
		plain = benchPlainInformers(b, kc)
	}

	b.ReportMetric(float64(states), "recommender-states")
	b.ReportMetric(float64(seeded)/float64(max(states, 1)), "state-B/ctr")
	b.ReportMetric(cycleT.Seconds()/n, "cycle-s")
	if total := stages["total"]; total > 0 {
		for _, s := range []string{"inventory", "prometheus", "analysis"} {
			b.ReportMetric(stages[s]/total, s+"-share")
		}
	}
	b.ReportMetric(time.Duration(prom.busy.Load()-busy0).Seconds()/n, "fakeprom-s")
	b.ReportMetric(encodeT.Seconds()/n, "first-scrape-s")
	b.ReportMetric(scrapeT.Seconds()/n, "scrape-s")
	b.ReportMetric(float64(expo), "expo-B")
	b.ReportMetric(float64(gzBytes), "gzip-B")
	b.ReportMetric(float64(samples), "series")
	b.ReportMetric(sync.Seconds(), "sync-s")
	b.ReportMetric(max(syncPeak, cyclePeak, scrapePeak), "peak-RSS-MiB")
	b.ReportMetric(syncPeak, "sync-peak-RSS-MiB")
	b.ReportMetric(cyclePeak, "cycle-peak-RSS-MiB")
	b.ReportMetric(scrapePeak, "scrape-peak-RSS-MiB")
	b.ReportMetric(m.harnessRSS, "harness-RSS-MiB")
	b.ReportMetric(float64(retained)/float64(pods), "retained-B/pod")
	b.ReportMetric(float64(cache)/float64(pods), "cache-B/pod")
	if plain > 0 {
		b.ReportMetric(float64(plain)/float64(pods), "plain-cache-B/pod")
		b.ReportMetric(float64(cache)/float64(plain), "cache-ratio")
	}
}

// benchSelfRegistry registers, in a registry of its own, the collector that
// reports the stage durations, so each cycle's can be read cheaply.
func benchSelfRegistry(b *testing.B, cs []prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		found := false
		for d := range ch {
			found = found || strings.Contains(d.String(), `"upid_exporter_cycle_stage_duration_seconds"`)
		}
		if found {
			reg.MustRegister(c)
			return reg
		}
	}
	b.Fatal("no collector reports upid_exporter_cycle_stage_duration_seconds")
	return nil
}

func benchStages(b *testing.B, reg *prometheus.Registry, into map[string]float64) {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "upid_exporter_cycle_stage_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" {
					into[l.GetValue()] += m.GetGauge().GetValue()
				}
			}
		}
	}
}

// benchScrape scrapes as Prometheus 3 does by default: OpenMetrics text
// first, gzip.
func benchScrape(b *testing.B, c *http.Client, url string) []byte {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" {
		b.Fatalf("scrape: %s, Content-Encoding %q", resp.Status, resp.Header.Get("Content-Encoding"))
	}
	return body
}

// benchExposition returns the size of the uncompressed exposition and its
// number of samples.
func benchExposition(b *testing.B, gz []byte) (size int64, samples int, families map[string]int) {
	families = map[string]int{}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		b.Fatal(err)
	}
	s := bufio.NewScanner(zr)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		size += int64(len(s.Bytes())) + 1
		if line := s.Bytes(); len(line) > 0 && line[0] != '#' {
			samples++
			if i := bytes.IndexAny(line, "{ "); i > 0 {
				families[string(line[:i])]++
			}
		}
	}
	if err := s.Err(); err != nil {
		b.Fatal(err)
	}
	return size, samples, families
}

// benchTop lists the n largest families, as name=count.
func benchTop(families map[string]int, n int) []string {
	names := make([]string, 0, len(families))
	for f := range families {
		names = append(names, f)
	}
	sort.Slice(names, func(i, j int) bool { return families[names[i]] > families[names[j]] })
	var out []string
	for _, f := range names[:min(n, len(names))] {
		out = append(out, fmt.Sprintf("%s=%d", f, families[f]))
	}
	return out
}

// benchPlainInformers is the baseline: client-go informers for the same ten
// resources on the same client, without the inventory's transforms. It
// returns the live heap they hold once synced.
func benchPlainInformers(b *testing.B, kc kubernetes.Interface) int64 {
	m := benchMeasure{heap: benchHeap()}
	f := informers.NewSharedInformerFactory(kc, 0)
	for _, inf := range []cache.SharedIndexInformer{
		f.Core().V1().Pods().Informer(), f.Core().V1().Nodes().Informer(), f.Core().V1().Namespaces().Informer(),
		f.Apps().V1().Deployments().Informer(), f.Apps().V1().ReplicaSets().Informer(), f.Apps().V1().StatefulSets().Informer(),
		f.Apps().V1().DaemonSets().Informer(), f.Batch().V1().Jobs().Informer(), f.Batch().V1().CronJobs().Informer(),
		f.Autoscaling().V2().HorizontalPodAutoscalers().Informer(),
	} {
		_ = inf
	}
	stop := make(chan struct{})
	defer func() { close(stop); f.Shutdown() }()
	f.Start(stop)
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			b.Fatalf("plain informer of %v did not sync", typ)
		}
	}
	held := m.heapSince()
	runtime.KeepAlive(f)
	return held
}
