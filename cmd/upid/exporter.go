package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/version"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/web"
)

const exporterDefaultAddress = ":9847"

// kubeClients builds a client from --kubeconfig/--context, falling back
// to in-cluster configuration as kubectl does, and a dynamic client of
// the same configuration, for custom resources (Argo Rollouts).
func kubeClients(cfg config.Kubernetes) (kubernetes.Interface, dynamic.Interface, error) {
	rc, err := kubeRESTConfig(cfg, "upid")
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes (--kubeconfig, --context): %w", err)
	}
	kc, err := kubernetes.NewForConfig(rest.CopyConfig(rc))
	if err != nil {
		return nil, nil, err
	}
	dc, err := dynamic.NewForConfig(rest.CopyConfig(rc))
	if err != nil {
		return nil, nil, err
	}
	return kc, dc, nil
}

// kubeRESTConfig is the configuration of --kubeconfig/--context, falling
// back to in-cluster as kubectl does, for agent (its User-Agent, with the
// version).
func kubeRESTConfig(cfg config.Kubernetes, agent string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = cfg.Kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: cfg.Context}).ClientConfig()
	if err != nil {
		return nil, err
	}
	rc.UserAgent = agent + "/" + version.Version
	// Informers list once and then watch; the defaults of 5 QPS make the
	// first list of a large cluster needlessly slow.
	rc.QPS, rc.Burst = 50, 100
	return rc, nil
}

// reachKube builds the client of --kubeconfig/--context and asks the API
// server once: informers retry an unreachable one forever, so a terminal
// command says so in one line instead.
func reachKube(cfg config.Kubernetes) (kubernetes.Interface, dynamic.Interface, error) {
	kc, dc, err := kubeClients(cfg)
	if err != nil {
		return nil, nil, usageErrorf("%v", err)
	}
	if _, err := kc.Discovery().ServerVersion(); err != nil {
		return nil, nil, failuref("cannot reach Kubernetes (--kubeconfig, --context): %v", oneLine(err))
	}
	return kc, dc, nil
}

// promClient builds a client of any Prometheus HTTP API with Prometheus's
// own http_config for auth and TLS.
// scopedQuerier adds prometheus.selector to every query of q, and fails
// answers Prometheus warned are partial; the configuration was checked
// when it was loaded.
func scopedQuerier(q history.Querier, cfg config.Prometheus) history.Querier {
	if sq, err := history.ForSelector(q, cfg.Selector); err == nil {
		return sq
	}
	return history.Complete(q)
}

func promClient(cfg config.Prometheus) (v1.API, error) {
	if err := cfg.HTTPClient.Validate(); err != nil {
		return nil, fmt.Errorf("prometheus.http_client: %w", err)
	}
	rt, err := promconfig.NewRoundTripperFromConfig(cfg.HTTPClient, "upid")
	if err != nil {
		return nil, fmt.Errorf("prometheus.http_client: %w", err)
	}
	c, err := api.NewClient(api.Config{Address: cfg.URL, RoundTripper: boundedAnswers{rt, cfg.MaxResponseBytes}})
	if err != nil {
		return nil, fmt.Errorf("prometheus.url: %w", err)
	}
	return v1.NewAPI(c), nil
}

// boundedAnswers fails a Prometheus answer larger than max bytes as it is
// read: the client reads a body whole, and a misbehaving server or proxy
// could otherwise send more than the exporter's memory.
type boundedAnswers struct {
	next http.RoundTripper
	max  int64
}

func (b boundedAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &boundedBody{ReadCloser: resp.Body, left: b.max, max: b.max}
	return resp, nil
}

type boundedBody struct {
	io.ReadCloser
	left, max int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Exactly max bytes is an answer; one more is not.
		var one [1]byte
		if n, err := b.ReadCloser.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, fmt.Errorf("the answer is larger than prometheus.max_response_bytes (%d bytes)", b.max)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

func runExporter(env *environment, demo bool) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := env.log.Slog.With("component", "exporter")
	setMemoryLimit(log, memlimit.FromCgroup)

	opts := exporter.Options{Exporter: env.cfg.Exporter, Prometheus: env.cfg.Prometheus, Logger: log}
	var summary func(*exporter.Results)
	if demo {
		d, err := startDemo(env, &opts)
		if err != nil {
			log.Error("demo failed to start", "err", err)
			return exitFailure
		}
		defer d.Close()
		summary = func(r *exporter.Results) { printDemoSummary(env.stdout, r) }
	} else {
		var err error
		if opts.Kube, _, err = kubeClients(env.cfg.Kubernetes); err != nil {
			log.Error("cannot build a Kubernetes client", "err", err)
			return exitUsage
		}
		if opts.Querier, err = promClient(env.cfg.Prometheus); err != nil {
			log.Error("cannot build a Prometheus client", "err", err)
			return exitUsage
		}
	}
	svc, err := exporter.New(opts)
	if err != nil {
		printConfigErrors(env.stderr, err)
		return exitUsage
	}

	srv, err := web.New(web.Options{
		Component: "exporter", DefaultAddress: exporterDefaultAddress, Web: env.cfg.Web, Logger: log,
		Description: "Idle scores, cost, waste and recommendations per Kubernetes workload.",
	})
	if err != nil {
		log.Error("web server", "err", err)
		return exitFailure
	}
	if err := srv.Stream(svc.Scrape); err != nil {
		log.Error("metrics", "err", err)
		return exitFailure
	}
	srv.Mux.Handle("/api/v1/workloads", svc)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Run(ctx) }()

	syncCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err = svc.Start(syncCtx)
	cancel()
	if err != nil {
		log.Error("cannot read the cluster", "err", err)
		stop()
		<-serveErr
		return exitFailure
	}
	defer svc.Shutdown()

	if err := svc.Cycle(ctx); err != nil {
		log.Warn("first analysis cycle failed; retrying every interval", "err", err)
	} else {
		srv.SetReady(true)
	}
	if addr := srv.Addr(); addr != nil {
		log.Info("serving", "metrics", fmt.Sprintf("http://%s/metrics", addr), "api", fmt.Sprintf("http://%s/api/v1/workloads", addr))
		if summary != nil {
			fmt.Fprintf(env.stdout, "UPID demo: metrics at http://%s/metrics, workloads at http://%s/api/v1/workloads (Ctrl-C stops)\n", addr, addr)
			if r := svc.Last(); r != nil {
				summary(r)
			}
		}
	}
	go svc.RunForecasts(ctx)
	go func() {
		t := time.NewTicker(time.Duration(env.cfg.Exporter.Interval))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := svc.Cycle(ctx); err != nil && ctx.Err() == nil {
					log.Warn("analysis cycle failed; serving the last good results", "err", err)
				} else if err == nil {
					srv.SetReady(true)
				}
			}
		}
	}()
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("web server stopped", "err", err)
		return exitFailure
	}
	return exitOK
}
