package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/upid-dev/upid/internal/config"
)

// staticCluster and staticRecs stand in for the informer caches and the
// exporter in unit tests of the handler's decisions; the real ones are
// exercised through a real apiserver in kube_test.go.
type staticCluster struct {
	ns  map[string]map[string]string
	wl  map[string]map[string]string
	lrs map[string][]*corev1.LimitRange
	// constraints, when set for a namespace, replace lrs.
	constraints map[string]Constraints
	// owners are the controllers of workloads (ns/kind/name), as the
	// cache has them; a workload in wl without one has none.
	owners map[string]Workload
	panics bool
}

// NamespaceLabels: without ns every namespace exists, without labels.
func (c *staticCluster) NamespaceLabels(ns string) (map[string]string, bool) {
	if c.panics {
		panic("boom")
	}
	if c.ns == nil {
		return nil, true
	}
	l, ok := c.ns[ns]
	return l, ok
}
func (c *staticCluster) WorkloadAnnotations(ns string, w Workload) map[string]string {
	return c.wl[ns+"/"+w.Kind+"/"+w.Name]
}
func (c *staticCluster) Object(ns string, w Workload) metav1.Object {
	k := ns + "/" + w.Kind + "/" + w.Name
	a, ok := c.wl[k]
	if !ok {
		return nil
	}
	m := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: w.Name, UID: types.UID("uid-" + w.Name), Annotations: a}}
	if o := c.owners[k]; o != (Workload{}) {
		yes := true
		m.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: o.Kind, Name: o.Name, UID: types.UID("uid-" + o.Name), Controller: &yes}}
	}
	return m
}
func (c *staticCluster) Reference(ns string, w Workload) *corev1.ObjectReference {
	if _, ok := c.wl[ns+"/"+w.Kind+"/"+w.Name]; !ok {
		return nil
	}
	return &corev1.ObjectReference{APIVersion: "apps/v1", Kind: w.Kind, Namespace: ns, Name: w.Name, UID: types.UID("uid-" + w.Name)}
}
func (c *staticCluster) Constraints(ns string) Constraints {
	if cs, ok := c.constraints[ns]; ok {
		return cs
	}
	return Constraints{LimitRanges: c.lrs[ns]}
}

type staticRecs map[string]*WorkloadRecs

func (r staticRecs) Lookup(ns string, cands []Workload) (*WorkloadRecs, Workload, string) {
	for _, c := range cands {
		if w, ok := r[key(ns, c.Kind, c.Name)]; ok {
			return w, c, ""
		}
	}
	return nil, Workload{}, "no_recommendation"
}

