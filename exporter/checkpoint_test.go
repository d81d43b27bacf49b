package exporter

import (
	"bytes"
	"encoding/gob"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/upid-dev/upid/exporter/history"
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
				s.Inputs(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC))
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
