/* test_nn_grad: every nn/ op with a backward pass against central finite
 * differences, and every forward against a naive double-precision loop.
 *
 * Gradient checks: the objective is a scalar L (Σ r ⊙ y with a fixed random r,
 * or the loss itself), summed in double; each float input element is moved to
 * x ± h (h = 1e-3 unless stated) and the numeric derivative is
 * (L(x+h) − L(x−h)) / ((x+h) − (x−h)) with the float-rounded step. Bound per
 * element: |a − b| ≤ GRAD_TOL · max(|a|, |b|, 0.1·G, 1e-6) with GRAD_TOL = 1e-2
 * and G the largest |gradient| of that tensor (analytic or numeric), i.e. 1%
 * relative, and 0.1% of G absolute for the small elements. Inputs of the
 * kinked ops (relu, the hinge) are kept at least 0.02 away from the kink. */
#include <stdlib.h>

#include "check.h"
#include "nn.h"
#include "sp_base.h"

#define GRAD_TOL 1e-2
#define FWD_TOL 1e-5 /* forward vs double reference: |a − b| ≤ FWD_TOL · max(1, |b|) */
#define H 1e-3f

typedef double (*obj_fn)(void *ctx);

static sp_rng R;

static float *fnew(size_t n) {
    float *p = malloc(sizeof *p * (n ? n : 1));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}
static void unif(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)sp_rng_unif(&R);
}
static void fill(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}
static double sum_r(const float *r, const float *y, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)r[i] * y[i];
    return s;
}

/* Analytic gradient g (n) of f with respect to x (n) against central differences. */
static void grad_check_h(const char *what, obj_fn f, void *ctx, float *x, const float *g, size_t n, float h) {
    double *fd = malloc(sizeof *fd * (n ? n : 1)), G = 0.0;
    for (size_t k = 0; k < n; k++) {
        float x0 = x[k], xp = x0 + h, xm = x0 - h;
        x[k] = xp;
        double lp = f(ctx);
        x[k] = xm;
        double lm = f(ctx);
        x[k] = x0;
        fd[k] = (lp - lm) / ((double)xp - (double)xm);
        G = fmax(G, fmax(fabs(fd[k]), fabs((double)g[k])));
    }
    double worst = 0.0;
    size_t wk = 0;
    for (size_t k = 0; k < n; k++) {
        double a = g[k], b = fd[k];
        double s = fmax(fmax(fabs(a), fabs(b)), fmax(0.1 * G, 1e-6));
        double e = fabs(a - b) / s;
        if (e > worst || e != e) worst = e, wk = k;
    }
    CHECK_MSG(worst <= GRAD_TOL, "%s: element %zu of %zu: analytic %.8g, numeric %.8g (error %.3g > %g; largest |grad| %.3g)",
              what, wk, n, n ? g[wk] : 0.0, n ? fd[wk] : 0.0, worst, GRAD_TOL, G);
    fprintf(stderr, "  grad %-26s n=%-5zu largest |g| %-10.3g worst error %.2e\n", what, n, G, worst);
    free(fd);
}
static void grad_check(const char *what, obj_fn f, void *ctx, float *x, const float *g, size_t n) {
    grad_check_h(what, f, ctx, x, g, n, H);
}

/* Float result y (n) against a double reference. */
static void fwd_check(const char *what, const float *y, const double *ref, size_t n, double tol) {
    double worst = 0.0;
    size_t wk = 0;
    for (size_t k = 0; k < n; k++) {
        double e = fabs(y[k] - ref[k]) / fmax(1.0, fabs(ref[k]));
        if (e > worst || e != e) worst = e, wk = k;
    }
    CHECK_MSG(worst <= tol, "%s: element %zu of %zu: got %.9g, reference %.9g (error %.3g > %g)", what, wk, n,
              n ? y[wk] : 0.0, n ? ref[wk] : 0.0, worst, tol);
}
/* Analytic gradient g (n) against a double reference computed from the definition:
 * |a − b| ≤ REF_TOL · max(|b|, 0.1·G), G the largest |reference| (float sums vs double). */
#define REF_TOL 1e-3
static void ref_check(const char *what, const float *g, const double *ref, size_t n) {
    double G = 0.0, worst = 0.0;
    size_t wk = 0;
    for (size_t k = 0; k < n; k++) G = fmax(G, fabs(ref[k]));
    for (size_t k = 0; k < n; k++) {
        double e = fabs(g[k] - ref[k]) / fmax(fmax(fabs(ref[k]), 0.1 * G), 1e-30);
        if (e > worst || e != e) worst = e, wk = k;
    }
    CHECK_MSG(worst <= REF_TOL, "%s: element %zu of %zu: got %.9g, reference %.9g (error %.3g > %g; largest %.3g)", what,
              wk, n, n ? g[wk] : 0.0, n ? ref[wk] : 0.0, worst, REF_TOL, G);
}
static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* ---- gemm and linear ---- */

