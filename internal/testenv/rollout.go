package testenv

import (
	"context"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/upid-dev/upid/internal/argorollouts"
)

// CreateRollout installs a stand-in for Argo Rollouts' CRD (its group,
// version and kind, its status and scale subresources as Argo's CRD has
// them, any spec) and creates a Rollout with spec (none when nil), so that
// ReplicaSets can name it as their controller, as Argo's own controller
// makes them, and the garbage collector keeps them. Argo Rollouts itself
// is not needed: UPID reads only the ReplicaSets and pods it makes, and
// scales the Rollout through its scale subresource.
func (k *Kube) CreateRollout(ctx context.Context, t testing.TB, namespace, name string, spec map[string]any) *unstructured.Unstructured {
	t.Helper()
	preserve := true
	selector := ".status.selector"
	if _, err := envtest.InstallCRDs(k.Config, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{{
		ObjectMeta: metav1.ObjectMeta{Name: argorollouts.Resource.GroupResource().String()},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: argorollouts.Resource.Group, Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: argorollouts.Resource.Resource, Singular: "rollout", Kind: argorollouts.Kind, ListKind: argorollouts.Kind + "List"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: argorollouts.Resource.Version, Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: &preserve}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{
					Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
					Scale:  &apiextensionsv1.CustomResourceSubresourceScale{SpecReplicasPath: ".spec.replicas", StatusReplicasPath: ".status.HPAReplicas", LabelSelectorPath: &selector},
				}}},
		},
	}}}); err != nil {
		t.Fatal(err)
	}
	r := &unstructured.Unstructured{}
	r.SetAPIVersion(argorollouts.APIVersion)
	r.SetKind(argorollouts.Kind)
	r.SetNamespace(namespace)
	r.SetName(name)
	if spec != nil {
		r.Object["spec"] = spec
	}
	if err := k.Client.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	return r
}

// RolloutOwner is the controller reference Argo Rollouts puts on the
// ReplicaSets of Rollout r.
func RolloutOwner(r *unstructured.Unstructured) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: r.GetAPIVersion(), Kind: r.GetKind(), Name: r.GetName(), UID: r.GetUID(), Controller: &yes}
}
