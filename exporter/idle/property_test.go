package idle

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// logUniform spreads samples over decades so that both idle and active
// workloads come up, and the thresholds are crossed often.
func logUniform(rng *rand.Rand, lo, hi float64) float64 {
	return math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo)))
}

func maybe(rng *rand.Rand, pNil float64, v float64) *float64 {
	if rng.Float64() < pNil {
		return nil
	}
	return &v
}

// randomInputs never produces batch kinds or a zero desired replica count,
// so that every result is idle, active or unknown.
func randomInputs(rng *rand.Rand) Inputs {
	kinds := []string{"Deployment", "StatefulSet", "DaemonSet", "Pod", "ReplicaSet", ""}
	window := time.Duration(logUniform(rng, float64(time.Hour), float64(14*24*time.Hour)))
	secs := window.Seconds()
	replicas := logUniform(rng, 0.5, 50)
	if rng.Float64() < 0.05 {
		replicas = 0
	}
	expected := 0.0
	if rng.Float64() < 0.8 {
		expected = replicas * logUniform(rng, 0.01, 1)
	}
	in := Inputs{
		Kind:                    kinds[rng.IntN(len(kinds))],
		Window:                  window,
		End:                     end,
		Replicas:                replicas,
		Coverage:                maybe(rng, 0.05, 0.3+rng.Float64()*0.75),
		ExpectedProbesPerSecond: expected,
		ProbeRequests:           maybe(rng, 0.4, expected*secs*logUniform(rng, 0.3, 3)),
		CPUCoresP95:             maybe(rng, 0.1, logUniform(rng, 1e-4, 4)),
		CPUCoresMean:            maybe(rng, 0.1, logUniform(rng, 1e-4, 4)),
		NetworkRxBytesPerSecond: maybe(rng, 0.3, logUniform(rng, 1, 1e6)),
	}
	if rng.Float64() < 0.3 {
		in.DesiredReplicas = f(math.Ceil(replicas) + 1)
	}
	if rng.Float64() < 0.8 {
		health := expected * secs * logUniform(rng, 0.5, 3)
		realCount := 0.0
		if rng.Float64() < 0.6 {
			realCount = logUniform(rng, 1e-2, 1e6)
		}
		in.TotalRequests = f(health + realCount)
		if rng.Float64() < 0.85 {
			in.HealthRequests = f(health)
		}
		if rng.Float64() < 0.05 { // broken matchers
			in.HealthRequests = f((health + realCount) * 1.5)
		}
	}
	if rng.Float64() < 0.5 {
		in.LastActive = at(end.Add(-time.Duration(rng.Float64() * float64(window))))
	}
	return in
}

func checkInvariants(t *testing.T, in Inputs, r Result) {
	t.Helper()
	for name, v := range map[string]float64{
		"score": r.Score, "confidence": r.Confidence, "real/s": r.RealRequestsPerSecond,
		"health/s": r.HealthRequestsPerSecond, "share": r.HealthShare, "floor": r.CPUFloorCores,
	} {
		if math.IsNaN(v) || v < 0 {
			t.Fatalf("%s = %v for %+v", name, v, in)
		}
	}
	if r.Score > 1 || r.Confidence > 1 || r.HealthShare > 1 {
		t.Fatalf("score %v, confidence %v, share %v above 1 for %+v", r.Score, r.Confidence, r.HealthShare, in)
	}
	switch r.State {
	case StateIdle:
		if r.Score < 0.5 {
			t.Fatalf("idle with score %v < 0.5 for %+v", r.Score, in)
		}
		if valid(in.TotalRequests) == nil && r.Confidence > 0.5 {
			t.Fatalf("idle without request metrics at confidence %v for %+v", r.Confidence, in)
		}
	case StateActive:
		if r.Score >= 0.5 {
			t.Fatalf("active with score %v >= 0.5 for %+v", r.Score, in)
		}
	case StateUnknown, StateNotApplicable:
		if r.Score != 0 || r.Confidence != 0 || r.IdleSince != nil {
			t.Fatalf("%s with score %v, confidence %v, idle since %v", r.State, r.Score, r.Confidence, r.IdleSince)
		}
	default:
		t.Fatalf("state %q", r.State)
	}
	if len(r.Reasons) == 0 && r.State != StateIdle {
		t.Fatalf("%s without a reason for %+v", r.State, in)
	}
}

