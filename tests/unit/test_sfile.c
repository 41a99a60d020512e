/* test_sfile: stage files round-trip (sections, digest, atomic rename), and
 * every corruption we can produce -- each single flipped byte, each truncation,
 * forged fields with valid checksums, write errors -- is rejected cleanly. */
#include "check.h"
#include "file_testutil.h"
#include "sfile.h"
#include "sp_base.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <xxhash.h>

static char tmpdir[64];

typedef struct { uint32_t a; float b; uint32_t c; } rec12; /* elem_size 12 */

static int open_rc(const char *path, const char *kind) {
    sp_sfile_r *r = NULL;
    int rc = sp_sfile_open(&r, path, kind);
    CHECK(rc == 0 || r == NULL);
    sp_sfile_close(r);
    return rc;
}
/* No "<x>.tmp.<pid>" left behind in tmpdir. */
static int tmp_files_left(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

#define NBIG ((1u << 20) / 8 * 3 + 5) /* > the writer's 1 MiB buffer */

static uint64_t write_sample(const char *path) {
    sp_sfile_w *w;
    uint64_t xxh = 0;
    CHECK_RC(sp_sfile_create(&w, path, "test.kind"), 0);
    uint64_t ids[5] = {1, 2, 3, UINT64_MAX, 42};
    CHECK_RC(sp_sfile_put(w, "ids", 8, ids, 5), 0);
    rec12 recs[3] = {{1, 0.5f, 7}, {2, -1.0f, 8}, {3, 1e30f, 9}};
    CHECK_RC(sp_sfile_put(w, "recs", sizeof(rec12), recs, 3), 0);
    CHECK_RC(sp_sfile_put(w, "empty", 4, NULL, 0), 0);
    CHECK_RC(sp_sfile_begin(w, "bytes", 1), 0); /* appended in pieces */
    CHECK_RC(sp_sfile_append(w, "hello ", 6), 0);
    CHECK_RC(sp_sfile_append(w, "world", 5), 0);
    CHECK_RC(sp_sfile_end(w), 0);
    CHECK_RC(sp_sfile_put(w, "0123456789abcdef", 2, "xy", 1), 0); /* a 16-char tag */
    CHECK_RC(sp_sfile_commit(w, &xxh), 0);
    return xxh;
}

static void test_round_trip(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/rt.sp", tmpdir);
    uint64_t xxh = write_sample(path);
    CHECK_EQ_INT(tmp_files_left(), 0);
    sp_sfile_r *r;
    CHECK_RC(sp_sfile_open(&r, path, "test.kind"), 0);
    if (!r) return;
    CHECK_EQ_U64(sp_sfile_digest(r), xxh);
    const void *d;
    uint64_t n;
    CHECK_RC(sp_sfile_get(r, "ids", 8, &d, &n), 0);
    CHECK_EQ_U64(n, 5);
    CHECK_EQ_U64(((const uint64_t *)d)[3], UINT64_MAX);
    CHECK_EQ_U64((uintptr_t)d % 64, 0);
    CHECK_RC(sp_sfile_get(r, "recs", 12, &d, &n), 0);
    CHECK_EQ_U64(n, 3);
    const rec12 *rc = d;
    CHECK(rc[2].a == 3 && rc[2].b == 1e30f && rc[2].c == 9 && rc[1].b == -1.0f);
    CHECK_EQ_U64((uintptr_t)d % 64, 0);
    CHECK_RC(sp_sfile_get(r, "empty", 4, &d, &n), 0);
    CHECK_EQ_U64(n, 0);
    CHECK_RC(sp_sfile_get(r, "bytes", 1, &d, &n), 0);
    CHECK(n == 11 && memcmp(d, "hello world", 11) == 0);
    CHECK_RC(sp_sfile_get(r, "0123456789abcdef", 2, &d, &n), 0);
    CHECK(n == 1 && memcmp(d, "xy", 2) == 0);
    CHECK(sp_sfile_has(r, "ids") && sp_sfile_has(r, "empty") && !sp_sfile_has(r, "nope"));
    CHECK_RC(sp_sfile_get(r, "nope", 8, &d, &n), SP_EFORMAT);
    CHECK(strstr(sp_errmsg(), path) && strstr(sp_errmsg(), "nope"));
    CHECK_RC(sp_sfile_get(r, "ids", 4, &d, &n), SP_EFORMAT); /* wrong elem_size */
    CHECK(strstr(sp_errmsg(), "elem_size") != NULL);
    sp_sfile_close(r);
    CHECK_RC(open_rc(path, NULL), 0); /* NULL kind: any kind */
    CHECK_RC(open_rc(path, "other.kind"), SP_EFORMAT);
    CHECK_RC(open_rc(path, "test.kin"), SP_EFORMAT);
    CHECK_RC(open_rc(path, "test.kind2"), SP_EFORMAT);
    /* same content, same digest; rewriting replaces the file */
    CHECK_EQ_U64(write_sample(path), xxh);
    /* a big section (direct write path) and a file with no sections */
    sp_sfile_w *w;
    uint64_t *big = malloc((size_t)NBIG * 8);
    for (uint64_t i = 0; i < NBIG; i++) big[i] = sp_mix64(i);
    CHECK_RC(sp_sfile_create(&w, path, "big"), 0);
    CHECK_RC(sp_sfile_put(w, "small", 1, "a", 1), 0);
    CHECK_RC(sp_sfile_put(w, "big", 8, big, NBIG), 0);
    CHECK_RC(sp_sfile_commit(w, NULL), 0);
    CHECK_RC(sp_sfile_open(&r, path, "big"), 0);
    if (r) {
        CHECK_RC(sp_sfile_get(r, "big", 8, &d, &n), 0);
        CHECK(n == NBIG && memcmp(d, big, (size_t)NBIG * 8) == 0);
        sp_sfile_close(r);
    }
    free(big);
    CHECK_RC(sp_sfile_create(&w, path, "none"), 0);
    CHECK_RC(sp_sfile_commit(w, NULL), 0);
    CHECK_RC(open_rc(path, "none"), 0);
    unlink(path);
}

static void test_writer_misuse(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/mis.sp", tmpdir);
    sp_sfile_w *w;
    CHECK_RC(sp_sfile_create(&w, path, ""), SP_EINTERNAL);
    CHECK_RC(sp_sfile_create(&w, path, "0123456789abcdefg"), SP_EINTERNAL); /* 17 chars */
    CHECK_RC(sp_sfile_create(&w, "/nonexistent/dir/x.sp", "k"), SP_EIO);
    CHECK(strstr(sp_errmsg(), "/nonexistent/dir/x.sp") != NULL);
    CHECK_RC(sp_sfile_create(&w, path, "k"), 0);
    CHECK_RC(sp_sfile_put(w, "a", 4, "abcd", 1), 0);
    CHECK_RC(sp_sfile_put(w, "a", 4, "abcd", 1), SP_EINTERNAL); /* duplicate tag */
    CHECK_RC(sp_sfile_commit(w, NULL), SP_EINTERNAL);            /* sticky */
    CHECK(access(path, F_OK) != 0);
    CHECK_RC(sp_sfile_create(&w, path, "k"), 0);
    CHECK_RC(sp_sfile_append(w, "x", 1), SP_EINTERNAL); /* outside a section */
    sp_sfile_discard(w);
    CHECK_RC(sp_sfile_create(&w, path, "k"), 0);
    CHECK_RC(sp_sfile_begin(w, "a", 0), SP_EINTERNAL);
    sp_sfile_discard(w);
    CHECK_RC(sp_sfile_create(&w, path, "k"), 0);
    CHECK_RC(sp_sfile_begin(w, "a", 1), 0);
    CHECK_RC(sp_sfile_commit(w, NULL), SP_EINTERNAL); /* section still open */
    CHECK(access(path, F_OK) != 0);
    CHECK_EQ_INT(tmp_files_left(), 0);
}

/* A write that fails (here: over RLIMIT_FSIZE, EFBIG, the same path as ENOSPC)
 * is SP_EIO naming the file, and commit removes the temporary file. */
static void test_write_error(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/full.sp", tmpdir);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 1u << 20;
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    size_t n = 3u << 20;
    char *buf = calloc(1, n);
    sp_sfile_w *w;
    CHECK_RC(sp_sfile_create(&w, path, "k"), 0);
    int rc = sp_sfile_put(w, "big", 1, buf, n);
    CHECK_RC(rc, SP_EIO);
    CHECK_MSG(strstr(sp_errmsg(), path) && strstr(sp_errmsg(), "large"), "msg: %s", sp_errmsg());
    CHECK_RC(sp_sfile_commit(w, NULL), SP_EIO);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, oldsig);
    CHECK(access(path, F_OK) != 0);
    CHECK_EQ_INT(tmp_files_left(), 0);
    free(buf);
}

