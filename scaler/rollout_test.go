package scaler

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
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
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(run)))
			h := runHistory(t, rng, rolloutCluster{c: c, dyn: dyn, w: w}, cfg, w, int32(2+run), 20, nil)
			t.Logf("history %v", h)
		}
	})

	t.Run("a spec edited while asleep is left as edited", func(t *testing.T) {
		w := create(t, "edited", 2)
		s := newScaler(t)
		if res := s.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSuccess {
			t.Fatalf("sleep: %v", res)
		}
		patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:2"}]}}}}`)
		if _, err := dyn.Resource(rollouts).Namespace("lab").Patch(ctx, "edited", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		res := s.Wake(ctx, Request{Workload: w, Cause: "test"})
		if n, _ := (rolloutCluster{c, dyn, w}).read(t); res.Result != ResultUserChange || n != 0 {
			t.Errorf("wake after an edit: %v with %d replicas, want %s and still 0", res, n, ResultUserChange)
		}
	})

	t.Run("sleeping rollouts are listed with their Services", func(t *testing.T) {
		if _, err := c.CoreV1().Services("lab").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "listed"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "listed"}, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		w := create(t, "listed", 3)
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
				found = len(sw.Services) == 1 && sw.Services[0] == "listed"
			}
		}
		if !found {
			t.Errorf("sleeping = %+v, want %v with Service listed", asleep, w)
		}
		// A running scaler lists it from its informer, for the metrics and
		// the wake windows.
		s := newScaler(t)
		stop := running(ctx, s, "r")
		defer stop()
		deadline := time.Now().Add(20 * time.Second)
		for !slices.ContainsFunc(s.Sleeping(), func(sw SleepingWorkload) bool { return sw.Workload == w && len(sw.Services) == 1 }) {
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
