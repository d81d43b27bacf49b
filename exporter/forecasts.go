package exporter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upid-dev/upid/exporter/forecast"
	"github.com/upid-dev/upid/exporter/history"
)

const (
	// minForecastPoints is two days of hours: less has no daily shape to
	// learn, and a forecast from it would be a guess dressed as a number.
	minForecastPoints = 48
	// anomalyPoints is the recent day scored against the forecast made
	// before it.
	anomalyPoints = 24
)

// workloadForecast is the CPU and memory forecast of one workload; either
// is nil when its history is too short.
type workloadForecast struct {
	CPU     []forecast.Summary // one per forecast.Horizons
	Memory  []forecast.Summary // as CPU, in bytes
	Anomaly [2]float64         // by history.Resource; NaN when unknown
}

// forecasts are the results of the last forecast run, refitted on their own
// loop (exporter.forecast.interval): a cycle's five minutes change little
// in hours of history, and fitting every workload costs about a
// millisecond each.
type forecasts struct {
	mu sync.RWMutex
	forecastRun
	gen uint64 // runs so far
}

// forecastRun is what the last forecast run left. A run replaces byKey
// whole, never edits it, so a copy of forecastRun is a reading that later
// runs do not change.
type forecastRun struct {
	byKey    map[history.Key]workloadForecast
	at       time.Time
	duration time.Duration
	ok       bool
	ran      bool
}

// usageStore holds every workload's hourly use of one resource between
// forecast runs, so that a run reads only the hours since the last one
// instead of the whole window: at 14 days that is 336 times fewer samples
// per run (docs/benchmarks.md). Values are float32, 1.3 KB per workload
// and resource at 14 days; neither cores nor bytes need more than
// float32's seven digits to forecast.
type usageStore struct {
	mu  sync.Mutex
	end time.Time // the hour of the last point held
	// known are the namespaces whose whole window has been read; a
	// namespace seen for the first time is read whole.
	known  map[string]bool
	series map[history.Key][]float32 // window/UsageStep points ending at end
}

// usagePlan says what a run reads: the whole window for full, the hours
// since the store's end for incremental (span 0: nothing new).
type usagePlan struct {
	full, incremental []string
	span              time.Duration
	reset             bool
}

// planUsage splits the namespaces of the run ending at end between a
// read of the whole window and one of the hours since the last run. A
// gap of a window or more, or a first run, reads everything whole.
func (u *usageStore) plan(namespaces []string, end time.Time, window time.Duration) usagePlan {
	var p usagePlan
	if u.end.IsZero() || end.Sub(u.end) >= window || end.Before(u.end) {
		p.reset = true
		p.full = namespaces
		return p
	}
	p.span = end.Sub(u.end)
	for _, ns := range namespaces {
		if u.known[ns] {
			p.incremental = append(p.incremental, ns)
		} else {
			p.full = append(p.full, ns)
		}
	}
	return p
}

// merge moves the store to end: held series shift by the plan's span and
// take the new hours at their tail (NaN where the new read has nothing:
// unknown), series read whole replace what was held, and series of
// namespaces no longer present or without a known point are dropped.
func (u *usageStore) merge(p usagePlan, end time.Time, window time.Duration, present map[string]bool, full, inc map[history.Key]history.UsageSeries) {
	n := int(window / history.UsageStep)
	if p.reset || u.series == nil {
		u.series, u.known = map[history.Key][]float32{}, map[string]bool{}
	}
	k := int(p.span / history.UsageStep)
	nan := float32(math.NaN())
	for key, v := range u.series {
		if len(v) != n {
			delete(u.series, key)
			continue
		}
		if k > 0 {
			copy(v, v[min(k, n):])
			for i := max(n-k, 0); i < n; i++ {
				v[i] = nan
			}
		}
	}
	for key, us := range inc {
		v := u.series[key]
		if v == nil {
			v = make([]float32, n)
			for i := range v {
				v[i] = nan
			}
			u.series[key] = v
		}
		tail := us.Values[max(len(us.Values)-k, 0):]
		copy(v[n-len(tail):], float32s(tail))
	}
	for key, us := range full {
		u.series[key] = float32s(us.Values)
	}
	for key, v := range u.series {
		if !present[key.Namespace] || finitePoints32(v) == 0 {
			delete(u.series, key)
		}
	}
	for _, ns := range append(append([]string{}, p.full...), p.incremental...) {
		u.known[ns] = true
	}
	for ns := range u.known {
		if !present[ns] {
			delete(u.known, ns)
		}
	}
	u.end = end
}

