package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/internal/testenv"
	"github.com/upid-dev/upid/webhook"
)

// TestWebhookProcess runs `upid webhook` as users do, registered with a real
// kube-apiserver: it mutates pods, lints clean, and pods are still admitted
// within the timeout while the process hangs (SIGSTOP) or is gone.
func TestWebhookProcess(t *testing.T) {
	bin := buildUpid(t)
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	ctx := context.Background()
	if _, err := kube.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The pods' Deployment, in the webhook's cache from its first list, as
	// one that has run a while; no controller makes its pods here. Without
	// it, the webhook would read their ReplicaSet, which does not exist,
	// and admit them unchanged.
	labels := map[string]string{"app": "web"}
	if _, err := kube.Clientset.AppsV1().Deployments("team").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "x"}}}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cpu, mem := 0.25, float64(128<<20)
	recs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(exporter.WorkloadsResponse{At: time.Now(), Workloads: []exporter.WorkloadResult{{
			Namespace: "team", Kind: "Deployment", Name: "web",
			Containers: []exporter.ContainerResult{{Name: "app", Recommendation: &exporter.Recommendation{OK: true, Confidence: 1, CPURequestCores: &cpu, MemoryRequestBytes: &mem}}},
		}}})
	}))
	defer recs.Close()
	cert := testenv.NewServingCert(t)
	port := testenv.FreePort(t)
	p := startUpid(t, bin, "webhook", "--kubeconfig", kube.KubeconfigPath, "--webhook.mode=enforce",
		"--webhook.port", strconv.Itoa(port), "--webhook.cert-dir", cert.Dir, "--webhook.recommendations-url", recs.URL)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, body := fetch(t, p.base+"/metrics"); strings.Contains(body, "upid_webhook_recommendations_cache_workloads 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("recommendations not loaded within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	kube.RegisterMutatingWebhook(t, testenv.MutatingWebhookSpec{
		Name: "pods.webhook.upid.io", URL: fmt.Sprintf("https://127.0.0.1:%d%s", port, webhook.Path), CAPEM: cert.CAPEM,
	})

	n := 0
	create := func() (*corev1.Pod, time.Duration) {
		t.Helper()
		n++
		yes := true
		began := time.Now()
		pod, err := kube.Clientset.CoreV1().Pods("team").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("web-abc-%d", n), Labels: map[string]string{"pod-template-hash": "abc"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-abc", UID: "0a0a0a0a-0000-0000-0000-000000000001", Controller: &yes}},
			},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "x", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
			}}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating a pod: %v", err)
		}
		return pod, time.Since(began)
	}

	pod, _ := create()
	if got := pod.Spec.Containers[0].Resources.Requests.Cpu().String(); got != "250m" || pod.Annotations[webhook.AnnotationMode] != "enforce" {
		t.Errorf("pod cpu %s, annotations %v: want 250m set by the webhook", got, pod.Annotations)
	}
	_, body := fetch(t, p.base+"/metrics")
	for _, want := range []string{
		`upid_webhook_decisions_total{outcome="mutated",reason="enforce"} 1`,
		`upid_webhook_admission_duration_seconds_count 1`,
		`upid_webhook_certificate_expiry_timestamp_seconds `,
		`upid_webhook_recommendations_refresh_total{result="success"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	promtoolCheckMetrics(t, body)

	// A hung process: connections are accepted by the kernel and never
	// answered; the apiserver gives up after timeoutSeconds (2) and admits.
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The signal is delivered, not yet obeyed: on a loaded machine one of
	// the process's threads answered one more admission before stopping.
	waitStopped(t, p.cmd.Process.Pid)
	pod, took := create()
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	if took > 5*time.Second {
		t.Errorf("pod creation took %s with the webhook hung, want about the 2s timeout", took)
	}
	if got := pod.Spec.Containers[0].Resources.Requests.Cpu().String(); got != "1" {
		t.Errorf("pod cpu %s with the webhook hung, want unchanged 1", got)
	}
	t.Logf("pod admitted in %s with the webhook hung", took.Round(time.Millisecond))

	p.stop(t)
	pod, took = create()
	if took > 5*time.Second || pod.Spec.Containers[0].Resources.Requests.Cpu().String() != "1" {
		t.Errorf("with the webhook stopped: took %s, cpu %s; want prompt and unchanged", took, pod.Spec.Containers[0].Resources.Requests.Cpu())
	}
}

// waitStopped waits until every thread of process pid is stopped (state T
// in /proc), as SIGSTOP leaves them.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		stopped := 0
		for _, task := range tasks {
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
			// The state follows the command name, which is in parentheses.
			if i := strings.LastIndexByte(string(stat), ')'); err == nil && i >= 0 && i+2 < len(stat) && (stat[i+2] == 'T' || stat[i+2] == 't') {
				stopped++
			}
		}
		if stopped == len(tasks) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d threads of process %d stopped after SIGSTOP", stopped, len(tasks), pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
