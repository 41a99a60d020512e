#!/usr/bin/env bash
# users: the users stage end to end. Day 1 builds every history and encodes
# every user (exported as the users entity); day 2, with the model and the
# item embeddings unchanged, encodes only the users active in its window and
# carries the others over; --full re-encodes everyone and gives the same
# vectors; re-running a date never appends its events twice; day 2 at 4
# ranks reads day 1's 2-rank histories; a skipped date takes the latest
# earlier histories with a warning; a damaged history part fails the stage
# (exit 3, naming it). The default sequence.mode = joint trains the user
# encoder in the train stage (its model file, one optimiser step per train
# step), the users stage starts from it, the next date warm-starts it from
# the date's final user model; sequence.mode = frozen trains it only in the
# users stage; sequence.average_epochs averages the last epochs' models;
# train.epochs = 0 on a first date (no model to keep) is refused.
. "$(dirname "$0")/lib.sh" "$@"
D1=2026-11-21
D2=2026-11-22
D4=2026-11-24
IN4=$E2E_TMP/in4
IN1=$E2E_TMP/in1
IN2=$E2E_TMP/in2
sp gen --pins 1500 --boards 250 --edges 15000 --users 200 --events 3000 --seed 11 --date $D1 "$IN1" 2>/dev/null || fail "gen"
cp -r "$IN1" "$IN2"
# day 2's window: new actions of every third user (a day later), plus one exact duplicate row
python3 - "$IN1/events.tsv" "$IN2/events.tsv" <<'PY' || fail "day 2 events"
import sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1]) if not l.startswith('#')]
out = [r[:3] + [str(int(r[3]) + 86400000)] + r[4:] for r in rows if int(r[0]) % 3 == 0]
out.append(out[0])
with open(sys.argv[2], 'w') as f:
    for r in out: f.write('\t'.join(r) + '\n')
PY
C=$E2E_TMP/c.ini
write_config "$C" "$IN1" "$E2E_TMP/w"
SET=(--set walks.walks_per_source=20 --set train.epochs=2 --set train.batch=512 --set train.negatives=128
     --set sage.dim=16 --set export.users=users --set export.nshards=2 --set export.dir="$E2E_TMP/emb"
     --set sequence.width=16 --set sequence.heads=2 --set sequence.layers=1 --set sequence.action_dim=4
     --set sequence.epochs=4 --set sequence.batch=64 --set sequence.negatives=64 --set sequence.inbatch=256
     --set sequence.max_len=16 --set sequence.max_history=64 --set sequence.warmup_steps=0 --set sequence.lr=0.01)
DAY2=(--set input.dir="$IN2" --set train.epochs=0 --set sequence.epochs=0)
users_in() { cut -f1 "$1" | grep -v '^#' | sort -u | wc -l; }
count() { json_get "$E2E_TMP/${3:-w}/$1/users/_SUCCESS.json" "counts.$2"; }

