package exporter

import (
	"math"
	"testing"

	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/recommend"
)

// TestPodAdvice: the pod-level request from the containers' own figures,
// its floor and its current value, worked by hand.
func TestPodAdvice(t *testing.T) {
	const mib = 1 << 20
	app := inventory.Container{Name: "app"}
	proxy := inventory.Container{Name: "proxy", Init: true, Sidecar: true}
	migrate := inventory.Container{Name: "migrate", Init: true}
	recs := map[string]recommend.Recommendation{
		"app":   {OwnCPU: 0.3, OwnMemory: 300 * mib, Confidence: 1},
		"proxy": {OwnCPU: 0.05, OwnMemory: 60 * mib, Confidence: 0.7},
	}
	prices := recommend.Prices{CPUCoreHour: 0.04, MemoryGiBHour: 0.008}
	type want struct {
		res          string
		cur, req     float64
		apply        bool
		savingsPerHr float64
	}
	for _, c := range []struct {
		name       string
		containers []inventory.Container
		pod        inventory.PodResources
		hpa        []inventory.HPAResource
		recs       map[string]recommend.Recommendation
		want       []want
	}{{
		name:       "sum of the figures against the pod's request",
		containers: []inventory.Container{app, proxy},
		pod:        inventory.PodResources{CPURequest: 1, MemoryRequest: 1024 * mib},
		want: []want{
			{"cpu", 1, 0.35, true, (1 - 0.35) * 0.04 * 3},
			{"memory", 1024 * mib, 360 * mib, true, (1024 - 360) * 0.008 / 1024 * 3},
		},
	}, {
		// 600m requested by the containers stays the floor; memory is
		// limited at pod level only, with no container request: the API
		// server makes the pod's request from the limit.
		name: "containers' requests are a floor, a limit alone is the current request",
		containers: []inventory.Container{
			{Name: "app", CPURequest: 0.5}, {Name: "proxy", Init: true, Sidecar: true, CPURequest: 0.1},
		},
		pod: inventory.PodResources{CPULimit: 2, MemoryLimit: 512 * mib},
		want: []want{
			{"cpu", 0.6, 0.6, false, 0},
			{"memory", 512 * mib, 360 * mib, true, (512 - 360) * 0.008 / 1024 * 3},
		},
	}, {
		// An init container runs with the sidecars started before it:
		// 1.5 + 0.1. The template lists init containers first.
		name:       "an init container raises the floor",
		containers: []inventory.Container{proxy, {Name: "p2", Init: true, Sidecar: true, CPURequest: 0.1}, {Name: "migrate", Init: true, CPURequest: 1.5}, app},
		pod:        inventory.PodResources{CPURequest: 2},
		recs:       map[string]recommend.Recommendation{"app": {OwnCPU: 0.3}, "proxy": {OwnCPU: 0.05}, "p2": {OwnCPU: 0.05}},
		want:       []want{{"cpu", 2, 1.6, true, 0.4 * 0.04 * 3}},
	}, {
		// A sidecar started after it does not run beside it: 1.5.
		name:       "a sidecar after an init container",
		containers: []inventory.Container{proxy, {Name: "migrate", Init: true, CPURequest: 1.5}, {Name: "p2", Init: true, Sidecar: true, CPURequest: 0.1}, app},
		pod:        inventory.PodResources{CPURequest: 2},
		recs:       map[string]recommend.Recommendation{"app": {OwnCPU: 0.3}, "proxy": {OwnCPU: 0.05}, "p2": {OwnCPU: 0.05}},
		want:       []want{{"cpu", 2, 1.5, true, 0.5 * 0.04 * 3}},
	}, {
		name:       "the pod's limit caps",
		containers: []inventory.Container{app, proxy, migrate},
		pod:        inventory.PodResources{CPURequest: 0.2, CPULimit: 0.25},
		want:       []want{{"cpu", 0.2, 0.25, true, -0.05 * 0.04 * 3}},
	}, {
		name:       "a container without a figure",
		containers: []inventory.Container{app, {Name: "log"}},
		pod:        inventory.PodResources{CPURequest: 1},
	}, {
		name:       "an HPA on the pod's CPU",
		containers: []inventory.Container{app},
		pod:        inventory.PodResources{CPURequest: 1, MemoryRequest: 1024 * mib},
		hpa:        []inventory.HPAResource{{Resource: "cpu", Target: 0.8}},
		want:       []want{{"memory", 1024 * mib, 300 * mib, true, (1024 - 300) * 0.008 / 1024 * 3}},
	}, {
		name:       "no pod-level resources",
		containers: []inventory.Container{app},
	}} {
		t.Run(c.name, func(t *testing.T) {
			w := inventory.Workload{Containers: c.containers, Pod: c.pod, HPAUtilization: c.hpa}
			current := map[string]inventory.Container{}
			for _, ct := range c.containers {
				if !ct.Init || ct.Sidecar {
					current[ct.Name] = ct
				}
			}
			r := recs
			if c.recs != nil {
				r = c.recs
			}
			got := podAdvice(w, current, r, prices, 3, 0.1)
			if len(got) != len(c.want) {
				t.Fatalf("advice %+v, want %+v", got, c.want)
			}
			for i, w := range c.want {
				g := got[i]
				if c.recs == nil && len(c.containers) > 1 && g.Confidence != 0.7 {
					t.Errorf("confidence %v, want the lowest of the containers', 0.7", g.Confidence)
				}
				if g.Resource != w.res || math.Abs(g.CurrentRequest-w.cur) > 1e-9 || math.Abs(g.Request-w.req) > 1e-9 || g.Apply != w.apply ||
					math.Abs(g.SavingsDollarsPerHour-w.savingsPerHr) > 1e-9 {
					t.Errorf("advice %+v, want %+v", g, w)
				}
			}
		})
	}
}
