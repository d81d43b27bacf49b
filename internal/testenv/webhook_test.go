package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestWebhookServingCert(t *testing.T) {
	sc := NewServingCert(t, "upid-webhook.upid-system.svc")
	for _, f := range []string{sc.CertFile, sc.KeyFile, sc.CAFile} {
		if !strings.HasPrefix(f, sc.Dir+string(os.PathSeparator)) {
			t.Errorf("%s is not inside Dir %s", f, sc.Dir)
		}
	}
	caFile, err := os.ReadFile(sc.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(caFile) != string(sc.CAPEM) {
		t.Errorf("ca.crt differs from CAPEM")
	}
	if _, err := tls.LoadX509KeyPair(sc.CertFile, sc.KeyFile); err != nil {
		t.Fatalf("tls.crt/tls.key do not form a key pair: %v", err)
	}
	leaf := kubeReadCert(t, sc.CertFile)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(sc.CAPEM) {
		t.Fatal("CAPEM holds no certificate")
	}

	tests := []struct {
		host   string
		wantOK bool
	}{
		{"127.0.0.1", true},
		{"localhost", true},
		{"upid-webhook.upid-system.svc", true},
		{"10.0.0.1", false},
		{"example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			_, err := leaf.Verify(x509.VerifyOptions{
				DNSName:   tt.host,
				Roots:     roots,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if (err == nil) != tt.wantOK {
				t.Errorf("verify for %s: err = %v, want ok = %v", tt.host, err, tt.wantOK)
			}
		})
	}
}

func TestWebhookServeTLS(t *testing.T) {
	sc := NewServingCert(t)
	scoped := &kubeScopedTB{TB: t}
	t.Cleanup(scoped.stop)
	url := ServeTLS(scoped, sc, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+r.URL.Path)
	}))
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("ServeTLS URL = %q, want https://127.0.0.1:PORT", url)
	}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(sc.CAPEM)
	trusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	untrusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer trusting.CloseIdleConnections()

	resp, err := trusting.Get(url + "/x")
	if err != nil {
		t.Fatalf("GET with the generated CA: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello /x" {
		t.Errorf("body = %q, want %q", body, "hello /x")
	}
	if _, err := untrusting.Get(url); err == nil {
		t.Errorf("GET without the generated CA succeeded; the server is not using the generated cert")
	}

	scoped.stop()
	trusting.CloseIdleConnections()
	if kubeDialable(strings.TrimPrefix(url, "https://")) {
		t.Errorf("%s still accepts connections after cleanup", url)
	}
}

// TestWebhook runs a real admission round trip: kube-apiserver calls a ServeTLS handler
// through a MutatingWebhookConfiguration, and fails open once the handler is gone.
func TestWebhook(t *testing.T) {
	start := time.Now()
	k := StartKube(t, KubeOptions{})
	t.Logf("StartKube without controller-manager took %s", time.Since(start).Round(time.Millisecond))
	ctx := t.Context()

	const mutated = "upid.dev/mutated"
	var (
		mu    sync.Mutex
		calls []string // namespace/name of each reviewed object
	)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad AdmissionReview", http.StatusBadRequest)
			return
		}
		var pod corev1.Pod
		if err := json.Unmarshal(review.Request.Object.Raw, &pod); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		calls = append(calls, review.Request.Namespace+"/"+pod.Name)
		mu.Unlock()

		var patch []map[string]any
		if pod.Labels == nil {
			patch = append(patch, map[string]any{"op": "add", "path": "/metadata/labels", "value": map[string]string{mutated: "true"}})
		} else {
			patch = append(patch, map[string]any{"op": "add", "path": "/metadata/labels/" + strings.ReplaceAll(mutated, "/", "~1"), "value": "true"})
		}
		patchJSON, _ := json.Marshal(patch)
		pt := admissionv1.PatchTypeJSONPatch
		review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true, Patch: patchJSON, PatchType: &pt}
		review.Request = nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(review)
	})

	sc := NewServingCert(t)
	server := &kubeScopedTB{TB: t}
	t.Cleanup(server.stop)
	base := ServeTLS(server, sc, handler)

	selected := map[string]string{"upid.dev/webhook": "enabled"}
	k.RegisterMutatingWebhook(t, MutatingWebhookSpec{
		Name:              "pods.testenv.upid.dev",
		URL:               base + "/mutate",
		CAPEM:             sc.CAPEM,
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: selected},
	})
	nsOn := kubeCreateNamespace(t, k, "webhook-on", selected)
	nsOff := kubeCreateNamespace(t, k, "webhook-off", nil)

	// Explicit names: with generateName the name is only assigned after admission.
	createPod := func(t *testing.T, ns, name string, labels map[string]string) *corev1.Pod {
		t.Helper()
		pod, err := k.Clientset.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create pod in %s: %v", ns, err)
		}
		return pod
	}

	var wantCalls []string
	tests := []struct {
		name        string
		ns          string
		pod         string
		labels      map[string]string
		wantMutated bool
	}{
		{"selected namespace, no labels", nsOn, "bare", nil, true},
		{"selected namespace, existing labels", nsOn, "labelled", map[string]string{"app": "web"}, true},
		{"unselected namespace", nsOff, "bare", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := createPod(t, tt.ns, tt.pod, tt.labels)
			if got := pod.Labels[mutated] == "true"; got != tt.wantMutated {
				t.Errorf("label %s present = %v, want %v (labels %v)", mutated, got, tt.wantMutated, pod.Labels)
			}
			for k, v := range tt.labels {
				if pod.Labels[k] != v {
					t.Errorf("label %s = %q, want %q preserved", k, pod.Labels[k], v)
				}
			}
			if tt.wantMutated {
				wantCalls = append(wantCalls, tt.ns+"/"+pod.Name)
			}
		})
	}
	// Exactly one call per selected pod also shows RegisterMutatingWebhook's dry-run probes
	// never reached the handler.
	mu.Lock()
	gotCalls := strings.Join(calls, ",")
	mu.Unlock()
	if want := strings.Join(wantCalls, ","); gotCalls != want {
		t.Errorf("webhook calls = [%s], want [%s]", gotCalls, want)
	}

	t.Run("fails open when the server is down", func(t *testing.T) {
		server.stop()
		began := time.Now()
		pod := createPod(t, nsOn, "server-down", nil)
		if took := time.Since(began); took > 5*time.Second {
			t.Errorf("pod creation took %s with the webhook down, want < 5s", took)
		}
		if _, ok := pod.Labels[mutated]; ok {
			t.Errorf("pod was mutated although the webhook server is stopped: %v", pod.Labels)
		}
	})
}

func kubeReadCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// kubeScopedTB collects the cleanups registered through it so that a test can end one
// helper's lifetime (e.g. stop a server, or a whole cluster) early; stop is idempotent.
type kubeScopedTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	stopped  atomic.Bool
}

func (s *kubeScopedTB) Cleanup(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, fn)
}

func (s *kubeScopedTB) stop() {
	if s.stopped.Swap(true) {
		return
	}
	s.mu.Lock()
	fns := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}
