package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"

	"github.com/alecthomas/kingpin/v2"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/pricing"
	"github.com/upid-dev/upid/exporter/recommend"
	"github.com/upid-dev/upid/internal/cli"
	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/manifest"
)

const checkHelp = `Compare the requests of Kubernetes manifests with UPID's recommendations for
the same workloads (matched by namespace, kind and name; a manifest without a
namespace is in -n's namespace, else "default"), print the differences and what
they cost, and fail when the waste is over a threshold. For CI, before merge.

-f takes files, directories (their *.yaml, *.yml and *.json files) or - for
stdin, e.g. helm template or kustomize build output. Deployments, StatefulSets,
DaemonSets, ReplicaSets, Jobs, CronJobs, Pods and Argo Rollouts are checked; other kinds are
skipped with a note. Waste is a request above the recommendation, priced at
what the workload pays now, times its replicas (spec.replicas, else the
cluster's count); a request below the recommendation is shown as a risk and not
netted against waste.

Exit codes:
  0  the waste is within the thresholds (or none is set)
  1  the check could not run (cluster or Prometheus unreachable)
  2  bad input: malformed YAML (file:line: message), a bad flag
  3  the waste is over --max-waste or --max-waste-percent

Examples:
  upid check -f deploy/ --max-waste 100
  helm template shop ./chart | upid check -f - --max-waste-percent 20
  kustomize build overlays/prod | upid check -f - -o markdown >> $GITHUB_STEP_SUMMARY
  upid check --demo -f cmd/upid/testdata/check-shop.yaml   # in a UPID checkout
`

// checkRow is one container of one manifest against its recommendation,
// or (Container "(pod)") its pod-level requests against the pod's.
type checkRow struct {
	File            string   `json:"file"`
	Line            int      `json:"line"`
	Namespace       string   `json:"namespace"`
	Kind            string   `json:"kind"`
	Name            string   `json:"workload"`
	Container       string   `json:"container"`
	Replicas        float64  `json:"replicas"`
	CPURequest      *float64 `json:"cpu_request_cores"`
	CPURecommended  *float64 `json:"cpu_recommended_cores"`
	MemRequest      *float64 `json:"memory_request_bytes"`
	MemRecommended  *float64 `json:"memory_recommended_bytes"`
	MonthlyCost     float64  `json:"monthly_cost_dollars"`
	MonthlyWaste    float64  `json:"monthly_waste_dollars"`
	UnderProvisions bool     `json:"under_provisioned"`
	Note            string   `json:"note,omitempty"`
}

type checkResult struct {
	Rows            []checkRow         `json:"containers"`
	Skipped         []manifest.Skipped `json:"skipped"`
	MonthlyWaste    float64            `json:"monthly_waste_dollars"`
	MonthlyCost     float64            `json:"monthly_cost_dollars"`
	WastePercent    float64            `json:"waste_percent"`
	MaxWaste        *float64           `json:"max_waste_dollars,omitempty"`
	MaxWastePercent *float64           `json:"max_waste_percent,omitempty"`
	OverThreshold   bool               `json:"over_threshold"`
}

