package inventory

import (
	"fmt"
	"math"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/upid-dev/upid/internal/argorollouts"
)

// watched are the controllers whose templates the inventory reads; a pod
// of any other (or of none) keeps its own spec.
var watched = map[string]bool{
	KindDeployment: true, KindStatefulSet: true, KindDaemonSet: true, KindReplicaSet: true, KindJob: true, KindCronJob: true,
}

// transform turns every watched object into its lean form (lean.go) before
// it is stored. It is idempotent: client-go may hand it an object it has
// already transformed.
func transform(opts Options, operators *operatorSpecs) cache.TransformFunc {
	keepNS := map[string]bool{}
	for _, l := range opts.NamespaceLabels {
		keepNS[l] = true
	}
	return func(obj any) (any, error) {
		switch o := obj.(type) {
		case *corev1.Pod:
			p := &leanPod{objMeta: newMeta(&o.ObjectMeta), owner: podOwner(o), node: intern(o.Spec.NodeName), req: requestsOf(o)}
			p.req.reserving = o.Status.Phase == corev1.PodPending || o.Status.Phase == corev1.PodRunning
			p.req.finished = o.Status.Phase == corev1.PodSucceeded || o.Status.Phase == corev1.PodFailed
			// Pods of a controller take probes and annotations from the
			// controller's template; only bare pods need their own. The
			// newest pod of a controller not watched here stands in for
			// its template.
			switch {
			case p.owner.kind == interned{}:
				p.spec = specOf(o.Annotations, o.Labels, &o.Spec)
			case operatorOwned(p.owner.kind.String()):
				operators.offer(ID{p.namespace.String(), p.owner.kind.String(), p.owner.name}, p.created, p.name, func() *podSpec { return specOf(o.Annotations, o.Labels, &o.Spec) })
			}
			return p, nil
		case *appsv1.Deployment:
			return workloadOf(&o.ObjectMeta, replicas(o.Spec.Replicas), &o.Spec.Template, ""), nil
		case *appsv1.StatefulSet:
			return workloadOf(&o.ObjectMeta, replicas(o.Spec.Replicas), &o.Spec.Template, ""), nil
		case *appsv1.DaemonSet:
			return workloadOf(&o.ObjectMeta, o.Status.DesiredNumberScheduled, &o.Spec.Template, ""), nil
		case *appsv1.ReplicaSet:
			// A Deployment keeps up to ten old ReplicaSets; only owner
			// resolution needs them, so their templates go.
			w := workloadOf(&o.ObjectMeta, replicas(o.Spec.Replicas), &o.Spec.Template, KindDeployment)
			if w.owner.kind.String() == KindRollout {
				w.revision = int32(min(argorollouts.Revision(o.Annotations), math.MaxInt32))
			}
			return w, nil
		case *batchv1.Job:
			return workloadOf(&o.ObjectMeta, replicas(o.Spec.Parallelism), &o.Spec.Template, KindCronJob), nil
		case *batchv1.CronJob:
			return workloadOf(&o.ObjectMeta, replicas(o.Spec.JobTemplate.Spec.Parallelism), &o.Spec.JobTemplate.Spec.Template, ""), nil
		case *autoscalingv2.HorizontalPodAutoscaler:
			h := &leanHPA{objMeta: newMeta(&o.ObjectMeta), targetKind: intern(o.Spec.ScaleTargetRef.Kind), targetName: o.Spec.ScaleTargetRef.Name}
			h.utilization = hpaUtilization(o.Spec.Metrics, &h.pins)
			return h, nil
		case *corev1.Service:
			// Only the selector: it ties per-Service traffic to workloads.
			return &leanService{objMeta: newMeta(&o.ObjectMeta), selector: labelsOf(o.Spec.Selector)}, nil
		case *corev1.Node:
			n := &leanNode{Node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: o.Name, CreationTimestamp: o.CreationTimestamp}}}
			n.Labels = n.pins.internKeys(o.Labels)
			n.Spec.ProviderID = o.Spec.ProviderID
			n.Status.Capacity = pricedResources(o.Status.Capacity, o.Status.Allocatable)
			return n, nil
		case *corev1.Namespace:
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.Name, CreationTimestamp: o.CreationTimestamp}}
			for k, v := range o.Labels {
				if keepNS[k] || strings.HasPrefix(k, upidPrefix) {
					if ns.Labels == nil {
						ns.Labels = map[string]string{}
					}
					ns.Labels[k] = v
				}
			}
			ns.Annotations = upidOnly(o.Annotations, nil, nil)
			ns.Status.Phase = o.Status.Phase
			return ns, nil
		default:
			// Lean objects, cache.DeletedFinalStateUnknown and anything
			// unexpected pass through.
			return obj, nil
		}
	}
}

