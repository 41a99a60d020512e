#!/usr/bin/env bash
# Benchmark of the ingest and graph stages against the cost of reading the input once.
#
#   bench/ingest_graph.sh [--edges E]... [--ranks N] [--seed S] [--keep] BUILD_DIR
#
# For each size E (default 10000000; the big one is --edges 100000000) it
#   1. generates inputs with `sagepipe gen` (pins E/10, boards E/40, users E/100,
#      events E/10, dim 16) into out/bench/gen-E, reused when a previous
#      generation with the same arguments completed (marker out/bench/gen-E.ok);
#   2. measures read_s: `cat` of the same input files to /dev/null, page cache as it is;
#   3. runs `sagepipe run --to graph --force` on N ranks (default 2), each rank under
#      /usr/bin/time for its peak RSS, work dir out/bench/work-E;
#   4. reads per-stage wall seconds (max over ranks), counts and graph stats from the
#      stages' _SUCCESS.json files.
# One JSON object per size on stdout; progress and diagnostics on stderr; the run's log is
# kept in out/bench/ingest_graph-E.log. The work dir is deleted afterwards unless --keep
# (or the pipeline failed). Exit status: 0 ok, 2 usage, otherwise the failing command's.
set -uo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "ingest_graph: $*" >&2; exit 2; }
log() { echo "ingest_graph: $*" >&2; }

SIZES=()
RANKS=2
SEED=1
KEEP=0
BUILD=
while [ $# -gt 0 ]; do
  case "$1" in
    --edges) [ $# -ge 2 ] || usage; SIZES+=("$2"); shift 2 ;;
    --edges=*) SIZES+=("${1#*=}"); shift ;;
    --ranks) [ $# -ge 2 ] || usage; RANKS=$2; shift 2 ;;
    --seed) [ $# -ge 2 ] || usage; SEED=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$BUILD" ] || die "one BUILD_DIR only"; BUILD=$1; shift ;;
  esac
done
[ -n "$BUILD" ] || usage
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10000000)
for e in "${SIZES[@]}" "$RANKS" "$SEED"; do
  [[ "$e" =~ ^[0-9]+$ ]] || die "not a non-negative integer: $e"
done
for e in "${SIZES[@]}"; do [ "$e" -ge 100 ] || die "--edges must be at least 100 (got $e)"; done
[ "$RANKS" -ge 1 ] || die "--ranks must be at least 1"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || die "no such build dir: $BUILD"
[ -x "$BUILD/sagepipe" ] || die "no executable $BUILD/sagepipe"
OUT=${BENCH_OUT:-$ROOT/out/bench}
mkdir -p "$OUT" || exit 1
command -v mpirun >/dev/null || die "mpirun not found"
command -v python3 >/dev/null || die "python3 not found"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
DATE=2026-11-21
INPUTS=(pin_board.tsv pin_dense.sfv pin_tokens.tsv events.tsv)

