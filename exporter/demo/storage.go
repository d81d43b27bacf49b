package demo

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
)

// memStorage holds the history in memory for the PromQL engine. Prometheus's TSDB would
// do, but it imports Prometheus's configuration and, through remote write, the AWS, Azure
// and Google SDKs and gRPC, for a history that never leaves memory.
//
// Every series is scraped on one grid from its first sample without gaps (a series that
// ends gets its staleness marker at the next scrape), so a series keeps only its values
// and timestamps follow from the first one: seeking is arithmetic.
type memStorage struct {
	// series are sorted by labels, so that every Select is sorted without sorting.
	series []memSeries
	step   int64 // milliseconds between scrapes
}

// memSeries is one series: sample i was scraped at first + i·step.
type memSeries struct {
	lset  labels.Labels
	first int64 // milliseconds
	n     int   // samples, the staleness marker included
	// values are the samples before the staleness marker, or one value that they all
	// repeat: over half the history is constant (owners, requests, prices), and holding
	// it once keeps the history smaller than the TSDB's compressed chunks.
	values []float64
	stale  bool // the last sample is a staleness marker
}

var staleNaN = math.Float64frombits(value.StaleNaN)

func (s *memSeries) at(i int) float64 {
	switch {
	case s.stale && i == s.n-1:
		return staleNaN
	case len(s.values) == 1:
		return s.values[0]
	}
	return s.values[i]
}

func (s *memSeries) timestamp(i int, step int64) int64 { return s.first + int64(i)*step }

// within returns the indexes [lo, end) of the samples in [mint, maxt]; the bounds may be
// the extremes of int64, as an unbounded querier's are.
func (s *memSeries) within(mint, maxt, step int64) (lo, end int) {
	if s.n == 0 || mint > maxt {
		return 0, 0
	}
	last := s.timestamp(s.n-1, step)
	if maxt < s.first || mint > last {
		return 0, 0
	}
	lo, end = 0, s.n
	// Both differences are within the series, so they cannot overflow.
	if mint > s.first {
		lo = int((mint - s.first + step - 1) / step)
	}
	if maxt < last {
		end = int((maxt-s.first)/step) + 1
	}
	return lo, max(lo, end)
}

// finish sorts the series, which the loader adds in plan order. A label set loaded
// twice would be two series to the engine, which a real Prometheus never returns.
func (s *memStorage) finish() error {
	slices.SortFunc(s.series, func(a, b memSeries) int { return labels.Compare(a.lset, b.lset) })
	for i := 1; i < len(s.series); i++ {
		if labels.Equal(s.series[i-1].lset, s.series[i].lset) {
			return fmt.Errorf("series %s loaded twice", s.series[i].lset)
		}
	}
	return nil
}

// Querier implements storage.Queryable.
func (s *memStorage) Querier(mint, maxt int64) (storage.Querier, error) {
	return &memQuerier{s: s, mint: mint, maxt: maxt}, nil
}

type memQuerier struct {
	s          *memStorage
	mint, maxt int64
}

// matching calls f, in label order until it returns false, with each series that matches
// every matcher and its samples [lo, end) in [mint, maxt], if it has any.
func (q *memQuerier) matching(mint, maxt int64, ms []*labels.Matcher, f func(s *memSeries, lo, end int) bool) {
	for i := range q.s.series {
		s := &q.s.series[i]
		lo, end := s.within(mint, maxt, q.s.step)
		if lo == end || !matchesAll(s.lset, ms) {
			continue
		}
		if !f(s, lo, end) {
			return
		}
	}
}

