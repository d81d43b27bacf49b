package recommend

import (
	"errors"
	"math"
	"time"
)

// HistogramOptions shape a Histogram: exponential buckets whose first covers
// [0, FirstBucket) and whose n-th is FirstBucket·Ratio^n wide, so the relative
// error is about Ratio−1 whatever the magnitude, and a half-life for decay.
// The bucket scheme is the one of the Kubernetes VPA
// (vertical-pod-autoscaler/pkg/recommender/util/histogram_options.go,
// NewExponentialHistogramOptions) so that the VPA baseline is bucketed exactly
// as upstream buckets it.
type HistogramOptions struct {
	FirstBucket float64
	Ratio       float64
	// Max is the start of the last bucket at the latest; larger values land
	// in the last bucket.
	Max float64
	// HalfLife is the age at which a sample weighs half a fresh one; zero
	// disables decay.
	HalfLife time.Duration
	// Epsilon is the weight under which a bucket counts as empty.
	Epsilon float64
}

// CPUHistogramOptions is the VPA CPU histogram in cores: first bucket 0.001,
// growth 5 % (DefaultHistogramBucketSizeGrowth), last bucket at 1000 cores,
// and the 24 h half-life of DefaultCPUHistogramDecayHalfLife
// (vertical-pod-autoscaler/pkg/recommender/model/aggregations_config.go,
// cpuHistogramOptions). Note that upstream's comment there says 0.01 core
// while the code passes 0.001; the code is what runs.
func CPUHistogramOptions() HistogramOptions {
	return HistogramOptions{FirstBucket: 0.001, Ratio: 1.05, Max: 1000, HalfLife: 24 * time.Hour, Epsilon: vpaEpsilon}
}

// MemoryHistogramOptions is the VPA memory-peaks histogram in bytes: first
// bucket 1e7, growth 5 %, last bucket at 1e12, half-life 24 h
// (memoryHistogramOptions, DefaultMemoryHistogramDecayHalfLife).
func MemoryHistogramOptions() HistogramOptions {
	return HistogramOptions{FirstBucket: 1e7, Ratio: 1.05, Max: 1e12, HalfLife: 24 * time.Hour, Epsilon: vpaEpsilon}
}

// vpaEpsilon is upstream's epsilon = 0.001 × minSampleWeight (0.1).
const vpaEpsilon = 0.001 * 0.1

// maxDecayExponent bounds 2^(age/halfLife) before the reference time moves,
// as upstream's maxDecayExponent does, so weights never overflow.
const maxDecayExponent = 100

func (o HistogramOptions) validate() error {
	if !(o.FirstBucket > 0) || !(o.Ratio > 1) || !(o.Max > 0) || o.HalfLife < 0 || !(o.Epsilon > 0) ||
		math.IsInf(o.FirstBucket, 0) || math.IsInf(o.Ratio, 0) || math.IsInf(o.Max, 0) || math.IsInf(o.Epsilon, 0) {
		return errors.New("histogram options: need FirstBucket > 0, Ratio > 1, Max > 0, Epsilon > 0, HalfLife >= 0, all finite")
	}
	return nil
}

func (o HistogramOptions) numBuckets() int {
	return int(math.Ceil(math.Log(o.Max*(o.Ratio-1)/o.FirstBucket+1)/math.Log(o.Ratio))) + 1
}

// bucketStart is FirstBucket·(Ratio^n − 1)/(Ratio − 1).
func (o HistogramOptions) bucketStart(n int) float64 {
	if n <= 0 {
		return 0
	}
	return o.FirstBucket * (math.Pow(o.Ratio, float64(n)) - 1) / (o.Ratio - 1)
}

func (o HistogramOptions) findBucket(v float64, nb int) int {
	if !(v >= o.FirstBucket) { // also NaN
		return 0
	}
	b := int(math.Log(v*(o.Ratio-1)/o.FirstBucket+1) / math.Log(o.Ratio))
	// Floating point can put a value that sits exactly on a boundary one
	// bucket off; the start formula is the reference.
	if b > 0 && v < o.bucketStart(b) {
		b--
	} else if b+1 < nb && v >= o.bucketStart(b+1) {
		b++
	}
	return min(b, nb-1)
}

