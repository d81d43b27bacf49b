package backtest

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/upid-dev/upid/exporter/recommend"
)

// Applied is what a recommender recommends or has put in place: requests
// in cores and bytes, and the limits (0: none). CPU limits are not scored:
// the CSV traces' CPU is soft-capped (Borg) or a whole VM (Azure), and a
// trace from Prometheus has its own CPU limit only so that UPID reads the
// throttling under it as the exporter does (the VPA scales it with the
// request, krr sets none). CPUOK and MemoryOK say which figures are set
// (with their limits); where one is false (a recommender with too little
// history, a trace without memory) the trace's own applies. Only
// the flag means "no figure": 0 is a request like any other (krr with
// --cpu_min_value 0 recommends it for an idle container), and read as
// "none" it would leave the trace's request in force and score the
// recommender on figures it never gave.
type Applied struct {
	CPU, CPULimit, Memory, MemoryLimit float64
	CPUOK, MemoryOK                    bool
}

// Rightsizer is a recommender under test. The replay calls Observe with
// each sample once it has ended, in time order, and Recommend at each
// decision time; it never shows a sample that ends after the decision.
type Rightsizer interface {
	Name() string
	// Observe receives a finished sample, what was applied while it ran,
	// and whether it was OOM-killed under that: its peak memory crossed
	// the memory limit then in force, or the cluster recorded a kill
	// (s.OOMKill) that this limit would not have prevented (see
	// killedUnder).
	Observe(s Sample, applied Applied, oom bool)
	// Recommend returns the resources recommended from now on given the
	// current ones (both figures set), with CPUOK and MemoryOK false for a
	// resource it has no figure for, and whether they should be applied
	// now, by the recommender's own update rule.
	Recommend(now time.Time, current Applied) (Applied, bool)
}

// Options control Run.
type Options struct {
	// Cadence between decisions; the first is one Cadence after a trace's
	// first sample, and scoring starts there.
	Cadence time.Duration
	// ChangeThreshold is the update rule of recommenders that have none
	// (KRR, which only reports): apply when some resource moves by more
	// than this fraction. UPID applies its policy's rule and the VPA its
	// updater's.
	ChangeThreshold float64
	Policy          recommend.Policy
	VPA             recommend.VPAConfig
	KRR             recommend.KRRConfig
	// Extra recommenders, one fresh instance per trace.
	Extra []func() Rightsizer
	// KeepDecisions records every decision in the report.
	KeepDecisions bool
	// Workers replaying traces in parallel; 0 means GOMAXPROCS.
	Workers int
}

// DefaultOptions returns daily decisions, UPID's default policy and the
// baselines' upstream defaults.
func DefaultOptions() Options {
	p := recommend.DefaultPolicy()
	return Options{
		Cadence:         24 * time.Hour,
		ChangeThreshold: p.ChangeThreshold,
		Policy:          p,
		VPA:             recommend.DefaultVPAConfig(),
		KRR:             recommend.DefaultKRRConfig(),
	}
}

// Recommender names in reports.
const (
	NameUPID    = "upid"
	NameVPA     = "vpa"
	NameKRR     = "krr"
	NameHandSet = "hand-set"
)

// Run replays every trace and scores each recommender.
func Run(traces []Trace, opts Options) (*Report, error) {
	rp, err := NewReplay(opts)
	if err != nil {
		return nil, err
	}
	if err := rp.Add(traces); err != nil {
		return nil, err
	}
	return rp.Report(), nil
}

// Replay accumulates the results of traces replayed batch by batch, so that
// a caller reading a long history (upid backtest from Prometheus) holds one
// batch's samples at a time. The report is the same as Run's on all the
// traces at once.
type Replay struct {
	opts    Options
	results []TraceResult
}

// NewReplay checks the options.
func NewReplay(opts Options) (*Replay, error) {
	if opts.Cadence <= 0 {
		return nil, errors.New("backtest: Cadence must be positive")
	}
	if math.IsNaN(opts.ChangeThreshold) || opts.ChangeThreshold < 0 {
		return nil, errors.New("backtest: ChangeThreshold must be >= 0")
	}
	if err := opts.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("backtest: policy: %w", err)
	}
	return &Replay{opts: opts}, nil
}

// Add replays traces in parallel. A bad trace fails the batch before any
// of it is replayed.
func (rp *Replay) Add(traces []Trace) error {
	for i, tr := range traces {
		if err := checkTrace(tr); err != nil {
			return fmt.Errorf("backtest: trace %d (%s): %w", len(rp.results)+i, tr.Name, err)
		}
	}
	results := make([]TraceResult, len(traces))
	workers := rp.opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				results[i] = replay(traces[i], rp.opts)
			}
		})
	}
	for i := range traces {
		next <- i
	}
	close(next)
	wg.Wait()
	rp.results = append(rp.results, results...)
	return nil
}

