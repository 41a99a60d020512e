/* train stage: multi-task training of the PinSage item encoder (DESIGN
 * §4.1), data-parallel over ranks. Each step takes `train.batch` pairs from
 * the task mix (board -> pin from the pin-board edges, pin -> pin from the
 * walks stage's walk and engagement pairs), split evenly over the ranks,
 * plus `train.negatives` random pins shared by all queries. Loss: sampled
 * softmax with logQ correction and a learned temperature, or PinSage's
 * max-margin with curriculum hard negatives. Dense gradients are summed over
 * ranks; the touched id/token rows are updated at their owner ranks and sent
 * back, or fetched by the ranks that read them (train_rows.h), so every rank
 * computes with the same model. A producer thread builds the next step's
 * minibatch (sampling, gathering, re-indexing) while the current one computes.
 * With train.view = owned a rank holds only its parts' neighbour lists and
 * features; the main thread samples the next step and fetches the records its
 * layers read from their owners (train_view.h), the producer builds the step's
 * subgraph and plan.
 * A checkpoint is written every epoch; the previous date's checkpoint, when present, warm
 * starts the id rows of nodes seen before and the dense weights. */
#include "train_stage.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist.h"
#include "fsutil.h"
#include "log.h"
#include "sage.h"
#include "sage_ckpt.h"
#include "sage_data.h"
#include "metrics.h"
#include "userlists.h"
#include "sp_base.h"
#include "train_feature.h"
#include "train_joint.h"
#include "train_rows.h"
#include "train_view.h"
#include "users_stage.h"

typedef struct {
    int mask_known, batch, inbatch, negatives, margin_loss, hard, learn_tau, epochs, threads, average;
    double lr, lr_min, wd, tau, tau_min, margin, w_bp, w_pp;
    int64_t warmup;
    uint64_t seed;
} train_cfg;

/* One rank's minibatch of one step. targets: queries (nq), positives (nq),
 * negatives (nneg), hard negatives (nq * nhard), in that order. */
typedef struct {
    int64_t step;
    uint32_t nq, nneg, nhard;
    uint32_t *targets;
    uint64_t *cid; /* (nq + nneg) candidate ids (node index) for accidental-hit masking */
    float *logq;   /* (nq + nneg) */
    size_t cap;
    uint32_t ntargets; /* all of targets, the user windows' included */
    sp_sage_plan plan;
    sp_joint_batch jb; /* sequence.mode = joint: the step's user windows; their targets follow the others */
    sp_view_step vs;   /* train.view = owned: the step's subgraph (the plan's nodes are its local indices) */
    int rc;
} batch;

typedef struct {
    const sp_sage_data *D;
    const train_cfg *tc;
    int rank, size, K;
    double wsum;      /* w_bp + w_pp over tasks that have pairs */
    float *logq_pos;  /* (npins) log(B·f(v) + R/npins) */
    const sp_joint *J; /* sequence.mode = joint, else NULL */
    int owned;         /* train.view = owned: the plan is built over the step's fetched subgraph */
} sampler;

static int fill_batch(const sampler *S, batch *b, int64_t step, int nhard) {
    const sp_sage_data *D = S->D;
    const train_cfg *tc = S->tc;
    uint64_t B = (uint64_t)tc->batch;
    uint64_t lo = B * (uint64_t)S->rank / (uint64_t)S->size, hi = B * (uint64_t)(S->rank + 1) / (uint64_t)S->size;
    uint32_t nq = (uint32_t)(hi - lo), nneg = (uint32_t)tc->negatives;
    int rc = S->J ? sp_joint_fill(S->J, &b->jb, step) : SP_OK;
    if (rc) return rc;
    uint64_t nu = S->J ? 2 * b->jb.nq : 0; /* the user windows' targets */
    size_t need = (size_t)nq * (2 + (size_t)nhard) + nneg + nu + 1;
    if (need > UINT32_MAX) return sp_err(SP_ECONFIG, "train: %zu minibatch targets per rank", need);
    if (need > b->cap) {
        void *t = realloc(b->targets, need * 4), *c = realloc(b->cid, need * 8), *l = realloc(b->logq, need * 4);
        if (t) b->targets = t;
        if (c) b->cid = c;
        if (l) b->logq = l;
        if (!t || !c || !l) return SP_ENOMEM;
        b->cap = need;
    }
    b->step = step, b->nq = nq, b->nneg = nneg, b->nhard = (uint32_t)nhard;
    uint32_t *q = b->targets, *p = q + nq, *neg = p + nq, *hard = neg + nneg;
    double pbp = S->wsum > 0 ? (D->nboard_pin ? tc->w_bp : 0) / S->wsum : 1;
    for (uint32_t i = 0; i < nq; i++) {
        sp_rng r;
        sp_rng_init(&r, tc->seed, SP_RNG_TRAIN, (uint64_t)step * B + lo + i);
        int use_bp = D->npin_pin == 0 || sp_rng_unif(&r) < pbp;
        const sp_tpair *tp = use_bp ? &D->board_pin[sp_rng_below(&r, D->nboard_pin)]
                                    : &D->pin_pin[sp_rng_below(&r, D->npin_pin)];
        q[i] = tp->q, p[i] = tp->p;
        for (int h = 0; h < nhard; h++) {
            /* a pin query's own band; a board query takes the band of its positive */
            uint32_t src = tp->q < D->npins ? tp->q : tp->p;
            uint64_t a = D->hard_off[src], e = D->hard_off[src + 1];
            hard[(size_t)i * nhard + h] = e > a ? D->hard_idx[a + sp_rng_below(&r, e - a)]
                                                : (uint32_t)sp_rng_below(&r, D->npins);
        }
    }
    sp_rng r;
    sp_rng_init(&r, tc->seed, SP_RNG_TRAIN + 100, (uint64_t)step);
    for (uint32_t j = 0; j < nneg; j++) neg[j] = (uint32_t)sp_rng_below(&r, D->npins);
    for (uint32_t j = 0; j < nq + nneg; j++) {
        uint32_t v = p[j]; /* p and neg are contiguous */
        b->cid[j] = v;
        b->logq[j] = v < D->npins ? S->logq_pos[v] : 0.f;
    }
    uint32_t base = nq * (2 + (uint32_t)nhard) + nneg;
    if (nu) memcpy(b->targets + base, b->jb.Q.tgt, 4 * nu);
    b->ntargets = base + (uint32_t)nu;
    return S->owned ? SP_OK : sp_sage_plan_build(&b->plan, &D->g, S->K, b->targets, b->ntargets);
}

/* train.view = owned, main thread, collective: samples the step and gathers its subgraph's records. */
static int prepare(const sampler *S, sp_view *V, batch *b, int64_t step, int nhard) {
    int rc = fill_batch(S, b, step, nhard);
    int frc = sp_view_fetch(V, &b->vs, S->K, b->targets, rc ? 0 : b->ntargets);
    return sp_dist_agree(rc ? rc : frc);
}

