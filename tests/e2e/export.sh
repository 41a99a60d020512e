#!/usr/bin/env bash
# export: a shard set written by the export stage (through test_export_mpi
# --keep: fake infer parts, 2 ranks, since the infer stage is not built yet)
# is read by `sagepipe verify / get / nn`, by stock LMDB clients (mdb_stat,
# mdb_dump, python3-lmdb with lock=False) and by a program built against the
# installed reader library; routing agrees with the xxhsum tool; corruption
# is reported with exit 3.
. "$(dirname "$0")/lib.sh" "$@"
SRC=${SP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=$(dirname "$SAGEPIPE")
WRITER=$BUILD/test_export_mpi
[ -x "$WRITER" ] || { echo "skipped: $WRITER not built"; exit 77; }
PY=""
for p in python3 /usr/bin/python3; do
    if "$p" -c 'import lmdb' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || fail "no python3 with the lmdb module (Debian python3-lmdb; tools/install-deps.sh installs it)"

OUT=$E2E_TMP/x
mpi 2 "$WRITER" --keep "$OUT" >"$E2E_TMP/writer.log" 2>&1 || { tail -20 "$E2E_TMP/writer.log"; fail "test_export_mpi --keep failed"; }
SET=$OUT/emb/2026-11-21
M=$OUT/emb/latest/MANIFEST.json
[ -f "$M" ] || fail "no $M"

# The vector the writer gives (type, id): k/256 with k = (id*31 + j*7 + t*13 mod 2^64) % 1001 - 500 (tests/shard_testutil.h).
cat >"$E2E_TMP/vec.py" <<'PY'
import struct
TYPES = {"p": 0, "b": 1, "u": 2}
def vec(t, i, dim=16):
    return [((i * 31 + j * 7 + TYPES[t] * 13) % 2**64 % 1001 - 500) / 256.0 for j in range(dim)]  # uint64 arithmetic
def key(t, i):
    return t.encode() + struct.pack(">Q", i)
PY

t_verify_ok() {
    expect_exit 0 sp verify --manifest "$M"
    grep -q "^ok: .* 2 entities, 14 shards, 780 entries" "$E2E_OUT" || { cat "$E2E_OUT"; fail "verify summary"; }
    grep -q "^items .*types=pin,board dim=16 dtype=f32 shards=7 entries=690 ok" "$E2E_OUT" || fail "items line"
    [ -z "$(find "$OUT/emb" -name '*-lock' -o -name '*.tmp*')" ] || fail "lock or temp files in the set"
    [ "$(readlink "$OUT/emb/latest")" = 2026-11-21 ] || fail "latest"
}
check "verify passes; no lock or temp file; latest flipped" t_verify_ok

t_python_lmdb() {
    PYTHONPATH=$E2E_TMP "$PY" - "$M" <<'PY' || fail "python3-lmdb check"
import json, os, struct, sys, lmdb
from vec import vec, key
man = sys.argv[1]
base = os.path.dirname(man)
m = json.load(open(man))
seen = 0
for name, ent in m["entities"].items():
    fmt = "<%df" % ent["dim"]
    total = 0
    for s in ent["shards"]:
        path = os.path.join(base, s["file"])
        env = lmdb.open(path, subdir=False, readonly=True, lock=False)
        with env.begin() as txn:
            keys = [k for k, _ in txn.cursor()]
            assert keys == sorted(keys) and all(len(k) == 9 for k in keys), path
            assert len(keys) == s["count"], (path, len(keys), s["count"])
            for k, v in txn.cursor():
                t, i = chr(k[0]), struct.unpack(">Q", k[1:])[0]
                want = vec("b" if t == "u" else t, i, ent["dim"])  # user k = board k
                assert list(struct.unpack(fmt, v)) == want, (path, t, i)
                seen += 1
        env.close()
        total += s["count"]
    assert total == ent["count"]
assert seen == 780, seen
assert not [f for f in os.listdir(os.path.join(base, "items")) if f.endswith("-lock")], "python made a lock file"
PY
}
check "python3-lmdb (lock=False, subdir=False, readonly) reads every value" t_python_lmdb

t_stock_tools() {
    cp "$SET/items/items-00003-of-00007.mdb" "$E2E_TMP/s3.mdb" # mdb_stat/mdb_dump make a -lock file beside it
    n=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["entities"]["items"]["shards"][3]["count"])' "$M")
    mdb_stat -n "$E2E_TMP/s3.mdb" >"$E2E_TMP/stat" || fail "mdb_stat"
    grep -q "Entries: $n\$" "$E2E_TMP/stat" || { cat "$E2E_TMP/stat"; fail "mdb_stat entries != $n"; }
    want=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["entities"]["items"]["shards"][3]["xxh64"])' "$M")
    [ "$(xxhsum -H1 "$SET/items/items-00003-of-00007.mdb" | cut -d' ' -f1)" = "$want" ] || fail "xxhsum -H1 != manifest xxh64"
    mdb_dump -n "$E2E_TMP/s3.mdb" >"$E2E_TMP/dump" || fail "mdb_dump"
    PYTHONPATH=$E2E_TMP "$PY" - "$E2E_TMP/dump" "$n" <<'PY' || fail "mdb_dump content"
