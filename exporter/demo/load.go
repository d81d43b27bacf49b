package demo

import (
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/upid-dev/upid/internal/series"
)

// step is the scrape interval of every target in the demo. It must be well under the
// exporter's 5m rate window, or rate() would see fewer than two samples.
const step = time.Minute

// Target labels that scraping adds to each exporter's series. kube-state-metrics,
// kubelet and OpenCost are scraped with honor_labels, so their own namespace, pod and
// instance labels win; application pods are found through the prometheus.io
// annotations, whose usual relabelling adds namespace, pod and instance.
var (
	ksmTarget      = map[string]string{"job": "kube-state-metrics", "instance": "10.244.2.9:8080"}
	openCostTarget = map[string]string{"job": "opencost"}
)

func kubeletTarget(n *node, path string) map[string]string {
	return map[string]string{"job": "kubelet", "metrics_path": path, "instance": n.ip + ":10250"}
}

// loader writes series into the storage.
type loader struct {
	st         *memStorage
	start, end time.Time
	series     int
	samples    int
	lb         *labels.Builder
	buf        []float64
}

// add writes s (only its name and labels are used) plus extra, with f(t) at every scrape
// from from to to inclusive, clipped to the history. A zero to means the series is still
// scraped at the end. A series that ends earlier gets a staleness marker at the next
// scrape, as Prometheus writes when a target or series disappears, so that instant
// queries stop seeing it at once rather than five minutes later.
func (l *loader) add(s series.Series, extra map[string]string, from, to time.Time, f func(time.Time) float64) error {
	if from.Before(l.start) {
		from = l.start
	}
	open := to.IsZero() || !to.Before(l.end)
	if open {
		to = l.end
	}
	// Scrapes happen on the grid start + k·step.
	first := l.start.Add((from.Sub(l.start) + step - 1) / step * step)
	if first.After(to) {
		return nil
	}
	l.lb.Reset(labels.EmptyLabels())
	l.lb.Set(labels.MetricName, s.Name)
	for k, v := range s.Labels {
		l.lb.Set(k, v)
	}
	for k, v := range extra {
		l.lb.Set(k, v)
	}
	n := int(to.Sub(first)/step) + 1
	ms := memSeries{lset: l.lb.Labels(), first: first.UnixMilli(), n: n}
	ms.stale = !open && !first.Add(time.Duration(n)*step).After(l.end)
	if ms.stale {
		ms.n++
	}
	l.buf = l.buf[:0]
	constant := true
	t := first
	for range n {
		v := f(t)
		constant = constant && (len(l.buf) == 0 || math.Float64bits(v) == math.Float64bits(l.buf[0]))
		l.buf = append(l.buf, v)
		t = t.Add(step)
	}
	if constant {
		ms.values = []float64{l.buf[0]}
	} else {
		ms.values = make([]float64, n)
		copy(ms.values, l.buf)
	}
	l.st.series = append(l.st.series, ms)
	l.series++
	l.samples += n
	return nil
}

// counter turns a rate into a counter's cumulative values; like series.GenerateCounter,
// the rate at a scrape applies to the interval that ends there. The returned function must
// be called at increasing times, as loader.add does. whole rounds down to whole events,
// as request and probe counters count them.
func counter(perSecond func(time.Time) float64, whole bool) func(time.Time) float64 {
	var total float64
	var prev time.Time
	return func(t time.Time) float64 {
		if !prev.IsZero() {
			total += perSecond(t) * t.Sub(prev).Seconds()
		}
		prev = t
		if whole {
			// The epsilon keeps 0.1/s × 60 s from flooring to 5.
			return math.Floor(total + 1e-9)
		}
		return total
	}
}

func constant(v float64) func(time.Time) float64 { return func(time.Time) float64 { return v } }

// before makes an exclusive end inclusive for loader.add.
func before(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Add(-time.Nanosecond)
}

// stream is one http_requests_total series of a pod.
type stream struct {
	labels    map[string]string
	perSecond func(time.Time) float64
}

// streams lists a pod's request series: its share of the workload's real traffic, and the
// health traffic its spec implies. Requests that the application would count under the
// same labels are merged into one series.
func (p *pod) streams() []stream {
	w, a := p.w, p.w.app
	if a == nil {
		return nil
	}
	byKey := map[string]*stream{}
	var keys []string
	add := func(path, method, code, agent string, perSecond func(time.Time) float64) {
		l := map[string]string{a.pathLabel: path, "method": method, a.codeLabel: code}
		if a.userAgent {
			l["user_agent"] = agent
		}
		key := path + "\x00" + method + "\x00" + code + "\x00" + l["user_agent"]
		if s, ok := byKey[key]; ok {
			prev := s.perSecond
			s.perSecond = func(t time.Time) float64 { return prev(t) + perSecond(t) }
			return
		}
		byKey[key] = &stream{labels: l, perSecond: perSecond}
		keys = append(keys, key)
	}
	for _, r := range a.routes {
		share := r.share / float64(w.replicas)
		add(r.path, r.method, r.code, r.agent, func(t time.Time) float64 { return a.real(t) * share })
	}
	for _, c := range w.containers {
		for _, pr := range c.probes {
			if pr.handler == "http" {
				add(pr.path, "GET", "200", agentProbe, constant(1/float64(pr.period)))
			}
		}
	}
	if w.scraped() {
		add(w.annotations["prometheus.io/path"], "GET", "200", agentPrometheus, constant(1/scrapeInterval.Seconds()))
	}
	if a.lbCheckers > 0 {
		add("/health", "GET", "200", agentELB, constant(float64(a.lbCheckers)/float64(a.lbPeriod)))
	}
	sort.Strings(keys)
	out := make([]stream, len(keys))
	for i, k := range keys {
		out[i] = *byKey[k]
	}
	return out
}

