package scaler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"

	"github.com/upid-dev/upid/internal/argorollouts"
	"github.com/upid-dev/upid/internal/testenv"
)

// TestRolloutWithArgo puts Rollouts to sleep and wakes them with Argo
// Rollouts' own controller reconciling them (and the
// kube-controller-manager running their pods, which testenv reports
// Ready), one of each strategy: Argo scales the stable (active) ReplicaSet
// to zero and back, makes no new revision of either change, and calls the
// woken Rollout Healthy with every replica available. The Service Argo
// pins to the revision's hash is the sleeping Rollout's, so its requests
// wake it. A new version deployed while asleep is left at zero. The
// stand-in CRD of TestRolloutsAgainstAPIServer cannot show that Argo
// accepts UPID's writes rather than fighting them.
func TestRolloutWithArgo(t *testing.T) {
	c, dyn, s := argoCluster(t)
	ctx := context.Background()
	ro := dyn.Resource(argorollouts.Resource).Namespace("argo")
	for _, tc := range []struct {
		name, service string
		strategy      func(service string) map[string]any
	}{
		{"canary", "canary-stable", func(svc string) map[string]any {
			return map[string]any{"canary": map[string]any{"stableService": svc, "steps": []any{map[string]any{"setWeight": int64(20)}}}}
		}},
		{"bluegreen", "bluegreen-active", func(svc string) map[string]any {
			return map[string]any{"blueGreen": map[string]any{"activeService": svc, "autoPromotionEnabled": true}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.CoreV1().Services("argo").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: tc.service},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": tc.name}, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			spec := rolloutSpec(tc.name, 3)
			spec["strategy"] = tc.strategy(tc.service)
			if _, err := ro.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": argorollouts.APIVersion, "kind": argorollouts.Kind,
				"metadata": map[string]any{"name": tc.name, "namespace": "argo"}, "spec": spec}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			rsOf := func() []appsv1.ReplicaSet {
				t.Helper()
				rss, err := c.AppsV1().ReplicaSets("argo").List(ctx, metav1.ListOptions{LabelSelector: "app=" + tc.name})
				if err != nil {
					t.Fatal(err)
				}
				return rss.Items
			}
			// settled waits until Argo reports the Rollout Healthy about
			// its current spec with want replicas available, and returns
			// its ReplicaSets.
			settled := func(want int64) []appsv1.ReplicaSet {
				t.Helper()
				deadline := time.Now().Add(90 * time.Second)
				var last string
				for time.Now().Before(deadline) {
					u, err := ro.Get(ctx, tc.name, metav1.GetOptions{})
					if err != nil {
						t.Fatal(err)
					}
					phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
					observed, _, _ := unstructured.NestedString(u.Object, "status", "observedGeneration")
					available, _, _ := unstructured.NestedInt64(u.Object, "status", "availableReplicas")
					replicas, _, _ := unstructured.NestedInt64(u.Object, "status", "replicas")
					last = fmt.Sprintf("phase %q, observed generation %s of %d, %d replicas, %d available", phase, observed, u.GetGeneration(), replicas, available)
					if phase == "Healthy" && observed == fmt.Sprint(u.GetGeneration()) && available == want && replicas == want {
						rss := rsOf()
						var total int32
						for _, rs := range rss {
							total += *rs.Spec.Replicas
						}
						if int64(total) == want {
							return rss
						}
						last += fmt.Sprintf("; ReplicaSets want %d replicas in all", total)
					}
					time.Sleep(200 * time.Millisecond)
				}
				t.Fatalf("the Rollout did not settle at %d replicas: %s", want, last)
				return nil
			}
			before := settled(3)
			if len(before) != 1 {
				t.Fatalf("%d ReplicaSets after the first rollout, want 1", len(before))
			}
			hash := before[0].Labels[argorollouts.HashLabel]

			w := Workload{Namespace: "argo", Kind: KindRollout, Name: tc.name}
			if res := s.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSuccess || res.Replicas != 3 {
				t.Fatalf("sleep: %v, want success with 3 saved", res)
			}
			asleep := settled(0)
			if svc, err := c.CoreV1().Services("argo").Get(ctx, tc.service, metav1.GetOptions{}); err != nil || svc.Spec.Selector[argorollouts.HashLabel] != hash {
				t.Errorf("Argo did not pin %s to the hash %s: %v, %v", tc.service, hash, svc.Spec.Selector, err)
			}
			sleeping, err := ListSleeping(ctx, c, dyn, "argo")
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(sleeping, func(sw SleepingWorkload) bool { return sw.Workload == w })
			if i < 0 || !slices.Equal(sleeping[i].Services, []string{tc.service}) {
				t.Errorf("sleeping %+v, want %v with %s, whose requests wake it", sleeping, w, tc.service)
			}
			// Asleep again is nothing to do, and nothing lost.
			if res := s.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result == ResultSuccess || res.Result == ResultFailure {
				t.Errorf("a second sleep: %v, want nothing done", res)
			}
			if res := s.Wake(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSuccess || res.Replicas != 3 {
				t.Fatalf("wake: %v, want success with 3 restored", res)
			}
			after := settled(3)
			t.Logf("asleep %v, woken %v", names(asleep), names(after))
			for name, rss := range map[string][]appsv1.ReplicaSet{"asleep": asleep, "woken": after} {
				if len(rss) != 1 || rss[0].Labels[argorollouts.HashLabel] != hash || rss[0].Annotations[argorollouts.RevisionAnnotation] != "1" {
					t.Errorf("%s: ReplicaSets %v, want the one of revision 1 (hash %s): Argo made a new revision of UPID's change", name, names(rss), hash)
				}
			}
			u, err := ro.Get(ctx, tc.name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range stateAnnotations {
				if v, ok := u.GetAnnotations()[a]; ok {
					t.Errorf("annotation %s=%q left on the woken Rollout", a, v)
				}
			}

			// A new version deployed while asleep is the user's: the wake
			// leaves it at zero, and Argo starts no pods of either revision.
			if res := s.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSuccess {
				t.Fatalf("second sleep: %v", res)
			}
			settled(0)
			patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:2"}]}}}}`)
			if _, err := ro.Patch(ctx, tc.name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			if res := s.Wake(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultUserChange {
				t.Errorf("wake after a new version: %v, want %s", res, ResultUserChange)
			}
			time.Sleep(3 * time.Second)
			rss := rsOf()
			for _, rs := range rss {
				if *rs.Spec.Replicas != 0 {
					t.Errorf("after a wake refused for a new version: %v, want every ReplicaSet at 0", names(rss))
					break
				}
			}
			if n, _ := (rolloutCluster{c, dyn, w}).read(t); n != 0 {
				t.Errorf("the Rollout asks for %d replicas after a refused wake, want 0", n)
			}
			t.Logf("after a new version while asleep: %v", names(rss))
		})
	}
}

// argoCluster starts a kube-apiserver with kube-controller-manager, Argo
// Rollouts' controller and testenv's stand-in kubelet, an opted-in
// namespace "argo", and a scaler for it.
func argoCluster(t *testing.T) (kubernetes.Interface, dynamic.Interface, *Scaler) {
	t.Helper()
	kube := testenv.StartKube(t, testenv.KubeOptions{ControllerManager: true})
	kube.StartArgoRollouts(t)
	if _, err := kube.Clientset.CoreV1().Namespaces().Create(context.Background(), namespace("argo", optedIn), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kube.RunPods(t, "argo", "n1")
	dyn, err := dynamic.NewForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.GracePeriod = 0
	s, err := New(Options{Kube: kube.Clientset, Dynamic: dyn, Config: cfg, Recorder: record.NewFakeRecorder(100)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return kube.Clientset, dyn, s
}

func names(rss []appsv1.ReplicaSet) []string {
	var out []string
	for _, rs := range rss {
		out = append(out, fmt.Sprintf("%s(rev %s, %d)", rs.Name, rs.Annotations[argorollouts.RevisionAnnotation], *rs.Spec.Replicas))
	}
	return out
}

// TestAbortedRolloutWithArgo: with Argo's own controller, a Rollout paused
// mid-canary is not put to sleep (rollout_not_healthy), and one whose
// update was aborted (Degraded, status.abort) is: Argo takes its stable
// ReplicaSet to zero and back to every replica at the wake, keeps the
// aborted canary at zero and the Rollout aborted, and a retry afterwards
// resumes the canary as it would have.
func TestAbortedRolloutWithArgo(t *testing.T) {
	c, dyn, s := argoCluster(t)
	ctx := context.Background()
	ro := dyn.Resource(argorollouts.Resource).Namespace("argo")
	createService(ctx, t, c, "argo", "web")
	spec := rolloutSpec("web", 3)
	spec["strategy"] = map[string]any{"canary": map[string]any{"steps": []any{map[string]any{"setWeight": int64(34)}, map[string]any{"pause": map[string]any{}}}}}
	if _, err := ro.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": argorollouts.APIVersion, "kind": argorollouts.Kind,
		"metadata": map[string]any{"name": "web", "namespace": "argo"}, "spec": spec}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// waitFor polls until Argo reports phase about the current spec and
	// the ReplicaSets of revisions 1 and 2 ask for want replicas.
	waitFor := func(phase string, want map[string]int32) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		var last string
		for time.Now().Before(deadline) {
			u, err := ro.Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, _, _ := unstructured.NestedString(u.Object, "status", "phase")
			observed, _, _ := unstructured.NestedString(u.Object, "status", "observedGeneration")
			rss, err := c.AppsV1().ReplicaSets("argo").List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			byRev := map[string]int32{}
			for _, rs := range rss.Items {
				if rs.Status.AvailableReplicas == *rs.Spec.Replicas {
					byRev[rs.Annotations[argorollouts.RevisionAnnotation]] = *rs.Spec.Replicas
				}
			}
			last = fmt.Sprintf("phase %s (generation %s of %d), ReplicaSets %v", got, observed, u.GetGeneration(), names(rss.Items))
			if got == phase && observed == fmt.Sprint(u.GetGeneration()) && maps.Equal(byRev, want) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("want %s with %v: %s", phase, want, last)
	}
	waitFor("Healthy", map[string]int32{"1": 3})
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:2"}]}}}}`)
	if _, err := ro.Patch(ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("Paused", map[string]int32{"1": 2, "2": 1})

	w := Workload{Namespace: "argo", Kind: KindRollout, Name: "web"}
	if res := s.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSkipped || res.Reason != "rollout_not_healthy" {
		t.Errorf("sleep mid-canary: %v, want skipped (rollout_not_healthy)", res)
	}
	// kubectl argo rollouts abort.
	if _, err := ro.Patch(ctx, "web", types.MergePatchType, []byte(`{"status":{"abort":true}}`), metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	waitFor("Degraded", map[string]int32{"1": 3, "2": 0})
	if res := s.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSuccess || res.Replicas != 3 {
		t.Fatalf("sleep of an aborted Rollout: %v, want success with 3 saved", res)
	}
	waitFor("Degraded", map[string]int32{"1": 0, "2": 0})
	if res := s.Wake(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSuccess || res.Replicas != 3 {
		t.Fatalf("wake: %v, want success with 3 restored", res)
	}
	waitFor("Degraded", map[string]int32{"1": 3, "2": 0})
	// kubectl argo rollouts retry rollout.
	if _, err := ro.Patch(ctx, "web", types.MergePatchType, []byte(`{"status":{"abort":false}}`), metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	waitFor("Paused", map[string]int32{"1": 2, "2": 1})
}
