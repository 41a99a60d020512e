/* test_seq_encoder: the user encoder's backward pass against finite differences (every
 * parameter tensor and the item inputs), causality, batch independence, encode_last against
 * the full forward, rejection of bad batches and configs, deterministic initialisation. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "encoder.h"
#include "nn.h"

#define MAXN 256

/* A batch whose arrays the test owns and may edit. */
typedef struct {
    sq_batch b;
    uint64_t off[9];
    float item[MAXN * 8];
    uint8_t act[MAXN], surf[MAXN];
    int64_t ts[MAXN], qt[MAXN];
} tbatch;

static const int64_t T0 = 1763769600000LL; /* 2025-11-22 00:00 UTC */

/* B sequences of the given lengths, random content; gaps from seconds to days. */
static void make_batch(tbatch *t, const sq_model *m, int B, const int *len, sp_rng *r) {
    memset(t, 0, sizeof *t);
    int di = m->c.d_item;
    uint64_t n = 0;
    for (int s = 0; s < B; s++) {
        int64_t ts = T0 + (int64_t)sp_rng_below(r, 30 * SP_DAY_MS);
        for (int j = 0; j < len[s]; j++, n++) {
            if (j) ts += (int64_t)sp_rng_below(r, 4) * (int64_t)sp_rng_below(r, 2 * SP_DAY_MS);
            t->ts[n] = ts;
            t->qt[n] = ts + (int64_t)sp_rng_below(r, 3 * SP_DAY_MS);
            t->act[n] = (uint8_t)sp_rng_below(r, (uint64_t)m->c.n_actions);
            t->surf[n] = (uint8_t)sp_rng_below(r, (uint64_t)m->c.n_surfaces);
            for (int k = 0; k < di; k++) t->item[n * di + k] = (float)(sp_rng_unif(r) - 0.5);
        }
        t->off[s + 1] = n;
    }
    t->b = (sq_batch){B, t->off, t->item, t->act, t->surf, t->ts, t->qt};
}

static sq_cfg small_cfg(void) { return (sq_cfg){6, 4, 3, 3, 8, 2, 2, 8}; }

/* A model with every parameter moved off its initial value (biases, LayerNorm offsets and gains
 * otherwise sit at 0 and 1, which would hide mistakes in their paths). */
static void init_perturbed(sq_model *m, const sq_cfg *c, uint64_t seed) {
    CHECK_RC(sq_model_init(m, c, seed), SP_OK);
    sp_rng r;
    sp_rng_init(&r, seed, 99, 0);
    for (size_t i = 0; i < m->n; i++) m->p[i] += 0.2f * (float)(sp_rng_unif(&r) - 0.5);
}

/* The small model with max_len, perturbed, and a random batch of B sequences of lengths len. */
static void fixture(sq_model *m, tbatch *t, int max_len, uint64_t seed, int B, const int *len) {
    sq_cfg c = small_cfg();
    c.max_len = max_len;
    init_perturbed(m, &c, seed);
    sp_rng r;
    sp_rng_init(&r, seed, 2, 0);
    make_batch(t, m, B, len, &r);
}

/* The dropout of the objective's forward (NULL: none); fixed seed, so the objective is smooth. */
static const sq_dropout *g_drop;

static double objective(const sq_model *m, const tbatch *t, sq_acts *a, const float *r, float *out) {
    int rc = sq_forward_train(m, &t->b, a, out, g_drop);
    if (rc) return NAN;
    double s = 0;
    size_t n = (size_t)t->off[t->b.B] * m->c.d_item;
    for (size_t i = 0; i < n; i++) s += (double)r[i] * out[i];
    return s;
}

/* f(x + dx) − f(x − dx) for element x[i]. */
static double diff2(float *x, size_t i, float dx, const sq_model *m, const tbatch *t, sq_acts *a, const float *r,
                    float *out) {
    float x0 = x[i];
    x[i] = x0 + dx;
    double fp = objective(m, t, a, r, out);
    x[i] = x0 - dx;
    double fm = objective(m, t, a, r, out);
    x[i] = x0;
    return fp - fm;
}

