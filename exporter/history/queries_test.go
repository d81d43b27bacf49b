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
		if q.Name == "coverage" || q.Name == "replicas" || q.Name == "opencost" || strings.HasPrefix(q.Name, "request_coverage_") || strings.HasPrefix(q.Name, "requests_") && !ok {
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
	// the size of the cluster: two a source, its counts and their coverage.
	if got, want := len(qs), len(Queries(params()))+2*len(sources); got != want {
		t.Errorf("%d queries with %d sources, want %d", got, len(sources), want)
	}
}

// TestUsageQuery checks the forecast's history queries: a matrix from an
// instant query, aggregated by workload, reading the resource's own
// metric, restricted to its namespaces in every selector (names with
// regexp metacharacters quoted), so that a batch joins only its own pods.
func TestUsageQuery(t *testing.T) {
	for _, tc := range []struct {
		r      Resource
		metric string
	}{
		{CPU, "container_cpu_usage_seconds_total"},
		{Memory, "container_memory_working_set_bytes"},
	} {
		t.Run(tc.r.String(), func(t *testing.T) { checkUsageQuery(t, tc.r, tc.metric) })
	}
}

func checkUsageQuery(t *testing.T, r Resource, metric string) {
	q := UsageQuery(r, []string{"shop", "team.a"}, 14*24*time.Hour)
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		t.Fatalf("does not parse: %v\n%s", err, q)
	}
	sq, ok := expr.(*parser.SubqueryExpr)
	// A second short of 14 days, so that Prometheus 2 does not evaluate
	// the step an hour before the window.
	if !ok || expr.Type() != parser.ValueTypeMatrix || sq.Range != 14*24*time.Hour-time.Second || sq.Step != UsageStep {
		t.Fatalf("want a [14d-1s:1h] subquery returning a matrix, got %T %s: %s", expr, expr.Type(), q)
	}
	inner := sq.Expr
	for {
		p, ok := inner.(*parser.ParenExpr)
		if !ok {
			break
		}
		inner = p.Expr
	}
	top, ok := inner.(*parser.AggregateExpr)
	if !ok || strings.Join(top.Grouping, ",") != "namespace,workload,kind" {
		t.Errorf("want an aggregation by namespace, workload, kind at the top: %s", q)
	}
	selectors, usage := 0, 0
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		selectors++
		if vs.Name == metric {
			usage++
		} else if strings.HasPrefix(vs.Name, "container_") {
			t.Errorf("reads %s, want only %s of the containers", vs.Name, metric)
		}
		found := false
		for _, m := range vs.LabelMatchers {
			if m.Name == "namespace" {
				found = true
				if !m.Matches("shop") || !m.Matches("team.a") || m.Matches("teamxa") || m.Matches("other") {
					t.Errorf("%s: namespace matcher %s matches the wrong namespaces", vs.Name, m)
				}
			}
		}
		if !found {
			t.Errorf("%s has no namespace matcher", vs)
		}
		return nil
	})
	if usage != 1 {
		t.Errorf("reads %s %d times, want once", metric, usage)
	}
	if selectors < 5 {
		t.Errorf("found %d selectors, want the usage one and every owner one", selectors)
	}
}

// TestOwnerExprKeepsTheSelector: the selector's values reach the owner
// join as written, whatever letters they hold.
func TestOwnerExprKeepsTheSelector(t *testing.T) {
	for _, e := range []string{ownerExpr("", `cluster="EU-NS1"`), ownerExpr("7d", `cluster="EU-NS1"`)} {
		if n := strings.Count(e, `cluster="EU-NS1"`); n != 6 {
			t.Errorf("the selector appears %d times, want once per kube-state-metrics series (6):\n%s", n, e)
		}
	}
}
