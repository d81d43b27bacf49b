package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/upid-dev/upid/internal/series"
	"github.com/upid-dev/upid/internal/testenv"
)

// e2ePod is one pod of the end-to-end cluster and the usage Prometheus has for it.
type e2ePod struct {
	deployment, name, cpuRequest, memRequest string
	cpuCores, memBytes                       float64
	requests                                 map[string]float64 // handler → requests/s
}

// An API only its probes keep alive (2 replicas), and a busy API that
// requests 1 core and 1 GiB for a steady 0.3 cores and 300 MiB.
var e2ePods = []e2ePod{
	{"idle-api", "idle-api-7d9f-a", "250m", "256Mi", 0.002, 50 << 20, map[string]float64{"/healthz": 0.1, "/ready": 0.2}},
	{"idle-api", "idle-api-7d9f-b", "250m", "256Mi", 0.002, 50 << 20, map[string]float64{"/healthz": 0.1, "/ready": 0.2}},
	{"busy-api", "busy-api-5c4b-a", "1", "1Gi", 0.3, 300 << 20, map[string]float64{"/healthz": 0.1, "/ready": 0.2, "/api/orders": 5}},
}

func e2eRS(p e2ePod) string { return p.name[:strings.LastIndex(p.name, "-")] }

func e2eCluster(t *testing.T, c kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "payments"}}}, metav1.CreateOptions{}))
	must(c.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Status:     corev1.NodeStatus{Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("16Gi")}},
	}, metav1.CreateOptions{}))
	probe := func(path string, period int32) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(8080)}}, PeriodSeconds: period}
	}
	yes := true
	for _, p := range e2ePods {
		container := corev1.Container{Name: "app", Image: "example/app:1", LivenessProbe: probe("/healthz", 10), ReadinessProbe: probe("/ready", 5),
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(p.cpuRequest), corev1.ResourceMemory: resource.MustParse(p.memRequest)}}}
		labels := map[string]string{"app": p.deployment}
		tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{container}}}
		rs, err := c.AppsV1().ReplicaSets("shop").Get(ctx, e2eRS(p), metav1.GetOptions{})
		if err != nil {
			replicas := int32(0)
			for _, q := range e2ePods {
				if q.deployment == p.deployment {
					replicas++
				}
			}
			d, err := c.AppsV1().Deployments("shop").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: p.deployment},
				Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			rs, err = c.AppsV1().ReplicaSets("shop").Create(ctx, &appsv1.ReplicaSet{
				ObjectMeta: metav1.ObjectMeta{Name: e2eRS(p), OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &yes}}},
				Spec:       appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
		}
		must(c.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Labels: labels, OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}}},
			Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{container}},
		}, metav1.CreateOptions{}))
	}
}

// e2eSeries is what cAdvisor, kube-state-metrics, the kubelet, the apps and
// UPID's own scaler and webhook would have recorded over [start, end].
func e2eSeries(start, end time.Time) []series.Series {
	step := time.Minute
	var out []series.Series
	ones := series.Generate(start, end, step, series.Const(1))
	owners := map[string]bool{}
	for _, p := range e2ePods {
		ref := series.PodRef{Namespace: "shop", Pod: p.name, Container: "app", Node: "n1"}
		q := func(s string) float64 { v := resource.MustParse(s); return v.AsApproximateFloat64() }
		out = append(out,
			series.ContainerCPUUsageSeconds(ref, series.GenerateCounter(start, end, step, series.Const(p.cpuCores))),
			series.ContainerMemoryWorkingSet(ref, series.Generate(start, end, step, series.Const(p.memBytes))),
			series.ProberProbeTotal(ref, "Liveness", "successful", series.GenerateCounter(start, end, step, series.Const(0.1))),
			series.ProberProbeTotal(ref, "Readiness", "successful", series.GenerateCounter(start, end, step, series.Const(0.2))),
			series.KubePodOwner(ref, series.OwnerRef{Kind: "ReplicaSet", Name: e2eRS(p)}, ones),
			series.KubePodStatusPhase(ref, "Running", ones),
			series.KubePodContainerResourceRequests(ref, "cpu", series.Generate(start, end, step, series.Const(q(p.cpuRequest)))),
			series.KubePodContainerResourceRequests(ref, "memory", series.Generate(start, end, step, series.Const(q(p.memRequest)))),
		)
		for handler, rps := range p.requests {
			out = append(out, series.HTTPRequestsTotal(map[string]string{"namespace": "shop", "pod": p.name, "handler": handler, "code": "200", "method": "get"},
				series.GenerateCounter(start, end, step, series.Const(rps))))
		}
		if !owners[e2eRS(p)] {
			owners[e2eRS(p)] = true
			out = append(out, series.KubeReplicaSetOwner("shop", e2eRS(p), series.OwnerRef{Kind: "Deployment", Name: p.deployment}, ones))
		}
	}
	// The scaler has one workload asleep saving $0.05/h; the webhook mutated
	// a pod every 1000 s.
	out = append(out,
		series.Series{Name: "upid_scaler_sleeping_workload_saved_dollars_per_hour", Type: series.TypeGauge, Help: "Saved.",
			Labels: map[string]string{"namespace": "shop", "workload": "old-api", "kind": "Deployment"}, Samples: series.Generate(start, end, step, series.Const(0.05))},
		series.Series{Name: "upid_webhook_decisions_total", Type: series.TypeCounter, Help: "Decisions.",
			Labels: map[string]string{"outcome": "mutated", "reason": "enforce"}, Samples: series.GenerateCounter(start, end, step, series.Const(0.001))},
	)
	return out
}

