package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/exporter/pricing"
	"github.com/upid-dev/upid/internal/cli"
	"github.com/upid-dev/upid/internal/manifest"
)

func fp(x float64) *float64 { return &x }

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		arg, ns string
		want    *target
		err     string
	}{
		{arg: "", want: nil},
		{arg: "shop/Deployment/web", want: &target{"shop", "Deployment", "web"}},
		{arg: "shop/deploy/web", want: &target{"shop", "Deployment", "web"}},
		{arg: "shop/STATEFULSETS/db", want: &target{"shop", "StatefulSet", "db"}},
		{arg: "cj/nightly", ns: "batch", want: &target{"batch", "CronJob", "nightly"}},
		{arg: "po/p", ns: "x", want: &target{"x", "Pod", "p"}},
		{arg: "deploy/web", err: "want NAMESPACE/KIND/NAME, or KIND/NAME with -n"},
		{arg: "web", ns: "shop", err: "want NAMESPACE/KIND/NAME"},
		{arg: "a/b/c/d", err: "want NAMESPACE/KIND/NAME"},
		{arg: "shop//web", err: "must not be empty"},
		{arg: "shop/CloneSet/web", want: &target{"shop", "CloneSet", "web"}}, // an operator's kind, matched against the results
	} {
		t.Run(tc.arg, func(t *testing.T) {
			got, err := parseTarget(tc.arg, tc.ns)
			if tc.err != "" {
				var ce *cliError
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if !errors.As(err, &ce) || ce.code != exitUsage {
					t.Errorf("error %v is not a usage error (exit 2)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestTargetMatches(t *testing.T) {
	clone := exporter.WorkloadResult{Namespace: "shop", Kind: "CloneSet", Name: "web"}
	deploy := exporter.WorkloadResult{Namespace: "shop", Kind: "Deployment", Name: "web"}
	for _, tc := range []struct {
		arg  string
		w    exporter.WorkloadResult
		want bool
	}{
		{"shop/CloneSet/web", clone, true},
		{"shop/cloneset/web", clone, true},
		{"shop/deploy/web", clone, false},
		{"shop/deploy/web", deploy, true},
		{"other/CloneSet/web", clone, false},
		{"shop/CloneSet/api", clone, false},
	} {
		tg, err := parseTarget(tc.arg, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := tg.matches(tc.w); got != tc.want {
			t.Errorf("%s matches %s/%s/%s: %v, want %v", tc.arg, tc.w.Namespace, tc.w.Kind, tc.w.Name, got, tc.want)
		}
	}
}

func TestCompare(t *testing.T) {
	// web pays $0.04/core-hour and $0.005/GiB-hour (its cost over its
	// requests); 2 replicas run now.
	live := []exporter.WorkloadResult{{
		Namespace: "shop", Kind: "Deployment", Name: "web", Replicas: 2,
		RequestedCPUCores: 2, RequestedMemoryBytes: 4 << 30,
		Cost: exporter.Money{CPU: 0.08, Memory: 0.02, Total: 0.10},
		Containers: []exporter.ContainerResult{
			{Name: "app", Recommendation: &exporter.Recommendation{OK: true, Apply: true, CPURequestCores: fp(0.25), MemoryRequestBytes: fp(1 << 30)}},
			{Name: "sidecar", Recommendation: &exporter.Recommendation{OK: false, Reasons: []string{"low_confidence"}}},
		},
	}}
	m := func(name, ns string, replicas *int64, cs ...manifest.Container) manifest.Workload {
		return manifest.Workload{File: "m.yaml", Kind: "Deployment", Namespace: ns, Name: name, Replicas: replicas, Containers: cs}
	}
	three := int64(3)
	const gib = 1 << 30
	for _, tc := range []struct {
		name      string
		in        manifest.Workload
		waste     float64
		cost      float64
		replicas  float64
		under     bool
		note      string
		container int
	}{
		{
			name:  "over-provisioned at the manifest's replicas",
			in:    m("web", "shop", &three, manifest.Container{Name: "app", CPURequest: fp(1), MemoryRequest: fp(2 * gib)}),
			waste: 730 * 3 * (0.75*0.04 + 1*0.005), cost: 730 * 3 * (1*0.04 + 2*0.005), replicas: 3,
		},
		{
			name:  "the cluster's replicas when the manifest sets none",
			in:    m("web", "shop", nil, manifest.Container{Name: "app", CPURequest: fp(1), MemoryRequest: fp(2 * gib)}),
			waste: 730 * 2 * (0.75*0.04 + 1*0.005), cost: 730 * 2 * (1*0.04 + 2*0.005), replicas: 2,
		},
		{
			name:  "below the recommendation: a risk, not negative waste",
			in:    m("web", "shop", nil, manifest.Container{Name: "app", CPURequest: fp(0.1), MemoryRequest: fp(2 * gib)}),
			waste: 730 * 2 * (1 * 0.005), cost: 730 * 2 * (0.1*0.04 + 2*0.005), replicas: 2, under: true, note: "requests below the recommendation",
		},
		{
			name: "no requests at all", in: m("web", "shop", nil, manifest.Container{Name: "app"}),
			replicas: 2, under: true, note: "requests not set",
		},
		{
			name: "container without a recommendation", in: m("web", "shop", nil, manifest.Container{Name: "sidecar", CPURequest: fp(1)}),
			cost: 730 * 2 * 0.04, replicas: 2, note: "no recommendation: low_confidence",
		},
		{
			name: "container unknown to the cluster", in: m("web", "shop", nil, manifest.Container{Name: "new", CPURequest: fp(1)}),
			cost: 730 * 2 * 0.04, replicas: 2, note: "no usage history",
		},
		{
			name: "workload not in the cluster: built-in prices, one replica", in: m("web", "other", nil, manifest.Container{Name: "app", CPURequest: fp(1), MemoryRequest: fp(gib)}),
			cost: 730 * (pricing.DefaultCPUCoreHour + pricing.DefaultMemoryGiBHour), replicas: 1, note: "not in the cluster",
		},
		{
			name:  "no namespace means the default one",
			in:    m("web", "", nil, manifest.Container{Name: "app", CPURequest: fp(0.25), MemoryRequest: fp(gib)}),
			waste: 0, cost: 730 * 2 * (0.25*0.04 + 0.005), replicas: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := compare(manifest.Input{Workloads: []manifest.Workload{tc.in}}, live, "shop")
			if len(res.Rows) != 1 {
				t.Fatalf("rows = %+v", res.Rows)
			}
			r := res.Rows[0]
			if math.Abs(r.MonthlyWaste-tc.waste) > 1e-9 || math.Abs(r.MonthlyCost-tc.cost) > 1e-9 {
				t.Errorf("waste %.6f cost %.6f, want %.6f and %.6f", r.MonthlyWaste, r.MonthlyCost, tc.waste, tc.cost)
			}
			if r.Replicas != tc.replicas || r.UnderProvisions != tc.under || !strings.Contains(r.Note, tc.note) {
				t.Errorf("row = %+v, want replicas %v, under %v, note %q", r, tc.replicas, tc.under, tc.note)
			}
			if res.MonthlyWaste != r.MonthlyWaste || res.MonthlyCost != r.MonthlyCost {
				t.Errorf("totals %v/%v differ from the one row", res.MonthlyWaste, res.MonthlyCost)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	for _, tc := range []struct {
		name         string
		max, percent *float64
		over         bool
		verdict      string
	}{
		{"no threshold", nil, nil, false, "no threshold set"},
		{"dollars over", fp(99.99), nil, true, "over --max-waste $99.99"},
		{"dollars at the limit is within", fp(100), nil, false, "within --max-waste $100.00"},
		{"percent over", nil, fp(24), true, "over --max-waste-percent 24%"},
		{"percent within", nil, fp(25), false, "within --max-waste-percent 25%"},
		{"either over fails", fp(1000), fp(10), true, "over --max-waste $1,000.00, --max-waste-percent 10%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &checkResult{MonthlyWaste: 100, MonthlyCost: 400, WastePercent: 25}
			r.judge(tc.max, tc.percent)
			if r.OverThreshold != tc.over || !strings.Contains(r.verdict(), tc.verdict) {
				t.Errorf("over=%v verdict %q, want over=%v and %q", r.OverThreshold, r.verdict(), tc.over, tc.verdict)
			}
		})
	}
	// A waste that is not a number is not within a threshold.
	r := &checkResult{MonthlyWaste: math.NaN(), MonthlyCost: 400, WastePercent: math.NaN()}
	if r.judge(fp(1000), fp(90)); !r.OverThreshold {
		t.Errorf("NaN waste passed the gate: %q", r.verdict())
	}
}

// TestPatchPaths: each kind gets its pod spec where the kind keeps it, and
// only recommendations worth applying are written.
func TestPatchPaths(t *testing.T) {
	rec := func(kind, name, container string, apply bool) recommendation {
		return recommendation{Namespace: "ns", Kind: kind, Name: name, Container: container,
			Recommendation: exporter.Recommendation{OK: true, Apply: apply, CPURequestCores: fp(0.1), CPULimitCores: fp(0.5), MemoryRequestBytes: fp(64 << 20), MonthlySavings: 1}}
	}
	var b bytes.Buffer
	if err := writePatches(&b, workloadChanges([]recommendation{
		rec("CronJob", "nightly", "job", true),
		rec("Pod", "p", "c", true),
		rec("Deployment", "web", "b", true),
		rec("Deployment", "web", "a", true),
		rec("Deployment", "web", "skip", false),
		rec("Rollout", "canary", "app", true),
		rec("CloneSet", "clone", "app", true),
	}, nil, nil)); err != nil {
		t.Fatal(err)
	}
	want := `# upid: ns/CloneSet/clone saves $1.00/month
# upid: no patch: UPID does not know where a CloneSet keeps its pod template; set these in it:
#   containers:
#     - name: app
#       resources:
#         requests:
#           cpu: 100m
#           memory: 64Mi
#         limits:
#           cpu: 500m
---
# upid: ns/CronJob/nightly saves $1.00/month
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
  namespace: ns
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: job
              resources:
                requests:
                  cpu: 100m
                  memory: 64Mi
                limits:
                  cpu: 500m
---
# upid: ns/Deployment/web saves $2.00/month
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: ns
spec:
  template:
    spec:
      containers:
        - name: a
          resources:
            requests:
              cpu: 100m
              memory: 64Mi
            limits:
              cpu: 500m
        - name: b
          resources:
            requests:
              cpu: 100m
              memory: 64Mi
            limits:
              cpu: 500m
---
# upid: ns/Pod/p saves $1.00/month
apiVersion: v1
kind: Pod
metadata:
  name: p
  namespace: ns
spec:
  containers:
    - name: c
      resources:
        requests:
          cpu: 100m
          memory: 64Mi
        limits:
          cpu: 500m
---
# upid: ns/Rollout/canary saves $1.00/month
# upid: a Rollout is a custom resource: kustomize merges its containers by name only with Argo Rollouts' openapi schema
#   (openapi: in kustomization.yaml, https://argo-rollouts.readthedocs.io/en/stable/features/kustomize/); without it, it replaces them
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: canary
  namespace: ns
spec:
  template:
    spec:
      containers:
        - name: app
          resources:
            requests:
              cpu: 100m
              memory: 64Mi
            limits:
              cpu: 500m
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := writePatches(&b, workloadChanges([]recommendation{rec("Deployment", "web", "a", false)}, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if b.String() != "# upid: no recommendation is worth applying\n" {
		t.Errorf("nothing to apply wrote %q", b.String())
	}
}

// TestHPAJSONPatch: the HPA's change tests the target it replaces, at the
// path of its kind of metric; an HPA without metrics gets its default
// spelled out.
func TestHPAJSONPatch(t *testing.T) {
	for _, c := range []struct {
		a    exporter.HPAAdvice
		want string
	}{
		{exporter.HPAAdvice{MetricIndex: 0, CurrentTargetUtilization: 0.7, TargetUtilization: 1},
			`[{"op":"test","path":"/spec/metrics/0/resource/target/averageUtilization","value":70},{"op":"replace","path":"/spec/metrics/0/resource/target/averageUtilization","value":100}]`},
		{exporter.HPAAdvice{MetricIndex: 2, Container: "app", CurrentTargetUtilization: 0.55, TargetUtilization: 0.81},
			`[{"op":"test","path":"/spec/metrics/2/containerResource/target/averageUtilization","value":55},{"op":"replace","path":"/spec/metrics/2/containerResource/target/averageUtilization","value":81}]`},
		{exporter.HPAAdvice{MetricIndex: -1, CurrentTargetUtilization: 0.8, TargetUtilization: 0.95},
			`[{"op":"add","path":"/spec/metrics","value":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":95}}}]}]`},
	} {
		if got := hpaJSONPatch(hpaPair{HPAAdvice: c.a}); got != c.want {
			t.Errorf("%+v:\n got %s\nwant %s", c.a, got, c.want)
		}
		var ops []map[string]any
		if err := json.Unmarshal([]byte(hpaJSONPatch(hpaPair{HPAAdvice: c.a})), &ops); err != nil {
			t.Errorf("%+v: not JSON: %v", c.a, err)
		}
	}
}

// TestPodRequestsListed: pod-level requests follow the table, and -o json
// gives them with each container of the workload.
func TestPodRequestsListed(t *testing.T) {
	pod := exporter.PodAdvice{Resource: "cpu", CurrentRequest: 2, Request: 0.323, Apply: true, MonthlySavings: 30}
	recs := []recommendation{{Namespace: "ns", Kind: "Deployment", Name: "web", Container: "app",
		Recommendation: exporter.Recommendation{OK: true, Confidence: 1, MemoryRequestBytes: fp(64 << 20), Reasons: []string{"pod_level_cpu"}},
		PodRequests:    []exporter.PodAdvice{pod}}}
	pods := []podChange{{"ns", "Deployment", "web", pod}}
	for _, c := range []struct {
		format string
		want   []string
	}{
		{cli.Table, []string{"Pod-level requests (spec.resources)", "RESOURCE", "2 → 323m", "$30.00", "yes"}},
		{cli.JSON, []string{`"pod_requests": [`, `"resource": "cpu"`, `"request": 0.323`, `"current_request": 2`}},
		{formatCommands, []string{`kubectl patch deployment/web -n ns --type=strategic -p '{"spec":{"template":{"spec":{"resources":{"requests":{"cpu":"323m"}}}}}}'  # saves $30.00/month`}},
	} {
		t.Run(c.format, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeRecommendations(&b, c.format, cli.Style{}, recs, nil, pods); err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}

// TestRightsizingSavings: what applying is worth per hour, the containers'
// and the pod-level requests', only for changes worth a rollout that save.
func TestRightsizingSavings(t *testing.T) {
	rec := func(apply bool, perHour float64) exporter.ContainerResult {
		return exporter.ContainerResult{Recommendation: &exporter.Recommendation{OK: true, Apply: apply, SavingsDollarsPerHour: perHour}}
	}
	pod := func(apply bool, perHour float64) exporter.PodAdvice {
		return exporter.PodAdvice{Apply: apply, SavingsDollarsPerHour: perHour}
	}
	for _, c := range []struct {
		name       string
		w          exporter.WorkloadResult
		perHour    float64
		containers int
	}{
		{"containers", exporter.WorkloadResult{Containers: []exporter.ContainerResult{rec(true, 0.1), rec(false, 0.2), rec(true, -0.05)}}, 0.1, 1},
		{"with pod-level requests", exporter.WorkloadResult{Containers: []exporter.ContainerResult{rec(true, 0.1)}, Pod: []exporter.PodAdvice{pod(true, 0.3), pod(false, 0.2), pod(true, -1)}}, 0.4, 1},
		{"idle: counted by sleeping", exporter.WorkloadResult{Idle: exporter.Idle{State: "idle"}, Pod: []exporter.PodAdvice{pod(true, 0.3)}}, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			perHour, n := rightsizingSavings(c.w)
			if math.Abs(perHour-c.perHour) > 1e-12 || n != c.containers {
				t.Errorf("rightsizingSavings = %v, %d; want %v, %d", perHour, n, c.perHour, c.containers)
			}
		})
	}
}

// TestCheckPodLevel: a manifest's pod-level requests are compared with the
// live pod-level recommendations, and its containers' requests of those
// resources neither cost nor count as missing.
func TestCheckPodLevel(t *testing.T) {
	const mi = 1 << 20
	live := []exporter.WorkloadResult{{Namespace: "support", Kind: "Deployment", Name: "search", Replicas: 1,
		RequestedCPUCores: 0.25, RequestedMemoryBytes: 384 * mi, Cost: exporter.Money{CPU: 0.25 * 0.04, Memory: 384 * mi * 1e-11},
		Containers: []exporter.ContainerResult{{Name: "app", Recommendation: &exporter.Recommendation{OK: false, Reasons: []string{"pod_level_cpu", "pod_level_memory"}}}},
		Pod:        []exporter.PodAdvice{{Resource: "cpu", Request: 0.1}, {Resource: "memory", Request: 259 * mi}}}}
	for _, c := range []struct {
		name, yaml         string
		cpu, mem           float64 // the pod's requests, as created
		wasteCPU, wasteMem float64 // per hour
	}{
		{"requests at pod level", "resources: {requests: {cpu: 250m, memory: 384Mi}}\n      containers: [{name: app, resources: {requests: {cpu: 100m}}}]",
			0.25, 384 * mi, 0.15 * 0.04, 125 * mi * 1e-11},
		// Limits alone: CPU takes the container's 100m, memory the limit.
		{"limits alone", "resources: {limits: {cpu: '1', memory: 512Mi}}\n      containers: [{name: app, resources: {requests: {cpu: 100m}}}]",
			0.1, 512 * mi, 0, 253 * mi * 1e-11},
	} {
		t.Run(c.name, func(t *testing.T) {
			ws, _, err := manifest.Parse("m.yaml", []byte("kind: Deployment\nmetadata: {name: search, namespace: support}\nspec:\n  template:\n    spec:\n      "+c.yaml+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			res := compare(manifest.Input{Workloads: ws}, live, "default")
			if len(res.Rows) != 2 {
				t.Fatalf("rows %+v, want the container and the pod", res.Rows)
			}
			var app, pod checkRow
			for _, r := range res.Rows {
				if r.Container == "(pod)" {
					pod = r
				} else {
					app = r
				}
			}
			if app.MonthlyCost != 0 || app.MonthlyWaste != 0 || app.UnderProvisions || app.Note != "sized at pod level: see the (pod) row" {
				t.Errorf("container row %+v, want no cost, no waste and the pod-level reasons", app)
			}
			wantCost := (c.cpu*0.04 + c.mem*1e-11) * 730
			if pod.CPURequest == nil || *pod.CPURequest != c.cpu || pod.MemRequest == nil || *pod.MemRequest != c.mem ||
				math.Abs(pod.MonthlyCost-wantCost) > 1e-9 || math.Abs(pod.MonthlyWaste-(c.wasteCPU+c.wasteMem)*730) > 1e-9 {
				t.Errorf("pod row %+v, want %v cores and %v bytes costing %v with %v of waste a month", pod, c.cpu, c.mem, wantCost, (c.wasteCPU+c.wasteMem)*730)
			}
			if pod.CPURecommended == nil || *pod.CPURecommended != 0.1 || pod.UnderProvisions != (c.cpu < 0.1) {
				t.Errorf("pod row %+v, want the live 100m recommendation", pod)
			}
		})
	}
}

// TestCommandsForCustomKinds: kubectl cannot strategic-merge a custom
// resource (a Rollout, an operator's workload), and a merge patch would
// replace its containers whole: -o commands says so instead of printing
// a command that fails or, worse, succeeds.
func TestCommandsForCustomKinds(t *testing.T) {
	rec := func(kind, name string) recommendation {
		return recommendation{Namespace: "ns", Kind: kind, Name: name, Container: "app",
			Recommendation: exporter.Recommendation{OK: true, Apply: true, CPURequestCores: fp(0.1), MonthlySavings: 1}}
	}
	var b bytes.Buffer
	if err := writeCommands(&b, workloadChanges([]recommendation{rec("Rollout", "canary"), rec("CloneSet", "clone"), rec("Deployment", "web")}, nil, nil)); err != nil {
		t.Fatal(err)
	}
	want := `# ns/cloneset/clone: a custom resource UPID knows only by its kind; set what -o patch lists in its manifest
kubectl patch deployment/web -n ns --type=strategic -p '{"spec":{"template":{"spec":{"containers":[{"name":"app","resources":{"limits":{"cpu":null},"requests":{"cpu":"100m"}}}]}}}}'  # saves $1.00/month
# ns/rollout/canary: a custom resource, which kubectl cannot strategic-merge; apply -o patch with kustomize, or let the webhook set it at admission
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}

	// With an HPA pair, the HPA's new target must go in with the requests,
	// by hand: kubectl cannot patch the requests, and the webhook leaves
	// requests an HPA scales on alone. A command for the HPA alone would
	// change the replicas, not the requests.
	for _, kind := range []string{"Rollout", "CloneSet"} {
		pairs, _ := pairsAndPods([]exporter.WorkloadResult{{Namespace: "ns", Kind: kind, Name: "w",
			Containers: []exporter.ContainerResult{{Name: "app"}},
			HPA: []exporter.HPAAdvice{{HPA: "w", Resource: "cpu", CurrentTargetUtilization: 0.5, TargetUtilization: 0.8,
				Requests: map[string]float64{"app": 0.3}, Apply: true}}}})
		b.Reset()
		if err := writeCommands(&b, workloadChanges(nil, pairs, nil)); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if strings.Contains(out, "\nkubectl patch") || strings.HasPrefix(out, "kubectl patch") || !strings.Contains(out, "# only together with its cpu requests from -o patch: kubectl patch hpa w") || strings.Contains(out, "webhook") {
			t.Errorf("%s with an HPA pair, -o commands:\n%s\nwant only comments, the HPA's change among them, and no webhook", kind, out)
		}
		b.Reset()
		if err := writePatches(&b, workloadChanges(nil, pairs, nil)); err != nil {
			t.Fatal(err)
		}
		if out := b.String(); !strings.Contains(out, "move HorizontalPodAutoscaler ns/w's cpu target from 50% to 80%") || strings.Contains(out, "webhook") {
			t.Errorf("%s with an HPA pair, -o patch:\n%s\nwant the HPA's change, and no webhook", kind, out)
		}
	}
}

// TestCommandsHPAPairTogether runs what -o commands prints for an HPA pair
// through sh with a kubectl that fails one patch: the requests never go in
// without the HPA's new target, nor the target without the requests (found
// in review: a failed HPA patch left the requests applied alone).
func TestCommandsHPAPairTogether(t *testing.T) {
	ws := []exporter.WorkloadResult{{Namespace: "shop", Kind: "Deployment", Name: "checkout",
		Containers: []exporter.ContainerResult{{Name: "checkout"}},
		HPA: []exporter.HPAAdvice{{HPA: "checkout", Resource: "cpu", MetricIndex: 0, CurrentTargetUtilization: 0.7, TargetUtilization: 1.0,
			Requests: map[string]float64{"checkout": 0.35}, Apply: true, MonthlySavings: 10}}}}
	pairs, pods := pairsAndPods(ws)
	var script bytes.Buffer
	if err := writeCommands(&script, workloadChanges(recommendations(ws), pairs, pods)); err != nil {
		t.Fatal(err)
	}
	// Two HPAs on one workload: no command applies its requests alone.
	two := append([]exporter.WorkloadResult{}, ws...)
	two[0].HPA = append(append([]exporter.HPAAdvice{}, ws[0].HPA...), exporter.HPAAdvice{HPA: "checkout-memory", Resource: "memory", MetricIndex: 0,
		CurrentTargetUtilization: 0.7, TargetUtilization: 0.9, Requests: map[string]float64{"checkout": 300 << 20}, Apply: true, MonthlySavings: 1})
	twoPairs, twoPods := pairsAndPods(two)
	var twoScript bytes.Buffer
	if err := writeCommands(&twoScript, workloadChanges(recommendations(two), twoPairs, twoPods)); err != nil {
		t.Fatal(err)
	}
	if out := twoScript.String(); strings.Contains(out, "kubectl patch") || !strings.Contains(out, "several HPAs target it") {
		t.Errorf("two HPAs on checkout:\n%s", out)
	}
	for _, tc := range []struct {
		name  string
		fails string // the kubectl patch that fails: hpa or deployment/checkout
		want  []string
	}{
		{"the HPA moved since", "hpa", []string{"patch hpa checkout"}},
		{"the requests refused", "deployment/checkout", []string{"patch hpa checkout", "patch deployment/checkout", `patch hpa checkout -n shop --type=json -p [{"op":"test","path":"/spec/metrics/0/resource/target/averageUtilization","value":100},{"op":"replace","path":"/spec/metrics/0/resource/target/averageUtilization","value":70}]`}},
		{"both applied", "", []string{"patch hpa checkout", "patch deployment/checkout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			calls := filepath.Join(dir, "calls")
			// The first patch of the failing kind fails; a later one (the
			// way back) succeeds.
			fake := "#!/bin/sh\necho \"$*\" >> " + calls + "\nif [ \"$2\" = \"" + tc.fails + "\" ] && [ ! -e " + calls + ".failed ]; then touch " + calls + ".failed; exit 1; fi\n"
			if err := os.WriteFile(filepath.Join(dir, "kubectl"), []byte(fake), 0o755); err != nil {
				t.Fatal(err)
			}
			sh := exec.Command("sh")
			sh.Stdin = bytes.NewReader(script.Bytes())
			sh.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
			if out, err := sh.CombinedOutput(); err != nil && tc.fails == "" {
				t.Fatalf("sh: %v %s", err, out)
			}
			got, _ := os.ReadFile(calls)
			lines := strings.Split(strings.TrimSpace(string(got)), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("kubectl calls:\n%s\nwant %d, starting %q\nscript:\n%s", got, len(tc.want), tc.want, script.String())
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("call %d: %s, want %s…", i, lines[i], w)
				}
			}
		})
	}
}
