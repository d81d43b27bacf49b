package recommend

import (
	"math"
	"slices"
	"testing"
	"time"
)

// base is a container with 14 days of full coverage whose p90 CPU is 1 core
// and whose peak working set is 1 GiB, running at 2 cores and 2 GiB.
func base() Inputs {
	return Inputs{
		Window:     14 * 24 * time.Hour,
		Coverage:   1,
		CPU:        FixedQuantiles{{0.5, 0.6}, {0.9, 1}, {0.99, 1.5}},
		MemoryPeak: gibF,
		Current:    Resources{CPURequest: 2, MemoryRequest: 2 * gibF},
		Replicas:   3,
		Prices:     Prices{CPUCoreHour: 0.03, MemoryGiBHour: 0.004},
	}
}

// Default policy: CPU = p90 × (1 + 0) = 1 core; memory = 1 GiB × 1.1 =
// 1126.4 MiB, rounded up to 1127 MiB.
const mem1127 = 1127 * mib

func TestRecommend(t *testing.T) {
	cases := []struct {
		name       string
		in         func(*Inputs)
		policy     func(*Policy)
		ok         bool
		conf       float64
		cpu, mem   float64
		cpuLimit   float64
		memLimit   float64
		apply      bool
		reasons    []string
		cpuChanged bool
		memChanged bool
		// Without the HPA, for a resource it scales on.
		ownCPU, ownMem float64
	}{{
		name: "steady", ok: true, conf: 1, cpu: 1, mem: mem1127, apply: true, cpuChanged: true, memChanged: true,
	}, {
		// 0.25 of 14 days = 3.5 days covered: confidence 3.5/7 = 0.5, so
		// both margins grow by 0.1 × 0.5: CPU 1.05, memory 1 GiB × 1.15 =
		// 1177.6 MiB → 1178 MiB.
		name: "short history", in: func(in *Inputs) { in.Coverage = 0.25 },
		ok: true, conf: 0.5, cpu: 1.05, mem: 1178 * mib, apply: true, cpuChanged: true, memChanged: true,
		reasons: []string{ReasonShortHistory},
	}, {
		// 0.04 × 14 days = 0.56 days: confidence 0.08 < 0.1.
		name: "low confidence", in: func(in *Inputs) { in.Coverage = 0.04 },
		conf: 0.08, reasons: []string{ReasonLowConfidence},
	}, {
		// An OOM at a 1.5 GiB limit: max(1.5 GiB × 1.2, 1.5 GiB + 100 MiB)
		// = 1843.2 MiB → 1844 MiB, above the 1127 MiB from the peak; the
		// running 2 GiB is within 10 % of it, so memory does not move.
		name: "OOM bump", in: func(in *Inputs) { in.OOMKills, in.OOMMemory = 1, 1.5*gibF },
		ok: true, conf: 1, cpu: 1, mem: 1844 * mib, apply: true, cpuChanged: true,
		reasons: []string{ReasonOOMBump},
	}, {
		// Throttled 20 % of periods under a 1.2-core limit: CPU × 1.2, and
		// the limit is dropped (remove-cpu).
		name: "throttled, limit removed", in: func(in *Inputs) { in.ThrottledRatio, in.Current.CPULimit = 0.2, 1.2 },
		ok: true, conf: 1, cpu: 1.2, mem: mem1127, apply: true, cpuChanged: true, memChanged: true,
		reasons: []string{ReasonCPUThrottled},
	}, {
		// Kept limit: raised to max(1.2, 1.2 × 1.2) = 1.44.
		name: "throttled, limit kept", in: func(in *Inputs) { in.ThrottledRatio, in.Current.CPULimit = 0.2, 1.2 },
		policy: func(p *Policy) { p.Limits = LimitKeep },
		ok:     true, conf: 1, cpu: 1.2, mem: mem1127, cpuLimit: 1.44, apply: true, cpuChanged: true, memChanged: true,
		reasons: []string{ReasonCPUThrottled},
	}, {
		// Throttling below the threshold is noise.
		name: "barely throttled", in: func(in *Inputs) { in.ThrottledRatio, in.Current.CPULimit = 0.04, 1.2 },
		policy: func(p *Policy) { p.Limits = LimitKeep },
		ok:     true, conf: 1, cpu: 1, mem: mem1127, cpuLimit: 1.2, apply: true, cpuChanged: true, memChanged: true,
	}, {
		// Scale: limits keep their 2× ratio to the requests.
		name: "limits scaled", in: func(in *Inputs) { in.Current.CPULimit, in.Current.MemoryLimit = 4, 4*gibF },
		policy: func(p *Policy) { p.Limits = LimitScale },
		ok:     true, conf: 1, cpu: 1, mem: mem1127, cpuLimit: 2, memLimit: 2 * mem1127, apply: true, cpuChanged: true, memChanged: true,
	}, {
		// remove-cpu (default): no CPU limit, the memory limit scales.
		name: "cpu limit removed", in: func(in *Inputs) { in.Current.CPULimit, in.Current.MemoryLimit = 4, 4*gibF },
		ok: true, conf: 1, cpu: 1, mem: mem1127, memLimit: 2 * mem1127, apply: true, cpuChanged: true, memChanged: true,
	}, {
		name: "floors", in: func(in *Inputs) { in.CPU, in.MemoryPeak = FixedQuantiles{{0.9, 0.001}}, mib },
		ok: true, conf: 1, cpu: 0.01, mem: 32 * mib, apply: true, cpuChanged: true, memChanged: true,
		reasons: []string{ReasonMinimum},
	}, {
		// Within 10 % of what runs: nothing to apply.
		name: "below threshold", in: func(in *Inputs) { in.Current = Resources{CPURequest: 1.05, MemoryRequest: 1180 * mib} },
		ok: true, conf: 1, cpu: 1, mem: mem1127, reasons: []string{ReasonBelowThreshold},
	}, {
		// 1.05 GiB is only 4.7 % below the 1127 MiB recommendation but
		// under the 1.1 GiB floor (peak × 1.1): raised anyway.
		name: "memory floor beats the threshold", in: func(in *Inputs) { in.Current = Resources{CPURequest: 1, MemoryRequest: 1.05 * gibF} },
		ok: true, conf: 1, cpu: 1, mem: mem1127, apply: true, memChanged: true,
	}, {
		name: "no memory data", in: func(in *Inputs) { in.MemoryPeak = math.NaN() },
		ok: true, conf: 1, cpu: 1, apply: true, cpuChanged: true, reasons: []string{ReasonNoMemoryData},
	}, {
		// A finite but impossible peak (a broken exporter): sized on it,
		// every memory figure would overflow to +Inf.
		name: "memory peak beyond any machine", in: func(in *Inputs) { in.MemoryPeak = 1.7e308 },
		ok: true, conf: 1, cpu: 1, apply: true, cpuChanged: true, reasons: []string{ReasonNoMemoryData},
	}, {
		// The same at the OOM: the bump is the peak's, 1 GiB × 1.2.
		name: "OOM memory beyond any machine", in: func(in *Inputs) { in.OOMKills, in.OOMMemory = 1, 1.7e308 },
		ok: true, conf: 1, cpu: 1, mem: 1229 * mib, apply: true, cpuChanged: true, memChanged: true, reasons: []string{ReasonOOMBump},
	}, {
		name: "no data", in: func(in *Inputs) { in.MemoryPeak, in.CPU = 0, nil },
		conf: 1, reasons: []string{ReasonNoCPUData, ReasonNoMemoryData},
	}, {
		// An HPA on CPU utilization: CPU has no figure (its request stays),
		// memory is sized as ever.
		name: "HPA on CPU utilization", in: func(in *Inputs) { in.HPACPU = true },
		ok: true, conf: 1, mem: mem1127, apply: true, memChanged: true, reasons: []string{ReasonHPACPU},
		ownCPU: 1,
	}, {
		name: "HPA on both", in: func(in *Inputs) { in.HPACPU, in.HPAMemory = true, true },
		conf: 1, reasons: []string{ReasonHPACPU, ReasonHPAMemory}, ownCPU: 1, ownMem: mem1127,
	}, {
		// Pod-level CPU: no container figure, its own kept for the pod's.
		name: "pod-level CPU", in: func(in *Inputs) { in.PodCPU = true },
		ok: true, conf: 1, mem: mem1127, apply: true, memChanged: true, reasons: []string{ReasonPodCPU},
		ownCPU: 1,
	}, {
		name: "pod-level memory under an HPA on CPU", in: func(in *Inputs) { in.PodMemory, in.HPACPU = true, true },
		conf: 1, reasons: []string{ReasonHPACPU, ReasonPodMemory}, ownCPU: 1, ownMem: mem1127,
	}, {
		// Without history there is nothing to pair either.
		name: "HPA, low confidence", in: func(in *Inputs) { in.HPACPU, in.Coverage = true, 0.04 },
		conf: 0.08, reasons: []string{ReasonLowConfidence},
	}, {
		// min_cpu 0 is out of range (Validate says so): the 10m default
		// floors an idle container's CPU, never a request of 0 (or −0).
		name: "idle, min_cpu 0", in: func(in *Inputs) { in.CPU = FixedQuantiles{{0.5, 0}, {0.9, 0}, {0.99, 0}} },
		policy: func(p *Policy) { p.MinCPU = 0 },
		ok:     true, conf: 1, cpu: 0.01, mem: mem1127, apply: true, cpuChanged: true, memChanged: true,
		reasons: []string{ReasonMinimum},
	}, {
		// A broken policy falls back to defaults.
		name: "bad policy", policy: func(p *Policy) { p.CPUPercentile, p.MemoryMargin, p.Window = math.NaN(), -1, 0 },
		ok: true, conf: 1, cpu: 1, mem: mem1127, apply: true, cpuChanged: true, memChanged: true,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := recommendWith(c.in, c.policy)
			if r.OK != c.ok || math.Abs(r.Confidence-c.conf) > 1e-9 || r.Apply != c.apply {
				t.Errorf("ok %v conf %v apply %v, want %v %v %v", r.OK, r.Confidence, r.Apply, c.ok, c.conf, c.apply)
			}
			if math.Abs(r.OwnCPU-c.ownCPU) > 1e-9 || r.OwnMemory != c.ownMem {
				t.Errorf("unpaired %v cores %v bytes, want %v %v", r.OwnCPU, r.OwnMemory, c.ownCPU, c.ownMem)
			}
			if math.Abs(r.CPU.Request-c.cpu) > 1e-9 || r.Memory.Request != c.mem {
				t.Errorf("requests %v cores %v bytes, want %v %v", r.CPU.Request, r.Memory.Request, c.cpu, c.mem)
			}
			if math.Abs(r.CPU.Limit-c.cpuLimit) > 1e-9 || r.Memory.Limit != c.memLimit {
				t.Errorf("limits %v cores %v bytes, want %v %v", r.CPU.Limit, r.Memory.Limit, c.cpuLimit, c.memLimit)
			}
			if r.CPU.Changed != c.cpuChanged || r.Memory.Changed != c.memChanged {
				t.Errorf("changed cpu %v memory %v, want %v %v", r.CPU.Changed, r.Memory.Changed, c.cpuChanged, c.memChanged)
			}
			if !slices.Equal(r.Reasons, c.reasons) {
				t.Errorf("reasons %q, want %q", r.Reasons, c.reasons)
			}
			for _, x := range []struct {
				name string
				r    Resource
			}{{"cpu", r.CPU}, {"memory", r.Memory}} {
				if x.r.OK && !(x.r.Lower > 0 && x.r.Lower <= x.r.Request && x.r.Request <= x.r.Upper) {
					t.Errorf("%s: bounds %v <= %v <= %v do not hold", x.name, x.r.Lower, x.r.Request, x.r.Upper)
				}
				if !x.r.OK && (x.r.Lower != 0 || x.r.Upper != 0) {
					t.Errorf("%s: bounds %v, %v without a recommendation", x.name, x.r.Lower, x.r.Upper)
				}
			}
		})
	}
}

