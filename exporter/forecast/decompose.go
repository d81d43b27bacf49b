package forecast

import (
	"math"
	"slices"
)

// decomposeIterations of the profile/trend loop: the second pass
// estimates each profile with the other removed; more change little.
const decomposeIterations = 2

// movingAverage returns the centred moving average of y over window
// period (a 2×period average when period is even, so the window is
// symmetric and a full cycle of a period-periodic signal averages out).
// Missing points are skipped; a window with less than half its weight
// present is missing, and missing values are then filled by linear
// interpolation. Points closer than half a window to either end take the
// value of the nearest full window: a partial window would hold part of a
// cycle and leak the season into the trend.
func movingAverage(y []float64, period int) []float64 {
	n := len(y)
	out := make([]float64, n)
	if period <= 1 || n == 0 {
		copy(out, y)
		fillLinear(out)
		return out
	}
	half := period / 2
	even := period%2 == 0
	ps := make([]float64, n+1) // prefix sums of finite values
	pc := make([]int, n+1)     // prefix counts
	for i, v := range y {
		ps[i+1], pc[i+1] = ps[i], pc[i]
		if finite(v) {
			ps[i+1] += v
			pc[i+1]++
		}
	}
	lo, hi := half, n-1-half
	if lo > hi {
		// Shorter than one window: a single average of everything.
		m := ps[n] / float64(pc[n])
		if pc[n] == 0 {
			m = math.NaN()
		}
		for i := range out {
			out[i] = m
		}
		return out
	}
	for i := lo; i <= hi; i++ {
		var a, b int // inner window [a, b)
		if even {
			a, b = i-half+1, i+half
		} else {
			a, b = i-half, i+half+1
		}
		sum, w := ps[b]-ps[a], float64(pc[b]-pc[a])
		if even {
			for _, j := range [2]int{i - half, i + half} {
				if finite(y[j]) {
					sum += 0.5 * y[j]
					w += 0.5
				}
			}
		}
		if 2*w < float64(period) {
			out[i] = math.NaN()
		} else {
			out[i] = sum / w
		}
	}
	fillLinear(out[lo : hi+1])
	for i := range lo {
		out[i] = out[lo]
	}
	for i := hi + 1; i < n; i++ {
		out[i] = out[hi]
	}
	return out
}

// fillLinear replaces non-finite values by linear interpolation between
// their finite neighbours, and by the nearest finite value at the ends. A
// slice with no finite value is left as it is.
func fillLinear(x []float64) {
	prev := -1
	for i, v := range x {
		if !finite(v) {
			continue
		}
		if prev < 0 {
			for j := range i {
				x[j] = v
			}
		} else {
			for j := prev + 1; j < i; j++ {
				f := float64(j-prev) / float64(i-prev)
				x[j] = x[prev] + f*(v-x[prev])
			}
		}
		prev = i
	}
	if prev >= 0 {
		for j := prev + 1; j < len(x); j++ {
			x[j] = x[prev]
		}
	}
}

// phaseProfile is the robust seasonal profile of r for a cycle of period
// steps: the median of the finite values at each phase ((p0+i) mod
// period), recentred to mean zero. It also returns the pooled
// within-phase noise scale σ (1.4826·MAD about each phase's median, robust
// to spikes; NaN when no phase has two values) and m, the average number
// of values behind a phase, which shrinkProfile needs.
func phaseProfile(r []float64, period, p0 int) (prof []float64, sigma, m float64) {
	prof = make([]float64, period)
	counts := make([]int, period+1)
	for i, v := range r {
		if finite(v) {
			counts[(p0+i)%period+1]++
		}
	}
	for p := range period {
		counts[p+1] += counts[p]
	}
	flat := make([]float64, counts[period])
	fill := slices.Clone(counts[:period])
	for i, v := range r {
		if finite(v) {
			p := (p0 + i) % period
			flat[fill[p]] = v
			fill[p]++
		}
	}
	var devs []float64
	present, sumM := 0, 0.0
	for p := range period {
		xs := flat[counts[p]:counts[p+1]]
		if len(xs) == 0 {
			prof[p] = math.NaN()
			continue
		}
		slices.Sort(xs)
		med := sortedQuantile(xs, 0.5)
		prof[p] = med
		present++
		sumM += float64(len(xs))
		if len(xs) >= 2 {
			for _, v := range xs {
				devs = append(devs, math.Abs(v-med))
			}
		}
	}
	if present == 0 {
		clear(prof)
		return prof, math.NaN(), 0
	}
	mean := 0.0
	for _, v := range prof {
		if finite(v) {
			mean += v
		}
	}
	mean /= float64(present)
	for p, v := range prof {
		if finite(v) {
			prof[p] = v - mean
		} else {
			prof[p] = 0
		}
	}
	sigma = math.NaN()
	if len(devs) > 0 {
		sigma = 1.4826 * quantile(devs, 0.5)
	}
	return prof, sigma, sumM / float64(present)
}

