// Package dashboards builds UPID's Grafana dashboards with the Grafana
// Foundation SDK. `make generate` writes them as JSON into this directory
// (committed, for import or the Grafana sidecar) and as ConfigMaps under
// deploy/generated; a test fails when a committed file is stale.
//
// Every query reads the exporter's metrics (docs/metrics.md), the standard
// cAdvisor and kube-state-metrics series, or the recording rules of package
// alerts, which the alerts share, so a dashboard and an alert never disagree
// on what, say, "idle spend" means.
package dashboards

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/upid-dev/upid/alerts"
)

// Dashboard is one generated dashboard.
type Dashboard struct {
	UID   string
	Title string
	// File is the JSON file name in dashboards/.
	File string
	// About is one sentence for docs/dashboards.md.
	About string
	build func() *dashboard.DashboardBuilder
}

// Units used by the panels (Grafana unit ids). CPU has no built-in unit, so
// it is a custom suffix.
const (
	unitDollars  = "currencyUSD"
	unitBytes    = "bytes"
	unitCores    = "suffix: cores"
	unitPercent  = "percentunit"
	unitSeconds  = "s"
	unitReqps    = "reqps"
	unitNone     = "short"
	unitDateTime = "dateTimeFromNow"
	// Grafana's date units take milliseconds since the epoch.
	unitDateTimeISO = "dateTimeAsIso"
)

// Tag is on every UPID dashboard; the dashboards link to each other by it.
const Tag = "upid"

// month turns a dollars-per-hour expression into dollars per month.
func month(expr string) string { return fmt.Sprintf("%d * %s", alerts.HoursPerMonth, expr) }

// All returns the dashboards in menu order.
func All() []Dashboard {
	return []Dashboard{
		{UID: "upid-cost", Title: "UPID / Cost overview", File: "upid-cost.json",
			About: "What the cluster costs and wastes per month, idle spend, the top namespaces and teams, and the 30-day forecast with its band.", build: costOverview},
		{UID: "upid-idle", Title: "UPID / Idle workloads", File: "upid-idle.json",
			About: "Idle workloads with their score, confidence, idle since and dollars; real traffic against health-check traffic; sleeping workloads and what they save.", build: idleWorkloads},
		{UID: "upid-rightsizing", Title: "UPID / Rightsizing", File: "upid-rightsizing.json",
			About: "Requested vs recommended vs used CPU and memory per workload and container, the savings if applied, confidence, OOM and throttling risk, and the webhook's decisions.", build: rightsizing},
		{UID: "upid-forecasts", Title: "UPID / Forecasts", File: "upid-forecasts.json",
			About: "CPU and cost forecasts with their p10–p90 bands per namespace and workload, against actual use, and usage anomalies.", build: forecasts},
		{UID: "upid-operations", Title: "UPID / Operations", File: "upid-operations.json",
			About: "UPID's own health: exporter cycles, stages and data age; webhook decisions, latency and fail-open count; scaler actions and failures; firing UPID alerts.", build: operations},
		{UID: "upid-workload", Title: "UPID / Workload", File: "upid-workload.json",
			About: "One workload: its idle verdict and traffic, cost and waste, containers' usage against requests and recommendations, and its forecast.", build: workloadView},
	}
}

// Build renders the dashboard's model with panel ids assigned.
func (d Dashboard) Build() (dashboard.Dashboard, error) {
	m, err := d.build().Build()
	if err != nil {
		return m, fmt.Errorf("%s: %w", d.Title, err)
	}
	id := uint32(1)
	for _, p := range m.Panels {
		switch {
		case p.Panel != nil:
			p.Panel.Id = cog.ToPtr(id)
		case p.RowPanel != nil:
			p.RowPanel.Id = id
		}
		id++
	}
	return m, nil
}

// JSON renders the dashboard as the committed file.
func (d Dashboard) JSON() ([]byte, error) {
	m, err := d.Build()
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// URL is the dashboard's path in Grafana.
func (d Dashboard) URL() string { return "/d/" + d.UID }

// ---- shared building blocks ----

var datasource = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// Label matchers of the variables, for upid_ series (which carry cluster when
// configured) and for cAdvisor/kube-state-metrics series (which may not).
const (
	selCluster  = `cluster=~"$cluster"`
	selNS       = `cluster=~"$cluster", namespace=~"$namespace"`
	selWorkload = `cluster=~"$cluster", namespace=~"$namespace", workload=~"$workload"`
	selKubeNS   = `namespace=~"$namespace"`
	// The scaler adds no cluster label: its series carry one only where
	// Prometheus adds it, and one without is the selected cluster's.
	selScaler = `cluster=~"$cluster|", namespace=~"$namespace", workload=~"$workload"`
)

// workloadKeys join upid_ series of one workload.
const workloadKeys = "cluster, namespace, workload, kind"

// once is a workload metric's series one per workload (and the extra
// labels, comma first): exporter replicas (the sidecar suite runs two)
// each export every series under their own instance, and a sum over them
// would count each value once per replica.
func once(metric, sel, extra string) string {
	return fmt.Sprintf("max by (%s%s) (%s{%s})", workloadKeys, extra, metric, sel)
}

func newDashboard(d Dashboard, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(d.Title).
		Uid(d.UID).
		Description(description).
		Tags([]string{Tag}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("5m").
		Time("now-7d", "now").
		Timezone(common.TimeZoneBrowser).
		Link(dashboard.NewDashboardLinkBuilder("UPID dashboards").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{Tag}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true)).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").
			Label("Data source").
			Type("prometheus"))
}

func queryVariable(name, label, query string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
		Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
}

