/* test_tsv: every line of a file is read by exactly one share for any number
 * of shares (plain and .zst), line numbers are right, bad input is rejected,
 * and the field splitters and strict number parsers handle their edge cases. */
#include "check.h"
#include "sp_base.h"
#include "tsv.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

static char tmpdir[64];

typedef struct { uint64_t no; char *s; } tline;
typedef struct { tline *v; size_t n, cap; } tlist;

static void tl_push(tlist *l, uint64_t no, const char *s, size_t len) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n].no = no;
    l->v[l->n].s = malloc(len + 1);
    memcpy(l->v[l->n].s, s, len);
    l->v[l->n].s[len] = 0;
    l->n++;
}
static void tl_free(tlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i].s);
    free(l->v);
    memset(l, 0, sizeof *l);
}
static int tl_cmp(const void *a, const void *b) {
    const tline *x = a, *y = b;
    return x->no < y->no ? -1 : x->no > y->no;
}

/* Reference: the data lines of buf with their 1-based global line numbers. */
static void reference_lines(const char *buf, size_t n, tlist *out) {
    size_t i = 0;
    uint64_t no = 0;
    while (i < n) {
        const char *nl = memchr(buf + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - buf) : n;
        size_t len = e - i;
        no++;
        if (len > 0 && buf[i + len - 1] == '\r') len--;
        size_t b = no == 1 && len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3) ? 3 : 0; /* a BOM opening the file */
        if (len > b && buf[i + b] != '#') tl_push(out, no, buf + i + b, len - b);
        i = e + 1;
    }
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(data, 1, n, f) == n);
    fclose(f);
}

/* Reads all shares of path; returns the lines with global line numbers. For
 * plain files a share's numbers are offset by the lines of earlier shares (what
 * the ingest stage does with MPI_Exscan). */
static int read_shares(const char *path, int nparts, tlist *out) {
    uint64_t before = 0;
    for (int part = 0; part < nparts; part++) {
        sp_tsv *t;
        int rc = sp_tsv_open(&t, path, part, nparts);
        if (rc) return rc;
        int known = sp_tsv_first_line_known(t);
        CHECK_EQ_INT(known, part == 0 || strstr(path, ".zst") != NULL);
        char *line;
        size_t len;
        while ((rc = sp_tsv_next(t, &line, &len)) == 1) {
            CHECK_EQ_U64(strlen(line), len);
            tl_push(out, sp_tsv_line_no(t) + (known ? 0 : before), line, len);
        }
        CHECK(sp_tsv_bytes_read(t) <= sp_tsv_share_bytes(t) + (1u << 25));
        before += sp_tsv_lines_seen(t);
        CHECK_EQ_INT(sp_tsv_next(t, &line, &len), rc); /* end/error is sticky */
        sp_tsv_close(t);
        if (rc) return rc;
    }
    return 0;
}

static void check_same(const tlist *got, const tlist *want, const char *what, int nparts) {
    CHECK_MSG(got->n == want->n, "%s nparts %d: %zu lines, want %zu", what, nparts, got->n, want->n);
    for (size_t i = 0; i < got->n && i < want->n; i++) {
        int ok = got->v[i].no == want->v[i].no && strcmp(got->v[i].s, want->v[i].s) == 0;
        CHECK_MSG(ok, "%s nparts %d: line %zu: got %" PRIu64 " '%.40s', want %" PRIu64 " '%.40s'", what, nparts,
                  i, got->v[i].no, got->v[i].s, want->v[i].no, want->v[i].s);
        if (!ok) break;
    }
}

static void zst_write(const char *path, const char *buf, size_t n, int frames) {
    size_t cap = ZSTD_compressBound(n) + 64;
    char *z = malloc(cap * 2);
    size_t zn = 0;
    size_t cut = frames > 1 ? n / 3 : n;
    size_t r = ZSTD_compress(z, cap, buf, cut, 3);
    CHECK(!ZSTD_isError(r));
    zn += r;
    if (frames > 1) {
        r = ZSTD_compress(z + zn, cap, buf + cut, n - cut, 1);
        CHECK(!ZSTD_isError(r));
        zn += r;
    }
    write_file(path, z, zn);
    free(z);
}

