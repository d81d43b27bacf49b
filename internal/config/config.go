// Package config defines every setting of the upid components in one place:
// its YAML key, flag, environment variable, default and documentation. The
// struct tags are the single source from which flags are registered, files
// are checked and docs/configuration.md is generated.
//
// Tags on a field:
//
//	yaml:"key"   the key in the file; nested structs are sections
//	doc:"..."    one sentence for docs/configuration.md and --help
//	flag:"name"  overrides the flag name derived from the key path
//	enum:"a,b"   the only accepted values
//	min:"N"      the smallest accepted number or duration
//	max:"N"      the largest accepted float; max:"<N" accepts only less than N
//
// A float setting is always finite: NaN compares false with every bound,
// so a NaN threshold would pass any range check made with < and >.
package config

import (
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/idle"
)

// Config is the configuration of every upid component. Each process reads
// the sections it needs and ignores the others, so one file serves the
// whole suite.
type Config struct {
	Log        Log        `yaml:"log"`
	Web        Web        `yaml:"web"`
	Kubernetes Kubernetes `yaml:"kubernetes"`
	Prometheus Prometheus `yaml:"prometheus"`
	Exporter   Exporter   `yaml:"exporter"`
	Webhook    Webhook    `yaml:"webhook"`
	Scaler     Scaler     `yaml:"scaler"`
}

// Kubernetes says how to reach the API server. In a pod both are empty and
// the service account is used.
type Kubernetes struct {
	Kubeconfig string `yaml:"kubeconfig" flag:"kubeconfig" doc:"Path to a kubeconfig file; empty means in-cluster config, then $KUBECONFIG, then ~/.kube/config."`
	Context    string `yaml:"context" flag:"context" doc:"Context of the kubeconfig to use; empty means its current context."`
}

// Prometheus says how to read history from any Prometheus HTTP API
// (Prometheus, Thanos, Mimir, VictoriaMetrics).
type Prometheus struct {
	URL              string                      `yaml:"url" flag:"prometheus.url" alias:"prometheus-url" doc:"Base URL of the Prometheus HTTP API."`
	Timeout          model.Duration              `yaml:"timeout" min:"1s" doc:"Timeout of each query."`
	Concurrency      int                         `yaml:"concurrency" min:"1" doc:"Queries run at once; bounds the load on Prometheus."`
	HTTPClient       promconfig.HTTPClientConfig `yaml:"http_client" doc:"Authentication and TLS for Prometheus, in Prometheus's own http_config format (bearer_token_file, basic_auth, tls_config, ...)."`
	MaxResponseBytes int64                       `yaml:"max_response_bytes" min:"1048576" doc:"Largest answer read from Prometheus; a larger one fails its query, whose data is then unknown for the cycle, rather than exhausting the exporter's memory."`
	Selector         string                      `yaml:"selector" doc:"Label matchers added to every series selector UPID queries, for a Prometheus that holds several clusters (Thanos, Mimir, VictoriaMetrics), e.g. {cluster=\"prod\"}; empty adds none. Set exporter.cluster too, to label UPID's own metrics."`
}

// Exporter configures the analysis of upid exporter.
type Exporter struct {
	Interval        model.Duration          `yaml:"interval" min:"10s" doc:"How often the analysis runs; scrapes always serve the last good result."`
	Window          model.Duration          `yaml:"window" min:"1h" doc:"History the idle score and usage quantiles look at."`
	Step            model.Duration          `yaml:"step" min:"15s" doc:"Resolution of subqueries over the window."`
	RateWindow      model.Duration          `yaml:"rate_window" min:"1m" doc:"Range of rate() for instantaneous CPU usage; at least four scrape intervals."`
	Cluster         string                  `yaml:"cluster" doc:"Value of a cluster label on every workload and node metric; empty leaves the label out."`
	NamespaceLabels []string                `yaml:"namespace_labels" doc:"Namespace labels exported on upid_namespace_labels for team and cost-centre attribution; only these, never all labels. Each becomes label_<key> with characters outside [a-zA-Z0-9_] as _, so two keys that become one name (cost-center, cost_center) are refused."`
	PricingFile     string                  `yaml:"pricing_file" doc:"Pricing file with rates by instance type, region, capacity type or node labels (see docs/pricing.md); OpenCost's metrics win over it, the built-in rates lose."`
	Shard           int                     `yaml:"shard" min:"0" doc:"This replica's shard, from 0, when workloads are split between replicas by a hash of their namespace: a namespace is never split, so each replica queries Prometheus for its own namespaces only; nodes (upid_node_*) and namespaces (upid_namespace_labels) are split the same way, by name, so sums over the replicas count each once."`
	TotalShards     int                     `yaml:"total_shards" min:"1" doc:"Number of shards; 1 means no sharding."`
	HealthPaths     []string                `yaml:"health_paths" doc:"Request paths, each starting with /, that are health or scrape traffic in every workload, matched exactly or as a prefix followed by /; on a workload's own series its prometheus.io/path is added, and its HTTP probes' paths for as many requests as the probes make (docs/idle-score.md)."`
	HealthAgents    []string                `yaml:"health_user_agents" doc:"Regular expressions of user agents that are health traffic (kubelet probes, load-balancer checkers, and scrapers such as Prometheus on scrape and health paths only, docs/idle-score.md); one that matches every user agent, as an empty one does, is refused."`
	RequestSources  []history.RequestSource `yaml:"request_sources" doc:"Request counters that tell real from health traffic, and how their labels name a workload."`
	Idle            IdleThresholds          `yaml:"idle"`
	Forecast        Forecast                `yaml:"forecast"`
	Recommend       Recommend               `yaml:"recommend"`
	Recommender     Recommender             `yaml:"recommender"`
}

