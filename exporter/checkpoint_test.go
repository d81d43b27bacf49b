package exporter

import (
	"bytes"
	"encoding/gob"
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