// realRate is the pod's share of the workload's real requests/s.
func (p *pod) realRate(t time.Time) float64 {
	if p.w.app == nil || p.w.app.real == nil {
		return 0
	}
	return p.w.app.real(t) / float64(p.w.replicas)
}

func (l *loader) loadPod(p *pod) error {
	w := p.w
	ksmEnd := before(p.deleted)
	if err := l.add(series.KubePodOwner(p.ref, p.owner, nil), ksmTarget, p.created, ksmEnd, constant(1)); err != nil {
		return err
	}
	for _, phase := range series.PodPhases {
		if err := l.add(series.KubePodStatusPhase(p.ref, phase, nil), ksmTarget, p.created, ksmEnd, func(t time.Time) float64 {
			if p.phaseAt(t) == phase {
				return 1
			}
			return 0
		}); err != nil {
			return err
		}
	}
	cadvisor, probes := kubeletTarget(p.node, "/metrics/cadvisor"), kubeletTarget(p.node, "/metrics/probes")
	from, to := p.running[0], p.running[1]
	for _, c := range w.containers {
		ref := p.container(c.name)
		for _, r := range []struct {
			name string
			v    float64
		}{{"cpu", c.cpuReq}, {"memory", c.memReq}} {
			if r.v > 0 {
				if err := l.add(series.KubePodContainerResourceRequests(ref, r.name, nil), ksmTarget, p.created, ksmEnd, constant(r.v)); err != nil {
					return err
				}
			}
		}
		cpu, mem := c.cpu, c.mem
		if err := l.add(series.ContainerCPUUsageSeconds(ref, nil), cadvisor, from, to,
			counter(func(t time.Time) float64 { return cpu(p, t) }, false)); err != nil {
			return err
		}
		if err := l.add(series.ContainerMemoryWorkingSet(ref, nil), cadvisor, from, to,
			func(t time.Time) float64 { return math.Round(mem(p, t)) }); err != nil {
			return err
		}
		// cAdvisor counts OOM events for every container; none of the demo's
		// are killed.
		if err := l.add(series.ContainerOOMEvents(ref, nil), cadvisor, from, to, constant(0)); err != nil {
			return err
		}
		// CFS periods exist only under a CPU limit: 10 per second, throttled
		// in the share of them where usage would exceed the limit.
		if lim := c.cpuLim; lim > 0 {
			if err := l.add(series.ContainerCPUCFSPeriods(ref, nil), cadvisor, from, to, counter(constant(10), false)); err != nil {
				return err
			}
			if err := l.add(series.ContainerCPUCFSThrottledPeriods(ref, nil), cadvisor, from, to,
				counter(func(t time.Time) float64 { return 10 * math.Min(1, math.Max(0, cpu(p, t)/lim-0.9)) }, false)); err != nil {
				return err
			}
		}
		for _, pr := range c.probes {
			if err := l.add(series.ProberProbeTotal(ref, pr.typ, "successful", nil), probes, from, to,
				counter(constant(1/float64(pr.period)), true)); err != nil {
				return err
			}
		}
	}
	health := w.healthRate()
	if err := l.add(series.ContainerNetworkReceiveBytes(p.ref, nil), cadvisor, from, to,
		counter(func(t time.Time) float64 { return w.rxBase + w.rxPerRequest*(health+p.realRate(t)) }, true)); err != nil {
		return err
	}
	target := map[string]string{"job": "kubernetes-pods", "namespace": p.ref.Namespace, "pod": p.ref.Pod,
		"instance": p.ref.PodIP + ":" + strconv.Itoa(int(w.port))}
	for _, s := range p.streams() {
		if err := l.add(series.HTTPRequestsTotal(s.labels, nil), target, from, to, counter(s.perSecond, true)); err != nil {
			return err
		}
	}
	return nil
}

// load writes the whole history of the plan.
func (l *loader) load(pl *plan) error {
	for _, p := range pl.pods {
		if p.w.noMetrics {
			continue
		}
		if err := l.loadPod(p); err != nil {
			return err
		}
	}
	for _, rs := range pl.replicaSets {
		if rs.w.noMetrics {
			continue
		}
		s := series.KubeReplicaSetOwner(rs.w.Namespace, rs.name, series.OwnerRef{Kind: "Deployment", Name: rs.w.Name}, nil)
		if err := l.add(s, ksmTarget, rs.created, time.Time{}, constant(1)); err != nil {
			return err
		}
	}
	for _, j := range pl.jobs {
		s := series.KubeJobOwner(j.w.Namespace, j.name, series.OwnerRef{Kind: "CronJob", Name: j.w.Name}, nil)
		if err := l.add(s, ksmTarget, j.scheduled, before(j.deleted), constant(1)); err != nil {
			return err
		}
	}
	for _, n := range pl.nodes {
		if n.cpuHourly == 0 {
			continue
		}
		if err := l.add(series.NodeCPUHourlyCost(n.openCost(), nil), openCostTarget, pl.start, time.Time{}, constant(n.cpuHourly)); err != nil {
			return err
		}
		if err := l.add(series.NodeRAMHourlyCost(n.openCost(), nil), openCostTarget, pl.start, time.Time{}, constant(n.ramGiBHourly)); err != nil {
			return err
		}
	}
	return l.st.finish()
}
