package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/upid-dev/upid/alerts"
)

func operations() *dashboard.DashboardBuilder {
	d := All()[4]
	b := newDashboard(d, "UPID's own health: is the exporter scraped and are its results fresh, does the webhook decide fast and fail open, do the scaler's actions succeed. Runbooks: docs/runbooks/.")
	b = b.Time("now-24h", "now").WithVariable(clusterVariable())
	exporterUp := "up{" + alerts.Default().ExporterSelector + "}"

	b = b.WithRow(row("Exporter")).
		WithPanel(statPanel("Exporter targets up", "Scrape targets of the exporter that are up, out of all of them.", unitNone,
			"sum("+exporterUp+") or vector(0)")).
		WithPanel(statPanel("Data age", "Age of the results served; it grows while cycles fail. UPIDExporterDataStale fires past 30m.", unitSeconds,
			`max(upid_exporter_results_age_seconds{`+selCluster+`})`)).
		WithPanel(statPanel("Last good cycle", "When the last successful analysis cycle ran.", unitDateTime,
			`max(upid_exporter_last_success_timestamp_seconds{`+selCluster+`}) * 1000`).
			GraphMode(common.BigValueGraphModeNone)).
		WithPanel(statPanel("Failed queries, last hour", "Prometheus queries of the exporter that failed; see upid_exporter_query_errors_total by query.", unitNone,
			`sum(increase(upid_exporter_query_errors_total{`+selCluster+`}[1h])) or vector(0)`)).
		WithPanel(timeSeries("Cycle stages", "Duration of each stage of the last cycle.", unitSeconds,
			target(`max by (stage) (upid_exporter_cycle_stage_duration_seconds{`+selCluster+`})`, "{{stage}}"),
		).Span(8)).
		WithPanel(timeSeries("Stage success", "1 when the stage succeeded the last time it ran.", unitNone,
			target(`min by (stage) (upid_exporter_cycle_stage_success{`+selCluster+`})`, "{{stage}}"),
		).Span(8).Min(0).Max(1)).
		WithPanel(timeSeries("Cycles per hour", "Analysis cycles by result.", unitNone,
			target(`sum by (result) (increase(upid_exporter_cycles_total{`+selCluster+`}[1h]))`, "{{result}}"),
		).Span(8)).
		WithPanel(timeSeries("Objects tracked", "Workloads by kind, pods, nodes and namespaces in the last good cycle.", unitNone,
			target(`max by (kind) (upid_exporter_objects{`+selCluster+`})`, "{{kind}}"),
		)).
		WithPanel(statPanel("Forecast run", "1 when the last forecast run succeeded; a failed run keeps the previous forecasts.", unitNone,
			`min(upid_exporter_forecast_success{`+selCluster+`})`).Span(4)).
		WithPanel(statPanel("Forecast age", "Time since the forecasts served were fitted (hourly by default).", unitSeconds,
			`time() - max(upid_exporter_forecast_timestamp_seconds{`+selCluster+`})`).Span(4)).
		WithPanel(statPanel("Workloads with a forecast", "Workloads with two days or more of hourly history.", unitNone,
			`max(upid_exporter_forecast_workloads{`+selCluster+`})`).Span(4)).
		WithPanel(timeSeries("Forecast run duration", "Queries and fits of the last forecast run.", unitSeconds,
			target(`max(upid_exporter_forecast_duration_seconds{`+selCluster+`})`, "duration"),
		).Span(12)).
		WithPanel(tablePanel("Running versions", "UPID processes by version (upid_build_info).", nil,
			column{"Processes", unitNone, `count by (job, version, revision, goversion) (upid_build_info)`},
		).Span(12))

	b = b.WithRow(row("Webhook")).
		WithPanel(statPanel("Failed open in the range", "Pods admitted unchanged because the webhook failed. UPIDWebhookFailingOpen fires on any.", unitNone,
			`sum(increase(upid_webhook_decisions_total{outcome="failed_open"}[$__range])) or vector(0)`)).
		WithPanel(statPanel("Admission p99", "99th percentile of the webhook's handling time.", unitSeconds,
			`histogram_quantile(0.99, sum by (le) (rate(upid_webhook_admission_duration_seconds_bucket[$__rate_interval])))`)).
		WithPanel(statPanel("Recommendations age", "Age of the recommendations the webhook holds.", unitSeconds,
			`max(upid_webhook_recommendations_cache_age_seconds)`)).
		WithPanel(statPanel("Certificate expires in", "Time left on the webhook's serving certificate.", unitSeconds,
			`min(upid_webhook_certificate_expiry_timestamp_seconds) - time()`)).
		WithPanel(timeSeries("Decisions", "Admission decisions per second by outcome.", "ops",
			target(`sum by (outcome) (rate(upid_webhook_decisions_total[$__rate_interval]))`, "{{outcome}}"),
		)).
		WithPanel(timeSeries("Admission latency", "Handling time quantiles.", unitSeconds,
			target(`histogram_quantile(0.5, sum by (le) (rate(upid_webhook_admission_duration_seconds_bucket[$__rate_interval])))`, "p50"),
			target(`histogram_quantile(0.99, sum by (le) (rate(upid_webhook_admission_duration_seconds_bucket[$__rate_interval])))`, "p99"),
		)).
		WithPanel(timeSeries("Fail-open and skip reasons", "Decisions that did not rightsize, by reason.", "ops",
			target(`sum by (outcome, reason) (rate(upid_webhook_decisions_total{outcome=~"failed_open|skipped"}[$__rate_interval]))`, "{{outcome}} {{reason}}"),
		)).
		WithPanel(timeSeries("Recommendation refreshes", "Refreshes of the webhook's recommendations by result, and how many workloads it holds.", unitNone,
			target(`sum by (result) (increase(upid_webhook_recommendations_refresh_total[1h]))`, "{{result}} per hour"),
			target(`max(upid_webhook_recommendations_cache_workloads)`, "workloads"),
		))

	b = b.WithRow(row("Scaler")).
		WithPanel(statPanel("Failed actions in the range", "Sleep and wake actions that failed. UPIDScalerActionsFailing fires on any.", unitNone,
			`sum(increase(upid_scaler_actions_total{result="failure"}[$__range])) or vector(0)`)).
		WithPanel(statPanel("Sleeping workloads", "Workloads asleep now, as the leader reports.", unitNone,
			`max(upid_scaler_sleeping_workloads)`)).
		WithPanel(statPanel("Leaders", "Replicas holding the Lease; 1 is right.", unitNone,
			`sum(upid_scaler_leader)`)).
		WithPanel(statPanel("Rejected notifications in the range", "Alertmanager notifications the scaler refused (unauthorized, malformed, too large).", unitNone,
			`sum(increase(upid_scaler_notifications_total{result!="accepted"}[$__range])) or vector(0)`)).
		WithPanel(timeSeries("Actions", "Sleep and wake actions per second by result.", "ops",
			target(`sum by (action, result) (rate(upid_scaler_actions_total[$__rate_interval]))`, "{{action}} {{result}}"),
		)).
		WithPanel(timeSeries("Notifications", "Alertmanager notifications per second by result.", "ops",
			target(`sum by (result) (rate(upid_scaler_notifications_total[$__rate_interval]))`, "{{result}}"),
		))

	b = b.WithRow(row("Alerts")).
		WithPanel(tablePanel("UPID alerts firing or pending", "From Prometheus's ALERTS series; runbooks in docs/runbooks/.", []string{"__name__"},
			column{"Active", unitNone, `max by (alertname, alertstate, severity, namespace, workload, kind) (ALERTS{alertname=~"UPID.*"})`},
		))
	return b
}
