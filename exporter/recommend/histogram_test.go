package recommend

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// Ratio 2 and first bucket 1 give bucket starts 0, 1, 3, 7, 15, 31, 63, 127
// (FirstBucket·(2^n − 1)), easy to follow by hand; Max 100 needs
// ceil(log2(100·1/1 + 1)) + 1 = 8 buckets, the last starting at 127.
func testOptions(halfLife time.Duration) HistogramOptions {
	return HistogramOptions{FirstBucket: 1, Ratio: 2, Max: 100, HalfLife: halfLife, Epsilon: 1e-4}
}

func TestHistogramBuckets(t *testing.T) {
	o := testOptions(0)
	if n := o.numBuckets(); n != 8 {
		t.Fatalf("numBuckets = %d, want 8", n)
	}
	for _, c := range []struct {
		v    float64
		want int
	}{{0, 0}, {0.99, 0}, {1, 1}, {2.99, 1}, {3, 2}, {7, 3}, {14.999, 3}, {15, 4}, {126, 6}, {127, 7}, {1e9, 7}, {math.NaN(), 0}} {
		if got := o.findBucket(c.v, 8); got != c.want {
			t.Errorf("findBucket(%v) = %d, want %d", c.v, got, c.want)
		}
	}
	// The VPA CPU scheme: 0.001·(1.05^n − 1)/0.05 up to 1000 cores.
	if n := CPUHistogramOptions().numBuckets(); n != 223 {
		t.Errorf("CPU buckets = %d, want 223 (ceil(log_1.05(1000·0.05/0.001 + 1)) + 1)", n)
	}
	if n := MemoryHistogramOptions().numBuckets(); n != 176 {
		t.Errorf("memory buckets = %d, want 176 (ceil(log_1.05(1e12·0.05/1e7 + 1)) + 1)", n)
	}
}

func TestHistogramPercentileAndQuantile(t *testing.T) {
	h, err := NewHistogram(testOptions(0))
	if err != nil {
		t.Fatal(err)
	}
	if h.Percentile(0.5) != 0 || h.Quantile(0.5) != 0 || !h.IsEmpty() {
		t.Fatal("empty histogram must answer 0")
	}
	for _, v := range []float64{0.5, 2, 5, 10} {
		h.Add(v, 1, t0)
	}
	for _, c := range []struct {
		p, percentile, quantile float64
	}{
		// Threshold p·4. p=0: the first non-empty bucket [0,1).
		{0, 1, 0},
		// p=0.5: cumulative 1 after [0,1), 2 after [1,3) reaches 2: end 3;
		// interpolated (2−1)/1 of the way through [1,3): 3.
		{0.5, 3, 3},
		// p=0.6: threshold 2.4 lands in [3,7) with 2 below and 1 in it:
		// 3 + 0.4·4 = 4.6.
		{0.6, 7, 4.6},
		{1, 15, 15},
	} {
		if got := h.Percentile(c.p); got != c.percentile {
			t.Errorf("Percentile(%v) = %v, want %v", c.p, got, c.percentile)
		}
		if got := h.Quantile(c.p); math.Abs(got-c.quantile) > 1e-12 {
			t.Errorf("Quantile(%v) = %v, want %v", c.p, got, c.quantile)
		}
	}
	// Only the occupied range [0, 15) is stored.
	if h.Buckets() != 4 {
		t.Errorf("Buckets = %d, want 4", h.Buckets())
	}
	// The last bucket has no end: its start is the answer.
	h.Add(1000, 10, t0)
	if got := h.Percentile(1); got != 127 {
		t.Errorf("Percentile(1) with a huge value = %v, want 127", got)
	}
	// Broken samples are ignored.
	before := h.TotalWeight()
	h.Add(math.NaN(), 1, t0)
	h.Add(-1, 1, t0)
	h.Add(1, math.Inf(1), t0)
	h.Add(1, -2, t0)
	if h.TotalWeight() != before {
		t.Error("invalid samples changed the histogram")
	}
}

func TestHistogramDecay(t *testing.T) {
	h := mustHistogram(testOptions(time.Hour))
	// One half-life later a sample weighs twice as much: weights 1 and 2.
	h.Add(1, 1, t0)
	h.Add(5, 1, t0.Add(time.Hour))
	if got := h.Percentile(0.3); got != 3 { // threshold 0.9 ≤ 1: bucket [1,3)
		t.Errorf("Percentile(0.3) = %v, want 3", got)
	}
	if got := h.Percentile(0.5); got != 7 { // threshold 1.5 > 1: bucket [3,7)
		t.Errorf("Percentile(0.5) = %v, want 7", got)
	}
	// A sample more than 100 half-lives later moves the reference: the old
	// weights shrink by 2^-200 below epsilon and leave the histogram, as in
	// the VPA, without overflow.
	h.Add(10, 1, t0.Add(200*time.Hour))
	if got := h.Percentile(0); got != 15 {
		t.Errorf("after the shift Percentile(0) = %v, want 15 (only the new sample)", got)
	}
	if h.Buckets() != 1 || math.IsInf(h.TotalWeight(), 0) {
		t.Errorf("after the shift: %d buckets, total %v", h.Buckets(), h.TotalWeight())
	}
}

func TestHistogramSubtractMerge(t *testing.T) {
	h := mustHistogram(testOptions(time.Hour))
	h.Add(2, 1, t0)
	h.Subtract(2, 1, t0)
	if !h.IsEmpty() || h.Buckets() != 0 {
		t.Errorf("subtracting the only sample leaves %d buckets", h.Buckets())
	}
	h.Subtract(2, 1, t0) // nothing to subtract: no negative weight
	if h.TotalWeight() != 0 {
		t.Errorf("total %v after subtracting from empty", h.TotalWeight())
	}

	all := mustHistogram(testOptions(time.Hour))
	a := mustHistogram(testOptions(time.Hour))
	b := mustHistogram(testOptions(time.Hour))
	for i, v := range []float64{0.5, 2, 5, 10, 20, 40} {
		at := t0.Add(time.Duration(i) * 30 * time.Minute)
		all.Add(v, 1, at)
		if i%2 == 0 {
			a.Add(v, 1, at)
		} else {
			b.Add(v, 1, at)
		}
	}
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	for _, p := range []float64{0, 0.2, 0.5, 0.7, 0.9, 1} {
		if a.Percentile(p) != all.Percentile(p) || math.Abs(a.Quantile(p)-all.Quantile(p)) > 1e-9 {
			t.Errorf("merged p%v: %v/%v, want %v/%v", p, a.Percentile(p), a.Quantile(p), all.Percentile(p), all.Quantile(p))
		}
	}
	if err := a.Merge(mustHistogram(testOptions(0))); err == nil {
		t.Error("merging different options must fail")
	}
	if _, err := NewHistogram(HistogramOptions{FirstBucket: 1, Ratio: 1, Max: 1, Epsilon: 1}); err == nil {
		t.Error("ratio 1 must be rejected")
	}
}
