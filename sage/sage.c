/* sage: parameters, minibatch plans, forward and backward of the PinSage
 * encoder (sage.h). Every layer is plain nn/ ops; the plan re-indexes each
 * level so that a node's message ReLU(Q h + q) is computed once per level. */
#include "sage.h"

#include <math.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static size_t psize(const sp_sage_cfg *c, int which) {
    size_t d = (size_t)c->d;
    switch (which) {
    case SP_P_TYPEB: case SP_P_WDEG: return 2 * d;
    case SP_P_DENSE: return (size_t)c->dense_dim * d;
    case SP_P_Q: case SP_P_G1: case SP_P_G2: return d * d;
    case SP_P_W: return 3 * d * d;
    default: return d; /* QB, WB, G1B */
    }
}
static int per_layer(int which) { return which == SP_P_Q || which == SP_P_QB || which == SP_P_W || which == SP_P_WB; }

static int layout(sp_sage_params *P, const sp_sage_cfg *c, uint64_t n) {
    if (c->d < 1 || c->d > 4096 || c->layers < 0 || c->layers > SP_SAGE_MAXK || c->tok_rows < 0 || c->dense_dim < 0)
        return sp_err(SP_ECONFIG, "sage: bad dimensions (d %d, layers %d)", c->d, c->layers);
    memset(P, 0, sizeof *P);
    P->c = *c;
    P->n = n;
    size_t tot = 0;
    for (int w = 0; w < SP_P_COUNT; w++) tot += psize(c, w) * (per_layer(w) ? (size_t)c->layers : 1);
    P->ndense = tot;
    P->dense = calloc(tot ? tot : 1, sizeof(float));
    if (c->id_emb) P->emb = calloc(n * (size_t)c->d + 1, sizeof(float));
    if (c->tok_rows) P->tok = calloc((size_t)c->tok_rows * c->d + 1, sizeof(float));
    if (!P->dense || (c->id_emb && !P->emb) || (c->tok_rows && !P->tok)) {
        sp_sage_params_free(P);
        return SP_ENOMEM;
    }
    float *q = P->dense;
    for (int w = 0; w < SP_P_COUNT; w++)
        for (int k = 0; k < (per_layer(w) ? c->layers : 1); k++) {
            P->p[w][k] = q;
            q += psize(c, w);
        }
    return SP_OK;
}

int sp_sage_params_zeros(sp_sage_params *P, const sp_sage_cfg *c, uint64_t n) { return layout(P, c, n); }

int sp_sage_params_init(sp_sage_params *P, const sp_sage_cfg *c, uint64_t n, sp_rng *rng) {
    int rc = layout(P, c, n);
    if (rc) return rc;
    int d = c->d;
    for (int k = 0; k < c->layers; k++) {
        nn_init_xavier(P->p[SP_P_Q][k], d, d, rng);
        nn_init_xavier(P->p[SP_P_W][k], 3 * d, d, rng);
    }
    nn_init_xavier(P->p[SP_P_G1][0], d, d, rng);
    nn_init_xavier(P->p[SP_P_G2][0], d, d, rng);
    if (c->dense_dim) nn_init_xavier(P->p[SP_P_DENSE][0], c->dense_dim, d, rng);
    if (P->emb) nn_init_normal(P->emb, n * (size_t)d, 0.1f, rng);
    if (P->tok) nn_init_normal(P->tok, (size_t)c->tok_rows * d, 0.1f, rng);
    return SP_OK;
}

void sp_sage_params_average(sp_sage_params *A, const sp_sage_params *P, int k) {
    nn_running_mean(A->dense, P->dense, P->ndense, k);
    if (P->emb) nn_running_mean(A->emb, P->emb, (size_t)P->n * (size_t)P->c.d, k);
    if (P->tok) nn_running_mean(A->tok, P->tok, (size_t)P->c.tok_rows * (size_t)P->c.d, k);
}

void sp_sage_params_copy(sp_sage_params *dst, const sp_sage_params *src) {
    memcpy(dst->dense, src->dense, 4 * src->ndense);
    if (src->emb) memcpy(dst->emb, src->emb, 4 * (size_t)src->n * (size_t)src->c.d);
    if (src->tok) memcpy(dst->tok, src->tok, 4 * (size_t)src->c.tok_rows * (size_t)src->c.d);
}

void sp_sage_params_free(sp_sage_params *P) {
    free(P->dense);
    free(P->emb);
    free(P->tok);
    memset(P, 0, sizeof *P);
}

/* ---------- plans ---------- */

/* Position of node v in the level being built, appending it when new. */
static inline uint32_t plan_add(sp_sage_plan *pl, int lvl, uint32_t v) {
    if (pl->stamp[v] != pl->epoch) {
        pl->stamp[v] = pl->epoch;
        pl->pos[v] = pl->n[lvl];
        pl->node[lvl][pl->n[lvl]++] = v;
    }
    return pl->pos[v];
}

