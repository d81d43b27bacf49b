package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

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
		if r != "dropped" && r != "retried" {
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
		reads  int
	}{
		{"deployment", rsPod, func(w Workload) (metav1.Object, error) {
			if w != (Workload{"ReplicaSet", "web-abc"}) {
				return nil, errors.New("read " + w.Kind + " " + w.Name)
			}
			return controlled("uid-rs", deployment), nil
		}, "found", rightsized + " on apps/v1 Deployment team/web uid-d", 1},
		{"cronjob", jobPod, func(w Workload) (metav1.Object, error) {
			if w != (Workload{"Job", "report-29000000"}) {
				return nil, errors.New("read " + w.Kind + " " + w.Name)
			}
			return controlled("uid-job", cronJob), nil
		}, "found", rightsized + " on batch/v1 CronJob team/report uid-cj", 1},
		{"rollout", rolloutPod, func(Workload) (metav1.Object, error) { return controlled("", rollout), nil },
			"found", rightsized + " on argoproj.io/v1alpha1 Rollout team/web uid-ro", 1},
		{"replicaset of its own", rsPod, func(Workload) (metav1.Object, error) { return controlled("uid-rs", nil), nil }, "not_found", "", 1},
		{"replicaset replaced since", rsPod, func(Workload) (metav1.Object, error) { return controlled("uid-other", deployment), nil }, "not_found", "", 1},
		// Failures that may pass are read again, ownerRetries times.
		{"replicaset gone", rsPod, func(w Workload) (metav1.Object, error) {
			return nil, apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "replicasets"}, w.Name)
		}, "not_found", "", 1 + ownerRetries},
		{"api server slow", rsPod, func(Workload) (metav1.Object, error) { return nil, context.DeadlineExceeded }, "error", "", 1 + ownerRetries},
		{"panic", rsPod, func(Workload) (metav1.Object, error) { panic("boom") }, "error", "", 1},
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
			h.owners.retryBase, h.owners.retryMax = time.Millisecond, time.Millisecond
			var reads atomic.Int32
			h.opts.GetWorkload = func(_ context.Context, _ string, w Workload) (metav1.Object, error) {
				reads.Add(1)
				return tc.get(w)
			}
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
			if n, retried := reads.Load(), testutil.ToFloat64(h.owners.lookups.WithLabelValues("retried")); n != int32(tc.reads) || retried != float64(tc.reads-1) {
				t.Errorf("%d reads, %g counted retried; want %d and %d", n, retried, tc.reads, tc.reads-1)
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
// ownerWorkers lookups and ownerQueue Events, drops the rest, and leaves
// no goroutine behind once stopped.
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
	// The workers and the workqueue's wait for retries; a few goroutines
	// of the runtime or of earlier tests' timers may start meanwhile, one
	// a lookup would be thousands.
	const queue, others = 1, 4
	if most > before+ownerWorkers+queue+others {
		t.Errorf("%d goroutines during the flood, %d before: more than %d lookups at once", most, before, ownerWorkers)
	}
	dropped := testutil.ToFloat64(h.owners.lookups.WithLabelValues("dropped"))
	if dropped != pods-ownerQueue {
		t.Errorf("dropped %g Events, want %d: the queue holds %d", dropped, pods-ownerQueue, ownerQueue)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for lookups(h)+dropped < pods {
		if time.Now().After(deadline) {
			t.Fatalf("after the API server answered: %g lookups ended", lookups(h))
		}
		time.Sleep(5 * time.Millisecond)
	}
	calls.Wait()
	evs := rec.events()
	if want := pods - int(dropped); len(evs) != want || !strings.HasSuffix(evs[0], "on apps/v1 Deployment team/web uid-d") {
		t.Errorf("%d Events (first %q), want %d on the Deployment", len(evs), evs[:min(1, len(evs))], want)
	}
	h.Stop()
	for runtime.NumGoroutine() > before+others {
		if time.Now().After(deadline) {
			t.Fatalf("after Stop: %d goroutines (%d before)", runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOwnerLookupsBoundedWhileRetrying: an Event waiting for its retry
// keeps its place in the bound, so a flood while every read fails holds
// ownerQueue Events and drops the rest; Stop drops those still waiting.
func TestOwnerLookupsBoundedWhileRetrying(t *testing.T) {
	const pods = 1000
	h := newTestHandler(t, ModeEnforce, &staticCluster{})
	h.opts.Recorder = &syncRecorder{}
	// No retry comes before Stop.
	h.owners.retryBase, h.owners.retryMax = time.Hour, time.Hour
	h.opts.GetWorkload = func(context.Context, string, Workload) (metav1.Object, error) {
		return nil, apierrors.NewServiceUnavailable("etcd is down")
	}
	body := reviewBody(t, "team", admissionv1.Create, podKind, webPod(nil))
	for range pods {
		if _, err := h.Review(context.Background(), body); err != nil {
			t.Fatal(err)
		}
	}
	retried := func() float64 { return testutil.ToFloat64(h.owners.lookups.WithLabelValues("retried")) }
	deadline := time.Now().Add(10 * time.Second)
	for retried() < ownerQueue {
		if time.Now().After(deadline) {
			t.Fatalf("%g of the %d queued Events read within 10s", retried(), ownerQueue)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := testutil.ToFloat64(h.owners.lookups.WithLabelValues("dropped")); n != pods-ownerQueue || retried() != ownerQueue {
		t.Errorf("dropped %g, retried %g; want %d dropped, the %d others waiting for a retry", n, retried(), pods-ownerQueue, ownerQueue)
	}
	h.Stop()
	if n := testutil.ToFloat64(h.owners.lookups.WithLabelValues("dropped")); n != pods || lookups(h) != 0 {
		t.Errorf("after Stop: dropped %g, ended otherwise %g; want all %d dropped", n, lookups(h), pods)
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
	before := runtime.NumGoroutine()
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
	if n := runtime.NumGoroutine(); n > before-ownerWorkers {
		t.Errorf("%d goroutines after Stop, %d before: the %d workers are left", n, before, ownerWorkers)
	}
	if _, err := h.Review(context.Background(), body); err != nil {
		t.Fatal(err)
	}
	if n := h.owners.held.Load(); n != 0 {
		t.Errorf("an admission after Stop queued an Event (%d held)", n)
	}
	// The cancelled lookup's Event, and the admission's after Stop.
	if n := testutil.ToFloat64(h.owners.lookups.WithLabelValues("dropped")); n != 2 || lookups(h) != 0 {
		t.Errorf("dropped %g, ended otherwise %g; want the cancelled lookup's Event and the admission's after Stop dropped", n, lookups(h))
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

// TestRetryPolicy: which failed reads of a pod's controller are read
// again, and what an Event ends as once its retries are spent.
func TestRetryPolicy(t *testing.T) {
	rs := schema.GroupResource{Group: "apps", Resource: "replicasets"}
	status := func(code int32, reason metav1.StatusReason) error {
		return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason}}
	}
	for _, tc := range []struct {
		name      string
		err       error
		transient bool
		final     string // once the retries are spent, or at once if not transient
	}{
		{"not found: a lagging read, or deleted", apierrors.NewNotFound(rs, "web-abc"), true, "not_found"},
		{"too many requests", apierrors.NewTooManyRequests("slow down", 1), true, "error"},
		{"429 without a reason", status(http.StatusTooManyRequests, ""), true, "error"},
		{"internal error", apierrors.NewInternalError(errors.New("etcd")), true, "error"},
		{"service unavailable", apierrors.NewServiceUnavailable("starting"), true, "error"},
		{"server timeout", apierrors.NewServerTimeout(rs, "get", 1), true, "error"},
		{"gateway timeout", apierrors.NewTimeoutError("slow", 1), true, "error"},
		{"bad gateway", status(http.StatusBadGateway, ""), true, "error"},
		{"unexpected server error", apierrors.NewGenericServerResponse(http.StatusInternalServerError, "get", rs, "web-abc", "", 0, true), true, "error"},
		{"our read's timeout", context.DeadlineExceeded, true, "error"},
		{"wrapped timeout", fmt.Errorf("get replicasets: %w", context.DeadlineExceeded), true, "error"},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true, "error"},
		{"client rate limiter", errors.New("client rate limiter Wait returned an error: rate: Wait(n=1) would exceed context deadline"), true, "error"},
		{"stopping", context.Canceled, false, "error"},
		{"forbidden", apierrors.NewForbidden(rs, "web-abc", errors.New("RBAC")), false, "error"},
		{"unauthorized", apierrors.NewUnauthorized("token"), false, "error"},
		{"bad request", apierrors.NewBadRequest("name"), false, "error"},
		{"gone", apierrors.NewGone("too old"), false, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := transient(tc.err); got != tc.transient {
				t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.transient)
			}
			for requeues := 0; requeues <= ownerRetries; requeues++ {
				result, again := afterFailure(tc.err, requeues, ownerRetries)
				wantAgain := tc.transient && requeues < ownerRetries
				want := tc.final
				if wantAgain {
					want = "retried"
				}
				if result != want || again != wantAgain {
					t.Errorf("after %d retries: %q, again %v; want %q, %v", requeues, result, again, want, wantAgain)
				}
			}
		})
	}
}

// catchingUp is a cache that holds the workloads of cluster only once
// caught is set: an informer behind the API server.
type catchingUp struct {
	Cluster
	caught atomic.Bool
}

func (c *catchingUp) Reference(ns string, w Workload) *corev1.ObjectReference {
	if !c.caught.Load() {
		return nil
	}
	return c.Cluster.Reference(ns, w)
}

// TestOwnerLookupRetries: a read that fails transiently is read again
// after a backoff, through the workqueue, until the Event lands on the
// Deployment, the cache catches up, or the retries are spent; one that
// cannot pass is not read again.
func TestOwnerLookupRetries(t *testing.T) {
	yes := true
	rs := schema.GroupResource{Group: "apps", Resource: "replicasets"}
	found := controlled("", &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "uid-d", Controller: &yes})
	const onDeployment = "on apps/v1 Deployment team/web uid-d"
	const cached = "on apps/v1 Deployment team/web uid-web"
	unavailable := apierrors.NewServiceUnavailable("starting")
	for _, tc := range []struct {
		name string
		// answers are the reads' failures in turn; past them a read
		// finds the ReplicaSet. catchUp makes the cache hold the
		// Deployment after the first read.
		answers []error
		always  error
		catchUp bool
		result  string
		reads   int
		retried float64
		event   string // the Event's suffix, "" for none
	}{
		{"first read unavailable", []error{unavailable}, nil, false, "found", 2, 1, onDeployment},
		{"replicaset not readable yet", []error{apierrors.NewNotFound(rs, "web-abc"), apierrors.NewNotFound(rs, "web-abc")}, nil, false, "found", 3, 2, onDeployment},
		{"throttled then slow", []error{apierrors.NewTooManyRequests("slow down", 0), context.DeadlineExceeded}, nil, false, "found", 3, 2, onDeployment},
		{"cache caught up before the retry", []error{unavailable}, nil, true, "cached", 1, 1, cached},
		{"last retry succeeds", []error{unavailable, unavailable, unavailable, unavailable, unavailable}, nil, false, "found", 1 + ownerRetries, ownerRetries, onDeployment},
		{"unavailable throughout", nil, unavailable, false, "error", 1 + ownerRetries, ownerRetries, ""},
		{"forbidden", nil, apierrors.NewForbidden(rs, "web-abc", errors.New("RBAC")), false, "error", 1, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cluster := &catchingUp{Cluster: &staticCluster{wl: map[string]map[string]string{"team/Deployment/web": {}}}}
			h := newTestHandler(t, ModeEnforce, cluster)
			rec := &syncRecorder{}
			h.opts.Recorder = rec
			h.owners.retryBase, h.owners.retryMax = time.Millisecond, 4*time.Millisecond
			var reads atomic.Int32
			h.opts.GetWorkload = func(context.Context, string, Workload) (metav1.Object, error) {
				n := int(reads.Add(1))
				if tc.catchUp {
					cluster.caught.Store(true)
				}
				switch {
				case tc.always != nil:
					return nil, tc.always
				case n <= len(tc.answers):
					return nil, tc.answers[n-1]
				}
				return found, nil
			}
			reviewAndApply(t, h, webPod(nil))
			deadline := time.Now().Add(10 * time.Second)
			for lookups(h) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the Event did not end within 10s (%d reads)", reads.Load())
				}
				time.Sleep(time.Millisecond)
			}
			if n := testutil.ToFloat64(h.owners.lookups.WithLabelValues(tc.result)); n != 1 || lookups(h) != 1 {
				t.Errorf("lookups{result=%s} = %g of %g ended, want 1", tc.result, n, lookups(h))
			}
			retried := testutil.ToFloat64(h.owners.lookups.WithLabelValues("retried"))
			if n := int(reads.Load()); n != tc.reads || retried != tc.retried {
				t.Errorf("%d reads, %g retried; want %d, %g", n, retried, tc.reads, tc.retried)
			}
			evs := rec.events()
			if tc.event == "" && len(evs) != 0 || tc.event != "" && (len(evs) != 1 || !strings.HasSuffix(evs[0], tc.event)) {
				t.Errorf("Events %q, want one %q", evs, tc.event)
			}
			if n := h.owners.held.Load(); n != 0 {
				t.Errorf("%d Events still held once ended", n)
			}
		})
	}
}

// countingLimiter is a client-side rate limiter that counts the requests
// that asked it for a token.
type countingLimiter struct{ asked atomic.Int32 }

func (l *countingLimiter) TryAccept() bool { l.asked.Add(1); return true }
func (l *countingLimiter) Accept()         { l.asked.Add(1) }
func (l *countingLimiter) Wait(context.Context) error {
	l.asked.Add(1)
	return nil
}
func (l *countingLimiter) Stop()        {}
func (l *countingLimiter) QPS() float32 { return 1 }

// TestOwnerLookupsRateLimitOfTheirOwn: the owner lookups' client takes no
// token of the rate limiter of the client it is made from (the informers'),
// and limits itself at OwnerLookupQPS; the informers' client does take
// them, so the test would see a shared limiter.
func TestOwnerLookupsRateLimitOfTheirOwn(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/apis/apps/v1/namespaces/team/replicasets/web-abc" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"apiVersion":"meta.k8s.io/v1","kind":"PartialObjectMetadata","metadata":{"name":"web-abc","namespace":"team","uid":"uid-rs"}}`)
	}))
	defer srv.Close()
	informers := &countingLimiter{}
	rc := &rest.Config{Host: srv.URL, QPS: 50, Burst: 100, RateLimiter: informers}
	lc := OwnerLookupConfig(rc)
	if lc.QPS != OwnerLookupQPS || lc.Burst != OwnerLookupBurst || lc.RateLimiter != nil {
		t.Errorf("lookups' config: QPS %g, burst %d, limiter %v; want %d, %d and a limiter of their own", lc.QPS, lc.Burst, lc.RateLimiter, OwnerLookupQPS, OwnerLookupBurst)
	}
	if rc.QPS != 50 || rc.RateLimiter != informers {
		t.Errorf("OwnerLookupConfig changed the informers' config: QPS %g, limiter %v", rc.QPS, rc.RateLimiter)
	}
	for _, tc := range []struct {
		name   string
		config *rest.Config
		asked  int32
	}{
		{"lookups", lc, 0},
		{"informers", rc, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			informers.asked.Store(0)
			meta, err := metadata.NewForConfig(tc.config)
			if err != nil {
				t.Fatal(err)
			}
			get := MetadataGetter(meta)
			for range 3 {
				obj, err := get(context.Background(), "team", Workload{"ReplicaSet", "web-abc"})
				if err != nil || obj.GetUID() != "uid-rs" {
					t.Fatalf("read %v, %v; want the ReplicaSet", obj, err)
				}
			}
			if n := informers.asked.Load(); n != tc.asked {
				t.Errorf("3 reads asked the informers' limiter %d times, want %d", n, tc.asked)
			}
		})
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
