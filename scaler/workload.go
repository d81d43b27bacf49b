package scaler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/upid-dev/upid/internal/argorollouts"
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
	// AnnotationGeneration is the workload's metadata.generation as read
	// before the state was written. The API server bumps it on every spec
	// change (and, for a Deployment, annotation change) and never on a
	// read, so it tells edits from a spec that only reads differently (a
	// field a newer Kubernetes defaults).
	AnnotationGeneration = "upid.io/sleep-generation"
	// AnnotationWaking is the workload's metadata.generation as read
	// before a wake wrote it, right before its restore: a wake stopped
	// after the restore is told by it from a workload scaled back by hand.
	AnnotationWaking = "upid.io/sleep-waking"
	// AnnotationOptOut on a workload, set to "disabled", keeps it awake.
	AnnotationOptOut = "upid.io/sleep"
	// LabelOptIn on a namespace, set to "enabled", lets the scaler act in
	// it under scope "namespaces"; "disabled" keeps it out under any scope.
	LabelOptIn = "upid.io/sleep"
)

var stateAnnotations = []string{AnnotationReplicas, AnnotationSince, AnnotationSaved, AnnotationHPA, AnnotationState, AnnotationGeneration, AnnotationWaking}

// Kinds the scaler acts on: those with a scale subresource and a pod template.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	// KindRollout is Argo Rollouts' Deployment, read and written through
	// the dynamic client as the custom resource it is.
	KindRollout = argorollouts.Kind
)

// rollouts is the resource of Argo Rollouts.
var rollouts = argorollouts.Resource

// Workload names one scalable workload.
type Workload struct {
	Namespace, Kind, Name string
}

func (w Workload) String() string { return w.Namespace + "/" + w.Kind + "/" + w.Name }

// ParseWorkload reads NAMESPACE/KIND/NAME; the kind is case-insensitive and
// may be kubectl's short name (deploy, sts, ro).
func ParseWorkload(s string) (Workload, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return Workload{}, fmt.Errorf("workload %q: want NAMESPACE/KIND/NAME, e.g. shop/Deployment/web", s)
	}
	kind, ok := normalKind(parts[1])
	if !ok {
		return Workload{}, fmt.Errorf("workload %q: kind %q is not one of Deployment, StatefulSet, Rollout", s, parts[1])
	}
	return Workload{Namespace: parts[0], Kind: kind, Name: parts[2]}, nil
}

func normalKind(k string) (string, bool) {
	switch strings.ToLower(k) {
	case "deployment", "deployments", "deploy":
		return KindDeployment, true
	case "statefulset", "statefulsets", "sts":
		return KindStatefulSet, true
	case "rollout", "rollouts", "ro":
		return KindRollout, true
	}
	return k, false
}

// object is a Deployment, StatefulSet or Rollout seen through the parts the scaler uses.
type object struct {
	obj      runtime.Object // *appsv1.Deployment, *appsv1.StatefulSet or a Rollout's *unstructured.Unstructured, for Events
	meta     *metav1.ObjectMeta
	replicas int32
	template *corev1.PodTemplateSpec
	// specWithoutReplicas is the spec the fingerprint covers.
	specWithoutReplicas any
	// read holds the state annotations as read, so that a write sends
	// only the ones changed since.
	read map[string]string
	// annotationsBumpGeneration: the API server counts an annotation change
	// as a new generation of a Deployment (they are copied to its
	// ReplicaSets; pkg/registry/apps/deployment/strategy.go), not of a
	// StatefulSet, nor of a custom resource with a status subresource (a
	// Rollout). TestAgainstAPIServer pins all three.
	annotationsBumpGeneration bool
	rollout                   rolloutState
}

// rolloutState holds what only a Rollout has that sleep must mind.
type rolloutState struct {
	// workloadRef: the Rollout runs a Deployment's template, which
	// neither the fingerprint nor the Service selection sees.
	workloadRef bool
	// phase is Argo's status.phase (Healthy, Progressing, Paused,
	// Degraded), "" before Argo has written one; it speaks of the
	// spec of observedGeneration (a string in Argo's status), which
	// lags an edit until Argo reconciles it.
	phase, observedGeneration string
	// aborted: status.abort, a canary or blue-green update the user
	// aborted; Argo runs the stable revision alone, Degraded.
	aborted bool
	// hashes are the rollouts-pod-template-hash values of the
	// Rollout's own revisions, as its status names them: those a
	// Service managed by Argo selects.
	hashes []string
}

