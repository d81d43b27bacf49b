package webhook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/upid-dev/upid/internal/argorollouts"
)

// GetWorkload reads one workload's metadata from the API server, past
// the informer cache.
type GetWorkload func(ctx context.Context, ns string, w Workload) (metav1.Object, error)

// MetadataGetter is a GetWorkload of the metadata client, for the kinds
// the webhook watches (the RBAC that lets it watch them lets it get them).
func MetadataGetter(meta metadata.Interface) GetWorkload {
	return func(ctx context.Context, ns string, w Workload) (metav1.Object, error) {
		gvr, ok := workloadResources[w.Kind]
		if !ok {
			return nil, fmt.Errorf("kind %s is not read", w.Kind)
		}
		return meta.Resource(gvr).Namespace(ns).Get(ctx, w.Name, metav1.GetOptions{})
	}
}

// OwnerLookupConfig is rc for the metadata client of the owner lookups.
// Its rate limiter is its own: a burst of lookups neither waits for the
// tokens of the informers' lists and watches (they watch again after
// every watch timeout, and list again after a failure) nor takes them.
// client-go's limiter gives up at once on a wait that would pass the
// lookup's deadline, so a lookup throttled past lookupBudget ends then.
func OwnerLookupConfig(rc *rest.Config) *rest.Config {
	c := rest.CopyConfig(rc)
	c.QPS, c.Burst = OwnerLookupQPS, OwnerLookupBurst
	// A limiter set on rc is shared by every client built from it.
	c.RateLimiter = nil
	return c
}

// Client-side rate limit of the owner lookups (OwnerLookupConfig). With
// the memo and the shared reads, a new workload costs one or two reads
// whatever its number of pods, so this bounds how many new workloads a
// second are read, not pods.
const (
	OwnerLookupQPS   = 10
	OwnerLookupBurst = 20
)

// lookupBudget bounds the whole lookup of one admission: the pod's
// ReplicaSet or Job, then the Deployment or CronJob that owns it, the
// rate limiter's wait included. The webhook is registered with
// timeoutSeconds 2 (the chart's default, and the most docs/webhook.md
// allows), counted by the API server from its call, TLS and decoding
// included; past it the pod is admitted without the webhook, uncounted,
// after the API server has waited the whole timeout. A quarter of it
// leaves that margin on a loaded API server and is still tens of round
// trips to a healthy one, which answers a GET of metadata in milliseconds.
const lookupBudget = 500 * time.Millisecond

// The memo keeps what the lookups read, so that the other pods of a new
// ReplicaSet (a Deployment of 100 replicas) read nothing until the
// informers have the ReplicaSet and its Deployment, which takes
// milliseconds to seconds; the cache is asked first, so a memo entry
// outlives the informers' lag only when they fall behind. memoTTL also
// bounds how late the lookups see a changed annotation, as the informers'
// lag does the cache's.
const (
	memoSize = 1024
	memoTTL  = 5 * time.Second
)

// Results of upid_webhook_owner_lookups_total, one per admission whose
// workload the cache did not hold.
var ownerLookupResults = []string{"found", "not_found", "timeout", "error"}

// errReplaced is a workload of the name wanted whose UID is not the one
// named by the pod or its controller: deleted and created again since.
var errReplaced = errors.New("another object of that name since")

// errNoReads fails the lookups of a handler without GetWorkload.
var errNoReads = errors.New("no GetWorkload to read workloads the cache does not hold")

// workload is what the decision reads of a pod's workload.
type workload struct {
	// candidates name it for the recommendations, the most specific first.
	candidates  []Workload
	annotations map[string]string
	// ref is it for Events, with its UID; nil when not known, and for a
	// workload the cache holds, whose reference the cache gives when an
	// Event is due: most admissions record none.
	ref *corev1.ObjectReference
}

// cachedWorkload is the pod's workload as the cache has it; ok is false
// when the cache does not hold it.
func cachedWorkload(c Cluster, ns string, candidates []Workload) (_ workload, ok bool) {
	if len(candidates) == 2 && candidates[0].Kind == "CronJob" {
		// A Job named like a CronJob's, created by hand, is its own: its
		// opt-out and recommendations are not the CronJob's.
		if job := c.Object(ns, candidates[1]); job != nil && !controlledBy(job, candidates[0]) {
			candidates = candidates[1:]
		}
	}
	a := c.WorkloadAnnotations(ns, candidates[0])
	if a == nil {
		return workload{}, false
	}
	return workload{candidates: candidates, annotations: a}, true
}

func controlledBy(m metav1.Object, w Workload) bool {
	c := metav1.GetControllerOfNoCopy(m)
	return c != nil && c.Kind == w.Kind && c.Name == w.Name
}

// reference is workload w for Events.
func reference(ns string, w Workload, uid types.UID) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: workloadResources[w.Kind].GroupVersion().String(), Kind: w.Kind, Namespace: ns, Name: w.Name, UID: uid}
}

// metaAnnotations are m's, never nil: nil is how WorkloadAnnotations says
// the workload is not cached.
func metaAnnotations(m metav1.Object) map[string]string {
	if a := m.GetAnnotations(); a != nil {
		return a
	}
	return map[string]string{}
}

// ownerLookups read at admission, from the API server, the workloads the
// cache does not hold yet (created an instant before the pod): the cache
// is asked first at every step, then a memo of recent reads, and
// concurrent admissions that want the same object share one read.
type ownerLookups struct {
	cluster Cluster
	get     GetWorkload
	// budget is lookupBudget; tests shorten it.
	budget  time.Duration
	flight  singleflight.Group
	memo    *cache.LRUExpireCache
	results *prometheus.CounterVec
	reads   prometheus.Histogram
}