static void test_gemm(void) {
    const int m = 5, n = 7, k = 3;
    float A[5 * 3], B[3 * 7], C[5 * 7], C0[5 * 7];
    double ref[5 * 7];
    for (int tA = 0; tA < 2; tA++)
        for (int tB = 0; tB < 2; tB++)
            for (int bi = 0; bi < 2; bi++) {
                float alpha = 0.7f, beta = bi ? -0.4f : 0.0f;
                unif(A, sizeof A / sizeof *A, -1, 1);
                unif(B, sizeof B / sizeof *B, -1, 1);
                unif(C0, sizeof C0 / sizeof *C0, -1, 1);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double s = 0.0;
                        for (int l = 0; l < k; l++) {
                            double a = tA ? A[l * m + i] : A[i * k + l]; /* (k, m) or (m, k) */
                            double b = tB ? B[j * k + l] : B[l * n + j]; /* (n, k) or (k, n) */
                            s += a * b;
                        }
                        ref[i * n + j] = alpha * s + (beta == 0.0f ? 0.0 : beta * C0[i * n + j]);
                    }
                /* beta == 0: C is not read, NaN in it must not survive */
                for (int i = 0; i < m * n; i++) C[i] = beta == 0.0f ? NAN : C0[i];
                nn_gemm(tA, tB, m, n, k, alpha, A, B, beta, C);
                char what[64];
                snprintf(what, sizeof what, "gemm tA=%d tB=%d beta=%g", tA, tB, beta);
                fwd_check(what, C, ref, (size_t)m * n, FWD_TOL);
            }
    /* k = 0: C = beta · C */
    for (int i = 0; i < m * n; i++) C[i] = C0[i], ref[i] = 0.5 * C0[i];
    nn_gemm(0, 0, m, n, 0, 1.0f, A, B, 0.5f, C);
    fwd_check("gemm k=0", C, ref, (size_t)m * n, FWD_TOL);
}

typedef struct { float *x, *W, *b, *y, *r; int n, in, out; } lin_ctx;
static double obj_linear(void *p) {
    lin_ctx *c = p;
    nn_linear_fwd(c->y, c->x, c->W, c->b, c->n, c->in, c->out);
    return sum_r(c->r, c->y, (size_t)c->n * c->out);
}

static void test_linear(void) {
    enum { N = 4, IN = 6, OUT = 5 };
    float x[N * IN], W[IN * OUT], b[OUT], y[N * OUT], r[N * OUT];
    float dx[N * IN], dW[IN * OUT], db[OUT], dW0[IN * OUT], db0[OUT];
    unif(x, N * IN, -1, 1), unif(W, IN * OUT, -1, 1), unif(b, OUT, -1, 1), unif(r, N * OUT, -1, 1);
    lin_ctx c = {x, W, b, y, r, N, IN, OUT};
    for (int withb = 0; withb < 2; withb++) {
        c.b = withb ? b : NULL;
        obj_linear(&c);
        double ref[N * OUT];
        for (int i = 0; i < N; i++)
            for (int o = 0; o < OUT; o++) {
                double s = withb ? b[o] : 0.0;
                for (int k = 0; k < IN; k++) s += (double)x[i * IN + k] * W[k * OUT + o];
                ref[i * OUT + o] = s;
            }
        fwd_check(withb ? "linear fwd" : "linear fwd b=NULL", y, ref, N * OUT, FWD_TOL);
    }
    c.b = b;
    /* dx overwritten (NaN before), dW and db accumulated onto dW0, db0 */
    fill(dx, N * IN, NAN);
    unif(dW0, IN * OUT, -1, 1), unif(db0, OUT, -1, 1);
    memcpy(dW, dW0, sizeof dW), memcpy(db, db0, sizeof db);
    nn_linear_bwd(dx, dW, db, r, x, W, N, IN, OUT);
    for (int i = 0; i < IN * OUT; i++) dW[i] -= dW0[i];
    for (int i = 0; i < OUT; i++) db[i] -= db0[i];
    grad_check("linear dx", obj_linear, &c, x, dx, N * IN);
    grad_check("linear dW (accumulated)", obj_linear, &c, W, dW, IN * OUT);
    grad_check("linear db (accumulated)", obj_linear, &c, b, db, OUT);
    /* NULL gradients are skipped, the others unchanged */
    float dx2[N * IN];
    nn_linear_bwd(dx2, NULL, NULL, r, x, W, N, IN, OUT);
    CHECK(!memcmp(dx, dx2, sizeof dx));
}

/* ---- elementwise ---- */

typedef struct { float *x, *y, *r; size_t n; void (*fwd)(float *, const float *, size_t); } ew_ctx;
static double obj_ew(void *p) {
    ew_ctx *c = p;
    c->fwd(c->y, c->x, c->n);
    return sum_r(c->r, c->y, c->n);
}

