#!/usr/bin/env bash
# tests/e2e/rejects.sh BIN — end-to-end checks of ingest validation (DESIGN §3
# "Bad input", §5 exit codes): one check per reject reason, exact reject line
# numbers under 1/2/4 MPI ranks and with .zst inputs, missing/empty/corrupt
# inputs and config errors.  Prints one line per check, then "N passed, M failed".
set -u
. "$(dirname "$0")/lib.sh" "$@"

DATE=2025-11-22
DAY_MS=1763769600000 # 2025-11-22T00:00:00Z
MAX_U64=18446744073709551615

# ---------------------------------------------------------------- generators
# (awk: timestamps exceed 2^31, so they are printed with %.0f — mawk's %d clamps.)
# All generated ids are < 900000; bad rows use ids >= 900000 so they never
# collide with a good row by accident.

gen_pin_board() { # N: rows "i <tab> board [<tab> ts]" (every third row without ts)
    awk -v n="$1" -v d="$DAY_MS" 'BEGIN { for (i = 1; i <= n; i++)
        if (i % 3) printf "%d\t%d\t%.0f\n", i, i % 97 + 1, d + i; else printf "%d\t%d\n", i, i % 97 + 1 }'
}
gen_pin_pin() { # N
    awk -v n="$1" 'BEGIN { for (i = 1; i <= n; i++)
        if (i % 2) printf "%d\t%d\t%.2f\n", i, i + 1, 0.25 + i % 7; else printf "%d\t%d\n", i, i + 2 }'
}
gen_tokens() { # N
    awk -v n="$1" 'BEGIN { for (i = 1; i <= n; i++) printf "%d\tcat_%d brand_%d\tword%d\n", i, i % 5, i % 11, i }'
}
gen_events() { # N: distinct (user, pin, action, ts), all inside the day
    awk -v n="$1" -v d="$DAY_MS" 'BEGIN { split("save click closeup hide engage", a, " ");
        split("homefeed search related profile other", s, " ");
        for (i = 1; i <= n; i++)
            if (i % 4) printf "%d\t%d\t%s\t%.0f\t%s\n", i % 50 + 1, i, a[i % 5 + 1], d + i * 1000, s[i % 5 + 1];
            else printf "%d\t%d\t%s\t%.0f\n", i % 50 + 1, i, a[i % 5 + 1], d + i * 1000 }'
}
# gen_dense FILE N DIM [nan_record] [dup_record]: record k (1-based) has id k,
# except dup_record, which repeats id 1; nan_record holds one NaN.
gen_dense() {
    python3 - "$@" <<'EOF'
import struct, sys
path, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
nan_at = int(sys.argv[4]) if len(sys.argv) > 4 else 0
dup_at = int(sys.argv[5]) if len(sys.argv) > 5 else 0
with open(path, "wb") as f:
    f.write(b"SFV1" + struct.pack("<IIQ", 1, dim, n))
    for k in range(1, n + 1):
        v = [0.01 * k + j for j in range(dim)]
        if k == nan_at:
            v[dim // 2] = float("nan")
        f.write(struct.pack("<Q%df" % dim, 1 if k == dup_at else k, *v))
EOF
}

# insert_line FILE LINE TEXT: TEXT becomes line LINE (1-based) of FILE.
insert_line() {
    awk -v l="$2" -v t="$3" 'NR == l { print t } { print } END { if (NR < l) print t }' "$1" >"$1.tmp" &&
        mv "$1.tmp" "$1"
}

# insert_bytes FILE LINE FORMAT: the bytes of bash's printf FORMAT (\xHH: a NUL, bytes that are not UTF-8)
# become line LINE (1-based) of FILE; awk cannot carry a NUL.
insert_bytes() {
    { head -n $(($2 - 1)) "$1" && printf "$3\n" && tail -n +"$2" "$1"; } >"$1.tmp" && mv "$1.tmp" "$1"
}

# is_utf8 FILE: exit 0 when FILE is valid UTF-8 text
is_utf8() { python3 -c 'import sys; open(sys.argv[1], "rb").read().decode("utf-8")' "$1" 2>/dev/null; }

# ingest DIR [np] [extra args...]: runs ingest of DIR/in into DIR/work (np 0 = no mpirun)
ingest_cmd() {
    local dir=$1 np=$2
    shift 2
    rm -f "$dir/counts.txt"
    write_config "$dir/c.ini" "$dir/in" "$dir/work"
    if [ "$np" = 0 ]; then
        sp job ingest --config "$dir/c.ini" --date "$DATE" --force "$@"
    else
        mpi "$np" "$SAGEPIPE" job ingest --config "$dir/c.ini" --date "$DATE" --force "$@"
    fi
}

# rejects_of DIR: "file<TAB>line<TAB>reason" rows of rejects.tsv
rejects_of() {
    local f=$1/work/$DATE/ingest/rejects.tsv
    [ -f "$f" ] || fail "no $f"
    head -n 1 "$f" | grep -qx $'#file\tline\treason\tdetail' || fail "rejects.tsv header is '$(head -n 1 "$f")'"
    grep -a -v '^#' "$f" | cut -f1-3
}

# expect_rejects DIR EXPECTED: rejects.tsv holds exactly the EXPECTED rows (any order)
expect_rejects() {
    local got want
    got=$(rejects_of "$1" | sort) || exit 1
    want=$(printf '%s\n' "$2" | sed '/^$/d' | sort)
    [ "$got" = "$want" ] || fail "rejects.tsv rows differ
--- want ---
$want
--- got ---
$got"
}

# counts_of DIR: "key value" lines of _SUCCESS.json "counts", plus "reject_total N"
# (one python3 start per run, cached in DIR/counts.txt; ingest_cmd drops the cache)
counts_of() {
    local j=$1/work/$DATE/ingest/_SUCCESS.json
    [ -f "$j" ] || fail "no $j"
    if [ ! -f "$1/counts.txt" ]; then
        python3 -c 'import json, sys
c = json.load(open(sys.argv[1]))["counts"]
c["reject_total"] = sum(v for k, v in c.items() if k.startswith("reject_"))
print("\n".join("%s %s" % kv for kv in c.items()))' "$j" >"$1/counts.txt" || fail "cannot read $j"
    fi
    cat "$1/counts.txt"
}

# expect_count DIR KEY VALUE: _SUCCESS.json counts.KEY == VALUE
expect_count() {
    local v
    v=$(counts_of "$1" | awk -v k="$2" '$1 == k { print $2; f = 1 } END { exit !f }') ||
        fail "no counts.$2 in _SUCCESS.json"
    [ "$v" = "$3" ] || fail "counts.$2 = $v, want $3"
}

data_lines() { grep -a -cv -e '^#' -e '^$' "$1" || true; } # -a: a NUL would split a line (binary mode)

# new_case: a fresh case directory with in/pin_board.tsv of N good rows (default 800:
# one bad row among < 1000 rows exceeds the default max_reject_fraction of 0.001;
# the check is "rejects/rows > max", so 1 of 1000 would still pass).
new_case() {
    local d
    d=$(mktemp -d "$E2E_TMP/case_XXXX")
    mkdir "$d/in"
    gen_pin_board "${1:-800}" >"$d/in/pin_board.tsv"
    echo "$d"
}

# ---------------------------------------------------------------- one check per reason
# reason_check REASON FILE LINE SETUP_FN: SETUP_FN DIR writes the inputs, with
# the one bad row at line LINE of FILE (record LINE for .sfv).
reason_check() {
    local reason=$1 file=$2 line=$3 setup=$4 d
    d=$(new_case)
    "$setup" "$d"
    # (a) default max_reject_fraction: exit 3, no _SUCCESS.json, stderr names reason and rejects.tsv
    expect_exit 3 ingest_cmd "$d" 0
    [ ! -e "$d/work/$DATE/ingest/_SUCCESS.json" ] || fail "_SUCCESS.json written by a failed ingest"
    grep -q "$reason" "$E2E_ERR" || fail "stderr does not mention $reason: $(tail -n 3 "$E2E_ERR")"
    grep -q "rejects.tsv" "$E2E_ERR" || fail "stderr does not mention rejects.tsv: $(tail -n 3 "$E2E_ERR")"
    [ -f "$d/work/$DATE/ingest/rejects.tsv" ] || fail "no rejects.tsv after failed ingest"
    # (b) max_reject_fraction=0.01: exit 0, exactly that row, count 1
    expect_exit 0 ingest_cmd "$d" 0 --set input.max_reject_fraction=0.01
    expect_rejects "$d" "$file"$'\t'"$line"$'\t'"$reason"
    expect_count "$d" "reject_$reason" 1
    expect_count "$d" reject_total 1
    if [ "$file" != pin_dense.sfv ]; then
        local stem=${file%.tsv}
        expect_count "$d" "rows_$stem" "$(data_lines "$d/in/$file")"
    fi
}

PB_LINE=400 # bad pin_board line
AUX_LINE=60 # bad line/record of the optional file (of 100 good rows)

setup_parse_error() { insert_line "$1/in/pin_board.tsv" $PB_LINE $'900001\t5\t6\t7'; }
setup_bad_id() { insert_line "$1/in/pin_board.tsv" $PB_LINE $'9000x1\t5'; }
setup_id_out_of_range() { insert_line "$1/in/pin_board.tsv" $PB_LINE $'18446744073709551616\t5'; }
setup_bad_timestamp() { insert_line "$1/in/pin_board.tsv" $PB_LINE $'900001\t5\t-17'; }
setup_duplicate() { insert_line "$1/in/pin_board.tsv" $PB_LINE "$(sed -n 10p "$1/in/pin_board.tsv")"; }
setup_outside_window() {
    gen_events 100 >"$1/in/events.tsv"
    insert_line "$1/in/events.tsv" $AUX_LINE $'900001\t5\tsave\t'$((DAY_MS + 86400000))$'\thomefeed'
}
setup_unknown_action() {
    gen_events 100 >"$1/in/events.tsv"
    insert_line "$1/in/events.tsv" $AUX_LINE $'900001\t5\tpurchase\t'$((DAY_MS + 5))
}
setup_bad_weight() {
    gen_pin_pin 100 >"$1/in/pin_pin.tsv"
    insert_line "$1/in/pin_pin.tsv" $AUX_LINE $'900001\t900002\t0'
}
setup_self_loop() {
    gen_pin_pin 100 >"$1/in/pin_pin.tsv"
    insert_line "$1/in/pin_pin.tsv" $AUX_LINE $'900003\t900003\t1.5'
}
setup_nan_feature() { gen_dense "$1/in/pin_dense.sfv" 101 8 $AUX_LINE; }
setup_too_many_tokens() {
    gen_tokens 100 >"$1/in/pin_tokens.tsv"
    insert_line "$1/in/pin_tokens.tsv" $AUX_LINE "$(awk 'BEGIN { printf "900001"; for (i = 0; i <= 8192; i++) printf " t%d", i }')"
}

# A NUL byte or bytes that are not UTF-8 (DESIGN §3: text inputs are UTF-8) make one reject, not a failed ingest.
setup_nul_byte() { insert_bytes "$1/in/pin_board.tsv" $PB_LINE '9000\x001\t5'; }
setup_not_utf8() {
    gen_tokens 100 >"$1/in/pin_tokens.tsv"
    insert_bytes "$1/in/pin_tokens.tsv" $AUX_LINE '900001\tcat_1 \xff\xfe'
}

check "parse_error pin_board.tsv:$PB_LINE" reason_check parse_error pin_board.tsv $PB_LINE setup_parse_error
check "bad_id pin_board.tsv:$PB_LINE" reason_check bad_id pin_board.tsv $PB_LINE setup_bad_id
check "id_out_of_range pin_board.tsv:$PB_LINE" reason_check id_out_of_range pin_board.tsv $PB_LINE setup_id_out_of_range
check "bad_timestamp pin_board.tsv:$PB_LINE" reason_check bad_timestamp pin_board.tsv $PB_LINE setup_bad_timestamp
check "outside_window events.tsv:$AUX_LINE" reason_check outside_window events.tsv $AUX_LINE setup_outside_window
check "unknown_action events.tsv:$AUX_LINE" reason_check unknown_action events.tsv $AUX_LINE setup_unknown_action
check "bad_weight pin_pin.tsv:$AUX_LINE" reason_check bad_weight pin_pin.tsv $AUX_LINE setup_bad_weight
check "self_loop pin_pin.tsv:$AUX_LINE" reason_check self_loop pin_pin.tsv $AUX_LINE setup_self_loop
check "nan_feature pin_dense.sfv:$AUX_LINE" reason_check nan_feature pin_dense.sfv $AUX_LINE setup_nan_feature
check "duplicate pin_board.tsv:$PB_LINE" reason_check duplicate pin_board.tsv $PB_LINE setup_duplicate
check "too_many_tokens pin_tokens.tsv:$AUX_LINE" reason_check too_many_tokens pin_tokens.tsv $AUX_LINE setup_too_many_tokens
check "nul_byte pin_board.tsv:$PB_LINE" reason_check nul_byte pin_board.tsv $PB_LINE setup_nul_byte
check "not_utf8 pin_tokens.tsv:$AUX_LINE" reason_check not_utf8 pin_tokens.tsv $AUX_LINE setup_not_utf8

# ---------------------------------------------------------------- more forms, one run
# Further bad forms of each reason, and duplicates in every file, in one input
# set (ingested with max_reject_fraction=0.05): exactly these rejects.
variants() {
    local d l7 want
    d=$(new_case)
    gen_pin_pin 100 >"$d/in/pin_pin.tsv"
    gen_tokens 100 >"$d/in/pin_tokens.tsv"
    gen_events 100 >"$d/in/events.tsv"
    gen_dense "$d/in/pin_dense.sfv" 100 4 0 77                                   # record 77: id 1 again
    insert_line "$d/in/pin_board.tsv" 5 "$MAX_U64"$'\t'"$MAX_U64"                 # 2^64-1 is a valid id
    insert_line "$d/in/pin_board.tsv" 90 $'900001\t5\t12.5'                      # bad_timestamp
    insert_line "$d/in/pin_board.tsv" 91 $'900001'                               # parse_error
    insert_line "$d/in/pin_board.tsv" 92 $'-1\t5'                                # bad_id
    insert_line "$d/in/pin_board.tsv" 93 $'900001\t5\t9223372036854775807'        # bad_timestamp (past 9999)
    insert_line "$d/in/pin_board.tsv" 801 $'900002\t18446744073709551616'        # id_out_of_range
    insert_line "$d/in/events.tsv" 1 $'99999999999999999999\t5\tsave\t'$((DAY_MS + 1)) # id_out_of_range
    insert_line "$d/in/events.tsv" 33 $'900001\t5\tclick\t17637696e5'            # bad_timestamp
    insert_line "$d/in/events.tsv" 34 $'900001\t5\tclick\t-1'                    # bad_timestamp
    insert_line "$d/in/events.tsv" 35 $'900001\t5\tSave\t'$((DAY_MS + 1))        # unknown_action (case)
    insert_line "$d/in/events.tsv" 36 $'900001\t5\tsave\t'$((DAY_MS - 1))        # outside_window
    insert_line "$d/in/events.tsv" 37 $'900001\t5\tsave'                         # parse_error
    l7=$(sed -n 7p "$d/in/events.tsv")
    insert_line "$d/in/events.tsv" 80 "$(cut -f1-4 <<<"$l7")"$'\tprofile'        # duplicate (surface differs)
    insert_line "$d/in/pin_pin.tsv" 40 $'900001\t900002\tnan'                    # bad_weight
    insert_line "$d/in/pin_pin.tsv" 41 $'900001\t900002\t-1'
    insert_line "$d/in/pin_pin.tsv" 42 $'900001\t900002\tinf'
    insert_line "$d/in/pin_pin.tsv" 43 $'900001\t900002\t0x'
    l7=$(sed -n 7p "$d/in/pin_pin.tsv")
    insert_line "$d/in/pin_pin.tsv" 80 "$(cut -f1-2 <<<"$l7")"$'\t9.0'          # duplicate (weight differs)
    insert_line "$d/in/pin_tokens.tsv" 12 '900001'                              # parse_error (no tokens)
    insert_line "$d/in/pin_tokens.tsv" 80 $'7\tother tokens'                    # duplicate pin 7
    expect_exit 0 ingest_cmd "$d" 0 --set input.max_reject_fraction=0.05
    want=$(printf '%s\n' \
        $'pin_board.tsv\t90\tbad_timestamp' $'pin_board.tsv\t91\tparse_error' $'pin_board.tsv\t92\tbad_id' \
        $'pin_board.tsv\t93\tbad_timestamp' $'pin_board.tsv\t801\tid_out_of_range' \
        $'events.tsv\t1\tid_out_of_range' $'events.tsv\t33\tbad_timestamp' $'events.tsv\t34\tbad_timestamp' \
        $'events.tsv\t35\tunknown_action' $'events.tsv\t36\toutside_window' $'events.tsv\t37\tparse_error' \
        $'events.tsv\t80\tduplicate' \
        $'pin_pin.tsv\t40\tbad_weight' $'pin_pin.tsv\t41\tbad_weight' $'pin_pin.tsv\t42\tbad_weight' \
        $'pin_pin.tsv\t43\tbad_weight' $'pin_pin.tsv\t80\tduplicate' \
        $'pin_tokens.tsv\t12\tparse_error' $'pin_tokens.tsv\t80\tduplicate' \
        $'pin_dense.sfv\t77\tduplicate')
    expect_rejects "$d" "$want"
    expect_count "$d" reject_duplicate 4
    expect_count "$d" reject_bad_weight 4
    expect_count "$d" edges 801
    expect_count "$d" dense_rows 99
}
check "more forms of each reason, duplicates in every file" variants

# ---------------------------------------------------------------- exact lines under MPI and .zst
# One input set with bad rows late in every file, comments and empty lines
# before them, a last line without '\n', duplicates whose first copy lives in
# another rank's share.  The rejects must be the same for 1, 2 and 4 ranks and
# for .zst inputs.
BIG=$E2E_TMP/big
make_big() {
    mkdir -p "$BIG/in"
    awk -v d="$DAY_MS" 'function row(i) { return (i % 3) ? sprintf("%d\t%d\t%.0f", i, i % 97 + 1, d + i) : sprintf("%d\t%d", i, i % 97 + 1) }
        BEGIN { for (i = 1; i <= 30000; i++) {
            if (i == 1) print "# pin_board for rejects.sh";
            else if (i == 5 || i == 15000 || i == 19999) print "";
            else if (i == 100 || i == 20000) print "# a comment line";
            else if (i == 20001) print "9000x1\t5";              # bad_id
            else if (i == 25000) print row(2);                  # duplicate of line 2
            else if (i == 29999) print "900001 5";              # parse_error (one field)
            else if (i == 30000) printf "900002\t5\t1.5";       # bad_timestamp, no final newline
            else print row(i) } }' >"$BIG/in/pin_board.tsv"
    awk -v d="$DAY_MS" 'function row(i) { return sprintf("%d\t%d\tclick\t%.0f\tsearch", i % 50 + 1, i, d + i * 1000) }
        BEGIN { for (i = 1; i <= 5000; i++) {
            if (i == 1 || i == 5000) print "# events";
            else if (i == 4000) print "";
            else if (i == 4001) printf "7\t8\tbuy\t%.0f\n", d + 1;             # unknown_action
            else if (i == 4500) print row(3);                              # duplicate of line 3
            else if (i == 4999) printf "7\t8\tsave\t%.0f\thomefeed\n", d - 1; # outside_window
            else print row(i) } }' >"$BIG/in/events.tsv"
    awk 'BEGIN { for (i = 1; i <= 3000; i++) {
            if (i == 2500) print "900005\t900005";    # self_loop
            else if (i == 2999) print "1\t2\t3.0";    # duplicate of line 1 (weight differs)
            else if (i == 2000) print "#";
            else printf "%d\t%d\t1.0\n", i, i + 1 } }' >"$BIG/in/pin_pin.tsv"
    awk 'BEGIN { for (i = 1; i <= 3000; i++) {
            if (i == 2900) print "10 x y z";          # duplicate pin 10 (space separated)
            else if (i == 2950) print "";
            else printf "%d\ttok%d tok%d\n", i, i % 13, i % 17 } }' >"$BIG/in/pin_tokens.tsv"
    gen_dense "$BIG/in/pin_dense.sfv" 2000 16 1999 1500
    BIG_WANT=$(printf '%s\n' \
        $'pin_board.tsv\t20001\tbad_id' $'pin_board.tsv\t25000\tduplicate' \
        $'pin_board.tsv\t29999\tparse_error' $'pin_board.tsv\t30000\tbad_timestamp' \
        $'events.tsv\t4001\tunknown_action' $'events.tsv\t4500\tduplicate' $'events.tsv\t4999\toutside_window' \
        $'pin_pin.tsv\t2500\tself_loop' $'pin_pin.tsv\t2999\tduplicate' \
        $'pin_tokens.tsv\t2900\tduplicate' \
        $'pin_dense.sfv\t1500\tduplicate' $'pin_dense.sfv\t1999\tnan_feature')
    mkdir -p "$BIG/zin"
    cp "$BIG/in/pin_dense.sfv" "$BIG/zin/"
    for f in pin_board events pin_pin pin_tokens; do zstd -q "$BIG/in/$f.tsv" -o "$BIG/zin/$f.tsv.zst" || return 1; done
}
make_big || { echo "cannot build the big input set" >&2; exit 2; }

