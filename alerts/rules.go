// Package alerts defines UPID's Prometheus recording and alerting rules in Go.
// The committed alerts/upid-rules.yaml, the PrometheusRule under deploy/ and
// the rule list of docs/dashboards.md are generated from these definitions
// (`make generate`), so the rules have exactly one source.
package alerts

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/upid-dev/upid/exporter/history"
)

// File is the committed rule file, relative to the repository root. Tests of
// other parts (the scaler's end-to-end loop) read it with rulefmt.
const File = "alerts/upid-rules.yaml"

// Recording rules shared by the alerts and the dashboards. Names follow the
// level:metric:operations convention. Sums by namespace keep `cluster`, which
// is empty (and so harmless) when exporter.cluster is not set.
const (
	// PodOwner maps every running pod to its top-level workload: {namespace,
	// pod, workload, kind} = 1, resolved exactly like the exporter's queries.
	PodOwner = "namespace_workload_pod:upid_pod_owner:relabel"

	NamespaceCost      = "namespace:upid_workload_cost_dollars_per_hour:sum"
	NamespaceWaste     = "namespace:upid_workload_waste_dollars_per_hour:sum"
	NamespaceIdleCost  = "namespace:upid_workload_idle_cost_dollars_per_hour:sum"
	NamespaceSavings   = "namespace:upid_container_recommendation_savings_dollars_per_hour:sum"
	NamespaceForecast  = "namespace:upid_workload_forecast_cost_dollars_per_hour:sum"
	ClusterCost        = "cluster:upid_workload_cost_dollars_per_hour:sum"
	ClusterWaste       = "cluster:upid_workload_waste_dollars_per_hour:sum"
	ClusterIdleCost    = "cluster:upid_workload_idle_cost_dollars_per_hour:sum"
	ClusterSavings     = "cluster:upid_container_recommendation_savings_dollars_per_hour:sum"
	ClusterForecast    = "cluster:upid_workload_forecast_cost_dollars_per_hour:sum"
	ServiceRequestRate = "namespace_service:upid_service_requests:rate2m"
)

// Alert names. UPIDWorkloadIdle and UPIDSleepingWorkloadRequested are part of
// the contract with the scaler (sleep and wake); do not rename them.
const (
	WorkloadIdle              = "UPIDWorkloadIdle"
	SleepingWorkloadRequested = "UPIDSleepingWorkloadRequested"
	NamespaceIdleOverBudget   = "UPIDNamespaceIdleSpendOverBudget"
	NamespaceForecastOverrun  = "UPIDNamespaceForecastOverBudget"
	RightsizedOOMKilled       = "UPIDRightsizedWorkloadOOMKilled"
	RightsizedThrottled       = "UPIDRightsizedWorkloadCPUThrottled"
	WebhookFailingOpen        = "UPIDWebhookFailingOpen"
	ExporterDown              = "UPIDExporterDown"
	ExporterDataStale         = "UPIDExporterDataStale"
	ScalerActionsFailing      = "UPIDScalerActionsFailing"
	WebhookCertificateExpiry  = "UPIDWebhookCertificateExpiring"
	ExporterForecastFailing   = "UPIDExporterForecastsFailing"
	WebhookUnreachable        = "UPIDWebhookUnreachable"
	ScalerDown                = "UPIDScalerDown"
)

// HoursPerMonth is the month the exporter and the docs use.
const HoursPerMonth = 730

// Options are the thresholds an operator may want to change; Default holds
// the committed values. Change them here and run `make generate`.
type Options struct {
	// RunbookBaseURL prefixes docs/runbooks/<alert>.md.
	RunbookBaseURL string
	// IdleFor is how long a workload must stay idle before UPIDWorkloadIdle
	// fires (and the scaler puts it to sleep).
	IdleFor time.Duration
	// IdleConfidence is the least upid_workload_idle_confidence trusted for
	// the idle alert and for idle spend.
	IdleConfidence float64
	// IdleBudgetDollarsPerMonth is the idle spend a namespace may have.
	IdleBudgetDollarsPerMonth float64
	// NamespaceBudgetDollarsPerMonth is the spend a namespace may reach; the
	// median 30-day forecast above it raises UPIDNamespaceForecastOverBudget.
	NamespaceBudgetDollarsPerMonth float64
	// ThrottledRatio is the share of CFS periods throttled that counts as
	// throttling for a rightsized container.
	ThrottledRatio float64
	// ExporterSelector selects the exporter's scrape target(s) in `up`.
	ExporterSelector string
	// ExporterStaleAfter is the age of the exporter's results that is stale:
	// several default 5m cycles failed in a row.
	ExporterStaleAfter time.Duration
	// ScalerSelector selects the scaler's scrape target(s) in `up`.
	ScalerSelector string
	// WebhookName is the webhook's name in the MutatingWebhookConfiguration,
	// as the API server labels its admission metrics.
	WebhookName string
}