// podOwner is the pod's controller, with a ReplicaSet made by a Deployment
// resolved to the Deployment right here: the Deployment controller names its
// ReplicaSets <deployment>-<pod-template-hash> and labels their pods with
// that hash, so the inventory need not keep the ReplicaSets of Deployments
// (three quarters of all ReplicaSets at 150,000 pods; New watches only the
// others).
func podOwner(p *corev1.Pod) owner {
	o := ownerOf(p.Name, p.OwnerReferences)
	if o.kind.String() == "Node" {
		// A static pod's mirror (kube-apiserver-n1, etcd-n1): each is its
		// own workload, as a bare pod, not every static pod of a node one.
		return owner{}
	}
	if o.kind.String() != KindReplicaSet {
		return o
	}
	if h := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; h != "" && strings.HasSuffix(o.name, "-"+h) {
		return owner{kind: intern(KindDeployment), name: o.name[:len(o.name)-len(h)-1]}
	}
	return o
}

// requestsOf is what the scheduler reserves for a pod, and so what it
// costs: resourcehelper.PodRequests, the rule the scheduler and the quota
// use. Containers and native sidecars add up, an init container's request
// is a floor for the pod's whole life (with the sidecars started before
// it), a pod-level request replaces the sum for its resource, and the
// RuntimeClass's overhead adds to it. Most pods have none of the last
// three: for them the sum is the same, and it runs on every pod event
// without resourcehelper's maps (0.2 against 3 µs a pod, 0 against 2 KB).
func requestsOf(pod *corev1.Pod) podRequests {
	var r podRequests
	add := func(l corev1.ResourceList) {
		r.cpuMilli = int32(saturated(int64(r.cpuMilli), l.Cpu(), resource.Milli, math.MaxInt32))
		r.memory = saturated(r.memory, l.Memory(), 0, math.MaxInt64)
		for name, q := range l {
			if strings.HasSuffix(string(name), "/gpu") {
				r.gpus = int16(saturated(int64(r.gpus), &q, 0, math.MaxInt16))
			}
		}
	}
	spec := &pod.Spec
	plain := spec.Resources == nil && len(spec.Overhead) == 0
	for i := range spec.InitContainers {
		if c := &spec.InitContainers[i]; c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			plain = false
		}
	}
	if !plain {
		add(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
		return r
	}
	for i := range spec.Containers {
		add(spec.Containers[i].Resources.Requests)
	}
	for i := range spec.InitContainers {
		add(spec.InitContainers[i].Resources.Requests)
	}
	return r
}

// saturated is sum plus q in units of 10^scale, at most ceiling: a request
// no node holds (cpu: 3M, which any namespace user may write on a pod that
// then stays Pending) counts as the most the field holds, where a plain
// conversion wraps it negative and turns its cost and waste negative.
func saturated(sum int64, q *resource.Quantity, scale resource.Scale, ceiling int64) int64 {
	if q.Sign() <= 0 {
		return sum
	}
	if q.Cmp(*resource.NewScaledQuantity(ceiling-sum, scale)) >= 0 {
		return ceiling
	}
	return sum + q.ScaledValue(scale)
}

// pricedResources keeps the resources a node is priced by (CPU, memory,
// GPUs) from its capacity, falling back to allocatable for one capacity
// lacks, as pricing.NodeFromObject reads them; pods, storage and hugepages
// go.
func pricedResources(capacity, allocatable corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for _, from := range []corev1.ResourceList{allocatable, capacity} {
		for name, q := range from {
			if name == corev1.ResourceCPU || name == corev1.ResourceMemory || strings.Contains(string(name), "gpu") {
				out[name] = q
			}
		}
	}
	return out
}

// workloadOf makes the lean form of a controller. Its template is dropped
// when the controller is itself controlled by a foldInto: the ReplicaSets of
// a Deployment, the Jobs of a CronJob.
func workloadOf(m *metav1.ObjectMeta, n int32, t *corev1.PodTemplateSpec, foldInto string) *leanWorkload {
	w := &leanWorkload{objMeta: newMeta(m), owner: ownerOf(m.Name, m.OwnerReferences), replicas: n}
	if foldInto == "" || w.owner.kind.String() != foldInto {
		w.spec = specOf(t.Annotations, t.Labels, &t.Spec)
		w.spec.annotations = upidOnly(m.Annotations, w.spec.annotations, &w.spec.pins)
	}
	return w
}

