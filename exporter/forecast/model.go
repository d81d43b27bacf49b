// Package forecast predicts a workload's usage (CPU, memory, or cost per
// hour) days ahead, as a median and a 90th percentile, from an evenly
// spaced history of a few weeks, and scores how far recent usage strayed
// from its band (AnomalyScore).
//
// The model is a robust double-seasonal (daily and weekly) Holt–Winters
// filter with a damped trend: it starts from a median decomposition of the
// first week, clips spikes, jumps on level shifts, and picks its smoothing
// half-lives by the errors of its own day-ahead forecasts. Its bands are
// empirical quantiles of those out-of-sample errors per horizon, so they
// widen with the horizon as far as the history shows. Everything is
// deterministic and pure Go. The maths, the parameters and the accuracy
// measured against seasonal-naive and predict_linear-style baselines
// (Evaluate) are in docs/forecasting.md, which must stay in step with
// this package.
package forecast

import (
	"fmt"
	"math"
	"time"
)

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// Options configure Fit. The zero value is what the exporter uses.
type Options struct {
	// NoDaily and NoWeekly leave a seasonal profile out. By default the
	// daily one is fitted when the history spans two days, and the weekly
	// one when it spans two weeks; both need Step to divide a day.
	NoDaily, NoWeekly bool
	// Max caps every forecast (100 for CPU percent); 0 means no cap.
	// Forecasts are never below 0: usage, memory and cost cannot be.
	Max float64
	// MaxHistory keeps only the most recent part of the series; 0 means
	// 35 days. Older behaviour says little about next week and costs time.
	MaxHistory time.Duration
}

// Model is a fitted forecaster. Its forecasts start at the end of the
// series it was fitted on. A Model is immutable and safe for concurrent use.
type Model struct {
	step  time.Duration
	end   time.Time // time of the first forecast point
	max   float64
	n     int // points fitted
	valid int // finite points among them

	// State at the end of the series. Profiles are indexed by phase; the
	// weekly one is nil when not fitted, the daily one has length 1 (and
	// holds 0) when not fitted. Phase0 is the phase of the first forecast
	// point.
	members          []member
	dPhase0, wPhase0 int

	bands          bands
	remainderScale float64
	residuals      int
}

// Params describes what Fit chose, for logs and the JSON API.
type Params struct {
	Step   time.Duration `json:"step"`
	Points int           `json:"points"`
	Valid  int           `json:"valid"`
	Daily  bool          `json:"daily"`
	Weekly bool          `json:"weekly"`
	// Half-lives of the level (0: frozen after initialisation), of the
	// daily and weekly profiles (in days and weeks; 0: frozen), and of the
	// slope (0: no trend).
	LevelHalfLife  time.Duration `json:"levelHalfLife"`
	DailyHalfLife  float64       `json:"dailyHalfLifeDays"`
	WeeklyHalfLife float64       `json:"weeklyHalfLifeWeeks"`
	SlopeHalfLife  time.Duration `json:"slopeHalfLife"`
	DampingPerDay  float64       `json:"dampingPerDay"`
	Level          float64       `json:"level"`
	SlopePerDay    float64       `json:"slopePerDay"`
	Residuals      int           `json:"residuals"` // out-of-sample errors behind the bands
}

// member is one smoothing setting of the pool and its final state.
type member struct {
	p hwParams
	hwState
}

// Params returns the parameters chosen by Fit: those of the best setting
// of the pool.
func (m *Model) Params() Params {
	b := m.members[0]
	p := b.p
	return Params{
		Step: m.step, Points: m.n, Valid: m.valid,
		Daily: len(b.daily) > 1, Weekly: b.weekly != nil,
		LevelHalfLife: p.levelHL, DailyHalfLife: p.dailyHL, WeeklyHalfLife: p.weeklyHL,
		SlopeHalfLife: p.slopeHL, DampingPerDay: p.dampDay,
		Level: b.level, SlopePerDay: b.slope * float64(day) / float64(m.step), Residuals: m.residuals,
	}
}

