// Package recommend computes per-container CPU and memory requests (and
// limits) from usage history: UPID's own recommender, a pure function of
// window aggregates, and the two baselines it is measured against, the
// Kubernetes VPA recommender and robusta-dev/krr's simple strategy, each
// reproducing its upstream rules and constants.
//
// Recommend never reads raw samples. Its Inputs are aggregates that either
// Prometheus computes over the window (quantile_over_time, max_over_time,
// increase) or State maintains incrementally from 5-minute samples in a few
// hundred bytes per container (a decaying histogram and one small record per
// day), so a cycle over 100,000 containers costs neither 100,000 range
// queries nor their raw samples. docs/recommendations.md describes the model,
// its defaults and the backtest behind them.
package recommend

import (
	"math"
	"slices"
	"time"
)

// Quantiles is a usage distribution. *Histogram (through Quantile) and
// FixedQuantiles, the shape of quantile_over_time results, satisfy it.
type Quantiles interface {
	Quantile(p float64) float64
}

// QuantilePoint is one known quantile: P in [0, 1] and its value.
type QuantilePoint struct{ P, V float64 }

// FixedQuantiles is a distribution known only at a few quantiles, as
// Prometheus returns them. Between points it interpolates; beyond the
// highest point it returns the highest value, since the tail is unknown.
type FixedQuantiles []QuantilePoint

// Quantile implements Quantiles.
func (q FixedQuantiles) Quantile(p float64) float64 {
	pts := slices.Clone(q)
	pts = slices.DeleteFunc(pts, func(x QuantilePoint) bool {
		return math.IsNaN(x.P) || math.IsNaN(x.V) || x.P < 0 || x.P > 1 || x.V < 0 || math.IsInf(x.V, 0)
	})
	if len(pts) == 0 {
		return math.NaN()
	}
	slices.SortFunc(pts, func(a, b QuantilePoint) int {
		switch {
		case a.P < b.P:
			return -1
		case a.P > b.P:
			return 1
		}
		return 0
	})
	if p <= pts[0].P {
		return pts[0].V
	}
	for i := 1; i < len(pts); i++ {
		if p <= pts[i].P {
			a, b := pts[i-1], pts[i]
			if b.P == a.P {
				return b.V
			}
			return a.V + (b.V-a.V)*(p-a.P)/(b.P-a.P)
		}
	}
	return pts[len(pts)-1].V
}

// Resources are a container's current requests and limits: CPU in cores,
// memory in bytes, 0 meaning unset.
type Resources struct {
	CPURequest, CPULimit       float64
	MemoryRequest, MemoryLimit float64
}

// Prices are what a core and a GiB cost per hour on the container's node.
type Prices struct {
	CPUCoreHour   float64
	MemoryGiBHour float64
}

// HoursPerMonth is the month length for dollar figures (365·24/12).
const HoursPerMonth = 730

// Inputs are the aggregates Recommend needs for one container over
// Window. Zero values mean "none" where that is meaningful (no OOM kill, no
// throttling); the fields that can be missing say how.
type Inputs struct {
	Window time.Duration
	// Coverage is the fraction of Window with usage samples; Coverage ×
	// Window is the history the confidence is based on.
	Coverage float64
	// CPU is the distribution of 5-minute mean CPU usage in cores over the
	// window, start-up excluded where known; nil when missing.
	CPU Quantiles
	// MemoryPeak is the window's peak working set in bytes; NaN or <= 0 when
	// missing.
	MemoryPeak float64
	// OOMKills in the window, and the memory limit (or usage if no limit) in
	// bytes at the latest one; 0 when unknown.
	OOMKills  int
	OOMMemory float64
	// ThrottledRatio is throttled CFS periods / periods over the window;
	// 0 or NaN when there is no limit or it is unknown.
	ThrottledRatio float64
	// HPACPU and HPAMemory: a HorizontalPodAutoscaler scales the workload
	// on this container's utilization of the resource. Utilization is use
	// over the request, so a new request would move the HPA's target (a
	// halved request doubles the replicas it asks for): that request
	// stays, with no figure, as the VPA's own docs advise.
	HPACPU, HPAMemory bool
	// PodCPU and PodMemory: the pod sets the resource at pod level
	// (spec.resources), so the scheduler reserves the pod's request and
	// the container's own request saves nothing: no figure either.
	PodCPU, PodMemory bool

	Current  Resources
	Replicas float64 // for the dollar figure; <= 0 counts as 1
	Prices   Prices
}

