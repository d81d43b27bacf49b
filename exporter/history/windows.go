package history

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// WindowStep is the length of the usage windows the recommender's state is
// fed with: each is one rate() over 5 minutes, which at a 15 s scrape reads
// every raw sample of a container about once. Longer would blur the CPU
// distribution; shorter would read samples twice.
const WindowStep = 5 * time.Minute

// ContainerKey names a container of a workload, as the window queries
// label it.
type ContainerKey struct {
	Key
	Container string
}

// Window is what Prometheus holds about one container of a workload over
// the 5 minutes ending at End, the largest value over the workload's pods
// (the busiest replica sizes the request). NaN means no series: unknown.
type Window struct {
	End        time.Time
	CPU        float64 // mean cores
	MemoryPeak float64 // highest working set, bytes
	// Throttled and Periods are the increases of the CFS counters; NaN
	// without a CPU limit.
	Throttled, Periods float64
	OOMKills           float64 // increase of container_oom_events_total since the previous window
	// OOMMemoryLimit is the largest memory limit of the pods killed in the
	// window (kube_pod_container_resource_limits), bytes: what the kill
	// says was too little, which the template's limit is not once it has
	// been raised since. NaN without a kill or without the series.
	OOMMemoryLimit float64
	Start          bool // a replica's container started in the window
}

func unknownWindow(end time.Time) *Window {
	nan := math.NaN()
	return &Window{End: end, CPU: nan, MemoryPeak: nan, Throttled: nan, Periods: nan, OOMKills: nan, OOMMemoryLimit: nan}
}

// Range is a span (Start, End] of whole windows, both multiples of WindowStep.
type Range struct{ Start, End time.Time }

// Windows is the number of windows in the range.
func (r Range) Windows() int { return int(r.End.Sub(r.Start) / WindowStep) }

// Settle is how long after a window ends it is taken as complete by
// default: the last scrape of the window must have been ingested, and one
// scrape interval plus ingestion is well under a minute in Prometheus
// (exporter.recommender.settle raises it for a remote-write backend).
const Settle = time.Minute

// PlanWindows returns the ranges to fetch at now given that every window
// up to through has been fetched (zero: nothing yet), for a state that
// covers window. Only complete windows, ended settle ago, are fetched. When through is older
// than the window (first run, or a gap longer than the window) the whole
// window is fetched again, since the state cannot hold anything older; the
// ranges are at most chunk long, oldest first, so a backfill is many
// small queries rather than one that reads the whole window at once.
func PlanWindows(through, now time.Time, window, chunk, settle time.Duration) []Range {
	end := now.Add(-settle).Truncate(WindowStep)
	if chunk < WindowStep {
		chunk = WindowStep
	}
	chunk = chunk.Truncate(WindowStep)
	start := end.Add(-window.Truncate(WindowStep))
	if t := through.Truncate(WindowStep); !through.IsZero() && t.After(start) {
		start = t
	}
	var out []Range
	for s := start; s.Before(end); s = s.Add(chunk) {
		e := s.Add(chunk)
		if e.After(end) {
			e = end
		}
		out = append(out, Range{Start: s, End: e})
	}
	return out
}

// windowSubquery returns the shape every window query shares: sub wraps a
// per-pod expression into the per-workload-container subquery over r, and
// sel adds the container and namespace matchers to a metric selector.
func windowSubquery(namespaces []string, r Range) (sub func(perPod string) string, sel func(metric string) string) {
	quoted := make([]string, len(namespaces))
	for i, ns := range namespaces {
		quoted[i] = regexp.QuoteMeta(ns)
	}
	m := fmt.Sprintf("namespace=~%q", strings.Join(quoted, "|"))
	owner := ownerExpr("", m)
	step := dur(WindowStep)
	// The range is a second short of the span: Prometheus 2 includes a
	// subquery's first step (a window already read) and Prometheus 3 does
	// not; a second less gives the span's windows on both.
	rng := dur(r.End.Sub(r.Start) - time.Second)
	sub = func(perPod string) string {
		return fmt.Sprintf("(\n%s\n)[%s:%s]", byWorkload("max", perPod, owner, "container"), rng, step)
	}
	sel = func(metric string) string {
		if strings.HasSuffix(metric, "}") {
			return fmt.Sprintf(`%s,container!="",container!="POD",%s}`, metric[:len(metric)-1], m)
		}
		return fmt.Sprintf(`%s{container!="",container!="POD",%s}`, metric, m)
	}
	return sub, sel
}

