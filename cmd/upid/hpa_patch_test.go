package main

import (
	"context"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/internal/testenv"
)

// TestHPAJSONPatchOnAPIServer: the HPA patches upid recommend prints apply
// on a real kube-apiserver, and one whose target moved since is refused
// rather than overwriting it.
func TestHPAJSONPatchOnAPIServer(t *testing.T) {
	kube := testenv.StartKube(t, testenv.KubeOptions{})
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
