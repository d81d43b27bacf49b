package forecast

import (
	"encoding/json"
	"flag"
	"math"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// constant forecasts P50 = c and P90 = c + 3.
type constant struct{ c float64 }

func (c constant) Name() string                 { return "constant" }
func (c constant) Fit(s Series) (Fitted, error) { return constFit{c.c, s.End(), s.Step}, nil }

type constFit struct {
	c    float64
	end  time.Time
	step time.Duration
}

func (f constFit) Forecast(h int) []Point {
	out := make([]Point, h)
	for k := range out {
		out[k] = Point{T: f.end.Add(time.Duration(k) * f.step), P50: f.c, P90: f.c + 3}
	}
	return out
}

func TestEvaluateByHand(t *testing.T) {
	// 14 training days alternating 0 (even days) and 2 (odd days), so the
	// in-sample seasonal-naive MAE (the MASE scale) is 2; the test day is
	// all 1s. One origin, at day 14.
	s := mk(monday, time.Hour, 15*24, func(i int) float64 {
		switch d := i / 24; {
		case d == 14:
			return 1
		case d%2 == 1:
			return 2
		}
		return 0
	})
	rep := Evaluate([]Series{s}, EvalOptions{Methods: []Forecaster{constant{0}, PointOnly(SeasonalNaive(day))}, PerSeries: true})
	// Without the banded seasonal naive there is no reference.
	if rep.Forecasts != 1 || rep.Skipped != 0 || rep.Reference != "" {
		t.Fatalf("report %+v", rep)
	}
	c, sn := rep.Methods[0], rep.Methods[1]
	// Constant 0 / 3: |1−0| = 1 → MASE 1/2; pinball p50 0.5 → 0.25
	// scaled; pinball p90 (1−0.9)·(3−1) = 0.2 → 0.1 scaled; all covered.
	for _, x := range []struct {
		name      string
		got, want float64
	}{
		{"MASE", c.MASE, 0.5}, {"pinball p50", c.PinballP50, 0.25}, {"pinball p90", c.PinballP90, 0.1},
		{"raw p50", c.RawP50, 0.5}, {"raw p90", c.RawP90, 0.2}, {"coverage", c.CoverageP90, 1},
	} {
		if math.Abs(x.got-x.want) > 1e-12 {
			t.Errorf("constant: %s = %v, want %v", x.name, x.got, x.want)
		}
	}
	// Seasonal naive repeats day 13 (all 2s): |1−2| = 1 as well; its P90
	// is 2 too, so pinball p90 is 0.1·1 → 0.05 scaled.
	if sn.MASE != 0.5 || math.Abs(sn.PinballP90-0.05) > 1e-12 || sn.CoverageP90 != 1 {
		t.Errorf("seasonal naive: %+v", sn)
	}
	if len(rep.PerSeries) != 1 || rep.PerSeries[0].MASE[0] != 0.5 {
		t.Errorf("per series %+v", rep.PerSeries)
	}

	// A constant history has no MASE scale: the origin is skipped.
	flat := mk(monday, time.Hour, 15*24, func(int) float64 { return 1 })
	if rep := Evaluate([]Series{flat}, EvalOptions{Methods: []Forecaster{constant{0}}}); rep.Skipped != 1 || rep.Forecasts != 0 {
		t.Errorf("flat: %+v", rep)
	}
}

// spy records what each fit saw.
type spy struct {
	mu   *sync.Mutex
	seen *[]Series
}

func (s spy) Name() string { return "spy" }
func (s spy) Fit(x Series) (Fitted, error) {
	s.mu.Lock()
	*s.seen = append(*s.seen, x)
	s.mu.Unlock()
	return constFit{0, x.End(), x.Step}, nil
}

// TestEvaluateNoLookAhead: each fit gets exactly the history before its
// origin (or the last MaxTrainDays of it), and cannot reach past it.
func TestEvaluateNoLookAhead(t *testing.T) {
	s := mk(monday, time.Hour, 20*24, func(i int) float64 { return float64(i%24 + i/24%2) })
	for _, c := range []struct {
		opts      EvalOptions
		wantFirst []int // first point of each fit, in days
	}{
		{EvalOptions{TrainDays: 14, SlideDays: 2}, []int{0, 0, 0}},
		{EvalOptions{TrainDays: 14, SlideDays: 2, MaxTrainDays: 10}, []int{4, 6, 8}},
	} {
		var mu sync.Mutex
		var seen []Series
		c.opts.Methods = []Forecaster{spy{&mu, &seen}}
		c.opts.Workers = 1
		rep := Evaluate([]Series{s}, c.opts)
		if rep.Forecasts != 3 || len(seen) != 3 {
			t.Fatalf("%+v: %d forecasts, %d fits, want 3 (origins at days 14, 16, 18)", c.opts, rep.Forecasts, len(seen))
		}
		for k, x := range seen {
			origin := monday.Add(time.Duration(14+2*k) * day)
			first := monday.Add(time.Duration(c.wantFirst[k]) * day)
			if !x.End().Equal(origin) || !x.Start.Equal(first) {
				t.Errorf("fit %d saw [%v, %v), want [%v, %v)", k, x.Start, x.End(), first, origin)
			}
			if cap(x.Values) != len(x.Values) {
				t.Errorf("fit %d can reach %d points past its origin", k, cap(x.Values)-len(x.Values))
			}
		}
	}
}

func TestNaiveMAEAndPinball(t *testing.T) {
	// Pairs (0,1), (1,1), (2,1) and (3,NaN): the last is skipped.
	if got := naiveMAE([]float64{0, 1, 2, 3, 1, 1, 1, math.NaN()}, 4); got != 2.0/3 {
		t.Errorf("naiveMAE = %v, want 2/3", got)
	}
	for _, c := range []struct{ y, f, p, want float64 }{
		{10, 8, 0.9, 1.8}, {8, 10, 0.9, 0.2}, {5, 5, 0.5, 0}, {3, 1, 0.5, 1},
	} {
		if got := pinball(c.y, c.f, c.p); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("pinball(%v, %v, %v) = %v, want %v", c.y, c.f, c.p, got, c.want)
		}
	}
}

