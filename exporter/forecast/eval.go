package forecast

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"text/tabwriter"
	"time"
)

// EvalOptions configure Evaluate. Zero fields take the defaults noted.
type EvalOptions struct {
	Step        time.Duration // series are resampled to it first; default 1h
	TrainDays   int           // the first origin is this many days in; default 14
	HorizonDays int           // days forecast from each origin; default 1
	SlideDays   int           // days between origins; default 1
	// MaxTrainDays, when positive, trains on a sliding window of that many
	// days instead of everything before the origin.
	MaxTrainDays int
	// Methods to compare; default Methods(Max). The first seasonal naive
	// daily method found is the reference for the relative columns.
	Methods []Forecaster
	// Max caps the default UPID method's forecasts: 100 for CPU percent,
	// 0 for none.
	Max float64
	// Workers fitting series in parallel; default GOMAXPROCS. The report
	// does not depend on it.
	Workers int
	// PerSeries keeps each series' MASE per method in the report.
	PerSeries bool
}

// Methods are UPID (its forecasts capped at max; 0 for no cap) and the
// baselines of docs/forecasting.md.
func Methods(max float64) []Forecaster {
	return []Forecaster{
		UPID(Options{Max: max}),
		SeasonalNaive(day),
		SeasonalNaive(week),
		LinearFit(day),
		PointOnly(SeasonalNaive(day)),
		PointOnly(SeasonalNaive(week)),
		PointOnly(LinearFit(day)),
	}
}

// EvalReport is the outcome of Evaluate.
type EvalReport struct {
	Step         string        `json:"step"`
	TrainDays    int           `json:"trainDays"`
	HorizonDays  int           `json:"horizonDays"`
	SlideDays    int           `json:"slideDays"`
	MaxTrainDays int           `json:"maxTrainDays,omitempty"`
	Series       int           `json:"series"`
	Forecasts    int           `json:"forecasts"` // (series, origin) pairs scored
	Skipped      int           `json:"skipped"`   // pairs with a zero or undefined MASE scale
	Reference    string        `json:"reference"`
	Methods      []MethodScore `json:"methods"`
	PerSeries    []SeriesScore `json:"perSeries,omitempty"`
}

// MethodScore holds one method's accuracy. MASE and the scaled pinball
// losses divide each forecast's errors by the in-sample seasonal-naive
// (daily) MAE of its training data and average over forecasts, so every
// series weighs the same; the raw pinball losses are in the series' units,
// averaged over all points.
type MethodScore struct {
	Name        string  `json:"name"`
	MASE        float64 `json:"mase"`
	PinballP50  float64 `json:"pinballP50"` // scaled; equals MASE/2 when P50 is the point forecast
	PinballP90  float64 `json:"pinballP90"` // scaled
	RawP50      float64 `json:"rawPinballP50"`
	RawP90      float64 `json:"rawPinballP90"`
	CoverageP90 float64 `json:"coverageP90"` // fraction of outcomes at or below P90
	RelMASE     float64 `json:"relMASE"`     // ÷ the reference's
	RelP50      float64 `json:"relPinballP50"`
	RelP90      float64 `json:"relPinballP90"`
	// GeoRelMASE is the geometric mean over series of the ratio of the
	// series' MASE to the reference's: unlike RelMASE, a few series with
	// a tiny scale and a huge MASE cannot dominate it.
	GeoRelMASE float64 `json:"geoRelMASE"`
	// SeriesBetter counts series whose MASE is lower than the reference's.
	SeriesBetter int `json:"seriesBetter"`
	Failures     int `json:"failures"` // fits that returned an error
}

// SeriesScore is one series' MASE per method, in Methods order.
type SeriesScore struct {
	Name string    `json:"name"`
	MASE []float64 `json:"mase"`
}

type accum struct {
	mase, pin50, pin90         float64 // sums over forecasts of per-forecast scaled means
	raw50, raw90, covered, pts float64 // sums over points
	forecasts, failures        int
}

