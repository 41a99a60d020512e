#!/usr/bin/env bash
# cli: --help/--version, usage errors (exit 2), stages whose upstream stages
# have not run answer exit 2 naming them, and the shipped configs and the
# README's config reference match the schema in the binary.
. "$(dirname "$0")/lib.sh" "$@"
SRC=${SP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}

t_help() {
    expect_exit 0 sp --help
    grep -q "sagepipe run" "$E2E_OUT" || fail "--help lacks run"
    expect_exit 0 sp --version
    grep -q "^sagepipe [0-9]" "$E2E_OUT" || fail "--version"
    for c in run job import gen config dump get verify nn eval; do expect_exit 0 sp $c --help; done
    expect_exit 2 sp
    expect_exit 2 sp frobnicate
    grep -q "unknown command 'frobnicate'" "$E2E_ERR" || fail "unknown command message"
}
check "help, version, unknown command" t_help

t_not_impl() {
    expect_exit 2 sp eval --manifest x   # built; needs --test
    grep -q "expected --manifest FILE --test FILE" "$E2E_ERR" || fail "eval without --test"
    write_config "$E2E_TMP/c.ini" "$E2E_TMP/in" "$E2E_TMP/w"
    # every stage is built; what is not (sequence.mode = joint) is tested in users.sh
    expect_exit 2 sp job users --config "$E2E_TMP/c.ini" --date 2026-11-21 # built; needs infer and ingest
    grep -q "stage users needs stage infer" "$E2E_ERR" || fail "job users without infer"
    expect_exit 2 sp job export --config "$E2E_TMP/c.ini" --date 2026-11-21 # built; needs infer
    grep -q "stage export needs stage infer" "$E2E_ERR" || fail "job export without infer"
    expect_exit 2 sp job nosuch --config "$E2E_TMP/c.ini" --date 2026-11-21
}
check "stages without their inputs exit 2" t_not_impl

