/* encoder: the causal PreNorm transformer user encoder (encoder.h), forward and
 * backward over a packed batch: projections are one gemm over all N rows, attention
 * runs per sequence and head on causal row blocks (the upper triangle is skipped). */
#include "encoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

/* Attention row block: the scores of rows [r0, r0+BLK) are computed against keys [0, r0+BLK)
 * only, so a causal len×len product costs about (1/2 + BLK/(2·len)) of the full one. */
#define SQ_ATT_BLK 32
/* Stream id of the parameter initialisation (sp_rng_init's id under SP_RNG_TRAIN; "sqe\0"). */
#define SQ_RNG_ID 0x73716500ULL

static const int64_t sq_period_ms[5] = {3600000LL, 86400000LL, 604800000LL, 2592000000LL, 31536000000LL};

void sq_time_features(int64_t dt, float *f) {
    for (int k = 0; k < 5; k++) {
        int64_t p = sq_period_ms[k], r = dt % p; /* exact phase: no float rounding of epoch-sized dt */
        if (r < 0) r += p;
        double ph = 6.283185307179586 * ((double)r / (double)p);
        f[2 * k] = (float)sin(ph);
        f[2 * k + 1] = (float)cos(ph);
    }
    f[10] = (float)log1p((double)(dt > 0 ? dt : 0) / 3600000.0);
}

/* ---- GELU ----
 * The same tanh-approximation GELU as nn_gelu_fwd/bwd, written as 0.5·(1 + tanh(u)) = σ(2u) with an
 * exp the compiler vectorises: nn_gelu's per-element tanhf calls were 45% of sq_encode_last's time
 * (perf, width 64, M = 256). |sq_gelu − nn_gelu| < 1e-6 (tests/unit/test_seq_encoder.c). */

#define GELU_C 0.7978845608028654f /* √(2/π) */
#define GELU_A 0.044715f

/* e^z, z clamped to [−87, 88]; relative error < 3e-7. z = n·ln2 + r with |r| ≤ ln2/2 (n rounded with
 * the 1.5·2²³ trick, ln2 split in two for an exact n·ln2_hi), e^r by its Taylor polynomial to r⁷,
 * 2ⁿ built in the exponent bits. Plain arithmetic, no calls: loops over it vectorise. */
static inline float vexp(float z) {
    z = z < -87.0f ? -87.0f : z > 88.0f ? 88.0f : z;
    float nf = (z * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = (z - nf * 0.693145751953125f) - nf * 1.428606765330187e-06f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
              r * (1.0f / 720 + r * (1.0f / 5040)))))));
    int32_t bits = ((int32_t)nf + 127) << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

SP_HOT
void sq_gelu_fwd(float *restrict y, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], sg = 1.0f / (1.0f + vexp(-2.0f * GELU_C * (v + GELU_A * v * v * v)));
        y[i] = v * sg;
    }
}

/* d/dx x·σ(2u) = σ + 2x·σ(1 − σ)·u′ with u′ = √(2/π)(1 + 3·0.044715 x²). */
SP_HOT
void sq_gelu_bwd(float *dx, const float *dy, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i], e = vexp(-2.0f * GELU_C * (v + GELU_A * v * v * v)), sg = 1.0f / (1.0f + e);
        /* 1 − σ as e·σ: no cancellation where σ rounds to 1 */
        dx[i] = dy[i] * (sg + 2.0f * v * sg * (e * sg) * GELU_C * (1.0f + 3.0f * GELU_A * v * v));
    }
}

/* ---- model ---- */

static const char *const sq_gname[SQ_NGLOBAL] = {"act", "surf", "w_in", "b_in", "lnf_g", "lnf_b",
                                                 "w_qt", "h1", "h1_b", "h2", "h2_b"};
static const char *const sq_lname[SQ_L_N] = {"ln1_g", "ln1_b", "wqkv", "bqkv", "wo", "bo",
                                             "ln2_g", "ln2_b", "w1", "b1", "w2", "b2"};

static int cfg_check(const sq_cfg *c) {
    if (c->d_item < 1 || c->d_e < 1 || c->width < 1 || c->heads < 1 || c->max_len < 1)
        return sp_err(SP_EUSAGE, "sq_model_init: d_item %d, d_e %d, width %d, heads %d, max_len %d must be >= 1",
                      c->d_item, c->d_e, c->width, c->heads, c->max_len);
    if (c->n_actions < 1 || c->n_actions > 256 || c->n_surfaces < 1 || c->n_surfaces > 256)
        return sp_err(SP_EUSAGE, "sq_model_init: n_actions %d and n_surfaces %d must be in 1..256 (uint8 ids)",
                      c->n_actions, c->n_surfaces);
    if (c->width % c->heads)
        return sp_err(SP_EUSAGE, "sq_model_init: width %d is not a multiple of heads %d", c->width, c->heads);
    if (c->layers < 0 || c->layers > SQ_MAX_LAYERS)
        return sp_err(SP_EUSAGE, "sq_model_init: layers %d not in 0..%d", c->layers, SQ_MAX_LAYERS);
    if (c->d_item > 1 << 16 || c->d_e > 1 << 16 || c->width > 1 << 14 || c->max_len > 1 << 20)
        return sp_err(SP_EUSAGE, "sq_model_init: d_item %d, d_e %d, width %d or max_len %d is implausibly large",
                      c->d_item, c->d_e, c->width, c->max_len);
    return SP_OK;
}

