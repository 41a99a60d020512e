/* train_rows: owner-rank updates of the embedding-table rows (id rows, token
 * rows) in data-parallel training. An id row is owned by its node's owner
 * rank (sp_owner, DESIGN §2); a row without a node (a hashed-token row) by
 * rank u % size. Each step every rank sends the gradients of the rows its
 * minibatch touched to their owners (one bounded-memory shuffle), each owner sums them with its own in
 * rank order and runs lazy Adam on the rows touched anywhere, with moments
 * kept current at the owner only, and sends the new rows to every other rank
 * (a second shuffle; push mode). Nothing of size `nrow` crosses the network
 * per step: the traffic is the touched rows, not a flag per row. The moments
 * of rows a rank does not own go stale there until sp_rows_sync_moments
 * (before a checkpoint is written).
 * Fetch mode (push = 0): the owners keep the new rows; before a step reads
 * rows, sp_rows_owner_fetch asks their owners for the current ones, so a rank
 * holds current values only of the rows it owns and of those it last fetched;
 * sp_rows_owner_spread gives every rank the whole current table (before it
 * is read as a whole: evaluation, a checkpoint, the joint task's refresh). */
#ifndef SP_TRAIN_ROWS_H
#define SP_TRAIN_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "dist.h"
#include "nn.h"

typedef struct { uint64_t row; int src; } sp_rows_req;

typedef struct {
    int d, rank, size;
    uint16_t *owner;         /* (nrow) owner rank of each row; NULL: u % size */
    uint32_t *mine;          /* the rows this rank owns, ascending */
    int push;                /* 1: owners send updated rows to every rank; 0: ranks fetch what they read */
    sp_rows_req *req;        /* fetch requests received this step */
    size_t nreq, capreq;
    uint64_t nmine, nrow;    /* rows owned here, rows in the table */
    sp_shuffle *sh;
    /* sink state */
    float *G, *P;
    uint8_t *touched;
    int phase;               /* 0: gradients to owners, 1: new rows from owners, 2: requests, 3: answers */
    /* counters: row records sent and received, over all steps */
    uint64_t grads_sent, grads_recv, rows_sent, rows_recv, fetch_sent, fetch_recv;
} sp_rows_owner;

/* Collective. buffer_bytes: the shuffle's send memory on this rank. A table
 * of nrow rows (< 2^32); ids (NULL: rows without nodes): the rows' external
 * ids, the first npins pins, the rest boards (the training view's order).
 * push: 1 push mode, 0 fetch mode. */
int sp_rows_owner_init(sp_rows_owner *r, size_t buffer_bytes, int d, uint64_t nrow, uint64_t npins,
                       const uint64_t *ids, int push);
void sp_rows_owner_free(sp_rows_owner *r);

/* One optimizer step of a (nrow, d) table P with moments M, V and gradient
 * rows G (nonzero only where touched[u]): on return the rows this rank owns
 * are current (in push mode every row, the same on every rank), G and touched
 * are cleared, the moments of the rows this rank owns are current. rows
 * (nrow) and grow (nrow * d) are scratch. *nupdated (may be NULL): rows this
 * rank updated as their owner. nrow < 2^32. Collective. */
int sp_rows_owner_step(sp_rows_owner *r, float *P, float *M, float *V, float *G, uint8_t *touched, uint64_t nrow,
                       uint32_t *rows, float *grow, const nn_adam_cfg *c, int64_t t, float lr, uint64_t *nupdated);

/* Fetch mode: rows need[0..nneed) of P (any order; a duplicate is fetched
 * twice; those owned here are skipped) become their owners' current values.
 * Collective. */
int sp_rows_owner_fetch(sp_rows_owner *r, float *P, const uint32_t *need, uint64_t nneed);
/* Every rank gets every row of P from its owner. Collective. */
int sp_rows_owner_spread(sp_rows_owner *r, float *P);

/* Every rank gets every row's moments from its owner (rows not owned are
 * zeroed, then the tables summed). Collective. */
int sp_rows_sync_moments(const sp_rows_owner *r, float *M, float *V);

#endif
