/* users stage (users_stage.h). Per rank, for the users it owns:
 *   1. history: the previous completed users stage's history parts (any rank
 *      count; looked up to sequence.lookback_days back) merged with the day's
 *      events from ingest, deduplicated and bounded (sequence/history.c);
 *   2. model: the user encoder, warm-started from that previous date's model
 *      (sequence.mode = joint: from the model the train stage trained with
 *      the item encoder, train_joint.c), then
 *      trained sequence.epochs epochs data-parallel over the ranks (gradients
 *      summed) on the frozen item embeddings of the infer stage: at up to
 *      sequence.positions positions of a window of each sampled history, the
 *      output must retrieve the next action's pin (next-action) and a random
 *      pin of the next sequence.window_days (dense all-action), sampled softmax
 *      over in-batch targets + shared random pins with logQ correction;
 *   3. vectors: users whose history changed today are encoded; the others are
 *      copied from the previous date when its encoder version (model
 *      parameters + item embeddings + max_len) equals today's, else encoded
 *      too. --full encodes everyone. Encoding is deterministic, so both paths
 *      give the same vector for a user whose history did not change.
 * Writes users/hist-*.bin (history), users/part-*.bin (sfile "uemb"),
 * users/model.bin and users/loss.tsv (rank 0). No rank reads the whole item
 * table: each serves its share of the infer parts and fetches the pins its
 * histories read (users_items.c). */
#include "users_stage.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "dist.h"
#include "encoder.h"
#include "fsutil.h"
#include "history.h"
#include "idrow.h"
#include "infer_stage.h"
#include "ingest.h"
#include "lines.h"
#include "log.h"
#include "nn.h"
#include "seq_batch.h"
#include "sfile.h"
#include "sp_base.h"
#include "users_items.h"
#include "users_model.h"


/* ---- the previous completed users stage ---- */

int sp_users_digest(const sp_run_ctx *ctx, uint64_t *digest) {
    sp_run_ctx pc;
    char pdate[16], marker[PATH_MAX + 64];
    uint64_t bytes;
    *digest = 0;
    int lookback = (int)sp_config_int(ctx->cfg, "sequence", "lookback_days");
    if (sp_users_find_prev(ctx, lookback, &pc, pdate)) {
        sp_stage_path(&pc, "users", "_SUCCESS.json", marker, sizeof marker);
        if (sp_file_digest(marker, &bytes, digest)) *digest = 0;
        sp_err_clear();
        *digest ^= sp_mix64((uint64_t)pc.day_ms);
    }
    return SP_OK;
}

/* The encoder version: today's vectors equal yesterday's for an unchanged history only when this matches. */
static uint64_t encoder_version(const sp_seq_state *s, uint64_t items_digest, double board_weight) {
    uint64_t v = XXH64(s->m.p, 4 * s->m.n, items_digest), w;
    memcpy(&w, &board_weight, 8);
    return v ^ sp_mix64((uint64_t)s->m.c.max_len + 0x9e37u) ^ (board_weight > 0 ? sp_mix64(w) : 0);
}

/* u = normalise((1 - w) u + w b), normalised as every output row is (nn_l2norm_fwd). */
static void blend(float *u, const float *b, int d, float w) {
    float norm;
    for (int k = 0; k < d; k++) u[k] = (1 - w) * u[k] + w * b[k];
    nn_l2norm_fwd(u, &norm, u, 1, d);
}

/* ---- training ---- */

typedef struct {
    sp_users_sampler smp; /* config, histories, item table, decode buffer */
    const float *logq; /* (items) log expected count of a pin among a step's candidates */
    const uint64_t *ids; /* (items) pin id of each row */
    /* shared negatives: uniform over the pins this rank serves (or, serving none, over it) */
    uint64_t nneg_pool;
    const float *neg_vec, *neg_logq;
    const uint64_t *neg_ids;
    uint64_t *train;   /* users (history index) with ≥ 2 actions */
    uint64_t ntrain;
} trainer;

