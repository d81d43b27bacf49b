package scaler

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/testenv"
)

// diesBefore stands for a process that dies, or loses its Lease, right
// before a write of a wake: once armed with PUT, its restore fails; with
// PATCH, the removal of its state after the restore (its mark, a patch
// too, goes through).
type diesBefore struct {
	next     http.RoundTripper
	armed    atomic.Value // string
	restored atomic.Bool
}

// dyingClient is a client of kube whose process dies as dies is armed.
func dyingClient(t *testing.T, kube *testenv.Kube) (*diesBefore, kubernetes.Interface) {
	t.Helper()
	dies := &diesBefore{}
	dies.armed.Store("")
	restCfg := rest.CopyConfig(kube.Config)
	restCfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { dies.next = rt; return dies })
	dying, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	return dies, dying
}

func (d *diesBefore) RoundTrip(req *http.Request) (*http.Response, error) {
	m, _ := d.armed.Load().(string)
	if m == "" || !strings.Contains(req.URL.Path, "/apis/apps/") && !strings.Contains(req.URL.Path, "/apis/argoproj.io/") {
		return d.next.RoundTrip(req)
	}
	if req.Method == http.MethodPut && m == http.MethodPatch {
		d.restored.Store(true)
	}
	if req.Method == m && (m == http.MethodPut || d.restored.Load()) {
		return nil, errors.New("test: the process died")
	}
	return d.next.RoundTrip(req)
}

