#!/usr/bin/env bash
# Build runyard's Python base image without any container registry.
#
# No image can be pulled on the machines runyard targets (air-gapped clusters, CI sandboxes), so
# the base image is a Debian bookworm root filesystem made by mmdebstrap from the Debian archive
# and turned into an image with `docker import`. Two phases, usable separately because the test
# harness needs network for the first and runs the second inside a network namespace:
#
#   rootfs  mmdebstrap -> tar, cached (needs the Debian mirror, no Docker)
#   import  docker import tar -> image (needs Docker, no network)
#
# Usage: docker/build-base-image.sh [--force] [--rootfs-only | --import-only] [IMAGE]
#   IMAGE            image name; default $RUNYARD_BASE_IMAGE or runyard/python-base:bookworm
#   --force          rebuild the rootfs tar and re-import even when both exist
#   --rootfs-only    only make sure the cached rootfs tar exists
#   --import-only    only import the cached tar (fails if it is missing)
# Environment:
#   DOCKER_HOST          which Docker engine receives the image (docker CLI default otherwise)
#   RUNYARD_ROOTFS_TAR   cache path of the tar (default /var/cache/runyard/rootfs-bookworm.tar)
#   RUNYARD_DEBIAN_MIRROR  mirror for mmdebstrap (default: mmdebstrap's, deb.debian.org)
#
# The image has no `python` (only `python3`) and no entrypoint: jobs must run `python3 ...`
# explicitly. Debian marks its Python as externally managed (PEP 668), so install job
# dependencies into a venv (`python3 -m venv /opt/venv`), from a host wheelhouse.
set -euo pipefail

image="${RUNYARD_BASE_IMAGE:-runyard/python-base:bookworm}"
rootfs_tar="${RUNYARD_ROOTFS_TAR:-/var/cache/runyard/rootfs-bookworm.tar}"
force=0
phases="rootfs import"

while (($#)); do
    case "$1" in
        --force) force=1 ;;
        --rootfs-only) phases="rootfs" ;;
        --import-only) phases="import" ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "build-base-image: unknown option $1" >&2; exit 2 ;;
        *) image="$1" ;;
    esac
    shift
done

log() { echo "build-base-image: $*" >&2; }

build_rootfs() {
    if [[ -s "$rootfs_tar" && $force == 0 ]]; then
        log "rootfs cached at $rootfs_tar"
        return
    fi
    command -v mmdebstrap >/dev/null || { log "mmdebstrap missing (apt-get install mmdebstrap)"; exit 1; }
    mkdir -p "$(dirname "$rootfs_tar")"
    # Write next to the final path and rename, so an interrupted build never leaves a truncated
    # tar that later runs would trust.
    # (mmdebstrap picks its output format from the name, so the temporary name ends in .tar too.)
    local tmp="${rootfs_tar%.tar}.partial.$$.tar"
    trap 'rm -f "$tmp"' EXIT
    local start=$SECONDS
    log "mmdebstrap bookworm -> $rootfs_tar (about 20 s)"
    mmdebstrap --variant=minbase --format=tar --quiet \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$tmp" ${RUNYARD_DEBIAN_MIRROR:+"$RUNYARD_DEBIAN_MIRROR"}
    mv -f "$tmp" "$rootfs_tar"
    trap - EXIT
    log "rootfs built in $((SECONDS - start)) s ($(du -h "$rootfs_tar" | cut -f1))"
}

# Identity of the cached tar (size and mtime), stored as a label, so an image imported from an
# older tar is replaced after the tar was rebuilt.
rootfs_id() { stat -c '%s-%Y' "$rootfs_tar" 2>/dev/null || true; }

import_image() {
    local have want
    have="$(docker image inspect -f '{{index .Config.Labels "org.runyard.rootfs-id"}}' "$image" 2>/dev/null)" || have=""
    want="$(rootfs_id)"
    # Keep a present image unless forced or known stale (no tar here: nothing to compare with).
    if docker image inspect "$image" >/dev/null 2>&1 && [[ $force == 0 ]] &&
        [[ -z $want || $have == "$want" ]]; then
        log "image $image already present${DOCKER_HOST:+ on $DOCKER_HOST}"
        return
    fi
    [[ -s "$rootfs_tar" ]] || { log "no rootfs tar at $rootfs_tar (run with --rootfs-only first)"; exit 1; }
    local start=$SECONDS
    # An imported tar carries no image config at all: give it the PATH and locale a Dockerfile
    # base would have, so `docker run IMAGE python3 ...` and later `FROM IMAGE` builds behave.
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        --change 'LABEL org.runyard.base-image=bookworm' \
        --change "LABEL org.runyard.rootfs-id=$want" \
        --message "runyard base image from $(basename "$rootfs_tar")" \
        "$rootfs_tar" "$image" >/dev/null
    # A re-import leaves the previous base untagged; drop it (prune touches dangling images only).
    docker image prune -f --filter label=org.runyard.base-image >/dev/null || true
    log "imported $image${DOCKER_HOST:+ into $DOCKER_HOST} in $((SECONDS - start)) s"
}

for phase in $phases; do
    case "$phase" in
        rootfs) build_rootfs ;;
        import) import_image ;;
    esac
done
