/* backend_cuda: the CUDA backend (nn/backend.h): device memory, one stream,
 * cuBLAS for the matrix products (fp32, no TF32 unless SAGEPIPE_CUDA_TF32=1),
 * kernels for the rest. Each kernel mirrors an nn_ reference function and is
 * checked against it by tests/unit/test_backend.c. Errors are sticky: the
 * first failed call is kept and reported by sync. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "backend.h"
#include "sp_base.h"
}

static cudaStream_t g_stream;
static cublasHandle_t g_blas;
static int g_err;        /* first error (an SP_ code), 0 while none */
static char g_msg[256];  /* its reason */
static float *g_rows;    /* device scratch of the sampled softmax: 2 floats per query */
static float *g_tmp;     /* device scratch: dq when the caller wants dtau without dq */
static size_t g_rows_cap, g_tmp_cap;

static void fail(const char *what, const char *why) {
    if (!g_err) {
        g_err = SP_EINTERNAL;
        snprintf(g_msg, sizeof g_msg, "cuda: %s: %s", what, why);
    }
}
static int ck(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return 0;
    fail(what, cudaGetErrorString(e));
    return -1;
}
static int ckb(cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    char b[32];
    snprintf(b, sizeof b, "cuBLAS status %d", (int)s);
    fail(what, b);
    return -1;
}
#define LAUNCHED(what) ck(cudaGetLastError(), what)

static unsigned blocks_for(size_t n, unsigned threads) {
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 65535u * 32u ? (b ? b : 1) : 65535u * 32u); /* grid-stride loops cover the rest */
}

/* ---------------- memory ---------------- */

static int cu_supports(nn_op op) { return op >= 0 && op < NN_OP_COUNT; }
static void *cu_alloc(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 16) != cudaSuccess) {
        cudaGetLastError(); /* an out-of-memory is the caller's to report, not sticky */
        return NULL;
    }
    return p;
}
static void cu_free(void *p) {
    if (p) ck(cudaFree(p), "cudaFree");
}
static void cu_put(void *dst, const void *src, size_t bytes) {
    if (bytes) ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_stream), "copy to device");
}
static void cu_get(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    if (!ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_stream), "copy to host"))
        ck(cudaStreamSynchronize(g_stream), "copy to host");
}
static void cu_copy(void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_stream), "device copy");
}
static void cu_zero(void *p, size_t bytes) {
    if (bytes) ck(cudaMemsetAsync(p, 0, bytes, g_stream), "memset");
}
static int cu_sync(void) {
    ck(cudaStreamSynchronize(g_stream), "synchronize");
    return g_err ? sp_err(g_err, "%s", g_msg) : SP_OK;
}

/* ---------------- matrix products ---------------- */

/* Row-major C (m, n) = α op(A) op(B) + β C is column-major Cᵀ (n, m) = α op(B)ᵀ op(A)ᵀ + β Cᵀ. */
static void cu_gemm(int tA, int tB, int m, int n, int k, float alpha, const float *A, const float *B, float beta,
                    float *C) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { /* C = β C, as BLAS */
        if (beta == 0.f) cu_zero(C, sizeof(float) * (size_t)m * n);
        else ckb(cublasSscal(g_blas, m * n, &beta, C, 1), "cublasSscal");
        return;
    }
    int lda = tA ? m : k, ldb = tB ? k : n;
    ckb(cublasSgemm(g_blas, tB ? CUBLAS_OP_T : CUBLAS_OP_N, tA ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, B, ldb, A,
                    lda, &beta, C, n),
        "cublasSgemm");
}

/* ---------------- elementwise ---------------- */

__device__ static inline float gelu(float x) {
    return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

__global__ static void k_bias_act(float *y, const float *b, size_t n, int d, int act) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = y[i] + (b ? b[i % d] : 0.f);
        if (act == NN_ACT_RELU) v = v > 0.f ? v : 0.f;
        else if (act == NN_ACT_GELU) v = gelu(v);
        y[i] = v;
    }
}
static void cu_bias_act(float *y, const float *b, int n, int d, int act) {
    size_t nd = (size_t)n * d;
    if (!nd || (!b && act == NN_ACT_NONE)) return;
    k_bias_act<<<blocks_for(nd, 256), 256, 0, g_stream>>>(y, b, nd, d, act);
    LAUNCHED("bias_act");
}

