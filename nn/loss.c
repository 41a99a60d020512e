/* loss: the two retrieval losses of the item and user encoders (nn.h):
 * sampled softmax with logQ correction and accidental-hit masking
 * (OmniSage/PinnerFormer), and the max-margin hinge of PinSage. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

/* scratch (nq, nc) first holds s = ⟨q_i, c_j⟩/tau, then ∂loss/∂logit. */
/* exp(x) for x <= 0 (softmax after max subtraction) to ~2 ulp, in plain float
 * arithmetic the compiler vectorises (libm's expf is a scalar call):
 * 2^(x·log2 e) = 2^n · 2^f with n = round, |f| <= 1/2, 2^f by a degree-6
 * polynomial; below −87 the result is 0. */
static inline float nn_expf_fast(float x) {
    x = x < -87.0f ? -87.0f : x;
    float t = x * 1.44269504088896341f;
    float n = (t + 12582912.0f) - 12582912.0f; /* round to nearest via 1.5·2^23 (no SSE4.1 needed) */
    float f = t - n;
    float p = 1.5353362e-4f;
    p = p * f + 1.3398874e-3f;
    p = p * f + 9.6182495e-3f;
    p = p * f + 5.5504109e-2f;
    p = p * f + 2.4022650e-1f;
    p = p * f + 6.9314718e-1f;
    p = p * f + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return x <= -87.0f ? 0.0f : p * scale;
}

float nn_sampled_softmax(const float *q, const float *c, const int *pos, const uint64_t *cid, const float *logq,
                         int nq, int nc, int d, float tau, float *dq, float *dc, float *dtau, float *scratch) {
    return nn_sampled_softmax_ex(q, c, pos, cid, logq, NULL, NULL, nq, nc, d, tau, dq, dc, dtau, scratch);
}

/* Columns of each candidate id, for the per-query exclusion lists: an open-addressing table of
 * (id -> first column) plus a next-column chain. */
typedef struct { uint64_t *key; int *first, *next; uint32_t mask; } colmap;

static int colmap_build(colmap *m, const uint64_t *cid, int nc) {
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)nc) cap <<= 1;
    m->key = malloc(sizeof *m->key * cap);
    m->first = malloc(sizeof *m->first * cap);
    m->next = malloc(sizeof *m->next * (size_t)nc);
    if (!m->key || !m->first || !m->next) return -1;
    m->mask = cap - 1;
    for (uint32_t i = 0; i < cap; i++) m->first[i] = -1;
    for (int j = nc - 1; j >= 0; j--) {
        uint32_t h = (uint32_t)(sp_mix64(cid[j]) & m->mask);
        while (m->first[h] >= 0 && m->key[h] != cid[j]) h = (h + 1) & m->mask;
        m->next[j] = m->first[h];
        m->key[h] = cid[j];
        m->first[h] = j;
    }
    return 0;
}
static int colmap_first(const colmap *m, uint64_t id) {
    uint32_t h = (uint32_t)(sp_mix64(id) & m->mask);
    while (m->first[h] >= 0) {
        if (m->key[h] == id) return m->first[h];
        h = (h + 1) & m->mask;
    }
    return -1;
}

/* One query's row for one target (the body of every sampled-softmax variant): s (nc) holds the row's logits
 * ⟨q_i, c_j⟩/tau and on return ∂loss_i/∂logit / nq (p: the positive's column). Returns the row's loss; adds
 * its Σ ∂L/∂logit · s term to *st when want_st (dtau without dq). Inlined into the SP_HOT callers. */
