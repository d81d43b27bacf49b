// Package inventory keeps a lean in-memory copy of the cluster objects the
// analysis needs, through client-go shared informers whose transforms drop
// every field the analysis does not read, and resolves each pod to the
// top-level workload that owns it.
package inventory

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	autoscalinginformers "k8s.io/client-go/informers/autoscaling/v2"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/upid-dev/upid/internal/argorollouts"
)

// Workload kinds, spelled as Kubernetes spells them.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
	KindReplicaSet  = "ReplicaSet"
	KindJob         = "Job"
	KindCronJob     = "CronJob"
	KindPod         = "Pod"
	// KindRollout is Argo Rollouts' Deployment: its ReplicaSets fold into
	// it as a Deployment's do. Other controllers keep their own kinds.
	KindRollout = argorollouts.Kind
)

// ID names a top-level workload.
type ID struct {
	Namespace, Kind, Name string
}

func (id ID) String() string { return id.Namespace + "/" + id.Kind + "/" + id.Name }

// Workload is what the analysis knows about one top-level workload.
type Workload struct {
	ID
	Created time.Time
	// Replicas is the desired count (DaemonSets: desired scheduled pods;
	// Jobs: parallelism; bare pods: 1).
	Replicas int32
	// Pods is the number of pods that currently resolve to this workload
	// and have not finished (Succeeded, Failed).
	Pods       int
	Containers []Container
	// Pod holds the template's pod-level requests and limits.
	Pod    PodResources
	Probes []Probe
	// MetricsPaths are the prometheus.io/path annotations of the pod
	// template: scrapes of these paths are health traffic, not use.
	MetricsPaths []string
	// HPA is the name of a HorizontalPodAutoscaler targeting the workload,
	// and HPAUtilization the resources it scales on by utilization.
	HPA            string
	HPAUtilization []HPAResource
	// Annotations holds only the upid.io/ annotations, of the workload
	// object and of its pod template; the object's win, since it is where
	// kubectl annotate puts them and it does not roll the pods.
	Annotations map[string]string
	// labels are the pod template's, which Services select; shared with
	// the cache. A Rollout's are its chosen revision's, and revisions the
	// others': Argo pins a blue-green's active Service (a canary's stable
	// one) to one revision's hash, not always the chosen one.
	labels    []label
	revisions [][]label
	// Requests are what the workload's Pending and Running pods request,
	// by node ("" for pods not scheduled yet), sorted by node.
	Requests []NodeRequests
}

// PodResources are a pod template's pod-level requests and limits
// (spec.resources, KEP-2837, on by default since Kubernetes 1.34), in cores
// and bytes, 0 where it sets none. For a resource set there the scheduler
// reserves the pod's request, not the sum of its containers'.
type PodResources struct {
	CPURequest, CPULimit       float64
	MemoryRequest, MemoryLimit float64
}

// Sets tells whether the pod sets resource ("cpu" or "memory") at pod
// level, by a request or a limit (the API server makes the request from
// the limit when a pod is created).
func (p PodResources) Sets(resource string) bool {
	switch resource {
	case "cpu":
		return p.CPURequest > 0 || p.CPULimit > 0
	case "memory":
		return p.MemoryRequest > 0 || p.MemoryLimit > 0
	}
	return false
}

// NodeRequests is what a workload's pods on one node request, in cores,
// bytes and GPUs.
type NodeRequests struct {
	Node              string
	CPU, Memory, GPUs float64
}

// HPAResource is a resource ("cpu", "memory") a HorizontalPodAutoscaler
// scales on by utilization, of one container or (Container empty) of the
// whole pod, and the utilization it holds, as a fraction (0.8 for 80 %).
type HPAResource struct {
	Resource, Container string
	Target              float64
	// Index is the target's position in the HPA's spec.metrics, for a
	// patch; -1 for an HPA without metrics (the API's 80 % CPU).
	Index int
}

