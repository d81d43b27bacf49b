package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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

	var series []forecast.Series
	matches, _ := filepath.Glob(filepath.Join(dir, "**", "*avg*.csv"))
	top, _ := filepath.Glob(filepath.Join(dir, "*avg*.csv"))
	for _, p := range append(top, matches...) {
		f, err := os.Open(p)
		if err != nil {
			fmt.Fprintf(env.stderr, "upid backtest: %v\n", err)
			return exitFailure
		}
		s, err := forecast.ReadAzure(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(env.stderr, "upid backtest: %s: %v\n", p, err)
			return exitFailure
		}
		series = append(series, s...)
	}
	var fr *forecast.EvalReport
	if len(series) > 0 {
		r := forecast.Evaluate(series, forecast.EvalOptions{})
		fr = &r
	}

	switch output {
	case "json":
		out := struct {
			Rightsizing *backtest.Report     `json:"rightsizing"`
			Forecasting *forecast.EvalReport `json:"forecasting,omitempty"`
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
		if fr != nil {
			fmt.Fprintf(env.stdout, "\n# Forecasting (%d series)\n\n", len(series))
			if err := fr.WriteTable(env.stdout); err != nil {
				fmt.Fprintf(env.stderr, "upid backtest: %v\n", err)
				return exitFailure
			}
		} else {
			fmt.Fprintln(env.stdout, "\n# Forecasting: no Azure CPU series (*avg*.csv) in "+strings.TrimSuffix(dir, "/"))
		}
	}
	return exitOK
}