int sp_sage_plan_build(sp_sage_plan *pl, const sp_sage_graph *g, int K, const uint32_t *targets, uint32_t nt) {
    if (K < 0 || K > SP_SAGE_MAXK) return sp_err(SP_ECONFIG, "sage: %d layers (0..%d)", K, SP_SAGE_MAXK);
    if (!pl->pos || pl->posn < g->n + 1) {
        free(pl->pos);
        free(pl->stamp);
        pl->pos = malloc(sizeof *pl->pos * (g->n + 1));
        pl->stamp = calloc(g->n + 1, sizeof *pl->stamp);
        pl->posn = g->n + 1;
        pl->epoch = 0;
        if (!pl->pos || !pl->stamp) {
            free(pl->pos), free(pl->stamp);
            pl->pos = NULL, pl->stamp = NULL, pl->posn = 0;
            return SP_ENOMEM;
        }
    }
    pl->K = K;
    if (sp_grow((void **)&pl->node[K], &pl->cap[K][0], nt, sizeof(uint32_t))) return SP_ENOMEM;
    memcpy(pl->node[K], targets, sizeof *targets * nt);
    pl->n[K] = nt;
    for (int k = K; k >= 1; k--) {
        uint32_t nk = pl->n[k];
        const uint32_t *nodes = pl->node[k];
        size_t ep = 0, eb = 0;
        for (uint32_t i = 0; i < nk; i++) {
            ep += g->pn_off[nodes[i] + 1] - g->pn_off[nodes[i]];
            eb += g->bn_off[nodes[i] + 1] - g->bn_off[nodes[i]];
        }
        size_t *cap = pl->cap[k];
        if (sp_grow((void **)&pl->node[k - 1], &pl->cap[k - 1][0], nk + ep + eb, sizeof(uint32_t)) ||
            sp_grow((void **)&pl->self[k], &cap[1], nk, sizeof(uint32_t)) ||
            sp_grow((void **)&pl->poff[k], &cap[2], nk + 1, sizeof(uint64_t)) ||
            sp_grow((void **)&pl->boff[k], &cap[3], nk + 1, sizeof(uint64_t)) ||
            sp_grow((void **)&pl->pidx[k], &cap[4], ep, sizeof(uint32_t)) ||
            sp_grow((void **)&pl->pw[k], &cap[5], ep, sizeof(float)) ||
            sp_grow((void **)&pl->bidx[k], &cap[6], eb, sizeof(uint32_t)) ||
            sp_grow((void **)&pl->bw[k], &cap[7], eb, sizeof(float)))
            return SP_ENOMEM;
        if (++pl->epoch == 0) { /* wrapped: clear stamps */
            memset(pl->stamp, 0, sizeof *pl->stamp * pl->posn);
            pl->epoch = 1;
        }
        pl->n[k - 1] = 0;
        uint64_t np = 0, nb = 0;
        pl->poff[k][0] = pl->boff[k][0] = 0;
        for (uint32_t i = 0; i < nk; i++) {
            uint32_t u = nodes[i];
            pl->self[k][i] = plan_add(pl, k - 1, u);
            for (uint64_t j = g->pn_off[u]; j < g->pn_off[u + 1]; j++) {
                pl->pidx[k][np] = plan_add(pl, k - 1, g->pn_idx[j]);
                pl->pw[k][np++] = g->pn_w[j];
            }
            for (uint64_t j = g->bn_off[u]; j < g->bn_off[u + 1]; j++) {
                pl->bidx[k][nb] = plan_add(pl, k - 1, g->bn_idx[j]);
                pl->bw[k][nb++] = g->bn_w[j];
            }
            pl->poff[k][i + 1] = np;
            pl->boff[k][i + 1] = nb;
        }
    }
    return SP_OK;
}

void sp_sage_plan_free(sp_sage_plan *pl) {
    for (int k = 0; k <= SP_SAGE_MAXK; k++) {
        free(pl->node[k]);
        free(pl->self[k]);
        free(pl->poff[k]);
        free(pl->pidx[k]);
        free(pl->pw[k]);
        free(pl->boff[k]);
        free(pl->bidx[k]);
        free(pl->bw[k]);
    }
    free(pl->pos);
    free(pl->stamp);
    memset(pl, 0, sizeof *pl);
}

/* ---------- layers ---------- */