// The bounds, worked out by hand from the formulas in
// docs/recommendations.md: CPU lower = q(0.5) × (1 + CPUMargin) × censoring,
// CPU upper = q(1) × (1 + CPUMargin) × censoring × (1 + 1/days), memory
// lower = max(peak × (1 + MemoryMargin), OOM base), memory upper =
// max(peak × (1 + MemoryMargin), OOM bump) × (1 + 1/days); floored, rounded
// up, and around the request.
func TestBounds(t *testing.T) {
	cases := []struct {
		name           string
		in             func(*Inputs)
		policy         func(*Policy)
		cpuLo, cpuHi   float64
		memLo, memHi   float64
		wantCPU, wantM float64 // the requests, for context
	}{{
		// 14 days: widen 1 + 1/14 = 15/14. CPU 0.6 … 1.5 × 15/14 =
		// 1.6071 → 1.608; memory 1126.4 MiB → 1127, × 15/14 = 1206.86 →
		// 1207 MiB.
		name: "steady", cpuLo: 0.6, cpuHi: 1.608, memLo: 1127 * mib, memHi: 1207 * mib, wantCPU: 1, wantM: mem1127,
	}, {
		// 3.5 days: widen 1 + 1/3.5 = 9/7. CPU upper 1.5 × 9/7 = 1.9286 →
		// 1.929; memory upper 1126.4 × 9/7 = 1448.23 → 1449 MiB. The lower
		// bounds take no short-history margin.
		name: "short history", in: func(in *Inputs) { in.Coverage = 0.25 },
		cpuLo: 0.6, cpuHi: 1.929, memLo: 1127 * mib, memHi: 1449 * mib, wantCPU: 1.05, wantM: 1178 * mib,
	}, {
		// OOM at 1.5 GiB: lower = 1536 MiB (what was killed), upper =
		// 1843.2 MiB × 15/14 = 1974.86 → 1975 MiB.
		name: "OOM", in: func(in *Inputs) { in.OOMKills, in.OOMMemory = 1, 1.5*gibF },
		cpuLo: 0.6, cpuHi: 1.608, memLo: 1536 * mib, memHi: 1975 * mib, wantCPU: 1, wantM: 1844 * mib,
	}, {
		// Throttled 20 %: both CPU bounds × 1.2: 0.72 and 1.5 × 1.2 ×
		// 15/14 = 1.9286 → 1.929.
		name: "throttled", in: func(in *Inputs) { in.ThrottledRatio, in.Current.CPULimit = 0.2, 1.2 },
		cpuLo: 0.72, cpuHi: 1.929, memLo: 1127 * mib, memHi: 1207 * mib, wantCPU: 1.2, wantM: mem1127,
	}, {
		// A 20 % CPU margin: 0.6 × 1.2 = 0.72; 1.5 × 1.2 × 15/14 → 1.929.
		// Memory margin 0.5: lower 1536 MiB, upper 1536 × 15/14 = 1645.7
		// → 1646 MiB.
		name: "margins", policy: func(p *Policy) { p.CPUMargin, p.MemoryMargin = 0.2, 0.5 },
		cpuLo: 0.72, cpuHi: 1.929, memLo: 1536 * mib, memHi: 1646 * mib, wantCPU: 1.2, wantM: 1536 * mib,
	}, {
		// Floors lift everything to 10m and 32 MiB.
		name: "floors", in: func(in *Inputs) { in.CPU, in.MemoryPeak = FixedQuantiles{{0.9, 0.001}}, mib },
		cpuLo: 0.01, cpuHi: 0.01, memLo: 32 * mib, memHi: 32 * mib, wantCPU: 0.01, wantM: 32 * mib,
	}, {
		// The max percentile as the target: the request is the upper
		// bound without widening, 1.5; the upper bound still widens.
		name: "p100 target", policy: func(p *Policy) { p.CPUPercentile = 1 },
		cpuLo: 0.6, cpuHi: 1.608, memLo: 1127 * mib, memHi: 1207 * mib, wantCPU: 1.5, wantM: mem1127,
	}, {
		// Ten hours covered (MinConfidence 0 lets it through): widen 1 +
		// 24/10 = 3.4; confidence 10/168, e = 0.1 × 158/168. Memory
		// upper 1126.4 × 3.4 = 3829.76 → 3830 MiB; CPU 1.5 × 3.4 = 5.1.
		name: "ten hours", in: func(in *Inputs) { in.Window, in.Coverage = 20*time.Hour, 0.5 },
		policy: func(p *Policy) { p.MinConfidence = 0 },
		cpuLo:  0.6, cpuHi: 5.1, memLo: 1127 * mib, memHi: 3830 * mib, wantCPU: 1.095, wantM: 1223 * mib,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := recommendWith(c.in, c.policy)
			if !r.OK {
				t.Fatalf("no recommendation: %v", r.Reasons)
			}
			if math.Abs(r.CPU.Request-c.wantCPU) > 1e-9 || r.Memory.Request != c.wantM {
				t.Errorf("requests %v, %v MiB; want %v, %v MiB", r.CPU.Request, r.Memory.Request/mib, c.wantCPU, c.wantM/mib)
			}
			if math.Abs(r.CPU.Lower-c.cpuLo) > 1e-9 || math.Abs(r.CPU.Upper-c.cpuHi) > 1e-9 {
				t.Errorf("CPU bounds %v … %v, want %v … %v", r.CPU.Lower, r.CPU.Upper, c.cpuLo, c.cpuHi)
			}
			if r.Memory.Lower != c.memLo || r.Memory.Upper != c.memHi {
				t.Errorf("memory bounds %v … %v MiB, want %v … %v MiB", r.Memory.Lower/mib, r.Memory.Upper/mib, c.memLo/mib, c.memHi/mib)
			}
		})
	}
}