big_run() { # NP zst|plain
    local d=$E2E_TMP/big_$1_$2
    mkdir -p "$d"
    if [ "$2" = zst ]; then ln -s "$BIG/zin" "$d/in"; else ln -s "$BIG/in" "$d/in"; fi
    expect_exit 0 ingest_cmd "$d" "$1"
    expect_rejects "$d" "$BIG_WANT"
    expect_count "$d" rows_pin_board 29994
    expect_count "$d" rows_events 4997
    expect_count "$d" rows_pin_pin 2999
    expect_count "$d" rows_pin_tokens 2999
    expect_count "$d" rows_pin_dense 2000
    expect_count "$d" reject_duplicate 5
    expect_count "$d" edges 29990
    expect_count "$d" events 4994
    expect_count "$d" pin_pin 2997
    expect_count "$d" token_rows 2998
    expect_count "$d" dense_rows 1998
}
check "exact lines, 1 process" big_run 0 plain
check "exact lines, mpirun -np 2" big_run 2 plain
check "exact lines, mpirun -np 4" big_run 4 plain
check "exact lines, .zst inputs, 1 process" big_run 0 zst
check "exact lines, .zst inputs, mpirun -np 2" big_run 2 zst
check "exact lines, .zst inputs, mpirun -np 4" big_run 4 zst

