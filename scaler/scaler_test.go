package scaler

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"

	"github.com/upid-dev/upid/internal/config"
)

type cfgAction = config.ScalerAction

var web = Workload{Namespace: "shop", Kind: KindDeployment, Name: "web"}

func hpaFor(ns, kind, name string) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: kind, Name: name},
			MaxReplicas:    5,
		},
	}
}

func drain(rec *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// TestSleepPolicy checks every rule that keeps a workload awake, and that
// a refused sleep changes nothing.
func TestSleepPolicy(t *testing.T) {
	old := time.Now().Add(-72 * time.Hour)
	now := time.Now()
	tests := []struct {
		name   string
		objs   []runtime.Object
		mutate func(*appsv1.Deployment)
		cfg    func(c *cfgT)
		req    func(r *Request)
		podNS  string // POD_NAMESPACE, the scaler's own namespace
		// noService leaves out the Service that selects web, its wake path.
		noService bool
		result    string
		reason    string
		detail    string // the warning of a sleep made anyway
		asleep    bool
		noEvent   bool
	}{
		{name: "opted-in namespace sleeps", objs: []runtime.Object{namespace("shop", optedIn)}, result: ResultSuccess, asleep: true},
		{name: "namespace not opted in", objs: []runtime.Object{namespace("shop", nil)}, result: ResultSkipped, reason: "namespace_not_opted_in"},
		{name: "cluster scope needs no label", objs: []runtime.Object{namespace("shop", nil)}, cfg: func(c *cfgT) { c.Scope = "cluster" }, result: ResultSuccess, asleep: true},
		{name: "namespace opted out under cluster scope", objs: []runtime.Object{namespace("shop", map[string]string{LabelOptIn: "disabled"})}, cfg: func(c *cfgT) { c.Scope = "cluster" }, result: ResultSkipped, reason: "namespace_opted_out"},
		{name: "protected namespace", objs: []runtime.Object{namespace("shop", optedIn)}, cfg: func(c *cfgT) { c.ProtectedNamespaces = []string{"shop"} }, result: ResultSkipped, reason: "protected_namespace"},
		// Asleep, it would wake nothing again (found in review).
		{name: "the scaler's own namespace", objs: []runtime.Object{namespace("shop", nil)}, cfg: func(c *cfgT) { c.Scope = "cluster" }, podNS: "shop", result: ResultSkipped, reason: "protected_namespace"},
		{name: "own namespace refused to upid sleep", objs: []runtime.Object{namespace("shop", optedIn)}, req: func(r *Request) { r.Manual = true }, podNS: "shop", result: ResultSkipped, reason: "protected_namespace"},
		// From a laptop (no POD_NAMESPACE) only the Lease tells where the
		// scaler runs.
		{name: "own namespace unknown, the scaler's Lease is there", objs: []runtime.Object{namespace("shop", optedIn), lease("shop", "upid-scaler")}, req: func(r *Request) { r.Manual = true }, result: ResultSkipped, reason: "protected_namespace"},
		{name: "own namespace unknown, another Lease is there", objs: []runtime.Object{namespace("shop", optedIn), lease("shop", "other")}, req: func(r *Request) { r.Manual = true }, result: ResultSuccess, asleep: true},
		{name: "own namespace unknown, the Lease's configured namespace", objs: []runtime.Object{namespace("shop", optedIn)}, cfg: func(c *cfgT) { c.LeaderElection.Namespace = "shop" }, req: func(r *Request) { r.Manual = true }, result: ResultSkipped, reason: "protected_namespace"},
		{name: "own namespace known, the Lease elsewhere does not count", objs: []runtime.Object{namespace("shop", optedIn), lease("shop", "upid-scaler")}, podNS: "upid", req: func(r *Request) { r.Manual = true }, result: ResultSuccess, asleep: true},
		{name: "another namespace than its own", objs: []runtime.Object{namespace("shop", nil)}, cfg: func(c *cfgT) { c.Scope = "cluster" }, podNS: "upid", result: ResultSuccess, asleep: true},
		{name: "workload opted out", objs: []runtime.Object{namespace("shop", optedIn)}, mutate: func(d *appsv1.Deployment) { d.Annotations = map[string]string{AnnotationOptOut: "disabled"} }, result: ResultSkipped, reason: "opted_out"},
		{name: "grace period", objs: []runtime.Object{namespace("shop", optedIn)}, mutate: func(d *appsv1.Deployment) { d.CreationTimestamp = metav1.NewTime(now.Add(-time.Hour)) }, result: ResultSkipped, reason: "grace_period"},
		{name: "manual ignores grace period", objs: []runtime.Object{namespace("shop", nil)}, mutate: func(d *appsv1.Deployment) { d.CreationTimestamp = metav1.NewTime(now.Add(-time.Hour)) }, req: func(r *Request) { r.Manual = true }, result: ResultSuccess, asleep: true},
		{name: "manual still honours opt-out", objs: []runtime.Object{namespace("shop", optedIn)}, mutate: func(d *appsv1.Deployment) { d.Annotations = map[string]string{AnnotationOptOut: "disabled"} }, req: func(r *Request) { r.Manual = true }, result: ResultSkipped, reason: "opted_out"},
		{name: "HPA-managed skipped", objs: []runtime.Object{namespace("shop", optedIn), hpaFor("shop", "Deployment", "web")}, result: ResultSkipped, reason: "hpa_managed"},
		// An operator sets its Deployment's replicas and would undo the sleep (found in review).
		{name: "controller-owned skipped", objs: []runtime.Object{namespace("shop", optedIn)}, mutate: func(d *appsv1.Deployment) {
			yes := true
			d.OwnerReferences = []metav1.OwnerReference{{APIVersion: "kafka.strimzi.io/v1beta2", Kind: "KafkaConnect", Name: "connect", UID: "u", Controller: &yes}}
		}, req: func(r *Request) { r.Manual = true }, result: ResultSkipped, reason: "controller_owned"},
		{name: "a non-controller owner does not count", objs: []runtime.Object{namespace("shop", optedIn)}, mutate: func(d *appsv1.Deployment) {
			d.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "bundle", UID: "u"}}
		}, result: ResultSuccess, asleep: true},
		{name: "HPA of another workload does not count", objs: []runtime.Object{namespace("shop", optedIn), hpaFor("shop", "StatefulSet", "web")}, result: ResultSuccess, asleep: true},
		{name: "HPA-managed included", objs: []runtime.Object{namespace("shop", optedIn), hpaFor("shop", "Deployment", "web")}, cfg: func(c *cfgT) { c.IncludeHPA = true }, result: ResultSuccess, asleep: true},
		{name: "inside a wake window", objs: []runtime.Object{namespace("shop", optedIn)}, cfg: func(c *cfgT) { c.WakeWindows = []string{"* 00:00-24:00"} }, result: ResultSkipped, reason: "wake_window"},
		{name: "already at zero", objs: []runtime.Object{namespace("shop", optedIn)}, mutate: func(d *appsv1.Deployment) { z := int32(0); d.Spec.Replicas = &z }, result: ResultSkipped, reason: "already_zero", noEvent: true},
		{name: "dry run", objs: []runtime.Object{namespace("shop", optedIn)}, cfg: func(c *cfgT) { c.DryRun = true }, result: ResultDryRun},
		// Asleep, nothing but upid wake would wake it: no request can raise
		// the wake alert without a Service to join (found in review).
		{name: "no Service selects it", objs: []runtime.Object{namespace("shop", optedIn)}, noService: true, result: ResultSkipped, reason: "no_wake_path"},
		{name: "a Service of other pods does not count", objs: []runtime.Object{namespace("shop", optedIn), service("shop", "api")}, noService: true, result: ResultSkipped, reason: "no_wake_path"},
		{name: "a Service without a selector does not count", objs: []runtime.Object{namespace("shop", optedIn), selectorless}, noService: true, result: ResultSkipped, reason: "no_wake_path"},
		{name: "no wake path, dry run", objs: []runtime.Object{namespace("shop", optedIn)}, noService: true, cfg: func(c *cfgT) { c.DryRun = true }, result: ResultSkipped, reason: "no_wake_path"},
		{name: "no wake path but HPA-managed", objs: []runtime.Object{namespace("shop", optedIn), hpaFor("shop", "Deployment", "web")}, noService: true, result: ResultSkipped, reason: "hpa_managed"},
		{name: "no wake path allowed", objs: []runtime.Object{namespace("shop", optedIn)}, noService: true, cfg: func(c *cfgT) { c.SleepWithoutWakePath = true }, result: ResultSuccess, asleep: true},
		{name: "no Service, a wake window wakes it", objs: []runtime.Object{namespace("shop", optedIn)}, noService: true, cfg: func(c *cfgT) { c.WakeWindows = []string{closedWindow} }, result: ResultSuccess, asleep: true},
		{name: "upid sleep without a wake path warns", objs: []runtime.Object{namespace("shop", optedIn)}, noService: true, req: func(r *Request) { r.Manual = true }, result: ResultSuccess, detail: noWakePathWarning, asleep: true},
		{name: "upid sleep dry run without a wake path warns", objs: []runtime.Object{namespace("shop", optedIn)}, noService: true, req: func(r *Request) { r.Manual, r.DryRun = true, true }, result: ResultDryRun, detail: noWakePathWarning},
		{name: "upid sleep with a wake path does not warn", objs: []runtime.Object{namespace("shop", optedIn)}, req: func(r *Request) { r.Manual = true }, result: ResultSuccess, asleep: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := deployment("shop", "web", 3, old)
			if tc.mutate != nil {
				tc.mutate(d)
			}
			objs := append(tc.objs, d)
			if !tc.noService {
				objs = append(objs, service("shop", "web"))
			}
			c, apps := newFakeCluster(objs...)
			before := apps.get("shop", "web")
			cfg := testConfig(t)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			t.Setenv("POD_NAMESPACE", tc.podNS)
			rec := record.NewFakeRecorder(10)
			s := newTestScaler(t, c, cfg, rec)
			req := Request{Workload: web, Cause: "test", SavedDollarsPerHour: 0.5}
			if tc.req != nil {
				tc.req(&req)
			}
			res := s.Sleep(context.Background(), req)
			if res.Result != tc.result || res.Reason != tc.reason || res.Detail != tc.detail {
				t.Fatalf("got %s, want result %s reason %q detail %q", res, tc.result, tc.reason, tc.detail)
			}
			after := apps.get("shop", "web")
			if tc.asleep {
				if *after.Spec.Replicas != 0 || after.Annotations[AnnotationReplicas] != "3" || after.Annotations[AnnotationSaved] != "0.5" {
					t.Errorf("asleep workload: replicas %d annotations %v", *after.Spec.Replicas, after.Annotations)
				}
			} else if after.ResourceVersion != before.ResourceVersion {
				t.Errorf("a %s sleep wrote the workload: %v", tc.result, after.Annotations)
			}
			events := drain(rec)
			if tc.noEvent != (len(events) == 0) {
				t.Errorf("events %v, want some: %v", events, !tc.noEvent)
			}
			// The owner of a workload that only upid wake brings back
			// reads why in its Events.
			if tc.detail != "" && (len(events) != 1 || !strings.HasPrefix(events[0], "Warning ") || !strings.Contains(events[0], tc.detail)) {
				t.Errorf("events %v, want one warning with %q", events, tc.detail)
			}
			if got := testutil.ToFloat64(s.actionsTotal.WithLabelValues(ActionSleep, tc.result)); got != 1 {
				t.Errorf("upid_scaler_actions_total{action=sleep,result=%s} = %g, want 1", tc.result, got)
			}
		})
	}
}

