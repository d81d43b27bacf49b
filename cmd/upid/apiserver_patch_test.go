package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/internal/testenv"
)

// TestPatchesOnAPIServer applies what upid recommend prints to one real
// kube-apiserver: the HPA patches and the pod-level requests.
func TestPatchesOnAPIServer(t *testing.T) {
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	t.Run("HPA JSON patch", func(t *testing.T) { hpaJSONPatchOnAPIServer(t, kube) })
	t.Run("pod-level requests", func(t *testing.T) { podLevelPatchOnAPIServer(t, kube) })
	t.Run("native sidecar", func(t *testing.T) { sidecarPatchOnAPIServer(t, kube) })
}

// sidecarPatchOnAPIServer: a native sidecar's requests go under
// initContainers, where it lives; under containers the patch would add a
// second container of that name without an image.
func sidecarPatchOnAPIServer(t *testing.T, kube *testenv.Kube) {
	ctx := context.Background()
	deploys := kube.Clientset.AppsV1().Deployments("default")
	always := corev1.ContainerRestartPolicyAlways
	labels := map[string]string{"app": "meshed"}
	if _, err := deploys.Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "meshed"}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "proxy", Image: "proxy:1", RestartPolicy: &always,
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}}},
			Containers: []corev1.Container{{Name: "app", Image: "app:1",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}}},
		}},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cores := func(v float64) *float64 { return &v }
	recs := []recommendation{
		{Namespace: "default", Kind: "Deployment", Name: "meshed", Container: "app", Recommendation: exporter.Recommendation{OK: true, Apply: true, CPURequestCores: cores(0.5)}},
		{Namespace: "default", Kind: "Deployment", Name: "meshed", Container: "proxy", Sidecar: true, Recommendation: exporter.Recommendation{OK: true, Apply: true, CPURequestCores: cores(0.1)}},
	}
	var b bytes.Buffer
	if err := writePatches(&b, workloadChanges(recs, nil, nil)); err != nil {
		t.Fatal(err)
	}
	patch, err := yaml.YAMLToJSON(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deploys.Patch(ctx, "meshed", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("apply %s: %v", patch, err)
	}
	d, err := deploys.Get(ctx, "meshed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 1 || spec.Containers[0].Resources.Requests.Cpu().String() != "500m" || spec.InitContainers[0].Resources.Requests.Cpu().String() != "100m" {
		t.Errorf("after the patch: containers %+v, init containers %+v; want app at 500m and the proxy sidecar at 100m", spec.Containers, spec.InitContainers)
	}

	// -o commands: a throttled container raised past the CPU limit it
	// loses (kubectl set resources could not remove it, and the API server
	// refused the request above it), with its sidecar, in one patch.
	recs[0].CPURequestCores = cores(2.5)
	command := commandPatch(t, workloadChanges(recs, nil, nil), "meshed", "")
	limited := d.DeepCopy()
	limited.Spec.Template.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}
	if _, err := deploys.Update(ctx, limited, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := deploys.Patch(ctx, "meshed", types.StrategicMergePatchType, command, metav1.PatchOptions{}); err != nil {
		t.Fatalf("apply %s: %v", command, err)
	}
	if d, err = deploys.Get(ctx, "meshed", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if app := d.Spec.Template.Spec.Containers[0].Resources; app.Requests.Cpu().String() != "2500m" || !app.Limits.Cpu().IsZero() {
		t.Errorf("after the command: %+v, want 2500m and no CPU limit", app)
	}

	// A sidecar that only an HPA pair changes (no recommendation of its
	// own worth applying) is still patched under initContainers.
	pairs, _ := pairsAndPods([]exporter.WorkloadResult{{Namespace: "default", Kind: "Deployment", Name: "meshed",
		Containers: []exporter.ContainerResult{{Name: "app"}, {Name: "proxy", Sidecar: true}},
		HPA:        []exporter.HPAAdvice{{HPA: "meshed", Resource: "cpu", MetricIndex: 0, CurrentTargetUtilization: 0.5, TargetUtilization: 0.8, Requests: map[string]float64{"proxy": 0.3}, Apply: true}},
	}})
	b.Reset()
	if err := writePatches(&b, workloadChanges(nil, pairs, nil)); err != nil {
		t.Fatal(err)
	}
	if patch, err = yaml.YAMLToJSON(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	if _, err := deploys.Patch(ctx, "meshed", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("apply %s: %v", patch, err)
	}
	if d, err = deploys.Get(ctx, "meshed", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if spec := d.Spec.Template.Spec; len(spec.Containers) != 1 || len(spec.InitContainers) != 1 || spec.InitContainers[0].Resources.Requests.Cpu().String() != "300m" {
		t.Errorf("after the HPA pair's patch: containers %+v, init containers %+v; want the proxy sidecar at 300m", spec.Containers, spec.InitContainers)
	}
}

// hpaJSONPatchOnAPIServer: the HPA patches apply, and one whose target
// moved since is refused rather than overwriting it.
func hpaJSONPatchOnAPIServer(t *testing.T, kube *testenv.Kube) {
	ctx := context.Background()
	hpas := kube.Clientset.AutoscalingV2().HorizontalPodAutoscalers("default")
	seventy := int32(70)
	create := func(name string, metrics []autoscalingv2.MetricSpec) {
		t.Helper()
		_, err := hpas.Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name}, MaxReplicas: 5, Metrics: metrics,
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	create("web", []autoscalingv2.MetricSpec{
		{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "rps"},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewQuantity(10, resource.DecimalSI)}}},
		{Type: autoscalingv2.ContainerResourceMetricSourceType, ContainerResource: &autoscalingv2.ContainerResourceMetricSource{Name: "cpu", Container: "app",
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &seventy}}},
	})
	create("plain", nil)

	apply := func(name string, a exporter.HPAAdvice) error {
		_, err := hpas.Patch(ctx, name, types.JSONPatchType, []byte(hpaJSONPatch(hpaPair{HPAAdvice: a})), metav1.PatchOptions{})
		return err
	}
	move := exporter.HPAAdvice{MetricIndex: 1, Container: "app", CurrentTargetUtilization: 0.7, TargetUtilization: 0.93}
	if err := apply("web", move); err != nil {
		t.Fatal(err)
	}
	got, err := hpas.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u := got.Spec.Metrics[1].ContainerResource.Target.AverageUtilization; u == nil || *u != 93 || got.Spec.Metrics[0].Pods == nil {
		t.Errorf("web's metrics after the patch: %+v, want the rps metric kept and app's CPU at 93 %%", got.Spec.Metrics)
	}
	// The same patch again tests for 70 %, which is gone.
	if err := apply("web", move); err == nil {
		t.Error("a patch whose target moved since was applied")
	}
	if err := apply("plain", exporter.HPAAdvice{MetricIndex: -1, CurrentTargetUtilization: 0.8, TargetUtilization: 0.9}); err != nil {
		t.Fatal(err)
	}
	if got, err := hpas.Get(ctx, "plain", metav1.GetOptions{}); err != nil || len(got.Spec.Metrics) != 1 || got.Spec.Metrics[0].Resource == nil ||
		got.Spec.Metrics[0].Resource.Name != "cpu" || *got.Spec.Metrics[0].Resource.Target.AverageUtilization != 90 {
		t.Errorf("plain after the patch: %+v, %v; want CPU at 90 %%", got, err)
	}
}