__global__ static void k_relu_bwd(float *dx, const float *dy, const float *y, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dx[i] = y[i] > 0.f ? dy[i] : 0.f;
}
static void cu_relu_bwd(float *dx, const float *dy, const float *y, size_t n) {
    if (!n) return;
    k_relu_bwd<<<blocks_for(n, 256), 256, 0, g_stream>>>(dx, dy, y, n);
    LAUNCHED("relu_bwd");
}

/* ---------------- row reductions: one warp per row, sums in double as the CPU ---------------- */

__device__ static inline double warp_sum(double v) {
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ static inline float warp_max(float v) {
    for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* The largest v / the sum of v over the block, the same bits in every thread (blockDim a multiple
 * of 32; every thread calls). Each warp folds the per-warp partials itself, in the same order. */
__device__ static float block_max(float v) {
    __shared__ float red[32];
    v = warp_max(v);
    __syncthreads(); /* an earlier call's readers are done with red */
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    v = threadIdx.x % 32 < blockDim.x / 32 ? red[threadIdx.x % 32] : -INFINITY;
    return warp_max(v);
}
__device__ static double block_sum(double v) {
    __shared__ double red[32];
    v = warp_sum(v);
    __syncthreads();
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    v = threadIdx.x % 32 < blockDim.x / 32 ? red[threadIdx.x % 32] : 0.0;
    return warp_sum(v);
}
#define ROW_WARPS 8 /* rows per 256-thread block */

__global__ static void k_l2norm(float *y, float *norm, const float *x, int n, int d) {
    int row = blockIdx.x * ROW_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n) return;
    const float *xr = x + (size_t)row * d;
    double ss = 0;
    for (int j = lane; j < d; j += 32) ss += (double)xr[j] * xr[j];
    ss = warp_sum(ss);
    float nr = (float)sqrt(ss);
    nr = nr > 1e-12f ? nr : 1e-12f;
    float *yr = y + (size_t)row * d;
    for (int j = lane; j < d; j += 32) yr[j] = xr[j] / nr;
    if (lane == 0) norm[row] = nr;
}
static void cu_l2norm(float *y, float *norm, const float *x, int n, int d) {
    if (n <= 0) return;
    k_l2norm<<<(n + ROW_WARPS - 1) / ROW_WARPS, 32 * ROW_WARPS, 0, g_stream>>>(y, norm, x, n, d);
    LAUNCHED("l2norm");
}

__global__ static void k_l2norm_bwd(float *dx, const float *dy, const float *y, const float *norm, int n, int d) {
    int row = blockIdx.x * ROW_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n) return;
    const float *g = dy + (size_t)row * d, *yr = y + (size_t)row * d;
    float nr = norm[row];
    double s = 0;
    if (nr > 1e-12f)
        for (int j = lane; j < d; j += 32) s += (double)g[j] * yr[j];
    float dot = (float)warp_sum(s);
    float *o = dx + (size_t)row * d;
    for (int j = lane; j < d; j += 32) o[j] = (g[j] - yr[j] * dot) / nr;
}
static void cu_l2norm_bwd(float *dx, const float *dy, const float *y, const float *norm, int n, int d) {
    if (n <= 0) return;
    k_l2norm_bwd<<<(n + ROW_WARPS - 1) / ROW_WARPS, 32 * ROW_WARPS, 0, g_stream>>>(dx, dy, y, norm, n, d);
    LAUNCHED("l2norm_bwd");
}

