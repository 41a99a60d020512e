/* train_joint (train_joint.h): the user-entity task of the train stage. */
#include "train_joint.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist.h"
#include "log.h"
#include "nn.h"

static int grow_f(float **p, size_t n) {
    float *t = realloc(*p, 4 * n + 4);
    if (!t) return SP_ENOMEM;
    *p = t;
    return SP_OK;
}

int sp_joint_init(sp_joint *J, const sp_run_ctx *ctx, const sp_sage_data *D, int d, int64_t steps_per_epoch) {
    memset(J, 0, sizeof *J);
    J->rank = ctx->rank, J->size = ctx->size, J->d = d, J->npins = D->npins, J->ext = D->ext;
    J->w = sp_config_f64(ctx->cfg, "train", "w_user");
    J->refresh = sp_config_int(ctx->cfg, "sequence", "joint_refresh");
    int rc = sp_users_cfg_read(ctx, &J->uc);
    J->uc.mc.d_item = d;
    sp_run_ctx pc;
    char pdate[16];
    int have_prev = !rc && sp_users_find_prev(ctx, J->uc.lookback, &pc, pdate);
    if (!rc) rc = sp_users_history(ctx, &J->uc, &pc, have_prev, &J->h, NULL);
    uint64_t np = D->npins, *cnt = NULL;
    sq_action *buf = NULL;
    if (!rc) {
        J->idx = malloc(sizeof *J->idx * (np + 1));
        J->table = malloc(4 * (D->n * (size_t)d + 1));
        J->logq = malloc(4 * (np + 1));
        J->train = malloc(8 * (J->h.n + 1));
        cnt = calloc(np + 1, 8);
        for (uint64_t u = 0; u < J->h.n; u++) J->longest = J->h.nact[u] > J->longest ? J->h.nact[u] : J->longest;
        buf = malloc(sizeof *buf * (J->longest + 1));
        J->acts = sq_acts_new();
        if (!J->idx || !J->table || !J->logq || !J->train || !cnt || !buf || !J->acts) rc = SP_ENOMEM;
    }
    if (!rc) {
        for (uint64_t v = 0; v < np; v++) J->idx[v] = (sp_idrow){D->ext[v], v};
        sp_idrow_sort(J->idx, np);
        J->it = (sq_items){np, d, J->table, J->idx};
    }
    /* trainable users, and each pin's count as a target (every action after a history's first) */
    uint64_t g[3] = {0, 0, 0}; /* users, targets, trained positions */
    for (uint64_t u = 0; !rc && u < J->h.n; u++) {
        uint64_t n = J->h.nact[u];
        if (n < 2) continue;
        J->train[J->ntrain++] = u;
        if ((rc = sq_hist_user(&J->h, u, buf, n))) break;
        for (uint64_t j = 1; j < n; j++) {
            uint64_t row = sq_items_row(&J->it, buf[j].pin);
            if (row != UINT64_MAX) cnt[row]++, g[1]++;
        }
        g[2] += n - 1 < (uint64_t)J->uc.positions ? n - 1 : (uint64_t)J->uc.positions;
    }
    rc = sp_dist_agree(rc);
    g[0] = J->ntrain;
    if (!rc) rc = sp_dist_sum_u64(g, 3);
    for (uint64_t a = 0; !rc && a < np; a += 1u << 26)
        rc = sp_dist_sum_u64(cnt + a, (int)(np - a < (1u << 26) ? np - a : (1u << 26)));
    if (!rc) {
        /* one pass over this rank's users per epoch; a block's candidates hold 2·bq targets (bq queries) */
        int64_t spe = steps_per_epoch > 0 ? steps_per_epoch : 1;
        J->per_step = (J->ntrain + (uint64_t)spe - 1) / (uint64_t)spe;
        double bq = (double)g[2] / (double)spe / (double)J->size;
        if (bq > J->uc.inbatch) bq = J->uc.inbatch;
        double unif = (double)sp_config_int(ctx->cfg, "train", "negatives") / (double)(np ? np : 1);
        for (uint64_t v = 0; v < np; v++)
            J->logq[v] = (float)log(2 * bq * (g[1] ? (double)cnt[v] / (double)g[1] : 0) + unif + 1e-12);
        rc = sp_seq_state_init(&J->S, &J->uc);
    }
    int warm = 0;
    char prev_model[PATH_MAX + 64];
    if (have_prev) sp_stage_path(&pc, "users", "model.bin", prev_model, sizeof prev_model);
    if (!rc && have_prev && access(prev_model, F_OK) == 0) {
        rc = sp_seq_model_read(prev_model, &J->S, &warm);
        if (!rc && ctx->rank == 0) {
            if (warm) SP_INFO("joint_warm_start", "model=%s step=%" PRId64, sp_log_q(prev_model), J->S.step);
            else SP_WARN("joint_warm_start_skipped", "model=%s reason=\"model dimensions changed\"",
                         sp_log_q(prev_model));
        }
    } else if (!rc && have_prev && ctx->rank == 0) /* the previous users stage completed: its model should be there */
        SP_WARN("joint_warm_start_missing", "model=%s reason=\"the previous date's users stage completed but its "
                "model is gone: the user encoder starts from scratch\"", sp_log_q(prev_model));
    if (!rc && !(J->grad = calloc(J->S.m.n + 1, 4))) rc = SP_ENOMEM;
    if (!rc && ctx->rank == 0)
        SP_INFO("joint_begin",
                "users=%" PRIu64 " targets=%" PRIu64 " windows_per_step=%" PRIu64 " w_user=%g params=%zu",
                g[0], g[1], J->per_step, J->w, J->S.m.n);
    free(cnt);
    free(buf);
    return sp_dist_agree(rc);
}