// settled tells whether Argo runs the Rollout at rest: Healthy, or
// Degraded by an abort, when Argo runs the stable revision alone and
// scales only it, to zero and back, until the user retries
// (TestAbortedRolloutWithArgo). Degraded otherwise (a missed progress deadline),
// or mid-update, it is not at rest.
func (r rolloutState) settled() bool {
	return r.phase == "Healthy" || (r.phase == "Degraded" && r.aborted)
}

func wrap(obj runtime.Object, meta *metav1.ObjectMeta, replicas *int32, template *corev1.PodTemplateSpec, spec any) *object {
	read := map[string]string{}
	for _, k := range stateAnnotations {
		if v, ok := meta.Annotations[k]; ok {
			read[k] = v
		}
	}
	return &object{obj: obj, meta: meta, replicas: replicasOf(replicas), template: template, specWithoutReplicas: spec, read: read}
}

// scaledByOthers says whether anyone but the scaler's own writes of the
// scale subresource owns spec.replicas in managedFields: a kubectl edit or
// apply, Argo CD's sync, set the count, or share it. The API server records
// no owner for a write of the scale subresource of a count last set
// through it (kube-apiserver v1.37, TestWakeCutAfterRestoreAgainstAPIServer),
// the scaler's or kubectl scale's alike, and names kubectl scale's manager
// when a write of the main resource owned the count before, so this
// proves only that someone else did set it.
func scaledByOthers(meta *metav1.ObjectMeta) bool {
	for _, m := range meta.ManagedFields {
		if m.Manager == fieldManager && m.Subresource == "scale" || m.FieldsV1 == nil {
			continue
		}
		var fields struct {
			Spec map[string]json.RawMessage `json:"f:spec"`
		}
		if json.Unmarshal(m.FieldsV1.Raw, &fields) != nil {
			// Unreadable: it may hold the count.
			return true
		}
		if _, ok := fields.Spec["f:replicas"]; ok {
			return true
		}
	}
	return false
}

func wrapDeployment(d *appsv1.Deployment) *object {
	spec := d.Spec.DeepCopy()
	spec.Replicas = nil
	o := wrap(d, &d.ObjectMeta, d.Spec.Replicas, &d.Spec.Template, spec)
	o.annotationsBumpGeneration = true
	return o
}

func wrapStatefulSet(s *appsv1.StatefulSet) *object {
	spec := s.Spec.DeepCopy()
	spec.Replicas = nil
	return wrap(s, &s.ObjectMeta, s.Spec.Replicas, &s.Spec.Template, spec)
}

// wrapRollout reads a Rollout: its metadata, spec.replicas (1 when unset,
// as Argo defaults it), spec.template (none with a workloadRef: it then
// runs a Deployment's, which no Service selection here sees) and its spec
// for the fingerprint.
func wrapRollout(u *unstructured.Unstructured) (*object, error) {
	meta := &metav1.ObjectMeta{}
	m, _, _ := unstructured.NestedMap(u.Object, "metadata")
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, meta); err != nil {
		return nil, fmt.Errorf("rollout %s/%s: metadata: %w", u.GetNamespace(), u.GetName(), err)
	}
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	var replicas *int32
	if r, found, err := unstructured.NestedInt64(u.Object, "spec", "replicas"); err != nil {
		return nil, fmt.Errorf("rollout %s/%s: spec.replicas: %w", u.GetNamespace(), u.GetName(), err)
	} else if found {
		n := int32(r)
		replicas = &n
	}
	template := &corev1.PodTemplateSpec{}
	if t, found, _ := unstructured.NestedMap(u.Object, "spec", "template"); found {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(t, template); err != nil {
			return nil, fmt.Errorf("rollout %s/%s: spec.template: %w", u.GetNamespace(), u.GetName(), err)
		}
	}
	delete(spec, "replicas")
	o := wrap(u, meta, replicas, template, spec)
	_, o.rollout.workloadRef = spec["workloadRef"]
	o.rollout.phase, _, _ = unstructured.NestedString(u.Object, "status", "phase")
	o.rollout.observedGeneration, _, _ = unstructured.NestedString(u.Object, "status", "observedGeneration")
	o.rollout.aborted, _, _ = unstructured.NestedBool(u.Object, "status", "abort")
	for _, path := range [][]string{{"currentPodHash"}, {"stableRS"}, {"blueGreen", "activeSelector"}, {"blueGreen", "previewSelector"}} {
		if h, _, _ := unstructured.NestedString(u.Object, append([]string{"status"}, path...)...); h != "" {
			o.rollout.hashes = append(o.rollout.hashes, h)
		}
	}
	return o, nil
}

