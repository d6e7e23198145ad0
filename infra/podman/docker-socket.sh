#!/usr/bin/env bash
# Run a command with DOCKER_HOST on podman's Docker-compatible API (`podman system service`
# on a private unix socket), for Docker clients such as kfp.local's DockerRunner; the service
# is stopped when the command ends. With a Docker engine already answering, runs it as is.
#   infra/podman/docker-socket.sh <command> [args...]
set -euo pipefail
if docker info >/dev/null 2>&1; then exec "$@"; fi
here="$(cd "$(dirname "$0")/../.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/infra/podman/containers.conf}"
dir="$(mktemp -d)"
sock="$dir/podman.sock"
podman system service --time=0 "unix://$sock" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { echo "error: podman system service did not create $sock" >&2; exit 1; }
DOCKER_HOST="unix://$sock" "$@"