/* Checks analytic gradients g (n) of x against finite differences, every element. The model is
 * smooth (GELU, no ReLU kinks), so nothing is skipped; the slope is Richardson-extrapolated from
 * central differences with steps h and h/2 (error O(h⁴): the L2 and LayerNorm curvature made plain
 * central differences at h = 1e-2 miss by several percent on some seeds). Tolerance: 2% of the
 * larger slope plus the float32 noise of the objective, its rounding (a few ulps of Σ|r·out|)
 * amplified by the differences. */
static void fd_check(const char *what, float *x, const float *g, size_t n, const sq_model *m, const tbatch *t,
                     sq_acts *a, const float *r, float *out) {
    const float h = 1e-2f;
    double mass = 0, gmax = 0, worst = 0;
    size_t no = (size_t)t->off[t->b.B] * m->c.d_item, wi = 0;
    objective(m, t, a, r, out);
    for (size_t i = 0; i < no; i++) mass += fabs((double)r[i] * out[i]);
    double noise = 8 * FLT_EPSILON * mass / h;
    for (size_t i = 0; i < n; i++) {
        gmax = fmax(gmax, fabs(g[i]));
        double d1 = diff2(x, i, h, m, t, a, r, out) / (2.0 * h), d2 = diff2(x, i, h / 2, m, t, a, r, out) / h;
        double slope = (4 * d2 - d1) / 3;
        double bound = 1.5e-2 * fmax(fabs(slope), fabs(g[i])) + noise;
        if (fabs(slope - g[i]) / bound > worst) worst = fabs(slope - g[i]) / bound, wi = i;
    }
    if (getenv("SQ_VERBOSE")) fprintf(stderr, "%-24s worst %.3f (noise floor %.2g, gmax %.3g)\n", what, worst, noise, gmax);
    CHECK_MSG(worst <= 1.0, "%s: element %zu off by %.3g of its bound (analytic %.6g, noise floor %.3g)", what, wi,
              worst, (double)g[wi], noise);
    CHECK_MSG(gmax > 10 * noise, "%s: gradient %.3g lost in the noise (%.3g)", what, gmax, noise);
}

static void test_gradients(uint64_t seed, const sq_dropout *drop) {
    g_drop = drop;
    sq_cfg c = small_cfg();
    sq_model m;
    init_perturbed(&m, &c, seed);
    sp_rng r;
    sp_rng_init(&r, seed, 1, 0);
    /* sharper attention (Q, K columns ×3), so that the score path carries a gradient well above the noise */
    for (int l = 0; l < c.layers; l++) {
        const sq_tensor *q = &m.t[SQ_LT(l, SQ_WQKV)];
        for (int i = 0; i < q->rows; i++)
            for (int k = 0; k < 2 * c.width; k++) m.p[q->off + (size_t)i * q->cols + k] *= 3.0f;
    }
    tbatch t;
    const int len[5] = {3, 1, 5, 2, 4};
    make_batch(&t, &m, 5, len, &r);
    size_t N = t.off[5], no = N * c.d_item;
    float *rr = malloc(sizeof(float) * no), *out = malloc(sizeof(float) * no), *grad = calloc(m.n, sizeof(float));
    float *ditem = malloc(sizeof(float) * no), *grad2 = calloc(m.n, sizeof(float));
    for (size_t i = 0; i < no; i++) rr[i] = (float)(sp_rng_unif(&r) - 0.5);
    sq_acts *a = sq_acts_new();
    CHECK(!isnan(objective(&m, &t, a, rr, out)));
    CHECK_RC(sq_backward(&m, &t.b, a, rr, grad, ditem), SP_OK);
    /* gradients accumulate: a second backward (ditem NULL) into grad2 twice gives 2·grad */
    CHECK_RC(sq_backward(&m, &t.b, a, rr, grad2, NULL), SP_OK);
    CHECK_RC(sq_backward(&m, &t.b, a, rr, grad2, NULL), SP_OK);
    double worst = 0, gall = 0;
    for (size_t i = 0; i < m.n; i++) gall = fmax(gall, fabs(grad[i]));
    for (size_t i = 0; i < m.n; i++) worst = fmax(worst, fabs(grad2[i] - 2 * grad[i]));
    CHECK_MSG(worst <= 1e-5 * gall, "grad after two backwards is not twice the gradient (off by %.3g, max %.3g)", worst,
              gall);
    for (int i = 0; i < m.ntensors; i++) {
        const sq_tensor *ti = &m.t[i];
        char what[64];
        snprintf(what, sizeof what, "tensor %s (%d x %d)", ti->name, ti->rows, ti->cols);
        fd_check(what, m.p + ti->off, grad + ti->off, (size_t)ti->rows * ti->cols, &m, &t, a, rr, out);
    }
    fd_check("ditem", t.item, ditem, no, &m, &t, a, rr, out);
    g_drop = NULL;
    sq_acts_free(a);
    free(rr);
    free(out);
    free(grad);
    free(grad2);
    free(ditem);
    sq_model_free(&m);
}

