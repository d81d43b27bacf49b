package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/table"

	"github.com/upid-dev/upid/alerts"
)

// containerKeys identify a container of a workload. cluster is left out on
// purpose: cAdvisor and kube-state-metrics series may not carry the label the
// exporter adds, and the columns of one table must share their keys.
const containerKeys = "namespace, workload, kind, container"

// hpaKeys name one target of a workload's HPA.
const hpaKeys = "namespace, workload, kind, hpa, resource, container"

// byOwner resolves a per-pod cAdvisor or kube-state-metrics expression to the
// selected workloads through the shared pod-owner recording rule.
func byOwner(perPod string) string {
	return fmt.Sprintf(`%s
* on (cluster, namespace, pod) group_left (workload, kind)
%s{%s, workload=~"$workload"}`, perPod, alerts.PodOwner, selKubeNS)
}

func cpuUsedByContainer(rateWindow string) string {
	return fmt.Sprintf(`max by (%s) (
  %s
)`, containerKeys, byOwner(fmt.Sprintf(`rate(container_cpu_usage_seconds_total{container!="", container!="POD", %s}[%s])`, selKubeNS, rateWindow)))
}

func memoryUsedByContainer() string {
	return fmt.Sprintf(`max by (%s) (
  %s
)`, containerKeys, byOwner(fmt.Sprintf(`container_memory_working_set_bytes{container!="", container!="POD", %s}`, selKubeNS)))
}

func requestByContainer(resource string) string {
	return fmt.Sprintf(`max by (%s) (
  %s
)`, containerKeys, byOwner(fmt.Sprintf(`kube_pod_container_resource_requests{resource=%q, %s}`, resource, selKubeNS)))
}

func upidByContainer(metric, extra string) string {
	return fmt.Sprintf(`max by (%s) (%s{%s%s})`, containerKeys, metric, selWorkload, extra)
}

// containerTable is requested vs recommended vs used per container.
func containerTable() *table.PanelBuilder {
	return tablePanel("Containers: requested vs recommended vs used", "Per container, per replica. Requests from kube-state-metrics; used is the largest over the workload's pods over the exporter's window (p95 CPU, peak memory); savings are for all replicas if applied. Apply is 1 when the change passes the threshold or the current requests are unsafe.", []string{"job", "instance"},
		column{"Savings $/month", unitDollars, month(upidByContainer("upid_container_recommendation_savings_dollars_per_hour", ""))},
		column{"CPU requested", unitCores, requestByContainer("cpu")},
		column{"CPU recommended", unitCores, upidByContainer("upid_container_recommended_cpu_request_cores", "")},
		column{"CPU used p95", unitCores, upidByContainer("upid_container_cpu_usage_cores", `, stat="p95"`)},
		column{"Memory requested", unitBytes, requestByContainer("memory")},
		column{"Memory recommended", unitBytes, upidByContainer("upid_container_recommended_memory_request_bytes", "")},
		column{"Memory used max", unitBytes, upidByContainer("upid_container_memory_usage_bytes", `, stat="max"`)},
		column{"Confidence", unitPercent, upidByContainer("upid_container_recommendation_confidence", "")},
		column{"Apply", unitNone, upidByContainer("upid_container_recommendation_apply", "")},
	).DataLinks([]cog.Builder[dashboard.DashboardLink]{workloadLink()})
}

