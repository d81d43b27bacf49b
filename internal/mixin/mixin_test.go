package mixin

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/upid-dev/upid/alerts"
	"github.com/upid-dev/upid/dashboards"
	"github.com/upid-dev/upid/internal/promqlcheck"
	"github.com/upid-dev/upid/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite every generated file")

const repoRoot = "../.."

// TestGeneratedFilesFresh fails when any generated file differs from its
// source; `make generate` (or -update) rewrites them.
func TestGeneratedFilesFresh(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		path := filepath.Join(repoRoot, f.Path)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, f.Data) {
			t.Errorf("%s is stale or missing: run `make generate` (%v)", f.Path, err)
		}
	}
}

// documents splits a multi-document YAML file.
func documents(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out [][]byte
	for {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		doc, err := yaml.Marshal(&n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, doc)
	}
	return out
}

func readConfigMaps(t *testing.T) []corev1.ConfigMap {
	t.Helper()
	var cms []corev1.ConfigMap
	for i, doc := range documents(t, DashboardsManifest) {
		var cm corev1.ConfigMap
		if err := k8syaml.UnmarshalStrict(doc, &cm); err != nil {
			t.Fatalf("%s document %d: %v", DashboardsManifest, i, err)
		}
		cms = append(cms, cm)
	}
	return cms
}

// TestDashboardConfigMaps reads the ConfigMaps with Kubernetes' own types and
// checks each carries the sidecar label and exactly its dashboard's JSON.
func TestDashboardConfigMaps(t *testing.T) {
	cms := readConfigMaps(t)
	all := dashboards.All()
	if len(cms) != len(all) {
		t.Fatalf("%d ConfigMaps for %d dashboards", len(cms), len(all))
	}
	for i, d := range all {
		cm := cms[i]
		if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" || cm.Labels[DashboardLabel] != "1" {
			t.Errorf("%s: apiVersion %q kind %q labels %v", cm.Name, cm.APIVersion, cm.Kind, cm.Labels)
		}
		want, err := d.JSON()
		if err != nil {
			t.Fatal(err)
		}
		if len(cm.Data) != 1 || cm.Data[d.File] != string(want) {
			t.Errorf("%s: data is not exactly %s", cm.Name, d.File)
		}
	}
}

// TestPrometheusRule reads the PrometheusRule back and checks its spec is
// the rule file: Prometheus's parser and promtool accept it.
func TestPrometheusRule(t *testing.T) {
	docs := documents(t, RulesManifest)
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents, want 1", RulesManifest, len(docs))
	}
	var obj struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec yaml.Node `yaml:"spec"`
	}
	if err := yaml.Unmarshal(docs[0], &obj); err != nil {
		t.Fatal(err)
	}
	if obj.APIVersion != "monitoring.coreos.com/v1" || obj.Kind != "PrometheusRule" || obj.Metadata.Name == "" {
		t.Errorf("apiVersion %q kind %q name %q", obj.APIVersion, obj.Kind, obj.Metadata.Name)
	}
	spec, err := yaml.Marshal(&obj.Spec)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(spec, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("spec: %v", errs)
	}
	want := alerts.Groups(alerts.Default())
	if len(groups.Groups) != len(want.Groups) {
		t.Errorf("%d groups, want %d", len(groups.Groups), len(want.Groups))
	}
	path := filepath.Join(t.TempDir(), "spec.yaml")
	if err := os.WriteFile(path, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := testenv.Promtool(t, "check", "rules", path); err != nil {
		t.Errorf("promtool check rules on the PrometheusRule's spec: %v\n%s", err, out)
	}
}

// TestConfigMapsApplyToKubernetes creates the ConfigMaps on a real
// kube-apiserver, which enforces names, keys and the 1 MiB size limit.
func TestConfigMapsApplyToKubernetes(t *testing.T) {
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "monitoring"}}
	if _, err := kube.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, cm := range readConfigMaps(t) {
		got, err := kube.Clientset.CoreV1().ConfigMaps("monitoring").Create(ctx, &cm, metav1.CreateOptions{})
		if err != nil {
			t.Errorf("creating %s: %v", cm.Name, err)
			continue
		}
		for k, v := range cm.Data {
			if got.Data[k] != v {
				t.Errorf("%s: %s changed on the way through the API server", cm.Name, k)
			}
		}
	}
	list, err := kube.Clientset.CoreV1().ConfigMaps("monitoring").List(ctx, metav1.ListOptions{LabelSelector: DashboardLabel + "=1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != len(dashboards.All()) {
		t.Errorf("the sidecar's selector %s=1 finds %d ConfigMaps, want %d", DashboardLabel, len(list.Items), len(dashboards.All()))
	}
}

// TestStandardMetricsAreUsed keeps the allow-list of other exporters'
// metrics to the names UPID actually reads.
func TestStandardMetricsAreUsed(t *testing.T) {
	used := map[string]bool{}
	add := func(expr string) {
		names, err := promqlcheck.Metrics(expr)
		if err != nil {
			t.Errorf("%v: %s", err, expr)
		}
		for _, n := range names {
			used[n] = true
		}
	}
	for _, g := range alerts.Groups(alerts.Default()).Groups {
		for _, r := range g.Rules {
			add(r.Expr)
		}
	}
	for _, d := range dashboards.All() {
		b, err := d.JSON()
		if err != nil {
			t.Fatal(err)
		}
		// Every "expr" and variable query in the JSON.
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, x := range v {
					if s, ok := x.(string); ok && (k == "expr" || (k == "definition" && strings.HasPrefix(s, "label_values("))) {
						if k == "definition" {
							s = strings.TrimSuffix(strings.TrimPrefix(s, "label_values("), ")")
							s = s[:strings.LastIndex(s, ",")]
						}
						add(s)
					}
					walk(x)
				}
			case []any:
				for _, x := range v {
					walk(x)
				}
			}
		}
		var m any
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		walk(m)
	}
	for name, src := range promqlcheck.Standard {
		if !used[name] {
			t.Errorf("%s (%s) is in the allow-list but no dashboard or rule reads it", name, src)
		}
	}
}