// specOf computes once what every Snapshot reads of a pod template.
func specOf(annotations, labels map[string]string, spec *corev1.PodSpec) *podSpec {
	s := &podSpec{labels: labelsOf(labels)}
	for _, c := range spec.InitContainers {
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		s.containers = append(s.containers, container(c, true, sidecar, &s.pins))
		if sidecar {
			s.probes = append(s.probes, probes(c, &s.pins)...)
		}
	}
	for _, c := range spec.Containers {
		s.containers = append(s.containers, container(c, false, false, &s.pins))
		s.probes = append(s.probes, probes(c, &s.pins)...)
	}
	if p := annotations["prometheus.io/path"]; p != "" {
		s.metricsPaths = []string{s.pins.intern(p)}
	}
	if pr := spec.Resources; pr != nil {
		s.pod = PodResources{
			CPURequest: pr.Requests.Cpu().AsApproximateFloat64(), CPULimit: pr.Limits.Cpu().AsApproximateFloat64(),
			MemoryRequest: pr.Requests.Memory().AsApproximateFloat64(), MemoryLimit: pr.Limits.Memory().AsApproximateFloat64(),
		}
	}
	s.annotations = upidOnly(annotations, nil, &s.pins)
	return s
}

const upidPrefix = "upid.io/"

// upidOnly adds the upid.io/ entries of m to into, which may be nil, and
// returns it: nil when there are none, as for most objects.
func upidOnly(m, into map[string]string, p *pins) map[string]string {
	for k, v := range m {
		if strings.HasPrefix(k, upidPrefix) {
			if into == nil {
				into = map[string]string{}
			}
			into[p.intern(k)] = v
		}
	}
	return into
}

func container(c corev1.Container, init, sidecar bool, ps *pins) Container {
	return Container{
		Name: ps.intern(c.Name), Init: init, Sidecar: sidecar,
		CPURequest:    c.Resources.Requests.Cpu().AsApproximateFloat64(),
		CPULimit:      c.Resources.Limits.Cpu().AsApproximateFloat64(),
		MemoryRequest: c.Resources.Requests.Memory().AsApproximateFloat64(),
		MemoryLim:     c.Resources.Limits.Memory().AsApproximateFloat64(),
	}
}

func probes(c corev1.Container, ps *pins) []Probe {
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
		pr := Probe{Container: ps.intern(c.Name), Type: p.typ, Period: time.Duration(period) * time.Second}
		switch h := p.probe.ProbeHandler; {
		case h.HTTPGet != nil:
			pr.Handler, pr.Path, pr.Port = "http", ps.intern(h.HTTPGet.Path), ps.intern(h.HTTPGet.Port.String())
			if pr.Path == "" {
				pr.Path = "/"
			}
		case h.TCPSocket != nil:
			pr.Handler, pr.Port = "tcp", ps.intern(h.TCPSocket.Port.String())
		case h.GRPC != nil:
			pr.Handler, pr.Port = "grpc", ps.intern(fmt.Sprint(h.GRPC.Port))
		default:
			pr.Handler = "exec"
		}
		out = append(out, pr)
	}
	return out
}

// hpaUtilization lists the resources an HPA scales on by utilization, the
// targets that depend on the pods' requests. An HPA without metrics scales
// on CPU utilization (the API's default, 80 %).
func hpaUtilization(metrics []autoscalingv2.MetricSpec, ps *pins) []HPAResource {
	if len(metrics) == 0 {
		return []HPAResource{{Resource: "cpu", Target: defaultHPAUtilization, Index: -1}}
	}
	var out []HPAResource
	for i, m := range metrics {
		switch {
		case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Target.Type == autoscalingv2.UtilizationMetricType:
			out = append(out, HPAResource{Resource: ps.intern(string(m.Resource.Name)), Target: utilization(m.Resource.Target.AverageUtilization), Index: i})
		case m.Type == autoscalingv2.ContainerResourceMetricSourceType && m.ContainerResource != nil && m.ContainerResource.Target.Type == autoscalingv2.UtilizationMetricType:
			out = append(out, HPAResource{Resource: ps.intern(string(m.ContainerResource.Name)), Container: ps.intern(m.ContainerResource.Container),
				Target: utilization(m.ContainerResource.Target.AverageUtilization), Index: i})
		}
	}
	return out
}

// defaultHPAUtilization is the API's CPU target for an HPA without metrics.
const defaultHPAUtilization = 0.8

// utilization is an averageUtilization as a fraction; 0 when unset, which
// validation rejects for a Utilization target.
func utilization(p *int32) float64 {
	if p == nil || *p <= 0 {
		return 0
	}
	return float64(*p) / 100
}