func rightsizing() *dashboard.DashboardBuilder {
	d := All()[2]
	b := newDashboard(d, "UPID's per-container recommendations (docs/recommendations.md) against what is requested and used, what applying them saves, the risks, and what the webhook did.")
	b = withScope(b, true)

	b = b.WithRow(row("Savings")).
		WithPanel(statPanel("Savings if applied, per month", "Recommendations that pass the change threshold, all replicas.", unitDollars,
			month(fmt.Sprintf(`sum(%s{%s})`, alerts.NamespaceSavings, selNS)))).
		WithPanel(statPanel("Containers to change", "Containers whose recommendation passes the change threshold or whose requests are unsafe.", unitNone,
			fmt.Sprintf(`count(%s == 1) or vector(0)`, upidByContainer("upid_container_recommendation_apply", "")))).
		WithPanel(statPanel("Waste per month", "Requested beyond the p95 of use, priced.", unitDollars,
			month(fmt.Sprintf(`sum(%s)`, once("upid_workload_waste_dollars_per_hour", selWorkload, ", resource"))))).
		WithPanel(statPanel("Pods rightsized by the webhook", "Pods the webhook mutated in the time range.", unitNone,
			`sum(increase(upid_webhook_decisions_total{outcome="mutated"}[$__range])) or vector(0)`)).
		WithPanel(statPanel("HPA pairs' savings per month", "Workloads an HPA scales by utilization: what their paired requests and new HPA targets save together, all replicas; applied in Git, never by the webhook.", unitDollars,
			month(fmt.Sprintf(`sum(max by (%s) (upid_workload_hpa_pairing_savings_dollars_per_hour{%s})) or vector(0)`, hpaKeys, selWorkload)))).
		WithPanel(statPanel("Pod-level requests' savings per month", "Workloads whose pods set CPU or memory at pod level (spec.resources): what UPID's pod-level requests save, all replicas; the webhook sets them at admission.", unitDollars,
			month(fmt.Sprintf(`sum(%s) or vector(0)`, once("upid_workload_pod_recommendation_savings_dollars_per_hour", selWorkload, "")))))

	b = b.WithRow(row("Per container")).
		WithPanel(containerTable()).
		WithPanel(timeSeries("CPU: used vs requested vs recommended", "Per container and replica.", unitCores,
			target(cpuUsedByContainer("$__rate_interval"), "used {{workload}}/{{container}}"),
			target(requestByContainer("cpu"), "requested {{workload}}/{{container}}"),
			target(upidByContainer("upid_container_recommended_cpu_request_cores", ""), "recommended {{workload}}/{{container}}"),
		)).
		WithPanel(timeSeries("Memory: used vs requested vs recommended", "Working set per container and replica.", unitBytes,
			target(memoryUsedByContainer(), "used {{workload}}/{{container}}"),
			target(requestByContainer("memory"), "requested {{workload}}/{{container}}"),
			target(upidByContainer("upid_container_recommended_memory_request_bytes", ""), "recommended {{workload}}/{{container}}"),
		))

	b = b.WithRow(row("HPA pairs")).
		WithPanel(tablePanel("HPA pairs: requests and target together", "A resource an HPA scales on by utilization has no recommendation of its own: a new request alone only changes the replicas. The pair moves the requests and the HPA's target together, so the HPA scales at the same use per pod (docs/recommendations.md). Container is set for a ContainerResource target.", []string{"job", "instance"},
			column{"Savings $/month", unitDollars, month(fmt.Sprintf(`max by (%s) (upid_workload_hpa_pairing_savings_dollars_per_hour{%s})`, hpaKeys, selWorkload))},
			column{"New target", unitPercent, fmt.Sprintf(`max by (%s) (upid_workload_hpa_recommended_target_utilization_ratio{%s})`, hpaKeys, selWorkload)},
		).DataLinks([]cog.Builder[dashboard.DashboardLink]{workloadLink()})).
		WithPanel(tablePanel("HPA pairs: requests per container", "The requests that go with each pair's target, against the requests now (kube-state-metrics).", []string{"job", "instance"},
			column{"CPU requested", unitCores, fmt.Sprintf(`%s and on (%s) %s`, requestByContainer("cpu"), containerKeys, upidByContainer("upid_container_hpa_paired_cpu_request_cores", ""))},
			column{"CPU paired", unitCores, upidByContainer("upid_container_hpa_paired_cpu_request_cores", "")},
			column{"Memory requested", unitBytes, fmt.Sprintf(`%s and on (%s) %s`, requestByContainer("memory"), containerKeys, upidByContainer("upid_container_hpa_paired_memory_request_bytes", ""))},
			column{"Memory paired", unitBytes, upidByContainer("upid_container_hpa_paired_memory_request_bytes", "")},
		))

	b = b.WithRow(row("Risk")).
		WithPanel(tablePanel("OOM and throttling risk", "OOM kills in the time range and the share of CFS periods throttled now, per container; the rightsizing alerts fire on these for containers UPID recommends.", nil,
			column{"OOM kills", unitNone, fmt.Sprintf(`max by (%s) (
  %s
)`, containerKeys, byOwner(fmt.Sprintf(`increase(container_oom_events_total{container!="", container!="POD", %s}[$__range])`, selKubeNS)))},
			column{"Throttled", unitPercent, fmt.Sprintf(`max by (%s) (
  %s
)`, containerKeys, byOwner(fmt.Sprintf(`(
  sum by (namespace, pod, container) (rate(container_cpu_cfs_throttled_periods_total{container!="", %[1]s}[$__rate_interval]))
  / sum by (namespace, pod, container) (rate(container_cpu_cfs_periods_total{container!="", %[1]s}[$__rate_interval]) > 0)
)`, selKubeNS)))},
		).Span(12)).
		WithPanel(timeSeries("OOM kills", "Per container, over five-minute windows.", unitNone,
			target(fmt.Sprintf(`sum by (%s) (
  %s
)`, containerKeys, byOwner(fmt.Sprintf(`increase(container_oom_events_total{container!="", container!="POD", %s}[5m])`, selKubeNS))), "{{workload}}/{{container}}"),
		))

	b = b.WithRow(row("What the webhook changed")).
		WithPanel(timeSeries("Webhook decisions", "Admission decisions per second by outcome and reason: mutated (requests rewritten), recommended (annotated only), skipped, failed_open.", "ops",
			target(`sum by (outcome, reason) (rate(upid_webhook_decisions_total[$__rate_interval]))`, "{{outcome}} {{reason}}"),
		)).
		WithPanel(timeSeries("Webhook decisions in the range", "Decisions by outcome over the selected time range.", unitNone,
			target(`sum by (outcome) (increase(upid_webhook_decisions_total[$__range]))`, "{{outcome}}"),
		))
	return b
}
