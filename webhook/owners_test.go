package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	krt "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/upid-dev/upid/internal/argorollouts"
)

// syncRecorder is a refRecorder concurrent admissions may call.
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

// object is a workload's metadata as the API server has it.
func object(uid types.UID, annotations map[string]string, owner *metav1.OwnerReference) metav1.Object {
	m := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{UID: uid, Annotations: annotations}}
	if owner != nil {
		m.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return m
}

// controllerRef is a controller reference to kind/name.
func controllerRef(apiVersion, kind, name string, uid types.UID) *metav1.OwnerReference {
	yes := true
	return &metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: &yes}
}

// stubAPI answers reads from objects (an error value fails the read) and
// counts them by "Kind/name".
type stubAPI struct {
	objects map[Workload]any
	mu      sync.Mutex
	reads   map[string]int
}

func (s *stubAPI) get(_ context.Context, _ string, w Workload) (metav1.Object, error) {
	s.mu.Lock()
	if s.reads == nil {
		s.reads = map[string]int{}
	}
	s.reads[w.Kind+"/"+w.Name]++
	s.mu.Unlock()
	switch o := s.objects[w].(type) {
	case metav1.Object:
		return o, nil
	case error:
		return nil, o
	case func():
		o()
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: strings.ToLower(w.Kind) + "s"}, w.Name)
}

func (s *stubAPI) count() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.reads {
		out[k] = v
	}
	return out
}

// readCount is how many reads the lookups sent to the API server.
func readCount(h *Handler) uint64 {
	m := &dto.Metric{}
	_ = h.owners.reads.Write(m)
	return m.GetHistogram().GetSampleCount()
}

// lookupCounts are the lookups by result, those at 0 left out.
func lookupCounts(h *Handler) map[string]float64 {
	out := map[string]float64{}
	for _, r := range ownerLookupResults {
		if n := testutil.ToFloat64(h.owners.results.WithLabelValues(r)); n != 0 {
			out[r] = n
		}
	}
	return out
}

// frozen is a clock for the memo that stands still until moved.
type frozen struct{ now atomic.Int64 }

func (c *frozen) Now() time.Time { return time.Unix(0, c.now.Load()) }

