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
// first decision on). Memory fields are absent for CPU-only traces.
type Score struct {
	Recommender string `json:"recommender"`
	Samples     int    `json:"samples"`
	// CPUSlack is the mean over samples of max(0, request − usage)/request
	// with usage the window's mean CPU. Under-provisioning is not negative
	// slack: it is counted by the CPU-over-request fields instead.
	CPUSlack float64 `json:"cpu_slack"`
	// CPUOverCoreSeconds sums max(0, usage − request) × window length: CPU
	// time above the request, which a CPU limit at the request would have
	// throttled and a soft cap serves from idle capacity.
	CPUOverCoreSeconds float64 `json:"cpu_over_request_core_seconds"`
	// CPUOverShare is the fraction of samples whose mean is above the request.
	CPUOverShare float64 `json:"cpu_over_request_share"`
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
	// Slack is the mean of CPUSlack and MemorySlack (CPUSlack alone for
	// CPU-only traces).
	Slack float64 `json:"slack"`
	// Changes is the number of decisions applied (a restart each); for the
	// hand-set, the number of times the trace's own requests changed.
	Changes int `json:"changes"`
	// CPUCoreHours and MemoryGiBHours are what was requested in total.
	CPUCoreHours   float64  `json:"cpu_request_core_hours"`
	MemoryGiBHours *float64 `json:"memory_request_gib_hours,omitempty"`
}

type scoreAcc struct {
	samples            int
	cpuN, cpuOverN     int
	cpuSlack, cpuOverS float64
	cpuCoreS           float64
	memN               int
	memSlack, memByteS float64
	memOverReq         int
	memOverLimit       int
	changes            int
	// observed: the hand-set of a trace with the cluster's OOM kills.
	observed    bool
	oomObserved int
}

func (a *scoreAcc) add(s Sample, ap Applied, oom bool) {
	a.samples++
	if s.OOMKill { // shown for the hand-set of an observed trace only
		a.oomObserved++
	}
	sec := s.Duration.Seconds()
	if ap.CPU > 0 && !math.IsNaN(s.CPU) {
		a.cpuN++
		a.cpuSlack += math.Max(0, ap.CPU-s.CPU) / ap.CPU
		if s.CPU > ap.CPU {
			a.cpuOverN++
			a.cpuOverS += (s.CPU - ap.CPU) * sec
		}
		a.cpuCoreS += ap.CPU * sec
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
		a.memByteS += ap.Memory * sec
	}
}

func (a *scoreAcc) merge(b scoreAcc) {
	a.samples += b.samples
	a.cpuN += b.cpuN
	a.cpuOverN += b.cpuOverN
	a.cpuSlack += b.cpuSlack
	a.cpuOverS += b.cpuOverS
	a.cpuCoreS += b.cpuCoreS
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
	s := Score{Recommender: name, Samples: a.samples, Changes: a.changes,
		CPUOverCoreSeconds: sig6(a.cpuOverS), CPUCoreHours: sig6(a.cpuCoreS / 3600)}
	if a.cpuN > 0 {
		s.CPUSlack = a.cpuSlack / float64(a.cpuN)
		s.CPUOverShare = sig6(float64(a.cpuOverN) / float64(a.cpuN))
	}
	s.Slack = s.CPUSlack
	if a.memN > 0 {
		ms := a.memSlack / float64(a.memN)
		gh := sig6(a.memByteS / 3600 / (1 << 30))
		or, ol := a.memOverReq, a.memOverLimit
		s.Slack = sig6((s.CPUSlack + ms) / 2)
		ms = sig6(ms)
		s.MemorySlack, s.MemoryGiBHours, s.MemoryOverRequest, s.MemoryOverLimit = &ms, &gh, &or, &ol
	} else {
		s.Slack = sig6(s.Slack)
	}
	s.CPUSlack = sig6(s.CPUSlack)
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.3f\t%.3f\t%.3f\t%.4f\t%s\t%s\t%s\t",
			src, trace, s.Recommender, s.Samples, s.Slack, s.CPUSlack, s.CPUOverCoreSeconds/3600, s.CPUOverShare,
			fmtPtr(s.MemorySlack, "%.3f"), fmtPtr(s.MemoryOverRequest, "%d"), fmtPtr(s.MemoryOverLimit, "%d"))
		if oomCol {
			fmt.Fprintf(tw, "%s\t", fmtPtr(s.OOMKillsObserved, "%d"))
		}
		fmt.Fprintf(tw, "%d\t%.1f\t%s\t\n", s.Changes, s.CPUCoreHours, fmtPtr(s.MemoryGiBHours, "%.1f"))
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
