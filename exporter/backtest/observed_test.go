package backtest

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/recommend"
)

const gib = 1 << 30

// recorder applies its figures at the first decision, as fixed does, and
// counts the samples it is told were OOM-killed.
type recorder struct {
	fixed
	ooms *int
}

func (r *recorder) Name() string { return "recorder" }

func (r *recorder) Observe(_ Sample, _ Applied, oom bool) {
	if oom {
		*r.ooms++
	}
}

// TestObservedLimitsAndKills: a trace read from Prometheus is scored
// against its own memory limit (none: no over-limit kill), the kills the
// cluster recorded are the hand-set's, and a recommender is fed a recorded
// kill only when its own limit would not have prevented it.
func TestObservedLimitsAndKills(t *testing.T) {
	kill := func(limit float64) func(*Sample) {
		return func(s *Sample) { s.OOMKill, s.OOMMemoryLimit = true, limit }
	}
	cases := []struct {
		name     string
		observed bool
		limit    float64       // the trace's own memory limit
		killAt   []int         // hours of the recorded kills
		kill     func(*Sample) // what each recorded
		applied  float64       // the recorder's memory limit from 24 h on
		overLim  int           // the hand-set's samples over its limit
		seen     *int          // the hand-set's recorded kills; nil: none shown
		fed      int           // kills fed to the recorder (up to the last decision, 48 h)
	}{
		// A CSV trace has no limit of its own: its request is taken as it,
		// and the peak (1.2 GiB) over it (1 GiB) is a kill every sample.
		{name: "CSV trace: limit = request", applied: 4 * gib, overLim: 576, fed: 288},
		{name: "no limit: no over-limit kill", observed: true, overLim: 0, seen: ptr(0)},
		{name: "limit under the peak", observed: true, limit: 1.1 * gib, overLim: 576, seen: ptr(0), applied: 4 * gib, fed: 288},
		// Recorded at 12 h (hand-set's 4 GiB in force) and 36 h (the
		// recorder's): the same limit would have been hit both times.
		{name: "kills under the same limit", observed: true, limit: 4 * gib, killAt: []int{12, 36}, kill: kill(4 * gib),
			applied: 4 * gib, seen: ptr(1), fed: 2},
		{name: "a lower limit is killed too", observed: true, limit: 4 * gib, killAt: []int{12, 36}, kill: kill(4 * gib),
			applied: 3 * gib, seen: ptr(1), fed: 2},
		// A higher limit might have lived: only the peak can tell, and
		// it is under the limit.
		{name: "a higher limit might have lived", observed: true, limit: 4 * gib, killAt: []int{12, 36}, kill: kill(4 * gib),
			applied: 8 * gib, seen: ptr(1), fed: 1},
		{name: "no limit is not killed at one", observed: true, limit: 4 * gib, killAt: []int{12, 36}, kill: kill(4 * gib),
			applied: 0, seen: ptr(1), fed: 1},
		// A node out of memory kills whatever the limit.
		{name: "node OOM", observed: true, killAt: []int{12, 36}, kill: kill(0), applied: 8 * gib, seen: ptr(1), fed: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := edited(c.observed, func(s *Sample) {
				s.MemoryRequest, s.MemoryLimit = gib, c.limit
				for _, h := range c.killAt {
					if s.Time.Equal(origin.Add(time.Duration(h) * time.Hour)) {
						c.kill(s)
					}
				}
			})
			ooms := 0
			opts := DefaultOptions()
			opts.Extra = []func() Rightsizer{func() Rightsizer {
				return &recorder{fixed: fixed{a: Applied{Memory: 2 * gib, MemoryLimit: c.applied, MemoryOK: true}}, ooms: &ooms}
			}}
			rep, err := Run([]Trace{tr}, opts)
			if err != nil {
				t.Fatal(err)
			}
			hand := rep.Traces[0].Scores[0]
			if hand.Recommender != NameHandSet || *hand.MemoryOverLimit != c.overLim {
				t.Errorf("hand-set over its limit in %d samples, want %d", *hand.MemoryOverLimit, c.overLim)
			}
			if (hand.OOMKillsObserved == nil) != (c.seen == nil) || (c.seen != nil && *hand.OOMKillsObserved != *c.seen) {
				t.Errorf("hand-set's recorded kills %v, want %v", fmtPtr(hand.OOMKillsObserved, "%d"), fmtPtr(c.seen, "%d"))
			}
			// The source's pool is this one trace.
			if g := rep.Groups[0].Scores[0]; fmtPtr(g.OOMKillsObserved, "%d") != fmtPtr(hand.OOMKillsObserved, "%d") {
				t.Errorf("pooled hand-set's recorded kills %v, the trace's %v", fmtPtr(g.OOMKillsObserved, "%d"), fmtPtr(hand.OOMKillsObserved, "%d"))
			}
			for _, s := range rep.Traces[0].Scores[1:] {
				if s.OOMKillsObserved != nil {
					t.Errorf("%s shows the cluster's kills as its own", s.Recommender)
				}
			}
			if ooms != c.fed {
				t.Errorf("recorder fed %d kills, want %d", ooms, c.fed)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// edited is synthetic(3), read from Prometheus (observed) or not, with
// edit applied to every sample.
func edited(observed bool, edit func(*Sample)) Trace {
	tr := synthetic(3)
	tr.Observed = observed
	for i := range tr.Samples {
		edit(&tr.Samples[i])
	}
	return tr
}

// decisions replays tr and returns rec's decisions.
func decisions(t *testing.T, tr Trace, opts Options, rec string) []Decision {
	t.Helper()
	opts.KeepDecisions = true
	rep, err := Run([]Trace{tr}, opts)
	if err != nil {
		t.Fatal(err)
	}
	var out []Decision
	for _, d := range rep.Traces[0].Decisions {
		if d.Recommender == rec {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s decision", rec)
	}
	return out
}

// firstDecision is rec's first decision with the default options.
func firstDecision(t *testing.T, tr Trace, rec string) Decision {
	t.Helper()
	return decisions(t, tr, DefaultOptions(), rec)[0]
}

// TestObservedThrottling: UPID reads the throttling the cluster recorded
// under the trace's own CPU limit, as the exporter does: the usage it saw
// was capped, and its CPU figure grows by the share throttled. Once its
// policy removed the limit (by default) the throttling of the history is
// not under its limit any more; without a limit, or from a CSV trace
// (which records none), it reads nothing.
func TestObservedThrottling(t *testing.T) {
	base := firstDecision(t, synthetic(3), NameUPID).CPU
	cases := []struct {
		name        string
		observed    bool
		limits      recommend.LimitPolicy // UPID's; empty: the default
		limit       float64
		throttle    float64 // throttled share of the periods
		first, last float64 // UPID's CPU at its first and last decision, × base
	}{
		{name: "no throttling", observed: true, limit: 0.6, first: 1, last: 1},
		{name: "half the periods throttled", observed: true, limit: 0.6, throttle: 0.5, first: 1.5, last: 1},
		// A policy that keeps the limit (scaled) stays under it.
		{name: "throttled under a kept limit", observed: true, limits: recommend.LimitScale, limit: 0.6, throttle: 0.5, first: 1.5, last: 1.5},
		{name: "no CPU limit", observed: true, throttle: 0.5, first: 1, last: 1},
		{name: "CSV trace", limit: 0.6, throttle: 0.5, first: 1, last: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := edited(c.observed, func(s *Sample) {
				s.CPULimit = c.limit
				if c.throttle > 0 {
					s.Periods, s.ThrottledPeriods = 3000, 3000*c.throttle
				}
			})
			// Within 3 %: a later decision reads more days, with less of
			// the short-history margin.
			opts := DefaultOptions()
			if c.limits != "" {
				opts.Policy.Limits = c.limits
			}
			ds := decisions(t, tr, opts, NameUPID)
			if first, last := ds[0].CPU, ds[len(ds)-1].CPU; math.Abs(first-c.first*base) > 0.03*base || math.Abs(last-c.last*base) > 0.03*base {
				t.Errorf("UPID's CPU %v first and %v last, want %v and %v × %v", first, last, c.first, c.last, base)
			}
		})
	}
}

// TestObservedLimitRatios: the limits each recommender sets on a trace
// with its own: UPID scales them by its policy (the CPU one removed by
// default), the VPA keeps their ratio to the request and sets none where
// there was none, krr sets the memory limit to the request and no CPU
// limit. A CSV trace's memory limit is its request.
func TestObservedLimitRatios(t *testing.T) {
	cases := []struct {
		name             string
		observed         bool
		limits           recommend.LimitPolicy // UPID's; empty: the default
		cpuLimit, memLim float64               // × the requests (1 core, 2 GiB)
		// want memory limit ÷ memory and CPU limit ÷ CPU, by recommender
		mem, cpu map[string]float64
	}{
		{name: "CSV trace", cpuLimit: 2, memLim: 2,
			mem: map[string]float64{NameUPID: 1, NameVPA: 1, NameKRR: 1}, cpu: map[string]float64{NameUPID: 0, NameVPA: 0, NameKRR: 0}},
		{name: "no limits", observed: true,
			mem: map[string]float64{NameUPID: 0, NameVPA: 0, NameKRR: 1}, cpu: map[string]float64{NameUPID: 0, NameVPA: 0, NameKRR: 0}},
		{name: "limits twice the requests", observed: true, cpuLimit: 2, memLim: 2,
			mem: map[string]float64{NameUPID: 2, NameVPA: 2, NameKRR: 1}, cpu: map[string]float64{NameUPID: 0, NameVPA: 2, NameKRR: 0}},
		{name: "UPID scaling the CPU limit too", observed: true, limits: recommend.LimitScale, cpuLimit: 2, memLim: 2,
			mem: map[string]float64{NameUPID: 2}, cpu: map[string]float64{NameUPID: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := edited(c.observed, func(s *Sample) {
				s.CPULimit, s.MemoryLimit = c.cpuLimit*s.CPURequest, c.memLim*s.MemoryRequest
			})
			opts := DefaultOptions()
			if c.limits != "" {
				opts.Policy.Limits = c.limits
			}
			for rec, want := range c.mem {
				d := decisions(t, tr, opts, rec)[0]
				if got := d.MemoryLimit / d.Memory; math.Abs(got-want) > 1e-9 {
					t.Errorf("%s: memory limit %v for %v, want × %v", rec, d.MemoryLimit, d.Memory, want)
				}
				if got := d.CPULimit / d.CPU; math.Abs(got-c.cpu[rec]) > 1e-9 {
					t.Errorf("%s: CPU limit %v for %v, want × %v", rec, d.CPULimit, d.CPU, c.cpu[rec])
				}
			}
		})
	}
}

// TestTraceBuilderObserved: a window's limits, kills and throttling reach
// its sample as the exporter reads them (exporter.sampleOf): a kill is an
// increase of at least a half, and throttling counts only with periods.
func TestTraceBuilderObserved(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name string
		set  func(w *history.ReplayWindow)
		want Sample
	}{
		{name: "nothing recorded", set: func(*history.ReplayWindow) {}, want: Sample{}},
		{name: "limits", set: func(w *history.ReplayWindow) { w.CPULimit, w.MemoryLimit = 2, 3<<30 },
			want: Sample{CPULimit: 2, MemoryLimit: 3 << 30}},
		{name: "a kill under a limit", set: func(w *history.ReplayWindow) { w.OOMKills, w.OOMMemoryLimit = 1, 1<<30 },
			want: Sample{OOMKill: true, OOMMemoryLimit: 1 << 30}},
		{name: "a kill, limit unknown", set: func(w *history.ReplayWindow) { w.OOMKills = 2 }, want: Sample{OOMKill: true}},
		{name: "extrapolation noise is no kill", set: func(w *history.ReplayWindow) { w.OOMKills, w.OOMMemoryLimit = 0.4, 1<<30 }, want: Sample{}},
		{name: "throttling", set: func(w *history.ReplayWindow) { w.Throttled, w.Periods = 100, 3000 },
			want: Sample{ThrottledPeriods: 100, Periods: 3000}},
		{name: "throttled without periods", set: func(w *history.ReplayWindow) { w.Throttled = 100 }, want: Sample{}},
		{name: "negative limits are none", set: func(w *history.ReplayWindow) { w.CPULimit, w.MemoryLimit = -1, -1 }, want: Sample{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := history.ReplayWindow{
				Window:     history.Window{End: origin.Add(history.WindowStep), CPU: 0.5, MemoryPeak: 100, Throttled: nan, Periods: nan, OOMKills: nan, OOMMemoryLimit: nan},
				MemoryMean: 80, CPURequest: 1, MemoryRequest: 200, CPULimit: nan, MemoryLimit: nan,
			}
			c.set(&w)
			got := tracesOf(map[history.ContainerKey][]history.ReplayWindow{{Key: history.Key{Namespace: "a", Kind: "Deployment", Workload: "api"}, Container: "app"}: {w}})
			if len(got) != 1 || !got[0].Observed {
				t.Fatalf("traces %+v, want one, observed", got)
			}
			want := c.want
			want.Time, want.Duration, want.CPU, want.CPUMax, want.Memory, want.MemoryMax = origin, history.WindowStep, 0.5, 0.5, 80, 100
			want.CPURequest, want.MemoryRequest = 1, 200
			if s := got[0].Samples[0]; s != want {
				t.Errorf("sample %+v, want %+v", s, want)
			}
		})
	}
}

// TestUPIDReadsTheKilledLimit: UPID sizes memory above the limit a kill
// proved too little, as the exporter does: the replay's own limit when the
// peak crossed it, the killed pod's when the cluster recorded the kill,
// and the peak when no limit is known (the node ran out of memory).
func TestUPIDReadsTheKilledLimit(t *testing.T) {
	p := DefaultOptions().Policy
	bump := func(base float64) float64 { return math.Max(base*p.OOMBumpRatio, base+p.OOMMinBump) }
	const peak = 1.2 * gib
	cases := []struct {
		name    string
		applied float64 // the memory limit in force in the replay
		kill    bool    // the cluster recorded a kill ...
		killed  float64 // ... of a pod with this limit
		base    float64 // what the kill proved too little
	}{
		{name: "the peak crossed the replay's limit", applied: gib, base: peak},
		{name: "recorded under a higher limit", applied: 3 * gib, kill: true, killed: 4 * gib, base: 4 * gib},
		{name: "recorded, and the replay's limit crossed too", applied: gib, kill: true, killed: 0.5 * gib, base: peak},
		{name: "node out of memory", applied: 3 * gib, kill: true, base: peak},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := newUPID(p, p)
			a := Applied{CPU: 1, Memory: gib, MemoryLimit: c.applied, CPUOK: true, MemoryOK: true}
			// A day at a 1.2 GiB peak, with one recorded kill at noon.
			for _, s := range synthetic(1).Samples {
				if s.Time.Equal(origin.Add(12 * time.Hour)) {
					s.OOMKill, s.OOMMemoryLimit = c.kill, c.killed
				}
				u.Observe(s, a, overLimit(s, a) || killedUnder(s, a))
			}
			rec, _ := u.Recommend(origin.Add(24*time.Hour), a)
			if want := bump(c.base); !rec.MemoryOK || rec.Memory < want || rec.Memory > want+mib {
				t.Errorf("UPID's memory %.0f MiB, want %.0f MiB: the bump over %.0f MiB", rec.Memory/mib, want/mib, c.base/mib)
			}
		})
	}
}

// TestTableObservedColumn: the table shows the kills the cluster recorded
// in a column of its own, the hand-set's, only when a trace holds them: a
// CSV report keeps its columns.
func TestTableObservedColumn(t *testing.T) {
	for _, observed := range []bool{false, true} {
		tr := edited(observed, func(s *Sample) {
			s.OOMKill = s.Time.Equal(origin.Add(36 * time.Hour))
		})
		rep, err := Run([]Trace{tr}, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		rep.WriteTable(&b)
		lines := strings.Split(b.String(), "\n")
		if got := strings.Contains(lines[2], "mem_over_limit  oom_observed  changes"); got != observed {
			t.Errorf("observed %v: column oom_observed %v:\n%s", observed, got, b.String())
		}
		if !observed {
			continue
		}
		// mem_over_limit, oom_observed, changes: 0, 1, 0 for the
		// hand-set; the others have no figure of their own.
		for _, l := range lines[3:7] {
			f := strings.Fields(l)
			want := "-"
			if f[3] == NameHandSet {
				want = "1"
			}
			if len(f) != 16 || f[12] != want { // "(1 traces)" is two fields
				t.Errorf("row %q: oom_observed %q, want %q", l, f[12], want)
			}
		}
	}
}