// Report pools the traces replayed so far by source.
func (rp *Replay) Report() *Report { return buildReport(rp.results, rp.opts) }

func checkTrace(tr Trace) error {
	if len(tr.Samples) == 0 {
		return errors.New("no samples")
	}
	if tr.Policy != nil {
		if err := tr.Policy.Validate(); err != nil {
			return fmt.Errorf("policy: %w", err)
		}
	}
	for i, s := range tr.Samples {
		if i > 0 && !s.Time.After(tr.Samples[i-1].Time) {
			return fmt.Errorf("sample %d: time %v is not after the previous one", i, s.Time)
		}
		if s.Duration <= 0 {
			return fmt.Errorf("sample %d: duration %v", i, s.Duration)
		}
	}
	return nil
}

// runner is one recommender's replay state on one trace.
type runner struct {
	r        Rightsizer // nil for hand-set
	name     string
	observed bool // the trace holds its own limits (Trace.Observed)
	applied  Applied
	acc      scoreAcc
	pending  []pendingSample
}

type pendingSample struct {
	s       Sample
	applied Applied
	oom     bool
}

// effective is what is in force for sample s: the recommender's values where
// it set them, the trace's own otherwise. A trace's own limits are those it
// records (from Prometheus); a CSV trace's memory limit is its request
// (Borg's memory "limit" is the request the trace records), and its CPU is
// unlimited.
func (r *runner) effective(s Sample) Applied {
	a := Applied{CPU: s.CPURequest, Memory: s.MemoryRequest, MemoryLimit: s.MemoryRequest, CPUOK: true, MemoryOK: true}
	if r.observed {
		a.CPULimit, a.MemoryLimit = s.CPULimit, s.MemoryLimit
	}
	if r.applied.CPUOK {
		a.CPU, a.CPULimit = r.applied.CPU, r.applied.CPULimit
	}
	if r.applied.MemoryOK {
		a.Memory = r.applied.Memory
		a.MemoryLimit = r.applied.MemoryLimit
	}
	return a
}

func replay(tr Trace, opts Options) TraceResult {
	p := opts.Policy
	if tr.Policy != nil {
		p = *tr.Policy
	}
	runners := []*runner{
		// The hand-set is what ran: the kills the cluster recorded are its.
		{name: NameHandSet, acc: scoreAcc{observed: tr.Observed}},
		{name: NameUPID, r: newUPID(opts.Policy, p)},
		{name: NameVPA, r: newVPA(opts.VPA)},
		{name: NameKRR, r: newKRR(opts.KRR, opts.ChangeThreshold)},
	}
	for _, f := range opts.Extra {
		r := f()
		runners = append(runners, &runner{name: r.Name(), r: r})
	}
	for _, r := range runners {
		r.observed = tr.Observed
	}
	res := TraceResult{Name: tr.Name, Source: tr.Source, PolicyFrom: tr.PolicyFrom}
	// The trace's requests last known, for its own changes: a request
	// unknown (0) for a while is no change, to it or back.
	var cpuReq, memReq float64
	start := tr.Samples[0].Time
	next := start.Add(opts.Cadence)
	for i, s := range tr.Samples {
		if !s.Time.Before(next) {
			// After a gap several decision times may have passed with
			// nothing running: only the latest counts, as a pod admitted
			// when the instance comes back gets the recommendation then.
			for !s.Time.Before(next.Add(opts.Cadence)) {
				next = next.Add(opts.Cadence)
			}
			for _, r := range runners {
				if d, ok := r.decide(next, tr.Samples[i-1]); ok && opts.KeepDecisions {
					res.Decisions = append(res.Decisions, d)
				}
			}
			next = next.Add(opts.Cadence)
		}
		scored := !s.Time.Before(start.Add(opts.Cadence))
		// The trace's own request changes are the hand-set's changes (a
		// user, or Borg's own autoscaler, resized the instance).
		// Both are recorded whether scored or not: the first scored
		// sample compares with the requests before it.
		cpuMoved, memMoved := resized(&cpuReq, s.CPURequest), resized(&memReq, s.MemoryRequest)
		if scored && (cpuMoved || memMoved) {
			runners[0].acc.changes++
		}
		for _, r := range runners {
			a := r.effective(s)
			// The risk scored is the peak over the limit in force, the
			// same test for every recommender; the kills the cluster
			// recorded are counted apart (the hand-set's), and fed to
			// the recommenders they would have hit.
			oom := overLimit(s, a)
			if scored {
				r.acc.add(s, a, r.applied, oom)
			}
			if r.r != nil {
				r.pending = append(r.pending, pendingSample{s, a, oom || killedUnder(s, a)})
			}
		}
	}
	for _, r := range runners {
		res.Scores = append(res.Scores, r.acc.score(r.name))
		res.acc = append(res.acc, r.acc)
	}
	return res
}

