package testenv

import (
	"bytes"
	"context"
	"fmt"
	"github.com/upid-dev/upid/internal/series"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

const (
	prometheusFix = "prometheus not found: run `make deps` (hack/setup.sh) or `apt-get install prometheus`"
	promtoolFix   = "promtool not found: run `make deps` (hack/setup.sh) or `apt-get install prometheus`"

	// defaultRetention is far beyond any synthetic history; Prometheus deletes blocks older
	// than the retention (measured from the newest block) right after start-up, which would
	// silently drop loaded data.
	defaultRetention = 10 * 365 * 24 * time.Hour
	// maxScrapeTimeout mirrors Prometheus' default; the timeout may not exceed the interval.
	maxScrapeTimeout = 10 * time.Second
	queryTimeout     = 30 * time.Second
)

// ScrapeTarget is one scrape job of static targets.
type ScrapeTarget struct {
	Job         string
	Targets     []string // host:port
	MetricsPath string   // default /metrics
	Scheme      string   // http (default) or https; https skips certificate verification
	Interval    time.Duration
	HonorLabels bool
}

// PrometheusOptions configures StartPrometheus. The zero value starts an empty server.
type PrometheusOptions struct {
	// Series are written as OpenMetrics and loaded as TSDB blocks before the server starts, so
	// they are queryable at their own (past) timestamps. All samples must lie in the past:
	// Prometheus refuses scraped samples older than the newest loaded block.
	Series          []series.Series
	ScrapeConfigs   []ScrapeTarget
	RuleFiles       []string // copied into the server's directory
	AlertmanagerURL string   // e.g. Alertmanager.URL; empty disables alerting
	// ScrapeInterval and EvaluationInterval default to 1s so tests see results quickly.
	ScrapeInterval, EvaluationInterval time.Duration
	// Retention defaults to 10 years so that loaded history is never deleted.
	Retention time.Duration
	ExtraArgs []string
}

// Prometheus is a real Prometheus server started by StartPrometheus.
type Prometheus struct {
	URL     string // http://127.0.0.1:PORT, no trailing slash
	API     v1.API
	Dir     string // holds prometheus.yml, rules/, data/ and prometheus.log
	LogFile string

	mu   sync.Mutex
	opts PrometheusOptions
	bin  string
	port int
	args func(port int) []string
	proc *serverProcess
}

// StartPrometheus loads opts.Series into a fresh TSDB with promtool, starts Prometheus on a
// free port of 127.0.0.1 and waits until it is ready. The server is stopped and its directory
// removed when the test ends.
func StartPrometheus(t testing.TB, opts PrometheusOptions) *Prometheus {
	t.Helper()
	bin := requireBinary(t, prometheusFix, "prometheus")
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = time.Second
	}
	if opts.EvaluationInterval <= 0 {
		opts.EvaluationInterval = time.Second
	}
	if opts.Retention <= 0 {
		opts.Retention = defaultRetention
	}
	// Later edits (rule paths, AddScrapeTarget) must not write through to the caller's slices.
	opts.ScrapeConfigs = slices.Clone(opts.ScrapeConfigs)
	opts.RuleFiles = slices.Clone(opts.RuleFiles)

	dir, err := os.MkdirTemp("", "testenv-prometheus-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	p := &Prometheus{Dir: dir, LogFile: filepath.Join(dir, "prometheus.log"), bin: bin}
	t.Cleanup(func() {
		if t.Failed() && p.proc != nil {
			t.Logf("testenv: last lines of %s:\n%s", p.LogFile, logTail(p.LogFile, logTailLines))
		}
		p.Stop()
		if p.proc != nil && p.proc.stopErr != nil {
			t.Errorf("testenv: %v", p.proc.stopErr)
		}
		os.RemoveAll(dir)
	})

	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for i, src := range opts.RuleFiles {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatalf("testenv: reading rule file: %v", err)
		}
		// The index keeps two rule files with the same base name apart.
		dst := filepath.Join(dir, "rules", fmt.Sprintf("%02d-%s", i, filepath.Base(src)))
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		opts.RuleFiles[i] = dst
	}
	loadSeries(t, opts, dir, dataDir)
	p.opts = opts
	if err := p.writeConfig(); err != nil {
		t.Fatalf("testenv: %v", err)
	}

	p.args = func(port int) []string {
		args := []string{
			"--config.file=" + filepath.Join(dir, "prometheus.yml"),
			"--storage.tsdb.path=" + dataDir,
			"--storage.tsdb.retention.time=" + model.Duration(opts.Retention).String(),
			"--web.listen-address=" + loopbackAddr(port),
			// Without this, alert generator URLs and redirects use the machine's host name.
			"--web.external-url=http://" + loopbackAddr(port) + "/",
			"--web.enable-lifecycle",
			"--web.enable-admin-api",
		}
		// Alertmanagers are discovered up to 5 s after start; alerts that fire before that are
		// dropped and, with the default 1m resend delay, not sent again for a minute.
		// Prometheus rejects a repeated flag, so a caller's own value must replace ours.
		if !promHasFlag(opts.ExtraArgs, "--rules.alert.resend-delay") {
			args = append(args, "--rules.alert.resend-delay="+model.Duration(opts.EvaluationInterval).String())
		}
		return append(args, opts.ExtraArgs...)
	}
	p.start(t, 0)
	return p
}

func promHasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

func loopbackAddr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func (p *Prometheus) start(t testing.TB, port int) {
	t.Helper()
	proc, port := startServer(t, serverSpec{
		name:     "prometheus",
		bin:      p.bin,
		logPath:  p.LogFile,
		args:     p.args,
		readyURL: func(port int) string { return "http://" + loopbackAddr(port) + "/-/ready" },
	}, port)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proc, p.port = proc, port
	p.URL = "http://" + loopbackAddr(port)
	client, err := api.NewClient(api.Config{Address: p.URL})
	if err != nil {
		t.Fatalf("testenv: prometheus API client: %v", err)
	}
	p.API = v1.NewAPI(client)
}

// loadSeries writes the series as OpenMetrics and turns them into TSDB blocks in dataDir.
func loadSeries(t testing.TB, opts PrometheusOptions, dir, dataDir string) {
	t.Helper()
	minT, maxT, n := series.TimeRange(opts.Series)
	if n == 0 {
		return
	}
	now := time.Now()
	if maxT.After(now) {
		t.Fatalf("testenv: series sample at %s is in the future; Prometheus would reject every scraped sample older than it", maxT.Format(time.RFC3339))
	}
	if now.Sub(minT) >= opts.Retention {
		t.Fatalf("testenv: Retention %s does not cover series starting at %s; Prometheus would delete them", opts.Retention, minT.Format(time.RFC3339))
	}
	omPath := filepath.Join(dir, "series.om")
	f, err := os.Create(omPath)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := series.WriteOpenMetrics(f, opts.Series); err != nil {
		f.Close()
		t.Fatalf("testenv: writing series: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	out, err := Promtool(t, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
		fmt.Sprintf("--max-block-duration=%dh", importBlockDuration(minT, maxT)/time.Hour), omPath, dataDir)
	if err != nil {
		t.Fatalf("testenv: promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
	}
	// The OpenMetrics copy is only needed for debugging a failed import.
	os.Remove(omPath)
}

// importBlockDuration picks the block size for promtool's backfill. promtool parses the whole
// file once to find the time range and once more per block, and defaults to 2h blocks, so
// 14 days of history would take 169 passes. It rounds the requested size down to one of
// 2h·3^n (n ≤ 9) and aligns blocks to multiples of it, so this returns the smallest such size
// that puts all the data in a single block.
func importBlockDuration(minT, maxT time.Time) time.Duration {
	d := 2 * time.Hour
	for n := 0; n < 9; n++ {
		ms := d.Milliseconds()
		if minT.UnixMilli()/ms == maxT.UnixMilli()/ms {
			break
		}
		d *= 3
	}
	return d
}

type promConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		ScrapeTimeout      string `yaml:"scrape_timeout"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string           `yaml:"rule_files,omitempty"`
	Alerting      *promAlerting      `yaml:"alerting,omitempty"`
	ScrapeConfigs []promScrapeConfig `yaml:"scrape_configs,omitempty"`
}

type promAlerting struct {
	Alertmanagers []promAlertmanager `yaml:"alertmanagers"`
}

type promAlertmanager struct {
	Scheme        string             `yaml:"scheme,omitempty"`
	PathPrefix    string             `yaml:"path_prefix,omitempty"`
	APIVersion    string             `yaml:"api_version"`
	StaticConfigs []promStaticConfig `yaml:"static_configs"`
}

type promStaticConfig struct {
	Targets []string `yaml:"targets"`
}

type promScrapeConfig struct {
	JobName        string             `yaml:"job_name"`
	ScrapeInterval string             `yaml:"scrape_interval,omitempty"`
	ScrapeTimeout  string             `yaml:"scrape_timeout,omitempty"`
	MetricsPath    string             `yaml:"metrics_path,omitempty"`
	Scheme         string             `yaml:"scheme,omitempty"`
	HonorLabels    bool               `yaml:"honor_labels,omitempty"`
	TLSConfig      map[string]any     `yaml:"tls_config,omitempty"`
	StaticConfigs  []promStaticConfig `yaml:"static_configs"`
}

// writeConfig renders p.opts to prometheus.yml. Callers hold p.mu or own p exclusively.
func (p *Prometheus) writeConfig() error {
	var c promConfig
	globalTimeout := min(p.opts.ScrapeInterval, maxScrapeTimeout)
	c.Global.ScrapeInterval = model.Duration(p.opts.ScrapeInterval).String()
	c.Global.ScrapeTimeout = model.Duration(globalTimeout).String()
	c.Global.EvaluationInterval = model.Duration(p.opts.EvaluationInterval).String()
	c.RuleFiles = p.opts.RuleFiles
	if p.opts.AlertmanagerURL != "" {
		u, err := url.Parse(p.opts.AlertmanagerURL)
		if err != nil || u.Host == "" {
			return fmt.Errorf("AlertmanagerURL %q is not an absolute URL", p.opts.AlertmanagerURL)
		}
		c.Alerting = &promAlerting{Alertmanagers: []promAlertmanager{{
			Scheme:        u.Scheme,
			PathPrefix:    strings.TrimSuffix(u.Path, "/"),
			APIVersion:    "v2",
			StaticConfigs: []promStaticConfig{{Targets: []string{u.Host}}},
		}}}
	}
	for _, st := range p.opts.ScrapeConfigs {
		sc := promScrapeConfig{
			JobName:       st.Job,
			MetricsPath:   st.MetricsPath,
			Scheme:        st.Scheme,
			HonorLabels:   st.HonorLabels,
			StaticConfigs: []promStaticConfig{{Targets: st.Targets}},
		}
		if st.Interval > 0 {
			sc.ScrapeInterval = model.Duration(st.Interval).String()
			sc.ScrapeTimeout = model.Duration(min(st.Interval, globalTimeout)).String()
		}
		if st.Scheme == "https" {
			// Test servers use throw-away certificates.
			sc.TLSConfig = map[string]any{"insecure_skip_verify": true}
		}
		c.ScrapeConfigs = append(c.ScrapeConfigs, sc)
	}
	b, err := yaml.Marshal(&c)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.Dir, "prometheus.yml"), b, 0o644)
}

// Reload makes Prometheus re-read prometheus.yml and its rule files, failing the test if the
// new configuration is rejected.
func (p *Prometheus) Reload(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	u := p.URL
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+"/-/reload", nil)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("testenv: reloading prometheus: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		t.Fatalf("testenv: reloading prometheus: %s: %s", resp.Status, strings.TrimSpace(body.String()))
	}
}

// AddScrapeTarget adds a scrape job (for example pointing at an httptest server's host:port)
// and reloads the configuration. Discovery publishes new targets every 5 s, so use
// WaitForQuery to wait for the first scrape.
func (p *Prometheus) AddScrapeTarget(t testing.TB, st ScrapeTarget) {
	t.Helper()
	p.mu.Lock()
	p.opts.ScrapeConfigs = append(p.opts.ScrapeConfigs, st)
	err := p.writeConfig()
	p.mu.Unlock()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	p.Reload(t)
}

// Query evaluates an instant query at ts (now if zero) and fails the test on error or if the
// result is not a vector.
func (p *Prometheus) Query(t testing.TB, promql string, ts time.Time) model.Vector {
	t.Helper()
	v, err := p.query(promql, ts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return v
}

func (p *Prometheus) query(promql string, ts time.Time) (model.Vector, error) {
	if ts.IsZero() {
		ts = time.Now()
	}
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	val, _, _, err := p.API.Query(ctx, promql, ts)
	if err != nil {
		return nil, fmt.Errorf("query %q at %s: %w", promql, ts.Format(time.RFC3339), err)
	}
	vec, ok := val.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %q returned %s, not a vector", promql, val.Type())
	}
	return vec, nil
}

// QueryRange evaluates a range query and fails the test on error.
func (p *Prometheus) QueryRange(t testing.TB, promql string, start, end time.Time, step time.Duration) model.Matrix {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	val, _, _, err := p.API.QueryRange(ctx, promql, v1.Range{Start: start, End: end, Step: step})
	if err != nil {
		t.Fatalf("testenv: range query %q: %v", promql, err)
	}
	m, ok := val.(model.Matrix)
	if !ok {
		t.Fatalf("testenv: range query %q returned %s, not a matrix", promql, val.Type())
	}
	return m
}

// WaitForQuery evaluates promql at the current time until cond accepts the result (a nil cond
// accepts any non-empty result) and returns that result. Query errors are retried, since they
// are expected while a reload is in progress; on timeout the test fails with the last result
// or error.
func (p *Prometheus) WaitForQuery(t testing.TB, promql string, timeout time.Duration, cond func(model.Vector) bool) model.Vector {
	t.Helper()
	if cond == nil {
		cond = func(v model.Vector) bool { return len(v) > 0 }
	}
	deadline := time.Now().Add(timeout)
	for {
		v, err := p.query(promql, time.Time{})
		if err == nil && cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("testenv: query %q not satisfied after %s: %v", promql, timeout, err)
			}
			t.Fatalf("testenv: query %q not satisfied after %s; last result: %v", promql, timeout, v)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s) and keeps its directory, so a test
// can simulate Prometheus going away and later call Restart. It is idempotent.
func (p *Prometheus) Stop() {
	p.mu.Lock()
	proc := p.proc
	p.mu.Unlock()
	if proc != nil {
		proc.stop()
	}
}

// Restart starts a stopped server again on the same port with the same data and current
// configuration, so URL and API stay valid. It stops the server first if it is running.
func (p *Prometheus) Restart(t testing.TB) {
	t.Helper()
	p.Stop()
	p.mu.Lock()
	port := p.port
	p.mu.Unlock()
	p.start(t, port)
}

// Promtool runs promtool with args and returns its combined output. A non-zero exit is
// returned as an error, so tests can assert that `promtool check rules` rejects a file.
func Promtool(t testing.TB, args ...string) (string, error) {
	t.Helper()
	bin := requireBinary(t, promtoolFix, "promtool")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}
