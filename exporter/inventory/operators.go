package inventory

import (
	"sync"
	"time"
)

// operatorSpecs holds, per controller the inventory does not watch (an
// operator's CloneSet, a StrimziPodSet), the spec of its newest pod. Its
// pods keep no spec of their own, so the cache holds one spec per such
// controller, not one per pod (a pod with its spec is about 8 times one
// without).
type operatorSpecs struct {
	mu sync.Mutex
	m  map[ID]operatorSpec
}

type operatorSpec struct {
	created int64 // the pod's, Unix seconds
	pod     string
	spec    *podSpec
	// offered is when the spec came, so that a Snapshot does not drop one
	// whose pod the informer has transformed but not stored yet.
	offered time.Time
}

// operatorOwned says whether a pod with a controller of kind takes its
// workload's spec from operatorSpecs: not a watched controller, not a bare
// pod (""), not a pod owned by another pod (a Spark executor by its
// driver), which is counted in the driver's own workload.
func operatorOwned(kind string) bool {
	return kind != "" && kind != KindPod && !watched[kind]
}

// offer keeps the spec of pod (name, created) for controller id when the
// pod is newer than the one held; build runs only then.
func (o *operatorSpecs) offer(id ID, created int64, name string, build func() *podSpec) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if old, ok := o.m[id]; ok && (created < old.created || (created == old.created && name < old.pod)) {
		return
	}
	if o.m == nil {
		o.m = map[ID]operatorSpec{}
	}
	o.m[id] = operatorSpec{created: created, pod: name, spec: build(), offered: time.Now()}
}

func (o *operatorSpecs) get(id ID) *podSpec {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m[id].spec
}

// prune drops the specs of controllers with no pod left, except those
// offered since before: their pods may not be stored yet.
func (o *operatorSpecs) prune(live map[ID]bool, before time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, s := range o.m {
		if !live[id] && s.offered.Before(before) {
			delete(o.m, id)
		}
	}
}
