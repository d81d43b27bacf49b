package recommend

import (
	"math"
	"testing"
)

func TestPodLevel(t *testing.T) {
	for _, c := range []struct {
		name               string
		own                []float64
		floor, limit, unit float64
		want               float64
		ok                 bool
	}{
		{"sum of the figures, rounded up", []float64{0.2504, 0.1}, 0, 0, 0.001, 0.351, true},
		{"the containers' requests are a floor", []float64{0.1, 0.1}, 0.5, 0, 0.001, 0.5, true},
		{"the pod's limit caps", []float64{1.5, 1}, 0, 2, 0.001, 2, true},
		{"MiB", []float64{100 << 20, 50<<20 + 1}, 0, 0, 1 << 20, 151 << 20, true},
		{"a container without a figure", []float64{0.2, 0}, 0, 0, 0.001, 0, false},
		{"no containers", nil, 0.5, 0, 0.001, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := PodLevel(c.own, c.floor, c.limit, c.unit)
			if ok != c.ok || (ok && math.Abs(got-c.want) > 1e-9*c.want) {
				t.Errorf("PodLevel = %v, %v; want %v, %v", got, ok, c.want, c.ok)
			}
		})
	}
}

func TestCreatedRequest(t *testing.T) {
	for _, c := range []struct {
		name                            string
		request, limit, aggregate, want float64
	}{
		{"its own request", 0.5, 2, 0.3, 0.5},
		{"a limit alone, containers requesting", 0, 2, 0.3, 0.3},
		{"a limit alone", 0, 2, 0, 2},
		{"neither", 0, 0, 0.3, 0.3},
	} {
		if got := CreatedRequest(c.request, c.limit, c.aggregate); got != c.want {
			t.Errorf("%s: CreatedRequest = %v, want %v", c.name, got, c.want)
		}
	}
}
