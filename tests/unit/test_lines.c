/* test_lines: the input line reader (io/tsv.c) on bad lines a caller rejects one by one: NUL bytes
 * (sp_tsv_keep_nul_lines) over every share count, plain and .zst; the UTF-8 check against an
 * independent decoder and its escaping for messages; inputs that are not regular files refused without
 * blocking; a corrupt .zst naming where the decoder found the damage. */
#include "check.h"
#include "file_testutil.h"
#include "sp_base.h"
#include "tsv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

static char tmpdir[64];


static void write_zst(const char *path, const char *buf, size_t n) {
    size_t cap = ZSTD_compressBound(n);
    char *z = malloc(cap);
    size_t zn = ZSTD_compress(z, cap, buf, n, 3);
    CHECK(!ZSTD_isError(zn));
    test_write(path, z, zn);
    free(z);
}

/* ---------- NUL bytes: one bad line, not a failed file ---------- */

/* Reads path (one share, the default NUL rule) to its end: the last sp_tsv_next result, 0 at a clean end,
 * else the error (sp_errmsg says what). */
static int read_to_end(const char *path) {
    sp_tsv *t;
    char *line;
    size_t len;
    int rc = sp_tsv_open(&t, path, 0, 1);
    CHECK_RC(rc, 0);
    if (rc) return rc;
    while ((rc = sp_tsv_next(t, &line, &len)) == 1) {}
    sp_tsv_close(t);
    return rc;
}

/* Lines "<i>\tx...": line i (1-based) holds a NUL at byte 2 when i % every == 0; the last line has no '\n'. */
static size_t make_nul_file(char *buf, int nlines, int every) {
    size_t n = 0;
    for (int i = 1; i <= nlines; i++) {
        n += (size_t)sprintf(buf + n, "%d\t", i);
        if (i % every == 0) buf[n - 1 - (i >= 10)] = 0; /* a NUL inside the id */
        n += (size_t)sprintf(buf + n, "%.*s%s", i % 40, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", i < nlines ? "\n" : "");
    }
    return n;
}

/* Reads every share with keep_nul: each line once, with its global number and full length; the NUL
 * lines are exactly those with i % every == 0 (strlen < len). */
static void check_nul_shares(const char *path, int nlines, int every) {
    for (int nparts = 1; nparts <= 4; nparts++) {
        char *seen = calloc((size_t)nlines + 1, 1);
        uint64_t before = 0, nul_lines = 0;
        for (int part = 0; part < nparts; part++) {
            sp_tsv *t = NULL;
            CHECK_RC(sp_tsv_open(&t, path, part, nparts), 0);
            if (!t) break;
            sp_tsv_keep_nul_lines(t);
            int known = sp_tsv_first_line_known(t), rc;
            char *line;
            size_t len;
            while ((rc = sp_tsv_next(t, &line, &len)) == 1) {
                uint64_t no = sp_tsv_line_no(t) + (known ? 0 : before);
                int has_nul = strlen(line) < len;
                CHECK_MSG(no >= 1 && no <= (uint64_t)nlines && !seen[no], "%s nparts %d: line %" PRIu64 " again",
                          path, nparts, no);
                if (no < 1 || no > (uint64_t)nlines) continue;
                seen[no] = 1;
                CHECK_MSG(has_nul == (no % (uint64_t)every == 0), "%s nparts %d: line %" PRIu64 " nul %d", path,
                          nparts, no, has_nul);
                CHECK_EQ_U64(len, (no >= 10 ? 3 : 2) + (no >= 100 ? 1 : 0) + (no >= 1000 ? 1 : 0) + no % 40);
                nul_lines += (uint64_t)has_nul;
            }
            CHECK_RC(rc, 0);
            before += sp_tsv_lines_seen(t);
            sp_tsv_close(t);
        }
        for (int i = 1; i <= nlines; i++) CHECK_MSG(seen[i], "%s nparts %d: line %d not read", path, nparts, i);
        CHECK_EQ_U64(nul_lines, (uint64_t)(nlines / every));
        free(seen);
    }
}

static void test_nul_lines_kept(void) {
    char path[256], zpath[256];
    snprintf(path, sizeof path, "%s/nul.tsv", tmpdir);
    snprintf(zpath, sizeof zpath, "%s/nul.tsv.zst", tmpdir);
    int nlines = 3001;
    char *buf = malloc((size_t)nlines * 64);
    int everys[] = {1, 2, 7, 1000};
    for (size_t e = 0; e < sizeof everys / sizeof *everys; e++) {
        size_t n = make_nul_file(buf, nlines, everys[e]);
        test_write(path, buf, n);
        check_nul_shares(path, nlines, everys[e]);
        write_zst(zpath, buf, n);
        check_nul_shares(zpath, nlines, everys[e]);
    }
    /* without the opt-in a NUL is still an error naming file and line (the old contract) */
    size_t n = make_nul_file(buf, nlines, 1000);
    test_write(path, buf, n);
    CHECK_RC(read_to_end(path), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), ":1000: NUL byte") != NULL, "%s", sp_errmsg());
    /* a line over 16 MiB stays an error with keep_nul */
    size_t big = (16u << 20) + 10;
    char *b = malloc(big);
    memset(b, 'x', big);
    b[5] = 0;
    test_write(path, b, big);
    sp_tsv *t;
    char *line;
    size_t len;
    CHECK_RC(sp_tsv_open(&t, path, 0, 1), 0);
    sp_tsv_keep_nul_lines(t);
    CHECK_RC(sp_tsv_next(t, &line, &len), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), "16 MiB") != NULL, "%s", sp_errmsg());
    sp_tsv_close(t);
    free(b);
    free(buf);
    unlink(path);
    unlink(zpath);
}

