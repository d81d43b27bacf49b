package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/upid-dev/upid/exporter/demo"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenNow pins the demo's clock: its history follows the time of day, and
// every number printed follows its history.
var goldenNow = time.Date(2026, 11, 2, 14, 0, 0, 0, time.UTC)

// pinDemo pins the clock and shares one demo cluster between the commands
// of a test: building its history is the slow part, and it is read-only.
// Every command still runs the exporter's New, Start, Cycle and Forecast.
func pinDemo(t *testing.T) {
	t.Helper()
	var (
		once   sync.Once
		shared *demo.Demo
		err    error
	)
	prevClock, prevDemo := clock, newDemo
	clock = func() time.Time { return goldenNow }
	newDemo = func(now time.Time, window time.Duration) (*demo.Demo, io.Closer, error) {
		once.Do(func() { shared, err = demo.New(now, window) })
		if err == nil && (!shared.Now.Equal(now) || shared.Window != window) {
			t.Fatalf("shared demo built for %s/%s, asked for %s/%s", shared.Now, shared.Window, now, window)
		}
		return shared, io.NopCloser(nil), err
	}
	t.Cleanup(func() {
		clock, newDemo = prevClock, prevDemo
		if shared != nil {
			shared.Close()
		}
	})
}

type cliCase struct {
	name   string
	args   []string
	stdin  string
	code   int
	golden string // testdata/<golden>.golden; empty: no golden
	stdout []string
	stderr []string
	check  func(t *testing.T, stdout []byte)
}

func runCase(t *testing.T, tc cliCase) {
	t.Helper()
	if tc.stdin != "" {
		prev := stdinReader
		stdinReader = strings.NewReader(tc.stdin)
		defer func() { stdinReader = prev }()
	}
	var stdout, stderr bytes.Buffer
	code := run(tc.args, &stdout, &stderr)
	if code != tc.code {
		t.Errorf("exit code = %d, want %d\nstderr: %s", code, tc.code, stderr.String())
	}
	for _, w := range tc.stdout {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
		}
	}
	for _, w := range tc.stderr {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
		}
	}
	if strings.Contains(stdout.String(), "\x1b[") {
		t.Error("colour escape codes in output that is not a terminal")
	}
	if tc.check != nil {
		tc.check(t, stdout.Bytes())
	}
	if tc.golden == "" {
		return
	}
	path := filepath.Join("testdata", tc.golden+".golden")
	if *update {
		if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with -update)", err)
	}
	if !bytes.Equal(stdout.Bytes(), want) {
		t.Errorf("stdout differs from %s (refresh with -update):\n%s", path, stdout.String())
	}
}

func validJSON(t *testing.T, out []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Errorf("not JSON: %v", err)
	}
}

func validYAML(t *testing.T, out []byte) {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(out, &v); err != nil || v == nil {
		t.Errorf("not YAML (%v): %v", v, err)
	}
}

// validCSV checks that every record has the header's width.
func validCSV(t *testing.T, out []byte) {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(out))
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v", err)
	}
	if len(recs) < 2 {
		t.Errorf("CSV has %d records, want a header and rows", len(recs))
	}
}

