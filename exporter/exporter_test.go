package exporter_test

import (
	"context"
	"encoding/json"
	"flag"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/series"
	"github.com/upid-dev/upid/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite golden files")

// pod is one pod of the test cluster and the usage it shows in Prometheus.
type pod struct {
	deployment, name string
	cpuRequest       string
	memRequest       string
	cpuCores         float64            // usage
	memBytes         float64            // working set
	rxBytesPerSec    float64            // network receive
	requests         map[string]float64 // handler → requests per second
	withSeries       bool
}

var (
	liveness  = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 10}
	readiness = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 5}
)

// The cluster: an API kept alive only by its probes, a busy API, and a
// workload Prometheus knows nothing about.
var pods = []pod{
	{deployment: "idle-api", name: "idle-api-7d9f-a", cpuRequest: "250m", memRequest: "256Mi", cpuCores: 0.002, memBytes: 50 << 20, rxBytesPerSec: 600,
		requests: map[string]float64{"/healthz": 0.1, "/ready": 0.2}, withSeries: true},
	{deployment: "idle-api", name: "idle-api-7d9f-b", cpuRequest: "250m", memRequest: "256Mi", cpuCores: 0.002, memBytes: 50 << 20, rxBytesPerSec: 600,
		requests: map[string]float64{"/healthz": 0.1, "/ready": 0.2}, withSeries: true},
	{deployment: "busy-api", name: "busy-api-5c4b-a", cpuRequest: "1", memRequest: "1Gi", cpuCores: 0.3, memBytes: 300 << 20, rxBytesPerSec: 50000,
		requests: map[string]float64{"/healthz": 0.1, "/ready": 0.2, "/api/orders": 5}, withSeries: true},
	{deployment: "ghost", name: "ghost-6f6f-a", cpuRequest: "2", memRequest: "4Gi"},
}

func rsName(p pod) string { return p.name[:strings.LastIndex(p.name, "-")] }

func createCluster(t *testing.T, c kubernetes.Interface) {
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
		ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"node.kubernetes.io/instance-type": "m5.xlarge", "topology.kubernetes.io/region": "eu-west-1"}},
		Status:     corev1.NodeStatus{Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("16Gi")}},
	}, metav1.CreateOptions{}))
	made := map[string]bool{}
	for _, p := range pods {
		container := corev1.Container{
			Name: "app", Image: "example/app:1", LivenessProbe: liveness, ReadinessProbe: readiness,
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse(p.cpuRequest), corev1.ResourceMemory: resource.MustParse(p.memRequest)}},
		}
		labels := map[string]string{"app": p.deployment}
		if !made[p.deployment] {
			made[p.deployment] = true
			replicas := int32(0)
			for _, q := range pods {
				if q.deployment == p.deployment {
					replicas++
				}
			}
			tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{container}}}
			d, err := c.AppsV1().Deployments("shop").Create(ctx, &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: p.deployment},
				Spec:       appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// Each serves HTTP behind a Service: without one its requests
			// could only be health checks (no_service).
			must(c.CoreV1().Services("shop").Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: p.deployment},
				Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}},
			}, metav1.CreateOptions{}))
			yes := true
			must(c.AppsV1().ReplicaSets("shop").Create(ctx, &appsv1.ReplicaSet{
				ObjectMeta: metav1.ObjectMeta{Name: rsName(p), OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &yes}}},
				Spec:       appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
			}, metav1.CreateOptions{}))
		}
		rs, err := c.AppsV1().ReplicaSets("shop").Get(ctx, rsName(p), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		yes := true
		must(c.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Labels: labels, OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}}},
			Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{container}},
		}, metav1.CreateOptions{}))
	}
}