/* Max |x − y| over n floats. */
static double maxdiff(const float *x, const float *y, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)x[i] - y[i]));
    return d;
}

/* Changing any input of a position p > t never changes outputs at t (bit-exact); it does change
 * output p. Sequence 1 of a 2-sequence batch (so the other sequence's rows are checked too). */
static void test_causality(void) {
    sq_model m;
    tbatch t0, t;
    const int len[2] = {4, 37}; /* 37 rows: two attention row blocks */
    fixture(&m, &t0, 40, 11, 2, len);
    const sq_cfg c = m.c;
    int d = c.d_item, o = (int)t0.off[1], L = len[1];
    size_t N = t0.off[2];
    float *base = malloc(sizeof(float) * N * d), *out = malloc(sizeof(float) * N * d);
    sq_acts *a = sq_acts_new();
    CHECK_RC(sq_forward(&m, &t0.b, a, base), SP_OK);
    const char *kinds[5] = {"item", "action", "surface", "ts", "qt"};
    for (int kind = 0; kind < 5; kind++)
        for (int p = 0; p < L; p++) {
            t = t0;
            t.b = (sq_batch){2, t.off, t.item, t.act, t.surf, t.ts, t.qt};
            int j = o + p;
            switch (kind) {
            case 0: t.item[j * d + p % d] += 0.5f; break;
            case 1: t.act[j] = (uint8_t)((t.act[j] + 1) % c.n_actions); break;
            case 2: t.surf[j] = (uint8_t)((t.surf[j] + 1) % c.n_surfaces); break;
            case 3: /* later, but not past the next action (skipped when they are equal) */
                if (p + 1 < L && t.ts[j + 1] - t.ts[j] < 2) continue;
                t.ts[j] += p + 1 < L ? (t.ts[j + 1] - t.ts[j]) / 2 : 3600000;
                if (t.qt[j] < t.ts[j]) t.qt[j] = t.ts[j];
                break;
            default: t.qt[j] += 5400000; break; /* +1.5 h */
            }
            CHECK_RC(sq_forward(&m, &t.b, a, out), SP_OK);
            int early = !memcmp(out, base, sizeof(float) * (size_t)j * d);
            CHECK_MSG(early, "%s changed at position %d changed an earlier output (max diff %.3g)", kinds[kind], p,
                      maxdiff(out, base, (size_t)j * d));
            CHECK_MSG(memcmp(out + (size_t)j * d, base + (size_t)j * d, sizeof(float) * d), "%s changed at position "
                      "%d left its own output unchanged", kinds[kind], p);
            if (kind == 4) /* qt is a feature of its own row only */
                CHECK_MSG(!memcmp(out + (size_t)(j + 1) * d, base + (size_t)(j + 1) * d,
                                  sizeof(float) * (N - j - 1) * d), "qt changed at position %d changed a later row", p);
        }
    sq_acts_free(a);
    free(base);
    free(out);
    sq_model_free(&m);
}

