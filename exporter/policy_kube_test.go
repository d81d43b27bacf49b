package exporter_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/testenv"
)

// TestPolicyFromAnnotations runs the exporter against a real kube-apiserver
// and Prometheus, then annotates a Deployment and labels and annotates its
// namespace, and reads the changed recommendations back from the metrics.
// Usage is steady (busy-api 0.3 cores and 300 MiB, idle-api 2m and 50 MiB),
// so each recommendation follows from the policy by hand:
//
//	CPU    = q(0.9) × (1 + cpu_margin + e)      rounded up to 1m, at least min_cpu
//	memory = peak × (1 + memory_margin + e)      rounded up to 1 MiB
//
// with e = 0.1 × (1 − confidence), the confidence read from the metrics too.
func TestPolicyFromAnnotations(t *testing.T) {
	cfg := exporterConfig()
	// The hand formulas below assume the recommender keeps what the idle
	// analysis fetches.
	cfg.Exporter.Recommend.Window = cfg.Exporter.Window
	half, nine := 0.5, 0.9
	cfg.Exporter.Recommend.Overrides = []config.RecommendOverride{
		{Namespace: "shop", Workload: "busy-api", CPUMargin: &half},
		{Namespace: "shop", MemoryMargin: &nine},
	}
	var logs bytes.Buffer
	kube, svc, ctx, reg := startShop(t, cfg, &logs)

	const mib = 1 << 20
	check := func(stage, workload string, cpuMargin, memMargin, peak, minCPU float64) {
		t.Helper()
		conf := metric(t, reg, "upid_container_recommendation_confidence", workload)
		if conf <= 0 || conf > 1 {
			t.Fatalf("%s: %s confidence %v", stage, workload, conf)
		}
		e := 0.1 * (1 - conf)
		q := metric(t, reg, "upid_container_cpu_usage_cores", workload, "p95")
		wantCPU := math.Max(math.Ceil(q*(1+cpuMargin+e)*1000-1e-6)/1000, minCPU)
		if got := metric(t, reg, "upid_container_recommended_cpu_request_cores", workload); math.Abs(got-wantCPU) > 0.0015 {
			t.Errorf("%s: %s CPU request %v, want %v (q %v, margin %v, e %v)", stage, workload, got, wantCPU, q, cpuMargin, e)
		}
		wantMem := math.Ceil(peak*(1+memMargin+e)/mib-1e-9) * mib
		if got := metric(t, reg, "upid_container_recommended_memory_request_bytes", workload); got != wantMem {
			t.Errorf("%s: %s memory request %v MiB, want %v MiB (margin %v, e %v)", stage, workload, got/mib, wantMem/mib, memMargin, e)
		}
		// The lower bound is the peak with the margin, without e.
		wantLower := math.Ceil(peak*(1+memMargin)/mib-1e-9) * mib
		if got := metric(t, reg, "upid_container_recommended_memory_request_lower_bound_bytes", workload); got != wantLower {
			t.Errorf("%s: %s memory lower bound %v MiB, want %v MiB", stage, workload, got/mib, wantLower/mib)
		}
	}

	// Before: the configured overrides alone.
	if err := svc.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	check("overrides", "busy-api", 0.5, 0.9, 300*mib, 0.01)
	check("overrides", "idle-api", 0, 0.9, 50*mib, 0.01)

	// After: a namespace label and annotation, and the Deployments'
	// annotations, one of them bad and one clamped.
	c := kube.Clientset
	ns, err := c.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels["upid.io/memory-margin"] = "0.5"
	ns.Annotations = map[string]string{"upid.io/min-cpu": "400m"}
	if _, err := c.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	annotate(ctx, t, c, "busy-api", map[string]string{"upid.io/cpu-margin": "1", "upid.io/memory-margin": "0.2", "upid.io/recommend-window": "30d"})
	annotate(ctx, t, c, "idle-api", map[string]string{"upid.io/cpu-percentile": "95"})

	var busy, idle exporter.WorkloadResult
	cycleUntil(ctx, t, svc, "the informers to show the annotations", func(ws []exporter.WorkloadResult) bool {
		for _, w := range ws {
			switch w.Name {
			case "busy-api":
				busy = w
			case "idle-api":
				idle = w
			}
		}
		// Each informer sees its own update in its own time.
		return busy.Policy != nil && busy.Policy.Sources["window"] != "" && idle.Policy != nil && idle.Policy.Sources["min_cpu"] != "" &&
			testutil.ToFloat64(counterOf(t, reg, "workload_annotation")) > 0
	})
	// busy-api: its own annotations win over the namespace label and the
	// overrides; the namespace annotation's 400m is below its CPU anyway.
	check("annotated", "busy-api", 1, 0.2, 300*mib, 0.4)
	// idle-api: the namespace label's memory margin beats the namespace
	// override; the namespace annotation's minimum lifts its 2m CPU to 400m;
	// its bad cpu-percentile is ignored.
	check("annotated", "idle-api", 0, 0.5, 50*mib, 0.4)
	if got := metric(t, reg, "upid_container_recommended_cpu_request_cores", "idle-api"); got != 0.4 {
		t.Errorf("idle-api CPU %v, want the namespace's 400m minimum", got)
	}

	wantBusy := map[string]string{
		"cpu_margin":    "workload_annotation upid.io/cpu-margin",
		"memory_margin": "workload_annotation upid.io/memory-margin",
		"window":        "workload_annotation upid.io/recommend-window",
		"min_cpu":       "namespace_annotation upid.io/min-cpu",
	}
	for k, v := range wantBusy {
		if busy.Policy.Sources[k] != v {
			t.Errorf("busy-api source of %s = %q, want %q (all: %v)", k, busy.Policy.Sources[k], v, busy.Policy.Sources)
		}
	}
	if busy.Policy.Window != "1d" || busy.Policy.WindowClampedFrom != "30d" {
		t.Errorf("busy-api window %q clamped from %q, want 1d from 30d", busy.Policy.Window, busy.Policy.WindowClampedFrom)
	}
	if idle.Policy.Sources["memory_margin"] != "namespace_label upid.io/memory-margin" || idle.Policy.CPUPercentile != 0.9 {
		t.Errorf("idle-api policy %+v", idle.Policy)
	}
	if _, ok := idle.Policy.Sources["cpu_percentile"]; ok {
		t.Errorf("a bad annotation became a source: %v", idle.Policy.Sources)
	}

	// The bad value is counted every cycle and logged once.
	before := testutil.ToFloat64(counterOf(t, reg, "workload_annotation"))
	if err := svc.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	if after := testutil.ToFloat64(counterOf(t, reg, "workload_annotation")); before < 1 || after != before+1 {
		t.Errorf("policy errors %v then %v, want one more per cycle", before, after)
	}
	out := logs.String()
	if n := strings.Count(out, "upid.io/cpu-percentile"); n != 1 || !strings.Contains(out, "workload=idle-api") || !strings.Contains(out, `value=95`) {
		t.Errorf("want one warning naming idle-api and its bad annotation, got %d in:\n%s", n, out)
	}
	if n := strings.Count(out, "recommendation window clamped"); n != 1 {
		t.Errorf("want one clamp warning, got %d in:\n%s", n, out)
	}

	// An HPA on busy-api's CPU utilization: its CPU request stays (a new
	// one would move the HPA's target), its memory is still sized. idle-api's
	// HPA targets an absolute CPU value, which requests do not move.
	// What busy-api's CPU would be without an HPA, and its request now:
	// the pair follows from them by hand.
	unpaired := metric(t, reg, "upid_container_recommended_cpu_request_cores", "busy-api")
	busyDeploy, err := c.AppsV1().Deployments("shop").Get(ctx, "busy-api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	busyCPU := busyDeploy.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().AsApproximateFloat64()
	fifty := int32(50)
	for name, target := range map[string]autoscalingv2.MetricTarget{
		"busy-api": {Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &fifty},
		"idle-api": {Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewMilliQuantity(100, resource.DecimalSI)},
	} {
		hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}, Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name}, MaxReplicas: 5,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: "cpu", Target: target}}},
		}}
		if _, err := c.AutoscalingV2().HorizontalPodAutoscalers("shop").Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var rec *exporter.Recommendation
	cycleUntil(ctx, t, svc, "the HPA to reach busy-api's recommendation", func(ws []exporter.WorkloadResult) bool {
		for _, w := range ws {
			if w.Name == "busy-api" && len(w.Containers) > 0 {
				rec = w.Containers[0].Recommendation
			}
		}
		return rec != nil && slices.Contains(rec.Reasons, "hpa_cpu_utilization")
	})
	if rec.CPURequestCores != nil || rec.MemoryRequestBytes == nil {
		t.Errorf("busy-api under a CPU-utilization HPA: %+v, want memory only", rec)
	}
	if got := metric(t, reg, "upid_container_recommended_cpu_request_cores", "idle-api"); got != 0.4 {
		t.Errorf("idle-api CPU %v under an absolute-value HPA, want its 400m as before", got)
	}
	// busy-api gets the CPU request paired with a new target instead: its
	// figure, at least 50 % of today's request, and the target that keeps
	// the HPA scaling at 50 % of today's request per pod.
	wantReq := math.Max(unpaired, math.Ceil(0.5*busyCPU*1000-1e-9)/1000)
	wantTarget := math.Floor(50*busyCPU/wantReq+1e-9) / 100
	if wantReq != unpaired {
		t.Fatalf("busy-api's figure %v is under half its request %v: the case tests the floor, not the figure", unpaired, busyCPU)
	}
	for _, w := range svc.Last().Workloads {
		switch {
		case w.Name == "busy-api":
			if len(w.HPA) != 1 || w.HPA[0].Resource != "cpu" || w.HPA[0].CurrentTargetUtilization != 0.5 || w.HPA[0].TargetUtilization != wantTarget ||
				len(w.HPA[0].Requests) != 1 || math.Abs(w.HPA[0].Requests[w.Containers[0].Name]-wantReq) > 1e-9 {
				t.Errorf("busy-api HPA advice %+v, want %v cores at target %v (figure %v, request %v)", w.HPA, wantReq, wantTarget, unpaired, busyCPU)
			}
		case w.Name == "idle-api" && len(w.HPA) > 0:
			t.Errorf("idle-api's absolute-value HPA got advice %+v", w.HPA)
		}
	}
	if got := metric(t, reg, "upid_workload_hpa_recommended_target_utilization_ratio", "busy-api"); got != wantTarget {
		t.Errorf("busy-api HPA target metric %v, want %v", got, wantTarget)
	}
	if got := metric(t, reg, "upid_container_hpa_paired_cpu_request_cores", "busy-api"); math.Abs(got-wantReq) > 1e-9 {
		t.Errorf("busy-api paired CPU request metric %v, want %v", got, wantReq)
	}

	// A memory target at 30 % joins: memory loses its own figure and gets
	// a pair, from the figure it had (above 30 % of 1 GiB), by the same
	// rule in MiB.
	unpairedMem := metric(t, reg, "upid_container_recommended_memory_request_bytes", "busy-api")
	busyMem := busyDeploy.Spec.Template.Spec.Containers[0].Resources.Requests.Memory().AsApproximateFloat64()
	thirty := int32(30)
	hpa, err := c.AutoscalingV2().HorizontalPodAutoscalers("shop").Get(ctx, "busy-api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hpa.Spec.Metrics = append(hpa.Spec.Metrics, autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: "memory", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &thirty}}})
	if _, err := c.AutoscalingV2().HorizontalPodAutoscalers("shop").Update(ctx, hpa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantMem := math.Max(unpairedMem, math.Ceil(0.3*busyMem/mib-1e-9)*mib)
	wantMemTarget := math.Floor(30*busyMem/wantMem+1e-9) / 100
	if wantMem != unpairedMem {
		t.Fatalf("busy-api's memory figure %v is under 30 %% of its request %v: the case tests the floor, not the figure", unpairedMem, busyMem)
	}
	var memPair *exporter.HPAAdvice
	cycleUntil(ctx, t, svc, "the memory target to reach busy-api's pairs", func(ws []exporter.WorkloadResult) bool {
		for _, w := range ws {
			for i, a := range w.HPA {
				if w.Name == "busy-api" && a.Resource == "memory" {
					memPair = &w.HPA[i]
				}
			}
		}
		return memPair != nil
	})
	if memPair.MetricIndex != 1 || memPair.CurrentTargetUtilization != 0.3 || memPair.TargetUtilization != wantMemTarget ||
		memPair.Requests[busyDeploy.Spec.Template.Spec.Containers[0].Name] != wantMem {
		t.Errorf("busy-api memory pair %+v, want %v bytes at target %v", memPair, wantMem, wantMemTarget)
	}
	if got := metric(t, reg, "upid_container_hpa_paired_memory_request_bytes", "busy-api"); got != wantMem {
		t.Errorf("busy-api paired memory request metric %v, want %v", got, wantMem)
	}
	for _, m := range gathered(t, reg, "upid_workload_hpa_recommended_target_utilization_ratio") {
		if l := labelsOf(m); l["workload"] == "busy-api" && l["resource"] == "memory" && m.GetGauge().GetValue() != wantMemTarget {
			t.Errorf("busy-api memory target metric %v, want %v", m.GetGauge().GetValue(), wantMemTarget)
		}
	}
	promtoolCheck(t, reg)
}

// cycleUntil runs cycles until done is true of the results: each informer
// sees an update in its own time. It fails after 30 seconds, saying what it
// waited for.
func cycleUntil(ctx context.Context, t *testing.T, svc *exporter.Service, what string, done func([]exporter.WorkloadResult) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := svc.Cycle(ctx); err != nil {
			t.Fatal(err)
		}
		if done(svc.Last().Workloads) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func annotate(ctx context.Context, t *testing.T, c kubernetes.Interface, name string, ann map[string]string) {
	t.Helper()
	d, err := c.AppsV1().Deployments("shop").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Annotations = ann
	if _, err := c.AppsV1().Deployments("shop").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// metric reads one of busy-api's or idle-api's container series; stat
// selects a usage statistic.
// startShop runs the exporter at a fixed now on the shop cluster, on a real
// kube-apiserver and a real Prometheus holding its last two days, logging
// to logs, with its metrics in a pedantic registry.
func startShop(t *testing.T, cfg config.Config, logs io.Writer) (*testenv.Kube, *exporter.Service, context.Context, *prometheus.Registry) {
	t.Helper()
	now := time.Now().Truncate(time.Minute)
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	createCluster(t, kube.Clientset)
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{Series: recorded(now.Add(-2*24*time.Hour), now.Add(-time.Minute))})
	svc, ctx := startService(t, exporter.Options{
		Exporter: cfg.Exporter, Prometheus: cfg.Prometheus, Kube: kube.Clientset, Querier: prom.API,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Now:    func() time.Time { return now },
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(svc.Collector())
	return kube, svc, ctx, reg
}

func metric(t *testing.T, reg *prometheus.Registry, name, workload string, stat ...string) float64 {
	t.Helper()
	want := ""
	if len(stat) > 0 {
		want = stat[0]
	}
	for _, m := range gathered(t, reg, name) {
		if l := labelsOf(m); l["workload"] == workload && l["stat"] == want {
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s for %s", name, workload)
	return 0
}

func counterOf(t *testing.T, reg *prometheus.Registry, source string) prometheus.Collector {
	t.Helper()
	for _, m := range gathered(t, reg, "upid_exporter_policy_errors_total") {
		if labelsOf(m)["source"] == source {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
		}
	}
	t.Fatalf("no upid_exporter_policy_errors_total{source=%q}", source)
	return nil
}

// gathered is the series of one family in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

func labelsOf(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, lp := range m.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	return l
}
