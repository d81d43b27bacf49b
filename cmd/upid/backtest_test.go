package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/backtest"
	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/series"
	"github.com/upid-dev/upid/internal/testenv"
)

// gridTrace is the Borg excerpt as Prometheus would hold it: only the
// windows on the 5-minute grid (Prometheus's windows always are), its mean
// CPU as the CPU peak too (a window has only its rate), and a start after
// every gap (as ReadPrometheus marks them).
func gridTrace(t *testing.T, name string) backtest.Trace {
	t.Helper()
	tr, err := backtest.ReadBorgFile(filepath.Join("..", "..", "exporter", "backtest", "testdata", "borg_113_81.csv"))
	if err != nil {
		t.Fatal(err)
	}
	out := backtest.Trace{Name: name, Source: backtest.SourcePrometheus, CoresPerUnit: 1, BytesPerUnit: 1}
	var prevEnd time.Time
	for _, s := range tr.Samples {
		if s.Time.Unix()%300 != 0 || s.Duration != 5*time.Minute {
			continue
		}
		s.CPUMax = s.CPU
		s.Start = s.Start || (!prevEnd.IsZero() && !prevEnd.Equal(s.Time))
		if out.Samples == nil {
			s.Start = tr.Samples[0].Start
		}
		if s.Memory < s.MemoryMax/20 {
			t.Fatalf("%v: mean %v is too far below the peak %v to render", s.Time, s.Memory, s.MemoryMax)
		}
		out.Samples = append(out.Samples, s)
		prevEnd = s.Time.Add(s.Duration)
	}
	if len(out.Samples) < 900 {
		t.Fatalf("only %d grid windows", len(out.Samples))
	}
	return out
}

// renderTrace writes what cAdvisor and kube-state-metrics would have scraped
// every 15 s (7 s past each minute) for a trace's windows: a CPU counter
// whose rate over each window is its mean, a working set whose first scrape
// in the window is the peak and whose mean is the mean, the requests, a
// memory limit equal to the request (what the replay of a CSV trace takes
// it to be), the owners, and a container start time that moves in the
// windows marked as starts.
func renderTrace(tr backtest.Trace, ns, workload string) []series.Series {
	first := tr.Samples[0].Time
	last := tr.Samples[len(tr.Samples)-1].Time.Add(5 * time.Minute)
	scrape := first.Add(7 * time.Second)
	step := 15 * time.Second
	at := map[time.Time]backtest.Sample{} // by window start
	for _, s := range tr.Samples {
		at[s.Time] = s
	}
	window := func(t time.Time) (backtest.Sample, bool) {
		s, ok := at[t.Truncate(5*time.Minute)]
		return s, ok
	}
	inWindows := func(ss []series.Sample) []series.Sample {
		var out []series.Sample
		for _, s := range ss {
			if _, ok := window(s.T); ok {
				out = append(out, s)
			}
		}
		return out
	}
	cpu := series.GenerateCounter(scrape, last, step, func(t time.Time) float64 {
		s, _ := window(t)
		return s.CPU
	})
	for i := range cpu {
		cpu[i].V += 1e6 // keeps rate() from clipping its extrapolation at zero
	}
	mem := series.Generate(scrape, last, step, func(t time.Time) float64 {
		s, _ := window(t)
		if t.Sub(t.Truncate(5*time.Minute)) < step {
			return s.MemoryMax
		}
		return (20*s.Memory - s.MemoryMax) / 19
	})
	never := first.Add(-time.Hour)
	started := never
	startTimes := series.Generate(scrape, last, step, func(t time.Time) float64 {
		if s, ok := window(t); ok && s.Start && started.Before(s.Time) {
			started = s.Time.Add(5 * time.Second)
		}
		return float64(started.Unix())
	})
	request := func(cpu bool) []series.Sample {
		return inWindows(series.Generate(scrape, last, step, func(t time.Time) float64 {
			s, _ := window(t)
			if cpu {
				return s.CPURequest
			}
			return s.MemoryRequest
		}))
	}
	ones := series.Generate(first.Truncate(time.Minute), last, time.Minute, series.Const(1))
	pod, rs := workload+"-7d4f8b9c6-x2x9k", workload+"-7d4f8b9c6"
	ref := series.PodRef{Namespace: ns, Pod: pod, Container: "task", Node: "n1"}
	return []series.Series{
		series.KubeReplicaSetOwner(ns, rs, series.OwnerRef{Kind: "Deployment", Name: workload}, ones),
		series.KubePodOwner(ref, series.OwnerRef{Kind: "ReplicaSet", Name: rs}, ones),
		series.ContainerCPUUsageSeconds(ref, inWindows(cpu)),
		series.ContainerMemoryWorkingSet(ref, inWindows(mem)),
		series.KubePodContainerResourceRequests(ref, "cpu", request(true)),
		series.KubePodContainerResourceRequests(ref, "memory", request(false)),
		series.KubePodContainerResourceLimits(ref, "memory", request(false)),
		{Name: "container_start_time_seconds", Type: series.TypeGauge, Help: "Start time of the container since unix epoch in seconds.",
			Labels: map[string]string{"namespace": ns, "pod": pod, "container": "task"}, Samples: inWindows(startTimes)},
	}
}

