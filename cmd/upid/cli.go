package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/internal/cli"
	"github.com/upid-dev/upid/internal/logging"
)

// exitOverThreshold is `upid check`'s verdict that the manifests waste more
// than allowed: distinct from a failure so CI can tell them apart.
const exitOverThreshold = 3

// cliError carries the exit code of a failed terminal command; its message
// is one line.
type cliError struct {
	code int
	err  error
}

func (e *cliError) Error() string { return e.err.Error() }

func usageErrorf(format string, args ...any) error {
	return &cliError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func failuref(format string, args ...any) error {
	return &cliError{code: exitFailure, err: fmt.Errorf(format, args...)}
}

// finish prints err as `upid CMD: message` and returns its exit code.
func finish(env *environment, name string, err error) int {
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ce *cliError
	if errors.As(err, &ce) {
		code = ce.code
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(env.stderr, "upid %s: %s\n", name, line)
	}
	return code
}

// scope is what every terminal command reads: which namespaces, from which
// cluster, printed how.
type scope struct {
	namespace *string
	all       *bool
	demo      *bool
	output    *string
}

func addScope(cmd *kingpin.CmdClause, formats []string, def string) *scope {
	return &scope{
		namespace: cmd.Flag("namespace", "Only this namespace (default: all namespaces).").Short('n').PlaceHolder("NAMESPACE").String(),
		all:       cmd.Flag("all-namespaces", "All namespaces, the default; overrides -n.").Short('A').Bool(),
		demo:      cmd.Flag("demo", "Use the built-in demo cluster and its history instead of --kubeconfig and --prometheus.url.").Bool(),
		output:    cmd.Flag("output", "Output format: "+strings.Join(formats, ", ")+".").Short('o').Default(def).Enum(formats...),
	}
}

// only is the one namespace in scope, or "" for all of them: -A overrides -n.
func (s *scope) only() string {
	if *s.all {
		return ""
	}
	return *s.namespace
}

// includes reports whether namespace ns is in scope.
func (s *scope) includes(ns string) bool {
	return s.only() == "" || ns == s.only()
}

// snapshot is one analysis of the cluster, made by the exporter's own code:
// New, Start, one Cycle, and a Forecast when asked for.
type snapshot struct {
	results     *exporter.Results
	forecasts   []exporter.WorkloadForecast
	forecastErr error
	querier     history.Querier
	prometheus  string // where history came from, for messages
}

// analyse runs one exporter cycle against the cluster (or the demo) and
// waits for it, showing progress on a terminal.
func analyse(env *environment, demo, withForecast bool) (*snapshot, error) {
	ctx := context.Background()
	quietLogs(env)
	progress := cli.NewProgress(env.stderr)
	defer progress.Stop()

	opts := exporter.Options{Exporter: env.cfg.Exporter, Prometheus: env.cfg.Prometheus, Logger: env.log.Slog.With("component", "cli")}
	snap := &snapshot{prometheus: env.cfg.Prometheus.URL}
	if demo {
		progress.Step("building the demo cluster")
		if len(opts.Exporter.NamespaceLabels) == 0 {
			// The demo's namespaces carry their team.
			opts.Exporter.NamespaceLabels = []string{"team"}
		}
		d, err := startDemo(env, &opts)
		if err != nil {
			return nil, failuref("demo: %v", err)
		}
		defer d.Close()
		snap.prometheus = "the demo"
	} else {
		var err error
		if opts.Querier, err = promClient(env.cfg.Prometheus); err != nil {
			return nil, usageErrorf("%v", err)
		}
		progress.Step("reaching Kubernetes and Prometheus")
		// Queries fail one by one: ask once first, so the user reads one
		// clear line.
		if opts.Kube, _, err = reachKube(env.cfg.Kubernetes); err != nil {
			return nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, _, _, err = opts.Querier.Query(pctx, "vector(1)", time.Now())
		cancel()
		if err != nil {
			return nil, failuref("cannot query Prometheus at %s (--prometheus.url): %v", env.cfg.Prometheus.URL, oneLine(err))
		}
	}
	// The exporter scopes its own queries; the report's queries go
	// through the same prometheus.selector.
	snap.querier = scopedQuerier(opts.Querier, env.cfg.Prometheus)
	svc, err := exporter.New(opts)
	if err != nil {
		return nil, usageErrorf("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	progress.Step("reading the cluster")
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = svc.Start(sctx)
	cancel()
	if err != nil {
		return nil, failuref("cannot read the cluster: %v", oneLine(err))
	}
	defer svc.Shutdown()
	progress.Step("querying Prometheus")
	if err := svc.Cycle(ctx); err != nil {
		return nil, failuref("analysis failed: %v", oneLine(err))
	}
	snap.results = svc.Last()
	if withForecast {
		progress.Step("fitting forecasts")
		if err := svc.Forecast(ctx); err != nil {
			snap.forecastErr = err
		} else {
			snap.forecasts = svc.Forecasts()
		}
	}
	return snap, nil
}

// quietLogs keeps a terminal command's stderr for its own messages: the
// exporter's info lines matter in a server's log, not here.
func quietLogs(env *environment) {
	if env.cfg.Log.Level != "info" {
		return
	}
	if l, err := logging.New(env.stderr, "warn", env.cfg.Log.Format); err == nil {
		logging.Install(l, "warn")
		env.log = l
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// workloads returns the workloads in scope, most expensive first, then by name.
func (s *snapshot) workloads(sc *scope) []exporter.WorkloadResult {
	var out []exporter.WorkloadResult
	for _, w := range s.results.Workloads {
		if sc.includes(w.Namespace) {
			out = append(out, w)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Cost.Total != out[j].Cost.Total {
			return out[i].Cost.Total > out[j].Cost.Total
		}
		return workloadID(out[i]) < workloadID(out[j])
	})
	return out
}

func workloadID(w exporter.WorkloadResult) string {
	return w.Namespace + "/" + w.Kind + "/" + w.Name
}

// monthly converts dollars per hour to dollars per month as OpenCost does.
func monthly(perHour float64) float64 { return perHour * hoursPerMonth }

const hoursPerMonth = 730

func wasteOf(w exporter.WorkloadResult) (float64, bool) {
	var v float64
	known := false
	if w.Waste.CPU != nil {
		v += *w.Waste.CPU
		known = true
	}
	if w.Waste.Memory != nil {
		v += *w.Waste.Memory
		known = true
	}
	return v, known
}

// rightsizingSavings is what applying the recommendations worth a restart,
// the containers' and the pod-level ones, saves per hour; an idle workload's are not counted, since sleeping it
// saves its whole cost.
func rightsizingSavings(w exporter.WorkloadResult) (perHour float64, containers int) {
	if w.Idle.State == "idle" {
		return 0, 0
	}
	for _, c := range w.Containers {
		r := c.Recommendation
		if r == nil || !r.OK || !r.Apply || r.SavingsDollarsPerHour <= 0 {
			continue
		}
		perHour += r.SavingsDollarsPerHour
		containers++
	}
	// A pod-level request replaces the containers' for its resource.
	for _, p := range w.Pod {
		if p.Apply && p.SavingsDollarsPerHour > 0 {
			perHour += p.SavingsDollarsPerHour
		}
	}
	return perHour, containers
}

// hpaPairSavings is what the workload's HPA pairs worth a rollout that save
// money save per hour; an idle workload's are counted by sleeping it, as its
// rightsizing.
func hpaPairSavings(w exporter.WorkloadResult) float64 {
	if w.Idle.State == "idle" {
		return 0
	}
	perHour := 0.0
	for _, p := range w.HPA {
		if p.Apply && p.SavingsDollarsPerHour > 0 {
			perHour += p.SavingsDollarsPerHour
		}
	}
	return perHour
}

// kinds maps what users type (kubectl's names, short names, plurals) to a kind.
var kinds = func() map[string]string {
	m := map[string]string{
		"deploy": inventory.KindDeployment, "sts": inventory.KindStatefulSet, "ds": inventory.KindDaemonSet,
		"rs": inventory.KindReplicaSet, "cj": inventory.KindCronJob, "po": inventory.KindPod, "ro": inventory.KindRollout,
	}
	for _, k := range []string{inventory.KindDeployment, inventory.KindStatefulSet, inventory.KindDaemonSet, inventory.KindReplicaSet, inventory.KindJob, inventory.KindCronJob, inventory.KindPod, inventory.KindRollout} {
		m[strings.ToLower(k)] = k
		m[strings.ToLower(k)+"s"] = k
	}
	return m
}()

var kindList = "Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod, Rollout"

func parseKind(s string) (string, bool) {
	k, ok := kinds[strings.ToLower(s)]
	return k, ok
}

// writeTitle prints a section heading of the table format.
func writeTitle(w io.Writer, style cli.Style, title string) {
	fmt.Fprintf(w, "%s\n", style.Bold(title))
}
