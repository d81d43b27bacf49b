package exporter

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/idle"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/recommend"
	"github.com/upid-dev/upid/internal/config"
)

func ptr[T any](v T) *T { return &v }

func TestParsePolicyLayer(t *testing.T) {
	id := inventory.ID{Namespace: "shop", Kind: "Deployment", Name: "web"}
	l, problems := parsePolicyLayer(sourceWorkloadAnnotation, map[string]string{
		"upid.io/cpu-percentile":   "0.95",
		"upid.io/min-memory":       "128Mi",
		"upid.io/min-cpu":          "lots", // bad: ignored alone
		"upid.io/recommend-window": "3d",
		"upid.io/limit-policy":     "never",   // bad
		"upid.io/mode":             "enforce", // the webhook's, not a knob
	}, id)
	p := recommend.DefaultPolicy()
	keys := l.patch.Apply(&p)
	if want := []string{"cpu_percentile", "window", "min_memory"}; !equal(keys, want) {
		t.Errorf("knobs set %v, want %v", keys, want)
	}
	if p.CPUPercentile != 0.95 || p.MinMemory != 128<<20 || p.Window != 72*time.Hour || p.MinCPU != 0.01 || p.Limits != recommend.LimitRemoveCPU {
		t.Errorf("policy %+v", p)
	}
	if l.keys["min_memory"] != "workload_annotation upid.io/min-memory" {
		t.Errorf("keys %v", l.keys)
	}
	want := []policyProblem{
		{Source: sourceWorkloadAnnotation, Namespace: "shop", Kind: "Deployment", Workload: "web", Key: "upid.io/min-cpu", Value: "lots", Msg: `"lots" is not a quantity such as 50m or 0.05`, Err: true},
		{Source: sourceWorkloadAnnotation, Namespace: "shop", Kind: "Deployment", Workload: "web", Key: "upid.io/limit-policy", Value: "never", Msg: `"never" is not keep, scale or remove-cpu`, Err: true},
	}
	if len(problems) != len(want) {
		t.Fatalf("problems %+v, want %+v", problems, want)
	}
	for i := range want {
		if problems[i] != want[i] {
			t.Errorf("problem %d = %+v, want %+v", i, problems[i], want[i])
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestResolvePolicy(t *testing.T) {
	cluster := recommend.DefaultPolicy()
	cluster.CPUPercentile = 0.85 // exporter.recommend's own, not a source
	overrides, err := policyOverrides(config.Recommend{Overrides: []config.RecommendOverride{
		{Namespace: "shop", CPUPercentile: ptr(0.8), MemoryMargin: ptr(0.2)},                // 0
		{Namespace: "shop", Workload: "web", CPUPercentile: ptr(0.99)},                      // 1
		{Namespace: "shop", Kind: "StatefulSet", MinMemory: "1Gi"},                          // 2
		{Namespace: "shop", Workload: "web", Kind: "StatefulSet", CPUMargin: ptr(0.5)},      // 3
		{Namespace: "shop", CPUPercentile: ptr(0.7)},                                        // 4: later wins over 0
		{Namespace: "batch", Workload: "web", LimitPolicy: "keep", MinConfidence: ptr(0.5)}, // 5
	}})
	if err != nil {
		t.Fatal(err)
	}
	layer := func(source string, kv map[string]string) policyLayer {
		l, problems := parsePolicyLayer(source, kv, inventory.ID{})
		if len(problems) > 0 {
			t.Fatalf("%v", problems)
		}
		return l
	}
	nsLabel := layer(sourceNamespaceLabel, map[string]string{"upid.io/cpu-percentile": "0.9", "upid.io/min-cpu": "20m"})
	nsAnn := layer(sourceNamespaceAnnotation, map[string]string{"upid.io/cpu-percentile": "0.93", "upid.io/memory-margin": "0.3"})
	wlAnn := layer(sourceWorkloadAnnotation, map[string]string{"upid.io/cpu-percentile": "0.97", "upid.io/min-memory": "64Mi"})

	deploy := inventory.ID{Namespace: "shop", Kind: "Deployment", Name: "web"}
	cases := []struct {
		name    string
		id      inventory.ID
		layers  []policyLayer
		want    func(*recommend.Policy)
		sources policySources
	}{{
		name: "no override for the namespace: the cluster's",
		id:   inventory.ID{Namespace: "other", Kind: "Deployment", Name: "web"},
	}, {
		name:    "namespace overrides, later entries winning",
		id:      inventory.ID{Namespace: "shop", Kind: "Deployment", Name: "api"},
		want:    func(p *recommend.Policy) { p.CPUPercentile, p.MemoryMargin = 0.7, 0.2 },
		sources: policySources{"cpu_percentile": "exporter.recommend.overrides[4]", "memory_margin": "exporter.recommend.overrides[0]"},
	}, {
		name:    "a workload override beats the namespace's, kind narrows",
		id:      deploy,
		want:    func(p *recommend.Policy) { p.CPUPercentile, p.MemoryMargin = 0.99, 0.2 },
		sources: policySources{"cpu_percentile": "exporter.recommend.overrides[1]", "memory_margin": "exporter.recommend.overrides[0]"},
	}, {
		name: "kind-scoped entries match only that kind",
		id:   inventory.ID{Namespace: "shop", Kind: "StatefulSet", Name: "web"},
		want: func(p *recommend.Policy) {
			p.CPUPercentile, p.MemoryMargin, p.MinMemory, p.CPUMargin = 0.99, 0.2, 1<<30, 0.5
		},
		sources: policySources{
			"cpu_percentile": "exporter.recommend.overrides[1]", "memory_margin": "exporter.recommend.overrides[0]",
			"min_memory": "exporter.recommend.overrides[2]", "cpu_margin": "exporter.recommend.overrides[3]",
		},
	}, {
		name: "a workload override of another namespace does not apply",
		id:   inventory.ID{Namespace: "batch", Kind: "Job", Name: "other"},
	}, {
		name:   "namespace label beats config overrides",
		id:     deploy,
		layers: []policyLayer{nsLabel},
		want:   func(p *recommend.Policy) { p.CPUPercentile, p.MemoryMargin, p.MinCPU = 0.9, 0.2, 0.02 },
		sources: policySources{
			"cpu_percentile": "namespace_label upid.io/cpu-percentile", "memory_margin": "exporter.recommend.overrides[0]",
			"min_cpu": "namespace_label upid.io/min-cpu",
		},
	}, {
		name:   "namespace annotation beats the label, in any order given",
		id:     deploy,
		layers: []policyLayer{nsAnn, nsLabel},
		want:   func(p *recommend.Policy) { p.CPUPercentile, p.MemoryMargin, p.MinCPU = 0.93, 0.3, 0.02 },
		sources: policySources{
			"cpu_percentile": "namespace_annotation upid.io/cpu-percentile", "memory_margin": "namespace_annotation upid.io/memory-margin",
			"min_cpu": "namespace_label upid.io/min-cpu",
		},
	}, {
		name:   "workload annotation beats everything",
		id:     deploy,
		layers: []policyLayer{wlAnn, nsLabel, nsAnn},
		want: func(p *recommend.Policy) {
			p.CPUPercentile, p.MemoryMargin, p.MinCPU, p.MinMemory = 0.97, 0.3, 0.02, 64<<20
		},
		sources: policySources{
			"cpu_percentile": "workload_annotation upid.io/cpu-percentile", "memory_margin": "namespace_annotation upid.io/memory-margin",
			"min_cpu": "namespace_label upid.io/min-cpu", "min_memory": "workload_annotation upid.io/min-memory",
		},
	}, {
		name:    "annotations without overrides",
		id:      inventory.ID{Namespace: "other", Kind: "Deployment", Name: "web"},
		layers:  []policyLayer{wlAnn},
		want:    func(p *recommend.Policy) { p.CPUPercentile, p.MinMemory = 0.97, 64<<20 },
		sources: policySources{"cpu_percentile": "workload_annotation upid.io/cpu-percentile", "min_memory": "workload_annotation upid.io/min-memory"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			given := append([]policyLayer(nil), c.layers...)
			p, src := resolvePolicy(cluster, overrides, c.id, c.layers...)
			want := cluster
			if c.want != nil {
				c.want(&want)
			}
			if p != want {
				t.Errorf("policy\n%+v, want\n%+v", p, want)
			}
			if !maps.Equal(src, c.sources) {
				t.Errorf("sources %v, want %v", src, c.sources)
			}
			for i := range given {
				if given[i].source != c.layers[i].source {
					t.Error("resolvePolicy reordered its caller's layers")
				}
			}
		})
	}
}

func TestEffectiveWindow(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		w, fetched, want time.Duration
		clamped          bool
	}{
		{w: 3 * day, fetched: 7 * day, want: 3 * day},
		{w: 7 * day, fetched: 7 * day, want: 7 * day},
		{w: 30 * day, fetched: 7 * day, want: 7 * day, clamped: true},
		{w: 0, fetched: 7 * day, want: 7 * day},
	} {
		if got, clamped := effectiveWindow(c.w, c.fetched); got != c.want || clamped != c.clamped {
			t.Errorf("effectiveWindow(%v, %v) = %v, %v; want %v, %v", c.w, c.fetched, got, clamped, c.want, c.clamped)
		}
	}
}

func TestPolicyOverridesErrors(t *testing.T) {
	_, err := policyOverrides(config.Recommend{Overrides: []config.RecommendOverride{
		{Namespace: "a", CPUMargin: ptr(0.1)},
		{Namespace: "b", CPUPercentile: ptr(7.0)},
		{CPUMargin: ptr(0.1)},
	}})
	for _, want := range []string{"exporter.recommend.overrides[1]: cpu_percentile: 7 is out of range", "exporter.recommend.overrides[2].namespace: must not be empty"} {
		if err == nil || !contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// BenchmarkAnalyzePolicy measures what resolving a policy per workload adds
// to the analysis: 10,000 single-container workloads in 100 namespaces,
// analysed as the cluster's policy alone (the baseline, in the same run) and
// with every namespace labelled and annotated, every workload annotated and
// 200 configured overrides. It reports both per workload and their ratio.
//
//	go test ./exporter -run '^$' -bench AnalyzePolicy -benchtime 20x
func BenchmarkAnalyzePolicy(b *testing.B) {
	const n, namespaces = 10000, 100
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	window := 7 * 24 * time.Hour
	plain := inventory.Snapshot{}
	hist := &history.Snapshot{At: at, Workloads: map[history.Key]*history.Workload{}}
	for i := range namespaces {
		plain.Namespaces = append(plain.Namespaces, inventory.Namespace{Name: fmt.Sprintf("ns-%d", i)})
	}
	for i := range n {
		id := inventory.ID{Namespace: fmt.Sprintf("ns-%d", i%namespaces), Kind: "Deployment", Name: fmt.Sprintf("w-%d", i)}
		plain.Workloads = append(plain.Workloads, inventory.Workload{ID: id, Replicas: 2, Pods: 2,
			Containers: []inventory.Container{{Name: "app", CPURequest: 1, MemoryRequest: 1 << 30}},
			Requests:   []inventory.NodeRequests{{Node: "", CPU: 2, Memory: 2 << 30}}})
		hist.Workloads[history.Key{Namespace: id.Namespace, Kind: id.Kind, Workload: id.Name}] = &history.Workload{
			Coverage: f(1), Replicas: f(2),
			ContainerCPU:    map[string]*history.Usage{"app": {P50: f(0.2), P95: f(0.3), Max: f(0.5)}},
			ContainerMemory: map[string]*history.Usage{"app": {Max: f(300 << 20)}},
		}
	}
	annotated := plain
	annotated.Namespaces = slices.Clone(plain.Namespaces)
	annotated.Workloads = slices.Clone(plain.Workloads)
	for i := range annotated.Namespaces {
		annotated.Namespaces[i].UPIDLabels = map[string]string{"upid.io/cpu-margin": "0.1"}
		annotated.Namespaces[i].UPIDAnnotations = map[string]string{"upid.io/min-memory": "64Mi", "upid.io/limit-policy": "keep"}
	}
	for i := range annotated.Workloads {
		annotated.Workloads[i].Annotations = map[string]string{"upid.io/cpu-percentile": "0.95", "upid.io/recommend-window": "3d", "upid.io/mode": "enforce"}
	}
	var cfg config.Recommend
	for i := range 200 {
		cfg.Overrides = append(cfg.Overrides, config.RecommendOverride{Namespace: fmt.Sprintf("ns-%d", i%namespaces), Workload: fmt.Sprintf("w-%d", i), MemoryMargin: ptr(0.2)})
	}
	overrides, err := policyOverrides(cfg)
	if err != nil {
		b.Fatal(err)
	}
	base := &analyzer{window: window, recWindow: window, params: idle.DefaultParams(), policy: recommend.DefaultPolicy()}
	withPolicy := &analyzer{window: window, recWindow: window, params: idle.DefaultParams(), policy: recommend.DefaultPolicy(), overrides: overridesByNamespace(overrides)}
	// Interleaved, so that both see the same load on a shared machine.
	var t0, t1 time.Duration
	run := func(a *analyzer, inv inventory.Snapshot, total *time.Duration) {
		start := time.Now()
		if res := a.analyze(inv, hist, at); len(res.Workloads) != n {
			b.Fatalf("%d workloads", len(res.Workloads))
		}
		*total += time.Since(start)
	}
	b.ResetTimer()
	for range b.N {
		run(base, plain, &t0)
		run(withPolicy, annotated, &t1)
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N*n) }
	b.ReportMetric(per(t0), "baseline-ns/workload")
	b.ReportMetric(per(t1), "policy-ns/workload")
	b.ReportMetric(per(t1)/per(t0), "ratio")
}

// TestConfigPolicies: the configuration-only resolution upid backtest
// replays with follows the exporter's precedence and clamp, and names the
// overrides that set something.
func TestConfigPolicies(t *testing.T) {
	cfg := config.Default().Exporter.Recommend
	cfg.Window = model.Duration(7 * 24 * time.Hour)
	cfg.Overrides = []config.RecommendOverride{
		{Namespace: "shop", CPUPercentile: ptr(0.95)},
		{Namespace: "shop", Workload: "checkout", Kind: "Deployment", CPUMargin: ptr(0.2)},
		{Namespace: "shop", Kind: "StatefulSet", MemoryMargin: ptr(0.3)},
		{Namespace: "batch", Window: ptr(model.Duration(30 * 24 * time.Hour))},
	}
	cp, err := NewConfigPolicies(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cluster := cp.Cluster()
	if cluster.Window != 7*24*time.Hour {
		t.Fatalf("cluster window %v, want exporter.recommend.window", cluster.Window)
	}
	with := func(f func(*recommend.Policy)) recommend.Policy {
		p := cluster
		f(&p)
		return p
	}
	for _, c := range []struct {
		ns, kind, name string
		want           recommend.Policy
		from           []string
	}{
		{"other", "Deployment", "web", cluster, nil},
		{"shop", "Deployment", "web", with(func(p *recommend.Policy) { p.CPUPercentile = 0.95 }), []string{"exporter.recommend.overrides[0]"}},
		{"shop", "Deployment", "checkout", with(func(p *recommend.Policy) { p.CPUPercentile, p.CPUMargin = 0.95, 0.2 }),
			[]string{"exporter.recommend.overrides[0]", "exporter.recommend.overrides[1]"}},
		// The named override is for a Deployment.
		{"shop", "StatefulSet", "checkout", with(func(p *recommend.Policy) { p.CPUPercentile, p.MemoryMargin = 0.95, 0.3 }),
			[]string{"exporter.recommend.overrides[0]", "exporter.recommend.overrides[2]"}},
		// Longer than the history kept: clamped, as in the exporter.
		{"batch", "CronJob", "nightly", cluster, []string{"exporter.recommend.overrides[3]"}},
	} {
		got, from := cp.Policy(c.ns, c.kind, c.name)
		if got != c.want || !slices.Equal(from, c.from) {
			t.Errorf("%s/%s/%s: %+v from %q, want %+v from %q", c.ns, c.kind, c.name, got, from, c.want, c.from)
		}
	}

	// Every bad value is reported at once, naming its key.
	cfg.CPUPercentile, cfg.Overrides = 2, []config.RecommendOverride{{CPUMargin: ptr(0.1)}}
	_, err = NewConfigPolicies(cfg)
	for _, want := range []string{"exporter.recommend: ", "exporter.recommend.overrides[0].namespace: must not be empty"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}