static void put(sq_model *m, int i, const char *name, int rows, int cols) {
    sq_tensor *t = &m->t[i];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->off = m->n;
    m->n += (size_t)rows * (size_t)cols;
}

int sq_model_init(sq_model *m, const sq_cfg *c, uint64_t seed) {
    memset(m, 0, sizeof *m);
    int rc = cfg_check(c);
    if (rc) return rc;
    m->c = *c;
    int w = c->width;
    m->d_x = c->d_item + 2 * c->d_e + 2 * SQ_NTIME;
    const int gshape[SQ_NGLOBAL][2] = {{c->n_actions, c->d_e}, {c->n_surfaces, c->d_e}, {m->d_x, w}, {1, w},
                                       {1, w}, {1, w}, {SQ_NTIME, w}, {w, w}, {1, w}, {w, c->d_item}, {1, c->d_item}};
    const int lshape[SQ_L_N][2] = {{1, w}, {1, w}, {w, 3 * w}, {1, 3 * w}, {w, w}, {1, w},
                                   {1, w}, {1, w}, {w, 4 * w}, {1, 4 * w}, {4 * w, w}, {1, w}};
    for (int i = 0; i < SQ_NGLOBAL; i++) put(m, i, sq_gname[i], gshape[i][0], gshape[i][1]);
    for (int l = 0; l < c->layers; l++)
        for (int k = 0; k < SQ_L_N; k++) {
            char name[16];
            snprintf(name, sizeof name, "l%d.%s", l, sq_lname[k]);
            put(m, SQ_LT(l, k), name, lshape[k][0], lshape[k][1]);
        }
    m->ntensors = SQ_NGLOBAL + c->layers * SQ_L_N;
    m->p = calloc(m->n, sizeof(float));
    if (!m->p) {
        size_t n = m->n;
        memset(m, 0, sizeof *m);
        return sp_err(SP_ENOMEM, "sq_model_init: %zu parameters", n);
    }
    float resid = c->layers ? 1.0f / sqrtf(2.0f * (float)c->layers) : 1.0f;
    for (int i = 0; i < m->ntensors; i++) {
        sq_tensor *t = &m->t[i];
        float *x = m->p + t->off;
        sp_rng r;
        sp_rng_init(&r, seed, SP_RNG_TRAIN, SQ_RNG_ID + (uint64_t)i); /* one stream per tensor */
        int k = i < SQ_NGLOBAL ? -1 : (i - SQ_NGLOBAL) % SQ_L_N;
        if (i == SQ_ACT || i == SQ_SURF) {
            nn_init_normal(x, (size_t)t->rows * t->cols, 0.1f, &r);
        } else if (i == SQ_LNF_G || k == SQ_LN1G || k == SQ_LN2G) {
            for (int j = 0; j < t->cols; j++) x[j] = 1.0f;
        } else if (t->rows > 1) {
            nn_init_xavier(x, t->rows, t->cols, &r);
            if (k == SQ_WO || k == SQ_W2)
                for (size_t j = 0; j < (size_t)t->rows * t->cols; j++) x[j] *= resid;
        } /* biases and LayerNorm offsets stay 0 */
    }
    return SP_OK;
}

void sq_model_free(sq_model *m) {
    free(m->p);
    m->p = NULL;
    m->n = 0;
}

int sq_model_find(const sq_model *m, const char *name) {
    for (int i = 0; i < m->ntensors; i++)
        if (!strcmp(m->t[i].name, name)) return i;
    return -1;
}

/* ---- activations ---- */

/* Buffers of sq_acts. "S" = one slot per layer when saving for backward, else one slot reused. */
enum {
    A_X,    /* (N, d_x) token inputs */
    A_FQ,   /* (N, SQ_NTIME) query-time features (encode_last: (B, ·)) */
    A_E,    /* (layers+1, N, w) residual stream entering each layer and leaving the last (no save: (N, w)) */
    A_MID,  /* (layers, N, w) stream after the attention residual (save only) */
    A_LN1,  /* S (N, w) */
    A_MU1, A_RS1, /* S (N) */
    A_QKV,  /* S (3, heads, N, dh) head-major Q, K, V */
    A_ATT,  /* S (heads, N, dh) attention outputs */
    A_P,    /* save: (layers, heads, Σ_b blk(len_b)) causal row blocks of probabilities; else one block set */
    A_LN2,  /* S (N, w) */
    A_MU2, A_RS2, /* S (N) */
    A_U, A_G,     /* S (N, 4w) MLP pre- and post-GELU */
    A_LNF, A_O, A_HP, A_HG, /* (N, w) head: LN_f(e), o, pre-GELU, post-GELU */
    A_MUF, A_RSF, A_YN,     /* (N) */
    A_OUT,  /* (N, d_item) u (save only) */
    A_EC,   /* (B, w) encode_last: the last rows' stream in the last layer */
    A_DE, A_DT, A_DATT, /* (N, w) backward */
    A_DQKV, /* (3, heads, N, dh) backward */
    A_S1, A_S2, /* (N, wide) scratch, wide = max(4w, 3w, d_x, d_item) */
    A_DP,   /* (SQ_ATT_BLK, max_len) backward scratch */
    A_NBUF
};