// Resource is the recommendation for one resource.
type Resource struct {
	// OK is false when there is no data for this resource; the other
	// fields are then zero and the current values should stay.
	OK bool
	// Request and Limit recommended; Limit 0 means no limit.
	Request, Limit float64
	// Lower and Upper bound the requests that fit the history, like the
	// VPA's bounds: below Lower the container is likely under-provisioned,
	// above Upper it is surely over-provisioned. Lower <= Request <= Upper;
	// docs/recommendations.md gives the formulas.
	Lower, Upper float64
	// Change is (Request − current)/current; +Inf when there is no current
	// request.
	Change float64
	// Changed: |Change| exceeds the policy's ChangeThreshold, or the
	// current request is unsafe (memory below the peak with its margin, CPU
	// throttled under a kept limit).
	Changed bool
}

// Recommendation is Recommend's result.
type Recommendation struct {
	// OK is false when there is no recommendation at all (low confidence
	// or no data); Reasons says why. A resource without data has its own
	// OK false while the other is still recommended.
	OK bool
	// Confidence in [0, 1] from the covered history.
	Confidence  float64
	CPU, Memory Resource
	// Apply: some resource changed beyond the threshold, so the
	// recommendation is worth a restart. Applying sets every resource to its
	// Request, like the VPA updater which evicts a pod for its biggest
	// difference and the admission controller which then sets all.
	Apply bool
	// MonthlySavings in dollars if applied, for all replicas; negative when
	// the container needs more.
	MonthlySavings float64
	Reasons        []string
	// OwnCPU and OwnMemory are, for a resource with no figure of its own
	// because an HPA scales on it by utilization or the pod sets it at pod
	// level, the request this container would get without that; 0
	// otherwise. PairHPA turns them into requests that go with a new HPA
	// target, and the pod-level figure adds them up.
	OwnCPU, OwnMemory float64
}

// Reasons.
const (
	ReasonLowConfidence  = "low_confidence" // not enough covered history
	ReasonNoCPUData      = "no_cpu_data"
	ReasonNoMemoryData   = "no_memory_data"
	ReasonShortHistory   = "short_history"          // confidence < 1: margins widened
	ReasonOOMBump        = "oom_bump"               // memory raised after OOM kills
	ReasonCPUThrottled   = "cpu_throttled"          // CPU raised for throttled usage
	ReasonMinimum        = "minimum"                // a floor applied
	ReasonBelowThreshold = "below_threshold"        // nothing moves enough to apply
	ReasonHPACPU         = "hpa_cpu_utilization"    // an HPA scales on CPU utilization: CPU stays
	ReasonHPAMemory      = "hpa_memory_utilization" // an HPA scales on memory utilization: memory stays
	ReasonPodCPU         = "pod_level_cpu"          // the pod sets CPU at pod level: the container's stays
	ReasonPodMemory      = "pod_level_memory"       // the pod sets memory at pod level: the container's stays
)

// Recommend computes the recommendation for one container. It is a pure
// function: same inputs, same answer, no I/O.
func Recommend(in Inputs, p Policy) Recommendation {
	r := recommendOne(in, p)
	cpuHeld, memHeld := in.HPACPU || in.PodCPU, in.HPAMemory || in.PodMemory
	if cpuHeld || memHeld {
		free := in
		free.HPACPU, free.HPAMemory, free.PodCPU, free.PodMemory = false, false, false, false
		f := recommendOne(free, p)
		if cpuHeld && f.CPU.OK {
			r.OwnCPU = f.CPU.Request
		}
		if memHeld && f.Memory.OK {
			r.OwnMemory = f.Memory.Request
		}
	}
	return r
}