// Evaluate scores each method by rolling origins: at each origin it fits
// on the data before it (never after), forecasts the next HorizonDays,
// and compares with what happened; origins then slide by SlideDays.
func Evaluate(series []Series, opts EvalOptions) EvalReport {
	if opts.Step <= 0 {
		opts.Step = time.Hour
	}
	if opts.TrainDays <= 0 {
		opts.TrainDays = 14
	}
	if opts.HorizonDays <= 0 {
		opts.HorizonDays = 1
	}
	if opts.SlideDays <= 0 {
		opts.SlideDays = 1
	}
	if opts.Methods == nil {
		opts.Methods = Methods(opts.Max)
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	ref := -1
	for i, f := range opts.Methods {
		if f.Name() == SeasonalNaive(day).Name() {
			ref = i
			break
		}
	}
	rep := EvalReport{
		Step: opts.Step.String(), TrainDays: opts.TrainDays, HorizonDays: opts.HorizonDays,
		SlideDays: opts.SlideDays, MaxTrainDays: opts.MaxTrainDays, Series: len(series),
	}
	if ref >= 0 {
		rep.Reference = opts.Methods[ref].Name()
	}
	results := make([]seriesResult, len(series))
	var wg sync.WaitGroup
	next := make(chan int)
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = evalSeries(series[i], opts)
			}
		}()
	}
	for i := range series {
		next <- i
	}
	close(next)
	wg.Wait()

	total := make([]accum, len(opts.Methods))
	for i, r := range results {
		rep.Forecasts += r.forecasts
		rep.Skipped += r.skipped
		for j := range opts.Methods {
			a := r.acc[j]
			t := &total[j]
			t.mase += a.mase
			t.pin50 += a.pin50
			t.pin90 += a.pin90
			t.raw50 += a.raw50
			t.raw90 += a.raw90
			t.covered += a.covered
			t.pts += a.pts
			t.forecasts += a.forecasts
			t.failures += a.failures
		}
		if opts.PerSeries {
			ss := SeriesScore{Name: series[i].Name, MASE: make([]float64, len(opts.Methods))}
			for j := range opts.Methods {
				ss.MASE[j] = div(r.acc[j].mase, float64(r.acc[j].forecasts))
			}
			rep.PerSeries = append(rep.PerSeries, ss)
		}
	}
	for j, f := range opts.Methods {
		t := total[j]
		fc := float64(t.forecasts)
		ms := MethodScore{
			Name: f.Name(), MASE: div(t.mase, fc), PinballP50: div(t.pin50, fc), PinballP90: div(t.pin90, fc),
			RawP50: div(t.raw50, t.pts), RawP90: div(t.raw90, t.pts), CoverageP90: div(t.covered, t.pts),
			Failures: t.failures,
		}
		if ref >= 0 {
			r := total[ref]
			rf := float64(r.forecasts)
			ms.RelMASE = div(ms.MASE, div(r.mase, rf))
			ms.RelP50 = div(ms.PinballP50, div(r.pin50, rf))
			ms.RelP90 = div(ms.PinballP90, div(r.pin90, rf))
			logSum, logN := 0.0, 0
			for _, res := range results {
				a, b := res.acc[j], res.acc[ref]
				if a.forecasts == 0 || b.forecasts == 0 {
					continue
				}
				ma, mb := a.mase/float64(a.forecasts), b.mase/float64(b.forecasts)
				if ma < mb {
					ms.SeriesBetter++
				}
				if ma > 0 && mb > 0 {
					logSum += math.Log(ma / mb)
					logN++
				}
			}
			if logN > 0 {
				ms.GeoRelMASE = math.Exp(logSum / float64(logN))
			}
		}
		rep.Methods = append(rep.Methods, ms)
	}
	return rep
}

type seriesResult struct {
	acc                []accum
	forecasts, skipped int
}

