#!/usr/bin/env bash
# podman's Docker-compatible API on a unix socket, for the image tests and CI (no Docker engine needed).
#
#   scripts/podman-service.sh start [SOCKET]   start it (if not already answering) and print DOCKER_HOST=unix://SOCKET
#   scripts/podman-service.sh stop  [SOCKET]   stop the service this script started on SOCKET
#   scripts/podman-service.sh flags            print the podman storage flags, for `podman $(…) images`
#
# Storage is podman's vfs driver in a root of its own (KUMEO_PODMAN_ROOT, default /var/lib/kumeo/podman), so the
# locally built base image stays cached between runs and never clashes with another podman configuration.
# Builds through this API must use chroot isolation where containers cannot run (Kumeo's Image resource passes
# isolation="chroot" through podman's own build endpoint).
set -euo pipefail

ROOT=${KUMEO_PODMAN_ROOT:-/var/lib/kumeo/podman}
RUNROOT=${KUMEO_PODMAN_RUNROOT:-/run/kumeo/podman-run}
DEFAULT_SOCKET=${KUMEO_PODMAN_SOCKET:-/run/kumeo/podman.sock}
FLAGS=(--root "$ROOT" --runroot "$RUNROOT" --storage-driver vfs)

answering() {  # the API's /_ping answers OK on this socket
    [[ -S "$1" ]] && timeout 5 podman --remote --url "unix://$1" version >/dev/null 2>&1
}

case "${1:-start}" in
flags)
    echo "${FLAGS[*]}"
    ;;
start)
    socket=${2:-$DEFAULT_SOCKET}
    command -v podman >/dev/null || { echo "podman is not installed: apt-get install -y podman" >&2; exit 1; }
    mkdir -p "$(dirname "$socket")" "$ROOT" "$RUNROOT"
    if ! answering "$socket"; then
        rm -f "$socket"
        log="${socket}.log"
        # --time=0: never exit for idleness; setsid: outlive the calling shell (CI's step, a test fixture).
        BUILDAH_ISOLATION=chroot setsid podman "${FLAGS[@]}" system service --time=0 "unix://$socket" \
            >"$log" 2>&1 </dev/null &
        echo $! >"${socket}.pid"
        for _ in $(seq 1 100); do
            answering "$socket" && break
            sleep 0.1
        done
        answering "$socket" || { echo "podman system service did not answer on $socket:" >&2; cat "$log" >&2; exit 1; }
    fi
    echo "DOCKER_HOST=unix://$socket"
    ;;
stop)
    socket=${2:-$DEFAULT_SOCKET}
    if [[ -f "${socket}.pid" ]]; then
        pid=$(cat "${socket}.pid")
        kill "$pid" 2>/dev/null || true
        # The service drains open API connections before it exits; do not wait on it for long.
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "${socket}.pid"
    fi
    rm -f "$socket"
    ;;
*)
    echo "usage: $0 start|stop [SOCKET] | flags" >&2
    exit 2
    ;;
esac
