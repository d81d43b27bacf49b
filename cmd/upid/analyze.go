package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/internal/cli"
)

const analyzeHelp = `Summarise where a cluster's money goes: monthly cost, waste and idle spend,
the top idle workloads (with the share of their traffic that is health checks),
the top rightsizing opportunities, and the 30-day spend forecast.

It runs the exporter's analysis once, in process, against --kubeconfig and
--prometheus.url (or the built-in --demo); nothing is installed in the cluster.

Examples:
  upid analyze --demo
  upid analyze --kubeconfig ~/.kube/config --context prod --prometheus.url http://localhost:9090
  upid analyze -n shop -o wide
  upid analyze -o json | jq .summary
  upid analyze -o markdown > cost.md
`

// analysis is what `upid analyze` reports; -o json and yaml print it as is.
type analysis struct {
	At          time.Time      `json:"at"`
	Window      string         `json:"window"`
	Namespace   string         `json:"namespace,omitempty"`
	Summary     summary        `json:"summary"`
	Idle        []idleRow      `json:"idle"`
	Rightsizing []rightsizeRow `json:"rightsizing"`
	Forecast    forecastTotal  `json:"forecast"`
	all         []exporter.WorkloadResult
	byWorkload  map[string]exporter.WorkloadForecast
}

type summary struct {
	Workloads            int     `json:"workloads"`
	IdleWorkloads        int     `json:"idle_workloads"`
	MonthlyCost          float64 `json:"monthly_cost_dollars"`
	MonthlyWaste         float64 `json:"monthly_waste_dollars"`
	MonthlyIdle          float64 `json:"monthly_idle_dollars"`
	MonthlyRightsizing   float64 `json:"monthly_rightsizing_savings_dollars"`
	WorkloadsWithUsage   int     `json:"workloads_with_usage"`
	WorkloadsWithSavings int     `json:"workloads_with_savings"`
	// MonthlyHPAPairs is what the HPA pairs that save money save, requests
	// and HPA targets changed together (docs/recommendations.md).
	MonthlyHPAPairs   float64 `json:"monthly_hpa_pair_savings_dollars"`
	WorkloadsHPAPairs int     `json:"workloads_with_hpa_pair_savings"`
}

type idleRow struct {
	Namespace             string     `json:"namespace"`
	Kind                  string     `json:"kind"`
	Name                  string     `json:"workload"`
	Confidence            float64    `json:"confidence"`
	HealthShare           *float64   `json:"health_share"`
	RealRequestsPerSecond float64    `json:"real_requests_per_second"`
	MonthlyCost           float64    `json:"monthly_cost_dollars"`
	Since                 *time.Time `json:"since,omitempty"`
	Reasons               []string   `json:"reasons,omitempty"`
}

type rightsizeRow struct {
	Namespace      string  `json:"namespace"`
	Kind           string  `json:"kind"`
	Name           string  `json:"workload"`
	Containers     int     `json:"containers"`
	MonthlySavings float64 `json:"monthly_savings_dollars"`
	MonthlyCost    float64 `json:"monthly_cost_dollars"`
	CPURequested   float64 `json:"requested_cpu_cores"`
	MemoryBytes    float64 `json:"requested_memory_bytes"`
}

