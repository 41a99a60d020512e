/* train_view: a minibatch's subgraph over a partitioned training view (train_view.h).
 *
 * A node's record (4-byte words): gid, np, nb, ndense, ntok, then np + nb
 * neighbour indices (global; pins then boards), their np + nb weights, ndense
 * features, ntok token rows. The same bytes whether an owner sends it or the
 * rank takes its own node from memory. */
#include "train_view.h"

#include <stdlib.h>
#include <string.h>

#include "sp_base.h"

enum { HDR = 5 }; /* header words */

static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Bytes of node u's record (lists: with its neighbour lists); its header to w, its index in D's owned
 * arrays to *lp. */
static size_t rec_len(const sp_sage_data *D, uint32_t u, int lists, uint32_t w[HDR], uint64_t *lp) {
    uint64_t l = *lp = sp_sage_data_local(D, u);
    int pin = u < D->npins;
    w[0] = u;
    w[1] = lists ? (uint32_t)(D->pn_off[l + 1] - D->pn_off[l]) : 0;
    w[2] = lists ? (uint32_t)(D->bn_off[l + 1] - D->bn_off[l]) : 0;
    w[3] = pin && D->dense ? (uint32_t)D->dense_dim : 0;
    w[4] = pin && D->tok_off ? (uint32_t)(D->tok_off[l + 1] - D->tok_off[l]) : 0;
    return 4 * ((size_t)HDR + 2 * ((size_t)w[1] + w[2]) + w[3] + w[4]);
}

/* Writes the record of the owned node at index l (header w from rec_len) at out. */
static void rec_put(const sp_sage_data *D, uint64_t l, const uint32_t w[HDR], uint8_t *out) {
    uint32_t np = w[1], nb = w[2];
    memcpy(out, w, 4 * HDR);
    out += 4 * HDR;
    memcpy(out, D->pn_idx + D->pn_off[l], 4 * (size_t)np);
    memcpy(out + 4 * (size_t)np, D->bn_idx + D->bn_off[l], 4 * (size_t)nb);
    out += 4 * ((size_t)np + nb);
    memcpy(out, D->pn_w + D->pn_off[l], 4 * (size_t)np);
    memcpy(out + 4 * (size_t)np, D->bn_w + D->bn_off[l], 4 * (size_t)nb);
    out += 4 * ((size_t)np + nb);
    if (w[3]) memcpy(out, D->dense + l * (size_t)D->dense_dim, 4 * (size_t)w[3]);
    out += 4 * (size_t)w[3];
    if (w[4]) memcpy(out, D->tok_row + D->tok_off[l], 4 * (size_t)w[4]);
}

/* ---- the store: slots by gid ---- */

static size_t hpos(uint32_t gid, size_t cap) { return (size_t)sp_mix64(gid) & (cap - 1); }

static uint32_t slot_of(const sp_view_step *st, uint32_t gid) {
    for (size_t h = hpos(gid, st->hcap);; h = (h + 1) & (st->hcap - 1)) {
        if (st->hkey[h] == gid + 1) return st->hval[h];
        if (st->hkey[h] == 0) return UINT32_MAX;
    }
}

static int rehash(sp_view_step *st, size_t cap) {
    uint32_t *k = calloc(cap, 4), *v = malloc(4 * cap);
    if (!k || !v) {
        free(k), free(v);
        return sp_err(SP_ENOMEM, "train view: a table of %zu nodes", cap);
    }
    free(st->hkey), free(st->hval);
    st->hkey = k, st->hval = v, st->hcap = cap;
    for (uint32_t s = 0; s < st->m; s++) {
        size_t h = hpos(st->gid[s], cap);
        while (k[h]) h = (h + 1) & (cap - 1);
        k[h] = st->gid[s] + 1, v[h] = s;
    }
    return SP_OK;
}

/* Adds gid as a new slot (pending) unless present. *added = 1 when new. */
static int slot_add(sp_view_step *st, uint32_t gid, int *added) {
    *added = 0;
    if (2 * ((size_t)st->m + 1) > st->hcap) {
        int rc = rehash(st, st->hcap ? 2 * st->hcap : 4096);
        if (rc) return rc;
    }
    size_t h = hpos(gid, st->hcap);
    for (; st->hkey[h]; h = (h + 1) & (st->hcap - 1))
        if (st->hkey[h] == gid + 1) return SP_OK;
    if (sp_grow((void **)&st->gid, &st->cap_gid, (size_t)st->m + 1, 4) ||
        sp_grow((void **)&st->at, &st->cap_at, (size_t)st->m + 1, 8))
        return SP_ENOMEM;
    st->hkey[h] = gid + 1, st->hval[h] = st->m;
    st->gid[st->m] = gid;
    st->at[st->m++] = UINT64_MAX;
    *added = 1;
    return SP_OK;
}

