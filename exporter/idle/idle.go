// Package idle decides whether a workload is idle once its health traffic is
// discounted: kubelet probes, Prometheus scrapes, load-balancer and mesh
// checks keep request counters, CPU and network above zero on services that
// serve nobody (the health-check illusion). Score is a pure function of
// window aggregates; the model, its formulas and its defaults are described
// in docs/idle-score.md and must stay in step with this package.
package idle

import (
	"math"
	"strings"
	"time"
)

// Inputs are window aggregates for one workload. A nil pointer means the
// data is missing. NaN, infinite or negative values are treated as missing.
type Inputs struct {
	Kind   string // Deployment, StatefulSet, DaemonSet, Job, CronJob, Pod, ReplicaSet...
	Window time.Duration
	// End is the end of the window (the evaluation time); the window is
	// [End-Window, End]. Zero means unknown; it only matters for IdleSince.
	End time.Time

	Replicas float64 // average ready/running replicas over the window
	// DesiredReplicas is the replica count the controller asks for now
	// (spec.replicas); nil when unknown or when the kind has none (DaemonSet,
	// Pod). Zero means scaled to zero, which is not_applicable.
	DesiredReplicas *float64
	Coverage        *float64 // fraction 0..1 of the window with usage samples

	TotalRequests  *float64 // all requests over the window (app, ingress or mesh metrics)
	HealthRequests *float64 // the subset matched by health, scrape and LB matchers
	// RequestCoverage is the fraction 0..1 of the window in which the
	// request series were scraped. Counts over a sliver of the window say
	// nothing of the rest: below MinCoverage they prove no idleness (real
	// requests in them still prove activity), above it they scale the
	// confidence. nil means not measured and is taken as 1; a caller with
	// request counts but no coverage for them passes 0.
	RequestCoverage *float64
	// NoService is true when no Service selects the workload's pods: its
	// work (a queue consumer's, a node agent's) reaches it some other way,
	// and its request series see only what reaches pods directly (probes,
	// scrapes). Its request counts then prove no idleness, as if missing.
	NoService     bool
	ProbeRequests *float64 // kubelet prober_probe_total increase over the window
	// ExpectedProbesPerSecond is, from the pod spec, the sum over containers
	// and probe kinds of 1/periodSeconds, times replicas.
	ExpectedProbesPerSecond float64

	CPUCoresP95, CPUCoresMean *float64 // usage over the window, whole workload
	NetworkRxBytesPerSecond   *float64 // mean receive bytes/s, whole workload

	// LastActive is the last time real traffic or above-floor CPU was seen.
	LastActive *time.Time
}

// State is the verdict.
type State string

// States.
const (
	StateIdle          State = "idle"
	StateActive        State = "active"
	StateUnknown       State = "unknown"
	StateNotApplicable State = "not_applicable"
)

// Reasons. Unknown and not_applicable results carry only the reasons that
// caused them; idle and active results carry the verdict's reasons and every
// reason that lowered the confidence.
const (
	ReasonBatch                = "batch"          // Job or CronJob: idle between runs by design
	ReasonScaledToZero         = "scaled_to_zero" // DesiredReplicas is 0: already asleep
	ReasonInvalidWindow        = "invalid_window"
	ReasonNoReplicas           = "no_replicas" // Replicas missing or 0 while not scaled to zero
	ReasonNoUsageData          = "no_usage_data"
	ReasonNoCPUData            = "no_cpu_data"
	ReasonLowCoverage          = "low_coverage"
	ReasonNoRequestMetrics     = "no_request_metrics"
	ReasonLowRequestCoverage   = "low_request_coverage" // request series cover less than MinCoverage of the window
	ReasonNoService            = "no_service"           // no Service selects it: request sources cannot see its work
	ReasonNoHealthBreakdown    = "no_health_breakdown"
	ReasonNoNetworkData        = "no_network_data"
	ReasonProbeMismatch        = "probe_mismatch"
	ReasonInconsistentRequests = "inconsistent_requests" // health > total
	ReasonRealTraffic          = "real_traffic"
	ReasonCPUAboveFloor        = "cpu_above_floor"
	ReasonNetworkAboveFloor    = "network_above_floor"
	ReasonHealthTrafficOnly    = "health_traffic_only"
	ReasonNegligibleTraffic    = "negligible_real_traffic"
	ReasonNoTraffic            = "no_traffic"
	ReasonIdleSinceWindowStart = "idle_since_window_start"
)

// Result is the verdict with the numbers behind it.
type Result struct {
	State State
	// Score is 0..1, 1 = certainly idle by the evidence; it is at least 0.5
	// exactly when State is idle. Score and Confidence are 0 unless the
	// state is idle or active.
	Score      float64
	Confidence float64 // 0..1, quality of the data behind Score

	RealRequestsPerSecond   float64
	HealthRequestsPerSecond float64
	HealthShare             float64 // health/total, 0 when total is 0 or either is missing
	CPUFloorCores           float64 // the CPU that health traffic alone explains

	IdleSince *time.Time
	Reasons   []string
}