t_day1() {
    # no epoch on a first date (nothing to warm-start from) would publish a random model: refused
    expect_exit 2 mpi 2 "$SAGEPIPE" run --config "$C" --date $D1 "${SET[@]}" --set train.epochs=0 \
        --set pipeline.work_dir="$E2E_TMP/w_cold" --set export.dir="$E2E_TMP/emb_cold"
    grep -q "train.epochs = 0 keeps the previous date's item model, and there is none" "$E2E_ERR" ||
        fail "train.epochs = 0 on a first date: $(grep level=error "$E2E_ERR" | head -1)"
    [ ! -e "$E2E_TMP/emb_cold/latest" ] || fail "a cold model was published"
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D1 "${SET[@]}"
    cp "$E2E_ERR" "$E2E_TMP/day1.log"
    # the default sequence.mode = joint: train learns the user model too (one optimiser step per train
    # step), the users stage starts from it
    local steps nu
    steps=$(json_get "$E2E_TMP/w/$D1/train/_SUCCESS.json" counts.steps)
    [ -s "$E2E_TMP/w/$D1/train/seqmodel.bin" ] || fail "no train/seqmodel.bin"
    nu=$(grep -o 'joint_begin users=[0-9]*' "$E2E_ERR" | head -1 | cut -d= -f2)
    [ -n "$nu" ] && [ "$nu" -gt 0 ] || fail "joint_begin users=$nu"
    [ "$(grep -c 'rank=0 .*joint_epoch_end' "$E2E_ERR")" = 2 ] || fail "two joint epochs expected"
    grep -q "users_joint_start model=.*step=$steps" "$E2E_ERR" || fail "users did not start from train's model \
(steps $steps): $(grep users_joint_start "$E2E_ERR")"
    local n
    n=$(users_in "$IN1/events.tsv")
    [ "$(count $D1 users)" = "$n" ] || fail "users $(count $D1 users) != $n distinct users in the events"
    [ "$(count $D1 encoded)" = "$n" ] || fail "day 1 must encode everyone"
    [ "$(count $D1 carried)" = 0 ] || fail "nothing to carry on day 1"
    [ "$(count $D1 train_steps)" -gt 0 ] || fail "the user encoder did not train"
    [ "$(count $D1 unembedded_pins_read)" = 0 ] || fail "pins of the histories were not fetched: $(count $D1 unembedded_pins_read)"
    [ "$(count $D1 history_actions)" = $(($(count $D1 actions_appended) - $(count $D1 trimmed))) ] ||
        fail "day 1 history != appended - trimmed"
    [ "$(count $D1 trimmed)" -gt 0 ] || fail "no history was bounded by sequence.max_history (test data too small?)"
    local M=$E2E_TMP/emb/$D1/MANIFEST.json
    [ "$(json_get "$M" entities.users.count)" = "$n" ] || fail "manifest users count"
    expect_exit 0 sp verify --manifest "$M"
    local u
    u=$(cut -f1 "$IN1/events.tsv" | head -1)
    expect_exit 0 sp get --manifest "$M" "u$u"
    grep -q "^u$u" "$E2E_OUT" || fail "get u$u printed no vector: $(head -c 200 "$E2E_OUT")"
    python3 - "$E2E_TMP/w/$D1/users/loss.tsv" <<'PY' || fail "loss.tsv"
import sys, math
rows = [l.split('\t') for l in open(sys.argv[1])][1:]
assert len(rows) == 4 and all(math.isfinite(float(r[2])) for r in rows), rows
PY
    # the joint user loss falls from the first train epoch to the second
    local l1 l2
    l1=$(grep -o 'rank=0 .*joint_epoch_end epoch=1 user_loss=[0-9.]*' "$E2E_TMP/day1.log" | sed 's/.*=//')
    l2=$(grep -o 'rank=0 .*joint_epoch_end epoch=2 user_loss=[0-9.]*' "$E2E_TMP/day1.log" | sed 's/.*=//')
    python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); assert b < a, (a, b)" "$l1" "$l2" ||
        fail "the joint user loss did not fall: $l1 -> $l2"
    # a rerun of the date from train (a copy of the work dir) gives the same user vectors: the joint
    # task's sampling, token-table refreshes and producer thread are deterministic
    expect_exit 0 sp dump users --config "$C" --date $D1 "${SET[@]}"
    cp "$E2E_OUT" "$E2E_TMP/day1_users.txt"
    cp -r "$E2E_TMP/w" "$E2E_TMP/wr"
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D1 --from train --force "${SET[@]}" \
        --set pipeline.work_dir="$E2E_TMP/wr" --set export.dir="$E2E_TMP/embr"
    expect_exit 0 sp dump users --config "$C" --date $D1 "${SET[@]}" --set pipeline.work_dir="$E2E_TMP/wr"
    cmp -s "$E2E_OUT" "$E2E_TMP/day1_users.txt" || fail "a rerun of day 1 changed the user vectors"
    # joint: train writes the user model the users stage starts from, so a changed [sequence] key reruns train
    # (it was skipped, and users then refused train's model of the old width)
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D1 "${SET[@]}" --set sequence.width=8 \
        --set pipeline.work_dir="$E2E_TMP/wr" --set export.dir="$E2E_TMP/embr"
    grep -q 'rank=0 stage=train event=stage_start' "$E2E_ERR" || fail "train did not rerun after a [sequence] change"
    # ... but not for a key only the users stage reads (its board blend): users reruns, train is skipped
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D1 "${SET[@]}" --set sequence.width=8 \
        --set sequence.board_weight=0.3 --set pipeline.work_dir="$E2E_TMP/wr" --set export.dir="$E2E_TMP/embr"
    grep -q 'rank=0 stage=train event=stage_start' "$E2E_ERR" && fail "sequence.board_weight reran train"
    grep -q 'rank=0 stage=users event=stage_start' "$E2E_ERR" || fail "users did not rerun for sequence.board_weight"
}

