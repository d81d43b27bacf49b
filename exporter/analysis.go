package exporter

import (
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/idle"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/pricing"
	"github.com/upid-dev/upid/exporter/recommend"
)

const bytesPerGiB = 1 << 30

// Results are the outcome of one analysis cycle, served until the next
// good one.
type Results struct {
	At         time.Time          `json:"at"`
	Window     time.Duration      `json:"-"`
	Workloads  []WorkloadResult   `json:"workloads"`
	Nodes      []NodeResult       `json:"nodes"`
	Namespaces []NamespaceResult  `json:"namespaces"`
	Objects    map[string]float64 `json:"-"`
	// problems are the policy values ignored or clamped in this cycle.
	problems []policyProblem
}

// WorkloadResult is what UPID concluded about one workload.
type WorkloadResult struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"workload"`

	Replicas float64 `json:"replicas"`
	Idle     Idle    `json:"idle"`

	RequestedCPUCores    float64 `json:"requested_cpu_cores"`
	RequestedMemoryBytes float64 `json:"requested_memory_bytes"`
	RequestedGPUs        float64 `json:"requested_gpus"`
	// CPUUsageCores is the mean over the window; nil when unknown.
	CPUUsageCores *float64          `json:"cpu_usage_cores"`
	Containers    []ContainerResult `json:"containers"`

	Cost Money `json:"cost_dollars_per_hour"`
	// Waste is requested minus used (the p95 of usage), priced; nil
	// resources are unknown for lack of usage data.
	Waste         Waste   `json:"waste_dollars_per_hour"`
	IdleCostPerHr float64 `json:"idle_cost_dollars_per_hour"`
	// Policy is the recommendation policy, present when an override, a
	// label or an annotation changed it from exporter.recommend's.
	Policy *PolicyResult `json:"policy,omitempty"`
	// HPA pairs new requests with a new target for each utilization
	// target of the workload's HPA that has figures.
	HPA []HPAAdvice `json:"hpa,omitempty"`
	// Pod sizes the pod-level requests of the resources the pod template
	// sets in spec.resources.
	Pod []PodAdvice `json:"pod_resources,omitempty"`
}

// Idle is the idle verdict with the traffic behind it.
type Idle struct {
	State                   string     `json:"state"`
	Score                   float64    `json:"score"`
	Confidence              float64    `json:"confidence"`
	Since                   *time.Time `json:"since,omitempty"`
	RealRequestsPerSecond   float64    `json:"real_requests_per_second"`
	HealthRequestsPerSecond float64    `json:"health_requests_per_second"`
	HealthShare             float64    `json:"health_share"`
	HasRequestMetrics       bool       `json:"has_request_metrics"`
	Reasons                 []string   `json:"reasons"`
}

// ContainerResult holds usage quantiles of one container over the window
// and what UPID recommends it should request.
type ContainerResult struct {
	Name string `json:"container"`
	// Sidecar marks a native sidecar: an init container with restartPolicy
	// Always, which a patch must name under initContainers.
	Sidecar        bool            `json:"sidecar,omitempty"`
	CPUCores       *history.Usage  `json:"cpu_cores,omitempty"`
	MemoryBytes    *history.Usage  `json:"memory_bytes,omitempty"`
	Recommendation *Recommendation `json:"recommendation,omitempty"`
}

// Recommendation is what a container should request, as served by the
// JSON API and the metrics. A nil request or limit means no recommendation
// for that resource (no data), except CPULimitCores, where nil with
// CPURequestCores set means "no CPU limit".
type Recommendation struct {
	OK                 bool     `json:"ok"`
	Confidence         float64  `json:"confidence"`
	Apply              bool     `json:"apply"`
	CPURequestCores    *float64 `json:"cpu_request_cores,omitempty"`
	CPULimitCores      *float64 `json:"cpu_limit_cores,omitempty"`
	MemoryRequestBytes *float64 `json:"memory_request_bytes,omitempty"`
	MemoryLimitBytes   *float64 `json:"memory_limit_bytes,omitempty"`
	// The bounds of the requests: below the lower one the container is
	// likely under-provisioned, above the upper one surely
	// over-provisioned (docs/recommendations.md).
	CPURequestLowerCores    *float64 `json:"cpu_request_lower_bound_cores,omitempty"`
	CPURequestUpperCores    *float64 `json:"cpu_request_upper_bound_cores,omitempty"`
	MemoryRequestLowerBytes *float64 `json:"memory_request_lower_bound_bytes,omitempty"`
	MemoryRequestUpperBytes *float64 `json:"memory_request_upper_bound_bytes,omitempty"`
	// What applying it saves for all replicas (negative when the
	// container needs more), per hour as the metric has it and per month.
	SavingsDollarsPerHour float64  `json:"savings_dollars_per_hour"`
	MonthlySavings        float64  `json:"monthly_savings_dollars"`
	Reasons               []string `json:"reasons,omitempty"`
}

func recommendationOf(r recommend.Recommendation) *Recommendation {
	out := &Recommendation{OK: r.OK, Confidence: r.Confidence, Apply: r.Apply, Reasons: r.Reasons}
	if !r.OK {
		return out
	}
	v := func(x float64) *float64 { return &x }
	if r.CPU.OK {
		out.CPURequestCores = v(r.CPU.Request)
		out.CPURequestLowerCores, out.CPURequestUpperCores = v(r.CPU.Lower), v(r.CPU.Upper)
		if r.CPU.Limit > 0 {
			out.CPULimitCores = v(r.CPU.Limit)
		}
	}
	if r.Memory.OK {
		out.MemoryRequestBytes = v(r.Memory.Request)
		out.MemoryRequestLowerBytes, out.MemoryRequestUpperBytes = v(r.Memory.Lower), v(r.Memory.Upper)
		if r.Memory.Limit > 0 {
			out.MemoryLimitBytes = v(r.Memory.Limit)
		}
	}
	if !math.IsNaN(r.MonthlySavings) && !math.IsInf(r.MonthlySavings, 0) {
		out.SavingsDollarsPerHour = r.MonthlySavings / pricing.HoursPerMonth
		out.MonthlySavings = r.MonthlySavings
	}
	return out
}

// Money is dollars per hour by resource.
type Money struct {
	CPU    float64 `json:"cpu"`
	Memory float64 `json:"memory"`
	GPU    float64 `json:"gpu"`
	Total  float64 `json:"total"`
}

// Waste is dollars per hour by resource; nil means unknown.
type Waste struct {
	CPU    *float64 `json:"cpu"`
	Memory *float64 `json:"memory"`
}

// NodeResult is the price of one node and where it came from.
type NodeResult struct {
	Name         string        `json:"node"`
	InstanceType string        `json:"instance_type"`
	Region       string        `json:"region"`
	CapacityType string        `json:"capacity_type"`
	Price        pricing.Price `json:"price"`
	HourlyCost   float64       `json:"cost_dollars_per_hour"`
}

// NamespaceResult carries the allow-listed labels of a namespace.
type NamespaceResult struct {
	Name   string            `json:"namespace"`
	Labels map[string]string `json:"labels,omitempty"`
}

// recommend sizes one container from the recommender's state.
func (a *analyzer) recommend(h *history.Workload, c string, cur inventory.Container, hpa []inventory.HPAResource, pod inventory.PodResources, replicas float64, prices recommend.Prices, p recommend.Policy) recommend.Recommendation {
	current := recommend.Resources{CPURequest: cur.CPURequest, CPULimit: cur.CPULimit, MemoryRequest: cur.MemoryRequest, MemoryLimit: cur.MemoryLim}
	hpaCPU, hpaMemory := inventory.Scales(hpa, "cpu", c), inventory.Scales(hpa, "memory", c)
	podCPU, podMemory := pod.Sets("cpu"), pod.Sets("memory")
	if inputs, ok := h.ContainerInputs[c]; ok {
		// The state keeps exporter.window; a shorter policy window reads
		// only its last days (the CPU histogram decays instead).
		// The state holds the limit of the pod an OOM kill hit (else its
		// peak), never the template's now: once UPID's bump is applied,
		// that would bump again from UPID's own output, every cycle.
		in := inputs(p.Window)
		in.Current, in.Replicas, in.Prices = current, replicas, prices
		in.HPACPU, in.HPAMemory = hpaCPU, hpaMemory
		in.PodCPU, in.PodMemory = podCPU, podMemory
		return recommend.Recommend(in, p)
	}
	// Without a state (a namespace still being backfilled, or a container
	// Prometheus has no samples of) there is nothing to size from; the
	// recommendation says so, with the workload's coverage for its reason.
	in := recommend.Inputs{Window: p.Window, Current: current, Replicas: replicas, Prices: prices, MemoryPeak: math.NaN(),
		HPACPU: hpaCPU, HPAMemory: hpaMemory, PodCPU: podCPU, PodMemory: podMemory}
	if h.Coverage != nil {
		in.Coverage = *h.Coverage
	}
	return recommend.Recommend(in, p)
}

// workloadPolicy resolves the workload's policy, records it on r when it is
// not the cluster's, and its problems on res.
func (a *analyzer) workloadPolicy(r *WorkloadResult, w inventory.Workload, nsLayers []policyLayer, res *Results) recommend.Policy {
	layers, problems := workloadLayers(w, nsLayers)
	res.problems = append(res.problems, problems...)
	p, src, clampedFrom := resolveWorkload(a.policy, a.overrides[w.Namespace], a.recWindow, w.ID, layers)
	if clampedFrom > 0 {
		res.problems = append(res.problems, policyProblem{
			Namespace: w.Namespace, Kind: w.Kind, Workload: w.Name, Key: src["window"], Value: model.Duration(clampedFrom).String(),
			Msg: "longer than exporter.recommend.window, the history the recommender keeps; clamped to " + model.Duration(a.recWindow).String(),
		})
	}
	if len(src) > 0 {
		r.Policy = policyResult(p, src, clampedFrom)
	}
	return p
}

// matchers tell health traffic from real traffic.
type matchers struct {
	paths  []string
	agents []*regexp.Regexp
}

// scraperAgent matches the user agents of metric scrapers. Their requests
// are health traffic only where they scrape or check (a health path, the
// workload's prometheus.io/path, /metrics): Prometheus also POSTs alerts to
// Alertmanager and remote-writes to receivers, which is those workloads'
// real work. A probe's or load balancer's agent is health on any path.
var scraperAgent = regexp.MustCompile(`^(Prometheus|GrafanaAgent|Alloy)/|^vm_promscrape`)

// isHealth says whether a request is health traffic: on a health path or
// one of scrapePaths (the workload's prometheus.io/path, nil for requests
// counted per Service), or from a health agent where it checks.
func (m matchers) isHealth(rc history.RequestCount, scrapePaths map[string]bool) bool {
	if m.isHealthPath(rc.Path) || rc.Path != "" && scrapePaths[rc.Path] {
		return true
	}
	if rc.UserAgent != "" && slices.ContainsFunc(m.agents, func(re *regexp.Regexp) bool { return re.MatchString(rc.UserAgent) }) {
		// A scraper on an unknown path (a source without path labels)
		// counts as real: that errs away from idle.
		return !scraperAgent.MatchString(rc.UserAgent) || underPath(rc.Path, "/metrics")
	}
	return false
}

// isHealthPath says whether path is one of the health paths, or under one.
func (m matchers) isHealthPath(path string) bool {
	return path != "" && slices.ContainsFunc(m.paths, func(p string) bool { return underPath(path, p) })
}

// underPath is path equal to p or below it (p followed by /).
func underPath(path, p string) bool { return path == p || strings.HasPrefix(path, p+"/") }

// traffic is what a workload's request series say, before the verdict.
type traffic struct {
	// own are the series of the workload's pods (an application's or a
	// mesh's own counters); viaService those counted by a Service in front
	// of them (an ingress's).
	own, viaService []history.RequestCount
	// probes are the requests the kubelet's HTTP probes make over the
	// window, by path; scrapePaths the workload's prometheus.io/path.
	probes      map[string]float64
	scrapePaths map[string]bool
}

// split counts the requests and those of them that are health checks.
// Kubelet probes and Prometheus scrapes reach pods directly, never
// through a Service, so on viaService only user agents and the configured
// health paths tell. A probe path can be the application's own ("/", an API
// path): on it at most the requests the probes make are health, the rest
// real, or a probe on "/" would hide every real request to "/". Probes
// already told by their user agent (kube-probe/) use up that allowance:
// counted again, they hid as many real requests (found in review: 100,000
// browser requests a week to "/" scored idle at confidence 1).
func (m matchers) split(t traffic) (total, health float64) {
	onProbePath, told := map[string]float64{}, map[string]float64{}
	for _, rc := range t.own {
		total += rc.Count
		onProbe := rc.Path != "" && t.probes[rc.Path] > 0
		switch {
		case m.isHealth(rc, t.scrapePaths):
			health += rc.Count
			if onProbe {
				told[rc.Path] += rc.Count
			}
		case onProbe:
			onProbePath[rc.Path] += rc.Count
		}
	}
	for path, n := range onProbePath {
		health += min(n, max(0, t.probes[path]-told[path]))
	}
	for _, rc := range t.viaService {
		total += rc.Count
		if m.isHealth(rc, nil) {
			health += rc.Count
		}
	}
	return total, health
}

// analyzer turns one inventory snapshot and one history snapshot into results.
type analyzer struct {
	// window is the idle analysis's (exporter.window); recWindow the
	// recommender's, the longest a workload's policy can have.
	window, recWindow time.Duration
	params            idle.Params
	matchers          matchers
	pricing           *pricing.File
	// policy is the cluster's (exporter.recommend), overrides its
	// exceptions; annotations and labels are read each cycle.
	policy    recommend.Policy
	overrides map[string][]policyOverride // by namespace
	// owns says whether this shard reports a node or a namespace (by its
	// name): each is reported by one shard, as each workload is, so that
	// sums over the shards count it once. nil: this exporter is the only one.
	owns func(name string) bool
}

func (a *analyzer) analyze(inv inventory.Snapshot, hist *history.Snapshot, at time.Time) *Results {
	res := &Results{At: at, Window: a.window, Objects: map[string]float64{}}
	pricer := pricing.New(a.pricing, hist.OpenCost)

	prices := map[string]pricing.Price{}
	for _, n := range inv.Nodes {
		node := pricing.NodeFromObject(n)
		p := pricer.Price(node)
		prices[n.Name] = p
		if a.owns != nil && !a.owns(n.Name) {
			continue // priced for the pods on it; another shard reports it
		}
		res.Nodes = append(res.Nodes, NodeResult{
			Name: node.Name, InstanceType: node.InstanceType, Region: node.Region, CapacityType: node.CapacityType,
			Price: p, HourlyCost: p.NodeHourly(node),
		})
	}
	// Pods not yet on a node, or on one the cache has not seen, are priced
	// by the rates that apply to a node nobody knows anything about.
	unknownNode := pricer.Price(pricing.Node{})

	// Series that name a workload but not its kind (a mesh's
	// destination_workload) attach to the inventory workload of that name.
	byName := map[[2]string][]history.RequestCount{}
	// reqCoverage is the largest coverage of the request series that
	// reach a workload, by namespace and name, from any source.
	reqCoverage := map[[2]string]float64{}
	cover := func(k [2]string, c *float64) {
		if c != nil {
			reqCoverage[k] = math.Max(reqCoverage[k], *c)
		}
	}
	for k, w := range hist.Workloads {
		if k.Kind == "" {
			byName[[2]string{k.Namespace, k.Workload}] = append(byName[[2]string{k.Namespace, k.Workload}], w.Requests...)
			cover([2]string{k.Namespace, k.Workload}, w.RequestCoverage)
		}
	}

	// Traffic counted per Service counts for every workload it selects: a
	// Service in front of two workloads makes both look used, which errs on
	// the side of never calling a used workload idle.
	viaService := map[[2]string][]history.RequestCount{}
	// selected are the workloads some Service selects: the others' work
	// does not come as requests any source counts.
	selected := map[inventory.ID]bool{}
	for _, ids := range inv.Selects {
		for _, id := range ids {
			selected[id] = true
		}
	}
	for svc, reqs := range hist.ServiceRequests {
		for _, id := range inv.Selects[svc] {
			k := [2]string{id.Namespace, id.Name}
			viaService[k] = append(viaService[k], reqs...)
			if c, ok := hist.ServiceRequestCoverage[svc]; ok {
				cover(k, &c)
			}
		}
	}

	// Each namespace's labels and annotations are read once a cycle, so a
	// bad value is reported once, not once per workload.
	nsLayers, problems := namespaceLayers(inv.Namespaces)
	res.problems = append(res.problems, problems...)

	secs := a.window.Seconds()
	for _, w := range inv.Workloads {
		res.Objects[strings.ToLower(w.Kind)]++
		h := hist.Workloads[history.Key{Namespace: w.Namespace, Kind: w.Kind, Workload: w.Name}]
		if h == nil {
			h = &history.Workload{}
		}
		tr := traffic{
			own:        append(append([]history.RequestCount{}, h.Requests...), byName[[2]string{w.Namespace, w.Name}]...),
			viaService: viaService[[2]string{w.Namespace, w.Name}],
		}

		r := WorkloadResult{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name}
		in := idle.Inputs{
			Kind: w.Kind, Window: a.window, End: at,
			Coverage:      h.Coverage,
			ProbeRequests: h.Probes,
			NoService:     !selected[w.ID],
		}
		switch {
		case h.Replicas != nil:
			in.Replicas = *h.Replicas
		default:
			// Without kube-state-metrics history the pods running now are the
			// best count; the coverage check still guards the verdict.
			in.Replicas = float64(w.Pods)
		}
		r.Replicas = in.Replicas
		switch w.Kind {
		case inventory.KindDeployment, inventory.KindStatefulSet, inventory.KindReplicaSet, inventory.KindRollout:
			d := float64(w.Replicas)
			in.DesiredReplicas = &d
		}
		perReplica := 0.0
		tr.probes, tr.scrapePaths = map[string]float64{}, map[string]bool{}
		// replicas averages only the time pods ran: the probes ran for the
		// covered share of the window (found in review: pods that ran 90 %
		// of the week were granted a whole week of probes, which hid real
		// requests on the probes' path).
		ran := 1.0
		if h.Coverage != nil && *h.Coverage >= 0 && *h.Coverage < 1 {
			ran = *h.Coverage
		}
		for _, p := range w.Probes {
			perReplica += 1 / p.Period.Seconds()
			// A startup probe stops at the first success: its few requests
			// count as real, which errs away from idle.
			if p.Path != "" && p.Type != "Startup" {
				tr.probes[p.Path] += in.Replicas * secs * ran / p.Period.Seconds()
			}
		}
		if h.Probes != nil {
			// The kubelet's own count of the probes it ran bounds them
			// too: replicas is an average over the time pods ran, so
			// pods that ran an hour of the day would otherwise be granted
			// a day of probes.
			for path, n := range tr.probes {
				tr.probes[path] = min(n, *h.Probes)
			}
		}
		for _, p := range w.MetricsPaths {
			tr.scrapePaths[p] = true
		}
		in.ExpectedProbesPerSecond = perReplica * in.Replicas
		if len(tr.own)+len(tr.viaService) > 0 {
			total, health := a.matchers.split(tr)
			uncountable := func(rc history.RequestCount) bool { return !(rc.Count >= 0) }
			// One series that cannot be counted (NaN, ±Inf, negative, or
			// a sum past float64) makes the traffic unknown: the rest may
			// be only the health checks.
			if total >= 0 && !math.IsInf(total, 0) && !slices.ContainsFunc(tr.own, uncountable) && !slices.ContainsFunc(tr.viaService, uncountable) {
				in.TotalRequests, in.HealthRequests = &total, &health
				r.Idle.HasRequestMetrics = true
				// Counts whose coverage is unknown (its query failed) are
				// taken as covering nothing: missing data is never idle.
				c := reqCoverage[[2]string{w.Namespace, w.Name}]
				if h.RequestCoverage != nil {
					c = math.Max(c, *h.RequestCoverage)
				}
				in.RequestCoverage = &c
			}
		}
		if h.CPUSeconds != nil {
			mean := *h.CPUSeconds / secs
			in.CPUCoresMean = &mean
			r.CPUUsageCores = &mean
		}
		if h.CPUPodP95Cores != nil {
			p95 := *h.CPUPodP95Cores * math.Max(in.Replicas, 1)
			in.CPUCoresP95 = &p95
		}
		if h.NetworkRxBytes != nil {
			rx := *h.NetworkRxBytes / secs
			in.NetworkRxBytesPerSecond = &rx
		}
		v := idle.Score(in, a.params)
		r.Idle = Idle{
			State: string(v.State), Score: v.Score, Confidence: v.Confidence, Since: v.IdleSince,
			RealRequestsPerSecond: v.RealRequestsPerSecond, HealthRequestsPerSecond: v.HealthRequestsPerSecond,
			HealthShare: v.HealthShare, HasRequestMetrics: r.Idle.HasRequestMetrics, Reasons: v.Reasons,
		}

		// Requests and cost: what the pods scheduled on each node request
		// now, at that node's price (the defaults for pods not scheduled yet).
		for _, nr := range w.Requests {
			p, ok := prices[nr.Node]
			if !ok {
				p = unknownNode
			}
			r.RequestedCPUCores += nr.CPU
			r.RequestedMemoryBytes += nr.Memory
			r.RequestedGPUs += nr.GPUs
			r.Cost.CPU += nr.CPU * p.CPUPerCoreHour
			r.Cost.Memory += nr.Memory / bytesPerGiB * p.MemoryPerGiBHour
			r.Cost.GPU += nr.GPUs * p.GPUPerHour
		}
		r.Cost.Total = r.Cost.CPU + r.Cost.Memory + r.Cost.GPU

		names := make([]string, 0, len(h.ContainerCPU)+len(h.ContainerMemory))
		for c := range h.ContainerCPU {
			names = append(names, c)
		}
		for c := range h.ContainerMemory {
			if h.ContainerCPU[c] == nil {
				names = append(names, c)
			}
		}
		sort.Strings(names)
		current := map[string]inventory.Container{}
		for _, c := range w.Containers {
			if !c.Init || c.Sidecar {
				current[c.Name] = c
			}
		}
		prices := recommend.Prices{CPUCoreHour: unknownNode.CPUPerCoreHour, MemoryGiBHour: unknownNode.MemoryPerGiBHour}
		if r.RequestedCPUCores > 0 && r.Cost.CPU > 0 {
			prices.CPUCoreHour = r.Cost.CPU / r.RequestedCPUCores
		}
		if r.RequestedMemoryBytes > 0 && r.Cost.Memory > 0 {
			prices.MemoryGiBHour = r.Cost.Memory / (r.RequestedMemoryBytes / bytesPerGiB)
		}
		policy := a.workloadPolicy(&r, w, nsLayers[w.Namespace], res)
		var cpuP95, memP95 float64
		cpuKnown, memKnown := len(h.ContainerCPU) > 0, len(h.ContainerMemory) > 0
		var recs map[string]recommend.Recommendation // for the HPA's pairs and the pod's figures
		if len(w.HPAUtilization) > 0 || w.Pod.Sets("cpu") || w.Pod.Sets("memory") {
			recs = map[string]recommend.Recommendation{}
		}
		for _, c := range names {
			cr := ContainerResult{Name: c, Sidecar: current[c].Sidecar, CPUCores: h.ContainerCPU[c], MemoryBytes: h.ContainerMemory[c]}
			// Only containers of the current template get a recommendation:
			// one for a container that no longer exists applies to nothing.
			if cur, ok := current[c]; ok {
				rec := a.recommend(h, c, cur, w.HPAUtilization, w.Pod, r.Replicas, prices, policy)
				cr.Recommendation = recommendationOf(rec)
				if recs != nil {
					recs[c] = rec
				}
			}
			r.Containers = append(r.Containers, cr)
			if u := cr.CPUCores; u != nil && u.P95 != nil {
				cpuP95 += *u.P95
			}
			if u := cr.MemoryBytes; u != nil && u.P95 != nil {
				memP95 += *u.P95
			}
		}
		if recs != nil {
			r.HPA = hpaAdvice(w, current, recs, prices, r.Replicas, policy.ChangeThreshold)
			r.Pod = podAdvice(w, current, recs, prices, r.Replicas, policy.ChangeThreshold)
		}
		// Waste: what is requested beyond the p95 of use, at the price this
		// workload pays; headroom under the p95 is needed, not waste. Only
		// the requests of containers whose use is known count.
		pods := math.Max(in.Replicas, 1)
		cpuShare := seenShare(w, "cpu", r.RequestedCPUCores, func(c inventory.Container) float64 { return c.CPURequest }, h.ContainerCPU)
		if cpuKnown && r.RequestedCPUCores > 0 && cpuShare > 0 {
			wst := math.Max(0, r.RequestedCPUCores*cpuShare-cpuP95*pods) * r.Cost.CPU / r.RequestedCPUCores
			r.Waste.CPU = &wst
		}
		memShare := seenShare(w, "memory", r.RequestedMemoryBytes, func(c inventory.Container) float64 { return c.MemoryRequest }, h.ContainerMemory)
		if memKnown && r.RequestedMemoryBytes > 0 && memShare > 0 {
			wst := math.Max(0, r.RequestedMemoryBytes*memShare-memP95*pods) * r.Cost.Memory / r.RequestedMemoryBytes
			r.Waste.Memory = &wst
		}
		if v.State == idle.StateIdle {
			r.IdleCostPerHr = r.Cost.Total
		}
		res.Workloads = append(res.Workloads, r)
	}
	for _, ns := range inv.Namespaces {
		if a.owns == nil || a.owns(ns.Name) {
			res.Namespaces = append(res.Namespaces, NamespaceResult{Name: ns.Name, Labels: ns.Labels})
		}
	}
	res.Objects["pod"] = float64(inv.Pods)
	res.Objects["node"] = float64(len(inv.Nodes))
	res.Objects["namespace"] = float64(len(inv.Namespaces))
	return res
}

// seenShare is the share of what the workload's pods request of a resource
// that belongs to containers whose use is known (in used). The rest is
// neither waste nor known to be used: requests the template does not
// account for (a sidecar injected at admission, whose use the recommender
// does not read; a LimitRange's defaults; an init container larger than
// the rest) and those of a template container without history. Pods that
// set the resource at pod level share it among all their containers, and
// count whole. 0 means no request is known to be used: the waste is unknown.
func seenShare(w inventory.Workload, resource string, requested float64, request func(inventory.Container) float64, used map[string]*history.Usage) float64 {
	if w.Pod.Sets(resource) || w.Pods == 0 || requested <= 0 {
		return 1
	}
	var template, seen float64
	for _, c := range w.Containers {
		if c.Init && !c.Sidecar {
			continue
		}
		template += request(c)
		if u := used[c.Name]; u != nil && u.P95 != nil {
			seen += request(c)
		}
	}
	// A pod of an older revision may request less than the template.
	perPod := math.Max(requested/float64(w.Pods), template)
	return math.Min(1, seen/perPod)
}