// resized records a request r if known (above 0) in *last, and reports
// whether it differs from the one known before, if any.
func resized(last *float64, r float64) bool {
	if !(r > 0) {
		return false
	}
	changed := *last > 0 && *last != r
	*last = r
	return changed
}

// overLimit: the sample's peak memory crossed the memory limit in force, an
// OOM kill the replay simulates.
func overLimit(s Sample, a Applied) bool { return a.MemoryLimit > 0 && s.MemoryMax > a.MemoryLimit }

// killedUnder: the cluster recorded an OOM kill in s that would have
// happened under a too: the killed pod had no known limit (the node ran
// out of memory, whatever the limits), or a limit no lower than a's. Under
// a higher limit, or none, the pod might have lived: the peak, which
// overLimit tests, is all the history says.
func killedUnder(s Sample, a Applied) bool {
	if !s.OOMKill {
		return false
	}
	return !(s.OOMMemoryLimit > 0) || (a.MemoryLimit > 0 && a.MemoryLimit <= s.OOMMemoryLimit)
}

// decide feeds the samples that ended by now, asks for a recommendation and
// applies it if it moves enough. last is the latest sample before now, whose
// requests are the trace's current ones.
func (r *runner) decide(now time.Time, last Sample) (Decision, bool) {
	if r.r == nil {
		return Decision{}, false
	}
	k := 0
	for _, p := range r.pending {
		if p.s.Time.Add(p.s.Duration).After(now) {
			break
		}
		r.r.Observe(p.s, p.applied, p.oom)
		k++
	}
	r.pending = append(r.pending[:0], r.pending[k:]...)
	cur := r.effective(last)
	rec, apply := r.r.Recommend(now, cur)
	if !apply {
		return Decision{}, false
	}
	d := Decision{Time: now, Recommender: r.name}
	if rec.CPUOK {
		r.applied.CPU, r.applied.CPULimit, r.applied.CPUOK = rec.CPU, rec.CPULimit, true
		d.CPU, d.CPULimit = rec.CPU, rec.CPULimit
	}
	if rec.MemoryOK {
		r.applied.Memory, r.applied.MemoryLimit, r.applied.MemoryOK = rec.Memory, rec.MemoryLimit, true
		d.Memory, d.MemoryLimit = rec.Memory, rec.MemoryLimit
	}
	r.acc.changes++
	return d, true
}

// upidRightsizer runs recommend.State and recommend.Recommend as the
// exporter does: the state keeps the cluster policy's window, and a
// workload's own policy reads its last days.
type upidRightsizer struct {
	p     recommend.Policy
	state *recommend.State
}

func newUPID(cluster, p recommend.Policy) *upidRightsizer {
	return &upidRightsizer{p: p, state: recommend.NewState(cluster)}
}

func (u *upidRightsizer) Name() string { return NameUPID }

func (u *upidRightsizer) Observe(s Sample, a Applied, oom bool) {
	x := recommend.Sample{
		Time: s.Time, Duration: s.Duration, CPU: s.CPU, MemoryPeak: s.MemoryMax,
		Start: s.Start, OOMKill: oom,
		ThrottledPeriods: s.ThrottledPeriods, Periods: s.Periods,
	}
	// The limit a kill proved too little: the replay's own when the peak
	// crossed it, the killed pod's when the cluster recorded the kill (the
	// larger when both), as the exporter reads it; none known (a node out
	// of memory) leaves the state the peak.
	if overLimit(s, a) {
		x.MemoryLimit = a.MemoryLimit
	}
	if s.OOMKill {
		x.MemoryLimit = math.Max(x.MemoryLimit, s.OOMMemoryLimit)
	}
	u.state.Observe(x)
}

func (u *upidRightsizer) Recommend(now time.Time, cur Applied) (Applied, bool) {
	in := u.state.InputsWithin(now, u.p.Window)
	in.Current = recommend.Resources{CPURequest: cur.CPU, CPULimit: cur.CPULimit, MemoryRequest: cur.Memory, MemoryLimit: cur.MemoryLimit}
	rec := recommend.Recommend(in, u.p)
	a := Applied{CPUOK: rec.CPU.OK, MemoryOK: rec.Memory.OK}
	if rec.CPU.OK {
		a.CPU, a.CPULimit = rec.CPU.Request, rec.CPU.Limit
	}
	if rec.Memory.OK {
		a.Memory, a.MemoryLimit = rec.Memory.Request, rec.Memory.Limit
	}
	return a, rec.Apply
}

