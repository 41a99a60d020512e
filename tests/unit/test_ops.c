/* Unit tests of pipeline/ops.c: the per-date lock (a second holder is
 * refused with the lock file and pid named; release lets it in), date names,
 * and retention on a fake work/export tree. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "ops.h"
#include "sp_base.h"

static char tmp[256];

static int exists(const char *rel) {
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    return lstat(p, &st) == 0;
}

static void mk(const char *rel) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/%s' && touch '%s/%s/f'", tmp, rel, tmp, rel);
    CHECK_MSG(system(cmd) == 0, "%s", cmd);
}

static void test_lock(void) {
    char dir[300], want[400];
    snprintf(dir, sizeof dir, "%s/w/2026-11-21", tmp);
    sp_run_lock a, b;
    CHECK_RC(sp_run_lock_take(dir, &a), SP_OK); /* creates the directory */
    CHECK(a.fd >= 0);
    /* flock is per open file description: a second take in this process conflicts too. */
    CHECK_RC(sp_run_lock_take(dir, &b), SP_EEXTERNAL);
    CHECK_EQ_INT(b.fd, -1);
    snprintf(want, sizeof want, "%s/.lock is locked by another sagepipe run or job of this date (pid %ld on ", dir,
             (long)getpid());
    CHECK_MSG(strstr(sp_errmsg(), want) != NULL, "message '%s' lacks '%s'", sp_errmsg(), want);
    sp_run_unlock(&a);
    CHECK_EQ_INT(a.fd, -1);
    CHECK_RC(sp_run_lock_take(dir, &b), SP_OK);
    sp_run_unlock(&b);
    sp_run_unlock(&b); /* twice is harmless */
    /* a lock file that cannot be created is SP_EIO */
    char bad[320];
    snprintf(bad, sizeof bad, "%s/w/2026-11-21/.lock/x", tmp);
    CHECK_RC(sp_run_lock_take(bad, &a), SP_EIO);
}

