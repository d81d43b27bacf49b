package testenv

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ServingCert is a throwaway CA and a serving certificate signed by it, on disk in the
// layout webhook servers (and the product's `upid webhook --cert-dir`) expect.
type ServingCert struct {
	// Dir holds tls.crt, tls.key and ca.crt.
	Dir      string
	CertFile string
	KeyFile  string
	CAFile   string
	// CAPEM is the CA certificate, for a webhook configuration's caBundle.
	CAPEM []byte
}

// NewServingCert generates an ECDSA P-256 CA and a serving certificate for 127.0.0.1,
// localhost and any extra hosts (IPs or DNS names), written to a temp dir removed when t
// ends.
func NewServingCert(t testing.TB, hosts ...string) *ServingCert {
	t.Helper()
	caPEM, certPEM, keyPEM, err := webhookGenerateCerts(append([]string{"127.0.0.1", "localhost"}, hosts...))
	if err != nil {
		t.Fatalf("testenv: generating serving cert: %v", err)
	}
	dir := t.TempDir()
	sc := &ServingCert{
		Dir:      dir,
		CertFile: filepath.Join(dir, "tls.crt"),
		KeyFile:  filepath.Join(dir, "tls.key"),
		CAFile:   filepath.Join(dir, "ca.crt"),
		CAPEM:    caPEM,
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{sc.CertFile, certPEM, 0o644},
		{sc.KeyFile, keyPEM, 0o600},
		{sc.CAFile, caPEM, 0o644},
	} {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	return sc
}

// webhookGenerateCerts returns PEM blocks for a fresh CA, a leaf for hosts signed by it,
// and the leaf's private key.
func webhookGenerateCerts(hosts []string) (caPEM, certPEM, keyPEM []byte, err error) {
	// Backdated so that a clock a little behind the apiserver's does not reject the cert.
	notBefore := time.Now().Add(-time.Hour)
	notAfter := notBefore.Add(24 * time.Hour)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          webhookSerial(),
		Subject:               pkix.Name{CommonName: "upid-testenv-ca"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: webhookSerial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		nil
}

func webhookSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}

// ServeTLS serves h over HTTPS with cert on a free 127.0.0.1 port and returns its base URL
// ("https://127.0.0.1:PORT"). The server is closed when t ends.
func ServeTLS(t testing.TB, cert *ServingCert, h http.Handler) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatalf("testenv: loading serving cert: %v", err)
	}
	return webhookServe(t, pair, h)
}

func webhookServe(t testing.TB, pair tls.Certificate, h http.Handler) string {
	t.Helper()
	// Listening on port 0 instead of probing for a free port leaves no window for a race.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: listen: %v", err)
	}
	errLog := &webhookTestLog{t: t}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		// TLS handshake failures (a wrong caBundle) belong in the test's log, not on stderr.
		ErrorLog: log.New(errLog, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("testenv: TLS server on %s: %v", l.Addr(), err)
		}
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
		errLog.close()
	})
	return "https://" + l.Addr().String()
}

// webhookTestLog forwards a server's error log to t until closed: connection goroutines
// can outlive Server.Close, and logging to a finished test panics.
type webhookTestLog struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (w *webhookTestLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Logf("testenv: TLS server: %s", bytes.TrimRight(p, "\n"))
	}
	return len(p), nil
}

func (w *webhookTestLog) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// MutatingWebhookSpec describes one mutating webhook for Kube.RegisterMutatingWebhook.
// Zero values get the defaults noted on each field.
type MutatingWebhookSpec struct {
	// Name names both the MutatingWebhookConfiguration and its webhook; it must be a
	// fully qualified name with at least three segments. Default: "upid-testenv.webhook.upid.dev".
	Name string
	// URL is the full webhook URL including its path, e.g. ServeTLS(...)+"/mutate".
	URL string
	// CAPEM verifies the webhook server's certificate (ServingCert.CAPEM).
	CAPEM []byte
	// Rules default to CREATE of core/v1 pods.
	Rules []admissionregistrationv1.RuleWithOperations
	// FailurePolicy defaults to Ignore (fail open), like the product's webhook.
	FailurePolicy admissionregistrationv1.FailurePolicyType
	// TimeoutSeconds defaults to 2.
	TimeoutSeconds int32
	// NamespaceSelector and ObjectSelector are optional.
	NamespaceSelector *metav1.LabelSelector
	ObjectSelector    *metav1.LabelSelector
}

// webhookProbeLabel marks the dry-run pods RegisterMutatingWebhook uses to find out when
// the apiserver has started calling a new configuration. Every registered webhook excludes
// objects carrying it, so the test's own handler never sees a probe.
const webhookProbeLabel = "testenv.upid.dev/webhook-probe"