/* Room for len more record bytes; returns where they go. */
static uint8_t *rec_room(sp_view_step *st, size_t len) {
    if (sp_grow((void **)&st->rec, &st->caprec, st->nrec + len, 1)) return NULL;
    uint8_t *p = st->rec + st->nrec;
    st->nrec += len;
    return p;
}

/* ---- the fetcher ---- */

static int sink(void *ctx, int src, const void *rec, size_t len) {
    sp_view *V = ctx;
    if (V->phase == 0) { /* a request: (gid, lists) */
        if (len != 8) return sp_err(SP_EINTERNAL, "train view: a request of %zu bytes", len);
        if (sp_grow((void **)&V->req, &V->capreq, V->nreq + 1, sizeof *V->req)) return SP_ENOMEM;
        const uint8_t *p = rec;
        V->req[V->nreq++] = (struct sp_view_req){(uint32_t)src, rd32(p), rd32(p + 4)};
        return SP_OK;
    }
    /* an answer: a record, into its slot */
    sp_view_step *st = V->cur;
    if (len < 4 * HDR) return sp_err(SP_EINTERNAL, "train view: a record of %zu bytes", len);
    uint32_t gid = rd32(rec), s = slot_of(st, gid);
    if (s == UINT32_MAX || st->at[s] != UINT64_MAX)
        return sp_err(SP_EINTERNAL, "train view: an unasked record of node %u from rank %d", gid, src);
    uint8_t *at = rec_room(st, len);
    if (!at) return SP_ENOMEM;
    memcpy(at, rec, len);
    st->at[s] = (uint64_t)(at - st->rec);
    V->fetched++;
    V->bytes += len;
    return SP_OK;
}

int sp_view_init(sp_view *V, const sp_sage_data *D, int rank, int size, size_t shuffle_bytes) {
    memset(V, 0, sizeof *V);
    V->D = D, V->rank = rank, V->size = size;
    int rc = size > 1 ? sp_shuffle_new(&V->sh, shuffle_bytes, sink, V) : SP_OK;
    return sp_dist_agree(rc);
}

void sp_view_free(sp_view *V) {
    sp_shuffle_free(V->sh);
    free(V->req);
    memset(V, 0, sizeof *V);
}

void sp_view_step_free(sp_view_step *st) {
    void *p[] = {st->gid, st->at, st->rec, st->hkey, st->hval, st->loc, st->row, st->logdeg, st->pn_w, st->bn_w,
                 st->dense, st->pn_off, st->bn_off, st->tok_off, st->pn_idx, st->bn_idx, st->tok_row, st->targets};
    for (size_t i = 0; i < sizeof p / sizeof *p; i++) free(p[i]);
    memset(st, 0, sizeof *st);
}

/* One hop: the records of slots [lo, hi), with lists or not: own nodes from memory, the others asked of
 * their owners (collective). */
