package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/exporter/backtest"
	"github.com/upid-dev/upid/exporter/forecast"
	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/inventory"
)

// backtestFlags are the flags of `upid backtest`.
type backtestFlags struct {
	data          string
	output        string
	history       time.Duration
	end           string
	namespaces    []string
	batch         int
	demo          bool
	clusterPolicy bool
}

// registerBacktest adds `upid backtest` and its flags.
func registerBacktest(app *kingpin.Application, add func(*kingpin.CmdClause, command)) {
	bt := app.Command("backtest", "Replay history from Prometheus (--prometheus.url) or CSV traces (--data: Google Borg 2019, Azure VM CPU): UPID's rightsizing against VPA, krr and the current requests, its forecasts against seasonal naive and predict_linear.")
	var f backtestFlags
	bt.Flag("data", "Directory of traces: Borg instance CSVs and Azure avg/max CSV pairs, in any subdirectory. Without it, the history comes from Prometheus.").ExistingDirVar(&f.data)
	bt.Flag("output", "Output format: table or json.").Short('o').Default("table").EnumVar(&f.output, "table", "json")
	bt.Flag("history", "From Prometheus: how much history to replay, ending at --end.").Default("14d").SetValue(durationValue{"--history", &f.history})
	bt.Flag("end", "From Prometheus: the end of the history, RFC 3339 (default: now).").PlaceHolder("TIME").StringVar(&f.end)
	bt.Flag("namespace", "From Prometheus: only this namespace; repeat for more (default: every namespace with containers).").Short('n').PlaceHolder("NAMESPACE").StringsVar(&f.namespaces)
	bt.Flag("demo", "Replay the built-in demo cluster's history instead of Prometheus's.").BoolVar(&f.demo)
	bt.Flag("cluster-policy", "From Prometheus: also replay the upid.io/ labels and annotations the cluster's namespaces and workloads carry now (--kubeconfig, --context; the demo's with --demo), as the exporter applies them.").BoolVar(&f.clusterPolicy)
	bt.Flag("batch-containers", "From Prometheus: containers read and replayed at once; each holds about 25 KB per day of history.").Default("200").IntVar(&f.batch)
	add(bt, func(env *environment) int { return runBacktest(env, f) })
}