t_usage() {
    expect_exit 2 sp run --date 2026-11-21
    grep -q "missing --config" "$E2E_ERR" || fail "missing --config"
    expect_exit 2 sp run --config x.ini
    grep -q "missing --date" "$E2E_ERR" || fail "missing --date"
    expect_exit 2 sp run --config x.ini --date 2026-11-21 --bogus
    expect_exit 2 sp run --config /nonexistent.ini --date 2026-11-21
    grep -q "cannot open config /nonexistent.ini" "$E2E_ERR" || fail "missing config file"
    expect_exit 2 sp run --config x.ini --date 2026-11-21 --from graph --to ingest
    expect_exit 2 sp gen --pins 10 --boards 2 OUT
    expect_exit 2 sp gen --pins x --boards 2 --edges 3 OUT
    expect_exit 2 sp gen --pins 2 --boards 2 --edges 5 "$E2E_TMP/g" # more edges than pairs
    expect_exit 2 sp import
    expect_exit 2 sp import lightgcn onlyone
    expect_exit 2 sp import lightgcn a b --validation 1.5
    expect_exit 2 sp import lightgcn a b --validation x
    expect_exit 2 sp import lightgcn a b --validation 0.2 --validation-order first
    expect_exit 2 sp import lightgcn a b --validation-order last
    expect_exit 2 sp import s3rec a b --holdout -1
    expect_exit 3 sp import lightgcn /nonexistent "$E2E_TMP/imp"
    printf '[input]\ndir = /in\n[pipeline]\nwork_dir = /w\n[graph]\nprune_cap = 0\n' > "$E2E_TMP/bad.ini"
    expect_exit 2 sp run --config "$E2E_TMP/bad.ini" --date 2026-11-21
    grep -q "bad.ini:6: graph.prune_cap = 0: out of range" "$E2E_ERR" || fail "config error should name file:line and key"
    expect_exit 2 sp dump graph --config "$E2E_TMP/bad.ini" --date 2026-11-21 --from walks
    grep -q "not of dump" "$E2E_ERR" || fail "dump --from was ignored"
    expect_exit 2 sp verify --manifest "$E2E_TMP"
    grep -q "not a manifest file (a directory)" "$E2E_ERR" || fail "verify on a directory: $(cat "$E2E_ERR")"
    expect_exit 2 sp get --manifest "$E2E_TMP" p1
    # every {date} of input.dir is replaced
    write_config "$E2E_TMP/d.ini" "$E2E_TMP/in/{date}/x/{date}" "$E2E_TMP/wd"
    expect_exit 3 sp job ingest --config "$E2E_TMP/d.ini" --date 2026-11-21
    grep -q "input.dir $E2E_TMP/in/2026-11-21/x/2026-11-21: No such file or directory" "$E2E_ERR" ||
        fail "two {date}: $(cat "$E2E_ERR")"
    # an input.dir that is a file is named as such (it read "pin_board.tsv is missing")
    : >"$E2E_TMP/afile"
    write_config "$E2E_TMP/f.ini" "$E2E_TMP/afile" "$E2E_TMP/wf"
    expect_exit 3 sp job ingest --config "$E2E_TMP/f.ini" --date 2026-11-21
    grep -q "input.dir $E2E_TMP/afile is not a directory" "$E2E_ERR" || fail "input.dir a file: $(cat "$E2E_ERR")"
    # a reader command's option with no value says so (it read "unexpected argument -k")
    expect_exit 2 sp nn --manifest "$E2E_TMP/m.json" --id p1 -k
    grep -q "a value is missing after -k" "$E2E_ERR" || fail "nn -k without a value: $(cat "$E2E_ERR")"
    expect_exit 2 sp eval --manifest "$E2E_TMP/m.json" --test
    grep -q "a value is missing after --test" "$E2E_ERR" || fail "eval --test without a value: $(cat "$E2E_ERR")"
    expect_exit 2 sp eval --manifest "$E2E_TMP/m.json" --tset t
    grep -q "unexpected argument --tset" "$E2E_ERR" || fail "eval with an unknown option: $(cat "$E2E_ERR")"
    # export.dir the work dir itself (the export's swap deleted the date's work directory), or a file: exit 2
    # before any stage runs
    expect_exit 2 sp job ingest --config "$E2E_TMP/f.ini" --date 2026-11-21 --set export.dir="$E2E_TMP/wf/./"
    grep -q "export.dir and pipeline.work_dir are the same directory" "$E2E_ERR" || fail "same dir: $(cat "$E2E_ERR")"
    expect_exit 2 sp job ingest --config "$E2E_TMP/f.ini" --date 2026-11-21 --set export.dir="$E2E_TMP/afile"
    grep -q "export.dir $E2E_TMP/afile is not a directory" "$E2E_ERR" || fail "export.dir a file: $(cat "$E2E_ERR")"
    # messages of this session's review: a missing value, an unknown dump kind, dates
    expect_exit 2 sp config show --config
    grep -q "a value is missing after '--config'" "$E2E_ERR" || fail "config show --config: $(cat "$E2E_ERR")"
    expect_exit 2 sp dump foo
    grep -q "unknown kind 'foo'" "$E2E_ERR" || fail "dump foo: $(cat "$E2E_ERR")"
    expect_exit 2 sp job ingest --config "$E2E_TMP/f.ini" --date 1969-12-31
    grep -q "before 1970-01-01" "$E2E_ERR" || fail "1969: $(cat "$E2E_ERR")"
    # an option given twice is an error, not "the last one wins"
    expect_exit 2 sp run --config "$E2E_TMP/f.ini" --date 2026-11-21 --date 2026-11-22 --to ingest
    grep -q -- "--date given twice" "$E2E_ERR" || fail "--date twice: $(cat "$E2E_ERR")"
    expect_exit 2 sp nn --manifest "$E2E_TMP/m.json" --id p1 -k 3 -k 4
    grep -q "given twice: -k" "$E2E_ERR" || fail "nn -k twice: $(cat "$E2E_ERR")"
}
check "usage and config errors exit 2 with a message" t_usage

t_configs_in_sync() {
    expect_exit 0 sp config defaults
    diff -u "$SRC/configs/default.ini" "$E2E_OUT" || fail "configs/default.ini differs from 'sagepipe config defaults'"
    expect_exit 0 sp config reference
    python3 - "$SRC/README.md" "$E2E_OUT" <<'PY' || fail "README config reference differs from 'sagepipe config reference'"
import sys
readme = open(sys.argv[1]).read()
ref = open(sys.argv[2]).read()
a = readme.index("<!-- config-reference:begin -->") + len("<!-- config-reference:begin -->")
b = readme.index("<!-- config-reference:end -->")
sys.exit(0 if readme[a:b].strip() == ref.strip() else 1)
PY
    for f in default demo gowalla beauty; do
        expect_exit 0 sp config show --config "$SRC/configs/$f.ini" --set input.dir=x --set pipeline.work_dir=y
        # what `config show` writes reads back the same
        cp "$E2E_OUT" "$E2E_TMP/$f.shown.ini"
        expect_exit 0 sp config show --config "$E2E_TMP/$f.shown.ini"
        cmp -s "$E2E_TMP/$f.shown.ini" "$E2E_OUT" || fail "configs/$f.ini: config show does not round-trip"
    done
}
check "shipped configs parse and match the schema" t_configs_in_sync

