/* test_nn_multi: nn_sampled_softmax_multi (several targets over one set of
 * logits, as the user encoder's next-action and all-action losses) equals the
 * weighted sum of separate nn_sampled_softmax_ex calls: loss, per-target
 * losses, dq, dc and dtau, with accidental hits, logQ and per-query
 * exclusions; a target of weight 0 is skipped; one target of weight 1 gives
 * the single-target function's bits; dtau alone (no dq) agrees too. */
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