// RegisterMutatingWebhook creates a MutatingWebhookConfiguration (sideEffects None,
// admissionReviewVersions v1, reinvocationPolicy IfNeeded) from spec and deletes it when t
// ends.
//
// The apiserver loads webhook configurations asynchronously through an informer, so a
// freshly created one is not called for a while. To return only once it is effective, the
// configuration carries a second webhook, "probe.<Name>", that matches only pods labelled
// webhookProbeLabel=<Name> and points at a helper-owned TLS server; dry-run pod creations
// are repeated until that server is called. The apiserver applies a configuration object as
// a whole, so the probe being called means spec's webhook is live too.
func (k *Kube) RegisterMutatingWebhook(t testing.TB, spec MutatingWebhookSpec) {
	t.Helper()
	if spec.Name == "" {
		spec.Name = "upid-testenv.webhook.upid.dev"
	}
	if spec.URL == "" {
		t.Fatalf("testenv: MutatingWebhookSpec.URL is required")
	}
	if len(spec.Rules) == 0 {
		spec.Rules = []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule: admissionregistrationv1.Rule{
				APIGroups:   []string{""},
				APIVersions: []string{"v1"},
				Resources:   []string{"pods"},
			},
		}}
	}
	if spec.FailurePolicy == "" {
		spec.FailurePolicy = admissionregistrationv1.Ignore
	}
	if spec.TimeoutSeconds == 0 {
		spec.TimeoutSeconds = 2
	}
	objectSelector := &metav1.LabelSelector{}
	if spec.ObjectSelector != nil {
		objectSelector = spec.ObjectSelector.DeepCopy()
	}
	objectSelector.MatchExpressions = append(objectSelector.MatchExpressions, metav1.LabelSelectorRequirement{
		Key: webhookProbeLabel, Operator: metav1.LabelSelectorOpDoesNotExist,
	})

	var probeHits atomic.Int64
	probeCA, probeCert, probeKey, err := webhookGenerateCerts([]string{"127.0.0.1"})
	if err != nil {
		t.Fatalf("testenv: generating probe cert: %v", err)
	}
	probePair, err := tls.X509KeyPair(probeCert, probeKey)
	if err != nil {
		t.Fatalf("testenv: probe cert: %v", err)
	}
	probeURL := webhookServe(t, probePair, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probeHits.Add(1)
		webhookAllow(w, r)
	}))

	sideEffects := admissionregistrationv1.SideEffectClassNone
	ifNeeded := admissionregistrationv1.IfNeededReinvocationPolicy
	never := admissionregistrationv1.NeverReinvocationPolicy
	ignore := admissionregistrationv1.Ignore
	probeTimeout := int32(5)
	url := spec.URL
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			{
				Name:                    spec.Name,
				ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: spec.CAPEM},
				Rules:                   spec.Rules,
				FailurePolicy:           &spec.FailurePolicy,
				NamespaceSelector:       spec.NamespaceSelector,
				ObjectSelector:          objectSelector,
				SideEffects:             &sideEffects,
				TimeoutSeconds:          &spec.TimeoutSeconds,
				AdmissionReviewVersions: []string{"v1"},
				ReinvocationPolicy:      &ifNeeded,
			},
			{
				Name:         "probe." + spec.Name,
				ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &probeURL, CABundle: probeCA},
				Rules: []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule: admissionregistrationv1.Rule{
						APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
					},
				}},
				// Ignore: the probe only ever matters for dry-run pods, so it must never be
				// able to fail a request, even while the config outlives its server.
				FailurePolicy:           &ignore,
				ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{webhookProbeLabel: spec.Name}},
				SideEffects:             &sideEffects,
				TimeoutSeconds:          &probeTimeout,
				AdmissionReviewVersions: []string{"v1"},
				ReinvocationPolicy:      &never,
			},
		},
	}

	ctx, cancel := kubeContext()
	defer cancel()
	api := k.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := api.Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("testenv: creating MutatingWebhookConfiguration %s: %v", spec.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := kubeContext()
		defer cancel()
		if err := api.Delete(ctx, spec.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("testenv: deleting MutatingWebhookConfiguration %s: %v", spec.Name, err)
		}
	})

	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "webhook-probe-",
			Namespace:    metav1.NamespaceDefault,
			Labels:       map[string]string{webhookProbeLabel: spec.Name},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Image: "probe.invalid/probe"}}},
	}
	deadline := time.Now().Add(30 * time.Second)
	var lastErr error
	for probeHits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("testenv: MutatingWebhookConfiguration %s not called by the apiserver within 30s (last dry-run error: %v)", spec.Name, lastErr)
		}
		_, lastErr = k.Clientset.CoreV1().Pods(probe.Namespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if probeHits.Load() == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// webhookAllow answers an admission/v1 AdmissionReview with "allowed" and no patch.
func webhookAllow(w http.ResponseWriter, r *http.Request) {
	var review struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Request    struct {
			UID string `json:"uid"`
		} `json:"request"`
	}
	if err := webhookDecode(r, &review); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":%q,"allowed":true}}`, review.Request.UID)
}

func webhookDecode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("unexpected content type %q", ct)
	}
	return json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v)
}
