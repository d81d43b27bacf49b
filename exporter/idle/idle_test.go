package idle

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	week     = 7 * 24 * time.Hour
	weekSecs = 604800.0
)

var end = time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)

func f(v float64) *float64 { return &v }

func at(t time.Time) *time.Time { return &t }

// probeOnly is case 3a, the reference illusion: a Deployment of 2 replicas,
// each with HTTP liveness and readiness probes every 10s, and no other
// traffic. Expected probes = 2 replicas × 2 probes × 1/10s = 0.4/s, which
// over a week is 0.4 × 604800 = 241920 requests, all matched as health.
func probeOnly() Inputs {
	return Inputs{
		Kind:                    "Deployment",
		Window:                  week,
		End:                     end,
		Replicas:                2,
		Coverage:                f(0.99),
		TotalRequests:           f(241920),
		HealthRequests:          f(241920),
		ProbeRequests:           f(241920),
		ExpectedProbesPerSecond: 0.4,
		CPUCoresP95:             f(0.006),
		CPUCoresMean:            f(0.004),
		NetworkRxBytesPerSecond: f(900),
	}
}

// scrapeOnly is case 3b: one replica with no probes, scraped on /metrics
// every 15s by an HA pair of Prometheus servers: 2/15 = 0.1333 req/s, or
// 80640 requests a week.
func scrapeOnly() Inputs {
	return Inputs{
		Kind:                    "Deployment",
		Window:                  week,
		End:                     end,
		Replicas:                1,
		Coverage:                f(1),
		TotalRequests:           f(80640),
		HealthRequests:          f(80640),
		CPUCoresP95:             f(0.004),
		CPUCoresMean:            f(0.0025),
		NetworkRxBytesPerSecond: f(400),
	}
}

func with(in Inputs, edit func(*Inputs)) Inputs {
	edit(&in)
	return in
}

type numbers struct{ real, health, share, floor float64 }