// WindowQueries are the queries that fetch the windows of range r for the
// workloads of the given namespaces. Each is a subquery at step WindowStep
// evaluated at r.End, so the Querier stays the instant-query API and the
// demo's embedded engine runs them as a server would; each answers one
// series per workload container, never per pod.
func WindowQueries(namespaces []string, r Range) []Query {
	sub, sel := windowSubquery(namespaces, r)
	step := dur(WindowStep)
	// An OOM kill is one increment of a counter: increase() over
	// back-to-back windows misses the one between a window's last
	// scrape and the next window's first, so the delta is taken
	// between window ends instead. A container new in the window
	// counts from zero; a reset (a new container) is not a kill.
	// kube-state-metrics tells of kills cAdvisor may not count (a
	// runtime without the oom event, a kill of the whole cgroup):
	// restarts in the window while the last termination was an
	// OOMKill. Both report the same kill, so the larger counts.
	oomKills := fmt.Sprintf(`max by (namespace, pod, container) (
  label_replace(clamp_min(
    max by (namespace, pod, container) (%[1]s)
    - (max by (namespace, pod, container) (%[1]s offset %[2]s) or max by (namespace, pod, container) (%[1]s) * 0),
    0), "source", "cadvisor", "", "")
  or
  label_replace(clamp_min(
    max by (namespace, pod, container) (%[3]s) - max by (namespace, pod, container) (%[3]s offset %[2]s),
    0)
    and on (namespace, pod, container) max by (namespace, pod, container) (%[4]s == 1),
    "source", "kube_state_metrics", "", "")
)`, sel("container_oom_events_total"), step, sel("kube_pod_container_status_restarts_total"), sel(`kube_pod_container_status_last_terminated_reason{reason="OOMKilled"}`))
	// One container has one series per source, and sources repeat (the
	// kubelet's /metrics/resource exports CPU and memory again; a
	// restarted container's old cgroup lingers): per container it is the
	// largest, never the sum.
	return []Query{
		{"window_cpu_cores", sub(fmt.Sprintf("max by (namespace, pod, container) (rate(%s[%s]))", sel("container_cpu_usage_seconds_total"), step))},
		{"window_memory_peak_bytes", sub(fmt.Sprintf("max by (namespace, pod, container) (max_over_time(%s[%s]))", sel("container_memory_working_set_bytes"), step))},
		{"window_cpu_throttled_periods", sub(fmt.Sprintf("max by (namespace, pod, container) (increase(%s[%s]))", sel("container_cpu_cfs_throttled_periods_total"), step))},
		{"window_cpu_periods", sub(fmt.Sprintf("max by (namespace, pod, container) (increase(%s[%s]))", sel("container_cpu_cfs_periods_total"), step))},
		{"window_oom_kills", sub(oomKills)},
		// The pods the kill hit, with their limit then.
		{"window_oom_memory_limit_bytes", sub(fmt.Sprintf("(max by (namespace, pod, container) (%s) and on (namespace, pod, container) (%s > 0))",
			sel(`kube_pod_container_resource_limits{resource="memory"}`), oomKills))},
		// time() inside a subquery is the step's time: a start time within
		// the step's window marks a start there. One sample per container.
		{"window_container_starts", sub(fmt.Sprintf("max by (namespace, pod, container) (%s > time() - %d)", sel("container_start_time_seconds"), int(WindowStep.Seconds())))},
	}
}

// WindowStats is the load a fetch put on Prometheus, as the answers show
// it: series and points returned.
type WindowStats struct {
	Queries int `json:"queries"`
	Series  int `json:"series"`
	Points  int `json:"points"`
}

