package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/record"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/upid-dev/upid/internal/config"
)

// Path is where the admission endpoint is served; the
// MutatingWebhookConfiguration points at it.
const Path = "/mutate-v1-pod"

// Options configure Run.
type Options struct {
	Config    config.Webhook
	Namespace string // the webhook's own namespace
	Host      string // listen host of the admission endpoint; empty means all
	Kube      kubernetes.Interface
	// Metadata is the informers' client.
	Metadata metadata.Interface
	// Lookups, required, reads at admission the workloads the informers
	// do not hold yet, with a rate limit of its own (OwnerLookupConfig):
	// those reads never wait for the informers' tokens, nor take them.
	Lookups  metadata.Interface
	Registry prometheus.Registerer
	Logger   *slog.Logger
	// SetReady is told when the webhook can answer admission requests.
	SetReady func(bool)
}

// PolicyOf turns the configuration into a Policy.
func PolicyOf(c config.Webhook) Policy {
	return Policy{
		ChangeThreshold:   c.ChangeThreshold,
		MemoryMargin:      c.MemoryMargin,
		LimitPolicy:       c.LimitPolicy,
		InitContainers:    c.InitContainers == "apply",
		SidecarContainers: c.SidecarContainers == "apply",
	}
}

// Run serves admission requests until ctx ends. It is safe to run several
// replicas: the handler keeps no state but caches, and self-managed TLS
// coordinates through its Secret.
func Run(ctx context.Context, opts Options) error {
	c := opts.Config
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.SetReady == nil {
		opts.SetReady = func(bool) {}
	}
	// With NaN every recommendation would pass, whatever its confidence.
	if err := config.CheckFloat("webhook.min_confidence", c.MinConfidence); err != nil {
		return err
	}
	if opts.Lookups == nil {
		return errors.New("webhook: Options.Lookups, the owner lookups' metadata client, is required")
	}
	recs := NewRecommendations(c.RecommendationsURL, c.MinConfidence, time.Duration(c.MaxStaleness), log)
	cluster := NewInformerCluster(opts.Kube, opts.Metadata, 0)
	hopts, stopEvents := withAPIServer(HandlerOptions{
		DefaultMode:     c.Mode,
		Policy:          PolicyOf(c),
		OwnNamespace:    opts.Namespace,
		Recommendations: recs,
		Cluster:         cluster,
		MaxRequestBytes: c.MaxRequestBytes,
		Logger:          log,
	}, opts.Kube, opts.Lookups)
	defer stopEvents()
	h, err := NewHandler(hopts)
	if err != nil {
		return err
	}
	if opts.Registry != nil {
		for _, col := range append(h.Collectors(), recs, newCertExpiry(filepath.Join(c.CertDir, secretCert))) {
			if err := opts.Registry.Register(col); err != nil {
				return err
			}
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go recs.Run(ctx, time.Duration(c.RefreshInterval))
	// Missing RBAC for one resource makes its informer retry forever; fail
	// visibly instead of never serving.
	defer cluster.Shutdown()
	syncCtx, syncCancel := context.WithTimeout(ctx, 2*time.Minute)
	err = cluster.Start(syncCtx)
	syncCancel()
	if err != nil {
		return fmt.Errorf("reading namespaces, LimitRanges and workloads: %w", err)
	}

	if c.TLS.Mode == "self_managed" {
		if opts.Namespace == "" {
			return errors.New("webhook.namespace: needed for self-managed TLS (or set $POD_NAMESPACE)")
		}
		tlsm := &SelfManagedTLS{
			Kube: opts.Kube, Namespace: opts.Namespace, SecretName: c.TLS.SecretName,
			ConfigurationName: c.TLS.ConfigurationName, WebhookName: c.TLS.WebhookName,
			DNSNames: c.TLS.DNSNames, CertDir: c.CertDir,
			CertValidity: time.Duration(c.TLS.CertValidity), CAValidity: time.Duration(c.TLS.CAValidity),
			Logger: log,
		}
		// The first round must write the files the server loads at start.
		for {
			err := tlsm.Ensure(ctx)
			if err == nil {
				break
			}
			log.Warn("self-managed TLS not ready; retrying", "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Second):
			}
		}
		go tlsm.Run(ctx, time.Duration(c.TLS.CheckInterval))
	}

	srv := newAdmissionServer(c, opts.Host)
	srv.Register(Path, h)
	errc := make(chan error, 1)
	go func() { errc <- srv.Start(ctx) }()
	check := srv.StartedChecker()
	go func() {
		for ctx.Err() == nil {
			ok := check(nil) == nil
			opts.SetReady(ok)
			wait := 10 * time.Second
			if !ok {
				wait = 200 * time.Millisecond
			}
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		opts.SetReady(false)
	}()
	log.Info("serving admission", "port", c.Port, "path", Path, "mode", c.Mode, "tls", c.TLS.Mode, "recommendations", c.RecommendationsURL)
	return <-errc
}

// withAPIServer is o recording its Events on the API server through
// client-go's recorder, and reading through lookups the workloads the
// cache does not hold yet. stop ends the recording.
func withAPIServer(o HandlerOptions, kube kubernetes.Interface, lookups metadata.Interface) (_ HandlerOptions, stop func()) {
	events := record.NewBroadcaster()
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	o.Recorder = events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "upid-webhook"})
	o.GetWorkload = MetadataGetter(lookups)
	return o, events.Shutdown
}

// newAdmissionServer is controller-runtime's webhook server with our TLS
// settings; certificates come from c.CertDir through its certwatcher.
func newAdmissionServer(c config.Webhook, host string) crwebhook.Server {
	return crwebhook.NewServer(crwebhook.Options{
		Host:    host,
		Port:    c.Port,
		CertDir: c.CertDir,
		TLSOpts: []func(*tls.Config){func(t *tls.Config) {
			t.MinVersion = tls.VersionTLS12
			if !c.HTTP2 {
				// HTTP/2 is off by default (CVE-2023-44487, rapid reset).
				t.NextProtos = []string{"http/1.1"}
			}
		}},
	})
}
