package demo

import (
	"math"
	"time"
)

// The demo cluster: three EKS nodes and the workloads below, one per case. Usage comes
// from the traces in traces/ (see traces/ATTRIBUTION.md), scaled to each workload's own
// units; health traffic follows from the pod specs (probe periods, scrape annotations)
// exactly as kubelet, Prometheus and a load balancer would produce it.

// Verdicts a case expects from exporter/idle with its default parameters.
const (
	ExpectIdle          = "idle"
	ExpectActive        = "active"
	ExpectUnknown       = "unknown"
	ExpectNotApplicable = "not_applicable"
)

// Case is one workload of the demo cluster and what UPID should conclude about it.
type Case struct {
	Namespace, Kind, Name string
	// Expect is the idle verdict with default parameters: ExpectIdle, ExpectActive,
	// ExpectUnknown or ExpectNotApplicable.
	Expect string
	// LowConfidence marks an idle verdict that rests on CPU and network alone, which
	// automation must not act on.
	LowConfidence bool
	// Why tells the story of the case in one sentence.
	Why string
}

// Request user agents as the clients send them.
const (
	agentProbe      = "kube-probe/1.35"
	agentPrometheus = "Prometheus/3.5.0"
	agentELB        = "ELB-HealthChecker/2.0"
)

// scrapeInterval is how often Prometheus scrapes annotated pods, as their request
// counters count it; the history itself keeps one sample a minute of every target.
const scrapeInterval = 30 * time.Second

type probe struct {
	typ     string // Liveness or Readiness, as prober_probe_total spells probe_type
	handler string // http, tcp or exec
	path    string
	port    int32
	period  int32 // seconds
}

type container struct {
	name, image    string
	cpuReq, cpuLim float64 // cores; 0 is unset
	memReq, memLim float64 // bytes; 0 is unset
	probes         []probe
	cpu            func(p *pod, t time.Time) float64 // cores
	mem            func(p *pod, t time.Time) float64 // bytes
}

// route is a share of a workload's real traffic.
type route struct {
	path, method, code, agent string
	share                     float64
}

// app describes a workload's own http_requests_total, if it has one. Applications
// disagree on label names, so each case picks its own.
type app struct {
	pathLabel, codeLabel string
	userAgent            bool // the app labels requests with user_agent
	routes               []route
	// real is the workload's real request rate, requests/s over all replicas.
	real func(t time.Time) float64
	// lbCheckers load-balancer nodes each check every pod every lbPeriod on /health.
	lbCheckers int
	lbPeriod   int32
}

type schedule struct {
	every, runFor time.Duration
	keep          int // successfulJobsHistoryLimit
	cron          string
}

type workload struct {
	Case
	replicas    int
	containers  []container
	annotations map[string]string // pod template
	port        int32
	app         *app
	// rxBase is what a pod receives without any request: DNS, kubelet, ARP; rxPerRequest
	// what each request adds, health or real.
	rxBase, rxPerRequest float64
	// noMetrics: the objects exist but no series were ever scraped.
	noMetrics bool
	hpa       *[2]int32 // min, max
	// podResources are the pod-level requests and limits (spec.resources).
	podResources *podResources
	cron         *schedule
	// rolledOut is how long ago a Deployment replaced its ReplicaSet; 0 for never.
	rolledOut time.Duration
	// age is how long ago the workload was created.
	age time.Duration
}

// podResources are a pod's own requests and limits, in cores and bytes; 0
// is unset.
type podResources struct{ cpuReq, memReq, memLim float64 }

func (w *workload) scraped() bool { return w.annotations["prometheus.io/scrape"] == "true" }

const (
	mi = 1 << 20
	gi = 1 << 30
)

// Azure VMs whose CPU profiles drive the cases (columns of traces/azure_v1_avg_cpu_5min.csv).
const (
	vmDiurnal  = "737498"  // strong daily cycle: a customer-facing service
	vmLowDaily = "1633630" // weaker daily cycle: internal tools
	vmSteady   = "618849"  // flat around 48%: a database
	vmQuiet    = "706726"  // near-idle with jitter: runtime timers and GC
	vmBursty   = "1942922" // long quiet stretches and spikes: a batch job
	vmWorker   = "955492"  // busy with a daily cycle: a queue consumer
	vmAgent    = "1338378" // steady with small spikes: a node agent
)

