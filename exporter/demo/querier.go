package demo

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
)

// Querier answers instant queries with Prometheus's own PromQL engine over the demo's
// storage, so the exporter's queries run exactly as they would against a Prometheus
// server. It implements history.Querier.
type Querier struct {
	engine  *promql.Engine
	storage storage.Queryable
	// latest is where the demo's history ends.
	latest time.Time
}

// Defaults of a Prometheus server, which the exporter's queries are written for.
const (
	lookbackDelta   = 5 * time.Minute
	maxSamples      = 50_000_000
	queryTimeout    = 2 * time.Minute
	evalIntervalMil = int64(time.Minute / time.Millisecond)
)

func newQuerier(q storage.Queryable, latest time.Time) *Querier {
	return &Querier{
		engine: promql.NewEngine(promql.EngineOpts{
			MaxSamples:    maxSamples,
			Timeout:       queryTimeout,
			LookbackDelta: lookbackDelta,
			// A subquery without a step uses the global evaluation interval;
			// the engine dereferences this function unconditionally then.
			NoStepSubqueryIntervalFn: func(int64) int64 { return evalIntervalMil },
			// Both are on in every Prometheus since 2.33; the engine leaves
			// them off for embedders unless asked.
			EnableAtModifier:     true,
			EnableNegativeOffset: true,
		}),
		storage: q,
		latest:  latest,
	}
}

// Query evaluates query at ts, or at the end of the demo's history when ts is later or
// zero. A demo that runs for hours would otherwise see its instant vectors go stale five
// minutes after start (the lookback delta) and every workload turn unknown. Of the
// options, WithTimeout and WithLookbackDelta are honoured, as a Prometheus server honours
// the timeout and lookback_delta parameters they set.
func (q *Querier) Query(ctx context.Context, query string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	timeout, lookback := readOptions(opts)
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	if ts.IsZero() || ts.After(q.latest) {
		ts = q.latest
	}
	qry, err := q.engine.NewInstantQuery(ctx, q.storage, promql.NewPrometheusQueryOpts(false, lookback, nil), query, ts)
	if err != nil {
		return nil, nil, nil, &v1.Error{Type: v1.ErrBadData, Msg: err.Error()}
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	warnings, infos := res.Warnings.AsStrings(query, 10, 10)
	if res.Err != nil {
		// The caller's context decides; a client of a real server sees its own
		// deadline or cancellation too, not the server's report of it.
		if cerr := ctx.Err(); cerr != nil {
			return nil, warnings, infos, fmt.Errorf("demo: %w", cerr)
		}
		return nil, warnings, infos, apiError(res.Err)
	}
	v, err := toModel(res.Value)
	return v, warnings, infos, err
}

// apiError classifies engine errors as the HTTP API does, so callers that inspect
// *v1.Error behave as they would against a server.
func apiError(err error) error {
	var (
		timeout  promql.ErrQueryTimeout
		canceled promql.ErrQueryCanceled
		storErr  promql.ErrStorage
	)
	switch {
	case errors.As(err, &timeout):
		return &v1.Error{Type: v1.ErrTimeout, Msg: err.Error()}
	case errors.As(err, &canceled):
		return &v1.Error{Type: v1.ErrCanceled, Msg: err.Error()}
	case errors.As(err, &storErr):
		return &v1.Error{Type: v1.ErrServer, Msg: err.Error()}
	default:
		return &v1.Error{Type: v1.ErrExec, Msg: err.Error()}
	}
}

// readOptions reads what client_golang's query options set. v1.Option writes to an
// unexported struct, so one is made through reflection and its fields are read by name; a
// field that a later client_golang renames reads as zero, which means the server default,
// as when the option is not given.
func readOptions(opts []v1.Option) (timeout, lookback time.Duration) {
	if len(opts) == 0 {
		return 0, 0
	}
	fn := reflect.TypeOf(v1.Option(nil))
	if fn.Kind() != reflect.Func || fn.NumIn() != 1 || fn.In(0).Kind() != reflect.Pointer || fn.In(0).Elem().Kind() != reflect.Struct {
		return 0, 0
	}
	ptr := reflect.New(fn.In(0).Elem())
	for _, o := range opts {
		if o != nil {
			reflect.ValueOf(o).Call([]reflect.Value{ptr})
		}
	}
	duration := func(name string) time.Duration {
		f := ptr.Elem().FieldByName(name)
		if !f.IsValid() || f.Kind() != reflect.Int64 {
			return 0
		}
		return time.Duration(f.Int())
	}
	return duration("timeout"), duration("lookbackDelta")
}

func toModel(v parser.Value) (model.Value, error) {
	switch v := v.(type) {
	case promql.Vector:
		out := make(model.Vector, 0, len(v))
		for _, s := range v {
			out = append(out, &model.Sample{Metric: toMetric(s.Metric), Timestamp: model.Time(s.T),
				Value: model.SampleValue(s.F), Histogram: toHistogram(s.H)})
		}
		return out, nil
	case promql.Scalar:
		return &model.Scalar{Timestamp: model.Time(v.T), Value: model.SampleValue(v.V)}, nil
	case promql.String:
		return &model.String{Timestamp: model.Time(v.T), Value: v.V}, nil
	case promql.Matrix:
		out := make(model.Matrix, 0, len(v))
		for _, s := range v {
			ss := &model.SampleStream{Metric: toMetric(s.Metric)}
			for _, p := range s.Floats {
				ss.Values = append(ss.Values, model.SamplePair{Timestamp: model.Time(p.T), Value: model.SampleValue(p.F)})
			}
			for _, p := range s.Histograms {
				ss.Histograms = append(ss.Histograms, model.SampleHistogramPair{Timestamp: model.Time(p.T), Histogram: toHistogram(p.H)})
			}
			out = append(out, ss)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("demo: unsupported result type %T", v)
	}
}

func toMetric(ls labels.Labels) model.Metric {
	m := make(model.Metric, ls.Len())
	ls.Range(func(l labels.Label) { m[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
	return m
}

// toHistogram converts a native histogram as the HTTP API encodes it: every bucket with
// its bounds and which of them are inclusive.
func toHistogram(h *histogram.FloatHistogram) *model.SampleHistogram {
	if h == nil {
		return nil
	}
	out := &model.SampleHistogram{Count: model.FloatString(h.Count), Sum: model.FloatString(h.Sum)}
	it := h.AllBucketIterator()
	for it.Next() {
		b := it.At()
		if b.Count == 0 {
			continue
		}
		var boundaries int32
		switch {
		case !b.LowerInclusive && b.UpperInclusive:
			boundaries = 0
		case b.LowerInclusive && !b.UpperInclusive:
			boundaries = 1
		case !b.LowerInclusive && !b.UpperInclusive:
			boundaries = 2
		default:
			boundaries = 3
		}
		out.Buckets = append(out.Buckets, &model.HistogramBucket{Boundaries: boundaries,
			Lower: model.FloatString(b.Lower), Upper: model.FloatString(b.Upper), Count: model.FloatString(b.Count)})
	}
	return out
}