// Scales reports whether the HPA's utilization targets include resource
// of container c.
func Scales(hpa []HPAResource, resource, c string) bool {
	for _, h := range hpa {
		if h.Resource == resource && (h.Container == "" || h.Container == c) {
			return true
		}
	}
	return false
}

// Container is a container of the pod template, with its resources in base
// units (cores and bytes); zero means unset.
type Container struct {
	Name                     string
	Init, Sidecar            bool
	CPURequest, CPULimit     float64
	MemoryRequest, MemoryLim float64
}

// Probe is one probe declared in the pod template. Only HTTP probes have a
// path; the analysis still counts the others towards the expected probe rate.
type Probe struct {
	Container string
	Type      string // Liveness, Readiness or Startup, as prober_probe_total spells probe_type
	Handler   string // http, tcp, grpc or exec
	Path      string
	Port      string
	Period    time.Duration
}

// Namespace is a namespace with its labels, for team attribution, and its
// upid.io/ labels and annotations, which set policies.
type Namespace struct {
	Name string
	// Labels are the allow-listed labels (Options.NamespaceLabels).
	Labels map[string]string
	// UPIDLabels and UPIDAnnotations are the upid.io/ ones.
	UPIDLabels, UPIDAnnotations map[string]string
}

// Snapshot is a consistent read of the caches at one moment.
type Snapshot struct {
	Workloads  []Workload // sorted by ID
	Nodes      []*corev1.Node
	Namespaces []Namespace
	Pods       int
	// Selects maps a Service (namespace, name) to the workloads whose pods
	// it selects, so that traffic counted per Service (an ingress
	// controller's) reaches the workloads behind it.
	Selects map[[2]string][]ID
}

// Options configure what the inventory watches.
type Options struct {
	// Resync is the informers' resync period; 0 disables resync, which is
	// right here because every cycle reads the caches afresh.
	Resync time.Duration
	// NamespaceLabels is the allow-list of namespace labels kept for
	// attribution; every other label is dropped.
	NamespaceLabels []string
	// Shard and TotalShards split workloads between exporter replicas by a
	// hash of their namespace; 0/1 is no sharding. kube-state-metrics
	// hashes each object, but UPID's heavy queries select namespaces: a
	// namespace split between replicas would be read by each of them.
	Shard, TotalShards int
}

// Inventory watches the cluster.
type Inventory struct {
	opts     Options
	factory  informers.SharedInformerFactory
	stop     chan struct{}
	stopOnce sync.Once

	// The stores of lean objects (lean.go), without the namespace index
	// the typed informers add: nothing here lists by namespace, and the
	// index costs about 40 bytes per pod.
	pods, services, deployments, replicaSets, statefulSets, daemonSets, jobs, cronJobs, hpas, nodes cache.Store
	operators                                                                                       *operatorSpecs

	namespaces corelisters.NamespaceLister
}

