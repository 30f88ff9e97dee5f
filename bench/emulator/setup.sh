#!/usr/bin/env bash
# Installs what the slow-storage emulator needs (fuse3 for fusermount3,
# libfuse3-dev and pkg-config to build) if missing, then builds build/slowfs.
# Run as root on Debian. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v fusermount3 >/dev/null || need_apt+=(fuse3)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
dpkg -s libfuse3-dev >/dev/null 2>&1 || need_apt+=(libfuse3-dev)
command -v cc >/dev/null || need_apt+=(build-essential)
command -v make >/dev/null || need_apt+=(make)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "emulator setup: installing ${need_apt[*]} from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    # Update the package lists only when they cannot provide what is missing.
    if ! apt-get install -y -qq "${need_apt[@]}" >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq "${need_apt[@]}" >/dev/null
    fi
fi

make -s
echo "emulator setup: $(pwd)/build/slowfs"
