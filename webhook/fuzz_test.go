package webhook

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
)

// FuzzReview feeds arbitrary bytes to the AdmissionReview decoder and the
// whole decision: it must never panic, never deny, and any patch must apply
// to the object it was computed for.
func FuzzReview(f *testing.F) {
	f.Add(reviewBody(f, "team", admissionv1.Create, podKind, webPod(nil)))
	f.Add(reviewBody(f, "team", admissionv1.Create, podKind, webPod(map[string]string{AnnotationOriginal: "{}"})))
	f.Add(reviewBody(f, "kube-system", admissionv1.Create, podKind, webPod(nil)))
	f.Add([]byte(`{"request":{"uid":"u","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","namespace":"team","object":{"metadata":{"ownerReferences":[{"kind":"ReplicaSet","name":"web-abc","controller":true}],"labels":{"pod-template-hash":"abc"}},"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"1e3"}}}]}}}}`))
	f.Add([]byte(`{"request":{"object":null}}`))
	f.Add([]byte(`[]`))
	// A reinvocation of a pod UPID raised, in a namespace whose quota it
	// no longer fits: the undo path.
	f.Add(reviewBody(f, "team", admissionv1.Create, podKind, webPod(map[string]string{AnnotationMode: ModeEnforce,
		AnnotationOriginal: `{"app":{"requests":{"cpu":"10m","memory":"1Mi"}}}`, AnnotationRecommended: `{"app":{"requests":{"cpu":"1"}}}`})))
	// The same with pod-level resources: their take-back.
	podLevel := webPod(map[string]string{AnnotationMode: ModeEnforce,
		AnnotationOriginalPod: `{"requests":{"cpu":"10m"},"limits":{"cpu":"2"}}`, AnnotationRecommendedPod: `{"requests":{"cpu":"1"},"limits":{"cpu":"2"}}`})
	podLevel.Spec.Resources = &corev1.ResourceRequirements{Requests: rl("cpu", "1"), Limits: rl("cpu", "2")}
	podLevel.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("memory", "1Gi")}
	f.Add(reviewBody(f, "team", admissionv1.Create, podKind, podLevel))
	quota := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Hard: rl("requests.cpu", "100m")},
		Status: corev1.ResourceQuotaStatus{Hard: rl("requests.cpu", "100m"), Used: rl("requests.cpu", "0")}}
	h := newTestHandler(f, ModeEnforce, &staticCluster{wl: map[string]map[string]string{"team/Deployment/web": {}}, constraints: map[string]Constraints{"team": {Quotas: []*corev1.ResourceQuota{quota}}}})
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := h.Review(context.Background(), body)
		if err != nil {
			return
		}
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(out, &review); err != nil || review.Response == nil {
			t.Fatalf("undecodable response %s: %v", out, err)
		}
		if !review.Response.Allowed {
			t.Fatalf("denied: %s", out)
		}
		if len(review.Response.Patch) == 0 {
			return
		}
		var in admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &in); err != nil || in.Request == nil {
			// json-iterator is more lenient than encoding/json (control
			// characters in strings, say); the API server sends only valid
			// JSON, so such a body has no object to check the patch against.
			return
		}
		p, err := jsonpatch.DecodePatch(review.Response.Patch)
		if err != nil {
			t.Fatalf("bad patch %s: %v", review.Response.Patch, err)
		}
		if _, err := p.Apply(in.Request.Object.Raw); err != nil {
			t.Fatalf("patch %s does not apply to %s: %v", review.Response.Patch, in.Request.Object.Raw, err)
		}
	})
}

