package recommend

import (
	"bytes"
	"encoding/gob"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestStateRecordRoundTrip: a state rebuilt from its record, through gob,
// gives the same inputs and goes on observing as the original does.
func TestStateRecordRoundTrip(t *testing.T) {
	p := DefaultPolicy()
	s := NewState(p)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	feed := func(s *State, from, to int) {
		for i := from; i < to; i++ {
			at := t0.Add(time.Duration(i) * 5 * time.Minute)
			s.Observe(Sample{Time: at, CPU: 0.2 + 0.1*math.Sin(float64(i)/40), MemoryPeak: float64(200<<20 + i%300<<16),
				Start: i == 0 || i == 2000, OOMKill: i == 1500, MemoryLimit: 512 << 20, Periods: 30, ThrottledPeriods: float64(i % 3)})
		}
	}
	feed(s, 0, 3000) // about ten days
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(s.Record()); err != nil {
		t.Fatal(err)
	}
	var rec StateRecord
	if err := gob.NewDecoder(&buf).Decode(&rec); err != nil {
		t.Fatal(err)
	}
	back, err := StateFromRecord(rec, p)
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(3000 * 5 * time.Minute)
	if got, want := back.Inputs(now), s.Inputs(now); !sameInputs(got, want) {
		t.Fatalf("rebuilt inputs %+v, want %+v", got, want)
	}
	feed(s, 3000, 4000)
	feed(back, 3000, 4000)
	now = t0.Add(4000 * 5 * time.Minute)
	if got, want := back.Inputs(now), s.Inputs(now); !sameInputs(got, want) {
		t.Fatalf("after more samples %+v, want %+v", got, want)
	}
	if !reflect.DeepEqual(back.Record(), s.Record()) {
		t.Error("records differ after the same samples")
	}
}

func sameInputs(a, b Inputs) bool {
	for _, q := range []float64{0.5, 0.9, 0.95, 1} {
		if a.CPU.Quantile(q) != b.CPU.Quantile(q) {
			return false
		}
	}
	a.CPU, b.CPU = nil, nil
	return reflect.DeepEqual(a, b)
}

// TestStateFromRecordRefuses: a record of another policy, or with values no
// state holds, is refused with the field named.
func TestStateFromRecordRefuses(t *testing.T) {
	p := DefaultPolicy()
	good := func() StateRecord {
		s := NewState(p)
		s.Observe(Sample{Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), CPU: 0.5, MemoryPeak: 1 << 30})
		return s.Record()
	}
	for _, c := range []struct {
		name string
		edit func(*StateRecord)
		want string
	}{
		{"another window", func(r *StateRecord) { r.Window = time.Hour }, "window"},
		{"another grace", func(r *StateRecord) { r.Grace = time.Hour }, "start-up grace"},
		{"days cut", func(r *StateRecord) { r.Days = r.Days[:3] }, "days"},
		{"another half-life", func(r *StateRecord) { r.CPU.Options.HalfLife = time.Hour }, "cpu histogram: options"},
		{"buckets out of range", func(r *StateRecord) { r.Memory.First = 1 << 20 }, "memory histogram: buckets"},
		{"negative weight", func(r *StateRecord) { r.CPU.Weights[0] = -1 }, "negative or not finite"},
		{"NaN total", func(r *StateRecord) { r.CPU.Total = math.NaN() }, "total"},
		{"NaN peak", func(r *StateRecord) { r.Days[0].Peak = math.NaN() }, "days[0]"},
		{"OOM second", func(r *StateRecord) { r.Days[1].OOMSec = 86400 }, "days[1]"},
		// First + len would wrap past the check; the next Observe panicked.
		{"first bucket at MaxInt", func(r *StateRecord) { r.CPU.First = math.MaxInt }, "cpu histogram: buckets"},
		{"peak past the memory bound", func(r *StateRecord) { r.Days[0].Peak = 2 * MaxMemoryBytes }, "days[0]: memory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := good()
			c.edit(&r)
			if _, err := StateFromRecord(r, p); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one naming %q", err, c.want)
			}
		})
	}
	if _, err := StateFromRecord(good(), p); err != nil {
		t.Errorf("a good record: %v", err)
	}
}
