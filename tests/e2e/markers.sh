#!/usr/bin/env bash
# markers: _SUCCESS.json is written last and matches inputs+config; run skips
# up-to-date stages, --force reruns, changed inputs or config rerun what they
# affect, job STAGE refuses a missing or stale upstream, a failed stage leaves
# no marker, and a corrupted stage file is detected by its checksum.
. "$(dirname "$0")/lib.sh" "$@"
D=2026-11-21
IN=$E2E_TMP/in
W=$E2E_TMP/w
sp gen --pins 500 --boards 80 --edges 4000 --users 50 --events 500 --seed 5 "$IN" 2>/dev/null || fail "gen"
C=$E2E_TMP/c.ini
write_config "$C" "$IN" "$W"
M_IN=$W/$D/ingest/_SUCCESS.json
M_GR=$W/$D/graph/_SUCCESS.json

t_first() {
    expect_exit 0 sp run --config "$C" --date $D --to graph
    [ -f "$M_IN" ] && [ -f "$M_GR" ] || fail "markers missing"
    for k in stage date sagepipe_version config_digest input_digest ranks counts wall_s outputs output_digest finished_at; do
        json_get "$M_GR" $k >/dev/null || fail "marker lacks $k"
    done
    [ "$(json_get "$M_GR" stage)" = graph ] || fail "stage name"
    [ "$(json_get "$M_IN" outputs.0.file)" = part-00000-of-00001.bin ] || fail "outputs list"
    json_get "$M_GR" stats.pin_degree.p99 >/dev/null || fail "degree stats missing"
}
check "first run writes markers" t_first

t_skip() {
    local before; before=$(stat -c %Y.%N "$M_GR"; md5sum < "$M_GR")
    expect_exit 0 sp run --config "$C" --date $D --to graph
    grep -q 'stage=ingest event=stage_skip' "$E2E_ERR" || fail "ingest not skipped"
    grep -q 'stage=graph event=stage_skip' "$E2E_ERR" || fail "graph not skipped"
    [ "$before" = "$(stat -c %Y.%N "$M_GR"; md5sum < "$M_GR")" ] || fail "marker rewritten on skip"
}
check "rerun skips up-to-date stages" t_skip

t_force() {
    expect_exit 0 sp run --config "$C" --date $D --to graph --force
    grep -q 'stage=ingest event=stage_start reason=forced' "$E2E_ERR" || fail "ingest not forced"
    grep -q 'stage=graph event=stage_start' "$E2E_ERR" || fail "graph not forced"
}
check "--force reruns" t_force

t_config_change() { # a graph key reruns graph only
    expect_exit 0 sp run --config "$C" --date $D --to graph --set graph.prune_floor=5
    grep -q 'stage=ingest event=stage_skip' "$E2E_ERR" || fail "ingest should skip"
    grep -q 'stage=graph event=stage_start reason=.*config changed' "$E2E_ERR" || fail "graph should rerun: config changed"
    # speed-only keys change nothing
    expect_exit 0 sp run --config "$C" --date $D --to graph --set graph.prune_floor=5 --set pipeline.shuffle_buffer_mb=3
    grep -q 'stage=graph event=stage_skip' "$E2E_ERR" || fail "shuffle_buffer_mb must not invalidate"
    expect_exit 0 sp run --config "$C" --date $D --to graph
}
check "config change reruns the affected stage" t_config_change

t_input_change() { # touching an input reruns ingest; identical outputs let graph skip
    touch -d '2001-01-01' "$IN/events.tsv"
    expect_exit 0 sp run --config "$C" --date $D --to graph
    grep -q 'stage=ingest event=stage_start reason=.*inputs changed' "$E2E_ERR" || fail "ingest should rerun"
    grep -q 'stage=graph event=stage_skip' "$E2E_ERR" || fail "graph should skip: ingest outputs are identical"
    echo "99999	12	2" >> "$IN/pin_board.tsv"
    expect_exit 0 sp run --config "$C" --date $D --to graph
    grep -q 'stage=graph event=stage_start reason=.*inputs changed' "$E2E_ERR" || fail "graph should rerun on a new edge"
}
check "input change reruns ingest, then graph only if ingest output changed" t_input_change

