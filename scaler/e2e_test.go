package scaler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/testenv"
	upidweb "github.com/upid-dev/upid/internal/web"
)

// rulesFile is the project's alert rules; the end-to-end test runs the
// real idle and wake alerts from it.
const rulesFile = "../alerts/upid-rules.yaml"

// shortRules copies the rule file with every `for` shortened, so the
// idle alert fires in seconds instead of hours, and checks it has the two
// alerts the scaler acts on.
func shortRules(t *testing.T) string {
	t.Helper()
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("%s: %v", rulesFile, errs)
	}
	found := map[string]bool{}
	for g := range groups.Groups {
		for r := range groups.Groups[g].Rules {
			rule := &groups.Groups[g].Rules[r]
			found[rule.Alert] = true
			if rule.For > 0 {
				rule.For = model.Duration(2 * time.Second)
			}
			rule.KeepFiringFor = 0
		}
	}
	for _, name := range []string{"UPIDWorkloadIdle", "UPIDSleepingWorkloadRequested"} {
		if !found[name] {
			t.Fatalf("%s has no alert %s", rulesFile, name)
		}
	}
	out, err := yaml.Marshal(groups)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "upid-rules.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeExporter serves what upid exporter and an ingress controller would:
// the idle verdict of one workload and the request counter of its Service.
type fakeExporter struct {
	reg      *prometheus.Registry
	state    *prometheus.GaugeVec
	requests prometheus.Counter
	traffic  atomic.Bool
}

