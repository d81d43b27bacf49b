package history

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

func TestPlanWindows(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04:05", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	r := func(a, b string) Range { return Range{at(a), at(b)} }
	day := 24 * time.Hour
	for _, tc := range []struct {
		name    string
		through string // "" for never
		now     string
		window  time.Duration
		chunk   time.Duration
		settle  time.Duration // 0: Settle
		want    []Range
	}{
		{
			name: "first run backfills the window in day chunks, oldest first",
			now:  "2026-03-10 12:03:00", window: 2 * day, chunk: day,
			want: []Range{r("2026-03-08 12:00:00", "2026-03-09 12:00:00"), r("2026-03-09 12:00:00", "2026-03-10 12:00:00")},
		},
		{
			name: "a window not a multiple of the chunk ends with a short chunk",
			now:  "2026-03-10 12:03:00", window: 36 * time.Hour, chunk: day,
			want: []Range{r("2026-03-09 00:00:00", "2026-03-10 00:00:00"), r("2026-03-10 00:00:00", "2026-03-10 12:00:00")},
		},
		{
			name:    "a cycle later only the windows completed since",
			through: "2026-03-10 12:00:00", now: "2026-03-10 12:08:00", window: 14 * day, chunk: day,
			want: []Range{r("2026-03-10 12:00:00", "2026-03-10 12:05:00")},
		},
		{
			name:    "the window still being scraped waits for the next cycle",
			through: "2026-03-10 12:00:00", now: "2026-03-10 12:05:30", window: 14 * day, chunk: day,
			want: nil,
		},
		{
			name:    "a window ends; it is read once Settle has passed",
			through: "2026-03-10 12:00:00", now: "2026-03-10 12:06:00", window: 14 * day, chunk: day,
			want: []Range{r("2026-03-10 12:00:00", "2026-03-10 12:05:00")},
		},
		{
			name:    "a remote-write backend's settle waits for its ingestion",
			through: "2026-03-10 12:00:00", now: "2026-03-10 12:06:00", window: 14 * day, chunk: day, settle: 3 * time.Minute,
			want: nil,
		},
		{
			name:    "and reads the window once it has passed",
			through: "2026-03-10 12:00:00", now: "2026-03-10 12:08:00", window: 14 * day, chunk: day, settle: 3 * time.Minute,
			want: []Range{r("2026-03-10 12:00:00", "2026-03-10 12:05:00")},
		},
		{
			name:    "a gap of hours is read in one range",
			through: "2026-03-10 09:00:00", now: "2026-03-10 12:03:00", window: 14 * day, chunk: day,
			want: []Range{r("2026-03-10 09:00:00", "2026-03-10 12:00:00")},
		},
		{
			name:    "a gap longer than a chunk is read in chunks",
			through: "2026-03-08 09:00:00", now: "2026-03-10 12:03:00", window: 14 * day, chunk: day,
			want: []Range{r("2026-03-08 09:00:00", "2026-03-09 09:00:00"), r("2026-03-09 09:00:00", "2026-03-10 09:00:00"), r("2026-03-10 09:00:00", "2026-03-10 12:00:00")},
		},
		{
			name:    "a gap longer than the window reads the window only",
			through: "2026-02-01 00:00:00", now: "2026-03-10 12:03:00", window: day, chunk: day,
			want: []Range{r("2026-03-09 12:00:00", "2026-03-10 12:00:00")},
		},
		{
			name:    "an unaligned cursor is aligned down, rereading at most a window",
			through: "2026-03-10 11:57:10", now: "2026-03-10 12:03:00", window: day, chunk: day,
			want: []Range{r("2026-03-10 11:55:00", "2026-03-10 12:00:00")},
		},
		{
			name:    "a chunk shorter than a window counts as one window",
			through: "2026-03-10 11:50:00", now: "2026-03-10 12:03:00", window: day, chunk: time.Second,
			want: []Range{r("2026-03-10 11:50:00", "2026-03-10 11:55:00"), r("2026-03-10 11:55:00", "2026-03-10 12:00:00")},
		},
		{
			name:    "a cursor in the future reads nothing",
			through: "2026-03-10 13:00:00", now: "2026-03-10 12:03:00", window: day, chunk: day,
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var through time.Time
			if tc.through != "" {
				through = at(tc.through)
			}
			settle := tc.settle
			if settle == 0 {
				settle = Settle
			}
			got := PlanWindows(through, at(tc.now), tc.window, tc.chunk, settle)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("PlanWindows = %v, want %v", got, tc.want)
			}
			for _, g := range got {
				if g.End.Sub(g.Start) > max(tc.chunk, WindowStep) || g.Windows() < 1 {
					t.Errorf("range %v breaks the chunk %s", g, tc.chunk)
				}
			}
		})
	}
}

