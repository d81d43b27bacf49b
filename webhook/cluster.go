package webhook

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	"github.com/upid-dev/upid/internal/argorollouts"
)

// Cluster answers the handler's questions about the cluster from informer
// caches, so that admission never waits on the API server.
type Cluster interface {
	// NamespaceLabels returns the labels of namespace ns; ok is false
	// when it is not cached (yet).
	NamespaceLabels(ns string) (labels map[string]string, ok bool)
	WorkloadAnnotations(ns string, w Workload) map[string]string
	// Object is the metadata of workload w as the cache has it, nil when
	// it is not cached or of a kind the webhook does not watch (a
	// Rollout: only its ReplicaSets are).
	Object(ns string, w Workload) metav1.Object
	// Reference is the workload object for Events, nil when not cached.
	Reference(ns string, w Workload) *corev1.ObjectReference
	Constraints(ns string) Constraints
}

var workloadResources = map[string]schema.GroupVersionResource{
	"Deployment":  {Group: "apps", Version: "v1", Resource: "deployments"},
	"StatefulSet": {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"DaemonSet":   {Group: "apps", Version: "v1", Resource: "daemonsets"},
	"ReplicaSet":  {Group: "apps", Version: "v1", Resource: "replicasets"},
	"Job":         {Group: "batch", Version: "v1", Resource: "jobs"},
	"CronJob":     {Group: "batch", Version: "v1", Resource: "cronjobs"},
}

// InformerCluster keeps namespaces, LimitRanges, ResourceQuotas and the
// metadata of workloads in informer caches. Workloads are cached as
// metadata only.
type InformerCluster struct {
	typed      informers.SharedInformerFactory
	meta       metadatainformer.SharedInformerFactory
	namespaces listerscorev1.NamespaceLister
	limits     listerscorev1.LimitRangeLister
	quotas     listerscorev1.ResourceQuotaLister
	workloads  map[string]cache.GenericLister
	// byRollout indexes the ReplicaSets' metadata by the Rollout that
	// controls them (namespace/name), so that admission reads a Rollout's
	// few instead of its namespace's all.
	byRollout cache.Indexer
	stop      chan struct{}
	stopOnce  sync.Once
}

// NewInformerCluster sets up the informers; Start runs them.
func NewInformerCluster(kube kubernetes.Interface, meta metadata.Interface, resync time.Duration) *InformerCluster {
	// Managed fields are most of an object's metadata and are never read here.
	strip := informers.WithTransform(func(obj any) (any, error) {
		if o, ok := obj.(metav1.Object); ok {
			o.SetManagedFields(nil)
		}
		return obj, nil
	})
	c := &InformerCluster{
		typed: informers.NewSharedInformerFactoryWithOptions(kube, resync, strip),
		meta: metadatainformer.NewSharedInformerFactoryWithOptions(meta, resync, metadatainformer.WithTransform(func(obj any) (any, error) {
			if o, ok := obj.(metav1.Object); ok {
				o.SetManagedFields(nil)
			}
			return obj, nil
		})),
		workloads: map[string]cache.GenericLister{},
		stop:      make(chan struct{}),
	}
	c.namespaces = c.typed.Core().V1().Namespaces().Lister()
	c.limits = c.typed.Core().V1().LimitRanges().Lister()
	c.quotas = c.typed.Core().V1().ResourceQuotas().Lister()
	for kind, gvr := range workloadResources {
		c.workloads[kind] = c.meta.ForResource(gvr).Lister()
	}
	rs := c.meta.ForResource(workloadResources["ReplicaSet"]).Informer()
	// Only fails on an informer already started; this one is not.
	_ = rs.AddIndexers(cache.Indexers{rolloutIndex: func(obj any) ([]string, error) {
		o, ok := obj.(metav1.Object)
		if !ok {
			return nil, nil
		}
		if ref := metav1.GetControllerOfNoCopy(o); ref != nil && ref.Kind == argorollouts.Kind {
			return []string{o.GetNamespace() + "/" + ref.Name}, nil
		}
		return nil, nil
	}})
	c.byRollout = rs.GetIndexer()
	return c
}

const rolloutIndex = "rollout"

// Start runs the informers and waits for their first list.
// The informers run until Shutdown, not until ctx ends: ctx only bounds
// the wait.
func (c *InformerCluster) Start(ctx context.Context) error {
	c.typed.Start(c.stop)
	c.meta.Start(c.stop)
	for t, ok := range c.typed.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("informer cache of %v did not sync", t)
		}
	}
	for r, ok := range c.meta.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("informer cache of %v did not sync", r)
		}
	}
	return nil
}

