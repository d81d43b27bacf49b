package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upid-dev/upid/internal/testenv"
)

func certsIn(t *testing.T, pemData []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := pemData
	for {
		c, err := parseCert(rest)
		if err != nil {
			return out
		}
		out = append(out, c)
		i := strings.Index(string(rest), "-----END CERTIFICATE-----")
		rest = rest[i+len("-----END CERTIFICATE-----"):]
	}
}

// TestRenewSchedule walks the self-managed certificates through time: the
// leaf renews at two thirds of its life; a renewed CA enters the bundle one
// round before it signs the leaf; an expired CA leaves the bundle.
func TestRenewSchedule(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	s := &SelfManagedTLS{DNSNames: []string{"upid-webhook.upid-system.svc"}, CertValidity: 30 * time.Hour, CAValidity: 90 * time.Hour, Now: func() time.Time { return now }}
	data, err := s.renew(nil)
	if err != nil {
		t.Fatal(err)
	}
	step := func(at time.Duration, wantChange bool) map[string][]byte {
		t.Helper()
		now = start.Add(at)
		next, err := s.renew(data)
		if err != nil {
			t.Fatal(err)
		}
		if (next != nil) != wantChange {
			t.Fatalf("at +%s: changed = %v, want %v", at, next != nil, wantChange)
		}
		if next != nil {
			data = next
		}
		return data
	}
	leafSerial := func() string { c, _ := parseCert(data[secretCert]); return c.SerialNumber.String() }
	caOf := func() *x509.Certificate { c, _ := parseCert(data[secretCA]); return c }

	first := leafSerial()
	firstCA := caOf()
	step(10*time.Hour, false)
	step(21*time.Hour, true) // leaf past 2/3 of 30h
	if leafSerial() == first {
		t.Fatal("leaf not renewed at 2/3 of its life")
	}
	if caOf().SerialNumber.Cmp(firstCA.SerialNumber) != 0 {
		t.Fatal("CA renewed too early")
	}
	step(41*time.Hour, true) // leaf again (issued at 21h)
	beforeCA := leafSerial()
	step(60*time.Hour, true) // CA past 2/3 of 90h, the leaf not yet due
	if caOf().SerialNumber.Cmp(firstCA.SerialNumber) == 0 {
		t.Fatal("CA not renewed at 2/3 of its life")
	}
	if got := len(certsIn(t, data[secretBundle])); got != 2 {
		t.Fatalf("bundle holds %d CAs after CA renewal, want old and new", got)
	}
	if leafSerial() != beforeCA {
		t.Fatal("leaf re-signed in the same round the new CA was published")
	}
	step(60*time.Hour+time.Minute, true)
	leaf, _ := parseCert(data[secretCert])
	if err := leaf.CheckSignatureFrom(caOf()); err != nil {
		t.Fatalf("leaf not moved to the new CA in the next round: %v", err)
	}
	step(91*time.Hour, true) // old CA expired: dropped from the bundle
	if got := len(certsIn(t, data[secretBundle])); got != 1 {
		t.Fatalf("bundle holds %d CAs after the old one expired, want 1", got)
	}
	s.DNSNames = []string{"other.svc"}
	step(91*time.Hour+time.Minute, true)
	leaf, _ = parseCert(data[secretCert])
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "other.svc" {
		t.Fatalf("leaf names %v after dns_names changed", leaf.DNSNames)
	}
}

