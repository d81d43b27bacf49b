package web

import (
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/version"
	"golang.org/x/crypto/bcrypt"

	"github.com/upid-dev/upid/internal/config"
)

func start(t *testing.T, webCfg config.Web) *Server {
	t.Helper()
	if webCfg.ListenAddress == "" {
		webCfg.ListenAddress = "127.0.0.1:0"
	}
	s, err := New(Options{Component: "test", Web: webCfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for s.Addr() == nil {
		if time.Now().After(deadline) {
			t.Fatal("server did not start listening")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	old := version.Version
	version.Version = "1.2.3-test"
	t.Cleanup(func() { version.Version = old })

	s := start(t, config.Web{})
	base := "http://" + s.Addr().String()

	code, body := get(t, http.DefaultClient, base+"/metrics")
	if code != 200 || !strings.Contains(body, `upid_build_info{`) || !strings.Contains(body, `version="1.2.3-test"`) {
		t.Errorf("/metrics = %d, want upid_build_info with the version; got:\n%.500s", code, body)
	}
	checkMetrics(t, body)
	checkDocumented(t, body)

	if code, _ := get(t, http.DefaultClient, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d, want 200", code)
	}
	if code, _ := get(t, http.DefaultClient, base+"/readyz"); code != 503 {
		t.Errorf("/readyz before ready = %d, want 503", code)
	}
	s.SetReady(true)
	if code, _ := get(t, http.DefaultClient, base+"/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d, want 200", code)
	}
	if code, body := get(t, http.DefaultClient, base+"/"); code != 200 || !strings.Contains(body, "upid test") {
		t.Errorf("landing page = %d %q", code, body)
	}
}

// checkMetrics runs the whole exposition through promtool, the same linter
// users' CI applies to exporters.
func checkMetrics(t *testing.T, exposition string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found: run `make deps` (hack/setup.sh) or `apt-get install prometheus`")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// checkDocumented fails for any upid_ metric missing from docs/metrics.md.
func checkDocumented(t *testing.T, exposition string) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, "# TYPE upid_") {
			continue
		}
		name := strings.Fields(line)[2]
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("metric %s is not documented in docs/metrics.md", name)
		}
	}
}

func TestTLSAndBasicAuthFromWebConfig(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webCfg, []byte(fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  admin: %s\n", certFile, keyFile, hash)), 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, config.Web{ConfigFile: webCfg})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + s.Addr().String() + "/metrics"

	if code, _ := get(t, client, url); code != http.StatusUnauthorized {
		t.Errorf("without credentials: %d, want 401", code)
	}
	req, _ := http.NewRequest("GET", url, nil)
	req.SetBasicAuth("admin", "s3cret")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("with credentials: %d, want 200", resp.StatusCode)
	}
	// Go's TLS server answers plain HTTP with a 400, never with data.
	if code, body := get(t, http.DefaultClient, "http://"+s.Addr().String()+"/metrics"); code == 200 || strings.Contains(body, "upid_build_info") {
		t.Errorf("plain HTTP served metrics on a TLS port: %d", code)
	}
}