// TestAnalyzeGolden runs `upid analyze --demo` in every format.
func TestAnalyzeGolden(t *testing.T) {
	pinDemo(t)
	for _, tc := range []cliCase{
		{name: "table", args: []string{"analyze", "--demo"}, golden: "analyze", stdout: []string{"Cluster summary (all namespaces", "legacy-coupons", "100%", "30-day forecast"}},
		{name: "wide", args: []string{"analyze", "--demo", "-o", "wide"}, golden: "analyze-wide", stdout: []string{"IDLE SINCE", "REASONS"}},
		{name: "json", args: []string{"analyze", "--demo", "-o", "json"}, golden: "analyze-json", check: func(t *testing.T, out []byte) {
			var a struct {
				Summary struct {
					Workloads     int     `json:"workloads"`
					IdleWorkloads int     `json:"idle_workloads"`
					MonthlyCost   float64 `json:"monthly_cost_dollars"`
					MonthlyIdle   float64 `json:"monthly_idle_dollars"`
				}
				Idle []struct {
					Name        string   `json:"workload"`
					HealthShare *float64 `json:"health_share"`
				}
				Forecast struct {
					Workloads int     `json:"workloads"`
					P50       float64 `json:"monthly_cost_p50_dollars"`
				}
			}
			if err := json.Unmarshal(out, &a); err != nil {
				t.Fatal(err)
			}
			// The demo's cases: three idle behind health checks only, and
			// one idle without request metrics at low confidence.
			if a.Summary.IdleWorkloads != 4 || len(a.Idle) != 4 {
				t.Errorf("idle workloads = %d (%d rows), want 4", a.Summary.IdleWorkloads, len(a.Idle))
			}
			if a.Summary.MonthlyIdle <= 0 || a.Summary.MonthlyIdle >= a.Summary.MonthlyCost {
				t.Errorf("idle spend %v not within (0, cost %v)", a.Summary.MonthlyIdle, a.Summary.MonthlyCost)
			}
			shares := map[string]bool{}
			for _, r := range a.Idle {
				if r.HealthShare != nil && *r.HealthShare == 1 {
					shares[r.Name] = true
				}
			}
			for _, n := range []string{"legacy-coupons", "promo-banner", "campaign-archive"} {
				if !shares[n] {
					t.Errorf("%s: want a 100%% health-check share", n)
				}
			}
			if a.Forecast.Workloads == 0 || a.Forecast.P50 <= 0 {
				t.Errorf("forecast = %+v, want forecasts from the demo's week of history", a.Forecast)
			}
		}},
		{name: "yaml", args: []string{"analyze", "--demo", "-o", "yaml"}, golden: "analyze-yaml", check: validYAML},
		{name: "csv", args: []string{"analyze", "--demo", "-o", "csv"}, golden: "analyze-csv", check: validCSV},
		{name: "markdown", args: []string{"analyze", "--demo", "-o", "markdown"}, golden: "analyze-markdown", stdout: []string{"# UPID analysis", "| NAMESPACE |"}},
		{name: "namespace", args: []string{"analyze", "--demo", "-n", "shop", "--top", "2"}, golden: "analyze-shop", check: func(t *testing.T, out []byte) {
			for _, other := range []string{"analytics", "marketing", "tools "} {
				if strings.Contains(string(out), other) {
					t.Errorf("-n shop shows %q", other)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { runCase(t, tc) })
	}
}

// TestRecommendGolden runs `upid recommend --demo` in every format.
func TestRecommendGolden(t *testing.T) {
	pinDemo(t)
	for _, tc := range []cliCase{
		{name: "table", args: []string{"recommend", "--demo"}, golden: "recommend", stdout: []string{"report-builder", "APPLY"}},
		{name: "wide", args: []string{"recommend", "--demo", "-o", "wide"}, golden: "recommend-wide", stdout: []string{"short_history"}},
		{name: "json", args: []string{"recommend", "--demo", "-o", "json"}, golden: "recommend-json", check: validJSON},
		{name: "yaml", args: []string{"recommend", "--demo", "-o", "yaml"}, golden: "recommend-yaml", check: validYAML},
		{name: "csv", args: []string{"recommend", "--demo", "-o", "csv"}, golden: "recommend-csv", check: validCSV},
		{name: "markdown", args: []string{"recommend", "--demo", "-o", "markdown"}, golden: "recommend-markdown"},
	} {
		t.Run(tc.name, func(t *testing.T) { runCase(t, tc) })
	}
}

// TestRecommendOutputs covers -o patch and commands and the workload argument.
func TestRecommendOutputs(t *testing.T) {
	pinDemo(t)
	for _, tc := range []cliCase{
		{name: "patch", args: []string{"recommend", "--demo", "-o", "patch"}, golden: "recommend-patch", check: func(t *testing.T, out []byte) {
			if n := checkPatches(t, out); n < 3 {
				t.Errorf("%d patches, want one per workload worth rightsizing", n)
			}
		}},
		{name: "commands", args: []string{"recommend", "--demo", "-o", "commands"}, golden: "recommend-commands", stdout: []string{`kubectl patch deployment/email-worker -n shop --type=strategic -p '{"spec":{"template":{"spec":{"containers":[{"name":"worker","resources":{"limits":{"cpu":null,`,
			// checkout's HPA on 70 % CPU moves with its paired CPU request.
			`kubectl patch hpa checkout -n shop --type=json -p '[{"op":"test","path":"/spec/metrics/0/resource/target/averageUtilization","value":70},{"op":"replace"`,
			`kubectl patch deployment/checkout -n shop --type=strategic -p '{"spec":{"template":{"spec":{"containers":[{"name":"checkout","resources":{"limits":{"memory":`}},
		{name: "one workload", args: []string{"recommend", "--demo", "shop/deploy/checkout", "-o", "json"}, golden: "recommend-checkout", check: func(t *testing.T, out []byte) {
			var recs []recommendation
			if err := json.Unmarshal(out, &recs); err != nil {
				t.Fatal(err)
			}
			// checkout's HPA scales on CPU utilization: its CPU request stays.
			if len(recs) != 1 || recs[0].Name != "checkout" || recs[0].Container != "checkout" || !recs[0].OK ||
				recs[0].CPURequestCores != nil || recs[0].MemoryRequestBytes == nil || !slices.Contains(recs[0].Reasons, "hpa_cpu_utilization") {
				t.Errorf("got %+v, want checkout's one container, sized on memory only", recs)
			}
			// Its CPU gets a request paired with the HPA's new target instead.
			if len(recs) == 1 && (len(recs[0].HPAPairs) != 1 || recs[0].HPAPairs[0].Resource != "cpu" || recs[0].HPAPairs[0].HPA != "checkout" ||
				recs[0].HPAPairs[0].Request <= 0 || recs[0].HPAPairs[0].TargetUtilization <= 0.7) {
				t.Errorf("checkout's HPA pairs %+v, want its CPU paired with a target above today's 70 %%", recs[0].HPAPairs)
			}
		}},
		{name: "kind/name with -n", args: []string{"recommend", "--demo", "-n", "analytics", "cronjob/usage-rollup"}, stdout: []string{"usage-rollup", "rollup"}},
	} {
		t.Run(tc.name, func(t *testing.T) { runCase(t, tc) })
	}
}

// checkPatches parses -o patch as kustomize would and checks each document
// names its object and carries only resources; it returns their count.
func checkPatches(t *testing.T, out []byte) int {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(out))
	n := 0
	for {
		var doc struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Metadata   struct{ Name, Namespace string }
			Spec       map[string]any
		}
		err := dec.Decode(&doc)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("patch %d: %v", n, err)
		}
		n++
		if doc.APIVersion == "" || doc.Kind == "" || doc.Metadata.Name == "" || doc.Metadata.Namespace == "" {
			t.Errorf("patch %d lacks its object's identity: %+v", n, doc)
		}
		// A CronJob's pod template is one level down, in its Job template.
		owner := doc.Spec
		if doc.Kind == "CronJob" {
			jt, _ := doc.Spec["jobTemplate"].(map[string]any)
			owner, _ = jt["spec"].(map[string]any)
		}
		tmpl, _ := owner["template"].(map[string]any)
		spec, _ := tmpl["spec"].(map[string]any)
		cs, _ := spec["containers"].([]any)
		if pr, ok := spec["resources"].(map[string]any); ok {
			// Pod-level requests (spec.resources), alone or with containers.
			if req, _ := pr["requests"].(map[string]any); len(req) == 0 || len(pr) != 1 {
				t.Errorf("patch %d (%s %s) pod-level resources %v: want requests only", n, doc.Kind, doc.Metadata.Name, pr)
			}
		} else if len(cs) == 0 {
			t.Errorf("patch %d (%s %s) has no pod template containers", n, doc.Kind, doc.Metadata.Name)
			continue
		}
		for _, c := range cs {
			m := c.(map[string]any)
			res, _ := m["resources"].(map[string]any)
			if m["name"] == nil || res["requests"] == nil || len(m) != 2 {
				t.Errorf("patch %d container %v: want only name and resources", n, m)
			}
		}
	}
	return n
}