// forecastTotal is the 30-day forecast of the workloads that have one:
// two days of hourly history or more. Note says why there is none.
type forecastTotal struct {
	Horizon      string      `json:"horizon"`
	Workloads    int         `json:"workloads"`
	MonthlyNow   float64     `json:"monthly_cost_now_dollars"`
	MonthlyP10   float64     `json:"monthly_cost_p10_dollars"`
	MonthlyP50   float64     `json:"monthly_cost_p50_dollars"`
	MonthlyP90   float64     `json:"monthly_cost_p90_dollars"`
	CPURequested float64     `json:"requested_cpu_cores"`
	CPUP10       float64     `json:"forecast_cpu_p10_cores"`
	CPUP50       float64     `json:"forecast_cpu_p50_cores"`
	CPUP90       float64     `json:"forecast_cpu_p90_cores"`
	Outgrowing   []growthRow `json:"outgrowing_cpu_requests"`
	// Memory sums the workloads that have a memory forecast.
	MemoryWorkloads  int               `json:"memory_workloads"`
	MemoryRequested  float64           `json:"requested_memory_bytes"`
	MemoryP10        float64           `json:"forecast_memory_p10_bytes"`
	MemoryP50        float64           `json:"forecast_memory_p50_bytes"`
	MemoryP90        float64           `json:"forecast_memory_p90_bytes"`
	OutgrowingMemory []memoryGrowthRow `json:"outgrowing_memory_requests"`
	Note             string            `json:"note,omitempty"`
	horizonValue     time.Duration     `json:"-"`
}

// memoryGrowthRow is a workload whose working set is forecast (p90) above
// its memory requests: a candidate for eviction under node pressure.
type memoryGrowthRow struct {
	Namespace       string  `json:"namespace"`
	Kind            string  `json:"kind"`
	Name            string  `json:"workload"`
	MemoryRequested float64 `json:"requested_memory_bytes"`
	MemoryP50       float64 `json:"forecast_memory_p50_bytes"`
	MemoryP90       float64 `json:"forecast_memory_p90_bytes"`
}

type growthRow struct {
	Namespace    string  `json:"namespace"`
	Kind         string  `json:"kind"`
	Name         string  `json:"workload"`
	CPURequested float64 `json:"requested_cpu_cores"`
	CPUP50       float64 `json:"forecast_cpu_p50_cores"`
	CPUP90       float64 `json:"forecast_cpu_p90_cores"`
}

const forecastHorizon = 30 * 24 * time.Hour

