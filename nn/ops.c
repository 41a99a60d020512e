/* ops: the CPU reference of nn/'s tensor ops (nn.h): matrix products through
 * cblas, elementwise activations, row normalisations, row softmax, and the
 * gather/pool kernels of importance pooling, with their backward passes. */
#include <cblas.h>
#include <math.h>
#include <string.h>
#include <xxhash.h>

#include "nn.h"

/* How far ahead the pool kernels prefetch gathered rows: about 2 KiB of rows
 * (8 rows of 64 floats), at least 4 rows, so that a DRAM miss (~100 ns) is
 * covered at ~10-50 ns per row while the lines still sit in L1/L2 when used.
 * bench/bench_nn_pool: 1.5-3x the plain loops' throughput (d 256 to 64). */
static inline uint64_t pool_ahead(int d) {
    int rows = 512 / (d > 0 ? d : 1);
    return (uint64_t)(rows < 4 ? 4 : rows > 16 ? 16 : rows);
}

/* ---- matrix products ---- */

void nn_gemm(int tA, int tB, int m, int n, int k, float alpha, const float *A, const float *B, float beta, float *C) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { /* C = beta·C; BLAS would reject lda = 0 */
        size_t mn = (size_t)m * (size_t)n;
        if (beta == 0.0f) memset(C, 0, sizeof *C * mn);
        else if (beta != 1.0f)
            for (size_t i = 0; i < mn; i++) C[i] *= beta;
        return;
    }
    int lda = tA ? m : k, ldb = tB ? k : n;
    cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda,
                B, ldb, beta, C, n);
}

void nn_linear_fwd(float *y, const float *x, const float *W, const float *b, int n, int in, int out) {
    if (n <= 0 || out <= 0) return;
    if (b)
        for (int i = 0; i < n; i++) memcpy(y + (size_t)i * out, b, sizeof *b * (size_t)out);
    nn_gemm(0, 0, n, out, in, 1.0f, x, W, b ? 1.0f : 0.0f, y); /* (n, in)·(in, out) */
}

void nn_linear_bwd(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int n, int in,
                   int out) {
    if (n <= 0) return;
    if (dx) nn_gemm(0, 1, n, in, out, 1.0f, dy, W, 0.0f, dx); /* (n, out)·(out, in) */
    if (dW) nn_gemm(1, 0, in, out, n, 1.0f, x, dy, 1.0f, dW); /* (in, n)·(n, out) */
    if (db)
        for (int i = 0; i < n; i++) {
            const float *restrict r = dy + (size_t)i * out;
            float *restrict o = db;
            for (int k = 0; k < out; k++) o[k] += r[k];
        }
}

/* ⟨a, b⟩ with eight partial sums, so that the compiler may vectorise it
 * without -ffast-math (a single float accumulator forbids reassociation). */
float nn_dot(const float *restrict a, const float *restrict b, size_t n) {
    float acc[8] = {0};
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[k + l] * b[k + l];
    float tail = 0.0f;
    for (; k < n; k++) tail += a[k] * b[k];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

/* ---- elementwise ---- */

SP_HOT
void nn_relu_fwd(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

SP_HOT
void nn_relu_bwd(float *dx, const float *dy, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

#define GELU_C 0.7978845608028654f /* √(2/π) */
#define GELU_A 0.044715f

void nn_gelu_fwd(float *restrict y, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanhf(GELU_C * (v + GELU_A * v * v * v)));
    }
}

/* d/dx = 0.5(1 + t) + 0.5 x (1 − t²) · √(2/π)(1 + 3·0.044715 x²), t = tanh(√(2/π)(x + 0.044715 x³)). */
void nn_gelu_bwd(float *dx, const float *dy, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], t = tanhf(GELU_C * (v + GELU_A * v * v * v));
        float g = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * v * v);
        dx[i] = dy[i] * g;
    }
}

/* ---- row normalisations ---- */

#define L2_FLOOR 1e-12f