// FetchWindows runs WindowQueries for range r, one query after the other,
// and returns the windows by container, oldest first. Any failed query
// fails the whole range (and the caller fetches it again later): a range
// with CPU but no memory would feed the state half a picture for good.
// Containers Prometheus returned nothing for are absent: unknown.
func FetchWindows(ctx context.Context, q Querier, namespaces []string, r Range, timeout time.Duration) (map[ContainerKey][]Window, WindowStats, error) {
	return fetchWindows(ctx, q, WindowQueries(namespaces, r), namespaces, r, timeout, unknownWindow, setWindow)
}

// setWindow records a query's value for a window. The queries aggregate
// with max by container, so one series answers per window; should a
// backend answer two (a misbehaving proxy or federation), the larger
// counts, as the busiest replica does, rather than the last one read.
func setWindow(w *Window, query string, x float64) {
	switch query {
	case "window_cpu_cores":
		w.CPU = larger(w.CPU, x)
	case "window_memory_peak_bytes":
		w.MemoryPeak = larger(w.MemoryPeak, x)
	case "window_cpu_throttled_periods":
		w.Throttled = larger(w.Throttled, x)
	case "window_cpu_periods":
		w.Periods = larger(w.Periods, x)
	case "window_oom_kills":
		w.OOMKills = larger(w.OOMKills, x)
	case "window_oom_memory_limit_bytes":
		w.OOMMemoryLimit = larger(w.OOMMemoryLimit, x)
	case "window_container_starts":
		w.Start = true
	}
}

// larger is the larger of a recorded value (NaN: none yet) and x.
func larger(v, x float64) float64 {
	if math.IsNaN(v) || x > v {
		return x
	}
	return v
}

// ReplayWindow is a Window with what a replay of the history (upid
// backtest) needs besides: the mean working set, for memory slack, and
// the requests and limits in force, the "hand-set" baseline. NaN means no
// series: for a limit, no limit when the requests are known (kube-state-
// metrics exports no series for a resource without one), unknown when
// they are not either.
type ReplayWindow struct {
	Window
	MemoryMean                float64 // mean working set, bytes
	CPURequest, MemoryRequest float64 // the largest over the pods, cores and bytes
	// The memory limit decides whether a peak is an OOM kill for the
	// hand-set; the CPU limit whether throttling censored the usage UPID
	// sizes from. The largest over the pods, cores and bytes.
	CPULimit, MemoryLimit float64
}

// ReplayQueries are WindowQueries and the queries of ReplayWindow's extra
// fields, shaped the same way.
func ReplayQueries(namespaces []string, r Range) []Query {
	qs := WindowQueries(namespaces, r)
	sub, sel := windowSubquery(namespaces, r)
	step := dur(WindowStep)
	spec := func(metric, resource string) string {
		return sub(fmt.Sprintf("max by (namespace, pod, container) (%s)", sel(fmt.Sprintf(`%s{resource=%q}`, metric, resource))))
	}
	return append(qs,
		Query{"window_memory_mean_bytes", sub(fmt.Sprintf("max by (namespace, pod, container) (avg_over_time(%s[%s]))", sel("container_memory_working_set_bytes"), step))},
		Query{"window_cpu_request_cores", spec("kube_pod_container_resource_requests", "cpu")},
		Query{"window_memory_request_bytes", spec("kube_pod_container_resource_requests", "memory")},
		Query{"window_cpu_limit_cores", spec("kube_pod_container_resource_limits", "cpu")},
		Query{"window_memory_limit_bytes", spec("kube_pod_container_resource_limits", "memory")},
	)
}

