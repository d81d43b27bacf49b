package inventory

import (
	"context"
	"fmt"
	"math"
	"reflect"
	goruntime "runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	resourcehelper "k8s.io/component-helpers/resource"
)

func ptr[T any](v T) *T { return &v }

// labelValue is the value of key in labels.
func labelValue(labels []label, key string) string {
	for _, l := range labels {
		if l.key.String() == key {
			return l.value
		}
	}
	return ""
}

func owned(kind, name string) []metav1.OwnerReference {
	return []metav1.OwnerReference{{Kind: kind, Name: name, Controller: ptr(true), UID: "u-" + "name"}}
}

func meta(ns, name string, owners ...metav1.OwnerReference) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, OwnerReferences: owners,
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}
}

func annotated(m metav1.ObjectMeta, a map[string]string) metav1.ObjectMeta {
	m.Annotations = a
	return m
}

func podTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels:      map[string]string{"app": "web"},
			Annotations: map[string]string{"prometheus.io/path": "/stats", "checksum/config": "abc", "upid.io/mode": "enforce"},
		},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{
				{Name: "migrate", Image: "migrate:1"},
				{Name: "proxy", RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways),
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(15021)}}, PeriodSeconds: 15}},
			},
			Containers: []corev1.Container{{
				Name:  "app",
				Image: "web:1",
				Env:   []corev1.EnvVar{{Name: "BIG", Value: "x"}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
				},
				LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}, PeriodSeconds: 10},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080)}}},
				StartupProbe:   &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}, PeriodSeconds: 5},
			}},
		},
	}
}

func objects() []runtime.Object {
	tmpl := podTemplate()
	return []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop",
			Labels:      map[string]string{"team": "payments", "secret-ish": "x", "upid.io/limit-policy": "keep"},
			Annotations: map[string]string{"upid.io/min-memory": "64Mi", "owner": "x"}}},
		&appsv1.Deployment{ObjectMeta: annotated(meta("shop", "web"), map[string]string{"upid.io/mode": "off", "upid.io/cpu-percentile": "0.95", "deployment.kubernetes.io/revision": "3"}), Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(3)), Template: tmpl}},
		&appsv1.ReplicaSet{ObjectMeta: hashed(meta("shop", "web-7d9f", owned(KindDeployment, "web")...), "7d9f"), Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(3)), Template: tmpl}},
		&appsv1.ReplicaSet{ObjectMeta: meta("shop", "orphan-rs"), Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(1)), Template: tmpl}},
		&appsv1.StatefulSet{ObjectMeta: meta("shop", "db"), Spec: appsv1.StatefulSetSpec{Replicas: ptr(int32(2)), Template: tmpl}},
		&appsv1.DaemonSet{ObjectMeta: meta("shop", "agent"), Spec: appsv1.DaemonSetSpec{Template: tmpl}, Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 4}},
		&batchv1.CronJob{ObjectMeta: meta("shop", "nightly"), Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}},
		&batchv1.Job{ObjectMeta: meta("shop", "nightly-29000", owned(KindCronJob, "nightly")...), Spec: batchv1.JobSpec{Template: tmpl}},
		&batchv1.Job{ObjectMeta: meta("shop", "once"), Spec: batchv1.JobSpec{Parallelism: ptr(int32(2)), Template: tmpl}},
		&autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: meta("shop", "web-hpa"), Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: KindDeployment, Name: "web", APIVersion: "apps/v1"}, MaxReplicas: 10}},
		&corev1.Pod{ObjectMeta: hashed(meta("shop", "web-7d9f-a", owned(KindReplicaSet, "web-7d9f")...), "7d9f"), Spec: onNode(tmpl.Spec, "n1"), Status: corev1.PodStatus{Phase: corev1.PodRunning}},
		&corev1.Pod{ObjectMeta: hashed(meta("shop", "web-7d9f-b", owned(KindReplicaSet, "web-7d9f")...), "7d9f"), Spec: onNode(tmpl.Spec, "n1"), Status: corev1.PodStatus{Phase: corev1.PodSucceeded}},
		&corev1.Pod{ObjectMeta: meta("shop", "db-0", owned(KindStatefulSet, "db")...), Spec: tmpl.Spec},
		&corev1.Pod{ObjectMeta: meta("shop", "agent-x", owned(KindDaemonSet, "agent")...), Spec: tmpl.Spec},
		&corev1.Pod{ObjectMeta: meta("shop", "nightly-29000-q", owned(KindJob, "nightly-29000")...), Spec: tmpl.Spec},
		&corev1.Pod{ObjectMeta: meta("shop", "once-z", owned(KindJob, "once")...), Spec: tmpl.Spec},
		&corev1.Pod{ObjectMeta: meta("shop", "debug"), Spec: tmpl.Spec},
		// A static pod's mirror, which its Node owns.
		&corev1.Pod{ObjectMeta: meta("shop", "etcd-n1", owned("Node", "n1")...), Spec: tmpl.Spec},
		// An Argo Rollout's two revisions: the stable one with three
		// replicas, the canary with one and a new image.
		// Argo copies the Rollout's annotations to the latest revision only.
		&appsv1.ReplicaSet{ObjectMeta: annotated(created(rolloutHashed(meta("shop", "canary-6b8c", owned("Rollout", "canary")...), "6b8c"), 3), map[string]string{"rollout.argoproj.io/revision": "1"}),
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(3)), Template: tmpl}},
		&appsv1.ReplicaSet{ObjectMeta: annotated(created(rolloutHashed(meta("shop", "canary-9f1d", owned("Rollout", "canary")...), "9f1d"), 2), map[string]string{"rollout.argoproj.io/revision": "2", "upid.io/cpu-percentile": "0.8"}),
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(1)), Template: canaryTemplate()}},
		&corev1.Pod{ObjectMeta: rolloutHashed(meta("shop", "canary-6b8c-a", owned(KindReplicaSet, "canary-6b8c")...), "6b8c"), Spec: tmpl.Spec},
		&corev1.Pod{ObjectMeta: rolloutHashed(meta("shop", "canary-9f1d-a", owned(KindReplicaSet, "canary-9f1d")...), "9f1d"), Spec: canaryTemplate().Spec},
		// Pods of a controller the inventory does not watch (an OpenKruise
		// CloneSet): the newest one's spec, its labels included.
		&corev1.Pod{ObjectMeta: created(labelled(meta("shop", "clone-a", owned("CloneSet", "clone")...), map[string]string{"app": "web", "rev": "1"}), 1), Spec: tmpl.Spec},
		&corev1.Pod{ObjectMeta: created(labelled(meta("shop", "clone-b", owned("CloneSet", "clone")...), map[string]string{"app": "web", "rev": "2"}), 2), Spec: canaryTemplate().Spec},
		&corev1.Service{ObjectMeta: meta("shop", "web-svc"), Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}},
		&corev1.Service{ObjectMeta: meta("shop", "other"), Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "other"}}},
		&corev1.Service{ObjectMeta: meta("shop", "external")},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"node.kubernetes.io/instance-type": "m5.large"}},
			Status: corev1.NodeStatus{Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}, Images: []corev1.ContainerImage{{Names: []string{"big"}}}}},
	}
}