func TestScore(t *testing.T) {
	tests := []struct {
		name      string
		in        Inputs
		state     State
		score     float64
		conf      float64
		reasons   []string
		nums      *numbers   // checked when set
		idleSince *time.Time // nil means IdleSince must be nil
	}{
		// Requirement 1: missing data is unknown, never idle. The inputs are
		// otherwise the idle probe-only service, so only the gap can explain
		// the verdict.
		{
			name: "nil coverage", in: with(probeOnly(), func(in *Inputs) { in.Coverage = nil }),
			state: StateUnknown, reasons: []string{ReasonNoUsageData},
			// Rates are still reported: 241920/604800 = 0.4/s health; floor
			// 2×0.005 + 0.4×0.002 = 0.0108 cores.
			nums: &numbers{real: 0, health: 0.4, share: 1, floor: 0.0108},
		},
		{
			name: "nil cpu p95", in: with(probeOnly(), func(in *Inputs) { in.CPUCoresP95 = nil }),
			state: StateUnknown, reasons: []string{ReasonNoCPUData},
		},
		{
			name: "nil cpu mean", in: with(probeOnly(), func(in *Inputs) { in.CPUCoresMean = nil }),
			state: StateUnknown, reasons: []string{ReasonNoCPUData},
		},
		{
			// Created 2 days ago: 2/7 = 0.286 of the week has samples, under 0.5.
			name: "young workload, low coverage", in: with(probeOnly(), func(in *Inputs) { in.Coverage = f(2.0 / 7) }),
			state: StateUnknown, reasons: []string{ReasonLowCoverage},
		},
		{
			// Exactly at the minimum is enough: the rule is "below".
			name: "coverage at minimum", in: with(probeOnly(), func(in *Inputs) { in.Coverage = f(0.5) }),
			state: StateIdle, score: 0.928367, conf: 0.5,
			reasons:   []string{ReasonHealthTrafficOnly, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},
		// Request counts are increases over the window: a counter scraped
		// for its last 6 hours (a ServiceMonitor just added) reads as a
		// quiet week. Below MinCoverage it proves nothing idle and caps the
		// confidence as no request metrics do; a start of idleness is
		// claimed only when the series span the window.
		{
			name: "request series over 6 h of the week", in: with(probeOnly(), func(in *Inputs) { in.RequestCoverage = f(6.0 / 168) }),
			state: StateIdle, score: 0.928367, conf: 0.495,
			reasons: []string{ReasonLowRequestCoverage},
		},
		{
			name: "request coverage NaN is none", in: with(probeOnly(), func(in *Inputs) { in.RequestCoverage = f(math.NaN()) }),
			state: StateIdle, score: 0.928367, conf: 0.495,
			reasons: []string{ReasonLowRequestCoverage},
		},
		{
			// At the minimum the counts count, scaled by their coverage
			// (0.99 × 0.5), but they do not span the window: no start.
			name: "request coverage at minimum", in: with(probeOnly(), func(in *Inputs) { in.RequestCoverage = f(0.5) }),
			state: StateIdle, score: 0.928367, conf: 0.495,
			reasons: []string{ReasonHealthTrafficOnly},
		},
		{
			name: "request coverage full", in: with(probeOnly(), func(in *Inputs) { in.RequestCoverage = f(1) }),
			state: StateIdle, score: 0.928367, conf: 0.99,
			reasons:   []string{ReasonHealthTrafficOnly, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},
		{
			// 10 real requests in the 6 hours scraped are 1.67 an hour, not
			// 0.06 (10 a week): real traffic seen in a sliver still proves
			// activity. x = 1.6667/0.1 = 16.667, s = 1/(1+277.78).
			name: "low request coverage, real requests in it",
			in: with(probeOnly(), func(in *Inputs) {
				in.RequestCoverage, in.TotalRequests = f(6.0/168), f(241920+10)
			}),
			state: StateActive, score: 0.00358709, conf: 0.495,
			reasons: []string{ReasonRealTraffic, ReasonLowRequestCoverage},
			nums:    &numbers{real: 10.0 / 21600, health: 0.4, share: 241920.0 / 241930, floor: 0.0108},
		},
		// No Service selects the workload (a queue consumer): its request
		// series hold only what reaches pods directly, probes and scrapes,
		// never its work. They prove no idleness: capped as no request
		// metrics. Once only: without request metrics the cap is there.
		{
			name: "no Service, probes only", in: with(probeOnly(), func(in *Inputs) { in.NoService = true }),
			state: StateIdle, score: 0.928367, conf: 0.495,
			reasons:   []string{ReasonHealthTrafficOnly, ReasonNoService, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},
		{
			name: "no Service, no request metrics",
			in: with(probeOnly(), func(in *Inputs) {
				in.NoService, in.TotalRequests, in.HealthRequests = true, nil, nil
			}),
			state: StateIdle, score: 0.928367, conf: 0.495,
			reasons:   []string{ReasonNoRequestMetrics, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},
		{
			name: "zero replicas and no data",
			in: Inputs{
				Kind: "Deployment", Window: week, End: end,
				TotalRequests: f(0), HealthRequests: f(0),
			},
			state:   StateUnknown,
			reasons: []string{ReasonNoReplicas, ReasonNoUsageData, ReasonNoCPUData},
			nums:    &numbers{},
		},
		{
			// Spec asks for 3 but none ever became ready (Pending, crash
			// loop): nothing ran, so nothing can be idle.
			name: "zero running replicas while desired 3",
			in: with(probeOnly(), func(in *Inputs) {
				in.Replicas = 0
				in.DesiredReplicas = f(3)
			}),
			state: StateUnknown, reasons: []string{ReasonNoReplicas},
			// Floor without replicas is the health part only: 0.4×0.002.
			nums: &numbers{real: 0, health: 0.4, share: 1, floor: 0.0008},
		},
		{
			name: "zero window", in: with(probeOnly(), func(in *Inputs) { in.Window = 0 }),
			state: StateUnknown, reasons: []string{ReasonInvalidWindow},
		},
		{
			name: "scaled to zero", in: with(probeOnly(), func(in *Inputs) { in.DesiredReplicas = f(0) }),
			state: StateNotApplicable, reasons: []string{ReasonScaledToZero},
		},

		// Requirement 2: batch never idles, however quiet.
		{
			name: "job", in: with(probeOnly(), func(in *Inputs) { in.Kind = "Job" }),
			state: StateNotApplicable, reasons: []string{ReasonBatch},
		},
		{
			name: "cronjob any case", in: with(probeOnly(), func(in *Inputs) { in.Kind = "cronjob" }),
			state: StateNotApplicable, reasons: []string{ReasonBatch},
		},

		// Requirement 3: the health-check illusion.
		{
			// CPU: max(p95 6m, mean 4m) = 6m against floor 10.8m × 2 = 21.6m,
			// x = 0.2778, s = 1/(1+0.0772) = 0.9284. Network: 900 B/s against
			// (2×1024 + 0.4×2048) × 3 = 8601.6, s = 0.989. Score is the
			// weaker: 0.9284. Confidence = coverage 0.99.
			name: "3a probe-only service", in: probeOnly(),
			state: StateIdle, score: 0.928367, conf: 0.99,
			reasons:   []string{ReasonHealthTrafficOnly, ReasonIdleSinceWindowStart},
			nums:      &numbers{real: 0, health: 0.4, share: 1, floor: 0.0108},
			idleSince: at(end.Add(-week)),
		},
		{
			// Floor = 0.005 + 0.1333×0.002 = 0.0052667, allowance 0.0105333;
			// x = 0.004/0.0105333 = 0.3797, s = 0.8740. Network 400 against
			// (1024 + 0.1333×2048) × 3 = 3891.2 is far under. Last real
			// request 10 days ago, before the window: idle since then.
			name:  "3b scrape-only service",
			in:    with(scrapeOnly(), func(in *Inputs) { in.LastActive = at(end.Add(-10 * 24 * time.Hour)) }),
			state: StateIdle, score: 0.873967, conf: 1,
			reasons:   []string{ReasonHealthTrafficOnly},
			nums:      &numbers{real: 0, health: 2.0 / 15, share: 1, floor: 0.0052667},
			idleSince: at(end.Add(-10 * 24 * time.Hour)),
		},
		{
			// 3 replicas, each checked by 3 ALB nodes every 10s: 0.9 req/s,
			// 544320 a week, all ELB-HealthChecker. The TCP kubelet probes
			// (3 × 1/10s = 0.3/s) are not in the request metrics but agree
			// with the prober counter: 181440. Floor uses max(0.9, 0.3):
			// 3×0.005 + 0.9×0.002 = 0.0168, allowance 0.0336; x = 0.012/0.0336
			// = 0.3571, s = 0.8869.
			name: "3c load-balancer checks only",
			in: Inputs{
				Kind: "Deployment", Window: week, End: end, Replicas: 3, Coverage: f(0.97),
				TotalRequests: f(544320), HealthRequests: f(544320),
				ProbeRequests: f(181440), ExpectedProbesPerSecond: 0.3,
				CPUCoresP95: f(0.012), CPUCoresMean: f(0.009), NetworkRxBytesPerSecond: f(3000),
				LastActive: at(end.Add(-3 * 24 * time.Hour)),
			},
			state: StateIdle, score: 0.886878, conf: 0.97,
			reasons:   []string{ReasonHealthTrafficOnly},
			nums:      &numbers{real: 0, health: 0.9, share: 1, floor: 0.0168},
			idleSince: at(end.Add(-3 * 24 * time.Hour)),
		},
		{
			// No request series at all; the spec says liveness + readiness
			// every 10s = 0.2/s. Floor 0.005 + 0.2×0.002 = 0.0054, allowance
			// 0.0108; x = 0.004/0.0108 = 0.3704, s = 0.8794. Network 600
			// against (1024 + 0.2×2048) × 3 = 4300.8, s = 0.981. Idle, but
			// confidence 0.98 × 0.5 = 0.49: below what automation needs.
			name: "3d no request metrics, within floor",
			in: Inputs{
				Kind: "StatefulSet", Window: week, End: end, Replicas: 1, Coverage: f(0.98),
				ProbeRequests: f(120960), ExpectedProbesPerSecond: 0.2,
				CPUCoresP95: f(0.004), CPUCoresMean: f(0.003), NetworkRxBytesPerSecond: f(600),
			},
			state: StateIdle, score: 0.879373, conf: 0.49,
			reasons:   []string{ReasonNoRequestMetrics, ReasonIdleSinceWindowStart},
			nums:      &numbers{floor: 0.0054},
			idleSince: at(end.Add(-week)),
		},
		{
			// As 3d with no network either: CPU is the only evidence.
			// Confidence 0.98 × 0.5 × 0.9 = 0.441.
			name: "3d no request metrics, no network",
			in: Inputs{
				Kind: "StatefulSet", Window: week, End: end, Replicas: 1, Coverage: f(0.98),
				ExpectedProbesPerSecond: 0.2, CPUCoresP95: f(0.004), CPUCoresMean: f(0.003),
			},
			state: StateIdle, score: 0.879373, conf: 0.441,
			reasons:   []string{ReasonNoRequestMetrics, ReasonNoNetworkData, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},

		// Requirement 4: real traffic, however slow, is activity.
		{
			// One real request a minute = 10080 a week = 60/h, 600 times the
			// 0.1/h allowance: s = 1/(1+600²) = 2.78e-6.
			name: "one real request per minute",
			in: with(probeOnly(), func(in *Inputs) {
				in.TotalRequests = f(241920 + 10080)
				in.LastActive = at(end.Add(-time.Minute))
			}),
			state: StateActive, score: 2.77777e-6, conf: 0.99,
			reasons: []string{ReasonRealTraffic},
			// share = 241920/252000 = 0.96.
			nums: &numbers{real: 10080 / weekSecs, health: 0.4, share: 0.96, floor: 0.0108},
		},
		{
			// 16 real requests a week = 0.0952/h, under 0.1/h: about zero.
			// x = 0.952, s = 0.5244, weaker than CPU (0.928), so the score.
			name:  "16 real requests a week",
			in:    with(probeOnly(), func(in *Inputs) { in.TotalRequests = f(241920 + 16) }),
			state: StateIdle, score: 0.524376, conf: 0.99,
			reasons:   []string{ReasonNegligibleTraffic, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},
		{
			// 17 a week = 0.1012/h, just over: x = 1.012, s = 0.4941. The
			// score moved by 0.03 for one request: continuous, no cliff.
			name:  "17 real requests a week",
			in:    with(probeOnly(), func(in *Inputs) { in.TotalRequests = f(241920 + 17) }),
			state: StateActive, score: 0.494083, conf: 0.99,
			reasons: []string{ReasonRealTraffic},
		},

		// Requirement 5: CPU or network above what health traffic explains.
		{
			// A queue consumer: only scrapes reach it over HTTP. 2 replicas,
			// floor 2×0.005 + 0.1333×0.002 = 0.010267, allowance 0.020533;
			// p95 0.25 gives x = 12.18, s = 0.0067.
			name: "queue worker",
			in: with(scrapeOnly(), func(in *Inputs) {
				in.Replicas = 2
				in.CPUCoresP95, in.CPUCoresMean = f(0.25), f(0.12)
			}),
			state: StateActive, score: 0.00670068, conf: 1,
			reasons: []string{ReasonCPUAboveFloor},
			nums:    &numbers{real: 0, health: 2.0 / 15, share: 1, floor: 0.0102667},
		},
		{
			// A nightly 30 minute run at 1 core inside a Deployment is busy
			// 2% of the time, so p95 (3m) misses it; the mean does not:
			// 30/1440 + 0.003 = 0.023833 against (0.005 + 1/15×0.002) × 2 =
			// 0.0102667, x = 2.32, s = 0.1565.
			name: "nightly burst seen by the mean",
			in: with(scrapeOnly(), func(in *Inputs) {
				in.TotalRequests, in.HealthRequests = f(40320), f(40320)
				in.CPUCoresP95, in.CPUCoresMean = f(0.003), f(30.0/1440+0.003)
			}),
			state: StateActive, score: 0.156518, conf: 1,
			reasons: []string{ReasonCPUAboveFloor},
		},
		{
			// A database reached over TCP: no request metrics, CPU 8m is
			// within its 10.8m allowance (s = 0.6457), but 50 kB/s received
			// against a 4300.8 B/s allowance is x = 11.63, s = 0.0073.
			name: "tcp database, network above floor",
			in: Inputs{
				Kind: "StatefulSet", Window: week, End: end, Replicas: 1, Coverage: f(1),
				ExpectedProbesPerSecond: 0.2, CPUCoresP95: f(0.008), CPUCoresMean: f(0.005),
				NetworkRxBytesPerSecond: f(50000),
			},
			state: StateActive, score: 0.00734441, conf: 0.5,
			reasons: []string{ReasonNetworkAboveFloor, ReasonNoRequestMetrics},
		},

		// Requirement 7: confidence.
		{
			// The prober counted 20000 probes where the spec predicts 241920:
			// off by 12×, more than the factor 2. Score unchanged, confidence
			// 0.99 × 0.5.
			name:  "probe mismatch",
			in:    with(probeOnly(), func(in *Inputs) { in.ProbeRequests = f(20000) }),
			state: StateIdle, score: 0.928367, conf: 0.495,
			reasons:   []string{ReasonHealthTrafficOnly, ReasonProbeMismatch, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},
		{
			// Startup probes stop after success, so the spec overestimates:
			// 2/3 of the prediction is within the factor 2.
			name:  "probes within tolerance",
			in:    with(probeOnly(), func(in *Inputs) { in.ProbeRequests = f(161280) }),
			state: StateIdle, score: 0.928367, conf: 0.99,
			reasons:   []string{ReasonHealthTrafficOnly, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},
		{
			// Probes exist per spec but the prober counter says none.
			name:  "no probes observed",
			in:    with(probeOnly(), func(in *Inputs) { in.ProbeRequests = f(0) }),
			state: StateIdle, score: 0.928367, conf: 0.495,
			reasons:   []string{ReasonHealthTrafficOnly, ReasonProbeMismatch, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},
		{
			// Ingress metrics that never see probes: zero requests, no health
			// split. No health rate is known, so the floor is the base
			// 0.005 alone: x = 0.004/0.01 = 0.4, s = 0.8621. Idle with
			// confidence 1 × 0.8.
			name: "no health breakdown, no traffic",
			in: with(scrapeOnly(), func(in *Inputs) {
				in.TotalRequests, in.HealthRequests = f(0), nil
			}),
			state: StateIdle, score: 0.862069, conf: 0.8,
			reasons:   []string{ReasonNoTraffic, ReasonNoHealthBreakdown, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},
		{
			// Without the split every request counts as real: 241920 a week
			// is 1440/h. Conservative on purpose.
			name:  "no health breakdown, probes look real",
			in:    with(probeOnly(), func(in *Inputs) { in.HealthRequests = nil }),
			state: StateActive, score: 1 / (1 + 14400.0*14400), conf: 0.792,
			reasons: []string{ReasonRealTraffic, ReasonNoHealthBreakdown},
			nums:    &numbers{real: 0.4, health: 0, share: 0, floor: 0.0108},
		},
		{
			// 300000 health out of 241920 total is beyond 5% + 1 of slack:
			// broken matchers. Confidence 0.99 × 0.5.
			name:  "health exceeds total",
			in:    with(probeOnly(), func(in *Inputs) { in.HealthRequests = f(300000) }),
			state: StateIdle, score: 0.928367, conf: 0.495,
			reasons:   []string{ReasonHealthTrafficOnly, ReasonInconsistentRequests, ReasonIdleSinceWindowStart},
			nums:      &numbers{real: 0, health: 0.4, share: 1, floor: 0.0108},
			idleSince: at(end.Add(-week)),
		},
		{
			// Extrapolated increase() values differ a little: not broken.
			name:  "health a hair above total",
			in:    with(probeOnly(), func(in *Inputs) { in.HealthRequests = f(241920.7) }),
			state: StateIdle, score: 0.928367, conf: 0.99,
			reasons:   []string{ReasonHealthTrafficOnly, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},
		{
			// Network missing: score from CPU alone, confidence 0.99 × 0.9.
			name:  "no network data",
			in:    with(probeOnly(), func(in *Inputs) { in.NetworkRxBytesPerSecond = nil }),
			state: StateIdle, score: 0.928367, conf: 0.891,
			reasons:   []string{ReasonHealthTrafficOnly, ReasonNoNetworkData, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},

		// Requirement 8: IdleSince.
		{
			name:  "idle since last activity in the window",
			in:    with(probeOnly(), func(in *Inputs) { in.LastActive = at(end.Add(-50 * time.Hour)) }),
			state: StateIdle, score: 0.928367, conf: 0.99,
			reasons:   []string{ReasonHealthTrafficOnly},
			idleSince: at(end.Add(-50 * time.Hour)),
		},
		{
			// A LastActive from the future is clock skew; clamp to End.
			name:  "last activity after end",
			in:    with(probeOnly(), func(in *Inputs) { in.LastActive = at(end.Add(time.Minute)) }),
			state: StateIdle, score: 0.928367, conf: 0.99,
			reasons:   []string{ReasonHealthTrafficOnly},
			idleSince: at(end),
		},
		{
			// Neither End nor LastActive: no time to give.
			name:  "no end, no last activity",
			in:    with(probeOnly(), func(in *Inputs) { in.End = time.Time{} }),
			state: StateIdle, score: 0.928367, conf: 0.99,
			reasons: []string{ReasonHealthTrafficOnly},
		},

		// NaN, Inf and negative numbers are missing data.
		{
			name: "NaN coverage", in: with(probeOnly(), func(in *Inputs) { in.Coverage = f(math.NaN()) }),
			state: StateUnknown, reasons: []string{ReasonNoUsageData},
		},
		{
			name: "negative cpu", in: with(probeOnly(), func(in *Inputs) { in.CPUCoresP95 = f(-0.001) }),
			state: StateUnknown, reasons: []string{ReasonNoCPUData},
		},
		{
			name: "infinite cpu", in: with(probeOnly(), func(in *Inputs) { in.CPUCoresMean = f(math.Inf(1)) }),
			state: StateUnknown, reasons: []string{ReasonNoCPUData},
		},
		{
			name: "NaN replicas", in: with(probeOnly(), func(in *Inputs) { in.Replicas = math.NaN() }),
			state: StateUnknown, reasons: []string{ReasonNoReplicas},
		},
		{
			name: "infinite replicas", in: with(probeOnly(), func(in *Inputs) { in.Replicas = math.Inf(1) }),
			state: StateUnknown, reasons: []string{ReasonNoReplicas},
		},
		{
			// NaN desired replicas is unknown, not "scaled to zero".
			name: "NaN desired replicas", in: with(probeOnly(), func(in *Inputs) { in.DesiredReplicas = f(math.NaN()) }),
			state: StateIdle, score: 0.928367, conf: 0.99,
			reasons:   []string{ReasonHealthTrafficOnly, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},
		{
			// A NaN total is no request metrics: idle only with the capped
			// confidence 0.99 × 0.5.
			name: "NaN total requests", in: with(probeOnly(), func(in *Inputs) { in.TotalRequests = f(math.NaN()) }),
			state: StateIdle, score: 0.928367, conf: 0.495,
			reasons:   []string{ReasonNoRequestMetrics, ReasonIdleSinceWindowStart},
			nums:      &numbers{real: 0, health: 0.4, share: 0, floor: 0.0108},
			idleSince: at(end.Add(-week)),
		},
		{
			// Expected probes unknown: the floor loses the probe part (0.4 is
			// still observed as health) and the mismatch check is skipped.
			name: "NaN expected probes",
			in: with(probeOnly(), func(in *Inputs) {
				in.ExpectedProbesPerSecond = math.NaN()
				in.ProbeRequests = f(1)
			}),
			state: StateIdle, score: 0.928367, conf: 0.99,
			reasons:   []string{ReasonHealthTrafficOnly, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},
		{
			name: "coverage above one is one", in: with(probeOnly(), func(in *Inputs) { in.Coverage = f(1.02) }),
			state: StateIdle, score: 0.928367, conf: 1,
			reasons:   []string{ReasonHealthTrafficOnly, ReasonIdleSinceWindowStart},
			idleSince: at(end.Add(-week)),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Score(tc.in, DefaultParams())
			if got.State != tc.state {
				t.Errorf("state = %q, want %q (reasons %v)", got.State, tc.state, got.Reasons)
			}
			if !near(got.Score, tc.score) {
				t.Errorf("score = %.9g, want %.9g", got.Score, tc.score)
			}
			if !near(got.Confidence, tc.conf) {
				t.Errorf("confidence = %.9g, want %.9g", got.Confidence, tc.conf)
			}
			if !slices.Equal(got.Reasons, tc.reasons) {
				t.Errorf("reasons = %q, want %q", got.Reasons, tc.reasons)
			}
			if n := tc.nums; n != nil {
				for _, c := range []struct {
					what      string
					got, want float64
				}{
					{"real/s", got.RealRequestsPerSecond, n.real},
					{"health/s", got.HealthRequestsPerSecond, n.health},
					{"health share", got.HealthShare, n.share},
					{"cpu floor", got.CPUFloorCores, n.floor},
				} {
					if !near(c.got, c.want) {
						t.Errorf("%s = %.9g, want %.9g", c.what, c.got, c.want)
					}
				}
			}
			switch {
			case tc.idleSince == nil && got.IdleSince != nil:
				t.Errorf("idle since = %v, want none", *got.IdleSince)
			case tc.idleSince != nil && got.IdleSince == nil:
				t.Errorf("idle since = none, want %v", *tc.idleSince)
			case tc.idleSince != nil && !got.IdleSince.Equal(*tc.idleSince):
				t.Errorf("idle since = %v, want %v", *got.IdleSince, *tc.idleSince)
			}
		})
	}
}

// near compares hand-computed numbers given to about six digits.
func near(got, want float64) bool {
	return math.Abs(got-want) <= 1e-5*math.Abs(want)+1e-12
}

// The automation threshold is confidence 0.8: none of the capped paths may
// reach it at perfect coverage, whatever the evidence.
func TestConfidenceCaps(t *testing.T) {
	noRequests := Inputs{
		Kind: "Deployment", Window: week, End: end, Replicas: 1, Coverage: f(1),
		ExpectedProbesPerSecond: 0.2, CPUCoresP95: f(0), CPUCoresMean: f(0),
		NetworkRxBytesPerSecond: f(0),
	}
	got := Score(noRequests, DefaultParams())
	if got.State != StateIdle || got.Score != 1 || got.Confidence > 0.5 {
		t.Errorf("no request metrics: %+v, want idle with score 1 and confidence <= 0.5", got)
	}
	broken := with(probeOnly(), func(in *Inputs) { in.Coverage, in.ProbeRequests = f(1), f(1e9) })
	if got := Score(broken, DefaultParams()); got.Confidence >= 0.8 {
		t.Errorf("probe mismatch: confidence %v, want < 0.8", got.Confidence)
	}
}

// Around the CPU allowance the verdict flips but the score does not jump.
func TestScoreContinuousAtThreshold(t *testing.T) {
	allowance := 0.0108 * 2 // floor of probeOnly × CPUTolerance
	below := Score(with(probeOnly(), func(in *Inputs) { in.CPUCoresP95 = f(allowance) }), DefaultParams())
	above := Score(with(probeOnly(), func(in *Inputs) { in.CPUCoresP95 = f(allowance * (1 + 1e-9)) }), DefaultParams())
	if below.State != StateIdle || above.State != StateActive {
		t.Fatalf("states %q, %q; want idle at the allowance, active above", below.State, above.State)
	}
	if below.Score < 0.5 || above.Score >= 0.5 || below.Score-above.Score > 1e-8 {
		t.Errorf("scores %.12f, %.12f; want >= 0.5, < 0.5 and nearly equal", below.Score, above.Score)
	}
}

func TestParams(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	bad := DefaultParams()
	bad.CPUTolerance = math.NaN()
	bad.RealRequestsPerHour = -1
	bad.ProbeMismatchRatio = 0.5
	bad.NoRequestMetricsConfidence = 2
	err := bad.Validate()
	if err == nil {
		t.Fatal("Validate accepted NaN, negative, below-1 ratio and above-1 confidence")
	}
	for _, name := range []string{"CPUTolerance", "RealRequestsPerHour", "ProbeMismatchRatio", "NoRequestMetricsConfidence"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	n := bad.normalized()
	d := DefaultParams()
	if n.CPUTolerance != d.CPUTolerance || n.RealRequestsPerHour != d.RealRequestsPerHour ||
		n.ProbeMismatchRatio != d.ProbeMismatchRatio || n.NoRequestMetricsConfidence != 1 {
		t.Errorf("normalized = %+v", n)
	}
	// Bad parameters fall back to defaults, so the verdict is the default one.
	if got, want := Score(probeOnly(), bad), Score(probeOnly(), DefaultParams()); got.Score != want.Score {
		t.Errorf("score with repaired params = %v, want %v", got.Score, want.Score)
	}
	// Zero is meaningful for the real-traffic allowance: one request is activity.
	strict := DefaultParams()
	strict.RealRequestsPerHour = 0
	if got := Score(with(probeOnly(), func(in *Inputs) { in.TotalRequests = f(241921) }), strict); got.State != StateActive {
		t.Errorf("strict params, one real request: %q, want active", got.State)
	}
	if got := Score(probeOnly(), strict); got.State != StateIdle {
		t.Errorf("strict params, no real request: %q, want idle", got.State)
	}
}
