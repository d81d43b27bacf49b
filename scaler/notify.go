package scaler

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log/level"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Notification is the part of Alertmanager's webhook payload (version 4)
// the scaler reads; every other field is ignored, so additions to the
// format do not break it.
type Notification struct {
	Version  string  `json:"version"`
	GroupKey string  `json:"groupKey"`
	Status   string  `json:"status"`
	Receiver string  `json:"receiver"`
	Alerts   []Alert `json:"alerts"`
}

// Alert is one alert of a Notification.
type Alert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Fingerprint string            `json:"fingerprint"`
}

// ParseNotification decodes and checks a webhook body. Errors name the
// offending field.
func ParseNotification(body []byte) (Notification, error) {
	var n Notification
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&n); err != nil {
		return Notification{}, fmt.Errorf("not an Alertmanager webhook payload: %v", err)
	}
	// More would stop at a '}' or ']' as at the end of input: only
	// whitespace may follow.
	if _, err := dec.Token(); err != io.EOF {
		return Notification{}, errors.New("not an Alertmanager webhook payload: data after the JSON object")
	}
	if n.Version != "" && n.Version != "4" {
		return Notification{}, fmt.Errorf("version: %q is not supported (want \"4\")", n.Version)
	}
	if n.Alerts == nil {
		return Notification{}, errors.New("alerts: missing")
	}
	for i, a := range n.Alerts {
		if a.Status != "firing" && a.Status != "resolved" {
			return Notification{}, fmt.Errorf("alerts[%d].status: %q is neither firing nor resolved", i, a.Status)
		}
		if a.Labels["alertname"] == "" {
			return Notification{}, fmt.Errorf("alerts[%d].labels.alertname: missing", i)
		}
	}
	return n, nil
}

// errLeaseLost ends the notifications a replica handles when it stops
// leading.
var errLeaseLost = errors.New("this replica stopped leading; retry")

// Plan is the request an alert asks for, or why it asks for none.
type Plan struct {
	Action  string // sleep, wake or "" for none
	Request Request
	Skip    string // why no action, when Action is ""
	// Detail names the label at fault when an alert that asks for an
	// action cannot have it.
	Detail string
}

// Plan maps one alert to an action by the configured alert names and
// labels. Resolved alerts never act: a resolved idle alert follows every
// sleep (a workload at zero is not idle, it is not applicable).
func (s *Scaler) Plan(a Alert) Plan {
	if a.Status != "firing" {
		return Plan{Skip: "resolved"}
	}
	action := ""
	for _, rule := range s.actions {
		if rule.Alert != a.Labels["alertname"] {
			continue
		}
		ok := true
		for k, v := range rule.Labels {
			if a.Labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			action = rule.Action
			break
		}
	}
	if action == "" {
		return Plan{Skip: "no_action_for_alert"}
	}
	if c := a.Labels["cluster"]; c != "" && s.cfg.Cluster != "" && c != s.cfg.Cluster {
		return Plan{Skip: "other_cluster", Detail: fmt.Sprintf("labels.cluster: %q is not this scaler's %q", c, s.cfg.Cluster)}
	}
	var missing []string
	for _, l := range []string{"namespace", "kind", "workload"} {
		if a.Labels[l] == "" {
			missing = append(missing, "labels."+l)
		}
	}
	if len(missing) > 0 {
		return Plan{Skip: "missing_workload_labels", Detail: strings.Join(missing, ", ") + " missing"}
	}
	kind, ok := normalKind(a.Labels["kind"])
	if !ok {
		return Plan{Skip: "unsupported_kind", Detail: fmt.Sprintf("labels.kind: %q is not Deployment, StatefulSet or Rollout", a.Labels["kind"])}
	}
	if kind == KindRollout && s.kube.dyn == nil {
		return Plan{Skip: "unsupported_kind", Detail: "labels.kind: Rollout, and this scaler has no client for Argo Rollouts"}
	}
	// A name no object can have is no workload of this cluster: skipped
	// with a 200, since a 5xx would have Alertmanager resend it (and the
	// alerts grouped with it) for ever.
	for _, l := range []struct {
		name string
		errs []string
	}{{"namespace", validation.IsDNS1123Label(a.Labels["namespace"])}, {"workload", validation.IsDNS1123Subdomain(a.Labels["workload"])}} {
		if len(l.errs) > 0 {
			return Plan{Skip: "invalid_workload_labels", Detail: fmt.Sprintf("labels.%s: %q: %s", l.name, a.Labels[l.name], strings.Join(l.errs, "; "))}
		}
	}
	saved, _ := strconv.ParseFloat(a.Annotations["dollars_per_hour"], 64)
	if saved < 0 || math.IsNaN(saved) || math.IsInf(saved, 0) {
		saved = 0
	}
	return Plan{Action: action, Request: Request{
		Workload:            Workload{Namespace: a.Labels["namespace"], Kind: kind, Name: a.Labels["workload"]},
		SavedDollarsPerHour: saved,
		Cause:               "alert " + a.Labels["alertname"],
	}}
}

