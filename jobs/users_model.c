/* users_model (users_model.h): the user encoder's config, history, model
 * file and window sampling, shared by the users and train stages. */
#include "users_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "ingest.h"
#include "nn.h"
#include "sfile.h"

#define MODEL_VERSION 1

int sp_users_cfg_read(const sp_run_ctx *ctx, sp_users_cfg *u) {
    const sp_config *c = ctx->cfg;
    memset(u, 0, sizeof *u);
    u->joint = !strcmp(sp_config_str(c, "sequence", "mode"), "joint");
    u->epochs = (int)sp_config_int(c, "sequence", "epochs");
    u->average = (int)sp_config_int(c, "sequence", "average_epochs");
    if (u->average > u->epochs) u->average = u->epochs;
    u->batch = (int)sp_config_int(c, "sequence", "batch");
    u->positions = (int)sp_config_int(c, "sequence", "positions");
    u->negatives = (int)sp_config_int(c, "sequence", "negatives");
    u->inbatch = (int)sp_config_int(c, "sequence", "inbatch");
    u->threads = (int)sp_config_int(c, "sequence", "threads");
    u->lookback = (int)sp_config_int(c, "sequence", "lookback_days");
    u->learn_tau = sp_config_bool(c, "sequence", "learn_tau");
    u->mask_history = sp_config_bool(c, "sequence", "mask_history");
    u->max_history = (uint32_t)sp_config_int(c, "sequence", "max_history");
    u->lr = sp_config_f64(c, "sequence", "lr");
    u->lr_min = sp_config_f64(c, "sequence", "lr_min");
    u->wd = sp_config_f64(c, "sequence", "weight_decay");
    u->dropout = sp_config_f64(c, "sequence", "dropout");
    u->board_weight = sp_config_f64(c, "sequence", "board_weight");
    u->warmup = sp_config_int(c, "sequence", "warmup_steps");
    u->tau = sp_config_f64(c, "sequence", "tau");
    u->tau_min = sp_config_f64(c, "sequence", "tau_min");
    u->w_next = sp_config_f64(c, "sequence", "w_next");
    u->w_all = sp_config_f64(c, "sequence", "w_all");
    u->window_days = sp_config_f64(c, "sequence", "window_days");
    u->seed = (uint64_t)sp_config_int(c, "sequence", "seed");
    char *words[64], *store = NULL;
    int nact = 0, nsurf = 0;
    int rc = sp_config_words(c, "input", "actions", words, 64, &nact, &store);
    free(store);
    store = NULL;
    if (!rc) rc = sp_config_words(c, "input", "surfaces", words, 64, &nsurf, &store);
    free(store);
    if (rc) return rc;
    u->mc = (sq_cfg){.d_item = 0,
                     .n_actions = nact,
                     .n_surfaces = nsurf > 0 ? nsurf : 1,
                     .d_e = (int)sp_config_int(c, "sequence", "action_dim"),
                     .width = (int)sp_config_int(c, "sequence", "width"),
                     .layers = (int)sp_config_int(c, "sequence", "layers"),
                     .heads = (int)sp_config_int(c, "sequence", "heads"),
                     .max_len = (int)sp_config_int(c, "sequence", "max_len")};
    if (u->mc.width % u->mc.heads)
        return sp_err(SP_ECONFIG, "sequence.width %d is not a multiple of sequence.heads %d", u->mc.width, u->mc.heads);
    return SP_OK;
}

/* ---- history ---- */

/* The nearest earlier date (at most lookback days back) whose users stage has a marker: 1 and *pc set, or 0. */
int sp_users_find_prev(const sp_run_ctx *ctx, int lookback, sp_run_ctx *pc, char *date_buf) {
    sp_run_ctx cur = *ctx;
    for (int back = 1; back <= lookback; back++) {
        sp_stage_prev_ctx(&cur, pc, date_buf);
        char marker[PATH_MAX + 64];
        sp_stage_path(pc, "users", "_SUCCESS.json", marker, sizeof marker);
        if (access(marker, F_OK) == 0) return 1;
        cur = *pc;
        cur.date = date_buf; /* the next step back starts from here (date_buf is rewritten in place) */
    }
    return 0;
}

