package dashboards

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upid-dev/upid/alerts"
	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/exporter/demo"
	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/promqlcheck"
	"github.com/upid-dev/upid/internal/series"
	"github.com/upid-dev/upid/internal/testenv"
	"github.com/upid-dev/upid/internal/web"
)

// notRunningHere are the metrics of parts that do not run in
// TestQueriesAgainstPrometheus, with the reason. A query or recording rule
// that reads one of them is exempt from returning data; nothing else is.
var notRunningHere = map[string]string{
	"nginx_ingress_controller_requests": "the demo cluster has no ingress-nginx",
	"istio_requests_total":              "the demo cluster has no Istio",
	alerts.ServiceRequestRate:           "reads only ingress-nginx and Istio traffic, which the demo does not have",
	// The memory pair is read back from a real Prometheus in exporter/
	// (TestPolicyFromAnnotations).
	"upid_container_hpa_paired_memory_request_bytes": "the demo's only HPA scales on CPU",
}

// notRunningPrefixes are the parts whose every metric is absent in that test.
var notRunningPrefixes = map[string]string{
	"upid_scaler_":  "the scaler does not run in this test (its metrics are checked in scaler/)",
	"upid_webhook_": "the webhook does not run in this test (its metrics are checked in webhook/)",
}

func exemption(expr string) string {
	names, err := promqlcheck.Metrics(expr)
	if err != nil {
		return ""
	}
	for _, n := range names {
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suf); ok {
				if _, known := notRunningHere[b]; known {
					base = b
				}
			}
		}
		if why, ok := notRunningHere[base]; ok {
			return base + ": " + why
		}
		for prefix, why := range notRunningPrefixes {
			if strings.HasPrefix(base, prefix) {
				return base + ": " + why
			}
		}
	}
	return ""
}

// testValues are what the variables are set to: "All" everywhere.
var testValues = map[string]string{
	"cluster": ".*", "namespace": ".*", "workload": ".*",
	"team_label": "label_team", "horizon": "30d",
	"__rate_interval": "5m", "__interval": "1m", "__range": "1h",
}

var grafanaVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

func expand(t *testing.T, expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		name := strings.Trim(m, "${}")
		v, ok := testValues[name]
		if !ok {
			t.Errorf("no test value for variable %s in %s", m, expr)
		}
		return v
	})
}

// demoHistory reads the last stretch of the demo's series (cAdvisor,
// kube-state-metrics, kubelet, OpenCost, applications) through its PromQL
// engine, raw samples and all, for loading into a real Prometheus.
func demoHistory(t *testing.T, d *demo.Demo, span time.Duration) []series.Series {
	t.Helper()
	v, _, _, err := d.Querier.Query(context.Background(), fmt.Sprintf(`{__name__=~".+"}[%s]`, model.Duration(span)), d.Now)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := v.(model.Matrix)
	if !ok || len(m) == 0 {
		t.Fatalf("demo history: got %T with no series", v)
	}
	out := make([]series.Series, 0, len(m))
	for _, ss := range m {
		s := series.Series{Name: string(ss.Metric[model.MetricNameLabel]), Type: series.TypeGauge, Labels: map[string]string{}}
		for k, v := range ss.Metric {
			if k != model.MetricNameLabel {
				s.Labels[string(k)] = string(v)
			}
		}
		for _, p := range ss.Values {
			s.Samples = append(s.Samples, series.Sample{T: p.Timestamp.Time(), V: float64(p.Value)})
		}
		out = append(out, s)
	}
	return out
}

