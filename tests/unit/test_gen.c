/* test_gen: the synthetic generator is deterministic, writes exactly the
 * requested counts, never a duplicate edge or event, keeps events inside the
 * day and increasing per user, and gives power-law board sizes. */
#include "check.h"
#include "gen.h"
#include "sfv.h"
#include "sp_base.h"

#include <stdlib.h>
#include <unistd.h>

static char root[64];

static char *slurp(const char *dir, const char *name, size_t *len) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) { *len = 0; return NULL; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

static int same_file(const char *d1, const char *d2, const char *name) {
    size_t n1, n2;
    char *a = slurp(d1, name, &n1), *b = slurp(d2, name, &n2);
    int same = a && b && n1 == n2 && memcmp(a, b, n1) == 0;
    free(a);
    free(b);
    return same;
}

static sp_gen_opts base_opts(void) {
    sp_gen_opts o;
    sp_gen_defaults(&o);
    o.pins = 5000; o.boards = 400; o.edges = 40000; o.users = 300; o.events = 6000; o.seed = 7; o.dim = 8;
    return o;
}

static int progress_final;
static void on_progress(void *ctx, const char *what, uint64_t done, uint64_t total) {
    (void)ctx; (void)what;
    if (done == total) progress_final++;
}

typedef struct { uint64_t a, b; } pair;
static int cmp_pair(const void *x, const void *y) {
    const pair *p = x, *q = y;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return p->b < q->b ? -1 : p->b > q->b;
}
static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static void test_determinism(void) {
    char d1[128], d2[128], d3[128];
    snprintf(d1, sizeof d1, "%s/a/deep", root);
    snprintf(d2, sizeof d2, "%s/b", root);
    snprintf(d3, sizeof d3, "%s/c", root);
    sp_gen_opts o = base_opts();
    o.progress = on_progress;
    CHECK_RC(sp_gen_run(&o, d1), SP_OK);
    CHECK_EQ_INT(progress_final, 4);
    o.progress = NULL;
    CHECK_RC(sp_gen_run(&o, d2), SP_OK);
    const char *files[] = {"pin_board.tsv", "pin_dense.sfv", "pin_tokens.tsv", "events.tsv"};
    for (int i = 0; i < 4; i++) CHECK_MSG(same_file(d1, d2, files[i]), "%s differs for the same seed", files[i]);
    o.seed = 8;
    CHECK_RC(sp_gen_run(&o, d3), SP_OK);
    for (int i = 0; i < 4; i++) CHECK_MSG(!same_file(d1, d3, files[i]), "%s same for different seeds", files[i]);
    char p[256];
    snprintf(p, sizeof p, "%s/pin_board.tsv.tmp", d1);
    CHECK(access(p, F_OK) != 0);
}

static void test_edges(void) {
    char d[128];
    snprintf(d, sizeof d, "%s/a/deep", root);
    sp_gen_opts o = base_opts();
    size_t len;
    char *t = slurp(d, "pin_board.tsv", &len);
    CHECK(t != NULL);
    if (!t) return;
    pair *e = malloc(o.edges * 2 * sizeof *e);
    uint64_t n = 0, bad = 0;
    uint64_t *bsize = calloc(o.boards + 1, sizeof *bsize);
    int64_t lo = o.day_ms - 730 * SP_DAY_MS, hi = o.day_ms + SP_DAY_MS;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned long long pin, board;
        long long ts;
        if (sscanf(line, "%llu\t%llu\t%lld", &pin, &board, &ts) != 3 || pin < 1 || pin > o.pins || board < 1 ||
            board > o.boards || ts < lo || ts >= hi || n >= 2 * o.edges) { bad++; continue; }
        e[n++] = (pair){board, pin};
        bsize[board]++;
    }
    CHECK_EQ_U64(bad, 0);
    CHECK_EQ_U64(n, o.edges);
    qsort(e, n, sizeof *e, cmp_pair);
    uint64_t dups = 0;
    for (uint64_t i = 1; i < n; i++) dups += e[i].a == e[i - 1].a && e[i].b == e[i - 1].b;
    CHECK_EQ_U64(dups, 0);
    uint64_t empty = 0, maxs = 0;
    for (uint64_t b = 1; b <= o.boards; b++) { empty += bsize[b] == 0; maxs = bsize[b] > maxs ? bsize[b] : maxs; }
    CHECK_EQ_U64(empty, 0);
    qsort(bsize + 1, o.boards, sizeof *bsize, cmp_u64);
    uint64_t median = bsize[1 + o.boards / 2];
    CHECK_MSG(maxs >= 5 * median, "max board %llu, median %llu: not heavy-tailed", (unsigned long long)maxs,
              (unsigned long long)median);
    /* Planted communities: most of a board's pins share its most common community. */
    uint64_t agree = 0, i = 0;
    while (i < n) {
        uint64_t j = i, cnt[128] = {0}, best = 0;
        while (j < n && e[j].a == e[i].a) j++;
        for (uint64_t k = i; k < j; k++) {
            uint32_t c = sp_gen_pin_community(&o, e[k].b);
            if (c < 128 && ++cnt[c] > best) best = cnt[c];
        }
        agree += best;
        i = j;
    }
    CHECK_MSG(agree > n * 6 / 10, "only %llu of %llu edges in their board's main community",
              (unsigned long long)agree, (unsigned long long)n);
    free(e);
    free(bsize);
    free(t);
}

