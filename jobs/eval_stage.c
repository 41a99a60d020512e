/* eval stage: held-out quality of the date's item embeddings (full-ranking
 * recall@K / NDCG@K on eval.test, users = boards by id, a board's own pins
 * excluded as train items: the LightGCN protocol), drift against the previous
 * date (mean cosine of the pins both dates embed, top-10 neighbour overlap
 * of a fixed sample), the loss and held-out curves of training, and the
 * quality gate (eval.min_recall: below it the stage fails with exit 5 and
 * nothing is published). Writes eval/report.json and eval/report.html. The
 * held-out metrics are split over the ranks (each loads the embeddings and
 * lists and scores its block of users; the ranks' sums make the means); rank
 * 0 computes the drift and writes the report. */
#include "eval_stage.h"

#include <cblas.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "idrow.h"
#include "infer_stage.h"
#include "fsutil.h"
#include "ingest.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "report.h"
#include "sfile.h"
#include "shard.h"
#include "sp_base.h"
#include "userlists.h"
#include "users_stage.h"

/* Full-ranking recall/NDCG at the cut-offs ks[nk] against pins (items, by id), each board's pins
 * excluded, of two user sides: [0] boards as users (by id), [1] the users stage's vectors (by id).
 * The caller sets every metric to NaN first; what is not scored (no user vectors) stays NaN.
 * Collective: every rank ranks its block of the test file's users [n·rank/size, n·(rank+1)/size) (and
 * the related-pin pairs of those users); the sums over ranks make the means, the same on every rank. */
typedef struct {
    double recall[2][SP_METRICS_MAX_K], ndcg[2][SP_METRICS_MAX_K];
    uint64_t users[2], users_without_vector;
} held_out_result;