// shrinkProfile scales prof by max(0, 1 − (σ²/m)/mean(prof²)): James–Stein's
// positive part applied to the whole profile. A median of m values
// carries noise of variance about σ²/m, so a profile whose spread is no
// larger than that noise is mostly noise and is scaled down, towards "no
// season"; a strong season is left almost as it is.
func shrinkProfile(prof []float64, sigma, m float64) {
	if !finite(sigma) || m <= 0 {
		return
	}
	ss := 0.0
	for _, v := range prof {
		ss += v * v
	}
	ss /= float64(len(prof))
	if ss == 0 {
		return
	}
	k := 1 - sigma*sigma/m/ss
	if k < 0 {
		k = 0
	}
	for p := range prof {
		prof[p] *= k
	}
}

// removeSubcycle subtracts from a weekly profile its mean at each daily
// phase, so that it holds only what differs between days of the week and
// does not repeat the daily profile. period must divide len(prof).
func removeSubcycle(prof []float64, period int) {
	cycles := len(prof) / period
	for p := range period {
		m := 0.0
		for c := range cycles {
			m += prof[c*period+p]
		}
		m /= float64(cycles)
		for c := range cycles {
			prof[c*period+p] -= m
		}
	}
}

// decompose splits y into daily and weekly profiles, MSTL-style: a
// centred moving average over a day removes the daily cycle and gives a
// trend, the profiles are phase medians of what the trend and the other
// profile leave, and the loop runs twice so that each profile is
// estimated with the other one removed. It writes the seasonal part of
// every point to seasonal and y − trend − seasonal to remainder, and
// returns the profiles and the trend. w = 0 leaves the weekly profile out.
func decompose(y []float64, d, w, dp0, wp0 int, seasonal, remainder []float64) (daily, weekly, trend []float64) {
	n := len(y)
	x := make([]float64, n)
	clear(seasonal)
	for range decomposeIterations {
		for i := range y {
			x[i] = y[i] - seasonal[i]
		}
		trend = movingAverage(x, trendWindow(d, w))
		for i := range y {
			x[i] = y[i] - trend[i]
			if weekly != nil {
				x[i] -= weekly[(wp0+i)%w]
			}
		}
		var sigma, cnt float64
		daily, sigma, cnt = phaseProfile(x, d, dp0)
		shrinkProfile(daily, sigma, cnt)
		if w > 0 {
			for i := range y {
				x[i] = y[i] - trend[i] - daily[(dp0+i)%d]
			}
			weekly, sigma, cnt = phaseProfile(x, w, wp0)
			removeSubcycle(weekly, d)
			shrinkProfile(weekly, sigma, cnt)
		}
		for i := range y {
			seasonal[i] = daily[(dp0+i)%d]
			if weekly != nil {
				seasonal[i] += weekly[(wp0+i)%w]
			}
		}
	}
	for i := range y {
		remainder[i] = y[i] - trend[i] - seasonal[i]
	}
	return daily, weekly, trend
}

// trendWindow is the moving-average window of the trend: the longest
// cycle, so that the trend holds none of it. A one-day trend would follow
// a weekend's drop and leave the weekly profile only its edges.
func trendWindow(d, w int) int {
	if w > 0 {
		return w
	}
	return d
}
