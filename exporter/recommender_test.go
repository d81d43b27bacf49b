package exporter_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/exporter/backtest"
	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/recommend"
	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/series"
	"github.com/upid-dev/upid/internal/testenv"
)

// recWorkload is a Deployment of the recommender test: its pods, its
// containers with their requests, and the usage each shows per 5-minute
// window (by the window's end).
type recWorkload struct {
	name       string
	pods       []string
	containers []recContainer
}

type recContainer struct {
	name           string
	cpuReq, memReq string
	memLim         string // the template's memory limit now; "" none
	// killedLimit is pod 0's memory limit in kube-state-metrics (bytes; 0:
	// no series): the pod its OOM kill hit, sized before the template's
	// limit was raised.
	killedLimit      float64
	cpu, mem         func(pod int, end time.Time) float64
	throttled        func(end time.Time) float64 // throttled periods per second; nil: no CPU limit
	oomAt, restartAt time.Time                   // zero: none; for pod 0 (oom) or pod 1 (restart)
	// ksmOOMAt is an OOM kill of pod 0 that only kube-state-metrics tells
	// of (a restart while the last termination reason is OOMKilled).
	ksmOOMAt time.Time
}

func wave(period, phase float64, at time.Time) float64 {
	return math.Sin(2*math.Pi*float64(at.Unix())/period + phase)
}

// recCluster builds the workloads; now anchors the OOM and the restart
// inside the window at mid-window times.
func recCluster(now time.Time) []recWorkload {
	anchor := now.Truncate(history.WindowStep)
	return []recWorkload{
		{name: "web", pods: []string{"web-a", "web-b"}, containers: []recContainer{{
			name: "app", cpuReq: "1", memReq: "1Gi",
			cpu: func(p int, e time.Time) float64 {
				return 0.25 + 0.1*wave(86400, float64(p), e) + 0.03*wave(3600, 2*float64(p), e)
			},
			mem: func(p int, e time.Time) float64 {
				v := 300e6 + 40e6*wave(43200, float64(p), e)
				if p == 0 && e.Equal(anchor.Add(-20*time.Hour)) {
					v = 700e6 // one spike
				}
				return v
			},
			// web-b's app restarts mid-window 6 hours ago: its CPU right
			// after is start-up, left out for StartupGrace.
			restartAt: anchor.Add(-6*time.Hour - 150*time.Second),
		}}},
		{name: "batch", pods: []string{"batch-a"}, containers: []recContainer{
			{
				name: "main", cpuReq: "500m", memReq: "512Mi", memLim: "2Gi", killedLimit: 600 << 20,
				cpu: func(_ int, e time.Time) float64 { return 0.4 + 0.05*wave(7200, 0, e) },
				mem: func(_ int, e time.Time) float64 { return 450e6 + 10e6*wave(86400, 1, e) },
				throttled: func(e time.Time) float64 {
					if wave(86400, 0, e) > 0.5 {
						return 3
					}
					return 0
				},
				oomAt: anchor.Add(-30*time.Hour - 140*time.Second),
			},
			{
				name: "log", cpuReq: "100m", memReq: "128Mi",
				cpu:      func(_ int, e time.Time) float64 { return 0.012 + 0.004*wave(1800, 0.3, e) },
				mem:      func(_ int, e time.Time) float64 { return 60e6 },
				ksmOOMAt: anchor.Add(-10*time.Hour - 100*time.Second),
			},
		}},
	}
}

const recNS = "rec"

// borgWorkload is one Deployment whose container replays the Borg 2019
// excerpt in exporter/backtest/testdata (instance 113-81, see ATTRIBUTION.md
// there): each 5-minute window gets the trace's mean CPU and peak memory,
// the trace's windows laid end to end back from now.
func borgWorkload(t *testing.T) recWorkload {
	t.Helper()
	tr, err := backtest.ReadBorgFile(filepath.Join("backtest", "testdata", "borg_113_81.csv"))
	if err != nil {
		t.Fatal(err)
	}
	at := func(e time.Time) backtest.Sample {
		n := len(tr.Samples)
		return tr.Samples[((int(e.Unix()/300)%n)+n)%n]
	}
	return recWorkload{name: "borg", pods: []string{"borg-a"}, containers: []recContainer{{
		name: "task", cpuReq: "2", memReq: "8Gi",
		cpu: func(_ int, e time.Time) float64 { return at(e).CPU },
		mem: func(_ int, e time.Time) float64 { return at(e).MemoryMax },
	}}}
}

