package forecast

import (
	"fmt"
	"math"
	"time"
)

// Forecaster is a forecasting method: UPID's model and the baselines it is
// measured against share it, so Evaluate scores them the same way.
type Forecaster interface {
	Name() string
	Fit(s Series) (Fitted, error)
}

// Fitted is a method fitted on one series; Forecast(h) returns the h
// points after the series' end.
type Fitted interface {
	Forecast(h int) []Point
}

// UPID is the Forecaster of Fit with opts.
func UPID(opts Options) Forecaster { return upid{opts} }

type upid struct{ opts Options }

func (u upid) Name() string { return "upid" }

func (u upid) Fit(s Series) (Fitted, error) {
	m, err := Fit(s, u.opts)
	if err != nil {
		return nil, err // not a typed nil *Model inside the interface
	}
	return m, nil
}

// SeasonalNaive forecasts the value one period earlier (beyond a period,
// the last observed cycle repeats; a missing value falls back on earlier
// cycles). Its P50 and P90 add the median and 90th percentile of its own
// errors in the history at the same horizon, the usual way to give a
// naive method prediction intervals; PointOnly drops them.
func SeasonalNaive(period time.Duration) Forecaster {
	return baseline{name: "seasonal_naive_" + periodName(period), period: period}
}

// LinearFit forecasts like Prometheus's predict_linear(v[window], h): an
// ordinary least-squares line through the finite points of the last
// window, extrapolated (and floored at 0, as every method here is). Bands
// come from its errors in the history, as for SeasonalNaive.
func LinearFit(window time.Duration) Forecaster {
	return baseline{name: "linear_" + periodName(window), window: window}
}

// PointOnly gives a baseline no bands: P50 and P90 both equal its point
// forecast. A seasonal-naive "P90" in most dashboards is exactly that.
func PointOnly(f Forecaster) Forecaster {
	b, ok := f.(baseline)
	if !ok {
		return f
	}
	b.pointOnly = true
	return b
}

