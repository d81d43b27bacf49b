package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/upid-dev/upid/exporter"
)

// maxRecommendationsBytes bounds the exporter's answer; a cluster of 50,000
// workloads serialises to well under this.
const maxRecommendationsBytes = 256 << 20

// WorkloadRecs are the recommendations of one workload's containers, and
// of its pods for the resources they set at pod level, that are confident
// enough to apply.
type WorkloadRecs struct {
	Containers map[string]Target
	// Pod holds pod-level requests (spec.resources), in cores or bytes.
	Pod map[corev1.ResourceName]float64
	// LowConfidence is true when the workload has recommendations but none
	// is confident enough.
	LowConfidence bool
}

type snapshot struct {
	at        time.Time // when the exporter computed the results
	fetched   time.Time
	workloads map[string]*WorkloadRecs // namespace/kind/name
}

// Recommendations is the in-memory copy of the exporter's results. Lookups
// never touch the network; Run refreshes the copy in the background and a
// failed refresh keeps the last good one.
type Recommendations struct {
	url           string
	client        *http.Client
	minConfidence float64
	maxStaleness  time.Duration
	log           *slog.Logger
	now           func() time.Time

	snap      atomic.Pointer[snapshot]
	refreshes *prometheus.CounterVec
}

// NewRecommendations reads baseURL + /api/v1/workloads.
func NewRecommendations(baseURL string, minConfidence float64, maxStaleness time.Duration, log *slog.Logger) *Recommendations {
	if log == nil {
		log = slog.Default()
	}
	r := &Recommendations{
		url:           strings.TrimRight(baseURL, "/") + "/api/v1/workloads",
		client:        &http.Client{Timeout: 30 * time.Second},
		minConfidence: minConfidence,
		maxStaleness:  maxStaleness,
		log:           log,
		now:           time.Now,
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upid_webhook_recommendations_refresh_total",
			Help: "Reads of the exporter's recommendations, by result (success, failure).",
		}, []string{"result"}),
	}
	r.refreshes.WithLabelValues("success")
	r.refreshes.WithLabelValues("failure")
	return r
}

// Refresh reads the exporter once.
func (r *Recommendations) Refresh(ctx context.Context) error {
	err := r.refresh(ctx)
	if err != nil {
		r.refreshes.WithLabelValues("failure").Inc()
		return err
	}
	r.refreshes.WithLabelValues("success").Inc()
	return nil
}

func (r *Recommendations) refresh(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return fmt.Errorf("recommendations_url: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", r.url, resp.Status, strings.TrimSpace(string(msg)))
	}
	var body exporter.WorkloadsResponse
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxRecommendationsBytes))
	if err := dec.Decode(&body); err != nil {
		return fmt.Errorf("GET %s: decoding: %w", r.url, err)
	}
	r.snap.Store(r.index(body))
	return nil
}

func (r *Recommendations) index(body exporter.WorkloadsResponse) *snapshot {
	s := &snapshot{at: body.At, fetched: r.now(), workloads: make(map[string]*WorkloadRecs, len(body.Workloads))}
	for _, wl := range body.Workloads {
		recs := &WorkloadRecs{Containers: map[string]Target{}}
		any := false
		for _, c := range wl.Containers {
			rec := c.Recommendation
			if rec == nil || !rec.OK {
				continue
			}
			any = true
			if rec.Confidence < r.minConfidence {
				continue
			}
			t := Target{CPURequest: rec.CPURequestCores, CPULimit: rec.CPULimitCores, MemoryRequest: rec.MemoryRequestBytes, MemoryLimit: rec.MemoryLimitBytes}
			if c.MemoryBytes != nil {
				t.MemoryPeak = c.MemoryBytes.Max
			}
			recs.Containers[c.Name] = t
		}
		for _, a := range wl.Pod {
			any = true
			if a.Confidence < r.minConfidence || !(a.Request > 0) {
				continue
			}
			if recs.Pod == nil {
				recs.Pod = map[corev1.ResourceName]float64{}
			}
			recs.Pod[corev1.ResourceName(a.Resource)] = a.Request
		}
		if !any {
			continue
		}
		recs.LowConfidence = len(recs.Containers) == 0 && len(recs.Pod) == 0
		s.workloads[key(wl.Namespace, wl.Kind, wl.Name)] = recs
	}
	return s
}

func key(ns, kind, name string) string { return ns + "/" + kind + "/" + name }

// Lookup returns the recommendations of the first candidate workload that
// has any, and a reason word when there are none to apply.
func (r *Recommendations) Lookup(ns string, candidates []Workload) (*WorkloadRecs, Workload, string) {
	s := r.snap.Load()
	if s == nil {
		return nil, Workload{}, "no_recommendations_yet"
	}
	if r.maxStaleness > 0 && r.now().Sub(s.at) > r.maxStaleness {
		return nil, Workload{}, "stale_recommendations"
	}
	for _, c := range candidates {
		if w, ok := s.workloads[key(ns, c.Kind, c.Name)]; ok {
			if w.LowConfidence {
				return nil, c, "low_confidence"
			}
			return w, c, ""
		}
	}
	return nil, Workload{}, "no_recommendation"
}

// Loaded reports whether a first refresh has succeeded.
func (r *Recommendations) Loaded() bool { return r.snap.Load() != nil }

// Run refreshes every interval until ctx ends.
func (r *Recommendations) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reading recommendations failed; keeping the last good ones", "url", r.url, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Describe and Collect make the cache a collector of its age and size.
func (r *Recommendations) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheAgeDesc
	ch <- cacheWorkloadsDesc
	r.refreshes.Describe(ch)
}

var (
	cacheAgeDesc = prometheus.NewDesc("upid_webhook_recommendations_cache_age_seconds",
		"Age of the recommendations in memory, from when the exporter computed them; absent before the first read.", nil, nil)
	cacheWorkloadsDesc = prometheus.NewDesc("upid_webhook_recommendations_cache_workloads",
		"Workloads with recommendations in memory.", nil, nil)
)

func (r *Recommendations) Collect(ch chan<- prometheus.Metric) {
	if s := r.snap.Load(); s != nil {
		ch <- prometheus.MustNewConstMetric(cacheAgeDesc, prometheus.GaugeValue, r.now().Sub(s.at).Seconds())
		ch <- prometheus.MustNewConstMetric(cacheWorkloadsDesc, prometheus.GaugeValue, float64(len(s.workloads)))
	} else {
		ch <- prometheus.MustNewConstMetric(cacheWorkloadsDesc, prometheus.GaugeValue, 0)
	}
	r.refreshes.Collect(ch)
}
