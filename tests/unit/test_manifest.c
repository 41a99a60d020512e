/* test_manifest: MANIFEST.json round-trips (the eval block too); each kind
 * of malformed manifest is refused naming the field; verify passes a good
 * set and names the shard and the problem for a flipped byte, a misrouted
 * key (with a matching checksum), wrong value sizes, a count mismatch, a
 * NaN, a missing file; the public reader (sagepipe_reader.h) gets every
 * vector back, iterates every entry, and reports its error codes. */
#include "check.h"
#include "file_testutil.h"
#include "manifest.h"
#include "sagepipe_reader.h"
#include "shard_testutil.h"
#include "sp_base.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

/* Replaces the first occurrence of `from` in text by `to` (into out). */
static int edit(const char *text, const char *from, const char *to, char *out, size_t cap) {
    const char *p = strstr(text, from);
    if (!p) return 0;
    snprintf(out, cap, "%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
    return 1;
}

static void test_round_trip(void) {
    char dir[128], path[256];
    snprintf(dir, sizeof dir, "%s/rt", tmpdir);
    sp_manifest m, r;
    CHECK_RC(test_make_set(dir, SP_DT_F16, 8, 3, 50, 20, 10, &m), SP_OK);
    m.eval_json = strdup("{\"recall@20\":0.1875,\"n\":18446744073709551615,\"gate\":{\"ok\":true,\"why\":null},"
                         "\"list\":[1,-2.5,\"x\\\"y\"]}");
    snprintf(path, sizeof path, "%s/MANIFEST.json", dir);
    CHECK_RC(sp_manifest_write(&m, path), SP_OK);
    CHECK_RC(sp_manifest_load(&r, path), SP_OK);
    CHECK_STR(r.date, "2026-11-21");
    CHECK_STR(r.model_version, "test");
    CHECK_EQ_INT(r.nentities, 2);
    CHECK_STR(r.ent[1].name, "users");
    CHECK_EQ_INT(r.ent[0].types, (1u << SP_PIN) | (1u << SP_BOARD));
    CHECK_EQ_INT(r.ent[0].dtype, SP_DT_F16);
    CHECK_EQ_U64(r.ent[0].count, 70);
    CHECK_EQ_U64(r.ent[1].count, 10);
    CHECK_EQ_INT(sp_manifest_entity_of(&r, SP_USER), 1);
    CHECK_EQ_INT(sp_manifest_entity_find(&r, "items"), 0);
    for (uint32_t s = 0; s < 3; s++) {
        CHECK_STR(r.ent[0].shards[s].file, m.ent[0].shards[s].file);
        CHECK_EQ_U64(r.ent[0].shards[s].xxh64, m.ent[0].shards[s].xxh64);
    }
    CHECK_STR(r.ent[0].shards[2].file, "items/items-00002-of-00003.mdb");
    char *a, *b;
    size_t na, nb;
    CHECK_RC(sp_manifest_to_json(&m, &a, &na), SP_OK);
    CHECK_RC(sp_manifest_to_json(&r, &b, &nb), SP_OK);
    CHECK(na == nb && !memcmp(a, b, na)); /* eval block kept exactly */
    CHECK(strstr(a, "\"n\":18446744073709551615") != NULL);
    free(a);
    free(b);
    sp_verify_report rep;
    CHECK_RC(sp_manifest_verify(&r, dir, &rep), SP_OK);
    CHECK_EQ_U64(rep.entries, 80);
    CHECK_EQ_U64(rep.shards, 6);
    CHECK_EQ_INT(rep.nproblems, 0);
    sp_manifest_free(&m);
    sp_manifest_free(&r);
    CHECK_RC(sp_manifest_load(&r, "/nonexistent/MANIFEST.json"), SP_EUSAGE);
    test_rm_tree(dir);
}

static void test_parse_errors(void) {
    char dir[128], path[256];
    snprintf(dir, sizeof dir, "%s/pe", tmpdir);
    sp_manifest m;
    CHECK_RC(test_make_set(dir, SP_DT_F32, 4, 2, 10, 5, 0, &m), SP_OK);
    sp_manifest_free(&m);
    snprintf(path, sizeof path, "%s/MANIFEST.json", dir);
    size_t n;
    char *good = test_read(path, &n), *text = malloc(n + 4096);
    CHECK_RC(sp_manifest_parse(&m, good, n, "M"), SP_OK);
    sp_manifest_free(&m);
    char first_file[64];
    snprintf(first_file, sizeof first_file, "\"file\":\"items/items-00000-of-00002.mdb\"");
    static const struct { const char *from, *to; int rc; const char *msg; } E[] = {
        {"\"sagepipe-shards\"", "\"other\"", SP_EFORMAT, "format"},
        {"\"format_version\":1", "\"format_version\":2", SP_ENOTIMPL, "format_version 2"},
        {"\"format_version\":1", "\"format_version\":\"1\"", SP_EFORMAT, "format_version"},
        {"\"date\":\"2026-11-21\"", "\"date\":\"2026-13-01\"", SP_EFORMAT, "date"},
        {"\"model_version\":\"test\",", "", SP_EFORMAT, "model_version"},
        {"\"dim\":4", "\"dim\":0", SP_EFORMAT, "entities.items.dim"},
        {"\"dim\":4", "\"dim\":-4", SP_EFORMAT, "entities.items.dim"},
        {"\"dtype\":\"f32\"", "\"dtype\":\"f64\"", SP_EFORMAT, "entities.items.dtype"},
        {"\"nshards\":2", "\"nshards\":3", SP_EFORMAT, "differs from nshards"},
        {"\"types\":[\"pin\",\"board\"]", "\"types\":[\"pin\",\"pin\"]", SP_EFORMAT, "listed twice"},
        {"\"types\":[\"pin\",\"board\"]", "\"types\":[\"pin\",\"cat\"]", SP_EFORMAT, "unknown type"},
        {"\"types\":[\"pin\",\"board\"]", "\"types\":[]", SP_EFORMAT, "types"},
        {"\"xxh64\":\"", "\"xxh64\":\"X", SP_EFORMAT, "shards[0].xxh64"},
        {"\"items/items-00000", "\"/items/items-00000", SP_EFORMAT, "shards[0].file"},
        {"\"items/items-00000", "\"../items/items-00000", SP_EFORMAT, "relative path"},
        {"\"items/items-00000", "\"items/./items-00000", SP_EFORMAT, "relative path"},
        {"{\"format\"", "[{\"format\"", SP_EFORMAT, "not JSON"},
        {"\"entities\":{", "\"entities\":{\"items\":{},", SP_EFORMAT, "entities.items."},
        {"\"count\":15", "\"count\":16", SP_EFORMAT, "sum of the shards"},
        {"\"entities\":{\"items\":{", "\"entities\":{\"\":{", SP_EFORMAT, "bad entity name"},
    };
    for (size_t i = 0; i < sizeof E / sizeof *E; i++) {
        if (!edit(good, E[i].from, E[i].to, text, n + 4096)) {
            CHECK_MSG(0, "case %zu: '%s' not in the manifest", i, E[i].from);
            continue;
        }
        int rc = sp_manifest_parse(&m, text, strlen(text), "M");
        CHECK_MSG(rc == E[i].rc && strstr(sp_errmsg(), E[i].msg) && !strncmp(sp_errmsg(), "M: ", 3),
                  "case %zu: rc %d, message '%s' (want %d, '%s')", i, rc, sp_errmsg(), E[i].rc, E[i].msg);
        CHECK(m.nentities == 0 && m.eval_json == NULL);
    }
    /* truncated at every length: always refused, never crashes */
    int accepted = 0;
    for (size_t len = 0; len + 1 < n; len += 7)
        if (!sp_manifest_parse(&m, good, len, "M")) accepted++, sp_manifest_free(&m);
    CHECK_EQ_INT(accepted, 0);
    free(good);
    free(text);
    test_rm_tree(dir);
}

static void refresh_entry(const char *dir, sp_manifest *m, int e, uint32_t s, uint64_t count);

/* Replaces shard s of entity 0 by a one-entry shard (dim, dtype, key) and
 * makes its manifest entry match the file, so only the content is wrong. */
static void forge(const char *dir, sp_manifest *m, uint32_t s, uint32_t dim, sp_dtype dt, sp_type t, uint64_t id,
                  const float *v) {
    char p[512];
    sp_shard_w *w;
    snprintf(p, sizeof p, "%s/%s", dir, m->ent[0].shards[s].file);
    CHECK_RC(sp_shard_w_open(&w, p, dim, dt, 1), SP_OK);
    if (!w) return;
    CHECK_RC(sp_shard_w_put(w, t, id, v), SP_OK);
    CHECK_RC(sp_shard_w_commit(w, NULL), SP_OK);
    refresh_entry(dir, m, 0, s, 1);
}

/* Rewrites the manifest entry of shard s of entity e from its file. */
static void refresh_entry(const char *dir, sp_manifest *m, int e, uint32_t s, uint64_t count) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, m->ent[e].shards[s].file);
    CHECK_RC(sp_file_xxh64(p, &m->ent[e].shards[s].xxh64, &m->ent[e].shards[s].bytes), SP_OK);
    m->ent[e].count += count - m->ent[e].shards[s].count;
    m->ent[e].shards[s].count = count;
}