func matchesAll(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

// Select returns the series sorted whether or not sortSeries asks, since they are stored
// sorted.
func (q *memQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if err := ctx.Err(); err != nil {
		return storage.ErrSeriesSet(err)
	}
	mint, maxt := q.mint, q.maxt
	var limit int
	if hints != nil {
		mint, maxt, limit = hints.Start, hints.End, hints.Limit
	}
	var out []storage.Series
	q.matching(mint, maxt, ms, func(s *memSeries, lo, end int) bool {
		if hints != nil && hints.ShardCount > 0 && labels.StableHash(s.lset)%hints.ShardCount != hints.ShardIndex {
			return true
		}
		out = append(out, &gridSeries{s: s, step: q.s.step, lo: lo, end: end})
		return limit <= 0 || len(out) < limit
	})
	return &listSeriesSet{series: out, i: -1}
}

// LabelValues returns the values of name on the series with samples in the querier's
// range that match every matcher.
func (q *memQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.labelStrings(ctx, hints, ms, func(lset labels.Labels, add func(string)) { add(lset.Get(name)) })
}

// LabelNames returns the label names of the series with samples in the querier's range
// that match every matcher.
func (q *memQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.labelStrings(ctx, hints, ms, func(lset labels.Labels, add func(string)) {
		lset.Range(func(l labels.Label) { add(l.Name) })
	})
}

func (q *memQuerier) labelStrings(ctx context.Context, hints *storage.LabelHints, ms []*labels.Matcher, of func(labels.Labels, func(string))) ([]string, annotations.Annotations, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	seen := map[string]struct{}{}
	add := func(v string) {
		// An empty value is an absent label.
		if v != "" {
			seen[v] = struct{}{}
		}
	}
	q.matching(q.mint, q.maxt, ms, func(s *memSeries, _, _ int) bool {
		of(s.lset, add)
		return true
	})
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	return out, nil, nil
}

func (*memQuerier) Close() error { return nil }

type listSeriesSet struct {
	series []storage.Series
	i      int
}

func (s *listSeriesSet) Next() bool {
	if s.i < len(s.series) {
		s.i++
	}
	return s.i < len(s.series)
}

func (s *listSeriesSet) At() storage.Series              { return s.series[s.i] }
func (*listSeriesSet) Err() error                        { return nil }
func (*listSeriesSet) Warnings() annotations.Annotations { return nil }

// gridSeries is the samples [lo, end) of a series, those in a query's range.
// storage.NewListSeries would need a chunks.Sample interface per sample, allocated on
// every Select of a week of history.
type gridSeries struct {
	s       *memSeries
	step    int64
	lo, end int
}

func (s *gridSeries) Labels() labels.Labels { return s.s.lset }

func (s *gridSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	g, ok := it.(*gridIterator)
	if !ok {
		g = &gridIterator{}
	}
	*g = gridIterator{gridSeries: *s, i: s.lo - 1}
	return g
}

type gridIterator struct {
	gridSeries
	i int
}

func (it *gridIterator) Next() chunkenc.ValueType {
	if it.i < it.end {
		it.i++
	}
	if it.i == it.end {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloat
}

// millis is int64 under another name only for go vet, whose stdmethods check takes every
// Seek(int64, ...) for an io.Seeker; Prometheus silences the check for its iterators.
type millis = int64

func (it *gridIterator) Seek(t millis) chunkenc.ValueType {
	it.i = max(it.i, it.lo)
	if it.i >= it.end {
		it.i = it.end
		return chunkenc.ValNone
	}
	if t <= it.AtT() {
		return chunkenc.ValFloat
	}
	if t > it.s.timestamp(it.end-1, it.step) {
		it.i = it.end
		return chunkenc.ValNone
	}
	// The current sample < t <= the last, so the sample at or after t is later than the
	// current one, and the arithmetic cannot overflow.
	it.i = int((t - it.s.first + it.step - 1) / it.step)
	return chunkenc.ValFloat
}

func (it *gridIterator) At() (int64, float64) { return it.AtT(), it.s.at(it.i) }
func (it *gridIterator) AtT() int64           { return it.s.timestamp(it.i, it.step) }
func (*gridIterator) AtST() int64             { return 0 }
func (*gridIterator) Err() error              { return nil }

// The history has no histograms; the engine asks for them only after Next or Seek
// reported one.
func (it *gridIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return it.AtT(), nil
}

func (it *gridIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.AtT(), nil
}
