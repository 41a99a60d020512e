#!/usr/bin/env bash
# bench_dist_mpi on 2 ranks: the pipeline's float all-reduce against a blocking MPI_Allreduce
# (one JSON line per buffer size; see bench/bench_dist_mpi.c).
#
#   bench/dist.sh BUILD_DIR [bench_dist_mpi options]
set -uo pipefail
BUILD=${1:?usage: bench/dist.sh BUILD_DIR [options]}
shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
exec mpirun --oversubscribe -np "${NP:-2}" "$BUILD/bench/bench_dist_mpi" "$@"
