package idle

import (
	"errors"
	"fmt"
	"math"
)

// Params are the thresholds of the model. Start from DefaultParams and
// override; docs/idle-score.md explains every default.
//
// Score never fails on bad parameters: a field that is NaN, infinite or
// negative takes its default, a tolerance or ratio below 1 takes its default,
// and a confidence factor or MinCoverage above 1 is taken as 1. Zero is
// respected where it means something (RealRequestsPerHour 0 makes any real
// request activity). Validate reports what Score would silently replace, for
// configuration loaders.
type Params struct {
	// MinCoverage is the fraction of the window that must have usage samples;
	// below it the state is unknown.
	MinCoverage float64
	// RealRequestsPerHour is the real request rate, averaged over the
	// window and summed over the workload, at or below which real traffic
	// counts as about zero.
	RealRequestsPerHour float64

	// CPUBasePerReplica is the CPU in cores an idle replica burns with no
	// traffic at all (runtime timers, GC, sidecar housekeeping).
	CPUBasePerReplica float64
	// CPUPerHealthRequest is the CPU in core-seconds one health request
	// costs (probe handler, /metrics rendering, LB check).
	CPUPerHealthRequest float64
	// CPUTolerance multiplies the floor: CPU up to floor × tolerance is
	// still explained by health traffic.
	CPUTolerance float64

	// NetworkBasePerReplica is the receive rate in bytes/s an idle replica
	// sees with no traffic (DNS answers, mesh control plane, ARP).
	NetworkBasePerReplica float64
	// BytesPerHealthRequest is what one health request adds to the receive
	// rate, including TCP handshake and ACK packets.
	BytesPerHealthRequest float64
	// NetworkTolerance multiplies the network floor.
	NetworkTolerance float64

	// ProbeMismatchRatio: observed and expected probe counts that differ by
	// more than this factor mark the data as suspect.
	ProbeMismatchRatio float64

	// Confidence factors, each multiplied into the coverage when its
	// condition holds.
	NoRequestMetricsConfidence  float64 // no request metrics at all
	NoHealthBreakdownConfidence float64 // total requests known, health subset not
	NoNetworkConfidence         float64 // no receive-bytes series
	BrokenDataConfidence        float64 // probe mismatch or health > total
}

// DefaultParams returns the documented defaults.
func DefaultParams() Params {
	return Params{
		MinCoverage:                 0.5,
		RealRequestsPerHour:         0.1,
		CPUBasePerReplica:           0.005,
		CPUPerHealthRequest:         0.002,
		CPUTolerance:                2,
		NetworkBasePerReplica:       1024,
		BytesPerHealthRequest:       2048,
		NetworkTolerance:            3,
		ProbeMismatchRatio:          2,
		NoRequestMetricsConfidence:  0.5,
		NoHealthBreakdownConfidence: 0.8,
		NoNetworkConfidence:         0.9,
		BrokenDataConfidence:        0.5,
	}
}

type paramField struct {
	name  string
	v     *float64
	def   float64
	min   float64 // values below take the default
	upper float64 // values above are clamped; 0 means no upper bound
}

func (p *Params) fields() []paramField {
	d := DefaultParams()
	return []paramField{
		{"MinCoverage", &p.MinCoverage, d.MinCoverage, 0, 1},
		{"RealRequestsPerHour", &p.RealRequestsPerHour, d.RealRequestsPerHour, 0, 0},
		{"CPUBasePerReplica", &p.CPUBasePerReplica, d.CPUBasePerReplica, 0, 0},
		{"CPUPerHealthRequest", &p.CPUPerHealthRequest, d.CPUPerHealthRequest, 0, 0},
		{"CPUTolerance", &p.CPUTolerance, d.CPUTolerance, 1, 0},
		{"NetworkBasePerReplica", &p.NetworkBasePerReplica, d.NetworkBasePerReplica, 0, 0},
		{"BytesPerHealthRequest", &p.BytesPerHealthRequest, d.BytesPerHealthRequest, 0, 0},
		{"NetworkTolerance", &p.NetworkTolerance, d.NetworkTolerance, 1, 0},
		{"ProbeMismatchRatio", &p.ProbeMismatchRatio, d.ProbeMismatchRatio, 1, 0},
		{"NoRequestMetricsConfidence", &p.NoRequestMetricsConfidence, d.NoRequestMetricsConfidence, 0, 1},
		{"NoHealthBreakdownConfidence", &p.NoHealthBreakdownConfidence, d.NoHealthBreakdownConfidence, 0, 1},
		{"NoNetworkConfidence", &p.NoNetworkConfidence, d.NoNetworkConfidence, 0, 1},
		{"BrokenDataConfidence", &p.BrokenDataConfidence, d.BrokenDataConfidence, 0, 1},
	}
}

// Validate reports every field Score would replace or clamp.
func (p Params) Validate() error {
	var errs []error
	for _, f := range p.fields() {
		v := *f.v
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0) || v < f.min:
			errs = append(errs, fmt.Errorf("%s: %v is not a finite number >= %v", f.name, v, f.min))
		case f.upper > 0 && v > f.upper:
			errs = append(errs, fmt.Errorf("%s: %v is above %v", f.name, v, f.upper))
		}
	}
	return errors.Join(errs...)
}

func (p Params) normalized() Params {
	for _, f := range p.fields() {
		v := *f.v
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0) || v < f.min:
			*f.v = f.def
		case f.upper > 0 && v > f.upper:
			*f.v = f.upper
		}
	}
	return p
}
