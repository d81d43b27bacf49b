package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/upid-dev/upid/exporter/forecast"
	"github.com/upid-dev/upid/internal/config"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("log:\n  level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("log:\n  levle: debug\n  format: xml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	traces := backtestData(t)
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		code       int
		stdout     []string
		stderr     []string
		stderrNone string
	}{
		{name: "version", args: []string{"version"}, code: exitOK, stdout: []string{"upid, version", "go version:"}},
		{name: "help", args: []string{"--help"}, code: exitOK, stdout: []string{"exporter", "webhook", "scaler", "analyze", "config check", "--log.level"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage, stderr: []string{"frobnicate"}},
		{name: "webhook bad mode", args: []string{"webhook", "--webhook.mode=on"}, code: exitUsage, stderr: []string{`flag --webhook.mode: webhook.mode: invalid value "on"`}},
		{name: "analyze help", args: []string{"analyze", "--help"}, code: exitOK, stdout: []string{"Examples:", "upid analyze --demo", "--namespace", "all-namespaces", "--output"}},
		{name: "recommend help", args: []string{"recommend", "--help"}, code: exitOK, stdout: []string{"Examples:", "-o patch", "NAMESPACE/KIND/NAME"}},
		{name: "check help documents exit 3", args: []string{"check", "--help"}, code: exitOK, stdout: []string{"Examples:", "3  the waste is over --max-waste or --max-waste-percent", "--max-waste-percent"}},
		{name: "report help", args: []string{"report", "--help"}, code: exitOK, stdout: []string{"Examples:", "not measured", "--output"}},
		{name: "scaler without credentials", args: []string{"scaler"}, code: exitUsage, stderr: []string{"scaler.bearer_token_file"}},
		{name: "sleep bad workload", args: []string{"sleep", "shop/web"}, code: exitUsage, stderr: []string{"want NAMESPACE/KIND/NAME"}},
		{name: "wake unsupported kind", args: []string{"wake", "shop/CronJob/report"}, code: exitUsage, stderr: []string{`kind "CronJob" is not one of Deployment, StatefulSet`}},
		{name: "sleep needs a workload", args: []string{"sleep"}, code: exitUsage, stderr: []string{"required argument 'workload' not provided"}},
		{name: "config check good", args: []string{"config", "check", good}, code: exitOK, stdout: []string{good + ": ok"}},
		{
			name: "config check bad lists every problem with its line",
			args: []string{"config", "check", bad}, code: exitFailure,
			stderr: []string{bad + `:2: log.levle: unknown key (did you mean "log.level"?)`, bad + `:3: log.format: invalid value "xml"`},
		},
		{
			// The environment does not leak into a check of a file.
			name: "config check ignores env", args: []string{"config", "check", good}, env: map[string]string{"UPID_LOG_LEVEL": "nope"},
			code: exitOK, stdout: []string{": ok"},
		},
		{name: "config check missing file", args: []string{"config", "check", filepath.Join(dir, "nope.yaml")}, code: exitFailure, stderr: []string{"nope.yaml"}},
		{name: "bad flag value", args: []string{"--log.level=loud", "version"}, code: exitUsage, stderr: []string{`flag --log.level: log.level: invalid value "loud"`}},
		{name: "bad env value", args: []string{"version"}, env: map[string]string{"UPID_LOG_FORMAT": "xml"}, code: exitUsage, stderr: []string{`env UPID_LOG_FORMAT: log.format`}},
		{name: "bad config file", args: []string{"--config", bad, "version"}, code: exitUsage, stderr: []string{bad + ":2"}},
		{name: "defaults", args: []string{"config", "defaults"}, code: exitOK, stdout: []string{"log:", "level: info"}},
		{
			name: "backtest json", args: []string{"backtest", "--data", traces, "-o", "json"},
			code: exitOK, stdout: []string{`"rightsizing"`, `"forecasting"`, `"vpa"`, `"krr"`, `"upid"`, `"resource": "memory"`, `"train_days": 2`},
		},
		{name: "backtest table", args: []string{"backtest", "--data", traces}, code: exitOK, stdout: []string{
			"# Rightsizing (6 traces)", "# Forecasting: azure cpu (4 series, first held-out day after 14 days)", "seasonal_naive_1d", "\n52 forecasts scored",
			"# Forecasting: borg cpu (2 series, first held-out day after 2 days)", "# Forecasting: borg memory (2 series",
		}},
		{name: "backtest missing dir", args: []string{"backtest", "--data", filepath.Join(dir, "nope")}, code: exitUsage, stderr: []string{"nope"}},
		{name: "backtest empty dir", args: []string{"backtest", "--data", dir}, code: exitFailure, stderr: []string{"no traces"}},
		{
			name: "backtest unreachable prometheus", args: []string{"backtest", "--prometheus.url", "http://127.0.0.1:1", "--prometheus.timeout", "2s"},
			code: exitFailure, stderr: []string{"listing namespaces", "--prometheus.url http://127.0.0.1:1"},
		},
		{name: "backtest bad end", args: []string{"backtest", "--end", "yesterday"}, code: exitUsage, stderr: []string{`--end "yesterday"`}},
		{name: "backtest bad history", args: []string{"backtest", "--history", "-3d"}, code: exitUsage, stderr: []string{"--history"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
			for _, w := range tc.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout does not contain %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

// backtestData lays out the trace excerpts as `upid backtest` expects them:
// two Borg instances and four Azure VMs (28 days, so forecasts get scored;
// the excerpt has only averages, which stand in for maxima too).
func backtestData(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bt := filepath.Join("..", "..", "exporter", "backtest", "testdata")
	copyFile(filepath.Join(bt, "borg_113_81.csv"), "borg_113_81.csv")
	copyFile(filepath.Join(bt, "borg_382_22.csv"), "borg_382_22.csv")
	az := filepath.Join("..", "..", "exporter", "forecast", "testdata", "azure_v1_avg_cpu_5min_4vms.csv")
	copyFile(az, "azure_avg.csv")
	copyFile(az, "azure_max.csv")
	return dir
}

func TestDefaultsPassCheck(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"config", "defaults"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("config defaults: %d %s", code, stderr.String())
	}
	path := filepath.Join(t.TempDir(), "defaults.yaml")
	if err := os.WriteFile(path, stdout.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if code := run([]string{"config", "check", path}, &stdout, &stderr); code != exitOK {
		t.Errorf("config check of the defaults failed: %s", stderr.String())
	}
}

func TestDocsCommandMatchesGenerator(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"config", "docs"}, &stdout, &stderr); code != exitOK {
		t.Fatal(stderr.String())
	}
	if stdout.String() != config.Markdown() {
		t.Error("upid config docs differs from config.Markdown")
	}
}

const versionPkg = "github.com/prometheus/common/version"

var testLDFlags = strings.Join([]string{
	"-X " + versionPkg + ".Version=9.8.7",
	"-X " + versionPkg + ".Revision=abc123",
	"-X " + versionPkg + ".Branch=main",
	"-X " + versionPkg + ".BuildDate=20261125-12:00:00",
}, " ")

// TestBuildInfoFromLdflags checks that the version set by ldflags, as the
// Makefile sets it, reaches `upid version`.
func TestBuildInfoFromLdflags(t *testing.T) {
	bin := buildUpid(t)
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("upid version: %v\n%s", err, out)
	}
	for _, want := range []string{"version 9.8.7", "revision: abc123", "build date:       20261125-12:00:00"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("upid version output lacks %q:\n%s", want, out)
		}
	}
}