struct sq_acts {
    float *buf[A_NBUF];
    size_t cap[A_NBUF];
    uint64_t *poff; /* (B+1) offsets of each sequence's probability blocks (per layer and head) */
    size_t poff_cap;
    /* what the last forward saved, for sq_backward */
    const sq_model *m;
    const float *mp;
    size_t N;
    int B, saved;
    unsigned drop_thr; /* dropout of the saved forward: bytes below this are dropped (0: none) */
    float drop_scale;  /* 256 / (256 − drop_thr) */
    uint64_t drop_seed;
};

sq_acts *sq_acts_new(void) { return calloc(1, sizeof(sq_acts)); }

void sq_acts_free(sq_acts *a) {
    if (!a) return;
    for (int i = 0; i < A_NBUF; i++) free(a->buf[i]);
    free(a->poff);
    free(a);
}

/* Floats of the probability row blocks of a sequence of length len, queries from q0. */
static size_t pblk(int len, int q0) {
    size_t s = 0;
    for (int r0 = q0; r0 < len; r0 += SQ_ATT_BLK) {
        int rows = len - r0 < SQ_ATT_BLK ? len - r0 : SQ_ATT_BLK;
        s += (size_t)rows * (size_t)(r0 + rows);
    }
    return s;
}

static int acts_grow(sq_acts *a, const sq_model *m, const sq_batch *b, size_t N, int save, int backward) {
    const sq_cfg *c = &m->c;
    size_t w = (size_t)c->width, L = (size_t)c->layers, S = save ? (L ? L : 1) : 1, H = (size_t)c->heads;
    size_t wide = 4 * w;
    if ((size_t)m->d_x > wide) wide = (size_t)m->d_x;
    if ((size_t)c->d_item > wide) wide = (size_t)c->d_item;
    if (sp_grow((void **)&a->poff, &a->poff_cap, (size_t)b->B + 1, sizeof(uint64_t))) return SP_ENOMEM;
    a->poff[0] = 0;
    size_t maxp = 0;
    for (int i = 0; i < b->B; i++) {
        size_t s = pblk((int)(b->off[i + 1] - b->off[i]), 0);
        a->poff[i + 1] = a->poff[i] + s;
        maxp = s > maxp ? s : maxp;
    }
    size_t need[A_NBUF] = {0};
    need[A_X] = N * (size_t)m->d_x;
    need[A_FQ] = N * SQ_NTIME;
    need[A_E] = (save ? L + 1 : 1) * N * w;
    need[A_MID] = save ? L * N * w : 0;
    need[A_LN1] = need[A_LN2] = need[A_ATT] = S * N * w;
    need[A_MU1] = need[A_RS1] = need[A_MU2] = need[A_RS2] = S * N;
    need[A_QKV] = S * 3 * N * w;
    need[A_P] = save ? L * H * a->poff[b->B] : maxp;
    need[A_U] = need[A_G] = S * N * 4 * w;
    need[A_LNF] = need[A_O] = need[A_HP] = need[A_HG] = N * w;
    need[A_MUF] = need[A_RSF] = need[A_YN] = N;
    need[A_OUT] = save ? N * (size_t)c->d_item : 0;
    need[A_EC] = (size_t)b->B * w;
    need[A_S1] = N * wide;
    if (backward) {
        need[A_DE] = need[A_DT] = need[A_DATT] = N * w;
        need[A_DQKV] = 3 * N * w;
        need[A_S2] = N * wide;
        need[A_DP] = (size_t)SQ_ATT_BLK * (size_t)c->max_len;
    }
    for (int i = 0; i < A_NBUF; i++) {
        size_t n = need[i] ? need[i] : 1;
        if (n > a->cap[i] && sp_grow((void **)&a->buf[i], &a->cap[i], n, sizeof(float)))
            return sp_err(SP_ENOMEM, "sq: activations of %zu rows", N);
    }
    return SP_OK;
}

/* ---- input checks ---- */

int sq_batch_check(const sq_model *m, const sq_batch *b) {
    const sq_cfg *c = &m->c;
    if (!m->p) return sp_err(SP_EUSAGE, "sq: model not initialised");
    if (b->B < 0 || (b->B > 0 && (!b->off || b->off[0] != 0)))
        return sp_err(SP_EINPUT, "sq: batch of %d sequences with off[0] != 0", b->B);
    for (int i = 0; i < b->B; i++) {
        uint64_t o = b->off[i], e = b->off[i + 1];
        if (e <= o || e - o > (uint64_t)c->max_len)
            return sp_err(SP_EINPUT, "sq: sequence %d has length %lld (1..max_len %d allowed)", i,
                          (long long)(e - o), c->max_len);
        if (e > (uint64_t)(1u << 30))
            return sp_err(SP_EINPUT, "sq: batch of %llu rows is too large (< 2^30)", (unsigned long long)e);
        for (uint64_t j = o; j < e; j++) {
            if (b->act[j] >= c->n_actions)
                return sp_err(SP_EINPUT, "sq: sequence %d position %llu: action %u >= n_actions %d", i,
                              (unsigned long long)(j - o), b->act[j], c->n_actions);
            if (b->surf[j] >= c->n_surfaces)
                return sp_err(SP_EINPUT, "sq: sequence %d position %llu: surface %u >= n_surfaces %d", i,
                              (unsigned long long)(j - o), b->surf[j], c->n_surfaces);
            if (b->ts[j] < 0 || (j > o && b->ts[j] < b->ts[j - 1]))
                return sp_err(SP_EINPUT, "sq: sequence %d position %llu: timestamp %lld is negative or before "
                              "the previous one (%lld)", i, (unsigned long long)(j - o), (long long)b->ts[j],
                              (long long)(j > o ? b->ts[j - 1] : 0));
            if (b->qt[j] < b->ts[j])
                return sp_err(SP_EINPUT, "sq: sequence %d position %llu: query time %lld before the action's %lld",
                              i, (unsigned long long)(j - o), (long long)b->qt[j], (long long)b->ts[j]);
        }
    }
    return SP_OK;
}

