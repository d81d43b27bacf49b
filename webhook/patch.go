package webhook

import (
	"encoding/json"
	"errors"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	jsonpatch "gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/upid-dev/upid/exporter/recommend"
	"github.com/upid-dev/upid/internal/quantity"
)

// Annotations written on pods and read from pods, workloads and namespaces.
const (
	AnnotationMode        = "upid.io/webhook-mode"
	AnnotationOptOut      = "upid.io/webhook"
	AnnotationOriginal    = "upid.io/original-resources"
	AnnotationRecommended = "upid.io/recommended-resources"
	// The pod-level resources (spec.resources), when the webhook changes them.
	AnnotationOriginalPod    = "upid.io/original-pod-resources"
	AnnotationRecommendedPod = "upid.io/recommended-pod-resources"
	optOutValue              = "disabled"
)

// Modes.
const (
	ModeOff       = "off"
	ModeRecommend = "recommend"
	ModeEnforce   = "enforce"
)

// Limit policies.
const (
	LimitKeepRatio   = "keep_ratio"
	LimitRecommended = "recommended"
	LimitUnchanged   = "unchanged"
)

// Policy is how recommendations turn into a pod's resources.
type Policy struct {
	ChangeThreshold   float64 // relative change below which a request is left alone
	MemoryMargin      float64 // memory request ≥ observed peak × (1 + MemoryMargin)
	LimitPolicy       string
	InitContainers    bool // apply to init containers that are not sidecars
	SidecarContainers bool // apply to init containers with restartPolicy Always
}

// Target is what one container should get, from the exporter. Nil means no
// recommendation for that value.
type Target struct {
	CPURequest    *float64 // cores
	CPULimit      *float64
	MemoryRequest *float64 // bytes
	MemoryLimit   *float64
	MemoryPeak    *float64 // observed peak working set over the window
}

// Resources is one container's requests and limits as written in the
// original/recommended annotations.
type Resources struct {
	Requests map[string]string `json:"requests,omitempty"`
	Limits   map[string]string `json:"limits,omitempty"`
}

// Plan is the outcome of Decide: what changes, the annotations that say so
// and the JSON patch that does it.
type Plan struct {
	// Reason is set when nothing changes: a snake_case word for metrics.
	Reason      string
	Original    map[string]Resources
	Recommended map[string]Resources
	// OriginalPod and RecommendedPod are the pod-level resources
	// (spec.resources) before and after, when the plan changes them.
	OriginalPod, RecommendedPod *Resources
	changes                     []containerChange
	pod                         *podChange
	// undone says the changes take back an earlier call's (undo).
	undone bool
}

// podChange is a change of the pod-level resources.
type podChange struct{ old, new corev1.ResourceRequirements }

type containerChange struct {
	list  string // "containers" or "initContainers"
	index int
	old   corev1.ResourceRequirements
	new   corev1.ResourceRequirements
}

// Changed reports whether the plan changes any container or the pod's
// own resources.
func (p *Plan) Changed() bool { return len(p.changes) > 0 || p.pod != nil }

// Constraints are the objects of the pod's namespace that admit or reject
// it after the webhook: the LimitRanger and ResourceQuota admission plugins
// run in the validating phase, after every mutating webhook.
type Constraints struct {
	LimitRanges []*corev1.LimitRange
	Quotas      []*corev1.ResourceQuota
}

// Decide computes the new resources of pod's containers, and of the pod
// for the resources it sets at pod level, from the workload's
// recommendations. ns holds the constraints of the pod's namespace. It
// never fails: anything it cannot judge safely is left unchanged.
func Decide(pod *corev1.Pod, recs *WorkloadRecs, ns Constraints, p Policy) *Plan {
	return decide(fieldsOf(pod), recs, ns, p)
}

