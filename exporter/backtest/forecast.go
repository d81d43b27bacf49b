package backtest

import (
	"errors"
	"math"
	"slices"
	"time"
)

// Forecaster is the hook for forecasting models. Given the past of a usage
// series on a regular grid starting at start (NaN where there was no
// sample; start lets a model align daily and weekly phases to the clock),
// it forecasts the next horizon steps as a median and a 90th percentile.
// A model with a Fit(Series)/Forecast(h) shape needs a three-line adapter.
// Run calls it from several goroutines at once, so it must be safe for
// concurrent use.
type Forecaster interface {
	Name() string
	Forecast(start time.Time, step time.Duration, past []float64, horizon int) (Forecast, error)
}

// Forecast holds horizon values per quantile.
type Forecast struct {
	P50, P90 []float64
}

// ForecastResult scores one forecaster on one resource of one source, pooled
// over every held-out day of every trace.
type ForecastResult struct {
	Source     string `json:"source"`
	Resource   string `json:"resource"` // "cpu" or "memory": the window means
	Forecaster string `json:"forecaster"`
	Days       int    `json:"days"`
	// MASE is the mean absolute error of P50 scaled by the in-sample mean
	// absolute error of the one-day seasonal naive forecast on the past
	// (one-step naive when the past is shorter than two days), averaged
	// over held-out days; below 1 beats that naive forecast on the history.
	MASE float64 `json:"mase"`
	// PinballP50 and PinballP90 are the mean quantile losses divided by the
	// day's mean usage, so traces of any size weigh alike.
	PinballP50 float64 `json:"pinball_p50"`
	PinballP90 float64 `json:"pinball_p90"`
	// P90Coverage is the share of held-out samples at or below P90; a
	// calibrated P90 covers 0.9.
	P90Coverage float64 `json:"p90_coverage"`
	// Errors counts days the forecaster failed or returned the wrong length.
	Errors int `json:"errors,omitempty"`
}

const forecastStep = 300 * time.Second

type forecastAcc struct {
	forecaster, resource   string
	days, maseN, errors    int
	mase, p50, p90, covSum float64
}

// series puts one resource of a trace on the 5-minute grid from its first
// sample.
func series(tr Trace, resource string) []float64 {
	t0 := tr.Samples[0].Time
	last := tr.Samples[len(tr.Samples)-1].Time
	n := int(last.Sub(t0)/forecastStep) + 1
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	for _, s := range tr.Samples {
		i := int((s.Time.Sub(t0) + forecastStep/2) / forecastStep)
		if i >= 0 && i < n {
			v := s.CPU
			if resource == "memory" {
				v = s.Memory
			}
			out[i] = v
		}
	}
	return out
}

func scoreForecasts(tr Trace, opts Options) []forecastAcc {
	if len(opts.Forecasters) == 0 {
		return nil
	}
	resources := []string{"cpu"}
	if !math.IsNaN(tr.Samples[0].Memory) {
		resources = append(resources, "memory")
	}
	perDay := int(24 * time.Hour / forecastStep)
	first := int(opts.ForecastMinHistory / forecastStep)
	if first < 1 {
		first = 1
	}
	var out []forecastAcc
	for _, res := range resources {
		y := series(tr, res)
		t0 := tr.Samples[0].Time
		for _, f := range opts.Forecasters {
			acc := forecastAcc{forecaster: f.Name(), resource: res}
			for cut := first; cut < len(y); cut += perDay {
				end := min(cut+perDay, len(y))
				actual := y[cut:end]
				if finiteCount(actual) < perDay/2 {
					continue
				}
				// The forecaster gets a copy: it cannot see or alter the
				// held-out day.
				past := slices.Clone(y[:cut])
				fc, err := f.Forecast(t0, forecastStep, past, len(actual))
				if err == nil && (len(fc.P50) != len(actual) || len(fc.P90) != len(actual)) {
					err = errors.New("wrong length")
				}
				if err != nil {
					acc.errors++
					continue
				}
				acc.days++
				mean, mae, pl50, pl90, cov, n := 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
				for i, v := range actual {
					if math.IsNaN(v) {
						continue
					}
					n++
					mean += v
					mae += math.Abs(v - fc.P50[i])
					pl50 += pinball(0.5, v, fc.P50[i])
					pl90 += pinball(0.9, v, fc.P90[i])
					if v <= fc.P90[i] {
						cov++
					}
				}
				mean /= n
				if mean > 0 {
					acc.p50 += pl50 / n / mean
					acc.p90 += pl90 / n / mean
				}
				acc.covSum += cov / n
				if scale := naiveScale(past, perDay); scale > 0 {
					acc.mase += mae / n / scale
					acc.maseN++
				}
			}
			out = append(out, acc)
		}
	}
	return out
}

