package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/table"

	"github.com/upid-dev/upid/alerts"
)

func costOverview() *dashboard.DashboardBuilder {
	d := All()[0]
	b := newDashboard(d, "What the cluster's workloads cost and waste, from their requests at the nodes' prices (docs/metrics.md). A month is 730 hours.")
	b = withScope(b, false).
		WithVariable(dashboard.NewCustomVariableBuilder("team_label").
			Label("Team label").
			Description("The upid_namespace_labels label that names the team (exporter.namespace_labels).").
			Values(dashboard.StringOrMap{String: cog.ToPtr("label_team,label_owner,label_cost_center")}).
			Current(dashboard.VariableOption{
				Selected: cog.ToPtr(true),
				Text:     dashboard.StringOrArrayOfString{String: cog.ToPtr("label_team")},
				Value:    dashboard.StringOrArrayOfString{String: cog.ToPtr("label_team")},
			}).
			AllowCustomValue(true))

	ns := func(record string) string { return fmt.Sprintf("sum(%s{%s})", record, selNS) }
	b = b.WithRow(row("This month")).
		WithPanel(statPanel("Cost per month", "What the selected workloads' requests cost per month at the nodes' prices.", unitDollars,
			month(ns(alerts.NamespaceCost)))).
		WithPanel(statPanel("Waste per month", "Requests above the p95 of use, priced: what rightsizing could save at most.", unitDollars,
			month(ns(alerts.NamespaceWaste)))).
		WithPanel(statPanel("Idle spend per month", "The whole cost of workloads idle with confidence ≥ 0.8 (the UPIDWorkloadIdle condition).", unitDollars,
			month(ns(alerts.NamespaceIdleCost)))).
		WithPanel(statPanel("Waste share", "Waste as a share of cost.", unitPercent,
			ns(alerts.NamespaceWaste)+" / "+ns(alerts.NamespaceCost))).
		WithPanel(statPanel("Rightsizing savings per month", "Saved per month if UPID's recommendations that pass the change threshold were applied.", unitDollars,
			month(ns(alerts.NamespaceSavings)))).
		WithPanel(statPanel("Sleeping workloads save per month", "What the workloads the scaler put to sleep would cost awake.", unitDollars,
			month(fmt.Sprintf("sum(upid_scaler_sleeping_workload_saved_dollars_per_hour{%s}) or vector(0)", selNS)))).
		WithPanel(statPanel("Forecast cost, next 30 days (p50)", "Median of the 30-day cost forecast, per month.", unitDollars,
			month(fmt.Sprintf(`sum(%s{%s, horizon="30d", stat="p50"})`, alerts.NamespaceForecast, selNS)))).
		WithPanel(statPanel("Nodes cost per month", "What the nodes cost per month, requested or not (cluster-wide).", unitDollars,
			month(`sum(max by (cluster, node) (upid_node_cost_dollars_per_hour{`+selCluster+`}))`)))

	b = b.WithRow(row("Trend and forecast")).
		WithPanel(timeSeries("Cost, waste and idle spend per month", "The monthly rate over time.", unitDollars,
			target(month(ns(alerts.NamespaceCost)), "cost"),
			target(month(ns(alerts.NamespaceWaste)), "waste"),
			target(month(ns(alerts.NamespaceIdleCost)), "idle"),
		).Span(12)).
		WithPanel(band(timeSeries("30-day cost forecast per month, with its p10–p90 band", "The forecast of the monthly spend at each horizon; the band is the 10th to 90th percentile. Quantiles are summed over workloads, so the band is wide (an upper bound of the p90).", unitDollars,
			target(month(fmt.Sprintf(`sum by (horizon) (%s{%s, stat="p10"})`, alerts.NamespaceForecast, selNS)), "p10 {{horizon}}"),
			target(month(fmt.Sprintf(`sum by (horizon) (%s{%s, stat="p50"})`, alerts.NamespaceForecast, selNS)), "p50 {{horizon}}"),
			target(month(fmt.Sprintf(`sum by (horizon) (%s{%s, stat="p90"})`, alerts.NamespaceForecast, selNS)), "p90 {{horizon}}"),
			target(month(ns(alerts.NamespaceCost)), "actual"),
		), "p10 30d", "p90 30d").Span(12).
			Links([]cog.Builder[dashboard.DashboardLink]{dashboardLink("Forecasts", "upid-forecasts")}))

	b = b.WithRow(row("Who spends")).
		WithPanel(tablePanel("Top namespaces", "Namespaces by monthly cost, with waste, idle spend and the savings UPID recommends.", nil,
			column{"Cost $/month", unitDollars, month(fmt.Sprintf(`topk(20, sum by (cluster, namespace) (%s{%s}))`, alerts.NamespaceCost, selNS))},
			column{"Waste $/month", unitDollars, month(fmt.Sprintf(`sum by (cluster, namespace) (%s{%s})`, alerts.NamespaceWaste, selNS))},
			column{"Idle $/month", unitDollars, month(fmt.Sprintf(`sum by (cluster, namespace) (%s{%s})`, alerts.NamespaceIdleCost, selNS))},
			column{"Savings $/month", unitDollars, month(fmt.Sprintf(`sum by (cluster, namespace) (%s{%s})`, alerts.NamespaceSavings, selNS))},
		).Span(12).DataLinks([]cog.Builder[dashboard.DashboardLink]{
			dashboard.NewDashboardLinkBuilder("Idle workloads of the namespace").Type(dashboard.DashboardLinkTypeLink).
				Url(`/d/upid-idle?var-datasource=${datasource}&${cluster:queryparam}&var-namespace=${__data.fields.namespace}&${__url_time_range}`),
		})).
		WithPanel(tablePanel("Top teams", "Monthly cost and waste by the namespace label chosen in Team label (exporter.namespace_labels must export it).", nil,
			column{"Cost $/month", unitDollars, month(fmt.Sprintf(`sum by ($team_label) (
				sum by (cluster, namespace) (%s{%s})
				* on (cluster, namespace) group_left ($team_label) max by (cluster, namespace, $team_label) (upid_namespace_labels)
			)`, alerts.NamespaceCost, selNS))},
			column{"Waste $/month", unitDollars, month(fmt.Sprintf(`sum by ($team_label) (
				sum by (cluster, namespace) (%s{%s})
				* on (cluster, namespace) group_left ($team_label) max by (cluster, namespace, $team_label) (upid_namespace_labels)
			)`, alerts.NamespaceWaste, selNS))},
		).Span(12)).
		WithPanel(topWorkloads())
	return b
}

func topWorkloads() *table.PanelBuilder {
	return tablePanel("Top workloads", "The 25 most expensive workloads; click a row for the workload's view.", []string{"job", "instance"},
		column{"Cost $/month", unitDollars, month(fmt.Sprintf(`topk(25, sum by (%s) (%s))`, workloadKeys, once("upid_workload_cost_dollars_per_hour", selNS, ", resource")))},
		column{"Waste $/month", unitDollars, month(fmt.Sprintf(`sum by (%s) (%s)`, workloadKeys, once("upid_workload_waste_dollars_per_hour", selNS, ", resource")))},
		column{"Idle $/month", unitDollars, month(once("upid_workload_idle_cost_dollars_per_hour", selNS, ""))},
	).DataLinks([]cog.Builder[dashboard.DashboardLink]{workloadLink()})
}

func dashboardLink(title, uid string) *dashboard.DashboardLinkBuilder {
	return dashboard.NewDashboardLinkBuilder(title).
		Type(dashboard.DashboardLinkTypeLink).
		Url("/d/" + uid + "?${__url_time_range}&${datasource:queryparam}&${cluster:queryparam}&${namespace:queryparam}")
}