/* A sequence alone == the same sequence inside a batch; encode_last == the last rows of forward. */
static void test_batch_independence(void) {
    sq_model m;
    tbatch t, one;
    const int len[6] = {5, 70, 1, 33, 2, 64};
    fixture(&m, &t, 70, 13, 6, len);
    const sq_cfg c = m.c;
    int d = c.d_item;
    size_t N = t.off[6];
    float *full = malloc(sizeof(float) * N * d), *alone = malloc(sizeof(float) * N * d);
    float last[6 * 8], last1[8];
    sq_acts *a = sq_acts_new(), *a2 = sq_acts_new();
    CHECK_RC(sq_forward(&m, &t.b, a, full), SP_OK);
    CHECK_RC(sq_encode_last(&m, &t.b, a2, last), SP_OK);
    for (int s = 0; s < 6; s++) {
        uint64_t o = t.off[s], n = t.off[s + 1] - o;
        one = t;
        one.off[0] = 0;
        one.off[1] = n;
        one.b = (sq_batch){1, one.off, t.item + o * d, t.act + o, t.surf + o, t.ts + o, t.qt + o};
        CHECK_RC(sq_forward(&m, &one.b, a, alone), SP_OK);
        double df = maxdiff(alone, full + o * d, n * d);
        CHECK_MSG(df <= 1e-6, "sequence %d alone differs from it in the batch by %.3g", s, df);
        CHECK_RC(sq_encode_last(&m, &one.b, a, last1), SP_OK);
        double dl = maxdiff(last1, full + (o + n - 1) * d, d), db = maxdiff(last + s * d, full + (o + n - 1) * d, d);
        CHECK_MSG(dl <= 1e-6 && db <= 1e-6, "sequence %d: encode_last differs from forward's last row by %.3g alone, "
                  "%.3g in the batch", s, dl, db);
        double nrm = 0;
        for (int k = 0; k < d; k++) nrm += (double)last[s * d + k] * last[s * d + k];
        CHECK_NEAR(nrm, 1.0, 1e-5);
    }
    /* encode_last saves nothing: backward refuses rather than using stale activations */
    float *g = calloc(m.n, sizeof(float));
    CHECK_RC(sq_encode_last(&m, &t.b, a, last), SP_OK);
    CHECK_RC(sq_backward(&m, &t.b, a, full, g, NULL), SP_EUSAGE);
    /* a model without layers still encodes */
    sq_cfg c0 = c;
    c0.layers = 0;
    sq_model m0;
    init_perturbed(&m0, &c0, 14);
    CHECK_RC(sq_forward(&m0, &t.b, a, full), SP_OK);
    CHECK_RC(sq_encode_last(&m0, &t.b, a2, last), SP_OK);
    for (int s = 0; s < 6; s++)
        CHECK_MSG(maxdiff(last + s * d, full + (t.off[s + 1] - 1) * d, d) <= 1e-6, "layers 0: sequence %d", s);
    sq_model_free(&m0);
    free(g);
    sq_acts_free(a);
    sq_acts_free(a2);
    free(full);
    free(alone);
    sq_model_free(&m);
}

static void test_bad_input(void) {
    sq_cfg c = small_cfg();
    sq_model m;
    CHECK_RC(sq_model_init(&m, &c, 1), SP_OK);
    sp_rng r;
    sp_rng_init(&r, 5, 4, 0);
    tbatch t0, t;
    const int len[2] = {3, 8};
    make_batch(&t0, &m, 2, len, &r);
    float out[11 * 6];
    float sentinel = 12345.0f;
    sq_acts *a = sq_acts_new();
    CHECK_RC(sq_forward(&m, &t0.b, a, out), SP_OK);
    for (int bad = 0; bad < 7; bad++) {
        t = t0;
        t.b = (sq_batch){2, t.off, t.item, t.act, t.surf, t.ts, t.qt};
        switch (bad) {
        case 0: t.act[5] = (uint8_t)c.n_actions; break;
        case 1: t.surf[2] = 200; break;
        case 2: t.ts[6] = t.ts[5] - 1; t.qt[6] = t.qt[5]; break; /* ts decreasing */
        case 3: t.qt[4] = t.ts[4] - 1; break;                    /* query before its action */
        case 4: t.off[2] = 12; break;                            /* length 9 > max_len 8 */
        case 5: t.off[1] = 0; break;                             /* empty sequence */
        default: t.ts[0] = -5; break;
        }
        for (int i = 0; i < 11 * 6; i++) out[i] = sentinel;
        sp_err_clear();
        CHECK_RC(sq_forward(&m, &t.b, a, out), SP_EINPUT);
        CHECK_MSG(strlen(sp_errmsg()) > 0, "bad case %d: no error detail", bad);
        CHECK_RC(sq_encode_last(&m, &t.b, a, out), SP_EINPUT);
        CHECK_MSG(out[0] == sentinel && out[10 * 6] == sentinel, "bad case %d: output written", bad);
    }
    /* backward after a failed forward refuses */
    float g[1];
    CHECK_RC(sq_backward(&m, &t0.b, a, out, g, NULL), SP_EUSAGE);
    sq_acts_free(a);
    sq_model_free(&m);
    /* bad configurations */
    const sq_cfg bads[5] = {{6, 4, 3, 3, 8, 2, 3, 8}, {6, 0, 3, 3, 8, 2, 2, 8}, {6, 4, 300, 3, 8, 2, 2, 8},
                            {6, 4, 3, 3, 8, -1, 2, 8}, {6, 4, 3, 3, 8, 2, 2, 0}};
    for (int i = 0; i < 5; i++) {
        sq_model mb;
        CHECK_RC(sq_model_init(&mb, &bads[i], 1), SP_EUSAGE);
        CHECK(mb.p == NULL);
        sq_model_free(&mb);
    }
}