static inline __attribute__((always_inline)) double softmax_row(float *restrict s, int p, const uint64_t *cid,
                                                                const float *logq, const colmap *cm,
                                                                const uint64_t *ex0, const uint64_t *ex1, int nc,
                                                                int nq, float inv_nq, int want_st, double *st) {
    enum { LANES = 16 };
    float sp = s[p], zp = sp - (logq ? logq[p] : 0.0f);
    /* z_j = s_j − logq_j, masked columns −inf */
    if (logq)
        for (int j = 0; j < nc; j++) s[j] -= logq[j];
    if (cid) {
        uint64_t pid = cid[p];
        for (int j = 0; j < nc; j++) s[j] = cid[j] == pid ? -INFINITY : s[j];
        s[p] = zp; /* the positive is never masked */
    }
    if (cm)
        for (const uint64_t *e = ex0; e < ex1; e++)
            for (int j = colmap_first(cm, *e); j >= 0; j = cm->next[j])
                if (j != p) s[j] = -INFINITY;
    float lane[LANES], mx = -INFINITY;
    int j0 = nc - nc % LANES;
    for (int l = 0; l < LANES; l++) lane[l] = -INFINITY;
    for (int j = 0; j < j0; j += LANES)
        for (int l = 0; l < LANES; l++) lane[l] = s[j + l] > lane[l] ? s[j + l] : lane[l];
    for (int j = j0; j < nc; j++) mx = s[j] > mx ? s[j] : mx;
    for (int l = 0; l < LANES; l++) mx = lane[l] > mx ? lane[l] : mx;
    double es = 0.0;
    if (want_st) /* Σ e_j·s_j needs the logits: a scalar pass, only in this rare combination */
        for (int j = 0; j < nc; j++)
            if (s[j] != -INFINITY) es += (double)nn_expf_fast(s[j] - mx) * (s[j] + (logq ? logq[j] : 0.0f));
    for (int j = 0; j < nc; j++) s[j] = nn_expf_fast(s[j] - mx);
    float sum = 0.0f;
    for (int l = 0; l < LANES; l++) lane[l] = 0.0f;
    for (int j = 0; j < j0; j += LANES)
        for (int l = 0; l < LANES; l++) lane[l] += s[j + l];
    for (int j = j0; j < nc; j++) sum += s[j];
    for (int l = 0; l < LANES; l++) sum += lane[l];
    if (want_st) *st += (es / sum - sp) / nq;
    float isum = inv_nq / sum;
    for (int j = 0; j < nc; j++) s[j] *= isum;
    s[p] -= inv_nq;
    return log((double)sum) + mx - zp; /* logsumexp − logit of the positive */
}

/* A masked (column, target) pair of one row: the column's shifted logit z and its exponential e. */
typedef struct { int j, k; float z, e; } masked_t;

/* Growable list of one row's masked pairs. */
typedef struct { masked_t *v; size_t n, cap; int failed; } masklist;

static void mask_add(masklist *m, int j, int k) {
    if (m->n == m->cap) {
        size_t nc = m->cap ? 2 * m->cap : 64;
        masked_t *v = realloc(m->v, sizeof *v * nc);
        if (!v) { m->failed = 1; return; }
        m->v = v, m->cap = nc;
    }
    m->v[m->n++] = (masked_t){j, k, 0.0f, 0.0f};
}

static int masked_cmp(const void *a, const void *b) {
    const masked_t *x = a, *y = b;
    return x->j != y->j ? (x->j < y->j ? -1 : 1) : (x->k > y->k) - (x->k < y->k);
}

/* All targets of one row at once (the fast path). The targets share the logits, so they share the max, the
 * exponentials and their sum; a target's masked columns (accidental hits: its positive's id elsewhere;
 * the query's exclusions) are few, so its sum is the shared one less theirs, in double. The max is taken
 * over every column, masked or not: if a target's unmasked columns hold less than 1e-6 of the mass (their
 * exponentials may have underflowed) it returns 1 and the caller takes the per-target path on the
 * recomputed logits. s (nc) holds ⟨q_i, c_j⟩/tau and on return Σ_k w_k ∂loss_k/∂logit / nq. Per-target
 * losses go to lrow[k] (w[k] == 0: not computed), Σ_k w_k·∂loss_k/∂tau·tau terms to *st when want_st. */