func float32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func finitePoints32(v []float32) int {
	n := 0
	for _, x := range v {
		if x == x && !math.IsInf(float64(x), 0) {
			n++
		}
	}
	return n
}

// Forecast fits the CPU forecast and anomaly score of every workload of the
// last good cycle. Workloads without two days of hourly history get none:
// unknown, not a flat line. The hourly history is kept between runs and
// only the hours since the last run are read (usageStore). A failed batch
// of namespaces fails the run, keeps the previous forecasts and the held
// history, which the next run reads on from.
func (s *Service) Forecast(ctx context.Context) error {
	start := time.Now()
	res := s.Last()
	if res == nil {
		return errors.New("forecast: no analysis results yet")
	}
	cfg := s.opts.Exporter.Forecast
	window, timeout := time.Duration(cfg.Window), time.Duration(s.opts.Prometheus.Timeout)
	at := s.opts.Now()
	end := at.Truncate(history.UsageStep)
	present := map[string]bool{}
	for _, w := range res.Workloads {
		present[w.Namespace] = true
	}
	namespaces := make([]string, 0, len(present))
	for ns := range present {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	// Every resource's store is read and moved together: a run that fails
	// for one leaves all where they were, so they stay at the same hour.
	var plans [history.Resources]usagePlan
	for r := range plans {
		u := &s.usage[r]
		u.mu.Lock()
		defer u.mu.Unlock()
		plans[r] = u.plan(namespaces, end, window)
	}
	in := func(nss []string) []WorkloadResult {
		set := map[string]bool{}
		for _, ns := range nss {
			set[ns] = true
		}
		var out []WorkloadResult
		for _, w := range res.Workloads {
			if set[w.Namespace] {
				out = append(out, w)
			}
		}
		return out
	}
	var full, inc [history.Resources]map[history.Key]history.UsageSeries
	var err error
	for r, plan := range plans {
		rsc := history.Resource(r)
		full[r], err = history.FetchUsage(ctx, s.opts.Querier, rsc, at, window, timeout, forecastBatches(in(plan.full), cfg.BatchWorkloads))
		if err == nil && plan.span > 0 && len(plan.incremental) > 0 {
			inc[r], err = history.FetchUsage(ctx, s.opts.Querier, rsc, at, plan.span, timeout, forecastBatches(in(plan.incremental), cfg.BatchWorkloads))
		}
		if err != nil {
			break
		}
	}
	if err != nil {
		s.forecasts.mu.Lock()
		s.forecasts.ok, s.forecasts.ran, s.forecasts.duration = false, true, time.Since(start)
		s.forecasts.gen++
		s.forecasts.mu.Unlock()
		return fmt.Errorf("forecast: %w", err)
	}
	for r := range plans {
		s.usage[r].merge(plans[r], end, window, present, full[r], inc[r])
	}
	n := int(window / history.UsageStep)
	first := end.Add(-window).Add(history.UsageStep)
	out := make(map[history.Key]workloadForecast, len(s.usage[history.CPU].series))
	vals := make([]float64, n)
	for r := range s.usage {
		for k, v := range s.usage[r].series {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			for i, x := range v {
				vals[i] = float64(x)
			}
			// A leak or a jump in memory costs as much as one in CPU, so
			// both are scored, at a second fit each.
			sums, anomaly, ok := fitUsage(history.UsageSeries{Start: first, Values: vals})
			if !ok {
				continue
			}
			f, seen := out[k]
			if !seen {
				f.Anomaly = [2]float64{math.NaN(), math.NaN()}
			}
			f.Anomaly[r] = anomaly
			if history.Resource(r) == history.Memory {
				f.Memory = sums
			} else {
				f.CPU = sums
			}
			out[k] = f
		}
	}
	s.forecasts.mu.Lock()
	s.forecasts.byKey, s.forecasts.at = out, s.opts.Now()
	s.forecasts.ok, s.forecasts.ran, s.forecasts.duration = true, true, time.Since(start)
	s.forecasts.gen++
	s.forecasts.mu.Unlock()
	s.logger.Info("forecasts fitted", "workloads", len(out), "cpu_series", len(s.usage[history.CPU].series), "memory_series", len(s.usage[history.Memory].series), "read_whole", len(plans[history.CPU].full), "read_since_last", len(plans[history.CPU].incremental), "hours_since_last", int(plans[history.CPU].span/history.UsageStep), "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// fitUsage fits one workload's hourly use of a resource and scores its last
// day against the forecast made before it (NaN when unknown).
func fitUsage(us history.UsageSeries) (sums []forecast.Summary, anomaly float64, ok bool) {
	s := forecast.Series{Start: us.Start, Step: history.UsageStep, Values: us.Values}
	if finitePoints(us.Values) < minForecastPoints {
		return nil, math.NaN(), false
	}
	m, err := forecast.Fit(s, forecast.Options{})
	if err != nil {
		return nil, math.NaN(), false
	}
	anomaly = math.NaN()
	n := len(us.Values)
	if finitePoints(us.Values[:n-anomalyPoints]) >= minForecastPoints && finitePoints(us.Values[n-anomalyPoints:]) >= anomalyPoints/2 {
		if before, err := forecast.Fit(s.Slice(0, n-anomalyPoints), forecast.Options{}); err == nil {
			anomaly = forecast.AnomalyScore(before, s.Slice(n-anomalyPoints, n))
		}
	}
	return m.Summaries(), anomaly, true
}

func finitePoints(v []float64) int {
	n := 0
	for _, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			n++
		}
	}
	return n
}

// forecastBatches groups namespaces so that each query covers about limit
// workloads, as the recommender batches its containers.
func forecastBatches(ws []WorkloadResult, limit int) [][]string {
	count := map[string]int{}
	for _, w := range ws {
		count[w.Namespace]++
	}
	return history.WindowBatches(count, limit)
}

// RunForecasts refits forecasts every exporter.forecast.interval until ctx
// ends, starting once the first cycle has results.
func (s *Service) RunForecasts(ctx context.Context) {
	every := time.Duration(s.opts.Exporter.Forecast.Interval)
	if every <= 0 {
		return
	}
	wait := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if s.Last() == nil {
			wait = 5 * time.Second
			continue
		}
		if err := s.Forecast(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("forecast run failed; the previous forecasts stay served", "err", err)
		}
		wait = every
	}
}

