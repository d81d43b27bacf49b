package recommend

import (
	"math"
	"testing"
	"time"
)

const gibF = float64(gib)

// The VPA figures below are worked out from upstream's rules:
//   - CPU bucket of v: n = floor(log(v·0.05/0.001 + 1)/log 1.05); Percentile
//     returns the bucket's end 0.001·(1.05^(n+1) − 1)/0.05;
//   - memory the same with first bucket 1e7 bytes;
//   - the end is truncated to millicores (bytes), then + trunc(15 %);
//   - floors 25m and 250·2^20 bytes.
//
// Bucket ends used: 0.5 core → n 66, end 0.50567 → 505m → +75 = 580m;
// 2.0 → n 94, end 2.04069 → 2040m → +306 = 2346m; 0.02 → end 0.02158 →
// 21m → +3 = 24m, under the 25m floor; 2 GiB → n 50, end 2208153955 →
// +331223093 = 2539377048; 1.2 GiB → n 41, end 1352317511 → +202847626 =
// 1555165137.
func TestVPATargets(t *testing.T) {
	minute := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	cases := []struct {
		name     string
		feed     func(v *VPA)
		cpu, mem float64
	}{{
		// 17 of 20 equal-weight samples at 0.5 core: the 18 needed for p90
		// reach into the 2-core bucket.
		name: "p90 in the tail",
		feed: func(v *VPA) {
			for i := range 20 {
				u := 0.5
				if i >= 17 {
					u = 2
				}
				v.AddCPU(minute(i), u, 1)
			}
		},
		cpu: 2.346, mem: 250 * 1024 * 1024,
	}, {
		name: "p90 in the body",
		feed: func(v *VPA) {
			for i := range 20 {
				u := 0.5
				if i == 19 {
					u = 2
				}
				v.AddCPU(minute(i), u, 1)
			}
		},
		cpu: 0.580, mem: 250 * 1024 * 1024,
	}, {
		name: "floors",
		feed: func(v *VPA) {
			v.AddCPU(t0, 0.02, 0.02)
			v.AddMemory(t0, 1e6)
		},
		cpu: 0.025, mem: 250 * 1024 * 1024,
	}, {
		// Daily peaks 1 GiB then 2 GiB; the second is added one 24 h
		// half-life later so it weighs 2 against 1: p90 (threshold 2.7)
		// needs the 2 GiB bucket.
		name: "daily peaks decay",
		feed: func(v *VPA) {
			v.AddCPU(t0, 0.5, 1)
			v.AddMemory(t0, gibF)
			v.AddMemory(t0.Add(24*time.Hour+time.Minute), 2*gibF)
		},
		cpu: 0.580, mem: 2539377048,
	}, {
		// A higher sample in the same interval replaces the peak: only
		// 1.2 GiB remains.
		name: "peak replaced within the interval",
		feed: func(v *VPA) {
			v.AddCPU(t0, 0.5, 1)
			v.AddMemory(t0, gibF)
			v.AddMemory(t0.Add(time.Hour), 1.2*gibF)
		},
		cpu: 0.580, mem: 1555165137,
	}, {
		// OOM with a 1 GiB request and no peak yet: max(1 GiB + 100 MiB,
		// 1.2 GiB) = 1288490188.8 bytes, truncated, becomes the peak.
		name: "OOM bump",
		feed: func(v *VPA) {
			v.AddCPU(t0, 0.5, 1)
			v.RecordOOM(t0, gibF)
		},
		cpu: 0.580, mem: 1555165137,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := NewVPA(DefaultVPAConfig())
			c.feed(v)
			cpu, mem, ok := v.Target()
			if !ok {
				t.Fatal("no target")
			}
			if math.Abs(cpu-c.cpu) > 1e-9 || mem != c.mem {
				t.Errorf("target = %v cores, %v bytes; want %v, %v", cpu, mem, c.cpu, c.mem)
			}
		})
	}
	if _, _, ok := NewVPA(DefaultVPAConfig()).Target(); ok {
		t.Error("a VPA without CPU samples must have no target")
	}
}

func TestVPABoundsAndUpdater(t *testing.T) {
	v := NewVPA(DefaultVPAConfig())
	// Two days at one sample a minute: confidence min(2 days, 2880/1440) ≈ 2.
	for i := range 2 * 1440 {
		v.AddCPU(t0.Add(time.Duration(i)*time.Minute), 0.5, 1)
	}
	if c := v.Confidence(); math.Abs(c-2) > 0.001 {
		t.Fatalf("confidence %v, want about 2", c)
	}
	r, _ := v.Recommendation()
	// Every percentile is the 0.5-core bucket: 580m. Upper bound × (1 +
	// 1/c)^1 ≈ 1.5; lower × (1 + 0.001/c)^-2 ≈ 0.999.
	if r.Target.CPU != 0.580 || math.Abs(r.UpperBound.CPU-0.870) > 0.001 || math.Abs(r.LowerBound.CPU-0.579) > 0.001 {
		t.Errorf("cpu target/lower/upper = %v/%v/%v, want 0.580/0.579/0.870", r.Target.CPU, r.LowerBound.CPU, r.UpperBound.CPU)
	}
	rec := VPARecommendation{
		Target:     VPAResources{CPU: 1, Memory: 1000},
		LowerBound: VPAResources{CPU: 0.5, Memory: 500},
		UpperBound: VPAResources{CPU: 2, Memory: 2000},
	}
	for _, c := range []struct {
		cur  VPAResources
		want bool
	}{
		{VPAResources{CPU: 1.05, Memory: 1040}, false}, // in range, diff 0.048 + 0.038 < 0.1
		{VPAResources{CPU: 1.06, Memory: 1060}, true},  // in range, diff 0.057 + 0.057 ≥ 0.1
		{VPAResources{CPU: 0.4, Memory: 1000}, true},   // below the lower bound
		{VPAResources{CPU: 1, Memory: 2100}, true},     // above the upper bound
		{VPAResources{CPU: 1, Memory: 0}, true},        // no request
	} {
		if got := VPAShouldUpdate(c.cur, rec, VPAUpdateThreshold); got != c.want {
			t.Errorf("VPAShouldUpdate(%+v) = %v, want %v", c.cur, got, c.want)
		}
	}
}

