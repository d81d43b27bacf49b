package recommend

import "math"

// PodLevel sizes a pod-level request (spec.resources) from the figures its
// containers would get on their own (Recommendation.OwnCPU or OwnMemory of
// the regular containers and native sidecars). Their sum covers the pod:
// the peak of a sum is at most the sum of the peaks, and a percentile of a
// sum equals the sum of the percentiles when the containers' use rises and
// falls together, as under one load, and is usually below it otherwise. floor is what the
// containers request now (resourcehelper.AggregateContainerRequests), which
// the API server requires the pod's request to cover; limit is the pod's
// limit, 0 for none, which the request may not exceed. unit rounds up (a
// millicore, a MiB). It returns false when a container has no figure: a
// pod's sum cannot be sized from part of it.
func PodLevel(own []float64, floor, limit, unit float64) (float64, bool) {
	if len(own) == 0 {
		return 0, false
	}
	sum := 0.0
	for _, v := range own {
		if !(v > 0) || math.IsInf(v, 0) {
			return 0, false
		}
		sum += v
	}
	r := roundUp(math.Max(sum, floor), unit)
	if limit > 0 && r > limit {
		r = limit
	}
	return r, true
}

// CreatedRequest is the pod-level request a pod is created with, as the
// API server completes it (DefaultPodLevelResources): its own; else, when
// its containers request the resource, their sum (aggregate, as
// resourcehelper.AggregateContainerRequests counts it); else its limit. 0
// when the pod sets neither.
func CreatedRequest(request, limit, aggregate float64) float64 {
	switch {
	case request > 0:
		return request
	case aggregate > 0:
		return aggregate
	}
	return limit
}
