#!/usr/bin/env bash
# faults: what a crash, a full disk and a corrupted stage file do (docs/OPERATIONS.md "Faults").
# SIGKILL of rank 1 of 2 inside train and inside export: the job exits non-zero
# (no hang), leaves no marker, publishes nothing; the same command rerun gives
# the shards of an uninterrupted run. A full export dir (tmpfs, when mount is
# allowed) and RLIMIT_FSIZE: exit 4 naming the file, nothing published, no
# temp files. A flipped byte in a walks part or the checkpoint: `job infer`
# exits 3 naming the file, `run` finds it and reruns the damaged stage.
. "$(dirname "$0")/lib.sh" "$@"
D=2026-11-21
D2=2026-11-22
IN=$E2E_TMP/in
W=$E2E_TMP/w
C=$E2E_TMP/c.ini
sp gen --pins 1200 --boards 200 --edges 10000 --users 100 --events 1000 --seed 5 "$IN" 2>/dev/null || fail "gen"
write_config "$C" "$IN" "$W"
SET=(--set walks.walks_per_source=20 --set train.epochs=2 --set train.batch=512 --set train.negatives=128
     --set sage.dim=16 --set export.nshards=3 --set export.users=boards --set input.window=all
     --set pipeline.collective_timeout_s=20)

# mpi2 ARGS: mpirun -np 2 as lib.sh's mpi, bounded by timeout (exit 124/137 = hung)
MPI2=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
      OMPI_MCA_rmaps_base_oversubscribe=1 mpirun --oversubscribe -np 2)
mpi2() {
    timeout -k 5 90 "${MPI2[@]}" "$@"
}

# shard_sums MANIFEST: every shard's xxh64, one line
shard_sums() {
    python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
print(" ".join(s["xxh64"] for e in sorted(m["entities"]) for s in m["entities"][e]["shards"]))' "$1"
}

# killed_run STALL ARGS...: runs mpirun -np 2 ARGS in the background with
# SAGEPIPE_TEST_STALL=STALL, SIGKILLs the stalled rank once it logs
# event=test_stall, and fails unless the job then exits non-zero within 60 s.
killed_run() {
    local stall=$1 pid rc=0 i t0=$SECONDS
    shift
    SAGEPIPE_TEST_STALL=$stall timeout -k 5 60 "${MPI2[@]}" "$@" >"$E2E_OUT" 2>"$E2E_ERR" &
    local job=$!
    for i in $(seq 600); do
        pid=$(sed -n 's/.*event=test_stall .*pid=\([0-9]*\).*/\1/p' "$E2E_ERR" | head -1)
        [ -n "$pid" ] && break
        kill -0 $job 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$pid" ] || { wait $job; tail -n 15 "$E2E_ERR" >&2; fail "no test_stall line for $stall"; }
    kill -KILL "$pid"
    wait $job || rc=$?
    [ "$rc" != 0 ] || fail "the job exited 0 after rank 1 was killed"
    # a killed rank makes mpirun exit 137 itself; 124 or a minute means the timeout stopped a hang
    [ "$rc" != 124 ] && [ $((SECONDS - t0)) -lt 55 ] || fail "mpirun hung after rank 1 was killed (rc $rc)"
    echo "killed pid $pid at $stall: job exit $rc after $((SECONDS - t0)) s"
}

t_reference() {
    expect_exit 0 mpi2 "$SAGEPIPE" run --config "$C" --date $D --to export "${SET[@]}" --set export.dir="$E2E_TMP/ref"
    shard_sums "$E2E_TMP/ref/$D/MANIFEST.json" >"$E2E_TMP/ref.sums"
}
check "reference: run to export on 2 ranks" t_reference