# rejects.tsv is sorted by (file, line), so it is the same file, details
# included, whatever the rank count (ingest.c write_rejects: "Lines sort as
# (file, zero-padded line): stable across rank counts").
big_sorted() {
    local r ref=$E2E_TMP/big_0_plain/work/$DATE/ingest/rejects.tsv f
    [ -f "$ref" ] || fail "no $ref (exact lines, 1 process failed?)"
    for r in 0_plain 2_plain 4_plain 0_zst 2_zst 4_zst; do
        f=$E2E_TMP/big_$r/work/$DATE/ingest/rejects.tsv
        [ -f "$f" ] || fail "no $f"
        grep -v '^#' "$f" | LC_ALL=C sort -c -t$'\t' -k1,1 -k2,2n 2>/dev/null ||
            fail "big_$r: rejects.tsv rows are not sorted by (file, line):
$(grep -v '^#' "$f" | cut -f1-3)"
        cmp -s "$ref" "$f" || fail "big_$r: rejects.tsv differs from the 1-process one:
$(diff "$ref" "$f" | head)"
    done
}
check "rejects.tsv sorted by (file, line), identical for 1/2/4 ranks and .zst" big_sorted

# NUL bytes and bytes that are not UTF-8 in pin_board, events and pin_tokens, plain and .zst, read by 1, 2 and 4
# ranks: the same rejects.tsv, byte for byte, and valid UTF-8 itself (details escape bad bytes as \xNN).
TXT=$E2E_TMP/txt
make_txt() {
    mkdir -p "$TXT/in" "$TXT/zin"
    gen_pin_board 6000 >"$TXT/in/pin_board.tsv"
    insert_bytes "$TXT/in/pin_board.tsv" 3 '900001\t5\x00\t1'          # nul_byte
    insert_bytes "$TXT/in/pin_board.tsv" 2999 '900002\t\xc3(\t1'       # not_utf8 (a lead byte without its follower)
    insert_bytes "$TXT/in/pin_board.tsv" 4500 '\x00900003\t5'          # nul_byte at the first byte
    printf '900004\t5\x00' >>"$TXT/in/pin_board.tsv"                   # nul_byte, last line without '\n'
    gen_events 3000 >"$TXT/in/events.tsv"
    insert_bytes "$TXT/in/events.tsv" 1500 '900001\t5\tsa\xffve\t'$((DAY_MS + 5))   # not_utf8 action
    insert_bytes "$TXT/in/events.tsv" 2000 '900001\t5\tsave\x00\t'$((DAY_MS + 5))  # nul_byte
    # unknown_action, valid UTF-8 of 3-byte characters: the detail's copy is cut at a character boundary
    insert_bytes "$TXT/in/events.tsv" 2500 '900001\t5\t'"$(printf '€%.0s' {1..20})"'\t'$((DAY_MS + 5))
    gen_tokens 2000 >"$TXT/in/pin_tokens.tsv"
    insert_bytes "$TXT/in/pin_tokens.tsv" 7 '900003\tcaf\xc3\xa9 \xe2\x82\xac'      # valid UTF-8: kept
    insert_bytes "$TXT/in/pin_tokens.tsv" 1000 '900001\tcat_1 \xff\xfe'            # not_utf8
    insert_bytes "$TXT/in/pin_tokens.tsv" 1999 '900002\tslash\xc0\xaf'             # not_utf8 (overlong '/')
    for f in pin_board events pin_tokens; do zstd -q "$TXT/in/$f.tsv" -o "$TXT/zin/$f.tsv.zst" || return 1; done
    TXT_WANT=$(printf '%s\n' \
        $'pin_board.tsv\t3\tnul_byte' $'pin_board.tsv\t2999\tnot_utf8' $'pin_board.tsv\t4500\tnul_byte' \
        $'pin_board.tsv\t6004\tnul_byte' $'events.tsv\t1500\tnot_utf8' $'events.tsv\t2000\tnul_byte' \
        $'events.tsv\t2500\tunknown_action' \
        $'pin_tokens.tsv\t1000\tnot_utf8' $'pin_tokens.tsv\t1999\tnot_utf8')
}
make_txt || { echo "cannot build the text input set" >&2; exit 2; }

