package alerts

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/upid-dev/upid/internal/promqlcheck"
	"github.com/upid-dev/upid/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite alerts/upid-rules.yaml from the Go definitions")

const repoRoot = ".."

func recordedNames() []string {
	var names []string
	for _, r := range RecordingRules(Default()) {
		names = append(names, r.Record)
	}
	return names
}

// TestRuleFileFresh fails when the committed rule file differs from the Go
// definitions; `make generate` (or -update) rewrites it.
func TestRuleFileFresh(t *testing.T) {
	want, err := YAML(Default())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(repoRoot, File)
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run `make generate` (or go test ./alerts -run TestRuleFileFresh -update)", File)
	}
}

func TestPromtoolCheckRules(t *testing.T) {
	out, err := testenv.Promtool(t, "check", "rules", filepath.Join(repoRoot, File))
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	want := fmt.Sprintf("SUCCESS: %d rules found", len(RecordingRules(Default()))+len(Alerts(Default())))
	if !strings.Contains(out, want) {
		t.Errorf("promtool check rules: want %q in\n%s", want, out)
	}
}

func testFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("tests/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool tests in alerts/tests: %v", err)
	}
	return files
}

// TestPromtoolTestRules runs the promtool unit tests in alerts/tests.
func TestPromtoolTestRules(t *testing.T) {
	args := append([]string{"test", "rules"}, testFiles(t)...)
	out, err := testenv.Promtool(t, args...)
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	if strings.Contains(out, "FAILED") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// promtoolTests is the part of promtool's test file format read here.
type promtoolTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		AlertRuleTests []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromqlExprTests []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

// TestEveryRuleIsTested requires a firing and a not-firing case for every
// alert and an expression test for every recording rule, so a new rule
// cannot ship untested.
func TestEveryRuleIsTested(t *testing.T) {
	firing, quiet, exprs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, f := range testFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var pt promtoolTests
		if err := yaml.Unmarshal(b, &pt); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !slices.Equal(pt.RuleFiles, []string{"../upid-rules.yaml"}) {
			t.Errorf("%s: rule_files = %v, want the committed file only", f, pt.RuleFiles)
		}
		for _, tc := range pt.Tests {
			for _, a := range tc.AlertRuleTests {
				if len(a.ExpAlerts) > 0 {
					firing[a.Alertname] = true
				} else {
					quiet[a.Alertname] = true
				}
			}
			for _, e := range tc.PromqlExprTests {
				exprs[strings.TrimSpace(e.Expr)] = true
			}
		}
	}
	for _, a := range Alerts(Default()) {
		if !firing[a.Alert] {
			t.Errorf("%s has no firing case in alerts/tests", a.Alert)
		}
		if !quiet[a.Alert] {
			t.Errorf("%s has no not-firing case in alerts/tests", a.Alert)
		}
	}
	for _, r := range RecordingRules(Default()) {
		if !exprs[r.Record] {
			t.Errorf("recording rule %s has no promql_expr_test in alerts/tests", r.Record)
		}
	}
}

// TestRulesUseKnownMetrics parses every expression with Prometheus's parser
// and checks each metric against docs/metrics.md and the allow-lists.
func TestRulesUseKnownMetrics(t *testing.T) {
	c, err := promqlcheck.NewChecker(filepath.Join(repoRoot, "docs/metrics.md"), recordedNames())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range Groups(Default()).Groups {
		for _, r := range g.Rules {
			if _, err := c.Check(r.Expr); err != nil {
				t.Errorf("%s%s: %v", r.Alert, r.Record, err)
			}
		}
	}
}

// TestAlertMetadata checks what every alert must carry and that its runbook exists.
func TestAlertMetadata(t *testing.T) {
	severities := []string{"info", "warning", "critical"}
	seen := map[string]bool{}
	for _, a := range Alerts(Default()) {
		if seen[a.Alert] {
			t.Errorf("%s defined twice", a.Alert)
		}
		seen[a.Alert] = true
		if !slices.Contains(severities, a.Severity()) {
			t.Errorf("%s: severity %q, want one of %v", a.Alert, a.Severity(), severities)
		}
		for _, k := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(a.Annotations[k]) == "" {
				t.Errorf("%s: missing annotation %s", a.Alert, k)
			}
		}
		if a.Meaning == "" {
			t.Errorf("%s: no Meaning for the docs", a.Alert)
		}
		rb := "docs/runbooks/" + a.Alert + ".md"
		if want := Default().RunbookBaseURL + a.Alert + ".md"; a.Annotations["runbook_url"] != want || !strings.HasSuffix(want, rb) {
			t.Errorf("%s: runbook_url %q, want %q", a.Alert, a.Annotations["runbook_url"], want)
		}
		b, err := os.ReadFile(filepath.Join(repoRoot, rb))
		if err != nil {
			t.Errorf("%s: runbook: %v", a.Alert, err)
			continue
		}
		if !strings.HasPrefix(string(b), "# "+a.Alert+"\n") {
			t.Errorf("%s: the runbook must start with the heading # %s", rb, a.Alert)
		}
	}
	// Every runbook belongs to an alert.
	runbooks, _ := filepath.Glob(filepath.Join(repoRoot, "docs/runbooks/*.md"))
	for _, rb := range runbooks {
		name := strings.TrimSuffix(filepath.Base(rb), ".md")
		if name != "README" && !seen[name] {
			t.Errorf("%s documents no alert", rb)
		}
	}
}

// TestScalerContract reads the committed file the way the scaler's tests do
// and checks the two alerts the scaler acts on.
func TestScalerContract(t *testing.T) {
	groups, errs := rulefmt.ParseFile(filepath.Join(repoRoot, File), false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("rulefmt: %v", errs)
	}
	byName := map[string]rulefmt.Rule{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				byName[r.Alert] = r
			}
		}
	}
	idle, ok := byName[WorkloadIdle]
	if !ok {
		t.Fatalf("%s missing", WorkloadIdle)
	}
	if d := time.Duration(idle.For); d < time.Hour || d > 12*time.Hour {
		t.Errorf("%s for: %s, want a few hours", WorkloadIdle, d)
	}
	if idle.Annotations["dollars_per_hour"] == "" {
		t.Errorf("%s: no dollars_per_hour annotation", WorkloadIdle)
	}
	for _, name := range []string{WorkloadIdle, SleepingWorkloadRequested} {
		r, ok := byName[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if r.Labels["severity"] == "" {
			t.Errorf("%s: no severity label", name)
		}
	}
}

// TestSelectorsReachEveryRule: the exporter's and scaler's selectors are
// the only way rules find their targets; none keeps the default's job name
// when they are changed (found in review: UPIDExporterDataStale and
// UPIDExporterDown kept job="upid-exporter").
func TestSelectorsReachEveryRule(t *testing.T) {
	o := Default()
	o.ExporterSelector, o.ScalerSelector = `job="costs"`, `job="sleeper"`
	for _, a := range Alerts(o) {
		for _, def := range []string{`job="upid-exporter"`, `job="upid-scaler"`, `"upid-exporter"`, `"upid-scaler"`} {
			if strings.Contains(a.Expr, def) {
				t.Errorf("%s keeps %s with other selectors:\n%s", a.Alert, def, a.Expr)
			}
		}
	}
}
