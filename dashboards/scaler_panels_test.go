package dashboards

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upid-dev/upid/internal/testenv"
)

// TestScalerPanelsAcrossClusters evaluates the Idle dashboard's sleeping
// workload panels with promtool, $cluster set to one cluster: the scaler's
// series, which carry no cluster label of their own, count where Prometheus
// adds none (found in review: selecting the cluster showed $0), and the
// wake-signal panel joins a Service's requests of its own cluster only,
// where two clusters have the same Service (found in review: the query
// failed on many-to-many matching).
func TestScalerPanelsAcrossClusters(t *testing.T) {
	exprs := map[string]string{}
	for _, d := range All() {
		if d.File != "upid-idle.json" {
			continue
		}
		for _, q := range queriesOf(t, d) {
			exprs[q.Panel] = q.Expr
		}
	}
	expand := func(panel, cluster string) string {
		e, ok := exprs[panel]
		if !ok {
			t.Fatalf("no panel %q in upid-idle.json", panel)
		}
		r := strings.NewReplacer(`"$cluster`, `"`+cluster, "$namespace", ".*", "$workload", ".*", "$__rate_interval", "5m")
		return strings.Join(strings.Fields(r.Replace(e)), " ")
	}
	rules, err := filepath.Abs("../alerts/upid-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	test := fmt.Sprintf(`rule_files: [%q]
evaluation_interval: 1m
tests:
  # One cluster: the exporter labels its series, the scaler does not.
  - interval: 1m
    input_series:
      - series: 'upid_scaler_sleeping_workload_saved_dollars_per_hour{namespace="shop",workload="cart",kind="Deployment",job="upid-scaler"}'
        values: '0.5x10'
    promql_expr_test:
      - expr: %q
        eval_time: 5m
        exp_samples: [{labels: '{}', value: 365}]
  # Two clusters with Service shop/cart: cart sleeps in a, and b's requests are not its.
  - interval: 1m
    input_series:
      - series: 'upid_scaler_sleeping_workload_service_info{cluster="a",namespace="shop",service="cart",workload="cart",kind="Deployment"}'
        values: '1x10'
      - series: 'nginx_ingress_controller_requests{cluster="a",exported_namespace="shop",exported_service="cart",service="cart"}'
        values: '0+60x10'
      - series: 'nginx_ingress_controller_requests{cluster="b",exported_namespace="shop",exported_service="cart",service="cart"}'
        values: '0+600x10'
    promql_expr_test:
      - expr: %q
        eval_time: 8m
        exp_samples: [{labels: '{namespace="shop",workload="cart"}', value: 1}]
`, rules, expand("Sleeping workloads save per month", "prod"), expand("Requests to sleeping workloads", "a"))
	file := filepath.Join(t.TempDir(), "scaler_panels.yaml")
	if err := os.WriteFile(file, []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := testenv.Promtool(t, "test", "rules", file); err != nil {
		t.Fatalf("promtool test rules: %v\n%s\n%s", err, out, test)
	}
}