/* train.view = owned, the producer: the subgraph and the plan over it. */
static int view_plan(const sampler *S, batch *b) {
    int rc = sp_view_build(&b->vs, S->D, b->targets, b->ntargets);
    return rc ? rc : sp_sage_plan_build(&b->plan, &b->vs.g, S->K, b->vs.targets, b->ntargets);
}

typedef struct {
    const sampler *S;
    batch *b;
    int64_t step;
    int nhard;
    pthread_t th;
    int running;
} producer;

static void *produce(void *arg) {
    producer *p = arg;
    p->b->rc = p->S->owned ? view_plan(p->S, p->b) : fill_batch(p->S, p->b, p->step, p->nhard);
    return NULL;
}

static int start_fill(producer *p, int threaded) {
    if (!threaded) {
        produce(p);
        return SP_OK;
    }
    if (pthread_create(&p->th, NULL, produce, p)) return sp_err(SP_EINTERNAL, "train: cannot start the producer thread");
    p->running = 1;
    return SP_OK;
}
static int wait_fill(producer *p) {
    if (p->running) {
        pthread_join(p->th, NULL);
        p->running = 0;
    }
    return p->b->rc;
}

static void read_cfg(const sp_config *cfg, train_cfg *t) {
    t->batch = (int)sp_config_int(cfg, "train", "batch");
    t->negatives = (int)sp_config_int(cfg, "train", "negatives");
    t->inbatch = (int)sp_config_int(cfg, "train", "inbatch");
    t->mask_known = sp_config_bool(cfg, "train", "mask_known");
    t->margin_loss = !strcmp(sp_config_str(cfg, "train", "loss"), "margin");
    t->hard = sp_config_bool(cfg, "train", "hard_negatives");
    t->learn_tau = sp_config_bool(cfg, "train", "learn_tau");
    t->epochs = (int)sp_config_int(cfg, "train", "epochs");
    t->average = (int)sp_config_int(cfg, "train", "average_epochs");
    if (t->average > t->epochs) t->average = t->epochs;
    t->threads = (int)sp_config_int(cfg, "train", "threads");
    t->lr = sp_config_f64(cfg, "train", "lr");
    t->lr_min = sp_config_f64(cfg, "train", "lr_min");
    t->wd = sp_config_f64(cfg, "train", "weight_decay");
    t->tau = sp_config_f64(cfg, "train", "tau");
    t->tau_min = sp_config_f64(cfg, "train", "tau_min");
    t->margin = sp_config_f64(cfg, "train", "margin");
    t->w_bp = sp_config_f64(cfg, "train", "w_board_pin");
    t->w_pp = sp_config_f64(cfg, "train", "w_pin_pin");
    t->warmup = sp_config_int(cfg, "train", "warmup_steps");
    t->seed = (uint64_t)sp_config_int(cfg, "train", "seed");
}

/* Copies the previous checkpoint's rows and (when the layout matches) dense
 * weights into c. Returns the number of id rows taken over. */
static uint64_t warm_start(const sp_ckpt *prev, const sp_sage_data *D, sp_ckpt *c) {
    const sp_sage_cfg *a = &prev->P.c, *b = &c->P.c;
    if (a->d != b->d || a->layers != b->layers || a->dense_dim != b->dense_dim || a->tok_rows != b->tok_rows)
        return UINT64_MAX; /* incompatible: cold start */
    memcpy(c->P.dense, prev->P.dense, 4 * c->P.ndense);
    memcpy(c->M.dense, prev->M.dense, 4 * c->P.ndense);
    memcpy(c->V.dense, prev->V.dense, 4 * c->P.ndense);
    size_t d = (size_t)b->d;
    if (b->tok_rows) {
        memcpy(c->P.tok, prev->P.tok, 4 * (size_t)b->tok_rows * d);
        memcpy(c->M.tok, prev->M.tok, 4 * (size_t)b->tok_rows * d);
        memcpy(c->V.tok, prev->V.tok, 4 * (size_t)b->tok_rows * d);
    }
    c->tau = prev->tau, c->tau_m = prev->tau_m, c->tau_v = prev->tau_v;
    c->step = prev->step; /* the restored Adam moments continue their bias correction */
    uint64_t taken = 0;
    if (a->id_emb && b->id_emb)
        for (uint64_t i = 0; i < prev->P.n; i++) {
            uint32_t u = sp_sage_data_find(D, i < prev->npins ? SP_PIN : SP_BOARD, prev->ids[i]);
            if (u == UINT32_MAX) continue;
            memcpy(c->P.emb + (size_t)u * d, prev->P.emb + i * d, 4 * d);
            memcpy(c->M.emb + (size_t)u * d, prev->M.emb + i * d, 4 * d);
            memcpy(c->V.emb + (size_t)u * d, prev->V.emb + i * d, 4 * d);
            taken++;
        }
    return taken;
}

/* Full-ranking quality of the current model on eval.test (users = boards by
 * id, items = pins by id; a board's own pins are excluded from its ranking,
 * as train.txt in the LightGCN protocol). Every rank embeds every node and
 * ranks its block [lo, hi) of the test file's users (sp_metrics_topk_rows);
 * the ranks' sums make the means. */
typedef struct {
    sp_lists test, train;
    uint32_t nu, ni, lo, hi;
    float *emb, *U, *V;
} evaluator;

static void eval_free(evaluator *e) {
    sp_lists_free(&e->test);
    free(e->train.off);
    free(e->train.idx);
    free(e->emb);
    free(e->U);
    free(e->V);
    memset(e, 0, sizeof *e);
}

