/* test_sfv: the dense feature file round-trips, shares partition the records,
 * and every kind of corrupt file is SP_EFORMAT with the path in the message. */
#include "check.h"
#include "sfv.h"
#include "sp_base.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[64];

static void path_of(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static size_t read_all(const char *path, unsigned char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* Writes n records of dim 3: id = 100 + i, vec = (i, -i, i/2). */
static void write_good(const char *path, uint64_t n) {
    sp_sfv_writer *w;
    CHECK_RC(sp_sfv_write_begin(&w, path, 3), SP_OK);
    for (uint64_t i = 0; i < n; i++) {
        float v[3] = {(float)i, -(float)i, (float)i / 2};
        CHECK_RC(sp_sfv_write(w, 100 + i, v), SP_OK);
    }
    CHECK_RC(sp_sfv_write_end(w), SP_OK);
}

static void test_round_trip(void) {
    char p[256];
    path_of(p, sizeof p, "good.sfv");
    write_good(p, 10);
    sp_sfv_reader *r;
    CHECK_RC(sp_sfv_open(&r, p, 0, 1), SP_OK);
    CHECK_EQ_U64(sp_sfv_dim(r), 3);
    CHECK_EQ_U64(sp_sfv_count(r), 10);
    CHECK_EQ_U64(sp_sfv_share_count(r), 10);
    uint64_t idx, id, n = 0;
    float v[3];
    int rc;
    while ((rc = sp_sfv_next(r, &idx, &id, v)) == 1) {
        CHECK_EQ_U64(idx, n);
        CHECK_EQ_U64(id, 100 + n);
        CHECK(v[0] == (float)n && v[1] == -(float)n && v[2] == (float)n / 2);
        CHECK(sp_sfv_finite(v, 3));
        n++;
    }
    CHECK_RC(rc, 0);
    CHECK_EQ_U64(n, 10);
    sp_sfv_close(r);
    unsigned char buf[512];
    size_t sz = read_all(p, buf, sizeof buf);
    CHECK_EQ_U64(sz, SP_SFV_HEADER_BYTES + 10 * (8 + 12));
    CHECK(memcmp(buf, "SFV1", 4) == 0 && buf[4] == 1 && buf[8] == 3 && buf[12] == 10);
    float bad[3] = {1, NAN, 2};
    CHECK(!sp_sfv_finite(bad, 3));
}

static void test_shares(void) {
    char p[256];
    path_of(p, sizeof p, "shares.sfv");
    write_good(p, 10);
    for (int np = 1; np <= 4; np++) {
        uint64_t next = 0;
        for (int part = 0; part < np; part++) {
            sp_sfv_reader *r;
            CHECK_RC(sp_sfv_open(&r, p, part, np), SP_OK);
            CHECK_EQ_U64(sp_sfv_share_first(r), next);
            uint64_t idx, id;
            float v[3];
            while (sp_sfv_next(r, &idx, &id, v) == 1) {
                CHECK_EQ_U64(idx, next);
                CHECK_EQ_U64(id, 100 + next);
                next++;
            }
            sp_sfv_close(r);
        }
        CHECK_EQ_U64(next, 10);
    }
    sp_sfv_reader *r;
    CHECK_RC(sp_sfv_open(&r, p, 2, 2), SP_EINTERNAL);
    CHECK(r == NULL);
}

static void expect_format(const unsigned char *data, size_t n, const char *name, const char *what) {
    char p[256];
    path_of(p, sizeof p, name);
    write_file(p, data, n);
    sp_sfv_reader *r = (sp_sfv_reader *)1;
    CHECK_RC(sp_sfv_open(&r, p, 0, 1), SP_EFORMAT);
    CHECK(r == NULL);
    CHECK_MSG(strstr(sp_errmsg(), p) != NULL, "message lacks path: %s", sp_errmsg());
    CHECK_MSG(strstr(sp_errmsg(), what) != NULL, "message lacks '%s': %s", what, sp_errmsg());
}

static void test_corrupt(void) {
    char p[256];
    path_of(p, sizeof p, "base.sfv");
    write_good(p, 4);
    unsigned char good[512], b[512];
    size_t n = read_all(p, good, sizeof good);
    memcpy(b, good, n); b[0] = 'X';
    expect_format(b, n, "magic.sfv", "magic");
    memcpy(b, good, n); b[4] = 2;
    expect_format(b, n, "version.sfv", "version");
    memcpy(b, good, n); b[8] = 0;
    expect_format(b, n, "dim0.sfv", "dim");
    memcpy(b, good, n); b[10] = 0x10; /* dim 0x100003 > max */
    expect_format(b, n, "dimbig.sfv", "dim");
    memcpy(b, good, n); b[12] = 5; /* count 5, 4 records */
    expect_format(b, n, "count.sfv", "truncated");
    memcpy(b, good, n);
    expect_format(b, n - 1, "short.sfv", "truncated");
    expect_format(b, n + 3, "long.sfv", "does not match");
    memcpy(b, good, n); memset(b + 12, 0xff, 8); /* count 2^64-1: overflow must not pass */
    expect_format(b, n, "huge.sfv", "truncated");
    expect_format(b, 7, "tiny.sfv", "header");
    expect_format(b, 0, "empty.sfv", "header");
    sp_sfv_reader *r;
    path_of(p, sizeof p, "missing.sfv");
    CHECK_RC(sp_sfv_open(&r, p, 0, 1), SP_EIO);
    CHECK(strstr(sp_errmsg(), "missing.sfv") != NULL);
    /* File truncated after open (bigger than the 1 MiB read buffer): next
     * reports SP_EFORMAT, no crash. */
    path_of(p, sizeof p, "shrink.sfv");
    write_good(p, 100000);
    CHECK_RC(sp_sfv_open(&r, p, 0, 1), SP_OK);
    CHECK(truncate(p, SP_SFV_HEADER_BYTES + 30) == 0);
    uint64_t idx, id;
    float v[3];
    int rc = sp_sfv_next(r, &idx, &id, v), k = 0;
    while (rc == 1 && k++ < 200000) rc = sp_sfv_next(r, &idx, &id, v);
    CHECK_RC(rc, SP_EFORMAT);
    sp_sfv_close(r);
}

static void test_abort(void) {
    char p[256];
    path_of(p, sizeof p, "aborted.sfv");
    sp_sfv_writer *w;
    CHECK_RC(sp_sfv_write_begin(&w, p, 2), SP_OK);
    float v[2] = {1, 2};
    CHECK_RC(sp_sfv_write(w, 1, v), SP_OK);
    sp_sfv_write_abort(w);
    CHECK(access(p, F_OK) != 0);
    CHECK_RC(sp_sfv_write_begin(&w, p, 0), SP_EINTERNAL);
}

int main(void) {
    strcpy(dir, "/tmp/sp_test_XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    test_round_trip();
    test_shares();
    test_corrupt();
    test_abort();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return CHECK_DONE();
}