txt_run() { # NP zst|plain
    local d=$E2E_TMP/txt_$1_$2 r
    mkdir -p "$d"
    if [ "$2" = zst ]; then ln -s "$TXT/zin" "$d/in"; else ln -s "$TXT/in" "$d/in"; fi
    expect_exit 0 ingest_cmd "$d" "$1" --set input.max_reject_fraction=0.01
    expect_rejects "$d" "$TXT_WANT"
    expect_count "$d" reject_nul_byte 4
    expect_count "$d" reject_not_utf8 4
    expect_count "$d" reject_total 9
    expect_count "$d" rows_pin_board 6004
    expect_count "$d" rows_events 3003
    expect_count "$d" rows_pin_tokens 2003
    expect_count "$d" edges 6000
    expect_count "$d" events 3000
    expect_count "$d" token_rows 2001
    r=$d/work/$DATE/ingest/rejects.tsv
    is_utf8 "$r" || fail "rejects.tsv is not valid UTF-8: $(grep -a not_utf8 "$r" | od -c | head)"
    grep -qF "not valid UTF-8 at byte 12: '900001 5 sa\xffve " "$r" || fail "events detail: $(grep -a events "$r")"
    grep -qF "NUL byte at byte 1: '\x00900003 5'" "$r" || fail "nul detail: $(grep -a 4500 "$r")"
    grep -qF "action '$(printf '€%.0s' {1..14})...' is not" "$r" || fail "cut detail: $(grep -a 2500 "$r")"
    if [ "$1" != 0 ] || [ "$2" != plain ]; then
        cmp -s "$E2E_TMP/txt_0_plain/work/$DATE/ingest/rejects.tsv" "$r" ||
            fail "rejects.tsv differs from the 1-process plain one: $(diff "$E2E_TMP/txt_0_plain/work/$DATE/ingest/rejects.tsv" "$r")"
    fi
}
check "nul_byte / not_utf8 rows, 1 process" txt_run 0 plain
check "nul_byte / not_utf8 rows, mpirun -np 2, same rejects.tsv" txt_run 2 plain
check "nul_byte / not_utf8 rows, mpirun -np 4, same rejects.tsv" txt_run 4 plain
check "nul_byte / not_utf8 rows, .zst inputs, 1 process, same rejects.tsv" txt_run 0 zst
check "nul_byte / not_utf8 rows, .zst inputs, mpirun -np 2, same rejects.tsv" txt_run 2 zst
check "nul_byte / not_utf8 rows, .zst inputs, mpirun -np 4, same rejects.tsv" txt_run 4 zst

