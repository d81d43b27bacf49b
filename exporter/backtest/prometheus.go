package backtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/history"
)

// SourcePrometheus is the source of traces read from Prometheus.
const SourcePrometheus = "prometheus"

// PrometheusOptions choose the history ReadPrometheus replays.
type PrometheusOptions struct {
	End     time.Time     // the end of the history; zero means now
	History time.Duration // how far back from End; default 14 days
	// Namespaces to read; empty means every namespace with containers at
	// the end of some chunk of the history, so a workload deleted before
	// End is replayed too.
	Namespaces []string
	// BatchContainers bounds the containers read, replayed and held at
	// once (namespaces are read together up to it; a larger namespace is
	// a batch of its own); default 200. A batch holds its containers'
	// samples for the whole history, about 25 KB per container-day.
	BatchContainers int
	// Chunk bounds the history one query reads; default one day.
	Chunk time.Duration
	// Timeout of each query; default two minutes.
	Timeout time.Duration
}

// ReadPrometheus reads the 5-minute windows of every workload container
// (the recommender's window queries, plus the mean working set and the
// requests in force) and hands them to each as traces, one batch of
// namespaces at a time, so that only one batch's history is held at once.
// A trace is one container of a workload (its busiest replica, as the
// exporter sizes it), named namespace/kind/workload/container; its own
// requests, from kube-state-metrics, are the "hand-set" baseline. It
// returns the load the reads put on Prometheus.
func ReadPrometheus(ctx context.Context, q history.Querier, o PrometheusOptions, each func([]Trace) error) (history.WindowStats, error) {
	var st history.WindowStats
	if o.End.IsZero() {
		o.End = time.Now()
	}
	o.History = cmp.Or(o.History, 14*24*time.Hour)
	o.BatchContainers = cmp.Or(o.BatchContainers, 200)
	o.Chunk = cmp.Or(o.Chunk, 24*time.Hour)
	o.Timeout = cmp.Or(o.Timeout, 2*time.Minute)
	switch {
	case o.History < history.WindowStep:
		return st, fmt.Errorf("backtest: History %v is shorter than a window (%v)", o.History, history.WindowStep)
	case o.BatchContainers < 1:
		return st, fmt.Errorf("backtest: BatchContainers %d is not positive", o.BatchContainers)
	case o.Chunk < history.WindowStep:
		return st, fmt.Errorf("backtest: Chunk %v is shorter than a window (%v)", o.Chunk, history.WindowStep)
	case o.Timeout < 0:
		return st, fmt.Errorf("backtest: Timeout %v is negative", o.Timeout)
	}
	// PlanWindows's "now" leaves a minute for the last scrape to land.
	ranges := history.PlanWindows(time.Time{}, o.End.Add(history.Settle), o.History, o.Chunk, history.Settle)
	counts, err := containerCounts(ctx, q, o, ranges, &st)
	if err != nil {
		return st, err
	}
	for _, batch := range history.WindowBatches(counts, o.BatchContainers) {
		// Each chunk's windows become samples at once: a window is larger
		// than a sample, and the chunks come oldest first.
		var b traceBuilder
		for _, r := range ranges {
			got, s, err := history.FetchReplayWindows(ctx, q, batch, r, o.Timeout)
			st.Queries += s.Queries
			st.Series += s.Series
			st.Points += s.Points
			if err != nil {
				return st, fmt.Errorf("backtest: reading %v to %v: %w", r.Start.UTC().Format(time.RFC3339), r.End.UTC().Format(time.RFC3339), err)
			}
			for k, ws := range got {
				b.add(k, ws)
			}
		}
		if err := each(b.traces()); err != nil {
			return st, err
		}
	}
	return st, nil
}

// containerCounts counts the containers of each namespace, to batch
// namespaces: the most it had at the end of any chunk of the history. A
// container that ran for a chunk (a day) or more spans a chunk's end, so
// a workload deleted before End is found; one that lived less than a
// chunk between two ends may be missed, and would have had at most one
// decision. Each count is an instant query, which reads one sample per
// series rather than the history's.
func containerCounts(ctx context.Context, q history.Querier, o PrometheusOptions, ranges []history.Range, st *history.WindowStats) (map[string]int, error) {
	const expr = `count by (namespace) (group by (namespace, pod, container) (container_cpu_usage_seconds_total{container!="",container!="POD"}))`
	counts := map[string]int{}
	for _, r := range ranges {
		at := r.End
		qctx, cancel := context.WithTimeout(ctx, o.Timeout)
		v, _, _, err := q.Query(qctx, expr, at)
		cancel()
		st.Queries++
		if err != nil {
			return nil, fmt.Errorf("backtest: listing namespaces at %s: %w", at.UTC().Format(time.RFC3339), err)
		}
		vec, ok := v.(model.Vector)
		if !ok {
			return nil, fmt.Errorf("backtest: listing namespaces at %s: answer is %s, want a vector", at.UTC().Format(time.RFC3339), v.Type())
		}
		st.Series += len(vec)
		st.Points += len(vec)
		for _, s := range vec {
			if ns := string(s.Metric["namespace"]); ns != "" && !math.IsNaN(float64(s.Value)) {
				counts[ns] = max(counts[ns], int(s.Value))
			}
		}
	}
	if len(o.Namespaces) > 0 {
		asked := map[string]int{}
		for _, ns := range o.Namespaces {
			// A namespace without containers at a chunk's end may
			// still have history.
			asked[ns] = max(counts[ns], 1)
		}
		counts = asked
	}
	if len(counts) == 0 {
		return nil, errors.New("backtest: Prometheus has no container_cpu_usage_seconds_total series with a container label in the history")
	}
	return counts, nil
}