// FuzzDecide builds pods and targets from arbitrary numbers: the patch must
// apply, keep the QoS class, respect the LimitRange, and never lower memory
// under the observed peak with its margin.
func FuzzDecide(f *testing.F) {
	f.Add(int64(1000), int64(1<<30), int64(2000), int64(2<<30), 0.25, 128.0*mi, 100.0*mi, int64(100), int64(4000), uint8(0))
	f.Add(int64(500), int64(1<<30), int64(500), int64(1<<30), 0.1, 64.0*mi, 900.0*mi, int64(0), int64(0), uint8(1))
	f.Add(int64(0), int64(0), int64(0), int64(0), 1.0, 1.0, 0.0, int64(0), int64(0), uint8(2))
	f.Add(int64(1), int64(1), int64(1), int64(1), math.Inf(1), math.NaN(), -1.0, int64(5), int64(1), uint8(3))
	f.Add(int64(1000), int64(1<<30), int64(2000), int64(2<<30), 0.25, 128.0*mi, 100.0*mi, int64(0), int64(0), uint8(3))      // pod-level CPU
	f.Add(int64(1000), int64(1<<30), int64(0), int64(0), 0.25, 128.0*mi, 100.0*mi, int64(0), int64(0), uint8(7))             // pod-level memory
	f.Add(int64(1000), int64(1<<30), int64(2000), int64(2<<30), 0.1, 128.0*mi, 100.0*mi, int64(300), int64(1500), uint8(12)) // Pod LimitRange
	f.Add(int64(100), int64(1<<30), int64(0), int64(0), 2.0, 128.0*mi, 100.0*mi, int64(300), int64(1500), uint8(24))         // quota
	f.Fuzz(func(t *testing.T, cpuReq, memReq, cpuLim, memLim int64, tCPU, tMem, peak float64, lrMin, lrMax int64, policy uint8) {
		list := func(cpu, mem int64) corev1.ResourceList {
			l := corev1.ResourceList{}
			if cpu > 0 {
				l[corev1.ResourceCPU] = *resource.NewMilliQuantity(cpu%1_000_000, resource.DecimalSI)
			}
			if mem > 0 {
				l[corev1.ResourceMemory] = *resource.NewQuantity(mem%(1<<40), resource.BinarySI)
			}
			if len(l) == 0 {
				return nil
			}
			return l
		}
		pod := webPod(nil)
		pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: list(cpuReq, memReq), Limits: list(cpuLim, memLim)}
		for r, lim := range pod.Spec.Containers[0].Resources.Limits {
			if req, ok := pod.Spec.Containers[0].Resources.Requests[r]; ok && req.Cmp(lim) > 0 {
				return // API validation rejects such pods before admission
			}
		}
		var lrs []*corev1.LimitRange
		lo, hi := lrMin%100_000, lrMax%100_000
		if lo > 0 || hi > 0 {
			// With one container the pod's sums are the container's: a Pod
			// item must bound it the same way.
			typ := corev1.LimitTypeContainer
			if policy/12%2 == 1 {
				typ = corev1.LimitTypePod
			}
			item := corev1.LimitRangeItem{Type: typ, Min: corev1.ResourceList{}, Max: corev1.ResourceList{}}
			if lo > 0 {
				item.Min[corev1.ResourceCPU] = *resource.NewMilliQuantity(lo, resource.DecimalSI)
			}
			if hi > 0 {
				item.Max[corev1.ResourceCPU] = *resource.NewMilliQuantity(hi, resource.DecimalSI)
			}
			lrs = []*corev1.LimitRange{{Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{item}}}}
		}
		p := defaultPolicy
		p.LimitPolicy = []string{LimitKeepRatio, LimitRecommended, LimitUnchanged}[policy%3]
		// The higher bits set pod-level resources (none, CPU, memory, both)
		// at the container's values, so the pod starts valid.
		var podLevel []corev1.ResourceName
		if m := policy / 3 % 4; m > 0 {
			c := pod.Spec.Containers[0].Resources
			pod.Spec.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
			for i, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if m&(1<<i) == 0 {
					continue
				}
				podLevel = append(podLevel, r)
				q, hasReq := c.Requests[r]
				if hasReq {
					pod.Spec.Resources.Requests[r] = q
				}
				q, hasLim := c.Limits[r]
				if !hasReq && !hasLim {
					q, hasLim = *resource.NewMilliQuantity(1000, resource.DecimalSI), true
				}
				if hasLim {
					pod.Spec.Resources.Limits[r] = q
				}
			}
		}
		podTargets := map[corev1.ResourceName]float64{}
		for _, r := range podLevel {
			podTargets[r] = map[corev1.ResourceName]float64{corev1.ResourceCPU: tCPU, corev1.ResourceMemory: tMem}[r]
		}
		target := Target{CPURequest: &tCPU, CPULimit: &tCPU, MemoryRequest: &tMem, MemoryLimit: &tMem, MemoryPeak: &peak}
		ns := Constraints{LimitRanges: lrs}
		// Another bit puts the pod in a CPU quota instead: hard hi, used lo.
		quota := policy/24%2 == 1 && lo >= 0 && hi > 0
		if quota {
			hard := corev1.ResourceList{corev1.ResourceRequestsCPU: *resource.NewMilliQuantity(hi, resource.DecimalSI)}
			ns = Constraints{Quotas: []*corev1.ResourceQuota{{
				Spec:   corev1.ResourceQuotaSpec{Hard: hard},
				Status: corev1.ResourceQuotaStatus{Hard: hard, Used: corev1.ResourceList{corev1.ResourceRequestsCPU: *resource.NewMilliQuantity(lo, resource.DecimalSI)}},
			}}}
		}
		plan := Decide(pod, &WorkloadRecs{Containers: map[string]Target{"app": target}, Pod: podTargets}, ns, p)
		if !plan.Changed() {
			return
		}
		got := applyPatch(t, pod, plan, ModeEnforce)
		if a, b := qosClass(pod), qosClass(got); a != b && len(podLevel) == 0 {
			t.Fatalf("QoS %s → %s", a, b)
		}
		old, nw := pod.Spec.Containers[0].Resources, got.Spec.Containers[0].Resources
		// The pod's CPU request as the quota counts it once the API server
		// has completed this one-container pod: the pod's own, else the
		// container's, else the pod's limit.
		created := func(p *corev1.Pod) resource.Quantity {
			if pr := p.Spec.Resources; pr != nil {
				if q, ok := pr.Requests[corev1.ResourceCPU]; ok {
					return q
				}
				if q, ok := p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; ok {
					return q
				}
				return pr.Limits[corev1.ResourceCPU]
			}
			return p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]
		}
		if a, b := created(pod), created(got); quota && b.Cmp(a) > 0 && b.MilliValue()+lo > hi {
			t.Fatalf("the pod's CPU request raised to %s with %dm of a %dm quota used", b.String(), lo, hi)
		}
		if len(podLevel) > 0 {
			// What validatePodResourceConsistency and the pod-level QoS
			// class ask of the pod after.
			before, after := *pod.Spec.Resources, *got.Spec.Resources
			aggregate := resourcehelper.AggregateContainerRequests(got, resourcehelper.PodResourcesOptions{})
			for _, r := range podLevel {
				req, hasReq := after.Requests[r]
				lim, hasLim := after.Limits[r]
				if a := aggregate[r]; hasReq && req.Cmp(a) < 0 {
					t.Fatalf("pod-level %s request %s under the containers' %s", r, req.String(), a.String())
				}
				if hasReq && hasLim && req.Cmp(lim) > 0 {
					t.Fatalf("pod-level %s request %s above its limit %s", r, req.String(), lim.String())
				}
			}
			// Guaranteed, as the API server completes the pod-level
			// resources of this one-container pod: a missing request is
			// the container's, else the limit; a missing limit is the
			// container's, at least the request.
			atLimits := func(pr corev1.ResourceRequirements, c corev1.ResourceRequirements) bool {
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					req, hasReq := pr.Requests[r]
					lim, hasLim := pr.Limits[r]
					if !hasReq {
						req, hasReq = c.Requests[r]
						if !hasReq {
							req, hasReq = lim, hasLim
						}
					}
					if cl, ok := c.Limits[r]; !hasLim && hasReq && ok {
						lim, hasLim = cl, true
						if req.Cmp(lim) > 0 {
							lim = req
						}
					}
					if !hasLim || lim.IsZero() || req.Cmp(lim) != 0 {
						return false
					}
				}
				return true
			}
			if atLimits(before, old) != atLimits(after, nw) {
				t.Fatalf("pod-level resources %v → %v with container %v → %v change whether the pod is Guaranteed", before, after, old, nw)
			}
		}
		if q, ok := nw.Requests[corev1.ResourceCPU]; ok && !quota && lo > 0 && hi >= lo && !old.Requests.Cpu().Equal(q) {
			if v := q.MilliValue(); v < lo || v > hi {
				t.Fatalf("cpu request %s outside LimitRange [%dm, %dm]", q.String(), lo, hi)
			}
		}
		if q, ok := nw.Requests[corev1.ResourceMemory]; ok && peak > 0 && !math.IsInf(peak, 0) {
			o := old.Requests[corev1.ResourceMemory]
			floor := peak * (1 + p.MemoryMargin)
			if q.AsApproximateFloat64() < floor*(1-1e-9) && q.AsApproximateFloat64() < o.AsApproximateFloat64() {
				t.Fatalf("memory lowered to %s, under the peak floor %g", q.String(), floor)
			}
		}
		for _, r := range podLevel {
			// The API server would reject containers above the pod.
			if a, b := old.Requests[r], nw.Requests[r]; !a.Equal(b) {
				t.Fatalf("%s request %s → %s under a pod-level %s", r, a.String(), b.String(), r)
			}
			if a, b := old.Limits[r], nw.Limits[r]; !a.Equal(b) {
				t.Fatalf("%s limit %s → %s under a pod-level %s", r, a.String(), b.String(), r)
			}
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := nw.Requests[r]
			lim, hasLim := nw.Limits[r]
			if hasReq && hasLim && req.Cmp(lim) > 0 {
				t.Fatalf("%s request %s above limit %s", r, req.String(), lim.String())
			}
		}
	})
}