static int held_out(const sp_run_ctx *ctx, const sp_emb_set *e, const sp_user_set *us, const char *test_path,
                    const uint32_t *ks, int nk, held_out_result *out, sp_related_result *rel) {
    sp_lists test = {0}, train = {0};
    /* per side: recall·users and ndcg·users per cut-off, users; then users without a vector, related pairs,
     * hit·pairs, mrr_scaled·pairs, mrr·pairs: summed over the ranks */
    enum { S_SIDE = 2 * SP_METRICS_MAX_K + 1, S_NOVEC = 2 * S_SIDE, S_REL, NSUM = S_REL + 4 };
    double sum[NSUM] = {0};
    int rc = sp_lists_load_lightgcn(test_path, &test, NULL);
    if (rc) rc = sp_err(rc, "eval.test %s", sp_errmsg()); /* (a FIFO or a directory is refused at once) */
    if (!rc) rc = sp_lists_need_items(&test, test_path);
    if (rc) {
        sp_lists_free(&test);
        return sp_dist_agree(rc);
    }
    /* the largest ids, compared before any + 1 (an id of 2^64 - 1 would wrap to 0 and pass the bound) */
    uint64_t maxu = 0, maxi = 0;
    for (uint64_t i = 0; i < e->n[1]; i++) maxu = e->ids[1][i] > maxu ? e->ids[1][i] : maxu;
    for (uint64_t i = 0; i < us->n; i++) maxu = us->ids[i] > maxu ? us->ids[i] : maxu;
    for (uint64_t i = 0; i < e->n[0]; i++) maxi = e->ids[0][i] > maxi ? e->ids[0][i] : maxi;
    if (maxu >= SP_LISTS_LIGHTGCN_MAX_ID || maxi >= SP_LISTS_LIGHTGCN_MAX_ID) { /* the loader's bound on ids */
        sp_lists_free(&test);
        return sp_dist_agree(sp_err(SP_EINPUT,
                                    "eval: ids up to %" PRIu64 " (users/boards) / %" PRIu64 " (pins) are too large to "
                                    "score densely (eval.test needs ids below %llu)",
                                    maxu, maxi, (unsigned long long)SP_LISTS_LIGHTGCN_MAX_ID));
    }
    uint64_t nu = test.n, ni = test.ncols;
    if (e->n[1] + us->n && maxu + 1 > nu) nu = maxu + 1;
    if (e->n[0] && maxi + 1 > ni) ni = maxi + 1;
    /* this rank's block of the test file's rows (users past them have no test items) */
    uint32_t lo = (uint32_t)((uint64_t)test.n * (uint64_t)ctx->rank / (uint64_t)ctx->size);
    uint32_t hi = (uint32_t)((uint64_t)test.n * (uint64_t)(ctx->rank + 1) / (uint64_t)ctx->size);
    int d = e->d;
    float *U = calloc(nu * d + 1, 4), *V = calloc(ni * d + 1, 4);
    if (!U || !V) rc = SP_ENOMEM;
    for (uint64_t i = 0; !rc && i < e->n[1]; i++) memcpy(U + e->ids[1][i] * d, e->vec[1] + i * d, 4 * (size_t)d);
    for (uint64_t i = 0; !rc && i < e->n[0]; i++) memcpy(V + e->ids[0][i] * d, e->vec[0] + i * d, 4 * (size_t)d);
    /* train items of user k = the pins of board k in the ingest parts */
    int parts = 0;
    if (!rc) rc = sp_stage_ranks(ctx, "ingest", &parts);
    train.n = (uint32_t)nu, train.ncols = (uint32_t)ni;
    train.off = calloc(nu + 1, 8);
    if (!rc && !train.off) rc = SP_ENOMEM;
    char path[PATH_MAX + 64];
    for (int pass = 0; pass < 2 && !rc; pass++) {
        uint64_t *fill = pass ? calloc(nu + 1, 8) : NULL;
        if (pass && !fill) rc = SP_ENOMEM;
        for (int r = 0; r < parts && !rc; r++) {
            sp_sfile_r *f;
            const sp_edge_rec *ed;
            uint64_t ne;
            sp_stage_part(ctx, "ingest", r, parts, NULL, 0, path, sizeof path);
            if ((rc = sp_sfile_open(&f, path, "ingest"))) break;
            rc = sp_sfile_get(f, "edges", sizeof *ed, (const void **)&ed, &ne);
            for (uint64_t i = 0; !rc && i < ne; i++) {
                if (ed[i].board >= nu || ed[i].pin >= ni) continue;
                if (!pass) train.off[ed[i].board + 1]++;
                else train.idx[train.off[ed[i].board] + fill[ed[i].board]++] = (uint32_t)ed[i].pin;
            }
            sp_sfile_close(f);
        }
        if (!rc && !pass) {
            for (uint64_t u = 0; u < nu; u++) train.off[u + 1] += train.off[u];
            train.idx = malloc(4 * (train.off[nu] + 1));
            if (!train.idx) rc = SP_ENOMEM;
        }
        free(fill);
    }
    sp_topk_result res;
    int sides = 1;
    for (int side = 0; side < 2 && !rc; side++) {
        if (side == 1) {
            if (!us->n) break;
            if (us->d != d) {
                rc = sp_err(SP_EINPUT, "eval: user vectors have dim %d, items %d", us->d, d);
                break;
            }
            memset(U, 0, 4 * nu * d);
            for (uint64_t i = 0; i < us->n; i++) memcpy(U + us->ids[i] * d, us->vec + i * d, 4 * (size_t)d);
            /* test users the users stage has no vector for keep a zero row: they count as misses */
            uint8_t *has = calloc(nu + 1, 1);
            if (!has) {
                rc = SP_ENOMEM;
                break;
            }
            for (uint64_t i = 0; i < us->n; i++) has[us->ids[i]] = 1;
            for (uint32_t u = lo; u < hi && u < test.n; u++) sum[S_NOVEC] += test.off[u + 1] > test.off[u] && !has[u];
            free(has);
            sides = 2;
        }
        memset(&res, 0, sizeof res);
        rc = sp_metrics_topk_rows(U, V, (uint32_t)ni, (uint32_t)d, &train, &test, lo, hi, ks, nk, 1, &res);
        for (int i = 0; !rc && i < nk; i++) {
            sum[side * S_SIDE + 2 * i] = res.recall[i] * (double)res.users;
            sum[side * S_SIDE + 2 * i + 1] = res.ndcg[i] * (double)res.users;
        }
        sum[side * S_SIDE + 2 * SP_METRICS_MAX_K] = (double)res.users;
    }
    /* PinSage's related-pin view of the same split: query = the user's first train pin, positive = its
     * first held-out pin, ranked among every pin of the date by the query pin's embedding */
    uint32_t ks1[1] = {ks[nk - 1]};
    uint32_t *q = rc ? NULL : malloc(4 * ((size_t)test.n + 1)), *pp = rc ? NULL : malloc(4 * ((size_t)test.n + 1)),
             *pool = rc ? NULL : malloc(4 * (e->n[0] + 1));
    if (!rc && (!q || !pp || !pool)) rc = SP_ENOMEM;
    uint64_t np = 0;
    for (uint32_t u = lo; !rc && u < hi && u < test.n; u++)
        if (test.off[u + 1] > test.off[u] && train.off[u + 1] > train.off[u] &&
            train.idx[train.off[u]] != test.idx[test.off[u]])
            q[np] = train.idx[train.off[u]], pp[np++] = test.idx[test.off[u]];
    for (uint64_t i = 0; !rc && i < e->n[0]; i++) pool[i] = (uint32_t)e->ids[0][i];
    if (!rc && np) rc = sp_metrics_related(V, (uint32_t)ni, (uint32_t)d, pool, (uint32_t)e->n[0], q, pp, np, ks1, 1, 100,
                                           1, rel);
    if (!rc && np) {
        double n = (double)rel->pairs;
        sum[S_REL] = n, sum[S_REL + 1] = rel->hit[0] * n, sum[S_REL + 2] = rel->mrr_scaled * n;
        sum[S_REL + 3] = rel->mrr * n;
    }
    rc = sp_dist_agree(rc);
    if (!rc) rc = sp_dist_sum_f64(sum, NSUM);
    for (int side = 0; !rc && side < sides; side++) {
        double nu_s = sum[side * S_SIDE + 2 * SP_METRICS_MAX_K];
        out->users[side] = (uint64_t)nu_s;
        for (int i = 0; i < nk; i++) {
            out->recall[side][i] = nu_s > 0 ? sum[side * S_SIDE + 2 * i] / nu_s : 0;
            out->ndcg[side][i] = nu_s > 0 ? sum[side * S_SIDE + 2 * i + 1] / nu_s : 0;
        }
    }
    if (!rc) {
        out->users_without_vector = (uint64_t)sum[S_NOVEC];
        double n = sum[S_REL];
        rel->pairs = (uint64_t)n;
        if (n > 0) {
            rel->hit[0] = sum[S_REL + 1] / n;
            rel->mrr_scaled = sum[S_REL + 2] / n;
            rel->mrr = sum[S_REL + 3] / n;
        }
    }
    free(q);
    free(pp);
    free(pool);
    free(U);
    free(V);
    free(train.off);
    free(train.idx);
    sp_lists_free(&test);
    return rc;
}

