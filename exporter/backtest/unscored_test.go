package backtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestNothingScoredIsAbsent: a figure no sample scored is absent (nil,
// "-" in the table, left out of the JSON), never a 0 that reads as a
// measurement: a container without requests (BestEffort) for the
// hand-set, a trace no longer than the decision period for everyone.
func TestNothingScoredIsAbsent(t *testing.T) {
	cases := []struct {
		name  string
		trace func() Trace
		rec   string
		// which figures are there: CPU (slack, over, share, core-hours),
		// memory (slack, over, GiB-hours), and slack
		cpu, mem, slack bool
		row             string // the table's figures from samples to mem_gib_h
	}{
		{name: "BestEffort hand-set", rec: NameHandSet,
			trace: func() Trace { return edited(true, func(s *Sample) { s.CPURequest, s.MemoryRequest = 0, 0 }) },
			row:   "576 - - - - - - - 0 0 - -"},
		// The recommenders size it from its usage: the VPA memory too.
		{name: "BestEffort VPA", rec: NameVPA, cpu: true, mem: true, slack: true,
			trace: func() Trace { return edited(true, func(s *Sample) { s.CPURequest, s.MemoryRequest = 0, 0 }) }},
		// Slack is the one scored, not its mean with a 0.
		{name: "memory request only", rec: NameHandSet, mem: true, slack: true,
			trace: func() Trace { return edited(true, func(s *Sample) { s.CPURequest = 0 }) },
			row:   "576 0.500 - - - 0.500 0 0 0 0 - 96.0"},
		{name: "CPU request only", rec: NameHandSet, cpu: true, slack: true,
			trace: func() Trace { return edited(true, func(s *Sample) { s.MemoryRequest = 0 }) },
			row:   "576 0.500 0.500 0.000 0.0000 - - - 0 0 48.0 -"},
		{name: "a day: nothing scored", rec: NameUPID,
			trace: func() Trace { return synthetic(1) },
			row:   "0 - - - - - - - 0 - -"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := Run([]Trace{c.trace()}, DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			var s Score
			for _, x := range rep.Traces[0].Scores {
				if x.Recommender == c.rec {
					s = x
				}
			}
			if got := (s.CPUSlack != nil && s.CPUOverCoreSeconds != nil && s.CPUOverShare != nil && s.CPUCoreHours != nil); got != c.cpu ||
				(s.CPUSlack == nil) != (s.CPUCoreHours == nil) {
				t.Errorf("CPU figures %v %v %v %v, want them %v", s.CPUSlack, s.CPUOverCoreSeconds, s.CPUOverShare, s.CPUCoreHours, c.cpu)
			}
			if got := (s.MemorySlack != nil && s.MemoryOverRequest != nil && s.MemoryGiBHours != nil); got != c.mem || (s.MemorySlack == nil) != (s.MemoryGiBHours == nil) {
				t.Errorf("memory figures %v %v %v, want them %v", s.MemorySlack, s.MemoryOverRequest, s.MemoryGiBHours, c.mem)
			}
			if (s.Slack != nil) != c.slack {
				t.Errorf("slack %v, want it %v", s.Slack, c.slack)
			}
			if c.slack && !c.cpu && *s.Slack != *s.MemorySlack || c.slack && !c.mem && *s.Slack != *s.CPUSlack {
				t.Errorf("slack %v, want the one figure scored", *s.Slack)
			}
			if c.row != "" {
				var b bytes.Buffer
				rep.WriteTable(&b)
				want := c.rec + " " + c.row
				if !strings.Contains(strings.Join(strings.Fields(b.String()), " "), want) {
					t.Errorf("table without a row ending %q:\n%s", want, b.String())
				}
			}
			var js bytes.Buffer
			if err := rep.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			var back struct {
				Traces []struct{ Scores []map[string]any }
			}
			if err := json.Unmarshal(js.Bytes(), &back); err != nil {
				t.Fatal(err)
			}
			for _, m := range back.Traces[0].Scores {
				if m["recommender"] != c.rec {
					continue
				}
				for key, want := range map[string]bool{"cpu_slack": c.cpu, "cpu_request_core_hours": c.cpu, "memory_slack": c.mem, "slack": c.slack} {
					if _, got := m[key]; got != want {
						t.Errorf("JSON %s present %v, want %v: %v", key, got, want, m)
					}
				}
			}
		})
	}
}

// TestNoRequestFigureIsZero: a request of 0 a recommender set is a figure
// (krr with --cpu_min_value 0): 0 core-hours requested, not "-"; only the
// trace's own 0 is unknown.
func TestNoRequestFigureIsZero(t *testing.T) {
	opts := DefaultOptions()
	opts.Extra = []func() Rightsizer{func() Rightsizer { return &fixed{a: Applied{CPUOK: true, MemoryOK: true}} }}
	tr := synthetic(3)
	rep, err := Run([]Trace{tr}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Traces[0].Scores[4]
	if s.CPUCoreHours == nil || *s.CPUCoreHours != 0 || s.MemoryGiBHours == nil || *s.MemoryGiBHours != 0 || s.CPUSlack != nil {
		t.Errorf("%s requesting 0: %v core-hours, %v GiB-hours, CPU slack %v; want 0, 0 and none (a slack of 0 requested is undefined)",
			s.Recommender, fmtPtr(s.CPUCoreHours, "%v"), fmtPtr(s.MemoryGiBHours, "%v"), fmtPtr(s.CPUSlack, "%v"))
	}
}