// FetchReplayWindows is FetchWindows with ReplayQueries.
func FetchReplayWindows(ctx context.Context, q Querier, namespaces []string, r Range, timeout time.Duration) (map[ContainerKey][]ReplayWindow, WindowStats, error) {
	unknown := func(end time.Time) *ReplayWindow {
		nan := math.NaN()
		return &ReplayWindow{Window: *unknownWindow(end), MemoryMean: nan, CPURequest: nan, MemoryRequest: nan, CPULimit: nan, MemoryLimit: nan}
	}
	set := func(w *ReplayWindow, query string, x float64) {
		switch query {
		case "window_memory_mean_bytes":
			w.MemoryMean = x
		case "window_cpu_request_cores":
			w.CPURequest = x
		case "window_memory_request_bytes":
			w.MemoryRequest = x
		case "window_cpu_limit_cores":
			// The larger of two answers, as setWindow keeps it.
			w.CPULimit = larger(w.CPULimit, x)
		case "window_memory_limit_bytes":
			w.MemoryLimit = larger(w.MemoryLimit, x)
		default:
			setWindow(&w.Window, query, x)
		}
	}
	return fetchWindows(ctx, q, ReplayQueries(namespaces, r), namespaces, r, timeout, unknown, set)
}

func fetchWindows[W any](ctx context.Context, q Querier, queries []Query, namespaces []string, r Range, timeout time.Duration,
	unknown func(end time.Time) *W, set func(w *W, query string, x float64)) (map[ContainerKey][]W, WindowStats, error) {
	var st WindowStats
	if len(namespaces) == 0 || !r.End.After(r.Start) {
		return nil, st, nil
	}
	n := r.Windows()
	byKey := map[ContainerKey][]*W{}
	get := func(k ContainerKey, i int) *W {
		ws := byKey[k]
		if ws == nil {
			ws = make([]*W, n)
			byKey[k] = ws
		}
		if ws[i] == nil {
			ws[i] = unknown(r.Start.Add(time.Duration(i+1) * WindowStep))
		}
		return ws[i]
	}
	var errs []error
	for _, qu := range queries {
		qctx, cancel := context.WithTimeout(ctx, timeout)
		v, _, _, err := q.Query(qctx, qu.Expr, r.End, v1.WithTimeout(timeout))
		cancel()
		st.Queries++
		if err != nil {
			errs = append(errs, fmt.Errorf("%s for namespaces %s…: %w", qu.Name, namespaces[0], err))
			continue
		}
		mat, ok := v.(model.Matrix)
		if !ok {
			errs = append(errs, fmt.Errorf("%s for namespaces %s…: answer is %s, want a matrix", qu.Name, namespaces[0], v.Type()))
			continue
		}
		st.Series += len(mat)
		for _, ss := range mat {
			k := ContainerKey{Key: Key{Namespace: string(ss.Metric["namespace"]), Kind: string(ss.Metric["kind"]), Workload: string(ss.Metric["workload"])}, Container: string(ss.Metric["container"])}
			st.Points += len(ss.Values)
			if k.Namespace == "" || k.Workload == "" || k.Container == "" {
				continue
			}
			for _, p := range ss.Values {
				// A point at t is the window (t-step, t].
				d := p.Timestamp.Time().Sub(r.Start)
				if d <= 0 || d%WindowStep != 0 || d > r.End.Sub(r.Start) {
					continue
				}
				x := float64(p.Value)
				if math.IsNaN(x) || math.IsInf(x, 0) {
					continue
				}
				set(get(k, int(d/WindowStep)-1), qu.Name, x)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, st, err
	}
	out := make(map[ContainerKey][]W, len(byKey))
	for k, ws := range byKey {
		dense := make([]W, 0, len(ws))
		for _, w := range ws {
			if w != nil {
				dense = append(dense, *w)
			}
		}
		out[k] = dense
	}
	return out, st, nil
}

// WindowBatches groups namespaces so that each batch's queries answer
// about limit series (workload containers); a namespace with more is a
// batch of its own. Namespaces come sorted so that batches are stable
// across cycles.
func WindowBatches(containers map[string]int, limit int) [][]string {
	names := make([]string, 0, len(containers))
	for ns := range containers {
		names = append(names, ns)
	}
	sort.Strings(names)
	var out [][]string
	var cur []string
	n := 0
	for _, ns := range names {
		if len(cur) > 0 && n+containers[ns] > limit {
			out = append(out, cur)
			cur, n = nil, 0
		}
		cur = append(cur, ns)
		n += containers[ns]
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}
