#!/usr/bin/env bash
# `make image`: build deploy/Dockerfile into $IMAGE (default localhost/mfa-enforcer:dev).
#
# Tool: podman, else buildah, else docker (a running engine), or the one IMAGE_TOOL names.
# Base (the Dockerfile's PYTHON_IMAGE): the one PYTHON_IMAGE names; else the official python:3.11-slim-bookworm
# when it can be pulled; else a Debian bookworm base bootstrapped here from Debian's own packages with
# debootstrap (python3, python3-venv, ca-certificates; root only), cached as a tarball under
# ${XDG_CACHE_HOME:-~/.cache}/mfa-enforcer and as the local image localhost/mfa-enforcer-base:bookworm, so
# only the first build pays for it (about a minute). `--refresh-base` bootstraps it again (security updates).
# The Dockerfile is the same for every base. The image is labelled with the base it was built from, and the
# build prints and records (var/image/build.env) the tool, the base, the image id and its size.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-localhost/mfa-enforcer:dev}"
OFFICIAL_BASE="docker.io/library/python:3.11-slim-bookworm"
LOCAL_BASE="localhost/mfa-enforcer-base:bookworm"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/mfa-enforcer"
BASE_TARBALL="$CACHE_DIR/bookworm-python3-rootfs.tar"
RECORD="var/image/build.env"
REFRESH_BASE=false

for argument in "$@"; do
  case "$argument" in
    --refresh-base) REFRESH_BASE=true ;;
    *) echo "usage: $0 [--refresh-base]" >&2; exit 2 ;;
  esac
done

say() { echo "make image: $*" >&2; }
die() { say "$*"; exit 1; }

pick_tool() {
  if [[ -n "${IMAGE_TOOL:-}" ]]; then
    command -v "$IMAGE_TOOL" >/dev/null || die "IMAGE_TOOL=$IMAGE_TOOL is not installed"
    echo "$IMAGE_TOOL"
    return
  fi
  local tool
  for tool in podman buildah; do
    if command -v "$tool" >/dev/null; then echo "$tool"; return; fi
  done
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker; return; fi
  die "no container tool: install podman and buildah (Debian: apt-get install podman buildah), or start a Docker engine"
}

TOOL="$(pick_tool)"

image_exists() {
  case "$TOOL" in
    podman) podman image exists "$1" ;;
    buildah) buildah inspect --type image "$1" >/dev/null 2>&1 ;;
    docker) docker image inspect "$1" >/dev/null 2>&1 ;;
  esac
}

pull() { timeout 600 "$TOOL" pull --quiet "$1" >/dev/null 2>&1; }

image_id() {
  case "$TOOL" in
    podman) podman image inspect --format '{{.Id}}' "$1" ;;
    buildah) buildah inspect --type image --format '{{.FromImageID}}' "$1" ;;
    docker) docker image inspect --format '{{.Id}}' "$1" ;;
  esac
}

image_size() {
  case "$TOOL" in
    podman) podman image inspect --format '{{.Size}}' "$1" ;;
    buildah) podman image inspect --format '{{.Size}}' "$1" 2>/dev/null || echo unknown ;;
    docker) docker image inspect --format '{{.Size}}' "$1" ;;
  esac
}

# Unmount whatever debootstrap left mounted below $1 (proc, sys, devpts after a failure), then remove it
# without crossing into another filesystem.
remove_tree() {
  local target
  { findmnt --list --noheadings --output TARGET | grep -F "$1/" || true; } | sort -r | while read -r target; do
    umount --lazy "$target" || true
  done
  rm -rf --one-file-system "$1"
}

