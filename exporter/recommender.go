package exporter

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/recommend"
)

// recommender keeps a recommend.State per workload container, fed each
// cycle with only the 5-minute windows completed since the last: reading
// the whole window every cycle would make Prometheus read every raw sample
// of every container about 4,000 times over the window's life
// (docs/benchmarks.md, BenchmarkRecommenderLoad).
type recommender struct {
	policy  recommend.Policy
	window  time.Duration
	chunk   time.Duration
	budget  time.Duration
	batch   int
	timeout time.Duration
	// settle is how long after its end a window is read (history.Settle
	// unless exporter.recommender.settle says otherwise).
	settle time.Duration
	logger *slog.Logger

	mu     sync.Mutex
	states map[history.ContainerKey]*recommend.State
	// through is, per namespace, the end of the last window fetched;
	// caughtUp marks namespaces whose backfill has reached the present
	// once, so their states hold the whole window.
	through  map[string]time.Time
	caughtUp map[string]bool
	// current are the containers of the last inventory: the only ones
	// served. departed holds when the others left it: their states are
	// kept, and fed, for a window after.
	current  map[history.ContainerKey]bool
	departed map[history.ContainerKey]time.Time

	queries, series, points, failures prometheus.Counter
	statesGauge, bytesGauge, pending  prometheus.Gauge
	// The checkpoint to exporter.recommender.state_file.
	checkpointFailures prometheus.Counter
	checkpointAt       prometheus.Gauge
}

// catchUpRange is the longest range read as a cycle's new windows rather
// than as backfill: a few missed cycles are caught up at once.
const catchUpRange = time.Hour

func newRecommender(p recommend.Policy, window, chunk, budget, timeout time.Duration, batch int, logger *slog.Logger) *recommender {
	p.Window = window
	return &recommender{
		policy: p, window: window, chunk: chunk, budget: budget, batch: max(batch, 1), timeout: timeout, logger: logger, settle: history.Settle,
		states: map[history.ContainerKey]*recommend.State{}, through: map[string]time.Time{}, caughtUp: map[string]bool{},
		departed:    map[history.ContainerKey]time.Time{},
		queries:     prometheus.NewCounter(prometheus.CounterOpts{Name: "upid_exporter_recommender_queries_total", Help: "Window queries the recommender sent to Prometheus."}),
		series:      prometheus.NewCounter(prometheus.CounterOpts{Name: "upid_exporter_recommender_series_total", Help: "Series (workload containers) in the answers to the recommender's window queries."}),
		points:      prometheus.NewCounter(prometheus.CounterOpts{Name: "upid_exporter_recommender_points_total", Help: "5-minute points in the answers to the recommender's window queries."}),
		failures:    prometheus.NewCounter(prometheus.CounterOpts{Name: "upid_exporter_recommender_fetch_failures_total", Help: "Window fetches that failed; their range is fetched again next cycle."}),
		statesGauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "upid_exporter_recommender_states", Help: "Workload containers the recommender keeps state for."}),
		bytesGauge:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "upid_exporter_recommender_state_bytes", Help: "Estimated memory of the recommender's states, in bytes."}),
		pending:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "upid_exporter_recommender_backfill_pending_namespaces", Help: "Namespaces whose history is still being read; their containers get no recommendation yet."}),
		checkpointFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "upid_exporter_recommender_checkpoint_failures_total",
			Help: "Checkpoints of the recommender's state that could not be written or loaded (exporter.recommender.state_file); a failed load costs a read of the whole window."}),
		checkpointAt: prometheus.NewGauge(prometheus.GaugeOpts{Name: "upid_exporter_recommender_checkpoint_timestamp_seconds",
			Help: "When the recommender's state was last written to, or loaded from, exporter.recommender.state_file; 0 without one."}),
	}
}

func (r *recommender) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range r.collectors() {
		c.Describe(ch)
	}
}

func (r *recommender) Collect(ch chan<- prometheus.Metric) {
	for _, c := range r.collectors() {
		c.Collect(ch)
	}
}

func (r *recommender) collectors() []prometheus.Collector {
	return []prometheus.Collector{r.queries, r.series, r.points, r.failures, r.statesGauge, r.bytesGauge, r.pending, r.checkpointFailures, r.checkpointAt}
}

// containerNames are the containers of a workload that get
// recommendations: the template's app containers and sidecars.
func containerNames(w inventory.Workload) []string {
	var out []string
	for _, c := range w.Containers {
		if !c.Init || c.Sidecar {
			out = append(out, c.Name)
		}
	}
	return out
}

