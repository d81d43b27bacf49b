package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

const alertmanagerFix = "alertmanager not found: run `make deps` (hack/setup.sh) or `apt-get install prometheus-alertmanager`"

// WebhookMessage is the body Alertmanager POSTs to a webhook receiver (payload version 4).
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"` // firing or resolved
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert in a WebhookMessage. EndsAt is the zero time for firing alerts.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// PostableAlert is an alert for Alertmanager's POST /api/v2/alerts. Zero times are left out so
// that Alertmanager fills them in: StartsAt becomes now, and an alert without EndsAt fires
// until resolve_timeout. An EndsAt in the past resolves the alert.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Receiver is a local webhook endpoint that records what Alertmanager delivers.
type Receiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	msgs    []WebhookMessage
	errs    []string
	changed chan struct{} // closed and replaced whenever msgs or errs change
}

// NewReceiver starts a webhook receiver that is closed when the test ends. Create it before
// the Alertmanager that delivers to it, so that cleanup stops Alertmanager first.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{changed: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serveHTTP))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	var msg WebhookMessage
	body, err := io.ReadAll(req.Body)
	if err == nil {
		err = json.Unmarshal(body, &msg)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.Method != http.MethodPost || err != nil {
		r.errs = append(r.errs, fmt.Sprintf("%s %s: %v: %.200q", req.Method, req.URL.Path, err, body))
		http.Error(w, "bad webhook request", http.StatusBadRequest)
	} else {
		r.msgs = append(r.msgs, msg)
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// URL is the webhook URL to configure in Alertmanager.
func (r *Receiver) URL() string { return r.srv.URL + "/webhook" }

// Messages returns a copy of the messages received so far, oldest first.
func (r *Receiver) Messages() []WebhookMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]WebhookMessage(nil), r.msgs...)
}

// Wait blocks until cond accepts the messages received so far (a nil cond accepts any
// message) and returns them. It fails the test on timeout, and also when a request could not
// be decoded, since that means the payload format assumed here is wrong.
func (r *Receiver) Wait(t testing.TB, timeout time.Duration, cond func([]WebhookMessage) bool) []WebhookMessage {
	t.Helper()
	if cond == nil {
		cond = func(m []WebhookMessage) bool { return len(m) > 0 }
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		msgs := append([]WebhookMessage(nil), r.msgs...)
		errs := append([]string(nil), r.errs...)
		changed := r.changed
		r.mu.Unlock()
		if len(errs) > 0 {
			t.Fatalf("testenv: receiver got malformed webhook requests:\n%s", strings.Join(errs, "\n"))
		}
		if cond(msgs) {
			return msgs
		}
		select {
		case <-changed:
		case <-timer.C:
			b, _ := json.MarshalIndent(msgs, "", "  ")
			t.Fatalf("testenv: webhook condition not met after %s; received %d messages:\n%s", timeout, len(msgs), b)
		}
	}
}

// AlertmanagerOptions configures StartAlertmanager.
type AlertmanagerOptions struct {
	// ReceiverURL gets every alert as a webhook with send_resolved; empty routes to a receiver
	// without integrations.
	ReceiverURL string
	// ReceiverCredentialsFile, when set, makes Alertmanager send the file's content as a
	// bearer token to ReceiverURL (http_config.authorization.credentials_file).
	ReceiverCredentialsFile string
	// GroupBy defaults to [alertname], so that each alert name is its own notification.
	GroupBy []string
	// GroupWait and GroupInterval default to 1s (Alertmanager's own defaults are 30s and 5m);
	// RepeatInterval defaults to 1h so that a test does not see repeats it did not ask for.
	GroupWait, GroupInterval, RepeatInterval time.Duration
	// ResolveTimeout resolves alerts posted without EndsAt; Alertmanager's default is 5m.
	ResolveTimeout time.Duration
	// ExtraConfigYAML is appended to the generated alertmanager.yml, for top-level keys it does
	// not set, such as inhibit_rules or templates.
	ExtraConfigYAML string
}

// Alertmanager is a real Alertmanager started by StartAlertmanager.
type Alertmanager struct {
	URL     string // http://127.0.0.1:PORT
	Dir     string
	LogFile string

	proc *serverProcess
}

type amConfig struct {
	Global struct {
		ResolveTimeout string `yaml:"resolve_timeout,omitempty"`
	} `yaml:"global"`
	Route struct {
		Receiver       string   `yaml:"receiver"`
		GroupBy        []string `yaml:"group_by"`
		GroupWait      string   `yaml:"group_wait"`
		GroupInterval  string   `yaml:"group_interval"`
		RepeatInterval string   `yaml:"repeat_interval"`
	} `yaml:"route"`
	Receivers []amReceiver `yaml:"receivers"`
}