t_day2_incremental() {
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D2 "${SET[@]}" "${DAY2[@]}"
    # joint: the train stage's user model starts from day 1's final one (users/model.bin)
    grep -q "joint_warm_start model=.*$D1/users/model.bin" "$E2E_ERR" || fail "no joint warm start from day 1"
    grep -q 'users_encode_plan mode=incremental' "$E2E_ERR" || fail "day 2 should be incremental: $(grep users_encode_plan "$E2E_ERR")"
    local n active
    n=$(count $D1 users)
    active=$(users_in "$IN2/events.tsv")
    [ "$(count $D2 users)" = "$n" ] || fail "day 2 users $(count $D2 users) != $n"
    [ "$(count $D2 active)" = "$active" ] || fail "active $(count $D2 active) != $active"
    [ "$(count $D2 encoded)" = "$active" ] || fail "encoded $(count $D2 encoded) != active $active"
    [ "$(count $D2 carried)" = $((n - active)) ] || fail "carried $(count $D2 carried) != $((n - active))"
    [ "$(json_get "$E2E_TMP/w/$D2/ingest/_SUCCESS.json" counts.reject_duplicate)" = 1 ] || fail "the duplicated row was kept"
    [ "$(count $D2 history_actions)" = $(($(count $D1 history_actions) + $(count $D2 actions_appended) - $(count $D2 trimmed))) ] ||
        fail "day 2 history != day 1 + appended - trimmed"
    expect_exit 0 sp dump users --config "$C" --date $D2 "${SET[@]}" "${DAY2[@]}"
    cp "$E2E_OUT" "$E2E_TMP/inc.txt"
    [ "$(wc -l <"$E2E_TMP/inc.txt")" = "$n" ] || fail "dump users lines"
    # --full re-encodes everyone: the same vectors
    expect_exit 0 mpi 2 "$SAGEPIPE" job users --full --config "$C" --date $D2 "${SET[@]}" "${DAY2[@]}"
    [ "$(count $D2 encoded)" = "$n" ] || fail "--full encoded $(count $D2 encoded) != $n"
    [ "$(count $D2 carried)" = 0 ] || fail "--full carried users"
    expect_exit 0 sp dump users --config "$C" --date $D2 "${SET[@]}" "${DAY2[@]}"
    cmp -s "$E2E_OUT" "$E2E_TMP/inc.txt" || fail "--full differs from the incremental vectors: $(diff "$E2E_OUT" "$E2E_TMP/inc.txt" | head -3)"
    # the same date again: nothing appended twice
    local before
    before=$(count $D2 history_actions)
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D2 --force "${SET[@]}" "${DAY2[@]}"
    [ "$(count $D2 history_actions)" = "$before" ] || fail "rerun changed the history: $before -> $(count $D2 history_actions)"
    expect_exit 0 sp dump users --config "$C" --date $D2 "${SET[@]}" "${DAY2[@]}"
    cmp -s "$E2E_OUT" "$E2E_TMP/inc.txt" || fail "the rerun changed user vectors"
}