func newTestHandler(t testing.TB, mode string, cluster Cluster) *Handler {
	t.Helper()
	h, err := NewHandler(HandlerOptions{
		DefaultMode: mode, Policy: defaultPolicy, OwnNamespace: "upid-system", MaxRequestBytes: 64 << 10,
		Recommendations: staticRecs{
			key("team", "Deployment", "web"): {Containers: map[string]Target{"app": {CPURequest: f(0.25), MemoryRequest: f(128 * mi)}}},
			key("team", "StatefulSet", "db"): {Containers: map[string]Target{"app": {CPURequest: f(0.25), MemoryRequest: f(128 * mi)}}},
		},
		Cluster: cluster,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func webPod(annotations map[string]string) *corev1.Pod {
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "web-abc-", Labels: map[string]string{"pod-template-hash": "abc"}, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-abc", Controller: &yes}},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)}},
	}
}

func reviewBody(t testing.TB, ns string, op admissionv1.Operation, kind metav1.GroupVersionKind, obj any) []byte {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "uid-1", Kind: kind, Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: ns, Operation: op, Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var podKind = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}

func TestHandlerDecisions(t *testing.T) {
	cluster := &staticCluster{
		ns: map[string]map[string]string{"quiet": {AnnotationOptOut: "disabled"}, "team": {}},
		wl: map[string]map[string]string{"team/Deployment/web": {}},
	}
	tests := []struct {
		name          string
		mode          string
		ns            string
		op            admissionv1.Operation
		kind          metav1.GroupVersionKind
		obj           any
		cluster       Cluster
		outcome       string
		reason        string
		wantPatchPath string // one path the patch must hold; "" for no patch
	}{
		{"enforce", ModeEnforce, "team", admissionv1.Create, podKind, webPod(nil), cluster, OutcomeMutated, ModeEnforce, "/spec/containers/0/resources/requests/cpu"},
		{"recommend", ModeRecommend, "team", admissionv1.Create, podKind, webPod(nil), cluster, OutcomeRecommended, ModeRecommend, "/metadata/annotations"},
		{"off", ModeOff, "team", admissionv1.Create, podKind, webPod(nil), cluster, OutcomeSkipped, "mode_off", ""},
		{"pod annotation overrides", ModeOff, "team", admissionv1.Create, podKind, webPod(map[string]string{AnnotationMode: ModeEnforce}), cluster, OutcomeMutated, ModeEnforce, "/spec/containers/0/resources/requests/cpu"},
		{"pod opt-out", ModeEnforce, "team", admissionv1.Create, podKind, webPod(map[string]string{AnnotationOptOut: "disabled"}), cluster, OutcomeSkipped, "opted_out", ""},
		{"namespace opt-out", ModeEnforce, "quiet", admissionv1.Create, podKind, webPod(nil), cluster, OutcomeSkipped, "opted_out", ""},
		// Created an instant ago: its labels, an opt-out maybe, are not cached yet.
		{"namespace not cached", ModeEnforce, "brand-new", admissionv1.Create, podKind, webPod(nil), cluster, OutcomeSkipped, "namespace_unknown", ""},
		// The same for a workload not cached, which a handler without
		// GetWorkload cannot read.
		{"workload not cached", ModeEnforce, "team", admissionv1.Create, podKind, webPod(nil), &staticCluster{}, OutcomeSkipped, "workload_unknown", ""},
		{"kube-system", ModeEnforce, "kube-system", admissionv1.Create, podKind, webPod(nil), cluster, OutcomeSkipped, "protected_namespace", ""},
		{"kube-node-lease", ModeEnforce, "kube-node-lease", admissionv1.Create, podKind, webPod(nil), cluster, OutcomeSkipped, "protected_namespace", ""},
		{"own namespace", ModeEnforce, "upid-system", admissionv1.Create, podKind, webPod(nil), cluster, OutcomeSkipped, "protected_namespace", ""},
		{"update", ModeEnforce, "team", admissionv1.Update, podKind, webPod(nil), cluster, OutcomeSkipped, "not_a_pod", ""},
		{"not a pod", ModeEnforce, "team", admissionv1.Create, metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, webPod(nil), cluster, OutcomeSkipped, "not_a_pod", ""},
		{"no owner", ModeEnforce, "team", admissionv1.Create, podKind, &corev1.Pod{Spec: webPod(nil).Spec}, cluster, OutcomeSkipped, "no_workload", ""},
		{"undecodable pod", ModeEnforce, "team", admissionv1.Create, podKind, map[string]any{"spec": "nope"}, cluster, OutcomeFailedOpen, "decode_error", ""},
		{"panic", ModeEnforce, "team", admissionv1.Create, podKind, webPod(nil), &staticCluster{panics: true}, OutcomeFailedOpen, "panic", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, tt.mode, tt.cluster)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(reviewBody(t, tt.ns, tt.op, tt.kind, tt.obj))))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
				t.Fatalf("bad review %s", rec.Body)
			}
			r := out.Response
			if !r.Allowed || r.UID != "uid-1" {
				t.Errorf("allowed=%v uid=%q, want allowed with the request's uid", r.Allowed, r.UID)
			}
			if got := testutil.ToFloat64(h.decisions.WithLabelValues(tt.outcome, tt.reason)); got != 1 {
				t.Errorf("decisions{%s,%s} = %g, want 1", tt.outcome, tt.reason, got)
			}
			if tt.wantPatchPath == "" {
				if len(r.Patch) != 0 {
					t.Errorf("unexpected patch %s", r.Patch)
				}
				return
			}
			if r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch || !strings.Contains(string(r.Patch), `"path":"`+tt.wantPatchPath) {
				t.Errorf("patch %s lacks %s", r.Patch, tt.wantPatchPath)
			}
			p, err := jsonpatch.DecodePatch(r.Patch)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(tt.obj)
			if _, err := p.Apply(raw); err != nil {
				t.Errorf("patch does not apply to the pod: %v", err)
			}
		})
	}
}