// canaryTemplate is podTemplate with a new image and twice the CPU.
func canaryTemplate() corev1.PodTemplateSpec {
	t := podTemplate()
	t.Spec.Containers[0].Image = "web:2"
	t.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("500m")
	return t
}

// rolloutHashed adds the label Argo Rollouts puts on its ReplicaSets and
// their pods, which name them <rollout>-<hash>.
func rolloutHashed(m metav1.ObjectMeta, hash string) metav1.ObjectMeta {
	return labelled(m, map[string]string{"rollouts-pod-template-hash": hash})
}

func labelled(m metav1.ObjectMeta, l map[string]string) metav1.ObjectMeta {
	m.Labels = l
	return m
}

// created sets the creation time to minute n of a fixed day.
func created(m metav1.ObjectMeta, n int) metav1.ObjectMeta {
	m.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 1, 0, n, 0, 0, time.UTC))
	return m
}

// hashed adds the pod-template-hash label the Deployment controller puts on
// its ReplicaSets and their pods.
func hashed(m metav1.ObjectMeta, hash string) metav1.ObjectMeta {
	m.Labels = map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: hash}
	return m
}

func onNode(s corev1.PodSpec, node string) corev1.PodSpec {
	s.NodeName = node
	return s
}

func started(t *testing.T, opts Options) *Inventory {
	t.Helper()
	return startedOn(t, fake.NewClientset(objects()...), opts)
}

// startedOn is an inventory of client's cluster, synced, shut down when
// the test ends.
func startedOn(t *testing.T, client kubernetes.Interface, opts Options) *Inventory {
	t.Helper()
	inv := New(client, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	if err := inv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inv.Shutdown)
	return inv
}

