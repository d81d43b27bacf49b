package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// workloadView is the page every table links to for one workload.
func workloadView() *dashboard.DashboardBuilder {
	d := All()[5]
	b := newDashboard(d, "One workload: its idle verdict and the traffic behind it, its cost and waste, its containers against their requests and UPID's recommendations, and its forecast.")
	b = b.WithVariable(clusterVariable()).
		WithVariable(queryVariable("namespace", "Namespace", `label_values(upid_workload_cost_dollars_per_hour{cluster=~"$cluster"}, namespace)`)).
		WithVariable(queryVariable("workload", "Workload", `label_values(upid_workload_cost_dollars_per_hour{cluster=~"$cluster", namespace=~"$namespace"}, workload)`)).
		WithVariable(horizonVariable())

	b = b.WithRow(row("Verdict")).
		WithPanel(namedStat("Idle verdict", "idle, active, unknown (missing data, never idle) or not_applicable (Jobs, CronJobs, scaled to zero).", unitNone,
			fmt.Sprintf(`max by (state) (upid_workload_idle_state{%s} == 1)`, selWorkload), "{{state}}").
			TextMode(common.BigValueTextModeName).Span(4)).
		WithPanel(statPanel("Idle score", "0.5 or more means idle.", unitPercent,
			fmt.Sprintf(`max(upid_workload_idle_score{%s})`, selWorkload)).Span(4)).
		WithPanel(statPanel("Confidence", "Quality of the data behind the verdict; the scaler acts at 0.8 or more.", unitPercent,
			fmt.Sprintf(`max(upid_workload_idle_confidence{%s})`, selWorkload)).Span(4)).
		WithPanel(statPanel("Cost per month", "Its requests at the nodes' prices.", unitDollars,
			month(fmt.Sprintf(`sum(%s)`, once("upid_workload_cost_dollars_per_hour", selWorkload, ", resource")))).Span(4)).
		WithPanel(statPanel("Waste per month", "Requested beyond the p95 of use.", unitDollars,
			month(fmt.Sprintf(`sum(%s)`, once("upid_workload_waste_dollars_per_hour", selWorkload, ", resource")))).Span(4)).
		WithPanel(statPanel("Replicas", "Running pods, averaged over the exporter's window.", unitNone,
			fmt.Sprintf(`sum(%s)`, once("upid_workload_replicas", selWorkload, ""))).Span(4))

	b = b.WithRow(row("Traffic")).
		WithPanel(timeSeries("Real vs health-check requests", "Requests that are not health traffic against probes, scrapes and load-balancer checks.", unitReqps,
			target(fmt.Sprintf(`sum(%s)`, once("upid_workload_real_requests_per_second", selWorkload, "")), "real"),
			target(fmt.Sprintf(`sum(%s)`, once("upid_workload_health_requests_per_second", selWorkload, "")), "health"),
		)).
		WithPanel(timeSeries("CPU used vs requested", "The whole workload: used now (cAdvisor), mean over the window, requested.", unitCores,
			target(fmt.Sprintf(`sum(
  %s
)`, byOwner(fmt.Sprintf(`rate(container_cpu_usage_seconds_total{container!="", container!="POD", %s}[$__rate_interval])`, selKubeNS))), "used"),
			target(fmt.Sprintf(`sum(%s)`, once("upid_workload_cpu_usage_cores", selWorkload, "")), "mean over the window"),
			target(fmt.Sprintf(`sum(%s)`, once("upid_workload_requested_cpu_cores", selWorkload, "")), "requested"),
		))

	b = b.WithRow(row("Containers")).
		WithPanel(containerTable()).
		WithPanel(timeSeries("Memory: used vs requested vs recommended", "Working set per container and replica.", unitBytes,
			target(memoryUsedByContainer(), "used {{container}}"),
			target(requestByContainer("memory"), "requested {{container}}"),
			target(upidByContainer("upid_container_recommended_memory_request_bytes", ""), "recommended {{container}}"),
		)).
		WithPanel(timeSeries("CPU: used vs requested vs recommended", "Per container and replica.", unitCores,
			target(cpuUsedByContainer("$__rate_interval"), "used {{container}}"),
			target(requestByContainer("cpu"), "requested {{container}}"),
			target(upidByContainer("upid_container_recommended_cpu_request_cores", ""), "recommended {{container}}"),
		))

	cpu := forecastStats("upid_workload_forecast_cpu_usage_cores", selWorkload, "sum")
	b = b.WithRow(row("Forecast")).
		WithPanel(band(timeSeries("CPU forecast band", "p10, p50 and p90 of the CPU forecast at the horizon.", unitCores,
			target(cpu[0], "p10"),
			target(cpu[1], "p50"),
			target(cpu[2], "p90"),
		), "p10", "p90")).
		WithPanel(timeSeries("Usage anomaly score", "How far the last day's CPU and memory lay outside their forecast bands.", unitPercent,
			target(fmt.Sprintf(`max by (resource) (upid_workload_usage_anomaly_score{%s})`, selWorkload), "{{resource}}"),
		).Min(0).Max(1))
	return b
}