func newOwnerLookups(c Cluster, get GetWorkload) *ownerLookups {
	if get == nil {
		get = func(context.Context, string, Workload) (metav1.Object, error) { return nil, errNoReads }
	}
	l := &ownerLookups{
		cluster: c, get: get, budget: lookupBudget, memo: cache.NewLRUExpireCache(memoSize),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upid_webhook_owner_lookups_total",
			Help: "Admissions whose workload the cache did not hold, by how reading it from the API server ended (found, not_found, timeout, error); all but found admit the pod unchanged.",
		}, []string{"result"}),
		reads: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "upid_webhook_owner_read_duration_seconds",
			Help:    "Reads of a workload's metadata from the API server at admission, after the cache, the memo and the sharing of concurrent reads, by duration.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
	}
	for _, r := range ownerLookupResults {
		l.results.WithLabelValues(r)
	}
	return l
}

// lookup finds the workload of a pod whose controller is c, when the
// cache holds neither it nor, maybe, c: c's metadata, then, when c's
// controller reference names the workload candidates[0], the workload's,
// with its UID, for its opt-out, mode and Events. It fails rather than
// guess: an opt-out it cannot read is no consent.
func (l *ownerLookups) lookup(ctx context.Context, ns string, c *ownerFields, candidates []Workload) (_ workload, err error) {
	defer func() { l.results.WithLabelValues(lookupResult(err)).Inc() }()
	ctx, cancel := context.WithTimeout(ctx, l.budget)
	defer cancel()
	ctrl := Workload{Kind: c.Kind, Name: c.Name}
	m, err := l.object(ctx, ns, ctrl, c.UID)
	if err != nil {
		return workload{}, err
	}
	first := candidates[0]
	own := metav1.GetControllerOfNoCopy(m)
	if len(candidates) == 1 || !controlledBy(m, first) {
		// The pod's controller is its workload: a StatefulSet, a
		// DaemonSet, or a ReplicaSet or Job of its own.
		return workload{candidates: []Workload{ctrl}, annotations: metaAnnotations(m), ref: reference(ns, ctrl, m.GetUID())}, nil
	}
	if first.Kind == argorollouts.Kind {
		// Argo Rollouts copies a Rollout's annotations to the ReplicaSets
		// it makes, which is where the cache reads them too
		// (rolloutAnnotations): the webhook may not read Rollouts.
		return workload{candidates: candidates, annotations: metaAnnotations(m),
			ref: &corev1.ObjectReference{APIVersion: own.APIVersion, Kind: own.Kind, Namespace: ns, Name: own.Name, UID: own.UID}}, nil
	}
	o, err := l.object(ctx, ns, first, own.UID)
	if err != nil {
		return workload{}, err
	}
	return workload{candidates: candidates, annotations: metaAnnotations(o), ref: reference(ns, first, o.GetUID())}, nil
}

// object is w's metadata: from the cache, else the memo, else read from
// the API server, once for all the admissions that want it meanwhile. uid,
// when set, is the UID the pod or its controller names: an object of
// another (one deleted and created again since) may still be in the cache
// or the memo, and is read again.
func (l *ownerLookups) object(ctx context.Context, ns string, w Workload, uid types.UID) (metav1.Object, error) {
	ours := func(m metav1.Object) bool { return uid == "" || m.GetUID() == uid }
	if m := l.cluster.Object(ns, w); m != nil && ours(m) {
		return m, nil
	}
	key := ns + "/" + w.Kind + "/" + w.Name
	memo := func() (metav1.Object, bool) {
		if v, ok := l.memo.Get(key); ok && ours(v.(metav1.Object)) {
			return v.(metav1.Object), true
		}
		return nil, false
	}
	if m, ok := memo(); ok {
		return m, nil
	}
	ch := l.flight.DoChan(key, func() (any, error) {
		// Again: a read that ended between the look above and this
		// flight has left its object in the memo.
		if m, ok := memo(); ok {
			return m, nil
		}
		return l.read(ctx, ns, w, key)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		if m := r.Val.(metav1.Object); ours(m) {
			return m, nil
		}
		return nil, errReplaced
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// read is one GET of w, shared by the admissions that want it meanwhile:
// on a context of its own, with a budget of its own, since the first
// admission's end, which may come first, must not fail the others'.
func (l *ownerLookups) read(ctx context.Context, ns string, w Workload, key string) (m metav1.Object, err error) {
	start := time.Now()
	defer func() {
		l.reads.Observe(time.Since(start).Seconds())
		// DoChan raises a panic again on a goroutine of its own, where
		// nothing recovers it: the process would end.
		if p := recover(); p != nil {
			m, err = nil, fmt.Errorf("panic reading %s %s/%s: %v", w.Kind, ns, w.Name, p)
		}
	}()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.budget)
	defer cancel()
	m, err = l.get(ctx, ns, w)
	if err == nil && m == nil {
		err = fmt.Errorf("reading %s %s/%s: no object", w.Kind, ns, w.Name)
	}
	if err != nil {
		// Not kept: the next admission reads again.
		return nil, err
	}
	// Most of an object's metadata, and never read here: the informers
	// drop them too.
	m.SetManagedFields(nil)
	l.memo.Add(key, m, memoTTL)
	return m, nil
}

// lookupResult is how a lookup that ended with err is counted.
func lookupResult(err error) string {
	switch {
	case err == nil:
		return "found"
	case apierrors.IsNotFound(err), errors.Is(err, errReplaced):
		return "not_found"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		// client-go's rate limiter (golang.org/x/time/rate) refusing a
		// wait past the deadline says so only in words.
		strings.Contains(err.Error(), "would exceed context deadline"):
		return "timeout"
	}
	return "error"
}
