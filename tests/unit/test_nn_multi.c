/* test_nn_multi: nn_sampled_softmax_multi (several targets over one set of
 * logits, as the user encoder's next-action and all-action losses) equals the
 * weighted sum of separate nn_sampled_softmax_ex calls: loss, per-target
 * losses, dq, dc and dtau, with accidental hits, logQ and per-query
 * exclusions; a target of weight 0 is skipped; one target of weight 1 gives
 * the single-target function's bits; dtau alone (no dq) agrees too. Both
 * also equal a double-precision reference written from the definition, and
 * so does a row whose masked column holds nearly all the softmax mass (the
 * shared-sum path hands that row to the per-target path). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn.h"

enum { NQ = 37, NC = 3 * NQ + 19, D = 16 };

static float q[NQ * D], c[NC * D], lq[NC];
static uint64_t cid[NC], off[NQ + 1], ex[4 * NQ];
static int pos[2 * NQ];

static float maxabs(const float *x, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

/* |got - want| <= tol · max|want| elementwise */
static int close_all(const float *got, const float *want, size_t n, float tol) {
    float s = maxabs(want, n) + 1e-30f;
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(got[i] - want[i]) <= tol * s)) return 0;
    return 1;
}

static void check_weights(const float w[2], int with_excl) {
    static float dq[NQ * D], dc[NC * D], rq[NQ * D], rc[NC * D], tq[NQ * D], tc[NC * D];
    static float scratch[(NQ + 2) * NC];
    const uint64_t *eo = with_excl ? off : NULL;
    float dtau = 0, lossk[2] = {-1, -1};
    float loss = nn_sampled_softmax_multi(q, c, 2, pos, w, cid, lq, eo, ex, NQ, NC, D, 0.2f, dq, dc, &dtau, lossk,
                                          scratch);
    /* the reference: one call per target, weighted */
    double rl = 0, rt = 0;
    memset(rq, 0, sizeof rq), memset(rc, 0, sizeof rc);
    for (int k = 0; k < 2; k++) {
        float tt, l = nn_sampled_softmax_ex(q, c, pos + k * NQ, cid, lq, eo, ex, NQ, NC, D, 0.2f, tq, tc, &tt, scratch);
        CHECK_NEAR(lossk[k], w[k] == 0 ? 0.0f : l, 1e-5 * fabs(l));
        rl += w[k] * l, rt += w[k] * tt;
        for (int i = 0; i < NQ * D; i++) rq[i] += w[k] * tq[i];
        for (int i = 0; i < NC * D; i++) rc[i] += w[k] * tc[i];
    }
    CHECK_NEAR(loss, rl, 1e-5 * fabs(rl));
    CHECK_NEAR(dtau, rt, 1e-4 * fabs(rt) + 1e-7);
    CHECK_MSG(close_all(dq, rq, NQ * D, 1e-5f), "dq w=(%g, %g) excl=%d", (double)w[0], (double)w[1], with_excl);
    CHECK_MSG(close_all(dc, rc, NC * D, 1e-5f), "dc w=(%g, %g) excl=%d", (double)w[0], (double)w[1], with_excl);
    /* dtau without the gradients (the scalar Σ e·s pass) */
    float dtau2 = 0;
    float loss2 = nn_sampled_softmax_multi(q, c, 2, pos, w, cid, lq, eo, ex, NQ, NC, D, 0.2f, NULL, NULL, &dtau2, NULL,
                                           scratch);
    CHECK_NEAR(loss2, loss, 0);
    CHECK_NEAR(dtau2, rt, 1e-4 * fabs(rt) + 1e-7);
}

/* The definition in double: target k of query i keeps column j unless j != pos_k and (cid_j == cid of pos_k
 * or cid_j is in i's exclusions); loss = Σ_k w_k · mean_i (logsumexp of kept z − z_pos), z = ⟨q,c⟩/tau − logq. */
static double multi_ref(const float *Q, const float *C, int nt, const int *P, const float *w, const uint64_t *eo,
                        double *rq, double *rc, double *rtau, double *lossk) {
    const double tau = 0.2;
    double loss = 0;
    memset(rq, 0, sizeof *rq * NQ * D), memset(rc, 0, sizeof *rc * NC * D);
    *rtau = 0;
    for (int k = 0; k < nt; k++) lossk[k] = 0;
    for (int k = 0; k < nt; k++) {
        if (w[k] == 0) continue;
        for (int i = 0; i < NQ; i++) {
            int p = P[k * NQ + i];
            double dot[NC], z[NC], mx = -INFINITY, sum = 0;
            int keep[NC];
            for (int j = 0; j < NC; j++) {
                dot[j] = 0;
                for (int t = 0; t < D; t++) dot[j] += (double)Q[i * D + t] * C[j * D + t];
                int m = j != p && cid[j] == cid[p];
                for (uint64_t e = eo ? eo[i] : 0; eo && e < eo[i + 1]; e++) m |= j != p && cid[j] == ex[e];
                keep[j] = !m;
                z[j] = dot[j] / tau - lq[j];
                if (keep[j]) mx = fmax(mx, z[j]);
            }
            for (int j = 0; j < NC; j++) sum += keep[j] ? exp(z[j] - mx) : 0;
            double l = log(sum) + mx - z[p];
            lossk[k] += l / NQ;
            loss += w[k] * l / NQ;
            for (int j = 0; j < NC; j++) {
                double g = w[k] * ((keep[j] ? exp(z[j] - mx) / sum : 0) - (j == p)) / NQ;
                for (int t = 0; t < D; t++) {
                    rq[i * D + t] += g * C[j * D + t] / tau;
                    rc[j * D + t] += g * Q[i * D + t] / tau;
                }
                *rtau -= g * dot[j] / (tau * tau);
            }
        }
    }
    return loss;
}

