/* train_rows: owner-rank row updates (train_rows.h). */
#include "train_rows.h"

#include <stdlib.h>
#include <string.h>

#include "sp_base.h"

static inline int owner_of(const sp_rows_owner *r, uint64_t u) {
    return r->owner ? r->owner[u] : (int)(u % (uint64_t)r->size);
}

static int sink(void *ctx, int src, const void *rec, size_t len) {
    sp_rows_owner *r = ctx;
    size_t d = (size_t)r->d;
    uint64_t u;
    if (r->phase == 2) { /* a request for a row this rank owns */
        if (len != 8) return sp_err(SP_EINTERNAL, "train rows: request of %zu bytes from rank %d", len, src);
        memcpy(&u, rec, 8);
        if (u >= r->nrow || owner_of(r, u) != r->rank)
            return sp_err(SP_EINTERNAL, "train rows: rank %d asked rank %d for row %llu", src, r->rank,
                          (unsigned long long)u);
        if (r->nreq == r->capreq && sp_grow((void **)&r->req, &r->capreq, r->nreq + 1, sizeof *r->req))
            return SP_ENOMEM;
        r->req[r->nreq++] = (sp_rows_req){u, src};
        return SP_OK;
    }
    if (len != 8 + 4 * d) return sp_err(SP_EINTERNAL, "train rows: record of %zu bytes from rank %d", len, src);
    memcpy(&u, rec, 8);
    if (u >= r->nrow) return sp_err(SP_EINTERNAL, "train rows: row %llu of %llu from rank %d", (unsigned long long)u,
                                    (unsigned long long)r->nrow, src);
    const float *x = (const float *)(const void *)((const char *)rec + 8);
    if (r->phase == 0) { /* a gradient for a row this rank owns */
        if (owner_of(r, u) != r->rank)
            return sp_err(SP_EINTERNAL, "train rows: rank %d sent row %llu to rank %d, not its owner", src,
                          (unsigned long long)u, r->rank);
        float *g = r->G + u * d;
        for (size_t k = 0; k < d; k++) g[k] += x[k];
        r->touched[u] = 1;
        r->grads_recv++;
    } else { /* a row from its owner: updated (phase 1) or asked for (phase 3) */
        memcpy(r->P + u * d, x, 4 * d);
        if (r->phase == 1) r->rows_recv++;
        else r->fetch_recv++;
    }
    return SP_OK;
}

int sp_rows_owner_init(sp_rows_owner *r, size_t buffer_bytes, int d, uint64_t nrow, uint64_t npins,
                       const uint64_t *ids, int push) {
    memset(r, 0, sizeof *r);
    r->d = d;
    r->push = push;
    r->nrow = nrow;
    r->rank = sp_dist_rank();
    r->size = sp_dist_size();
    int rc = SP_OK;
    if (nrow > UINT32_MAX || r->size > 65536)
        rc = sp_err(SP_EINTERNAL, "train rows: %llu rows on %d ranks (at most 2^32 - 1 rows, 65536 ranks)",
                    (unsigned long long)nrow, r->size);
    if (!rc && ids && !(r->owner = malloc(sizeof *r->owner * (nrow + 1)))) rc = SP_ENOMEM;
    for (uint64_t u = 0; !rc && ids && u < nrow; u++)
        r->owner[u] = (uint16_t)sp_owner(u < npins ? SP_PIN : SP_BOARD, ids[u], r->size);
    for (uint64_t u = 0; !rc && u < nrow; u++) r->nmine += owner_of(r, u) == r->rank;
    if (!rc && !(r->mine = malloc(sizeof *r->mine * (r->nmine + 1)))) rc = SP_ENOMEM;
    for (uint64_t u = 0, k = 0; !rc && u < nrow; u++)
        if (owner_of(r, u) == r->rank) r->mine[k++] = (uint32_t)u;
    if (!rc && r->size > 1) rc = sp_shuffle_new(&r->sh, buffer_bytes, sink, r);
    return sp_dist_agree(rc);
}

void sp_rows_owner_free(sp_rows_owner *r) {
    sp_shuffle_free(r->sh);
    free(r->owner);
    free(r->mine);
    free(r->req);
    memset(r, 0, sizeof *r);
}

/* Sends rows[0..nr) of P (owned here) to every other rank (sink phase 1: into their P). */
static int send_rows(sp_rows_owner *r, float *P, const uint32_t *rows, uint64_t nr) {
    const size_t d = (size_t)r->d;
    const uint64_t size = (uint64_t)r->size, me = (uint64_t)r->rank;
    int rc = SP_OK, lrc = SP_OK, all_done = 0;
    if (size == 1) return SP_OK;
    r->phase = 1;
    uint64_t i = 0;
    while (!rc && !all_done) {
        for (; !lrc && i < nr && !sp_shuffle_full(r->sh); i++) {
            uint64_t u = rows[i];
            for (uint64_t dst = 0; dst < size && !lrc; dst++) {
                if (dst == me) continue;
                char *at = sp_shuffle_reserve(r->sh, (int)dst, 8 + 4 * d);
                if (!at) {
                    lrc = SP_EINTERNAL;
                    break;
                }
                memcpy(at, &u, 8);
                memcpy(at + 8, P + u * d, 4 * d);
                r->rows_sent++;
            }
        }
        rc = sp_shuffle_exchange(r->sh, lrc || i == nr, lrc, &all_done);
    }
    return rc;
}