// TestHandlerHTTPErrorsFailOpen: what cannot be decoded gets an HTTP error
// (a failed call, admitted under failurePolicy Ignore), never a denial.
func TestHandlerHTTPErrorsFailOpen(t *testing.T) {
	tests := []struct {
		name   string
		method string
		body   string
		code   int
		reason string
	}{
		{"too large", http.MethodPost, `{"request":{"uid":"` + strings.Repeat("x", 70<<10) + `"}}`, http.StatusRequestEntityTooLarge, "too_large"},
		{"not json", http.MethodPost, `<xml/>`, http.StatusBadRequest, "decode_error"},
		{"no request", http.MethodPost, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, http.StatusBadRequest, "decode_error"},
		{"v1beta1", http.MethodPost, `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u"}}`, http.StatusBadRequest, "decode_error"},
		{"GET", http.MethodGet, ``, http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, ModeEnforce, &staticCluster{})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, Path, strings.NewReader(tt.body)))
			if rec.Code != tt.code {
				t.Errorf("status %d, want %d", rec.Code, tt.code)
			}
			if strings.Contains(rec.Body.String(), `"allowed":false`) {
				t.Errorf("denied: %s", rec.Body)
			}
			if tt.reason != "" {
				if got := testutil.ToFloat64(h.decisions.WithLabelValues(OutcomeFailedOpen, tt.reason)); got != 1 {
					t.Errorf("failed_open{%s} = %g, want 1", tt.reason, got)
				}
			}
		})
	}
}

// TestStalledBodyIsCut: a client that stops mid-body is answered with a
// read error and disconnected once admissionReadTimeout passes, instead of
// holding its buffer for ever (controller-runtime's server sets no read
// timeout).
func TestStalledBodyIsCut(t *testing.T) {
	saved := admissionReadTimeout
	admissionReadTimeout = 300 * time.Millisecond
	t.Cleanup(func() { admissionReadTimeout = saved })
	h := newTestHandler(t, ModeEnforce, &staticCluster{})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "POST "+Path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"request\":")
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("connection still open: %v", err)
	}
	if !strings.HasPrefix(string(reply), "HTTP/1.1 400") {
		t.Errorf("reply %q, want a 400 read error", reply)
	}
	if got := testutil.ToFloat64(h.decisions.WithLabelValues(OutcomeFailedOpen, "read_error")); got != 1 {
		t.Errorf("failed_open{read_error} = %g, want 1", got)
	}
}