static inline __attribute__((always_inline)) int softmax_row_fused(
    float *restrict s, int nt, const int *pk, const float *w, const uint64_t *cid, const float *logq,
    const colmap *cm, const uint64_t *ex0, const uint64_t *ex1, int nc, int nq, float inv_nq, int want_st,
    double *lrow, double *st, masklist *ml) {
    enum { LANES = 16 };
    ml->n = 0, ml->failed = 0;
    /* 1. the masked pairs, sorted by column and deduplicated (an id may repeat in an exclusion list) */
    for (int k = 0; k < nt; k++) {
        if (w[k] == 0.0f || !cid) continue;
        uint64_t pid = cid[pk[k]];
        if (cm) {
            for (int j = colmap_first(cm, pid); j >= 0; j = cm->next[j])
                if (j != pk[k]) mask_add(ml, j, k);
        } else {
            for (int j0 = 0; j0 < nc; j0 += LANES) {
                int jn = nc - j0 < LANES ? nc - j0 : LANES, any = 0;
                for (int l = 0; l < jn; l++) any |= cid[j0 + l] == pid;
                if (any)
                    for (int l = 0; l < jn; l++)
                        if (cid[j0 + l] == pid && j0 + l != pk[k]) mask_add(ml, j0 + l, k);
            }
        }
        if (cm && ex0)
            for (const uint64_t *e = ex0; e < ex1; e++)
                if (*e != pid)
                    for (int j = colmap_first(cm, *e); j >= 0; j = cm->next[j])
                        if (j != pk[k]) mask_add(ml, j, k);
    }
    if (ml->failed) return 1;
    if (ml->n > 1) {
        qsort(ml->v, ml->n, sizeof *ml->v, masked_cmp);
        size_t u = 1;
        for (size_t a = 1; a < ml->n; a++)
            if (ml->v[a].j != ml->v[u - 1].j || ml->v[a].k != ml->v[u - 1].k) ml->v[u++] = ml->v[a];
        ml->n = u;
    }
    /* 2. z_j = s_j − logq_j and its max over all columns */
    float zp[NN_SOFTMAX_MAX_TARGETS], lp[NN_SOFTMAX_MAX_TARGETS];
    for (int k = 0; k < nt; k++) lp[k] = s[pk[k]], zp[k] = lp[k] - (logq ? logq[pk[k]] : 0.0f);
    float lane[LANES], mx = -INFINITY;
    int j0 = nc - nc % LANES;
    for (int l = 0; l < LANES; l++) lane[l] = -INFINITY;
    if (logq)
        for (int j = 0; j < nc; j++) s[j] -= logq[j];
    for (int j = 0; j < j0; j += LANES)
        for (int l = 0; l < LANES; l++) lane[l] = s[j + l] > lane[l] ? s[j + l] : lane[l];
    for (int j = j0; j < nc; j++) mx = s[j] > mx ? s[j] : mx;
    for (int l = 0; l < LANES; l++) mx = lane[l] > mx ? lane[l] : mx;
    for (size_t a = 0; a < ml->n; a++) ml->v[a].z = s[ml->v[a].j];
    /* 3. e_j and their sum (double lanes); Σ e_j·(z_j + logq_j) only for dtau without dq */
    double es = 0.0, dl[LANES], sum = 0.0;
    if (want_st)
        for (int j = 0; j < nc; j++) es += (double)nn_expf_fast(s[j] - mx) * (s[j] + (logq ? logq[j] : 0.0f));
    for (int j = 0; j < nc; j++) s[j] = nn_expf_fast(s[j] - mx);
    for (int l = 0; l < LANES; l++) dl[l] = 0.0;
    for (int j = 0; j < j0; j += LANES)
        for (int l = 0; l < LANES; l++) dl[l] += (double)s[j + l];
    for (int j = j0; j < nc; j++) sum += (double)s[j];
    for (int l = 0; l < LANES; l++) sum += dl[l];
    for (size_t a = 0; a < ml->n; a++) ml->v[a].e = s[ml->v[a].j];
    /* 4. each target's sum, loss and gradient scale */
    float scale[NN_SOFTMAX_MAX_TARGETS] = {0}, coef = 0.0f;
    double stl = 0.0;
    for (int k = 0; k < nt; k++) {
        if (w[k] == 0.0f) continue;
        double m = 0.0, me = 0.0;
        for (size_t a = 0; a < ml->n; a++)
            if (ml->v[a].k == k) {
                m += (double)ml->v[a].e;
                if (want_st) {
                    int j = ml->v[a].j;
                    me += (double)ml->v[a].e * (ml->v[a].z + (logq ? logq[j] : 0.0f));
                }
            }
        double sk = sum - m;
        if (!(sk > 1e-6 * sum)) return 1;
        lrow[k] = log(sk) + mx - zp[k];
        if (want_st) stl += (double)w[k] * ((es - me) / sk - lp[k]) / nq;
        scale[k] = inv_nq / (float)sk;
        coef += w[k] * scale[k];
    }
    /* 5. the gradient: e_j times the scales of the targets that keep column j, less w_k/nq at positive k */
    for (int j = 0; j < nc; j++) s[j] *= coef;
    for (size_t a = 0; a < ml->n;) { /* a masked column: the scales of the targets that keep it, in k order */
        int j = ml->v[a].j;
        unsigned mk = 0;
        float e = ml->v[a].e, cj = 0.0f;
        for (; a < ml->n && ml->v[a].j == j; a++) mk |= 1u << ml->v[a].k;
        for (int k = 0; k < nt; k++)
            if (w[k] != 0.0f && !(mk >> k & 1)) cj += w[k] * scale[k];
        s[j] = e * cj;
    }
    for (int k = 0; k < nt; k++)
        if (w[k] != 0.0f) s[pk[k]] -= w[k] * inv_nq;
    *st += stl;
    return 0;
}

