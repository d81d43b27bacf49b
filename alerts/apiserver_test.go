package alerts

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upid-dev/upid/internal/testenv"
)

// TestWebhookUnreachableAgainstAPIServer registers UPID's webhook, by the
// chart's name, at an address where nothing listens and creates a pod: a
// real kube-apiserver admits it (failurePolicy Ignore) and counts it in
// the series UPIDWebhookUnreachable selects, with every label the rule
// matches on.
func TestWebhookUnreachableAgainstAPIServer(t *testing.T) {
	k := testenv.StartKube(t, testenv.KubeOptions{})
	o := Default()
	k.RegisterMutatingWebhook(t, testenv.MutatingWebhookSpec{Name: o.WebhookName, URL: fmt.Sprintf("https://127.0.0.1:%d/mutate", testenv.FreePort(t))})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := k.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := k.Clientset.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%d", i)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("the API server did not admit the pod past an unreachable webhook: %v", err)
		}
	}

	var rule string
	for _, a := range Alerts(o) {
		if a.Alert == WebhookUnreachable {
			rule = a.Expr
		}
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(rule)
	if err != nil {
		t.Fatal(err)
	}
	var matchers []*labels.Matcher
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.Name == "apiserver_admission_webhook_fail_open_count" {
			matchers = vs.LabelMatchers
		}
		return nil
	})
	if matchers == nil {
		t.Fatalf("%s does not select apiserver_admission_webhook_fail_open_count: %s", WebhookUnreachable, rule)
	}

	raw, err := k.Clientset.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := tp.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var counted float64
	for _, m := range mfs["apiserver_admission_webhook_fail_open_count"].GetMetric() {
		ls := map[string]string{"__name__": "apiserver_admission_webhook_fail_open_count"}
		for _, l := range m.GetLabel() {
			ls[l.GetName()] = l.GetValue()
		}
		all := true
		for _, mt := range matchers {
			all = all && mt.Matches(ls[mt.Name])
		}
		if all {
			counted += m.GetCounter().GetValue()
		}
	}
	if counted < 3 {
		t.Errorf("the series %s selects count %g fail-opens, want the 3 pods (apiserver's families: %v)", WebhookUnreachable, counted, mfs["apiserver_admission_webhook_fail_open_count"])
	}
}