int sp_rows_owner_step(sp_rows_owner *r, float *P, float *M, float *V, float *G, uint8_t *touched, uint64_t nrow,
                       uint32_t *rows, float *grow, const nn_adam_cfg *c, int64_t t, float lr, uint64_t *nupdated) {
    const size_t d = (size_t)r->d;
    const uint64_t size = (uint64_t)r->size, me = (uint64_t)r->rank;
    int rc = SP_OK, lrc = SP_OK, all_done = 0;
    if (nrow != r->nrow)
        return sp_err(SP_EINTERNAL, "train rows: a table of %llu rows, set up for %llu", (unsigned long long)nrow,
                      (unsigned long long)r->nrow);
    r->G = G, r->P = P, r->touched = touched;
    /* 1. gradients of rows owned elsewhere to their owners (cleared here) */
    if (size > 1) {
        r->phase = 0;
        uint64_t u = 0;
        while (!rc && !all_done) {
            for (; !lrc && u < nrow && !sp_shuffle_full(r->sh); u++) {
                int own;
                if (!touched[u] || (own = owner_of(r, u)) == (int)me) continue;
                char *at = sp_shuffle_reserve(r->sh, own, 8 + 4 * d);
                if (!at) {
                    lrc = SP_EINTERNAL;
                    break;
                }
                memcpy(at, &u, 8);
                memcpy(at + 8, G + u * d, 4 * d);
                memset(G + u * d, 0, 4 * d);
                touched[u] = 0;
                r->grads_sent++;
            }
            rc = sp_shuffle_exchange(r->sh, lrc || u == nrow, lrc, &all_done);
        }
        if (rc) return rc;
    }
    /* 2. lazy Adam on the owned rows touched by any rank */
    uint32_t nr = 0;
    for (uint64_t k = 0; k < r->nmine; k++) {
        uint64_t u = r->mine[k];
        if (touched[u]) {
            rows[nr] = (uint32_t)u;
            memcpy(grow + (size_t)nr * d, G + u * d, 4 * d);
            memset(G + u * d, 0, 4 * d);
            touched[u] = 0;
            nr++;
        }
    }
    nn_adam_rows(P, M, V, rows, grow, (int)nr, (int)d, c, t, lr);
    if (nupdated) *nupdated = nr;
    /* 3. the new rows to every other rank (push mode; in fetch mode ranks ask for what they read) */
    if (rc || !r->push) return rc;
    return send_rows(r, P, rows, nr);
}

int sp_rows_owner_spread(sp_rows_owner *r, float *P) {
    r->P = P;
    return send_rows(r, P, r->mine, r->nmine);
}

int sp_rows_owner_fetch(sp_rows_owner *r, float *P, const uint32_t *need, uint64_t nneed) {
    if (r->size == 1) return SP_OK;
    const size_t d = (size_t)r->d;
    const int me = r->rank;
    int rc = SP_OK, lrc = SP_OK, all_done = 0;
    r->P = P;
    r->nreq = 0;
    /* 1. each row read here and owned elsewhere is asked of its owner (sink: queue the request) */
    r->phase = 2;
    uint64_t i = 0;
    while (!rc && !all_done) {
        for (; !lrc && i < nneed && !sp_shuffle_full(r->sh); i++) {
            uint64_t u = need[i];
            int own;
            if (u >= r->nrow) {
                lrc = sp_err(SP_EINTERNAL, "train rows: fetch of row %llu of %llu", (unsigned long long)u,
                             (unsigned long long)r->nrow);
                break;
            }
            if ((own = owner_of(r, u)) == me) continue;
            lrc = sp_shuffle_put(r->sh, own, &u, 8);
            r->fetch_sent++;
        }
        rc = sp_shuffle_exchange(r->sh, lrc || i == nneed, lrc, &all_done);
    }
    /* 2. the owners answer with the rows (sink: into P) */
    r->phase = 3;
    all_done = 0;
    i = 0;
    while (!rc && !all_done) {
        for (; !lrc && i < r->nreq && !sp_shuffle_full(r->sh); i++) {
            uint64_t u = r->req[i].row;
            char *at = sp_shuffle_reserve(r->sh, r->req[i].src, 8 + 4 * d);
            if (!at) {
                lrc = SP_EINTERNAL;
                break;
            }
            memcpy(at, &u, 8);
            memcpy(at + 8, P + u * d, 4 * d);
        }
        rc = sp_shuffle_exchange(r->sh, lrc || i == r->nreq, lrc, &all_done);
    }
    return rc;
}

int sp_rows_sync_moments(const sp_rows_owner *r, float *M, float *V) {
    if (r->size == 1) return SP_OK;
    const size_t d = (size_t)r->d;
    for (uint64_t u = 0; u < r->nrow; u++)
        if (owner_of(r, u) != r->rank) {
            memset(M + u * d, 0, 4 * d);
            memset(V + u * d, 0, 4 * d);
        }
    int rc = sp_dist_sum_f32(M, r->nrow * d);
    if (!rc) rc = sp_dist_sum_f32(V, r->nrow * d);
    return rc;
}