func lookupHandler(t *testing.T, mode string, cluster Cluster, get GetWorkload) (*Handler, *syncRecorder) {
	t.Helper()
	target := &WorkloadRecs{Containers: map[string]Target{"app": {CPURequest: f(0.25), MemoryRequest: f(128 * mi)}}}
	h, err := NewHandler(HandlerOptions{
		DefaultMode: mode, Policy: defaultPolicy, MaxRequestBytes: 64 << 10,
		Recommendations: staticRecs{
			key("team", "Deployment", "web"): target, key("team", argorollouts.Kind, "web"): target,
			key("team", "CronJob", "report"): target, key("team", "StatefulSet", "db"): target,
		},
		Cluster: cluster, GetWorkload: get,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &syncRecorder{}
	h.opts.Recorder = rec
	// The memo's entries last until a test moves its clock.
	h.owners.memo = cache.NewLRUExpireCacheWithClock(memoSize, &frozen{})
	return h, rec
}

// TestOwnerLookups: a pod whose workload the cache does not hold is
// decided on the workload read at admission from the API server, through
// the pod's ReplicaSet or Job and its controller reference: its opt-out
// and mode hold, and the Event lands on it with its UID. A lookup that
// fails admits the pod unchanged (workload_unknown): an opt-out it could
// not read is no consent.
func TestOwnerLookups(t *testing.T) {
	yes := true
	deployment := controllerRef("apps/v1", "Deployment", "web", "uid-d")
	rollout := controllerRef(argorollouts.APIVersion, argorollouts.Kind, "web", "uid-ro")
	cronJob := controllerRef("batch/v1", "CronJob", "report", "uid-cj")
	rsPod := webPod(nil)
	rsPod.OwnerReferences[0].UID = "uid-rs"
	rolloutPod := webPod(nil)
	rolloutPod.Labels = map[string]string{argorollouts.HashLabel: "abc"}
	jobPod := webPod(nil)
	jobPod.Labels = nil
	jobPod.OwnerReferences[0] = metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "report-29000000", UID: "uid-job", Controller: &yes}
	dbPod := webPod(nil)
	dbPod.OwnerReferences[0] = metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "uid-db", Controller: &yes}
	// staticCluster's UIDs.
	cachedRSPod := webPod(nil)
	cachedRSPod.OwnerReferences[0].UID = "uid-web-abc"
	cachedJobPod := jobPod.DeepCopy()
	cachedJobPod.OwnerReferences[0].UID = "uid-report-29000000"
	newPod := webPod(nil) // of a Deployment without recommendations
	newPod.OwnerReferences[0].Name = "new-abc"
	rs, job := Workload{"ReplicaSet", "web-abc"}, Workload{"Job", "report-29000000"}
	dep, cj := Workload{"Deployment", "web"}, Workload{"CronJob", "report"}
	optOut := map[string]string{AnnotationOptOut: optOutValue}
	const rightsized = "Normal UPIDRightsized Pod admitted with UPID's resources: app: requests cpu 250m, memory 128Mi (was requests cpu 1, memory 1Gi)"
	unavailable := apierrors.NewServiceUnavailable("etcd is down")
	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod
		cluster *staticCluster // nil: one that holds no workload
		api     map[Workload]any
		mode    string // the handler's default; "" for enforce
		cpu     string // the pod's CPU request once admitted
		outcome string
		reason  string
		result  string // the lookup's, "" for none
		reads   map[string]int
		event   string // "" for none
	}{
		{"cached", rsPod, &staticCluster{wl: map[string]map[string]string{"team/Deployment/web": {}}}, nil, "",
			"250m", OutcomeMutated, ModeEnforce, "", map[string]int{}, rightsized + " on apps/v1 Deployment team/web uid-web"},
		{"deployment", rsPod, nil, map[Workload]any{rs: object("uid-rs", nil, deployment), dep: object("uid-d", nil, nil)}, "",
			"250m", OutcomeMutated, ModeEnforce, "found", map[string]int{"ReplicaSet/web-abc": 1, "Deployment/web": 1}, rightsized + " on apps/v1 Deployment team/web uid-d"},
		{"deployment opted out", rsPod, nil, map[Workload]any{rs: object("uid-rs", nil, deployment), dep: object("uid-d", optOut, nil)}, "",
			"1", OutcomeSkipped, "opted_out", "found", map[string]int{"ReplicaSet/web-abc": 1, "Deployment/web": 1}, ""},
		// Its mode too is the Deployment's, not the namespace's.
		{"deployment in recommend mode", rsPod, nil, map[Workload]any{rs: object("uid-rs", nil, deployment), dep: object("uid-d", map[string]string{AnnotationMode: ModeRecommend}, nil)}, "",
			"1", OutcomeRecommended, ModeRecommend, "found", map[string]int{"ReplicaSet/web-abc": 1, "Deployment/web": 1},
			"Normal UPIDRecommended Pod admitted unchanged (mode recommend); enforce would set app: requests cpu 250m, memory 128Mi (was requests cpu 1, memory 1Gi) on apps/v1 Deployment team/web uid-d"},
		// Each kind has a watch of its own: the cache may hold the
		// ReplicaSet first. Only the Deployment is read.
		{"replicaset cached first", cachedRSPod, &staticCluster{wl: map[string]map[string]string{"team/ReplicaSet/web-abc": {}}, owners: map[string]Workload{"team/ReplicaSet/web-abc": dep}},
			map[Workload]any{dep: object("uid-web", nil, nil)}, "",
			"250m", OutcomeMutated, ModeEnforce, "found", map[string]int{"Deployment/web": 1}, rightsized + " on apps/v1 Deployment team/web uid-web"},
		{"cronjob", jobPod, nil, map[Workload]any{job: object("uid-job", nil, cronJob), cj: object("uid-cj", nil, nil)}, "",
			"250m", OutcomeMutated, ModeEnforce, "found", map[string]int{"Job/report-29000000": 1, "CronJob/report": 1}, rightsized + " on batch/v1 CronJob team/report uid-cj"},
		// The CronJob controller does not copy a CronJob's annotations to
		// its Jobs: the opt-out is read on the CronJob.
		{"cronjob opted out", jobPod, nil, map[Workload]any{job: object("uid-job", nil, cronJob), cj: object("uid-cj", optOut, nil)}, "",
			"1", OutcomeSkipped, "opted_out", "found", map[string]int{"Job/report-29000000": 1, "CronJob/report": 1}, ""},
		{"cronjob's job cached first", cachedJobPod, &staticCluster{wl: map[string]map[string]string{"team/Job/report-29000000": {}}, owners: map[string]Workload{"team/Job/report-29000000": cj}},
			map[Workload]any{cj: object("uid-report", optOut, nil)}, "",
			"1", OutcomeSkipped, "opted_out", "found", map[string]int{"CronJob/report": 1}, ""},
		// A Rollout is read through its ReplicaSet, to which Argo copies
		// its annotations.
		{"rollout", rolloutPod, nil, map[Workload]any{rs: object("", nil, rollout)}, "",
			"250m", OutcomeMutated, ModeEnforce, "found", map[string]int{"ReplicaSet/web-abc": 1}, rightsized + " on argoproj.io/v1alpha1 Rollout team/web uid-ro"},
		{"rollout opted out", rolloutPod, nil, map[Workload]any{rs: object("", optOut, rollout)}, "",
			"1", OutcomeSkipped, "opted_out", "found", map[string]int{"ReplicaSet/web-abc": 1}, ""},
		{"statefulset", dbPod, nil, map[Workload]any{{"StatefulSet", "db"}: object("uid-db", nil, nil)}, "",
			"250m", OutcomeMutated, ModeEnforce, "found", map[string]int{"StatefulSet/db": 1}, rightsized + " on apps/v1 StatefulSet team/db uid-db"},
		{"statefulset opted out", dbPod, nil, map[Workload]any{{"StatefulSet", "db"}: object("uid-db", optOut, nil)}, "",
			"1", OutcomeSkipped, "opted_out", "found", map[string]int{"StatefulSet/db": 1}, ""},
		// A ReplicaSet of its own, named like a Deployment's, has its own
		// recommendations: none here.
		{"replicaset of its own", rsPod, nil, map[Workload]any{rs: object("uid-rs", nil, nil)}, "",
			"1", OutcomeSkipped, "no_recommendation", "found", map[string]int{"ReplicaSet/web-abc": 1}, ""},
		// Nothing to size: nothing read.
		{"no recommendation", newPod, nil, nil, "", "1", OutcomeSkipped, "no_recommendation", "", map[string]int{}, ""},
		{"pod opted out", webPod(optOut), nil, nil, "", "1", OutcomeSkipped, "opted_out", "", map[string]int{}, ""},
		// Deleted and created again since the pod was made: not the pod's.
		{"replicaset replaced", rsPod, nil, map[Workload]any{rs: object("uid-other", nil, deployment)}, "",
			"1", OutcomeSkipped, "workload_unknown", "not_found", map[string]int{"ReplicaSet/web-abc": 1}, ""},
		{"deployment replaced", rsPod, nil, map[Workload]any{rs: object("uid-rs", nil, deployment), dep: object("uid-new", nil, nil)}, "",
			"1", OutcomeSkipped, "workload_unknown", "not_found", map[string]int{"ReplicaSet/web-abc": 1, "Deployment/web": 1}, ""},
		{"replicaset gone", rsPod, nil, nil, "", "1", OutcomeSkipped, "workload_unknown", "not_found", map[string]int{"ReplicaSet/web-abc": 1}, ""},
		{"deployment unreadable", rsPod, nil, map[Workload]any{rs: object("uid-rs", nil, deployment), dep: unavailable}, "",
			"1", OutcomeSkipped, "workload_unknown", "error", map[string]int{"ReplicaSet/web-abc": 1, "Deployment/web": 1}, ""},
		{"forbidden", rsPod, nil, map[Workload]any{rs: apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "replicasets"}, "web-abc", errors.New("RBAC"))}, "",
			"1", OutcomeSkipped, "workload_unknown", "error", map[string]int{"ReplicaSet/web-abc": 1}, ""},
		{"no answer in time", rsPod, nil, map[Workload]any{rs: context.DeadlineExceeded}, "",
			"1", OutcomeSkipped, "workload_unknown", "timeout", map[string]int{"ReplicaSet/web-abc": 1}, ""},
		{"panic", rsPod, nil, map[Workload]any{rs: func() { panic("boom") }}, "",
			"1", OutcomeSkipped, "workload_unknown", "error", map[string]int{"ReplicaSet/web-abc": 1}, ""},
		// Mode off in the namespace, enforce on the Deployment.
		{"deployment enforces", rsPod, nil, map[Workload]any{rs: object("uid-rs", nil, deployment), dep: object("uid-d", map[string]string{AnnotationMode: ModeEnforce}, nil)}, ModeOff,
			"250m", OutcomeMutated, ModeEnforce, "found", map[string]int{"ReplicaSet/web-abc": 1, "Deployment/web": 1}, rightsized + " on apps/v1 Deployment team/web uid-d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cluster := tc.cluster
			if cluster == nil {
				cluster = &staticCluster{wl: map[string]map[string]string{}}
			}
			mode := tc.mode
			if mode == "" {
				mode = ModeEnforce
			}
			api := &stubAPI{objects: tc.api}
			h, rec := lookupHandler(t, mode, cluster, api.get)
			got := reviewAndApply(t, h, tc.pod)
			if cpu := got.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; cpu.String() != tc.cpu {
				t.Errorf("cpu request %s, want %s", cpu.String(), tc.cpu)
			}
			if n := testutil.ToFloat64(h.decisions.WithLabelValues(tc.outcome, tc.reason)); n != 1 {
				t.Errorf("decisions{%s,%s} = %g, want 1", tc.outcome, tc.reason, n)
			}
			want := map[string]float64{}
			if tc.result != "" {
				want[tc.result] = 1
			}
			if got := lookupCounts(h); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("lookups %v, want %v", got, want)
			}
			if got := api.count(); fmt.Sprint(got) != fmt.Sprint(tc.reads) {
				t.Errorf("reads %v, want %v", got, tc.reads)
			}
			if n := readCount(h); n != uint64(len(api.count())) {
				t.Errorf("read histogram counts %d, want %d", n, len(api.count()))
			}
			evs := rec.events()
			if tc.event == "" && len(evs) != 0 || tc.event != "" && (len(evs) != 1 || evs[0] != tc.event) {
				t.Errorf("Events %q, want %q", evs, tc.event)
			}
		})
	}
}

