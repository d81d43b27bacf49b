package exporter

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/recommend"
	"github.com/upid-dev/upid/internal/config"
)

// TestRecommenderLifecycle walks the recommender through a paced
// backfill, steady cycles, a failed read, a workload leaving, and a gap
// longer than the window, against windowServer (a fake answering the
// window queries with one point per window and container): containers get
// inputs only once their namespace's whole window has been read, and the
// state follows the inventory. The real-Prometheus path is
// TestRecommenderMatchesOfflineState.
func TestRecommenderLifecycle(t *testing.T) {
	ws := &windowServer{perNS: 2}
	q := windowAPI(t, ws)
	window := 2 * 24 * time.Hour
	// A budget of a nanosecond: one backfill chunk (a day) per cycle.
	r := newRecommender(recommend.DefaultPolicy(), window, 24*time.Hour, time.Nanosecond, time.Minute, 2000, slog.New(slog.NewTextHandler(io.Discard, nil)))
	workload := func(ns, name string) inventory.Workload {
		return inventory.Workload{ID: inventory.ID{Namespace: ns, Kind: "Deployment", Name: name}, Containers: []inventory.Container{{Name: "app"}, {Name: "sidecar"}, {Name: "init", Init: true}}}
	}
	inv := inventory.Snapshot{Workloads: []inventory.Workload{workload("a", "w0"), workload("a", "w1"), workload("b", "w0")}}
	ctx := context.Background()
	now := time.Date(2026, 3, 20, 12, 3, 0, 0, time.UTC)
	inputs := func() map[history.ContainerKey]recommend.Inputs {
		hist := &history.Snapshot{Workloads: map[history.Key]*history.Workload{}}
		r.fill(hist, now)
		out := map[history.ContainerKey]recommend.Inputs{}
		for k, w := range hist.Workloads {
			for c, in := range w.ContainerInputs {
				out[history.ContainerKey{Key: k, Container: c}] = in(0)
			}
		}
		return out
	}
	step := func(name string, wantInputs int, wantPending float64) {
		t.Helper()
		if got := len(inputs()); got != wantInputs {
			t.Errorf("%s: %d containers with inputs, want %d", name, got, wantInputs)
		}
		if got := testutil.ToFloat64(r.pending); got != wantPending {
			t.Errorf("%s: %v namespaces pending, want %v", name, got, wantPending)
		}
	}

	// Cycle 1: one day of the two-day window read; nothing is ready, as a
	// recommendation from half the window would be sized on part of it.
	if err := r.update(ctx, q, inv, now); err != nil {
		t.Fatal(err)
	}
	step("first cycle", 0, 2)
	if len(r.states) != 6 {
		t.Errorf("%d states, want 6 (init containers get none)", len(r.states))
	}
	// Cycle 2: the second day; both namespaces are ready.
	now = now.Add(5 * time.Minute)
	if err := r.update(ctx, q, inv, now); err != nil {
		t.Fatal(err)
	}
	step("second cycle", 6, 0)
	for k, in := range inputs() {
		if in.Coverage < 0.99 || in.CPU == nil {
			t.Errorf("%v: coverage %v, CPU %v after the backfill", k, in.Coverage, in.CPU)
		}
	}

	// A steady cycle reads one range per batch: one set of queries.
	perRange := int64(len(history.WindowQueries(nil, history.Range{})))
	before := ws.asked.Load()
	now = now.Add(5 * time.Minute)
	if err := r.update(ctx, q, inv, now); err != nil {
		t.Fatal(err)
	}
	if n := ws.asked.Load() - before; n != perRange {
		t.Errorf("a steady cycle sent %d queries, want %d (one batch of both namespaces)", n, perRange)
	}

	// A failed read: the error is returned, the cursor stays, the states
	// still answer; the next cycle reads the missed windows too.
	through := r.through["a"]
	ws.fail.Store(true)
	now = now.Add(5 * time.Minute)
	if err := r.update(ctx, q, inv, now); err == nil {
		t.Error("a failed read returned no error")
	}
	if !r.through["a"].Equal(through) || testutil.ToFloat64(r.failures) != 1 {
		t.Errorf("after a failure: read through %s (was %s), %v failures", r.through["a"], through, testutil.ToFloat64(r.failures))
	}
	step("failed read", 6, 0)
	ws.fail.Store(false)
	now = now.Add(5 * time.Minute)
	if err := r.update(ctx, q, inv, now); err != nil {
		t.Fatal(err)
	}
	if want := now.Add(-history.Settle).Truncate(history.WindowStep); !r.through["a"].Equal(want) {
		t.Errorf("after recovering: read through %s, want %s", r.through["a"], want)
	}

	// A workload leaves: its states go; a namespace leaves: its cursor too.
	inv.Workloads = inv.Workloads[:2]
	now = now.Add(5 * time.Minute)
	if err := r.update(ctx, q, inv, now); err != nil {
		t.Fatal(err)
	}
	if len(r.states) != 4 || len(r.through) != 1 {
		t.Errorf("after b/w0 left: %d states, %d cursors; want 4 and 1", len(r.states), len(r.through))
	}
	step("workload gone", 4, 0)

	// A gap longer than the window: not ready until the window is read
	// again, which the budget spreads over two cycles.
	now = now.Add(3 * 24 * time.Hour)
	step("before the first cycle after the gap", 0, 0)
	if err := r.update(ctx, q, inv, now); err != nil {
		t.Fatal(err)
	}
	step("first cycle after the gap", 0, 1)
	now = now.Add(5 * time.Minute)
	if err := r.update(ctx, q, inv, now); err != nil {
		t.Fatal(err)
	}
	step("second cycle after the gap", 4, 0)
}