static void test_verify(void) {
    char dir[128], p[512];
    snprintf(dir, sizeof dir, "%s/vf", tmpdir);
    sp_manifest m;
    sp_verify_report rep;
    CHECK_RC(test_make_set(dir, SP_DT_I8, 6, 4, 300, 100, 0, &m), SP_OK);
    CHECK_RC(sp_manifest_verify(&m, dir, &rep), SP_OK);
    /* a flipped byte in the middle of shard 2 */
    snprintf(p, sizeof p, "%s/%s", dir, m.ent[0].shards[2].file);
    size_t n;
    char *b = test_read(p, &n);
    b[n / 2] ^= 0x10;
    test_write(p, b, n);
    CHECK_RC(sp_manifest_verify(&m, dir, &rep), SP_EFORMAT);
    CHECK_EQ_INT(rep.nproblems, 1);
    CHECK_EQ_INT(rep.ent_problems[0], 1);
    CHECK_MSG(strstr(rep.problem[0], "items/items-00002-of-00004.mdb: xxh64") == rep.problem[0], "%s", rep.problem[0]);
    b[n / 2] ^= 0x10;
    test_write(p, b, n);
    free(b);
    CHECK_RC(sp_manifest_verify(&m, dir, &rep), SP_OK);
    /* shard 1 rewritten with a key of another shard (checksum made to match) */
    float v[6] = {1, 2, 3, 4, 5, 6};
    uint64_t foreign = 1, own = 1;
    while (sp_shard_of(foreign, 4) == 1) foreign++;
    while (sp_shard_of(own, 4) != 1) own++;
    forge(dir, &m, 1, 6, SP_DT_I8, SP_PIN, foreign, v);
    CHECK_RC(sp_manifest_verify(&m, dir, &rep), SP_EFORMAT);
    CHECK_MSG(strstr(rep.problem[0], "routes to shard") && strstr(rep.problem[0], "found in shard 1"), "%s",
              rep.problem[0]);
    /* ... with values of another dim */
    forge(dir, &m, 1, 5, SP_DT_I8, SP_PIN, own, v);
    CHECK_RC(sp_manifest_verify(&m, dir, &rep), SP_EFORMAT);
    CHECK_MSG(strstr(rep.problem[0], "value of 9 bytes"), "%s", rep.problem[0]);
    /* ... a user key in the items entity */
    forge(dir, &m, 1, 6, SP_DT_I8, SP_USER, own, v);
    CHECK_RC(sp_manifest_verify(&m, dir, &rep), SP_EFORMAT);
    CHECK_MSG(strstr(rep.problem[0], "type user"), "%s", rep.problem[0]);
    /* ... a NaN (f32 shard in an f32 manifest entry) */
    m.ent[0].dtype = SP_DT_F32;
    v[3] = NAN;
    forge(dir, &m, 1, 6, SP_DT_F32, SP_PIN, own, v);
    m.ent[0].shards[0] = m.ent[0].shards[1]; /* only shard 1 matters below */
    CHECK_RC(sp_manifest_verify(&m, dir, &rep), SP_EFORMAT);
    CHECK_MSG(strstr(rep.problem[0], "value 3 is nan") || strstr(rep.problem[1], "value 3 is nan"), "%s | %s",
              rep.problem[0], rep.problem[1]);
    sp_manifest_free(&m);
    /* count mismatch, a metadata key (skipped), a missing shard */
    CHECK_RC(test_make_set(dir, SP_DT_F32, 6, 2, 40, 10, 0, &m), SP_OK);
    snprintf(p, sizeof p, "%s/%s", dir, m.ent[0].shards[0].file);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    CHECK_RC(mdb_env_create(&env), 0);
    CHECK_RC(mdb_env_open(env, p, MDB_NOSUBDIR | MDB_NOLOCK, 0644), 0);
    CHECK_RC(mdb_txn_begin(env, NULL, 0, &txn), 0);
    CHECK_RC(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    MDB_val k = {4, "meta"}, val = {3, "abc"};
    CHECK_RC(mdb_put(txn, dbi, &k, &val, 0), 0);
    CHECK_RC(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    refresh_entry(dir, &m, 0, 0, m.ent[0].shards[0].count);
    CHECK_RC(sp_manifest_verify(&m, dir, &rep), SP_OK);
    CHECK_EQ_U64(rep.meta_keys, 1);
    m.ent[0].shards[0].count++;
    CHECK_RC(sp_manifest_verify(&m, dir, &rep), SP_EFORMAT);
    CHECK_MSG(strstr(rep.problem[0], "manifest says"), "%s", rep.problem[0]);
    m.ent[0].shards[0].count--;
    snprintf(p, sizeof p, "%s/%s", dir, m.ent[0].shards[1].file);
    unlink(p);
    CHECK_RC(sp_manifest_verify(&m, dir, &rep), SP_EFORMAT);
    CHECK_MSG(strstr(rep.problem[0], "items/items-00001-of-00002.mdb: missing"), "%s", rep.problem[0]);
    sp_manifest_free(&m);
    test_rm_tree(dir);
}

static void test_reader(void) {
    char dir[128], man[256];
    snprintf(dir, sizeof dir, "%s/rd", tmpdir);
    snprintf(man, sizeof man, "%s/MANIFEST.json", dir);
    for (int dt = 0; dt < 3; dt++) {
        sp_manifest m;
        CHECK_RC(test_make_set(dir, (sp_dtype)dt, 16, 5, 400, 120, dt == 0 ? 0 : 60, &m), SP_OK);
        sp_manifest_free(&m);
        spr_set *set = NULL;
        CHECK_RC(spr_open(man, dt == 2 ? SPR_VERIFY : 0, &set), SPR_SUCCESS);
        if (!set) continue;
        CHECK_STR(spr_date(set), "2026-11-21");
        CHECK_STR(spr_model_version(set), "test");
        CHECK_EQ_INT(spr_entity_count(set), dt == 0 ? 1 : 2);
        spr_entity en;
        CHECK_RC(spr_entity_of(set, 'b', &en), SPR_SUCCESS);
        CHECK_STR(en.name, "items");
        CHECK_STR(en.types, "pb");
        CHECK_STR(en.dtype, dt == 0 ? "f32" : dt == 1 ? "f16" : "i8");
        CHECK(en.dim == 16 && en.count == 520 && en.nshards == 5);
        float v[16], want[16];
        uint64_t wrong = 0;
        for (uint64_t id = 1; id <= 400; id++) {
            CHECK_RC(spr_get(set, 'p', id, v, 16), SPR_SUCCESS);
            test_vec(SP_PIN, id, 16, want);
            for (int j = 0; j < 16; j++)
                if (fabsf(v[j] - want[j]) > (dt == 2 ? 500.0f / 256 / 254 + 1e-6f : 0)) wrong++;
        }
        CHECK_EQ_U64(wrong, 0);
        const void *raw;
        size_t len;
        CHECK_RC(spr_get_raw(set, 'b', 7, &raw, &len), SPR_SUCCESS);
        CHECK_EQ_U64(len, sp_dtype_bytes((sp_dtype)dt, 16));
        CHECK_RC(spr_get(set, 'p', 401, v, 16), SPR_NOTFOUND);
        CHECK_RC(spr_get(set, 'b', 0, v, 16), SPR_NOTFOUND);
        CHECK_RC(spr_get(set, 'p', 1, v, 15), EINVAL);
        CHECK_RC(spr_get(set, 'x', 1, v, 16), SPR_NOTYPE);
        if (dt == 0) CHECK_RC(spr_get(set, 'u', 1, v, 16), SPR_NOTYPE);
        else {
            CHECK_RC(spr_get(set, 'u', 60, v, 16), SPR_SUCCESS);
            CHECK_RC(spr_get(set, 'u', 61, v, 16), SPR_NOTFOUND);
        }
        /* iterate: every entry once, values as stored */
        spr_iter *it, *it2;
        CHECK_RC(spr_iter_open(set, "items", &it), SPR_SUCCESS);
        CHECK_RC(spr_iter_open(set, "items", &it2), SPR_SUCCESS); /* left for spr_close */
        char t;
        uint64_t id, np = 0, nb = 0;
        int rc;
        wrong = 0;
        while (!(rc = spr_iter_next(it, &t, &id, v, 16))) {
            float g[16];
            CHECK_RC(spr_get(set, t, id, g, 16), SPR_SUCCESS);
            if (memcmp(g, v, sizeof v)) wrong++;
            np += t == 'p', nb += t == 'b';
        }
        CHECK_RC(rc, SPR_NOTFOUND);
        CHECK(np == 400 && nb == 120 && wrong == 0);
        CHECK_RC(spr_iter_next(it, &t, &id, v, 16), SPR_NOTFOUND);
        spr_iter_close(it);
        CHECK_RC(spr_iter_open(set, "nope", &it), SPR_NOTYPE);
        CHECK_EQ_U64(spr_shard_of(123, 1000003), 0xc286ecc19e0e4e98ULL % 1000003);
        CHECK_RC(spr_parse_id("u42", &t, &id), SPR_SUCCESS);
        CHECK(t == 'u' && id == 42);
        CHECK_RC(spr_parse_id("q42", &t, &id), EINVAL);
        spr_close(set);
    }
    /* errors at open */
    spr_set *set = (spr_set *)1;
    CHECK_RC(spr_open("/nonexistent/MANIFEST.json", 0, &set), ENOENT);
    CHECK(set == NULL);
    size_t n;
    char *text = test_read(man, &n), *ed = malloc(n + 64);
    edit(text, "\"format_version\":1", "\"format_version\":7", ed, n + 64);
    char man2[300];
    snprintf(man2, sizeof man2, "%s/M2.json", dir);
    test_write(man2, ed, strlen(ed));
    CHECK_RC(spr_open(man2, 0, &set), SPR_VERSION);
    edit(text, "\"dtype\":\"i8\"", "\"dtype\":\"i9\"", ed, n + 64);
    test_write(man2, ed, strlen(ed));
    CHECK_RC(spr_open(man2, 0, &set), SPR_CORRUPT);
    CHECK(strstr(spr_errmsg(), "dtype") != NULL);
    /* a corrupted shard: found by SPR_VERIFY, not by a plain open (same size) */
    char p[512];
    snprintf(p, sizeof p, "%s/users/users-00003-of-00005.mdb", dir);
    char *b = test_read(p, &n);
    b[n - 100] ^= 1;
    test_write(p, b, n);
    free(b);
    CHECK_RC(spr_open(man, SPR_VERIFY, &set), SPR_CORRUPT);
    CHECK(strstr(spr_errmsg(), "users/users-00003-of-00005.mdb") != NULL);
    CHECK_RC(spr_open(man, 0, &set), SPR_SUCCESS);
    spr_close(set);
    CHECK(truncate(p, 4096) == 0);
    CHECK_RC(spr_open(man, 0, &set), SPR_CORRUPT);
    for (int c = SPR_NOTFOUND; c <= SPR_NOTYPE; c++) CHECK(strncmp(spr_strerror(c), "SPR_", 4) == 0);
    CHECK(spr_strerror(ENOENT) != NULL && spr_strerror(MDB_NOTFOUND) != NULL);
    free(text);
    free(ed);
    test_rm_tree(dir);
}

int main(void) {
    strcpy(tmpdir, "/tmp/sp_manifest_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_parse_errors();
    test_verify();
    test_reader();
    CHECK_EQ_INT(test_files_with(tmpdir, "-lock"), 0);
    test_rm_tree(tmpdir);
    return CHECK_DONE();
}