// spansWindow is the request coverage at or above which the request series
// span the window: coverage is counted in steps (an hour over a week), and
// a series that started in the window's first step can miss it.
const spansWindow = 0.99

// inconsistencySlack is how far health requests may exceed total requests
// before the data is called broken: separately extrapolated increase()
// results differ by a few percent and fractions of a request.
const (
	inconsistencyRelSlack = 0.05
	inconsistencyAbsSlack = 1
)

// Score rates one workload. It never panics and never returns idle on
// missing data.
func Score(in Inputs, p Params) Result {
	p = p.normalized()
	if isBatch(in.Kind) {
		return Result{State: StateNotApplicable, Reasons: []string{ReasonBatch}}
	}
	if d := valid(in.DesiredReplicas); d != nil && *d == 0 {
		return Result{State: StateNotApplicable, Reasons: []string{ReasonScaledToZero}}
	}
	if in.Window <= 0 {
		return Result{State: StateUnknown, Reasons: []string{ReasonInvalidWindow}}
	}
	secs := in.Window.Seconds()

	replicas := in.Replicas
	replicasOK := isValid(replicas) && replicas > 0
	if !replicasOK {
		replicas = 0
	}
	coverage := valid(in.Coverage)
	if coverage != nil && *coverage > 1 {
		one := 1.0
		coverage = &one // sample alignment can count one sample too many
	}
	total, health, probes := valid(in.TotalRequests), valid(in.HealthRequests), valid(in.ProbeRequests)
	p95, mean, rx := valid(in.CPUCoresP95), valid(in.CPUCoresMean), valid(in.NetworkRxBytesPerSecond)
	expected, expectedOK := in.ExpectedProbesPerSecond, isValid(in.ExpectedProbesPerSecond)
	if !expectedOK {
		expected = 0
	}

	// The numbers are filled in even when the state ends up unknown: they
	// help whoever debugs the missing data.
	var r Result
	var realCount, healthCount float64
	inconsistent := false
	if health != nil {
		healthCount = *health
	}
	if total != nil {
		realCount = *total
		if health != nil {
			inconsistent = *health > *total*(1+inconsistencyRelSlack)+inconsistencyAbsSlack
			healthCount = math.Min(*health, *total)
			realCount = *total - healthCount
			if *total > 0 {
				r.HealthShare = healthCount / *total
			}
		}
	}
	reqCoverage := 1.0
	if in.RequestCoverage != nil {
		reqCoverage = 0 // NaN and negative values are no coverage
		if c := *in.RequestCoverage; c > 0 {
			reqCoverage = math.Min(c, 1)
		}
	}
	// The real requests seen are counted at their rate over the time the
	// series covered: 10 requests in the 6 hours scraped are 10 in 6 hours,
	// not in the week, which errs away from idle.
	r.RealRequestsPerSecond = realCount / secs
	if total != nil && reqCoverage > 0 && reqCoverage < 1 {
		r.RealRequestsPerSecond = realCount / (secs * reqCoverage)
	}
	r.HealthRequestsPerSecond = healthCount / secs
	// Health traffic the request metrics cannot see (probes against an app
	// whose metrics come from the ingress) still costs CPU, so the floor uses
	// the larger of the observed and the expected rate. Not their sum: with
	// app metrics the probes are already part of the observed rate.
	floorRate := math.Max(r.HealthRequestsPerSecond, expected)
	r.CPUFloorCores = mul(replicas, p.CPUBasePerReplica) + mul(floorRate, p.CPUPerHealthRequest)

	var missing []string
	if !replicasOK {
		missing = append(missing, ReasonNoReplicas)
	}
	switch {
	case coverage == nil:
		missing = append(missing, ReasonNoUsageData)
	case *coverage < p.MinCoverage:
		missing = append(missing, ReasonLowCoverage)
	}
	if p95 == nil || mean == nil {
		missing = append(missing, ReasonNoCPUData)
	}
	if len(missing) > 0 {
		r.State, r.Reasons = StateUnknown, missing
		return r
	}

	// Each signal becomes a ratio x = observed / allowance, and x <= 1 means
	// "explained by health traffic". The score is the weakest signal's
	// s(x) = 1/(1+x²): continuous, decreasing, s(0) = 1, s(1) = 0.5.
	var xReal, xNet float64
	if total != nil {
		xReal = ratio(r.RealRequestsPerSecond*3600, p.RealRequestsPerHour)
	}
	// The mean catches bursts shorter than 5% of the window that p95 misses
	// (a nightly batch inside a Deployment).
	xCPU := ratio(math.Max(*p95, *mean), r.CPUFloorCores*p.CPUTolerance)
	if rx != nil {
		netFloor := mul(replicas, p.NetworkBasePerReplica) + mul(floorRate, p.BytesPerHealthRequest)
		xNet = ratio(*rx, netFloor*p.NetworkTolerance)
	}
	r.Score = math.Min(s(xReal), math.Min(s(xCPU), s(xNet)))

	var reasons []string
	if xReal > 1 {
		reasons = append(reasons, ReasonRealTraffic)
	}
	if xCPU > 1 {
		reasons = append(reasons, ReasonCPUAboveFloor)
	}
	if xNet > 1 {
		reasons = append(reasons, ReasonNetworkAboveFloor)
	}
	if len(reasons) > 0 {
		// Some x > 1, so the score is below 0.5, in floating point too:
		// 1+x² is then at least the double after 2.
		r.State = StateActive
	} else {
		r.State = StateIdle
		switch {
		case total == nil, reqCoverage < p.MinCoverage:
			// Too little request data to say what the traffic was.
		case realCount > 0:
			reasons = append(reasons, ReasonNegligibleTraffic)
		case healthCount > 0:
			reasons = append(reasons, ReasonHealthTrafficOnly)
		default:
			reasons = append(reasons, ReasonNoTraffic)
		}
	}

	conf := *coverage
	switch {
	case total == nil:
		conf *= p.NoRequestMetricsConfidence
		reasons = append(reasons, ReasonNoRequestMetrics)
	case reqCoverage < p.MinCoverage:
		// As good as no request metrics: the traffic of most of the window
		// is unknown.
		conf *= p.NoRequestMetricsConfidence
		reasons = append(reasons, ReasonLowRequestCoverage)
	case in.NoService:
		// Request counts of work no request source can see: health
		// checks only, whatever the workload does.
		conf *= reqCoverage * p.NoRequestMetricsConfidence
		reasons = append(reasons, ReasonNoService)
	case health == nil:
		conf *= reqCoverage * p.NoHealthBreakdownConfidence
		reasons = append(reasons, ReasonNoHealthBreakdown)
	default:
		conf *= reqCoverage
	}
	if rx == nil {
		conf *= p.NoNetworkConfidence
		reasons = append(reasons, ReasonNoNetworkData)
	}
	if probes != nil && expectedOK && probeMismatch(*probes, expected*secs, p.ProbeMismatchRatio) {
		conf *= p.BrokenDataConfidence
		reasons = append(reasons, ReasonProbeMismatch)
	}
	if inconsistent {
		conf *= p.BrokenDataConfidence
		reasons = append(reasons, ReasonInconsistentRequests)
	}
	r.Confidence = conf

	if r.State == StateIdle {
		var since time.Time
		switch {
		case in.LastActive != nil && !in.LastActive.IsZero():
			since = *in.LastActive
			if !in.End.IsZero() && since.After(in.End) {
				since = in.End // clock skew between Prometheus and us
			}
		case total != nil && reqCoverage < spansWindow:
			// The request series do not span the window: what happened
			// before they start is unknown, so no start is claimed.
		case !in.End.IsZero():
			// Nothing active in the range the exporter looked at, which
			// covers at least the window: idle at least since its start.
			since = in.End.Add(-in.Window)
			reasons = append(reasons, ReasonIdleSinceWindowStart)
		}
		if !since.IsZero() {
			r.IdleSince = &since
		}
	}
	r.Reasons = reasons
	return r
}

