package scaler

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/upid-dev/upid/internal/config"
	"github.com/upid-dev/upid/internal/testenv"
)

type realCluster struct {
	c kubernetes.Interface
	w Workload
}

func (r realCluster) client() kubernetes.Interface { return r.c }
func (r realCluster) dynamic() dynamic.Interface   { return nil }
func (r realCluster) read(t testing.TB) (int32, map[string]string) {
	d, err := r.c.AppsV1().Deployments(r.w.Namespace).Get(context.Background(), r.w.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas, d.Annotations
}

// TestAgainstAPIServer checks on a real kube-apiserver what the fake
// clientset can only imitate: resourceVersion preconditions, the scale
// subresource, Events, HPAs, StatefulSets and Leases.
func TestAgainstAPIServer(t *testing.T) {
	kube := testenv.StartKube(t, testenv.KubeOptions{})
	c := kube.Clientset
	ctx := context.Background()
	for _, ns := range []string{"shop", "lab", "infra"} {
		labels := optedIn
		if ns == "infra" {
			labels = nil
		}
		if _, err := c.CoreV1().Namespaces().Create(ctx, namespace(ns, labels), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t)
	cfg.GracePeriod = 0
	create := func(t *testing.T, ns, name string, replicas int32) Workload {
		t.Helper()
		return createDeployment(t, c, ns, name, replicas)
	}
	get := func(t *testing.T, w Workload) *appsv1.Deployment {
		t.Helper()
		return getDeployment(t, c, w)
	}

	t.Run("random histories with restarts", func(t *testing.T) {
		for run := 0; run < 3; run++ {
			w := create(t, "lab", "prop-"+string(rune('a'+run)), int32(2+run))
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(run)))
			h := runHistory(t, rng, realCluster{c: c, w: w}, cfg, w, int32(2+run), 20, nil)
			t.Logf("history %v", h)
		}
	})

	t.Run("refused requests change nothing", func(t *testing.T) {
		w := create(t, "shop", "guarded", 2)
		before := get(t, w).ResourceVersion
		s := newTestScaler(t, c, func() config.Scaler { c := cfg; c.MaxBodyBytes = 4096; return c }(), nil)
		body := notification(alert("UPIDWorkloadIdle", "firing", w))
		srv := httptest.NewServer(s)
		defer srv.Close()
		for _, tc := range []struct {
			token string
			body  []byte
			code  int
		}{
			{"", body, 401},
			{"wrong", body, 401},
			{testToken, []byte(`{"alerts":[{"status":"firing"}]}`), 400},
			{testToken, append(bytes.Repeat([]byte(" "), 5000), body...), 413},
		} {
			req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(tc.body))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.code)
			}
		}
		if after := get(t, w).ResourceVersion; after != before {
			t.Errorf("resourceVersion %s -> %s after refused requests", before, after)
		}
	})

	t.Run("user edit while asleep wins", func(t *testing.T) {
		w := create(t, "shop", "edited", 3)
		s := newTestScaler(t, c, cfg, NewSyncRecorder(c, nil))
		if res := s.Sleep(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultSuccess {
			t.Fatal(res)
		}
		d := get(t, w)
		d.Spec.Template.Spec.Containers[0].Image = "registry.example/app:2"
		if _, err := c.AppsV1().Deployments(w.Namespace).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if res := s.Wake(ctx, Request{Workload: w, Cause: "test"}); res.Result != ResultUserChange {
			t.Fatalf("wake after edit: %s", res)
		}
		d = get(t, w)
		if *d.Spec.Replicas != 0 || d.Annotations[AnnotationReplicas] != "" || d.Spec.Template.Spec.Containers[0].Image != "registry.example/app:2" {
			t.Errorf("after the conflict: replicas %d annotations %v", *d.Spec.Replicas, d.Annotations)
		}
		evs, err := c.CoreV1().Events(w.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=edited"})
		if err != nil {
			t.Fatal(err)
		}
		var reasons []string
		for _, e := range evs.Items {
			reasons = append(reasons, e.Type+"/"+e.Reason)
		}
		sort.Strings(reasons) // generated names: list order is not write order
		if strings.Join(reasons, ",") != "Normal/UPIDSleep,Warning/UPIDUserChange" {
			t.Errorf("events %v", reasons)
		}
	})

	// A Kubernetes upgrade that defaults a new spec field makes the spec read
	// differently although nobody wrote the workload, so the fingerprint
	// saved at sleep no longer matches. Here the scaler that sleeps reads
	// through a transport that hides a defaulted field (revisionHistoryLimit)
	// as an older API server would not have set it; the one that wakes
	// reads the spec whole. The generation the state recorded must carry the
	// sleep through, for both kinds, and a real edit must still win.
	t.Run("spec that reads differently after an upgrade", func(t *testing.T) {
		old := rest.CopyConfig(kube.Config)
		old.ContentType = "application/json"
		old.Wrap(func(rt http.RoundTripper) http.RoundTripper { return hideDefault{rt} })
		before, err := kubernetes.NewForConfig(old)
		if err != nil {
			t.Fatal(err)
		}
		d := deployment("shop", "upgraded-db", 2, time.Time{})
		ss := &appsv1.StatefulSet{ObjectMeta: d.ObjectMeta, Spec: appsv1.StatefulSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template}}
		if _, err := c.AppsV1().StatefulSets("shop").Create(ctx, ss, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		createService(ctx, t, c, "shop", "upgraded-db")
		read := func(w Workload) (int32, map[string]string, string) {
			if w.Kind == KindDeployment {
				o := get(t, w)
				return *o.Spec.Replicas, o.Annotations, o.Spec.Template.Spec.Containers[0].Image
			}
			o, err := c.AppsV1().StatefulSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return *o.Spec.Replicas, o.Annotations, o.Spec.Template.Spec.Containers[0].Image
		}
		edit := func(w Workload) {
			patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example/app:2"}]}}}}`)
			var err error
			if w.Kind == KindDeployment {
				_, err = c.AppsV1().Deployments(w.Namespace).Patch(ctx, w.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			} else {
				_, err = c.AppsV1().StatefulSets(w.Namespace).Patch(ctx, w.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, w := range []Workload{create(t, "shop", "upgraded", 3), {Namespace: "shop", Kind: KindStatefulSet, Name: "upgraded-db"}} {
			want := map[string]int32{"upgraded": 3, "upgraded-db": 2}[w.Name]
			if res := newTestScaler(t, before, cfg, record.NewFakeRecorder(10)).Sleep(ctx, Request{Workload: w}); res.Result != ResultSuccess {
				t.Fatalf("%s: %s", w, res)
			}
			after := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
			if _, ann, _ := read(w); ann[AnnotationState] == "" {
				t.Fatalf("%s: no state after sleep: %v", w, ann)
			}
			if res := after.Sleep(ctx, Request{Workload: w}); res.Result != ResultSkipped || res.Reason != "already_asleep" {
				t.Errorf("%s: sleep again after the upgrade: %s", w, res)
			}
			if res := after.Wake(ctx, Request{Workload: w}); res.Result != ResultSuccess {
				t.Fatalf("%s: wake after the upgrade: %s", w, res)
			}
			if replicas, ann, _ := read(w); replicas != want || len(ann) != 0 {
				t.Errorf("%s awake: replicas %d annotations %v, want %d and none", w, replicas, ann, want)
			}

			// The same, with an edit while asleep: the edit wins.
			if res := newTestScaler(t, before, cfg, record.NewFakeRecorder(10)).Sleep(ctx, Request{Workload: w}); res.Result != ResultSuccess {
				t.Fatalf("%s: second sleep: %s", w, res)
			}
			edit(w)
			if res := after.Wake(ctx, Request{Workload: w}); res.Result != ResultUserChange {
				t.Errorf("%s: wake after an edit: %s, want %s", w, res, ResultUserChange)
			}
			if replicas, ann, image := read(w); replicas != 0 || len(ann) != 0 || image != "registry.example/app:2" {
				t.Errorf("%s after the edit: replicas %d annotations %v image %s, want 0, none and the edit", w, replicas, ann, image)
			}
		}
	})

	t.Run("HPA-managed", func(t *testing.T) {
		w := create(t, "shop", "autoscaled", 2)
		hpa, err := c.AutoscalingV2().HorizontalPodAutoscalers("shop").Create(ctx, hpaFor("shop", "Deployment", "autoscaled"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
		if res := s.Sleep(ctx, Request{Workload: w}); res.Result != ResultSkipped || res.Reason != "hpa_managed" {
			t.Fatalf("default: %s", res)
		}
		inc := cfg
		inc.IncludeHPA = true
		s = newTestScaler(t, c, inc, record.NewFakeRecorder(10))
		if res := s.Sleep(ctx, Request{Workload: w}); res.Result != ResultSuccess {
			t.Fatalf("include_hpa_workloads: %s", res)
		}
		if res := s.Wake(ctx, Request{Workload: w}); res.Result != ResultSuccess || *get(t, w).Spec.Replicas != 2 {
			t.Fatalf("wake: %s", res)
		}
		after, _ := c.AutoscalingV2().HorizontalPodAutoscalers("shop").Get(ctx, "autoscaled", metav1.GetOptions{})
		if after.ResourceVersion != hpa.ResourceVersion {
			t.Errorf("the HPA was written")
		}
	})

	t.Run("StatefulSet", func(t *testing.T) {
		d := deployment("shop", "db", 3, time.Time{})
		ss := &appsv1.StatefulSet{ObjectMeta: d.ObjectMeta, Spec: appsv1.StatefulSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template}}
		if _, err := c.AppsV1().StatefulSets("shop").Create(ctx, ss, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		createService(ctx, t, c, "shop", "db")
		w := Workload{Namespace: "shop", Kind: KindStatefulSet, Name: "db"}
		s := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
		if res := s.Sleep(ctx, Request{Workload: w}); res.Result != ResultSuccess {
			t.Fatal(res)
		}
		got, _ := c.AppsV1().StatefulSets("shop").Get(ctx, "db", metav1.GetOptions{})
		if *got.Spec.Replicas != 0 || got.Annotations[AnnotationReplicas] != "3" {
			t.Fatalf("asleep: %d %v", *got.Spec.Replicas, got.Annotations)
		}
		if res := s.Wake(ctx, Request{Workload: w}); res.Result != ResultSuccess {
			t.Fatal(res)
		}
		got, _ = c.AppsV1().StatefulSets("shop").Get(ctx, "db", metav1.GetOptions{})
		if *got.Spec.Replicas != 3 || len(got.Annotations) != 0 {
			t.Fatalf("awake: %d %v", *got.Spec.Replicas, got.Annotations)
		}

		// One whose claims the StatefulSet controller deletes when it is
		// scaled down: asleep, it would wake on empty volumes. Never, not
		// even by hand.
		del := ss.DeepCopy()
		del.Name, del.ResourceVersion = "cache", ""
		del.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
			WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.DeletePersistentVolumeClaimRetentionPolicyType}
		if _, err := c.AppsV1().StatefulSets("shop").Create(ctx, del, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		wc := Workload{Namespace: "shop", Kind: KindStatefulSet, Name: "cache"}
		for _, manual := range []bool{false, true} {
			if res := s.Sleep(ctx, Request{Workload: wc, Manual: manual}); res.Result != ResultSkipped || res.Reason != "pvc_deleted_when_scaled" {
				t.Errorf("sleep (manual %v) of a StatefulSet that deletes its claims when scaled: %s", manual, res)
			}
		}
		if got, _ := c.AppsV1().StatefulSets("shop").Get(ctx, "cache", metav1.GetOptions{}); *got.Spec.Replicas != 3 || len(got.Annotations) != 0 {
			t.Errorf("written: %d %v", *got.Spec.Replicas, got.Annotations)
		}
	})

	t.Run("scope and dry run", func(t *testing.T) {
		w := create(t, "infra", "tool", 1)
		before := get(t, w).ResourceVersion
		s := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
		if res := s.Sleep(ctx, Request{Workload: w}); res.Reason != "namespace_not_opted_in" {
			t.Errorf("unlabelled namespace: %s", res)
		}
		dry := cfg
		dry.Scope, dry.DryRun = "cluster", true
		s = newTestScaler(t, c, dry, record.NewFakeRecorder(10))
		if res := s.Sleep(ctx, Request{Workload: w}); res.Result != ResultDryRun {
			t.Errorf("dry run: %s", res)
		}
		if after := get(t, w).ResourceVersion; after != before {
			t.Errorf("written: %s -> %s", before, after)
		}
	})

	t.Run("one leader; the other answers 503 and takes over", func(t *testing.T) {
		w := create(t, "shop", "led", 2)
		le := withLease(cfg, "upid-scaler-test")
		a, b := newTestScaler(t, c, le, record.NewFakeRecorder(10)), newTestScaler(t, c, le, record.NewFakeRecorder(10))
		stopA := running(ctx, a, "a")
		waitFor(t, 15*time.Second, "a to lead", a.IsLeader)
		defer running(ctx, b, "b")()
		waitFor(t, 15*time.Second, "b to sync", func() bool { return b.synced.Load() })
		time.Sleep(time.Second)
		if b.IsLeader() {
			t.Fatal("two leaders")
		}
		body := notification(alert("UPIDWorkloadIdle", "firing", w))
		if code, _ := post(t, b, body, testToken); code != 503 {
			t.Errorf("non-leader answered %d, want 503", code)
		}
		if testutil.ToFloat64(a.leaderGauge) != 1 || testutil.ToFloat64(b.leaderGauge) != 0 {
			t.Errorf("upid_scaler_leader a=%g b=%g", testutil.ToFloat64(a.leaderGauge), testutil.ToFloat64(b.leaderGauge))
		}
		stopA()
		if a.IsLeader() {
			t.Error("a still leads after stopping")
		}
		// Given up on the way out, so that b need not wait for it to expire.
		if l, err := c.CoordinationV1().Leases("default").Get(ctx, "upid-scaler-test", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		} else if h := l.Spec.HolderIdentity; h != nil && *h != "" && *h != "b" {
			t.Errorf("a stopped and the Lease is still %s's", *h)
		}
		waitFor(t, 15*time.Second, "b to take over", b.IsLeader)
		if code, resp := post(t, b, body, testToken); code != 200 || resp.Results[0].Result != ResultSuccess {
			t.Errorf("new leader: %d %+v", code, resp)
		}
	})

	// The rate limit is the brake on a storm of idle alerts; a failover in
	// the storm must not reset it. The new leader counts the sleeps the
	// workloads record.
	t.Run("a new leader counts its predecessor's sleeps", func(t *testing.T) {
		asleep, err := ListSleeping(ctx, c, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		le := withLease(cfg, "upid-scaler-storm")
		le.MaxActions = len(asleep) + 2 // what other subtests left asleep, within the hour, counts too
		le.ActionInterval = model.Duration(time.Hour)
		a, b := newTestScaler(t, c, le, record.NewFakeRecorder(10)), newTestScaler(t, c, le, record.NewFakeRecorder(10))
		stopA := running(ctx, a, "a")
		waitFor(t, 15*time.Second, "a to lead", a.IsLeader)
		for _, name := range []string{"storm-1", "storm-2"} {
			w := create(t, "lab", name, 2)
			if code, resp := post(t, a, notification(alert("UPIDWorkloadIdle", "firing", w)), testToken); code != 200 || resp.Results[0].Result != ResultSuccess {
				t.Fatalf("%s: %d %+v", name, code, resp)
			}
		}
		defer running(ctx, b, "b")()
		stopA()
		waitFor(t, 15*time.Second, "b to take over", b.IsLeader)
		w := create(t, "lab", "storm-3", 2)
		if code, resp := post(t, b, notification(alert("UPIDWorkloadIdle", "firing", w)), testToken); code != 200 || resp.Results[0].Reason != "rate_limited" {
			t.Errorf("new leader, %d sleeps in the last hour of at most %d: %d %+v, want rate_limited", le.MaxActions, le.MaxActions, code, resp)
		}
		if r := *get(t, w).Spec.Replicas; r != 2 {
			t.Errorf("storm-3 has %d replicas, want 2", r)
		}
	})

	t.Run("wake window wakes sleeping workloads", func(t *testing.T) {
		w := create(t, "shop", "office", 2)
		s := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
		if res := s.Sleep(ctx, Request{Workload: w}); res.Result != ResultSuccess {
			t.Fatal(res)
		}
		// Put to sleep before the window opened, as every workload the
		// earlier cases left asleep: a window always open opened, as far
		// as the loop looks, 8 days ago.
		ds, err := c.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds.Items {
			if d.Annotations[AnnotationSince] != "" {
				d.Annotations[AnnotationSince] = time.Now().Add(-9 * 24 * time.Hour).UTC().Format(time.RFC3339)
				if _, err := c.AppsV1().Deployments(d.Namespace).Update(ctx, &d, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		win := cfg
		win.WakeWindows = []string{"* 00:00-24:00"}
		ws := newTestScaler(t, c, win, record.NewFakeRecorder(10))
		// An operator's upid sleep inside the window: the window leaves it
		// asleep (found in review: it was woken within 30 s).
		kept := create(t, "shop", "kept", 2)
		if res := ws.Sleep(ctx, Request{Workload: kept, Manual: true}); res.Result != ResultSuccess {
			t.Fatal(res)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = ws.Run(runCtx, RunOptions{WindowCheck: 200 * time.Millisecond}); close(done) }()
		defer func() { stop(); <-done }()
		waitFor(t, 20*time.Second, "the window to wake it", func() bool {
			d := get(t, w)
			return *d.Spec.Replicas == 2 && d.Annotations[AnnotationReplicas] == ""
		})
		if res := ws.Sleep(ctx, Request{Workload: w}); res.Reason != "wake_window" {
			t.Errorf("sleep inside the window: %s", res)
		}
		// office was woken by a check after its sleep was seen; kept has
		// been through the same checks.
		if d := get(t, kept); *d.Spec.Replicas != 0 || d.Annotations[AnnotationReplicas] != "2" {
			t.Errorf("kept, put to sleep by an operator inside the window: replicas %d, annotations %v; want asleep", *d.Spec.Replicas, d.Annotations)
		}
		if res := ws.Wake(ctx, Request{Workload: kept, Manual: true}); res.Result != ResultSuccess {
			t.Errorf("waking kept: %s", res)
		}
	})

	t.Run("sleeping-workload metrics", func(t *testing.T) {
		w := create(t, "lab", "metered", 2)
		s := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = s.Run(runCtx, RunOptions{}); close(done) }()
		defer func() { stop(); <-done }()
		if res := s.Sleep(ctx, Request{Workload: w, SavedDollarsPerHour: 1.5}); res.Result != ResultSuccess {
			t.Fatal(res)
		}
		since, _ := time.Parse(time.RFC3339, get(t, w).Annotations[AnnotationSince])
		var err error
		defer func() {
			if t.Failed() {
				t.Logf("last comparison: %v", err)
			}
		}()
		waitFor(t, 10*time.Second, "the metrics", func() bool {
			want := strings.NewReader(`
# HELP upid_scaler_sleeping_workload_saved_dollars_per_hour What a sleeping workload cost per hour when it was put to sleep, so saves while asleep.
# TYPE upid_scaler_sleeping_workload_saved_dollars_per_hour gauge
upid_scaler_sleeping_workload_saved_dollars_per_hour{kind="Deployment",namespace="lab",workload="metered"} 1.5
# HELP upid_scaler_sleeping_workload_service_info Always 1: a Service whose selector matches a sleeping workload's pods, to join request rates to it for the wake alert.
# TYPE upid_scaler_sleeping_workload_service_info gauge
upid_scaler_sleeping_workload_service_info{kind="Deployment",namespace="lab",service="metered",workload="metered"} 1
# HELP upid_scaler_sleeping_workload_since_timestamp_seconds When the workload was put to sleep.
# TYPE upid_scaler_sleeping_workload_since_timestamp_seconds gauge
upid_scaler_sleeping_workload_since_timestamp_seconds{kind="Deployment",namespace="lab",workload="metered"} ` + formatFloat(float64(since.Unix())) + `
# HELP upid_scaler_sleeping_workloads Workloads asleep now, from their annotations; only the leader reports it.
# TYPE upid_scaler_sleeping_workloads gauge
upid_scaler_sleeping_workloads 1
`)
			err = testutil.CollectAndCompare(s.SleepCollector(), want)
			return err == nil
		})
		lint, err := testutil.CollectAndLint(s.SleepCollector())
		if err != nil || len(lint) > 0 {
			t.Errorf("lint: %v %v", err, lint)
		}
		if res := s.Wake(ctx, Request{Workload: w}); res.Result != ResultSuccess {
			t.Fatal(res)
		}
	})
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// hideDefault drops revisionHistoryLimit, which the API server defaults,
// from the workloads it answers: what a server without that default would
// have returned.
type hideDefault struct{ rt http.RoundTripper }

var revisionHistoryLimit = regexp.MustCompile(`,"revisionHistoryLimit":[0-9]+|"revisionHistoryLimit":[0-9]+,`)

func (h hideDefault) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.rt.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	body = revisionHistoryLimit.ReplaceAll(body, nil)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// withLease turns leader election on, with short timings, under a Lease of its own.
func withLease(cfg config.Scaler, name string) config.Scaler {
	cfg.LeaderElection = config.LeaderElection{Enabled: true, Namespace: "default", Name: name,
		LeaseDuration: model.Duration(3 * time.Second), RenewDeadline: model.Duration(2 * time.Second), RetryPeriod: model.Duration(500 * time.Millisecond)}
	return cfg
}

// running runs s as replica id until the returned stop, which waits for Run to return.
func running(ctx context.Context, s *Scaler, id string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = s.Run(ctx, RunOptions{Identity: id}); close(done) }()
	return func() { cancel(); <-done }
}
