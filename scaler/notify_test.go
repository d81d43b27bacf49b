package scaler

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"
)

// TestHandlerRefuses: every request that cannot be acted on gets the 4xx
// Alertmanager does not retry, is counted, and changes nothing.
func TestHandlerRefuses(t *testing.T) {
	sleepBody := notification(alert("UPIDWorkloadIdle", "firing", web))
	tests := []struct {
		name    string
		method  string
		body    []byte
		header  map[string]string
		code    int
		counted string
		errText string
	}{
		{name: "no credentials", body: sleepBody, code: 401, counted: "unauthorized"},
		{name: "wrong token", body: sleepBody, header: map[string]string{"Authorization": "Bearer " + testToken + "x"}, code: 401, counted: "unauthorized"},
		{name: "token prefix", body: sleepBody, header: map[string]string{"Authorization": "Bearer " + testToken[:5]}, code: 401, counted: "unauthorized"},
		{name: "empty bearer", body: sleepBody, header: map[string]string{"Authorization": "Bearer "}, code: 401, counted: "unauthorized"},
		{name: "basic auth", body: sleepBody, header: map[string]string{"Authorization": "Basic dXBpZDpzM2NyZXQ="}, code: 401, counted: "unauthorized"},
		{name: "token in another header", body: sleepBody, header: map[string]string{"X-Token": testToken}, code: 401, counted: "unauthorized"},
		{name: "GET", method: http.MethodGet, header: map[string]string{"Authorization": "Bearer " + testToken}, code: 405},
		{name: "not JSON", body: []byte("sleep please"), header: auth(), code: 400, counted: "malformed", errText: "not an Alertmanager webhook payload"},
		{name: "JSON array", body: []byte("[]"), header: auth(), code: 400, counted: "malformed"},
		{name: "trailing data", body: append(append([]byte{}, sleepBody...), []byte(`{"x":1}`)...), header: auth(), code: 400, counted: "malformed", errText: "data after"},
		// Decoder.More took these for the end of the input (found in review).
		{name: "trailing brace", body: append(append([]byte{}, sleepBody...), '}'), header: auth(), code: 400, counted: "malformed", errText: "data after"},
		{name: "trailing bracket and garbage", body: append(append([]byte{}, sleepBody...), []byte("]garbage")...), header: auth(), code: 400, counted: "malformed", errText: "data after"},
		{name: "trailing data after whitespace", body: append(append([]byte{}, sleepBody...), []byte(" \n\t}")...), header: auth(), code: 400, counted: "malformed", errText: "data after"},
		{name: "other version", body: bytes.Replace(sleepBody, []byte(`"version":"4"`), []byte(`"version":"5"`), 1), header: auth(), code: 400, counted: "malformed", errText: "version"},
		{name: "no alerts", body: []byte(`{"version":"4","status":"firing"}`), header: auth(), code: 400, counted: "malformed", errText: "alerts: missing"},
		{name: "bad alert status", body: bytes.Replace(sleepBody, []byte(`"status":"firing","labels"`), []byte(`"status":"burning","labels"`), 1), header: auth(), code: 400, counted: "malformed", errText: "alerts[0].status"},
		{name: "alert without name", body: []byte(`{"version":"4","alerts":[{"status":"firing","labels":{"namespace":"shop"}}]}`), header: auth(), code: 400, counted: "malformed", errText: "alerts[0].labels.alertname"},
		{name: "labels of the wrong type", body: []byte(`{"version":"4","alerts":[{"status":"firing","labels":["alertname"]}]}`), header: auth(), code: 400, counted: "malformed"},
		{name: "too large", body: append(bytes.Repeat([]byte(" "), 2048), sleepBody...), header: auth(), code: 413, counted: "too_large", errText: "max_body_bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
			cfg := testConfig(t)
			cfg.MaxBodyBytes = 2048
			s := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
			before := apps.get("shop", "web")
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "/api/v1/notifications", bytes.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if tc.errText != "" && !strings.Contains(rec.Body.String(), tc.errText) {
				t.Errorf("body %s does not say %q", rec.Body, tc.errText)
			}
			if tc.code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if after := apps.get("shop", "web"); after.ResourceVersion != before.ResourceVersion {
				t.Errorf("refused request changed the workload")
			}
			for _, r := range []string{"accepted", "unauthorized", "malformed", "too_large"} {
				want := 0.0
				if r == tc.counted {
					want = 1
				}
				if got := testutil.ToFloat64(s.notificationsTotal.WithLabelValues(r)); got != want {
					t.Errorf("notifications{result=%s} = %g, want %g", r, got, want)
				}
			}
			for _, a := range []string{ActionSleep, ActionWake} {
				for _, r := range []string{ResultSuccess, ResultFailure, ResultDryRun, ResultSkipped, ResultUserChange} {
					if got := testutil.ToFloat64(s.actionsTotal.WithLabelValues(a, r)); got != 0 {
						t.Errorf("actions{%s,%s} = %g after a refused request", a, r, got)
					}
				}
			}
		})
	}
}

