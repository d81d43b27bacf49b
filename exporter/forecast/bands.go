package forecast

import (
	"math"
	"time"
)

const (
	// growthCap bounds how much wider than at the longest scored horizon
	// the bands get further out (see bands.at).
	growthCap = 2.0
	// scalePseudoCount is the weight, in errors, of the overall mean
	// absolute error in each phase's error scale: phases with few errors
	// lean on the overall scale.
	scalePseudoCount = 20.0
)

// bands turn a point forecast into quantiles: the forecast k steps ahead
// at daily phase p is point + scale[p]·q(k), where q(k) are empirical
// quantiles of the filter's out-of-sample k-step errors, each divided by
// the error scale of its target phase. Scaling by phase lets a quiet night
// have a narrow band and a busy afternoon a wide one.
type bands struct {
	scale         []float64 // per daily phase; nil means 1
	hs            []int     // scored horizons, increasing
	q10, q50, q90 []float64 // quantiles of scaled errors at hs
}

func (b *bands) scaleAt(phase int) float64 {
	if b.scale == nil {
		return 1
	}
	return b.scale[phase%len(b.scale)]
}

// at returns the scaled-error quantiles k steps ahead, interpolated
// linearly in log k between scored horizons. Beyond the last one the
// spread around the median grows like √(k/H), the rate of a random-walk
// level, but to at most growthCap times: usage is bounded, and a week of
// scored horizons already holds most of what a level wanders.
func (b *bands) at(k int) (q10, q50, q90 float64) {
	hs := b.hs
	if len(hs) == 0 {
		return 0, 0, 0
	}
	if k <= hs[0] {
		return b.q10[0], b.q50[0], b.q90[0]
	}
	last := len(hs) - 1
	if k >= hs[last] {
		g := math.Min(growthCap, math.Sqrt(float64(k)/float64(hs[last])))
		q50 = b.q50[last]
		return q50 - g*(q50-b.q10[last]), q50, q50 + g*(b.q90[last]-q50)
	}
	i := 1
	for hs[i] < k {
		i++
	}
	f := math.Log(float64(k)/float64(hs[i-1])) / math.Log(float64(hs[i])/float64(hs[i-1]))
	lerp := func(q []float64) float64 { return q[i-1] + f*(q[i]-q[i-1]) }
	return lerp(b.q10), lerp(b.q50), lerp(b.q90)
}

// horizonGrid is 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, … up to hmax
// (included): dense where bands change fast, sparse where they do not.
func horizonGrid(hmax int) []int {
	var hs []int
	for h := 1; h < hmax; {
		hs = append(hs, h)
		switch {
		case h < 4:
			h++
		case h&(h-1) == 0:
			h += h / 2
		default:
			h = h * 4 / 3
		}
	}
	if hmax >= 1 {
		hs = append(hs, hmax)
	}
	return hs
}

// fitBands runs each setting of the pool over the whole history from the
// warm-up state, collects the pooled (averaged) forecast's out-of-sample
// errors at the horizons of horizonGrid up to a week (or as far as the
// history allows), keeps the quantiles of the errors divided by their
// target phase's scale, and returns each setting's final state.
func (m *Model) fitBands(r *hwRun, ps []hwParams) []hwState {
	n := len(r.y)
	d := r.d
	sts := make([]hwState, len(ps))
	for i := range sts {
		sts[i].copyFrom(&r.init)
	}
	// At least a day of origins (or a quarter of the series) must reach
	// the longest horizon, so that its quantiles rest on more than a
	// handful of errors.
	hmax := min(int(week/m.step), n-1-r.warm-max(d, n/4))
	if hmax < 1 {
		for i, p := range ps {
			r.setHorizons(nil, p.phi)
			r.run(p, &sts[i], func(int, int, float64) {})
		}
		m.fallbackBands(r.y)
		return sts
	}
	hs := horizonGrid(hmax)
	// The pool's forecast from each scored origin is the mean of its
	// members'; slot k·len(hs)+j holds the one from the k-th origin at
	// horizon hs[j].
	origins := (n - 1 - r.warm + r.stride - 1) / r.stride
	pooled := make([]float64, origins*len(hs))
	for i, p := range ps {
		r.setHorizons(hs, p.phi)
		r.run(p, &sts[i], func(t, j int, f float64) {
			pooled[(t-r.warm)/r.stride*len(hs)+j] += f / float64(len(ps))
		})
	}
	type obs struct {
		e     float64
		phase int
	}
	errs := make([][]obs, len(hs))
	absSum, absCnt := make([]float64, d), make([]int, d)
	total, count := 0.0, 0
	for k := range origins {
		t := r.warm + k*r.stride
		for j, h := range hs {
			if t+h >= n {
				break
			}
			v := r.y[t+h]
			if !finite(v) {
				continue
			}
			e := v - pooled[k*len(hs)+j]
			ph := (r.dp0 + t + h) % d
			absSum[ph] += math.Abs(e)
			absCnt[ph]++
			total += math.Abs(e)
			count++
			errs[j] = append(errs[j], obs{e, ph})
		}
	}
	if count == 0 {
		m.fallbackBands(r.y)
		return sts
	}
	g := total / float64(count)
	var b bands
	if d > 1 && g > 0 {
		// Mean absolute error per target phase, pooled over ±1 hour and
		// pulled towards the overall mean where a phase has few errors.
		hw := max(1, int(time.Hour/m.step))
		b.scale = make([]float64, d)
		for ph := range d {
			s, c := 0.0, 0
			for j := -hw; j <= hw; j++ {
				q := ((ph+j)%d + d) % d
				s += absSum[q]
				c += absCnt[q]
			}
			b.scale[ph] = (s + scalePseudoCount*g) / (float64(c) + scalePseudoCount)
		}
	}
	var buf []float64
	for j, h := range hs {
		if len(errs[j]) == 0 {
			continue
		}
		buf = buf[:0]
		for _, o := range errs[j] {
			buf = append(buf, o.e/b.scaleAt(o.phase))
		}
		b.hs = append(b.hs, h)
		b.q50 = append(b.q50, quantile(buf, 0.5))
		b.q10 = append(b.q10, sortedQuantile(buf, 0.1))
		b.q90 = append(b.q90, sortedQuantile(buf, 0.9))
	}
	// The median of the errors corrects the point forecast's bias; past
	// a day it stays at its one-day value, because a week-ahead median
	// rests on few origins, and one level shift inside the history would
	// otherwise tilt every long forecast. Spreads keep their own horizon.
	for j := range b.hs {
		if j > 0 && b.hs[j] > int(day/m.step) {
			q := b.q50[j-1]
			b.q10[j] += q - b.q50[j]
			b.q90[j] += q - b.q50[j]
			b.q50[j] = q
		}
	}
	// Bands never narrow with the horizon: what is uncertain tomorrow is
	// no more certain the day after.
	for j := 1; j < len(b.hs); j++ {
		b.q90[j] = math.Max(b.q90[j], b.q90[j-1]-b.q50[j-1]+b.q50[j])
		b.q10[j] = math.Min(b.q10[j], b.q10[j-1]-b.q50[j-1]+b.q50[j])
	}
	m.bands = b
	m.residuals = count
	return sts
}

// fallbackBands serve histories too short to score: a Gaussian band of
// the remainder's robust scale, or of the values' own spread.
func (m *Model) fallbackBands(y []float64) {
	s := m.remainderScale
	if s == 0 {
		s = robustScale(y)
	}
	const z90 = 1.2815515655446004
	m.bands = bands{hs: []int{1}, q10: []float64{-z90 * s}, q50: []float64{0}, q90: []float64{z90 * s}}
}