func evalSeries(s Series, opts EvalOptions) seriesResult {
	res := seriesResult{acc: make([]accum, len(opts.Methods))}
	if s.Step != opts.Step {
		rs, err := s.Resample(opts.Step)
		if err != nil {
			for j := range res.acc {
				res.acc[j].failures++
			}
			return res
		}
		s = rs
	}
	if day%s.Step != 0 {
		// Days are the unit of origins and horizons, and of the MASE scale.
		for j := range res.acc {
			res.acc[j].failures++
		}
		return res
	}
	perDay := int(day / s.Step)
	n := len(s.Values)
	H := opts.HorizonDays * perDay
	for o := opts.TrainDays * perDay; o+H <= n; o += opts.SlideDays * perDay {
		from := 0
		if opts.MaxTrainDays > 0 {
			from = max(0, o-opts.MaxTrainDays*perDay)
		}
		train := s.Slice(from, o)
		actual := s.Values[o : o+H]
		scale := naiveMAE(train.Values, perDay)
		if !(scale > 0) || !finite(scale) || !anyFinite(actual) {
			res.skipped++
			continue
		}
		res.forecasts++
		for j, f := range opts.Methods {
			a := &res.acc[j]
			fit, err := f.Fit(train)
			if err != nil {
				a.failures++
				continue
			}
			pts := fit.Forecast(H)
			var ae, p50, p90 float64
			cnt := 0
			for k, y := range actual {
				if !finite(y) || k >= len(pts) {
					continue
				}
				pt := pts[k]
				ae += math.Abs(y - pt.P50)
				l50, l90 := pinball(y, pt.P50, 0.5), pinball(y, pt.P90, 0.9)
				p50 += l50
				p90 += l90
				a.raw50 += l50
				a.raw90 += l90
				if y <= pt.P90 {
					a.covered++
				}
				cnt++
			}
			if cnt == 0 {
				a.failures++
				continue
			}
			a.pts += float64(cnt)
			c := float64(cnt)
			a.mase += ae / c / scale
			a.pin50 += p50 / c / scale
			a.pin90 += p90 / c / scale
			a.forecasts++
		}
	}
	return res
}

// div is a/b, or 0 when there is nothing to divide by, so that an empty
// report still encodes as JSON.
func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// naiveMAE is the in-sample mean absolute error of the seasonal-naive
// forecast with period p: the denominator of MASE.
func naiveMAE(y []float64, p int) float64 {
	sum, cnt := 0.0, 0
	for t := p; t < len(y); t++ {
		if finite(y[t]) && finite(y[t-p]) {
			sum += math.Abs(y[t] - y[t-p])
			cnt++
		}
	}
	return sum / float64(cnt)
}

func anyFinite(y []float64) bool {
	for _, v := range y {
		if finite(v) {
			return true
		}
	}
	return false
}

// NotScored says why no forecast was scored, or "" when some were: the
// methods' figures are then zeros that mean nothing, not perfect scores.
func (r EvalReport) NotScored() string {
	switch {
	case r.Forecasts > 0:
		return ""
	case r.Skipped > 0:
		return fmt.Sprintf("no forecast scored: the %d held-out days had a zero or undefined MASE scale (no day-to-day variation in their training days) or no values", r.Skipped)
	}
	return fmt.Sprintf("no forecast scored: no series spans %d days of training and %d held-out day(s)", r.TrainDays, r.HorizonDays)
}

// WriteTable writes the report as an aligned text table; without a
// forecast scored, a line saying why instead of the methods' rows.
func (r EvalReport) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "%d series, step %s, first origin after %d days, horizon %d day(s), sliding %d day(s)",
		r.Series, r.Step, r.TrainDays, r.HorizonDays, r.SlideDays)
	if r.MaxTrainDays > 0 {
		fmt.Fprintf(w, ", training window %d days", r.MaxTrainDays)
	}
	if why := r.NotScored(); why != "" {
		_, err := fmt.Fprintf(w, "\n%s\n", why)
		return err
	}
	fmt.Fprintf(w, "\n%d forecasts scored, %d skipped; relative columns are ÷ %s\n\n", r.Forecasts, r.Skipped, r.Reference)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\tMASE\trel\tgeo rel\tpinball p50\trel\tpinball p90\trel\tcover p90\traw p50\traw p90\tbetter\t")
	for _, m := range r.Methods {
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%d/%d\t\n",
			m.Name, m.MASE, m.RelMASE, m.GeoRelMASE, m.PinballP50, m.RelP50, m.PinballP90, m.RelP90, m.CoverageP90, m.RawP50, m.RawP90, m.SeriesBetter, r.Series)
	}
	return tw.Flush()
}

// JSON returns the report as indented JSON.
func (r EvalReport) JSON() ([]byte, error) {
	return json.MarshalIndent(r, "", "  ")
}
