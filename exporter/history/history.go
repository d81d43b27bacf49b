// Package history reads what Prometheus remembers about each workload over
// the analysis window: usage, requests, probe and request traffic, prices.
// Every query aggregates on the server; see queries.go.
package history

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/utils/ptr"

	"github.com/upid-dev/upid/exporter/pricing"
	"github.com/upid-dev/upid/exporter/recommend"
)

// Querier is the part of the Prometheus HTTP API client the exporter uses;
// the demo implements it over an in-process PromQL engine.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error)
}

// Key names a workload as the queries label it.
type Key struct {
	Namespace, Kind, Workload string
}

// Usage holds quantiles of one resource over the window.
type Usage struct {
	P50, P95, Max *float64
}

// Workload is everything Prometheus said about one workload. A nil pointer
// means Prometheus returned no series for it: unknown, not zero.
type Workload struct {
	CPUSeconds     *float64 // CPU time used over the window
	CPUPodP95Cores *float64 // the largest per-pod p95 of CPU
	Coverage       *float64 // share of the window with usage samples, 0..1
	NetworkRxBytes *float64
	Probes         *float64 // kubelet probes run over the window
	Replicas       *float64 // running pods, averaged over the window
	Requests       []RequestCount
	// RequestCoverage is the share of the window, 0..1, in which a request
	// source had a series of the workload, the largest over the sources;
	// nil when none answered for it.
	RequestCoverage *float64
	// ContainerCPU (cores) and ContainerMemory (bytes) are usage quantiles
	// by container, and ContainerInputs give the recommender's inputs by
	// container over a window (at most the state's); all three come from
	// the recommender's incremental state (exporter/recommender.go).
	ContainerCPU    map[string]*Usage
	ContainerMemory map[string]*Usage
	ContainerInputs map[string]func(window time.Duration) recommend.Inputs
}

// RequestCount is the number of requests over the window for one
// combination of path and user agent of one source.
type RequestCount struct {
	Source, Path, UserAgent string
	// Count is as Prometheus answered it, NaN, ±Inf or negative included:
	// dropping such a series would leave the others (the health checks) to
	// speak for all the workload's traffic.
	Count float64
}

// Snapshot is the result of one cycle of queries.
type Snapshot struct {
	At        time.Time
	Workloads map[Key]*Workload
	// ServiceRequests holds request counts by Service (namespace, name), from
	// sources that name a Service rather than a pod or workload.
	ServiceRequests map[[2]string][]RequestCount
	// ServiceRequestCoverage is RequestCoverage for those Services.
	ServiceRequestCoverage map[[2]string]float64
	// OpenCost holds per-node hourly prices when Prometheus has OpenCost's metrics.
	OpenCost pricing.OpenCost
	// Errors holds the failed queries by name; the data they would have
	// filled stays nil, which the analysis reads as unknown.
	Errors map[string]error
}

// Options bound the load a cycle puts on Prometheus.
type Options struct {
	Params
	Timeout     time.Duration // per query
	Concurrency int
}

// Fetch runs every query of a cycle at time at. Failed queries are reported
// in Snapshot.Errors; the error is non-nil only when every query failed, and
// the snapshot is returned even then so the failures can be counted.
func Fetch(ctx context.Context, q Querier, at time.Time, opts Options) (*Snapshot, error) {
	queries := Queries(opts.Params)
	snap := &Snapshot{At: at, Workloads: map[Key]*Workload{}, OpenCost: pricing.OpenCost{}, Errors: map[string]error{}}
	conc := opts.Concurrency
	if conc < 1 {
		conc = 1
	}
	// Answers are applied in query order as soon as every earlier query has
	// answered, and dropped: the decoded vectors of a cycle at 150,000 pods
	// add up to hundreds of megabytes, and holding them all until the last
	// answer came in raised the peak RSS by about 150 MiB (BenchmarkFetch).
	// Workers take the queries in order so that the applied prefix grows
	// steadily.
	results := make([]model.Vector, len(queries))
	errs := make([]error, len(queries))
	done := make([]bool, len(queries))
	var mu sync.Mutex
	applied, failed := 0, 0
	record := func(i int, vec model.Vector, err error) {
		mu.Lock()
		defer mu.Unlock()
		results[i], errs[i], done[i] = vec, err, true
		for ; applied < len(queries) && done[applied]; applied++ {
			qu := queries[applied]
			if errs[applied] != nil {
				snap.Errors[qu.Name] = errs[applied]
				failed++
				continue
			}
			snap.apply(qu.Name, results[applied], opts.Sources)
			results[applied] = nil
		}
	}
	run := func(qu Query) (model.Vector, error) {
		qctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
		v, _, _, err := q.Query(qctx, qu.Expr, at, v1.WithTimeout(opts.Timeout))
		if err != nil {
			return nil, err
		}
		vec, ok := v.(model.Vector)
		if !ok {
			return nil, fmt.Errorf("query %s returned %s, want a vector", qu.Name, v.Type())
		}
		return vec, nil
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(conc, len(queries)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(queries); i = int(next.Add(1) - 1) {
				vec, err := run(queries[i])
				record(i, vec, err)
			}
		}()
	}
	wg.Wait()

	if failed == len(queries) {
		return snap, fmt.Errorf("prometheus: all %d queries failed: %w", failed, errors.Join(errs...))
	}
	return snap, nil
}

