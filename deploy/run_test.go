package deploy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/testenv"
)

// TestComponentsRunWithTheirPermissions runs the real `upid webhook` and `upid scaler` with the
// config files the chart renders, each as the service account its pod runs as (impersonated),
// against a real kube-apiserver holding the chart's RBAC: the webhook must bootstrap its
// self-managed certificate into the pre-created Secret and the caBundle, serve TLS that the
// caBundle verifies under the Service's name, and recommend for an admitted pod with an Event; the
// scaler must sync its caches, win its Lease, and sleep and wake each kind of workload. A
// permission the chart forgot shows up as a component that never gets there and as a forbidden
// request in the API server's audit log; a permission nothing uses, as a grant no request needed.
// In the sidecar suite the webhook runs in the exporter's pod, as its service account.
func TestComponentsRunWithTheirPermissions(t *testing.T) {
	bin := buildUpid(t)
	for _, layout := range []struct{ name, values, webhookSA string }{
		{"standalone", "", "upid-webhook"},
		{"sidecar-suite", "sidecarSuite: {enabled: true}", "upid-exporter"},
	} {
		t.Run(layout.name, func(t *testing.T) { runWithPermissions(t, bin, layout.values, layout.webhookSA) })
	}
}

func runWithPermissions(t *testing.T, bin, values, webhookSA string) {
	audit, auditLog := auditArgs(t)
	kube, c := startClusterWith(t, testenv.KubeOptions{APIServerArgs: audit})
	ctx := context.Background()
	const ns = releaseNamespace
	sa := func(name string) string { return "system:serviceaccount:" + ns + ":" + name }
	ms, _ := renderHelm(t, releaseName, ns, valuesFile(t, "namespace: {create: true}\nwebhook: {enabled: true}\nscaler: {enabled: true, policy: {dryRun: false, gracePeriod: 0s}}\n"+values)...)
	for _, err := range apply(ctx, c, ms, false) {
		t.Fatal(err)
	}
	// Every call the three components made, from the API server's audit log, against what the
	// chart grants them; deferred so that a step that stops the test still shows the calls
	// RBAC refused, which are often why it stopped.
	ranThrough := false
	defer func() {
		allowed, forbidden := auditedCalls(t, auditLog, []string{sa("upid-exporter"), sa(webhookSA), sa("upid-scaler")})
		checkGrantsMatchCalls(t, granted(t, ms), allowed, forbidden, ranThrough, map[string]map[apiCall]string{
			// client-go's recorder patches an Event it has already written when the same one
			// recurs (its count and last time), which this run does not do.
			sa(webhookSA):     {{"patch", "", "events"}: "a repeated Event"},
			sa("upid-scaler"): {{"patch", "", "events"}: "a repeated Event"},
		})
	}()
	dir := t.TempDir()
	files := map[string]string{}
	cm := ms.Get("", "ConfigMap", ns, "upid-config")
	for _, name := range []string{"webhook.yaml", "scaler.yaml"} {
		data, _, _ := unstructured.NestedString(cm.Object, "data", name)
		files[name] = filepath.Join(dir, name)
		if err := os.WriteFile(files[name], []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The webhook, with the paths and ports a pod has replaced by the test's own, and the
	// exporter's recommendations replaced by one for the StatefulSet admitted below.
	certDir := filepath.Join(dir, "certs")
	admissionPort, metricsPort := freePort(t), freePort(t)
	recs := recommendationsServer(t, "shop", "StatefulSet", "db")
	startComponent(t, bin, "webhook", kubeconfigAs(t, kube, sa(webhookSA)),
		"--config="+files["webhook.yaml"], "--webhook.cert-dir="+certDir, "--webhook.recommendations-url="+recs,
		"--webhook.port="+strconv.Itoa(admissionPort), "--web.listen-address=127.0.0.1:"+strconv.Itoa(metricsPort))

	var caBundle []byte
	waitFor(t, 60*time.Second, "the webhook's self-managed certificate in Secret and caBundle", func() (bool, string) {
		s, err := kube.Clientset.CoreV1().Secrets(ns).Get(ctx, "upid-webhook-tls", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if len(s.Data["tls.crt"]) == 0 {
			return false, "Secret still empty"
		}
		m, err := kube.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "upid-webhook", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		caBundle = m.Webhooks[0].ClientConfig.CABundle
		return len(caBundle) > 0, "caBundle still empty"
	})
	// What the API server would do: dial the webhook under the Service's DNS name, trusting only the caBundle.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caBundle) {
		t.Fatalf("caBundle holds no certificate: %q", caBundle)
	}
	waitFor(t, 30*time.Second, "a TLS handshake verified by the caBundle", func() (bool, string) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", admissionPort),
			&tls.Config{RootCAs: pool, ServerName: "upid-webhook.upid-system.svc", MinVersion: tls.VersionTLS12})
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	})

	// The workloads the scaler puts to sleep and wakes below, there before it starts so that its
	// informers (the Rollouts' included) list and watch them from the start.
	shop := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"upid.io/sleep": "enabled"}}}
	if _, err := kube.Clientset.CoreV1().Namespaces().Create(ctx, shop, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	replicas := int32(3)
	labels := map[string]string{"app": "web"}
	web := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: appsv1.DeploymentSpec{
		Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}}},
	}}
	if _, err := kube.Clientset.AppsV1().Deployments("shop").Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// An Argo Rollout too, through the chart's argoproj.io rules (a CRD shaped as Argo's).
	kube.CreateRollout(ctx, t, "shop", "canary", map[string]any{"replicas": int64(3),
		"selector": map[string]any{"matchLabels": map[string]any{"app": "canary"}},
		"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "canary"}},
			"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": "registry.example/app:1"}}}}})
	dbLabels := map[string]string{"app": "db"}
	db, err := kube.Clientset.AppsV1().StatefulSets("shop").Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}, Spec: appsv1.StatefulSetSpec{
		Replicas: &replicas, ServiceName: "db", Selector: &metav1.LabelSelector{MatchLabels: dbLabels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: dbLabels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/db:1"}}}},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Their Services, the wake path without which the idle alert does not
	// put them to sleep; the scaler lists them with the chart's rules.
	for _, app := range []string{"web", "canary", "db"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: "shop"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app}, Ports: []corev1.ServicePort{{Port: 80}}}}
		if _, err := kube.Clientset.CoreV1().Services("shop").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The scaler, as its service account, with leader election in the release namespace.
	scalerPort := freePort(t)
	startComponent(t, bin, "scaler", kubeconfigAs(t, kube, sa("upid-scaler")),
		"--config="+files["scaler.yaml"], "--scaler.bearer-token-file="+token,
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(scalerPort))
	waitFor(t, 60*time.Second, "the scaler's Lease", func() (bool, string) {
		l, err := kube.Clientset.CoordinationV1().Leases(ns).Get(ctx, "upid-scaler", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "", "no holder"
	})
	waitFor(t, 30*time.Second, "the scaler's /readyz", func() (bool, string) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", scalerPort))
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	// A sleep and a wake, as Alertmanager would ask: the scaler records its state and scales with
	// the chart's permissions alone.
	dyn, err := dynamic.NewForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]func() (int64, map[string]string){
		"Deployment": func() (int64, map[string]string) {
			d, err := kube.Clientset.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return int64(*d.Spec.Replicas), d.Annotations
		},
		"StatefulSet": func() (int64, map[string]string) {
			s, err := kube.Clientset.AppsV1().StatefulSets("shop").Get(ctx, "db", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return int64(*s.Spec.Replicas), s.Annotations
		},
		"Rollout": func() (int64, map[string]string) {
			r, err := dyn.Resource(schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}).Namespace("shop").Get(ctx, "canary", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			n, _, _ := unstructured.NestedInt64(r.Object, "spec", "replicas")
			return n, r.GetAnnotations()
		},
	}
	for _, step := range []struct {
		kind, workload, alert string
		want                  int64
		saved                 string
	}{
		{"Deployment", "web", "UPIDWorkloadIdle", 0, "3"}, {"Deployment", "web", "UPIDSleepingWorkloadRequested", 3, ""},
		{"StatefulSet", "db", "UPIDWorkloadIdle", 0, "3"}, {"StatefulSet", "db", "UPIDSleepingWorkloadRequested", 3, ""},
		{"Rollout", "canary", "UPIDWorkloadIdle", 0, "3"}, {"Rollout", "canary", "UPIDSleepingWorkloadRequested", 3, ""},
	} {
		body := fmt.Sprintf(`{"version":"4","status":"firing","receiver":"upid-scaler","alerts":[{"status":"firing","labels":{"alertname":%q,"namespace":"shop","kind":%q,"workload":%q},"annotations":{"dollars_per_hour":"0.1"}}]}`, step.alert, step.kind, step.workload)
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/api/v1/notifications", scalerPort), strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		replicas, annotations := read[step.kind]()
		if resp.StatusCode != http.StatusOK || replicas != step.want || annotations["upid.io/sleep-replicas"] != step.saved || strings.Contains(string(answer), "failure") {
			t.Errorf("%s %s: status %d %s; replicas %d, saved %q, want %d and %q", step.kind, step.alert, resp.StatusCode, answer, replicas, annotations["upid.io/sleep-replicas"], step.want, step.saved)
		}
	}

	// Neither component may have created a Secret of its own.
	secrets, err := kube.Clientset.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if s.Name != "upid-webhook-tls" {
			t.Errorf("unexpected Secret %s", s.Name)
		}
	}
	if _, err := kube.Clientset.CoreV1().Secrets("default").Get(ctx, "upid-webhook-tls", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Secret outside the release namespace: %v", err)
	}

	// A pod of the StatefulSet admitted as the API server would send it: the webhook recommends
	// and says so in an Event on the StatefulSet.
	admitted := admitPod(t, admissionPort, pool, db)
	if !strings.Contains(admitted, "upid.io/") {
		t.Errorf("the webhook did not annotate the pod: %s", admitted)
	}
	for _, e := range []struct{ component, reason string }{{"upid-webhook", "UPIDRecommended"}, {"upid-scaler", "UPIDSleep"}} {
		waitFor(t, 30*time.Second, e.component+"'s Event", func() (bool, string) {
			evs, err := kube.Clientset.CoreV1().Events("shop").List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			var seen []string
			for _, ev := range evs.Items {
				if ev.Source.Component == e.component && strings.HasPrefix(ev.Reason, e.reason) {
					return true, ""
				}
				seen = append(seen, ev.Source.Component+"/"+ev.Reason)
			}
			return false, fmt.Sprintf("Events in shop: %v", seen)
		})
	}

	// The exporter's informers too, as its service account.
	exporterSyncs(t, kube, ms, sa("upid-exporter"), true)
	ranThrough = true
}