// rulesWithShortIdleFor copies the committed rule file with the idle alert's
// `for` removed, so that it fires as soon as the exporter is scraped.
func rulesWithShortIdleFor(t *testing.T) string {
	t.Helper()
	groups, errs := rulefmt.ParseFile(filepath.Join("..", alerts.File), false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	found := false
	for gi := range groups.Groups {
		for ri, r := range groups.Groups[gi].Rules {
			if r.Alert == alerts.WorkloadIdle {
				groups.Groups[gi].Rules[ri].For = 0
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("%s not in %s", alerts.WorkloadIdle, alerts.File)
	}
	b, err := yaml.Marshal(groups)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "upid-rules.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestQueriesAgainstPrometheus runs the demo exporter in-process, serves its
// metrics, loads the demo's cAdvisor and kube-state-metrics series into a real
// Prometheus that scrapes the exporter and evaluates the committed rules, and
// requires every dashboard query and recording rule to return data, and the
// idle alert to fire for exactly the demo's confidently idle workloads.
func TestQueriesAgainstPrometheus(t *testing.T) {
	// The history must end in the past: Prometheus refuses to load the future.
	now := time.Now().Add(-time.Minute).Truncate(time.Minute)
	cfg := config.Default()
	// A cluster label on the exporter's series but not on cAdvisor's is the
	// usual layout; the joins must survive it.
	cfg.Exporter.Cluster = "demo"
	cfg.Exporter.NamespaceLabels = []string{"team"}
	d, err := demo.New(now, time.Duration(cfg.Exporter.Window))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	svc, err := exporter.New(exporter.Options{
		Exporter: cfg.Exporter, Prometheus: cfg.Prometheus,
		Kube: fake.NewClientset(d.Objects...), Querier: d.Querier,
		Now:    func() time.Time { return now },
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Shutdown()
	if err := svc.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.Forecast(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := newExporterServer(svc)
	if err != nil {
		t.Fatal(err)
	}
	// Two replicas, as the sidecar suite runs: every series twice, under
	// two instances. Rules and panels must count each dollar once.
	var replicas []string
	for range 2 {
		ts := httptest.NewServer(srv)
		defer ts.Close()
		u, _ := url.Parse(ts.URL)
		replicas = append(replicas, u.Host)
	}

	p := testenv.StartPrometheus(t, testenv.PrometheusOptions{
		Series:        demoHistory(t, d, 70*time.Minute),
		ScrapeConfigs: []testenv.ScrapeTarget{{Job: "upid-exporter", Targets: replicas}},
		RuleFiles:     []string{rulesWithShortIdleFor(t)},
	})
	// Two scrapes, so that increase() over the exporter's counters has data,
	// and the recording rules evaluated after them.
	p.WaitForQuery(t, `count_over_time(upid_exporter_cycles_total[1m]) >= 2`, 60*time.Second, nil)
	p.WaitForQuery(t, alerts.ClusterCost, 30*time.Second, nil)

	t.Run("recording rules", func(t *testing.T) {
		for _, r := range alerts.RecordingRules(alerts.Default()) {
			if why := exemption(r.Expr); why != "" {
				t.Logf("exempt %s (%s)", r.Record, why)
				continue
			}
			if v := p.Query(t, r.Record, time.Time{}); len(v) == 0 {
				t.Errorf("recording rule %s returns no data", r.Record)
			}
		}
	})

	// The recorded dollars must be the exporter's own totals, not merely exist.
	t.Run("recorded dollars match the exporter", func(t *testing.T) {
		var cost, waste, idle, savings float64
		for _, w := range svc.Last().Workloads {
			cost += w.Cost.Total
			for _, x := range []*float64{w.Waste.CPU, w.Waste.Memory} {
				if x != nil {
					waste += *x
				}
			}
			if w.Idle.Confidence >= alerts.Default().IdleConfidence {
				idle += w.IdleCostPerHr
			}
			for _, c := range w.Containers {
				if r := c.Recommendation; r != nil && r.OK && r.Apply {
					savings += r.SavingsDollarsPerHour
				}
			}
		}
		for _, tc := range []struct {
			record string
			want   float64
		}{
			{alerts.ClusterCost, cost}, {alerts.ClusterWaste, waste},
			{alerts.ClusterIdleCost, idle}, {alerts.ClusterSavings, savings},
		} {
			v := p.Query(t, tc.record+`{cluster="demo"}`, time.Time{})
			if len(v) != 1 {
				t.Errorf("%s: %d series, want 1", tc.record, len(v))
				continue
			}
			got := float64(v[0].Value)
			t.Logf("%s = %.6f $/h", tc.record, got)
			if math.Abs(got-tc.want) > 1e-9*math.Max(1, math.Abs(tc.want)) {
				t.Errorf("%s = %v, the exporter's results sum to %v", tc.record, got, tc.want)
			}
			if tc.want == 0 {
				t.Errorf("%s: the demo should have some, the check is vacuous", tc.record)
			}
		}
	})

	// Every panel answers with all clusters, and with the exporter's own
	// cluster chosen (its self metrics carry it too).
	for _, cluster := range []string{".*", "demo"} {
		t.Run("dashboard queries, cluster "+cluster, func(t *testing.T) {
			testValues["cluster"] = cluster
			defer func() { testValues["cluster"] = ".*" }()
			checked, exempt := 0, 0
			for _, dash := range All() {
				for _, q := range queriesOf(t, dash) {
					expr := expand(t, q.Expr)
					v, _, _, err := p.API.Query(ctx, expr, time.Now())
					if err != nil {
						t.Errorf("%s: %v\n%s", q, err, expr)
						continue
					}
					n := 0
					switch v := v.(type) {
					case model.Vector:
						n = len(v)
					case *model.Scalar:
						n = 1
					}
					if why := exemption(q.Expr); why != "" {
						exempt++
						t.Logf("exempt %s (%s): %d series", q, why, n)
						continue
					}
					checked++
					if n == 0 {
						t.Errorf("%s returns no data:\n%s", q, expr)
					}
					// Grafana runs panel queries over a range: joins must hold at
					// every step of the loaded hour, not only now.
					if q.Variable == "" {
						end := time.Now()
						if _, _, _, err := p.API.QueryRange(ctx, expr, v1.Range{Start: end.Add(-time.Hour), End: end, Step: time.Minute}); err != nil {
							t.Errorf("%s over the last hour: %v\n%s", q, err, expr)
						}
					}
				}
			}
			t.Logf("%d queries returned data, %d exempt", checked, exempt)
		})
	}

	// Each panel over the exporter's results answers with two replicas what
	// it answers with one: the other replica's series are left out by a
	// matcher on every selector, and the answers must agree. The exporter's,
	// webhook's and scaler's own metrics count each process and may add up.
	t.Run("a second exporter replica changes no panel", func(t *testing.T) {
		ms, err := history.ParseSelector(fmt.Sprintf(`{instance!=%q}`, replicas[1]))
		if err != nil {
			t.Fatal(err)
		}
		values := func(v model.Value) map[string]float64 {
			out := map[string]float64{}
			if vec, ok := v.(model.Vector); ok {
				for _, s := range vec {
					m := s.Metric.Clone()
					delete(m, "instance")
					out[m.String()] = float64(s.Value)
				}
			}
			return out
		}
		compared := 0
		for _, dash := range All() {
			for _, q := range queriesOf(t, dash) {
				if !regexp.MustCompile(`upid_(workload|container|namespace|node)_`).MatchString(q.Expr) || regexp.MustCompile(`upid_(exporter|webhook|scaler)_`).MatchString(q.Expr) {
					continue
				}
				expr := expand(t, q.Expr)
				one, err := history.AddMatchers(expr, ms)
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				at := time.Now()
				both, _, _, err1 := p.API.Query(ctx, expr, at)
				single, _, _, err2 := p.API.Query(ctx, one, at)
				if err1 != nil || err2 != nil {
					t.Errorf("%s: %v %v", q, err1, err2)
					continue
				}
				compared++
				b, o := values(both), values(single)
				for k, want := range o {
					if got, ok := b[k]; !ok || math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
						t.Errorf("%s: %s is %v with two replicas, %v with one\n%s", q, k, got, want, expr)
					}
				}
				if len(b) != len(o) {
					t.Errorf("%s: %d series with two replicas, %d with one", q, len(b), len(o))
				}
			}
		}
		t.Logf("%d panel queries compared", compared)
	})

	t.Run("idle alert", func(t *testing.T) {
		var want []string
		for _, c := range d.Cases {
			if c.Expect == demo.ExpectIdle && !c.LowConfidence {
				want = append(want, c.Namespace+"/"+c.Kind+"/"+c.Name)
			}
		}
		sort.Strings(want)
		if len(want) == 0 {
			t.Fatal("the demo has no confidently idle workload to alert on")
		}
		query := fmt.Sprintf(`ALERTS{alertname=%q, alertstate="firing"}`, alerts.WorkloadIdle)
		p.WaitForQuery(t, query, 30*time.Second, func(v model.Vector) bool { return len(v) >= len(want) })
		// One more evaluation, so that a workload that should not fire has had its chance.
		time.Sleep(2 * time.Second)
		var got []string
		for _, s := range p.Query(t, query, time.Time{}) {
			got = append(got, fmt.Sprintf("%s/%s/%s", s.Metric["namespace"], s.Metric["kind"], s.Metric["workload"]))
			if s.Metric["cluster"] != "demo" || s.Metric["severity"] == "" {
				t.Errorf("alert labels %v lack cluster=demo or severity", s.Metric)
			}
		}
		sort.Strings(got)
		t.Logf("%s fires for %v", alerts.WorkloadIdle, got)
		if !slices.Equal(got, want) {
			t.Errorf("%s fires for %v, want exactly the confidently idle demo workloads %v", alerts.WorkloadIdle, got, want)
		}
		for _, c := range d.Cases {
			if c.Expect == demo.ExpectActive && slices.Contains(got, c.Namespace+"/"+c.Kind+"/"+c.Name) {
				t.Errorf("busy workload %s/%s fires", c.Namespace, c.Name)
			}
		}

		res, err := p.API.Alerts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range res.Alerts {
			if string(a.Labels["alertname"]) != alerts.WorkloadIdle || a.State != "firing" {
				continue
			}
			dph, err := strconv.ParseFloat(string(a.Annotations["dollars_per_hour"]), 64)
			if err != nil || dph <= 0 {
				t.Errorf("%v: dollars_per_hour %q is not a positive number", a.Labels, a.Annotations["dollars_per_hour"])
			}
			if !strings.HasSuffix(string(a.Annotations["runbook_url"]), "docs/runbooks/UPIDWorkloadIdle.md") {
				t.Errorf("%v: runbook_url %q", a.Labels, a.Annotations["runbook_url"])
			}
		}
	})
}

// newExporterServer serves the exporter's metrics as `upid exporter` does:
// internal/web's registry (upid_build_info, Go, process) plus the service's
// collectors.
func newExporterServer(svc *exporter.Service) (http.Handler, error) {
	srv, err := web.New(web.Options{Component: "exporter", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	srv.Registry.MustRegister(svc.Collector())
	return srv.Mux, nil
}
