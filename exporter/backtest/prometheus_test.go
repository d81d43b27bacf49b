package backtest

import (
	"context"
	"math"
	"testing"
	"time"

	ser "github.com/upid-dev/upid/internal/series"
	"github.com/upid-dev/upid/internal/testenv"
)

const mib = 1 << 20

// promPod is one pod of a workload as cAdvisor and kube-state-metrics
// would have it scraped every 15 s (7 s past each minute).
type promPod struct {
	ns, workload       string
	from, to           time.Time // the pod runs [from, to)
	cpu, mem           float64   // cores, bytes: flat
	cpuReq, memReq     float64
	cpuLimit, memLimit float64 // 0: none (no series)
	throttled          float64 // share of the CFS periods throttled
	oomAt              []time.Time
	// No kube-state-metrics samples (requests, limits) in [ksmGapFrom, ksmGapTo).
	ksmGapFrom, ksmGapTo time.Time
}

func (p promPod) series() []ser.Series {
	const scrape = 15 * time.Second
	start, last := p.from.Add(7*time.Second), p.to.Add(-8*time.Second)
	rs := p.workload + "-6d5f7c8b9"
	ref := ser.PodRef{Namespace: p.ns, Pod: rs + "-x7k2p", Container: "app", Node: "n1"}
	ksm := func(v float64) []ser.Sample {
		var out []ser.Sample
		for _, s := range ser.Generate(start, last, 30*time.Second, ser.Const(v)) {
			if p.ksmGapFrom.IsZero() || s.T.Before(p.ksmGapFrom) || !s.T.Before(p.ksmGapTo) {
				out = append(out, s)
			}
		}
		return out
	}
	cpu := ser.GenerateCounter(start, last, scrape, ser.Const(p.cpu))
	for i := range cpu {
		cpu[i].V += 1e6 // keeps rate() from clipping its extrapolation at zero
	}
	kills := ser.Generate(start, last, scrape, func(t time.Time) float64 {
		n := 0
		for _, o := range p.oomAt {
			if !t.Before(o) {
				n++
			}
		}
		return float64(n)
	})
	ones := ser.Generate(p.from.Add(-time.Hour), p.to.Add(time.Hour), 30*time.Second, ser.Const(1))
	out := []ser.Series{
		ser.KubeReplicaSetOwner(p.ns, rs, ser.OwnerRef{Kind: "Deployment", Name: p.workload}, ones),
		ser.KubePodOwner(ref, ser.OwnerRef{Kind: "ReplicaSet", Name: rs}, ones),
		ser.ContainerCPUUsageSeconds(ref, cpu),
		ser.ContainerMemoryWorkingSet(ref, ser.Generate(start, last, scrape, ser.Const(p.mem))),
		ser.ContainerOOMEvents(ref, kills),
		ser.KubePodContainerResourceRequests(ref, "cpu", ksm(p.cpuReq)),
		ser.KubePodContainerResourceRequests(ref, "memory", ksm(p.memReq)),
	}
	if p.cpuLimit > 0 {
		out = append(out, ser.KubePodContainerResourceLimits(ref, "cpu", ksm(p.cpuLimit)),
			ser.ContainerCPUCFSPeriods(ref, ser.GenerateCounter(start, last, scrape, ser.Const(10))),
			ser.ContainerCPUCFSThrottledPeriods(ref, ser.GenerateCounter(start, last, scrape, ser.Const(10*p.throttled))))
	}
	if p.memLimit > 0 {
		out = append(out, ser.KubePodContainerResourceLimits(ref, "memory", ksm(p.memLimit)))
	}
	return out
}

