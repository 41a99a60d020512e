/* test_import: LightGCN and S3Rec importers on small hand-written fixtures:
 * exact rows, dedupe counts, holdout, attributes, bad input naming the
 * file and line, and inputs that are not regular files refused without blocking. */
#include "check.h"
#include "import.h"
#include "sp_base.h"
#include "tsv.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64];

static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *dir, const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    char *r = malloc(n + 1);
    memcpy(r, buf, n + 1);
    return r;
}

static void check_file(const char *dir, const char *name, const char *want) {
    char *got = slurp(dir, name);
    CHECK_STR(got, want);
    free(got);
}

/* A LightGCN data dir root/NAME with train.txt = train; out = root/OUT. */
static void lg_fixture(const char *name, const char *outname, const char *train, char data[128], char out[128]) {
    char p[256];
    snprintf(data, 128, "%s/%s", root, name);
    snprintf(out, 128, "%s/%s", root, outname);
    mkdir(data, 0777);
    snprintf(p, sizeof p, "%s/train.txt", data);
    put(p, train);
}

static void test_lightgcn(void) {
    char data[128], out[128], p[256];
    lg_fixture("lg", "lg_out/x", "0 5 7 5\n1 7\r\n2 0 1 2\n", data, out);
    snprintf(p, sizeof p, "%s/test.txt", data);
    put(p, "garbage that must not be read\n");
    sp_import_stats st;
    CHECK_RC(sp_import_lightgcn(data, out, 0, 0, &st), SP_OK);
    CHECK_EQ_U64(st.users, 3);
    CHECK_EQ_U64(st.items, 5);
    CHECK_EQ_U64(st.edges, 6);
    CHECK_EQ_U64(st.dup_edges, 1);
    CHECK_EQ_U64(st.events, 7);
    CHECK_EQ_U64(st.tokens_rows, 0);
    check_file(out, "pin_board.tsv", "5\t0\n7\t0\n7\t1\n0\t2\n1\t2\n2\t2\n");
    check_file(out, "events.tsv",
               "0\t5\tengage\t1700000000000\n0\t7\tengage\t1700000001000\n0\t5\tengage\t1700000002000\n"
               "1\t7\tengage\t1700000003000\n2\t0\tengage\t1700000004000\n2\t1\tengage\t1700000005000\n"
               "2\t2\tengage\t1700000006000\n");
    snprintf(p, sizeof p, "%s/pin_board.tsv.tmp", out);
    CHECK(access(p, F_OK) != 0);
    CHECK_RC(sp_import_lightgcn(data, out, 0, 0, NULL), SP_OK);
}

/* --validation: per user round(F n) items (1..n-1) held out, the rest in order; the union is the line;
 * a user with one item keeps it; the split is fixed by the user id (a rerun gives the same files). */