SP_HOT
void nn_l2norm_fwd(float *y, float *norm, const float *x, int n, int d) {
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;
        float *yr = y + (size_t)i * d;
        double ss = 0.0; /* double: no overflow for |x| up to FLT_MAX, no underflow of tiny rows */
        for (int k = 0; k < d; k++) ss += (double)xr[k] * xr[k];
        float nr = (float)sqrt(ss);
        if (!(nr > L2_FLOOR)) nr = L2_FLOOR;
        norm[i] = nr;
        float inv = 1.0f / nr;
        for (int k = 0; k < d; k++) yr[k] = xr[k] * inv;
    }
}

SP_HOT
void nn_l2norm_bwd(float *dx, const float *dy, const float *y, const float *norm, int n, int d) {
    for (int i = 0; i < n; i++) {
        const float *dyr = dy + (size_t)i * d, *yr = y + (size_t)i * d;
        float *dxr = dx + (size_t)i * d;
        float inv = 1.0f / norm[i];
        /* clamped rows (‖x‖ ≤ 1e-12) were y = x / 1e-12: a plain scaling */
        float dot = norm[i] > L2_FLOOR ? nn_dot(dyr, yr, (size_t)d) : 0.0f;
        for (int k = 0; k < d; k++) dxr[k] = (dyr[k] - yr[k] * dot) * inv;
    }
}

#define LN_EPS 1e-5

SP_HOT
void nn_layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *g, const float *b, int n,
                      int d) {
    if (d <= 0) return;
    for (int i = 0; i < n; i++) {
        const float *restrict xr = x + (size_t)i * d;
        float *restrict yr = y + (size_t)i * d;
        double s = 0.0, ss = 0.0;
        for (int k = 0; k < d; k++) s += xr[k];
        double mu = s / d;
        for (int k = 0; k < d; k++) { /* two passes: no cancellation in E[x²] − μ² */
            double c = xr[k] - mu;
            ss += c * c;
        }
        double var = ss / d;
        float m = (float)mu, r = (float)(1.0 / sqrt(var + LN_EPS));
        mean[i] = m;
        rstd[i] = r;
        /* x − μ with the double μ: the float mean loses the spread of rows far from 0 */
        if (b)
            for (int k = 0; k < d; k++) yr[k] = (float)(xr[k] - mu) * r * g[k] + b[k];
        else
            for (int k = 0; k < d; k++) yr[k] = (float)(xr[k] - mu) * r * g[k];
    }
}

/* With x̂ = (x − μ)·rstd and ĝ = dy ⊙ g:
 * dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)); dg += dy ⊙ x̂; db += dy. */
SP_HOT
void nn_layernorm_bwd(float *dx, float *dg, float *db, const float *dy, const float *x, const float *mean,
                      const float *rstd, const float *g, int n, int d) {
    if (d <= 0) return;
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d, *dyr = dy + (size_t)i * d;
        float m = mean[i], r = rstd[i];
        if (dx) {
            double sg = 0.0, sgx = 0.0;
            for (int k = 0; k < d; k++) {
                float gh = dyr[k] * g[k];
                sg += gh;
                sgx += (double)gh * ((xr[k] - m) * r);
            }
            float a = (float)(sg / d), c = (float)(sgx / d);
            float *dxr = dx + (size_t)i * d;
            for (int k = 0; k < d; k++) {
                float xh = (xr[k] - m) * r;
                if (dg) dg[k] += dyr[k] * xh;
                if (db) db[k] += dyr[k];
                dxr[k] = r * (dyr[k] * g[k] - a - xh * c); /* after the reads of dy[k] */
            }
        } else {
            for (int k = 0; k < d; k++) {
                if (dg) dg[k] += dyr[k] * ((xr[k] - m) * r);
                if (db) db[k] += dyr[k];
            }
        }
    }
}

void nn_softmax_fwd(float *y, const float *x, int n, int d) {
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * d;
        float *yr = y + (size_t)i * d;
        float mx = -INFINITY;
        for (int k = 0; k < d; k++) mx = xr[k] > mx ? xr[k] : mx;
        double s = 0.0;
        for (int k = 0; k < d; k++) {
            yr[k] = expf(xr[k] - mx);
            s += yr[k];
        }
        float inv = (float)(1.0 / s);
        for (int k = 0; k < d; k++) yr[k] *= inv;
    }
}