// TestOwnerLookupsWithoutGetter: a handler without GetWorkload reads
// nothing, and a pod whose workload the cache does not hold is admitted
// unchanged.
func TestOwnerLookupsWithoutGetter(t *testing.T) {
	h, rec := lookupHandler(t, ModeEnforce, &staticCluster{wl: map[string]map[string]string{}}, nil)
	if cpu := reviewAndApply(t, h, webPod(nil)).Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; cpu.String() != "1" {
		t.Errorf("cpu request %s, want 1: the Deployment's opt-out is unknown", cpu.String())
	}
	if n := testutil.ToFloat64(h.decisions.WithLabelValues(OutcomeSkipped, "workload_unknown")); n != 1 || len(rec.events()) != 0 {
		t.Errorf("decisions{skipped,workload_unknown} = %g, Events %q; want 1 and none", n, rec.events())
	}
}

// expired is a clock for the memo under which every entry has expired
// when read: no memo.
type expired struct{ now atomic.Int64 }

func (c *expired) Now() time.Time { return time.Unix(0, c.now.Add(int64(2*memoTTL))) }

// inLookup counts the goroutines that wait in ownerLookups.object for a
// read: blocked, not merely on their way out of an earlier wait.
func inLookup() int {
	buf := make([]byte, 1<<22)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "[select") && strings.Contains(g, "webhook.(*ownerLookups).object(") {
			n++
		}
	}
	return n
}

