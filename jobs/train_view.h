/* train_view: the subgraph of one minibatch over a partitioned training view
 * (train.view = owned, sage_data.h). A rank holds the neighbour lists and
 * content features of its own walks parts only; before a step it gathers,
 * hop by hop from the targets, the records of every node the step's K layers
 * read: its own nodes' from memory, the others' from their owners (a request
 * round and an answer round per hop, sp_shuffle; collective, main thread).
 * The producer thread then numbers the nodes locally (pins first), builds the
 * subgraph the encoder reads (sp_sage_graph, with the id-table row of each
 * node) and the minibatch plan over it. The lists and features are the whole
 * view's, in the same order, so the plan and every float of the step are the
 * same as over the replicated view. */
#ifndef SP_TRAIN_VIEW_H
#define SP_TRAIN_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "dist.h"
#include "sage.h"
#include "sage_data.h"

/* One step's nodes and the subgraph over them (one per minibatch buffer). */
typedef struct {
    /* the nodes met, in order (slot), with their records (the wire format below, back to back in rec) */
    uint32_t m;
    size_t cap_gid, cap_at;
    uint32_t *gid;
    uint64_t *at;      /* (m) offset of the slot's record in rec; UINT64_MAX: not arrived */
    uint8_t *rec;
    size_t nrec, caprec;
    uint32_t *hkey, *hval; /* open addressing: gid + 1 (0 empty) -> slot */
    size_t hcap;
    /* the subgraph: its nodes numbered locally, pins first */
    uint32_t *loc;     /* (m) slot -> local index */
    uint32_t *row;     /* (m) local index -> global node (id-table row) */
    float *logdeg, *pn_w, *bn_w, *dense;
    uint64_t *pn_off, *bn_off, *tok_off;
    uint32_t *pn_idx, *bn_idx, *tok_row, *targets;
    size_t cap_loc, cap_row, cap_ld, cap_po, cap_bo, cap_to, cap_tg; /* per node */
    size_t cap_pi, cap_pw, cap_bi, cap_bw, cap_d, cap_tr;             /* per list entry, feature, token */
    sp_sage_graph g;
} sp_view_step;

/* The fetcher (main thread): the view, the shuffle, the requests an owner answers. */
typedef struct {
    const sp_sage_data *D;
    int rank, size, phase;
    sp_shuffle *sh;
    sp_view_step *cur; /* the store the answers land in */
    struct sp_view_req { uint32_t src, gid, lists; } *req;
    size_t nreq, capreq;
    uint64_t fetched, bytes; /* records received from owners, their bytes */
} sp_view;

/* Collective. SP_ENOMEM. */
int sp_view_init(sp_view *V, const sp_sage_data *D, int rank, int size, size_t shuffle_bytes);
void sp_view_free(sp_view *V);
void sp_view_step_free(sp_view_step *st);

/* Collective (every rank, once per step, the same K): gathers into st the records of the targets and of
 * every node within K hops of them (lists for hops < K, features for all). */
int sp_view_fetch(sp_view *V, sp_view_step *st, int K, const uint32_t *targets, uint32_t nt);
/* Local (the producer): the subgraph st->g over the gathered nodes and the targets' local indices
 * (st->targets), for sp_sage_plan_build. SP_ENOMEM, SP_EINTERNAL (a node missing: a bug). */
int sp_view_build(sp_view_step *st, const sp_sage_data *D, const uint32_t *targets, uint32_t nt);

#endif
