package history

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// UsageStep is the resolution of the usage series forecasts are fitted on:
// it divides a day, so daily and weekly profiles line up with the clock.
const UsageStep = time.Hour

// UsageSeries is one workload's use of a resource per hour, oldest
// first; NaN where Prometheus had no sample.
type UsageSeries struct {
	Start  time.Time
	Values []float64
}

// Resource is what a usage series measures.
type Resource int

const (
	// CPU is the workload's CPU in cores: the hourly mean of the rate of
	// its pods' CPU seconds.
	CPU Resource = iota
	// Memory is the workload's memory in bytes: the hourly mean of its
	// pods' working set, the memory the kernel would not reclaim and the
	// one OOM kills and requests are about.
	Memory
	// Resources counts the resources, to size arrays indexed by Resource.
	Resources
)

func (r Resource) String() string {
	if r == Memory {
		return "memory"
	}
	return "cpu"
}

// perPodUsage is r's hourly mean per pod over the namespaces of matcher.
func perPodUsage(r Resource, matcher string) string {
	if r == Memory {
		return fmt.Sprintf(`sum by (namespace, pod) (max by (namespace, pod, container) (avg_over_time(container_memory_working_set_bytes{container!="",container!="POD",%s}[%s])))`, matcher, dur(UsageStep))
	}
	return fmt.Sprintf(`sum by (namespace, pod) (max by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{container!="",container!="POD",%s}[%s])))`, matcher, dur(UsageStep))
}

// UsageQuery returns the hourly mean use of r by every workload in the
// given namespaces over window, as one instant query answering a matrix
// (a subquery), so that the Querier stays the instant-query API.
// Subquery steps are aligned to multiples of the step since the epoch,
// so points fall on the hour.
func UsageQuery(r Resource, namespaces []string, window time.Duration) string {
	quoted := make([]string, len(namespaces))
	for i, ns := range namespaces {
		quoted[i] = regexp.QuoteMeta(ns)
	}
	m := fmt.Sprintf("namespace=~%q", strings.Join(quoted, "|"))
	// A second short of the window: Prometheus 2 includes a subquery's
	// first step, an hour before the window, which would be read for
	// nothing (Prometheus 3 excludes it either way).
	return fmt.Sprintf("(\n%s\n)[%s:%s]", byWorkload("sum", perPodUsage(r, m), ownerExpr("", m)), dur(window-time.Second), dur(UsageStep))
}

// CPUUsageQuery is UsageQuery of CPU.
func CPUUsageQuery(namespaces []string, window time.Duration) string {
	return UsageQuery(CPU, namespaces, window)
}

// FetchUsage runs UsageQuery of r once per batch of namespaces, one after
// the other: the answers are the largest the exporter reads (a point per
// workload and hour), so batches bound the memory and the load on
// Prometheus. The window ends at the last whole hour before at. A failed
// batch leaves its workloads out and is reported; the others stand.
func FetchUsage(ctx context.Context, q Querier, r Resource, at time.Time, window, timeout time.Duration, batches [][]string) (map[Key]UsageSeries, error) {
	end := at.Truncate(UsageStep)
	start := end.Add(-window).Add(UsageStep)
	n := int(window / UsageStep)
	out := map[Key]UsageSeries{}
	var errs []error
	for _, b := range batches {
		if len(b) == 0 {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, timeout)
		v, _, _, err := q.Query(qctx, UsageQuery(r, b, window), end, v1.WithTimeout(timeout))
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s of namespaces %s…: %w", r, b[0], err))
			continue
		}
		mat, ok := v.(model.Matrix)
		if !ok {
			errs = append(errs, fmt.Errorf("%s of namespaces %s…: answer is %s, want a matrix", r, b[0], v.Type()))
			continue
		}
		for _, ss := range mat {
			k := Key{Namespace: string(ss.Metric["namespace"]), Kind: string(ss.Metric["kind"]), Workload: string(ss.Metric["workload"])}
			if k.Namespace == "" || k.Workload == "" {
				continue
			}
			vals := make([]float64, n)
			for i := range vals {
				vals[i] = math.NaN()
			}
			for _, p := range ss.Values {
				i := int(p.Timestamp.Time().Sub(start) / UsageStep)
				if i >= 0 && i < n {
					vals[i] = float64(p.Value)
				}
			}
			out[k] = UsageSeries{Start: start, Values: vals}
		}
	}
	return out, errors.Join(errs...)
}
