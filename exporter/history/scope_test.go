package history

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

func TestAddMatchers(t *testing.T) {
	ms, err := ParseSelector(`{cluster="prod", region=~"eu-.*"}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, want string }{
		{`up`, `up{cluster="prod",region=~"eu-.*"}`},
		{`vector(1)`, `vector(1)`},
		{`sum by (namespace) (rate(container_cpu_usage_seconds_total{container!=""}[5m] offset 5m))`,
			`sum by (namespace) (rate(container_cpu_usage_seconds_total{cluster="prod",container!="",region=~"eu-.*"}[5m] offset 5m))`},
		{`max_over_time((a * on (pod) group_left (w) b)[1h:5m])`,
			`max_over_time((a{cluster="prod",region=~"eu-.*"} * on (pod) group_left (w) b{cluster="prod",region=~"eu-.*"})[1h:5m])`},
		{`label_replace(x{reason="OOMKilled"} == 1, "s", "k", "", "") or y`,
			`label_replace(x{cluster="prod",reason="OOMKilled",region=~"eu-.*"} == 1, "s", "k", "", "") or y{cluster="prod",region=~"eu-.*"}`},
	} {
		got, err := AddMatchers(c.in, ms)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if norm(t, got) != norm(t, c.want) {
			t.Errorf("%s\n got %s\nwant %s", c.in, got, c.want)
		}
	}
	// Every query the exporter sends still parses once scoped.
	all := append(Queries(Params{Window: 24 * time.Hour, Step: 5 * time.Minute, RateWindow: 5 * time.Minute}),
		ReplayQueries([]string{"shop", "a.b"}, Range{time.Unix(0, 0), time.Unix(3600, 0)})...)
	all = append(all, Query{"usage", UsageQuery(CPU, []string{"shop"}, time.Hour)})
	for _, q := range all {
		got, err := AddMatchers(q.Expr, ms)
		if err != nil {
			t.Errorf("%s: %v", q.Name, err)
			continue
		}
		if strings.Count(got, `cluster="prod"`) < 1 {
			t.Errorf("%s is not scoped: %s", q.Name, got)
		}
	}
}

// norm re-prints a query so that matcher order does not matter.
func norm(t *testing.T, q string) string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			ms := vs.LabelMatchers
			for i := range ms {
				for j := i + 1; j < len(ms); j++ {
					if ms[j].String() < ms[i].String() {
						ms[i], ms[j] = ms[j], ms[i]
					}
				}
			}
		}
		return nil
	})
	return e.String()
}

func TestParseSelector(t *testing.T) {
	for _, c := range []struct {
		in      string
		n       int
		errPart string
	}{
		{"", 0, ""},
		{`{cluster="prod"}`, 1, ""},
		{`cluster="prod"`, 0, "not a label selector"},
		{`{__name__="up"}`, 0, "names a metric"},
		{`up{cluster="a"}`, 0, "names a metric"},
	} {
		ms, err := ParseSelector(c.in)
		if c.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), c.errPart) {
				t.Errorf("%q: %v, want an error saying %q", c.in, err, c.errPart)
			}
			continue
		}
		if err != nil || len(ms) != c.n {
			t.Errorf("%q: %d matchers, %v", c.in, len(ms), err)
		}
	}
}

type recordingQuerier struct{ got []string }

func (r *recordingQuerier) Query(_ context.Context, q string, _ time.Time, _ ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	r.got = append(r.got, q)
	return model.Vector{}, nil, nil, nil
}

func TestScoped(t *testing.T) {
	rec := &recordingQuerier{}
	if Scoped(rec, nil) != Querier(rec) {
		t.Error("no matchers should leave the querier as it is")
	}
	ms, _ := ParseSelector(`{cluster="prod"}`)
	q := Scoped(rec, ms)
	if _, _, _, err := q.Query(context.Background(), "up", time.Now()); err != nil || len(rec.got) != 1 || rec.got[0] != `up{cluster="prod"}` {
		t.Errorf("sent %v (%v)", rec.got, err)
	}
	if _, _, _, err := q.Query(context.Background(), "up{", time.Now()); err == nil || len(rec.got) != 1 {
		t.Errorf("a query that does not parse was sent, or gave no error: %v", err)
	}
}

// answering is a Querier with a fixed answer.
type answering struct {
	warnings v1.Warnings
	infos    v1.Infos
	err      error
}

func (a answering) Query(context.Context, string, time.Time, ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	if a.err != nil {
		return nil, nil, nil, a.err
	}
	return model.Vector{{Value: 1}}, a.warnings, a.infos, nil
}

func TestComplete(t *testing.T) {
	for _, tc := range []struct {
		name    string
		a       answering
		wantErr string
	}{
		{name: "whole", a: answering{}},
		{name: "infos only", a: answering{infos: v1.Infos{"PromQL info: metric might not be a counter"}}},
		{name: "partial", a: answering{warnings: v1.Warnings{"partial response: store gateway unavailable"}}, wantErr: "store gateway unavailable"},
		{name: "failed", a: answering{err: context.DeadlineExceeded}, wantErr: "deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _, _, err := Complete(tc.a).Query(context.Background(), "up", time.Now())
			switch {
			case tc.wantErr == "" && (err != nil || v == nil):
				t.Errorf("answer %v, error %v; want the answer", v, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || v != nil):
				t.Errorf("answer %v, error %v; want no answer and an error naming %q", v, err, tc.wantErr)
			}
		})
	}
}

// FuzzSelector: any prometheus.selector either fails to parse with an
// error, or scopes every query into one that still parses.
func FuzzSelector(f *testing.F) {
	for _, s := range []string{`{cluster="prod"}`, `{a=~".+",b!="x"}`, `cluster=prod`, `{__name__="up"}`, "{", `{a="\xff"}`} {
		f.Add(s)
	}
	queries := Queries(Params{Window: time.Hour, Step: 5 * time.Minute, RateWindow: 5 * time.Minute})
	f.Fuzz(func(t *testing.T, sel string) {
		ms, err := ParseSelector(sel)
		if err != nil || len(ms) == 0 {
			return
		}
		for _, q := range queries {
			got, err := AddMatchers(q.Expr, ms)
			if err != nil {
				t.Fatalf("%s: %v", q.Name, err)
			}
			if _, err := parser.NewParser(parser.Options{}).ParseExpr(got); err != nil {
				t.Fatalf("%s scoped by %q does not parse: %v\n%s", q.Name, sel, err, got)
			}
		}
	})
}