// TestRoundUp: up to the unit, exact multiples kept, and never −0, which
// JSON prints as "-0" for an idle container's 0.
func TestRoundUp(t *testing.T) {
	cases := []struct {
		name    string
		v, unit float64
		want    float64
	}{
		{"zero", 0, 0.001, 0},
		{"below the epsilon", 1e-13, 0.001, 0},
		{"up to a millicore", 0.2501, 0.001, 0.251},
		{"exact multiple kept", 0.25, 0.001, 0.25},
		{"up to a MiB", 1126.4 * mib, mib, 1127 * mib},
	}
	for _, c := range cases {
		got := roundUp(c.v, c.unit)
		if got != c.want || math.Signbit(got) {
			t.Errorf("%s: roundUp(%v, %v) = %v, want %v", c.name, c.v, c.unit, got, c.want)
		}
	}
}

func TestRecommendSavings(t *testing.T) {
	r := Recommend(base(), DefaultPolicy())
	// (2 − 1) cores × $0.03 + (2048 − 1127)/1024 GiB × $0.004, per hour,
	// × 730 hours × 3 replicas.
	want := ((2-1)*0.03 + (2048.0-1127)/1024*0.004) * 730 * 3
	if math.Abs(r.MonthlySavings-want) > 1e-9 || math.Abs(want-73.5788671875) > 1e-9 {
		t.Errorf("savings %v, want %v = 73.5788671875", r.MonthlySavings, want)
	}
	in := base()
	in.Current = Resources{CPURequest: 0.5, MemoryRequest: 512 * mib}
	in.Replicas = 0 // counts as one
	r = Recommend(in, DefaultPolicy())
	if want := ((0.5-1)*0.03 + (512.0-1127)/1024*0.004) * 730; math.Abs(r.MonthlySavings-want) > 1e-9 || r.MonthlySavings >= 0 {
		t.Errorf("growing costs %v, want %v", r.MonthlySavings, want)
	}
}