// TestFailedOpenSeriesFromTheStart: every failed_open reason is a series
// at 0 before its first admission, so that increase() and the
// UPIDWebhookFailingOpen alert see the first one.
func TestFailedOpenSeriesFromTheStart(t *testing.T) {
	h := newTestHandler(t, ModeEnforce, &staticCluster{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// Every reason the handler fails open with, found by its tests.
	for _, reason := range []string{"too_large", "decode_error", "read_error", "panic", "error"} {
		if !slices.Contains(failedOpenReasons, reason) {
			t.Errorf("%s is missing from failedOpenReasons", reason)
		}
	}
	for _, reason := range failedOpenReasons {
		var found bool
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				l := map[string]string{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				found = found || (mf.GetName() == "upid_webhook_decisions_total" && l["outcome"] == OutcomeFailedOpen && l["reason"] == reason && m.GetCounter().GetValue() == 0)
			}
		}
		if !found {
			t.Errorf("no upid_webhook_decisions_total{outcome=failed_open, reason=%s} at 0 before any admission", reason)
		}
	}
}

func TestNewHandlerRejectsBadOptions(t *testing.T) {
	_, err := NewHandler(HandlerOptions{DefaultMode: "on", Policy: Policy{LimitPolicy: "x", ChangeThreshold: 2}, Recommendations: staticRecs{}, Cluster: &staticCluster{}})
	for _, want := range []string{"webhook.mode", "webhook.limit_policy", "webhook.change_threshold"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

// TestNewHandlerRejectsNonFinitePolicy: NaN passes a range check written
// with < and >, and a NaN margin or threshold reaches every pod.
func TestNewHandlerRejectsNonFinitePolicy(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name           string
		change, margin float64
		wantErr        []string
	}{
		{name: "in range", change: 0.1, margin: 0.1},
		{name: "bounds", change: 0, margin: 10},
		{name: "NaNs", change: nan, margin: nan, wantErr: []string{"webhook.change_threshold: invalid value NaN", "webhook.memory_margin: invalid value NaN"}},
		{name: "infinities", change: inf, margin: -inf, wantErr: []string{"webhook.change_threshold: invalid value +Inf", "webhook.memory_margin: invalid value -Inf"}},
		{name: "change_threshold 1", change: 1, margin: 0.1, wantErr: []string{"webhook.change_threshold: invalid value 1: must be below 1"}},
		{name: "negative change_threshold", change: -0.1, margin: 0.1, wantErr: []string{"webhook.change_threshold: invalid value -0.1"}},
		{name: "memory_margin above 10", change: 0.1, margin: 10.5, wantErr: []string{"webhook.memory_margin: invalid value 10.5: must be at most 10"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewHandler(HandlerOptions{
				DefaultMode: ModeEnforce, Recommendations: staticRecs{}, Cluster: &staticCluster{},
				Policy: Policy{LimitPolicy: LimitKeepRatio, ChangeThreshold: tc.change, MemoryMargin: tc.margin},
			})
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, want := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v does not contain %q", err, want)
				}
			}
		})
	}
}

// TestRunRejectsNonFiniteMinConfidence: with NaN no confidence is below
// the minimum, and every recommendation would be applied.
func TestRunRejectsNonFiniteMinConfidence(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), -0.1, 1.1} {
		c := config.Default().Webhook
		c.MinConfidence = v
		err := Run(context.Background(), Options{Config: c})
		if err == nil || !strings.Contains(err.Error(), "webhook.min_confidence: invalid value") {
			t.Errorf("min_confidence %v: error %v, want it refused", v, err)
		}
	}
}

