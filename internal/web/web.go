// Package web runs the HTTP server of every long-running upid component:
// metrics (with upid_build_info), health endpoints and a landing page,
// behind exporter-toolkit so TLS, mTLS and basic auth work the same way
// everywhere.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/upid-dev/upid/internal/config"
)

// Options configure a Server.
type Options struct {
	Component      string // "exporter", "scaler", ...: names the landing page
	Description    string
	DefaultAddress string // used when config.Web.ListenAddress is empty
	Web            config.Web
	Logger         *slog.Logger
}

// Server is the HTTP server of one component. Handlers are added to Mux
// before Run; metrics to Registry at any time.
type Server struct {
	Mux      *http.ServeMux
	Registry *prometheus.Registry

	opts  Options
	ready atomic.Bool

	mu        sync.Mutex
	streamed  []func() Snapshot
	described *prometheus.Registry
	addr      atomic.Value // net.Addr once listening

	encMu     sync.Mutex
	encodings map[expfmt.Format]*encoded
}

// New builds a server whose registry already holds upid_build_info and the
// Go and process collectors.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{Mux: http.NewServeMux(), Registry: prometheus.NewRegistry(), described: prometheus.NewRegistry(), opts: opts}
	for _, c := range []prometheus.Collector{
		versioncollector.NewCollector("upid"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		s.Registry.MustRegister(c)
		s.described.MustRegister(c)
	}
	s.Mux.HandleFunc("/metrics", s.serveMetrics)
	s.Mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	s.Mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "upid " + opts.Component,
		Description: opts.Description,
		Version:     version.Info(),
		Links: []web.LandingLinks{
			{Address: "metrics", Text: "Metrics"},
			{Address: "healthz", Text: "Health"},
			{Address: "readyz", Text: "Readiness"},
		},
	})
	if err != nil {
		return nil, err
	}
	s.Mux.Handle("/", landing)
	return s, nil
}

// SetReady flips /readyz; components call it once they can do their job.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Addr is the address the server listens on, or nil before Run.
func (s *Server) Addr() net.Addr {
	a, _ := s.addr.Load().(net.Addr)
	return a
}

// timeouts bound what a client can hold: a client that trickles its body,
// or keeps a connection it no longer uses, must not keep a goroutine and a
// connection for ever (found in review: both stayed open without end).
// Writes get longer than a scrape of a large cluster takes; the idle
// timeout is controller-runtime's. A variable for the tests.
var timeouts = struct{ readHeader, read, write, idle, shutdown time.Duration }{
	readHeader: 10 * time.Second, read: 30 * time.Second, write: 2 * time.Minute, idle: 90 * time.Second, shutdown: 10 * time.Second,
}

// ListenAddress is the configured address, or the component's default.
func (s *Server) ListenAddress() string {
	if s.opts.Web.ListenAddress != "" {
		return s.opts.Web.ListenAddress
	}
	return s.opts.DefaultAddress
}

// Run serves until ctx is cancelled, then drains in-flight requests.
func (s *Server) Run(ctx context.Context) error {
	if s.opts.Web.ConfigFile != "" {
		// Fail at start, not at the first request, on a broken web config.
		if err := web.Validate(s.opts.Web.ConfigFile); err != nil {
			return fmt.Errorf("web.config_file %s: %w", s.opts.Web.ConfigFile, err)
		}
	}
	l, err := net.Listen("tcp", s.ListenAddress())
	if err != nil {
		return fmt.Errorf("web.listen_address: %w", err)
	}
	s.addr.Store(l.Addr())
	srv := &http.Server{
		Handler:           s.Mux,
		ReadHeaderTimeout: timeouts.readHeader,
		ReadTimeout:       timeouts.read,
		WriteTimeout:      timeouts.write,
		IdleTimeout:       timeouts.idle,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn),
	}
	cfgFile := s.opts.Web.ConfigFile
	flags := &web.FlagConfig{WebConfigFile: &cfgFile}
	done := make(chan error, 1)
	go func() { done <- web.Serve(l, srv, flags, s.opts.Logger) }()
	encodeCtx, stopEncoding := context.WithCancel(ctx)
	defer stopEncoding()
	// Encoding ahead of the scrapes: the first one after a cycle finds
	// its bytes ready.
	go wait.UntilWithContext(encodeCtx, func(context.Context) { s.Encode() }, time.Second)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), timeouts.shutdown)
		defer cancel()
		err := srv.Shutdown(shutdownCtx)
		if errors.Is(err, context.DeadlineExceeded) {
			// A slow client is no reason to fail the stop: what was
			// in flight had its time.
			s.opts.Logger.Warn("shutdown: closing the connections still open", "err", err)
			err = srv.Close()
		}
		if serveErr := <-done; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
			return serveErr
		}
		return err
	}
}