func decide(pod *podFields, recs *WorkloadRecs, ns Constraints, p Policy) *Plan {
	plan := &Plan{}
	if recs == nil {
		recs = &WorkloadRecs{}
	}
	targets := recs.Containers
	var fixed []corev1.ResourceName
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if pod.podLevel(r) {
			fixed = append(fixed, r)
		}
	}
	// With pod-level resources the pod's QoS class is theirs alone
	// (ComputePodQOS), which the containers' requests cannot change.
	podLevel := len(fixed) > 0
	before := qosOf(pod.Spec.InitContainers, pod.Spec.Containers)
	if before == corev1.PodQOSBestEffort && !podLevel {
		// Adding requests would make it Burstable and change how it is evicted.
		plan.Reason = "best_effort"
		return plan
	}
	guaranteed := before == corev1.PodQOSGuaranteed
	var bounds map[corev1.ResourceName]bound
	seen := false
	visit := func(list string, cs []containerFields, init bool) {
		for i := range cs {
			c := &cs[i]
			if init {
				sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
				if (sidecar && !p.SidecarContainers) || (!sidecar && !p.InitContainers) {
					continue
				}
			}
			t, ok := targets[c.Name]
			if !ok {
				continue
			}
			seen = true
			if bounds == nil {
				bounds = limitBounds(ns.LimitRanges, corev1.LimitTypeContainer)
			}
			nr, changed := decideContainer(c.Resources, t, bounds, guaranteed, fixed, p)
			if changed {
				plan.changes = append(plan.changes, containerChange{list: list, index: i, old: c.Resources, new: nr})
			}
		}
	}
	visit("initContainers", pod.Spec.InitContainers, true)
	visit("containers", pod.Spec.Containers, false)
	for _, r := range fixed {
		if _, ok := recs.Pod[r]; ok {
			seen = true
		}
	}
	// The pod as created, before and after the change, for the pod-level
	// requests and QoS class, the LimitRanger and the quota: built once
	// each, and only when one of them needs it.
	var created *corev1.Pod
	if podLevel && seen {
		created = pod.created()
		if nr, ok := decidePod(*pod.Spec.Resources, created, fixed, recs.Pod, p); ok {
			plan.pod = &podChange{old: *pod.Spec.Resources, new: nr}
		}
	}
	if !seen {
		plan.Reason = "no_recommendation"
		return plan
	}
	if !plan.Changed() {
		plan.Reason = "below_threshold"
		if podLevel {
			plan.Reason = "pod_level_resources"
		}
		return plan
	}
	after := pod.with(plan)
	pb := limitBounds(ns.LimitRanges, corev1.LimitTypePod)
	if created == nil && len(ns.Quotas) > 0 {
		created = pod.created()
	}
	var createdAfter *corev1.Pod
	if podLevel || len(pb) > 0 || len(ns.Quotas) > 0 {
		createdAfter = after.created()
	}
	var qosChanged bool
	if podLevel {
		// The API server completes the pod-level resources from the
		// containers, so a container's change can move the pod's class.
		qosChanged = podLevelQOS(created.Spec.Resources) != podLevelQOS(createdAfter.Spec.Resources)
	} else {
		qosChanged = qosOf(after.Spec.InitContainers, after.Spec.Containers) != before
	}
	if qosChanged {
		plan.changes, plan.pod = nil, nil
		plan.Reason = "qos_change"
		return plan
	}
	if len(pb) > 0 && !sumsOf(createdAfter, false).admits(pb) {
		// The LimitRanger checks a Pod item against the pod's sums after
		// every webhook: moving one container can take the pod out of
		// range, and the pod would be rejected.
		plan.changes, plan.pod = nil, nil
		plan.Reason = "limit_range"
		return plan
	}
	if len(ns.Quotas) > 0 && !quotaAdmits(sumsOf(created, true), sumsOf(createdAfter, true), pod.quotasCounting(ns.Quotas, created)) {
		plan.changes, plan.pod = nil, nil
		plan.Reason = "resource_quota"
		return plan
	}
	if plan.pod != nil {
		o, n := resourcesOf(plan.pod.old), resourcesOf(plan.pod.new)
		plan.OriginalPod, plan.RecommendedPod = &o, &n
	}
	if len(plan.changes) == 0 {
		return plan
	}
	plan.Original = make(map[string]Resources, len(plan.changes))
	plan.Recommended = make(map[string]Resources, len(plan.changes))
	for _, ch := range plan.changes {
		name := pod.list(ch.list)[ch.index].Name
		plan.Original[name] = resourcesOf(ch.old)
		plan.Recommended[name] = resourcesOf(ch.new)
	}
	return plan
}

// undo checks, on a reinvocation, that what an earlier call of UPID raised
// in pod still fits the namespace's quotas and Pod LimitRange items together with what plan would
// change now. Another webhook may have added a container since (a sidecar
// injector whose configuration sorts after UPID's), which the first call's
// quota check could not count; the quota admission, after every webhook,
// would reject the pod. If it does not fit, the returned plan takes back the
// earlier changes, the containers' and the pod-level requests', by the
// records of the originals, and nothing else: the pod is admitted as its
// owner and the other webhooks made it. nil when nothing is to be undone.
func undo(pod *podFields, plan *Plan, ns Constraints) *Plan {
	// A pod no call of UPID enforced on has no mode, or no record below.
	if mode, _ := pod.Metadata.Annotations.get(AnnotationMode); mode != ModeEnforce || len(ns.Quotas) == 0 && len(ns.LimitRanges) == 0 {
		return nil // and a recommend-mode call changed no resources
	}
	back := &Plan{Reason: "resource_quota", undone: true}
	orig, _ := readRecord[map[string]Resources](pod.Metadata.Annotations, AnnotationOriginal)
	recd, _ := readRecord[map[string]Resources](pod.Metadata.Annotations, AnnotationRecommended)
	for _, list := range []string{"initContainers", "containers"} {
		for i, c := range pod.list(list) {
			if o, ok := orig[c.Name]; ok {
				rec, known := recd[c.Name]
				if restored := restore(c.Resources, o, rec, known); !equality.Semantic.DeepEqual(c.Resources, restored) {
					back.changes = append(back.changes, containerChange{list: list, index: i, old: c.Resources, new: restored})
				}
			}
		}
	}
	origPod, okOrig := readRecord[Resources](pod.Metadata.Annotations, AnnotationOriginalPod)
	recPod, okRec := readRecord[Resources](pod.Metadata.Annotations, AnnotationRecommendedPod)
	if pr := pod.Spec.Resources; okOrig && okRec && pr != nil {
		// The floor is what the containers request once theirs are taken
		// back too: the API server rejects a pod that requests less.
		floor := resourcehelper.AggregateContainerRequests(pod.with(back).created(), resourcehelper.PodResourcesOptions{})
		if nr := takeBackPod(*pr, origPod, recPod, floor); !equality.Semantic.DeepEqual(*pr, nr) {
			back.pod = &podChange{old: *pr, new: nr}
		}
	}
	if !back.Changed() {
		return nil
	}
	// after is the pod once plan is applied, prior the same pod with the
	// earlier raises taken back (and plan's changes to other containers).
	after := pod.with(plan)
	prior := after.with(back)
	pb := limitBounds(ns.LimitRanges, corev1.LimitTypePod)
	createdAfter, createdPrior := after.created(), prior.created()
	quotaFits := len(ns.Quotas) == 0 || quotaAdmits(sumsOf(createdPrior, true), sumsOf(createdAfter, true), pod.quotasCounting(ns.Quotas, createdAfter))
	// A Pod item of a LimitRange bounds the pod's sums the same way; if
	// the pod is out of range without UPID's raises too, taking them back
	// cannot save it.
	rangeFits := len(pb) == 0 || sumsOf(createdAfter, false).admits(pb) || !sumsOf(createdPrior, false).admits(pb)
	if quotaFits && rangeFits {
		return nil
	}
	if !rangeFits {
		back.Reason = "limit_range"
	}
	return back
}