static int eval_init(evaluator *e, const sp_sage_data *D, const char *path, int d, int rank, int size) {
    memset(e, 0, sizeof *e);
    int rc = sp_lists_load_lightgcn(path, &e->test, NULL);
    if (!rc) rc = sp_lists_need_items(&e->test, path);
    if (rc) return rc;
    /* every board and pin id indexes the dense tables below: all must be under the loader's bound (compared
     * before any + 1, which would wrap 2^64 - 1 to 0) */
    uint64_t maxu = 0, maxi = 0;
    for (uint64_t u = D->npins; u < D->n; u++) maxu = D->ext[u] > maxu ? D->ext[u] : maxu;
    for (uint64_t u = 0; u < D->npins; u++) maxi = D->ext[u] > maxi ? D->ext[u] : maxi;
    if (maxu >= SP_LISTS_LIGHTGCN_MAX_ID || maxi >= SP_LISTS_LIGHTGCN_MAX_ID)
        return sp_err(SP_EINPUT,
                      "train.eval_every: ids up to %" PRIu64 " (boards) / %" PRIu64 " (pins) are too large to score "
                      "densely against %s (ids below %llu)",
                      maxu, maxi, path, (unsigned long long)SP_LISTS_LIGHTGCN_MAX_ID);
    maxu = D->n > D->npins && maxu + 1 > e->test.n ? maxu + 1 : e->test.n;
    maxi = D->npins && maxi + 1 > e->test.ncols ? maxi + 1 : e->test.ncols;
    e->nu = (uint32_t)maxu, e->ni = (uint32_t)maxi;
    e->train.n = e->nu;
    e->train.ncols = e->ni;
    e->train.off = calloc((size_t)e->nu + 1, 8);
    e->train.idx = malloc(4 * (D->nboard_pin + 1));
    e->emb = malloc(4 * (D->n * (size_t)d + 1));
    e->U = calloc((size_t)e->nu * d + 1, 4);
    e->V = calloc((size_t)e->ni * d + 1, 4);
    if (!e->train.off || !e->train.idx || !e->emb || !e->U || !e->V) return SP_ENOMEM;
    for (uint64_t i = 0; i < D->nboard_pin; i++) e->train.off[D->ext[D->board_pin[i].q] + 1]++;
    for (uint32_t u = 0; u < e->nu; u++) e->train.off[u + 1] += e->train.off[u];
    uint64_t *fill = calloc((size_t)e->nu + 1, 8);
    if (!fill) return SP_ENOMEM;
    for (uint64_t i = 0; i < D->nboard_pin; i++) {
        uint64_t u = D->ext[D->board_pin[i].q];
        e->train.idx[e->train.off[u] + fill[u]++] = (uint32_t)D->ext[D->board_pin[i].p];
    }
    free(fill);
    /* users past the test file's rows have no test items: the blocks share out its rows */
    e->lo = (uint32_t)((uint64_t)e->test.n * (uint64_t)rank / (uint64_t)size);
    e->hi = (uint32_t)((uint64_t)e->test.n * (uint64_t)(rank + 1) / (uint64_t)size);
    return SP_OK;
}

static int eval_run(evaluator *e, const nn_backend *be, const sp_sage_data *D, const sp_sage_params *P, int k,
                    sp_topk_result *out) {
    int d = P->c.d;
    int rc = sp_sage_embed_all(be, P, &D->g, e->emb);
    if (rc) return rc;
    for (uint64_t u = 0; u < D->n; u++) {
        int isb = u >= D->npins;
        uint64_t id = D->ext[u];
        if (id >= (isb ? e->nu : e->ni)) continue;
        memcpy((isb ? e->U : e->V) + id * (size_t)d, e->emb + u * (size_t)d, 4 * (size_t)d);
    }
    uint32_t ks[1] = {(uint32_t)k};
    return sp_metrics_topk_rows(e->U, e->V, e->ni, (uint32_t)d, &e->train, &e->test, e->lo, e->hi, ks, 1, 1, out);
}

/* Collective: every rank's block scored (eval_run), the means over all ranks' users. */
static int eval_all(evaluator *e, const nn_backend *be, const sp_sage_data *D, const sp_sage_params *P, int k,
                    double *recall, double *ndcg) {
    sp_topk_result r = {0};
    int rc = sp_dist_agree(eval_run(e, be, D, P, k, &r));
    double sum[3] = {r.recall[0] * (double)r.users, r.ndcg[0] * (double)r.users, (double)r.users};
    if (!rc) rc = sp_dist_sum_f64(sum, 3);
    if (!rc) *recall = sum[2] > 0 ? sum[0] / sum[2] : 0, *ndcg = sum[2] > 0 ? sum[1] / sum[2] : 0;
    return rc;
}

/* The previous date's checkpoint (path into path) if that date's train has a
 * marker; 0 otherwise. A killed train leaves its last epoch's checkpoint
 * behind, which no later stage may read (DESIGN §4). */
static int prev_ckpt_path(const sp_run_ctx *ctx, char *path, size_t cap) {
    sp_run_ctx pc;
    char prev[16], marker[PATH_MAX + 64];
    sp_stage_prev_ctx(ctx, &pc, prev);
    sp_stage_path(&pc, "train", "checkpoint.bin", path, cap);
    sp_stage_path(&pc, "train", "_SUCCESS.json", marker, sizeof marker);
    return access(marker, F_OK) == 0;
}

int sp_train_digest(const sp_run_ctx *ctx, uint64_t *digest) {
    /* the previous date's checkpoint is an input (warm start): the file's xxh64, 0 when there is none.
     * Hashing the bytes is enough here; the train stage itself reads and verifies the file. */
    char path[PATH_MAX + 64];
    uint64_t bytes;
    *digest = 0;
    if (!prev_ckpt_path(ctx, path, sizeof path) || sp_file_digest(path, &bytes, digest)) {
        sp_err_clear();
        *digest = 0;
    }
    if (!strcmp(sp_config_str(ctx->cfg, "sequence", "mode"), "joint")) {
        /* joint: the histories, and the user model this stage trains and writes (train/seqmodel.bin, which the
         * users stage starts from): a [sequence] key changed reruns train, not only users -- but not the keys
         * only the users stage reads (its own epochs and averaging, the board blend of its output) */
        static const char *const seq[] = {"sequence", NULL},
                                 *const users_only[] = {"epochs", "average_epochs", "board_weight", NULL};
        uint64_t u = 0;
        sp_users_digest(ctx, &u);
        *digest ^= sp_mix64(u ^ 0x6a6f696e74ULL) ^
                   sp_mix64(sp_config_digest_except(ctx->cfg, seq, users_only) ^ 0x73657175ULL);
    }
    return SP_OK;
}

