#!/usr/bin/env bash
# make bench: runs every benchmark at its default (modest) size and prints their JSON lines.
#
#   bench/run_all.sh BUILD_DIR
#
# Runs, in name order, every executable bench/*.sh other than this one as `SCRIPT BUILD_DIR`,
# then every executable BUILD_DIR/bench/* (built from bench/*.c) with no arguments except the
# *_mpi ones, which a script runs under mpirun (bench/dist.sh, bench/rows.sh), all from
# the repository root. Each prints one JSON object per line on stdout (passed through here)
# and its progress on stderr. A failing benchmark does not stop the others; the exit status
# is then that of the last one that failed.
set -uo pipefail

if [ $# -ne 1 ] || [ "${1#-}" != "$1" ]; then sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$1" 2>/dev/null && pwd) || { echo "run_all: no such build dir: $1" >&2; exit 2; }
cd "$ROOT" || exit 1

status=0
ran=0
run_one() {
  local name=$1; shift
  echo "run_all: $name" >&2
  local t0=$SECONDS
  "$@"
  local rc=$?
  ran=$((ran + 1))
  if [ $rc -ne 0 ]; then
    echo "run_all: $name failed (exit $rc)" >&2
    status=$rc
  else
    echo "run_all: $name done in $((SECONDS - t0)) s" >&2
  fi
}

for s in bench/*.sh; do
  [ -f "$s" ] || continue
  [ "$(basename "$s")" = run_all.sh ] && continue
  if [ -x "$s" ]; then run_one "$s" "$s" "$BUILD"; else run_one "$s" bash "$s" "$BUILD"; fi
done
if [ -d "$BUILD/bench" ]; then
  for b in "$BUILD"/bench/*; do
    if [ ! -f "$b" ] || [ ! -x "$b" ]; then continue; fi
    case "$b" in *_mpi) continue ;; esac
    run_one "$b" "$b"
  done
fi
[ $ran -gt 0 ] || echo "run_all: no benchmarks found" >&2
exit $status