// compare matches each manifest container with its recommendation.
func compare(in manifest.Input, live []exporter.WorkloadResult, defaultNS string) *checkResult {
	byID := map[string]exporter.WorkloadResult{}
	for _, w := range live {
		byID[workloadID(w)] = w
	}
	res := &checkResult{Rows: []checkRow{}, Skipped: in.Skipped}
	if res.Skipped == nil {
		res.Skipped = []manifest.Skipped{}
	}
	for _, m := range in.Workloads {
		ns := m.Namespace
		if ns == "" {
			ns = defaultNS
		}
		w, found := byID[ns+"/"+m.Kind+"/"+m.Name]
		replicas := 1.0
		switch {
		case m.Replicas != nil:
			replicas = float64(*m.Replicas)
		case found && m.Kind != inventory.KindPod:
			replicas = math.Max(w.Replicas, 1)
		}
		cpuPrice, memPrice := pricing.DefaultCPUCoreHour, pricing.DefaultMemoryGiBHour/(1<<30)
		if found && w.RequestedCPUCores > 0 && w.Cost.CPU > 0 {
			cpuPrice = w.Cost.CPU / w.RequestedCPUCores
		}
		if found && w.RequestedMemoryBytes > 0 && w.Cost.Memory > 0 {
			memPrice = w.Cost.Memory / w.RequestedMemoryBytes
		}
		recs := map[string]*exporter.Recommendation{}
		for _, c := range w.Containers {
			recs[c.Name] = c.Recommendation
		}
		// A resource the pod sets at pod level is the pod's: the scheduler
		// reserves the pod's request, so the containers' requests of it
		// neither cost nor waste, and the pod gets a row of its own.
		podCPU := m.Pod != nil && (m.Pod.CPURequest != nil || m.Pod.CPULimit != nil)
		podMem := m.Pod != nil && (m.Pod.MemoryRequest != nil || m.Pod.MemoryLimit != nil)
		for _, c := range m.Containers {
			row := checkRow{File: m.File, Line: c.Line, Namespace: ns, Kind: m.Kind, Name: m.Name, Container: c.Name, Replicas: replicas,
				CPURequest: c.CPURequest, MemRequest: c.MemoryRequest}
			if c.CPURequest != nil && !podCPU {
				row.MonthlyCost += monthly(*c.CPURequest * cpuPrice * replicas)
			}
			if c.MemoryRequest != nil && !podMem {
				row.MonthlyCost += monthly(*c.MemoryRequest * memPrice * replicas)
			}
			r := recs[c.Name]
			switch {
			case !found:
				row.Note = "not in the cluster: no recommendation"
			case r == nil:
				row.Note = "no usage history for this container"
			case !r.OK && (podCPU || podMem) && !slices.ContainsFunc(r.Reasons, func(x string) bool { return x != "pod_level_cpu" && x != "pod_level_memory" }):
				row.Note = "sized at pod level: see the (pod) row"
			case !r.OK:
				row.Note = "no recommendation: " + joinReasons(r.Reasons)
			default:
				row.CPURecommended, row.MemRecommended = r.CPURequestCores, r.MemoryRequestBytes
				var waste float64
				if c.CPURequest != nil && r.CPURequestCores != nil && !podCPU {
					d := *c.CPURequest - *r.CPURequestCores
					waste += math.Max(d, 0) * cpuPrice
					row.UnderProvisions = row.UnderProvisions || d < 0
				}
				if c.MemoryRequest != nil && r.MemoryRequestBytes != nil && !podMem {
					d := *c.MemoryRequest - *r.MemoryRequestBytes
					waste += math.Max(d, 0) * memPrice
					row.UnderProvisions = row.UnderProvisions || d < 0
				}
				row.MonthlyWaste = monthly(waste * replicas)
				if (c.CPURequest == nil && !podCPU) || (c.MemoryRequest == nil && !podMem) {
					row.Note = "requests not set: the pod is scheduled as if it needed nothing"
					row.UnderProvisions = true
				} else if row.UnderProvisions {
					row.Note = "requests below the recommendation: risk of throttling or OOM"
				}
			}
			res.MonthlyWaste += row.MonthlyWaste
			res.MonthlyCost += row.MonthlyCost
			res.Rows = append(res.Rows, row)
		}
		if podCPU || podMem {
			row := podRow(m, w, found, podCPU, podMem, cpuPrice, memPrice)
			row.File, row.Namespace, row.Replicas = m.File, ns, replicas
			row.MonthlyCost, row.MonthlyWaste = monthly(row.MonthlyCost*replicas), monthly(row.MonthlyWaste*replicas)
			res.MonthlyWaste += row.MonthlyWaste
			res.MonthlyCost += row.MonthlyCost
			res.Rows = append(res.Rows, row)
		}
	}
	if res.MonthlyCost > 0 {
		res.WastePercent = 100 * res.MonthlyWaste / res.MonthlyCost
	}
	sort.SliceStable(res.Rows, func(i, j int) bool { return res.Rows[i].MonthlyWaste > res.Rows[j].MonthlyWaste })
	return res
}