typedef struct {
    sq_packer pk;
    sq_acts *acts;
    float *out, *dout, *grad, *q, *dq, *cand, *logq;
    uint64_t *cid;
    sp_users_loss_ws lw;
    uint32_t *neg; /* the step's shared random pins (rows of the negatives pool) */
    sp_users_queries Q;
    size_t cap_out, cap_q, cap_c, cap_s, cap_neg;
} workspace;

static void ws_free(workspace *w) {
    sq_packer_free(&w->pk);
    sq_acts_free(w->acts);
    free(w->out), free(w->dout), free(w->grad), free(w->q), free(w->dq), free(w->cand);
    free(w->logq), free(w->cid), free(w->neg);
    sp_users_queries_free(&w->Q);
    sp_users_loss_ws_free(&w->lw);
    memset(w, 0, sizeof *w);
}

/* One step's loss on this rank's sampled users; dout filled (scaled by `scale`), returns the mean loss. */
static int step_loss(trainer *T, sp_seq_state *S, workspace *w, uint64_t nq, sp_rng *r, float scale, float *loss,
                     float *dtau) {
    const sp_users_cfg *uc = T->smp.uc;
    int d = T->smp.it->d;
    size_t N = (size_t)w->pk.N;
    if (sp_grow((void **)&w->out, &w->cap_out, N * d, 4) || !(w->dout = realloc(w->dout, 4 * w->cap_out + 4)))
        return SP_ENOMEM;
    sq_batch b = sq_packer_batch(&w->pk);
    sq_dropout drop = sp_users_dropout(uc, S->step);
    int rc = sq_forward_train(&S->m, &b, w->acts, w->out, &drop);
    if (rc) return rc;
    memset(w->dout, 0, 4 * N * d);
    *loss = 0, *dtau = 0;
    uint32_t blk = (uint32_t)uc->inbatch, R = (uint32_t)uc->negatives;
    size_t ncmax = 2 * (size_t)blk + R;
    if (sp_grow((void **)&w->q, &w->cap_q, (size_t)blk * d, 4) || !(w->dq = realloc(w->dq, 4 * w->cap_q + 4)) ||
        sp_grow((void **)&w->cand, &w->cap_c, ncmax * d, 4) || !(w->logq = realloc(w->logq, 4 * w->cap_c + 4)) ||
        !(w->cid = realloc(w->cid, 8 * w->cap_c + 8)))
        return SP_ENOMEM;
    /* shared random pins of this step */
    if (sp_grow((void **)&w->neg, &w->cap_neg, (size_t)R + 1, 4)) return SP_ENOMEM;
    uint32_t *neg = w->neg;
    for (uint32_t j = 0; j < R; j++) neg[j] = (uint32_t)sp_rng_below(r, T->nneg_pool);
    for (uint64_t i0 = 0; i0 < nq; i0 += blk) {
        uint32_t bq = (uint32_t)(nq - i0 < blk ? nq - i0 : blk), nc = 2 * bq + R;
        float wgt = (float)bq / (float)nq;
        for (uint32_t i = 0; i < bq; i++)
            memcpy(w->q + (size_t)i * d, w->out + w->Q.qrow[i0 + i] * d, 4 * (size_t)d);
        for (uint32_t j = 0; j < nc; j++) {
            if (j < 2 * bq) { /* in-batch targets */
                uint32_t row = j < bq ? w->Q.tgt[2 * (i0 + j)] : w->Q.tgt[2 * (i0 + j - bq) + 1];
                memcpy(w->cand + (size_t)j * d, T->smp.it->vec + (size_t)row * d, 4 * (size_t)d);
                w->cid[j] = T->ids[row];
                w->logq[j] = T->logq[row];
            } else {
                uint32_t row = neg[j - 2 * bq];
                memcpy(w->cand + (size_t)j * d, T->neg_vec + (size_t)row * d, 4 * (size_t)d);
                w->cid[j] = T->neg_ids[row];
                w->logq[j] = T->neg_logq[row];
            }
        }
        const uint64_t *eo = uc->mask_history ? w->Q.excl_off + i0 : NULL; /* offsets stay absolute into excl */
        float an = (float)uc->w_next * wgt, aa = (float)uc->w_all * wgt;
        rc = sp_users_block_loss(&w->lw, w->q, w->cand, w->cid, w->logq, eo, w->Q.excl, bq, nc, d, S->tau, an, aa,
                                 scale, w->dq, NULL, loss, dtau);
        if (rc) return rc;
        for (uint32_t i = 0; i < bq; i++) {
            float *dst = w->dout + w->Q.qrow[i0 + i] * d;
            const float *g = w->dq + (size_t)i * d;
            for (int k = 0; k < d; k++) dst[k] += scale * g[k];
        }
    }
    return SP_OK;
}