per_reason_cap() { # 25 bad rows, rejects_per_reason=20 -> the first 20 lines, count 25
    local d want
    d=$(new_case 3000)
    awk 'NR % 100 == 0 && NR <= 2500 { print "bad" NR "\t5"; next } { print }' "$d/in/pin_board.tsv" >"$d/in/x" &&
        mv "$d/in/x" "$d/in/pin_board.tsv"
    expect_exit 0 ingest_cmd "$d" 2 --set input.max_reject_fraction=0.05
    want=$(for i in $(seq 100 100 2000); do printf 'pin_board.tsv\t%d\tbad_id\n' "$i"; done)
    expect_rejects "$d" "$want"
    expect_count "$d" reject_bad_id 25
}
check "rejects_per_reason=20 keeps the first 20 of 25 (np 2)" per_reason_cap

# A failed ingest's summary table shows the counts of all ranks (it showed rank 0's share).
failed_summary() {
    local d
    d=$(new_case 999)
    printf 'x8\t5\nx9\t5\n' >>"$d/in/pin_board.tsv" # 2 of 1001 > 0.001
    write_config "$d/c.ini" "$d/in" "$d/work"
    expect_exit 3 mpi 2 "$SAGEPIPE" run --config "$d/c.ini" --date "$DATE" --to ingest
    grep -E '^ingest +FAILED' "$E2E_ERR" | grep -q 'rows_pin_board=1001 reject_bad_id=2 ' ||
        fail "summary row: $(grep -E '^ingest' "$E2E_ERR")"
}
check "a failed ingest's summary counts every rank's rows (np 2)" failed_summary

