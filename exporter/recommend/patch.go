package recommend

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	kresource "k8s.io/apimachinery/pkg/api/resource"
)

// Knobs are the Policy fields an SRE sets per namespace or workload, by
// their configuration keys (exporter.recommend.*, overrides) and their
// annotations. The other fields are model constants that docs/recommendations.md
// justifies; they are not meant to be tuned per workload.
var Knobs = []Knob{
	{Key: "cpu_percentile", Annotation: "upid.io/cpu-percentile", field: "CPUPercentile"},
	{Key: "cpu_margin", Annotation: "upid.io/cpu-margin", field: "CPUMargin"},
	{Key: "memory_margin", Annotation: "upid.io/memory-margin", field: "MemoryMargin"},
	{Key: "window", Annotation: "upid.io/recommend-window", field: "Window"},
	{Key: "min_cpu", Annotation: "upid.io/min-cpu", field: "MinCPU"},
	{Key: "min_memory", Annotation: "upid.io/min-memory", field: "MinMemory"},
	{Key: "limit_policy", Annotation: "upid.io/limit-policy", field: "Limits"},
	{Key: "change_threshold", Annotation: "upid.io/change-threshold", field: "ChangeThreshold"},
	{Key: "min_confidence", Annotation: "upid.io/min-confidence", field: "MinConfidence"},
}

// Knob is one settable Policy field.
type Knob struct {
	Key        string // configuration key, e.g. cpu_percentile
	Annotation string // namespace label or annotation, workload annotation
	field      string // Policy field name, as Validate names it
}

// Patch is a partial Policy: the knobs set at one level (a configuration
// override, a namespace, a workload). Nil fields are inherited from the
// level below.
type Patch struct {
	CPUPercentile   *float64
	CPUMargin       *float64
	MemoryMargin    *float64
	Window          *time.Duration
	MinCPU          *float64 // cores
	MinMemory       *float64 // bytes
	Limits          *LimitPolicy
	ChangeThreshold *float64
	MinConfidence   *float64
}

// Empty says no knob is set.
func (o Patch) Empty() bool { return o == Patch{} }

// Apply sets p's fields from the patch and returns the keys it set, in
// Knobs order.
func (o Patch) Apply(p *Policy) []string {
	var set []string
	f := func(key string, dst, src *float64) {
		if src != nil {
			*dst = *src
			set = append(set, key)
		}
	}
	f("cpu_percentile", &p.CPUPercentile, o.CPUPercentile)
	f("cpu_margin", &p.CPUMargin, o.CPUMargin)
	f("memory_margin", &p.MemoryMargin, o.MemoryMargin)
	if o.Window != nil {
		p.Window = *o.Window
		set = append(set, "window")
	}
	f("min_cpu", &p.MinCPU, o.MinCPU)
	f("min_memory", &p.MinMemory, o.MinMemory)
	if o.Limits != nil {
		p.Limits = *o.Limits
		set = append(set, "limit_policy")
	}
	f("change_threshold", &p.ChangeThreshold, o.ChangeThreshold)
	f("min_confidence", &p.MinConfidence, o.MinConfidence)
	return set
}

// KnobError is a bad value of one knob.
type KnobError struct {
	Key string
	Msg string
}

func (e *KnobError) Error() string { return e.Key + ": " + e.Msg }

// Validate reports each knob that Recommend would replace by its default,
// one *KnobError per knob, joined.
func (o Patch) Validate() error {
	p := DefaultPolicy()
	o.Apply(&p)
	ff, df := p.fields()
	var errs []error
	for _, f := range ff {
		if key := knobKey[f.name]; key != "" && f.bad(*f.v) {
			errs = append(errs, &KnobError{Key: key, Msg: fmt.Sprintf("%v is out of range: want %s", *f.v, f.want())})
		}
	}
	for _, f := range df {
		if key := knobKey[f.name]; key != "" && f.bad(*f.v) {
			errs = append(errs, &KnobError{Key: key, Msg: fmt.Sprintf("%s must be positive", model.Duration(*f.v))})
		}
	}
	if !p.Limits.valid() {
		errs = append(errs, &KnobError{Key: "limit_policy", Msg: fmt.Sprintf("%q is not keep, scale or remove-cpu", p.Limits)})
	}
	return errors.Join(errs...)
}

// knobKey maps a Policy field name to its knob's key.
var knobKey = func() map[string]string {
	m := map[string]string{}
	for _, k := range Knobs {
		m[k.field] = k.Key
	}
	return m
}()

// Set parses one knob from text, as annotations and labels carry it:
// fractions as numbers (0.95), the window as a Prometheus duration (7d),
// minimums as Kubernetes quantities (50m, 128Mi), the limit policy by name.
// A value that parses but is out of range is an error too, so that a bad
// value never reaches Recommend.
func (o *Patch) Set(key, raw string) error {
	raw = strings.TrimSpace(raw)
	num := func(dst **float64) error {
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return &KnobError{Key: key, Msg: fmt.Sprintf("%q is not a number", raw)}
		}
		*dst = &v
		return nil
	}
	quantity := func(dst **float64, example string) error {
		q, err := kresource.ParseQuantity(raw)
		if err != nil {
			return &KnobError{Key: key, Msg: fmt.Sprintf("%q is not a quantity such as %s", raw, example)}
		}
		v := q.AsApproximateFloat64()
		*dst = &v
		return nil
	}
	var trial Patch
	var err error
	switch key {
	case "cpu_percentile":
		err = num(&trial.CPUPercentile)
	case "cpu_margin":
		err = num(&trial.CPUMargin)
	case "memory_margin":
		err = num(&trial.MemoryMargin)
	case "change_threshold":
		err = num(&trial.ChangeThreshold)
	case "min_confidence":
		err = num(&trial.MinConfidence)
	case "min_cpu":
		err = quantity(&trial.MinCPU, "50m or 0.05")
	case "min_memory":
		err = quantity(&trial.MinMemory, "128Mi")
	case "window":
		d, perr := model.ParseDuration(raw)
		if perr != nil {
			err = &KnobError{Key: key, Msg: fmt.Sprintf("%q is not a duration such as 7d or 36h", raw)}
		} else {
			v := time.Duration(d)
			trial.Window = &v
		}
	case "limit_policy":
		v := LimitPolicy(raw)
		trial.Limits = &v
	default:
		return &KnobError{Key: key, Msg: "unknown knob"}
	}
	if err != nil {
		return err
	}
	if err := trial.Validate(); err != nil {
		return err
	}
	o.merge(trial)
	return nil
}

// merge copies the knobs set in x.
func (o *Patch) merge(x Patch) {
	for _, p := range []struct{ dst, src **float64 }{
		{&o.CPUPercentile, &x.CPUPercentile}, {&o.CPUMargin, &x.CPUMargin}, {&o.MemoryMargin, &x.MemoryMargin},
		{&o.MinCPU, &x.MinCPU}, {&o.MinMemory, &x.MinMemory}, {&o.ChangeThreshold, &x.ChangeThreshold},
		{&o.MinConfidence, &x.MinConfidence},
	} {
		if *p.src != nil {
			*p.dst = *p.src
		}
	}
	if x.Window != nil {
		o.Window = x.Window
	}
	if x.Limits != nil {
		o.Limits = x.Limits
	}
}