func periodName(d time.Duration) string {
	switch {
	case d%week == 0:
		return fmt.Sprintf("%dw", d/week)
	case d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

type baseline struct {
	name      string
	period    time.Duration // seasonal naive
	window    time.Duration // linear fit
	pointOnly bool
}

func (b baseline) Name() string {
	if b.pointOnly {
		return b.name + "_point"
	}
	return b.name
}

// baselineFit holds the point forecast function and its error quantiles
// per scored horizon.
type baselineFit struct {
	end       time.Time
	step      time.Duration
	point     func(k int) float64 // k ≥ 1 steps after the end
	hs        []int
	q50, q90  []float64 // error quantiles at hs
	pointOnly bool
}

func (b baseline) Fit(s Series) (Fitted, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	y := s.Values
	n := len(y)
	f := &baselineFit{end: s.End(), step: s.Step, pointOnly: b.pointOnly}
	// pointFrom(t, k) is the forecast made with the data up to index t
	// (inclusive) for index t+k; the final forecasts use t = n−1. The
	// in-sample errors use the same function, so bands and forecasts agree.
	var pointFrom func(t, k int) float64
	if b.period > 0 {
		P := int(b.period / s.Step)
		if P < 1 || b.period%s.Step != 0 {
			return nil, fmt.Errorf("forecast: %s: period %v is not a multiple of step %v", b.name, b.period, s.Step)
		}
		pointFrom = func(t, k int) float64 {
			// The same phase in the last cycle up to t, then earlier
			// cycles when that point is missing.
			back := ((k-1)/P + 1) * P
			for i := t + k - back; i >= 0; i -= P {
				if i <= t && finite(y[i]) {
					return y[i]
				}
			}
			return lastFinite(y[:t+1])
		}
	} else {
		W := max(2, int(b.window/s.Step))
		lf := newLinearFitter(y, W)
		pointFrom = lf.forecast
	}
	if math.IsNaN(lastFinite(y)) {
		return nil, fmt.Errorf("%w: series %q has no finite value", ErrNoData, s.Name)
	}
	f.point = func(k int) float64 { return math.Max(0, pointFrom(n-1, k)) }
	if b.pointOnly {
		return f, nil
	}
	// In-sample errors at horizons up to a week, from up to maxOrigins
	// origins after the first period (or window).
	warm := int(b.period / s.Step)
	if warm == 0 {
		warm = max(2, int(b.window/s.Step))
	}
	if warm >= n {
		return f, nil
	}
	stride := max(1, (n-warm)/maxOrigins)
	hmax := min(int(week/s.Step), n-warm-max(1, n/4))
	if hmax < 1 {
		return f, nil
	}
	buf := []float64{}
	for _, h := range horizonGrid(hmax) {
		buf = buf[:0]
		for t := warm - 1; t+h < n; t += stride {
			if v := y[t+h]; finite(v) {
				if p := pointFrom(t, h); finite(p) {
					buf = append(buf, v-math.Max(0, p))
				}
			}
		}
		if len(buf) == 0 {
			continue
		}
		f.hs = append(f.hs, h)
		f.q50 = append(f.q50, quantile(buf, 0.5))
		f.q90 = append(f.q90, sortedQuantile(buf, 0.9))
	}
	return f, nil
}

func lastFinite(y []float64) float64 {
	for i := len(y) - 1; i >= 0; i-- {
		if finite(y[i]) {
			return y[i]
		}
	}
	return math.NaN()
}

func (f *baselineFit) Forecast(h int) []Point {
	if h <= 0 {
		return nil
	}
	out := make([]Point, h)
	for k := 1; k <= h; k++ {
		p := f.point(k)
		q50, q90 := 0.0, 0.0
		if !f.pointOnly && len(f.hs) > 0 {
			// The nearest scored horizon at or below k (or the first).
			j := 0
			for j+1 < len(f.hs) && f.hs[j+1] <= k {
				j++
			}
			q50, q90 = f.q50[j], f.q90[j]
		}
		p50 := math.Max(0, p+q50)
		out[k-1] = Point{T: f.end.Add(time.Duration(k-1) * f.step), P50: p50, P90: math.Max(p50, p+q90)}
	}
	return out
}

// linearFitter answers least-squares fits over the last W indices up to
// any t in O(1), from prefix sums over the finite points.
type linearFitter struct {
	y                     []float64
	w                     int
	cnt, sx, sy, sxx, sxy []float64
}

func newLinearFitter(y []float64, w int) *linearFitter {
	n := len(y)
	lf := &linearFitter{y: y, w: w, cnt: make([]float64, n+1), sx: make([]float64, n+1), sy: make([]float64, n+1), sxx: make([]float64, n+1), sxy: make([]float64, n+1)}
	for i, v := range y {
		lf.cnt[i+1], lf.sx[i+1], lf.sy[i+1], lf.sxx[i+1], lf.sxy[i+1] = lf.cnt[i], lf.sx[i], lf.sy[i], lf.sxx[i], lf.sxy[i]
		if finite(v) {
			x := float64(i)
			lf.cnt[i+1]++
			lf.sx[i+1] += x
			lf.sy[i+1] += v
			lf.sxx[i+1] += x * x
			lf.sxy[i+1] += x * v
		}
	}
	return lf
}

// forecast returns the fitted line over (t−W, t] evaluated at t+k; with
// fewer than two points in the window, the last finite value.
func (lf *linearFitter) forecast(t, k int) float64 {
	a := max(0, t+1-lf.w)
	b := t + 1
	n := lf.cnt[b] - lf.cnt[a]
	if n < 2 {
		return lastFinite(lf.y[:t+1])
	}
	// Measure x from t: the slope is the same and the intercept is then
	// the line's value at t, so the forecast is icpt + slope·k.
	c := float64(t)
	sx := lf.sx[b] - lf.sx[a] - n*c
	sy := lf.sy[b] - lf.sy[a]
	sxx := lf.sxx[b] - lf.sxx[a] - 2*c*(lf.sx[b]-lf.sx[a]) + n*c*c
	sxy := lf.sxy[b] - lf.sxy[a] - c*sy
	den := n*sxx - sx*sx
	if den <= 0 {
		return sy / n
	}
	slope := (n*sxy - sx*sy) / den
	icpt := (sy - slope*sx) / n
	return icpt + slope*float64(k)
}
