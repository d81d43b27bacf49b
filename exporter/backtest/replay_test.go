package backtest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/upid-dev/upid/exporter/history"
)

var update = flag.Bool("update", false, "rewrite golden files")

var origin = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// synthetic is days of 5-minute samples: 0.5 core mean, 1 GiB mean and
// 1.2 GiB peak memory, requests 1 core and 2 GiB.
func synthetic(days int) Trace {
	tr := Trace{Name: "synthetic", Source: "test", CoresPerUnit: 1, BytesPerUnit: 1}
	for i := range days * 288 {
		tr.Samples = append(tr.Samples, Sample{
			Time: origin.Add(time.Duration(i) * 5 * time.Minute), Duration: 5 * time.Minute,
			CPU: 0.5, CPUMax: 0.8, Memory: 1 << 30, MemoryMax: 1.2 * (1 << 30),
			CPURequest: 1, MemoryRequest: 2 << 30, Start: i == 0,
		})
	}
	return tr
}

// fixed recommends the same figures at every decision and applies them
// the first time.
type fixed struct {
	a       Applied
	applied bool
}

func (f *fixed) Name() string                  { return "fixed" }
func (f *fixed) Observe(Sample, Applied, bool) {}
func (f *fixed) Recommend(time.Time, Applied) (Applied, bool) {
	first := !f.applied
	f.applied = true
	return f.a, first
}