// replicasOf applies the API's default of 1 to an unset count.
func replicasOf(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// kube reads and writes workloads through typed clients, and Rollouts
// through dyn (nil: Rollouts are not supported).
type kube struct {
	c   kubernetes.Interface
	dyn dynamic.Interface
}

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
	case KindRollout:
		if k.dyn == nil {
			break
		}
		u, err := k.dyn.Resource(rollouts).Namespace(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return wrapRollout(u)
	}
	return nil, fmt.Errorf("kind %q is not supported", w.Kind)
}

// update writes the state annotations changed since the object was read,
// as a merge patch of those keys alone: a whole-object update would send
// back the spec as this binary's API types decode it, dropping any field a
// newer API server has and they lack. The resourceVersion in the patch
// makes it fail with 409 if anyone wrote the object since it was read.
func (k kube) update(ctx context.Context, o *object) (*object, error) {
	changed := map[string]any{}
	for _, key := range stateAnnotations {
		v, now := o.meta.Annotations[key]
		was, before := o.read[key]
		switch {
		case now && (!before || v != was):
			changed[key] = v
		case !now && before:
			changed[key] = nil // null removes the key
		}
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": o.meta.ResourceVersion, "annotations": changed}})
	if err != nil {
		return nil, err
	}
	opts := metav1.PatchOptions{FieldManager: fieldManager}
	switch v := o.obj.(type) {
	case *appsv1.Deployment:
		d, err := k.c.AppsV1().Deployments(v.Namespace).Patch(ctx, v.Name, types.MergePatchType, patch, opts)
		if err != nil {
			return nil, err
		}
		return wrapDeployment(d), nil
	case *appsv1.StatefulSet:
		s, err := k.c.AppsV1().StatefulSets(v.Namespace).Patch(ctx, v.Name, types.MergePatchType, patch, opts)
		if err != nil {
			return nil, err
		}
		return wrapStatefulSet(s), nil
	case *unstructured.Unstructured:
		u, err := k.dyn.Resource(rollouts).Namespace(v.GetNamespace()).Patch(ctx, v.GetName(), types.MergePatchType, patch, opts)
		if err != nil {
			return nil, err
		}
		return wrapRollout(u)
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
	case *unstructured.Unstructured:
		var u map[string]any
		if u, err = runtime.DefaultUnstructuredConverter.ToUnstructured(sc); err != nil {
			return err
		}
		scale := &unstructured.Unstructured{Object: u}
		scale.SetAPIVersion("autoscaling/v1")
		scale.SetKind("Scale")
		_, err = k.dyn.Resource(rollouts).Namespace(o.meta.Namespace).Update(ctx, scale, metav1.UpdateOptions{FieldManager: fieldManager}, "scale")
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
	generation  int64 // 0: not recorded (a state written before the annotation existed)
	waking      int64 // AnnotationWaking; 0 when no wake has marked it
	valid       bool  // false when some annotation is unreadable
}

// unchanged says whether the workload's spec, apart from its replicas, is
// the one the state was saved with. Either proof will do: the same
// fingerprint, or a generation that counts no write but the scaler's own
// scale to zero. The generation is what carries a sleep across a
// Kubernetes upgrade that defaults a new spec field (the fingerprint then
// differs, though nobody wrote the object); the fingerprint is what
// carries one saved before the generation was recorded.
func (st sleepState) unchanged(o *object) bool {
	if !st.valid {
		return false
	}
	if st.fingerprint == fingerprint(o) {
		return true
	}
	written := st.writtenGeneration(o)
	if written == 0 {
		return false
	}
	switch o.replicas {
	case 0:
		// And the scale to zero; or, after a wake cut before its restore,
		// the wake's mark, written once the wake had found it unchanged.
		// One write of the main resource that set the count to zero, with
		// a new image say, is a person's (its manager owns the count), not
		// the scale subresource's (found in review).
		return o.meta.Generation == written+1 && !scaledByOthers(o.meta) || st.waking != 0 && o.meta.Generation == st.markedGeneration(o)
	case st.replicas:
		return o.meta.Generation == written // saved, not yet scaled
	}
	return false
}

// cutShort says that nothing but the state's own write happened since the
// state was saved: the sleep stopped before its scale. A workload scaled
// back to the saved count since has a newer generation. A state without a
// generation (an older scaler's) gives no proof either way, but a wake's
// mark newer than the state does: a wake marks only a workload at zero,
// so that sleep's scale went through, and the count is someone's since
// (the restore's, or a person's). A mark older than the state is one an
// older scaler left behind (docs/scaler.md, Limits).
func (st sleepState) cutShort(o *object) bool {
	if st.waking > st.generation {
		return false
	}
	written := st.writtenGeneration(o)
	return written == 0 || o.meta.Generation == written
}

// wokenByUs says that a wake restored the saved count and stopped before
// it cleared the state (a crash, a lost Lease): the workload is awake, and
// what is left is no edit to honour. The wake marked the workload
// (AnnotationWaking) once it had found it unchanged, right before its
// restore; since then there has been exactly one spec write, which left
// the saved count, and no one else owns the count. A write of the main
// resource that set the count (kubectl edit or apply, a GitOps sync) names
// its owner; one that changed the spec alone leaves the count at zero; any
// further write, a Deployment's annotation too, counts another generation.
// What is left is a write of the scale subresource, which records no
// owner: the restore, or a person's kubectl scale to the same count after
// a wake cut between its mark and its restore, which it then finished for
// the wake (docs/scaler.md, Limits). Without the mark (an older scaler's
// wake, or none) nothing tells the restore from kubectl scale.
func (st sleepState) wokenByUs(o *object) bool {
	// managedFields last: parsing them is the dearest check, and only a
	// marked workload back at its count needs it.
	if !st.valid || st.waking == 0 || o.replicas != st.replicas || scaledByOthers(o.meta) {
		return false
	}
	return o.meta.Generation == st.markedGeneration(o)+1
}

// markedGeneration is the workload's generation right after the wake's
// mark was written, or 0 without a mark.
func (st sleepState) markedGeneration(o *object) int64 { return afterWrite(o, st.waking) }

// writtenGeneration is the workload's generation right after the state
// was written, or 0 when the state does not record it.
func (st sleepState) writtenGeneration(o *object) int64 { return afterWrite(o, st.generation) }

// afterWrite is the generation of o after the scaler wrote its
// annotations on it at generation g (0: unknown).
func afterWrite(o *object, g int64) int64 {
	if g != 0 && o.annotationsBumpGeneration {
		return g + 1
	}
	return g
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
	// Anyone who may edit the workload writes this one: a NaN or infinite
	// figure would poison every sum of the savings it is counted in.
	if v, err := strconv.ParseFloat(a[AnnotationSaved], 64); err == nil && v >= 0 && !math.IsInf(v, 0) {
		st.saved = v
	}
	if g, ok := a[AnnotationGeneration]; ok {
		// An unreadable generation is no proof; the fingerprint may still be.
		st.generation, _ = strconv.ParseInt(g, 10, 64)
	}
	if g, ok := a[AnnotationWaking]; ok {
		st.waking, _ = strconv.ParseInt(g, 10, 64)
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
	// Annotations are metadata: writing them leaves the generation as read.
	o.meta.Annotations[AnnotationGeneration] = strconv.FormatInt(o.meta.Generation, 10)
}

func clearState(o *object) {
	for _, k := range stateAnnotations {
		delete(o.meta.Annotations, k)
	}
}

func appsResource(w Workload) schema.GroupResource {
	switch w.Kind {
	case KindStatefulSet:
		return schema.GroupResource{Group: "apps", Resource: "statefulsets"}
	case KindRollout:
		return rollouts.GroupResource()
	}
	return schema.GroupResource{Group: "apps", Resource: "deployments"}
}

func metaNamed(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}