func auth() map[string]string { return map[string]string{"Authorization": "Bearer " + testToken} }

// TestHandlerStatusCodes covers the answers to authenticated, well-formed
// notifications: what Alertmanager retries (5xx) and what it does not.
func TestHandlerStatusCodes(t *testing.T) {
	t.Run("sleep then duplicate then wake", func(t *testing.T) {
		c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
		s := newTestScaler(t, c, testConfig(t), record.NewFakeRecorder(10))
		body := notification(alert("UPIDWorkloadIdle", "firing", web))
		for i, want := range []string{ResultSuccess, ResultSkipped} {
			code, resp := post(t, s, body, testToken)
			if code != 200 || len(resp.Results) != 1 || resp.Results[0].Result != want || resp.Results[0].Workload != "shop/Deployment/web" {
				t.Fatalf("delivery %d: %d %+v, want 200 %s", i, code, resp, want)
			}
		}
		if d := apps.get("shop", "web"); *d.Spec.Replicas != 0 {
			t.Fatalf("replicas %d after sleep", *d.Spec.Replicas)
		}
		code, resp := post(t, s, notification(alert("UPIDWorkloadIdle", "resolved", web)), testToken)
		if code != 200 || resp.Results[0].Reason != "resolved" {
			t.Fatalf("resolved idle: %d %+v", code, resp)
		}
		if d := apps.get("shop", "web"); *d.Spec.Replicas != 0 {
			t.Fatalf("a resolved idle alert woke the workload")
		}
		code, resp = post(t, s, notification(alert("UPIDSleepingWorkloadRequested", "firing", web)), testToken)
		if code != 200 || resp.Results[0].Result != ResultSuccess || resp.Results[0].Replicas != 3 {
			t.Fatalf("wake: %d %+v", code, resp)
		}
		if got := testutil.ToFloat64(s.notificationsTotal.WithLabelValues("accepted")); got != 4 {
			t.Errorf("accepted = %g, want 4", got)
		}
	})
	t.Run("kubernetes failure is retried", func(t *testing.T) {
		c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
		s := newTestScaler(t, c, testConfig(t), record.NewFakeRecorder(10))
		apps.fail = func(verb, sub string) error {
			if sub == "scale" {
				return apierrors.NewServiceUnavailable("etcd is away")
			}
			return nil
		}
		code, resp := post(t, s, notification(alert("UPIDWorkloadIdle", "firing", web)), testToken)
		if code != 500 || resp.Results[0].Result != ResultFailure {
			t.Fatalf("%d %+v, want 500 failure", code, resp)
		}
		// The count was saved before the failed scale: nothing is lost,
		// and the retry finishes the job.
		if d := apps.get("shop", "web"); d.Annotations[AnnotationReplicas] != "3" || *d.Spec.Replicas != 3 {
			t.Fatalf("after the failure: replicas %d annotations %v", *d.Spec.Replicas, d.Annotations)
		}
		apps.fail = nil
		if code, resp := post(t, s, notification(alert("UPIDWorkloadIdle", "firing", web)), testToken); code != 200 || resp.Results[0].Result != ResultSuccess {
			t.Fatalf("retry: %d %+v", code, resp)
		}
	})
	t.Run("other alerts and incomplete labels are skipped", func(t *testing.T) {
		c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
		cfg := testConfig(t)
		cfg.Cluster = "prod"
		var logged bytes.Buffer
		s, err := New(Options{Kube: c, Config: cfg, Recorder: record.NewFakeRecorder(10), Logger: log.NewLogfmtLogger(&logged)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		noKind := alert("UPIDWorkloadIdle", "firing", web)
		delete(noKind.Labels, "kind")
		cron := alert("UPIDWorkloadIdle", "firing", Workload{Namespace: "shop", Kind: "CronJob", Name: "web"})
		// A scaler without a dynamic client cannot read Rollouts.
		rollout := alert("UPIDWorkloadIdle", "firing", Workload{Namespace: "shop", Kind: "Rollout", Name: "web"})
		// Names no object can have: a 5xx would be resent for ever.
		slash := alert("UPIDWorkloadIdle", "firing", Workload{Namespace: "shop", Kind: "Deployment", Name: "a/b"})
		dots := alert("UPIDWorkloadIdle", "firing", Workload{Namespace: "..", Kind: "Deployment", Name: "web"})
		// This scaler is cluster "prod" (below): an alert of another cluster
		// names another cluster's shop/web.
		other := alert("UPIDWorkloadIdle", "firing", web)
		other.Labels["cluster"] = "staging"
		code, resp := post(t, s, notification(alert("KubePodCrashLooping", "firing", web), noKind, cron, rollout, slash, dots, other), testToken)
		if code != 200 {
			t.Fatalf("%d %+v", code, resp)
		}
		var reasons []string
		for _, r := range resp.Results {
			reasons = append(reasons, r.Reason)
		}
		if want := []string{"no_action_for_alert", "missing_workload_labels", "unsupported_kind", "unsupported_kind", "invalid_workload_labels", "invalid_workload_labels", "other_cluster"}; !reflect.DeepEqual(reasons, want) {
			t.Errorf("reasons %v, want %v", reasons, want)
		}
		// Each alert meant to act says which label stopped it, in the body
		// and, as Alertmanager does not log bodies, in the log.
		for i, want := range []string{"", "labels.kind missing", `labels.kind: "CronJob" is not`, "labels.kind: Rollout, and this scaler has no client", `labels.workload: "a/b": `, `labels.namespace: "..": `, `labels.cluster: "staging" is not this scaler's "prod"`} {
			if got := resp.Results[i].Detail; want == "" && got != "" || !strings.HasPrefix(got, want) {
				t.Errorf("alert %d (%s): detail %q, want %q…", i, reasons[i], got, want)
			}
		}
		if n := strings.Count(logged.String(), `level=warn msg="alert not acted on"`); n != 5 {
			t.Errorf("%d alerts not acted on logged as warnings, want the 5 that asked for an action of this cluster:\n%s", n, logged.String())
		}
		if d := apps.get("shop", "web"); *d.Spec.Replicas != 3 {
			t.Errorf("replicas changed")
		}
	})
	t.Run("non-leader answers 503", func(t *testing.T) {
		c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
		cfg := testConfig(t)
		cfg.LeaderElection.Enabled = true // and never elected: Run is not called
		s := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
		code, _ := post(t, s, notification(alert("UPIDWorkloadIdle", "firing", web)), testToken)
		if code != 503 {
			t.Fatalf("status %d, want 503", code)
		}
		if d := apps.get("shop", "web"); *d.Spec.Replicas != 3 {
			t.Errorf("a non-leader acted")
		}
	})
	t.Run("label matchers choose the action", func(t *testing.T) {
		c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
		cfg := testConfig(t)
		cfg.Actions = append([]cfgAction{{Alert: "TeamIdle", Labels: map[string]string{"team": "checkout"}, Action: "sleep"}}, cfg.Actions...)
		s := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
		other := alert("TeamIdle", "firing", web)
		other.Labels["team"] = "search"
		if _, resp := post(t, s, notification(other), testToken); resp.Results[0].Reason != "no_action_for_alert" {
			t.Fatalf("team=search: %+v", resp)
		}
		mine := alert("TeamIdle", "firing", web)
		mine.Labels["team"] = "checkout"
		if _, resp := post(t, s, notification(mine), testToken); resp.Results[0].Result != ResultSuccess {
			t.Fatalf("team=checkout: %+v", resp)
		}
		if d := apps.get("shop", "web"); *d.Spec.Replicas != 0 {
			t.Errorf("not asleep")
		}
	})
}

// TestMTLSAuthenticates: a client certificate the TLS layer verified is
// enough, without a token; a plain TLS client without one is not.
func TestMTLSAuthenticates(t *testing.T) {
	c, _ := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
	cfg := testConfig(t)
	cfg.BearerTokenFile = ""
	s := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
	for _, verified := range []bool{false, true} {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(notification(alert("UPIDWorkloadIdle", "firing", web))))
		req.TLS = &tls.ConnectionState{}
		if verified {
			req.TLS.VerifiedChains = [][]*x509.Certificate{{{}}}
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if want := map[bool]int{false: 401, true: 200}[verified]; rec.Code != want {
			t.Errorf("verified=%v: status %d, want %d", verified, rec.Code, want)
		}
	}
}

// TestParseNotificationLenient: unknown fields, missing optional ones and
// Alertmanager's own timestamps are accepted.
func TestParseNotificationLenient(t *testing.T) {
	body := `{"receiver":"upid","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"UPIDWorkloadIdle","namespace":"shop","workload":"web","kind":"Deployment"},
	"annotations":{"dollars_per_hour":"0.5"},"startsAt":"2026-01-02T03:04:05.678Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://p/graph","fingerprint":"abc","extra":{"nested":[1,2]}}],
	"groupLabels":{},"commonLabels":{"alertname":"UPIDWorkloadIdle"},"commonAnnotations":{},"externalURL":"http://am","version":"4","groupKey":"{}:{}","truncatedAlerts":0,"future":true}`
	n, err := ParseNotification([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Alerts) != 1 || n.Alerts[0].Labels["workload"] != "web" || n.Alerts[0].Fingerprint != "abc" {
		t.Errorf("parsed %+v", n)
	}
	if _, err := ParseNotification([]byte(`{"alerts":[]}`)); err != nil {
		t.Errorf("no version and no alerts to act on: %v", err)
	}
	// Alertmanager's JSON encoder ends the body with a newline.
	if _, err := ParseNotification([]byte("{\"alerts\":[]}\n")); err != nil {
		t.Errorf("a newline after the object: %v", err)
	}
}

// FuzzParseNotification: no input panics the parser, and whatever it
// accepts is one JSON value and survives a round trip.
func FuzzParseNotification(f *testing.F) {
	f.Add(notification(alert("UPIDWorkloadIdle", "firing", web)))
	f.Add(notification(alert("UPIDSleepingWorkloadRequested", "resolved", web), alert("UPIDWorkloadIdle", "firing", web)))
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"x"}}]}`))
	f.Add([]byte(`{"version":"4","alerts":null}`))
	f.Add([]byte(`{"alerts":[{"status":"firing","labels":{"alertname":"\u0000"}}]} `))
	f.Add([]byte(`[`))
	f.Add([]byte(``))
	f.Add([]byte(`{"alerts":[]}}`))
	f.Add([]byte(`{"alerts":[]}]garbage`))
	f.Add([]byte("{\"alerts\":[]}\r\n\t "))
	c, _ := newFakeCluster(namespace("shop", optedIn))
	s, err := New(Options{Kube: c, Config: testConfig(f), Recorder: record.NewFakeRecorder(1000)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := ParseNotification(data)
		if err != nil {
			if n.Alerts != nil {
				t.Fatalf("error %v with a partial result", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted what is not one JSON value: %q", data)
		}
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseNotification(b)
		if err != nil || !reflect.DeepEqual(normal(again), normal(n)) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, n, again)
		}
		// Planning never panics and never acts on a resolved alert.
		for _, a := range n.Alerts {
			if p := s.Plan(a); a.Status == "resolved" && p.Action != "" {
				t.Fatalf("resolved alert planned %s", p.Action)
			}
		}
		_ = context.Background
	})
}

// normal makes nil and empty maps compare equal.
func normal(n Notification) string { return fmt.Sprintf("%v", n) }

// TestPlanSavedDollars: the saving comes from the alert's annotation; a
// value that is not a finite non-negative number counts as unknown (0).
func TestPlanSavedDollars(t *testing.T) {
	c, _ := newFakeCluster()
	s := newTestScaler(t, c, testConfig(t), record.NewFakeRecorder(1))
	for in, want := range map[string]float64{"0.5": 0.5, "12": 12, "": 0, "abc": 0, "-1": 0, "NaN": 0, "+Inf": 0, "1e400": 0} {
		a := alert("UPIDWorkloadIdle", "firing", web)
		a.Annotations["dollars_per_hour"] = in
		p := s.Plan(a)
		if p.Action != ActionSleep || p.Request.SavedDollarsPerHour != want {
			t.Errorf("dollars_per_hour %q: planned %s with %g, want sleep with %g", in, p.Action, p.Request.SavedDollarsPerHour, want)
		}
	}
}
