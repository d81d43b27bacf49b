package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upid-dev/upid/internal/testenv"
	"github.com/upid-dev/upid/scaler"
)

// TestSleepWakeCommands runs `upid sleep` and `upid wake` against a real
// kube-apiserver: dry run first, then the real thing, then repeats.
func TestSleepWakeCommands(t *testing.T) {
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	ctx := context.Background()
	c := kube.Clientset
	// No opt-in label: an operator's command is not held back by the scope.
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createDeployment(t, kube, "shop", "web", 4)
	createDeployment(t, kube, "kube-system", "dns", 2)
	replicas := func(ns, name string) (int32, map[string]string) {
		d, err := c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *d.Spec.Replicas, d.Annotations
	}
	steps := []struct {
		args     []string
		code     int
		stdout   string
		replicas int32
		saved    string
	}{
		{[]string{"sleep", "--dry-run", "shop/deploy/web"}, exitOK, "sleep shop/Deployment/web: dry_run", 4, ""},
		{[]string{"sleep", "shop/Deployment/web"}, exitOK, "sleep shop/Deployment/web: success", 0, "4"},
		{[]string{"sleep", "shop/Deployment/web"}, exitOK, "skipped (already_asleep)", 0, "4"},
		{[]string{"wake", "--dry-run", "shop/Deployment/web"}, exitOK, "wake shop/Deployment/web: dry_run", 0, "4"},
		{[]string{"wake", "shop/Deployment/web"}, exitOK, "wake shop/Deployment/web: success", 4, ""},
		{[]string{"wake", "shop/Deployment/web"}, exitOK, "skipped (not_asleep)", 4, ""},
		{[]string{"sleep", "shop/Deployment/nope"}, exitFailure, "skipped (not_found)", 4, ""},
	}
	for i, st := range steps {
		var stdout, stderr bytes.Buffer
		code := run(append(st.args, "--kubeconfig", kube.KubeconfigPath), &stdout, &stderr)
		if code != st.code || !strings.Contains(stdout.String(), st.stdout) {
			t.Fatalf("step %d %v: exit %d stdout %q stderr %s; want exit %d and %q", i, st.args, code, stdout.String(), stderr.String(), st.code, st.stdout)
		}
		r, ann := replicas("shop", "web")
		if r != st.replicas || ann[scaler.AnnotationReplicas] != st.saved {
			t.Fatalf("step %d %v: replicas %d saved %q, want %d %q", i, st.args, r, ann[scaler.AnnotationReplicas], st.replicas, st.saved)
		}
		checkStatus(t, kube.KubeconfigPath, st.saved != "")
	}
	// No Service selects worker, so nothing would wake it on demand: an
	// operator's sleep goes ahead, but says so.
	createDeployment(t, kube, "shop", "worker", 1)
	var wout, werr bytes.Buffer
	if code := run([]string{"sleep", "--kubeconfig", kube.KubeconfigPath, "shop/Deployment/worker"}, &wout, &werr); code != exitOK ||
		!strings.Contains(wout.String(), "success; no_wake_path") || !strings.Contains(werr.String(), "upid sleep: warning: no_wake_path") {
		t.Errorf("sleep without a wake path: exit %d stdout %q stderr %q; want 0 and the no_wake_path warning", code, wout.String(), werr.String())
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"sleep", "--kubeconfig", kube.KubeconfigPath, "kube-system/Deployment/dns"}, &stdout, &stderr); code != exitFailure || !strings.Contains(stdout.String(), "protected_namespace") {
		t.Errorf("sleep in kube-system: exit %d %s", code, stdout.String())
	}
	// From a laptop the scaler's namespace is unknown but for its Lease:
	// asleep, the scaler would wake nothing again.
	t.Setenv("POD_NAMESPACE", "")
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "upid"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoordinationV1().Leases("upid").Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "upid-scaler"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createDeployment(t, kube, "upid", "upid-scaler", 2)
	var lout, lerr bytes.Buffer
	if code := run([]string{"sleep", "--kubeconfig", kube.KubeconfigPath, "upid/Deployment/upid-scaler"}, &lout, &lerr); code != exitFailure || !strings.Contains(lout.String(), "protected_namespace") {
		t.Errorf("sleep in the namespace of the scaler's Lease: exit %d %s %s", code, lout.String(), lerr.String())
	}
	if r, _ := replicas("upid", "upid-scaler"); r != 2 {
		t.Errorf("the scaler's namespace: replicas %d, want 2", r)
	}
	// The commands leave Events synchronously, before they exit.
	evs, err := c.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web"})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range evs.Items {
		reasons = append(reasons, e.Reason)
	}
	sort.Strings(reasons) // names are generated, so the list order is not the order of writing
	if got := strings.Join(reasons, ","); got != "UPIDDryRun,UPIDDryRun,UPIDSleep,UPIDWake" {
		t.Errorf("events %s", got)
	}

	// With the server's configuration, whose bearer token file only the
	// scaler's pod can read: an operator's command receives no
	// notifications and does not need it.
	serverConfig := filepath.Join(t.TempDir(), "scaler.yaml")
	if err := os.WriteFile(serverConfig, []byte("scaler:\n  bearer_token_file: /etc/upid/scaler-token/token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"sleep", "--dry-run", "--config", serverConfig, "--kubeconfig", kube.KubeconfigPath, "shop/Deployment/web"}, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "dry_run") {
		t.Errorf("sleep with the server's config: exit %d %s %s", code, out.String(), errOut.String())
	}
}

