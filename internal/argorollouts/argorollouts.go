// Package argorollouts is what UPID knows of Argo Rollouts' API: its
// resource, and the label and annotation its controller puts on the
// ReplicaSets it makes. The exporter, the webhook, the scaler and the CLI
// name them through it, one way.
package argorollouts

import (
	"strconv"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

const (
	// Kind is a Rollout's kind, as its ReplicaSets' controller references
	// and kube-state-metrics' kube_replicaset_owner name it.
	Kind = "Rollout"
	// APIVersion is the group and version Rollouts are served in.
	APIVersion = "argoproj.io/v1alpha1"
	// HashLabel is Argo's pod-template-hash: on each revision's
	// ReplicaSet (named <rollout>-<hash>), its pods, and the Services Argo
	// manages.
	HashLabel = "rollouts-pod-template-hash"
	// RevisionAnnotation numbers a Rollout's ReplicaSets, as
	// deployment.kubernetes.io/revision does a Deployment's: the highest is
	// the latest, a rollback's included, and the one Argo copies the
	// Rollout's annotations to.
	RevisionAnnotation = "rollout.argoproj.io/revision"
)

// Resource is the Rollouts' resource, for the dynamic client.
var Resource = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// Later says whether ReplicaSet a is a later revision of its Rollout than
// b, by their Revision and then, for equal ones (none recorded), by their
// creation times in Unix seconds.
func Later(aRevision, aCreated, bRevision, bCreated int64) bool {
	if aRevision != bRevision {
		return aRevision > bRevision
	}
	return aCreated > bCreated
}

// Revision is a ReplicaSet's RevisionAnnotation; 0 when it has none, or
// none that reads as a number.
func Revision(annotations map[string]string) int64 {
	r, err := strconv.ParseInt(annotations[RevisionAnnotation], 10, 64)
	if err != nil || r < 0 {
		return 0
	}
	return r
}
