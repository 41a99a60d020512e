/* train_joint: OmniSage's user-entity task inside the train stage
 * (sequence.mode = joint). Each train step also samples windows of this
 * rank's users (the histories the users stage will build for the date); the
 * user encoder reads each window's items from a table of the item encoder's
 * own embeddings, refreshed at the start of every epoch (no gradient flows
 * into the history tokens), and at each trained position its output must
 * retrieve the next action's pin and a random pin of the next window_days,
 * whose embeddings are computed in the same minibatch forward as the item
 * tasks' targets: sampled softmax over the block's targets plus the step's
 * shared random pins, logQ-corrected, so the gradient reaches both encoders.
 * One pass over the users per epoch. The user model starts from the previous
 * date's final one (users/model.bin), is checkpointed beside the item
 * checkpoint (train/seqmodel.bin) and is where the users stage starts in
 * joint mode. */
#ifndef SP_TRAIN_JOINT_H
#define SP_TRAIN_JOINT_H

#include <stdint.h>

#include "sage.h"
#include "sage_data.h"
#include "stage.h"
#include "users_model.h"

typedef struct {
    sp_users_cfg uc;
    double w; /* train.w_user */
    int64_t refresh; /* sequence.joint_refresh: steps between two refreshes of the table (0: each epoch) */
    sq_hist h;
    sp_seq_state S;
    sq_items it;        /* rows are pin node indices; vec = table */
    sp_idrow *idx;      /* (npins) */
    float *table;       /* (n, d) every node's embedding at the last refresh (pins first) */
    float *logq;        /* (npins) log expected count among a block's candidates as a user target */
    const uint64_t *ext; /* (n) external ids */
    uint64_t npins, *train, ntrain, per_step; /* users with ≥ 2 actions; windows per step on this rank */
    uint64_t longest;
    int rank, size, d;
    /* main-thread workspace */
    sq_acts *acts;
    float *sout, *dsout, *grad, *q, *dq, *cand, *dc, *clogq;
    uint64_t *cid;
    uint32_t *crow;
    sp_users_loss_ws lw;
    size_t cap_n, cap_q, cap_c;
    float dtau;
} sp_joint;

/* One step's user windows (filled by the producer thread). */
typedef struct {
    sq_packer pk;
    sp_users_queries Q;
    uint64_t nq;       /* queries; their targets are Q.tgt (nq, 2), pin node indices */
    sq_action *buf;
} sp_joint_batch;

/* Collective. Loads this rank's histories and the user model (warm start from the previous users
 * stage's users/model.bin, the date's final user model, when it has today's dimensions), counts the
 * targets over all ranks for logQ, and sets the windows per step so that steps_per_epoch steps pass
 * over every user once. d: the item width. */
int sp_joint_init(sp_joint *J, const sp_run_ctx *ctx, const sp_sage_data *D, int d, int64_t steps_per_epoch);
void sp_joint_free(sp_joint *J);
void sp_joint_batch_free(sp_joint_batch *b);

/* Recomputes every node's embedding with the current item encoder (the history tokens' table). */
int sp_joint_refresh(sp_joint *J, const nn_backend *be, const sp_sage_params *P, const sp_sage_graph *g);

/* Samples this rank's windows of step `step` into b (deterministic in (seed, step, rank)). */
int sp_joint_fill(const sp_joint *J, sp_joint_batch *b, int64_t step);

/* The user-entity loss of b: out holds the minibatch's embeddings, b's targets at rows ubase.., the
 * step's shared random pins (node indices neg[0..nneg)) at rows negbase... Adds the loss's gradients
 * (times scale) to dout at those rows (the targets' rows are zeroed first) and computes the user
 * encoder's gradient into J->grad; *loss = the weighted mean loss (w_user included). */
int sp_joint_step(sp_joint *J, sp_joint_batch *b, const float *out, uint32_t ubase, uint32_t negbase,
                  const uint32_t *neg, uint32_t nneg, float *dout, float scale, float *loss);

/* Collective: sums the user encoder's gradient over ranks and takes the optimiser step (step s of
 * total: sequence.lr's warm-up and cosine schedule). */
int sp_joint_update(sp_joint *J, int64_t s, int64_t total);

int sp_joint_write(const sp_joint *J, const char *path);

#endif
