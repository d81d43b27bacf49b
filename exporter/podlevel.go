package exporter

import (
	"math"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/pricing"
	"github.com/upid-dev/upid/exporter/recommend"
)

// PodAdvice is the pod-level request (spec.resources) UPID recommends for a
// resource the workload's pod template sets at pod level. There the
// scheduler reserves the pod's request, not its containers' sum, so the
// containers get no figure for it and the pod gets this one
// (recommend.PodLevel). The webhook applies it at admission as it does the
// containers' figures; `upid recommend -o patch` prints it for Git.
type PodAdvice struct {
	Resource string `json:"resource"` // cpu or memory
	// CurrentRequest is the pod's request now: the template's, or what the
	// API server makes of a pod-level limit alone (the containers' sum when
	// they request the resource, else the limit).
	CurrentRequest float64 `json:"current_request"`
	// Limit is the template's pod-level limit, which the request stays
	// under; 0 for none.
	Limit   float64 `json:"limit,omitempty"`
	Request float64 `json:"request"`
	// Confidence is the lowest of the containers' figures: the webhook
	// applies the request only at its minimum confidence.
	Confidence float64 `json:"confidence"`
	// Apply: the request moves by more than the policy's change threshold.
	Apply                 bool    `json:"apply"`
	SavingsDollarsPerHour float64 `json:"savings_dollars_per_hour"`
	MonthlySavings        float64 `json:"monthly_savings_dollars"`
}

// podAdvice sizes each resource the workload sets at pod level from its
// containers' own figures. current holds the regular containers and
// sidecars of the template, recs their recommendations. A resource an HPA
// scales on by utilization is left out: the HPA divides by the pod's
// request, so a new one alone moves the replicas (as with containers).
func podAdvice(w inventory.Workload, current map[string]inventory.Container, recs map[string]recommend.Recommendation, prices recommend.Prices, replicas, threshold float64) []PodAdvice {
	var out []PodAdvice
	aggregate := containerRequests(w.Containers)
	for _, res := range []string{"cpu", "memory"} {
		if !w.Pod.Sets(res) || slices.ContainsFunc(w.HPAUtilization, func(h inventory.HPAResource) bool { return h.Resource == res }) {
			continue
		}
		podReq, podLim, unit, price := w.Pod.CPURequest, w.Pod.CPULimit, 0.001, prices.CPUCoreHour
		if res == "memory" {
			podReq, podLim, unit, price = w.Pod.MemoryRequest, w.Pod.MemoryLimit, 1<<20, prices.MemoryGiBHour/bytesPerGiB
		}
		names := make([]string, 0, len(current))
		for name := range current {
			names = append(names, name)
		}
		sort.Strings(names)
		own := make([]float64, len(names))
		conf := 1.0
		for i, name := range names {
			own[i] = recs[name].OwnCPU
			if res == "memory" {
				own[i] = recs[name].OwnMemory
			}
			conf = math.Min(conf, recs[name].Confidence)
		}
		q := aggregate[corev1.ResourceName(res)]
		floor := q.AsApproximateFloat64()
		r, ok := recommend.PodLevel(own, floor, podLim, unit)
		if !ok {
			continue
		}
		cur := recommend.CreatedRequest(podReq, podLim, floor)
		a := PodAdvice{Resource: res, CurrentRequest: cur, Limit: podLim, Request: r, Confidence: conf}
		a.Apply = cur <= 0 || math.Abs(r-cur)/cur > threshold
		a.SavingsDollarsPerHour = (cur - r) * price * math.Max(replicas, 1)
		a.MonthlySavings = a.SavingsDollarsPerHour * pricing.HoursPerMonth
		out = append(out, a)
	}
	return out
}

// containerRequests is what the containers request together, as the API
// server counts it against a pod-level request
// (resourcehelper.AggregateContainerRequests: regular containers and
// sidecars added, each init container with the sidecars started before it
// as a floor). cs are in the template's order, init containers first.
func containerRequests(cs []inventory.Container) corev1.ResourceList {
	pod := &corev1.Pod{}
	always := corev1.ContainerRestartPolicyAlways
	for _, c := range cs {
		k := corev1.Container{Name: c.Name, Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{}}}
		if c.CPURequest > 0 {
			k.Resources.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(math.Round(c.CPURequest*1000)), resource.DecimalSI)
		}
		if c.MemoryRequest > 0 {
			k.Resources.Requests[corev1.ResourceMemory] = *resource.NewQuantity(int64(math.Round(c.MemoryRequest)), resource.BinarySI)
		}
		switch {
		case c.Sidecar:
			k.RestartPolicy = &always
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, k)
		case c.Init:
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, k)
		default:
			pod.Spec.Containers = append(pod.Spec.Containers, k)
		}
	}
	return resourcehelper.AggregateContainerRequests(pod, resourcehelper.PodResourcesOptions{})
}
