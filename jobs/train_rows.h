/* train_rows: owner-rank updates of the embedding-table rows (id rows, token
 * rows) in data-parallel training. An id row is owned by its node's owner
 * rank (sp_owner, DESIGN §2); a row without a node (a hashed-token row) by
 * rank u % size. Each step
 * every rank sends the gradients of the rows its minibatch touched to their
 * owners (one bounded-memory shuffle), each owner sums them with its own in
 * rank order and runs lazy Adam on the rows touched anywhere, with moments
 * kept current at the owner only, and sends the new rows to every other rank
 * (a second shuffle). Nothing of size `nrow` crosses the network per step:
 * the traffic is the touched rows, not a flag per row. The moments of rows a
 * rank does not own go stale there until sp_rows_sync_moments (before a
 * checkpoint is written). */
#ifndef SP_TRAIN_ROWS_H
#define SP_TRAIN_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "dist.h"
#include "nn.h"

typedef struct {
    int d, rank, size;
    uint16_t *owner;         /* (nrow) owner rank of each row; NULL: u % size */
    uint32_t *mine;          /* the rows this rank owns, ascending */
    uint64_t nmine, nrow_init;
    sp_shuffle *sh;
    /* sink state */
    float *G, *P;
    uint8_t *touched;
    uint64_t nrow;
    int phase;               /* 0: gradients to owners, 1: new rows from owners */
    /* counters: row records sent and received, over all steps */
    uint64_t grads_sent, grads_recv, rows_sent, rows_recv;
} sp_rows_owner;

/* Collective. buffer_bytes: the shuffle's send memory on this rank. A table
 * of nrow rows (< 2^32); ids (NULL: rows without nodes): the rows' external
 * ids, the first npins pins, the rest boards (the training view's order). */
int sp_rows_owner_init(sp_rows_owner *r, size_t buffer_bytes, int d, uint64_t nrow, uint64_t npins,
                       const uint64_t *ids);
void sp_rows_owner_free(sp_rows_owner *r);

/* One optimizer step of a (nrow, d) table P with moments M, V and gradient
 * rows G (nonzero only where touched[u]): on return P is the same on every
 * rank, G and touched are cleared, the moments of the rows this rank owns are
 * current. rows (nrow) and grow (nrow * d) are scratch. *nupdated (may be
 * NULL): rows this rank updated as their owner. nrow < 2^32. Collective. */
int sp_rows_owner_step(sp_rows_owner *r, float *P, float *M, float *V, float *G, uint8_t *touched, uint64_t nrow,
                       uint32_t *rows, float *grow, const nn_adam_cfg *c, int64_t t, float lr, uint64_t *nupdated);

/* Every rank gets every row's moments from its owner (rows not owned are
 * zeroed, then the tables summed). Collective. */
int sp_rows_sync_moments(const sp_rows_owner *r, float *M, float *V);

#endif
