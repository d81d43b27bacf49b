package history

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

func params(sources ...RequestSource) Params {
	return Params{Window: 7 * 24 * time.Hour, Step: 5 * time.Minute, RateWindow: 5 * time.Minute, Sources: sources}
}

// TestQueriesParse runs every query of a cycle through Prometheus's own
// parser and checks that each aggregates by workload, never by pod.
func TestQueriesParse(t *testing.T) {
	sources := []RequestSource{
		{Metric: "http_requests_total", PathLabels: []string{"handler", "path"}, UserAgentLabel: "user_agent"},
		{Metric: "istio_requests_total", NamespaceLabel: "destination_workload_namespace", WorkloadLabel: "destination_workload", Matchers: `reporter="destination"`},
		{Metric: "nginx_ingress_controller_requests", NamespaceLabel: "exported_namespace", ServiceLabel: "exported_service", PathLabels: []string{"path"}},
	}
	qs := Queries(params(sources...))
	names := map[string]bool{}
	for _, q := range qs {
		if names[q.Name] {
			t.Errorf("duplicate query name %s", q.Name)
		}
		names[q.Name] = true
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(q.Expr)
		if err != nil {
			t.Errorf("%s does not parse: %v\n%s", q.Name, err, q.Expr)
			continue
		}
		if expr.Type() != parser.ValueTypeVector {
			t.Errorf("%s returns %s, want an instant vector", q.Name, expr.Type())
		}
		top, ok := expr.(*parser.AggregateExpr)
		if q.Name == "coverage" || q.Name == "replicas" || q.Name == "opencost" || strings.HasPrefix(q.Name, "requests_") && !ok {
			continue // wrapped in *_over_time or grouped by their own labels
		}
		if !ok {
			t.Errorf("%s is not an aggregation at the top: %s", q.Name, q.Expr)
			continue
		}
		for _, l := range top.Grouping {
			if l == "pod" {
				t.Errorf("%s returns one series per pod; queries must aggregate by workload", q.Name)
			}
		}
	}
	// The number of queries depends on the request sources only, never on
	// the size of the cluster.
	if got, want := len(qs), len(Queries(params()))+len(sources); got != want {
		t.Errorf("%d queries with %d sources, want %d", got, len(sources), want)
	}
}