// Shutdown stops the informers.
func (c *InformerCluster) Shutdown() {
	c.stopOnce.Do(func() { close(c.stop) })
	c.typed.Shutdown()
	c.meta.Shutdown()
}

func (c *InformerCluster) NamespaceLabels(ns string) (map[string]string, bool) {
	n, err := c.namespaces.Get(ns)
	if err != nil {
		return nil, false
	}
	return n.Labels, true
}

func (c *InformerCluster) WorkloadAnnotations(ns string, w Workload) map[string]string {
	if w.Kind == argorollouts.Kind {
		return c.rolloutAnnotations(ns, w.Name)
	}
	m := c.Object(ns, w)
	if m == nil {
		return nil
	}
	return metaAnnotations(m)
}

func (c *InformerCluster) Reference(ns string, w Workload) *corev1.ObjectReference {
	if w.Kind == argorollouts.Kind {
		// The webhook watches a Rollout's ReplicaSets only; their
		// controller reference names the Rollout, with its UID.
		for _, o := range c.rolloutReplicaSets(ns, w.Name) {
			if r := metav1.GetControllerOf(o); r != nil { // the index's key: this Rollout
				return &corev1.ObjectReference{APIVersion: r.APIVersion, Kind: w.Kind, Namespace: ns, Name: w.Name, UID: r.UID}
			}
		}
		return nil
	}
	m := c.Object(ns, w)
	if m == nil {
		return nil // not cached
	}
	return reference(ns, w, m.GetUID())
}

func (c *InformerCluster) Object(ns string, w Workload) metav1.Object {
	l, ok := c.workloads[w.Kind]
	if !ok {
		return nil
	}
	obj, err := l.ByNamespace(ns).Get(w.Name)
	if err != nil {
		return nil
	}
	m, _ := obj.(metav1.Object)
	return m
}

// rolloutAnnotations are an Argo Rollout's, as Argo copies them to its
// latest ReplicaSet (argorollouts.RevisionAnnotation), which the webhook
// watches, unlike Rollouts: the pod's own ReplicaSet may be the stable
// revision's, which keeps the annotations it had when it was the latest.
// Nil when the Rollout has no ReplicaSet.
func (c *InformerCluster) rolloutAnnotations(ns, name string) map[string]string {
	var latest metav1.Object
	for _, o := range c.rolloutReplicaSets(ns, name) {
		if latest == nil || argorollouts.Later(argorollouts.Revision(o.GetAnnotations()), o.GetCreationTimestamp().Unix(),
			argorollouts.Revision(latest.GetAnnotations()), latest.GetCreationTimestamp().Unix()) {
			latest = o
		}
	}
	if latest == nil {
		return nil
	}
	if a := latest.GetAnnotations(); a != nil {
		return a
	}
	return map[string]string{}
}

// rolloutReplicaSets are the cached ReplicaSets of Rollout ns/name.
func (c *InformerCluster) rolloutReplicaSets(ns, name string) []metav1.Object {
	objs, _ := c.byRollout.ByIndex(rolloutIndex, ns+"/"+name) // fails only for an unknown index
	out := make([]metav1.Object, 0, len(objs))
	for _, obj := range objs {
		if o, ok := obj.(metav1.Object); ok {
			out = append(out, o)
		}
	}
	return out
}

func (c *InformerCluster) Constraints(ns string) Constraints {
	// A lister of a cache reads memory and does not fail.
	lrs, _ := c.limits.LimitRanges(ns).List(labels.Everything())
	qs, _ := c.quotas.ResourceQuotas(ns).List(labels.Everything())
	return Constraints{LimitRanges: lrs, Quotas: qs}
}
