#!/usr/bin/env bash
# Build, only when missing, the base images the runner uses by default:
#   python:3.11-slim  Debian bookworm minbase + python3 (3.11), venv, pip, python-is-python3
#   node:20-slim      the same rootfs + the host's node binary at /usr/local/bin/node
# There is no registry on this machine, so nothing can be pulled: we debootstrap a rootfs from
# the machine's apt mirror and `docker import` it under the names the runner uses by default, so
# production defaults and tests share one code path.
#
# Python 3.10 / 3.12 images are deliberately NOT built: bookworm only ships 3.11 and tagging 3.11
# as another version would make a job silently run the wrong interpreter. The runner reports a
# clear build_failed for a missing image instead.
#
# Users: the images add no user of their own. The runner starts job containers as
# User '65534:65534' (nobody:nogroup), which exists in Debian's base-passwd and therefore in this
# rootfs AND in the official python/node images a production runner may pull; uid 1000 does not
# exist in the official python image. The runner chowns the job dir to 65534 and sets HOME=/tmp
# (the root filesystem is read-only at run time).
#
# The finished rootfs is cached as a tarball under $RGRID_BASE_CACHE, so re-creating an image
# after `docker rmi` (or on a fresh /var/lib/docker) is a `docker import` of a few seconds.
#
# Env (all optional):
#   RGRID_BASE_CACHE   cache dir                         (default /var/cache/rgrid-base)
#   RGRID_APT_MIRROR   Debian mirror for debootstrap     (default: from /etc/apt sources)
#   RGRID_BASE_FORCE=1 rebuild the images even if present (the cached rootfs is still reused)
set -euo pipefail

CACHE="${RGRID_BASE_CACHE:-/var/cache/rgrid-base}"
SUITE=bookworm
INCLUDE=python3,python3-venv,python3-pip,python-is-python3,libstdc++6
# The include list is part of the cache key: changing it invalidates the cached rootfs.
ROOTFS_TAR="$CACHE/${SUITE}-minbase-$(echo -n "$INCLUDE" | sha256sum | cut -c1-12).tar"
PY_TAG=python:3.11-slim
NODE_TAG=node:20-slim
STD_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { echo "base-images: $*"; }
have_image() { [[ "${RGRID_BASE_FORCE:-0}" != 1 ]] && docker image inspect "$1" >/dev/null 2>&1; }

docker info >/dev/null 2>&1 || { echo "base-images: docker daemon not reachable; run .ci/docker-up.sh first" >&2; exit 1; }

if have_image "$PY_TAG" && have_image "$NODE_TAG"; then
  log "$PY_TAG and $NODE_TAG already present"
  exit 0
fi

find_mirror() {
  if [[ -n "${RGRID_APT_MIRROR:-}" ]]; then echo "$RGRID_APT_MIRROR"; return; fi
  local f m
  # deb822 sources: the first "URIs:" of a stanza whose Suites include the plain suite name
  # (not bookworm-security, which is a different archive). No `| head` pipelines here: under
  # pipefail a SIGPIPE'd writer would turn a found mirror into a failure.
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    m="$(awk -v suite="$SUITE" '
      /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri=""; ok=0; next }
      /^URIs:/   { uri=$2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok=1 }
      END { if (uri != "" && ok) print uri }' "$f")"
    if [[ -n "$m" ]]; then echo "${m%%$'\n'*}"; return; fi
  done
  # one-line format
  m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | sed -nE "s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+$SUITE[[:space:]].*/\2/p")" || true
  echo "${m%%$'\n'*}"
}

build_rootfs_tar() {
  command -v debootstrap >/dev/null 2>&1 || {
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null \
      || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap; }
  }
  local mirror; mirror="$(find_mirror)"
  [[ -n "$mirror" ]] || { echo "base-images: no $SUITE mirror found in /etc/apt sources; set RGRID_APT_MIRROR" >&2; exit 1; }
  local dir; dir="$(mktemp -d /var/tmp/rgrid-rootfs.XXXXXX)"
  # shellcheck disable=SC2064
  trap "rm -rf '$dir'" EXIT
  log "debootstrap $SUITE from $mirror (this takes about a minute)"
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$dir" "$mirror" > "$CACHE/debootstrap.log" 2>&1 \
    || { tail -n 30 "$CACHE/debootstrap.log" >&2; exit 1; }
  # Refuse to label something else as 3.11 if the suite ever changes.
  local ver; ver="$(chroot "$dir" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [[ "$ver" == 3.11 ]] || { echo "base-images: rootfs has python $ver, not 3.11" >&2; exit 1; }
  # Shrink the image: downloaded .debs and apt lists are useless in a read-only job container.
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/tmp/* "$dir"/var/tmp/*
  tar --numeric-owner -C "$dir" -cf "$ROOTFS_TAR.part" .
  mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
  rm -rf "$dir"
  trap - EXIT
}

mkdir -p "$CACHE"
start=$SECONDS
if [[ -f "$ROOTFS_TAR" ]]; then
  log "reusing cached rootfs $ROOTFS_TAR"
else
  build_rootfs_tar
fi

common_changes=(--change "ENV PATH=$STD_PATH" --change 'ENV LANG=C.UTF-8' --change 'WORKDIR /'
                --change "LABEL org.rgrid.base=debootstrap-$SUITE-minbase")

if ! have_image "$PY_TAG"; then
  log "importing $PY_TAG"
  docker import "${common_changes[@]}" \
    --change 'ENV PYTHONUNBUFFERED=1' --change 'CMD ["python3"]' \
    "$ROOTFS_TAR" "$PY_TAG" >/dev/null
fi

if ! have_image "$NODE_TAG"; then
  node_bin="$(command -v node)"
  [[ -n "$node_bin" ]] || { echo "base-images: no node binary on the host; cannot build $NODE_TAG" >&2; exit 1; }
  node_major="$("$node_bin" -p 'process.versions.node.split(".")[0]')"
  [[ "$node_major" == 20 ]] || { echo "base-images: host node is v$node_major, not 20; not tagging $NODE_TAG" >&2; exit 1; }
  log "importing $NODE_TAG (host $node_bin v$("$node_bin" -p process.versions.node))"
  # Same rootfs tarball (no second debootstrap) plus node: append the binary to a copy of the
  # tar as ./usr/local/bin/node instead of unpacking the whole tree again.
  work="$(mktemp -d /var/tmp/rgrid-node.XXXXXX)"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  mkdir -p "$work/usr/local/bin"
  cp "$node_bin" "$work/usr/local/bin/node"
  cp "$ROOTFS_TAR" "$work/rootfs.tar"
  tar --numeric-owner --owner=0 --group=0 -C "$work" -rf "$work/rootfs.tar" ./usr/local/bin/node
  docker import "${common_changes[@]}" --change 'CMD ["node"]' "$work/rootfs.tar" "$NODE_TAG" >/dev/null
  rm -rf "$work"
  trap - EXIT
fi

# Smoke test: both interpreters start inside their images.
docker run --rm --network none "$PY_TAG" python3 -c 'import sys, venv; print("python", sys.version.split()[0])'
docker run --rm --network none "$NODE_TAG" node -e 'console.log("node", process.version)'
log "done in $((SECONDS - start))s"
