package recommend

import (
	"math"
	"testing"
	"time"
)

func every5m(from time.Time, n int, f func(i int, s *Sample)) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = Sample{Time: from.Add(time.Duration(i) * 5 * time.Minute), CPU: 0.5, MemoryPeak: gibF}
		if f != nil {
			f(i, &out[i])
		}
	}
	return out
}

func TestStateWindow(t *testing.T) {
	s := NewState(DefaultPolicy())
	// Two days at 0.5 core and 1 GiB, with a 2 GiB spike on day one.
	for _, x := range every5m(t0, 2*288, func(i int, x *Sample) {
		switch i {
		case 100:
			x.MemoryPeak = 2 * gibF
		case 200:
			x.MemoryPeak = 1.7e308 // no machine has it: not a peak
		}
	}) {
		s.Observe(x)
	}
	now := t0.Add(2 * 24 * time.Hour)
	in := s.Inputs(now.Add(-time.Second))
	if want := 2.0 / 14; math.Abs(in.Coverage-want) > 1e-12 {
		t.Errorf("coverage %v, want %v", in.Coverage, want)
	}
	if in.MemoryPeak != 2*gibF {
		t.Errorf("peak %v, want 2 GiB", in.MemoryPeak)
	}
	// All CPU samples are 0.5: the quantile stays inside 0.5's bucket.
	if q := in.CPU.Quantile(0.9); q < 0.48 || q > 0.51 {
		t.Errorf("p90 %v, want about 0.5", q)
	}
	// Fifteen days later the spike's day has left the 14-day window, and
	// so has its coverage.
	later := t0.Add(15 * 24 * time.Hour)
	for _, x := range every5m(later, 288, nil) {
		s.Observe(x)
	}
	in = s.Inputs(later.Add(24*time.Hour - time.Second))
	if in.MemoryPeak != gibF {
		t.Errorf("peak %v after the window, want 1 GiB", in.MemoryPeak)
	}
	// The window ending on day 15 holds the last second of day 1 and days
	// 2–15: day 15 has data, and day 1's counts for its one second.
	if want := (1.0 + 1.0/86400) / 14; math.Abs(in.Coverage-want) > 1e-12 {
		t.Errorf("coverage %v, want %v", in.Coverage, want)
	}
	// Inputs sees only what was observed: a future day has nothing.
	if in := s.Inputs(t0.Add(60 * 24 * time.Hour)); in.Coverage != 0 || !math.IsNaN(in.MemoryPeak) {
		t.Errorf("far future: coverage %v peak %v, want nothing", in.Coverage, in.MemoryPeak)
	}
}

func TestStateStartupOOMThrottle(t *testing.T) {
	s := NewState(DefaultPolicy())
	for _, x := range every5m(t0, 12, func(i int, x *Sample) {
		switch i {
		case 0:
			x.Start = true
			x.CPU = 10 // start-up spike: inside the 10-minute grace
		case 1:
			x.CPU = 10
		case 5:
			x.OOMKill, x.MemoryLimit = true, 1.5*gibF
		}
		x.Periods, x.ThrottledPeriods = 100, 10
	}) {
		s.Observe(x)
	}
	in := s.Inputs(t0.Add(time.Hour))
	if q := in.CPU.Quantile(1); q > 1 {
		t.Errorf("max CPU %v: the start-up spike leaked in", q)
	}
	if in.OOMKills != 1 || in.OOMMemory != 1.5*gibF {
		t.Errorf("OOM %d at %v, want 1 at 1.5 GiB", in.OOMKills, in.OOMMemory)
	}
	if math.Abs(in.ThrottledRatio-0.1) > 1e-12 {
		t.Errorf("throttled ratio %v, want 0.1", in.ThrottledRatio)
	}
	// An OOM without a limit falls back to the peak it reached.
	s.Observe(Sample{Time: t0.Add(2 * time.Hour), CPU: 0.5, MemoryPeak: 3 * gibF, OOMKill: true})
	if in := s.Inputs(t0.Add(3 * time.Hour)); in.OOMKills != 2 || in.OOMMemory != 3*gibF {
		t.Errorf("OOM %d at %v, want 2, latest at 3 GiB", in.OOMKills, in.OOMMemory)
	}
}

