package inventory

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// transform returns lean copies of the watched objects. Caches of 150,000
// pods and their ReplicaSets dominate the exporter's memory, so every field
// the analysis does not read is dropped before the object is stored.
func transform(opts Options) cache.TransformFunc {
	keepNS := map[string]bool{}
	for _, l := range opts.NamespaceLabels {
		keepNS[l] = true
	}
	return func(obj any) (any, error) {
		switch o := obj.(type) {
		case *corev1.Pod:
			p := &corev1.Pod{ObjectMeta: leanMeta(o.ObjectMeta, false)}
			p.Spec.NodeName = o.Spec.NodeName
			p.Status.Phase = o.Status.Phase
			// Pods of a controller take probes and annotations from the
			// controller's template; only bare pods need their own. (A
			// one-entry annotation map per pod costs about 370 bytes of
			// heap, 55 MB at 150,000 pods: BenchmarkSync, cache-B/pod.)
			bare := controller(o.OwnerReferences) == nil
			if bare {
				p.Spec.Containers = leanContainers(o.Spec.Containers, true)
				p.Spec.InitContainers = leanContainers(o.Spec.InitContainers, true)
			} else {
				p.Annotations = nil
			}
			return p, nil
		case *appsv1.Deployment:
			d := &appsv1.Deployment{ObjectMeta: leanMeta(o.ObjectMeta, false)}
			d.Spec.Replicas = o.Spec.Replicas
			d.Spec.Template = leanTemplate(o.Spec.Template)
			return d, nil
		case *appsv1.StatefulSet:
			s := &appsv1.StatefulSet{ObjectMeta: leanMeta(o.ObjectMeta, false)}
			s.Spec.Replicas = o.Spec.Replicas
			s.Spec.Template = leanTemplate(o.Spec.Template)
			return s, nil
		case *appsv1.DaemonSet:
			d := &appsv1.DaemonSet{ObjectMeta: leanMeta(o.ObjectMeta, false)}
			d.Status.DesiredNumberScheduled = o.Status.DesiredNumberScheduled
			d.Spec.Template = leanTemplate(o.Spec.Template)
			return d, nil
		case *appsv1.ReplicaSet:
			rs := &appsv1.ReplicaSet{ObjectMeta: leanMeta(o.ObjectMeta, false)}
			rs.Spec.Replicas = o.Spec.Replicas
			// A Deployment keeps up to ten old ReplicaSets; only owner
			// resolution needs them, so their templates go.
			if controllerOf(o.OwnerReferences, KindDeployment) == "" {
				rs.Spec.Template = leanTemplate(o.Spec.Template)
			}
			return rs, nil
		case *batchv1.Job:
			j := &batchv1.Job{ObjectMeta: leanMeta(o.ObjectMeta, false)}
			j.Spec.Parallelism = o.Spec.Parallelism
			if controllerOf(o.OwnerReferences, KindCronJob) == "" {
				j.Spec.Template = leanTemplate(o.Spec.Template)
			}
			return j, nil
		case *batchv1.CronJob:
			c := &batchv1.CronJob{ObjectMeta: leanMeta(o.ObjectMeta, false)}
			c.Spec.Suspend = o.Spec.Suspend
			c.Spec.JobTemplate.Spec.Parallelism = o.Spec.JobTemplate.Spec.Parallelism
			c.Spec.JobTemplate.Spec.Template = leanTemplate(o.Spec.JobTemplate.Spec.Template)
			return c, nil
		case *autoscalingv2.HorizontalPodAutoscaler:
			h := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: leanMeta(o.ObjectMeta, false)}
			h.Spec.ScaleTargetRef = o.Spec.ScaleTargetRef
			h.Spec.MinReplicas = o.Spec.MinReplicas
			h.Spec.MaxReplicas = o.Spec.MaxReplicas
			return h, nil
		case *corev1.Service:
			// Only the selector: it ties per-Service traffic to workloads.
			svc := &corev1.Service{ObjectMeta: leanMeta(o.ObjectMeta, false)}
			svc.Spec.Selector = o.Spec.Selector
			return svc, nil
		case *corev1.Node:
			// Pricing rules select nodes by any label, so node labels stay;
			// images and conditions, the bulk of a Node, go.
			n := &corev1.Node{ObjectMeta: leanMeta(o.ObjectMeta, true)}
			n.Spec.ProviderID = o.Spec.ProviderID
			n.Status.Capacity = o.Status.Capacity
			n.Status.Allocatable = o.Status.Allocatable
			return n, nil
		case *corev1.Namespace:
			ns := &corev1.Namespace{ObjectMeta: leanMeta(o.ObjectMeta, false)}
			for k, v := range o.Labels {
				if keepNS[k] {
					if ns.Labels == nil {
						ns.Labels = map[string]string{}
					}
					ns.Labels[k] = v
				}
			}
			ns.Status.Phase = o.Status.Phase
			return ns, nil
		case metav1.Object:
			o.SetManagedFields(nil)
			return obj, nil
		default:
			// cache.DeletedFinalStateUnknown and anything unexpected pass through.
			return obj, nil
		}
	}
}