/* ---- pieces ---- */

static inline const float *P_(const sq_model *m, int i) { return m->p + m->t[i].off; }

/* x (N, d_x) = [item ; A[act] ; S[surf] ; f(ts) ; f(ts − ts_prev) (0 at a sequence's first row)]. */
static void build_input(const sq_model *m, const sq_batch *b, float *x) {
    int di = m->c.d_item, de = m->c.d_e, dx = m->d_x;
    const float *A = P_(m, SQ_ACT), *S = P_(m, SQ_SURF);
    for (int s = 0; s < b->B; s++)
        for (uint64_t j = b->off[s]; j < b->off[s + 1]; j++) {
            float *r = x + j * (size_t)dx;
            memcpy(r, b->item + j * (size_t)di, sizeof(float) * (size_t)di);
            memcpy(r + di, A + (size_t)b->act[j] * de, sizeof(float) * (size_t)de);
            memcpy(r + di + de, S + (size_t)b->surf[j] * de, sizeof(float) * (size_t)de);
            sq_time_features(b->ts[j], r + di + 2 * de);
            if (j == b->off[s]) memset(r + di + 2 * de + SQ_NTIME, 0, sizeof(float) * SQ_NTIME);
            else sq_time_features(b->ts[j] - b->ts[j - 1], r + di + 2 * de + SQ_NTIME);
        }
}

/* (N, 3w) row-major [Q | K | V] <-> head-major (3, heads, N, dh); dir 0 scatters, 1 gathers. */
static void qkv_layout(float *rowm, float *headm, size_t N, int w, int heads, int dir) {
    int dh = w / heads;
    for (size_t i = 0; i < N; i++)
        for (int ch = 0; ch < 3 * heads; ch++) {
            float *r = rowm + i * 3 * (size_t)w + (size_t)ch * dh, *h = headm + ((size_t)ch * N + i) * dh;
            if (dir == 0)
                for (int k = 0; k < dh; k++) h[k] = r[k];
            else
                for (int k = 0; k < dh; k++) r[k] = h[k];
        }
}

/* Causal attention of one sequence and head: queries q0..len−1 against keys 0..t.
 * Q, K, V (len, dh) from the sequence's first row; O receives rows q0..len−1; P the probability
 * row blocks (pblk(len, q0) floats, zero above the diagonal). */
static void attend_fwd(const float *Q, const float *K, const float *V, int len, int q0, int dh, float scale,
                       float *P, float *O) {
    for (int r0 = q0; r0 < len; r0 += SQ_ATT_BLK) {
        int rows = len - r0 < SQ_ATT_BLK ? len - r0 : SQ_ATT_BLK, r1 = r0 + rows;
        nn_gemm(0, 1, rows, r1, dh, scale, Q + (size_t)r0 * dh, K, 0.0f, P); /* (rows, r1) scores */
        for (int i = 0; i < rows; i++) {
            float *pr = P + (size_t)i * r1;
            int t = r0 + i;
            nn_softmax_fwd(pr, pr, 1, t + 1);
            memset(pr + t + 1, 0, sizeof(float) * (size_t)(r1 - t - 1));
        }
        nn_gemm(0, 0, rows, dh, r1, 1.0f, P, V, 0.0f, O + (size_t)(r0 - q0) * dh);
        P += (size_t)rows * r1;
    }
}

/* Backward of attend_fwd (q0 = 0): dQ (len, dh) overwritten, dK, dV (len, dh) accumulated;
 * dP scratch (SQ_ATT_BLK, len). */
