// Package deploy holds UPID's installation: the Helm chart in helm/upid, the kustomize bases and
// overlays rendered from it in kustomize/, and the checks every rendering must pass (Policy).
// Its tests render the chart with the real helm and kustomize binaries (hack/tools.sh) and apply
// the result to a real kube-apiserver.
package deploy