func newAnalysis(s *snapshot, sc *scope, top int) *analysis {
	a := &analysis{
		At: s.results.At.UTC(), Window: model.Duration(s.results.Window).String(), Namespace: sc.only(),
		Idle: []idleRow{}, Rightsizing: []rightsizeRow{},
		Forecast:   forecastTotal{Horizon: "30d", Outgrowing: []growthRow{}, OutgrowingMemory: []memoryGrowthRow{}, horizonValue: forecastHorizon},
		byWorkload: map[string]exporter.WorkloadForecast{},
	}
	a.all = s.workloads(sc)
	for _, w := range a.all {
		a.Summary.Workloads++
		a.Summary.MonthlyCost += monthly(w.Cost.Total)
		if v, ok := wasteOf(w); ok {
			a.Summary.MonthlyWaste += monthly(v)
			a.Summary.WorkloadsWithUsage++
		}
		if w.Idle.State == "idle" {
			a.Summary.IdleWorkloads++
			a.Summary.MonthlyIdle += monthly(w.IdleCostPerHr)
			row := idleRow{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name, Confidence: w.Idle.Confidence,
				RealRequestsPerSecond: w.Idle.RealRequestsPerSecond, MonthlyCost: monthly(w.IdleCostPerHr), Since: w.Idle.Since, Reasons: w.Idle.Reasons}
			if w.Idle.HasRequestMetrics {
				hs := w.Idle.HealthShare
				row.HealthShare = &hs
			}
			a.Idle = append(a.Idle, row)
		}
		if pairs := hpaPairSavings(w); pairs > 0 {
			a.Summary.MonthlyHPAPairs += monthly(pairs)
			a.Summary.WorkloadsHPAPairs++
		}
		if perHour, n := rightsizingSavings(w); perHour > 0 {
			a.Summary.MonthlyRightsizing += monthly(perHour)
			a.Summary.WorkloadsWithSavings++
			a.Rightsizing = append(a.Rightsizing, rightsizeRow{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name, Containers: n,
				MonthlySavings: monthly(perHour), MonthlyCost: monthly(w.Cost.Total), CPURequested: w.RequestedCPUCores, MemoryBytes: w.RequestedMemoryBytes})
		}
	}
	sort.SliceStable(a.Idle, func(i, j int) bool { return a.Idle[i].MonthlyCost > a.Idle[j].MonthlyCost })
	sort.SliceStable(a.Rightsizing, func(i, j int) bool { return a.Rightsizing[i].MonthlySavings > a.Rightsizing[j].MonthlySavings })
	a.Idle = limit(a.Idle, top)
	a.Rightsizing = limit(a.Rightsizing, top)

	switch {
	case s.forecastErr != nil:
		a.Forecast.Note = "no forecast: " + oneLine(s.forecastErr)
	default:
		inScope := map[string]exporter.WorkloadResult{}
		for _, w := range a.all {
			inScope[workloadID(w)] = w
		}
		for _, f := range s.forecasts {
			id := f.Namespace + "/" + f.Kind + "/" + f.Workload
			w, ok := inScope[id]
			if !ok {
				continue
			}
			a.byWorkload[id] = f
			sum, cost, ok := f.Horizon(forecastHorizon)
			if !ok {
				continue
			}
			a.Forecast.Workloads++
			now := monthly(w.Cost.Total)
			a.Forecast.MonthlyNow += now
			if cost != nil {
				a.Forecast.MonthlyP10 += monthly(cost[0])
				a.Forecast.MonthlyP50 += monthly(cost[1])
				a.Forecast.MonthlyP90 += monthly(cost[2])
			} else {
				// Without CPU requests spend cannot grow with CPU: it stays.
				a.Forecast.MonthlyP10 += now
				a.Forecast.MonthlyP50 += now
				a.Forecast.MonthlyP90 += now
			}
			a.Forecast.CPURequested += w.RequestedCPUCores
			a.Forecast.CPUP10 += sum.P10
			a.Forecast.CPUP50 += sum.P50
			a.Forecast.CPUP90 += sum.P90
			if w.RequestedCPUCores > 0 && sum.P90 > w.RequestedCPUCores {
				a.Forecast.Outgrowing = append(a.Forecast.Outgrowing, growthRow{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name,
					CPURequested: w.RequestedCPUCores, CPUP50: sum.P50, CPUP90: sum.P90})
			}
			if mem, ok := f.MemoryHorizon(forecastHorizon); ok {
				a.Forecast.MemoryWorkloads++
				a.Forecast.MemoryRequested += w.RequestedMemoryBytes
				a.Forecast.MemoryP10 += mem.P10
				a.Forecast.MemoryP50 += mem.P50
				a.Forecast.MemoryP90 += mem.P90
				if w.RequestedMemoryBytes > 0 && mem.P90 > w.RequestedMemoryBytes {
					a.Forecast.OutgrowingMemory = append(a.Forecast.OutgrowingMemory, memoryGrowthRow{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name,
						MemoryRequested: w.RequestedMemoryBytes, MemoryP50: mem.P50, MemoryP90: mem.P90})
				}
			}
		}
		a.Forecast.Outgrowing = mostOutgrown(a.Forecast.Outgrowing, func(x growthRow) float64 { return x.CPUP90 / x.CPURequested }, top)
		a.Forecast.OutgrowingMemory = mostOutgrown(a.Forecast.OutgrowingMemory, func(x memoryGrowthRow) float64 { return x.MemoryP90 / x.MemoryRequested }, top)
		if a.Forecast.Workloads == 0 {
			a.Forecast.Note = "no forecast: no workload has two days of hourly CPU history"
		}
	}
	return a
}

// mostOutgrown orders rows by forecast over request, most outgrown first,
// and keeps the top n.
func mostOutgrown[T any](rows []T, ratio func(T) float64, n int) []T {
	sort.SliceStable(rows, func(i, j int) bool { return ratio(rows[i]) > ratio(rows[j]) })
	return limit(rows, n)
}

func limit[T any](rows []T, n int) []T {
	if n > 0 && len(rows) > n {
		return rows[:n]
	}
	return rows
}