func isBatch(kind string) bool {
	return strings.EqualFold(kind, "Job") || strings.EqualFold(kind, "CronJob")
}

func isValid(v float64) bool { return v >= 0 && !math.IsInf(v, 1) } // false for NaN

// valid returns v when it points at a usable number, nil otherwise.
func valid(v *float64) *float64 {
	if v == nil || !isValid(*v) {
		return nil
	}
	return v
}

// ratio is observed/allowance, with a zero allowance meaning "none allowed".
func ratio(observed, allowance float64) float64 {
	switch {
	case observed <= 0:
		return 0
	case allowance <= 0:
		return math.Inf(1)
	}
	return observed / allowance
}

// mul is a*b with 0 winning over an overflowed operand, so absurd but
// finite inputs cannot make a NaN out of Inf*0.
func mul(a, b float64) float64 {
	if a == 0 || b == 0 {
		return 0
	}
	return a * b
}

func s(x float64) float64 { return 1 / (1 + x*x) }

// probeMismatch is true when observed and expected probe counts differ by
// more than the ratio, with one probe of slack so that 0 against 0.4 (an
// extrapolated increase) is not a mismatch.
func probeMismatch(observed, expected, r float64) bool {
	lo, hi := math.Min(observed, expected), math.Max(observed, expected)
	return hi > r*lo+1
}
