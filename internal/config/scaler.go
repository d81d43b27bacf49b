package config

import (
	"time"

	"github.com/prometheus/common/model"
)

// Scaler configures upid scaler, which puts idle workloads to sleep and
// wakes them on Alertmanager notifications (docs/scaler.md).
type Scaler struct {
	BearerTokenFile      string         `yaml:"bearer_token_file" doc:"File holding the bearer token Alertmanager must send (http_config.authorization.credentials_file there); empty accepts only clients with a verified certificate (mTLS in web.config_file)."`
	MaxBodyBytes         int            `yaml:"max_body_bytes" min:"1024" doc:"Largest notification body accepted; larger ones get 413 and change nothing."`
	Cluster              string         `yaml:"cluster" doc:"This cluster's name, as exporter.cluster labels the alerts: an alert whose cluster label names another cluster is skipped (other_cluster), so that one Alertmanager or central ruler serving several clusters cannot make this scaler act on a same-named workload here. Empty acts on every alert."`
	Scope                string         `yaml:"scope" enum:"namespaces,cluster" doc:"Which namespaces may be put to sleep: namespaces labelled upid.io/sleep=enabled, or every namespace not protected."`
	ProtectedNamespaces  []string       `yaml:"protected_namespaces" doc:"Namespaces never put to sleep, whatever their labels; the scaler's own namespace is never put to sleep either."`
	GracePeriod          model.Duration `yaml:"grace_period" doc:"Workloads younger than this (by creationTimestamp) are never put to sleep."`
	IncludeHPA           bool           `yaml:"include_hpa_workloads" doc:"Also put to sleep workloads that a HorizontalPodAutoscaler targets; the HPA stops acting on a target at zero replicas and resumes at wake."`
	MaxActions           int            `yaml:"max_actions" min:"1" doc:"At most this many sleeps per action_interval; further ones are skipped (result skipped, reason rate_limited) until the interval has passed."`
	ActionInterval       model.Duration `yaml:"action_interval" min:"1s" doc:"Window of max_actions."`
	DryRun               bool           `yaml:"dry_run" doc:"Record what would be done (log, Event, result dry_run) and change nothing."`
	SleepWithoutWakePath bool           `yaml:"sleep_without_wake_path" doc:"Also put to sleep workloads that nothing would wake on demand: no Service selects their pods (so no request can raise the wake alert) and no wake window is set. Without it such a sleep is skipped (reason no_wake_path); upid sleep still acts, with a warning."`
	WakeWindows          []string       `yaml:"wake_windows" doc:"Times during which workloads are kept awake: sleeping ones are woken and none is put to sleep, e.g. \"Mon-Fri 08:00-18:00 Europe/Berlin\"."`
	Actions              []ScalerAction `yaml:"actions" doc:"Which firing alerts put a workload to sleep or wake it; the alert's namespace, workload and kind labels name the workload. Resolved alerts never act."`
	LeaderElection       LeaderElection `yaml:"leader_election"`
	RequestTimeout       model.Duration `yaml:"request_timeout" min:"1s" doc:"Longest time one notification may take, Kubernetes retries included; Alertmanager's own timeout should be longer."`
}

// ScalerAction maps an alert to an action.
type ScalerAction struct {
	Alert  string            `yaml:"alert"`
	Labels map[string]string `yaml:"labels,omitempty"` // further exact label matches
	Action string            `yaml:"action"`           // sleep or wake
}

// LeaderElection keeps all but one scaler replica passive.
type LeaderElection struct {
	Enabled       bool           `yaml:"enabled" doc:"Elect a leader through a coordination.k8s.io Lease; other replicas answer 503 so Alertmanager retries elsewhere."`
	Namespace     string         `yaml:"namespace" doc:"Namespace of the Lease; empty means the pod's own namespace (POD_NAMESPACE or the service account's), else default."`
	Name          string         `yaml:"name" doc:"Name of the Lease."`
	LeaseDuration model.Duration `yaml:"lease_duration" min:"2s" doc:"How long a Lease is valid without renewal; a failed leader is replaced after at most this."`
	RenewDeadline model.Duration `yaml:"renew_deadline" min:"1s" doc:"How long the leader keeps trying to renew before it gives up leadership and stops acting; with retry_period, below lease_duration."`
	RetryPeriod   model.Duration `yaml:"retry_period" min:"1s" doc:"How often candidates try to acquire or renew the Lease."`
}

// DefaultScalerActions are UPID's own alerts (alerts/upid-rules.yaml).
func DefaultScalerActions() []ScalerAction {
	return []ScalerAction{
		{Alert: "UPIDWorkloadIdle", Action: "sleep"},
		{Alert: "UPIDSleepingWorkloadRequested", Action: "wake"},
	}
}

func defaultScaler() Scaler {
	return Scaler{
		MaxBodyBytes:        1 << 20,
		Scope:               "namespaces",
		ProtectedNamespaces: []string{"kube-system", "kube-public", "kube-node-lease"},
		GracePeriod:         model.Duration(24 * time.Hour),
		MaxActions:          10,
		ActionInterval:      model.Duration(10 * time.Minute),
		WakeWindows:         []string{},
		Actions:             DefaultScalerActions(),
		RequestTimeout:      model.Duration(30 * time.Second),
		LeaderElection: LeaderElection{
			Enabled:       true,
			Name:          "upid-scaler",
			LeaseDuration: model.Duration(15 * time.Second),
			RenewDeadline: model.Duration(10 * time.Second),
			RetryPeriod:   model.Duration(2 * time.Second),
		},
	}
}