void sp_joint_batch_free(sp_joint_batch *b) {
    sq_packer_free(&b->pk);
    sp_users_queries_free(&b->Q);
    free(b->buf);
    memset(b, 0, sizeof *b);
}

void sp_joint_free(sp_joint *J) {
    sq_hist_free(&J->h);
    sp_seq_state_free(&J->S);
    sq_acts_free(J->acts);
    free(J->idx), free(J->table), free(J->logq), free(J->train);
    free(J->sout), free(J->dsout), free(J->grad), free(J->q), free(J->dq), free(J->cand);
    free(J->dc), free(J->clogq), free(J->cid), free(J->crow);
    sp_users_loss_ws_free(&J->lw);
    memset(J, 0, sizeof *J);
}

int sp_joint_refresh(sp_joint *J, const nn_backend *be, const sp_sage_params *P, const sp_sage_graph *g) {
    return sp_sage_embed_all(be, P, g, J->table);
}

static uint64_t gcd64(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t t = a % b;
        a = b, b = t;
    }
    return a;
}

int sp_joint_fill(const sp_joint *J, sp_joint_batch *b, int64_t step) {
    sq_packer_reset(&b->pk);
    b->nq = 0;
    if (!J->ntrain || !J->per_step) return SP_OK;
    if (!b->buf && !(b->buf = malloc(sizeof *b->buf * (J->longest + 1)))) return SP_ENOMEM;
    sp_users_sampler T = {&J->uc, &J->h, &J->it, b->buf};
    uint64_t n = J->ntrain, spe = (n + J->per_step - 1) / J->per_step;
    uint64_t epoch = (uint64_t)step / spe, i0 = ((uint64_t)step % spe) * J->per_step;
    /* this epoch's order: an affine permutation i -> (a·i + c) mod n with gcd(a, n) = 1 */
    sp_rng pr;
    sp_rng_init(&pr, J->uc.seed, SP_RNG_TRAIN + 401, epoch * (uint64_t)J->size + (uint64_t)J->rank);
    uint64_t a = 1 + (n > 1 ? sp_rng_below(&pr, n - 1) : 0), c = sp_rng_below(&pr, n);
    while (gcd64(a, n) != 1) a = a + 1 < n ? a + 1 : 1;
    sp_rng r;
    sp_rng_init(&r, J->uc.seed, SP_RNG_TRAIN + 400, (uint64_t)step * (uint64_t)J->size + (uint64_t)J->rank);
    for (uint64_t k = 0; k < J->per_step && i0 + k < n; k++) {
        uint64_t i = (uint64_t)(((unsigned __int128)a * (i0 + k) + c) % n);
        int rc = sp_users_sample(&T, J->train[i], &r, &b->pk, &b->Q, &b->nq);
        if (rc) return rc;
    }
    return SP_OK;
}

