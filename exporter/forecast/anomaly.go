package forecast

import (
	"math"
	"time"
)

// AnomalyScore says how far recent usage lies outside the band m
// forecast for it, from 0 (inside the band) to 1 (far outside).
//
// m must have been fitted on the history before recent; points of recent
// before m's first forecast time, or more than 35 days after it, or
// missing, are ignored. Each remaining point i scores
//
//	a_i = min(1, (y_i − P90_i) / (P90_i − P50_i))   above the band,
//	a_i = min(1, (P10_i − y_i) / (P50_i − P10_i))   below it,
//	a_i = 0                                          inside [P10, P90],
//
// the distance outside the band in units of the band's own half-width on
// that side, saturating at one half-width; the score is the mean of a_i.
// So a workload whose usage sat a full half-width (or more) above P90 for
// the whole period scores 1, one that did so for a quarter of it scores
// 0.25, and a single spike in a day of hourly points at most 1/24. A
// calibrated model scores a little above zero on normal usage, since 10%
// of points lie above P90 and 10% below P10, most of them by less than a
// half-width: the median day of the Azure evaluation scored 0.068. Half-widths are at least 1% of |P50| (and 1e-9), so a
// constant series' near-zero band does not turn rounding noise into an
// anomaly. With no point to score the result is NaN: unknown, not normal.
func AnomalyScore(m *Model, recent Series) float64 {
	if m == nil || recent.Step <= 0 {
		return math.NaN()
	}
	sum, cnt := 0.0, 0
	maxK := int(35 * day / m.step)
	for i, y := range recent.Values {
		if !finite(y) {
			continue
		}
		t := recent.Start.Add(time.Duration(i) * recent.Step)
		off := t.Sub(m.end)
		if off < 0 {
			continue
		}
		// The forecast step whose interval holds t, so 5-minute recent
		// points can be scored against an hourly model.
		k := int(off/m.step) + 1
		if k > maxK {
			break
		}
		p50, p90, p10 := m.quantilesAt(k)
		floor := math.Max(1e-9, 0.01*math.Abs(p50))
		a := 0.0
		switch {
		case y > p90:
			a = (y - p90) / math.Max(p90-p50, floor)
		case y < p10:
			a = (p10 - y) / math.Max(p50-p10, floor)
		}
		sum += math.Min(1, a)
		cnt++
	}
	if cnt == 0 {
		return math.NaN()
	}
	return sum / float64(cnt)
}
