package exporter

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/recommend"
	"github.com/upid-dev/upid/internal/config"
)

// Where a knob of a workload's policy came from, from the least to the most
// specific; also the source label of upid_exporter_policy_errors_total for
// the last three.
const (
	sourceNamespaceLabel      = "namespace_label"
	sourceNamespaceAnnotation = "namespace_annotation"
	sourceWorkloadAnnotation  = "workload_annotation"
)

// policyOverride is one exporter.recommend.overrides entry, parsed.
type policyOverride struct {
	index                     int
	namespace, workload, kind string
	patch                     recommend.Patch
}

// policyOverrides parses the configured overrides; the errors name the
// entry and the key, as config.Load does.
func policyOverrides(cfg config.Recommend) ([]policyOverride, error) {
	var errs []error
	out := make([]policyOverride, 0, len(cfg.Overrides))
	for i, o := range cfg.Overrides {
		p, err := o.Patch()
		if err != nil {
			errs = append(errs, fmt.Errorf("exporter.recommend.overrides[%d]: %w", i, err))
			continue
		}
		if o.Namespace == "" {
			errs = append(errs, fmt.Errorf("exporter.recommend.overrides[%d].namespace: must not be empty", i))
			continue
		}
		out = append(out, policyOverride{index: i, namespace: o.Namespace, workload: o.Workload, kind: o.Kind, patch: p})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// policyLayer is what one set of labels or annotations says.
type policyLayer struct {
	source string // one of the source* constants
	patch  recommend.Patch
	keys   map[string]string // knob key → its source, e.g. "namespace_label upid.io/cpu-margin"
}

// policyProblem is a value that was ignored (Err) or could not be honoured
// in full (a window clamped). Each is logged when it first appears.
type policyProblem struct {
	Source                    string // source* constant, or "" for a clamp
	Namespace, Kind, Workload string // Kind and Workload empty for a namespace's
	Key, Value                string
	Msg                       string
	Err                       bool
}

func (p policyProblem) String() string {
	return fmt.Sprintf("%s|%s/%s/%s|%s=%s|%s", p.Source, p.Namespace, p.Kind, p.Workload, p.Key, p.Value, p.Msg)
}

// parsePolicyLayer reads the knobs from upid.io/ labels or annotations. A
// bad value is left out, for its knob only, and reported; the others stand.
func parsePolicyLayer(source string, m map[string]string, id inventory.ID) (policyLayer, []policyProblem) {
	l := policyLayer{source: source}
	var problems []policyProblem
	for _, k := range recommend.Knobs {
		v, ok := m[k.Annotation]
		if !ok {
			continue
		}
		if err := l.patch.Set(k.Key, v); err != nil {
			msg := err.Error()
			var ke *recommend.KnobError
			if errors.As(err, &ke) {
				msg = ke.Msg
			}
			problems = append(problems, policyProblem{
				Source: source, Namespace: id.Namespace, Kind: id.Kind, Workload: id.Name,
				Key: k.Annotation, Value: v, Msg: msg, Err: true,
			})
			continue
		}
		if l.keys == nil {
			l.keys = map[string]string{}
		}
		l.keys[k.Key] = source + " " + k.Annotation
	}
	return l, problems
}

// namespaceLayers reads each namespace's upid.io/ labels and annotations,
// once for all its workloads, so that a bad value is reported once.
func namespaceLayers(namespaces []inventory.Namespace) (map[string][]policyLayer, []policyProblem) {
	out := map[string][]policyLayer{}
	var problems []policyProblem
	for _, ns := range namespaces {
		var layers []policyLayer
		for _, m := range []struct {
			source string
			kv     map[string]string
		}{{sourceNamespaceLabel, ns.UPIDLabels}, {sourceNamespaceAnnotation, ns.UPIDAnnotations}} {
			if len(m.kv) == 0 {
				continue
			}
			l, ps := parsePolicyLayer(m.source, m.kv, inventory.ID{Namespace: ns.Name})
			problems = append(problems, ps...)
			if !l.patch.Empty() {
				layers = append(layers, l)
			}
		}
		if len(layers) > 0 {
			out[ns.Name] = layers
		}
	}
	return out, problems
}

// workloadLayers are the layers of a workload: its namespace's, then its
// own upid.io/ annotations. nsLayers is not modified.
func workloadLayers(w inventory.Workload, nsLayers []policyLayer) ([]policyLayer, []policyProblem) {
	if len(w.Annotations) == 0 {
		return nsLayers, nil
	}
	l, problems := parsePolicyLayer(sourceWorkloadAnnotation, w.Annotations, w.ID)
	if l.patch.Empty() {
		return nsLayers, problems
	}
	return append(nsLayers[:len(nsLayers):len(nsLayers)], l), problems
}

// policySources maps each knob that is not the cluster's default
// (exporter.recommend) to where its value came from.
type policySources map[string]string

// resolvePolicy is the policy of one workload: the cluster's, then the
// configured overrides of its namespace, then those naming it, then its
// namespace's labels, then its namespace's annotations, then its own
// annotations; the most specific wins, knob by knob.
func resolvePolicy(cluster recommend.Policy, overrides []policyOverride, id inventory.ID, layers ...policyLayer) (recommend.Policy, policySources) {
	p := cluster
	var src policySources
	note := func(keys []string, from func(key string) string) {
		for _, k := range keys {
			if src == nil {
				src = policySources{}
			}
			src[k] = from(k)
		}
	}
	for _, named := range []bool{false, true} {
		for _, o := range overrides {
			if o.namespace != id.Namespace || (o.kind != "" && o.kind != id.Kind) || (o.workload != "") != named || (named && o.workload != id.Name) {
				continue
			}
			at := fmt.Sprintf("exporter.recommend.overrides[%d]", o.index)
			note(o.patch.Apply(&p), func(string) string { return at })
		}
	}
	// Labels before annotations: at the same level the annotation, which
	// can hold any value, wins. Ranked by passes rather than sorted, so that
	// nothing is allocated for the caller's slice.
	for _, rank := range layerOrder {
		for _, l := range layers {
			if l.source == rank {
				note(l.patch.Apply(&p), func(k string) string { return l.keys[k] })
			}
		}
	}
	return p, src
}

var layerOrder = []string{sourceNamespaceLabel, sourceNamespaceAnnotation, sourceWorkloadAnnotation}

// overridesByNamespace groups the overrides, in their order, so that a
// workload is matched against its namespace's only.
func overridesByNamespace(overrides []policyOverride) map[string][]policyOverride {
	out := map[string][]policyOverride{}
	for _, o := range overrides {
		out[o.namespace] = append(out[o.namespace], o)
	}
	return out
}

// resolveWorkload is resolvePolicy with the window clamped to recWindow,
// the history the recommender keeps. clampedFrom is the window asked for
// when a label, annotation or override asked for more; the cluster's own
// window is clamped silently, since New warns about it once.
func resolveWorkload(cluster recommend.Policy, overrides []policyOverride, recWindow time.Duration, id inventory.ID, layers []policyLayer) (p recommend.Policy, src policySources, clampedFrom time.Duration) {
	p, src = resolvePolicy(cluster, overrides, id, layers...)
	win, clamped := effectiveWindow(p.Window, recWindow)
	if clamped && src["window"] != "" {
		clampedFrom = p.Window
	}
	p.Window = win
	return p, src, clampedFrom
}

// effectiveWindow is the window a policy can have with the history
// fetched: at most exporter.window; 0 (unset) means all of it.
func effectiveWindow(w, fetched time.Duration) (time.Duration, bool) {
	if w <= 0 {
		return fetched, false
	}
	if w > fetched {
		return fetched, true
	}
	return w, false
}

// PolicyResult is a workload's resolved recommendation policy, served when
// some knob is not the cluster's default.
type PolicyResult struct {
	CPUPercentile   float64 `json:"cpu_percentile"`
	CPUMargin       float64 `json:"cpu_margin"`
	MemoryMargin    float64 `json:"memory_margin"`
	Window          string  `json:"window"`
	MinCPUCores     float64 `json:"min_cpu_cores"`
	MinMemoryBytes  float64 `json:"min_memory_bytes"`
	LimitPolicy     string  `json:"limit_policy"`
	ChangeThreshold float64 `json:"change_threshold"`
	MinConfidence   float64 `json:"min_confidence"`
	// Sources names, for each knob not from exporter.recommend, the
	// override, label or annotation that set it.
	Sources map[string]string `json:"sources"`
	// WindowClampedFrom is the window asked for when it was longer than
	// exporter.window, the history fetched.
	WindowClampedFrom string `json:"window_clamped_from,omitempty"`
}

func policyResult(p recommend.Policy, src policySources, clampedFrom time.Duration) *PolicyResult {
	r := &PolicyResult{
		CPUPercentile: p.CPUPercentile, CPUMargin: p.CPUMargin, MemoryMargin: p.MemoryMargin,
		Window: model.Duration(p.Window).String(), MinCPUCores: p.MinCPU, MinMemoryBytes: p.MinMemory,
		LimitPolicy: string(p.Limits), ChangeThreshold: p.ChangeThreshold, MinConfidence: p.MinConfidence,
		Sources: src,
	}
	if clampedFrom > 0 {
		r.WindowClampedFrom = model.Duration(clampedFrom).String()
	}
	return r
}

// ConfigPolicies resolves workloads' policies as the exporter does, outside
// of its cycle: exporter.recommend and its overrides, then, after
// WithCluster, the upid.io/ labels and annotations of the cluster's
// namespaces and workloads, in the exporter's precedence and with its clamp
// of the window to exporter.recommend.window. upid backtest replays with it.
type ConfigPolicies struct {
	cluster   recommend.Policy
	overrides map[string][]policyOverride
	// From WithCluster: each namespace's layers, and the whole layers of
	// the workloads that have upid.io/ annotations of their own.
	nsLayers map[string][]policyLayer
	layers   map[inventory.ID][]policyLayer
}

// NewConfigPolicies checks exporter.recommend and its overrides; the errors
// name the key, as config.Load's do, all of them at once.
func NewConfigPolicies(cfg config.Recommend) (*ConfigPolicies, error) {
	p, perr := cfg.Policy()
	if perr != nil {
		perr = fmt.Errorf("exporter.recommend: %w", perr)
	}
	overrides, oerr := policyOverrides(cfg)
	if err := errors.Join(perr, oerr); err != nil {
		return nil, err
	}
	return &ConfigPolicies{cluster: p, overrides: overridesByNamespace(overrides)}, nil
}

// Cluster is exporter.recommend's policy.
func (c *ConfigPolicies) Cluster() recommend.Policy { return c.cluster }

// WithCluster adds the upid.io/ labels and annotations of the snapshot's
// namespaces and workloads. It returns the values it ignored, one line
// each naming the object, the label or annotation and why; as in the
// exporter, a bad value drops that knob only.
func (c *ConfigPolicies) WithCluster(inv inventory.Snapshot) []string {
	var problems []policyProblem
	c.nsLayers, problems = namespaceLayers(inv.Namespaces)
	c.layers = map[inventory.ID][]policyLayer{}
	for _, w := range inv.Workloads {
		if len(w.Annotations) > 0 {
			layers, ps := workloadLayers(w, c.nsLayers[w.Namespace])
			c.layers[w.ID] = layers
			problems = append(problems, ps...)
		}
	}
	out := make([]string, 0, len(problems))
	for _, p := range problems {
		obj := "namespace " + p.Namespace
		if p.Kind != "" {
			obj = p.Namespace + "/" + p.Kind + "/" + p.Workload
		}
		out = append(out, fmt.Sprintf("%s: %s %s=%q ignored: %s", obj, strings.ReplaceAll(p.Source, "_", " "), p.Key, p.Value, p.Msg))
	}
	slices.Sort(out)
	return out
}

// Policy is the policy of one workload and where the knobs that are not
// exporter.recommend's came from (overrides in the configuration's order,
// then labels and annotations); none means Cluster's.
func (c *ConfigPolicies) Policy(namespace, kind, workload string) (recommend.Policy, []string) {
	id := inventory.ID{Namespace: namespace, Kind: kind, Name: workload}
	layers, ok := c.layers[id]
	if !ok {
		layers = c.nsLayers[namespace]
	}
	p, src, _ := resolveWorkload(c.cluster, c.overrides[namespace], c.cluster.Window, id, layers)
	var from, fromLayers []string
	for _, o := range c.overrides[namespace] {
		at := fmt.Sprintf("exporter.recommend.overrides[%d]", o.index)
		for _, s := range src {
			if s == at {
				from = append(from, at)
				break
			}
		}
	}
	for _, s := range src {
		if !strings.HasPrefix(s, "exporter.recommend.overrides[") && !slices.Contains(fromLayers, s) {
			fromLayers = append(fromLayers, s)
		}
	}
	slices.Sort(fromLayers)
	return p, append(from, fromLayers...)
}