// TestScoreProperties checks, over random workloads, the invariants that
// table cases cannot cover exhaustively: bounds, monotonicity in real
// traffic, CPU and network, continuity, and unknown on any required gap.
func TestScoreProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11)) // fixed: a failure must reproduce
	p := DefaultParams()
	counts := map[State]int{}
	const n = 20000
	for range n {
		in := randomInputs(rng)
		base := Score(in, p)
		counts[base.State]++
		checkInvariants(t, in, base)

		// More real traffic: only meaningful while health <= total, since
		// raising a total below health raises the health part as well.
		if tot := valid(in.TotalRequests); tot != nil {
			h := valid(in.HealthRequests)
			if h == nil || *h <= *tot {
				more := with(in, func(in *Inputs) { in.TotalRequests = f(*tot + logUniform(rng, 1e-3, 1e6)) })
				if got := Score(more, p); got.Score > base.Score {
					t.Fatalf("more real traffic raised the score %v -> %v for %+v", base.Score, got.Score, in)
				}
			}
		}

		// More CPU, on either statistic or both.
		if p95, mean := valid(in.CPUCoresP95), valid(in.CPUCoresMean); p95 != nil && mean != nil {
			d := logUniform(rng, 1e-5, 2)
			for _, edit := range []func(*Inputs){
				func(in *Inputs) { in.CPUCoresP95 = f(*p95 + d) },
				func(in *Inputs) { in.CPUCoresMean = f(*mean + d) },
				func(in *Inputs) { in.CPUCoresP95, in.CPUCoresMean = f(*p95+d), f(*mean+d) },
			} {
				if got := Score(with(in, edit), p); got.Score > base.Score {
					t.Fatalf("more CPU raised the score %v -> %v for %+v", base.Score, got.Score, in)
				}
			}
			// Continuity: a relative nudge of 1e-9 moves s(x) by at most
			// max|x·s'(x)|·1e-9 = 0.5e-9.
			nudged := with(in, func(in *Inputs) { in.CPUCoresP95, in.CPUCoresMean = f(*p95*(1+1e-9)), f(*mean*(1+1e-9)) })
			if got := Score(nudged, p); math.Abs(got.Score-base.Score) > 1e-8 {
				t.Fatalf("score jumped %v -> %v on a 1e-9 CPU nudge for %+v", base.Score, got.Score, in)
			}
		}

		// More received bytes.
		if rx := valid(in.NetworkRxBytesPerSecond); rx != nil {
			more := with(in, func(in *Inputs) { in.NetworkRxBytesPerSecond = f(*rx + logUniform(rng, 1e-2, 1e7)) })
			if got := Score(more, p); got.Score > base.Score {
				t.Fatalf("more network raised the score %v -> %v for %+v", base.Score, got.Score, in)
			}
		}

		// Any required input missing, or spoiled, gives unknown.
		for name, edit := range map[string]func(*Inputs){
			"nil coverage":  func(in *Inputs) { in.Coverage = nil },
			"nil p95":       func(in *Inputs) { in.CPUCoresP95 = nil },
			"nil mean":      func(in *Inputs) { in.CPUCoresMean = nil },
			"NaN coverage":  func(in *Inputs) { in.Coverage = f(math.NaN()) },
			"-Inf p95":      func(in *Inputs) { in.CPUCoresP95 = f(math.Inf(-1)) },
			"negative mean": func(in *Inputs) { in.CPUCoresMean = f(-1) },
			"NaN replicas":  func(in *Inputs) { in.Replicas = math.NaN() },
			"zero replicas": func(in *Inputs) { in.Replicas = 0 },
			"zero window":   func(in *Inputs) { in.Window = 0 },
		} {
			if got := Score(with(in, edit), p); got.State != StateUnknown {
				t.Fatalf("%s: state %q, want unknown for %+v", name, got.State, in)
			}
		}
	}
	t.Logf("states over %d random workloads: %v", n, counts)
	// The checks above are vacuous if the generator never crosses the
	// thresholds.
	for _, s := range []State{StateIdle, StateActive, StateUnknown} {
		if counts[s] < n/20 {
			t.Errorf("only %d of %d random workloads %s: %v", counts[s], n, s, counts)
		}
	}
}

