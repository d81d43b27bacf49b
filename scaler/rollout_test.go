package scaler

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/upid-dev/upid/internal/testenv"
)

// rolloutCluster reads a Rollout as the property needs it.
type rolloutCluster struct {
	c   kubernetes.Interface
	dyn dynamic.Interface
	w   Workload
}

func (r rolloutCluster) client() kubernetes.Interface { return r.c }
func (r rolloutCluster) dynamic() dynamic.Interface   { return r.dyn }
func (r rolloutCluster) read(t testing.TB) (int32, map[string]string) {
	u, err := r.dyn.Resource(rollouts).Namespace(r.w.Namespace).Get(context.Background(), r.w.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := unstructured.NestedInt64(u.Object, "spec", "replicas")
	if err != nil {
		t.Fatal(err)
	}
	return int32(n), u.GetAnnotations()
}

// rolloutSpec is a Rollout's spec as Argo's users write one.
func rolloutSpec(app string, replicas int64) map[string]any {
	labels := map[string]any{"app": app}
	return map[string]any{
		"replicas": replicas,
		"selector": map[string]any{"matchLabels": labels},
		"template": map[string]any{
			"metadata": map[string]any{"labels": labels},
			"spec":     map[string]any{"containers": []any{map[string]any{"name": "app", "image": "app:1"}}},
		},
		"strategy": map[string]any{"canary": map[string]any{"steps": []any{map[string]any{"setWeight": int64(20)}}}},
	}
}

// TestRolloutsAgainstAPIServer puts Argo Rollouts to sleep and wakes them
// on a real kube-apiserver, through the scale subresource and the status
// subresource of a CRD shaped as Argo's (with which, unlike a Deployment,
// an annotation is not a new generation): random histories never lose the
// count, a spec edited while asleep is left as edited, and sleeping
// Rollouts are listed with the Services that select their pods.
func TestRolloutsAgainstAPIServer(t *testing.T) {
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	c := kube.Clientset
	dyn, err := dynamic.NewForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.CoreV1().Namespaces().Create(ctx, namespace("lab", optedIn), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.GracePeriod = 0
	create := func(t *testing.T, name string, replicas int64) Workload {
		t.Helper()
		kube.CreateRollout(ctx, t, "lab", name, rolloutSpec(name, replicas))
		return Workload{Namespace: "lab", Kind: KindRollout, Name: name}
	}
	newScaler := func(t *testing.T) *Scaler {
		t.Helper()
		s, err := New(Options{Kube: c, Dynamic: dyn, Config: cfg, Recorder: record.NewFakeRecorder(100)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}

	t.Run("random histories with restarts", func(t *testing.T) {
		for run := 0; run < 3; run++ {
			w := create(t, "prop-"+string(rune('a'+run)), int64(2+run))
			createService(ctx, t, c, "lab", w.Name)
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(run)))
			h := runHistory(t, rng, rolloutCluster{c: c, dyn: dyn, w: w}, cfg, w, int32(2+run), 20, nil)
			t.Logf("history %v", h)
		}
	})

	// asleep creates a Rollout of 2 replicas that a Service selects and
	// puts it to sleep with a new scaler, which it returns.
	asleep := func(t *testing.T, name string) (Workload, *Scaler) {
		t.Helper()
		w := create(t, name, 2)
		createService(ctx, t, c, "lab", name)
		s := newScaler(t)
		if res := s.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSuccess {
			t.Fatalf("sleep: %v", res)
		}
		return w, s
	}

	t.Run("a spec edited while asleep is left as edited", func(t *testing.T) {
		w, s := asleep(t, "edited")
		patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:2"}]}}}}`)
		if _, err := dyn.Resource(rollouts).Namespace("lab").Patch(ctx, "edited", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		res := s.Wake(ctx, Request{Workload: w, Cause: "test"})
		if n, _ := (rolloutCluster{c, dyn, w}).read(t); res.Result != ResultUserChange || n != 0 {
			t.Errorf("wake after an edit: %v with %d replicas, want %s and still 0", res, n, ResultUserChange)
		}
	})

	// A CRD with a status subresource counts no annotation as a generation:
	// the wake's mark is none either, and its restore the one after it.
	t.Run("a wake cut after its restore is finished by the next sleep", func(t *testing.T) {
		w, s := asleep(t, "cut")
		dies := &diesBefore{}
		restCfg := rest.CopyConfig(kube.Config)
		restCfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { dies.next = rt; return dies })
		dying, err := dynamic.NewForConfig(restCfg)
		if err != nil {
			t.Fatal(err)
		}
		cut, err := New(Options{Kube: c, Dynamic: dying, Config: cfg, Recorder: record.NewFakeRecorder(100)})
		if err != nil {
			t.Fatal(err)
		}
		defer cut.Close()
		dies.armed.Store(http.MethodPatch)
		res := cut.Wake(ctx, Request{Workload: w, Cause: "test"})
		dies.armed.Store("")
		if n, ann := (rolloutCluster{c, dyn, w}).read(t); res.Result != ResultFailure || n != 2 || ann[AnnotationReplicas] != "2" {
			t.Fatalf("cut wake: %v; replicas %d, annotations %v; want a failure leaving 2 and the state", res, n, ann)
		}
		if res := s.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSuccess || res.Replicas != 2 {
			t.Errorf("sleep of the half-woken Rollout: %v, want success saving 2", res)
		}
		if res := s.Wake(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSuccess || res.Replicas != 2 {
			t.Errorf("wake: %v", res)
		}
		if n, ann := (rolloutCluster{c, dyn, w}).read(t); n != 2 || len(stateLeft(ann)) > 0 {
			t.Errorf("woken: replicas %d, annotations %v; want 2 and no state", n, ann)
		}
	})

	// setStatus writes the status a running Argo would, through the status
	// subresource.
	setStatus := func(t *testing.T, name string, status func(*unstructured.Unstructured) map[string]any) {
		t.Helper()
		u, err := dyn.Resource(rollouts).Namespace("lab").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		u.Object["status"] = status(u)
		if _, err := dyn.Resource(rollouts).Namespace("lab").UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("only a settled Rollout with its own template sleeps", func(t *testing.T) {
		s := newScaler(t)
		// One that runs a Deployment's template (workloadRef).
		kube.CreateRollout(ctx, t, "lab", "by-ref", map[string]any{"replicas": int64(2),
			"workloadRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "by-ref"}})
		ref := Workload{Namespace: "lab", Kind: KindRollout, Name: "by-ref"}
		if res := s.Sleep(ctx, Request{Workload: ref, Cause: "test"}); res.Result != ResultSkipped || res.Reason != "workload_ref" {
			t.Errorf("sleep of a workloadRef Rollout: %v, want skipped (workload_ref)", res)
		}
		// One paused mid-canary, then Healthy about a spec Argo has not
		// seen since an edit, then settled.
		w := create(t, "paused", 2)
		createService(ctx, t, c, "lab", "paused")
		setPhase := func(phase string, lag int64) {
			t.Helper()
			setStatus(t, "paused", func(u *unstructured.Unstructured) map[string]any {
				return map[string]any{"phase": phase, "observedGeneration": strconv.FormatInt(u.GetGeneration()-lag, 10)}
			})
		}
		for _, lag := range []struct {
			phase string
			lag   int64
		}{{"Paused", 0}, {"Healthy", 1}, {"Degraded", 0}} { // Degraded, not aborted: a missed progress deadline
			setPhase(lag.phase, lag.lag)
			if res := s.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSkipped || res.Reason != "rollout_not_healthy" {
				t.Errorf("sleep of a Rollout %s %d generation(s) behind: %v, want skipped (rollout_not_healthy)", lag.phase, lag.lag, res)
			}
		}
		setPhase("Healthy", 0)
		if res := s.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSuccess || res.Replicas != 2 {
			t.Errorf("sleep of a healthy Rollout: %v, want success with 2 saved", res)
		}
	})

	t.Run("sleeping rollouts are listed with their Services", func(t *testing.T) {
		// The second is one Argo manages (blue-green active, canary
		// stable): it selects the revision's rollouts-pod-template-hash,
		// which the Rollout's own template never carries. The third
		// selects a hash that is not the Rollout's: another Rollout's pods
		// with the same app label.
		for name, selector := range map[string]map[string]string{
			"listed": {"app": "listed"}, "listed-active": {"app": "listed", "rollouts-pod-template-hash": "6b8f9c7d5"},
			"other-active": {"app": "listed", "rollouts-pod-template-hash": "0ther0000"},
		} {
			if _, err := c.CoreV1().Services("lab").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: corev1.ServiceSpec{Selector: selector, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		w := create(t, "listed", 3)
		setStatus(t, "listed", func(u *unstructured.Unstructured) map[string]any {
			return map[string]any{"phase": "Healthy", "observedGeneration": strconv.FormatInt(u.GetGeneration(), 10),
				"currentPodHash": "6b8f9c7d5", "stableRS": "6b8f9c7d5", "blueGreen": map[string]any{"activeSelector": "6b8f9c7d5"}}
		})
		if res := newScaler(t).Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSuccess || res.Replicas != 3 {
			t.Fatalf("sleep: %v", res)
		}
		asleep, err := ListSleeping(ctx, c, dyn, "lab")
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, sw := range asleep {
			if sw.Workload == w {
				found = slices.Equal(sw.Services, []string{"listed", "listed-active"})
			}
		}
		if !found {
			t.Errorf("sleeping = %+v, want %v with Services listed and listed-active (not other-active)", asleep, w)
		}
		// A running scaler lists it from its informer, for the metrics and
		// the wake windows.
		s := newScaler(t)
		stop := running(ctx, s, "r")
		defer stop()
		deadline := time.Now().Add(20 * time.Second)
		for !slices.ContainsFunc(s.Sleeping(), func(sw SleepingWorkload) bool { return sw.Workload == w && len(sw.Services) == 2 }) {
			if time.Now().After(deadline) {
				t.Fatalf("the running scaler lists %+v asleep, not %v", s.Sleeping(), w)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Without a dynamic client Rollouts are not read at all.
		if none, err := ListSleeping(ctx, c, nil, "lab"); err != nil || len(none) != 0 {
			t.Errorf("without a dynamic client: %+v, %v; want none", none, err)
		}
	})
}

// TestRolloutWatchRetried: a failed list of Rollouts at start (a blip, or
// Argo Rollouts installed later) is tried again, so sleeping Rollouts are
// listed for the wake alert once it works, not only after a restart.
func TestRolloutWatchRetried(t *testing.T) {
	ctx := context.Background()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"namespace": "lab", "name": "r", "generation": int64(1)},
		"spec":     rolloutSpec("r", 3),
	}}
	o, err := wrapRollout(u)
	if err != nil {
		t.Fatal(err)
	}
	writeState(o, 3, time.Now(), 1)
	u.SetAnnotations(o.meta.Annotations)
	if err := unstructured.SetNestedField(u.Object, int64(0), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	u.SetGeneration(2) // the scale to zero
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{rollouts: "RolloutList"}, u)
	var lists atomic.Int32
	dyn.PrependReactor("list", "rollouts", func(k8stesting.Action) (bool, runtime.Object, error) {
		if lists.Add(1) == 1 {
			return true, nil, apierrors.NewInternalError(context.DeadlineExceeded)
		}
		return false, nil, nil
	})
	s, err := New(Options{Kube: fake.NewClientset(namespace("lab", optedIn)), Dynamic: dyn, Config: testConfig(t), Recorder: record.NewFakeRecorder(100)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		_ = s.Run(ctx, RunOptions{Ready: func() { close(ready) }, RolloutRetry: 50 * time.Millisecond})
		close(done)
	}()
	defer func() { cancel(); <-done }()
	<-ready
	deadline := time.Now().Add(10 * time.Second)
	for len(s.Sleeping()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after a failed list at start the sleeping Rollout is not listed (lists made: %d): %+v", lists.Load(), s.Sleeping())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestListSleepingWithoutRolloutRights: `upid status` for someone who may
// list Deployments but not Rollouts lists what it can.
func TestListSleepingWithoutRolloutRights(t *testing.T) {
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{rollouts: "RolloutList"})
	dyn.PrependReactor("list", "rollouts", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(rollouts.GroupResource(), "", nil)
	})
	web := deployment("lab", "web", 3, time.Time{})
	o := wrapDeployment(web)
	writeState(o, 3, time.Now(), 1)
	web.Spec.Replicas = new(int32)
	web.Generation++ // the scale to zero
	kc := fake.NewClientset(web)
	got, err := ListSleeping(context.Background(), kc, dyn, "")
	if !errors.Is(err, ErrRolloutsNotListed) || len(got) != 1 || got[0].Name != "web" {
		t.Errorf("ListSleeping without rights on Rollouts: %+v, %v; want the Deployment listed and ErrRolloutsNotListed", got, err)
	}
}