// TestCheckGolden runs `upid check --demo` over a manifest that wastes,
// under-provisions, names a workload the cluster lacks and has a Service,
// against each threshold.
func TestCheckGolden(t *testing.T) {
	pinDemo(t)
	manifest := filepath.Join("testdata", "check-shop.yaml")
	for _, tc := range []cliCase{
		{name: "over --max-waste", args: []string{"check", "--demo", "-f", manifest, "--max-waste", "100"}, code: exitOverThreshold, golden: "check",
			stdout: []string{"shop/Deployment/email-worker", "over --max-waste $100.00", "Skipped testdata/check-shop.yaml:15: Service checkout", "not in the cluster"}},
		{name: "within both thresholds", args: []string{"check", "--demo", "-f", manifest, "--max-waste", "100000", "--max-waste-percent", "99"}, code: exitOK, stdout: []string{"within --max-waste $100,000.00, --max-waste-percent 99%"}},
		{name: "over --max-waste-percent", args: []string{"check", "--demo", "-f", manifest, "--max-waste-percent", "10"}, code: exitOverThreshold, stdout: []string{"over --max-waste-percent 10%"}},
		{name: "no threshold", args: []string{"check", "--demo", "-f", manifest}, code: exitOK, stdout: []string{"no threshold set"}},
	} {
		t.Run(tc.name, func(t *testing.T) { runCase(t, tc) })
	}
}

