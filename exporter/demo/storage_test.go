package demo

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

type tv struct {
	t int64
	v float64
}

// testStorage has series on a 10 ms grid whose values are their timestamps, added out of
// label order as the loader adds them.
func testStorage(t *testing.T) *memStorage {
	t.Helper()
	st := &memStorage{step: 10}
	add := func(first int64, n int, stale bool, lset ...string) {
		s := memSeries{lset: labels.FromStrings(lset...), first: first, n: n, values: make([]float64, n), stale: stale}
		for i := range s.values {
			s.values[i] = float64(first + int64(i)*10)
		}
		if stale {
			s.n++
		}
		st.series = append(st.series, s)
	}
	add(100, 10, true, "__name__", "up", "job", "b", "pod", "b-1")
	add(0, 30, false, "__name__", "up", "job", "a")
	add(250, 5, false, "__name__", "requests", "job", "a", "path", "/")
	add(0, 1, true, "__name__", "gone", "job", "c")
	st.series = append(st.series, memSeries{lset: labels.FromStrings("__name__", "price", "job", "a"), first: 40, n: 4, values: []float64{7}, stale: true})
	if err := st.finish(); err != nil {
		t.Fatal(err)
	}
	return st
}

// drain reads a series set into names and samples, skipping what no selector would see.
func drain(t *testing.T, ss storage.SeriesSet) map[string][]tv {
	t.Helper()
	out := map[string][]tv{}
	var prev labels.Labels
	for ss.Next() {
		s := ss.At()
		if prev.Len() > 0 && labels.Compare(prev, s.Labels()) >= 0 {
			t.Errorf("series out of order: %s after %s", s.Labels(), prev)
		}
		prev = s.Labels()
		it := s.Iterator(nil)
		var got []tv
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			got = append(got, tv{ts, v})
		}
		out[s.Labels().String()] = got
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStorageSelect(t *testing.T) {
	st := testStorage(t)
	ctx := context.Background()
	q, _ := st.Querier(math.MinInt64, math.MaxInt64)
	eq := func(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchEqual, n, v) }

	got := drain(t, q.Select(ctx, true, nil, eq("__name__", "up")))
	if len(got) != 2 || len(got[`{__name__="up", job="a"}`]) != 30 || len(got[`{__name__="up", job="b", pod="b-1"}`]) != 11 {
		t.Fatalf("up: %v", got)
	}
	b := got[`{__name__="up", job="b", pod="b-1"}`]
	if b[0] != (tv{100, 100}) || b[9] != (tv{190, 190}) || b[10].t != 200 || !value.IsStaleNaN(b[10].v) {
		t.Errorf("up{job=b} = %v, want 100…190 and a staleness marker at 200", b)
	}

	// An empty matcher matches series without the label, as in PromQL.
	got = drain(t, q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, "job", "a|b"), eq("pod", "")))
	if len(got) != 3 || got[`{__name__="up", job="a"}`] == nil || got[`{__name__="requests", job="a", path="/"}`] == nil {
		t.Errorf("job=~a|b, pod=\"\": %v", got)
	}
	// A constant series holds one value; its staleness marker stays a marker.
	price := drain(t, q.Select(ctx, true, &storage.SelectHints{Start: 45, End: 70}, eq("__name__", "price")))[`{__name__="price", job="a"}`]
	if len(price) != 3 || price[0] != (tv{50, 7}) || price[1] != (tv{60, 7}) || price[2].t != 70 || !value.IsStaleNaN(price[2].v) {
		t.Errorf("price in [45, 70] = %v, want 7 at 50 and 60 and a staleness marker at 70", price)
	}

	// Hints bound the samples; bounds between scrapes round inwards, and a series with no
	// sample in range is left out.
	got = drain(t, q.Select(ctx, true, &storage.SelectHints{Start: 95, End: 121}, labels.MustNewMatcher(labels.MatchNotEqual, "job", "x")))
	want := map[string][]tv{
		`{__name__="up", job="a"}`:            {{100, 100}, {110, 110}, {120, 120}},
		`{__name__="up", job="b", pod="b-1"}`: {{100, 100}, {110, 110}, {120, 120}},
	}
	if !equalSets(got, want) {
		t.Errorf("[95, 121]: %v, want %v", got, want)
	}

	// Without hints the querier's own range applies.
	q2, _ := st.Querier(280, 1000)
	got = drain(t, q2.Select(ctx, true, nil, eq("job", "a")))
	want = map[string][]tv{
		`{__name__="requests", job="a", path="/"}`: {{280, 280}, {290, 290}},
		`{__name__="up", job="a"}`:                 {{280, 280}, {290, 290}},
	}
	if !equalSets(got, want) {
		t.Errorf("querier [280, 1000]: %v, want %v", got, want)
	}

	if got := drain(t, q.Select(ctx, true, &storage.SelectHints{Start: 0, End: 1000, Limit: 1}, eq("__name__", "up"))); len(got) != 1 {
		t.Errorf("limit 1: %v", got)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if ss := q.Select(canceled, true, nil, eq("job", "a")); ss.Next() || !errors.Is(ss.Err(), context.Canceled) {
		t.Errorf("canceled Select: %v", ss.Err())
	}
}

