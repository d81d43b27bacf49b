package forecast

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The evaluation on the full 100-VM Azure sample runs only when
// UPID_SHARED_DATA names the shared data directory (the one holding
// azure-v1-vm-cpu-100/); the default go test never reads it:
//
//	UPID_SHARED_DATA=/work/shared/data go test ./exporter/forecast -run Full -v
//
// UPID_EVAL_OUT, when set, is a directory the tables and JSON reports are
// written to. docs/forecasting.md quotes them.

func sharedAzure(t testing.TB) []Series {
	dir := os.Getenv("UPID_SHARED_DATA")
	if dir == "" {
		t.Skip("UPID_SHARED_DATA not set")
	}
	var all []Series
	for _, part := range []string{"part1", "part2"} {
		f, err := os.Open(filepath.Join(dir, "azure-v1-vm-cpu-100", "azure_v1_avg_cpu_5min_"+part+".csv"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := ReadAzure(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, s...)
	}
	return all
}

func TestEvaluateFullAzure(t *testing.T) {
	series := sharedAzure(t)
	for _, c := range []struct {
		name string
		opts EvalOptions
		set  []Series
	}{
		{"hourly-1d", EvalOptions{}, series},
		{"hourly-1d-vms1-50", EvalOptions{}, series[:50]},
		{"hourly-1d-vms51-100", EvalOptions{}, series[50:]},
		{"hourly-7d", EvalOptions{HorizonDays: 7}, series},
		{"5min-1d", EvalOptions{Step: 5 * time.Minute}, series},
	} {
		if only := os.Getenv("UPID_EVAL_ONLY"); only != "" && !strings.Contains(c.name, only) {
			continue
		}
		start := time.Now()
		rep := Evaluate(c.set, c.opts)
		var b strings.Builder
		if err := rep.WriteTable(&b); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s (%v):\n%s", c.name, time.Since(start).Round(time.Millisecond), b.String())
		if out := os.Getenv("UPID_EVAL_OUT"); out != "" {
			js, err := rep.JSON()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(out, c.name+".txt"), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(out, c.name+".json"), js, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