__global__ static void k_layernorm(float *y, float *mean, float *rstd, const float *x, const float *g, const float *b,
                                   int n, int d) {
    int row = blockIdx.x * ROW_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n) return;
    const float *xr = x + (size_t)row * d;
    double s = 0;
    for (int j = lane; j < d; j += 32) s += xr[j];
    double mu = warp_sum(s) / d, v = 0;
    for (int j = lane; j < d; j += 32) v += ((double)xr[j] - mu) * ((double)xr[j] - mu);
    v = warp_sum(v) / d;
    float rs = (float)(1.0 / sqrt(v + 1e-5));
    float *yr = y + (size_t)row * d;
    for (int j = lane; j < d; j += 32) yr[j] = (float)((double)xr[j] - mu) * rs * g[j] + (b ? b[j] : 0.f);
    if (lane == 0) {
        mean[row] = (float)mu;
        rstd[row] = rs;
    }
}
static void cu_layernorm(float *y, float *mean, float *rstd, const float *x, const float *g, const float *b, int n,
                         int d) {
    if (n <= 0) return;
    k_layernorm<<<(n + ROW_WARPS - 1) / ROW_WARPS, 32 * ROW_WARPS, 0, g_stream>>>(y, mean, rstd, x, g, b, n, d);
    LAUNCHED("layernorm");
}

__global__ static void k_softmax(float *y, const float *x, int n, int d) {
    int row = blockIdx.x * ROW_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n) return;
    const float *xr = x + (size_t)row * d;
    float mx = -INFINITY;
    for (int j = lane; j < d; j += 32) mx = fmaxf(mx, xr[j]);
    mx = warp_max(mx);
    double s = 0;
    for (int j = lane; j < d; j += 32) s += expf(xr[j] - mx);
    float inv = (float)(1.0 / warp_sum(s));
    float *yr = y + (size_t)row * d;
    for (int j = lane; j < d; j += 32) yr[j] = expf(xr[j] - mx) * inv;
}
static void cu_softmax(float *y, const float *x, int n, int d) {
    if (n <= 0 || d <= 0) return;
    k_softmax<<<(n + ROW_WARPS - 1) / ROW_WARPS, 32 * ROW_WARPS, 0, g_stream>>>(y, x, n, d);
    LAUNCHED("softmax");
}

/* ---------------- gather-pool: thread t owns one element V (a float4 or a float) of one output row ---------------- */

__device__ static inline void add_scaled(float4 &a, float s, float4 v) {
    a.x += s * v.x, a.y += s * v.y, a.z += s * v.z, a.w += s * v.w;
}
__device__ static inline void add_scaled(float &a, float s, float v) { a += s * v; }

template <typename V>
__global__ static void k_pool(V *out, const V *h, const uint32_t *idx, const float *w, const uint64_t *off, int n,
                              int dv) {
    size_t total = (size_t)n * dv;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t row = t / dv;
        int c = (int)(t % dv);
        V a = {};
        for (uint64_t j = off[row], e = off[row + 1]; j < e; j++)
            add_scaled(a, w ? w[j] : 1.f, __ldg(h + (size_t)idx[j] * dv + c));
        out[t] = a;
    }
}
static void cu_pool(float *out, const float *h, const uint32_t *idx, const float *w, const uint64_t *off, int n,
                    int d) {
    if (n <= 0 || d <= 0) return;
    if (d % 4 == 0 && ((uintptr_t)out | (uintptr_t)h) % 16 == 0)
        k_pool<float4><<<blocks_for((size_t)n * d / 4, 256), 256, 0, g_stream>>>((float4 *)out, (const float4 *)h, idx,
                                                                                w, off, n, d / 4);
    else k_pool<float><<<blocks_for((size_t)n * d, 256), 256, 0, g_stream>>>(out, h, idx, w, off, n, d);
    LAUNCHED("pool");
}

/* scatter-add: dh[idx[j]] += w[j]·dout[row] (atomics: the sum order, and so the last bits, vary) */
__global__ static void k_pool_bwd(float *dh, const float *dout, const uint32_t *idx, const float *w,
                                  const uint64_t *off, int n, int d) {
    size_t total = (size_t)n * d;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t row = t / d;
        int c = (int)(t % d);
        float g = dout[t];
        for (uint64_t j = off[row], e = off[row + 1]; j < e; j++)
            atomicAdd(dh + (size_t)idx[j] * d + c, (w ? w[j] : 1.f) * g);
    }
}
static void cu_pool_bwd(float *dh, const float *dout, const uint32_t *idx, const float *w, const uint64_t *off, int n,
                        int d) {
    if (n <= 0 || d <= 0) return;
    k_pool_bwd<<<blocks_for((size_t)n * d, 256), 256, 0, g_stream>>>(dh, dout, idx, w, off, n, d);
    LAUNCHED("pool_bwd");
}