/* Every share count 1..7 over buf, as a plain file and as .zst (1 and 2 frames). */
static void check_file(const char *name, const char *buf, size_t n) {
    char path[256], zpath[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    snprintf(zpath, sizeof zpath, "%s/%s.zst", tmpdir, name);
    write_file(path, buf, n);
    tlist want = {0};
    reference_lines(buf, n, &want);
    for (int nparts = 1; nparts <= 7; nparts++) {
        tlist got = {0};
        CHECK_RC(read_shares(path, nparts, &got), 0);
        check_same(&got, &want, path, nparts);
        tl_free(&got);
        for (int frames = 1; frames <= 2; frames++) {
            zst_write(zpath, buf, n, frames);
            CHECK_RC(read_shares(zpath, nparts, &got), 0);
            if (got.n) qsort(got.v, got.n, sizeof *got.v, tl_cmp);
            check_same(&got, &want, zpath, nparts);
            tl_free(&got);
        }
    }
    tl_free(&want);
    unlink(path);
    unlink(zpath);
}

static void test_shares_cover_every_line_once(void) {
    const char *small[] = {
        "",
        "x",
        "\n",
        "\n\n\n",
        "a\tb\n#c\n\nd\r\ne",
        "#only a comment\n",
        "1\t2\r\n3\t4\r\n\r\n#x\r\n5\t6\r\n",
        "abc\ndef\n",
        "a\nb\nc\nd\ne\nf\ng\nh\n",
        "\xef\xbb\xbf" "1\t2\n3\t4\n",       /* a UTF-8 byte order mark is dropped at the file's start only */
        "\xef\xbb\xbf" "#c\r\nx\n",
        "\xef\xbb\xbf",
        "a\n\xef\xbb\xbf" "b\n",
    };
    for (size_t i = 0; i < sizeof small / sizeof *small; i++) {
        char name[32];
        snprintf(name, sizeof name, "small%zu.tsv", i);
        check_file(name, small[i], strlen(small[i]));
    }
    /* random lines: empty, comments, CRLF, lengths 0..60 */
    sp_rng rng;
    sp_rng_init(&rng, 42, 99, 0);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (int i = 0; i < 5000; i++) {
        uint64_t kind = sp_rng_below(&rng, 10), len = sp_rng_below(&rng, 61);
        if (kind == 0) buf[n++] = '#';
        for (uint64_t j = 0; j < len; j++) buf[n++] = (char)('a' + sp_rng_below(&rng, 26));
        if (kind == 1) buf[n++] = '\t';
        if (kind == 2) buf[n++] = '\r';
        buf[n++] = '\n';
    }
    check_file("random.tsv", buf, n);
    check_file("random_no_nl.tsv", buf, n - 1);
    /* one 3 MiB line (longer than the 1 MiB start buffer) between short lines */
    size_t big = 3u << 20;
    char *lb = malloc(big + 64);
    size_t m = 0;
    m += (size_t)sprintf(lb + m, "first\n");
    for (size_t j = 0; j < big; j++) lb[m++] = (char)('0' + j % 10);
    m += (size_t)sprintf(lb + m, "\nlast\n");
    check_file("long.tsv", lb, m);
    check_file("long_only.tsv", lb + 6, big); /* one long line, no newline */
    free(lb);
    free(buf);
}

static void test_bad_lines(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/bad.tsv", tmpdir);
    sp_tsv *t;
    char *line;
    size_t len;
    /* NUL in the third line */
    write_file(path, "a\nb\nc\0d\ne\n", 10);
    CHECK_RC(sp_tsv_open(&t, path, 0, 1), 0);
    CHECK_EQ_INT(sp_tsv_next(t, &line, &len), 1);
    CHECK_EQ_INT(sp_tsv_next(t, &line, &len), 1);
    CHECK_RC(sp_tsv_next(t, &line, &len), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), path) && strstr(sp_errmsg(), ":3:"), "msg: %s", sp_errmsg());
    CHECK_RC(sp_tsv_next(t, &line, &len), SP_EINPUT);
    sp_tsv_close(t);
    /* the same NUL read by the second of two shares: the message has the file's line number, not the share's */
    {
        char big[4096];
        size_t n = 0;
        for (int i = 1; i <= 300; i++)
            n += (size_t)snprintf(big + n, sizeof big - n, "%s\n", i == 250 ? "b\x01" : "ab");
        char *nul = memchr(big, 1, n);
        *nul = 0; /* line 250 holds a NUL, in the second half of the file */
        write_file(path, big, n);
        CHECK_RC(sp_tsv_open(&t, path, 1, 2), 0);
        int r;
        while ((r = sp_tsv_next(t, &line, &len)) == 1) {}
        CHECK_RC(r, SP_EINPUT);
        CHECK_MSG(strstr(sp_errmsg(), ":250: ") != NULL, "msg: %s", sp_errmsg());
        sp_tsv_close(t);
    }
    /* a line of exactly 16 MiB is fine, one byte more is not */
    size_t lim = 16u << 20;
    char *buf = malloc(lim + 16);
    memset(buf, 'x', lim + 1);
    buf[lim] = '\n';
    memcpy(buf + lim + 1, "ok\n", 3);
    write_file(path, buf, lim + 4);
    CHECK_RC(sp_tsv_open(&t, path, 0, 1), 0);
    CHECK_EQ_INT(sp_tsv_next(t, &line, &len), 1);
    CHECK_EQ_U64(len, lim);
    CHECK_EQ_INT(sp_tsv_next(t, &line, &len), 1);
    CHECK_STR(line, "ok");
    CHECK_EQ_INT(sp_tsv_next(t, &line, &len), 0);
    sp_tsv_close(t);
    buf[lim] = 'x';
    buf[lim + 1] = '\n';
    write_file(path, buf, lim + 2);
    CHECK_RC(sp_tsv_open(&t, path, 0, 1), 0);
    CHECK_RC(sp_tsv_next(t, &line, &len), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), "16 MiB") != NULL, "msg: %s", sp_errmsg());
    sp_tsv_close(t);
    write_file(path, buf, lim + 1); /* same without the '\n' */
    CHECK_RC(sp_tsv_open(&t, path, 0, 1), 0);
    CHECK_RC(sp_tsv_next(t, &line, &len), SP_EINPUT);
    sp_tsv_close(t);
    free(buf);
    unlink(path);

    CHECK_RC(sp_tsv_open(&t, "/nonexistent/x.tsv", 0, 1), SP_EIO);
    CHECK(strstr(sp_errmsg(), "/nonexistent/x.tsv") != NULL);
    CHECK_RC(sp_tsv_open(&t, path, 1, 1), SP_EINTERNAL);
    CHECK_RC(sp_tsv_open(&t, path, 0, 0), SP_EINTERNAL);
}