// TestBacktestFromPrometheus: `upid backtest` on a real Prometheus holding
// a Borg excerpt as cAdvisor and kube-state-metrics series scores exactly
// what the replay scores on the excerpt itself, batch by batch, a workload
// deleted days before the end included, and -n keeps to one namespace.
func TestBacktestFromPrometheus(t *testing.T) {
	a, b := gridTrace(t, "shop/Deployment/borg-a/task"), gridTrace(t, "zoo/Deployment/borg-b/task")
	end := a.Samples[len(a.Samples)-1].Time.Add(5 * time.Minute)
	span := end.Sub(a.Samples[0].Time)
	// gone's workload was deleted a day and a half before the end: no
	// container of its namespace is left at the end of the history. It
	// started six hours after the others, and is read first (namespaces
	// are batched in order): the history found spans every batch.
	gone := gridTrace(t, "gone/Deployment/borg-c/task")
	var kept []backtest.Sample
	for _, s := range gone.Samples {
		if !s.Time.Before(a.Samples[0].Time.Add(6*time.Hour)) && s.Time.Before(end.Add(-36*time.Hour)) {
			kept = append(kept, s)
		}
	}
	gone.Samples = kept
	gone.Samples[0].Start = true
	// zoo, read last, ends ten minutes before the others.
	for i, s := range b.Samples {
		if !s.Time.Before(end.Add(-10 * time.Minute)) {
			b.Samples = b.Samples[:i]
			break
		}
	}
	all := slices.Concat(renderTrace(a, "shop", "borg-a"), renderTrace(b, "zoo", "borg-b"), renderTrace(gone, "gone", "borg-c"))
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{Series: all})
	want, err := backtest.Run([]backtest.Trace{gone, a, b}, backtest.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	backtestJSON := func(extra ...string) (report struct {
		PrometheusLoad history.WindowStats `json:"prometheus_load"`
		History        struct {
			Asked      string
			Start, End time.Time
		}
		Rightsizing backtest.Report
		Forecasting []struct{ Source, Resource string }
	}) {
		t.Helper()
		args := append([]string{"backtest", "--prometheus.url", prom.URL, "--end", end.Format(time.RFC3339),
			"--history", span.String(), "--batch-containers=1", "-o", "json"}, extra...)
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != exitOK || stderr.Len() != 0 {
			t.Fatalf("upid %s: %d\n%s", strings.Join(args, " "), code, stderr.String())
		}
		if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
			t.Fatal(err)
		}
		return report
	}

	got := backtestJSON()
	if len(got.Rightsizing.Traces) != 3 {
		t.Fatalf("%d traces from Prometheus, want 3", len(got.Rightsizing.Traces))
	}
	if h := got.History; h.Asked != model.Duration(span).String() || !h.Start.Equal(a.Samples[0].Time) || !h.End.Equal(end) {
		t.Errorf("history %+v, want %s asked and found from %v to %v", h, model.Duration(span), a.Samples[0].Time, end)
	}
	// One query a day lists the namespaces; then each batch (one container
	// each here) reads each day of history with every replay query.
	ranges := history.PlanWindows(time.Time{}, end.Add(history.Settle), span, 24*time.Hour, history.Settle)
	perRange := len(history.ReplayQueries([]string{"shop"}, ranges[0]))
	if l := got.PrometheusLoad; l.Queries != len(ranges)+3*len(ranges)*perRange || l.Series == 0 || l.Points == 0 {
		t.Errorf("load %+v, want %d queries (%d days × %d queries × 3 batches, and a listing a day)", l, len(ranges)+3*len(ranges)*perRange, len(ranges), perRange)
	}
	for i, tr := range got.Rightsizing.Traces {
		sameReplay(t, tr, want.Traces[i])
	}
	// One namespace per trace here: each namespace's pool is its trace.
	if ns := got.Rightsizing.Namespaces; len(ns) != 3 || ns[0].Namespace != "gone" || ns[1].Namespace != "shop" || ns[2].Namespace != "zoo" ||
		ns[1].Traces != 1 || !reflect.DeepEqual(ns[1].Scores, got.Rightsizing.Traces[1].Scores) {
		t.Errorf("namespaces %+v, want gone, shop and zoo pooling their one trace each", ns)
	}
	var resources []string
	for _, f := range got.Forecasting {
		if f.Source == backtest.SourcePrometheus {
			resources = append(resources, f.Resource)
		}
	}
	if strings.Join(resources, ",") != "cpu,memory" {
		t.Errorf("forecasting for %v, want cpu and memory", resources)
	}

	// An override replays its workloads with its policy, as the exporter
	// would size them, and the others with exporter.recommend.
	cfg := filepath.Join(t.TempDir(), "upid.yaml")
	if err := os.WriteFile(cfg, []byte("exporter:\n  recommend:\n    overrides:\n    - namespace: zoo\n      cpu_percentile: 0.95\n      window: 2d\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	zooPolicy := backtest.DefaultOptions().Policy
	zooPolicy.CPUPercentile, zooPolicy.Window = 0.95, 48*time.Hour
	bz := b
	bz.Policy = &zooPolicy
	wantZoo, err := backtest.Run([]backtest.Trace{bz}, backtest.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	over := backtestJSON("--config", cfg)
	if tr := over.Rightsizing.Traces; len(tr) != 3 || tr[1].PolicyFrom != nil || !reflect.DeepEqual(tr[1].Scores, got.Rightsizing.Traces[1].Scores) {
		t.Errorf("shop with an override for zoo: %+v, want its scores unchanged", tr[1])
	} else if !slices.Equal(tr[2].PolicyFrom, []string{"exporter.recommend.overrides[0]"}) {
		t.Errorf("zoo's policy from %q, want the override", tr[2].PolicyFrom)
	} else {
		sameReplay(t, tr[2], wantZoo.Traces[0])
		if u, d := tr[2].Scores[1], got.Rightsizing.Traces[2].Scores[1]; u.Recommender != backtest.NameUPID || *u.CPUSlack <= *d.CPUSlack {
			t.Errorf("zoo's UPID CPU slack %v at p0.95, want more than %v at p0.9", *u.CPUSlack, *d.CPUSlack)
		}
	}

	one := backtestJSON("-n", "zoo")
	if len(one.Rightsizing.Traces) != 1 || one.Rightsizing.Traces[0].Name != b.Name {
		t.Errorf("-n zoo replayed %+v", one.Rightsizing.Traces)
	}

	// More history asked than Prometheus holds: the span found is in the
	// header, and a warning says so.
	var stdout, stderr bytes.Buffer
	// Ten minutes more is a window or two without a rate at the edges,
	// not missing history: no warning.
	if code := run([]string{"backtest", "--prometheus.url", prom.URL, "--end", end.Format(time.RFC3339), "--history", model.Duration(span + 10*time.Minute).String()}, &stdout, &stderr); code != exitOK || stderr.Len() != 0 {
		t.Errorf("--history 10 minutes more than held: %d %q, want no warning", code, stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	longer := model.Duration(span + 48*time.Hour)
	if code := run([]string{"backtest", "--prometheus.url", prom.URL, "--end", end.Format(time.RFC3339), "--history", longer.String()}, &stdout, &stderr); code != exitOK {
		t.Fatalf("--history %s: %d %s", longer, code, stderr.String())
	}
	found := fmt.Sprintf("%s to %s", a.Samples[0].Time.Format(time.RFC3339), end.Format(time.RFC3339))
	if want := fmt.Sprintf("upid backtest: warning: --prometheus.url %s holds %s of the %s of history asked (%s); the scores cover that\n", prom.URL, model.Duration(span), longer, found); stderr.String() != want {
		t.Errorf("--history %s: stderr %q, want %q", longer, stderr.String(), want)
	}
	if want := fmt.Sprintf("# History found: %s, %s of the %s asked\n", found, model.Duration(span), longer); !strings.Contains(stdout.String(), want) {
		t.Errorf("--history %s: no header %q in\n%s", longer, want, stdout.String())
	}

	// Nothing to replay is an error that says what is missing.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--end", "2018-01-01T00:00:00Z"}, "no container_cpu_usage_seconds_total series"},
		{[]string{"--end", end.Format(time.RFC3339), "-n", "nosuch"}, "no workload containers with usage in 2w of history"},
		// A selector that matches nothing is named.
		{[]string{"--end", end.Format(time.RFC3339), "--prometheus.selector", `{cluster="other"}`},
			`no container_cpu_usage_seconds_total series with a container label in the history (--prometheus.url ` + prom.URL + ` matching prometheus.selector {cluster="other"})`},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"backtest", "--prometheus.url", prom.URL}, c.args...), &stdout, &stderr); code != exitFailure || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: %d %q, want a failure saying %q", c.args, code, stderr.String(), c.want)
		}
	}
}

