#!/usr/bin/env bash
# Installs what the tests need and says what it did. Idempotent: a second run
# on the same machine only checks. Nothing is downloaded from anywhere but
# Debian's archive and the Go module proxy.
#
#   etcd, prometheus, promtool, alertmanager  Debian packages
#   gcc, libc6-dev                            Debian packages, when there is no gcc: the
#                                             race detector of `make test` needs cgo
#   kube-apiserver, kube-controller-manager   built from k8s.io/kubernetes, cached
#                                             outside the repo (hack/kube-binaries.sh)
#   rollouts-controller and its CRDs          built from Argo Rollouts' Go module, cached
#                                             outside the repo (hack/argo-rollouts.sh)
#   helm, kustomize                           go install from the module proxy, cached
#                                             outside the repo (hack/tools.sh)
#
# Prints `export UPID_KUBE_BIN=...`, `export UPID_ARGO_ROLLOUTS=...` and
# `export UPID_TOOLS_BIN=...` on stdout for the Makefile; the rest goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }

# binary:package pairs.
needed=(etcd:etcd-server prometheus:prometheus promtool:prometheus prometheus-alertmanager:prometheus-alertmanager)
missing=()
for pair in "${needed[@]}"; do
  bin=${pair%%:*} pkg=${pair##*:}
  if command -v "$bin" >/dev/null 2>&1; then
    continue
  fi
  case " ${missing[*]-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
done
# make test runs go test -race, and the race detector needs cgo: a C compiler
# and libc's development files to link against.
if ! command -v gcc >/dev/null 2>&1; then
  missing+=(gcc libc6-dev)
fi

if [ ${#missing[@]} -gt 0 ]; then
  cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages: ${missing[*]}; run as root:"
    echo "  $cmd" >&2
    exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  start=$(date +%s)
  apt-get update -qq >&2
  # The packages' postinst scripts try to start system services; on machines
  # without an init system they cannot, which is fine: tests start their own.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  say "installed ${missing[*]} in $(( $(date +%s) - start ))s"
else
  say "Debian packages present: etcd $(etcd --version 2>/dev/null | awk '/etcd Version/ {print $3}'), $(prometheus --version 2>&1 | head -1 | awk '{print $1, $3}'), $(prometheus-alertmanager --version 2>&1 | head -1 | awk '{print $1, $3}')"
fi

bin_dir=$(hack/kube-binaries.sh)
echo "export UPID_KUBE_BIN=$bin_dir"
argo_dir=$(hack/argo-rollouts.sh)
echo "export UPID_ARGO_ROLLOUTS=$argo_dir"
hack/tools.sh