# Duplicates are found at their key's owner in key order, not line order: the
# kept ones are still the first by line, the same for any rank count.
dup_cap() { # lines 3001-3030 copy lines 3000, 2900, ..., 100: their keys descend; rejects_per_reason=5
    local d np want
    d=$(new_case 3000)
    awk '{ a[NR] = $0; print } END { for (k = 30; k >= 1; k--) print a[100 * k] }' "$d/in/pin_board.tsv" >"$d/in/x" &&
        mv "$d/in/x" "$d/in/pin_board.tsv"
    want=$(for i in 3001 3002 3003 3004 3005; do printf 'pin_board.tsv\t%d\tduplicate\n' "$i"; done)
    for np in 0 2 4; do
        expect_exit 0 ingest_cmd "$d" "$np" --set input.max_reject_fraction=0.05 --set input.rejects_per_reason=5
        expect_rejects "$d" "$want"
        expect_count "$d" reject_duplicate 30
    done
}
check "rejects_per_reason=5 keeps the first 5 of 30 duplicates by line (np 1, 2, 4)" dup_cap

# Boundary: the job fails when rejects/rows EXCEEDS max_reject_fraction.  Then
# a clean rerun (--force) leaves no rejects.tsv of the earlier run behind.
threshold() {
    local d
    d=$(new_case 999)
    insert_line "$d/in/pin_board.tsv" 500 $'9000x1\t5'
    expect_exit 0 ingest_cmd "$d" 0 # 1 of 1000 = 0.001, not > 0.001
    expect_rejects "$d" $'pin_board.tsv\t500\tbad_id'
    sed -i 1d "$d/in/pin_board.tsv"
    expect_exit 3 ingest_cmd "$d" 0 # 1 of 999
    expect_rejects "$d" $'pin_board.tsv\t499\tbad_id'
    sed -i 499d "$d/in/pin_board.tsv"
    expect_exit 0 ingest_cmd "$d" 0
    [ ! -e "$d/work/$DATE/ingest/rejects.tsv" ] || [ -z "$(rejects_of "$d")" ] ||
        fail "stale rejects.tsv after a clean rerun: $(rejects_of "$d")"
    expect_count "$d" reject_total 0
}
check "max_reject_fraction boundary (1/1000 passes, 1/999 fails), clean rerun" threshold

