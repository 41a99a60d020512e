/* ops: the per-date run lock (flock on <work_dir>/<date>/.lock) and retention
 * of old dates (pipeline.keep_days). See ops.h and docs/OPERATIONS.md. */
#include "ops.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "shard.h"
#include "sp_base.h"

/* Opens (creating) path and tries flock(LOCK_EX | LOCK_NB). 0: locked, *fd
 * set; EWOULDBLOCK: held elsewhere, *fd still open (to read the holder);
 * another errno: failed, *fd = -1. */
static int try_lock(const char *path, int *fd) {
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) return errno;
    if (!flock(*fd, LOCK_EX | LOCK_NB)) return 0;
    int e = errno == EAGAIN ? EWOULDBLOCK : errno;
    if (e != EWOULDBLOCK) {
        close(*fd);
        *fd = -1;
    }
    return e;
}

/* The holder's "<pid> <host>" from the lock file, or "unknown". */
static void read_holder(int fd, char *out, size_t cap) {
    ssize_t n = pread(fd, out, cap - 1, 0);
    if (n < 0) n = 0;
    out[n] = 0;
    out[strcspn(out, "\n")] = 0;
    if (!out[0]) snprintf(out, cap, "unknown");
}

/* Writes "<pid> <host>\n" into a lock file just taken; the lock is then lk's. */
static int lock_own(int fd, const char *path, sp_run_lock *lk) {
    char host[64] = "", line[128];
    if (gethostname(host, sizeof host - 1)) snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = 0;
    int n = snprintf(line, sizeof line, "%ld %s\n", (long)getpid(), host);
    if (ftruncate(fd, 0) || pwrite(fd, line, (size_t)n, 0) != n) {
        int e = errno;
        close(fd);
        return sp_err(SP_EIO, "cannot write the pid into %s: %s", path, strerror(e));
    }
    lk->fd = fd;
    return SP_OK;
}

/* The holder of a lock held elsewhere, as "pid P on H" ("pid unknown": not a sagepipe); closes fd. */
static void holder_of(int fd, char *out, size_t cap) {
    char holder[160], pid[32] = "unknown", host[128] = "";
    read_holder(fd, holder, sizeof holder);
    close(fd);
    sscanf(holder, "%31s %127s", pid, host);
    snprintf(out, cap, "pid %s%s%s", pid, host[0] ? " on " : "", host);
}

int sp_run_lock_take(const char *date_dir, sp_run_lock *lk) {
    lk->fd = -1;
    int rc = sp_mkdir_p(date_dir);
    if (rc) return rc;
    snprintf(lk->path, sizeof lk->path, "%s/.lock", date_dir);
    int fd, e = try_lock(lk->path, &fd);
    if (e == EWOULDBLOCK) {
        char who[200];
        holder_of(fd, who, sizeof who);
        return sp_err(SP_EEXTERNAL,
                      "%s is locked by another sagepipe run or job of this date (%s); wait for it to finish "
                      "(a run of another date is not blocked)",
                      lk->path, who);
    }
    if (e) return sp_err(SP_EIO, "cannot lock %s: %s", lk->path, strerror(e));
    return lock_own(fd, lk->path, lk);
}

