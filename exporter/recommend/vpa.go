package recommend

import (
	"math"
	"time"
)

// VPAConfig holds the Kubernetes Vertical Pod Autoscaler recommender's
// constants. DefaultVPAConfig has upstream's defaults; every field names the
// flag or constant it mirrors in kubernetes/autoscaler,
// vertical-pod-autoscaler/pkg/recommender.
type VPAConfig struct {
	// logic/recommender.go: flag target-cpu-percentile (targetCPUPercentile).
	TargetCPUPercentile float64
	// logic/recommender.go: flag target-memory-percentile
	// (targetMemoryPercentile); older releases hard-coded the same 0.9 as
	// targetMemoryPeaksPercentile.
	TargetMemoryPercentile float64
	// logic/recommender.go: flag recommendation-margin-fraction
	// (safetyMarginFraction), added on top of the percentile.
	SafetyMarginFraction float64
	// logic/recommender.go: pod-recommendation-min-cpu-millicores
	// (podMinCPUMillicores) and pod-recommendation-min-memory-mb
	// (podMinMemoryMb, multiplied by 1024·1024 upstream), split evenly over
	// the containers of the pod.
	PodMinCPUMillicores float64
	PodMinMemoryMb      float64
	ContainersPerPod    int
	// model/aggregations_config.go: MemoryAggregationInterval
	// (DefaultMemoryAggregationInterval): one memory peak per interval.
	MemoryAggregationInterval time.Duration
	// model/aggregations_config.go: MemoryAggregationIntervalCount
	// (DefaultMemoryAggregationIntervalCount); interval × count is the
	// history the recommender loads and after which idle aggregates expire.
	MemoryAggregationIntervalCount int
	// model/aggregations_config.go: OOMBumpUpRatio and OOMMinBumpUp
	// (DefaultOOMBumpUpRatio, DefaultOOMMinBumpUp, bytes).
	OOMBumpUpRatio float64
	OOMMinBumpUp   float64
	// CPU and memory histograms (bucketing and decay half-lives).
	CPUHistogram    HistogramOptions
	MemoryHistogram HistogramOptions
}

// DefaultVPAConfig returns upstream's defaults.
func DefaultVPAConfig() VPAConfig {
	return VPAConfig{
		TargetCPUPercentile:            0.9,
		TargetMemoryPercentile:         0.9,
		SafetyMarginFraction:           0.15,
		PodMinCPUMillicores:            25,
		PodMinMemoryMb:                 250,
		ContainersPerPod:               1,
		MemoryAggregationInterval:      24 * time.Hour,
		MemoryAggregationIntervalCount: 8,
		OOMBumpUpRatio:                 1.2,
		OOMMinBumpUp:                   100 * 1024 * 1024,
		CPUHistogram:                   CPUHistogramOptions(),
		MemoryHistogram:                MemoryHistogramOptions(),
	}
}

// vpaMinSampleWeight is the floor of a CPU sample's weight in
// model/aggregate_container_state.go (addCPUSample, minSampleWeight).
const vpaMinSampleWeight = 0.1

// VPA replays the VPA recommender for one container: its
// AggregateContainerState (a decaying CPU histogram and a decaying histogram
// of memory peaks, one per aggregation interval) fed through its
// ContainerState's interval logic (model/container.go), and the target
// estimator chain of logic/recommender.go: percentile, then margin, then the
// per-container share of the pod minimum. Lower and upper bounds, which only
// steer the updater's eviction decisions, are not modelled.
type VPA struct {
	cfg    VPAConfig
	cpu    *Histogram
	memory *Histogram

	firstSample, lastSample time.Time
	samples                 int

	lastCPU    time.Time
	lastMemory time.Time
	windowEnd  time.Time
	memoryPeak float64
	oomPeak    float64
}

// NewVPA returns an empty VPA state. Invalid histogram options in cfg fall
// back to upstream's.
func NewVPA(cfg VPAConfig) *VPA {
	cpu, err := NewHistogram(cfg.CPUHistogram)
	if err != nil {
		cpu = mustHistogram(CPUHistogramOptions())
	}
	mem, err := NewHistogram(cfg.MemoryHistogram)
	if err != nil {
		mem = mustHistogram(MemoryHistogramOptions())
	}
	if cfg.ContainersPerPod < 1 {
		cfg.ContainersPerPod = 1
	}
	if cfg.MemoryAggregationInterval <= 0 {
		cfg.MemoryAggregationInterval = 24 * time.Hour
	}
	return &VPA{cfg: cfg, cpu: cpu, memory: mem}
}

