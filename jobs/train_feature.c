/* train_feature: the entity-feature task (train_feature.h). */
#include "train_feature.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "log.h"
#include "sp_base.h"
#include "nn.h"

/* Pin l of g (local index) has tokens or a non-zero dense feature. */
static int has_content(const sp_sage_graph *g, uint64_t l) {
    if (g->tok_off && g->tok_off[l + 1] > g->tok_off[l]) return 1;
    for (int f = 0; g->dense && f < g->dense_dim; f++)
        if (g->dense[l * (size_t)g->dense_dim + f] != 0.f) return 1;
    return 0;
}

int sp_feat_init(sp_feat *F, const sp_sage_data *D, int K, int d, double w, int owned) {
    memset(F, 0, sizeof *F);
    if (w <= 0) return SP_OK;
    /* the pins with content among those D holds (D's own numbering: every pin, or over an owned view this
     * rank's, then summed over the ranks); F->has keeps them for a replicated view */
    sp_sage_graph own = {.dense_dim = D->dense_dim, .dense = D->dense, .tok_off = D->tok_rows ? D->tok_off : NULL};
    uint64_t np = owned ? D->own_np : D->npins, c = 0;
    if (!owned && !(F->has = calloc(np + 1, 1)))
        return sp_err(SP_ENOMEM, "train: entity-feature task: %" PRIu64 " pins", np);
    for (uint64_t u = 0; u < np; u++) {
        int h = has_content(&own, u);
        if (F->has) F->has[u] = (uint8_t)h;
        c += (uint64_t)h;
    }
    int rc = owned ? sp_dist_sum_u64(&c, 1) : SP_OK;
    if (rc || !c) {
        if (!rc) SP_WARN("feature_task_off", "reason=\"train.w_feature is set but no pin has tokens or dense features\"");
        sp_feat_free(F);
        return rc;
    }
    if (!owned) { /* the whole graph without neighbours and degrees (owned: each step's subgraph, sp_feat_step_sub) */
        F->zoff = calloc(D->n + 1, sizeof *F->zoff);
        F->zdeg = calloc(D->n + 1, sizeof *F->zdeg);
        if (!F->zoff || !F->zdeg) {
            sp_feat_free(F);
            return sp_err(SP_ENOMEM, "train: entity-feature task: %" PRIu64 " nodes", D->n);
        }
        F->g = D->g;
        F->g.logdeg = F->zdeg;
        F->g.pn_off = F->g.bn_off = F->zoff;
    }
    F->npins = D->npins, F->ncontent = c, F->K = K, F->d = d, F->w = (float)w, F->owned = owned;
    SP_INFO("feature_task", "w_feature=%g pins_with_content=%" PRIu64 " of=%" PRIu64, w, F->ncontent, D->npins);
    return SP_OK;
}

void sp_feat_free(sp_feat *F) {
    free(F->has), free(F->zoff), free(F->zdeg);
    free(F->tgt), free(F->row), free(F->dq), free(F->cand), free(F->dc), free(F->scratch), free(F->cid);
    free(F->pos);
    sp_sage_plan_free(&F->plan);
    sp_sage_acts_free(&F->acts);
    memset(F, 0, sizeof *F);
}

int sp_feat_step(sp_feat *F, const sp_sage_params *P, const uint32_t *targets, uint32_t nq, uint32_t nneg,
                 const float *out, float tau, uint32_t blk, float scale, float *dout, float *loss, float *dtau) {
    return sp_feat_step_sub(F, P, targets, NULL, NULL, nq, nneg, out, tau, blk, scale, dout, loss, dtau);
}

