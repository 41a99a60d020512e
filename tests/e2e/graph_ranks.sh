#!/usr/bin/env bash
# graph_ranks: the distributed graph at 2 and 4 ranks equals the single-process
# graph (same kept edges per node after pruning with the same seed, pin-board
# and pin-pin), ingest counts agree, and every reference resolves.
. "$(dirname "$0")/lib.sh" "$@"
D=2026-11-21
IN=$E2E_TMP/in
sp gen --pins 3000 --boards 400 --edges 40000 --users 300 --events 5000 --seed 11 "$IN" 2>/dev/null || fail "gen"
# a pin-pin relation with weights, both directions and a few hubs (pruned)
awk 'BEGIN{srand(3)} NR<=6000 {a=int(rand()*3000)+1; b=(NR%50==0)?7:int(rand()*3000)+1; if(a!=b) print a "\t" b "\t" 0.5+rand()}' \
    "$IN/pin_board.tsv" | sort -u -k1,2 | awk '!seen[($1<$2)?$1" "$2:$2" "$1]++' > "$IN/pin_pin.tsv"
write_config "$E2E_TMP/c.ini" "$IN" "$E2E_TMP/w1"

one() { # ranks -> dump file
    local n=$1
    expect_exit 0 mpi "$n" "$SAGEPIPE" run --config "$E2E_TMP/c.ini" --date $D --to graph --set pipeline.work_dir="$E2E_TMP/w$n" \
        --set pipeline.shuffle_buffer_mb=1
    expect_exit 0 sp dump graph --config "$E2E_TMP/c.ini" --date $D --set pipeline.work_dir="$E2E_TMP/w$n"
    cp "$E2E_OUT" "$E2E_TMP/dump$n"
}

t_single() {
    expect_exit 0 sp run --config "$E2E_TMP/c.ini" --date $D --to graph
    expect_exit 0 sp dump graph --config "$E2E_TMP/c.ini" --date $D
    cp "$E2E_OUT" "$E2E_TMP/dump1"
    local n; n=$(wc -l < "$E2E_TMP/dump1")
    [ "$n" -gt 40000 ] || fail "only $n kept edges in the dump"
    grep -q "^p[0-9]*	p" "$E2E_TMP/dump1" || fail "no pin-pin edges"
    # pruning happened on the big boards: some board keeps fewer pins than it has
    local maxdeg pruned
    maxdeg=$(json_get "$E2E_TMP/w1/$D/graph/_SUCCESS.json" stats.board_degree.max)
    pruned=$(json_get "$E2E_TMP/w1/$D/graph/_SUCCESS.json" stats.board_degree_pruned.max)
    [ "$pruned" -lt "$maxdeg" ] || fail "no pruning: max degree $maxdeg, after pruning $pruned"
}
check "single process builds graph" t_single

t_ranks() {
    local n=$1
    one "$n"
    cmp -s "$E2E_TMP/dump1" "$E2E_TMP/dump$n" || { diff "$E2E_TMP/dump1" "$E2E_TMP/dump$n" | head; fail "graph at $n ranks differs"; }
    for k in edges pin_pin dense_rows token_rows events; do
        a=$(json_get "$E2E_TMP/w1/$D/ingest/_SUCCESS.json" counts.$k)
        b=$(json_get "$E2E_TMP/w$n/$D/ingest/_SUCCESS.json" counts.$k)
        [ "$a" = "$b" ] || fail "ingest count $k: $a at 1 rank, $b at $n"
    done
    for k in pins boards pin_side_kept board_side_kept pin_pin_kept; do
        a=$(json_get "$E2E_TMP/w1/$D/graph/_SUCCESS.json" counts.$k)
        b=$(json_get "$E2E_TMP/w$n/$D/graph/_SUCCESS.json" counts.$k)
        [ "$a" = "$b" ] || fail "graph count $k: $a at 1 rank, $b at $n"
    done
    [ "$(json_get "$E2E_TMP/w$n/$D/graph/_SUCCESS.json" ranks)" = "$n" ] || fail "marker rank count"
}
check "2 ranks equal 1 rank" t_ranks 2
check "4 ranks equal 1 rank" t_ranks 4

t_seed() { # another seed prunes differently (the seed is really used)
    expect_exit 0 sp run --config "$E2E_TMP/c.ini" --date $D --to graph --set pipeline.work_dir="$E2E_TMP/ws" --set pipeline.seed=2
    expect_exit 0 sp dump graph --config "$E2E_TMP/c.ini" --date $D --set pipeline.work_dir="$E2E_TMP/ws" --set pipeline.seed=2
    ! cmp -s "$E2E_OUT" "$E2E_TMP/dump1" || fail "seed 2 gave the same pruned graph as seed 1"
}
check "pruning depends on pipeline.seed" t_seed

t_bytes() {
    local bpe
    bpe=$(json_get "$E2E_TMP/w1/$D/graph/_SUCCESS.json" stats.bytes_per_edge)
    python3 -c "import sys; sys.exit(0 if 0 < $bpe <= 24 else 1)" || fail "bytes per edge $bpe > 24"
}
check "graph uses at most 24 bytes per edge" t_bytes
finish
