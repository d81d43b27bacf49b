package history

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// ParseSelector parses prometheus.selector: label matchers in braces, as
// in {cluster="prod"}, with no metric name. Empty means none.
func ParseSelector(s string) ([]*labels.Matcher, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a label selector like {cluster=\"prod\"}: %w", s, err)
	}
	for _, m := range ms {
		if m.Name == labels.MetricName {
			return nil, fmt.Errorf("%q names a metric; only label matchers belong here", s)
		}
	}
	return ms, nil
}

// Scoped returns a Querier that adds matchers to every series selector of
// every query, so that a Prometheus holding several clusters (Thanos,
// Mimir, VictoriaMetrics behind one URL) answers about one, as
// prom-label-proxy does it: the queries themselves need not know. With no
// matchers it returns q.
func Scoped(q Querier, matchers []*labels.Matcher) Querier {
	if len(matchers) == 0 {
		return q
	}
	return &scoped{next: q, matchers: matchers}
}

type scoped struct {
	next     Querier
	matchers []*labels.Matcher
}

func (s *scoped) Query(ctx context.Context, query string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	scopedQuery, err := AddMatchers(query, s.matchers)
	if err != nil {
		return nil, nil, nil, err
	}
	return s.next.Query(ctx, scopedQuery, ts, opts...)
}

// AddMatchers adds matchers to every series selector of a PromQL query.
func AddMatchers(query string, matchers []*labels.Matcher) (string, error) {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(query)
	if err != nil {
		return "", fmt.Errorf("scoping a query to the prometheus.selector: %w", err)
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			vs.LabelMatchers = append(vs.LabelMatchers, matchers...)
		}
		return nil
	})
	return expr.String(), nil
}

// ForSelector is how UPID queries Prometheus: scoped to prometheus.selector
// (Scoped) and failing partial answers (Complete). The error names a
// selector that does not parse.
func ForSelector(q Querier, selector string) (Querier, error) {
	ms, err := ParseSelector(selector)
	if err != nil {
		return nil, err
	}
	return Complete(Scoped(q, ms)), nil
}

// Complete returns a Querier that fails a query Prometheus answered with
// warnings. A warning is how a query frontend (Thanos, Cortex, Mimir) or a
// failed remote read says the answer is partial; taken as whole, it would
// be read as windows without usage (the recommender's state then moves
// past them for good) or as silence (idle). An answer Prometheus only
// annotated with infos is whole.
func Complete(q Querier) Querier { return complete{q} }

type complete struct{ next Querier }

func (c complete) Query(ctx context.Context, query string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	v, warnings, infos, err := c.next.Query(ctx, query, ts, opts...)
	if err == nil && len(warnings) > 0 {
		return nil, warnings, infos, fmt.Errorf("a partial answer: Prometheus warned %q", []string(warnings))
	}
	return v, warnings, infos, err
}