/* This rank's users' history at the previous date (empty when there is none). */
static int load_prev_history(const sp_run_ctx *ctx, const sp_run_ctx *pc, int have_prev, sq_hist *h) {
    memset(h, 0, sizeof *h);
    if (!have_prev) return SP_OK;
    int n = 0, rc = sp_stage_ranks(pc, "users", &n);
    sp_owner_filter f = {ctx->rank, ctx->size};
    char name[96], path[PATH_MAX + 128], dir[PATH_MAX + 64];
    sp_stage_path(pc, "users", NULL, dir, sizeof dir);
    for (int r = 0; !rc && r < n; r++) {
        if (n == ctx->size && r != ctx->rank) continue; /* same partitioning: only our own part */
        sp_part_name("hist", r, n, name, sizeof name);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        rc = sq_hist_load(h, path, n == ctx->size ? NULL : sp_users_owned, &f);
    }
    if (!rc) rc = sq_hist_sort(h);
    return rc;
}

/* The day's events of this rank's users, sorted as ingest writes them: (user, ts, pin, action). */
static int cmp_event(const void *x, const void *y) {
    const sp_event_rec *a = x, *b = y;
    if (a->user != b->user) return a->user < b->user ? -1 : 1;
    if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
    if (a->pin != b->pin) return a->pin < b->pin ? -1 : 1;
    return (a->action > b->action) - (a->action < b->action);
}

static int load_events(const sp_run_ctx *ctx, sp_event_rec **out, uint64_t *nout) {
    *out = NULL, *nout = 0;
    int n = 0, rc = sp_stage_ranks(ctx, "ingest", &n);
    size_t cap = 0;
    char path[PATH_MAX + 64];
    for (int r = 0; !rc && r < n; r++) {
        if (n == ctx->size && r != ctx->rank) continue;
        sp_sfile_r *f;
        const sp_event_rec *ev;
        uint64_t ne;
        sp_stage_part(ctx, "ingest", r, n, NULL, 0, path, sizeof path);
        if ((rc = sp_sfile_open(&f, path, "ingest"))) break;
        rc = sp_sfile_get(f, "events", sizeof *ev, (const void **)&ev, &ne);
        for (uint64_t i = 0; !rc && i < ne; i++) {
            if (n != ctx->size && sp_owner(SP_USER, ev[i].user, ctx->size) != ctx->rank) continue;
            if (sp_grow((void **)out, &cap, *nout + 1, sizeof **out)) rc = SP_ENOMEM;
            else (*out)[(*nout)++] = ev[i];
        }
        sp_sfile_close(f);
    }
    if (!rc && n != ctx->size && *nout) qsort(*out, *nout, sizeof **out, cmp_event);
    return rc;
}

int sp_users_history(const sp_run_ctx *ctx, const sp_users_cfg *uc, const sp_run_ctx *pc, int have_prev,
                     sq_hist *h, sq_hist_stats *hs) {
    sq_hist prev = {0};
    sp_event_rec *ev = NULL;
    uint64_t nev = 0;
    int rc = load_prev_history(ctx, pc, have_prev, &prev);
    if (!rc) rc = load_events(ctx, &ev, &nev);
    if (!rc) rc = sq_hist_merge(&prev, ev, nev, uc->max_history, ctx->day_ms, h, hs);
    sq_hist_free(&prev);
    free(ev);
    return rc;
}

/* ---- the model file (sfile "seqmodel"): dimensions, parameters, Adam moments, step, temperature ---- */

int sp_seq_state_init(sp_seq_state *s, const sp_users_cfg *uc) {
    memset(s, 0, sizeof *s);
    int rc = sq_model_init(&s->m, &uc->mc, uc->seed);
    if (!rc && (!(s->am = calloc(s->m.n + 1, 4)) || !(s->av = calloc(s->m.n + 1, 4)))) rc = SP_ENOMEM;
    s->tau = (float)uc->tau;
    if (rc) sp_seq_state_free(s);
    return rc;
}

void sp_seq_state_free(sp_seq_state *s) {
    free(s->am);
    free(s->av);
    sq_model_free(&s->m);
    memset(s, 0, sizeof *s);
}

static void cfg_words(const sq_cfg *c, uint64_t w[9]) {
    uint64_t v[9] = {MODEL_VERSION, (uint64_t)c->d_item, (uint64_t)c->n_actions, (uint64_t)c->n_surfaces,
                     (uint64_t)c->d_e, (uint64_t)c->width, (uint64_t)c->layers, (uint64_t)c->heads,
                     (uint64_t)c->max_len};
    memcpy(w, v, sizeof v);
}