// TestWakeCutAfterRestoreAgainstAPIServer leaves workloads as a wake cut
// between its restore and the removal of its state leaves them, on a real
// kube-apiserver, whose managedFields are what tells the scaler's restore
// from a person's scale: the next idle alert puts such a workload to sleep
// afresh, saving the same count, and upid wake clears the state; one a
// person scaled back to the saved count by hand is theirs.
func TestWakeCutAfterRestoreAgainstAPIServer(t *testing.T) {
	kube, cfg := startLab(t)
	c := kube.Clientset
	ctx := context.Background()
	dies, dying := dyingClient(t, kube)
	s := newTestScaler(t, c, cfg, record.NewFakeRecorder(100))
	cut := newTestScaler(t, dying, cfg, record.NewFakeRecorder(100))

	create := func(t *testing.T, kind, name string) Workload {
		t.Helper()
		w := createDeployment(t, c, "lab", name, 3)
		if kind == KindStatefulSet {
			d := getDeployment(t, c, w)
			ss := &appsv1.StatefulSet{ObjectMeta: metaNamed("lab", name+"-db"), Spec: appsv1.StatefulSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template}}
			if _, err := c.AppsV1().StatefulSets("lab").Create(ctx, ss, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			w = Workload{Namespace: "lab", Kind: KindStatefulSet, Name: name + "-db"}
		}
		return w
	}
	read := func(t *testing.T, w Workload) *object {
		t.Helper()
		o, err := s.kube.get(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	asleep := func(t *testing.T, w Workload) *object {
		t.Helper()
		if res := s.Sleep(ctx, Request{Workload: w, Manual: true, Cause: "test"}); res.Result != ResultSuccess {
			t.Fatalf("sleep: %s", res)
		}
		return read(t, w)
	}
	// cutWake wakes w through a process that dies before its first write
	// with method.
	cutWake := func(t *testing.T, w Workload, method string) *object {
		t.Helper()
		asleep(t, w)
		dies.restored.Store(false)
		dies.armed.Store(method)
		res := cut.Wake(ctx, Request{Workload: w, Cause: "test"})
		dies.armed.Store("")
		o := read(t, w)
		if want := map[string]int32{http.MethodPatch: 3, http.MethodPut: 0}[method]; res.Result != ResultFailure || o.replicas != want || o.meta.Annotations[AnnotationReplicas] != "3" {
			t.Fatalf("cut wake: %s; replicas %d, annotations %v; want a failure leaving %d replicas and the state", res, o.replicas, o.meta.Annotations, want)
		}
		if scaledByOthers(o.meta) {
			t.Fatalf("the scaler's writes left spec.replicas another's: %+v", o.meta.ManagedFields)
		}
		return o
	}
	// persons checks that the next sleep leaves w as a person set it back,
	// at 3, forgetting the state.
	persons := func(t *testing.T, w Workload) {
		t.Helper()
		if res := s.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultUserChange {
			t.Errorf("sleep after a person set the count back: %s, want %s", res, ResultUserChange)
		}
		if o := read(t, w); o.replicas != 3 || len(stateLeft(o.meta.Annotations)) > 0 {
			t.Errorf("replicas %d, annotations %v; want the person's 3 and no state", o.replicas, o.meta.Annotations)
		}
	}
	halfWoken := func(t *testing.T, w Workload) *object { t.Helper(); return cutWake(t, w, http.MethodPatch) }

	for _, kind := range []string{KindDeployment, KindStatefulSet} {
		t.Run(kind+": idle alert sleeps it afresh", func(t *testing.T) {
			w := create(t, kind, "alert-"+strings.ToLower(kind))
			left := halfWoken(t, w)
			code, resp := post(t, s, notification(alert("UPIDWorkloadIdle", "firing", w)), testToken)
			if code != http.StatusOK || len(resp.Results) != 1 || resp.Results[0].Result != ResultSuccess || resp.Results[0].Replicas != 3 {
				t.Fatalf("idle alert: %d %+v, want success saving 3", code, resp)
			}
			o := read(t, w)
			if o.replicas != 0 || o.meta.Annotations[AnnotationReplicas] != "3" || o.meta.Annotations[AnnotationGeneration] == left.meta.Annotations[AnnotationGeneration] {
				t.Errorf("after the alert: replicas %d, annotations %v; want asleep with a fresh state saving 3 (the cut wake left %v)", o.replicas, o.meta.Annotations, left.meta.Annotations)
			}
			if res := s.Wake(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSuccess || res.Replicas != 3 {
				t.Errorf("wake: %s", res)
			}
			if o := read(t, w); o.replicas != 3 || len(stateLeft(o.meta.Annotations)) > 0 {
				t.Errorf("woken: replicas %d, annotations %v; want 3 and no state", o.replicas, o.meta.Annotations)
			}
		})

		// kubectl scale writes the scale subresource as the scaler does,
		// and after the scaler's scale the API server records no owner for
		// either: what tells them apart is the wake's mark.
		t.Run(kind+": scaled back by hand is a person's", func(t *testing.T) {
			w := create(t, kind, "hand-"+strings.ToLower(kind))
			asleep(t, w)
			sc := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace}, Spec: autoscalingv1.ScaleSpec{Replicas: 3}}
			var err error
			if kind == KindStatefulSet {
				_, err = c.AppsV1().StatefulSets(w.Namespace).UpdateScale(ctx, w.Name, sc, metav1.UpdateOptions{FieldManager: "kubectl"})
			} else {
				_, err = c.AppsV1().Deployments(w.Namespace).UpdateScale(ctx, w.Name, sc, metav1.UpdateOptions{FieldManager: "kubectl"})
			}
			if err != nil {
				t.Fatal(err)
			}
			persons(t, w)
		})
	}

	// A wake cut between its mark and its restore, then a person's edit of
	// the count (one write, as the restore would be): managedFields name
	// them.
	t.Run("edited back by hand after a wake cut before its restore", func(t *testing.T) {
		w := create(t, KindDeployment, "edited")
		cutWake(t, w, http.MethodPut)
		d := getDeployment(t, c, w)
		three := int32(3)
		d.Spec.Replicas = &three
		if _, err := c.AppsV1().Deployments(w.Namespace).Update(ctx, d, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		if o := read(t, w); !scaledByOthers(o.meta) {
			t.Fatalf("kubectl edit left nobody owning spec.replicas: %+v", o.meta.ManagedFields)
		}
		persons(t, w)
	})

	// Whether a write of the scale subresource names its manager depends
	// on who owned the count before: none after the scaler's own scale
	// (above), kubectl's when a write of the main resource owned it, as a
	// creation does. Either way it is never taken for UPID's.
	t.Run("kubectl scale of a count a create set names its manager", func(t *testing.T) {
		w := create(t, KindDeployment, "created")
		sc := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace}, Spec: autoscalingv1.ScaleSpec{Replicas: 5}}
		if _, err := c.AppsV1().Deployments(w.Namespace).UpdateScale(ctx, w.Name, sc, metav1.UpdateOptions{FieldManager: "kubectl"}); err != nil {
			t.Fatal(err)
		}
		if o := read(t, w); !scaledByOthers(o.meta) {
			t.Fatalf("kubectl scale left nobody owning spec.replicas: %+v", o.meta.ManagedFields)
		}
	})

	// Cut before its restore, the wake leaves the workload asleep, for the
	// next wake to finish.
	t.Run("a wake cut before its restore is finished by the next", func(t *testing.T) {
		w := create(t, KindDeployment, "unrestored")
		cutWake(t, w, http.MethodPut)
		if res := s.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Reason != "already_asleep" {
			t.Errorf("sleep: %s, want already_asleep", res)
		}
		if res := s.Wake(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSuccess || res.Replicas != 3 {
			t.Errorf("wake: %s, want success with 3", res)
		}
		if o := read(t, w); o.replicas != 3 || len(stateLeft(o.meta.Annotations)) > 0 {
			t.Errorf("replicas %d, annotations %v; want 3 and no state", o.replicas, o.meta.Annotations)
		}
	})

	t.Run("upid wake clears it", func(t *testing.T) {
		w := create(t, KindDeployment, "woken")
		halfWoken(t, w)
		for i, want := range []string{"", "not_asleep"} {
			res := s.Wake(ctx, Request{Workload: w, Manual: true, Cause: "cli"})
			if res.Reason != want || (want == "") != (res.Result == ResultSuccess && res.Replicas == 3) {
				t.Errorf("wake %d: %s, want %s", i+1, res, map[string]string{"": "success with 3", "not_asleep": "skipped not_asleep"}[want])
			}
		}
		if o := read(t, w); o.replicas != 3 || len(stateLeft(o.meta.Annotations)) > 0 {
			t.Errorf("replicas %d, annotations %v; want 3 and no state", o.replicas, o.meta.Annotations)
		}
	})
}

// startLab starts a kube-apiserver with the opted-in namespace lab, and
// the test configuration without a grace period.
func startLab(t *testing.T) (*testenv.Kube, config.Scaler) {
	t.Helper()
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	if _, err := kube.Clientset.CoreV1().Namespaces().Create(context.Background(), namespace("lab", optedIn), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.GracePeriod = 0
	return kube, cfg
}
