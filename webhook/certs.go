package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Keys of the self-managed TLS Secret. tls.crt, tls.key and ca.crt follow
// cert-manager's layout; the CA key and the bundle of still-trusted CAs are
// ours.
const (
	secretCert   = "tls.crt"
	secretKey    = "tls.key"
	secretCA     = "ca.crt"
	secretCAKey  = "ca.key"
	secretBundle = "ca-bundle.crt"
)

// SelfManagedTLS keeps a CA and a serving certificate in a Secret shared by
// all replicas, writes them to the cert dir that controller-runtime's
// certwatcher reloads, and keeps the caBundle of the webhook configuration
// current. Renewal happens at two thirds of a certificate's life, so that a
// replica that has not yet reloaded still serves a valid certificate; a
// renewed CA is trusted (in the caBundle) one check before it signs the
// serving certificate, and the old CA stays in the bundle until it expires.
type SelfManagedTLS struct {
	Kube              kubernetes.Interface
	Namespace         string
	SecretName        string
	ConfigurationName string
	WebhookName       string // empty: every webhook of the configuration
	DNSNames          []string
	CertDir           string
	CertValidity      time.Duration
	CAValidity        time.Duration
	Logger            *slog.Logger
	Now               func() time.Time
}

func (s *SelfManagedTLS) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *SelfManagedTLS) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Ensure runs one round: create or renew what is due in the Secret, write
// the files, patch the caBundle. Replicas race safely: the Secret is
// created once (AlreadyExists means another replica won) and updated with
// its resourceVersion (a conflict retries from a fresh read).
func (s *SelfManagedTLS) Ensure(ctx context.Context) error {
	var data map[string][]byte
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		data, err = s.reconcileSecret(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("secret %s/%s: %w", s.Namespace, s.SecretName, err)
	}
	if err := s.writeFiles(data); err != nil {
		return fmt.Errorf("cert_dir %s: %w", s.CertDir, err)
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error { return s.patchCABundle(ctx, data[secretBundle]) }); err != nil {
		return fmt.Errorf("MutatingWebhookConfiguration %s: %w", s.ConfigurationName, err)
	}
	return nil
}

// Run calls Ensure every interval until ctx ends.
func (s *SelfManagedTLS) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.Ensure(ctx); err != nil && ctx.Err() == nil {
			s.log().Warn("self-managed TLS check failed; retrying", "err", err)
		}
	}
}

func (s *SelfManagedTLS) reconcileSecret(ctx context.Context) (map[string][]byte, error) {
	api := s.Kube.CoreV1().Secrets(s.Namespace)
	sec, err := api.Get(ctx, s.SecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		data, err := s.renew(nil)
		if err != nil {
			return nil, err
		}
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.SecretName, Namespace: s.Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "upid-webhook"}},
			Type:       corev1.SecretTypeOpaque,
			Data:       data,
		}
		if _, err := api.Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// Another replica won the race: use its Secret.
				return nil, apierrors.NewConflict(corev1.Resource("secrets"), s.SecretName, err)
			}
			return nil, err
		}
		s.log().Info("created self-managed webhook certificates", "secret", s.Namespace+"/"+s.SecretName)
		return data, nil
	}
	if err != nil {
		return nil, err
	}
	data, err := s.renew(sec.Data)
	if err != nil {
		return nil, err
	}
	if data == nil {
		return sec.Data, nil
	}
	sec.Data = data
	if _, err := api.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		return nil, err
	}
	s.log().Info("renewed self-managed webhook certificates", "secret", s.Namespace+"/"+s.SecretName)
	return data, nil
}

// renew returns the new Secret data, or nil when nothing is due.
func (s *SelfManagedTLS) renew(old map[string][]byte) (map[string][]byte, error) {
	now := s.now()
	ca, caKey, caErr := parseCA(old[secretCA], old[secretCAKey])
	leaf, leafErr := parseLeaf(old[secretCert], old[secretKey])
	data := map[string][]byte{}
	for k, v := range old {
		data[k] = v
	}
	changed := false
	caRenewed := false
	// The CA the published caBundle trusts, while it is valid: a leaf due
	// in the round that replaces it is signed by it, since the API server
	// trusts the new CA only once the caBundle carrying it is patched.
	signer, signerKey := ca, caKey
	if caErr != nil || ca.NotAfter.Before(now) {
		signer = nil
	}
	if caErr != nil || dueForRenewal(ca, now) {
		var caPEM, caKeyPEM []byte
		var err error
		ca, caKey, caPEM, caKeyPEM, err = newCA(now, s.CAValidity)
		if err != nil {
			return nil, err
		}
		data[secretCA], data[secretCAKey] = caPEM, caKeyPEM
		changed, caRenewed = true, true
	}
	bundle := trustedBundle(append(append([]byte{}, data[secretCA]...), old[secretBundle]...), now)
	if !bytes.Equal(bundle, old[secretBundle]) {
		data[secretBundle] = bundle
		changed = true
	}
	needLeaf := leafErr != nil || leaf.NotAfter.Before(now) || dueForRenewal(leaf, now) || !sameNames(leaf, s.DNSNames)
	if !caRenewed && leafErr == nil && leaf.CheckSignatureFrom(ca) != nil {
		// Signed by a CA that the caBundle published in an earlier round
		// already replaced: move to the current CA now that it is trusted.
		needLeaf = true
	}
	if caRenewed && leafErr == nil && !leaf.NotAfter.Before(now) && !dueForRenewal(leaf, now) && sameNames(leaf, s.DNSNames) {
		// Keep serving the old leaf until the new CA is in the caBundle.
		needLeaf = false
	}
	if !caRenewed || signer == nil {
		signer, signerKey = ca, caKey
	}
	if needLeaf {
		certPEM, keyPEM, err := newLeaf(now, s.CertValidity, s.DNSNames, signer, signerKey)
		if err != nil {
			return nil, err
		}
		data[secretCert], data[secretKey] = certPEM, keyPEM
		changed = true
	}
	if !changed {
		return nil, nil
	}
	return data, nil
}

