#!/usr/bin/env bash
# lock: `run` and `job` take an exclusive lock per (work_dir, date). A second
# run of a locked date exits 4 on every rank naming the lock file and the
# holder's pid; a run of another date is not blocked, unless it runs a stage that reads the locked
# date's outputs (train, users, eval of a later date); the lock goes away with the process, also when it
# is killed.
. "$(dirname "$0")/lib.sh" "$@"
D=2026-11-21
D2=2026-11-22
IN=$E2E_TMP/in
W=$E2E_TMP/w
sp gen --pins 300 --boards 40 --edges 2000 --users 20 --events 100 --seed 3 "$IN" 2>/dev/null || fail "gen"
C=$E2E_TMP/c.ini
write_config "$C" "$IN" "$W"
printf 'window = all\n' >>"$C.tmp" # input.window = all: the same input serves every date
sed -i "/^\[input\]/r $C.tmp" "$C"

# Starts a run of $D that holds its lock for $1 seconds (stalled before ingest); sets HOLDER.
hold_lock() {
    SAGEPIPE_TEST_STALL=ingest:0:$1 OPENBLAS_NUM_THREADS=1 "$SAGEPIPE" run --config "$C" --date $D --to ingest \
        --force 2>"$E2E_TMP/holder.err" &
    HOLDER=$!
    for _ in $(seq 100); do
        grep -q test_stall "$E2E_TMP/holder.err" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "the holder did not reach its stall: $(cat "$E2E_TMP/holder.err")"
}

t_locked() {
    hold_lock 8
    expect_exit 4 sp run --config "$C" --date $D --to ingest
    grep -q "event=error exit_code=4 message=.*$W/$D/.lock is locked .*(pid $HOLDER on " "$E2E_ERR" ||
        fail "message should name $W/$D/.lock and pid $HOLDER: $(tail -n 3 "$E2E_ERR")"
    expect_exit 4 sp job graph --config "$C" --date $D
    grep -q "$W/$D/.lock is locked" "$E2E_ERR" || fail "job: lock message missing"
    # every rank exits 4 (mpirun reports a rank's non-zero exit)
    expect_exit 4 mpi 2 "$SAGEPIPE" run --config "$C" --date $D --to ingest
    grep -q "pid $HOLDER" "$E2E_ERR" || fail "2 ranks: holder pid missing"
    [ "$(grep -c 'event=error' "$E2E_ERR")" = 1 ] || fail "rank 0 alone should report the error"
    # another date runs meanwhile
    expect_exit 0 sp run --config "$C" --date $D2 --to ingest
    [ -e "$W/$D2/ingest/_SUCCESS.json" ] || fail "the other date did not run"
    # ... but not a stage that reads the running date's outputs (train's warm start, users, eval)
    expect_exit 4 sp job train --config "$C" --date $D2
    grep -q "the run or job of $D (pid $HOLDER on [^)]*) is still in progress, and $D2 reads its outputs" "$E2E_ERR" ||
        fail "job train of the next date: $(tail -n 2 "$E2E_ERR")"
    kill -0 "$HOLDER" 2>/dev/null || fail "the holder ended too early: the checks above did not overlap it"
    wait "$HOLDER" || fail "the holder failed: $(tail -n 3 "$E2E_TMP/holder.err")"
    # released at exit: the same date runs now
    expect_exit 0 sp run --config "$C" --date $D --to ingest
}
check "a locked date exits 4 naming the lock and pid; another date runs" t_locked

t_killed() {
    hold_lock 30
    kill -9 "$HOLDER"
    wait "$HOLDER" 2>/dev/null || true
    expect_exit 0 sp run --config "$C" --date $D --to ingest
    [ ! -s "$W/$D/.lock" ] || fail "a finished run should leave the lock file empty: $(cat "$W/$D/.lock")"
}
check "the lock of a killed run is released" t_killed

# Two runs of a date with different work dirs and the same export.dir: one export at a time (they shared the
# staging directory: one deleted the other's shards, or swapped in a half-written set without a manifest).
t_export_lock() {
    local E=$E2E_TMP/xe a
    for a in 1 2; do
        expect_exit 0 sp run --config "$C" --date $D --to users --set pipeline.work_dir="$E2E_TMP/xw$a" \
            --set export.dir="$E" --set train.epochs=1 --set sequence.epochs=1
    done
    SAGEPIPE_TEST_STALL=export@written:0:4 OPENBLAS_NUM_THREADS=1 "$SAGEPIPE" job export --config "$C" --date $D \
        --set pipeline.work_dir="$E2E_TMP/xw1" --set export.dir="$E" --set train.epochs=1 --set sequence.epochs=1 \
        2>"$E2E_TMP/xa.err" &
    a=$!
    for _ in $(seq 100); do grep -q test_stall "$E2E_TMP/xa.err" 2>/dev/null && break; sleep 0.1; done
    grep -q test_stall "$E2E_TMP/xa.err" || fail "the first export did not reach its stall: $(cat "$E2E_TMP/xa.err")"
    expect_exit 0 sp job export --config "$C" --date $D --set pipeline.work_dir="$E2E_TMP/xw2" --set export.dir="$E" \
        --set train.epochs=1 --set sequence.epochs=1 --set export.nshards=2
    grep -q "event=lock_wait path=$E/.export.lock holder=\"pid $a on " "$E2E_ERR" ||
        fail "the second export did not wait for the first: $(grep -e lock -e export_ "$E2E_ERR")"
    wait $a || fail "the first export failed: $(tail -n 3 "$E2E_TMP/xa.err")"
    # the second export ran after the first and its set (2 shards) is the one published, whole
    expect_exit 0 sp verify --manifest "$E/latest/MANIFEST.json"
    grep -q "^items .* shards=2 " "$E2E_OUT" || fail "the published set is not the second export's: $(cat "$E2E_OUT")"
    [ ! -e "$E/.$D.tmp" ] || fail "a staging directory was left"
}
check "exports into one export.dir take turns" t_export_lock

t_flock_shell() {
    # Any flock holder (here the flock(1) tool) blocks a run of the date.
    flock -n "$W/$D/.lock" sleep 4 &
    local f=$!
    sleep 0.5
    expect_exit 4 sp job ingest --config "$C" --date $D --force
    grep -q "$W/$D/.lock is locked .*(pid unknown)" "$E2E_ERR" || fail "lock message: $(tail -n 2 "$E2E_ERR")"
    wait $f
}
command -v flock >/dev/null && check "a flock(1) holder blocks the date" t_flock_shell
finish
