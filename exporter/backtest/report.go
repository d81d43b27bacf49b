package backtest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the result of Run.
type Report struct {
	Cadence         string  `json:"cadence"`
	ChangeThreshold float64 `json:"change_threshold"`
	// Groups sum the traces of each source ("borg", "azure").
	Groups []Group `json:"groups"`
	// Namespaces sum the traces read from Prometheus by namespace.
	Namespaces []Group       `json:"namespaces,omitempty"`
	Traces     []TraceResult `json:"traces"`
}

// Group is the pooled score of one source's traces, or of one namespace's.
type Group struct {
	Source    string  `json:"source"`
	Namespace string  `json:"namespace,omitempty"`
	Traces    int     `json:"traces"`
	Scores    []Score `json:"scores"`
}

// MaxTableTraces bounds the traces WriteTable lists one by one; a cluster
// has thousands of containers, and the JSON report has them all.
const MaxTableTraces = 50

// TraceResult is the score of each recommender on one trace.
type TraceResult struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	// PolicyFrom names where UPID's policy for this trace differs from
	// Options.Policy: overrides, labels, annotations; empty means none.
	PolicyFrom []string   `json:"policy_from,omitempty"`
	Scores     []Score    `json:"scores"`
	Decisions  []Decision `json:"decisions,omitempty"`
	acc        []scoreAcc
}

// Decision is one applied change.
type Decision struct {
	Time        time.Time `json:"time"`
	Recommender string    `json:"recommender"`
	CPU         float64   `json:"cpu_cores,omitempty"`
	CPULimit    float64   `json:"cpu_limit_cores,omitempty"`
	Memory      float64   `json:"memory_bytes,omitempty"`
	MemoryLimit float64   `json:"memory_limit_bytes,omitempty"`
}

// Score is one recommender's result over the scored samples (from the
// first decision on). A figure is absent (nil; "-" in the table) when no
// sample scored it: CPU ones without a CPU request in force (unknown, or a
// BestEffort container), memory ones likewise and for CPU-only traces, all
// of them when no sample was scored. 0 is a measured 0, never "nothing".
type Score struct {
	Recommender string `json:"recommender"`
	Samples     int    `json:"samples"`
	// CPUSlack is the mean over samples of max(0, request − usage)/request
	// with usage the window's mean CPU. Under-provisioning is not negative
	// slack: it is counted by the CPU-over-request fields instead.
	CPUSlack *float64 `json:"cpu_slack,omitempty"`
	// CPUOverCoreSeconds sums max(0, usage − request) × window length: CPU
	// time above the request, which a CPU limit at the request would have
	// throttled and a soft cap serves from idle capacity.
	CPUOverCoreSeconds *float64 `json:"cpu_over_request_core_seconds,omitempty"`
	// CPUOverShare is the fraction of samples whose mean is above the request.
	CPUOverShare *float64 `json:"cpu_over_request_share,omitempty"`
	// MemorySlack is like CPUSlack with the window's mean memory.
	MemorySlack *float64 `json:"memory_slack,omitempty"`
	// MemoryOverRequest counts samples whose peak memory exceeds the
	// request; MemoryOverLimit those over the memory limit (an OOM kill).
	MemoryOverRequest *int `json:"memory_over_request_samples,omitempty"`
	MemoryOverLimit   *int `json:"memory_over_limit_samples,omitempty"`
	// OOMKillsObserved counts the samples in which the cluster recorded
	// an OOM kill: the hand-set's of a trace read from Prometheus, which
	// is what ran. A kill needs no peak over the limit in the history (the
	// kernel kills before a scrape sees it; a node out of memory kills
	// below any limit), so MemoryOverLimit can miss it.
	OOMKillsObserved *int `json:"oom_kills_observed,omitempty"`
	// Slack is the mean of CPUSlack and MemorySlack, or the one scored.
	Slack *float64 `json:"slack,omitempty"`
	// Changes is the number of decisions applied (a restart each); for the
	// hand-set, the number of times the trace's own requests changed.
	Changes int `json:"changes"`
	// CPUCoreHours and MemoryGiBHours are what was requested in total.
	CPUCoreHours   *float64 `json:"cpu_request_core_hours,omitempty"`
	MemoryGiBHours *float64 `json:"memory_request_gib_hours,omitempty"`
}

type scoreAcc struct {
	samples            int
	cpuN, cpuOverN     int
	cpuSlack, cpuOverS float64
	cpuSetN            int // samples with a CPU request in force, 0 included
	cpuCoreS           float64
	memN, memSetN      int
	memSlack, memByteS float64
	memOverReq         int
	memOverLimit       int
	changes            int
	// observed: the hand-set of a trace with the cluster's OOM kills.
	observed    bool
	oomObserved int
}