// recorded builds what cAdvisor, kube-state-metrics, the kubelet and the
// apps would have recorded over [start, end].
func recorded(start, end time.Time) []series.Series {
	step := time.Minute
	var out []series.Series
	owners := map[string]bool{}
	for _, p := range pods {
		if !p.withSeries {
			continue
		}
		ref := series.PodRef{Namespace: "shop", Pod: p.name, Container: "app", Node: "n1"}
		ones := series.Generate(start, end, step, series.Const(1))
		usage := []series.Series{
			series.ContainerCPUUsageSeconds(ref, series.GenerateCounter(start, end, step, series.Const(p.cpuCores))),
			series.ContainerMemoryWorkingSet(ref, series.Generate(start, end, step, series.Const(p.memBytes))),
		}
		// The kubelet's /metrics/resource exports CPU and memory again: a
		// Prometheus scraping both holds each twice, counted once.
		out = append(out, usage...)
		out = append(out, series.WithLabels(usage, map[string]string{"metrics_path": "/metrics/resource"})...)
		out = append(out,
			series.ContainerNetworkReceiveBytes(ref, series.GenerateCounter(start, end, step, series.Const(p.rxBytesPerSec))),
			series.ProberProbeTotal(ref, "Liveness", "successful", series.GenerateCounter(start, end, step, series.Const(0.1))),
			series.ProberProbeTotal(ref, "Readiness", "successful", series.GenerateCounter(start, end, step, series.Const(0.2))),
			series.KubePodOwner(ref, series.OwnerRef{Kind: "ReplicaSet", Name: rsName(p)}, ones),
			series.KubePodStatusPhase(ref, "Running", ones),
			series.KubePodContainerResourceRequests(ref, "cpu", series.Generate(start, end, step, series.Const(quantity(p.cpuRequest)))),
			series.KubePodContainerResourceRequests(ref, "memory", series.Generate(start, end, step, series.Const(quantity(p.memRequest)))),
		)
		for handler, rps := range p.requests {
			out = append(out, series.HTTPRequestsTotal(map[string]string{"namespace": "shop", "pod": p.name, "handler": handler, "code": "200", "method": "get"},
				series.GenerateCounter(start, end, step, series.Const(rps))))
		}
		if !owners[rsName(p)] {
			owners[rsName(p)] = true
			out = append(out, series.KubeReplicaSetOwner("shop", rsName(p), series.OwnerRef{Kind: "Deployment", Name: p.deployment}, ones))
		}
	}
	return out
}

func quantity(s string) float64 {
	q := resource.MustParse(s)
	return q.AsApproximateFloat64()
}

func exporterConfig() config.Config {
	cfg := config.Default()
	cfg.Exporter.Window = model.Duration(24 * time.Hour)
	cfg.Exporter.NamespaceLabels = []string{"team"}
	cfg.Prometheus.Timeout = model.Duration(30 * time.Second)
	return cfg
}