// New creates the informers; Start runs them.
func New(client kubernetes.Interface, opts Options) *Inventory {
	operators := &operatorSpecs{}
	f := informers.NewSharedInformerFactoryWithOptions(client, opts.Resync, informers.WithTransform(transform(opts, operators)))
	none := cache.Indexers{}
	store := func(obj runtime.Object, newInformer func(kubernetes.Interface, string, time.Duration, cache.Indexers) cache.SharedIndexInformer) cache.Store {
		return quietOnStop(f.InformerFor(obj, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
			return newInformer(c, metav1.NamespaceAll, resync, none)
		})).GetStore()
	}
	quietOnStop(f.Core().V1().Namespaces().Informer())
	return &Inventory{
		opts:        opts,
		operators:   operators,
		factory:     f,
		stop:        make(chan struct{}),
		pods:        store(&corev1.Pod{}, coreinformers.NewPodInformer),
		services:    store(&corev1.Service{}, coreinformers.NewServiceInformer),
		deployments: store(&appsv1.Deployment{}, appsinformers.NewDeploymentInformer),
		// Only ReplicaSets no Deployment made: pods name their Deployment
		// through the pod-template-hash label (podOwner).
		replicaSets: store(&appsv1.ReplicaSet{}, func(c kubernetes.Interface, ns string, resync time.Duration, ix cache.Indexers) cache.SharedIndexInformer {
			return appsinformers.NewFilteredReplicaSetInformer(c, ns, resync, ix, func(o *metav1.ListOptions) {
				o.LabelSelector = "!" + appsv1.DefaultDeploymentUniqueLabelKey
			})
		}),
		statefulSets: store(&appsv1.StatefulSet{}, appsinformers.NewStatefulSetInformer),
		daemonSets:   store(&appsv1.DaemonSet{}, appsinformers.NewDaemonSetInformer),
		jobs:         store(&batchv1.Job{}, batchinformers.NewJobInformer),
		cronJobs:     store(&batchv1.CronJob{}, batchinformers.NewCronJobInformer),
		hpas:         store(&autoscalingv2.HorizontalPodAutoscaler{}, autoscalinginformers.NewHorizontalPodAutoscalerInformer),
		nodes: store(&corev1.Node{}, func(c kubernetes.Interface, _ string, resync time.Duration, ix cache.Indexers) cache.SharedIndexInformer {
			return coreinformers.NewNodeInformer(c, resync, ix)
		}),
		namespaces: f.Core().V1().Namespaces().Lister(),
	}
}

// quietOnStop keeps the watches that Shutdown cancels out of the log:
// client-go reports each as "Failed to watch: context canceled", an error
// line per resource at every exit of a terminal command. Other watch errors
// are reported as client-go does.
func quietOnStop(inf cache.SharedIndexInformer) cache.SharedIndexInformer {
	// The error is only for an informer already started; New's are not.
	_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		if ctx.Err() != nil {
			return
		}
		cache.DefaultWatchErrorHandler(ctx, r, err)
	})
	return inf
}

// Start runs the informers until Shutdown and waits until every cache has
// synced or ctx ends.
func (inv *Inventory) Start(ctx context.Context) error {
	inv.factory.Start(inv.stop)
	for typ, ok := range inv.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("inventory: cache of %v did not sync: %w", typ, context.Cause(ctx))
		}
	}
	return nil
}

// Shutdown stops the informers and waits for them to finish.
func (inv *Inventory) Shutdown() {
	inv.stopOnce.Do(func() { close(inv.stop) })
	inv.factory.Shutdown()
}

// each calls fn with every lean object of type T in store; anything else
// (which the transform should never let in) is an error, not a panic.
func each[T any](store cache.Store, fn func(T)) error {
	for _, obj := range store.List() {
		o, ok := obj.(T)
		if !ok {
			return fmt.Errorf("inventory: cache holds a %T, want %T", obj, *new(T))
		}
		fn(o)
	}
	return nil
}