int sp_lock_wait(const char *path, double max_wait_s, const char *what, sp_run_lock *lk) {
    lk->fd = -1;
    snprintf(lk->path, sizeof lk->path, "%s", path);
    double t0 = sp_now();
    int logged = 0;
    for (;;) {
        int fd, e = try_lock(path, &fd);
        if (!e) return lock_own(fd, path, lk);
        if (e != EWOULDBLOCK) return sp_err(SP_EIO, "cannot lock %s: %s", path, strerror(e));
        char who[200];
        holder_of(fd, who, sizeof who);
        if (sp_now() - t0 >= max_wait_s)
            return sp_err(SP_EEXTERNAL, "%s is still held after %.0f s (%s, %s); try again later", path,
                          sp_now() - t0, what, who);
        if (!logged++) SP_INFO("lock_wait", "path=%s holder=%s what=%s", sp_log_q(path), sp_log_q(who), sp_log_q(what));
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int sp_prev_date_running(const char *work_dir, const char *date, int lookback_days, char prev[11], char *who,
                         size_t cap) {
    int64_t day;
    prev[0] = 0;
    if (!sp_is_date_name(date, &day)) return 0;
    for (int back = 1; back <= lookback_days; back++) {
        char d[16], path[PATH_MAX];
        struct stat st;
        sp_date_format(day - (int64_t)back * SP_DAY_MS, d, sizeof d);
        snprintf(path, sizeof path, "%s/%s", work_dir, d);
        if (stat(path, &st) || !S_ISDIR(st.st_mode)) continue;
        /* the nearest earlier date there is: held by a run or job in progress? (no lock file: none ran) */
        snprintf(path, sizeof path, "%s/%s/.lock", work_dir, d);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return 0;
        if (!flock(fd, LOCK_SH | LOCK_NB)) { /* free (taken shared for an instant only) */
            close(fd);
            return 0;
        }
        if (errno != EWOULDBLOCK && errno != EAGAIN) {
            close(fd);
            return 0;
        }
        holder_of(fd, who, cap);
        snprintf(prev, 11, "%s", d);
        return 1;
    }
    return 0;
}

void sp_run_unlock(sp_run_lock *lk) {
    if (lk->fd >= 0) {
        /* Empty the pid first, so that a later holder that is no sagepipe (flock(1)) is not named by a stale pid. */
        if (ftruncate(lk->fd, 0)) SP_WARN("lock_release", "path=%s error=%s", sp_log_q(lk->path), sp_log_q(strerror(errno)));
        close(lk->fd); /* closing the descriptor releases the flock */
    }
    lk->fd = -1;
}

int sp_is_date_name(const char *name, int64_t *day_ms) {
    if (strlen(name) != 10) return 0;
    for (int i = 0; i < 10; i++)
        if (i == 4 || i == 7 ? name[i] != '-' : !isdigit((unsigned char)name[i])) return 0;
    /* A real day: it survives the round trip through timegm/gmtime_r. */
    struct tm t = {0}, back;
    t.tm_year = atoi(name) - 1900;
    t.tm_mon = atoi(name + 5) - 1;
    t.tm_mday = atoi(name + 8);
    time_t s = timegm(&t);
    if (s < 0 || !gmtime_r(&s, &back) || back.tm_year != atoi(name) - 1900 || back.tm_mon != atoi(name + 5) - 1 ||
        back.tm_mday != atoi(name + 8))
        return 0;
    if (day_ms) *day_ms = (int64_t)s * 1000;
    return 1;
}

/* A staging directory's name, ".<date>.tmp" (export's, left by a killed export): its date in *day_ms. */
static int staging_date(const char *name, char date[11], int64_t *day_ms) {
    size_t n = strlen(name);
    if (n != 15 || name[0] != '.' || strcmp(name + 11, ".tmp")) return 0;
    memcpy(date, name + 1, 10);
    date[10] = 0;
    return sp_is_date_name(date, day_ms);
}

/* Deletes the old date directories of one root; returns how many. With
 * `lock_root`, a date is kept while <lock_root>/<date>/.lock is held (a run or
 * job of that date in progress). With `staging`, the root's ".<date>.tmp"
 * directories of old dates are deleted instead of its date directories. */
static int sweep(const char *root, const char *what, int64_t cutoff_ms, const char *keep, const char *lock_root,
                 int staging) {
    DIR *d = opendir(root);
    if (!d) {
        if (errno != ENOENT)
            SP_WARN("retention_error", "dir=%s error=%s", sp_log_q(root), sp_log_q(strerror(errno)));
        return 0;
    }
    int deleted = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t day;
        char date[11];
        if (staging ? !staging_date(e->d_name, date, &day) : !sp_is_date_name(e->d_name, &day)) continue;
        if (!staging) snprintf(date, sizeof date, "%s", e->d_name);
        if (day >= cutoff_ms || !strcmp(date, keep)) continue;
        char path[PATH_MAX], dated[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        if (lstat(path, &st) || !S_ISDIR(st.st_mode)) continue; /* only real directories, never a symlink's target */
        int fd = -1;
        if (lock_root) snprintf(dated, sizeof dated, "%s/%s", lock_root, date);
        if (lock_root && !(staging && lstat(dated, &st))) {
            /* A run or job of that date in progress holds its lock: leave the date alone. (A staging
             * directory whose work date is gone has no run behind it.) */
            char lock[PATH_MAX];
            snprintf(lock, sizeof lock, "%s/.lock", dated);
            int le = try_lock(lock, &fd);
            if (le) {
                if (fd >= 0) close(fd);
                SP_WARN("retention_error", "what=%s date=%s path=%s error=%s", what, date, sp_log_q(path),
                        sp_log_q(le == EWOULDBLOCK ? "locked by a running sagepipe; kept" : strerror(le)));
                continue;
            }
        }
        int r = sp_rm_tree(path);
        if (fd >= 0) close(fd);
        if (r) {
            SP_WARN("retention_error", "what=%s date=%s path=%s error=%s", what, date, sp_log_q(path),
                    sp_log_q(sp_errmsg()));
            continue;
        }
        SP_INFO("retention_delete", "what=%s date=%s path=%s", what, date, sp_log_q(path));
        deleted++;
    }
    closedir(d);
    return deleted;
}

int sp_retention_apply(const char *work_dir, const char *export_dir, const char *date, int64_t keep_days) {
    int64_t day;
    if (keep_days <= 0 || !sp_is_date_name(date, &day)) return 0;
    int64_t cutoff = day - keep_days * SP_DAY_MS;
    /* The date `latest` points to is kept, however old (a gate may have held it back), however the link
     * is written ("./2026-11-21/" too: its text's last component was empty and the set was deleted). */
    char keep[11];
    sp_shard_latest_date(export_dir, keep);
    int deleted = sweep(work_dir, "work", cutoff, keep, work_dir, 0);
    deleted += sweep(export_dir, "shards", cutoff, keep, NULL, 0);
    deleted += sweep(export_dir, "staging", cutoff, keep, work_dir, 1); /* killed exports' .<date>.tmp */
    char cut[32];
    sp_date_format(cutoff, cut, sizeof cut);
    SP_INFO("retention", "keep_days=%lld deletes_before=%s latest=%s deleted=%d", (long long)keep_days, cut,
            keep[0] ? keep : "none", deleted);
    return deleted;
}