// TestSpoiledInputs puts NaN, ±Inf and negative values in every numeric
// input: no panic, no NaN out, and idle only when the required inputs
// survived.
func TestSpoiledInputs(t *testing.T) {
	spoilers := []float64{math.NaN(), math.Inf(1), math.Inf(-1), -1, -math.MaxFloat64, math.MaxFloat64, 0}
	fields := []func(*Inputs, float64){
		func(in *Inputs, v float64) { in.Replicas = v },
		func(in *Inputs, v float64) { in.DesiredReplicas = f(v) },
		func(in *Inputs, v float64) { in.Coverage = f(v) },
		func(in *Inputs, v float64) { in.TotalRequests = f(v) },
		func(in *Inputs, v float64) { in.HealthRequests = f(v) },
		func(in *Inputs, v float64) { in.ProbeRequests = f(v) },
		func(in *Inputs, v float64) { in.ExpectedProbesPerSecond = v },
		func(in *Inputs, v float64) { in.CPUCoresP95 = f(v) },
		func(in *Inputs, v float64) { in.CPUCoresMean = f(v) },
		func(in *Inputs, v float64) { in.NetworkRxBytesPerSecond = f(v) },
	}
	required := map[int]bool{0: true, 2: true, 7: true, 8: true}
	for i, set := range fields {
		for _, v := range spoilers {
			in := with(probeOnly(), func(in *Inputs) { set(in, v) })
			got := Score(in, DefaultParams())
			checkInvariants(t, in, got)
			broken := math.IsNaN(v) || math.IsInf(v, 0) || v < 0
			if required[i] && broken && got.State != StateUnknown {
				t.Errorf("field %d = %v: state %q, want unknown", i, v, got.State)
			}
		}
	}
	// Extreme but finite inputs all at once must not make NaN either.
	huge := math.MaxFloat64
	in := Inputs{
		Kind: "Deployment", Window: 1, Replicas: huge, Coverage: f(1),
		TotalRequests: f(huge), HealthRequests: f(huge), ProbeRequests: f(huge), ExpectedProbesPerSecond: huge,
		CPUCoresP95: f(huge), CPUCoresMean: f(huge), NetworkRxBytesPerSecond: f(huge),
	}
	params := DefaultParams()
	params.CPUPerHealthRequest, params.BytesPerHealthRequest = 0, 0
	checkInvariants(t, in, Score(in, params))
}

// FuzzScore runs its seeds in every `go test`; `go test -fuzz FuzzScore`
// explores further.
func FuzzScore(f *testing.F) {
	f.Add("Deployment", int64(week), 2.0, 0.99, 241920.0, 241920.0, 241920.0, 0.4, 0.006, 0.004, 900.0)
	f.Add("Job", int64(time.Hour), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
	f.Add("Pod", int64(-1), math.NaN(), math.Inf(1), -1.0, math.NaN(), math.Inf(-1), -3.0, math.NaN(), 1e308, math.Copysign(0, -1))
	f.Add("StatefulSet", int64(1), 1e308, 1.0, 1e308, 1e-308, 5.0, 1e308, 0.0, 1e-300, 1e308)
	f.Fuzz(func(t *testing.T, kind string, window int64, replicas, coverage, total, health, probes, expected, p95, mean, rx float64) {
		in := Inputs{
			Kind: kind, Window: time.Duration(window), End: end, Replicas: replicas, Coverage: &coverage,
			TotalRequests: &total, HealthRequests: &health, ProbeRequests: &probes, ExpectedProbesPerSecond: expected,
			CPUCoresP95: &p95, CPUCoresMean: &mean, NetworkRxBytesPerSecond: &rx,
		}
		r := Score(in, DefaultParams())
		checkInvariants(t, in, r)
		if r.State == StateIdle && !(coverage >= 0.5 && p95 >= 0 && mean >= 0 && replicas > 0) {
			t.Fatalf("idle on missing data: %+v", in)
		}
	})
}
