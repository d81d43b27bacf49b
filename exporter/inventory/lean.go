package inventory

import (
	"maps"
	"slices"
	"strings"
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// The caches hold lean objects of the types below rather than trimmed
// copies of the API types: an empty corev1.Pod is over a kilobyte of struct
// before any field is set, and at 150,000 pods the trimmed API objects of
// pods, ReplicaSets, Deployments and Services still came to about 5 KB per
// pod (BenchmarkCacheByResource). Lean objects keep what the analysis
// reads, with each pod template's part of a Workload computed once at
// transform time, and strings that repeat across objects (namespaces,
// kinds, node and container names, label keys) interned: each object
// keeps the unique.Handle of what it interned (interned, pins).
//
// They implement metav1.Object and runtime.Object only as far as the
// informer machinery needs: a namespace and name for the cache key. Lean
// objects are never modified once stored, so DeepCopyObject may share
// their parts.

// objMeta is a lean object's identity.
type objMeta struct {
	name      string
	namespace interned
	created   int64 // Unix seconds
}

func newMeta(m *metav1.ObjectMeta) objMeta {
	return objMeta{name: m.Name, namespace: intern(m.Namespace), created: m.CreationTimestamp.Unix()}
}

func (m *objMeta) GetNamespace() string                          { return m.namespace.String() }
func (m *objMeta) SetNamespace(ns string)                        { m.namespace = intern(ns) }
func (m *objMeta) GetName() string                               { return m.name }
func (m *objMeta) SetName(n string)                              { m.name = n }
func (m *objMeta) GetGenerateName() string                       { return "" }
func (m *objMeta) SetGenerateName(string)                        {}
func (m *objMeta) GetUID() types.UID                             { return "" }
func (m *objMeta) SetUID(types.UID)                              {}
func (m *objMeta) GetResourceVersion() string                    { return "" }
func (m *objMeta) SetResourceVersion(string)                     {}
func (m *objMeta) GetGeneration() int64                          { return 0 }
func (m *objMeta) SetGeneration(int64)                           {}
func (m *objMeta) GetSelfLink() string                           { return "" }
func (m *objMeta) SetSelfLink(string)                            {}
func (m *objMeta) GetCreationTimestamp() metav1.Time             { return metav1.Unix(m.created, 0) }
func (m *objMeta) SetCreationTimestamp(t metav1.Time)            { m.created = t.Unix() }
func (m *objMeta) GetDeletionTimestamp() *metav1.Time            { return nil }
func (m *objMeta) SetDeletionTimestamp(*metav1.Time)             {}
func (m *objMeta) GetDeletionGracePeriodSeconds() *int64         { return nil }
func (m *objMeta) SetDeletionGracePeriodSeconds(*int64)          {}
func (m *objMeta) GetLabels() map[string]string                  { return nil }
func (m *objMeta) SetLabels(map[string]string)                   {}
func (m *objMeta) GetAnnotations() map[string]string             { return nil }
func (m *objMeta) SetAnnotations(map[string]string)              {}
func (m *objMeta) GetFinalizers() []string                       { return nil }
func (m *objMeta) SetFinalizers([]string)                        {}
func (m *objMeta) GetOwnerReferences() []metav1.OwnerReference   { return nil }
func (m *objMeta) SetOwnerReferences([]metav1.OwnerReference)    {}
func (m *objMeta) GetManagedFields() []metav1.ManagedFieldsEntry { return nil }
func (m *objMeta) SetManagedFields([]metav1.ManagedFieldsEntry)  {}
func (m *objMeta) GetObjectKind() schema.ObjectKind              { return schema.EmptyObjectKind }

// owner is an object's controller.
type owner struct {
	kind interned
	name string
}

// ownerOf returns the controller of an object named name. Controllers name
// what they create after themselves (web → web-7d9f → web-7d9f-x2z), so
// the owner's name is usually a prefix of the object's, and shares its
// memory.
func ownerOf(name string, refs []metav1.OwnerReference) owner {
	c := controller(refs)
	if c == nil {
		return owner{}
	}
	o := owner{kind: intern(c.Kind), name: c.Name}
	if strings.HasPrefix(name, c.Name) {
		o.name = name[:len(c.Name)]
	}
	return o
}

// podSpec is what a Workload takes from a pod template or a bare pod.
type podSpec struct {
	containers   []Container
	probes       []Probe
	metricsPaths []string
	annotations  map[string]string // upid.io/ only
	labels       []label
	pod          PodResources
	pins         pins // of the strings above
}

// leanPod is a Pod. Only bare pods keep their spec: pods of a controller
// take it from the controller's template.
type leanPod struct {
	objMeta
	owner owner
	node  interned
	req   podRequests // holds the phase too, in what would be padding
	spec  *podSpec
}

// podRequests is what a pod requests, its containers' and native sidecars'
// requests summed, as admitted (LimitRange defaults included), which is
// what the scheduler reserves and the bill pays for. Integers in the
// units Kubernetes counts in keep it exact and small.
type podRequests struct {
	memory   int64 // bytes
	cpuMilli int32
	gpus     int16
	// reserving says the pod is Pending or Running: it holds its requests.
	// Here rather than a phase string, this keeps a leanPod at 88 bytes,
	// in the 96-byte size class rather than 112 (16 bytes a pod).
	reserving bool
	// finished says the pod Succeeded or Failed (a Job's done pod, an
	// evicted one kept for its status): it no longer runs.
	finished bool
}

// leanWorkload is a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or
// CronJob. spec is nil for the ReplicaSets of Deployments and the Jobs of
// CronJobs, which only resolve owners.
type leanWorkload struct {
	objMeta
	owner    owner
	replicas int32 // desired: spec.replicas, DaemonSet desired scheduled, Job parallelism
	// revision is an Argo Rollout's ReplicaSet's argorollouts.Revision (0
	// for others). Beside replicas, it takes no room of its own.
	revision int32
	spec     *podSpec
}

// leanService is a Service's selector.
type leanService struct {
	objMeta
	selector []label
}

// leanHPA is the target of a HorizontalPodAutoscaler and the resources it
// scales on by utilization.
type leanHPA struct {
	objMeta
	targetKind  interned
	targetName  string
	utilization []HPAResource
	pins        pins // of utilization's strings
}

// leanNode is a Node, as the API type: there are thirty times fewer nodes
// than pods. Pricing rules select nodes by any label, so the labels stay,
// their keys interned; images and conditions, the bulk of a Node, go.
type leanNode struct {
	*corev1.Node
	pins pins // of the label keys
}

func (p *leanPod) DeepCopyObject() runtime.Object      { c := *p; return &c }
func (w *leanWorkload) DeepCopyObject() runtime.Object { c := *w; return &c }
func (s *leanService) DeepCopyObject() runtime.Object  { c := *s; return &c }
func (h *leanHPA) DeepCopyObject() runtime.Object      { c := *h; return &c }
func (n *leanNode) DeepCopyObject() runtime.Object     { c := *n; return &c }

// interned is a string interned with unique, held as its Handle. unique
// keeps the canonical copy only while a Handle to it is reachable: a
// string from Handle.Value alone does not keep it, so objects made after a
// collection would get copies of their own (every pod as pods come and
// go). A Handle is also half a string's 16 bytes. The zero value is "".
type interned unique.Handle[string]

// intern returns the canonical copy of s, so that the thousands of objects
// naming the same namespace, node or kind hold one string.
func intern(s string) interned {
	if s == "" {
		return interned{}
	}
	return interned(unique.Make(s))
}

func (i interned) String() string {
	if i == (interned{}) {
		return ""
	}
	return unique.Handle[string](i).Value()
}

// pins holds the handles of the strings an object interned where its
// fields are strings (those shared with Snapshot's exported types), so
// that their canonical copies live as long as the object.
type pins []interned

// intern returns the canonical copy of s and keeps its handle. A nil p
// interns nothing.
func (p *pins) intern(s string) string {
	if p == nil {
		return s
	}
	i := intern(s)
	if i != (interned{}) && !slices.Contains(*p, i) {
		*p = append(*p, i)
	}
	return i.String()
}

func (p *pins) internKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[p.intern(k)] = v
	}
	return out
}

// label is a label or a selector's term. Only the key is interned: a few
// dozen keys recur in every object, where most values (a workload's name,
// instance, template hash) belong to one or a few, and unique keeps about
// 220 bytes per distinct string, more than the copies it would save.
type label struct {
	key   interned
	value string
}

// labelsOf returns the labels of m sorted by key: three labels take 72
// bytes, a map of them over 300.
func labelsOf(m map[string]string) []label {
	if len(m) == 0 {
		return nil
	}
	out := make([]label, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, label{intern(k), m[k]})
	}
	return out
}
