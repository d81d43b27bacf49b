package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
)

// GetWorkload reads one workload's metadata from the API server, past
// the informer cache. The handler calls it only off the admission path.
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
// every watch timeout, and list again after a failure) nor takes them,
// and asks the API server at most OwnerLookupQPS reads a second for what
// is only a courtesy.
func OwnerLookupConfig(rc *rest.Config) *rest.Config {
	c := rest.CopyConfig(rc)
	c.QPS, c.Burst = OwnerLookupQPS, OwnerLookupBurst
	// A limiter set on rc is shared by every client built from it.
	c.RateLimiter = nil
	return c
}

// Client-side rate limit of the owner lookups (OwnerLookupConfig): a full
// queue (ownerQueue) drains in about 25 s.
const (
	OwnerLookupQPS   = 10
	OwnerLookupBurst = 20
)

// Bounds of the owner lookups: a flood of pods whose workloads the cache
// does not have holds at most ownerQueue Events, whether queued, being
// read by one of ownerWorkers goroutines, or waiting to be read again;
// each read waits ownerTimeout at most. Past that the Event is dropped: it
// is a courtesy to kubectl describe, not worth a goroutine or a megabyte
// per pod.
//
// A read that failed transiently is tried again ownerRetries times at
// most, after ownerRetryBase doubling up to ownerRetryMax: 0.25, 0.5, 1,
// 2 and 4 s, so the Event is recorded at most about 20 s after the
// admission (six reads of 2 s and the waits between them), or dropped.
const (
	ownerWorkers   = 2
	ownerQueue     = 256
	ownerTimeout   = 2 * time.Second
	ownerRetries   = 5
	ownerRetryBase = 250 * time.Millisecond
	ownerRetryMax  = 4 * time.Second
)

// Results of upid_webhook_event_owner_lookups_total: each Event ends with
// one of the first five; retried counts the reads tried again.
var ownerLookupResults = []string{"cached", "found", "not_found", "error", "dropped", "retried"}

// pendingEvent is an Event whose workload's UID is not known at
// admission: via is the pod's controller (a ReplicaSet, a Job), whose own
// controller reference names owner with its UID.
type pendingEvent struct {
	ns                      string
	owner                   Workload
	via                     ownerFields
	eventType, reason, text string
}

// ownerEvents records pendingEvents once it has found their workload's
// UID: first in the cache, which has often caught up by then, else by an
// uncached GET of the pod's controller, tried again with a backoff while
// it fails transiently. Its queue is client-go's rate-limited workqueue,
// bounded by held; the queue and its workers start with the first Event
// queued, so a webhook that has none runs none, and stop ends them before
// the recorder they write to is shut down.
type ownerEvents struct {
	// opts are the handler's: its cache, recorder and GetWorkload.
	opts    *HandlerOptions
	timeout time.Duration
	// retries, retryBase and retryMax are the backoff of the reads that
	// failed transiently; tests shorten it before the first add.
	retries             int
	retryBase, retryMax time.Duration
	lookups             *prometheus.CounterVec

	start sync.Once
	// queue holds pointers, so that each admission's Event is an item of
	// its own: the workqueue merges equal items, and it is the recorder
	// that counts identical Events.
	queue workqueue.TypedRateLimitingInterface[*pendingEvent]
	// held counts the Events added and not yet ended, wherever they are
	// (the workqueue, a worker, the workqueue's wait for a retry): the
	// workqueue has no bound of its own.
	held atomic.Int64

	// ctx ends with stop, cancelling the lookups in flight.
	ctx    context.Context
	cancel context.CancelFunc
	// mu keeps add from starting the workers once stop waits for them
	// (WaitGroup.Add must not race with Wait); add only reads it.
	mu      sync.RWMutex
	stopped bool
	running sync.WaitGroup
}

func newOwnerEvents(opts *HandlerOptions) *ownerEvents {
	ctx, cancel := context.WithCancel(context.Background())
	q := &ownerEvents{
		opts: opts, timeout: ownerTimeout, ctx: ctx, cancel: cancel,
		retries: ownerRetries, retryBase: ownerRetryBase, retryMax: ownerRetryMax,
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upid_webhook_event_owner_lookups_total",
			Help: "Events of a workload the cache did not hold at admission, by how its UID was found (cached, found, not_found, error) or dropped; retried counts the reads tried again.",
		}, []string{"result"}),
	}
	for _, r := range ownerLookupResults {
		q.lookups.WithLabelValues(r)
	}
	return q
}

// add queues p without ever waiting on the API server or a worker:
// admission must not. The lock is shared among admissions and held by
// stop only to set stopped.
func (q *ownerEvents) add(p pendingEvent) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.stopped {
		q.lookups.WithLabelValues("dropped").Inc()
		return
	}
	if q.held.Add(1) > ownerQueue {
		q.held.Add(-1)
		q.lookups.WithLabelValues("dropped").Inc()
		return
	}
	q.start.Do(q.run)
	q.queue.Add(&p)
}

