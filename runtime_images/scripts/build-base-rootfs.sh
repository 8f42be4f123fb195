#!/usr/bin/env bash
# Build Kumeo's local base image — Debian bookworm (minbase) with its python3.11, python3-venv and CA certificates —
# from a debootstrapped root filesystem, and `podman import` it. Needed only where no registry can be pulled from;
# with a registry, build the agent images with --build-arg KUMEO_BASE_IMAGE=python:3.11-slim instead.
#
#   runtime_images/scripts/build-base-rootfs.sh [--force] [IMAGE]     (default IMAGE: $KUMEO_BASE_IMAGE or
#                                                                      localhost/kumeo-python:3.11-bookworm)
#
# Skips everything when IMAGE already exists in podman's storage (the same storage scripts/podman-service.sh
# serves). Needs root, debootstrap and podman (apt-get install -y debootstrap podman). Takes ~45 s with an empty
# package cache (~25 s with the .debs cached in $KUMEO_DEBOOTSTRAP_CACHE), plus ~2 s for the import.
set -euo pipefail

force=0
if [[ "${1:-}" == "--force" ]]; then force=1; shift; fi
IMAGE=${1:-${KUMEO_BASE_IMAGE:-localhost/kumeo-python:3.11-bookworm}}
SUITE=${KUMEO_DEBIAN_SUITE:-bookworm}
MIRROR=${KUMEO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${KUMEO_DEBOOTSTRAP_CACHE:-/var/cache/kumeo/debootstrap}
PACKAGES=python3,python3-venv,ca-certificates

here=$(cd "$(dirname "$0")/../.." && pwd)
read -r -a FLAGS <<<"$("$here/scripts/podman-service.sh" flags)"

if [[ $force == 0 ]] && podman "${FLAGS[@]}" image exists "$IMAGE"; then
    echo "base image $IMAGE exists; nothing to do (--force rebuilds it)"
    exit 0
fi
for tool in debootstrap podman; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed: apt-get install -y $tool" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "debootstrap needs root" >&2; exit 1; }

started=$(date +%s)
work=$(mktemp -d /tmp/kumeo-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$CACHE"
echo "debootstrap $SUITE ($PACKAGES) from $MIRROR ..."
if ! debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$CACHE" \
        "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
    tail -20 "$work/debootstrap.log" >&2
    [[ -f "$work/rootfs/debootstrap/debootstrap.log" ]] && tail -20 "$work/rootfs/debootstrap/debootstrap.log" >&2
    exit 1
fi
rootfs=$work/rootfs
chroot "$rootfs" python3 -c "import ensurepip, ssl, venv" || { echo "python3 in the root filesystem is broken" >&2; exit 1; }
# What an image never needs: docs, man pages, locales, apt's lists and archives, debootstrap's leftovers.
rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
       "$rootfs"/usr/share/locale/* "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
       "$rootfs"/var/log/* "$rootfs"/debootstrap "$rootfs"/tmp/* 2>/dev/null || true
python_version=$(chroot "$rootfs" python3 -c "import platform; print(platform.python_version())")
tar -C "$rootfs" --numeric-owner --sort=name -c . | podman "${FLAGS[@]}" import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --change "LABEL org.opencontainers.image.title=kumeo-python" \
    --change "LABEL org.opencontainers.image.base.name=debian:$SUITE" \
    --change "LABEL kumeo.dev/python=$python_version" \
    - "$IMAGE" >"$work/import.log" 2>&1 || { cat "$work/import.log" >&2; exit 1; }
echo "built $IMAGE (Debian $SUITE, Python $python_version) in $(( $(date +%s) - started )) s"
