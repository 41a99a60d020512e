/* infer stage: MapReduce-style, layer-wise inference of every pin and board
 * (PinSage §3.4, DESIGN §4.1). Each rank owns the nodes of its walks part.
 * Once: every rank tells the owners which of their nodes its neighbour lists
 * name ("subscriptions"). Then per layer k: each rank computes the message
 * m = ReLU(Q_k h + q_k) of each node it owns exactly once, sends it to the
 * ranks subscribed to that node, and convolves its own nodes from local and
 * received messages. No per-target K-hop trees are built. The output head
 * runs on owned nodes; each rank writes infer/part-RRRRR-of-NNNNN.bin (sfile
 * kind "emb": meta, pin_ids, pin_vecs, board_ids, board_vecs). */
#include "infer_stage.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "idrow.h"
#include "graph.h"
#include "lines.h"
#include "log.h"
#include "sage.h"
#include "sage_ckpt.h"
#include "sage_data.h"
#include "sfile.h"
#include "sort.h"
#include "walk.h"

/* A node reference across ranks: rank << 41 | type << 40 | local. */
static inline uint64_t nref(int rank, int type, uint64_t local) {
    return (uint64_t)rank << 41 | (uint64_t)type << 40 | local;
}

typedef struct { uint64_t ref; uint32_t rank, pad; } sub_rec; /* "rank wants node ref" */

typedef struct {
    int d, size;
    uint64_t L;            /* owned nodes: pins [0, np) then boards */
    uint64_t np;
    /* subscriptions of my nodes: for node i, ranks sub_rank[sub_off[i] .. sub_off[i+1]) */
    sub_rec *subs; size_t nsubs, capsubs;
    /* remote refs I need, sorted; their messages land in rows L + slot of the message table */
    uint64_t *remote; uint64_t nremote;
    float *mtab;           /* (L + nremote, d) */
    uint64_t received;
} infer_ctx;

static int sub_sink(void *c, int src, const void *rec, size_t len) {
    infer_ctx *x = c;
    (void)src;
    if (len != sizeof(sub_rec)) return sp_err(SP_EINTERNAL, "infer: subscription record of %zu bytes", len);
    if (sp_grow((void **)&x->subs, &x->capsubs, x->nsubs + 1, sizeof *x->subs)) return SP_ENOMEM;
    memcpy(&x->subs[x->nsubs++], rec, len);
    return SP_OK;
}