// TestCheckAllNamespaces: -A overrides -n, so a manifest without a namespace
// is in "default" again, as it is with neither flag.
func TestCheckAllNamespaces(t *testing.T) {
	pinDemo(t)
	manifest := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: email-worker}\nspec:\n  template:\n    spec:\n      containers:\n      - name: worker\n        resources: {requests: {cpu: \"2\", memory: 2Gi}}\n"
	for _, tc := range []cliCase{
		{name: "-n", args: []string{"check", "--demo", "-f", "-", "-n", "shop"}, stdin: manifest, code: exitOK, stdout: []string{"shop/Deployment/email-worker"}},
		{name: "-n -A", args: []string{"check", "--demo", "-f", "-", "-n", "shop", "-A"}, stdin: manifest, code: exitOK, stdout: []string{"default/Deployment/email-worker", "not in the cluster"}},
	} {
		t.Run(tc.name, func(t *testing.T) { runCase(t, tc) })
	}
}

// TestCheckFormats runs `upid check --demo` in every format.
func TestCheckFormats(t *testing.T) {
	pinDemo(t)
	manifest := filepath.Join("testdata", "check-shop.yaml")
	body, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []cliCase{
		{name: "stdin", args: []string{"check", "--demo", "-f", "-", "-o", "wide"}, stdin: string(body), golden: "check-wide", stdout: []string{"<stdin>:11"}},
		{name: "json", args: []string{"check", "--demo", "-f", manifest, "-o", "json", "--max-waste", "100"}, code: exitOverThreshold, golden: "check-json", check: func(t *testing.T, out []byte) {
			var r checkResult
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatal(err)
			}
			if !r.OverThreshold || len(r.Rows) != 6 || len(r.Skipped) != 1 {
				t.Errorf("got over=%v, %d rows, %d skipped; want over, 4 containers, ticket-search's container and pod, 1 Service", r.OverThreshold, len(r.Rows), len(r.Skipped))
			}
			for _, row := range r.Rows {
				if row.Name == "email-worker" && (row.MonthlyWaste <= 0 || row.Replicas != 3) {
					t.Errorf("email-worker = %+v, want waste at the manifest's 3 replicas", row)
				}
				if row.Name == "orders-db" && !row.UnderProvisions {
					t.Errorf("orders-db requests 250m CPU, below the recommendation; want it flagged: %+v", row)
				}
			}
		}},
		{name: "yaml", args: []string{"check", "--demo", "-f", manifest, "-o", "yaml"}, golden: "check-yaml", check: validYAML},
		{name: "csv", args: []string{"check", "--demo", "-f", manifest, "-o", "csv"}, golden: "check-csv", check: validCSV},
		{name: "markdown", args: []string{"check", "--demo", "-f", manifest, "-o", "markdown"}, golden: "check-markdown", stdout: []string{"| FILE:LINE |", "**Waste:"}},
		{name: "namespace from -n", args: []string{"check", "--demo", "-n", "shop", "-f", "-", "-o", "csv"}, stdin: "kind: Deployment\nmetadata: {name: checkout}\nspec: {template: {spec: {containers: [{name: checkout, resources: {requests: {cpu: '4', memory: 4Gi}}}]}}}\n",
			stdout: []string{"<stdin>,3,shop,Deployment,checkout,checkout,4.000,"}},
	} {
		t.Run(tc.name, func(t *testing.T) { runCase(t, tc) })
	}
}