func recommendOne(in Inputs, p Policy) Recommendation {
	p = p.normalized()
	var r Recommendation
	cov := in.Coverage
	if math.IsNaN(cov) || cov < 0 {
		cov = 0
	}
	cov = math.Min(cov, 1)
	covered := time.Duration(cov * float64(max(in.Window, 0)))
	r.Confidence = math.Min(1, float64(covered)/float64(p.FullConfidenceHistory))
	if r.Confidence < p.MinConfidence {
		r.Reasons = append(r.Reasons, ReasonLowConfidence)
		return r
	}
	cpuQ := math.NaN()
	if in.CPU != nil {
		cpuQ = in.CPU.Quantile(p.CPUPercentile)
	}
	peak := in.MemoryPeak
	cpuOK := cpuQ >= 0 && !math.IsInf(cpuQ, 0) && !in.HPACPU && !in.PodCPU
	memOK := peak > 0 && peak <= MaxMemoryBytes && !in.HPAMemory && !in.PodMemory
	switch {
	case in.PodCPU:
		r.Reasons = append(r.Reasons, ReasonPodCPU)
	case in.HPACPU:
		r.Reasons = append(r.Reasons, ReasonHPACPU)
	case !cpuOK:
		r.Reasons = append(r.Reasons, ReasonNoCPUData)
	}
	switch {
	case in.PodMemory:
		r.Reasons = append(r.Reasons, ReasonPodMemory)
	case in.HPAMemory:
		r.Reasons = append(r.Reasons, ReasonHPAMemory)
	case !memOK:
		r.Reasons = append(r.Reasons, ReasonNoMemoryData)
	}
	if !cpuOK && !memOK {
		return r
	}
	r.OK = true
	extra := p.ShortHistoryMargin * (1 - r.Confidence)
	if r.Confidence < 1 {
		r.Reasons = append(r.Reasons, ReasonShortHistory)
	}
	cur := in.Current
	// The bounds widen with short history as the VPA's do, by 1 + 1/days
	// of covered history (an hour at least, so that it stays finite).
	widen := 1 + 24*float64(time.Hour)/float64(max(covered, time.Hour))
	var cpu, mem float64
	throttled := false
	minimum := false
	if cpuOK {
		cpu = cpuQ * (1 + p.CPUMargin + extra)
		throttled = in.ThrottledRatio > p.ThrottleThreshold && cur.CPULimit > 0
		if throttled {
			// Usage was capped by the quota for that share of periods, so
			// the observed distribution is censored: scale it by the
			// missing share.
			cpu *= 1 + math.Min(in.ThrottledRatio, 1)
			r.Reasons = append(r.Reasons, ReasonCPUThrottled)
		}
		minimum = cpu < p.MinCPU
		cpu = roundUp(math.Max(cpu, p.MinCPU), 0.001)
		censored := 1.0
		if throttled {
			censored += math.Min(in.ThrottledRatio, 1)
		}
		lower := in.CPU.Quantile(boundsLowerPercentile) * (1 + p.CPUMargin) * censored
		upper := in.CPU.Quantile(1) * (1 + p.CPUMargin) * censored * widen
		// CPU has no floor to defend: below the percentile a container
		// without a limit borrows idle CPU. Throttling under a kept limit
		// is the exception and always moves.
		floor := 0.0
		if throttled {
			floor = math.Inf(1)
		}
		r.CPU = resource(cpu, cur.CPURequest, floor, p.ChangeThreshold)
		r.CPU.Lower, r.CPU.Upper = bounds(lower, upper, cpu, p.MinCPU, 0.001)
	}
	if memOK {
		mem = peak * (1 + p.MemoryMargin + extra)
		lower := peak * (1 + p.MemoryMargin)
		upper := lower
		if in.OOMKills > 0 {
			base := peak
			if in.OOMMemory <= MaxMemoryBytes { // NaN and garbage leave the peak
				base = math.Max(peak, in.OOMMemory)
			}
			bumped := math.Max(base*p.OOMBumpRatio, base+p.OOMMinBump)
			if bumped > mem {
				mem = bumped
				r.Reasons = append(r.Reasons, ReasonOOMBump)
			}
			// The memory that was killed is too little by definition.
			lower = math.Max(lower, base)
			upper = math.Max(upper, bumped)
		}
		upper *= widen
		minimum = minimum || mem < p.MinMemory
		mem = roundUp(math.Max(mem, p.MinMemory), mib)
		r.Memory = resource(mem, cur.MemoryRequest, peak*(1+p.MemoryMargin), p.ChangeThreshold)
		r.Memory.Lower, r.Memory.Upper = bounds(lower, upper, mem, p.MinMemory, mib)
	}
	if minimum {
		r.Reasons = append(r.Reasons, ReasonMinimum)
	}
	r.CPU.Limit, r.Memory.Limit = limits(p, cur, cpu, mem, throttled)
	if !cpuOK {
		r.CPU.Limit = 0
	}
	if !memOK {
		r.Memory.Limit = 0
	}
	r.Apply = r.CPU.Changed || r.Memory.Changed
	if !r.Apply {
		r.Reasons = append(r.Reasons, ReasonBelowThreshold)
	}
	replicas := in.Replicas
	if !(replicas > 0) {
		replicas = 1
	}
	// A resource without a recommendation or a current request saves
	// nothing either way.
	perHour := 0.0
	if r.CPU.OK && cur.CPURequest > 0 {
		perHour += (cur.CPURequest - cpu) * in.Prices.CPUCoreHour
	}
	if r.Memory.OK && cur.MemoryRequest > 0 {
		perHour += (cur.MemoryRequest - mem) / gib * in.Prices.MemoryGiBHour
	}
	r.MonthlySavings = perHour * HoursPerMonth * replicas
	return r
}