// podRow compares a manifest's pod-level requests of the resources it sets
// there (podCPU, podMem) with the pod-level recommendations of the live
// workload w; its cost and waste are per replica and per hour. A resource
// with a limit alone is requested as the API server makes it: the
// containers' sum when they request it, else the limit.
func podRow(m manifest.Workload, w exporter.WorkloadResult, found, podCPU, podMem bool, cpuPrice, memPrice float64) checkRow {
	row := checkRow{Line: m.Pod.Line, Kind: m.Kind, Name: m.Name, Container: "(pod)"}
	// The request the pod is created with (recommend.CreatedRequest); the
	// manifest's init containers are not read, so the containers' sum is
	// the regular containers'.
	effective := func(req, lim *float64, of func(manifest.Container) *float64) *float64 {
		deref := func(v *float64) float64 {
			if v == nil {
				return 0
			}
			return *v
		}
		sum := 0.0
		for _, c := range m.Containers {
			sum += deref(of(c))
		}
		if v := recommend.CreatedRequest(deref(req), deref(lim), sum); v > 0 {
			return &v
		}
		return nil
	}
	advice := map[string]exporter.PodAdvice{}
	for _, a := range w.Pod {
		advice[a.Resource] = a
	}
	for _, r := range []struct {
		on         bool
		name       string
		req, lim   *float64
		of         func(manifest.Container) *float64
		price      float64
		have, want **float64
	}{
		{podCPU, "cpu", m.Pod.CPURequest, m.Pod.CPULimit, func(c manifest.Container) *float64 { return c.CPURequest }, cpuPrice, &row.CPURequest, &row.CPURecommended},
		{podMem, "memory", m.Pod.MemoryRequest, m.Pod.MemoryLimit, func(c manifest.Container) *float64 { return c.MemoryRequest }, memPrice, &row.MemRequest, &row.MemRecommended},
	} {
		if !r.on {
			continue
		}
		*r.have = effective(r.req, r.lim, r.of)
		if *r.have == nil {
			continue
		}
		row.MonthlyCost += **r.have * r.price
		a, ok := advice[r.name]
		if !ok {
			continue
		}
		rec := a.Request
		*r.want = &rec
		d := **r.have - rec
		row.MonthlyWaste += math.Max(d, 0) * r.price
		row.UnderProvisions = row.UnderProvisions || d < 0
	}
	switch {
	case !found:
		row.Note = "not in the cluster: no recommendation"
	case row.CPURecommended == nil && row.MemRecommended == nil:
		row.Note = "no pod-level recommendation: the live pods do not set these resources at pod level, or lack history"
	case row.UnderProvisions:
		row.Note = "requests below the recommendation: risk of throttling or OOM"
	}
	return row
}

func joinReasons(rs []string) string {
	if len(rs) == 0 {
		return "unknown"
	}
	s := rs[0]
	for _, r := range rs[1:] {
		s += ", " + r
	}
	return s
}

func (r *checkResult) judge(maxWaste, maxPercent *float64) {
	r.MaxWaste, r.MaxWastePercent = maxWaste, maxPercent
	// Fails closed: a waste that is not a number is not within a threshold.
	over := func(v float64, max *float64) bool { return max != nil && !(v <= *max) }
	r.OverThreshold = over(r.MonthlyWaste, maxWaste) || over(r.WastePercent, maxPercent)
}

func (r *checkResult) verdict() string {
	s := fmt.Sprintf("Waste: %s/month (%.1f%% of the %s/month these manifests request)", cli.Dollars(r.MonthlyWaste), r.WastePercent, cli.Dollars(r.MonthlyCost))
	var limits []string
	if r.MaxWaste != nil {
		limits = append(limits, "--max-waste "+cli.Dollars(*r.MaxWaste))
	}
	if r.MaxWastePercent != nil {
		limits = append(limits, fmt.Sprintf("--max-waste-percent %g%%", *r.MaxWastePercent))
	}
	switch {
	case len(limits) == 0:
		return s + "; no threshold set."
	case r.OverThreshold:
		return s + ": over " + joinReasons(limits) + "."
	default:
		return s + ": within " + joinReasons(limits) + "."
	}
}