func TestOwnerResolution(t *testing.T) {
	inv := started(t, Options{})
	hash := func(h string) map[string]string { return map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: h} }
	tests := []struct {
		pod    string
		labels map[string]string
		refs   []metav1.OwnerReference
		want   ID
	}{
		// By the label alone: the ReplicaSets of Deployments are not watched.
		{"web-7d9f-a", hash("7d9f"), owned(KindReplicaSet, "web-7d9f"), ID{"shop", KindDeployment, "web"}},
		{"gone-5c4b-x", hash("5c4b"), owned(KindReplicaSet, "gone-5c4b"), ID{"shop", KindDeployment, "gone"}},
		// A hash that does not end the ReplicaSet's name proves nothing.
		{"odd-x", hash("zz"), owned(KindReplicaSet, "orphan-rs"), ID{"shop", KindReplicaSet, "orphan-rs"}},
		{"orphan-x", nil, owned(KindReplicaSet, "orphan-rs"), ID{"shop", KindReplicaSet, "orphan-rs"}},
		{"gone-x", nil, owned(KindReplicaSet, "not-in-cache"), ID{"shop", KindReplicaSet, "not-in-cache"}},
		{"db-0", nil, owned(KindStatefulSet, "db"), ID{"shop", KindStatefulSet, "db"}},
		{"agent-x", nil, owned(KindDaemonSet, "agent"), ID{"shop", KindDaemonSet, "agent"}},
		{"nightly-29000-q", nil, owned(KindJob, "nightly-29000"), ID{"shop", KindCronJob, "nightly"}},
		{"once-z", nil, owned(KindJob, "once"), ID{"shop", KindJob, "once"}},
		{"debug", nil, nil, ID{"shop", KindPod, "debug"}},
		// The ReplicaSets of another controller resolve to it through the cache.
		{"canary-9f1d-a", nil, owned(KindReplicaSet, "canary-9f1d"), ID{"shop", "Rollout", "canary"}},
		{"clone-a", nil, owned("CloneSet", "clone"), ID{"shop", "CloneSet", "clone"}},
		{"etcd-n1", nil, owned("Node", "n1"), ID{"shop", KindPod, "etcd-n1"}},
		// A non-controller owner does not make a workload.
		{"adopted", nil, []metav1.OwnerReference{{Kind: KindReplicaSet, Name: "web-7d9f"}}, ID{"shop", KindPod, "adopted"}},
	}
	for _, tc := range tests {
		t.Run(tc.pod, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: tc.pod, Labels: tc.labels, OwnerReferences: tc.refs}}
			if got := inv.Owner(p); got != tc.want {
				t.Errorf("Owner = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSnapshot(t *testing.T) {
	inv := started(t, Options{NamespaceLabels: []string{"team"}})
	snap, err := inv.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	got := map[ID]Workload{}
	var ids []string
	for _, w := range snap.Workloads {
		got[w.ID] = w
		ids = append(ids, w.ID.String())
	}
	wantIDs := []string{
		"shop/CronJob/nightly", "shop/DaemonSet/agent", "shop/Deployment/web", "shop/Job/once",
		"shop/Pod/debug", "shop/Pod/etcd-n1", "shop/ReplicaSet/orphan-rs", "shop/Rollout/canary", "shop/StatefulSet/db",
	}
	wantIDs = append([]string{"shop/CloneSet/clone"}, wantIDs...)
	if !reflect.DeepEqual(ids, wantIDs) {
		t.Errorf("workloads = %v, want %v (sorted, Jobs of CronJobs and ReplicaSets of Deployments and Rollouts folded in)", ids, wantIDs)
	}
	// The Rollout is one workload: every revision's replicas, the template
	// of the revision most of them run, the oldest revision's age.
	if r := got[ID{"shop", "Rollout", "canary"}]; r.Replicas != 4 || r.Pods != 2 || r.Containers[2].CPURequest != 0.25 || !r.Created.Equal(time.Date(2026, 1, 1, 0, 2, 0, 0, time.UTC)) ||
		!reflect.DeepEqual(r.Annotations, map[string]string{"upid.io/mode": "enforce", "upid.io/cpu-percentile": "0.8"}) {
		t.Errorf("rollout: replicas %d pods %d app CPU request %v created %v annotations %v, want 4, 2, 0.25 (the stable revision's), minute 2 and the latest revision's (revision 2, though created before a rollback's)",
			r.Replicas, r.Pods, r.Containers[2].CPURequest, r.Created, r.Annotations)
	}
	if c := got[ID{"shop", "CloneSet", "clone"}]; c.Replicas != 2 || c.Pods != 2 || c.Containers[2].CPURequest != 0.5 || labelValue(c.labels, "rev") != "2" || !c.Created.Equal(time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)) || len(c.Probes) != 4 {
		t.Errorf("custom controller: replicas %d pods %d app CPU request %v labels %v created %v probes %d, want 2, 2, 0.5 and rev 2 (the newest pod's), minute 1, 4 probes",
			c.Replicas, c.Pods, c.Containers[2].CPURequest, c.labels, c.Created, len(c.Probes))
	}

	web := got[ID{"shop", KindDeployment, "web"}]
	// An HPA without metrics scales on CPU utilization, the API's default.
	// Of its two pods one has Succeeded: not a replica (without
	// kube-state-metrics the pods stand in for the replica count).
	if web.Replicas != 3 || web.Pods != 1 || web.HPA != "web-hpa" || !reflect.DeepEqual(web.HPAUtilization, []HPAResource{{Resource: "cpu", Target: 0.8, Index: -1}}) {
		t.Errorf("web: replicas %d pods %d hpa %q on %v, want 3, 1, web-hpa on CPU", web.Replicas, web.Pods, web.HPA, web.HPAUtilization)
	}
	// Only the running pod requests anything: the app's 250m and 256Mi (the
	// native sidecar and the init container request nothing here).
	if want := []NodeRequests{{Node: "n1", CPU: 0.25, Memory: 256 << 20}}; !reflect.DeepEqual(web.Requests, want) {
		t.Errorf("web requests = %+v, want %+v (the succeeded pod requests nothing)", web.Requests, want)
	}
	wantContainers := []Container{
		{Name: "migrate", Init: true},
		{Name: "proxy", Init: true, Sidecar: true},
		{Name: "app", CPURequest: 0.25, MemoryRequest: 256 << 20, MemoryLim: 512 << 20},
	}
	if !reflect.DeepEqual(web.Containers, wantContainers) {
		t.Errorf("containers = %+v, want %+v", web.Containers, wantContainers)
	}
	wantProbes := []Probe{
		{Container: "proxy", Type: "Readiness", Handler: "tcp", Port: "15021", Period: 15 * time.Second},
		{Container: "app", Type: "Liveness", Handler: "http", Path: "/healthz", Port: "http", Period: 10 * time.Second},
		{Container: "app", Type: "Readiness", Handler: "http", Path: "/", Port: "8080", Period: 10 * time.Second},
		{Container: "app", Type: "Startup", Handler: "exec", Period: 5 * time.Second},
	}
	if !reflect.DeepEqual(web.Probes, wantProbes) {
		t.Errorf("probes = %+v\nwant %+v", web.Probes, wantProbes)
	}
	if !reflect.DeepEqual(web.MetricsPaths, []string{"/stats"}) || !reflect.DeepEqual(web.Annotations, map[string]string{"upid.io/mode": "off", "upid.io/cpu-percentile": "0.95"}) {
		// The Deployment's own annotations win over its template's.
		t.Errorf("metrics paths %v annotations %v", web.MetricsPaths, web.Annotations)
	}
	if w := got[ID{"shop", KindDaemonSet, "agent"}]; w.Replicas != 4 || w.Pods != 1 {
		t.Errorf("daemonset replicas %d pods %d, want 4 and 1", w.Replicas, w.Pods)
	}
	if w := got[ID{"shop", KindCronJob, "nightly"}]; w.Pods != 1 {
		t.Errorf("cronjob pods %d, want 1 (its Job's pod)", w.Pods)
	}
	if w := got[ID{"shop", KindPod, "debug"}]; w.Pods != 1 || len(w.Probes) != 4 {
		t.Errorf("bare pod: pods %d probes %d, want 1 and 4 (from its own spec)", w.Pods, len(w.Probes))
	}
	sel := snap.Selects[[2]string{"shop", "web-svc"}]
	if len(sel) != 8 || sel[3] != (ID{"shop", KindDeployment, "web"}) || sel[0] != (ID{"shop", "CloneSet", "clone"}) {
		t.Errorf("web-svc selects %v, want the 8 workloads whose template (or newest pod, for the CloneSet) has app=web", sel)
	}
	if len(snap.Selects) != 1 {
		t.Errorf("selects = %v, want only web-svc (no match for other, no selector for external)", snap.Selects)
	}
	if snap.Pods != 12 {
		t.Errorf("pods = %d, want 12", snap.Pods)
	}
	if len(snap.Namespaces) != 1 || !reflect.DeepEqual(snap.Namespaces[0].Labels, map[string]string{"team": "payments"}) {
		t.Errorf("namespaces = %+v, want only the allow-listed team label", snap.Namespaces)
	} else if ns := snap.Namespaces[0]; !reflect.DeepEqual(ns.UPIDLabels, map[string]string{"upid.io/limit-policy": "keep"}) ||
		!reflect.DeepEqual(ns.UPIDAnnotations, map[string]string{"upid.io/min-memory": "64Mi"}) {
		t.Errorf("namespace upid.io/ labels %v annotations %v", ns.UPIDLabels, ns.UPIDAnnotations)
	}
	if db := got[ID{"shop", KindStatefulSet, "db"}]; !reflect.DeepEqual(db.Annotations, map[string]string{"upid.io/mode": "enforce"}) {
		t.Errorf("statefulset annotations %v, want its template's", db.Annotations)
	}
	if len(snap.Nodes) != 1 || len(snap.Nodes[0].Status.Images) != 0 || snap.Nodes[0].Labels["node.kubernetes.io/instance-type"] != "m5.large" {
		t.Errorf("node not stripped to labels and capacity: %+v", snap.Nodes)
	}
}

