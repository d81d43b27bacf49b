#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager from the Go module k8s.io/kubernetes and
# caches them outside the repo. Kubernetes does not publish these as Go-installable modules:
# its go.mod replaces the k8s.io/* staging modules with local paths, so a wrapper module pins
# each of them to the published v0.<minor>.<patch> release instead.
#
# Prints the directory holding the binaries on stdout; everything else goes to stderr.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
CACHE_ROOT="${UPID_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upid}"
OUT="$CACHE_ROOT/kube-$KUBE_VERSION"
BIN="$OUT/bin"
BINARIES=(kube-apiserver kube-controller-manager)

have_all() {
  local b
  for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || return 1; done
}

if have_all; then
  echo "kube-binaries: cached $KUBE_VERSION in $BIN" >&2
  echo "$BIN"
  exit 0
fi

mkdir -p "$BIN"
# Two test runs starting at once must not build twice into the same place.
exec 9>"$OUT/.lock"
flock 9
if have_all; then
  echo "kube-binaries: cached $KUBE_VERSION in $BIN (built by a concurrent run)" >&2
  echo "$BIN"
  exit 0
fi

staging_version="v0.${KUBE_VERSION#v1.}"
work="$OUT/src"
mkdir -p "$work"
cd "$work"
echo "kube-binaries: building ${BINARIES[*]} $KUBE_VERSION (staging modules at $staging_version); the first build takes about 12 minutes" >&2
start=$(date +%s)

export GOFLAGS=-mod=mod
go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >/dev/null
kmod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBE_VERSION.mod"
go_line=$(grep -m1 '^go ' "$kmod")
godebug_line=$(grep -m1 '^godebug ' "$kmod" || true)

{
  echo "module upid.local/kubebuild"
  echo
  echo "$go_line"
  [ -n "$godebug_line" ] && echo "$godebug_line"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  # Every staging module that k8s.io/kubernetes replaces with a local path, pinned to the release.
  sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$kmod" |
    while read -r m; do echo "	$m => $m $staging_version"; done
  echo ")"
} >go.mod

cat >tools.go <<GO
//go:build tools

package kubebuild

import (
$(for b in "${BINARIES[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$b\""; done)
)
GO

go mod tidy >&2

ldflags="-s -w"
ldflags+=" -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
for b in "${BINARIES[@]}"; do
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$BIN/$b.tmp" "k8s.io/kubernetes/cmd/$b" >&2
  mv "$BIN/$b.tmp" "$BIN/$b"
done

echo "kube-binaries: built in $(( $(date +%s) - start ))s into $BIN" >&2
echo "$BIN"