func TestPromQuantile(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3}
	for _, c := range []struct{ q, want float64 }{
		{0, 1}, {0.5, 3}, {1, 5},
		{0.95, 4.8}, // rank 0.95·4 = 3.8: 4·0.2 + 5·0.8
		{0.9, 4.6},  // rank 3.6
	} {
		if got := PromQuantile(c.q, v); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("PromQuantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if v[0] != 5 {
		t.Error("PromQuantile sorted its input")
	}
	if !math.IsNaN(PromQuantile(0.5, nil)) || !math.IsInf(PromQuantile(-1, v), -1) || !math.IsInf(PromQuantile(2, v), 1) {
		t.Error("edge cases differ from Prometheus")
	}
}

// The KRR figures below are worked out from krr's rules: CPU is the p95
// of the samples (PromQuantile), memory the peak + 15 %; then
// Runner._round_value rounds CPU up to 1m and memory up to 1 MiB and raises
// them to cpu_min_value (10m) and memory_min_value (100 MiB).
func TestKRRSimple(t *testing.T) {
	const mibF = float64(mib)
	ramp := make([]float64, 100)
	for i := range ramp {
		ramp[i] = 0.01 * float64(i+1) // 0.01 … 1.00 cores
	}
	flat := func(v float64) []float64 {
		s := make([]float64, 100)
		for i := range s {
			s[i] = v
		}
		return s
	}
	noMin := DefaultKRRConfig()
	noMin.CPUMinValue, noMin.MemoryMinValue = 0, 0
	withOOM := DefaultKRRConfig()
	withOOM.UseOOMKillData = true
	cases := []struct {
		name            string
		in              KRRInputs
		cfg             KRRConfig
		cpu, mem        float64
		cpuOK, memoryOK bool
	}{{
		// p95: rank 0.95·99 = 94.05 between 0.95 and 0.96: 0.9505 cores,
		// up to 951m. Memory: 1 GiB · 1.15 = 1177.6 MiB, up to 1178 MiB.
		name: "rounded up",
		in:   KRRInputs{CPU: ramp, MemoryPeak: gibF, Points: 100},
		cpu:  0.951, mem: 1178 * mibF, cpuOK: true, memoryOK: true,
	}, {
		// 12.3m up to 13m; 200 MiB · 1.15 = 230 MiB, already whole.
		name: "just above the minimums",
		in:   KRRInputs{CPU: flat(0.0123), MemoryPeak: 200 * mibF, Points: 100},
		cpu:  0.013, mem: 230 * mibF, cpuOK: true, memoryOK: true,
	}, {
		// 4.2m up to 5m, then 10m; 50 MiB · 1.15 = 57.5 MiB up to 58, then 100.
		name: "small: the minimums",
		in:   KRRInputs{CPU: flat(0.0042), MemoryPeak: 50 * mibF, Points: 100},
		cpu:  0.01, mem: 100 * mibF, cpuOK: true, memoryOK: true,
	}, {
		// An idle container's 0 and 0 are data: krr prints its minimums.
		name: "idle: the minimums",
		in:   KRRInputs{CPU: flat(0), MemoryPeak: 0, Points: 100},
		cpu:  0.01, mem: 100 * mibF, cpuOK: true, memoryOK: true,
	}, {
		// krr accepts --cpu_min_value 0 (ge=0): then 0 is a figure.
		name: "idle without minimums",
		in:   KRRInputs{CPU: flat(0), MemoryPeak: 0, Points: 100},
		cfg:  noMin,
		cpu:  0, mem: 0, cpuOK: true, memoryOK: true,
	}, {
		name: "fewer than points_required: undefined",
		in:   KRRInputs{CPU: ramp, MemoryPeak: gibF, Points: 99},
	}, {
		name: "no memory data",
		in:   KRRInputs{CPU: flat(0.5), MemoryPeak: math.NaN(), Points: 100},
		cpu:  0.5, cpuOK: true,
	}, {
		name: "no CPU data",
		in:   KRRInputs{MemoryPeak: gibF, Points: 100},
		mem:  1178 * mibF, memoryOK: true,
	}, {
		// use_oomkill_data is off by default: the 2 GiB OOM is ignored.
		name: "OOM data off",
		in:   KRRInputs{CPU: flat(0.5), MemoryPeak: gibF, Points: 100, MaxOOMKilledBytes: 2 * gibF},
		cpu:  0.5, mem: 1178 * mibF, cpuOK: true, memoryOK: true,
	}, {
		// With it, 2 GiB · 1.25 = 2560 MiB beats 1178 MiB.
		name: "OOM data on",
		in:   KRRInputs{CPU: flat(0.5), MemoryPeak: gibF, Points: 100, MaxOOMKilledBytes: 2 * gibF},
		cfg:  withOOM,
		cpu:  0.5, mem: 2560 * mibF, cpuOK: true, memoryOK: true,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			if cfg == (KRRConfig{}) {
				cfg = DefaultKRRConfig()
			}
			r := KRRSimple(c.in, cfg)
			want := KRRResult{CPU: c.cpu, Memory: c.mem, CPUOK: c.cpuOK, MemoryOK: c.memoryOK}
			if r != want {
				t.Errorf("KRRSimple = %+v, want %+v", r, want)
			}
		})
	}
}