/* The sampled softmax of nt targets over one set of logits: target k's positives pos[k·nq ..], weight w[k]
 * (w == NULL: one target of weight 1, computed in place in scratch). The logits and the two gradient
 * products are computed once whatever nt; rows (2·nc floats) holds a row's logits and one target's
 * gradient while the targets' weighted gradients add up in scratch. lossk[k] (may be NULL): target k's mean
 * loss. Returns Σ_k w[k]·lossk[k]. */
SP_HOT
static float softmax_targets(const float *q, const float *c, int nt, const int *pos, const float *w,
                             const uint64_t *cid, const float *logq, const uint64_t *excl_off, const uint64_t *excl,
                             int nq, int nc, int d, float tau, float *dq, float *dc, float *dtau, float *lossk,
                             float *scratch, float *rows) {
    colmap cm = {0};
    /* the id -> columns table finds accidental hits and exclusions; without memory for it, accidental hits are
     * found by a scan and exclusions are ignored (documented) */
    int have_cm = cid && nc > 0 && !colmap_build(&cm, cid, nc);
    if (!have_cm) excl_off = NULL;
    masklist ml = {0};
    for (int k = 0; lossk && k < nt; k++) lossk[k] = 0.0f;
    if (nq <= 0 || nc <= 0) {
        if (dc && nc > 0) memset(dc, 0, sizeof *dc * (size_t)nc * (size_t)d);
        if (dq && nq > 0) memset(dq, 0, sizeof *dq * (size_t)nq * (size_t)d);
        if (dtau) *dtau = 0.0f;
        free(cm.key), free(cm.first), free(cm.next);
        return 0.0f;
    }
    const float one = 1.0f, *wv = w ? w : &one;
    int ntv = w ? nt : 1;
    float itau = 1.0f / tau;
    nn_gemm(0, 1, nq, nc, d, itau, q, c, 0.0f, scratch); /* (nq, d)·(d, nc) / tau */
    /* Every loop is branch-free and has no cross-iteration float reduction except through explicit lane
     * arrays, so GCC vectorises it at -O3 without -ffast-math. */
    /* st = Σ ∂L/∂logit · s (only when dtau is wanted without dq) */
    double loss = 0.0, st = 0.0, lk[NN_SOFTMAX_MAX_TARGETS] = {0};
    float inv_nq = 1.0f / (float)nq;
    int want_st = dtau && !dq;
    const colmap *cmp = excl_off && cid ? &cm : NULL;
    for (int i = 0; i < nq; i++) {
        float *restrict s = scratch + (size_t)i * nc;
        const uint64_t *e0 = cmp ? excl + excl_off[i] : NULL, *e1 = cmp ? excl + excl_off[i + 1] : NULL;
        int pk[NN_SOFTMAX_MAX_TARGETS];
        double lrow[NN_SOFTMAX_MAX_TARGETS] = {0};
        for (int k = 0; k < ntv; k++) pk[k] = pos[(size_t)k * nq + i];
        if (!softmax_row_fused(s, ntv, pk, wv, cid, logq, have_cm ? &cm : NULL, e0, e1, nc, nq, inv_nq, want_st, lrow,
                               &st, &ml)) {
            for (int k = 0; k < ntv; k++)
                if (wv[k] != 0.0f) lk[k] += lrow[k], loss += (double)wv[k] * lrow[k];
            continue;
        }
        /* the per-target path, on the row's logits computed again (the fused one changed them) */
        nn_gemm(0, 1, 1, nc, d, itau, q + (size_t)i * d, c, 0.0f, s);
        if (!w) { /* one target, in place */
            loss += softmax_row(s, pos[i], cid, logq, cmp, e0, e1, nc, nq, inv_nq, want_st, &st);
            continue;
        }
        float *restrict z = rows, *restrict t = rows + nc;
        memcpy(z, s, sizeof *s * (size_t)nc);
        for (int j = 0; j < nc; j++) s[j] = 0.0f;
        for (int k = 0; k < nt; k++) {
            if (w[k] == 0.0f) continue;
            memcpy(t, z, sizeof *t * (size_t)nc);
            double stk = 0.0, l = softmax_row(t, pos[(size_t)k * nq + i], cid, logq, cmp, e0, e1, nc, nq,
                                              inv_nq, want_st, &stk);
            lk[k] += l;
            loss += (double)w[k] * l;
            st += (double)w[k] * stk;
            float wk = w[k];
            for (int j = 0; j < nc; j++) s[j] += wk * t[j];
        }
    }
    free(ml.v);
    for (int k = 0; lossk && k < nt; k++) lossk[k] = (float)(lk[k] / nq);
    /* logit = ⟨q, c⟩/tau − logq: ∂logit/∂q = c/tau, ∂logit/∂tau = −s/tau */
    if (dq) nn_gemm(0, 0, nq, d, nc, itau, scratch, c, 0.0f, dq); /* (nq, nc)·(nc, d) */
    if (dc) nn_gemm(1, 0, nc, d, nq, itau, scratch, q, 0.0f, dc); /* (nc, nq)·(nq, d) */
    if (dtau) {
        /* Σ_ij g_ij s_ij = Σ_i ⟨q_i, dq_i⟩ (dq_i = Σ_j g_ij c_j / tau, s_ij = ⟨q_i, c_j⟩/tau) */
        if (dq) {
            st = 0.0;
            for (int i = 0; i < nq; i++) st += nn_dot(q + (size_t)i * d, dq + (size_t)i * d, (size_t)d);
        }
        *dtau = (float)(-st / tau);
    }
    free(cm.key), free(cm.first), free(cm.next);
    return (float)(loss / nq);
}