# ---------------------------------------------------------------- missing / empty inputs
empty_pin_board() {
    local d
    d=$(new_case)
    : >"$d/in/pin_board.tsv"
    expect_exit 3 ingest_cmd "$d" 0
    grep -q pin_board "$E2E_ERR" || fail "stderr does not name pin_board: $(tail -n 2 "$E2E_ERR")"
    [ ! -e "$d/work/$DATE/ingest/_SUCCESS.json" ] || fail "_SUCCESS.json written"
    printf '# only a comment\n\n' >"$d/in/pin_board.tsv"
    expect_exit 3 ingest_cmd "$d" 0
}
check "empty (or comment-only) pin_board.tsv -> exit 3" empty_pin_board

no_valid_edge() {
    local d
    d=$(new_case 0)
    printf 'a\tb\n1\n' >"$d/in/pin_board.tsv"
    expect_exit 3 ingest_cmd "$d" 0 --set input.max_reject_fraction=1
    grep -q "no valid pin-board edge" "$E2E_ERR" || fail "stderr: $(tail -n 2 "$E2E_ERR")"
}
check "pin_board.tsv without a valid edge -> exit 3" no_valid_edge

missing_pin_board() {
    local d
    d=$(new_case)
    rm "$d/in/pin_board.tsv"
    gen_events 10 >"$d/in/events.tsv"
    expect_exit 3 ingest_cmd "$d" 0
    grep -q "pin_board.tsv" "$E2E_ERR" || fail "stderr does not name pin_board.tsv: $(tail -n 2 "$E2E_ERR")"
    [ ! -e "$d/work/$DATE/ingest/_SUCCESS.json" ] || fail "_SUCCESS.json written"
}
check "missing pin_board.tsv -> exit 3" missing_pin_board

empty_optional() {
    local d
    d=$(new_case)
    : >"$d/in/events.tsv"
    : >"$d/in/pin_pin.tsv"
    printf '# no tokens today\n' >"$d/in/pin_tokens.tsv"
    expect_exit 0 ingest_cmd "$d" 0
    expect_count "$d" rows_events 0
    expect_count "$d" rows_pin_pin 0
    expect_count "$d" rows_pin_tokens 0
    expect_count "$d" edges 800
    [ ! -s "$d/work/$DATE/ingest/rejects.tsv" ] || [ -z "$(rejects_of "$d")" ] || fail "rejects.tsv has rows"
    expect_exit 0 ingest_cmd "$d" 2
}
check "empty optional files -> exit 0 (1 and 2 ranks)" empty_optional

empty_zst() {
    local d
    d=$(new_case)
    : >"$d/in/events.tsv"
    zstd -q --rm "$d/in/events.tsv"
    zstd -q --rm "$d/in/pin_board.tsv"
    expect_exit 0 ingest_cmd "$d" 0
    expect_count "$d" rows_events 0
    expect_count "$d" edges 800
}
check "empty events.tsv.zst, pin_board.tsv.zst -> exit 0" empty_zst