// runBacktest replays history, from CSV traces (--data) or from Prometheus:
// rightsizing for UPID, VPA, krr and the traces' own requests, and
// forecasting for UPID and its baselines. Every decision and forecast
// reads only the past.
func runBacktest(env *environment, f backtestFlags) int {
	// UPID replays with the policy of the configuration (exporter.recommend
	// and, for workloads read from Prometheus, its overrides), so a change
	// can be tried on history before it is rolled out. The upid.io/ labels
	// and annotations are on the cluster's objects, not in the history:
	// --cluster-policy reads them as they are now.
	if f.clusterPolicy && f.data != "" {
		fmt.Fprintln(env.stderr, "upid backtest: --cluster-policy applies to history from Prometheus or --demo, not to --data traces")
		return exitUsage
	}
	opts := backtest.DefaultOptions()
	if f.data == "" {
		if err := checkPrometheusFlags(f, opts.Cadence); err != nil {
			return finish(env, "backtest", err)
		}
	}
	policies, err := exporter.NewConfigPolicies(env.cfg.Exporter.Recommend)
	if err != nil {
		fmt.Fprintf(env.stderr, "upid backtest: %v\n", oneLine(err))
		return exitUsage
	}
	p := policies.Cluster()
	opts.Policy, opts.ChangeThreshold = p, p.ChangeThreshold
	rp, err := backtest.NewReplay(opts)
	if err != nil {
		fmt.Fprintf(env.stderr, "upid backtest: %v\n", err)
		return exitFailure
	}
	var fs backtest.ForecastSet
	var traces int
	var read *promRead // what reading Prometheus cost it and found
	if f.data != "" {
		all, err := backtest.LoadDir(f.data)
		if err != nil {
			fmt.Fprintf(env.stderr, "upid backtest: %v\n", err)
			return exitFailure
		}
		if len(all) == 0 {
			fmt.Fprintf(env.stderr, "upid backtest: no traces in %s (want Borg instance CSVs or Azure avg/max CSV pairs)\n", f.data)
			return exitFailure
		}
		if err := rp.Add(all); err != nil {
			fmt.Fprintf(env.stderr, "upid backtest: %v\n", err)
			return exitFailure
		}
		_ = fs.Add(all) // the 5-minute grid: nothing to resample
		traces = len(all)
	} else {
		read = &promRead{}
		if code := backtestPrometheus(env, f, policies, rp, &fs, &traces, read); code != exitOK {
			return code
		}
	}
	rs := rp.Report()
	if !scored(rs) {
		// Every score would be "-": say why rather than print them.
		what := "no container ran"
		if f.data != "" {
			what = "no trace in " + f.data + " is"
		}
		return finish(env, "backtest", failuref("nothing to score: %s longer than the decision period (%s); the scores start at the first decision, one period into each one's history",
			what, model.Duration(opts.Cadence)))
	}

	// Forecasting is scored per source and resource: UPID's forecaster
	// against the baselines on held-out days of the same traces. A group
	// without a forecast scored has no report, whose zeros would read as
	// perfect scores, but the reason.
	type forecasting struct {
		Source    string               `json:"source"`
		Resource  string               `json:"resource"`
		TrainDays int                  `json:"train_days"`
		Report    *forecast.EvalReport `json:"report,omitempty"`
		NotScored string               `json:"not_scored,omitempty"`
	}
	var fr []forecasting
	for _, g := range fs.Groups() {
		r := forecast.Evaluate(g.Series, forecast.EvalOptions{TrainDays: g.TrainDays, Max: g.Max})
		fg := forecasting{Source: g.Source, Resource: g.Resource, TrainDays: g.TrainDays, NotScored: r.NotScored()}
		if fg.NotScored == "" {
			fg.Report = &r
		}
		fr = append(fr, fg)
	}

	switch f.output {
	case "json":
		out := struct {
			PrometheusLoad *history.WindowStats `json:"prometheus_load,omitempty"`
			History        *historySpan         `json:"history,omitempty"`
			Rightsizing    *backtest.Report     `json:"rightsizing"`
			Forecasting    []forecasting        `json:"forecasting"`
		}{Rightsizing: rs, Forecasting: fr}
		if read != nil {
			out.PrometheusLoad, out.History = &read.Load, &read.History
		}
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(env.stderr, "upid backtest: %v\n", err)
			return exitFailure
		}
	default:
		if read != nil {
			l, h := read.Load, read.History
			fmt.Fprintf(env.stdout, "# Read from Prometheus: %d queries answered with %d series and %d points\n", l.Queries, l.Series, l.Points)
			fmt.Fprintf(env.stdout, "# History found: %s to %s, %s of the %s asked\n\n", h.Start.Format(time.RFC3339), h.End.Format(time.RFC3339), h.found(), h.Asked)
		}
		fmt.Fprintf(env.stdout, "# Rightsizing (%d traces)\n\n", traces)
		rs.WriteTable(env.stdout)
		for _, f := range fr {
			if f.Report == nil {
				fmt.Fprintf(env.stdout, "\n# Forecasting: %s %s (first held-out day after %d days): %s\n", f.Source, f.Resource, f.TrainDays, f.NotScored)
				continue
			}
			fmt.Fprintf(env.stdout, "\n# Forecasting: %s %s (%d series, first held-out day after %d days)\n\n", f.Source, f.Resource, f.Report.Series, f.TrainDays)
			if err := f.Report.WriteTable(env.stdout); err != nil {
				fmt.Fprintf(env.stderr, "upid backtest: %v\n", err)
				return exitFailure
			}
		}
	}
	return exitOK
}

