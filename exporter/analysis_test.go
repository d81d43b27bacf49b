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
		// Not /metrics: a scraper's agent makes it health anyway.
		paths:  []string{"/healthz"},
		agents: []*regexp.Regexp{regexp.MustCompile("^kube-probe/"), regexp.MustCompile("^ELB-HealthChecker/"), regexp.MustCompile("^Prometheus/")},
	}
	scrapes := map[string]bool{"/stats/prometheus": true}
	tests := []struct {
		path, ua string
		want     bool
	}{
		{"/healthz", "", true},
		{"/healthz/ready", "", true}, // prefix followed by /
		{"/healthzfoo", "", false},   // not a path prefix
		{"/api/orders", "", false},   // real traffic
		{"/api/orders", "kube-probe/1.37", true},
		{"/", "ELB-HealthChecker/2.0", true},
		{"/", "Mozilla/5.0", false},
		{"", "", false}, // a request with no path information counts as real
		// A scraper's agent is health only where it scrapes or checks:
		// Prometheus POSTs alerts to Alertmanager and remote-writes to
		// receivers, their real work.
		{"/metrics", "Prometheus/2.53.0", true},
		{"/metrics/cadvisor", "Prometheus/2.53.0", true},
		{"/stats/prometheus", "Prometheus/2.53.0", true}, // the workload's prometheus.io/path
		{"/healthz", "Prometheus/2.53.0", true},
		{"/api/v2/alerts", "Prometheus/2.53.0", false},
		{"/api/v1/write", "Prometheus/2.53.0", false},
		{"", "Prometheus/2.53.0", false}, // no path label: not known to be a scrape
		{"", "kube-probe/1.37", true},    // a probe's agent is health anywhere
	}
	for _, tc := range tests {
		if got := m.isHealth(history.RequestCount{Path: tc.path, UserAgent: tc.ua}, scrapes); got != tc.want {
			t.Errorf("isHealth(%q, %q) = %v, want %v", tc.path, tc.ua, got, tc.want)
		}
	}
}