// TestScalerProcess runs `upid scaler` as deployed: it elects itself
// leader, refuses a notification without the token, acts on one with it,
// serves lint-clean metrics and stops on SIGTERM.
func TestScalerProcess(t *testing.T) {
	bin := buildUpid(t)
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	ctx := context.Background()
	if _, err := kube.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{scaler.LabelOptIn: "enabled"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createDeployment(t, kube, "shop", "web", 2)
	// Its wake path: without one the idle alert would not put it to sleep.
	createService(t, kube, "shop", "web")
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startUpid(t, bin, "scaler", "--kubeconfig", kube.KubeconfigPath, "--scaler.bearer-token-file", token, "--scaler.grace-period", "0s")
	body := `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"UPIDWorkloadIdle","namespace":"shop","workload":"web","kind":"Deployment"},"annotations":{"dollars_per_hour":"0.1"}}]}`
	postAs := func(tok string) int {
		req, _ := http.NewRequest(http.MethodPost, p.base+"/api/v1/notifications", strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := postAs(""); code != 401 {
		t.Errorf("without token: %d, want 401", code)
	}
	deadline := time.Now().Add(30 * time.Second)
	code := postAs("t0ken")
	for code == 503 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond) // until the Lease is ours
		code = postAs("t0ken")
	}
	if code != 200 {
		t.Fatalf("with token: %d, want 200", code)
	}
	d, err := kube.Clientset.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 0 {
		t.Fatalf("not asleep: %v", err)
	}
	_, metrics := fetch(t, p.base+"/metrics")
	for _, want := range []string{
		`upid_scaler_leader 1`,
		`upid_scaler_actions_total{action="sleep",result="success"} 1`,
		`upid_scaler_notifications_total{result="unauthorized"} 1`,
		`upid_scaler_notifications_total{result="accepted"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	promtoolCheckMetrics(t, metrics)
	p.stop(t)
}

// createService creates a Service that selects the pods of
// createDeployment's workload called name.
func createService(t *testing.T, kube *testenv.Kube, ns, name string) {
	t.Helper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := kube.Clientset.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func createDeployment(t *testing.T, kube *testenv.Kube, ns, name string, replicas int32) {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{}
	d.Name, d.Namespace = name, ns
	d.Spec.Replicas = &replicas
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: labels}
	d.Spec.Template.Labels = labels
	d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "x"}}
	if _, err := kube.Clientset.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// checkStatus runs upid status against the cluster and checks that it
// lists shop/Deployment/web exactly when it is asleep, with when it fell
// asleep, in every format.
func checkStatus(t *testing.T, kubeconfig string, asleep bool) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "-o", "json", "--kubeconfig", kubeconfig}, &stdout, &stderr); code != exitOK {
		t.Fatalf("status: exit %d: %s", code, stderr.String())
	}
	var got []statusEntry
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, stdout.String())
	}
	if !asleep {
		if len(got) != 0 {
			t.Errorf("status lists %+v while nothing is asleep", got)
		}
		return
	}
	if len(got) != 1 || got[0].Namespace != "shop" || got[0].Kind != "Deployment" || got[0].Workload != "web" ||
		time.Since(got[0].Since) > 5*time.Minute || got[0].SavedSoFarDollars < 0 {
		t.Errorf("status = %+v, want shop/Deployment/web asleep since a moment ago", got)
	}
	stdout.Reset()
	if code := run([]string{"status", "-n", "shop", "--kubeconfig", kubeconfig}, &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "shop/Deployment/web") || !strings.Contains(stdout.String(), "1 asleep") {
		t.Errorf("status table: exit %d\n%s", code, stdout.String())
	}
	stdout.Reset()
	if code := run([]string{"status", "-n", "other", "--kubeconfig", kubeconfig}, &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "No workload is asleep") {
		t.Errorf("status in another namespace: exit %d\n%s", code, stdout.String())
	}
}
