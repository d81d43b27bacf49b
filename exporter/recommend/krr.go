package recommend

import (
	"math"
	"slices"
	"time"
)

// KRRConfig holds the settings of robusta-dev/krr's "simple" strategy with
// its defaults (robusta_krr/strategies/simple.py, SimpleStrategySettings,
// and robusta_krr/core/abstract/strategies.py, StrategySettings).
type KRRConfig struct {
	// cpu_percentile: the CPU request is this percentile (0–100) of the CPU
	// usage rate over the history, computed by Prometheus with
	// quantile_over_time (PercentileCPULoader).
	CPUPercentile float64
	// memory_buffer_percentage: the memory request and limit are the peak
	// working set (MaxMemoryLoader, max_over_time) plus this percentage.
	MemoryBufferPercentage float64
	// points_required: fewer usage points than this over the history and
	// the resource is left undefined ("Not enough data").
	PointsRequired int
	// history_duration: 24·7·2 hours.
	HistoryDuration time.Duration
	// cpu_min_value (millicores) and memory_min_value (MiB), from
	// robusta_krr/core/models/config.py (Config, defaults 10 and 100): the
	// runner (robusta_krr/core/runner.py, _round_value) rounds every figure
	// up, CPU to 1m and memory to 1 MiB (1024², whatever the setting's
	// "megabytes" comment says; early releases used 10⁶), then raises it
	// to this minimum. A baseline
	// without them recommends requests krr never prints: 0 for an idle
	// container, a few MiB for a small one.
	CPUMinValue    float64
	MemoryMinValue float64
	// use_oomkill_data (off by default) and oom_memory_buffer_percentage:
	// with it, memory is at least the largest OOM-killed limit plus 25 %.
	UseOOMKillData            bool
	OOMMemoryBufferPercentage float64
}

// DefaultKRRConfig returns the simple strategy's defaults.
func DefaultKRRConfig() KRRConfig {
	return KRRConfig{
		CPUPercentile:             95,
		MemoryBufferPercentage:    15,
		PointsRequired:            100,
		HistoryDuration:           14 * 24 * time.Hour,
		CPUMinValue:               10,
		MemoryMinValue:            100,
		OOMMemoryBufferPercentage: 25,
	}
}

// KRRInputs are what the simple strategy's Prometheus queries return for one
// container over HistoryDuration.
type KRRInputs struct {
	CPU               []float64 // CPU usage rate samples in cores, one per step
	MemoryPeak        float64   // max working set in bytes; NaN when unknown
	Points            int       // usage points counted (CPUAmountLoader, MemoryAmountLoader)
	MaxOOMKilledBytes float64   // largest memory limit of an OOM-killed container; 0 when none
}

// KRRResult is the simple strategy's recommendation. CPU has no limit; the
// memory limit equals the memory request. A resource whose OK is false is
// undefined (the strategy prints "?").
type KRRResult struct {
	CPU, Memory     float64
	CPUOK, MemoryOK bool
}

// KRRSimple runs the simple strategy on aggregated inputs, and rounds its
// figures as krr's runner does before printing them.
//
// history_range_enough (three hours) is not checked: krr runs it once per
// cluster in Runner._check_data_availability, and when it fails only logs
// "will try to calculate recommendations anyway"; points_required is what
// leaves a resource undefined.
func KRRSimple(in KRRInputs, cfg KRRConfig) KRRResult {
	var r KRRResult
	if in.Points < cfg.PointsRequired {
		return r
	}
	if len(in.CPU) > 0 {
		r.CPU = PromQuantile(cfg.CPUPercentile/100, in.CPU)
		r.CPUOK = !math.IsNaN(r.CPU)
	}
	// A peak of 0 is data (krr then prints its minimum); NaN is none.
	if in.MemoryPeak >= 0 {
		r.Memory = in.MemoryPeak * (1 + cfg.MemoryBufferPercentage/100)
		if cfg.UseOOMKillData {
			r.Memory = math.Max(r.Memory, in.MaxOOMKilledBytes*(1+cfg.OOMMemoryBufferPercentage/100))
		}
		r.MemoryOK = true
	}
	if r.CPUOK {
		r.CPU = krrRound(r.CPU, 1000, 1.0/1000*cfg.CPUMinValue)
	}
	if r.MemoryOK {
		r.Memory = krrRound(r.Memory, 1.0/mib, mib*cfg.MemoryMinValue)
	}
	return r
}

// krrRound is krr's Runner._round_value: ceil(value·precPower)/precPower,
// then at least minimal. Same operations in the same order and no epsilon
// (unlike roundUp), so that the float results match krr's to the bit.
func krrRound(value, precPower, minimal float64) float64 {
	return math.Max(math.Ceil(value*precPower)/precPower, minimal)
}

// PromQuantile is Prometheus's quantile (promql/quantile.go, quantile): rank
// q·(n−1) interpolated linearly between the neighbouring sorted values; it
// is what quantile_over_time returns, so KRR's CPU figure is reproduced
// exactly. NaN for no values, ±Inf for q outside [0, 1] as in Prometheus.
func PromQuantile(q float64, values []float64) float64 {
	if len(values) == 0 || math.IsNaN(q) {
		return math.NaN()
	}
	if q < 0 {
		return math.Inf(-1)
	}
	if q > 1 {
		return math.Inf(1)
	}
	v := slices.Clone(values)
	slices.Sort(v)
	n := float64(len(v))
	rank := q * (n - 1)
	lo := math.Max(0, math.Floor(rank))
	hi := math.Min(n-1, lo+1)
	w := rank - math.Floor(rank)
	return v[int(lo)]*(1-w) + v[int(hi)]*w
}