// TestMetricsLint runs every self metric through the linter promtool uses.
func TestMetricsLint(t *testing.T) {
	h := newTestHandler(t, ModeEnforce, &staticCluster{})
	recs := NewRecommendations("http://127.0.0.1:1", 0.5, 0, nil)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(append(h.Collectors(), recs, newCertExpiry("testdata/none"))...)
	h.Handle(context.Background(), admissionRequest(t, webPod(nil)))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func admissionRequest(t testing.TB, pod *corev1.Pod) admissionRequestT {
	t.Helper()
	raw, _ := json.Marshal(pod)
	var r admissionRequestT
	r.UID = "u"
	r.Kind = podKind
	r.Namespace = "team"
	r.Operation = admissionv1.Create
	r.Object.Raw = raw
	return r
}

type admissionRequestT = admission.Request

// TestMetricsDocumented: every self metric is in docs/metrics.md under the
// webhook's heading.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## `upid webhook`")
	if !ok {
		t.Fatal("docs/metrics.md has no \"## `upid webhook`\" heading")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	h := newTestHandler(t, ModeEnforce, &staticCluster{})
	ch := make(chan *prometheus.Desc, 100)
	for _, c := range append(h.Collectors(), NewRecommendations("http://x", 0, 0, nil), newCertExpiry("x")) {
		c.Describe(ch)
	}
	close(ch)
	n := 0
	for d := range ch {
		m := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		n++
		if !strings.Contains(section, "`"+m[1]+"`") {
			t.Errorf("%s is not documented under upid webhook in docs/metrics.md", m[1])
		}
	}
	if n < 6 {
		t.Errorf("only %d metrics described", n)
	}
}

// reviewAndApply reviews pod as the API server would send it and returns
// it with the patch applied.
func reviewAndApply(t *testing.T, h *Handler, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	return reviewAndApplyIn(t, h, "team", pod)
}

// reviewAndApplyIn is reviewAndApply in namespace ns.
func reviewAndApplyIn(t *testing.T, h *Handler, ns string, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	out, err := h.Review(context.Background(), reviewBody(t, ns, admissionv1.Create, podKind, pod))
	if err != nil {
		t.Fatal(err)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(out, &review); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(pod)
	if len(review.Response.Patch) == 0 {
		return pod
	}
	p, err := jsonpatch.DecodePatch(review.Response.Patch)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := p.Apply(raw)
	if err != nil {
		t.Fatal(err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

// TestReinvocationKeepsEveryContainersRecord: a sidecar injector that runs
// after UPID makes the API server call UPID again (reinvocationPolicy
// IfNeeded). UPID then changes the injected container too. The pod's
// upid.io/original-resources must still say what every changed container
// had before, and upid.io/recommended-resources what UPID set on each.
// TestReinvocationKeepsEveryContainersRecord: a container another webhook
// adds after UPID's first call, and which the reinvocation sizes, joins the
// records of the first call's changes instead of replacing them (found in
// review: the first container's record and the second's original were lost).
func TestReinvocationKeepsEveryContainersRecord(t *testing.T) {
	h, err := NewHandler(HandlerOptions{
		DefaultMode: ModeEnforce, Policy: defaultPolicy, MaxRequestBytes: 64 << 10,
		Recommendations: staticRecs{key("team", "Deployment", "web"): {Containers: map[string]Target{
			"app":   {CPURequest: f(0.25), MemoryRequest: f(128 * mi)},
			"proxy": {CPURequest: f(0.1), MemoryRequest: f(64 * mi)},
		}}},
		Cluster: &staticCluster{wl: map[string]map[string]string{"team/Deployment/web": {}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// First call: the pod as the ReplicaSet created it.
	pod := reviewAndApply(t, h, webPod(nil))
	// A later mutating webhook injects its sidecar; the API server calls UPID again.
	pod.Spec.Containers = append(pod.Spec.Containers, container("proxy", rl("cpu", "1", "memory", "512Mi"), nil))
	pod = reviewAndApply(t, h, pod)

	if got := pod.Spec.Containers[1].Resources.Requests[corev1.ResourceCPU]; got.String() != "100m" {
		t.Fatalf("proxy cpu request %s, want 100m (the reinvocation changed it)", got.String())
	}
	var orig, rec map[string]Resources
	if err := json.Unmarshal([]byte(pod.Annotations[AnnotationOriginal]), &orig); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(pod.Annotations[AnnotationRecommended]), &rec); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"app", "proxy"} {
		if _, ok := orig[c]; !ok {
			t.Errorf("%s: %s lacks container %q, whose resources UPID changed", AnnotationOriginal, pod.Annotations[AnnotationOriginal], c)
		}
		if _, ok := rec[c]; !ok {
			t.Errorf("%s: %s lacks container %q, whose resources UPID changed", AnnotationRecommended, pod.Annotations[AnnotationRecommended], c)
		}
	}
}

// TestJobNamedLikeACronJobs: a Job named <cronjob>-<digits> takes the
// CronJob's opt-out and recommendations only when the CronJob controls it,
// or when the cache does not have the Job yet (found in review: a Job
// created by hand took the CronJob's sizing and ignored its own opt-out).
func TestJobNamedLikeACronJobs(t *testing.T) {
	yes := true
	for _, tc := range []struct {
		name    string
		cluster *staticCluster
		wantCPU string
		reason  string
	}{
		{"by hand, opted out", &staticCluster{wl: map[string]map[string]string{
			"team/CronJob/report": {}, "team/Job/report-1": {AnnotationOptOut: optOutValue}}}, "1", "opted_out"},
		{"by hand", &staticCluster{wl: map[string]map[string]string{
			"team/CronJob/report": {}, "team/Job/report-1": {}}}, "1", "no_recommendation"},
		{"the CronJob's", &staticCluster{wl: map[string]map[string]string{"team/CronJob/report": {}, "team/Job/report-1": {}},
			owners: map[string]Workload{"team/Job/report-1": {"CronJob", "report"}}}, "250m", ModeEnforce},
		{"not cached yet", &staticCluster{wl: map[string]map[string]string{"team/CronJob/report": {}}}, "250m", ModeEnforce},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := NewHandler(HandlerOptions{
				DefaultMode: ModeEnforce, Policy: defaultPolicy, MaxRequestBytes: 64 << 10,
				Recommendations: staticRecs{key("team", "CronJob", "report"): {Containers: map[string]Target{"app": {CPURequest: f(0.25), MemoryRequest: f(128 * mi)}}}},
				Cluster:         tc.cluster,
			})
			if err != nil {
				t.Fatal(err)
			}
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "report-1-", OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "report-1", Controller: &yes}}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)}},
			}
			got := reviewAndApply(t, h, pod)
			if r := got.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; r.String() != tc.wantCPU {
				t.Errorf("cpu request %s, want %s", r.String(), tc.wantCPU)
			}
			outcome := OutcomeSkipped
			if tc.reason == ModeEnforce {
				outcome = OutcomeMutated
			}
			if n := testutil.ToFloat64(h.decisions.WithLabelValues(outcome, tc.reason)); n != 1 {
				t.Errorf("decisions{%s,%s} = %g, want 1", outcome, tc.reason, n)
			}
		})
	}
}

