/* users_items: fetching the users stage's item vectors (users_items.h). */
#include "users_items.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "sp_base.h"


void sp_item_view_free(sp_item_view *V) {
    sp_emb_set_free(&V->S);
    free(V->sidx), free(V->scount), free(V->slogq), free(V->ids), free(V->tcount), free(V->vec), free(V->logq);
    free(V->idx), free(V->req), free(V->bids), free(V->bvec), free(V->bidx);
    memset(V, 0, sizeof *V);
}

static int sink_request(void *c, int src, const void *rec, size_t len) {
    sp_item_view *V = c;
    if (len != 16) return sp_err(SP_EINTERNAL, "users: a request of %zu bytes", len);
    if (sp_grow((void **)&V->req, &V->cap_req, 3 * (V->nreq + 1), 8)) return SP_ENOMEM;
    uint64_t *q = V->req + 3 * V->nreq++;
    q[0] = (uint64_t)src;
    memcpy(q + 1, rec, 16);
    return SP_OK;
}

/* Where a round's replies land: the fetched pins (V->ids, tcount, vec) or the fetched boards (V->bids, bvec). */
typedef struct {
    sp_item_view *V;
    sp_type type;
} reply_sink;

static int sink_reply(void *c, int src, const void *rec, size_t len) {
    reply_sink *r = c;
    sp_item_view *V = r->V;
    (void)src;
    if (len != 16 + 4 * (size_t)V->d) return sp_err(SP_EINTERNAL, "users: a vector reply of %zu bytes", len);
    if (r->type == SP_BOARD) {
        if (sp_grow((void **)&V->bids, &V->cap_bi, V->nb + 1, 8) ||
            sp_grow((void **)&V->bvec, &V->cap_bv, (V->nb + 1) * V->d, 4))
            return SP_ENOMEM;
        memcpy(&V->bids[V->nb], rec, 8);
        memcpy(V->bvec + V->nb * V->d, (const uint8_t *)rec + 16, 4 * (size_t)V->d);
        V->nb++;
        return SP_OK;
    }
    if (sp_grow((void **)&V->ids, &V->cap_i, V->n + 1, 8) || sp_grow((void **)&V->tcount, &V->cap_t, V->n + 1, 8) ||
        sp_grow((void **)&V->vec, &V->cap_v, (V->n + 1) * V->d, 4))
        return SP_ENOMEM;
    memcpy(&V->ids[V->n], rec, 8);
    memcpy(&V->tcount[V->n], (const uint8_t *)rec + 8, 8);
    memcpy(V->vec + V->n * V->d, (const uint8_t *)rec + 16, 4 * (size_t)V->d);
    V->n++;
    return SP_OK;
}

static int cmp_u64x2(const void *a, const void *b) {
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : (x[1] > y[1]) - (x[1] < y[1]);
}

/* Two bounded shuffles for the nodes of type t in want ((id, count) pairs, ascending, unique): each request
 * goes to the rank serving the id's infer part; a server (its nodes of type t: sidx sorted, svec rows) adds
 * the counts into scount (pins; NULL for boards) and replies (id, count, vector) for each id it holds, which
 * lands in the requester's rows of type t. Ids no part holds get no reply. */