// TestSelfManagedRotationThroughAPIServer serves with self-managed TLS and
// a serving certificate that lives 15 s, while pods are created against a
// real kube-apiserver: the certificate rotates under load and every pod is
// still mutated (failurePolicy Ignore would hide a failed call, so an
// unmutated pod is how a failure shows).
func TestSelfManagedRotationThroughAPIServer(t *testing.T) {
	k := testenv.StartKube(t, testenv.KubeOptions{})
	const mib = 1 << 20
	createNamespace(t, k, "upid-system", nil)
	createNamespace(t, k, "team", map[string]string{AnnotationMode: ModeEnforce})
	idleDeployment(t, k, "team", "web")
	url := recsServer(t, workloadResult("team", "Deployment", "web", 0.25, 128*mib, 100*mib, 1))
	port := testenv.FreePort(t)
	const name = "pods.webhook.upid.io"
	// Registered with no caBundle: the webhook publishes its own CA.
	k.RegisterMutatingWebhook(t, testenv.MutatingWebhookSpec{Name: name, URL: fmt.Sprintf("https://127.0.0.1:%d%s", port, Path)})

	c := testConfig(port, t.TempDir(), url)
	c.TLS.Mode = "self_managed"
	c.TLS.ConfigurationName = name
	c.TLS.WebhookName = name
	c.TLS.DNSNames = []string{"127.0.0.1"}
	c.TLS.CertValidity = modelDuration(15 * time.Second)
	c.TLS.CAValidity = modelDuration(time.Hour)
	c.TLS.CheckInterval = modelDuration(500 * time.Millisecond)
	_, reg := startWebhook(t, k, c, "upid-system")

	secret, err := k.Clientset.CoreV1().Secrets("upid-system").Get(context.Background(), c.TLS.SecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("self-managed Secret: %v", err)
	}
	for _, key := range []string{secretCert, secretKey, secretCA, secretCAKey, secretBundle} {
		if len(secret.Data[key]) == 0 {
			t.Errorf("Secret lacks %s", key)
		}
	}

	n := 0
	create := func() *corev1.Pod {
		t.Helper()
		n++
		yes := true
		pod, err := k.Clientset.CoreV1().Pods("team").Create(context.Background(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("web-abc-%d", n), Labels: map[string]string{"pod-template-hash": "abc"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-abc", UID: "0a0a0a0a-0000-0000-0000-000000000001", Controller: &yes}},
			},
			Spec: corev1.PodSpec{Containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return pod
	}
	// The apiserver picks up the patched caBundle asynchronously.
	deadline := time.Now().Add(20 * time.Second)
	for create().Annotations[AnnotationMode] != ModeEnforce {
		if time.Now().After(deadline) {
			t.Fatal("no pod mutated within 20s of the caBundle being published")
		}
		time.Sleep(200 * time.Millisecond)
	}

	var (
		mu      sync.Mutex
		serials = map[string]bool{}
	)
	observe := func() {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Errorf("TLS dial: %v", err)
			return
		}
		defer conn.Close()
		mu.Lock()
		serials[conn.ConnectionState().PeerCertificates[0].SerialNumber.String()] = true
		mu.Unlock()
	}
	end := time.Now().Add(25 * time.Second)
	created, unmutated := 0, 0
	for time.Now().Before(end) {
		observe()
		pod := create()
		created++
		if pod.Annotations[AnnotationMode] != ModeEnforce || pod.Spec.Containers[0].Resources.Requests.Cpu().String() != "250m" {
			unmutated++
			t.Errorf("pod %s not mutated during rotation: %v %v", pod.Name, pod.Annotations, pod.Spec.Containers[0].Resources)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// 15s certificates renewed after 10s: two to four of them in 25s.
	if len(serials) < 2 || len(serials) > 4 {
		t.Errorf("saw %d serving certificates in 25s, want 2-4 (a rotation every ~10s)", len(serials))
	}
	mfs, _ := reg.Gather()
	if fo := counterValue(mfs, "upid_webhook_decisions_total", map[string]string{"outcome": OutcomeFailedOpen}); fo != 0 {
		t.Errorf("failed_open decisions = %g", fo)
	}
	t.Logf("%d pods created during %d certificate lifetimes, %d not mutated", created, len(serials), unmutated)
}

// TestSelfManagedReplicasAgree starts several replicas' first round at once
// against a real apiserver: one creates the Secret, the others adopt it, and
// every replica serves the same certificate, trusted by the published
// caBundle.
func TestSelfManagedReplicasAgree(t *testing.T) {
	k := testenv.StartKube(t, testenv.KubeOptions{})
	createNamespace(t, k, "upid-system", nil)
	const name = "pods.webhook.upid.io"
	k.RegisterMutatingWebhook(t, testenv.MutatingWebhookSpec{Name: name, URL: "https://127.0.0.1:1/mutate"})
	const replicas = 4
	dirs := make([]string, replicas)
	errs := make(chan error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		dirs[i] = t.TempDir()
		s := &SelfManagedTLS{
			Kube: k.Clientset, Namespace: "upid-system", SecretName: "upid-webhook-tls",
			ConfigurationName: name, WebhookName: name, DNSNames: []string{"upid-webhook.upid-system.svc"},
			CertDir: dirs[i], CertValidity: time.Hour, CAValidity: 24 * time.Hour,
		}
		wg.Go(func() { errs <- s.Ensure(context.Background()) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Ensure: %v", err)
		}
	}
	secret, err := k.Clientset.CoreV1().Secrets("upid-system").Get(context.Background(), "upid-webhook-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, dir := range dirs {
		got, err := os.ReadFile(filepath.Join(dir, secretCert))
		if err != nil || !bytes.Equal(got, secret.Data[secretCert]) {
			t.Errorf("replica %d serves a certificate other than the Secret's (%v)", i, err)
		}
	}
	cfg, err := k.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	for _, wh := range cfg.Webhooks {
		if wh.Name == name {
			roots.AppendCertsFromPEM(wh.ClientConfig.CABundle)
		} else if bytes.Equal(wh.ClientConfig.CABundle, secret.Data[secretBundle]) {
			t.Errorf("webhook %s's caBundle was changed although webhook_name is %s", wh.Name, name)
		}
	}
	leaf, _ := parseCert(secret.Data[secretCert])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "upid-webhook.upid-system.svc"}); err != nil {
		t.Errorf("serving certificate not trusted by the published caBundle: %v", err)
	}
}

// TestRenewLeafAndCADueTogether: a serving certificate due in the round
// that replaces the CA is signed by the CA the published caBundle trusts,
// and moves to the new CA the round after, once the bundle carries it
// (found in review: it was signed by the new CA at once, which the API
// server did not trust yet).
func TestRenewLeafAndCADueTogether(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	const name = "upid-webhook.upid-system.svc"
	s := &SelfManagedTLS{DNSNames: []string{name}, CertValidity: 90 * time.Hour, CAValidity: 90 * time.Hour, Now: func() time.Time { return now }}
	verifies := func(data map[string][]byte, bundle []byte) error {
		leaf, err := parseCert(data[secretCert])
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(bundle)
		_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: now})
		return err
	}
	data, err := s.renew(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Both the CA and the leaf are past two thirds of their 90 hours.
	now = start.Add(61 * time.Hour)
	next, err := s.renew(data)
	if err != nil || next == nil {
		t.Fatalf("renew: %v, %v", next, err)
	}
	if err := verifies(next, data[secretBundle]); err != nil {
		t.Errorf("the serving certificate written with the new CA does not verify against the caBundle published before: %v", err)
	}
	now = now.Add(time.Hour)
	last, err := s.renew(next)
	if err != nil || last == nil {
		t.Fatalf("the round after: %v, %v", last, err)
	}
	leaf, err := parseCert(last[secretCert])
	if err != nil {
		t.Fatal(err)
	}
	ca, err := parseCert(last[secretCA])
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		t.Errorf("the round after, the serving certificate is not the new CA's: %v", err)
	}
	if err := verifies(last, next[secretBundle]); err != nil {
		t.Errorf("the round after, the serving certificate does not verify against the published caBundle: %v", err)
	}
}
