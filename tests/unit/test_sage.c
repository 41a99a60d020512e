/* test_sage: the PinSage encoder's backward pass against finite differences
 * (every dense parameter, id rows, token rows; K = 0..2), and the minibatch
 * plan against the layer-wise all-nodes computation the infer stage uses. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sage.h"

typedef struct {
    sp_sage_graph g;
    uint64_t pn_off[64], bn_off[64], tok_off[64];
    uint32_t pn_idx[512], bn_idx[512], tok_row[512];
    float pn_w[512], bn_w[512], logdeg[64], dense[64 * 3];
} tgraph;

static void make_graph(tgraph *t, uint32_t n, uint32_t npins, sp_rng *r) {
    memset(t, 0, sizeof *t);
    uint64_t p = 0, b = 0, k = 0;
    for (uint32_t u = 0; u < n; u++) {
        int m = (int)sp_rng_below(r, 5), mb = (int)sp_rng_below(r, 4);
        if (u == 3) m = mb = 0; /* an isolated node */
        float s = 0, sb = 0;
        for (int j = 0; j < m; j++) s += (t->pn_w[p + j] = 0.1f + (float)sp_rng_unif(r));
        for (int j = 0; j < m; j++) t->pn_idx[p] = (uint32_t)sp_rng_below(r, npins), t->pn_w[p++] /= s;
        for (int j = 0; j < mb; j++) sb += (t->bn_w[b + j] = 0.1f + (float)sp_rng_unif(r));
        for (int j = 0; j < mb; j++) t->bn_idx[b] = npins + (uint32_t)sp_rng_below(r, n - npins), t->bn_w[b++] /= sb;
        t->pn_off[u + 1] = p;
        t->bn_off[u + 1] = b;
        t->logdeg[u] = (float)sp_rng_unif(r) * 3;
        if (u < npins) {
            int nt = (int)sp_rng_below(r, 3);
            for (int j = 0; j < nt; j++) t->tok_row[k++] = (uint32_t)sp_rng_below(r, 7);
            t->tok_off[u + 1] = k;
            for (int j = 0; j < 3; j++) t->dense[u * 3 + j] = (float)(sp_rng_unif(r) - 0.5);
        }
    }
    t->g = (sp_sage_graph){n, npins, t->logdeg, t->pn_off, t->pn_idx, t->pn_w, t->bn_off, t->bn_idx, t->bn_w,
                           3, t->dense, t->tok_off, t->tok_row, NULL};
}

static double objective(const sp_sage_params *P, const sp_sage_graph *g, const sp_sage_plan *pl, sp_sage_acts *a,
                        const float *r) {
    sp_sage_forward(P, g, pl, a);
    double s = 0;
    size_t n = (size_t)pl->n[pl->K] * P->c.d;
    for (size_t i = 0; i < n; i++) s += (double)r[i] * a->out[i];
    return s;
}

/* Checks analytic gradient g[i] of parameter array x[i] (n entries, every stride-th) against central
 * differences. The network has ReLUs and runs in float: an element whose one-sided slopes disagree (a
 * kink between the probes, or rounding noise) cannot judge the analytic value
 * and is skipped; at most 25% of the elements may be skipped (a wrong formula shows on judgeable
 * elements: their two numeric estimates agree with each other but not with the analytic value). */
static void fd_check(const char *what, float *x, const float *g, size_t n, size_t stride, const sp_sage_params *P,
                     const sp_sage_graph *G, const sp_sage_plan *pl, sp_sage_acts *a, const float *r) {
    double worst = 0, gmax = 0;
    size_t wi = 0, skipped = 0, checked = 0;
    const float h = 2e-3f;
    double f0 = objective(P, G, pl, a, r);
    for (size_t i = 0; i < n; i++) gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
    for (size_t i = 0; i < n; i += stride) {
        float x0 = x[i];
        x[i] = x0 + h;
        double fp = objective(P, G, pl, a, r);
        x[i] = x0 - h;
        double fm = objective(P, G, pl, a, r);
        x[i] = x0;
        double up = (fp - f0) / h, down = (f0 - fm) / h, central = (fp - fm) / (2.0 * h);
        double floor_ = fmax(0.1 * gmax, 1e-4);
        /* the one-sided slopes differ across a ReLU kink (or when rounding noise dominates): unjudgeable */
        if (fabs(up - down) > 6e-2 * fmax(fmax(fabs(up), fabs(down)), floor_)) {
            skipped++;
            continue;
        }
        checked++;
        double err = fabs(central - g[i]), bound = 4e-2 * fmax(fmax(fabs(central), fabs(g[i])), floor_);
        if (err / bound > worst) worst = err / bound, wi = i;
    }
    CHECK_MSG(worst <= 1.0, "%s: worst element %zu off by %.3g of its bound (analytic %.6g)", what, wi, worst, g[wi]);
    CHECK_MSG(skipped * 100 <= 25 * (checked + skipped), "%s: %zu of %zu elements unjudgeable (kinks or noise)", what,
              skipped, checked + skipped);
}