static void test_lightgcn_validation(void) {
    char data[128], out[128];
    lg_fixture("lgv", "lgv_out", "0 100 101 102 103 104 105 106 107 108 109\n1 7\n2 20 21\n3 30 31 32 33 34\n", data,
               out);
    sp_import_stats st;
    CHECK_RC(sp_import_lightgcn(data, out, 0.2, 0, &st), SP_OK);
    CHECK_EQ_U64(st.users, 4);
    CHECK_EQ_U64(st.events, 18 - 4); /* 2 + 0 + 1 + 1 held out */
    char *ev = slurp(out, "events.tsv"), *ho = slurp(out, "heldout.txt");
    CHECK(ev && ho);
    if (!ev || !ho) return;
    /* per user: the kept items (events, in order) and the held-out ones (heldout.txt, in order) */
    uint64_t kept[4][16], held[4][16];
    int nk[4] = {0}, nh[4] = {0};
    char *save = NULL;
    for (char *l = strtok_r(ev, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        unsigned long long u, it;
        CHECK(sscanf(l, "%llu\t%llu", &u, &it) == 2 && u < 4);
        if (u < 4 && nk[u] < 16) kept[u][nk[u]++] = it;
    }
    int lines = 0;
    for (char *l = strtok_r(ho, "\n", &save); l; l = strtok_r(NULL, "\n", &save), lines++) {
        char *q = l, *e;
        unsigned long long u = strtoull(q, &e, 10);
        CHECK(e != q && u < 4 && u != 1);
        if (u >= 4) continue;
        for (q = e; *q; q = e) {
            unsigned long long it = strtoull(q, &e, 10);
            if (e == q) break;
            if (nh[u] < 16) held[u][nh[u]++] = it;
        }
    }
    CHECK_EQ_INT(lines, 3);
    const int n[4] = {10, 1, 2, 5}, want_h[4] = {2, 0, 1, 1};
    const uint64_t first[4] = {100, 7, 20, 30};
    for (int u = 0; u < 4; u++) {
        CHECK_EQ_INT(nh[u], want_h[u]);
        CHECK_EQ_INT(nk[u] + nh[u], n[u]);
        /* the line's items, each exactly once: kept and held out are both ascending here (file order) */
        uint8_t seen[16] = {0};
        for (int i = 0; i < nk[u]; i++) {
            CHECK(kept[u][i] >= first[u] && kept[u][i] < first[u] + (uint64_t)n[u]);
            if (i) CHECK(kept[u][i] > kept[u][i - 1]);
            if (kept[u][i] >= first[u] && kept[u][i] < first[u] + 16) seen[kept[u][i] - first[u]]++;
        }
        for (int i = 0; i < nh[u]; i++) {
            if (i) CHECK(held[u][i] > held[u][i - 1]);
            if (held[u][i] >= first[u] && held[u][i] < first[u] + 16) seen[held[u][i] - first[u]]++;
        }
        for (int i = 0; i < n[u]; i++) CHECK_EQ_INT(seen[i], 1);
    }
    free(ev);
    free(ho);
    /* fixed by the user id: a rerun writes the same files */
    char *a = slurp(out, "heldout.txt");
    CHECK_RC(sp_import_lightgcn(data, out, 0.2, 0, NULL), SP_OK);
    char *b = slurp(out, "heldout.txt");
    CHECK(a && b && !strcmp(a, b));
    free(a);
    free(b);
    CHECK_RC(sp_import_lightgcn(data, out, 1.0, 0, NULL), SP_EUSAGE);
    CHECK_RC(sp_import_lightgcn(data, out, -0.1, 0, NULL), SP_EUSAGE);
    /* the last ones in file order: the same counts, the tail of each line (this line is not sorted) */
    lg_fixture("lgv", "lgv_out", "0 109 100 108 101 107 102 106 103 105 104\n1 7\n2 21 20\n3 34 30 33 31 32\n", data,
               out);
    CHECK_RC(sp_import_lightgcn(data, out, 0.2, 1, &st), SP_OK);
    CHECK_EQ_U64(st.events, 18 - 4);
    check_file(out, "heldout.txt", "0 105 104\n2 20\n3 32\n");
    a = slurp(out, "events.tsv");
    CHECK(a && strstr(a, "0\t103\tengage") && !strstr(a, "0\t104\tengage") && strstr(a, "3\t31\tengage") &&
          !strstr(a, "3\t32\tengage") && strstr(a, "2\t21\tengage") && !strstr(a, "2\t20\tengage"));
    free(a);
}

static void expect_bad(const char *content, const char *what, const char *line) {
    char data[128], out[128], p[256];
    snprintf(data, sizeof data, "%s/bad", root);
    snprintf(out, sizeof out, "%s/bad_out", root);
    mkdir(data, 0777);
    snprintf(p, sizeof p, "%s/train.txt", data);
    put(p, content);
    CHECK_RC(sp_import_lightgcn(data, out, 0, 0, NULL), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), "train.txt") && strstr(sp_errmsg(), line) && strstr(sp_errmsg(), what),
              "message '%s' lacks file, '%s' or '%s'", sp_errmsg(), line, what);
    snprintf(p, sizeof p, "%s/events.tsv", out);
    CHECK(access(p, F_OK) != 0); /* nothing published */
    snprintf(p, sizeof p, "%s/events.tsv.tmp", out);
    CHECK(access(p, F_OK) != 0);
    /* the same content through the S3Rec importer */
    snprintf(p, sizeof p, "%s/train.txt", data);
    CHECK_RC(sp_import_s3rec(p, out, NULL, 0, NULL), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), line) != NULL);
}

static void test_bad_input(void) {
    expect_bad("1 2 3\n2 x 4\n", "'x'", ":2:");
    expect_bad("1 2 3\n\n2 3\n", "empty line", ":2:");
    expect_bad("1 2 3\n4\n", "no items", ":2:");
    expect_bad("1 2 -3\n", "'-3'", ":1:");
    expect_bad("1 2 99999999999999999999\n", "64 bits", ":1:");
    expect_bad("1 2\n3 4\n1 5\n", "appears again", ":3:");
    expect_bad("", "no lines", "train.txt");
    /* a token that is not UTF-8 is quoted escaped: the message stays valid text */
    expect_bad("1 2 3\n2 x\xff\xfe 4\n", "'x\\xff\\xfe'", ":2:");
    CHECK_MSG(sp_text_check(sp_errmsg(), strlen(sp_errmsg()), NULL) == SP_TEXT_OK, "not UTF-8: %s", sp_errmsg());
    char out[128];
    snprintf(out, sizeof out, "%s/none_out", root);
    CHECK_RC(sp_import_lightgcn("/nonexistent/dir", out, 0, 0, NULL), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "/nonexistent/dir/train.txt") != NULL);
}

