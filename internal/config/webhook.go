package config

import (
	"time"

	"github.com/prometheus/common/model"
)

// Webhook configures upid webhook, the mutating admission webhook that sets
// Pod requests from the exporter's recommendations (docs/webhook.md).
type Webhook struct {
	Mode               string         `yaml:"mode" enum:"off,recommend,enforce" doc:"Cluster default mode: off changes nothing, recommend only annotates pods with what would change, enforce sets the requests; a namespace label or workload annotation upid.io/webhook-mode overrides it."`
	RecommendationsURL string         `yaml:"recommendations_url" doc:"Base URL of the exporter whose GET /api/v1/workloads is read in the background; http://localhost:9847 when running as a sidecar of the exporter."`
	RefreshInterval    model.Duration `yaml:"refresh_interval" min:"5s" doc:"How often recommendations are re-read; admission never waits for them."`
	MaxStaleness       model.Duration `yaml:"max_staleness" min:"1m" doc:"Recommendations older than this are not applied: the exporter is down or stuck."`
	MinConfidence      float64        `yaml:"min_confidence" min:"0" max:"1" doc:"Smallest recommendation confidence (0-1) that is applied."`
	ChangeThreshold    float64        `yaml:"change_threshold" min:"0" max:"<1" doc:"Relative change of a request below which it is left alone (0.1 means 10%)."`
	MemoryMargin       float64        `yaml:"memory_margin" min:"0" max:"10" doc:"Memory is never set below the observed peak times 1 + this margin."`
	LimitPolicy        string         `yaml:"limit_policy" enum:"keep_ratio,recommended,unchanged" doc:"Limits: keep_ratio scales existing limits with the request, recommended uses the exporter's limits, unchanged leaves limits alone (requests are capped at them)."`
	InitContainers     string         `yaml:"init_containers" enum:"skip,apply" doc:"Whether init containers (not sidecars) get recommendations."`
	SidecarContainers  string         `yaml:"sidecar_containers" enum:"skip,apply" doc:"Whether sidecar containers (init containers with restartPolicy Always) get recommendations."`
	Port               int            `yaml:"port" min:"1" doc:"Port of the HTTPS admission endpoint (path /mutate-v1-pod)."`
	CertDir            string         `yaml:"cert_dir" doc:"Directory of tls.crt and tls.key (cert-manager's Secret layout), reloaded when they change; in self-managed TLS the webhook writes them there."`
	HTTP2              bool           `yaml:"http2" doc:"Allow HTTP/2 on the admission endpoint; off by default against HTTP/2 rapid-reset attacks."`
	MaxRequestBytes    int64          `yaml:"max_request_bytes" min:"4096" doc:"Largest AdmissionReview body read; larger requests are answered with an error and fail open."`
	Namespace          string         `yaml:"namespace" doc:"Namespace the webhook runs in; its pods are never mutated. Defaults to $POD_NAMESPACE."`
	TLS                WebhookTLS     `yaml:"tls"`
}

// WebhookTLS selects who provides the serving certificate.
type WebhookTLS struct {
	Mode              string         `yaml:"mode" enum:"files,self_managed" doc:"files: certificates come from cert_dir (cert-manager); self_managed: the webhook creates a CA and serving cert in a Secret, patches the caBundle and rotates them."`
	SecretName        string         `yaml:"secret_name" doc:"Secret holding the self-managed CA and serving certificate, in the webhook's namespace."`
	ConfigurationName string         `yaml:"configuration_name" doc:"MutatingWebhookConfiguration whose caBundle self-managed TLS keeps current."`
	WebhookName       string         `yaml:"webhook_name" doc:"Name of the webhook entry in that configuration; empty patches every entry."`
	DNSNames          []string       `yaml:"dns_names" doc:"Names the serving certificate is valid for, e.g. upid-webhook.upid-system.svc."`
	CertValidity      model.Duration `yaml:"cert_validity" min:"1h" doc:"Lifetime of a self-managed serving certificate; it is renewed after two thirds of it."`
	CAValidity        model.Duration `yaml:"ca_validity" min:"1h" doc:"Lifetime of the self-managed CA; it is renewed after two thirds, the old CA staying in the caBundle until it expires."`
	CheckInterval     model.Duration `yaml:"check_interval" min:"1s" doc:"How often the Secret is re-read and expiry checked."`
}

func defaultWebhook() Webhook {
	return Webhook{
		Mode:               "recommend",
		RecommendationsURL: "http://localhost:9847",
		RefreshInterval:    model.Duration(time.Minute),
		MaxStaleness:       model.Duration(time.Hour),
		MinConfidence:      0.5,
		ChangeThreshold:    0.1,
		MemoryMargin:       0.1,
		LimitPolicy:        "keep_ratio",
		InitContainers:     "skip",
		SidecarContainers:  "skip",
		Port:               9443,
		CertDir:            "/tmp/k8s-webhook-server/serving-certs",
		MaxRequestBytes:    3 << 20,
		TLS: WebhookTLS{
			Mode:              "files",
			SecretName:        "upid-webhook-tls",
			ConfigurationName: "upid-webhook",
			DNSNames:          []string{},
			CertValidity:      model.Duration(90 * 24 * time.Hour),
			CAValidity:        model.Duration(5 * 365 * 24 * time.Hour),
			CheckInterval:     model.Duration(time.Minute),
		},
	}
}
