#!/usr/bin/env bash
# walks_ranks: the walks stage's neighbourhoods, hard negatives and training
# pairs are identical at 1, 2 and 4 ranks, at any thread count and window
# size (the random stream of a walk is derived from (seed, source, walk,
# step)); they change with the seed; weights are L1-normalised; isolated
# nodes get empty lists; the hard-negative band is empty on a tiny graph.
. "$(dirname "$0")/lib.sh" "$@"
D=2026-11-21
IN=$E2E_TMP/in
sp gen --pins 1500 --boards 250 --edges 15000 --users 200 --events 3000 --seed 21 "$IN" 2>/dev/null || fail "gen"
printf '999001\t777001\n' >> "$IN/pin_board.tsv"   # a pin and a board that only know each other
printf '0\t1\n0\t0\n5\t0\n7\t0\n' >> "$IN/pin_board.tsv"  # id 0 is a valid pin and board id
write_config "$E2E_TMP/c.ini" "$IN" "$E2E_TMP/w1"
C=$E2E_TMP/c.ini

t_single() {
    expect_exit 0 sp run --config "$C" --date $D --to walks --set walks.walks_per_source=100
    expect_exit 0 sp dump walks --config "$C" --date $D
    cp "$E2E_OUT" "$E2E_TMP/d1"
    grep -q '^N p1 p' "$E2E_TMP/d1" || fail "no pin neighbourhood for pin 1"
    grep -q '^N b1 b' "$E2E_TMP/d1" || fail "no board neighbourhood for board 1"
    grep -q '^H p' "$E2E_TMP/d1" || fail "no hard negatives"
    grep -q '^P p[0-9]* p[0-9]* 1 ' "$E2E_TMP/d1" || fail "no engagement pairs"
    grep -q '^P p[0-9]* p[0-9]* 2 ' "$E2E_TMP/d1" || fail "no walk pairs"
    # pin 999001 only reaches board 777001 and itself: no pin neighbours, one board
    ! grep -q '^N p999001 p' "$E2E_TMP/d1" || fail "isolated pair has pin neighbours"
    grep -q '^N p999001 b777001 ' "$E2E_TMP/d1" || fail "isolated pin misses its board"
    grep -q '^N p5 b0 ' "$E2E_TMP/d1" || fail "board 0 missing from pin 5's boards"
    grep -q '^N b0 p' "$E2E_TMP/d1" || fail "board 0 has no pin neighbourhood"
    # weights of each source's list sum to 1
    python3 - "$E2E_TMP/d1" <<'PY' || fail "weights are not L1-normalised"
import sys, collections
s = collections.defaultdict(float)
for line in open(sys.argv[1]):
    f = line.split()
    if f[0] == "N":
        s[(f[1], f[2][0])] += float(f[4])
bad = [k for k, v in s.items() if abs(v - 1) > 1e-4]
sys.exit(1 if bad else 0)
PY
}
check "single process builds neighbourhoods, bands and pairs" t_single

t_ranks() {
    local n=$1
    expect_exit 0 mpi "$n" "$SAGEPIPE" run --config "$C" --date $D --to walks --set walks.walks_per_source=100 \
        --set pipeline.work_dir="$E2E_TMP/w$n" --set walks.window_sources=97 --set walks.threads=$((n % 3 + 1))
    expect_exit 0 sp dump walks --config "$C" --date $D --set pipeline.work_dir="$E2E_TMP/w$n" --set walks.walks_per_source=100
    cmp -s "$E2E_TMP/d1" "$E2E_OUT" || { diff "$E2E_TMP/d1" "$E2E_OUT" | head -5; fail "walks at $n ranks differ"; }
    [ "$(json_get "$E2E_TMP/w$n/$D/walks/_SUCCESS.json" counts.walkers_moved)" -gt 0 ] || fail "no walker moved between ranks"
}
check "2 ranks equal 1 rank" t_ranks 2
check "4 ranks equal 1 rank" t_ranks 4

t_seed() { # graph and walks depend on the seed, ingest does not
    expect_exit 2 sp job walks --config "$C" --date $D --set walks.walks_per_source=100 --set pipeline.seed=5
    grep -q "stage graph of $D is out of date: config changed" "$E2E_ERR" || fail "graph should be stale"
    expect_exit 0 sp run --config "$C" --date $D --to walks --set walks.walks_per_source=100 --set pipeline.seed=5
    grep -q 'stage=ingest event=stage_skip' "$E2E_ERR" || fail "ingest should not depend on the seed"
    grep -q 'stage=walks event=stage_start' "$E2E_ERR" || fail "walks should rerun"
    expect_exit 0 sp dump walks --config "$C" --date $D
    ! cmp -s "$E2E_TMP/d1" "$E2E_OUT" || fail "seed 5 gave the same walks as seed 1"
}
check "graph and walks depend on pipeline.seed, ingest does not" t_seed

t_tiny_band() {
    mkdir -p "$E2E_TMP/tiny"
    printf '1\t10\n2\t10\n3\t10\n3\t11\n4\t11\n' > "$E2E_TMP/tiny/pin_board.tsv"
    expect_exit 0 sp run --config "$C" --date $D --to walks --set input.dir="$E2E_TMP/tiny" --set pipeline.work_dir="$E2E_TMP/wt"
    expect_exit 0 sp dump walks --config "$C" --date $D --set input.dir="$E2E_TMP/tiny" --set pipeline.work_dir="$E2E_TMP/wt"
    ! grep -q '^H' "$E2E_OUT" || fail "hard-negative band should be empty on a 4-pin graph"
    grep -q '^N p1 p2 ' "$E2E_OUT" || fail "pin 1 should reach pin 2"
    ! grep -q '^N p1 p1 ' "$E2E_OUT" || fail "a source is not its own neighbour"
}
check "tiny graph: empty band, no self neighbours" t_tiny_band
finish