// AddCPU aggregates a CPU usage sample in cores, weighted by the container's
// request at the time (at least 0.1 core), as upstream does so that history
// recorded under a larger request fades faster when the request grows.
// Out-of-order and duplicate samples are dropped, as upstream drops them.
func (v *VPA) AddCPU(start time.Time, usageCores, requestCores float64) {
	if !finiteNonNeg(usageCores) || !start.After(v.lastCPU) {
		return
	}
	v.lastCPU = start
	// Samples reach upstream as int64 millicores.
	usageCores = math.Trunc(usageCores*1000) / 1000
	requestCores = math.Trunc(requestCores*1000) / 1000
	v.cpu.Add(usageCores, math.Max(requestCores, vpaMinSampleWeight), start)
	if start.After(v.lastSample) {
		v.lastSample = start
	}
	if v.firstSample.IsZero() || start.Before(v.firstSample) {
		v.firstSample = start
	}
	v.samples++
}

// AddMemory aggregates a memory usage sample in bytes: it becomes the peak
// of its aggregation interval if it is the first or the highest so far.
func (v *VPA) AddMemory(start time.Time, bytes float64) {
	v.addMemory(start, bytes, false)
}

func (v *VPA) addMemory(ts time.Time, usage float64, oom bool) bool {
	if !finiteNonNeg(usage) || (!oom && ts.Before(v.lastMemory)) {
		return false
	}
	usage = math.Trunc(usage)
	v.lastMemory = ts
	if v.windowEnd.IsZero() {
		v.windowEnd = ts
	}
	addNewPeak := false
	if ts.Before(v.windowEnd) {
		old := math.Max(v.memoryPeak, v.oomPeak)
		if old != 0 && usage > old {
			v.memory.Subtract(old, 1, v.windowEnd)
			addNewPeak = true
		}
	} else {
		iv := v.cfg.MemoryAggregationInterval
		shift := ts.Sub(v.windowEnd).Truncate(iv) + iv
		v.windowEnd = v.windowEnd.Add(shift)
		v.memoryPeak, v.oomPeak = 0, 0
		addNewPeak = true
	}
	if addNewPeak {
		v.memory.Add(usage, 1, v.windowEnd)
		if oom {
			v.oomPeak = usage
		} else {
			v.memoryPeak = usage
		}
	}
	return true
}

// RecordOOM records an OOM kill at ts of a container whose memory request
// was requestBytes: an artificial peak of max(request, recent peak) bumped by
// OOMBumpUpRatio, and by at least OOMMinBumpUp (model/container.go,
// RecordOOM). OOMs older than one aggregation interval before the current
// one are discarded, as upstream discards them.
func (v *VPA) RecordOOM(ts time.Time, requestBytes float64) {
	if ts.Before(v.windowEnd.Add(-v.cfg.MemoryAggregationInterval)) {
		return
	}
	used := math.Max(requestBytes, v.memoryPeak)
	needed := math.Max(used+v.cfg.OOMMinBumpUp, used*v.cfg.OOMBumpUpRatio)
	v.addMemory(ts, needed, true)
}

// VPAResources is a CPU (cores) and memory (bytes) pair.
type VPAResources struct{ CPU, Memory float64 }

// VPARecommendation is what the VPA recommender publishes for a container.
type VPARecommendation struct {
	Target, LowerBound, UpperBound VPAResources
}

