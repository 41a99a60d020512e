/* test_base: owner hashing (documented function, balanced, independent of
 * type), the explicit RNG, error codes, date parsing and sp_alloc_huge. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lines.h"
#include "sp_base.h"

/* sp_lines keeps a line of any length (dump emb of a 64-wide vector is ~700 characters; it was cut at 255) */
static void test_lines(void) {
    sp_lines l = {0};
    char big[3001];
    memset(big, 'x', 3000);
    big[3000] = 0;
    CHECK_RC(sp_lines_addf(&l, "b%d %s", 7, big), SP_OK);
    CHECK_RC(sp_lines_addf(&l, "a%d", 1), SP_OK);
    CHECK(l.n == 2 && strlen(l.v[0]) == 3003 && !strncmp(l.v[0], "b7 xx", 5) && !strcmp(l.v[1], "a1"));
    sp_lines_free(&l);
}

int main(void) {
    test_lines();
    /* splitmix64 finaliser golden values (the documented mixing function). */
    CHECK_EQ_U64(sp_mix64(0), 0);
    CHECK_EQ_U64(sp_mix64(1), 0x5692161d100b05e5ULL);
    CHECK_EQ_U64(sp_mix64(0x9e3779b97f4a7c15ULL), 0xe220a8397b1dcdafULL);
    /* owner = mix64(id ^ salt) % n; pins use salt 0 */
    CHECK_EQ_INT(sp_owner(SP_PIN, 1, 7), (int)(0x5692161d100b05e5ULL % 7));
    for (int n = 1; n <= 8; n++) {
        uint64_t cnt[8] = {0};
        for (uint64_t id = 0; id < 80000; id++) {
            int o = sp_owner(SP_BOARD, id, n);
            CHECK(o >= 0 && o < n);
            cnt[o]++;
        }
        for (int r = 0; r < n; r++) /* within 3% of fair on sequential ids */
            CHECK_MSG(cnt[r] > 80000.0 / n * 0.97 && cnt[r] < 80000.0 / n * 1.03, "n=%d rank %d got %llu", n, r,
                      (unsigned long long)cnt[r]);
    }
    int differ = 0;
    for (uint64_t id = 0; id < 1000; id++) differ += sp_owner(SP_PIN, id, 4) != sp_owner(SP_BOARD, id, 4);
    CHECK_MSG(differ > 600 && differ < 900, "pin and board owners differ for %d of 1000 ids", differ);
    /* RNG: deterministic per (seed, purpose, id), distinct streams, uniform-ish */
    sp_rng a, b, c;
    sp_rng_init(&a, 1, SP_RNG_WALK, 42);
    sp_rng_init(&b, 1, SP_RNG_WALK, 42);
    sp_rng_init(&c, 1, SP_RNG_PRUNE, 42);
    int same = 1, diff = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = sp_rng_u64(&a), y = sp_rng_u64(&b), z = sp_rng_u64(&c);
        same &= x == y;
        diff += x != z;
    }
    CHECK(same);
    CHECK_EQ_INT(diff, 100);
    uint64_t hist[10] = {0};
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        hist[sp_rng_below(&a, 10)]++;
        double u = sp_rng_unif(&a);
        CHECK(u >= 0 && u < 1);
        sum += u;
    }
    for (int i = 0; i < 10; i++) CHECK_MSG(hist[i] > 9500 && hist[i] < 10500, "bucket %d: %llu", i, (unsigned long long)hist[i]);
    CHECK_NEAR(sum / 100000, 0.5, 0.01);
    /* exit codes of DESIGN section 5 */
    CHECK_EQ_INT(sp_exit_code(SP_OK), 0);
    CHECK_EQ_INT(sp_exit_code(SP_EINTERNAL), 1);
    CHECK_EQ_INT(sp_exit_code(SP_ENOMEM), 1);
    CHECK_EQ_INT(sp_exit_code(SP_ECONFIG), 2);
    CHECK_EQ_INT(sp_exit_code(SP_ENOTIMPL), 2);
    CHECK_EQ_INT(sp_exit_code(SP_EINPUT), 3);
    CHECK_EQ_INT(sp_exit_code(SP_EFORMAT), 3);
    CHECK_EQ_INT(sp_exit_code(SP_EIO), 4);
    CHECK_EQ_INT(sp_exit_code(SP_EEXTERNAL), 4);
    CHECK_EQ_INT(sp_exit_code(SP_EQUALITY), 5);
    CHECK_EQ_INT(sp_exit_code(28 /* ENOSPC */), 4);
    CHECK(sp_err(SP_EINPUT, "x.tsv:%d: bad", 3) == SP_EINPUT);
    CHECK_STR(sp_errmsg(), "x.tsv:3: bad");
    sp_err(SP_EINPUT, "outer: %s (again: %s)", sp_errmsg(), sp_errmsg()); /* wrapping the last error is safe */
    CHECK_STR(sp_errmsg(), "outer: x.tsv:3: bad (again: x.tsv:3: bad)");
    /* dates */
    int64_t ms;
    CHECK_RC(sp_date_parse("2026-11-21", &ms), SP_OK);
    CHECK_EQ_U64((uint64_t)ms, 1795219200000ULL);
    CHECK_RC(sp_date_parse("1970-01-01", &ms), SP_OK);
    CHECK_EQ_U64((uint64_t)ms, 0);
    CHECK_RC(sp_date_parse("2024-02-29", &ms), SP_OK);
    CHECK_RC(sp_date_parse("2025-02-29", &ms), SP_EUSAGE);
    CHECK_RC(sp_date_parse("2026-13-01", &ms), SP_EUSAGE);
    CHECK_RC(sp_date_parse("2026-1-01", &ms), SP_EUSAGE);
    CHECK_RC(sp_date_parse("2026-11-21x", &ms), SP_EUSAGE);
    CHECK_RC(sp_date_parse("", &ms), SP_EUSAGE);
    /* sp_date_format, its inverse: any time of the day names the day */
    char day[16];
    sp_date_format(1795219200000LL + SP_DAY_MS - 1, day, sizeof day);
    CHECK_STR(day, "2026-11-21");
    sp_date_format(1795219200000LL - SP_DAY_MS, day, sizeof day);
    CHECK_STR(day, "2026-11-20");
    CHECK_RC(sp_date_parse("2024-02-29", &ms), SP_OK);
    sp_date_format(ms, day, sizeof day);
    CHECK_STR(day, "2024-02-29");
    /* sp_alloc_huge: small blocks are plain malloc; 2 MiB and up are 2 MiB aligned, whole, writable */
    {
        unsigned char *a = sp_alloc_huge(100), *b = sp_alloc_huge(((size_t)3 << 20) + 5);
        CHECK(a && b);
        CHECK_EQ_U64((uint64_t)(uintptr_t)b % ((uint64_t)2 << 20), 0);
        if (a && b) {
            memset(a, 1, 100);
            memset(b, 2, ((size_t)3 << 20) + 5);
            CHECK(b[((size_t)3 << 20) + 4] == 2 && a[99] == 1);
        }
        free(a);
        free(b);
    }
    return CHECK_DONE();
}