// readProm loads pods into a real Prometheus and reads them back as
// `upid backtest` does, three days to end.
func readProm(t *testing.T, end time.Time, pods ...promPod) map[string]Trace {
	t.Helper()
	var all []ser.Series
	for _, p := range pods {
		all = append(all, p.series()...)
	}
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{Series: all})
	out := map[string]Trace{}
	if _, err := ReadPrometheus(context.Background(), prom.API, PrometheusOptions{End: end, History: 3 * 24 * time.Hour}, func(b []Trace) error {
		for _, tr := range b {
			out[tr.Workload.Workload] = tr
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPrometheusLimitsAndKills: from a real Prometheus, a trace carries
// the memory limit in force, the kills container_oom_events_total recorded
// and the throttling under the CPU limit; the hand-set is scored against
// its real limit (1 GiB, not its 64 MiB request), and UPID is fed the
// kills and the throttling as the exporter would be.
func TestPrometheusLimitsAndKills(t *testing.T) {
	end := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	begin := end.Add(-3 * 24 * time.Hour)
	pod := func(ns, name string) promPod {
		return promPod{ns: ns, workload: name, from: begin, to: end.Add(time.Hour),
			cpu: 0.05, mem: 300 * mib, cpuReq: 0.1, memReq: 64 * mib, memLimit: 1024 * mib}
	}
	// Killed once after UPID's first decision, which set a limit far above
	// 1 GiB: nothing in the replay hits a limit.
	late := pod("b", "late")
	late.oomAt = []time.Time{begin.Add(50*time.Hour + 2*time.Minute)}
	// Killed before UPID's first decision, under the 1 GiB in force.
	early := pod("e", "early")
	early.oomAt = []time.Time{begin.Add(12*time.Hour + 2*time.Minute)}
	// CPU capped by a 0.06-core limit, half the periods throttled.
	capped := pod("c", "capped")
	capped.cpuReq, capped.cpuLimit, capped.throttled = 0.05, 0.06, 0.5
	got := readProm(t, end, late, early, capped)
	if len(got) != 3 {
		t.Fatalf("traces %v, want late, early and capped", got)
	}

	tr := got["late"]
	kills := 0
	for _, s := range tr.Samples {
		if s.MemoryLimit != 1024*mib || s.MemoryRequest != 64*mib || s.CPULimit != 0 {
			t.Fatalf("late at %v: limits %v and %v, request %v; want a 1 GiB memory limit, no CPU limit and 64 MiB", s.Time, s.CPULimit, s.MemoryLimit, s.MemoryRequest)
		}
		if s.OOMKill {
			kills++
			if s.OOMMemoryLimit != 1024*mib {
				t.Errorf("late killed at %v under %v, want 1 GiB", s.Time, s.OOMMemoryLimit)
			}
		}
	}
	if !tr.Observed || kills != 1 {
		t.Fatalf("late: observed %v, %d kills, want the one container_oom_events_total holds", tr.Observed, kills)
	}
	opts := DefaultOptions()
	opts.KeepDecisions = true
	rep, err := Run([]Trace{tr}, opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := rep.Traces[0].Scores[0]
	if *hs.MemoryOverLimit != 0 || hs.OOMKillsObserved == nil || *hs.OOMKillsObserved != 1 {
		t.Errorf("hand-set: %d samples over its limit and %s recorded kills; want 0 (300 MiB never reached 1 GiB) and 1", *hs.MemoryOverLimit, fmtPtr(hs.OOMKillsObserved, "%d"))
	}
	// The kill came under 1 GiB when every recommender had set more:
	// their decisions are those of the same history without it.
	quiet := tr
	quiet.Samples = append([]Sample(nil), tr.Samples...)
	for i := range quiet.Samples {
		quiet.Samples[i].OOMKill = false
	}
	want, err := Run([]Trace{quiet}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := rep.Traces[0].Decisions, want.Traces[0].Decisions; len(g) != len(w) || len(g) == 0 {
		t.Errorf("decisions %+v, want %+v", g, w)
	} else {
		for i := range g {
			if g[i] != w[i] {
				t.Errorf("decision %d: %+v, want %+v as without the kill", i, g[i], w[i])
			}
		}
	}

	// Under the 1 GiB that was killed, UPID sizes memory above it.
	if d := firstDecision(t, got["early"], NameUPID); d.Memory < 1024*mib {
		t.Errorf("early: UPID's first memory figure %.0f MiB, want above the 1 GiB killed", d.Memory/mib)
	}

	// UPID reads the capped usage as censored by the throttled share.
	c := got["capped"]
	for _, s := range c.Samples[1:] {
		if s.CPULimit != 0.06 || s.Periods <= 0 || math.Abs(s.ThrottledPeriods/s.Periods-0.5) > 0.01 {
			t.Fatalf("capped at %v: CPU limit %v, %v of %v periods throttled; want 0.06 and half", s.Time, s.CPULimit, s.ThrottledPeriods, s.Periods)
		}
	}
	unthrottled := c
	unthrottled.Samples = append([]Sample(nil), c.Samples...)
	for i := range unthrottled.Samples {
		unthrottled.Samples[i].ThrottledPeriods = 0
	}
	if d, base := firstDecision(t, c, NameUPID), firstDecision(t, unthrottled, NameUPID); math.Abs(d.CPU-1.5*base.CPU) > 0.002 {
		t.Errorf("capped: UPID's CPU %v, want 1.5 × %v", d.CPU, base.CPU)
	}
}

// TestPrometheusKSMGap: kube-state-metrics missing 20 minutes (a restart)
// is neither a resize of the hand-set nor windows without requests.
func TestPrometheusKSMGap(t *testing.T) {
	end := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	begin := end.Add(-3 * 24 * time.Hour)
	p := promPod{ns: "k", workload: "api", from: begin, to: end.Add(time.Hour),
		cpu: 0.2, mem: 100 * mib, cpuReq: 0.5, memReq: 256 * mib, memLimit: 512 * mib,
		ksmGapFrom: begin.Add(40 * time.Hour), ksmGapTo: begin.Add(40*time.Hour + 20*time.Minute)}
	tr := readProm(t, end, p)["api"]
	for _, s := range tr.Samples {
		if s.CPURequest != 0.5 || s.MemoryRequest != 256*mib || s.MemoryLimit != 512*mib {
			t.Fatalf("at %v: requests %v and %v, limit %v; want 0.5, 256 MiB and 512 MiB throughout", s.Time.Sub(begin), s.CPURequest, s.MemoryRequest, s.MemoryLimit)
		}
	}
	rep, err := Run([]Trace{tr}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if hs := rep.Traces[0].Scores[0]; hs.Changes != 0 {
		t.Errorf("hand-set changes %d, want 0: kube-state-metrics only missed 20 minutes", hs.Changes)
	}
}

// TestReadPrometheusOptionErrors: an option out of range is refused naming
// it, before Prometheus is asked anything.
func TestReadPrometheusOptionErrors(t *testing.T) {
	for _, c := range []struct {
		o    PrometheusOptions
		want string
	}{
		{PrometheusOptions{History: time.Minute}, "backtest: History 1m0s is shorter than a window (5m0s)"},
		{PrometheusOptions{BatchContainers: -5}, "backtest: BatchContainers -5 is not positive"},
		{PrometheusOptions{Chunk: time.Minute}, "backtest: Chunk 1m0s is shorter than a window (5m0s)"},
		{PrometheusOptions{Timeout: -time.Second}, "backtest: Timeout -1s is negative"},
	} {
		// A nil Querier: asking it anything would panic.
		if _, err := ReadPrometheus(context.Background(), nil, c.o, nil); err == nil || err.Error() != c.want {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
}