// Recommendation returns the target and bounds, with ok false before any
// CPU sample (upstream needs CPU samples to know the container).
//
// Each figure is upstream's estimator chain (logic/recommender.go,
// CreatePodResourceRecommender and GetRecommendedPodResources): a
// percentile of the histogram (target 0.9, lower bound 0.5, upper bound
// 0.95), plus SafetyMarginFraction, times a confidence multiplier for the
// bounds ((1 + 1/c)^1 for the upper and (1 + 0.001/c)^−2 for the lower, c
// from Confidence), then the per-container share of the pod minimum.
func (v *VPA) Recommendation() (VPARecommendation, bool) {
	if v.samples == 0 {
		return VPARecommendation{}, false
	}
	c := v.Confidence()
	// Upstream keeps CPU as int64 millicores and memory as int64 bytes and
	// converts with truncation at every step (model/types.go,
	// resourceAmountFromFloat, ScaleResource); mirror it, since a truncated
	// millicore is a few per cent of a small container.
	frac := 1 / float64(v.cfg.ContainersPerPod)
	minCPU := amount(amount(v.cfg.PodMinCPUMillicores*0.001*1000) * frac)
	minMem := amount(amount(v.cfg.PodMinMemoryMb*1024*1024) * frac)
	est := func(h *Histogram, p, scale, mult, exp, minimum float64) float64 {
		x := amount(h.Percentile(p) * scale)
		x += amount(x * v.cfg.SafetyMarginFraction)
		if mult != 0 {
			x = amount(x * math.Pow(1+mult/c, exp))
		}
		return math.Max(x, minimum)
	}
	var r VPARecommendation
	r.Target.CPU = est(v.cpu, v.cfg.TargetCPUPercentile, 1000, 0, 0, minCPU) / 1000
	r.LowerBound.CPU = est(v.cpu, vpaLowerBoundPercentile, 1000, 0.001, -2, minCPU) / 1000
	r.UpperBound.CPU = est(v.cpu, vpaUpperBoundPercentile, 1000, 1, 1, minCPU) / 1000
	r.Target.Memory = est(v.memory, v.cfg.TargetMemoryPercentile, 1, 0, 0, minMem)
	r.LowerBound.Memory = est(v.memory, vpaLowerBoundPercentile, 1, 0.001, -2, minMem)
	r.UpperBound.Memory = est(v.memory, vpaUpperBoundPercentile, 1, 1, 1, minMem)
	return r, true
}

// Bound percentiles: flags recommendation-lower-bound-{cpu,memory}-percentile
// and recommendation-upper-bound-{cpu,memory}-percentile.
const (
	vpaLowerBoundPercentile = 0.5
	vpaUpperBoundPercentile = 0.95
)

// vpaMaxResourceAmount is upstream's MaxResourceAmount (1e14).
const vpaMaxResourceAmount = 1e14

// amount is resourceAmountFromFloat: clamp to [0, 1e14] and truncate.
func amount(x float64) float64 {
	if x > vpaMaxResourceAmount || math.IsNaN(x) {
		return vpaMaxResourceAmount
	}
	return math.Trunc(math.Max(x, 0))
}

// Target returns the VPA target (see Recommendation).
func (v *VPA) Target() (cpuCores, memoryBytes float64, ok bool) {
	r, ok := v.Recommendation()
	return r.Target.CPU, r.Target.Memory, ok
}

// VPAShouldUpdate is the updater's decision for a one-container pod that
// has lived at least podLifetimeUpdateThreshold (12 h): evict when a current
// request is outside [LowerBound, UpperBound], or when the relative
// differences between requests and targets, summed over resources, reach
// minChangePriority (defaultUpdateThreshold, 0.10)
// (pkg/updater/priority/update_priority_calculator.go). A zero current
// request counts as outside the range, as upstream treats a missing one.
func VPAShouldUpdate(current VPAResources, rec VPARecommendation, minChangePriority float64) bool {
	diff := 0.0
	for _, x := range [][4]float64{
		{current.CPU, rec.Target.CPU, rec.LowerBound.CPU, rec.UpperBound.CPU},
		{current.Memory, rec.Target.Memory, rec.LowerBound.Memory, rec.UpperBound.Memory},
	} {
		cur, target, lo, hi := x[0], x[1], x[2], x[3]
		if target <= 0 {
			continue // resource not recommended
		}
		if cur <= 0 || cur < lo || cur > hi {
			return true
		}
		diff += math.Abs(cur-target) / cur
	}
	return diff >= minChangePriority
}

// VPAUpdateThreshold is the updater's defaultUpdateThreshold.
const VPAUpdateThreshold = 0.10

// Confidence is upstream's getConfidence (logic/estimator.go): the smaller of
// the history span in days and the sample count in days at one sample per
// minute. It scales the VPA's bounds, not its target.
func (v *VPA) Confidence() float64 {
	days := float64(v.lastSample.Sub(v.firstSample)) / float64(24*time.Hour)
	return math.Min(days, float64(v.samples)/(60*24))
}
