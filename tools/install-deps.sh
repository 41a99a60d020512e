#!/usr/bin/env bash
# Installs the Debian packages sagepipe needs to build, test and run (DESIGN §7).
# Idempotent: installs only what is missing; does nothing when all is present.
# Needs root (or sudo) only when something is missing.
set -euo pipefail

PKGS=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libopenblas-dev
      liblmdb-dev lmdb-utils librdkafka-dev kcat libxxhash-dev libzstd-dev zstd
      libinih-dev python3-lmdb xxhash)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 2; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
