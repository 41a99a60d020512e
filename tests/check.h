/* check.h: the tiny assertion kit of the unit tests. A failed check prints
 * file, line, the expression and the values that differed, marks the test
 * failed and goes on; main returns CHECK_DONE(), non-zero if anything failed.
 * Never compiled out (unlike assert). */
#ifndef SP_CHECK_H
#define SP_CHECK_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_failures_;
static int check_count_;

#define CHECK(cond) do { check_count_++; if (!(cond)) { check_failures_++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { check_count_++; if (!(cond)) { check_failures_++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define CHECK_EQ_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); check_count_++; \
    if (a_ != b_) { check_failures_++; fprintf(stderr, "%s:%d: CHECK_EQ_INT failed: %s = %lld, %s = %lld\n", \
    __FILE__, __LINE__, #a, a_, #b, b_); } } while (0)
#define CHECK_EQ_U64(a, b) do { uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b); check_count_++; \
    if (a_ != b_) { check_failures_++; fprintf(stderr, "%s:%d: CHECK_EQ_U64 failed: %s = %" PRIu64 ", %s = %" PRIu64 "\n", \
    __FILE__, __LINE__, #a, a_, #b, b_); } } while (0)
#define CHECK_NEAR(a, b, tol) do { double a_ = (double)(a), b_ = (double)(b); check_count_++; \
    if (!(fabs(a_ - b_) <= (tol))) { check_failures_++; fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.9g, %s = %.9g, tol %g\n", \
    __FILE__, __LINE__, #a, a_, #b, b_, (double)(tol)); } } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); check_count_++; \
    if (!a_ || !b_ || strcmp(a_, b_)) { check_failures_++; fprintf(stderr, "%s:%d: CHECK_STR failed: %s = \"%s\", %s = \"%s\"\n", \
    __FILE__, __LINE__, #a, a_ ? a_ : "(null)", #b, b_ ? b_ : "(null)"); } } while (0)
/* Checks that rc == want; prints sp_errmsg() on mismatch. */
#define CHECK_RC(rc, want) do { int r_ = (rc), w_ = (want); check_count_++; if (r_ != w_) { check_failures_++; \
    fprintf(stderr, "%s:%d: CHECK_RC failed: %s = %d (%s), want %d: %s\n", __FILE__, __LINE__, #rc, r_, \
    sp_strerror(r_), w_, sp_errmsg()); } } while (0)
#define CHECK_DONE() (fprintf(stderr, "%s: %d checks, %d failed\n", __FILE__, check_count_, check_failures_), \
    check_failures_ ? 1 : 0)

#endif
