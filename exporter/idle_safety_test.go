package exporter

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/idle"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/recommend"
	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/series"
	"github.com/upid-dev/upid/internal/testenv"
)

// TestIdleRequestSeriesCoverLittleOfWindow: the app's request counter has been
// scraped for the last 6 hours only (a ServiceMonitor just added, or a scrape
// broken for 7 days by a NetworkPolicy and fixed); CPU history covers the
// whole week. 6 quiet hours (probes only) are 3.6 % of the window: the week's
// real traffic is unknown, so the verdict must not be idle at the confidence
// automation acts on (>= 0.8).
func TestIdleRequestSeriesCoverLittleOfWindow(t *testing.T) {
	window := 7 * 24 * time.Hour
	now := time.Now().Truncate(time.Minute)
	to := now.Add(-time.Minute)
	from := to.Add(-window - time.Hour)
	scraped := to.Add(-6 * time.Hour)
	pod := series.PodRef{Namespace: "shop", Pod: "orders-7d9f-a", Container: "app", Node: "n1"}
	ones := series.Generate(from, to, time.Minute, series.Const(1))
	ss := []series.Series{
		series.KubePodOwner(pod, series.OwnerRef{Kind: "ReplicaSet", Name: "orders-7d9f"}, ones),
		series.KubeReplicaSetOwner("shop", "orders-7d9f", series.OwnerRef{Kind: "Deployment", Name: "orders"}, ones),
		series.KubePodStatusPhase(pod, "Running", ones),
		series.ContainerCPUUsageSeconds(pod, series.GenerateCounter(from, to, time.Minute, series.Const(0.002))),
		series.ContainerNetworkReceiveBytes(pod, series.GenerateCounter(from, to, time.Minute, series.Const(300))),
		// Only the kubelet's liveness probe (every 10 s) in the 6 hours seen.
		series.HTTPRequestsTotal(map[string]string{"namespace": "shop", "pod": pod.Pod, "path": "/healthz", "code": "200"},
			series.GenerateCounter(scraped, to, 15*time.Second, series.Const(0.1))),
	}
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{Series: ss})
	params := history.Params{Window: window, Step: 5 * time.Minute, RateWindow: 5 * time.Minute, Sources: config.Default().Exporter.RequestSources}
	hist, err := history.Fetch(context.Background(), prom.API, now, history.Options{Params: params, Timeout: time.Minute, Concurrency: 2})
	if err != nil || len(hist.Errors) > 0 {
		t.Fatal(err, hist.Errors)
	}
	a := &analyzer{window: window, recWindow: 14 * 24 * time.Hour, params: idle.DefaultParams(),
		matchers: matchers{paths: []string{"/healthz"}}, policy: recommend.DefaultPolicy()}
	inv := inventory.Snapshot{Workloads: []inventory.Workload{{ID: inventory.ID{Namespace: "shop", Kind: "Deployment", Name: "orders"}, Replicas: 1, Pods: 1,
		Probes: []inventory.Probe{{Container: "app", Type: "Liveness", Period: 10 * time.Second, Path: "/healthz"}}}}}
	v := a.analyze(inv, hist, now).Workloads[0].Idle
	t.Logf("verdict %s score %.3f confidence %.3f reasons %v", v.State, v.Score, v.Confidence, v.Reasons)
	if v.State == "idle" && v.Confidence >= 0.8 {
		t.Errorf("idle at confidence %.2f on 6 h of request data out of 7 d: the alert fires and the scaler sleeps it", v.Confidence)
	}
	if slices.Contains(v.Reasons, idle.ReasonHealthTrafficOnly) || v.Since != nil {
		t.Errorf("6 h of probes claimed as the week's traffic: reasons %v, since %v", v.Reasons, v.Since)
	}
}

