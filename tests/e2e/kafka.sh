#!/usr/bin/env bash
# tests/e2e/kafka.sh BIN — ingest with input.events = kafka against a real
# Kafka-protocol broker on loopback (librdkafka's mock cluster, started here by
# the mock_broker helper): the date's window per partition, early/late events
# and malformed messages as counted rejects at partition:offset, the stop at
# the first message past the window, identical reruns, 2 ranks = 1 rank,
# offsets committed only with the marker, and exit 4 when no broker answers.
# Skips (77) only when the helper was not built.
set -u
. "$(dirname "$0")/lib.sh" "$@"

MOCK=${SP_KAFKA_MOCK:-$(dirname "$SAGEPIPE")/tests/mock_broker}
[ -x "$MOCK" ] || { echo "skipped: Kafka helper $MOCK was not built (needs librdkafka/rdkafka_mock.h)"; exit 77; }

DATE=2025-11-22
DAY_MS=1763769600000 # 2025-11-22T00:00:00Z
END_MS=$((DAY_MS + 86400000))

# ---------------------------------------------------------------- the broker
# It lives as long as fd 9 (its stdin) is open: until this script exits.
mkfifo "$E2E_TMP/broker.in"
"$MOCK" serve day:4 edge:2 >"$E2E_TMP/broker.out" 2>"$E2E_TMP/broker.err" <"$E2E_TMP/broker.in" &
exec 9>"$E2E_TMP/broker.in"
for _ in $(seq 100); do [ -s "$E2E_TMP/broker.out" ] && break; sleep 0.05; done
BROKERS=$(head -n 1 "$E2E_TMP/broker.out")
[ -n "$BROKERS" ] || { echo "mock broker did not start: $(cat "$E2E_TMP/broker.err")" >&2; exit 1; }

# ---------------------------------------------------------------- the day's messages
# Topic "day", 4 partitions. Per partition p, in offset order:
#   offsets 0-1    two messages of the previous day (never read: before the start offset)
#   offsets 2-26   25 regular events inside the window (ids as numbers, some as strings, surface sometimes)
#   then specials  p0: an early and a late event (ts_ms outside the day)       -> outside_window
#                  p1: bad JSON, a message without "action", action "buy"     -> parse_error x2, unknown_action
#                  p2: a copy of p0's first event, then user/pin as strings   -> duplicate, accepted
#                  p3: pin_id -3                                              -> bad_id
#   then the stopper: a message timestamped at 24:00 (ends the partition's window),
#   then one more in-window event (pin 999999) that must not be read.
NREG=25
SPECIALS=(2 3 2 1)
gen_day() {
    python3 - "$DAY_MS" "$END_MS" "$NREG" <<'EOF'
import json, sys
day, end, nreg = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
acts = ["save", "click", "closeup", "hide"]
def ev(u, pin, a, ts, surface=None, strings=False):
    d = {"user_id": str(u) if strings else u, "pin_id": str(pin) if strings else pin, "action": a, "ts_ms": ts}
    if surface is not None: d["surface"] = surface
    return json.dumps(d)
def out(p, ts, key, value): print("%d\t%d\t%s\t%s" % (p, ts, key, value))
for p in range(4):
    for k in range(2):
        ts = day - 1000 * (2 - k)
        out(p, ts, 1, ev(1, 90000 + 10 * p + k, "save", ts))
    for i in range(nreg):
        ts, u = day + 1000 * i + p, i % 7 + 1
        out(p, ts, u, ev(u, 100 * p + i, acts[i % 4], ts, "homefeed" if i % 3 else None, strings=(i % 5 == 4)))
    t = day + 60000
    if p == 0:
        out(p, t, 1, ev(1, 5000, "save", day - 5))
        out(p, t, 1, ev(1, 5001, "save", end + 5))
    elif p == 1:
        out(p, t, 1, '{"user_id": 1, "pin_id": ')
        out(p, t, 1, '{"user_id": 1, "pin_id": 5002, "ts_ms": %d}' % (day + 7))
        out(p, t, 1, ev(1, 5003, "buy", day + 8))
    elif p == 2:
        out(p, t, 1, ev(1, 0, "save", day, "homefeed"))   # p0's first regular event again
        out(p, t, 42, '{"user_id": "42", "pin_id": "5004", "action": "click", "ts_ms": %d, "surface": null}' % (day + 9))
    else:
        out(p, t, 1, '{"user_id": 1, "pin_id": -3, "action": "save", "ts_ms": %d}' % (day + 10))
    out(p, end, 1, ev(1, 888888, "save", end))            # the stopper
    out(p, day + 500, 1, ev(1, 999999, "save", day + 500)) # after the stopper: not read
EOF
}
gen_day | "$MOCK" produce "$BROKERS" day || { echo "cannot produce to the mock broker" >&2; exit 1; }