func TestTransformKeepsWhatTheAnalysisReads(t *testing.T) {
	tr := transform(Options{}, &operatorSpecs{})
	tmpl := podTemplate()
	pod := &corev1.Pod{ObjectMeta: meta("shop", "web-7d9f-a", owned(KindReplicaSet, "web-7d9f")...), Spec: tmpl.Spec,
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady}}}}
	pod.Labels = map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: "7d9f"}
	pod.Spec.NodeName = "n1"
	out, err := tr(pod)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := out.(*leanPod)
	if !ok {
		t.Fatalf("pod transformed to %T, want *leanPod", out)
	}
	if p.name != "web-7d9f-a" || p.namespace.String() != "shop" || p.node.String() != "n1" || !p.req.reserving || p.owner != (owner{intern(KindDeployment), "web"}) {
		t.Errorf("controlled pod lost what the analysis reads: %+v", p)
	}
	if p.spec != nil {
		t.Errorf("controlled pod keeps its spec; its controller's template is enough: %+v", p.spec)
	}
	// The owner's name is a prefix of the pod's and shares its memory.
	if unsafe.StringData(p.owner.name) != unsafe.StringData(p.name) {
		t.Error("owner name is a copy, not a prefix of the pod name")
	}
	if again, _ := tr(p); again != p {
		t.Error("transform is not idempotent on lean objects")
	}

	// Pods of an operator's controller keep no spec: one, the newest
	// pod's, stands for all of them.
	ops := &operatorSpecs{}
	trOps := transform(Options{}, ops)
	for i, name := range []string{"clone-b", "clone-a", "clone-c"} {
		cp := &corev1.Pod{ObjectMeta: created(meta("shop", name, owned("CloneSet", "clone")...), []int{2, 1, 2}[i]), Spec: tmpl.Spec}
		cp.Labels = map[string]string{"pod": name}
		out, _ := trOps(cp)
		if lp := out.(*leanPod); lp.spec != nil || lp.owner != (owner{intern("CloneSet"), "clone"}) {
			t.Errorf("pod %s of a CloneSet keeps its own spec (%v) or lost its owner (%+v)", name, lp.spec != nil, lp.owner)
		}
	}
	if len(ops.m) != 1 || labelValue(ops.m[ID{"shop", "CloneSet", "clone"}].spec.labels, "pod") != "clone-c" {
		t.Errorf("operator specs = %+v, want one, of the newest pod (clone-c: clone-b is as new, its name sorts first)", ops.m)
	}

	dep := &appsv1.Deployment{ObjectMeta: meta("shop", "web"), Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(2)), Template: tmpl}}
	out, _ = tr(dep)
	d := out.(*leanWorkload)
	if d.replicas != 2 || d.spec == nil || labelValue(d.spec.labels, "app") != "web" || len(d.spec.containers) != 3 || len(d.spec.probes) != 4 {
		t.Errorf("deployment lost its template: %+v %+v", d, d.spec)
	}
	if _, ok := d.spec.annotations["checksum/config"]; ok || d.spec.annotations["upid.io/mode"] != "enforce" {
		t.Errorf("annotations = %v, want only upid.io/ ones", d.spec.annotations)
	}

	rs := &appsv1.ReplicaSet{ObjectMeta: meta("shop", "web-7d9f", owned(KindDeployment, "web")...), Spec: appsv1.ReplicaSetSpec{Template: tmpl}}
	out, _ = tr(rs)
	if r := out.(*leanWorkload); r.spec != nil || r.owner != (owner{intern(KindDeployment), "web"}) {
		t.Errorf("ReplicaSet of a Deployment = %+v, want its owner and no template", r)
	}

	// Objects that share strings hold one copy of each, also when they
	// come after a collection: the stored objects keep the copy alive.
	goruntime.GC()
	other := pod.DeepCopy()
	other.Name, other.Namespace, other.Spec.NodeName = "web-7d9f-b", strings.Clone("shop"), strings.Clone("n1")
	out, _ = tr(other)
	q := out.(*leanPod)
	if unsafe.StringData(q.namespace.String()) != unsafe.StringData(p.namespace.String()) || unsafe.StringData(q.node.String()) != unsafe.StringData(p.node.String()) {
		t.Error("namespace and node names are not interned")
	}
	tmpl2 := podTemplate()
	tmpl2.Labels, tmpl2.Spec.Containers[0].Name = map[string]string{strings.Clone("app"): "api"}, strings.Clone("app")
	out, _ = tr(&appsv1.Deployment{ObjectMeta: meta(strings.Clone("shop"), "api"), Spec: appsv1.DeploymentSpec{Template: tmpl2}})
	e := out.(*leanWorkload)
	for _, c := range []struct{ what, got, want string }{
		{"label key", e.spec.labels[0].key.String(), d.spec.labels[0].key.String()},
		{"container name", e.spec.containers[2].Name, d.spec.containers[2].Name},
		{"probe path", e.spec.probes[1].Path, d.spec.probes[1].Path},
	} {
		if unsafe.StringData(c.got) != unsafe.StringData(c.want) {
			t.Errorf("%s %q of a template is not interned", c.what, c.got)
		}
	}
}