func runAnalyze(env *environment, sc *scope, top int) int {
	snap, err := analyse(env, *sc.demo, true)
	if err != nil {
		return finish(env, "analyze", err)
	}
	a := newAnalysis(snap, sc, top)
	return finish(env, "analyze", a.write(env.stdout, *sc.output, cli.StyleFor(env.stdout)))
}

func (a *analysis) write(w io.Writer, format string, style cli.Style) error {
	switch format {
	case cli.JSON, cli.YAML:
		return cli.Encode(w, format, a)
	case cli.CSV:
		return a.workloadRows().Write(w, cli.CSV, style)
	case cli.Markdown:
		return a.writeMarkdown(w)
	default:
		return a.writeTable(w, format == cli.Wide, style)
	}
}

func (a *analysis) scopeName() string {
	if a.Namespace != "" {
		return "namespace " + a.Namespace
	}
	return "all namespaces"
}

func (a *analysis) summaryLines(style cli.Style) [][2]string {
	s := a.Summary
	share := ""
	if s.MonthlyCost > 0 {
		share = fmt.Sprintf(" (%s of cost)", cli.Percent(s.MonthlyWaste/s.MonthlyCost))
	}
	return [][2]string{
		{"Workloads", fmt.Sprintf("%d (%d idle; %d with usage history)", s.Workloads, s.IdleWorkloads, s.WorkloadsWithUsage)},
		{"Monthly cost", cli.Dollars(s.MonthlyCost) + " requested"},
		{"Waste", style.Red(cli.Dollars(s.MonthlyWaste)) + "/month requested beyond the p95 of use" + share},
		{"Idle spend", style.Red(cli.Dollars(s.MonthlyIdle)) + fmt.Sprintf("/month in %d idle workloads", s.IdleWorkloads)},
		{"Rightsizing", style.Green(cli.Dollars(s.MonthlyRightsizing)) + fmt.Sprintf("/month from %d workloads", s.WorkloadsWithSavings)},
		{"HPA pairs", style.Green(cli.Dollars(s.MonthlyHPAPairs)) + fmt.Sprintf("/month from %d workloads, requests and HPA targets changed together (upid recommend)", s.WorkloadsHPAPairs)},
	}
}

func (a *analysis) writeTable(w io.Writer, wide bool, style cli.Style) error {
	writeTitle(w, style, fmt.Sprintf("Cluster summary (%s, window %s ending %s)", a.scopeName(), a.Window, a.At.Format(time.RFC3339)))
	kv := &cli.Rows{}
	for _, l := range a.summaryLines(style) {
		kv.Add("  "+l[0], l[1])
	}
	if err := writeKV(w, kv); err != nil {
		return err
	}
	fmt.Fprintln(w)
	writeTitle(w, style, "Top idle workloads")
	if len(a.Idle) == 0 {
		fmt.Fprintln(w, "  none")
	} else if err := a.idleRows(wide).Write(w, cli.Table, style); err != nil {
		return err
	}
	fmt.Fprintln(w)
	writeTitle(w, style, "Top rightsizing opportunities (`upid recommend` for details)")
	if len(a.Rightsizing) == 0 {
		fmt.Fprintln(w, "  none")
	} else if err := a.rightsizeRows(wide).Write(w, cli.Table, style); err != nil {
		return err
	}
	fmt.Fprintln(w)
	writeTitle(w, style, "30-day forecast")
	for _, l := range a.forecastLines() {
		fmt.Fprintln(w, "  "+l)
	}
	for _, rows := range a.growthTables() {
		fmt.Fprintln(w)
		if err := rows.Write(w, cli.Table, style); err != nil {
			return err
		}
	}
	return nil
}

func writeKV(w io.Writer, kv *cli.Rows) error {
	// A header-less two-column table.
	for i := range kv.Rows {
		kv.Rows[i][0] += ":"
	}
	width := 0
	for _, r := range kv.Rows {
		width = max(width, len(r[0]))
	}
	for _, r := range kv.Rows {
		if _, err := fmt.Fprintf(w, "%-*s %s\n", width, r[0], r[1]); err != nil {
			return err
		}
	}
	return nil
}

