// Package exporter runs UPID's analysis on a cycle and serves its results as
// Prometheus metrics and a JSON API. A cycle reads the cluster's inventory
// from informer caches and a bounded set of aggregated queries from
// Prometheus; scrapes only render the last good results.
package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/idle"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/pricing"
	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/web"
)

// Options build a Service.
type Options struct {
	Exporter   config.Exporter
	Prometheus config.Prometheus
	Kube       kubernetes.Interface
	Querier    history.Querier
	Logger     *slog.Logger
	// Now is the clock; the demo and tests pin it.
	Now func() time.Time
}

// Service is the exporter.
type Service struct {
	opts Options
	// apiInFlight counts the JSON API's answers being built.
	apiInFlight atomic.Int32
	inv         *inventory.Inventory
	analyzer    *analyzer
	logger      *slog.Logger

	mu        sync.RWMutex
	last      *Results
	idleSince map[inventory.ID]time.Time
	// policyLogged are the policy problems of the last cycle, logged
	// when they first appeared; a problem is logged again only after it
	// has gone for a cycle.
	policyLogged map[string]bool

	self      selfMetrics
	forecasts forecasts
	// scraped holds what every scrape's collectors share: their Descs
	// and the self-metric collectors, built once (Collectors).
	scrapedOnce sync.Once
	scraped     struct {
		results   resultsCollector
		forecasts forecastCollector
		self      []prometheus.Collector
	}
	usage [history.Resources]usageStore // by history.Resource
	rec   *recommender

	// The recommender's checkpoint (exporter.recommender.state_file).
	stateFile  string
	stateEvery time.Duration
	saveMu     sync.Mutex // a cycle's checkpoint and Shutdown's
	lastSave   time.Time
}