static void test_s3rec(void) {
    char seq[256], attr[256], out[128];
    snprintf(seq, sizeof seq, "%s/seq.txt", root);
    snprintf(attr, sizeof attr, "%s/attr.json", root);
    put(seq, "1 10 11 10 12\n2 11 13\n3 14\n");
    put(attr, "{\"10\": [7, 8], \"11\": [3], \"12\": [4], \"13\": [], \"14\": [5], \"99\": [6]}");
    snprintf(out, sizeof out, "%s/s3_full", root);
    sp_import_stats st;
    CHECK_RC(sp_import_s3rec(seq, out, attr, 0, &st), SP_OK);
    CHECK_EQ_U64(st.users, 3);
    CHECK_EQ_U64(st.items, 5);
    CHECK_EQ_U64(st.events, 7);
    CHECK_EQ_U64(st.edges, 6);
    CHECK_EQ_U64(st.dup_edges, 1);
    CHECK_EQ_U64(st.tokens_rows, 4); /* 13 has no attributes, 99 is not in the data */
    check_file(out, "events.tsv",
               "1\t10\tengage\t1700000000000\n1\t11\tengage\t1700000060000\n1\t10\tengage\t1700000120000\n"
               "1\t12\tengage\t1700000180000\n2\t11\tengage\t1700000000000\n2\t13\tengage\t1700000060000\n"
               "3\t14\tengage\t1700000000000\n");
    check_file(out, "pin_board.tsv", "10\t1\n11\t1\n12\t1\n11\t2\n13\t2\n14\t3\n");
    check_file(out, "pin_tokens.tsv", "10\tattr7 attr8\n11\tattr3\n12\tattr4\n14\tattr5\n");

    /* holdout 1: user 1 keeps 10 11 10, user 2 keeps 11, user 3 keeps nothing */
    snprintf(out, sizeof out, "%s/s3_hold", root);
    CHECK_RC(sp_import_s3rec(seq, out, attr, 1, &st), SP_OK);
    CHECK_EQ_U64(st.users, 2);
    CHECK_EQ_U64(st.items, 2);
    CHECK_EQ_U64(st.events, 4);
    CHECK_EQ_U64(st.edges, 3);
    check_file(out, "events.tsv",
               "1\t10\tengage\t1700000000000\n1\t11\tengage\t1700000060000\n1\t10\tengage\t1700000120000\n"
               "2\t11\tengage\t1700000000000\n");
    check_file(out, "pin_board.tsv", "10\t1\n11\t1\n11\t2\n");
    check_file(out, "heldout.txt", "1 12\n2 13\n"); /* user 3 has no history left: not scored */
    check_file(out, "pin_tokens.tsv", "10\tattr7 attr8\n11\tattr3\n");
    CHECK_EQ_U64(st.users_held_out, 1);
    /* the same directory without --attributes: its pin_tokens.tsv would be read as this import's: refused */
    CHECK_RC(sp_import_s3rec(seq, out, NULL, 1, NULL), SP_EUSAGE);
    CHECK(strstr(sp_errmsg(), "pin_tokens.tsv exists") != NULL);
    /* without --holdout its heldout.txt would be scored as this import's; another tool's .zst input too */
    CHECK_RC(sp_import_s3rec(seq, out, attr, 0, NULL), SP_EUSAGE);
    CHECK_MSG(strstr(sp_errmsg(), "heldout.txt exists") != NULL, "%s", sp_errmsg());
    char pz[256];
    snprintf(pz, sizeof pz, "%s/pin_pin.tsv.zst", out);
    put(pz, "x");
    CHECK_RC(sp_import_s3rec(seq, out, attr, 1, NULL), SP_EUSAGE);
    CHECK_MSG(strstr(sp_errmsg(), "pin_pin.tsv.zst exists") != NULL, "%s", sp_errmsg());
    unlink(pz);
    /* every user's items held out: nothing to import is an error, not empty files */
    snprintf(out, sizeof out, "%s/s3_none", root);
    CHECK_RC(sp_import_s3rec(seq, out, attr, 4, NULL), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "nothing to import: all 3 users") != NULL);

    /* no attributes: no pin_tokens.tsv */
    snprintf(out, sizeof out, "%s/s3_noattr", root);
    CHECK_RC(sp_import_s3rec(seq, out, NULL, 0, &st), SP_OK);
    char *t = slurp(out, "pin_tokens.tsv");
    CHECK(t == NULL);
    free(t);
    CHECK_RC(sp_import_s3rec(seq, out, NULL, -1, NULL), SP_EUSAGE);

    /* bad JSON: file named, line/col; nothing published */
    snprintf(out, sizeof out, "%s/s3_badjson", root);
    put(attr, "{\"10\": [1,\n 2,]}");
    CHECK_RC(sp_import_s3rec(seq, out, attr, 0, NULL), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), "attr.json") && strstr(sp_errmsg(), "line 2"), "%s", sp_errmsg());
    char p[256];
    snprintf(p, sizeof p, "%s/events.tsv", out);
    CHECK(access(p, F_OK) != 0);
    put(attr, "{\"ten\": [1]}");
    CHECK_RC(sp_import_s3rec(seq, out, attr, 0, NULL), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "'ten'") != NULL);
    put(attr, "{\"10\": [1, \"x\"]}");
    CHECK_RC(sp_import_s3rec(seq, out, attr, 0, NULL), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "item 10") != NULL);
    put(attr, "[1]");
    CHECK_RC(sp_import_s3rec(seq, out, attr, 0, NULL), SP_EINPUT);
    put(attr, "{\"10\": 3}");
    CHECK_RC(sp_import_s3rec(seq, out, attr, 0, NULL), SP_EINPUT);
    /* an item given twice (also as "010", and one not in the data): which list is meant is unknown */
    put(attr, "{\"10\": [1], \"11\": [3], \"010\": [2]}");
    CHECK_RC(sp_import_s3rec(seq, out, attr, 0, NULL), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), "item 10 is given twice (entries 1 and 3)"), "%s", sp_errmsg());
    put(attr, "{\"99\": [1], \"99\": [2]}");
    CHECK_RC(sp_import_s3rec(seq, out, attr, 0, NULL), SP_EINPUT);
    CHECK(access(p, F_OK) != 0);
}

