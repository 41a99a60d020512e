/* sort: LSD radix sort, 11-bit digits, histograms of all digits of a key in
 * one pass, constant digits skipped, fixed-size copies for common sizes. */
#include "sort.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sp_base.h"

#define BITS 11
#define NB (1u << BITS)
#define NDIG 6 /* ceil(64 / 11) */

static inline uint64_t key_at(const char *r, size_t off) {
    uint64_t k;
    memcpy(&k, r + off, 8);
    return k;
}

/* One scatter pass; the switch lets the compiler inline fixed-size copies. */
static void scatter(const char *src, char *dst, size_t n, size_t size, size_t off, int shift, size_t *pos) {
#define LOOP(SZ)                                                                                                  \
    for (size_t i = 0; i < n; i++) {                                                                              \
        const char *r = src + i * (SZ);                                                                           \
        size_t b = (size_t)((key_at(r, off) >> shift) & (NB - 1));                                                \
        memcpy(dst + pos[b]++ * (SZ), r, (SZ));                                                                   \
    }                                                                                                             \
    break;
    switch (size) {
    case 8: LOOP(8)
    case 16: LOOP(16)
    case 24: LOOP(24)
    case 32: LOOP(32)
    case 40: LOOP(40)
    case 48: LOOP(48)
    default: LOOP(size)
    }
#undef LOOP
}

int sp_radix_sort(void *recs, size_t n, size_t size, const size_t *key_off, int nkeys) {
    if (n < 2) return SP_OK;
    if (size % 8 || size > 64 || nkeys < 1 || nkeys > 3) return sp_err(SP_EINTERNAL, "radix sort: size %zu keys %d", size, nkeys);
    if (n < 64) { /* insertion sort: cheaper than histograms */
        char tmp[64];
        char *a = recs;
        for (size_t i = 1; i < n; i++) {
            memcpy(tmp, a + i * size, size);
            size_t j = i;
            while (j > 0) {
                const char *p = a + (j - 1) * size;
                int gt = 0;
                for (int k = 0; k < nkeys; k++) {
                    uint64_t x = key_at(p, key_off[k]), y = key_at(tmp, key_off[k]);
                    if (x != y) {
                        gt = x > y;
                        break;
                    }
                }
                if (!gt) break;
                memcpy(a + j * size, p, size);
                j--;
            }
            memcpy(a + j * size, tmp, size);
        }
        return SP_OK;
    }
    char *buf = malloc(n * size);
    size_t(*hist)[NB] = malloc(sizeof(size_t) * NDIG * NB);
    if (!buf || !hist) {
        free(buf);
        free(hist);
        return sp_err(SP_ENOMEM, "radix sort: cannot allocate %zu bytes of scratch", n * size);
    }
    char *src = recs, *dst = buf;
    for (int k = nkeys - 1; k >= 0; k--) {
        size_t off = key_off[k];
        memset(hist, 0, sizeof(size_t) * NDIG * NB);
        for (size_t i = 0; i < n; i++) {
            uint64_t v = key_at(src + i * size, off);
            for (int d = 0; d < NDIG; d++) hist[d][(v >> (d * BITS)) & (NB - 1)]++;
        }
        for (int d = 0; d < NDIG; d++) {
            size_t sum = 0, pos[NB];
            int trivial = 0;
            for (size_t b = 0; b < NB; b++) {
                if (hist[d][b] == n) trivial = 1;
                pos[b] = sum;
                sum += hist[d][b];
            }
            if (trivial) continue;
            scatter(src, dst, n, size, off, d * BITS, pos);
            char *t = src;
            src = dst;
            dst = t;
        }
    }
    if (src != (char *)recs) memcpy(recs, src, n * size);
    free(buf);
    free(hist);
    return SP_OK;
}
