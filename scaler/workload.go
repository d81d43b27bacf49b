package scaler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
)

// Annotations written on a sleeping workload. Together they are the only
// state of the scaler: any replica, or a restarted one, can wake what
// another put to sleep.
const (
	AnnotationReplicas = "upid.io/sleep-replicas"
	AnnotationSince    = "upid.io/sleep-since"
	AnnotationSaved    = "upid.io/sleep-saved-dollars-per-hour"
	AnnotationHPA      = "upid.io/sleep-hpa"
	AnnotationState    = "upid.io/sleep-state"
	// AnnotationOptOut on a workload, set to "disabled", keeps it awake.
	AnnotationOptOut = "upid.io/sleep"
	// LabelOptIn on a namespace, set to "enabled", lets the scaler act in
	// it under scope "namespaces"; "disabled" keeps it out under any scope.
	LabelOptIn = "upid.io/sleep"
)

var stateAnnotations = []string{AnnotationReplicas, AnnotationSince, AnnotationSaved, AnnotationHPA, AnnotationState}

// Kinds the scaler acts on: those with a scale subresource and a pod template.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
)

// Workload names one scalable workload.
type Workload struct {
	Namespace, Kind, Name string
}

func (w Workload) String() string { return w.Namespace + "/" + w.Kind + "/" + w.Name }

// ParseWorkload reads NAMESPACE/KIND/NAME; the kind is case-insensitive and
// may be kubectl's short name (deploy, sts).
func ParseWorkload(s string) (Workload, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return Workload{}, fmt.Errorf("workload %q: want NAMESPACE/KIND/NAME, e.g. shop/Deployment/web", s)
	}
	kind, ok := normalKind(parts[1])
	if !ok {
		return Workload{}, fmt.Errorf("workload %q: kind %q is not one of Deployment, StatefulSet", s, parts[1])
	}
	return Workload{Namespace: parts[0], Kind: kind, Name: parts[2]}, nil
}

func normalKind(k string) (string, bool) {
	switch strings.ToLower(k) {
	case "deployment", "deployments", "deploy":
		return KindDeployment, true
	case "statefulset", "statefulsets", "sts":
		return KindStatefulSet, true
	}
	return k, false
}

// object is a Deployment or StatefulSet seen through the parts the scaler uses.
type object struct {
	obj      runtime.Object // *appsv1.Deployment or *appsv1.StatefulSet, for Events
	meta     *metav1.ObjectMeta
	replicas int32
	template *corev1.PodTemplateSpec
	// specWithoutReplicas is the spec the fingerprint covers.
	specWithoutReplicas any
}

func wrapDeployment(d *appsv1.Deployment) *object {
	spec := d.Spec.DeepCopy()
	spec.Replicas = nil
	return &object{obj: d, meta: &d.ObjectMeta, replicas: replicasOf(d.Spec.Replicas), template: &d.Spec.Template, specWithoutReplicas: spec}
}

func wrapStatefulSet(s *appsv1.StatefulSet) *object {
	spec := s.Spec.DeepCopy()
	spec.Replicas = nil
	return &object{obj: s, meta: &s.ObjectMeta, replicas: replicasOf(s.Spec.Replicas), template: &s.Spec.Template, specWithoutReplicas: spec}
}