/* train.txt, an S3Rec sequence file or item2attributes.json that is a FIFO or a directory: SP_EINPUT (exit 3,
 * as for a missing file) naming it, at once -- a FIFO without a writer used to block the import forever
 * (the alarm turns such a hang into a failed test), a directory was an I/O error (exit 4). */
static void test_not_regular_inputs(void) {
    char data[128], out[128], p[256], seq[256];
    snprintf(data, sizeof data, "%s/special", root);
    snprintf(out, sizeof out, "%s/special_out", root);
    mkdir(data, 0777);
    snprintf(p, sizeof p, "%s/train.txt", data);
    alarm(60);
    CHECK(mkfifo(p, 0600) == 0);
    CHECK_RC(sp_import_lightgcn(data, out, 0, 0, NULL), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), "train.txt: not a regular file (a FIFO)"), "%s", sp_errmsg());
    CHECK_RC(sp_import_s3rec(p, out, NULL, 0, NULL), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), "train.txt: not a regular file (a FIFO)"), "%s", sp_errmsg());
    unlink(p);
    CHECK(mkdir(p, 0700) == 0);
    CHECK_RC(sp_import_lightgcn(data, out, 0, 0, NULL), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), "train.txt: not a regular file (a directory)"), "%s", sp_errmsg());
    CHECK_RC(sp_import_s3rec(p, out, NULL, 0, NULL), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), "train.txt: not a regular file (a directory)"), "%s", sp_errmsg());
    rmdir(p);
    /* the attributes file */
    snprintf(seq, sizeof seq, "%s/seq.txt", data);
    put(seq, "1 2 3 4\n");
    snprintf(p, sizeof p, "%s/attr.json", data);
    CHECK(mkfifo(p, 0600) == 0);
    CHECK_RC(sp_import_s3rec(seq, out, p, 0, NULL), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), "attr.json: not a regular file (a FIFO)"), "%s", sp_errmsg());
    unlink(p);
    alarm(0);
    snprintf(p, sizeof p, "%s/events.tsv", out);
    CHECK(access(p, F_OK) != 0); /* nothing published */
}

int main(void) {
    strcpy(root, "/tmp/sp_test_XXXXXX");
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    test_lightgcn();
    test_lightgcn_validation();
    test_bad_input();
    test_s3rec();
    test_not_regular_inputs();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return CHECK_DONE();
}
