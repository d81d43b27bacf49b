package pricing

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
)

func f(x float64) *float64 { return &x }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestNodeHourly(t *testing.T) {
	n := Node{CPUCores: 4, MemoryBytes: 16 << 30}
	p := New(nil, nil).Price(n)
	// 4 vCPU × 0.031611 + 16 GiB × 0.004237 = 0.126444 + 0.067792 = 0.194236 $/h,
	// × 730 h = 141.79228 $/month.
	if got := p.NodeHourly(n); !near(got, 0.194236) {
		t.Errorf("NodeHourly = %v, want 0.194236", got)
	}
	if got := p.NodeHourly(n) * HoursPerMonth; !near(got, 141.79228) {
		t.Errorf("monthly = %v, want 141.79228", got)
	}

	// 48 vCPU × 0.01 + 192 GiB × 0.001 + 4 GPU × 2.5 = 0.48 + 0.192 + 10 = 10.672 $/h.
	gpu := Node{CPUCores: 48, MemoryBytes: 192 << 30, GPUs: 4}
	p = Price{CPUPerCoreHour: 0.01, MemoryPerGiBHour: 0.001, GPUPerHour: 2.5}
	if got := p.NodeHourly(gpu); !near(got, 10.672) {
		t.Errorf("NodeHourly(gpu) = %v, want 10.672", got)
	}
}