static void test_init_and_features(void) {
    sq_cfg c = small_cfg();
    sq_model m1, m2, m3;
    CHECK_RC(sq_model_init(&m1, &c, 42), SP_OK);
    CHECK_RC(sq_model_init(&m2, &c, 42), SP_OK);
    CHECK_RC(sq_model_init(&m3, &c, 43), SP_OK);
    CHECK_EQ_U64(m1.n, m2.n);
    CHECK(!memcmp(m1.p, m2.p, sizeof(float) * m1.n));
    CHECK(memcmp(m1.p, m3.p, sizeof(float) * m1.n));
    /* the table covers p exactly, in order */
    size_t at = 0;
    for (int i = 0; i < m1.ntensors; i++) {
        CHECK_EQ_U64(m1.t[i].off, at);
        at += (size_t)m1.t[i].rows * m1.t[i].cols;
    }
    CHECK_EQ_U64(at, m1.n);
    CHECK_EQ_INT(sq_model_find(&m1, "l1.wqkv"), SQ_LT(1, SQ_WQKV));
    CHECK_EQ_INT(sq_model_find(&m1, "l2.wqkv"), -1);
    const float *g = m1.p + m1.t[SQ_LT(0, SQ_LN1G)].off, *wo = m1.p + m1.t[SQ_LT(1, SQ_WO)].off;
    CHECK(g[0] == 1.0f && g[7] == 1.0f);
    CHECK(wo[0] != 0.0f);
    sq_model_free(&m1);
    sq_model_free(&m2);
    sq_model_free(&m3);
    /* time features */
    float f[SQ_NTIME];
    sq_time_features(0, f);
    for (int k = 0; k < 5; k++) CHECK(f[2 * k] == 0.0f && f[2 * k + 1] == 1.0f);
    CHECK(f[10] == 0.0f);
    sq_time_features(6 * 3600000LL, f); /* a quarter day: day phase π/2, hour phase 0 */
    CHECK_NEAR(f[0], 0.0, 1e-6);
    CHECK_NEAR(f[2], 1.0, 1e-6);
    CHECK_NEAR(f[3], 0.0, 1e-6);
    CHECK_NEAR(f[10], log(7.0), 1e-6);
    sq_time_features(T0 + 12 * 3600000LL, f); /* absolute time: T0 is midnight UTC, so noon is phase π */
    CHECK_NEAR(f[2], 0.0, 1e-6);
    CHECK_NEAR(f[3], -1.0, 1e-6);
}

/* The encoder's vectorised GELU against the tanh-approximation GELU in double (the function of
 * nn_gelu_fwd/bwd), over the float range that matters, including where its exp clamps (|x| > 10);
 * and within float noise of nn_gelu itself. */
