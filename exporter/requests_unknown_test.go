package exporter

import (
	"context"
	"math"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/idle"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/exporter/recommend"
)

// exprQuerier answers each query expression with a fixed vector.
type exprQuerier map[string]model.Vector

func (q exprQuerier) Query(_ context.Context, expr string, _ time.Time, _ ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	return q[expr], nil, nil, nil
}

// TestUncountableRequestsAreUnknown: a workload whose health checks are
// counted but whose other traffic series answers something that is not a
// count must not be called idle on the health checks' word with full
// request-metric confidence. Its request metrics count as missing.
func TestUncountableRequestsAreUnknown(t *testing.T) {
	window := 7 * 24 * time.Hour
	src := history.RequestSource{Metric: "http_requests_total", PathLabels: []string{"path"}}
	params := history.Params{Window: window, Step: 5 * time.Minute, RateWindow: 5 * time.Minute, Sources: []history.RequestSource{src}}
	wl := model.Metric{"namespace": "a", "workload": "w", "kind": "Deployment"}
	path := func(p string) model.Metric {
		m := wl.Clone()
		m["path"] = model.LabelValue(p)
		return m
	}
	for _, tc := range []struct {
		name     string
		api      float64 // the real traffic's count over the window
		counted  bool    // the request metrics are used
		wantIdle bool
	}{
		{name: "no real traffic", api: 0, counted: true, wantIdle: true},
		{name: "real traffic", api: 5000, counted: true},
		{name: "NaN", api: math.NaN()},
		{name: "+Inf", api: math.Inf(1)},
		{name: "negative", api: -1e6},
		{name: "sum past float64", api: math.MaxFloat64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals := map[string]model.Vector{
				"cpu_usage_seconds":     {{Metric: wl, Value: model.SampleValue(0.001 * window.Seconds())}},
				"cpu_pod_p95_cores":     {{Metric: wl, Value: 0.001}},
				"coverage":              {{Metric: wl, Value: 1}},
				"network_receive_bytes": {{Metric: wl, Value: 0}},
				"replicas":              {{Metric: wl, Value: 1}},
				// The series cover the whole window.
				"request_coverage_http_requests_total": {{Metric: wl, Value: 1}},
				"requests_http_requests_total": {
					{Metric: path("/healthz"), Value: math.MaxFloat64 / 2},
					{Metric: path("/api/orders"), Value: model.SampleValue(tc.api)},
				},
			}
			if tc.name != "sum past float64" {
				vals["requests_http_requests_total"][0].Value = 60480 // a probe every 10 s for a week
			}
			at := time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)
			hist := fetchAnswers(t, params, vals, at)
			a := &analyzer{window: window, recWindow: 14 * 24 * time.Hour, params: idle.DefaultParams(), matchers: matchers{paths: []string{"/healthz"}}, policy: recommend.DefaultPolicy()}
			inv := inventory.Snapshot{Selects: map[[2]string][]inventory.ID{{"a", "w"}: {{Namespace: "a", Kind: "Deployment", Name: "w"}}}, Workloads: []inventory.Workload{{ID: inventory.ID{Namespace: "a", Kind: "Deployment", Name: "w"}, Replicas: 1, Pods: 1,
				Probes: []inventory.Probe{{Container: "app", Type: "Liveness", Period: 10 * time.Second, Path: "/healthz"}}}}}
			v := a.analyze(inv, hist, at).Workloads[0].Idle
			if v.HasRequestMetrics != tc.counted {
				t.Errorf("request metrics used = %v, want %v (verdict %+v)", v.HasRequestMetrics, tc.counted, v)
			}
			if idle := v.State == "idle" && v.Confidence == 1; idle != tc.wantIdle {
				t.Errorf("state %s at confidence %v (reasons %v); want idle at full confidence: %v", v.State, v.Confidence, v.Reasons, tc.wantIdle)
			}
		})
	}
}
