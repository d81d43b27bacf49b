package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	krt "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/argorollouts"
	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/testenv"
)

// recsServer serves GET /api/v1/workloads as the exporter does, with one
// confident recommendation per listed workload for its container "app".
func recsServer(t testing.TB, workloads ...exporter.WorkloadResult) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/workloads" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(exporter.WorkloadsResponse{At: time.Now(), Window: "7d", Workloads: workloads})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func workloadResult(ns, kind, name string, cpu, mem, peak float64, confidence float64) exporter.WorkloadResult {
	return exporter.WorkloadResult{
		Namespace: ns, Kind: kind, Name: name,
		Containers: []exporter.ContainerResult{{
			Name:           "app",
			MemoryBytes:    &history.Usage{Max: &peak},
			Recommendation: &exporter.Recommendation{OK: true, Confidence: confidence, CPURequestCores: &cpu, MemoryRequestBytes: &mem},
		}},
	}
}

func testConfig(port int, certDir, url string) config.Webhook {
	c := config.Default().Webhook
	c.Mode = ModeOff
	c.Port = port
	c.CertDir = certDir
	c.RecommendationsURL = url
	c.RefreshInterval = 0
	return c
}

// startWebhook runs Run in the background until the returned stop is called
// (or the test ends) and waits until it serves and has read recommendations.
func startWebhook(t testing.TB, k *testenv.Kube, c config.Webhook, ns string) (stop func(), reg *prometheus.Registry) {
	t.Helper()
	meta, err := metadata.NewForConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	lookups, err := metadata.NewForConfig(OwnerLookupConfig(k.Config))
	if err != nil {
		t.Fatal(err)
	}
	return startWebhookWith(t, k, c, ns, meta, lookups)
}

// startWebhookWith is startWebhook with the informers' metadata client
// meta and the owner lookups'.
func startWebhookWith(t testing.TB, k *testenv.Kube, c config.Webhook, ns string, meta, lookups metadata.Interface) (stop func(), reg *prometheus.Registry) {
	t.Helper()
	if c.RefreshInterval == 0 {
		c.RefreshInterval = config.Default().Webhook.RefreshInterval
	}
	reg = prometheus.NewRegistry()
	var ready atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Config: c, Namespace: ns, Host: "127.0.0.1", Kube: k.Clientset, Metadata: meta, Lookups: lookups, Registry: reg,
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			SetReady: ready.Store,
		})
	}()
	var once atomic.Bool
	stop = func() {
		if once.Swap(true) {
			return
		}
		cancel()
		select {
		case err := <-done:
			if err != nil && err != context.Canceled {
				t.Errorf("webhook Run: %v", err)
			}
		case <-time.After(70 * time.Second):
			t.Errorf("webhook Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(30 * time.Second)
	for !ready.Load() || testutil.ToFloat64(mustCounter(reg, "upid_webhook_recommendations_refresh_total", "success")) == 0 {
		select {
		case err := <-done:
			t.Fatalf("webhook Run returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("webhook not ready within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return stop, reg
}

// mustCounter finds one series of a counter in reg by its only label value.
func mustCounter(reg *prometheus.Registry, name, labelValue string) prometheus.Collector {
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.Metric {
				for _, l := range m.Label {
					if l.GetValue() == labelValue {
						ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, "x", nil, nil), prometheus.CounterValue, m.GetCounter().GetValue())
						return
					}
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, "x", nil, nil), prometheus.CounterValue, 0)
	})
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func createNamespace(t testing.TB, k *testenv.Kube, name string, labels map[string]string) {
	t.Helper()
	if _, err := k.Clientset.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func deployment(ns, name string, annotations map[string]string, req, lim corev1.ResourceList) *appsv1.Deployment {
	one := int32(1)
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "registry.invalid/app",
					Resources: corev1.ResourceRequirements{Requests: req, Limits: lim},
				}}},
			},
		},
	}
}

// idleDeployment creates Deployment name in ns at zero replicas: the
// workload of the pods a test creates itself, as of a Deployment that has
// run a while. Made before the webhook starts, it is in the cache's first
// list; otherwise the webhook reads the pods' ReplicaSet, which does not
// exist, and admits them unchanged (workload_unknown).
func idleDeployment(t testing.TB, k *testenv.Kube, ns, name string) {
	t.Helper()
	d := deployment(ns, name, nil, nil, nil)
	zero := int32(0)
	d.Spec.Replicas = &zero
	if _, err := k.Clientset.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// podOf creates d and waits for the pod its ReplicaSet creates.
func podOf(t testing.TB, k *testenv.Kube, d *appsv1.Deployment) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	if _, err := k.Clientset.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return waitPod(t, k, d.Namespace, d.Name)
}