/* Drift of pins against the previous date: mean cosine over common ids, and
 * the mean overlap of the top-10 neighbours (by dot product among the common
 * pins) of up to 1000 sample pins. */
static int drift(const sp_emb_set *a, const sp_emb_set *b, double *cosine, double *overlap, uint64_t *common) {
    *cosine = *overlap = NAN;
    *common = 0;
    if (a->d != b->d || !a->n[0] || !b->n[0]) return SP_OK;
    int d = a->d;
    sp_idrow *ib = malloc(sizeof *ib * (b->n[0] + 1));
    uint64_t *ra = malloc(8 * (a->n[0] + 1)), *rb = malloc(8 * (a->n[0] + 1));
    if (!ib || !ra || !rb) {
        free(ib), free(ra), free(rb);
        return SP_ENOMEM;
    }
    for (uint64_t i = 0; i < b->n[0]; i++) ib[i] = (sp_idrow){b->ids[0][i], i};
    sp_idrow_sort(ib, b->n[0]);
    uint64_t m = 0;
    double cs = 0;
    for (uint64_t i = 0; i < a->n[0]; i++) {
        uint64_t j = sp_idrow_find(ib, b->n[0], a->ids[0][i]);
        if (j == UINT64_MAX) continue;
        ra[m] = i, rb[m] = j, m++;
        const float *x = a->vec[0] + i * d, *y = b->vec[0] + j * d;
        double xy = 0, xx = 0, yy = 0;
        for (int c = 0; c < d; c++) xy += (double)x[c] * y[c], xx += (double)x[c] * x[c], yy += (double)y[c] * y[c];
        cs += xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : 0;
    }
    *common = m;
    int rc = SP_OK;
    if (m >= 20) {
        *cosine = cs / (double)m;
        uint64_t ns = m < 1000 ? m : 1000;
        float *A = malloc(4 * m * d), *B = malloc(4 * m * d), *S = malloc(4 * ns * m);
        if (!A || !B || !S) rc = SP_ENOMEM;
        for (uint64_t i = 0; !rc && i < m; i++) {
            memcpy(A + i * d, a->vec[0] + ra[i] * d, 4 * (size_t)d);
            memcpy(B + i * d, b->vec[0] + rb[i] * d, 4 * (size_t)d);
        }
        uint32_t *top[2] = {malloc(4 * ns * 10), malloc(4 * ns * 10)};
        float *Q = malloc(4 * ns * d);
        if (!top[0] || !top[1] || !Q) rc = SP_ENOMEM;
        for (int side = 0; side < 2 && !rc; side++) {
            const float *X = side ? B : A;
            /* sample rows evenly spaced over the common pins (deterministic) */
            for (uint64_t s = 0; s < ns; s++) memcpy(Q + s * d, X + (s * m / ns) * d, 4 * (size_t)d);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ns, (int)m, d, 1.f, Q, d, X, d, 0.f, S, (int)m);
            for (uint64_t s = 0; s < ns; s++) {
                const float *row = S + s * m;
                uint64_t self = s * m / ns;
                uint32_t *tp = top[side] + s * 10;
                float tv[10];
                int nt = 0;
                for (uint64_t j = 0; j < m; j++) {
                    if (j == self) continue;
                    float v = row[j];
                    if (nt < 10 || v > tv[nt - 1]) {
                        int p = nt < 10 ? nt++ : 9;
                        while (p > 0 && tv[p - 1] < v) tv[p] = tv[p - 1], tp[p] = tp[p - 1], p--;
                        tv[p] = v, tp[p] = (uint32_t)j;
                    }
                }
                for (int t = nt; t < 10; t++) tp[t] = UINT32_MAX;
            }
        }
        if (!rc) {
            double ov = 0;
            for (uint64_t s = 0; s < ns; s++) {
                const uint32_t *x = top[0] + s * 10, *y = top[1] + s * 10;
                int same = 0;
                for (int i = 0; i < 10; i++)
                    for (int j = 0; j < 10; j++) same += x[i] != UINT32_MAX && x[i] == y[j];
                ov += same / 10.0;
            }
            *overlap = ov / (double)ns;
        }
        free(top[0]), free(top[1]), free(Q);
        free(A), free(B), free(S);
    }
    free(ib), free(ra), free(rb);
    return rc;
}