void sp_sage_input(const sp_sage_params *P, const sp_sage_graph *g, const uint32_t *nodes, uint32_t n, float *h) {
    int d = P->c.d;
    const float *tb = P->p[SP_P_TYPEB][0], *wd = P->p[SP_P_WDEG][0];
    for (uint32_t i = 0; i < n; i++) {
        uint32_t u = nodes[i];
        int t = u >= g->npins;
        float *hi = h + (size_t)i * d;
        float ld = g->logdeg[u];
        const float *e = P->emb ? P->emb + (size_t)(g->row ? g->row[u] : u) * d : NULL;
        for (int j = 0; j < d; j++) hi[j] = tb[t * d + j] + ld * wd[t * d + j] + (e ? e[j] : 0.f);
        if (t) continue;
        if (P->tok && g->tok_off) {
            uint64_t a = g->tok_off[u], b = g->tok_off[u + 1];
            float s = b > a ? 1.f / (float)(b - a) : 0.f;
            for (uint64_t r = a; r < b; r++) {
                const float *tr = P->tok + (size_t)g->tok_row[r] * d;
                for (int j = 0; j < d; j++) hi[j] += s * tr[j];
            }
        }
        if (P->c.dense_dim && g->dense) {
            const float *x = g->dense + (size_t)u * g->dense_dim, *W = P->p[SP_P_DENSE][0];
            for (int f = 0; f < g->dense_dim; f++)
                if (x[f] != 0.f)
                    for (int j = 0; j < d; j++) hi[j] += x[f] * W[(size_t)f * d + j];
        }
    }
}

int sp_sage_dev_init(sp_sage_dev *D, const nn_backend *be, const sp_sage_params *P) {
    D->be = be;
    D->P = *P;
    D->P.emb = D->P.tok = NULL;
    D->owned = NULL;
    if (be->host_memory) return SP_OK;
    D->owned = nn_be_upload(be, P->dense, sizeof(float) * P->ndense);
    if (!D->owned) return sp_err(SP_ENOMEM, "sage: %zu parameters on %s", P->ndense, be->device);
    D->P.dense = D->owned;
    for (int t = 0; t < SP_P_COUNT; t++)
        for (int k = 0; k < SP_SAGE_MAXK; k++)
            if (P->p[t][k]) D->P.p[t][k] = D->owned + (P->p[t][k] - P->dense);
    return SP_OK;
}

void sp_sage_dev_put(sp_sage_dev *D, const sp_sage_params *P) {
    if (D->owned) D->be->put(D->owned, P->dense, sizeof(float) * P->ndense);
}

void sp_sage_dev_free(sp_sage_dev *D) {
    if (D->owned) D->be->free(D->owned);
    memset(D, 0, sizeof *D);
}

void sp_sage_message(const sp_sage_dev *D, int k, uint32_t n, const float *h, float *m) {
    int d = D->P.c.d;
    D->be->gemm(0, 0, (int)n, d, d, 1.f, h, D->P.p[SP_P_Q][k - 1], 0.f, m);
    D->be->bias_act(m, D->P.p[SP_P_QB][k - 1], (int)n, d, NN_ACT_RELU);
}

void sp_sage_convolve(const sp_sage_dev *D, int k, uint32_t n, const float *hself, const float *m,
                      const uint64_t *poff, const uint32_t *pidx, const float *pw, const uint64_t *boff,
                      const uint32_t *bidx, const float *bw, float *x, float *z, float *nrm, float *h) {
    const nn_backend *be = D->be;
    int d = D->P.c.d;
    /* x holds three (n, d) blocks: [h_self | Σ α m over pins | Σ α m over boards];
     * z = ReLU(h_self W_0 + pins W_1 + boards W_2 + w) with W = [W_0; W_1; W_2] (3d, d) */
    size_t nd = (size_t)n * d, dd = (size_t)d * d;
    float *xs = x, *xp = x + nd, *xb = x + 2 * nd;
    if (xs != hself) be->copy(xs, hself, 4 * nd);
    be->pool(xp, m, pidx, pw, poff, (int)n, d);
    be->pool(xb, m, bidx, bw, boff, (int)n, d);
    const float *W = D->P.p[SP_P_W][k - 1];
    for (int blk = 0; blk < 3; blk++) be->gemm(0, 0, (int)n, d, d, 1.f, x + blk * nd, W + blk * dd, blk ? 1.f : 0.f, z);
    be->bias_act(z, D->P.p[SP_P_WB][k - 1], (int)n, d, NN_ACT_RELU);
    be->l2norm(h, nrm, z, (int)n, d);
}

void sp_sage_head(const sp_sage_dev *D, uint32_t n, const float *h, float *a, float *y, float *ynrm, float *out) {
    const nn_backend *be = D->be;
    int d = D->P.c.d;
    be->gemm(0, 0, (int)n, d, d, 1.f, h, D->P.p[SP_P_G1][0], 0.f, a);
    be->bias_act(a, D->P.p[SP_P_G1B][0], (int)n, d, NN_ACT_RELU);
    be->gemm(0, 0, (int)n, d, d, 1.f, a, D->P.p[SP_P_G2][0], 0.f, y);
    be->l2norm(out, ynrm, y, (int)n, d);
}