t_config_values() {
    # --set takes what a file can hold: trimmed as a file's value, and a value `config show` would write as
    # something else (a comment, a new line: an injected section) is refused naming the key
    expect_exit 0 sp config show --config "$SRC/configs/demo.ini" --set 'train.epochs= 4 ' --set 'input.dir= a;b '
    cp "$E2E_OUT" "$E2E_TMP/shown.ini"
    grep -qx 'epochs = 4' "$E2E_TMP/shown.ini" && grep -qx 'dir = a;b' "$E2E_TMP/shown.ini" || fail "--set not trimmed"
    expect_exit 0 sp config show --config "$E2E_TMP/shown.ini"
    cmp -s "$E2E_TMP/shown.ini" "$E2E_OUT" || fail "--set values do not round-trip"
    expect_exit 2 sp config show --config "$SRC/configs/demo.ini" --set $'input.dir=a\n[pipeline]\nwork_dir=evil'
    grep -q "input.dir: a newline" "$E2E_ERR" || fail "newline in --set: $(cat "$E2E_ERR")"
    expect_exit 2 sp config show --config "$SRC/configs/demo.ini" --set 'input.dir=x ;y'
    grep -q "input.dir: ';' at character 3" "$E2E_ERR" || fail "';' in --set: $(cat "$E2E_ERR")"
    expect_exit 2 sp config show --config "$SRC/configs/demo.ini" --set 'input.actions=save click hide hide'
    grep -q "input.actions: 'hide' is listed twice" "$E2E_ERR" || fail "a list word twice: $(cat "$E2E_ERR")"
    # a FIFO as --config is refused at once (it blocked in open)
    mkfifo "$E2E_TMP/fifo.ini"
    expect_exit 2 timeout 10 "$SAGEPIPE" config show --config "$E2E_TMP/fifo.ini"
    grep -q "fifo.ini: not a regular file" "$E2E_ERR" || fail "FIFO config: $(cat "$E2E_ERR")"
}
check "config values round-trip; --set refuses what a file cannot hold" t_config_values

t_gen_deterministic() {
    expect_exit 0 sp gen --pins 300 --boards 40 --edges 2000 --users 20 --events 100 --seed 3 "$E2E_TMP/g1"
    expect_exit 0 sp gen --pins 300 --boards 40 --edges 2000 --users 20 --events 100 --seed 3 "$E2E_TMP/g2"
    diff -r "$E2E_TMP/g1" "$E2E_TMP/g2" >/dev/null || fail "gen is not deterministic"
    expect_exit 0 sp gen --pins 300 --boards 40 --edges 2000 --seed 4 "$E2E_TMP/g3"
    ! cmp -s "$E2E_TMP/g1/pin_board.tsv" "$E2E_TMP/g3/pin_board.tsv" || fail "seed ignored"
}
check "gen is deterministic from --seed" t_gen_deterministic

t_closed_log() {
    # a log reader that goes away does not kill the run (SIGPIPE was exit 141 mid-stage)
    sp gen --pins 300 --boards 40 --edges 2000 --users 20 --events 100 --seed 3 "$E2E_TMP/pin" 2>/dev/null || fail gen
    write_config "$E2E_TMP/p.ini" "$E2E_TMP/pin" "$E2E_TMP/pw"
    "$SAGEPIPE" run --config "$E2E_TMP/p.ini" --date 2026-11-21 --to walks --set input.window=all 2>&1 | head -n 1 >/dev/null
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || fail "run with its log piped into head -n 1: exit $rc"
    [ -f "$E2E_TMP/pw/2026-11-21/walks/_SUCCESS.json" ] || fail "the run did not finish its stages"
}
check "a closed log pipe does not stop a run" t_closed_log
finish