// podLevelPatchOnAPIServer: the pod-level requests, as -o patch and as
// -o commands, apply and set the template's spec.resources, keeping its
// limit and containers.
func podLevelPatchOnAPIServer(t *testing.T, kube *testenv.Kube) {
	ctx := context.Background()
	deploys := kube.Clientset.AppsV1().Deployments("default")
	create := func(name string, limit ...string) {
		t.Helper()
		memLimit := resource.MustParse("4Gi")
		if len(limit) > 0 {
			memLimit = resource.MustParse(limit[0])
		}
		labels := map[string]string{"app": name}
		_, err := deploys.Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "app", Image: "app:1"}, {Name: "log", Image: "log:1"}},
				Resources: &corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: memLimit},
				},
			}},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	changes := func(name string) []*workloadChange {
		return workloadChanges(nil, nil, []podChange{
			{"default", "Deployment", name, exporter.PodAdvice{Resource: "cpu", CurrentRequest: 2, Request: 0.323, Apply: true, MonthlySavings: 30}},
			{"default", "Deployment", name, exporter.PodAdvice{Resource: "memory", CurrentRequest: 4 << 30, Limit: 4 << 30, Request: 352 << 20, Apply: true, MonthlySavings: 10}},
		})
	}
	check := func(name string) {
		t.Helper()
		d, err := deploys.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		spec := d.Spec.Template.Spec
		if r := spec.Resources; r == nil || r.Requests.Cpu().String() != "323m" || r.Requests.Memory().String() != "352Mi" || r.Limits.Memory().String() != "4Gi" {
			t.Errorf("%s's pod resources after the patch: %+v, want requests 323m and 352Mi under the 4Gi limit", name, r)
		}
		if len(spec.Containers) != 2 || len(spec.Containers[0].Resources.Requests) != 0 {
			t.Errorf("%s's containers after the patch: %+v", name, spec.Containers)
		}
	}

	create("patched")
	var b bytes.Buffer
	if err := writePatches(&b, changes("patched")); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "# upid: default/Deployment/patched saves $40.00/month\n") {
		t.Errorf("patch header: %q", b.String())
	}
	patch, err := yaml.YAMLToJSON(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deploys.Patch(ctx, "patched", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("apply %s: %v", patch, err)
	}
	check("patched")

	create("commanded")
	command := commandPatch(t, changes("commanded"), "commanded", " $40.00/month")
	if _, err := deploys.Patch(ctx, "commanded", types.StrategicMergePatchType, command, metav1.PatchOptions{}); err != nil {
		t.Fatalf("apply %s: %v", command, err)
	}
	check("commanded")

	// A request the exporter held at a decimal limit (1G, 953.67Mi):
	// rounded up to a whole Mi it would pass the limit, and the API server
	// would refuse both the patch and the command.
	create("decimal", "1G")
	held := workloadChanges(nil, nil, []podChange{
		{"default", "Deployment", "decimal", exporter.PodAdvice{Resource: "memory", CurrentRequest: 1e9, Limit: 1e9, Request: 1e9 - 100, Apply: true, MonthlySavings: 1}},
	})
	b.Reset()
	if err := writePatches(&b, held); err != nil {
		t.Fatal(err)
	}
	if patch, err = yaml.YAMLToJSON(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	if _, err := deploys.Patch(ctx, "decimal", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Errorf("a request at a decimal limit: %v\n%s", err, b.String())
	}
	if d, err := deploys.Get(ctx, "decimal", metav1.GetOptions{}); err != nil || d.Spec.Template.Spec.Resources.Requests.Memory().Value() != 1e9-100 {
		t.Errorf("decimal: %v %v", d.Spec.Template.Spec.Resources, err)
	}
}

// commandPatch is the patch of the one kubectl patch line -o commands
// prints for Deployment name in default, whose comment says saves<saves>.
func commandPatch(t *testing.T, changes []*workloadChange, name, saves string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := writeCommands(&b, changes); err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(b.String())
	prefix := "kubectl patch deployment/" + name + " -n default --type=strategic -p '"
	end := strings.LastIndex(line, "'  # saves"+saves)
	if !strings.HasPrefix(line, prefix) || end < 0 || strings.Count(b.String(), "\n") != 1 {
		t.Fatalf("commands:\n%s", b.String())
	}
	return []byte(line[len(prefix):end])
}
