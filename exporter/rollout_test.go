package exporter_test

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/internal/series"
	"github.com/upid-dev/upid/internal/testenv"
)

// TestOwnersBeyondDeployments: an Argo Rollout makes a ReplicaSet per
// revision, as a Deployment does, but names itself as their controller.
// Its pods resolve to the Rollout, in the inventory and in the queries, so
// a new revision is sized on the whole history: the previous revision's
// memory peak, a day before the rollout, still holds the request up. Sized
// per ReplicaSet, the new revision would have had no history (no
// recommendation) and the old one no pods. A static pod, whose mirror its
// Node owns, is a workload of its own (kind Pod), as a bare pod is; the
// pods of an operator's controller make one of its kind.
func TestOwnersBeyondDeployments(t *testing.T) {
	now := time.Now().Truncate(time.Minute)
	rolledAt := now.Add(-24 * time.Hour)
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := kube.Clientset
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Status: corev1.NodeStatus{Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("16Gi")}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rollout := kube.CreateRollout(ctx, t, "shop", "canary", nil)
	container := corev1.Container{Name: "app", Image: "app:2", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("2Gi")}}}
	// The old revision is scaled to 0 and its pod gone; the new one runs.
	for _, rev := range []struct {
		hash     string
		replicas int32
	}{{"5d6c", 0}, {"7f8b", 1}} {
		labels := map[string]string{"app": "canary", "rollouts-pod-template-hash": rev.hash}
		if _, err := c.AppsV1().ReplicaSets("shop").Create(ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "canary-" + rev.hash, Labels: labels, OwnerReferences: []metav1.OwnerReference{testenv.RolloutOwner(rollout)}},
			Spec: appsv1.ReplicaSetSpec{Replicas: &rev.replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{container}}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A Rollout scaled to zero is asleep, as a Deployment at zero is.
	asleep := kube.CreateRollout(ctx, t, "shop", "asleep", nil)
	zero := int32(0)
	asleepLabels := map[string]string{"app": "asleep", "rollouts-pod-template-hash": "1a2b"}
	if _, err := c.AppsV1().ReplicaSets("shop").Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "asleep-1a2b", Labels: asleepLabels, OwnerReferences: []metav1.OwnerReference{testenv.RolloutOwner(asleep)}},
		Spec: appsv1.ReplicaSetSpec{Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: asleepLabels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: asleepLabels}, Spec: corev1.PodSpec{Containers: []corev1.Container{container}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rs, err := c.AppsV1().ReplicaSets("shop").Get(ctx, "canary-7f8b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, err := c.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "canary-7f8b-x", Labels: rs.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{container}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	node, err := c.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "etcd-n1", Annotations: map[string]string{corev1.MirrorPodAnnotationKey: "a1b2"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "n1", UID: node.UID, Controller: &yes}}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "etcd", Image: "etcd:3", Resources: container.Resources}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// A pod of an operator's controller, which the inventory does not
	// watch: its workload is made from its newest pod.
	if _, err := c.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "clone-x", Labels: map[string]string{"app": "clone"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps.kruise.io/v1alpha1", Kind: "CloneSet", Name: "clone", UID: "5e1f0c3a-0000-4000-8000-000000000001", Controller: &yes}}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{container}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// What kube-state-metrics and cAdvisor recorded: the old revision's pod
	// for a day at up to 800 MiB, the new one's since at 300 MiB.
	const mib = 1 << 20
	var recorded []series.Series
	for _, p := range []struct {
		rs, pod    string
		start, end time.Time
		memory     float64
	}{
		{"canary-5d6c", "canary-5d6c-x", now.Add(-48 * time.Hour), rolledAt, 800 * mib},
		{"canary-7f8b", "canary-7f8b-x", rolledAt, now.Add(-time.Minute), 300 * mib},
	} {
		ref := series.PodRef{Namespace: "shop", Pod: p.pod, Container: "app", Node: "n1"}
		ones := series.Generate(p.start, p.end, time.Minute, series.Const(1))
		recorded = append(recorded,
			series.ContainerCPUUsageSeconds(ref, series.GenerateCounter(p.start, p.end, time.Minute, series.Const(0.2))),
			series.ContainerMemoryWorkingSet(ref, series.Generate(p.start, p.end, time.Minute, series.Const(p.memory))),
			series.KubePodOwner(ref, series.OwnerRef{Kind: "ReplicaSet", Name: p.rs}, ones),
			series.KubePodStatusPhase(ref, "Running", ones),
			series.KubeReplicaSetOwner("shop", p.rs, series.OwnerRef{Kind: "Rollout", Name: "canary"}, ones),
		)
	}
	from, to := now.Add(-48*time.Hour), now.Add(-time.Minute)
	for _, p := range []struct {
		ref   series.PodRef
		owner series.OwnerRef
	}{
		{series.PodRef{Namespace: "shop", Pod: "etcd-n1", Container: "etcd", Node: "n1"}, series.OwnerRef{Kind: "Node", Name: "n1"}},
		{series.PodRef{Namespace: "shop", Pod: "clone-x", Container: "app", Node: "n1"}, series.OwnerRef{Kind: "CloneSet", Name: "clone"}},
	} {
		recorded = append(recorded,
			series.ContainerCPUUsageSeconds(p.ref, series.GenerateCounter(from, to, time.Minute, series.Const(0.1))),
			series.ContainerMemoryWorkingSet(p.ref, series.Generate(from, to, time.Minute, series.Const(100*mib))),
			series.KubePodOwner(p.ref, p.owner, series.Generate(from, to, time.Minute, series.Const(1))),
		)
	}
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{Series: recorded})

	cfg := exporterConfig()
	svc, ctx := startService(t, exporter.Options{Exporter: cfg.Exporter, Prometheus: cfg.Prometheus, Kube: c, Querier: prom.API,
		Now: func() time.Time { return now }})
	if err := svc.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	byName := map[string]*exporter.WorkloadResult{}
	for i, w := range svc.Last().Workloads {
		kinds = append(kinds, w.Kind+"/"+w.Name)
		byName[w.Kind+"/"+w.Name] = &svc.Last().Workloads[i]
	}
	got, static, sleeping, clone := byName["Rollout/canary"], byName["Pod/etcd-n1"], byName["Rollout/asleep"], byName["CloneSet/clone"]
	if got == nil || static == nil || sleeping == nil || clone == nil || len(kinds) != 4 {
		t.Fatalf("workloads = %v, want Rollout/canary, Rollout/asleep, Pod/etcd-n1 and CloneSet/clone", kinds)
	}
	if clone.Replicas != 1 || len(clone.Containers) != 1 || clone.Containers[0].Recommendation == nil || !clone.Containers[0].Recommendation.OK {
		t.Errorf("CloneSet/clone: replicas %v containers %+v, want 1 and a recommendation for app", clone.Replicas, clone.Containers)
	}
	if r := sleeping.Idle.Reasons; len(r) != 1 || r[0] != "scaled_to_zero" {
		t.Errorf("Rollout/asleep idle = %+v, want scaled_to_zero", sleeping.Idle)
	}
	if len(static.Containers) != 1 || static.Containers[0].Recommendation == nil || !static.Containers[0].Recommendation.OK {
		t.Errorf("Pod/etcd-n1 containers = %+v, want a recommendation for etcd", static.Containers)
	}
	// About one replica over the window: the revisions overlap at the
	// rollout for as long as Prometheus's lookback keeps the old pod.
	if got.Replicas < 1 || got.Replicas > 1.1 || len(got.Containers) != 1 || got.Containers[0].Recommendation == nil || !got.Containers[0].Recommendation.OK {
		t.Fatalf("Rollout/canary: replicas %v containers %+v, want about 1 replica and a recommendation for app", got.Replicas, got.Containers)
	}
	// 800 MiB × (1 + 10 % margin + the short-history margin of two days).
	if m := *got.Containers[0].Recommendation.MemoryRequestBytes; m < 1.1*800*mib || m > 1.2*800*mib {
		t.Errorf("recommended memory = %.0f MiB, want the old revision's 800 MiB peak × 1.1–1.2", m/mib)
	}
}