static void test_zst_corrupt(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/c.tsv.zst", tmpdir);
    size_t n = 200000;
    char *buf = malloc(n);
    for (size_t i = 0; i < n; i++) buf[i] = (i % 17 == 16) ? '\n' : (char)('a' + (i * 7919) % 26);
    size_t cap = ZSTD_compressBound(n);
    char *z = malloc(cap);
    size_t zn = ZSTD_compress(z, cap, buf, n, 3);
    CHECK(!ZSTD_isError(zn));
    sp_tsv *t;
    char *line;
    size_t len;
    int rc;
    /* truncated at several points: an error at open or while reading, never success */
    size_t cuts[] = {zn - 1, zn - 4, zn / 2, 10, 5};
    for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
        write_file(path, z, cuts[c]);
        rc = sp_tsv_open(&t, path, 0, 1);
        if (rc == 0) {
            while ((rc = sp_tsv_next(t, &line, &len)) == 1) {}
            sp_tsv_close(t);
        }
        CHECK_RC(rc, SP_EFORMAT);
        CHECK_MSG(strstr(sp_errmsg(), path) != NULL, "msg: %s", sp_errmsg());
    }
    /* a frame followed by garbage */
    memcpy(z + zn, "garbage!", 8);
    write_file(path, z, zn + 8);
    CHECK_RC(sp_tsv_open(&t, path, 0, 1), 0);
    while ((rc = sp_tsv_next(t, &line, &len)) == 1) {}
    CHECK_RC(rc, SP_EFORMAT);
    sp_tsv_close(t);
    /* a flipped byte in the data: ZSTD_compress writes no content checksum, so the
     * decoder may or may not notice; only require no crash (ASan) and a clean close */
    z[zn / 2] ^= 0x5a;
    write_file(path, z, zn);
    if (sp_tsv_open(&t, path, 0, 1) == 0) {
        while ((rc = sp_tsv_next(t, &line, &len)) == 1) {}
        sp_tsv_close(t);
    }
    /* not zstd at all, and empty */
    write_file(path, "hello\tworld\n", 12);
    CHECK_RC(sp_tsv_open(&t, path, 0, 1), SP_EFORMAT);
    CHECK(t == NULL);
    write_file(path, "", 0);
    CHECK_RC(sp_tsv_open(&t, path, 0, 1), SP_EFORMAT);
    unlink(path);
    free(z);
    free(buf);
}

