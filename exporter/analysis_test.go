package exporter

import (
	"math"
	"regexp"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/idle"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/pricing"
)

func f(v float64) *float64 { return &v }

func TestIsHealth(t *testing.T) {
	m := matchers{
		paths:  []string{"/healthz", "/metrics"},
		agents: []*regexp.Regexp{regexp.MustCompile("^kube-probe/"), regexp.MustCompile("^ELB-HealthChecker/")},
	}
	probePaths := map[string]bool{"/status/live": true}
	tests := []struct {
		path, ua string
		want     bool
	}{
		{"/healthz", "", true},
		{"/healthz/ready", "", true}, // prefix followed by /
		{"/healthzfoo", "", false},   // not a path prefix
		{"/status/live", "", true},   // the workload's own probe path
		{"/api/orders", "", false},   // real traffic
		{"/api/orders", "kube-probe/1.37", true},
		{"/", "ELB-HealthChecker/2.0", true},
		{"/", "Mozilla/5.0", false},
		{"", "", false}, // a request with no path information counts as real
	}
	for _, tc := range tests {
		if got := m.isHealth(history.RequestCount{Path: tc.path, UserAgent: tc.ua}, probePaths); got != tc.want {
			t.Errorf("isHealth(%q, %q) = %v, want %v", tc.path, tc.ua, got, tc.want)
		}
	}
}

func node(name string, cpu, mem string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Capacity: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}}}
}

// TestAnalyzeCostsAndVerdicts checks the dollars against hand computation at
// the built-in rates: $0.031611 per core-hour and $0.004237 per GiB-hour.
func TestAnalyzeCostsAndVerdicts(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	window := 24 * time.Hour
	secs := window.Seconds()
	probes := []inventory.Probe{{Type: "Liveness", Handler: "http", Path: "/healthz", Period: 10 * time.Second}}
	inv := inventory.Snapshot{
		Workloads: []inventory.Workload{
			{ID: inventory.ID{Namespace: "shop", Kind: "Deployment", Name: "idle-api"}, Replicas: 2, Pods: 2, Probes: probes,
				Requests: []inventory.NodeRequests{{Node: "n1", CPU: 0.5, Memory: 0.5 * (1 << 30)}}},
			// On a node the inventory has not seen, or none yet: priced at the defaults.
			{ID: inventory.ID{Namespace: "shop", Kind: "Deployment", Name: "busy-api"}, Replicas: 1, Pods: 1, Probes: probes,
				Requests: []inventory.NodeRequests{{Node: "", CPU: 0.5, Memory: 0.5 * (1 << 30)}, {Node: "n1", CPU: 0.5, Memory: 0.5 * (1 << 30)}}},
			{ID: inventory.ID{Namespace: "shop", Kind: "Deployment", Name: "ghost"}, Replicas: 1, Pods: 1,
				Containers: []inventory.Container{{Name: "app", CPURequest: 2, MemoryRequest: 4 << 30}},
				Requests:   []inventory.NodeRequests{{Node: "", CPU: 2, Memory: 4 << 30}}},
			{ID: inventory.ID{Namespace: "mesh", Kind: "Deployment", Name: "reviews"}, Replicas: 1, Pods: 1},
		},
		Nodes: []*corev1.Node{node("n1", "4", "16Gi")},
	}
	hist := &history.Snapshot{At: at, Workloads: map[history.Key]*history.Workload{
		{Namespace: "shop", Kind: "Deployment", Workload: "idle-api"}: {
			CPUSeconds: f(0.004 * secs), CPUPodP95Cores: f(0.002), Coverage: f(1), NetworkRxBytes: f(1200 * secs),
			Probes: f(0.2 * secs), Replicas: f(2),
			Requests:        []history.RequestCount{{Source: "http_requests_total", Path: "/healthz", Count: 0.2 * secs}},
			ContainerCPU:    map[string]*history.Usage{"app": {P95: f(0.002)}},
			ContainerMemory: map[string]*history.Usage{"app": {P95: f(50 << 20)}},
		},
		{Namespace: "shop", Kind: "Deployment", Workload: "busy-api"}: {
			CPUSeconds: f(0.3 * secs), CPUPodP95Cores: f(0.3), Coverage: f(1), NetworkRxBytes: f(50000 * secs),
			Probes: f(0.1 * secs), Replicas: f(1),
			Requests: []history.RequestCount{
				{Source: "http_requests_total", Path: "/healthz", Count: 0.1 * secs},
				{Source: "http_requests_total", Path: "/api/orders", Count: 5 * secs},
			},
			ContainerCPU:    map[string]*history.Usage{"app": {P95: f(0.3)}},
			ContainerMemory: map[string]*history.Usage{"app": {P95: f(300 << 20)}},
		},
		// istio names the workload but not its kind.
		{Namespace: "mesh", Kind: "", Workload: "reviews"}: {
			Requests: []history.RequestCount{{Source: "istio_requests_total", Count: 3 * secs}},
		},
	}}
	a := &analyzer{window: window, recWindow: window, params: idle.DefaultParams(), matchers: matchers{paths: []string{"/healthz"}}}
	res := a.analyze(inv, hist, at)
	got := map[string]WorkloadResult{}
	for _, w := range res.Workloads {
		got[w.Name] = w
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %.12g, want %.12g", name, got, want)
		}
	}

	idleAPI := got["idle-api"]
	if idleAPI.Idle.State != "idle" || idleAPI.Idle.Confidence < 0.8 {
		t.Errorf("idle-api: %+v, want idle with confidence ≥ 0.8", idleAPI.Idle)
	}
	// 0.5 cores × 0.031611 + 0.5 GiB × 0.004237 = 0.0158055 + 0.0021185.
	near("idle-api cost", idleAPI.Cost.Total, 0.017924)
	near("idle-api idle cost", idleAPI.IdleCostPerHr, 0.017924)
	// (0.5 − 0.002 × 2 pods) × 0.031611 = 0.015679056.
	near("idle-api cpu waste", *idleAPI.Waste.CPU, 0.015679056)
	// (512 MiB − 50 MiB × 2) = 412 MiB = 0.40234375 GiB × 0.004237.
	near("idle-api memory waste", *idleAPI.Waste.Memory, 0.40234375*0.004237)
	near("idle-api health rps", idleAPI.Idle.HealthRequestsPerSecond, 0.2)

	busy := got["busy-api"]
	if busy.Idle.State != "active" || busy.IdleCostPerHr != 0 {
		t.Errorf("busy-api: %+v, want active with no idle cost", busy.Idle)
	}
	near("busy-api real rps", busy.Idle.RealRequestsPerSecond, 5)
	near("busy-api requested cpu", busy.RequestedCPUCores, 1)
	near("busy-api cost", busy.Cost.Total, 2*0.017924)
	// (1 − 0.3) cores × 0.031611.
	near("busy-api cpu waste", *busy.Waste.CPU, 0.7*0.031611)

	ghost := got["ghost"]
	if ghost.Idle.State != "unknown" || ghost.IdleCostPerHr != 0 || ghost.Waste.CPU != nil || ghost.CPUUsageCores != nil {
		t.Errorf("ghost (no data): %+v, want unknown with no idle cost and unknown waste", ghost)
	}
	// Without kube-state-metrics the template requests are priced: 2 × 0.031611 + 4 × 0.004237.
	near("ghost cost", ghost.Cost.Total, 2*0.031611+4*0.004237)

	if r := got["reviews"]; !r.Idle.HasRequestMetrics || math.Abs(r.Idle.RealRequestsPerSecond-3) > 1e-9 {
		t.Errorf("reviews: mesh requests named by workload only were not attached: %+v", r.Idle)
	}
	if len(res.Nodes) != 1 || res.Nodes[0].Price.Source != pricing.SourceDefault {
		t.Fatalf("nodes = %+v", res.Nodes)
	}
	// 4 × 0.031611 + 16 × 0.004237.
	near("node cost", res.Nodes[0].HourlyCost, 0.194236)
}