// Histogram is a decaying histogram with exponential buckets: the incremental
// state a recommender keeps per container instead of raw samples. It stores
// only the range of buckets that ever held weight, so a container whose usage
// stays within a factor of two costs about fifteen float64s, not the 223 of
// the full CPU range.
//
// A sample of weight w at time t weighs w·2^((t−ref)/HalfLife); only relative
// weights matter, so old samples are not touched when time passes, and the
// reference moves forward (rescaling everything once) only when exponents grow
// large. This is the VPA's decaying histogram
// (pkg/recommender/util/decaying_histogram.go) with the same arithmetic.
type Histogram struct {
	opts  HistogramOptions
	nb    int
	first int       // bucket index of weights[0]
	w     []float64 // weights of buckets first .. first+len-1
	total float64
	ref   time.Time // decay reference, a multiple of HalfLife
}

// NewHistogram returns an empty histogram, or an error for invalid options.
func NewHistogram(o HistogramOptions) (*Histogram, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	return &Histogram{opts: o, nb: o.numBuckets()}, nil
}

func mustHistogram(o HistogramOptions) *Histogram {
	h, err := NewHistogram(o)
	if err != nil {
		panic(err)
	}
	return h
}

// Options returns the options the histogram was made with.
func (h *Histogram) Options() HistogramOptions { return h.opts }

func (h *Histogram) decay(t time.Time) float64 {
	if h.opts.HalfLife == 0 {
		return 1
	}
	if h.ref.IsZero() {
		h.ref = t.Round(h.opts.HalfLife)
	}
	if t.After(h.ref.Add(time.Duration(int64(h.opts.HalfLife) * maxDecayExponent))) {
		h.shift(t)
	}
	return math.Exp2(float64(t.Sub(h.ref)) / float64(h.opts.HalfLife))
}

// shift moves the reference to t (rounded to a multiple of the half-life)
// and rescales the weights by a power of two, which is exact.
func (h *Histogram) shift(t time.Time) {
	nref := t.Round(h.opts.HalfLife)
	exp := int(math.Floor(float64(h.ref.Sub(nref))/float64(h.opts.HalfLife) + 0.5))
	f := math.Ldexp(1, exp)
	for i := range h.w {
		h.w[i] *= f
	}
	h.total *= f
	h.ref = nref
	h.trim()
}

// grow makes bucket b addressable.
func (h *Histogram) grow(b int) int {
	if len(h.w) == 0 {
		h.first = b
		h.w = append(h.w[:0], 0)
		return 0
	}
	if b < h.first {
		n := make([]float64, len(h.w)+h.first-b)
		copy(n[h.first-b:], h.w)
		h.w, h.first = n, b
		return 0
	}
	for b >= h.first+len(h.w) {
		h.w = append(h.w, 0)
	}
	return b - h.first
}

// trim drops empty buckets at both ends so that the stored range follows
// the weight as it decays away.
func (h *Histogram) trim() {
	lo, hi := 0, len(h.w)
	for lo < hi && h.w[lo] < h.opts.Epsilon {
		lo++
	}
	for hi > lo && h.w[hi-1] < h.opts.Epsilon {
		hi--
	}
	if lo == hi {
		h.w, h.first, h.total = h.w[:0], 0, 0
		return
	}
	if lo > 0 || hi < len(h.w) {
		h.w = append(h.w[:0:0], h.w[lo:hi]...)
		h.first += lo
	}
}

// Add adds a sample of value v and weight w observed at t. Negative, NaN or
// infinite values and weights are ignored: a broken sample must not poison
// months of state.
func (h *Histogram) Add(v, w float64, t time.Time) {
	if !finiteNonNeg(v) || !finiteNonNeg(w) || w == 0 {
		return
	}
	dw := w * h.decay(t)
	i := h.grow(h.opts.findBucket(v, h.nb))
	h.w[i] += dw
	h.total += dw
}