// restore is r with UPID's change of its CPU and memory requests and limits
// taken back to the record o, rec being what UPID set (both records are
// whole: every CPU and memory value before and after UPID). What a webhook
// after UPID added or changed stays, as restoreList keeps it: a memory
// limit injected later is not UPID's to remove.
func restore(r corev1.ResourceRequirements, o, rec Resources, known bool) corev1.ResourceRequirements {
	out := *r.DeepCopy()
	restoreList(&out.Requests, o.Requests, recorded(rec.Requests, known), nil)
	restoreList(&out.Limits, o.Limits, recorded(rec.Limits, known), nil)
	return out
}

// recorded is the list l of a record that exists (known), never nil:
// restoreList reads nil as no record at all, and an empty list of one as
// "UPID set none of these".
func recorded(l map[string]string, known bool) map[string]string {
	if known && l == nil {
		return map[string]string{}
	}
	return l
}

// restoreList sets CPU and memory in *l to the recorded was, removing
// those was lacks. With rec, UPID's record of what it set, what another
// webhook has added since stays: was + (now − rec), and a value neither
// record has is left as it is. floor bounds what is
// restored from below, but never above what *l has now: a pod already
// under its floor is not UPID's to raise.
func restoreList(l *corev1.ResourceList, was, rec map[string]string, floor corev1.ResourceList) {
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		v, had := was[string(name)]
		q, err := resource.ParseQuantity(v)
		switch {
		case had && err == nil:
			now, has := (*l)[name]
			if set, err := resource.ParseQuantity(rec[string(name)]); err == nil && has && now.Cmp(set) != 0 {
				q.Add(now)
				q.Sub(set)
				if q.Sign() <= 0 {
					continue // another webhook took away more than UPID added: its value stands
				}
			}
			if f, ok := floor[name]; ok {
				if has && now.Cmp(f) < 0 {
					f = now
				}
				if q.Cmp(f) < 0 {
					q = f
				}
			}
			if *l == nil {
				*l = corev1.ResourceList{}
			}
			(*l)[name] = q
		case !had:
			// With rec, one UPID did not set either came from another
			// webhook after UPID, and stays.
			if _, set := rec[string(name)]; rec == nil || set {
				delete(*l, name)
			}
		}
	}
}

// takeBackPod is the pod-level resources pr with UPID's change of their
// requests taken back to the record orig (UPID never changes their
// limits). Unlike a container's, the pod's request may have been raised
// since UPID set it, as rec records, by a sidecar injector that adds its
// container's request to the pod's (without it the API server rejects a pod
// whose containers request more than it does): that raise stays, and the
// pod gets what it would have got without UPID. A request UPID set that
// the pod did not have is removed, for the API server to complete as it
// would have; one UPID did not set is another webhook's, and stays.
func takeBackPod(pr corev1.ResourceRequirements, orig, rec Resources, floor corev1.ResourceList) corev1.ResourceRequirements {
	out := *pr.DeepCopy()
	restoreList(&out.Requests, orig.Requests, recorded(rec.Requests, true), floor)
	return out
}

// with is the pod with plan's changes applied, sharing nothing that
// they change with pod.
func (p *podFields) with(plan *Plan) *podFields {
	out := &podFields{}
	out.Spec = p.Spec
	out.Spec.InitContainers, out.Spec.Containers = slices.Clone(p.Spec.InitContainers), slices.Clone(p.Spec.Containers)
	for _, ch := range plan.changes {
		out.list(ch.list)[ch.index].Resources = ch.new
	}
	if plan.pod != nil {
		out.Spec.Resources = &plan.pod.new
	}
	return out
}

// bound is a LimitRange's constraint on one resource of a container; zero
// values mean no constraint.
type bound struct {
	min, max, ratio float64
	// ratioQ is the maxLimitRequestRatio as written, which the
	// LimitRanger compares exactly (ratioExceeds).
	ratioQ resource.Quantity
}

