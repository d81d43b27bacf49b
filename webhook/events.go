package webhook

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/metadata"
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

// Bounds of the owner lookups: a flood of pods whose workloads the cache
// does not hold queues at most ownerQueue Events behind ownerWorkers
// goroutines, each lookup waiting ownerTimeout at most. Past that the
// Event is dropped: it is a courtesy to kubectl describe, not worth a
// goroutine or a megabyte per pod.
const (
	ownerWorkers = 2
	ownerQueue   = 256
	ownerTimeout = 2 * time.Second
)

// Results of upid_webhook_event_owner_lookups_total.
var ownerLookupResults = []string{"cached", "found", "not_found", "error", "dropped"}

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
// UID: first in the cache, which has often caught up by then, else by one
// uncached GET of the pod's controller. Workers start when Events are
// queued and end when the queue is empty, so an idle webhook runs none;
// stop ends those that run, before the recorder they write to is shut down.
type ownerEvents struct {
	// opts are the handler's: its cache, recorder and GetWorkload.
	opts    *HandlerOptions
	timeout time.Duration
	queue   chan pendingEvent
	workers chan struct{}
	lookups *prometheus.CounterVec

	// ctx ends with stop, cancelling the lookups in flight.
	ctx    context.Context
	cancel context.CancelFunc
	// mu keeps add from starting a worker once stop waits for them
	// (WaitGroup.Add must not race with Wait); add only reads it.
	mu      sync.RWMutex
	stopped bool
	running sync.WaitGroup
}

func newOwnerEvents(opts *HandlerOptions) *ownerEvents {
	ctx, cancel := context.WithCancel(context.Background())
	q := &ownerEvents{
		opts: opts, timeout: ownerTimeout, ctx: ctx, cancel: cancel,
		queue:   make(chan pendingEvent, ownerQueue),
		workers: make(chan struct{}, ownerWorkers),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upid_webhook_event_owner_lookups_total",
			Help: "Events of a workload the cache did not hold at admission, by how its UID was found (cached, found, not_found, error) or dropped.",
		}, []string{"result"}),
	}
	for _, r := range ownerLookupResults {
		q.lookups.WithLabelValues(r)
	}
	return q
}

// add queues p without ever waiting: admission must not. The lock is
// shared among admissions and held by stop only to set stopped.
func (q *ownerEvents) add(p pendingEvent) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.stopped {
		q.lookups.WithLabelValues("dropped").Inc()
		return
	}
	select {
	case q.queue <- p:
	default:
		q.lookups.WithLabelValues("dropped").Inc()
		return
	}
	select {
	case q.workers <- struct{}{}:
		q.running.Add(1)
		go q.work()
	default: // every worker is busy and will find p
	}
}

// stop cancels the lookups in flight and returns once every worker has
// ended; the Events still queued are dropped, and so are those added later.
func (q *ownerEvents) stop() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.cancel()
	q.running.Wait()
	for {
		select {
		case <-q.queue:
			q.lookups.WithLabelValues("dropped").Inc()
		default:
			return
		}
	}
}

func (q *ownerEvents) work() {
	defer q.running.Done()
	for {
		if q.ctx.Err() != nil {
			<-q.workers
			return
		}
		select {
		case p := <-q.queue:
			q.resolve(p)
			continue
		default:
		}
		<-q.workers
		// An Event queued between the empty read and the release found
		// every worker busy: take the place back for it, unless another
		// worker has.
		if len(q.queue) == 0 {
			return
		}
		select {
		case q.workers <- struct{}{}:
		default:
			return
		}
	}
}

// resolve records p on its workload, or drops it when the workload cannot
// be named for certain: an Event on another object would mislead.
func (q *ownerEvents) resolve(p pendingEvent) {
	result := "error"
	defer func() {
		// A panic here would end the process, not one admission.
		if r := recover(); r != nil {
			q.opts.Logger.Error("panic finding a workload for its Event", "panic", fmt.Sprint(r), "namespace", p.ns, "workload", p.owner)
			result = "error"
		}
		q.lookups.WithLabelValues(result).Inc()
	}()
	if ref := q.opts.Cluster.Reference(p.ns, p.owner); ref != nil {
		result = "cached"
		q.opts.Recorder.Event(ref, p.eventType, p.reason, p.text)
		return
	}
	ctx, cancel := context.WithTimeout(q.ctx, q.timeout)
	defer cancel()
	obj, err := q.opts.GetWorkload(ctx, p.ns, Workload{Kind: p.via.Kind, Name: p.via.Name})
	if apierrors.IsNotFound(err) {
		result = "not_found"
		return
	}
	if err != nil {
		q.opts.Logger.Debug("cannot read a pod's controller for an Event", "namespace", p.ns, "controller", p.via.Name, "err", err)
		return
	}
	result = "not_found"
	if p.via.UID != "" && obj.GetUID() != p.via.UID {
		return // another object of that name since
	}
	c := metav1.GetControllerOfNoCopy(obj)
	if c == nil || c.Kind != p.owner.Kind || c.Name != p.owner.Name || c.UID == "" {
		return // a ReplicaSet or Job of its own, named like a workload's
	}
	result = "found"
	q.opts.Recorder.Event(&corev1.ObjectReference{APIVersion: c.APIVersion, Kind: c.Kind, Namespace: p.ns, Name: c.Name, UID: c.UID}, p.eventType, p.reason, p.text)
}
