#!/usr/bin/env bash
# A local stand-in for the public base image (python:3.11-slim-bookworm): Debian bookworm
# minbase with Python 3.11, made by debootstrap and imported into podman. Needs root and
# the Debian archive; nothing else.
set -euo pipefail
tag=${1:-localhost/tfstack-base:bookworm-python3.11}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$(dirname "$0")/containers.conf}

if podman image exists "$tag"; then
  echo "base image $tag exists"
  exit 0
fi
rootfs=$(mktemp -d /var/tmp/tfstack-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$rootfs" "$mirror"
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/tmp/*
tar --numeric-owner -C "$rootfs" -c . |
  podman import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$tag"
podman image ls "$tag"
