/* test_sort: the radix sort equals a stable reference sort (qsort on keys
 * plus original index) for assorted sizes, key counts and key ranges. */
#include <stdlib.h>

#include "check.h"
#include "sort.h"
#include "sp_base.h"

typedef struct { uint64_t a, b, c, idx; } rec4;
static int nk;
static int cmp_ref(const void *x, const void *y) {
    const rec4 *p = x, *q = y;
    const uint64_t kp[3] = {p->a, p->b, p->c}, kq[3] = {q->a, q->b, q->c};
    for (int k = 0; k < nk; k++)
        if (kp[k] != kq[k]) return kp[k] < kq[k] ? -1 : 1;
    return p->idx < q->idx ? -1 : p->idx > q->idx; /* stability */
}

int main(void) {
    sp_rng r;
    sp_rng_init(&r, 1, 99, 0);
    const size_t sizes[] = {0, 1, 2, 63, 64, 65, 1000, 100000};
    const uint64_t ranges[] = {1, 7, 3000, 1ULL << 40, 0};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
        for (size_t ri = 0; ri < sizeof ranges / sizeof *ranges; ri++)
            for (nk = 1; nk <= 3; nk++) {
                size_t n = sizes[si];
                rec4 *v = malloc(sizeof *v * (n + 1)), *w = malloc(sizeof *w * (n + 1));
                for (size_t i = 0; i < n; i++) {
                    uint64_t m = ranges[ri];
                    v[i].a = m ? sp_rng_below(&r, m) : sp_rng_u64(&r);
                    v[i].b = m ? sp_rng_below(&r, m) : sp_rng_u64(&r);
                    v[i].c = sp_rng_below(&r, 4);
                    v[i].idx = i;
                }
                memcpy(w, v, sizeof *v * n);
                size_t off[3] = {0, 8, 16};
                CHECK_RC(sp_radix_sort(v, n, sizeof *v, off, nk), SP_OK);
                qsort(w, n, sizeof *w, cmp_ref);
                CHECK_MSG(!memcmp(v, w, sizeof *v * n), "n=%zu range=%llu keys=%d", n,
                          (unsigned long long)ranges[ri], nk);
                free(v);
                free(w);
            }
    /* 16-byte records, key at offset 8 only */
    uint64_t p[2000][2];
    for (int i = 0; i < 2000; i++) p[i][0] = (uint64_t)i, p[i][1] = sp_rng_below(&r, 50);
    CHECK_RC(sp_radix_sort(p, 2000, 16, (size_t[]){8}, 1), SP_OK);
    for (int i = 1; i < 2000; i++) CHECK(p[i][1] > p[i - 1][1] || (p[i][1] == p[i - 1][1] && p[i][0] > p[i - 1][0]));
    CHECK_RC(sp_radix_sort(p, 2000, 12, (size_t[]){0}, 1), SP_EINTERNAL);
    return CHECK_DONE();
}