// podOfReplicaSet creates rs and waits for the pod the ReplicaSet
// controller creates for it.
func podOfReplicaSet(t testing.TB, k *testenv.Kube, rs *appsv1.ReplicaSet) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	if _, err := k.Clientset.AppsV1().ReplicaSets(rs.Namespace).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return waitPod(t, k, rs.Namespace, rs.Spec.Template.Labels["app"])
}

// waitEvent waits for an Event in ns matching the field selector.
func waitEvent(t testing.TB, k *testenv.Kube, ns, selector string) corev1.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs, err := k.Clientset.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: selector})
		if err == nil && len(evs.Items) > 0 {
			return evs.Items[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Event %s in %s within 20s (err %v)", selector, ns, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPod waits for a pod labelled app=app in ns.
func waitPod(t testing.TB, k *testenv.Kube, ns, app string) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		pods, err := k.Clientset.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
		if err == nil && len(pods.Items) > 0 {
			return &pods.Items[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pod app=%s in %s within 40s (err %v)", app, ns, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func requestsOf(p *corev1.Pod) string { return resourcesString(p.Spec.Containers[0].Resources) }

func resourcesString(r corev1.ResourceRequirements) string {
	var parts []string
	for _, l := range []struct {
		name string
		list corev1.ResourceList
	}{{"req", r.Requests}, {"lim", r.Limits}} {
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := l.list[res]; ok {
				parts = append(parts, fmt.Sprintf("%s.%s=%s", l.name, res, q.String()))
			}
		}
	}
	return strings.Join(parts, " ")
}

// TestThroughAPIServer registers the webhook with a real kube-apiserver and
// checks what Deployments' pods look like in each mode, with a LimitRange,
// an opt-out, and with the webhook stopped.
func TestThroughAPIServer(t *testing.T) {
	k := testenv.StartKube(t, testenv.KubeOptions{ControllerManager: true})
	const mib = 1 << 20
	createNamespace(t, k, "team-enforce", map[string]string{AnnotationMode: ModeEnforce})
	createNamespace(t, k, "team-recommend", map[string]string{AnnotationMode: ModeRecommend})
	createNamespace(t, k, "team-default", nil)
	createNamespace(t, k, "team-limited", map[string]string{AnnotationMode: ModeEnforce})
	createNamespace(t, k, "upid-system", map[string]string{AnnotationMode: ModeEnforce})
	createNamespace(t, k, "team-podrange", map[string]string{AnnotationMode: ModeEnforce})
	createNamespace(t, k, "team-quota", map[string]string{AnnotationMode: ModeEnforce})
	// The quota admits the pod's 100m, not the 250m UPID would set.
	if _, err := k.Clientset.CoreV1().ResourceQuotas("team-quota").Create(context.Background(), &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "cpu"},
		Spec:       corev1.ResourceQuotaSpec{Hard: rl("requests.cpu", "200m")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A Pod item bounds the pod's sums: 250m would take it under 600m.
	if _, err := k.Clientset.CoreV1().LimitRanges("team-podrange").Create(context.Background(), &corev1.LimitRange{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-floor"},
		Spec:       corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypePod, Min: rl("cpu", "600m")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Clientset.CoreV1().LimitRanges("team-limited").Create(context.Background(), &corev1.LimitRange{
		ObjectMeta: metav1.ObjectMeta{Name: "floor"},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type: corev1.LimitTypeContainer, Min: rl("cpu", "300m", "memory", "200Mi"), Max: rl("cpu", "4", "memory", "4Gi"),
		}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var recs []exporter.WorkloadResult
	podRecs := workloadResult("team-enforce", "Deployment", "podsized", 0.25, 128*mib, 100*mib, 1)
	podRecs.Pod = []exporter.PodAdvice{{Resource: "cpu", Request: 0.35, Confidence: 1}, {Resource: "memory", Request: 300 * mib, Confidence: 1}}
	recs = append(recs, podRecs)
	for _, ns := range []string{"team-enforce", "team-recommend", "team-default", "team-limited", "upid-system", "team-podrange", "team-quota"} {
		for _, name := range []string{"web", "optout", "annotated", "stopped", "podcpu", "podboth"} {
			recs = append(recs, workloadResult(ns, "Deployment", name, 0.25, 128*mib, 100*mib, 1))
		}
		recs = append(recs, workloadResult(ns, "Deployment", "unsure", 0.25, 128*mib, 100*mib, 0.2))
	}
	recs = append(recs, workloadResult("team-enforce", "Rollout", "canary", 0.25, 128*mib, 100*mib, 1),
		workloadResult("team-enforce", "Rollout", "quiet", 0.25, 128*mib, 100*mib, 1),
		workloadResult("team-enforce", "Rollout", "late", 0.25, 128*mib, 100*mib, 1))
	// Rollout "late" opted out after its stable revision was made: Argo
	// copied the annotation to the latest revision's ReplicaSet (revision
	// 2, at zero replicas here) only. Made before the webhook starts, so
	// its caches hold it.
	late := k.CreateRollout(context.Background(), t, "team-enforce", "late", nil)
	zero := int32(0)
	lateLabels := map[string]string{"app": "late", "rollouts-pod-template-hash": "bbbb"}
	if _, err := k.Clientset.AppsV1().ReplicaSets("team-enforce").Create(context.Background(), &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "late-bbbb", Labels: lateLabels, OwnerReferences: []metav1.OwnerReference{testenv.RolloutOwner(late)},
			Annotations: map[string]string{"rollout.argoproj.io/revision": "2", AnnotationOptOut: "disabled"}},
		Spec: appsv1.ReplicaSetSpec{Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: lateLabels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lateLabels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app"}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	url := recsServer(t, recs...)
	cert := testenv.NewServingCert(t)
	port := testenv.FreePort(t)
	waitQuotaUsed(t, k, "team-quota", "cpu")
	stop, reg := startWebhook(t, k, testConfig(port, cert.Dir, url), "upid-system")
	k.RegisterMutatingWebhook(t, testenv.MutatingWebhookSpec{
		Name: "pods.webhook.upid.io", URL: fmt.Sprintf("https://127.0.0.1:%d%s", port, Path), CAPEM: cert.CAPEM,
	})

	req := rl("cpu", "1", "memory", "1Gi")
	lim := rl("cpu", "2", "memory", "2Gi")
	const unchanged = "req.cpu=1 req.memory=1Gi lim.cpu=2 lim.memory=2Gi"
	// Pod-level resources (spec.resources): the API server rejects a pod
	// whose containers request more than the pod does, as 250m would here.
	podCPU := func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "1Gi")}
		d.Spec.Template.Spec.Resources = &corev1.ResourceRequirements{Requests: rl("cpu", "200m")}
	}
	podCPUOnly := func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "1Gi")}
	}
	// Pod-level resources only: UPID sizes the pod's requests.
	podSized := func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
		d.Spec.Template.Spec.Resources = &corev1.ResourceRequirements{Requests: rl("cpu", "2"), Limits: rl("memory", "4Gi")}
	}
	podBoth := func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Resources = &corev1.ResourceRequirements{Requests: rl("cpu", "1", "memory", "1Gi"), Limits: rl("cpu", "2", "memory", "2Gi")}
	}
	tests := []struct {
		ns, name    string
		annotations map[string]string
		want        string
		wantMode    string // the upid.io/webhook-mode annotation, "" for none
		edit        func(*appsv1.Deployment)
		wantPod     string // the pod-level resources, when UPID sizes them
	}{
		{"team-enforce", "web", nil, "req.cpu=250m req.memory=128Mi lim.cpu=500m lim.memory=256Mi", ModeEnforce, nil, ""},
		{"team-recommend", "web", nil, unchanged, ModeRecommend, nil, ""},
		{"team-default", "web", nil, unchanged, "", nil, ""},
		{"team-default", "annotated", map[string]string{AnnotationMode: ModeEnforce}, "req.cpu=250m req.memory=128Mi lim.cpu=500m lim.memory=256Mi", ModeEnforce, nil, ""},
		{"team-enforce", "annotated", map[string]string{AnnotationMode: ModeOff}, unchanged, "", nil, ""},
		{"team-enforce", "optout", map[string]string{AnnotationOptOut: "disabled"}, unchanged, "", nil, ""},
		{"team-enforce", "unsure", nil, unchanged, "", nil, ""},
		{"team-limited", "web", nil, "req.cpu=300m req.memory=200Mi lim.cpu=600m lim.memory=400Mi", ModeEnforce, nil, ""},
		{"upid-system", "web", nil, unchanged, "", nil, ""},
		{"team-enforce", "podcpu", nil, "req.cpu=100m req.memory=128Mi", ModeEnforce, podCPU, ""},
		{"team-enforce", "podboth", nil, unchanged, "", podBoth, ""},
		{"team-podrange", "web", nil, unchanged, "", nil, ""},
		{"team-quota", "web", nil, "req.cpu=100m req.memory=1Gi", "", podCPUOnly, ""},
		{"team-enforce", "podsized", nil, "", ModeEnforce, podSized, "req.cpu=350m req.memory=300Mi lim.memory=4Gi"},
	}
	for _, tt := range tests {
		t.Run(tt.ns+"/"+tt.name, func(t *testing.T) {
			d := deployment(tt.ns, tt.name, tt.annotations, req, lim)
			if tt.edit != nil {
				tt.edit(d)
			}
			pod := podOf(t, k, d)
			if got := requestsOf(pod); got != tt.want {
				t.Errorf("resources %s, want %s", got, tt.want)
			}
			if got := pod.Annotations[AnnotationMode]; got != tt.wantMode {
				t.Errorf("%s = %q, want %q", AnnotationMode, got, tt.wantMode)
			}
			if tt.wantPod != "" {
				if pod.Spec.Resources == nil || resourcesString(*pod.Spec.Resources) != tt.wantPod {
					t.Errorf("pod-level resources %+v, want %s", pod.Spec.Resources, tt.wantPod)
				}
				if pod.Annotations[AnnotationOriginalPod] != `{"requests":{"cpu":"2"},"limits":{"memory":"4Gi"}}` || pod.Annotations[AnnotationRecommendedPod] == "" {
					t.Errorf("pod-level annotations %q, %q", pod.Annotations[AnnotationOriginalPod], pod.Annotations[AnnotationRecommendedPod])
				}
			} else if tt.wantMode != "" {
				var orig, rec map[string]Resources
				if err := json.Unmarshal([]byte(pod.Annotations[AnnotationOriginal]), &orig); err != nil || orig["app"].Requests["cpu"] != d.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().String() {
					t.Errorf("%s = %q (%v)", AnnotationOriginal, pod.Annotations[AnnotationOriginal], err)
				}
				if err := json.Unmarshal([]byte(pod.Annotations[AnnotationRecommended]), &rec); err != nil || rec["app"].Requests["cpu"] == "" {
					t.Errorf("%s = %q (%v)", AnnotationRecommended, pod.Annotations[AnnotationRecommended], err)
				}
			}
		})
	}
	// An Argo Rollout's pods (of a ReplicaSet it owns, labelled with its
	// hash) get the Rollout's recommendations; Argo copies the Rollout's
	// annotations to its ReplicaSets, so an opt-out there holds.
	for _, tt := range []struct {
		rollout, hash string
		annotations   map[string]string
		want          string
	}{
		{"canary", "6d7f9", nil, "req.cpu=250m req.memory=128Mi lim.cpu=500m lim.memory=256Mi"},
		{"quiet", "5c4b3", map[string]string{AnnotationOptOut: "disabled"}, unchanged},
		// The stable revision's pod: its own ReplicaSet says nothing, the
		// latest revision's opts the Rollout out.
		{"late", "aaaa", map[string]string{"rollout.argoproj.io/revision": "1"}, unchanged},
	} {
		t.Run("rollout/"+tt.rollout, func(t *testing.T) {
			r := late
			if tt.rollout != "late" {
				r = k.CreateRollout(context.Background(), t, "team-enforce", tt.rollout, nil)
			}
			d := deployment("team-enforce", tt.rollout, nil, req, lim)
			labels := map[string]string{"app": tt.rollout, "rollouts-pod-template-hash": tt.hash}
			d.Spec.Template.Labels = labels
			one := int32(1)
			rs := &appsv1.ReplicaSet{
				ObjectMeta: metav1.ObjectMeta{Name: tt.rollout + "-" + tt.hash, Namespace: "team-enforce", Labels: labels, Annotations: tt.annotations,
					OwnerReferences: []metav1.OwnerReference{testenv.RolloutOwner(r)}},
				Spec: appsv1.ReplicaSetSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: d.Spec.Template},
			}
			if got := requestsOf(podOfReplicaSet(t, k, rs)); got != tt.want {
				t.Errorf("resources %s, want %s", got, tt.want)
			}
			if tt.rollout == "canary" {
				// Recorded on the Rollout, which the webhook does not
				// watch: the ReplicaSet's owner reference names it.
				ev := waitEvent(t, k, "team-enforce", "involvedObject.kind=Rollout,involvedObject.name=canary,reason=UPIDRightsized")
				if ev.InvolvedObject.UID != r.GetUID() || ev.InvolvedObject.APIVersion != argorollouts.APIVersion {
					t.Errorf("Event on %+v, want the Rollout %s", ev.InvolvedObject, r.GetUID())
				}
			}
		})
	}

	for _, c := range []struct {
		outcome, reason string
		want            float64
	}{
		{OutcomeMutated, ModeEnforce, 6},
		{OutcomeSkipped, "pod_level_resources", 1},
		{OutcomeSkipped, "limit_range", 1},
		{OutcomeSkipped, "resource_quota", 1},
		{OutcomeRecommended, ModeRecommend, 1},
		{OutcomeSkipped, "mode_off", 2},
		{OutcomeSkipped, "opted_out", 3},
		{OutcomeSkipped, "low_confidence", 1},
		{OutcomeSkipped, "protected_namespace", 1},
	} {
		mfs, _ := reg.Gather()
		got := counterValue(mfs, "upid_webhook_decisions_total", map[string]string{"outcome": c.outcome, "reason": c.reason})
		if got != c.want {
			t.Errorf("decisions{outcome=%s,reason=%s} = %g, want %g", c.outcome, c.reason, got, c.want)
		}
	}

	t.Run("stopped webhook fails open", func(t *testing.T) {
		stop()
		began := time.Now()
		pod := podOf(t, k, deployment("team-enforce", "stopped", nil, req, lim))
		if took := time.Since(began); took > 10*time.Second {
			t.Errorf("pod took %s to appear with the webhook stopped", took)
		}
		if got := requestsOf(pod); got != unchanged {
			t.Errorf("resources %s, want unchanged %s", got, unchanged)
		}
	})
}