// replicasOf applies the API's default of 1 to an unset count.
func replicasOf(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// kube reads and writes workloads through typed clients.
type kube struct{ c kubernetes.Interface }

func (k kube) get(ctx context.Context, w Workload) (*object, error) {
	switch w.Kind {
	case KindDeployment:
		d, err := k.c.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return wrapDeployment(d), nil
	case KindStatefulSet:
		s, err := k.c.AppsV1().StatefulSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return wrapStatefulSet(s), nil
	}
	return nil, fmt.Errorf("kind %q is not supported", w.Kind)
}

// update writes metadata changes; the resourceVersion makes it fail with
// 409 if anyone wrote the object since it was read.
func (k kube) update(ctx context.Context, o *object) (*object, error) {
	switch v := o.obj.(type) {
	case *appsv1.Deployment:
		d, err := k.c.AppsV1().Deployments(v.Namespace).Update(ctx, v, metav1.UpdateOptions{FieldManager: fieldManager})
		if err != nil {
			return nil, err
		}
		return wrapDeployment(d), nil
	case *appsv1.StatefulSet:
		s, err := k.c.AppsV1().StatefulSets(v.Namespace).Update(ctx, v, metav1.UpdateOptions{FieldManager: fieldManager})
		if err != nil {
			return nil, err
		}
		return wrapStatefulSet(s), nil
	}
	return nil, fmt.Errorf("unsupported object %T", o.obj)
}

// scale sets the replica count through the scale subresource, guarded by
// the resourceVersion of the object as last read or written.
func (k kube) scale(ctx context.Context, o *object, replicas int32) error {
	sc := &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: o.meta.Name, Namespace: o.meta.Namespace, ResourceVersion: o.meta.ResourceVersion},
		Spec:       autoscalingv1.ScaleSpec{Replicas: replicas},
	}
	var err error
	switch o.obj.(type) {
	case *appsv1.Deployment:
		_, err = k.c.AppsV1().Deployments(o.meta.Namespace).UpdateScale(ctx, o.meta.Name, sc, metav1.UpdateOptions{FieldManager: fieldManager})
	case *appsv1.StatefulSet:
		_, err = k.c.AppsV1().StatefulSets(o.meta.Namespace).UpdateScale(ctx, o.meta.Name, sc, metav1.UpdateOptions{FieldManager: fieldManager})
	default:
		err = fmt.Errorf("unsupported object %T", o.obj)
	}
	return err
}

const fieldManager = "upid-scaler"

// fingerprint identifies the spec apart from its replica count, so that an
// edit made while the workload slept is recognised at wake.
func fingerprint(o *object) string {
	b, err := json.Marshal(o.specWithoutReplicas)
	if err != nil {
		// A spec that cannot be marshalled cannot be compared; an empty
		// fingerprint never matches a stored one.
		return ""
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:16])
}

// sleepState is what the annotations say.
type sleepState struct {
	replicas    int32
	since       time.Time
	saved       float64
	fingerprint string
	valid       bool // false when some annotation is unreadable
}

// readState returns the saved state and whether the workload carries any
// of it.
func readState(o *object) (sleepState, bool) {
	a := o.meta.Annotations
	present := false
	for _, k := range stateAnnotations {
		if _, ok := a[k]; ok {
			present = true
		}
	}
	if !present {
		return sleepState{}, false
	}
	st := sleepState{fingerprint: a[AnnotationState], valid: true}
	n, err := strconv.ParseInt(a[AnnotationReplicas], 10, 32)
	if err != nil || n < 1 {
		st.valid = false
	}
	st.replicas = int32(n)
	if t, err := time.Parse(time.RFC3339, a[AnnotationSince]); err == nil {
		st.since = t
	}
	if v, err := strconv.ParseFloat(a[AnnotationSaved], 64); err == nil {
		st.saved = v
	}
	if st.fingerprint == "" {
		st.valid = false
	}
	return st, true
}

func writeState(o *object, replicas int32, since time.Time, saved float64) {
	if o.meta.Annotations == nil {
		o.meta.Annotations = map[string]string{}
	}
	o.meta.Annotations[AnnotationReplicas] = strconv.Itoa(int(replicas))
	o.meta.Annotations[AnnotationSince] = since.UTC().Format(time.RFC3339)
	o.meta.Annotations[AnnotationSaved] = strconv.FormatFloat(saved, 'g', -1, 64)
	o.meta.Annotations[AnnotationState] = fingerprint(o)
}

func clearState(o *object) {
	for _, k := range stateAnnotations {
		delete(o.meta.Annotations, k)
	}
}

func appsResource(w Workload) schema.GroupResource {
	if w.Kind == KindStatefulSet {
		return schema.GroupResource{Group: "apps", Resource: "statefulsets"}
	}
	return schema.GroupResource{Group: "apps", Resource: "deployments"}
}

func metaNamed(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}