// Subtract removes weight added earlier with the same value and time, as
// the VPA does when a memory peak of the current interval is replaced by a
// higher one. The bucket never goes below zero.
func (h *Histogram) Subtract(v, w float64, t time.Time) {
	if !finiteNonNeg(v) || !finiteNonNeg(w) || len(h.w) == 0 {
		return
	}
	dw := w * h.decay(t)
	b := h.opts.findBucket(v, h.nb) - h.first
	if b < 0 || b >= len(h.w) {
		return
	}
	if dw > h.w[b]-h.opts.Epsilon {
		dw = h.w[b]
	}
	h.w[b] -= dw
	h.total -= dw
	h.trim()
}

// Merge adds other's weights, e.g. to aggregate the replicas of a workload.
// Both must have been made with the same options.
func (h *Histogram) Merge(other *Histogram) error {
	if h.opts != other.opts {
		return errors.New("histogram merge: different options")
	}
	if other.IsEmpty() {
		return nil
	}
	o := *other
	o.w = append([]float64(nil), other.w...)
	if h.opts.HalfLife != 0 && !h.ref.IsZero() && !o.ref.IsZero() {
		// Bring both to the later reference so that weights compare.
		if h.ref.Before(o.ref) {
			h.shift(o.ref)
		} else if o.ref.Before(h.ref) {
			o.shift(h.ref)
		}
	}
	if h.ref.IsZero() {
		h.ref = o.ref
	}
	for i, w := range o.w {
		j := h.grow(o.first + i)
		h.w[j] += w
	}
	h.total += o.total
	h.trim()
	return nil
}

// IsEmpty reports whether no bucket holds at least Epsilon.
func (h *Histogram) IsEmpty() bool {
	for _, w := range h.w {
		if w >= h.opts.Epsilon {
			return false
		}
	}
	return true
}

// TotalWeight is the sum of the (decayed, relative) weights.
func (h *Histogram) TotalWeight() float64 { return h.total }

// Buckets is the number of buckets the histogram currently stores, a
// measure of its memory.
func (h *Histogram) Buckets() int { return len(h.w) }

// Percentile returns the end of the bucket holding the p-quantile (p in
// [0, 1]), or 0 when empty: the VPA's rule, which never underestimates by
// more than one bucket and overestimates by up to Ratio−1. The last bucket
// has no end, so its start is returned.
func (h *Histogram) Percentile(p float64) float64 {
	b, _, _ := h.locate(p)
	if b < 0 {
		return 0
	}
	if b < h.nb-1 {
		return h.opts.bucketStart(b + 1)
	}
	return h.opts.bucketStart(b)
}

// Quantile returns the p-quantile interpolated linearly within its bucket,
// which removes the upward bias of Percentile; UPID adds its own explicit
// margin instead of relying on bucket rounding.
func (h *Histogram) Quantile(p float64) float64 {
	b, below, in := h.locate(p)
	if b < 0 {
		return 0
	}
	lo := h.opts.bucketStart(b)
	if b >= h.nb-1 || in <= 0 {
		return lo
	}
	hi := h.opts.bucketStart(b + 1)
	f := (p*h.total - below) / in
	f = math.Min(1, math.Max(0, f))
	return lo + f*(hi-lo)
}

// locate finds the first bucket at which the cumulative weight reaches
// p·total, with the weight below it and in it; -1 when empty.
func (h *Histogram) locate(p float64) (bucket int, below, in float64) {
	if h.IsEmpty() {
		return -1, 0, 0
	}
	if math.IsNaN(p) {
		p = 1
	}
	p = math.Min(1, math.Max(0, p))
	lo, hi := 0, len(h.w)-1
	for lo < hi && h.w[lo] < h.opts.Epsilon {
		lo++
	}
	for hi > lo && h.w[hi] < h.opts.Epsilon {
		hi--
	}
	threshold := p * h.total
	sum := 0.0
	i := lo
	for ; i < hi; i++ {
		if sum+h.w[i] >= threshold {
			break
		}
		sum += h.w[i]
	}
	return h.first + i, sum, h.w[i]
}

func finiteNonNeg(v float64) bool { return v >= 0 && !math.IsInf(v, 1) }