static int hop(sp_view *V, sp_view_step *st, uint32_t lo, uint32_t hi, int lists) {
    const sp_sage_data *D = V->D;
    uint32_t w[HDR];
    uint64_t l;
    int rc = SP_OK, lrc = SP_OK, all_done = 0;
    for (uint32_t s = lo; s < hi && !lrc; s++) {
        uint32_t u = st->gid[s];
        if (sp_sage_data_owner(D, u) != V->rank) continue;
        size_t len = rec_len(D, u, lists, w, &l);
        uint8_t *at = rec_room(st, len);
        if (!at) {
            lrc = SP_ENOMEM;
            break;
        }
        rec_put(D, l, w, at);
        st->at[s] = (uint64_t)(at - st->rec);
    }
    if (V->size == 1) return lrc;
    /* requests */
    V->phase = 0, V->nreq = 0, V->cur = st;
    uint32_t s = lo;
    while (!rc && !all_done) {
        for (; !lrc && s < hi && !sp_shuffle_full(V->sh); s++) {
            uint32_t u = st->gid[s];
            int own = sp_sage_data_owner(D, u);
            if (own == V->rank) continue;
            uint32_t q[2] = {u, (uint32_t)lists};
            lrc = sp_shuffle_put(V->sh, own, q, 8);
        }
        rc = sp_shuffle_exchange(V->sh, lrc || s == hi, lrc, &all_done);
    }
    /* answers */
    V->phase = 1, all_done = 0;
    size_t i = 0;
    while (!rc && !all_done) {
        for (; !lrc && i < V->nreq && !sp_shuffle_full(V->sh); i++) {
            const struct sp_view_req *q = &V->req[i];
            if (q->gid >= D->n || sp_sage_data_owner(D, q->gid) != V->rank) {
                lrc = sp_err(SP_EINTERNAL, "train view: rank %u asked rank %d for node %u", q->src, V->rank, q->gid);
                break;
            }
            size_t len = rec_len(D, q->gid, (int)q->lists, w, &l);
            if (len > SP_SHUFFLE_MAX_RECORD) {
                lrc = sp_err(SP_EINPUT, "train view: node %u's lists and features take %zu bytes (at most %u)",
                             q->gid, len, SP_SHUFFLE_MAX_RECORD);
                break;
            }
            uint8_t *at = sp_shuffle_reserve(V->sh, (int)q->src, len);
            if (!at) {
                lrc = SP_EINTERNAL;
                break;
            }
            rec_put(D, l, w, at);
        }
        rc = sp_shuffle_exchange(V->sh, lrc || i == V->nreq, lrc, &all_done);
    }
    return rc;
}

int sp_view_fetch(sp_view *V, sp_view_step *st, int K, const uint32_t *targets, uint32_t nt) {
    const sp_sage_data *D = V->D;
    int rc = SP_OK, added;
    st->m = 0, st->nrec = 0;
    if (st->hkey) memset(st->hkey, 0, 4 * st->hcap);
    for (uint32_t i = 0; i < nt && !rc; i++) {
        if (targets[i] >= D->n) rc = sp_err(SP_EINTERNAL, "train view: target %u of %llu nodes", targets[i],
                                           (unsigned long long)D->n);
        else rc = slot_add(st, targets[i], &added);
    }
    uint32_t lo = 0;
    for (int h = 0; h <= K; h++) { /* every rank runs every hop's rounds, with or without nodes of its own */
        uint32_t hi = st->m;
        int hrc = hop(V, st, lo, hi, h < K && !rc);
        rc = rc ? rc : hrc;
        for (uint32_t s = lo; s < hi && !rc; s++) {
            if (st->at[s] == UINT64_MAX) {
                rc = sp_err(SP_EINTERNAL, "train view: node %u's record did not arrive", st->gid[s]);
                break;
            }
            if (h == K) continue;
            const uint8_t *r = st->rec + st->at[s];
            uint32_t ne = rd32(r + 4) + rd32(r + 8);
            for (uint32_t j = 0; j < ne && !rc; j++) {
                uint32_t v = rd32(r + 4 * (HDR + (size_t)j));
                if (v >= D->n) rc = sp_err(SP_EINTERNAL, "train view: neighbour %u of node %u", v, st->gid[s]);
                else rc = slot_add(st, v, &added);
            }
        }
        lo = hi;
    }
    return rc;
}