// TestBacktestForecastingIsEvaluate: the Azure forecasting scores of
// `upid backtest`, read from the traces in cores, equal forecast.Evaluate
// on the CSV's CPU percent (the scaled scores do not depend on units).
func TestBacktestForecastingIsEvaluate(t *testing.T) {
	traces := backtestData(t)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"backtest", "--data", traces, "-o", "json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("backtest: %d %s", code, stderr.String())
	}
	var out struct {
		Forecasting []struct {
			Source, Resource string
			Report           forecast.EvalReport
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(traces, "azure_avg.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	series, err := forecast.ReadAzure(f)
	if err != nil {
		t.Fatal(err)
	}
	want := forecast.Evaluate(series, forecast.EvalOptions{Max: 100})
	var got *forecast.EvalReport
	for _, g := range out.Forecasting {
		if g.Source == "azure" && g.Resource == "cpu" {
			got = &g.Report
		}
	}
	if got == nil || len(got.Methods) != len(want.Methods) || got.Forecasts != want.Forecasts {
		t.Fatalf("azure cpu forecasting %+v, want %+v", got, want)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	for i, m := range got.Methods {
		w := want.Methods[i]
		if m.Name != w.Name || !near(m.MASE, w.MASE) || !near(m.PinballP50, w.PinballP50) ||
			!near(m.PinballP90, w.PinballP90) || !near(m.CoverageP90, w.CoverageP90) {
			t.Errorf("%s: %+v, want %+v", m.Name, m, w)
		}
	}
}

// TestChartPortsAreTheDefaults: the Helm chart's container ports (and so
// its probes, Services and scrape jobs) are the ports each command listens
// on by default; the chart passes no --web.listen-address, so a default
// changed here alone would leave every probe failing in a cluster.
func TestChartPortsAreTheDefaults(t *testing.T) {
	for _, tc := range []struct{ file, port, address string }{
		{"exporter.yaml", "http-metrics", exporterDefaultAddress},
		{"_helpers.tpl", "http-metrics-wh", webhookDefaultAddress},
		{"scaler.yaml", "http", scalerDefaultAddress},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "helm", "upid", "templates", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			m := regexp.MustCompile(`\{name: `+regexp.QuoteMeta(tc.port)+`, containerPort: (\d+)`).FindAllStringSubmatch(string(b), -1)
			_, want, _ := strings.Cut(tc.address, ":")
			if len(m) != 1 || m[0][1] != want {
				t.Errorf("container port %s in %s: %v, want one, %s (%s)", tc.port, tc.file, m, want, tc.address)
			}
			values, err := os.ReadFile(filepath.Join("..", "..", "deploy", "helm", "upid", "values.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if set := regexp.MustCompile(`listen[-_]address`); set.Match(b) || set.Match(values) {
				t.Errorf("%s or values.yaml sets a listen address: the port is no longer the default's", tc.file)
			}
		})
	}
}
