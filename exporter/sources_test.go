package exporter

import (
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/config"
)

// TestRequestSourcesChecked: a request source whose query would fail to
// parse, or parse and match nothing, is refused at start with the field
// named, not left to lose every workload's request metrics in silence.
func TestRequestSourcesChecked(t *testing.T) {
	istio := history.RequestSource{Metric: "istio_requests_total", WorkloadLabel: "destination_workload"}
	for _, tc := range []struct {
		name string
		srcs []history.RequestSource
		want []string // "" for none
	}{
		{"defaults", config.Default().Exporter.RequestSources, nil},
		{"no metric", []history.RequestSource{{}}, []string{"exporter.request_sources[0].metric: must not be empty"}},
		{"bad metric", []history.RequestSource{{Metric: "http-requests"}}, []string{`exporter.request_sources[0].metric: "http-requests" is not a metric name`}},
		{"workload and service", []history.RequestSource{{Metric: "istio_requests_total", WorkloadLabel: "destination_workload", ServiceLabel: "destination_service_name"}},
			[]string{"exporter.request_sources[0]: workload_label (destination_workload) and service_label (destination_service_name) both set"}},
		{"same metric twice", []history.RequestSource{istio, {Metric: "x_total"}, istio}, []string{"exporter.request_sources[2].metric: istio_requests_total is already request_sources[0]'s"}},
		{"bad labels", []history.RequestSource{{Metric: "x_total", NamespaceLabel: "k8s.namespace", PathLabels: []string{"path", "http route"}}},
			[]string{`exporter.request_sources[0].namespace_label: "k8s.namespace" is not a label name`, `exporter.request_sources[0].path_labels[1]: "http route" is not a label name`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default().Exporter
			cfg.RequestSources = tc.srcs
			_, err := New(Options{Exporter: cfg, Kube: fake.NewClientset(), Querier: struct{ history.Querier }{}})
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestHealthMatchersChecked: an empty health path or user agent pattern
// makes every request health traffic, so busy workloads would be judged
// idle and put to sleep; New refuses them for a configuration built in
// code too.
func TestHealthMatchersChecked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		paths  []string
		agents []string
		want   []string // none: accepted
	}{
		{name: "defaults", paths: config.Default().Exporter.HealthPaths, agents: config.Default().Exporter.HealthAgents},
		{name: "none", paths: []string{}, agents: []string{}},
		{name: "empty path", paths: []string{"/healthz", ""}, want: []string{"exporter.health_paths[1]: empty"}},
		{name: "relative path", paths: []string{"metrics"}, want: []string{`exporter.health_paths[0]: "metrics" does not start with /`}},
		{name: "empty agent", agents: []string{"^kube-probe/", ""}, want: []string{"exporter.health_user_agents[1]: empty"}},
		{name: "agent matching all", agents: []string{"x*"}, want: []string{`exporter.health_user_agents[0]: "x*" matches every user agent`}},
		{name: "bad agent", agents: []string{"["}, want: []string{"exporter.health_user_agents[0]: error parsing regexp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default().Exporter
			cfg.HealthPaths, cfg.HealthAgents = tc.paths, tc.agents
			_, err := New(Options{Exporter: cfg, Kube: fake.NewClientset(), Querier: struct{ history.Querier }{}})
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v lacks %q", err, w)
				}
			}
		})
	}
}