type cfgT = config.Scaler

// selectorless is a Service without a selector: it routes to hand-made
// endpoints, not to any workload's pods.
var selectorless = &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "external"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}

// closedWindow is a wake window that is not open now: the day after
// tomorrow, in UTC.
var closedWindow = time.Now().UTC().Add(48*time.Hour).Format("Mon") + " 00:00-01:00"

// TestWakeRestoresExactly puts workloads of several sizes to sleep and
// wakes them, by both paths, and checks nothing of UPID's is left.
func TestWakeRestoresExactly(t *testing.T) {
	for _, replicas := range []int32{1, 2, 7} {
		d := deployment("shop", "web", replicas, time.Now().Add(-72*time.Hour))
		d.Annotations = map[string]string{"team": "checkout"}
		c, apps := newFakeCluster(namespace("shop", optedIn), d, service("shop", "web"))
		rec := record.NewFakeRecorder(10)
		s := newTestScaler(t, c, testConfig(t), rec)
		if res := s.Sleep(context.Background(), Request{Workload: web}); res.Result != ResultSuccess || res.Replicas != replicas {
			t.Fatalf("sleep: %s", res)
		}
		if res := s.Wake(context.Background(), Request{Workload: web}); res.Result != ResultSuccess || res.Replicas != replicas {
			t.Fatalf("wake: %s", res)
		}
		after := apps.get("shop", "web")
		if *after.Spec.Replicas != replicas {
			t.Errorf("woke to %d replicas, want %d", *after.Spec.Replicas, replicas)
		}
		if len(after.Annotations) != 1 || after.Annotations["team"] != "checkout" {
			t.Errorf("annotations after wake %v, want only the user's", after.Annotations)
		}
		events := drain(rec)
		if len(events) != 2 || !strings.Contains(events[0], "UPIDSleep") || !strings.Contains(events[1], "UPIDWake") {
			t.Errorf("events %v, want a sleep and a wake", events)
		}
		if res := s.Wake(context.Background(), Request{Workload: web}); res.Result != ResultSkipped || res.Reason != "not_asleep" {
			t.Errorf("second wake: %s, want skipped not_asleep", res)
		}
	}
}