// sameReplay checks that a trace read back from Prometheus scored what the
// replay of the excerpt itself scored.
func sameReplay(t *testing.T, got, want backtest.TraceResult) {
	t.Helper()
	if got.Name != want.Name || got.Source != backtest.SourcePrometheus || len(got.Scores) != len(want.Scores) {
		t.Fatalf("trace %s (%s) with %d scores, want %s with %d", got.Name, got.Source, len(got.Scores), want.Name, len(want.Scores))
	}
	for j, s := range got.Scores {
		ws := want.Scores[j]
		near := func(what string, g, x float64) {
			if math.Abs(g-x) > 1e-6*math.Max(1, math.Abs(x)) {
				t.Errorf("%s %s: %s = %v, the excerpt's replay %v", got.Name, s.Recommender, what, g, x)
			}
		}
		if s.Recommender != ws.Recommender || s.Samples != ws.Samples || s.Changes != ws.Changes {
			t.Errorf("%s: %s with %d samples and %d changes, want %s with %d and %d", got.Name, s.Recommender, s.Samples, s.Changes, ws.Recommender, ws.Samples, ws.Changes)
		}
		near("slack", *s.Slack, *ws.Slack)
		near("cpu slack", *s.CPUSlack, *ws.CPUSlack)
		near("cpu over request", *s.CPUOverCoreSeconds, *ws.CPUOverCoreSeconds)
		near("memory slack", *s.MemorySlack, *ws.MemorySlack)
		if *s.MemoryOverRequest != *ws.MemoryOverRequest || *s.MemoryOverLimit != *ws.MemoryOverLimit {
			t.Errorf("%s %s: %d and %d samples over the memory request and limit, want %d and %d", got.Name, s.Recommender,
				*s.MemoryOverRequest, *s.MemoryOverLimit, *ws.MemoryOverRequest, *ws.MemoryOverLimit)
		}
		// The hand-set of a trace from Prometheus shows the kills the
		// cluster recorded: none here.
		if (s.OOMKillsObserved != nil) != (j == 0) || (j == 0 && *s.OOMKillsObserved != 0) {
			t.Errorf("%s %s: recorded kills %v, want 0 for the hand-set alone", got.Name, s.Recommender, s.OOMKillsObserved)
		}
	}
}

