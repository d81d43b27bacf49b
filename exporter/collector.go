package exporter

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/idle"
)

var workloadLabels = []string{"namespace", "workload", "kind"}

type descs struct {
	idleScore, idleConfidence, idleState, idleSince                               *prometheus.Desc
	realRPS, healthRPS, healthRatio, hasRequestMetrics, replicas                  *prometheus.Desc
	reqCPU, reqMem, reqGPU, cpuUsage, containerCPU, containerMem                  *prometheus.Desc
	cost, waste, idleCost, nodeCost, nodeInfo, resultsAge, resultsAt              *prometheus.Desc
	recCPU, recCPULimit, recMem, recMemLimit, recConfidence, recSavings, recApply *prometheus.Desc
	recCPULower, recCPUUpper, recMemLower, recMemUpper                            *prometheus.Desc
	hpaTarget, hpaCPU, hpaMem, hpaSavings                                         *prometheus.Desc
	podCPU, podMem, podSavings                                                    *prometheus.Desc
}

func newDescs(cluster string) descs {
	var constLabels prometheus.Labels
	if cluster != "" {
		constLabels = prometheus.Labels{"cluster": cluster}
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, constLabels)
	}
	w := func(name, help string, extra ...string) *prometheus.Desc {
		return d(name, help, append(append([]string{}, workloadLabels...), extra...)...)
	}
	return descs{
		idleScore:         w("upid_workload_idle_score", "How idle the workload is once health-check traffic is discounted, 0 to 1; 0.5 or more is idle. Read with upid_workload_idle_confidence."),
		idleConfidence:    w("upid_workload_idle_confidence", "Quality of the data behind the idle score, 0 to 1: history coverage, reduced when request metrics are missing or disagree."),
		idleState:         w("upid_workload_idle_state", "1 for the workload's idle verdict: idle, active, unknown (missing data) or not_applicable (batch, scaled to zero).", "state"),
		idleSince:         w("upid_workload_idle_since_timestamp_seconds", "Earliest time the workload is known to have been idle continuously; present only while idle."),
		realRPS:           w("upid_workload_real_requests_per_second", "Requests per second over the window that are not health, probe, scrape or load-balancer checks."),
		healthRPS:         w("upid_workload_health_requests_per_second", "Health, probe, scrape and load-balancer check requests per second over the window."),
		healthRatio:       w("upid_workload_health_request_ratio", "Share of all requests that are health traffic, 0 to 1: the health-check illusion made visible."),
		hasRequestMetrics: w("upid_workload_request_metrics_present", "1 when request metrics were found for the workload, 0 when the verdict rests on CPU and network only."),
		replicas:          w("upid_workload_replicas", "Running pods, averaged over the window."),
		reqCPU:            w("upid_workload_requested_cpu_cores", "CPU requested by the workload's running pods now."),
		reqMem:            w("upid_workload_requested_memory_bytes", "Memory requested by the workload's running pods now."),
		reqGPU:            w("upid_workload_requested_gpus", "GPUs requested by the workload's running pods now."),
		cpuUsage:          w("upid_workload_cpu_usage_cores", "CPU used by the whole workload, mean over the window."),
		containerCPU:      w("upid_container_cpu_usage_cores", "CPU used by one container (largest over pods) over the window, by statistic p50, p95 or max.", "container", "stat"),
		containerMem:      w("upid_container_memory_usage_bytes", "Working-set memory of one container (largest over pods) over the window, by statistic p50, p95 or max.", "container", "stat"),
		cost:              w("upid_workload_cost_dollars_per_hour", "What the workload's requests cost per hour at its nodes' prices, by resource.", "resource"),
		waste:             w("upid_workload_waste_dollars_per_hour", "Requested beyond the p95 of use, priced, by resource; absent when usage is unknown.", "resource"),
		idleCost:          w("upid_workload_idle_cost_dollars_per_hour", "The workload's whole cost per hour while it is idle, else 0."),
		recCPU:            w("upid_container_recommended_cpu_request_cores", "CPU request UPID recommends for the container; absent without a confident recommendation.", "container"),
		recCPULower:       w("upid_container_recommended_cpu_request_lower_bound_cores", "Lower bound of the CPU request: below it the container is likely under-provisioned (the median 5-minute usage with the CPU margin).", "container"),
		recCPUUpper:       w("upid_container_recommended_cpu_request_upper_bound_cores", "Upper bound of the CPU request: above it the container is surely over-provisioned (the highest 5-minute usage with the CPU margin, widened for short history).", "container"),
		recMemLower:       w("upid_container_recommended_memory_request_lower_bound_bytes", "Lower bound of the memory request: the window's peak working set plus the memory margin, or the memory of the last OOM kill if higher.", "container"),
		recMemUpper:       w("upid_container_recommended_memory_request_upper_bound_bytes", "Upper bound of the memory request: above it the container is surely over-provisioned (the peak plus margin, or the OOM bump, widened for short history).", "container"),
		recCPULimit:       w("upid_container_recommended_cpu_limit_cores", "CPU limit UPID recommends; absent when the policy removes CPU limits.", "container"),
		recMem:            w("upid_container_recommended_memory_request_bytes", "Memory request UPID recommends: never below the window's peak working set plus the margin.", "container"),
		recMemLimit:       w("upid_container_recommended_memory_limit_bytes", "Memory limit UPID recommends; absent when the policy sets none.", "container"),
		recConfidence:     w("upid_container_recommendation_confidence", "Confidence of the recommendation, 0 to 1, from the history covered.", "container"),
		recSavings:        w("upid_container_recommendation_savings_dollars_per_hour", "Dollars per hour saved, for all replicas, if the recommendation is applied; negative when the container needs more.", "container"),
		recApply:          w("upid_container_recommendation_apply", "1 when the recommendation differs from the current requests by more than the change threshold (or the current ones are unsafe), else 0.", "container"),
		hpaTarget:         w("upid_workload_hpa_recommended_target_utilization_ratio", "Target utilization (0.8 for 80 %) the workload's HPA should hold with the paired requests, so that it scales at the same usage per pod; container is set for a ContainerResource target.", "hpa", "resource", "container"),
		hpaCPU:            w("upid_container_hpa_paired_cpu_request_cores", "CPU request to set together with the HPA's recommended target; the pair keeps the replicas and takes the difference. Never applied by the webhook.", "container", "hpa"),
		hpaMem:            w("upid_container_hpa_paired_memory_request_bytes", "Memory request to set together with the HPA's recommended target; never applied by the webhook.", "container", "hpa"),
		hpaSavings:        w("upid_workload_hpa_pairing_savings_dollars_per_hour", "Dollars per hour saved, for all replicas, if the paired requests and the HPA's recommended target are applied together; negative when the containers need more.", "hpa", "resource", "container"),
		podCPU:            w("upid_workload_pod_recommended_cpu_request_cores", "Pod-level CPU request (spec.resources) UPID recommends for a workload whose pods set CPU at pod level: the sum of its containers' own figures, at least what they request, at most the pod's limit; the webhook sets it at admission."),
		podMem:            w("upid_workload_pod_recommended_memory_request_bytes", "Pod-level memory request (spec.resources) UPID recommends for a workload whose pods set memory at pod level: the sum of its containers' own figures, at least what they request, at most the pod's limit; the webhook sets it at admission."),
		podSavings:        w("upid_workload_pod_recommendation_savings_dollars_per_hour", "Dollars per hour saved, for all replicas, if the pod-level request is applied; negative when the pod needs more.", "resource"),
		nodeCost:          d("upid_node_cost_dollars_per_hour", "What the node costs per hour.", "node"),
		nodeInfo:          d("upid_node_price_info", "Always 1; labels say where the node's price came from (opencost, file, default) and which pricing rule matched.", "node", "instance_type", "region", "capacity_type", "source", "rule"),
		resultsAge:        d("upid_exporter_results_age_seconds", "Age of the results served: grows when cycles fail and the last good results are kept."),
		resultsAt:         d("upid_exporter_results_timestamp_seconds", "End of the analysis window of the results served."),
	}
}