/* db[c] += Σ_i dy[i][c], deterministically: slices of 64 rows write partial sums (one thread per
 * column and slice), then one thread per column adds the slices in order (no atomics: a rerun gives
 * the same bits). */
#define COLSUM_ROWS 64
__global__ static void k_colsum_part(float *part, const float *dy, int n, int d) {
    int c = blockIdx.x * 32 + threadIdx.x % 32;
    if (c >= d) return;
    for (int slice = blockIdx.y * 8 + threadIdx.x / 32; slice * COLSUM_ROWS < n; slice += gridDim.y * 8) {
        int r0 = slice * COLSUM_ROWS, r1 = min(n, r0 + COLSUM_ROWS);
        float s = 0.f;
        for (int r = r0; r < r1; r++) s += dy[(size_t)r * d + c];
        part[(size_t)slice * d + c] = s;
    }
}
__global__ static void k_colsum_fold(float *db, const float *part, int slices, int d) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= d) return;
    float s = 0.f;
    for (int k = 0; k < slices; k++) s += part[(size_t)k * d + c];
    db[c] += s;
}
static float *g_part;
static size_t g_part_cap;
static int grow(float **p, size_t *cap, size_t need);
static void cu_colsum(float *db, const float *dy, int n, int d) {
    if (n <= 0 || d <= 0) return;
    int slices = (n + COLSUM_ROWS - 1) / COLSUM_ROWS;
    if (grow(&g_part, &g_part_cap, (size_t)slices * d)) return;
    dim3 grid((d + 31) / 32, (unsigned)min((slices + 7) / 8, 65535));
    k_colsum_part<<<grid, 256, 0, g_stream>>>(g_part, dy, n, d);
    k_colsum_fold<<<(d + 127) / 128, 128, 0, g_stream>>>(db, g_part, slices, d);
    LAUNCHED("colsum");
}

/* ---------------- sampled softmax ---------------- */

/* Block per query row over s = scratch row (⟨q, c⟩/τ): z = s − logq, accidental hits −∞ (not the
 * positive), then loss = logsumexp − z_pos and s ← ∂(mean loss)/∂z. rows[2i] = loss_i. */
