package demo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/inventory"
)

const week = 7 * 24 * time.Hour

// params are the exporter's defaults for a 7-day window.
var params = history.Params{
	Window: week, Step: 5 * time.Minute, RateWindow: 5 * time.Minute,
	Sources: []history.RequestSource{{Metric: "http_requests_total", PathLabels: []string{"handler", "path"}, UserAgentLabel: "user_agent"}},
}

// testNow is a fixed end of history, so that failures reproduce; it is not aligned to
// anything on purpose.
var testNow = time.Date(2026, 3, 17, 14, 23, 0, 0, time.UTC)

var (
	sharedOnce sync.Once
	shared     *Demo
	sharedSnap *history.Snapshot
	sharedErr  error
	sharedNew  time.Duration
)

// sharedDemo builds one demo and one snapshot for the tests that only read them.
func sharedDemo(t *testing.T) (*Demo, *history.Snapshot) {
	t.Helper()
	sharedOnce.Do(func() {
		start := time.Now()
		shared, sharedErr = New(testNow, week)
		sharedNew = time.Since(start)
		if sharedErr != nil {
			return
		}
		sharedSnap, sharedErr = history.Fetch(context.Background(), shared.Querier, shared.Now,
			history.Options{Params: params, Timeout: time.Minute, Concurrency: 2})
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared, sharedSnap
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Close()
	}
	os.Exit(code)
}

func TestNewIsQuickAndCloses(t *testing.T) {
	start := time.Now()
	d, err := New(time.Now(), week)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("New: %s for %d series, %d samples", took, d.Series, d.Samples)
	// `make demo` must start at once; the bound is loose because CI machines are shared.
	if took > 15*time.Second*slowdown {
		t.Errorf("New took %s", took)
	}
	if d.Series < 500 || d.Samples < 1e6 {
		t.Errorf("loaded %d series and %d samples, expected a week of a dozen workloads", d.Series, d.Samples)
	}
	if len(d.Cases) < 10 || len(d.Cases) > 14 {
		t.Errorf("%d cases, want 10 to 14", len(d.Cases))
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := New(time.Now(), 30*time.Second); err == nil {
		t.Error("New accepted a window shorter than the scrape interval")
	}
}

func TestEveryQueryRuns(t *testing.T) {
	d, snap := sharedDemo(t)
	if len(snap.Errors) > 0 {
		t.Fatalf("queries failed: %v", snap.Errors)
	}
	// Fetch drops empty results silently; every query must have matched something.
	for _, q := range history.Queries(params) {
		v, warnings, _, err := d.Querier.Query(context.Background(), q.Expr, d.Now)
		if err != nil {
			t.Errorf("%s: %v", q.Name, err)
			continue
		}
		if len(warnings) > 0 {
			t.Errorf("%s: warnings %v", q.Name, warnings)
		}
		if vec, ok := v.(model.Vector); !ok || len(vec) == 0 {
			t.Errorf("%s returned %v, want a non-empty vector", q.Name, v)
		}
	}
}

// TestWindowQueriesRun runs the recommender's window queries over the
// demo's last day, as the exporter's backfill does, and requires CPU and
// memory windows for every container of the demo's running workloads:
// the demo feeds recommendations through the same path as a cluster.
func TestWindowQueriesRun(t *testing.T) {
	d, _ := sharedDemo(t)
	nss := map[string]bool{}
	for _, c := range d.Cases {
		nss[c.Namespace] = true
	}
	var namespaces []string
	for ns := range nss {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	end := d.Now.Add(-history.Settle).Truncate(history.WindowStep)
	rg := history.Range{Start: end.Add(-24 * time.Hour), End: end}
	for _, q := range history.WindowQueries(namespaces, rg) {
		if _, warnings, _, err := d.Querier.Query(context.Background(), q.Expr, rg.End); err != nil || len(warnings) > 0 {
			t.Errorf("%s: %v %v", q.Name, err, warnings)
		}
	}
	got, st, err := history.FetchWindows(context.Background(), d.Querier, namespaces, rg, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", st)
	cpu, mem := 0, 0
	for k, ws := range got {
		if len(ws) > rg.Windows() {
			t.Errorf("%v: %d windows in a range of %d", k, len(ws), rg.Windows())
		}
		for _, w := range ws {
			if !math.IsNaN(w.CPU) {
				cpu++
			}
			if !math.IsNaN(w.MemoryPeak) {
				mem++
			}
		}
	}
	for _, c := range d.Cases {
		if c.Kind == "CronJob" {
			continue // runs 25 minutes in four hours
		}
		if c.Name == "gift-cards" {
			// No series at all: no windows, so no state and no
			// recommendation, never one from nothing.
			for k := range got {
				if k.Workload == c.Name {
					t.Errorf("gift-cards has windows %v, want none", got[k])
				}
			}
			continue
		}
		found := false
		for k, ws := range got {
			if k.Namespace == c.Namespace && k.Kind == c.Kind && k.Workload == c.Name && len(ws) >= rg.Windows()*9/10 {
				found = true
			}
		}
		if !found {
			t.Errorf("%s/%s/%s: no container with windows over most of the day", c.Namespace, c.Kind, c.Name)
		}
	}
	if cpu == 0 || mem == 0 {
		t.Errorf("%d CPU and %d memory windows, want both", cpu, mem)
	}
}

func key(c Case) history.Key {
	return history.Key{Namespace: c.Namespace, Kind: c.Kind, Workload: c.Name}
}

func findCase(t *testing.T, d *Demo, name string) Case {
	t.Helper()
	for _, c := range d.Cases {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no case %s", name)
	return Case{}
}

func near(got, want, rel float64) bool { return math.Abs(got-want) <= rel*math.Abs(want) }

func TestSnapshotMatchesHandComputation(t *testing.T) {
	d, snap := sharedDemo(t)
	window := week.Seconds()

	for _, c := range d.Cases {
		w := snap.Workloads[key(c)]
		switch {
		case c.Expect == ExpectUnknown:
			if w != nil {
				t.Errorf("%s has no series, but the snapshot has %+v", c.Name, w)
			}
		case w == nil:
			t.Errorf("%s/%s/%s missing from the snapshot", c.Namespace, c.Kind, c.Name)
		case w.CPUSeconds == nil || *w.CPUSeconds <= 0:
			t.Errorf("%s: CPU seconds %v", c.Name, w.CPUSeconds)
		}
	}
	if len(snap.Workloads) != len(d.Cases)-1 {
		t.Errorf("snapshot has %d workloads, want every case but the unscraped one", len(snap.Workloads))
	}

	// Probe-only: two replicas, /healthz every 10 s and /ready every 5 s, all window long.
	coupons := snap.Workloads[key(findCase(t, d, "legacy-coupons"))]
	counts := map[string]float64{}
	for _, r := range coupons.Requests {
		counts[r.Path] += r.Count
	}
	want := map[string]float64{"/healthz": 2 * window / 10, "/ready": 2 * window / 5}
	if len(counts) != len(want) {
		t.Errorf("legacy-coupons request paths %v, want only %v", counts, want)
	}
	for p, n := range want {
		// The scrapes are aligned with the window, so extrapolation is exact.
		if !near(counts[p], n, 1e-6) {
			t.Errorf("legacy-coupons %s: %v requests, want %v", p, counts[p], n)
		}
	}
	if coupons.Probes == nil || !near(*coupons.Probes, want["/healthz"]+want["/ready"], 1e-6) {
		t.Errorf("legacy-coupons probes %v, want %v", coupons.Probes, want["/healthz"]+want["/ready"])
	}
	if coupons.Replicas == nil || !near(*coupons.Replicas, 2, 1e-9) || coupons.Coverage == nil || *coupons.Coverage != 1 {
		t.Errorf("legacy-coupons replicas %v coverage %v, want 2 and 1", coupons.Replicas, coupons.Coverage)
	}

	// Over-provisioned: CPU seconds are the sum of the per-minute usage of the three pods
	// over the window, scaled by increase()'s extrapolation over the one minute before
	// the first sample in the range.
	tr, err := loadTraces()
	if err != nil {
		t.Fatal(err)
	}
	pl := makePlan(d.Now, d.Now.Add(-week-time.Hour), cluster(tr))
	var cpu, requested float64
	from := d.Now.Add(-week + step)
	for _, p := range pl.pods {
		if p.w.Name != "report-builder" {
			continue
		}
		c := p.w.containers[0]
		requested += c.cpuReq * window
		for t := from.Add(step); !t.After(d.Now); t = t.Add(step) {
			cpu += c.cpu(p, t) * step.Seconds()
		}
	}
	cpu *= week.Seconds() / d.Now.Sub(from).Seconds()
	reports := snap.Workloads[key(findCase(t, d, "report-builder"))]
	if reports.CPUSeconds == nil || !near(*reports.CPUSeconds, cpu, 1e-6) {
		t.Errorf("report-builder CPU seconds %v, want %v", reports.CPUSeconds, cpu)
	}
	if share := cpu / requested; share < 0.03 || share > 0.15 {
		t.Errorf("report-builder uses %.1f%% of its CPU request; the case needs it far below", 100*share)
	}
	// What its running pods request, as kube-state-metrics recorded it
	// (the exporter reads the same from the demo's Pod objects).
	rb := key(findCase(t, d, "report-builder"))
	v, _, _, err := d.Querier.Query(context.Background(), fmt.Sprintf(`sum by (resource) (
	  kube_pod_container_resource_requests{namespace=%q, pod=~"%s-.*"}
	  * on (namespace, pod) group_left () (max by (namespace, pod) (kube_pod_status_phase{phase=~"Pending|Running"}) == 1))`, rb.Namespace, rb.Workload), d.Now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, smp := range v.(model.Vector) {
		got[string(smp.Metric["resource"])] = float64(smp.Value)
	}
	if got["cpu"] != 6 || got["memory"] != 12*gi {
		t.Errorf("report-builder requests %v, want 6 cores and 12 GiB", got)
	}

	checkout := snap.Workloads[key(findCase(t, d, "checkout"))]
	if checkout.Replicas == nil || math.Abs(*checkout.Replicas-3) > 0.05 {
		t.Errorf("checkout replicas %v, want 3 (plus the rollout's overlap)", checkout.Replicas)
	}
	if checkout.CPUPodP95Cores == nil || *checkout.CPUPodP95Cores < 0.2 || *checkout.CPUPodP95Cores > 0.5 {
		t.Errorf("checkout per-pod p95 %v cores, want near its 0.5-core request", checkout.CPUPodP95Cores)
	}

	if rollup := snap.Workloads[key(findCase(t, d, "usage-rollup"))]; rollup != nil {
		// 42 runs in a week, 25 minutes each, between 0.25 and 2 cores.
		if s := *rollup.CPUSeconds; s < 42*25*60*0.25 || s > 42*25*60*2 {
			t.Errorf("usage-rollup CPU seconds %v", s)
		}
	}

	oc := snap.OpenCost
	if len(oc) != 1 {
		t.Fatalf("OpenCost prices %d nodes, want 1: %v", len(oc), oc)
	}
	for n, c := range oc {
		if n != pl.nodes[0].name || c.CPUCoreHour == nil || *c.CPUCoreHour != pl.nodes[0].cpuHourly ||
			c.MemoryGiBHour == nil || *c.MemoryGiBHour != pl.nodes[0].ramGiBHourly || c.GPUHour != nil {
			t.Errorf("OpenCost %s: %+v", n, c)
		}
	}
}

func inventorySnapshot(t *testing.T, d *Demo) inventory.Snapshot {
	t.Helper()
	inv := inventory.New(fake.NewClientset(d.Objects...), inventory.Options{NamespaceLabels: []string{"team"}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := inv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer inv.Shutdown()
	snap, err := inv.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestInventoryResolvesPodsToWorkloads(t *testing.T) {
	d, _ := sharedDemo(t)
	snap := inventorySnapshot(t, d)

	var got, want []string
	pods := map[string]int{}
	for _, w := range snap.Workloads {
		got = append(got, w.ID.String())
		pods[w.Name] = w.Pods
	}
	for _, c := range d.Cases {
		want = append(want, inventory.ID{Namespace: c.Namespace, Kind: c.Kind, Name: c.Name}.String())
	}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("workloads\n got %v\nwant %v", got, want)
	}
	// Every pod resolves to its top-level workload: ReplicaSet pods to Deployments (the
	// old ReplicaSet of checkout's rollout has none left), Job pods to the CronJob, which
	// keeps its last three Jobs. Their pods have Succeeded: not replicas of it.
	const finished = 3
	wantPods := map[string]int{"checkout": 3, "legacy-coupons": 2, "usage-rollup": 0, "orders-db": 2, "log-shipper": 3, "gift-cards": 2}
	for name, n := range wantPods {
		if pods[name] != n {
			t.Errorf("%s has %d pods, want %d", name, pods[name], n)
		}
	}
	total := 0
	for _, n := range pods {
		total += n
	}
	if total+finished != snap.Pods {
		t.Errorf("%d of %d pods resolve to a workload, and %d have finished", total, snap.Pods, finished)
	}

	byName := map[string]inventory.Workload{}
	for _, w := range snap.Workloads {
		byName[w.Name] = w
	}
	if byName["checkout"].HPA == "" || byName["checkout"].Replicas != 3 {
		t.Errorf("checkout: HPA %q replicas %d", byName["checkout"].HPA, byName["checkout"].Replicas)
	}
	var probes []string
	for _, p := range byName["legacy-coupons"].Probes {
		probes = append(probes, p.Type+" "+p.Handler+" "+p.Path+" "+p.Period.String())
	}
	if want := []string{"Liveness http /healthz 10s", "Readiness http /ready 5s"}; !slices.Equal(probes, want) {
		t.Errorf("legacy-coupons probes %v, want %v", probes, want)
	}
	if mp := byName["campaign-archive"].MetricsPaths; !slices.Equal(mp, []string{"/metrics"}) {
		t.Errorf("campaign-archive metrics paths %v", mp)
	}
	for _, ns := range snap.Namespaces {
		if ns.Labels["team"] == "" {
			t.Errorf("namespace %s has no team", ns.Name)
		}
	}
	if len(snap.Nodes) != 3 {
		t.Fatalf("%d nodes", len(snap.Nodes))
	}
	for _, n := range snap.Nodes {
		for _, l := range []string{"node.kubernetes.io/instance-type", "topology.kubernetes.io/region", "karpenter.sh/capacity-type"} {
			if n.Labels[l] == "" {
				t.Errorf("node %s has no %s", n.Name, l)
			}
		}
		if n.Status.Capacity.Cpu().IsZero() {
			t.Errorf("node %s has no CPU capacity", n.Name)
		}
	}
}

// TestObjectsAgreeWithSeries checks the joins between the cluster and its metrics: the pods
// kube-state-metrics reports now are the pods the API lists, with the same UIDs and nodes.
func TestObjectsAgreeWithSeries(t *testing.T) {
	d, _ := sharedDemo(t)
	v, _, _, err := d.Querier.Query(context.Background(), `kube_pod_container_resource_requests{resource="cpu"}`, d.Now)
	if err != nil {
		t.Fatal(err)
	}
	type placed struct{ uid, node string }
	fromSeries := map[string]placed{}
	for _, s := range v.(model.Vector) {
		fromSeries[string(s.Metric["namespace"])+"/"+string(s.Metric["pod"])] = placed{string(s.Metric["uid"]), string(s.Metric["node"])}
	}
	fromObjects := map[string]placed{}
	for _, o := range d.Objects {
		if p, ok := o.(*corev1.Pod); ok && p.Namespace != "payments" {
			fromObjects[p.Namespace+"/"+p.Name] = placed{string(p.UID), p.Spec.NodeName}
		}
	}
	if !maps.Equal(fromSeries, fromObjects) {
		t.Errorf("pods in kube-state-metrics and in the API differ\nseries:  %v\nobjects: %v", fromSeries, fromObjects)
	}
}

func TestQuerierBehavesLikeTheHTTPAPI(t *testing.T) {
	d, _ := sharedDemo(t)
	q := d.Querier
	ctx := context.Background()

	v, _, _, err := q.Query(ctx, "1 + 1", d.Now)
	if s, ok := v.(*model.Scalar); err != nil || !ok || s.Value != 2 {
		t.Errorf("scalar: %v %v", v, err)
	}
	v, _, _, err = q.Query(ctx, `kube_pod_owner{pod="orders-db-0"}[5m]`, d.Now)
	if m, ok := v.(model.Matrix); err != nil || !ok || len(m) != 1 || len(m[0].Values) != 5 {
		t.Errorf("matrix: %v %v", v, err)
	}
	// Evaluation after the end of the history is pinned to its end.
	v, _, _, err = q.Query(ctx, "time()", d.Now.Add(time.Hour))
	if s, ok := v.(*model.Scalar); err != nil || !ok || !s.Timestamp.Time().Equal(d.Now) {
		t.Errorf("time() after the end: %v %v", v, err)
	}

	var apiErr *v1.Error
	if _, _, _, err = q.Query(ctx, "sum(", d.Now); !errors.As(err, &apiErr) || apiErr.Type != v1.ErrBadData {
		t.Errorf("parse error: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, _, err = q.Query(canceled, "up", d.Now); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
	heavy := `count(quantile_over_time(0.5, rate(container_cpu_usage_seconds_total[5m])[7d:1m]))`
	if _, _, _, err = q.Query(ctx, heavy, d.Now, v1.WithTimeout(time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WithTimeout(1ms) on a heavy query: %v", err)
	}
	timeout, lookback := readOptions([]v1.Option{v1.WithTimeout(3 * time.Second), v1.WithLookbackDelta(time.Minute)})
	if timeout != 3*time.Second || lookback != time.Minute {
		t.Errorf("readOptions = %s, %s", timeout, lookback)
	}
	v, _, _, err = q.Query(ctx, `count(kube_pod_owner{namespace="analytics"})`, d.Now.Add(-time.Minute-30*time.Second), v1.WithLookbackDelta(time.Second))
	if vec, ok := v.(model.Vector); err != nil || !ok || len(vec) != 0 {
		t.Errorf("a 1s lookback between scrapes should find nothing: %v %v", v, err)
	}
}

// BenchmarkNew reports what the demo costs at startup: the time to build a week of
// history and the heap it keeps live while serving.
func BenchmarkNew(b *testing.B) {
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for b.Loop() {
		d, err := New(testNow, week)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "live-MiB")
		runtime.KeepAlive(d)
		d.Close()
		b.StartTimer()
	}
}
