// Package inventory keeps a lean in-memory copy of the cluster objects the
// analysis needs, through client-go shared informers whose transforms drop
// every field the analysis does not read, and resolves each pod to the
// top-level workload that owns it.
package inventory

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	autoscalinglisters "k8s.io/client-go/listers/autoscaling/v2"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
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
	// Pods is the number of pods that currently resolve to this workload.
	Pods       int
	Containers []Container
	Probes     []Probe
	// MetricsPaths are the prometheus.io/path annotations of the pod
	// template: scrapes of these paths are health traffic, not use.
	MetricsPaths []string
	// HPA is the name of a HorizontalPodAutoscaler targeting the workload.
	HPA string
	// Annotations holds only the upid.io/ annotations.
	Annotations map[string]string
	// Labels are the pod template's labels, which Services select.
	Labels map[string]string
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

// Namespace is a namespace with its labels, for team attribution.
type Namespace struct {
	Name   string
	Labels map[string]string
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
	// hash of the workload ID, as kube-state-metrics does; 0/1 is no sharding.
	Shard, TotalShards int
}

// Inventory watches the cluster.
type Inventory struct {
	opts     Options
	factory  informers.SharedInformerFactory
	stop     chan struct{}
	stopOnce sync.Once

	pods         corelisters.PodLister
	services     corelisters.ServiceLister
	nodes        corelisters.NodeLister
	namespaces   corelisters.NamespaceLister
	deployments  appslisters.DeploymentLister
	replicaSets  appslisters.ReplicaSetLister
	statefulSets appslisters.StatefulSetLister
	daemonSets   appslisters.DaemonSetLister
	jobs         batchlisters.JobLister
	cronJobs     batchlisters.CronJobLister
	hpas         autoscalinglisters.HorizontalPodAutoscalerLister
}

