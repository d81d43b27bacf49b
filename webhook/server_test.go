package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/testenv"
)

// TestAdmissionServerHTTP2 checks what the admission port negotiates:
// HTTP/1.1 only by default, h2 when webhook.http2 is on.
func TestAdmissionServerHTTP2(t *testing.T) {
	cert := testenv.NewServingCert(t)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cert.CAPEM)
	for _, tt := range []struct {
		http2 bool
		want  string
	}{{false, "http/1.1"}, {true, "h2"}} {
		t.Run(fmt.Sprintf("http2=%v", tt.http2), func(t *testing.T) {
			c := config.Default().Webhook
			c.Port, c.CertDir, c.HTTP2 = testenv.FreePort(t), cert.Dir, tt.http2
			srv := newAdmissionServer(c, "127.0.0.1")
			srv.Register(Path, http.NotFoundHandler())
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Start(ctx) }()
			defer func() { cancel(); <-done }()
			var conn *tls.Conn
			var err error
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				conn, err = tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", c.Port), &tls.Config{RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}})
				if err == nil || time.Now().After(deadline) {
					break
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if got := conn.ConnectionState().NegotiatedProtocol; got != tt.want {
				t.Errorf("negotiated %q, want %q", got, tt.want)
			}
			if v := conn.ConnectionState().Version; v < tls.VersionTLS12 {
				t.Errorf("TLS version %x below 1.2", v)
			}
		})
	}
}
