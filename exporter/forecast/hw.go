package forecast

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Tuning constants; docs/forecasting.md explains each choice.
const (
	// clipSigmas is how far, in robust standard deviations of the
	// decomposition's remainder, an error may move the state. Beyond it the
	// error is clipped, so that a lone spike drags neither the level nor
	// the profiles. 5 rather than the textbook 2–3 because usage noise is
	// heavy-tailed: at 3 too many ordinary points are "outliers" and the
	// state adapts too slowly.
	clipSigmas = 5.0
	// shiftDuration of outliers in a row, all on one side (and at least
	// three points), is a level shift rather than a spike: the level jumps
	// by their median instead of crawling there at the smoothing rate.
	shiftDuration = 3 * time.Hour
	// poolSize settings with the lowest search errors forecast together,
	// averaged: pooling the few best is steadier than betting on the one
	// that happened to score best on a short history.
	poolSize = 3
	// maxOrigins bounds the scored forecast origins: on long 5-minute
	// histories every 10th or so is scored, which costs little accuracy.
	maxOrigins = 720
	// selectionHalfLife is the half-life of the weights of the scored
	// origins in the parameter search: recent behaviour decides, so a
	// workload that changed last week is fitted to what it does now.
	selectionHalfLife = 7 * day
	// searchRounds bounds the rounds of coordinate descent.
	searchRounds = 2
)

// The parameter grids, in time units so that hourly and 5-minute series
// mean the same thing. Seasonal profiles are updated once per cycle at
// each phase, so their half-lives count cycles (days, weeks); 0 means
// never updated after the warm-up.
var (
	levelHalfLives  = []time.Duration{2 * time.Hour, 6 * time.Hour, day, 3 * day, 10 * day, 0}
	dailyHalfLives  = []float64{0, 8, 4, 2, 1, 0.5} // days
	weeklyHalfLives = []float64{0, 2, 1}            // weeks
	trendGrid       = []struct {
		halfLife time.Duration // of the slope; 0: no trend
		damping  float64       // of the slope, per day
	}{{0, 0}, {day, 0.5}, {7 * day, 0.9}}
)

// hwParams are the per-step weights of the double-seasonal, damped-trend
// Holt–Winters filter, and the grid entries they came from.
type hwParams struct {
	alpha, beta, phi float64 // level, slope, damping
	gd, gw           float64 // daily and weekly profiles
	levelHL, slopeHL time.Duration
	dailyHL          float64 // days
	weeklyHL         float64 // weeks
	dampDay          float64
}

// hwState is the filter's state; profiles are indexed by phase.
type hwState struct {
	level, slope  float64
	daily, weekly []float64
}

func (s *hwState) copyFrom(o *hwState) {
	s.level, s.slope = o.level, o.slope
	s.daily = append(s.daily[:0], o.daily...)
	s.weekly = append(s.weekly[:0], o.weekly...)
}

// hwRun is one series prepared for filtering.
type hwRun struct {
	y        []float64
	d, w     int // periods in steps; d = 1 means no daily profile, w = 0 no weekly one
	dp0, wp0 int // phases of y[0]
	init     hwState
	clip     float64 // error magnitude beyond which a point is an outlier; 0: none
	shift    int     // outliers in a row that make a level shift
	warm     int     // first scored origin
	stride   int     // steps between scored origins
	hs       []int   // scored horizons
	phis     []float64
	wts      []float64 // weight of each origin in the parameter search
	runErrs  []float64 // scratch
}

// run filters y with p from st, leaving the final state in st. At each
// scored origin t it makes the forecast of y[t+hs[j]] from the state at
// t, which has seen nothing after t: these are honest out-of-sample
// errors, not residuals of a fit that saw the answer. It passes each to
// visit(t, j, forecast) or, when visit is nil, returns the sum of their
// absolute errors weighted by wts[t], and the sum of the weights (the
// parameter search's criterion, without a call per forecast).
func (r *hwRun) run(p hwParams, st *hwState, visit func(t, j int, forecast float64)) (errSum, wSum float64) {
	y := r.y
	d, w := r.d, r.w
	l, b := st.level, st.slope
	sd, sw := st.daily, st.weekly
	pd, pw := r.dp0, r.wp0
	run, runSign := 0, 0.0
	next := r.warm
	for t, v := range y {
		if finite(v) {
			seas := sd[pd]
			if w > 0 {
				seas += sw[pw]
			}
			e := v - (l + p.phi*b + seas)
			jump := 0.0
			if r.clip > 0 && math.Abs(e) > r.clip {
				sign := math.Copysign(1, e)
				if sign != runSign {
					run, runSign = 0, sign
				}
				r.runErrs[run] = e
				run++
				if run < r.shift {
					e = sign * r.clip
				} else {
					jump, e = medianInPlace(r.runErrs[:run]), 0
					run, runSign = 0, 0
				}
			} else {
				run, runSign = 0, 0
			}
			l += p.phi*b + p.alpha*e + jump
			b = p.phi*b + p.alpha*p.beta*e
			sd[pd] += p.gd * e
			if w > 0 {
				sw[pw] += p.gw * e
			}
		} else {
			l += p.phi * b
			b *= p.phi
		}
		if pd++; pd == d {
			pd = 0
		}
		if pw++; pw == w {
			pw = 0
		}
		if t == next && t < len(y)-1 {
			next += r.stride
			for j, h := range r.hs {
				if t+h >= len(y) {
					break
				}
				// pd and pw are the phases of t+1 now.
				f := l + r.phis[j]*b + sd[(pd+h-1)%d]
				if w > 0 {
					f += sw[(pw+h-1)%w]
				}
				if visit != nil {
					visit(t, j, f)
				} else if v := y[t+h]; finite(v) {
					errSum += r.wts[t] * math.Abs(v-f)
					wSum += r.wts[t]
				}
			}
		}
	}
	st.level, st.slope = l, b
	return errSum, wSum
}