# Peak RSS per rank needs GNU time; install it when missing and we may.
TIME=/usr/bin/time
if [ ! -x "$TIME" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing the 'time' package for peak RSS"
    { apt-get install -y -qq time || { apt-get update -qq && apt-get install -y -qq time; }; } >&2
  fi
  [ -x "$TIME" ] || { log "warning: $TIME missing; peak_rss_mb will be null"; TIME=; }
fi

# Wall clock in seconds; bash 5 has it without a fork.
now() { if [ -n "${EPOCHREALTIME:-}" ]; then echo "${EPOCHREALTIME/,/.}"; else date +%s.%N; fi; }

# Snapshot the binary: the build dir may be rebuilt while a long run is in flight.
BIN_DIR=$(mktemp -d "$OUT/.bin.XXXXXX") || exit 1
trap 'rm -rf "$BIN_DIR"' EXIT
cp "$BUILD/sagepipe" "$BIN_DIR/sagepipe" || exit 1
BIN=$BIN_DIR/sagepipe
VERSION=$("$BIN" --version 2>&1 | head -1)
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || GIT_REV="$GIT_REV+dirty"

status=0
for E in "${SIZES[@]}"; do
  PINS=$((E / 10)); BOARDS=$((E / 40)); USERS=$((E / 100)); EVENTS=$((E / 10))
  [ "$BOARDS" -ge 1 ] || BOARDS=1; [ "$USERS" -ge 1 ] || USERS=1
  GEN=$OUT/gen-$E
  GEN_ARGS="gen --pins $PINS --boards $BOARDS --edges $E --users $USERS --events $EVENTS --seed $SEED --dim 16 --date $DATE"
  MARK="$VERSION | $GEN_ARGS"

  # 1. inputs (cached)
  complete=1
  [ -f "$GEN.ok" ] && [ "$(cat "$GEN.ok")" = "$MARK" ] || complete=0
  for f in "${INPUTS[@]}"; do [ -s "$GEN/$f" ] || complete=0; done
  if [ $complete = 1 ]; then
    log "edges=$E: reusing inputs in $GEN"
  else
    log "edges=$E: generating inputs in $GEN ($GEN_ARGS)"
    rm -rf "$GEN" "$GEN.ok" "$GEN.tmp"
    t0=$(now)
    # shellcheck disable=SC2086
    "$BIN" $GEN_ARGS "$GEN.tmp" >&2 || { rc=$?; log "edges=$E: gen failed (exit $rc)"; rm -rf "$GEN.tmp"; exit $rc; }
    mv "$GEN.tmp" "$GEN" && printf '%s\n' "$MARK" > "$GEN.ok" || exit 1
    log "edges=$E: generated in $(python3 -c "print(round($(now) - $t0, 1))") s"
  fi
  FILES=()
  for f in "${INPUTS[@]}"; do FILES+=("$GEN/$f"); done
  for f in "$GEN"/*; do  # anything else gen wrote that ingest may read (pin_pin.tsv, ...)
    case " ${INPUTS[*]} " in *" ${f##*/} "*) ;; *) [ -f "$f" ] && FILES+=("$f") ;; esac
  done
  INPUT_BYTES=$(stat -c %s "${FILES[@]}" | awk '{s += $1} END {printf "%.0f\n", s}')

  # 2. baseline: stream the same files once
  t0=$(now)
  cat "${FILES[@]}" > /dev/null || exit 1
  t1=$(now)
  READ_S=$(python3 -c "print($t1 - $t0)")
  log "edges=$E: read $INPUT_BYTES bytes in $(python3 -c "print(round($READ_S, 3))") s"

  # 3. ingest + graph
  WORK=$OUT/work-$E
  LOGF=$OUT/ingest_graph-$E.log
  rm -rf "$WORK"; mkdir -p "$WORK" || exit 1
  printf '[input]\ndir = %s\n[pipeline]\nwork_dir = %s\n' "$GEN" "$WORK/work" > "$WORK/bench.ini"
  RUN=("$BIN" run --config "$WORK/bench.ini" --date "$DATE" --to graph --force)
  log "edges=$E: running ingest+graph on $RANKS ranks (log $LOGF)"
  t0=$(now)
  if [ -n "$TIME" ]; then
    # shellcheck disable=SC2016
    mpirun --oversubscribe -np "$RANKS" bash -c \
      'exec "$0" -f %M -o "$1/rss.$OMPI_COMM_WORLD_RANK" "${@:2}"' "$TIME" "$WORK" "${RUN[@]}" \
      > "$LOGF" 2>&1
  else
    mpirun --oversubscribe -np "$RANKS" "${RUN[@]}" > "$LOGF" 2>&1
  fi
  rc=$?
  t1=$(now)
  if [ $rc -ne 0 ]; then
    log "edges=$E: pipeline failed (exit $rc); last lines of $LOGF:"
    tail -n 25 "$LOGF" >&2
    log "edges=$E: work dir kept in $WORK"
    status=$rc
    continue
  fi
  grep -h 'event=stage_done' "$LOGF" | grep 'rank=0' >&2

  # 4. results
  python3 - "$WORK" "$DATE" "$E" "$RANKS" "$READ_S" "$INPUT_BYTES" "$(python3 -c "print($t1 - $t0)")" \
            "$GIT_REV" "$VERSION" <<'PY' || { status=1; log "edges=$E: could not read results in $WORK"; continue; }
import json, os, sys
work, date, edges, ranks, read_s, input_bytes, mpirun_s, git_rev, version = sys.argv[1:]
edges, ranks, input_bytes = int(edges), int(ranks), int(input_bytes)
read_s, mpirun_s = float(read_s), float(mpirun_s)

def success(stage):
    with open(os.path.join(work, "work", date, stage, "_SUCCESS.json")) as f:
        return json.load(f)

ing, gr = success("ingest"), success("graph")
ingest_s, graph_s = max(ing["wall_s"]), max(gr["wall_s"])
total_s = ingest_s + graph_s
rss = []
for r in range(ranks):
    try:
        with open(os.path.join(work, "rss.%d" % r)) as f:
            lines = [l.strip() for l in f if l.strip()]
        rss.append(round(int(lines[-1]) / 1024.0, 1))
    except (OSError, ValueError, IndexError):
        rss.append(None)
stats = gr.get("stats", {})
r3 = lambda x: round(x, 3)
print(json.dumps({
    "bench": "ingest_graph", "edges": edges, "ranks": ranks,
    "ingest_s": r3(ingest_s), "graph_s": r3(graph_s), "total_s": r3(total_s),
    "read_s": r3(read_s), "ratio_total_to_read": round(total_s / read_s, 2) if read_s > 0 else None,
    "input_bytes": input_bytes, "edges_per_s": round(edges / total_s) if total_s > 0 else None,
    "peak_rss_mb": rss,
    "bytes_per_edge": stats.get("bytes_per_edge"), "graph_bytes": stats.get("graph_bytes", gr["counts"].get("graph_bytes")),
    "mpirun_s": r3(mpirun_s),
    "ingest_wall_s": [r3(x) for x in ing["wall_s"]], "graph_wall_s": [r3(x) for x in gr["wall_s"]],
    "ingest_counts": ing["counts"], "graph_counts": gr["counts"],
    "version": version, "git_rev": git_rev,
}, separators=(",", ":")))
PY
  if [ $KEEP = 1 ]; then log "edges=$E: work dir kept in $WORK"; else rm -rf "$WORK"; fi
done
exit $status