func (s *Snapshot) workload(m model.Metric, nsLabel, nameLabel string) *Workload {
	k := Key{Namespace: string(m[model.LabelName(nsLabel)]), Kind: string(m["kind"]), Workload: string(m[model.LabelName(nameLabel)])}
	if k.Namespace == "" || k.Workload == "" {
		return nil
	}
	w := s.Workloads[k]
	if w == nil {
		w = &Workload{}
		s.Workloads[k] = w
	}
	return w
}

func val(sample *model.Sample) *float64 {
	v := float64(sample.Value)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func (s *Snapshot) apply(name string, vec model.Vector, sources []RequestSource) {
	if name == "opencost" {
		s.OpenCost = pricing.OpenCostFromVector(vec)
		return
	}
	// The query's request source is found once per answer, not per series:
	// per series, with the names concatenated, it cost 1.3 million
	// allocations a fetch at 150,000 pods, most of them for the series of
	// the queries that have no source (docs/benchmarks.md).
	if src, coverage, ok := sourceOf(name, sources); ok {
		for _, sample := range vec {
			if coverage {
				s.applyRequestCoverage(src, sample.Metric, float64(sample.Value))
			} else {
				s.applyRequests(src, sample.Metric, float64(sample.Value))
			}
		}
		return
	}
	for _, sample := range vec {
		m := sample.Metric
		v := val(sample)
		if v == nil {
			continue
		}
		w := s.workload(m, "namespace", "workload")
		if w == nil {
			continue
		}
		switch name {
		case "cpu_usage_seconds":
			w.CPUSeconds = v
		case "cpu_pod_p95_cores":
			w.CPUPodP95Cores = v
		case "coverage":
			*v = math.Min(1, *v) // v is this sample's own
			w.Coverage = v
		case "network_receive_bytes":
			w.NetworkRxBytes = v
		case "probes":
			w.Probes = v
		case "replicas":
			w.Replicas = v
		}
	}
}

// sourceOf finds the request source a query is about: its counts
// (requests_<metric>) or their coverage (request_coverage_<metric>).
func sourceOf(name string, sources []RequestSource) (src RequestSource, coverage, ok bool) {
	metric, ok := strings.CutPrefix(name, "requests_")
	if !ok {
		if metric, ok = strings.CutPrefix(name, "request_coverage_"); !ok {
			return RequestSource{}, false, false
		}
		coverage = true
	}
	for _, s := range sources {
		if s.Metric == metric {
			return s, coverage, true
		}
	}
	return RequestSource{}, false, false
}

// requestTarget is what a request source's series counts for: a Service
// (namespace, name) for sources that name one, else a workload; neither
// when the labels are empty.
func (s *Snapshot) requestTarget(src RequestSource, m model.Metric) (svc [2]string, w *Workload) {
	ns, _ := src.names()
	switch {
	case src.ServiceLabel != "":
		k := [2]string{string(m[model.LabelName(ns)]), string(m[model.LabelName(src.ServiceLabel)])}
		if k[0] == "" || k[1] == "" {
			return svc, nil
		}
		return k, nil
	case src.WorkloadLabel != "":
		// Such series name a workload but not its kind; the analysis
		// matches them to the inventory by namespace and name.
		return svc, s.workload(m, ns, src.WorkloadLabel)
	}
	return svc, s.workload(m, "namespace", "workload")
}

// applyRequestCoverage keeps the largest coverage of the workload's (or the
// Service's) request series over the sources: one source that saw it over
// the whole window is enough to know its traffic there.
func (s *Snapshot) applyRequestCoverage(src RequestSource, m model.Metric, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	c := math.Min(1, math.Max(0, v))
	svc, w := s.requestTarget(src, m)
	switch {
	case svc[1] != "":
		if s.ServiceRequestCoverage == nil {
			s.ServiceRequestCoverage = map[[2]string]float64{}
		}
		s.ServiceRequestCoverage[svc] = math.Max(s.ServiceRequestCoverage[svc], c)
	case w != nil && (w.RequestCoverage == nil || c > *w.RequestCoverage):
		w.RequestCoverage = ptr.To(c)
	}
}

func (s *Snapshot) applyRequests(src RequestSource, m model.Metric, count float64) {
	rc := RequestCount{Source: src.Metric, Count: count}
	for _, l := range src.PathLabels {
		if p := string(m[model.LabelName(l)]); p != "" {
			rc.Path = p
			break
		}
	}
	if src.UserAgentLabel != "" {
		rc.UserAgent = string(m[model.LabelName(src.UserAgentLabel)])
	}
	svc, w := s.requestTarget(src, m)
	switch {
	case svc[1] != "":
		if s.ServiceRequests == nil {
			s.ServiceRequests = map[[2]string][]RequestCount{}
		}
		s.ServiceRequests[svc] = append(s.ServiceRequests[svc], rc)
	case w != nil:
		w.Requests = append(w.Requests, rc)
	}
}