// healthRate is the health requests/s one pod of w receives: HTTP probes, scrapes and
// load-balancer checks, whether or not the application counts them.
func (w *workload) healthRate() float64 {
	r := 0.0
	for _, c := range w.containers {
		for _, p := range c.probes {
			if p.handler == "http" {
				r += 1 / float64(p.period)
			}
		}
	}
	if w.scraped() {
		r += 1 / scrapeInterval.Seconds()
	}
	if w.app != nil && w.app.lbCheckers > 0 {
		r += float64(w.app.lbCheckers) / float64(w.app.lbPeriod)
	}
	return r
}

// idleCPU is a replica with no real work: base cores wobbling with a near-idle VM's
// profile, plus a millisecond for each health request it answers.
func idleCPU(tr *traces, base float64, w *workload) func(p *pod, t time.Time) float64 {
	quiet := tr.azure[vmQuiet].shape()
	health := w.healthRate()
	return func(p *pod, t time.Time) float64 {
		return base*quiet.at(t.Add(p.phase)) + health*0.001
	}
}

// steadyMemory is a working set that breathes a little with the profile of tr.
func steadyMemory(tr trace, bytes, swing float64) func(p *pod, t time.Time) float64 {
	s := tr.shape()
	return func(p *pod, t time.Time) float64 { return bytes * (1 + swing*(s.at(t.Add(p.phase))-1)) }
}

// borgCPU maps a Borg task's usage relative to its request onto a container's request:
// replicas alternate between the two tasks given, later pairs shifted by twelve hours so
// that no two replicas move in lockstep.
func borgCPU(a, b *borgTask, request float64) func(p *pod, t time.Time) float64 {
	return func(p *pod, t time.Time) float64 {
		task := a
		if p.index%2 == 1 {
			task = b
		}
		return request * task.cpu.at(t.Add(time.Duration(p.index/2)*12*time.Hour))
	}
}

func borgMemory(a, b *borgTask, bytes float64) func(p *pod, t time.Time) float64 {
	return func(p *pod, t time.Time) float64 {
		task := a
		if p.index%2 == 1 {
			task = b
		}
		return bytes * task.memory.at(t.Add(time.Duration(p.index/2)*12*time.Hour))
	}
}

func httpProbe(typ, path string, period int32) probe {
	return probe{typ: typ, handler: "http", path: path, port: 8080, period: period}
}