// windowEnd is the end of the 5-minute window a scrape at t falls in;
// scrapes are off the window boundaries by construction.
func windowEnd(t time.Time) time.Time { return t.Truncate(history.WindowStep).Add(history.WindowStep) }

// recSeries renders what cAdvisor and kube-state-metrics would have
// scraped every 15 s (7 s past the minute, as a real scrape is never on the
// boundary) over [start, end].
func recSeries(ws []recWorkload, start, end time.Time) []series.Series {
	scrape := start.Truncate(time.Minute).Add(7 * time.Second)
	step := 15 * time.Second
	ones := series.Generate(start.Truncate(time.Minute), end, time.Minute, series.Const(1))
	counter := func(perSecond func(time.Time) float64, base float64) []series.Sample {
		s := series.GenerateCounter(scrape, end, step, perSecond)
		for i := range s {
			s[i].V += base
		}
		return s
	}
	var out []series.Series
	for _, w := range ws {
		rs := w.name + "-rs"
		out = append(out, series.KubeReplicaSetOwner(recNS, rs, series.OwnerRef{Kind: "Deployment", Name: w.name}, ones))
		for p, pod := range w.pods {
			out = append(out, series.KubePodOwner(series.PodRef{Namespace: recNS, Pod: pod, Node: "n1"}, series.OwnerRef{Kind: "ReplicaSet", Name: rs}, ones))
			for _, c := range w.containers {
				ref := series.PodRef{Namespace: recNS, Pod: pod, Container: c.name, Node: "n1"}
				// A large base keeps rate() from clipping its extrapolation
				// at a counter's zero, so each window's rate is exact.
				out = append(out,
					series.ContainerCPUUsageSeconds(ref, counter(func(t time.Time) float64 { return c.cpu(p, windowEnd(t)) }, 1e6)),
					series.ContainerMemoryWorkingSet(ref, series.Generate(scrape, end, step, func(t time.Time) float64 { return c.mem(p, windowEnd(t)) })))
				if c.throttled != nil {
					out = append(out,
						series.ContainerCPUCFSPeriods(ref, counter(series.Const(10), 1e6)),
						series.ContainerCPUCFSThrottledPeriods(ref, counter(func(t time.Time) float64 { return c.throttled(windowEnd(t)) }, 1e6)))
				}
				// The kubelet's /metrics/resource exports the same CPU and
				// memory series again; a Prometheus scraping both endpoints
				// holds each twice, and nothing may count them twice.
				out = append(out, series.WithLabels(out[len(out)-2-2*btoi(c.throttled != nil):], map[string]string{"metrics_path": "/metrics/resource"})...)
				if !c.ksmOOMAt.IsZero() && p == 0 {
					killed := func(t time.Time) float64 {
						if t.After(c.ksmOOMAt) {
							return 1
						}
						return 0
					}
					var reason []series.Sample
					for _, x := range series.Generate(scrape, end, step, killed) {
						if x.V == 1 {
							reason = append(reason, x) // absent until the first termination
						}
					}
					out = append(out,
						series.KubePodContainerStatusRestartsTotal(ref, series.Generate(scrape, end, step, killed)),
						series.KubePodContainerStatusLastTerminatedReason(ref, "OOMKilled", reason))
				}
				if c.killedLimit > 0 && p == 0 {
					out = append(out, series.KubePodContainerResourceLimits(ref, "memory", series.Generate(scrape, end, step, series.Const(c.killedLimit))))
				}
				if !c.oomAt.IsZero() && p == 0 {
					out = append(out, series.ContainerOOMEvents(ref, series.Generate(scrape, end, step, func(t time.Time) float64 {
						if t.After(c.oomAt) {
							return 1
						}
						return 0
					})))
				}
				started := start.Add(-time.Hour)
				out = append(out, series.Series{Name: "container_start_time_seconds", Type: series.TypeGauge, Help: "Start time of the container since unix epoch in seconds.",
					Labels: map[string]string{"namespace": recNS, "pod": pod, "container": c.name},
					Samples: series.Generate(scrape, end, step, func(t time.Time) float64 {
						if !c.restartAt.IsZero() && p == 1 && !t.Before(c.restartAt) {
							return float64(c.restartAt.Unix())
						}
						return float64(started.Unix())
					})})
			}
		}
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// offline computes, from the same functions, what recommend.State gives
// for each workload container over the windows the exporter reads.
func offline(ws []recWorkload, p recommend.Policy, now time.Time, window time.Duration) map[string]*recommend.State {
	out := map[string]*recommend.State{}
	var ranges []history.Range
	ranges = history.PlanWindows(time.Time{}, now, window, 24*time.Hour, history.Settle)
	for _, w := range ws {
		for _, c := range w.containers {
			s := recommend.NewState(p)
			for _, rg := range ranges {
				for e := rg.Start.Add(history.WindowStep); !e.After(rg.End); e = e.Add(history.WindowStep) {
					x := recommend.Sample{Time: e.Add(-history.WindowStep), Duration: history.WindowStep, CPU: math.Inf(-1), MemoryPeak: math.Inf(-1)}
					for i := range w.pods {
						x.CPU = math.Max(x.CPU, c.cpu(i, e))
						x.MemoryPeak = math.Max(x.MemoryPeak, c.mem(i, e))
					}
					if c.throttled != nil {
						x.Periods, x.ThrottledPeriods = 10*300, c.throttled(e)*300
					}
					x.OOMKill = (!c.oomAt.IsZero() && windowEnd(c.oomAt).Equal(e)) || (!c.ksmOOMAt.IsZero() && windowEnd(c.ksmOOMAt).Equal(e))
					if x.OOMKill {
						x.MemoryLimit = c.killedLimit
					}
					x.Start = !c.restartAt.IsZero() && windowEnd(c.restartAt).Equal(e)
					s.Observe(x)
				}
			}
			out[w.name+"/"+c.name] = s
		}
	}
	return out
}

func createRecCluster(t *testing.T, c kubernetes.Interface, ws []recWorkload) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: recNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	yes := true
	for _, w := range ws {
		var cs []corev1.Container
		for _, ct := range w.containers {
			res := corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse(ct.cpuReq), corev1.ResourceMemory: resource.MustParse(ct.memReq)}}
			if ct.memLim != "" {
				res.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(ct.memLim)}
			}
			cs = append(cs, corev1.Container{Name: ct.name, Image: "example/app:1", Resources: res})
		}
		labels := map[string]string{"app": w.name}
		n := int32(len(w.pods))
		tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: cs}}
		d, err := c.AppsV1().Deployments(recNS).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: w.name},
			Spec: appsv1.DeploymentSpec{Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rs, err := c.AppsV1().ReplicaSets(recNS).Create(ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: w.name + "-rs", OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &yes}}},
			Spec:       appsv1.ReplicaSetSpec{Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, pod := range w.pods {
			if _, err := c.CoreV1().Pods(recNS).Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: pod, Labels: labels, OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}}},
				Spec:       corev1.PodSpec{NodeName: "n1", Containers: cs},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// gatherGauges reads the exporter's metrics by name and
