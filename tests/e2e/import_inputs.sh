#!/usr/bin/env bash
# tests/e2e/import_inputs.sh BIN — inputs named on the command line (import) or in the config (eval.test)
# that are not regular files: a FIFO used to block forever, a directory was exit 4 "read error after
# line 0". Both are now exit 3 naming the file, at once, like ingest's inputs (OPERATIONS.md "Rejected
# input") and like a missing file. Prints one line per check, then "N passed, M failed".
set -u
. "$(dirname "$0")/lib.sh" "$@"
SRC=${SP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
D=2026-11-21

# expect_not_regular KIND PATH CMD...: CMD exits 3 within 60 s, naming PATH as not a regular file (KIND)
expect_not_regular() {
    local kind=$1 path=$2
    shift 2
    expect_exit 3 timeout 60 "$@"
    grep -qF "$path: not a regular file ($kind)" "$E2E_ERR" || fail "stderr: $(tail -n 3 "$E2E_ERR")"
}

import_lightgcn() {
    local d=$E2E_TMP/lg
    mkdir -p "$d"
    mkfifo "$d/train.txt"
    expect_not_regular "a FIFO" "$d/train.txt" "$SAGEPIPE" import lightgcn "$d" "$E2E_TMP/lg_out"
    rm "$d/train.txt"
    mkdir "$d/train.txt"
    expect_not_regular "a directory" "$d/train.txt" "$SAGEPIPE" import lightgcn "$d" "$E2E_TMP/lg_out"
    rmdir "$d/train.txt"
    expect_exit 3 sp import lightgcn "$d" "$E2E_TMP/lg_out" # missing: the same code
    [ ! -e "$E2E_TMP/lg_out/pin_board.tsv" ] || fail "pin_board.tsv written"
}
check "import lightgcn: train.txt a FIFO or a directory -> exit 3, no hang" import_lightgcn

import_s3rec() {
    local d=$E2E_TMP/s3
    mkdir -p "$d"
    mkfifo "$d/seq.txt"
    expect_not_regular "a FIFO" "$d/seq.txt" "$SAGEPIPE" import s3rec "$d/seq.txt" "$E2E_TMP/s3_out"
    printf '1 2 3 4\n2 3 4 5\n' >"$d/ok.txt"
    mkfifo "$d/attr.json"
    expect_not_regular "a FIFO" "$d/attr.json" "$SAGEPIPE" import s3rec "$d/ok.txt" "$E2E_TMP/s3_out" --attributes "$d/attr.json"
    expect_not_regular "a directory" "$d" "$SAGEPIPE" import s3rec "$d" "$E2E_TMP/s3_out"
}
check "import s3rec: a FIFO or a directory as SEQ_FILE or --attributes -> exit 3, no hang" import_s3rec

eval_test() {
    local in=$E2E_TMP/in args
    sp gen --pins 300 --boards 60 --edges 3000 --users 50 --events 4000 --date $D "$in" 2>/dev/null || fail "gen"
    mkfifo "$E2E_TMP/fifo"
    mkdir "$E2E_TMP/dir"
    args=(run --config "$SRC/configs/demo.ini" --date $D --set input.dir="$in" --set pipeline.work_dir="$E2E_TMP/w"
          --set export.dir="$E2E_TMP/e" --to eval)
    expect_not_regular "a FIFO" "$E2E_TMP/fifo" "$SAGEPIPE" "${args[@]}" --set eval.test="$E2E_TMP/fifo"
    grep -q "eval.test $E2E_TMP/fifo" "$E2E_ERR" || fail "the message does not say eval.test: $(tail -n 2 "$E2E_ERR")"
    expect_not_regular "a directory" "$E2E_TMP/dir" "$SAGEPIPE" "${args[@]}" --set eval.test="$E2E_TMP/dir"
}
check "eval.test a FIFO or a directory -> exit 3, no hang" eval_test

finish