static void grad_test(int K) {
    sp_rng r;
    sp_rng_init(&r, 7, 1, (uint64_t)K);
    tgraph t;
    make_graph(&t, 30, 18, &r);
    sp_sage_cfg c = {6, K, 1, 7, 3};
    sp_sage_params P, G;
    CHECK_RC(sp_sage_params_init(&P, &c, 30, &r), SP_OK);
    CHECK_RC(sp_sage_params_zeros(&G, &c, 30), SP_OK);
    /* biases nonzero so that every path is exercised */
    for (size_t i = 0; i < P.ndense; i++) P.dense[i] += 0.05f * (float)(sp_rng_unif(&r) - 0.5);
    uint32_t targets[6] = {0, 5, 20, 3, 5, 29};
    sp_sage_plan pl = {0};
    sp_sage_acts a = {0};
    CHECK_RC(sp_sage_plan_build(&pl, &t.g, K, targets, 6), SP_OK);
    float rr[6 * 6], dout[6 * 6];
    for (int i = 0; i < 36; i++) rr[i] = (float)(sp_rng_unif(&r) - 0.5);
    objective(&P, &t.g, &pl, &a, rr);
    memcpy(dout, rr, sizeof dout);
    uint8_t touched[30] = {0}, tt[7] = {0};
    CHECK_RC(sp_sage_backward(&P, &t.g, &pl, &a, dout, &G, touched, tt), SP_OK);
    char what[64];
    snprintf(what, sizeof what, "K=%d dense parameters", K);
    fd_check(what, P.dense, G.dense, P.ndense, 1, &P, &t.g, &pl, &a, rr);
    snprintf(what, sizeof what, "K=%d id rows", K);
    fd_check(what, P.emb, G.emb, 30 * 6, 1, &P, &t.g, &pl, &a, rr);
    snprintf(what, sizeof what, "K=%d token rows", K);
    fd_check(what, P.tok, G.tok, 7 * 6, 1, &P, &t.g, &pl, &a, rr);
    /* touched = exactly the distinct level-0 nodes (level 0 = the targets themselves when K = 0) */
    uint8_t seen[30] = {0};
    int nt = 0, distinct = 0;
    for (uint32_t i = 0; i < pl.n[0]; i++) distinct += !seen[pl.node[0][i]]++;
    for (int u = 0; u < 30; u++) nt += touched[u] && seen[u];
    CHECK_EQ_INT(nt, distinct);
    for (int u = 0; u < 30; u++) CHECK(!touched[u] || seen[u]);
    /* duplicated target -> identical rows */
    CHECK(!memcmp(a.out + 1 * 6, a.out + 4 * 6, 6 * sizeof(float)));
    sp_sage_plan_free(&pl);
    sp_sage_acts_free(&a);
    sp_sage_params_free(&P);
    sp_sage_params_free(&G);
}

/* Layer-wise over all nodes (what infer does, on one rank) == plan forward of any targets. */
static void layerwise_test(void) {
    sp_rng r;
    sp_rng_init(&r, 9, 2, 0);
    tgraph t;
    make_graph(&t, 40, 25, &r);
    sp_sage_cfg c = {8, 2, 1, 7, 3};
    sp_sage_params P;
    CHECK_RC(sp_sage_params_init(&P, &c, 40, &r), SP_OK);
    uint32_t n = 40;
    float *out = malloc(4 * n * 8);
    CHECK_RC(sp_sage_embed_all(nn_backend_cpu(), &P, &t.g, out), SP_OK);
    uint32_t targets[4] = {39, 0, 3, 17};
    sp_sage_plan pl = {0};
    sp_sage_acts a = {0};
    CHECK_RC(sp_sage_plan_build(&pl, &t.g, 2, targets, 4), SP_OK);
    CHECK_RC(sp_sage_forward(&P, &t.g, &pl, &a), SP_OK);
    double worst = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++) worst = fmax(worst, fabs(a.out[i * 8 + j] - out[targets[i] * 8 + j]));
    CHECK_NEAR(worst, 0, 1e-5);
    /* outputs are unit vectors */
    for (int i = 0; i < 4; i++) {
        double s = 0;
        for (int j = 0; j < 8; j++) s += (double)a.out[i * 8 + j] * a.out[i * 8 + j];
        CHECK_NEAR(s, 1.0, 1e-5);
    }
    free(out);
    sp_sage_plan_free(&pl);
    sp_sage_acts_free(&a);
    sp_sage_params_free(&P);
}

/* sp_sage_params_average: after k = 1..3, every table holds the mean of the three sets. */
static void average_test(void) {
    sp_sage_cfg c = {8, 2, 1, 5, 3};
    sp_sage_params P[3], A;
    sp_rng r;
    sp_rng_init(&r, 11, 0, 0);
    for (int i = 0; i < 3; i++) CHECK_RC(sp_sage_params_init(&P[i], &c, 20, &r), SP_OK);
    CHECK_RC(sp_sage_params_zeros(&A, &c, 20), SP_OK);
    for (int i = 0; i < 3; i++) sp_sage_params_average(&A, &P[i], i + 1);
    struct { const float *a, *p0, *p1, *p2; size_t n; } t[3] = {
        {A.dense, P[0].dense, P[1].dense, P[2].dense, A.ndense},
        {A.emb, P[0].emb, P[1].emb, P[2].emb, 20 * 8},
        {A.tok, P[0].tok, P[1].tok, P[2].tok, 5 * 8},
    };
    for (int j = 0; j < 3; j++) {
        double worst = 0, spread = 0;
        for (size_t i = 0; i < t[j].n; i++) {
            double m = ((double)t[j].p0[i] + t[j].p1[i] + t[j].p2[i]) / 3, e = fabs(t[j].a[i] - m);
            if (e > worst) worst = e;
            spread += fabs(t[j].p0[i] - t[j].p2[i]);
        }
        CHECK(t[j].n > 0 && spread > 0); /* the sets differ, so the mean is not any one of them */
        CHECK(worst < 1e-6);
    }
    for (int i = 0; i < 3; i++) sp_sage_params_free(&P[i]);
    sp_sage_params_free(&A);
}

int main(void) {
    for (int K = 0; K <= 2; K++) grad_test(K);
    layerwise_test();
    average_test();
    sp_sage_cfg bad = {0, 1, 1, 0, 0};
    sp_sage_params P;
    CHECK_RC(sp_sage_params_zeros(&P, &bad, 10), SP_ECONFIG);
    return CHECK_DONE();
}