// Handle carries out every alert of a notification in order and returns
// the results; alerts that ask for nothing get a skipped result without a
// workload action.
func (s *Scaler) Handle(ctx context.Context, n Notification) []Result {
	var out []Result
	for _, a := range n.Alerts {
		p := s.Plan(a)
		if p.Action != "" && (ctx.Err() != nil || !s.IsLeader()) {
			// Out of time, or no longer the leader: the rest is left to
			// Alertmanager's retry, which the failure asks for.
			err := context.Cause(ctx)
			if err == nil {
				err = errLeaseLost
			}
			s.actionsTotal.WithLabelValues(p.Action, ResultFailure).Inc()
			out = append(out, Result{Action: p.Action, Workload: p.Request.Workload, Result: ResultFailure, Reason: "not_attempted", Err: err})
			continue
		}
		switch p.Action {
		case ActionSleep:
			out = append(out, s.safely(ctx, p, s.Sleep))
		case ActionWake:
			out = append(out, s.safely(ctx, p, s.Wake))
		default:
			if p.Detail != "" {
				// An alert meant to act that cannot: Alertmanager does not
				// log a 200's body, so this line is where its sender learns why.
				lvl := level.Warn
				if p.Skip == "other_cluster" {
					lvl = level.Debug // one Alertmanager for many clusters: expected
				}
				lvl(s.log).Log("msg", "alert not acted on", "alertname", a.Labels["alertname"], "reason", p.Skip, "detail", p.Detail)
			}
			out = append(out, Result{Result: ResultSkipped, Reason: p.Skip, Detail: p.Detail})
		}
	}
	return out
}

// safely turns a panic in one action into a failure of that action, so
// that no payload can bring the server down.
func (s *Scaler) safely(ctx context.Context, p Plan, do func(context.Context, Request) Result) (res Result) {
	defer func() {
		if r := recover(); r != nil {
			level.Error(s.log).Log("msg", "panic in scaler action", "action", p.Action, "workload", p.Request.Workload, "panic", r, "stack", string(debug.Stack()))
			s.actionsTotal.WithLabelValues(p.Action, ResultFailure).Inc()
			res = Result{Action: p.Action, Workload: p.Request.Workload, Result: ResultFailure, Reason: "panic", Err: fmt.Errorf("panic: %v", r)}
		}
	}()
	return do(ctx, p.Request)
}

// maxTokenBytes bounds the token file: a token is a few dozen bytes.
const maxTokenBytes = 4096

// authenticated accepts a request with the configured bearer token or a
// client certificate that the TLS layer verified (mTLS in web.config_file).
// The token file is read on every request, so rotating it needs no restart.
func (s *Scaler) authenticated(r *http.Request) (bool, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return true, nil
	}
	if s.cfg.BearerTokenFile == "" {
		return false, nil
	}
	auth := r.Header.Get("Authorization")
	scheme, got, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false, nil
	}
	want, err := readToken(s.cfg.BearerTokenFile)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) == 1, nil
}

