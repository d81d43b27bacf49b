package inventory

import (
	"context"
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
		if len(pods.Items) == 8 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("controllers made %d of 8 pods", len(pods.Items))
		case <-time.After(200 * time.Millisecond):
		}
	}

	inv := New(c, Options{})
	if err := inv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer inv.Shutdown()
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
	want := map[ID][2]int{{"shop", KindDeployment, "web"}: {3, 3}, {"shop", KindReplicaSet, "solo"}: {2, 2}, {"shop", "Rollout", "canary"}: {3, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("workloads and their pods and replicas = %v, want %v", got, want)
	}
}
