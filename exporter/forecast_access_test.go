package exporter

import (
	"math"
	"testing"
	"time"

	"github.com/upid-dev/upid/exporter/forecast"
	"github.com/upid-dev/upid/exporter/history"
)

func TestForecastsAccessor(t *testing.T) {
	s := &Service{}
	if got := s.Forecasts(); got != nil {
		t.Fatalf("before any run: %v, want nil", got)
	}
	day := 24 * time.Hour
	s.last = &Results{Workloads: []WorkloadResult{
		{Namespace: "b", Kind: "Deployment", Name: "web", RequestedCPUCores: 2, RequestedMemoryBytes: 1 << 30, Cost: Money{CPU: 0.2, Memory: 0.05, Total: 0.25}},
		{Namespace: "a", Kind: "Job", Name: "batch"}, // no CPU requests: no cost
		{Namespace: "a", Kind: "Deployment", Name: "none"},
	}}
	sums := []forecast.Summary{{Horizon: day, P10: 1, P50: 2, P90: 3}, {Horizon: 30 * day, P10: 1, P50: 2.5, P90: 4}}
	// Memory only at 30d, so that 1d prices memory at today's cost.
	mem := []forecast.Summary{{Horizon: 30 * day, P10: 0.5 * (1 << 30), P50: 1 << 30, P90: 2 << 30}}
	s.forecasts.byKey = map[history.Key]workloadForecast{
		{Namespace: "b", Kind: "Deployment", Workload: "web"}: {CPU: sums, Memory: mem, Anomaly: [2]float64{math.NaN(), math.NaN()}},
		{Namespace: "a", Kind: "Job", Workload: "batch"}:      {CPU: sums, Memory: mem, Anomaly: [2]float64{math.NaN(), math.NaN()}},
		// A workload gone from the last cycle is not reported.
		{Namespace: "c", Kind: "Deployment", Workload: "gone"}: {CPU: sums},
	}
	got := s.Forecasts()
	if len(got) != 2 || got[0].Workload != "batch" || got[1].Workload != "web" {
		t.Fatalf("Forecasts = %+v, want batch then web", got)
	}
	if got[0].CostPerHour != nil {
		t.Errorf("batch has no CPU requests, got cost %v", got[0].CostPerHour)
	}
	if len(got[0].Memory) != 1 || got[0].Memory[0].P90 != 2<<30 {
		t.Errorf("batch memory forecast = %v, want the one fitted", got[0].Memory)
	}
	for _, tc := range []struct {
		horizon time.Duration
		// 0.1 $/core-hour and 0.05 $/GiB-hour: p10 1 core and 0.5 GiB stay
		// at the 2 cores and 1 GiB requested, p90 grows to 4 cores and, at
		// 30d, to 2 GiB; at 1d memory has no forecast and stays at today's.
		want [3]float64
	}{
		{30 * day, [3]float64{0.25, 0.30, 0.50}},
		{day, [3]float64{0.25, 0.25, 0.35}},
	} {
		_, cost, ok := got[1].Horizon(tc.horizon)
		if !ok || cost == nil {
			t.Fatalf("web %s: ok=%v cost=%v", tc.horizon, ok, cost)
		}
		for i := range tc.want {
			if math.Abs(cost[i]-tc.want[i]) > 1e-9 {
				t.Errorf("web %s cost[%d] = %v, want %v", tc.horizon, i, cost[i], tc.want[i])
			}
		}
	}
	if _, _, ok := got[1].Horizon(7 * day); ok {
		t.Error("7d was not forecast, Horizon says it was")
	}
}