static void test_features_tokens(void) {
    char d[128], p[256];
    snprintf(d, sizeof d, "%s/a/deep", root);
    sp_gen_opts o = base_opts();
    snprintf(p, sizeof p, "%s/pin_dense.sfv", d);
    sp_sfv_reader *r;
    CHECK_RC(sp_sfv_open(&r, p, 0, 1), SP_OK);
    if (r) {
        CHECK_EQ_U64(sp_sfv_count(r), o.pins);
        CHECK_EQ_U64(sp_sfv_dim(r), 8);
        uint64_t idx, id, nonfinite = 0, n = 0;
        float v[8];
        while (sp_sfv_next(r, &idx, &id, v) == 1) { nonfinite += !sp_sfv_finite(v, 8); CHECK_EQ_U64(id, ++n); }
        CHECK_EQ_U64(n, o.pins);
        CHECK_EQ_U64(nonfinite, 0);
        sp_sfv_close(r);
    }
    size_t len;
    char *t = slurp(d, "pin_tokens.tsv", &len);
    uint64_t rows = 0, bad = 0, comm_tok = 0, tok = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        rows++;
        char *tab = strchr(line, '\t');
        if (!tab || strtoull(line, NULL, 10) != rows) { bad++; continue; }
        uint32_t c = sp_gen_pin_community(&o, rows);
        int ntok = 0;
        for (char *s = tab + 1; s && *s; ) {
            ntok++;
            unsigned cc;
            if (sscanf(s, "c%u_w", &cc) == 1) { comm_tok++; if (cc != c) bad++; }
            s = strchr(s, ' ');
            if (s) s++;
        }
        tok += (uint64_t)ntok;
        if (ntok < 3 || ntok > 8) bad++;
    }
    CHECK_EQ_U64(rows, o.pins);
    CHECK_EQ_U64(bad, 0);
    CHECK(comm_tok > tok * 3 / 4);
    free(t);
}

static void test_events(void) {
    char d[128];
    snprintf(d, sizeof d, "%s/a/deep", root);
    sp_gen_opts o = base_opts();
    size_t len;
    char *t = slurp(d, "events.tsv", &len);
    uint64_t n = 0, bad = 0, order = 0, users_seen = 0, prev_user = 0;
    long long prev_ts = 0;
    uint64_t act[4] = {0};
    const char *acts[4] = {"click", "closeup", "save", "hide"};
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned long long u, pin;
        long long ts;
        char a[16], s[16];
        n++;
        if (sscanf(line, "%llu\t%llu\t%15[a-z]\t%lld\t%15[a-z]", &u, &pin, a, &ts, s) != 5 || u < 1 || u > o.users ||
            pin < 1 || pin > o.pins || ts < o.day_ms || ts >= o.day_ms + SP_DAY_MS) { bad++; continue; }
        int k = 0;
        while (k < 4 && strcmp(a, acts[k])) k++;
        if (k == 4) bad++; else act[k]++;
        if (strcmp(s, "homefeed") && strcmp(s, "search") && strcmp(s, "related") && strcmp(s, "profile")) bad++;
        if (u == prev_user) { if (ts <= prev_ts) order++; }
        else { if (u < prev_user) order++; users_seen++; }
        prev_user = u;
        prev_ts = ts;
    }
    CHECK_EQ_U64(n, o.events);
    CHECK_EQ_U64(bad, 0);
    CHECK_EQ_U64(order, 0); /* grouped by user, strictly increasing ts: no duplicate rows */
    CHECK(users_seen > o.users / 2);
    CHECK_MSG(act[0] > act[1] && act[1] > act[2] / 2 && act[2] > act[3], "actions %llu %llu %llu %llu",
              (unsigned long long)act[0], (unsigned long long)act[1], (unsigned long long)act[2],
              (unsigned long long)act[3]);
    free(t);
}

