/* test_nn_optim: the AdamW steps (dense and row-sparse) against the update
 * formulas evaluated independently in double, the learning-rate schedule's
 * endpoints and monotonicity, the initialisers' statistics, nn_pool_check's
 * rejections and nn_hash_row's determinism, range and spread. */
#include <stdlib.h>
#include <xxhash.h>

#include "check.h"
#include "nn.h"
#include "sp_base.h"

static sp_rng R;

/* One AdamW step in double, from the definition (Loshchilov & Hutter, decoupled decay). */
static void adam_ref(double *p, const double *g, double *m, double *v, size_t n, const nn_adam_cfg *c, int t,
                     double lr) {
    for (size_t i = 0; i < n; i++) {
        m[i] = c->beta1 * m[i] + (1.0 - c->beta1) * g[i];
        v[i] = c->beta2 * v[i] + (1.0 - c->beta2) * g[i] * g[i];
        double mh = m[i] / (1.0 - pow(c->beta1, t)), vh = v[i] / (1.0 - pow(c->beta2, t));
        p[i] -= lr * (mh / (sqrt(vh) + c->eps) + c->weight_decay * p[i]);
    }
}

static void near_rel(const char *what, const float *a, const double *b, size_t n, double tol) {
    for (size_t i = 0; i < n; i++)
        CHECK_MSG(fabs(a[i] - b[i]) <= tol * fmax(fabs(b[i]), 1e-3), "%s[%zu]: got %.9g, reference %.9g", what, i,
                  a[i], b[i]);
}

static void test_adam_two_steps(void) {
    enum { N = 4 };
    const float g1[N] = {0.5f, -0.25f, 2.0f, -1e-3f}, g2[N] = {-0.1f, -0.3f, 1.5f, 4e-3f};
    for (int wdi = 0; wdi < 2; wdi++) {
        nn_adam_cfg c = {0.9f, 0.999f, 1e-8f, wdi ? 0.01f : 0.0f};
        float p[N] = {1.0f, -2.0f, 0.5f, 0.0f}, m[N] = {0}, v[N] = {0};
        double rp[N], rm[N] = {0}, rv[N] = {0}, rg[N];
        for (int i = 0; i < N; i++) rp[i] = p[i];
        const float lr = 0.1f;
        /* step 1: m̂ = g, v̂ = g², so p moves by lr·sign(g) (+ decay), whatever |g| is */
        nn_adam_step(p, g1, m, v, N, &c, 1, lr);
        for (int i = 0; i < N; i++) {
            double want = rp[i] - lr * ((g1[i] > 0 ? 1.0 : -1.0) + c.weight_decay * rp[i]);
            CHECK_MSG(fabs(p[i] - want) <= 1e-5, "step 1, wd %g: p[%d] = %.9g, want %.9g", c.weight_decay, i, p[i],
                      want);
        }
        for (int i = 0; i < N; i++) rg[i] = g1[i];
        adam_ref(rp, rg, rm, rv, N, &c, 1, lr);
        near_rel("adam step 1 p", p, rp, N, 1e-5);
        near_rel("adam step 1 m", m, rm, N, 1e-5);
        near_rel("adam step 1 v", v, rv, N, 1e-5);
        nn_adam_step(p, g2, m, v, N, &c, 2, lr);
        for (int i = 0; i < N; i++) rg[i] = g2[i];
        adam_ref(rp, rg, rm, rv, N, &c, 2, lr);
        near_rel("adam step 2 p", p, rp, N, 1e-5);
        near_rel("adam step 2 m", m, rm, N, 1e-5);
        near_rel("adam step 2 v", v, rv, N, 1e-5);
    }
}

