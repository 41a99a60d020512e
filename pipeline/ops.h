/* ops: operations around `run` and `job` (docs/OPERATIONS.md): the exclusive
 * lock of one (work_dir, date), and retention, which deletes the work and
 * shard directories of dates older than pipeline.keep_days. Not collective:
 * rank 0 calls these (work_dir and export.dir are shared by all ranks). */
#ifndef SP_OPS_H
#define SP_OPS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int fd; /* -1 when not held */
    char path[PATH_MAX];
} sp_run_lock;

/* Creates date_dir and takes flock(LOCK_EX | LOCK_NB) on <date_dir>/.lock,
 * then writes "<pid> <host>\n" into it. The lock lasts until sp_run_unlock or
 * until the process ends: the kernel releases a flock when its descriptor
 * closes, also when the process crashes or is killed. The file itself stays
 * (sp_run_unlock empties it; a killed holder leaves its pid, harmlessly).
 * SP_EEXTERNAL naming the lock file and the holder's pid when another process
 * holds it; SP_EIO when it cannot be created or locked. */
int sp_run_lock_take(const char *date_dir, sp_run_lock *lk);
void sp_run_unlock(sp_run_lock *lk);
/* Takes flock(LOCK_EX) on the file `path` (created if need be) like sp_run_lock_take, waiting while
 * another process holds it (polled, logged once as lock_wait naming the holder and `what` the lock
 * guards) for at most max_wait_s seconds: then SP_EEXTERNAL naming path and the holder. Released by
 * sp_run_unlock. */
int sp_lock_wait(const char *path, double max_wait_s, const char *what, sp_run_lock *lk);
/* 1 when the nearest date directory of work_dir before `date` (at most lookback_days back) is locked by a
 * run or job in progress: prev gets that date and who its holder ("pid P on H"); else 0. */
int sp_prev_date_running(const char *work_dir, const char *date, int lookback_days, char prev[11], char *who,
                         size_t cap);

/* 1 when name is a valid YYYY-MM-DD date (digits only, a real day); *day_ms
 * (may be NULL) is its 00:00 UTC. Sets no error message. */
int sp_is_date_name(const char *name, int64_t *day_ms);

/* Retention after a successful run of `date`: deletes <work_dir>/<D> and
 * <export_dir>/<D> (directories only) for every D named as a valid date with
 * D < date - keep_days days; never the date <export_dir>/latest points to,
 * never `date` itself or a later date, never a work date whose lock another
 * process holds (a run of D in progress). keep_days <= 0: nothing. Logs each
 * deletion (event=retention_delete); failures are warnings (event=
 * retention_error), never errors. Returns the number of directories deleted. */
int sp_retention_apply(const char *work_dir, const char *export_dir, const char *date, int64_t keep_days);

#endif