static void attend_bwd(const float *Q, const float *K, const float *V, int len, int dh, float scale, const float *P,
                       const float *dO, float *dP, float *dQ, float *dK, float *dV) {
    for (int r0 = 0; r0 < len; r0 += SQ_ATT_BLK) {
        int rows = len - r0 < SQ_ATT_BLK ? len - r0 : SQ_ATT_BLK, r1 = r0 + rows;
        const float *dOb = dO + (size_t)r0 * dh;
        nn_gemm(0, 1, rows, r1, dh, 1.0f, dOb, V, 0.0f, dP); /* dP = dO·Vᵀ (rows, r1) */
        nn_gemm(1, 0, r1, dh, rows, 1.0f, P, dOb, 1.0f, dV); /* dV += Pᵀ·dO */
        for (int i = 0; i < rows; i++) {
            float *dr = dP + (size_t)i * r1;
            int t = r0 + i;
            nn_softmax_bwd(dr, dr, P + (size_t)i * r1, 1, t + 1);
            memset(dr + t + 1, 0, sizeof(float) * (size_t)(r1 - t - 1));
        }
        nn_gemm(0, 0, rows, dh, r1, scale, dP, K, 0.0f, dQ + (size_t)r0 * dh);  /* dQ = s·dS·K */
        nn_gemm(1, 0, r1, dh, rows, scale, dP, Q + (size_t)r0 * dh, 1.0f, dK); /* dK += s·dSᵀ·Q */
        P += (size_t)rows * r1;
    }
}

static void add_rows(float *y, const float *b, size_t n, int d) {
    for (size_t i = 0; i < n; i++) {
        float *restrict r = y + i * (size_t)d;
        for (int k = 0; k < d; k++) r[k] += b[k];
    }
}

/* Dropout sites: the input embedding, then the attention and MLP branch of each layer. */
#define DROP_IN 0u
#define DROP_ATT(l) (1u + 2u * (unsigned)(l))
#define DROP_MLP(l) (2u + 2u * (unsigned)(l))

/* x (R, w) ⊙ the dropout mask of `site` (rows 0..R−1 of the batch), in place; the same call on a
 * gradient applies the same mask. Nothing when a holds no dropout. */
static void drop_apply(const sq_acts *a, unsigned site, float *x, size_t R, int w) {
    if (!a->drop_thr) return;
    const unsigned thr = a->drop_thr;
    const float sc = a->drop_scale;
    const uint64_t base = sp_mix64(a->drop_seed ^ (0x9e3779b97f4a7c15ULL * (site + 1)));
    const size_t words = ((size_t)w + 7) / 8;
    for (size_t j = 0; j < R; j++) {
        float *r = x + j * (size_t)w;
        for (size_t q = 0; q < words; q++) {
            uint64_t h = sp_mix64(base ^ (j * words + q) * 0xbf58476d1ce4e5b9ULL);
            size_t k0 = q * 8, k1 = k0 + 8 < (size_t)w ? k0 + 8 : (size_t)w;
            for (size_t k = k0; k < k1; k++, h >>= 8) r[k] = (unsigned)(h & 0xff) < thr ? 0.0f : r[k] * sc;
        }
    }
}

/* The gradient reaching a residual branch from the stream's gradient dE (R, w): dE itself without
 * dropout, else dE through the branch's mask, written into scratch. */
static const float *branch_grad(const sq_acts *a, unsigned site, const float *dE, float *scratch, size_t R, int w) {
    if (!a->drop_thr) return dE;
    memcpy(scratch, dE, sizeof(float) * R * (size_t)w);
    drop_apply(a, site, scratch, R, w);
    return scratch;
}

/* The part of layer l after attention, on R rows: mid = in + drop(Σ_h att_h·WO_h + bo) (mid may be
 * in); out = mid + drop(W2·GELU(W1·LN2(mid) + b1) + b2) (out may be mid). att (heads, R, dh). With
 * dropout (a holds a training forward's, every row saved, nothing aliased) each branch is formed
 * in br (R, w), masked, then added; without, it accumulates straight into the stream. */
static void layer_post(const sq_model *m, const sq_acts *a, int l, size_t R, const float *in, const float *att,
                       float *mid, float *ln2, float *mu2, float *rs2, float *U, float *G, float *out, float *br) {
    int w = m->c.width, H = m->c.heads, dh = w / H, drop = a->drop_thr != 0;
    size_t n = R * (size_t)w;
    float *t = drop ? br : mid;
    if (drop) memset(br, 0, sizeof(float) * n);
    else if (mid != in) memcpy(mid, in, sizeof(float) * n);
    add_rows(t, P_(m, SQ_LT(l, SQ_BO)), R, w);
    const float *Wo = P_(m, SQ_LT(l, SQ_WO));
    for (int h = 0; h < H; h++)
        nn_gemm(0, 0, (int)R, w, dh, 1.0f, att + (size_t)h * R * dh, Wo + (size_t)h * dh * w, 1.0f, t);
    if (drop) {
        drop_apply(a, DROP_ATT(l), br, R, w);
        for (size_t i = 0; i < n; i++) mid[i] = in[i] + br[i];
    }
    nn_layernorm_fwd(ln2, mu2, rs2, mid, P_(m, SQ_LT(l, SQ_LN2G)), P_(m, SQ_LT(l, SQ_LN2B)), (int)R, w);
    nn_linear_fwd(U, ln2, P_(m, SQ_LT(l, SQ_W1)), P_(m, SQ_LT(l, SQ_B1)), (int)R, w, 4 * w);
    sq_gelu_fwd(G, U, R * 4 * (size_t)w);
    t = drop ? br : out;
    if (drop) memset(br, 0, sizeof(float) * n);
    else if (out != mid) memcpy(out, mid, sizeof(float) * n);
    add_rows(t, P_(m, SQ_LT(l, SQ_B2)), R, w);
    nn_gemm(0, 0, (int)R, w, 4 * w, 1.0f, G, P_(m, SQ_LT(l, SQ_W2)), 1.0f, t);
    if (drop) {
        drop_apply(a, DROP_MLP(l), br, R, w);
        for (size_t i = 0; i < n; i++) out[i] = mid[i] + br[i];
    }
}