// The recommender keeps exporter.recommend.window (14 days by default),
// not the idle analysis's exporter.window, and a workload's policy is
// clamped to it.
func TestRecommenderWindow(t *testing.T) {
	for _, tc := range []struct {
		name             string
		exporter, policy time.Duration
		settle           time.Duration // exporter.recommender.settle; 0: the default
	}{
		{"defaults", 0, 0, 0},
		{"recommender longer than the idle window", 24 * time.Hour, 21 * 24 * time.Hour, 0},
		{"recommender shorter", 14 * 24 * time.Hour, 3 * 24 * time.Hour, 0},
		{"behind remote write", 0, 0, 4 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			wantSettle := history.Settle
			if tc.settle > 0 {
				cfg.Exporter.Recommender.Settle = model.Duration(tc.settle)
				wantSettle = tc.settle
			}
			if tc.exporter > 0 {
				cfg.Exporter.Window = model.Duration(tc.exporter)
			}
			want := recommend.DefaultPolicy().Window
			if tc.policy > 0 {
				cfg.Exporter.Recommend.Window = model.Duration(tc.policy)
				want = tc.policy
			}
			// Never called: New only wires the parts.
			c, err := api.NewClient(api.Config{Address: "http://127.0.0.1:1"})
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(Options{Exporter: cfg.Exporter, Prometheus: cfg.Prometheus, Kube: fake.NewClientset(), Querier: v1.NewAPI(c)})
			if err != nil {
				t.Fatal(err)
			}
			if s.rec.settle != wantSettle {
				t.Errorf("windows read %v after their end, want %v", s.rec.settle, wantSettle)
			}
			if s.rec.window != want || s.analyzer.recWindow != want {
				t.Errorf("recommender window %v, analyzer's %v, want %v", s.rec.window, s.analyzer.recWindow, want)
			}
			if got, clamped := effectiveWindow(want+time.Hour, s.analyzer.recWindow); got != want || !clamped {
				t.Errorf("a longer workload window gives %v (clamped %v), want %v", got, clamped, want)
			}
		})
	}
}

// TestNewRejectsCollidingNamespaceLabels: two namespace label keys that
// make one Prometheus label name would make upid_namespace_labels fail to
// register; New says which, by index.
func TestNewRejectsCollidingNamespaceLabels(t *testing.T) {
	c, err := api.NewClient(api.Config{Address: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		labels  []string
		wantErr string
	}{
		{[]string{"team", "cost-center"}, ""},
		{[]string{"team", "cost-center", "cost_center"}, `exporter.namespace_labels[2]: "cost_center" is exported as label_cost_center, as "cost-center" ([1]) is`},
	} {
		cfg := config.Default()
		cfg.Exporter.NamespaceLabels = tc.labels
		_, err := New(Options{Exporter: cfg.Exporter, Prometheus: cfg.Prometheus, Kube: fake.NewClientset(), Querier: v1.NewAPI(c)})
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%v: error %v, want %q", tc.labels, err, tc.wantErr)
		}
	}
}