func TestSharding(t *testing.T) {
	full := started(t, Options{})
	all, err := full.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[ID]int{}
	shardOfNS := map[string]int{}
	for shard := 0; shard < 3; shard++ {
		snap, err := started(t, Options{Shard: shard, TotalShards: 3}).Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range snap.Workloads {
			seen[w.ID]++
			if ShardOf(w.Namespace, 3) != shard {
				t.Errorf("%v in shard %d, belongs to %d", w.ID, shard, ShardOf(w.Namespace, 3))
			}
			// A namespace is read whole by whichever shard has it.
			if s, ok := shardOfNS[w.Namespace]; ok && s != shard {
				t.Errorf("namespace %s split between shards %d and %d", w.Namespace, s, shard)
			}
			shardOfNS[w.Namespace] = shard
		}
	}
	for _, w := range all.Workloads {
		if seen[w.ID] != 1 {
			t.Errorf("%v appears in %d shards, want exactly 1", w.ID, seen[w.ID])
		}
	}
}

func TestRequestsOf(t *testing.T) {
	req := func(cpu, mem string, extra ...string) corev1.ResourceRequirements {
		l := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
		for i := 0; i+1 < len(extra); i += 2 {
			l[corev1.ResourceName(extra[i])] = resource.MustParse(extra[i+1])
		}
		return corev1.ResourceRequirements{Requests: l}
	}
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		want podRequests
	}{
		{"empty", corev1.PodSpec{}, podRequests{}},
		{"containers add up", corev1.PodSpec{Containers: []corev1.Container{{Resources: req("250m", "256Mi")}, {Resources: req("1", "1Gi")}}},
			podRequests{cpuMilli: 1250, memory: 1280 << 20}},
		{"native sidecars add up; a smaller init container does not", corev1.PodSpec{
			InitContainers: []corev1.Container{{Resources: req("200m", "128Mi")}, {Resources: req("100m", "64Mi"), RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways)}},
			Containers:     []corev1.Container{{Resources: req("500m", "512Mi")}}},
			podRequests{cpuMilli: 600, memory: 576 << 20}},
		// The scheduler reserves the larger init container for the pod's
		// whole life: that is what it costs.
		{"a larger init container is the floor", corev1.PodSpec{
			InitContainers: []corev1.Container{{Resources: req("4", "8Gi")}, {Resources: req("100m", "64Mi"), RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways)}},
			Containers:     []corev1.Container{{Resources: req("500m", "512Mi")}}},
			podRequests{cpuMilli: 4000, memory: 8 << 30}},
		{"the RuntimeClass overhead adds", corev1.PodSpec{
			Containers: []corev1.Container{{Resources: req("1", "1Gi")}},
			Overhead:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("120Mi")}},
			podRequests{cpuMilli: 1250, memory: 1144 << 20}},
		{"GPUs of any vendor", corev1.PodSpec{Containers: []corev1.Container{{Resources: req("1", "1Gi", "nvidia.com/gpu", "2")}, {Resources: req("1", "1Gi", "amd.com/gpu", "1")}}},
			podRequests{cpuMilli: 2000, memory: 2 << 30, gpus: 3}},
		{"a pod-level request replaces the sum of its resource", corev1.PodSpec{
			Containers: []corev1.Container{{Resources: req("250m", "256Mi")}, {Resources: req("250m", "256Mi")}},
			Resources:  &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}},
			podRequests{cpuMilli: 2000, memory: 512 << 20}},
		// Found in review: cpu 3M wrapped to -1.29M cores and 40000 GPUs
		// to -25536, a negative cost any namespace user could add.
		{"a request no node holds saturates", corev1.PodSpec{Containers: []corev1.Container{
			{Resources: req("3M", "1e30", "nvidia.com/gpu", "40000")}, {Resources: req("1", "1Gi", "nvidia.com/gpu", "1")}}},
			podRequests{cpuMilli: math.MaxInt32, memory: math.MaxInt64, gpus: math.MaxInt16}},
		{"sums saturate too", corev1.PodSpec{Containers: []corev1.Container{
			{Resources: req("2M", "5Ei", "nvidia.com/gpu", "30000")}, {Resources: req("2M", "5Ei", "nvidia.com/gpu", "30000")}}},
			podRequests{cpuMilli: math.MaxInt32, memory: math.MaxInt64, gpus: math.MaxInt16}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: tc.spec}
			got := requestsOf(pod)
			if got != tc.want {
				t.Errorf("requestsOf = %+v, want %+v", got, tc.want)
			}
			if got.cpuMilli == math.MaxInt32 {
				return // beyond what resourcehelper's int64 sums hold exactly
			}
			// The plain pods' sum is resourcehelper's figure too.
			l := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
			if int64(got.cpuMilli) != l.Cpu().MilliValue() || got.memory != l.Memory().Value() {
				t.Errorf("requestsOf = %+v, resourcehelper.PodRequests %v", got, l)
			}
		})
	}
}