__global__ static void k_ssm_rows(float *S, const int *pos, const uint64_t *cid, const float *logq, int nq, int nc,
                                  float *rows) {
    int i = blockIdx.x, tid = threadIdx.x;
    float *s = S + (size_t)i * nc;
    int p = pos[i];
    uint64_t pid = cid ? cid[p] : 0;
    float mx = -INFINITY;
    for (int j = tid; j < nc; j += blockDim.x) {
        float z = s[j] - (logq ? logq[j] : 0.f);
        if (cid && j != p && cid[j] == pid) z = -INFINITY;
        s[j] = z;
        mx = fmaxf(mx, z);
    }
    mx = block_max(mx);
    double sum = 0;
    for (int j = tid; j < nc; j += blockDim.x) sum += expf(s[j] - mx);
    sum = block_sum(sum);
    float zp = s[p];
    __syncthreads(); /* every thread has read s[p] before it is overwritten */
    float inv_nq = 1.f / (float)nq, isum = (float)(inv_nq / sum);
    for (int j = tid; j < nc; j += blockDim.x) s[j] = expf(s[j] - mx) * isum - (j == p ? inv_nq : 0.f);
    if (tid == 0) rows[2 * i] = (float)(log(sum) + mx - zp);
}
/* rows[2i+1] = ⟨q_i, dq_i⟩ (for ∂loss/∂τ) */
__global__ static void k_rowdot(const float *a, const float *b, int n, int d, float *rows) {
    int row = blockIdx.x * ROW_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n) return;
    double s = 0;
    for (int j = lane; j < d; j += 32) s += (double)a[(size_t)row * d + j] * b[(size_t)row * d + j];
    s = warp_sum(s);
    if (lane == 0) rows[2 * row + 1] = (float)s;
}
static int grow(float **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    cu_free(*p);
    *p = (float *)cu_alloc(sizeof(float) * need);
    *cap = *p ? need : 0;
    if (!*p) fail("scratch", "out of device memory");
    return *p ? 0 : -1;
}
static float cu_sampled_softmax(const float *q, const float *c, const int *pos, const uint64_t *cid,
                                const float *logq, int nq, int nc, int d, float tau, float *dq, float *dc,
                                float *dtau, float *scratch) {
    if (nq <= 0 || nc <= 0) {
        if (dc && nc > 0) cu_zero(dc, sizeof(float) * (size_t)nc * d);
        if (dq && nq > 0) cu_zero(dq, sizeof(float) * (size_t)nq * d);
        if (dtau) *dtau = 0.f;
        return 0.f;
    }
    if (grow(&g_rows, &g_rows_cap, 2 * (size_t)nq)) return NAN;
    float itau = 1.f / tau;
    cu_gemm(0, 1, nq, nc, d, itau, q, c, 0.f, scratch);
    k_ssm_rows<<<nq, 256, 0, g_stream>>>(scratch, pos, cid, logq, nq, nc, g_rows);
    LAUNCHED("sampled_softmax");
    float *gq = dq;
    if (!gq && dtau) {
        if (grow(&g_tmp, &g_tmp_cap, (size_t)nq * d)) return NAN;
        gq = g_tmp;
    }
    if (gq) cu_gemm(0, 0, nq, d, nc, itau, scratch, c, 0.f, gq);
    if (dc) cu_gemm(1, 0, nc, d, nq, itau, scratch, q, 0.f, dc);
    if (dtau) {
        k_rowdot<<<(nq + ROW_WARPS - 1) / ROW_WARPS, 32 * ROW_WARPS, 0, g_stream>>>(q, gq, nq, d, g_rows);
        LAUNCHED("sampled_softmax dtau");
    }
    float *h = (float *)malloc(sizeof(float) * 2 * (size_t)nq);
    if (!h) {
        fail("sampled softmax", "out of host memory");
        return NAN;
    }
    cu_get(h, g_rows, sizeof(float) * 2 * (size_t)nq);
    double loss = 0, st = 0;
    for (int i = 0; i < nq; i++) loss += h[2 * i], st += dtau ? h[2 * i + 1] : 0.f;
    free(h);
    if (dtau) *dtau = (float)(-st / tau);
    return g_err ? NAN : (float)(loss / nq);
}

/* ---------------- causal attention ---------------- */

__device__ static inline float dot(const float *a, const float *b, int n) {
    float s = 0.f;
    for (int c = 0; c < n; c++) s += a[c] * b[c];
    return s;
}
/* Block per (row, head). Pass 1: the row's largest score; pass 2: keys in chunks of blockDim, each
 * thread one key's weight into shared memory, then the threads of the head's dh columns accumulate. */
