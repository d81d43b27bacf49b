package history_test

import (
	"context"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/series"
	"github.com/upid-dev/upid/internal/testenv"
)

// TestContainerRunsAndSources reads a workload's CPU seconds from a real
// Prometheus: a restarted container's two runs (cAdvisor gives each its own
// id) add up, and a run scraped by two jobs counts once (found in review:
// the runs were collapsed like the duplicate sources, halving the CPU).
func TestContainerRunsAndSources(t *testing.T) {
	from, mid, to := twoHours()
	at := to.Add(time.Minute)
	run := func(id string, a, b time.Time) series.Series {
		ref := series.PodRef{Namespace: "shop", Pod: "worker-7d9f-a", Container: "app", Node: "n1", ContainerID: strings.Repeat(id, 64)}
		return series.ContainerCPUUsageSeconds(ref, series.GenerateCounter(a, b, 15*time.Second, series.Const(0.5)))
	}
	second := run("b", mid.Add(15*time.Second), to)
	again := second
	again.Labels = maps.Clone(second.Labels)
	again.Labels["job"] = "cadvisor-duplicate"
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{Series: []series.Series{
		series.KubePodOwner(series.PodRef{Namespace: "shop", Pod: "worker-7d9f-a"}, series.OwnerRef{Kind: "ReplicaSet", Name: "worker-7d9f"}, ones(from, to)),
		series.KubeReplicaSetOwner("shop", "worker-7d9f", series.OwnerRef{Kind: "Deployment", Name: "worker"}, ones(from, to)),
		run("a", from, mid), // 0.5 cores for an hour
		second,              // restarted: 0.5 cores for the next hour
		again,               // the same run from a second scrape job
	}})
	snap, err := history.Fetch(context.Background(), prom.API, at, history.Options{
		Params:  history.Params{Window: 2 * time.Hour, Step: time.Minute, RateWindow: 5 * time.Minute},
		Timeout: 30 * time.Second, Concurrency: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	w := snap.Workloads[history.Key{Namespace: "shop", Kind: "Deployment", Workload: "worker"}]
	if w == nil || w.CPUSeconds == nil {
		t.Fatalf("no CPU seconds for worker: %+v errors %v", w, snap.Errors)
	}
	// 0.5 cores over the 2 hours less the minute at the end and the
	// restart's 15 s; increase() extrapolates to the window's edges.
	want := 0.5 * (2*time.Hour - time.Minute).Seconds()
	if math.Abs(*w.CPUSeconds-want) > 0.03*want {
		t.Errorf("CPU seconds over the window = %.0f, want %.0f ± 3 %% (0.5 cores throughout, one restart, one run scraped twice)", *w.CPUSeconds, want)
	}
}
