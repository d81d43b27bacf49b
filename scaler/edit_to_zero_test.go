package scaler

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
)

// A sleep cut between its state write and its scale (a 5xx, a crash, or a
// 409 from the very write below), then one write by a person that sets a
// new image and replicas 0 (kubectl apply / a GitOps sync). The spec
// changed while "asleep": the wake must leave it as they made it
// (conflict_user_change, docs/scaler.md Wake step 2), not restore 3 (found in review).
func TestCutSleepThenEditToZeroIsAUserChange(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, now.Add(-72*time.Hour)), service("shop", "web"))
	cfg := testConfig(t)
	s, err := New(Options{Kube: c, Config: cfg, Recorder: record.NewFakeRecorder(100), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx := context.Background()
	w := Workload{Namespace: "shop", Kind: KindDeployment, Name: "web"}

	apps.fail = func(verb, sub string) error {
		if verb == "update" && sub == "scale" {
			return errors.New("injected: connection reset before the scale")
		}
		return nil
	}
	if res := s.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultFailure {
		t.Fatalf("cut sleep: %v", res)
	}
	apps.fail = nil

	// One write by a person: new image and replicas 0.
	apps.edit("shop", "web", func(d *appsv1.Deployment) {
		zero := int32(0)
		d.Spec.Replicas = &zero
		d.Spec.Template.Spec.Containers[0].Image = "registry.example/app:2"
	})

	res := s.Wake(ctx, Request{Workload: w, Cause: "test"})
	d := apps.get("shop", "web")
	if res.Result != ResultUserChange || *d.Spec.Replicas != 0 {
		t.Fatalf("wake after a person's edit (new image, replicas 0): %v; replicas now %d, image %s; want conflict_user_change and replicas 0",
			res, *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image)
	}
}

// The same on a real kube-apiserver, whose managedFields name the person's
// manager as the owner of the count.
func TestCutSleepThenEditToZeroAgainstAPIServer(t *testing.T) {
	kube, cfg := startLab(t)
	c := kube.Clientset
	ctx := context.Background()
	dies, dying := dyingClient(t, kube)
	cut := newTestScaler(t, dying, cfg, record.NewFakeRecorder(100))
	s := newTestScaler(t, c, cfg, record.NewFakeRecorder(100))
	w := createDeployment(t, c, "lab", "web", 3)
	dies.armed.Store(http.MethodPut) // the scale to zero never arrives
	if res := cut.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultFailure {
		t.Fatalf("cut sleep: %v", res)
	}
	dies.armed.Store("")
	// A person's one write (kubectl apply / edit): a new image, replicas 0.
	d := getDeployment(t, c, w)
	zero := int32(0)
	d.Spec.Replicas = &zero
	d.Spec.Template.Spec.Containers[0].Image = "registry.example/app:2"
	if _, err := c.AppsV1().Deployments("lab").Update(ctx, d, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	res := s.Wake(ctx, Request{Workload: w, Cause: "test"})
	d = getDeployment(t, c, w)
	if res.Result != ResultUserChange || *d.Spec.Replicas != 0 {
		t.Errorf("wake after a person set image app:2 and replicas 0: %v; now %d replicas of %s; want conflict_user_change, 0 replicas",
			res, *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image)
	}
}