func leanMeta(m metav1.ObjectMeta, keepLabels bool) metav1.ObjectMeta {
	out := metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         m.Namespace,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		CreationTimestamp: m.CreationTimestamp,
		DeletionTimestamp: m.DeletionTimestamp,
	}
	if c := controller(m.OwnerReferences); c != nil {
		out.OwnerReferences = []metav1.OwnerReference{{Kind: c.Kind, Name: c.Name, UID: c.UID, Controller: c.Controller, APIVersion: c.APIVersion}}
	}
	if keepLabels {
		out.Labels = m.Labels
	}
	out.Annotations = leanAnnotations(m.Annotations)
	return out
}

// leanAnnotations keeps the annotations the analysis reads: UPID's own and
// the Prometheus scrape path, whose traffic is health traffic.
func leanAnnotations(a map[string]string) map[string]string {
	var out map[string]string
	for k, v := range a {
		if k == "prometheus.io/path" || strings.HasPrefix(k, "upid.io/") {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

func leanTemplate(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: t.Labels, Annotations: leanAnnotations(t.Annotations)},
		Spec: corev1.PodSpec{
			Containers:     leanContainers(t.Spec.Containers, true),
			InitContainers: leanContainers(t.Spec.InitContainers, true),
		},
	}
}

func leanContainers(cs []corev1.Container, withProbes bool) []corev1.Container {
	if len(cs) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = corev1.Container{
			Name:          c.Name,
			Resources:     corev1.ResourceRequirements{Requests: c.Resources.Requests, Limits: c.Resources.Limits},
			RestartPolicy: c.RestartPolicy,
		}
		if withProbes {
			out[i].LivenessProbe = leanProbe(c.LivenessProbe)
			out[i].ReadinessProbe = leanProbe(c.ReadinessProbe)
			out[i].StartupProbe = leanProbe(c.StartupProbe)
		}
	}
	return out
}

func leanProbe(p *corev1.Probe) *corev1.Probe {
	if p == nil {
		return nil
	}
	out := &corev1.Probe{PeriodSeconds: p.PeriodSeconds}
	switch {
	case p.HTTPGet != nil:
		out.HTTPGet = &corev1.HTTPGetAction{Path: p.HTTPGet.Path, Port: p.HTTPGet.Port, Scheme: p.HTTPGet.Scheme}
	case p.TCPSocket != nil:
		out.TCPSocket = &corev1.TCPSocketAction{Port: p.TCPSocket.Port}
	case p.GRPC != nil:
		out.GRPC = &corev1.GRPCAction{Port: p.GRPC.Port}
	case p.Exec != nil:
		out.Exec = &corev1.ExecAction{}
	}
	return out
}