bootstrap_tarball() {
  command -v debootstrap >/dev/null || die "no base image: ${OFFICIAL_BASE#docker.io/library/} cannot be pulled and debootstrap is not installed (Debian: apt-get install debootstrap)"
  [[ "$(id -u)" == 0 ]] || die "no base image: ${OFFICIAL_BASE#docker.io/library/} cannot be pulled, and bootstrapping one with debootstrap needs root"
  local work
  work="$(mktemp -d "${TMPDIR:-/tmp}/mfa-enforcer-base.XXXXXX")"
  trap 'remove_tree "$work"' EXIT
  say "bootstrapping a Debian bookworm base with python3 (once; cached in $BASE_TARBALL)"
  # DEBIAN_MIRROR overrides debootstrap's default mirror.
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$work/rootfs" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  # What the official slim images leave out too: package caches and lists, documentation, translations.
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/cache/apt/*.bin \
    "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/usr/share/doc/* "$work"/rootfs/usr/share/man/* \
    "$work"/rootfs/usr/share/info/*
  find "$work/rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  mkdir -p "$CACHE_DIR"
  tar --numeric-owner --create --file "$BASE_TARBALL.partial" --directory "$work/rootfs" .
  mv "$BASE_TARBALL.partial" "$BASE_TARBALL"
  remove_tree "$work"
  trap - EXIT
}

# The image configuration the official image has too: PATH (the Dockerfile extends it), LANG, CMD.
BASE_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
import_tarball() {
  case "$TOOL" in
    podman | docker)
      "$TOOL" import --change "ENV PATH=$BASE_PATH" --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        "$BASE_TARBALL" "$LOCAL_BASE" >/dev/null
      ;;
    buildah)
      local container mountpoint
      container="$(buildah from scratch)"
      mountpoint="$(buildah mount "$container")"
      tar --numeric-owner --extract --file "$BASE_TARBALL" --directory "$mountpoint"
      buildah umount "$container" >/dev/null
      buildah config --env "PATH=$BASE_PATH" --env LANG=C.UTF-8 --cmd python3 "$container"
      buildah commit --quiet --rm "$container" "$LOCAL_BASE" >/dev/null
      ;;
  esac
}

pick_base() {
  if [[ -n "${PYTHON_IMAGE:-}" ]]; then
    BASE="$PYTHON_IMAGE" BASE_KIND="given (PYTHON_IMAGE)"
    return
  fi
  if pull "$OFFICIAL_BASE" || image_exists "$OFFICIAL_BASE"; then
    BASE="$OFFICIAL_BASE" BASE_KIND="official"
    return
  fi
  say "${OFFICIAL_BASE#docker.io/library/} cannot be pulled (no registry reachable): using a local Debian bookworm base"
  if [[ "$REFRESH_BASE" == true ]] || ! { image_exists "$LOCAL_BASE" || [[ -f "$BASE_TARBALL" ]]; }; then
    bootstrap_tarball
    import_tarball
  elif ! image_exists "$LOCAL_BASE"; then
    import_tarball
  fi
  BASE="$LOCAL_BASE" BASE_KIND="bootstrapped (debootstrap, Debian bookworm)"
}

pick_base

build_arguments=(--build-arg "PYTHON_IMAGE=$BASE" --label "org.opencontainers.image.base.name=$BASE"
  --file deploy/Dockerfile --tag "$IMAGE")
case "$TOOL" in
  podman | buildah)
    # chroot isolation needs no OCI runtime (there are machines where the runtime cannot start containers); the
    # docker format keeps HEALTHCHECK (an OCI image config has no field for it); the base is the one chosen
    # above, never pulled again; no intermediate images are kept (each build would leave a few hundred MB
    # behind; a build takes about 20 s without them); the host network and CA bundle let pip inside the
    # build reach the package index through whatever proxy the host uses.
    build_arguments+=(--isolation chroot --format docker --network host --pull=never --layers=false)
    if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
      build_arguments+=(--volume /etc/ssl/certs:/etc/ssl/certs:ro)
    fi
    ;;
esac

say "building $IMAGE with $TOOL from $BASE"
PREVIOUS="$(image_id "$IMAGE" 2>/dev/null || true)"
"$TOOL" build "${build_arguments[@]}" .

ID="$(image_id "$IMAGE")"
# The image this build replaced, now untagged (kept only while a container still uses it).
if [[ -n "$PREVIOUS" && "$PREVIOUS" != "$ID" ]]; then
  "$TOOL" rmi "$PREVIOUS" >/dev/null 2>&1 || true
fi
SIZE="$(image_size "$IMAGE")"
mkdir -p "$(dirname "$RECORD")"
cat >"$RECORD" <<EOF
IMAGE=$IMAGE
IMAGE_ID=$ID
IMAGE_TOOL=$TOOL
IMAGE_BASE=$BASE
IMAGE_BASE_KIND="$BASE_KIND"
IMAGE_SIZE_BYTES=$SIZE
EOF
if [[ "$SIZE" =~ ^[0-9]+$ ]]; then SIZE="$((SIZE / 1000000)) MB"; fi
say "built $IMAGE ($ID, $SIZE) with $TOOL from the $BASE_KIND base $BASE; recorded in $RECORD"
