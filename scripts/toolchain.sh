#!/usr/bin/env bash
# Builds one piece of the Pulumi toolchain into .toolchain/bin from its pinned wrapper module under tools/toolchain/.
# Called by `make toolchain` (which sets GOCACHE, GOMODCACHE, GOFLAGS, GOTOOLCHAIN and TOOLCHAIN_BIN and only calls
# this when a wrapper's go.mod/go.sum changed or its binary is missing). See docs/deploy.md,
# "Building the Pulumi toolchain".
#
#   scripts/toolchain.sh pulumi | pulumi-language-python | pulumi-resource-kubernetes | pulumi-language-yaml | actionlint
set -euo pipefail

tool=${1:?usage: scripts/toolchain.sh TOOL}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${TOOLCHAIN_BIN:-$root/.toolchain/bin}
src=$root/.toolchain/src
wrapper=$root/tools/toolchain/$tool
mkdir -p "$bin" "$src"
[ -f "$wrapper/go.mod" ] || { echo "toolchain: no wrapper module at $wrapper" >&2; exit 2; }
cd "$wrapper"

go_build_flags=(-p "${TOOLCHAIN_GO_PROCS:-2}" -trimpath)

# The version a wrapper's go.mod requires for MODULE (the pin lives there and only there).
required() { awk -v m="$1" '$1 == m || ($1 == "require" && $2 == m) { v = ($1 == "require") ? $3 : $2 } END { print v }' go.mod; }

# go build PKG into $bin/NAME atomically (a failed or interrupted build leaves no half-written binary).
build() { # NAME PKG LDFLAGS...
    local name=$1 pkg=$2
    shift 2
    go build "${go_build_flags[@]}" -ldflags "-s -w $*" -o "$bin/.$name.tmp" "$pkg"
    mv -f "$bin/.$name.tmp" "$bin/$name"
}

start=$SECONDS
case "$tool" in
pulumi)
    v=$(required github.com/pulumi/pulumi/pkg/v3)
    build pulumi github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
        "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v"
    ;;
pulumi-language-python)
    v=$(required github.com/pulumi/pulumi/sdk/v3)
    # Upstream's exec shim (runs the program inside the Python SDK) ships in the same sdk/v3 module.
    sdk=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
    install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$bin/pulumi-language-python-exec"
    build pulumi-language-python . "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v+kumeo"
    ;;
pulumi-resource-kubernetes)
    mod=github.com/pulumi/pulumi-kubernetes/provider/v4
    pv=$(required "$mod")
    # Plugin version: the first release after the pinned commit, as a pre-release of it carrying the commit
    # (v4.0.0-20260115033456-f47bc2d6f199 + sdk v4.25.0 -> 4.25.0-alpha.20260115033456+f47bc2d6f199).
    sdkv=$(required github.com/pulumi/pulumi-kubernetes/sdk/v4)
    stamp=${pv%-*}
    stamp=${stamp##*-}
    kv="${sdkv#v}-alpha.$stamp+${pv##*-}"
    # The module as served lacks schema-embed.json (upstream's `go generate` writes it), so build from a copy.
    # Outside any module, so -mod=mod does not apply; the checksum database verifies the download and
    # provider.sum pins it.
    info=$(cd "$src" && GOFLAGS=-buildvcs=false go mod download -json "$mod@$pv")
    dir=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    sum=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Sum": "\(.*\)",$/\1/p')
    want=$(awk -v m="$mod" -v v="$pv" '$1 == m && $2 == v { print $3 }' provider.sum)
    if [ -z "$dir" ] || [ "$sum" != "$want" ]; then
        echo "toolchain: $mod@$pv: got checksum '$sum', provider.sum pins '$want'" >&2
        exit 1
    fi
    copy=$src/pulumi-kubernetes-provider
    rm -rf "$copy"
    cp -R "$dir" "$copy"
    chmod -R u+w "$copy"
    # Exactly what the provider's `//go:generate go run ./generate.go` does, run from our wrapper module (the copy's
    # own go.mod replaces its SDK with ../sdk, which is not there).
    go build "${go_build_flags[@]}" -o "$src/kubernetes-schema-generate" "$copy/cmd/pulumi-resource-kubernetes/generate.go"
    (cd "$copy/cmd/pulumi-resource-kubernetes" && VERSION=$kv "$src/kubernetes-schema-generate")
    build pulumi-resource-kubernetes "$mod/cmd/pulumi-resource-kubernetes" \
        "-X $mod/pkg/version.Version=$kv"
    ;;
pulumi-language-yaml)
    v=$(required github.com/pulumi/pulumi-yaml)
    build pulumi-language-yaml github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml \
        "-X github.com/pulumi/pulumi-yaml/pkg/version.Version=${v#v}"
    ;;
actionlint)
    v=$(required github.com/rhysd/actionlint)
    build actionlint github.com/rhysd/actionlint/cmd/actionlint "-X github.com/rhysd/actionlint.version=${v#v}"
    ;;
*)
    echo "toolchain: unknown tool $tool" >&2
    exit 2
    ;;
esac
echo "toolchain: $tool built in $((SECONDS - start)) s"
