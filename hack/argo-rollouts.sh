#!/usr/bin/env bash
# Builds Argo Rollouts' controller from its Go module and caches it, with the module's CRDs,
# outside the repo, for the tests that run UPID's Rollout support against the real controller.
# Its go.mod replaces the k8s.io/* modules with published releases, which `go install` refuses,
# so a wrapper module carries the same replaces.
#
# Prints the directory holding bin/rollouts-controller and crds/ on stdout; the rest goes to
# stderr.
set -euo pipefail

ARGO_VERSION="${ARGO_ROLLOUTS_VERSION:-v1.10.1}"
CACHE_ROOT="${UPID_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upid}"
OUT="$CACHE_ROOT/argo-rollouts-$ARGO_VERSION"
BIN="$OUT/bin/rollouts-controller"

have_all() { [ -x "$BIN" ] && [ -f "$OUT/crds/rollout-crd.yaml" ]; }

if have_all; then
  echo "argo-rollouts: cached $ARGO_VERSION in $OUT" >&2
  echo "$OUT"
  exit 0
fi

mkdir -p "$OUT/bin" "$OUT/crds"
exec 9>"$OUT/.lock"
flock 9
if have_all; then
  echo "argo-rollouts: cached $ARGO_VERSION in $OUT (built by a concurrent run)" >&2
  echo "$OUT"
  exit 0
fi

work="$OUT/src"
mkdir -p "$work"
cd "$work"
echo "argo-rollouts: building rollouts-controller $ARGO_VERSION (a few minutes the first time)" >&2
start=$(date +%s)

export GOFLAGS=-mod=mod
dir=$(go mod download -json "github.com/argoproj/argo-rollouts@$ARGO_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
amod="$(go env GOMODCACHE)/cache/download/github.com/argoproj/argo-rollouts/@v/$ARGO_VERSION.mod"

{
  echo "module upid.local/argobuild"
  echo
  grep -m1 '^go ' "$amod"
  echo
  echo "require github.com/argoproj/argo-rollouts $ARGO_VERSION"
  echo
  sed -n '/^replace (/,/^)/p' "$amod"
} >go.mod

cat >tools.go <<'GO'
//go:build tools

package argobuild

import _ "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"
GO

# Only the controller's own dependencies: `go mod tidy` would fetch every test dependency
# of the whole graph as well.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" github.com/argoproj/argo-rollouts/cmd/rollouts-controller >&2
install -m 0644 "$dir"/manifests/crds/*-crd.yaml "$OUT/crds/"
mv "$BIN.tmp" "$BIN"

echo "argo-rollouts: built in $(( $(date +%s) - start ))s into $OUT" >&2
echo "$OUT"