func TestPrecedence(t *testing.T) {
	plain := Node{Name: "plain", InstanceType: "m5.large", Region: "us-east-1", CapacityType: OnDemand, CPUCores: 2, MemoryBytes: 8 << 30}
	gpu := Node{Name: "gpu", InstanceType: "g5.xlarge", Region: "us-east-1", CapacityType: OnDemand, Labels: map[string]string{"pool": "gpu"}, CPUCores: 4, MemoryBytes: 16 << 30, GPUs: 1}
	file := &File{
		Default: &Rates{CPUCoreHour: f(0.05), GPUHour: f(1.5)},
		Rules: []Rule{
			{Name: "gpu-pool", Match: Match{Selector: "pool=gpu"}, Rates: Rates{GPUHour: f(2.48)}},
			{Name: "m5", Match: Match{InstanceType: "m5.large"}, Rates: Rates{CPUCoreHour: f(0.02)}},
		},
	}
	tests := []struct {
		name     string
		file     *File
		opencost OpenCost
		node     Node
		want     Price
	}{
		{
			name: "nothing configured: built-in defaults",
			node: plain,
			want: Price{CPUPerCoreHour: DefaultCPUCoreHour, MemoryPerGiBHour: DefaultMemoryGiBHour, GPUPerHour: DefaultGPUHour,
				CPUSource: "default", MemorySource: "default", GPUSource: "default", Source: "default"},
		},
		{
			name:     "opencost prices everything",
			file:     file,
			opencost: OpenCost{"plain": {CPUCoreHour: f(0.03), MemoryGiBHour: f(0.004), GPUHour: f(0)}},
			node:     plain,
			want: Price{CPUPerCoreHour: 0.03, MemoryPerGiBHour: 0.004, GPUPerHour: 0,
				CPUSource: "opencost", MemorySource: "opencost", GPUSource: "opencost", Source: "opencost"},
		},
		{
			name:     "opencost for another node only",
			file:     file,
			opencost: OpenCost{"other": {CPUCoreHour: f(9), MemoryGiBHour: f(9)}},
			node:     plain,
			want: Price{CPUPerCoreHour: 0.02, MemoryPerGiBHour: DefaultMemoryGiBHour, GPUPerHour: 1.5,
				CPUSource: "file", MemorySource: "default", GPUSource: "file", Source: "file+default", Rule: "m5"},
		},
		{
			name:     "opencost lacks the gpu price: the rule fills only the gpu",
			file:     file,
			opencost: OpenCost{"gpu": {CPUCoreHour: f(0.04), MemoryGiBHour: f(0.005)}},
			node:     gpu,
			want: Price{CPUPerCoreHour: 0.04, MemoryPerGiBHour: 0.005, GPUPerHour: 2.48,
				CPUSource: "opencost", MemorySource: "opencost", GPUSource: "file", Source: "opencost+file", Rule: "gpu-pool"},
		},
		{
			name:     "opencost lacks the gpu price of a node without gpus: not reported",
			file:     file,
			opencost: OpenCost{"plain": {CPUCoreHour: f(0.04), MemoryGiBHour: f(0.005)}},
			node:     plain,
			want: Price{CPUPerCoreHour: 0.04, MemoryPerGiBHour: 0.005, GPUPerHour: 1.5,
				CPUSource: "opencost", MemorySource: "opencost", GPUSource: "file", Source: "opencost"},
		},
		{
			name:     "opencost zero is a price, not a gap",
			file:     file,
			opencost: OpenCost{"gpu": {CPUCoreHour: f(0), MemoryGiBHour: f(0), GPUHour: f(3.9)}},
			node:     gpu,
			want: Price{CPUPerCoreHour: 0, MemoryPerGiBHour: 0, GPUPerHour: 3.9,
				CPUSource: "opencost", MemorySource: "opencost", GPUSource: "opencost", Source: "opencost"},
		},
		{
			name:     "opencost lacks memory only",
			file:     file,
			opencost: OpenCost{"plain": {CPUCoreHour: f(0.04), GPUHour: f(0)}},
			node:     plain,
			want: Price{CPUPerCoreHour: 0.04, MemoryPerGiBHour: DefaultMemoryGiBHour, GPUPerHour: 0,
				CPUSource: "opencost", MemorySource: "default", GPUSource: "opencost", Source: "opencost+default"},
		},
		{
			name:     "invalid opencost rates are ignored",
			opencost: OpenCost{"plain": {CPUCoreHour: f(-1), MemoryGiBHour: f(math.NaN()), GPUHour: f(math.Inf(1))}},
			node:     plain,
			want: Price{CPUPerCoreHour: DefaultCPUCoreHour, MemoryPerGiBHour: DefaultMemoryGiBHour, GPUPerHour: DefaultGPUHour,
				CPUSource: "default", MemorySource: "default", GPUSource: "default", Source: "default"},
		},
		{
			name: "rule rate, then file default, then built-in, per resource",
			file: file,
			node: gpu,
			want: Price{CPUPerCoreHour: 0.05, MemoryPerGiBHour: DefaultMemoryGiBHour, GPUPerHour: 2.48,
				CPUSource: "file", MemorySource: "default", GPUSource: "file", Source: "file+default", Rule: "gpu-pool"},
		},
		{
			name: "file default only",
			file: &File{Default: &Rates{CPUCoreHour: f(0.1), MemoryGiBHour: f(0.01)}},
			node: plain,
			want: Price{CPUPerCoreHour: 0.1, MemoryPerGiBHour: 0.01, GPUPerHour: 0,
				CPUSource: "file", MemorySource: "file", GPUSource: "default", Source: "file"},
		},
		{
			name: "gpu-only rule matching a node without gpus is not named",
			file: &File{Rules: []Rule{{Name: "all-m5", Match: Match{InstanceType: "m5.large"}, Rates: Rates{GPUHour: f(1)}}}},
			node: plain,
			want: Price{CPUPerCoreHour: DefaultCPUCoreHour, MemoryPerGiBHour: DefaultMemoryGiBHour, GPUPerHour: 1,
				CPUSource: "default", MemorySource: "default", GPUSource: "file", Source: "default"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := New(tc.file, tc.opencost).Price(tc.node)
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestNilPricer(t *testing.T) {
	var p *Pricer
	if got := p.Price(Node{Name: "x"}); got.Source != SourceDefault || got.CPUPerCoreHour != DefaultCPUCoreHour {
		t.Errorf("nil Pricer: %+v", got)
	}
}

func TestRuleMatching(t *testing.T) {
	node := Node{
		Name: "n", InstanceType: "Standard_D4s_v3", Region: "westeurope", CapacityType: Spot,
		Labels: map[string]string{"pool": "batch", "tier": "b", "team": "data"},
	}
	tests := []struct {
		name  string
		rules []Rule
		want  string // matched rule, "" for none
	}{
		{"instance type, any case", []Rule{{Name: "r", Match: Match{InstanceType: "standard_d4s_v3"}}}, "r"},
		{"other instance type", []Rule{{Name: "r", Match: Match{InstanceType: "Standard_D8s_v3"}}}, ""},
		{"region", []Rule{{Name: "r", Match: Match{Region: "westeurope"}}}, "r"},
		{"other region", []Rule{{Name: "r", Match: Match{Region: "northeurope"}}}, ""},
		{"capacity type", []Rule{{Name: "r", Match: Match{CapacityType: "spot"}}}, "r"},
		{"capacity type spelt the EKS way", []Rule{{Name: "r", Match: Match{CapacityType: "SPOT"}}}, "r"},
		{"other capacity type", []Rule{{Name: "r", Match: Match{CapacityType: "on-demand"}}}, ""},
		{"unknown capacity type matches nothing", []Rule{{Name: "r", Match: Match{CapacityType: "cheap"}}}, ""},
		{"selector equality", []Rule{{Name: "r", Match: Match{Selector: "pool=batch"}}}, "r"},
		{"selector set", []Rule{{Name: "r", Match: Match{Selector: "pool=batch,tier in (a,b)"}}}, "r"},
		{"selector set miss", []Rule{{Name: "r", Match: Match{Selector: "tier in (a,c)"}}}, ""},
		{"selector notin and exists", []Rule{{Name: "r", Match: Match{Selector: "team,tier notin (a)"}}}, "r"},
		{"selector does not exist", []Rule{{Name: "r", Match: Match{Selector: "!gpu"}}}, "r"},
		{"bad selector matches nothing", []Rule{{Name: "r", Match: Match{Selector: "tier in (a"}}}, ""},
		{"empty match matches nothing", []Rule{{Name: "r", Rates: Rates{CPUCoreHour: f(1)}}}, ""},
		{"all conditions must hold", []Rule{{Name: "r", Match: Match{Region: "westeurope", CapacityType: OnDemand}}}, ""},
		{
			name:  "all conditions hold",
			rules: []Rule{{Name: "r", Match: Match{InstanceType: "Standard_D4s_v3", Region: "westeurope", CapacityType: Spot, Selector: "pool=batch"}}},
			want:  "r",
		},
		{
			name: "first match wins over a more specific later rule",
			rules: []Rule{
				{Name: "miss", Match: Match{Region: "eastus"}},
				{Name: "broad", Match: Match{Region: "westeurope"}},
				{Name: "narrow", Match: Match{Region: "westeurope", InstanceType: "Standard_D4s_v3"}},
			},
			want: "broad",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every rule sets the CPU rate so the Rule field shows which matched.
			for i := range tc.rules {
				tc.rules[i].CPUCoreHour = f(1)
			}
			got := New(&File{Rules: tc.rules}, nil).Price(node)
			if got.Rule != tc.want {
				t.Errorf("matched %q, want %q (%+v)", got.Rule, tc.want, got)
			}
		})
	}
}

func TestRuleInheritsFromDefaultNotFromLaterRules(t *testing.T) {
	file := &File{
		Default: &Rates{MemoryGiBHour: f(0.01)},
		Rules: []Rule{
			{Name: "cpu-only", Match: Match{Region: "r"}, Rates: Rates{CPUCoreHour: f(0.02)}},
			{Name: "mem-too", Match: Match{Region: "r"}, Rates: Rates{CPUCoreHour: f(0.5), MemoryGiBHour: f(0.5)}},
		},
	}
	got := New(file, nil).Price(Node{Region: "r"})
	if got.CPUPerCoreHour != 0.02 || got.MemoryPerGiBHour != 0.01 || got.Rule != "cpu-only" {
		t.Errorf("got %+v, want cpu 0.02 from cpu-only and memory 0.01 from default:", got)
	}

	// A rule with no rates pins its nodes to the defaults.
	file.Rules = append([]Rule{{Name: "pin", Match: Match{Region: "r"}}}, file.Rules...)
	got = New(file, nil).Price(Node{Region: "r"})
	if got.CPUPerCoreHour != DefaultCPUCoreHour || got.Rule != "" {
		t.Errorf("got %+v, want built-in cpu rate and no rule", got)
	}
}

func TestUnnamedRuleGetsItsIndex(t *testing.T) {
	file := &File{Rules: []Rule{{Match: Match{Region: "x"}}, {Match: Match{Region: "r"}, Rates: Rates{CPUCoreHour: f(1)}}}}
	if got := New(file, nil).Price(Node{Region: "r"}).Rule; got != "rules[1]" {
		t.Errorf("Rule = %q, want rules[1]", got)
	}
}

func TestExampleFile(t *testing.T) {
	data, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file, err := ParseFile("example.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	p := New(file, nil)

	spot := Node{InstanceType: "m5.large", Region: "us-east-1", CapacityType: Spot, CPUCores: 2, MemoryBytes: 8 << 30}
	got := p.Price(spot)
	if got.CPUPerCoreHour != 0.012 || got.MemoryPerGiBHour != 0.0016 || got.Rule != "spot-m5" || got.Source != "file" {
		t.Errorf("spot m5: %+v", got)
	}
	// 2 × 0.012 + 8 × 0.0016 = 0.024 + 0.0128 = 0.0368 $/h.
	if h := got.NodeHourly(spot); !near(h, 0.0368) {
		t.Errorf("spot m5 hourly = %v, want 0.0368", h)
	}

	onDemand := spot
	onDemand.CapacityType = OnDemand
	if got := p.Price(onDemand); got.CPUPerCoreHour != 0.031611 || got.Rule != "" || got.Source != "file" {
		t.Errorf("on-demand m5: %+v", got)
	}

	gpu := Node{Labels: map[string]string{"pool": "gpu", "tier": "b"}, CPUCores: 8, MemoryBytes: 32 << 30, GPUs: 1}
	got = p.Price(gpu)
	if got.GPUPerHour != 2.48 || got.CPUPerCoreHour != 0.031611 || got.Rule != "gpu-pool" {
		t.Errorf("gpu pool: %+v", got)
	}
	// 8 × 0.031611 + 32 × 0.004237 + 1 × 2.48 = 0.252888 + 0.135584 + 2.48 = 2.868472 $/h.
	if h := got.NodeHourly(gpu); !near(h, 2.868472) {
		t.Errorf("gpu hourly = %v, want 2.868472", h)
	}
}

func sample(name, node string, v float64) *model.Sample {
	m := model.Metric{model.MetricNameLabel: model.LabelValue(name)}
	if node != "" {
		m["node"] = model.LabelValue(node)
	}
	return &model.Sample{Metric: m, Value: model.SampleValue(v)}
}

func TestOpenCostFromVector(t *testing.T) {
	v := model.Vector{
		sample(MetricOpenCostCPU, "a", 0.03),
		sample(MetricOpenCostMemory, "a", 0.004),
		sample(MetricOpenCostGPU, "a", 0),
		sample(MetricOpenCostCPU, "b", 0.02),
		sample(MetricOpenCostCPU, "b", 0.025), // a duplicate series: the larger is kept
		sample(MetricOpenCostMemory, "b", math.NaN()),
		sample(MetricOpenCostGPU, "b", -1),
		sample(MetricOpenCostCPU, "", 1),           // no node label
		sample("node_total_hourly_cost", "c", 0.2), // not a rate
		nil,
	}
	// The instance label is not a node name once Prometheus has set it to the scrape target.
	v = append(v, &model.Sample{Metric: model.Metric{model.MetricNameLabel: MetricOpenCostCPU, "instance": "10.0.0.5:9003"}, Value: 1})

	oc := OpenCostFromVector(v)
	if len(oc) != 2 {
		t.Fatalf("nodes = %v, want a and b", oc)
	}
	a := oc["a"]
	if a.CPUCoreHour == nil || *a.CPUCoreHour != 0.03 || a.MemoryGiBHour == nil || *a.MemoryGiBHour != 0.004 || a.GPUHour == nil || *a.GPUHour != 0 {
		t.Errorf("a = %s", rates(a))
	}
	b := oc["b"]
	if b.CPUCoreHour == nil || *b.CPUCoreHour != 0.025 || b.MemoryGiBHour != nil || b.GPUHour != nil {
		t.Errorf("b = %s", rates(b))
	}
	if !strings.Contains(OpenCostQuery, "node_ram_hourly_cost") || !strings.HasPrefix(OpenCostQuery, "max by (node, __name__)") {
		t.Errorf("OpenCostQuery = %s", OpenCostQuery)
	}
}

func rates(r Rates) string {
	s := func(p *float64) string {
		if p == nil {
			return "nil"
		}
		return model.SampleValue(*p).String()
	}
	return "{cpu " + s(r.CPUCoreHour) + " mem " + s(r.MemoryGiBHour) + " gpu " + s(r.GPUHour) + "}"
}