/* Recomputes the directory and header checksums after a forged edit. */
static void reseal(unsigned char *b) {
    uint64_t doff, fb, x;
    uint32_t ns;
    memcpy(&ns, b + 12, 4);
    memcpy(&doff, b + 32, 8);
    memcpy(&fb, b + 40, 8);
    if (doff <= fb && fb - doff == (uint64_t)ns * 48) {
        x = XXH64(b + doff, (size_t)ns * 48, 0);
        memcpy(b + 48, &x, 8);
    }
    x = XXH64(b, 56, 0);
    memcpy(b + 56, &x, 8);
}

static void test_corruption(void) {
    char path[256], bad[256];
    snprintf(path, sizeof path, "%s/good.sp", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.sp", tmpdir);
    write_sample(path);
    size_t n = 0;
    unsigned char *b = test_read(path, &n);
    CHECK(b != NULL && n > 64 && n % 8 == 0);
    if (!b) return;
    unsigned char *c = malloc(n + 64);
    uint64_t doff;
    memcpy(&doff, b + 32, 8);

    /* zero-length, every truncation, one byte appended */
    test_write(bad, "", 0);
    CHECK_RC(open_rc(bad, "test.kind"), SP_EFORMAT);
    int bad_trunc = 0;
    for (size_t k = 0; k < n; k++) {
        test_write(bad, b, k);
        bad_trunc += open_rc(bad, "test.kind") != SP_EFORMAT;
    }
    CHECK_EQ_INT(bad_trunc, 0);
    test_write(bad, b, n - 7);
    CHECK_RC(open_rc(bad, "test.kind"), SP_EFORMAT);
    CHECK_MSG(strstr(sp_errmsg(), bad) && strstr(sp_errmsg(), "bytes"), "msg: %s", sp_errmsg());
    memcpy(c, b, n);
    c[n] = 0;
    test_write(bad, c, n + 1);
    CHECK_RC(open_rc(bad, "test.kind"), SP_EFORMAT);

    /* each single flipped byte: header, sections, padding, directory */
    int bad_flip = 0;
    for (size_t k = 0; k < n; k++) {
        memcpy(c, b, n);
        c[k] ^= 0x01;
        test_write(bad, c, n);
        int rc = open_rc(bad, "test.kind");
        if (rc != SP_EFORMAT) {
            bad_flip++;
            fprintf(stderr, "flip at byte %zu: rc %d\n", k, rc);
        }
    }
    CHECK_EQ_INT(bad_flip, 0);
    /* named cases, with their messages */
    memcpy(c, b, n);
    c[0] = 'X';
    test_write(bad, c, n);
    CHECK_RC(open_rc(bad, NULL), SP_EFORMAT);
    CHECK(strstr(sp_errmsg(), "magic") != NULL);
    memcpy(c, b, n);
    c[20] ^= 0x20; /* kind */
    test_write(bad, c, n);
    CHECK_RC(open_rc(bad, NULL), SP_EFORMAT);
    CHECK(strstr(sp_errmsg(), "header checksum") != NULL);
    memcpy(c, b, n);
    c[64] ^= 0xff; /* first section */
    test_write(bad, c, n);
    CHECK_RC(open_rc(bad, NULL), SP_EFORMAT);
    CHECK(strstr(sp_errmsg(), "'ids' checksum") != NULL);
    memcpy(c, b, n);
    c[doff + 20] ^= 0x01; /* directory */
    test_write(bad, c, n);
    CHECK_RC(open_rc(bad, NULL), SP_EFORMAT);
    CHECK(strstr(sp_errmsg(), "directory checksum") != NULL);

    /* forged fields with valid checksums: the structural checks must catch them */
    struct { size_t off; int width; uint64_t val; const char *what; } forge[] = {
        {8, 4, 2, "version"},
        {12, 4, 0xffffffffu, "nsections huge"},
        {12, 4, 4, "nsections short"},
        {32, 8, UINT64_MAX, "dir_offset max"},
        {32, 8, 0, "dir_offset 0"},
        {32, 8, 1, "dir_offset unaligned"},
        {40, 8, UINT64_MAX, "file_bytes max"},
        {30, 1, 'x', "kind padding"},
        {0, 0, 0, NULL},
    };
    for (int i = 0; forge[i].what; i++) {
        memcpy(c, b, n);
        memcpy(c + forge[i].off, &forge[i].val, (size_t)forge[i].width);
        reseal(c);
        test_write(bad, c, n);
        int rc = open_rc(bad, NULL);
        CHECK_MSG(rc == SP_EFORMAT, "forged %s: rc %d", forge[i].what, rc);
    }
    /* forged directory entries (entry 0 = "ids", entry 1 = "recs") */
    struct { size_t ent, off; int width; uint64_t val; const char *what; } fent[] = {
        {0, 24, 8, UINT64_MAX, "count max (overflow)"},
        {0, 24, 8, UINT64_MAX / 8 + 1, "count*8 wraps"},
        {0, 24, 8, 9, "count past the next section"},
        {0, 16, 4, 0, "elem_size 0"},
        {0, 16, 4, 0xffffffffu, "elem_size huge"},
        {0, 20, 4, 1, "reserved"},
        {0, 32, 8, 65, "offset unaligned"},
        {0, 32, 8, 0, "offset over the header"},
        {0, 32, 8, UINT64_MAX & ~63ull, "offset max"},
        {1, 32, 8, 64, "overlaps the previous section"},
        {1, 0, 1, 'i', "duplicate tag"},
        {1, 0, 4, 0, "empty tag"},
        {1, 6, 1, 'z', "tag padding"},
        {0, 0, 0, 0, NULL},
    };
    for (int i = 0; fent[i].what; i++) {
        memcpy(c, b, n);
        if (fent[i].off == 0 && fent[i].width == 1 && fent[i].val == 'i')
            memcpy(c + doff + 48, "ids\0", 4); /* "recs" -> "ids" */
        else
            memcpy(c + doff + fent[i].ent * 48 + fent[i].off, &fent[i].val, (size_t)fent[i].width);
        reseal(c);
        test_write(bad, c, n);
        int rc = open_rc(bad, NULL);
        CHECK_MSG(rc == SP_EFORMAT, "forged entry %s: rc %d (%s)", fent[i].what, rc, sp_errmsg());
    }
    /* garbage of assorted sizes, some starting with the magic */
    sp_rng rng;
    sp_rng_init(&rng, 7, 1, 2);
    int bad_garbage = 0;
    for (int i = 0; i < 300; i++) {
        size_t len = (size_t)sp_rng_below(&rng, n + 64);
        for (size_t k = 0; k < len; k++) c[k] = (unsigned char)sp_rng_u64(&rng);
        if (i % 2 && len >= 8) memcpy(c, "SPSTAGE1", 8);
        if (i % 4 == 3 && len >= 64) reseal(c);
        test_write(bad, c, len);
        bad_garbage += open_rc(bad, NULL) != SP_EFORMAT;
    }
    CHECK_EQ_INT(bad_garbage, 0);
    CHECK_RC(open_rc("/nonexistent/x.sp", NULL), SP_EIO);
    free(c);
    free(b);
    unlink(bad);
    unlink(path);
}

int main(void) {
    strcpy(tmpdir, "/tmp/sp_test_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_round_trip();
    test_writer_misuse();
    test_write_error();
    test_corruption();
    if (rmdir(tmpdir) != 0) { perror(tmpdir); check_failures_++; }
    return CHECK_DONE();
}
