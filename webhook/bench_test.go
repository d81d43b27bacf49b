package webhook

// Benchmarks, run with bounded counts, e.g.:
//
//	UPID_KUBE_BIN=... go test ./webhook -run '^$' -bench 'AdmissionTLS|PodCreate' -benchtime 4000x
//
// Every latency benchmark measures upid's webhook and a trivial allow-all
// one in the same run, behind the same controller-runtime TLS server
// settings, with requests to the two interleaved so that a busy machine
// slows both alike, and reports both.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/testenv"
)

// trivialHandler allows every pod unchanged: the cost of TLS, HTTP and
// AdmissionReview decoding alone. It reads the body under a size bound and
// decodes the review with the same JSON library as upid's handler, so that
// a slower decoder does not flatter upid in the comparison.
var trivialHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, config.Default().Webhook.MaxRequestBytes))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	if err := fastJSON.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	out, _ := fastJSON.Marshal(admissionv1.AdmissionReview{
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

// post sends one review and reports its latency and whether it failed
// (transport error, non-200 answer, denial).
func post(client *http.Client, url string, body []byte) (time.Duration, bool) {
	began := time.Now()
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return time.Since(began), true
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(began)
	return took, resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte(`"allowed":true`))
}

// interleave runs n rounds from `workers` goroutines; round i calls
// do(target, i) once for every target, in an order that alternates from
// round to round, so that whatever else the machine is doing at that
// moment hits every target alike. It returns each target's sorted
// latencies and the number of failures.
func interleave(targets []string, n, workers int, do func(target string, i int) (time.Duration, bool)) (map[string][]time.Duration, int64) {
	lat := map[string][]time.Duration{}
	for _, t := range targets {
		lat[t] = make([]time.Duration, n)
	}
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				for j := range targets {
					t := targets[(i+j)%len(targets)]
					d, failed := do(t, i)
					lat[t][i] = d
					if failed {
						errs.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	for _, l := range lat {
		slices.Sort(l)
	}
	return lat, errs.Load()
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func reportQuantiles(b *testing.B, lat map[string][]time.Duration, names ...string) {
	for _, name := range names {
		b.ReportMetric(float64(quantile(lat[name], 0.5).Microseconds()), name+"_p50_us")
		b.ReportMetric(float64(quantile(lat[name], 0.99).Microseconds()), name+"_p99_us")
	}
}

// BenchmarkAdmissionTLS measures upid's admission endpoint and the trivial
// one over TLS on loopback, behind the same server settings, with every
// client goroutine alternating between the two. b.N is the number of
// requests to each server; the p99 needs at least 4000
// (-benchtime 4000x).
func BenchmarkAdmissionTLS(b *testing.B) {
	// As `upid webhook` runs; both servers and the clients share it.
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	TuneGC()
	cert := testenv.NewServingCert(b)
	lrs := map[string][]*corev1.LimitRange{"team": {limitRange(corev1.LimitTypeContainer, rl("cpu", "10m", "memory", "16Mi"), rl("cpu", "8", "memory", "16Gi"), nil)}}
	h := newTestHandler(b, ModeEnforce, &staticCluster{ns: map[string]map[string]string{"team": {}}, wl: benchWorkloads, lrs: lrs})
	urls := map[string]string{"upid": serveBench(b, cert, h), "trivial": serveBench(b, cert, trivialHandler)}
	body := reviewBody(b, "team", admissionv1.Create, podKind, realisticPod())
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cert.CAPEM)
	servers := []string{"upid", "trivial"}

	for _, clients := range []int{1, 50, 500} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			// One pool per server (they are different hosts), each able to
			// keep every client's connection open.
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients,
			}}
			defer client.CloseIdleConnections()
			do := func(server string, _ int) (time.Duration, bool) { return post(client, urls[server], body) }
			// Open every connection and warm both servers outside the timing.
			interleave(servers, clients*4, clients, do)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			lat, errs := interleave(servers, b.N, clients, do)
			b.StopTimer()
			runtime.ReadMemStats(&after)
			reportQuantiles(b, lat, servers...)
			// Both servers and the clients share this process's GC, whose
			// pauses and mark phases show in the tails.
			b.ReportMetric(float64(after.NumGC-before.NumGC), "gc_cycles")
			b.ReportMetric(float64(quantile(lat["upid"], 0.99))/float64(max(1, quantile(lat["trivial"], 0.99))), "p99_ratio")
			b.ReportMetric(float64(errs), "errors")
			if errs > 0 {
				b.Errorf("%d errors or denials", errs)
			}
		})
	}
}