// TestEvaluateGolden runs the whole evaluation on the four-VM excerpt of
// the Azure sample in testdata and compares the table with the golden
// file (refresh with -update). It also checks that parallel workers do
// not change the report.
func TestEvaluateGolden(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	series := readExcerpt(t)
	rep := Evaluate(series, EvalOptions{Max: 100, PerSeries: true})
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	golden := "testdata/eval_4vms.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("evaluation differs from %s (refresh with -update):\n%s", golden, b.String())
	}
	if rep.Forecasts != 4*13 || rep.Methods[0].Name != "upid" || rep.Methods[0].Failures != 0 {
		t.Errorf("report %+v", rep)
	}

	one := Evaluate(series, EvalOptions{Max: 100, PerSeries: true, Workers: 1})
	if !reflect.DeepEqual(one, rep) {
		t.Error("one worker and many give different reports")
	}
	js, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back EvalReport
	if err := json.Unmarshal(js, &back); err != nil || !reflect.DeepEqual(back, rep) {
		t.Errorf("JSON round trip: %v", err)
	}
}

func TestEvaluateOddInputs(t *testing.T) {
	// A step that does not divide a day, and a series too short for any
	// origin, give an empty report that still encodes, not a hang.
	odd := mk(monday, 7*time.Minute, 5000, func(i int) float64 { return noise(i) + 1 })
	short := mk(monday, time.Hour, 48, func(i int) float64 { return noise(i) + 1 })
	rep := Evaluate([]Series{odd, short}, EvalOptions{Step: 7 * time.Minute, Max: 100, PerSeries: true})
	if rep.Forecasts != 0 || rep.Methods[0].Failures != 2 {
		t.Errorf("report %+v", rep)
	}
	if _, err := rep.JSON(); err != nil {
		t.Error(err)
	}
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Error(err)
	}
}

// TestWriteTableNotScored: a report without a forecast scored says why in
// place of the methods' rows, whose zeros would read as perfect scores.
func TestWriteTableNotScored(t *testing.T) {
	methods := []Forecaster{constant{0}}
	cases := []struct {
		name   string
		series Series
		why    string // "" when scored
	}{
		{name: "scored", series: mk(monday, time.Hour, 15*24, func(i int) float64 { return noise(i) + 1 })},
		{name: "too short", series: mk(monday, time.Hour, 48, func(i int) float64 { return noise(i) + 1 }),
			why: "no forecast scored: no series spans 14 days of training and 1 held-out day(s)"},
		{name: "no variation", series: mk(monday, time.Hour, 15*24, func(int) float64 { return 1 }),
			why: "no forecast scored: the 1 held-out days had a zero or undefined MASE scale"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := Evaluate([]Series{c.series}, EvalOptions{Methods: methods})
			var b strings.Builder
			if err := rep.WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			rows := strings.Contains(b.String(), "constant")
			if got := rep.NotScored(); !strings.HasPrefix(got, c.why) || (got == "") != (c.why == "") {
				t.Errorf("NotScored() = %q, want %q", got, c.why)
			}
			if rows != (c.why == "") || !strings.Contains(b.String(), c.why) {
				t.Errorf("table with rows %v, want %v, saying %q:\n%s", rows, c.why == "", c.why, b.String())
			}
		})
	}
}
