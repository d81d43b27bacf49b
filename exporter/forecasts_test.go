package exporter

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/upid-dev/upid/exporter/history"
)

func TestForecastBatches(t *testing.T) {
	ws := func(nss ...string) []WorkloadResult {
		var out []WorkloadResult
		for _, ns := range nss {
			out = append(out, WorkloadResult{Namespace: ns})
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		ws    []WorkloadResult
		limit int
		want  [][]string
	}{
		{"none", nil, 10, nil},
		{"all fit in one", ws("b", "a", "a"), 3, [][]string{{"a", "b"}}},
		{"split at the limit", ws("a", "a", "b", "c", "c"), 3, [][]string{{"a", "b"}, {"c"}}},
		{"a namespace over the limit is its own batch", ws("a", "b", "b", "b", "c"), 2, [][]string{{"a"}, {"b"}, {"c"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := forecastBatches(tc.ws, tc.limit); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("forecastBatches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFitWorkload(t *testing.T) {
	start := time.Date(2026, 11, 1, 1, 0, 0, 0, time.UTC)
	// daily is a day-shaped load: 0.2 cores at night, 1 at 14:00.
	daily := func(i int) float64 { return 0.6 - 0.4*math.Cos(2*math.Pi*float64((i+1-14+24)%24)/24) }
	series := func(days int, f func(i int) float64) history.UsageSeries {
		v := make([]float64, days*24)
		for i := range v {
			v[i] = f(i)
		}
		return history.UsageSeries{Start: start, Values: v}
	}
	nan := func(days, known int) history.UsageSeries {
		return series(days, func(i int) float64 {
			if i < days*24-known {
				return math.NaN()
			}
			return 0.5
		})
	}
	for _, tc := range []struct {
		name                 string
		in                   history.UsageSeries
		want                 bool
		p50Lo, p50Hi         float64 // 7-day mean of the median
		anomalyLo, anomalyHi float64
		anomalyKnown         bool
	}{
		{"steady daily shape", series(7, daily), true, 0.55, 0.65, 0, 0.2, true},
		{"doubled in the last day", series(7, func(i int) float64 {
			if i >= 6*24 {
				return 3 * daily(i)
			}
			return daily(i)
		}), true, 0.5, 3, 0.6, 1, true},
		{"under two days of data: unknown", nan(14, 47), false, 0, 0, 0, 0, false},
		{"two days: a forecast, too short to score a day", nan(14, 48), true, 0.45, 0.55, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sums, anomaly, ok := fitUsage(tc.in)
			if ok != tc.want {
				t.Fatalf("fitted = %v, want %v", ok, tc.want)
			}
			if !ok {
				return
			}
			var week float64
			for _, s := range sums {
				if s.Horizon == 7*24*time.Hour {
					week = s.P50
				}
				if s.P10 > s.P50 || s.P50 > s.P90 {
					t.Errorf("horizon %s: p10/p50/p90 = %g/%g/%g, not ordered", s.Horizon, s.P10, s.P50, s.P90)
				}
			}
			if week < tc.p50Lo || week > tc.p50Hi {
				t.Errorf("7-day p50 = %g, want in [%g, %g]", week, tc.p50Lo, tc.p50Hi)
			}
			if known := !math.IsNaN(anomaly); known != tc.anomalyKnown {
				t.Fatalf("anomaly = %g, want known %v", anomaly, tc.anomalyKnown)
			}
			if tc.anomalyKnown && (anomaly < tc.anomalyLo || anomaly > tc.anomalyHi) {
				t.Errorf("anomaly = %g, want in [%g, %g]", anomaly, tc.anomalyLo, tc.anomalyHi)
			}
		})
	}
}