static int msg_sink(void *c, int src, const void *rec, size_t len) {
    infer_ctx *x = c;
    if (len != 8 + 4 * (size_t)x->d) return sp_err(SP_EINTERNAL, "infer: message of %zu bytes", len);
    uint64_t local;
    memcpy(&local, rec, 8);
    uint64_t key = (uint64_t)src << 41 | local; /* local carries the type bit */
    uint64_t lo = 0, hi = x->nremote;
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (x->remote[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    if (lo == x->nremote || x->remote[lo] != key) return sp_err(SP_EINTERNAL, "infer: unrequested message from rank %d", src);
    memcpy(x->mtab + (x->L + lo) * (size_t)x->d, (const char *)rec + 8, 4 * (size_t)x->d);
    x->received++;
    return SP_OK;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
static int cmp_sub(const void *a, const void *b) {
    const sub_rec *x = a, *y = b;
    if (x->ref != y->ref) return x->ref < y->ref ? -1 : 1;
    return (x->rank > y->rank) - (x->rank < y->rank);
}


int sp_infer_run(const sp_run_ctx *ctx, sp_stage_result *res) {
    const sp_config *cfg = ctx->cfg;
    int size, rc = sp_stage_ranks(ctx, "walks", &size), isize = 0;
    if (!rc) rc = sp_stage_ranks(ctx, "ingest", &isize);
    if (!rc && (size != ctx->size || isize != ctx->size))
        rc = sp_err(SP_EUSAGE, "infer runs on the rank count of ingest/walks (%d/%d), not %d: rerun with -np %d or "
                    "rerun the earlier stages", isize, size, ctx->size, size);
    rc = sp_dist_agree(rc);
    if (rc) return rc;
    int tp = (int)sp_config_int(cfg, "sage", "nbr_pins"), tb = (int)sp_config_int(cfg, "sage", "nbr_boards");
    char path[PATH_MAX + 64];
    sp_ckpt C = {0};
    sp_sfile_r *wf = NULL, *gf = NULL, *inf = NULL;
    sp_stage_path(ctx, "train", "checkpoint.bin", path, sizeof path);
    rc = sp_ckpt_read(path, &C);
    if (!rc) {
        sp_stage_part(ctx, "walks", ctx->rank, size, NULL, 0, path, sizeof path);
        rc = sp_sfile_open(&wf, path, "walks");
    }
    if (!rc) {
        sp_stage_part(ctx, "graph", ctx->rank, size, NULL, 0, path, sizeof path);
        rc = sp_sfile_open(&gf, path, "graph");
    }
    if (!rc) {
        sp_stage_part(ctx, "ingest", ctx->rank, size, NULL, 0, path, sizeof path);
        rc = sp_sfile_open(&inf, path, "ingest");
    }
    rc = sp_dist_agree(rc);
    infer_ctx X = {.d = C.P.c.d, .size = size};
    const uint64_t *pins = NULL, *boards = NULL, *off[4] = {0};
    const sp_nbr *v[4] = {0};
    const uint32_t *pdeg = NULL, *bdeg = NULL;
    uint64_t np = 0, nb = 0, c;
    static const char *const TAB[4] = {"pin_pins", "pin_boards", "board_pins", "board_boards"};
    if (!rc) rc = sp_sfile_get(wf, "pin_ids", 8, (const void **)&pins, &np);
    if (!rc) rc = sp_sfile_get(wf, "board_ids", 8, (const void **)&boards, &nb);
    if (!rc) rc = sp_sfile_get(gf, "pin_deg", 4, (const void **)&pdeg, &c);
    if (!rc && c != np) rc = sp_err(SP_EFORMAT, "graph part %d: pin degrees do not match the walks part", ctx->rank);
    if (!rc) rc = sp_sfile_get(gf, "board_deg", 4, (const void **)&bdeg, &c);
    if (!rc && c != nb) rc = sp_err(SP_EFORMAT, "graph part %d: board degrees do not match the walks part", ctx->rank);
    for (int t = 0; t < 4 && !rc; t++) {
        char tag[16];
        snprintf(tag, sizeof tag, "%s_off", TAB[t]);
        rc = sp_sfile_get(wf, tag, 8, (const void **)&off[t], &c);
        uint64_t nv;
        if (!rc) rc = sp_sfile_get(wf, TAB[t], sizeof(sp_nbr), (const void **)&v[t], &nv);
        if (!rc && (c != (t >= 2 ? nb : np) + 1 || off[t][c - 1] != nv))
            rc = sp_err(SP_EFORMAT, "walks part %d: table %s is inconsistent", ctx->rank, TAB[t]);
    }
    X.np = np;
    X.L = np + nb;
    uint64_t L = X.L;
    int d = X.d, K = C.P.c.layers;
    /* local graph: neighbour lists as references, truncated like sage_data (same renormalised weights) */
    uint64_t *pn_off = calloc(L + 1, 8), *bn_off = calloc(L + 1, 8);
    uint64_t *pn_ref = NULL, *bn_ref = NULL;
    float *pn_w = NULL, *bn_w = NULL, *logdeg = malloc(4 * (L + 1));
    if (!rc && (!pn_off || !bn_off || !logdeg)) rc = SP_ENOMEM;
    for (uint64_t i = 0; !rc && i < L; i++) {
        int isb = i >= np;
        uint64_t li = isb ? i - np : i;
        const uint64_t *o1 = off[isb ? 2 : 0], *o2 = off[isb ? 3 : 1];
        uint64_t a = o1[li + 1] - o1[li], b = o2[li + 1] - o2[li];
        pn_off[i + 1] = pn_off[i] + (a < (uint64_t)tp ? a : (uint64_t)tp);
        bn_off[i + 1] = bn_off[i] + (b < (uint64_t)tb ? b : (uint64_t)tb);
        logdeg[i] = logf(1.f + (float)(isb ? bdeg[li] : pdeg[li]));
    }
    if (!rc) {
        pn_ref = malloc(8 * (pn_off[L] + 1)), bn_ref = malloc(8 * (bn_off[L] + 1));
        pn_w = malloc(4 * (pn_off[L] + 1)), bn_w = malloc(4 * (bn_off[L] + 1));
        if (!pn_ref || !bn_ref || !pn_w || !bn_w) rc = SP_ENOMEM;
    }
    for (uint64_t i = 0; !rc && i < L; i++) {
        int isb = i >= np;
        uint64_t li = isb ? i - np : i;
        for (int s = 0; s < 2; s++) {
            const sp_nbr *vv = v[(isb ? 2 : 0) + s];
            const uint64_t *o = off[(isb ? 2 : 0) + s];
            uint64_t *ro = s ? bn_off : pn_off, *rr = s ? bn_ref : pn_ref;
            float *ww = s ? bn_w : pn_w;
            uint64_t m = sp_nbr_weights(vv + o[li], o[li + 1] - o[li], (uint64_t)(s ? tb : tp), ww + ro[i]);
            for (uint64_t j = 0; j < m; j++) {
                const sp_nbr *e = &vv[o[li] + j];
                int er = sp_gref_rank(e->ref);
                if (er >= size) {
                    rc = sp_err(SP_EFORMAT, "walks part %d: neighbour on rank %d of %d", ctx->rank, er, size);
                    break;
                }
                rr[ro[i] + j] = nref(er, s, sp_gref_local(e->ref));
            }
        }
    }
    /* remote refs I need, and subscriptions to the owners */
    uint64_t nrefs = rc ? 0 : pn_off[L] + bn_off[L];
    uint64_t *need = rc ? NULL : malloc(8 * (nrefs + 1));
    if (!rc && !need) rc = SP_ENOMEM;
    uint64_t nn = 0;
    for (uint64_t j = 0; !rc && j < pn_off[L]; j++)
        if ((int)(pn_ref[j] >> 41) != ctx->rank) need[nn++] = pn_ref[j];
    for (uint64_t j = 0; !rc && j < bn_off[L]; j++)
        if ((int)(bn_ref[j] >> 41) != ctx->rank) need[nn++] = bn_ref[j];
    if (!rc) {
        qsort(need, nn, 8, cmp_u64);
        uint64_t u = 0;
        for (uint64_t j = 0; j < nn; j++)
            if (!u || need[u - 1] != need[j]) need[u++] = need[j];
        X.remote = need;
        X.nremote = u;
    }
    rc = sp_dist_agree(rc);
    size_t buffer = (size_t)sp_config_int(cfg, "pipeline", "shuffle_buffer_mb") << 20;
    sp_shuffle *sh = NULL;
    if (!rc) rc = sp_shuffle_new(&sh, buffer, sub_sink, &X);
    uint64_t ii = 0;
    for (int all = 0; !rc && !all;) {
        int lrc = SP_OK;
        for (; ii < X.nremote && !lrc && !sp_shuffle_full(sh); ii++) {
            uint64_t ref = X.remote[ii];
            sub_rec s = {ref & ((1ULL << 41) - 1), (uint32_t)ctx->rank, 0};
            lrc = sp_shuffle_put(sh, (int)(ref >> 41), &s, sizeof s);
        }
        rc = sp_shuffle_exchange(sh, ii == X.nremote, lrc, &all);
    }
    sp_shuffle_free(sh);
    sh = NULL;
    if (!rc) qsort(X.subs, X.nsubs, sizeof *X.subs, cmp_sub);
    for (size_t j = 0; !rc && j < X.nsubs; j++) {
        uint64_t t = X.subs[j].ref >> 40, loc = X.subs[j].ref & ((1ULL << 40) - 1);
        if ((t ? np + loc : loc) >= L || (t ? loc >= nb : loc >= np))
            rc = sp_err(SP_EINTERNAL, "infer: subscription to a node this rank does not own");
    }
    rc = sp_dist_agree(rc);
    /* index lists into the message table [own (L) ; remote (nremote)] */
    uint32_t *pidx = NULL, *bidx = NULL;
    if (!rc) {
        pidx = malloc(4 * (pn_off[L] + 1)), bidx = malloc(4 * (bn_off[L] + 1));
        X.mtab = malloc(4 * (size_t)d * (L + X.nremote + 1));
        if (!pidx || !bidx || !X.mtab) rc = SP_ENOMEM;
        if (!rc && L + X.nremote >= UINT32_MAX) rc = sp_err(SP_EINPUT, "infer: too many nodes on one rank");
    }
    for (int s = 0; !rc && s < 2; s++) {
        uint64_t *ro = s ? bn_off : pn_off, *rr = s ? bn_ref : pn_ref;
        uint32_t *ix = s ? bidx : pidx;
        for (uint64_t j = 0; j < ro[L]; j++) {
            uint64_t ref = rr[j];
            if ((int)(ref >> 41) == ctx->rank) {
                uint64_t t = (ref >> 40) & 1, loc = ref & ((1ULL << 40) - 1);
                ix[j] = (uint32_t)(t ? np + loc : loc);
            } else {
                uint64_t lo = 0, hi = X.nremote;
                while (lo < hi) {
                    uint64_t mid = (lo + hi) / 2;
                    if (X.remote[mid] < ref) lo = mid + 1;
                    else hi = mid;
                }
                ix[j] = (uint32_t)(L + lo);
            }
        }
    }
    /* layer-0 inputs of my nodes: a local parameter view with my id rows, local graph view with my features */
    sp_sage_params PL = C.P;
    float *emb_local = NULL, *dense_local = NULL;
    uint64_t *tok_off = NULL;
    uint32_t *tok_row = NULL;
    sp_idrow *order = NULL;
    uint64_t missing = 0;
    if (!rc && C.P.emb) {
        order = malloc(sizeof *order * (C.P.n + 1));
        emb_local = calloc(L * (size_t)d + 1, 4);
        if (!order || !emb_local) rc = SP_ENOMEM;
        for (int t = 0; !rc && t < 2; t++) {
            uint64_t a = t ? C.npins : 0, b = t ? C.P.n : C.npins;
            for (uint64_t i = a; i < b; i++) order[i] = (sp_idrow){C.ids[i], i};
            sp_idrow_sort(order + a, b - a);
        }
        for (uint64_t i = 0; !rc && i < L; i++) {
            int t = i >= np;
            uint64_t row = t ? sp_idrow_find(order + C.npins, C.P.n - C.npins, boards[i - np])
                             : sp_idrow_find(order, C.npins, pins[i]);
            if (row == UINT64_MAX) missing++; /* a node the model never saw: id vector 0 (content only) */
            else memcpy(emb_local + i * (size_t)d, C.P.emb + row * (size_t)d, 4 * (size_t)d);
        }
        PL.emb = emb_local;
    }
    sp_sage_graph g = {.n = L, .npins = np, .logdeg = logdeg};
    if (!rc && (C.P.c.tok_rows || C.P.c.dense_dim)) {
        const uint64_t *tid, *toff, *th, *did, *meta;
        const float *dense;
        uint64_t ntid, ntoff, nth, ndid, nd, nm;
        if (C.P.c.tok_rows) {
            rc = sp_sfile_get(inf, "tok_ids", 8, (const void **)&tid, &ntid);
            if (!rc) rc = sp_sfile_get(inf, "tok_off", 8, (const void **)&toff, &ntoff);
            if (!rc) rc = sp_sfile_get(inf, "tok_hash", 8, (const void **)&th, &nth);
            if (!rc && (ntoff != ntid + 1 || toff[ntid] != nth)) rc = sp_err(SP_EFORMAT, "ingest part: token tables");
            tok_off = calloc(np + 1, 8);
            tok_row = malloc(4 * (nth + 1));
            if (!rc && (!tok_off || !tok_row)) rc = SP_ENOMEM;
            /* pins and tok_ids are both sorted: merge */
            uint64_t j = 0, k = 0;
            for (uint64_t i = 0; !rc && i < np; i++) {
                while (j < ntid && tid[j] < pins[i]) j++;
                if (j < ntid && tid[j] == pins[i])
                    for (uint64_t q = toff[j]; q < toff[j + 1]; q++)
                        tok_row[k++] = (uint32_t)(th[q] % (uint64_t)C.P.c.tok_rows);
                tok_off[i + 1] = k;
            }
            g.tok_off = tok_off, g.tok_row = tok_row;
        }
        if (!rc && C.P.c.dense_dim) {
            rc = sp_sfile_get(inf, "meta", 8, (const void **)&meta, &nm);
            if (!rc && (nm < 3 || meta[2] != (uint64_t)C.P.c.dense_dim))
                rc = sp_err(SP_EFORMAT, "infer: dense features of width %" PRIu64 ", the model has %d",
                            nm >= 3 ? meta[2] : 0, C.P.c.dense_dim);
            if (!rc) rc = sp_sfile_get(inf, "dense_ids", 8, (const void **)&did, &ndid);
            if (!rc) rc = sp_sfile_get(inf, "dense", (uint32_t)(4 * C.P.c.dense_dim), (const void **)&dense, &nd);
            dense_local = calloc(np * (size_t)C.P.c.dense_dim + 1, 4);
            if (!rc && !dense_local) rc = SP_ENOMEM;
            uint64_t j = 0;
            for (uint64_t i = 0; !rc && i < np; i++) {
                while (j < ndid && did[j] < pins[i]) j++;
                if (j < ndid && did[j] == pins[i])
                    memcpy(dense_local + i * (size_t)C.P.c.dense_dim, dense + j * (size_t)C.P.c.dense_dim,
                           4 * (size_t)C.P.c.dense_dim);
            }
            g.dense_dim = C.P.c.dense_dim, g.dense = dense_local;
        }
    }
    rc = sp_dist_agree(rc);
    /* layers, on ctx's backend: H, Hn, M (the message table: my L rows then the remote ones), X, Z, nrm and the
     * neighbour lists live there; each layer's local messages go to the host for the shuffle and the whole
     * table comes back (on the CPU these copies are no-ops: the buffers are the host's) */
    const nn_backend *be = nn_backend_or_cpu(ctx->be);
    sp_sage_dev DP = {0};
    float *H = NULL, *Hn = NULL, *Xb = NULL, *Zb = NULL, *nrm = NULL, *Mt = NULL;
    const sp_sage_lists lists = {pn_off, bn_off, pidx, bidx, pn_w, bn_w};
    sp_sage_lists DL = {0};
    uint32_t *all = NULL;
    size_t Ld = L * (size_t)d + 1, mrows = L + X.nremote;
    if (!rc) {
        all = malloc(4 * (L + 1));
        float *h0 = malloc(4 * Ld);
        if (!all || !h0) rc = SP_ENOMEM;
        if (!rc) {
            for (uint64_t i = 0; i < L; i++) all[i] = (uint32_t)i;
            sp_sage_input(&PL, &g, all, (uint32_t)L, h0);
            rc = sp_sage_dev_init(&DP, be, &PL);
            if (!rc) rc = sp_sage_lists_put(be, &lists, L, &DL);
        }
        if (!rc) {
            H = nn_be_upload(be, h0, 4 * Ld), Hn = be->alloc(4 * Ld);
            Xb = be->alloc(4 * 3 * Ld), Zb = be->alloc(4 * Ld), nrm = be->alloc(4 * (L + 1));
            Mt = nn_be_mirror(be, X.mtab, 4 * (mrows * (size_t)d + 1), 0);
            if (!H || !Hn || !Xb || !Zb || !nrm || !Mt)
                rc = sp_err(SP_ENOMEM, "infer: buffers of %" PRIu64 " nodes on %s", L, be->device);
        }
        free(h0);
    }
    rc = sp_dist_agree(rc);
    uint64_t sent = 0, computed = 0;
    size_t mlen = 8 + 4 * (size_t)d;
    char *rec = malloc(mlen);
    if (!rec) rc = SP_ENOMEM;
    for (int k = 1; k <= K && !rc; k++) {
        sp_sage_message(&DP, k, (uint32_t)L, H, Mt);
        be->get(X.mtab, Mt, 4 * L * (size_t)d);
        rc = be->sync();
        rc = sp_dist_agree(rc);
        if (rc) break;
        computed += L;
        X.received = 0;
        rc = sp_shuffle_new(&sh, buffer, msg_sink, &X);
        size_t j = 0;
        for (int alld = 0; !rc && !alld;) {
            int lrc = SP_OK;
            for (; j < X.nsubs && !lrc && !sp_shuffle_full(sh); j++) {
                uint64_t ref = X.subs[j].ref, t = ref >> 40, loc = ref & ((1ULL << 40) - 1);
                uint64_t i = t ? np + loc : loc;
                memcpy(rec, &ref, 8);
                memcpy(rec + 8, X.mtab + i * (size_t)d, 4 * (size_t)d);
                lrc = sp_shuffle_put(sh, (int)X.subs[j].rank, rec, mlen);
            }
            rc = sp_shuffle_exchange(sh, j == X.nsubs, lrc, &alld);
        }
        sent += X.nsubs;
        sp_shuffle_free(sh);
        sh = NULL;
        if (!rc && X.received != X.nremote)
            rc = sp_err(SP_EINTERNAL, "infer: layer %d received %" PRIu64 " of %" PRIu64 " messages", k, X.received,
                        X.nremote);
        rc = sp_dist_agree(rc);
        if (rc) break;
        be->put(Mt + L * (size_t)d, X.mtab + L * (size_t)d, 4 * X.nremote * (size_t)d);
        sp_sage_convolve(&DP, k, (uint32_t)L, H, Mt, DL.poff, DL.pidx, DL.pw, DL.boff, DL.bidx, DL.bw, Xb, Zb, nrm, Hn);
        float *t = H;
        H = Hn, Hn = t;
    }
    free(rec);
    float *out = NULL;
    if (!rc) {
        out = malloc(4 * Ld);
        if (!out) rc = SP_ENOMEM;
        else {
            float *A = Xb, *Y = Zb, *O = Xb + Ld; /* reuse */
            sp_sage_head(&DP, (uint32_t)L, H, A, Y, nrm, O);
            be->get(out, O, 4 * L * (size_t)d);
            rc = be->sync();
        }
    }
    rc = sp_dist_agree(rc);
    if (!rc) {
        char name[96];
        sp_stage_part(ctx, "infer", ctx->rank, ctx->size, name, sizeof name, path, sizeof path);
        sp_sfile_w *w;
        uint64_t meta[4] = {(uint64_t)ctx->rank, (uint64_t)ctx->size, (uint64_t)d, 0};
        rc = sp_sfile_create(&w, path, "emb");
        if (!rc) {
            rc = sp_sfile_put(w, "meta", 8, meta, 4);
            if (!rc) rc = sp_sfile_put(w, "pin_ids", 8, pins, np);
            if (!rc) rc = sp_sfile_put(w, "pin_vecs", 4, out, np * (size_t)d);
            if (!rc) rc = sp_sfile_put(w, "board_ids", 8, boards, nb);
            if (!rc) rc = sp_sfile_put(w, "board_vecs", 4, out + np * (size_t)d, nb * (size_t)d);
            rc = sp_stage_commit_part(res, w, rc, name, path);
        }
        rc = sp_dist_agree(rc);
    }
    sp_stage_count(res, "pins", np);
    sp_stage_count(res, "boards", nb);
    sp_stage_count(res, "messages_computed", computed);
    sp_stage_count(res, "messages_sent", sent);
    sp_stage_count(res, "nodes_without_id_row", missing);
    SP_INFO("infer_done", "pins=%" PRIu64 " boards=%" PRIu64 " layers=%d messages_computed=%" PRIu64
            " messages_sent=%" PRIu64 " remote_needed=%" PRIu64, np, nb, K, computed, sent, X.nremote);
    free(out);
    be->free(H), be->free(Hn), be->free(Xb), be->free(Zb), be->free(nrm);
    nn_be_unmirror(be, Mt, X.mtab);
    sp_sage_lists_free(be, &lists, &DL);
    sp_sage_dev_free(&DP);
    free(all);
    free(pidx);
    free(bidx);
    free(X.mtab);
    free(X.subs);
    free(X.remote);
    free(pn_off);
    free(bn_off);
    free(pn_ref);
    free(bn_ref);
    free(pn_w);
    free(bn_w);
    free(logdeg);
    free(emb_local);
    free(dense_local);
    free(tok_off);
    free(tok_row);
    free(order);
    sp_sfile_close(wf);
    sp_sfile_close(gf);
    sp_sfile_close(inf);
    sp_ckpt_free(&C);
    return rc;
}

void sp_emb_set_free(sp_emb_set *e) {
    for (int t = 0; t < 2; t++) free(e->ids[t]), free(e->vec[t]);
    memset(e, 0, sizeof *e);
}

int sp_infer_load(const sp_run_ctx *ctx, sp_emb_set *e) { return sp_infer_load_parts(ctx, 0, 1, e); }

int sp_infer_load_parts(const sp_run_ctx *ctx, int rank, int size, sp_emb_set *e) {
    memset(e, 0, sizeof *e);
    int parts, rc = sp_stage_ranks(ctx, "infer", &parts);
    char path[PATH_MAX + 64];
    size_t capi[2] = {0, 0}, capv[2] = {0, 0};
    for (int r = rank; r < parts && !rc; r += size) {
        sp_sfile_r *f;
        sp_stage_part(ctx, "infer", r, parts, NULL, 0, path, sizeof path);
        if ((rc = sp_sfile_open(&f, path, "emb"))) break;
        const uint64_t *meta;
        uint64_t nm;
        rc = sp_sfile_get(f, "meta", 8, (const void **)&meta, &nm);
        if (!rc && (nm != 4 || meta[2] < 1 || meta[2] > 4096 || (e->d && (uint64_t)e->d != meta[2])))
            rc = sp_err(SP_EFORMAT, "%s: bad meta", path);
        if (!rc) e->d = (int)meta[2];
        for (int t = 0; t < 2 && !rc; t++) {
            const uint64_t *ids;
            const float *v;
            uint64_t n, nv, d = (uint64_t)e->d;
            rc = sp_sfile_get(f, t ? "board_ids" : "pin_ids", 8, (const void **)&ids, &n);
            if (!rc) rc = sp_sfile_get(f, t ? "board_vecs" : "pin_vecs", 4, (const void **)&v, &nv);
            if (!rc && nv != n * d) rc = sp_err(SP_EFORMAT, "%s: %" PRIu64 " values for %" PRIu64 " ids", path, nv, n);
            if (!rc) rc = sp_grow((void **)&e->ids[t], &capi[t], e->n[t] + n, 8);
            if (!rc) rc = sp_grow((void **)&e->vec[t], &capv[t], (e->n[t] + n) * d, 4);
            if (!rc) {
                memcpy(e->ids[t] + e->n[t], ids, 8 * n);
                memcpy(e->vec[t] + e->n[t] * d, v, 4 * n * d);
                e->n[t] += n;
            }
        }
        sp_sfile_close(f);
    }
    if (rc) sp_emb_set_free(e);
    return rc;
}

/* One dump line: "p<id>" / "b<id>" and the values (%.6g). */
int sp_emb_line(sp_lines *lines, char type, uint64_t id, const float *v, int d) {
    char buf[64 * 1024];
    size_t k = (size_t)snprintf(buf, sizeof buf, "%c%" PRIu64, type, id);
    for (int j = 0; j < d && k < sizeof buf - 20; j++) k += (size_t)snprintf(buf + k, sizeof buf - k, " %.6g", v[j]);
    return sp_lines_addf(lines, "%s", buf);
}

int sp_infer_dump(const sp_run_ctx *ctx, FILE *out) {
    sp_emb_set e;
    int rc = sp_infer_load(ctx, &e);
    sp_lines lines = {0};
    for (int t = 0; t < 2 && !rc; t++)
        for (uint64_t i = 0; !rc && i < e.n[t]; i++)
            rc = sp_emb_line(&lines, t ? 'b' : 'p', e.ids[t][i], e.vec[t] + i * e.d, e.d);
    if (!rc) sp_lines_sort_write(&lines, out);
    sp_lines_free(&lines);
    sp_emb_set_free(&e);
    return rc;
}

int sp_infer_dump_reference(const sp_run_ctx *ctx, FILE *out) {
    char path[PATH_MAX + 64];
    sp_ckpt C;
    sp_sage_data D;
    sp_stage_path(ctx, "train", "checkpoint.bin", path, sizeof path);
    int rc = sp_ckpt_read(path, &C);
    if (rc) return rc > 0 ? sp_err(SP_EUSAGE, "%s: no checkpoint (run train first)", path) : rc;
    rc = sp_sage_data_load(ctx, (int)sp_config_int(ctx->cfg, "sage", "nbr_pins"),
                           (int)sp_config_int(ctx->cfg, "sage", "nbr_boards"), C.P.c.tok_rows, 0, 1, &D);
    if (rc) {
        sp_ckpt_free(&C);
        return rc;
    }
    if (C.P.n != D.n || C.npins != D.npins || memcmp(C.ids, D.ext, 8 * D.n))
        rc = sp_err(SP_EUSAGE, "%s: the checkpoint's nodes differ from this date's walks (rerun train)", path);
    size_t d = (size_t)C.P.c.d;
    float *e = rc ? NULL : malloc(4 * (D.n * d + 1));
    if (!rc && !e) rc = SP_ENOMEM;
    if (!rc) rc = sp_sage_embed_all(nn_backend_or_cpu(ctx->be), &C.P, &D.g, e);
    sp_lines lines = {0};
    for (uint64_t u = 0; !rc && u < D.n; u++) rc = sp_emb_line(&lines, u >= D.npins ? 'b' : 'p', D.ext[u], e + u * d, (int)d);
    if (!rc) sp_lines_sort_write(&lines, out);
    sp_lines_free(&lines);
    free(e);
    sp_sage_data_free(&D);
    sp_ckpt_free(&C);
    return rc;
}
