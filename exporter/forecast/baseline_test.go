package forecast

import (
	"math"
	"testing"
	"time"
)

func TestBaselineNames(t *testing.T) {
	for f, want := range map[Forecaster]string{
		UPID(Options{}):                 "upid",
		SeasonalNaive(day):              "seasonal_naive_1d",
		SeasonalNaive(week):             "seasonal_naive_1w",
		LinearFit(day):                  "linear_1d",
		LinearFit(6 * time.Hour):        "linear_6h",
		PointOnly(SeasonalNaive(day)):   "seasonal_naive_1d_point",
		PointOnly(LinearFit(day)):       "linear_1d_point",
		PointOnly(UPID(Options{})):      "upid",
		SeasonalNaive(90 * time.Minute): "seasonal_naive_1h30m0s",
	} {
		if got := f.Name(); got != want {
			t.Errorf("Name() = %q, want %q", got, want)
		}
	}
}

func fitForecast(t *testing.T, f Forecaster, s Series, h int) []Point {
	t.Helper()
	fit, err := f.Fit(s)
	if err != nil {
		t.Fatal(err)
	}
	return fit.Forecast(h)
}

func TestSeasonalNaive(t *testing.T) {
	// y_i = i: one period back is 24 less, the last cycle repeats beyond
	// a period, and every in-sample error at any horizon up to a day is
	// exactly 24 (two days ahead, 48), so the bands shift the point up by
	// exactly that: the banded forecast is y itself.
	n := 10 * 24
	ramp := mk(monday, time.Hour, n, func(i int) float64 { return float64(i) })
	pt := fitForecast(t, PointOnly(SeasonalNaive(day)), ramp, 48)
	for k, p := range pt {
		want := float64(n - 24 + k%24)
		if p.P50 != want || p.P90 != want || !p.T.Equal(ramp.End().Add(time.Duration(k)*time.Hour)) {
			t.Fatalf("point: step %d: %+v, want %v", k, p, want)
		}
	}
	banded := fitForecast(t, SeasonalNaive(day), ramp, 24)
	for k, p := range banded {
		if want := float64(n + k); p.P50 != want || p.P90 != want {
			t.Fatalf("banded: step %d: %+v, want %v", k, p, want)
		}
	}

	// A missing value falls back on the cycle before; none at all on the
	// last finite value.
	s := mk(monday, time.Hour, 72, func(i int) float64 { return float64(i % 24) })
	s.Values[48+5] = math.NaN()
	if p := fitForecast(t, PointOnly(SeasonalNaive(day)), s, 6)[5]; p.P50 != 5 {
		t.Errorf("fallback: %+v, want 5", p)
	}
	short := Series{Start: monday, Step: time.Hour, Values: []float64{math.NaN(), 7, math.NaN()}}
	if p := fitForecast(t, SeasonalNaive(day), short, 1)[0]; p.P50 != 7 {
		t.Errorf("short: %+v, want 7", p)
	}
	if _, err := SeasonalNaive(day).Fit(Series{Start: monday, Step: 7 * time.Minute, Values: []float64{1}}); err == nil {
		t.Error("period not a multiple of the step: no error")
	}
	if _, err := SeasonalNaive(day).Fit(Series{Start: monday, Step: time.Hour, Values: []float64{math.NaN()}}); err == nil {
		t.Error("no data: no error")
	}
}

func TestLinearFit(t *testing.T) {
	line := mk(monday, time.Hour, 100, func(i int) float64 { return 3 + 2*float64(i) })
	for k, p := range fitForecast(t, LinearFit(6*time.Hour), line, 30) {
		if want := 3 + 2*float64(100+k); math.Abs(p.P50-want) > 1e-9 || math.Abs(p.P90-want) > 1e-9 {
			t.Fatalf("step %d: %+v, want %v", k, p, want)
		}
	}
	// Least squares through 0, 1, 0, 1 (x = 0..3): slope 0.2, intercept
	// 0.2 at x = 0, so 0.8 at x = 3 and 1.0 one step later. The window
	// keeps only those four points of the eight.
	zig := Series{Start: monday, Step: time.Hour, Values: []float64{50, 50, 50, 50, 0, 1, 0, 1}}
	if p := fitForecast(t, PointOnly(LinearFit(4*time.Hour)), zig, 1)[0]; math.Abs(p.P50-1) > 1e-12 {
		t.Errorf("zig-zag: %+v, want 1", p)
	}
	// Missing points are skipped; falling lines stop at zero.
	fall := mk(monday, time.Hour, 48, func(i int) float64 {
		if i%5 == 0 {
			return math.NaN()
		}
		return 40 - float64(i)
	})
	for k, p := range fitForecast(t, LinearFit(day), fall, 48) {
		want := math.Max(0, 40-float64(48+k))
		if math.Abs(p.P50-want) > 1e-9 || p.P90 < p.P50 {
			t.Fatalf("falling: step %d: %+v, want %v", k, p, want)
		}
	}
}