// resource compares the recommendation with the current request. The
// threshold only holds back small moves while the current request is still
// safe: a memory request below the peak times its margin is raised whatever
// the size of the step, or UPID would break its own floor for want of a big
// enough reason.
func resource(req, cur, floor, threshold float64) Resource {
	r := Resource{OK: true, Request: req}
	if cur > 0 {
		r.Change = (req - cur) / cur
	} else {
		r.Change = math.Inf(1)
	}
	r.Changed = math.Abs(r.Change) > threshold || cur < floor
	return r
}

// boundsLowerPercentile is the CPU quantile of the lower bound, the VPA's
// lowerBoundCPUPercentile: a request below the median is short of what the
// container uses most of the time.
const boundsLowerPercentile = 0.5

// bounds floors and rounds the bounds like the request, and keeps the
// request between them.
func bounds(lower, upper, req, floor, unit float64) (float64, float64) {
	if math.IsNaN(lower) {
		lower = 0
	}
	if math.IsNaN(upper) || math.IsInf(upper, 0) {
		upper = req
	}
	lower = math.Min(roundUp(math.Max(lower, floor), unit), req)
	upper = math.Max(roundUp(math.Max(upper, floor), unit), req)
	return lower, upper
}

// limits applies the limit policy; a limit is never below its request.
func limits(p Policy, cur Resources, cpu, mem float64, throttled bool) (cpuLimit, memLimit float64) {
	scaled := func(limit, request, newRequest float64) float64 {
		if limit <= 0 {
			return 0
		}
		if request <= 0 {
			return math.Max(limit, newRequest)
		}
		return newRequest * math.Max(1, limit/request)
	}
	switch p.Limits {
	case LimitKeep:
		cpuLimit, memLimit = cur.CPULimit, cur.MemoryLimit
	case LimitScale:
		cpuLimit = scaled(cur.CPULimit, cur.CPURequest, cpu)
		memLimit = scaled(cur.MemoryLimit, cur.MemoryRequest, mem)
	default:
		memLimit = scaled(cur.MemoryLimit, cur.MemoryRequest, mem)
	}
	if cpuLimit > 0 && throttled {
		cpuLimit = math.Max(cpuLimit, cur.CPULimit*(1+p.ThrottleLimitBump))
	}
	if cpuLimit > 0 {
		cpuLimit = roundUp(math.Max(cpuLimit, cpu), 0.001)
	}
	if memLimit > 0 {
		memLimit = roundUp(math.Max(memLimit, mem), mib)
	}
	return cpuLimit, memLimit
}

// roundUp rounds up to a multiple of unit, as quantities are written
// (millicores, MiB); the tiny epsilon keeps exact multiples from moving.
// The epsilon also takes 0 to Ceil(−1e-9) = −0, which JSON prints as "-0":
// math.Max turns it into +0.
func roundUp(v, unit float64) float64 {
	return math.Max(0, math.Ceil(v/unit-1e-9)*unit)
}