// TestReportGolden runs `upid report --demo` in its three formats. The demo
// has no scaler or webhook metrics: both must say "not measured".
func TestReportGolden(t *testing.T) {
	pinDemo(t)
	for _, tc := range []cliCase{
		{name: "markdown", args: []string{"report", "--demo"}, golden: "report-markdown", stdout: []string{"Savings available", "Scaler: not measured", "Webhook: not measured", "## By team", "| storefront |"}},
		{name: "html", args: []string{"report", "--demo", "-o", "html"}, golden: "report-html", stdout: []string{"<!DOCTYPE html>", "<td>storefront</td>", "Scaler: not measured"}},
		{name: "json", args: []string{"report", "--demo", "-o", "json"}, golden: "report-json", check: func(t *testing.T, out []byte) {
			var r report
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatal(err)
			}
			if r.Realised.ScalerMonthly != nil || r.Realised.WebhookMutated != nil || r.Realised.ScalerNote != notMeasured || r.Realised.WebhookNote != notMeasured {
				t.Errorf("realised = %+v, want not measured", r.Realised)
			}
			// The demo's checkout pairs its CPU request with its HPA's target.
			if r.Savings.MonthlyTotal != r.Savings.MonthlyIdle+r.Savings.MonthlyRightsizing+r.Savings.MonthlyHPAPairs || r.Savings.MonthlyTotal <= 0 ||
				r.Savings.MonthlyHPAPairs <= 0 || r.Savings.HPAPairWorkloads != 1 {
				t.Errorf("savings = %+v", r.Savings)
			}
			var sum float64
			for _, g := range r.Namespaces {
				sum += g.MonthlySavings
			}
			if d := sum - r.Savings.MonthlyTotal; d > 0.01 || d < -0.01 {
				t.Errorf("namespaces' savings sum to %v, the total is %v", sum, r.Savings.MonthlyTotal)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { runCase(t, tc) })
	}
}

// TestCLIBadInput: every mistake is one clear line and its exit code,
// before any cluster is contacted.
func TestCLIBadInput(t *testing.T) {
	pinDemo(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("kind: Deployment\nmetadata:\n  name: a\nspec:\n  replicas: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badQty := filepath.Join(dir, "qty.yaml")
	if err := os.WriteFile(badQty, []byte("kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    resources: {requests: {cpu: lots}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Nothing listens here: a command that got past its input checks would
	// fail with exit 1, not the 2 these cases want.
	unreachable := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(unreachable, []byte("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\ncontexts: [{name: c, context: {cluster: c}}]\ncurrent-context: c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kc := []string{"--kubeconfig", unreachable}
	for _, tc := range []cliCase{
		{name: "unknown kind", args: []string{"recommend", "--demo", "shop/Frobnicator/x"}, code: exitFailure, stderr: []string{`upid recommend: shop/Frobnicator/x not found in the cluster (kinds: Deployment,`}},
		{name: "kind/name without -n", args: append([]string{"recommend", "deploy/x"}, kc...), code: exitUsage, stderr: []string{`"deploy/x": want NAMESPACE/KIND/NAME, or KIND/NAME with -n`}},
		{name: "kind/name under -A", args: append([]string{"recommend", "-n", "shop", "-A", "deploy/x"}, kc...), code: exitUsage, stderr: []string{`"deploy/x": want NAMESPACE/KIND/NAME, or KIND/NAME with -n and without -A`}},
		{name: "too many parts", args: append([]string{"recommend", "a/b/c/d"}, kc...), code: exitUsage, stderr: []string{"want NAMESPACE/KIND/NAME"}},
		{name: "workload not found", args: []string{"recommend", "--demo", "shop/deploy/nope"}, code: exitFailure, stderr: []string{"upid recommend: shop/Deployment/nope not found in the cluster"}},
		{name: "malformed yaml", args: append([]string{"check", "-f", bad}, kc...), code: exitUsage, stderr: []string{bad + ":5: "}},
		{name: "bad quantity", args: append([]string{"check", "-f", badQty}, kc...), code: exitUsage, stderr: []string{badQty + `:6: Pod p: container c: resources.requests.cpu: "lots" is not a quantity`}},
		{name: "missing file", args: append([]string{"check", "-f", filepath.Join(dir, "nope.yaml")}, kc...), code: exitUsage, stderr: []string{"nope.yaml: no such file or directory"}},
		{name: "no -f", args: append([]string{"check"}, kc...), code: exitUsage, stderr: []string{"upid check: no manifests"}},
		{name: "negative threshold", args: append([]string{"check", "-f", badQty, "--max-waste=-1"}, kc...), code: exitUsage, stderr: []string{"thresholds must be 0 or more"}},
		{name: "bad output format", args: []string{"analyze", "-o", "xml"}, code: exitUsage, stderr: []string{"xml"}},
		{name: "unreachable kubernetes", args: append([]string{"analyze"}, kc...), code: exitFailure, stderr: []string{"upid analyze: cannot reach Kubernetes (--kubeconfig, --context):"}},
		{name: "status: unreachable kubernetes", args: append([]string{"status"}, kc...), code: exitFailure, stderr: []string{"upid status: cannot reach Kubernetes (--kubeconfig, --context):"}},
		{name: "wake: unreachable kubernetes", args: append([]string{"wake", "shop/deploy/web"}, kc...), code: exitFailure, stderr: []string{"upid wake: cannot reach Kubernetes (--kubeconfig, --context):"}},
		{name: "no kubeconfig at all", args: []string{"status", "--kubeconfig", filepath.Join(dir, "absent")}, code: exitUsage, stderr: []string{"upid status: kubernetes (--kubeconfig, --context): stat "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runCase(t, tc)
		})
	}
}
