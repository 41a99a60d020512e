/* nn: the numeric core of sagepipe. Tensors are plain float arrays, row-major,
 * with their shapes in comments; every op has a forward and a backward pass
 * and a finite-difference gradient test (tests/unit/test_nn_*.c).
 * Conventions: forward outputs are overwritten; backward gradients of
 * *inputs* (dx) are overwritten unless the comment says "accumulated";
 * gradients of *parameters* (dW, db, dg, ...) are always accumulated (+=), so
 * one zeroing per step serves several uses of a parameter. Any gradient
 * pointer may be NULL: that gradient is not computed. In-place (y == x) is
 * allowed only where the comment says so. No op allocates unless it says so;
 * none does I/O. Threads: ops are single-threaded and reentrant; callers
 * split rows across threads (the matrix products use OpenBLAS, one BLAS
 * thread per rank unless configured). */
#ifndef SP_NN_H
#define SP_NN_H

#include <stddef.h>
#include <stdint.h>

#include "sp_base.h"

/* ---- matrix products (cblas) ---- */
/* y (n, out) = x (n, in) · W (in, out) + b (out); b may be NULL. */
void nn_linear_fwd(float *y, const float *x, const float *W, const float *b, int n, int in, int out);
/* dx (n, in) = dy · Wᵀ (overwritten); dW (in, out) += xᵀ · dy; db (out) += Σ_rows dy. */
void nn_linear_bwd(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int n, int in,
                   int out);
/* C (m, n) = alpha · op(A) · op(B) + beta · C, row-major; op = transpose when tA/tB.
 * A is (m, k) or (k, m) when tA; B is (k, n) or (n, k) when tB. */
void nn_gemm(int tA, int tB, int m, int n, int k, float alpha, const float *A, const float *B, float beta, float *C);
/* ⟨a, b⟩ of two n-vectors (float, several partial sums). */
float nn_dot(const float *a, const float *b, size_t n);

/* ---- elementwise ---- */
void nn_relu_fwd(float *y, const float *x, size_t n);                  /* y == x allowed */
void nn_relu_bwd(float *dx, const float *dy, const float *y, size_t n); /* dx = dy·[y > 0]; dx == dy allowed */
/* GELU, tanh approximation: 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))). */
void nn_gelu_fwd(float *y, const float *x, size_t n);                  /* y == x NOT allowed (bwd needs x) */
void nn_gelu_bwd(float *dx, const float *dy, const float *x, size_t n); /* dx == dy allowed */

/* ---- row normalisations ---- */
/* y (n, d) = x / max(‖x‖₂, 1e-12) per row; norm (n) receives the clamped norms. y == x allowed. */
void nn_l2norm_fwd(float *y, float *norm, const float *x, int n, int d);
/* dx = (dy − y·⟨dy, y⟩) / norm, from the forward's y and norm; on a clamped row (norm == 1e-12,
 * where y = x / 1e-12) dx = dy / norm, the gradient of that scaling. dx == dy allowed. */
void nn_l2norm_bwd(float *dx, const float *dy, const float *y, const float *norm, int n, int d);
/* LayerNorm over the last dimension, eps 1e-5: y = (x − μ)·rstd·g + b; mean, rstd (n) saved.
 * g, b (d); b may be NULL. y == x NOT allowed. */
void nn_layernorm_fwd(float *y, float *mean, float *rstd, const float *x, const float *g, const float *b, int n, int d);
/* dx (n, d) overwritten; dg, db (d) accumulated. */
void nn_layernorm_bwd(float *dx, float *dg, float *db, const float *dy, const float *x, const float *mean,
                      const float *rstd, const float *g, int n, int d);
/* Row softmax: y (n, d) = softmax(x) per row (max-subtracted). y == x allowed. */
void nn_softmax_fwd(float *y, const float *x, int n, int d);
/* dx = y ⊙ (dy − ⟨dy, y⟩). dx == dy allowed. */
void nn_softmax_bwd(float *dx, const float *dy, const float *y, int n, int d);

/* ---- gather / pool (importance pooling, embedding bags) ---- */
/* out (n, d): row i = Σ_{j ∈ [off[i], off[i+1])} w[j] · h[idx[j]] (w NULL: weight 1).
 * h (nh, d); idx[j] < nh is the caller's contract (checked by nn_pool_check). A row with no
 * entries is zero. */
void nn_pool_fwd(float *out, const float *h, const uint32_t *idx, const float *w, const uint64_t *off, int n, int d);
/* dh (nh, d) accumulated: dh[idx[j]] += w[j] · dout[i] (scatter-add; single thread). */
void nn_pool_bwd(float *dh, const float *dout, const uint32_t *idx, const float *w, const uint64_t *off, int n, int d);
/* dw[j] (overwritten) = ⟨dout[i], h[idx[j]]⟩, the gradient of the pooling weights (may be skipped). */
void nn_pool_bwd_w(float *dw, const float *dout, const float *h, const uint32_t *idx, const uint64_t *off, int n,
                   int d);
/* SP_OK, or SP_EINPUT when off is not non-decreasing from 0 or an idx ≥ nh. */
int nn_pool_check(const uint32_t *idx, const uint64_t *off, int n, uint64_t nh);
/* Row of a hashed token in a table of nrows rows: xxh64(token bytes, seed) % nrows (0 when nrows == 0). */
uint32_t nn_hash_row(const void *tok, size_t len, uint64_t seed, uint32_t nrows);