static int exchange(const sp_run_ctx *ctx, sp_item_view *V, sp_type t, const uint64_t (*want)[2], uint64_t nwant,
                    const sp_idrow *sidx, uint64_t ns, const float *svec, uint64_t *scount) {
    size_t buffer = (size_t)sp_config_int(ctx->cfg, "pipeline", "shuffle_buffer_mb") << 20;
    /* round 1: requests to the servers */
    sp_shuffle *sh = NULL;
    int rc = sp_dist_agree(sp_shuffle_new(&sh, buffer, sink_request, V));
    uint64_t i = 0;
    int all_done = 0, lrc = SP_OK;
    while (!rc && !all_done) {
        while (!lrc && i < nwant && !sp_shuffle_full(sh)) {
            int dest = sp_owner(t, want[i][0], V->ninfer) % ctx->size;
            lrc = sp_shuffle_put(sh, dest, want[i], 16);
            i++;
        }
        rc = sp_shuffle_exchange(sh, i == nwant || lrc, lrc, &all_done);
    }
    sp_shuffle_free(sh);
    sh = NULL;
    /* the servers: counts per node, then round 2: replies (id, count, vector; missing nodes get none) */
    /* requests arrive by source rank, each source's in ascending id order: no sort needed */
    for (uint64_t k = 0; !rc && scount && k < V->nreq; k++) {
        uint64_t row = sp_idrow_find(sidx, ns, V->req[3 * k + 1]);
        if (row != UINT64_MAX) scount[row] += V->req[3 * k + 2];
    }
    uint8_t *rec = malloc(16 + 4 * (size_t)(V->d ? V->d : 1));
    lrc = rec ? SP_OK : SP_ENOMEM;
    reply_sink sink = {V, t};
    if (!rc) rc = sp_dist_agree(sp_shuffle_new(&sh, buffer, sink_reply, &sink));
    i = 0;
    all_done = 0;
    while (!rc && !all_done) {
        while (!lrc && i < V->nreq && !sp_shuffle_full(sh)) {
            const uint64_t *q = V->req + 3 * i++;
            uint64_t row = sp_idrow_find(sidx, ns, q[1]);
            if (row == UINT64_MAX) continue; /* not embedded: the requester does without it (and counts it) */
            uint64_t cnt = scount ? scount[row] : 0;
            memcpy(rec, &q[1], 8);
            memcpy(rec + 8, &cnt, 8);
            memcpy(rec + 16, svec + row * V->d, 4 * (size_t)V->d);
            lrc = sp_shuffle_put(sh, (int)q[0], rec, 16 + 4 * (size_t)V->d);
        }
        rc = sp_shuffle_exchange(sh, i == V->nreq || lrc, lrc, &all_done);
    }
    sp_shuffle_free(sh);
    free(rec);
    free(V->req);
    V->req = NULL, V->nreq = 0, V->cap_req = 0;
    return rc;
}

