package webhook

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"

	jsonpatch "gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Annotations written on pods and read from pods, workloads and namespaces.
const (
	AnnotationMode        = "upid.io/webhook-mode"
	AnnotationOptOut      = "upid.io/webhook"
	AnnotationOriginal    = "upid.io/original-resources"
	AnnotationRecommended = "upid.io/recommended-resources"
	optOutValue           = "disabled"
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
	changes     []containerChange
}

type containerChange struct {
	list  string // "containers" or "initContainers"
	index int
	old   corev1.ResourceRequirements
	new   corev1.ResourceRequirements
}

// Changed reports whether the plan changes any container.
func (p *Plan) Changed() bool { return len(p.changes) > 0 }

// Decide computes the new resources of pod's containers. limitRanges are
// those of the pod's namespace; targets are keyed by container name. It
// never fails: anything it cannot judge safely is left unchanged.
func Decide(pod *corev1.Pod, targets map[string]Target, limitRanges []*corev1.LimitRange, p Policy) *Plan {
	plan := &Plan{}
	before := qosClass(pod)
	if before == corev1.PodQOSBestEffort {
		// Adding requests would make it Burstable and change how it is evicted.
		plan.Reason = "best_effort"
		return plan
	}
	guaranteed := before == corev1.PodQOSGuaranteed
	bounds := containerBounds(limitRanges)
	seen := false
	visit := func(list string, cs []corev1.Container, init bool) {
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
			nr, changed := decideContainer(c.Resources, t, bounds, guaranteed, p)
			if changed {
				plan.changes = append(plan.changes, containerChange{list: list, index: i, old: c.Resources, new: nr})
			}
		}
	}
	visit("initContainers", pod.Spec.InitContainers, true)
	visit("containers", pod.Spec.Containers, false)
	if !seen {
		plan.Reason = "no_recommendation"
		return plan
	}
	if len(plan.changes) == 0 {
		plan.Reason = "below_threshold"
		return plan
	}
	// Only the containers decide the QoS class; copying just them keeps
	// the admission path light.
	after := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: slices.Clone(pod.Spec.InitContainers),
		Containers:     slices.Clone(pod.Spec.Containers),
	}}
	for _, ch := range plan.changes {
		listOf(after, ch.list)[ch.index].Resources = ch.new
	}
	if qosClass(after) != before {
		plan.changes = nil
		plan.Reason = "qos_change"
		return plan
	}
	plan.Original = map[string]Resources{}
	plan.Recommended = map[string]Resources{}
	for _, ch := range plan.changes {
		name := listOf(pod, ch.list)[ch.index].Name
		plan.Original[name] = resourcesOf(ch.old)
		plan.Recommended[name] = resourcesOf(ch.new)
	}
	return plan
}

func listOf(pod *corev1.Pod, list string) []corev1.Container {
	if list == "initContainers" {
		return pod.Spec.InitContainers
	}
	return pod.Spec.Containers
}

// bound is a LimitRange's constraint on one resource of a container; zero
// values mean no constraint.
type bound struct{ min, max, ratio float64 }

// containerBounds merges the Container items of all LimitRanges, keeping the
// tightest value of each, as the LimitRanger admission plugin checks them all.
func containerBounds(lrs []*corev1.LimitRange) map[corev1.ResourceName]bound {
	out := map[corev1.ResourceName]bound{}
	for _, lr := range lrs {
		for _, item := range lr.Spec.Limits {
			if item.Type != corev1.LimitTypeContainer {
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
						b.ratio = v
					}
				}
				out[r] = b
			}
		}
	}
	return out
}