static double gelu_ref(double x) { return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }

static void test_elementwise(void) {
    enum { N = 64 };
    float x[N], y[N], r[N], dx[N], t[N];
    double ref[N];
    /* relu, inputs at least 0.02 from the kink */
    unif(x, N, -2, 2);
    for (int i = 0; i < N; i++)
        if (fabsf(x[i]) < 0.02f) x[i] = x[i] < 0 ? -0.5f : 0.5f;
    unif(r, N, -1, 1);
    ew_ctx c = {x, y, r, N, nn_relu_fwd};
    obj_ew(&c);
    for (int i = 0; i < N; i++) ref[i] = x[i] > 0 ? x[i] : 0.0;
    fwd_check("relu fwd", y, ref, N, 0.0);
    nn_relu_bwd(dx, r, y, N);
    memcpy(t, x, sizeof t); /* in place */
    nn_relu_fwd(t, t, N);
    CHECK(!memcmp(t, y, sizeof t));
    memcpy(t, r, sizeof t);
    nn_relu_bwd(t, t, y, N);
    CHECK(!memcmp(t, dx, sizeof t));
    grad_check("relu dx", obj_ew, &c, x, dx, N); /* leaves y stale */

    /* gelu, over a range that covers both tails */
    unif(x, N, -4, 4);
    c.fwd = nn_gelu_fwd;
    obj_ew(&c);
    for (int i = 0; i < N; i++) ref[i] = gelu_ref(x[i]);
    fwd_check("gelu fwd", y, ref, N, FWD_TOL);
    nn_gelu_bwd(dx, r, x, N);
    memcpy(t, r, sizeof t);
    nn_gelu_bwd(t, t, x, N);
    CHECK(!memcmp(t, dx, sizeof t));
    grad_check("gelu dx", obj_ew, &c, x, dx, N);
}

/* ---- row normalisations and softmax ---- */

typedef struct { float *x, *y, *norm, *r; int n, d; } l2_ctx;
static double obj_l2(void *p) {
    l2_ctx *c = p;
    nn_l2norm_fwd(c->y, c->norm, c->x, c->n, c->d);
    return sum_r(c->r, c->y, (size_t)c->n * c->d);
}

static void test_l2norm(void) {
    enum { N = 5, D = 7 };
    float x[N * D], y[N * D], norm[N], r[N * D], dx[N * D], t[N * D];
    double ref[N * D];
    unif(x, N * D, -1, 1), unif(r, N * D, -1, 1);
    l2_ctx c = {x, y, norm, r, N, D};
    obj_l2(&c);
    for (int i = 0; i < N; i++) {
        double s = 0.0;
        for (int k = 0; k < D; k++) s += (double)x[i * D + k] * x[i * D + k];
        for (int k = 0; k < D; k++) ref[i * D + k] = x[i * D + k] / sqrt(s);
    }
    fwd_check("l2norm fwd", y, ref, N * D, FWD_TOL);
    nn_l2norm_bwd(dx, r, y, norm, N, D);
    memcpy(t, x, sizeof t);
    nn_l2norm_fwd(t, norm, t, N, D);
    CHECK(!memcmp(t, y, sizeof t));
    memcpy(t, r, sizeof t);
    nn_l2norm_bwd(t, t, y, norm, N, D);
    CHECK(!memcmp(t, dx, sizeof t));
    grad_check("l2norm dx", obj_l2, &c, x, dx, N * D);

    /* huge rows (‖x‖² overflows float) stay unit length; a zero row gives 0 and the clamp */
    unif(x, D, -1e30f, 1e30f);
    fill(x + D, D, 0.0f);
    nn_l2norm_fwd(y, norm, x, 2, D);
    double s = 0.0;
    for (int k = 0; k < D; k++) s += (double)y[k] * y[k];
    CHECK_NEAR(s, 1.0, 1e-5);
    CHECK(all_finite(y, 2 * D));
    for (int k = 0; k < D; k++) CHECK(y[D + k] == 0.0f);
    CHECK(norm[1] == 1e-12f);
    /* clamped rows (‖x‖ < 1e-12): y = x / 1e-12, gradient dy / 1e-12. Norms of 0.5e-12 to 0.9e-12
     * keep ‖y‖ near 1, where the unclamped formula would differ; steps of 1e-16 stay clamped. */
    unif(x, N * D, -1, 1);
    for (int i = 0; i < N; i++) {
        double s2 = 0.0;
        for (int k = 0; k < D; k++) s2 += (double)x[i * D + k] * x[i * D + k];
        double want = (0.5 + 0.1 * i) * 1e-12;
        for (int k = 0; k < D; k++) x[i * D + k] = (float)(x[i * D + k] * want / sqrt(s2));
    }
    obj_l2(&c);
    for (int i = 0; i < N; i++) CHECK(norm[i] == 1e-12f);
    nn_l2norm_bwd(dx, r, y, norm, N, D);
    grad_check_h("l2norm dx (clamped rows)", obj_l2, &c, x, dx, N * D, 1e-16f);
}