// TestBacktestDemo: --demo replays the embedded cluster's history through
// the same window queries, with the requests it runs as the hand-set.
func TestBacktestDemo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"backtest", "--demo", "--history", "3d", "-o", "json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("backtest --demo: %d\n%s", code, stderr.String())
	}
	var out struct {
		Rightsizing backtest.Report
		Forecasting []struct{ Source, Resource string }
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Rightsizing.Groups) != 1 || out.Rightsizing.Groups[0].Source != backtest.SourcePrometheus || out.Rightsizing.Groups[0].Traces < 5 {
		t.Fatalf("groups %+v", out.Rightsizing.Groups)
	}
	for _, s := range out.Rightsizing.Groups[0].Scores {
		if s.Samples < 1000 || s.CPUCoreHours == nil || *s.CPUCoreHours <= 0 || s.MemorySlack == nil {
			t.Errorf("%s: %d samples, %v core-hours requested, memory slack %v", s.Recommender, s.Samples, s.CPUCoreHours, s.MemorySlack)
		}
	}
	if len(out.Forecasting) != 2 {
		t.Errorf("forecasting %+v, want cpu and memory", out.Forecasting)
	}
}

// TestBacktestUsesConfiguredPolicy: UPID replays with exporter.recommend,
// so a policy can be tried on history before it is rolled out.
func TestBacktestUsesConfiguredPolicy(t *testing.T) {
	traces := backtestData(t)
	upidCPUSlack := func(args ...string) float64 {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"backtest", "--data", traces, "-o", "json"}, args...), &stdout, &stderr); code != exitOK {
			t.Fatalf("backtest %v: %d\n%s", args, code, stderr.String())
		}
		var out struct{ Rightsizing backtest.Report }
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		for _, g := range out.Rightsizing.Groups {
			for _, s := range g.Scores {
				if g.Source == "borg" && s.Recommender == backtest.NameUPID {
					return *s.CPUSlack
				}
			}
		}
		t.Fatal("no UPID score on the Borg traces")
		return 0
	}
	loaded, err := backtest.LoadDir(traces)
	if err != nil {
		t.Fatal(err)
	}
	want := func(percentile float64) float64 {
		opts := backtest.DefaultOptions()
		opts.Policy.CPUPercentile = percentile
		rep, err := backtest.Run(loaded, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range rep.Groups {
			for _, s := range g.Scores {
				if g.Source == "borg" && s.Recommender == backtest.NameUPID {
					return *s.CPUSlack
				}
			}
		}
		return math.NaN()
	}
	def, p95 := upidCPUSlack(), upidCPUSlack("--exporter.recommend.cpu-percentile=0.95")
	if def != want(0.9) || p95 != want(0.95) || p95 <= def {
		t.Errorf("UPID CPU slack %v by default and %v at p0.95, want %v and %v (more at p0.95)", def, p95, want(0.9), want(0.95))
	}
}