// TestCLIAgainstRealServers runs analyze, recommend, check and report
// against a real kube-apiserver and a real Prometheus with three days of
// history (forecasts need two), and an unreachable Prometheus.
func TestCLIAgainstRealServers(t *testing.T) {
	now := time.Now().Truncate(time.Minute)
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	e2eCluster(t, kube.Clientset)
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{Series: e2eSeries(now.Add(-3*24*time.Hour), now.Add(-time.Minute))})
	live := []string{"--kubeconfig", kube.KubeconfigPath, "--prometheus.url", prom.URL, "--exporter.window", "1d", "--exporter.namespace-labels", "team"}
	cmd := func(args ...string) []string { return append(args, live...) }

	// Hand computation at the built-in rates ($0.031611/core-h, $0.004237/GiB-h):
	// idle-api 2 × (250m, 256Mi), busy-api 1 × (1, 1Gi).
	idleHourly := 0.5*0.031611 + 0.5*0.004237
	busyHourly := 0.031611 + 0.004237
	near := func(name string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s = %.6g, want %.6g ± %g", name, got, want, tol)
		}
	}

	t.Run("analyze", func(t *testing.T) {
		var a analysis
		runCase(t, cliCase{args: cmd("analyze", "-o", "json"), check: func(t *testing.T, out []byte) {
			if err := json.Unmarshal(out, &a); err != nil {
				t.Fatal(err)
			}
		}})
		near("monthly cost", a.Summary.MonthlyCost, (idleHourly+busyHourly)*730, 0.01)
		near("idle spend", a.Summary.MonthlyIdle, idleHourly*730, 0.01)
		if len(a.Idle) != 1 || a.Idle[0].Name != "idle-api" || a.Idle[0].HealthShare == nil || *a.Idle[0].HealthShare != 1 {
			t.Errorf("idle = %+v, want idle-api with a 100%% health-check share", a.Idle)
		}
		if len(a.Rightsizing) != 1 || a.Rightsizing[0].Name != "busy-api" || a.Rightsizing[0].MonthlySavings <= 0 {
			t.Errorf("rightsizing = %+v, want busy-api with savings", a.Rightsizing)
		}
		// Steady use far below the requests: spend stays where it is.
		if a.Forecast.Workloads != 2 {
			t.Errorf("forecast = %+v, want both workloads from three days of history", a.Forecast)
		}
		near("forecast p50", a.Forecast.MonthlyP50, a.Forecast.MonthlyNow, 0.01)
		near("forecast cpu p50", a.Forecast.CPUP50, 0.304, 0.01)
		runCase(t, cliCase{args: cmd("analyze"), stdout: []string{"idle-api", "busy-api", "100%", "Next 30 days"}})
	})

	t.Run("recommend", func(t *testing.T) {
		runCase(t, cliCase{args: cmd("recommend", "shop/deployment/busy-api", "-o", "patch"), check: func(t *testing.T, out []byte) {
			if n := checkPatches(t, out); n != 1 {
				t.Errorf("%d patches for one workload", n)
			}
			if !bytes.Contains(out, []byte("name: busy-api")) || !bytes.Contains(out, []byte("namespace: shop")) {
				t.Errorf("patch:\n%s", out)
			}
		}})
	})

	// check reads the manifest on stdin, as in CI after helm template.
	manifest := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: busy-api, namespace: shop}\nspec:\n  replicas: 4\n  template:\n    spec:\n      containers:\n      - name: app\n        resources: {requests: {cpu: '1', memory: 1Gi}}\n"
	for _, tc := range []struct {
		name  string
		flags []string
		code  int
		want  string
	}{
		{"over", []string{"--max-waste", "1"}, exitOverThreshold, "over --max-waste $1.00"},
		{"within", []string{"--max-waste", "1000"}, exitOK, "within --max-waste $1,000.00"},
	} {
		t.Run("check "+tc.name, func(t *testing.T) {
			var r checkResult
			runCase(t, cliCase{args: cmd(append([]string{"check", "-f", "-", "-o", "json"}, tc.flags...)...), stdin: manifest, code: tc.code, check: func(t *testing.T, out []byte) {
				if err := json.Unmarshal(out, &r); err != nil {
					t.Fatal(err)
				}
			}})
			if len(r.Rows) != 1 {
				t.Fatalf("rows = %+v", r.Rows)
			}
			row := r.Rows[0]
			if row.File != "<stdin>" || row.Replicas != 4 || row.CPURecommended == nil || *row.CPURecommended >= 1 {
				t.Fatalf("row = %+v, want <stdin>, the manifest's 4 replicas and a recommendation below 1 core", row)
			}
			// Waste is the request above the recommendation at busy-api's
			// own prices, for 4 replicas.
			want := 4 * 730 * ((1-*row.CPURecommended)*0.031611 + (1<<30-*row.MemRecommended)/(1<<30)*0.004237)
			near("waste", row.MonthlyWaste, want, 0.01)
			runCase(t, cliCase{args: cmd(append([]string{"check", "-f", "-"}, tc.flags...)...), stdin: manifest, code: tc.code, stdout: []string{tc.want}})
		})
	}

	t.Run("report", func(t *testing.T) {
		runCase(t, cliCase{args: cmd("report"), stdout: []string{"- Scaler: $3.", "saved in the last 30 days; $36.50/month at the rate of the 1 workloads asleep now", "- Webhook: 2"}})
		runCase(t, cliCase{args: cmd("report", "-o", "json"), check: func(t *testing.T, out []byte) {
			var r report
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatal(err)
			}
			if r.Realised.ScalerMonthly == nil || r.Realised.WebhookMutated == nil {
				t.Fatalf("realised = %+v, want both measured", r.Realised)
			}
			near("scaler savings rate", *r.Realised.ScalerMonthly, 0.05*730, 1e-6)
			// $0.05 an hour for the three days of history, one hour either
			// way: the subquery counts 73 whole-hour marks when the test
			// starts on the hour, and 73 × 0.05 is a rounding above 3.65.
			if r.Realised.ScalerLast30d == nil {
				t.Fatal("no savings over the last 30 days")
			}
			near("scaler savings over 30 days", *r.Realised.ScalerLast30d, 0.05*72, 0.05+1e-9)
			// A mutation every 1000 s for three days, give or take
			// increase()'s extrapolation at the edges of the data.
			near("webhook mutations", *r.Realised.WebhookMutated, 3*86400*0.001, 5)
			if len(r.Teams) != 1 || r.Teams[0].Groups[0].Name != "payments" {
				t.Errorf("teams = %+v, want payments", r.Teams)
			}
		}})
	})

	t.Run("unreachable prometheus", func(t *testing.T) {
		url := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
		runCase(t, cliCase{args: []string{"analyze", "--kubeconfig", kube.KubeconfigPath, "--prometheus.url", url}, code: exitFailure,
			stderr: []string{"upid analyze: cannot query Prometheus at " + url + " (--prometheus.url):", "connection refused"}})
	})
}
