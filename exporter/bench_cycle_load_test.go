package exporter_test

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	upidhistory "github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/series"
	"github.com/upid-dev/upid/internal/testenv"
)

// BenchmarkCycleLoad measures what the idle analysis' queries
// (history.Queries, the default request sources) cost a real Prometheus,
// by its own statistics: BenchmarkCycle's fake answers them ready-made,
// so the cost of evaluating them, the coverage queries' owner join at
// every step of the window among it, shows only here. The data
// is BenchmarkRecommenderLoad's cluster (400 pods) with what the other
// queries read besides (network, probes, phases) and the requests of half
// its workloads, over a 24-hour window: a day is the shortest window whose
// coverage queries take hourly steps, as the default week's do, and every
// query's reads grow linearly with the window.
//
// Figures are per cycle, by group: the seven other queries (window-:
// usage, CPU coverage, network, probes, replicas, OpenCost), the request
// counts (req-count-) and the request coverage queries (req-coverage-),
// as seconds of evaluation (Prometheus's evalTotalTime), and the coverage
// queries' share of them; the log has each query's. Prometheus's sample
// counts would say more, but they count only the output points of a
// subquery inside a function (prometheus/prometheus#16638), which the
// coverage queries are: 6 samples a pod for the four, against 15,847 for
// the counts.
//
//	go test ./exporter -run '^$' -bench CycleLoad -benchtime 3x
func BenchmarkCycleLoad(b *testing.B) {
	const span = 24 * time.Hour
	end := time.Now().Truncate(time.Hour)
	// The window and the rate window before it have data.
	start := end.Add(-span - time.Hour)
	ss, _ := loadSeriesFor(start, end.Add(-time.Second))
	ss = append(ss, cycleLoadSeries(start, end.Add(-time.Second))...)
	prom := testenv.StartPrometheus(b, testenv.PrometheusOptions{Series: ss})
	p := benchParams(benchConfig())
	p.Window = span
	at := end.Add(-time.Minute)
	var window, count, coverage queryStats
	perQuery := map[string]float64{} // query name → seconds of evaluation
	for b.Loop() {
		w, n, c := cycleLoadStats(b, prom.URL, p, at, perQuery)
		window.add(w)
		count.add(n)
		coverage.add(c)
	}
	cycles := float64(b.N)
	for _, g := range []struct {
		name string
		s    queryStats
	}{{"window", window}, {"req-count", count}, {"req-coverage", coverage}} {
		// Without series a group evaluates only its owner joins.
		if g.s.Series == 0 {
			b.Fatalf("the %s queries answered no series", g.name)
		}
		b.ReportMetric(g.s.Seconds/cycles, g.name+"-eval-s")
	}
	b.ReportMetric(coverage.Seconds/(window.Seconds+count.Seconds+coverage.Seconds), "req-coverage-eval-share")
	// By query, to tell which of a group to make cheaper.
	names := make([]string, 0, len(perQuery))
	for n := range perQuery {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return perQuery[names[i]] > perQuery[names[j]] })
	by := make([]string, 0, len(names))
	for _, n := range names {
		by = append(by, fmt.Sprintf("%s=%.3fs", n, perQuery[n]/cycles))
	}
	b.Logf("evaluation by query, per cycle: %s", strings.Join(by, " "))
}

// cycleLoadStats runs the cycle's queries, summing what they cost by
// group. Out of b.Loop's body: Go 1.26.8's compiler fails on this loop
// inside it (an internal compiler error).
func cycleLoadStats(b *testing.B, url string, p upidhistory.Params, at time.Time, perQuery map[string]float64) (window, count, coverage queryStats) {
	for _, q := range upidhistory.Queries(p) {
		g := &window
		switch {
		case strings.HasPrefix(q.Name, "request_coverage_"):
			g = &coverage
		case strings.HasPrefix(q.Name, "requests_"):
			g = &count
		}
		s := promQueryStats(b, url, q.Expr, at)
		perQuery[q.Name] += s.Seconds
		g.add(s)
	}
	return window, count, coverage
}

// cycleLoadSeries are the series of loadSeriesFor's pods that the cycle's
// queries read and the recommender's do not: network, probes, phase, and
// http_requests_total (health checks and real traffic) for the even
// workloads.
func cycleLoadSeries(start, end time.Time) []series.Series {
	scrape := start.Add(7 * time.Second)
	var out []series.Series
	for n := range loadNamespaces {
		ns := fmt.Sprintf("load-%d", n)
		for w := range loadWorkloads {
			for p := range 2 {
				ref := series.PodRef{Namespace: ns, Pod: fmt.Sprintf("w%d-%d", w, p), Container: "app", Node: "n1"}
				out = append(out,
					series.ContainerNetworkReceiveBytes(ref, series.GenerateCounter(scrape, end, loadScrape, func(t time.Time) float64 {
						return 4e4 * (1 + 0.5*math.Sin(float64(t.Unix())/9000))
					})),
					series.ProberProbeTotal(ref, "Liveness", "successful", series.GenerateCounter(scrape, end, loadScrape, series.Const(0.1))),
					series.ProberProbeTotal(ref, "Readiness", "successful", series.GenerateCounter(scrape, end, loadScrape, series.Const(0.2))),
					series.KubePodStatusPhase(ref, "Running", series.Generate(start, end, time.Minute, series.Const(1))),
				)
				if w%2 != 0 {
					continue
				}
				for _, h := range []struct {
					handler, agent string
					rate           float64
				}{{"/healthz", "kube-probe/1.33", 0.1}, {"/api/v1/items", "okhttp/4.12.0", 5}} {
					out = append(out, series.HTTPRequestsTotal(map[string]string{"namespace": ns, "pod": ref.Pod, "handler": h.handler, "user_agent": h.agent},
						series.GenerateCounter(scrape, end, loadScrape, series.Const(h.rate))))
				}
			}
		}
	}
	return out
}
