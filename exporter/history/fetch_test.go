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

// TestRequestCoverage reads how much of the window each source's request
// series cover from a real Prometheus: the union over a workload's pods at
// each step (a pod replaced halfway through still covers the window, where
// the largest coverage of one series would say half), and per workload or
// Service for sources that name one.
func TestRequestCoverage(t *testing.T) {
	from, mid, to := twoHours()
	at := to.Add(time.Minute)
	counter := func(name string, labels map[string]string, a, b time.Time) series.Series {
		typ := series.TypeCounter
		if !strings.HasSuffix(name, "_total") {
			typ = series.TypeGauge // OpenMetrics counters end in _total; PromQL does not care
		}
		return series.Series{Name: name, Type: typ, Labels: labels, Samples: series.GenerateCounter(a, b, 15*time.Second, series.Const(0.1))}
	}
	var ss []series.Series
	for i, span := range [][2]time.Time{{from, mid}, {mid.Add(time.Minute), to}} {
		pod := "web-7d9f-" + string(rune('a'+i))
		ss = append(ss,
			series.KubePodOwner(series.PodRef{Namespace: "shop", Pod: pod}, series.OwnerRef{Kind: "ReplicaSet", Name: "web-7d9f"}, ones(span[0], span[1])),
			series.HTTPRequestsTotal(map[string]string{"namespace": "shop", "pod": pod, "path": "/healthz"}, series.GenerateCounter(span[0], span[1], 15*time.Second, series.Const(0.1))),
		)
	}
	ss = append(ss,
		series.KubeReplicaSetOwner("shop", "web-7d9f", series.OwnerRef{Kind: "Deployment", Name: "web"}, ones(from, to)),
		// Scraped for the last half hour only.
		counter("istio_requests_total", map[string]string{"destination_workload_namespace": "mesh", "destination_workload": "reviews", "reporter": "destination"}, to.Add(-30*time.Minute), to),
		counter("nginx_ingress_controller_requests", map[string]string{"exported_namespace": "shop", "exported_service": "front", "path": "/"}, from, to),
	)
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{Series: ss})
	sources := []history.RequestSource{
		{Metric: "http_requests_total", PathLabels: []string{"path"}},
		{Metric: "istio_requests_total", NamespaceLabel: "destination_workload_namespace", WorkloadLabel: "destination_workload", Matchers: `reporter="destination"`},
		{Metric: "nginx_ingress_controller_requests", NamespaceLabel: "exported_namespace", ServiceLabel: "exported_service", PathLabels: []string{"path"}},
	}
	snap, err := history.Fetch(context.Background(), prom.API, at, history.Options{
		Params:  history.Params{Window: 2 * time.Hour, Step: time.Minute, RateWindow: 5 * time.Minute, Sources: sources},
		Timeout: 30 * time.Second, Concurrency: 2,
	})
	if err != nil || len(snap.Errors) > 0 {
		t.Fatal(err, snap.Errors)
	}
	cov := func(k history.Key) float64 {
		w := snap.Workloads[k]
		if w == nil || w.RequestCoverage == nil {
			t.Fatalf("no request coverage for %v: %+v", k, w)
		}
		return *w.RequestCoverage
	}
	// The window's last minute and the lookback's edges are slack.
	for _, c := range []struct {
		what      string
		got       float64
		want, tol float64
	}{
		{"web, two pods one after the other", cov(history.Key{Namespace: "shop", Kind: "Deployment", Workload: "web"}), 1, 0.05},
		{"reviews, the last half hour", cov(history.Key{Namespace: "mesh", Workload: "reviews"}), 0.25, 0.06},
		{"front Service", snap.ServiceRequestCoverage[[2]string{"shop", "front"}], 1, 0.05},
	} {
		if math.Abs(c.got-c.want) > c.tol {
			t.Errorf("%s: request coverage %.3f, want %.2f ± %.2f", c.what, c.got, c.want, c.tol)
		}
	}
}
