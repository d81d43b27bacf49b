package testenv

import (
	"errors"
	"fmt"
	"github.com/upid-dev/upid/internal/series"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// procFatalTB lets a test observe what a helper passes to t.Fatalf. Everything else goes to
// the real test, so cleanups registered by the helper still run.
type procFatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *procFatalTB) Helper() {}

func (f *procFatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *procFatalTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }
func (f *procFatalTB) FailNow()          { f.Fatalf("FailNow") }

// procFatalMessage runs fn and returns the message it failed with, or "" if it did not fail.
func procFatalMessage(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	rec := &procFatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(rec)
	}()
	<-done
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.msg
}

func TestPrometheusAndAlertmanagerMissingBinaryMessages(t *testing.T) {
	orig := lookPath
	lookPath = func(string) (string, error) { return "", exec.ErrNotFound }
	defer func() { lookPath = orig }()

	tests := []struct {
		name string
		run  func(tb testing.TB)
		want string
	}{
		{"prometheus", func(tb testing.TB) { StartPrometheus(tb, PrometheusOptions{}) },
			"prometheus not found: run `make deps` (hack/setup.sh) or `apt-get install prometheus`"},
		{"promtool", func(tb testing.TB) { Promtool(tb, "--version") },
			"promtool not found: run `make deps` (hack/setup.sh) or `apt-get install prometheus`"},
		{"alertmanager", func(tb testing.TB) { StartAlertmanager(tb, AlertmanagerOptions{}) },
			"alertmanager not found: run `make deps` (hack/setup.sh) or `apt-get install prometheus-alertmanager`"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := procFatalMessage(t, tc.run); got != tc.want {
				t.Errorf("fatal message = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPrometheusPromtoolChecksRules(t *testing.T) {
	out, err := Promtool(t, "check", "rules", "testdata/always_firing.rules.yml")
	if err != nil || !strings.Contains(out, "SUCCESS: 1 rules found") {
		t.Errorf("promtool check rules on a valid file: err=%v output:\n%s", err, out)
	}

	bad := filepath.Join(t.TempDir(), "bad.rules.yml")
	if err := os.WriteFile(bad, []byte("groups:\n- name: g\n  rules:\n  - alert: Broken\n    expr: sum(\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = Promtool(t, "check", "rules", bad)
	if err == nil || !strings.Contains(out, "parse error") {
		t.Errorf("promtool check rules on a broken expression: err=%v output:\n%s", err, out)
	}
}

// promVectorValues keys a query result by its label set, e.g. {namespace="shop"}.
func promVectorValues(v model.Vector) map[string]float64 {
	out := make(map[string]float64, len(v))
	for _, s := range v {
		out[s.Metric.String()] = float64(s.Value)
	}
	return out
}

func promAssertVector(t *testing.T, got model.Vector, want map[string]float64) {
	t.Helper()
	gotValues := promVectorValues(got)
	if len(gotValues) != len(want) {
		t.Errorf("got %d series %v, want %d %v", len(gotValues), gotValues, len(want), want)
		return
	}
	for k, w := range want {
		g, ok := gotValues[k]
		if !ok {
			t.Errorf("missing series %s in %v", k, gotValues)
			continue
		}
		if math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
}

// TestPrometheusQueriesLoadedHistory loads three days of cAdvisor and kube-state-metrics
// history and checks that PromQL over it returns exactly what was generated.
func TestPrometheusQueriesLoadedHistory(t *testing.T) {
	t.Parallel()
	end := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Minute)
	start := end.Add(-3 * 24 * time.Hour)
	step := time.Minute

	// CPU use changes every hour (1x, 2x, 3x the base), so a query at hh:30 sees one known rate.
	hourly := func(base float64) func(time.Time) float64 {
		return func(t time.Time) float64 { return base * float64(1+t.UTC().Hour()%3) }
	}
	memory := func(base float64) func(time.Time) float64 {
		return func(t time.Time) float64 { return base + float64(t.UTC().Minute())*1024*1024 }
	}
	type pod struct {
		ref      series.PodRef
		owner    series.OwnerRef
		cores    float64
		memBytes float64
		request  float64
	}
	pods := []pod{
		{series.PodRef{Namespace: "shop", Pod: "web-7c9f8d-a", Container: "web", Node: "node-a"}, series.OwnerRef{Kind: "ReplicaSet", Name: "web-7c9f8d"}, 0.25, 200e6, 0.5},
		{series.PodRef{Namespace: "shop", Pod: "web-7c9f8d-b", Container: "web", Node: "node-b"}, series.OwnerRef{Kind: "ReplicaSet", Name: "web-7c9f8d"}, 0.5, 300e6, 0.5},
		{series.PodRef{Namespace: "batch", Pod: "worker-0", Container: "worker", Node: "node-a"}, series.OwnerRef{Kind: "StatefulSet", Name: "worker"}, 1.5, 1e9, 2},
	}
	var loaded []series.Series
	for _, p := range pods {
		loaded = append(loaded,
			series.ContainerCPUUsageSeconds(p.ref, series.GenerateCounter(start, end, step, hourly(p.cores))),
			series.ContainerMemoryWorkingSet(p.ref, series.Generate(start, end, step, memory(p.memBytes))),
			series.KubePodContainerResourceRequests(p.ref, "cpu", series.Generate(start, end, step, series.Const(p.request))),
			series.KubePodOwner(p.ref, p.owner, series.Generate(start, end, step, series.Const(1))),
		)
	}
	loaded = append(loaded, series.KubeReplicaSetOwner("shop", "web-7c9f8d", series.OwnerRef{Kind: "Deployment", Name: "web"}, series.Generate(start, end, step, series.Const(1))))

	began := time.Now()
	prom := StartPrometheus(t, PrometheusOptions{Series: loaded})
	t.Logf("loaded %d series over %s and started Prometheus in %s", len(loaded), end.Sub(start), time.Since(began).Round(time.Millisecond))

	at := start.Add(36 * time.Hour).Truncate(time.Hour).Add(30 * time.Minute)
	mult := float64(1 + at.Hour()%3)
	mib := float64(at.Minute()) * 1024 * 1024
	tests := []struct {
		name  string
		query string
		at    time.Time
		want  map[string]float64
	}{
		{"cpu rate per namespace", `sum by (namespace) (rate(container_cpu_usage_seconds_total{container!=""}[5m]))`, at,
			map[string]float64{`{namespace="shop"}`: 0.75 * mult, `{namespace="batch"}`: 1.5 * mult}},
		{"cpu rate an hour later", `sum by (namespace) (rate(container_cpu_usage_seconds_total{container!=""}[5m]))`, at.Add(time.Hour),
			map[string]float64{`{namespace="shop"}`: 0.75 * float64(1+(at.Hour()+1)%3), `{namespace="batch"}`: 1.5 * float64(1+(at.Hour()+1)%3)}},
		{"memory per namespace", `sum by (namespace) (container_memory_working_set_bytes{container!=""})`, at,
			map[string]float64{`{namespace="shop"}`: 500e6 + 2*mib, `{namespace="batch"}`: 1e9 + mib}},
		{"pod owner lookup", `kube_pod_owner{namespace="shop", pod="web-7c9f8d-a"}`, at,
			map[string]float64{fmt.Sprintf(`kube_pod_owner{namespace="shop", owner_is_controller="true", owner_kind="ReplicaSet", owner_name="web-7c9f8d", pod="web-7c9f8d-a", uid=%q}`, series.PodUID(pods[0].ref)): 1}},
		{"cpu by owner via kube_pod_owner join", `sum by (namespace, owner_kind, owner_name) (rate(container_cpu_usage_seconds_total{container!=""}[5m]) * on (namespace, pod) group_left (owner_kind, owner_name) kube_pod_owner)`, at,
			map[string]float64{
				`{namespace="shop", owner_kind="ReplicaSet", owner_name="web-7c9f8d"}`: 0.75 * mult,
				`{namespace="batch", owner_kind="StatefulSet", owner_name="worker"}`:   1.5 * mult,
			}},
		{"requests vs usage", `sum by (namespace) (kube_pod_container_resource_requests{resource="cpu", unit="core"})`, at,
			map[string]float64{`{namespace="shop"}`: 1, `{namespace="batch"}`: 2}},
		{"replicaset to deployment", `kube_replicaset_owner{owner_kind="Deployment"}`, at,
			map[string]float64{`kube_replicaset_owner{namespace="shop", owner_is_controller="true", owner_kind="Deployment", owner_name="web", replicaset="web-7c9f8d"}`: 1}},
		{"first sample", `container_memory_working_set_bytes{pod="worker-0"}`, start,
			map[string]float64{promMemoryMetric(pods[2].ref, true): 1e9 + float64(start.Minute())*1024*1024}},
		{"nothing before the history", `container_memory_working_set_bytes{pod="worker-0"}`, start.Add(-time.Minute), map[string]float64{}},
		{"one sample per step", `count_over_time(container_memory_working_set_bytes{pod="worker-0"}[59m30s])`, start.Add(2 * time.Hour),
			map[string]float64{promMemoryMetric(pods[2].ref, false): 60}},
		{"latest sample", `container_memory_working_set_bytes{pod="worker-0"}`, end,
			map[string]float64{promMemoryMetric(pods[2].ref, true): 1e9 + float64(end.Minute())*1024*1024}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			promAssertVector(t, prom.Query(t, tc.query, tc.at), tc.want)
		})
	}
}

// promMemoryMetric renders the label set Prometheus returns for the memory series of ref, with or
// without the metric name (functions such as count_over_time drop it).
func promMemoryMetric(ref series.PodRef, withName bool) string {
	m := model.Metric{}
	if withName {
		m[model.MetricNameLabel] = "container_memory_working_set_bytes"
	}
	for k, v := range series.ContainerMemoryWorkingSet(ref, nil).Labels {
		m[model.LabelName(k)] = model.LabelValue(v)
	}
	return m.String()
}

// TestPrometheusScrapesLocalEndpoint points scrape jobs at an httptest server, both from the
// start-up options and added later, and checks the scraped value is queryable.
func TestPrometheusScrapesLocalEndpoint(t *testing.T) {
	t.Parallel()
	var scrapes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "# TYPE testenv_local_widgets gauge\ntestenv_local_widgets{color=\"blue\"} 42\n")
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}

	prom := StartPrometheus(t, PrometheusOptions{
		ScrapeConfigs: []ScrapeTarget{{Job: "from-options", Targets: []string{u.Host}, MetricsPath: "/metrics"}},
	})
	prom.AddScrapeTarget(t, ScrapeTarget{Job: "added-later", Targets: []string{u.Host}, Interval: time.Second, HonorLabels: true})

	for _, job := range []string{"from-options", "added-later"} {
		want := fmt.Sprintf(`testenv_local_widgets{color="blue", instance=%q, job=%q}`, u.Host, job)
		got := prom.WaitForQuery(t, fmt.Sprintf(`testenv_local_widgets{job=%q}`, job), 30*time.Second, nil)
		promAssertVector(t, got, map[string]float64{want: 42})
		promAssertVector(t, prom.Query(t, fmt.Sprintf(`up{job=%q}`, job), time.Time{}),
			map[string]float64{fmt.Sprintf(`up{instance=%q, job=%q}`, u.Host, job): 1})
	}
	if scrapes.Load() < 2 {
		t.Errorf("local endpoint was scraped %d times, want at least once per job", scrapes.Load())
	}

	// A rejected configuration must fail the test with Prometheus' reason, not pass silently.
	msg := procFatalMessage(t, func(tb testing.TB) {
		prom.AddScrapeTarget(tb, ScrapeTarget{Job: "added-later", Targets: []string{u.Host}})
	})
	if !strings.Contains(msg, "reloading prometheus") || !strings.Contains(msg, "added-later") {
		t.Errorf("duplicate job name: fatal message %q, want a reload error naming the job", msg)
	}
}

// TestPrometheusStopRestartCleanup checks that Stop is idempotent and keeps data for Restart,
// and that the test cleanup stops the server and removes its directory.
func TestPrometheusStopRestartCleanup(t *testing.T) {
	t.Parallel()
	var dir, promURL string
	t.Run("lifecycle", func(t *testing.T) {
		at := time.Now().Add(-time.Hour).Truncate(time.Minute)
		prom := StartPrometheus(t, PrometheusOptions{Series: []series.Series{
			{Name: "testenv_marker", Type: series.TypeGauge, Samples: series.Generate(at.Add(-30*time.Minute), at, time.Minute, series.Const(7))},
		}})
		dir, promURL = prom.Dir, prom.URL
		promAssertVector(t, prom.Query(t, "testenv_marker", at), map[string]float64{"testenv_marker": 7})

		prom.Stop()
		prom.Stop()
		if err := procGetReady(promURL); err == nil {
			t.Fatal("Prometheus still answers after Stop")
		}
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("Stop removed the directory needed by Restart: %v", err)
		}

		prom.Restart(t)
		if prom.URL != promURL {
			t.Errorf("Restart moved the server from %s to %s", promURL, prom.URL)
		}
		promAssertVector(t, prom.Query(t, "testenv_marker", at), map[string]float64{"testenv_marker": 7})
	})
	if dir == "" {
		t.Fatal("subtest did not start Prometheus")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cleanup left %s behind (stat: %v)", dir, err)
	}
	if err := procGetReady(promURL); err == nil {
		t.Errorf("Prometheus at %s still answers after cleanup", promURL)
	}
}

func procGetReady(base string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(base + "/-/ready")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// TestPrometheusAndAlertmanagerStartFailures checks that a server that cannot start fails the
// test with the reason from its log, and that unusable history is refused before start.
func TestPrometheusAndAlertmanagerStartFailures(t *testing.T) {
	future := []series.Series{{Name: "x", Type: series.TypeGauge, Samples: []series.Sample{{T: time.Now().Add(time.Hour), V: 1}}}}
	ancient := []series.Series{{Name: "x", Type: series.TypeGauge, Samples: []series.Sample{{T: time.Now().Add(-48 * time.Hour), V: 1}}}}
	tests := []struct {
		name string
		run  func(tb testing.TB)
		want []string
	}{
		{"prometheus bad flag", func(tb testing.TB) { StartPrometheus(tb, PrometheusOptions{ExtraArgs: []string{"--no-such-flag"}}) },
			[]string{"prometheus exited before becoming ready", "last lines of", "unknown long flag '--no-such-flag'"}},
		{"alertmanager bad config", func(tb testing.TB) {
			StartAlertmanager(tb, AlertmanagerOptions{ExtraConfigYAML: "inhibit_rules: [{no_such_field: 1}]"})
		}, []string{"alertmanager exited before becoming ready", "no_such_field"}},
		{"samples in the future", func(tb testing.TB) { StartPrometheus(tb, PrometheusOptions{Series: future}) },
			[]string{"in the future"}},
		{"retention shorter than history", func(tb testing.TB) {
			StartPrometheus(tb, PrometheusOptions{Series: ancient, Retention: 24 * time.Hour})
		}, []string{"does not cover"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := procFatalMessage(t, tc.run)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("fatal message does not contain %q:\n%s", w, msg)
				}
			}
		})
	}
}