typedef struct { float *x, *g, *b, *y, *mean, *rstd, *r; int n, d; } ln_ctx;
static double obj_ln(void *p) {
    ln_ctx *c = p;
    nn_layernorm_fwd(c->y, c->mean, c->rstd, c->x, c->g, c->b, c->n, c->d);
    return sum_r(c->r, c->y, (size_t)c->n * c->d);
}

static void layernorm_ref(double *ref, const float *x, const float *g, const float *b, int n, int d) {
    for (int i = 0; i < n; i++) {
        double mu = 0.0, var = 0.0;
        for (int k = 0; k < d; k++) mu += x[i * d + k];
        mu /= d;
        for (int k = 0; k < d; k++) var += (x[i * d + k] - mu) * (x[i * d + k] - mu);
        var /= d;
        for (int k = 0; k < d; k++) ref[i * d + k] = (x[i * d + k] - mu) / sqrt(var + 1e-5) * g[k] + (b ? b[k] : 0.0);
    }
}

static void test_layernorm(void) {
    enum { N = 4, D = 9 };
    float x[N * D], g[D], b[D], y[N * D], mean[N], rstd[N], r[N * D], dx[N * D], dg[D], db[D], dg0[D], db0[D];
    double ref[N * D];
    unif(x, N * D, -2, 2), unif(g, D, 0.5f, 1.5f), unif(b, D, -1, 1), unif(r, N * D, -1, 1);
    ln_ctx c = {x, g, b, y, mean, rstd, r, N, D};
    for (int withb = 0; withb < 2; withb++) {
        c.b = withb ? b : NULL;
        obj_ln(&c);
        layernorm_ref(ref, x, g, c.b, N, D);
        fwd_check(withb ? "layernorm fwd" : "layernorm fwd b=NULL", y, ref, N * D, FWD_TOL);
    }
    c.b = b;
    obj_ln(&c);
    fill(dx, N * D, NAN);
    unif(dg0, D, -1, 1), unif(db0, D, -1, 1);
    memcpy(dg, dg0, sizeof dg), memcpy(db, db0, sizeof db);
    nn_layernorm_bwd(dx, dg, db, r, x, mean, rstd, g, N, D);
    for (int k = 0; k < D; k++) dg[k] -= dg0[k], db[k] -= db0[k];
    grad_check("layernorm dx", obj_ln, &c, x, dx, N * D);
    grad_check("layernorm dg (accumulated)", obj_ln, &c, g, dg, D);
    grad_check("layernorm db (accumulated)", obj_ln, &c, b, db, D);
    /* a large common offset: the two-pass variance keeps the small spread */
    for (int i = 0; i < N * D; i++) x[i] = 1e4f + (float)(sp_rng_unif(&R) - 0.5);
    obj_ln(&c);
    layernorm_ref(ref, x, g, b, N, D);
    fwd_check("layernorm fwd, offset 1e4", y, ref, N * D, FWD_TOL);
}

typedef struct { float *x, *y, *r; int n, d; } sm_ctx;
static double obj_sm(void *p) {
    sm_ctx *c = p;
    nn_softmax_fwd(c->y, c->x, c->n, c->d);
    return sum_r(c->r, c->y, (size_t)c->n * c->d);
}

static void test_softmax(void) {
    enum { N = 4, D = 8 };
    float x[N * D], y[N * D], r[N * D], dx[N * D], t[N * D];
    double ref[N * D];
    unif(x, N * D, -3, 3), unif(r, N * D, -1, 1);
    x[D] = 1000.0f, x[D + 1] = 999.0f; /* row 1: exp overflows without the max subtraction */
    for (int k = 0; k < D; k++) x[2 * D + k] = -1000.0f - (float)k; /* row 2: underflows without it */
    sm_ctx c = {x, y, r, N, D};
    obj_sm(&c);
    for (int i = 0; i < N; i++) {
        double mx = -INFINITY, s = 0.0;
        for (int k = 0; k < D; k++) mx = fmax(mx, x[i * D + k]);
        for (int k = 0; k < D; k++) s += exp(x[i * D + k] - mx);
        for (int k = 0; k < D; k++) ref[i * D + k] = exp(x[i * D + k] - mx) / s;
    }
    fwd_check("softmax fwd", y, ref, N * D, FWD_TOL);
    CHECK(all_finite(y, N * D));
    nn_softmax_bwd(dx, r, y, N, D);
    memcpy(t, x, sizeof t);
    nn_softmax_fwd(t, t, N, D);
    CHECK(!memcmp(t, y, sizeof t));
    memcpy(t, r, sizeof t);
    nn_softmax_bwd(t, t, y, N, D);
    CHECK(!memcmp(t, dx, sizeof t));
    grad_check("softmax dx", obj_sm, &c, x, dx, N * D);
}

