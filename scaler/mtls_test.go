package scaler

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
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/tools/record"

	"github.com/upid-dev/upid/internal/config"
	upidweb "github.com/upid-dev/upid/internal/web"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, and returns their paths.
type testPKI struct{ dir, ca, serverCert, serverKey, clientCert, clientKey string }

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	p := testPKI{dir: dir, ca: filepath.Join(dir, "ca.crt"),
		serverCert: filepath.Join(dir, "server.crt"), serverKey: filepath.Join(dir, "server.key"),
		clientCert: filepath.Join(dir, "client.crt"), clientKey: filepath.Join(dir, "client.key")}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(path, typ string, der []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.ca, "CERTIFICATE", caDER)
	leaf := func(serial int64, usage x509.ExtKeyUsage, certPath, keyPath string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "alertmanager"}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		write(certPath, "CERTIFICATE", der)
		kd, _ := x509.MarshalECPrivateKey(key)
		write(keyPath, "EC PRIVATE KEY", kd)
	}
	leaf(2, x509.ExtKeyUsageServerAuth, p.serverCert, p.serverKey)
	leaf(3, x509.ExtKeyUsageClientAuth, p.clientCert, p.clientKey)
	return p
}

// TestMTLSThroughWebConfig serves the scaler behind exporter-toolkit's
// TLS, as `upid scaler --web.config.file` does: a verified client
// certificate authenticates on its own, a token does without one, and a
// client with neither is refused.
func TestMTLSThroughWebConfig(t *testing.T) {
	pki := newTestPKI(t)
	webCfg := filepath.Join(pki.dir, "web.yml")
	if err := os.WriteFile(webCfg, []byte("tls_server_config:\n  cert_file: "+pki.serverCert+"\n  key_file: "+pki.serverKey+
		"\n  client_ca_file: "+pki.ca+"\n  client_auth_type: VerifyClientCertIfGiven\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
	s := newTestScaler(t, c, testConfig(t), record.NewFakeRecorder(10))
	srv, err := upidweb.New(upidweb.Options{Component: "scaler", Web: config.Web{ListenAddress: "127.0.0.1:0", ConfigFile: webCfg}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv.Mux.Handle("/api/v1/notifications", s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 10*time.Second, "the server to listen", func() bool { return srv.Addr() != nil })
	url := "https://" + srv.Addr().String() + "/api/v1/notifications"

	caPEM, _ := os.ReadFile(pki.ca)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	clientPair, err := tls.LoadX509KeyPair(pki.clientCert, pki.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	client := func(withCert bool) *http.Client {
		cfg := &tls.Config{RootCAs: pool}
		if withCert {
			cfg.Certificates = []tls.Certificate{clientPair}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	}
	idle := notification(alert("UPIDWorkloadIdle", "firing", web))
	tests := []struct {
		name  string
		cert  bool
		token string
		code  int
	}{
		{"neither", false, "", 401},
		{"wrong token, no certificate", false, "nope", 401},
		{"certificate only", true, "", 200},
		{"token only", false, testToken, 200},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(idle))
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := client(tc.cert).Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.code)
		}
		// The first accepted request, the certificate's, puts it to sleep.
		if d := apps.get("shop", "web"); (*d.Spec.Replicas == 0) != (tc.code == 200) {
			t.Fatalf("%s: replicas %d after status %d", tc.name, *d.Spec.Replicas, resp.StatusCode)
		}
	}
}
