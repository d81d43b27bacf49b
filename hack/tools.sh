#!/usr/bin/env bash
# Installs the deploy tests' tool binaries, helm and kustomize, with `go install` from the Go
# module proxy into a cache outside the repo, once per version. Idempotent: a second run only
# checks. The first build of helm takes a few minutes.
#
# Prints `export UPID_TOOLS_BIN=...` on stdout for the Makefile; the rest goes to stderr.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# v5.8.3 needs Go 1.27; the module pins Go 1.26.
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
CACHE_ROOT="${UPID_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upid}"
BIN="$CACHE_ROOT/tools/bin"

say() { echo "tools: $*" >&2; }

mkdir -p "$BIN"
# Two test runs starting at once must not build twice into the same place.
exec 9>"$BIN/.lock"
flock 9

# install NAME VERSION PACKAGE [LDFLAGS]: one binary per version, named NAME-VERSION, and a NAME
# symlink to the pinned one, so that bumping a version never reuses a stale build.
install() {
  local name=$1 version=$2 pkg=$3 ldflags="-s -w ${4:-}"
  local target="$BIN/$name-$version"
  if [ ! -x "$target" ]; then
    say "building $name $version from $pkg (cached in $BIN)"
    local start tmp
    start=$(date +%s)
    tmp=$(mktemp -d)
    # GOFLAGS from the environment (e.g. -mod=vendor) must not leak into a tool build.
    GOFLAGS= CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" "$pkg@$version" >&2
    mv "$tmp/$name" "$target"
    rm -rf "$tmp"
    say "built $name $version in $(( $(date +%s) - start ))s"
  fi
  ln -sfn "$name-$version" "$BIN/$name"
}

# helm's Makefile stamps its version and the Kubernetes version it assumes without a cluster
# (`helm template`, `helm lint`: 1.20 otherwise) from its client-go; do the same.
helm_ldflags() {
  local mod minor
  mod=$(GOFLAGS= go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  minor=$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$mod")
  [ -n "$minor" ] || { say "cannot find helm's client-go version in $mod"; exit 1; }
  local v
  echo "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for v in pkg/lint/rules pkg/chartutil; do
    echo "-X helm.sh/helm/v3/$v.k8sVersionMajor=1 -X helm.sh/helm/v3/$v.k8sVersionMinor=$minor"
  done
}

[ -x "$BIN/helm-$HELM_VERSION" ] || install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "$(helm_ldflags | tr '\n' ' ')"
ln -sfn "helm-$HELM_VERSION" "$BIN/helm"
install kustomize "$KUSTOMIZE_VERSION" sigs.k8s.io/kustomize/kustomize/v5
say "helm $HELM_VERSION and kustomize $KUSTOMIZE_VERSION in $BIN"
echo "export UPID_TOOLS_BIN=$BIN"