static void test_split(void) {
    char s1[] = "a\t\tb c\t";
    char *f[8];
    CHECK_EQ_INT(sp_tsv_split(s1, f, 8), 4);
    CHECK_STR(f[0], "a");
    CHECK_STR(f[1], "");
    CHECK_STR(f[2], "b c");
    CHECK_STR(f[3], "");
    char s2[] = "1\t2\t3\t4";
    CHECK_EQ_INT(sp_tsv_split(s2, f, 2), 4);
    CHECK_STR(f[0], "1");
    CHECK_STR(f[1], "2");
    char s3[] = "";
    CHECK_EQ_INT(sp_tsv_split(s3, f, 8), 1);
    CHECK_STR(f[0], "");
    char s4[] = "  a \t b\t\tc  ";
    CHECK_EQ_INT(sp_tsv_split_ws(s4, f, 8), 3);
    CHECK_STR(f[0], "a");
    CHECK_STR(f[1], "b");
    CHECK_STR(f[2], "c");
    char s5[] = " \t ";
    CHECK_EQ_INT(sp_tsv_split_ws(s5, f, 8), 0);
    char s6[] = "x y z w";
    CHECK_EQ_INT(sp_tsv_split_ws(s6, f, 2), 4);
    CHECK_STR(f[0], "x");
    CHECK_STR(f[1], "y");
    CHECK_EQ_INT(sp_tsv_split(s6, NULL, 0), 1);
}

static void test_parsers(void) {
    uint64_t u = 7;
    CHECK_EQ_INT(sp_parse_u64("0", &u), 0);
    CHECK_EQ_U64(u, 0);
    CHECK_EQ_INT(sp_parse_u64("18446744073709551615", &u), 0);
    CHECK_EQ_U64(u, UINT64_MAX);
    CHECK_EQ_INT(sp_parse_u64("18446744073709551616", &u), -2);
    CHECK_EQ_INT(sp_parse_u64("99999999999999999999999", &u), -2);
    CHECK_EQ_INT(sp_parse_u64("-1", &u), -1);
    CHECK_EQ_INT(sp_parse_u64("+1", &u), -1);
    CHECK_EQ_INT(sp_parse_u64("", &u), -1);
    CHECK_EQ_INT(sp_parse_u64("12a", &u), -1);
    CHECK_EQ_INT(sp_parse_u64(" 1", &u), -1);
    CHECK_EQ_INT(sp_parse_u64("1 ", &u), -1);
    CHECK_EQ_INT(sp_parse_u64("99999999999999999999x", &u), -1); /* syntax wins */
    CHECK_EQ_U64(u, UINT64_MAX); /* untouched on failure */

    int64_t i = 0;
    CHECK_EQ_INT(sp_parse_i64("-1", &i), 0);
    CHECK_EQ_INT(i, -1);
    CHECK_EQ_INT(sp_parse_i64("9223372036854775807", &i), 0);
    CHECK(i == INT64_MAX);
    CHECK_EQ_INT(sp_parse_i64("-9223372036854775808", &i), 0);
    CHECK(i == INT64_MIN);
    CHECK_EQ_INT(sp_parse_i64("9223372036854775808", &i), -2);
    CHECK_EQ_INT(sp_parse_i64("-9223372036854775809", &i), -2);
    CHECK_EQ_INT(sp_parse_i64("-", &i), -1);
    CHECK_EQ_INT(sp_parse_i64("", &i), -1);
    CHECK_EQ_INT(sp_parse_i64("--1", &i), -1);
    CHECK_EQ_INT(sp_parse_i64("+1", &i), -1);
    CHECK_EQ_INT(sp_parse_i64(" 1", &i), -1);

    float f = 0;
    CHECK_EQ_INT(sp_parse_f32("1.5", &f), 0);
    CHECK(f == 1.5f);
    CHECK_EQ_INT(sp_parse_f32("-0.25e2", &f), 0);
    CHECK(f == -25.0f);
    CHECK_EQ_INT(sp_parse_f32(".5", &f), 0);
    CHECK(f == 0.5f);
    CHECK_EQ_INT(sp_parse_f32("3e38", &f), 0);
    CHECK_EQ_INT(sp_parse_f32("1e-50", &f), 0); /* underflow to 0 is a value */
    CHECK(f == 0.0f);
    CHECK_EQ_INT(sp_parse_f32("", &f), -1);
    CHECK_EQ_INT(sp_parse_f32("nan", &f), -2);
    CHECK_EQ_INT(sp_parse_f32("NaN", &f), -2);
    CHECK_EQ_INT(sp_parse_f32("-inf", &f), -2);
    CHECK_EQ_INT(sp_parse_f32("infinity", &f), -2);
    CHECK_EQ_INT(sp_parse_f32("1e39", &f), -2);
    CHECK_EQ_INT(sp_parse_f32("-1e39", &f), -2);
    CHECK_EQ_INT(sp_parse_f32(" 1", &f), -1);
    CHECK_EQ_INT(sp_parse_f32("1 ", &f), -1);
    CHECK_EQ_INT(sp_parse_f32("1.5x", &f), -1);
    CHECK_EQ_INT(sp_parse_f32("+1", &f), -1);
    CHECK_EQ_INT(sp_parse_f32("-", &f), -1);
    CHECK_EQ_INT(sp_parse_f32(".", &f), -1);
    CHECK_EQ_INT(sp_parse_f32("nanx", &f), -1);
    CHECK_EQ_INT(sp_parse_f32("e5", &f), -1);
}