float nn_sampled_softmax_ex(const float *q, const float *c, const int *pos, const uint64_t *cid, const float *logq,
                            const uint64_t *excl_off, const uint64_t *excl, int nq, int nc, int d, float tau, float *dq,
                            float *dc, float *dtau, float *scratch) {
    return softmax_targets(q, c, 1, pos, NULL, cid, logq, excl_off, excl, nq, nc, d, tau, dq, dc, dtau, NULL, scratch,
                           NULL);
}

float nn_sampled_softmax_multi(const float *q, const float *c, int nt, const int *pos, const float *w,
                               const uint64_t *cid, const float *logq, const uint64_t *excl_off, const uint64_t *excl,
                               int nq, int nc, int d, float tau, float *dq, float *dc, float *dtau, float *lossk,
                               float *scratch) {
    if (nt < 1 || nt > NN_SOFTMAX_MAX_TARGETS) return NAN;
    return softmax_targets(q, c, nt, pos, w, cid, logq, excl_off, excl, nq, nc, d, tau, dq, dc, dtau, lossk, scratch,
                           scratch + (size_t)(nq > 0 ? nq : 0) * (size_t)(nc > 0 ? nc : 0));
}

/* Queries are taken in tiles of TILE, shared negatives in tiles of TILE: the
 * scores of a tile come from one gemm into a stack buffer, which is then
 * turned into the hinge coefficients (a or 0) and multiplied back. */