func equalSets(a, b map[string][]tv) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestStorageLabels(t *testing.T) {
	st := testStorage(t)
	ctx := context.Background()
	q, _ := st.Querier(math.MinInt64, math.MaxInt64)
	vals, _, err := q.LabelValues(ctx, "job", nil)
	if err != nil || !slices.Equal(vals, []string{"a", "b", "c"}) {
		t.Errorf("job values %v %v", vals, err)
	}
	vals, _, _ = q.LabelValues(ctx, "job", nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	if !slices.Equal(vals, []string{"a", "b"}) {
		t.Errorf("job values of up: %v", vals)
	}
	vals, _, _ = q.LabelValues(ctx, "job", &storage.LabelHints{Limit: 1})
	if !slices.Equal(vals, []string{"a"}) {
		t.Errorf("job values limited to 1: %v", vals)
	}
	names, _, _ := q.LabelNames(ctx, nil, labels.MustNewMatcher(labels.MatchEqual, "job", "a"))
	if !slices.Equal(names, []string{"__name__", "job", "path"}) {
		t.Errorf("names of job=a: %v", names)
	}
	// Only series with samples in the querier's range count.
	q2, _ := st.Querier(201, 240)
	names, _, _ = q2.LabelNames(ctx, nil)
	vals, _, _ = q2.LabelValues(ctx, "__name__", nil)
	if !slices.Equal(names, []string{"__name__", "job"}) || !slices.Equal(vals, []string{"up"}) {
		t.Errorf("in [201, 240]: names %v, __name__ values %v", names, vals)
	}
}

func TestStorageRejectsDuplicates(t *testing.T) {
	st := &memStorage{step: 10, series: []memSeries{
		{lset: labels.FromStrings("a", "1"), values: []float64{1}},
		{lset: labels.FromStrings("a", "2"), values: []float64{1}},
		{lset: labels.FromStrings("a", "1"), first: 10, values: []float64{1}},
	}}
	if err := st.finish(); err == nil {
		t.Error("finish accepted a label set loaded twice")
	}
}

// TestGridIteratorSeek checks Seek and Next against a plain list, as the engine mixes them.
func TestGridIteratorSeek(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var it chunkenc.Iterator
	for range 5000 {
		first, step := rng.Int64N(100)-50, 1+rng.Int64N(20)
		vs := 1 + rng.IntN(6)
		ms := &memSeries{first: first, n: vs, stale: rng.IntN(2) == 0}
		if ms.stale {
			ms.n++
		}
		if rng.IntN(3) == 0 {
			ms.values = []float64{rng.Float64()}
		} else {
			for range vs {
				ms.values = append(ms.values, rng.Float64())
			}
		}
		var all []tv
		for i := range ms.n {
			v := ms.values[min(i, len(ms.values)-1)]
			if ms.stale && i == ms.n-1 {
				v = staleNaN
			}
			all = append(all, tv{first + int64(i)*step, v})
		}
		// A query sees a part of the series, maybe none.
		lo := rng.IntN(ms.n + 1)
		end := lo + rng.IntN(ms.n-lo+1)
		ref := all[lo:end]
		// Iterators are reused across series, as the engine reuses them.
		it = (&gridSeries{s: ms, step: step, lo: lo, end: end}).Iterator(it)
		pos := -1
		for range 8 {
			if rng.IntN(2) == 0 {
				got := it.Next()
				if pos < len(ref) {
					pos++
				}
				if want := valType(pos < len(ref)); got != want {
					t.Fatalf("%v: Next = %v, want %v", ref, got, want)
				}
			} else {
				ts := first - 2*step + rng.Int64N(int64(ms.n+4)*step)
				switch rng.IntN(10) {
				case 0:
					ts = math.MinInt64
				case 1:
					ts = math.MaxInt64
				}
				got := it.Seek(ts)
				pos = max(pos, 0)
				for pos < len(ref) && ref[pos].t < ts {
					pos++
				}
				if want := valType(pos < len(ref)); got != want {
					t.Fatalf("%v: Seek(%d) = %v, want %v", ref, ts, got, want)
				}
			}
			if pos >= 0 && pos < len(ref) {
				if ts, v := it.At(); ts != ref[pos].t || math.Float64bits(v) != math.Float64bits(ref[pos].v) || it.AtT() != ts {
					t.Fatalf("%v: at %d, want %v", ref, ts, ref[pos])
				}
			}
		}
	}
}

func valType(ok bool) chunkenc.ValueType {
	if ok {
		return chunkenc.ValFloat
	}
	return chunkenc.ValNone
}