static void test_adamw_decay(void) {
    /* zero gradients: Adam leaves p alone, AdamW shrinks it by (1 − lr·wd) per step */
    enum { N = 5 };
    const float p0[N] = {1.0f, -3.0f, 0.25f, 0.0f, 100.0f}, g[N] = {0};
    for (int wdi = 0; wdi < 2; wdi++) {
        nn_adam_cfg c = {0.9f, 0.999f, 1e-8f, wdi ? 0.1f : 0.0f};
        float p[N], m[N] = {0}, v[N] = {0}, lr = 0.05f;
        memcpy(p, p0, sizeof p);
        for (int t = 1; t <= 10; t++) nn_adam_step(p, g, m, v, N, &c, t, lr);
        for (int i = 0; i < N; i++) {
            double want = p0[i] * pow(1.0 - (double)lr * c.weight_decay, 10);
            CHECK_MSG(fabs(p[i] - want) <= 1e-5 * fmax(1.0, fabs(want)), "wd %g: p[%d] = %.9g, want %.9g",
                      c.weight_decay, i, p[i], want);
        }
    }
}

static void test_adam_rows(void) {
    enum { ROWS = 10, D = 6, NR = 3 };
    const uint32_t rows[NR] = {7, 2, 4};
    nn_adam_cfg c = {0.9f, 0.98f, 1e-6f, 0.02f};
    float table[ROWS * D], m[ROWS * D], v[ROWS * D], t0[ROWS * D], m0[ROWS * D], v0[ROWS * D], grow[NR * D];
    for (int i = 0; i < ROWS * D; i++) {
        t0[i] = (float)(2.0 * sp_rng_unif(&R) - 1.0);
        m0[i] = (float)(0.1 * (2.0 * sp_rng_unif(&R) - 1.0));
        v0[i] = (float)(0.01 * sp_rng_unif(&R));
    }
    for (int i = 0; i < NR * D; i++) grow[i] = (float)(2.0 * sp_rng_unif(&R) - 1.0);
    memcpy(table, t0, sizeof table), memcpy(m, m0, sizeof m), memcpy(v, v0, sizeof v);
    const int64_t t = 5; /* the global step: bias correction as after 5 steps */
    const float lr = 0.01f;
    nn_adam_rows(table, m, v, rows, grow, NR, D, &c, t, lr);
    for (int r = 0; r < ROWS; r++) {
        int k = -1;
        for (int i = 0; i < NR; i++)
            if (rows[i] == (uint32_t)r) k = i;
        size_t o = (size_t)r * D;
        if (k < 0) { /* untouched: bit for bit */
            CHECK_MSG(!memcmp(table + o, t0 + o, sizeof *table * D) && !memcmp(m + o, m0 + o, sizeof *m * D) &&
                          !memcmp(v + o, v0 + o, sizeof *v * D),
                      "row %d is not listed but changed", r);
            continue;
        }
        double rp[D], rm[D], rv[D], rg[D];
        for (int e = 0; e < D; e++) rp[e] = t0[o + e], rm[e] = m0[o + e], rv[e] = v0[o + e], rg[e] = grow[k * D + e];
        adam_ref(rp, rg, rm, rv, D, &c, (int)t, lr);
        near_rel("adam_rows p", table + o, rp, D, 1e-5);
        near_rel("adam_rows m", m + o, rm, D, 1e-5);
        near_rel("adam_rows v", v + o, rv, D, 1e-5);
    }
}

/* nn_running_mean: the mean of the snapshots whatever avg held before; k = 1 copies */
static void test_running_mean(void) {
    float x[3][4] = {{1, 2, 3, 4}, {2, 4, 6, 8}, {-3, 0, 3, 9}}, avg[4] = {7, 7, 7, 7};
    for (int k = 1; k <= 3; k++) {
        nn_running_mean(avg, x[k - 1], 4, k);
        for (int i = 0; i < 4; i++) {
            double m = 0;
            for (int j = 0; j < k; j++) m += x[j][i];
            CHECK_NEAR(avg[i], m / k, 1e-6);
        }
    }
}