static uint64_t count_lines(const char *dir, const char *name) {
    size_t len;
    char *t = slurp(dir, name, &len);
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) n += t[i] == '\n';
    free(t);
    return n;
}

static void test_edge_cases(void) {
    char d[128];
    sp_gen_opts o;
    sp_gen_defaults(&o);
    CHECK_EQ_U64(o.dim, 16);
    CHECK_EQ_INT(o.tokens, 1);
    int64_t day;
    sp_date_parse("2026-11-21", &day);
    CHECK_EQ_INT(o.day_ms, day);
    snprintf(d, sizeof d, "%s/dense", root);
    /* every possible edge: 3 pins x 4 boards */
    o.pins = 3; o.boards = 4; o.edges = 12; o.users = 2; o.events = 5; o.dim = 0; o.tokens = 0;
    CHECK_RC(sp_gen_run(&o, d), SP_OK);
    CHECK_EQ_U64(count_lines(d, "pin_board.tsv"), 12);
    CHECK_EQ_U64(count_lines(d, "events.tsv"), 5);
    char p[256];
    snprintf(p, sizeof p, "%s/pin_dense.sfv", d);
    CHECK(access(p, F_OK) != 0);
    o.edges = 13;
    CHECK_RC(sp_gen_run(&o, d), SP_EUSAGE);
    /* fewer edges than boards */
    snprintf(d, sizeof d, "%s/sparse", root);
    o.pins = 100; o.boards = 50; o.edges = 20; o.events = 0;
    CHECK_RC(sp_gen_run(&o, d), SP_OK);
    CHECK_EQ_U64(count_lines(d, "pin_board.tsv"), 20);
    CHECK_EQ_U64(count_lines(d, "events.tsv"), 0);
    o.users = 0; o.events = 1;
    CHECK_RC(sp_gen_run(&o, d), SP_EUSAGE);
    /* the first day of 1970: the edges' two years of history start at 0, not before (ingest rejects those) */
    snprintf(d, sizeof d, "%s/epoch", root);
    o.users = 2; o.events = 0;
    sp_date_parse("1970-01-01", &o.day_ms);
    CHECK_RC(sp_gen_run(&o, d), SP_OK);
    size_t len;
    char *t = slurp(d, "pin_board.tsv", &len);
    uint64_t n = 0, bad = 0;
    for (char *line = t ? strtok(t, "\n") : NULL; line; line = strtok(NULL, "\n"), n++) {
        long long ts;
        bad += sscanf(line, "%*u\t%*u\t%lld", &ts) != 1 || ts < 0 || ts >= SP_DAY_MS;
    }
    CHECK_EQ_U64(n, 20);
    CHECK_EQ_U64(bad, 0);
    free(t);
    /* a rerun into the same directory is fine; an input it does not write there (a .zst twin) is refused */
    CHECK_RC(sp_gen_run(&o, d), SP_OK);
    snprintf(p, sizeof p, "%s/pin_board.tsv.zst", d);
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
    CHECK_RC(sp_gen_run(&o, d), SP_EUSAGE);
    CHECK_MSG(strstr(sp_errmsg(), "pin_board.tsv.zst exists") != NULL, "%s", sp_errmsg());
    unlink(p);
}

int main(void) {
    strcpy(root, "/tmp/sp_test_XXXXXX");
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    test_determinism();
    test_edges();
    test_features_tokens();
    test_events();
    test_edge_cases();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return CHECK_DONE();
}