func TestPodResourcesOfTemplate(t *testing.T) {
	spec := corev1.PodSpec{
		Containers: []corev1.Container{{Name: "app"}},
		Resources: &corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
		},
	}
	got := specOf(nil, nil, &spec).pod
	want := PodResources{CPURequest: 0.5, CPULimit: 1, MemoryLimit: 1 << 30}
	if got != want {
		t.Errorf("pod resources = %+v, want %+v", got, want)
	}
	for _, c := range []struct {
		res  string
		p    PodResources
		want bool
	}{{"cpu", want, true}, {"memory", want, true}, {"memory", PodResources{CPURequest: 1}, false}, {"cpu", PodResources{}, false}, {"gpu", want, false}} {
		if got := c.p.Sets(c.res); got != c.want {
			t.Errorf("%+v.Sets(%s) = %v, want %v", c.p, c.res, got, c.want)
		}
	}
}

// TestLeanPodSize pins the size class a pod's cache entry lands in: a field
// more and every pod costs 16 bytes more (docs/benchmarks.md).
func TestLeanPodSize(t *testing.T) {
	if got := unsafe.Sizeof(leanPod{}); got > 96 {
		t.Errorf("leanPod is %d bytes, over the 96-byte size class", got)
	}
}

func TestHPAUtilization(t *testing.T) {
	util := func(p int32) autoscalingv2.MetricTarget {
		return autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &p}
	}
	avg := autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewMilliQuantity(100, resource.DecimalSI)}
	metrics := []autoscalingv2.MetricSpec{
		{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceMemory, Target: util(80)}},
		// An absolute target does not move with the requests.
		{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU, Target: avg}},
		{Type: autoscalingv2.ContainerResourceMetricSourceType, ContainerResource: &autoscalingv2.ContainerResourceMetricSource{Name: corev1.ResourceCPU, Container: "app", Target: util(70)}},
		{Type: autoscalingv2.PodsMetricSourceType},
		{Type: autoscalingv2.ResourceMetricSourceType}, // malformed: no source
	}
	got := hpaUtilization(metrics, nil)
	want := []HPAResource{{Resource: "memory", Target: 0.8, Index: 0}, {Resource: "cpu", Container: "app", Target: 0.7, Index: 2}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("hpaUtilization = %v, want %v", got, want)
	}
	for _, c := range []struct {
		resource, container string
		want                bool
	}{{"cpu", "app", true}, {"cpu", "sidecar", false}, {"memory", "sidecar", true}, {"gpu", "app", false}} {
		if Scales(got, c.resource, c.container) != c.want {
			t.Errorf("Scales(%s, %s) = %v", c.resource, c.container, !c.want)
		}
	}
}