type forecastCollector struct {
	r                          *reading
	cpu, memory, cost, anomaly *prometheus.Desc
	duration, success, at, num *prometheus.Desc
	// only, when set, is the one family this collector reports (see
	// resultsCollector.families).
	only *prometheus.Desc
}

// families splits the forecasts into one collector per family.
func (c *forecastCollector) families() []prometheus.Collector {
	var out []prometheus.Collector
	for _, d := range []*prometheus.Desc{c.cpu, c.memory, c.cost, c.anomaly, c.duration, c.success, c.at, c.num} {
		f := *c
		f.only = d
		out = append(out, &f)
	}
	return out
}

func newForecastCollector(s *Service, r *reading) *forecastCollector {
	var constLabels prometheus.Labels
	if s.opts.Exporter.Cluster != "" {
		constLabels = prometheus.Labels{"cluster": s.opts.Exporter.Cluster}
	}
	w := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string{}, workloadLabels...), extra...), constLabels)
	}
	return &forecastCollector{
		r:        r,
		cpu:      w("upid_workload_forecast_cpu_usage_cores", "Forecast CPU use of the workload, mean over the next horizon (1d, 7d, 30d), by stat p10, p50 and p90: the mean of each hour's quantile.", "horizon", "stat"),
		memory:   w("upid_workload_forecast_memory_usage_bytes", "Forecast memory use (working set) of the workload, mean over the next horizon (1d, 7d, 30d), by stat p10, p50 and p90: the mean of each hour's quantile.", "horizon", "stat"),
		cost:     w("upid_workload_forecast_cost_dollars_per_hour", "Forecast spend per hour over the next horizon: today's request cost, with CPU and memory each grown to its forecast where the forecast exceeds the requests; stat as on the usage forecasts.", "horizon", "stat"),
		anomaly:  w("upid_workload_usage_anomaly_score", "How far the last day's use of a resource (cpu, memory) lay outside the band forecast for it before, 0 (inside) to 1 (far outside).", "resource"),
		duration: prometheus.NewDesc("upid_exporter_forecast_duration_seconds", "Duration of the last forecast run: history queries and fits.", nil, constLabels),
		success:  prometheus.NewDesc("upid_exporter_forecast_success", "1 when the last forecast run succeeded; failed runs keep the previous forecasts.", nil, constLabels),
		at:       prometheus.NewDesc("upid_exporter_forecast_timestamp_seconds", "When the forecasts served were fitted.", nil, constLabels),
		num:      prometheus.NewDesc("upid_exporter_forecast_workloads", "Workloads with a forecast: those with two days of hourly history.", nil, constLabels),
	}
}