import struct, sys
from vec import vec
lines = open(sys.argv[1]).read().split("HEADER=END\n", 1)[1].splitlines()
data = [l.strip() for l in lines if l.startswith(" ")]
assert len(data) == 2 * int(sys.argv[2]), (len(data), sys.argv[2])
for k, v in zip(data[0::2], data[1::2]):
    kb, vb = bytes.fromhex(k), bytes.fromhex(v)
    t, i = chr(kb[0]), struct.unpack(">Q", kb[1:])[0]
    assert vb == struct.pack("<16f", *vec("b" if t == "u" else t, i)), (t, i)
print("\n".join("%s %d" % (chr(bytes.fromhex(k)[0]), struct.unpack(">Q", bytes.fromhex(k)[1:])[0]) for k in data[0::2][:5]))
PY
}
check "mdb_stat -n and mdb_dump -n read a shard; xxhsum -H1 gives its manifest checksum" t_stock_tools

t_routing_xxhsum() {
    # every key of shard 3 routes there by `xxhsum -H1` of its 8 big-endian id bytes
    "$PY" - "$SET/items/items-00003-of-00007.mdb" "$E2E_TMP" <<'PY' >"$E2E_TMP/ids" || fail "ids"
import lmdb, struct, sys
env = lmdb.open(sys.argv[1], subdir=False, readonly=True, lock=False)
with env.begin() as txn:
    for i, (k, _) in enumerate(txn.cursor()):
        if i < 12:
            open("%s/id%d.bin" % (sys.argv[2], i), "wb").write(k[1:])
            print(i)
PY
    [ -s "$E2E_TMP/ids" ] || fail "shard 3 is empty"
    while read -r i; do
        h=$(xxhsum -H1 "$E2E_TMP/id$i.bin" | cut -d' ' -f1)
        [ "$("$PY" -c 'import sys; print(int(sys.argv[1], 16) % 7)' "$h")" = 3 ] ||
            fail "id$i: xxh64 $h does not route to shard 3"
    done <"$E2E_TMP/ids"
}
check "routing = xxh64(big-endian id) % nshards, as xxhsum computes it" t_routing_xxhsum