# Topic "edge", 2 partitions: p0 has only earlier messages, p1 only later ones.
printf '0\t%s\t1\t{"user_id":1,"pin_id":1,"action":"save","ts_ms":%s}\n' $((DAY_MS - 1)) $((DAY_MS - 1)) \
    $((END_MS)) $((END_MS)) | sed '2s/^0/1/' | "$MOCK" produce "$BROKERS" edge ||
    { echo "cannot produce to the mock broker" >&2; exit 1; }

# ---------------------------------------------------------------- helpers
IN=$E2E_TMP/in
mkdir -p "$IN"
awk 'BEGIN { for (i = 1; i <= 200; i++) printf "%d\t%d\n", i, i % 13 + 1 }' >"$IN/pin_board.tsv"
printf 'this events.tsv must not be read\n' >"$IN/events.tsv"

# kingest DIR NP [--set ...]: ingest of the day from Kafka into DIR/work (NP 0 = no mpirun)
kingest() {
    local dir=$1 np=$2
    shift 2
    mkdir -p "$dir"
    write_config "$dir/c.ini" "$IN" "$dir/work"
    printf '[kafka]\nbrokers = %s\ntopic = day\ngroup = g-default\ntimeout_ms = 3000\nretries = 2\n' "$BROKERS" >>"$dir/c.ini"
    sed -i 's/^\[input\]$/[input]\nevents = kafka\nmax_reject_fraction = 0.1/' "$dir/c.ini"
    if [ "$np" = 0 ]; then
        sp job ingest --config "$dir/c.ini" --date "$DATE" "$@"
    else
        mpi "$np" "$SAGEPIPE" job ingest --config "$dir/c.ini" --date "$DATE" "$@"
    fi
}
marker() { echo "$1/work/$DATE/ingest/_SUCCESS.json"; }
count() { json_get "$(marker "$1")" "counts.$2"; }
expect_count() {
    local got
    got=$(count "$1" "$2") || fail "no count $2"
    [ "$got" = "$3" ] || fail "count $2 = $got, want $3"
}
# "partition start end messages" per partition, from the marker's stats
spans_of() {
    python3 -c '
import json, sys
for s in json.load(open(sys.argv[1]))["stats"]["kafka"]["partitions"]:
    print(s["partition"], s["start"], s["end"], s["messages"])' "$(marker "$1")"
}
rejects_of() { grep -v '^#' "$1/work/$DATE/ingest/rejects.tsv" | cut -f1-3; }
# every event of every ingest part as "user pin ts action surface", sorted
events_of() {
    python3 - "$1/work/$DATE/ingest" <<'EOF'
import glob, struct, sys
rows = []
for path in glob.glob(sys.argv[1] + "/part-*.bin"):
    b = open(path, "rb").read()
    assert b[:8] == b"SPSTAGE1", path
    nsec, = struct.unpack_from("<I", b, 12)
    diroff, = struct.unpack_from("<Q", b, 32)
    for k in range(nsec):
        tag, size, _, cnt, off, _ = struct.unpack_from("<16sIIQQQ", b, diroff + 48 * k)
        if tag.rstrip(b"\0") == b"events":
            for i in range(cnt):
                u, p, ts, a, s = struct.unpack_from("<QQqBB", b, off + size * i)
                rows.append("%d %d %d %d %d" % (u, p, ts, a, s))
print("\n".join(sorted(rows)))
EOF
}
committed_of() { "$MOCK" committed "$BROKERS" "$1" "$2"; }