// run starts the queue and its workers.
func (q *ownerEvents) run() {
	q.queue = workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[*pendingEvent](q.retryBase, q.retryMax))
	for range ownerWorkers {
		q.running.Add(1)
		go q.work()
	}
}

// stop cancels the lookups in flight and returns once every worker has
// ended; the Events still queued or waiting for a retry are dropped, and
// so are those added later.
func (q *ownerEvents) stop() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.cancel()
	if q.queue != nil { // set under the lock add held
		q.queue.ShutDown()
	}
	q.running.Wait()
	// The workers drop what the queue still held; what waited for a
	// retry left with the queue's shutdown.
	q.lookups.WithLabelValues("dropped").Add(float64(q.held.Swap(0)))
}

func (q *ownerEvents) work() {
	defer q.running.Done()
	for {
		p, shutdown := q.queue.Get()
		if shutdown {
			return
		}
		q.process(p)
		q.queue.Done(p)
	}
}

// process looks p's workload up once, and either ends p with its result
// or, after a transient failure, queues it again after its backoff.
func (q *ownerEvents) process(p *pendingEvent) {
	result, err := "dropped", error(nil)
	if q.ctx.Err() == nil {
		result, err = q.resolve(p)
	}
	switch {
	case err == nil:
	case q.ctx.Err() != nil:
		result = "dropped" // cancelled by stop
	default:
		var again bool
		result, again = afterFailure(err, q.queue.NumRequeues(p), q.retries)
		if again {
			q.lookups.WithLabelValues(result).Inc()
			q.queue.AddRateLimited(p)
			return
		}
		q.opts.Logger.Debug("cannot read a pod's controller for an Event", "namespace", p.ns, "controller", p.via.Name, "tries", q.queue.NumRequeues(p)+1, "err", err)
	}
	q.lookups.WithLabelValues(result).Inc()
	q.queue.Forget(p)
	q.held.Add(-1)
}

// afterFailure is what becomes of an Event whose read failed with err,
// once tried again requeues times: "retried" (again is true) while the
// failure may pass and retries are left, else its result.
func afterFailure(err error, requeues, retries int) (result string, again bool) {
	if transient(err) && requeues < retries {
		return "retried", true
	}
	if apierrors.IsNotFound(err) {
		return "not_found", false
	}
	return "error", false
}

// transient says whether a read that failed with err may succeed later.
// NotFound may: the pod's controller made the pod, so it exists unless
// deleted since, and a read served by a lagging copy (an API server's
// watch cache, a caching proxy) answers NotFound for a moment; a deleted
// one answers it every time, which costs only the retries. A request the
// API server refused (forbidden, malformed) is refused again, and one
// cancelled by stop is not tried again.
func transient(err error) bool {
	switch {
	case errors.Is(err, context.Canceled):
		return false
	case apierrors.IsNotFound(err), apierrors.IsTooManyRequests(err), apierrors.IsTimeout(err), apierrors.IsServerTimeout(err):
		return true
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Code >= http.StatusInternalServerError
	}
	// No answer from the API server: a timeout, a refused or reset
	// connection, the client's rate limiter.
	return true
}

// resolve records p on its workload, and says how it was found; err is
// the failed read, which p may be read again for. It does not record p
// when the workload cannot be named for certain: an Event on another
// object would mislead.
func (q *ownerEvents) resolve(p *pendingEvent) (result string, err error) {
	defer func() {
		// A panic here would end the process, not one admission; it is
		// no failure to try again.
		if r := recover(); r != nil {
			q.opts.Logger.Error("panic finding a workload for its Event", "panic", fmt.Sprint(r), "namespace", p.ns, "workload", p.owner)
			result, err = "error", nil
		}
	}()
	// Again on every try: the cache may have caught up meanwhile.
	if ref := q.opts.Cluster.Reference(p.ns, p.owner); ref != nil {
		q.opts.Recorder.Event(ref, p.eventType, p.reason, p.text)
		return "cached", nil
	}
	ctx, cancel := context.WithTimeout(q.ctx, q.timeout)
	defer cancel()
	obj, err := q.opts.GetWorkload(ctx, p.ns, Workload{Kind: p.via.Kind, Name: p.via.Name})
	if err != nil {
		return "", err
	}
	if p.via.UID != "" && obj.GetUID() != p.via.UID {
		return "not_found", nil // another object of that name since
	}
	c := metav1.GetControllerOfNoCopy(obj)
	if c == nil || c.Kind != p.owner.Kind || c.Name != p.owner.Name || c.UID == "" {
		return "not_found", nil // a ReplicaSet or Job of its own, named like a workload's
	}
	q.opts.Recorder.Event(&corev1.ObjectReference{APIVersion: c.APIVersion, Kind: c.Kind, Namespace: p.ns, Name: c.Name, UID: c.UID}, p.eventType, p.reason, p.text)
	return "found", nil
}
