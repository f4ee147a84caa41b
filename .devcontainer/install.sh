#!/bin/sh
# The development container's build steps (run by .devcontainer/Dockerfile in debian:trixie-slim,
# and by tools/fresh-machine --devcontainer in a minimal Debian root, from a copy of the tree):
# what a bare Debian lacks to run ./pagoda, then everything ./pagoda setup installs, so that
# ./pagoda run and ./pagoda test install nothing more in the container.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends git python3 ca-certificates
/usr/bin/python3 "$here/pagoda" setup
apt-get clean
rm -rf /var/lib/apt/lists/*
