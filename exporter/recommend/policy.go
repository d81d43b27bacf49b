package recommend

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// LimitPolicy says what happens to limits when requests change.
type LimitPolicy string

// Limit policies.
const (
	// LimitKeep leaves limits as they are, except that a limit below the new
	// request is raised to it (Kubernetes rejects request > limit).
	LimitKeep LimitPolicy = "keep"
	// LimitScale keeps each limit's ratio to its request.
	LimitScale LimitPolicy = "scale"
	// LimitRemoveCPU drops CPU limits and scales the memory limit with its
	// request. CPU is compressible: without a limit a container bursts into
	// idle capacity and under contention gets CPU in proportion to its
	// request, which is how Borg's soft CPU cap behaves; a CFS quota instead
	// throttles it even on an idle node.
	LimitRemoveCPU LimitPolicy = "remove-cpu"
)

// Policy shapes UPID's recommendations. Start from DefaultPolicy;
// docs/recommendations.md explains every default.
//
// Recommend never fails on a bad policy: a field that is NaN, infinite,
// negative or otherwise out of range takes its default. Validate reports
// what would be replaced, for configuration loaders.
type Policy struct {
	// Window is the history the aggregates cover.
	Window time.Duration
	// CPUPercentile (0–1) of the 5-minute mean CPU usage that the request
	// covers.
	CPUPercentile float64
	// CPUMargin is added to that percentile, as a fraction.
	CPUMargin float64
	// MemoryMargin is added to the window's peak working set, as a fraction:
	// memory is never recommended below peak × (1 + MemoryMargin).
	MemoryMargin float64
	// ShortHistoryMargin is added to both margins in proportion to the
	// missing confidence (1 − confidence): little history has not yet seen
	// the weekly peak.
	ShortHistoryMargin float64
	// FullConfidenceHistory is the covered time at which confidence is 1:
	// a week, so that weekly cycles have been seen once.
	FullConfidenceHistory time.Duration
	// MinConfidence: below it there is no recommendation.
	MinConfidence float64
	// MinCPU (cores) and MinMemory (bytes) floor the requests. MinCPU must
	// be above 0: with 0 an idle container would be recommended a CPU
	// request of 0, which the scheduler places as needing no CPU and the
	// kernel gives its minimum CPU weight (2 shares) under contention.
	// Memory needs no such rule: it is never recommended below the peak,
	// which is above 0.
	MinCPU    float64
	MinMemory float64
	// OOMBumpRatio and OOMMinBump (bytes): after an OOM kill memory is at
	// least max(limit at the kill, peak) × OOMBumpRatio and at least that plus
	// OOMMinBump.
	OOMBumpRatio float64
	OOMMinBump   float64
	// ThrottleThreshold: a throttled-periods ratio above it means observed
	// usage was capped by the CPU limit, so the CPU figure is scaled up by
	// (1 + ratio) and a kept limit is raised by ThrottleLimitBump.
	ThrottleThreshold float64
	ThrottleLimitBump float64
	// ChangeThreshold: a request that would move by less than this fraction
	// is not a change; a recommendation is worth applying only if some
	// resource changes.
	ChangeThreshold float64
	// CPUHalfLife is the decay of State's CPU histogram.
	CPUHalfLife time.Duration
	// StartupGrace: State leaves CPU samples this close to a container start
	// out of the CPU distribution (start-up spikes: JIT, cache warm-up).
	// Memory keeps them, since an OOM at start-up kills as surely as later.
	StartupGrace time.Duration
	// Limits is the limit policy.
	Limits LimitPolicy
}

// DefaultPolicy returns the documented defaults.
func DefaultPolicy() Policy {
	return Policy{
		Window:                14 * 24 * time.Hour,
		CPUPercentile:         0.9,
		CPUMargin:             0,
		MemoryMargin:          0.1,
		ShortHistoryMargin:    0.1,
		FullConfidenceHistory: 7 * 24 * time.Hour,
		MinConfidence:         0.1,
		MinCPU:                0.01,
		MinMemory:             32 * mib,
		OOMBumpRatio:          1.2,
		OOMMinBump:            100 * mib,
		ThrottleThreshold:     0.05,
		ThrottleLimitBump:     0.2,
		ChangeThreshold:       0.1,
		CPUHalfLife:           24 * time.Hour,
		StartupGrace:          10 * time.Minute,
		Limits:                LimitRemoveCPU,
	}
}

