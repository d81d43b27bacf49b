package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	krt "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/upid-dev/upid/internal/argorollouts"
)

// syncRecorder is a refRecorder the owner lookups' goroutines may call.
type syncRecorder struct {
	mu  sync.Mutex
	rec refRecorder
}

func (r *syncRecorder) Event(obj krt.Object, eventType, reason, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rec.Event(obj, eventType, reason, message)
}
func (r *syncRecorder) Eventf(obj krt.Object, eventType, reason, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rec.Eventf(obj, eventType, reason, format, args...)
}
func (r *syncRecorder) AnnotatedEventf(obj krt.Object, a map[string]string, eventType, reason, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rec.AnnotatedEventf(obj, a, eventType, reason, format, args...)
}
func (r *syncRecorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.rec.events...)
}

// controlled is a ReplicaSet's or Job's metadata as the API server has it.
func controlled(uid types.UID, owner *metav1.OwnerReference) metav1.Object {
	m := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{UID: uid}}
	if owner != nil {
		m.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return m
}

// lookups is how many owner lookups have ended, whatever their result.
func lookups(h *Handler) float64 {
	n := 0.0
	for _, r := range ownerLookupResults {
		if r != "dropped" {
			n += testutil.ToFloat64(h.owners.lookups.WithLabelValues(r))
		}
	}
	return n
}

// TestEventsOfUncachedOwners: a Deployment or CronJob the cache does not
// hold at admission gets its Event once the pod's ReplicaSet or Job names
// it with its UID; a controller that does not name it (a ReplicaSet of its
// own, one replaced since, a failed or panicking read) gets the Event of no
// object rather than of a wrong one.
func TestEventsOfUncachedOwners(t *testing.T) {
	yes := true
	deployment := &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "uid-d", Controller: &yes}
	cronJob := &metav1.OwnerReference{APIVersion: "batch/v1", Kind: "CronJob", Name: "report", UID: "uid-cj", Controller: &yes}
	jobPod := webPod(nil)
	jobPod.Labels = nil
	jobPod.OwnerReferences[0] = metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "report-29000000", UID: "uid-job", Controller: &yes}
	rsPod := webPod(nil)
	rsPod.OwnerReferences[0].UID = "uid-rs"
	rolloutPod := webPod(nil)
	rolloutPod.Labels = map[string]string{argorollouts.HashLabel: "abc"}
	rollout := &metav1.OwnerReference{APIVersion: "argoproj.io/v1alpha1", Kind: argorollouts.Kind, Name: "web", UID: "uid-ro", Controller: &yes}
	const rightsized = "Normal UPIDRightsized Pod admitted with UPID's resources: app: requests cpu 250m, memory 128Mi (was requests cpu 1, memory 1Gi)"
	for _, tc := range []struct {
		name   string
		pod    *corev1.Pod
		get    func(w Workload) (metav1.Object, error)
		result string
		want   string // "" for no Event
	}{
		{"deployment", rsPod, func(w Workload) (metav1.Object, error) {
			if w != (Workload{"ReplicaSet", "web-abc"}) {
				return nil, errors.New("read " + w.Kind + " " + w.Name)
			}
			return controlled("uid-rs", deployment), nil
		}, "found", rightsized + " on apps/v1 Deployment team/web uid-d"},
		{"cronjob", jobPod, func(w Workload) (metav1.Object, error) {
			if w != (Workload{"Job", "report-29000000"}) {
				return nil, errors.New("read " + w.Kind + " " + w.Name)
			}
			return controlled("uid-job", cronJob), nil
		}, "found", rightsized + " on batch/v1 CronJob team/report uid-cj"},
		{"rollout", rolloutPod, func(Workload) (metav1.Object, error) { return controlled("", rollout), nil },
			"found", rightsized + " on argoproj.io/v1alpha1 Rollout team/web uid-ro"},
		{"replicaset of its own", rsPod, func(Workload) (metav1.Object, error) { return controlled("uid-rs", nil), nil }, "not_found", ""},
		{"replicaset replaced since", rsPod, func(Workload) (metav1.Object, error) { return controlled("uid-other", deployment), nil }, "not_found", ""},
		{"replicaset gone", rsPod, func(w Workload) (metav1.Object, error) {
			return nil, apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "replicasets"}, w.Name)
		}, "not_found", ""},
		{"api server slow", rsPod, func(Workload) (metav1.Object, error) { return nil, context.DeadlineExceeded }, "error", ""},
		{"panic", rsPod, func(Workload) (metav1.Object, error) { panic("boom") }, "error", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &syncRecorder{}
			h := newTestHandler(t, ModeEnforce, &staticCluster{})
			h.opts.Recorder = rec
			h.opts.Recommendations = staticRecs{
				key("team", "Deployment", "web"):      {Containers: map[string]Target{"app": {CPURequest: f(0.25), MemoryRequest: f(128 * mi)}}},
				key("team", argorollouts.Kind, "web"): {Containers: map[string]Target{"app": {CPURequest: f(0.25), MemoryRequest: f(128 * mi)}}},
				key("team", "CronJob", "report"):      {Containers: map[string]Target{"app": {CPURequest: f(0.25), MemoryRequest: f(128 * mi)}}},
			}
			h.opts.GetWorkload = func(_ context.Context, _ string, w Workload) (metav1.Object, error) { return tc.get(w) }
			got := reviewAndApply(t, h, tc.pod)
			if cpu := got.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; cpu.String() != "250m" {
				t.Fatalf("cpu request %s, want 250m", cpu.String())
			}
			deadline := time.Now().Add(10 * time.Second)
			for lookups(h) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the owner lookup did not end within 10s")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if n := testutil.ToFloat64(h.owners.lookups.WithLabelValues(tc.result)); n != 1 {
				t.Errorf("lookups{result=%s} = %g, want 1", tc.result, n)
			}
			evs := rec.events()
			if tc.want == "" && len(evs) != 0 || tc.want != "" && (len(evs) != 1 || evs[0] != tc.want) {
				t.Errorf("Events %q, want %q", evs, tc.want)
			}
		})
	}
}