// New creates the informers; Start runs them.
func New(client kubernetes.Interface, opts Options) *Inventory {
	f := informers.NewSharedInformerFactoryWithOptions(client, opts.Resync, informers.WithTransform(transform(opts)))
	return &Inventory{
		opts:         opts,
		factory:      f,
		stop:         make(chan struct{}),
		pods:         f.Core().V1().Pods().Lister(),
		services:     f.Core().V1().Services().Lister(),
		nodes:        f.Core().V1().Nodes().Lister(),
		namespaces:   f.Core().V1().Namespaces().Lister(),
		deployments:  f.Apps().V1().Deployments().Lister(),
		replicaSets:  f.Apps().V1().ReplicaSets().Lister(),
		statefulSets: f.Apps().V1().StatefulSets().Lister(),
		daemonSets:   f.Apps().V1().DaemonSets().Lister(),
		jobs:         f.Batch().V1().Jobs().Lister(),
		cronJobs:     f.Batch().V1().CronJobs().Lister(),
		hpas:         f.Autoscaling().V2().HorizontalPodAutoscalers().Lister(),
	}
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

// Snapshot reads the caches. It is O(objects) and allocation-light, meant to
// run once per analysis cycle, never per scrape.
func (inv *Inventory) Snapshot() (Snapshot, error) {
	everything := labels.Everything()
	byID := map[ID]*Workload{}
	add := func(w Workload) {
		if inv.inShard(w.ID) {
			byID[w.ID] = &w
		}
	}
	deps, err := inv.deployments.List(everything)
	if err != nil {
		return Snapshot{}, err
	}
	for _, d := range deps {
		add(fromTemplate(ID{d.Namespace, KindDeployment, d.Name}, d.CreationTimestamp, replicas(d.Spec.Replicas), &d.Spec.Template))
	}
	sts, err := inv.statefulSets.List(everything)
	if err != nil {
		return Snapshot{}, err
	}
	for _, s := range sts {
		add(fromTemplate(ID{s.Namespace, KindStatefulSet, s.Name}, s.CreationTimestamp, replicas(s.Spec.Replicas), &s.Spec.Template))
	}
	dss, err := inv.daemonSets.List(everything)
	if err != nil {
		return Snapshot{}, err
	}
	for _, d := range dss {
		add(fromTemplate(ID{d.Namespace, KindDaemonSet, d.Name}, d.CreationTimestamp, d.Status.DesiredNumberScheduled, &d.Spec.Template))
	}
	cjs, err := inv.cronJobs.List(everything)
	if err != nil {
		return Snapshot{}, err
	}
	for _, c := range cjs {
		add(fromTemplate(ID{c.Namespace, KindCronJob, c.Name}, c.CreationTimestamp, replicas(c.Spec.JobTemplate.Spec.Parallelism), &c.Spec.JobTemplate.Spec.Template))
	}
	jobs, err := inv.jobs.List(everything)
	if err != nil {
		return Snapshot{}, err
	}
	for _, j := range jobs {
		if controllerOf(j.OwnerReferences, KindCronJob) != "" {
			continue // counted under its CronJob
		}
		add(fromTemplate(ID{j.Namespace, KindJob, j.Name}, j.CreationTimestamp, replicas(j.Spec.Parallelism), &j.Spec.Template))
	}
	rss, err := inv.replicaSets.List(everything)
	if err != nil {
		return Snapshot{}, err
	}
	for _, rs := range rss {
		if controllerOf(rs.OwnerReferences, KindDeployment) != "" {
			continue
		}
		add(fromTemplate(ID{rs.Namespace, KindReplicaSet, rs.Name}, rs.CreationTimestamp, replicas(rs.Spec.Replicas), &rs.Spec.Template))
	}

	pods, err := inv.pods.List(everything)
	if err != nil {
		return Snapshot{}, err
	}
	for _, p := range pods {
		id := inv.Owner(p.Namespace, p.Name, p.OwnerReferences)
		if w, ok := byID[id]; ok {
			w.Pods++
			continue
		}
		if id.Kind == KindPod && inv.inShard(id) {
			w := fromPodSpec(id, p.CreationTimestamp, 1, p.Annotations, &p.Spec)
			w.Pods = 1
			byID[id] = &w
		}
	}

	hpas, err := inv.hpas.List(everything)
	if err != nil {
		return Snapshot{}, err
	}
	for _, h := range hpas {
		ref := h.Spec.ScaleTargetRef
		if w, ok := byID[ID{h.Namespace, ref.Kind, ref.Name}]; ok {
			w.HPA = h.Name
		}
	}

	snap := Snapshot{Pods: len(pods)}
	snap.Workloads = make([]Workload, 0, len(byID))
	for _, w := range byID {
		snap.Workloads = append(snap.Workloads, *w)
	}
	sort.Slice(snap.Workloads, func(i, j int) bool { return less(snap.Workloads[i].ID, snap.Workloads[j].ID) })

	svcs, err := inv.services.List(everything)
	if err != nil {
		return Snapshot{}, err
	}
	snap.Selects = map[[2]string][]ID{}
	// Services only select within their namespace; indexing by it keeps
	// this linear in practice rather than services × workloads.
	byNS := map[string][]int{}
	for i, w := range snap.Workloads {
		if len(w.Labels) > 0 {
			byNS[w.Namespace] = append(byNS[w.Namespace], i)
		}
	}
	for _, svc := range svcs {
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		for _, i := range byNS[svc.Namespace] {
			w := snap.Workloads[i]
			if sel.Matches(labels.Set(w.Labels)) {
				k := [2]string{svc.Namespace, svc.Name}
				snap.Selects[k] = append(snap.Selects[k], w.ID)
			}
		}
	}

	if snap.Nodes, err = inv.nodes.List(everything); err != nil {
		return Snapshot{}, err
	}
	sort.Slice(snap.Nodes, func(i, j int) bool { return snap.Nodes[i].Name < snap.Nodes[j].Name })
	nss, err := inv.namespaces.List(everything)
	if err != nil {
		return Snapshot{}, err
	}
	for _, ns := range nss {
		snap.Namespaces = append(snap.Namespaces, Namespace{Name: ns.Name, Labels: ns.Labels})
	}
	sort.Slice(snap.Namespaces, func(i, j int) bool { return snap.Namespaces[i].Name < snap.Namespaces[j].Name })
	return snap, nil
}

// Owner resolves a pod to its top-level workload: ReplicaSet→Deployment,
// Job→CronJob, StatefulSet, DaemonSet; a pod without a known controller is
// its own workload. Owner references are followed through the caches, and
// by name only when the cache has not seen the owner yet.
func (inv *Inventory) Owner(namespace, pod string, refs []metav1.OwnerReference) ID {
	ref := controller(refs)
	if ref == nil {
		return ID{namespace, KindPod, pod}
	}
	switch ref.Kind {
	case KindReplicaSet:
		if rs, err := inv.replicaSets.ReplicaSets(namespace).Get(ref.Name); err == nil {
			if d := controllerOf(rs.OwnerReferences, KindDeployment); d != "" {
				return ID{namespace, KindDeployment, d}
			}
			return ID{namespace, KindReplicaSet, ref.Name}
		}
		return ID{namespace, KindReplicaSet, ref.Name}
	case KindJob:
		if j, err := inv.jobs.Jobs(namespace).Get(ref.Name); err == nil {
			if c := controllerOf(j.OwnerReferences, KindCronJob); c != "" {
				return ID{namespace, KindCronJob, c}
			}
		}
		return ID{namespace, KindJob, ref.Name}
	case KindStatefulSet, KindDaemonSet:
		return ID{namespace, ref.Kind, ref.Name}
	default:
		// Custom controllers (Argo Rollouts, operators) own pods directly;
		// their kind is kept so the workload is still named sensibly.
		return ID{namespace, ref.Kind, ref.Name}
	}
}

func (inv *Inventory) inShard(id ID) bool {
	if inv.opts.TotalShards <= 1 {
		return true
	}
	return ShardOf(id, inv.opts.TotalShards) == inv.opts.Shard
}

// ShardOf maps a workload to a shard with FNV-1a, stable across processes.
func ShardOf(id ID, total int) int {
	h := uint32(2166136261)
	for _, s := range []string{id.Namespace, id.Kind, id.Name} {
		for i := 0; i < len(s); i++ {
			h ^= uint32(s[i])
			h *= 16777619
		}
		h ^= '/'
		h *= 16777619
	}
	return int(h % uint32(total))
}

func controller(refs []metav1.OwnerReference) *metav1.OwnerReference {
	for i := range refs {
		if refs[i].Controller != nil && *refs[i].Controller {
			return &refs[i]
		}
	}
	return nil
}

func controllerOf(refs []metav1.OwnerReference, kind string) string {
	if c := controller(refs); c != nil && c.Kind == kind {
		return c.Name
	}
	return ""
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

func fromTemplate(id ID, created metav1.Time, n int32, t *corev1.PodTemplateSpec) Workload {
	w := fromPodSpec(id, created, n, t.Annotations, &t.Spec)
	w.Labels = t.Labels
	return w
}

func fromPodSpec(id ID, created metav1.Time, n int32, annotations map[string]string, spec *corev1.PodSpec) Workload {
	w := Workload{ID: id, Created: created.Time, Replicas: n}
	for _, c := range spec.InitContainers {
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		w.Containers = append(w.Containers, container(c, true, sidecar))
		if sidecar {
			w.Probes = append(w.Probes, probes(c)...)
		}
	}
	for _, c := range spec.Containers {
		w.Containers = append(w.Containers, container(c, false, false))
		w.Probes = append(w.Probes, probes(c)...)
	}
	if p := annotations["prometheus.io/path"]; p != "" {
		w.MetricsPaths = append(w.MetricsPaths, p)
	}
	for k, v := range annotations {
		if strings.HasPrefix(k, "upid.io/") {
			if w.Annotations == nil {
				w.Annotations = map[string]string{}
			}
			w.Annotations[k] = v
		}
	}
	return w
}

func container(c corev1.Container, init, sidecar bool) Container {
	return Container{
		Name: c.Name, Init: init, Sidecar: sidecar,
		CPURequest:    c.Resources.Requests.Cpu().AsApproximateFloat64(),
		CPULimit:      c.Resources.Limits.Cpu().AsApproximateFloat64(),
		MemoryRequest: c.Resources.Requests.Memory().AsApproximateFloat64(),
		MemoryLim:     c.Resources.Limits.Memory().AsApproximateFloat64(),
	}
}

func probes(c corev1.Container) []Probe {
	var out []Probe
	for _, p := range []struct {
		typ   string
		probe *corev1.Probe
	}{{"Liveness", c.LivenessProbe}, {"Readiness", c.ReadinessProbe}, {"Startup", c.StartupProbe}} {
		if p.probe == nil {
			continue
		}
		period := p.probe.PeriodSeconds
		if period <= 0 {
			period = 10 // the API server's default
		}
		pr := Probe{Container: c.Name, Type: p.typ, Period: time.Duration(period) * time.Second}
		switch h := p.probe.ProbeHandler; {
		case h.HTTPGet != nil:
			pr.Handler, pr.Path, pr.Port = "http", h.HTTPGet.Path, h.HTTPGet.Port.String()
			if pr.Path == "" {
				pr.Path = "/"
			}
		case h.TCPSocket != nil:
			pr.Handler, pr.Port = "tcp", h.TCPSocket.Port.String()
		case h.GRPC != nil:
			pr.Handler, pr.Port = "grpc", fmt.Sprint(h.GRPC.Port)
		default:
			pr.Handler = "exec"
		}
		out = append(out, pr)
	}
	return out
}
