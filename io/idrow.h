/* idrow: (external id, row) pairs sorted by id, to find the row of an id by
 * binary search. Used where two id orders meet (checkpoint rows vs a rank's
 * nodes, one date's pins vs the previous date's). */
#ifndef SP_IDROW_H
#define SP_IDROW_H

#include <stdint.h>
#include <stdlib.h>

typedef struct { uint64_t id, row; } sp_idrow;

static inline int sp_idrow_cmp(const void *a, const void *b) {
    const sp_idrow *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}
/* Sorts v[0..n) by id (ids are unique). */
static inline void sp_idrow_sort(sp_idrow *v, uint64_t n) { qsort(v, n, sizeof *v, sp_idrow_cmp); }
/* The row of id in v[0..n) sorted by id; UINT64_MAX when absent. */
static inline uint64_t sp_idrow_find(const sp_idrow *v, uint64_t n, uint64_t id) {
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (v[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && v[lo].id == id ? v[lo].row : UINT64_MAX;
}

#endif