static void test_input_path(void) {
    char out[512], p[256];
    snprintf(p, sizeof p, "%s/in.tsv.zst", tmpdir);
    write_file(p, "x", 1);
    CHECK_EQ_INT(sp_input_path(tmpdir, "in.tsv", out, sizeof out), 1);
    CHECK_STR(out, p);
    snprintf(p, sizeof p, "%s/in.tsv", tmpdir);
    write_file(p, "x", 1);
    /* both names: ambiguous, an error naming both */
    CHECK_EQ_INT(sp_input_path(tmpdir, "in.tsv", out, sizeof out), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), "in.tsv and ") && strstr(sp_errmsg(), "in.tsv.zst both exist"), "%s", sp_errmsg());
    char zp[256];
    snprintf(zp, sizeof zp, "%s/in.tsv.zst", tmpdir);
    unlink(zp);
    CHECK_EQ_INT(sp_input_path(tmpdir, "in.tsv", out, sizeof out), 1);
    CHECK_STR(out, p);
    CHECK_EQ_INT(sp_input_path(tmpdir, "missing.tsv", out, sizeof out), 0);
    CHECK_EQ_INT(sp_input_path(tmpdir, "in.tsv", out, 8), SP_EINPUT); /* does not fit: an error, not absent */
    unlink(p);
    /* present but not a regular file: an error naming it, not an absent input */
    snprintf(p, sizeof p, "%s/link.tsv", tmpdir);
    CHECK(symlink("/nonexistent/sagepipe-test", p) == 0);
    CHECK_EQ_INT(sp_input_path(tmpdir, "link.tsv", out, sizeof out), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "link.tsv: a symbolic link to a missing file") != NULL);
    unlink(p);
    snprintf(p, sizeof p, "%s/fifo.tsv", tmpdir);
    CHECK(mkfifo(p, 0600) == 0);
    CHECK_EQ_INT(sp_input_path(tmpdir, "fifo.tsv", out, sizeof out), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "fifo.tsv: not a regular file (a FIFO)") != NULL);
    unlink(p);
    snprintf(p, sizeof p, "%s/dir.tsv.zst", tmpdir);
    CHECK(mkdir(p, 0700) == 0);
    CHECK_EQ_INT(sp_input_path(tmpdir, "dir.tsv", out, sizeof out), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "dir.tsv.zst: not a regular file (a directory)") != NULL);
    rmdir(p);
}

int main(void) {
    strcpy(tmpdir, "/tmp/sp_test_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_shares_cover_every_line_once();
    test_bad_lines();
    test_zst_corrupt();
    test_split();
    test_parsers();
    test_input_path();
    if (rmdir(tmpdir) != 0) { perror(tmpdir); check_failures_++; }
    return CHECK_DONE();
}
