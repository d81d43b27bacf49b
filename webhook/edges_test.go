package webhook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/internal/testenv"
)

// TestDecideEdges holds pods a review found the API server rejecting, or
// stripping, after the webhook's change: each patched pod must keep
// request ≤ limit and the LimitRange's ratio, its claims, a limit near
// the one it had, and the quota's room counted with the RuntimeClass's
// overhead.
func TestDecideEdges(t *testing.T) {
	unchanged := defaultPolicy
	unchanged.LimitPolicy = LimitUnchanged
	ratio2 := Constraints{LimitRanges: []*corev1.LimitRange{limitRange(corev1.LimitTypeContainer, nil, nil, rl("cpu", "2"))}}
	for _, tc := range []struct {
		name       string
		res        corev1.ResourceRequirements
		claims     bool
		overhead   corev1.ResourceList
		target     Target
		constr     Constraints
		policy     Policy
		wantChange bool
		wantReason string
		// the memory limit after, when it is kept or scaled ("" when unset)
		wantMemLimit string
	}{{
		name:   "unchanged limit, ratio 2: the request stays at limit / 2",
		res:    corev1.ResourceRequirements{Requests: rl("cpu", "1", "memory", "1Gi"), Limits: rl("cpu", "2", "memory", "1Gi")},
		target: Target{CPURequest: f(0.25)}, constr: ratio2, policy: unchanged, wantReason: "below_threshold",
	}, {
		name:   "unchanged limit, ratio 2: lowered as far as the ratio allows",
		res:    corev1.ResourceRequirements{Requests: rl("cpu", "2", "memory", "1Gi"), Limits: rl("cpu", "2", "memory", "1Gi")},
		target: Target{CPURequest: f(0.25)}, constr: ratio2, policy: unchanged, wantChange: true, wantMemLimit: "1Gi",
	}, {
		name:   "memory limit under a byte (500m meant as MB) is left alone",
		res:    corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "100m"), Limits: rl("cpu", "1", "memory", "500m")},
		target: Target{MemoryRequest: f(128 * mi)}, policy: unchanged, wantReason: "below_threshold", wantMemLimit: "500m",
	}, {
		name:   "CPU limit of zero is left alone",
		res:    corev1.ResourceRequirements{Requests: rl("cpu", "0", "memory", "128Mi"), Limits: rl("cpu", "0")},
		target: Target{CPURequest: f(0.25)}, wantReason: "below_threshold",
	}, {
		name:   "keep ratio from a request under a byte keeps the limit",
		res:    corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "100m"), Limits: rl("memory", "8Gi")},
		target: Target{MemoryRequest: f(128 * mi)}, policy: defaultPolicy, wantChange: true, wantMemLimit: "8Gi",
	}, {
		name:   "keep ratio past a PiB keeps the limit",
		res:    corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "1"), Limits: rl("memory", "64Gi")},
		target: Target{MemoryRequest: f(128 * mi)}, policy: defaultPolicy, wantChange: true, wantMemLimit: "64Gi",
	}, {
		name:   "claims only: the claim stays",
		res:    corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpu"}}},
		claims: true, target: Target{CPURequest: f(0.5), MemoryRequest: f(256 * mi)}, policy: defaultPolicy, wantChange: true,
	}, {
		name:     "quota counts the RuntimeClass overhead",
		res:      corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "128Mi")},
		overhead: rl("cpu", "250m"), target: Target{CPURequest: f(0.25)}, policy: defaultPolicy,
		constr:     Constraints{Quotas: []*corev1.ResourceQuota{quota(rl("requests.cpu", "600m"), rl("requests.cpu", "250m"))}},
		wantReason: "resource_quota",
	}, {
		name:     "quota with room for the overhead too",
		res:      corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "128Mi")},
		overhead: rl("cpu", "250m"), target: Target{CPURequest: f(0.25)}, policy: defaultPolicy,
		constr:     Constraints{Quotas: []*corev1.ResourceQuota{quota(rl("requests.cpu", "800m"), rl("requests.cpu", "250m"))}},
		wantChange: true,
	}, {
		// Rounded to whole MiB, limit/1000 (1048576.001 bytes) became
		// 1Mi, a ratio of 1000.000001, which the LimitRanger rejects.
		name:   "unchanged limit, ratio 1000: rounding does not cross it",
		res:    corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "10Mi"), Limits: rl("memory", "1048576001")},
		target: Target{MemoryRequest: f(512 << 10)}, policy: unchanged, wantReason: "below_threshold",
		constr: Constraints{LimitRanges: []*corev1.LimitRange{limitRange(corev1.LimitTypeContainer, nil, nil, rl("memory", "1000"))}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			pod := webPod(nil)
			pod.Spec.Containers[0].Resources = tc.res
			pod.Spec.Overhead = tc.overhead
			if tc.claims {
				// A sidecar with a request keeps the pod out of BestEffort,
				// which the webhook never changes.
				pod.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "gpu"}}
				pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "side", Image: "x", Resources: corev1.ResourceRequirements{Requests: rl("cpu", "100m")}})
			}
			plan := Decide(pod, &WorkloadRecs{Containers: map[string]Target{"app": tc.target}}, tc.constr, tc.policy)
			if plan.Changed() != tc.wantChange || (!tc.wantChange && plan.Reason != tc.wantReason) {
				t.Fatalf("changed %v (%s), want %v (%s)", plan.Changed(), plan.Reason, tc.wantChange, tc.wantReason)
			}
			got := applyPatch(t, pod, plan, ModeEnforce).Spec.Containers[0].Resources
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, hasReq := got.Requests[r]
				lim, hasLim := got.Limits[r]
				if hasReq && hasLim && req.Cmp(lim) > 0 {
					t.Errorf("%s request %s above limit %s", r, req.String(), lim.String())
				}
				for _, lr := range tc.constr.LimitRanges {
					if max, ok := lr.Spec.Limits[0].MaxLimitRequestRatio[r]; ok && hasLim && lim.AsApproximateFloat64() > max.AsApproximateFloat64()*req.AsApproximateFloat64() {
						t.Errorf("%s limit %s over request %s passes ratio %s", r, lim.String(), req.String(), max.String())
					}
				}
			}
			if lim := got.Limits[corev1.ResourceMemory]; tc.wantMemLimit != "" && lim.String() != tc.wantMemLimit {
				t.Errorf("memory limit %s, want %s", lim.String(), tc.wantMemLimit)
			}
			if tc.claims && (len(got.Claims) != 1 || got.Claims[0].Name != "gpu") {
				t.Errorf("claims %v, want gpu", got.Claims)
			}
			if tc.wantChange && len(tc.constr.Quotas) > 0 {
				after := applyPatch(t, pod, plan, ModeEnforce)
				used := tc.constr.Quotas[0].Status.Used[corev1.ResourceRequestsCPU]
				podCPU := resourcehelper.PodRequests(after, resourcehelper.PodResourcesOptions{})[corev1.ResourceCPU]
				used.Add(podCPU)
				if hard := tc.constr.Quotas[0].Spec.Hard[corev1.ResourceRequestsCPU]; used.Cmp(hard) > 0 {
					t.Errorf("quota counts %s of %s", used.String(), hard.String())
				}
			}
		})
	}
}