/* ---------- UTF-8 ---------- */

/* Reference: decodes code points the long way and checks the rules of RFC 3629 one by one. */
static int ref_check(const unsigned char *s, size_t n, size_t *at) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        uint32_t cp = k == 1 ? c : k == 2 ? c & 0x1F : k == 3 ? c & 0x0F : c & 0x07;
        int ok = k > 0 && i + k <= n;
        for (size_t j = 1; ok && j < k; j++) {
            ok = (s[i + j] & 0xC0) == 0x80;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (ok) ok = cp >= min_cp[k] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
        if (!ok || cp == 0) {
            *at = i;
            return ok ? SP_TEXT_NUL : SP_TEXT_NOT_UTF8;
        }
        i += k;
    }
    return SP_TEXT_OK;
}

static void test_text_check(void) {
    struct { const char *s; size_t n; int want; size_t at; } cases[] = {
        {"", 0, SP_TEXT_OK, 0},
        {"plain ascii text, longer than eight bytes", 41, SP_TEXT_OK, 0},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf", 19, SP_TEXT_OK, 0},
        {"12345678\xff\xfe", 10, SP_TEXT_NOT_UTF8, 8},
        {"abc\0def", 7, SP_TEXT_NUL, 3},
        {"abcdefghijklmno\0", 16, SP_TEXT_NUL, 15},
        {"\xc0\xaf", 2, SP_TEXT_NOT_UTF8, 0},             /* overlong '/' */
        {"\xe0\x80\xaf", 3, SP_TEXT_NOT_UTF8, 0},         /* overlong */
        {"\xed\xa0\x80", 3, SP_TEXT_NOT_UTF8, 0},         /* surrogate D800 */
        {"\xf4\x90\x80\x80", 4, SP_TEXT_NOT_UTF8, 0},     /* above U+10FFFF */
        {"ab\xe2\x82", 4, SP_TEXT_NOT_UTF8, 2},           /* cut at the end */
        {"ab\x80", 3, SP_TEXT_NOT_UTF8, 2},               /* lone continuation byte */
        {"\xc3\xa9\xc3", 3, SP_TEXT_NOT_UTF8, 2},
        {"\xf0\x9f\x98", 3, SP_TEXT_NOT_UTF8, 0},
        {"a\xc3(", 3, SP_TEXT_NOT_UTF8, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t at = 99;
        int got = sp_text_check(cases[i].s, cases[i].n, &at);
        CHECK_MSG(got == cases[i].want && (got == SP_TEXT_OK || at == cases[i].at), "case %zu: got %d at %zu, want %d at %zu",
                  i, got, at, cases[i].want, cases[i].at);
    }
    /* random strings, mostly ASCII with some high bytes and NULs at every alignment, against the reference */
    sp_rng rng;
    sp_rng_init(&rng, 7, 1, 0);
    unsigned char s[80];
    int mismatches = 0;
    for (int it = 0; it < 200000 && mismatches < 5; it++) {
        size_t n = (size_t)sp_rng_below(&rng, sizeof s + 1);
        uint64_t mode = sp_rng_below(&rng, 4);
        for (size_t j = 0; j < n; j++) {
            uint64_t r = sp_rng_below(&rng, 1000);
            s[j] = mode == 0 || r < 900 ? (unsigned char)(0x20 + sp_rng_below(&rng, 0x5f))
                   : r < 905 && mode == 1 ? 0
                   : (unsigned char)(0x80 + sp_rng_below(&rng, 0x80));
            if (mode == 3 && r >= 900) { /* a valid character now and then, so some long strings pass */
                uint32_t cp = (uint32_t)sp_rng_below(&rng, 0x10FFFF) + 1;
                if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xE9;
                size_t k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
                if (j + k > n) continue;
                if (k == 1) s[j] = (unsigned char)cp;
                else {
                    for (size_t q = k - 1; q > 0; q--, cp >>= 6) s[j + q] = (unsigned char)(0x80 | (cp & 0x3F));
                    s[j] = (unsigned char)((k == 2 ? 0xC0 : k == 3 ? 0xE0 : 0xF0) | cp);
                }
                j += k - 1;
            }
        }
        size_t at1 = 0, at2 = 0;
        int a = sp_text_check((const char *)s, n, &at1), b = ref_check(s, n, &at2);
        if (a != b || (a && at1 != at2)) {
            mismatches++;
            CHECK_MSG(0, "random case %d (n %zu): got %d at %zu, reference %d at %zu", it, n, a, at1, b, at2);
        }
    }
}

static void test_text_escape(void) {
    char out[64];
    CHECK_EQ_U64(sp_text_escape(out, sizeof out, "sa\xffve", 5), 5);
    CHECK_STR(out, "sa\\xffve");
    CHECK_EQ_U64(sp_text_escape(out, sizeof out, "a\0b", 3), 3);
    CHECK_STR(out, "a\\x00b");
    CHECK_EQ_U64(sp_text_escape(out, sizeof out, "caf\xc3\xa9\xed\xa0\x80", 8), 8);
    CHECK_STR(out, "caf\xc3\xa9\\xed\\xa0\\x80");
    /* a full buffer cuts at a character boundary, never inside a character or an escape */
    CHECK_EQ_U64(sp_text_escape(out, 4, "ab\xc3\xa9", 4), 2);
    CHECK_STR(out, "ab");
    CHECK_EQ_U64(sp_text_escape(out, 5, "ab\xc3\xa9", 4), 4);
    CHECK_STR(out, "ab\xc3\xa9");
    CHECK_EQ_U64(sp_text_escape(out, 5, "a\xff", 2), 1);
    CHECK_STR(out, "a");
    CHECK_EQ_U64(sp_text_escape(out, 6, "a\xff", 2), 2);
    CHECK_STR(out, "a\\xff");
    CHECK_EQ_U64(sp_text_escape(out, 1, "abc", 3), 0);
    CHECK_STR(out, "");
    /* whatever goes in, what comes out is valid UTF-8 without NUL */
    sp_rng rng;
    sp_rng_init(&rng, 8, 1, 0);
    unsigned char s[40];
    for (int it = 0; it < 20000; it++) {
        size_t n = (size_t)sp_rng_below(&rng, sizeof s + 1), cap = 1 + (size_t)sp_rng_below(&rng, sizeof out);
        for (size_t j = 0; j < n; j++) s[j] = (unsigned char)sp_rng_below(&rng, 256);
        size_t used = sp_text_escape(out, cap, (const char *)s, n), len = strlen(out);
        CHECK(used <= n && len < cap);
        if (sp_text_check(out, len, NULL) != SP_TEXT_OK) {
            CHECK_MSG(0, "escape of random case %d is not UTF-8", it);
            break;
        }
    }
}

/* ---------- inputs that are not regular files ---------- */

static void test_not_regular(void) {
    char p[256];
    int fd = -1;
    alarm(60); /* a blocking open would hang here: SIGALRM fails the test instead */
    snprintf(p, sizeof p, "%s/fifo.tsv", tmpdir);
    CHECK(mkfifo(p, 0600) == 0);
    CHECK_RC(sp_input_open(p, &fd), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), "fifo.tsv: not a regular file (a FIFO)") != NULL, "%s", sp_errmsg());
    CHECK_EQ_INT(fd, -1);
    sp_tsv *t = NULL;
    CHECK_RC(sp_tsv_open(&t, p, 0, 1), SP_EINPUT);
    CHECK(t == NULL);
    unlink(p);
    snprintf(p, sizeof p, "%s/dir.tsv", tmpdir);
    CHECK(mkdir(p, 0700) == 0);
    CHECK_RC(sp_input_open(p, &fd), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), "dir.tsv: not a regular file (a directory)") != NULL, "%s", sp_errmsg());
    CHECK_RC(sp_tsv_open(&t, p, 0, 1), SP_EINPUT);
    rmdir(p);
    alarm(0);
    /* missing: the errno value, for the caller to map; sp_tsv_open keeps SP_EIO */
    snprintf(p, sizeof p, "%s/missing.tsv", tmpdir);
    CHECK_RC(sp_input_open(p, &fd), ENOENT);
    CHECK(strstr(sp_errmsg(), "missing.tsv: cannot open") != NULL);
    CHECK_RC(sp_tsv_open(&t, p, 0, 1), SP_EIO);
    /* a regular file opens, blocking mode restored */
    test_write(p, "1\t2\n", 4);
    CHECK_RC(sp_input_open(p, &fd), SP_OK);
    CHECK(fd >= 0 && !(fcntl(fd, F_GETFL) & O_NONBLOCK));
    if (fd >= 0) close(fd);
    unlink(p);
}