// update fetches the windows completed since the last update for every
// namespace of the inventory and observes them. Namespaces are grouped by
// how far they have been read, batched by container count, and read
// oldest range first; backfill ranges stop once the cycle's budget is
// spent. A failed range leaves its namespaces where they were, to be read
// again next cycle; the error reports it.
func (r *recommender) update(ctx context.Context, q history.Querier, inv inventory.Snapshot, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()

	wanted := map[history.ContainerKey]bool{}
	perNS := map[string]int{}
	for _, w := range inv.Workloads {
		for _, c := range containerNames(w) {
			wanted[history.ContainerKey{Key: history.Key{Namespace: w.Namespace, Kind: w.Kind, Workload: w.Name}, Container: c}] = true
			perNS[w.Namespace]++
		}
	}
	// A container that left the inventory keeps its state for a window
	// while its namespace is read: a workload deleted and created again
	// (helm uninstall and install, kubectl replace --force) comes back
	// with its history, as a restarted exporter would read it, not with
	// only the windows since. After that (or with its namespace), the
	// state goes, so memory follows the cluster and another shard's
	// workloads are not kept here.
	for k := range r.states {
		if wanted[k] {
			delete(r.departed, k)
			continue
		}
		if _, ok := r.departed[k]; !ok {
			r.departed[k] = now
		}
		if perNS[k.Namespace] == 0 || now.Sub(r.departed[k]) > r.window {
			delete(r.states, k)
			delete(r.departed, k)
		}
	}
	r.current = wanted
	future := map[string]bool{}
	for ns, t := range r.through {
		if _, ok := perNS[ns]; !ok {
			delete(r.through, ns)
			delete(r.caughtUp, ns)
		}
		// Read past now: a checkpoint saved while the clock ran ahead (a
		// node's clock NTP corrected since). Nothing would be read until
		// the clock caught up while stale states were served as ready, so
		// the namespace is read again whole.
		if t.After(now.Add(history.WindowStep)) {
			future[ns] = true
			delete(r.through, ns)
			delete(r.caughtUp, ns)
		}
	}
	if len(future) > 0 && r.logger != nil {
		r.logger.Warn("recommender: namespaces read past the current time, read again", "namespaces", len(future), "now", now)
	}
	if len(future) > 0 {
		for k := range r.states {
			if future[k.Namespace] {
				delete(r.states, k)
				delete(r.departed, k)
			}
		}
	}

	groups := map[time.Time]map[string]int{}
	for ns, n := range perNS {
		t := r.through[ns]
		if groups[t] == nil {
			groups[t] = map[string]int{}
		}
		groups[t][ns] = n
	}
	// The most recent first: their ranges are the cycle's short
	// incremental reads, which must not wait behind a backfill.
	cursors := make([]time.Time, 0, len(groups))
	for t := range groups {
		cursors = append(cursors, t)
	}
	sort.Slice(cursors, func(i, j int) bool { return cursors[i].After(cursors[j]) })

	var errs []error
	backfilled := false
	for _, t := range cursors {
		for _, batch := range history.WindowBatches(groups[t], r.batch) {
			ranges := history.PlanWindows(t, now, r.window, r.chunk, r.settle)
			// A plan that starts past the cursor rereads the whole window
			// (first read, or a gap longer than it): until it is done the
			// states hold only part of the window.
			if len(ranges) > 0 && (t.IsZero() || ranges[0].Start.After(t.Truncate(history.WindowStep))) {
				for _, ns := range batch {
					r.caughtUp[ns] = false
				}
			}
			for i, rg := range ranges {
				// The budget bounds backfill only: the last range when it
				// is short (a cycle's new windows) is always read, and so
				// is the cycle's first backfill range, so that a budget
				// shorter than one query still makes progress.
				catchUp := i == len(ranges)-1 && rg.End.Sub(rg.Start) <= catchUpRange
				if !catchUp && backfilled && r.budget > 0 && time.Since(start) > r.budget {
					break
				}
				backfilled = backfilled || !catchUp
				if ctx.Err() != nil {
					return ctx.Err()
				}
				got, st, err := history.FetchWindows(ctx, q, batch, rg, r.timeout)
				r.queries.Add(float64(st.Queries))
				r.series.Add(float64(st.Series))
				r.points.Add(float64(st.Points))
				if err != nil {
					r.failures.Inc()
					errs = append(errs, err)
					break
				}
				r.observe(got, wanted)
				for _, ns := range batch {
					r.through[ns] = rg.End
					if i == len(ranges)-1 {
						r.caughtUp[ns] = true
					}
				}
			}
		}
	}
	r.gauges(perNS, now)
	return errors.Join(errs...)
}

