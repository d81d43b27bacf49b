package forecast

import (
	"math"
	"testing"
	"time"
)

// benchSeries is 28 days of a daily and weekly cycle, a slow trend and
// noise: the exporter's case (hourly averages over four weeks).
func benchSeries(step time.Duration) Series {
	perDay := int(day / step)
	return mk(monday, step, 28*perDay, func(i int) float64 {
		x := float64(i) / float64(perDay)
		return 20 + 8*math.Sin(2*math.Pi*x) + 3*math.Sin(2*math.Pi*x/7) + 0.2*x + 4*noise(i)
	})
}

// BenchmarkFit fits a 28-day hourly series.
func BenchmarkFit(b *testing.B) {
	s := benchSeries(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Fit(s, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFit5m fits a 28-day series of 5-minute points.
func BenchmarkFit5m(b *testing.B) {
	s := benchSeries(5 * time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Fit(s, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSummaries computes the 1, 7 and 30-day summaries of a fitted
// hourly model, what the exporter does after each fit.
func BenchmarkSummaries(b *testing.B) {
	m, err := Fit(benchSeries(time.Hour), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		m.Summaries()
	}
}