static int train_model(const sp_run_ctx *ctx, trainer *T, sp_seq_state *S, FILE *loss_f, int64_t *steps_out) {
    const sp_users_cfg *uc = T->smp.uc;
    *steps_out = 0;
    uint64_t cnt[2] = {T->ntrain, T->ntrain};
    int rc = sp_dist_max_u64(&cnt[0], 1);
    if (!rc) rc = sp_dist_sum_u64(&cnt[1], 1);
    if (rc) return rc;
    if (cnt[1] == 0 || uc->epochs == 0) {
        SP_INFO("users_train_skipped", "reason=%s", uc->epochs == 0 ? "\"sequence.epochs = 0\"" : "\"no history with 2 actions\"");
        return SP_OK;
    }
    uint64_t lb = ((uint64_t)uc->batch + (uint64_t)ctx->size - 1) / (uint64_t)ctx->size;
    int64_t per_epoch = (int64_t)((cnt[0] + lb - 1) / lb), total = per_epoch * uc->epochs;
    workspace w = {0};
    w.acts = sq_acts_new();
    float *grad = calloc(S->m.n + 1, 4);
    if (!w.acts || !grad) rc = SP_ENOMEM;
    uint64_t *perm = malloc(8 * (T->ntrain + 1));
    if (!perm) rc = SP_ENOMEM;
    /* sequence.average_epochs: the running mean of the last epochs' parameters becomes the model */
    float *avg = uc->average > 1 ? calloc(S->m.n + 1, 4) : NULL;
    if (uc->average > 1 && !avg) rc = SP_ENOMEM;
    rc = sp_dist_agree(rc);
    sp_rng r;
    sp_rng_init(&r, uc->seed, SP_RNG_TRAIN + 300, (uint64_t)ctx->rank);
    uint64_t pi = T->ntrain;
    double t0 = sp_now(), acc = 0;
    int64_t accn = 0;
    float scale = 1.f / (float)ctx->size;
    SP_INFO("users_train_begin", "epochs=%d steps_per_epoch=%" PRId64 " batch=%d users=%" PRIu64 " params=%zu",
            uc->epochs, per_epoch, uc->batch, cnt[1], S->m.n);
    sp_progress prog = {.interval = sp_config_f64(ctx->cfg, "pipeline", "progress_seconds")};
    sp_progress_begin(&prog, "users_train_steps", (uint64_t)total);
    for (int64_t s = 0; !rc && s < total; s++) {
        sq_packer_reset(&w.pk);
        uint64_t nq = 0;
        for (uint64_t k = 0; k < lb && T->ntrain && !rc; k++) {
            if (pi == T->ntrain) { /* a fresh permutation of our trainable users */
                for (uint64_t i = 0; i < T->ntrain; i++) perm[i] = T->train[i];
                for (uint64_t i = T->ntrain; i > 1; i--) {
                    uint64_t j = sp_rng_below(&r, i), t = perm[i - 1];
                    perm[i - 1] = perm[j], perm[j] = t;
                }
                pi = 0;
            }
            rc = sp_users_sample(&T->smp, perm[pi++], &r, &w.pk, &w.Q, &nq);
        }
        float loss = 0, dtau = 0;
        memset(grad, 0, 4 * S->m.n);
        if (!rc && nq) rc = step_loss(T, S, &w, nq, &r, scale, &loss, &dtau);
        if (!rc && nq) {
            sq_batch b = sq_packer_batch(&w.pk);
            rc = sq_backward(&S->m, &b, w.acts, w.dout, grad, NULL);
        }
        rc = sp_dist_agree(rc);
        if (rc) break;
        float extra[2] = {dtau, loss * scale};
        if (ctx->size > 1 && ((rc = sp_dist_sum_f32(grad, S->m.n)) || (rc = sp_dist_sum_f32(extra, 2)))) break;
        float lr = sp_seq_state_step(S, uc, grad, extra[0], s, total);
        acc += extra[1];
        accn++;
        sp_progress_add(&prog, 1);
        if ((s + 1) % per_epoch == 0) {
            int epoch = (int)((s + 1) / per_epoch);
            SP_INFO("users_epoch_end", "epoch=%d loss=%.5f tau=%.4f seconds=%.1f", epoch, acc / (double)accn, S->tau,
                    sp_now() - t0);
            if (loss_f)
                fprintf(loss_f, "%d\t%" PRId64 "\t%.6f\t%.6g\t%.5f\t%.2f\n", epoch, s + 1, acc / (double)accn, lr,
                        S->tau, sp_now() - t0);
            acc = 0, accn = 0;
            if (avg && epoch > uc->epochs - uc->average) {
                nn_running_mean(avg, S->m.p, S->m.n, epoch - (uc->epochs - uc->average));
                if (epoch == uc->epochs) {
                    memcpy(S->m.p, avg, 4 * S->m.n);
                    SP_INFO("users_averaged", "epochs=%d", uc->average);
                }
            }
        }
    }
    sp_progress_end(&prog);
    *steps_out = total;
    free(avg);
    free(perm);
    free(grad);
    ws_free(&w);
    return sp_dist_agree(rc);
}

