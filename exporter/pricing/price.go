package pricing

import (
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// HoursPerMonth converts hourly prices to monthly ones: 365×24/12, the
// convention of OpenCost and the cloud providers' calculators.
const HoursPerMonth = 730

// Built-in rates, used for whatever neither OpenCost nor the pricing file
// prices. The CPU and memory rates are those of OpenCost's default.json
// (GCP us-central1 on-demand), so UPID and OpenCost agree on an unpriced
// node. OpenCost's GPU default of 0.95 fits no particular GPU and would
// invent most of a GPU node's cost, so GPUs are free until the file prices them.
const (
	DefaultCPUCoreHour   = 0.031611
	DefaultMemoryGiBHour = 0.004237
	DefaultGPUHour       = 0.0
)

// MaxRate is the largest accepted price of one vCPU, GiB or GPU for an hour.
// It is far above any real price in any currency, and bounds the products
// computed from rates so that they stay finite.
const MaxRate = 1e9

// Where a rate came from, as reported in Price.
const (
	SourceOpenCost = "opencost"
	SourceFile     = "file"
	SourceDefault  = "default"
)

const bytesPerGiB = 1 << 30

// Rates are prices per unit-hour; nil means "not given here", so that a
// later source in the precedence order supplies that rate.
type Rates struct {
	CPUCoreHour   *float64 `yaml:"cpu_core_hour,omitempty"`
	MemoryGiBHour *float64 `yaml:"memory_gib_hour,omitempty"`
	GPUHour       *float64 `yaml:"gpu_hour,omitempty"`
}

// Price is what a node costs per unit-hour and where each rate came from.
type Price struct {
	CPUPerCoreHour   float64
	MemoryPerGiBHour float64
	GPUPerHour       float64

	// Source of each rate: SourceOpenCost, SourceFile or SourceDefault.
	CPUSource, MemorySource, GPUSource string
	// Source summarises the sources of the rates that make up the node's
	// cost: CPU and memory, and the GPU rate only if the node has GPUs, since
	// the price of something the node lacks changes nothing. When they differ
	// they are joined with "+" in precedence order, e.g. "opencost+file".
	Source string
	// Rule is the name of the pricing-file rule that gave one of those
	// rates, or "" when none did (rates from default: have no rule).
	Rule string
}

// NodeHourly is the price of the whole node for an hour.
func (p Price) NodeHourly(n Node) float64 {
	return p.CPUPerCoreHour*n.CPUCores + p.MemoryPerGiBHour*n.MemoryBytes/bytesPerGiB + p.GPUPerHour*n.GPUs
}

// Pricer prices nodes from a pricing file and OpenCost's rates. It is
// immutable and safe for concurrent use; build a new one when either input
// changes.
type Pricer struct {
	opencost OpenCost
	rules    []compiledRule
	fallback Rates // the file's default: section
}

type compiledRule struct {
	Rule
	capacityType string
	selector     labels.Selector // nil when the rule has no selector
}

// New returns a Pricer. Either argument may be nil. The Pricer keeps both
// rather than copying them, so neither may be modified afterwards. file is
// expected to come from ParseFile; a rule built by hand whose selector does
// not parse, or whose match is empty, matches no node rather than every node.
func New(file *File, opencost OpenCost) *Pricer {
	p := &Pricer{opencost: opencost}
	if file == nil {
		return p
	}
	if file.Default != nil {
		p.fallback = *file.Default
	}
	for i, r := range file.Rules {
		c := compiledRule{Rule: r, capacityType: normalizeCapacityType(r.Match.CapacityType)}
		if c.Name == "" {
			c.Name = defaultRuleName(i)
		}
		if r.Match.empty() || (r.Match.CapacityType != "" && c.capacityType == "") {
			continue
		}
		if r.Match.Selector != "" {
			sel, err := labels.Parse(r.Match.Selector)
			if err != nil || sel.Empty() {
				continue
			}
			c.selector = sel
		}
		p.rules = append(p.rules, c)
	}
	return p
}

func (r *compiledRule) matches(n Node) bool {
	m := r.Match
	switch {
	case m.InstanceType != "" && !strings.EqualFold(m.InstanceType, n.InstanceType):
		return false
	case m.Region != "" && !strings.EqualFold(m.Region, n.Region):
		return false
	case r.capacityType != "" && r.capacityType != n.CapacityType:
		return false
	case r.selector != nil && !r.selector.Matches(labels.Set(n.Labels)):
		return false
	}
	return true
}

// Price returns the node's rates; see the package documentation for the
// order in which sources are consulted.
func (p *Pricer) Price(n Node) Price {
	if p == nil {
		p = &Pricer{}
	}
	oc := p.opencost[n.Name]
	var rule *compiledRule
	for i := range p.rules {
		if p.rules[i].matches(n) {
			rule = &p.rules[i]
			break
		}
	}
	var fromRule Rates
	if rule != nil {
		fromRule = rule.Rates
	}
	var out Price
	var ruleUsed [3]bool
	out.CPUPerCoreHour, out.CPUSource, ruleUsed[0] = pick(oc.CPUCoreHour, fromRule.CPUCoreHour, p.fallback.CPUCoreHour, DefaultCPUCoreHour)
	out.MemoryPerGiBHour, out.MemorySource, ruleUsed[1] = pick(oc.MemoryGiBHour, fromRule.MemoryGiBHour, p.fallback.MemoryGiBHour, DefaultMemoryGiBHour)
	out.GPUPerHour, out.GPUSource, ruleUsed[2] = pick(oc.GPUHour, fromRule.GPUHour, p.fallback.GPUHour, DefaultGPUHour)

	sources := []string{out.CPUSource, out.MemorySource}
	used := ruleUsed[0] || ruleUsed[1]
	if n.GPUs > 0 {
		sources = append(sources, out.GPUSource)
		used = used || ruleUsed[2]
	}
	out.Source = summarize(sources)
	if used {
		out.Rule = rule.Name
	}
	return out
}

// pick returns the first valid rate in precedence order, its source, and
// whether it was the rule's.
func pick(opencost, rule, fileDefault *float64, builtin float64) (float64, string, bool) {
	switch {
	case valid(opencost):
		return *opencost, SourceOpenCost, false
	case valid(rule):
		return *rule, SourceFile, true
	case valid(fileDefault):
		return *fileDefault, SourceFile, false
	}
	return builtin, SourceDefault, false
}

// valid guards against rates that did not come through ParseFile or
// OpenCostFromVector, so that a Price is never negative or infinite.
func valid(r *float64) bool {
	return r != nil && *r >= 0 && *r <= MaxRate // false for NaN too
}

func summarize(sources []string) string {
	var out []string
	for _, s := range []string{SourceOpenCost, SourceFile, SourceDefault} {
		for _, x := range sources {
			if x == s {
				out = append(out, s)
				break
			}
		}
	}
	return strings.Join(out, "+")
}