// TestAnnotationKeysAreCaseSensitive: as in Kubernetes, an annotation key
// in other letters is another key (found in review: upid.io/Webhook opted a
// pod out and upid.io/WEBHOOK-MODE set its mode).
func TestAnnotationKeysAreCaseSensitive(t *testing.T) {
	cluster := &staticCluster{wl: map[string]map[string]string{"team/Deployment/web": {}}}
	h := newTestHandler(t, ModeRecommend, cluster)
	got := reviewAndApply(t, h, webPod(map[string]string{"upid.io/WEBHOOK-MODE": ModeEnforce}))
	if r := got.Spec.Containers[0].Resources.Requests["cpu"]; r.String() != "1" {
		t.Errorf("cpu request %s, want 1 (recommend mode; the pod has no upid.io/webhook-mode annotation); mutated=%g",
			r.String(), testutil.ToFloat64(h.decisions.WithLabelValues(OutcomeMutated, ModeEnforce)))
	}
	h = newTestHandler(t, ModeEnforce, cluster)
	got = reviewAndApply(t, h, webPod(map[string]string{"upid.io/Webhook": "disabled"}))
	if r := got.Spec.Containers[0].Resources.Requests["cpu"]; r.String() != "250m" {
		t.Errorf("cpu request %s, want 250m: upid.io/Webhook is not the opt-out key upid.io/webhook", r.String())
	}
}

// refRecorder keeps each Event as "type reason message on apiVersion kind
// namespace/name uid".
type refRecorder struct{ events []string }