/* Backend buffers of the acts are grown by free + alloc: contents need not survive a grow. */
static int bgrow(const nn_backend *be, void **p, size_t *cap, size_t bytes) {
    if (bytes <= *cap && *p) return SP_OK;
    be->free(*p);
    size_t c = bytes + bytes / 4 + 64;
    *p = be->alloc(c);
    *cap = *p ? c : 0;
    return *p ? SP_OK : sp_err(SP_ENOMEM, "sage: %zu bytes on %s", c, be->device);
}

/* Reallocates n backend arrays *ps[i] to rows × width[i] floats; *cap = rows, or 0 on failure (so
 * that the next call tries again). */
static int regrow(const nn_backend *be, float **ps[], const size_t width[], int n, size_t rows, size_t *cap) {
    *cap = 0;
    for (int i = 0; i < n; i++) {
        be->free(*ps[i]);
        if (!(*ps[i] = be->alloc(4 * rows * width[i])))
            return sp_err(SP_ENOMEM, "sage: %zu bytes on %s", 4 * rows * width[i], be->device);
    }
    *cap = rows;
    return SP_OK;
}

static int acts_grow(sp_sage_acts *a, const sp_sage_plan *pl, int d) {
    const nn_backend *be = a->be;
    size_t dd = (size_t)d, most = 1;
    for (int k = 0; k <= pl->K; k++) {
        size_t need = pl->n[k] ? pl->n[k] : 1;
        most = need > most ? need : most;
        if (need <= a->cap[k]) continue;
        /* M[k+1] lives on level k's row count */
        float **ps[5] = {&a->H[k], &a->Z[k], &a->nrm[k], &a->X[k], &a->M[k]};
        const size_t w[5] = {dd, dd, 1, 3 * dd, dd};
        if (regrow(be, ps, w, 5, need + need / 4, &a->cap[k])) return SP_ENOMEM;
    }
    size_t nK = pl->n[pl->K] ? pl->n[pl->K] : 1;
    if (nK > a->capK) {
        float **ps[4] = {&a->A, &a->Y, &a->out, &a->ynrm};
        const size_t w[4] = {dd, dd, dd, 1};
        if (regrow(be, ps, w, 4, nK + nK / 4, &a->capK)) return SP_ENOMEM;
    }
    if (most * 3 > a->captmp) { /* scratch: 3 (n, d) blocks of the largest level */
        float **ps[2] = {&a->tmp, &a->tmp2};
        const size_t w[2] = {dd, dd};
        if (regrow(be, ps, w, 2, most * 4, &a->captmp)) return SP_ENOMEM;
    }
    if (be->host_memory) return SP_OK;
    /* device: identity offsets (self gather/scatter) and level-0 host buffers */
    if ((most + 1) * 8 > a->capident || !a->ident) {
        uint64_t *id = malloc(8 * (most * 2 + 1));
        if (!id) return SP_ENOMEM;
        for (size_t i = 0; i <= most * 2; i++) id[i] = i;
        be->free(a->ident);
        a->ident = nn_be_upload(be, id, 8 * (most * 2 + 1));
        free(id);
        if (!a->ident) return sp_err(SP_ENOMEM, "sage: identity offsets on %s", be->device);
        a->capident = 8 * (most * 2 + 1);
    }
    size_t n0 = (pl->n[0] ? pl->n[0] : 1) * dd;
    if (n0 > a->caph0) {
        float *h = realloc(a->h0, 4 * n0), *g = h ? realloc(a->dh0, 4 * n0) : NULL;
        if (h) a->h0 = h;
        if (g) a->dh0 = g;
        if (!h || !g) return SP_ENOMEM;
        a->caph0 = n0;
    }
    return SP_OK;
}

void sp_sage_acts_free(sp_sage_acts *a) {
    const nn_backend *be = a->be ? a->be : nn_backend_cpu();
    for (int k = 0; k <= SP_SAGE_MAXK; k++) {
        be->free(a->H[k]), be->free(a->Z[k]), be->free(a->nrm[k]), be->free(a->M[k]), be->free(a->X[k]);
        if (!be->host_memory)
            for (int i = 0; i < 12; i++) be->free(a->pl[k][i]);
    }
    be->free(a->A), be->free(a->Y), be->free(a->out), be->free(a->ynrm), be->free(a->tmp), be->free(a->tmp2);
    be->free(a->ident);
    free(a->h0), free(a->dh0);
    memset(a, 0, sizeof *a);
}