func pinball(q, y, f float64) float64 {
	if y >= f {
		return q * (y - f)
	}
	return (1 - q) * (f - y)
}

func finiteCount(v []float64) int {
	n := 0
	for _, x := range v {
		if !math.IsNaN(x) {
			n++
		}
	}
	return n
}

// naiveScale is the in-sample mean absolute error of the seasonal naive
// forecast with period m (1 when the past is shorter than two periods).
func naiveScale(past []float64, m int) float64 {
	if len(past) < 2*m {
		m = 1
	}
	sum, n := 0.0, 0
	for t := m; t < len(past); t++ {
		if math.IsNaN(past[t]) || math.IsNaN(past[t-m]) {
			continue
		}
		sum += math.Abs(past[t] - past[t-m])
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

func forecastResults(traces []Trace, accs [][]forecastAcc) []ForecastResult {
	type key struct{ src, res, name string }
	pooled := map[key]*forecastAcc{}
	var order []key
	for i, list := range accs {
		for _, a := range list {
			k := key{traces[i].Source, a.resource, a.forecaster}
			p, ok := pooled[k]
			if !ok {
				p = &forecastAcc{}
				pooled[k] = p
				order = append(order, k)
			}
			p.days += a.days
			p.maseN += a.maseN
			p.errors += a.errors
			p.mase += a.mase
			p.p50 += a.p50
			p.p90 += a.p90
			p.covSum += a.covSum
		}
	}
	slices.SortStableFunc(order, func(a, b key) int {
		for _, c := range [][2]string{{a.src, b.src}, {a.res, b.res}} {
			if c[0] != c[1] {
				if c[0] < c[1] {
					return -1
				}
				return 1
			}
		}
		return 0
	})
	var out []ForecastResult
	for _, k := range order {
		p := pooled[k]
		r := ForecastResult{Source: k.src, Resource: k.res, Forecaster: k.name, Days: p.days, Errors: p.errors}
		if p.days > 0 {
			r.PinballP50 = sig6(p.p50 / float64(p.days))
			r.PinballP90 = sig6(p.p90 / float64(p.days))
			r.P90Coverage = sig6(p.covSum / float64(p.days))
		}
		if p.maseN > 0 {
			r.MASE = sig6(p.mase / float64(p.maseN))
		}
		out = append(out, r)
	}
	return out
}

// SeasonalNaive is the reference Forecaster: tomorrow repeats the same time
// of the last day, and P90 adds the 90th percentile of the past day-over-day
// changes. Any model worth its cost should beat it.
type SeasonalNaive struct{}

// Name implements Forecaster.
func (SeasonalNaive) Name() string { return "seasonal-naive" }

// Forecast implements Forecaster.
func (SeasonalNaive) Forecast(_ time.Time, step time.Duration, past []float64, h int) (Forecast, error) {
	if step <= 0 || h < 0 {
		return Forecast{}, errors.New("seasonal naive: bad step or horizon")
	}
	m := int(24 * time.Hour / step)
	if m < 1 || len(past) < m {
		m = 1
	}
	lastFinite := math.NaN()
	for i := len(past) - 1; i >= 0; i-- {
		if !math.IsNaN(past[i]) {
			lastFinite = past[i]
			break
		}
	}
	if math.IsNaN(lastFinite) {
		return Forecast{}, errors.New("seasonal naive: no past values")
	}
	var resid []float64
	for t := m; t < len(past); t++ {
		if !math.IsNaN(past[t]) && !math.IsNaN(past[t-m]) {
			resid = append(resid, past[t]-past[t-m])
		}
	}
	q90 := 0.0
	if len(resid) > 0 {
		slices.Sort(resid)
		q90 = math.Max(0, resid[int(0.9*float64(len(resid)-1))])
	}
	fc := Forecast{P50: make([]float64, h), P90: make([]float64, h)}
	for i := range h {
		// Step i ahead is len(past)+i; one season back, repeated if the
		// horizon is longer than a season.
		j := len(past) + i - m*(1+i/m)
		v := lastFinite
		if j >= 0 && j < len(past) && !math.IsNaN(past[j]) {
			v = past[j]
		}
		fc.P50[i] = v
		fc.P90[i] = v + q90
	}
	return fc, nil
}
