#!/usr/bin/env bash
# make demo: generates the bundled sample (deterministic, ~50k edges) unless
# present, runs the whole DAG on NP MPI ranks and says where things are.
set -uo pipefail
BIN=${1:-build/sagepipe}
NP=${2:-2}
DATE=2026-11-21
IN=out/demo/input
if [ ! -s "$IN/pin_board.tsv" ]; then
  "$BIN" gen --pins 5000 --boards 800 --edges 50000 --users 1000 --events 20000 --seed 42 --date $DATE "$IN" || exit $?
fi
mpirun --oversubscribe -np "$NP" "$BIN" run --config configs/demo.ini --date $DATE
rc=$?
echo
echo "demo: input in $IN, stage outputs in out/demo/work/$DATE/<stage>/ (each with _SUCCESS.json)"
if [ -f out/demo/embeddings/$DATE/MANIFEST.json ]; then
  echo "demo: shards in out/demo/embeddings/$DATE/ (MANIFEST.json: items = pins and boards, users)"
  echo "demo: try  $BIN get --manifest out/demo/embeddings/$DATE/MANIFEST.json u1 p1"
else
  echo "demo: no shards: the run failed (exit $rc), see the log above"
fi
exit $rc