t_get() {
    expect_exit 0 sp get --manifest "$M" p23758 b5 u5 p0 p18446744073709551615
    [ "$(wc -l <"$E2E_OUT")" = 5 ] || fail "5 lines"
    PYTHONPATH=$E2E_TMP "$PY" - "$E2E_OUT" <<'PY' || fail "get values"
import sys
from vec import vec
for line in open(sys.argv[1]):
    ident, vals = line.rstrip("\n").split("\t")
    t, i = ident[0], int(ident[1:])
    assert [float(x) for x in vals.split(" ")] == vec("b" if t == "u" else t, i), ident
PY
    expect_exit 3 sp get --manifest "$M" p23758 p2 b91
    [ "$(cut -f2 "$E2E_OUT" | tr -d '0-9. -' | paste -sd,)" = ",NOT_FOUND,NOT_FOUND" ] || { cat "$E2E_OUT"; fail "NOT_FOUND lines"; }
    grep -q "2 of 3 ids not found" "$E2E_ERR" || fail "missing-id message"
    expect_exit 2 sp get --manifest "$M" x9
    expect_exit 2 sp get p1
    expect_exit 2 sp get --manifest "$E2E_TMP/nope.json" p1
}
check "get prints vectors, NOT_FOUND with exit 3, usage errors exit 2" t_get

