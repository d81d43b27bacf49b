package promqlcheck

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMetrics(t *testing.T) {
	tests := []struct {
		expr    string
		want    []string
		wantErr string
	}{
		{`sum by (namespace) (rate(container_cpu_usage_seconds_total{namespace=~"$namespace"}[$__rate_interval]))`, []string{"container_cpu_usage_seconds_total"}, ""},
		{`{__name__="up"} * on (instance) group_left upid_build_info`, []string{"up", "upid_build_info"}, ""},
		{`max_over_time(up[${__range}]) and up`, []string{"up"}, ""},
		{`vector(1)`, nil, ""},
		{`sum(up`, nil, "unclosed left parenthesis"},
	}
	for _, tc := range tests {
		got, err := Metrics(tc.expr)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Metrics(%q) error = %v, want %q", tc.expr, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Metrics(%q) = %v, %v; want %v", tc.expr, got, err, tc.want)
		}
	}
}

func TestChecker(t *testing.T) {
	md := filepath.Join(t.TempDir(), "metrics.md")
	doc := "| metric | type |\n|---|---|\n| `upid_a_seconds` | histogram |\n| `upid_b` | gauge |\nprose `upid_not_a_row`\n"
	if err := os.WriteFile(md, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := NewChecker(md, []string{"namespace:upid_b:sum"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		expr    string
		wantErr string
	}{
		{`upid_b + on () group_left namespace:upid_b:sum`, ""},
		{`histogram_quantile(0.99, sum by (le) (rate(upid_a_seconds_bucket[5m])))`, ""},
		{`kube_pod_owner`, ""},
		{`upid_not_a_row`, "unknown metrics [upid_not_a_row]"},
		{`upid_b_typo + upid_b`, "unknown metrics [upid_b_typo]"},
		{`node_cpu_seconds_total`, "unknown metrics [node_cpu_seconds_total]"},
		{`upid_b[`, "parse"},
	}
	for _, tc := range tests {
		_, err := c.Check(tc.expr)
		if tc.wantErr == "" && err != nil {
			t.Errorf("Check(%q) = %v, want no error", tc.expr, err)
		}
		if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("Check(%q) = %v, want error containing %q", tc.expr, err, tc.wantErr)
		}
	}
}

func TestDocumentedReadsTheRepository(t *testing.T) {
	doc, err := Documented("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"upid_workload_idle_score", "upid_exporter_results_age_seconds", "upid_build_info"} {
		if !doc[name] {
			t.Errorf("docs/metrics.md: %s not found among %d documented metrics", name, len(doc))
		}
	}
}
