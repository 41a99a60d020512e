/* log: key=value event lines on stderr and rate-limited progress lines. */
#include "log.h"
#include "tsv.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_rank = 0;
static int log_level = SP_LOG_INFO;
static char log_stage[32] = "-";

void sp_log_init(int rank, int level) { log_rank = rank; log_level = level; }

void sp_log_set_stage(const char *stage) {
    snprintf(log_stage, sizeof log_stage, "%s", stage && *stage ? stage : "-");
}

double sp_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 1 when s can stand unquoted: no space, tab, '"' or '=', only printable ASCII or valid UTF-8 */
static int log_plain(const char *s) {
    if (!*s || strpbrk(s, " \t\"=\\")) return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return 0;
    return sp_text_check(s, strlen(s), NULL) == SP_TEXT_OK;
}

/* Quoted as logfmt wants, and valid UTF-8 whatever s holds (a value may quote an input's bytes): '"' and
 * '\' escaped, a newline as a space, other control characters and bytes that are not UTF-8 as \xNN. */
const char *sp_log_q(const char *s) {
    static _Thread_local char bufs[4][512];
    static _Thread_local int next;
    if (!s) s = "";
    if (log_plain(s)) return s;
    char *b = bufs[next++ & 3];
    const size_t cap = sizeof bufs[0];
    size_t j = 0, n = strlen(s);
    b[j++] = '"';
    for (size_t i = 0; i < n && j < cap - 6;) { /* room for one \xNN or a 4-byte character, '"' and NUL */
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') b[j++] = '\\', b[j++] = (char)c, i++;
        else if (c == '\n') b[j++] = ' ', i++;
        else if (c < 0x20 || c == 0x7f) j += (size_t)snprintf(b + j, 5, "\\x%02x", c), i++;
        else if (c < 0x80) b[j++] = (char)c, i++;
        else { /* the sequence its lead byte announces, copied if valid, else this byte as \xNN */
            size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            i += sp_text_escape(b + j, 5, s + i, k < n - i ? k : n - i);
            j += strlen(b + j);
        }
    }
    b[j++] = '"';
    b[j] = 0;
    return b;
}

void sp_log(int level, const char *event, const char *fmt, ...) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < log_level) return;
    char line[4096];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s rank=%d stage=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, names[level], log_rank, log_stage, event);
    if (fmt && *fmt && n < (int)sizeof line - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (m > 0) n += m;
    }
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void sp_progress_begin(sp_progress *p, const char *what, uint64_t total) {
    p->what = what;
    p->total = total;
    p->done = 0;
    p->t0 = p->last = sp_now();
    if (p->interval <= 0) p->interval = 2.0;
}

static void progress_print(sp_progress *p, double now, int final) {
    double dt = now - p->t0;
    double rate = dt > 0 ? (double)p->done / dt : 0;
    if (final) {
        SP_INFO("done", "what=%s count=%llu seconds=%.3f rate=%.0f/s", p->what,
                (unsigned long long)p->done, dt, rate);
    } else if (p->total) {
        double eta = rate > 0 && p->total > p->done ? (double)(p->total - p->done) / rate : 0;
        SP_INFO("progress", "what=%s done=%llu total=%llu pct=%.1f rate=%.0f/s eta_s=%.0f", p->what,
                (unsigned long long)p->done, (unsigned long long)p->total,
                100.0 * (double)p->done / (double)p->total, rate, eta);
    } else {
        SP_INFO("progress", "what=%s done=%llu rate=%.0f/s", p->what, (unsigned long long)p->done, rate);
    }
}

void sp_progress_add(sp_progress *p, uint64_t n) {
    uint64_t before = p->done;
    p->done += n;
    if ((before >> 12) == (p->done >> 12)) return; /* look at the clock every 4096 */
    double now = sp_now();
    if (now - p->last >= p->interval) {
        p->last = now;
        progress_print(p, now, 0);
    }
}

void sp_progress_end(sp_progress *p) { progress_print(p, sp_now(), 1); }
