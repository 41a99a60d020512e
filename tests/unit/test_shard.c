/* test_shard: shard keys sort like (type, id) and route by xxh64 of the
 * big-endian id (golden values from the xxhsum tool); f16 is exact both
 * ways where it can be and rounds to nearest even (against the compiler's
 * _Float16); i8 stays within scale/2; the writer round-trips every dtype
 * with no lock or temp file left, refuses out-of-order and duplicate keys;
 * `latest` flips atomically and only onto a published date. */
#include "check.h"
#include "shard.h"
#include "sp_base.h"

#include <errno.h>
#include <float.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "shard_testutil.h"

static char tmpdir[64];

static void test_keys(void) {
    uint8_t k[9], k2[9];
    sp_shard_key(k, SP_PIN, 0x0102030405060708ULL);
    static const uint8_t want[9] = {'p', 1, 2, 3, 4, 5, 6, 7, 8};
    CHECK(memcmp(k, want, 9) == 0);
    sp_type t;
    uint64_t id;
    for (int ty = 0; ty < SP_NTYPES; ty++) {
        sp_shard_key(k, (sp_type)ty, UINT64_MAX - (uint64_t)ty);
        CHECK_RC(sp_shard_key_parse(k, 9, &t, &id), SP_OK);
        CHECK_EQ_INT(t, ty);
        CHECK_EQ_U64(id, UINT64_MAX - (uint64_t)ty);
    }
    CHECK_RC(sp_shard_key_parse(k, 8, &t, &id), SP_EFORMAT);
    k[0] = 'x';
    CHECK_RC(sp_shard_key_parse(k, 9, &t, &id), SP_EFORMAT);
    /* byte order = (type byte, numeric id) order */
    sp_rng r;
    sp_rng_init(&r, 1, 99, 0);
    int bad = 0;
    for (int i = 0; i < 100000; i++) {
        uint64_t a = sp_rng_u64(&r) >> (sp_rng_below(&r, 64)), b = sp_rng_u64(&r) >> (sp_rng_below(&r, 64));
        sp_type ta = (sp_type)sp_rng_below(&r, 3), tb = (sp_type)sp_rng_below(&r, 3);
        sp_shard_key(k, ta, a);
        sp_shard_key(k2, tb, b);
        int c = memcmp(k, k2, 9);
        int want_c = sp_type_char[ta] != sp_type_char[tb] ? (sp_type_char[ta] < sp_type_char[tb] ? -1 : 1)
                                                           : (a < b ? -1 : a > b);
        if ((c > 0) - (c < 0) != want_c) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* text ids */
    CHECK_RC(sp_shard_id_parse("p123", &t, &id), SP_OK);
    CHECK(t == SP_PIN && id == 123);
    CHECK_RC(sp_shard_id_parse("u18446744073709551615", &t, &id), SP_OK);
    CHECK(t == SP_USER && id == UINT64_MAX);
    CHECK_RC(sp_shard_id_parse("b0", &t, &id), SP_OK);
    CHECK(t == SP_BOARD && id == 0);
    const char *bad_ids[] = {"", "p", "x1", "p-1", "p+1", "p 1", "p1 ", "P1", "p18446744073709551616", "123", "pp1"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++)
        CHECK_MSG(sp_shard_id_parse(bad_ids[i], &t, &id) == SP_EUSAGE, "'%s' accepted", bad_ids[i]);
}

static void test_routing(void) {
    /* xxh64 of the 8 big-endian bytes, seed 0, as printed by `xxhsum -H1` of those bytes */
    static const struct { uint64_t id, xxh; } G[] = {
        {1, 0x9f1ffc793b8a47daULL}, {123, 0xc286ecc19e0e4e98ULL}, {UINT64_MAX, 0x85d136adb773c6c9ULL}};
    for (int i = 0; i < 3; i++)
        for (uint32_t n = 1; n < 70000; n = n * 3 + 1) CHECK_EQ_U64(sp_shard_of(G[i].id, n), G[i].xxh % n);
    /* the type does not take part: every shard of a set of 16 gets ids */
    uint64_t hits[16] = {0};
    for (uint64_t id = 0; id < 16000; id++) hits[sp_shard_of(id, 16)]++;
    for (int s = 0; s < 16; s++) CHECK_MSG(hits[s] > 850 && hits[s] < 1150, "shard %d got %llu of 16000", s,
                                           (unsigned long long)hits[s]);
}

/* Spacing of f16 values around |x| (normal range), for the error bound. */
static double f16_ulp(double ax) {
    int e;
    frexp(ax, &e); /* ax in [2^(e-1), 2^e) */
    double u = ldexp(1.0, e - 1 - 10);
    return u < 0x1p-24 ? 0x1p-24 : u;
}

static void test_f16(void) {
    /* every half survives half -> float -> half; NaNs stay NaN */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sp_f16_to_f32((uint16_t)h);
        uint16_t back = sp_f32_to_f16(f);
        int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan ? !(isnan(f) && (back & 0x7c00) == 0x7c00 && (back & 0x3ff)) : back != h) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    /* hand-checked cases: rounding ties to even, overflow, subnormals, signs */
    static const struct { float f; uint16_t h; } C[] = {
        {1.0f, 0x3c00},          {-2.0f, 0xc000},          {65504.0f, 0x7bff},  {65519.996f, 0x7bff},
        {65520.0f, 0x7c00},      {1e10f, 0x7c00},          {0x1p-14f, 0x0400},  {0x1p-24f, 0x0001},
        {0x1p-25f, 0x0000},      {0x1.8p-24f, 0x0002},     {0x1.4p-24f, 0x0001}, {-0x1p-25f, 0x8000},
        {1.0f + 0x1p-11f, 0x3c00}, {1.0f + 0x3p-11f, 0x3c02}, {0x1.ff8p-15f, 0x03ff}, {0x1.ffcp-15f, 0x0400},
        {-0.0f, 0x8000},
        {INFINITY, 0x7c00},      {-INFINITY, 0xfc00},      {0x1p-30f, 0x0000},  {0.1f, 0x2e66}};
    for (size_t i = 0; i < sizeof C / sizeof *C; i++)
        CHECK_MSG(sp_f32_to_f16(C[i].f) == C[i].h, "%a -> 0x%04x, want 0x%04x", (double)C[i].f,
                  sp_f32_to_f16(C[i].f), C[i].h);
    uint16_t qn = sp_f32_to_f16(NAN);
    CHECK((qn & 0x7c00) == 0x7c00 && (qn & 0x200));
    /* a sweep of float bit patterns: nearest (within half a spacing), and
     * identical to the compiler's conversion where it has _Float16 */
    int far = 0, differ = 0;
    for (uint64_t b = 0; b < 0x100000000ULL; b += 997) {
        uint32_t bits = (uint32_t)b;
        float f;
        memcpy(&f, &bits, 4);
        uint16_t h = sp_f32_to_f16(f);
#ifdef __FLT16_MAX__
        _Float16 ref = (_Float16)f;
        uint16_t rh;
        memcpy(&rh, &ref, 2);
        if (rh != h && !(isnan(f) && isnan(sp_f16_to_f32(h)))) differ++;
#endif
        if (!isfinite(f) || fabsf(f) >= 65504.0f) continue;
        double err = fabs((double)sp_f16_to_f32(h) - (double)f);
        if (err > f16_ulp(fabs((double)f)) / 2) far++;
    }
    CHECK_EQ_INT(far, 0);
    CHECK_EQ_INT(differ, 0);
    /* sp_vec_encode (F16C where the CPU has it) = the scalar conversion, bit for bit */
    float v[1003];
    uint16_t enc[1003];
    sp_rng r;
    sp_rng_init(&r, 5, 11, 0);
    int mism = 0;
    for (int rep = 0; rep < 200; rep++) {
        for (int j = 0; j < 1003; j++) {
            uint32_t bits = (uint32_t)sp_rng_u64(&r);
            if (rep % 2) bits = (bits & 0x807fffffu) | (uint32_t)(103 + sp_rng_below(&r, 40)) << 23; /* near f16 range */
            memcpy(&v[j], &bits, 4);
        }
        for (size_t c = 0; c < sizeof C / sizeof *C && rep == 0; c++) v[c] = C[c].f;
        sp_vec_encode(SP_DT_F16, v, 1003, enc);
        for (int j = 0; j < 1003; j++)
            if (enc[j] != sp_f32_to_f16(v[j]) && !(isnan(v[j]) && (enc[j] & 0x7c00) == 0x7c00 && (enc[j] & 0x3ff)))
                mism++;
    }
    CHECK_EQ_INT(mism, 0);
}