t_day2_other_ranks() {
    # day 2 on 4 ranks in a copy of the work dir: histories of 2-rank parts are re-partitioned
    cp -r "$E2E_TMP/w" "$E2E_TMP/w4"
    rm -rf "$E2E_TMP/w4/$D2"
    expect_exit 0 mpi 4 "$SAGEPIPE" run --config "$C" --date $D2 "${SET[@]}" "${DAY2[@]}" --set pipeline.work_dir="$E2E_TMP/w4" \
        --set export.dir="$E2E_TMP/emb4"
    [ "$(count $D2 history_actions w4)" = "$(count $D2 history_actions)" ] || fail "4-rank history differs"
    [ "$(count $D2 users w4)" = "$(count $D2 users)" ] || fail "4-rank users differ"
    expect_exit 0 sp dump users --config "$C" --date $D2 "${SET[@]}" "${DAY2[@]}" --set pipeline.work_dir="$E2E_TMP/w4"
    python3 - "$E2E_OUT" "$E2E_TMP/inc.txt" <<'PY' || fail "4-rank vectors differ from 2-rank ones"
import sys
a = [l.split() for l in open(sys.argv[1])]; b = [l.split() for l in open(sys.argv[2])]
assert len(a) == len(b) and all(x[0] == y[0] for x, y in zip(a, b)), "ids differ"
m = max(abs(float(u) - float(v)) for x, y in zip(a, b) for u, v in zip(x[1:], y[1:]))
print("max diff", m); assert m < 1e-4, m
PY
}

t_gap() {
    # a date with no users stage in between: the histories come from the latest earlier date, with a warning
    cp -r "$IN2" "$IN4"
    python3 - "$IN2/events.tsv" "$IN4/events.tsv" <<'PY' || fail "day 4 events"
import sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1])]
with open(sys.argv[2], 'w') as f:
    for r in sorted(set(tuple(r) for r in rows)):
        f.write('\t'.join(r[:3] + (str(int(r[3]) + 2 * 86400000),) + r[4:]) + '\n')
PY
    # the train stage warm-starts from the day before only: after the gap it trains an epoch (0 is refused)
    expect_exit 2 mpi 2 "$SAGEPIPE" run --config "$C" --date $D4 "${SET[@]}" "${DAY2[@]}" --set input.dir="$IN4"
    grep -q "train.epochs = 0 keeps the previous date's item model, and there is none" "$E2E_ERR" ||
        fail "train.epochs = 0 after a gap: $(grep level=error "$E2E_ERR" | head -1)"
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D4 "${SET[@]}" "${DAY2[@]}" --set input.dir="$IN4" \
        --set train.epochs=1
    grep -q "users_history_gap previous=$D2" "$E2E_ERR" || fail "no gap warning naming $D2"
    [ "$(count $D4 history_actions)" = $(($(count $D2 history_actions) + $(count $D4 actions_appended) - $(count $D4 trimmed))) ] ||
        fail "day 4 history != day 2 + appended - trimmed"
}

t_bad() {
    expect_exit 2 mpi 2 "$SAGEPIPE" job users --config "$C" --date $D1 "${SET[@]}" --set sequence.width=15 --force
    grep -q "multiple of sequence.heads" "$E2E_ERR" ||
        fail "width/heads message: $(grep -v "^ \|^-\|^$" "$E2E_ERR" | head -5)"
}