// ratioExceeds is the LimitRanger's limitRequestRatioConstraint: the
// ratio in milli-units where they do not overflow, compared without
// tolerance. Rounding a request to whole MiB can leave it a hair under
// limit/ratio, which a float test with any tolerance lets through and
// the API server rejects.
func ratioExceeds(req, lim, enforced resource.Quantity) bool {
	r, l := req.Value(), lim.Value()
	if r <= resource.MaxMilliValue && l <= resource.MaxMilliValue && enforced.Value() <= resource.MaxMilliValue {
		r, l = req.MilliValue(), lim.MilliValue()
	}
	if r == 0 || l == 0 {
		return true
	}
	observed, max := float64(l)/float64(r), float64(enforced.Value())
	if enforced.Value() <= resource.MaxMilliValue {
		observed, max = observed*1000, float64(enforced.MilliValue())
	}
	return observed > max
}

// admits tells whether the LimitRanger would accept v for this resource.
func (b bound) admits(v float64) bool {
	return v >= b.min*(1-1e-9) && (b.max == 0 || v <= b.max*(1+1e-9))
}

// limitBounds merges the items of one type of all LimitRanges, keeping the
// tightest value of each, as the LimitRanger admission plugin checks them all.
func limitBounds(lrs []*corev1.LimitRange, typ corev1.LimitType) map[corev1.ResourceName]bound {
	out := map[corev1.ResourceName]bound{}
	for _, lr := range lrs {
		for _, item := range lr.Spec.Limits {
			if item.Type != typ {
				continue
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				b := out[r]
				if q, ok := item.Min[r]; ok {
					b.min = math.Max(b.min, q.AsApproximateFloat64())
				}
				if q, ok := item.Max[r]; ok {
					if v := q.AsApproximateFloat64(); b.max == 0 || v < b.max {
						b.max = v
					}
				}
				if q, ok := item.MaxLimitRequestRatio[r]; ok {
					if v := q.AsApproximateFloat64(); b.ratio == 0 || v < b.ratio {
						b.ratio, b.ratioQ = v, q
					}
				}
				out[r] = b
			}
		}
	}
	return out
}

// podSums are a pod's requests and limits as the scheduler, the
// LimitRanger and the quota count them.
type podSums struct{ requests, limits corev1.ResourceList }

// sumsOf adds up a pod as created (resourcehelper.PodRequests and
// PodLimits: containers and sidecars added, init containers as a floor,
// pod-level values first). The quota counts the RuntimeClass's overhead
// (pkg/quota/v1/evaluator/core/pods.go); the LimitRanger does not.
func sumsOf(pod *corev1.Pod, overhead bool) podSums {
	opts := resourcehelper.PodResourcesOptions{ExcludeOverhead: !overhead}
	return podSums{resourcehelper.PodRequests(pod, opts), resourcehelper.PodLimits(pod, opts)}
}

// created is the pod as the API server creates it, with what resourcehelper
// reads of one: its containers' resources, and its pod-level ones completed
// (completed).
func (p *podFields) created() *corev1.Pod {
	pod := &corev1.Pod{}
	conv := func(cs []containerFields) []corev1.Container {
		out := make([]corev1.Container, len(cs))
		for i, c := range cs {
			out[i] = corev1.Container{Name: c.Name, Resources: c.Resources, RestartPolicy: c.RestartPolicy}
		}
		return out
	}
	pod.Spec.InitContainers, pod.Spec.Containers = conv(p.Spec.InitContainers), conv(p.Spec.Containers)
	pod.Spec.Overhead = p.Spec.Overhead
	pod.Spec.Resources = completed(p.Spec.Resources, pod)
	return pod
}

// admits tells whether the LimitRanger would accept the sums within the
// Pod bounds: minConstraint, maxConstraint and limitRequestRatioConstraint
// of its admission plugin, which need a request for a min and a limit for
// a max.
func (s podSums) admits(bounds map[corev1.ResourceName]bound) bool {
	for r, b := range bounds {
		req, hasReq := s.requests[r]
		lim, hasLim := s.limits[r]
		rv, lv := req.AsApproximateFloat64(), lim.AsApproximateFloat64()
		if b.min > 0 && (!hasReq || rv < b.min*(1-1e-9) || (hasLim && lv < b.min*(1-1e-9))) {
			return false
		}
		if b.max > 0 && (!hasLim || lv > b.max*(1+1e-9) || (hasReq && rv > b.max*(1+1e-9))) {
			return false
		}
		if b.ratio > 0 && (!hasReq || !hasLim || ratioExceeds(req, lim, b.ratioQ)) {
			return false
		}
	}
	return true
}

