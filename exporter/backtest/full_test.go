package backtest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/upid-dev/upid/exporter/recommend"
)

// The full-data runs are not part of the default test run: they read the
// shared data set. Set UPID_BACKTEST_DATA to its directory and, to keep the
// outputs, UPID_BACKTEST_OUT to a directory for backtest.txt and
// backtest.json:
//
//	UPID_BACKTEST_DATA=/work/shared/data go test ./exporter/backtest -run TestFullData -v
func fullData(t *testing.T) []Trace {
	dir := os.Getenv("UPID_BACKTEST_DATA")
	if dir == "" {
		t.Skip("UPID_BACKTEST_DATA not set")
	}
	traces, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return traces
}

func TestFullData(t *testing.T) {
	traces := fullData(t)
	rep, err := Run(traces, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	rep.WriteTable(os.Stdout)
	if out := os.Getenv("UPID_BACKTEST_OUT"); out != "" {
		for name, write := range map[string]func(f *os.File) error{
			"backtest.txt":  func(f *os.File) error { rep.WriteTable(f); return nil },
			"backtest.json": func(f *os.File) error { return rep.WriteJSON(f) },
		} {
			f, err := os.Create(filepath.Join(out, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := write(f); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
}

// TestFullDataSensitivity reruns the replay with one thing changed at a
// time: the assumed unit scale (which only moves absolute floors and
// histogram resolution) and UPID's main knobs, to show what each costs.
func TestFullDataSensitivity(t *testing.T) {
	traces := fullData(t)
	type variant struct {
		name  string
		scale float64
		opts  func(*Options)
	}
	variants := []variant{
		{name: "default"},
		{name: "units x0.1", scale: 0.1},
		{name: "units x10", scale: 10},
		{name: "upid cpu margin 0.1", opts: func(o *Options) { o.Policy.CPUMargin = 0.1 }},
		{name: "upid cpu half-life 7d", opts: func(o *Options) { o.Policy.CPUHalfLife = 7 * 24 * time.Hour }},
		{name: "upid cpu p0.95", opts: func(o *Options) { o.Policy.CPUPercentile = 0.95 }},
		{name: "upid cpu p0.8", opts: func(o *Options) { o.Policy.CPUPercentile = 0.8 }},
		{name: "upid memory margin 0.05", opts: func(o *Options) { o.Policy.MemoryMargin = 0.05 }},
		{name: "upid memory margin 0.15", opts: func(o *Options) { o.Policy.MemoryMargin = 0.15 }},
		{name: "upid window 7d", opts: func(o *Options) { o.Policy.Window = 7 * 24 * time.Hour }},
		{name: "upid no short-history margin", opts: func(o *Options) { o.Policy.ShortHistoryMargin = 0 }},
		{name: "upid a priori (p0.9+10%, 7d)", opts: func(o *Options) {
			o.Policy.CPUMargin = 0.1
			o.Policy.CPUHalfLife = 7 * 24 * time.Hour
		}},
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "variant\tsource\trecommender\tslack\tcpu_slack\tcpu_over_core_h\tcpu_over_share\tmem_slack\tmem_over_req\tchanges\t\n")
	for _, v := range variants {
		trs := traces
		if v.scale != 0 {
			trs = make([]Trace, len(traces))
			for i, tr := range traces {
				tr.Samples = append([]Sample(nil), tr.Samples...)
				tr.Rescale(v.scale, v.scale)
				trs[i] = tr
			}
		}
		opts := DefaultOptions()
		opts.Policy = recommend.DefaultPolicy()
		if v.opts != nil {
			v.opts(&opts)
		}
		rep, err := Run(trs, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range rep.Groups {
			for _, s := range g.Scores {
				if s.Recommender == NameHandSet || (s.Recommender != NameUPID && v.opts != nil) {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", v.name, g.Source, s.Recommender,
					fmtPtr(s.Slack, "%.3f"), fmtPtr(s.CPUSlack, "%.3f"), fmtPtr(hours(s.CPUOverCoreSeconds), "%.1f"), fmtPtr(s.CPUOverShare, "%.4f"),
					fmtPtr(s.MemorySlack, "%.3f"), fmtPtr(s.MemoryOverRequest, "%d"), s.Changes)
			}
		}
	}
	tw.Flush()
}
