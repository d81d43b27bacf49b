package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/recommend"
)

// Recommend is the rightsizing policy of the exporter (docs/recommendations.md):
// the cluster's defaults, then overrides per namespace and workload.
// Namespace labels or annotations and workload annotations (upid.io/cpu-percentile
// and the like) win over both.
type Recommend struct {
	CPUPercentile   float64             `yaml:"cpu_percentile" doc:"Percentile of the 5-minute mean CPU usage that the CPU request covers, above 0 and at most 1."`
	CPUMargin       float64             `yaml:"cpu_margin" doc:"Fraction added to that percentile (0.1 is 10%)."`
	MemoryMargin    float64             `yaml:"memory_margin" doc:"Fraction added to the window's peak working set; memory is never recommended below peak × (1 + memory_margin)."`
	Window          model.Duration      `yaml:"window" doc:"History a recommendation rests on, kept by the recommender's incremental state (independent of exporter.window); an override, label or annotation asking for more is clamped to it with a logged warning."`
	MinCPU          string              `yaml:"min_cpu" doc:"Smallest CPU request recommended, as a Kubernetes quantity above 0 (10m, 0.5)."`
	MinMemory       string              `yaml:"min_memory" doc:"Smallest memory request recommended, as a Kubernetes quantity (32Mi, 1Gi)."`
	LimitPolicy     string              `yaml:"limit_policy" enum:"keep,scale,remove-cpu" doc:"Limits when requests change: keep leaves them (raised to the request if below), scale keeps their ratio to the request, remove-cpu drops CPU limits and scales memory limits."`
	ChangeThreshold float64             `yaml:"change_threshold" doc:"Relative change of a request below which the recommendation is not worth applying (0.1 is 10%), unless the current request is unsafe."`
	MinConfidence   float64             `yaml:"min_confidence" doc:"Confidence (0-1, from the history covered; 1 is a week) below which there is no recommendation."`
	Overrides       []RecommendOverride `yaml:"overrides" doc:"Policy per namespace, or per workload with workload (and optionally kind): each entry has namespace and any of the keys above; entries with a workload win over those without, later entries over earlier ones."`
}

// RecommendOverride sets some knobs for one namespace, or one workload.
type RecommendOverride struct {
	Namespace string `yaml:"namespace"`
	// Workload empty means every workload of the namespace (of Kind, if set).
	Workload        string          `yaml:"workload,omitempty"`
	Kind            string          `yaml:"kind,omitempty"`
	CPUPercentile   *float64        `yaml:"cpu_percentile,omitempty"`
	CPUMargin       *float64        `yaml:"cpu_margin,omitempty"`
	MemoryMargin    *float64        `yaml:"memory_margin,omitempty"`
	Window          *model.Duration `yaml:"window,omitempty"`
	MinCPU          string          `yaml:"min_cpu,omitempty"`
	MinMemory       string          `yaml:"min_memory,omitempty"`
	LimitPolicy     string          `yaml:"limit_policy,omitempty"`
	ChangeThreshold *float64        `yaml:"change_threshold,omitempty"`
	MinConfidence   *float64        `yaml:"min_confidence,omitempty"`
}

var workloadKinds = []string{
	inventory.KindDeployment, inventory.KindStatefulSet, inventory.KindDaemonSet, inventory.KindReplicaSet,
	inventory.KindJob, inventory.KindCronJob, inventory.KindPod, inventory.KindRollout,
}

// defaultRecommend is recommend.DefaultPolicy in configuration terms, so
// that the two cannot disagree.
func defaultRecommend() Recommend {
	d := recommend.DefaultPolicy()
	return Recommend{
		CPUPercentile:   d.CPUPercentile,
		CPUMargin:       d.CPUMargin,
		MemoryMargin:    d.MemoryMargin,
		Window:          model.Duration(d.Window),
		MinCPU:          resource.NewMilliQuantity(int64(math.Round(d.MinCPU*1000)), resource.DecimalSI).String(),
		MinMemory:       resource.NewQuantity(int64(d.MinMemory), resource.BinarySI).String(),
		LimitPolicy:     string(d.Limits),
		ChangeThreshold: d.ChangeThreshold,
		MinConfidence:   d.MinConfidence,
		Overrides:       []RecommendOverride{},
	}
}