func newFakeExporter(t *testing.T, w Workload) (*fakeExporter, string) {
	f := &fakeExporter{reg: prometheus.NewRegistry()}
	l := prometheus.Labels{"namespace": w.Namespace, "workload": w.Name, "kind": w.Kind}
	f.state = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "upid_workload_idle_state"}, []string{"namespace", "workload", "kind", "state"})
	conf := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "upid_workload_idle_confidence"}, []string{"namespace", "workload", "kind"})
	cost := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "upid_workload_idle_cost_dollars_per_hour"}, []string{"namespace", "workload", "kind"})
	f.requests = prometheus.NewCounter(prometheus.CounterOpts{Name: "nginx_ingress_controller_requests",
		ConstLabels: prometheus.Labels{"exported_namespace": w.Namespace, "exported_service": "web", "status": "200"}})
	// Fresh results: the idle alert acts only on those.
	age := prometheus.NewGauge(prometheus.GaugeOpts{Name: "upid_exporter_results_age_seconds"})
	f.reg.MustRegister(f.state, conf, cost, f.requests, age)
	age.Set(60)
	conf.With(l).Set(0.95)
	cost.With(l).Set(0.42)
	f.setState(w, "idle")
	metrics := promhttp.HandlerFor(f.reg, promhttp.HandlerOpts{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if f.traffic.Load() {
			f.requests.Add(5) // every scrape sees new real requests
		}
		metrics.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

func (f *fakeExporter) setState(w Workload, state string) {
	for _, s := range []string{"idle", "active", "unknown", "not_applicable"} {
		v := 0.0
		if s == state {
			v = 1
		}
		f.state.WithLabelValues(w.Namespace, w.Name, w.Kind, s).Set(v)
	}
}

// TestEndToEnd runs the whole loop on real servers: Prometheus evaluates
// the project's idle alert over the exporter's metrics and sends it to
// Alertmanager, which notifies the scaler with a bearer token; the scaler,
// leader through a Lease, puts the Deployment to sleep on the real API
// server. Then requests reach the sleeping workload's Service: the wake
// alert, joined with the scaler's own service_info metric, fires and the
// scaler restores the Deployment exactly.
func TestEndToEnd(t *testing.T) {
	rules := shortRules(t)
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := kube.Clientset
	w := Workload{Namespace: "shop", Kind: KindDeployment, Name: "web"}
	if _, err := c.CoreV1().Namespaces().Create(ctx, namespace("shop", optedIn), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	created, err := c.AppsV1().Deployments("shop").Create(ctx, deployment("shop", "web", 3, time.Time{}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Services("shop").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t)
	cfg.GracePeriod = 0 // the Deployment was created a moment ago
	cfg.LeaderElection = config.LeaderElection{Enabled: true, Namespace: "default", Name: "upid-scaler",
		LeaseDuration: model.Duration(5 * time.Second), RenewDeadline: model.Duration(3 * time.Second), RetryPeriod: model.Duration(time.Second)}
	s, err := New(Options{Kube: c, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv, err := upidweb.New(upidweb.Options{Component: "scaler", Web: config.Web{ListenAddress: "127.0.0.1:0"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv.Registry.MustRegister(s.Collectors()...)
	srv.Registry.MustRegister(s.SleepCollector())
	srv.Mux.Handle("/api/v1/notifications", s)
	done := make(chan struct{}, 2)
	go func() { _ = srv.Run(ctx); done <- struct{}{} }()
	go func() { _ = s.Run(ctx, RunOptions{Identity: "e2e"}); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()
	waitFor(t, 20*time.Second, "the scaler to listen and lead", func() bool { return srv.Addr() != nil && s.IsLeader() })
	scalerAddr := srv.Addr().String()

	exp, expAddr := newFakeExporter(t, w)
	am := testenv.StartAlertmanager(t, testenv.AlertmanagerOptions{
		ReceiverURL:             "http://" + scalerAddr + "/api/v1/notifications",
		ReceiverCredentialsFile: cfg.BearerTokenFile,
	})
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{
		RuleFiles:       []string{rules},
		AlertmanagerURL: am.URL,
		ScrapeConfigs: []testenv.ScrapeTarget{
			{Job: "upid-exporter", Targets: []string{expAddr}},
			{Job: "upid-scaler", Targets: []string{scalerAddr}},
		},
	})

	// Sleep.
	waitFor(t, 45*time.Second, "the idle alert to put the Deployment to sleep", func() bool {
		d, err := c.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == 0
	})
	asleep, _ := c.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if a := asleep.Annotations; a[AnnotationReplicas] != "3" || a[AnnotationSaved] != "0.42" || a[AnnotationState] == "" || a[AnnotationSince] == "" {
		t.Fatalf("annotations while asleep: %v", a)
	}
	// The exporter reports a workload at zero as not applicable, so the
	// idle alert resolves; that must not wake it.
	exp.setState(w, "not_applicable")
	prom.WaitForQuery(t, `upid_scaler_sleeping_workload_service_info{namespace="shop",workload="web",kind="Deployment",service="web"} == 1`, 30*time.Second, nil)
	prom.WaitForQuery(t, `absent(ALERTS{alertname="UPIDWorkloadIdle"})`, 30*time.Second, nil)
	time.Sleep(3 * time.Second) // a few evaluations and a group interval for the resolved notification
	if d, _ := c.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{}); *d.Spec.Replicas != 0 {
		t.Fatalf("the resolved idle alert woke the Deployment to %d", *d.Spec.Replicas)
	}

	// Wake: requests reach the Service of the sleeping workload.
	exp.traffic.Store(true)
	waitFor(t, 45*time.Second, "the wake alert to restore the Deployment", func() bool {
		d, err := c.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == 3 && d.Annotations[AnnotationReplicas] == ""
	})
	woken, _ := c.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if !reflect.DeepEqual(woken.Spec, created.Spec) {
		t.Errorf("spec after wake differs from the original:\n%+v\n%+v", woken.Spec, created.Spec)
	}
	for _, k := range stateAnnotations {
		if _, ok := woken.Annotations[k]; ok {
			t.Errorf("annotation %s left after wake", k)
		}
	}
	if got := testutil.ToFloat64(s.actionsTotal.WithLabelValues(ActionSleep, ResultSuccess)); got != 1 {
		t.Errorf("sleeps = %g, want 1", got)
	}
	if got := testutil.ToFloat64(s.actionsTotal.WithLabelValues(ActionWake, ResultSuccess)); got != 1 {
		t.Errorf("wakes = %g, want 1", got)
	}
	if got := testutil.ToFloat64(s.notificationsTotal.WithLabelValues("unauthorized")); got != 0 {
		t.Errorf("Alertmanager's notifications were refused %g times", got)
	}
	waitFor(t, 10*time.Second, "UPIDSleep and UPIDWake Events on the Deployment", func() bool {
		evs, err := c.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web,involvedObject.kind=Deployment"})
		if err != nil {
			return false
		}
		seen := map[string]bool{}
		for _, e := range evs.Items {
			seen[e.Reason] = true
		}
		return seen["UPIDSleep"] && seen["UPIDWake"]
	})
	resp, err := http.Get("http://" + scalerAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"upid_scaler_leader 1", "upid_scaler_sleeping_workloads 0"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	_ = fmt.Sprint
}