int sp_train_run(const sp_run_ctx *ctx, sp_stage_result *res) {
    const sp_config *cfg = ctx->cfg;
    train_cfg tc;
    read_cfg(cfg, &tc);
    sp_sage_cfg mc = {(int)sp_config_int(cfg, "sage", "dim"), (int)sp_config_int(cfg, "sage", "layers"),
                      sp_config_bool(cfg, "sage", "id_embeddings"), (int)sp_config_int(cfg, "sage", "token_rows"), 0};
    /* train.view = owned: each rank holds its walks parts' lists and features, the rest fetched per step */
    const int owned = !strcmp(sp_config_str(cfg, "train", "view"), "owned");
    const char *unbuilt = !owned ? NULL
                          : !strcmp(sp_config_str(cfg, "sequence", "mode"), "joint") ? "sequence.mode = joint"
                          : sp_config_int(cfg, "train", "eval_every") > 0            ? "train.eval_every > 0"
                                                                                     : NULL;
    if (unbuilt) /* each embeds every node on every rank: over a partitioned view, the infer stage's job */
        return sp_err(SP_ENOTIMPL, "train.view = owned with %s is not implemented (it embeds every node on every "
                      "rank); use train.view = replicated, or sequence.mode = frozen and train.eval_every = 0",
                      unbuilt);
    sp_sage_data D;
    int rc = sp_sage_data_load(ctx, (int)sp_config_int(cfg, "sage", "nbr_pins"),
                               (int)sp_config_int(cfg, "sage", "nbr_boards"), mc.tok_rows, ctx->rank,
                               owned ? ctx->size : 1, &D);
    rc = sp_dist_agree(rc);
    if (rc) return rc;
    mc.dense_dim = D.dense_dim;
    uint64_t ntok = D.tok_off ? D.tok_off[D.own_np] : 0;
    if (owned) rc = sp_dist_sum_u64(&ntok, 1);
    if (!rc && !ntok) mc.tok_rows = 0; /* no tokens in the data: no table */
    if (!D.nboard_pin && !D.npin_pin) rc = sp_err(SP_EINPUT, "train: no training pairs (no pin-board edges)");
    if (!rc && !mc.id_emb && !mc.tok_rows && !mc.dense_dim)
        rc = sp_err(SP_ECONFIG, "train: the data has no content features; set sage.id_embeddings = true");
    if (rc) {
        sp_sage_data_free(&D);
        return sp_dist_agree(rc);
    }
    SP_INFO("train_data", "pins=%" PRIu64 " boards=%" PRIu64 " board_pin=%" PRIu64 " pin_pin=%" PRIu64
            " dense_dim=%d token_rows=%d view=%s view_nodes=%" PRIu64 " view_bytes=%" PRIu64, D.npins, D.nboards,
            D.nboard_pin, D.npin_pin, D.dense_dim, mc.tok_rows, owned ? "owned" : "replicated", D.own_np + D.own_nb,
            sp_sage_data_view_bytes(&D));

    sp_ckpt C = {0};
    sp_rng ir;
    sp_rng_init(&ir, tc.seed, SP_RNG_TRAIN + 200, 0);
    rc = sp_sage_params_init(&C.P, &mc, D.n, &ir);
    if (!rc) rc = sp_sage_params_zeros(&C.M, &mc, D.n);
    if (!rc) rc = sp_sage_params_zeros(&C.V, &mc, D.n);
    sp_sage_params G = {0}, Avg = {0};
    if (!rc) rc = sp_sage_params_zeros(&G, &mc, D.n);
    /* the mean of the last tc.average epochs' end-of-epoch parameters becomes the model */
    if (!rc && tc.average > 1) rc = sp_sage_params_zeros(&Avg, &mc, D.n);
    C.ids = malloc(8 * (D.n + 1));
    if (!C.ids && !rc) rc = SP_ENOMEM;
    if (!rc) memcpy(C.ids, D.ext, 8 * D.n);
    C.npins = D.npins;
    C.tau = (float)tc.tau;
    /* warm start */
    char path[PATH_MAX + 64];
    int warm = 0;
    if (!rc) {
        sp_ckpt old;
        int have_prev = prev_ckpt_path(ctx, path, sizeof path);
        int wr = !have_prev ? ENOENT : access(path, F_OK) ? -1 : sp_ckpt_read(path, &old);
        if (!wr) {
            uint64_t taken = warm_start(&old, &D, &C);
            if (taken == UINT64_MAX)
                SP_WARN("warm_start_skipped", "path=%s reason=\"model dimensions changed\"", sp_log_q(path));
            else {
                SP_INFO("warm_start", "path=%s rows=%" PRIu64 " of=%" PRIu64, sp_log_q(path), taken, D.n);
                warm = 1;
            }
            sp_ckpt_free(&old);
        } else if (wr == -1) /* the previous date's train completed (its marker is there) but the file is gone */
            SP_WARN("warm_start_missing", "path=%s reason=\"the previous date's train completed but its checkpoint "
                    "is gone: cold start\"", sp_log_q(path));
        else if (wr != ENOENT)
            SP_WARN("warm_start_unreadable", "path=%s error=%s", sp_log_q(path), sp_log_q(sp_errmsg()));
        sp_err_clear();
        /* no epoch on a cold model would publish its random initialisation as the day's embeddings */
        if (tc.epochs == 0 && !warm)
            rc = sp_err(SP_ECONFIG, "train.epochs = 0 keeps the previous date's item model, and there is none%s: "
                        "train at least one epoch", wr ? "" : " with today's dimensions");
    }
    /* sampler: logQ of pins as positives */
    sampler S = {.D = &D, .tc = &tc, .rank = ctx->rank, .size = ctx->size, .K = mc.layers, .owned = owned};
    S.wsum = (D.nboard_pin ? tc.w_bp : 0) + (D.npin_pin ? tc.w_pp : 0);
    if (!rc && S.wsum <= 0) rc = sp_err(SP_ECONFIG, "train: every task with pairs has weight 0");
    S.logq_pos = calloc(D.npins + 1, 4);
    if (!S.logq_pos && !rc) rc = SP_ENOMEM;
    if (!rc) {
        double pbp = (D.nboard_pin ? tc.w_bp : 0) / S.wsum, ppp = 1 - pbp;
        double *f = calloc(D.npins + 1, sizeof *f);
        if (!f) rc = SP_ENOMEM;
        for (uint64_t i = 0; f && i < D.nboard_pin; i++) f[D.board_pin[i].p] += pbp / (double)D.nboard_pin;
        for (uint64_t i = 0; f && i < D.npin_pin; i++) f[D.pin_pin[i].p] += ppp / (double)D.npin_pin;
        for (uint64_t v = 0; f && v < D.npins; v++)
            S.logq_pos[v] = (float)log((double)(tc.inbatch < tc.batch ? tc.inbatch : tc.batch) * f[v] + (double)tc.negatives / (double)D.npins + 1e-12);
        free(f);
    }
    /* board -> its pins (node indices), to mask a board query's other pins among its candidates */
    uint64_t *bp_off = NULL, *bp_ids = NULL, *excl_off = NULL, *excl = NULL;
    if (!rc && tc.mask_known && !tc.margin_loss) {
        bp_off = calloc(D.nboards + 2, 8);
        bp_ids = malloc(8 * (D.nboard_pin + 1));
        uint64_t *fill = calloc(D.nboards + 1, 8);
        if (!bp_off || !bp_ids || !fill) rc = SP_ENOMEM;
        for (uint64_t i = 0; !rc && i < D.nboard_pin; i++) bp_off[D.board_pin[i].q - D.npins + 1]++;
        for (uint64_t b = 0; !rc && b < D.nboards; b++) bp_off[b + 1] += bp_off[b];
        for (uint64_t i = 0; !rc && i < D.nboard_pin; i++) {
            uint64_t b = D.board_pin[i].q - D.npins;
            bp_ids[bp_off[b] + fill[b]++] = D.board_pin[i].p;
        }
        free(fill);
    }
    size_t excl_cap = 0;
    uint64_t main_pairs = D.nboard_pin + D.npin_pin;
    int64_t steps_per_epoch = (int64_t)((main_pairs + (uint64_t)tc.batch - 1) / (uint64_t)tc.batch);
    int64_t total = steps_per_epoch * tc.epochs;
    int d = mc.d;
    sp_joint J = {0};
    int joint = !strcmp(sp_config_str(cfg, "sequence", "mode"), "joint");
    rc = sp_dist_agree(rc);
    if (!rc && joint) {
        rc = sp_joint_init(&J, ctx, &D, d, steps_per_epoch);
        S.J = &J;
    }
    sp_feat Fe = {0}; /* the entity-feature task (train.w_feature) */
    if (!rc) rc = sp_feat_init(&Fe, &D, mc.layers, d, sp_config_f64(cfg, "train", "w_feature"), owned);
    rc = sp_dist_agree(rc);
    nn_adam_cfg adam = {0.9f, 0.999f, 1e-8f, (float)tc.wd};
    nn_adam_cfg adam_rows = {0.9f, 0.999f, 1e-8f, (float)sp_config_f64(cfg, "train", "row_decay")};
    nn_adam_cfg adam_tau = {0.9f, 0.999f, 1e-8f, 0.f};
    batch bufs[2] = {0};
    producer prod[2] = {{.S = &S, .b = &bufs[0]}, {.S = &S, .b = &bufs[1]}};
    sp_sage_acts A = {0};
    /* On a device backend the minibatch forward and backward run there (the dense parameters mirrored,
     * sent again after each optimizer step); sampling, the loss, the id/token rows, Adam and the
     * all-reduce stay on the host. */
    const nn_backend *dev = ctx->be && !ctx->be->host_memory ? ctx->be : NULL;
    sp_sage_dev DS = {0};
    float *gd = NULL, *gtmp = NULL, *ddout = NULL, *outh = NULL;
    size_t cap_ddout = 0;
    if (!rc && dev) {
        rc = sp_sage_dev_init(&DS, dev, &C.P);
        gd = dev->alloc(4 * C.P.ndense), gtmp = malloc(4 * C.P.ndense + 4);
        if (!rc && (!gd || !gtmp)) rc = SP_ENOMEM;
        if (!rc && ctx->rank == 0) SP_INFO("train_device", "device=%s", sp_log_q(dev->device));
    }
    float *dout = NULL, *scratch = NULL, *grow_buf = NULL;
    uint32_t *rows = NULL;
    size_t cap_dout = 0, cap_scratch = 0, pos_cap = 0;
    int *pos_idx = NULL;
    float *cand = NULL, *dcand = NULL, *cand_logq = NULL;
    uint64_t *cand_id = NULL;
    uint8_t *touched = calloc(D.n + 1, 1), *ttouched = calloc((size_t)mc.tok_rows + 1, 1);
    rows = malloc(4 * (D.n + (size_t)mc.tok_rows + 1));
    grow_buf = malloc(4 * ((D.n > (uint64_t)mc.tok_rows ? D.n : (uint64_t)mc.tok_rows) + 1) * (size_t)d);
    if ((!touched || !ttouched || !rows || !grow_buf) && !rc) rc = SP_ENOMEM;
    rc = sp_dist_agree(rc);
    /* id rows are updated at their nodes' owner ranks, token rows at row mod ranks (train_rows.h) */
    const int row_fetch = G.emb && !strcmp(sp_config_str(cfg, "train", "row_sync"), "fetch");
    sp_rows_owner RO[2];
    sp_view V = {0};
    {
        size_t buf = (size_t)sp_config_int(cfg, "pipeline", "shuffle_buffer_mb") << 20;
        int orc = sp_rows_owner_init(&RO[0], buf, d, D.n, D.npins, D.ext, !row_fetch);
        int trc = sp_rows_owner_init(&RO[1], buf, d, (uint64_t)mc.tok_rows, 0, NULL, 1); /* token rows: push */
        int vrc = owned ? sp_view_init(&V, &D, ctx->rank, ctx->size, buf) : SP_OK;
        if (!rc) rc = orc ? orc : trc ? trc : vrc;
    }
    uint32_t *need = NULL; /* owned view, fetch mode: the global rows of a step's level 0 */
    size_t cap_need = 0;
    char loss_path[PATH_MAX + 64];
    sp_stage_path(ctx, "train", "loss.tsv", loss_path, sizeof loss_path);
    FILE *loss_f = NULL;
    if (!rc && ctx->rank == 0) {
        char tmp[PATH_MAX + 96];
        snprintf(tmp, sizeof tmp, "%s.tmp", loss_path);
        loss_f = fopen(tmp, "w");
        if (!loss_f) rc = sp_err(SP_EIO, "%s: %s", tmp, strerror(errno));
        else fprintf(loss_f, "epoch\tstep\tloss\tlr\ttau\tseconds\n");
    }
    rc = sp_dist_agree(rc);
    int eval_every = (int)sp_config_int(cfg, "train", "eval_every"), eval_k = (int)sp_config_int(cfg, "eval", "k");
    const char *eval_test = sp_config_str(cfg, "eval", "test");
    evaluator ev = {0};
    FILE *eval_f = NULL;
    char eval_path[PATH_MAX + 64];
    double eval_seconds = 0, first_015 = -1;
    if (!rc && eval_every > 0 && !strcmp(eval_test, "none"))
        rc = sp_err(SP_ECONFIG, "train.eval_every is set but eval.test is none");
    if (!rc && eval_every > 0) rc = eval_init(&ev, &D, eval_test, mc.d, ctx->rank, ctx->size);
    if (!rc && eval_every > 0 && ctx->rank == 0) {
        sp_stage_path(ctx, "train", "eval.tsv", eval_path, sizeof eval_path);
        if (!(eval_f = fopen(eval_path, "w"))) rc = sp_err(SP_EIO, "%s: %s", eval_path, strerror(errno));
        if (eval_f) fprintf(eval_f, "epoch\tstep\ttrain_seconds\trecall@%d\tndcg@%d\n", eval_k, eval_k);
    }
    rc = sp_dist_agree(rc);
    int threaded = tc.threads != 1;
    double t0 = sp_now(), loss_acc = 0, uloss_ep = 0;
    int64_t uloss_n = 0;
    int64_t loss_n = 0, step = C.step;
    SP_INFO("train_begin", "epochs=%d steps_per_epoch=%" PRId64 " batch=%d negatives=%d loss=%s layers=%d dim=%d",
            tc.epochs, steps_per_epoch, tc.batch, tc.negatives, tc.margin_loss ? "margin" : "softmax", mc.layers, d);
    int cur = 0;
    /* where a step's time goes (this rank), logged at each epoch's end */
    enum { PH_WAIT, PH_VIEW, PH_FWD, PH_LOSS, PH_JOINT, PH_FEAT, PH_BWD, PH_REDUCE, PH_ADAM, PH_ROWS, PH_N };
    double ph[PH_N] = {0}, tp = 0;
#define PH_MARK(k) do { double now_ = sp_now(); ph[k] += now_ - tp; tp = now_; } while (0)
    if (!rc && total > 0 && joint) rc = sp_joint_refresh(&J, nn_backend_or_cpu(ctx->be), &C.P, &D.g);
    if (!rc && total > 0) {
        prod[0].step = 0;
        prod[0].nhard = 0; /* epoch 1 of the curriculum: no hard negatives yet */
        if (owned) rc = prepare(&S, &V, &bufs[0], 0, 0);
        if (!rc) rc = start_fill(&prod[0], threaded);
    }
    sp_progress prog;
    sp_progress_begin(&prog, "train_steps", (uint64_t)total);
    for (int64_t s = 0; !rc && s < total; s++) {
        int epoch = (int)(s / steps_per_epoch) + 1;
        tp = sp_now();
        rc = wait_fill(&prod[cur]);
        if (owned) rc = sp_dist_agree(rc); /* every rank goes on to the next step's collective fetch */
        batch *b = &bufs[cur];
        const sp_sage_graph *bg = owned ? &b->vs.g : &D.g;
        /* fetch mode: the current id rows of the nodes this step's layer 0 reads, before the next producer
         * starts (its thread would compete with the exchange's waits for the cores) */
        if (row_fetch && !rc) {
            PH_MARK(PH_WAIT);
            const uint32_t *rows0 = b->plan.node[0];
            if (owned) { /* the plan's nodes are the subgraph's: their id rows */
                rc = sp_grow((void **)&need, &cap_need, (size_t)b->plan.n[0] + 1, 4);
                for (uint32_t i = 0; !rc && i < b->plan.n[0]; i++) need[i] = b->vs.row[b->plan.node[0][i]];
                rows0 = need;
            }
            if (!rc) rc = sp_rows_owner_fetch(&RO[0], C.P.emb, rows0, b->plan.n[0]);
            PH_MARK(PH_ROWS);
        }
        if (!rc && s + 1 < total) {
            int e1 = (int)((s + 1) / steps_per_epoch) + 1;
            prod[cur ^ 1].step = s + 1;
            prod[cur ^ 1].nhard = tc.margin_loss && tc.hard ? e1 - 1 : 0;
            if (prod[cur ^ 1].nhard > 16) prod[cur ^ 1].nhard = 16;
            /* the history tokens' item table, once per epoch, while no producer reads it */
            if (joint && (s + 1) % (J.refresh ? J.refresh : steps_per_epoch) == 0) {
                if (row_fetch) rc = sp_rows_owner_spread(&RO[0], C.P.emb); /* it reads every row */
                if (!rc) rc = sp_joint_refresh(&J, nn_backend_or_cpu(ctx->be), &C.P, &D.g);
            }
            if (!rc && owned) {
                PH_MARK(PH_WAIT);
                rc = prepare(&S, &V, &bufs[cur ^ 1], s + 1, prod[cur ^ 1].nhard);
                PH_MARK(PH_VIEW);
            }
            if (!rc) rc = start_fill(&prod[cur ^ 1], threaded);
        }
        if (rc) break;
        PH_MARK(PH_WAIT);
        /* forward */
        rc = dev ? sp_sage_forward_on(&DS, &C.P, bg, &b->plan, &A) : sp_sage_forward(&C.P, bg, &b->plan, &A);
        if (rc) break;
        uint32_t nq = b->nq, nt = b->plan.n[mc.layers];
        size_t nd = (size_t)nt * d;
        if (nd > cap_dout) {
            float *t = realloc(dout, nd * 4), *o = dev ? realloc(outh, nd * 4) : NULL;
            if (t) dout = t;
            if (o) outh = o;
            if (!t || (dev && !o)) { rc = SP_ENOMEM; break; }
            cap_dout = nd;
        }
        float loss, dtau = 0;
        const float *out = A.out;
        if (dev) { /* the loss on the host */
            dev->get(outh, A.out, 4 * nd);
            out = outh;
        }
        PH_MARK(PH_FWD);
        if (!tc.margin_loss) {
            /* queries in blocks of train.inbatch: a block's candidates are its own positives plus the shared
             * negatives, so the cost per pair does not grow with the batch */
            uint32_t blk = (uint32_t)tc.inbatch < nq ? (uint32_t)tc.inbatch : nq, nneg = b->nneg;
            size_t ncmax = (size_t)blk + nneg;
            if ((size_t)blk * ncmax > cap_scratch) {
                float *t = realloc(scratch, (size_t)blk * ncmax * 4);
                if (!t) { rc = SP_ENOMEM; break; }
                scratch = t, cap_scratch = (size_t)blk * ncmax;
            }
            if (ncmax > pos_cap) {
                int *t = realloc(pos_idx, 4 * ncmax);
                float *c2 = realloc(cand, 4 * ncmax * d), *dc2 = realloc(dcand, 4 * ncmax * d), *lq = realloc(cand_logq, 4 * ncmax);
                uint64_t *ci = realloc(cand_id, 8 * ncmax);
                if (t) pos_idx = t;
                if (c2) cand = c2;
                if (dc2) dcand = dc2;
                if (lq) cand_logq = lq;
                if (ci) cand_id = ci;
                if (!t || !c2 || !dc2 || !lq || !ci) { rc = SP_ENOMEM; break; }
                pos_cap = ncmax;
            }
            memset(dout, 0, 4 * nd);
            loss = 0;
            float *dneg = dout + (size_t)2 * nq * d;
            for (uint32_t i0 = 0; i0 < nq; i0 += blk) {
                uint32_t bq = nq - i0 < blk ? nq - i0 : blk, ncb = bq + nneg;
                float wgt = (float)bq / (float)nq, dt = 0;
                memcpy(cand, out + (size_t)(nq + i0) * d, 4 * (size_t)bq * d);
                memcpy(cand + (size_t)bq * d, out + (size_t)2 * nq * d, 4 * (size_t)nneg * d);
                memcpy(cand_id, b->cid + i0, 8 * (size_t)bq);
                memcpy(cand_id + bq, b->cid + nq, 8 * (size_t)nneg);
                memcpy(cand_logq, b->logq + i0, 4 * (size_t)bq);
                memcpy(cand_logq + bq, b->logq + nq, 4 * (size_t)nneg);
                for (uint32_t i = 0; i < bq; i++) pos_idx[i] = (int)i;
                if (bp_off) { /* exclusion lists: a board query's pins */
                    size_t need = 0;
                    for (uint32_t i = 0; i < bq; i++) {
                        uint32_t u = b->targets[i0 + i];
                        if (u >= D.npins) need += bp_off[u - D.npins + 1] - bp_off[u - D.npins];
                    }
                    if (need + 1 > excl_cap || !excl_off) {
                        uint64_t *e1 = realloc(excl, 8 * (need + 1)), *e2 = realloc(excl_off, 8 * ((size_t)blk + 1));
                        if (e1) excl = e1;
                        if (e2) excl_off = e2;
                        if (!e1 || !e2) { rc = SP_ENOMEM; break; }
                        excl_cap = need + 1;
                    }
                    size_t k = 0;
                    excl_off[0] = 0;
                    for (uint32_t i = 0; i < bq; i++) {
                        uint32_t u = b->targets[i0 + i];
                        if (u >= D.npins) {
                            uint64_t a0 = bp_off[u - D.npins], a1 = bp_off[u - D.npins + 1];
                            memcpy(excl + k, bp_ids + a0, 8 * (a1 - a0));
                            k += a1 - a0;
                        }
                        excl_off[i + 1] = k;
                    }
                }
                float l = nn_sampled_softmax_ex(out + (size_t)i0 * d, cand, pos_idx, cand_id, cand_logq,
                                                bp_off ? excl_off : NULL, excl, (int)bq, (int)ncb, d, C.tau,
                                                dout + (size_t)i0 * d, dcand, &dt, scratch);
                loss += wgt * l;
                dtau += wgt * dt;
                for (size_t j = 0; j < (size_t)bq * d; j++) dout[(size_t)i0 * d + j] *= wgt;
                float *dp = dout + (size_t)(nq + i0) * d;
                for (size_t j = 0; j < (size_t)bq * d; j++) dp[j] = wgt * dcand[j];
                for (size_t j = 0; j < (size_t)nneg * d; j++) dneg[j] += wgt * dcand[(size_t)bq * d + j];
            }
            if (rc) break;
        } else {
            const float *hard = b->nhard ? out + (size_t)(2 * nq + b->nneg) * d : NULL;
            loss = nn_max_margin(out, out + (size_t)nq * d, out + (size_t)2 * nq * d, hard, (int)nq, (int)b->nneg,
                                 (int)b->nhard, d, (float)tc.margin, dout, dout + (size_t)nq * d,
                                 dout + (size_t)2 * nq * d, b->nhard ? dout + (size_t)(2 * nq + b->nneg) * d : NULL);
        }
        /* the global loss is the mean over ranks: scale so that summed gradients are the mean */
        float scale = 1.f / (float)ctx->size, uloss = 0;
        PH_MARK(PH_LOSS);
        if (joint) { /* the user-entity task: its targets' gradients join dout, the user encoder's its own */
            uint32_t ubase = nq * (2 + b->nhard) + b->nneg;
            rc = sp_joint_step(&J, &b->jb, out, ubase, 2 * nq, b->targets + 2 * nq, b->nneg, dout, scale, &uloss);
            if (rc) break;
            loss += uloss;
        }
        PH_MARK(PH_JOINT);
        if (Fe.w > 0) { /* the entity-feature task: its candidates' gradients join dout before the scaling */
            rc = sp_feat_step_sub(&Fe, &C.P, b->targets, owned ? bg : NULL, owned ? b->vs.targets : NULL, nq,
                                  b->nneg, out, C.tau, (uint32_t)tc.inbatch, scale, dout, &loss, &dtau);
            if (rc) break;
            PH_MARK(PH_FEAT);
        }
        for (size_t i = 0; i < nd; i++) dout[i] *= scale;
        memset(G.dense, 0, 4 * G.ndense);
        if (dev) {
            if (nd > cap_ddout) {
                dev->free(ddout);
                if (!(ddout = dev->alloc(4 * nd))) { rc = SP_ENOMEM; break; }
                cap_ddout = nd;
            }
            dev->put(ddout, dout, 4 * nd);
            dev->zero(gd, 4 * G.ndense);
            rc = sp_sage_backward_on(&DS, &C.P, bg, &b->plan, &A, ddout, gd, &G, touched, ttouched);
            if (!rc) { /* the device's dense gradients join the host's level-0 ones */
                dev->get(gtmp, gd, 4 * G.ndense);
                rc = dev->sync();
                for (size_t i = 0; !rc && i < G.ndense; i++) G.dense[i] += gtmp[i];
            }
        } else rc = sp_sage_backward(&C.P, bg, &b->plan, &A, dout, &G, touched, ttouched);
        if (rc) break;
        PH_MARK(PH_BWD);
        if (Fe.w > 0) { /* after the device's dense gradients joined G.dense */
            if ((rc = sp_feat_backward(&Fe, &G, ttouched))) break;
            PH_MARK(PH_FEAT);
        }
        /* all-reduce: dense grads + tau grad + loss, then touched rows */
        if (ctx->size > 1) {
            rc = sp_dist_sum_f32(G.dense, G.ndense);
            float extra[3] = {dtau * scale, loss * scale, uloss * scale};
            if (!rc) rc = sp_dist_sum_f32(extra, 3);
            dtau = extra[0], loss = extra[1], uloss = extra[2];
            if (rc) break;
        }
        PH_MARK(PH_REDUCE);
        float lr = nn_lr_at(s, tc.warmup, total, (float)tc.lr, (float)tc.lr_min);
        int64_t t = ++step;
        nn_adam_step(C.P.dense, G.dense, C.M.dense, C.V.dense, C.P.ndense, &adam, t, lr);
        if (dev) sp_sage_dev_put(&DS, &C.P);
        if (tc.learn_tau && !tc.margin_loss) {
            nn_adam_step(&C.tau, &dtau, &C.tau_m, &C.tau_v, 1, &adam_tau, t, lr);
            if (C.tau < (float)tc.tau_min) C.tau = (float)tc.tau_min;
        }
        if (joint && (rc = sp_joint_update(&J, s, total))) break;
        PH_MARK(PH_ADAM);
        for (int tab = 0; tab < 2 && !rc; tab++) { /* id rows, token rows: updated at their owner ranks */
            float *Gt = tab ? G.tok : G.emb;
            if (!Gt) continue;
            rc = sp_rows_owner_step(&RO[tab], tab ? C.P.tok : C.P.emb, tab ? C.M.tok : C.M.emb,
                                    tab ? C.V.tok : C.V.emb, Gt, tab ? ttouched : touched,
                                    tab ? (uint64_t)mc.tok_rows : D.n, rows, grow_buf, &adam_rows, t, lr, NULL);
        }
        if (rc) break;
        PH_MARK(PH_ROWS);
        loss_acc += loss;
        uloss_ep += uloss;
        uloss_n++;
        loss_n++;
        sp_progress_add(&prog, 1);
        int end_epoch = (s + 1) % steps_per_epoch == 0;
        if (loss_f && (end_epoch || (s + 1) % 50 == 0)) {
            fprintf(loss_f, "%d\t%" PRId64 "\t%.6f\t%.6g\t%.5f\t%.2f\n", epoch, s + 1, loss_acc / (double)loss_n, lr,
                    C.tau, sp_now() - t0);
            fflush(loss_f);
            loss_acc = 0, loss_n = 0;
        }
        if (end_epoch) {
            SP_INFO("epoch_end", "epoch=%d step=%" PRId64 " tau=%.4f seconds=%.1f", epoch, s + 1, C.tau, sp_now() - t0);
            SP_INFO("epoch_phases", "epoch=%d wait=%.2f view=%.2f forward=%.2f loss=%.2f joint=%.2f feature=%.2f "
                    "backward=%.2f allreduce=%.2f adam=%.2f rows=%.2f", epoch, ph[PH_WAIT], ph[PH_VIEW], ph[PH_FWD],
                    ph[PH_LOSS], ph[PH_JOINT],
                    ph[PH_FEAT], ph[PH_BWD], ph[PH_REDUCE], ph[PH_ADAM], ph[PH_ROWS]);
            if (Fe.w > 0) {
                SP_INFO("feature_epoch_end", "epoch=%d feature_loss=%.5f", epoch,
                        Fe.loss_n ? Fe.loss_sum / (double)Fe.loss_n : 0.0);
                Fe.loss_sum = 0, Fe.loss_n = 0;
            }
            memset(ph, 0, sizeof ph);
            if (joint)
                SP_INFO("joint_epoch_end", "epoch=%d user_loss=%.5f user_tau=%.4f", epoch,
                        uloss_n ? uloss_ep / (double)uloss_n : 0.0, J.S.tau);
            uloss_ep = 0, uloss_n = 0;
            C.epoch = epoch;
            C.step = step;
            /* fetch mode: the whole table for the checkpoint and the evaluation */
            if (row_fetch && !rc) rc = sp_rows_owner_spread(&RO[0], C.P.emb);
            if (Avg.dense && !rc && epoch > tc.epochs - tc.average) {
                sp_sage_params_average(&Avg, &C.P, epoch - (tc.epochs - tc.average));
                if (epoch == tc.epochs) { /* the last epoch: the average is the model written and scored */
                    sp_sage_params_copy(&C.P, &Avg);
                    SP_INFO("train_averaged", "epochs=%d", tc.average);
                }
            }
            /* the checkpoint's row moments: each row's from its owner */
            if (G.emb && !rc) rc = sp_rows_sync_moments(&RO[0], C.M.emb, C.V.emb);
            if (G.tok && !rc) rc = sp_rows_sync_moments(&RO[1], C.M.tok, C.V.tok);
            if (!rc && ctx->rank == 0) {
                sp_stage_path(ctx, "train", "checkpoint.bin", path, sizeof path);
                rc = sp_ckpt_write(path, &C, NULL);
                if (!rc && joint) {
                    sp_stage_path(ctx, "train", "seqmodel.bin", path, sizeof path);
                    rc = sp_joint_write(&J, path);
                }
            }
            rc = sp_dist_agree(rc);
            if (!rc && eval_every > 0 && (epoch % eval_every == 0 || s + 1 == total)) {
                double te = sp_now(), rec = 0, nd = 0, trained = te - t0 - eval_seconds;
                rc = eval_all(&ev, nn_backend_or_cpu(ctx->be), &D, &C.P, eval_k, &rec, &nd);
                eval_seconds += sp_now() - te;
                if (!rc && eval_f) {
                    fprintf(eval_f, "%d\t%" PRId64 "\t%.1f\t%.5f\t%.5f\n", epoch, s + 1, trained, rec, nd);
                    fflush(eval_f);
                    if (first_015 < 0 && rec >= 0.15) first_015 = trained;
                    SP_INFO("train_eval", "epoch=%d train_seconds=%.1f recall@%d=%.5f ndcg@%d=%.5f eval_seconds=%.1f",
                            epoch, trained, eval_k, rec, eval_k, nd, sp_now() - te);
                }
            }
            rc = sp_dist_agree(rc);
            sp_test_stall_at(ctx, "train", "epoch"); /* test hook: a checkpoint exists, no marker */
        }
        cur ^= 1;
    }
#undef PH_MARK
    sp_progress_end(&prog);
    if (eval_f) {
        if (fclose(eval_f) && !rc) rc = sp_err(SP_EIO, "%s: write failed", eval_path);
        if (first_015 >= 0) SP_INFO("train_eval_reached", "recall=0.15 train_seconds=%.1f", first_015);
    }
    eval_free(&ev);
    for (int i = 0; i < 2; i++) {
        int r2 = wait_fill(&prod[i]);
        (void)r2;
    }
    rc = sp_dist_agree(rc);
    if (!rc && total == 0 && ctx->rank == 0) {
        sp_stage_path(ctx, "train", "checkpoint.bin", path, sizeof path);
        rc = sp_ckpt_write(path, &C, NULL);
        if (!rc && joint) {
            sp_stage_path(ctx, "train", "seqmodel.bin", path, sizeof path);
            rc = sp_joint_write(&J, path);
        }
    }
    if (loss_f) {
        char tmp[PATH_MAX + 96];
        snprintf(tmp, sizeof tmp, "%s.tmp", loss_path);
        if (fclose(loss_f) && !rc) rc = sp_err(SP_EIO, "%s: write failed", tmp);
        if (!rc && rename(tmp, loss_path)) rc = sp_err(SP_EIO, "%s: %s", loss_path, strerror(errno));
        if (rc) remove(tmp);
    }
    rc = sp_dist_agree(rc);
    if (!rc && ctx->rank == 0) {
        /* record outputs: checkpoint + loss log */
        const char *files[4] = {"checkpoint.bin", "loss.tsv", "seqmodel.bin", "eval.tsv"};
        for (int i = 0; i < 4 && !rc; i++)
            if ((i != 2 || joint) && (i != 3 || eval_every > 0)) rc = sp_stage_output_file(res, ctx, "train", files[i]);
    }
    rc = sp_dist_agree(rc);
    sp_stage_count(res, "steps", (uint64_t)(ctx->rank == 0 ? total : 0));
    sp_stage_count(res, "row_grads_to_owners", RO[0].grads_sent + RO[1].grads_sent);
    sp_stage_count(res, "rows_from_owners", RO[0].rows_recv + RO[1].rows_recv);
    sp_stage_count(res, "rows_fetched", RO[0].fetch_recv);
    sp_stage_count(res, "view_nodes_fetched", V.fetched);
    sp_stage_count(res, "view_bytes_fetched", V.bytes);
    sp_stage_count(res, "pairs_board_pin", ctx->rank == 0 ? D.nboard_pin : 0);
    sp_stage_count(res, "pairs_pin_pin", ctx->rank == 0 ? D.npin_pin : 0);
    SP_INFO("train_end", "steps=%" PRId64 " seconds=%.1f tau=%.4f", total, sp_now() - t0, C.tau);
    for (int i = 0; i < 2; i++) {
        free(bufs[i].targets);
        free(bufs[i].cid);
        free(bufs[i].logq);
        sp_sage_plan_free(&bufs[i].plan);
        sp_joint_batch_free(&bufs[i].jb);
        sp_view_step_free(&bufs[i].vs);
    }
    sp_view_free(&V);
    free(need);
    sp_joint_free(&J);
    sp_feat_free(&Fe);
    sp_sage_acts_free(&A);
    if (dev) {
        dev->free(gd), dev->free(ddout);
        sp_sage_dev_free(&DS);
    }
    free(gtmp), free(outh);
    free(dout);
    free(scratch);
    free(pos_idx);
    free(bp_off);
    free(bp_ids);
    free(excl_off);
    free(excl);
    free(cand);
    free(dcand);
    free(cand_logq);
    free(cand_id);
    free(grow_buf);
    sp_rows_owner_free(&RO[0]);
    sp_rows_owner_free(&RO[1]);
    free(rows);
    free(touched);
    free(ttouched);
    free(S.logq_pos);
    sp_sage_params_free(&G);
    sp_sage_params_free(&Avg);
    sp_ckpt_free(&C);
    sp_sage_data_free(&D);
    return rc;
}