// decidePod sizes the pod-level requests of the fixed resources that have
// a target. A request is at least what the containers request together
// (resourcehelper.AggregateContainerRequests; the API server rejects less)
// and at most the pod's limit. A pod with a limit alone starts from the
// request the API server would make (the containers' sum, else the limit).
// created is the pod as created, old its own pod-level resources.
func decidePod(old corev1.ResourceRequirements, created *corev1.Pod, fixed []corev1.ResourceName, targets map[corev1.ResourceName]float64, p Policy) (corev1.ResourceRequirements, bool) {
	nr := *old.DeepCopy()
	aggregate := resourcehelper.AggregateContainerRequests(created, resourcehelper.PodResourcesOptions{})
	changed := false
	for _, r := range fixed {
		want, ok := targets[r]
		if !ok || !(want > 0) || math.IsInf(want, 0) || want > maxValue(r) {
			continue
		}
		floor, _ := amount(aggregate, r)
		lim, hasLim := amount(old.Limits, r)
		cur, _ := amount(created.Spec.Resources.Requests, r)
		q := quantity.Request(r, math.Max(want, floor), lim)
		v := q.AsApproximateFloat64()
		if v < floor*(1-1e-9) || (hasLim && v > lim*(1+1e-9)) {
			continue
		}
		// A request under the containers' sum is invalid, however small
		// the step: a sidecar injected after UPID's first call leaves it
		// there, and the API server would reject the pod.
		if cur > 0 && cur >= floor && math.Abs(v-cur)/cur < p.ChangeThreshold {
			continue
		}
		if nr.Requests == nil {
			nr.Requests = corev1.ResourceList{}
		}
		nr.Requests[r] = q
		changed = true
	}
	return nr, changed
}

// completed is a pod's pod-level resources pr as the API server completes
// them at creation, after the webhooks and before the LimitRanger, the
// quota and the QoS class see them (DefaultPodLevelResources, 1.37): a CPU
// or memory request it lacks is the containers' sum when they request it,
// else its limit; a limit it lacks, when every container has one, is the
// containers' sum of limits, at least the request. pod holds the
// containers. Nil without pod-level resources.
func completed(pr *corev1.ResourceRequirements, pod *corev1.Pod) *corev1.ResourceRequirements {
	if pr == nil || (len(pr.Requests) == 0 && len(pr.Limits) == 0) {
		return nil
	}
	out := pr.DeepCopy()
	if out.Requests == nil {
		out.Requests = corev1.ResourceList{}
	}
	if out.Limits == nil {
		out.Limits = corev1.ResourceList{}
	}
	requests := resourcehelper.AggregateContainerRequests(pod, resourcehelper.PodResourcesOptions{})
	limits := resourcehelper.AggregateContainerLimits(pod, resourcehelper.PodResourcesOptions{})
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := out.Requests[r]; !ok {
			if q, ok := requests[r]; ok {
				out.Requests[r] = q
			} else if q, ok := out.Limits[r]; ok {
				out.Requests[r] = q
			}
		}
		req, hasReq := out.Requests[r]
		if _, ok := out.Limits[r]; ok || !hasReq || !allLimit(pod, r) {
			continue
		}
		lim := limits[r]
		if req.Cmp(lim) > 0 {
			lim = req
		}
		out.Limits[r] = lim
	}
	return out
}

// allLimit tells whether every container of pod, init containers and
// sidecars included, has a limit for r.
func allLimit(pod *corev1.Pod, r corev1.ResourceName) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if _, ok := c.Resources.Limits[r]; !ok {
				return false
			}
		}
	}
	return true
}

// podLevelQOS is the QoS class of a pod with pod-level resources, from
// them alone (requirementsQOS in ComputePodQOS): Guaranteed when CPU and
// memory both request their non-zero limits, BestEffort when neither is
// set, Burstable otherwise. pr is as completed.
func podLevelQOS(pr *corev1.ResourceRequirements) corev1.PodQOSClass {
	var shapes [2]corev1.PodQOSClass
	for i, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := pr.Requests[r], pr.Limits[r]
		switch {
		case !req.Equal(lim):
			shapes[i] = corev1.PodQOSBurstable
		case req.IsZero():
			shapes[i] = corev1.PodQOSBestEffort
		default:
			shapes[i] = corev1.PodQOSGuaranteed
		}
	}
	if shapes[0] != shapes[1] {
		return corev1.PodQOSBurstable
	}
	return shapes[0]
}