// TestAgainstRealServers runs the exporter against a real kube-apiserver and
// a real Prometheus loaded with a day of history, checks the verdicts and
// dollars against hand computation, then stops Prometheus mid-run.
func TestAgainstRealServers(t *testing.T) {
	now := time.Now().Truncate(time.Minute)
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	createCluster(t, kube.Clientset)
	// Five days, so that forecasts have more than the two days they need.
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{Series: recorded(now.Add(-5*24*time.Hour), now.Add(-time.Minute))})

	cfg := exporterConfig()
	cfg.Prometheus.Timeout = model.Duration(5 * time.Second)
	slow := &slowQuerier{next: prom.API}
	svc, ctx := startService(t, exporter.Options{
		Exporter: cfg.Exporter, Prometheus: cfg.Prometheus, Kube: kube.Clientset, Querier: slow,
		Now: func() time.Time { return now },
	})
	if err := svc.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	res := svc.Last()
	got := map[string]exporter.WorkloadResult{}
	for _, w := range res.Workloads {
		got[w.Name] = w
	}
	near := func(name string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s = %.9g, want %.9g ± %g", name, got, want, tol)
		}
	}

	// idle-api: 2 replicas that only ever answer /healthz (0.1/s) and /ready
	// (0.2/s) probes: 0.6 health requests/s in all, no real traffic, and
	// 2 × 2m CPU, well within the floor that traffic explains.
	ia := got["idle-api"]
	if ia.Idle.State != "idle" || ia.Idle.Confidence < 0.8 {
		t.Errorf("idle-api = %+v, want idle with confidence ≥ 0.8", ia.Idle)
	}
	near("idle-api health requests/s", ia.Idle.HealthRequestsPerSecond, 0.6, 0.01)
	near("idle-api real requests/s", ia.Idle.RealRequestsPerSecond, 0, 1e-9)
	near("idle-api health share", ia.Idle.HealthShare, 1, 1e-9)
	// 0.5 cores × $0.031611 + 0.5 GiB × $0.004237 per hour.
	near("idle-api cost", ia.Cost.Total, 0.017924, 1e-9)
	near("idle-api idle cost", ia.IdleCostPerHr, 0.017924, 1e-9)
	near("idle-api mean cpu", *ia.CPUUsageCores, 0.004, 1e-5)

	// busy-api: 5 real requests/s on top of the same probes.
	ba := got["busy-api"]
	if ba.Idle.State != "active" || ba.IdleCostPerHr != 0 {
		t.Errorf("busy-api = %+v, want active", ba.Idle)
	}
	near("busy-api real requests/s", ba.Idle.RealRequestsPerSecond, 5, 0.05)
	near("busy-api cost", ba.Cost.Total, 0.031611+0.004237, 1e-9)
	// (1 − 0.3 p95) cores × 0.031611; (1 GiB − 300 MiB) × 0.004237. The
	// p95s come from the recommender's histograms, whose buckets are 5 %
	// wide: the steady 0.3 cores and 300 MiB read as up to 5 % more.
	near("busy-api cpu waste", *ba.Waste.CPU, (1-0.3*1.025)*0.031611, 0.3*0.025*0.031611)
	near("busy-api memory waste", *ba.Waste.Memory, (1-300.0*1.025/1024)*0.004237, 300.0*0.025/1024*0.004237)

	// busy-api's container requests 1 core and 1 GiB but uses a steady 0.3
	// cores and 300 MiB: UPID proposes less, never below the memory peak
	// plus its 10 % margin, and says what that saves.
	if len(ba.Containers) != 1 || ba.Containers[0].Recommendation == nil || !ba.Containers[0].Recommendation.OK {
		t.Fatalf("busy-api containers = %+v, want one with a recommendation", ba.Containers)
	}
	rec := ba.Containers[0].Recommendation
	if c := *rec.CPURequestCores; c < 0.3 || c > 0.45 {
		t.Errorf("busy-api recommended CPU = %g, want between the 0.3 used and 0.45", c)
	}
	if m := *rec.MemoryRequestBytes; m < 1.1*300*(1<<20) || m > 0.6*(1<<30) {
		t.Errorf("busy-api recommended memory = %g, want at least 1.1 × the 300 MiB peak and well under 1 GiB", m)
	}
	if !rec.Apply || rec.SavingsDollarsPerHour <= 0 || rec.CPULimitCores != nil {
		t.Errorf("busy-api recommendation = %+v, want apply, positive savings and no CPU limit", rec)
	}
	near("busy-api monthly savings", rec.MonthlySavings, rec.SavingsDollarsPerHour*730, 1e-9)

	// ghost: in Kubernetes, absent from Prometheus: unknown, never idle.
	if g := got["ghost"]; g.Idle.State != "unknown" || g.IdleCostPerHr != 0 || len(g.Containers) != 0 {
		t.Errorf("ghost = %+v, want unknown and no recommendation without data", g)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(svc.Collector())
	golden := filepath.Join("testdata", "exporter.golden.prom")
	stable := []string{
		"upid_workload_idle_state", "upid_workload_requested_cpu_cores", "upid_workload_requested_memory_bytes",
		"upid_workload_cost_dollars_per_hour", "upid_workload_idle_cost_dollars_per_hour", "upid_workload_request_metrics_present",
		"upid_workload_replicas", "upid_node_cost_dollars_per_hour", "upid_node_price_info", "upid_namespace_labels", "upid_exporter_cycles_total",
		"upid_exporter_policy_errors_total", "upid_container_recommended_memory_request_lower_bound_bytes",
	}
	if *update {
		writeGolden(t, reg, golden, stable)
	}
	f, err := os.Open(golden)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := testutil.GatherAndCompare(reg, f, stable...); err != nil {
		t.Errorf("exposition differs from %s (refresh with -update): %v", golden, err)
	}
	promtoolCheck(t, reg)

	checkAPI(t, svc)
	checkForecasts(t, svc, reg, map[string][2]float64{"idle-api": {0.004, 2 * 50 << 20}, "busy-api": {0.3, 300 << 20}})
	promtoolCheck(t, reg) // again, with the forecasts

	// Prometheus slower than the query timeout: the cycle fails and the
	// last good results stay.
	slow.delay = 6 * time.Second
	if err := svc.Cycle(ctx); err == nil {
		t.Fatal("cycle with Prometheus slower than the timeout succeeded")
	}
	if svc.Last() != res {
		t.Error("results were replaced by a timed-out cycle")
	}
	slow.delay = 0

	// Prometheus goes away mid-run: the cycle fails, the last good results
	// stay served with their age, and nothing turns idle from missing data.
	prom.Stop()
	if err := svc.Cycle(ctx); err == nil {
		t.Fatal("cycle with Prometheus down succeeded")
	}
	if svc.Last() != res {
		t.Error("results were replaced by a failed cycle")
	}
	if v := testutil.ToFloat64(gaugeOf(t, reg, "upid_exporter_cycle_stage_success", "stage", "prometheus")); v != 0 {
		t.Errorf("prometheus stage success = %v after a failure, want 0", v)
	}
	if n, err := testutil.GatherAndCount(reg, "upid_exporter_query_errors_total"); err != nil || n == 0 {
		t.Errorf("no query errors reported (%d, %v)", n, err)
	}
}

