/* backend: where the heavy ops run, in the ggml manner. A backend is one small
 * table of function pointers: memory (alloc/put/get), a queue (sync) and the
 * ops. The CPU backend is the nn_ reference functions over host memory; the
 * CUDA backend (nn/cuda/, built when nvcc is found) runs kernels and cuBLAS
 * over device memory and says which ops it supports. Every pointer an op takes
 * is memory of the backend it is called on. Ops queue work and return nothing:
 * a backend's errors are sticky and reported by sync (SP_OK or the first
 * error, with the reason in sp_errmsg()). Shapes and semantics are those of
 * the nn_ functions named beside each op (nn.h). */
#ifndef SP_NN_BACKEND_H
#define SP_NN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    NN_OP_GEMM,            /* nn_gemm */
    NN_OP_BIAS_ACT,        /* y = act(y + b) */
    NN_OP_RELU_BWD,        /* nn_relu_bwd */
    NN_OP_L2NORM,          /* nn_l2norm_fwd */
    NN_OP_L2NORM_BWD,      /* nn_l2norm_bwd */
    NN_OP_LAYERNORM,       /* nn_layernorm_fwd */
    NN_OP_SOFTMAX,         /* nn_softmax_fwd */
    NN_OP_POOL,            /* nn_pool_fwd */
    NN_OP_POOL_BWD,        /* nn_pool_bwd (scatter-add) */
    NN_OP_COLSUM,          /* db += Σ_rows dy */
    NN_OP_SAMPLED_SOFTMAX, /* nn_sampled_softmax */
    NN_OP_ATTENTION,       /* causal multi-head attention over packed sequences */
    NN_OP_COUNT
} nn_op;

enum { NN_ACT_NONE, NN_ACT_RELU, NN_ACT_GELU };

typedef struct nn_backend nn_backend;
struct nn_backend {
    const char *name; /* "cpu", "cuda" */
    char device[96];  /* what it runs on, for logs ("NVIDIA H100 80GB HBM3 (device 0)") */
    int host_memory;  /* 1: backend memory is host memory (put/get are copies) */
    int (*supports)(nn_op op);
    /* ---- memory ---- */
    void *(*alloc)(size_t bytes); /* NULL when out of memory (bytes 0 gives a valid pointer) */
    void (*free)(void *p);        /* NULL is a no-op */
    void (*put)(void *dst, const void *src, size_t bytes); /* host src -> backend dst */
    void (*get)(void *dst, const void *src, size_t bytes); /* backend src -> host dst (synchronous) */
    void (*copy)(void *dst, const void *src, size_t bytes); /* backend -> backend (no overlap) */
    void (*zero)(void *p, size_t bytes);
    int (*sync)(void);
    /* ---- ops ---- */
    void (*gemm)(int tA, int tB, int m, int n, int k, float alpha, const float *A, const float *B, float beta,
                 float *C);
    /* y (n, d) = act(y + b) with b (d) broadcast over rows (b may be NULL); GELU is the tanh form. */
    void (*bias_act)(float *y, const float *b, int n, int d, int act);
    void (*relu_bwd)(float *dx, const float *dy, const float *y, size_t n);
    void (*l2norm)(float *y, float *norm, const float *x, int n, int d);
    void (*l2norm_bwd)(float *dx, const float *dy, const float *y, const float *norm, int n, int d);
    void (*layernorm)(float *y, float *mean, float *rstd, const float *x, const float *g, const float *b, int n,
                      int d);
    void (*softmax)(float *y, const float *x, int n, int d);
    void (*pool)(float *out, const float *h, const uint32_t *idx, const float *w, const uint64_t *off, int n, int d);
    void (*pool_bwd)(float *dh, const float *dout, const uint32_t *idx, const float *w, const uint64_t *off, int n,
                     int d);
    void (*colsum)(float *db, const float *dy, int n, int d); /* db (d) += Σ_i dy[i] */
    /* nn_sampled_softmax over backend memory (scratch nq·nc floats); the mean loss is returned to
     * the host (the call waits for it). */
    float (*sampled_softmax)(const float *q, const float *c, const int *pos, const uint64_t *cid, const float *logq,
                             int nq, int nc, int d, float tau, float *dq, float *dc, float *dtau, float *scratch);
    /* out (N, w): causal attention of packed sequences, sequence b = rows off[b]..off[b+1]−1 of
     * qkv (N, 3w) = [Q | K | V], head h owning columns h·dh..(h+1)·dh−1 of each (dh = w/heads):
     * out[i, head h] = Σ_{j ≤ i in i's sequence} softmax_j(⟨q_i, k_j⟩/√dh) v_j. */
    void (*attention)(float *out, const float *qkv, const uint64_t *off, int B, int w, int heads);
};

/* The CPU reference backend (always there). */
const nn_backend *nn_backend_cpu(void);
/* be, or the CPU backend when be is NULL (contexts built without --device, as tests build them). */
static inline const nn_backend *nn_backend_or_cpu(const nn_backend *be) { return be ? be : nn_backend_cpu(); }
/* The CUDA backend on device `index` (modulo the number of devices), or NULL with the reason in
 * sp_errmsg(): not built (no nvcc at build time), no device, or its start failed. Started once
 * per process; a second call returns the same backend. */
const nn_backend *nn_backend_cuda(int index);
/* 1 when this build has the CUDA backend. */
int nn_backend_cuda_built(void);

/* Picks a backend by name: "cpu"; "cuda" (SP_EUSAGE when it cannot start: not built, or no GPU);
 * "auto" (CUDA when it starts, else the CPU). local_rank picks the device (one GPU per rank on a
 * node: local rank modulo the devices). SP_EUSAGE on an unknown name. */
int nn_backend_select(const char *name, int local_rank, const nn_backend **out);

/* A backend copy of bytes of host memory (NULL when out of memory). */
void *nn_be_upload(const nn_backend *be, const void *src, size_t bytes);
/* Backend memory that mirrors a host buffer: the host pointer itself on a host-memory backend,
 * else a new allocation, filled from host when fill is set. Release with nn_be_unmirror. */
void *nn_be_mirror(const nn_backend *be, void *host, size_t bytes, int fill);
void nn_be_unmirror(const nn_backend *be, void *dev, const void *host);

#endif