type amReceiver struct {
	Name           string            `yaml:"name"`
	WebhookConfigs []amWebhookConfig `yaml:"webhook_configs,omitempty"`
}

type amWebhookConfig struct {
	URL          string        `yaml:"url"`
	SendResolved bool          `yaml:"send_resolved"`
	HTTPConfig   *amHTTPConfig `yaml:"http_config,omitempty"`
}

type amHTTPConfig struct {
	Authorization struct {
		Type            string `yaml:"type"`
		CredentialsFile string `yaml:"credentials_file"`
	} `yaml:"authorization"`
}

func amDurationOr(d, def time.Duration) string {
	if d <= 0 {
		d = def
	}
	return model.Duration(d).String()
}

// StartAlertmanager starts Alertmanager on a free port of 127.0.0.1 with clustering disabled
// and waits until it is ready. It is stopped and its directory removed when the test ends.
func StartAlertmanager(t testing.TB, opts AlertmanagerOptions) *Alertmanager {
	t.Helper()
	// Debian names the binary prometheus-alertmanager; upstream release tarballs do not.
	bin := requireBinary(t, alertmanagerFix, "prometheus-alertmanager", "alertmanager")
	dir, err := os.MkdirTemp("", "testenv-alertmanager-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	am := &Alertmanager{Dir: dir, LogFile: filepath.Join(dir, "alertmanager.log")}
	t.Cleanup(func() {
		if t.Failed() && am.proc != nil {
			t.Logf("testenv: last lines of %s:\n%s", am.LogFile, logTail(am.LogFile, logTailLines))
		}
		am.Stop()
		if am.proc != nil && am.proc.stopErr != nil {
			t.Errorf("testenv: %v", am.proc.stopErr)
		}
		os.RemoveAll(dir)
	})

	var c amConfig
	if opts.ResolveTimeout > 0 {
		c.Global.ResolveTimeout = model.Duration(opts.ResolveTimeout).String()
	}
	c.Route.Receiver = "testenv"
	c.Route.GroupBy = opts.GroupBy
	if c.Route.GroupBy == nil {
		c.Route.GroupBy = []string{"alertname"}
	}
	c.Route.GroupWait = amDurationOr(opts.GroupWait, time.Second)
	c.Route.GroupInterval = amDurationOr(opts.GroupInterval, time.Second)
	c.Route.RepeatInterval = amDurationOr(opts.RepeatInterval, time.Hour)
	recv := amReceiver{Name: "testenv"}
	if opts.ReceiverURL != "" {
		recv.WebhookConfigs = []amWebhookConfig{{URL: opts.ReceiverURL, SendResolved: true}}
		if opts.ReceiverCredentialsFile != "" {
			hc := &amHTTPConfig{}
			hc.Authorization.Type = "Bearer"
			hc.Authorization.CredentialsFile = opts.ReceiverCredentialsFile
			recv.WebhookConfigs[0].HTTPConfig = hc
		}
	}
	c.Receivers = []amReceiver{recv}
	cfg, err := yaml.Marshal(&c)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if opts.ExtraConfigYAML != "" {
		cfg = append(cfg, '\n')
		cfg = append(cfg, opts.ExtraConfigYAML...)
		cfg = append(cfg, '\n')
	}
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}

	proc, port := startServer(t, serverSpec{
		name:    "alertmanager",
		bin:     bin,
		logPath: am.LogFile,
		args: func(port int) []string {
			return []string{
				"--config.file=" + cfgPath,
				"--storage.path=" + filepath.Join(dir, "data"),
				"--web.listen-address=" + loopbackAddr(port),
				// Without this the webhook's externalURL carries the machine's host name.
				"--web.external-url=http://" + loopbackAddr(port) + "/",
				// An empty address disables gossip, which would otherwise bind 0.0.0.0:9094 and
				// clash between parallel tests.
				"--cluster.listen-address=",
			}
		},
		readyURL: func(port int) string { return "http://" + loopbackAddr(port) + "/-/ready" },
	}, 0)
	am.proc = proc
	am.URL = "http://" + loopbackAddr(port)
	return am
}

// PostAlerts sends alerts to POST /api/v2/alerts, as Prometheus does, and fails the test if
// Alertmanager rejects them.
func (a *Alertmanager) PostAlerts(t testing.TB, alerts ...PostableAlert) {
	t.Helper()
	body, err := json.Marshal(alerts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL+"/api/v2/alerts", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("testenv: posting alerts: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("testenv: posting alerts: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
}

// Stop stops Alertmanager (SIGTERM, then SIGKILL after 10 s). It is idempotent; the
// directory is removed by the test cleanup.
func (a *Alertmanager) Stop() {
	if a.proc != nil {
		a.proc.stop()
	}
}