O=$E2E_TMP/out
t_kill_train() {
    [ -s "$E2E_TMP/ref.sums" ] || fail "no reference"
    killed_run train@epoch:1:60 "$SAGEPIPE" run --config "$C" --date $D --from train --force --to export \
        "${SET[@]}" --set export.dir="$O"
    [ -e "$W/$D/train/checkpoint.bin" ] || fail "the stall point should come after a checkpoint was written"
    [ ! -e "$W/$D/train/_SUCCESS.json" ] || fail "killed train left a marker"
    [ ! -e "$O/$D" ] && [ ! -e "$O/latest" ] || fail "something was published: $(ls -a "$O")"
    expect_exit 2 mpi2 "$SAGEPIPE" job infer --config "$C" --date $D "${SET[@]}"
    grep -q 'stage infer needs stage train' "$E2E_ERR" || fail "infer should refuse the unmarked checkpoint"
    # nor does the next date warm-start from it
    expect_exit 0 mpi2 "$SAGEPIPE" run --config "$C" --date $D2 --to train "${SET[@]}"
    ! grep -q 'event=warm_start ' "$E2E_ERR" || fail "the next date warm-started from the killed train's checkpoint"
    # the same command again, without the fault
    expect_exit 0 mpi2 "$SAGEPIPE" run --config "$C" --date $D --from train --force --to export "${SET[@]}" \
        --set export.dir="$O"
    [ "$(readlink "$O/latest")" = $D ] || fail "latest is not $D"
    expect_exit 0 mpi2 "$SAGEPIPE" job train --config "$C" --date $D2 "${SET[@]}"
    grep -q 'event=warm_start ' "$E2E_ERR" || fail "with $D's train complete, $D2 should warm-start from it"
    # the checkpoint of a completed train gone: a cold start, said in a warning (it was silent)
    mv "$W/$D/train/checkpoint.bin" "$E2E_TMP/ckpt.bin"
    expect_exit 0 mpi2 "$SAGEPIPE" job train --config "$C" --date $D2 --force "${SET[@]}"
    grep -q 'level=warn .*event=warm_start_missing' "$E2E_ERR" || fail "no warning for the missing checkpoint"
    mv "$E2E_TMP/ckpt.bin" "$W/$D/train/checkpoint.bin"
    [ "$(shard_sums "$O/$D/MANIFEST.json")" = "$(cat "$E2E_TMP/ref.sums")" ] ||
        fail "shards after the rerun differ from the uninterrupted run"
}
check "SIGKILL of rank 1 in train: exit != 0, no marker, nothing published; rerun = uninterrupted" t_kill_train

t_kill_export() {
    [ "$(readlink "$O/latest")" = $D ] || fail "needs the previous check"
    cp "$O/$D/MANIFEST.json" "$E2E_TMP/m_before.json"
    killed_run export@written:1:60 "$SAGEPIPE" job export --config "$C" --date $D --force "${SET[@]}" \
        --set export.dir="$O"
    [ ! -e "$W/$D/export/_SUCCESS.json" ] || fail "killed export left a marker"
    [ "$(readlink "$O/latest")" = $D ] || fail "latest moved"
    cmp -s "$O/$D/MANIFEST.json" "$E2E_TMP/m_before.json" || fail "the published manifest changed"
    [ -z "$(find "$O/$D" -name '*.tmp*')" ] || fail "temp files inside the published set: $(find "$O/$D" -name '*.tmp*')"
    expect_exit 0 sp verify --manifest "$O/$D/MANIFEST.json"
    expect_exit 0 mpi2 "$SAGEPIPE" job export --config "$C" --date $D "${SET[@]}" --set export.dir="$O"
    [ "$(shard_sums "$O/$D/MANIFEST.json")" = "$(cat "$E2E_TMP/ref.sums")" ] || fail "rerun shards differ"
    [ -z "$(find "$O" -name '*.tmp*')" ] || fail "leftovers after the rerun: $(find "$O" -name '*.tmp*')"
}
check "SIGKILL of rank 1 in export: exit != 0, published set and latest untouched; rerun = uninterrupted" t_kill_export