static void test_lr_schedule(void) {
    const int64_t warm = 10, total = 110;
    const float lr = 0.5f, f = 0.1f;
    CHECK_NEAR(nn_lr_at(0, warm, total, lr, f), lr / warm, 1e-7);      /* first step: not 0 */
    CHECK_NEAR(nn_lr_at(warm - 1, warm, total, lr, f), lr, 1e-7);      /* end of warm-up */
    CHECK_NEAR(nn_lr_at(warm, warm, total, lr, f), lr, 1e-7);          /* start of the decay */
    CHECK_NEAR(nn_lr_at((warm + total) / 2, warm, total, lr, f), lr * (f + (1 - f) / 2), 1e-6); /* cos(π/2) = 0 */
    CHECK_NEAR(nn_lr_at(total, warm, total, lr, f), lr * f, 1e-7);
    CHECK_NEAR(nn_lr_at(total * 10, warm, total, lr, f), lr * f, 1e-7);
    CHECK_NEAR(nn_lr_at(0, 0, total, lr, f), lr, 1e-7); /* no warm-up */
    float prev = 0.0f;
    for (int64_t s = 0; s < warm; s++) {
        float x = nn_lr_at(s, warm, total, lr, f);
        CHECK_MSG(x > prev, "warm-up not increasing at step %lld: %.9g after %.9g", (long long)s, x, prev);
        prev = x;
    }
    for (int64_t s = warm; s <= total + 5; s++) {
        float x = nn_lr_at(s, warm, total, lr, f);
        CHECK_MSG(x <= prev && x >= lr * f - 1e-7f, "decay at step %lld: %.9g after %.9g", (long long)s, x, prev);
        prev = x;
    }
}

static void test_init(void) {
    enum { N = 200001 }; /* odd: the last Box–Muller pair is half used */
    float *x = malloc(sizeof *x * N), *y = malloc(sizeof *y * N);
    const float sd = 0.02f;
    sp_rng a, b;
    sp_rng_init(&a, 11, SP_RNG_TRAIN, 0);
    nn_init_normal(x, N, sd, &a);
    double s = 0.0, ss = 0.0;
    long tail = 0;
    for (int i = 0; i < N; i++) {
        s += x[i], ss += (double)x[i] * x[i];
        tail += fabs(x[i]) > 2.0 * sd;
    }
    double mean = s / N, var = ss / N - mean * mean;
    /* 5-sigma bounds: mean ± 5σ/√N, variance ± 5σ²√(2/N), P(|x| > 2σ) = 0.0455 ± 5·√(p(1−p)/N) */
    CHECK_MSG(fabs(mean) <= 5.0 * sd / sqrt(N), "normal mean %.3g", mean);
    CHECK_MSG(fabs(var - (double)sd * sd) <= 5.0 * sd * sd * sqrt(2.0 / N), "normal variance %.6g, want %.6g", var,
              (double)sd * sd);
    double pt = 0.0455003, ft = (double)tail / N;
    CHECK_MSG(fabs(ft - pt) <= 5.0 * sqrt(pt * (1 - pt) / N), "normal tail fraction %.5f, want %.5f", ft, pt);
    /* neighbours independent (the two halves of a Box–Muller pair too): lag-1 correlation ± 5/√N */
    double lag = 0.0;
    for (int i = 0; i + 1 < N; i++) lag += (double)x[i] * x[i + 1];
    lag /= (N - 1) * var;
    CHECK_MSG(fabs(lag) <= 5.0 / sqrt(N), "normal lag-1 correlation %.4f", lag);
    sp_rng_init(&b, 11, SP_RNG_TRAIN, 0);
    nn_init_normal(y, N, sd, &b);
    CHECK_MSG(!memcmp(x, y, sizeof *x * N), "same rng state, different draws");
    sp_rng_init(&b, 12, SP_RNG_TRAIN, 0);
    nn_init_normal(y, N, sd, &b);
    CHECK_MSG(memcmp(x, y, sizeof *x * N), "different seeds, same draws");

    /* Xavier uniform: |W| ≤ √(6/(in+out)), variance lim²/3 */
    const int fin = 300, fout = 200;
    double lim = sqrt(6.0 / (fin + fout));
    nn_init_xavier(x, fin, fout, &a);
    s = ss = 0.0;
    int inside = 1;
    for (int i = 0; i < fin * fout; i++) {
        inside &= fabs(x[i]) <= lim;
        s += x[i], ss += (double)x[i] * x[i];
    }
    int n = fin * fout;
    mean = s / n, var = ss / n - mean * mean;
    CHECK_MSG(inside, "xavier value outside ±%.6g", lim);
    CHECK_MSG(fabs(mean) <= 5.0 * lim / sqrt(3.0 * n), "xavier mean %.3g", mean);
    /* Var(x²) for U(−l, l) is 4l⁴/45 */
    CHECK_MSG(fabs(var - lim * lim / 3) <= 5.0 * sqrt(4.0 / 45.0 / n) * lim * lim, "xavier variance %.6g, want %.6g",
              var, lim * lim / 3);
    free(x), free(y);
}