func (r *checkResult) write(w io.Writer, format string, style cli.Style) error {
	switch format {
	case cli.JSON, cli.YAML:
		return cli.Encode(w, format, r)
	}
	wide := format == cli.Wide
	rows := &cli.Rows{Header: []string{"FILE:LINE", "WORKLOAD", "CONTAINER", "CPU REQUEST", "RECOMMENDED", "MEMORY REQUEST", "RECOMMENDED", "WASTE $/MONTH", "NOTE"}}
	if wide {
		rows.Header = append(rows.Header, "REPLICAS", "COST $/MONTH")
	}
	if format == cli.CSV {
		rows.Header = []string{"file", "line", "namespace", "kind", "workload", "container", "cpu_request_cores", "cpu_recommended_cores", "memory_request_bytes", "memory_recommended_bytes", "replicas", "monthly_cost_dollars", "monthly_waste_dollars", "note"}
	}
	num := func(v *float64, prec int) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'f', prec, 64)
	}
	for _, x := range r.Rows {
		if format == cli.CSV {
			rows.Add(x.File, strconv.Itoa(x.Line), x.Namespace, x.Kind, x.Name, x.Container, num(x.CPURequest, 3), num(x.CPURecommended, 3),
				num(x.MemRequest, 0), num(x.MemRecommended, 0), strconv.FormatFloat(x.Replicas, 'f', -1, 64),
				strconv.FormatFloat(x.MonthlyCost, 'f', 2, 64), strconv.FormatFloat(x.MonthlyWaste, 'f', 2, 64), x.Note)
			continue
		}
		row := []string{fmt.Sprintf("%s:%d", x.File, x.Line), x.Namespace + "/" + x.Kind + "/" + x.Name, x.Container,
			orDash(x.CPURequest, cli.CPU), orDash(x.CPURecommended, cli.CPU), orDash(x.MemRequest, cli.Memory), orDash(x.MemRecommended, cli.Memory),
			cli.Dollars(x.MonthlyWaste), x.Note}
		if wide {
			row = append(row, strconv.FormatFloat(x.Replicas, 'f', -1, 64), cli.Dollars(x.MonthlyCost))
		}
		rows.Add(row...)
		if x.MonthlyWaste > 0 {
			rows.Paint(7, style.Red)
		}
		if x.UnderProvisions {
			rows.Paint(8, style.Yellow)
		}
	}
	if len(r.Rows) > 0 || format == cli.CSV {
		if err := rows.Write(w, format, style); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(w, "No workloads in the manifests.")
	}
	if format == cli.CSV {
		return nil
	}
	fmt.Fprintln(w)
	for _, s := range r.Skipped {
		line := fmt.Sprintf("Skipped %s:%d: %s %s (not a workload UPID sizes)", s.File, s.Line, s.Kind, s.Name)
		if format == cli.Markdown {
			line = "- " + line
		}
		fmt.Fprintln(w, style.Yellow(line))
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintln(w)
	}
	v := r.verdict()
	switch {
	case r.OverThreshold:
		v = style.Red(v)
	case r.MaxWaste != nil || r.MaxWastePercent != nil:
		v = style.Green(v)
	}
	if format == cli.Markdown {
		v = "**" + v + "**"
	}
	_, err := fmt.Fprintln(w, v)
	return err
}

func runCheck(env *environment, sc *scope, files []string, maxWaste, maxPercent *float64, stdin io.Reader) int {
	if len(files) == 0 {
		return finish(env, "check", usageErrorf("no manifests: give -f FILE, -f DIR or -f -"))
	}
	for _, p := range []*float64{maxWaste, maxPercent} {
		if p != nil && (*p < 0 || math.IsNaN(*p)) {
			return finish(env, "check", usageErrorf("thresholds must be 0 or more"))
		}
	}
	for i, f := range files {
		// kingpin lexes a lone "-" as an empty argument: -f - means stdin.
		if f == "" {
			files[i] = "-"
		}
	}
	in, err := manifest.Load(files, stdin)
	if err != nil {
		// Every problem, one a line, as compilers print them.
		for _, e := range config.Flatten(err) {
			fmt.Fprintln(env.stderr, e)
		}
		return exitUsage
	}
	snap, err := analyse(env, *sc.demo, false)
	if err != nil {
		return finish(env, "check", err)
	}
	defaultNS := sc.only()
	if defaultNS == "" {
		defaultNS = "default"
	}
	res := compare(in, snap.results.Workloads, defaultNS)
	res.judge(maxWaste, maxPercent)
	if err := res.write(env.stdout, *sc.output, cli.StyleFor(env.stdout)); err != nil {
		return finish(env, "check", err)
	}
	if res.OverThreshold {
		return exitOverThreshold
	}
	return exitOK
}

func registerCheck(app *kingpin.Application, add func(*kingpin.CmdClause, command)) {
	cmd := app.Command("check", checkHelp)
	sc := addScope(cmd, cli.Formats, cli.Table)
	files := cmd.Flag("filename", "Manifests: a file, a directory, or - for stdin; repeatable.").Short('f').PlaceHolder("PATH").Strings()
	var maxWasteSet, maxPercentSet bool
	maxWaste := cmd.Flag("max-waste", "Fail (exit 3) when the manifests waste more than this many dollars per month in total.").PlaceHolder("DOLLARS").IsSetByUser(&maxWasteSet).Float64()
	maxPercent := cmd.Flag("max-waste-percent", "Fail (exit 3) when the waste is more than this percentage of what the manifests request.").PlaceHolder("PERCENT").IsSetByUser(&maxPercentSet).Float64()
	add(cmd, func(env *environment) int {
		var mw, mp *float64
		if maxWasteSet {
			mw = maxWaste
		}
		if maxPercentSet {
			mp = maxPercent
		}
		return runCheck(env, sc, *files, mw, mp, stdinReader)
	})
}

// stdinReader is where -f - reads; tests replace it.
var stdinReader io.Reader = os.Stdin
