package main

import (
	"context"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/cli"
)

const reportHelp = `Write an executive summary for a manager: savings available now (sleeping
idle workloads and rightsizing), the 30-day spend forecast, the namespaces and
teams (exporter.namespace_labels) with the most to save, and the savings the
scaler and webhook have realised so far, read from Prometheus
(upid_scaler_sleeping_workload_saved_dollars_per_hour,
upid_webhook_decisions_total). What is not found is reported as not
measured, never estimated.

Examples:
  upid report --demo
  upid report -o html > upid-report.html
  upid report -o json | jq .savings
  upid report --exporter.namespace-labels team -o markdown
`

// report is the executive summary; -o json prints it as is.
type report struct {
	At       time.Time     `json:"at"`
	Window   string        `json:"window"`
	Cluster  string        `json:"cluster,omitempty"`
	Cost     reportCost    `json:"cost"`
	Savings  reportSavings `json:"savings"`
	Forecast forecastTotal `json:"forecast"`
	// Namespaces are the top namespaces by savings available.
	Namespaces []group      `json:"namespaces"`
	Teams      []labelGroup `json:"teams"`
	Realised   realised     `json:"realised"`
}

type reportCost struct {
	Monthly      float64 `json:"monthly_dollars"`
	MonthlyWaste float64 `json:"monthly_waste_dollars"`
	Workloads    int     `json:"workloads"`
}

type reportSavings struct {
	MonthlyTotal         float64 `json:"monthly_total_dollars"`
	MonthlyIdle          float64 `json:"monthly_idle_dollars"`
	IdleWorkloads        int     `json:"idle_workloads"`
	MonthlyRightsizing   float64 `json:"monthly_rightsizing_dollars"`
	RightsizingWorkloads int     `json:"rightsizing_workloads"`
	// MonthlyHPAPairs: workloads an HPA scales, requests and HPA targets
	// changed together.
	MonthlyHPAPairs  float64 `json:"monthly_hpa_pairs_dollars"`
	HPAPairWorkloads int     `json:"hpa_pair_workloads"`
}

type group struct {
	Name           string  `json:"name"`
	Workloads      int     `json:"workloads"`
	MonthlyCost    float64 `json:"monthly_cost_dollars"`
	MonthlySavings float64 `json:"monthly_savings_dollars"`
}

// labelGroup is spend and savings by the values of one namespace label.
type labelGroup struct {
	Label  string  `json:"label"`
	Groups []group `json:"groups"`
}

// realised is what UPID's actuators saved, when their metrics exist.
type realised struct {
	// ScalerMonthly is the saving rate of the workloads asleep now, per month.
	ScalerMonthly *float64 `json:"scaler_monthly_dollars"`
	// ScalerLast30d is what sleeping saved over the last 30 days: the
	// hourly saving rate summed hour by hour.
	ScalerLast30d  *float64 `json:"scaler_last_30d_dollars"`
	ScalerSleeping *float64 `json:"scaler_sleeping_workloads"`
	ScalerNote     string   `json:"scaler_note,omitempty"`
	// WebhookMutated counts pods the webhook rightsized over the last 30 days.
	WebhookMutated     *float64 `json:"webhook_mutated_pods_30d"`
	WebhookRecommended *float64 `json:"webhook_recommended_pods_30d"`
	WebhookNote        string   `json:"webhook_note,omitempty"`
}

const notMeasured = "not measured"

func newReport(s *snapshot, sc *scope, labels []string, cluster string, top int) *report {
	a := newAnalysis(s, sc, 0)
	r := &report{At: a.At, Window: a.Window, Cluster: cluster, Forecast: a.Forecast, Namespaces: []group{}, Teams: []labelGroup{}}
	r.Forecast.Outgrowing = limit(r.Forecast.Outgrowing, top)
	r.Forecast.OutgrowingMemory = limit(r.Forecast.OutgrowingMemory, top)
	r.Cost = reportCost{Monthly: a.Summary.MonthlyCost, MonthlyWaste: a.Summary.MonthlyWaste, Workloads: a.Summary.Workloads}
	r.Savings = reportSavings{
		MonthlyIdle: a.Summary.MonthlyIdle, IdleWorkloads: a.Summary.IdleWorkloads,
		MonthlyRightsizing: a.Summary.MonthlyRightsizing, RightsizingWorkloads: a.Summary.WorkloadsWithSavings,
		MonthlyHPAPairs: a.Summary.MonthlyHPAPairs, HPAPairWorkloads: a.Summary.WorkloadsHPAPairs,
	}
	r.Savings.MonthlyTotal = r.Savings.MonthlyIdle + r.Savings.MonthlyRightsizing + r.Savings.MonthlyHPAPairs

	nsLabels := map[string]map[string]string{}
	for _, ns := range s.results.Namespaces {
		nsLabels[ns.Name] = ns.Labels
	}
	byNS := map[string]*group{}
	byLabel := make([]map[string]*group, len(labels))
	for i := range byLabel {
		byLabel[i] = map[string]*group{}
	}
	add := func(m map[string]*group, key string, cost, savings float64) {
		g := m[key]
		if g == nil {
			g = &group{Name: key}
			m[key] = g
		}
		g.Workloads++
		g.MonthlyCost += cost
		g.MonthlySavings += savings
	}
	for _, w := range a.all {
		rs, _ := rightsizingSavings(w)
		cost, savings := monthly(w.Cost.Total), monthly(w.IdleCostPerHr+rs+hpaPairSavings(w))
		add(byNS, w.Namespace, cost, savings)
		for i, l := range labels {
			v := nsLabels[w.Namespace][l]
			if v == "" {
				v = "(no " + l + ")"
			}
			add(byLabel[i], v, cost, savings)
		}
	}
	r.Namespaces = limit(sortedGroups(byNS), top)
	for i, l := range labels {
		r.Teams = append(r.Teams, labelGroup{Label: l, Groups: limit(sortedGroups(byLabel[i]), top)})
	}
	return r
}