// BenchmarkRequestsOf runs on every pod event of the informer: a plain pod
// (containers and a native sidecar) is summed in place, a pod with an init
// container goes through resourcehelper.PodRequests. Compare the two
// sub-benchmarks of one run.
func BenchmarkRequestsOf(b *testing.B) {
	req := corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")}}
	sidecar := corev1.Container{Name: "proxy", Resources: req, RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways)}
	containers := []corev1.Container{{Name: "app", Resources: req}, {Name: "log", Resources: req}}
	for _, c := range []struct {
		name string
		pod  *corev1.Pod
	}{
		{"plain", &corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{sidecar}, Containers: containers}}},
		{"init container", &corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "migrate", Resources: req}, sidecar}, Containers: containers}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = requestsOf(c.pod)
			}
		})
	}
}

// BenchmarkOperatorPodCache measures what a pod of an operator's
// controller (a CloneSet, whose template the inventory does not watch)
// costs in the cache, against a StatefulSet's pod, whose spec its
// controller holds: the operator's pods share one spec, so the ratio
// stays near 1.
func BenchmarkOperatorPodCache(b *testing.B) {
	const n = 20000
	tmpl := podTemplate()
	heap := func(kind string) float64 {
		tr := transform(Options{}, &operatorSpecs{})
		goruntime.GC()
		var before, after goruntime.MemStats
		goruntime.ReadMemStats(&before)
		keep := make([]any, n)
		for i := range keep {
			m := meta("shop", fmt.Sprintf("clone-%06d", i), owned(kind, "clone")...)
			m.Labels = map[string]string{"app": "web", "controller-revision-hash": "clone-7d9f8c", "apps.kruise.io/pod-name": m.Name}
			keep[i], _ = tr(&corev1.Pod{ObjectMeta: m, Spec: tmpl.Spec})
		}
		goruntime.GC()
		goruntime.ReadMemStats(&after)
		goruntime.KeepAlive(keep)
		return float64(after.HeapAlloc-before.HeapAlloc) / n
	}
	var sts, op float64
	for b.Loop() {
		sts, op = heap(KindStatefulSet), heap("CloneSet")
	}
	b.ReportMetric(sts, "statefulset-B/pod")
	b.ReportMetric(op, "operator-B/pod")
	b.ReportMetric(op/sts, "ratio")
}