/* Reads a TSV log with a header; column xcol / ycol as a series. */
static int read_series(const char *path, int xcol, int ycol, sp_report_point **pts, size_t *n) {
    *pts = NULL, *n = 0;
    char *text = NULL;
    size_t len = 0;
    int rc = sp_read_file(path, &text, &len);
    if (rc == ENOENT) return SP_OK;
    if (rc) return rc;
    size_t cap = 0;
    char *save = NULL;
    int line = 0;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save), line++) {
        if (!line) continue; /* header */
        double v[8];
        int c = 0;
        char *s2 = NULL;
        for (char *f = strtok_r(l, "\t", &s2); f && c < 8; f = strtok_r(NULL, "\t", &s2)) v[c++] = strtod(f, NULL);
        if (c <= xcol || c <= ycol) continue;
        if (sp_grow((void **)pts, &cap, *n + 1, sizeof **pts)) {
            free(text);
            return SP_ENOMEM;
        }
        (*pts)[(*n)++] = (sp_report_point){v[xcol], v[ycol]};
    }
    free(text);
    return SP_OK;
}

/* The run so far, from the stage markers of this date: one row per completed
 * stage (ranks, slowest rank's seconds, counts), and the ingest rejects by
 * reason. Cells are malloc'd strings (freed by stage_rows_free). */