func (a *analysis) forecastLines() []string {
	f := a.Forecast
	if f.Note != "" {
		return []string{f.Note}
	}
	return []string{
		fmt.Sprintf("%d workloads with two days of history or more: %s/month now.", f.Workloads, cli.Dollars(f.MonthlyNow)),
		fmt.Sprintf("Next 30 days: %s/month expected (p50), %s to %s (p10 to p90).", cli.Dollars(f.MonthlyP50), cli.Dollars(f.MonthlyP10), cli.Dollars(f.MonthlyP90)),
		fmt.Sprintf("CPU use forecast: %.2f cores (p50), %.2f to %.2f (p10 to p90), of %.2f cores requested.", f.CPUP50, f.CPUP10, f.CPUP90, f.CPURequested),
		fmt.Sprintf("%d workloads are forecast to use more CPU than they request (p90).", len(f.Outgrowing)),
		fmt.Sprintf("Memory use forecast: %s (p50), %s to %s (p10 to p90), of %s requested.", cli.Memory(f.MemoryP50), cli.Memory(f.MemoryP10), cli.Memory(f.MemoryP90), cli.Memory(f.MemoryRequested)),
		fmt.Sprintf("%d workloads are forecast to use more memory than they request (p90).", len(f.OutgrowingMemory)),
	}
}

func healthShare(p *float64) string {
	if p == nil {
		return "no request metrics"
	}
	return cli.Percent(*p)
}

func (a *analysis) idleRows(wide bool) *cli.Rows {
	r := &cli.Rows{Header: []string{"NAMESPACE", "KIND", "WORKLOAD", "CONFIDENCE", "HEALTH-CHECK SHARE", "REAL REQ/S", "$/MONTH"}}
	if wide {
		r.Header = append(r.Header, "IDLE SINCE", "REASONS")
	}
	for _, x := range a.Idle {
		row := []string{x.Namespace, x.Kind, x.Name, fmt.Sprintf("%.2f", x.Confidence), healthShare(x.HealthShare), fmt.Sprintf("%.3f", x.RealRequestsPerSecond), cli.Dollars(x.MonthlyCost)}
		if wide {
			since := "-"
			if x.Since != nil {
				since = x.Since.UTC().Format(time.RFC3339)
			}
			row = append(row, since, strings.Join(x.Reasons, ","))
		}
		r.Add(row...)
	}
	return r
}

func (a *analysis) rightsizeRows(wide bool) *cli.Rows {
	r := &cli.Rows{Header: []string{"NAMESPACE", "KIND", "WORKLOAD", "CONTAINERS", "SAVINGS $/MONTH", "COST $/MONTH"}}
	if wide {
		r.Header = append(r.Header, "CPU REQUESTED", "MEMORY REQUESTED")
	}
	for _, x := range a.Rightsizing {
		row := []string{x.Namespace, x.Kind, x.Name, strconv.Itoa(x.Containers), cli.Dollars(x.MonthlySavings), cli.Dollars(x.MonthlyCost)}
		if wide {
			row = append(row, fmt.Sprintf("%.3f", x.CPURequested), cli.Memory(x.MemoryBytes))
		}
		r.Add(row...)
	}
	return r
}

// growthTables are the workloads forecast to outgrow their CPU, then
// memory, requests; empty tables are left out.
func (a *analysis) growthTables() []*cli.Rows {
	var out []*cli.Rows
	if len(a.Forecast.Outgrowing) > 0 {
		r := &cli.Rows{Header: []string{"NAMESPACE", "KIND", "WORKLOAD", "CPU REQUESTED", "FORECAST CPU P50", "FORECAST CPU P90"}}
		for _, x := range a.Forecast.Outgrowing {
			r.Add(x.Namespace, x.Kind, x.Name, fmt.Sprintf("%.3f", x.CPURequested), fmt.Sprintf("%.3f", x.CPUP50), fmt.Sprintf("%.3f", x.CPUP90))
		}
		out = append(out, r)
	}
	if len(a.Forecast.OutgrowingMemory) > 0 {
		r := &cli.Rows{Header: []string{"NAMESPACE", "KIND", "WORKLOAD", "MEMORY REQUESTED", "FORECAST MEMORY P50", "FORECAST MEMORY P90"}}
		for _, x := range a.Forecast.OutgrowingMemory {
			r.Add(x.Namespace, x.Kind, x.Name, cli.Memory(x.MemoryRequested), cli.Memory(x.MemoryP50), cli.Memory(x.MemoryP90))
		}
		out = append(out, r)
	}
	return out
}

