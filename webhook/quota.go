package webhook

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// quotaKeys are the quota keys a pod's CPU and memory count towards: the
// resource, and whether its limits (not its requests) count.
var quotaKeys = map[corev1.ResourceName]struct {
	r     corev1.ResourceName
	limit bool
}{
	corev1.ResourceCPU:            {corev1.ResourceCPU, false},
	corev1.ResourceRequestsCPU:    {corev1.ResourceCPU, false},
	corev1.ResourceLimitsCPU:      {corev1.ResourceCPU, true},
	corev1.ResourceMemory:         {corev1.ResourceMemory, false},
	corev1.ResourceRequestsMemory: {corev1.ResourceMemory, false},
	corev1.ResourceLimitsMemory:   {corev1.ResourceMemory, true},
}

// quotaAdmits tells whether a change from before to after keeps the pod
// within the ResourceQuotas that count it, as far as the change is
// concerned: a pod total it does not raise cannot be what the quota
// rejects. A raised total must fit in hard − used. The API server checks
// status.hard, which the quota controller copies from spec.hard on its
// next sync: the smaller of the two counts, and a quota whose hard or
// usage is not counted yet fits no raise.
func quotaAdmits(before, after podSums, quotas []*corev1.ResourceQuota) bool {
	for _, q := range quotas {
		for name := range quotaKeys {
			specHard, inSpec := q.Spec.Hard[name]
			statusHard, inStatus := q.Status.Hard[name]
			if !inSpec && !inStatus {
				continue
			}
			c := quotaKeys[name]
			o, n := before.requests[c.r], after.requests[c.r]
			if c.limit {
				o, n = before.limits[c.r], after.limits[c.r]
			}
			if n.Cmp(o) <= 0 {
				continue
			}
			used, known := q.Status.Used[name]
			if !known || !inStatus {
				return false
			}
			hard := statusHard
			if inSpec && specHard.Cmp(hard) < 0 {
				hard = specHard
			}
			used.Add(n)
			if used.Cmp(hard) > 0 {
				return false
			}
		}
	}
	return true
}

// quotasCounting returns the quotas whose scopes select the pod. A quota
// scoped to other pods (a BestEffort quota, one for another priority
// class or for Jobs with a deadline) cannot reject this pod, so it must not
// hold back its change either. created is the pod as created, whose QoS
// class the webhook does not change.
func (p *podFields) quotasCounting(quotas []*corev1.ResourceQuota, created *corev1.Pod) []*corev1.ResourceQuota {
	var out []*corev1.ResourceQuota
	for _, q := range quotas {
		if p.inScopes(q, created) {
			out = append(out, q)
		}
	}
	return out
}

// inScopes follows the ResourceQuota admission plugin: a quota counts a
// pod when every one of its scopes and scope selector's requirements
// matches it (generic.Matches in k8s.io/apiserver, podMatchesScopeFunc in
// pkg/quota/v1/evaluator/core). Where the API server would not match a
// scope UPID does not know, UPID takes it as matching: that can only hold
// back a change, never get a pod rejected.
func (p *podFields) inScopes(q *corev1.ResourceQuota, created *corev1.Pod) bool {
	reqs := make([]corev1.ScopedResourceSelectorRequirement, 0, len(q.Spec.Scopes))
	for _, s := range q.Spec.Scopes {
		reqs = append(reqs, corev1.ScopedResourceSelectorRequirement{ScopeName: s, Operator: corev1.ScopeSelectorOpExists})
	}
	if q.Spec.ScopeSelector != nil {
		reqs = append(reqs, q.Spec.ScopeSelector.MatchExpressions...)
	}
	for _, r := range reqs {
		if !p.matchesScope(r, created) {
			return false
		}
	}
	return true
}

func (p *podFields) matchesScope(r corev1.ScopedResourceSelectorRequirement, created *corev1.Pod) bool {
	switch r.ScopeName {
	case corev1.ResourceQuotaScopeTerminating:
		return p.terminating()
	case corev1.ResourceQuotaScopeNotTerminating:
		return !p.terminating()
	case corev1.ResourceQuotaScopeBestEffort:
		return p.bestEffort(created)
	case corev1.ResourceQuotaScopeNotBestEffort:
		return !p.bestEffort(created)
	case corev1.ResourceQuotaScopePriorityClass:
		if r.Operator == corev1.ScopeSelectorOpExists {
			return p.Spec.PriorityClassName != ""
		}
		return p.priorityClassMatches(r)
	case corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
		return p.crossNamespaceAffinity()
	}
	return true
}

func (p *podFields) terminating() bool {
	return p.Spec.ActiveDeadlineSeconds != nil && *p.Spec.ActiveDeadlineSeconds >= 0
}

// bestEffort is the pod's QoS class as ComputePodQOS has it: the pod-level
// resources' when it sets CPU or memory there, the containers' otherwise.
func (p *podFields) bestEffort(created *corev1.Pod) bool {
	if p.podLevel(corev1.ResourceCPU) || p.podLevel(corev1.ResourceMemory) {
		return podLevelQOS(created.Spec.Resources) == corev1.PodQOSBestEffort
	}
	return qosOf(p.Spec.InitContainers, p.Spec.Containers) == corev1.PodQOSBestEffort
}

var scopeOperators = map[corev1.ScopeSelectorOperator]selection.Operator{
	corev1.ScopeSelectorOpIn: selection.In, corev1.ScopeSelectorOpNotIn: selection.NotIn,
	corev1.ScopeSelectorOpExists: selection.Exists, corev1.ScopeSelectorOpDoesNotExist: selection.DoesNotExist,
}

// priorityClassMatches reads the requirement as a label selector on a set
// that holds the pod's priority class under the scope's name, and nothing
// when it has none (ScopedResourceSelectorRequirementsAsSelector and
// podMatchesSelector).
func (p *podFields) priorityClassMatches(r corev1.ScopedResourceSelectorRequirement) bool {
	op, ok := scopeOperators[r.Operator]
	if !ok {
		return true
	}
	req, err := labels.NewRequirement(string(r.ScopeName), op, r.Values)
	if err != nil {
		return true
	}
	var set labels.Set
	if p.Spec.PriorityClassName != "" {
		set = labels.Set{string(r.ScopeName): p.Spec.PriorityClassName}
	}
	return labels.NewSelector().Add(*req).Matches(set)
}

// crossNamespaceAffinity tells whether a pod (anti-)affinity term reaches
// other namespaces, by names or by a selector.
func (p *podFields) crossNamespaceAffinity() bool {
	a := p.Spec.Affinity
	if a == nil {
		return false
	}
	var terms []corev1.PodAffinityTerm
	var weighted []corev1.WeightedPodAffinityTerm
	if a.PodAffinity != nil {
		terms = append(terms, a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
		weighted = append(weighted, a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution...)
	}
	if a.PodAntiAffinity != nil {
		terms = append(terms, a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
		weighted = append(weighted, a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution...)
	}
	for _, w := range weighted {
		terms = append(terms, w.PodAffinityTerm)
	}
	for _, t := range terms {
		if len(t.Namespaces) > 0 || t.NamespaceSelector != nil {
			return true
		}
	}
	return false
}
