#!/usr/bin/env bash
# Installs the Debian packages sagepipe needs to build, test and run (DESIGN §7).
# Idempotent: installs only what is missing; does nothing when all is present.
# Needs root (or sudo) only when something is missing.
#
#   tools/install-deps.sh              the required packages
#   tools/install-deps.sh --optional   also the optional test tools (chromium, for
#                                      tests/e2e/report_html.sh; large, ~300 MB); a
#                                      failure to install these is reported, not fatal
set -euo pipefail

PKGS=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libopenblas-dev
      liblmdb-dev lmdb-utils librdkafka-dev kcat libxxhash-dev libzstd-dev zstd
      python3-lmdb xxhash)
OPTIONAL_PKGS=(chromium)

want_optional=0
case "${1:-}" in
  "") ;;
  --optional) want_optional=1 ;;
  *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

missing_of() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
mapfile -t missing < <(missing_of "${PKGS[@]}")
optional=()
[ $want_optional = 1 ] && mapfile -t optional < <(missing_of "${OPTIONAL_PKGS[@]}")
[ ${#missing[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]} ${optional[*]}" >&2; exit 2; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ${#optional[@]} -gt 0 ]; then
  echo "install-deps: installing optional ${optional[*]}" >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${optional[@]}" >/dev/null ||
    echo "install-deps: could not install optional ${optional[*]} (tests that need them are skipped)" >&2
fi
