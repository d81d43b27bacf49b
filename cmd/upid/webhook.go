package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/upid-dev/upid/internal/web"
	"github.com/upid-dev/upid/webhook"
)

// webhookDefaultAddress serves metrics and health; admission is on
// webhook.port over TLS.
const webhookDefaultAddress = ":9848"

func runWebhook(env *environment) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := env.log.Slog.With("component", "webhook")
	log.Debug("garbage collector", "gogc", webhook.TuneGC())
	setMemoryLimit(log, memlimit.FromCgroup)

	rc, err := kubeRESTConfig(env.cfg.Kubernetes, "upid-webhook")
	if err != nil {
		log.Error("cannot build a Kubernetes client", "err", err)
		return exitUsage
	}
	kube, err := kubernetes.NewForConfig(rest.CopyConfig(rc))
	if err != nil {
		log.Error("cannot build a Kubernetes client", "err", err)
		return exitUsage
	}
	meta, err := metadata.NewForConfig(rest.CopyConfig(rc))
	if err != nil {
		log.Error("cannot build a Kubernetes client", "err", err)
		return exitUsage
	}
	lookups, err := metadata.NewForConfig(webhook.OwnerLookupConfig(rc))
	if err != nil {
		log.Error("cannot build a Kubernetes client", "err", err)
		return exitUsage
	}
	ns := env.cfg.Webhook.Namespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}

	srv, err := web.New(web.Options{
		Component: "webhook", DefaultAddress: webhookDefaultAddress, Web: env.cfg.Web, Logger: log,
		Description: "Mutating admission webhook that sets Pod requests from UPID's recommendations.",
	})
	if err != nil {
		log.Error("web server", "err", err)
		return exitFailure
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Run(ctx) }()

	err = webhook.Run(ctx, webhook.Options{
		Config: env.cfg.Webhook, Namespace: ns, Kube: kube, Metadata: meta, Lookups: lookups,
		Registry: srv.Registry, Logger: log, SetReady: srv.SetReady,
	})
	stop()
	webErr := <-serveErr
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("webhook stopped", "err", err)
		return exitFailure
	}
	if webErr != nil && !errors.Is(webErr, http.ErrServerClosed) {
		log.Error("web server stopped", "err", webErr)
		return exitFailure
	}
	return exitOK
}