// TestOwnerLookupsBounded: while the API server does not answer, a flood
// of admissions of uncached workloads is answered at once, holds at most
// ownerWorkers goroutines and ownerQueue Events, drops the rest, and leaves
// no goroutine behind once it answers.
func TestOwnerLookupsBounded(t *testing.T) {
	const pods = 3000
	release := make(chan struct{})
	var calls sync.WaitGroup
	h := newTestHandler(t, ModeEnforce, &staticCluster{})
	rec := &syncRecorder{}
	h.opts.Recorder = rec
	yes := true
	h.opts.GetWorkload = func(ctx context.Context, _ string, _ Workload) (metav1.Object, error) {
		calls.Add(1)
		defer calls.Done()
		<-release
		return controlled("", &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "uid-d", Controller: &yes}), nil
	}
	body := reviewBody(t, "team", admissionv1.Create, podKind, webPod(nil))
	before := runtime.NumGoroutine()
	began := time.Now()
	most := 0
	for range pods {
		if _, err := h.Review(context.Background(), body); err != nil {
			t.Fatal(err)
		}
		most = max(most, runtime.NumGoroutine())
	}
	// The lookups cannot end before release: the admissions did not wait
	// for them. The bound is loose for a loaded machine; one waiting
	// lookup would take ownerTimeout, every admission far more.
	if took := time.Since(began); took > 20*time.Second {
		t.Errorf("%d admissions took %s while the API server did not answer", pods, took)
	}
	// A few goroutines of the runtime or of earlier tests' timers may
	// start meanwhile; one a lookup would be thousands.
	const others = 4
	if most > before+ownerWorkers+others {
		t.Errorf("%d goroutines during the flood, %d before: more than %d lookups at once", most, before, ownerWorkers)
	}
	dropped := testutil.ToFloat64(h.owners.lookups.WithLabelValues("dropped"))
	if lo, hi := float64(pods-ownerQueue-ownerWorkers), float64(pods-ownerQueue); dropped < lo || dropped > hi {
		t.Errorf("dropped %g Events, want %g to %g: the queue holds %d", dropped, lo, hi, ownerQueue)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for lookups(h)+dropped < pods || len(h.owners.workers) > 0 || runtime.NumGoroutine() > before+others {
		if time.Now().After(deadline) {
			t.Fatalf("after the API server answered: %g lookups ended, %d goroutines (%d before)", lookups(h), runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
	calls.Wait()
	evs := rec.events()
	if want := pods - int(dropped); len(evs) != want || !strings.HasSuffix(evs[0], "on apps/v1 Deployment team/web uid-d") {
		t.Errorf("%d Events (first %q), want %d on the Deployment", len(evs), evs[:min(1, len(evs))], want)
	}
}

// TestOwnerLookupsStop: Stop, which Run calls once the admission server
// has stopped and before it shuts the Event recorder down, cancels the
// lookup in flight and returns only once no worker is left, so none
// records on a recorder already shut down or outlives its test; an
// admission after it queues nothing (found in review: the workers ran on
// with a context of their own, past the recorder's shutdown).
func TestOwnerLookupsStop(t *testing.T) {
	h := newTestHandler(t, ModeEnforce, &staticCluster{})
	h.opts.Recorder = &syncRecorder{}
	started, ended, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	defer close(release)
	yes := true
	h.opts.GetWorkload = func(ctx context.Context, _ string, _ Workload) (metav1.Object, error) {
		defer close(ended)
		close(started)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-release:
			return controlled("", &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "uid-d", Controller: &yes}), nil
		}
	}
	body := reviewBody(t, "team", admissionv1.Create, podKind, webPod(nil))
	if _, err := h.Review(context.Background(), body); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the owner lookup did not start within 10s")
	}
	stopped := make(chan struct{})
	go func() { h.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return within 10s")
	}
	select {
	case <-ended:
	default:
		t.Fatal("Stop returned while a lookup was still running")
	}
	if n := len(h.owners.workers); n != 0 {
		t.Errorf("%d workers after Stop", n)
	}
	if _, err := h.Review(context.Background(), body); err != nil {
		t.Fatal(err)
	}
	if n := len(h.owners.workers) + len(h.owners.queue); n != 0 {
		t.Errorf("an admission after Stop queued an Event or started a worker (%d)", n)
	}
	if n := testutil.ToFloat64(h.owners.lookups.WithLabelValues("dropped")); n != 1 {
		t.Errorf("dropped %g, want the Event of the admission after Stop", n)
	}
}