// Default returns the thresholds of the committed rule file.
func Default() Options {
	return Options{
		RunbookBaseURL:                 "https://github.com/upid-dev/upid/blob/main/docs/runbooks/",
		IdleFor:                        3 * time.Hour,
		IdleConfidence:                 0.8,
		IdleBudgetDollarsPerMonth:      100,
		NamespaceBudgetDollarsPerMonth: 2000,
		ThrottledRatio:                 0.25,
		ExporterSelector:               `job="upid-exporter"`,
		ExporterStaleAfter:             30 * time.Minute,
		ScalerSelector:                 `job="upid-scaler"`,
		WebhookName:                    "pods.webhook.upid.io",
	}
}

// RecordingMeaning says what each recording rule holds, for docs/dashboards.md.
var RecordingMeaning = map[string]string{
	PodOwner:           "Every pod of kube-state-metrics mapped to its top-level workload ({namespace, pod, workload, kind} = 1), exactly as the exporter's queries map them; joins cAdvisor series to workloads.",
	NamespaceCost:      "Cost per hour of the workloads' requests, by namespace.",
	NamespaceWaste:     "Waste per hour (requested beyond the p95 of use), by namespace.",
	NamespaceIdleCost:  "Idle spend per hour by namespace, counting verdicts with confidence ≥ the idle alert's.",
	NamespaceSavings:   "Savings per hour of the recommendations UPID would apply, by namespace.",
	NamespaceForecast:  "Forecast spend per hour by namespace, horizon and stat (p10, p50, p90); summed bands are an upper bound.",
	ClusterCost:        "Cost per hour, by cluster.",
	ClusterWaste:       "Waste per hour, by cluster.",
	ClusterIdleCost:    "Confident idle spend per hour, by cluster.",
	ClusterSavings:     "Rightsizing savings per hour, by cluster.",
	ClusterForecast:    "Forecast spend per hour by cluster, horizon and stat.",
	ServiceRequestRate: "Requests per second reaching each Service through ingress-nginx or Istio, by namespace and service: the wake signal's input.",
}

// Alert is one alerting rule with the facts the docs list.
type Alert struct {
	rulefmt.Rule
	Group string
	// Meaning is one sentence for docs/dashboards.md and the runbook index.
	Meaning string
}

