#!/usr/bin/env bash
# retention: pipeline.keep_days deletes <work_dir>/<X> and <export.dir>/<X> for
# dates X before (run date - keep_days) at the end of a successful `run`, never
# the date `latest` points to, a newer date, a locked date or a name that is no
# valid date; `job`, a failed run and keep_days = 0 delete nothing.
. "$(dirname "$0")/lib.sh" "$@"
D=2026-11-21
IN=$E2E_TMP/in
sp gen --pins 300 --boards 40 --edges 2000 --users 20 --events 100 --seed 5 "$IN" 2>/dev/null || fail "gen"

# A fresh work and export tree with fake dates; sets W, E, C.
setup() {
    local root=$E2E_TMP/$1
    W=$root/work E=$root/emb C=$root/c.ini
    local d
    for d in 2026-11-10 2026-11-15 2026-11-18 2026-11-19 2026-11-20 2026-11-22 2026-13-01 2026-11-1x scratch; do
        mkdir -p "$W/$d/ingest" && echo x >"$W/$d/ingest/f"
    done
    for d in 2026-11-10 2026-11-15 2026-11-19; do
        mkdir -p "$E/$d/items" && echo x >"$E/$d/items/s.mdb" && echo '{}' >"$E/$d/MANIFEST.json"
    done
    mkdir -p "$E/2026-11-01-old" "$E/.2026-11-02.tmp" "$E/.2026-11-15.tmp" "$E/.2026-11-19.tmp" "$E/.2026-11-0x.tmp"
    ln -s 2026-11-15 "$E/latest"
    ln -s "$E/2026-11-19" "$W/2026-11-11" # a symlink named as a date: never followed nor removed
    printf '[input]\ndir = %s\nwindow = all\n\n[pipeline]\nwork_dir = %s\n\n[export]\ndir = %s\n' \
        "$IN" "$W" "$E" >"$C"
}
# present DIR NAME...: each exists; absent DIR NAME...: none exists.
present() { local d=$1 n; shift; for n; do [ -e "$d/$n" ] || fail "$d/$n was deleted"; done; }
absent() { local d=$1 n; shift; for n; do [ ! -e "$d/$n" ] || fail "$d/$n was kept"; done; }

t_run() {
    setup run
    expect_exit 0 sp run --config "$C" --date $D --to ingest --set pipeline.keep_days=2
    # deletes before 2026-11-19
    absent "$W" 2026-11-10 2026-11-18
    present "$W" 2026-11-15 2026-11-19 2026-11-20 $D 2026-11-22 2026-13-01 2026-11-1x scratch 2026-11-11
    absent "$E" 2026-11-10 .2026-11-02.tmp # a killed export's staging directory of an old date
    present "$E" 2026-11-15 2026-11-19 latest 2026-11-01-old .2026-11-15.tmp .2026-11-19.tmp .2026-11-0x.tmp
    [ -e "$E/2026-11-19/items/s.mdb" ] || fail "the symlink's target was touched"
    [ -e "$W/$D/ingest/_SUCCESS.json" ] || fail "the run's own stage is gone"
    for p in "$W/2026-11-10" "$W/2026-11-18" "$E/2026-11-10" "$E/.2026-11-02.tmp"; do
        grep -q "event=retention_delete .*path=$p\$" "$E2E_ERR" || fail "no log line for deleting $p"
    done
    grep -q "event=retention_delete what=staging date=2026-11-02 " "$E2E_ERR" || fail "staging: $(grep retention "$E2E_ERR")"
    [ "$(grep -c event=retention_delete "$E2E_ERR")" = 4 ] || fail "expected 4 deletions: $(grep retention "$E2E_ERR")"
    grep -q "event=retention keep_days=2 deletes_before=2026-11-19 latest=2026-11-15 deleted=4" "$E2E_ERR" ||
        fail "summary line: $(grep retention "$E2E_ERR")"
}
check "run deletes dates before date - keep_days, keeps latest and non-dates" t_run

t_backfill() {
    setup backfill
    expect_exit 0 sp run --config "$C" --date 2026-11-19 --to ingest --set pipeline.keep_days=2
    absent "$W" 2026-11-10
    present "$W" 2026-11-11 2026-11-15 2026-11-18 2026-11-19 2026-11-20 2026-11-22
    absent "$E" 2026-11-10
    present "$E" 2026-11-15 2026-11-19
}
check "a backfill deletes only before its own date - keep_days" t_backfill

t_latest_forms() {
    # `latest` written by hand as "./DATE/" or an absolute path still protects its date (the text's last
    # component was taken as the date: "" for "./2026-11-15/", and that set was deleted)
    local form
    for form in ./2026-11-15/ ABS; do
        setup "latest_${form//[.\/]/_}"
        [ "$form" = ABS ] && form=$E/2026-11-15
        ln -sfn "$form" "$E/latest"
        expect_exit 0 sp run --config "$C" --date $D --to ingest --set pipeline.keep_days=2
        present "$E" 2026-11-15 latest
        present "$W" 2026-11-15
        absent "$E" 2026-11-10
        grep -q "event=retention keep_days=2 .* latest=2026-11-15 " "$E2E_ERR" || fail "$form: $(grep retention "$E2E_ERR")"
    done
}
check "latest written as ./DATE/ or an absolute path keeps its date" t_latest_forms

t_nothing() {
    setup none
    local before after
    before=$(cd "$E2E_TMP/none" && find . | sort)
    expect_exit 0 sp job ingest --config "$C" --date $D --set pipeline.keep_days=1
    expect_exit 0 sp run --config "$C" --date $D --to ingest --force # keep_days = 0 (default)
    expect_exit 3 sp run --config "$C" --date $D --to ingest --force --set pipeline.keep_days=1 \
        --set input.dir="$E2E_TMP/missing"
    grep -q event=retention_delete "$E2E_ERR" && fail "a failed run deleted something"
    after=$(cd "$E2E_TMP/none" && find . | sort | grep -v "^./work/$D")
    [ "$before" = "$after" ] || fail "something was deleted: $(diff <(echo "$before") <(echo "$after"))"
}
check "job, keep_days = 0 and a failed run delete nothing" t_nothing

t_locked_date() {
    setup locked
    flock -n "$W/2026-11-10/.lock" sleep 3 &
    local f=$!
    sleep 0.5
    expect_exit 0 sp run --config "$C" --date $D --to ingest --set pipeline.keep_days=2
    present "$W" 2026-11-10
    absent "$W" 2026-11-18
    grep -q "event=retention_error .*date=2026-11-10 .*locked by a running sagepipe" "$E2E_ERR" ||
        fail "no warning for the locked date: $(grep retention "$E2E_ERR")"
    wait $f
}
command -v flock >/dev/null && check "a date whose lock is held is kept, with a warning" t_locked_date
finish