// backdate tolerates a little clock skew between us and the API server
// without eating much of a short lifetime.
func backdate(validity time.Duration) time.Duration {
	return min(time.Minute, validity/10)
}

// dueForRenewal: two thirds of the lifetime have passed.
func dueForRenewal(c *x509.Certificate, now time.Time) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return now.After(c.NotBefore.Add(life * 2 / 3))
}

func sameNames(c *x509.Certificate, names []string) bool {
	var got []string
	got = append(got, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		got = append(got, ip.String())
	}
	want := slices.Clone(names)
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(slices.Compact(got), slices.Compact(want))
}

// trustedBundle keeps the unexpired, distinct certificates of pemData in order.
func trustedBundle(pemData []byte, now time.Time) []byte {
	var out bytes.Buffer
	seen := map[string]bool{}
	for {
		var b *pem.Block
		b, pemData = pem.Decode(pemData)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil || c.NotAfter.Before(now) || seen[string(b.Bytes)] {
			continue
		}
		seen[string(b.Bytes)] = true
		_ = pem.Encode(&out, b)
	}
	return out.Bytes()
}

func parseCA(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	c, err := parseCert(certPEM)
	if err != nil {
		return nil, nil, err
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, errors.New("no CA key")
	}
	k, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if !c.IsCA {
		return nil, nil, errors.New("not a CA")
	}
	return c, k, nil
}

func parseLeaf(certPEM, keyPEM []byte) (*x509.Certificate, error) {
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, err
	}
	return parseCert(certPEM)
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newCA(now time.Time, validity time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("upid-webhook-ca@%d", now.Unix())},
		NotBefore:             now.Add(-backdate(validity)),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return c, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), nil
}

func newLeaf(now time.Time, validity time.Duration, names []string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) ([]byte, []byte, error) {
	if len(names) == 0 {
		return nil, nil, errors.New("webhook.tls.dns_names: at least one name is needed for a serving certificate")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    now.Add(-backdate(validity)),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if notAfter := ca.NotAfter; tmpl.NotAfter.After(notAfter) {
		tmpl.NotAfter = notAfter
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), nil
}

// writeFiles replaces tls.crt, tls.key and ca.crt atomically when they
// differ; certwatcher notices and reloads without a restart.
func (s *SelfManagedTLS) writeFiles(data map[string][]byte) error {
	if err := os.MkdirAll(s.CertDir, 0o700); err != nil {
		return err
	}
	for _, name := range []string{secretKey, secretCert, secretCA} {
		p := filepath.Join(s.CertDir, name)
		if cur, err := os.ReadFile(p); err == nil && bytes.Equal(cur, data[name]) {
			continue
		}
		tmp, err := os.CreateTemp(s.CertDir, "."+name+"-*")
		if err != nil {
			return err
		}
		_, werr := tmp.Write(data[name])
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), 0o600)); err != nil {
			_ = os.Remove(tmp.Name())
			return err
		}
		if err := os.Rename(tmp.Name(), p); err != nil {
			_ = os.Remove(tmp.Name())
			return err
		}
	}
	return nil
}

func (s *SelfManagedTLS) patchCABundle(ctx context.Context, bundle []byte) error {
	api := s.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cfg, err := api.Get(ctx, s.ConfigurationName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	changed := false
	found := false
	for i := range cfg.Webhooks {
		wh := &cfg.Webhooks[i]
		if s.WebhookName != "" && wh.Name != s.WebhookName {
			continue
		}
		found = true
		if !bytes.Equal(wh.ClientConfig.CABundle, bundle) {
			wh.ClientConfig.CABundle = bundle
			changed = true
		}
	}
	if !found {
		return fmt.Errorf("no webhook named %q", s.WebhookName)
	}
	if !changed {
		return nil
	}
	_, err = api.Update(ctx, cfg, metav1.UpdateOptions{})
	return err
}

// certExpiry reports the NotAfter of the serving certificate on disk, the
// one certwatcher serves, whichever mode provides it.
type certExpiry struct {
	path string
	desc *prometheus.Desc
}

func newCertExpiry(path string) *certExpiry {
	return &certExpiry{path: path, desc: prometheus.NewDesc("upid_webhook_certificate_expiry_timestamp_seconds",
		"NotAfter of the serving certificate in the cert dir, as a Unix timestamp; absent when it cannot be read.", nil, nil)}
}

func (c *certExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *certExpiry) Collect(ch chan<- prometheus.Metric) {
	data, err := os.ReadFile(c.path)
	if err != nil {
		return
	}
	cert, err := parseCert(data)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(cert.NotAfter.Unix()))
}