/* The plan's lists of level k where the backend reads them: the plan itself on the host, a mirror
 * on a device (sent once per forward) with the transposes its backward gathers through: for every
 * row j of level k-1, the (source, weight) pairs that read it, in source order, sources 0..n-1 the
 * pin lists and n..2n-1 the board lists (the two pooled blocks of dX are contiguous); and the self
 * map transposed the same way. */
enum { PL_SELF, PL_POFF, PL_PIDX, PL_PW, PL_BOFF, PL_BIDX, PL_BW, PL_TOFF, PL_TSRC, PL_TW, PL_SOFF, PL_SSRC };
static int plan_put(sp_sage_acts *a, const sp_sage_plan *pl) {
    const nn_backend *be = a->be;
    for (int k = 1; k <= pl->K; k++) {
        uint32_t n = pl->n[k], nm = pl->n[k - 1];
        uint64_t np = pl->poff[k][n], nb = pl->boff[k][n];
        const void *src[7] = {pl->self[k], pl->poff[k], pl->pidx[k], pl->pw[k], pl->boff[k], pl->bidx[k], pl->bw[k]};
        const size_t bytes[7] = {4 * (size_t)n, 8 * ((size_t)n + 1), 4 * np, 4 * np, 8 * ((size_t)n + 1), 4 * nb, 4 * nb};
        for (int i = 0; i < 7; i++) {
            if (be->host_memory) {
                a->pl[k][i] = (void *)src[i];
                continue;
            }
            if (bgrow(be, &a->pl[k][i], &a->plcap[k][i], bytes[i] + 8)) return SP_ENOMEM;
            be->put(a->pl[k][i], src[i], bytes[i]);
        }
        if (be->host_memory) continue;
        uint64_t *toff = calloc((size_t)nm + 1, 8), *soff = calloc((size_t)nm + 1, 8);
        uint32_t *tsrc = malloc(4 * (np + nb + 1)), *ssrc = malloc(4 * ((size_t)n + 1));
        float *tw = malloc(4 * (np + nb + 1));
        int rc = toff && soff && tsrc && ssrc && tw ? SP_OK : SP_ENOMEM;
        if (!rc) { /* counting sort by target row, stable in source order */
            for (uint64_t e = 0; e < np; e++) toff[pl->pidx[k][e] + 1]++;
            for (uint64_t e = 0; e < nb; e++) toff[pl->bidx[k][e] + 1]++;
            for (uint32_t i = 0; i < n; i++) soff[pl->self[k][i] + 1]++;
            for (uint32_t j = 0; j < nm; j++) toff[j + 1] += toff[j], soff[j + 1] += soff[j];
            for (int blk = 0; blk < 2; blk++) {
                const uint64_t *off = blk ? pl->boff[k] : pl->poff[k];
                const uint32_t *idx = blk ? pl->bidx[k] : pl->pidx[k];
                const float *w = blk ? pl->bw[k] : pl->pw[k];
                for (uint32_t i = 0; i < n; i++)
                    for (uint64_t e = off[i]; e < off[i + 1]; e++) {
                        uint64_t at = toff[idx[e]]++;
                        tsrc[at] = blk * n + i, tw[at] = w[e];
                    }
            }
            for (uint32_t i = 0; i < n; i++) ssrc[soff[pl->self[k][i]]++] = i;
            for (uint32_t j = nm; j > 0; j--) toff[j] = toff[j - 1], soff[j] = soff[j - 1]; /* back to starts */
            toff[0] = soff[0] = 0;
            const void *tsrcs[5] = {toff, tsrc, tw, soff, ssrc};
            const size_t tbytes[5] = {8 * ((size_t)nm + 1), 4 * (np + nb), 4 * (np + nb), 8 * ((size_t)nm + 1), 4 * (size_t)n};
            for (int i = 0; !rc && i < 5; i++) {
                rc = bgrow(be, &a->pl[k][PL_TOFF + i], &a->plcap[k][PL_TOFF + i], tbytes[i] + 8);
                if (!rc) be->put(a->pl[k][PL_TOFF + i], tsrcs[i], tbytes[i]);
            }
        }
        free(toff), free(soff), free(tsrc), free(ssrc), free(tw);
        if (rc) return rc;
    }
    return SP_OK;
}