// waitQuotaUsed waits for the quota controller to count the namespace's
// usage: until then the quota admission rejects every pod.
func waitQuotaUsed(t testing.TB, k *testenv.Kube, ns, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		q, err := k.Clientset.CoreV1().ResourceQuotas(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && len(q.Status.Used) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("quota %s/%s has no usage after 30s (err %v)", ns, name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func modelDuration(d time.Duration) model.Duration { return model.Duration(d) }

// startWithInjector serves recs through UPID's webhook, then registers
// injector(raisePod), which sorts after it and so runs after it.
func startWithInjector(t *testing.T, k *testenv.Kube, recs []exporter.WorkloadResult, raisePod bool) {
	t.Helper()
	cert := testenv.NewServingCert(t)
	port := testenv.FreePort(t)
	startWebhook(t, k, testConfig(port, cert.Dir, recsServer(t, recs...)), "upid-system")
	k.RegisterMutatingWebhook(t, testenv.MutatingWebhookSpec{Name: "pods.webhook.upid.io", URL: fmt.Sprintf("https://127.0.0.1:%d%s", port, Path), CAPEM: cert.CAPEM})
	icert := testenv.NewServingCert(t)
	k.RegisterMutatingWebhook(t, testenv.MutatingWebhookSpec{Name: "zz-injector.webhook.example.io", URL: testenv.ServeTLS(t, icert, injector(raisePod)) + "/inject", CAPEM: icert.CAPEM})
}

// injector is a sidecar injector's webhook: it adds a container once, of
// 200m. A pod that requests CPU at pod level gets a 30m one and, with
// raisePod, the pod's request grows by as much, as an injector must do
// for the API server to admit a pod whose request has no room for it (its
// containers may not request more than it does). Without raisePod it
// leaves the pod's request alone, which is valid while that has room.
func injector(raisePod bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { inject(w, r, raisePod) }
}

func inject(w http.ResponseWriter, r *http.Request, raisePod bool) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var pod corev1.Pod
	_ = json.Unmarshal(review.Request.Object.Raw, &pod)
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	injected := false
	for _, c := range pod.Spec.Containers {
		injected = injected || c.Name == "injected"
	}
	if !injected {
		cpu := resource.MustParse("200m")
		ops := []map[string]any{}
		if pr := pod.Spec.Resources; pr != nil {
			if q, ok := pr.Requests[corev1.ResourceCPU]; ok {
				cpu = resource.MustParse("30m")
				q.Add(cpu)
				if raisePod {
					ops = append(ops, map[string]any{"op": "add", "path": "/spec/resources/requests/cpu", "value": q.String()})
				}
			}
		}
		ops = append(ops, map[string]any{"op": "add", "path": "/spec/containers/-", "value": corev1.Container{
			Name: "injected", Image: "registry.invalid/agent", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: resource.MustParse("64Mi")}}}})
		patch, _ := json.Marshal(ops)
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
}

// TestSidecarInjectedAfterUPIDUnderQuota: a sidecar injector whose
// configuration sorts after UPID's adds a container once UPID has raised
// the pod; the reinvocation finds the raise no longer fits the quota and
// takes it back, so the pod is admitted as it would be without UPID (found
// in review: the quota admission rejected it). The same holds for a raise
// of the pod-level request, which the injector raises further (found in
// review: only the containers' raises were taken back). Each pod is also
// created where UPID is off, which admits it.
func TestSidecarInjectedAfterUPIDUnderQuota(t *testing.T) {
	k := testenv.StartKube(t, testenv.KubeOptions{ControllerManager: true})
	ctx := context.Background()
	tests := []struct {
		ns       string
		quotaCPU string
		podLevel *corev1.ResourceRequirements
		// want is app's CPU request, or with pod-level resources the pod's.
		want    string
		records []string
	}{
		// 400m does not fit beside the 200m sidecar under 500m.
		{"t-inject", "500m", nil, "100m", []string{AnnotationOriginal, AnnotationRecommended}},
		// UPID sets the pod's 400m, the injector adds 30m: 430m does not
		// fit under 420m; without UPID the pod requests 230m.
		{"t-inject-pod", "420m", &corev1.ResourceRequirements{Requests: rl("cpu", "200m"), Limits: rl("cpu", "2")}, "230m",
			[]string{AnnotationOriginalPod, AnnotationRecommendedPod}},
	}
	var recs []exporter.WorkloadResult
	for _, tc := range tests {
		for ns, mode := range map[string]string{tc.ns: ModeEnforce, tc.ns + "-off": ModeOff} {
			createNamespace(t, k, ns, map[string]string{AnnotationMode: mode})
			if _, err := k.Clientset.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "cpu"},
				Spec: corev1.ResourceQuotaSpec{Hard: rl("requests.cpu", tc.quotaCPU)}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			waitQuotaUsed(t, k, ns, "cpu")
			idleDeployment(t, k, ns, "web")
			r := workloadResult(ns, "Deployment", "web", 0.4, 128<<20, 100<<20, 1)
			r.Pod = []exporter.PodAdvice{{Resource: "cpu", Request: 0.4, Confidence: 1}}
			recs = append(recs, r)
		}
	}
	startWithInjector(t, k, recs, true)

	yes := true
	for _, tc := range tests {
		for _, ns := range []string{tc.ns + "-off", tc.ns} {
			t.Run(ns, func(t *testing.T) {
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{GenerateName: "web-abc-", Labels: map[string]string{"pod-template-hash": "abc"},
						OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-abc", UID: "0c6b3c3e-1111-4f1e-9c55-000000000001", Controller: &yes}}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{container("app", rl("cpu", "100m", "memory", "128Mi"), nil)}, Resources: tc.podLevel},
				}
				got, err := k.Clientset.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
				if err != nil {
					if strings.Contains(err.Error(), "exceeded quota") {
						t.Fatalf("pod rejected after UPID's change: %v", err)
					}
					t.Fatal(err)
				}
				if len(got.Spec.Containers) != 2 {
					t.Fatalf("containers %v, want app and the injected one", got.Spec.Containers)
				}
				cpu := got.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]
				if tc.podLevel != nil {
					cpu = got.Spec.Resources.Requests[corev1.ResourceCPU]
				}
				if cpu.String() != tc.want {
					t.Errorf("cpu request %s, want %s, as without UPID", cpu.String(), tc.want)
				}
				for _, a := range tc.records {
					if v, ok := got.Annotations[a]; ok {
						t.Errorf("%s = %s on a pod UPID left as it was", a, v)
					}
				}
			})
		}
	}
}