func TestScoring(t *testing.T) {
	opts := DefaultOptions()
	opts.Extra = []func() Rightsizer{func() Rightsizer {
		return &fixed{a: Applied{CPU: 0.4, Memory: 1 << 30, MemoryLimit: 1 << 30, CPUOK: true, MemoryOK: true}}
	}}
	rep, err := Run([]Trace{synthetic(3)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	scores := map[string]Score{}
	for _, s := range rep.Traces[0].Scores {
		scores[s.Recommender] = s
	}
	// Days two and three are scored: 576 samples.
	hand, fx := scores[NameHandSet], scores["fixed"]
	if hand.Samples != 576 || fx.Samples != 576 {
		t.Fatalf("scored %d and %d samples, want 576", hand.Samples, fx.Samples)
	}
	// Hand-set: (1 − 0.5)/1 and (2 − 1)/2 GiB: slack 0.5 each, no risk.
	if *hand.CPUSlack != 0.5 || *hand.MemorySlack != 0.5 || *hand.Slack != 0.5 || *hand.CPUOverCoreSeconds != 0 ||
		*hand.MemoryOverRequest != 0 || hand.Changes != 0 || math.Abs(*hand.CPUCoreHours-48) > 1e-9 {
		t.Errorf("hand-set %+v", hand)
	}
	// Fixed at 0.4 core and 1 GiB: no slack, 0.1 core over for 300 s in
	// every sample, and every 1.2 GiB peak over the 1 GiB request and
	// limit.
	if *fx.CPUSlack != 0 || *fx.MemorySlack != 0 || math.Abs(*fx.CPUOverCoreSeconds-576*0.1*300) > 1e-6 ||
		*fx.CPUOverShare != 1 || *fx.MemoryOverRequest != 576 || *fx.MemoryOverLimit != 576 || fx.Changes != 1 ||
		math.Abs(*fx.CPUCoreHours-0.4*48) > 1e-9 || math.Abs(*fx.MemoryGiBHours-48) > 1e-9 {
		t.Errorf("fixed %+v", fx)
	}
	// On a flat trace UPID and the VPA recommend once and never move.
	for _, name := range []string{NameUPID, NameVPA} {
		if s := scores[name]; s.Changes != 1 || *s.MemoryOverRequest != 0 {
			t.Errorf("%s on a flat trace: %+v", name, s)
		}
	}
	// KRR needs... nothing more: a day holds 288 ≥ 100 points.
	if s := scores[NameKRR]; s.Changes != 1 {
		t.Errorf("krr: %+v", s)
	}
}

// TestNoFigure: only CPUOK and MemoryOK say a recommender has no figure; a
// recommended 0 is applied like any other request, and recorded.
func TestNoFigure(t *testing.T) {
	const gib = 1 << 30
	cases := []struct {
		name          string
		rec           Applied
		coreH, gibH   float64 // requested over the two scored days
		cpu, mem, lim float64 // the decision
	}{{
		// The trace's 1 core and 2 GiB stay: 48 core-hours, 96 GiB-hours.
		name:  "no figures",
		rec:   Applied{CPU: 0.4, Memory: gib, MemoryLimit: gib},
		coreH: 48, gibH: 96,
	}, {
		name:  "CPU only",
		rec:   Applied{CPU: 0.4, Memory: gib, MemoryLimit: gib, CPUOK: true},
		coreH: 0.4 * 48, gibH: 96, cpu: 0.4,
	}, {
		name:  "memory only",
		rec:   Applied{CPU: 0.4, Memory: gib, MemoryLimit: gib, MemoryOK: true},
		coreH: 48, gibH: 48, mem: gib, lim: gib,
	}, {
		// krr with --cpu_min_value 0 on an idle container.
		name:  "CPU 0 is a figure",
		rec:   Applied{CPUOK: true},
		coreH: 0, gibH: 96,
	}, {
		name:  "both",
		rec:   Applied{CPU: 0.4, Memory: gib, MemoryLimit: gib, CPUOK: true, MemoryOK: true},
		coreH: 0.4 * 48, gibH: 48, cpu: 0.4, mem: gib, lim: gib,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := DefaultOptions()
			opts.KeepDecisions = true
			opts.Extra = []func() Rightsizer{func() Rightsizer { return &fixed{a: c.rec} }}
			rep, err := Run([]Trace{synthetic(3)}, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range rep.Traces[0].Scores {
				if s.Recommender == "fixed" &&
					(math.Abs(*s.CPUCoreHours-c.coreH) > 1e-9 || math.Abs(*s.MemoryGiBHours-c.gibH) > 1e-9 || s.Changes != 1) {
					t.Errorf("requested %v core-h and %v GiB-h in %d changes, want %v and %v in 1",
						*s.CPUCoreHours, *s.MemoryGiBHours, s.Changes, c.coreH, c.gibH)
				}
			}
			want := Decision{Time: origin.Add(24 * time.Hour), Recommender: "fixed", CPU: c.cpu, Memory: c.mem, MemoryLimit: c.lim}
			var got []Decision
			for _, d := range rep.Traces[0].Decisions {
				if d.Recommender == "fixed" {
					got = append(got, d)
				}
			}
			if len(got) != 1 || got[0] != want {
				t.Errorf("decisions %+v, want [%+v]", got, want)
			}
		})
	}
}

// TestMoved is krr's update rule: a figure that moves by more than the
// threshold, 0 included.
func TestMoved(t *testing.T) {
	cases := []struct {
		name string
		v    float64
		ok   bool
		cur  float64
		want bool
	}{
		{"no figure", 0.5, false, 1, false},
		{"within the threshold", 1.05, true, 1, false},
		{"beyond it", 1.2, true, 1, true},
		{"down to 0", 0, true, 1, true},
		{"no request, a figure", 0.5, true, 0, true},
		{"no request, 0", 0, true, 0, false},
	}
	for _, c := range cases {
		if got := moved(c.v, c.ok, c.cur, 0.1); got != c.want {
			t.Errorf("%s: moved(%v, %v, %v) = %v, want %v", c.name, c.v, c.ok, c.cur, got, c.want)
		}
	}
}

// spy checks what the replay shows a recommender.
type spy struct {
	t                  *testing.T
	mu                 *sync.Mutex
	lastStart, lastEnd time.Time
	calls              *int
}

func (s *spy) Name() string { return "spy" }

func (s *spy) Observe(x Sample, _ Applied, _ bool) {
	if !x.Time.After(s.lastStart) {
		s.t.Errorf("sample at %v observed out of order or twice", x.Time)
	}
	s.lastStart, s.lastEnd = x.Time, x.Time.Add(x.Duration)
}

func (s *spy) Recommend(now time.Time, _ Applied) (Applied, bool) {
	s.mu.Lock()
	*s.calls++
	s.mu.Unlock()
	if s.lastEnd.After(now) {
		s.t.Errorf("decision at %v saw a sample ending at %v", now, s.lastEnd)
	}
	return Applied{}, false
}

// TestNoLookAhead: recommenders only ever see samples that ended before the
// decision, and a decision does not change when the future is removed.
func TestNoLookAhead(t *testing.T) {
	traces := loadTestdata(t)
	var mu sync.Mutex
	calls := 0
	opts := DefaultOptions()
	opts.KeepDecisions = true
	opts.Extra = []func() Rightsizer{func() Rightsizer { return &spy{t: t, mu: &mu, calls: &calls} }}
	full, err := Run(traces, opts)
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 {
		t.Fatal("the spy was never asked")
	}
	// Cut every trace 2.5 days in: decisions up to then must be identical.
	cutTraces := make([]Trace, len(traces))
	for i, tr := range traces {
		cut := tr.Samples[0].Time.Add(60 * time.Hour)
		c := tr
		c.Samples = nil
		for _, s := range tr.Samples {
			if s.Time.Before(cut) {
				c.Samples = append(c.Samples, s)
			}
		}
		cutTraces[i] = c
	}
	opts.Extra = nil
	cut, err := Run(cutTraces, opts)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := range traces {
		var want []Decision
		limit := traces[i].Samples[0].Time.Add(60 * time.Hour)
		for _, d := range full.Traces[i].Decisions {
			if d.Time.Before(limit) {
				want = append(want, d)
			}
		}
		got := cut.Traces[i].Decisions
		if len(got) != len(want) {
			t.Errorf("%s: %d decisions with the future cut, %d without", traces[i].Name, len(got), len(want))
			continue
		}
		for j := range got {
			if got[j] != want[j] {
				t.Errorf("%s: decision %d differs: %+v vs %+v", traces[i].Name, j, got[j], want[j])
			}
		}
		n += len(got)
	}
	if n == 0 {
		t.Error("no decisions compared")
	}
}

func loadTestdata(t testing.TB) []Trace {
	t.Helper()
	traces, err := LoadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	if len(traces) != 12 {
		t.Fatalf("%d traces in testdata, want 12", len(traces))
	}
	return traces
}

// TestGolden replays the testdata excerpts; -update rewrites the files.
func TestGolden(t *testing.T) {
	traces := loadTestdata(t)
	rep, err := Run(traces, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var table, js bytes.Buffer
	rep.WriteTable(&table)
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct {
		path string
		got  []byte
	}{{"testdata/backtest.golden", table.Bytes()}, {"testdata/backtest.json.golden", js.Bytes()}} {
		if *update {
			if err := os.WriteFile(g.path, g.got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(g.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(g.got, want) {
			t.Errorf("%s differs; rerun with -update after checking:\n%s", g.path, g.got)
		}
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Groups) != 2 {
		t.Errorf("JSON does not read back: %v", err)
	}
}

func TestRunRejects(t *testing.T) {
	opts := DefaultOptions()
	opts.Cadence = 0
	if _, err := Run([]Trace{synthetic(2)}, opts); err == nil {
		t.Error("zero cadence accepted")
	}
	opts = DefaultOptions()
	bad := synthetic(2)
	bad.Samples[5].Time = bad.Samples[4].Time
	if _, err := Run([]Trace{bad}, opts); err == nil || !strings.Contains(err.Error(), "sample 5") {
		t.Errorf("unordered trace: %v", err)
	}
	if _, err := Run([]Trace{{Name: "empty"}}, opts); err == nil {
		t.Error("empty trace accepted")
	}
	withPolicy := synthetic(2)
	p := opts.Policy
	p.CPUPercentile = 7
	withPolicy.Policy = &p
	if _, err := Run([]Trace{withPolicy}, opts); err == nil || !strings.Contains(err.Error(), "policy") {
		t.Errorf("trace with a bad policy: %v", err)
	}
}

func forecastGroups(traces []Trace) []ForecastGroup {
	var fs ForecastSet
	_ = fs.Add(traces) // no Step: nothing to resample
	return fs.Groups()
}

// tracesOf builds the traces of windows as ReadPrometheus does.
func tracesOf(windows map[history.ContainerKey][]history.ReplayWindow) []Trace {
	var b traceBuilder
	for k, ws := range windows {
		b.add(k, ws)
	}
	return b.traces()
}

// TestForecastSeries: each trace becomes one series per resource on the
// 5-minute grid, with gaps as NaN, grouped by source and resource.
func TestForecastSeries(t *testing.T) {
	long := synthetic(16)
	long.Name, long.Source = "borg/long", "borg"
	short := synthetic(3)
	short.Name, short.Source = "borg/short", "borg"
	for _, tr := range []Trace{long, short} {
		for i := range tr.Samples {
			tr.Samples[i].CPU = float64(i)
			tr.Samples[i].Memory = float64(i) * 1000
		}
	}
	// A gap of three windows, and a restart 40 s off the grid.
	short.Samples = append(short.Samples[:10:10], short.Samples[13:]...)
	short.Samples[10].Time = short.Samples[10].Time.Add(40 * time.Second)
	vm := synthetic(3)
	vm.Name, vm.Source, vm.CoresPerUnit = "azure/vm", "azure", 0.04
	for i := range vm.Samples {
		vm.Samples[i].Memory = math.NaN()
	}
	groups := forecastGroups([]Trace{long, short, vm})
	type key struct {
		src, res  string
		max       float64
		trainDays int
		series    int
	}
	var got []key
	for _, g := range groups {
		got = append(got, key{g.Source, g.Resource, g.Max, g.TrainDays, len(g.Series)})
	}
	want := []key{{"azure", "cpu", 4, 2, 1}, {"borg", "cpu", 0, 14, 1}, {"borg", "cpu", 0, 2, 1}, {"borg", "memory", 0, 14, 1}, {"borg", "memory", 0, 2, 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("groups %+v, want %+v", got, want)
	}
	s := groups[4].Series[0]
	if s.Name != "borg/short" || !s.Start.Equal(origin) || s.Step != 5*time.Minute || len(s.Values) != 3*288 {
		t.Fatalf("series %s from %v every %v, %d points", s.Name, s.Start, s.Step, len(s.Values))
	}
	for i, v := range s.Values {
		missing := i >= 10 && i < 13
		if missing != math.IsNaN(v) {
			t.Errorf("point %d = %v", i, v)
		}
	}
	if s.Values[13] != short.Samples[10].Memory {
		t.Errorf("the off-grid window landed elsewhere: %v", s.Values[13])
	}
	if groups[1].Series[0].Values[5] != long.Samples[5].CPU {
		t.Error("CPU series does not hold the window means")
	}
	// Traces of different sizes share no cap.
	big := vm
	big.Name, big.CoresPerUnit = "azure/big", 0.08
	if g := forecastGroups([]Trace{vm, big}); len(g) != 1 || g[0].Max != 0 {
		t.Errorf("mixed VM sizes capped at %v", g[0].Max)
	}
}

func TestTraceBuilder(t *testing.T) {
	nan := math.NaN()
	end := origin.Add(history.WindowStep)
	w := func(i int, cpu, peak, mean, cpuReq float64, start bool) history.ReplayWindow {
		return history.ReplayWindow{
			Window:     history.Window{End: end.Add(time.Duration(i) * history.WindowStep), CPU: cpu, MemoryPeak: peak, Throttled: nan, Periods: nan, OOMKills: nan, Start: start},
			MemoryMean: mean, CPURequest: cpuReq, MemoryRequest: nan, CPULimit: nan, MemoryLimit: nan,
		}
	}
	key := func(ns string) history.ContainerKey {
		return history.ContainerKey{Key: history.Key{Namespace: ns, Kind: "Deployment", Workload: "api"}, Container: "app"}
	}
	got := tracesOf(map[history.ContainerKey][]history.ReplayWindow{
		key("b"): {
			w(0, 0.5, 100, 80, 1, false),
			w(1, nan, 100, 80, 1, false), // no CPU: a gap
			w(2, 0.4, 100, nan, nan, false),
			w(3, 0.3, 90, 95, 1, true),
		},
		key("a"):          {w(0, 0.1, 10, 10, 1, true)},
		key("only-a-gap"): {w(0, nan, nan, 1, 1, false)},
	})
	if len(got) != 2 || got[0].Name != "a/Deployment/api/app" || got[1].Name != "b/Deployment/api/app" {
		t.Fatalf("traces %+v", got)
	}
	if !got[0].Samples[0].Start {
		t.Error("a window in which the container started is not a start")
	}
	b := got[1].Samples
	want := []Sample{
		{Time: origin, CPU: 0.5, CPUMax: 0.5, Memory: 80, MemoryMax: 100, CPURequest: 1},
		// After the gap: a start; the missing mean falls back on the peak,
		// the missing request (kube-state-metrics missed it) on the last.
		{Time: origin.Add(10 * time.Minute), CPU: 0.4, CPUMax: 0.4, Memory: 100, MemoryMax: 100, CPURequest: 1, Start: true},
		// A mean above the peak (scrapes out of step) is cut to it.
		{Time: origin.Add(15 * time.Minute), CPU: 0.3, CPUMax: 0.3, Memory: 90, MemoryMax: 90, CPURequest: 1, Start: true},
	}
	if len(b) != len(want) {
		t.Fatalf("%d samples, want %d: %+v", len(b), len(want), b)
	}
	for i := range want {
		want[i].Duration = history.WindowStep
		if b[i] != want[i] {
			t.Errorf("sample %d = %+v, want %+v", i, b[i], want[i])
		}
	}
	if err := checkTrace(got[1]); err != nil {
		t.Error(err)
	}
}

// FuzzReplayFromWindows: whatever a Prometheus-compatible server answers
// (negative, huge or missing values, any gaps), the traces built from it
// are valid and replaying them does not panic.
func FuzzReplayFromWindows(f *testing.F) {
	f.Add(0.5, 1e9, 8e8, 1.0, 2e9, uint8(0b1011), uint8(0))
	f.Add(-1.0, -5.0, math.NaN(), -2.0, math.Inf(1), uint8(0xff), uint8(7))
	f.Add(1e300, 1e300, 1e300, 1e-300, 0.0, uint8(1), uint8(200))
	f.Fuzz(func(t *testing.T, cpu, peak, mean, cpuReq, memReq float64, present, starts uint8) {
		nan := math.NaN()
		var ws []history.ReplayWindow
		// Three days of windows, present and starting by the bit patterns.
		for i := range 3 * 288 {
			if present>>(i%8)&1 == 0 {
				continue
			}
			scale := 1 + float64(i%97)/97
			ws = append(ws, history.ReplayWindow{
				Window: history.Window{End: origin.Add(time.Duration(i+1) * history.WindowStep), CPU: cpu * scale, MemoryPeak: peak * scale,
					Throttled: nan, Periods: nan, OOMKills: nan, Start: starts>>(i%8)&1 == 1},
				MemoryMean: mean * scale, CPURequest: cpuReq, MemoryRequest: memReq,
			})
		}
		traces := tracesOf(map[history.ContainerKey][]history.ReplayWindow{{Key: history.Key{Namespace: "ns", Kind: "Deployment", Workload: "w"}, Container: "c"}: ws})
		for _, tr := range traces {
			if err := checkTrace(tr); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Run(traces, DefaultOptions()); err != nil {
			t.Fatal(err)
		}
		var fs ForecastSet
		fs.Step = time.Hour
		if err := fs.Add(traces); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTableListsFewTraces: the table lists traces one by one only up to
// MaxTableTraces; JSON always has them all.
func TestTableListsFewTraces(t *testing.T) {
	for _, n := range []int{2, MaxTableTraces + 1} {
		traces := make([]Trace, n)
		for i := range traces {
			traces[i] = synthetic(2)
			traces[i].Name = fmt.Sprintf("t%03d", i)
		}
		rep, err := Run(traces, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		rep.WriteTable(&b)
		listed := strings.Contains(b.String(), "t001")
		if listed != (n <= MaxTableTraces) || len(rep.Traces) != n || len(rep.Namespaces) != 0 {
			t.Errorf("%d traces: listed %v, %d in the report, %d namespaces", n, listed, len(rep.Traces), len(rep.Namespaces))
		}
		if n > MaxTableTraces && !strings.Contains(b.String(), fmt.Sprintf("(%d traces: -o json lists each)", n)) {
			t.Errorf("%d traces: no note of the omission:\n%s", n, b.String())
		}
	}
}
