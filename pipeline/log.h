/* log: one line per event on stderr as key=value pairs with time, level, rank
 * and stage (DESIGN §5), and progress reporting for long loops. */
#ifndef SP_LOG_H
#define SP_LOG_H

#include <stdint.h>

enum { SP_LOG_DEBUG = 0, SP_LOG_INFO = 1, SP_LOG_WARN = 2, SP_LOG_ERROR = 3 };

void sp_log_init(int rank, int level);
void sp_log_set_stage(const char *stage); /* NULL or "" clears it */
/* Writes "ts=... level=... rank=R stage=S event=EVENT <fmt...>\n" atomically
 * (one write(2) call). fmt holds the rest of the pairs, e.g. "rows=%llu". */
void sp_log(int level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define SP_INFO(event, ...) sp_log(SP_LOG_INFO, event, __VA_ARGS__)
#define SP_WARN(event, ...) sp_log(SP_LOG_WARN, event, __VA_ARGS__)
#define SP_ERROR(event, ...) sp_log(SP_LOG_ERROR, event, __VA_ARGS__)
/* Quotes a value for a log line when it has spaces, quotes or '='; returns a
 * pointer to a thread-local buffer (one of 4 rotating). */
const char *sp_log_q(const char *s);

/* Seconds on a monotonic clock. */
double sp_now(void);

/* Progress of one loop: logs done/total, rate and ETA at most every
 * `interval` seconds (default 2) and once at the end. */
typedef struct {
    const char *what;
    uint64_t total, done;
    double t0, last, interval;
} sp_progress;
void sp_progress_begin(sp_progress *p, const char *what, uint64_t total);
/* Cheap: checks the clock only every 4096 calls' worth of `n`. */
void sp_progress_add(sp_progress *p, uint64_t n);
void sp_progress_end(sp_progress *p);

#endif
