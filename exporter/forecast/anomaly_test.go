package forecast

import (
	"math"
	"testing"
	"time"
)

func TestAnomalyScore(t *testing.T) {
	n := 14 * 24
	hist := mk(monday, time.Hour, n, func(i int) float64 { return sine(i, 24) + 2*noise(i) })
	m := mustFit(t, hist, Options{})
	fc := m.Forecast(24)
	recent := func(f func(k int, p Point) float64) Series {
		return mk(hist.End(), time.Hour, 24, func(k int) float64 { return f(k, fc[k]) })
	}
	width := func(p Point) float64 { return p.P90 - p.P50 }
	for _, c := range []struct {
		name   string
		recent Series
		want   float64
	}{
		{"at the median", recent(func(_ int, p Point) float64 { return p.P50 }), 0},
		{"at P90", recent(func(_ int, p Point) float64 { return p.P90 }), 0},
		{"half a width above P90", recent(func(_ int, p Point) float64 { return p.P90 + width(p)/2 }), 0.5},
		{"far above", recent(func(_ int, p Point) float64 { return p.P90 + 10*width(p) }), 1},
		{"far above for 6 of 24 hours", recent(func(k int, p Point) float64 {
			if k < 6 {
				return p.P90 + 10*width(p)
			}
			return p.P50
		}), 0.25},
		{"far below", recent(func(int, Point) float64 { return 0 }), 1},
		{"missing hours do not count", recent(func(k int, p Point) float64 {
			if k%2 == 0 {
				return math.NaN()
			}
			return p.P90 + 10*width(p)
		}), 1},
	} {
		if got := AnomalyScore(m, c.recent); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: score %v, want %v", c.name, got, c.want)
		}
	}

	// Below the band, the distance counts in units of P50 − P10.
	_, _, p10 := m.quantilesAt(1)
	p50 := fc[0].P50
	one := Series{Start: hist.End(), Step: time.Hour, Values: []float64{p10 - (p50-p10)/4}}
	if got := AnomalyScore(m, one); math.Abs(got-0.25) > 1e-9 {
		t.Errorf("a quarter width below P10: %v, want 0.25", got)
	}

	// 5-minute points are scored against the hour that holds them.
	fine := mk(hist.End(), 5*time.Minute, 24, func(k int) float64 { return fc[k/12].P90 + 10*width(fc[k/12]) })
	if got := AnomalyScore(m, fine); got != 1 {
		t.Errorf("5-minute points: %v, want 1", got)
	}

	for name, s := range map[string]Series{
		"before the forecast": mk(hist.Start, time.Hour, 24, func(int) float64 { return 100 }),
		"all missing":         mk(hist.End(), time.Hour, 24, func(int) float64 { return math.NaN() }),
		"empty":               {Start: hist.End(), Step: time.Hour},
		"zero step":           {Start: hist.End(), Values: []float64{1}},
	} {
		if got := AnomalyScore(m, s); !math.IsNaN(got) {
			t.Errorf("%s: %v, want NaN (unknown)", name, got)
		}
	}
	if got := AnomalyScore(nil, recent(func(_ int, p Point) float64 { return p.P50 })); !math.IsNaN(got) {
		t.Errorf("nil model: %v", got)
	}

	// A constant series has a zero-width band; tiny rounding noise is
	// not an anomaly, a real change is.
	flat := mustFit(t, mk(monday, time.Hour, n, func(int) float64 { return 50 }), Options{})
	if got := AnomalyScore(flat, mk(hist.End(), time.Hour, 24, func(int) float64 { return 50 + 1e-9 })); got > 1e-6 {
		t.Errorf("flat + rounding noise: %v", got)
	}
	if got := AnomalyScore(flat, mk(hist.End(), time.Hour, 24, func(int) float64 { return 60 })); got != 1 {
		t.Errorf("flat + 20%%: %v, want 1", got)
	}
}