static void test_pool_check(void) {
    const uint32_t idx[6] = {0, 4, 2, 2, 1, 3};
    const uint64_t ok[4] = {0, 2, 2, 6}, bad0[4] = {1, 2, 2, 6}, down[4] = {0, 3, 2, 6};
    CHECK_RC(nn_pool_check(idx, ok, 3, 5), SP_OK);
    CHECK_RC(nn_pool_check(idx, ok, 0, 5), SP_OK); /* no rows: only off[0] is read */
    CHECK_RC(nn_pool_check(NULL, (const uint64_t[]){0, 0}, 1, 0), SP_OK);
    CHECK_RC(nn_pool_check(idx, bad0, 3, 5), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "off[0]") != NULL);
    CHECK_RC(nn_pool_check(idx, down, 3, 5), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "off[2]") != NULL);
    CHECK_RC(nn_pool_check(idx, ok, 3, 4), SP_EINPUT); /* idx[1] = 4 is not below 4 rows */
    CHECK(strstr(sp_errmsg(), "idx[1]") != NULL);
    CHECK_RC(nn_pool_check(idx, ok, 2, 4), SP_EINPUT); /* entries of row 1 still counted: off[2] = 2 */
    CHECK_RC(nn_pool_check(idx, ok, 1, 4), SP_EINPUT);
    CHECK_RC(nn_pool_check(idx, (const uint64_t[]){0, 1}, 1, 1), SP_OK); /* idx[0] = 0 < 1 */
    CHECK_RC(nn_pool_check(idx, ok, -1, 5), SP_EINPUT);
}

static void test_hash_row(void) {
    char tok[32];
    /* deterministic, in range, equal to its definition */
    const uint32_t sizes[] = {1, 7, 1000, 4294967295u};
    for (int t = 0; t < 200; t++) {
        int len = snprintf(tok, sizeof tok, "token-%d", t);
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            uint32_t r = nn_hash_row(tok, (size_t)len, 42, sizes[k]);
            CHECK(r < sizes[k]);
            CHECK_EQ_U64(r, nn_hash_row(tok, (size_t)len, 42, sizes[k]));
            CHECK_EQ_U64(r, XXH64(tok, (size_t)len, 42) % sizes[k]);
        }
    }
    CHECK_EQ_U64(nn_hash_row("a", 1, 0, 0), 0);
    /* the seed matters: most of 200 tokens move */
    int moved = 0;
    for (int t = 0; t < 200; t++) {
        int len = snprintf(tok, sizeof tok, "token-%d", t);
        moved += nn_hash_row(tok, (size_t)len, 1, 1000) != nn_hash_row(tok, (size_t)len, 2, 1000);
    }
    CHECK_MSG(moved >= 190, "only %d of 200 tokens change row with the seed", moved);
    /* spread over 16 rows: chi-square (15 degrees of freedom, mean 15, sd 5.5) below 15 + 8 sd */
    enum { B = 16, T = 16000 };
    long cnt[B] = {0};
    for (int t = 0; t < T; t++) {
        int len = snprintf(tok, sizeof tok, "%d", t);
        cnt[nn_hash_row(tok, (size_t)len, 7, B)]++;
    }
    double chi = 0.0, e = (double)T / B;
    for (int b = 0; b < B; b++) chi += (cnt[b] - e) * (cnt[b] - e) / e;
    CHECK_MSG(chi < 15.0 + 8.0 * sqrt(30.0), "chi-square %.1f over %d rows", chi, B);
}

int main(void) {
    sp_rng_init(&R, 3, 0x6f70, 0);
    test_adam_two_steps();
    test_adamw_decay();
    test_adam_rows();
    test_lr_schedule();
    test_running_mean();
    test_init();
    test_pool_check();
    test_hash_row();
    return CHECK_DONE();
}