func TestWindowBatches(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    map[string]int
		limit int
		want  [][]string
	}{
		{"all fit", map[string]int{"b": 2, "a": 3}, 10, [][]string{{"a", "b"}}},
		{"split at the limit", map[string]int{"a": 4, "b": 4, "c": 4}, 8, [][]string{{"a", "b"}, {"c"}}},
		{"a namespace larger than the limit is alone", map[string]int{"a": 1, "big": 50, "c": 1}, 10, [][]string{{"a"}, {"big"}, {"c"}}},
		{"nothing", map[string]int{}, 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := WindowBatches(tc.in, tc.limit); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("WindowBatches = %v, want %v", got, tc.want)
			}
		})
	}
}

// matrixQuerier answers each window query by name with a canned matrix.
type matrixQuerier struct {
	answers map[string]model.Matrix
	fail    string
	asked   []string
}

func (q *matrixQuerier) Query(_ context.Context, query string, _ time.Time, _ ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	for _, name := range []string{"rate(container_cpu_usage", "max_over_time(container_memory", "container_cpu_cfs_throttled", "container_cpu_cfs_periods", "kube_pod_container_resource_limits", "container_oom_events", "container_start_time"} {
		if strings.Contains(query, name) {
			q.asked = append(q.asked, name)
			if name == q.fail {
				return nil, nil, nil, errors.New("boom")
			}
			return q.answers[name], nil, nil, nil
		}
	}
	return nil, nil, nil, errors.New("unexpected query " + query)
}