// TestIdleInvisibleWork: a Spring Boot Kafka consumer (2 replicas, no
// Service) whose only HTTP endpoints are actuator health and prometheus. It
// processes ~80 messages an hour, which no request source can see; a JVM
// consumer at that rate stays under the CPU floor (2 x 5 m + probes, x2).
// Its request series hold only health checks, which prove nothing of its
// work: not idle at the confidence automation acts on. The same figures
// behind a Service are the health-check illusion UPID is for: a web service
// that only probes reach, idle at full confidence.
func TestIdleInvisibleWork(t *testing.T) {
	window := 7 * 24 * time.Hour
	src := config.Default().Exporter.RequestSources
	params := history.Params{Window: window, Step: 5 * time.Minute, RateWindow: 5 * time.Minute, Sources: src}
	wl := model.Metric{"namespace": "orders", "workload": "payment-consumer", "kind": "Deployment"}
	uri := func(p string) model.Metric { m := wl.Clone(); m["uri"] = model.LabelValue(p); return m }
	secs := window.Seconds()
	vals := map[string]model.Vector{
		"cpu_usage_seconds":     {{Metric: wl, Value: model.SampleValue(0.012 * secs)}}, // 6 m a pod on average
		"cpu_pod_p95_cores":     {{Metric: wl, Value: 0.009}},                           // p95 9 m a pod
		"coverage":              {{Metric: wl, Value: 1}},
		"network_receive_bytes": {{Metric: wl, Value: model.SampleValue(800 * secs)}}, // fetches, heartbeats, messages
		"replicas":              {{Metric: wl, Value: 2}},
		"requests_http_server_requests_seconds_count": {
			{Metric: uri("/actuator/health/{*path}"), Value: model.SampleValue(2 * 2 * secs / 10)}, // liveness+readiness
			{Metric: uri("/actuator/prometheus"), Value: model.SampleValue(2 * secs / 30)},
		},
		"request_coverage_http_server_requests_seconds_count": {{Metric: wl, Value: 1}},
	}
	at := time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)
	hist := fetchAnswers(t, params, vals, at)
	agents, probs := config.Default().Exporter.CheckHealthMatchers()
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	m := matchers{paths: config.Default().Exporter.HealthPaths, agents: agents}
	a := &analyzer{window: window, recWindow: 14 * 24 * time.Hour, params: idle.DefaultParams(), matchers: m, policy: recommend.DefaultPolicy()}
	id := inventory.ID{Namespace: "orders", Kind: "Deployment", Name: "payment-consumer"}
	for _, tc := range []struct {
		name      string
		selects   map[[2]string][]inventory.ID
		confident bool
	}{
		{name: "no Service"},
		{name: "no Service, another selected", selects: map[[2]string][]inventory.ID{{"orders", "api"}: {{Namespace: "orders", Kind: "Deployment", Name: "api"}}}},
		{name: "behind a Service", selects: map[[2]string][]inventory.ID{{"orders", "payment"}: {id}}, confident: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := inventory.Snapshot{Selects: tc.selects, Workloads: []inventory.Workload{{ID: id, Replicas: 2, Pods: 2,
				Probes: []inventory.Probe{
					{Container: "app", Type: "Liveness", Period: 10 * time.Second, Path: "/actuator/health/liveness"},
					{Container: "app", Type: "Readiness", Period: 10 * time.Second, Path: "/actuator/health/readiness"},
				}}}}
			v := a.analyze(inv, hist, at).Workloads[0].Idle
			t.Logf("verdict %s score %.3f confidence %.3f reasons %v", v.State, v.Score, v.Confidence, v.Reasons)
			if confident := v.State == "idle" && v.Confidence >= 0.8; confident != tc.confident {
				t.Errorf("idle at confidence >= 0.8: %v, want %v", confident, tc.confident)
			}
			if noService := slices.Contains(v.Reasons, idle.ReasonNoService); noService == tc.confident {
				t.Errorf("reasons %v: no_service %v, want %v", v.Reasons, noService, !tc.confident)
			}
		})
	}
}