// checkForecasts fits forecasts through the real Prometheus (the hourly
// usage subqueries and their owner join) and checks them against the
// steady usage the series hold, CPU cores and memory bytes summed over
// the pods: a flat history forecasts itself, its band holds the median,
// spend stays at the request cost since use stays below the requests, and
// nothing is anomalous. ghost, unknown to Prometheus, gets no forecast.
func checkForecasts(t *testing.T, svc *exporter.Service, reg *prometheus.Registry, usage map[string][2]float64) {
	t.Helper()
	before := svc.Scrape().Version
	if err := svc.Forecast(context.Background()); err != nil {
		t.Fatal(err)
	}
	if svc.Scrape().Version == before {
		t.Error("a forecast run left the version of the stored families as it was: scrapes would serve the old forecasts")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ workload, horizon, stat, resource string }
	got := map[string]map[key]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "upid_workload_forecast_") && mf.GetName() != "upid_workload_usage_anomaly_score" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if got[mf.GetName()] == nil {
				got[mf.GetName()] = map[key]float64{}
			}
			got[mf.GetName()][key{l["workload"], l["horizon"], l["stat"], l["resource"]}] = m.GetGauge().GetValue()
		}
	}
	res := svc.Last()
	cost := map[string]float64{}
	for _, w := range res.Workloads {
		cost[w.Name] = w.Cost.Total
	}
	for w, want := range usage {
		for _, h := range []string{"1d", "7d", "30d"} {
			for i, name := range []string{"upid_workload_forecast_cpu_usage_cores", "upid_workload_forecast_memory_usage_bytes"} {
				p10, p50, p90 := got[name][key{w, h, "p10", ""}], got[name][key{w, h, "p50", ""}], got[name][key{w, h, "p90", ""}]
				if math.Abs(p50-want[i]) > 0.05*want[i] || p10 > p50 || p50 > p90 {
					t.Errorf("%s %s %s p10/p50/p90 = %g/%g/%g, want p50 within 5%% of %g and ordered", name, w, h, p10, p50, p90, want[i])
				}
			}
			if c := got["upid_workload_forecast_cost_dollars_per_hour"][key{w, h, "p50", ""}]; math.Abs(c-cost[w]) > 1e-9 {
				t.Errorf("%s %s forecast cost = %g, want today's %g (use stays below requests)", w, h, c, cost[w])
			}
		}
		for _, r := range []string{"cpu", "memory"} {
			a, ok := got["upid_workload_usage_anomaly_score"][key{w, "", "", r}]
			if !ok || a > 0.1 {
				t.Errorf("%s %s anomaly score = %g (present %v), want a steady workload near 0", w, r, a, ok)
			}
		}
	}
	for name, m := range got {
		for k := range m {
			if k.workload == "ghost" {
				t.Errorf("%s has a series for ghost, which Prometheus knows nothing of", name)
			}
		}
	}
	for _, mf := range mfs {
		if mf.GetName() == "upid_exporter_forecast_workloads" {
			if n := mf.GetMetric()[0].GetGauge().GetValue(); n != float64(len(usage)) {
				t.Errorf("upid_exporter_forecast_workloads = %v, want %d", n, len(usage))
			}
		}
	}
}