// TestSplitTraffic checks which requests count as health checks: probe
// paths only up to the requests the probes make, and only on the pods' own
// series, which the kubelet's probes and Prometheus's scrapes reach.
func TestSplitTraffic(t *testing.T) {
	m := matchers{paths: []string{"/healthz"}, agents: []*regexp.Regexp{regexp.MustCompile("^kube-probe/")}}
	// A readiness probe on / every 10 s for a day on one replica: 8,640.
	probes := map[string]float64{"/": 8640, "/status/live": 100}
	rc := func(path string, n float64) history.RequestCount { return history.RequestCount{Path: path, Count: n} }
	for _, tc := range []struct {
		name              string
		own, viaService   []history.RequestCount
		wantTotal, health float64
	}{
		{"probe path, only probes", []history.RequestCount{rc("/", 8640)}, nil, 8640, 8640},
		{"probe path, fewer than the probes", []history.RequestCount{rc("/", 5000)}, nil, 5000, 5000},
		{"probe path shared with real traffic", []history.RequestCount{rc("/", 8640+1440)}, nil, 10080, 8640},
		{"probe path, two series", []history.RequestCount{rc("/", 6000), rc("/", 4080)}, nil, 10080, 8640},
		{"own probe path", []history.RequestCount{rc("/status/live", 100), rc("/api", 7)}, nil, 107, 100},
		{"scrape path", []history.RequestCount{rc("/stats/prometheus", 2880)}, nil, 2880, 2880},
		{"configured path whole", []history.RequestCount{rc("/healthz", 99999)}, nil, 99999, 99999},
		{"ingress on a probe path is real", nil, []history.RequestCount{rc("/", 1440)}, 1440, 0},
		{"ingress on a scrape path is real", nil, []history.RequestCount{rc("/stats/prometheus", 10)}, 10, 0},
		{"ingress on a configured path", nil, []history.RequestCount{rc("/healthz", 50), rc("/", 5)}, 55, 50},
		{"ingress from a probe agent", nil, []history.RequestCount{{Path: "/x", UserAgent: "kube-probe/1.37", Count: 3}}, 3, 3},
		{"both", []history.RequestCount{rc("/", 8640)}, []history.RequestCount{rc("/", 1440)}, 10080, 8640},
		// The probes told by their agent use up the path's allowance: the
		// browsers' requests are real (found in review: all were health).
		{"probes told by agent, browsers on the same path", []history.RequestCount{
			{Path: "/", UserAgent: "kube-probe/1.37", Count: 8640}, {Path: "/", UserAgent: "Mozilla/5.0", Count: 100000}}, nil, 108640, 8640},
		{"some probes told by agent", []history.RequestCount{
			{Path: "/", UserAgent: "kube-probe/1.37", Count: 6000}, rc("/", 2640+500)}, nil, 9140, 8640},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total, health := m.split(traffic{own: tc.own, viaService: tc.viaService, probes: probes, scrapePaths: map[string]bool{"/stats/prometheus": true}})
			if total != tc.wantTotal || health != tc.health {
				t.Errorf("split = %v total, %v health; want %v, %v", total, health, tc.wantTotal, tc.health)
			}
		})
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
		// A Service in front of idle-api: its probe-only traffic is the
		// health-check illusion, idle at full confidence.
		Selects: map[[2]string][]inventory.ID{{"shop", "idle-api"}: {{Namespace: "shop", Kind: "Deployment", Name: "idle-api"}}},
		Workloads: []inventory.Workload{
			{ID: inventory.ID{Namespace: "shop", Kind: "Deployment", Name: "idle-api"}, Replicas: 2, Pods: 2, Probes: probes,
				Containers: []inventory.Container{{Name: "app", CPURequest: 0.25, MemoryRequest: 0.25 * (1 << 30)}},
				Requests:   []inventory.NodeRequests{{Node: "n1", CPU: 0.5, Memory: 0.5 * (1 << 30)}}},
			// On a node the inventory has not seen, or none yet: priced at the defaults.
			{ID: inventory.ID{Namespace: "shop", Kind: "Deployment", Name: "busy-api"}, Replicas: 1, Pods: 1, Probes: probes,
				Containers: []inventory.Container{{Name: "app", CPURequest: 1, MemoryRequest: 1 << 30}},
				Requests:   []inventory.NodeRequests{{Node: "", CPU: 0.5, Memory: 0.5 * (1 << 30)}, {Node: "n1", CPU: 0.5, Memory: 0.5 * (1 << 30)}}},
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
			RequestCoverage: f(1),
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
			RequestCoverage: f(1),
			ContainerCPU:    map[string]*history.Usage{"app": {P95: f(0.3)}},
			ContainerMemory: map[string]*history.Usage{"app": {P95: f(300 << 20)}},
		},
		// istio names the workload but not its kind.
		{Namespace: "mesh", Kind: "", Workload: "reviews"}: {
			Requests:        []history.RequestCount{{Source: "istio_requests_total", Count: 3 * secs}},
			RequestCoverage: f(1),
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

// TestProbeOnRootKeepsRealTraffic: a readiness probe on / must not turn
// the real requests to / into health checks, whether an ingress counts them
// or the application does (found in review).
func TestProbeOnRootKeepsRealTraffic(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	window := 24 * time.Hour
	secs := window.Seconds()
	id := inventory.ID{Namespace: "shop", Kind: "Deployment", Name: "front"}
	probes := []inventory.Probe{{Container: "web", Type: "Readiness", Handler: "http", Path: "/", Period: 10 * time.Second}}
	for _, tc := range []struct {
		name      string
		own, svc  []history.RequestCount
		probes    float64 // the kubelet ran
		wantState string
	}{
		// One real request a minute through the Ingress, which the
		// kubelet's probes never take.
		{"ingress", nil, []history.RequestCount{{Source: "nginx_ingress_controller_requests", Path: "/", Count: 60 * 24}}, 8640, "active"},
		// The application counts its probes (8,640) and a request a minute.
		{"application", []history.RequestCount{{Source: "http_requests_total", Path: "/", Count: 8640 + 60*24}}, nil, 8640, "active"},
		// Only the probes: the probe path alone does not keep it alive.
		{"application, probes only", []history.RequestCount{{Source: "http_requests_total", Path: "/", Count: 8640}}, nil, 8640, "idle"},
		// The pod ran an hour of the day (replicas averages the time pods
		// ran): the kubelet ran 360 probes, and the rest is real.
		{"application, an hour of probes", []history.RequestCount{{Source: "http_requests_total", Path: "/", Count: 360 + 60*24}}, nil, 360, "active"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := inventory.Snapshot{
				Workloads: []inventory.Workload{{ID: id, Replicas: 1, Pods: 1, Probes: probes}},
				Selects:   map[[2]string][]inventory.ID{{"shop", "front-svc"}: {id}},
			}
			hist := &history.Snapshot{
				Workloads: map[history.Key]*history.Workload{
					{Namespace: "shop", Kind: "Deployment", Workload: "front"}: {
						CPUSeconds: f(0.003 * secs), CPUPodP95Cores: f(0.003), Coverage: f(1), NetworkRxBytes: f(500 * secs), Replicas: f(1),
						Probes: f(tc.probes), Requests: tc.own,
					},
				},
				ServiceRequests: map[[2]string][]history.RequestCount{{"shop", "front-svc"}: tc.svc},
			}
			a := &analyzer{window: window, recWindow: window, params: idle.DefaultParams()}
			w := a.analyze(inv, hist, at).Workloads[0]
			if w.Idle.State != tc.wantState {
				t.Errorf("state %s (score %.3f, real rps %g, health rps %g), want %s", w.Idle.State, w.Idle.Score, w.Idle.RealRequestsPerSecond, w.Idle.HealthRequestsPerSecond, tc.wantState)
			}
		})
	}
}

