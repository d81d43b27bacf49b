package exporter

import (
	"math"
	"testing"

	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/recommend"
)

// TestHPAAdvice: which containers each utilization target covers, and the
// dollars of the pair, worked by hand.
func TestHPAAdvice(t *testing.T) {
	current := map[string]inventory.Container{
		"app":     {Name: "app", CPURequest: 1, MemoryRequest: 1 << 30},
		"sidecar": {Name: "sidecar", CPURequest: 0.2, MemoryRequest: 256 << 20},
	}
	recs := map[string]recommend.Recommendation{
		"app":     {OwnCPU: 0.3, OwnMemory: 512 << 20},
		"sidecar": {OwnCPU: 0.15},
	}
	prices := recommend.Prices{CPUCoreHour: 0.04, MemoryGiBHour: 0.005}
	wl := func(hpa ...inventory.HPAResource) inventory.Workload {
		return inventory.Workload{HPA: "web", HPAUtilization: hpa}
	}
	for _, c := range []struct {
		name     string
		w        inventory.Workload
		target   float64
		requests map[string]float64
		perHour  float64 // for the 2 replicas
	}{
		// The pod: app max(0.3, 0.5) = 0.5, sidecar max(0.15, 0.1) =
		// 0.15; 0.5 × 1.2 / 0.65 = 0.923 → 92 %; (0.5 + 0.05) × 0.04 × 2.
		{"pod CPU at 50 %", wl(inventory.HPAResource{Resource: "cpu", Target: 0.5}), 0.92,
			map[string]float64{"app": 0.5, "sidecar": 0.15}, 0.044},
		// One container: app alone, max(0.3, 0.4) = 0.4; 0.4 × 1 / 0.4 = 100 %.
		{"app's CPU at 40 %", wl(inventory.HPAResource{Resource: "cpu", Container: "app", Target: 0.4}), 1,
			map[string]float64{"app": 0.4}, 0.6 * 0.04 * 2},
		// Memory of the pod at 80 %: app max(512 MiB, 819.2 → 820 MiB),
		// sidecar has no figure and keeps 256 MiB; 0.8 × 1280 / 1076 =
		// 0.9516 → 95 %; 204 MiB saved × $0.005/GiB-h × 2.
		{"pod memory at 80 %", wl(inventory.HPAResource{Resource: "memory", Target: 0.8}), 0.95,
			map[string]float64{"app": 820 << 20, "sidecar": 256 << 20}, 204.0 / 1024 * 0.005 * 2},
		// Two CPU targets hold the requests to two ratios: no pair.
		{"two CPU targets", wl(inventory.HPAResource{Resource: "cpu", Target: 0.5}, inventory.HPAResource{Resource: "cpu", Container: "app", Target: 0.6}), 0, nil, 0},
		{"not a resource UPID sizes", wl(inventory.HPAResource{Resource: "nvidia.com/gpu", Target: 0.5}), 0, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := hpaAdvice(c.w, current, recs, prices, 2, 0.1)
			if c.requests == nil {
				if len(got) != 0 {
					t.Fatalf("advice %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("advice %+v, want one", got)
			}
			a := got[0]
			if a.HPA != "web" || !a.Apply || a.TargetUtilization != c.target || len(a.Requests) != len(c.requests) || math.Abs(a.SavingsDollarsPerHour-c.perHour) > 1e-12 ||
				math.Abs(a.MonthlySavings-730*c.perHour) > 1e-9 {
				t.Errorf("advice %+v, want target %v, %v per hour", a, c.target, c.perHour)
			}
			for name, want := range c.requests {
				if math.Abs(a.Requests[name]-want) > 1e-9 {
					t.Errorf("%s request %v, want %v", name, a.Requests[name], want)
				}
			}
		})
	}

	// A figure above the limit stops at it: 0.9 capped at 0.5, above the
	// floor 0.8 × 0.4; 0.8 × 0.4 / 0.5 = 64 %.
	limited := map[string]inventory.Container{"app": {Name: "app", CPURequest: 0.4, CPULimit: 0.5}}
	got := hpaAdvice(wl(inventory.HPAResource{Resource: "cpu", Target: 0.8}), limited, map[string]recommend.Recommendation{"app": {OwnCPU: 0.9}}, prices, 1, 0.1)
	if len(got) != 1 || got[0].Requests["app"] != 0.5 || got[0].TargetUtilization != 0.64 {
		t.Errorf("advice under a limit %+v, want 0.5 core at 64 %%", got)
	}

	// Memory stops nowhere under its own figure (the peak × margin): a
	// limit under it would hold the pair there, so there is no pair.
	memLimited := map[string]inventory.Container{"app": {Name: "app", MemoryRequest: 800 << 20, MemoryLim: 1 << 30}}
	for own, want := range map[float64]int{1078 << 20: 0, 900 << 20: 1} {
		got := hpaAdvice(wl(inventory.HPAResource{Resource: "memory", Target: 0.8}), memLimited, map[string]recommend.Recommendation{"app": {OwnMemory: own}}, prices, 1, 0.1)
		if len(got) != want {
			t.Errorf("memory figure %v under a 1 GiB limit: advice %+v, want %d", own, got, want)
		}
	}

	// A pair in force: 350m at 100 % is already max(0.3, 1 × 0.35), and
	// nothing moves, so it is not worth a rollout.
	inForce := map[string]inventory.Container{"app": {Name: "app", CPURequest: 0.35}}
	got = hpaAdvice(wl(inventory.HPAResource{Resource: "cpu", Target: 1}), inForce, map[string]recommend.Recommendation{"app": {OwnCPU: 0.3}}, prices, 1, 0.1)
	if len(got) != 1 || got[0].Apply || got[0].TargetUtilization != 1 || got[0].SavingsDollarsPerHour != 0 {
		t.Errorf("a pair in force %+v, want no change and Apply false", got)
	}

	// A container without a request leaves the HPA nothing to divide by.
	noReq := map[string]inventory.Container{"app": {Name: "app"}}
	if got := hpaAdvice(wl(inventory.HPAResource{Resource: "cpu", Target: 0.5}), noReq, recs, prices, 2, 0.1); len(got) != 0 {
		t.Errorf("advice %+v without a request", got)
	}
}