// recommendationsServer serves GET /api/v1/workloads as the exporter does, with one confident
// recommendation for the container "app" of the given workload.
func recommendationsServer(t *testing.T, ns, kind, name string) string {
	t.Helper()
	cpu, mem := 0.25, float64(256<<20)
	body := exporter.WorkloadsResponse{At: time.Now(), Window: "7d", Workloads: []exporter.WorkloadResult{{
		Namespace: ns, Kind: kind, Name: name,
		Containers: []exporter.ContainerResult{{
			Name:           "app",
			MemoryBytes:    &history.Usage{Max: &mem},
			Recommendation: &exporter.Recommendation{OK: true, Confidence: 0.9, CPURequestCores: &cpu, MemoryRequestBytes: &mem},
		}},
	}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/workloads" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// admitPod sends the webhook, over TLS verified by pool, the AdmissionReview of a new pod of s,
// until the webhook has the recommendation (it reads them in the background), and returns the
// JSON patch of its last answer.
func admitPod(t *testing.T, port int, pool *x509.CertPool, s *appsv1.StatefulSet) string {
	t.Helper()
	controller := true
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Name + "-0", Namespace: s.Namespace, Labels: s.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: s.Name, UID: s.UID, Controller: &controller}}},
		Spec: *s.Spec.Template.Spec.DeepCopy(),
	}
	pod.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	review := []byte(fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"deploy-test",`+
		`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":%q,"name":%q,`+
		`"operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:statefulset-controller"},"object":%s}}`, s.Namespace, pod.Name, raw))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "upid-webhook.upid-system.svc", MinVersion: tls.VersionTLS12}}}
	var patch string
	waitFor(t, 30*time.Second, "an admission answer with a patch", func() (bool, string) {
		resp, err := client.Post(fmt.Sprintf("https://127.0.0.1:%d/mutate-v1-pod", port), "application/json", bytes.NewReader(review))
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var answer admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || answer.Response == nil {
			return false, fmt.Sprintf("%s: %v", resp.Status, err)
		}
		patch = string(answer.Response.Patch)
		return patch != "", fmt.Sprintf("allowed %v, no patch (%+v)", answer.Response.Allowed, answer.Response.Result)
	})
	return patch
}

// buildUpid builds the binary under test, as the Makefile does but without version stamps and
// with go test's own build settings.
func buildUpid(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "upid")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/upid")
	// The environment of `go test` itself (no CGO_ENABLED=0 as in the Makefile), so that
	// every package the test binary already compiled comes from the build cache.
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/upid: %v\n%s", err, out)
	}
	return bin
}

// kubeconfigAs writes a kubeconfig that authenticates as the test's admin and impersonates user
// with the groups every service account has, the way RBAC sees a pod's token.
func kubeconfigAs(t *testing.T, kube *testenv.Kube, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kube.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	ns := strings.Split(user, ":")[2]
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = user
		ai.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// startComponent runs `upid <component> args...` until the test ends, showing its log on failure.
func startComponent(t *testing.T, bin, component, kubeconfig string, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, append([]string{component, "--kubeconfig=" + kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+releaseNamespace, "POD_NAME=upid-"+component+"-0")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("upid %s log:\n%s", component, out.String())
		}
	})
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("no %s after %s: %s", what, timeout, last)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