/* ---- user embedding parts (sfile "uemb": meta {rank, nranks, dim, version}, user_ids, user_vecs) ---- */

int sp_users_part_open(const sp_run_ctx *ctx, int p, int n, sp_users_part *u) {
    memset(u, 0, sizeof *u);
    char path[PATH_MAX + 64];
    sp_stage_part(ctx, "users", p, n, NULL, 0, path, sizeof path);
    const uint64_t *meta = NULL;
    uint64_t nm = 0, nv = 0;
    int rc = sp_sfile_open(&u->f, path, "uemb");
    if (!rc) rc = sp_sfile_get(u->f, "meta", 8, (const void **)&meta, &nm);
    if (!rc && (nm != 4 || meta[0] != (uint64_t)p || meta[1] != (uint64_t)n || meta[2] == 0 || meta[2] > 4096))
        rc = sp_err(SP_EFORMAT, "%s: meta = {rank, nranks, dim, version} should be {%d, %d, 1..4096, *}", path, p, n);
    if (!rc) rc = sp_sfile_get(u->f, "user_ids", 8, (const void **)&u->ids, &u->n);
    if (!rc) rc = sp_sfile_get(u->f, "user_vecs", 4, (const void **)&u->vec, &nv);
    if (!rc && nv != u->n * meta[2])
        rc = sp_err(SP_EFORMAT, "%s: user_vecs has %" PRIu64 " values, %" PRIu64 " ids x dim %" PRIu64 " need %" PRIu64,
                    path, nv, u->n, meta[2], u->n * meta[2]);
    if (!rc) u->d = (int)meta[2], u->version = meta[3];
    if (rc) sp_users_part_close(u);
    return rc;
}

void sp_users_part_close(sp_users_part *u) {
    if (u->f) sp_sfile_close(u->f);
    memset(u, 0, sizeof *u);
}

/* Loads the users parts of ctx's date (keep: this rank's users only, else all) into u; *version = the
 * parts' encoder version (they all share it). */