typedef struct {
    char **cells; size_t nrows;
    char **rej; size_t nrej;
} stage_rows;

static void stage_rows_free(stage_rows *t) {
    for (size_t i = 0; i < t->nrows * 4; i++) free(t->cells[i]);
    for (size_t i = 0; i < t->nrej * 2; i++) free(t->rej[i]);
    free(t->cells);
    free(t->rej);
    memset(t, 0, sizeof *t);
}

static int stage_rows_load(const sp_run_ctx *ctx, stage_rows *t) {
    memset(t, 0, sizeof *t);
    t->cells = calloc((size_t)sp_nstages * 4, sizeof *t->cells);
    t->rej = calloc(64 * 2, sizeof *t->rej);
    if (!t->cells || !t->rej) return SP_ENOMEM;
    for (int i = 0; i < sp_nstages; i++) {
        char path[PATH_MAX + 64], *text = NULL;
        size_t len;
        sp_stage_path(ctx, sp_stages[i].name, "_SUCCESS.json", path, sizeof path);
        if (sp_read_file(path, &text, &len)) {
            sp_err_clear();
            continue;
        }
        sp_json *j = NULL;
        if (!sp_json_parse(&j, text, len)) {
            double secs = 0;
            const sp_json *w = sp_json_get(j, "wall_s"), *c = sp_json_get(j, "counts");
            for (size_t k = 0; k < sp_json_len(w); k++) secs = fmax(secs, sp_json_num(sp_json_at(w, k)));
            char counts[512] = "";
            size_t used = 0;
            for (size_t k = 0; k < sp_json_len(c) && used < sizeof counts - 64; k++) {
                const char *key = sp_json_key_at(c, k);
                uint64_t v = 0;
                sp_json_u64(sp_json_at(c, k), &v);
                if (!strncmp(key, "reject_", 7)) {
                    if (v && t->nrej < 64) {
                        char num[32];
                        snprintf(num, sizeof num, "%" PRIu64, v);
                        t->rej[t->nrej * 2] = strdup(key + 7);
                        t->rej[t->nrej * 2 + 1] = strdup(num);
                        t->nrej++;
                    }
                    continue;
                }
                if (k < 8) used += (size_t)snprintf(counts + used, sizeof counts - used, "%s%s=%" PRIu64, used ? " " : "", key, v);
            }
            uint64_t ranks = 0;
            sp_json_u64(sp_json_get(j, "ranks"), &ranks);
            char rk[32], sc[32];
            snprintf(rk, sizeof rk, "%" PRIu64, ranks);
            snprintf(sc, sizeof sc, "%.2f", secs);
            size_t r = t->nrows++;
            t->cells[r * 4] = strdup(sp_stages[i].name);
            t->cells[r * 4 + 1] = strdup(rk);
            t->cells[r * 4 + 2] = strdup(sc);
            t->cells[r * 4 + 3] = strdup(counts);
        }
        sp_json_free(j);
        free(text);
    }
    return SP_OK;
}