// allOf makes a variable multi-valued with an "All" that matches any value,
// including the empty one (no cluster label).
func allOf(v *dashboard.QueryVariableBuilder) *dashboard.QueryVariableBuilder {
	return v.Multi(true).IncludeAll(true).AllValue(".*").
		Current(dashboard.VariableOption{
			Selected: cog.ToPtr(true),
			Text:     dashboard.StringOrArrayOfString{String: cog.ToPtr("All")},
			Value:    dashboard.StringOrArrayOfString{String: cog.ToPtr("$__all")},
		})
}

// The variables every dashboard has, in this order: datasource (above),
// cluster, namespace and, where a dashboard goes down to workloads, workload.
func clusterVariable() *dashboard.QueryVariableBuilder {
	return allOf(queryVariable("cluster", "Cluster", `label_values(upid_workload_cost_dollars_per_hour, cluster)`))
}

func namespaceVariable() *dashboard.QueryVariableBuilder {
	return allOf(queryVariable("namespace", "Namespace", `label_values(upid_workload_cost_dollars_per_hour{cluster=~"$cluster"}, namespace)`))
}

func workloadVariable() *dashboard.QueryVariableBuilder {
	return allOf(queryVariable("workload", "Workload", `label_values(upid_workload_cost_dollars_per_hour{cluster=~"$cluster", namespace=~"$namespace"}, workload)`))
}

func withScope(b *dashboard.DashboardBuilder, workload bool) *dashboard.DashboardBuilder {
	b = b.WithVariable(clusterVariable()).WithVariable(namespaceVariable())
	if workload {
		b = b.WithVariable(workloadVariable())
	}
	return b
}

func target(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(datasource).Expr(dedent(expr)).LegendFormat(legend).Range()
}

func instant(expr string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Datasource(datasource).Expr(dedent(expr)).Instant().Format(prometheus.PromQueryFormatTable)
}

// dedent keeps multi-line queries readable in Go and in Grafana's editor.
func dedent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			lines[i] = l[indent:]
		}
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

func row(title string) *dashboard.RowBuilder { return dashboard.NewRowBuilder(title) }

// statPanel shows one number now.
func statPanel(title, description, unit, expr string) *stat.PanelBuilder {
	return namedStat(title, description, unit, expr, "")
}

// namedStat is a stat whose series name (its legend) is what matters.
func namedStat(title, description, unit, expr, legend string) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).Description(description).
		Datasource(datasource).
		Unit(unit).
		Height(4).Span(6).
		ColorMode(common.BigValueColorModeNone).
		GraphMode(common.BigValueGraphModeArea).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false)).
		WithTarget(target(expr, legend).RefId("A"))
}

// timeSeries plots targets over time.
func timeSeries(title, description, unit string, targets ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().
		Title(title).Description(description).
		Datasource(datasource).
		Unit(unit).
		Height(8).Span(12).
		FillOpacity(10).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true).
			Calcs([]string{"lastNotNull", "max"}))
	for i, t := range targets {
		p = p.WithTarget(t.RefId(string(rune('A' + i))))
	}
	return p
}

// band draws the p10–p90 band of a forecast as a filled area between two
// series named by their legends, with the median as a line.
func band(p *timeseries.PanelBuilder, low, high string) *timeseries.PanelBuilder {
	return p.OverrideByName(low, []dashboard.DynamicConfigValue{
		{Id: "custom.fillBelowTo", Value: high},
		{Id: "custom.lineWidth", Value: 0},
		{Id: "custom.fillOpacity", Value: 20},
		{Id: "custom.hideFrom", Value: map[string]bool{"legend": false, "tooltip": false, "viz": false}},
	}).OverrideByName(high, []dashboard.DynamicConfigValue{
		{Id: "custom.lineWidth", Value: 0},
	})
}

// column is one column of a table: an instant query whose value is shown
// under name, keyed by the labels the queries share.
type column struct {
	name, unit, expr string
}

// workloadLink opens the workload's own dashboard from a table row.
func workloadLink() *dashboard.DashboardLinkBuilder {
	return dashboard.NewDashboardLinkBuilder("Open the workload").
		Type(dashboard.DashboardLinkTypeLink).
		Url(`/d/upid-workload?var-datasource=${datasource}&${cluster:queryparam}&var-namespace=${__data.fields.namespace}&var-workload=${__data.fields.workload}&${__url_time_range}`)
}

// tablePanel joins instant queries into one row per label set: Grafana's
// "merge" transformation, then names and units per column.
func tablePanel(title, description string, hide []string, cols ...column) *table.PanelBuilder {
	p := table.NewPanelBuilder().
		Title(title).Description(description).
		Datasource(datasource).
		Height(10).Span(24).
		Unit(unitNone).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"}))
	rename := map[string]string{}
	exclude := map[string]bool{"Time": true}
	for _, h := range hide {
		exclude[h] = true
	}
	for i, c := range cols {
		ref := string(rune('A' + i))
		p = p.WithTarget(instant(c.expr).RefId(ref))
		field := "Value #" + ref
		if len(cols) == 1 {
			field = "Value"
		}
		rename[field] = c.name
		p = p.OverrideByName(c.name, []dashboard.DynamicConfigValue{{Id: "unit", Value: c.unit}})
	}
	p = p.WithTransformation(dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}).
		WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
			"excludeByName": exclude,
			"renameByName":  rename,
		}})
	if len(cols) > 0 {
		p = p.SortBy([]cog.Builder[common.TableSortByFieldState]{
			common.NewTableSortByFieldStateBuilder().DisplayName(cols[0].name).Desc(true),
		})
	}
	return p
}