// decideContainer sizes one container; fixed are the resources the pod
// sets at pod level, which stay.
func decideContainer(old corev1.ResourceRequirements, t Target, bounds map[corev1.ResourceName]bound, guaranteed bool, fixed []corev1.ResourceName, p Policy) (corev1.ResourceRequirements, bool) {
	nr := *old.DeepCopy()
	changed := false
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if slices.Contains(fixed, r) {
			continue
		}
		want, wantLimit := t.CPURequest, t.CPULimit
		if r == corev1.ResourceMemory {
			want, wantLimit = t.MemoryRequest, t.MemoryLimit
		}
		if want == nil || math.IsNaN(*want) || math.IsInf(*want, 0) || *want <= 0 {
			continue
		}
		req := *want
		floor := 0.0
		if r == corev1.ResourceMemory && t.MemoryPeak != nil && *t.MemoryPeak > 0 {
			floor = *t.MemoryPeak * (1 + p.MemoryMargin)
			req = math.Max(req, floor)
		}
		oldReq, hasReq := amount(old.Requests, r)
		oldLim, hasLim := amount(old.Limits, r)
		u := unit(r)
		if hasLim && oldLim < u {
			// A limit of zero, or of less than a millicore or a byte (memory
			// "500m" meant as megabytes), admits no request we can write.
			continue
		}
		if req > maxValue(r) {
			continue
		}
		if hasReq && oldReq > 0 && math.Abs(req-oldReq)/oldReq < p.ChangeThreshold {
			continue
		}
		b := bounds[r]
		req = clamp(req, b.min, b.max)
		lim, setLim := 0.0, false
		switch {
		case guaranteed:
			lim, setLim = req, true
		case hasLim && p.LimitPolicy == LimitUnchanged:
			req = math.Min(req, oldLim)
			if b.ratio > 0 {
				// The kept limit must stay within maxLimitRequestRatio of
				// the new request.
				req = math.Max(req, oldLim/b.ratio)
			}
		case p.LimitPolicy == LimitRecommended && wantLimit != nil && *wantLimit > 0 && !math.IsInf(*wantLimit, 0):
			lim, setLim = math.Max(*wantLimit, req), true
		case hasLim && hasReq && oldReq >= u:
			lim, setLim = oldLim*req/oldReq, true
			if lim > maxValue(r) {
				// A ratio that cannot be kept (a request of a byte under
				// a limit of gigabytes): the limit stays.
				lim = math.Max(oldLim, req)
			}
		case hasLim:
			lim, setLim = math.Max(oldLim, req), true
		}
		if setLim && lim > maxValue(r) {
			continue
		}
		if setLim {
			lim = clamp(lim, b.min, b.max)
			if guaranteed {
				req = lim
			}
			if lim < req {
				req = lim
			}
			if b.ratio > 0 && lim > b.ratio*req {
				lim = b.ratio * req
			}
		}
		// Rounding (whole millicores, MiB) must not cross a bound the exact
		// values respected, or the LimitRanger would reject the pod.
		reqHi := b.max
		if setLim {
			reqHi = minPositive(reqHi, lim)
		} else if hasLim {
			reqHi = minPositive(reqHi, oldLim)
		}
		reqQ := quantity.Request(r, req, reqHi)
		var limQ resource.Quantity
		if setLim {
			limHi := b.max
			if b.ratio > 0 {
				limHi = minPositive(limHi, b.ratio*reqQ.AsApproximateFloat64())
			}
			limQ = quantity.Request(r, lim, limHi)
			if guaranteed || limQ.Cmp(reqQ) < 0 {
				limQ = reqQ
			}
		}
		// The limit in force after the change: a rounding that crossed
		// it, or a ratio past the LimitRange's, gets the pod rejected.
		effLim, limited := limQ, setLim
		if !setLim && hasLim {
			effLim, limited = old.Limits[r], true
		}
		if limited && (reqQ.Cmp(effLim) > 0 || (b.ratio > 0 && ratioExceeds(reqQ, effLim, b.ratioQ))) {
			continue
		}
		if !b.admits(reqQ.AsApproximateFloat64()) || (setLim && !b.admits(limQ.AsApproximateFloat64())) {
			// A limit the policy keeps can sit outside the LimitRange (the pod
			// is then rejected whatever we do); a value moved there would only
			// add our name to that rejection.
			continue
		}
		if floor > 0 && reqQ.AsApproximateFloat64() < floor*(1-1e-9) && hasReq && reqQ.AsApproximateFloat64() < oldReq {
			// Bounds forced memory under the observed peak: lowering it
			// would invite OOM kills, so this resource keeps its values.
			continue
		}
		if hasReq && math.Abs(reqQ.AsApproximateFloat64()-oldReq)/math.Max(oldReq, 1e-12) < p.ChangeThreshold {
			continue
		}
		if nr.Requests == nil {
			nr.Requests = corev1.ResourceList{}
		}
		nr.Requests[r] = reqQ
		if setLim {
			if nr.Limits == nil {
				nr.Limits = corev1.ResourceList{}
			}
			nr.Limits[r] = limQ
		}
		changed = true
	}
	return nr, changed
}

func minPositive(a, b float64) float64 {
	if a <= 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

func amount(l corev1.ResourceList, r corev1.ResourceName) (float64, bool) {
	q, ok := l[r]
	if !ok {
		return 0, false
	}
	return q.AsApproximateFloat64(), true
}

func clamp(v, lo, hi float64) float64 {
	if lo > 0 && v < lo {
		v = lo
	}
	if hi > 0 && v > hi {
		v = hi
	}
	return v
}

// unit is the smallest amount of r a request is written in: a millicore,
// a byte.
func unit(r corev1.ResourceName) float64 {
	if r == corev1.ResourceCPU {
		return 0.001
	}
	return 1
}

// maxValue bounds a believable request or limit of r (a million cores,
// the recommender's own memory bound): past it a figure is an error
// upstream, and converting it to a quantity's int64 would overflow.
func maxValue(r corev1.ResourceName) float64 {
	if r == corev1.ResourceCPU {
		return 1 << 20
	}
	return recommend.MaxMemoryBytes
}

func resourcesOf(rr corev1.ResourceRequirements) Resources {
	conv := func(l corev1.ResourceList) map[string]string {
		if len(l) == 0 {
			return nil
		}
		m := make(map[string]string, len(l))
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := l[r]; ok {
				m[string(r)] = q.String()
			}
		}
		return m
	}
	return Resources{Requests: conv(rr.Requests), Limits: conv(rr.Limits)}
}

