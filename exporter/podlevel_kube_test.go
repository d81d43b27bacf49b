package exporter_test

import (
	"io"
	"math"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upid-dev/upid/exporter"
)

// TestPodLevelResources runs the exporter against a real kube-apiserver and
// Prometheus, then moves busy-api's resources to the pod level (its
// template's spec.resources: a CPU request of 2 cores and a memory limit of
// 4 GiB, the container requesting nothing). The container loses its
// figures, and the pod gets them: with one container, exactly the figures
// the container had, against 2 cores and the 4 GiB the API server makes
// the pod's memory request from its limit.
func TestPodLevelResources(t *testing.T) {
	kube, svc, ctx, reg := startShop(t, exporterConfig(), io.Discard)
	if err := svc.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	cpuFig := metric(t, reg, "upid_container_recommended_cpu_request_cores", "busy-api")
	memFig := metric(t, reg, "upid_container_recommended_memory_request_bytes", "busy-api")

	c := kube.Clientset.AppsV1().Deployments("shop")
	d, err := c.Get(ctx, "busy-api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
	d.Spec.Template.Spec.Resources = &corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("4Gi")},
	}
	if _, err := c.Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var busy exporter.WorkloadResult
	cycleUntil(ctx, t, svc, "the pod-level resources to reach busy-api", func(ws []exporter.WorkloadResult) bool {
		for _, w := range ws {
			if w.Name == "busy-api" {
				busy = w
			}
		}
		return len(busy.Pod) > 0
	})
	rec := busy.Containers[0].Recommendation
	if rec == nil || rec.CPURequestCores != nil || rec.MemoryRequestBytes != nil ||
		!slices.Contains(rec.Reasons, "pod_level_cpu") || !slices.Contains(rec.Reasons, "pod_level_memory") {
		t.Fatalf("busy-api's container under pod-level resources: %+v, want no figures and both reasons", rec)
	}
	const gib = 1 << 30
	cpuPrice := busy.Cost.CPU / busy.RequestedCPUCores
	memPrice := busy.Cost.Memory / busy.RequestedMemoryBytes
	want := []exporter.PodAdvice{
		{Resource: "cpu", CurrentRequest: 2, Request: cpuFig, Apply: true, SavingsDollarsPerHour: (2 - cpuFig) * cpuPrice * busy.Replicas},
		{Resource: "memory", CurrentRequest: 4 * gib, Limit: 4 * gib, Request: memFig, Apply: true, SavingsDollarsPerHour: (4*gib - memFig) * memPrice * busy.Replicas},
	}
	if len(busy.Pod) != len(want) {
		t.Fatalf("pod advice %+v, want %+v", busy.Pod, want)
	}
	for i, w := range want {
		g := busy.Pod[i]
		if g.Resource != w.Resource || g.CurrentRequest != w.CurrentRequest || g.Limit != w.Limit || math.Abs(g.Request-w.Request) > 1e-9 ||
			g.Apply != w.Apply || math.Abs(g.SavingsDollarsPerHour-w.SavingsDollarsPerHour) > 1e-9 || !(g.SavingsDollarsPerHour > 0) {
			t.Errorf("pod advice %+v, want %+v", g, w)
		}
	}
	if got := metric(t, reg, "upid_workload_pod_recommended_cpu_request_cores", "busy-api"); math.Abs(got-cpuFig) > 1e-9 {
		t.Errorf("pod CPU metric %v, want %v", got, cpuFig)
	}
	if got := metric(t, reg, "upid_workload_pod_recommended_memory_request_bytes", "busy-api"); got != memFig {
		t.Errorf("pod memory metric %v, want %v", got, memFig)
	}
	for _, m := range gathered(t, reg, "upid_workload_pod_recommendation_savings_dollars_per_hour") {
		l := labelsOf(m)
		for _, w := range want {
			if l["workload"] == "busy-api" && l["resource"] == w.Resource && math.Abs(m.GetGauge().GetValue()-w.SavingsDollarsPerHour) > 1e-9 {
				t.Errorf("pod %s savings metric %v, want %v", w.Resource, m.GetGauge().GetValue(), w.SavingsDollarsPerHour)
			}
		}
	}
	promtoolCheck(t, reg)
}