/* M of layer k is stored in a->M[k-1] (it has level k-1's row count). */
int sp_sage_forward_on(const sp_sage_dev *D, const sp_sage_params *P, const sp_sage_graph *g, const sp_sage_plan *pl,
                       sp_sage_acts *a) {
    const nn_backend *be = D->be;
    int d = P->c.d, K = pl->K;
    if (K != P->c.layers) return sp_err(SP_EINTERNAL, "sage: plan has %d layers, model %d", K, P->c.layers);
    if (a->be && a->be != be) return sp_err(SP_EINTERNAL, "sage: acts of %s used on %s", a->be->name, be->name);
    a->be = be;
    if (acts_grow(a, pl, d) || plan_put(a, pl)) return SP_ENOMEM;
    float *h0 = be->host_memory ? a->H[0] : a->h0;
    sp_sage_input(P, g, pl->node[0], pl->n[0], h0);
    be->put(a->H[0], h0, 4 * (size_t)pl->n[0] * d);
    for (int k = 1; k <= K; k++) {
        uint32_t n = pl->n[k];
        void *const *L = a->pl[k];
        float *hs = a->tmp; /* self vectors of level k, gathered from level k-1 */
        if (be->host_memory)
            for (uint32_t i = 0; i < n; i++)
                memcpy(hs + (size_t)i * d, a->H[k - 1] + (size_t)pl->self[k][i] * d, sizeof(float) * d);
        else be->pool(hs, a->H[k - 1], L[PL_SELF], NULL, a->ident, (int)n, d);
        sp_sage_message(D, k, pl->n[k - 1], a->H[k - 1], a->M[k - 1]);
        sp_sage_convolve(D, k, n, hs, a->M[k - 1], L[PL_POFF], L[PL_PIDX], L[PL_PW], L[PL_BOFF], L[PL_BIDX], L[PL_BW],
                         a->X[k], a->Z[k], a->nrm[k], a->H[k]);
    }
    sp_sage_head(D, pl->n[K], a->H[K], a->A, a->Y, a->ynrm, a->out);
    return be->sync();
}

int sp_sage_forward(const sp_sage_params *P, const sp_sage_graph *g, const sp_sage_plan *pl, sp_sage_acts *a) {
    sp_sage_dev D;
    sp_sage_dev_init(&D, nn_backend_cpu(), P); /* a view: cannot fail */
    return sp_sage_forward_on(&D, P, g, pl, a);
}

/* the view of parameter tensor (t, k) inside a gradient array of P->dense's layout */
static float *gview(float *gdense, const sp_sage_params *P, int t, int k) { return gdense + (P->p[t][k] - P->dense); }