/* ---- pool ---- */

typedef struct { float *h, *w, *out, *r; const uint32_t *idx; const uint64_t *off; int n, d; } pool_ctx;
static double obj_pool(void *p) {
    pool_ctx *c = p;
    nn_pool_fwd(c->out, c->h, c->idx, c->w, c->off, c->n, c->d);
    return sum_r(c->r, c->out, (size_t)c->n * c->d);
}

static void test_pool(void) {
    /* 5 bags over 7 rows of h: repeated rows within a bag and across bags, an empty bag (row 2),
     * a row of h nobody gathers (6); d = 13 covers the vector body and its tail */
    enum { NH = 7, D = 13, NB = 5, NE = 11 };
    const uint32_t idx[NE] = {0, 3, 3, 1, 5, 2, 0, 4, 4, 4, 1};
    const uint64_t off[NB + 1] = {0, 3, 5, 5, 8, 11};
    float h[NH * D], w[NE], out[NB * D], r[NB * D], dh[NH * D], dh0[NH * D], dw[NE], t[NB * D];
    double ref[NB * D];
    CHECK_RC(nn_pool_check(idx, off, NB, NH), SP_OK);
    unif(h, NH * D, -1, 1), unif(w, NE, -1, 1), unif(r, NB * D, -1, 1);
    pool_ctx c = {h, w, out, r, idx, off, NB, D};
    for (int weighted = 0; weighted < 2; weighted++) {
        c.w = weighted ? w : NULL;
        fill(out, NB * D, NAN);
        obj_pool(&c);
        for (int i = 0; i < NB; i++)
            for (int k = 0; k < D; k++) {
                double s = 0.0;
                for (uint64_t j = off[i]; j < off[i + 1]; j++) s += (weighted ? w[j] : 1.0) * h[idx[j] * D + k];
                ref[i * D + k] = s;
            }
        fwd_check(weighted ? "pool fwd" : "pool fwd w=NULL", out, ref, NB * D, FWD_TOL);
        /* dh accumulated onto dh0 */
        unif(dh0, NH * D, -1, 1);
        memcpy(dh, dh0, sizeof dh);
        nn_pool_bwd(dh, r, idx, c.w, off, NB, D);
        for (int i = 0; i < NH * D; i++) dh[i] -= dh0[i];
        grad_check(weighted ? "pool dh (accumulated)" : "pool dh w=NULL", obj_pool, &c, h, dh, NH * D);
        for (int k = 0; k < D; k++) CHECK(dh[6 * D + k] == 0.0f); /* never gathered */
    }
    c.w = w;
    fill(dw, NE, NAN);
    nn_pool_bwd_w(dw, r, h, idx, off, NB, D);
    grad_check("pool_bwd_w dw", obj_pool, &c, w, dw, NE);
    /* unit weights give the same sums as w == NULL */
    float ones[NE];
    fill(ones, NE, 1.0f);
    nn_pool_fwd(out, h, idx, ones, off, NB, D);
    nn_pool_fwd(t, h, idx, NULL, off, NB, D);
    CHECK(!memcmp(out, t, sizeof t));
}

/* ---- sampled softmax ---- */

typedef struct {
    float *q, *c, *logq, *scratch, tau;
    const int *pos;
    const uint64_t *cid;
    int nq, nc, d;
} ss_ctx;
static double obj_ss(void *p) {
    ss_ctx *s = p;
    return nn_sampled_softmax(s->q, s->c, s->pos, s->cid, s->logq, s->nq, s->nc, s->d, s->tau, NULL, NULL, NULL,
                              s->scratch);
}

/* The loss and its gradients (rq (nq, d), rc (nc, d), *rtau) in double, straight from the
 * definition: ∂loss/∂logit_ij = (softmax_ij − [j = pos_i]) / nq, masked columns excluded. */
