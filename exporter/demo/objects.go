package demo

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/upid-dev/upid/internal/series"
)

// teams owns the namespaces; namespaces carry it as the team label for attribution.
var teams = map[string]string{
	"shop":      "storefront",
	"marketing": "growth",
	"support":   "customer-care",
	"analytics": "data-platform",
	"data":      "data-platform",
	"tools":     "internal-tools",
	"payments":  "payments",
	"logging":   "platform",
}

// uid derives an object's UID from its identity, so the demo is the same on every run and
// owner references agree with the UIDs of their owners.
func uid(kind, namespace, name string) types.UID {
	sum := fmt.Sprintf("%x", sha256.Sum256([]byte(kind+"/"+namespace+"/"+name)))
	return types.UID(sum[0:8] + "-" + sum[8:12] + "-" + sum[12:16] + "-" + sum[16:20] + "-" + sum[20:32])
}

func controllerRef(apiVersion, kind, namespace, name string) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid(kind, namespace, name),
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
}

func cores(v float64) resource.Quantity {
	return *resource.NewMilliQuantity(int64(v*1000+0.5), resource.DecimalSI)
}

func bytesQ(v float64) resource.Quantity { return *resource.NewQuantity(int64(v), resource.BinarySI) }

func (w *workload) labels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": w.Name, "app.kubernetes.io/part-of": w.Namespace}
}

// requirements are requests and limits in cores and bytes; 0 is unset.
func requirements(cpuReq, cpuLim, memReq, memLim float64) corev1.ResourceRequirements {
	r := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for _, v := range []struct {
		l corev1.ResourceList
		n corev1.ResourceName
		v float64
	}{{r.Requests, corev1.ResourceCPU, cpuReq}, {r.Limits, corev1.ResourceCPU, cpuLim}, {r.Requests, corev1.ResourceMemory, memReq}, {r.Limits, corev1.ResourceMemory, memLim}} {
		switch {
		case v.v <= 0:
		case v.n == corev1.ResourceCPU:
			v.l[v.n] = cores(v.v)
		default:
			v.l[v.n] = bytesQ(v.v)
		}
	}
	return r
}

func (w *workload) podTemplate() corev1.PodTemplateSpec {
	spec := corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To(int64(30))}
	if r := w.podResources; r != nil {
		pr := requirements(r.cpuReq, 0, r.memReq, r.memLim)
		spec.Resources = &pr
	}
	if w.cron != nil {
		spec.RestartPolicy = corev1.RestartPolicyOnFailure
	}
	for _, c := range w.containers {
		k := corev1.Container{Name: c.name, Image: c.image, Resources: requirements(c.cpuReq, c.cpuLim, c.memReq, c.memLim)}
		if w.port > 0 {
			k.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: w.port, Protocol: corev1.ProtocolTCP}}
		}
		for _, p := range c.probes {
			pr := &corev1.Probe{PeriodSeconds: p.period, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3}
			switch p.handler {
			case "http":
				pr.HTTPGet = &corev1.HTTPGetAction{Path: p.path, Port: intstr.FromInt32(p.port), Scheme: corev1.URISchemeHTTP}
			case "tcp":
				pr.TCPSocket = &corev1.TCPSocketAction{Port: intstr.FromInt32(p.port)}
			default:
				cmd := []string{"/bin/true"}
				if c.name == "postgres" {
					cmd = []string{"pg_isready", "-U", "postgres"}
				}
				pr.Exec = &corev1.ExecAction{Command: cmd}
			}
			switch p.typ {
			case "Liveness":
				k.LivenessProbe = pr
			case "Readiness":
				k.ReadinessProbe = pr
			}
		}
		spec.Containers = append(spec.Containers, k)
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: w.labels(), Annotations: maps.Clone(w.annotations)},
		Spec:       spec,
	}
}

// objects returns the cluster as it is at the end of the history, as client-go's fake
// clientset takes it: what a kube-apiserver would list at that moment.
func (pl *plan) objects() []runtime.Object {
	var out []runtime.Object
	var nss []string
	for ns := range teams {
		nss = append(nss, ns)
	}
	sort.Strings(nss)
	for _, ns := range nss {
		out = append(out, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: ns, UID: uid("Namespace", "", ns),
				CreationTimestamp: metav1.NewTime(pl.now.Add(-700 * 24 * time.Hour)),
				Labels:            map[string]string{"kubernetes.io/metadata.name": ns, "team": teams[ns]}},
			Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
		})
	}
	for _, n := range pl.nodes {
		out = append(out, n.object(pl.start.Add(-3*24*time.Hour)))
	}
	for _, w := range pl.workloads {
		out = append(out, pl.workloadObjects(w)...)
	}
	for _, p := range pl.pods {
		if p.alive(pl.now) {
			out = append(out, pl.podObject(p))
		}
	}
	return out
}