// TestOwnerLookupsShareReads: the pods of a new ReplicaSet admitted at
// once read it and its Deployment once: they share the read in flight
// (without the memo here), and later ones find it in the memo until
// memoTTL. The memo keeps memoSize objects at most.
func TestOwnerLookupsShareReads(t *testing.T) {
	const pods = 100
	api := &stubAPI{objects: map[Workload]any{
		{"ReplicaSet", "web-abc"}: object("uid-rs", nil, controllerRef("apps/v1", "Deployment", "web", "uid-d")),
		{"Deployment", "web"}:     object("uid-d", nil, nil),
	}}
	for _, o := range api.objects {
		o.(metav1.Object).SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate}})
	}
	// While held, each read waits for the test to let it answer.
	var held atomic.Bool
	held.Store(true)
	pending, answer := make(chan Workload), make(chan struct{})
	get := func(ctx context.Context, ns string, w Workload) (metav1.Object, error) {
		if held.Load() {
			pending <- w
			<-answer
		}
		return api.get(ctx, ns, w)
	}
	h, rec := lookupHandler(t, ModeEnforce, &staticCluster{wl: map[string]map[string]string{}}, get)
	h.owners.budget = time.Hour // the test waits for every admission
	h.owners.memo = cache.NewLRUExpireCacheWithClock(memoSize, &expired{})
	pod := webPod(nil)
	pod.OwnerReferences[0].UID = "uid-rs"
	body := reviewBody(t, "team", admissionv1.Create, podKind, pod)
	burst := func() *sync.WaitGroup {
		var wg sync.WaitGroup
		for range pods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := h.Review(context.Background(), body); err != nil {
					t.Error(err)
				}
			}()
		}
		return &wg
	}
	wg := burst()
	// The ReplicaSet's read, then the Deployment's: each answers once
	// every admission waits for it.
	for _, want := range []Workload{{"ReplicaSet", "web-abc"}, {"Deployment", "web"}} {
		if w := <-pending; w != want {
			t.Fatalf("read %v, want %v", w, want)
		}
		deadline := time.Now().Add(30 * time.Second)
		for inLookup() < pods {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d admissions wait for the read of %v", inLookup(), pods, want)
			}
			time.Sleep(time.Millisecond)
		}
		answer <- struct{}{}
	}
	wg.Wait()
	held.Store(false)
	if got := api.count(); got["ReplicaSet/web-abc"] != 1 || got["Deployment/web"] != 1 {
		t.Errorf("%d admissions read %v, want the ReplicaSet and the Deployment once", pods, got)
	}
	for _, o := range api.objects {
		if m := o.(metav1.Object); len(m.GetManagedFields()) != 0 {
			t.Errorf("the memo keeps %s's managed fields", m.GetUID())
		}
	}
	if n := testutil.ToFloat64(h.decisions.WithLabelValues(OutcomeMutated, ModeEnforce)); n != pods {
		t.Errorf("%g mutated, want %d", n, pods)
	}
	evs := rec.events()
	if len(evs) != pods || !strings.HasSuffix(evs[0], "on apps/v1 Deployment team/web uid-d") {
		t.Errorf("%d Events (first %q), want %d on the Deployment", len(evs), evs[:min(1, len(evs))], pods)
	}

	clock := &frozen{}
	h.owners.memo = cache.NewLRUExpireCacheWithClock(memoSize, clock)
	burst().Wait()
	if got := api.count(); got["ReplicaSet/web-abc"] != 2 || got["Deployment/web"] != 2 {
		t.Errorf("with an empty memo: reads %v, want each read once more", got)
	}
	clock.now.Add(int64(memoTTL))
	burst().Wait()
	if got := api.count(); got["ReplicaSet/web-abc"] != 2 || got["Deployment/web"] != 2 {
		t.Errorf("within memoTTL: reads %v, want none more", got)
	}
	clock.now.Add(int64(time.Nanosecond))
	burst().Wait()
	if got := api.count(); got["ReplicaSet/web-abc"] != 3 || got["Deployment/web"] != 3 {
		t.Errorf("past memoTTL: reads %v, want each read once more", got)
	}
	if n := testutil.ToFloat64(h.owners.results.WithLabelValues("found")); n != 4*pods {
		t.Errorf("lookups found %g, want %d", n, 4*pods)
	}
	// Bounded: memoSize other objects push the first out.
	for i := range memoSize {
		h.owners.memo.Add(fmt.Sprintf("team/ReplicaSet/other-%d", i), object("", nil, nil), memoTTL)
	}
	if _, ok := h.owners.memo.Get("team/ReplicaSet/web-abc"); ok || len(h.owners.memo.Keys()) != memoSize {
		t.Errorf("memo holds %d objects, the first still %v; want %d, the first gone", len(h.owners.memo.Keys()), ok, memoSize)
	}
}

