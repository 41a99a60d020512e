/* users_model: the user encoder's pieces shared by the users stage (frozen
 * item vectors) and the train stage (sequence.mode = joint, OmniSage's
 * user-entity task trained with the item encoder): the [sequence] config,
 * the history a date's users stage builds (the previous date's store merged
 * with the day's events), the model file (sfile "seqmodel") and the sampling
 * of one user's training window with its next-action and all-action targets. */
#ifndef SP_USERS_MODEL_H
#define SP_USERS_MODEL_H

#include <stdint.h>

#include "encoder.h"
#include "history.h"
#include "seq_batch.h"
#include "sp_base.h"
#include "stage.h"


typedef struct {
    int joint; /* sequence.mode = joint */
    int epochs, batch, positions, negatives, inbatch, threads, lookback, learn_tau, mask_history, average;
    uint32_t max_history;
    double lr, lr_min, wd, tau, tau_min, w_next, w_all, window_days, dropout, board_weight;
    int64_t warmup;
    uint64_t seed;
    sq_cfg mc; /* d_item is left 0: the caller sets the item width */
} sp_users_cfg;

/* Reads [sequence] (and input.actions / input.surfaces). SP_ECONFIG on inconsistent keys. */
int sp_users_cfg_read(const sp_run_ctx *ctx, sp_users_cfg *u);

/* The nearest earlier date (at most lookback days back) whose users stage has a marker: 1 and *pc
 * set (its date string in date_buf, 16 bytes), or 0. */
int sp_users_find_prev(const sp_run_ctx *ctx, int lookback, sp_run_ctx *pc, char *date_buf);

/* This rank's users' history at ctx's date: the previous date's store (pc, when have_prev; any rank
 * count) merged with the day's events from ingest, deduplicated and bounded by max_history. *h must
 * be zeroed; hs may be NULL. Reads only: the users stage is what saves it. */
int sp_users_history(const sp_run_ctx *ctx, const sp_users_cfg *uc, const sp_run_ctx *pc, int have_prev,
                     sq_hist *h, sq_hist_stats *hs);

/* The model and its optimiser state, as the model file keeps them. */
typedef struct {
    sq_model m;
    float *am, *av; /* Adam moments (m.n) */
    float tau, tau_m, tau_v;
    int64_t step;
} sp_seq_state;

/* A fresh model of uc->mc (d_item set by the caller) with zero moments and temperature uc->tau. */
int sp_seq_state_init(sp_seq_state *s, const sp_users_cfg *uc);
void sp_seq_state_free(sp_seq_state *s);
/* Writes s to path (temporary file, fsync, rename); *xxh (may be NULL) = the file's checksum. */
int sp_seq_model_write(const char *path, const sp_seq_state *s, uint64_t *xxh);
/* Loads path into s (already initialised with today's dimensions): *loaded = 1, or 0 when the
 * file's model dimensions differ from today's (s unchanged). Errors: the file's (SP_EFORMAT, ...). */
int sp_seq_model_read(const char *path, sp_seq_state *s, int *loaded);

/* What one sampled window adds: the packed row of each query position and its two targets, item
 * rows of the table (next action, a random action of the next window_days); with mask_history,
 * query i's history pins are excl[excl_off[i] .. excl_off[i+1]). */
typedef struct {
    uint64_t *qrow;
    uint32_t *tgt; /* (nq, 2) */
    uint64_t *excl_off, *excl;
    size_t cap_r, cap_t, cap_eo, cap_e;
} sp_users_queries;
void sp_users_queries_free(sp_users_queries *Q);

typedef struct {
    const sp_users_cfg *uc;
    const sq_hist *h;
    const sq_items *it; /* item rows: the targets' rows are rows of this table */
    sq_action *buf;     /* room for the longest history */
} sp_users_sampler;

/* Appends one window of user u (history index, ≥ 2 actions) to the packer and its query positions
 * (at most uc->positions, the latest ones whose next pin the table has) to Q (*nq of them so far). */
int sp_users_sample(const sp_users_sampler *T, uint64_t u, sp_rng *r, sq_packer *pk, sp_users_queries *Q,
                    uint64_t *nq);

/* Scratch of sp_users_block_loss (start zeroed; free with sp_users_loss_ws_free). */
typedef struct {
    int *pos;
    float *scratch;
    size_t cap_p, cap_s;
} sp_users_loss_ws;
void sp_users_loss_ws_free(sp_users_loss_ws *w);

/* The two losses of one block of bq queries q (bq, d) against nc candidates c (nc, d): query i's next-action
 * target is candidate i, its all-action target candidate bq + i; sampled softmax with logQ, accidental hits
 * of cid masked, excl_off/excl the history pins masked per query (or NULL). an, aa: the weights of the
 * next-action and all-action losses (a loss of weight 0 is not computed). Writes dq (bq, d) = an·∂ln/∂q +
 * aa·∂la/∂q and, when dc != NULL, dc (nc, d) likewise for the candidates; adds an·ln + aa·la to *loss and
 * scale·(an·∂ln/∂τ + aa·∂la/∂τ) to *dtau. SP_ENOMEM. */
int sp_users_block_loss(sp_users_loss_ws *w, const float *q, const float *c, const uint64_t *cid, const float *logq,
                        const uint64_t *excl_off, const uint64_t *excl, uint32_t bq, uint32_t nc, int d, float tau,
                        float an, float aa, float scale, float *dq, float *dc, float *loss, float *dtau);

/* The dropout of training step `step` (sequence.dropout, masks seeded per model seed and step). */
sq_dropout sp_users_dropout(const sp_users_cfg *uc, int64_t step);

/* One optimiser step of s at train step i of total (sequence.lr's warm-up and cosine): AdamW on grad, and
 * on the temperature (gradient dtau, floor tau_min) when it is learned. Returns the learning rate used. */
float sp_seq_state_step(sp_seq_state *s, const sp_users_cfg *uc, const float *grad, float dtau, int64_t i,
                        int64_t total);

/* Keeps the users this rank owns (sq_hist_load's filter): arg is an sp_owner_filter. */
typedef struct { int rank, size; } sp_owner_filter;
int sp_users_owned(uint64_t user, void *arg);

#endif