# disk_full DIR RUNNER: export (RUNNER sagepipe ...) into DIR fails with exit 4
# naming a file there and leaves DIR as it was
disk_full() {
    local dir=$1 runner=$2
    mkdir -p "$dir/$D"
    echo keep >"$dir/$D/old.txt"
    ln -sfn $D "$dir/latest"
    expect_exit 4 "$runner" "$SAGEPIPE" job export --config "$C" --date $D --force "${SET[@]}" --set export.dir="$dir"
    grep -q "event=error exit_code=4 .*$dir/" "$E2E_ERR" || { tail -5 "$E2E_ERR"; fail "no exit-4 message naming a file in $dir"; }
    grep 'event=error' "$E2E_ERR" | head -1
    [ ! -e "$W/$D/export/_SUCCESS.json" ] || fail "failed export left a marker"
    [ "$(readlink "$dir/latest")" = $D ] && [ "$(ls -A "$dir/$D")" = old.txt ] || fail "the published date changed"
    # (the exports' lock file stays, emptied)
    [ "$(ls -A "$dir" | grep -vx .export.lock)" = "$(printf '%s\n' $D latest)" ] || fail "leftovers in $dir: $(ls -A "$dir")"
}

# mpi2 sagepipe ARGS with RLIMIT_FSIZE = 24 KiB on each sagepipe process only
# (under the limit mpirun cannot create its PMIx store and hangs)
fsize_mpi() {
    mpi2 bash -c 'ulimit -f 24 && exec "$0" "$@"' "$@"
}
t_fsize() {
    disk_full "$E2E_TMP/fsize" fsize_mpi
}
check "RLIMIT_FSIZE during export: exit 4 (EFBIG, no SIGXFSZ), nothing published" t_fsize

t_tmpfs() {
    local m=$E2E_TMP/tmpfs
    mkdir -p "$m"
    if ! mount -t tmpfs -o size=64k tmpfs "$m" 2>/dev/null; then
        echo "skipped: mount -t tmpfs is not permitted here"
        return 0
    fi
    local rc=0
    (disk_full "$m" mpi2) || rc=$?
    umount "$m"
    return $rc
}
check "full tmpfs (ENOSPC) during export: exit 4, nothing published" t_tmpfs

# flip FILE: xor one byte in the middle
flip() {
    python3 -c '
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); i = len(b) // 2; b[i] ^= 0x5a
open(p, "wb").write(b)' "$1"
}

t_corrupt() {
    local f=$W/$D/walks/part-00001-of-00002.bin ck=$W/$D/train/checkpoint.bin
    [ -e "$f" ] || fail "no $f"
    cp "$f" "$E2E_TMP/walks1.bin"
    cp "$ck" "$E2E_TMP/ckpt.bin"
    flip "$f"
    expect_exit 3 mpi2 "$SAGEPIPE" job infer --config "$C" --date $D --force "${SET[@]}"
    grep -q "event=error exit_code=3 .*walks/part-00001-of-00002.bin" "$E2E_ERR" || fail "no exit-3 message naming $f"
    expect_exit 0 mpi2 "$SAGEPIPE" run --config "$C" --date $D --to infer "${SET[@]}"
    grep -q "stage=walks .*event=output_mismatch" "$E2E_ERR" || fail "the damaged walks part was not reported"
    grep -q '^walks  *ran' "$E2E_ERR" || fail "walks was not rerun"
    grep -q '^graph  *skipped' "$E2E_ERR" || fail "graph should have been skipped"
    cmp -s "$f" "$E2E_TMP/walks1.bin" || fail "the rerun wrote a different walks part"

    flip "$ck"
    expect_exit 3 mpi2 "$SAGEPIPE" job infer --config "$C" --date $D --force "${SET[@]}"
    grep -q "event=error exit_code=3 .*train/checkpoint.bin" "$E2E_ERR" || fail "no exit-3 message naming $ck"
    expect_exit 0 mpi2 "$SAGEPIPE" run --config "$C" --date $D --to export "${SET[@]}" --set export.dir="$O"
    grep -q '^train  *ran' "$E2E_ERR" || fail "train was not rerun"
    grep -q '^walks  *skipped' "$E2E_ERR" || fail "walks should have been skipped"
    cmp -s "$ck" "$E2E_TMP/ckpt.bin" || fail "the rerun wrote a different checkpoint"
    [ "$(shard_sums "$O/$D/MANIFEST.json")" = "$(cat "$E2E_TMP/ref.sums")" ] || fail "shards differ"
}
check "a flipped byte in a walks part / the checkpoint: job infer exits 3 naming it, run reruns that stage" t_corrupt
finish