// New validates the configuration and prepares the informers.
func New(opts Options) (*Service, error) {
	cfg := opts.Exporter
	var errs []error
	if cfg.Shard >= cfg.TotalShards {
		errs = append(errs, fmt.Errorf("exporter.shard: %d is not below exporter.total_shards (%d)", cfg.Shard, cfg.TotalShards))
	}
	// Two keys that name one Prometheus label (cost-center, cost_center)
	// would make upid_namespace_labels unregistrable.
	seen := map[string]int{}
	for i, l := range cfg.NamespaceLabels {
		if j, dup := seen[sanitize(l)]; dup {
			errs = append(errs, fmt.Errorf("exporter.namespace_labels[%d]: %q is exported as label_%s, as %q ([%d]) is", i, l, sanitize(l), cfg.NamespaceLabels[j], j))
			continue
		}
		seen[sanitize(l)] = i
	}
	agents, health := cfg.CheckHealthMatchers()
	for _, p := range health {
		errs = append(errs, fmt.Errorf("%s: %s", p.Key, p.Msg))
	}
	m := matchers{paths: cfg.HealthPaths, agents: agents}
	for _, p := range history.CheckSources(cfg.RequestSources) {
		errs = append(errs, fmt.Errorf("exporter.%s: %s", p.Key, p.Msg))
	}
	if fi := time.Duration(cfg.Forecast.Interval); fi != 0 && fi < time.Minute {
		errs = append(errs, fmt.Errorf("exporter.forecast.interval: %s is below 1m; use 0 to turn forecasts off", cfg.Forecast.Interval))
	}
	if cfg.Forecast.BatchWorkloads < 1 {
		errs = append(errs, fmt.Errorf("exporter.forecast.batch_workloads: %d is below 1", cfg.Forecast.BatchWorkloads))
	}
	params := idle.DefaultParams()
	params.MinCoverage = cfg.Idle.MinCoverage
	params.RealRequestsPerHour = cfg.Idle.RealRequestsPerHour
	params.CPUBasePerReplica = cfg.Idle.CPUBaseCores
	params.CPUPerHealthRequest = cfg.Idle.CPUPerHealthRequest
	if err := params.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("exporter.idle: %w", err))
	}
	policies, err := NewConfigPolicies(cfg.Recommend)
	if err != nil {
		errs = append(errs, err)
	}
	var file *pricing.File
	if cfg.PricingFile != "" {
		f, err := pricing.LoadFile(cfg.PricingFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("exporter.pricing_file: %w", err))
		}
		file = f
	}
	if opts.Kube == nil {
		errs = append(errs, errors.New("no Kubernetes client"))
	}
	if opts.Querier == nil {
		errs = append(errs, errors.New("no Prometheus client"))
	}
	if q, err := history.ForSelector(opts.Querier, opts.Prometheus.Selector); err != nil {
		errs = append(errs, fmt.Errorf("prometheus.selector: %w", err))
	} else {
		opts.Querier = q
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{
		opts:   opts,
		logger: opts.Logger,
		inv: inventory.New(opts.Kube, inventory.Options{
			NamespaceLabels: cfg.NamespaceLabels, Shard: cfg.Shard, TotalShards: cfg.TotalShards,
		}),
		analyzer: &analyzer{
			window: time.Duration(cfg.Window), recWindow: policies.cluster.Window, params: params, matchers: m, pricing: file,
			policy: policies.cluster, overrides: policies.overrides,
		},
		idleSince: map[inventory.ID]time.Time{},
		self:      newSelfMetrics(),
	}
	if n := cfg.TotalShards; n > 1 {
		s.analyzer.owns = func(name string) bool { return inventory.ShardOf(name, n) == cfg.Shard }
	}
	rc := cfg.Recommender
	s.rec = newRecommender(s.analyzer.policy, s.analyzer.recWindow, time.Duration(rc.BackfillChunk), time.Duration(rc.BackfillBudget),
		time.Duration(opts.Prometheus.Timeout), rc.BatchContainers, opts.Logger)
	if rc.Settle > 0 {
		s.rec.settle = time.Duration(rc.Settle)
	}
	s.stateFile, s.stateEvery = rc.StateFile, time.Duration(rc.StateInterval)
	if s.stateFile != "" {
		// A checkpoint that cannot be used never stops the exporter: it
		// costs a read of the window from Prometheus, as a start without
		// one does.
		loaded, dropped, err := s.rec.load(s.stateFile)
		switch {
		case err != nil:
			s.rec.checkpointFailures.Inc()
			s.logger.Warn("recommender checkpoint ignored; the window is read from Prometheus", "err", err)
		case loaded+dropped > 0:
			s.rec.checkpointAt.SetToCurrentTime()
			s.logger.Info("recommender checkpoint loaded", "file", s.stateFile, "states", loaded, "dropped", dropped)
		}
		s.lastSave = time.Now()
	}
	return s, nil
}