/* ---- losses (each returns the mean loss over queries and writes gradients) ---- */
/* Sampled softmax with logQ correction (OmniSage/PinnerFormer).
 * q (nq, d) queries; c (nc, d) candidates (in-batch positives and shared negatives);
 * pos[i] = column of query i's positive; cid[nc] ids of the candidates: a column j ≠ pos[i] with
 * cid[j] == cid[pos[i]] is an accidental hit and is masked out (cid may be NULL: no masking);
 * logq[nc] = log sampling probability of each candidate (NULL: no correction).
 * logit[i][j] = ⟨q_i, c_j⟩ / tau − logq[j]; loss_i = −log softmax_j(logit_i)[pos[i]].
 * dq (nq, d), dc (nc, d) overwritten; *dtau (may be NULL) = ∂loss/∂tau.
 * scratch: nq·nc floats supplied by the caller. Returns mean loss. */
float nn_sampled_softmax(const float *q, const float *c, const int *pos, const uint64_t *cid, const float *logq,
                         int nq, int nc, int d, float tau, float *dq, float *dc, float *dtau, float *scratch);
/* The same with per-query exclusions: query i also masks every candidate whose id is in
 * excl[excl_off[i] .. excl_off[i+1]) (e.g. the query's other known positives), except its own
 * positive column. Needs cid. Allocates a small id -> column table (O(nc)); if that allocation
 * fails, the exclusions are ignored. excl_off NULL = nn_sampled_softmax. */
float nn_sampled_softmax_ex(const float *q, const float *c, const int *pos, const uint64_t *cid, const float *logq,
                            const uint64_t *excl_off, const uint64_t *excl, int nq, int nc, int d, float tau, float *dq,
                            float *dc, float *dtau, float *scratch);
/* Several targets over the same queries and candidates (e.g. the user encoder's next-action and all-action
 * targets): target k's positives are pos[k·nq + i], its weight w[k] (w[k] == 0: skipped), nt <=
 * NN_SOFTMAX_MAX_TARGETS. Returns Σ_k w[k]·loss_k and the gradients of that sum; lossk[k] (may be NULL) =
 * loss_k. Equals Σ_k w[k]·nn_sampled_softmax_ex(.., pos + k·nq, ..) to float rounding, with one logit
 * product and one product per gradient instead of one each per target. scratch: (nq + 2)·nc floats. Returns
 * NaN when nt is out of range. */
#define NN_SOFTMAX_MAX_TARGETS 8
float nn_sampled_softmax_multi(const float *q, const float *c, int nt, const int *pos, const float *w,
                               const uint64_t *cid, const float *logq, const uint64_t *excl_off, const uint64_t *excl,
                               int nq, int nc, int d, float tau, float *dq, float *dc, float *dtau, float *lossk,
                               float *scratch);
/* Max-margin (PinSage): for query i with positive p_i, shared negatives neg (nneg, d) and its
 * own hard negatives hard (nq, nhard, d) (NULL when nhard == 0):
 * loss_i = mean over its negatives n of max(0, ⟨q_i, n⟩ − ⟨q_i, p_i⟩ + margin).
 * dq, dp (nq, d), dneg (nneg, d), dhard (nq, nhard, d) overwritten. Returns mean loss. */
float nn_max_margin(const float *q, const float *p, const float *neg, const float *hard, int nq, int nneg, int nhard,
                    int d, float margin, float *dq, float *dp, float *dneg, float *dhard);

/* ---- initialisation, optimisers, schedules ---- */
/* x[i] ~ N(0, std²) from r (Box–Muller), deterministic for a given r state. */
void nn_init_normal(float *x, size_t n, float std, sp_rng *r);
/* Glorot/Xavier uniform for a (fan_in, fan_out) matrix. */
void nn_init_xavier(float *W, int fan_in, int fan_out, sp_rng *r);

typedef struct {
    float beta1, beta2, eps; /* 0.9, 0.999, 1e-8 */
    float weight_decay;      /* decoupled (AdamW); 0 = Adam */
} nn_adam_cfg;
/* One AdamW step at step t ≥ 1 (bias-corrected; t < 1 is taken as 1) with learning rate lr:
 * m, v (n) moments updated in place; p -= lr·(m̂/(√v̂+eps) + wd·p). */
void nn_adam_step(float *p, const float *g, float *m, float *v, size_t n, const nn_adam_cfg *c, int64_t t, float lr);
/* Sparse (lazy) Adam for embedding tables: only the nrows rows listed are updated, with
 * their gradients grow (nrows, d); table, m, v are (rows_total, d); rows must be unique.
 * Bias correction uses the global step t (as PyTorch's SparseAdam). */
void nn_adam_rows(float *table, float *m, float *v, const uint32_t *rows, const float *grow, int nrows, int d,
                  const nn_adam_cfg *c, int64_t t, float lr);
/* Running mean of parameter snapshots (epoch averaging): avg += (x − avg)/k for snapshot k ≥ 1,
 * so after k = 1..m avg (n) is the mean of the m snapshots whatever it held before k = 1. */
void nn_running_mean(float *avg, const float *x, size_t n, int k);
/* Linear warm-up over `warmup` steps to lr, then cosine decay to lr·min_frac at step `total`
 * (constant after). step counts from 0: step < warmup gives lr·(step+1)/warmup (lr at step
 * warmup−1, never 0); warmup ≤ step < total gives lr·(f + (1−f)·½(1 + cos(π·(step−warmup)/(total−warmup))))
 * with f = min_frac (lr at step warmup); step ≥ total gives lr·min_frac. */
float nn_lr_at(int64_t step, int64_t warmup, int64_t total, float lr, float min_frac);

#endif
