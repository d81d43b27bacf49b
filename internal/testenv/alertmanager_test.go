package testenv

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// amFindAlert returns the first alert named name with the given status, and its message.
func amFindAlert(msgs []WebhookMessage, name, status string) (WebhookMessage, Alert, bool) {
	for _, m := range msgs {
		for _, a := range m.Alerts {
			if a.Labels["alertname"] == name && a.Status == status {
				return m, a, true
			}
		}
	}
	return WebhookMessage{}, Alert{}, false
}

func amHasAlert(name, status string) func([]WebhookMessage) bool {
	return func(msgs []WebhookMessage) bool {
		_, _, ok := amFindAlert(msgs, name, status)
		return ok
	}
}

// TestAlertmanagerReceivesPrometheusAlert runs the whole path: Prometheus evaluates a rule
// file, sends the firing alert to a real Alertmanager, which delivers it to the Receiver.
func TestAlertmanagerReceivesPrometheusAlert(t *testing.T) {
	t.Parallel()
	recv := NewReceiver(t)
	am := StartAlertmanager(t, AlertmanagerOptions{ReceiverURL: recv.URL()})
	prom := StartPrometheus(t, PrometheusOptions{
		RuleFiles:       []string{"testdata/always_firing.rules.yml"},
		AlertmanagerURL: am.URL,
	})

	msgs := recv.Wait(t, 45*time.Second, amHasAlert("TestenvAlwaysFiring", "firing"))
	msg, alert, _ := amFindAlert(msgs, "TestenvAlwaysFiring", "firing")
	if msg.Version != "4" || msg.Status != "firing" || msg.Receiver != "testenv" {
		t.Errorf("message version=%q status=%q receiver=%q, want 4/firing/testenv", msg.Version, msg.Status, msg.Receiver)
	}
	if msg.GroupLabels["alertname"] != "TestenvAlwaysFiring" || msg.CommonLabels["severity"] != "info" {
		t.Errorf("group labels %v / common labels %v do not carry the rule's labels", msg.GroupLabels, msg.CommonLabels)
	}
	if !strings.HasPrefix(msg.ExternalURL, am.URL) {
		t.Errorf("externalURL = %q, want it under %s", msg.ExternalURL, am.URL)
	}
	if got := alert.Annotations["summary"]; got != "always firing (value 1)" {
		t.Errorf("summary annotation = %q, want the rule's template rendered with value 1", got)
	}
	if !strings.HasPrefix(alert.GeneratorURL, prom.URL+"/graph") {
		t.Errorf("generatorURL = %q, want a link into %s", alert.GeneratorURL, prom.URL)
	}
	if alert.Fingerprint == "" || alert.StartsAt.IsZero() || !alert.EndsAt.IsZero() {
		t.Errorf("firing alert has fingerprint=%q startsAt=%v endsAt=%v", alert.Fingerprint, alert.StartsAt, alert.EndsAt)
	}
}

// TestAlertmanagerDeliversPostedAlerts posts an alert straight to Alertmanager's API, then
// resolves it, and checks both notifications reach the Receiver.
func TestAlertmanagerDeliversPostedAlerts(t *testing.T) {
	t.Parallel()
	recv := NewReceiver(t)
	am := StartAlertmanager(t, AlertmanagerOptions{ReceiverURL: recv.URL()})

	startsAt := time.Now().Add(-time.Minute).Truncate(time.Second)
	alert := PostableAlert{
		Labels:       map[string]string{"alertname": "TestenvDirect", "namespace": "shop", "pod": "web-1"},
		Annotations:  map[string]string{"summary": "posted directly"},
		StartsAt:     startsAt,
		GeneratorURL: "http://upid.example/recommendation/1",
	}
	am.PostAlerts(t, alert)
	msgs := recv.Wait(t, 30*time.Second, amHasAlert("TestenvDirect", "firing"))
	_, got, _ := amFindAlert(msgs, "TestenvDirect", "firing")
	if got.Labels["pod"] != "web-1" || got.Annotations["summary"] != "posted directly" ||
		got.GeneratorURL != alert.GeneratorURL || !got.StartsAt.Equal(startsAt) {
		t.Errorf("delivered alert %+v does not match the posted one %+v", got, alert)
	}

	alert.EndsAt = time.Now().Add(-time.Second)
	am.PostAlerts(t, alert)
	msgs = recv.Wait(t, 30*time.Second, amHasAlert("TestenvDirect", "resolved"))
	msg, resolved, _ := amFindAlert(msgs, "TestenvDirect", "resolved")
	if msg.Status != "resolved" || resolved.EndsAt.IsZero() || resolved.Fingerprint != got.Fingerprint {
		t.Errorf("resolved notification: status=%q endsAt=%v fingerprint=%q (firing one was %q)", msg.Status, resolved.EndsAt, resolved.Fingerprint, got.Fingerprint)
	}
}

// TestAlertmanagerStopAndCleanup checks that Stop is idempotent and that the test cleanup
// removes Alertmanager's directory.
func TestAlertmanagerStopAndCleanup(t *testing.T) {
	t.Parallel()
	var dir, amURL string
	t.Run("lifecycle", func(t *testing.T) {
		am := StartAlertmanager(t, AlertmanagerOptions{})
		dir, amURL = am.Dir, am.URL
		if err := procGetReady(amURL); err != nil {
			t.Fatalf("Alertmanager not ready after start: %v", err)
		}
		am.Stop()
		am.Stop()
		if err := procGetReady(amURL); err == nil {
			t.Error("Alertmanager still answers after Stop")
		}
	})
	if dir == "" {
		t.Fatal("subtest did not start Alertmanager")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cleanup left %s behind (stat: %v)", dir, err)
	}
}
