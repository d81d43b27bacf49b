package recommend

import (
	"math"
	"slices"
	"testing"
)

func TestPairHPA(t *testing.T) {
	for _, c := range []struct {
		name     string
		target   float64
		unit     float64
		cs       []HPAContainer
		ok       bool
		want     float64
		requests []float64
	}{
		// 0.3 core is below 0.8 × 1: pods held at 80 % of today's request
		// use 0.8 core, so 0.8 it is, at a 100 % target.
		{"floor at the target's usage", 0.8, 0.001, []HPAContainer{{1, 0.3}}, true, 1, []float64{0.8}},
		// 0.5 × 1 / 0.7 = 0.714… → 71 %.
		{"figure above the floor", 0.5, 0.001, []HPAContainer{{1, 0.7}}, true, 0.71, []float64{0.7}},
		// 0.7 × 2 / 1.4 is 1 exactly, not 99 % from binary rounding.
		{"exact product", 0.7, 0.001, []HPAContainer{{2, 1.4}}, true, 1, []float64{1.4}},
		// Pod-level: max(0.4, 0.6 × 1) = 0.6 and 0.5 without a figure
		// stays: 0.6 × 1.5 / 1.1 = 0.818… → 81 %.
		{"pod of two", 0.6, 0.001, []HPAContainer{{1, 0.4}, {0.5, 0}}, true, 0.81, []float64{0.6, 0.5}},
		// Needing more lowers the target: 0.8 × 0.5 / 0.9 = 0.444… → 44 %.
		{"needs more", 0.8, 0.001, []HPAContainer{{0.5, 0.9}}, true, 0.44, []float64{0.9}},
		// 0.75 × 0.333 = 0.24975 → 0.250 core; 0.75 × 0.333 / 0.25 = 0.999 → 99 %.
		{"floor rounded up", 0.75, 0.001, []HPAContainer{{0.333, 0.1}}, true, 0.99, []float64{0.25}},
		{"no current request", 0.8, 0.001, []HPAContainer{{0, 0.3}}, false, 0, nil},
		{"no target", 0, 0.001, []HPAContainer{{1, 0.3}}, false, 0, nil},
		{"no figure", 0.8, 0.001, []HPAContainer{{1, 0}}, false, 0, nil},
		{"no containers", 0.8, 0.001, nil, false, 0, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := PairHPA(c.target, c.unit, c.cs)
			if ok != c.ok || got.Target != c.want || len(got.Requests) != len(c.requests) {
				t.Fatalf("PairHPA = %+v, %v; want target %v, %v, requests %v", got, ok, c.want, c.ok, c.requests)
			}
			if !slices.EqualFunc(got.Requests, c.requests, func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }) {
				t.Errorf("requests %v, want %v", got.Requests, c.requests)
			}
		})
	}
}

// TestPairHPAKeepsTheScalingPoint: whatever the figures, the usage per pod
// at which the HPA scales (target × Σrequests) moves by less than the
// percent the target is rounded to, and never up: the HPA scales no later
// than today.
func TestPairHPAKeepsTheScalingPoint(t *testing.T) {
	for _, target := range []float64{0.3, 0.5, 0.7, 0.8, 0.95} {
		for _, fig := range []float64{0.01, 0.2, 0.45, 0.9, 1.7, 3} {
			cs := []HPAContainer{{0.75, fig}, {0.25, fig / 3}}
			p, ok := PairHPA(target, 0.001, cs)
			if !ok {
				t.Fatalf("target %v figure %v: no pair", target, fig)
			}
			before := target * (cs[0].Current + cs[1].Current)
			after := p.Target * (p.Requests[0] + p.Requests[1])
			if after > before+1e-9 || after < before-0.01*(p.Requests[0]+p.Requests[1])-1e-9 {
				t.Errorf("target %v figure %v: scales at %v per pod, was %v", target, fig, after, before)
			}
			if p.Target > 1 {
				t.Errorf("target %v figure %v: new target %v above 100 %%", target, fig, p.Target)
			}
			sum := cs[0].Current + cs[1].Current
			if want := (p.Requests[0] + p.Requests[1] - sum) / sum; math.Abs(p.Change-want) > 1e-12 {
				t.Errorf("target %v figure %v: change %v, want %v", target, fig, p.Change, want)
			}
		}
	}
}

// FuzzPairHPA: whatever the target and requests, PairHPA never panics, and
// a pair it returns has one request per container, each at least target ×
// its current one (or the current one without a figure), and a whole-percent
// target at which the HPA scales no later than today.
func FuzzPairHPA(f *testing.F) {
	f.Add(0.8, 1.0, 0.3, 0.5, 0.0)
	f.Add(0.5, 0.333, 0.9, 2.0, 1.7)
	f.Add(1.5, 1e-9, 1e9, 1.0, math.NaN())
	f.Fuzz(func(t *testing.T, target, cur1, fig1, cur2, fig2 float64) {
		cs := []HPAContainer{{cur1, fig1}, {cur2, fig2}}
		p, ok := PairHPA(target, 0.001, cs)
		if !ok {
			return
		}
		if len(p.Requests) != 2 || !(p.Target >= 0.01) || math.Abs(p.Target*100-math.Round(p.Target*100)) > 1e-6 {
			t.Fatalf("PairHPA(%v, %v) = %+v", target, cs, p)
		}
		before, after := 0.0, 0.0
		for i, c := range cs {
			if !(p.Requests[i] >= c.Current*math.Min(target, 1)-0.001) {
				t.Fatalf("container %d: request %v under %v × %v", i, p.Requests[i], target, c.Current)
			}
			before += target * c.Current
			after += p.Requests[i]
		}
		// The 1 % floor on the target can only raise it for tiny ratios.
		if p.Target > 0.01 && p.Target*after > before*(1+1e-9)+1e-12 {
			t.Fatalf("scales at %v per pod, was %v: %+v", p.Target*after, before, p)
		}
	})
}