int sp_item_view_fetch(const sp_run_ctx *ctx, const sq_hist *h, sq_action *buf, uint64_t longest, sp_item_view *V,
                       uint64_t *tot_targets) {
    memset(V, 0, sizeof *V);
    int rc = sp_stage_ranks(ctx, "infer", &V->ninfer);
    if (!rc) rc = sp_infer_load_parts(ctx, ctx->rank, ctx->size, &V->S);
    /* the served parts' dim, agreed */
    uint64_t dims[2] = {(uint64_t)V->S.d, V->S.n[0]};
    rc = sp_dist_agree(rc);
    if (!rc) rc = sp_dist_max_u64(&dims[0], 1);
    if (!rc) rc = sp_dist_sum_u64(&dims[1], 1);
    if (rc) return rc;
    if (V->S.d && (uint64_t)V->S.d != dims[0]) rc = sp_err(SP_EFORMAT, "users: infer parts disagree on dim");
    V->d = (int)dims[0];
    V->nglobal = dims[1];
    if (!rc && V->nglobal == 0) rc = sp_err(SP_EINPUT, "users: the infer stage embedded no pins");
    uint64_t ns = V->S.n[0];
    if (!rc && (!(V->sidx = malloc(sizeof *V->sidx * (ns + 1))) || !(V->scount = calloc(ns + 1, 8)) ||
                !(V->slogq = malloc(4 * (ns + 1)))))
        rc = SP_ENOMEM;
    for (uint64_t i = 0; !rc && i < ns; i++) V->sidx[i] = (sp_idrow){V->S.ids[0][i], i};
    if (!rc) sp_idrow_sort(V->sidx, ns);
    /* this rank's pins with their counts as targets (every action but a history's first) */
    uint64_t (*pc)[2] = rc ? NULL : malloc(sizeof *pc * (h->nactions + 1)), npc = 0, tot = 0;
    if (!rc && !pc) rc = SP_ENOMEM;
    for (uint64_t u = 0; !rc && u < h->n; u++) {
        if ((rc = sq_hist_user(h, u, buf, longest))) break;
        for (uint64_t j = 0; j < h->nact[u]; j++) pc[npc][0] = buf[j].pin, pc[npc++][1] = j > 0;
    }
    if (!rc) qsort(pc, npc, sizeof *pc, cmp_u64x2);
    uint64_t nu = 0;
    for (uint64_t i = 0; !rc && i < npc; i++) { /* unique, summing the target flags */
        tot += pc[i][1];
        if (nu && pc[nu - 1][0] == pc[i][0]) pc[nu - 1][1] += pc[i][1];
        else pc[nu][0] = pc[i][0], pc[nu++][1] = pc[i][1];
    }
    rc = sp_dist_agree(rc);
    if (!rc) rc = sp_dist_sum_u64(&tot, 1);
    *tot_targets = tot;
    if (!rc) rc = exchange(ctx, V, SP_PIN, (const uint64_t(*)[2])pc, nu, V->sidx, ns, V->S.vec[0], V->scount);
    free(pc);
    /* the fetched pins in pin order */
    if (!rc && (!(V->idx = malloc(sizeof *V->idx * (V->n + 1))) || !(V->logq = malloc(4 * (V->n + 1)))))
        rc = SP_ENOMEM;
    if (!rc) {
        for (uint64_t k = 0; k < V->n; k++) V->idx[k] = (sp_idrow){V->ids[k], k};
        sp_idrow_sort(V->idx, V->n);
        uint64_t *ids2 = malloc(8 * (V->n + 1)), *tc2 = malloc(8 * (V->n + 1));
        float *v2 = malloc(4 * (V->n * V->d + 1));
        if (!ids2 || !tc2 || !v2) rc = SP_ENOMEM;
        for (uint64_t k = 0; !rc && k < V->n; k++) {
            uint64_t from = V->idx[k].row;
            ids2[k] = V->ids[from], tc2[k] = V->tcount[from];
            memcpy(v2 + k * V->d, V->vec + from * V->d, 4 * (size_t)V->d);
            V->idx[k].row = k;
        }
        if (!rc) {
            free(V->ids), free(V->tcount), free(V->vec);
            V->ids = ids2, V->tcount = tc2, V->vec = v2;
        } else free(ids2), free(tc2), free(v2);
    }
    return sp_dist_agree(rc);
}

int sp_item_view_fetch_boards(const sp_run_ctx *ctx, const uint64_t *ids, uint64_t n, sp_item_view *V) {
    uint64_t ns = V->S.n[1], (*want)[2] = malloc(sizeof *want * (n + 1)), nw = 0;
    sp_idrow *sidx = malloc(sizeof *sidx * (ns + 1));
    int rc = want && sidx ? SP_OK : SP_ENOMEM;
    for (uint64_t i = 0; !rc && i < ns; i++) sidx[i] = (sp_idrow){V->S.ids[1][i], i};
    if (!rc) sp_idrow_sort(sidx, ns);
    for (uint64_t i = 0; !rc && i < n; i++) want[i][0] = ids[i], want[i][1] = 0;
    if (!rc) qsort(want, n, sizeof *want, cmp_u64x2);
    for (uint64_t i = 0; !rc && i < n; i++) /* unique */
        if (!nw || want[nw - 1][0] != want[i][0]) want[nw][0] = want[i][0], want[nw++][1] = 0;
    rc = sp_dist_agree(rc);
    if (!rc) rc = exchange(ctx, V, SP_BOARD, (const uint64_t(*)[2])want, nw, sidx, ns, V->S.vec[1], NULL);
    free(want);
    free(sidx);
    if (!rc && !(V->bidx = malloc(sizeof *V->bidx * (V->nb + 1)))) rc = SP_ENOMEM;
    for (uint64_t k = 0; !rc && k < V->nb; k++) V->bidx[k] = (sp_idrow){V->bids[k], k};
    if (!rc) sp_idrow_sort(V->bidx, V->nb);
    return sp_dist_agree(rc);
}