int sp_view_build(sp_view_step *st, const sp_sage_data *D, const uint32_t *targets, uint32_t nt) {
    uint32_t m = st->m, mp = 0;
    size_t ep = 0, eb = 0, nd = 0, ntok = 0;
    for (uint32_t s = 0; s < m; s++) {
        const uint8_t *r = st->rec + st->at[s];
        mp += st->gid[s] < D->npins;
        ep += rd32(r + 4), eb += rd32(r + 8), ntok += rd32(r + 16);
    }
    nd = (size_t)mp * (D->dense ? (size_t)D->dense_dim : 0);
    if (sp_grow((void **)&st->loc, &st->cap_loc, m + 1, 4) || sp_grow((void **)&st->row, &st->cap_row, m + 1, 4) ||
        sp_grow((void **)&st->logdeg, &st->cap_ld, m + 1, 4) ||
        sp_grow((void **)&st->pn_off, &st->cap_po, m + 1, 8) || sp_grow((void **)&st->bn_off, &st->cap_bo, m + 1, 8) ||
        sp_grow((void **)&st->tok_off, &st->cap_to, mp + 1, 8) ||
        sp_grow((void **)&st->targets, &st->cap_tg, nt + 1, 4) || sp_grow((void **)&st->pn_idx, &st->cap_pi, ep + 1, 4) ||
        sp_grow((void **)&st->pn_w, &st->cap_pw, ep + 1, 4) || sp_grow((void **)&st->bn_idx, &st->cap_bi, eb + 1, 4) ||
        sp_grow((void **)&st->bn_w, &st->cap_bw, eb + 1, 4) || sp_grow((void **)&st->dense, &st->cap_d, nd + 1, 4) ||
        sp_grow((void **)&st->tok_row, &st->cap_tr, ntok + 1, 4))
        return SP_ENOMEM;
    /* local numbering: pins in slot order, then boards; each slot's list lengths at its local index,
     * summed into offsets in local order; then the lists, translated to local indices */
    uint32_t np_ = 0, nb_ = 0;
    st->pn_off[0] = st->bn_off[0] = st->tok_off[0] = 0;
    for (uint32_t s = 0; s < m; s++) {
        const uint8_t *r = st->rec + st->at[s];
        uint32_t i = st->loc[s] = st->gid[s] < D->npins ? np_++ : mp + nb_++;
        st->row[i] = st->gid[s];
        st->logdeg[i] = D->logdeg[st->gid[s]];
        st->pn_off[i + 1] = rd32(r + 4);
        st->bn_off[i + 1] = rd32(r + 8);
        if (i < mp) st->tok_off[i + 1] = rd32(r + 16);
    }
    for (uint32_t i = 0; i < m; i++) {
        st->pn_off[i + 1] += st->pn_off[i];
        st->bn_off[i + 1] += st->bn_off[i];
        if (i < mp) st->tok_off[i + 1] += st->tok_off[i];
    }
    size_t dim = D->dense ? (size_t)D->dense_dim : 0;
    for (uint32_t s = 0; s < m; s++) {
        uint32_t i = st->loc[s];
        const uint8_t *r = st->rec + st->at[s];
        uint32_t npl = rd32(r + 4), nbl = rd32(r + 8), ndn = rd32(r + 12), ntk = rd32(r + 16);
        const uint8_t *idx = r + 4 * HDR, *wts = idx + 4 * ((size_t)npl + nbl), *dn = wts + 4 * ((size_t)npl + nbl);
        for (uint32_t j = 0; j < npl + nbl; j++) {
            uint32_t v = rd32(idx + 4 * (size_t)j), sv = slot_of(st, v);
            if (sv == UINT32_MAX) return sp_err(SP_EINTERNAL, "train view: neighbour %u was not gathered", v);
            uint32_t lv = st->loc[sv];
            float wt;
            memcpy(&wt, wts + 4 * (size_t)j, 4);
            if (j < npl) st->pn_idx[st->pn_off[i] + j] = lv, st->pn_w[st->pn_off[i] + j] = wt;
            else st->bn_idx[st->bn_off[i] + j - npl] = lv, st->bn_w[st->bn_off[i] + j - npl] = wt;
        }
        if (i >= mp) continue;
        if (dim) {
            if (ndn == dim) memcpy(st->dense + (size_t)i * dim, dn, 4 * dim);
            else memset(st->dense + (size_t)i * dim, 0, 4 * dim);
        }
        if (ntk) memcpy(st->tok_row + st->tok_off[i], dn + 4 * (size_t)ndn, 4 * (size_t)ntk);
    }
    for (uint32_t i = 0; i < nt; i++) {
        uint32_t s = slot_of(st, targets[i]);
        if (s == UINT32_MAX) return sp_err(SP_EINTERNAL, "train view: target %u was not gathered", targets[i]);
        st->targets[i] = st->loc[s];
    }
    sp_sage_graph *g = &st->g;
    memset(g, 0, sizeof *g);
    g->n = m, g->npins = mp;
    g->logdeg = st->logdeg;
    g->pn_off = st->pn_off, g->pn_idx = st->pn_idx, g->pn_w = st->pn_w;
    g->bn_off = st->bn_off, g->bn_idx = st->bn_idx, g->bn_w = st->bn_w;
    g->dense_dim = D->dense_dim;
    g->dense = D->dense ? st->dense : NULL;
    g->tok_off = D->tok_rows ? st->tok_off : NULL;
    g->tok_row = D->tok_rows ? st->tok_row : NULL;
    g->row = st->row;
    return SP_OK;
}