func TestFetchWindows(t *testing.T) {
	start := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	rg := Range{start, start.Add(3 * WindowStep)}
	lbl := model.Metric{"namespace": "shop", "kind": "Deployment", "workload": "api", "container": "app"}
	pt := func(i int, v float64) model.SamplePair {
		return model.SamplePair{Timestamp: model.TimeFromUnixNano(start.Add(time.Duration(i) * WindowStep).UnixNano()), Value: model.SampleValue(v)}
	}
	answers := map[string]model.Matrix{
		// The point at the range's start is the window before it (a
		// closed subquery range includes it): it must be dropped.
		"rate(container_cpu_usage": {{Metric: lbl, Values: []model.SamplePair{pt(0, 9), pt(1, 0.5), pt(3, 0.7)}}},
		// A second series of the same container (a federation or proxy
		// that did not deduplicate): the larger value counts, whichever
		// comes last.
		"max_over_time(container_memory": {{Metric: lbl, Values: []model.SamplePair{pt(1, 100), pt(2, 200), pt(3, math.NaN())}},
			{Metric: model.Metric{"namespace": "shop", "kind": "Deployment", "workload": "api", "container": "app", "replica": "b"}, Values: []model.SamplePair{pt(1, 50), pt(2, 300)}}},
		"container_cpu_cfs_periods": {{Metric: lbl, Values: []model.SamplePair{pt(2, 3000)}}},
		"container_oom_events":      {{Metric: lbl, Values: []model.SamplePair{pt(2, 1)}}},
		// The limit query holds the kill query too: matched first.
		"kube_pod_container_resource_limits": {{Metric: lbl, Values: []model.SamplePair{pt(2, 600)}}},
		"container_start_time":               {{Metric: lbl, Values: []model.SamplePair{pt(1, 1)}}, {Metric: model.Metric{"namespace": "shop", "workload": "x"}, Values: []model.SamplePair{pt(1, 1)}}},
	}
	q := &matrixQuerier{answers: answers}
	got, st, err := FetchWindows(context.Background(), q, []string{"shop"}, rg, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	k := ContainerKey{Key{"shop", "Deployment", "api"}, "app"}
	if len(got) != 1 || len(got[k]) != 3 {
		t.Fatalf("got %v, want three windows of shop/api/app", got)
	}
	ws := got[k]
	nan := math.NaN()
	want := []Window{
		{End: start.Add(WindowStep), CPU: 0.5, MemoryPeak: 100, Throttled: nan, Periods: nan, OOMKills: nan, OOMMemoryLimit: nan, Start: true},
		{End: start.Add(2 * WindowStep), CPU: nan, MemoryPeak: 300, Throttled: nan, Periods: 3000, OOMKills: 1, OOMMemoryLimit: 600},
		{End: start.Add(3 * WindowStep), CPU: 0.7, MemoryPeak: nan, Throttled: nan, Periods: nan, OOMKills: nan, OOMMemoryLimit: nan},
	}
	same := func(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }
	for i, w := range want {
		g := ws[i]
		if !g.End.Equal(w.End) || !same(g.CPU, w.CPU) || !same(g.MemoryPeak, w.MemoryPeak) || !same(g.Throttled, w.Throttled) ||
			!same(g.Periods, w.Periods) || !same(g.OOMKills, w.OOMKills) || !same(g.OOMMemoryLimit, w.OOMMemoryLimit) || g.Start != w.Start {
			t.Errorf("window %d = %+v, want %+v", i, g, w)
		}
	}
	if st.Queries != 7 || st.Series != 8 || st.Points != 13 {
		t.Errorf("stats %+v, want 7 queries, 8 series and 13 points: all Prometheus sent", st)
	}

	// One failed query fails the range: half a window must not be observed.
	q = &matrixQuerier{answers: answers, fail: "container_cpu_cfs_periods"}
	if got, _, err := FetchWindows(context.Background(), q, []string{"shop"}, rg, time.Second); err == nil || got != nil {
		t.Errorf("a failed query gave %v, %v; want an error and nothing", got, err)
	}
	// Nothing from Prometheus is nothing, not zeros.
	q = &matrixQuerier{answers: map[string]model.Matrix{}}
	if got, _, err := FetchWindows(context.Background(), q, []string{"shop"}, rg, time.Second); err != nil || len(got) != 0 {
		t.Errorf("empty answers gave %v, %v; want no windows", got, err)
	}
}

func TestWindowQueriesBatchNamespaces(t *testing.T) {
	rg := Range{time.Unix(0, 0), time.Unix(3600, 0)}
	qs := WindowQueries([]string{"a.b", "c"}, rg)
	replay := ReplayQueries([]string{"a.b", "c"}, rg)
	if len(qs) != 7 || len(replay) != 12 {
		t.Fatalf("%d and %d queries, want 7 and 12", len(qs), len(replay))
	}
	for i, q := range qs {
		if replay[i] != q {
			t.Errorf("replay query %d is %s, want the recommender's %s", i, replay[i].Name, q.Name)
		}
	}
	for _, q := range replay {
		if !strings.Contains(q.Expr, `namespace=~"a\\.b|c"`) || !strings.Contains(q.Expr, "[59m59s:5m]") {
			t.Errorf("%s does not select the batch's namespaces over the range at 5m:\n%s", q.Name, q.Expr)
		}
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(q.Expr)
		if err != nil {
			t.Errorf("%s does not parse: %v\n%s", q.Name, err, q.Expr)
			continue
		}
		if sq, ok := expr.(*parser.SubqueryExpr); !ok || sq.Step != WindowStep || sq.Range != time.Hour-time.Second {
			t.Errorf("%s is not a subquery of the range at 5m: %s", q.Name, q.Expr)
		}
	}
}

// exprQuerier answers each query by its exact expression.
type exprQuerier map[string]model.Matrix

func (q exprQuerier) Query(_ context.Context, query string, _ time.Time, _ ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	m, ok := q[query]
	if !ok {
		return nil, nil, nil, errors.New("unexpected query " + query)
	}
	return m, nil, nil, nil
}

// TestFetchReplayWindowsUsesEveryAnswer: each replay query's answer lands
// in a field of its own, so no query is sent for an answer thrown away.
func TestFetchReplayWindowsUsesEveryAnswer(t *testing.T) {
	start := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	rg := Range{start, start.Add(WindowStep)}
	lbl := model.Metric{"namespace": "shop", "kind": "Deployment", "workload": "api", "container": "app"}
	q := exprQuerier{}
	value := map[string]float64{}
	for i, qu := range ReplayQueries([]string{"shop"}, rg) {
		// Distinct values, so that each field tells which answer it holds.
		value[qu.Name] = float64(i + 1)
		q[qu.Expr] = model.Matrix{{Metric: lbl, Values: []model.SamplePair{{Timestamp: model.TimeFromUnixNano(rg.End.UnixNano()), Value: model.SampleValue(i + 1)}}}}
	}
	got, _, err := FetchReplayWindows(context.Background(), q, []string{"shop"}, rg, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ws := got[ContainerKey{Key{"shop", "Deployment", "api"}, "app"}]
	if len(ws) != 1 {
		t.Fatalf("windows %+v, want one", got)
	}
	w := ws[0]
	fields := map[string]float64{
		"window_cpu_cores": w.CPU, "window_memory_peak_bytes": w.MemoryPeak, "window_cpu_throttled_periods": w.Throttled,
		"window_cpu_periods": w.Periods, "window_oom_kills": w.OOMKills, "window_oom_memory_limit_bytes": w.OOMMemoryLimit,
		"window_memory_mean_bytes": w.MemoryMean, "window_cpu_request_cores": w.CPURequest, "window_memory_request_bytes": w.MemoryRequest,
		"window_cpu_limit_cores": w.CPULimit, "window_memory_limit_bytes": w.MemoryLimit,
	}
	for name, v := range value {
		if name == "window_container_starts" {
			if !w.Start {
				t.Errorf("%s answered, the window is not a start", name)
			}
			continue
		}
		if f, ok := fields[name]; !ok || f != v {
			t.Errorf("%s answered %v; the window holds %v (a field of its own: %v)", name, v, f, ok)
		}
	}
	if len(value) != len(fields)+1 {
		t.Errorf("%d replay queries for %d window fields and the start", len(value), len(fields))
	}
}

// FuzzFetchWindows feeds FetchWindows answers with arbitrary timestamps,
// values and labels, as a misbehaving Prometheus-compatible server could
// send them: nothing may panic, every window kept must lie in the range on
// the 5-minute grid, once, in order, and a missing label drops the series.
func FuzzFetchWindows(f *testing.F) {
	f.Add(int64(300_000), 0.5, int64(600_000), 1e9, "app", uint8(0))
	f.Add(int64(0), math.NaN(), int64(-300_000), math.Inf(1), "", uint8(3))
	f.Add(int64(299_999), -1.0, int64(1<<40), 1e308, "x", uint8(5))
	f.Fuzz(func(t *testing.T, ts1 int64, v1 float64, ts2 int64, v2 float64, container string, which uint8) {
		start := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		rg := Range{start, start.Add(12 * WindowStep)}
		base := start.UnixMilli()
		lbl := model.Metric{"namespace": "shop", "kind": "Deployment", "workload": "api", "container": model.LabelValue(container)}
		ss := &model.SampleStream{Metric: lbl, Values: []model.SamplePair{
			{Timestamp: model.Time(base + ts1), Value: model.SampleValue(v1)},
			{Timestamp: model.Time(base + ts2), Value: model.SampleValue(v2)},
		}}
		names := []string{"rate(container_cpu_usage", "max_over_time(container_memory", "container_cpu_cfs_throttled", "container_cpu_cfs_periods", "container_oom_events", "container_start_time"}
		q := &matrixQuerier{answers: map[string]model.Matrix{names[int(which)%len(names)]: {ss}, names[0]: {ss}}}
		got, _, err := FetchWindows(context.Background(), q, []string{"shop"}, rg, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if container == "" && len(got) != 0 {
			t.Fatalf("a series without a container label was kept: %v", got)
		}
		for _, ws := range got {
			if len(ws) > rg.Windows() {
				t.Fatalf("%d windows in a range of %d", len(ws), rg.Windows())
			}
			for i, w := range ws {
				if !w.End.After(rg.Start) || w.End.After(rg.End) || w.End.Sub(rg.Start)%WindowStep != 0 {
					t.Fatalf("window ending %s outside %v or off the grid", w.End, rg)
				}
				if i > 0 && !w.End.After(ws[i-1].End) {
					t.Fatalf("windows out of order: %v", ws)
				}
				for _, x := range []float64{w.CPU, w.MemoryPeak, w.Throttled, w.Periods, w.OOMKills} {
					if math.IsInf(x, 0) {
						t.Fatalf("an infinite value was kept: %+v", w)
					}
				}
			}
		}
	})
}
