#!/usr/bin/env bash
# mpi_fail: an error on one rank stops every rank with the right exit code and
# a message naming the rank; a stuck rank turns into exit 4 at the collective
# timeout instead of a hang. No marker is written in either case.
. "$(dirname "$0")/lib.sh" "$@"
D=2026-11-21
IN=$E2E_TMP/in
W=$E2E_TMP/w
sp gen --pins 800 --boards 100 --edges 8000 --users 50 --events 400 --seed 9 "$IN" 2>/dev/null || fail "gen"
C=$E2E_TMP/c.ini
write_config "$C" "$IN" "$W"

t_one_rank_error() {
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D --to ingest
    printf '\x55' | dd of="$W/$D/ingest/part-00001-of-00002.bin" bs=1 seek=300 conv=notrunc status=none
    expect_exit 3 mpi 2 "$SAGEPIPE" job graph --config "$C" --date $D
    grep -q 'rank=0 .*event=error exit_code=3 message="rank 1: .*part-00001-of-00002.bin' "$E2E_ERR" ||
        fail "rank 0 should report rank 1's error"
    [ ! -e "$W/$D/graph/_SUCCESS.json" ] || fail "marker written"
}
check "error on rank 1 of 2 stops both with exit 3" t_one_rank_error

t_four_ranks() {
    expect_exit 0 mpi 4 "$SAGEPIPE" run --config "$C" --date $D --to ingest --set pipeline.work_dir="$W/4"
    printf '\x55' | dd of="$W/4/$D/ingest/part-00002-of-00004.bin" bs=1 seek=300 conv=notrunc status=none
    expect_exit 3 mpi 4 "$SAGEPIPE" job graph --config "$C" --date $D --set pipeline.work_dir="$W/4"
    grep -q 'message="rank 2: ' "$E2E_ERR" || fail "message should name rank 2"
}
check "error on rank 2 of 4 stops all with exit 3" t_four_ranks

t_stall() {
    local t0=$SECONDS
    expect_exit 4 env SAGEPIPE_TEST_STALL=graph:1:30 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        mpirun --oversubscribe -np 2 "$SAGEPIPE" job graph --config "$C" --date $D --force \
        --set pipeline.collective_timeout_s=3
    [ $((SECONDS - t0)) -lt 25 ] || fail "took $((SECONDS - t0)) s: the timeout did not fire"
    grep -q 'event=abort exit_code=4 cause="rank 0 waited 3 s' "$E2E_ERR" || fail "abort message missing"
    [ ! -e "$W/$D/graph/_SUCCESS.json" ] || fail "marker written"
}
check "a stuck rank aborts the job with exit 4 (no hang)" t_stall

t_config_all_ranks() {
    expect_exit 2 mpi 2 "$SAGEPIPE" run --config "$C" --date $D --set graph.nope=1
    grep -q "unknown key 'nope'" "$E2E_ERR" || fail "config error message"
    expect_exit 2 mpi 2 "$SAGEPIPE" run --config "$C" --date 2026-02-30
    grep -q "no such day" "$E2E_ERR" || fail "date error message"
}
check "config and date errors exit 2 on every rank" t_config_all_ranks
finish