// TestSelectorScopesToOneCluster: a Prometheus holding two clusters with
// the same namespaces and pods (as Thanos or Mimir behind one URL does)
// answers about the one prometheus.selector names.
func TestSelectorScopesToOneCluster(t *testing.T) {
	now := time.Now().Truncate(time.Minute)
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	createCluster(t, kube.Clientset)
	start, end := now.Add(-2*24*time.Hour), now.Add(-time.Minute)
	other := recorded(start, end)
	for _, s := range other {
		// The /metrics/resource copy shares its samples with the original.
		if s.Name == "container_cpu_usage_seconds_total" && s.Labels["metrics_path"] == "" {
			for i := range s.Samples {
				s.Samples[i].V *= 3 // the other cluster's pods work harder
			}
		}
	}
	all := append(series.WithLabels(recorded(start, end), map[string]string{"cluster": "a"}),
		series.WithLabels(other, map[string]string{"cluster": "b"})...)
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{Series: all})

	mean := func(selector string) float64 {
		t.Helper()
		cfg := exporterConfig()
		cfg.Prometheus.Selector = selector
		svc, ctx := startService(t, exporter.Options{
			Exporter: cfg.Exporter, Prometheus: cfg.Prometheus, Kube: kube.Clientset, Querier: prom.API,
			Now: func() time.Time { return now },
		})
		if err := svc.Cycle(ctx); err != nil {
			t.Fatal(err)
		}
		for _, w := range svc.Last().Workloads {
			if w.Name == "idle-api" && w.CPUUsageCores != nil {
				return *w.CPUUsageCores
			}
		}
		t.Fatalf("selector %s: idle-api has no CPU usage", selector)
		return 0
	}
	for _, c := range []struct {
		selector string
		want     float64
	}{{`{cluster="a"}`, 0.004}, {`{cluster="b"}`, 0.012}} {
		if got := mean(c.selector); math.Abs(got-c.want) > 1e-5 {
			t.Errorf("selector %s: idle-api mean CPU %.6f, want %.3f", c.selector, got, c.want)
		}
	}
	if _, err := exporter.New(exporter.Options{Prometheus: config.Prometheus{Selector: "cluster=a"}, Kube: kube.Clientset, Querier: prom.API}); err == nil || !strings.Contains(err.Error(), "prometheus.selector") {
		t.Errorf("a bad selector gave %v, want an error naming prometheus.selector", err)
	}
}

// startService makes and starts an exporter on real servers, stopped when
// the test ends, and returns it with a context that bounds the test's
// cycles.
func startService(t *testing.T, opts exporter.Options) (*exporter.Service, context.Context) {
	t.Helper()
	svc, err := exporter.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Shutdown)
	return svc, ctx
}

// slowQuerier delays a real Prometheus's answers to the heaviest query (the
// coverage subquery), as an overloaded Prometheus would.
type slowQuerier struct {
	next  history.Querier
	delay time.Duration
}

func (s *slowQuerier) Query(ctx context.Context, q string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	if s.delay > 0 && strings.HasPrefix(q, "count_over_time(") {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return nil, nil, nil, ctx.Err()
		}
	}
	return s.next.Query(ctx, q, ts, opts...)
}

