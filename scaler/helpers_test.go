package scaler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/upid-dev/upid/internal/config"
)

const testToken = "s3cret-token-for-tests"

// testConfig is the default configuration with a token file and no leader
// election, and a rate limit that does not get in the way.
func testConfig(t testing.TB) config.Scaler {
	t.Helper()
	cfg := config.Default().Scaler
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.BearerTokenFile = path
	cfg.LeaderElection.Enabled = false
	cfg.MaxActions = 1000
	cfg.ActionInterval = model.Duration(time.Minute)
	return cfg
}

func newTestScaler(t testing.TB, c kubernetes.Interface, cfg config.Scaler, rec record.EventRecorder) *Scaler {
	t.Helper()
	s, err := New(Options{Kube: c, Config: cfg, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func deployment(ns, name string, replicas int32, created time.Time) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(created)},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			},
		},
	}
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

var optedIn = map[string]string{LabelOptIn: "enabled"}

// alert builds one alert of a notification.
func alert(name, status string, w Workload) Alert {
	return Alert{
		Status:      status,
		Labels:      map[string]string{"alertname": name, "namespace": w.Namespace, "workload": w.Name, "kind": w.Kind, "severity": "info"},
		Annotations: map[string]string{"dollars_per_hour": "0.25"},
		Fingerprint: strconv.Itoa(len(name)),
	}
}

func notification(alerts ...Alert) []byte {
	status := "resolved"
	for _, a := range alerts {
		if a.Status == "firing" {
			status = "firing"
		}
	}
	b, _ := json.Marshal(map[string]any{
		"version": "4", "groupKey": "{}:{alertname=\"x\"}", "status": status, "receiver": "upid-scaler",
		"groupLabels": map[string]string{}, "commonLabels": map[string]string{}, "externalURL": "http://am", "truncatedAlerts": 0,
		"alerts": alerts,
	})
	return b
}

// post sends a body to the handler as Alertmanager would, with the token.
func post(t testing.TB, h http.Handler, body []byte, token string) (int, response) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/api/v1/notifications", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var resp response
	_ = json.Unmarshal(rec.Body.Bytes(), &resp)
	return rec.Code, resp
}

// fakeApps makes the fake clientset behave like the API server where the
// scaler depends on it: resourceVersion preconditions (409 on a stale
// write) and the scale subresource, which the object tracker lacks. fail
// injects errors, to model conflicts and crashes between two writes.
type fakeApps struct {
	mu      sync.Mutex
	objects map[string]*appsv1.Deployment
	rv      int
	fail    func(verb, subresource string) error
}

func newFakeCluster(objs ...runtime.Object) (*fake.Clientset, *fakeApps) {
	f := &fakeApps{objects: map[string]*appsv1.Deployment{}}
	var rest []runtime.Object
	for _, o := range objs {
		if d, ok := o.(*appsv1.Deployment); ok {
			f.rv++
			d = d.DeepCopy()
			d.ResourceVersion = strconv.Itoa(f.rv)
			if d.Generation == 0 {
				d.Generation = 1 // as the API server creates it
			}
			f.objects[d.Namespace+"/"+d.Name] = d
			continue
		}
		rest = append(rest, o)
	}
	c := fake.NewClientset(rest...)
	c.PrependReactor("*", "deployments", f.react)
	return c, f
}

func (f *fakeApps) get(ns, name string) *appsv1.Deployment {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.objects[ns+"/"+name]; d != nil {
		return d.DeepCopy()
	}
	return nil
}

// fillCaches gives s informer caches holding the fake's Deployments and
// Services as they are now, as Run would, for what reads the caches (Sleeping).
func (f *fakeApps) fillCaches(s *Scaler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	index := func() cache.Indexer {
		return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	}
	ds := index()
	for _, d := range f.objects {
		_ = ds.Add(d.DeepCopy())
	}
	s.deployments = appslisters.NewDeploymentLister(ds)
	s.statefulSets = appslisters.NewStatefulSetLister(index())
	svcs := index()
	if l, err := s.kube.c.CoreV1().Services("").List(context.Background(), metav1.ListOptions{}); err == nil {
		for i := range l.Items {
			_ = svcs.Add(&l.Items[i])
		}
	}
	s.services = corelisters.NewServiceLister(svcs)
	s.synced.Store(true)
}

// edit changes the stored object as a user would, with kubectl.
func (f *fakeApps) edit(ns, name string, change func(*appsv1.Deployment)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.objects[ns+"/"+name]
	old, ann := d.Spec.DeepCopy(), maps.Clone(d.Annotations)
	change(d)
	f.wrote(d, old, ann)
	ownReplicas(d, old, "kubectl", "")
}

