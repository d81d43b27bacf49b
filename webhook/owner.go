package webhook

import (
	"strings"

	"github.com/upid-dev/upid/internal/argorollouts"
)

// Workload names the object whose recommendations apply to a pod, in the
// exporter's terms (kind Deployment, StatefulSet, DaemonSet, Job, CronJob,
// Rollout).
type Workload struct {
	Kind, Name string
}

// workloadCandidates derives the owning workload from the pod's controller
// reference and the naming conventions of the built-in controllers, without
// asking the API server: a ReplicaSet "web-7d9f8" with pod-template-hash
// "7d9f8" belongs to Deployment "web" (with rollouts-pod-template-hash, to
// Argo Rollout "web"), a Job "backup-29123456" may belong to CronJob
// "backup". The most specific candidate comes first. The pods of any other
// controller (an operator's) get none: an operator may compare its pods
// with its own spec and replace a changed one, again and again.
func workloadCandidates(pod *podFields) []Workload {
	ref := pod.controller()
	if ref == nil {
		return nil
	}
	switch ref.Kind {
	case "ReplicaSet":
		l := pod.Metadata.Labels
		if h := l.PodTemplateHash; h != "" && strings.HasSuffix(ref.Name, "-"+h) {
			return []Workload{{"Deployment", strings.TrimSuffix(ref.Name, "-"+h)}, {"ReplicaSet", ref.Name}}
		}
		if h := l.RolloutsPodTemplateHash; h != "" && strings.HasSuffix(ref.Name, "-"+h) {
			return []Workload{{argorollouts.Kind, strings.TrimSuffix(ref.Name, "-"+h)}, {"ReplicaSet", ref.Name}}
		}
		return []Workload{{"ReplicaSet", ref.Name}}
	case "Job":
		// The CronJob controller names Jobs <cronjob>-<scheduled time in minutes>.
		if i := strings.LastIndexByte(ref.Name, '-'); i > 0 && i < len(ref.Name)-1 && allDigits(ref.Name[i+1:]) {
			return []Workload{{"CronJob", ref.Name[:i]}, {"Job", ref.Name}}
		}
		return []Workload{{"Job", ref.Name}}
	case "StatefulSet", "DaemonSet":
		return []Workload{{ref.Kind, ref.Name}}
	}
	// A static pod's mirror (its Node is the controller) is not the pod
	// the kubelet runs, and an operator's pod is the operator's.
	return nil
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
