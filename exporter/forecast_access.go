package exporter

import (
	"math"
	"sort"
	"time"

	"github.com/upid-dev/upid/exporter/forecast"
	"github.com/upid-dev/upid/exporter/history"
)

// WorkloadForecast is the forecast of one workload of the last cycle, as
// the forecast metrics publish it, for callers that read it in process
// (the CLI) rather than through /metrics.
type WorkloadForecast struct {
	Namespace, Kind, Workload string
	CPU                       []forecast.Summary
	// Memory is the working-set forecast in bytes; nil when its history is
	// too short (as CPU is).
	Memory []forecast.Summary
	// CostPerHour holds the forecast spend per hour at each CPU summary's
	// p10, p50 and p90, with memory at the same horizon's same stat; nil
	// when the workload requests no CPU and so has no price per core to
	// grow by (as on the cost metric).
	CostPerHour [][3]float64
	// Anomaly and MemoryAnomaly are the usage anomaly scores of CPU and
	// memory, NaN when unknown.
	Anomaly, MemoryAnomaly float64
}

// Forecasts returns the forecasts of the workloads of the last cycle that
// have one, ordered by namespace, kind and name; nil before the first
// successful forecast run.
func (s *Service) Forecasts() []WorkloadForecast {
	return s.read().workloadForecasts()
}

func (r *reading) workloadForecasts() []WorkloadForecast {
	r.listOnce.Do(func() { r.list = r.forecastsOf() })
	return r.list
}

func (r *reading) forecastsOf() []WorkloadForecast {
	res, byKey := r.results, r.forecasts.byKey
	if res == nil || byKey == nil {
		return nil
	}
	var out []WorkloadForecast
	for _, w := range res.Workloads {
		wf, ok := byKey[history.Key{Namespace: w.Namespace, Kind: w.Kind, Workload: w.Name}]
		if !ok {
			continue
		}
		o := WorkloadForecast{Namespace: w.Namespace, Kind: w.Kind, Workload: w.Name, CPU: append([]forecast.Summary{}, wf.CPU...),
			Anomaly: wf.Anomaly[history.CPU], MemoryAnomaly: wf.Anomaly[history.Memory]}
		if wf.Memory != nil {
			o.Memory = append([]forecast.Summary{}, wf.Memory...)
		}
		if w.RequestedCPUCores > 0 && len(wf.CPU) > 0 {
			for _, sum := range wf.CPU {
				mem := [3]float64{math.NaN(), math.NaN(), math.NaN()}
				for _, m := range wf.Memory {
					if m.Horizon == sum.Horizon {
						mem = [3]float64{m.P10, m.P50, m.P90}
					}
				}
				var c [3]float64
				for i, q := range []float64{sum.P10, sum.P50, sum.P90} {
					c[i], _ = forecastCost(w, q, mem[i])
				}
				o.CostPerHour = append(o.CostPerHour, c)
			}
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Workload < b.Workload
	})
	return out
}

// MemoryHorizon returns the memory summary for horizon h, if forecast.
func (f WorkloadForecast) MemoryHorizon(h time.Duration) (forecast.Summary, bool) {
	for _, s := range f.Memory {
		if s.Horizon == h {
			return s, true
		}
	}
	return forecast.Summary{}, false
}

// Horizon returns the CPU summary and cost for horizon h, if forecast.
func (f WorkloadForecast) Horizon(h time.Duration) (sum forecast.Summary, cost *[3]float64, ok bool) {
	for i, s := range f.CPU {
		if s.Horizon == h {
			if i < len(f.CostPerHour) {
				c := f.CostPerHour[i]
				cost = &c
			}
			return s, cost, true
		}
	}
	return forecast.Summary{}, nil, false
}