// Forecast configures the usage forecasts (docs/forecasting.md), which are
// refitted on their own slower loop: hourly history changes little in a cycle.
type Forecast struct {
	Interval       model.Duration `yaml:"interval" doc:"How often forecasts are refitted; 0 turns forecasts off."`
	Window         model.Duration `yaml:"window" min:"2d" doc:"Hourly CPU history each forecast is fitted on; two weeks or more fit a weekly profile."`
	BatchWorkloads int            `yaml:"batch_workloads" min:"1" doc:"Workloads per history query, so that no answer from Prometheus grows with the cluster."`
}

// IdleThresholds are the main knobs of the idle model (docs/idle-score.md).
type IdleThresholds struct {
	MinCoverage         float64 `yaml:"min_coverage" min:"0" max:"1" doc:"Share of the window that must have usage samples; below it a workload is unknown, never idle."`
	RealRequestsPerHour float64 `yaml:"real_requests_per_hour" min:"0" doc:"Real requests per hour, averaged over the window, at or below which traffic counts as none."`
	CPUBaseCores        float64 `yaml:"cpu_base_cores" min:"0" doc:"CPU an idle replica burns with no traffic at all, in cores."`
	CPUPerHealthRequest float64 `yaml:"cpu_per_health_request_seconds" min:"0" doc:"CPU one health request costs, in core-seconds."`
}

// Log configures the process logger.
type Log struct {
	Level  string `yaml:"level" enum:"debug,info,warn,error" doc:"Lowest level written; debug also raises client-go's verbosity."`
	Format string `yaml:"format" enum:"logfmt,json" doc:"Line format of every log line, including those of client-go and controller-runtime."`
}

// Web configures the HTTP server that every long-running component runs for
// its metrics and API.
type Web struct {
	ListenAddress string `yaml:"listen_address" flag:"web.listen-address" doc:"Address the HTTP server listens on; empty means the component's own default port."`
	ConfigFile    string `yaml:"config_file" flag:"web.config.file" doc:"Path to an exporter-toolkit web configuration file that enables TLS, mTLS or basic auth on the HTTP server."`
}

// Default returns the configuration used when nothing else is given.
func Default() Config {
	ip := idle.DefaultParams()
	return Config{
		Log: Log{Level: "info", Format: "logfmt"},
		Prometheus: Prometheus{
			URL:         "http://localhost:9090",
			Timeout:     model.Duration(2 * time.Minute),
			Concurrency: 4,
			// As the webhook bounds its reads: UPID's answers are
			// aggregated per workload, or per batch of containers.
			MaxResponseBytes: 256 << 20,
			HTTPClient:       promconfig.DefaultHTTPClientConfig,
		},
		Webhook: defaultWebhook(),
		Exporter: Exporter{
			Interval:    model.Duration(5 * time.Minute),
			Window:      model.Duration(7 * 24 * time.Hour),
			Step:        model.Duration(5 * time.Minute),
			RateWindow:  model.Duration(5 * time.Minute),
			TotalShards: 1,
			// An empty list rather than nil, so the defaults file shows the key.
			NamespaceLabels: []string{},
			HealthPaths:     []string{"/healthz", "/livez", "/readyz", "/health", "/ping", "/metrics", "/actuator/health", "/actuator/prometheus"},
			HealthAgents: []string{
				"^kube-probe/", "^Prometheus/", "^ELB-HealthChecker/", "^GoogleHC/", "^Consul Health Check",
				"^Envoy/HC", "^HAProxy", "^Azure Traffic Manager Endpoint Monitor",
			},
			RequestSources: []history.RequestSource{
				{Metric: "http_requests_total", PathLabels: []string{"handler", "path", "route", "uri"}, UserAgentLabel: "user_agent"},
				{Metric: "http_server_requests_seconds_count", PathLabels: []string{"uri"}},
				{Metric: "nginx_ingress_controller_requests", NamespaceLabel: "exported_namespace", ServiceLabel: "exported_service", PathLabels: []string{"path"}},
				{Metric: "istio_requests_total", NamespaceLabel: "destination_workload_namespace", WorkloadLabel: "destination_workload", Matchers: `reporter="destination"`, UserAgentLabel: "request_user_agent"},
			},
			Idle: IdleThresholds{
				MinCoverage:         ip.MinCoverage,
				RealRequestsPerHour: ip.RealRequestsPerHour,
				CPUBaseCores:        ip.CPUBasePerReplica,
				CPUPerHealthRequest: ip.CPUPerHealthRequest,
			},
			Forecast: Forecast{
				Interval:       model.Duration(time.Hour),
				Window:         model.Duration(14 * 24 * time.Hour),
				BatchWorkloads: 2000,
			},
			Recommend:   defaultRecommend(),
			Recommender: defaultRecommender(),
		},
		Scaler: defaultScaler(),
	}
}