int sp_eval_run(const sp_run_ctx *ctx, sp_stage_result *res) {
    const sp_config *cfg = ctx->cfg;
    int rc = SP_OK, gate_failed = 0;
    double recall = NAN, ndcg = NAN, cosine = NAN, overlap = NAN;
    uint64_t users = 0, common = 0;
    int k = (int)sp_config_int(cfg, "eval", "k");
    /* cut-offs: 10 (the sequential benchmarks' HR@10) and eval.k; eval.k is the last */
    uint32_t ks[2] = {10, (uint32_t)k};
    int nk = k > 10 ? 2 : 1;
    if (nk == 1) ks[0] = (uint32_t)k;
    double min_recall = sp_config_f64(cfg, "eval", "min_recall");
    const char *test = sp_config_str(cfg, "eval", "test");
    /* every rank: the embeddings and the held-out metrics (split over the ranks) */
    sp_emb_set cur = {0};
    sp_user_set us = {0};
    held_out_result ho;
    memset(&ho, 0, sizeof ho);
    for (int sd = 0; sd < 2; sd++)
        for (int i = 0; i < SP_METRICS_MAX_K; i++) ho.recall[sd][i] = ho.ndcg[sd][i] = NAN;
    sp_related_result rel;
    memset(&rel, 0, sizeof rel);
    rel.hit[0] = rel.mrr = rel.mrr_scaled = NAN;
    rc = sp_infer_load(ctx, &cur);
    if (!rc) rc = sp_users_load(ctx, &us);
    rc = sp_dist_agree(rc);
    if (!rc && strcmp(test, "none")) rc = held_out(ctx, &cur, &us, test, ks, nk, &ho, &rel);
    recall = ho.recall[0][nk - 1], ndcg = ho.ndcg[0][nk - 1], users = ho.users[0];
    sp_user_set_free(&us);
    if (ctx->rank == 0) {
        sp_emb_set prev = {0};
        if (!rc) {
            sp_run_ctx pc;
            char pdate[16];
            sp_stage_prev_ctx(ctx, &pc, pdate);
            const sp_stage_def *inf = sp_stage_find("infer");
            uint64_t dg;
            if (!sp_stage_check_done(&pc, inf, &dg) && !sp_infer_load(&pc, &prev)) {
                rc = drift(&cur, &prev, &cosine, &overlap, &common);
                sp_emb_set_free(&prev);
            }
            sp_err_clear();
        }
        /* report */
        char path[PATH_MAX + 64], dir[PATH_MAX + 64], kname[2][4][40], rname[40];
        static const char *const side_pre[2] = {"", "users_"};
        sp_report_metric m[24];
        int nm = 0;
        for (int i = 0; i < nk; i++)
            for (int sd = 0; sd < 2; sd++) {
                snprintf(kname[sd][2 * i], sizeof kname[sd][2 * i], "%srecall@%u", side_pre[sd], ks[i]);
                snprintf(kname[sd][2 * i + 1], sizeof kname[sd][2 * i + 1], "%sndcg@%u", side_pre[sd], ks[i]);
                m[nm++] = (sp_report_metric){kname[sd][2 * i], ho.recall[sd][i]};
                m[nm++] = (sp_report_metric){kname[sd][2 * i + 1], ho.ndcg[sd][i]};
            }
        const char *rk = kname[0][2 * (nk - 1)]; /* recall@eval.k of the boards: the gate's metric */
        snprintf(rname, sizeof rname, "related_hit@%d", k);
        m[nm++] = (sp_report_metric){"eval_users", (double)users};
        m[nm++] = (sp_report_metric){"users_eval_users", (double)ho.users[1]};
        m[nm++] = (sp_report_metric){"users_without_vector", (double)ho.users_without_vector};
        m[nm++] = (sp_report_metric){rname, rel.hit[0]};
        m[nm++] = (sp_report_metric){"related_mrr_scaled100", rel.mrr_scaled};
        m[nm++] = (sp_report_metric){"related_mrr", rel.mrr};
        m[nm++] = (sp_report_metric){"drift_mean_cosine", cosine};
        m[nm++] = (sp_report_metric){"drift_top10_overlap", overlap};
        m[nm++] = (sp_report_metric){"drift_common_pins", (double)common};
        sp_report_point *loss = NULL, *evc = NULL;
        size_t nloss = 0, nev = 0;
        if (!rc) {
            sp_stage_path(ctx, "train", "loss.tsv", path, sizeof path);
            rc = read_series(path, 1, 2, &loss, &nloss);
        }
        if (!rc) {
            sp_stage_path(ctx, "train", "eval.tsv", path, sizeof path);
            rc = read_series(path, 2, 3, &evc, &nev);
        }
        sp_report_series s1 = {"training loss", loss, nloss}, s2 = {rk, evc, nev};
        sp_report_chart charts[2] = {{"Training loss", "step", "loss", &s1, 1},
                                     {"Held-out quality during training", "training seconds", rk, &s2, 1}};
        char gate_note[160];
        snprintf(gate_note, sizeof gate_note, "Quality gate: %s >= %g: %s.", rk, min_recall,
                 min_recall <= 0 ? "off" : recall >= min_recall ? "passed" : "FAILED, nothing published");
        const char *notes[2] = {"Held-out protocol: full ranking over all pins, each board's own pins excluded "
                                "(LightGCN; with one held-out item per user this is leave-one-out HR/NDCG, history excluded at "
                                "-inf); boards stand for users by id, users_* rows score the users stage's vectors "
                                "(user k = board k in imports). Related pins (PinSage): query = a test "
                                "user's first train pin, positive = its first held-out pin, ranked among all pins; "
                                "scaled MRR = mean 1/ceil(rank/100).",
                                gate_note};
        stage_rows st = {0};
        if (!rc) rc = stage_rows_load(ctx, &st);
        static const char *const scols[4] = {"stage", "ranks", "seconds (slowest rank)", "counts"};
        static const char *const rcols[2] = {"reject reason (ingest)", "rows"};
        sp_report_table tabs[2] = {{"Stages of this date", scols, 4, (const char *const *)st.cells, st.nrows},
                                   {"Rejected input rows", rcols, 2, (const char *const *)st.rej, st.nrej}};
        sp_report rep = {"sagepipe run report", ctx->date, NULL, m, (size_t)nm, charts, nev ? 2 : 1, tabs, st.nrej ? 2 : 1,
                         notes, 2};
        if (!rc) {
            sp_stage_path(ctx, "eval", NULL, dir, sizeof dir);
            rc = sp_report_write(&rep, dir);
        }
        for (int i = 0; !rc && i < 2; i++)
            rc = sp_stage_output_file(res, ctx, "eval", i ? "report.html" : "report.json");
        free(loss);
        free(evc);
        stage_rows_free(&st);
        if (!rc && min_recall > 0 && !(recall >= min_recall)) {
            gate_failed = 1;
            rc = sp_err(SP_EQUALITY, "quality gate: %s = %.5f is below eval.min_recall %g (report: %s/report.html)",
                        rk, recall, min_recall, dir);
        }
        if (!rc && sp_config_bool(cfg, "eval", "gate")) {
            char later[64];
            rc = sp_shard_flip_latest(sp_config_str(cfg, "export", "dir"), ctx->date, later, sizeof later);
            if (!rc && *later)
                SP_INFO("eval_latest", "latest=unchanged reason=\"quality gate passed; the later date %s is published\"",
                        later);
            else if (!rc) SP_INFO("eval_latest", "latest=%s reason=\"quality gate passed\"", ctx->date);
        }
        int scored = !rc || gate_failed; /* else no metrics line: what failed is logged as the error */
        if (scored)
            SP_INFO("eval", "%s=%.5f %s=%.5f users=%" PRIu64 " users_%s=%.5f users_%s=%.5f drift_cosine=%.4f "
                    "drift_overlap=%.4f gate=%s", rk, recall, kname[0][2 * (nk - 1) + 1], ndcg, users, rk,
                    ho.recall[1][nk - 1], kname[0][2 * (nk - 1) + 1], ho.ndcg[1][nk - 1], cosine, overlap,
                    gate_failed ? "failed" : "ok");
        if (scored && nk > 1)
            SP_INFO("eval_at_10", "%s=%.5f %s=%.5f users_%s=%.5f users_%s=%.5f", kname[0][0], ho.recall[0][0],
                    kname[0][1], ho.ndcg[0][0], kname[0][0], ho.recall[1][0], kname[0][1], ho.ndcg[1][0]);
    }
    sp_emb_set_free(&cur);
    rc = sp_dist_agree(rc);
    sp_stage_count(res, "eval_users", ctx->rank == 0 ? users : 0); /* counts are summed over the ranks */
    return rc;
}