both_plain_and_zst() {
    local d
    d=$(new_case)
    head -10 "$d/in/pin_board.tsv" | zstd -q -o "$d/in/pin_board.tsv.zst"
    expect_exit 3 ingest_cmd "$d" 2
    grep -q "pin_board.tsv and .*pin_board.tsv.zst both exist" "$E2E_ERR" || fail "both names: $(grep level=error "$E2E_ERR")"
    [ ! -e "$d/work/$DATE/ingest/_SUCCESS.json" ] || fail "ingest completed"
}
check "pin_board.tsv beside pin_board.tsv.zst -> exit 3 naming both" both_plain_and_zst

not_regular_inputs() {
    # an input name that is not a regular file is exit 3 naming it: a FIFO would block the read forever, a
    # dangling link is not an absent input
    local d
    d=$(new_case)
    mkfifo "$d/in/events.tsv"
    write_config "$d/c.ini" "$d/in" "$d/work"
    expect_exit 3 timeout 60 "$SAGEPIPE" job ingest --config "$d/c.ini" --date "$DATE" --force
    grep -q "events.tsv: not a regular file (a FIFO)" "$E2E_ERR" || fail "FIFO: $(grep level=error "$E2E_ERR")"
    rm "$d/in/events.tsv"
    ln -s /nonexistent/sagepipe "$d/in/pin_pin.tsv"
    expect_exit 3 ingest_cmd "$d" 0
    grep -q "pin_pin.tsv: a symbolic link to a missing file" "$E2E_ERR" || fail "link: $(grep level=error "$E2E_ERR")"
}
check "a FIFO or a dangling link as an input -> exit 3 naming it, no hang" not_regular_inputs

dense_no_records() {
    local d
    d=$(new_case)
    gen_dense "$d/in/pin_dense.sfv" 0 8
    expect_exit 0 ingest_cmd "$d" 0
    expect_count "$d" dense_rows 0
}
check "pin_dense.sfv with 0 records -> exit 0" dense_no_records

window_all() {
    local d
    d=$(new_case)
    setup_outside_window "$d"
    expect_exit 0 ingest_cmd "$d" 0 --set input.window=all
    expect_count "$d" reject_outside_window 0
    expect_count "$d" events 101
}
check "input.window=all accepts an event outside the day" window_all

# ---------------------------------------------------------------- corrupt binary / compressed input
# corrupt_sfv HOW [NP]: a 50-record file damaged HOW -> exit 3 naming pin_dense.sfv
corrupt_sfv() {
    local d f
    d=$(new_case)
    f=$d/in/pin_dense.sfv
    gen_dense "$f" 50 8
    case $1 in
        magic) printf 'SFV2' | dd of="$f" conv=notrunc status=none ;;
        version) printf '\002' | dd of="$f" bs=1 seek=4 conv=notrunc status=none ;;
        dim0) printf '\000' | dd of="$f" bs=1 seek=8 conv=notrunc status=none ;;
        truncated) truncate -s -13 "$f" ;;                 # ends inside the last record
        whole_record_missing) truncate -s -40 "$f" ;;      # 49 whole records, header says 50
        trailing) printf 'xyz' >>"$f" ;;
        count) printf '\377' | dd of="$f" bs=1 seek=12 conv=notrunc status=none ;;   # count 255
        short_header) truncate -s 10 "$f" ;;
        empty) : >"$f" ;;
    esac
    expect_exit 3 ingest_cmd "$d" "${2:-0}"
    grep -q "pin_dense.sfv" "$E2E_ERR" || fail "stderr does not name pin_dense.sfv: $(tail -n 2 "$E2E_ERR")"
    [ ! -e "$d/work/$DATE/ingest/_SUCCESS.json" ] || fail "_SUCCESS.json written"
}
for how in magic version dim0 truncated trailing count short_header; do
    check "corrupt pin_dense.sfv ($how) -> exit 3" corrupt_sfv "$how"
done
check "corrupt pin_dense.sfv (truncated), mpirun -np 2 -> exit 3" corrupt_sfv truncated 2

corrupt_zst() {
    local d z
    d=$(new_case 5000)
    zstd -q --rm "$d/in/pin_board.tsv"
    z=$d/in/pin_board.tsv.zst
    truncate -s $(($(stat -c %s "$z") / 2)) "$z"
    expect_exit 3 ingest_cmd "$d" 0
    grep -q "pin_board.tsv.zst" "$E2E_ERR" || fail "stderr does not name the file: $(tail -n 2 "$E2E_ERR")"
    printf 'not zstd at all\n' >"$z"
    expect_exit 3 ingest_cmd "$d" 0
    grep -q "pin_board.tsv.zst" "$E2E_ERR" || fail "stderr does not name the file: $(tail -n 2 "$E2E_ERR")"
}
check "truncated / foreign pin_board.tsv.zst -> exit 3" corrupt_zst

# ---------------------------------------------------------------- config errors
config_errors() {
    local d kv
    d=$(new_case 50)
    for kv in input.nope=1 input.max_reject_fraction=abc input.window=week; do
        (expect_exit 2 ingest_cmd "$d" 0 --set "$kv") || fail "--set $kv"
    done
    [ ! -e "$d/work/$DATE/ingest/_SUCCESS.json" ] || fail "_SUCCESS.json written"
}
check "config errors (--set input.nope=1, bad values) -> exit 2" config_errors

finish
