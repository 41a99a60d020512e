/* sp_base: error strings, the thread-local error detail, type tables, dates. */
#include "sp_base.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

const uint64_t sp_type_salt[SP_NTYPES] = {
    0x0000000000000000ULL,  /* pin   */
    0xb0a4d5e1c3f29a17ULL,  /* board */
    0x5ce7e45b7d1f3c29ULL,  /* user  */
};
const char sp_type_char[SP_NTYPES] = {'p', 'b', 'u'};
const char *const sp_type_name[SP_NTYPES] = {"pin", "board", "user"};

static _Thread_local char err_buf[1024];

const char *sp_strerror(int rc) {
    switch (rc) {
    case SP_OK: return "ok";
    case SP_ENOMEM: return "out of memory";
    case SP_EINTERNAL: return "internal error";
    case SP_EUSAGE: return "usage error";
    case SP_ECONFIG: return "config error";
    case SP_ENOTIMPL: return "not implemented yet";
    case SP_EINPUT: return "input validation failed";
    case SP_EFORMAT: return "corrupt or foreign file";
    case SP_EIO: return "I/O error";
    case SP_EEXTERNAL: return "external system failed";
    case SP_EQUALITY: return "quality gate failed";
    default: return rc > 0 ? strerror(rc) : "unknown error";
    }
}

int sp_exit_code(int rc) {
    switch (rc) {
    case SP_OK: return SP_EXIT_OK;
    case SP_EUSAGE: case SP_ECONFIG: case SP_ENOTIMPL: return SP_EXIT_USAGE;
    case SP_EINPUT: case SP_EFORMAT: return SP_EXIT_INPUT;
    case SP_EIO: case SP_EEXTERNAL: return SP_EXIT_EXTERNAL;
    case SP_EQUALITY: return SP_EXIT_QUALITY;
    default: return rc > 0 ? SP_EXIT_EXTERNAL : SP_EXIT_INTERNAL; /* errno: I/O */
    }
}

int sp_err(int rc, const char *fmt, ...) {
    /* Format aside first: callers may pass sp_errmsg() to wrap the last error. */
    char tmp[sizeof err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(err_buf, tmp, sizeof err_buf);
    return rc;
}

const char *sp_errmsg(void) { return err_buf; }
void sp_err_clear(void) { err_buf[0] = 0; }

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int sp_date_parse(const char *s, int64_t *day_start_ms) {
    int y, m, d;
    char tail;
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-' || strspn(s, "0123456789") != 4 ||
        strspn(s + 5, "0123456789") != 2 || strspn(s + 8, "0123456789") != 2 ||
        sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3)
        return sp_err(SP_EUSAGE, "bad date '%s': expected YYYY-MM-DD", s ? s : "");
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970) return sp_err(SP_EUSAGE, "bad date '%s': before 1970-01-01 (times are Unix milliseconds)", s);
    if (y > 9999 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] || (m == 2 && d == 29 && !leap))
        return sp_err(SP_EUSAGE, "bad date '%s': no such day", s);
    *day_start_ms = days_from_civil(y, (unsigned)m, (unsigned)d) * SP_DAY_MS;
    return SP_OK;
}

void sp_date_format(int64_t ms, char *out, size_t cap) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%d", &tm)) snprintf(out, cap, "?");
}

void *sp_alloc_huge(size_t n) {
    const size_t huge = (size_t)2 << 20;
    if (n < huge) return malloc(n ? n : 1);
    const char *e = getenv("SAGEPIPE_HUGE_PAGES"); /* "0": plain malloc */
    if (e && !strcmp(e, "0")) return malloc(n);
    size_t len = (n + huge - 1) & ~(huge - 1);
    void *p = NULL;
    if (posix_memalign(&p, huge, len)) return NULL;
    (void)madvise(p, len, MADV_HUGEPAGE);
    return p;
}

int sp_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return SP_OK;
    size_t nc = *cap ? *cap : 1024;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np) return sp_err(SP_ENOMEM, "cannot grow an array to %zu items of %zu bytes", nc, elem);
    *p = np;
    *cap = nc;
    return SP_OK;
}