// TestIdlePrometheusAgentIsNotAlwaysHealth: an Alertmanager StatefulSet in
// an Istio mesh (request_user_agent added, as the default source expects).
// Its real work is the alerts Prometheus POSTs to /api/v2/alerts every
// minute (Watchdog always fires), with User-Agent Prometheus/2.x. The
// agent matcher counts every request from Prometheus as health, on any
// path, so Alertmanager is "health_traffic_only": asleep, it delivers no
// alert, including the scaler's own wake alerts.
func TestIdlePrometheusAgentIsNotAlwaysHealth(t *testing.T) {
	window := 7 * 24 * time.Hour
	params := history.Params{Window: window, Step: 5 * time.Minute, RateWindow: 5 * time.Minute, Sources: config.Default().Exporter.RequestSources}
	secs := window.Seconds()
	wl := model.Metric{"namespace": "monitoring", "workload": "alertmanager", "kind": "StatefulSet"}
	mesh := model.Metric{"destination_workload_namespace": "monitoring", "destination_workload": "alertmanager", "request_user_agent": "Prometheus/2.53.0"}
	vals := map[string]model.Vector{
		"cpu_usage_seconds":             {{Metric: wl, Value: model.SampleValue(0.003 * secs)}},
		"cpu_pod_p95_cores":             {{Metric: wl, Value: 0.004}},
		"coverage":                      {{Metric: wl, Value: 1}},
		"network_receive_bytes":         {{Metric: wl, Value: model.SampleValue(600 * secs)}},
		"replicas":                      {{Metric: wl, Value: 1}},
		"requests_istio_requests_total": {{Metric: mesh, Value: model.SampleValue(secs / 60)}}, // alert POSTs, 1 a minute
		// Scraped all week: only the user agent can make it look idle.
		"request_coverage_istio_requests_total": {{Metric: model.Metric{"destination_workload_namespace": "monitoring", "destination_workload": "alertmanager"}, Value: 1}},
	}
	at := time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)
	hist := fetchAnswers(t, params, vals, at)
	agents, _ := config.Default().Exporter.CheckHealthMatchers()
	a := &analyzer{window: window, recWindow: 14 * 24 * time.Hour, params: idle.DefaultParams(),
		matchers: matchers{paths: config.Default().Exporter.HealthPaths, agents: agents}, policy: recommend.DefaultPolicy()}
	inv := inventory.Snapshot{Workloads: []inventory.Workload{{ID: inventory.ID{Namespace: "monitoring", Kind: "StatefulSet", Name: "alertmanager"}, Replicas: 1, Pods: 1,
		Probes: []inventory.Probe{{Container: "alertmanager", Type: "Liveness", Period: 10 * time.Second, Path: "/-/healthy"}}}}}
	v := a.analyze(inv, hist, at).Workloads[0].Idle
	t.Logf("verdict %s score %.3f confidence %.3f reasons %v", v.State, v.Score, v.Confidence, v.Reasons)
	if v.State != "active" || !slices.Contains(v.Reasons, idle.ReasonRealTraffic) {
		t.Errorf("10,080 alert deliveries a week from Prometheus counted as health checks: %s at confidence %.2f, reasons %v", v.State, v.Confidence, v.Reasons)
	}
}

// fetchAnswers runs a cycle's queries against answers by query name (an
// empty vector for the others).
func fetchAnswers(t *testing.T, params history.Params, vals map[string]model.Vector, at time.Time) *history.Snapshot {
	t.Helper()
	q := exprQuerier{}
	for _, qu := range history.Queries(params) {
		q[qu.Expr] = vals[qu.Name]
		if q[qu.Expr] == nil {
			q[qu.Expr] = model.Vector{}
		}
	}
	hist, err := history.Fetch(context.Background(), q, at, history.Options{Params: params, Timeout: time.Minute, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	return hist
}
