package forecast

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

func sine(i, perDay int) float64 {
	return 10 + 5*math.Sin(2*math.Pi*float64(i)/float64(perDay))
}

func mustFit(t *testing.T, s Series, opts Options) *Model {
	t.Helper()
	m, err := Fit(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFitRecoversDailySeason(t *testing.T) {
	for _, step := range []time.Duration{time.Hour, 5 * time.Minute} {
		perDay := int(day / step)
		n := 14 * perDay
		m := mustFit(t, mk(monday, step, n, func(i int) float64 { return sine(i, perDay) }), Options{})
		if p := m.Params(); !p.Daily || !p.Weekly {
			t.Errorf("%v: params %+v", step, p)
		}
		for k, p := range m.Forecast(2 * perDay) {
			want := sine(n+k, perDay)
			if math.Abs(p.P50-want) > 1e-6 || p.P90-p.P50 > 1e-6 {
				t.Fatalf("%v: step %d: %+v, want P50 = P90 = %v", step, k, p, want)
			}
			if !p.T.Equal(monday.Add(time.Duration(n+k) * step)) {
				t.Fatalf("%v: step %d at %v", step, k, p.T)
			}
		}
		// Over a whole day the sine averages out to its level; the peak
		// is level + amplitude.
		if h := m.Horizon(day); math.Abs(h.P50-10) > 1e-6 || math.Abs(h.PeakP90-15) > 1e-6 {
			t.Errorf("%v: Horizon(1d) = %+v", step, h)
		}
	}
}

func TestFitFollowsLinearTrend(t *testing.T) {
	line := func(i int) float64 { return 5 + 0.1*float64(i) }
	n := 14 * 24
	m := mustFit(t, mk(monday, time.Hour, n, line), Options{})
	if m.Params().SlopeHalfLife == 0 {
		t.Errorf("no trend fitted: %+v", m.Params())
	}
	prev := 0.0
	for k, p := range m.Forecast(24) {
		want := line(n + k)
		if math.Abs(p.P50-want) > 0.01*want || p.P50 <= prev {
			t.Errorf("step %d: P50 %v, want %v (rising)", k, p.P50, want)
		}
		prev = p.P50
	}
	// The trend is damped: 30 days ahead it has flattened instead of
	// adding another 72.
	if h := m.Horizon(30 * day); h.P50 > line(n)+30 {
		t.Errorf("30-day P50 %v runs away from %v", h.P50, line(n))
	}
}

func TestFitConstant(t *testing.T) {
	m := mustFit(t, mk(monday, time.Hour, 21*24, func(int) float64 { return 7 }), Options{})
	for _, h := range m.Summaries() {
		if math.Abs(h.P50-7) > 1e-9 || math.Abs(h.P90-7) > 1e-9 || math.Abs(h.PeakP90-7) > 1e-9 {
			t.Errorf("%v: %+v, want 7 with a zero-width band", h.Horizon, h)
		}
	}
}

func TestFitHandlesMissing(t *testing.T) {
	n := 14 * 24
	s := mk(monday, time.Hour, n, func(i int) float64 {
		switch {
		case i < 5, i%7 == 3, i >= 200 && i < 206, i == n-1:
			return math.NaN()
		}
		return sine(i, 24)
	})
	m := mustFit(t, s, Options{})
	for k, p := range m.Forecast(48) {
		if want := sine(n+k, 24); math.Abs(p.P50-want) > 0.2 || p.P90 < p.P50 {
			t.Errorf("step %d: %+v, want P50 ≈ %v", k, p, want)
		}
	}
	if p := m.Params(); p.Valid != n-5-47-6-1 || p.Points != n {
		t.Errorf("points %d valid %d", p.Points, p.Valid)
	}

	all := mk(monday, time.Hour, 48, func(int) float64 { return math.NaN() })
	if _, err := Fit(all, Options{}); !errors.Is(err, ErrNoData) {
		t.Errorf("all missing: error %v, want ErrNoData", err)
	}
	if _, err := Fit(Series{Step: 0, Values: []float64{1}}, Options{}); err == nil {
		t.Error("zero step: no error")
	}
}

func TestFitNeverNegativeNorAboveMax(t *testing.T) {
	cases := map[string]Series{
		// Falling fast towards zero, with noise around it.
		"falling": mk(monday, time.Hour, 14*24, func(i int) float64 {
			return math.Max(0, 60-0.25*float64(i)+3*noise(i))
		}),
		// Near zero, spiky: a naive band would reach below zero.
		"idle spikes": mk(monday, time.Hour, 14*24, func(i int) float64 {
			if i%37 == 0 {
				return 40
			}
			return 0.5 + 0.5*noise(i)
		}),
		// Pinned near the 100 % cap.
		"saturated": mk(monday, time.Hour, 14*24, func(i int) float64 {
			return math.Min(100, 97+4*noise(i)+0.02*float64(i))
		}),
	}
	for name, s := range cases {
		m := mustFit(t, s, Options{Max: 100})
		for k, p := range m.Forecast(30 * 24) {
			if !(p.P50 >= 0 && p.P90 >= p.P50 && p.P90 <= 100) {
				t.Fatalf("%s: step %d: %+v", name, k, p)
			}
		}
		for _, h := range m.Summaries() {
			if !(h.P50 >= 0 && h.P90 >= h.P50 && h.PeakP90 >= h.P90 && h.PeakP90 <= 100) {
				t.Errorf("%s: %+v", name, h)
			}
		}
	}
}

func TestFitWeeklySeason(t *testing.T) {
	// Weekends (Saturday and Sunday) run 8 lower than weekdays.
	week := func(i int) float64 {
		v := 20 + 5*math.Sin(2*math.Pi*float64(i)/24) + noise(i)
		if (i/24)%7 >= 5 {
			v -= 8
		}
		return v
	}
	n := 28 * 24
	m := mustFit(t, mk(monday, time.Hour, n, week), Options{})
	var weekday, weekend float64
	for k, p := range m.Forecast(7 * 24) {
		if ((n+k)/24)%7 >= 5 {
			weekend += p.P50 / 48
		} else {
			weekday += p.P50 / 120
		}
	}
	if weekday-weekend < 6 {
		t.Errorf("weekday mean %v, weekend mean %v: weekly season lost (%+v)", weekday, weekend, m.Params())
	}
	if m2 := mustFit(t, mk(monday, time.Hour, n, week), Options{NoWeekly: true}); m2.Params().Weekly {
		t.Error("NoWeekly fitted a weekly profile")
	}
}

func TestFitIgnoresSpikeFollowsShift(t *testing.T) {
	n := 14 * 24
	base := func(i int) float64 { return sine(i, 24) + noise(i) }
	spike := mk(monday, time.Hour, n, func(i int) float64 {
		if i == n-5 {
			return 90
		}
		return base(i)
	})
	m := mustFit(t, spike, Options{})
	for k, p := range m.Forecast(24) {
		if want := sine(n+k, 24); math.Abs(p.P50-want) > 1 {
			t.Errorf("spike: step %d: P50 %v, want ≈ %v", k, p.P50, want)
		}
	}
	// The level moves up by 20 for the last 6 hours: a shift, not a spike.
	shift := mk(monday, time.Hour, n, func(i int) float64 {
		if i >= n-6 {
			return base(i) + 20
		}
		return base(i)
	})
	m = mustFit(t, shift, Options{})
	for k, p := range m.Forecast(24) {
		if want := sine(n+k, 24) + 20; math.Abs(p.P50-want) > 2 {
			t.Errorf("shift: step %d: P50 %v, want ≈ %v", k, p.P50, want)
		}
	}
}

func TestBandsWidenWithHorizon(t *testing.T) {
	// A wandering level: errors grow with the horizon.
	lvl := 30.0
	s := mk(monday, time.Hour, 21*24, func(i int) float64 {
		lvl += 2 * noise(i)
		return lvl + 3*noise(i+1e6) + 5*math.Sin(2*math.Pi*float64(i)/24)
	})
	m := mustFit(t, s, Options{})
	prev := math.Inf(-1)
	for k := 1; k <= 30*24; k++ {
		q10, q50, q90 := m.bands.at(k)
		if q90-q50 < prev-1e-12 || q50 < q10 || q90 < q50 {
			t.Fatalf("step %d: q10 %v q50 %v q90 %v (previous spread %v)", k, q10, q50, q90, prev)
		}
		prev = q90 - q50
	}
	if _, q50, q90 := m.bands.at(30 * 24); q90-q50 <= 0 {
		t.Error("no band at 30 days")
	}
	// Past the last scored horizon the spread grows at most growthCap-fold.
	last := m.bands.hs[len(m.bands.hs)-1]
	_, a50, a90 := m.bands.at(last)
	_, b50, b90 := m.bands.at(1000 * last)
	if r := (b90 - b50) / (a90 - a50); math.Abs(r-growthCap) > 1e-9 {
		t.Errorf("growth beyond the scored horizons %v, want %v", r, growthCap)
	}
}

func TestFitDeterministic(t *testing.T) {
	s := mk(monday, time.Hour, 20*24, func(i int) float64 { return sine(i, 24) + 3*noise(i) })
	a, b := mustFit(t, s, Options{}), mustFit(t, s, Options{})
	if !reflect.DeepEqual(a.Forecast(200), b.Forecast(200)) || a.Params() != b.Params() {
		t.Error("two fits of one series differ")
	}
}

func TestFitShortAndOddSeries(t *testing.T) {
	for name, s := range map[string]Series{
		"one point":     {Start: monday, Step: time.Hour, Values: []float64{3}},
		"five points":   mk(monday, time.Hour, 5, func(i int) float64 { return float64(i) }),
		"a day":         mk(monday, time.Hour, 30, func(i int) float64 { return sine(i, 24) }),
		"7-minute step": mk(monday, 7*time.Minute, 500, func(i int) float64 { return 5 + noise(i) }),
	} {
		m := mustFit(t, s, Options{})
		for k, p := range m.Forecast(48) {
			if !(p.P50 >= 0 && p.P90 >= p.P50) || math.IsInf(p.P90, 0) {
				t.Fatalf("%s: step %d: %+v", name, k, p)
			}
		}
		if name == "one point" {
			if p := m.Forecast(1)[0]; p.P50 != 3 || p.P90 != 3 {
				t.Errorf("one point: %+v, want 3", p)
			}
		}
		if name == "7-minute step" && m.Params().Daily {
			t.Error("daily profile with a step that does not divide a day")
		}
	}
}

func TestFitMaxHistory(t *testing.T) {
	s := mk(monday, time.Hour, 50*24, func(i int) float64 { return sine(i, 24) })
	if p := mustFit(t, s, Options{}).Params(); p.Points != 35*24 {
		t.Errorf("default history: %d points, want %d", p.Points, 35*24)
	}
	if p := mustFit(t, s, Options{MaxHistory: 14 * day}).Params(); p.Points != 14*24 {
		t.Errorf("14-day history: %d points", p.Points)
	}
	if m := mustFit(t, s, Options{}); !m.Forecast(1)[0].T.Equal(s.End()) {
		t.Error("forecast does not start at the end of the series")
	}
}

func TestHorizonGrid(t *testing.T) {
	want := []int{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 168}
	if got := horizonGrid(168); !reflect.DeepEqual(got, want) {
		t.Errorf("horizonGrid(168) = %v", got)
	}
	if got := horizonGrid(1); !reflect.DeepEqual(got, []int{1}) {
		t.Errorf("horizonGrid(1) = %v", got)
	}
}

func TestDampedSum(t *testing.T) {
	if got := dampedSum(0.5, 3); got != 0.875 {
		t.Errorf("dampedSum(0.5, 3) = %v, want 0.5+0.25+0.125", got)
	}
	if got := dampedSum(1, 7); got != 7 {
		t.Errorf("dampedSum(1, 7) = %v", got)
	}
	if got := dampedSum(0.9, 1e6); math.Abs(got-9) > 1e-9 {
		t.Errorf("dampedSum(0.9, ∞) = %v, want 9", got)
	}
}
