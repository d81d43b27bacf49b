package webhook

// Benchmarks, run with bounded counts, e.g.:
//
//	UPID_KUBE_BIN=... go test ./webhook -run '^$' -bench . -benchtime 2000x
//
// Every sub-benchmark measures upid's handler and a trivial allow-all
// handler in the same run, behind the same controller-runtime TLS server
// settings, and reports both and their ratio.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"github.com/go-logr/logr"
	"io"
	"k8s.io/apimachinery/pkg/util/intstr"
	"net/http"
	"os"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/testenv"
)

// trivialHandler allows every pod unchanged: the cost of TLS, HTTP and
// AdmissionReview decoding alone.
var trivialHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	out, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: review.TypeMeta,
		Response: &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true},
	})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
})

// serveBench starts h behind the same server newAdmissionServer builds for
// production, and returns its URL.
func serveBench(b *testing.B, cert *testenv.ServingCert, h http.Handler) string {
	b.Helper()
	c := config.Default().Webhook
	c.Port = testenv.FreePort(b)
	c.CertDir = cert.Dir
	srv := newAdmissionServer(c, "127.0.0.1")
	srv.Register(Path, h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	check := srv.StartedChecker()
	for deadline := time.Now().Add(10 * time.Second); check(nil) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("benchmark server did not start")
		}
	}
	return fmt.Sprintf("https://127.0.0.1:%d%s", c.Port, Path)
}

// load sends n reviews from `clients` goroutines and returns the sorted
// latencies and the number of errors (transport errors, non-200 answers,
// denials).
func load(client *http.Client, url string, body []byte, n, clients int) ([]time.Duration, int64) {
	lat := make([]time.Duration, n)
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				began := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					errs.Add(1)
					lat[i] = time.Since(began)
					continue
				}
				out, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(began)
				if resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte(`"allowed":true`)) {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(lat)
	return lat, errs.Load()
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func BenchmarkAdmissionTLS(b *testing.B) {
	cert := testenv.NewServingCert(b)
	lrs := map[string][]*corev1.LimitRange{"team": {limitRange(corev1.LimitTypeContainer, rl("cpu", "10m", "memory", "16Mi"), rl("cpu", "8", "memory", "16Gi"), nil)}}
	h := newTestHandler(b, ModeEnforce, &staticCluster{ns: map[string]map[string]string{"team": {}}, lrs: lrs})
	urls := map[string]string{"upid": serveBench(b, cert, h), "trivial": serveBench(b, cert, trivialHandler)}
	body := reviewBody(b, "team", admissionv1.Create, podKind, realisticPod())
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cert.CAPEM)

	for _, clients := range []int{1, 50, 500} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients,
			}}
			defer client.CloseIdleConnections()
			// Warm the connection pools of both servers outside the timing.
			for _, u := range urls {
				load(client, u, body, clients*2, clients)
			}
			b.ResetTimer()
			// Alternate rounds so that drift in the machine's load hits both.
			all := map[string][]time.Duration{}
			var errs int64
			const rounds = 8
			for r := range rounds {
				for _, name := range []string{"trivial", "upid"} {
					if r%2 == 1 {
						name = map[string]string{"trivial": "upid", "upid": "trivial"}[name]
					}
					lat, e := load(client, urls[name], body, max(1, b.N/rounds), clients)
					all[name] = append(all[name], lat...)
					errs += e
				}
			}
			b.StopTimer()
			for _, name := range []string{"upid", "trivial"} {
				slices.Sort(all[name])
				b.ReportMetric(float64(quantile(all[name], 0.5).Microseconds()), name+"_p50_us")
				b.ReportMetric(float64(quantile(all[name], 0.99).Microseconds()), name+"_p99_us")
			}
			b.ReportMetric(float64(quantile(all["upid"], 0.99))/float64(max(1, quantile(all["trivial"], 0.99))), "p99_ratio")
			b.ReportMetric(float64(errs), "errors")
			if errs > 0 {
				b.Errorf("%d errors or denials", errs)
			}
		})
	}
}

