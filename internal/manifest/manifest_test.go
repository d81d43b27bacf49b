package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const deployment = `# Source: shop/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 3
  template:
    spec:
      containers:
      - name: app
        image: x
        resources:
          requests: {cpu: 500m, memory: 1Gi}
          limits: {cpu: "1", memory: 2Gi}
      - name: sidecar
        image: y
`

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []string // kind/ns/name:replicas:containers
		skipped []string // file:line kind
		errs    []string
	}{
		{name: "deployment", in: deployment, want: []string{"Deployment/shop/web:3:app,sidecar"}},
		{
			name: "every kind, with lines across documents",
			in: deployment + "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\n" +
				"kind: CronJob\nmetadata: {name: nightly}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{name: job}]\n" +
				"---\nkind: Pod\nmetadata: {name: p, namespace: x}\nspec: {containers: [{name: c}]}\n" +
				"---\nkind: StatefulSet\nmetadata: {name: db}\nspec: {template: {spec: {containers: [{name: pg}]}}}\n" +
				"---\nkind: DaemonSet\nmetadata: {name: agent}\nspec: {template: {spec: {containers: [{name: a}]}}}\n" +
				"---\nkind: Job\nmetadata: {name: once}\nspec: {template: {spec: {containers: [{name: j}]}}}\n",
			want:    []string{"Deployment/shop/web:3:app,sidecar", "CronJob//nightly:-:job", "Pod/x/p:-:c", "StatefulSet//db:-:pg", "DaemonSet//agent:-:a", "Job//once:-:j"},
			skipped: []string{"m.yaml:20 Service"},
		},
		{
			// An Argo Rollout keeps its template where a Deployment does;
			// one with a workloadRef runs the referenced Deployment's.
			name: "argo rollouts",
			in: "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: canary}\nspec:\n  replicas: 4\n  template: {spec: {containers: [{name: app}]}}\n" +
				"---\napiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: ref}\nspec:\n  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n",
			want: []string{"Rollout//canary:4:app"}, skipped: []string{"m.yaml:8 Rollout"},
		},
		{name: "empty documents", in: "---\n---\n\n---\n# just a comment\n"},
		{
			name: "List of items",
			in:   "apiVersion: v1\nkind: List\nitems:\n- kind: Deployment\n  metadata: {name: a}\n  spec: {template: {spec: {containers: [{name: c}]}}}\n- kind: ConfigMap\n  metadata: {name: cm}\n",
			want: []string{"Deployment//a:-:c"}, skipped: []string{"m.yaml:7 ConfigMap"},
		},
		{name: "syntax error", in: "kind: Deployment\nmetadata:\n  name: a\n   bad: [\n", errs: []string{"m.yaml:4: "}},
		// yaml.v3 places parser errors at the line of their context (here
		// the mapping that holds the bad value), counted across documents.
		{name: "syntax error in a later document", in: deployment + "---\nkind: Pod\nmetadata: {name: [}\n", want: []string{"Deployment/shop/web:3:app,sidecar"}, errs: []string{"m.yaml:20: "}},
		{name: "not a mapping", in: "- a\n- b\n", errs: []string{"m.yaml:1: a Kubernetes object must be a mapping, not a list"}},
		{name: "no kind", in: "metadata: {name: a}\n", errs: []string{"m.yaml:1: object has no kind"}},
		{name: "kind not a string", in: "kind: [a]\n", errs: []string{"m.yaml:1: kind: want a string, not a list"}},
		{name: "no name", in: "kind: Deployment\nspec: {}\n", errs: []string{"m.yaml:1: Deployment has no metadata.name"}},
		{name: "no pod spec", in: "kind: Deployment\nmetadata: {name: a}\nspec: {}\n", errs: []string{"m.yaml:1: Deployment a: spec.template.spec is missing"}},
		{name: "containers not a list", in: "kind: Pod\nmetadata: {name: a}\nspec:\n  containers: {a: b}\n", errs: []string{"m.yaml:4: Pod a: spec.containers: want a list of containers"}},
		{
			name: "bad quantity named with its line",
			in:   "kind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    resources:\n      requests:\n        cpu: lots\n",
			want: []string{"Pod//a:-:c"}, errs: []string{`m.yaml:8: Pod a: container c: resources.requests.cpu: "lots" is not a quantity`},
		},
		{
			// Counted, a negative request hid the waste of the rest and an
			// infinite one made it NaN; the API server refuses both.
			name: "negative and infinite quantities",
			in:   "kind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    resources:\n      requests: {cpu: '-1000', memory: 1e400}\n",
			want: []string{"Pod//a:-:c"}, errs: []string{
				`m.yaml:7: Pod a: container c: resources.requests.cpu: "-1000" is not a quantity a pod can request (negative or too large)`,
				`m.yaml:7: Pod a: container c: resources.requests.memory: "1e400" is not a quantity a pod can request (negative or too large)`},
		},
		{
			// kubectl reads JSON objects one after another; lines count
			// from the file's start.
			name: "JSON stream",
			in: `{"kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c"}]}}` + "\n{\n \"kind\": \"Pod\",\n \"metadata\": {\"name\": \"b\"},\n" +
				` "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "lots"}}}]}` + "\n}\n",
			want: []string{"Pod//a:-:c", "Pod//b:-:c"}, errs: []string{`m.yaml:5: Pod b: container c: resources.requests.cpu: "lots" is not a quantity`},
		},
		// Helm renders an unset value as null; Kubernetes defaults it.
		{name: "replicas null", in: "kind: Deployment\nmetadata: {name: a}\nspec:\n  replicas:\n  template: {spec: {containers: [{name: c}]}}\n", want: []string{"Deployment//a:-:c"}},
		{name: "bad replicas", in: "kind: Deployment\nmetadata: {name: a}\nspec:\n  replicas: many\n  template: {spec: {containers: []}}\n", want: []string{"Deployment//a:-:"}, errs: []string{`m.yaml:4: Deployment a: spec.replicas: want a whole number, got "many"`}},
		{
			name: "pod-level resources",
			in:   "kind: Pod\nmetadata: {name: a}\nspec:\n  resources:\n    requests: {cpu: 250m}\n    limits: {memory: lots}\n  containers: [{name: c}]\n",
			want: []string{"Pod//a:-:c"}, errs: []string{`m.yaml:6: Pod a: spec.resources.limits.memory: "lots" is not a quantity`},
		},
		{name: "container without name", in: "kind: Pod\nmetadata: {name: a}\nspec: {containers: [{image: x}]}\n", want: []string{"Pod//a:-:"}, errs: []string{"m.yaml:3: Pod a: container has no name"}},
		{name: "anchors and aliases", in: "x: &r {requests: {cpu: 250m}}\n---\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, resources: *r}]}\n", skipped: nil, errs: []string{"m.yaml:1: object has no kind"}, want: []string{"Pod//a:-:c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, sk, err := Parse("m.yaml", []byte(tc.in))
			var got []string
			for _, w := range ws {
				r := "-"
				if w.Replicas != nil {
					r = itoa(*w.Replicas)
				}
				var cs []string
				for _, c := range w.Containers {
					cs = append(cs, c.Name)
				}
				got = append(got, w.Kind+"/"+w.Namespace+"/"+w.Name+":"+r+":"+strings.Join(cs, ","))
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("workloads = %v, want %v", got, tc.want)
			}
			var gotSk []string
			for _, s := range sk {
				gotSk = append(gotSk, s.File+":"+itoa(int64(s.Line))+" "+s.Kind)
			}
			if strings.Join(gotSk, " ") != strings.Join(tc.skipped, " ") {
				t.Errorf("skipped = %v, want %v", gotSk, tc.skipped)
			}
			if len(tc.errs) == 0 && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			for _, want := range tc.errs {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want it to contain %q", err, want)
				}
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Errorf("error %T is not a *manifest.Error", err)
				}
				if strings.Count(err.Error(), "\n")+1 != len(tc.errs) {
					t.Errorf("got %d errors, want %d: %v", strings.Count(err.Error(), "\n")+1, len(tc.errs), err)
				}
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestQuantities(t *testing.T) {
	ws, _, err := Parse("m.yaml", []byte(deployment))
	if err != nil {
		t.Fatal(err)
	}
	c := ws[0].Containers[0]
	for _, q := range []struct {
		name string
		got  *float64
		want float64
	}{
		{"cpu request", c.CPURequest, 0.5}, {"cpu limit", c.CPULimit, 1},
		{"memory request", c.MemoryRequest, 1 << 30}, {"memory limit", c.MemoryLimit, 2 << 30},
	} {
		if q.got == nil || *q.got != q.want {
			t.Errorf("%s = %v, want %v", q.name, q.got, q.want)
		}
	}
	if s := ws[0].Containers[1]; s.CPURequest != nil || s.MemoryLimit != nil {
		t.Errorf("sidecar sets nothing, got %+v", s)
	}
	if c.Line != 12 || ws[0].Line != 2 {
		t.Errorf("lines: workload %d container %d, want 2 and 12", ws[0].Line, c.Line)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("a/web.yaml", deployment)
	write("a/sub/pod.yml", "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n")
	write("a/notes.txt", "kind: Pod\n")
	bad := write("b/bad.yaml", "kind: Pod\nmetadata: {name: [}\n")
	in, err := Load([]string{filepath.Join(dir, "a"), "-", bad, filepath.Join(dir, "missing.yaml")}, strings.NewReader("kind: Job\nmetadata: {name: j}\nspec: {template: {spec: {containers: [{name: c}]}}}\n"))
	if len(in.Workloads) != 3 {
		t.Errorf("read %d workloads, want 3 (the .txt is not a manifest): %+v", len(in.Workloads), in.Workloads)
	}
	if in.Workloads[2].File != "<stdin>" {
		t.Errorf("stdin named %q", in.Workloads[2].File)
	}
	for _, want := range []string{bad + ":1: ", "missing.yaml: no such file"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestReadTooLarge(t *testing.T) {
	_, _, err := Read("big.yaml", strings.NewReader(strings.Repeat("#", MaxBytes+1)))
	if err == nil || !strings.Contains(err.Error(), "big.yaml: larger than") {
		t.Errorf("error %v, want a size error naming the file", err)
	}
}

// TestParsePodLevel reads the pod-level requests and limits of a template.
func TestParsePodLevel(t *testing.T) {
	in := "kind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      resources:\n        requests: {cpu: 250m}\n        limits: {memory: 1Gi}\n      containers: [{name: app}]\n"
	ws, _, err := Parse("m.yaml", []byte(in))
	if err != nil || len(ws) != 1 {
		t.Fatalf("%v, %v", ws, err)
	}
	p := ws[0].Pod
	if p == nil || p.Line != 7 || p.CPURequest == nil || *p.CPURequest != 0.25 || p.MemoryLimit == nil || *p.MemoryLimit != 1<<30 || p.CPULimit != nil || p.MemoryRequest != nil {
		t.Errorf("pod-level resources %+v", p)
	}
	ws, _, _ = Parse("m.yaml", []byte(deployment))
	if ws[0].Pod != nil {
		t.Errorf("a template without pod-level resources got %+v", ws[0].Pod)
	}
}

// TestParseSidecars: a native sidecar (an init container with
// restartPolicy Always) runs and costs beside the containers, and is read
// as one; an init container that finishes first is not.
func TestParseSidecars(t *testing.T) {
	in := `kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers:
        - {name: migrate, resources: {requests: {cpu: "2"}}}
        - {name: proxy, restartPolicy: Always, resources: {requests: {cpu: "4", memory: 8Gi}}}
      containers:
        - {name: app, resources: {requests: {cpu: 500m}}}
`
	ws, _, err := Parse("m.yaml", []byte(in))
	if err != nil || len(ws) != 1 {
		t.Fatalf("%v, %v", ws, err)
	}
	var names []string
	for _, c := range ws[0].Containers {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"app", "proxy"}) {
		t.Errorf("containers %v, want app and the proxy sidecar", names)
	}
	if p := ws[0].Containers[1]; p.CPURequest == nil || *p.CPURequest != 4 || p.Line != 8 {
		t.Errorf("proxy %+v", p)
	}
}

// TestMergeKeys: kubectl's YAML reader applies merge keys (`<<: *base`)
// and aliases of whole containers; read without them, a container lost
// its requests (priced as none) or was refused.
func TestMergeKeys(t *testing.T) {
	in := "kind: Deployment\nmetadata: {name: a}\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n" +
		"      - &base {name: b, resources: {requests: {cpu: 100m, memory: 64Mi}}}\n" +
		"      - <<: *base\n        name: d\n        resources: {requests: {cpu: 300m}}\n" +
		"      - <<: [*base]\n        name: e\n" +
		"      - *base\n"
	ws, _, err := Parse("m.yaml", []byte(in))
	if err != nil || len(ws) != 1 {
		t.Fatalf("%v, %v", ws, err)
	}
	var got []string
	for _, c := range ws[0].Containers {
		cpu, mem := "-", "-"
		if c.CPURequest != nil {
			cpu = strconv.FormatFloat(*c.CPURequest, 'g', -1, 64)
		}
		if c.MemoryRequest != nil {
			mem = strconv.FormatFloat(*c.MemoryRequest, 'g', -1, 64)
		}
		got = append(got, c.Name+"="+cpu+"/"+mem)
	}
	// d's own resources replace base's whole mapping, as a merge does.
	if want := "b=0.1/6.7108864e+07 d=0.3/- e=0.1/6.7108864e+07 b=0.1/6.7108864e+07"; strings.Join(got, " ") != want {
		t.Errorf("containers %v, want %s", got, want)
	}
}

// TestLoadWorkloadRef: a Rollout with a workloadRef is sized as the
// cluster sizes it, with its Deployment's template (from another file) and
// its own replicas, and the Deployment Argo scales down is not counted
// beside it; a reference to a Deployment not in the input stays skipped.
func TestLoadWorkloadRef(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"a-rollout.yaml": "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: web-ro, namespace: shop}\nspec:\n  replicas: 5\n" +
			"  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n" +
			"---\napiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: lost, namespace: shop}\nspec:\n  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: elsewhere}\n",
		"b-deployment.yaml": "kind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  replicas: 0\n  template:\n    spec:\n      containers:\n      - name: app\n        resources: {requests: {cpu: 250m}}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	in, err := Load([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Workloads) != 1 {
		t.Fatalf("workloads %+v, want the Rollout alone", in.Workloads)
	}
	w := in.Workloads[0]
	if w.Kind != "Rollout" || w.Namespace != "shop" || w.Name != "web-ro" || w.Replicas == nil || *w.Replicas != 5 ||
		len(w.Containers) != 1 || w.Containers[0].Name != "app" || *w.Containers[0].CPURequest != 0.25 || !strings.HasSuffix(w.File, "b-deployment.yaml") {
		t.Errorf("workload %+v, want shop/Rollout/web-ro with 5 replicas of the Deployment's app (250m), at the template's file", w)
	}
	if len(in.Skipped) != 1 || in.Skipped[0].Name != "lost" {
		t.Errorf("skipped %+v, want the Rollout whose Deployment is not in the input", in.Skipped)
	}
}