// TestBacktestClusterPolicy: with --cluster-policy the replay from a real
// Prometheus applies the upid.io/ annotations a real kube-apiserver holds,
// in the exporter's precedence (a namespace annotation over an override),
// warns about a bad value naming the object and keeps its other knobs, and
// scores what the excerpt's own replay scores with the same policies.
func TestBacktestClusterPolicy(t *testing.T) {
	a, b := gridTrace(t, "shop/Deployment/borg-a/task"), gridTrace(t, "zoo/Deployment/borg-b/task")
	end := a.Samples[len(a.Samples)-1].Time.Add(5 * time.Minute)
	span := end.Sub(a.Samples[0].Time)
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{Series: append(renderTrace(a, "shop", "borg-a"), renderTrace(b, "zoo", "borg-b")...)})
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	ctx := context.Background()
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "zoo", Annotations: map[string]string{"upid.io/cpu-percentile": "0.95"}}},
	} {
		if _, err := kube.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deploy := func(ns, name string, annotations map[string]string) {
		labels := map[string]string{"app": name}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "task", Image: "example/task:1"}}}},
			},
		}
		if _, err := kube.Clientset.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deploy("shop", "borg-a", map[string]string{"upid.io/recommend-window": "2d", "upid.io/cpu-margin": "lots"})
	deploy("zoo", "borg-b", nil)
	cfg := filepath.Join(t.TempDir(), "upid.yaml")
	if err := os.WriteFile(cfg, []byte("exporter:\n  recommend:\n    overrides:\n    - namespace: zoo\n      cpu_percentile: 0.8\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	args := []string{"backtest", "--prometheus.url", prom.URL, "--end", end.Format(time.RFC3339), "--history", span.String(),
		"--config", cfg, "--kubeconfig", kube.KubeconfigPath, "--cluster-policy", "-o", "json"}
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != exitOK {
		t.Fatalf("upid %s: %d\n%s", strings.Join(args, " "), code, stderr.String())
	}
	// The one warning, and nothing else: reading the cluster is quiet.
	if want := `upid backtest: warning: shop/Deployment/borg-a: workload annotation upid.io/cpu-margin="lots" ignored: `; !strings.HasPrefix(stderr.String(), want) || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr %q, want only a warning %q", stderr.String(), want)
	}
	var got struct{ Rightsizing backtest.Report }
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	pa, pb := backtest.DefaultOptions().Policy, backtest.DefaultOptions().Policy
	pa.Window, pb.CPUPercentile = 48*time.Hour, 0.95
	a.Policy, b.Policy = &pa, &pb
	want, err := backtest.Run([]backtest.Trace{a, b}, backtest.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	from := [][]string{{"workload_annotation upid.io/recommend-window"}, {"namespace_annotation upid.io/cpu-percentile"}}
	if len(got.Rightsizing.Traces) != 2 {
		t.Fatalf("%d traces, want 2", len(got.Rightsizing.Traces))
	}
	for i, tr := range got.Rightsizing.Traces {
		if !slices.Equal(tr.PolicyFrom, from[i]) {
			t.Errorf("%s: policy from %q, want %q", tr.Name, tr.PolicyFrom, from[i])
		}
		sameReplay(t, tr, want.Traces[i])
	}

	// Without a cluster to read, or with CSV traces, it says which flag.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--prometheus.url", prom.URL, "--kubeconfig", filepath.Join(t.TempDir(), "none"), "--cluster-policy"}, exitUsage, "none"},
		{[]string{"--data", t.TempDir(), "--cluster-policy"}, exitUsage, "--cluster-policy applies to history from Prometheus"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"backtest"}, c.args...), &stdout, &stderr); code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: %d %q, want %d saying %q", c.args, code, stderr.String(), c.code, c.want)
		}
	}
}