const (
	mib = 1 << 20
	gib = 1 << 30
	// MaxMemoryBytes bounds a believable working set (1 PiB, some thousand
	// times the largest machines). A larger figure is a broken exporter or
	// recording rule: it is treated as missing, because sized on it every
	// figure would overflow to +Inf, which JSON cannot even carry.
	MaxMemoryBytes = 1 << 50
)

type floatField struct {
	name     string
	v        *float64
	def      float64
	min, max float64 // values outside take the default; max 0 = unbounded
	minOpen  bool    // min itself is invalid
}

type durField struct {
	name string
	v    *time.Duration
	def  time.Duration
	zero bool // zero is allowed
}

// fields returns arrays, not slices, so that Recommend's normalization does
// not allocate: it runs once per container per cycle.
func (p *Policy) fields() ([12]floatField, [4]durField) {
	d := DefaultPolicy()
	return [12]floatField{
			{"CPUPercentile", &p.CPUPercentile, d.CPUPercentile, 0, 1, true},
			{"CPUMargin", &p.CPUMargin, d.CPUMargin, 0, 10, false},
			{"MemoryMargin", &p.MemoryMargin, d.MemoryMargin, 0, 10, false},
			{"ShortHistoryMargin", &p.ShortHistoryMargin, d.ShortHistoryMargin, 0, 0, false},
			{"MinConfidence", &p.MinConfidence, d.MinConfidence, 0, 1, false},
			{"MinCPU", &p.MinCPU, d.MinCPU, 0, 0, true},
			{"MinMemory", &p.MinMemory, d.MinMemory, 0, 0, false},
			{"OOMBumpRatio", &p.OOMBumpRatio, d.OOMBumpRatio, 1, 0, false},
			{"OOMMinBump", &p.OOMMinBump, d.OOMMinBump, 0, 0, false},
			{"ThrottleThreshold", &p.ThrottleThreshold, d.ThrottleThreshold, 0, 1, false},
			{"ThrottleLimitBump", &p.ThrottleLimitBump, d.ThrottleLimitBump, 0, 0, false},
			{"ChangeThreshold", &p.ChangeThreshold, d.ChangeThreshold, 0, 0, false},
		}, [4]durField{
			{"Window", &p.Window, d.Window, false},
			{"FullConfidenceHistory", &p.FullConfidenceHistory, d.FullConfidenceHistory, false},
			{"CPUHalfLife", &p.CPUHalfLife, d.CPUHalfLife, true},
			{"StartupGrace", &p.StartupGrace, d.StartupGrace, true},
		}
}

func (f floatField) bad(v float64) bool {
	return math.IsNaN(v) || math.IsInf(v, 0) || v < f.min || (f.minOpen && v == f.min) || (f.max > 0 && v > f.max)
}

// want describes the valid range, for messages.
func (f floatField) want() string {
	lo := "["
	if f.minOpen {
		lo = "("
	}
	if f.max > 0 {
		return fmt.Sprintf("%s%v, %v]", lo, f.min, f.max)
	}
	if f.minOpen {
		return fmt.Sprintf("more than %v", f.min)
	}
	return fmt.Sprintf("at least %v", f.min)
}

func (l LimitPolicy) valid() bool {
	switch l {
	case LimitKeep, LimitScale, LimitRemoveCPU:
		return true
	}
	return false
}

func (f durField) bad(v time.Duration) bool { return v < 0 || (!f.zero && v == 0) }

// Validate reports every field Recommend would replace.
func (p Policy) Validate() error {
	var errs []error
	ff, df := p.fields()
	for _, f := range ff {
		if f.bad(*f.v) {
			errs = append(errs, fmt.Errorf("%s: %v is out of range", f.name, *f.v))
		}
	}
	for _, f := range df {
		if f.bad(*f.v) {
			errs = append(errs, fmt.Errorf("%s: %v must be positive", f.name, *f.v))
		}
	}
	if !p.Limits.valid() {
		errs = append(errs, fmt.Errorf("Limits: %q is not keep, scale or remove-cpu", p.Limits))
	}
	return errors.Join(errs...)
}

func (p Policy) normalized() Policy {
	ff, df := p.fields()
	for _, f := range ff {
		if f.bad(*f.v) {
			*f.v = f.def
		}
	}
	for _, f := range df {
		if f.bad(*f.v) {
			*f.v = f.def
		}
	}
	if !p.Limits.valid() {
		p.Limits = LimitRemoveCPU
	}
	return p
}
