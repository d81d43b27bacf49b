package exporter

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/recommend"
)

// memoryWindows answers the recommender's window queries: every container
// of keys at 0.1 core, with the memory of mem at each window's end.
type memoryWindows struct {
	keys []history.ContainerKey
	mem  func(time.Time) float64
}

var subqueryRange = regexp.MustCompile(`\)\[([0-9a-z]+):5m\]$`)

func (f memoryWindows) Query(_ context.Context, q string, ts time.Time, _ ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	m := subqueryRange.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return nil, nil, nil, fmt.Errorf("unexpected query %q", q)
	}
	d, _ := model.ParseDuration(m[1])
	memory := strings.Contains(q, "container_memory_working_set_bytes")
	if !memory && !strings.Contains(q, "container_cpu_usage_seconds_total") {
		return model.Matrix{}, nil, nil, nil
	}
	var out model.Matrix
	for _, k := range f.keys {
		ss := &model.SampleStream{Metric: model.Metric{"namespace": model.LabelValue(k.Namespace), "workload": model.LabelValue(k.Workload), "kind": model.LabelValue(k.Kind), "container": model.LabelValue(k.Container)}}
		for t := ts.Add(-time.Duration(d)).Add(history.WindowStep - time.Second); !t.After(ts); t = t.Add(history.WindowStep) {
			v := 0.1
			if memory {
				v = f.mem(t)
			}
			ss.Values = append(ss.Values, model.SamplePair{Timestamp: model.TimeFromUnixNano(t.UnixNano()), Value: model.SampleValue(v)})
		}
		out = append(out, ss)
	}
	return out, nil, nil, nil
}

// TestRecommenderReturningWorkload: a workload deleted and created again
// while its namespace stays (helm uninstall and install, kubectl replace
// --force) is sized on its whole window, its peak before the deletion
// included, as an exporter started afresh would size it; a workload gone
// for longer than the window is forgotten.
func TestRecommenderReturningWorkload(t *testing.T) {
	const gib = 1 << 30
	now := time.Date(2026, 3, 20, 12, 3, 0, 0, time.UTC)
	peakAt := now.Add(-36 * time.Hour)
	key := func(name string) history.ContainerKey {
		return history.ContainerKey{Key: history.Key{Namespace: "a", Kind: "Deployment", Workload: name}, Container: "app"}
	}
	q := memoryWindows{keys: []history.ContainerKey{key("w0"), key("w1")}, mem: func(t time.Time) float64 {
		if t.After(peakAt) && !t.After(peakAt.Add(time.Hour)) {
			return 4 * gib
		}
		return 1 * gib
	}}
	wl := func(name string) inventory.Workload {
		return inventory.Workload{ID: inventory.ID{Namespace: "a", Kind: "Deployment", Name: name}, Containers: []inventory.Container{{Name: "app"}}}
	}
	both := inventory.Snapshot{Workloads: []inventory.Workload{wl("w0"), wl("w1")}}
	onlyW1 := inventory.Snapshot{Workloads: []inventory.Workload{wl("w1")}}
	window := 3 * 24 * time.Hour
	p := recommend.DefaultPolicy()
	p.Window = window
	newRec := func() *recommender {
		return newRecommender(p, window, 24*time.Hour, 0, time.Minute, 2000, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	peakOf := func(r *recommender, at time.Time) (float64, bool) {
		hist := &history.Snapshot{Workloads: map[history.Key]*history.Workload{}}
		r.fill(hist, at)
		h := hist.Workloads[key("w0").Key]
		if h == nil || h.ContainerInputs["app"] == nil {
			return 0, false
		}
		return h.ContainerInputs["app"](0).MemoryPeak, true
	}
	ctx := context.Background()
	r := newRec()
	steps := []struct {
		name     string
		after    time.Duration
		inv      inventory.Snapshot
		served   bool
		wantPeak float64
	}{
		{"read", 0, both, true, 4 * gib},
		{"deleted: not served", 5 * time.Minute, onlyW1, false, 0},
		{"created again", 5 * time.Minute, both, true, 4 * gib},
		{"18 hours on", 18 * time.Hour, both, true, 4 * gib},
		{"deleted again", 5 * time.Minute, onlyW1, false, 0},
	}
	for _, st := range steps {
		now = now.Add(st.after)
		if err := r.update(ctx, q, st.inv, now); err != nil {
			t.Fatal(err)
		}
		peak, served := peakOf(r, now)
		if served != st.served || peak != st.wantPeak {
			t.Errorf("%s: served %v with peak %.2f GiB, want %v and %.2f GiB", st.name, served, peak/gib, st.served, st.wantPeak/gib)
		}
	}
	fresh := newRec()
	if err := fresh.update(ctx, q, both, now); err != nil {
		t.Fatal(err)
	}
	if peak, _ := peakOf(fresh, now); peak != 4*gib {
		t.Errorf("a fresh exporter sees a peak of %.2f GiB, want 4", peak/gib)
	}
	// Gone for longer than the window: the state goes, and coming back
	// starts from the windows read since (the pods left none before).
	now = now.Add(window + time.Hour)
	if err := r.update(ctx, q, onlyW1, now); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.states[key("w0")]; ok {
		t.Errorf("the state of a workload gone for longer than the window is kept")
	}
}
