#!/usr/bin/env bash
# Build ecdflow's images with Docker when an engine answers, else with podman (Debian 12:
# `make apt-images` installs podman, buildah, runc, debootstrap, uidmap).
#
#   infra/podman/images.sh [cpu] [mlflow] [gpu]     (default: cpu mlflow)
#
# Env:
#   IMAGE_REPO, IMAGE_TAG  image names: $IMAGE_REPO/ecdflow-cpu:$IMAGE_TAG, .../mlflow-server:...
#   BASE_IMAGE             base of the CPU/GPU images (default: the Dockerfiles' public
#                          python:3.11.7-slim-bookworm); `local` = a Debian 12 minbase
#                          bootstrapped here (debootstrap from the Debian mirror, `podman
#                          import`), for machines that cannot pull public images.
#   DEBIAN_MIRROR          mirror for `local` (default http://deb.debian.org/debian)
#   ECDFLOW_CACHE          where the bootstrapped base tarball is kept (~/.cache/ecdflow)
#   WHEELS                 wheelhouse of requirements/lock.txt, filled on the host with
#                          `pip wheel` and mounted into the CPU build (podman; default
#                          $ECDFLOW_CACHE/wheels; WHEELS=none: pip downloads in the build)
#   HOST_PYTHON            Python that fills the wheelhouse (default .venv/bin/python)
#   TIMINGS                file to append "<image> <seconds>" lines to (optional)
#   EXTRA_BUILD_OPTS       more build flags, e.g. --no-cache (bench/bench_images.py)
#
# podman settings (infra/podman/containers.conf via CONTAINERS_CONF, /etc untouched): runtime
# runc and ulimits nofile=1024:1024, nproc=4096:4096; builds use the host network and the
# host's CA bundle (pip reaches the index only so). Layers stay in podman's storage, so an
# unchanged lock rebuilds in seconds; the lock's wheels are kept in a host wheelhouse.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$here"
IMAGE_REPO="${IMAGE_REPO:-ghcr.io/ecdflow}"
IMAGE_TAG="${IMAGE_TAG:-0.1.0}"
CACHE="${ECDFLOW_CACHE:-$HOME/.cache/ecdflow}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
LOCAL_BASE="localhost/ecdflow-debian:bookworm"
CA=/etc/ssl/certs/ca-certificates.crt
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(cpu mlflow)

if docker info >/dev/null 2>&1; then
  engine=docker
  build_opts=()
else
  command -v podman >/dev/null || {
    echo "error: neither a Docker engine nor podman (make apt-images installs podman)" >&2
    exit 1
  }
  engine=podman
  export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/infra/podman/containers.conf}"
  build_opts=(--network host --volume "$CA:$CA:ro")
fi

wheel_opts=()
wheels="${WHEELS:-$CACHE/wheels}"
if [ "$engine" = podman ] && [ "$wheels" != none ]; then
  # pip's HTTP cache stores nothing behind this network's proxy, so a mounted pip cache saves
  # no download; a wheelhouse does (pip skips wheels already there; ~35 s when filled).
  mkdir -p "$wheels"
  t0=$SECONDS
  stamp="$wheels/.lock-$(sha256sum requirements/lock.txt | cut -c1-16)"  # filled for this lock
  if [ ! -e "$stamp" ]; then
    "${HOST_PYTHON:-$here/.venv/bin/python}" -m pip wheel -q -r requirements/lock.txt \
      -w "$wheels"
    touch "$stamp"
  fi
  if [ -n "${TIMINGS:-}" ]; then echo "wheelhouse $((SECONDS - t0))" >>"$TIMINGS"; fi
  wheel_opts=(--volume "$wheels:/wheels:ro" --build-arg PIP_WHEELS=/wheels)
fi

local_base() {
  # A Debian 12 minbase with Python 3.11 + venv as an image; the rootfs tarball is cached.
  if $engine image exists "$LOCAL_BASE" 2>/dev/null; then return; fi
  local tarball="$CACHE/debian-bookworm-minbase.tar" t0=$SECONDS
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || {
      echo "error: BASE_IMAGE=local needs debootstrap (make apt-images)" >&2; exit 1; }
    local root
    root="$(mktemp -d)"
    mkdir -p "$CACHE"
    echo "debootstrap bookworm (minbase + python3, python3-venv, ca-certificates) from $MIRROR"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$root" "$MIRROR" >/dev/null
    tar -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$root"
  fi
  $engine import "$tarball" "$LOCAL_BASE" >/dev/null
  if [ -n "${TIMINGS:-}" ]; then echo "local-base $((SECONDS - t0))" >>"$TIMINGS"; fi
}

base_opts=()
if [ -n "${BASE_IMAGE:-}" ]; then
  if [ "$BASE_IMAGE" = local ]; then
    [ "$engine" = podman ] || { echo "error: BASE_IMAGE=local is for podman" >&2; exit 1; }
    local_base
    base_opts=(--build-arg "BASE_IMAGE=$LOCAL_BASE")
  else
    base_opts=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
  fi
fi

build() {  # build <name> <dockerfile> [extra args...]
  local name="$1" file="$2"
  shift 2
  local t0=$SECONDS
  echo "$engine build $IMAGE_REPO/$name:$IMAGE_TAG ($file)"
  # shellcheck disable=SC2086  # EXTRA_BUILD_OPTS is a list of flags
  $engine build "${build_opts[@]}" ${EXTRA_BUILD_OPTS:-} "$@" -f "$file" -t "$IMAGE_REPO/$name:$IMAGE_TAG" .
  if [ -n "${TIMINGS:-}" ]; then echo "$name $((SECONDS - t0))" >>"$TIMINGS"; fi
}

for t in "${targets[@]}"; do
  case "$t" in
    cpu) build ecdflow-cpu components/docker/Dockerfile.cpu "${base_opts[@]}" "${wheel_opts[@]}" ;;
    gpu) build ecdflow-gpu components/docker/Dockerfile.gpu "${base_opts[@]}" ;;
    mlflow) build mlflow-server components/docker/Dockerfile.mlflow \
              --build-arg "BASE=$IMAGE_REPO/ecdflow-cpu:$IMAGE_TAG" ;;
    *) echo "error: unknown image '$t' (cpu, mlflow, gpu)" >&2; exit 2 ;;
  esac
done
