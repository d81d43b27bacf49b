package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/upid-dev/upid/alerts"
)

func horizonVariable() *dashboard.CustomVariableBuilder {
	return dashboard.NewCustomVariableBuilder("horizon").
		Label("Horizon").
		Description("Forecast horizon: the mean over the day ending this far ahead.").
		Values(dashboard.StringOrMap{String: cog.ToPtr("1d,7d,30d")}).
		Current(dashboard.VariableOption{
			Selected: cog.ToPtr(true),
			Text:     dashboard.StringOrArrayOfString{String: cog.ToPtr("7d")},
			Value:    dashboard.StringOrArrayOfString{String: cog.ToPtr("7d")},
		})
}

// forecastStats are the exporter's forecast bands: p10, p50 and p90 of each
// hour, averaged over the horizon (label stat; quantile is reserved),
// aggregated by agg over the workloads, each once.
func forecastStats(metric, sel, agg string) [3]string {
	var out [3]string
	for i, q := range []string{"p10", "p50", "p90"} {
		out[i] = fmt.Sprintf(`%s(%s)`, agg, once(metric, fmt.Sprintf(`%s, horizon="$horizon", stat=%q`, sel, q), ""))
	}
	return out
}

func forecasts() *dashboard.DashboardBuilder {
	d := All()[3]
	b := newDashboard(d, "Forecasts of CPU, memory and cost per workload (docs/forecasting.md): the median and the p10–p90 band at the chosen horizon, against what is used and spent now, and the workloads whose last day lay outside their band.")
	b = withScope(b, true).WithVariable(horizonVariable())

	cost := forecastStats(alerts.NamespaceForecast, selNS, "sum")
	b = b.WithRow(row("Cost")).
		WithPanel(band(timeSeries("Cost per month: forecast band vs actual", "The selected namespaces' forecast spend at the horizon (summed quantiles: an upper bound of the p90) and what they cost now.", unitDollars,
			target(month(cost[0]), "p10"),
			target(month(cost[1]), "p50"),
			target(month(cost[2]), "p90"),
			target(month(fmt.Sprintf(`sum(%s{%s})`, alerts.NamespaceCost, selNS)), "actual"),
		), "p10", "p90")).
		WithPanel(tablePanel("Forecast cost by namespace", "Per month at the horizon, against the current cost.", []string{"horizon", "stat"},
			column{"p50 $/month", unitDollars, month(fmt.Sprintf(`sum by (cluster, namespace) (%s{%s, horizon="$horizon", stat="p50"})`, alerts.NamespaceForecast, selNS))},
			column{"p90 $/month", unitDollars, month(fmt.Sprintf(`sum by (cluster, namespace) (%s{%s, horizon="$horizon", stat="p90"})`, alerts.NamespaceForecast, selNS))},
			column{"Now $/month", unitDollars, month(fmt.Sprintf(`sum by (cluster, namespace) (%s{%s})`, alerts.NamespaceCost, selNS))},
			column{"Change", unitPercent, fmt.Sprintf(`sum by (cluster, namespace) (%s{%s, horizon="$horizon", stat="p50"})
/ sum by (cluster, namespace) (%s{%s}) - 1`, alerts.NamespaceForecast, selNS, alerts.NamespaceCost, selNS)},
		).Span(12))

	cpu := forecastStats("upid_workload_forecast_cpu_usage_cores", selWorkload, "sum")
	b = b.WithRow(row("CPU")).
		WithPanel(band(timeSeries("CPU: forecast band vs used", "The selected workloads' forecast CPU at the horizon and what they use now (cAdvisor).", unitCores,
			target(cpu[0], "p10"),
			target(cpu[1], "p50"),
			target(cpu[2], "p90"),
			target(fmt.Sprintf(`sum(
  %s
)`, byOwner(fmt.Sprintf(`rate(container_cpu_usage_seconds_total{container!="", container!="POD", %s}[$__rate_interval])`, selKubeNS))), "used"),
		), "p10", "p90")).
		WithPanel(tablePanel("Forecast CPU by workload", "At the horizon, against the mean over the exporter's window and the requests.", []string{"job", "instance", "horizon", "stat"},
			column{"p50", unitCores, fmt.Sprintf(`max by (%s) (upid_workload_forecast_cpu_usage_cores{%s, horizon="$horizon", stat="p50"})`, workloadKeys, selWorkload)},
			column{"p90", unitCores, fmt.Sprintf(`max by (%s) (upid_workload_forecast_cpu_usage_cores{%s, horizon="$horizon", stat="p90"})`, workloadKeys, selWorkload)},
			column{"Mean used", unitCores, fmt.Sprintf(`max by (%s) (upid_workload_cpu_usage_cores{%s})`, workloadKeys, selWorkload)},
			column{"Requested", unitCores, fmt.Sprintf(`max by (%s) (upid_workload_requested_cpu_cores{%s})`, workloadKeys, selWorkload)},
		).Span(12).DataLinks([]cog.Builder[dashboard.DashboardLink]{workloadLink()}))

	mem := forecastStats("upid_workload_forecast_memory_usage_bytes", selWorkload, "sum")
	b = b.WithRow(row("Memory")).
		WithPanel(band(timeSeries("Memory: forecast band vs used", "The selected workloads' forecast working set at the horizon (the sum of their pods' hourly means) and what they use now (cAdvisor).", unitBytes,
			target(mem[0], "p10"),
			target(mem[1], "p50"),
			target(mem[2], "p90"),
			target(fmt.Sprintf(`sum(
  %s
)`, byOwner(fmt.Sprintf(`container_memory_working_set_bytes{container!="", container!="POD", %s}`, selKubeNS))), "used"),
		), "p10", "p90")).
		WithPanel(tablePanel("Forecast memory by workload", "At the horizon, against the requests.", []string{"job", "instance", "horizon", "stat"},
			column{"p50", unitBytes, fmt.Sprintf(`max by (%s) (upid_workload_forecast_memory_usage_bytes{%s, horizon="$horizon", stat="p50"})`, workloadKeys, selWorkload)},
			column{"p90", unitBytes, fmt.Sprintf(`max by (%s) (upid_workload_forecast_memory_usage_bytes{%s, horizon="$horizon", stat="p90"})`, workloadKeys, selWorkload)},
			column{"Requested", unitBytes, fmt.Sprintf(`max by (%s) (upid_workload_requested_memory_bytes{%s})`, workloadKeys, selWorkload)},
		).Span(12).DataLinks([]cog.Builder[dashboard.DashboardLink]{workloadLink()}))

	b = b.WithRow(row("Anomalies")).
		WithPanel(tablePanel("Anomalous workloads", "Workloads whose last day of CPU or memory lay outside the forecast band (the higher score, 0–1), highest first.", []string{"job", "instance"},
			column{"Anomaly score", unitPercent, fmt.Sprintf(`max by (%s) (upid_workload_usage_anomaly_score{%s}) > 0`, workloadKeys, selWorkload)},
			column{"Cost $/month", unitDollars, month(fmt.Sprintf(`sum by (%s) (%s)`, workloadKeys, once("upid_workload_cost_dollars_per_hour", selWorkload, ", resource")))},
		).Span(12).DataLinks([]cog.Builder[dashboard.DashboardLink]{workloadLink()})).
		WithPanel(timeSeries("Anomaly score", "Per workload, the higher of CPU's and memory's; 0 is inside the band.", unitPercent,
			target(fmt.Sprintf(`max by (namespace, workload) (upid_workload_usage_anomaly_score{%s})`, selWorkload), "{{namespace}}/{{workload}}"),
		).Min(0).Max(1))
	return b
}
