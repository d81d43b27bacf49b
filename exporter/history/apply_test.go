package history

import (
	"fmt"
	"testing"

	"github.com/prometheus/common/model"
)

// TestApplyAllocs holds apply to what a series needs: a workload query's
// value allocates its *float64 and nothing else once the workload is known,
// a request coverage at most the same, whatever the request sources. The
// query's source was once looked up for every series of every query, which
// concatenated names and allocated up to 6 strings a series with the
// default sources: more allocations at 150,000 pods than the request
// coverage queries' own series took (docs/benchmarks.md).
func TestApplyAllocs(t *testing.T) {
	sources := []RequestSource{
		{Metric: "http_requests_total"},
		{Metric: "http_server_requests_seconds_count"},
		{Metric: "istio_requests_total", NamespaceLabel: "destination_workload_namespace", WorkloadLabel: "destination_workload"},
		{Metric: "nginx_ingress_controller_requests", NamespaceLabel: "exported_namespace", ServiceLabel: "exported_service"},
	}
	vec := make(model.Vector, 100)
	for i := range vec {
		vec[i] = &model.Sample{Metric: model.Metric{"namespace": "shop", "kind": "Deployment", "workload": model.LabelValue(fmt.Sprint("web-", i))}, Value: 1.5}
	}
	s := &Snapshot{Workloads: map[Key]*Workload{}}
	s.apply("cpu_usage_seconds", vec, sources) // the workloads exist from here on
	for _, name := range []string{"cpu_pod_p95_cores", "coverage", "network_receive_bytes", "probes", "replicas", "request_coverage_http_server_requests_seconds_count"} {
		if got := testing.AllocsPerRun(10, func() { s.apply(name, vec, sources) }); got > float64(len(vec)) {
			t.Errorf("%s: %.0f allocations for %d series of known workloads, want at most one a series", name, got, len(vec))
		}
	}
	// Coverages are shares of the window: 1.5 is read as 1.
	w := s.Workloads[Key{Namespace: "shop", Kind: "Deployment", Workload: "web-7"}]
	if w == nil || w.CPUSeconds == nil || *w.CPUSeconds != 1.5 || w.Coverage == nil || *w.Coverage != 1 || w.RequestCoverage == nil || *w.RequestCoverage != 1 {
		t.Errorf("web-7 = %+v, want 1.5 CPU seconds, a coverage and a request coverage of 1", w)
	}
}

// TestSourceOf tells a request source's queries from the others by name.
func TestSourceOf(t *testing.T) {
	sources := []RequestSource{{Metric: "http_requests_total"}, {Metric: "nginx_ingress_controller_requests", ServiceLabel: "exported_service"}}
	for _, c := range []struct {
		name           string
		metric         string
		coverage, isRq bool
	}{
		{"requests_http_requests_total", "http_requests_total", false, true},
		{"request_coverage_http_requests_total", "http_requests_total", true, true},
		{"requests_nginx_ingress_controller_requests", "nginx_ingress_controller_requests", false, true},
		{"request_coverage_nginx_ingress_controller_requests", "nginx_ingress_controller_requests", true, true},
		{"requests_istio_requests_total", "", false, false}, // not a configured source
		{"request_coverage_", "", false, false},
		{"coverage", "", false, false},
		{"cpu_usage_seconds", "", false, false},
	} {
		src, coverage, ok := sourceOf(c.name, sources)
		if ok != c.isRq || coverage != c.coverage || src.Metric != c.metric {
			t.Errorf("sourceOf(%q) = %q, coverage %v, %v; want %q, %v, %v", c.name, src.Metric, coverage, ok, c.metric, c.coverage, c.isRq)
		}
	}
}