func (c *forecastCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.only != nil {
		ch <- c.only
		return
	}
	for _, d := range []*prometheus.Desc{c.cpu, c.memory, c.cost, c.anomaly, c.duration, c.success, c.at, c.num} {
		ch <- d
	}
}

// forecastStats name the hourly quantiles averaged over a horizon. The
// label is stat, as on the usage metrics, because promtool reserves
// quantile for summaries.
var forecastStats = []string{"p10", "p50", "p90"}

func (c *forecastCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.r.forecasts
	if !f.ran {
		return
	}
	ok := 0.0
	if f.ok {
		ok = 1
	}
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		if c.only == nil || d == c.only {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
		}
	}
	g(c.duration, f.duration.Seconds())
	g(c.success, ok)
	if f.byKey == nil {
		return
	}
	g(c.at, float64(f.at.UnixNano())/1e9)
	g(c.num, float64(len(f.byKey)))
	if c.only != nil && c.only != c.cpu && c.only != c.memory && c.only != c.cost && c.only != c.anomaly {
		return
	}
	// The same reading the CLI makes: only workloads of the last cycle, as
	// a forecast of a deleted workload would be a cost nobody will pay.
	for _, w := range c.r.workloadForecasts() {
		for i, sum := range w.CPU {
			h := horizonLabel(sum.Horizon)
			for j, q := range []float64{sum.P10, sum.P50, sum.P90} {
				g(c.cpu, q, w.Namespace, w.Workload, w.Kind, h, forecastStats[j])
				if w.CostPerHour != nil {
					g(c.cost, w.CostPerHour[i][j], w.Namespace, w.Workload, w.Kind, h, forecastStats[j])
				}
			}
		}
		for _, sum := range w.Memory {
			h := horizonLabel(sum.Horizon)
			for j, q := range []float64{sum.P10, sum.P50, sum.P90} {
				g(c.memory, q, w.Namespace, w.Workload, w.Kind, h, forecastStats[j])
			}
		}
		for r, a := range [...]float64{history.CPU: w.Anomaly, history.Memory: w.MemoryAnomaly} {
			if !math.IsNaN(a) {
				g(c.anomaly, a, w.Namespace, w.Workload, w.Kind, history.Resource(r).String())
			}
		}
	}
}

// forecastCost prices a forecast: requests are what is paid for, so spend
// stays at today's cost unless use outgrows what is requested, and then
// grows at the workload's own price per core or byte. Without CPU
// requests there is no price per core to grow by, and no forecast cost.
// Memory grows only where it is requested and forecast (mem not NaN);
// otherwise its cost stays today's.
func forecastCost(w WorkloadResult, cpu, mem float64) (float64, bool) {
	if w.RequestedCPUCores <= 0 {
		return 0, false
	}
	perCore := w.Cost.CPU / w.RequestedCPUCores
	memory := w.Cost.Memory
	if w.RequestedMemoryBytes > 0 && !math.IsNaN(mem) {
		memory = w.Cost.Memory / w.RequestedMemoryBytes * math.Max(w.RequestedMemoryBytes, mem)
	}
	return memory + w.Cost.GPU + perCore*math.Max(w.RequestedCPUCores, cpu), true
}

func horizonLabel(d time.Duration) string {
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}
