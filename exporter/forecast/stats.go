package forecast

import (
	"math"
	"slices"
)

// quantile returns the p-quantile of xs (type 7, linear interpolation
// between order statistics, as R's default and numpy's). It reorders xs.
// xs must hold no NaN.
func quantile(xs []float64, p float64) float64 {
	n := len(xs)
	if n == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	return sortedQuantile(xs, p)
}

func sortedQuantile(xs []float64, p float64) float64 {
	n := len(xs)
	if n == 0 {
		return math.NaN()
	}
	h := p * float64(n-1)
	lo := int(math.Floor(h))
	if lo >= n-1 {
		return xs[n-1]
	}
	if lo < 0 {
		return xs[0]
	}
	return xs[lo] + (h-float64(lo))*(xs[lo+1]-xs[lo])
}

// median of the finite values of xs (reorders a copy into buf).
func median(xs []float64, buf []float64) float64 {
	buf = buf[:0]
	for _, v := range xs {
		if finite(v) {
			buf = append(buf, v)
		}
	}
	return quantile(buf, 0.5)
}

// pinball is the quantile (pinball) loss of forecast f for outcome y at
// level p: p·(y−f) when y ≥ f, (1−p)·(f−y) otherwise.
func pinball(y, f, p float64) float64 {
	if y >= f {
		return p * (y - f)
	}
	return (1 - p) * (f - y)
}

func clamp(v, lo, hi float64) float64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}