// TestServiceTrafficReachesSelectedWorkloads: requests an ingress controller
// counts per Service make the workloads behind that Service active.
func TestServiceTrafficReachesSelectedWorkloads(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	window := 24 * time.Hour
	secs := window.Seconds()
	quiet := func() *history.Workload {
		return &history.Workload{CPUSeconds: f(0.002 * secs), CPUPodP95Cores: f(0.002), Coverage: f(1), NetworkRxBytes: f(100 * secs), Replicas: f(1)}
	}
	inv := inventory.Snapshot{
		Workloads: []inventory.Workload{
			{ID: inventory.ID{Namespace: "shop", Kind: "Deployment", Name: "front"}, Replicas: 1, Pods: 1},
			{ID: inventory.ID{Namespace: "shop", Kind: "Deployment", Name: "back"}, Replicas: 1, Pods: 1},
		},
		Selects: map[[2]string][]inventory.ID{{"shop", "front-svc"}: {{Namespace: "shop", Kind: "Deployment", Name: "front"}}},
	}
	hist := &history.Snapshot{
		Workloads: map[history.Key]*history.Workload{
			{Namespace: "shop", Kind: "Deployment", Workload: "front"}: quiet(),
			{Namespace: "shop", Kind: "Deployment", Workload: "back"}:  quiet(),
		},
		ServiceRequests: map[[2]string][]history.RequestCount{
			{"shop", "front-svc"}: {{Source: "nginx_ingress_controller_requests", Path: "/", Count: 60 * 24}}, // one a minute
		},
	}
	a := &analyzer{window: window, recWindow: window, params: idle.DefaultParams()}
	got := map[string]WorkloadResult{}
	for _, w := range a.analyze(inv, hist, at).Workloads {
		got[w.Name] = w
	}
	if s := got["front"].Idle.State; s != "active" {
		t.Errorf("front, behind a Service with a request a minute: %s, want active", s)
	}
	if s := got["back"].Idle; s.State != "idle" || s.HasRequestMetrics {
		t.Errorf("back, no traffic and no request metrics: %+v, want idle (low confidence)", s)
	}
}