func (r *recommender) observe(got map[history.ContainerKey][]history.Window, wanted map[history.ContainerKey]bool) {
	for k, ws := range got {
		s := r.states[k]
		if !wanted[k] && s == nil {
			continue
		}
		if s == nil {
			s = recommend.NewState(r.policy)
			r.states[k] = s
		}
		for _, w := range ws {
			s.Observe(sampleOf(w))
		}
	}
}

// sampleOf turns a window into the state's sample; unknown values stay
// NaN (the state skips them) and counters without series count as zero.
func sampleOf(w history.Window) recommend.Sample {
	x := recommend.Sample{
		Time: w.End.Add(-history.WindowStep), Duration: history.WindowStep,
		CPU: w.CPU, MemoryPeak: w.MemoryPeak, Start: w.Start,
		OOMKill: w.OOMKills >= 0.5, MemoryLimit: w.OOMMemoryLimit,
	}
	if w.Periods > 0 && !math.IsNaN(w.Throttled) {
		x.Periods, x.ThrottledPeriods = w.Periods, w.Throttled
	}
	return x
}

func (r *recommender) gauges(perNS map[string]int, now time.Time) {
	bytes := 0
	for _, s := range r.states {
		bytes += s.Bytes()
	}
	pending := 0
	for ns := range perNS {
		if !r.ready(ns, now) {
			pending++
		}
	}
	r.statesGauge.Set(float64(len(r.states)))
	r.bytesGauge.Set(float64(bytes))
	r.pending.Set(float64(pending))
}

// ready: the namespace's states cover the window up to a recent window.
// After a gap longer than the window, or before the first backfill
// finished, they do not, and a recommendation from them would be sized on
// part of the history.
func (r *recommender) ready(ns string, now time.Time) bool {
	t, ok := r.through[ns]
	return ok && r.caughtUp[ns] && now.Sub(t) < r.window
}

// inputsOf reads s as of asOf, under the lock the fetch writes it with.
func (r *recommender) inputsOf(s *recommend.State, asOf time.Time) func(time.Duration) recommend.Inputs {
	return func(w time.Duration) recommend.Inputs {
		r.mu.Lock()
		defer r.mu.Unlock()
		return s.InputsWithin(asOf, w)
	}
}

// fill puts every ready state's usage quantiles and recommendation inputs,
// as of the end of the last window read, into the snapshot for the
// analysis; containers without a state, or
// still being backfilled, stay unknown.
func (r *recommender) fill(hist *history.Snapshot, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, s := range r.states {
		if !r.current[k] || !r.ready(k.Namespace, now) {
			continue
		}
		// As of the last window read, not now: the minutes since are not
		// missing, only not complete yet, and must not lower the coverage.
		asOf := r.through[k.Namespace]
		cpu, mem, cpuOK, memOK := s.Usage(asOf)
		in := s.Inputs(asOf)
		if !cpuOK && !memOK && in.Coverage == 0 {
			continue
		}
		h := hist.Workloads[k.Key]
		if h == nil {
			h = &history.Workload{}
			hist.Workloads[k.Key] = h
		}
		if h.ContainerInputs == nil {
			h.ContainerInputs = map[string]func(time.Duration) recommend.Inputs{}
		}
		h.ContainerInputs[k.Container] = r.inputsOf(s, asOf)
		if cpuOK {
			if h.ContainerCPU == nil {
				h.ContainerCPU = map[string]*history.Usage{}
			}
			h.ContainerCPU[k.Container] = usageOf(cpu)
		}
		if memOK {
			if h.ContainerMemory == nil {
				h.ContainerMemory = map[string]*history.Usage{}
			}
			h.ContainerMemory[k.Container] = usageOf(mem)
		}
	}
}

func usageOf(q recommend.UsageQuantiles) *history.Usage {
	p50, p95, m := q.P50, q.P95, q.Max
	return &history.Usage{P50: &p50, P95: &p95, Max: &m}
}

// stateBytes is the estimated memory of all states, for the benchmark.
func (r *recommender) stateBytes() (states, bytes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.states {
		bytes += s.Bytes()
	}
	return len(r.states), bytes
}
