// Package demo is a small built-in cluster for `upid exporter --demo`: Kubernetes objects
// for client-go's fake clientset, and a week or more of metrics history answered by
// Prometheus's own PromQL engine over an in-memory store. The exporter runs its production
// queries and analysis against it unchanged, on a machine with no cluster and no
// Prometheus.
//
// The history is what the real exporters would have scraped, in their exact label layout
// (internal/series): cAdvisor, kube-state-metrics, kubelet's prober metrics, OpenCost, and
// the applications' own http_requests_total. Usage follows excerpts of public traces
// (Azure VM CPU, Google Borg tasks; see traces/ATTRIBUTION.md); health traffic follows
// from the pod specs. Each workload is a Case with the verdict UPID should reach.
package demo

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/upid-dev/upid/exporter/history"
)

// Demo is the built-in cluster and its history.
type Demo struct {
	// Objects seed client-go's fake clientset: the cluster as it is at Now.
	Objects []runtime.Object
	// Querier answers PromQL over the history, which covers [Now-Window-1h, Now] at
	// one-minute scrapes; the extra hour feeds rate windows at the start of the window.
	Querier history.Querier
	Now     time.Time
	Window  time.Duration
	// Cases are the workloads and the verdicts they should get, in a stable order.
	Cases []Case
	// Series and Samples count what was loaded.
	Series, Samples int

	closeOnce sync.Once
	closeErr  error
}

// New builds the demo cluster with history up to now over window (plus an hour). now is
// truncated to the second: the storage keeps milliseconds, as Prometheus does, and the
// scrape grid is anchored at now, so that a query at Now sees a sample exactly at the end
// of its range.
func New(now time.Time, window time.Duration) (*Demo, error) {
	if window < step {
		return nil, fmt.Errorf("demo: window %s is shorter than the %s scrape interval", window, step)
	}
	now = now.Truncate(time.Second)
	start := now.Add(-window - time.Hour)
	tr, err := loadTraces()
	if err != nil {
		return nil, err
	}
	pl := makePlan(now, start, cluster(tr))

	st := &memStorage{step: step.Milliseconds()}
	l := &loader{st: st, start: start, end: now, lb: labels.NewBuilder(labels.EmptyLabels())}
	if err := l.load(pl); err != nil {
		return nil, fmt.Errorf("demo: loading history: %w", err)
	}
	d := &Demo{Now: now, Window: window, Series: l.series, Samples: l.samples}
	d.Querier = newQuerier(st, now)
	d.Objects = pl.objects()
	for _, w := range pl.workloads {
		d.Cases = append(d.Cases, w.Case)
	}
	return d, nil
}

// Close stops the query engine.
func (d *Demo) Close() error {
	d.closeOnce.Do(func() {
		if q, ok := d.Querier.(*Querier); ok {
			d.closeErr = q.engine.Close()
		}
	})
	return d.closeErr
}
