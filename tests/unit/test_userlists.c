/* test_userlists: "user item item ..." loaders (LightGCN split, S3Rec
 * sequences): exact CSR rows, dedupe counts, id base, users absent from the
 * file, and every bad-line message naming file and line. */
#include "check.h"
#include "sp_base.h"
#include "userlists.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[64];

static const char *put(const char *name, const char *text) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
    return path;
}

/* Row u of l as "a b c" (for readable comparisons). */
static const char *row(const sp_lists *l, uint32_t u) {
    static char b[256];
    size_t n = 0;
    b[0] = 0;
    for (uint64_t e = l->off[u]; e < l->off[u + 1] && n < sizeof b - 12; e++)
        n += (size_t)snprintf(b + n, sizeof b - n, "%s%u", e > l->off[u] ? " " : "", l->idx[e]);
    return b;
}

static void test_lightgcn(void) {
    const char *p = put("train.txt", "0 5 7 5 5\n2\t1  0\r\n4 9\n");
    sp_lists l;
    sp_lists_stats st;
    CHECK_RC(sp_lists_load_lightgcn(p, &l, &st), SP_OK);
    CHECK_EQ_U64(l.n, 5);
    CHECK_EQ_U64(l.ncols, 10);
    CHECK_STR(row(&l, 0), "5 7");
    CHECK_STR(row(&l, 1), ""); /* absent users have empty rows */
    CHECK_STR(row(&l, 2), "1 0");
    CHECK_STR(row(&l, 3), "");
    CHECK_STR(row(&l, 4), "9");
    CHECK_EQ_U64(st.lines, 3);
    CHECK_EQ_U64(st.users, 3);
    CHECK_EQ_U64(st.items, 5);
    CHECK_EQ_U64(st.dup_items, 2);
    sp_lists_free(&l);
    CHECK(l.off == NULL && l.n == 0);
    /* a user without items is allowed in LightGCN files (an empty test set) */
    p = put("test.txt", "1 3\n0\n");
    CHECK_RC(sp_lists_load_lightgcn(p, &l, NULL), SP_OK);
    CHECK_EQ_U64(l.n, 2);
    CHECK_STR(row(&l, 0), "");
    CHECK_STR(row(&l, 1), "3");
    sp_lists_free(&l);
}

static void test_s3rec(void) {
    const char *p = put("seq.txt", "1 1 2 3 2\n3 4 4\n");
    sp_lists l;
    sp_lists_stats st;
    CHECK_RC(sp_lists_load_s3rec(p, &l, &st), SP_OK);
    CHECK_EQ_U64(l.n, 3);      /* users 1..3 -> rows 0..2 */
    CHECK_EQ_U64(l.ncols, 4);  /* items 1..4 -> columns 0..3 */
    CHECK_STR(row(&l, 0), "0 1 2 1"); /* order and repeats kept */
    CHECK_STR(row(&l, 1), "");
    CHECK_STR(row(&l, 2), "3 3");
    CHECK_EQ_U64(st.dup_items, 0);
    sp_lists_free(&l);
}

/* A bad file fails with SP_EINPUT and exactly this message after "DIR/". */
static void bad(const char *text, const sp_lists_opts *o, const char *want) {
    const char *p = put("bad.txt", text);
    sp_lists l = {0};
    int rc = sp_lists_load(p, o, &l, NULL);
    CHECK_RC(rc, SP_EINPUT);
    const char *msg = sp_errmsg();
    size_t dl = strlen(dir);
    CHECK_MSG(!strncmp(msg, dir, dl) && msg[dl] == '/', "message does not start with the path: %s", msg);
    CHECK_STR(msg + (strncmp(msg, dir, dl) ? 0 : dl + 1), want);
    CHECK(l.off == NULL);
}

static void test_errors(void) {
    sp_lists_opts plain = {0, 0, 0}, empty_ok = {SP_LISTS_ALLOW_EMPTY, 0, 0}, base1 = {0, 1, 0};
    bad("0 1 2\n1 3 x4\n", &plain, "bad.txt:2: bad item id 'x4': not a non-negative decimal integer");
    bad("0 1 -2\n", &plain, "bad.txt:1: bad item id '-2': not a non-negative decimal integer");
    bad("u7 1\n", &plain, "bad.txt:1: bad user id 'u7': not a non-negative decimal integer");
    bad("0 1\n\n2 3\n", &plain, "bad.txt:2: empty line (expected 'user item item ...')");
    bad("0 1\n   \n", &empty_ok, "bad.txt:2: empty line (expected 'user item item ...')");
    bad("0 1\n5\n", &plain, "bad.txt:2: user 5 has no items");
    bad("0 1\n1 2\n0 3\n", &plain, "bad.txt:3: user 0 appears again (first on line 1)");
    bad("0 4294967295\n", &plain, "bad.txt:1: item id '4294967295' is too large (at most 4294967294)");
    bad("0 99999999999999999999999\n", &plain,
        "bad.txt:1: item id '99999999999999999999999' is too large (at most 4294967294)");
    bad("1 2\n0 1\n", &base1, "bad.txt:2: user id 0 is below the id base 1 (ids are 1-based here)");
    bad("1 0\n", &base1, "bad.txt:1: item id 0 is below the id base 1 (ids are 1-based here)");
    bad("", &plain, "bad.txt: no lines (expected 'user item item ...' per line)");
    /* a bound on dense ids: checked while reading, before a row table of the id's size is grown */
    sp_lists_opts dense = {SP_LISTS_DEDUPE | SP_LISTS_ALLOW_EMPTY, 0, SP_LISTS_LIGHTGCN_MAX_ID};
    bad("0 1\n1000000000 1\n", &dense,
        "bad.txt:2: user id '1000000000' is too large (at most 268435455: ids here are dense indices)");
    bad("0 268435456\n", &dense, "bad.txt:1: item id '268435456' is too large (at most 268435455: ids here are "
                                 "dense indices)");
    {   /* a NUL byte inside a token is not the end of the number */
        char path[128];
        snprintf(path, sizeof path, "%s/bad.txt", dir);
        FILE *f = fopen(path, "wb");
        fwrite("0 12\0003\n", 1, 7, f);
        fclose(f);
        sp_lists l = {0};
        CHECK_RC(sp_lists_load(path, &plain, &l, NULL), SP_EINPUT);
        CHECK(strstr(sp_errmsg(), "bad.txt:1: bad item id '12") != NULL);
    }
    /* 4294967295 is fine with base 1 (becomes 4294967294) */
    const char *p = put("big.txt", "1 4294967295\n");
    sp_lists l;
    CHECK_RC(sp_lists_load(p, &base1, &l, NULL), SP_OK);
    CHECK_EQ_U64(l.idx[0], 4294967294u);
    CHECK_EQ_U64(l.ncols, 4294967295u);
    sp_lists_free(&l);
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none.txt", dir);
    CHECK_RC(sp_lists_load(missing, NULL, &l, NULL), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "none.txt: cannot open") != NULL);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/sp_userlists_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    test_lightgcn();
    test_s3rec();
    test_errors();
    const char *names[] = {"train.txt", "test.txt", "seq.txt", "bad.txt", "big.txt"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    return CHECK_DONE();
}
