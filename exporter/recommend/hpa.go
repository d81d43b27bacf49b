package recommend

import "math"

// HPAContainer is one container whose request a HorizontalPodAutoscaler's
// utilization target divides by.
type HPAContainer struct {
	// Current is the container's request now; Own what Recommend would
	// request without the HPA (Recommendation.OwnCPU or OwnMemory), 0 when
	// it has no figure (the request stays).
	Current, Own float64
}

// HPAPair is a set of requests and the HPA target that goes with them.
type HPAPair struct {
	// Target is the new averageUtilization, as a fraction (1.25 = 125 %),
	// in whole percent as the HPA takes it.
	Target float64
	// Requests are the new requests, in the order of the containers given.
	Requests []float64
	// Change is (Σnew − Σcurrent) / Σcurrent, as Resource.Change: what a
	// change threshold compares.
	Change float64
}

// PairHPA sizes the requests of the containers an HPA's utilization target
// covers together with a new target, so that the HPA keeps scaling at the
// same usage per pod. An HPA holds usage / request at target, so with
// requests alone a smaller request only buys more replicas: the cluster
// requests load / target either way. Moving the target by the inverse of
// the requests' change keeps the replicas and takes the difference.
//
// Each request is Recommend's own figure, but at least target × its
// current request: pods the HPA holds at its target then stay within their
// requests (the new target is at most 100 %). The new target is target ×
// Σcurrent / Σnew, rounded down to a whole percent: the HPA then scales a
// little earlier than today, never later. unit rounds the floor up (a
// millicore, a MiB). It returns false when target is not positive, a
// current request is missing (the HPA cannot compute utilization without
// it) or no container has a figure.
func PairHPA(target, unit float64, cs []HPAContainer) (HPAPair, bool) {
	if !(target > 0) || math.IsInf(target, 0) || len(cs) == 0 {
		return HPAPair{}, false
	}
	out := HPAPair{Requests: make([]float64, len(cs))}
	var cur, next float64
	figures := false
	for i, c := range cs {
		if !(c.Current > 0) || math.IsInf(c.Current, 0) {
			return HPAPair{}, false
		}
		r := c.Current
		if c.Own > 0 && !math.IsInf(c.Own, 0) {
			figures = true
			r = math.Max(c.Own, roundUp(target*c.Current, unit))
			if math.Abs(r-c.Current) <= 1e-9*c.Current {
				// A pair in force: rounding must not move it.
				r = c.Current
			}
		}
		out.Requests[i] = r
		cur += c.Current
		next += r
	}
	if !figures {
		return HPAPair{}, false
	}
	// The small epsilon keeps an exact product such as 0.7 × 2 / 1.4 from
	// flooring a percent low in binary.
	// An HPA's target is a whole percent, at least 1.
	out.Target = math.Max(0.01, math.Floor(100*target*cur/next+1e-9)/100)
	out.Change = (next - cur) / cur
	return out, true
}
