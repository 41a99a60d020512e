/* optim: parameter initialisation (normal, Xavier), the AdamW step for dense
 * parameters and for the touched rows of embedding tables, and the learning
 * rate schedule (linear warm-up, cosine decay) of nn.h. */
#include <math.h>

#include "nn.h"

#define NN_PI 3.14159265358979323846

void nn_init_normal(float *x, size_t n, float std, sp_rng *r) {
    for (size_t i = 0; i < n; i += 2) {
        double u1 = 1.0 - sp_rng_unif(r), u2 = sp_rng_unif(r); /* u1 in (0, 1]: log is finite */
        double rad = sqrt(-2.0 * log(u1)), th = 2.0 * NN_PI * u2;
        x[i] = (float)(std * rad * cos(th));
        if (i + 1 < n) x[i + 1] = (float)(std * rad * sin(th));
    }
}

void nn_init_xavier(float *W, int fan_in, int fan_out, sp_rng *r) {
    if (fan_in <= 0 || fan_out <= 0) return;
    double lim = sqrt(6.0 / ((double)fan_in + fan_out));
    size_t n = (size_t)fan_in * (size_t)fan_out;
    for (size_t i = 0; i < n; i++) W[i] = (float)((2.0 * sp_rng_unif(r) - 1.0) * lim);
}

/* The per-element update shared by the dense and the row-sparse step;
 * ibc1, ibc2 = 1 / (1 − β^t). Inlined into both callers, so their SP_HOT clones vectorise it. */
static inline __attribute__((always_inline)) void adam_update(float *restrict p, const float *restrict g,
                                                              float *restrict m, float *restrict v, size_t n,
                                                              const nn_adam_cfg *c, float ibc1, float ibc2, float lr) {
    float b1 = c->beta1, b2 = c->beta2, eps = c->eps, lwd = lr * c->weight_decay;
    for (size_t i = 0; i < n; i++) {
        float mi = b1 * m[i] + (1.0f - b1) * g[i];
        float vi = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr * (mi * ibc1) / (sqrtf(vi * ibc2) + eps) + lwd * p[i];
    }
}

static void bias_corrections(const nn_adam_cfg *c, int64_t t, float *ibc1, float *ibc2) {
    double tt = t < 1 ? 1.0 : (double)t;
    *ibc1 = (float)(1.0 / (1.0 - pow(c->beta1, tt)));
    *ibc2 = (float)(1.0 / (1.0 - pow(c->beta2, tt)));
}

SP_HOT
void nn_adam_step(float *p, const float *g, float *m, float *v, size_t n, const nn_adam_cfg *c, int64_t t, float lr) {
    float ibc1, ibc2;
    bias_corrections(c, t, &ibc1, &ibc2);
    adam_update(p, g, m, v, n, c, ibc1, ibc2, lr);
}

SP_HOT
void nn_adam_rows(float *table, float *m, float *v, const uint32_t *rows, const float *grow, int nrows, int d,
                  const nn_adam_cfg *c, int64_t t, float lr) {
    if (nrows <= 0 || d <= 0) return;
    float ibc1, ibc2;
    bias_corrections(c, t, &ibc1, &ibc2);
    size_t rd = (size_t)d;
    for (int i = 0; i < nrows; i++) {
        if (i + 1 < nrows) { /* the next row's three lines of state: each a cache miss in a big table */
            size_t nx = (size_t)rows[i + 1] * rd;
            __builtin_prefetch(table + nx, 1, 3);
            __builtin_prefetch(m + nx, 1, 3);
            __builtin_prefetch(v + nx, 1, 3);
        }
        size_t o = (size_t)rows[i] * rd;
        adam_update(table + o, grow + (size_t)i * rd, m + o, v + o, rd, c, ibc1, ibc2, lr);
    }
}

void nn_running_mean(float *avg, const float *x, size_t n, int k) {
    const float f = k > 1 ? 1.0f / (float)k : 1.0f;
    for (size_t i = 0; i < n; i++) avg[i] += (x[i] - avg[i]) * f;
}

float nn_lr_at(int64_t step, int64_t warmup, int64_t total, float lr, float min_frac) {
    if (step < 0) step = 0;
    if (step < warmup) return (float)((double)lr * (double)(step + 1) / (double)warmup);
    if (step >= total) return lr * min_frac;
    double prog = (double)(step - warmup) / (double)(total - warmup); /* in [0, 1) */
    double f = min_frac + (1.0 - min_frac) * 0.5 * (1.0 + cos(NN_PI * prog));
    return (float)(lr * f);
}