int sp_seq_model_write(const char *path, const sp_seq_state *s, uint64_t *xxh) {
    uint64_t meta[9];
    cfg_words(&s->m.c, meta);
    float tau[3] = {s->tau, s->tau_m, s->tau_v};
    int64_t step = s->step;
    sp_sfile_w *w;
    int rc = sp_sfile_create(&w, path, "seqmodel");
    if (rc) return rc;
    rc = sp_sfile_put(w, "meta", 8, meta, 9);
    if (!rc) rc = sp_sfile_put(w, "step", 8, &step, 1);
    if (!rc) rc = sp_sfile_put(w, "tau", 4, tau, 3);
    if (!rc) rc = sp_sfile_put(w, "params", 4, s->m.p, s->m.n);
    if (!rc) rc = sp_sfile_put(w, "adam_m", 4, s->am, s->m.n);
    if (!rc) rc = sp_sfile_put(w, "adam_v", 4, s->av, s->m.n);
    if (rc) {
        sp_sfile_discard(w);
        return rc;
    }
    return sp_sfile_commit(w, xxh);
}

int sp_seq_model_read(const char *path, sp_seq_state *s, int *loaded) {
    *loaded = 0;
    sp_sfile_r *r;
    int rc = sp_sfile_open(&r, path, "seqmodel");
    if (rc) return rc;
    const uint64_t *meta;
    const int64_t *step;
    const float *tau, *p, *am, *av;
    uint64_t n[6], want[9];
    cfg_words(&s->m.c, want);
    rc = sp_sfile_get(r, "meta", 8, (const void **)&meta, &n[0]);
    if (!rc) rc = sp_sfile_get(r, "step", 8, (const void **)&step, &n[1]);
    if (!rc) rc = sp_sfile_get(r, "tau", 4, (const void **)&tau, &n[2]);
    if (!rc) rc = sp_sfile_get(r, "params", 4, (const void **)&p, &n[3]);
    if (!rc) rc = sp_sfile_get(r, "adam_m", 4, (const void **)&am, &n[4]);
    if (!rc) rc = sp_sfile_get(r, "adam_v", 4, (const void **)&av, &n[5]);
    if (!rc && (n[0] != 9 || n[1] != 1 || n[2] != 3 || n[4] != n[3] || n[5] != n[3]))
        rc = sp_err(SP_EFORMAT, "%s: user model sections have inconsistent sizes", path);
    if (!rc && !memcmp(meta, want, sizeof want) && n[3] == s->m.n) {
        memcpy(s->m.p, p, 4 * s->m.n);
        memcpy(s->am, am, 4 * s->m.n);
        memcpy(s->av, av, 4 * s->m.n);
        s->tau = tau[0], s->tau_m = tau[1], s->tau_v = tau[2];
        s->step = step[0];
        for (size_t i = 0; i < s->m.n; i++)
            if (!isfinite(s->m.p[i])) {
                rc = sp_err(SP_EFORMAT, "%s: parameter %zu is %g", path, i, (double)s->m.p[i]);
                break;
            }
        if (!rc) *loaded = 1;
    }
    sp_sfile_close(r);
    return rc;
}

/* ---- training windows ---- */

void sp_users_queries_free(sp_users_queries *Q) {
    free(Q->qrow), free(Q->tgt), free(Q->excl_off), free(Q->excl);
    memset(Q, 0, sizeof *Q);
}

/* Appends one sampled window of user u (history index) to the packer and its query positions. */
int sp_users_sample(const sp_users_sampler *T, uint64_t u, sp_rng *r, sq_packer *pk, sp_users_queries *Q,
                    uint64_t *nq) {
    uint64_t n = T->h->nact[u], M = (uint64_t)T->uc->mc.max_len;
    int rc = sq_hist_user(T->h, u, T->buf, n);
    if (rc) return rc;
    const sq_action *a = T->buf;
    /* c = index of the first action after the window: the latest window, or a random one in a long history */
    uint64_t c = n - 1;
    if (n - 1 > M) c = M + sp_rng_below(r, n - M);
    uint64_t s = c > M ? c - M : 0, base = pk->N;
    rc = sq_packer_add(pk, a + s, c - s, a[c].ts, T->it);
    if (rc) return rc;
    int64_t wms = (int64_t)(T->uc->window_days * (double)SP_DAY_MS);
    uint64_t P = (uint64_t)T->uc->positions, t0 = c - s > P ? c - P : s;
    for (uint64_t t = t0; t < c; t++) {
        uint64_t rn = sq_items_row(T->it, a[t + 1].pin);
        if (rn == UINT64_MAX) continue;
        /* all-action: a random action of (t, t + window] with an embedded pin (a few tries, else the next one) */
        uint64_t lo = t + 1, hi = n - 1; /* hi = the last action within the window (binary search; ts ascending) */
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo + 1) / 2;
            if (a[mid].ts <= a[t].ts + wms) lo = mid;
            else hi = mid - 1;
        }
        hi = lo;
        uint64_t ra = rn;
        for (int k = 0; k < 4; k++) {
            uint64_t j = t + 1 + sp_rng_below(r, hi - t), rr = sq_items_row(T->it, a[j].pin);
            if (rr != UINT64_MAX) {
                ra = rr;
                break;
            }
        }
        if (sp_grow((void **)&Q->qrow, &Q->cap_r, *nq + 1, 8) || sp_grow((void **)&Q->tgt, &Q->cap_t, 2 * (*nq + 1), 4))
            return SP_ENOMEM;
        Q->qrow[*nq] = base + (t - s);
        Q->tgt[2 * *nq] = (uint32_t)rn;
        Q->tgt[2 * *nq + 1] = (uint32_t)ra;
        if (T->uc->mask_history) { /* the pins seen up to t are not negatives of query t (eval excludes them too) */
            if (sp_grow((void **)&Q->excl_off, &Q->cap_eo, *nq + 2, 8)) return SP_ENOMEM;
            if (*nq == 0) Q->excl_off[0] = 0;
            uint64_t e = Q->excl_off[*nq];
            if (sp_grow((void **)&Q->excl, &Q->cap_e, e + (t - s) + 2, 8)) return SP_ENOMEM;
            for (uint64_t j = s; j <= t; j++) Q->excl[e++] = a[j].pin; /* candidates' ids are pin ids */
            Q->excl_off[*nq + 1] = e;
        }
        (*nq)++;
    }
    return SP_OK;
}

