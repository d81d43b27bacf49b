package series

import (
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestOpenMetricsGolden(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	tests := []struct {
		name   string
		series []Series
		want   string
	}{
		{
			name: "empty",
			want: "# EOF\n",
		},
		{
			name: "families grouped, labels and samples sorted, counter family without _total",
			series: []Series{
				{Name: "mem_bytes", Type: TypeGauge, Help: "Memory.", Labels: map[string]string{"pod": "a", "ns": "x"},
					Samples: []Sample{{t0.Add(time.Minute), 2}, {t0, 1.5}}},
				{Name: "reqs_total", Type: TypeCounter, Help: "Requests.",
					Samples: []Sample{{t0, 0}, {t0.Add(time.Minute), 1e6}}},
				{Name: "mem_bytes", Type: TypeGauge, Help: "Memory.", Labels: map[string]string{"pod": "b", "ns": "x"},
					Samples: []Sample{{t0, 3}}},
			},
			want: `# HELP mem_bytes Memory.
# TYPE mem_bytes gauge
mem_bytes{ns="x",pod="a"} 1.5 1700000000
mem_bytes{ns="x",pod="a"} 2 1700000060
mem_bytes{ns="x",pod="b"} 3 1700000000
# HELP reqs Requests.
# TYPE reqs counter
reqs_total 0 1700000000
reqs_total 1e+06 1700000060
# EOF
`,
		},
		{
			name: "escaping, special values, sub-second timestamps, no help",
			series: []Series{
				{Name: "odd", Type: TypeGauge, Labels: map[string]string{"path": "/a\"b\\c\nd", "empty": ""},
					Samples: []Sample{
						{t0, math.NaN()},
						{t0.Add(500 * time.Millisecond), math.Inf(1)},
						{t0.Add(1123 * time.Millisecond), math.Inf(-1)},
						{t0.Add(2 * time.Second), -0.25},
					}},
				{Name: "helped", Type: TypeGauge, Help: "Say \"hi\"\\\nbye", Samples: []Sample{{t0, 1}}},
			},
			want: `# TYPE odd gauge
odd{empty="",path="/a\"b\\c\nd"} NaN 1700000000
odd{empty="",path="/a\"b\\c\nd"} +Inf 1700000000.5
odd{empty="",path="/a\"b\\c\nd"} -Inf 1700000001.123
odd{empty="",path="/a\"b\\c\nd"} -0.25 1700000002
# HELP helped Say \"hi\"\\\nbye
# TYPE helped gauge
helped 1 1700000000
# EOF
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteOpenMetrics(&b, tc.series); err != nil {
				t.Fatalf("WriteOpenMetrics: %v", err)
			}
			if b.String() != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestOpenMetricsRejectsWhatPromtoolWouldMisread(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	one := []Sample{{t0, 1}}
	tests := []struct {
		name    string
		series  []Series
		wantErr string
	}{
		{"counter without _total", []Series{{Name: "reqs", Type: TypeCounter, Samples: one}}, "must end in _total"},
		{"bare _total counter", []Series{{Name: "_total", Type: TypeCounter, Samples: one}}, "must end in _total"},
		{"unknown type", []Series{{Name: "x", Type: "histogram", Samples: one}}, "type \"histogram\""},
		{"invalid metric name", []Series{{Name: "1x", Type: TypeGauge, Samples: one}}, "invalid metric name"},
		{"invalid label name", []Series{{Name: "x", Type: TypeGauge, Labels: map[string]string{"a-b": "1"}, Samples: one}}, "invalid label name"},
		{"reserved label name", []Series{{Name: "x", Type: TypeGauge, Labels: map[string]string{"__name__": "y"}, Samples: one}}, "invalid label name"},
		{"two samples at one time", []Series{{Name: "x", Type: TypeGauge, Samples: []Sample{{t0, 1}, {t0, 2}}}}, "two samples"},
		{"duplicate series", []Series{
			{Name: "x", Type: TypeGauge, Labels: map[string]string{"a": "1"}, Samples: one},
			{Name: "x", Type: TypeGauge, Labels: map[string]string{"a": "1"}, Samples: []Sample{{t0.Add(time.Second), 1}}},
		}, "duplicate series"},
		{"family help conflict", []Series{
			{Name: "x", Type: TypeGauge, Help: "a", Samples: one},
			{Name: "x", Type: TypeGauge, Help: "b", Labels: map[string]string{"a": "1"}, Samples: one},
		}, "disagree"},
		{"counter and gauge in one family", []Series{
			{Name: "x_total", Type: TypeCounter, Samples: one},
			{Name: "x", Type: TypeGauge, Samples: one},
		}, "disagree"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteOpenMetrics(&strings.Builder{}, tc.series)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("WriteOpenMetrics error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestSeriesGenerate(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(10 * time.Minute)

	g := Generate(start, end, time.Minute, func(t time.Time) float64 { return float64(t.Minute()) })
	if len(g) != 11 || !g[0].T.Equal(start) || !g[10].T.Equal(end) || g[10].V != 10 {
		t.Errorf("Generate: got %d samples %v .. %v, want 11 from %v to %v with last value 10", len(g), g[0], g[len(g)-1], start, end)
	}
	if n := len(Generate(start, end.Add(-time.Second), time.Minute, Const(1))); n != 10 {
		t.Errorf("Generate with end off-grid: got %d samples, want 10", n)
	}

	// The rate changes after five minutes; the counter must integrate it exactly.
	c := GenerateCounter(start, end, time.Minute, func(t time.Time) float64 {
		if t.Sub(start) <= 5*time.Minute {
			return 0.5
		}
		return 2
	})
	want := []float64{0, 30, 60, 90, 120, 150, 270, 390, 510, 630, 750}
	for i, s := range c {
		if s.V != want[i] {
			t.Errorf("GenerateCounter sample %d = %v, want %v", i, s.V, want[i])
		}
		if i > 0 && s.V < c[i-1].V {
			t.Errorf("GenerateCounter not monotonic at %d", i)
		}
	}

	defer func() {
		if recover() == nil {
			t.Error("GenerateCounter accepted a negative rate")
		}
	}()
	GenerateCounter(start, end, time.Minute, Const(-1))
}

// seriesRealPod is the deployment pod whose cAdvisor and kube-state-metrics series are in testdata.
var seriesRealPod = PodRef{
	Namespace:     "scraper",
	Pod:           "e2e-deployment-79967c5968-zjslc",
	Container:     "compute-pi-digits",
	Node:          "datagen-1-35",
	UID:           "4aa017de-86c6-41cd-b4ad-21b66575685c",
	ContainerID:   "5d8fb4b3db861f571c6a1a9de6bf86cbe14cbcfc95f01566608c8e4e791eaf41",
	SandboxID:     "731f82ea2a7e4d3f66190f2986cbe844b438838e571d79b8997c85a55745d338",
	Image:         "docker.io/library/perl:5.34.0",
	QOSClass:      "Burstable",
	PodIP:         "10.244.0.9",
	HostIP:        "192.168.67.2",
	PriorityClass: "system-node-critical",
}

func seriesParseExposition(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	return mfs
}

// TestSeriesLabelsMatchRealExporters compares each builder's output with a real scrape, so a
// misspelt label or a missing one (which would make product queries silently match nothing
// against real clusters) fails here.
func TestSeriesLabelsMatchRealExporters(t *testing.T) {
	cadvisor := seriesParseExposition(t, "testdata/cadvisor_excerpt.prom.txt")
	ksm := seriesParseExposition(t, "testdata/ksm_excerpt.prom.txt")
	probes := seriesParseExposition(t, "testdata/kubelet_probes_excerpt.prom.txt")

	noOwnerPod := PodRef{Namespace: "kube-system", Pod: "storage-provisioner", Node: "datagen-1-35",
		UID: "081d040e-c94b-41ea-8278-eb12903ddd99", HostIP: "192.168.67.2", HostNetwork: true}
	terminated := PodRef{Namespace: "scraper", Pod: "e2e-container-creating", Container: "alpine",
		UID: "567cc614-001a-402b-99fd-3d1f8db83f30"}
	calico := PodRef{Namespace: "kube-system", Pod: "calico-node-9qkw7", Container: "calico-node",
		UID: "6daeeb11-1f06-4d07-ac39-7df7aad8ae86"}
	rs := OwnerRef{Kind: "ReplicaSet", Name: "e2e-deployment-79967c5968"}
	cronPod := PodRef{Namespace: "scraper", Pod: "e2e-cronjob-29707813-dhlr2", UID: "8c27e2aa-e3ee-406d-b45e-432476d5dc13"}

	tests := []struct {
		name   string
		got    Series
		source map[string]*dto.MetricFamily
		match  map[string]string // picks the real series to compare with
	}{
		{"cpu usage", ContainerCPUUsageSeconds(seriesRealPod, nil), cadvisor, map[string]string{"container": "compute-pi-digits"}},
		{"memory working set", ContainerMemoryWorkingSet(seriesRealPod, nil), cadvisor, map[string]string{"container": "compute-pi-digits"}},
		{"network receive", ContainerNetworkReceiveBytes(seriesRealPod, nil), cadvisor, map[string]string{"interface": "eth0"}},
		{"cfs throttled", ContainerCPUCFSThrottledPeriods(seriesRealPod, nil), cadvisor, map[string]string{"container": "compute-pi-digits"}},
		{"oom events", ContainerOOMEvents(seriesRealPod, nil), cadvisor, map[string]string{"container": "compute-pi-digits"}},
		{"cpu request", KubePodContainerResourceRequests(seriesRealPod, "cpu", nil), ksm, map[string]string{"resource": "cpu"}},
		{"memory request", KubePodContainerResourceRequests(seriesRealPod, "memory", nil), ksm, map[string]string{"resource": "memory"}},
		{"cpu limit", KubePodContainerResourceLimits(seriesRealPod, "cpu", nil), ksm, map[string]string{"resource": "cpu"}},
		{"memory limit", KubePodContainerResourceLimits(seriesRealPod, "memory", nil), ksm, map[string]string{"resource": "memory"}},
		{"pod owner", KubePodOwner(seriesRealPod, rs, nil), ksm, map[string]string{"pod": seriesRealPod.Pod}},
		{"pod without owner", KubePodOwner(noOwnerPod, OwnerRef{}, nil), ksm, map[string]string{"pod": noOwnerPod.Pod}},
		{"replicaset owner", KubeReplicaSetOwner("scraper", rs.Name, OwnerRef{Kind: "Deployment", Name: "e2e-deployment"}, nil), ksm, map[string]string{}},
		{"pod info", KubePodInfo(seriesRealPod, rs, nil), ksm, map[string]string{"pod": seriesRealPod.Pod}},
		{"host-network pod info", KubePodInfo(noOwnerPod, OwnerRef{}, nil), ksm, map[string]string{"pod": noOwnerPod.Pod}},
		{"node info", KubeNodeInfo(NodeRef{Name: "datagen-1-35", InternalIP: "192.168.67.2", SystemUUID: "e366bd4b77b9d6be2d67552f69964f40"}, nil), ksm, map[string]string{}},
		{"last terminated reason", KubePodContainerStatusLastTerminatedReason(terminated, "Completed", nil), ksm, map[string]string{}},
		{"probe", ProberProbeTotal(calico, "Readiness", "failed", nil), probes, map[string]string{"probe_type": "Readiness", "result": "failed"}},
		{"job owner", KubeJobOwner("scraper", "e2e-cronjob-29707813", OwnerRef{Kind: "CronJob", Name: "e2e-cronjob"}, nil), ksm, map[string]string{"job_name": "e2e-cronjob-29707813"}},
		{"job without owner", KubeJobOwner("scraper", "e2e-failjob", OwnerRef{}, nil), ksm, map[string]string{"job_name": "e2e-failjob"}},
		{"pod phase", KubePodStatusPhase(seriesRealPod, "Running", nil), ksm, map[string]string{"pod": seriesRealPod.Pod, "phase": "Running"}},
		{"job pod phase", KubePodStatusPhase(cronPod, "Succeeded", nil), ksm, map[string]string{"pod": cronPod.Pod, "phase": "Succeeded"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mf := tc.source[tc.got.Name]
			if mf == nil {
				t.Fatalf("metric %q is not in the real scrape", tc.got.Name)
			}
			if mf.GetHelp() != tc.got.Help {
				t.Errorf("help = %q, real exporter says %q", tc.got.Help, mf.GetHelp())
			}
			if wantType := strings.ToLower(mf.GetType().String()); wantType != tc.got.Type {
				t.Errorf("type = %q, real exporter says %q", tc.got.Type, wantType)
			}
			var real []map[string]string
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, lp := range m.GetLabel() {
					labels[lp.GetName()] = lp.GetValue()
				}
				matches := true
				for k, v := range tc.match {
					matches = matches && labels[k] == v
				}
				if matches {
					real = append(real, labels)
				}
			}
			if len(real) != 1 {
				t.Fatalf("selector %v matches %d real series, want 1", tc.match, len(real))
			}
			if !maps.Equal(tc.got.Labels, real[0]) {
				t.Errorf("labels differ from the real exporter\n got: %v\nreal: %v", tc.got.Labels, real[0])
			}
		})
	}
}

// TestSeriesDerivedIdentitiesJoin checks that series built from the same minimal PodRef agree
// on the identifiers that PromQL joins use, as in a real cluster.
func TestSeriesDerivedIdentitiesJoin(t *testing.T) {
	ref := PodRef{Namespace: "shop", Pod: "web-1", Container: "web", Node: "node-a"}
	cpu := ContainerCPUUsageSeconds(ref, nil).Labels
	net := ContainerNetworkReceiveBytes(ref, nil).Labels
	owner := KubePodOwner(ref, OwnerRef{Kind: "ReplicaSet", Name: "web"}, nil).Labels
	info := KubePodInfo(ref, OwnerRef{Kind: "ReplicaSet", Name: "web"}, nil).Labels
	node := KubeNodeInfo(NodeRef{Name: "node-a"}, nil).Labels
	probe := ProberProbeTotal(ref, "Liveness", "successful", nil).Labels

	uid := owner["uid"]
	if len(uid) != 36 || strings.Count(uid, "-") != 4 {
		t.Errorf("derived uid %q does not look like a UUID", uid)
	}
	if !strings.HasPrefix(cpu["id"], "/kubepods/burstable/pod"+uid+"/") || !strings.HasSuffix(cpu["id"], "/"+cpu["name"]) || len(cpu["name"]) != 64 {
		t.Errorf("cAdvisor id %q / name %q do not carry pod uid %q and a 64-digit container id", cpu["id"], cpu["name"], uid)
	}
	if !strings.HasPrefix(net["id"], "/kubepods/burstable/pod"+uid+"/") || net["name"] == cpu["name"] || net["container"] != "" {
		t.Errorf("network series should sit on the sandbox cgroup of pod %q: %v", uid, net)
	}
	if info["uid"] != uid || probe["pod_uid"] != uid {
		t.Errorf("uid differs between kube_pod_info (%q), prober_probe_total (%q) and kube_pod_owner (%q)", info["uid"], probe["pod_uid"], uid)
	}
	if info["host_ip"] == "" || info["host_ip"] != node["internal_ip"] {
		t.Errorf("pod host_ip %q differs from node internal_ip %q", info["host_ip"], node["internal_ip"])
	}
	guaranteed := ContainerCPUUsageSeconds(PodRef{Namespace: "shop", Pod: "web-1", Container: "web", QOSClass: "Guaranteed"}, nil).Labels
	if !strings.HasPrefix(guaranteed["id"], "/kubepods/pod"+uid+"/") {
		t.Errorf("guaranteed pod cgroup id = %q, want directly under /kubepods", guaranteed["id"])
	}
	gpuRes, gpuUnit := ksmResourceLabels("nvidia.com/gpu")
	if gpuRes != "nvidia_com_gpu" || gpuUnit != "integer" {
		t.Errorf("nvidia.com/gpu -> resource=%q unit=%q, want nvidia_com_gpu/integer as kube-state-metrics emits", gpuRes, gpuUnit)
	}

	orig := ContainerCPUUsageSeconds(ref, nil)
	extra := WithLabels([]Series{orig}, map[string]string{"job": "kubelet", "pod": "overridden"})
	if extra[0].Labels["job"] != "kubelet" || extra[0].Labels["pod"] != "overridden" {
		t.Errorf("WithLabels did not merge the extra labels: %v", extra[0].Labels)
	}
	if _, ok := orig.Labels["job"]; ok || orig.Labels["pod"] != "web-1" {
		t.Errorf("WithLabels modified the original series: %v", orig.Labels)
	}
}

// TestSeriesPodPhasesAsKubeStateMetrics checks that every pod has all five phase series, in
// kube-state-metrics' order, with exactly one of them 1 at each sample, as in the real scrape.
func TestSeriesPodPhasesAsKubeStateMetrics(t *testing.T) {
	ksm := seriesParseExposition(t, "testdata/ksm_excerpt.prom.txt")
	var realOrder []string
	for _, m := range ksm["kube_pod_status_phase"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "phase" && len(realOrder) < 5 {
				realOrder = append(realOrder, lp.GetValue())
			}
		}
	}
	if !slices.Equal(realOrder, PodPhases) {
		t.Errorf("PodPhases = %v, kube-state-metrics writes %v", PodPhases, realOrder)
	}

	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ref := PodRef{Namespace: "batch", Pod: "job-1-abcde"}
	phases := KubePodStatusPhases(ref, start, start.Add(4*time.Minute), time.Minute, func(t time.Time) string {
		switch m := t.Sub(start); {
		case m < time.Minute:
			return "Pending"
		case m < 3*time.Minute:
			return "Running"
		default:
			return "Succeeded"
		}
	})
	want := map[string][]float64{
		"Pending":   {1, 0, 0, 0, 0},
		"Succeeded": {0, 0, 0, 1, 1},
		"Failed":    {0, 0, 0, 0, 0},
		"Unknown":   {0, 0, 0, 0, 0},
		"Running":   {0, 1, 1, 0, 0},
	}
	if len(phases) != len(PodPhases) {
		t.Fatalf("got %d series, want %d", len(phases), len(PodPhases))
	}
	for i, s := range phases {
		p := s.Labels["phase"]
		if p != PodPhases[i] || s.Labels["uid"] != PodUID(ref) {
			t.Errorf("series %d has phase %q uid %q, want %q %q", i, p, s.Labels["uid"], PodPhases[i], PodUID(ref))
		}
		var got []float64
		for _, smp := range s.Samples {
			got = append(got, smp.V)
		}
		if !slices.Equal(got, want[p]) {
			t.Errorf("phase %s: got %v, want %v", p, got, want[p])
		}
	}

	defer func() {
		if recover() == nil {
			t.Error("KubePodStatusPhases accepted a phase kube-state-metrics cannot report")
		}
	}()
	KubePodStatusPhases(ref, start, start, time.Minute, func(time.Time) string { return "Completed" })
}

// TestSeriesOpenCostLabels checks OpenCost's node price series against the label names and
// HELP texts OpenCost registers (pkg/costmodel/metrics.go); no real scrape is in testdata.
func TestSeriesOpenCostLabels(t *testing.T) {
	n := OpenCostNode{Name: "ip-10-0-1-23.eu-west-1.compute.internal", InstanceType: "m6i.xlarge", Region: "eu-west-1",
		ProviderID: "aws:///eu-west-1a/i-0123456789abcdef0", Arch: "amd64"}
	for _, tc := range []struct {
		got  Series
		help string
	}{
		{NodeCPUHourlyCost(n, nil), "node_cpu_hourly_cost hourly cost for each cpu on this node"},
		{NodeRAMHourlyCost(n, nil), "node_ram_hourly_cost hourly cost for each gb of ram on this node"},
		{NodeGPUHourlyCost(n, nil), "node_gpu_hourly_cost hourly cost for each gpu on this node"},
	} {
		if tc.got.Help != tc.help || tc.got.Type != TypeGauge {
			t.Errorf("%s: help %q type %q, OpenCost registers %q as a gauge", tc.got.Name, tc.got.Help, tc.got.Type, tc.help)
		}
		names := slices.Sorted(maps.Keys(tc.got.Labels))
		want := []string{"arch", "instance", "instance_type", "node", "provider_id", "region", "uid"}
		if !slices.Equal(names, want) {
			t.Errorf("%s labels = %v, OpenCost writes %v", tc.got.Name, names, want)
		}
		if tc.got.Labels["node"] != n.Name || tc.got.Labels["instance"] != n.Name || tc.got.Labels["uid"] != NodeUID(n) {
			t.Errorf("%s: node/instance/uid = %v", tc.got.Name, tc.got.Labels)
		}
	}
}