// TestOwnerLookupBudget: a read the API server does not answer ends at
// the lookup's budget, whose deadline the read is given, and a read that
// does not heed its deadline (a stuck connection) does not hold the
// admission past the budget either; the pod is admitted unchanged. A
// request the API server has given up on ends its lookup at once.
func TestOwnerLookupBudget(t *testing.T) {
	const budget = 20 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	for _, tc := range []struct {
		name string
		ctx  func() context.Context
		// heed: the read returns when its context ends; else only once
		// the test ends.
		heed bool
	}{
		{"no answer", context.Background, true},
		{"read past its deadline", context.Background, false},
		{"request ended", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var deadlines []time.Duration
			var mu sync.Mutex
			get := func(ctx context.Context, _ string, _ Workload) (metav1.Object, error) {
				called := time.Now()
				d, ok := ctx.Deadline()
				mu.Lock()
				if ok {
					deadlines = append(deadlines, d.Sub(called))
				} else {
					deadlines = append(deadlines, -1)
				}
				mu.Unlock()
				if tc.heed {
					<-ctx.Done() // for ever without a deadline
					return nil, ctx.Err()
				}
				<-release
				return nil, errors.New("released")
			}
			h, _ := lookupHandler(t, ModeEnforce, &staticCluster{wl: map[string]map[string]string{}}, get)
			h.owners.budget = budget
			done := make(chan error, 1)
			go func() {
				_, err := h.Review(tc.ctx(), reviewBody(t, "team", admissionv1.Create, podKind, webPod(nil)))
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("the admission still waits for its workload 30s on, with a budget of %s", budget)
			}
			if n := testutil.ToFloat64(h.decisions.WithLabelValues(OutcomeSkipped, "workload_unknown")); n != 1 {
				t.Errorf("decisions{skipped,workload_unknown} = %g, want 1", n)
			}
			if got := lookupCounts(h); fmt.Sprint(got) != fmt.Sprint(map[string]float64{"timeout": 1}) {
				t.Errorf("lookups %v, want one timeout", got)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, d := range deadlines {
				if d < 0 || d > budget {
					t.Errorf("a read's deadline %s after it began, want at most the budget %s", d, budget)
				}
			}
		})
	}
}