void nn_softmax_bwd(float *dx, const float *dy, const float *y, int n, int d) {
    for (int i = 0; i < n; i++) {
        const float *dyr = dy + (size_t)i * d, *yr = y + (size_t)i * d;
        float *dxr = dx + (size_t)i * d;
        float dot = nn_dot(dyr, yr, (size_t)d);
        for (int k = 0; k < d; k++) dxr[k] = yr[k] * (dyr[k] - dot);
    }
}

/* ---- gather / pool ---- */

static inline void prefetch_row(const float *p, int d, int write) {
    const char *c = (const char *)p;
    size_t bytes = sizeof(float) * (size_t)d;
    if (write)
        for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(c + o, 1, 3);
    else
        for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(c + o, 0, 3);
}

/* y (d) += a · x (d) */
static inline void axpy(float *restrict y, const float *restrict x, float a, int d) {
    for (int k = 0; k < d; k++) y[k] += a * x[k];
}
/* y (d) += x (d) */
static inline void addv(float *restrict y, const float *restrict x, int d) {
    for (int k = 0; k < d; k++) y[k] += x[k];
}

SP_HOT
void nn_pool_fwd(float *out, const float *h, const uint32_t *idx, const float *w, const uint64_t *off, int n, int d) {
    if (n <= 0) return;
    uint64_t end = off[n], pf = pool_ahead(d);
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)i * d;
        memset(o, 0, sizeof *o * (size_t)d);
        for (uint64_t j = off[i]; j < off[i + 1]; j++) {
            if (j + pf < end) prefetch_row(h + (size_t)idx[j + pf] * d, d, 0);
            const float *hr = h + (size_t)idx[j] * d;
            if (w) axpy(o, hr, w[j], d);
            else addv(o, hr, d);
        }
    }
}

SP_HOT
void nn_pool_bwd(float *dh, const float *dout, const uint32_t *idx, const float *w, const uint64_t *off, int n, int d) {
    if (n <= 0) return;
    uint64_t end = off[n], pf = pool_ahead(d);
    for (int i = 0; i < n; i++) {
        const float *g = dout + (size_t)i * d;
        for (uint64_t j = off[i]; j < off[i + 1]; j++) {
            if (j + pf < end) prefetch_row(dh + (size_t)idx[j + pf] * d, d, 1);
            float *r = dh + (size_t)idx[j] * d;
            if (w) axpy(r, g, w[j], d);
            else addv(r, g, d);
        }
    }
}

SP_HOT
void nn_pool_bwd_w(float *dw, const float *dout, const float *h, const uint32_t *idx, const uint64_t *off, int n,
                   int d) {
    if (n <= 0) return;
    uint64_t end = off[n], pf = pool_ahead(d);
    for (int i = 0; i < n; i++) {
        const float *g = dout + (size_t)i * d;
        for (uint64_t j = off[i]; j < off[i + 1]; j++) {
            if (j + pf < end) prefetch_row(h + (size_t)idx[j + pf] * d, d, 0);
            dw[j] = nn_dot(g, h + (size_t)idx[j] * d, (size_t)d);
        }
    }
}

int nn_pool_check(const uint32_t *idx, const uint64_t *off, int n, uint64_t nh) {
    if (n < 0) return sp_err(SP_EINPUT, "nn_pool_check: negative row count %d", n);
    if (off[0] != 0)
        return sp_err(SP_EINPUT, "nn_pool_check: off[0] = %llu, must be 0", (unsigned long long)off[0]);
    for (int i = 0; i < n; i++)
        if (off[i + 1] < off[i])
            return sp_err(SP_EINPUT, "nn_pool_check: off[%d] = %llu < off[%d] = %llu (offsets must not decrease)",
                          i + 1, (unsigned long long)off[i + 1], i, (unsigned long long)off[i]);
    for (uint64_t j = 0; j < off[n]; j++)
        if (idx[j] >= nh)
            return sp_err(SP_EINPUT, "nn_pool_check: idx[%llu] = %u is not below the %llu rows of h",
                          (unsigned long long)j, idx[j], (unsigned long long)nh);
    return SP_OK;
}

uint32_t nn_hash_row(const void *tok, size_t len, uint64_t seed, uint32_t nrows) {
    if (nrows == 0) return 0;
    return (uint32_t)(XXH64(tok, len, seed) % nrows);
}