ONE=$E2E_TMP/one
NREGS=$((4 * NREG))
NSPEC=$((2 + 3 + 2 + 1))

# ---------------------------------------------------------------- checks
day_one() {
    expect_exit 0 kingest "$ONE" 0 --set kafka.group=g-one
    expect_count "$ONE" rows_events $((NREGS + NSPEC))
    expect_count "$ONE" events $((NREGS + 1)) # the regular ones and p2's string ids
    expect_count "$ONE" reject_outside_window 2
    expect_count "$ONE" reject_parse_error 2
    expect_count "$ONE" reject_unknown_action 1
    expect_count "$ONE" reject_duplicate 1
    expect_count "$ONE" reject_bad_id 1
    expect_count "$ONE" kafka_partitions 4
    expect_count "$ONE" edges 200
    local want got
    want=$(printf 'kafka:day\t%s\n' 0:27$'\t'outside_window 0:28$'\t'outside_window 1:27$'\t'parse_error \
        1:28$'\t'parse_error 1:29$'\t'unknown_action 2:27$'\t'duplicate 3:27$'\t'bad_id)
    got=$(rejects_of "$ONE")
    [ "$got" = "$want" ] || fail "rejects.tsv rows:
$got
want:
$want"
    grep -q 'not valid JSON' "$ONE/work/$DATE/ingest/rejects.tsv" || fail "no JSON detail in rejects.tsv"
    grep -q 'missing field action' "$ONE/work/$DATE/ingest/rejects.tsv" || fail "no missing-field detail"
    # the staging file holds every message that parsed: all but the two parse errors
    local staged=$ONE/work/$DATE/ingest/kafka-00000.tsv
    [ "$(wc -l <"$staged")" = $((NREGS + NSPEC - 2)) ] || fail "$staged has $(wc -l <"$staged") rows"
}
check "normal day: counts and rejects at partition:offset (events.tsv ignored)" day_one

window_stop() {
    local want p got
    # start after the 2 earlier messages; end at the stopper (25 regular + specials)
    want=$(for p in 0 1 2 3; do echo "$p 2 $((27 + SPECIALS[p])) $((25 + SPECIALS[p]))"; done)
    got=$(spans_of "$ONE")
    [ "$got" = "$want" ] || fail "spans (partition start end messages):
$got
want:
$want"
    events_of "$ONE" | grep -q ' 999999 ' && fail "the event after the stopper was read"
    events_of "$ONE" | grep -q ' 888888 ' && fail "the stopper itself was read"
    events_of "$ONE" | awk -v d="$DAY_MS" -v e="$END_MS" '$3 < d || $3 >= e { bad = 1 } END { exit bad }' ||
        fail "an event outside the day was kept"
    # the messages past the stopper do exist on the broker
    "$MOCK" dump "$BROKERS" day | grep -q '"pin_id": 999999' || fail "dump lacks the message after the stopper"
}
check "window: start at 00:00, stop at the first message at 24:00 per partition" window_stop

rerun_same() {
    local a=$E2E_TMP/rerun_a
    cp -r "$ONE/work" "$a"
    expect_exit 0 kingest "$ONE" 0 --set kafka.group=g-one
    grep -q 'event=stage_skip' "$E2E_ERR" || fail "a rerun without --force did not skip"
    expect_exit 0 kingest "$ONE" 0 --set kafka.group=g-one --force
    cmp "$a/$DATE/ingest/part-00000-of-00001.bin" "$ONE/work/$DATE/ingest/part-00000-of-00001.bin" ||
        fail "the ingest part differs after a rerun"
    cmp "$a/$DATE/ingest/rejects.tsv" "$ONE/work/$DATE/ingest/rejects.tsv" || fail "rejects.tsv differs"
    cmp "$a/$DATE/ingest/kafka-00000.tsv" "$ONE/work/$DATE/ingest/kafka-00000.tsv" || fail "the staging file differs"
    [ "$(json_get "$a/$DATE/ingest/_SUCCESS.json" output_digest)" = "$(json_get "$(marker "$ONE")" output_digest)" ] ||
        fail "output_digest differs"
}
check "rerun of the date (--force): identical part, rejects and staging (no loss, no duplicates)" rerun_same