// add scores sample s under ap, which holds the recommender's figures where
// rec says it set them. A request is in force where the recommender set
// one (0 included: a figure like any other) or the trace's own is known
// (above 0); slack and the figures over the request need one above 0.
func (a *scoreAcc) add(s Sample, ap, rec Applied, oom bool) {
	a.samples++
	if s.OOMKill { // shown for the hand-set of an observed trace only
		a.oomObserved++
	}
	sec := s.Duration.Seconds()
	if (rec.CPUOK || ap.CPU > 0) && !math.IsNaN(s.CPU) {
		a.cpuSetN++
		a.cpuCoreS += ap.CPU * sec
	}
	if (rec.MemoryOK || ap.Memory > 0) && !math.IsNaN(s.Memory) {
		a.memSetN++
		a.memByteS += ap.Memory * sec
	}
	if ap.CPU > 0 && !math.IsNaN(s.CPU) {
		a.cpuN++
		a.cpuSlack += math.Max(0, ap.CPU-s.CPU) / ap.CPU
		if s.CPU > ap.CPU {
			a.cpuOverN++
			a.cpuOverS += (s.CPU - ap.CPU) * sec
		}
	}
	if ap.Memory > 0 && !math.IsNaN(s.Memory) {
		a.memN++
		a.memSlack += math.Max(0, ap.Memory-s.Memory) / ap.Memory
		if s.MemoryMax > ap.Memory {
			a.memOverReq++
		}
		if oom {
			a.memOverLimit++
		}
	}
}

func (a *scoreAcc) merge(b scoreAcc) {
	a.samples += b.samples
	a.cpuN += b.cpuN
	a.cpuOverN += b.cpuOverN
	a.cpuSlack += b.cpuSlack
	a.cpuOverS += b.cpuOverS
	a.cpuSetN += b.cpuSetN
	a.cpuCoreS += b.cpuCoreS
	a.memSetN += b.memSetN
	a.memN += b.memN
	a.memSlack += b.memSlack
	a.memByteS += b.memByteS
	a.memOverReq += b.memOverReq
	a.memOverLimit += b.memOverLimit
	a.changes += b.changes
	a.observed = a.observed || b.observed
	a.oomObserved += b.oomObserved
}

func (a *scoreAcc) score(name string) Score {
	s := Score{Recommender: name, Samples: a.samples, Changes: a.changes}
	sig := func(v float64) *float64 { v = sig6(v); return &v }
	var cs, ms float64 // unrounded, for Slack
	if a.cpuN > 0 {
		cs = a.cpuSlack / float64(a.cpuN)
		s.CPUSlack, s.CPUOverShare, s.CPUOverCoreSeconds = sig(cs), sig(float64(a.cpuOverN)/float64(a.cpuN)), sig(a.cpuOverS)
	}
	if a.cpuSetN > 0 {
		s.CPUCoreHours = sig(a.cpuCoreS / 3600)
	}
	if a.memN > 0 {
		ms = a.memSlack / float64(a.memN)
		or, ol := a.memOverReq, a.memOverLimit
		s.MemorySlack, s.MemoryOverRequest, s.MemoryOverLimit = sig(ms), &or, &ol
	}
	if a.memSetN > 0 {
		s.MemoryGiBHours = sig(a.memByteS / 3600 / (1 << 30))
	}
	switch {
	case a.cpuN > 0 && a.memN > 0:
		s.Slack = sig((cs + ms) / 2)
	case a.cpuN > 0:
		s.Slack = sig(cs)
	case a.memN > 0:
		s.Slack = sig(ms)
	}
	if a.observed {
		n := a.oomObserved
		s.OOMKillsObserved = &n
	}
	return s
}

func buildReport(results []TraceResult, opts Options) *Report {
	r := &Report{Cadence: opts.Cadence.String(), ChangeThreshold: opts.ChangeThreshold, Traces: results}
	r.Groups = pool(results, func(tr TraceResult) (Group, bool) { return Group{Source: tr.Source}, true })
	r.Namespaces = pool(results, func(tr TraceResult) (Group, bool) {
		ns, _, found := strings.Cut(tr.Name, "/")
		return Group{Source: tr.Source, Namespace: ns}, found && tr.Source == SourcePrometheus
	})
	return r
}