t_nn() {
    expect_exit 0 sp nn --manifest "$M" --id p23758 -k 5
    PYTHONPATH=$E2E_TMP "$PY" - "$M" "$E2E_OUT" <<'PY' || fail "nn against a brute-force scan"
import json, math, os, struct, sys, lmdb
man, out = sys.argv[1], sys.argv[2]
m = json.load(open(man))
vecs = {}
for s in m["entities"]["items"]["shards"]:
    env = lmdb.open(os.path.join(os.path.dirname(man), s["file"]), subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        for k, v in txn.cursor():
            vecs[chr(k[0]) + str(struct.unpack(">Q", k[1:])[0])] = struct.unpack("<16f", v)
q = vecs.pop("p23758")
cos = lambda a, b: sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
best = sorted((cos(q, v) for v in vecs.values()), reverse=True)
got = [l.split("\t") for l in open(out).read().splitlines()]
assert len(got) == 5, got
for r, (ident, score) in enumerate(got):
    assert abs(float(score) - cos(q, vecs[ident])) < 2e-6, (ident, score)
    assert abs(float(score) - best[r]) < 2e-6, (r, score, best[r])
PY
    expect_exit 3 sp nn --manifest "$M" --id p2
    grep -q NOT_FOUND "$E2E_OUT" || fail "nn NOT_FOUND"
    expect_exit 2 sp nn --manifest "$M" --id p23758 -k 0
    expect_exit 0 sp nn --manifest "$M" --id u5 -k 3
    [ "$(wc -l <"$E2E_OUT")" = 3 ] && ! grep -q "^[pb]" "$E2E_OUT" || fail "users search users only"
}
check "nn finds the exact cosine top-k of the item entity" t_nn

t_corrupt() {
    cp -r "$SET" "$E2E_TMP/bad"
    local f=$E2E_TMP/bad/items/items-00003-of-00007.mdb
    "$PY" -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=1; open(p,"wb").write(b)' "$f"
    expect_exit 3 sp verify --manifest "$E2E_TMP/bad/MANIFEST.json"
    grep -q "CORRUPT items/items-00003-of-00007.mdb: xxh64" "$E2E_ERR" || { cat "$E2E_ERR"; fail "bad shard not named"; }
    grep -q "^items .* CORRUPT" "$E2E_OUT" && grep -q "^users .* ok" "$E2E_OUT" || fail "per-entity status"
    rm "$E2E_TMP/bad/users/users-00001-of-00007.mdb"
    expect_exit 3 sp verify --manifest "$E2E_TMP/bad/MANIFEST.json"
    grep -q "CORRUPT users/users-00001-of-00007.mdb: missing" "$E2E_ERR" || fail "missing shard"
    grep -q "CORRUPT: 2 of 14 shards failed" "$E2E_OUT" || fail "summary of 2 bad shards"
    head -c 100 "$M" >"$E2E_TMP/bad/MANIFEST.json"
    expect_exit 3 sp verify --manifest "$E2E_TMP/bad/MANIFEST.json"
    grep -q "not JSON" "$E2E_ERR" || fail "truncated manifest"
    expect_exit 2 sp verify --manifest "$E2E_TMP/none.json"
    expect_exit 2 sp verify
    # a damaged page (LMDB trusts its file; the checksum is not read on a lookup): exit 3 saying so, never a
    # signal -- at offset 16 of the first data page the scan faults, at 8 LMDB returns MDB_PAGE_NOTFOUND
    printf '5 1\n' >"$E2E_TMP/t.txt"
    for off in 8 16; do
        rm -rf "$E2E_TMP/dmg"
        cp -r "$SET" "$E2E_TMP/dmg"
        printf '\377\377\377\377' | dd of="$E2E_TMP/dmg/items/items-00003-of-00007.mdb" bs=1 \
            seek=$((4096 * 2 + off)) conv=notrunc 2>/dev/null
        expect_exit 3 sp nn --manifest "$E2E_TMP/dmg/MANIFEST.json" --id p23758
        grep -q "shard is damaged" "$E2E_ERR" || fail "nn on a damaged page (offset $off): $(cat "$E2E_ERR")"
        # eval reads every vector: it checks the checksums first instead of counting damaged items as missing
        expect_exit 3 sp eval --manifest "$E2E_TMP/dmg/MANIFEST.json" --test "$E2E_TMP/t.txt"
        grep -q "CORRUPT items/items-00003-of-00007.mdb: xxh64" "$E2E_ERR" || fail "eval: $(cat "$E2E_ERR")"
    done
}
check "verify names each corrupt or missing shard and exits 3" t_corrupt

# Damage the manifest was made to agree with (its size and checksum recomputed), so that verify reads the
# file: exit 3 naming the damage, never a signal or LMDB's abort.
t_damage_behind_checksum() {
    cat >"$E2E_TMP/fix.py" <<'PY'
import json, subprocess, sys
m, ent, i, f = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
j = json.load(open(m))
s = j["entities"][ent]["shards"][i]
s["bytes"] = len(open(f, "rb").read())
s["xxh64"] = subprocess.check_output(["xxhsum", "-H1", f]).decode().split()[0]
json.dump(j, open(m, "w"))
PY
    local f
    # a leaf page's flags cleared: LMDB's cursor asserts IS_LEAF (it aborts the process unless hooked)
    rm -rf "$E2E_TMP/dmg" && cp -r "$SET" "$E2E_TMP/dmg"
    f=$E2E_TMP/dmg/items/items-00003-of-00007.mdb
    "$PY" -c 'import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
leaves = [q for q in range(2, len(b) // 4096) if b[q * 4096 + 10] == 2]
assert leaves, "no leaf page"
b[leaves[-1] * 4096 + 10] = 0
open(p, "wb").write(b)' "$f" || fail "no leaf page to damage"
    "$PY" "$E2E_TMP/fix.py" "$E2E_TMP/dmg/MANIFEST.json" items 3 "$f"
    expect_exit 3 sp verify --manifest "$E2E_TMP/dmg/MANIFEST.json"
    grep -q "items-00003-of-00007.mdb" "$E2E_ERR" || fail "verify, leaf flags: $(cat "$E2E_ERR")"
    expect_exit 3 sp nn --manifest "$E2E_TMP/dmg/MANIFEST.json" --id p23758
    grep -q "shard is damaged" "$E2E_ERR" || fail "nn, leaf flags: $(cat "$E2E_ERR")"
    # a shard cut short inside its last page: LMDB would read the missing bytes as zeros
    rm -rf "$E2E_TMP/dmg" && cp -r "$SET" "$E2E_TMP/dmg"
    f=$E2E_TMP/dmg/users/users-00002-of-00007.mdb
    truncate -s $(($(stat -c %s "$f") - 1000)) "$f"
    "$PY" "$E2E_TMP/fix.py" "$E2E_TMP/dmg/MANIFEST.json" users 2 "$f"
    expect_exit 3 sp verify --manifest "$E2E_TMP/dmg/MANIFEST.json"
    grep -q "CORRUPT users/users-00002-of-00007.mdb: cut short" "$E2E_ERR" || fail "verify, cut short: $(cat "$E2E_ERR")"
    # a NaN where a vector's first value was (get reads one shard and no checksum)
    rm -rf "$E2E_TMP/dmg" && cp -r "$SET" "$E2E_TMP/dmg"
    "$PY" -c 'import glob, struct, sys
sys.path.insert(0, sys.argv[2]); from vec import key
for p in glob.glob(sys.argv[1] + "/items/*.mdb"):
    b = bytearray(open(p, "rb").read()); k = b.find(key("p", 23758))
    if k > 0:
        b[k + 9:k + 13] = struct.pack("<f", float("nan")); open(p, "wb").write(b); sys.exit(0)
sys.exit(1)' "$E2E_TMP/dmg" "$E2E_TMP" || fail "no p23758 key"
    expect_exit 3 sp get --manifest "$E2E_TMP/dmg/MANIFEST.json" p23758
    grep -q "not finite" "$E2E_ERR" || fail "get, NaN: $(cat "$E2E_ERR")"
    expect_exit 3 sp nn --manifest "$E2E_TMP/dmg/MANIFEST.json" --id p23758
    grep -q "not finite" "$E2E_ERR" || fail "nn, NaN: $(cat "$E2E_ERR")"
    # shards listed out of routing order: every lookup would miss
    rm -rf "$E2E_TMP/dmg" && cp -r "$SET" "$E2E_TMP/dmg"
    "$PY" -c 'import json, sys
j = json.load(open(sys.argv[1])); s = j["entities"]["items"]["shards"]; s[0], s[1] = s[1], s[0]
json.dump(j, open(sys.argv[1], "w"))' "$E2E_TMP/dmg/MANIFEST.json"
    expect_exit 3 sp get --manifest "$E2E_TMP/dmg/MANIFEST.json" p23758
    grep -q "is named shard 1 of 7, but is entry 0" "$E2E_ERR" || fail "get, shard order: $(cat "$E2E_ERR")"
}
check "damage behind a matching checksum: verify, get and nn exit 3 naming it" t_damage_behind_checksum

t_installed_library() {
    command -v cc >/dev/null && command -v pkg-config >/dev/null && [ -f "$BUILD/CMakeCache.txt" ] ||
        { echo "no cc, pkg-config or build tree: not checked"; return 0; }
    ! grep -q "^SAGEPIPE_SANITIZE:BOOL=ON" "$BUILD/CMakeCache.txt" ||
        { echo "sanitizer build: the library needs libasan, not checked"; return 0; }
    local inst=$E2E_TMP/inst
    cmake --install "$BUILD" --prefix "$inst" >"$E2E_TMP/install.log" 2>&1 ||
        { cat "$E2E_TMP/install.log"; fail "cmake --install"; }
    local pc
    pc=$(find "$inst" -name sagepipe-reader.pc) && [ -n "$pc" ] || fail "no sagepipe-reader.pc installed"
    [ -f "$inst/include/sagepipe_reader.h" ] || fail "header not installed"
    # the .pc file carries the configured prefix: point it at this one
    cc -Wall -Wextra -Werror -o "$E2E_TMP/reader_example" "$SRC/docs/reader_example.c" \
        $(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --define-variable=prefix="$inst" --cflags --libs sagepipe-reader) ||
        fail "docs/reader_example.c does not build against the installed library"
    LD_LIBRARY_PATH=$(dirname "$(find "$inst" -name 'libsagepipe_reader.so' | head -1)") \
        "$E2E_TMP/reader_example" "$M" p23758 b5 u5 p2 >"$E2E_TMP/ex.out" 2>"$E2E_TMP/ex.err"
    [ $? = 3 ] || { cat "$E2E_TMP/ex.err"; fail "reader_example exit"; }
    expect_exit 3 sp get --manifest "$M" p23758 b5 u5 p2
    diff "$E2E_OUT" "$E2E_TMP/ex.out" || fail "reader_example and sagepipe get differ"
    grep -q "items, types pb, dim 16, f32, 690 entries in 7 shards" "$E2E_TMP/ex.err" || fail "entity summary"
}
check "docs/reader_example.c builds with pkg-config against the installed library and reads the set" t_installed_library
finish