// BenchmarkChurn measures what the caches retain per pod once every pod
// has been replaced, as they are over the weeks an exporter runs:
// sync-B/pod after the first n pods, churn-B/pod after each was replaced
// by a pod of the same Deployment on the same node under a new name, with
// a collection every 100 pods (a quiet cluster sees one between most pod
// events). The Deployments are transformed again meanwhile, as a change of
// their status makes the informer do. The strings come from fmt, new for
// every object, as they come from the decoder.
func BenchmarkChurn(b *testing.B) {
	const (
		n             = 20000
		perDeployment = 10
		namespaces    = 50
		nodes         = 500
		gcEvery       = 100
	)
	tmpl := podTemplate()
	names := func(i int) (ns, deploy, hash string) {
		d := i / perDeployment
		return fmt.Sprintf("team-%02d", d%namespaces), fmt.Sprintf("svc-%04d", d), "7d9f8c6b5"
	}
	pod := func(i, generation int) *corev1.Pod {
		ns, deploy, hash := names(i)
		m := meta(ns, fmt.Sprintf("%s-%s-%05d-%d", deploy, hash, i, generation), owned(KindReplicaSet, deploy+"-"+hash)...)
		m.Labels = map[string]string{"app": deploy, "team": ns, appsv1.DefaultDeploymentUniqueLabelKey: hash}
		p := &corev1.Pod{ObjectMeta: m, Spec: tmpl.Spec, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		p.Spec.NodeName = fmt.Sprintf("ip-10-0-%d-%d.eu-west-1.compute.internal", i%nodes/256, i%nodes%256)
		return p
	}
	deployment := func(d int) *appsv1.Deployment {
		ns, deploy, _ := names(d * perDeployment)
		t := podTemplate()
		t.Labels = map[string]string{"app": deploy, "team": ns, "tier": "backend"}
		return &appsv1.Deployment{ObjectMeta: meta(ns, deploy), Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(perDeployment)), Template: t}}
	}
	heap := func() float64 {
		goruntime.GC()
		var m goruntime.MemStats
		goruntime.ReadMemStats(&m)
		return float64(m.HeapAlloc)
	}
	var synced, churned float64
	for b.Loop() {
		tr := transform(Options{}, &operatorSpecs{})
		before := heap()
		pods, deployments := make([]any, n), make([]any, n/perDeployment)
		for d := range deployments {
			deployments[d], _ = tr(deployment(d))
		}
		for i := range pods {
			pods[i], _ = tr(pod(i, 0))
		}
		synced = (heap() - before) / n
		for i := range pods {
			if i%gcEvery == 0 {
				goruntime.GC()
			}
			pods[i], _ = tr(pod(i, 1))
			if i%perDeployment == 0 {
				deployments[i/perDeployment], _ = tr(deployment(i / perDeployment))
			}
		}
		churned = (heap() - before) / n
		goruntime.KeepAlive(pods)
		goruntime.KeepAlive(deployments)
	}
	b.ReportMetric(synced, "sync-B/pod")
	b.ReportMetric(churned, "churn-B/pod")
}
