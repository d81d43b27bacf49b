package exporter_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/internal/series"
	"github.com/upid-dev/upid/internal/testenv"
)

// Scale of BenchmarkRecommenderLoad's Prometheus: what this machine loads
// in seconds. Every figure is reported per container and scales linearly.
const (
	loadNamespaces = 4
	loadWorkloads  = 50 // per namespace, two pods each: 400 pod containers
	loadSpan       = 24 * time.Hour
	loadScrape     = 15 * time.Second
	// cycle is the exporter's default interval.
	cycle = 5 * time.Minute
	// fullWindow is the recommender's default window: the old queries
	// read it whole every cycle, so their load scales with it.
	fullWindow = 14 * 24 * time.Hour
)

// oldContainerQueries are the per-container queries every cycle ran
// before the recommender kept state (history.Queries up to this change),
// kept here as the benchmark's baseline.
func oldContainerQueries(window, step, rateWindow time.Duration) []history.Query {
	owner := history.OwnerExpr(model.Duration(window).String())
	by := func(perPod string) string {
		return fmt.Sprintf("max by (namespace, workload, kind, container) (\n  %s\n  * on (namespace, pod) group_left (workload, kind)\n  %s\n)", perPod, owner)
	}
	w, st, rw := model.Duration(window).String(), model.Duration(step).String(), model.Duration(rateWindow).String()
	cpuSel := `container_cpu_usage_seconds_total{container!="",container!="POD"}`
	memSel := `container_memory_working_set_bytes{container!="",container!="POD"}`
	return []history.Query{
		{Name: "container_cpu_p50_cores", Expr: by(fmt.Sprintf("quantile_over_time(0.5, rate(%s[%s])[%s:%s])", cpuSel, rw, w, st))},
		{Name: "container_cpu_p95_cores", Expr: by(fmt.Sprintf("quantile_over_time(0.95, rate(%s[%s])[%s:%s])", cpuSel, rw, w, st))},
		{Name: "container_cpu_max_cores", Expr: by(fmt.Sprintf("max_over_time(rate(%s[%s])[%s:%s])", cpuSel, rw, w, st))},
		{Name: "container_memory_p50_bytes", Expr: by(fmt.Sprintf("quantile_over_time(0.5, %s[%s])", memSel, w))},
		{Name: "container_memory_p95_bytes", Expr: by(fmt.Sprintf("quantile_over_time(0.95, %s[%s])", memSel, w))},
		{Name: "container_memory_max_bytes", Expr: by(fmt.Sprintf("max_over_time(%s[%s])", memSel, w))},
		{Name: "container_oom_kills", Expr: by(fmt.Sprintf(`max by (namespace, pod, container) (increase(container_oom_events_total{container!="",container!="POD"}[%s]))`, w))},
		{Name: "container_cpu_throttled_ratio", Expr: by(fmt.Sprintf(`sum by (namespace, pod, container) (increase(container_cpu_cfs_throttled_periods_total{container!=""}[%[1]s])) / sum by (namespace, pod, container) (increase(container_cpu_cfs_periods_total{container!=""}[%[1]s]) > 0)`, w))},
	}
}

// loadSeries is what cAdvisor and kube-state-metrics scrape from the
// benchmark's cluster: CPU, memory and start time per container, owners.
func loadSeriesFor(start, end time.Time) (out []series.Series, namespaces []string) {
	ones := series.Generate(start, end, time.Minute, series.Const(1))
	scrape := start.Add(7 * time.Second)
	for n := range loadNamespaces {
		ns := fmt.Sprintf("load-%d", n)
		namespaces = append(namespaces, ns)
		for w := range loadWorkloads {
			dep := fmt.Sprintf("w%d", w)
			rs := dep + "-rs"
			out = append(out, series.KubeReplicaSetOwner(ns, rs, series.OwnerRef{Kind: "Deployment", Name: dep}, ones))
			for p := range 2 {
				ref := series.PodRef{Namespace: ns, Pod: fmt.Sprintf("%s-%d", dep, p), Container: "app", Node: "n1"}
				phase := float64(w*2 + p)
				out = append(out,
					series.KubePodOwner(ref, series.OwnerRef{Kind: "ReplicaSet", Name: rs}, ones),
					series.ContainerCPUUsageSeconds(ref, series.GenerateCounter(scrape, end, loadScrape, func(t time.Time) float64 {
						return 0.2 + 0.1*math.Sin(float64(t.Unix())/13751+phase)
					})),
					series.ContainerMemoryWorkingSet(ref, series.Generate(scrape, end, loadScrape, func(t time.Time) float64 {
						return 3e8 + 5e7*math.Sin(float64(t.Unix())/27500+phase)
					})),
				)
			}
		}
	}
	return out, namespaces
}