func sortedGroups(m map[string]*group) []group {
	out := make([]group, 0, len(m))
	for _, g := range m {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].MonthlySavings != out[j].MonthlySavings {
			return out[i].MonthlySavings > out[j].MonthlySavings
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// measureRealised asks Prometheus for the actuators' own metrics. An empty
// answer means the component is not running (or not scraped): not measured.
func measureRealised(ctx context.Context, q history.Querier, at time.Time, sc *scope) realised {
	var r realised
	sel := ""
	if ns := sc.only(); ns != "" {
		sel = fmt.Sprintf("{namespace=%q}", ns)
	}
	scalar := func(query string) (*float64, string) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		v, _, _, err := q.Query(ctx, query, at)
		if err != nil {
			return nil, notMeasured + " (query failed: " + oneLine(err) + ")"
		}
		vec, ok := v.(model.Vector)
		if !ok || len(vec) == 0 {
			return nil, notMeasured
		}
		x := float64(vec[0].Value)
		return &x, ""
	}
	rate, note := scalar("sum(upid_scaler_sleeping_workload_saved_dollars_per_hour" + sel + ")")
	if rate != nil {
		m := monthly(*rate)
		r.ScalerMonthly = &m
		r.ScalerSleeping, _ = scalar("count(upid_scaler_sleeping_workload_saved_dollars_per_hour" + sel + ")")
		r.ScalerLast30d, _ = scalar("sum_over_time(sum(upid_scaler_sleeping_workload_saved_dollars_per_hour" + sel + ")[30d:1h])")
	}
	r.ScalerNote = note
	// The webhook's decisions carry no namespace: they are cluster-wide.
	r.WebhookMutated, r.WebhookNote = scalar(`sum(increase(upid_webhook_decisions_total{outcome="mutated"}[30d]))`)
	if r.WebhookMutated != nil {
		r.WebhookRecommended, _ = scalar(`sum(increase(upid_webhook_decisions_total{outcome="recommended"}[30d]))`)
	}
	return r
}

func runReport(env *environment, sc *scope, format string, top int) int {
	snap, err := analyse(env, *sc.demo, true)
	if err != nil {
		return finish(env, "report", err)
	}
	labels := env.cfg.Exporter.NamespaceLabels
	if *sc.demo && len(labels) == 0 {
		labels = []string{"team"}
	}
	r := newReport(snap, sc, labels, env.cfg.Exporter.Cluster, top)
	r.Realised = measureRealised(context.Background(), snap.querier, snap.results.At, sc)
	return finish(env, "report", r.write(env.stdout, format))
}

func (r *report) write(w io.Writer, format string) error {
	switch format {
	case cli.JSON:
		return cli.Encode(w, cli.JSON, r)
	case "html":
		return reportHTML.Execute(w, r)
	default:
		return reportMarkdown.Execute(w, r)
	}
}

func (r *report) ScalerLine() string {
	if r.Realised.ScalerMonthly == nil {
		return r.Realised.ScalerNote
	}
	n := 0.0
	if r.Realised.ScalerSleeping != nil {
		n = *r.Realised.ScalerSleeping
	}
	saved := ""
	if r.Realised.ScalerLast30d != nil {
		saved = cli.Dollars(*r.Realised.ScalerLast30d) + " saved in the last 30 days; "
	}
	return fmt.Sprintf("%s%s/month at the rate of the %.0f workloads asleep now", saved, cli.Dollars(*r.Realised.ScalerMonthly), n)
}

func (r *report) WebhookLine() string {
	if r.Realised.WebhookMutated == nil {
		return r.Realised.WebhookNote
	}
	rec := 0.0
	if r.Realised.WebhookRecommended != nil {
		rec = *r.Realised.WebhookRecommended
	}
	return fmt.Sprintf("%.0f pods rightsized at admission in the last 30 days (%.0f more recommended only)", *r.Realised.WebhookMutated, rec)
}

func (r *report) ForecastLines() []string { return (&analysis{Forecast: r.Forecast}).forecastLines() }

func (r *report) Title() string {
	if r.Cluster != "" {
		return "UPID cost report: " + r.Cluster
	}
	return "UPID cost report"
}

var reportFuncs = map[string]any{
	"dollars": cli.Dollars,
	"date":    func(t time.Time) string { return t.Format("2006-01-02 15:04 MST") },
	"md":      func(s string) string { return strings.ReplaceAll(s, "|", `\|`) },
}

// Markdown is text, not HTML: text/template, with md escaping table cells.
var reportMarkdown = texttemplate.Must(texttemplate.New("markdown").Funcs(reportFuncs).Parse(`# {{.Title}}

{{date .At}}, over the last {{.Window}} of usage.

## Summary

- **Savings available: {{dollars .Savings.MonthlyTotal}}/month**: {{dollars .Savings.MonthlyIdle}} by sleeping {{.Savings.IdleWorkloads}} idle workloads, {{dollars .Savings.MonthlyRightsizing}} by rightsizing {{.Savings.RightsizingWorkloads}} workloads, {{dollars .Savings.MonthlyHPAPairs}} by changing the requests and HPA targets of {{.Savings.HPAPairWorkloads}} autoscaled workloads together.
- Spend: {{dollars .Cost.Monthly}}/month requested by {{.Cost.Workloads}} workloads; {{dollars .Cost.MonthlyWaste}}/month of it beyond what they use (p95).
{{- range .ForecastLines}}
- {{.}}
{{- end}}

## Savings realised

- Scaler: {{.ScalerLine}}
- Webhook: {{.WebhookLine}}

## Top namespaces

| Namespace | Workloads | Spend $/month | Savings $/month |
| --- | --- | --- | --- |
{{- range .Namespaces}}
| {{md .Name}} | {{.Workloads}} | {{dollars .MonthlyCost}} | {{dollars .MonthlySavings}} |
{{- end}}
{{range .Teams}}
## By {{.Label}}

| {{md .Label}} | Workloads | Spend $/month | Savings $/month |
| --- | --- | --- | --- |
{{- range .Groups}}
| {{md .Name}} | {{.Workloads}} | {{dollars .MonthlyCost}} | {{dollars .MonthlySavings}} |
{{- end}}
{{end}}`))

var reportHTML = template.Must(template.New("html").Funcs(reportFuncs).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .3em .8em; text-align: left; }
td.n { text-align: right; }
.big { font-size: 1.5em; font-weight: bold; color: #2a7d2a; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p>{{date .At}}, over the last {{.Window}} of usage.</p>
<h2>Summary</h2>
<p class="big">Savings available: {{dollars .Savings.MonthlyTotal}}/month</p>
<ul>
<li>{{dollars .Savings.MonthlyIdle}} by sleeping {{.Savings.IdleWorkloads}} idle workloads</li>
<li>{{dollars .Savings.MonthlyRightsizing}} by rightsizing {{.Savings.RightsizingWorkloads}} workloads</li>
<li>{{dollars .Savings.MonthlyHPAPairs}} by changing the requests and HPA targets of {{.Savings.HPAPairWorkloads}} autoscaled workloads together</li>
<li>Spend: {{dollars .Cost.Monthly}}/month requested by {{.Cost.Workloads}} workloads; {{dollars .Cost.MonthlyWaste}}/month of it beyond what they use (p95)</li>
{{- range .ForecastLines}}
<li>{{.}}</li>
{{- end}}
</ul>
<h2>Savings realised</h2>
<ul>
<li>Scaler: {{.ScalerLine}}</li>
<li>Webhook: {{.WebhookLine}}</li>
</ul>
<h2>Top namespaces</h2>
<table>
<tr><th>Namespace</th><th>Workloads</th><th>Spend $/month</th><th>Savings $/month</th></tr>
{{- range .Namespaces}}
<tr><td>{{.Name}}</td><td class="n">{{.Workloads}}</td><td class="n">{{dollars .MonthlyCost}}</td><td class="n">{{dollars .MonthlySavings}}</td></tr>
{{- end}}
</table>
{{- range .Teams}}
<h2>By {{.Label}}</h2>
<table>
<tr><th>{{.Label}}</th><th>Workloads</th><th>Spend $/month</th><th>Savings $/month</th></tr>
{{- range .Groups}}
<tr><td>{{.Name}}</td><td class="n">{{.Workloads}}</td><td class="n">{{dollars .MonthlyCost}}</td><td class="n">{{dollars .MonthlySavings}}</td></tr>
{{- end}}
</table>
{{- end}}
</body>
</html>
`))

func registerReport(app *kingpin.Application, add func(*kingpin.CmdClause, command)) {
	cmd := app.Command("report", reportHelp)
	sc := addScope(cmd, []string{"markdown", "html", "json"}, "markdown")
	top := cmd.Flag("top", "Rows in each top list; 0 shows all.").Default("10").Int()
	add(cmd, func(env *environment) int { return runReport(env, sc, *sc.output, *top) })
}