int sp_sage_backward_on(const sp_sage_dev *D, const sp_sage_params *P, const sp_sage_graph *g, const sp_sage_plan *pl,
                        sp_sage_acts *a, float *dout, float *gd, sp_sage_params *G, uint8_t *touched,
                        uint8_t *tok_touched) {
    const nn_backend *be = D->be;
    const sp_sage_params *Q = &D->P; /* parameters where the backend reads them */
    int d = P->c.d, K = pl->K;
    uint32_t nK = pl->n[K];
    /* head */
    float *dY = dout, *dA = a->tmp, *dH = a->tmp2;
    be->l2norm_bwd(dY, dY, a->out, a->ynrm, (int)nK, d);
    be->gemm(0, 1, (int)nK, d, d, 1.f, dY, Q->p[SP_P_G2][0], 0.f, dA);                 /* dA = dY G2ᵀ */
    be->gemm(1, 0, d, d, (int)nK, 1.f, a->A, dY, 1.f, gview(gd, P, SP_P_G2, 0));      /* dG2 += Aᵀ dY */
    be->relu_bwd(dA, dA, a->A, (size_t)nK * d);
    be->gemm(0, 1, (int)nK, d, d, 1.f, dA, Q->p[SP_P_G1][0], 0.f, dH);
    be->gemm(1, 0, d, d, (int)nK, 1.f, a->H[K], dA, 1.f, gview(gd, P, SP_P_G1, 0));
    be->colsum(gview(gd, P, SP_P_G1B, 0), dA, (int)nK, d);
    /* dH (n[k], d) is the gradient of level k's H; walk down */
    for (int k = K; k >= 1; k--) {
        uint32_t n = pl->n[k], nm = pl->n[k - 1];
        void *const *L = a->pl[k];
        float *dZ = dH; /* in place */
        be->l2norm_bwd(dZ, dZ, a->H[k], a->nrm[k], (int)n, d);
        be->relu_bwd(dZ, dZ, a->Z[k], (size_t)n * d);
        float *dX = a->tmp; /* three (n, d) blocks, like X */
        size_t nd = (size_t)n * d, dd = (size_t)d * d;
        const float *W = Q->p[SP_P_W][k - 1];
        float *dW = gview(gd, P, SP_P_W, k - 1);
        for (int blk = 0; blk < 3; blk++) {
            be->gemm(0, 1, (int)n, d, d, 1.f, dZ, W + blk * dd, 0.f, dX + blk * nd);      /* dX_b = dZ W_bᵀ */
            be->gemm(1, 0, d, d, (int)n, 1.f, a->X[k] + blk * nd, dZ, 1.f, dW + blk * dd); /* dW_b += X_bᵀ dZ */
        }
        be->colsum(gview(gd, P, SP_P_WB, k - 1), dZ, (int)n, d);
        /* dM (nm, d) from the pooled blocks; dHprev (nm, d) from the self block and through M, into level
         * k-1's Z (consumed: its l2norm_bwd needs H and nrm only; level 0's Z is unused). The CPU
         * scatters; a device gathers through the transposed lists (no atomics: reproducible). */
        float *dM = dH; /* dH no longer needed: reuse tmp2 */
        float *dHprev = a->Z[k - 1];
        if (be->host_memory) {
            be->zero(dM, sizeof(float) * (size_t)nm * d);
            be->pool_bwd(dM, dX + nd, L[PL_PIDX], L[PL_PW], L[PL_POFF], (int)n, d);
            be->pool_bwd(dM, dX + 2 * nd, L[PL_BIDX], L[PL_BW], L[PL_BOFF], (int)n, d);
        } else be->pool(dM, dX + nd, L[PL_TSRC], L[PL_TW], L[PL_TOFF], (int)nm, d);
        be->relu_bwd(dM, dM, a->M[k - 1], (size_t)nm * d);
        if (!be->host_memory) be->pool(dHprev, dX, L[PL_SSRC], NULL, L[PL_SOFF], (int)nm, d);
        be->gemm(0, 1, (int)nm, d, d, 1.f, dM, Q->p[SP_P_Q][k - 1], be->host_memory ? 0.f : 1.f, dHprev);
        be->gemm(1, 0, d, d, (int)nm, 1.f, a->H[k - 1], dM, 1.f, gview(gd, P, SP_P_Q, k - 1));
        be->colsum(gview(gd, P, SP_P_QB, k - 1), dM, (int)nm, d);
        if (be->host_memory)
            for (uint32_t i = 0; i < n; i++) {
                float *r = dHprev + (size_t)pl->self[k][i] * d;
                const float *sv = dX + (size_t)i * d; /* self block */
                for (int c = 0; c < d; c++) r[c] += sv[c];
            }
        if (k - 1 >= 1) {
            /* relu_bwd at level k-1 needs Z[k-1], which dHprev just overwrote: rebuild the mask from H
             * (H = Z / nrm, nrm > 0, so Z > 0 ⇔ H > 0). */
            be->copy(dH, dHprev, sizeof(float) * (size_t)nm * d);
            be->copy(a->Z[k - 1], a->H[k - 1], sizeof(float) * (size_t)nm * d); /* mask source for relu_bwd */
        } else {
            dH = dHprev;
        }
    }
    /* level 0 on the host: dH (n[0], d) -> parameters of sp_sage_input */
    if (!be->host_memory) {
        be->get(a->dh0, dH, 4 * (size_t)pl->n[0] * d);
        dH = a->dh0;
    }
    int rc = be->sync();
    if (rc) return rc;
    float *dtb = G->p[SP_P_TYPEB][0], *dwd = G->p[SP_P_WDEG][0];
    for (uint32_t i = 0; i < pl->n[0]; i++) {
        uint32_t u = pl->node[0][i];
        int t = u >= g->npins;
        const float *r = dH + (size_t)i * d;
        float ld = g->logdeg[u];
        for (int j = 0; j < d; j++) {
            dtb[t * d + j] += r[j];
            dwd[t * d + j] += ld * r[j];
        }
        if (G->emb) {
            uint32_t row = g->row ? g->row[u] : u;
            float *e = G->emb + (size_t)row * d;
            for (int j = 0; j < d; j++) e[j] += r[j];
            if (touched) touched[row] = 1;
        }
        if (t) continue;
        if (G->tok && g->tok_off) {
            uint64_t a0 = g->tok_off[u], b0 = g->tok_off[u + 1];
            float sc = b0 > a0 ? 1.f / (float)(b0 - a0) : 0.f;
            for (uint64_t q = a0; q < b0; q++) {
                float *tr = G->tok + (size_t)g->tok_row[q] * d;
                for (int j = 0; j < d; j++) tr[j] += sc * r[j];
                if (tok_touched) tok_touched[g->tok_row[q]] = 1;
            }
        }
        if (P->c.dense_dim && g->dense) {
            const float *x = g->dense + (size_t)u * g->dense_dim;
            float *W = G->p[SP_P_DENSE][0];
            for (int f = 0; f < g->dense_dim; f++)
                if (x[f] != 0.f)
                    for (int j = 0; j < d; j++) W[(size_t)f * d + j] += x[f] * r[j];
        }
    }
    return SP_OK;
}

int sp_sage_backward(const sp_sage_params *P, const sp_sage_graph *g, const sp_sage_plan *pl, sp_sage_acts *a,
                     float *dout, sp_sage_params *G, uint8_t *touched, uint8_t *tok_touched) {
    sp_sage_dev D;
    sp_sage_dev_init(&D, nn_backend_cpu(), P);
    return sp_sage_backward_on(&D, P, g, pl, a, dout, G->dense, G, touched, tok_touched);
}