// queryStats is what Prometheus says a query cost: the samples it read
// (stats=all, totalQueryableSamples), the series it answered and the
// seconds it evaluated for (evalTotalTime).
type queryStats struct {
	Samples, Series int64
	Seconds         float64
}

func (a *queryStats) add(b queryStats) {
	a.Samples += b.Samples
	a.Series += b.Series
	a.Seconds += b.Seconds
}

func promQueryStats(b *testing.B, base, query string, at time.Time) queryStats {
	b.Helper()
	form := url.Values{"query": {query}, "time": {fmt.Sprintf("%d", at.Unix())}, "stats": {"all"}}
	resp, err := http.PostForm(base+"/api/v1/query", form)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
			Stats  struct {
				Samples struct {
					TotalQueryableSamples int64 `json:"totalQueryableSamples"`
				} `json:"samples"`
				Timings struct {
					EvalTotalTime float64 `json:"evalTotalTime"`
				} `json:"timings"`
			} `json:"stats"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		b.Fatal(err)
	}
	if body.Status != "success" {
		b.Fatalf("%s: %s", strings.SplitN(query, "\n", 2)[0], body.Error)
	}
	return queryStats{Samples: body.Data.Stats.Samples.TotalQueryableSamples, Series: int64(len(body.Data.Result)), Seconds: body.Data.Stats.Timings.EvalTotalTime}
}

// BenchmarkRecommenderLoad measures, on a real Prometheus holding a day of
// 15-second scrapes of 400 pod containers (200 workload containers), what
// each way of feeding the recommender and the forecaster reads, with
// Prometheus's own query statistics:
//
//   - old: the per-container window queries every cycle used to run;
//   - cycle: the recommender's window queries for the one window a cycle
//     adds (history.WindowQueries);
//   - backfill: the same over the whole window, once at start;
//   - forecast: the forecast loop's queries (history.UsageQuery, CPU and
//     memory) over the
//     whole window, as every hourly run read it before the loop kept its
//     history and as its first run still does, and over the one hour a
//     run now reads.
//
// Figures are per workload container ("/ctr"); the old and forecast ones
// are also scaled to the 14-day window they run with by default (their
// reads grow with it), and the ratio old/cycle is reported at 14 days.
//
//	go test ./exporter -run '^$' -bench RecommenderLoad -benchtime 1x
func BenchmarkRecommenderLoad(b *testing.B) {
	end := time.Now().Truncate(time.Hour)
	start := end.Add(-loadSpan)
	ss, namespaces := loadSeriesFor(start, end.Add(-time.Second))
	prom := testenv.StartPrometheus(b, testenv.PrometheusOptions{Series: ss})
	containers := float64(loadNamespaces * loadWorkloads)
	at := end.Add(-time.Minute).Truncate(history.WindowStep)
	// The old queries over the data's span less the lookback, so every
	// point they read exists; reads grow linearly with the window.
	window := loadSpan - 2*time.Hour
	scale := float64(fullWindow) / float64(window)

	// The namespaces shard 0 of 2 reads: namespaces are not split.
	var shardNS []string
	for _, ns := range namespaces {
		if inventory.ShardOf(ns, 2) == 0 {
			shardNS = append(shardNS, ns)
		}
	}
	var old, inc, shard, backfill, forecast, forecastHour queryStats
	for b.Loop() {
		old, inc, shard, backfill, forecast, forecastHour = queryStats{}, queryStats{}, queryStats{}, queryStats{}, queryStats{}, queryStats{}
		for _, q := range oldContainerQueries(window, 5*time.Minute, 5*time.Minute) {
			old.add(promQueryStats(b, prom.URL, q.Expr, at))
		}
		for _, q := range history.WindowQueries(namespaces, history.Range{Start: at.Add(-history.WindowStep), End: at}) {
			inc.add(promQueryStats(b, prom.URL, q.Expr, at))
		}
		if len(shardNS) > 0 {
			for _, q := range history.WindowQueries(shardNS, history.Range{Start: at.Add(-history.WindowStep), End: at}) {
				shard.add(promQueryStats(b, prom.URL, q.Expr, at))
			}
		}
		for _, rg := range history.PlanWindows(time.Time{}, at.Add(history.Settle), window, 24*time.Hour, history.Settle) {
			for _, q := range history.WindowQueries(namespaces, rg) {
				backfill.add(promQueryStats(b, prom.URL, q.Expr, rg.End))
			}
		}
		for r := range history.Resources {
			forecast.add(promQueryStats(b, prom.URL, history.UsageQuery(r, namespaces, window.Truncate(time.Hour)), at.Truncate(time.Hour)))
			forecastHour.add(promQueryStats(b, prom.URL, history.UsageQuery(r, namespaces, time.Hour), at.Truncate(time.Hour)))
		}
	}
	if inc.Series == 0 || old.Series == 0 {
		b.Fatalf("no answers: old %+v cycle %+v", old, inc)
	}
	perCtr := func(s queryStats) float64 { return float64(s.Samples) / containers }
	b.ReportMetric(perCtr(old), "old-samples/ctr/cycle@22h")
	b.ReportMetric(perCtr(old)*scale, "old-samples/ctr/cycle@14d")
	b.ReportMetric(perCtr(inc), "cycle-samples/ctr/cycle")
	b.ReportMetric(float64(inc.Series)/containers, "cycle-series/ctr/cycle")
	// The share of the cycle's samples shard 0 of 2 reads, against its
	// share of the namespaces: with namespaces never split they match,
	// and the shards together read the whole once.
	b.ReportMetric(float64(shard.Samples)/float64(inc.Samples), "shard0of2-samples-share")
	b.ReportMetric(float64(len(shardNS))/float64(len(namespaces)), "shard0of2-ns-share")
	b.ReportMetric(float64(old.Series)/containers, "old-series/ctr/cycle")
	b.ReportMetric(perCtr(old)*scale/perCtr(inc), "old/cycle-ratio@14d")
	b.ReportMetric(perCtr(backfill)*scale, "backfill-samples/ctr@14d")
	b.ReportMetric(perCtr(forecast)*scale, "forecast-whole-samples/ctr@14d")
	b.ReportMetric(perCtr(forecastHour), "forecast-samples/ctr/hour")
	// What 100,000 containers would ask of Prometheus per day.
	perDay := float64(24*time.Hour/cycle) * 100_000
	b.ReportMetric(perCtr(old)*scale*perDay, "old-samples/day@100k")
	b.ReportMetric(perCtr(inc)*perDay, "cycle-samples/day@100k")
	b.ReportMetric(perCtr(forecast)*scale*24*100_000, "forecast-old-samples/day@100k")
	b.ReportMetric(perCtr(forecastHour)*24*100_000, "forecast-samples/day@100k")
	b.Logf("measured on %v workload containers, %d pods, %s of %s scrapes: old %+v, cycle %+v, backfill %+v, forecast whole %+v, forecast hour %+v",
		containers, 2*int(containers), loadSpan, loadScrape, old, inc, backfill, forecast, forecastHour)
}