/* Output head on R rows: u = L2(H2·GELU(H1·(LN_f(e) + WQT·fq) + h1) + h2) into out (R, d_item). */
static void head_fwd(const sq_model *m, size_t R, const float *e, const float *fq, sq_acts *a, float *out) {
    int w = m->c.width, d = m->c.d_item;
    float *lnf = a->buf[A_LNF], *o = a->buf[A_O], *hp = a->buf[A_HP], *hg = a->buf[A_HG];
    nn_layernorm_fwd(lnf, a->buf[A_MUF], a->buf[A_RSF], e, P_(m, SQ_LNF_G), P_(m, SQ_LNF_B), (int)R, w);
    memcpy(o, lnf, sizeof(float) * R * w);
    nn_gemm(0, 0, (int)R, w, SQ_NTIME, 1.0f, fq, P_(m, SQ_WQT), 1.0f, o);
    nn_linear_fwd(hp, o, P_(m, SQ_H1), P_(m, SQ_H1B), (int)R, w, w);
    sq_gelu_fwd(hg, hp, R * (size_t)w);
    nn_linear_fwd(out, hg, P_(m, SQ_H2), P_(m, SQ_H2B), (int)R, w, d);
    nn_l2norm_fwd(out, a->buf[A_YN], out, (int)R, d);
}

/* Forward. last_only: only each sequence's last row is computed past the last layer's K and V,
 * out is (B, d_item), nothing is saved; else out (N, d_item) and everything is saved. */
static int run_forward(const sq_model *m, const sq_batch *b, sq_acts *a, float *out, int last_only,
                       const sq_dropout *d) {
    a->saved = 0;
    a->drop_thr = 0;
    if (d && !(d->p >= 0.0f && d->p < 1.0f)) return sp_err(SP_EUSAGE, "sq: dropout %g outside [0, 1)", (double)d->p);
    int rc = sq_batch_check(m, b);
    if (rc) return rc;
    if (d && !last_only) {
        unsigned thr = (unsigned)lrintf(256.0f * d->p);
        a->drop_thr = thr > 255 ? 255 : thr;
        a->drop_scale = 256.0f / (float)(256 - a->drop_thr);
        a->drop_seed = d->seed;
    }
    const sq_cfg *c = &m->c;
    int w = c->width, H = c->heads, dh = w / H, L = c->layers, save = !last_only;
    size_t N = b->B ? b->off[b->B] : 0, wN = (size_t)w * N;
    if ((rc = acts_grow(a, m, b, N, save, 0))) return rc;
    if (N == 0) return SP_OK;
    float scale = 1.0f / sqrtf((float)dh);
    float *X = a->buf[A_X], *E = a->buf[A_E];
    build_input(m, b, X);
    nn_linear_fwd(E, X, P_(m, SQ_WIN), P_(m, SQ_BIN), (int)N, m->d_x, w);
    drop_apply(a, DROP_IN, E, N, w);
    const float *efinal = E; /* (R, w) rows entering the head */
    for (int l = 0; l < L; l++) {
        size_t s = save ? (size_t)l : 0;
        float *ein = save ? E + (size_t)l * wN : E, *eout = save ? E + (size_t)(l + 1) * wN : E;
        float *mid = save ? a->buf[A_MID] + s * wN : E;
        float *ln1 = a->buf[A_LN1] + s * wN, *qkv = a->buf[A_QKV] + s * 3 * wN, *att = a->buf[A_ATT] + s * wN;
        float *mu1 = a->buf[A_MU1] + s * N, *rs1 = a->buf[A_RS1] + s * N;
        float *ln2 = a->buf[A_LN2] + s * wN, *mu2 = a->buf[A_MU2] + s * N, *rs2 = a->buf[A_RS2] + s * N;
        float *U = a->buf[A_U] + s * 4 * wN, *G = a->buf[A_G] + s * 4 * wN;
        nn_layernorm_fwd(ln1, mu1, rs1, ein, P_(m, SQ_LT(l, SQ_LN1G)), P_(m, SQ_LT(l, SQ_LN1B)), (int)N, w);
        nn_linear_fwd(a->buf[A_S1], ln1, P_(m, SQ_LT(l, SQ_WQKV)), P_(m, SQ_LT(l, SQ_BQKV)), (int)N, w, 3 * w);
        qkv_layout(a->buf[A_S1], qkv, N, w, H, 0);
        int last = last_only && l == L - 1;
        size_t R = last ? (size_t)b->B : N; /* query rows of this layer */
        for (int h = 0; h < H; h++) {
            const float *Qh = qkv + (size_t)h * N * dh, *Kh = qkv + (size_t)(H + h) * N * dh,
                        *Vh = qkv + (size_t)(2 * H + h) * N * dh;
            float *Oh = att + (size_t)h * R * dh;
            for (int i = 0; i < b->B; i++) {
                uint64_t o = b->off[i];
                int len = (int)(b->off[i + 1] - o), q0 = last ? len - 1 : 0;
                float *P = save ? a->buf[A_P] + ((size_t)l * H + h) * a->poff[b->B] + a->poff[i] : a->buf[A_P];
                attend_fwd(Qh + o * dh, Kh + o * dh, Vh + o * dh, len, q0, dh, scale, P,
                           Oh + (last ? (size_t)i : o) * dh);
            }
        }
        if (last) { /* the last rows' stream, compacted to (B, w) */
            float *ec = a->buf[A_EC];
            for (int i = 0; i < b->B; i++)
                memcpy(ec + (size_t)i * w, ein + (b->off[i + 1] - 1) * w, sizeof(float) * (size_t)w);
            layer_post(m, a, l, R, ec, att, ec, ln2, mu2, rs2, U, G, ec, NULL);
            efinal = ec;
        } else {
            layer_post(m, a, l, N, ein, att, mid, ln2, mu2, rs2, U, G, eout, a->buf[A_S1]);
            efinal = eout;
        }
    }
    float *fq = a->buf[A_FQ];
    if (last_only) {
        if (L == 0) { /* no layer compacted the rows: do it here */
            float *ec = a->buf[A_EC];
            for (int i = 0; i < b->B; i++)
                memcpy(ec + (size_t)i * w, E + (b->off[i + 1] - 1) * w, sizeof(float) * (size_t)w);
            efinal = ec;
        }
        for (int i = 0; i < b->B; i++) {
            uint64_t j = b->off[i + 1] - 1;
            sq_time_features(b->qt[j] - b->ts[j], fq + (size_t)i * SQ_NTIME);
        }
        head_fwd(m, (size_t)b->B, efinal, fq, a, out);
        return SP_OK;
    }
    for (size_t j = 0; j < N; j++) sq_time_features(b->qt[j] - b->ts[j], fq + j * SQ_NTIME);
    head_fwd(m, N, efinal, fq, a, a->buf[A_OUT]);
    memcpy(out, a->buf[A_OUT], sizeof(float) * N * (size_t)c->d_item);
    a->m = m;
    a->mp = m->p;
    a->N = N;
    a->B = b->B;
    a->saved = 1;
    return SP_OK;
}