// checkPrometheusFlags refuses the flags of a replay from Prometheus that
// are out of range, naming them, before anything is read.
func checkPrometheusFlags(f backtestFlags, cadence time.Duration) error {
	switch {
	case f.history <= cadence:
		// The scores start at the first decision, a period into each
		// container's history: a shorter history would read Prometheus
		// for nothing.
		return usageErrorf("--history: %s is not longer than the decision period (%s): the scores start at the first decision, one period into each container's history, so nothing would be scored",
			model.Duration(f.history), model.Duration(cadence))
	case f.batch < 1:
		// ReadPrometheus would take 0 as its default, which the flag's
		// default already is.
		return usageErrorf("--batch-containers: %d is not a positive number of containers", f.batch)
	}
	return nil
}

// scored: some sample of the report was scored.
func scored(r *backtest.Report) bool {
	for _, g := range r.Groups {
		for _, s := range g.Scores {
			if s.Samples > 0 {
				return true
			}
		}
	}
	return false
}

// backtestPrometheus replays the containers in Prometheus batch by batch:
// each batch of namespaces is read, replayed and kept only as scores and
// hourly forecast series.
// promRead is what reading Prometheus cost it and found.
type promRead struct {
	Load    history.WindowStats
	History historySpan
}

// historySpan is the history asked for and the span Prometheus held of it:
// from the start of the first window of any container to the end of the
// last, in UTC.
type historySpan struct {
	Asked string    `json:"asked"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// found is the length of the span found.
func (h historySpan) found() model.Duration { return model.Duration(h.End.Sub(h.Start)) }

// add widens the span to tr's windows.
func (h *historySpan) add(tr backtest.Trace) {
	first, last := tr.Samples[0], tr.Samples[len(tr.Samples)-1]
	if h.Start.IsZero() || first.Time.Before(h.Start) {
		h.Start = first.Time.UTC()
	}
	if end := last.Time.Add(last.Duration); end.After(h.End) {
		h.End = end.UTC()
	}
}

// maxClockSkew is how far past this machine's clock --end may be: a
// Prometheus clock a little ahead holds a little more.
const maxClockSkew = 5 * time.Minute

// historyShortfall is how much less than --history the history found may
// be without a warning: a window or two at either end without a rate
// (fewer than two scrapes in it) is not missing history.
const historyShortfall = 15 * time.Minute

func backtestPrometheus(env *environment, f backtestFlags, policies *exporter.ConfigPolicies, rp *backtest.Replay, fs *backtest.ForecastSet, traces *int, read *promRead) int {
	o := backtest.PrometheusOptions{
		History:         f.history,
		Namespaces:      f.namespaces,
		BatchContainers: f.batch,
		Chunk:           time.Duration(env.cfg.Exporter.Recommender.BackfillChunk),
		Timeout:         time.Duration(env.cfg.Prometheus.Timeout),
	}
	if f.end != "" {
		t, err := time.Parse(time.RFC3339, f.end)
		if err != nil {
			fmt.Fprintf(env.stderr, "upid backtest: --end %q: want a time like 2026-11-01T00:00:00Z\n", f.end)
			return exitUsage
		}
		// Prometheus holds nothing after now: a later end would read an
		// empty stretch and score the history before it as if it were all.
		if now := clock(); t.After(now.Add(maxClockSkew)) {
			return finish(env, "backtest", usageErrorf("--end: %s is later than now (%s)", f.end, now.UTC().Format(time.RFC3339)))
		}
		o.End = t
	}
	var q history.Querier
	source := "--prometheus.url " + env.cfg.Prometheus.URL
	if f.demo {
		now := clock().Truncate(time.Minute)
		d, closer, err := newDemo(now, f.history)
		if err != nil {
			fmt.Fprintf(env.stderr, "upid backtest: demo: %v\n", err)
			return exitFailure
		}
		defer closer.Close()
		q, o.End, source = d.Querier, now, "the demo"
		if f.clusterPolicy {
			if code := clusterPolicies(env, policies, fake.NewClientset(d.Objects...)); code != exitOK {
				return code
			}
		}
	} else {
		pq, err := promClient(env.cfg.Prometheus)
		if err != nil {
			fmt.Fprintf(env.stderr, "upid backtest: %v\n", err)
			return exitUsage
		}
		q = scopedQuerier(pq, env.cfg.Prometheus)
		if sel := env.cfg.Prometheus.Selector; sel != "" {
			// Every read is scoped: a selector that matches nothing reads
			// as an empty Prometheus unless the message says so.
			source += " matching prometheus.selector " + sel
		}
		if f.clusterPolicy {
			kube, _, err := reachKube(env.cfg.Kubernetes)
			if err != nil {
				return finish(env, "backtest", err)
			}
			if code := clusterPolicies(env, policies, kube); code != exitOK {
				return code
			}
		}
	}
	// A step of forecast.Evaluate's resolution keeps a long history small.
	fs.Step = time.Hour
	read.History.Asked = model.Duration(f.history).String()
	st, err := backtest.ReadPrometheus(context.Background(), q, o, func(batch []backtest.Trace) error {
		*traces += len(batch)
		for i := range batch {
			read.History.add(batch[i])
			w := batch[i].Workload
			if p, from := policies.Policy(w.Namespace, w.Kind, w.Workload); len(from) > 0 {
				batch[i].Policy, batch[i].PolicyFrom = &p, from
			}
		}
		if err := rp.Add(batch); err != nil {
			return err
		}
		return fs.Add(batch)
	})
	if err != nil {
		fmt.Fprintf(env.stderr, "upid backtest: %s (%s)\n", oneLine(err), source)
		return exitFailure
	}
	if *traces == 0 {
		fmt.Fprintf(env.stderr, "upid backtest: no workload containers with usage in %s of history (%s); kube-state-metrics' kube_pod_owner and cAdvisor's container metrics are needed\n",
			model.Duration(f.history), source)
		return exitFailure
	}
	read.Load = st
	if h := read.History; h.End.Sub(h.Start) < f.history-historyShortfall {
		fmt.Fprintf(env.stderr, "upid backtest: warning: %s holds %s of the %s of history asked (%s to %s); the scores cover that\n",
			source, h.found(), h.Asked, h.Start.Format(time.RFC3339), h.End.Format(time.RFC3339))
	}
	return exitOK
}

// clusterPolicies reads the cluster's namespaces and workloads through the
// exporter's own inventory and adds their upid.io/ labels and annotations
// to policies; an ignored value is a warning naming the object, as the
// exporter logs it.
func clusterPolicies(env *environment, policies *exporter.ConfigPolicies, kube kubernetes.Interface) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	inv := inventory.New(kube, inventory.Options{})
	if err := inv.Start(ctx); err != nil {
		fmt.Fprintf(env.stderr, "upid backtest: --cluster-policy: reading the cluster: %s\n", oneLine(err))
		return exitFailure
	}
	defer inv.Shutdown()
	snap, err := inv.Snapshot()
	if err != nil {
		fmt.Fprintf(env.stderr, "upid backtest: --cluster-policy: reading the cluster: %s\n", oneLine(err))
		return exitFailure
	}
	for _, p := range policies.WithCluster(snap) {
		fmt.Fprintf(env.stderr, "upid backtest: warning: %s\n", p)
	}
	return exitOK
}

// durationValue is a flag in Prometheus's duration syntax ("14d", "1h30m"),
// as the configuration's durations are. Its errors name the flag: kingpin
// prints a value's error as it is.
type durationValue struct {
	name string
	d    *time.Duration
}

func (v durationValue) Set(s string) error {
	// model.ParseDuration refuses a sign: "-1d" is as wrong as "0".
	d, err := model.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("%s: %q is not a positive duration like 14d or 36h", v.name, s)
	}
	*v.d = time.Duration(d)
	return nil
}

func (v durationValue) String() string {
	if v.d == nil {
		return ""
	}
	return model.Duration(*v.d).String()
}