static int close_ref(const float *got, const double *want, size_t n, double tol) {
    double s = 1e-30;
    for (size_t i = 0; i < n; i++) s = fmax(s, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= tol * s)) return 0;
    return 1;
}

/* nn_sampled_softmax_multi against multi_ref on (Q, C). */
static void check_ref(const char *what, const float *Q, const float *C, const float w[2], int with_excl) {
    static float dq[NQ * D], dc[NC * D], scratch[(NQ + 2) * NC];
    static double rq[NQ * D], rc[NC * D];
    const uint64_t *eo = with_excl ? off : NULL;
    double rtau, rk[2];
    double ref = multi_ref(Q, C, 2, pos, w, eo, rq, rc, &rtau, rk);
    float dtau = 0, lossk[2];
    float loss = nn_sampled_softmax_multi(Q, C, 2, pos, w, cid, lq, eo, ex, NQ, NC, D, 0.2f, dq, dc, &dtau, lossk,
                                          scratch);
    CHECK_MSG(fabs(loss - ref) <= 1e-5 * fabs(ref), "%s: loss %.9g, reference %.9g (excl %d)", what, loss, ref,
              with_excl);
    for (int k = 0; k < 2; k++) CHECK_MSG(fabs(lossk[k] - rk[k]) <= 1e-5 * fabs(rk[k]) + 1e-12, "%s: loss %d", what, k);
    CHECK_MSG(fabs(dtau - rtau) <= 1e-4 * fabs(rtau) + 1e-6, "%s: dtau %.9g, reference %.9g", what, dtau, rtau);
    CHECK_MSG(close_ref(dq, rq, NQ * D, 1e-5), "%s: dq (excl %d)", what, with_excl);
    CHECK_MSG(close_ref(dc, rc, NC * D, 1e-5), "%s: dc (excl %d)", what, with_excl);
}

int main(void) {
    sp_rng r;
    sp_rng_init(&r, 5, 11, 0);
    for (int i = 0; i < NQ * D; i++) q[i] = (float)(sp_rng_unif(&r) - 0.5);
    for (int i = 0; i < NC * D; i++) c[i] = (float)(sp_rng_unif(&r) - 0.5);
    for (int j = 0; j < NC; j++) lq[j] = (float)(-3 * sp_rng_unif(&r));
    /* ids: a few repeats so accidental hits occur (a target's id elsewhere among the candidates) */
    for (int j = 0; j < NC; j++) cid[j] = 1000 + (uint64_t)(j % (NC - 11));
    for (int i = 0; i < NQ; i++) pos[i] = i, pos[NQ + i] = NQ + i;
    pos[NQ + 3] = 3; /* one query whose two targets are the same column */
    /* exclusions: up to 4 ids per query, one of them sometimes the query's own positive (kept) */
    off[0] = 0;
    for (int i = 0; i < NQ; i++) {
        int n = i % 5;
        for (int e = 0; e < n; e++) ex[off[i] + e] = e == 1 ? cid[pos[i]] : cid[sp_rng_below(&r, NC)];
        off[i + 1] = off[i] + (uint64_t)n;
    }
    const float W[4][2] = {{1.0f, 1.0f}, {0.7f, 1.3f}, {0.0f, 0.5f}, {0.25f, 0.0f}};
    for (int t = 0; t < 4; t++)
        for (int e = 0; e < 2; e++) check_weights(W[t], e);

    for (int t = 0; t < 4; t++)
        for (int e = 0; e < 2; e++) check_ref("random", q, c, W[t], e);
    /* query 0's accidental hit (a column with its positive's id) scores ~50/tau above every kept column: the
     * kept columns' exponentials underflow after the shared max, so the row must take the per-target path */
    {
        static float c2[NC * D];
        memcpy(c2, c, sizeof c2);
        int hit = -1;
        for (int j = 0; j < NC && hit < 0; j++)
            if (j != pos[0] && cid[j] == cid[pos[0]]) hit = j;
        CHECK(hit >= 0);
        if (hit >= 0) {
            double n2 = 0;
            for (int t = 0; t < D; t++) n2 += (double)q[t] * q[t];
            for (int t = 0; t < D; t++) c2[hit * D + t] = (float)(50.0 * q[t] / n2);
            for (int e = 0; e < 2; e++) check_ref("dominant masked column", q, c2, W[1], e);
        }
    }

    /* one target of weight 1: the single-target function's bits */
    static float dq[NQ * D], dc[NC * D], dq1[NQ * D], dc1[NC * D], scratch[(NQ + 2) * NC];
    float w1 = 1.0f, t1, t2, lk;
    float l1 = nn_sampled_softmax_multi(q, c, 1, pos, &w1, cid, lq, off, ex, NQ, NC, D, 0.2f, dq, dc, &t1, &lk, scratch);
    float l2 = nn_sampled_softmax_ex(q, c, pos, cid, lq, off, ex, NQ, NC, D, 0.2f, dq1, dc1, &t2, scratch);
    CHECK(l1 == l2 && lk == l2 && t1 == t2);
    CHECK(!memcmp(dq, dq1, sizeof dq) && !memcmp(dc, dc1, sizeof dc));
    /* target counts out of range */
    CHECK(isnan(nn_sampled_softmax_multi(q, c, 0, pos, &w1, cid, lq, NULL, NULL, NQ, NC, D, 0.2f, dq, dc, &t1, NULL,
                                         scratch)));
    CHECK(isnan(nn_sampled_softmax_multi(q, c, NN_SOFTMAX_MAX_TARGETS + 1, pos, &w1, cid, lq, NULL, NULL, NQ, NC, D,
                                         0.2f, dq, dc, &t1, NULL, scratch)));
    return CHECK_DONE();
}