// halfLifeWeight is the smoothing weight under which an observation's
// influence halves after the given number of updates; 0 means none.
func halfLifeWeight(updates float64) float64 {
	if updates <= 0 {
		return 0
	}
	return 1 - math.Exp2(-1/updates)
}

// dampedSum is φ + φ² + … + φ^k, the number of steps of slope a damped
// trend adds over k steps. It is bounded by φ/(1−φ), which is what keeps
// 30-day forecasts of a noisy slope from running away.
func dampedSum(phi float64, k int) float64 {
	if phi == 1 {
		return float64(k)
	}
	return phi * (1 - math.Pow(phi, float64(k))) / (1 - phi)
}

func (r *hwRun) setHorizons(hs []int, phi float64) {
	r.hs = hs
	r.phis = r.phis[:0]
	for _, h := range hs {
		r.phis = append(r.phis, dampedSum(phi, h))
	}
}

// search picks the parameters by coordinate descent over the grids,
// minimising the recency-weighted mean absolute error of forecasts 1/8
// day to 1 day ahead (eight horizons) from every scored origin. Scoring
// multi-step rather than one-step errors matters: one-step errors reward
// a level that chases every wiggle, which forecasts the next day badly.
func (r *hwRun) search(step time.Duration, hs []int) []hwParams {
	idx := [4]int{2, 3, 0, 0} // level 1d, daily profile 2d, no weekly, no trend
	sizes := [4]int{len(levelHalfLives), len(dailyHalfLives), len(weeklyHalfLives), len(trendGrid)}
	if r.d == 1 {
		sizes[1], idx[1] = 1, 0
	}
	if r.w == 0 {
		sizes[2] = 1
	}
	var st hwState
	tried := map[[4]int]float64{}
	cost := func(ix [4]int) float64 {
		if c, ok := tried[ix]; ok {
			return c
		}
		p := r.params(ix, step)
		r.setHorizons(hs, p.phi)
		st.copyFrom(&r.init)
		sum, wsum := r.run(p, &st, nil)
		c := math.Inf(1)
		if wsum > 0 {
			c = sum / wsum
		}
		tried[ix] = c
		return c
	}
	best := cost(idx)
	for range searchRounds {
		improved := false
		for c := range idx {
			for k := range sizes[c] {
				try := idx
				try[c] = k
				// Strictly better only: ties keep the earlier choice, so
				// the search is deterministic and prefers the start.
				if e := cost(try); e < best {
					best, idx, improved = e, try, true
				}
			}
		}
		if !improved {
			break
		}
	}
	// The poolSize best settings tried, best first; ties in grid order.
	type entry struct {
		ix   [4]int
		cost float64
	}
	var all []entry
	for ix, c := range tried {
		all = append(all, entry{ix, c})
	}
	slices.SortFunc(all, func(a, b entry) int {
		if a.cost != b.cost {
			return cmp.Compare(a.cost, b.cost)
		}
		return slices.Compare(a.ix[:], b.ix[:])
	})
	var out []hwParams
	for _, e := range all[:min(poolSize, len(all))] {
		out = append(out, r.params(e.ix, step))
	}
	return out
}

func (r *hwRun) params(ix [4]int, step time.Duration) hwParams {
	p := hwParams{phi: 1, levelHL: levelHalfLives[ix[0]]}
	if p.levelHL > 0 {
		p.alpha = halfLifeWeight(float64(p.levelHL) / float64(step))
	}
	if r.d > 1 {
		p.dailyHL = dailyHalfLives[ix[1]]
		p.gd = halfLifeWeight(p.dailyHL)
	}
	if r.w > 0 {
		p.weeklyHL = weeklyHalfLives[ix[2]]
		p.gw = halfLifeWeight(p.weeklyHL)
	}
	if tr := trendGrid[ix[3]]; tr.halfLife > 0 {
		p.beta = halfLifeWeight(float64(tr.halfLife) / float64(step))
		p.slopeHL, p.dampDay = tr.halfLife, tr.damping
		p.phi = math.Pow(tr.damping, float64(step)/float64(day))
	}
	return p
}

// initialState decomposes the warm-up: the level is the trend where the
// data starts, the profiles are its phase medians. The weekly profile
// needs two weeks of warm-up (one week cannot tell a weekly pattern from
// noise); with less it starts flat, and the filter can only learn it
// slowly.
func initialState(y []float64, d, w, dp0, wp0 int) hwState {
	st := hwState{daily: make([]float64, max(d, 1))}
	if w > 0 {
		st.weekly = make([]float64, w)
	}
	if d > 1 && len(y) >= d {
		seasonal, remainder := make([]float64, len(y)), make([]float64, len(y))
		ww := 0
		if w > 0 && len(y) >= 2*w {
			ww = w
		}
		daily, weekly, trend := decompose(y, d, ww, dp0, wp0, seasonal, remainder)
		copy(st.daily, daily)
		copy(st.weekly, weekly)
		st.level = trend[0]
		return st
	}
	k := max(1, len(y)/4)
	st.level = median(y[:k], nil)
	if !finite(st.level) {
		st.level = median(y, nil)
	}
	return st
}

// medianInPlace is the median of xs, reordering it.
func medianInPlace(xs []float64) float64 {
	slices.Sort(xs)
	return sortedQuantile(xs, 0.5)
}