// TestEdgesThroughAPIServer creates each pod of TestDecideEdges that a
// real kube-apiserver rejected, or stripped, after the webhook's change:
// a kept limit and a Container maxLimitRequestRatio, a RuntimeClass
// overhead under a quota, a memory limit under a byte, and a DRA claim.
// Every pod is created; the claim is still there. A quota scoped to
// another priority class does not hold back a raise the API server admits.
func TestEdgesThroughAPIServer(t *testing.T) {
	k := testenv.StartKube(t, testenv.KubeOptions{ControllerManager: true})
	ctx := context.Background()
	for _, ns := range []string{"t-ratio", "t-overhead", "t-claims", "t-subunit", "t-scoped", "t-annotations"} {
		createNamespace(t, k, ns, map[string]string{AnnotationMode: ModeEnforce})
	}
	if _, err := k.Clientset.CoreV1().LimitRanges("t-ratio").Create(ctx, limitRange(corev1.LimitTypeContainer, nil, nil, rl("cpu", "2")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Clientset.NodeV1().RuntimeClasses().Create(ctx, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "kata"}, Handler: "kata",
		Overhead: &nodev1.Overhead{PodFixed: rl("cpu", "250m")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Clientset.CoreV1().ResourceQuotas("t-overhead").Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "cpu"},
		Spec: corev1.ResourceQuotaSpec{Hard: rl("requests.cpu", "600m")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitQuotaUsed(t, k, "t-overhead", "cpu")
	if _, err := k.Clientset.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "batch"}, Value: 10}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Clientset.CoreV1().ResourceQuotas("t-scoped").Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "batch"},
		Spec: corev1.ResourceQuotaSpec{Hard: rl("requests.cpu", "150m"), ScopeSelector: &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{{
			ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpIn, Values: []string{"batch"}}}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitQuotaUsed(t, k, "t-scoped", "batch")
	var recs []exporter.WorkloadResult
	for _, ns := range []string{"t-ratio", "t-overhead", "t-claims", "t-subunit", "t-scoped", "t-annotations"} {
		idleDeployment(t, k, ns, "web")
		recs = append(recs, workloadResult(ns, "Deployment", "web", 0.4, 128<<20, 100<<20, 1))
	}
	cert := testenv.NewServingCert(t)
	port := testenv.FreePort(t)
	c := testConfig(port, cert.Dir, recsServer(t, recs...))
	c.LimitPolicy = LimitUnchanged
	_, reg := startWebhook(t, k, c, "upid-system")
	k.RegisterMutatingWebhook(t, testenv.MutatingWebhookSpec{Name: "pods.webhook.upid.io", URL: fmt.Sprintf("https://127.0.0.1:%d%s", port, Path), CAPEM: cert.CAPEM})

	yes, kata, tmpl, batch := true, "kata", "gpu-template", "batch"
	cpuIs := func(want string) func(*corev1.Pod) error {
		return func(p *corev1.Pod) error {
			if req := p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; req.String() != want {
				return fmt.Errorf("cpu request %s, want %s", req.String(), want)
			}
			return nil
		}
	}
	for _, tc := range []struct {
		ns     string
		edit   func(*corev1.Pod)
		reason string // of a pod left alone: the webhook saw it and why it kept it
		check  func(*corev1.Pod) error
	}{
		{ns: "t-ratio", edit: func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "2", "memory", "128Mi"), Limits: rl("cpu", "2")}
		}, check: func(p *corev1.Pod) error {
			// Lowered from 2 towards 400m, as far as the ratio lets it go.
			if req := p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; req.String() != "1" {
				return fmt.Errorf("cpu request %s, want 1 (the kept limit 2 over ratio 2)", req.String())
			}
			return nil
		}},
		{ns: "t-overhead", reason: "resource_quota", edit: func(p *corev1.Pod) {
			p.Spec.RuntimeClassName = &kata
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "128Mi")}
		}},
		{ns: "t-scoped", edit: func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "128Mi")}
		}, check: cpuIs("400m")},
		{ns: "t-scoped", reason: "resource_quota", edit: func(p *corev1.Pod) {
			p.Spec.PriorityClassName = batch
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "128Mi")}
		}, check: cpuIs("100m")},
		// 100 bytes under the API server's 256 KiB of annotations:
		// UPID's own would take the pod past it, and it would be rejected.
		{ns: "t-annotations", reason: "annotations_too_large", edit: func(p *corev1.Pod) {
			p.Annotations = map[string]string{"example.com/config": strings.Repeat("x", 256<<10-len("example.com/config")-100)}
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "1Gi")}
		}, check: cpuIs("100m")},
		{ns: "t-subunit", reason: "below_threshold", edit: func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "400m", "memory", "100m"), Limits: rl("memory", "500m")}
		}},
		{ns: "t-claims", edit: func(p *corev1.Pod) {
			p.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "gpu", ResourceClaimTemplateName: &tmpl}}
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpu"}}}
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Image: "x", Resources: corev1.ResourceRequirements{Requests: rl("cpu", "100m")}})
		}, check: func(p *corev1.Pod) error {
			r := p.Spec.Containers[0].Resources
			if cpu := r.Requests[corev1.ResourceCPU]; len(r.Claims) != 1 || cpu.String() != "400m" {
				return fmt.Errorf("resources %+v, want the claim kept and 400m set", r)
			}
			return nil
		}},
	} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-abc-", Namespace: tc.ns, Labels: map[string]string{"pod-template-hash": "abc"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-abc", UID: "u1", Controller: &yes}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}}}
		tc.edit(p)
		got, err := k.Clientset.CoreV1().Pods(tc.ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Errorf("%s: the API server rejected the pod: %v", tc.ns, err)
			continue
		}
		if tc.reason == "" && got.Annotations[AnnotationMode] != ModeEnforce {
			t.Errorf("%s: the webhook did not change the pod (annotations %v)", tc.ns, got.Annotations)
		}
		if tc.check != nil {
			if err := tc.check(got); err != nil {
				t.Errorf("%s: %v", tc.ns, err)
			}
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, reason := range []string{"resource_quota", "below_threshold", "annotations_too_large"} {
		if n := counterValue(mfs, "upid_webhook_decisions_total", map[string]string{"outcome": OutcomeSkipped, "reason": reason}); n < 1 {
			t.Errorf("no pod skipped for %s: the webhook did not see it", reason)
		}
	}
	if n := counterValue(mfs, "upid_webhook_decisions_total", map[string]string{"outcome": OutcomeFailedOpen}); n != 0 {
		t.Errorf("%v admissions failed open", n)
	}
}

// TestAnnotationsTooLarge: UPID's annotations are not added, in either
// mode, when they would take a pod's past the API server's limit, and are
// when they fit.
func TestAnnotationsTooLarge(t *testing.T) {
	const key = "example.com/config"
	plan := Decide(webPod(nil), &WorkloadRecs{Containers: map[string]Target{"app": {CPURequest: f(0.4)}}}, Constraints{}, defaultPolicy)
	if !plan.Changed() {
		t.Fatalf("no plan: %s", plan.Reason)
	}
	for _, tc := range []struct {
		room    int
		wantErr bool
	}{{100, true}, {2000, false}} {
		for _, mode := range []string{ModeEnforce, ModeRecommend} {
			pod := webPod(nil)
			pod.Annotations = map[string]string{key: strings.Repeat("x", 256<<10-len(key)-tc.room)}
			_, err := plan.Patch(pod, mode)
			if got := errors.Is(err, errAnnotationsTooLarge); got != tc.wantErr {
				t.Errorf("%s with %d bytes of room: %v, want too large %v", mode, tc.room, err, tc.wantErr)
			}
		}
	}
}
