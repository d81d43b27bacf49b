package webhook

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// A pod-level figure past what a quantity holds (an exporter bug, or a
// garbled answer) must be dropped, as a container's past maxValue is, not
// written as a wrapped-around quantity (found in review).
func TestPodLevelOverflow(t *testing.T) {
	for _, tc := range []struct {
		r    corev1.ResourceName
		want float64
	}{{corev1.ResourceMemory, 1.5e20}, {corev1.ResourceCPU, 1e17}} {
		pod := webPod(nil)
		pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "256Mi")}
		pod.Spec.Resources = &corev1.ResourceRequirements{Requests: rl("cpu", "1", "memory", "1Gi")}
		plan := Decide(pod, &WorkloadRecs{Pod: map[corev1.ResourceName]float64{tc.r: tc.want}}, Constraints{}, defaultPolicy)
		if !plan.Changed() {
			t.Logf("%s: %s", tc.r, plan.Reason)
			continue
		}
		got := applyPatch(t, pod, plan, ModeEnforce)
		q := got.Spec.Resources.Requests[tc.r]
		t.Errorf("pod-level %s target %g written as %s (%v)", tc.r, tc.want, q.String(), q.AsApproximateFloat64())
	}
}