// TestUserChangeWhileAsleep: an edit made while asleep wins; the scaler
// forgets its state and says so.
func TestUserChangeWhileAsleep(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*appsv1.Deployment)
		action string
		want   int32
	}{
		{name: "scaled up by hand, then wake", edit: func(d *appsv1.Deployment) { r := int32(5); d.Spec.Replicas = &r }, action: ActionWake, want: 5},
		{name: "image changed, then wake", edit: func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "registry.example/app:2" }, action: ActionWake, want: 0},
		{name: "scaled up by hand, then sleep again", edit: func(d *appsv1.Deployment) { r := int32(2); d.Spec.Replicas = &r }, action: ActionSleep, want: 2},
		// Back at the saved count (kubectl scale, Argo CD's self-heal): awake,
		// not a sleep cut short to be finished.
		{name: "scaled back to the saved count, then sleep again", edit: func(d *appsv1.Deployment) { r := int32(3); d.Spec.Replicas = &r }, action: ActionSleep, want: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
			rec := record.NewFakeRecorder(10)
			s := newTestScaler(t, c, testConfig(t), rec)
			if res := s.Sleep(context.Background(), Request{Workload: web}); res.Result != ResultSuccess {
				t.Fatalf("sleep: %s", res)
			}
			apps.edit("shop", "web", tc.edit)
			var res Result
			if tc.action == ActionWake {
				res = s.Wake(context.Background(), Request{Workload: web})
			} else {
				res = s.Sleep(context.Background(), Request{Workload: web})
			}
			if res.Result != ResultUserChange {
				t.Fatalf("%s after edit: %s, want %s", tc.action, res, ResultUserChange)
			}
			after := apps.get("shop", "web")
			if *after.Spec.Replicas != tc.want {
				t.Errorf("replicas %d, want the user's %d", *after.Spec.Replicas, tc.want)
			}
			for _, k := range stateAnnotations {
				if _, ok := after.Annotations[k]; ok {
					t.Errorf("annotation %s left after a user change", k)
				}
			}
			events := drain(rec)
			if last := events[len(events)-1]; !strings.HasPrefix(last, "Warning UPIDUserChange") {
				t.Errorf("last event %q, want a UPIDUserChange warning", last)
			}
			if got := testutil.ToFloat64(s.actionsTotal.WithLabelValues(tc.action, ResultUserChange)); got != 1 {
				t.Errorf("conflict_user_change count %g, want 1", got)
			}
		})
	}
}