t_job_upstream() {
    local W2=$E2E_TMP/w2
    expect_exit 2 sp job graph --config "$C" --date $D --set pipeline.work_dir="$W2"
    grep -q "needs stage ingest" "$E2E_ERR" || fail "message should name the missing upstream"
    grep -q "sagepipe job ingest" "$E2E_ERR" || fail "message should say what to run"
    expect_exit 2 sp dump graph --config "$C" --date $D --set pipeline.work_dir="$W2"
    grep -q "stage graph of $D has not completed" "$E2E_ERR" || fail "dump should refuse an incomplete stage"
    expect_exit 0 sp job ingest --config "$C" --date $D --set pipeline.work_dir="$W2"
    expect_exit 0 sp job graph --config "$C" --date $D --set pipeline.work_dir="$W2"
    # stale upstream: ingest config differs from the marker
    expect_exit 2 sp job graph --config "$C" --date $D --set pipeline.work_dir="$W2" --set input.window=all --force
    grep -q "stage ingest of $D is out of date: config changed" "$E2E_ERR" || fail "stale upstream not reported"
    # another date is untouched by a job of this date
    [ ! -e "$W2/2026-11-20" ] || fail "another date was touched"
}
check "job STAGE refuses missing or stale upstream" t_job_upstream

t_failed_no_marker() {
    local IN3=$E2E_TMP/in3
    mkdir -p "$IN3"
    printf '1\t2\nbad\t3\n' > "$IN3/pin_board.tsv"
    expect_exit 3 sp job ingest --config "$C" --date $D --set input.dir="$IN3" --set pipeline.work_dir="$E2E_TMP/w3"
    [ ! -e "$E2E_TMP/w3/$D/ingest/_SUCCESS.json" ] || fail "failed stage left a marker"
    # a previously good marker is removed when the stage reruns and fails
    expect_exit 0 sp job ingest --config "$C" --date $D --set input.dir="$IN3" --set pipeline.work_dir="$E2E_TMP/w3" \
        --set input.max_reject_fraction=0.5
    [ -e "$E2E_TMP/w3/$D/ingest/_SUCCESS.json" ] || fail "marker missing after success"
    expect_exit 0 sp job graph --config "$C" --date $D --set input.dir="$IN3" --set pipeline.work_dir="$E2E_TMP/w3" \
        --set input.max_reject_fraction=0.5
    # dump need not repeat the run's --set
    expect_exit 0 sp dump graph --config "$C" --date $D --set input.dir="$IN3" --set pipeline.work_dir="$E2E_TMP/w3"
    grep -q "^b2	p1$" "$E2E_OUT" || fail "dump graph lacks the edge 1-2: $(head -3 "$E2E_OUT")"
    expect_exit 3 sp job ingest --config "$C" --date $D --set input.dir="$IN3" --set pipeline.work_dir="$E2E_TMP/w3" --force
    [ ! -e "$E2E_TMP/w3/$D/ingest/_SUCCESS.json" ] || fail "stale marker survived a failed rerun"
    expect_exit 2 sp job graph --config "$C" --date $D --set input.dir="$IN3" --set pipeline.work_dir="$E2E_TMP/w3"
    # the graph of the good run is still on disk; dump does not print it as current
    expect_exit 2 sp dump graph --config "$C" --date $D --set input.dir="$IN3" --set pipeline.work_dir="$E2E_TMP/w3"
    grep -q "dump graph: stage graph needs stage ingest" "$E2E_ERR" || fail "dump of a graph whose ingest failed: $(cat "$E2E_ERR")"
}
check "a failed stage leaves no marker" t_failed_no_marker

t_corrupt_part() {
    expect_exit 0 sp run --config "$C" --date $D --to graph --force
    local part=$W/$D/ingest/part-00000-of-00001.bin
    printf '\x55' | dd of="$part" bs=1 seek=300 conv=notrunc status=none
    expect_exit 3 sp job graph --config "$C" --date $D --force
    grep -q "part-00000-of-00001.bin" "$E2E_ERR" || fail "message should name the corrupt file"
    [ ! -e "$M_GR" ] || fail "graph marker after corrupt input"
    truncate -s 100 "$part"
    expect_exit 2 sp job graph --config "$C" --date $D  # resized output: upstream out of date
    grep -q "output file is missing or resized" "$E2E_ERR" || fail "resized part not noticed"
    expect_exit 0 sp run --config "$C" --date $D --to graph
}
check "corrupted stage files are detected" t_corrupt_part
finish
