package forecast

import (
	"math"
	"testing"
	"time"
)

var monday = time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC) // a Monday

// mk builds a series of n points from f.
func mk(start time.Time, step time.Duration, n int, f func(i int) float64) Series {
	v := make([]float64, n)
	for i := range v {
		v[i] = f(i)
	}
	return Series{Name: "test", Start: start, Step: step, Values: v}
}

// noise is a deterministic pseudo-random value in [-0.5, 0.5) for i: the
// tests need noise, never randomness.
func noise(i int) float64 {
	x := uint64(i)*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
	x ^= x >> 31
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 29
	return float64(x>>11)/(1<<53) - 0.5
}

func TestResample(t *testing.T) {
	nan := math.NaN()
	s := Series{Start: monday.Add(10 * time.Minute), Step: 5 * time.Minute,
		Values: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, nan, nan, nan, nan, nan, nan, nan, 1, 2, 3}}
	h, err := s.Resample(30 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Buckets start at :00, :30, 1:00 and 1:30. The first holds points
	// 0–3 (:10 to :25; 4 of 6 is enough), the third only 2 finite points
	// of 6 (missing), the last 3 of 6 (enough).
	want := []float64{2.5, 7.5, nan, 2}
	if !h.Start.Equal(monday) || h.Step != 30*time.Minute || len(h.Values) != len(want) {
		t.Fatalf("got start %v step %v values %v", h.Start, h.Step, h.Values)
	}
	for i, w := range want {
		if g := h.Values[i]; !(g == w || math.IsNaN(g) && math.IsNaN(w)) {
			t.Errorf("bucket %d = %v, want %v", i, g, w)
		}
	}
	// A bucket needs half of its points: 3 of 6 is enough.
	s = Series{Start: monday, Step: 10 * time.Minute, Values: []float64{nan, 4, nan, 8, nan, 6}}
	if h, _ := s.Resample(time.Hour); h.Values[0] != 6 {
		t.Errorf("half-full bucket = %v, want 6", h.Values[0])
	}
	if _, err := s.Resample(15 * time.Minute); err == nil {
		t.Error("15m from 10m: no error")
	}
	if _, err := (Series{Step: 0}).Resample(time.Hour); err == nil {
		t.Error("zero step: no error")
	}
}

func TestPhaseOf(t *testing.T) {
	for _, c := range []struct {
		t            time.Time
		period, step time.Duration
		want         int
	}{
		{monday, week, time.Hour, 0},
		{monday.Add(-time.Hour), week, time.Hour, 167},
		{monday.Add(9*time.Hour + 30*time.Minute), day, time.Hour, 9},
		{monday.Add(2*day + 5*time.Minute), week, 5 * time.Minute, 2*288 + 1},
		{time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), day, time.Hour, 23},
	} {
		if got := phaseOf(c.t, c.period, c.step); got != c.want {
			t.Errorf("phaseOf(%v, %v, %v) = %d, want %d", c.t, c.period, c.step, got, c.want)
		}
	}
}

func TestSliceKeepsPhase(t *testing.T) {
	s := mk(monday, time.Hour, 48, func(i int) float64 { return float64(i) })
	sl := s.Slice(30, 40)
	if !sl.Start.Equal(monday.Add(30*time.Hour)) || sl.Values[0] != 30 || !sl.End().Equal(monday.Add(40*time.Hour)) {
		t.Errorf("slice start %v first %v end %v", sl.Start, sl.Values[0], sl.End())
	}
}

func TestMovingAverageAndFill(t *testing.T) {
	nan := math.NaN()
	// A period-4 cycle on a ramp: the centred 2×4 average removes the
	// cycle exactly and leaves the ramp; ends copy the nearest full window.
	y := make([]float64, 16)
	for i := range y {
		y[i] = float64(i) + []float64{3, -1, -3, 1}[i%4]
	}
	ma := movingAverage(y, 4)
	for i := 2; i < 14; i++ {
		if math.Abs(ma[i]-float64(i)) > 1e-12 {
			t.Errorf("ma[%d] = %v, want %d", i, ma[i], i)
		}
	}
	if ma[0] != ma[2] || ma[15] != ma[13] {
		t.Errorf("ends %v %v, want %v %v", ma[0], ma[15], ma[2], ma[13])
	}
	x := []float64{nan, 1, nan, nan, 4, nan}
	fillLinear(x)
	for i, w := range []float64{1, 1, 2, 3, 4, 4} {
		if x[i] != w {
			t.Errorf("fill[%d] = %v, want %v", i, x[i], w)
		}
	}
}

func TestPhaseProfileShrinks(t *testing.T) {
	// A strong season survives; a season no bigger than its noise is
	// shrunk towards zero.
	strong := make([]float64, 24*14)
	weak := make([]float64, 24*14)
	for i := range strong {
		strong[i] = 10*math.Sin(2*math.Pi*float64(i)/24) + noise(i)
		weak[i] = 0.05*math.Sin(2*math.Pi*float64(i)/24) + 4*noise(i)
	}
	p, sigma, m := phaseProfile(strong, 24, 0)
	shrinkProfile(p, sigma, m)
	if math.Abs(p[6]-10) > 0.5 {
		t.Errorf("strong profile at the peak = %v, want ≈ 10", p[6])
	}
	q, sigma, m := phaseProfile(weak, 24, 0)
	shrinkProfile(q, sigma, m)
	for ph, v := range q {
		if math.Abs(v) > 0.3 {
			t.Errorf("weak profile[%d] = %v, want ≈ 0", ph, v)
		}
	}
}