static double ss_ref(const ss_ctx *s, int *nmasked, double *rq, double *rc, double *rtau) {
    int nq = s->nq, nc = s->nc, d = s->d;
    double loss = 0.0, tau = s->tau;
    *nmasked = 0, *rtau = 0.0;
    memset(rq, 0, sizeof *rq * (size_t)nq * d), memset(rc, 0, sizeof *rc * (size_t)nc * d);
    for (int i = 0; i < nq; i++) {
        int p = s->pos[i];
        double z[512] = {0}, dot[512] = {0}, mx = -INFINITY; /* nc ≤ 512 in these tests */
        for (int j = 0; j < nc; j++) {
            dot[j] = 0.0;
            for (int k = 0; k < d; k++) dot[j] += (double)s->q[i * d + k] * s->c[j * d + k];
            int masked = s->cid && j != p && s->cid[j] == s->cid[p];
            *nmasked += masked;
            z[j] = masked ? -INFINITY : dot[j] / tau - (s->logq ? s->logq[j] : 0.0);
            mx = fmax(mx, z[j]);
        }
        double sum = 0.0;
        for (int j = 0; j < nc; j++) sum += exp(z[j] - mx);
        loss += log(sum) + mx - z[p];
        for (int j = 0; j < nc; j++) {
            double g = (exp(z[j] - mx) / sum - (j == p)) / nq;
            for (int k = 0; k < d; k++) {
                rq[i * d + k] += g * s->c[j * d + k] / tau;
                rc[j * d + k] += g * s->q[i * d + k] / tau;
            }
            *rtau -= g * dot[j] / (tau * tau);
        }
    }
    return loss / nq;
}

static void ss_case(const char *name, int nq, int nc, int d, float tau, int use_cid, int use_logq, int fd) {
    float *q = fnew((size_t)nq * d), *c = fnew((size_t)nc * d), *logq = fnew((size_t)nc);
    float *dq = fnew((size_t)nq * d), *dc = fnew((size_t)nc * d), *scratch = fnew((size_t)nq * nc);
    int *pos = malloc(sizeof *pos * (size_t)nq);
    uint64_t *cid = malloc(sizeof *cid * (size_t)nc);
    unif(q, (size_t)nq * d, -1, 1), unif(c, (size_t)nc * d, -1, 1), unif(logq, (size_t)nc, -6, -1);
    /* the first nq columns are the in-batch positives (query i's is column i, but queries 0 and 1
     * share one item); shared negatives are drawn from nq + 3 ids, so some of them are that item
     * or another query's positive: accidental hits */
    for (int j = 0; j < nc; j++) cid[j] = j < nq ? 1000 + (uint64_t)j : 1000 + sp_rng_below(&R, (uint64_t)nq + 3);
    cid[1] = cid[0];
    for (int i = 0; i < nq; i++) pos[i] = i;
    char what[96];
    ss_ctx s = {q, c, use_logq ? logq : NULL, scratch, tau, pos, use_cid ? cid : NULL, nq, nc, d};
    int nmasked;
    double *rq = malloc(sizeof *rq * (size_t)nq * d), *rc = malloc(sizeof *rc * (size_t)nc * d), rtau;
    double ref = ss_ref(&s, &nmasked, rq, rc, &rtau);
    if (use_cid) CHECK_MSG(nmasked > 0, "%s: no accidental hit to mask", name);
    fill(dq, (size_t)nq * d, NAN), fill(dc, (size_t)nc * d, NAN);
    float dtau = NAN;
    float loss = nn_sampled_softmax(q, c, pos, s.cid, s.logq, nq, nc, d, tau, dq, dc, &dtau, scratch);
    CHECK_MSG(fabs(loss - ref) <= 1e-5 * fmax(1.0, fabs(ref)), "%s: loss %.9g, reference %.9g", name, loss, ref);
    snprintf(what, sizeof what, "%s dq vs ref", name);
    ref_check(what, dq, rq, (size_t)nq * d);
    snprintf(what, sizeof what, "%s dc vs ref", name);
    ref_check(what, dc, rc, (size_t)nc * d);
    snprintf(what, sizeof what, "%s dtau vs ref", name);
    ref_check(what, &dtau, &rtau, 1);
    if (fd) { /* the loss comes back as a float: its rounding limits the finite differences to small batches */
        snprintf(what, sizeof what, "%s dq", name);
        grad_check(what, obj_ss, &s, q, dq, (size_t)nq * d);
        snprintf(what, sizeof what, "%s dc", name);
        grad_check(what, obj_ss, &s, c, dc, (size_t)nc * d);
        snprintf(what, sizeof what, "%s dtau", name);
        grad_check_h(what, obj_ss, &s, &s.tau, &dtau, 1, 1e-3f * tau);
    }
    /* NULL gradients: same loss */
    float loss2 = nn_sampled_softmax(q, c, pos, s.cid, s.logq, nq, nc, d, tau, NULL, NULL, NULL, scratch);
    CHECK_MSG(loss2 == loss, "%s: loss without gradients %.9g != %.9g", name, loss2, loss);
    free(q), free(c), free(logq), free(dq), free(dc), free(scratch), free(pos), free(cid), free(rq), free(rc);
}

