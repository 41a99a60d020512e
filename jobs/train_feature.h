/* train_feature: OmniSage's entity-feature task inside the train stage
 * (train.w_feature > 0). A pin's feature-only encoding must retrieve its
 * graph embedding. The feature-only encoder is the item encoder itself run
 * on the pin alone: a graph view without neighbours and without degrees, and
 * a parameter view without the id table, so its layer-0 input is the pin's
 * content (hashed tokens, dense features) plus the type bias, and its K
 * layers see only the pin's own vector. It shares every weight with the
 * graph encoder: the task trains the content path (token rows, the dense
 * projection, the self half of each layer, the head) to land where the
 * graph puts the pin, and pulls the graph embedding towards what content
 * predicts. Each step, the pins with content among the minibatch's queries
 * and positives are queries; the candidates are the same pins' graph
 * embeddings (in-batch) plus the step's shared random pins, all rows the
 * minibatch forward computed anyway: sampled softmax (no logQ), the item
 * encoder's learned temperature, gradients into both passes. Runs on the
 * host (the pins alone: small) on either device. */
#ifndef SP_TRAIN_FEATURE_H
#define SP_TRAIN_FEATURE_H

#include <stdint.h>

#include "sage.h"
#include "sage_data.h"

typedef struct {
    float w;                /* train.w_feature; 0: off */
    sp_sage_graph g;        /* the date's graph (owned view: the step's subgraph) without neighbours and degrees */
    uint64_t *zoff;         /* (n + 1) zeros: every neighbour list empty */
    float *zdeg;            /* (n) zeros */
    size_t capz, capzd;     /* owned view: entries of zoff and zdeg */
    uint8_t *has;           /* (npins) 1: the pin has tokens or a non-zero dense feature (replicated view) */
    int owned;              /* train.view = owned: content is read from each step's subgraph */
    uint64_t npins, ncontent;
    int K, d;
    sp_sage_plan plan;
    sp_sage_acts acts;
    sp_sage_params pv;      /* the last forward's parameter view (no id table) */
    uint32_t *tgt, *row;    /* (nf) the step's query pins and their rows in the minibatch output */
    float *dq, *cand, *dc, *scratch;
    uint64_t *cid;
    int *pos;
    size_t cap_q, cap_c, cap_s;
    uint32_t nf;            /* queries of the last forward (0: nothing to go back through) */
    double loss_sum;        /* this rank's task loss (unweighted mean per step), summed since the last log */
    int64_t loss_n;
} sp_feat;

/* Sets the task up for D (w = train.w_feature); w <= 0 or a date without pin content leaves it
 * off (F->w = 0; the second case logs a warning when w > 0). SP_ENOMEM. */
/* owned (train.view = owned: D holds its parts' features only): the pins with content are counted over all
 * ranks (collective) and each step reads its pins from the step's subgraph (sp_feat_step_sub). */
int sp_feat_init(sp_feat *F, const sp_sage_data *D, int K, int d, double w, int owned);
void sp_feat_free(sp_feat *F);

/* One step, after the minibatch forward (out: its host rows, targets[0..2nq) the queries and
 * positives, rows 2nq.. the nneg shared negatives): picks the query pins (the first min(blk, nq)
 * pins with content among the queries, then the positives: one softmax block), encodes them
 * from content (P: the host parameters), adds w × the task's loss to *loss and its τ gradient to
 * *dtau, and the candidates' gradients to dout's rows (unscaled, as the item losses'); the queries'
 * own gradient, times scale, is kept for sp_feat_backward. blk: train.inbatch. */
int sp_feat_step(sp_feat *F, const sp_sage_params *P, const uint32_t *targets, uint32_t nq, uint32_t nneg,
                 const float *out, float tau, uint32_t blk, float scale, float *dout, float *loss, float *dtau);
/* The same over an owned view's step: sg the step's subgraph, lt the targets' local indices in it. */
int sp_feat_step_sub(sp_feat *F, const sp_sage_params *P, const uint32_t *targets, const sp_sage_graph *sg,
                     const uint32_t *lt, uint32_t nq, uint32_t nneg, const float *out, float tau, uint32_t blk,
                     float scale, float *dout, float *loss, float *dtau);
/* Backward of the last sp_feat_step's encoding into G (dense gradients, token rows; tok_touched marks
 * them). A no-op when that step had no queries. */
int sp_feat_backward(sp_feat *F, sp_sage_params *G, uint8_t *tok_touched);

#endif