check day1 t_day1
t_frozen() {
    # sequence.mode = frozen in a copy of day 1's work dir: only the users stage trains the user encoder
    local F=(--set sequence.mode=frozen --set pipeline.work_dir="$E2E_TMP/wf" --set export.dir="$E2E_TMP/embf")
    cp -r "$E2E_TMP/w" "$E2E_TMP/wf"
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D1 "${SET[@]}" "${F[@]}"
    [ ! -e "$E2E_TMP/wf/$D1/train/seqmodel.bin" ] || fail "frozen mode wrote train/seqmodel.bin"
    grep -q "joint_begin\|users_joint_start" "$E2E_ERR" && fail "frozen mode ran the joint task"
    grep -q "users_train_begin" "$E2E_ERR" || fail "frozen mode: the users stage did not train"
    python3 - "$E2E_TMP/wf/$D1/users/loss.tsv" <<'PY' || fail "frozen loss.tsv"
import sys, math
rows = [l.split('\t') for l in open(sys.argv[1])][1:]
assert len(rows) == 4 and all(math.isfinite(float(r[2])) for r in rows), rows
assert float(rows[-1][2]) < float(rows[0][2]) - 0.05, "the user encoder's loss did not fall: %s" % [r[2] for r in rows]
PY
    [ "$(count $D1 encoded wf)" = "$(count $D1 users)" ] || fail "frozen: users not encoded"
    # the next date warm-starts the users stage from day 1's model
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D2 "${SET[@]}" "${DAY2[@]}" "${F[@]}"
    grep -q "users_warm_start model=.*$D1/users/model.bin" "$E2E_ERR" || fail "frozen: no warm start from day 1"
    grep -q 'users_encode_plan mode=incremental' "$E2E_ERR" || fail "frozen day 2 should be incremental"
    expect_exit 2 mpi 2 "$SAGEPIPE" run --config "$C" --date $D2 "${SET[@]}" "${DAY2[@]}" --set train.w_user=-1
    grep -q "w_user" "$E2E_ERR" || fail "a negative w_user was not refused by name"
}
check frozen t_frozen
t_average() {
    # sequence.average_epochs = 2 (a copy of the frozen work dir, day 1's users stage again): the model is
    # the mean of the last two epochs', so the vectors differ from the last epoch's; a rerun is identical
    local A=(--set sequence.mode=frozen --set pipeline.work_dir="$E2E_TMP/wa" --set export.dir="$E2E_TMP/emba"
             --set sequence.average_epochs=2)
    cp -r "$E2E_TMP/wf" "$E2E_TMP/wa"
    expect_exit 0 sp dump users --config "$C" --date $D1 "${SET[@]}" --set sequence.mode=frozen \
        --set pipeline.work_dir="$E2E_TMP/wf"
    cp "$E2E_OUT" "$E2E_TMP/last_users.txt"
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D1 --from users --to users --force "${SET[@]}" "${A[@]}"
    grep -q 'event=users_averaged epochs=2' "$E2E_ERR" || fail "no averaging logged"
    expect_exit 0 sp dump users --config "$C" --date $D1 "${SET[@]}" "${A[@]}"
    cp "$E2E_OUT" "$E2E_TMP/avg_users.txt"
    [ "$(wc -l < "$E2E_TMP/avg_users.txt")" = "$(wc -l < "$E2E_TMP/last_users.txt")" ] || fail "user counts differ"
    cmp -s "$E2E_TMP/avg_users.txt" "$E2E_TMP/last_users.txt" && fail "averaging changed no vector"
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D1 --from users --to users --force "${SET[@]}" "${A[@]}"
    expect_exit 0 sp dump users --config "$C" --date $D1 "${SET[@]}" "${A[@]}"
    cmp -s "$E2E_OUT" "$E2E_TMP/avg_users.txt" || fail "a rerun with averaging changed the vectors"
}
check average t_average
t_board_weight() {
    # sequence.board_weight = 0.4: each user vector is normalise(0.6 u + 0.4 b) with u the encoder's (the
    # same run's users stage with weight 0: training is deterministic) and b the infer stage's vector of the
    # board with the user's id, fetched from the rank serving it; users 1001.. (added: no such board) keep u
    local X=$E2E_TMP/inb W=(--set sequence.mode=frozen --set pipeline.work_dir="$E2E_TMP/wb"
                            --set export.dir="$E2E_TMP/embb" --set train.epochs=1)
    cp -r "$IN1" "$X"
    awk 'BEGIN { FS = OFS = "\t" } !/^#/ && $1 <= 5 { $1 += 1000; print }' "$IN1/events.tsv" >>"$X/events.tsv"
    W+=(--set input.dir="$X")
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D1 --to users "${SET[@]}" "${W[@]}"
    expect_exit 0 sp dump users --config "$C" --date $D1 "${SET[@]}" "${W[@]}"
    cp "$E2E_OUT" "$E2E_TMP/enc_b.txt"
    expect_exit 0 sp dump emb --config "$C" --date $D1 "${SET[@]}" "${W[@]}"
    cp "$E2E_OUT" "$E2E_TMP/emb_b.txt"
    local B=("${W[@]}" --set sequence.board_weight=0.4)
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D1 --from users --to users "${SET[@]}" "${B[@]}"
    local n
    n=$(count $D1 board_blended wb)
    grep -q "event=users_done .* blended=$n " "$E2E_ERR" || fail "users_done does not say blended=$n"
    expect_exit 0 sp dump users --config "$C" --date $D1 "${SET[@]}" "${B[@]}"
    python3 - "$E2E_OUT" "$E2E_TMP/enc_b.txt" "$E2E_TMP/emb_b.txt" "$n" <<'PY' || fail "blended user vectors"
import sys, math
def rd(p, pre):
    return {l.split()[0][1:]: [float(x) for x in l.split()[1:]] for l in open(p) if l[0] == pre}
got, enc, boards, n = rd(sys.argv[1], 'u'), rd(sys.argv[2], 'u'), rd(sys.argv[3], 'b'), int(sys.argv[4])
assert got.keys() == enc.keys(), "user ids differ"
mixed = [u for u in got if u in boards]
assert len(mixed) == n and n > len(got) // 2, (len(mixed), n, len(got))
new = {u for u in got if int(u) > 1000}
assert new and set(got) - set(mixed) == new, "unblended users %s, added users %s" % (set(got) - set(mixed), new)
err = 0
for u in got:
    want = enc[u]
    if u in boards:
        want = [0.6 * a + 0.4 * b for a, b in zip(enc[u], boards[u])]
        s = math.sqrt(sum(x * x for x in want)); want = [x / s for x in want]
    err = max(err, max(abs(a - b) for a, b in zip(got[u], want)))
print("max err", err); assert err < 1e-5, err
PY
    # no user with a board of its id (every user id moved past the boards'): the blend does nothing, and says so
    local Y=$E2E_TMP/inb2
    cp -r "$IN1" "$Y"
    awk 'BEGIN { FS = OFS = "\t" } /^#/ { print; next } { $1 += 1000; print }' "$IN1/events.tsv" >"$Y/events.tsv"
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D1 --to users "${SET[@]}" "${B[@]}" --set input.dir="$Y" \
        --set pipeline.work_dir="$E2E_TMP/wb2" --set sequence.epochs=1
    grep -q 'level=warn .*event=users_board_weight_unused' "$E2E_ERR" || fail "no warning for a blend that found no board"
    [ "$(count $D1 board_blended wb2)" = 0 ] || fail "users past the boards' ids were blended"
}
check board_weight t_board_weight
check day2_incremental t_day2_incremental
check day2_other_ranks t_day2_other_ranks
t_corrupt() {
    # a damaged history part of the previous date (D2 for D4) fails the stage on every rank, naming the file
    local f=$E2E_TMP/w/$D2/users/hist-00001-of-00002.bin
    python3 - "$f" <<'PY' || fail "corrupt"
import sys
b = bytearray(open(sys.argv[1], 'rb').read()); b[len(b) // 2] ^= 0x5a; open(sys.argv[1], 'wb').write(b)
PY
    expect_exit 3 mpi 2 "$SAGEPIPE" job users --config "$C" --date $D4 --force "${SET[@]}" "${DAY2[@]}" --set input.dir="$IN4" \
        --set train.epochs=1
    grep -q "$D2/users/hist-00001-of-00002.bin" "$E2E_ERR" || fail "the error does not name the file: $(grep error "$E2E_ERR" | tail -1)"
    [ ! -e "$E2E_TMP/w/$D4/users/_SUCCESS.json" ] || fail "a failed users stage left a marker"
}

check history_gap t_gap
check bad_config t_bad
check corrupt_history t_corrupt
t_unembedded() {
    # every event names a pin outside the graph: the users stage says so (it was silent, only a count)
    local X=$E2E_TMP/inx
    cp -r "$IN1" "$X"
    awk 'BEGIN { FS = OFS = "\t" } /^#/ { print; next } { $2 += 1000000; print }' "$IN1/events.tsv" >"$X/events.tsv"
    expect_exit 0 mpi 2 "$SAGEPIPE" run --config "$C" --date $D1 --to users "${SET[@]}" --set input.dir="$X" \
        --set sequence.mode=frozen --set pipeline.work_dir="$E2E_TMP/wx" --set train.epochs=1 --set sequence.epochs=1
    grep -q 'level=warn .*event=users_unembedded_pins' "$E2E_ERR" || fail "no warning for histories of unknown pins"
}
check unembedded_pins t_unembedded
finish