/* ---- training steps ---- */

void sp_users_loss_ws_free(sp_users_loss_ws *w) {
    free(w->pos), free(w->scratch);
    memset(w, 0, sizeof *w);
}

int sp_users_block_loss(sp_users_loss_ws *w, const float *q, const float *c, const uint64_t *cid, const float *logq,
                        const uint64_t *excl_off, const uint64_t *excl, uint32_t bq, uint32_t nc, int d, float tau,
                        float an, float aa, float scale, float *dq, float *dc, float *loss, float *dtau) {
    if (sp_grow((void **)&w->pos, &w->cap_p, 2 * (size_t)bq + 1, sizeof *w->pos) ||
        sp_grow((void **)&w->scratch, &w->cap_s, ((size_t)bq + 2) * nc, 4))
        return SP_ENOMEM;
    /* target 0: next action (query i -> candidate i), target 1: all-action (query i -> candidate bq + i), over
     * one set of logits (nn_sampled_softmax_multi: half the matrix products of two separate losses) */
    for (uint32_t i = 0; i < 2 * bq; i++) w->pos[i] = (int)i;
    float wt[2] = {an > 0 ? an : 0, aa > 0 ? aa : 0}, tg = 0;
    if (wt[0] == 0 && wt[1] == 0) {
        memset(dq, 0, 4 * (size_t)bq * d);
        if (dc) memset(dc, 0, 4 * (size_t)nc * d);
        return SP_OK;
    }
    *loss += nn_sampled_softmax_multi(q, c, 2, w->pos, wt, cid, logq, excl_off, excl, (int)bq, (int)nc, d, tau, dq, dc,
                                      &tg, NULL, w->scratch);
    *dtau += scale * tg;
    return SP_OK;
}

sq_dropout sp_users_dropout(const sp_users_cfg *uc, int64_t step) {
    return (sq_dropout){(float)uc->dropout, sp_mix64(uc->seed ^ 0x64726f70ULL) ^ (uint64_t)step};
}

float sp_seq_state_step(sp_seq_state *s, const sp_users_cfg *uc, const float *grad, float dtau, int64_t i,
                        int64_t total) {
    nn_adam_cfg adam = {0.9f, 0.999f, 1e-8f, (float)uc->wd}, adam_tau = {0.9f, 0.999f, 1e-8f, 0.f};
    float lr = nn_lr_at(i, uc->warmup, total, (float)uc->lr, (float)uc->lr_min);
    int64_t t = ++s->step;
    nn_adam_step(s->m.p, grad, s->am, s->av, s->m.n, &adam, t, lr);
    if (uc->learn_tau) {
        nn_adam_step(&s->tau, &dtau, &s->tau_m, &s->tau_v, 1, &adam_tau, t, lr);
        if (s->tau < (float)uc->tau_min) s->tau = (float)uc->tau_min;
    }
    return lr;
}

int sp_users_owned(uint64_t user, void *arg) {
    const sp_owner_filter *f = arg;
    return sp_owner(SP_USER, user, f->size) == f->rank;
}
