/* seq_batch: packs users' action histories into user-encoder batches
 * (sq_batch, sequence/encoder.h): each sequence's item vectors gathered from
 * an item table (a pin the table lacks gets a zero vector and is counted),
 * its actions, surfaces, timestamps and query times. Shared by the users
 * stage (training and encoding) and bench_users. No I/O. */
#ifndef SQ_SEQ_BATCH_H
#define SQ_SEQ_BATCH_H

#include <stdint.h>
#include <stddef.h>

#include "encoder.h"
#include "history.h"
#include "idrow.h"

/* The item embeddings the encoder reads: rows (n, d) and (pin id, row) pairs sorted by id. */
typedef struct {
    uint64_t n;
    int d;
    const float *vec;
    const sp_idrow *idx;
} sq_items;

/* Row of pin in it, UINT64_MAX when the table lacks it. */
static inline uint64_t sq_items_row(const sq_items *it, uint64_t pin) { return sp_idrow_find(it->idx, it->n, pin); }

typedef struct {
    int B;
    uint64_t N;       /* rows packed */
    uint64_t missing; /* rows whose pin the item table lacks (zero vectors), since the last reset */
    uint64_t *off;    /* (B+1) */
    float *item;      /* (N, d) */
    uint8_t *act, *surf;
    int64_t *ts, *qt;
    size_t cap_b, cap_n, cap_item, cap_act, cap_surf, cap_ts, cap_qt;
} sq_packer;

void sq_packer_reset(sq_packer *p);
/* Appends one sequence: actions a[0..n) (oldest first, n ≥ 1); query time of position t is the
 * next action's ts, and qt_last for the last position. SP_ENOMEM on allocation failure. */
int sq_packer_add(sq_packer *p, const sq_action *a, uint64_t n, int64_t qt_last, const sq_items *it);
/* The packed sequences as an encoder batch (valid until the next add/reset/free). */
sq_batch sq_packer_batch(const sq_packer *p);
void sq_packer_free(sq_packer *p);

/* When a user's embedding is asked for: ts of its latest action plus the median of its last (up
 * to 32) gaps between actions, at most cap_ms later (0 gaps: the latest ts). Deterministic, needs
 * no clock, and matches training, where position t's query time is the next action's ts. */
int64_t sq_query_time(const sq_action *a, uint64_t n, int64_t cap_ms);

/* Encodes the users todo[0..n) (indices into h) with m: vec row todo[i] (of d_item floats) gets the
 * user's embedding from its last max_len actions, query time sq_query_time(.., cap_ms). threads ≥ 1
 * workers take chunks of users (each its own packer and activations); the result does not depend
 * on threads. *missing (may be NULL) += actions whose pin the item table lacks. */
int sq_encode_users(const sq_model *m, const sq_hist *h, const sq_items *it, const uint64_t *todo, uint64_t n,
                    int64_t cap_ms, int threads, float *vec, uint64_t *missing);

#endif
