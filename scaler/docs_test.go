package scaler

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/tools/record"
)

// TestMetricsDocumented: every metric of the scaler is in docs/metrics.md
// under its heading, and the heading documents no metric that does not exist.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## `upid scaler`\n")
	if !ok {
		t.Fatal("docs/metrics.md has no ## `upid scaler` section")
	}
	if next := strings.Index(section, "\n## "); next >= 0 {
		section = section[:next]
	}
	c, _ := newFakeCluster()
	s := newTestScaler(t, c, testConfig(t), record.NewFakeRecorder(1))
	ch := make(chan *prometheus.Desc, 100)
	for _, col := range append(s.Collectors(), s.SleepCollector()) {
		col.Describe(ch)
	}
	close(ch)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		m := fq.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		names[m[1]] = true
		if !strings.Contains(section, "| `"+m[1]+"` |") {
			t.Errorf("%s is not documented under upid scaler in docs/metrics.md", m[1])
		}
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `(upid_[a-z_]+)` \\|").FindAllStringSubmatch(section, -1) {
		if !names[m[1]] {
			t.Errorf("docs/metrics.md documents %s, which the scaler does not expose", m[1])
		}
	}
	if len(names) != 7 {
		t.Errorf("%d metrics, want the 7 of contracts.md", len(names))
	}
}