#define TILE 64

float nn_max_margin(const float *q, const float *p, const float *neg, const float *hard, int nq, int nneg, int nhard,
                    int d, float margin, float *dq, float *dp, float *dneg, float *dhard) {
    size_t rd = (size_t)d;
    if (dq && nq > 0) memset(dq, 0, sizeof *dq * (size_t)nq * rd);
    if (dp && nq > 0) memset(dp, 0, sizeof *dp * (size_t)nq * rd);
    if (dneg && nneg > 0) memset(dneg, 0, sizeof *dneg * (size_t)nneg * rd);
    if (dhard && nq > 0 && nhard > 0) memset(dhard, 0, sizeof *dhard * (size_t)nq * (size_t)nhard * rd);
    int nk = nneg + nhard;
    if (nq <= 0 || nk <= 0) return 0.0f;
    float a = (float)(1.0 / ((double)nq * nk)); /* ∂L/∂hinge of every active hinge */
    double loss = 0.0;
    float T[TILE * TILE], spos[TILE];
    int cnt[TILE];
    for (int i0 = 0; i0 < nq; i0 += TILE) {
        int bi = nq - i0 < TILE ? nq - i0 : TILE;
        const float *qb = q + (size_t)i0 * rd;
        for (int ii = 0; ii < bi; ii++) {
            spos[ii] = nn_dot(qb + ii * rd, p + (size_t)(i0 + ii) * rd, rd);
            cnt[ii] = 0;
        }
        for (int j0 = 0; j0 < nneg; j0 += TILE) {
            int bj = nneg - j0 < TILE ? nneg - j0 : TILE;
            const float *nb = neg + (size_t)j0 * rd;
            nn_gemm(0, 1, bi, bj, d, 1.0f, qb, nb, 0.0f, T); /* (bi, d)·(d, bj) */
            int active = 0;
            for (int ii = 0; ii < bi; ii++)
                for (int jj = 0; jj < bj; jj++) {
                    float h = T[ii * bj + jj] - spos[ii] + margin;
                    if (h > 0.0f) {
                        loss += h;
                        cnt[ii]++;
                        active = 1;
                        T[ii * bj + jj] = a;
                    } else {
                        T[ii * bj + jj] = 0.0f;
                    }
                }
            if (!active) continue;
            if (dq) nn_gemm(0, 0, bi, d, bj, 1.0f, T, nb, 1.0f, dq + (size_t)i0 * rd);     /* (bi, bj)·(bj, d) */
            if (dneg) nn_gemm(1, 0, bj, d, bi, 1.0f, T, qb, 1.0f, dneg + (size_t)j0 * rd); /* (bj, bi)·(bi, d) */
        }
        for (int ii = 0; ii < bi; ii++) {
            int i = i0 + ii;
            const float *qi = q + (size_t)i * rd;
            for (int k = 0; k < nhard; k++) {
                const float *hk = hard + ((size_t)i * nhard + k) * rd;
                float h = nn_dot(qi, hk, rd) - spos[ii] + margin;
                if (!(h > 0.0f)) continue;
                loss += h;
                cnt[ii]++;
                if (dq)
                    for (size_t e = 0; e < rd; e++) dq[(size_t)i * rd + e] += a * hk[e];
                if (dhard)
                    for (size_t e = 0; e < rd; e++) dhard[((size_t)i * nhard + k) * rd + e] = a * qi[e];
            }
            /* each active hinge has ∂/∂q_i = n − p_i and ∂/∂p_i = −q_i */
            float ac = a * (float)cnt[ii];
            if (dq)
                for (size_t e = 0; e < rd; e++) dq[(size_t)i * rd + e] -= ac * p[(size_t)i * rd + e];
            if (dp)
                for (size_t e = 0; e < rd; e++) dp[(size_t)i * rd + e] = -ac * qi[e];
        }
    }
    return (float)(loss / ((double)nq * nk));
}