// workloadRows is every workload in scope, one row each: the CSV for a
// spreadsheet.
func (a *analysis) workloadRows() *cli.Rows {
	r := &cli.Rows{Header: []string{"namespace", "kind", "workload", "idle_state", "idle_confidence", "health_share", "monthly_cost_dollars", "monthly_waste_dollars", "monthly_idle_dollars", "monthly_rightsizing_savings_dollars", "forecast_30d_p50_monthly_dollars"}}
	num := func(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }
	for _, w := range a.all {
		share, waste, fc := "", "", ""
		if w.Idle.HasRequestMetrics {
			share = strconv.FormatFloat(w.Idle.HealthShare, 'f', 3, 64)
		}
		if v, ok := wasteOf(w); ok {
			waste = num(monthly(v))
		}
		if f, ok := a.byWorkload[workloadID(w)]; ok {
			if _, cost, ok := f.Horizon(forecastHorizon); ok && cost != nil {
				fc = num(monthly(cost[1]))
			}
		}
		rs, _ := rightsizingSavings(w)
		r.Add(w.Namespace, w.Kind, w.Name, w.Idle.State, strconv.FormatFloat(w.Idle.Confidence, 'f', 2, 64), share,
			num(monthly(w.Cost.Total)), waste, num(monthly(w.IdleCostPerHr)), num(monthly(rs)), fc)
	}
	return r
}

func (a *analysis) writeMarkdown(w io.Writer) error {
	plain := cli.Style{}
	fmt.Fprintf(w, "# UPID analysis\n\n%s, window %s ending %s.\n\n", strings.ToUpper(a.scopeName()[:1])+a.scopeName()[1:], a.Window, a.At.Format(time.RFC3339))
	kv := &cli.Rows{Header: []string{"Measure", "Value"}}
	for _, l := range a.summaryLines(plain) {
		kv.Add(l[0], l[1])
	}
	if err := kv.Write(w, cli.Markdown, plain); err != nil {
		return err
	}
	fmt.Fprint(w, "\n## Top idle workloads\n\n")
	if len(a.Idle) == 0 {
		fmt.Fprintln(w, "None.")
	} else if err := a.idleRows(false).Write(w, cli.Markdown, plain); err != nil {
		return err
	}
	fmt.Fprint(w, "\n## Top rightsizing opportunities\n\n")
	if len(a.Rightsizing) == 0 {
		fmt.Fprintln(w, "None.")
	} else if err := a.rightsizeRows(false).Write(w, cli.Markdown, plain); err != nil {
		return err
	}
	fmt.Fprint(w, "\n## 30-day forecast\n\n")
	for _, l := range a.forecastLines() {
		fmt.Fprintln(w, "- "+l)
	}
	for _, rows := range a.growthTables() {
		fmt.Fprintln(w)
		if err := rows.Write(w, cli.Markdown, plain); err != nil {
			return err
		}
	}
	return nil
}

func registerAnalyze(app *kingpin.Application, add func(*kingpin.CmdClause, command)) {
	cmd := app.Command("analyze", analyzeHelp)
	sc := addScope(cmd, cli.Formats, cli.Table)
	top := cmd.Flag("top", "Rows in each top list; 0 shows all.").Default("10").Int()
	add(cmd, func(env *environment) int { return runAnalyze(env, sc, *top) })
}