static void test_i8(void) {
    sp_rng r;
    sp_rng_init(&r, 3, 77, 0);
    float x[97], y[97];
    uint8_t enc[4 + 97];
    static const double scales[] = {1e-30, 1e-3, 1, 37.5, 1e30};
    int far = 0;
    for (int rep = 0; rep < 2000; rep++) {
        double sc = scales[rep % 5];
        uint32_t dim = 1 + (uint32_t)sp_rng_below(&r, 97);
        for (uint32_t j = 0; j < dim; j++) x[j] = (float)((sp_rng_unif(&r) * 2 - 1) * sc);
        CHECK_EQ_INT(sp_dtype_bytes(SP_DT_I8, dim), 4 + dim);
        sp_vec_encode(SP_DT_I8, x, dim, enc);
        sp_vec_decode(SP_DT_I8, enc, dim, y);
        float m = 0, scale;
        for (uint32_t j = 0; j < dim; j++) m = fmaxf(m, fabsf(x[j]));
        memcpy(&scale, enc, 4);
        CHECK_NEAR(scale, m / 127.0, m / 127.0 * 1e-6);
        for (uint32_t j = 0; j < dim; j++) {
            double err = fabs((double)y[j] - x[j]), bound = scale / 2.0 + 4 * FLT_EPSILON * m;
            if (err > bound) far++;
            if (fabsf(x[j]) == m) CHECK_NEAR(fabs((double)y[j]), m, m * 1e-6); /* the largest is exact (+-127) */
        }
    }
    CHECK_EQ_INT(far, 0);
    /* the encoder (SSE2 blocks + scalar tail) = the definition, computed here with lrintf */
    int mism = 0;
    for (int rep = 0; rep < 3000; rep++) {
        uint32_t dim = 1 + (uint32_t)(rep % 97);
        for (uint32_t j = 0; j < dim; j++) x[j] = (float)((sp_rng_unif(&r) * 2 - 1) * scales[rep % 5]);
        if (rep % 7 == 0) x[rep % dim] = (float)(scales[rep % 5] * 1.5); /* max exactly representable */
        sp_vec_encode(SP_DT_I8, x, dim, enc);
        float m = 0, scale;
        for (uint32_t j = 0; j < dim; j++) m = fmaxf(m, fabsf(x[j]));
        memcpy(&scale, enc, 4);
        if (scale != m / 127.0f) mism++;
        for (uint32_t j = 0; j < dim; j++) {
            float q = x[j] * (127.0f / m);
            long want = lrintf(q > 127 ? 127 : q < -127 ? -127 : q);
            if ((int8_t)enc[4 + j] != want) mism++;
        }
    }
    CHECK_EQ_INT(mism, 0);
    memset(x, 0, sizeof x);
    sp_vec_encode(SP_DT_I8, x, 16, enc);
    sp_vec_decode(SP_DT_I8, enc, 16, y);
    for (int j = 0; j < 16; j++) CHECK(y[j] == 0 && enc[4 + j] == 0);
    /* f32 and f16 through the same entry points */
    for (uint32_t j = 0; j < 8; j++) x[j] = (float)j / 3.0f - 1.0f;
    sp_vec_encode(SP_DT_F32, x, 8, enc);
    sp_vec_decode(SP_DT_F32, enc, 8, y);
    CHECK(memcmp(x, y, 32) == 0);
    sp_vec_encode(SP_DT_F16, x, 8, enc);
    sp_vec_decode(SP_DT_F16, enc, 8, y);
    for (int j = 0; j < 8; j++) CHECK_NEAR(y[j], x[j], f16_ulp(fabs(x[j])) / 2);
    CHECK_EQ_INT(sp_dtype_parse("f16"), SP_DT_F16);
    CHECK_EQ_INT(sp_dtype_parse("f64"), -1);
}

