#!/usr/bin/env bash
# Builds kube-apiserver into .toolchain/bin from its pinned wrapper module tools/toolchain/kube-apiserver, for the
# engine tests against a real API server (tests/engine/test_apiserver.py). Called by make (`make test`, or
# `make kube-apiserver`) with the environment of `make toolchain` (GOCACHE, GOMODCACHE, GOFLAGS,
# GOTOOLCHAIN, TOOLCHAIN_BIN), only when the wrapper's go.mod/go.sum or this script changed or the binary is missing.
# See docs/deploy.md, "Against a real API server (kube-apiserver + etcd)".
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${TOOLCHAIN_BIN:-$root/.toolchain/bin}
mkdir -p "$bin"
cd "$root/tools/toolchain/kube-apiserver"

# The pin lives in the wrapper's go.mod and only there.
m=k8s.io/kubernetes
v=$(awk -v m="$m" '$1 == m { v = $2 } $1 == "require" && $2 == m { v = $3 } END { print v }' go.mod)
[ -n "$v" ] || { echo "kube-apiserver: no k8s.io/kubernetes require in the wrapper's go.mod" >&2; exit 2; }
major=${v#v}
major=${major%%.*}
minor=${v#v*.}
minor=${minor%%.*}

# What upstream's hack/lib/version.sh stamps (without a commit: the module zip has none). Without gitVersion the
# server reports v0.0.0-master, and its emulation/compatibility version falls back to a default.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

start=$SECONDS
# Static, as upstream releases it (CGO_ENABLED=0); atomically, so a failed build leaves no half-written binary.
CGO_ENABLED=0 go build -p "${TOOLCHAIN_GO_PROCS:-2}" -trimpath -ldflags "$ldflags" \
    -o "$bin/.kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv -f "$bin/.kube-apiserver.tmp" "$bin/kube-apiserver"
echo "kube-apiserver: $v built in $((SECONDS - start)) s ($(du -h "$bin/kube-apiserver" | cut -f1))"