// cluster returns the demo's workloads. Every number is chosen against the defaults of
// docs/idle-score.md so that each case lands clearly on its side of the verdict.
func cluster(tr *traces) []*workload {
	diurnal := tr.azure[vmDiurnal].shape()
	lowDaily := tr.azure[vmLowDaily].shape()
	bursty := tr.azure[vmBursty].shape()
	quiet := tr.azure[vmQuiet]

	coupons := &workload{
		Case: Case{Namespace: "shop", Kind: "Deployment", Name: "legacy-coupons", Expect: ExpectIdle,
			Why: "replaced by the promotions service a year ago; only kubelet probes on /healthz and /ready keep its request counter moving"},
		replicas: 2, port: 8080, age: 400 * 24 * time.Hour,
		containers: []container{{
			name: "coupons", image: "registry.example.com/shop/legacy-coupons:1.14.2",
			cpuReq: 0.25, memReq: 256 * mi, memLim: 512 * mi,
			probes: []probe{httpProbe("Liveness", "/healthz", 10), httpProbe("Readiness", "/ready", 5)},
			mem:    steadyMemory(quiet, 88*mi, 0.05),
		}},
		app:    &app{pathLabel: "handler", codeLabel: "code"},
		rxBase: 350, rxPerRequest: 600,
	}
	coupons.containers[0].cpu = idleCPU(tr, 0.0016, coupons)
	archive := &workload{
		Case: Case{Namespace: "marketing", Kind: "Deployment", Name: "campaign-archive", Expect: ExpectIdle,
			Why: "nobody opens the old campaigns; the only requests are Prometheus scraping /metrics every 30 s"},
		replicas: 1, port: 8080, age: 250 * 24 * time.Hour,
		annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics", "prometheus.io/port": "8080"},
		containers: []container{{
			name: "archive", image: "registry.example.com/marketing/campaign-archive:3.0.7",
			cpuReq: 0.1, memReq: 128 * mi, memLim: 256 * mi,
			probes: []probe{{typ: "Liveness", handler: "tcp", port: 8080, period: 20}},
			mem:    steadyMemory(quiet, 61*mi, 0.05),
		}},
		app:    &app{pathLabel: "handler", codeLabel: "code"},
		rxBase: 300, rxPerRequest: 2000,
	}
	archive.containers[0].cpu = idleCPU(tr, 0.0014, archive)
	banner := &workload{
		Case: Case{Namespace: "shop", Kind: "Deployment", Name: "promo-banner", Expect: ExpectIdle,
			Why: "its ingress rule was removed, but the ALB still health-checks /health from two nodes, and kubelet probes /ready"},
		replicas: 2, port: 8080, age: 300 * 24 * time.Hour,
		containers: []container{{
			name: "banner", image: "registry.example.com/shop/promo-banner:2.4.0",
			cpuReq: 0.2, memReq: 256 * mi, memLim: 256 * mi,
			probes: []probe{httpProbe("Readiness", "/ready", 10), {typ: "Liveness", handler: "tcp", port: 8080, period: 20}},
			mem:    steadyMemory(quiet, 74*mi, 0.05),
		}},
		app:    &app{pathLabel: "path", codeLabel: "code", userAgent: true, lbCheckers: 2, lbPeriod: 15},
		rxBase: 350, rxPerRequest: 600,
	}
	banner.containers[0].cpu = idleCPU(tr, 0.0018, banner)
	search := &workload{
		Case: Case{Namespace: "support", Kind: "Deployment", Name: "ticket-search", Expect: ExpectActive,
			Why: "support agents search tickets about once a minute; little traffic, but real; sized at pod level (spec.resources)"},
		replicas: 1, port: 8080, age: 200 * 24 * time.Hour,
		podResources: &podResources{cpuReq: 0.25, memReq: 384 * mi, memLim: 512 * mi},
		containers: []container{{
			name: "search", image: "registry.example.com/support/ticket-search:0.9.3",
			cpuReq: 0.1, memReq: 256 * mi, // within the pod's budget
			probes: []probe{httpProbe("Liveness", "/healthz", 10), httpProbe("Readiness", "/ready", 10)},
			mem:    steadyMemory(tr.azure[vmLowDaily], 210*mi, 0.15),
		}},
		app: &app{pathLabel: "path", codeLabel: "status", userAgent: true,
			routes: []route{{path: "/api/search", method: "GET", code: "200", agent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", share: 1}},
			// One request a minute on average, following the internal-tools profile.
			real: func(t time.Time) float64 { return lowDaily.at(t) / 60 },
		},
		rxBase: 400, rxPerRequest: 900,
	}
	searchIdle := idleCPU(tr, 0.0015, search)
	search.containers[0].cpu = func(p *pod, t time.Time) float64 {
		// 40 ms of CPU per search on top of an idle runtime.
		return searchIdle(p, t) + search.app.real(t)*0.04
	}

	borg := tr.borg
	checkout := &workload{
		Case: Case{Namespace: "shop", Kind: "Deployment", Name: "checkout", Expect: ExpectActive,
			Why: "the busiest service, sized well: CPU follows a Borg task that uses about half its request"},
		replicas: 3, port: 8080, age: 500 * 24 * time.Hour, rolledOut: 3*24*time.Hour + 7*time.Hour,
		hpa:         &[2]int32{3, 12},
		annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics", "prometheus.io/port": "8080"},
		containers: []container{{
			name: "checkout", image: "registry.example.com/shop/checkout:5.31.0",
			cpuReq: 0.5, memReq: 512 * mi, memLim: 1 * gi,
			probes: []probe{httpProbe("Liveness", "/healthz", 10), httpProbe("Readiness", "/ready", 5)},
			cpu:    borgCPU(borg["borg_job113_22"], borg["borg_job113_75"], 0.5),
			mem:    borgMemory(borg["borg_job113_22"], borg["borg_job113_75"], 512*mi),
		}},
		app: &app{pathLabel: "handler", codeLabel: "code", userAgent: true,
			routes: []route{
				{path: "/api/cart", method: "GET", code: "200", agent: "storefront/4.2.1", share: 0.58},
				{path: "/api/cart", method: "POST", code: "200", agent: "storefront/4.2.1", share: 0.2},
				{path: "/api/checkout", method: "POST", code: "200", agent: "storefront/4.2.1", share: 0.195},
				{path: "/api/checkout", method: "POST", code: "500", agent: "storefront/4.2.1", share: 0.005},
				{path: "/api/orders", method: "GET", code: "200", agent: "okhttp/4.12.0", share: 0.02},
			},
			real: func(t time.Time) float64 { return 14 * diurnal.at(t) },
		},
		rxBase: 500, rxPerRequest: 2500,
	}
	reports := &workload{
		Case: Case{Namespace: "analytics", Kind: "Deployment", Name: "report-builder", Expect: ExpectActive,
			Why: "used every day but sized for a launch that never came: 2 cores and 4 GiB per replica, using a Borg task's 7% of its request"},
		replicas: 3, port: 8080, age: 180 * 24 * time.Hour,
		containers: []container{{
			name: "builder", image: "registry.example.com/analytics/report-builder:2.2.0",
			cpuReq: 2, cpuLim: 4, memReq: 4 * gi, memLim: 4 * gi,
			probes: []probe{httpProbe("Liveness", "/healthz", 15), httpProbe("Readiness", "/healthz", 15)},
			cpu:    borgCPU(borg["borg_job382_2"], borg["borg_job382_27"], 2),
			mem:    borgMemory(borg["borg_job382_2"], borg["borg_job382_27"], 700*mi),
		}},
		app: &app{pathLabel: "path", codeLabel: "status",
			routes: []route{{path: "/api/reports", method: "GET", code: "200", share: 0.8}, {path: "/api/reports", method: "POST", code: "201", share: 0.2}},
			// About six reports a minute, on the internal-tools profile a day later.
			real: func(t time.Time) float64 { return 0.1 * lowDaily.at(t.Add(24*time.Hour)) },
		},
		rxBase: 500, rxPerRequest: 1500,
	}
	rollup := &workload{
		Case: Case{Namespace: "analytics", Kind: "CronJob", Name: "usage-rollup", Expect: ExpectNotApplicable,
			Why: "rolls up usage every four hours for 25 minutes; quiet in between by design"},
		replicas: 1, age: 150 * 24 * time.Hour,
		cron: &schedule{every: 4 * time.Hour, runFor: 25 * time.Minute, keep: 3, cron: "0 */4 * * *"},
		containers: []container{{
			name: "rollup", image: "registry.example.com/analytics/usage-rollup:1.6.1",
			cpuReq: 1, cpuLim: 2, memReq: 2 * gi, memLim: 2 * gi,
			cpu: func(p *pod, t time.Time) float64 { return math.Min(2, 0.25+0.35*bursty.at(t)) },
			mem: func(p *pod, t time.Time) float64 {
				// The working set grows as the rollup accumulates rows.
				return 300*mi + 1200*mi*math.Min(1, t.Sub(p.running[0]).Minutes()/20)
			},
		}},
		rxBase: 200000, // reads the raw usage from the database
	}
	db := &workload{
		Case: Case{Namespace: "data", Kind: "StatefulSet", Name: "orders-db", Expect: ExpectActive,
			Why: "PostgreSQL primary and replica: no HTTP request metrics, but steady CPU far above any idle floor"},
		replicas: 2, port: 5432, age: 600 * 24 * time.Hour,
		containers: []container{{
			name: "postgres", image: "docker.io/library/postgres:17.6",
			cpuReq: 1, memReq: 4 * gi, memLim: 4 * gi,
			probes: []probe{{typ: "Liveness", handler: "exec", period: 10}, {typ: "Readiness", handler: "exec", period: 5}},
			cpu: func(p *pod, t time.Time) float64 {
				// The replica only applies WAL: a third of the primary's work.
				f := 0.009
				if p.index > 0 {
					f = 0.003
				}
				return f * tr.azure[vmSteady].at(t)
			},
			mem: steadyMemory(tr.azure[vmSteady], 3.1*gi, 0.1),
		}},
		rxBase: 150000,
	}
	pdf := &workload{
		Case: Case{Namespace: "tools", Kind: "Deployment", Name: "pdf-renderer", Expect: ExpectIdle, LowConfidence: true,
			Why: "a gRPC renderer without request metrics, doing nothing: idle by CPU and network alone, so confidence stays below 0.8"},
		replicas: 1, port: 50051, age: 220 * 24 * time.Hour,
		containers: []container{{
			name: "renderer", image: "registry.example.com/tools/pdf-renderer:1.3.0",
			cpuReq: 0.5, memReq: 1 * gi, memLim: 1 * gi,
			probes: []probe{{typ: "Liveness", handler: "exec", period: 30}},
			mem:    steadyMemory(quiet, 140*mi, 0.03),
		}},
		rxBase: 250,
	}
	pdf.containers[0].cpu = idleCPU(tr, 0.0012, pdf)
	gift := &workload{
		Case: Case{Namespace: "payments", Kind: "Deployment", Name: "gift-cards", Expect: ExpectUnknown,
			Why: "its namespace is dropped by a relabelling rule, so Prometheus has no series at all: unknown, never idle"},
		replicas: 2, port: 8080, age: 90 * 24 * time.Hour, noMetrics: true,
		containers: []container{{
			name: "gift-cards", image: "registry.example.com/payments/gift-cards:2.0.1",
			cpuReq: 0.25, memReq: 256 * mi, memLim: 512 * mi,
			probes: []probe{httpProbe("Liveness", "/healthz", 10), httpProbe("Readiness", "/ready", 10)},
		}},
	}
	worker := &workload{
		Case: Case{Namespace: "shop", Kind: "Deployment", Name: "email-worker", Expect: ExpectActive,
			Why: "a queue consumer: its only HTTP requests are scrapes, yet it burns CPU sending mail all day"},
		replicas: 2, port: 8080, age: 320 * 24 * time.Hour,
		annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/path": "/metrics", "prometheus.io/port": "8080"},
		containers: []container{{
			name: "worker", image: "registry.example.com/shop/email-worker:7.1.0",
			cpuReq: 0.5, memReq: 512 * mi, memLim: 512 * mi,
			probes: []probe{{typ: "Liveness", handler: "tcp", port: 8080, period: 20}},
			cpu: func(p *pod, t time.Time) float64 {
				return 0.0075 * tr.azure[vmWorker].at(t.Add(time.Duration(p.index)*37*time.Minute))
			},
			mem: steadyMemory(tr.azure[vmWorker], 300*mi, 0.2),
		}},
		app:    &app{pathLabel: "handler", codeLabel: "code"},
		rxBase: 30000, // reads messages from the queue
	}
	agent := tr.azure[vmAgent].shape()
	shipper := &workload{
		Case: Case{Namespace: "logging", Kind: "DaemonSet", Name: "log-shipper", Expect: ExpectActive,
			Why: "ships every node's logs: no request metrics, CPU well above the idle floor on all three nodes"},
		port: 2020, age: 365 * 24 * time.Hour,
		containers: []container{{
			name: "fluent-bit", image: "cr.fluentbit.io/fluent/fluent-bit:4.0.3",
			cpuReq: 0.1, memReq: 64 * mi, memLim: 128 * mi,
			probes: []probe{httpProbe("Liveness", "/", 10)},
			cpu: func(p *pod, t time.Time) float64 {
				return 0.06 * agent.at(t.Add(time.Duration(p.index)*time.Hour))
			},
			mem: steadyMemory(tr.azure[vmAgent], 45*mi, 0.1),
		}},
		rxBase: 4000, // acknowledgements from the log store
	}
	return []*workload{checkout, coupons, banner, worker, archive, search, reports, rollup, db, pdf, gift, shipper}
}
