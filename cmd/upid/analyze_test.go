package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/exporter/forecast"
	"github.com/upid-dev/upid/internal/cli"
)

// TestForecastGrowth: the 30-day forecast sums CPU and memory over the
// workloads that have each, and lists those forecast (p90) above their
// requests, most outgrown first.
func TestForecastGrowth(t *testing.T) {
	const gi = 1 << 30
	month := func(p10, p50, p90 float64) []forecast.Summary {
		return []forecast.Summary{{Horizon: forecastHorizon, P10: p10, P50: p50, P90: p90, PeakP90: p90}}
	}
	workload := func(name string, cpu, mem float64) exporter.WorkloadResult {
		return exporter.WorkloadResult{Namespace: "shop", Kind: "Deployment", Name: name, RequestedCPUCores: cpu, RequestedMemoryBytes: mem}
	}
	snap := &snapshot{
		results: &exporter.Results{At: time.Unix(0, 0), Workloads: []exporter.WorkloadResult{
			workload("cpu-bound", 1, 4*gi),
			workload("leaky", 2, 1*gi),
			workload("leakier", 2, 1*gi),
			workload("new", 1, 1*gi),
		}},
		forecasts: []exporter.WorkloadForecast{
			{Namespace: "shop", Kind: "Deployment", Workload: "cpu-bound", CPU: month(1, 1.2, 1.5), Memory: month(1*gi, 2*gi, 3*gi)},
			{Namespace: "shop", Kind: "Deployment", Workload: "leaky", CPU: month(0.5, 1, 1.5), Memory: month(1*gi, 1.2*gi, 1.5*gi)},
			{Namespace: "shop", Kind: "Deployment", Workload: "leakier", CPU: month(0.5, 1, 1.5), Memory: month(1*gi, 1.5*gi, 2*gi)},
			// Too little memory history: CPU only.
			{Namespace: "shop", Kind: "Deployment", Workload: "new", CPU: month(0.1, 0.2, 0.3)},
		},
	}
	all, ns, demo, out := true, "", false, "table"
	a := newAnalysis(snap, &scope{namespace: &ns, all: &all, demo: &demo, output: &out}, 0)
	f := a.Forecast
	if f.Workloads != 4 || f.MemoryWorkloads != 3 || f.MemoryRequested != 6*gi || f.MemoryP90 != 6.5*gi || f.CPURequested != 6 {
		t.Errorf("totals %+v", f)
	}
	if len(f.Outgrowing) != 1 || f.Outgrowing[0].Name != "cpu-bound" {
		t.Errorf("outgrowing CPU %+v, want cpu-bound", f.Outgrowing)
	}
	if len(f.OutgrowingMemory) != 2 || f.OutgrowingMemory[0].Name != "leakier" || f.OutgrowingMemory[1].Name != "leaky" {
		t.Errorf("outgrowing memory %+v, want leakier then leaky", f.OutgrowingMemory)
	}
	var b bytes.Buffer
	if err := a.write(&b, cli.Table, cli.Style{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Memory use forecast: 4813Mi (p50), 3Gi to 6656Mi (p10 to p90), of 6Gi requested.",
		"2 workloads are forecast to use more memory than they request (p90).",
		"FORECAST MEMORY P90", "leakier   1Gi               1536Mi               2Gi",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}
