package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/testenv"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildUpid builds the binary once for all the tests that run it.
func buildUpid(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "upid-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "upid")
		// Built the way the Makefile builds, so the version test can read
		// the build info back.
		if out, err := exec.Command("go", "build", "-ldflags", testLDFlags, "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// process is a running upid with its output captured.
type process struct {
	cmd    *exec.Cmd
	base   string
	stdout *strings.Builder
	log    string
	done   chan error
}

// startUpid runs upid on a free port and waits until /readyz answers 200.
func startUpid(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	port := testenv.FreePort(t)
	p := &process{base: fmt.Sprintf("http://127.0.0.1:%d", port), stdout: &strings.Builder{}, log: filepath.Join(t.TempDir(), "upid.log"), done: make(chan error, 1)}
	lf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, append(args, "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", port))...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, lf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait(); lf.Close() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("upid stderr:\n%s\nstdout:\n%s", b, p.stdout.String())
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if resp, err := http.Get(p.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.done:
			b, _ := os.ReadFile(p.log)
			t.Fatalf("upid exited early (%v):\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("upid not ready within 2 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop sends SIGTERM and expects a clean exit. It reports whether upid
// exited: only then may p.stdout be read (see TestDemo).
func (p *process) stop(t *testing.T) bool {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("upid exited with %v after SIGTERM, want 0", err)
		}
		p.done <- nil // for the cleanup
		return true
	case <-time.After(30 * time.Second):
		t.Error("upid did not exit within 30s of SIGTERM")
		return false
	}
}

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func promtoolCheckMetrics(t *testing.T, exposition string) {
	t.Helper()
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on the full /metrics: %v\n%s", err, out)
	}
}

// TestExporterProcess runs `upid exporter` as users do, against a real
// kube-apiserver and an empty real Prometheus: it serves, says every
// workload is unknown, lints clean, and stops on SIGTERM.
func TestExporterProcess(t *testing.T) {
	bin := buildUpid(t)
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	replicas := int32(1)
	labels := map[string]string{"app": "web"}
	if _, err := kube.Clientset.AppsV1().Deployments("default").Create(context.Background(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "x"}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{})

	p := startUpid(t, bin, "exporter", "--kubeconfig", kube.KubeconfigPath, "--prometheus.url", prom.URL, "--log.format", "json", "--exporter.window", "1h")
	code, body := fetch(t, p.base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`version="9.8.7"`,
		`upid_exporter_cycles_total{result="success"} 1`,
		`upid_workload_idle_state{kind="Deployment",namespace="default",state="unknown",workload="web"} 1`,
		`upid_exporter_objects{kind="deployment"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	promtoolCheckMetrics(t, body)
	if code, body := fetch(t, p.base+"/api/v1/workloads"); code != 200 || !strings.Contains(body, `"workload": "web"`) {
		t.Errorf("/api/v1/workloads = %d %s", code, body)
	}
	p.stop(t)
	logs, _ := os.ReadFile(p.log)
	for _, line := range strings.Split(strings.TrimSpace(string(logs)), "\n") {
		if !strings.HasPrefix(line, "{") {
			t.Errorf("log line not in the chosen JSON format: %q", line)
		}
	}
}

// TestExporterRejectsBadConfig: what the configuration's check refuses and
// what only the exporter can tell (shards) both exit with a usage error
// naming the key.
func TestExporterRejectsBadConfig(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\ncontexts: [{name: c, context: {cluster: c}}]\ncurrent-context: c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--exporter.shard=2", "--exporter.total-shards=2"}, "exporter.shard"},
		{[]string{"--exporter.health-user-agents=[(]"}, "flag --exporter.health-user-agents: exporter.health_user_agents[0]"},
		{[]string{`--exporter.health-paths=[/healthz, ""]`}, "flag --exporter.health-paths: exporter.health_paths[1]: empty"},
	} {
		var stdout, stderr strings.Builder
		code := run(append([]string{"exporter", "--kubeconfig", kubeconfig}, tc.args...), &stdout, &stderr)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d", tc.args, code, exitUsage)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr lacks %q:\n%s", tc.args, tc.want, stderr.String())
		}
	}
}

// TestDemo runs what `make demo` runs and checks that the embedded cluster's
// cases come out as designed, through the production code path.
func TestDemo(t *testing.T) {
	bin := buildUpid(t)
	p := startUpid(t, bin, "exporter", "--demo")
	code, body := fetch(t, p.base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`upid_workload_idle_state{kind="Deployment",namespace="shop",state="idle",workload="legacy-coupons"} 1`,
		`upid_workload_idle_state{kind="Deployment",namespace="marketing",state="idle",workload="campaign-archive"} 1`,
		`upid_workload_idle_state{kind="Deployment",namespace="shop",state="idle",workload="promo-banner"} 1`,
		`upid_workload_idle_state{kind="Deployment",namespace="support",state="active",workload="ticket-search"} 1`,
		`upid_workload_idle_state{kind="Deployment",namespace="shop",state="active",workload="checkout"} 1`,
		`upid_workload_idle_state{kind="CronJob",namespace="analytics",state="not_applicable",workload="usage-rollup"} 1`,
		`upid_workload_idle_state{kind="Deployment",namespace="payments",state="unknown",workload="gift-cards"} 1`,
		`upid_workload_health_request_ratio{kind="Deployment",namespace="shop",workload="legacy-coupons"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("demo /metrics lacks %s", want)
		}
	}
	promtoolCheckMetrics(t, body)
	// p.stdout is written by os/exec's copying goroutine for as long as upid
	// runs (a data race under -race if read before), and upid prints the
	// summary only after /readyz turns 200; Wait, reported through p.done,
	// returns once that goroutine has copied everything, so read it after.
	if !p.stop(t) {
		return
	}
	out := p.stdout.String()
	for _, want := range []string{"UPID demo: metrics at http://", "shop/Deployment/legacy-coupons", "Total: $"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo summary lacks %q:\n%s", want, out)
		}
	}
}

// TestPrometheusAnswersBounded: an answer over prometheus.max_response_bytes
// fails its query, read from a real Prometheus; one of exactly that size is
// read (from a server that sends it padded to the byte).
func TestPrometheusAnswersBounded(t *testing.T) {
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{})
	answer := `{"status":"success","data":{"resultType":"vector","result":[]}}`
	exact := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer+strings.Repeat(" ", 1<<20-len(answer)))
	}))
	t.Cleanup(exact.Close)
	over := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer+strings.Repeat(" ", 1<<20-len(answer)+1))
	}))
	t.Cleanup(over.Close)
	for _, tc := range []struct {
		name, url, query string
		err              string // "" for none
	}{
		{"small", prom.URL, "vector(1)", ""},
		// A day of 1-second points: about 2.5 MB of JSON.
		{"over", prom.URL, "vector(1)[1d:1s]", "larger than prometheus.max_response_bytes (1048576 bytes)"},
		{"exactly the bound", exact.URL, "vector(1)", ""},
		{"a byte over", over.URL, "vector(1)", "larger than prometheus.max_response_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default().Prometheus
			cfg.URL, cfg.MaxResponseBytes = tc.url, 1<<20
			api, err := promClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, _, _, err = api.Query(context.Background(), tc.query, time.Now())
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
		})
	}
}