// TestControllerFromCache reads a Job's controller from the informer cache
// on a real API server: a Job made by hand has none, a CronJob's names it,
// and a Job the cache has not got is unknown.
func TestControllerFromCache(t *testing.T) {
	k := testenv.StartKube(t, testenv.KubeOptions{})
	ctx := context.Background()
	createNamespace(t, k, "jobs", nil)
	yes := true
	spec := batchv1.JobSpec{Suspend: &yes, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app"}}}}}
	cj, err := k.Clientset.BatchV1().CronJobs("jobs").Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "report"},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", Suspend: &yes, JobTemplate: batchv1.JobTemplateSpec{Spec: spec}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []batchv1.Job{
		{ObjectMeta: metav1.ObjectMeta{Name: "report-1"}, Spec: spec},
		{ObjectMeta: metav1.ObjectMeta{Name: "report-29000000", OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob",
			Name: "report", UID: cj.UID, Controller: &yes}}}, Spec: spec},
	} {
		if _, err := k.Clientset.BatchV1().Jobs("jobs").Create(ctx, &j, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	meta, err := metadata.NewForConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	c := NewInformerCluster(k.Clientset, meta, 0)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	for _, tc := range []struct {
		job    string
		want   Workload
		cached bool
	}{
		{"report-1", Workload{}, true},
		{"report-29000000", Workload{"CronJob", "report"}, true},
		{"report-2", Workload{}, false},
	} {
		m := c.Object("jobs", Workload{"Job", tc.job})
		var got Workload
		if m != nil {
			if r := metav1.GetControllerOf(m); r != nil {
				got = Workload{r.Kind, r.Name}
			}
		}
		if got != tc.want || (m != nil) != tc.cached {
			t.Errorf("Object(Job %s) = %v, controlled by %v; want cached %v, controlled by %v", tc.job, m, got, tc.cached, tc.want)
		}
	}
}

// TestEventsOnTheWorkload: what the webhook sets in a pod is recorded as
// an Event of its Deployment, where kubectl describe shows it; identical
// ones add up on one Event, and a dry-run admission records none.
func TestEventsOnTheWorkload(t *testing.T) {
	k := testenv.StartKube(t, testenv.KubeOptions{})
	ctx := context.Background()
	const ns = "t-events"
	createNamespace(t, k, ns, map[string]string{AnnotationMode: ModeEnforce})
	labels := map[string]string{"app": "web"}
	d, err := k.Clientset.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app"}}}}}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cert := testenv.NewServingCert(t)
	port := testenv.FreePort(t)
	startWebhook(t, k, testConfig(port, cert.Dir, recsServer(t, workloadResult(ns, "Deployment", "web", 0.25, 128<<20, 100<<20, 1))), "upid-system")
	k.RegisterMutatingWebhook(t, testenv.MutatingWebhookSpec{Name: "pods.webhook.upid.io", URL: fmt.Sprintf("https://127.0.0.1:%d%s", port, Path), CAPEM: cert.CAPEM})
	yes := true
	create := func(dryRun bool) {
		t.Helper()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "web-abc-", Labels: map[string]string{"app": "web", "pod-template-hash": "abc"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-abc", UID: "0c6b3c3e-1111-4f1e-9c55-000000000002", Controller: &yes}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)}},
		}
		opts := metav1.CreateOptions{}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		got, err := k.Clientset.CoreV1().Pods(ns).Create(ctx, pod, opts)
		if err != nil {
			t.Fatal(err)
		}
		if cpu := got.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; cpu.String() != "250m" {
			t.Fatalf("pod requests cpu %s, want 250m from the webhook", cpu.String())
		}
	}
	// count waits for the Deployment's UPIDRightsized Event to reach want.
	count := func(want int32) corev1.Event {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			evs, err := k.Clientset.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Deployment,involvedObject.name=web,reason=UPIDRightsized"})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs.Items) == 1 && evs.Items[0].Count >= want {
				return evs.Items[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("Events of the Deployment: %+v, want one UPIDRightsized counted %d times", evs.Items, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	create(false)
	ev := count(1)
	if ev.InvolvedObject.UID != d.UID || ev.Type != corev1.EventTypeNormal || !strings.Contains(ev.Message, "app: requests cpu 250m, memory 128Mi") || !strings.Contains(ev.Message, "(was requests cpu 1, memory 1Gi)") {
		t.Errorf("Event %s %s on %+v: %q", ev.Type, ev.Reason, ev.InvolvedObject, ev.Message)
	}
	create(true)
	create(false)
	count(2)
	time.Sleep(time.Second) // what a dry run would have added had time to arrive
	if ev := count(2); ev.Count != 2 {
		t.Errorf("the Event counts %d admissions, want the 2 that were not dry runs", ev.Count)
	}
}

// TestEventsOfUncachedWorkloadsThroughAPIServer: a Deployment or CronJob
// created an instant before its first pod, which the cache (here one that
// holds nothing) does not have at admission, is read at admission from a
// real API server through the pod's ReplicaSet or Job: its opt-out holds
// (a CronJob's is its own, not copied to its Jobs), and the Event of what
// the webhook set lands on it, with its UID, as kubectl describe searches
// for it, through the recording and reads that Run sets up.
func TestEventsOfUncachedWorkloadsThroughAPIServer(t *testing.T) {
	k := testenv.StartKube(t, testenv.KubeOptions{})
	ctx := context.Background()
	const ns = "t-uncached"
	createNamespace(t, k, ns, nil)
	yes := true
	podSpec := corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app"}}}
	jobPodSpec := *podSpec.DeepCopy()
	jobPodSpec.RestartPolicy = corev1.RestartPolicyNever
	labels := map[string]string{"app": "web"}
	d, err := k.Clientset.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec}}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	zero := int32(0)
	rsLabels := map[string]string{"app": "web", "pod-template-hash": "abc"}
	rs, err := k.Clientset.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-abc", Labels: rsLabels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &yes}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: rsLabels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: rsLabels}, Spec: podSpec}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// cronJob makes a CronJob and the Job it would make.
	cronJob := func(name string, annotations map[string]string) (*batchv1.CronJob, *batchv1.Job) {
		cj, err := k.Clientset.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
			Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", Suspend: &yes, JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Suspend: &yes,
				Template: corev1.PodTemplateSpec{Spec: jobPodSpec}}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		job, err := k.Clientset.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name + "-29000000",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID, Controller: &yes}}},
			Spec: batchv1.JobSpec{Suspend: &yes, Template: corev1.PodTemplateSpec{Spec: jobPodSpec}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cj, job
	}
	cj, job := cronJob("report", nil)
	quiet, quietJob := cronJob("quiet", map[string]string{AnnotationOptOut: optOutValue})
	meta, err := metadata.NewForConfig(OwnerLookupConfig(k.Config))
	if err != nil {
		t.Fatal(err)
	}
	target := &WorkloadRecs{Containers: map[string]Target{"app": {CPURequest: f(0.25), MemoryRequest: f(128 * mi)}}}
	// Run's recording and reads, with a cache that holds nothing.
	opts, stopEvents := withAPIServer(HandlerOptions{
		DefaultMode: ModeEnforce, Policy: defaultPolicy,
		Recommendations: staticRecs{key(ns, "Deployment", "web"): target, key(ns, "CronJob", "report"): target, key(ns, "CronJob", "quiet"): target},
		Cluster:         &staticCluster{},
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, k.Clientset, meta)
	defer stopEvents()
	h, err := NewHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		workload krt.Object
		uid      types.UID
		owner    metav1.OwnerReference
		labels   map[string]string
		cpu      string // the pod's CPU request once admitted
		reason   string
	}{
		{"deployment", d, d.UID, metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}, rsLabels, "250m", ModeEnforce},
		{"cronjob", cj, cj.UID, metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID, Controller: &yes}, nil, "250m", ModeEnforce},
		{"cronjob opted out", quiet, quiet.UID, metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: quietJob.Name, UID: quietJob.UID, Controller: &yes}, nil, "1", "opted_out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: tc.owner.Name + "-", Labels: tc.labels, OwnerReferences: []metav1.OwnerReference{tc.owner}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)}}}
			outcome := OutcomeMutated
			if tc.reason != ModeEnforce {
				outcome = OutcomeSkipped
			}
			before := testutil.ToFloat64(h.decisions.WithLabelValues(outcome, tc.reason))
			got := reviewAndApplyIn(t, h, ns, pod)
			if cpu := got.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; cpu.String() != tc.cpu {
				t.Errorf("cpu request %s, want %s", cpu.String(), tc.cpu)
			}
			if n := testutil.ToFloat64(h.decisions.WithLabelValues(outcome, tc.reason)) - before; n != 1 {
				t.Errorf("decisions{%s,%s} grew by %g, want 1", outcome, tc.reason, n)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				// kubectl describe's search: name, namespace, kind and UID.
				evs, err := k.Clientset.CoreV1().Events(ns).Search(scheme.Scheme, tc.workload)
				if err != nil {
					t.Fatal(err)
				}
				if tc.reason == "opted_out" {
					if len(evs.Items) != 0 {
						t.Errorf("Events of a workload that opted out: %+v", evs.Items)
					}
					break
				}
				if len(evs.Items) == 1 {
					ev := evs.Items[0]
					if ev.InvolvedObject.UID != tc.uid || ev.Reason != "UPIDRightsized" || !strings.Contains(ev.Message, "app: requests cpu 250m, memory 128Mi") {
						t.Errorf("Event %s on %+v: %q", ev.Reason, ev.InvolvedObject, ev.Message)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Events kubectl describe finds: %+v, want one UPIDRightsized", evs.Items)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	// Each read the Job or ReplicaSet, then its workload.
	if n := testutil.ToFloat64(h.owners.results.WithLabelValues("found")); n != 3 {
		t.Errorf("lookups found %g, want 3", n)
	}
	if n := readCount(h); n != 6 {
		t.Errorf("%d reads from the API server, want 6", n)
	}
}
