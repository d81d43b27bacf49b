package recommend

import (
	"math"
	"time"
)

// Sample is one usage window of one container, as a 5-minute scrape
// aggregate delivers it.
type Sample struct {
	Time     time.Time     // start of the window
	Duration time.Duration // its length; 0 means 5 minutes
	CPU      float64       // mean CPU in cores over the window; NaN when missing
	// MemoryPeak is the highest working set in bytes in the window; NaN when
	// missing.
	MemoryPeak float64
	// ThrottledPeriods and Periods are the increases of the CFS counters in
	// the window; both 0 when unknown or unlimited.
	ThrottledPeriods, Periods float64
	// Start: the container started in this window, so the next
	// StartupGrace of CPU is start-up, not steady state.
	Start bool
	// OOMKill: the container was OOM-killed in this window, with memory
	// limit MemoryLimit (bytes; 0 when it had none).
	OOMKill     bool
	MemoryLimit float64
}

const day = 24 * time.Hour

// dayAgg is what State keeps per calendar day (UTC) of the window.
type dayAgg struct {
	day       int64   // days since the Unix epoch; the slot is stale otherwise
	covered   float64 // seconds with samples
	peak      float64 // highest working set
	ooms      int
	oomMemory float64 // memory limit or peak at the day's latest OOM
	oomAt     int64
	throttled float64
	periods   float64
}

// State is UPID's incremental per-container state: a decaying histogram of
// 5-minute CPU means and one record per day of the window for coverage,
// memory peak, OOM kills and throttling. Observe costs O(1); the memory is
// the histogram's occupied buckets plus Window/24h small records, a few
// hundred bytes for a typical container. It is not safe for concurrent use.
type State struct {
	p         Policy
	cpu       *Histogram
	days      []dayAgg
	startedAt time.Time
	last      time.Time
}

// NewState returns an empty state for the policy's window, half-life and
// start-up grace.
func NewState(p Policy) *State {
	p = p.normalized()
	o := CPUHistogramOptions()
	o.HalfLife = p.CPUHalfLife
	n := int((p.Window + day - 1) / day)
	return &State{p: p, cpu: mustHistogram(o), days: make([]dayAgg, n)}
}

func dayOf(t time.Time) int64 { return int64(math.Floor(float64(t.Unix()) / 86400)) }

func (s *State) slot(d int64) *dayAgg {
	n := int64(len(s.days))
	a := &s.days[((d%n)+n)%n]
	if a.day != d {
		*a = dayAgg{day: d}
	}
	return a
}

// Observe adds one sample. Samples should come in time order; one older
// than the window is ignored.
func (s *State) Observe(x Sample) {
	dur := x.Duration
	if dur <= 0 {
		dur = 5 * time.Minute
	}
	d := dayOf(x.Time)
	if s.last.IsZero() || x.Time.After(s.last) {
		s.last = x.Time
	}
	if d <= dayOf(s.last)-int64(len(s.days)) {
		return
	}
	a := s.slot(d)
	if x.Start {
		s.startedAt = x.Time
	}
	cpuOK := x.CPU >= 0 && !math.IsInf(x.CPU, 0)
	memOK := x.MemoryPeak >= 0 && !math.IsInf(x.MemoryPeak, 0)
	if cpuOK || memOK {
		a.covered += dur.Seconds()
	}
	if cpuOK && (s.startedAt.IsZero() || x.Time.Sub(s.startedAt) >= s.p.StartupGrace) {
		// Weighted by duration so that a short window after a restart
		// counts for what it covers.
		s.cpu.Add(x.CPU, dur.Seconds()/300, x.Time)
	}
	if memOK {
		a.peak = math.Max(a.peak, x.MemoryPeak)
	}
	if x.Periods > 0 && x.ThrottledPeriods >= 0 {
		a.periods += x.Periods
		a.throttled += math.Min(x.ThrottledPeriods, x.Periods)
	}
	if x.OOMKill {
		a.ooms++
		if t := x.Time.Unix(); t >= a.oomAt {
			a.oomAt = t
			a.oomMemory = x.MemoryLimit
			if !(a.oomMemory > 0) && memOK {
				a.oomMemory = x.MemoryPeak
			}
		}
	}
}

// Inputs returns the aggregates at now (the days of the window ending with
// now's day) for Recommend. The caller fills Current, Replicas and Prices.
// Only samples observed so far count, so feeding samples up to now and
// calling Inputs(now) can never look ahead.
func (s *State) Inputs(now time.Time) Inputs {
	in := Inputs{Window: s.p.Window}
	nd := dayOf(now)
	var covered, throttled, periods float64
	var oomAt int64 = math.MinInt64
	for i := range s.days {
		a := &s.days[i]
		if a.day > nd || a.day <= nd-int64(len(s.days)) || (a.covered == 0 && a.ooms == 0) {
			continue
		}
		covered += a.covered
		in.MemoryPeak = math.Max(in.MemoryPeak, a.peak)
		throttled += a.throttled
		periods += a.periods
		in.OOMKills += a.ooms
		if a.ooms > 0 && a.oomAt > oomAt {
			oomAt, in.OOMMemory = a.oomAt, a.oomMemory
		}
	}
	in.Coverage = math.Min(1, covered/s.p.Window.Seconds())
	if periods > 0 {
		in.ThrottledRatio = throttled / periods
	}
	if !s.cpu.IsEmpty() {
		in.CPU = s.cpu
	}
	if in.MemoryPeak == 0 {
		in.MemoryPeak = math.NaN()
	}
	return in
}

// Bytes estimates the state's memory footprint.
func (s *State) Bytes() int {
	return 8*s.cpu.Buckets() + 64*len(s.days) + 160
}