static void test_writer(void) {
    char path[256];
    for (int dt = 0; dt < 3; dt++) {
        snprintf(path, sizeof path, "%s/w%d.mdb", tmpdir, dt);
        const uint32_t dim = 24;
        const uint64_t n = 3000;
        sp_shard_w *w;
        CHECK_RC(sp_shard_w_open(&w, path, dim, (sp_dtype)dt, n), SP_OK);
        if (!w) continue;
        float v[24];
        /* boards sort before pins ('b' < 'p'); ids ascend within each */
        for (uint64_t i = 0; i < n; i++) {
            sp_type t = i < n / 2 ? SP_BOARD : SP_PIN;
            uint64_t id = (i % (n / 2)) * 7919 + 3;
            test_vec(t, id, dim, v);
            CHECK_RC(sp_shard_w_put(w, t, id, v), SP_OK);
        }
        CHECK_EQ_INT(test_files_with(tmpdir, ".tmp."), 1);
        sp_shard_info info;
        CHECK_RC(sp_shard_w_commit(w, &info), SP_OK);
        CHECK_EQ_U64(info.count, n);
        CHECK_EQ_INT(test_files_with(tmpdir, ".tmp."), 0);
        CHECK_EQ_INT(test_files_with(tmpdir, "-lock"), 0);
        uint64_t xxh, bytes;
        CHECK_RC(sp_file_xxh64(path, &xxh, &bytes), SP_OK);
        CHECK_EQ_U64(xxh, info.xxh64);
        CHECK_EQ_U64(bytes, info.bytes);
        struct stat st;
        CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == bytes);
        /* read back with plain LMDB, read-only and without a lock */
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi dbi;
        MDB_cursor *cur;
        MDB_val k, val;
        CHECK_RC(mdb_env_create(&env), 0);
        CHECK_RC(mdb_env_open(env, path, MDB_RDONLY | MDB_NOLOCK | MDB_NOSUBDIR, 0), 0);
        CHECK_RC(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
        CHECK_RC(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
        CHECK_RC(mdb_cursor_open(txn, dbi, &cur), 0);
        uint64_t got = 0, wrong = 0;
        float y[24];
        while (!mdb_cursor_get(cur, &k, &val, got ? MDB_NEXT : MDB_FIRST)) {
            sp_type t;
            uint64_t id;
            if (sp_shard_key_parse(k.mv_data, k.mv_size, &t, &id) || val.mv_size != sp_dtype_bytes((sp_dtype)dt, dim)) {
                wrong++;
                got++;
                continue;
            }
            test_vec(t, id, dim, v);
            sp_vec_decode((sp_dtype)dt, val.mv_data, dim, y);
            for (uint32_t j = 0; j < dim; j++)
                if (fabsf(y[j] - v[j]) > (dt == SP_DT_F32 ? 0 : dt == SP_DT_F16 ? 2e-3f : 2.5f / 127 / 2 + 1e-6f))
                    wrong++;
            got++;
        }
        CHECK_EQ_U64(got, n);
        CHECK_EQ_U64(wrong, 0);
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        mdb_env_close(env);
        CHECK_EQ_INT(test_files_with(tmpdir, "-lock"), 0);
        unlink(path);
    }
    /* order and duplicates; the map grows past a low expected count */
    snprintf(path, sizeof path, "%s/order.mdb", tmpdir);
    sp_shard_w *w;
    float v[4] = {1, 2, 3, 4};
    CHECK_RC(sp_shard_w_open(&w, path, 4, SP_DT_F32, 1), SP_OK);
    for (uint64_t id = 0; id < 200000; id++) CHECK_RC(sp_shard_w_put(w, SP_PIN, id, v), SP_OK);
    CHECK_RC(sp_shard_w_put(w, SP_PIN, 199999, v), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "duplicate p199999") != NULL);
    CHECK_RC(sp_shard_w_put(w, SP_PIN, 5, v), SP_EINTERNAL);
    CHECK(strstr(sp_errmsg(), "ascending") != NULL);
    CHECK_RC(sp_shard_w_put(w, SP_BOARD, 1000000, v), SP_EINTERNAL); /* 'b' < 'p' */
    sp_shard_info info;
    CHECK_RC(sp_shard_w_commit(w, &info), SP_OK); /* the refused puts left the shard intact */
    CHECK_EQ_U64(info.count, 200000);
    unlink(path);
    CHECK_RC(sp_shard_w_open(&w, path, 4, SP_DT_F32, 10), SP_OK);
    CHECK_RC(sp_shard_w_put(w, SP_PIN, 1, v), SP_OK);
    sp_shard_w_discard(w);
    CHECK(access(path, F_OK) != 0);
    CHECK_EQ_INT(test_files_with(tmpdir, ".tmp."), 0);
    CHECK_RC(sp_shard_w_open(&w, "/nonexistent-dir/x.mdb", 4, SP_DT_F32, 10), SP_EIO);
    CHECK(w == NULL && strstr(sp_errmsg(), "/nonexistent-dir/x.mdb") != NULL);
    /* an empty shard is a valid, empty environment */
    CHECK_RC(sp_shard_w_open(&w, path, 4, SP_DT_I8, 0), SP_OK);
    CHECK_RC(sp_shard_w_commit(w, &info), SP_OK);
    CHECK(info.count == 0 && info.bytes > 0);
    unlink(path);
}