func (r *refRecorder) Event(obj runtime.Object, eventType, reason, message string) {
	ref := obj.(*corev1.ObjectReference)
	r.events = append(r.events, fmt.Sprintf("%s %s %s on %s %s %s/%s %s", eventType, reason, message, ref.APIVersion, ref.Kind, ref.Namespace, ref.Name, ref.UID))
}
func (r *refRecorder) Eventf(obj runtime.Object, eventType, reason, format string, args ...any) {
	r.Event(obj, eventType, reason, fmt.Sprintf(format, args...))
}
func (r *refRecorder) AnnotatedEventf(obj runtime.Object, _ map[string]string, eventType, reason, format string, args ...any) {
	r.Eventf(obj, eventType, reason, format, args...)
}

// TestDecisionEvents: the decisions that change a pod, would in recommend
// mode, or take UPID's change back are Events of the workload; the others
// record none.
func TestDecisionEvents(t *testing.T) {
	quota := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Hard: rl("requests.cpu", "100m")},
		Status: corev1.ResourceQuotaStatus{Hard: rl("requests.cpu", "100m"), Used: rl("requests.cpu", "0")}}
	raised := map[string]string{AnnotationMode: ModeEnforce,
		AnnotationOriginal: `{"app":{"requests":{"cpu":"10m","memory":"1Mi"}}}`, AnnotationRecommended: `{"app":{"requests":{"cpu":"1"}}}`}
	dbPod := webPod(nil)
	dbPod.OwnerReferences[0] = metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "uid-from-pod", Controller: dbPod.OwnerReferences[0].Controller}
	for _, tc := range []struct {
		name    string
		mode    string
		ns      string
		pod     *corev1.Pod
		cluster *staticCluster
		want    string // "" for no Event
	}{
		{"enforce", ModeEnforce, "team", webPod(nil), &staticCluster{wl: map[string]map[string]string{"team/Deployment/web": {}}},
			"Normal UPIDRightsized Pod admitted with UPID's resources: app: requests cpu 250m, memory 128Mi (was requests cpu 1, memory 1Gi)"},
		{"recommend", ModeRecommend, "team", webPod(nil), &staticCluster{wl: map[string]map[string]string{"team/Deployment/web": {}}},
			"Normal UPIDRecommended Pod admitted unchanged (mode recommend); enforce would set app: requests cpu 250m, memory 128Mi (was requests cpu 1, memory 1Gi)"},
		{"taken back", ModeEnforce, "team", webPod(raised), &staticCluster{wl: map[string]map[string]string{"team/Deployment/web": {}},
			constraints: map[string]Constraints{"team": {Quotas: []*corev1.ResourceQuota{quota}}}}, "Warning UPIDRightsizingTakenBack UPID's raises"},
		{"opted out", ModeEnforce, "team", webPod(map[string]string{AnnotationOptOut: optOutValue}), &staticCluster{wl: map[string]map[string]string{"team/Deployment/web": {}}}, ""},
		// Without GetWorkload, their opt-out is unknown: the pod is
		// admitted unchanged. TestOwnerLookups reads them.
		{"deployment not cached", ModeEnforce, "team", webPod(nil), &staticCluster{}, ""},
		{"statefulset not cached", ModeEnforce, "team", dbPod, &staticCluster{}, ""},
		{"statefulset", ModeEnforce, "team", dbPod, &staticCluster{wl: map[string]map[string]string{"team/StatefulSet/db": {}}},
			"Normal UPIDRightsized Pod admitted with UPID's resources: app: requests cpu 250m, memory 128Mi (was requests cpu 1, memory 1Gi) on apps/v1 StatefulSet team/db uid-db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &refRecorder{}
			h := newTestHandler(t, tc.mode, tc.cluster)
			h.opts.Recorder = rec
			if _, err := h.Review(context.Background(), reviewBody(t, tc.ns, admissionv1.Create, podKind, tc.pod)); err != nil {
				t.Fatal(err)
			}
			got := rec.events
			if tc.want == "" && len(got) != 0 || tc.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], tc.want)) {
				t.Errorf("Events %q, want %q", got, tc.want)
			}
		})
	}
}
