package webhook

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/internal/testenv"
)

// TestPodLevelSidecarInjectedAfterUPID: a pod with a pod-level CPU
// request of 4 (room for a sidecar), containers requesting 1; UPID lowers
// the pod's request to 1020m; an injector sorted after UPID adds a 30m
// sidecar without touching the pod-level request. On reinvocation UPID
// must raise the pod's request to the containers' 1030m although that is
// under the 10 % change threshold from its own 1020m: below the sum the
// API server rejects the pod (found in review). Without UPID it is
// admitted as well.
func TestPodLevelSidecarInjectedAfterUPID(t *testing.T) {
	k := testenv.StartKube(t, testenv.KubeOptions{})
	ctx := context.Background()
	var recs []exporter.WorkloadResult
	for ns, mode := range map[string]string{"t-pl": ModeEnforce, "t-pl-off": ModeOff} {
		createNamespace(t, k, ns, map[string]string{AnnotationMode: mode})
		idleDeployment(t, k, ns, "web")
		r := workloadResult(ns, "Deployment", "web", 1, 128<<20, 100<<20, 1)
		r.Pod = []exporter.PodAdvice{{Resource: "cpu", Request: 1.02, Confidence: 1}}
		recs = append(recs, r)
	}
	startWithInjector(t, k, recs, false)
	yes := true
	for _, ns := range []string{"t-pl-off", "t-pl"} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "web-abc-", Labels: map[string]string{"pod-template-hash": "abc"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-abc", UID: "0c6b3c3e-1111-4f1e-9c55-000000000001", Controller: &yes}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "128Mi"), nil)},
				Resources: &corev1.ResourceRequirements{Requests: rl("cpu", "4"), Limits: rl("cpu", "8")}},
		}
		got, err := k.Clientset.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Errorf("%s: pod rejected: %v", ns, err)
			continue
		}
		sum := 0.0
		for _, c := range got.Spec.Containers {
			sum += c.Resources.Requests.Cpu().AsApproximateFloat64()
		}
		if pl := got.Spec.Resources.Requests.Cpu().AsApproximateFloat64(); pl < sum || len(got.Spec.Containers) != 2 {
			t.Errorf("%s: pod-level CPU request %v under the containers' %v, or the sidecar is missing (%d containers)", ns, pl, sum, len(got.Spec.Containers))
		}
	}
}