// resultsCollector renders the last good results at scrape time: nothing is
// computed here, so scrapes stay cheap whatever the cycle costs.
type resultsCollector struct {
	s *Service
	r *reading
	d descs
	// namespace label names, from the allow-list, for upid_namespace_labels
	nsDesc *prometheus.Desc
	// only, when set, is the one family this collector reports.
	only *prometheus.Desc
}

func (c *resultsCollector) init() {
	if c.d.idleScore != nil {
		return
	}
	c.d = newDescs(c.s.opts.Exporter.Cluster)
	labels := []string{"namespace"}
	for _, l := range c.s.opts.Exporter.NamespaceLabels {
		labels = append(labels, "label_"+sanitize(l))
	}
	var constLabels prometheus.Labels
	if cl := c.s.opts.Exporter.Cluster; cl != "" {
		constLabels = prometheus.Labels{"cluster": cl}
	}
	c.nsDesc = prometheus.NewDesc("upid_namespace_labels", "Always 1; the allow-listed labels of each namespace (exporter.namespace_labels), for attributing cost to teams.", labels, constLabels)
}

func sanitize(l string) string {
	var b strings.Builder
	for i, r := range l {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if ok {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func (c *resultsCollector) Describe(ch chan<- *prometheus.Desc) {
	c.init()
	if c.only != nil {
		ch <- c.only
		return
	}
	prometheus.DescribeByCollect(c, ch)
}

var states = []idle.State{idle.StateIdle, idle.StateActive, idle.StateUnknown, idle.StateNotApplicable}

// families splits the results into one collector per metric family, so
// that a scrape can gather and encode them one at a time (web.Server's
// Stream): gathering 1.4 million series at once held them all as
// client_golang objects, the exporter's peak memory at 150,000 pods.
// resultsAge is left out: it is the one that moves between cycles.
func (c *resultsCollector) families() []prometheus.Collector {
	c.init()
	d := c.d
	all := []*prometheus.Desc{
		d.resultsAt, d.idleScore, d.idleConfidence, d.idleState, d.idleSince,
		d.realRPS, d.healthRPS, d.healthRatio, d.hasRequestMetrics, d.replicas, d.reqCPU, d.reqMem, d.reqGPU,
		d.cpuUsage, d.containerCPU, d.containerMem, d.recConfidence, d.recCPU, d.recCPULower, d.recCPUUpper,
		d.recCPULimit, d.recMem, d.recMemLower, d.recMemUpper, d.recMemLimit, d.recSavings, d.recApply,
		d.hpaTarget, d.hpaCPU, d.hpaMem, d.hpaSavings, d.podCPU, d.podMem, d.podSavings, d.cost, d.waste, d.idleCost, d.nodeCost, d.nodeInfo,
	}
	if len(c.s.opts.Exporter.NamespaceLabels) > 0 {
		all = append(all, c.nsDesc)
	}
	out := make([]prometheus.Collector, len(all))
	for i, desc := range all {
		out[i] = &resultsCollector{s: c.s, r: c.r, d: c.d, nsDesc: c.nsDesc, only: desc}
	}
	return out
}

func (c *resultsCollector) Collect(ch chan<- prometheus.Metric) {
	c.init()
	res := c.r.results
	if res == nil {
		return
	}
	d := c.d
	// on says whether any of ds is collected: every family when only is
	// nil, else just that one. Blocks are skipped whole, so a pass for one
	// family builds no label slices for the others.
	on := func(ds ...*prometheus.Desc) bool {
		if c.only == nil {
			return true
		}
		for _, x := range ds {
			if x == c.only {
				return true
			}
		}
		return false
	}
	g := func(desc *prometheus.Desc, v float64, labels ...string) {
		if c.only == nil || desc == c.only {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
		}
	}
	g(d.resultsAge, c.s.opts.Now().Sub(res.At).Seconds())
	g(d.resultsAt, float64(res.At.UnixNano())/1e9)
	perWorkload := on(d.idleScore, d.idleConfidence, d.idleState, d.idleSince, d.realRPS, d.healthRPS, d.healthRatio,
		d.hasRequestMetrics, d.replicas, d.reqCPU, d.reqMem, d.reqGPU, d.cpuUsage, d.containerCPU, d.containerMem,
		d.recConfidence, d.recCPU, d.recCPULower, d.recCPUUpper, d.recCPULimit, d.recMem, d.recMemLower, d.recMemUpper,
		d.recMemLimit, d.recSavings, d.recApply, d.hpaTarget, d.hpaCPU, d.hpaMem, d.hpaSavings, d.podCPU, d.podMem, d.podSavings,
		d.cost, d.waste, d.idleCost)
	perContainer := on(d.containerCPU, d.containerMem, d.recConfidence, d.recCPU, d.recCPULower, d.recCPUUpper, d.recCPULimit,
		d.recMem, d.recMemLower, d.recMemUpper, d.recMemLimit, d.recSavings, d.recApply)
	for _, w := range res.Workloads {
		if !perWorkload {
			break
		}
		l := []string{w.Namespace, w.Name, w.Kind}
		with := func(extra ...string) []string { return append(append([]string{}, l...), extra...) }
		g(d.idleScore, w.Idle.Score, l...)
		g(d.idleConfidence, w.Idle.Confidence, l...)
		if on(d.idleState) {
			for _, st := range states {
				v := 0.0
				if string(st) == w.Idle.State {
					v = 1
				}
				g(d.idleState, v, with(string(st))...)
			}
		}
		if w.Idle.Since != nil {
			g(d.idleSince, float64(w.Idle.Since.Unix()), l...)
		}
		if w.Idle.HasRequestMetrics {
			g(d.realRPS, w.Idle.RealRequestsPerSecond, l...)
			g(d.healthRPS, w.Idle.HealthRequestsPerSecond, l...)
			g(d.healthRatio, w.Idle.HealthShare, l...)
			g(d.hasRequestMetrics, 1, l...)
		} else {
			g(d.hasRequestMetrics, 0, l...)
		}
		g(d.replicas, w.Replicas, l...)
		g(d.reqCPU, w.RequestedCPUCores, l...)
		g(d.reqMem, w.RequestedMemoryBytes, l...)
		if w.RequestedGPUs > 0 {
			g(d.reqGPU, w.RequestedGPUs, l...)
		}
		if w.CPUUsageCores != nil {
			g(d.cpuUsage, *w.CPUUsageCores, l...)
		}
		for _, ct := range w.Containers {
			if !perContainer {
				break
			}
			cl := with(ct.Name)
			usage(g, d.containerCPU, cl, ct.CPUCores)
			usage(g, d.containerMem, cl, ct.MemoryBytes)
			if rec := ct.Recommendation; rec != nil {
				g(d.recConfidence, rec.Confidence, cl...)
				if rec.OK {
					opt(g, d.recCPU, rec.CPURequestCores, cl)
					opt(g, d.recCPULower, rec.CPURequestLowerCores, cl)
					opt(g, d.recCPUUpper, rec.CPURequestUpperCores, cl)
					opt(g, d.recCPULimit, rec.CPULimitCores, cl)
					opt(g, d.recMem, rec.MemoryRequestBytes, cl)
					opt(g, d.recMemLower, rec.MemoryRequestLowerBytes, cl)
					opt(g, d.recMemUpper, rec.MemoryRequestUpperBytes, cl)
					opt(g, d.recMemLimit, rec.MemoryLimitBytes, cl)
					g(d.recSavings, rec.SavingsDollarsPerHour, cl...)
					apply := 0.0
					if rec.Apply {
						apply = 1
					}
					g(d.recApply, apply, cl...)
				}
			}
		}
		if on(d.hpaTarget, d.hpaCPU, d.hpaMem, d.hpaSavings) {
			for _, a := range w.HPA {
				g(d.hpaTarget, a.TargetUtilization, with(a.HPA, a.Resource, a.Container)...)
				g(d.hpaSavings, a.SavingsDollarsPerHour, with(a.HPA, a.Resource, a.Container)...)
				paired := d.hpaCPU
				if a.Resource == "memory" {
					paired = d.hpaMem
				}
				for _, c := range slices.Sorted(maps.Keys(a.Requests)) {
					g(paired, a.Requests[c], with(c, a.HPA)...)
				}
			}
		}
		if on(d.podCPU, d.podMem, d.podSavings) {
			for _, a := range w.Pod {
				rec := d.podCPU
				if a.Resource == "memory" {
					rec = d.podMem
				}
				g(rec, a.Request, with()...)
				g(d.podSavings, a.SavingsDollarsPerHour, with(a.Resource)...)
			}
		}
		if on(d.cost) {
			g(d.cost, w.Cost.CPU, with("cpu")...)
			g(d.cost, w.Cost.Memory, with("memory")...)
			if w.Cost.GPU > 0 {
				g(d.cost, w.Cost.GPU, with("gpu")...)
			}
		}
		if on(d.waste) {
			if w.Waste.CPU != nil {
				g(d.waste, *w.Waste.CPU, with("cpu")...)
			}
			if w.Waste.Memory != nil {
				g(d.waste, *w.Waste.Memory, with("memory")...)
			}
		}
		g(d.idleCost, w.IdleCostPerHr, l...)
	}
	for _, n := range res.Nodes {
		g(d.nodeCost, n.HourlyCost, n.Name)
		g(d.nodeInfo, 1, n.Name, n.InstanceType, n.Region, n.CapacityType, n.Price.Source, n.Price.Rule)
	}
	if len(c.s.opts.Exporter.NamespaceLabels) > 0 && on(c.nsDesc) {
		for _, ns := range res.Namespaces {
			vals := []string{ns.Name}
			for _, l := range c.s.opts.Exporter.NamespaceLabels {
				vals = append(vals, ns.Labels[l])
			}
			g(c.nsDesc, 1, vals...)
		}
	}
}

func opt(g func(*prometheus.Desc, float64, ...string), desc *prometheus.Desc, v *float64, labels []string) {
	if v != nil {
		g(desc, *v, labels...)
	}
}

func usage(g func(*prometheus.Desc, float64, ...string), desc *prometheus.Desc, labels []string, u *history.Usage) {
	if u == nil {
		return
	}
	for _, s := range []struct {
		name string
		v    *float64
	}{{"p50", u.P50}, {"p95", u.P95}, {"max", u.Max}} {
		if s.v != nil {
			g(desc, *s.v, append(append([]string{}, labels...), s.name)...)
		}
	}
}

// selfMetrics report on the exporter itself, as node_exporter reports on
// each collector.
type selfMetrics struct {
	stageDuration *prometheus.GaugeVec
	stageSuccess  *prometheus.GaugeVec
	cycles        *prometheus.CounterVec
	queryErrors   *prometheus.CounterVec
	lastSuccess   prometheus.Gauge
	objects       *prometheus.GaugeVec
	policyErrors  *prometheus.CounterVec
}

func newSelfMetrics() selfMetrics {
	m := selfMetrics{
		stageDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "upid_exporter_cycle_stage_duration_seconds", Help: "Duration of each stage of the last analysis cycle: inventory, prometheus, recommender, analysis, total."}, []string{"stage"}),
		stageSuccess:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "upid_exporter_cycle_stage_success", Help: "1 when the stage succeeded in the last cycle that reached it, else 0."}, []string{"stage"}),
		cycles:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "upid_exporter_cycles_total", Help: "Analysis cycles by result (success, failure)."}, []string{"result"}),
		queryErrors:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "upid_exporter_query_errors_total", Help: "Failed Prometheus queries, by query name."}, []string{"query"}),
		lastSuccess:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "upid_exporter_last_success_timestamp_seconds", Help: "When the last successful analysis cycle ran."}),
		objects:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "upid_exporter_objects", Help: "Objects tracked in the last good cycle, by kind (workload kinds, pod, node, namespace)."}, []string{"kind"}),
		policyErrors:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "upid_exporter_policy_errors_total", Help: "Recommendation policy values (upid.io/ labels and annotations) ignored as invalid, counted every cycle they remain, by where they were set."}, []string{"source"}),
	}
	for _, src := range []string{sourceWorkloadAnnotation, sourceNamespaceAnnotation, sourceNamespaceLabel} {
		m.policyErrors.WithLabelValues(src)
	}
	return m
}

func (m selfMetrics) stage(name string, d time.Duration, err error) {
	m.stageDuration.WithLabelValues(name).Set(d.Seconds())
	v := 1.0
	if err != nil {
		v = 0
	}
	m.stageSuccess.WithLabelValues(name).Set(v)
}

func (m selfMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.stageDuration.Describe(ch)
	m.stageSuccess.Describe(ch)
	m.cycles.Describe(ch)
	m.queryErrors.Describe(ch)
	m.lastSuccess.Describe(ch)
	m.objects.Describe(ch)
	m.policyErrors.Describe(ch)
}

func (m selfMetrics) Collect(ch chan<- prometheus.Metric) {
	m.stageDuration.Collect(ch)
	m.stageSuccess.Collect(ch)
	m.cycles.Collect(ch)
	m.queryErrors.Collect(ch)
	m.lastSuccess.Collect(ch)
	m.objects.Collect(ch)
	m.policyErrors.Collect(ch)
}

func (m selfMetrics) setObjects(objs map[string]float64) {
	m.objects.Reset()
	keys := make([]string, 0, len(objs))
	for k := range objs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m.objects.WithLabelValues(k).Set(objs[k])
	}
}