int sp_feat_step_sub(sp_feat *F, const sp_sage_params *P, const uint32_t *targets, const sp_sage_graph *sg,
                     const uint32_t *lt, uint32_t nq, uint32_t nneg, const float *out, float tau, uint32_t blk,
                     float scale, float *dout, float *loss, float *dtau) {
    F->nf = 0;
    if (F->w <= 0 || nq == 0) return SP_OK;
    if (F->owned) { /* the step's subgraph, without neighbours and degrees */
        if (!sg || !lt) return sp_err(SP_EINTERNAL, "train: entity-feature task over an owned view without a subgraph");
        size_t oz = F->capz, od = F->capzd; /* zeros: only what grows needs clearing */
        if (sp_grow((void **)&F->zoff, &F->capz, sg->n + 1, 8) || sp_grow((void **)&F->zdeg, &F->capzd, sg->n + 1, 4))
            return sp_err(SP_ENOMEM, "train: entity-feature task: %" PRIu64 " nodes", sg->n);
        memset(F->zoff + oz, 0, 8 * (F->capz - oz));
        memset(F->zdeg + od, 0, 4 * (F->capzd - od));
        F->g = *sg;
        F->g.logdeg = F->zdeg;
        F->g.pn_off = F->g.bn_off = F->zoff;
    }
    int d = F->d;
    if (nq > F->cap_q) {
        uint32_t *t = realloc(F->tgt, 4 * (size_t)nq), *r = t ? realloc(F->row, 4 * (size_t)nq) : NULL;
        float *q = r ? realloc(F->dq, 4 * (size_t)nq * d) : NULL;
        if (t) F->tgt = t;
        if (r) F->row = r;
        if (q) F->dq = q;
        if (!q) return sp_err(SP_ENOMEM, "train: entity-feature task: %u queries", nq);
        F->cap_q = nq;
    }
    /* at most one softmax block of queries per step: the task costs about one block of the item loss */
    uint32_t nf = 0, cap = blk < nq ? blk : nq;
    for (uint32_t i = 0; i < 2 * nq && nf < cap; i++) /* queries first, then positives */
        if (targets[i] < F->npins && (F->owned ? has_content(&F->g, lt[i]) : F->has[targets[i]]))
            F->tgt[nf] = F->owned ? lt[i] : targets[i], F->row[nf++] = i;
    if (!nf) return SP_OK;
    uint32_t nc = nf + nneg; /* candidates: the pins' own graph rows, then the shared negatives */
    size_t ncmax = nc;
    if (ncmax > F->cap_c) {
        float *c = realloc(F->cand, 4 * ncmax * (size_t)d), *dc = c ? realloc(F->dc, 4 * ncmax * (size_t)d) : NULL;
        uint64_t *ci = dc ? realloc(F->cid, 8 * ncmax) : NULL;
        int *ps = ci ? realloc(F->pos, sizeof(int) * ncmax) : NULL;
        if (c) F->cand = c;
        if (dc) F->dc = dc;
        if (ci) F->cid = ci;
        if (ps) F->pos = ps;
        if (!ps) return sp_err(SP_ENOMEM, "train: entity-feature task: %zu candidates", ncmax);
        F->cap_c = ncmax;
    }
    if ((size_t)nf * ncmax > F->cap_s) {
        float *s = realloc(F->scratch, 4 * (size_t)nf * ncmax);
        if (!s) return sp_err(SP_ENOMEM, "train: entity-feature task: scratch of %zu", (size_t)nf * ncmax);
        F->scratch = s, F->cap_s = (size_t)nf * ncmax;
    }
    /* the pins from content alone: no id rows, no neighbours, no degrees */
    F->pv = *P;
    F->pv.emb = NULL;
    int rc = sp_sage_plan_build(&F->plan, &F->g, F->K, F->tgt, nf);
    if (!rc) rc = sp_sage_forward(&F->pv, &F->g, &F->plan, &F->acts);
    if (rc) return rc;
    /* query i's positive is column i: its own pin's graph row */
    for (uint32_t i = 0; i < nf; i++) {
        memcpy(F->cand + (size_t)i * d, out + (size_t)F->row[i] * d, 4 * (size_t)d);
        F->cid[i] = targets[F->row[i]]; /* the global node (tgt is the subgraph's over an owned view) */
        F->pos[i] = (int)i;
    }
    memcpy(F->cand + (size_t)nf * d, out + (size_t)2 * nq * d, 4 * (size_t)nneg * d);
    for (uint32_t j = 0; j < nneg; j++) F->cid[nf + j] = targets[2 * nq + j];
    float dt = 0, w = F->w;
    float l = nn_sampled_softmax(F->acts.out, F->cand, F->pos, F->cid, NULL, (int)nf, (int)nc, d, tau, F->dq, F->dc,
                                 &dt, F->scratch);
    *loss += w * l;
    *dtau += w * dt;
    for (size_t j = 0; j < (size_t)nf * d; j++) F->dq[j] *= w * scale;
    for (uint32_t i = 0; i < nf; i++) {
        float *r = dout + (size_t)F->row[i] * d;
        const float *g = F->dc + (size_t)i * d;
        for (int k = 0; k < d; k++) r[k] += w * g[k];
    }
    float *dneg = dout + (size_t)2 * nq * d;
    for (size_t j = 0; j < (size_t)nneg * d; j++) dneg[j] += w * F->dc[(size_t)nf * d + j];
    F->loss_sum += l;
    F->nf = nf;
    F->loss_n++;
    return SP_OK;
}

int sp_feat_backward(sp_feat *F, sp_sage_params *G, uint8_t *tok_touched) {
    if (!F->nf) return SP_OK;
    sp_sage_params gv = *G;
    gv.emb = NULL; /* no id rows on this path */
    int rc = sp_sage_backward(&F->pv, &F->g, &F->plan, &F->acts, F->dq, &gv, NULL, tok_touched);
    F->nf = 0;
    return rc;
}