// Policy is the cluster's default policy. The error joins one
// *recommend.KnobError per bad knob.
func (r Recommend) Policy() (recommend.Policy, error) {
	lp := recommend.LimitPolicy(r.LimitPolicy)
	w := time.Duration(r.Window)
	o := recommend.Patch{
		CPUPercentile: &r.CPUPercentile, CPUMargin: &r.CPUMargin, MemoryMargin: &r.MemoryMargin, Window: &w,
		Limits: &lp, ChangeThreshold: &r.ChangeThreshold, MinConfidence: &r.MinConfidence,
	}
	errs := []error{o.Validate()}
	errs = append(errs, o.Set("min_cpu", r.MinCPU), o.Set("min_memory", r.MinMemory))
	p := recommend.DefaultPolicy()
	o.Apply(&p)
	return p, errors.Join(errs...)
}

// Patch is the override's knobs. The error joins one *recommend.KnobError
// per bad knob.
func (o RecommendOverride) Patch() (recommend.Patch, error) {
	out := recommend.Patch{
		CPUPercentile: o.CPUPercentile, CPUMargin: o.CPUMargin, MemoryMargin: o.MemoryMargin,
		ChangeThreshold: o.ChangeThreshold, MinConfidence: o.MinConfidence,
	}
	if o.Window != nil {
		w := time.Duration(*o.Window)
		out.Window = &w
	}
	if o.LimitPolicy != "" {
		lp := recommend.LimitPolicy(o.LimitPolicy)
		out.Limits = &lp
	}
	errs := []error{out.Validate()}
	for _, q := range []struct{ key, raw string }{{"min_cpu", o.MinCPU}, {"min_memory", o.MinMemory}} {
		if q.raw != "" {
			errs = append(errs, out.Set(q.key, q.raw))
		}
	}
	return out, errors.Join(errs...)
}

// validate checks what the tags cannot: the knobs' ranges and each
// override, naming the override by its index. source gives a key's origin.
func (r Recommend) validate(prefix string, source func(key string) string) []error {
	var errs []error
	knobErrs := func(err error, at func(key string) (string, string)) {
		for _, e := range Flatten(err) {
			var ke *recommend.KnobError
			if errors.As(e, &ke) {
				if src, key := at(ke.Key); key != "" {
					errs = append(errs, &Error{Source: src, Key: key, Msg: ke.Msg})
				}
			} else {
				errs = append(errs, &Error{Source: source(prefix), Key: prefix, Msg: e.Error()})
			}
		}
	}
	_, err := r.Policy()
	knobErrs(err, func(k string) (string, string) {
		if k == "limit_policy" {
			return "", "" // its enum tag reports it
		}
		return source(prefix + "." + k), prefix + "." + k
	})
	list := prefix + ".overrides"
	for i, o := range r.Overrides {
		at := fmt.Sprintf("%s[%d]", list, i)
		if o.Namespace == "" {
			errs = append(errs, &Error{Source: source(list), Key: at + ".namespace", Msg: "must not be empty: an override applies to one namespace, or one workload in it"})
		}
		if o.Kind != "" && !contains(workloadKinds, o.Kind) {
			errs = append(errs, &Error{Source: source(list), Key: at + ".kind", Msg: fmt.Sprintf("invalid value %q: want one of %s", o.Kind, strings.Join(workloadKinds, ", "))})
		}
		p, err := o.Patch()
		knobErrs(err, func(k string) (string, string) { return source(list), at + "." + k })
		if err == nil && p.Empty() {
			errs = append(errs, &Error{Source: source(list), Key: at, Msg: "sets no knob: give at least one of " + knobKeys()})
		}
	}
	return errs
}

func knobKeys() string {
	keys := make([]string, len(recommend.Knobs))
	for i, k := range recommend.Knobs {
		keys[i] = k.Key
	}
	return strings.Join(keys, ", ")
}

// Flatten undoes errors.Join, however nested, so that each error (of a
// configuration, or of manifests) prints on its own line.
func Flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Flatten(e)...)
		}
		return out
	}
	return []error{err}
}