// remoteAddrs counts the distinct client connections a handler is called
// on: as many as calls would mean a TLS handshake per call.
type remoteAddrs struct {
	mu   sync.Mutex
	seen map[string]bool
	next http.Handler
}

func (c *remoteAddrs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.seen[r.RemoteAddr] = true
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

func (c *remoteAddrs) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// tcpConnections counts the TCP connections to or from a local port, open
// or in TIME_WAIT, from /proc/net/tcp: how many connections the apiserver
// opened to the webhook, without hooking into the production server.
func tcpConnections(port int) int {
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return -1
	}
	hex := fmt.Sprintf(":%04X", port)
	peers := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] == "0A" { // 0A: LISTEN
			continue
		}
		switch {
		case strings.HasSuffix(f[1], hex):
			peers[f[2]] = true
		case strings.HasSuffix(f[2], hex):
			peers[f[1]] = true
		}
	}
	return len(peers)
}

// BenchmarkPodCreate measures pod creation through a real kube-apiserver by
// 10 concurrent creators, each alternating between a namespace the webhook
// is called for (enforce, every pod mutated), one no webhook is called for,
// and one a trivial allow-all webhook is called for, in the same run. b.N
// is the number of pods created in each namespace.
func BenchmarkPodCreate(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	TuneGC()
	k := testenv.StartKube(b, testenv.KubeOptions{})
	const mib = 1 << 20
	createNamespace(b, k, "with", map[string]string{AnnotationMode: ModeEnforce, "bench": "webhook"})
	createNamespace(b, k, "without", map[string]string{AnnotationMode: ModeEnforce})
	url := recsServer(b, workloadResult("with", "Deployment", "web", 0.25, 128*mib, 100*mib, 1), workloadResult("without", "Deployment", "web", 0.25, 128*mib, 100*mib, 1))
	idleDeployment(b, k, "with", "web")
	cert := testenv.NewServingCert(b)
	port := testenv.FreePort(b)
	c := testConfig(port, cert.Dir, url)
	c.HTTP2 = os.Getenv("UPID_BENCH_HTTP2") == "1"
	_, reg := startWebhook(b, k, c, "upid-system")
	// By URL, as the chart's service would be reached, but without a
	// Service: envtest has no endpoints controller or kube-proxy.
	k.RegisterMutatingWebhook(b, testenv.MutatingWebhookSpec{
		Name: "pods.webhook.upid.io", URL: fmt.Sprintf("https://127.0.0.1:%d%s", port, Path), CAPEM: cert.CAPEM,
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bench": "webhook"}},
	})
	// A trivial allow-all webhook on the same server settings, for the cost
	// of any webhook call as opposed to upid's decisions.
	createNamespace(b, k, "trivial", map[string]string{"bench": "trivial"})
	trivial := &remoteAddrs{seen: map[string]bool{}, next: trivialHandler}
	k.RegisterMutatingWebhook(b, testenv.MutatingWebhookSpec{
		Name: "trivial.webhook.upid.io", URL: serveBench(b, cert, trivial), CAPEM: cert.CAPEM,
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bench": "trivial"}},
	})
	// Pods are created as their real creators (the ReplicaSet, Job and
	// StatefulSet controllers) create them: in protobuf.
	pc := rest.CopyConfig(k.Config)
	pc.ContentType = "application/vnd.kubernetes.protobuf"
	creators, err := kubernetes.NewForConfig(pc)
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	yes := true
	create := func(ns string, _ int) (time.Duration, bool) {
		pod := webPod(nil)
		pod.GenerateName = ""
		pod.Name = fmt.Sprintf("web-abc-%d", seq.Add(1))
		pod.OwnerReferences[0].UID = "0a0a0a0a-0000-0000-0000-000000000001"
		pod.OwnerReferences[0].Controller = &yes
		began := time.Now()
		got, err := creators.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
		took := time.Since(began)
		if err == nil && ns == "with" && got.Annotations[AnnotationMode] != ModeEnforce {
			err = fmt.Errorf("pod %s not mutated", got.Name)
		}
		if err != nil {
			b.Log(err)
		}
		return took, err != nil
	}
	namespaces := []string{"with", "without", "trivial"}
	b.Run("creators=10", func(b *testing.B) {
		const creators = 10
		interleave(namespaces, creators*4, creators, create) // warm up
		b.ResetTimer()
		lat, errs := interleave(namespaces, b.N, creators, create)
		b.StopTimer()
		reportQuantiles(b, lat, namespaces...)
		b.ReportMetric(float64((quantile(lat["with"], 0.99) - quantile(lat["without"], 0.99)).Microseconds()), "added_p99_us")
		b.ReportMetric(float64((quantile(lat["with"], 0.5) - quantile(lat["without"], 0.5)).Microseconds()), "added_p50_us")
		b.ReportMetric(float64((quantile(lat["trivial"], 0.99) - quantile(lat["without"], 0.99)).Microseconds()), "trivial_added_p99_us")
		b.ReportMetric(float64(errs), "errors")
		b.ReportMetric(float64(trivial.count()), "trivial_conns")
		b.ReportMetric(float64(tcpConnections(port)), "upid_conns")
		for name, hook := range map[string]string{"upid": "pods.webhook.upid.io", "trivial": "trivial.webhook.upid.io"} {
			b.ReportMetric(apiserverWebhookMean(b, k, hook)*1e6, "apiserver_"+name+"_call_mean_us")
		}
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

// apiserverWebhookMean is the mean duration of the API server's calls to
// one webhook, round trip and patch application included, from its
// apiserver_admission_webhook_admission_duration_seconds.
func apiserverWebhookMean(b *testing.B, k *testenv.Kube, hook string) float64 {
	raw, err := k.Clientset.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Errorf("reading the apiserver's metrics: %v", err)
		return 0
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		b.Errorf("parsing the apiserver's metrics: %v", err)
		return 0
	}
	var sum float64
	var count uint64
	for _, m := range mfs["apiserver_admission_webhook_admission_duration_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "name" && l.GetValue() == hook {
				sum += m.GetHistogram().GetSampleSum()
				count += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return sum / float64(max(1, count))
}

// BenchmarkReview is the handler alone, without TLS or HTTP: decoding,
// deciding and encoding one review of a pod that gets mutated.
func BenchmarkReview(b *testing.B) {
	h := newTestHandler(b, ModeEnforce, &staticCluster{ns: map[string]map[string]string{"team": {}}, wl: benchWorkloads})
	body := reviewBody(b, "team", admissionv1.Create, podKind, realisticPod())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Review(context.Background(), body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReviewConstraints is BenchmarkReview in a namespace without
// LimitRanges or quotas (the baseline) and in one with a Pod LimitRange
// and a CPU and memory quota, whose checks sum the pod before and after.
func BenchmarkReviewConstraints(b *testing.B) {
	body := reviewBody(b, "team", admissionv1.Create, podKind, realisticPod())
	quota := &corev1.ResourceQuota{
		Spec:   corev1.ResourceQuotaSpec{Hard: rl("requests.cpu", "100", "limits.memory", "200Gi")},
		Status: corev1.ResourceQuotaStatus{Hard: rl("requests.cpu", "100", "limits.memory", "200Gi"), Used: rl("requests.cpu", "10", "limits.memory", "20Gi")},
	}
	for _, c := range []struct {
		name string
		ns   Constraints
	}{
		{"none", Constraints{}},
		{"pod_limitrange_and_quota", Constraints{
			LimitRanges: []*corev1.LimitRange{limitRange(corev1.LimitTypePod, rl("cpu", "10m", "memory", "16Mi"), rl("cpu", "16", "memory", "32Gi"), nil)},
			Quotas:      []*corev1.ResourceQuota{quota},
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := newTestHandler(b, ModeEnforce, &staticCluster{ns: map[string]map[string]string{"team": {}}, wl: benchWorkloads, constraints: map[string]Constraints{"team": c.ns}})
			out, err := h.Review(context.Background(), body)
			if err != nil || !bytes.Contains(out, []byte(`"patch"`)) {
				b.Fatalf("the pod is not mutated: %s, %v", out, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.Review(context.Background(), body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkServeHTTP is each webhook's HTTP handler without TLS or a
// network: the share of a request that is the handler's own, upid's next to
// the trivial one's.
func BenchmarkServeHTTP(b *testing.B) {
	h := newTestHandler(b, ModeEnforce, &staticCluster{ns: map[string]map[string]string{"team": {}}, wl: benchWorkloads})
	body := reviewBody(b, "team", admissionv1.Create, podKind, realisticPod())
	for _, tt := range []struct {
		name string
		h    http.Handler
	}{{"upid", h}, {"trivial", trivialHandler}} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				tt.h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body)))
				if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte(`"allowed":true`)) {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}

// realisticPod is a pod as Deployments produce them: a sidecar, env,
// volumes, probes, security context; about 4 KB of JSON.
// benchWorkloads is the cache of the benchmarks' handlers: the
// Deployment of realisticPod, as in a cluster where it has run a while.
var benchWorkloads = map[string]map[string]string{"team/Deployment/web": {}}

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