func TestBrokenWebConfigFailsAtStart(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(bad, []byte("tls_server_config:\n  cert_file: /nonexistent\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Component: "test", Web: config.Web{ListenAddress: "127.0.0.1:0", ConfigFile: bad}})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "web.config_file") {
		t.Errorf("Run = %v, want an error naming web.config_file", err)
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, pool
}

// brokenCollector reports the same series twice, which a registry refuses.
type brokenCollector struct{ d *prometheus.Desc }

func (b brokenCollector) Describe(ch chan<- *prometheus.Desc) { ch <- b.d }
func (b brokenCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(b.d, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(b.d, prometheus.GaugeValue, 2)
}

// TestStream checks that streamed families are served after the
// registry's, in text, OpenMetrics and gzip, and that one broken family
// does not hide the others.
func TestStream(t *testing.T) {
	s := start(t, config.Web{})
	one := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "upid_test_one", Help: "One."}, []string{"k"})
	one.WithLabelValues("a").Set(1)
	one.WithLabelValues("b").Set(2)
	two := prometheus.NewCounter(prometheus.CounterOpts{Name: "upid_test_two_total", Help: "Two."})
	two.Add(3)
	broken := brokenCollector{prometheus.NewDesc("upid_test_broken", "Broken.", nil, nil)}
	scrapes := 0
	if err := s.Stream(func() []prometheus.Collector {
		scrapes++
		return []prometheus.Collector{one, broken, two}
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Stream(fixed(one)); err == nil {
		t.Error("streaming the same collector twice was accepted")
	}
	if err := s.Stream(fixed(prometheus.NewGauge(prometheus.GaugeOpts{Name: "upid_build_info", Help: "Clash."}))); err == nil {
		t.Error("streaming a family the registry already has was accepted")
	}
	scrapes = 0
	url := "http://" + s.Addr().String() + "/metrics"
	for _, tc := range []struct {
		name, accept, encoding, wantType string
		want                             []string
	}{
		{"text", "", "", "text/plain", []string{`upid_test_one{k="a"} 1`, `upid_test_one{k="b"} 2`, "upid_test_two_total 3", "upid_build_info{"}},
		{"openmetrics", "application/openmetrics-text;version=1.0.0", "", "application/openmetrics-text", []string{`upid_test_one{k="a"} 1`, "upid_test_two_total 3", "# EOF"}},
		{"gzip", "", "gzip", "text/plain", []string{`upid_test_one{k="b"} 2`, "upid_test_two_total 3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			// Set by hand, so the transport does not decompress for us.
			req.Header.Set("Accept-Encoding", tc.encoding)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body io.Reader = resp.Body
			if tc.encoding == "gzip" {
				if resp.Header.Get("Content-Encoding") != "gzip" {
					t.Fatalf("Content-Encoding = %q, want gzip", resp.Header.Get("Content-Encoding"))
				}
				zr, err := gzip.NewReader(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				body = zr
			} else if resp.Header.Get("Content-Encoding") != "" {
				t.Fatalf("Content-Encoding = %q without Accept-Encoding", resp.Header.Get("Content-Encoding"))
			}
			b, err := io.ReadAll(body)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.wantType) {
				t.Errorf("Content-Type = %q, want %s", resp.Header.Get("Content-Type"), tc.wantType)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("exposition lacks %q:\n%s", w, b)
				}
			}
			// The duplicate is dropped, what was gathered is served.
			if !strings.Contains(string(b), "upid_test_broken 1") || strings.Contains(string(b), "upid_test_broken 2") {
				t.Errorf("the broken family is not served as gathered:\n%s", b)
			}
			if tc.name == "text" {
				checkMetrics(t, string(b))
			}
		})
	}
	// One call per scrape: what it returns is that scrape's reading.
	if scrapes != 3 {
		t.Errorf("the scrape function ran %d times for 3 scrapes", scrapes)
	}
}

func fixed(cs ...prometheus.Collector) func() []prometheus.Collector {
	return func() []prometheus.Collector { return cs }
}

// TestSlowClientsAreCut: a client that trickles its body, or idles on a
// kept-alive connection, is disconnected, and one still connected at a
// stop does not fail it.
func TestSlowClientsAreCut(t *testing.T) {
	saved := timeouts
	timeouts.read, timeouts.idle, timeouts.shutdown = 500*time.Millisecond, 500*time.Millisecond, 300*time.Millisecond
	t.Cleanup(func() { timeouts = saved })
	for _, tc := range []struct {
		name string
		send func(c net.Conn)
	}{
		{"body trickle", func(c net.Conn) {
			_, _ = io.WriteString(c, "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
			for range 20 {
				if _, err := io.WriteString(c, "1\r\na\r\n"); err != nil {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}},
		{"idle keep-alive", func(c net.Conn) {
			_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, config.Web{})
			c, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			go tc.send(c)
			// Read until the server closes: a reply, if any, then EOF.
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err = io.Copy(io.Discard, c)
			if err != nil {
				t.Fatalf("connection still open after %v: %v", time.Since(start).Round(time.Millisecond), err)
			}
		})
	}
	t.Run("stop with a client still sending", func(t *testing.T) {
		s, err := New(Options{Component: "test", Web: config.Web{ListenAddress: "127.0.0.1:0"}})
		if err != nil {
			t.Fatal(err)
		}
		timeouts.read = time.Minute // the client outlives the stop
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		for s.Addr() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
		time.Sleep(100 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v after a stop with a slow client, want nil: the stop closes what is left", err)
		}
	})
}