// Snapshot reads the caches. It is O(objects) and allocation-light, meant to
// run once per analysis cycle, never per scrape.
func (inv *Inventory) Snapshot() (Snapshot, error) {
	byID := map[ID]*Workload{}
	// revisions folds the ReplicaSets of a controller other than a
	// Deployment (an Argo Rollout) into one workload named after it: the
	// template of the revision with the most replicas (the stable one
	// during a canary, the new one once promoted), the replicas of all,
	// and the upid.io/ annotations of the latest revision, to which Argo
	// copies the Rollout's own.
	type revisions struct {
		chosen, latest *leanWorkload
		all            []*leanWorkload
		replicas       int32
		created        int64
	}
	folded := map[ID]*revisions{}
	add := func(kind string) func(*leanWorkload) {
		return func(o *leanWorkload) {
			if o.spec == nil {
				return // a ReplicaSet of a Deployment, a Job of a CronJob
			}
			if kind == KindReplicaSet && o.owner.kind != (interned{}) {
				id := ID{o.namespace.String(), o.owner.kind.String(), o.owner.name}
				if !inv.inShard(id) {
					return
				}
				r := folded[id]
				if r == nil {
					r = &revisions{chosen: o, latest: o, created: o.created}
					folded[id] = r
				}
				if later(o, r.chosen) {
					r.chosen = o
				}
				if argorollouts.Later(int64(o.revision), o.created, int64(r.latest.revision), r.latest.created) {
					r.latest = o
				}
				r.all = append(r.all, o)
				r.replicas += o.replicas
				r.created = min(r.created, o.created)
				return
			}
			id := ID{o.namespace.String(), kind, o.name}
			if inv.inShard(id) {
				w := fromSpec(id, o.created, o.replicas, o.spec)
				byID[id] = &w
			}
		}
	}
	for _, k := range []struct {
		kind  string
		store cache.Store
	}{
		{KindDeployment, inv.deployments}, {KindStatefulSet, inv.statefulSets}, {KindDaemonSet, inv.daemonSets},
		{KindCronJob, inv.cronJobs}, {KindJob, inv.jobs}, {KindReplicaSet, inv.replicaSets},
	} {
		if err := each(k.store, add(k.kind)); err != nil {
			return Snapshot{}, err
		}
	}
	for id, r := range folded {
		if _, ok := byID[id]; !ok { // a workload of that name and kind wins
			w := fromSpec(id, r.created, r.replicas, r.chosen.spec)
			w.Annotations = r.latest.spec.annotations
			for _, o := range r.all {
				if o != r.chosen {
					w.revisions = append(w.revisions, o.spec.labels)
				}
			}
			byID[id] = &w
		}
	}

	// Workloads made from pods: a bare pod from its own spec, the pods of
	// a controller the inventory does not watch (an operator's) from the
	// newest one's (operatorSpecs), with the running pods as replicas;
	// created is the oldest pod's. A first pass makes them, so that the
	// second counts every pod whatever the cache's order.
	started := time.Now()
	byPods := map[ID]int64{}
	live := map[ID]bool{}
	err := each(inv.pods, func(p *leanPod) {
		operator := operatorOwned(p.owner.kind.String())
		if operator {
			live[ID{p.namespace.String(), p.owner.kind.String(), p.owner.name}] = true
		} else if p.spec == nil {
			return // a watched controller's: its workload is made already
		}
		id := inv.owner(p.namespace.String(), p.name, p.owner)
		if _, ok := byID[id]; ok {
			return // the oldest pod's creation is found below
		}
		spec := p.spec
		if spec == nil && operator {
			spec = inv.operators.get(id)
		}
		if spec == nil || !inv.inShard(id) {
			return
		}
		w := fromSpec(id, p.created, 1, spec)
		byID[id] = &w
		byPods[id] = p.created
	})
	if err != nil {
		return Snapshot{}, err
	}
	// A minute's margin: a spec offered before the pods were listed whose
	// pod is not stored yet stays for the next Snapshot.
	inv.operators.prune(live, started.Add(-time.Minute))

	pods := 0
	err = each(inv.pods, func(p *leanPod) {
		pods++
		id := inv.owner(p.namespace.String(), p.name, p.owner)
		w, ok := byID[id]
		if !ok {
			// A watched controller's pod whose controller is gone: deleted
			// with --cascade=orphan (a Deployment's ReplicaSet keeps its
			// pods and their pod-template-hash), or not in its cache yet.
			// Its pods still run and cost: a workload without a template
			// counts them, under the name the history gives them.
			if p.spec != nil || p.req.finished || operatorOwned(p.owner.kind.String()) || !inv.inShard(id) {
				return
			}
			o := fromSpec(id, p.created, 0, &podSpec{})
			w = &o
			byID[id], byPods[id] = w, p.created
		} else if created, made := byPods[id]; made && p.created < created {
			byPods[id] = p.created
		}
		if !p.req.finished {
			// Finished pods (a Job's, an evicted one kept for its
			// status) are not replicas.
			w.Pods++
		}
		if p.req.reserving {
			w.addRequests(p.node.String(), p.req)
		}
	})
	if err != nil {
		return Snapshot{}, err
	}
	for id, created := range byPods {
		w := byID[id]
		w.Created = time.Unix(created, 0)
		if id.Kind != KindPod {
			w.Replicas = int32(w.Pods)
		}
	}

	err = each(inv.hpas, func(h *leanHPA) {
		if w, ok := byID[ID{h.namespace.String(), h.targetKind.String(), h.targetName}]; ok {
			w.HPA, w.HPAUtilization = h.name, h.utilization
		}
	})
	if err != nil {
		return Snapshot{}, err
	}

	snap := Snapshot{Pods: pods}
	snap.Workloads = make([]Workload, 0, len(byID))
	for _, w := range byID {
		snap.Workloads = append(snap.Workloads, *w)
	}
	sort.Slice(snap.Workloads, func(i, j int) bool { return less(snap.Workloads[i].ID, snap.Workloads[j].ID) })

	snap.Selects = map[[2]string][]ID{}
	// Workloads indexed by each of their template's labels, within their
	// namespace: a Service selecting k=v needs only check the workloads
	// labelled k=v, not every workload of its namespace (35,000 Services
	// × 65 workloads each took over a second at 150,000 pods).
	type nsLabel struct {
		namespace string
		label
	}
	byLabel := map[nsLabel][]int{}
	for i, w := range snap.Workloads {
		for _, ls := range append([][]label{w.labels}, w.revisions...) {
			for _, l := range ls {
				k := nsLabel{w.Namespace, l}
				// Revisions share most labels: one entry a workload.
				if ix := byLabel[k]; len(ix) == 0 || ix[len(ix)-1] != i {
					byLabel[k] = append(ix, i)
				}
			}
		}
	}
	err = each(inv.services, func(svc *leanService) {
		if len(svc.selector) == 0 {
			return
		}
		for _, i := range byLabel[nsLabel{svc.namespace.String(), svc.selector[0]}] {
			w := snap.Workloads[i]
			if selects(svc.selector, w.labels) || slices.ContainsFunc(w.revisions, func(ls []label) bool { return selects(svc.selector, ls) }) {
				k := [2]string{svc.namespace.String(), svc.name}
				snap.Selects[k] = append(snap.Selects[k], w.ID)
			}
		}
	})
	if err != nil {
		return Snapshot{}, err
	}

	if err := each(inv.nodes, func(n *leanNode) { snap.Nodes = append(snap.Nodes, n.Node) }); err != nil {
		return Snapshot{}, err
	}
	sort.Slice(snap.Nodes, func(i, j int) bool { return snap.Nodes[i].Name < snap.Nodes[j].Name })
	nss, err := inv.namespaces.List(labels.Everything())
	if err != nil {
		return Snapshot{}, err
	}
	for _, ns := range nss {
		n := Namespace{Name: ns.Name, UPIDAnnotations: ns.Annotations}
		// The cache keeps the allow-listed labels and the upid.io/ ones
		// together (transform); a label may be both.
		for k, v := range ns.Labels {
			if slices.Contains(inv.opts.NamespaceLabels, k) {
				if n.Labels == nil {
					n.Labels = map[string]string{}
				}
				n.Labels[k] = v
			}
			if strings.HasPrefix(k, upidPrefix) {
				if n.UPIDLabels == nil {
					n.UPIDLabels = map[string]string{}
				}
				n.UPIDLabels[k] = v
			}
		}
		snap.Namespaces = append(snap.Namespaces, n)
	}
	sort.Slice(snap.Namespaces, func(i, j int) bool { return snap.Namespaces[i].Name < snap.Namespaces[j].Name })
	return snap, nil
}

