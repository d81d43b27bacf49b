package inventory

import (
	"context"
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/upid-dev/upid/internal/argorollouts"
	"github.com/upid-dev/upid/internal/testenv"
)

// TestAgainstControllers checks owner resolution on objects the real
// controllers made: kube-controller-manager creates the ReplicaSet and pods
// of a Deployment (named and labelled by pod-template-hash, which the
// inventory relies on instead of watching those ReplicaSets), the pods
// of a ReplicaSet of its own, which it still watches, and the pods of two
// ReplicaSets an Argo Rollout (a custom resource here) owns, as Argo's
// controller makes them at a canary step.
func TestAgainstControllers(t *testing.T) {
	kube := testenv.StartKube(t, testenv.KubeOptions{ControllerManager: true})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := kube.Clientset
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	template := func(app string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
		}
	}
	sel := func(app string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
	}
	if _, err := c.AppsV1().Deployments("shop").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr(int32(3)), Selector: sel("web"), Template: template("web")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppsV1().ReplicaSets("shop").Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "solo"},
		Spec:       appsv1.ReplicaSetSpec{Replicas: ptr(int32(2)), Selector: sel("solo"), Template: template("solo")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// legacy is deleted with --cascade=orphan below: its ReplicaSet and
	// pods stay, labelled with the pod-template-hash of a Deployment gone.
	legacy := template("legacy")
	legacy.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}
	if _, err := c.AppsV1().Deployments("shop").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy"},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr(int32(2)), Selector: sel("legacy"), Template: legacy},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rollout := kube.CreateRollout(ctx, t, "shop", "canary", nil)
	for _, rev := range []struct {
		hash     string
		replicas int32
	}{{"6b8c", 2}, {"9f1d", 1}} {
		tmpl := template("canary")
		tmpl.Labels["rollouts-pod-template-hash"] = rev.hash
		if _, err := c.AppsV1().ReplicaSets("shop").Create(ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "canary-" + rev.hash, Labels: map[string]string{"rollouts-pod-template-hash": rev.hash},
				OwnerReferences: []metav1.OwnerReference{testenv.RolloutOwner(rollout)}},
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr(rev.replicas), Template: tmpl,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "canary", "rollouts-pod-template-hash": rev.hash}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		pods, err := c.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 10 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("controllers made %d of 10 pods", len(pods.Items))
		case <-time.After(200 * time.Millisecond):
		}
	}
	orphan := metav1.DeletePropagationOrphan
	if err := c.AppsV1().Deployments("shop").Delete(ctx, "legacy", metav1.DeleteOptions{PropagationPolicy: &orphan}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := c.AppsV1().Deployments("shop").Get(ctx, "legacy", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("legacy not deleted: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}

	inv := startedOn(t, c, Options{})
	if n := len(inv.replicaSets.List()); n != 3 {
		t.Errorf("the inventory holds %d ReplicaSets, want solo and the Rollout's two (not the Deployment's)", n)
	}
	snap, err := inv.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	got := map[ID][2]int{}
	for _, w := range snap.Workloads {
		got[w.ID] = [2]int{w.Pods, int(w.Replicas)}
	}
	// legacy's pods are counted under the name the history gives them, with
	// no template (found in review: they vanished from the inventory).
	want := map[ID][2]int{{"shop", KindDeployment, "web"}: {3, 3}, {"shop", KindReplicaSet, "solo"}: {2, 2}, {"shop", "Rollout", "canary"}: {3, 3},
		{"shop", KindDeployment, "legacy"}: {2, 2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("workloads and their pods and replicas = %v, want %v", got, want)
	}
	for _, w := range snap.Workloads {
		if w.Name == "legacy" {
			cpu := 0.0
			for _, r := range w.Requests {
				cpu += r.CPU
			}
			if cpu != 0.5 || len(w.Containers) != 0 {
				t.Errorf("legacy requests %v cores with containers %v, want its 2 pods' 0.5 and no template", cpu, w.Containers)
			}
		}
	}
}

// TestArgoRollout runs Argo Rollouts' own controller: a Rollout paused at
// its canary step runs two revisions, which the inventory folds into one
// Rollout workload with every pod, the stable revision's template (the
// most replicas) and the upid.io/ annotations Argo copied to the latest
// revision's ReplicaSet, where the webhook and the recommender read them.
func TestArgoRollout(t *testing.T) {
	kube := testenv.StartKube(t, testenv.KubeOptions{ControllerManager: true})
	kube.StartArgoRollouts(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := kube.Clientset
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kube.RunPods(t, "shop", "n1")
	dyn, err := dynamic.NewForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	rollouts := dyn.Resource(argorollouts.Resource).Namespace("shop")
	labels := map[string]any{"app": "web"}
	spec := func(image string) map[string]any {
		return map[string]any{
			"replicas": int64(4),
			"selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{"metadata": map[string]any{"labels": labels},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": image,
					"resources": map[string]any{"requests": map[string]any{"cpu": map[string]string{"app:1": "250m", "app:2": "500m"}[image]}}}}}},
			"strategy": map[string]any{"canary": map[string]any{"steps": []any{map[string]any{"setWeight": int64(25)}, map[string]any{"pause": map[string]any{}}}}},
		}
	}
	r := &unstructured.Unstructured{Object: map[string]any{"apiVersion": argorollouts.APIVersion, "kind": argorollouts.Kind,
		"metadata": map[string]any{"name": "web", "annotations": map[string]any{"upid.io/recommend-percentile": "0.95"}}, "spec": spec("app:1")}}
	if _, err := rollouts.Create(ctx, r, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// waitFor polls until the ReplicaSets of the Rollout ask for want
	// replicas, by revision, and as many pods run.
	waitFor := func(want map[string]int32) {
		t.Helper()
		for {
			rss, err := c.AppsV1().ReplicaSets("shop").List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			pods, err := c.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, total := map[string]int32{}, int32(0)
			for _, rs := range rss.Items {
				got[rs.Annotations[argorollouts.RevisionAnnotation]] = rs.Status.AvailableReplicas
				total += rs.Status.AvailableReplicas
			}
			if reflect.DeepEqual(got, want) && int(total) == len(pods.Items) {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("ReplicaSets by revision %v (%d pods), want %v available", got, len(pods.Items), want)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	waitFor(map[string]int32{"1": 4})
	// A new version stops at its 25 % step: one canary pod beside three
	// stable ones.
	patch := []byte(`{"metadata":{"annotations":{"upid.io/recommend-percentile":"0.9"}},"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:2","resources":{"requests":{"cpu":"500m"}}}]}}}}`)
	if _, err := rollouts.Patch(ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(map[string]int32{"1": 3, "2": 1})
	// A Service pinned to each revision's hash, as Argo pins a canary's
	// stable and canary Services (a blue-green's active and preview): both
	// serve the Rollout, whichever revision its template is taken from.
	rss, err := c.AppsV1().ReplicaSets("shop").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range rss.Items {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web-rev" + rs.Annotations[argorollouts.RevisionAnnotation]},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}},
				Selector: map[string]string{"app": "web", "rollouts-pod-template-hash": rs.Labels["rollouts-pod-template-hash"]}}}
		if _, err := c.CoreV1().Services("shop").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	inv := startedOn(t, c, Options{})
	snap, err := inv.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Workloads) != 1 {
		t.Fatalf("workloads %+v, want the Rollout alone", snap.Workloads)
	}
	w := snap.Workloads[0]
	if w.ID != (ID{"shop", KindRollout, "web"}) || w.Pods != 4 || w.Replicas != 4 {
		t.Errorf("workload %v with %d pods, %d replicas; want shop/Rollout/web with 4 and 4", w.ID, w.Pods, w.Replicas)
	}
	if len(w.Containers) != 1 || w.Containers[0].CPURequest != 0.25 {
		t.Errorf("containers %+v, want app at the stable revision's 250m", w.Containers)
	}
	if got := w.Annotations["upid.io/recommend-percentile"]; got != "0.9" {
		t.Errorf("upid.io/recommend-percentile = %q (annotations %v), want the latest revision's 0.9", got, w.Annotations)
	}
	for _, svc := range []string{"web-rev1", "web-rev2"} {
		if got := snap.Selects[[2]string{"shop", svc}]; len(got) != 1 || got[0] != w.ID {
			t.Errorf("Service %s, pinned to a revision, selects %v; want the Rollout (found in review)", svc, got)
		}
	}
}
