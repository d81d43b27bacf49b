package exporter

import (
	"testing"
	"time"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/idle"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/recommend"
)

// Probes on "/" (liveness + readiness every 10 s) share the path with real
// traffic. Without the kubelet's prober_probe_total, the probes' allowance
// is replicas × window ÷ period, with replicas averaged over the time pods
// ran: pods that ran 90 % of the week were granted a whole week of probes,
// and 12,096 real requests to "/" (1.2 a minute) became health, idle with
// confidence 0.81, above the scaler's 0.8 (found in review). The probes ran
// for the covered 90 %.
func TestProbeAllowanceCoversTheTimePodsRan(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	window := 7 * 24 * time.Hour
	secs := window.Seconds()
	id := inventory.ID{Namespace: "shop", Kind: "Deployment", Name: "web"}
	inv := inventory.Snapshot{Namespaces: []inventory.Namespace{{Name: "shop"}},
		Selects: map[[2]string][]inventory.ID{{"shop", "web"}: {id}},
		Workloads: []inventory.Workload{{ID: id, Replicas: 1, Pods: 1,
			Containers: []inventory.Container{{Name: "app", CPURequest: 1, MemoryRequest: 1 << 30}},
			Probes: []inventory.Probe{
				{Container: "app", Type: "Liveness", Handler: "http", Path: "/", Period: 10 * time.Second},
				{Container: "app", Type: "Readiness", Handler: "http", Path: "/", Period: 10 * time.Second},
			},
			Requests: []inventory.NodeRequests{{CPU: 1, Memory: 1 << 30}}}}}
	ran := 0.9
	probes := 2 * 0.1 * ran * secs // what the kubelet really sent
	real := 12096.0
	cov, reps := ran, 1.0
	cpu, p95, rx := 0.003*ran*secs, 0.004, 500*secs
	hist := &history.Snapshot{Workloads: map[history.Key]*history.Workload{{Namespace: "shop", Kind: "Deployment", Workload: "web"}: {
		Coverage: &cov, Replicas: &reps, CPUSeconds: &cpu, CPUPodP95Cores: &p95, NetworkRxBytes: &rx,
		RequestCoverage: &cov,
		Requests:        []history.RequestCount{{Source: "http_requests_total", Path: "/", Count: probes + real}},
	}}}
	a := &analyzer{window: window, recWindow: 14 * 24 * time.Hour, params: idle.DefaultParams(), policy: recommend.DefaultPolicy(),
		matchers: matchers{paths: []string{"/healthz", "/metrics"}}}
	res := a.analyze(inv, hist, at)
	v := res.Workloads[0].Idle
	t.Logf("state %s score %.3f confidence %.3f real/s %.5f health/s %.4f reasons %v", v.State, v.Score, v.Confidence, v.RealRequestsPerSecond, v.HealthRequestsPerSecond, v.Reasons)
	if v.State == "idle" {
		t.Errorf("%.0f real requests to / (%.1f a minute) on top of %.0f probes: idle with confidence %.3f", real, real/(ran*secs/60), probes, v.Confidence)
	}
}