func (w *Workload) addRequests(node string, r podRequests) {
	i := sort.Search(len(w.Requests), func(i int) bool { return w.Requests[i].Node >= node })
	if i == len(w.Requests) || w.Requests[i].Node != node {
		w.Requests = append(w.Requests, NodeRequests{})
		copy(w.Requests[i+1:], w.Requests[i:])
		w.Requests[i] = NodeRequests{Node: node}
	}
	w.Requests[i].CPU += float64(r.cpuMilli) / 1000
	w.Requests[i].Memory += float64(r.memory)
	w.Requests[i].GPUs += float64(r.gpus)
}

// selects says whether every term of a selector is among labels, as a
// Service's selector does.
func selects(selector, labels []label) bool {
	for _, term := range selector {
		if !slices.Contains(labels, term) {
			return false
		}
	}
	return true
}

// Owner resolves a pod to its top-level workload: ReplicaSet→Deployment
// (by the pod-template-hash label, or through the cache), ReplicaSet→its
// other controller (an Argo Rollout), Job→CronJob, StatefulSet, DaemonSet,
// any other controller; a pod without a controller is its own workload.
func (inv *Inventory) Owner(p *corev1.Pod) ID {
	return inv.owner(p.Namespace, p.Name, podOwner(p))
}

func (inv *Inventory) owner(namespace, pod string, o owner) ID {
	switch o.kind.String() {
	case "":
		return ID{namespace, KindPod, pod}
	case KindReplicaSet:
		if rs := inv.workload(inv.replicaSets, namespace, o.name); rs != nil && rs.owner.kind != (interned{}) {
			return ID{namespace, rs.owner.kind.String(), rs.owner.name}
		}
		return ID{namespace, KindReplicaSet, o.name}
	case KindJob:
		if j := inv.workload(inv.jobs, namespace, o.name); j != nil && j.owner.kind.String() == KindCronJob {
			return ID{namespace, KindCronJob, j.owner.name}
		}
		return ID{namespace, KindJob, o.name}
	default:
		// StatefulSets and DaemonSets own their pods; so do custom
		// controllers (Argo Rollouts, operators), whose kind is kept so the
		// workload is still named sensibly.
		return ID{namespace, o.kind.String(), o.name}
	}
}