static void test_gelu(void) {
    enum { n = 4001 };
    static float x[n], y1[n], y2[n], dy[n], d1[n], d2[n];
    for (int i = 0; i < n; i++) x[i] = -20.0f + 40.0f * (float)i / (n - 1), dy[i] = 1.0f + 0.001f * (float)(i % 7);
    sq_gelu_fwd(y1, x, n);
    nn_gelu_fwd(y2, x, n);
    sq_gelu_bwd(d1, dy, x, n);
    nn_gelu_bwd(d2, dy, x, n);
    double wf = 0, wb = 0, wn = 0;
    int af = 0, ab = 0;
    for (int i = 0; i < n; i++) {
        double v = x[i], c = sqrt(2.0 / M_PI), t = tanh(c * (v + 0.044715 * v * v * v));
        double f = 0.5 * v * (1 + t), g = dy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v));
        double ef = fabs(y1[i] - f) / fmax(1.0, fabs(v)), eb = fabs(d1[i] - g) / fmax(1.0, fabs(g));
        if (ef > wf) wf = ef, af = i;
        if (eb > wb) wb = eb, ab = i;
        wn = fmax(wn, fabs((double)y1[i] - y2[i]) / fmax(1.0, fabs(v)) + fabs((double)d1[i] - d2[i]) / 4);
    }
    CHECK_MSG(wf <= 5e-7, "sq_gelu_fwd off by %.3g at x = %g", wf, x[af]);
    CHECK_MSG(wb <= 5e-7, "sq_gelu_bwd off by %.3g at x = %g", wb, x[ab]);
    CHECK_MSG(wn <= 1e-6, "sq_gelu and nn_gelu differ by %.3g", wn);
    memcpy(d1, dy, sizeof d1); /* dx == dy */
    sq_gelu_bwd(d1, d1, x, n);
    sq_gelu_bwd(d2, dy, x, n);
    CHECK(!memcmp(d1, d2, sizeof d1));
}

/* Dropout: p = 0 is exactly sq_forward; the masks are a function of the seed (same seed, same
 * output; another seed, another output); the backward goes through them (test_gradients with
 * dropout: finite differences at a fixed seed); p outside [0, 1) is refused. */
static void test_dropout(void) {
    sq_model m;
    tbatch t;
    const int len[4] = {7, 3, 9, 1};
    fixture(&m, &t, 16, 3, 4, len);
    size_t no = (size_t)t.off[4] * m.c.d_item;
    float *o0 = malloc(sizeof(float) * no), *o1 = malloc(sizeof(float) * no), *o2 = malloc(sizeof(float) * no);
    sq_acts *a = sq_acts_new();
    CHECK_RC(sq_forward(&m, &t.b, a, o0), SP_OK);
    CHECK_RC(sq_forward_train(&m, &t.b, a, o1, &(sq_dropout){0.0f, 5}), SP_OK);
    CHECK(memcmp(o0, o1, sizeof(float) * no) == 0);
    CHECK_RC(sq_forward_train(&m, &t.b, a, o1, &(sq_dropout){0.25f, 5}), SP_OK);
    CHECK_RC(sq_forward_train(&m, &t.b, a, o2, &(sq_dropout){0.25f, 5}), SP_OK);
    CHECK(memcmp(o1, o2, sizeof(float) * no) == 0);
    CHECK(memcmp(o0, o1, sizeof(float) * no) != 0);
    CHECK_RC(sq_forward_train(&m, &t.b, a, o2, &(sq_dropout){0.25f, 6}), SP_OK);
    CHECK(memcmp(o1, o2, sizeof(float) * no) != 0);
    CHECK_RC(sq_forward_train(&m, &t.b, a, o2, &(sq_dropout){1.0f, 5}), SP_EUSAGE);
    CHECK_RC(sq_forward_train(&m, &t.b, a, o2, &(sq_dropout){-0.1f, 5}), SP_EUSAGE);
    /* a refused forward saved nothing: backward refuses too */
    float *g = calloc(m.n, sizeof(float));
    CHECK_RC(sq_backward(&m, &t.b, a, o0, g, NULL), SP_EUSAGE);
    free(g);
    sq_acts_free(a);
    free(o0), free(o1), free(o2);
    sq_model_free(&m);
}

int main(void) {
    test_gelu();
    test_init_and_features();
    test_bad_input();
    test_batch_independence();
    test_causality();
    test_gradients(getenv("SQ_SEED") ? strtoull(getenv("SQ_SEED"), NULL, 10) : 7, NULL);
    test_gradients(11, &(sq_dropout){0.3f, 77});
    test_dropout();
    return CHECK_DONE();
}
