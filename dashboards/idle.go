package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/upid-dev/upid/alerts"
)

// idleOnly keeps the series of workloads whose verdict is idle now.
func idleOnly(expr string) string {
	return fmt.Sprintf(`%s
and on (%s) (upid_workload_idle_state{state="idle", %s} == 1)`, expr, workloadKeys, selWorkload)
}

func idleWorkloads() *dashboard.DashboardBuilder {
	d := All()[1]
	b := newDashboard(d, "Workloads with no real traffic once probes, scrapes and load-balancer checks are discounted (docs/idle-score.md), what they cost, and the ones the scaler put to sleep.")
	b = withScope(b, true)

	b = b.WithRow(row("Now")).
		WithPanel(statPanel("Idle workloads", "Workloads whose verdict is idle, whatever the confidence.", unitNone,
			fmt.Sprintf(`count(%s == 1) or vector(0)`, once("upid_workload_idle_state", `state="idle", `+selWorkload, "")))).
		WithPanel(statPanel("Idle spend per month", "The cost of workloads idle with confidence ≥ 0.8.", unitDollars,
			month(fmt.Sprintf(`sum(%s{%s})`, alerts.NamespaceIdleCost, selNS)))).
		WithPanel(statPanel("Sleeping workloads", "Workloads the scaler has scaled to zero.", unitNone,
			fmt.Sprintf(`count(upid_scaler_sleeping_workload_since_timestamp_seconds{%s}) or vector(0)`, selScaler))).
		WithPanel(statPanel("Sleeping workloads save per month", "What the sleeping workloads would cost awake.", unitDollars,
			month(fmt.Sprintf(`sum(upid_scaler_sleeping_workload_saved_dollars_per_hour{%s}) or vector(0)`, selScaler))))

	b = b.WithRow(row("Idle workloads")).
		WithPanel(tablePanel("Idle workloads", "Idle now, most expensive first. Health share is the share of requests that were probes, scrapes and load-balancer checks: the illusion of traffic. Click a row for the workload's view.", []string{"job", "instance"},
			column{"$/month", unitDollars, month(fmt.Sprintf(`max by (%s) (%s)`, workloadKeys, idleOnly(`upid_workload_cost_dollars_per_hour{`+selWorkload+`}`)))},
			column{"Idle score", unitPercent, fmt.Sprintf(`max by (%s) (%s)`, workloadKeys, idleOnly(`upid_workload_idle_score{`+selWorkload+`}`))},
			column{"Confidence", unitPercent, fmt.Sprintf(`max by (%s) (%s)`, workloadKeys, idleOnly(`upid_workload_idle_confidence{`+selWorkload+`}`))},
			column{"Idle since", unitDateTimeISO, fmt.Sprintf(`max by (%s) (upid_workload_idle_since_timestamp_seconds{%s}) * 1000`, workloadKeys, selWorkload)},
			column{"Idle for", unitSeconds, fmt.Sprintf(`max by (%s) (time() - upid_workload_idle_since_timestamp_seconds{%s})`, workloadKeys, selWorkload)},
			column{"Real req/s", unitReqps, fmt.Sprintf(`max by (%s) (%s)`, workloadKeys, idleOnly(`upid_workload_real_requests_per_second{`+selWorkload+`}`))},
			column{"Health req/s", unitReqps, fmt.Sprintf(`max by (%s) (%s)`, workloadKeys, idleOnly(`upid_workload_health_requests_per_second{`+selWorkload+`}`))},
			column{"Health share", unitPercent, fmt.Sprintf(`max by (%s) (%s)`, workloadKeys, idleOnly(`upid_workload_health_request_ratio{`+selWorkload+`}`))},
		).DataLinks([]cog.Builder[dashboard.DashboardLink]{workloadLink()}))

	b = b.WithRow(row("The health-check illusion")).
		WithPanel(timeSeries("Real vs health-check requests", "Per workload: requests that are not health traffic, against probes, scrapes and load-balancer checks, over the exporter's window. A workload that looks busy in request counts may be all health checks.", unitReqps,
			target(fmt.Sprintf(`sum by (namespace, workload) (%s)`, once("upid_workload_real_requests_per_second", selWorkload, "")), "real {{namespace}}/{{workload}}"),
			target(fmt.Sprintf(`sum by (namespace, workload) (%s)`, once("upid_workload_health_requests_per_second", selWorkload, "")), "health {{namespace}}/{{workload}}"),
		)).
		WithPanel(timeSeries("Health share of requests", "The share of all requests that are health traffic; 100% means only health checks keep it looking alive.", unitPercent,
			target(fmt.Sprintf(`max by (namespace, workload) (upid_workload_health_request_ratio{%s})`, selWorkload), "{{namespace}}/{{workload}}"),
		).Min(0).Max(1)).
		WithPanel(timeSeries("Idle score", "0–1; 0.5 or more means idle. Lines for the selected workloads.", unitPercent,
			target(fmt.Sprintf(`max by (namespace, workload) (upid_workload_idle_score{%s})`, selWorkload), "{{namespace}}/{{workload}}"),
		).Min(0).Max(1)).
		WithPanel(timeSeries("Idle spend per month by namespace", "Confident idle spend, per month.", unitDollars,
			target(month(fmt.Sprintf(`sum by (namespace) (%s{%s})`, alerts.NamespaceIdleCost, selNS)), "{{namespace}}"),
		))

	b = b.WithRow(row("Sleeping workloads")).
		WithPanel(tablePanel("Sleeping workloads", "Workloads the scaler scaled to zero, what they save and since when. The wake alert fires when their Services get requests.", []string{"job", "instance", "pod"},
			column{"Saves $/month", unitDollars, month(fmt.Sprintf(`max by (namespace, workload, kind) (upid_scaler_sleeping_workload_saved_dollars_per_hour{%s})`, selScaler))},
			column{"Asleep for", unitSeconds, fmt.Sprintf(`max by (namespace, workload, kind) (time() - upid_scaler_sleeping_workload_since_timestamp_seconds{%s})`, selScaler)},
		)).
		WithPanel(timeSeries("Sleep and wake actions", "The scaler's actions by result.", "ops",
			target(`sum by (action, result) (rate(upid_scaler_actions_total[$__rate_interval]))`, "{{action}} {{result}}"),
		)).
		WithPanel(timeSeries("Requests to sleeping workloads", "Requests per second reaching the Services of sleeping workloads (ingress-nginx, Istio): the wake signal.", unitReqps,
			target(fmt.Sprintf(`sum by (namespace, workload) (
				upid_scaler_sleeping_workload_service_info{%s}
				* on (cluster, namespace, service) group_left ()
				%s
			)`, selScaler, alerts.ServiceRequestRate), "{{namespace}}/{{workload}}"),
		))
	return b
}
