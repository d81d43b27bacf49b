package exporter

import (
	"math"
	"sort"

	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/pricing"
	"github.com/upid-dev/upid/exporter/recommend"
)

// HPAAdvice pairs new requests with a new target for one utilization
// target of the workload's HorizontalPodAutoscaler (recommend.PairHPA).
// The two go together: the requests alone only change how many replicas
// the HPA asks for, so the webhook never applies them; they are for a
// change made in Git, the HPA's target with the requests.
type HPAAdvice struct {
	HPA      string `json:"hpa"`
	Resource string `json:"resource"` // cpu or memory
	// Container names the container of a ContainerResource target; empty
	// for a target on the whole pod.
	Container string `json:"container,omitempty"`
	// MetricIndex is the target's position in the HPA's spec.metrics; -1
	// for an HPA without metrics, whose default is 80 % CPU.
	MetricIndex              int     `json:"metric_index"`
	CurrentTargetUtilization float64 `json:"current_target_utilization"`
	TargetUtilization        float64 `json:"target_utilization"`
	// Requests are the new requests, by container, in cores or bytes.
	Requests map[string]float64 `json:"requests"`
	// Apply: the requests move by more than the policy's change threshold
	// (summed over the containers the target covers), so the pair is worth
	// a rollout; a pair already in force is not.
	Apply bool `json:"apply"`
	// What the pair saves for all replicas; negative when the containers
	// need more.
	SavingsDollarsPerHour float64 `json:"savings_dollars_per_hour"`
	MonthlySavings        float64 `json:"monthly_savings_dollars"`
}

// hpaAdvice pairs each utilization target of the workload's HPA that has
// figures. current holds the containers of the template that get
// recommendations, recs their recommendations.
func hpaAdvice(w inventory.Workload, current map[string]inventory.Container, recs map[string]recommend.Recommendation, prices recommend.Prices, replicas, threshold float64) []HPAAdvice {
	var out []HPAAdvice
	targets := map[string]int{}
	for _, h := range w.HPAUtilization {
		targets[h.Resource]++
	}
	for _, h := range w.HPAUtilization {
		if w.Pod.Sets(h.Resource) {
			// The HPA then divides by the pod's request, not the
			// containers': pairs at pod level are not modelled.
			continue
		}
		if targets[h.Resource] > 1 {
			// Two targets on one resource (the pod's and a container's)
			// hold its requests to two ratios at once: no single pair.
			continue
		}
		var names []string
		for name := range current {
			if h.Container == "" || h.Container == name {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		cs := make([]recommend.HPAContainer, len(names))
		unit, price := 0.001, prices.CPUCoreHour
		if h.Resource == "memory" {
			unit, price = 1<<20, prices.MemoryGiBHour/bytesPerGiB
		} else if h.Resource != "cpu" {
			continue
		}
		underPeak := false
		for i, name := range names {
			// A request may not exceed its limit: a figure above a limit
			// the pair does not change stops there. For CPU that is
			// throttling; memory held under its own figure (the peak ×
			// margin) invites OOM kills, so such a container gets no pair.
			c, r := current[name], recs[name]
			cs[i] = recommend.HPAContainer{Current: c.CPURequest, Own: capAt(r.OwnCPU, c.CPULimit)}
			if h.Resource == "memory" {
				cs[i] = recommend.HPAContainer{Current: c.MemoryRequest, Own: capAt(r.OwnMemory, c.MemoryLim)}
				underPeak = underPeak || (c.MemoryLim > 0 && r.OwnMemory > c.MemoryLim)
			}
		}
		p, ok := recommend.PairHPA(h.Target, unit, cs)
		if !ok || underPeak {
			continue
		}
		a := HPAAdvice{HPA: w.HPA, Resource: h.Resource, Container: h.Container, MetricIndex: h.Index, CurrentTargetUtilization: h.Target,
			TargetUtilization: p.Target, Requests: make(map[string]float64, len(names))}
		for i, name := range names {
			a.Requests[name] = p.Requests[i]
			a.SavingsDollarsPerHour += (cs[i].Current - p.Requests[i]) * price
		}
		a.Apply = math.Abs(p.Change) > threshold
		a.SavingsDollarsPerHour *= math.Max(replicas, 1)
		a.MonthlySavings = a.SavingsDollarsPerHour * pricing.HoursPerMonth
		out = append(out, a)
	}
	return out
}

// capAt is v, but at most limit when there is one.
func capAt(v, limit float64) float64 {
	if limit > 0 && v > limit {
		return limit
	}
	return v
}