func (n *node) object(created time.Time) *corev1.Node {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              cores(n.cpu),
		corev1.ResourceMemory:           bytesQ(n.memory),
		corev1.ResourcePods:             *resource.NewQuantity(58, resource.DecimalSI),
		corev1.ResourceEphemeralStorage: bytesQ(80 * gi),
	}
	allocatable := capacity.DeepCopy()
	allocatable[corev1.ResourceCPU] = cores(n.cpu - 0.09)
	allocatable[corev1.ResourceMemory] = bytesQ(n.memory - 1.4*gi)
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.name, UID: types.UID(series.NodeUID(n.openCost())),
			CreationTimestamp: metav1.NewTime(created),
			Labels: map[string]string{
				"kubernetes.io/hostname":            n.name,
				"kubernetes.io/os":                  "linux",
				"kubernetes.io/arch":                "amd64",
				corev1.LabelInstanceTypeStable:      n.instanceType,
				corev1.LabelTopologyRegion:          region,
				corev1.LabelTopologyZone:            n.zone,
				"karpenter.sh/capacity-type":        n.capacityType,
				"karpenter.sh/nodepool":             "default",
				"eks.amazonaws.com/compute-type":    "ec2",
				"node.kubernetes.io/lifecycle":      map[bool]string{true: "spot", false: "normal"}[n.capacityType == "spot"],
				"topology.k8s.aws/zone-id":          "euw1-az" + strconv.Itoa(n.index+1),
				"karpenter.k8s.aws/instance-family": "m6i",
			}},
		Spec: corev1.NodeSpec{ProviderID: n.providerID, PodCIDR: fmt.Sprintf("10.244.%d.0/24", n.index+1)},
		Status: corev1.NodeStatus{
			Capacity: capacity, Allocatable: allocatable,
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.ip}, {Type: corev1.NodeHostName, Address: n.name}},
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.35.0", ContainerRuntimeVersion: "containerd://2.2.1",
				OSImage: "Amazon Linux 2023.8.20250915", Architecture: "amd64", OperatingSystem: "linux"},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

func (n *node) openCost() series.OpenCostNode {
	return series.OpenCostNode{Name: n.name, InstanceType: n.instanceType, Region: region, ProviderID: n.providerID, Arch: "amd64"}
}

func (pl *plan) workloadObjects(w *workload) []runtime.Object {
	created := metav1.NewTime(pl.now.Add(-w.age))
	meta := metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name, UID: uid(w.Kind, w.Namespace, w.Name),
		CreationTimestamp: created, Labels: w.labels()}
	selector := &metav1.LabelSelector{MatchLabels: w.labels()}
	replicas := int32(w.replicas)
	var out []runtime.Object
	switch {
	case w.cron != nil:
		cj := &batchv1.CronJob{ObjectMeta: meta, Spec: batchv1.CronJobSpec{
			Schedule: w.cron.cron, ConcurrencyPolicy: batchv1.ForbidConcurrent,
			SuccessfulJobsHistoryLimit: ptr.To(int32(w.cron.keep)), FailedJobsHistoryLimit: ptr.To(int32(1)),
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Parallelism: ptr.To(int32(1)), Completions: ptr.To(int32(1)),
				BackoffLimit: ptr.To(int32(2)), Template: w.podTemplate()}},
		}}
		for _, j := range pl.jobs {
			if j.w != w || !j.pod.alive(pl.now) {
				continue
			}
			if cj.Status.LastScheduleTime == nil || j.scheduled.After(cj.Status.LastScheduleTime.Time) {
				cj.Status.LastScheduleTime = ptr.To(metav1.NewTime(j.scheduled))
			}
			out = append(out, pl.jobObject(j))
		}
		out = append(out, cj)
	case w.Kind == "StatefulSet":
		out = append(out, &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, Selector: selector, ServiceName: w.Name, Template: w.podTemplate()},
			Status: appsv1.StatefulSetStatus{Replicas: replicas, ReadyReplicas: replicas, CurrentReplicas: replicas}})
	case w.Kind == "DaemonSet":
		n := int32(len(pl.nodes))
		out = append(out, &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Selector: selector, Template: w.podTemplate()},
			Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: n, CurrentNumberScheduled: n, NumberReady: n}})
	default:
		out = append(out, &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: selector, Template: w.podTemplate()},
			Status: appsv1.DeploymentStatus{Replicas: replicas, ReadyReplicas: replicas, AvailableReplicas: replicas, UpdatedReplicas: replicas}})
		for _, rs := range pl.replicaSets {
			if rs.w != w {
				continue
			}
			t := w.podTemplate()
			t.Labels["pod-template-hash"] = rs.hash
			out = append(out, &appsv1.ReplicaSet{
				ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: rs.name, UID: uid("ReplicaSet", w.Namespace, rs.name),
					CreationTimestamp: metav1.NewTime(rs.created), Labels: t.Labels,
					OwnerReferences: controllerRef("apps/v1", "Deployment", w.Namespace, w.Name)},
				Spec:   appsv1.ReplicaSetSpec{Replicas: ptr.To(rs.replicas), Selector: &metav1.LabelSelector{MatchLabels: t.Labels}, Template: t},
				Status: appsv1.ReplicaSetStatus{Replicas: rs.replicas, ReadyReplicas: rs.replicas},
			})
		}
		if w.hpa != nil {
			out = append(out, &autoscalingv2.HorizontalPodAutoscaler{
				ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name, UID: uid("HorizontalPodAutoscaler", w.Namespace, w.Name), CreationTimestamp: created},
				Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
					ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: w.Name},
					MinReplicas:    ptr.To(w.hpa[0]), MaxReplicas: w.hpa[1],
					Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
						Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(int32(70))}}}},
				},
				Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: replicas, DesiredReplicas: replicas},
			})
		}
	}
	if w.cron == nil && w.port > 0 {
		// A workload that serves HTTP has a Service in front of it: without
		// one, UPID takes its requests for health checks only and caps its
		// confidence (no_service).
		out = append(out, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name, UID: uid("Service", w.Namespace, w.Name), CreationTimestamp: created},
			Spec:       corev1.ServiceSpec{Selector: w.labels(), Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(w.port), Protocol: corev1.ProtocolTCP}}},
		})
	}
	return out
}

