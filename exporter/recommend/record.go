package recommend

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// StateRecord is a State with every field exported, for a checkpoint that
// outlives the process (encoding/gob): a restarted exporter loads its
// states instead of reading the whole window from Prometheus again.
type StateRecord struct {
	Window, Grace   time.Duration
	CPU, Memory     HistogramRecord
	Days            []DayRecord
	StartedAt, Last time.Time
}

// HistogramRecord is a Histogram's occupied buckets and decay reference.
type HistogramRecord struct {
	Options HistogramOptions
	First   int
	Weights []float64
	Total   float64
	Ref     time.Time
}

// DayRecord is one day of a State.
type DayRecord struct {
	Day, OOMs, OOMSec           int32
	Covered, Throttled, Periods float32
	Peak, OOMMemory             float64
}

// Record returns the state as a record; the record shares nothing with it.
func (s *State) Record() StateRecord {
	r := StateRecord{Window: s.window, Grace: s.grace, CPU: s.cpu.record(), Memory: s.mem.record(), StartedAt: s.startedAt, Last: s.last,
		Days: make([]DayRecord, len(s.days))}
	for i, a := range s.days {
		r.Days[i] = DayRecord{Day: a.day, OOMs: a.ooms, OOMSec: a.oomSec, Covered: a.covered, Throttled: a.throttled, Periods: a.periods, Peak: a.peak, OOMMemory: a.oomMemory}
	}
	return r
}

func (h *Histogram) record() HistogramRecord {
	return HistogramRecord{Options: h.opts, First: h.first, Weights: append([]float64(nil), h.w...), Total: h.total, Ref: h.ref}
}

// StateFromRecord rebuilds a state that NewState(p) would have made and
// the record's samples filled. A record made under another window,
// start-up grace or histogram layout (a changed policy or a new version)
// is refused with an error naming the field, as are values no state can
// hold: the caller then starts that state afresh.
func StateFromRecord(r StateRecord, p Policy) (*State, error) {
	s := NewState(p)
	switch {
	case r.Window != s.window:
		return nil, fmt.Errorf("window %v, want %v", r.Window, s.window)
	case r.Grace != s.grace:
		return nil, fmt.Errorf("start-up grace %v, want %v", r.Grace, s.grace)
	case len(r.Days) != len(s.days):
		return nil, fmt.Errorf("days: %d, want %d", len(r.Days), len(s.days))
	}
	for name, pair := range map[string]struct {
		h   *Histogram
		rec HistogramRecord
	}{"cpu": {s.cpu, r.CPU}, "memory": {s.mem, r.Memory}} {
		if err := pair.h.load(pair.rec); err != nil {
			return nil, fmt.Errorf("%s histogram: %w", name, err)
		}
	}
	for i, d := range r.Days {
		for _, v := range []float64{float64(d.Covered), float64(d.Throttled), float64(d.Periods), d.Peak, d.OOMMemory} {
			if !(v >= 0) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("days[%d]: value %v out of range", i, v)
			}
		}
		// Observe keeps no memory figure past this bound; a record that
		// has one was not written by it.
		if d.Peak > MaxMemoryBytes || d.OOMMemory > MaxMemoryBytes {
			return nil, fmt.Errorf("days[%d]: memory %v or %v above %v bytes", i, d.Peak, d.OOMMemory, float64(MaxMemoryBytes))
		}
		if d.OOMs < 0 || d.OOMSec < 0 || d.OOMSec >= 86400 {
			return nil, fmt.Errorf("days[%d]: OOM kills %d at second %d out of range", i, d.OOMs, d.OOMSec)
		}
		s.days[i] = dayAgg{day: d.Day, ooms: d.OOMs, oomSec: d.OOMSec, covered: d.Covered, throttled: d.Throttled, periods: d.Periods, peak: d.Peak, oomMemory: d.OOMMemory}
	}
	s.startedAt, s.last = r.StartedAt, r.Last
	return s, nil
}

func (h *Histogram) load(r HistogramRecord) error {
	if r.Options != h.opts {
		return fmt.Errorf("options %+v, want %+v", r.Options, h.opts)
	}
	// Compared without adding: First near MaxInt would wrap the sum past
	// the check, and the next Observe would allocate a negative slice.
	if len(r.Weights) > 0 && (r.First < 0 || r.First > h.nb || len(r.Weights) > h.nb-r.First) {
		return fmt.Errorf("buckets %d to %d outside 0 to %d", r.First, r.First+len(r.Weights), h.nb)
	}
	// The total is kept apart from the buckets (trimmed buckets under
	// Epsilon stay in it), so it is checked for range only.
	for _, w := range r.Weights {
		if !(w >= 0) || math.IsInf(w, 0) {
			return errors.New("a bucket weight is negative or not finite")
		}
	}
	if !(r.Total >= 0) || math.IsInf(r.Total, 0) {
		return fmt.Errorf("total %v out of range", r.Total)
	}
	h.first, h.w, h.total, h.ref = r.First, append([]float64(nil), r.Weights...), r.Total, r.Ref
	if len(h.w) == 0 {
		h.first = 0
	}
	return nil
}
