package webhook

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/upid-dev/upid/internal/argorollouts"
)

// podFields are the only parts of a pod the webhook reads. Decoding just
// them skips building the rest of a Pod (env, volumes, probes, ...), and a
// decision on them copies a few small structs where a corev1.Container is
// over 1 KB.
type podFields struct {
	Metadata struct {
		Labels struct {
			PodTemplateHash string `json:"pod-template-hash"`
			// argorollouts.HashLabel.
			RolloutsPodTemplateHash string `json:"rollouts-pod-template-hash"`
		} `json:"labels"`
		Annotations     *podAnnotations `json:"annotations"`
		OwnerReferences []ownerFields   `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		InitContainers []containerFields `json:"initContainers"`
		Containers     []containerFields `json:"containers"`
		// Resources are the pod-level requests and limits (KEP-2837, on
		// by default since Kubernetes 1.34).
		Resources *corev1.ResourceRequirements `json:"resources"`
		// Overhead is the RuntimeClass's, set by its admission plugin
		// before the webhooks run; the quota counts it.
		Overhead corev1.ResourceList `json:"overhead"`
		// The fields a ResourceQuota's scopes select pods by.
		ActiveDeadlineSeconds *int64           `json:"activeDeadlineSeconds"`
		PriorityClassName     string           `json:"priorityClassName"`
		Affinity              *corev1.Affinity `json:"affinity"`
	} `json:"spec"`
}

// podLevel tells which of CPU and memory the pod sets in spec.resources.
// For those the scheduler reserves the pod's request, not the sum of its
// containers', so a container's new request saves nothing; and the API
// server rejects a pod whose containers request more than the pod, or
// whose container limit exceeds the pod's (validatePodResourceConsistency).
// The webhook leaves such a resource alone: admitted pods must stay valid.
func (p *podFields) podLevel(r corev1.ResourceName) bool {
	pr := p.Spec.Resources
	if pr == nil {
		return false
	}
	_, req := pr.Requests[r]
	_, lim := pr.Limits[r]
	return req || lim
}

// podAnnotations are the annotations the webhook reads or writes; decoding
// them into a struct skips the others without building a map. Nil means
// the pod has no annotations at all.
type podAnnotations struct {
	OptOut      string  `json:"upid.io/webhook"`
	Mode        string  `json:"upid.io/webhook-mode"`
	Original    *string `json:"upid.io/original-resources"`
	Recommended *string `json:"upid.io/recommended-resources"`
	// The pod-level ones.
	OriginalPod    *string `json:"upid.io/original-pod-resources"`
	RecommendedPod *string `json:"upid.io/recommended-pod-resources"`
	// size bounds what the API server counts of all the pod's
	// annotations, keys and values (ValidateAnnotationsSize): the length
	// of the object as sent, quotes and escapes included.
	size int
}

// UnmarshalJSON decodes UPID's annotations and keeps the size of all.
// Annotation keys are case-sensitive: upid.io/Webhook is not the opt-out.
func (a *podAnnotations) UnmarshalJSON(b []byte) error {
	type fields podAnnotations
	if err := reviewJSON.Unmarshal(b, (*fields)(a)); err != nil {
		return err
	}
	a.size = len(b)
	return nil
}

// get reads one of the annotations as a map would.
func (a *podAnnotations) get(key string) (string, bool) {
	if a == nil {
		return "", false
	}
	switch key {
	case AnnotationOptOut:
		return a.OptOut, a.OptOut != ""
	case AnnotationMode:
		return a.Mode, a.Mode != ""
	case AnnotationOriginal:
		return deref(a.Original)
	case AnnotationRecommended:
		return deref(a.Recommended)
	case AnnotationOriginalPod:
		return deref(a.OriginalPod)
	case AnnotationRecommendedPod:
		return deref(a.RecommendedPod)
	}
	return "", false
}

func deref(s *string) (string, bool) {
	if s == nil {
		return "", false
	}
	return *s, true
}

func annotationsOf(m map[string]string) *podAnnotations {
	if m == nil {
		return nil
	}
	a := &podAnnotations{OptOut: m[AnnotationOptOut], Mode: m[AnnotationMode]}
	for k, v := range m {
		a.size += len(k) + len(v)
	}
	if v, ok := m[AnnotationOriginal]; ok {
		a.Original = &v
	}
	if v, ok := m[AnnotationRecommended]; ok {
		a.Recommended = &v
	}
	if v, ok := m[AnnotationOriginalPod]; ok {
		a.OriginalPod = &v
	}
	if v, ok := m[AnnotationRecommendedPod]; ok {
		a.RecommendedPod = &v
	}
	return a
}

type ownerFields struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Name       string    `json:"name"`
	UID        types.UID `json:"uid"`
	Controller *bool     `json:"controller"`
}

type containerFields struct {
	Name          string                         `json:"name"`
	Resources     corev1.ResourceRequirements    `json:"resources"`
	RestartPolicy *corev1.ContainerRestartPolicy `json:"restartPolicy"`
}

// controller is the first owner reference marked as the controller, the
// rule of metav1.GetControllerOf.
func (p *podFields) controller() *ownerFields {
	for i := range p.Metadata.OwnerReferences {
		if r := &p.Metadata.OwnerReferences[i]; r.Controller != nil && *r.Controller {
			return r
		}
	}
	return nil
}

func (p *podFields) list(name string) []containerFields {
	if name == "initContainers" {
		return p.Spec.InitContainers
	}
	return p.Spec.Containers
}

// fieldsOf takes what the webhook reads from a full Pod.
func fieldsOf(pod *corev1.Pod) *podFields {
	f := &podFields{}
	f.Metadata.Labels.PodTemplateHash = pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	f.Metadata.Labels.RolloutsPodTemplateHash = pod.Labels[argorollouts.HashLabel]
	f.Metadata.Annotations = annotationsOf(pod.Annotations)
	for _, r := range pod.OwnerReferences {
		f.Metadata.OwnerReferences = append(f.Metadata.OwnerReferences, ownerFields{APIVersion: r.APIVersion, Kind: r.Kind, Name: r.Name, UID: r.UID, Controller: r.Controller})
	}
	conv := func(cs []corev1.Container) []containerFields {
		if cs == nil {
			return nil
		}
		out := make([]containerFields, len(cs))
		for i, c := range cs {
			out[i] = containerFields{Name: c.Name, Resources: c.Resources, RestartPolicy: c.RestartPolicy}
		}
		return out
	}
	f.Spec.InitContainers, f.Spec.Containers = conv(pod.Spec.InitContainers), conv(pod.Spec.Containers)
	f.Spec.Resources, f.Spec.Overhead = pod.Spec.Resources, pod.Spec.Overhead
	f.Spec.ActiveDeadlineSeconds, f.Spec.PriorityClassName, f.Spec.Affinity = pod.Spec.ActiveDeadlineSeconds, pod.Spec.PriorityClassName, pod.Spec.Affinity
	return f
}
