package web

import (
	"bytes"
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
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
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

// TestStream checks that streamed families, stored and live, are served
// with the registry's, in text, OpenMetrics and gzip, and that one broken
// family does not hide the others.
func TestStream(t *testing.T) {
	s := start(t, config.Web{})
	one := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "upid_test_one", Help: "One."}, []string{"k"})
	one.WithLabelValues("a").Set(1)
	one.WithLabelValues("b").Set(2)
	two := &counted{Collector: prometheus.NewCounter(prometheus.CounterOpts{Name: "upid_test_two_total", Help: "Two."})}
	two.Collector.(prometheus.Counter).Add(3)
	broken := brokenCollector{prometheus.NewDesc("upid_test_broken", "Broken.", nil, nil)}
	if err := s.Stream(func() Snapshot {
		return Snapshot{Version: 1, Stored: []prometheus.Collector{one, broken}, Live: []prometheus.Collector{two}}
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Stream(live(one)); err == nil {
		t.Error("streaming the same collector twice was accepted")
	}
	if err := s.Stream(live(prometheus.NewGauge(prometheus.GaugeOpts{Name: "upid_build_info", Help: "Clash."}))); err == nil {
		t.Error("streaming a family the registry already has was accepted")
	}
	if err := s.Stream(func() Snapshot { return Snapshot{Version: []int{1}} }); err == nil {
		t.Error("a version that cannot be compared was accepted")
	}
	two.n.Store(0)
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
	// A live family is gathered once per scrape.
	if n := two.n.Load(); n != 3 {
		t.Errorf("the live family was gathered %d times for 3 scrapes", n)
	}
}

// counted counts the Collect calls of the collector it wraps.
type counted struct {
	prometheus.Collector
	n atomic.Int64
}

func (c *counted) Collect(ch chan<- prometheus.Metric) {
	c.n.Add(1)
	c.Collector.Collect(ch)
}

func live(cs ...prometheus.Collector) func() Snapshot {
	return func() Snapshot { return Snapshot{Live: cs} }
}

// TestStoredFamilies checks that stored families are gathered once per
// version and format, served byte for byte as a live exposition would be
// in each format, gzipped as one member, and encoded again ahead of the
// scrapes only for the formats scraped since the last change.
func TestStoredFamilies(t *testing.T) {
	s, err := New(Options{Component: "test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// Without the Go and process collectors the exposition is exact.
	s.Registry = prometheus.NewRegistry()
	version, value := 1, 1.0
	stored := &counted{Collector: gaugeFunc("upid_test_stored", func() float64 { return value })}
	liveValue := 10.0
	lv := gaugeFunc("upid_test_live", func() float64 { return liveValue })
	if err := s.Stream(func() Snapshot {
		return Snapshot{Version: version, Stored: []prometheus.Collector{stored}, Live: []prometheus.Collector{lv}}
	}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Mux) // no Run: Encode is called by hand
	defer srv.Close()

	const (
		text = "text/plain"
		om   = "application/openmetrics-text;version=1.0.0"
		pb   = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
	)
	scrape := func(accept string, gz bool) []byte {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.URL.Path = "/metrics"
		req.Header.Set("Accept", accept)
		req.Header.Set("Accept-Encoding", "identity")
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if !gz {
			return raw
		}
		// One member: a reader that stops at the end of the first one,
		// as curl's and browsers' do, must read it all.
		in := bytes.NewReader(raw)
		zr, err := gzip.NewReader(in)
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		if in.Len() != 0 {
			t.Fatalf("%d bytes follow the first gzip member", in.Len())
		}
		return b
	}
	// want is the exposition of both families as one encoder writes it.
	want := func(accept string, stored, live float64) []byte {
		t.Helper()
		h := http.Header{"Accept": {accept}}
		var buf bytes.Buffer
		enc := expfmt.NewEncoder(&buf, expfmt.NegotiateIncludingOpenMetrics(h))
		for _, c := range []prometheus.Collector{gaugeFunc("upid_test_stored", func() float64 { return stored }), gaugeFunc("upid_test_live", func() float64 { return live })} {
			mfs, err := family{c}.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if err := enc.Encode(mf); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := enc.(expfmt.Closer).Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	for _, accept := range []string{text, om, pb} {
		for _, gz := range []bool{false, true} {
			if got, w := scrape(accept, gz), want(accept, 1, 10); !bytes.Equal(got, w) {
				t.Errorf("%s, gzip %v: got\n%q\nwant\n%q", accept, gz, got, w)
			}
		}
	}
	if n := stored.n.Load(); n != 3 {
		t.Fatalf("stored family gathered %d times for 3 formats and one version", n)
	}

	// Same version: the stored bytes are served, the live family moves.
	value, liveValue = 2, 11
	if got, w := scrape(text, true), want(text, 1, 11); !bytes.Equal(got, w) {
		t.Errorf("same version: got\n%s\nwant\n%s", got, w)
	}
	// A new version is encoded by the first scrape that finds it.
	version = 2
	if got, w := scrape(text, true), want(text, 2, 11); !bytes.Equal(got, w) {
		t.Errorf("new version: got\n%s\nwant\n%s", got, w)
	}
	if n := stored.n.Load(); n != 4 {
		t.Fatalf("stored family gathered %d times, want 4", n)
	}
	// Encode at version 3: each format was scraped since it was last
	// encoded, so all three are encoded again before any scrape. At 4
	// none was, so all three are dropped instead.
	value, version = 3, 3
	s.Encode()
	if n := stored.n.Load(); n != 7 {
		t.Fatalf("after the first Encode the stored family was gathered %d times, want 7 (4 + 3 served formats)", n)
	}
	value, version = 4, 4
	s.Encode()
	if n := stored.n.Load(); n != 7 {
		t.Fatalf("the second Encode gathered the stored family %d times, want none: no format was scraped since", n)
	}
	value, version = 5, 5
	scrape(text, false)
	s.Encode()
	if n := stored.n.Load(); n != 8 {
		t.Fatalf("stored family gathered %d times, want 8", n)
	}
	if got, w := scrape(om, false), want(om, 5, 11); !bytes.Equal(got, w) {
		t.Errorf("a dropped format, scraped again: got\n%s\nwant\n%s", got, w)
	}
	// At most maxFormats encodings are kept, whatever clients ask for.
	for _, accept := range []string{text, om, pb, "application/openmetrics-text;version=0.0.1", "text/plain;version=0.0.4;escaping=values"} {
		scrape(accept, false)
	}
	if n := len(s.encodings); n != maxFormats {
		t.Errorf("%d encodings kept after 5 formats were scraped, want %d", n, maxFormats)
	}
}

func gaugeFunc(name string, f func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: "Test."}, f)
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

// TestStoredFamiliesUnderChange scrapes while the stored families change
// and Encode runs, as Run's loop does: every scrape is whole and serves
// the version it read when it began, or a later one, never an earlier.
func TestStoredFamiliesUnderChange(t *testing.T) {
	s, err := New(Options{Component: "test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Registry = prometheus.NewRegistry()
	var version atomic.Int64
	version.Store(1)
	if err := s.Stream(func() Snapshot {
		v := version.Load()
		return Snapshot{Version: v, Stored: []prometheus.Collector{gaugeFunc("upid_test_version", func() float64 { return float64(v) })}}
	}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Mux)
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	var writer, scrapers sync.WaitGroup
	writer.Go(func() {
		for ctx.Err() == nil {
			version.Add(1)
			s.Encode()
		}
	})
	for range 4 {
		scrapers.Go(func() {
			for i := 0; i < 50 && !t.Failed(); i++ {
				before := version.Load()
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
				if i%2 == 0 {
					req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
				}
				resp, err := http.DefaultClient.Do(req) // the transport asks for gzip and checks it
				if err != nil {
					t.Error(err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Errorf("scrape %d: %v", i, err)
					return
				}
				var served int64
				if _, err := fmt.Sscanf(string(b[strings.Index(string(b), "\nupid_test_version ")+1:]), "upid_test_version %d", &served); err != nil {
					t.Errorf("scrape %d: no version in\n%s", i, b)
					return
				}
				if served < before {
					t.Errorf("scrape %d served version %d, older than the %d it began with", i, served, before)
				}
			}
		})
	}
	scrapers.Wait()
	cancel()
	writer.Wait()
	if v := version.Load(); v < 10 {
		t.Errorf("the version moved only to %d while the scrapes ran", v)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                      false,
		"gzip":                  true,
		"GZIP, deflate":         true,
		"deflate, gzip;q=0.5":   true, // found in review: any q starting with 0 was a no
		"gzip;q=0.01":           true,
		"gzip;q=0":              false,
		"gzip; q=0.000":         false,
		"identity, gzip ;q = 0": false,
		"br":                    false,
	} {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", header, got, want)
		}
	}
}