// pool sums the results of the traces that key puts in the same group,
// in the groups' order.
func pool(results []TraceResult, key func(TraceResult) (Group, bool)) []Group {
	type acc struct {
		g     Group
		accs  []scoreAcc
		names []string
	}
	byKey := map[[2]string]*acc{}
	var keys [][2]string
	for _, res := range results {
		g, ok := key(res)
		if !ok {
			continue
		}
		k := [2]string{g.Source, g.Namespace}
		a := byKey[k]
		if a == nil {
			a = &acc{g: g}
			byKey[k] = a
			keys = append(keys, k)
		}
		a.g.Traces++
		for j, x := range res.acc {
			if j >= len(a.accs) {
				a.accs = append(a.accs, scoreAcc{})
				a.names = append(a.names, res.Scores[j].Recommender)
			}
			a.accs[j].merge(x)
		}
	}
	slices.SortFunc(keys, func(x, y [2]string) int { return cmp.Or(cmp.Compare(x[0], y[0]), cmp.Compare(x[1], y[1])) })
	var out []Group
	for _, k := range keys {
		a := byKey[k]
		for j := range a.accs {
			a.g.Scores = append(a.g.Scores, a.accs[j].score(a.names[j]))
		}
		out = append(out, a.g)
	}
	return out
}

// hours turns seconds into hours; nil stays nil.
func hours(sec *float64) *float64 {
	if sec == nil {
		return nil
	}
	h := *sec / 3600
	return &h
}

func fmtPtr[T int | float64](p *T, format string) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf(format, *p)
}

// WriteTable writes the report as aligned text: the pooled scores per
// source, per namespace (from Prometheus), then per trace when there are
// at most MaxTableTraces.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "rightsizing replay: decisions every %s, change threshold %.0f%%\n\n", r.Cadence, r.ChangeThreshold*100)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// The column of the kills the cluster recorded only with traces that
	// hold them (from Prometheus); CSV traces have none to show.
	oomCol := r.observed()
	header := "source\ttrace\trecommender\tsamples\tslack\tcpu_slack\tcpu_over_core_h\tcpu_over_share\tmem_slack\tmem_over_req\tmem_over_limit\t"
	if oomCol {
		header += "oom_observed\t"
	}
	header += "changes\tcpu_core_h\tmem_gib_h\t\n"
	row := func(src, trace string, s Score) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t",
			src, trace, s.Recommender, s.Samples, fmtPtr(s.Slack, "%.3f"), fmtPtr(s.CPUSlack, "%.3f"),
			fmtPtr(hours(s.CPUOverCoreSeconds), "%.3f"), fmtPtr(s.CPUOverShare, "%.4f"),
			fmtPtr(s.MemorySlack, "%.3f"), fmtPtr(s.MemoryOverRequest, "%d"), fmtPtr(s.MemoryOverLimit, "%d"))
		if oomCol {
			fmt.Fprintf(tw, "%s\t", fmtPtr(s.OOMKillsObserved, "%d"))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t\n", s.Changes, fmtPtr(s.CPUCoreHours, "%.1f"), fmtPtr(s.MemoryGiBHours, "%.1f"))
	}
	fmt.Fprint(tw, header)
	for _, g := range r.Groups {
		for _, s := range g.Scores {
			row(g.Source, fmt.Sprintf("(%d traces)", g.Traces), s)
		}
	}
	tw.Flush()
	if len(r.Namespaces) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, strings.Replace(header, "trace", "namespace", 1))
		for _, g := range r.Namespaces {
			for _, s := range g.Scores {
				row(g.Source, fmt.Sprintf("%s (%d)", g.Namespace, g.Traces), s)
			}
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if len(r.Traces) > MaxTableTraces {
		fmt.Fprintf(w, "(%d traces: -o json lists each)\n", len(r.Traces))
		return
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, header)
	for _, t := range r.Traces {
		for _, s := range t.Scores {
			row(t.Source, strings.TrimPrefix(strings.TrimPrefix(t.Name, "borg/"), "azure/"), s)
		}
	}
	tw.Flush()
}

// observed: some trace holds the cluster's OOM kills.
func (r *Report) observed() bool {
	for _, g := range r.Groups {
		for _, s := range g.Scores {
			if s.OOMKillsObserved != nil {
				return true
			}
		}
	}
	return false
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// sig6 rounds to six significant digits: the report's precision, and what
// keeps golden files stable across architectures whose floating point
// fuses multiply-adds differently.
func sig6(v float64) float64 {
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 6, 64), 64)
	if err != nil {
		return v
	}
	return r
}