// TestStateRecommend runs the incremental path end to end: a week at a
// steady 0.5 core and 1 GiB gives confidence 1 and the plain figures.
func TestStateRecommend(t *testing.T) {
	s := NewState(DefaultPolicy())
	for _, x := range every5m(t0, 7*288, nil) {
		s.Observe(x)
	}
	in := s.Inputs(t0.Add(7*24*time.Hour - time.Second))
	in.Current = Resources{CPURequest: 2, MemoryRequest: 4 * gibF}
	r := Recommend(in, DefaultPolicy())
	if !r.OK || r.Confidence != 1 || r.Memory.Request != mem1127 || r.CPU.Request < 0.48 || r.CPU.Request > 0.51 {
		t.Errorf("recommendation %+v", r)
	}
	if b := s.Bytes(); b > 2048 {
		t.Errorf("state of a steady container takes %d bytes", b)
	}
}

// BenchmarkState measures one 5-minute sample and one recommendation per
// container; a cycle of 100,000 containers costs 100,000 of each.
func BenchmarkState(b *testing.B) {
	s := NewState(DefaultPolicy())
	for _, x := range every5m(t0, 14*288, func(i int, x *Sample) { x.CPU = 0.3 + 0.4*math.Sin(float64(i)/50) }) {
		s.Observe(x)
	}
	at := t0.Add(14 * 24 * time.Hour)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Observe(Sample{Time: at.Add(time.Duration(i) * time.Second), CPU: 0.5, MemoryPeak: gibF})
		in := s.Inputs(at)
		in.Current = Resources{CPURequest: 1, MemoryRequest: 2 * gibF}
		Recommend(in, DefaultPolicy())
	}
	b.ReportMetric(float64(s.Bytes()), "state-bytes")
}

// A policy's shorter window reads only the state's last days.
func TestStateInputsWithin(t *testing.T) {
	s := NewState(DefaultPolicy())
	// Three days at 1 GiB with a 2 GiB spike on the first (t0 is midnight).
	for _, x := range every5m(t0, 3*288, func(i int, x *Sample) {
		if i == 100 {
			x.MemoryPeak = 2 * gibF
		}
	}) {
		s.Observe(x)
	}
	now := t0.Add(3*24*time.Hour - time.Second)
	for _, tc := range []struct {
		name       string
		w          time.Duration
		wantWindow time.Duration
		wantPeak   float64
		wantCover  float64
	}{
		{"the state's window", 0, 14 * 24 * time.Hour, 2 * gibF, 3.0 / 14},
		{"longer than the state's: all of it", 30 * 24 * time.Hour, 14 * 24 * time.Hour, 2 * gibF, 3.0 / 14},
		// A day partly inside counts its peak whole (the safe side), so the
		// spike leaves with the last second of its day.
		{"47 hours: the spike's day has left", 47 * time.Hour, 47 * time.Hour, gibF, 1},
		{"three days: the spike counts", 72 * time.Hour, 72 * time.Hour, 2 * gibF, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := s.InputsWithin(now, tc.w)
			if in.Window != tc.wantWindow || in.MemoryPeak != tc.wantPeak {
				t.Errorf("window %v peak %v, want %v and %v", in.Window, in.MemoryPeak, tc.wantWindow, tc.wantPeak)
			}
			// The last 5-minute sample ends at now+1s: coverage within a
			// second of the whole window.
			if math.Abs(in.Coverage-tc.wantCover) > 2.0/in.Window.Seconds() {
				t.Errorf("coverage %v, want %v", in.Coverage, tc.wantCover)
			}
		})
	}
}