int sp_sage_lists_put(const nn_backend *be, const sp_sage_lists *host, uint64_t n, sp_sage_lists *dev) {
    uint64_t np = host->poff[n], nb = host->boff[n];
    dev->poff = nn_be_mirror(be, (void *)host->poff, 8 * (n + 1), 1);
    dev->boff = nn_be_mirror(be, (void *)host->boff, 8 * (n + 1), 1);
    dev->pidx = nn_be_mirror(be, (void *)host->pidx, 4 * np, 1);
    dev->bidx = nn_be_mirror(be, (void *)host->bidx, 4 * nb, 1);
    dev->pw = nn_be_mirror(be, (void *)host->pw, 4 * np, 1);
    dev->bw = nn_be_mirror(be, (void *)host->bw, 4 * nb, 1);
    if (dev->poff && dev->boff && dev->pidx && dev->bidx && dev->pw && dev->bw) return SP_OK;
    sp_sage_lists_free(be, host, dev);
    return sp_err(SP_ENOMEM, "sage: neighbour lists of %" PRIu64 " nodes on %s", n, be->device);
}

void sp_sage_lists_free(const nn_backend *be, const sp_sage_lists *host, sp_sage_lists *dev) {
    nn_be_unmirror(be, (void *)dev->poff, host->poff), nn_be_unmirror(be, (void *)dev->boff, host->boff);
    nn_be_unmirror(be, (void *)dev->pidx, host->pidx), nn_be_unmirror(be, (void *)dev->bidx, host->bidx);
    nn_be_unmirror(be, (void *)dev->pw, host->pw), nn_be_unmirror(be, (void *)dev->bw, host->bw);
    memset(dev, 0, sizeof *dev);
}

float *sp_sage_layers_all(const sp_sage_dev *D, uint32_t n, float *H, float *Hn, float *M, float *X, float *Z,
                          float *nrm, const sp_sage_lists *L) {
    for (int k = 1; k <= D->P.c.layers; k++) {
        sp_sage_message(D, k, n, H, M);
        sp_sage_convolve(D, k, n, H, M, L->poff, L->pidx, L->pw, L->boff, L->bidx, L->bw, X, Z, nrm, Hn);
        float *t = H;
        H = Hn, Hn = t;
    }
    sp_sage_head(D, n, H, M, Z, nrm, X);
    return X;
}

int sp_sage_embed_all(const nn_backend *be, const sp_sage_params *P, const sp_sage_graph *g, float *out) {
    size_t n = g->n, d = (size_t)P->c.d, nd = n * d + 1;
    if (n >= UINT32_MAX) return sp_err(SP_EINPUT, "sage: %zu nodes in one process", n);
    uint32_t *all = malloc(4 * (n + 1));
    float *h0 = malloc(4 * nd);
    int rc = all && h0 ? SP_OK : SP_ENOMEM;
    if (!rc) {
        for (size_t i = 0; i < n; i++) all[i] = (uint32_t)i;
        sp_sage_input(P, g, all, (uint32_t)n, h0);
    }
    free(all);
    sp_sage_dev D = {0};
    if (!rc) rc = sp_sage_dev_init(&D, be, P);
    const sp_sage_lists host = {g->pn_off, g->bn_off, g->pn_idx, g->bn_idx, g->pn_w, g->bn_w};
    sp_sage_lists L = {0};
    if (!rc) rc = sp_sage_lists_put(be, &host, n, &L);
    /* backend buffers: the level's vectors, the next level's, messages, the three x blocks, z, norms */
    float *H = rc ? NULL : nn_be_upload(be, h0, 4 * nd), *Hn = rc ? NULL : be->alloc(4 * nd);
    float *M = rc ? NULL : be->alloc(4 * nd), *X = rc ? NULL : be->alloc(4 * 3 * nd), *Z = rc ? NULL : be->alloc(4 * nd);
    float *nrm = rc ? NULL : be->alloc(4 * (n + 1));
    if (!rc && (!H || !Hn || !M || !X || !Z || !nrm))
        rc = sp_err(SP_ENOMEM, "sage: inference buffers of %zu nodes on %s", n, be->device);
    if (!rc) {
        be->get(out, sp_sage_layers_all(&D, (uint32_t)n, H, Hn, M, X, Z, nrm, &L), 4 * n * d);
        rc = be->sync();
    }
    be->free(H), be->free(Hn), be->free(M), be->free(X), be->free(Z), be->free(nrm);
    sp_sage_lists_free(be, &host, &L);
    sp_sage_dev_free(&D);
    free(h0);
    return rc;
}
