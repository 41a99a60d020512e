/* encoder: the user encoder (DESIGN §4.1, PinnerFormer / TransAct V2), a causal
 * PreNorm transformer over a user's last actions, forward and backward on the CPU.
 * All parameters in one float array split by a table of named tensors. No I/O. */
#ifndef SP_SEQ_ENCODER_H
#define SP_SEQ_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "sp_base.h"

#define SQ_MAX_LAYERS 16
#define SQ_NTIME 11 /* time features of a duration: sin, cos for 5 periods + log1p(hours) */

/* d_item: width of the (frozen) item vectors and of the output; n_actions, n_surfaces ≤ 256 (ids are
 * uint8); d_e: width of the action and surface embeddings; width w (a multiple of heads); layers
 * 0..SQ_MAX_LAYERS; max_len: the longest sequence accepted (M). */
typedef struct {
    int d_item, n_actions, n_surfaces, d_e, width, layers, heads, max_len;
} sq_cfg;

/* Tensors. Global ones first, then SQ_L_N per layer: tensor k of layer l is t[SQ_LT(l, k)].
 * Shapes (matrices are (in, out), row-major, y = x·W + b), d_x = d_item + 2·d_e + 2·SQ_NTIME:
 *   ACT (n_actions, d_e)  SURF (n_surfaces, d_e)  WIN (d_x, w)  BIN (w)
 *   LNF_G, LNF_B (w)      WQT (SQ_NTIME, w)      H1 (w, w)  H1B (w)  H2 (w, d_item)  H2B (d_item)
 * per layer: LN1G, LN1B (w)  WQKV (w, 3w): columns [Q | K | V], head h owns columns h·w/heads.. of each
 *   BQKV (3w)  WO (w, w)  BO (w)  LN2G, LN2B (w)  W1 (w, 4w)  B1 (4w)  W2 (4w, w)  B2 (w) */
enum { SQ_ACT, SQ_SURF, SQ_WIN, SQ_BIN, SQ_LNF_G, SQ_LNF_B, SQ_WQT, SQ_H1, SQ_H1B, SQ_H2, SQ_H2B, SQ_NGLOBAL };
enum { SQ_LN1G, SQ_LN1B, SQ_WQKV, SQ_BQKV, SQ_WO, SQ_BO, SQ_LN2G, SQ_LN2B, SQ_W1, SQ_B1, SQ_W2, SQ_B2, SQ_L_N };
#define SQ_LT(l, k) (SQ_NGLOBAL + (l) * SQ_L_N + (k))

typedef struct {
    char name[16]; /* "w_in", "l1.wqkv", ... */
    int rows, cols;
    size_t off;    /* first float in p (and in a gradient array of the same layout) */
} sq_tensor;

typedef struct {
    sq_cfg c;
    int d_x;       /* token input width */
    size_t n;      /* floats in p */
    float *p;      /* (n) every parameter, owned by the model */
    int ntensors;  /* SQ_NGLOBAL + layers·SQ_L_N */
    sq_tensor t[SQ_NGLOBAL + SQ_MAX_LAYERS * SQ_L_N];
} sq_model;

/* Validates c (SP_EUSAGE with the reason in sp_errmsg()), lays out and initialises the parameters
 * deterministically from seed: Xavier matrices (the residual branches' output projections WO, W2
 * scaled by 1/√(2·layers)), N(0, 0.1²) embedding tables, LayerNorm gains 1, biases 0.
 * SP_ENOMEM. On failure m holds nothing to free. */
int sq_model_init(sq_model *m, const sq_cfg *c, uint64_t seed);
void sq_model_free(sq_model *m); /* frees p; m may be zeroed or freed twice */
/* Index of the tensor named name, or -1. */
int sq_model_find(const sq_model *m, const char *name);

/* A batch of B sequences packed: sequence b is rows off[b] .. off[b+1]−1, oldest first,
 * 1 ≤ length ≤ max_len. Per row: item (d_item floats), act < n_actions, surf < n_surfaces,
 * ts ≥ 0 (ms since the epoch, non-decreasing within a sequence), qt ≥ ts (the query time of
 * an embedding asked for at that row). Owned by the caller. */
typedef struct {
    int B;
    const uint64_t *off;  /* (B+1), off[0] = 0 */
    const float *item;    /* (N, d_item) */
    const uint8_t *act, *surf; /* (N) */
    const int64_t *ts, *qt;    /* (N) */
} sq_batch;

/* Saved activations and scratch of one thread; grows on demand and is reused (no allocation
 * once grown for the largest batch). One per thread: the sq_ functions are reentrant. */
typedef struct sq_acts sq_acts;
sq_acts *sq_acts_new(void); /* NULL when out of memory */
void sq_acts_free(sq_acts *a);

/* Checks a batch against the model (ids, lengths, timestamps): SP_OK or SP_EINPUT naming the
 * sequence, position and value. The functions below call it first. */
int sq_batch_check(const sq_model *m, const sq_batch *b);

/* out (N, d_item): u_t at every row (L2-normalised). Saves what sq_backward needs in a.
 * SP_OK, SP_EINPUT (bad batch, nothing written), SP_ENOMEM. */
int sq_forward(const sq_model *m, const sq_batch *b, sq_acts *a, float *out);

/* Dropout of a training forward (inverted, as in the Transformer): the token embedding after
 * W_in and each residual branch (attention, MLP) before it is added to the stream. Element
 * (row j, column k) of site s is dropped when byte (k mod 8) of mix64(seed, s, j, k / 8) is below
 * round(256·p), so p moves in steps of 1/256 (at most 255/256) and the mask is a function of
 * (seed, site, row, column): sq_backward recomputes it and nothing is stored. A training step
 * passes its own seed. */
typedef struct {
    float p;
    uint64_t seed;
} sq_dropout;
/* sq_forward with dropout (d NULL or d->p == 0: exactly sq_forward); sq_backward goes back
 * through the same masks. SP_EUSAGE for p outside [0, 1). */
int sq_forward_train(const sq_model *m, const sq_batch *b, sq_acts *a, float *out, const sq_dropout *d);
/* Backward of the last sq_forward on the same model and batch (SP_EUSAGE otherwise) from
 * dout (N, d_item) (rows the loss does not use are zero): grad (m->n floats, the layout of p)
 * is accumulated (+=); ditem (N, d_item) is overwritten, or skipped when NULL. */
int sq_backward(const sq_model *m, const sq_batch *b, sq_acts *a, const float *dout, float *grad, float *ditem);
/* Inference: out (B, d_item) = u at the last row of each sequence, the same values as the last
 * rows of sq_forward, computing only what those rows need (the last layer attends from the last
 * position only) and saving nothing (sq_backward then refuses). */
int sq_encode_last(const sq_model *m, const sq_batch *b, sq_acts *a, float *out);

/* The SQ_NTIME time features of a duration of dt ≥ 0 ms into f: sin, cos of 2π·dt/p for
 * p = 1 h, 1 d, 7 d, 30 d, 365 d, then log1p(dt in hours). */
void sq_time_features(int64_t dt, float *f);

/* GELU (tanh approximation, the function of nn_gelu_fwd/bwd within 1e-6) computed without
 * per-element calls, so that it vectorises; what the encoder uses. bwd: dx == dy allowed. */
void sq_gelu_fwd(float *restrict y, const float *restrict x, size_t n);
void sq_gelu_bwd(float *dx, const float *dy, const float *x, size_t n);

#endif
