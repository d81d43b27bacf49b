package recommend

import (
	"math"
	"time"
	"unsafe"
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

// dayAgg is what State keeps per calendar day (UTC) of the window, in 40
// bytes: a state holds Window/24h+1 of them, and at 100,000 containers
// every byte here is 1.5 MB. Sums of seconds and CFS periods fit float32's
// 24-bit mantissa to well under a part per million.
type dayAgg struct {
	day       int32   // days since the Unix epoch; the slot is stale otherwise
	ooms      int32   // OOM kills
	oomSec    int32   // second of the day of the latest OOM kill
	covered   float32 // seconds with samples
	throttled float32
	periods   float32
	peak      float64 // highest working set
	oomMemory float64 // memory limit or peak at the day's latest OOM
}

// State is UPID's incremental per-container state: a decaying histogram of
// 5-minute CPU means and one record per day of the window for coverage,
// memory peak, OOM kills and throttling. Observe costs O(1); the memory is
// the histograms' occupied buckets plus Window/24h+1 small records, a few
// hundred bytes for a typical container. It is not safe for concurrent use.
type State struct {
	// Only the two fields of the policy it reads, not a copy of the
	// policy: a state per container adds up.
	window, grace time.Duration
	cpu           *Histogram
	// mem holds the 5-minute memory peaks for the usage quantiles the
	// exporter shows; recommendations size memory from the daily peaks.
	mem       *Histogram
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
	// Days are calendar days (UTC), so a window of whole days ending now
	// touches one more, the partial day now is in: without it a one-day
	// window would cover only the hours since midnight.
	n := int((p.Window+day-1)/day) + 1
	mo := UsageMemoryHistogramOptions()
	mo.HalfLife = p.CPUHalfLife
	return &State{window: p.Window, grace: p.StartupGrace, cpu: mustHistogram(o), mem: mustHistogram(mo), days: make([]dayAgg, n)}
}

// UsageMemoryHistogramOptions bucket State's memory peaks from 1 MiB at
// 5 %: the VPA's memory histogram starts at 10 MB, which would put a small
// sidecar's whole distribution in its first bucket.
func UsageMemoryHistogramOptions() HistogramOptions {
	return HistogramOptions{FirstBucket: 1 << 20, Ratio: 1.05, Max: 1e13, Epsilon: vpaEpsilon}
}

func dayOf(t time.Time) int64 { return int64(math.Floor(float64(t.Unix()) / 86400)) }

func (s *State) slot(d int64) *dayAgg {
	n := int64(len(s.days))
	a := &s.days[((d%n)+n)%n]
	if int64(a.day) != d {
		*a = dayAgg{day: int32(d)}
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
	memOK := x.MemoryPeak >= 0 && x.MemoryPeak <= MaxMemoryBytes
	if cpuOK || memOK {
		a.covered += float32(dur.Seconds())
	}
	if cpuOK && (s.startedAt.IsZero() || x.Time.Sub(s.startedAt) >= s.grace) {
		// Weighted by duration so that a short window after a restart
		// counts for what it covers.
		s.cpu.Add(x.CPU, dur.Seconds()/300, x.Time)
	}
	if memOK {
		a.peak = math.Max(a.peak, x.MemoryPeak)
		s.mem.Add(x.MemoryPeak, dur.Seconds()/300, x.Time)
	}
	if x.Periods > 0 && x.ThrottledPeriods >= 0 {
		a.periods += float32(x.Periods)
		a.throttled += float32(math.Min(x.ThrottledPeriods, x.Periods))
	}
	if x.OOMKill {
		a.ooms++
		if t := int32(x.Time.Unix() - d*86400); t >= a.oomSec {
			a.oomSec = t
			a.oomMemory = x.MemoryLimit
			if !(a.oomMemory > 0) && memOK {
				a.oomMemory = x.MemoryPeak
			}
		}
	}
}

// Inputs returns the aggregates at now (the days that overlap the window
// ending at now) for Recommend. The caller fills Current, Replicas and Prices.
// Only samples observed so far count, so feeding samples up to now and
// calling Inputs(now) can never look ahead.
func (s *State) Inputs(now time.Time) Inputs { return s.InputsWithin(now, s.window) }

// InputsWithin is Inputs over the last w of the state's window (all of it
// when w is 0 or longer): memory peaks, coverage, OOM kills and throttling
// of those days only. The CPU histogram is not windowed: it decays.
func (s *State) InputsWithin(now time.Time, w time.Duration) Inputs {
	if w <= 0 || w > s.window {
		w = s.window
	}
	in := Inputs{Window: w}
	nd := dayOf(now)
	from := float64(now.Add(-w).Unix())
	var covered, throttled, periods float64
	var oomAt int64 = math.MinInt64
	for i := range s.days {
		a := &s.days[i]
		day := int64(a.day)
		if day > nd || day <= nd-int64(len(s.days)) || (a.covered == 0 && a.ooms == 0) {
			continue
		}
		// The oldest day is partly before the window: its coverage counts
		// up to the part of the day inside. Exact when that day was read
		// from the window's start (a backfill) or fully covered; otherwise
		// it counts a gap before the window's start as covered. Its peak,
		// OOMs and throttling count whole, which errs on the side of more
		// memory.
		inside := math.Min(86400, float64(day+1)*86400-from)
		if inside <= 0 {
			continue
		}
		covered += math.Min(float64(a.covered), inside)
		in.MemoryPeak = math.Max(in.MemoryPeak, a.peak)
		throttled += float64(a.throttled)
		periods += float64(a.periods)
		in.OOMKills += int(a.ooms)
		if at := day*86400 + int64(a.oomSec); a.ooms > 0 && at > oomAt {
			oomAt, in.OOMMemory = at, a.oomMemory
		}
	}
	in.Coverage = math.Min(1, covered/w.Seconds())
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

// UsageQuantiles are the p50, p95 and maximum of one resource.
type UsageQuantiles struct {
	P50, P95, Max float64
}

// Usage returns the quantiles of the 5-minute CPU means (cores) and memory
// peaks (bytes) observed so far, decayed like the CPU histogram; the
// memory maximum is the window's exact peak. ok is false for a resource
// without samples: unknown, not zero.
func (s *State) Usage(now time.Time) (cpu, mem UsageQuantiles, cpuOK, memOK bool) {
	if !s.cpu.IsEmpty() {
		cpu = UsageQuantiles{P50: s.cpu.Quantile(0.5), P95: s.cpu.Quantile(0.95), Max: s.cpu.Quantile(1)}
		cpuOK = true
	}
	if in := s.Inputs(now); !math.IsNaN(in.MemoryPeak) && !s.mem.IsEmpty() {
		mem = UsageQuantiles{P50: s.mem.Quantile(0.5), P95: s.mem.Quantile(0.95), Max: in.MemoryPeak}
		memOK = true
	}
	return cpu, mem, cpuOK, memOK
}

// LastObserved is the start of the latest window observed; zero before any.
func (s *State) LastObserved() time.Time { return s.last }

// Bytes estimates the state's memory footprint: both histograms' stored
// buckets and headers, the day records and the struct.
func (s *State) Bytes() int {
	return 8*(s.cpu.Buckets()+s.mem.Buckets()) + 2*int(unsafe.Sizeof(Histogram{})) +
		int(unsafe.Sizeof(dayAgg{}))*len(s.days) + int(unsafe.Sizeof(State{}))
}
