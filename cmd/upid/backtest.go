package main

import (
	"encoding/json"
	"fmt"

	"github.com/upid-dev/upid/exporter/backtest"
	"github.com/upid-dev/upid/exporter/forecast"
)

// runBacktest replays CSV traces: rightsizing for UPID, VPA, krr and the
// traces' own requests, and forecasting for UPID and its baselines. It
// reads history only from the past of each decision.
func runBacktest(env *environment, dir, output string) int {
	traces, err := backtest.LoadDir(dir)
	if err != nil {
		fmt.Fprintf(env.stderr, "upid backtest: %v\n", err)
		return exitFailure
	}
	if len(traces) == 0 {
		fmt.Fprintf(env.stderr, "upid backtest: no traces in %s (want Borg instance CSVs or Azure avg/max CSV pairs)\n", dir)
		return exitFailure
	}
	rs, err := backtest.Run(traces, backtest.DefaultOptions())
	if err != nil {
		fmt.Fprintf(env.stderr, "upid backtest: %v\n", err)
		return exitFailure
	}

	// Forecasting is scored per source and resource: UPID's forecaster
	// against the baselines on held-out days of the same traces.
	type forecasting struct {
		Source    string              `json:"source"`
		Resource  string              `json:"resource"`
		TrainDays int                 `json:"train_days"`
		Report    forecast.EvalReport `json:"report"`
	}
	var fr []forecasting
	for _, g := range backtest.ForecastSeries(traces) {
		r := forecast.Evaluate(g.Series, forecast.EvalOptions{TrainDays: g.TrainDays, Max: g.Max})
		fr = append(fr, forecasting{g.Source, g.Resource, g.TrainDays, r})
	}

	switch output {
	case "json":
		out := struct {
			Rightsizing *backtest.Report `json:"rightsizing"`
			Forecasting []forecasting    `json:"forecasting"`
		}{rs, fr}
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(env.stderr, "upid backtest: %v\n", err)
			return exitFailure
		}
	default:
		fmt.Fprintf(env.stdout, "# Rightsizing (%d traces)\n\n", len(traces))
		rs.WriteTable(env.stdout)
		for _, f := range fr {
			fmt.Fprintf(env.stdout, "\n# Forecasting: %s %s (%d series, first held-out day after %d days)\n\n", f.Source, f.Resource, f.Report.Series, f.TrainDays)
			if err := f.Report.WriteTable(env.stdout); err != nil {
				fmt.Fprintf(env.stderr, "upid backtest: %v\n", err)
				return exitFailure
			}
		}
	}
	return exitOK
}