// Severity returns the alert's severity label.
func (a Alert) Severity() string { return a.Labels["severity"] }

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// RecordingRules returns the recording rules, in evaluation order: later
// rules read earlier ones within the group.
func RecordingRules(o Options) []rulefmt.Rule {
	upidKeys := "cluster, namespace, workload, kind"
	// Every sum first takes one value per series key (max by the key):
	// exporter replicas (the sidecar suite runs two) each export every
	// series, with their own pod and instance labels, and a plain sum would
	// count each dollar once per replica.
	return []rulefmt.Rule{
		{Record: PodOwner, Expr: strings.TrimSpace(history.OwnerExpr(""))},
		{Record: NamespaceCost, Expr: fmt.Sprintf(`sum by (cluster, namespace) (max by (%s, resource) (upid_workload_cost_dollars_per_hour))`, upidKeys)},
		{Record: NamespaceWaste, Expr: fmt.Sprintf(`sum by (cluster, namespace) (max by (%s, resource) (upid_workload_waste_dollars_per_hour))`, upidKeys)},
		// Idle spend counts only verdicts confident enough to act on, like the idle alert.
		{Record: NamespaceIdleCost, Expr: fmt.Sprintf(`sum by (cluster, namespace) (max by (%[1]s) (
  upid_workload_idle_cost_dollars_per_hour
  and on (%[1]s) upid_workload_idle_confidence >= %[2]s
))`, upidKeys, num(o.IdleConfidence))},
		// Savings count only the recommendations UPID would apply.
		{Record: NamespaceSavings, Expr: fmt.Sprintf(`sum by (cluster, namespace) (max by (%[1]s, container) (
  upid_container_recommendation_savings_dollars_per_hour
  and on (%[1]s, container) upid_container_recommendation_apply == 1
))`, upidKeys)},
		// Summing quantiles over workloads treats them as moving together: the
		// summed p90 is an upper bound of the namespace's p90, which is what a
		// budget check wants.
		{Record: NamespaceForecast, Expr: fmt.Sprintf(`sum by (cluster, namespace, horizon, stat) (max by (%s, horizon, stat) (upid_workload_forecast_cost_dollars_per_hour))`, upidKeys)},
		{Record: ClusterCost, Expr: `sum by (cluster) (` + NamespaceCost + `)`},
		{Record: ClusterWaste, Expr: `sum by (cluster) (` + NamespaceWaste + `)`},
		{Record: ClusterIdleCost, Expr: `sum by (cluster) (` + NamespaceIdleCost + `)`},
		{Record: ClusterSavings, Expr: `sum by (cluster) (` + NamespaceSavings + `)`},
		{Record: ClusterForecast, Expr: `sum by (cluster, horizon, stat) (` + NamespaceForecast + `)`},
		// Requests reaching a Service through ingress-nginx or Istio, by the
		// Service's cluster, namespace and name (cluster is empty in a
		// Prometheus of one cluster; a central ruler must not let one
		// cluster's traffic wake another's workload). Ingress traffic into a
		// mesh is seen by both; "or" counts it once (ingress wins).
		// ingress-nginx scraped through Kubernetes service discovery keeps its
		// own namespace and service labels as exported_*; label_replace leaves
		// the series alone when they are absent.
		{Record: ServiceRequestRate, Expr: `sum by (cluster, namespace, service) (
  label_replace(
    label_replace(rate(nginx_ingress_controller_requests[2m]), "namespace", "$1", "exported_namespace", "(.+)"),
    "service", "$1", "exported_service", "(.+)"
  )
)
or on (cluster, namespace, service)
sum by (cluster, namespace, service) (
  label_replace(
    label_replace(rate(istio_requests_total[2m]), "namespace", "$1", "destination_service_namespace", "(.+)"),
    "service", "$1", "destination_service_name", "(.+)"
  )
)`},
	}
}