// Fit learns a model from s. It fails only when s has no finite point or
// a non-positive step; short or gappy series get a simpler model (no
// weekly or no daily profile, Gaussian bands) rather than an error.
func Fit(s Series, opts Options) (*Model, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	hist := opts.MaxHistory
	if hist <= 0 {
		hist = 35 * day
	}
	if keep := int(hist / s.Step); keep > 0 && len(s.Values) > keep {
		s = s.Slice(len(s.Values)-keep, len(s.Values))
	}
	y := s.Values
	n := len(y)
	valid := 0
	for _, v := range y {
		if finite(v) {
			valid++
		}
	}
	if valid == 0 {
		return nil, fmt.Errorf("%w: series %q has no finite value", ErrNoData, s.Name)
	}
	m := &Model{step: s.Step, end: s.End(), max: opts.Max, n: n, valid: valid}

	d, w := 0, 0
	if day%s.Step == 0 {
		if !opts.NoDaily && n >= 2*int(day/s.Step) {
			d = int(day / s.Step)
		}
		if !opts.NoWeekly && d > 0 && n >= 2*int(week/s.Step) {
			w = int(week / s.Step)
		}
	}
	r := &hwRun{y: y, d: max(d, 1), w: w}
	if d > 0 {
		r.dp0 = phaseOf(s.Start, day, s.Step)
	}
	if w > 0 {
		r.wp0 = phaseOf(s.Start, week, s.Step)
	}

	// The clipping threshold comes from a robust decomposition of the
	// whole history: its remainder is the noise that spikes stand out of.
	// A daily one, whose one-day trend follows slow changes of level, so
	// that they do not count as noise.
	remainder := make([]float64, n)
	if d > 0 {
		decompose(y, d, 0, r.dp0, 0, make([]float64, n), remainder)
	} else {
		trend := movingAverage(y, 1)
		for i := range y {
			remainder[i] = y[i] - trend[i]
		}
	}
	m.remainderScale = robustScale(remainder)
	r.clip = clipSigmas * m.remainderScale
	r.shift = max(3, int(shiftDuration/s.Step))
	r.runErrs = make([]float64, r.shift)

	// The filter starts from a decomposition of the first two weeks (or
	// of the first half of a shorter history, in whole days); the
	// forecasts it makes after that warm-up are scored.
	warm := max(1, n/2)
	if d > 0 {
		warm = max(d, min(2*int(week/s.Step), n/2)/d*d)
	}
	r.init = initialState(y[:warm], d, w, r.dp0, r.wp0)
	if !finite(r.init.level) {
		r.init.level = median(y, nil)
	}
	r.warm = warm - 1
	r.stride = max(1, (n-warm)/maxOrigins)
	r.wts = make([]float64, n)
	for t := range r.wts {
		r.wts[t] = math.Exp2(-float64(n-1-t) * float64(s.Step) / float64(selectionHalfLife))
	}
	H := d
	if H == 0 {
		H = max(1, min(int(day/s.Step), n/4))
	}
	var hs []int
	for j := 1; j <= 8; j++ {
		hs = append(hs, max(1, H*j/8))
	}
	ps := r.search(s.Step, hs)
	sts := m.fitBands(r, ps)
	for i, p := range ps {
		mb := member{p: p, hwState: sts[i]}
		if w == 0 {
			mb.weekly = nil
		}
		m.members = append(m.members, mb)
	}
	m.dPhase0 = (r.dp0 + n) % r.d
	if w > 0 {
		m.wPhase0 = (r.wp0 + n) % w
	}
	return m, nil
}

// robustScale is 1.4826·MAD of the finite values: the standard deviation
// for Gaussian data, unmoved by a few spikes.
func robustScale(x []float64) float64 {
	buf := make([]float64, 0, len(x))
	for _, v := range x {
		if finite(v) {
			buf = append(buf, v)
		}
	}
	if len(buf) == 0 {
		return 0
	}
	med := quantile(buf, 0.5)
	for i, v := range buf {
		buf[i] = math.Abs(v - med)
	}
	return 1.4826 * quantile(buf, 0.5)
}

// pointAt is the pool's point forecast k steps after the end of the
// series (k = 1 is the first forecast point): the mean of its members'.
func (m *Model) pointAt(k int) float64 {
	sum := 0.0
	for _, mb := range m.members {
		f := mb.level + mb.slope*dampedSum(mb.p.phi, k) + mb.daily[(m.dPhase0+k-1)%len(mb.daily)]
		if mb.weekly != nil {
			f += mb.weekly[(m.wPhase0+k-1)%len(mb.weekly)]
		}
		sum += f
	}
	return sum / float64(len(m.members))
}

// Forecast returns the next h points: the first is at the end of the
// fitted series (its last point's time plus one step).
func (m *Model) Forecast(h int) []Point {
	if h <= 0 {
		return nil
	}
	out := make([]Point, h)
	for k := 1; k <= h; k++ {
		p50, p90, _ := m.quantilesAt(k)
		out[k-1] = Point{T: m.end.Add(time.Duration(k-1) * m.step), P50: p50, P90: p90}
	}
	return out
}

// quantilesAt returns the 50th, 90th and 10th percentiles k steps ahead.
func (m *Model) quantilesAt(k int) (p50, p90, p10 float64) {
	point := m.pointAt(k)
	s := m.bands.scaleAt(m.dPhase0 + k - 1)
	q10, q50, q90 := m.bands.at(k)
	hi := math.Inf(1)
	if m.max > 0 {
		hi = m.max
	}
	p50 = clamp(point+s*q50, 0, hi)
	p90 = clamp(point+s*q90, p50, hi)
	p10 = clamp(point+s*q10, 0, p50)
	return p50, p90, p10
}

// Summary is a forecast over a horizon: the mean of the hourly (per step)
// 10th percentiles, medians and 90th percentiles, and the largest 90th
// percentile.
type Summary struct {
	Horizon time.Duration `json:"horizon"`
	P10     float64       `json:"p10"`
	P50     float64       `json:"p50"`
	P90     float64       `json:"p90"`
	PeakP90 float64       `json:"peakP90"`
}

// Horizons are the horizons the exporter publishes.
var Horizons = []time.Duration{day, 7 * day, 30 * day}

// Summaries returns the Horizon summary of each of Horizons.
func (m *Model) Summaries() []Summary {
	out := make([]Summary, len(Horizons))
	for i, d := range Horizons {
		out[i] = m.Horizon(d)
	}
	return out
}

// Horizon summarises the forecast over the next d (rounded up to whole
// steps, at least one). P90 is the mean of the per-step 90th percentiles:
// a typical high hour, the right input for capacity. It is not the 90th
// percentile of the mean over d (for a cost total), which is narrower,
// because hours above their P90 and hours below partly cancel out.
func (m *Model) Horizon(d time.Duration) Summary {
	k := int((d + m.step - 1) / m.step)
	if k < 1 {
		k = 1
	}
	sum := Summary{Horizon: d}
	for i := 1; i <= k; i++ {
		p50, p90, p10 := m.quantilesAt(i)
		sum.P10 += p10
		sum.P50 += p50
		sum.P90 += p90
		sum.PeakP90 = math.Max(sum.PeakP90, p90)
	}
	sum.P10 /= float64(k)
	sum.P50 /= float64(k)
	sum.P90 /= float64(k)
	return sum
}