// checkpoint saves the recommender's state when exporter.recommender.state_file
// is set and state_interval has passed since the last save, or always when
// force is set (at shutdown).
func (s *Service) checkpoint(force bool) {
	if s.stateFile == "" {
		return
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	if !force && time.Since(s.lastSave) < s.stateEvery {
		return
	}
	s.lastSave = time.Now()
	if err := s.rec.save(s.stateFile); err != nil {
		s.rec.checkpointFailures.Inc()
		s.logger.Warn("recommender checkpoint failed; the next one is tried in state_interval", "err", err)
		return
	}
	s.rec.checkpointAt.SetToCurrentTime()
}

// Start runs the informers and waits for their caches.
func (s *Service) Start(ctx context.Context) error {
	start := time.Now()
	if err := s.inv.Start(ctx); err != nil {
		return err
	}
	s.logger.Info("inventory synced", "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// Shutdown checkpoints the recommender's state, when configured, and stops
// the informers.
func (s *Service) Shutdown() {
	s.checkpoint(true)
	s.inv.Shutdown()
}

// Cycle runs one analysis. On failure the previous results stay served and
// the failure shows in the self metrics; nothing is ever marked idle from a
// failed read.
func (s *Service) Cycle(ctx context.Context) error {
	at := s.opts.Now()
	start := time.Now()
	defer func() { s.self.stageDuration.WithLabelValues("total").Set(time.Since(start).Seconds()) }()

	stage := time.Now()
	inv, err := s.inv.Snapshot()
	s.self.stage("inventory", time.Since(stage), err)
	if err != nil {
		s.self.cycles.WithLabelValues("failure").Inc()
		return fmt.Errorf("inventory: %w", err)
	}

	stage = time.Now()
	hist, err := history.Fetch(ctx, s.opts.Querier, at, history.Options{
		Params: history.Params{
			Window:     time.Duration(s.opts.Exporter.Window),
			Step:       time.Duration(s.opts.Exporter.Step),
			RateWindow: time.Duration(s.opts.Exporter.RateWindow),
			Sources:    s.opts.Exporter.RequestSources,
		},
		Timeout:     time.Duration(s.opts.Prometheus.Timeout),
		Concurrency: s.opts.Prometheus.Concurrency,
	})
	if hist != nil {
		for name, qerr := range hist.Errors {
			s.self.queryErrors.WithLabelValues(name).Inc()
			s.logger.Warn("query failed; its data is unknown this cycle", "query", name, "err", qerr)
		}
	}
	// A failed query would turn some inputs unknown for this cycle only, and
	// a partial picture can look idle where the full one would not: keep
	// serving the last complete results instead.
	if err == nil && len(hist.Errors) > 0 {
		err = fmt.Errorf("prometheus: %d of the cycle's queries failed", len(hist.Errors))
	}
	s.self.stage("prometheus", time.Since(stage), err)
	if err != nil {
		s.self.cycles.WithLabelValues("failure").Inc()
		return err
	}

	// The recommender's state survives a failed fetch: it is only behind
	// by the windows it could not read, which it reads next cycle.
	stage = time.Now()
	rerr := s.rec.update(ctx, s.opts.Querier, inv, at)
	if rerr != nil {
		s.logger.Warn("recommender fetch failed; it catches up next cycle", "err", rerr)
	}
	s.rec.fill(hist, at)
	s.checkpoint(false)
	s.self.stage("recommender", time.Since(stage), rerr)

	stage = time.Now()
	res := s.analyzer.analyze(inv, hist, at)
	s.trackIdleSince(res)
	s.reportPolicyProblems(res.problems)
	s.self.stage("analysis", time.Since(stage), nil)

	s.mu.Lock()
	s.last = res
	s.mu.Unlock()
	s.self.setObjects(res.Objects)
	s.self.cycles.WithLabelValues("success").Inc()
	s.self.lastSuccess.Set(float64(at.UnixNano()) / 1e9)
	return nil
}

// reportPolicyProblems counts the ignored values of this cycle and logs
// those that are new: a bad annotation stays until someone fixes it, and one
// line per cycle per workload would drown everything else.
func (s *Service) reportPolicyProblems(problems []policyProblem) {
	seen := make(map[string]bool, len(problems))
	for _, p := range problems {
		if p.Err {
			s.self.policyErrors.WithLabelValues(p.Source).Inc()
		}
		key := p.String()
		seen[key] = true
		if s.policyLogged[key] {
			continue
		}
		kv := []any{"namespace", p.Namespace}
		if p.Workload != "" {
			kv = append(kv, "kind", p.Kind, "workload", p.Workload)
		}
		kv = append(kv, "key", p.Key, "value", p.Value, "problem", p.Msg)
		if p.Err {
			s.logger.Warn("recommendation policy value ignored; the next level down applies to this knob", append(kv, "source", p.Source)...)
		} else {
			s.logger.Warn("recommendation window clamped", kv...)
		}
	}
	s.policyLogged = seen
}

// trackIdleSince keeps the earliest known start of an idle stretch across
// cycles: each cycle can only vouch for its own window.
func (s *Service) trackIdleSince(res *Results) {
	seen := map[inventory.ID]bool{}
	for i := range res.Workloads {
		w := &res.Workloads[i]
		id := inventory.ID{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name}
		if w.Idle.State != string(idle.StateIdle) || w.Idle.Since == nil {
			continue
		}
		seen[id] = true
		if prev, ok := s.idleSince[id]; ok && prev.Before(*w.Idle.Since) {
			t := prev
			w.Idle.Since = &t
		} else {
			s.idleSince[id] = *w.Idle.Since
		}
	}
	for id := range s.idleSince {
		if !seen[id] {
			delete(s.idleSince, id)
		}
	}
}

// Last returns the last good results, or nil before the first.
func (s *Service) Last() *Results {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last
}

// reading is what one scrape reports: the results of one cycle and the
// forecasts of one run, read once, so that a cycle or a run that ends while
// a large scrape is being written cannot mix two of them in one exposition.
type reading struct {
	results   *Results
	forecasts forecastRun
	// forecastsGen numbers the forecast run, for the scrape's Version.
	forecastsGen uint64
	// list is workloadForecasts, which the scrape's four forecast
	// families read: built once.
	listOnce sync.Once
	list     []WorkloadForecast
}

func (s *Service) read() *reading {
	r := &reading{results: s.Last()}
	s.forecasts.mu.RLock()
	r.forecasts, r.forecastsGen = s.forecasts.forecastRun, s.forecasts.gen
	s.forecasts.mu.RUnlock()
	return r
}

// scrapeVersion names what a scrape's stored families read: a cycle's
// results and a forecast run.
type scrapeVersion struct {
	results   *Results
	forecasts uint64
}

// Scrape is one scrape for web.Server.Stream: the workload metrics and
// forecasts, one collector per metric family, all from the same reading,
// stored (encoded once per cycle and forecast run); the results' age and
// the self metrics live. Call it once per scrape, as Stream does; a plain
// registry takes Collector instead.
func (s *Service) Scrape() web.Snapshot {
	sc := &s.scraped
	s.scrapedOnce.Do(func() {
		sc.results = resultsCollector{s: s}
		sc.results.init()
		sc.forecasts = *newForecastCollector(s, nil)
		sc.self = []prometheus.Collector{s.self, s.rec}
		if c := s.opts.Exporter.Cluster; c != "" {
			// The exporter's own metrics carry the cluster its results do, so
			// that a dashboard filtered to that cluster keeps them.
			for i := range sc.self {
				sc.self[i] = prometheus.WrapCollectorWith(prometheus.Labels{"cluster": c}, sc.self[i])
			}
		}
	})
	r := s.read()
	results, forecasts := sc.results, sc.forecasts
	results.r, forecasts.r = r, r
	age := results
	age.only = results.d.resultsAge
	return web.Snapshot{
		Version: scrapeVersion{results: r.results, forecasts: r.forecastsGen},
		Stored:  append(results.families(), forecasts.families()...),
		Live:    append([]prometheus.Collector{&age}, sc.self...),
	}
}

// Collectors are one scrape's collectors, stored and live, for a registry.
func (s *Service) Collectors() []prometheus.Collector {
	snap := s.Scrape()
	return append(snap.Stored, snap.Live...)
}

// Collector is Collectors as one collector, for a plain registry: each
// Collect reads the service once, as a streamed scrape does.
func (s *Service) Collector() prometheus.Collector { return scrapes{s} }

type scrapes struct{ s *Service }

func (c scrapes) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range c.s.Collectors() {
		x.Describe(ch)
	}
}

func (c scrapes) Collect(ch chan<- prometheus.Metric) {
	for _, x := range c.s.Collectors() {
		x.Collect(ch)
	}
}