// workload/container.
func gatherGauges(t *testing.T, svc *exporter.Service) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(svc.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			key := fmt.Sprintf("%s %s/%s", mf.GetName(), l["workload"], l["container"])
			if s := l["stat"]; s != "" {
				key += " " + s
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	}
	return math.NaN()
}

// TestRecommenderMatchesOfflineState runs the exporter against a real
// Prometheus holding two days of 15-second scrapes of three containers
// (daily and hourly waves, a memory spike, a restart, an OOM kill,
// throttling) and requires the recommendations and usage it exports to
// equal those recommend.State computes offline from the same samples (one
// container replays an excerpt of the Borg 2019 trace):
// the window queries, their decoding and the per-workload maximum lose
// nothing on the way. A second cycle reads only the new windows.
func TestRecommenderMatchesOfflineState(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	window := 36 * time.Hour
	ws := append(recCluster(now), borgWorkload(t))
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	createRecCluster(t, kube.Clientset, ws)
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{Series: recSeries(ws, now.Add(-window-time.Hour), now.Add(-time.Second))})

	cfg := config.Default()
	cfg.Exporter.Window = model.Duration(window)
	cfg.Exporter.Recommend.Window = model.Duration(window)
	cfg.Prometheus.Timeout = model.Duration(30 * time.Second)
	stateFile := filepath.Join(t.TempDir(), "recommender.state")
	cfg.Exporter.Recommender.StateFile = stateFile
	clock := now
	svc, ctx := startService(t, exporter.Options{
		Exporter: cfg.Exporter, Prometheus: cfg.Prometheus, Kube: kube.Clientset, Querier: prom.API,
		Now: func() time.Time { return clock },
	})
	if err := svc.Cycle(ctx); err != nil {
		t.Fatal(err)
	}

	p := recommend.DefaultPolicy()
	p.Window = window
	want := offline(ws, p, now, window)
	// The exporter reads the state as of the end of the last window read.
	asOf := history.PlanWindows(time.Time{}, now, window, 24*time.Hour, history.Settle)
	now = asOf[len(asOf)-1].End
	got := gatherGauges(t, svc)
	replicas := map[string]float64{}
	for _, w := range svc.Last().Workloads {
		replicas[w.Name] = w.Replicas
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %.12g, offline %.12g", name, got, want)
		}
	}
	for _, w := range ws {
		for _, c := range w.containers {
			s := want[w.name+"/"+c.name]
			in := s.Inputs(now)
			if in.OOMKills == 0 && !(c.oomAt.IsZero() && c.ksmOOMAt.IsZero()) {
				t.Errorf("%s/%s: the offline state saw no OOM kill; the test is broken", w.name, c.name)
			}
			in.Current = recommend.Resources{CPURequest: quantity(c.cpuReq), MemoryRequest: quantity(c.memReq)}
			if c.memLim != "" {
				in.Current.MemoryLimit = quantity(c.memLim)
			}
			if c.killedLimit > 0 && in.OOMMemory != c.killedLimit {
				t.Errorf("%s/%s: the offline state's OOM memory is %g, want the killed pod's limit %g; the test is broken", w.name, c.name, in.OOMMemory, c.killedLimit)
			}
			in.Replicas = replicas[w.name]
			r := recommend.Recommend(in, p)
			if !r.OK || !r.CPU.OK || !r.Memory.OK {
				t.Fatalf("%s/%s: offline recommendation %+v is not complete; the test needs one", w.name, c.name, r)
			}
			id := w.name + "/" + c.name
			t.Logf("%s: cpu %.4f memory %.0f confidence %.3f (oom %d, throttled %.3f)", id, r.CPU.Request, r.Memory.Request, r.Confidence, in.OOMKills, in.ThrottledRatio)
			near(id+" cpu request", got["upid_container_recommended_cpu_request_cores "+id], r.CPU.Request)
			near(id+" memory request", got["upid_container_recommended_memory_request_bytes "+id], r.Memory.Request)
			near(id+" confidence", got["upid_container_recommendation_confidence "+id], r.Confidence)
			if r.Memory.Limit > 0 {
				near(id+" memory limit", got["upid_container_recommended_memory_limit_bytes "+id], r.Memory.Limit)
			}
			cpu, mem, _, _ := s.Usage(now)
			for stat, v := range map[string][2]float64{"p50": {cpu.P50, mem.P50}, "p95": {cpu.P95, mem.P95}, "max": {cpu.Max, mem.Max}} {
				near(id+" cpu "+stat, got["upid_container_cpu_usage_cores "+id+" "+stat], v[0])
				near(id+" memory "+stat, got["upid_container_memory_usage_bytes "+id+" "+stat], v[1])
			}
		}
	}
	// The spike, the OOM and the throttling reached the state: the
	// recommendation is not just a steady-state figure.
	if m := got["upid_container_memory_usage_bytes web/app max"]; m != 700e6 {
		t.Errorf("web/app memory max %v, want the 700 MB spike", m)
	}
	containers := 0
	for _, w := range ws {
		containers += len(w.containers)
	}
	first := got["upid_exporter_recommender_points_total /"]
	if first == 0 || got["upid_exporter_recommender_states /"] != float64(containers) {
		t.Errorf("after the backfill: %v points, %v states; want points and %d states", first, got["upid_exporter_recommender_states /"], containers)
	}

	// Ten minutes later only the two windows completed since are read:
	// six queries of at most 2 points per container.
	clock = now.Add(10 * time.Minute)
	queries := got["upid_exporter_recommender_queries_total /"]
	if err := svc.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	got = gatherGauges(t, svc)
	perRange := float64(len(history.WindowQueries([]string{recNS}, history.Range{})))
	if q := got["upid_exporter_recommender_queries_total /"] - queries; q != perRange {
		t.Errorf("second cycle sent %v window queries, want %v (one batch, one range)", q, perRange)
	}
	if pts := got["upid_exporter_recommender_points_total /"] - first; pts > float64(6*containers*2) {
		t.Errorf("second cycle read %v points, want at most 2 windows × %d containers × 6 queries", pts, containers)
	}

	// A restart with a checkpoint: the exporter saves its state at
	// shutdown, a new one loads it and reads only the windows since, and
	// then recommends what the exporter that kept running does.
	svc.Shutdown()
	clock = clock.Add(10 * time.Minute)
	restart := func(stateFile string) map[string]float64 {
		t.Helper()
		c := cfg.Exporter
		c.Recommender.StateFile = stateFile
		s, ctx := startService(t, exporter.Options{
			Exporter: c, Prometheus: cfg.Prometheus, Kube: kube.Clientset, Querier: prom.API,
			Now: func() time.Time { return clock },
		})
		if err := s.Cycle(ctx); err != nil {
			t.Fatal(err)
		}
		return gatherGauges(t, s)
	}
	resumed := restart(stateFile)
	if err := svc.Cycle(ctx); err != nil { // its informers' caches outlive Shutdown
		t.Fatal(err)
	}
	kept := gatherGauges(t, svc)
	if q := resumed["upid_exporter_recommender_queries_total /"]; q != perRange || resumed["upid_exporter_recommender_checkpoint_timestamp_seconds /"] <= 0 {
		t.Errorf("the restarted exporter sent %v window queries (want %v: only the windows since the checkpoint), checkpoint at %v",
			q, perRange, resumed["upid_exporter_recommender_checkpoint_timestamp_seconds /"])
	}
	compared := 0
	for k, v := range kept {
		if strings.HasPrefix(k, "upid_container_recommend") || strings.HasPrefix(k, "upid_container_cpu_usage") || strings.HasPrefix(k, "upid_container_memory_usage") {
			compared++
			if resumed[k] != v {
				t.Errorf("%s: %v after a restart from the checkpoint, %v in the exporter that kept running", k, resumed[k], v)
			}
		}
	}
	if compared < 10*containers {
		t.Errorf("compared %d series, want the recommendations and usage of %d containers", compared, containers)
	}

	// A checkpoint that cannot be read costs a full read, never the start.
	if err := os.WriteFile(stateFile, []byte("not a checkpoint"), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := restart(stateFile)
	if broken["upid_exporter_recommender_checkpoint_failures_total /"] != 1 || broken["upid_exporter_recommender_queries_total /"] != queries {
		t.Errorf("a corrupt checkpoint: %v failures, %v queries; want 1 and a full read (%v queries, as the first exporter's)", broken["upid_exporter_recommender_checkpoint_failures_total /"],
			broken["upid_exporter_recommender_queries_total /"], queries)
	}
}