/* ---------- corrupt .zst: where ---------- */

/* Damage in the middle of a stream that fits the reader's 1 MiB input chunk and 1 MiB line buffer (one
 * decoder call for the whole file) used to be reported "near compressed byte 0"; the message now names
 * the step of at most 64 KiB in which the decoder found it, which holds the end of the damaged block
 * (blocks are at most 128 KiB). */
static void test_zst_corrupt_where(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/where.tsv.zst", tmpdir);
    size_t n = 900u << 10;
    char *buf = malloc(n);
    sp_rng rng;
    sp_rng_init(&rng, 9, 1, 0);
    /* rows like pin_board.tsv's: random ids, timestamps sharing a prefix (matches as well as literals: a
     * damaged sequence section is what the decoder notices, damaged literals may just decode to garbage) */
    size_t m = 0;
    while (m + 64 < n)
        m += (size_t)sprintf(buf + m, "%llu\t%llu\t17%011llu\n", (unsigned long long)sp_rng_below(&rng, 1000000000),
                             (unsigned long long)sp_rng_below(&rng, 1000000),
                             (unsigned long long)sp_rng_below(&rng, 1000000000));
    n = m;
    size_t cap = ZSTD_compressBound(n);
    char *z = malloc(cap);
    size_t zn = ZSTD_compress(z, cap, buf, n, 1);
    CHECK(!ZSTD_isError(zn));
    CHECK_MSG(zn > (256u << 10) && zn < (1u << 20), "compressed size %zu: want one input chunk, several steps", zn);
    size_t bad = zn / 2;
    memset(z + bad, 0xff, 64u << 10); /* more than a compressed block: its sequences are hit, not only literals */
    test_write(path, z, zn);
    CHECK_RC(read_to_end(path), SP_EFORMAT);
    unsigned long long a = 0, b = 0, total = 0;
    const char *msg = strstr(sp_errmsg(), "corrupt zstd data, found in compressed bytes ");
    int got = msg ? sscanf(msg, "corrupt zstd data, found in compressed bytes %llu-%llu (of %llu)", &a, &b, &total) : 0;
    CHECK_MSG(got == 3, "message: %s", sp_errmsg());
    CHECK_MSG(a < b && b - a <= (64u << 10) && b > bad && a <= bad + (128u << 10) + 3 && total == zn,
              "damage at %zu of %zu, message: %s", bad, zn, sp_errmsg());
    CHECK(strstr(sp_errmsg(), path) != NULL);
    unlink(path);
    free(z);
    free(buf);
}

int main(void) {
    strcpy(tmpdir, "/tmp/sp_test_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_nul_lines_kept();
    test_text_check();
    test_text_escape();
    test_not_regular();
    test_zst_corrupt_where();
    if (rmdir(tmpdir) != 0) { perror(tmpdir); check_failures_++; }
    return CHECK_DONE();
}
