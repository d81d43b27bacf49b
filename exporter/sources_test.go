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