// vpaRightsizer runs recommend.VPA; the VPA sets limits in proportion to
// requests by default (controlledValues RequestsAndLimits), so a limit
// keeps its ratio to the request, and a container without one gets none.
type vpaRightsizer struct {
	v *recommend.VPA
	// memory: the trace has memory. Its request is no sign of it: a
	// container without one (BestEffort) gets the VPA's figure too.
	memory bool
}

func newVPA(cfg recommend.VPAConfig) *vpaRightsizer { return &vpaRightsizer{v: recommend.NewVPA(cfg)} }

func (v *vpaRightsizer) Name() string { return NameVPA }

func (v *vpaRightsizer) Observe(s Sample, a Applied, oom bool) {
	v.v.AddCPU(s.Time, s.CPU, a.CPU)
	if !math.IsNaN(s.MemoryMax) {
		v.v.AddMemory(s.Time, s.MemoryMax)
		v.memory = true
	}
	if oom {
		v.v.RecordOOM(s.Time, a.Memory)
	}
}

func (v *vpaRightsizer) Recommend(_ time.Time, cur Applied) (Applied, bool) {
	rec, ok := v.v.Recommendation()
	if !ok {
		return Applied{}, false
	}
	a := Applied{CPU: rec.Target.CPU, CPUOK: true}
	if cur.CPULimit > 0 && cur.CPU > 0 {
		a.CPULimit = rec.Target.CPU * math.Max(1, cur.CPULimit/cur.CPU)
	}
	if v.memory {
		a.Memory, a.MemoryOK = rec.Target.Memory, true
		if cur.MemoryLimit > 0 && cur.Memory > 0 {
			a.MemoryLimit = rec.Target.Memory * math.Max(1, cur.MemoryLimit/cur.Memory)
		}
	} else {
		// The trace has no memory: leave it out of the updater's decision.
		rec.Target.Memory = 0
	}
	return a, recommend.VPAShouldUpdate(recommend.VPAResources{CPU: cur.CPU, Memory: cur.Memory}, rec, recommend.VPAUpdateThreshold)
}

// krrRightsizer keeps the raw samples of its history, which is what KRR
// asks Prometheus for at every run.
type krrRightsizer struct {
	cfg       recommend.KRRConfig
	threshold float64
	samples   []Sample
}

func newKRR(cfg recommend.KRRConfig, threshold float64) *krrRightsizer {
	return &krrRightsizer{cfg: cfg, threshold: threshold}
}

func (k *krrRightsizer) Name() string { return NameKRR }

func (k *krrRightsizer) Observe(s Sample, _ Applied, _ bool) { k.samples = append(k.samples, s) }

func (k *krrRightsizer) Recommend(now time.Time, cur Applied) (Applied, bool) {
	from := now.Add(-k.cfg.HistoryDuration)
	i := 0
	for i < len(k.samples) && k.samples[i].Time.Before(from) {
		i++
	}
	k.samples = k.samples[i:]
	in := recommend.KRRInputs{MemoryPeak: math.NaN()}
	for _, s := range k.samples {
		in.CPU = append(in.CPU, s.CPU)
		if !math.IsNaN(s.MemoryMax) && !(s.MemoryMax <= in.MemoryPeak) {
			in.MemoryPeak = s.MemoryMax
		}
	}
	in.Points = len(k.samples)
	r := recommend.KRRSimple(in, k.cfg)
	// KRRResult's fields without a figure are 0, and their flags false.
	// krr's simple strategy sets the memory limit to the request and no
	// CPU limit.
	a := Applied{CPU: r.CPU, Memory: r.Memory, MemoryLimit: r.Memory, CPUOK: r.CPUOK, MemoryOK: r.MemoryOK}
	return a, moved(a.CPU, a.CPUOK, cur.CPU, k.threshold) || moved(a.Memory, a.MemoryOK, cur.Memory, k.threshold)
}

// moved is the plain threshold rule: a figure (ok) that differs from the
// current one by more than the threshold. With no current request (0) any
// figure above 0 moves, and 0 does not: it is what is in force already.
func moved(v float64, ok bool, cur, threshold float64) bool {
	switch {
	case !ok:
		return false
	case cur <= 0:
		return v > 0
	}
	return math.Abs(v-cur)/cur > threshold
}
