/* users_items: the item vectors the users stage reads, without any rank
 * holding the whole table. Rank r serves the infer parts p with p % ranks ==
 * r (part p holds the pins owned by rank p of the infer stage's rank count)
 * and fetches, from the ranks serving them, the vectors and the global
 * target counts of the pins its own histories read (two bounded shuffles). */
#ifndef SP_USERS_ITEMS_H
#define SP_USERS_ITEMS_H

#include <stddef.h>
#include <stdint.h>

#include "history.h"
#include "idrow.h"
#include "infer_stage.h"
#include "stage.h"

typedef struct {
    sp_emb_set S;      /* served parts (pins used) */
    sp_idrow *sidx;    /* served pin -> row */
    uint64_t *scount;  /* (served) global count as a target (0 when no rank asked) */
    float *slogq;      /* (served) */
    uint64_t n;        /* fetched pins, ascending */
    int d;
    uint64_t *ids, *tcount; /* (n) pin, global count as a target */
    float *vec, *logq;      /* (n, d), (n) */
    sp_idrow *idx;          /* (n) {pin, row}: rows are in pin order */
    uint64_t nb;            /* fetched boards (sp_item_view_fetch_boards) */
    uint64_t *bids;         /* (nb) board id of each row */
    float *bvec;            /* (nb, d) */
    sp_idrow *bidx;         /* (nb) {board, row}, sorted by board */
    int ninfer;             /* the infer stage's rank count (its parts) */
    uint64_t nglobal;       /* pins over every part */
    /* private: capacities, and the requests this rank received as a server */
    size_t cap_i, cap_t, cap_v, cap_bi, cap_bv;
    uint64_t nreq, *req; /* (nreq, 3): src rank, pin, count */
    size_t cap_req;
} sp_item_view;

/* Collective. Fills V (zeroed here) for the pins of h, decoding each user through buf (room for
 * `longest` actions); *tot_targets = the targets (every action but a history's first) over all ranks.
 * Pins no infer part holds are simply absent from V. */
int sp_item_view_fetch(const sp_run_ctx *ctx, const sq_hist *h, sq_action *buf, uint64_t longest, sp_item_view *V,
                       uint64_t *tot_targets);
/* Collective, after sp_item_view_fetch: the vectors of the boards named in ids (any order, repeats
 * allowed) into V->nb / bids / bvec / bidx. Boards no infer part holds are simply absent. */
int sp_item_view_fetch_boards(const sp_run_ctx *ctx, const uint64_t *ids, uint64_t n, sp_item_view *V);
void sp_item_view_free(sp_item_view *V);

#endif