int sq_forward(const sq_model *m, const sq_batch *b, sq_acts *a, float *out) {
    return run_forward(m, b, a, out, 0, NULL);
}

int sq_forward_train(const sq_model *m, const sq_batch *b, sq_acts *a, float *out, const sq_dropout *d) {
    return run_forward(m, b, a, out, 0, d && d->p != 0.0f ? d : NULL);
}

int sq_encode_last(const sq_model *m, const sq_batch *b, sq_acts *a, float *out) {
    return run_forward(m, b, a, out, 1, NULL);
}

int sq_backward(const sq_model *m, const sq_batch *b, sq_acts *a, const float *dout, float *grad, float *ditem) {
    size_t N = b->B > 0 && b->off ? b->off[b->B] : 0;
    if (!a->saved || a->m != m || a->mp != m->p || a->B != b->B || a->N != N)
        return sp_err(SP_EUSAGE, "sq_backward: no sq_forward of this model and batch to go back through");
    const sq_cfg *c = &m->c;
    int w = c->width, H = c->heads, dh = w / H, L = c->layers, d = c->d_item;
    size_t wN = (size_t)w * N;
    int rc = acts_grow(a, m, b, N, 1, 1); /* buffers of the forward are already large enough: kept */
    if (rc) return rc;
    if (N == 0) return SP_OK;
#define G_(i) (grad + m->t[(i)].off)
    float scale = 1.0f / sqrtf((float)dh);
    float *dE = a->buf[A_DE], *dT = a->buf[A_DT], *s1 = a->buf[A_S1], *s2 = a->buf[A_S2];
    /* head */
    float *dy = s1, *dhg = s2;
    nn_l2norm_bwd(dy, dout, a->buf[A_OUT], a->buf[A_YN], (int)N, d);
    nn_linear_bwd(dhg, G_(SQ_H2), G_(SQ_H2B), dy, a->buf[A_HG], P_(m, SQ_H2), (int)N, w, d);
    sq_gelu_bwd(dhg, dhg, a->buf[A_HP], wN);
    float *dO = s1;
    nn_linear_bwd(dO, G_(SQ_H1), G_(SQ_H1B), dhg, a->buf[A_O], P_(m, SQ_H1), (int)N, w, w);
    nn_linear_bwd(NULL, G_(SQ_WQT), NULL, dO, a->buf[A_FQ], P_(m, SQ_WQT), (int)N, SQ_NTIME, w);
    float *E = a->buf[A_E];
    nn_layernorm_bwd(dE, G_(SQ_LNF_G), G_(SQ_LNF_B), dO, E + (size_t)L * wN, a->buf[A_MUF], a->buf[A_RSF],
                     P_(m, SQ_LNF_G), (int)N, w);
    for (int l = L - 1; l >= 0; l--) {
        float *ein = E + (size_t)l * wN, *mid = a->buf[A_MID] + (size_t)l * wN;
        float *ln1 = a->buf[A_LN1] + (size_t)l * wN, *qkv = a->buf[A_QKV] + (size_t)l * 3 * wN;
        float *att = a->buf[A_ATT] + (size_t)l * wN, *ln2 = a->buf[A_LN2] + (size_t)l * wN;
        float *U = a->buf[A_U] + (size_t)l * 4 * wN, *G = a->buf[A_G] + (size_t)l * 4 * wN;
        /* MLP: out = mid + GELU(LN2(mid)·W1 + b1)·W2 + b2 */
        float *dG = s1, *dln = s2;
        const float *dbr = branch_grad(a, DROP_MLP(l), dE, dT, N, w);
        nn_linear_bwd(dG, G_(SQ_LT(l, SQ_W2)), G_(SQ_LT(l, SQ_B2)), dbr, G, P_(m, SQ_LT(l, SQ_W2)), (int)N, 4 * w, w);
        sq_gelu_bwd(dG, dG, U, 4 * wN);
        nn_linear_bwd(dln, G_(SQ_LT(l, SQ_W1)), G_(SQ_LT(l, SQ_B1)), dG, ln2, P_(m, SQ_LT(l, SQ_W1)), (int)N, w, 4 * w);
        nn_layernorm_bwd(dT, G_(SQ_LT(l, SQ_LN2G)), G_(SQ_LT(l, SQ_LN2B)), dln, mid, a->buf[A_MU2] + (size_t)l * N,
                         a->buf[A_RS2] + (size_t)l * N, P_(m, SQ_LT(l, SQ_LN2G)), (int)N, w);
        for (size_t i = 0; i < wN; i++) dE[i] += dT[i];
        /* attention: mid = in + Σ_h att_h·WO_h + bo */
        float *db = G_(SQ_LT(l, SQ_BO)), *dWo = G_(SQ_LT(l, SQ_WO)), *datt = a->buf[A_DATT];
        const float *Wo = P_(m, SQ_LT(l, SQ_WO));
        dbr = branch_grad(a, DROP_ATT(l), dE, dT, N, w);
        for (size_t i = 0; i < N; i++)
            for (int k = 0; k < w; k++) db[k] += dbr[i * w + k];
        for (int h = 0; h < H; h++) {
            nn_gemm(0, 1, (int)N, dh, w, 1.0f, dbr, Wo + (size_t)h * dh * w, 0.0f, datt + (size_t)h * N * dh);
            nn_gemm(1, 0, dh, w, (int)N, 1.0f, att + (size_t)h * N * dh, dbr, 1.0f, dWo + (size_t)h * dh * w);
        }
        float *dqkv = a->buf[A_DQKV];
        memset(dqkv + (size_t)H * N * dh, 0, sizeof(float) * 2 * wN); /* dK, dV accumulate */
        for (int h = 0; h < H; h++) {
            size_t qo = (size_t)h * N * dh, ko = (size_t)(H + h) * N * dh, vo = (size_t)(2 * H + h) * N * dh;
            for (int i = 0; i < b->B; i++) {
                uint64_t o = b->off[i];
                int len = (int)(b->off[i + 1] - o);
                const float *P = a->buf[A_P] + ((size_t)l * H + h) * a->poff[b->B] + a->poff[i];
                attend_bwd(qkv + qo + o * dh, qkv + ko + o * dh, qkv + vo + o * dh, len, dh, scale, P,
                           datt + (size_t)h * N * dh + o * dh, a->buf[A_DP], dqkv + qo + o * dh, dqkv + ko + o * dh,
                           dqkv + vo + o * dh);
            }
        }
        qkv_layout(s1, dqkv, N, w, H, 1);
        nn_linear_bwd(dln, G_(SQ_LT(l, SQ_WQKV)), G_(SQ_LT(l, SQ_BQKV)), s1, ln1, P_(m, SQ_LT(l, SQ_WQKV)), (int)N,
                      w, 3 * w);
        nn_layernorm_bwd(dT, G_(SQ_LT(l, SQ_LN1G)), G_(SQ_LT(l, SQ_LN1B)), dln, ein, a->buf[A_MU1] + (size_t)l * N,
                         a->buf[A_RS1] + (size_t)l * N, P_(m, SQ_LT(l, SQ_LN1G)), (int)N, w);
        for (size_t i = 0; i < wN; i++) dE[i] += dT[i];
    }
    /* input: e = x·W_in + b_in, x = [item ; A[act] ; S[surf] ; time features] */
    int dx = m->d_x, de = c->d_e;
    float *dX = s1;
    drop_apply(a, DROP_IN, dE, N, w);
    nn_linear_bwd(dX, G_(SQ_WIN), G_(SQ_BIN), dE, a->buf[A_X], P_(m, SQ_WIN), (int)N, dx, w);
    float *dA = G_(SQ_ACT), *dS = G_(SQ_SURF);
    for (size_t j = 0; j < N; j++) {
        const float *r = dX + j * (size_t)dx;
        if (ditem) memcpy(ditem + j * (size_t)d, r, sizeof(float) * (size_t)d);
        float *ra = dA + (size_t)b->act[j] * de, *rs = dS + (size_t)b->surf[j] * de;
        for (int k = 0; k < de; k++) ra[k] += r[d + k];
        for (int k = 0; k < de; k++) rs[k] += r[d + de + k];
    }
#undef G_
    return SP_OK;
}