// TestOwnerLookupThrottledPastBudget: a read whose rate limiter has no
// token before the lookup's deadline fails at once, as timeout, rather
// than wait (here for about 1000 s); the pod is admitted unchanged.
func TestOwnerLookupThrottledPastBudget(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"},
			ObjectMeta: metav1.ObjectMeta{Name: "web-abc", Namespace: "team", UID: "uid-rs",
				OwnerReferences: []metav1.OwnerReference{*controllerRef("apps/v1", "Deployment", "web", "uid-d")}}}
		if r.URL.Path != "/apis/apps/v1/namespaces/team/replicasets/web-abc" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(m)
	}))
	defer srv.Close()
	// One token: the ReplicaSet's read takes it, the Deployment's would
	// wait for the next.
	meta, err := metadata.NewForConfig(&rest.Config{Host: srv.URL, RateLimiter: flowcontrol.NewTokenBucketRateLimiter(0.001, 1)})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := lookupHandler(t, ModeEnforce, &staticCluster{wl: map[string]map[string]string{}}, MetadataGetter(meta))
	if cpu := reviewAndApply(t, h, webPod(nil)).Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; cpu.String() != "1" {
		t.Errorf("cpu request %s, want 1", cpu.String())
	}
	if got := lookupCounts(h); fmt.Sprint(got) != fmt.Sprint(map[string]float64{"timeout": 1}) {
		t.Errorf("lookups %v, want one timeout", got)
	}
}

// TestLookupResult: how a lookup's failure is counted.
func TestLookupResult(t *testing.T) {
	rs := schema.GroupResource{Group: "apps", Resource: "replicasets"}
	limiter := flowcontrol.NewTokenBucketRateLimiter(0.001, 1)
	limiter.Accept()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	throttled := limiter.Wait(ctx)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "found"},
		{apierrors.NewNotFound(rs, "web-abc"), "not_found"},
		{fmt.Errorf("reading: %w", errReplaced), "not_found"},
		{context.DeadlineExceeded, "timeout"},
		{fmt.Errorf("get replicasets: %w", context.DeadlineExceeded), "timeout"},
		{context.Canceled, "timeout"},
		{fmt.Errorf("client rate limiter Wait returned an error: %w", throttled), "timeout"},
		{apierrors.NewServiceUnavailable("starting"), "error"},
		{apierrors.NewTooManyRequests("slow down", 1), "error"},
		{apierrors.NewForbidden(rs, "web-abc", errors.New("RBAC")), "error"},
		{errNoReads, "error"},
	} {
		if got := lookupResult(tc.err); got != tc.want {
			t.Errorf("lookupResult(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

// TestDryRunReadsButRecordsNothing: a dry-run admission of a pod whose
// workload the cache does not hold reads the workload, to decide as the
// admission would, and records no Event: a dry run has no side effects.
func TestDryRunReadsButRecordsNothing(t *testing.T) {
	api := &stubAPI{objects: map[Workload]any{
		{"ReplicaSet", "web-abc"}: object("", nil, controllerRef("apps/v1", "Deployment", "web", "uid-d")),
		{"Deployment", "web"}:     object("uid-d", nil, nil),
	}}
	h, rec := lookupHandler(t, ModeEnforce, &staticCluster{wl: map[string]map[string]string{}}, api.get)
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
		t.Errorf("decisions{mutated,enforce} = %g, want the dry run decided as any admission", n)
	}
	if evs := rec.events(); len(evs) != 0 {
		t.Errorf("a dry run recorded %q", evs)
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