// traceBuilder appends windows, oldest first, to their container's trace.
// Windows without CPU or memory are gaps; the window after a gap, and one
// in which a container started, mark a start (the recommenders leave
// start-up out). A window has only its mean CPU, so CPUMax is that mean; a
// missing mean working set falls back on the peak. Requests not in
// Prometheus are 0: unknown; limits not in it are 0: none. A window without
// any request or limit series while kube-state-metrics has them in others
// is a gap in kube-state-metrics (a restart, a missed scrape), not a
// resize: it keeps the last known ones (none known yet: unknown). The OOM
// kills and throttling are the exporter's reading of the same windows
// (exporter.sampleOf), so that UPID's state is fed what it would be.
type traceBuilder struct {
	byKey map[history.ContainerKey]*Trace
	spec  map[history.ContainerKey]podSpec
}

// podSpec is what a container last had from kube-state-metrics.
type podSpec struct{ cpuReq, memReq, cpuLim, memLim float64 }

// specOf is w's requests and limits, or last's when kube-state-metrics
// has none of them in w. kube-state-metrics exports a container's requests
// and limits in the same scrape, so with one of them present a missing one
// is not set. A container without any (BestEffort) keeps none.
func specOf(w history.ReplayWindow, last podSpec) podSpec {
	if math.IsNaN(w.CPURequest) && math.IsNaN(w.MemoryRequest) && math.IsNaN(w.CPULimit) && math.IsNaN(w.MemoryLimit) {
		return last
	}
	return podSpec{known(w.CPURequest), known(w.MemoryRequest), known(w.CPULimit), known(w.MemoryLimit)}
}

func (b *traceBuilder) add(k history.ContainerKey, ws []history.ReplayWindow) {
	if b.byKey == nil {
		b.byKey, b.spec = map[history.ContainerKey]*Trace{}, map[history.ContainerKey]podSpec{}
	}
	tr := b.byKey[k]
	for _, w := range ws {
		if math.IsNaN(w.CPU) || math.IsNaN(w.MemoryPeak) {
			continue
		}
		if tr == nil {
			tr = &Trace{Name: k.Namespace + "/" + k.Kind + "/" + k.Workload + "/" + k.Container, Source: SourcePrometheus, CoresPerUnit: 1, BytesPerUnit: 1, Workload: k.Key, Observed: true}
			b.byKey[k] = tr
		}
		start := w.End.Add(-history.WindowStep)
		gap := false
		if n := len(tr.Samples); n > 0 {
			gap = !tr.Samples[n-1].Time.Add(history.WindowStep).Equal(start)
		}
		mean := w.MemoryMean
		if math.IsNaN(mean) || mean > w.MemoryPeak {
			mean = w.MemoryPeak
		}
		sp := specOf(w, b.spec[k])
		b.spec[k] = sp
		s := Sample{
			Time: start, Duration: history.WindowStep,
			CPU: w.CPU, CPUMax: w.CPU, Memory: mean, MemoryMax: w.MemoryPeak,
			CPURequest: sp.cpuReq, MemoryRequest: sp.memReq, CPULimit: sp.cpuLim, MemoryLimit: sp.memLim,
			OOMKill: w.OOMKills >= 0.5, Start: w.Start || gap,
		}
		if s.OOMKill {
			s.OOMMemoryLimit = known(w.OOMMemoryLimit)
		}
		if w.Periods > 0 && w.Throttled >= 0 {
			s.ThrottledPeriods, s.Periods = w.Throttled, w.Periods
		}
		tr.Samples = append(tr.Samples, s)
	}
}

func (b *traceBuilder) traces() []Trace {
	out := make([]Trace, 0, len(b.byKey))
	for _, tr := range b.byKey {
		out = append(out, *tr)
	}
	slices.SortFunc(out, func(a, b Trace) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func known(x float64) float64 {
	if math.IsNaN(x) || x < 0 {
		return 0
	}
	return x
}
