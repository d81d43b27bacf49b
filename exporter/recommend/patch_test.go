package recommend

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPatchSet(t *testing.T) {
	cases := []struct {
		key, raw string
		want     func(*Policy) // the fields a successful Set changes
		err      string        // substring of the error
	}{
		{key: "cpu_percentile", raw: "0.95", want: func(p *Policy) { p.CPUPercentile = 0.95 }},
		{key: "cpu_percentile", raw: " 1 ", want: func(p *Policy) { p.CPUPercentile = 1 }},
		{key: "cpu_percentile", raw: "95", err: "cpu_percentile: 95 is out of range: want (0, 1]"},
		{key: "cpu_percentile", raw: "0", err: "want (0, 1]"},
		{key: "cpu_percentile", raw: "NaN", err: "out of range"},
		{key: "cpu_percentile", raw: "high", err: `"high" is not a number`},
		{key: "cpu_margin", raw: "0.2", want: func(p *Policy) { p.CPUMargin = 0.2 }},
		{key: "cpu_margin", raw: "-0.1", err: "want [0, 10]"},
		{key: "cpu_margin", raw: "10", want: func(p *Policy) { p.CPUMargin = 10 }},
		// Unbounded, 1e300 made the memory request +Inf, which no JSON can
		// hold: /api/v1/workloads failed for the whole cluster (found in review).
		{key: "memory_margin", raw: "1e300", err: "memory_margin: 1e+300 is out of range: want [0, 10]"},
		{key: "cpu_margin", raw: "10.5", err: "want [0, 10]"},
		{key: "memory_margin", raw: "0.25", want: func(p *Policy) { p.MemoryMargin = 0.25 }},
		{key: "memory_margin", raw: "+Inf", err: "out of range"},
		{key: "window", raw: "7d", want: func(p *Policy) { p.Window = 7 * 24 * time.Hour }},
		{key: "window", raw: "36h", want: func(p *Policy) { p.Window = 36 * time.Hour }},
		{key: "window", raw: "0s", err: "window: 0s must be positive"},
		{key: "window", raw: "a week", err: "not a duration"},
		{key: "min_cpu", raw: "50m", want: func(p *Policy) { p.MinCPU = 0.05 }},
		{key: "min_cpu", raw: "2", want: func(p *Policy) { p.MinCPU = 2 }},
		{key: "min_cpu", raw: "-1", err: "want more than 0"},
		{key: "min_cpu", raw: "0", err: "want more than 0"},
		{key: "min_cpu", raw: "50 m", err: "not a quantity"},
		{key: "min_memory", raw: "128Mi", want: func(p *Policy) { p.MinMemory = 128 * mib }},
		{key: "min_memory", raw: "1G", want: func(p *Policy) { p.MinMemory = 1e9 }},
		{key: "limit_policy", raw: "keep", want: func(p *Policy) { p.Limits = LimitKeep }},
		{key: "limit_policy", raw: "remove-cpu", want: func(p *Policy) { p.Limits = LimitRemoveCPU }},
		{key: "limit_policy", raw: "remove", err: `"remove" is not keep, scale or remove-cpu`},
		{key: "change_threshold", raw: "0.2", want: func(p *Policy) { p.ChangeThreshold = 0.2 }},
		{key: "min_confidence", raw: "0.5", want: func(p *Policy) { p.MinConfidence = 0.5 }},
		{key: "min_confidence", raw: "1.5", err: "want [0, 1]"},
		// strconv.ParseFloat reads these spellings of NaN and infinity;
		// an annotation must not get them past the range check.
		{key: "min_confidence", raw: "nan", err: "out of range"},
		{key: "min_confidence", raw: "-inf", err: "out of range"},
		{key: "change_threshold", raw: "NaN", err: "out of range"},
		{key: "change_threshold", raw: "inf", err: "out of range"},
		{key: "cpu_margin", raw: "Infinity", err: "out of range"},
		{key: "memory_margin", raw: "nan", err: "out of range"},
		{key: "cpu_percentile", raw: "-Inf", err: "out of range"},
		{key: "min_cpu", raw: "NaN", err: "not a quantity"},
		{key: "oom_bump_ratio", raw: "2", err: "unknown knob"},
	}
	for _, c := range cases {
		t.Run(c.key+"="+c.raw, func(t *testing.T) {
			var o Patch
			err := o.Set(c.key, c.raw)
			if c.err != "" {
				var ke *KnobError
				if err == nil || !strings.Contains(err.Error(), c.err) || !errors.As(err, &ke) || ke.Key != c.key {
					t.Fatalf("error %v, want a KnobError for %s containing %q", err, c.key, c.err)
				}
				if !o.Empty() {
					t.Errorf("a bad value was kept: %+v", o)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, want := DefaultPolicy(), DefaultPolicy()
			if keys := o.Apply(&got); !slices.Equal(keys, []string{c.key}) {
				t.Errorf("Apply set %v, want [%s]", keys, c.key)
			}
			c.want(&want)
			if got != want {
				t.Errorf("policy %+v, want %+v", got, want)
			}
		})
	}
}

func TestPatchLayers(t *testing.T) {
	var lowerLevel, upperLevel Patch
	for _, kv := range [][2]string{{"cpu_percentile", "0.8"}, {"memory_margin", "0.3"}, {"window", "3d"}} {
		if err := lowerLevel.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := upperLevel.Set("cpu_percentile", "0.99"); err != nil {
		t.Fatal(err)
	}
	p := DefaultPolicy()
	if got := lowerLevel.Apply(&p); !slices.Equal(got, []string{"cpu_percentile", "memory_margin", "window"}) {
		t.Errorf("keys %v", got)
	}
	upperLevel.Apply(&p)
	if p.CPUPercentile != 0.99 || p.MemoryMargin != 0.3 || p.Window != 72*time.Hour || p.CPUMargin != 0 {
		t.Errorf("layered policy %+v", p)
	}
}

func TestKnobsCoverPatch(t *testing.T) {
	// Every knob parses from text and Apply reports it under the same key.
	raw := map[string]string{"window": "1d", "limit_policy": "scale", "min_cpu": "1", "min_memory": "1Mi"}
	for _, k := range Knobs {
		var o Patch
		v := raw[k.Key]
		if v == "" {
			v = "0.5"
		}
		if err := o.Set(k.Key, v); err != nil {
			t.Errorf("%s: %v", k.Key, err)
			continue
		}
		var p Policy
		if got := o.Apply(&p); !slices.Equal(got, []string{k.Key}) {
			t.Errorf("%s: Apply set %v", k.Key, got)
		}
		if !strings.HasPrefix(k.Annotation, "upid.io/") {
			t.Errorf("%s: annotation %q", k.Key, k.Annotation)
		}
	}
}

// Annotations and labels are written by anyone who may edit a workload or
// namespace: no value may panic, and an accepted one must be valid.
func FuzzPatchSet(f *testing.F) {
	for _, k := range Knobs {
		f.Add(k.Key, "0.5")
	}
	f.Add("min_cpu", "1e400")
	f.Add("min_memory", "9Ei")
	f.Add("window", "292y")
	f.Add("cpu_percentile", "-0")
	f.Add("limit_policy", "")
	f.Fuzz(func(t *testing.T, key, raw string) {
		var o Patch
		if err := o.Set(key, raw); err != nil {
			if !o.Empty() {
				t.Fatalf("%s=%q: rejected but kept %+v", key, raw, o)
			}
			return
		}
		if err := o.Validate(); err != nil {
			t.Fatalf("%s=%q accepted but invalid: %v", key, raw, err)
		}
		p := DefaultPolicy()
		o.Apply(&p)
		if err := p.Validate(); err != nil {
			t.Fatalf("%s=%q: policy invalid: %v", key, raw, err)
		}
	})
}