// TestUnchangedSpec works through the proofs that nobody edited a sleeping
// workload: its fingerprint, or its generation counted from the one saved
// (for a Deployment, the state's own write counts one; the scale to zero
// one more, for both kinds).
func TestUnchangedSpec(t *testing.T) {
	d := deployment("shop", "web", 3, time.Time{})
	d.Generation = 7
	tests := []struct {
		name        string
		statefulSet bool
		generation  int64 // the workload's now
		replicas    int32
		fingerprint bool   // the saved one matches
		saved       string // the generation annotation; "" for a state written without it
		want        bool
	}{
		{name: "same fingerprint", generation: 12, replicas: 0, fingerprint: true, saved: "7", want: true},
		{name: "same fingerprint, no generation", generation: 12, replicas: 0, fingerprint: true, want: true},
		{name: "asleep, only our writes", generation: 9, replicas: 0, saved: "7", want: true},
		{name: "asleep, one more write", generation: 10, replicas: 0, saved: "7"},
		{name: "saved, not yet scaled", generation: 8, replicas: 3, saved: "7", want: true},
		{name: "saved, not scaled, edited", generation: 9, replicas: 3, saved: "7"},
		{name: "replicas changed by hand", generation: 9, replicas: 2, saved: "7"},
		{name: "no generation saved", generation: 9, replicas: 0},
		{name: "unreadable generation", generation: 9, replicas: 0, saved: "seven"},
		{name: "StatefulSet asleep", statefulSet: true, generation: 8, replicas: 0, saved: "7", want: true},
		{name: "StatefulSet saved, not yet scaled", statefulSet: true, generation: 7, replicas: 3, saved: "7", want: true},
		{name: "StatefulSet edited while asleep", statefulSet: true, generation: 9, replicas: 0, saved: "7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var o *object
			if tc.statefulSet {
				o = wrapStatefulSet(&appsv1.StatefulSet{ObjectMeta: *d.ObjectMeta.DeepCopy(), Spec: appsv1.StatefulSetSpec{Replicas: d.Spec.Replicas, Template: d.Spec.Template}})
			} else {
				o = wrapDeployment(d.DeepCopy())
			}
			writeState(o, 3, time.Now(), 0.5)
			if !tc.fingerprint {
				o.meta.Annotations[AnnotationState] = "sha256:0"
			}
			if tc.saved == "" {
				delete(o.meta.Annotations, AnnotationGeneration)
			} else {
				o.meta.Annotations[AnnotationGeneration] = tc.saved
			}
			o.meta.Generation, o.replicas = tc.generation, tc.replicas
			st, asleep := readState(o)
			if !asleep || !st.valid {
				t.Fatalf("state %+v not read", st)
			}
			if got := st.unchanged(o); got != tc.want {
				t.Errorf("unchanged = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSavedAnnotationIsAFigure: upid.io/sleep-saved is read only as a
// finite figure of 0 or more; anyone who may edit the workload writes it,
// and a NaN would poison every sum of savings it is counted in.
func TestSavedAnnotationIsAFigure(t *testing.T) {
	for _, tc := range []struct {
		saved string
		want  float64
	}{{"1.5", 1.5}, {"0", 0}, {"NaN", 0}, {"+Inf", 0}, {"-3", 0}, {"lots", 0}} {
		t.Run(tc.saved, func(t *testing.T) {
			o := wrapDeployment(&appsv1.Deployment{})
			writeState(o, 3, time.Now(), 1)
			o.meta.Annotations[AnnotationSaved] = tc.saved
			if st, _ := readState(o); st.saved != tc.want {
				t.Errorf("saved %v, want %v", st.saved, tc.want)
			}
		})
	}
}

// TestSleepingIsAtZero: the sleeping-workload metrics and wake windows
// list a workload with UPID's state only while it is at zero with the spec
// it slept with.
func TestSleepingIsAtZero(t *testing.T) {
	asleep := func(replicas int32, edit func(*appsv1.Deployment)) *appsv1.Deployment {
		d := deployment("shop", "web", 3, time.Now())
		o := wrapDeployment(d)
		writeState(o, 3, time.Now(), 0.5)
		d.Generation++ // the state's own write (a Deployment's annotations)
		d.Spec.Replicas = &replicas
		if replicas == 0 {
			d.Generation++ // the scale to zero
		}
		if edit != nil {
			edit(d)
		}
		return d
	}
	for _, tc := range []struct {
		name string
		d    *appsv1.Deployment
		want int
	}{
		{"asleep", asleep(0, nil), 1},
		{"scaled back up by hand", asleep(5, func(d *appsv1.Deployment) { d.Generation++ }), 0},
		{"saved, not yet scaled", asleep(3, nil), 0},
		{"edited while at zero", asleep(0, func(d *appsv1.Deployment) {
			d.Generation++
			d.Spec.Template.Spec.Containers[0].Image = "registry.example/app:2"
		}), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sleeping([]*appsv1.Deployment{tc.d}, nil, nil, nil); len(got) != tc.want {
				t.Errorf("listed %v, want %d", got, tc.want)
			}
		})
	}
}

// TestLimiterSeed checks that sleeps another process made count in the
// window once each, beside this process's own.
func TestLimiterSeed(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		own, seed   []time.Duration // after t0
		at          time.Duration   // when the next sleep is asked
		max         int
		wantAllow   bool
		wantCounted int
	}{
		{name: "predecessor's sleeps fill the window", seed: []time.Duration{0, time.Minute}, at: 2 * time.Minute, max: 2, wantCounted: 2},
		{name: "others' sleeps in one second", seed: []time.Duration{time.Second, time.Second}, at: 2 * time.Minute, max: 2, wantCounted: 2},
		{name: "older than the interval", seed: []time.Duration{0, time.Minute}, at: 11 * time.Minute, max: 2, wantAllow: true, wantCounted: 1},
		{name: "own sleep recorded to the second is one", own: []time.Duration{1500 * time.Millisecond}, seed: []time.Duration{time.Second}, at: 2 * time.Minute, max: 2, wantAllow: true, wantCounted: 2},
		{name: "own and others", own: []time.Duration{30 * time.Second}, seed: []time.Duration{0, time.Minute}, at: 2 * time.Minute, max: 3, wantCounted: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &limiter{max: tc.max, interval: 10 * time.Minute}
			for _, d := range tc.own {
				if !l.allow(t0.Add(d)) {
					t.Fatal("own sleep refused")
				}
			}
			var seed []time.Time
			for _, d := range tc.seed {
				seed = append(seed, t0.Add(d))
			}
			l.seed(seed)
			if got := l.allow(t0.Add(tc.at)); got != tc.wantAllow {
				t.Errorf("allow = %v, want %v (window %v)", got, tc.wantAllow, l.times)
			}
			if len(l.times) != tc.wantCounted {
				t.Errorf("window holds %d sleeps, want %d: %v", len(l.times), tc.wantCounted, l.times)
			}
		})
	}
}

// TestDryRunChangesNothing runs a whole sleep and wake in dry-run mode,
// including a wake of a workload that really sleeps.
func TestDryRunChangesNothing(t *testing.T) {
	c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
	rec := record.NewFakeRecorder(10)
	cfg := testConfig(t)
	cfg.DryRun = true
	s := newTestScaler(t, c, cfg, rec)
	before := apps.get("shop", "web")
	if res := s.Sleep(context.Background(), Request{Workload: web}); res.Result != ResultDryRun || res.Replicas != 3 {
		t.Fatalf("sleep: %s", res)
	}
	if after := apps.get("shop", "web"); after.ResourceVersion != before.ResourceVersion {
		t.Fatalf("dry-run sleep wrote the workload: %v", after)
	}
	// A real sleep, then a dry-run wake from another scaler.
	real := newTestScaler(t, c, testConfig(t), record.NewFakeRecorder(10))
	if res := real.Sleep(context.Background(), Request{Workload: web}); res.Result != ResultSuccess {
		t.Fatal(res)
	}
	asleep := apps.get("shop", "web")
	if res := s.Wake(context.Background(), Request{Workload: web}); res.Result != ResultDryRun || res.Replicas != 3 {
		t.Fatalf("wake: %s", res)
	}
	if after := apps.get("shop", "web"); after.ResourceVersion != asleep.ResourceVersion {
		t.Fatalf("dry-run wake wrote the workload")
	}
	events := drain(rec)
	if len(events) != 2 || !strings.Contains(events[0], "UPIDDryRun") || !strings.Contains(events[1], "UPIDDryRun") {
		t.Errorf("events %v, want two UPIDDryRun", events)
	}
	if got := testutil.ToFloat64(s.actionsTotal.WithLabelValues(ActionSleep, ResultDryRun)) + testutil.ToFloat64(s.actionsTotal.WithLabelValues(ActionWake, ResultDryRun)); got != 2 {
		t.Errorf("dry_run count %g, want 2", got)
	}
}

// TestDryRunPredictsRealRun: a dry run answers every step as a real run
// would, with dry_run for what would write and dry_run already_asleep for
// a sleep a real run would find done. Found in review: a dry run took a
// rate-limit place for each resend of one workload's idle alert, which
// keeps firing as nothing sleeps, and predicted rate_limited for the
// sleeps of others that a real run makes.
func TestDryRunPredictsRealRun(t *testing.T) {
	type step struct {
		advance time.Duration // before the step
		do      string        // sleep, wake, edit (scaled to 5 by hand) or window (its loop's pass once a wake window is open)
		name    string
		want    string // the real run's result and reason
	}
	const (
		success = "success"
		asleep  = "skipped already_asleep"
		limited = "skipped rate_limited"
		edited  = "conflict_user_change edited_while_asleep"
	)
	tests := []struct {
		name  string
		steps []step
	}{
		{"resends of one sleep", []step{{0, "sleep", "web", success}, {0, "sleep", "web", asleep}, {time.Minute, "sleep", "web", asleep}, {0, "sleep", "api", success}}},
		{"sleeps of others", []step{{0, "sleep", "web", success}, {0, "sleep", "api", success}, {0, "sleep", "db", limited}}},
		// A real sleep outlasts the interval of its place.
		{"resend after the interval", []step{{0, "sleep", "web", success}, {0, "sleep", "api", success}, {10 * time.Minute, "sleep", "web", asleep}, {0, "sleep", "db", success}, {0, "sleep", "api", asleep}}},
		{"edited while asleep", []step{{0, "sleep", "web", success}, {0, "edit", "web", ""}, {0, "sleep", "web", edited}, {0, "sleep", "web", success}, {0, "sleep", "api", limited}}},
		{"woken by its alert", []step{{0, "sleep", "web", success}, {0, "wake", "web", success}, {0, "wake", "web", "skipped not_asleep"}, {0, "sleep", "web", success}, {0, "sleep", "api", limited}}},
		{"woken by a wake window", []step{{0, "sleep", "web", success}, {90 * time.Minute, "window", "", ""}, {time.Hour, "sleep", "web", success}, {0, "sleep", "api", success}, {0, "sleep", "db", limited}}},
	}
	// A dry run's answer to what a real run does.
	predicted := map[string]string{success: ResultDryRun, asleep: ResultDryRun + " already_asleep", edited: ResultDryRun + " edited_while_asleep"}
	monday := time.Date(2026, 12, 7, 7, 0, 0, 0, time.UTC)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			real := make([]Result, len(tc.steps))
			for _, dry := range []bool{false, true} {
				clock := monday
				objs := []runtime.Object{namespace("shop", optedIn)}
				for _, n := range []string{"web", "api", "db"} {
					objs = append(objs, deployment("shop", n, 3, clock.Add(-72*time.Hour)), service("shop", n))
				}
				c, apps := newFakeCluster(objs...)
				cfg := testConfig(t)
				cfg.DryRun = dry
				cfg.MaxActions = 2
				cfg.ActionInterval = model.Duration(10 * time.Minute)
				cfg.WakeWindows = []string{"Mon 08:00-09:00"}
				s, err := New(Options{Kube: c, Config: cfg, Recorder: record.NewFakeRecorder(100), Now: func() time.Time { return clock }})
				if err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				for i, st := range tc.steps {
					clock = clock.Add(st.advance)
					w := Workload{Namespace: "shop", Kind: KindDeployment, Name: st.name}
					var res Result
					switch st.do {
					case "sleep":
						res = s.Sleep(ctx, Request{Workload: w, Cause: "test"})
					case "wake":
						res = s.Wake(ctx, Request{Workload: w, Cause: "test"})
					case "edit":
						apps.edit("shop", st.name, func(d *appsv1.Deployment) { five := int32(5); d.Spec.Replicas = &five })
						continue
					case "window":
						apps.fillCaches(s)
						opened, ok := OpenedAt(s.windows, clock)
						if !ok {
							t.Fatalf("step %d: no wake window open at %s", i, clock)
						}
						s.wakeOpened(ctx, opened)
						continue
					}
					want := st.want
					if p, ok := predicted[want]; ok && dry {
						want = p
					}
					if got := strings.TrimSpace(res.Result + " " + res.Reason); got != want {
						t.Errorf("dry run %v, step %d, %s %s: %s, want %s", dry, i, st.do, st.name, got, want)
					}
					if !dry {
						real[i] = res
					} else if res.Replicas != real[i].Replicas {
						t.Errorf("dry run, step %d, %s %s: %d replicas, the real run's %d", i, st.do, st.name, res.Replicas, real[i].Replicas)
					}
				}
				s.Close()
			}
		})
	}
}