static int users_load_filtered(const sp_run_ctx *ctx, sp_owner_filter *keep, sp_user_set *u, uint64_t *version) {
    memset(u, 0, sizeof *u);
    int n = 0, rc = sp_stage_ranks(ctx, "users", &n);
    size_t cap_i = 0, cap_v = 0;
    for (int p = 0; !rc && p < n; p++) {
        if (keep && n == keep->size && p != keep->rank) continue;
        sp_users_part up;
        if ((rc = sp_users_part_open(ctx, p, n, &up))) break;
        if (u->d && u->d != up.d) rc = sp_err(SP_EFORMAT, "users part %d of %s: dim %d, other parts %d", p, ctx->date, up.d, u->d);
        u->d = up.d;
        if (version) *version = up.version;
        for (uint64_t i = 0; !rc && i < up.n; i++) {
            if (keep && !sp_users_owned(up.ids[i], keep)) continue;
            if (sp_grow((void **)&u->ids, &cap_i, u->n + 1, 8) || sp_grow((void **)&u->vec, &cap_v, (u->n + 1) * u->d, 4)) {
                rc = SP_ENOMEM;
                break;
            }
            u->ids[u->n] = up.ids[i];
            memcpy(u->vec + u->n * u->d, up.vec + i * u->d, 4 * (size_t)u->d);
            u->n++;
        }
        sp_users_part_close(&up);
    }
    return rc;
}

int sp_users_load(const sp_run_ctx *ctx, sp_user_set *u) { return users_load_filtered(ctx, NULL, u, NULL); }

int sp_users_dump(const sp_run_ctx *ctx, FILE *out) {
    sp_user_set u;
    sp_lines lines = {0};
    int rc = sp_users_load(ctx, &u);
    for (uint64_t i = 0; !rc && i < u.n; i++) rc = sp_emb_line(&lines, 'u', u.ids[i], u.vec + i * u.d, u.d);
    if (!rc) sp_lines_sort_write(&lines, out);
    sp_lines_free(&lines);
    sp_user_set_free(&u);
    return rc;
}

void sp_user_set_free(sp_user_set *u) {
    free(u->ids);
    free(u->vec);
    memset(u, 0, sizeof *u);
}

/* ---- the stage ---- */