func decideContainer(old corev1.ResourceRequirements, t Target, bounds map[corev1.ResourceName]bound, guaranteed bool, p Policy) (corev1.ResourceRequirements, bool) {
	nr := *old.DeepCopy()
	changed := false
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
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
		oldReq, hasReq := quantity(old.Requests, r)
		oldLim, hasLim := quantity(old.Limits, r)
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
		case p.LimitPolicy == LimitRecommended && wantLimit != nil && *wantLimit > 0 && !math.IsInf(*wantLimit, 0):
			lim, setLim = math.Max(*wantLimit, req), true
		case hasLim && hasReq && oldReq > 0:
			lim, setLim = oldLim*req/oldReq, true
		case hasLim:
			lim, setLim = math.Max(oldLim, req), true
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
		reqQ := formatWithin(r, req, reqHi)
		var limQ resource.Quantity
		if setLim {
			limHi := b.max
			if b.ratio > 0 {
				limHi = minPositive(limHi, b.ratio*reqQ.AsApproximateFloat64())
			}
			limQ = formatWithin(r, lim, limHi)
			if guaranteed || limQ.Cmp(reqQ) < 0 {
				limQ = reqQ
			}
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

// formatWithin is format, falling back to the largest exact value at or
// under hi when rounding would exceed it.
func formatWithin(r corev1.ResourceName, v, hi float64) resource.Quantity {
	q := format(r, v)
	if hi <= 0 || q.AsApproximateFloat64() <= hi {
		return q
	}
	if r == corev1.ResourceCPU {
		return *resource.NewMilliQuantity(int64(math.Max(1, math.Floor(hi*1000+1e-6))), resource.DecimalSI)
	}
	return *resource.NewQuantity(int64(math.Max(1, math.Floor(hi+1e-6))), resource.BinarySI)
}

func quantity(l corev1.ResourceList, r corev1.ResourceName) (float64, bool) {
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

const mebibyte = 1 << 20

// format rounds to what people write: whole millicores, and memory up to a
// whole MiB (down when only that fits under a LimitRange max, handled by the
// caller's clamp having been applied on the exact value).
func format(r corev1.ResourceName, v float64) resource.Quantity {
	if r == corev1.ResourceCPU {
		return *resource.NewMilliQuantity(int64(math.Max(1, math.Ceil(v*1000-1e-6))), resource.DecimalSI)
	}
	mib := math.Ceil(v/mebibyte - 1e-9)
	if mib*mebibyte != v && v >= mebibyte {
		return *resource.NewQuantity(int64(mib)*mebibyte, resource.BinarySI)
	}
	return *resource.NewQuantity(int64(math.Ceil(v)), resource.BinarySI)
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

// qosClass follows the rules of Kubernetes' pod QoS (pkg/apis/core/v1/helper/qos)
// for CPU and memory, the only resources that decide it.
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	requests, limits := 0, 0
	guaranteed := true
	check := func(cs []corev1.Container) {
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
	check(pod.Spec.InitContainers)
	check(pod.Spec.Containers)
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
	var ops []jsonpatch.Operation
	if mode == ModeEnforce {
		for _, ch := range p.changes {
			base := "/spec/" + ch.list + "/" + strconv.Itoa(ch.index) + "/resources"
			if ch.old.Requests == nil && ch.old.Limits == nil {
				ops = append(ops, jsonpatch.NewOperation("add", base, resourceMap(ch.new)))
				continue
			}
			ops = append(ops, listOps(base+"/requests", ch.old.Requests, ch.new.Requests)...)
			ops = append(ops, listOps(base+"/limits", ch.old.Limits, ch.new.Limits)...)
		}
	}
	anns := map[string]string{AnnotationMode: mode}
	rec, err := json.Marshal(p.Recommended)
	if err != nil {
		return nil, err
	}
	anns[AnnotationRecommended] = string(rec)
	// A reinvocation must not replace the first call's record of the original.
	if _, ok := pod.Annotations[AnnotationOriginal]; !ok {
		orig, err := json.Marshal(p.Original)
		if err != nil {
			return nil, err
		}
		anns[AnnotationOriginal] = string(orig)
	}
	if pod.Annotations == nil {
		ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations", anns))
	} else {
		for _, k := range []string{AnnotationMode, AnnotationOriginal, AnnotationRecommended} {
			if v, ok := anns[k]; ok && pod.Annotations[k] != v {
				ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+escape(k), v))
			}
		}
	}
	return ops, nil
}

func resourceMap(rr corev1.ResourceRequirements) map[string]any {
	m := map[string]any{}
	if len(rr.Requests) > 0 {
		m["requests"] = stringsOf(rr.Requests)
	}
	if len(rr.Limits) > 0 {
		m["limits"] = stringsOf(rr.Limits)
	}
	return m
}

func stringsOf(l corev1.ResourceList) map[string]string {
	m := make(map[string]string, len(l))
	for k, q := range l {
		m[string(k)] = q.String()
	}
	return m
}

// listOps patches one requests or limits map: the whole map when it did not
// exist, otherwise each changed entry ("add" replaces an existing member).
func listOps(path string, old, nw corev1.ResourceList) []jsonpatch.Operation {
	if len(nw) == 0 {
		return nil
	}
	if old == nil {
		return []jsonpatch.Operation{jsonpatch.NewOperation("add", path, stringsOf(nw))}
	}
	var ops []jsonpatch.Operation
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		q, ok := nw[r]
		if !ok {
			continue
		}
		if o, had := old[r]; had && o.Cmp(q) == 0 {
			continue
		}
		ops = append(ops, jsonpatch.NewOperation("add", path+"/"+string(r), q.String()))
	}
	return ops
}

// escape encodes a map key as a JSON pointer segment (RFC 6901).
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