static void test_flip_latest(void) {
    char p[512], link[512], buf[64];
    CHECK_RC(sp_shard_flip_latest(tmpdir, "2026-11-21", NULL, 0), SP_EUSAGE); /* no such date */
    CHECK(strstr(sp_errmsg(), "MANIFEST.json") != NULL);
    CHECK_RC(sp_shard_flip_latest(tmpdir, "../x", NULL, 0), SP_EUSAGE);
    const char *dates[2] = {"2026-11-21", "2026-11-22"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, dates[i]);
        CHECK(mkdir(p, 0777) == 0);
        snprintf(p, sizeof p, "%s/%s/MANIFEST.json", tmpdir, dates[i]);
        FILE *f = fopen(p, "w");
        if (f) fclose(f);
    }
    snprintf(link, sizeof link, "%s/latest", tmpdir);
    /* 21, 22, then 21 again (a backfill): latest stays on 22 and says so; 22 again is a flip */
    const int order[4] = {0, 1, 0, 1}, want[4] = {0, 1, 1, 1};
    char later[64];
    for (int i = 0; i < 4; i++) {
        CHECK_RC(sp_shard_flip_latest(tmpdir, dates[order[i]], later, sizeof later), SP_OK);
        ssize_t n = readlink(link, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        CHECK_STR(buf, dates[want[i]]);
        CHECK_STR(later, i == 2 ? dates[1] : "");
    }
    /* the later date holds latest however the link is written (by hand: a rollback, say) */
    char forms[3][600], d[16];
    snprintf(forms[0], sizeof forms[0], "./%s/", dates[1]);
    snprintf(forms[1], sizeof forms[1], "%s/%s", tmpdir, dates[1]);
    snprintf(forms[2], sizeof forms[2], "%s/./%s//", tmpdir, dates[1]);
    for (int i = 0; i < 3; i++) {
        unlink(link);
        CHECK(symlink(forms[i], link) == 0);
        CHECK_EQ_INT(sp_shard_latest_date(tmpdir, d), 1);
        CHECK_STR(d, dates[1]);
        CHECK_RC(sp_shard_flip_latest(tmpdir, dates[0], later, sizeof later), SP_OK);
        CHECK_STR(later, dates[1]);
        ssize_t m = readlink(link, buf, sizeof buf - 1);
        CHECK_MSG(m > 0 && (size_t)m == strlen(forms[i]) && !memcmp(buf, forms[i], (size_t)m), "form %d moved", i);
    }
    unlink(link);
    CHECK(symlink("/nonexistent/x", link) == 0); /* resolves nowhere: no date */
    CHECK_EQ_INT(sp_shard_latest_date(tmpdir, d), 0);
    unlink(link);
    CHECK(symlink("gone/2026-10-01/", link) == 0); /* dangling: its last component */
    CHECK_EQ_INT(sp_shard_latest_date(tmpdir, d), 1);
    CHECK_STR(d, "2026-10-01");
    unlink(link);
    CHECK(symlink(dates[1], link) == 0);
    /* a later target whose set is gone (retention, by hand) does not hold latest back */
    snprintf(p, sizeof p, "%s/%s/MANIFEST.json", tmpdir, dates[1]);
    CHECK(unlink(p) == 0);
    CHECK_RC(sp_shard_flip_latest(tmpdir, dates[0], later, sizeof later), SP_OK);
    CHECK_STR(later, "");
    ssize_t n = readlink(link, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    CHECK_STR(buf, dates[0]);
    CHECK_EQ_INT(test_files_with(tmpdir, ".latest.tmp"), 0);
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s/MANIFEST.json", tmpdir, dates[i]);
        unlink(p);
        snprintf(p, sizeof p, "%s/%s", tmpdir, dates[i]);
        rmdir(p);
    }
    unlink(link);
    CHECK(mkdir(link, 0777) == 0); /* latest must be a symlink */
    snprintf(p, sizeof p, "%s/%s", tmpdir, dates[0]);
    mkdir(p, 0777);
    snprintf(p, sizeof p, "%s/%s/MANIFEST.json", tmpdir, dates[0]);
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
    CHECK_RC(sp_shard_flip_latest(tmpdir, dates[0], NULL, 0), SP_EUSAGE);
    unlink(p);
    snprintf(p, sizeof p, "%s/%s", tmpdir, dates[0]);
    rmdir(p);
    rmdir(link);
}

int main(void) {
    strcpy(tmpdir, "/tmp/sp_shard_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_keys();
    test_routing();
    test_f16();
    test_i8();
    test_writer();
    test_flip_latest();
    if (rmdir(tmpdir) != 0) {
        perror(tmpdir);
        check_failures_++;
    }
    return CHECK_DONE();
}