__global__ static void k_attention(float *out, const float *qkv, const uint64_t *off, int B, int w, int heads) {
    extern __shared__ float sh[]; /* q (dh) | e (blockDim) */
    int dh = w / heads, h = blockIdx.y, tid = threadIdx.x, nt = blockDim.x;
    uint64_t i = blockIdx.x;
    int lo = 0, hi = B; /* the sequence b with off[b] <= i < off[b+1] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (off[mid] <= i) lo = mid;
        else hi = mid;
    }
    uint64_t s0 = off[lo];
    int len = (int)(i - s0 + 1);
    size_t ld = 3 * (size_t)w;
    float *q = sh, *e = sh + dh;
    for (int c = tid; c < dh; c += nt) q[c] = qkv[i * ld + (size_t)h * dh + c];
    __syncthreads();
    float scale = rsqrtf((float)dh), mx = -INFINITY;
    for (int j = tid; j < len; j += nt) mx = fmaxf(mx, scale * dot(q, qkv + (s0 + j) * ld + w + (size_t)h * dh, dh));
    mx = block_max(mx);
    float acc[4] = {0.f, 0.f, 0.f, 0.f}; /* columns tid, tid+nt, ... (dh ≤ 4·nt) */
    double sum = 0;
    for (int j0 = 0; j0 < len; j0 += nt) {
        int j = j0 + tid;
        float ej = 0.f;
        if (j < len) ej = expf(scale * dot(q, qkv + (s0 + j) * ld + w + (size_t)h * dh, dh) - mx);
        sum += ej;
        e[tid] = ej;
        __syncthreads();
        int m = min(nt, len - j0);
        for (int r = 0; r < 4; r++) {
            int c = tid + r * nt;
            if (c >= dh) break;
            float a = 0.f;
            for (int jj = 0; jj < m; jj++) a += e[jj] * qkv[(s0 + j0 + jj) * ld + 2 * (size_t)w + (size_t)h * dh + c];
            acc[r] += a;
        }
        __syncthreads();
    }
    float inv = (float)(1.0 / block_sum(sum));
    for (int r = 0; r < 4; r++) {
        int c = tid + r * nt;
        if (c >= dh) break;
        out[i * (size_t)w + (size_t)h * dh + c] = acc[r] * inv;
    }
}
static void cu_attention(float *out, const float *qkv, const uint64_t *off, int B, int w, int heads) {
    if (B <= 0 || w <= 0 || heads <= 0) return;
    uint64_t N;
    cu_get(&N, off + B, sizeof N);
    if (!N || g_err) return;
    int dh = w / heads, nt = 128;
    if (dh > 4 * nt) {
        fail("attention", "head width over 512");
        return;
    }
    dim3 grid((unsigned)N, (unsigned)heads);
    k_attention<<<grid, nt, sizeof(float) * (size_t)(dh + nt), g_stream>>>(out, qkv, off, B, w, heads);
    LAUNCHED("attention");
}

/* ---------------- the backend ---------------- */

static nn_backend cuda_backend = {
    "cuda", "", 0, cu_supports, cu_alloc, cu_free, cu_put, cu_get, cu_copy, cu_zero, cu_sync, cu_gemm, cu_bias_act,
    cu_relu_bwd, cu_l2norm, cu_l2norm_bwd, cu_layernorm, cu_softmax, cu_pool, cu_pool_bwd, cu_colsum,
    cu_sampled_softmax, cu_attention,
};
static int g_started; /* 0 not tried, 1 running, -1 failed */
static char g_why[256];

extern "C" const nn_backend *nn_backend_cuda(int index) {
    if (g_started == 1) return &cuda_backend;
    if (g_started == -1) {
        sp_err(SP_EUSAGE, "%s", g_why);
        return NULL;
    }
    g_started = -1;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count < 1) {
        snprintf(g_why, sizeof g_why, "no CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        cudaGetLastError();
        sp_err(SP_EUSAGE, "%s", g_why);
        return NULL;
    }
    int dev = (index < 0 ? 0 : index) % count;
    cudaDeviceProp prop;
    if ((e = cudaSetDevice(dev)) != cudaSuccess || (e = cudaGetDeviceProperties(&prop, dev)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking)) != cudaSuccess) {
        snprintf(g_why, sizeof g_why, "CUDA device %d: %s", dev, cudaGetErrorString(e));
        sp_err(SP_EUSAGE, "%s", g_why);
        return NULL;
    }
    if (cublasCreate(&g_blas) != CUBLAS_STATUS_SUCCESS || cublasSetStream(g_blas, g_stream) != CUBLAS_STATUS_SUCCESS) {
        snprintf(g_why, sizeof g_why, "CUDA device %d: cuBLAS did not start", dev);
        sp_err(SP_EUSAGE, "%s", g_why);
        return NULL;
    }
    const char *tf = getenv("SAGEPIPE_CUDA_TF32");
    cublasSetMathMode(g_blas, tf && !strcmp(tf, "1") ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
    snprintf(cuda_backend.device, sizeof cuda_backend.device, "%s (device %d of %d)", prop.name, dev, count);
    g_started = 1;
    return &cuda_backend;
}

extern "C" int nn_backend_cuda_built(void) { return 1; }