// qosOf follows the rules of Kubernetes' pod QoS (pkg/apis/core/v1/helper/qos)
// for CPU and memory, the only resources that decide it.
func qosOf(lists ...[]containerFields) corev1.PodQOSClass {
	requests, limits := 0, 0
	guaranteed := true
	for _, cs := range lists {
		for _, c := range cs {
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, hasReq := c.Resources.Requests[r]
				lim, hasLim := c.Resources.Limits[r]
				if hasReq && !req.IsZero() {
					requests++
				}
				if hasLim && !lim.IsZero() {
					limits++
				}
				if !hasLim || lim.IsZero() || (hasReq && req.Cmp(lim) != 0) {
					guaranteed = false
				}
			}
		}
	}
	switch {
	case requests == 0 && limits == 0:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	default:
		return corev1.PodQOSBurstable
	}
}

// Patch builds the JSON patch for pod: in enforce mode the changed resource
// fields, in both modes the annotations. Only fields that change are touched.
func (p *Plan) Patch(pod *corev1.Pod, mode string) ([]jsonpatch.Operation, error) {
	return p.patch(annotationsOf(pod.Annotations), mode)
}

// patch needs only the pod's annotations: the rest of the patch is in the plan.
func (p *Plan) patch(annotations *podAnnotations, mode string) ([]jsonpatch.Operation, error) {
	ops := make([]jsonpatch.Operation, 0, 2*len(p.changes)+5)
	if mode == ModeEnforce {
		for _, ch := range p.changes {
			base := "/spec/" + ch.list + "/" + strconv.Itoa(ch.index) + "/resources"
			if len(ch.old.Requests) == 0 && len(ch.old.Limits) == 0 && len(ch.old.Claims) == 0 {
				// Nothing in resources to keep (claims of DRA devices would
				// be lost with a whole-object add).
				ops = append(ops, jsonpatch.NewOperation("add", base, resourceValues{Requests: valuesOf(ch.new.Requests), Limits: valuesOf(ch.new.Limits)}))
				continue
			}
			ops = append(ops, listOps(base+"/requests", ch.old.Requests, ch.new.Requests)...)
			ops = append(ops, listOps(base+"/limits", ch.old.Limits, ch.new.Limits)...)
		}
		if p.pod != nil {
			ops = append(ops, listOps("/spec/resources/requests", p.pod.old.Requests, p.pod.new.Requests)...)
		}
	}
	if p.undone {
		// The records describe changes no longer made.
		for _, k := range []string{AnnotationOriginal, AnnotationRecommended, AnnotationOriginalPod, AnnotationRecommendedPod} {
			if _, ok := annotations.get(k); ok {
				ops = append(ops, jsonpatch.NewOperation("remove", "/metadata/annotations/"+escape(k), nil))
			}
		}
		return ops, nil
	}
	var anns [5][2]string
	anns[0] = [2]string{AnnotationMode, mode}
	if len(p.changes) > 0 {
		// A reinvocation adds to the first call's records: every container
		// UPID changed in either call stays in them, and a container's
		// original is the first call's.
		recd, orig := p.Recommended, p.Original
		if prev, ok := readRecord[map[string]Resources](annotations, AnnotationRecommended); ok {
			recd = maps.Clone(prev)
			maps.Copy(recd, p.Recommended)
		}
		if prev, ok := readRecord[map[string]Resources](annotations, AnnotationOriginal); ok {
			orig = maps.Clone(p.Original)
			maps.Copy(orig, prev)
		} else if _, garbled := annotations.get(AnnotationOriginal); garbled {
			orig = nil // not UPID's to replace
		}
		rec, err := annotationJSON(recd)
		if err != nil {
			return nil, err
		}
		anns[1] = [2]string{AnnotationRecommended, rec}
		if orig != nil {
			o, err := annotationJSON(orig)
			if err != nil {
				return nil, err
			}
			anns[2] = [2]string{AnnotationOriginal, o}
		}
	}
	if p.RecommendedPod != nil {
		rec, err := fastJSON.MarshalToString(valuesOfResources(*p.RecommendedPod))
		if err != nil {
			return nil, err
		}
		anns[3] = [2]string{AnnotationRecommendedPod, rec}
		if _, ok := annotations.get(AnnotationOriginalPod); !ok {
			orig, err := fastJSON.MarshalToString(valuesOfResources(*p.OriginalPod))
			if err != nil {
				return nil, err
			}
			anns[4] = [2]string{AnnotationOriginalPod, orig}
		}
	}
	grow := 0
	for _, kv := range anns {
		if kv[0] == "" {
			continue
		}
		if cur, ok := annotations.get(kv[0]); ok {
			grow += len(kv[1]) - len(cur)
		} else {
			grow += len(kv[0]) + len(kv[1])
		}
	}
	if annotations.sizeOr0()+grow > apivalidation.TotalAnnotationSizeLimitB {
		// The API server validates the annotations after the webhooks,
		// and a failurePolicy does not cover that rejection.
		return nil, errAnnotationsTooLarge
	}
	if annotations == nil {
		m := make(map[string]string, len(anns))
		for _, kv := range anns {
			if kv[0] != "" {
				m[kv[0]] = kv[1]
			}
		}
		ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations", m))
	} else {
		for _, k := range []string{AnnotationMode, AnnotationOriginal, AnnotationRecommended, AnnotationOriginalPod, AnnotationRecommendedPod} {
			for _, kv := range anns {
				if cur, _ := annotations.get(k); kv[0] == k && cur != kv[1] {
					ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+escape(k), kv[1]))
				}
			}
		}
	}
	return ops, nil
}