// TestDryRunQueuesNoOwnerLookup: a dry-run admission of a pod whose
// workload the cache does not hold neither reads its controller nor
// records an Event later: a dry run has no side effects.
func TestDryRunQueuesNoOwnerLookup(t *testing.T) {
	h := newTestHandler(t, ModeEnforce, &staticCluster{})
	rec := &syncRecorder{}
	h.opts.Recorder = rec
	h.opts.GetWorkload = func(context.Context, string, Workload) (metav1.Object, error) {
		t.Error("a dry run read the pod's controller")
		return nil, errors.New("dry run")
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(reviewBody(t, "team", admissionv1.Create, podKind, webPod(nil)), &review); err != nil {
		t.Fatal(err)
	}
	yes := true
	review.Request.DryRun = &yes
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Review(context.Background(), body); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(h.decisions.WithLabelValues(OutcomeMutated, "enforce")); n != 1 {
		t.Fatalf("decisions{mutated,enforce} = %g, want the dry run decided as any admission", n)
	}
	// Stop waits for any worker an Event had started.
	h.Stop()
	if n := lookups(h) + testutil.ToFloat64(h.owners.lookups.WithLabelValues("dropped")); n != 0 || len(rec.events()) != 0 {
		t.Errorf("a dry run queued %g owner lookups, recorded %q", n, rec.events())
	}
}

// TestEventsOfWorkloadsCachedAfterTheirControllers: the cache holds the
// pod's ReplicaSet or Job, not yet the Deployment or CronJob that owns it
// (found in the race of a live informer with a new Deployment: each kind
// is watched apart). The Event is still the workload's, not the
// controller's; a ReplicaSet or Job of its own keeps it.
func TestEventsOfWorkloadsCachedAfterTheirControllers(t *testing.T) {
	yes := true
	jobPod := webPod(nil)
	jobPod.Labels = nil
	jobPod.OwnerReferences[0] = metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "report-29000000", UID: "uid-job", Controller: &yes}
	rsPod := webPod(nil)
	rsPod.OwnerReferences[0].UID = "uid-rs"
	for _, tc := range []struct {
		name       string
		pod        *corev1.Pod
		controller string // the cached one's
		owner      Workload
		get        metav1.Object
		want       string
	}{
		{"deployment", rsPod, "team/ReplicaSet/web-abc", Workload{"Deployment", "web"},
			controlled("uid-rs", &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "uid-d", Controller: &yes}),
			"on apps/v1 Deployment team/web uid-d"},
		{"cronjob", jobPod, "team/Job/report-29000000", Workload{"CronJob", "report"},
			controlled("uid-job", &metav1.OwnerReference{APIVersion: "batch/v1", Kind: "CronJob", Name: "report", UID: "uid-cj", Controller: &yes}),
			"on batch/v1 CronJob team/report uid-cj"},
		{"replicaset of its own", rsPod, "team/ReplicaSet/web-abc", Workload{}, nil, "on apps/v1 ReplicaSet team/web-abc uid-web-abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cluster := &staticCluster{wl: map[string]map[string]string{tc.controller: {}}, owners: map[string]Workload{tc.controller: tc.owner}}
			h := newTestHandler(t, ModeEnforce, cluster)
			rec := &syncRecorder{}
			h.opts.Recorder = rec
			h.opts.Recommendations = staticRecs{
				key("team", "Deployment", "web"): {Containers: map[string]Target{"app": {CPURequest: f(0.25), MemoryRequest: f(128 * mi)}}},
				key("team", "CronJob", "report"): {Containers: map[string]Target{"app": {CPURequest: f(0.25), MemoryRequest: f(128 * mi)}}},
			}
			h.opts.GetWorkload = func(context.Context, string, Workload) (metav1.Object, error) {
				if tc.get == nil {
					return nil, errors.New("read a controller the cache holds")
				}
				return tc.get, nil
			}
			reviewAndApply(t, h, tc.pod)
			deadline := time.Now().Add(10 * time.Second)
			for len(rec.events()) == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			h.Stop() // and no other Event comes
			evs := rec.events()
			if len(evs) != 1 || !strings.HasSuffix(evs[0], tc.want) {
				t.Errorf("Events %q, want one %q", evs, tc.want)
			}
		})
	}
}
