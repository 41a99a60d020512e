#!/usr/bin/env bash
# bench_rows_mpi on 2 ranks: owner-rank row updates against the replicated update
# (one JSON line per touched fraction; see bench/bench_rows_mpi.c).
#
#   bench/rows.sh BUILD_DIR [bench_rows_mpi options]
set -uo pipefail
BUILD=${1:?usage: bench/rows.sh BUILD_DIR [options]}
shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
exec mpirun --oversubscribe -np "${NP:-2}" "$BUILD/bench/bench_rows_mpi" "$@"
