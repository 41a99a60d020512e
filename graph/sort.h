/* sort: stable LSD radix sort of fixed-size records by up to three u64 keys,
 * the sort behind ingest's dedupe and the graph build (qsort was 30% of the
 * graph stage at 10M edges). 11-bit digits; a digit on which all records
 * agree (the high bytes of small ids) costs no pass. */
#ifndef SP_SORT_H
#define SP_SORT_H

#include <stddef.h>

/* Sorts n records of `size` bytes (a multiple of 8, at most 64) ascending by
 * the u64 keys at byte offsets key_off[0] (most significant) .. key_off[nkeys-1].
 * Stable: records with equal keys keep their order. Needs n*size bytes of
 * scratch memory; returns SP_OK or SP_ENOMEM (then recs is unchanged). */
int sp_radix_sort(void *recs, size_t n, size_t size, const size_t *key_off, int nkeys);

#endif
