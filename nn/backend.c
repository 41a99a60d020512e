/* backend: the CPU reference backend (the nn_ functions over host memory) and
 * the choice between it and the CUDA backend (nn/backend.h). */
#include "backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

static int cpu_supports(nn_op op) { return op >= 0 && op < NN_OP_COUNT; }
static void *cpu_alloc(size_t bytes) { return malloc(bytes ? bytes : 1); }
static void cpu_free(void *p) { free(p); }
static void cpu_copy(void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) memcpy(dst, src, bytes);
}
static void cpu_zero(void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
}
static int cpu_sync(void) { return SP_OK; }

static void cpu_bias_act(float *y, const float *b, int n, int d, int act) {
    for (int i = 0; i < n; i++) {
        float *r = y + (size_t)i * d;
        if (b)
            for (int j = 0; j < d; j++) r[j] += b[j];
        if (act == NN_ACT_RELU)
            for (int j = 0; j < d; j++) r[j] = r[j] > 0.f ? r[j] : 0.f;
        else if (act == NN_ACT_GELU)
            for (int j = 0; j < d; j++) {
                float x = r[j];
                r[j] = 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
            }
    }
}

static void cpu_colsum(float *db, const float *dy, int n, int d) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) db[j] += dy[(size_t)i * d + j];
}

/* The reference attention: per sequence, head and query row, scores against the keys up to the row,
 * a row softmax, the weighted sum of values. Allocates one score row of the longest sequence. */
static void cpu_attention(float *out, const float *qkv, const uint64_t *off, int B, int w, int heads) {
    int dh = w / heads;
    uint64_t most = 1;
    for (int b = 0; b < B; b++) most = off[b + 1] - off[b] > most ? off[b + 1] - off[b] : most;
    float *s = malloc(sizeof *s * most);
    if (!s) { /* no sticky error state on the CPU: poison the output so that nothing reads it as valid */
        for (uint64_t i = 0; i < off[B] * (uint64_t)w; i++) out[i] = NAN;
        return;
    }
    float scale = 1.f / sqrtf((float)dh);
    size_t ld = 3 * (size_t)w;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < heads; h++)
            for (uint64_t i = off[b]; i < off[b + 1]; i++) {
                const float *q = qkv + i * ld + (size_t)h * dh;
                int len = (int)(i - off[b] + 1);
                for (int j = 0; j < len; j++)
                    s[j] = scale * nn_dot(q, qkv + (off[b] + j) * ld + w + (size_t)h * dh, (size_t)dh);
                nn_softmax_fwd(s, s, 1, len);
                float *o = out + i * (size_t)w + (size_t)h * dh;
                memset(o, 0, sizeof *o * (size_t)dh);
                for (int j = 0; j < len; j++) {
                    const float *v = qkv + (off[b] + j) * ld + 2 * (size_t)w + (size_t)h * dh;
                    for (int c = 0; c < dh; c++) o[c] += s[j] * v[c];
                }
            }
    free(s);
}

static nn_backend cpu_backend = {
    .name = "cpu",
    .device = "host CPU (OpenBLAS)",
    .host_memory = 1,
    .supports = cpu_supports,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .put = cpu_copy,
    .get = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .gemm = nn_gemm,
    .bias_act = cpu_bias_act,
    .relu_bwd = nn_relu_bwd,
    .l2norm = nn_l2norm_fwd,
    .l2norm_bwd = nn_l2norm_bwd,
    .layernorm = nn_layernorm_fwd,
    .softmax = nn_softmax_fwd,
    .pool = nn_pool_fwd,
    .pool_bwd = nn_pool_bwd,
    .colsum = cpu_colsum,
    .sampled_softmax = nn_sampled_softmax,
    .attention = cpu_attention,
};

const nn_backend *nn_backend_cpu(void) { return &cpu_backend; }

#if !SAGEPIPE_HAVE_CUDA
const nn_backend *nn_backend_cuda(int index) {
    (void)index;
    sp_err(SP_EUSAGE, "this sagepipe was built without CUDA (no nvcc at build time)");
    return NULL;
}
int nn_backend_cuda_built(void) { return 0; }
#endif

int nn_backend_select(const char *name, int local_rank, const nn_backend **out) {
    *out = NULL;
    if (!strcmp(name, "cpu")) {
        *out = nn_backend_cpu();
        return SP_OK;
    }
    if (strcmp(name, "cuda") && strcmp(name, "auto"))
        return sp_err(SP_EUSAGE, "--device '%s': expected cpu, cuda or auto", name);
    const nn_backend *be = nn_backend_cuda(local_rank);
    if (!be && !strcmp(name, "cuda")) {
        char why[256];
        snprintf(why, sizeof why, "%s", sp_errmsg());
        return sp_err(SP_EUSAGE, "--device cuda: %s", why);
    }
    *out = be ? be : nn_backend_cpu();
    return SP_OK;
}

void *nn_be_upload(const nn_backend *be, const void *src, size_t bytes) {
    void *p = be->alloc(bytes);
    if (p && bytes) be->put(p, src, bytes);
    return p;
}

void *nn_be_mirror(const nn_backend *be, void *host, size_t bytes, int fill) {
    if (be->host_memory) return host;
    return fill ? nn_be_upload(be, host, bytes) : be->alloc(bytes);
}

void nn_be_unmirror(const nn_backend *be, void *dev, const void *host) {
    if (dev != host) be->free(dev);
}
