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
		{Namespace: "b", Kind: "Deployment", Name: "web", RequestedCPUCores: 2, Cost: Money{CPU: 0.2, Memory: 0.05, Total: 0.25}},
		{Namespace: "a", Kind: "Job", Name: "batch"}, // no CPU requests: no cost
		{Namespace: "a", Kind: "Deployment", Name: "none"},
	}}
	sums := []forecast.Summary{{Horizon: day, P10: 1, P50: 2, P90: 3}, {Horizon: 30 * day, P10: 1, P50: 2.5, P90: 4}}
	s.forecasts.byKey = map[history.Key]workloadForecast{
		{Namespace: "b", Kind: "Deployment", Workload: "web"}: {CPU: sums, Anomaly: math.NaN()},
		{Namespace: "a", Kind: "Job", Workload: "batch"}:      {CPU: sums, Anomaly: math.NaN()},
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
	_, cost, ok := got[1].Horizon(30 * day)
	if !ok || cost == nil {
		t.Fatalf("web 30d: ok=%v cost=%v", ok, cost)
	}
	// 0.1 $/core-hour; p10 1 core stays at the 2 requested, p90 grows to 4.
	want := [3]float64{0.25, 0.30, 0.45}
	for i := range want {
		if math.Abs(cost[i]-want[i]) > 1e-9 {
			t.Errorf("cost[%d] = %v, want %v", i, cost[i], want[i])
		}
	}
	if _, _, ok := got[1].Horizon(7 * day); ok {
		t.Error("7d was not forecast, Horizon says it was")
	}
}
