#!/usr/bin/env bash
# The GPU checks of the CUDA backend, for a machine with an NVIDIA GPU (issue 7): the CUDA op test,
# bench_infer on the CPU and on the GPU, the PyTorch Geometric peer (bench/peer_pyg.py, when torch
# and torch_geometric are there), and Gowalla: ingest, graph and walks once, then train + infer with
# --device cpu and again with --device cuda (same seed and epochs), each followed by users (on the
# device users_device names, cpu by default), export and eval: quality and wall time of each stage,
# and the train stage's per-epoch recall (train/eval.tsv). SKIP_BENCH_CPU=1 and SKIP_PEER=1 leave
# out the CPU bench_infer and the peer; DEVICES="cuda" trains on the GPU alone; SEQ_EPOCHS (default
# 1) sets sequence.epochs.
#
#   tools/gpu_check.sh BIN_DIR OUT_DIR [TRAIN_EPOCHS]
#
# BIN_DIR holds sagepipe, test_cuda_ops, test_backend and bench_infer (a CUDA build); OUT_DIR gets
# the logs and a summary (summary.txt, also printed last). Gowalla comes from ../shared/data/gowalla
# or $SP_GOWALLA. Ranks: $NP (default 8) MPI ranks for the pipeline stages.
set -uo pipefail
if [ $# -lt 2 ]; then sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; fi
BIN=$(cd "$1" && pwd) || exit 2
OUT=$(mkdir -p "$2" && cd "$2" && pwd) || exit 2
EPOCHS=${3:-1}
NP=${NP:-8}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GOWALLA=${SP_GOWALLA:-$ROOT/../shared/data/gowalla}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
S=$OUT/summary.txt
: >"$S"
say() { echo "$*" | tee -a "$S"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

say "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
say "cpu: $(nproc) cores"

# 1. op tests
"$BIN/test_cuda_ops" >"$OUT/test_cuda_ops.log" 2>&1
say "test_cuda_ops: exit $? ($(tail -1 "$OUT/test_cuda_ops.log"))"
"$BIN/test_backend" >"$OUT/test_backend.log" 2>&1
say "test_backend: exit $? ($(tail -1 "$OUT/test_backend.log"))"

# 2. bench_infer, the same shapes on both backends (the CPU with every core as BLAS threads)
for dev in cuda cpu; do
  [ $dev = cpu ] && [ -n "${SKIP_BENCH_CPU:-}" ] && continue
  thr=1; [ $dev = cpu ] && thr=$(nproc)
  OPENBLAS_NUM_THREADS=$thr "$BIN/bench_infer" --device $dev --repeat ${REPEAT:-3} ${BENCH_ARGS:-} \
    >"$OUT/bench_infer_$dev.json" 2>"$OUT/bench_infer_$dev.err"
  say "bench_infer $dev (exit $?): $(tr '\n' ' ' <"$OUT/bench_infer_$dev.json")"
done

# 3. the peer: PyTorch Geometric on the same layer shapes
if [ -n "${SKIP_PEER:-}" ]; then
  say "peer_pyg: skipped (SKIP_PEER)"
elif python3 -c 'import torch, torch_geometric' 2>/dev/null && [ -f "$ROOT/bench/peer_pyg.py" ]; then
  python3 "$ROOT/bench/peer_pyg.py" layer ${PEER_ARGS:-} >"$OUT/peer_layer.json" 2>"$OUT/peer_layer.err"
  say "peer_pyg layer (exit $?): $(tr '\n' ' ' <"$OUT/peer_layer.json")"
else
  say "peer_pyg: skipped (no torch_geometric)"
fi

# 4. Gowalla: train on the CPU, then infer/export/eval on each device from the same checkpoint
if [ -f "$GOWALLA/train.txt" ]; then
  G=$OUT/gowalla
  rm -rf "$G" && mkdir -p "$G"
  cfg=$G/gowalla.ini
  sed -e "s|^dir = out/gowalla/input|dir = $G/input|" -e "s|^work_dir = out/gowalla/work|work_dir = $G/work|" \
      -e "s|^dir = out/gowalla/embeddings|dir = $G/emb|" -e "s|^test = .*|test = $GOWALLA/test.txt|" \
      "$ROOT/configs/gowalla.ini" >"$cfg"
  "$BIN/sagepipe" import lightgcn "$GOWALLA" "$G/input" >"$G/import.log" 2>&1
  run() { OPENBLAS_NUM_THREADS=1 mpirun -np "$NP" "$BIN/sagepipe" "$@" --config "$cfg" --date 2026-11-21 \
            --set train.epochs=$EPOCHS --set train.eval_every=${EVAL_EVERY:-0} \
            --set sequence.epochs=${SEQ_EPOCHS:-1}; }
  run run --to walks --device cpu >"$G/walks.log" 2>&1
  say "gowalla ingest..walks: exit $?"
  for dev in ${DEVICES:-cpu cuda}; do
    t0=$(date +%s.%N)
    run job train --force --device $dev >"$G/train_$dev.log" 2>&1
    rc=$?
    t=$(since "$t0")
    t1=$(date +%s.%N)
    run job infer --force --device $dev >"$G/infer_$dev.log" 2>&1
    ti=$(since "$t1")
    t2=$(date +%s.%N)
    run job users --force --device ${USERS_DEVICE:-cpu} >"$G/users_$dev.log" 2>&1
    ru=$?
    tu=$(since "$t2")
    for st in export eval; do run job $st --force --device cpu >>"$G/infer_$dev.log" 2>&1; done
    say "gowalla $dev: train exit $rc in $t s ($NP ranks, $EPOCHS epochs; $(grep -o 'train_end steps=[0-9]* seconds=[0-9.]*' "$G/train_$dev.log" | head -1));" \
        "infer $ti s; users (${USERS_DEVICE:-cpu}) exit $ru in $tu s;" \
        "$(python3 -c 'import json, sys; m = json.load(open(sys.argv[1]))["metrics"]
print(" ".join("%s=%.4f" % (k, m[k]) for k in ("recall@20", "ndcg@20", "users_recall@20", "users_ndcg@20")))' \
            "$G/work/2026-11-21/eval/report.json" 2>&1)"
    ev=$G/work/2026-11-21/train/eval.tsv
    [ -f "$ev" ] && say "$(sed 's/^/  train eval.tsv: /' "$ev")"
  done
else
  say "gowalla: skipped (no $GOWALLA/train.txt)"
fi
echo "---- summary"
cat "$S"