// TestRateLimitHolds: at most max_actions sleeps per interval, over a
// sliding window; wakes are never held back.
func TestRateLimitHolds(t *testing.T) {
	objs := []runtime.Object{namespace("shop", optedIn)}
	for _, n := range []string{"a", "b", "c", "d"} {
		objs = append(objs, deployment("shop", n, 2, time.Now().Add(-72*time.Hour)), service("shop", n))
	}
	c, apps := newFakeCluster(objs...)
	cfg := testConfig(t)
	cfg.MaxActions = 2
	cfg.ActionInterval = model.Duration(10 * time.Minute)
	clock := time.Now()
	s, err := New(Options{Kube: c, Config: cfg, Recorder: record.NewFakeRecorder(100), Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	sleep := func(name string) Result {
		return s.Sleep(context.Background(), Request{Workload: Workload{Namespace: "shop", Kind: KindDeployment, Name: name}})
	}
	steps := []struct {
		advance time.Duration
		name    string
		result  string
	}{
		{0, "a", ResultSuccess},
		{time.Minute, "b", ResultSuccess},
		{time.Minute, "c", ResultSkipped}, // 2 in the last 10m
		{7*time.Minute + 59*time.Second, "c", ResultSkipped},
		{time.Second, "c", ResultSuccess}, // a is 10m old
		{0, "d", ResultSkipped},
	}
	for i, st := range steps {
		clock = clock.Add(st.advance)
		res := sleep(st.name)
		if res.Result != st.result {
			t.Fatalf("step %d: sleep %s: %s, want %s", i, st.name, res, st.result)
		}
		if res.Result == ResultSkipped && res.Reason != "rate_limited" {
			t.Fatalf("step %d: reason %q, want rate_limited", i, res.Reason)
		}
		if d := apps.get("shop", st.name); (res.Result == ResultSkipped) != (*d.Spec.Replicas == 2) {
			t.Fatalf("step %d: replicas %d after %s", i, *d.Spec.Replicas, res)
		}
	}
	// Waking undoes the scaler's own work and is never rate limited.
	if res := s.Wake(context.Background(), Request{Workload: Workload{Namespace: "shop", Kind: KindDeployment, Name: "a"}}); res.Result != ResultSuccess {
		t.Errorf("wake under the limit: %s", res)
	}
}

// TestNewRejectsBadConfig: every bad setting is named at start, not at the
// first notification.
func TestNewRejectsBadConfig(t *testing.T) {
	c, _ := newFakeCluster()
	cfg := testConfig(t)
	cfg.BearerTokenFile = "/nonexistent/token"
	cfg.WakeWindows = []string{"Mon 8-9"}
	cfg.Actions = []config.ScalerAction{{Alert: "X", Action: "delete"}, {Action: "sleep"}}
	cfg.LeaderElection.Enabled = true
	cfg.LeaderElection.RenewDeadline = cfg.LeaderElection.LeaseDuration
	_, err := New(Options{Kube: c, Config: cfg})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"scaler.bearer_token_file", "scaler.wake_windows[0]", "scaler.actions[0].action", "scaler.actions[1].alert", "scaler.leader_election.renew_deadline"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

// TestLeaseTimingsStopTheLeaderFirst: a leader cut off from its Lease gives
// up a retry period and a renew deadline after its last renewal; timings
// where that comes as late as lease_duration, when another replica may
// lead, are refused (10s + 5s against 15s), the defaults are not.
func TestLeaseTimingsStopTheLeaderFirst(t *testing.T) {
	c, _ := newFakeCluster()
	cfg := testConfig(t)
	cfg.LeaderElection = config.Default().Scaler.LeaderElection
	if _, err := New(Options{Kube: c, Config: cfg}); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	cfg.LeaderElection.RetryPeriod = model.Duration(5 * time.Second)
	_, err := New(Options{Kube: c, Config: cfg})
	if err == nil || !strings.Contains(err.Error(), "scaler.leader_election.renew_deadline: 10s plus retry_period 5s must be below lease_duration 15s") {
		t.Errorf("renew_deadline + retry_period = lease_duration: %v", err)
	}
}

// TestRateLimitPlaceReturned: a sleep that took its place in the rate limit
// and then slept nothing gives it back, so the next idle workload is put to
// sleep rather than skipped as rate_limited: one that, retrying a conflict,
// found the workload already at zero (scaled by someone else meanwhile), and
// one whose state patch failed (a 500, as from an admission webhook or
// missing RBAC), which Alertmanager resends, each resend taking another
// place (found in review). A sleep whose state was saved but whose scale
// failed keeps its place: the resend finishes it.
func TestRateLimitPlaceReturned(t *testing.T) {
	for _, tc := range []struct {
		name string
		// fail answers web's first write of the verb and subresource.
		verb, sub string
		fail      func(apps *fakeApps) error
		webResult string
		webAsleep bool // its state saved
		apiResult string
	}{
		{"raced to zero", "patch", "", func(apps *fakeApps) error {
			// Someone scales web to zero between the scaler's read and
			// its write (the fake's lock is held here).
			d := apps.objects["shop/web"]
			oldSpec, ann := d.Spec.DeepCopy(), maps.Clone(d.Annotations)
			zero := int32(0)
			d.Spec.Replicas = &zero
			apps.wrote(d, oldSpec, ann)
			return apierrors.NewConflict(deploymentsGR, "web", errStale)
		}, ResultSkipped, false, ResultSuccess},
		{"state patch failed", "patch", "", func(*fakeApps) error { return apierrors.NewInternalError(errStale) }, ResultFailure, false, ResultSuccess},
		{"scale failed", "update", "scale", func(*fakeApps) error { return apierrors.NewInternalError(errStale) }, ResultFailure, true, ResultSkipped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := time.Now().Add(-72 * time.Hour)
			c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, old), deployment("shop", "api", 2, old), service("shop", "web"), service("shop", "api"))
			cfg := testConfig(t)
			cfg.MaxActions = 1
			s := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
			failed := false
			apps.fail = func(verb, sub string) error {
				if verb == tc.verb && sub == tc.sub && !failed {
					failed = true
					return tc.fail(apps)
				}
				return nil
			}
			if res := s.Sleep(context.Background(), Request{Workload: Workload{Namespace: "shop", Kind: KindDeployment, Name: "web"}, Cause: "test"}); res.Result != tc.webResult {
				t.Fatalf("sleep of web: %v, want %s", res, tc.webResult)
			}
			if _, asleep := readState(&object{meta: &apps.get("shop", "web").ObjectMeta}); asleep != tc.webAsleep {
				t.Fatalf("web's state saved: %v, want %v", asleep, tc.webAsleep)
			}
			res := s.Sleep(context.Background(), Request{Workload: Workload{Namespace: "shop", Kind: KindDeployment, Name: "api"}, Cause: "test"})
			if res.Result != tc.apiResult || tc.apiResult == ResultSkipped && res.Reason != "rate_limited" {
				t.Errorf("sleep of api: %v, want %s", res, tc.apiResult)
			}
		})
	}
}

func lease(ns, name string) *coordinationv1.Lease {
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}