static void test_sampled_softmax(void) {
    ss_case("sampled_softmax", 5, 12, 6, 0.3f, 1, 1, 1);
    ss_case("sampled_softmax no mask", 5, 12, 6, 0.3f, 0, 1, 1);
    ss_case("sampled_softmax no logq", 5, 12, 6, 0.3f, 1, 0, 1);
    ss_case("sampled_softmax 40x100", 40, 100, 8, 0.5f, 1, 1, 0);
    /* logits of several hundred (tau 0.002): finite, equal to the double log-sum-exp */
    enum { NQ = 3, NC = 6, D = 4 };
    float q[NQ * D], c[NC * D], dq[NQ * D], dc[NC * D], scratch[NQ * NC], dtau;
    int pos[NQ] = {0, 1, 2};
    unif(q, NQ * D, -1, 1), unif(c, NC * D, -1, 1);
    ss_ctx s = {q, c, NULL, scratch, 0.002f, pos, NULL, NQ, NC, D};
    int nm;
    double rq[NQ * D], rc[NC * D], rtau;
    double ref = ss_ref(&s, &nm, rq, rc, &rtau);
    float loss = nn_sampled_softmax(q, c, pos, NULL, NULL, NQ, NC, D, 0.002f, dq, dc, &dtau, scratch);
    CHECK_MSG(isfinite(loss) && fabs(loss - ref) <= 1e-4 * fmax(1.0, fabs(ref)), "large logits: loss %.9g, ref %.9g",
              loss, ref);
    CHECK(all_finite(dq, NQ * D) && all_finite(dc, NC * D) && isfinite(dtau));
    ref_check("large logits dq vs ref", dq, rq, NQ * D);
    ref_check("large logits dc vs ref", dc, rc, NC * D);
}

/* ---- max margin ---- */

typedef struct { float *q, *p, *neg, *hard, margin; int nq, nneg, nhard, d; } mm_ctx;
static double obj_mm(void *v) {
    mm_ctx *s = v;
    return nn_max_margin(s->q, s->p, s->neg, s->hard, s->nq, s->nneg, s->nhard, s->d, s->margin, NULL, NULL, NULL,
                         NULL);
}

/* Loss and gradients in double from the definition; returns the loss, counts active hinges and
 * the smallest |hinge argument|. */
static double mm_ref(const mm_ctx *s, double *dq, double *dp, double *dneg, double *dhard, int *nactive,
                     double *closest) {
    int nq = s->nq, nneg = s->nneg, nhard = s->nhard, d = s->d, nk = nneg + nhard;
    memset(dq, 0, sizeof *dq * (size_t)nq * d), memset(dp, 0, sizeof *dp * (size_t)nq * d);
    memset(dneg, 0, sizeof *dneg * (size_t)nneg * d), memset(dhard, 0, sizeof *dhard * (size_t)nq * nhard * d);
    double loss = 0.0, a = 1.0 / ((double)nq * nk);
    *nactive = 0, *closest = INFINITY;
    for (int i = 0; i < nq; i++) {
        const float *qi = s->q + i * d, *pi = s->p + i * d;
        double sp = 0.0;
        for (int k = 0; k < d; k++) sp += (double)qi[k] * pi[k];
        for (int n = 0; n < nk; n++) {
            const float *v = n < nneg ? s->neg + n * d : s->hard + ((size_t)i * nhard + (n - nneg)) * d;
            double *dv = n < nneg ? dneg + n * d : dhard + ((size_t)i * nhard + (n - nneg)) * d;
            double sn = 0.0;
            for (int k = 0; k < d; k++) sn += (double)qi[k] * v[k];
            double h = sn - sp + s->margin;
            *closest = fmin(*closest, fabs(h));
            if (h <= 0) continue;
            loss += h, ++*nactive;
            for (int k = 0; k < d; k++) {
                dq[i * d + k] += a * (v[k] - pi[k]);
                dp[i * d + k] -= a * qi[k];
                dv[k] += a * qi[k];
            }
        }
    }
    return loss * a;
}

