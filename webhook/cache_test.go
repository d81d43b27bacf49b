package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/upid-dev/upid/exporter"
)

// TestRecommendationsCache reads a real HTTP server speaking the exporter's
// JSON: lookups by candidate, confidence, staleness, and keeping the last
// good copy when a refresh fails.
func TestRecommendationsCache(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	body, _ := json.Marshal(exporter.WorkloadsResponse{At: at, Workloads: []exporter.WorkloadResult{
		workloadResult("team", "Deployment", "web", 0.25, 128*mi, 100*mi, 0.9),
		workloadResult("team", "CronJob", "backup", 0.5, 64*mi, 10*mi, 1),
		workloadResult("team", "Deployment", "young", 0.25, 128*mi, 100*mi, 0.2),
		{Namespace: "team", Kind: "Deployment", Name: "nodata", Containers: []exporter.ContainerResult{{Name: "app", Recommendation: &exporter.Recommendation{OK: false}}}},
		// Pod-level figures only (the containers have none), one of them
		// under the minimum confidence.
		{Namespace: "team", Kind: "Deployment", Name: "podlevel", Containers: []exporter.ContainerResult{{Name: "app", Recommendation: &exporter.Recommendation{OK: false}}},
			Pod: []exporter.PodAdvice{{Resource: "cpu", Request: 0.35, Confidence: 0.9}, {Resource: "memory", Request: 300 * mi, Confidence: 0.3}}},
		{Namespace: "team", Kind: "Deployment", Name: "podyoung", Pod: []exporter.PodAdvice{{Resource: "cpu", Request: 0.35, Confidence: 0.3}}},
	}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/workloads" {
			http.NotFound(w, r)
			return
		}
		if s := int(status.Load()); s != http.StatusOK {
			http.Error(w, "no results yet", s)
			return
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()

	now := at.Add(10 * time.Minute)
	r := NewRecommendations(srv.URL+"/", 0.5, time.Hour, nil)
	r.now = func() time.Time { return now }
	if _, _, why := r.Lookup("team", []Workload{{"Deployment", "web"}}); why != "no_recommendations_yet" {
		t.Errorf("before the first read: %q", why)
	}
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		ns         string
		candidates []Workload
		wantKind   string
		wantReason string
	}{
		{"deployment", "team", []Workload{{"Deployment", "web"}, {"ReplicaSet", "web-abc"}}, "Deployment", ""},
		{"cronjob before job", "team", []Workload{{"CronJob", "backup"}, {"Job", "backup-123"}}, "CronJob", ""},
		{"job of no cronjob", "team", []Workload{{"CronJob", "migrate"}, {"Job", "migrate-1"}}, "", "no_recommendation"},
		{"other namespace", "prod", []Workload{{"Deployment", "web"}}, "", "no_recommendation"},
		{"low confidence", "team", []Workload{{"Deployment", "young"}}, "", "low_confidence"},
		{"no data", "team", []Workload{{"Deployment", "nodata"}}, "", "no_recommendation"},
		{"pod-level", "team", []Workload{{"Deployment", "podlevel"}}, "Deployment", ""},
		{"pod-level, low confidence", "team", []Workload{{"Deployment", "podyoung"}}, "", "low_confidence"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, w, why := r.Lookup(tt.ns, tt.candidates)
			if why != tt.wantReason || (recs != nil) != (tt.wantKind != "") || (recs != nil && w.Kind != tt.wantKind) {
				t.Errorf("got %v %v %q, want kind %q reason %q", recs, w, why, tt.wantKind, tt.wantReason)
			}
		})
	}
	web, _, _ := r.Lookup("team", []Workload{{"Deployment", "web"}})
	if tg := web.Containers["app"]; tg.CPURequest == nil || *tg.CPURequest != 0.25 || tg.MemoryPeak == nil || *tg.MemoryPeak != 100*mi {
		t.Errorf("target %+v", tg)
	}

	pod, _, _ := r.Lookup("team", []Workload{{"Deployment", "podlevel"}})
	if len(pod.Pod) != 1 || pod.Pod["cpu"] != 0.35 || len(pod.Containers) != 0 {
		t.Errorf("pod-level recommendations %+v, want the confident CPU request only", pod)
	}

	status.Store(http.StatusServiceUnavailable)
	err := r.Refresh(context.Background())
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("refresh against a 503: %v", err)
	}
	if recs, _, _ := r.Lookup("team", []Workload{{"Deployment", "web"}}); recs == nil {
		t.Error("a failed refresh dropped the last good recommendations")
	}
	if got := testutil.ToFloat64(r.refreshes.WithLabelValues("failure")); got != 1 {
		t.Errorf("failures = %g", got)
	}
	if err := testutil.CollectAndCompare(r, strings.NewReader(`
# HELP upid_webhook_recommendations_cache_age_seconds Age of the recommendations in memory, from when the exporter computed them; absent before the first read.
# TYPE upid_webhook_recommendations_cache_age_seconds gauge
upid_webhook_recommendations_cache_age_seconds 600
# HELP upid_webhook_recommendations_cache_workloads Workloads with recommendations in memory.
# TYPE upid_webhook_recommendations_cache_workloads gauge
upid_webhook_recommendations_cache_workloads 5
`), "upid_webhook_recommendations_cache_age_seconds", "upid_webhook_recommendations_cache_workloads"); err != nil {
		t.Error(err)
	}

	now = at.Add(2 * time.Hour)
	if _, _, why := r.Lookup("team", []Workload{{"Deployment", "web"}}); why != "stale_recommendations" {
		t.Errorf("2h old recommendations: %q, want stale_recommendations", why)
	}
}
