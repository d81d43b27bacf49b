package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/upid-dev/upid/internal/cli"
	"github.com/upid-dev/upid/scaler"
)

const statusHelp = `List the workloads UPID put to sleep: since when, and what they save.

Reads the scaler's own annotations (upid.io/sleep-*) on Deployments,
StatefulSets and Argo Rollouts, so it shows what the scaler and upid sleep did, whichever
replica or person did it.

Examples:
  upid status                      # every namespace
  upid status -n shop -o json      # one namespace, for scripts
  upid wake shop/Deployment/web    # then wake one of them`

// statusEntry is one sleeping workload as status prints it.
type statusEntry struct {
	Namespace         string    `json:"namespace"`
	Kind              string    `json:"kind"`
	Workload          string    `json:"workload"`
	Since             time.Time `json:"since"`
	AsleepSeconds     float64   `json:"asleep_seconds"`
	SavedPerHour      float64   `json:"saved_dollars_per_hour"`
	SavedSoFarDollars float64   `json:"saved_so_far_dollars"`
	Services          []string  `json:"services"`
}

func registerStatus(app *kingpin.Application, add func(*kingpin.CmdClause, command)) {
	cmd := app.Command("status", statusHelp)
	ns := cmd.Flag("namespace", "Only this namespace (default: all namespaces).").Short('n').PlaceHolder("NAMESPACE").String()
	all := cmd.Flag("all-namespaces", "All namespaces, the default; overrides -n.").Short('A').Bool()
	out := cmd.Flag("output", "Output format: "+strings.Join(cli.Formats, ", ")+".").Short('o').Default(cli.Table).Enum(cli.Formats...)
	add(cmd, func(env *environment) int {
		namespace := *ns
		if *all {
			namespace = ""
		}
		return runStatus(env, namespace, *out)
	})
}

func runStatus(env *environment, namespace, format string) int {
	kc, dc, err := reachKube(env.cfg.Kubernetes)
	if err != nil {
		return finish(env, "status", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ws, err := scaler.ListSleeping(ctx, kc, dc, namespace)
	if errors.Is(err, scaler.ErrRolloutsNotListed) {
		// The others are listed; say what is missing rather than fail.
		fmt.Fprintf(env.stderr, "upid status: %v\n", err)
		err = nil
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "upid status: %v\n", err)
		return exitFailure
	}
	now := clock()
	entries := make([]statusEntry, 0, len(ws))
	for _, w := range ws {
		asleep := now.Sub(w.Since)
		if asleep < 0 || w.Since.IsZero() {
			asleep = 0
		}
		entries = append(entries, statusEntry{
			Namespace: w.Namespace, Kind: w.Kind, Workload: w.Name, Since: w.Since.UTC(),
			AsleepSeconds: asleep.Seconds(), SavedPerHour: w.Saved, SavedSoFarDollars: w.Saved * asleep.Hours(),
			Services: append([]string{}, w.Services...),
		})
	}
	if format == cli.JSON || format == cli.YAML {
		if err := cli.Encode(env.stdout, format, entries); err != nil {
			fmt.Fprintf(env.stderr, "upid status: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	rows := &cli.Rows{Header: []string{"WORKLOAD", "SINCE", "ASLEEP", "SAVES $/MONTH", "SAVED SO FAR"}}
	if format == cli.Wide {
		rows.Header = append(rows.Header, "SERVICES")
	}
	var month, sofar float64
	for _, e := range entries {
		month += 730 * e.SavedPerHour
		sofar += e.SavedSoFarDollars
		cells := []string{e.Namespace + "/" + e.Kind + "/" + e.Workload, e.Since.Format(time.RFC3339),
			(time.Duration(e.AsleepSeconds) * time.Second).Round(time.Minute).String(), cli.Dollars(730 * e.SavedPerHour), cli.Dollars(e.SavedSoFarDollars)}
		if format == cli.Wide {
			cells = append(cells, strings.Join(e.Services, ","))
		}
		rows.Add(cells...)
	}
	if len(entries) == 0 && (format == cli.Table || format == cli.Wide) {
		fmt.Fprintln(env.stdout, "No workload is asleep.")
		return exitOK
	}
	if err := rows.Write(env.stdout, format, cli.StyleFor(env.stdout)); err != nil {
		fmt.Fprintf(env.stderr, "upid status: %v\n", err)
		return exitFailure
	}
	if format == cli.Table || format == cli.Wide {
		fmt.Fprintf(env.stdout, "\n%d asleep, saving %s/month; %s saved so far.\n", len(entries), cli.Dollars(month), cli.Dollars(sofar))
	}
	return exitOK
}