static void mm_case(const char *name, int nq, int nneg, int nhard, int d, int fd) {
    size_t nqd = (size_t)nq * d, nnd = (size_t)nneg * d, nhd = (size_t)nq * nhard * d;
    float *q = fnew(nqd), *p = fnew(nqd), *neg = fnew(nnd), *hard = fnew(nhd);
    float *dq = fnew(nqd), *dp = fnew(nqd), *dneg = fnew(nnd), *dhard = fnew(nhd);
    double *rq = malloc(sizeof *rq * nqd), *rp = malloc(sizeof *rp * nqd), *rn = malloc(sizeof *rn * (nnd ? nnd : 1)),
           *rh = malloc(sizeof *rh * (nhd ? nhd : 1));
    mm_ctx s = {q, p, neg, nhard ? hard : NULL, 0.3f, nq, nneg, nhard, d};
    int nactive, tries = 0, nk = nneg + nhard;
    double closest, ref;
    do { /* for the finite differences every hinge argument is ≥ 0.02 from the kink */
        unif(q, nqd, -1, 1), unif(p, nqd, -1, 1), unif(neg, nnd, -1, 1), unif(hard, nhd, -1, 1);
        ref = mm_ref(&s, rq, rp, rn, rh, &nactive, &closest);
    } while (fd && closest < 0.02 && ++tries < 1000);
    CHECK_MSG(nactive > 0 && nactive < nq * nk, "%s: %d of %d hinges active; want some of each", name, nactive,
              nq * nk);
    fill(dq, nqd, NAN), fill(dp, nqd, NAN), fill(dneg, nnd, NAN), fill(dhard, nhd, NAN);
    float loss = nn_max_margin(q, p, neg, s.hard, nq, nneg, nhard, d, s.margin, dq, dp, dneg, nhard ? dhard : NULL);
    CHECK_MSG(fabs(loss - ref) <= 1e-5 * fmax(1.0, fabs(ref)), "%s: loss %.9g, reference %.9g", name, loss, ref);
    char what[96];
    snprintf(what, sizeof what, "%s dq vs ref", name);
    ref_check(what, dq, rq, nqd);
    snprintf(what, sizeof what, "%s dp vs ref", name);
    ref_check(what, dp, rp, nqd);
    snprintf(what, sizeof what, "%s dneg vs ref", name);
    ref_check(what, dneg, rn, nnd);
    snprintf(what, sizeof what, "%s dhard vs ref", name);
    ref_check(what, dhard, rh, nhd);
    if (fd) {
        CHECK_MSG(closest >= 0.02, "%s: no draw kept the hinges away from the kink", name);
        snprintf(what, sizeof what, "%s dq", name);
        grad_check(what, obj_mm, &s, q, dq, nqd);
        snprintf(what, sizeof what, "%s dp", name);
        grad_check(what, obj_mm, &s, p, dp, nqd);
        snprintf(what, sizeof what, "%s dneg", name);
        grad_check(what, obj_mm, &s, neg, dneg, nnd);
        if (nhard) {
            snprintf(what, sizeof what, "%s dhard", name);
            grad_check(what, obj_mm, &s, hard, dhard, nhd);
        }
    }
    free(q), free(p), free(neg), free(hard), free(dq), free(dp), free(dneg), free(dhard);
    free(rq), free(rp), free(rn), free(rh);
}

static void test_max_margin(void) {
    mm_case("max_margin", 4, 6, 3, 5, 1);
    mm_case("max_margin no hard", 4, 6, 0, 5, 1);
    mm_case("max_margin only hard", 4, 0, 3, 5, 1);
    /* more than one 64 x 64 tile of queries and negatives: against the double reference */
    mm_case("max_margin tiled", 70, 130, 2, 6, 0);

    /* every margin satisfied: loss 0, every gradient overwritten with 0 */
    enum { NQ = 3, NN = 4, NH = 2, D = 4 };
    float q[NQ * D], p[NQ * D], neg[NN * D], hard[NQ * NH * D];
    float dq[NQ * D], dp[NQ * D], dneg[NN * D], dhard[NQ * NH * D];
    for (int i = 0; i < NQ * D; i++) q[i] = 1.0f, p[i] = 1.0f;                  /* ⟨q, p⟩ = 4 */
    unif(neg, NN * D, -0.5f, 0.5f), unif(hard, NQ * NH * D, -0.5f, 0.5f); /* ⟨q, n⟩ ≤ 2 */
    fill(dq, NQ * D, NAN), fill(dp, NQ * D, NAN), fill(dneg, NN * D, NAN), fill(dhard, NQ * NH * D, NAN);
    float loss = nn_max_margin(q, p, neg, hard, NQ, NN, NH, D, 1.0f, dq, dp, dneg, dhard);
    CHECK_MSG(loss == 0.0f, "satisfied margins: loss %.9g, want 0", loss);
    int zero = 1;
    for (int i = 0; i < NQ * D; i++) zero &= dq[i] == 0.0f && dp[i] == 0.0f;
    for (int i = 0; i < NN * D; i++) zero &= dneg[i] == 0.0f;
    for (int i = 0; i < NQ * NH * D; i++) zero &= dhard[i] == 0.0f;
    CHECK_MSG(zero, "satisfied margins: a gradient is not 0");
    /* the same data with a margin of 7 (> 4 + 2) violates every one */
    loss = nn_max_margin(q, p, neg, hard, NQ, NN, NH, D, 7.0f, dq, dp, dneg, dhard);
    CHECK_MSG(loss > 0.0f, "violated margins: loss %.9g, want > 0", loss);
}

int main(void) {
    sp_rng_init(&R, 7, 0x6e6e, 0);
    test_gemm();
    test_linear();
    test_elementwise();
    test_l2norm();
    test_layernorm();
    test_softmax();
    test_pool();
    test_sampled_softmax();
    test_max_margin();
    return CHECK_DONE();
}
