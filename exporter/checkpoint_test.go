package exporter

import (
	"bytes"
	"context"
	"encoding/gob"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/recommend"
)

// FuzzCheckpoint: whatever a state file holds, loading it never panics;
// it is refused with an error, or yields states the policy accepts.
func FuzzCheckpoint(f *testing.F) {
	p := recommend.DefaultPolicy()
	s := recommend.NewState(p)
	s.Observe(recommend.Sample{Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), CPU: 0.5, MemoryPeak: 1 << 30, OOMKill: true})
	c := checkpoint{Version: checkpointVersion, Namespaces: []namespaceProgress{{Name: "shop", Through: time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC), CaughtUp: true}},
		Keys:   []history.ContainerKey{{Key: history.Key{Namespace: "shop", Kind: "Deployment", Workload: "web"}, Container: "app"}},
		States: []recommend.StateRecord{s.Record()}}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&c); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("not a checkpoint"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeCheckpoint(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, r := range c.States {
			if s, err := recommend.StateFromRecord(r, p); err == nil {
				// What the next cycles do with a loaded state.
				at := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
				s.Inputs(at)
				s.Observe(recommend.Sample{Time: at, Duration: 5 * time.Minute, CPU: 0.5, MemoryPeak: 1 << 30})
				s.Observe(recommend.Sample{Time: at.Add(5 * time.Minute), Duration: 5 * time.Minute, CPU: 1e-6, MemoryPeak: 1})
				s.Inputs(at.Add(10 * time.Minute))
			}
		}
	})
}

// BenchmarkCheckpoint saves and loads the states of 10,000 containers with
// 14 days of 5-minute windows, the steady state of a cluster that size;
// bytes/state is the file's size per container.
func BenchmarkCheckpoint(b *testing.B) {
	p := recommend.DefaultPolicy()
	r := newRecommender(p, p.Window, 24*time.Hour, 0, time.Minute, 2000, nil)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	const containers = 10000
	for i := range containers {
		s := recommend.NewState(r.policy)
		for w := 0; w < 14*288; w += 6 { // every 30 minutes: the buckets and days fill as with every window
			at := t0.Add(time.Duration(w) * 5 * time.Minute)
			s.Observe(recommend.Sample{Time: at, Duration: 30 * time.Minute, CPU: 0.1 + float64((w+i)%97)/200, MemoryPeak: float64(200<<20 + (w*i)%(64<<20))})
		}
		ns := "ns-" + strconv.Itoa(i%50)
		r.states[history.ContainerKey{Key: history.Key{Namespace: ns, Kind: "Deployment", Workload: "w-" + strconv.Itoa(i)}, Container: "app"}] = s
		r.through[ns] = t0.Add(14 * 24 * time.Hour)
	}
	path := b.TempDir() + "/state"
	b.ResetTimer()
	for b.Loop() {
		if err := r.save(path); err != nil {
			b.Fatal(err)
		}
		if _, _, err := r.load(path); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if len(r.states) != containers {
		b.Fatalf("%d states after a load, want %d", len(r.states), containers)
	}
	if fi, err := os.Stat(path); err == nil {
		b.ReportMetric(float64(fi.Size())/float64(len(r.states)), "bytes/state")
	}
}

// TestCheckpointCorruptRefused: a checkpoint changed by one byte anywhere,
// or cut short, is refused whole; gob alone would decode a flipped bit in
// a float as another plausible number.
func TestCheckpointCorruptRefused(t *testing.T) {
	p := recommend.DefaultPolicy()
	r := newRecommender(p, p.Window, 24*time.Hour, 0, time.Minute, 2000, nil)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		s := recommend.NewState(r.policy)
		s.Observe(recommend.Sample{Time: t0, Duration: 5 * time.Minute, CPU: 0.25, MemoryPeak: 3e8})
		r.states[history.ContainerKey{Key: history.Key{Namespace: "shop", Kind: "Deployment", Workload: "web" + strconv.Itoa(i)}, Container: "app"}] = s
	}
	r.through["shop"] = t0.Add(5 * time.Minute)
	path := t.TempDir() + "/state"
	if err := r.save(path); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	load := func(data []byte) error {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := newRecommender(p, p.Window, 24*time.Hour, 0, time.Minute, 2000, nil).load(path)
		return err
	}
	// A save cut short left its temporary file: the next start removes it.
	leftover := path + ".tmp-123"
	if err := os.WriteFile(leftover, good[:len(good)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := load(good); err != nil {
		t.Fatalf("the saved checkpoint: %v", err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("the temporary file of a save cut short is still there: %v", err)
	}
	for _, at := range []int{0, len(good) / 7, len(good) / 3, len(good) / 2, len(good) - 40, len(good) - 5, len(good) - 1} {
		bad := bytes.Clone(good)
		bad[at] ^= 0x01
		if err := load(bad); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("byte %d of %d flipped: %v, want a checksum mismatch", at, len(good), err)
		}
	}
	for _, n := range []int{0, 3, len(good) - 1} {
		if err := load(good[:n]); err == nil {
			t.Errorf("cut to %d bytes: loaded", n)
		}
	}
}

// TestCheckpointFromTheFuture: a checkpoint saved while the clock ran two
// days ahead (NTP corrected the node's clock before the restart) must not
// stop the namespace from being read, nor serve what it holds as current.
func TestCheckpointFromTheFuture(t *testing.T) {
	ws := &windowServer{perNS: 1}
	q := windowAPI(t, ws)
	mk := func() *recommender {
		return newRecommender(recommend.DefaultPolicy(), 7*24*time.Hour, 24*time.Hour, 0, time.Minute, 2000, nil)
	}
	inv := inventory.Snapshot{Workloads: []inventory.Workload{{ID: inventory.ID{Namespace: "a", Kind: "Deployment", Name: "w0"}, Containers: []inventory.Container{{Name: "app"}}}}}
	now := time.Date(2026, 3, 20, 12, 3, 0, 0, time.UTC)
	ahead := mk()
	if err := ahead.update(context.Background(), q, inv, now.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/state"
	if err := ahead.save(path); err != nil {
		t.Fatal(err)
	}
	r := mk()
	if _, _, err := r.load(path); err != nil {
		t.Fatal(err)
	}
	before := ws.asked.Load()
	if err := r.update(context.Background(), q, inv, now); err != nil {
		t.Fatal(err)
	}
	if ws.asked.Load() == before {
		t.Errorf("no window read at the right time: the namespace stays read through %v, after now %v", r.through["a"], now)
	}
	if th := r.through["a"]; th.After(now) {
		t.Errorf("the namespace is read through %v, after now %v", th, now)
	}
}
