package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/upid-dev/upid/internal/web"
	"github.com/upid-dev/upid/scaler"
)

const (
	scalerDefaultAddress = ":9849"
	// scalerPath receives Alertmanager's webhook notifications.
	scalerPath = "/api/v1/notifications"
)

func runScaler(env *environment) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger := log.With(env.log.Kit, "component", "scaler")
	setMemoryLimit(env.log.Slog.With("component", "scaler"), memlimit.FromCgroup)
	cfg := env.cfg.Scaler
	if cfg.BearerTokenFile == "" && env.cfg.Web.ConfigFile == "" {
		fmt.Fprintln(env.stderr, "upid scaler: set scaler.bearer_token_file, or web.config_file with client certificates (mTLS): otherwise no notification can be accepted")
		return exitUsage
	}
	kc, dc, err := kubeClients(env.cfg.Kubernetes)
	if err != nil {
		level.Error(logger).Log("msg", "cannot build a Kubernetes client", "err", err)
		return exitUsage
	}
	s, err := scaler.New(scaler.Options{Kube: kc, Dynamic: dc, Config: cfg, Logger: logger})
	if err != nil {
		printConfigErrors(env.stderr, err)
		return exitUsage
	}
	defer s.Close()

	srv, err := web.New(web.Options{
		Component: "scaler", DefaultAddress: scalerDefaultAddress, Web: env.cfg.Web, Logger: env.log.Slog.With("component", "scaler"),
		Description: "Puts idle workloads to sleep and wakes them on Alertmanager notifications (POST " + scalerPath + ").",
	})
	if err != nil {
		level.Error(logger).Log("msg", "web server", "err", err)
		return exitFailure
	}
	srv.Registry.MustRegister(s.Collectors()...)
	srv.Registry.MustRegister(s.SleepCollector())
	srv.Mux.Handle(scalerPath, s)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Run(ctx) }()
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx, scaler.RunOptions{Ready: func() { srv.SetReady(true) }}) }()

	select {
	case err := <-runErr:
		if err != nil && ctx.Err() == nil {
			level.Error(logger).Log("msg", "scaler stopped", "err", err)
			stop()
			<-serveErr
			return exitFailure
		}
		err = <-serveErr
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			level.Error(logger).Log("msg", "web server stopped", "err", err)
			return exitFailure
		}
	case err := <-serveErr:
		stop()
		<-runErr
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			level.Error(logger).Log("msg", "web server stopped", "err", err)
			return exitFailure
		}
	}
	return exitOK
}

// runSleepWake is `upid sleep` and `upid wake`: one action now, by an
// operator, through the same code as the alert-driven ones.
func runSleepWake(env *environment, action, ref string, dryRun bool) int {
	w, err := scaler.ParseWorkload(ref)
	if err != nil {
		fmt.Fprintf(env.stderr, "upid %s: %v\n", action, err)
		return exitUsage
	}
	kc, dc, err := reachKube(env.cfg.Kubernetes)
	if err != nil {
		return finish(env, action, err)
	}
	logger := log.With(env.log.Kit, "component", action)
	cfg := env.cfg.Scaler
	// An operator's command acts at once: leader election is for the
	// server's replicas, not for a person at a terminal.
	cfg.LeaderElection.Enabled = false
	// Nor does it receive notifications: the server's bearer token file,
	// unreadable from a laptop, is none of its business.
	cfg.BearerTokenFile = ""
	s, err := scaler.New(scaler.Options{Kube: kc, Dynamic: dc, Config: cfg, Logger: logger, Recorder: scaler.NewSyncRecorder(kc, logger)})
	if err != nil {
		printConfigErrors(env.stderr, err)
		return exitUsage
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.RequestTimeout))
	defer cancel()
	req := scaler.Request{Workload: w, Cause: "upid " + action, Manual: true, DryRun: dryRun}
	var res scaler.Result
	if action == scaler.ActionSleep {
		res = s.Sleep(ctx, req)
	} else {
		res = s.Wake(ctx, req)
	}
	fmt.Fprintln(env.stdout, res)
	if res.Detail != "" {
		// A sleep the scaler itself would have refused (no_wake_path):
		// the operator's call, but not a silent one.
		fmt.Fprintf(env.stderr, "upid %s: warning: %s\n", action, res.Detail)
	}
	switch {
	case res.Result == scaler.ResultSuccess, res.Result == scaler.ResultDryRun:
		return exitOK
	case res.Result == scaler.ResultSkipped && (res.Reason == "already_asleep" || res.Reason == "not_asleep"):
		// Already in the state asked for: success for scripts.
		return exitOK
	default:
		return exitFailure
	}
}