// BenchmarkPodCreate measures pod creation through a real kube-apiserver by
// 10 concurrent creators, in a namespace the webhook is called for (enforce,
// every pod mutated) and one it is not, in the same run.
func BenchmarkPodCreate(b *testing.B) {
	k := testenv.StartKube(b, testenv.KubeOptions{})
	const mib = 1 << 20
	createNamespace(b, k, "with", map[string]string{AnnotationMode: ModeEnforce, "bench": "webhook"})
	createNamespace(b, k, "without", map[string]string{AnnotationMode: ModeEnforce})
	url := recsServer(b, workloadResult("with", "Deployment", "web", 0.25, 128*mib, 100*mib, 1), workloadResult("without", "Deployment", "web", 0.25, 128*mib, 100*mib, 1))
	cert := testenv.NewServingCert(b)
	port := testenv.FreePort(b)
	c := testConfig(port, cert.Dir, url)
	c.HTTP2 = os.Getenv("UPID_BENCH_HTTP2") == "1"
	_, reg := startWebhook(b, k, c, "upid-system")
	k.RegisterMutatingWebhook(b, testenv.MutatingWebhookSpec{
		Name: "pods.webhook.upid.io", URL: fmt.Sprintf("https://127.0.0.1:%d%s", port, Path), CAPEM: cert.CAPEM,
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bench": "webhook"}},
	})
	// A trivial allow-all webhook on the same server settings, for the cost
	// of any webhook call as opposed to upid's decisions.
	createNamespace(b, k, "trivial", map[string]string{"bench": "trivial"})
	k.RegisterMutatingWebhook(b, testenv.MutatingWebhookSpec{
		Name: "trivial.webhook.upid.io", URL: serveBench(b, cert, trivialHandler), CAPEM: cert.CAPEM,
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bench": "trivial"}},
	})
	var seq atomic.Int64
	yes := true
	create := func(ns string) (time.Duration, error) {
		pod := webPod(nil)
		pod.GenerateName = ""
		pod.Name = fmt.Sprintf("web-abc-%d", seq.Add(1))
		pod.OwnerReferences[0].UID = "0a0a0a0a-0000-0000-0000-000000000001"
		pod.OwnerReferences[0].Controller = &yes
		began := time.Now()
		got, err := k.Clientset.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
		took := time.Since(began)
		if err == nil && ns == "with" && got.Annotations[AnnotationMode] != ModeEnforce {
			err = fmt.Errorf("pod %s not mutated", got.Name)
		}
		return took, err
	}
	b.Run("creators=10", func(b *testing.B) {
		const creators = 10
		run := func(ns string, n int) ([]time.Duration, int64) {
			lat := make([]time.Duration, n)
			var next, errs atomic.Int64
			var wg sync.WaitGroup
			for range creators {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(n) {
							return
						}
						d, err := create(ns)
						lat[i] = d
						if err != nil {
							errs.Add(1)
						}
					}
				})
			}
			wg.Wait()
			return lat, errs.Load()
		}
		for _, ns := range []string{"with", "without", "trivial"} {
			run(ns, creators) // warm up
		}
		b.ResetTimer()
		all := map[string][]time.Duration{}
		var errs int64
		for r := range 4 {
			order := []string{"without", "trivial", "with"}
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, ns := range order {
				lat, e := run(ns, max(1, b.N/4))
				all[ns] = append(all[ns], lat...)
				errs += e
			}
		}
		b.StopTimer()
		for _, ns := range []string{"with", "without", "trivial"} {
			slices.Sort(all[ns])
			b.ReportMetric(float64(quantile(all[ns], 0.5).Microseconds()), ns+"_p50_us")
			b.ReportMetric(float64(quantile(all[ns], 0.99).Microseconds()), ns+"_p99_us")
		}
		b.ReportMetric(float64((quantile(all["with"], 0.99) - quantile(all["without"], 0.99)).Microseconds()), "added_p99_us")
		b.ReportMetric(float64((quantile(all["with"], 0.99) - quantile(all["trivial"], 0.99)).Microseconds()), "added_over_trivial_p99_us")
		b.ReportMetric(float64(errs), "errors")
		if mfs, err := reg.Gather(); err == nil {
			for _, mf := range mfs {
				if mf.GetName() == "upid_webhook_admission_duration_seconds" {
					h := mf.Metric[0].GetHistogram()
					b.ReportMetric(h.GetSampleSum()/float64(max(1, h.GetSampleCount()))*1e6, "handler_mean_us")
				}
			}
		}
		if errs > 0 {
			b.Errorf("%d pod creations failed or were not mutated", errs)
		}
	})
	mfs, _ := reg.Gather()
	if fo := counterValue(mfs, "upid_webhook_decisions_total", map[string]string{"outcome": OutcomeFailedOpen}); fo != 0 {
		b.Errorf("failed_open decisions = %g", fo)
	}
}

// BenchmarkReview is the handler alone, without TLS or HTTP: decoding,
// deciding and encoding one review of a pod that gets mutated.
func BenchmarkReview(b *testing.B) {
	h := newTestHandler(b, ModeEnforce, &staticCluster{ns: map[string]map[string]string{"team": {}}})
	body := reviewBody(b, "team", admissionv1.Create, podKind, realisticPod())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Review(context.Background(), body); err != nil {
			b.Fatal(err)
		}
	}
}

// realisticPod is a pod as Deployments produce them: a sidecar, env,
// volumes, probes, security context; about 4 KB of JSON.
func realisticPod() *corev1.Pod {
	pod := webPod(map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "8080", "kubectl.kubernetes.io/restartedAt": "2026-11-20T10:00:00Z"})
	pod.Labels["app.kubernetes.io/name"] = "web"
	pod.Labels["app.kubernetes.io/version"] = "1.2.3"
	var env []corev1.EnvVar
	for i := range 15 {
		env = append(env, corev1.EnvVar{Name: fmt.Sprintf("SETTING_%d", i), Value: fmt.Sprintf("value-%d-with-some-length", i)})
	}
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 10}
	app := &pod.Spec.Containers[0]
	app.Env, app.LivenessProbe, app.ReadinessProbe = env, probe, probe
	app.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}}
	app.VolumeMounts = []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}, {Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}}
	no := false
	app.SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: &no, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	proxy := container("proxy", rl("cpu", "100m", "memory", "128Mi"), rl("cpu", "1", "memory", "512Mi"))
	proxy.Env, proxy.VolumeMounts = env[:5], app.VolumeMounts
	pod.Spec.Containers = append(pod.Spec.Containers, proxy)
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}}},
		{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}},
	}
	pod.Spec.Tolerations = []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}
	return pod
}

func init() {
	// controller-runtime's webhook server logs through its global logger;
	// unset, it prints a stack trace on first use.
	ctrllog.SetLogger(logr.Discard())
}