two_ranks() {
    local two=$E2E_TMP/two
    expect_exit 0 kingest "$two" 2 --set kafka.group=g-two
    [ "$(events_of "$two")" = "$(events_of "$ONE")" ] || fail "events differ between 2 ranks and 1:
$(diff <(events_of "$ONE") <(events_of "$two") | head)"
    [ "$(rejects_of "$two")" = "$(rejects_of "$ONE")" ] || fail "rejects differ:
$(diff <(rejects_of "$ONE") <(rejects_of "$two"))"
    [ "$(spans_of "$two")" = "$(spans_of "$ONE")" ] || fail "spans differ"
    local k
    for k in rows_events events reject_duplicate reject_parse_error kafka_partitions; do
        [ "$(count "$two" $k)" = "$(count "$ONE" $k)" ] || fail "$k: $(count "$two" $k) vs $(count "$ONE" $k)"
    done
    [ -s "$two/work/$DATE/ingest/kafka-00000.tsv" ] && [ -s "$two/work/$DATE/ingest/kafka-00001.tsv" ] ||
        fail "each rank should stage its own partitions"
}
check "4 partitions over mpirun -np 2 = 1 rank (events, rejects, spans)" two_ranks

committed_after_marker() {
    local d=$E2E_TMP/commit want got
    # a failing ingest (validation) writes no marker and commits nothing
    expect_exit 3 kingest "$d" 0 --set kafka.group=g-commit --set input.max_reject_fraction=0.01
    [ ! -e "$(marker "$d")" ] || fail "marker written by a failed ingest"
    got=$(committed_of day g-commit)
    [ "$got" = $'0\t-1\n1\t-1\n2\t-1\n3\t-1' ] || fail "offsets committed without a marker:
$got"
    # a successful one commits each partition's end offset once the marker is there
    expect_exit 0 kingest "$d" 0 --set kafka.group=g-commit
    grep -q 'event=kafka_commit.*committed=4' "$E2E_ERR" || fail "no kafka_commit log line: $(grep kafka "$E2E_ERR")"
    want=$(spans_of "$d" | awk '{ printf "%s\t%s\n", $1, $3 }')
    got=$(committed_of day g-commit)
    [ "$got" = "$want" ] || fail "committed offsets:
$got
want (span ends):
$want"
    # the log shows the commit after the stage's marker was written (stage_done follows the hook)
    awk '/event=kafka_commit/ { c = NR } /event=stage_done/ { s = NR } END { exit !(c && s && c < s) }' "$E2E_ERR" ||
        fail "kafka_commit is not logged inside the stage"
}
check "offsets committed only with the marker (none after exit 3; span ends after success)" committed_after_marker

edge_partitions() {
    local d=$E2E_TMP/edge
    expect_exit 0 kingest "$d" 0 --set kafka.topic=edge --set kafka.group=g-edge
    expect_count "$d" rows_events 0
    expect_count "$d" events 0
    [ "$(spans_of "$d")" = $'0 1 1 0\n1 0 0 0' ] || fail "spans: $(spans_of "$d")"
}
check "partitions with only earlier / only later messages read nothing" edge_partitions

broker_down() {
    local d=$E2E_TMP/down port t0 t
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    t0=$(date +%s)
    expect_exit 4 kingest "$d" 0 --set kafka.brokers=127.0.0.1:$port --set kafka.retries=2 --set kafka.timeout_ms=500
    t=$(($(date +%s) - t0))
    [ "$t" -le 15 ] || fail "took $t s to give up"
    grep -q "127.0.0.1:$port" "$E2E_ERR" || fail "the error does not name the brokers: $(tail -n 2 "$E2E_ERR")"
    grep -q "after 3 attempts" "$E2E_ERR" || fail "the error does not say how often it tried: $(tail -n 1 "$E2E_ERR")"
    [ ! -e "$(marker "$d")" ] || fail "marker written"
}
check "broker unreachable -> exit 4 within bounded time, naming the brokers" broker_down

finish