func TestFixedQuantiles(t *testing.T) {
	q := FixedQuantiles{{0.9, 2}, {0.5, 1}, {math.NaN(), 5}, {0.99, 4}}
	for _, c := range []struct{ p, want float64 }{
		{0.1, 1}, {0.5, 1}, {0.7, 1.5}, {0.9, 2}, {0.945, 3}, {1, 4},
	} {
		if got := q.Quantile(c.p); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Quantile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if !math.IsNaN(FixedQuantiles(nil).Quantile(0.9)) {
		t.Error("no points must be NaN")
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
	p := DefaultPolicy()
	p.CPUPercentile = 0
	p.OOMBumpRatio = 0.5
	p.Window = -time.Hour
	p.Limits = "sometimes"
	p.MinCPU = 0
	err := p.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, name := range []string{"CPUPercentile", "OOMBumpRatio", "Window", "Limits", "MinCPU"} {
		if !contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	if n := p.normalized(); n != DefaultPolicy() {
		t.Errorf("normalized %+v, want the defaults", n)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// recommendWith recommends for base() and DefaultPolicy() as a case
// changes them (nil: unchanged).
func recommendWith(in func(*Inputs), policy func(*Policy)) Recommendation {
	i := base()
	if in != nil {
		in(&i)
	}
	p := DefaultPolicy()
	if policy != nil {
		policy(&p)
	}
	return Recommend(i, p)
}