func (pl *plan) jobObject(j *job) *batchv1.Job {
	w := j.w
	t := w.podTemplate()
	jobUID := uid("Job", w.Namespace, j.name)
	t.Labels["batch.kubernetes.io/job-name"] = j.name
	t.Labels["batch.kubernetes.io/controller-uid"] = string(jobUID)
	out := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: j.name, UID: jobUID,
			CreationTimestamp: metav1.NewTime(j.scheduled), Labels: t.Labels,
			OwnerReferences: controllerRef("batch/v1", "CronJob", w.Namespace, w.Name)},
		Spec:   batchv1.JobSpec{Parallelism: ptr.To(int32(1)), Completions: ptr.To(int32(1)), BackoffLimit: ptr.To(int32(2)), Template: t},
		Status: batchv1.JobStatus{StartTime: ptr.To(metav1.NewTime(j.scheduled))},
	}
	if j.done.After(pl.now) {
		out.Status.Active = 1
	} else {
		out.Status.Succeeded = 1
		out.Status.CompletionTime = ptr.To(metav1.NewTime(j.done))
		out.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(j.done)}}
	}
	return out
}

func (pl *plan) podObject(p *pod) *corev1.Pod {
	w := p.w
	t := w.podTemplate()
	var owner []metav1.OwnerReference
	switch p.owner.Kind {
	case "ReplicaSet":
		for _, rs := range pl.replicaSets {
			if rs.name == p.owner.Name {
				t.Labels["pod-template-hash"] = rs.hash
			}
		}
		owner = controllerRef("apps/v1", "ReplicaSet", w.Namespace, p.owner.Name)
	case "Job":
		t.Labels["batch.kubernetes.io/job-name"] = p.owner.Name
		owner = controllerRef("batch/v1", "Job", w.Namespace, p.owner.Name)
	default:
		owner = controllerRef("apps/v1", p.owner.Kind, w.Namespace, p.owner.Name)
	}
	spec := t.Spec
	spec.NodeName = p.node.name
	phase := corev1.PodPhase(p.phaseAt(pl.now))
	status := corev1.PodStatus{Phase: phase, PodIP: p.ref.PodIP, HostIP: p.ref.HostIP,
		QOSClass: corev1.PodQOSClass(p.ref.QOSClass), StartTime: ptr.To(metav1.NewTime(p.created))}
	for _, c := range w.containers {
		cs := corev1.ContainerStatus{Name: c.name, Image: c.image, Ready: phase == corev1.PodRunning,
			ContainerID: "containerd://" + series.ContainerCPUUsageSeconds(p.container(c.name), nil).Labels["name"]}
		if phase == corev1.PodRunning {
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(p.running[0])}
		} else if phase == corev1.PodSucceeded {
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed",
				StartedAt: metav1.NewTime(p.running[0]), FinishedAt: metav1.NewTime(p.running[1])}
		}
		status.ContainerStatuses = append(status.ContainerStatuses, cs)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: p.ref.Pod, UID: types.UID(series.PodUID(p.ref)),
			CreationTimestamp: metav1.NewTime(p.created), Labels: t.Labels, Annotations: t.Annotations, OwnerReferences: owner},
		Spec:   spec,
		Status: status,
	}
}

// container is the pod's PodRef for one of its containers.
func (p *pod) container(name string) series.PodRef {
	r := p.ref
	r.Container = name
	return r
}