static void test_date_names(void) {
    int64_t ms = -1;
    CHECK(sp_is_date_name("2026-11-21", &ms));
    int64_t want;
    CHECK_RC(sp_date_parse("2026-11-21", &want), SP_OK);
    CHECK_EQ_INT(ms, want);
    CHECK(sp_is_date_name("2024-02-29", NULL));
    const char *bad[] = {"2026-02-29", "2026-13-01", "2026-11-00", "2026-11-1x", "2026-1-021", " 026-11-21",
                         "2026-11-21x", "1969-12-31", "latest", ".2026-11-21", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_MSG(!sp_is_date_name(bad[i], NULL), "'%s'", bad[i]);
}

static void test_retention(void) {
    const char *work[] = {"r/w/2026-10-31", "r/w/2026-11-18", "r/w/2026-11-19", "r/w/2026-11-20", "r/w/2026-11-25",
                          "r/w/2026-02-30", "r/w/notes", "r/e/2026-11-01", "r/e/2026-11-05", "r/e/2026-11-19"};
    for (size_t i = 0; i < sizeof work / sizeof work[0]; i++) mk(work[i]);
    char w[300], e[300], link[320];
    snprintf(w, sizeof w, "%s/r/w", tmp);
    snprintf(e, sizeof e, "%s/r/e", tmp);
    snprintf(link, sizeof link, "%s/latest", e);
    CHECK(symlink("2026-11-05", link) == 0);
    CHECK_EQ_INT(sp_retention_apply(w, e, "2026-11-21", 0), 0); /* 0 = keep everything */
    CHECK(exists("r/w/2026-10-31"));
    /* keep_days = 2: before 2026-11-19 goes; latest (11-05) stays in both roots */
    CHECK_EQ_INT(sp_retention_apply(w, e, "2026-11-21", 2), 3);
    CHECK(!exists("r/w/2026-10-31") && !exists("r/w/2026-11-18") && !exists("r/e/2026-11-01"));
    CHECK(exists("r/w/2026-11-19") && exists("r/w/2026-11-20") && exists("r/w/2026-11-25"));
    CHECK(exists("r/w/2026-02-30") && exists("r/w/notes") && exists("r/e/2026-11-05") && exists("r/e/latest"));
    CHECK(exists("r/e/2026-11-19"));
    /* a backfill of 11-20 with keep_days = 1 keeps 11-19 and the newer 11-25 */
    CHECK_EQ_INT(sp_retention_apply(w, e, "2026-11-20", 1), 0);
    CHECK(exists("r/w/2026-11-19") && exists("r/w/2026-11-25"));
    /* a date whose lock is held is kept */
    char d19[320];
    snprintf(d19, sizeof d19, "%s/2026-11-19", w);
    sp_run_lock lk;
    CHECK_RC(sp_run_lock_take(d19, &lk), SP_OK);
    CHECK_EQ_INT(sp_retention_apply(w, e, "2026-11-23", 1), 2); /* w/2026-11-20 and e/2026-11-19 */
    CHECK(exists("r/w/2026-11-19") && !exists("r/w/2026-11-20") && !exists("r/e/2026-11-19"));
    sp_run_unlock(&lk);
    CHECK_EQ_INT(sp_retention_apply(w, e, "2026-11-23", 1), 1);
    CHECK(!exists("r/w/2026-11-19") && exists("r/w/2026-11-25"));
    /* a killed export's staging directory of an old date goes, unless its date's run holds the lock */
    const char *stg[] = {"r/e/.2026-11-01.tmp", "r/e/.2026-11-22.tmp", "r/e/.2026-11-10.tmp", "r/w/2026-11-10",
                         "r/e/.2026-02-30.tmp", "r/e/.2026-11-0x.tmp", "r/e/.2026-11-05.tmp", "r/e/x.2026-11-03.tmp"};
    for (size_t i = 0; i < sizeof stg / sizeof stg[0]; i++) mk(stg[i]);
    char f02[320];
    snprintf(f02, sizeof f02, "%s/r/e/.2026-11-02.tmp", tmp);
    FILE *ff = fopen(f02, "w");
    CHECK(ff != NULL);
    if (ff) fclose(ff);
    char d10[320];
    snprintf(d10, sizeof d10, "%s/2026-11-10", w);
    CHECK_RC(sp_run_lock_take(d10, &lk), SP_OK);
    CHECK_EQ_INT(sp_retention_apply(w, e, "2026-11-23", 1), 1); /* .2026-11-01.tmp */
    CHECK(!exists("r/e/.2026-11-01.tmp") && exists("r/e/.2026-11-10.tmp") && exists("r/w/2026-11-10"));
    sp_run_unlock(&lk);
    CHECK_EQ_INT(sp_retention_apply(w, e, "2026-11-23", 1), 2); /* w/2026-11-10, then its staging directory */
    CHECK(!exists("r/e/.2026-11-10.tmp") && !exists("r/w/2026-11-10"));
    CHECK(exists("r/e/.2026-11-22.tmp") && exists("r/e/.2026-02-30.tmp") && exists("r/e/.2026-11-0x.tmp"));
    CHECK(exists("r/e/.2026-11-05.tmp") && exists("r/e/x.2026-11-03.tmp") && exists("r/e/.2026-11-02.tmp"));
    CHECK(exists("r/e/2026-11-05") && exists("r/e/latest"));
    /* missing roots are fine */
    CHECK_EQ_INT(sp_retention_apply("/nonexistent/w", "/nonexistent/e", "2026-11-23", 1), 0);
}

/* sp_log_q: plain values stay as they are; anything else is quoted as valid UTF-8 text */
static void test_log_quote(void) {
    CHECK_STR(sp_log_q("abc"), "abc");
    CHECK_STR(sp_log_q("caf\xc3\xa9"), "caf\xc3\xa9"); /* valid UTF-8 stays plain */
    CHECK_STR(sp_log_q(""), "\"\"");
    CHECK_STR(sp_log_q("a b"), "\"a b\"");
    CHECK_STR(sp_log_q("a=\"b\\"), "\"a=\\\"b\\\\\"");
    CHECK_STR(sp_log_q("l1\nl2\rx\x1b"), "\"l1 l2\\x0dx\\x1b\"");
    /* bytes that are not UTF-8 become \xNN, one at a time; a valid character next to them is kept */
    CHECK_STR(sp_log_q("\xff\xc3\xa9\"\xc3"), "\"\\xff\xc3\xa9\\\"\\xc3\"");
    /* a long value is cut, still quoted and NUL-terminated */
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    big[5] = ' ';
    const char *q = sp_log_q(big);
    CHECK(q[0] == '"' && q[strlen(q) - 1] == '"' && strlen(q) < 512);
}

int main(void) {
    sp_log_init(0, SP_LOG_ERROR);
    test_log_quote();
    snprintf(tmp, sizeof tmp, "/tmp/test_ops_XXXXXX");
    if (!mkdtemp(tmp)) return perror("mkdtemp"), 1;
    test_lock();
    test_date_names();
    test_retention();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) fprintf(stderr, "cannot remove %s\n", tmp);
    return CHECK_DONE();
}