// errAnnotationsTooLarge: UPID's annotations would take the pod's past
// the API server's limit, which would reject the pod.
var errAnnotationsTooLarge = errors.New("the pod's annotations would pass the API server's limit")

func (a *podAnnotations) sizeOr0() int {
	if a == nil {
		return 0
	}
	return a.size
}

// cpuMemory and resourceValues are what the patch and the annotations write
// for a container. Structs encode in a fixed order without the sorting a
// map needs: cpuMemory's fields in the order encoding/json sorts map keys,
// resourceValues' in the order of Resources' fields.
type cpuMemory struct {
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
}

type resourceValues struct {
	Requests *cpuMemory `json:"requests,omitempty"`
	Limits   *cpuMemory `json:"limits,omitempty"`
}

// valuesOf takes CPU and memory, the only resources a plan sets; a list
// with neither is nil, as encoding/json omits an empty map.
func valuesOf(l corev1.ResourceList) *cpuMemory {
	var v cpuMemory
	if q, ok := l[corev1.ResourceCPU]; ok {
		v.CPU = q.String()
	}
	if q, ok := l[corev1.ResourceMemory]; ok {
		v.Memory = q.String()
	}
	if v == (cpuMemory{}) {
		return nil
	}
	return &v
}

func valuesOfResources(r Resources) resourceValues {
	conv := func(m map[string]string) *cpuMemory {
		v := cpuMemory{CPU: m[string(corev1.ResourceCPU)], Memory: m[string(corev1.ResourceMemory)]}
		if v == (cpuMemory{}) {
			return nil
		}
		return &v
	}
	return resourceValues{Requests: conv(r.Requests), Limits: conv(r.Limits)}
}

// annotationJSON encodes the original or recommended annotation exactly as
// encoding/json encodes the map: containers in name order.
func annotationJSON(m map[string]Resources) (string, error) {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	s := fastJSON.BorrowStream(nil)
	defer fastJSON.ReturnStream(s)
	s.WriteObjectStart()
	for i, n := range names {
		if i > 0 {
			s.WriteMore()
		}
		s.WriteVal(n)
		s.WriteRaw(":")
		s.WriteVal(valuesOfResources(m[n]))
	}
	s.WriteObjectEnd()
	if s.Error != nil {
		return "", s.Error
	}
	return string(s.Buffer()), nil
}

// listOps patches one requests or limits map: the whole map when it did not
// exist, otherwise each changed entry ("add" replaces an existing member),
// and removes the CPU or memory nw lacks (taking a change back: undo).
func listOps(path string, old, nw corev1.ResourceList) []jsonpatch.Operation {
	if len(old) == 0 {
		if len(nw) == 0 {
			return nil
		}
		// Only CPU and memory: a list that did not exist gets no others.
		// An empty one may be absent from the JSON (omitempty), and "add"
		// replaces one that is there.
		return []jsonpatch.Operation{jsonpatch.NewOperation("add", path, valuesOf(nw))}
	}
	var ops []jsonpatch.Operation
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		q, ok := nw[r]
		o, had := old[r]
		switch {
		case ok && !(had && o.Cmp(q) == 0):
			ops = append(ops, jsonpatch.NewOperation("add", path+"/"+string(r), q.String()))
		case had && !ok:
			ops = append(ops, jsonpatch.NewOperation("remove", path+"/"+string(r), nil))
		}
	}
	return ops
}

// summary says what the plan sets, container by container, for an Event:
// "app: requests cpu 250m, memory 128Mi (were cpu 1, memory 1Gi)".
func (p *Plan) summary() string {
	say := func(r Resources) string {
		var parts []string
		for _, l := range []struct {
			name string
			m    map[string]string
		}{{"requests", r.Requests}, {"limits", r.Limits}} {
			var kv []string
			for _, k := range []string{"cpu", "memory"} {
				if v, ok := l.m[k]; ok {
					kv = append(kv, k+" "+v)
				}
			}
			if len(kv) > 0 {
				parts = append(parts, l.name+" "+strings.Join(kv, ", "))
			}
		}
		if len(parts) == 0 {
			return "none"
		}
		return strings.Join(parts, "; ")
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(p.Recommended)) {
		out = append(out, name+": "+say(p.Recommended[name])+" (was "+say(p.Original[name])+")")
	}
	if p.RecommendedPod != nil {
		out = append(out, "the pod: "+say(*p.RecommendedPod)+" (was "+say(*p.OriginalPod)+")")
	}
	return strings.Join(out, "; ")
}

// readRecord reads a record annotation an earlier call wrote: a
// map[string]Resources of containers (upid.io/original-resources,
// upid.io/recommended-resources) or the pod's Resources
// (upid.io/original-pod-resources, upid.io/recommended-pod-resources); ok is
// false when the pod has none, and a record that does not parse is none.
func readRecord[T any](annotations *podAnnotations, key string) (T, bool) {
	var m T
	v, ok := annotations.get(key)
	if !ok {
		return m, false
	}
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		var none T
		return none, false
	}
	return m, true
}

// escape encodes a map key as a JSON pointer segment (RFC 6901).
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