func checkAPI(t *testing.T, svc *exporter.Service) {
	t.Helper()
	srv := httptest.NewServer(svc)
	defer srv.Close()
	tests := []struct {
		query string
		code  int
		want  []string
	}{
		{"", 200, []string{"busy-api", "ghost", "idle-api"}},
		{"?idle=true", 200, []string{"idle-api"}},
		{"?idle=false&namespace=shop", 200, []string{"busy-api", "ghost"}},
		{"?kind=StatefulSet", 200, nil},
		{"?namespace=nope", 200, nil},
		{"?idle=maybe", 400, nil},
	}
	for _, tc := range tests {
		resp, err := http.Get(srv.URL + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		var body exporter.WorkloadsResponse
		if tc.code == 200 {
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Errorf("%s: %v", tc.query, err)
			}
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s = %d, want %d", tc.query, resp.StatusCode, tc.code)
			continue
		}
		var names []string
		for _, w := range body.Workloads {
			names = append(names, w.Name)
		}
		if strings.Join(names, ",") != strings.Join(tc.want, ",") {
			t.Errorf("GET %s = %v, want %v", tc.query, names, tc.want)
		}
	}
}

// TestEmptyPrometheusMeansUnknown: a reachable Prometheus with no data for
// the cluster must not make anything idle.
func TestEmptyPrometheusMeansUnknown(t *testing.T) {
	now := time.Now().Truncate(time.Minute)
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	createCluster(t, kube.Clientset)
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{})
	svc := startedService(t, kube, prom.API, now)
	if err := svc.Cycle(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, w := range svc.Last().Workloads {
		if w.Idle.State != "unknown" {
			t.Errorf("%s: state %s with no data, want unknown", w.Name, w.Idle.State)
		}
	}
}

// warningQuerier adds a warning to every answer, as a query frontend does
// when some of its stores did not answer.
type warningQuerier struct{ next history.Querier }

func (w warningQuerier) Query(ctx context.Context, q string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	v, warnings, infos, err := w.next.Query(ctx, q, ts, opts...)
	return v, append(warnings, "partial response: store gateway unavailable"), infos, err
}

// TestWarnedAnswersAreNotWhole: answers a real Prometheus gives with a
// warning (a partial response) are failures: the cycle serves nothing it
// read from them (the last results, or none, stay).
func TestWarnedAnswersAreNotWhole(t *testing.T) {
	now := time.Now().Truncate(time.Minute)
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	createCluster(t, kube.Clientset)
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{})
	for _, tc := range []struct {
		name    string
		querier history.Querier
		warned  bool
	}{{"whole", prom.API, false}, {"warned", warningQuerier{prom.API}, true}} {
		t.Run(tc.name, func(t *testing.T) {
			svc := startedService(t, kube, tc.querier, now)
			err := svc.Cycle(context.Background())
			if tc.warned != (err != nil && strings.Contains(err.Error(), "partial answer")) || tc.warned != (svc.Last() == nil) {
				t.Errorf("cycle error %v, results %v; want the cycle to fail on the partial answers and serve nothing: %v", err, svc.Last() != nil, tc.warned)
			}
		})
	}
}

// startedService is an exporter on the cluster and querier, its
// informers synced, shut down when the test ends.
func startedService(t *testing.T, kube *testenv.Kube, q history.Querier, now time.Time) *exporter.Service {
	t.Helper()
	cfg := exporterConfig()
	svc, err := exporter.New(exporter.Options{Exporter: cfg.Exporter, Prometheus: cfg.Prometheus, Kube: kube.Clientset, Querier: q, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Shutdown)
	return svc
}

func gaugeOf(t *testing.T, reg *prometheus.Registry, name, label, value string) prometheus.Collector {
	t.Helper()
	for _, m := range gathered(t, reg, name) {
		if labelsOf(m)[label] == value {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
			g.Set(m.GetGauge().GetValue())
			return g
		}
	}
	t.Fatalf("%s{%s=%q} not found", name, label, value)
	return nil
}

func writeGolden(t *testing.T, reg *prometheus.Registry, path string, names []string) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	var b strings.Builder
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if keep[mf.GetName()] {
			if err := enc.Encode(mf); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// promtoolCheck lints the whole exposition as users' CI would.
func promtoolCheck(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	doc, err := os.ReadFile(filepath.Join("..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.Contains(string(doc), "`"+mf.GetName()+"`") {
			t.Errorf("%s is not documented in docs/metrics.md", mf.GetName())
		}
	}
}