int sp_joint_step(sp_joint *J, sp_joint_batch *b, const float *out, uint32_t ubase, uint32_t negbase,
                  const uint32_t *neg, uint32_t nneg, float *dout, float scale, float *loss) {
    const sp_users_cfg *uc = &J->uc;
    int d = J->d;
    uint64_t nq = b->nq;
    *loss = 0, J->dtau = 0;
    memset(J->grad, 0, 4 * J->S.m.n);
    memset(dout + (size_t)ubase * d, 0, 4 * 2 * nq * (size_t)d);
    if (!nq) return SP_OK;
    size_t N = (size_t)b->pk.N, blk = (size_t)uc->inbatch, ncmax = 2 * blk + nneg;
    if (N * d > J->cap_n) {
        if (grow_f(&J->sout, N * d) || grow_f(&J->dsout, N * d)) return SP_ENOMEM;
        J->cap_n = N * d;
    }
    if (blk * d > J->cap_q) {
        if (grow_f(&J->q, blk * d) || grow_f(&J->dq, blk * d)) return SP_ENOMEM;
        J->cap_q = blk * d;
    }
    if (ncmax > J->cap_c) {
        uint64_t *ci = realloc(J->cid, 8 * ncmax);
        uint32_t *cr = realloc(J->crow, 4 * ncmax);
        if (ci) J->cid = ci;
        if (cr) J->crow = cr;
        if (!ci || !cr || grow_f(&J->cand, ncmax * d) || grow_f(&J->dc, ncmax * d) || grow_f(&J->clogq, ncmax))
            return SP_ENOMEM;
        J->cap_c = ncmax;
    }
    sq_batch sb = sq_packer_batch(&b->pk);
    sq_dropout drop = sp_users_dropout(uc, J->S.step);
    int rc = sq_forward_train(&J->S.m, &sb, J->acts, J->sout, &drop);
    if (rc) return rc;
    memset(J->dsout, 0, 4 * N * d);
    const uint32_t *tgt = b->Q.tgt;
    for (uint64_t i0 = 0; i0 < nq; i0 += blk) {
        uint32_t bq = (uint32_t)(nq - i0 < blk ? nq - i0 : blk), nc = 2 * bq + nneg;
        float wgt = (float)bq / (float)nq;
        uint32_t *rows = J->crow; /* each candidate's row of out */
        for (uint32_t i = 0; i < bq; i++) memcpy(J->q + (size_t)i * d, J->sout + b->Q.qrow[i0 + i] * d, 4 * (size_t)d);
        for (uint32_t j = 0; j < nc; j++) {
            uint32_t row, node;
            if (j < 2 * bq) { /* in-batch targets: next actions, then all-action targets */
                uint64_t k = j < bq ? 2 * (i0 + j) : 2 * (i0 + j - bq) + 1;
                row = ubase + (uint32_t)k, node = tgt[k];
            } else row = negbase + (j - 2 * bq), node = neg[j - 2 * bq];
            memcpy(J->cand + (size_t)j * d, out + (size_t)row * d, 4 * (size_t)d);
            J->cid[j] = J->ext[node];
            J->clogq[j] = J->logq[node];
            rows[j] = row;
        }
        const uint64_t *eo = uc->mask_history ? b->Q.excl_off + i0 : NULL;
        float an = (float)(J->w * uc->w_next) * wgt, aa = (float)(J->w * uc->w_all) * wgt;
        rc = sp_users_block_loss(&J->lw, J->q, J->cand, J->cid, J->clogq, eo, b->Q.excl, bq, nc, d, J->S.tau, an, aa,
                                 scale, J->dq, J->dc, loss, &J->dtau);
        if (rc) return rc;
        for (uint32_t i = 0; i < bq; i++) {
            float *dst = J->dsout + b->Q.qrow[i0 + i] * d;
            const float *g = J->dq + (size_t)i * d;
            for (int k = 0; k < d; k++) dst[k] += scale * g[k];
        }
        for (uint32_t j = 0; j < nc; j++) {
            float *dst = dout + (size_t)rows[j] * d;
            const float *g = J->dc + (size_t)j * d;
            for (int k = 0; k < d; k++) dst[k] += g[k];
        }
    }
    return sq_backward(&J->S.m, &sb, J->acts, J->dsout, J->grad, NULL);
}

int sp_joint_update(sp_joint *J, int64_t s, int64_t total) {
    float extra = J->dtau;
    int rc = SP_OK;
    if (J->size > 1 && ((rc = sp_dist_sum_f32(J->grad, J->S.m.n)) || (rc = sp_dist_sum_f32(&extra, 1)))) return rc;
    sp_seq_state_step(&J->S, &J->uc, J->grad, extra, s, total);
    return SP_OK;
}

int sp_joint_write(const sp_joint *J, const char *path) { return sp_seq_model_write(path, &J->S, NULL); }