int sp_users_run(const sp_run_ctx *ctx, sp_stage_result *res) {
    sp_users_cfg uc;
    /* the user encoder has no CUDA path yet: --device auto runs it on the CPU, an explicit cuda is refused */
    if (ctx->device && !strcmp(ctx->device, "cuda"))
        return sp_err(SP_ENOTIMPL, "users: --device cuda is not implemented for the user encoder yet (the CUDA "
                      "backend has its attention op, the stage does not use it): run users with --device cpu or auto");
    int rc = sp_users_cfg_read(ctx, &uc);
    rc = sp_dist_agree(rc);
    if (rc) return rc;
    double t0 = sp_now();
    sp_run_ctx pc;
    char pdate[16];
    int have_prev = sp_users_find_prev(ctx, uc.lookback, &pc, pdate);
    if (ctx->rank == 0) {
        if (!have_prev)
            SP_WARN("users_history_start", "reason=\"no users stage in the %d days before %s: histories start empty\"",
                    uc.lookback, ctx->date);
        else if (pc.day_ms != ctx->day_ms - SP_DAY_MS)
            SP_WARN("users_history_gap", "previous=%s reason=\"the dates between have no users stage: their events are "
                    "missing from the histories unless backfilled\"", pdate);
    }
    /* 1. history */
    sq_hist h = {0};
    sq_hist_stats hs = {0};
    rc = sp_users_history(ctx, &uc, &pc, have_prev, &h, &hs);
    char name[96], path[PATH_MAX + 128];
    uint64_t hist_bytes = 0;
    if (!rc) {
        sp_part_name("hist", ctx->rank, ctx->size, name, sizeof name);
        sp_stage_path(ctx, "users", name, path, sizeof path);
        rc = sq_hist_save(&h, path, &hist_bytes, NULL);
        if (!rc) rc = sp_stage_output_file(res, ctx, "users", name);
    }
    rc = sp_dist_agree(rc);
    /* 2. items (fetched from the ranks serving the infer parts) and model */
    uint64_t longest = 1, tot = 0, items_digest = 0;
    for (uint64_t u = 0; u < h.n; u++) longest = h.nact[u] > longest ? h.nact[u] : longest;
    sq_action *buf = rc ? NULL : malloc(sizeof *buf * longest);
    if (!rc && !buf) rc = SP_ENOMEM;
    rc = sp_dist_agree(rc);
    sp_item_view V = {0};
    if (!rc) rc = sp_item_view_fetch(ctx, &h, buf, longest, &V, &tot);
    if (!rc) rc = sp_stage_check_done(ctx, sp_stage_find("infer"), &items_digest);
    sq_items it = {V.n, V.d, V.vec, V.idx};
    sp_seq_state S = {0};
    uc.mc.d_item = V.d;
    if (!rc) rc = sp_seq_state_init(&S, &uc);
    int warm = 0;
    if (!rc && uc.joint) { /* the model trained with the item encoder (train stage) is today's start */
        sp_stage_path(ctx, "train", "seqmodel.bin", path, sizeof path);
        rc = access(path, F_OK) ? sp_err(SP_EINPUT, "%s: missing; sequence.mode = joint needs the train stage's "
                                                    "user model (rerun train with this config)", path)
                                : sp_seq_model_read(path, &S, &warm);
        if (!rc && !warm) rc = sp_err(SP_EINPUT, "%s: the user model's dimensions differ from [sequence]", path);
        if (!rc && ctx->rank == 0) SP_INFO("users_joint_start", "model=%s step=%" PRId64, sp_log_q(path), S.step);
    } else if (!rc && have_prev) {
        sp_stage_path(&pc, "users", "model.bin", path, sizeof path);
        rc = sp_seq_model_read(path, &S, &warm);
        if (!rc && ctx->rank == 0) {
            if (warm) SP_INFO("users_warm_start", "model=%s step=%" PRId64, sp_log_q(path), S.step);
            else SP_WARN("users_warm_start_skipped", "model=%s reason=\"model dimensions changed\"", sp_log_q(path));
        }
    }
    rc = sp_dist_agree(rc);
    if (!rc && uc.epochs == 0 && !warm)
        rc = sp_err(SP_ECONFIG, "sequence.epochs = 0 reuses the previous date's user model, and there is none%s",
                    have_prev ? " with today's dimensions" : "");
    /* 3. train */
    trainer T = {.smp = {.uc = &uc, .h = &h, .it = &it, .buf = buf}};
    float *logq = NULL;
    FILE *loss_f = NULL;
    char loss_tmp[PATH_MAX + 96];
    int64_t steps = 0;
    if (!rc) {
        /* logQ: a pin's expected count among a step's candidates, from its global frequency as a target */
        T.train = malloc(8 * (h.n + 1));
        if (!T.train) rc = SP_ENOMEM;
        for (uint64_t u = 0; !rc && u < h.n; u++)
            if (h.nact[u] >= 2) T.train[T.ntrain++] = u;
        double per_step = 2.0 * (double)uc.inbatch, unif = (double)uc.negatives / (double)V.nglobal;
        for (uint64_t v = 0; !rc && v < V.n; v++)
            V.logq[v] = (float)log(per_step * (tot ? (double)V.tcount[v] / (double)tot : 0) + unif + 1e-12);
        for (uint64_t v = 0; !rc && v < V.S.n[0]; v++)
            V.slogq[v] = (float)log(per_step * (tot ? (double)V.scount[v] / (double)tot : 0) + unif + 1e-12);
        logq = V.logq;
        T.ids = V.ids;
        if (V.S.n[0]) T.nneg_pool = V.S.n[0], T.neg_vec = V.S.vec[0], T.neg_logq = V.slogq, T.neg_ids = V.S.ids[0];
        else T.nneg_pool = V.n, T.neg_vec = V.vec, T.neg_logq = V.logq, T.neg_ids = V.ids;
        /* a rank with no pin at all (served or fetched) has no history either: it samples no window */
        T.logq = logq;
        if (!rc && ctx->rank == 0) {
            sp_stage_path(ctx, "users", "loss.tsv", path, sizeof path);
            snprintf(loss_tmp, sizeof loss_tmp, "%s.tmp", path);
            if (!(loss_f = fopen(loss_tmp, "w"))) rc = sp_err(SP_EIO, "%s: %s", loss_tmp, strerror(errno));
            else fprintf(loss_f, "epoch\tstep\tloss\tlr\ttau\tseconds\n");
        }
    }
    rc = sp_dist_agree(rc);
    double t_train = sp_now();
    if (!rc) rc = train_model(ctx, &T, &S, loss_f, &steps);
    t_train = sp_now() - t_train;
    if (loss_f) {
        if (fclose(loss_f) && !rc) rc = sp_err(SP_EIO, "%s: write failed", loss_tmp);
        sp_stage_path(ctx, "users", "loss.tsv", path, sizeof path);
        if (!rc && rename(loss_tmp, path)) rc = sp_err(SP_EIO, "%s: %s", path, strerror(errno));
        if (rc) remove(loss_tmp);
    }
    if (!rc && ctx->rank == 0) {
        sp_stage_path(ctx, "users", "model.bin", path, sizeof path);
        rc = sp_seq_model_write(path, &S, NULL);
        if (!rc) rc = sp_stage_output_file(res, ctx, "users", "model.bin");
        if (!rc) rc = sp_stage_output_file(res, ctx, "users", "loss.tsv");
    }
    rc = sp_dist_agree(rc);
    /* 4. encode the users whose vectors cannot be carried over */
    uint64_t version = encoder_version(&S, items_digest, uc.board_weight), pversion = 0, carried = 0, active = 0;
    sp_user_set old = {0};
    int carry = 0;
    if (!rc && have_prev && !ctx->full) {
        sp_owner_filter f = {ctx->rank, ctx->size};
        rc = users_load_filtered(&pc, &f, &old, &pversion);
        uint64_t mismatch = old.n && pversion != version;
        rc = sp_dist_agree(rc);
        if (!rc) rc = sp_dist_max_u64(&mismatch, 1); /* one rank's mismatch means every rank re-encodes */
        carry = !rc && !mismatch;
    }
    rc = sp_dist_agree(rc);
    if (!rc && ctx->rank == 0)
        SP_INFO("users_encode_plan", "mode=%s reason=%s", carry ? "incremental" : "full",
                ctx->full ? "\"--full\"" : !have_prev ? "\"no previous date\""
                : carry ? "\"same encoder version as the previous date\""
                        : "\"the encoder or the item embeddings changed since the previous date\"");
    float *vec = NULL;
    uint64_t *todo = NULL, ntodo = 0;
    uint64_t missing = 0;
    if (!rc && (!(vec = malloc(4 * (h.n * (uint64_t)V.d + 1))) || !(todo = malloc(8 * (h.n + 1))))) rc = SP_ENOMEM;
    sp_idrow *oi = NULL;
    if (!rc && carry && old.n) {
        if (!(oi = malloc(sizeof *oi * old.n))) rc = SP_ENOMEM;
        for (uint64_t i = 0; !rc && i < old.n; i++) oi[i] = (sp_idrow){old.ids[i], i};
        if (!rc) sp_idrow_sort(oi, old.n);
    }
    for (uint64_t u = 0; !rc && u < h.n; u++) {
        int is_active = h.last_day[u] == ctx->day_ms;
        active += is_active;
        uint64_t o = carry && !is_active && oi ? sp_idrow_find(oi, old.n, h.user[u]) : UINT64_MAX;
        if (o != UINT64_MAX && old.d == V.d) {
            memcpy(vec + u * V.d, old.vec + o * old.d, 4 * (size_t)V.d);
            carried++;
        } else todo[ntodo++] = u;
    }
    free(oi);
    sp_user_set_free(&old);
    double t_enc = sp_now();
    if (!rc)
        rc = sq_encode_users(&S.m, &h, &it, todo, ntodo, (int64_t)(uc.window_days * (double)SP_DAY_MS), uc.threads, vec,
                             &missing);
    t_enc = sp_now() - t_enc;
    rc = sp_dist_agree(rc);
    /* 4b. sequence.board_weight: the encoded users' vectors blended with their boards' (same id) */
    uint64_t blended = 0;
    if (!rc && uc.board_weight > 0) {
        uint64_t *bu = malloc(8 * (ntodo + 1));
        if (!bu) rc = SP_ENOMEM;
        for (uint64_t i = 0; !rc && i < ntodo; i++) bu[i] = h.user[todo[i]];
        rc = sp_dist_agree(rc);
        if (!rc) rc = sp_item_view_fetch_boards(ctx, bu, ntodo, &V);
        free(bu);
        for (uint64_t i = 0; !rc && i < ntodo; i++) {
            uint64_t row = sp_idrow_find(V.bidx, V.nb, h.user[todo[i]]);
            if (row == UINT64_MAX) continue;
            blend(vec + todo[i] * V.d, V.bvec + row * V.d, V.d, (float)uc.board_weight);
            blended++;
        }
    }
    /* 5. this rank's user vectors */
    if (!rc) {
        sp_sfile_w *w = NULL;
        uint64_t meta[4] = {(uint64_t)ctx->rank, (uint64_t)ctx->size, (uint64_t)V.d, version};
        sp_stage_part(ctx, "users", ctx->rank, ctx->size, name, sizeof name, path, sizeof path);
        rc = sp_sfile_create(&w, path, "uemb");
        if (!rc) rc = sp_sfile_put(w, "meta", 8, meta, 4);
        if (!rc) rc = sp_sfile_put(w, "user_ids", 8, h.user, h.n);
        if (!rc) rc = sp_sfile_put(w, "user_vecs", 4, vec, h.n * (uint64_t)V.d);
        if (w) rc = sp_stage_commit_part(res, w, rc, name, path);
    }
    rc = sp_dist_agree(rc);
    uint64_t c[11] = {h.n, active, ntodo, carried, hs.appended, hs.duplicates, hs.trimmed, h.nactions,
                      hist_bytes, missing, blended};
    if (!rc) rc = sp_dist_sum_u64(c, 11);
    if (!rc && ctx->rank == 0)
        SP_INFO("users_done", "users=%" PRIu64 " active=%" PRIu64 " encoded=%" PRIu64 " carried=%" PRIu64
                " blended=%" PRIu64 " appended=%" PRIu64 " duplicates=%" PRIu64 " trimmed=%" PRIu64 " actions=%" PRIu64
                " history_bytes_per_action=%.2f train_seconds=%.1f encode_seconds=%.1f seconds=%.1f",
                c[0], c[1], c[2], c[3], c[10], c[4], c[5], c[6], c[7], c[7] ? (double)c[8] / (double)c[7] : 0.0,
                t_train, t_enc, sp_now() - t0);
    if (!rc && ctx->rank == 0 && uc.board_weight > 0 && c[2] && !c[10])
        SP_WARN("users_board_weight_unused", "encoded=%" PRIu64 " reason=\"sequence.board_weight is set but no encoded "
                "user has a board with its id: the vectors are the encoder's alone (the blend is for inputs where "
                "board k holds user k's items)\"", c[2]);
    if (!rc && ctx->rank == 0 && c[9] && c[9] * 10 > c[7])
        SP_WARN("users_unembedded_pins", "reads=%" PRIu64 " history_actions=%" PRIu64 " reason=\"over a tenth of the "
                "history reads name pins without an item vector (not in this date's graph): those actions carry no "
                "item signal; check that events and pin_board.tsv use the same pin ids\"", c[9], c[7]);
    static const char *const cn[11] = {"users", "active", "encoded", "carried", "actions_appended",
                                       "duplicates", "trimmed", "history_actions", "history_bytes",
                                       "unembedded_pins_read", "board_blended"};
    for (int i = 0; i < 11; i++) sp_stage_count(res, cn[i], ctx->rank == 0 ? c[i] : 0);
    sp_stage_count(res, "train_steps", ctx->rank == 0 ? (uint64_t)steps : 0);
    free(vec);
    free(todo);
    free(T.train);
    free(buf);
    sp_seq_state_free(&S);
    sp_item_view_free(&V);
    sq_hist_free(&h);
    return rc;
}