// later says whether ReplicaSet a holds the revision to show rather than b:
// more replicas, then the newer one, then the name, so that the choice does
// not depend on the cache's order.
func later(a, b *leanWorkload) bool {
	if a.replicas != b.replicas {
		return a.replicas > b.replicas
	}
	if a.created != b.created {
		return a.created > b.created
	}
	return a.name > b.name
}

func (inv *Inventory) workload(store cache.Store, namespace, name string) *leanWorkload {
	obj, ok, err := store.GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil
	}
	w, _ := obj.(*leanWorkload)
	return w
}

func (inv *Inventory) inShard(id ID) bool {
	if inv.opts.TotalShards <= 1 {
		return true
	}
	return ShardOf(id.Namespace, inv.opts.TotalShards) == inv.opts.Shard
}

// ShardOf maps a namespace, and so every workload in it, to a shard with
// FNV-1a, stable across processes.
func ShardOf(namespace string, total int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(namespace))
	return int(h.Sum32() % uint32(total))
}

func controller(refs []metav1.OwnerReference) *metav1.OwnerReference {
	for i := range refs {
		if refs[i].Controller != nil && *refs[i].Controller {
			return &refs[i]
		}
	}
	return nil
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

func less(a, b ID) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.Name < b.Name
}

func fromSpec(id ID, created int64, n int32, s *podSpec) Workload {
	// The slices and maps are shared with the cache: the analysis only reads them.
	return Workload{
		ID: id, Created: time.Unix(created, 0), Replicas: n,
		Containers: s.containers, Probes: s.probes, MetricsPaths: s.metricsPaths,
		Annotations: s.annotations, labels: s.labels, Pod: s.pod,
	}
}