// TestBacktestNothingToScore: a history that cannot be scored is refused
// naming --history before Prometheus is read, one that could but was not
// (every trace shorter than a decision period) fails saying so, and a
// forecasting group without a forecast scored says why instead of a table
// of zeros.
func TestBacktestNothingToScore(t *testing.T) {
	short := t.TempDir()
	b, err := os.ReadFile(filepath.Join("..", "..", "exporter", "backtest", "testdata", "borg_113_81.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	if err := os.WriteFile(filepath.Join(short, "borg.csv"), []byte(strings.Join(lines[:101], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--demo", "--history", "1h"}, exitUsage, "upid backtest: --history: 1h is not longer than the decision period (1d)"},
		{[]string{"--demo", "--history", "1d"}, exitUsage, "upid backtest: --history: 1d is not longer than the decision period (1d)"},
		{[]string{"--data", short}, exitFailure, "upid backtest: nothing to score: no trace in " + short + " is longer than the decision period (1d)"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"backtest"}, c.args...), &stdout, &stderr); code != c.code || !strings.HasPrefix(stderr.String(), c.want) || stdout.Len() != 0 {
			t.Errorf("%v: %d %q, stdout %q; want %d saying %q", c.args, code, stderr.String(), stdout.String(), c.code, c.want)
		}
	}

	// Two days score a day of rightsizing, and no forecast: each needs two
	// days of training and a held-out day.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"backtest", "--demo", "--history", "2d"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("--history 2d: %d %s", code, stderr.String())
	}
	const why = "no forecast scored: no series spans 2 days of training and 1 held-out day(s)"
	if out := stdout.String(); strings.Count(out, "# Forecasting: prometheus cpu (first held-out day after 2 days): "+why+"\n") != 1 ||
		strings.Contains(out, "MASE") || !strings.Contains(out, "# Rightsizing") {
		t.Errorf("--history 2d: rightsizing and a line for each forecasting group saying why, got\n%s", out)
	}
	stdout.Reset()
	if code := run([]string{"backtest", "--demo", "--history", "2d", "-o", "json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("--history 2d -o json: %d %s", code, stderr.String())
	}
	var got struct {
		Forecasting []map[string]any
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, f := range got.Forecasting {
		if _, report := f["report"]; report || f["not_scored"] != why {
			t.Errorf("forecasting %v, want no report and not_scored %q", f, why)
		}
	}
	if len(got.Forecasting) != 2 {
		t.Errorf("forecasting %v, want cpu and memory", got.Forecasting)
	}
}

// TestBacktestFlagErrors: a flag out of range is a usage error (exit 2)
// naming it, before anything is read.
func TestBacktestFlagErrors(t *testing.T) {
	pinDemo(t) // clock() is goldenNow
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--end", "2026-11-02T14:06:00Z"}, "upid backtest: --end: 2026-11-02T14:06:00Z is later than now (2026-11-02T14:00:00Z)\n"},
		{[]string{"--history", "0"}, "upid: error: --history: \"0\" is not a positive duration like 14d or 36h, try --help\n"},
		{[]string{"--history=-1d"}, "upid: error: --history: \"-1d\" is not a positive duration like 14d or 36h, try --help\n"},
		{[]string{"--history", "fortnight"}, "upid: error: --history: \"fortnight\" is not a positive duration like 14d or 36h, try --help\n"},
		{[]string{"--history", "4m"}, "upid backtest: --history: 4m is not longer than the decision period (1d): "},
		{[]string{"--batch-containers=-5"}, "upid backtest: --batch-containers: -5 is not a positive number of containers\n"},
		{[]string{"--batch-containers", "0"}, "upid backtest: --batch-containers: 0 is not a positive number of containers\n"},
	} {
		var stdout, stderr bytes.Buffer
		// An unreachable Prometheus: any read would fail with exit 1.
		args := append([]string{"backtest", "--prometheus.url", "http://127.0.0.1:1"}, c.args...)
		if code := run(args, &stdout, &stderr); code != exitUsage || !strings.HasPrefix(stderr.String(), c.want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: %d %q, want %d saying %q", c.args, code, stderr.String(), exitUsage, c.want)
		}
	}
	// Within the clock skew allowed, --end is taken.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"backtest", "--prometheus.url", "http://127.0.0.1:1", "--prometheus.timeout", "1s", "--end", "2026-11-02T14:04:00Z"}, &stdout, &stderr); code != exitFailure {
		t.Errorf("--end 4 minutes ahead: %d %s, want the read to fail (exit 1)", code, stderr.String())
	}
}