// TestSeenShare: only the requests of containers whose use is known can be
// waste; the rest (an injected sidecar, a LimitRange's default, a large
// init container, a container without history) is unknown (found in review:
// an istio-proxy's whole request was counted as waste).
func TestSeenShare(t *testing.T) {
	app := inventory.Container{Name: "app", CPURequest: 0.1}
	used := map[string]*history.Usage{"app": {P95: f(0.1)}, "proxy": {P95: f(0.05)}}
	cpu := func(c inventory.Container) float64 { return c.CPURequest }
	for _, tc := range []struct {
		name       string
		containers []inventory.Container
		pod        inventory.PodResources
		pods       int
		requested  float64 // by all the pods
		want       float64
	}{
		{"as the template", []inventory.Container{app}, inventory.PodResources{}, 3, 0.3, 1},
		{"a sidecar injected at admission", []inventory.Container{app}, inventory.PodResources{}, 2, 1.2, 1.0 / 6},
		{"a native sidecar of the template", []inventory.Container{app, {Name: "proxy", Init: true, Sidecar: true, CPURequest: 0.5}}, inventory.PodResources{}, 2, 1.2, 1},
		{"a container without history", []inventory.Container{app, {Name: "new", CPURequest: 0.3}}, inventory.PodResources{}, 1, 0.4, 0.25},
		{"a LimitRange default", []inventory.Container{{Name: "app"}}, inventory.PodResources{}, 1, 0.1, 0},
		{"a larger init container", []inventory.Container{{Name: "migrate", Init: true, CPURequest: 1}, app}, inventory.PodResources{}, 1, 1, 0.1},
		{"pods of an older, smaller revision", []inventory.Container{{Name: "app", CPURequest: 0.2}}, inventory.PodResources{}, 2, 0.3, 1},
		{"pod-level resources", []inventory.Container{app}, inventory.PodResources{CPURequest: 1}, 1, 1, 1},
		{"no pods", []inventory.Container{app}, inventory.PodResources{}, 0, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := inventory.Workload{Containers: tc.containers, Pod: tc.pod, Pods: tc.pods}
			if got := seenShare(w, "cpu", tc.requested, cpu, used); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("seenShare = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestInjectedSidecarIsNotWaste: pods that request 600m for a 100m
// template container, which uses all of it, waste nothing UPID can tell.
func TestInjectedSidecarIsNotWaste(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	id := inventory.ID{Namespace: "shop", Kind: "Deployment", Name: "api"}
	inv := inventory.Snapshot{Workloads: []inventory.Workload{{
		ID: id, Replicas: 1, Pods: 1,
		Containers: []inventory.Container{{Name: "app", CPURequest: 0.1, MemoryRequest: 128 << 20}},
		// app's 100m and 128 MiB, and an istio-proxy's 500m and 128 MiB.
		Requests: []inventory.NodeRequests{{CPU: 0.6, Memory: 256 << 20}},
	}}}
	hist := &history.Snapshot{At: at, Workloads: map[history.Key]*history.Workload{
		{Namespace: "shop", Kind: "Deployment", Workload: "api"}: {
			Replicas: f(1), Coverage: f(1),
			ContainerCPU:    map[string]*history.Usage{"app": {P95: f(0.1)}},
			ContainerMemory: map[string]*history.Usage{"app": {P95: f(64 << 20)}},
		},
	}}
	a := &analyzer{window: 24 * time.Hour, recWindow: 24 * time.Hour, params: idle.DefaultParams()}
	w := a.analyze(inv, hist, at).Workloads[0]
	if w.Waste.CPU == nil || *w.Waste.CPU != 0 {
		t.Errorf("CPU waste %v $/h, want 0: app uses its whole 100m, the sidecar's 500m is not known to be unused", w.Waste.CPU)
	}
	// Memory: app's 128 MiB less its 64 MiB p95 at the workload's price per byte.
	want := float64(64<<20) * w.Cost.Memory / w.RequestedMemoryBytes
	if w.Waste.Memory == nil || math.Abs(*w.Waste.Memory-want) > 1e-12 {
		t.Errorf("memory waste %v $/h, want %v: the app's unused 64 MiB only", w.Waste.Memory, want)
	}
}

// TestShardsReportNodesAndNamespacesOnce: with shards, each node and
// namespace is reported by one shard, so sums over shards count it once
// (found in review: every shard reported every node's cost).
func TestShardsReportNodesAndNamespacesOnce(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var inv inventory.Snapshot
	for _, n := range []string{"n1", "n2", "n3", "n4", "n5", "n6"} {
		inv.Nodes = append(inv.Nodes, node(n, "4", "16Gi"))
		inv.Namespaces = append(inv.Namespaces, inventory.Namespace{Name: "ns-" + n})
	}
	const shards = 2
	nodes, namespaces := map[string]int{}, map[string]int{}
	for shard := range shards {
		a := &analyzer{window: time.Hour, recWindow: time.Hour, params: idle.DefaultParams(),
			owns: func(name string) bool { return inventory.ShardOf(name, shards) == shard }}
		res := a.analyze(inv, &history.Snapshot{At: at}, at)
		for _, n := range res.Nodes {
			nodes[n.Name]++
		}
		for _, ns := range res.Namespaces {
			namespaces[ns.Name]++
		}
	}
	for _, n := range inv.Nodes {
		if nodes[n.Name] != 1 {
			t.Errorf("node %s reported by %d shards, want 1", n.Name, nodes[n.Name])
		}
	}
	for _, ns := range inv.Namespaces {
		if namespaces[ns.Name] != 1 {
			t.Errorf("namespace %s reported by %d shards, want 1", ns.Name, namespaces[ns.Name])
		}
	}
}
