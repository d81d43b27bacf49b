package forecast

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Series is an evenly spaced series: Values[i] is the value at
// Start + i*Step. NaN (or ±Inf) marks a missing point.
type Series struct {
	Name   string
	Start  time.Time
	Step   time.Duration
	Values []float64
}

// Point is one forecast step: the median and the 90th percentile of the
// value expected at T.
type Point struct {
	T   time.Time
	P50 float64
	P90 float64
}

// End is the time just after the last point.
func (s Series) End() time.Time { return s.Start.Add(time.Duration(len(s.Values)) * s.Step) }

// Slice returns points [from, to) sharing the backing array; Start moves so
// that phases stay aligned to wall-clock time. Its capacity ends at to, so
// a model fitted on a slice cannot reach the points after it.
func (s Series) Slice(from, to int) Series {
	return Series{Name: s.Name, Start: s.Start.Add(time.Duration(from) * s.Step), Step: s.Step, Values: s.Values[from:to:to]}
}

func (s Series) validate() error {
	if s.Step <= 0 {
		return fmt.Errorf("forecast: series %q: step %v must be positive", s.Name, s.Step)
	}
	return nil
}

// Resample averages the series into buckets of length step aligned to
// multiples of step since the zero time (so hourly buckets start on the
// hour, in UTC). A bucket with less than half of its points present is
// missing: an average over a few minutes of an hour would pass one burst
// off as the hour's level.
func (s Series) Resample(step time.Duration) (Series, error) {
	if err := s.validate(); err != nil {
		return Series{}, err
	}
	if step <= 0 || step%s.Step != 0 {
		return Series{}, fmt.Errorf("forecast: resample %q: step %v is not a positive multiple of %v", s.Name, step, s.Step)
	}
	k := int(step / s.Step)
	first := s.Start.Truncate(step)
	// off points of the first bucket lie before Start.
	off := int(s.Start.Sub(first) / s.Step)
	n := (off + len(s.Values) + k - 1) / k
	out := Series{Name: s.Name, Start: first, Step: step, Values: make([]float64, n)}
	for b := range n {
		sum, cnt := 0.0, 0
		for j := b*k - off; j < (b+1)*k-off; j++ {
			if j < 0 || j >= len(s.Values) || !finite(s.Values[j]) {
				continue
			}
			sum += s.Values[j]
			cnt++
		}
		if 2*cnt < k || cnt == 0 {
			out.Values[b] = math.NaN()
		} else {
			out.Values[b] = sum / float64(cnt)
		}
	}
	return out, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// ErrNoData is returned when a series has no finite point to learn from.
var ErrNoData = errors.New("forecast: no data")

// phaseOf returns the index of t within a cycle of length period (a
// multiple of step) counted in steps from a fixed wall-clock origin, so
// that two series with different Start times agree on what "09:00" or
// "Monday 09:00" is. Week phases start on Monday 00:00 UTC.
func phaseOf(t time.Time, period, step time.Duration) int {
	// 1970-01-05 was a Monday; using it as the origin makes weekly phase 0
	// Monday midnight, which only matters for readability of profiles.
	const monday = 4 * 24 * time.Hour
	ns := t.UnixNano() - int64(monday)
	p := ns % int64(period)
	if p < 0 {
		p += int64(period)
	}
	return int(p / int64(step))
}