// Alerts returns every alerting rule.
func Alerts(o Options) []Alert {
	runbook := func(name string) string { return o.RunbookBaseURL + name + ".md" }
	workload := "{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.workload }}"
	upidKeys := "cluster, namespace, workload, kind"
	mk := func(group, name, severity, meaning, expr string, for_ time.Duration, summary, description string) Alert {
		return Alert{Group: group, Meaning: meaning, Rule: rulefmt.Rule{
			Alert:  name,
			Expr:   strings.TrimSpace(expr),
			For:    model.Duration(for_),
			Labels: map[string]string{"severity": severity},
			Annotations: map[string]string{
				"summary":     summary,
				"description": description,
				"runbook_url": runbook(name),
			},
		}}
	}
	idle := mk("upid.idle", WorkloadIdle, "info",
		"A workload has been idle (real traffic, not health checks) with a confident verdict and costs money; the scaler puts it to sleep.",
		// The cost comes first so that $value is the dollars per hour.
		// max by drops the scrape's job, instance and pod labels: an exporter
		// restart or a second replica must not reset the pending duration.
		// Verdicts are acted on only while the exporter's results are fresh:
		// while its cycles fail it serves its last ones, which may call a
		// workload idle that has been busy since.
		fmt.Sprintf(`max by (%[1]s) (
  upid_workload_idle_cost_dollars_per_hour > 0
  and on (%[1]s) upid_workload_idle_state{state="idle"} == 1
  and on (%[1]s) upid_workload_idle_confidence >= %[2]s
)
and on (cluster) (max by (cluster) (upid_exporter_results_age_seconds) < %[3]d)`, upidKeys, num(o.IdleConfidence), int(o.ExporterStaleAfter.Seconds())),
		o.IdleFor,
		workload+" is idle and costs ${{ $value | printf \"%.2f\" }} per hour",
		workload+" has had no real traffic (health checks, probes and scrapes discounted) for "+
			model.Duration(o.IdleFor).String()+" with confidence of at least "+num(o.IdleConfidence)+
			"; it costs ${{ $value | printf \"%.4f\" }} per hour. The UPID scaler puts it to sleep unless it opted out.")
	// The scaler reads this number; keep it plain.
	idle.Annotations["dollars_per_hour"] = "{{ $value }}"

	return []Alert{
		idle,
		mk("upid.idle", SleepingWorkloadRequested, "info",
			"A workload the scaler put to sleep receives requests at one of its Services (ingress-nginx or Istio); the scaler wakes it.",
			`sum by (cluster, namespace, workload, kind) (
  upid_scaler_sleeping_workload_service_info
  * on (cluster, namespace, service) group_left ()
  `+ServiceRequestRate+`
) > 0`,
			0,
			workload+" is asleep and receives requests",
			workload+" was put to sleep by UPID and its Services receive {{ $value | printf \"%.2f\" }} requests per second; the UPID scaler wakes it.",
		),
		mk("upid.cost", NamespaceIdleOverBudget, "warning",
			"A namespace spends more on idle workloads than its idle budget.",
			fmt.Sprintf(`%d * %s > %s`, HoursPerMonth, NamespaceIdleCost, num(o.IdleBudgetDollarsPerMonth)),
			time.Hour,
			"Namespace {{ $labels.namespace }} spends ${{ $value | printf \"%.0f\" }} per month on idle workloads",
			"Idle workloads in namespace {{ $labels.namespace }} cost ${{ $value | printf \"%.2f\" }} per month, over the budget of $"+num(o.IdleBudgetDollarsPerMonth)+". See the Idle workloads dashboard for which ones.",
		),
		mk("upid.cost", NamespaceForecastOverrun, "warning",
			"The median 30-day cost forecast of a namespace is above its monthly budget.",
			fmt.Sprintf(`%d * %s{horizon="30d",stat="p50"} > %s`, HoursPerMonth, NamespaceForecast, num(o.NamespaceBudgetDollarsPerMonth)),
			time.Hour,
			"Namespace {{ $labels.namespace }} is forecast to spend ${{ $value | printf \"%.0f\" }} per month",
			"The median forecast of namespace {{ $labels.namespace }} for the next 30 days is ${{ $value | printf \"%.2f\" }} per month, over the budget of $"+num(o.NamespaceBudgetDollarsPerMonth)+". See the Forecasts dashboard.",
		),
		mk("upid.rightsizing", RightsizedOOMKilled, "warning",
			"A container UPID rightsizes (it has a memory recommendation) was OOM-killed.",
			// cAdvisor's OOM events, or kube-state-metrics' restarts while the
			// last termination was an OOMKill (kills cAdvisor misses); both
			// tell of the same kill, so the larger counts.
			fmt.Sprintf(`max by (cluster, namespace, workload, kind, container) (
  (
    label_replace(increase(container_oom_events_total{container!="",container!="POD"}[15m]), "source", "cadvisor", "", "")
    or
    label_replace(
      increase(kube_pod_container_status_restarts_total[15m])
      and on (cluster, namespace, pod, container) (kube_pod_container_status_last_terminated_reason{reason="OOMKilled"} == 1),
      "source", "kube_state_metrics", "", "")
  )
  * on (cluster, namespace, pod) group_left (workload, kind) %s
) > 0
and on (cluster, namespace, workload, kind, container) upid_container_recommended_memory_request_bytes`, PodOwner),
			0,
			"Container {{ $labels.container }} of "+workload+" was OOM-killed",
			"Container {{ $labels.container }} of "+workload+" was OOM-killed {{ $value | printf \"%.0f\" }} time(s) in 15 minutes while UPID recommends its memory. If the webhook enforces the recommendation, raise the memory margin or opt the workload out; the next recommendation is bumped after OOM kills.",
		),
		mk("upid.rightsizing", RightsizedThrottled, "warning",
			"A container UPID rightsizes (it has a CPU recommendation) is CPU-throttled in a large share of its CFS periods.",
			fmt.Sprintf(`max by (cluster, namespace, workload, kind, container) (
  (
    sum by (cluster, namespace, pod, container) (rate(container_cpu_cfs_throttled_periods_total{container!=""}[5m]))
    / sum by (cluster, namespace, pod, container) (rate(container_cpu_cfs_periods_total{container!=""}[5m]) > 0)
  )
  * on (cluster, namespace, pod) group_left (workload, kind) %s
) > %s
and on (cluster, namespace, workload, kind, container) upid_container_recommended_cpu_request_cores`, PodOwner, num(o.ThrottledRatio)),
			15*time.Minute,
			"Container {{ $labels.container }} of "+workload+" is CPU-throttled",
			"Container {{ $labels.container }} of "+workload+" was throttled in {{ $value | humanizePercentage }} of its CFS periods for 15 minutes while UPID recommends its CPU. Check its CPU limit against the recommendation.",
		),
		mk("upid.operations", WebhookFailingOpen, "warning",
			"The webhook admitted pods unchanged because it failed (panic, error, timeout): rightsizing is not applied.",
			`sum without (outcome, reason) (increase(upid_webhook_decisions_total{outcome="failed_open"}[10m])) > 0`,
			5*time.Minute,
			"The UPID webhook fails open",
			"The UPID webhook {{ $labels.instance }} admitted {{ $value | printf \"%.0f\" }} pod(s) unchanged in 10 minutes because it failed; their requests were not rightsized.",
		),
		// absent() covers a target that service discovery lost altogether
		// in a Prometheus of one cluster; with several clusters it sees
		// them all at once, so a cluster whose exporter was scraped in the
		// last 7 days and is gone counts too.
		mk("upid.operations", ExporterDown, "critical",
			"Prometheus cannot scrape the exporter, or has no exporter target at all: no UPID metrics, no idle verdicts, no dashboards.",
			`up{`+o.ExporterSelector+`} == 0
or
absent(up{`+o.ExporterSelector+`})
or
(
  count by (cluster, job) (max_over_time(up{`+o.ExporterSelector+`}[7d]))
  unless on (cluster) up{`+o.ExporterSelector+`}
)`,
			10*time.Minute,
			"The UPID exporter is down",
			"Prometheus has had no successful scrape of the UPID exporter ({{ $labels.job }}{{ with $labels.instance }} {{ . }}{{ end }}) for 10 minutes; dashboards and UPID alerts have no data.",
		),
		mk("upid.operations", WebhookCertificateExpiry, "warning",
			"The webhook's serving certificate expires within a week: its rotation is not working. At expiry the API server cannot call the webhook and admission fails open (or closed, by the failurePolicy).",
			`upid_webhook_certificate_expiry_timestamp_seconds - time() < 7 * 86400`,
			time.Hour,
			"The UPID webhook's certificate expires soon",
			"The serving certificate of the UPID webhook {{ $labels.instance }} expires in {{ $value | humanizeDuration }}; it should have been rotated.",
		),
		mk("upid.operations", ExporterForecastFailing, "warning",
			"The exporter's hourly forecast runs have failed for three hours: forecasts, the anomaly score and the forecast budget alert are out of date.",
			`upid_exporter_forecast_success == 0`,
			3*time.Hour,
			"The UPID exporter {{ $labels.instance }} cannot refit its forecasts",
			"The forecast runs of the UPID exporter {{ $labels.instance }} have failed for 3 hours; it keeps serving older forecasts.",
		),
		mk("upid.operations", ExporterDataStale, "warning",
			"The exporter serves old results, or none since it started, because its cycles fail (Prometheus queries or the Kubernetes API).",
			// An exporter that never finished a cycle has no results age at
			// all (a wrong prometheus.url at install): its uptime stands in.
			fmt.Sprintf(`upid_exporter_results_age_seconds > %[1]d
or
(time() - process_start_time_seconds{%[2]s} > %[1]d unless on (job, instance) upid_exporter_results_age_seconds)`, int(o.ExporterStaleAfter.Seconds()), o.ExporterSelector),
			5*time.Minute,
			"The UPID exporter {{ $labels.instance }} serves stale results",
			"The UPID exporter {{ $labels.instance }} has served no new results for {{ $value | humanizeDuration }} (its cycles fail); verdicts, costs and recommendations are out of date or missing.",
		),
		// The API server's own count: a webhook that is down, unreachable
		// or untrusted cannot count what it never received, and
		// failurePolicy Ignore admits those pods silently.
		mk("upid.operations", WebhookUnreachable, "warning",
			"The API server could not call the webhook (down, unreachable, too slow, or its certificate not trusted) and admitted pods without it: rightsizing is not applied.",
			// The API server creates the series at its first fail-open, at
			// 1, which increase() cannot see: a series new within the
			// window counts whole.
			fmt.Sprintf(`sum by (cluster, name) (
  (%[1]s unless %[1]s offset 10m)
  or
  increase(%[1]s[10m])
) > 0`, fmt.Sprintf(`apiserver_admission_webhook_fail_open_count{name=%q,type="admit"}`, o.WebhookName)),
			5*time.Minute,
			"The API server cannot call the UPID webhook",
			"The API server admitted {{ $value | printf \"%.0f\" }} pod(s) in 10 minutes without calling the UPID webhook {{ $labels.name }} (failurePolicy Ignore): their requests were not rightsized.",
		),
		// A sleeping workload's wake needs a running scaler. Its targets
		// are gone altogether when its pods are, which matters only
		// where workloads it put to sleep may still be asleep: per
		// cluster, since one Prometheus may hold several (absent() would
		// miss one cluster's scaler while another's is up). A standby
		// replica down while the leader is up is not this alert.
		mk("upid.operations", ScalerDown, "critical",
			"No scaler is up while workloads it put to sleep may be asleep: their traffic and wake windows no longer wake them.",
			`(up{`+o.ScalerSelector+`} == 0 unless on (cluster) (up{`+o.ScalerSelector+`} == 1))
or
(
  count by (cluster) (max_over_time(upid_scaler_sleeping_workload_saved_dollars_per_hour[7d]))
  unless on (cluster) up{`+o.ScalerSelector+`}
)`,
			5*time.Minute,
			"The UPID scaler is down",
			"Prometheus has had no successful scrape of the UPID scaler{{ with $labels.instance }} {{ . }}{{ end }}{{ with $labels.cluster }} in cluster {{ . }}{{ end }} for 5 minutes: workloads it put to sleep are not woken by their traffic or wake windows. `upid wake NAMESPACE/KIND/NAME` wakes one by hand.",
		),
		mk("upid.operations", ScalerActionsFailing, "warning",
			"The scaler failed to put workloads to sleep or to wake them.",
			`sum by (cluster, namespace, job, action) (increase(upid_scaler_actions_total{result="failure"}[15m])) > 0`,
			0,
			"The UPID scaler fails to {{ $labels.action }} workloads",
			"The UPID scaler failed {{ $value | printf \"%.0f\" }} {{ $labels.action }} action(s) in 15 minutes. A failed wake leaves a requested workload at zero replicas.",
		),
	}
}

// Groups assembles the rule file: recording rules first, then the alerts by
// group in the order of Alerts.
func Groups(o Options) rulefmt.RuleGroups {
	groups := rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{{Name: "upid.recording", Rules: RecordingRules(o)}}}
	index := map[string]int{}
	for _, a := range Alerts(o) {
		i, ok := index[a.Group]
		if !ok {
			i = len(groups.Groups)
			index[a.Group] = i
			groups.Groups = append(groups.Groups, rulefmt.RuleGroup{Name: a.Group})
		}
		groups.Groups[i].Rules = append(groups.Groups[i].Rules, a.Rule)
	}
	return groups
}

// YAML renders the rule groups as the committed file.
func YAML(o Options) ([]byte, error) {
	var b strings.Builder
	b.WriteString("# Generated by `make generate` from alerts/rules.go; do not edit.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(Groups(o)); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	out := []byte(b.String())
	// Refuse to write what Prometheus would refuse to load.
	if _, errs := rulefmt.Parse(out, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler)); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
