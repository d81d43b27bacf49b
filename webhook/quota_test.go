package webhook

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestQuotaScopes holds the webhook's reading of a quota's scopes to the
// API server's (pkg/quota/v1/evaluator/core/pods.go): a full quota holds
// back a raise exactly when its scopes select the pod.
func TestQuotaScopes(t *testing.T) {
	deadline, negative := int64(600), int64(-1)
	sel := func(scope corev1.ResourceQuotaScope, op corev1.ScopeSelectorOperator, values ...string) *corev1.ScopeSelector {
		return &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{{ScopeName: scope, Operator: op, Values: values}}}
	}
	crossNS := &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
		Weight: 1, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname", NamespaceSelector: &metav1.LabelSelector{}}}}}}
	sameNS := &corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: "kubernetes.io/hostname"}}}}
	for _, tc := range []struct {
		name      string
		scopes    []corev1.ResourceQuotaScope
		selector  *corev1.ScopeSelector
		pod       func(*corev1.Pod)
		podLevel  bool // the pod sets its CPU at pod level
		wantCount bool
	}{
		{name: "no scope counts every pod", wantCount: true},
		{name: "Terminating: no deadline", scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeTerminating}},
		{name: "Terminating: a deadline", scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeTerminating},
			pod: func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = &deadline }, wantCount: true},
		{name: "Terminating: a negative deadline is none", scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeTerminating},
			pod: func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = &negative }},
		{name: "NotTerminating: no deadline", scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotTerminating}, wantCount: true},
		{name: "BestEffort: a Burstable pod", scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}},
		{name: "NotBestEffort: a Burstable pod", scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotBestEffort}, wantCount: true},
		{name: "NotBestEffort: pod-level requests", scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotBestEffort}, podLevel: true, wantCount: true},
		{name: "two scopes must both match", scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotBestEffort, corev1.ResourceQuotaScopeTerminating}},
		{name: "scopes and selector must both match", scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotTerminating},
			selector: sel(corev1.ResourceQuotaScopePriorityClass, corev1.ScopeSelectorOpIn, "batch")},
		{name: "PriorityClass In: another class", selector: sel(corev1.ResourceQuotaScopePriorityClass, corev1.ScopeSelectorOpIn, "batch"),
			pod: func(p *corev1.Pod) { p.Spec.PriorityClassName = "high" }},
		{name: "PriorityClass In: its class", selector: sel(corev1.ResourceQuotaScopePriorityClass, corev1.ScopeSelectorOpIn, "batch", "high"),
			pod: func(p *corev1.Pod) { p.Spec.PriorityClassName = "high" }, wantCount: true},
		{name: "PriorityClass NotIn: no class", selector: sel(corev1.ResourceQuotaScopePriorityClass, corev1.ScopeSelectorOpNotIn, "batch"), wantCount: true},
		{name: "PriorityClass NotIn: that class", selector: sel(corev1.ResourceQuotaScopePriorityClass, corev1.ScopeSelectorOpNotIn, "batch"),
			pod: func(p *corev1.Pod) { p.Spec.PriorityClassName = "batch" }},
		{name: "PriorityClass Exists: no class", selector: sel(corev1.ResourceQuotaScopePriorityClass, corev1.ScopeSelectorOpExists)},
		{name: "PriorityClass Exists: a class", selector: sel(corev1.ResourceQuotaScopePriorityClass, corev1.ScopeSelectorOpExists),
			pod: func(p *corev1.Pod) { p.Spec.PriorityClassName = "batch" }, wantCount: true},
		{name: "PriorityClass DoesNotExist: no class", selector: sel(corev1.ResourceQuotaScopePriorityClass, corev1.ScopeSelectorOpDoesNotExist), wantCount: true},
		{name: "PriorityClass DoesNotExist: a class", selector: sel(corev1.ResourceQuotaScopePriorityClass, corev1.ScopeSelectorOpDoesNotExist),
			pod: func(p *corev1.Pod) { p.Spec.PriorityClassName = "batch" }},
		{name: "CrossNamespacePodAffinity: same namespace only", scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeCrossNamespacePodAffinity},
			pod: func(p *corev1.Pod) { p.Spec.Affinity = sameNS }},
		{name: "CrossNamespacePodAffinity: a namespace selector", scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeCrossNamespacePodAffinity},
			pod: func(p *corev1.Pod) { p.Spec.Affinity = crossNS }, wantCount: true},
		{name: "a scope UPID does not know counts the pod", scopes: []corev1.ResourceQuotaScope{"FutureScope"}, wantCount: true},
		{name: "an operator UPID does not know counts the pod", selector: sel(corev1.ResourceQuotaScopePriorityClass, "Matches", "b.*"),
			pod: func(p *corev1.Pod) { p.Spec.PriorityClassName = "high" }, wantCount: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := webPod(nil)
			pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "128Mi")}
			recs := &WorkloadRecs{Containers: map[string]Target{"app": {CPURequest: f(0.4)}}}
			if tc.podLevel {
				pod.Spec.Resources = &corev1.ResourceRequirements{Requests: rl("cpu", "200m")}
				recs = &WorkloadRecs{Pod: map[corev1.ResourceName]float64{corev1.ResourceCPU: 0.4}}
			}
			if tc.pod != nil {
				tc.pod(pod)
			}
			// Room for 50m more: the raise to 400m does not fit.
			q := quota(rl("requests.cpu", "1"), rl("requests.cpu", "850m"))
			q.Spec.Scopes, q.Spec.ScopeSelector = tc.scopes, tc.selector
			plan := Decide(pod, recs, Constraints{Quotas: []*corev1.ResourceQuota{q}}, defaultPolicy)
			if held := plan.Reason == "resource_quota"; held != tc.wantCount || plan.Changed() == tc.wantCount {
				t.Errorf("changed %v (reason %q); want the quota to count the pod: %v", plan.Changed(), plan.Reason, tc.wantCount)
			}
		})
	}
}

// TestQuotaHardNotSynced holds a raise back while the quota controller has
// not yet copied a changed spec.hard to status.hard, which the API server
// checks: the smaller counts, and a hard with no status fits no raise.
func TestQuotaHardNotSynced(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		specHard, statusHard corev1.ResourceList
		wantChange           bool
	}{
		{"synced, room", rl("requests.cpu", "2"), rl("requests.cpu", "2"), true},
		{"spec raised, status not yet", rl("requests.cpu", "10"), rl("requests.cpu", "1"), false},
		{"spec lowered, status not yet", rl("requests.cpu", "1"), rl("requests.cpu", "10"), false},
		{"new key, no status yet", rl("requests.cpu", "10"), nil, false},
		{"removed from spec, still in status", nil, rl("requests.cpu", "1"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := webPod(nil)
			pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "128Mi")}
			q := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Hard: tc.specHard},
				Status: corev1.ResourceQuotaStatus{Hard: tc.statusHard, Used: rl("requests.cpu", "850m")}}
			plan := Decide(pod, &WorkloadRecs{Containers: map[string]Target{"app": {CPURequest: f(0.4)}}}, Constraints{Quotas: []*corev1.ResourceQuota{q}}, defaultPolicy)
			if plan.Changed() != tc.wantChange {
				t.Errorf("changed %v (reason %q), want %v", plan.Changed(), plan.Reason, tc.wantChange)
			}
		})
	}
}