func readToken(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("scaler.bearer_token_file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+1))
	if err != nil {
		return nil, fmt.Errorf("scaler.bearer_token_file: %w", err)
	}
	if len(b) > maxTokenBytes {
		return nil, fmt.Errorf("scaler.bearer_token_file: larger than %d bytes", maxTokenBytes)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		// An empty token would let an empty Authorization header in.
		return nil, errors.New("scaler.bearer_token_file: empty")
	}
	return b, nil
}

// response is the body of every answer to a notification, for humans
// reading Alertmanager's logs and for tests.
type response struct {
	Status  string           `json:"status"`
	Error   string           `json:"error,omitempty"`
	Results []resultResponse `json:"results,omitempty"`
}

type resultResponse struct {
	Action   string `json:"action,omitempty"`
	Workload string `json:"workload,omitempty"`
	Result   string `json:"result"`
	Reason   string `json:"reason,omitempty"`
	Replicas int32  `json:"replicas,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ServeHTTP receives Alertmanager webhook notifications. Status codes
// follow Alertmanager's retry rules: 4xx for requests that can never
// succeed (it does not retry them), 5xx for those that may later (it does).
func (s *Scaler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			level.Error(s.log).Log("msg", "panic handling notification", "panic", p, "stack", string(debug.Stack()))
			writeJSON(w, http.StatusInternalServerError, response{Status: "error", Error: "internal error"})
		}
	}()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, response{Status: "error", Error: "POST an Alertmanager webhook payload"})
		return
	}
	ok, err := s.authenticated(r)
	if err != nil {
		// Our own misconfiguration: retrying may succeed once it is fixed.
		level.Error(s.log).Log("msg", "cannot check the bearer token", "err", err)
		writeJSON(w, http.StatusInternalServerError, response{Status: "error", Error: "cannot check credentials"})
		return
	}
	if !ok {
		s.notificationsTotal.WithLabelValues("unauthorized").Inc()
		level.Warn(s.log).Log("msg", "unauthenticated notification refused", "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="upid scaler"`)
		writeJSON(w, http.StatusUnauthorized, response{Status: "error", Error: "unauthorized"})
		return
	}
	limit := int64(s.cfg.MaxBodyBytes)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.notificationsTotal.WithLabelValues("too_large").Inc()
			level.Warn(s.log).Log("msg", "notification too large", "limit_bytes", limit, "remote", r.RemoteAddr)
			writeJSON(w, http.StatusRequestEntityTooLarge, response{Status: "error", Error: fmt.Sprintf("body larger than %d bytes (scaler.max_body_bytes)", limit)})
			return
		}
		writeJSON(w, http.StatusBadRequest, response{Status: "error", Error: "reading body: " + err.Error()})
		return
	}
	n, err := ParseNotification(body)
	if err != nil {
		s.notificationsTotal.WithLabelValues("malformed").Inc()
		level.Warn(s.log).Log("msg", "malformed notification", "err", err, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusBadRequest, response{Status: "error", Error: err.Error()})
		return
	}
	if !s.IsLeader() {
		// Not counted as accepted: nothing was done, and Alertmanager will
		// deliver again, maybe to the leader.
		writeJSON(w, http.StatusServiceUnavailable, response{Status: "error", Error: "not the leader; retry"})
		return
	}
	s.notificationsTotal.WithLabelValues("accepted").Inc()
	ctx, lost := context.WithCancelCause(r.Context())
	defer lost(nil)
	if l := s.lease.Load(); l != nil {
		// A replica that stops leading mid-notification stops acting: the
		// new leader may already act on the same workloads, and its rate
		// limit counts only the sleeps it can see.
		defer context.AfterFunc(*l, func() { lost(errLeaseLost) })()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.RequestTimeout))
	defer cancel()
	results := s.Handle(ctx, n)
	resp := response{Status: "ok"}
	code := http.StatusOK
	for _, res := range results {
		rr := resultResponse{Action: res.Action, Result: res.Result, Reason: res.Reason, Replicas: res.Replicas, Detail: res.Detail}
		if res.Action != "" {
			rr.Workload = res.Workload.String()
		}
		if res.Err != nil {
			rr.Error = res.Err.Error()
			// Every action is idempotent, so a retry of the whole
			// notification only redoes what failed.
			code, resp.Status = http.StatusInternalServerError, "error"
		}
		resp.Results = append(resp.Results, rr)
	}
	writeJSON(w, code, resp)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