// ownReplicas gives spec.replicas to manager in managedFields when its
// value changed, as the API server gives a field to whoever last changed
// it; a write of the same count leaves its owner. A write of the scale
// subresource takes the count from its owner and records none, as
// kube-apiserver v1.37 does of a count a scale set last; of one a create
// set it names the manager, which would only make more writes a person's.
func ownReplicas(d *appsv1.Deployment, old *appsv1.DeploymentSpec, manager, subresource string) {
	if replicasOf(old.Replicas) == replicasOf(d.Spec.Replicas) {
		return
	}
	var kept []metav1.ManagedFieldsEntry
	for _, m := range d.ManagedFields {
		if !strings.Contains(string(m.FieldsV1.Raw), `"f:replicas"`) {
			kept = append(kept, m)
		}
	}
	d.ManagedFields = kept
	if subresource != "scale" {
		d.ManagedFields = append(d.ManagedFields, metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate,
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:replicas":{}}}`)}})
	}
}

// wrote gives a written object a new resourceVersion and, as the API server
// does, a new generation when its spec or (a Deployment's) annotations changed.
func (f *fakeApps) wrote(d *appsv1.Deployment, oldSpec *appsv1.DeploymentSpec, oldAnnotations map[string]string) {
	f.rv++
	d.ResourceVersion = strconv.Itoa(f.rv)
	if !apiequality.Semantic.DeepEqual(*oldSpec, d.Spec) || !maps.Equal(oldAnnotations, d.Annotations) {
		d.Generation++
	}
}

// statePatch is the only patch the scaler may send: its annotations, with
// the resourceVersion it read as a precondition.
type statePatch struct {
	Metadata struct {
		ResourceVersion string             `json:"resourceVersion"`
		Annotations     map[string]*string `json:"annotations"`
	} `json:"metadata"`
}

var deploymentsGR = schema.GroupResource{Group: "apps", Resource: "deployments"}

func (f *fakeApps) react(action k8stesting.Action) (bool, runtime.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		if err := f.fail(action.GetVerb(), action.GetSubresource()); err != nil {
			return true, nil, err
		}
	}
	ns := action.GetNamespace()
	switch a := action.(type) {
	// Before GetAction, which a patch also satisfies (it has a name).
	case k8stesting.PatchAction:
		d := f.objects[ns+"/"+a.GetName()]
		if d == nil {
			return true, nil, apierrors.NewNotFound(deploymentsGR, a.GetName())
		}
		var p statePatch
		dec := json.NewDecoder(bytes.NewReader(a.GetPatch()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil || a.GetPatchType() != types.MergePatchType {
			return true, nil, apierrors.NewBadRequest(fmt.Sprintf("unexpected %s patch %s: %v", a.GetPatchType(), a.GetPatch(), err))
		}
		if p.Metadata.ResourceVersion != d.ResourceVersion {
			return true, nil, apierrors.NewConflict(deploymentsGR, d.Name, errStale)
		}
		old, ann := d.Spec.DeepCopy(), maps.Clone(d.Annotations)
		for k, v := range p.Metadata.Annotations {
			if v == nil {
				delete(d.Annotations, k)
				continue
			}
			if d.Annotations == nil {
				d.Annotations = map[string]string{}
			}
			d.Annotations[k] = *v
		}
		f.wrote(d, old, ann)
		return true, d.DeepCopy(), nil
	case k8stesting.GetAction:
		d := f.objects[ns+"/"+a.GetName()]
		if d == nil {
			return true, nil, apierrors.NewNotFound(deploymentsGR, a.GetName())
		}
		if a.GetSubresource() == "scale" {
			return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: ns, ResourceVersion: d.ResourceVersion}, Spec: autoscalingv1.ScaleSpec{Replicas: *d.Spec.Replicas}}, nil
		}
		return true, d.DeepCopy(), nil
	case k8stesting.ListAction:
		list := &appsv1.DeploymentList{}
		for _, d := range f.objects {
			if ns == "" || d.Namespace == ns {
				list.Items = append(list.Items, *d.DeepCopy())
			}
		}
		return true, list, nil
	case k8stesting.UpdateAction:
		meta, err := metaAccessor(a.GetObject())
		if err != nil {
			return true, nil, err
		}
		d := f.objects[ns+"/"+meta.GetName()]
		if d == nil {
			return true, nil, apierrors.NewNotFound(deploymentsGR, meta.GetName())
		}
		if rv := meta.GetResourceVersion(); rv != "" && rv != d.ResourceVersion {
			return true, nil, apierrors.NewConflict(deploymentsGR, d.Name, errStale)
		}
		if a.GetSubresource() != "scale" {
			return true, nil, apierrors.NewBadRequest("the scaler writes a workload only by a patch of its annotations or through its scale")
		}
		sc := a.GetObject().(*autoscalingv1.Scale)
		old := d.Spec.DeepCopy()
		r := sc.Spec.Replicas
		d.Spec.Replicas = &r
		f.wrote(d, old, d.Annotations)
		ownReplicas(d, old, "", "scale")
		out := sc.DeepCopy()
		out.ResourceVersion = d.ResourceVersion
		return true, out, nil
	}
	return false, nil, nil
}

var errStale = staleError{}

type staleError struct{}

func (staleError) Error() string {
	return "the object has been modified; please apply your changes to the latest version and try again"
}

func metaAccessor(o runtime.Object) (metav1.Object, error) {
	if m, ok := o.(metav1.Object); ok {
		return m, nil
	}
	return nil, apierrors.NewBadRequest("object without metadata")
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var _ = context.Background

// service selects the pods of the test workload called name (its app
// label). A workload needs one to be put to sleep by an alert: without it
// no request could raise the wake alert (no_wake_path).
func service(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80}}},
	}
}

// createService creates service(ns, name) on a real API server.
func createService(ctx context.Context, t testing.TB, c kubernetes.Interface, ns, name string) {
	t.Helper()
	if _, err := c.CoreV1().Services(ns).Create(ctx, service(ns, name), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// createDeployment creates deployment(ns, name, replicas) and its Service on
// a real API server: requests to it would wake it, so an alert may put it
// to sleep.
func createDeployment(t testing.TB, c kubernetes.Interface, ns, name string, replicas int32) Workload {
	t.Helper()
	ctx := context.Background()
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, deployment(ns, name, replicas, time.Time{}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createService(ctx, t, c, ns, name)
	return Workload{Namespace: ns, Kind: KindDeployment, Name: name}
}

// getDeployment reads the Deployment w from a real API server.
func getDeployment(t testing.TB, c kubernetes.Interface, w Workload) *appsv1.Deployment {
	t.Helper()
	d, err := c.AppsV1().Deployments(w.Namespace).Get(context.Background(), w.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
