/* test_metrics: sp_metrics_topk / _loo / _related against brute-force
 * references that sort every candidate (qsort on score desc, index asc):
 * exact values on embeddings with many ties and with few,
 * exclusion of train/history items, users without test items, K > items,
 * several score blocks and item chunks, identical results at 1 and 3 threads,
 * the published formulas on hand-made cases, and input errors. */
#include "check.h"
#include "metrics.h"
#include "sp_base.h"

#include <stdlib.h>

/* ---------------------------------------------------------------- data */

typedef struct {
    uint32_t nu, ni, d;
    float *U, *V;
} emb;

/* Integer values in [-2, 2] (many ties), or multiples of 1/64 in [-1, 1]
 * (few ties). Either way every dot product (d <= 64) is exact in float in
 * any summation order, so the references agree with any sgemm kernel. */
static emb make_emb(uint32_t nu, uint32_t ni, uint32_t d, int integer, uint64_t seed) {
    emb e = {nu, ni, d, malloc(sizeof(float) * nu * d + 4), malloc(sizeof(float) * ni * d + 4)};
    sp_rng r;
    sp_rng_init(&r, seed, 77, 1);
    for (size_t i = 0; i < (size_t)nu * d; i++)
        e.U[i] = integer ? (float)((int)sp_rng_below(&r, 5) - 2) : (float)((int)sp_rng_below(&r, 129) - 64) / 64;
    for (size_t i = 0; i < (size_t)ni * d; i++)
        e.V[i] = integer ? (float)((int)sp_rng_below(&r, 5) - 2) : (float)((int)sp_rng_below(&r, 129) - 64) / 64;
    return e;
}

static void free_emb(emb *e) {
    free(e->U);
    free(e->V);
}

/* Random lists for n rows: each row empty with probability p_empty, else
 * 1..maxlen items drawn with replacement (so repeats occur). */
static sp_lists make_lists(uint32_t n, uint32_t ni, uint32_t maxlen, double p_empty, uint64_t seed) {
    sp_lists l = {n, ni, malloc(sizeof(uint64_t) * (n + 1)), malloc(sizeof(uint32_t) * ((size_t)n * maxlen + 1))};
    sp_rng r;
    sp_rng_init(&r, seed, 78, 2);
    l.off[0] = 0;
    for (uint32_t u = 0; u < n; u++) {
        uint64_t len = sp_rng_unif(&r) < p_empty ? 0 : 1 + sp_rng_below(&r, maxlen);
        for (uint64_t k = 0; k < len; k++) l.idx[l.off[u] + k] = (uint32_t)sp_rng_below(&r, ni);
        l.off[u + 1] = l.off[u] + len;
    }
    return l;
}

static int in_list(const sp_lists *l, uint32_t u, uint32_t item) {
    if (!l || u >= l->n) return 0;
    for (uint64_t e = l->off[u]; e < l->off[u + 1]; e++)
        if (l->idx[e] == item) return 1;
    return 0;
}

static double dot(const float *a, const float *b, uint32_t d) {
    double s = 0; /* exact for make_emb's values */
    for (uint32_t k = 0; k < d; k++) s += a[k] * b[k];
    return s;
}

typedef struct {
    double s;
    uint32_t j;
} cand;

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->j < y->j ? -1 : x->j > y->j;
}

/* All items of user row `row` except the excluded ones, sorted best first. */
static uint32_t ranked(const float *urow, const emb *e, const sp_lists *excl, uint32_t u, uint32_t keep, cand *out) {
    uint32_t n = 0;
    for (uint32_t j = 0; j < e->ni; j++) {
        if (j != keep && in_list(excl, u, j)) continue;
        out[n++] = (cand){dot(urow, e->V + (size_t)j * e->d, e->d), j};
    }
    qsort(out, n, sizeof *out, cand_cmp);
    return n;
}

/* ------------------------------------------------------------ references */

static sp_topk_result ref_topk(const emb *e, const sp_lists *train, const sp_lists *test, const uint32_t *ks, int nk) {
    sp_topk_result r = {.nk = nk};
    cand *c = malloc(sizeof *c * e->ni + 1);
    for (uint32_t u = 0; u < e->nu; u++) {
        if (u >= test->n || test->off[u + 1] == test->off[u]) {
            r.skipped++;
            continue;
        }
        r.users++;
        uint32_t n = ranked(e->U + (size_t)u * e->d, e, train, u, UINT32_MAX, c);
        uint32_t distinct = 0; /* distinct test items */
        for (uint64_t a = test->off[u]; a < test->off[u + 1]; a++) {
            int seen = 0;
            for (uint64_t b = test->off[u]; b < a; b++) seen |= test->idx[b] == test->idx[a];
            distinct += !seen;
        }
        for (int k = 0; k < nk; k++) {
            uint32_t K = ks[k], hits = 0;
            double dcg = 0, idcg = 0;
            for (uint32_t i = 0; i < K && i < n; i++)
                if (in_list(test, u, c[i].j)) {
                    hits++;
                    dcg += 1.0 / log2(i + 2.0);
                }
            for (uint32_t i = 0; i < K && i < distinct; i++) idcg += 1.0 / log2(i + 2.0);
            r.recall[k] += (double)hits / distinct;
            r.ndcg[k] += dcg / idcg;
        }
    }
    for (int k = 0; k < nk; k++) {
        r.k[k] = ks[k];
        r.recall[k] /= (double)r.users;
        r.ndcg[k] /= (double)r.users;
    }
    free(c);
    return r;
}

static sp_loo_result ref_loo(const emb *e, const sp_lists *hist, const uint32_t *target, const uint32_t *ks, int nk) {
    sp_loo_result r = {.nk = nk};
    cand *c = malloc(sizeof *c * e->ni + 1);
    for (uint32_t u = 0; u < e->nu; u++) {
        uint32_t t = target[u];
        if (t == SP_NO_ITEM) {
            r.skipped++;
            continue;
        }
        r.users++;
        r.target_in_history += in_list(hist, u, t);
        uint32_t n = ranked(e->U + (size_t)u * e->d, e, hist, u, t, c), rank = 0;
        while (rank < n && c[rank].j != t) rank++;
        for (int k = 0; k < nk; k++)
            if (rank < ks[k]) {
                r.hr[k] += 1;
                r.ndcg[k] += 1.0 / log2(rank + 2.0);
            }
        r.mrr += 1.0 / (rank + 1.0);
    }
    for (int k = 0; k < nk; k++) {
        r.k[k] = ks[k];
        r.hr[k] /= (double)r.users;
        r.ndcg[k] /= (double)r.users;
    }
    r.mrr /= (double)r.users;
    free(c);
    return r;
}

/* Related pins: E = e->V; rank of p among the pool (or all rows) minus q. */
static sp_related_result ref_related(const emb *e, const uint32_t *pool, uint32_t npool, const uint32_t *q,
                                     const uint32_t *p, uint64_t npairs, const uint32_t *ks, int nk, uint32_t scale) {
    sp_related_result r = {.nk = nk, .pairs = npairs, .pool = pool ? npool : e->ni, .mrr_scale = scale};
    for (uint64_t i = 0; i < npairs; i++) {
        const float *qv = e->V + (size_t)q[i] * e->d;
        double sp = dot(qv, e->V + (size_t)p[i] * e->d, e->d);
        uint64_t rank = 1;
        for (uint32_t a = 0; a < r.pool; a++) {
            uint32_t c = pool ? pool[a] : a;
            if (c == q[i] || c == p[i]) continue;
            double sc = dot(qv, e->V + (size_t)c * e->d, e->d);
            rank += sc > sp || (sc == sp && c < p[i]);
        }
        for (int k = 0; k < nk; k++) r.hit[k] += rank <= ks[k];
        r.mrr_scaled += 1.0 / ceil((double)rank / scale);
        r.mrr += 1.0 / (double)rank;
    }
    for (int k = 0; k < nk; k++) {
        r.k[k] = ks[k];
        r.hit[k] /= (double)npairs;
    }
    r.mrr_scaled /= (double)npairs;
    r.mrr /= (double)npairs;
    return r;
}

#define TOL 1e-12

static void same_topk(const sp_topk_result *got, const sp_topk_result *want, const char *what) {
    CHECK_MSG(got->users == want->users && got->skipped == want->skipped, "%s: users %llu/%llu skipped %llu/%llu",
              what, (unsigned long long)got->users, (unsigned long long)want->users,
              (unsigned long long)got->skipped, (unsigned long long)want->skipped);
    for (int k = 0; k < want->nk; k++) {
        CHECK_MSG(fabs(got->recall[k] - want->recall[k]) <= TOL, "%s: recall@%u = %.15g, reference %.15g", what,
                  want->k[k], got->recall[k], want->recall[k]);
        CHECK_MSG(fabs(got->ndcg[k] - want->ndcg[k]) <= TOL, "%s: ndcg@%u = %.15g, reference %.15g", what,
                  want->k[k], got->ndcg[k], want->ndcg[k]);
        CHECK_EQ_U64(got->k[k], want->k[k]);
    }
}

/* ----------------------------------------------------------------- topk */

/* Several user blocks (128) and item chunks (4096), integer and float data,
 * train/test with repeats and overlaps, rows missing at the end of both. */
static void test_topk_vs_reference(int integer) {
    const uint32_t nu = 300, ni = 5000, d = 8;
    emb e = make_emb(nu, ni, d, integer, integer ? 11 : 12);
    sp_lists train = make_lists(nu - 20, ni, 40, 0.1, 21);   /* users 280..299 exclude nothing */
    sp_lists test = make_lists(nu - 7, ni, 12, 0.25, 22);    /* users 293..299 have no test items */
    for (uint32_t u = 0; u < 40 && u < train.n; u++)         /* some test items are train items too */
        if (test.off[u + 1] > test.off[u] && train.off[u + 1] > train.off[u]) test.idx[test.off[u]] = train.idx[train.off[u]];
    const uint32_t ks[] = {1, 5, 20, 6000};
    sp_topk_result got, got3, want = ref_topk(&e, &train, &test, ks, 4);
    CHECK_RC(sp_metrics_topk(e.U, nu, e.V, ni, d, &train, &test, ks, 4, 1, &got), SP_OK);
    same_topk(&got, &want, integer ? "integer data" : "float data");
    CHECK(want.users > 150 && want.skipped > 60);
    CHECK_RC(sp_metrics_topk(e.U, nu, e.V, ni, d, &train, &test, ks, 4, 3, &got3), SP_OK);
    CHECK_MSG(!memcmp(&got, &got3, sizeof got), "results differ between 1 and 3 threads (recall@20 %.17g vs %.17g)",
              got.recall[2], got3.recall[2]);
    /* K beyond the candidates: every test item that is not a train item is found */
    CHECK(got.recall[3] < 1.0 + 1e-15 && got.recall[3] > got.recall[2]);
    /* blocks of users (as ranks score them: the last one past the test rows is empty), summed: the same figures */
    const uint32_t cut[] = {0, 97, 250, 285, test.n, nu};
    double rs[4] = {0}, ns[4] = {0};
    uint64_t users = 0;
    for (int b = 0; b + 1 < (int)(sizeof cut / sizeof *cut); b++) {
        sp_topk_result part;
        CHECK_RC(sp_metrics_topk_rows(e.U, e.V, ni, d, &train, &test, cut[b], cut[b + 1], ks, 4, 1, &part), SP_OK);
        if (cut[b] >= test.n) CHECK_EQ_U64(part.users, 0);
        users += part.users;
        for (int k = 0; k < 4; k++) {
            rs[k] += part.recall[k] * (double)part.users;
            ns[k] += part.ndcg[k] * (double)part.users;
        }
    }
    CHECK_EQ_U64(users, got.users);
    for (int k = 0; k < 4; k++)
        CHECK_MSG(fabs(rs[k] / (double)users - got.recall[k]) < 1e-12 &&
                      fabs(ns[k] / (double)users - got.ndcg[k]) < 1e-12,
                  "blocks summed: recall@%u %.15g vs %.15g", ks[k], rs[k] / (double)users, got.recall[k]);
    sp_lists_free(&train);
    sp_lists_free(&test);
    free_emb(&e);
}

/* All scores equal: the ranking is the item order, minus the train items
 * (40 items: both the grouped and the tail scan of the heap are used). */
static void test_topk_ties_by_index(void) {
    enum { NI = 40, D = 4 };
    float U[2 * D] = {1, 0, 0, 0, 2, 0, 0, 0}, V[NI * D];
    for (int i = 0; i < NI * D; i++) V[i] = i % D ? (float)(i % 3) : 1.0f; /* every item scores u[0] */
    uint64_t troff[] = {0, 2, 2};
    uint32_t tridx[] = {0, 2};              /* user 0 excludes items 0 and 2 */
    uint64_t teoff[] = {0, 3, 4};
    uint32_t teidx[] = {3, 39, 25, 0};      /* user 0: {3, 39, 25}; user 1: {0} */
    sp_lists train = {2, NI, troff, tridx}, test = {2, NI, teoff, teidx};
    const uint32_t ks[] = {2, 3};
    sp_topk_result r;
    CHECK_RC(sp_metrics_topk(U, 2, V, NI, D, &train, &test, ks, 2, 1, &r), SP_OK);
    /* user 0 ranks 1,3,4,5,...: one hit (item 3) at rank 1 in the top 2 and 3;
     * user 1 ranks 0,1,2,...: its hit is at rank 0. */
    double u0_2 = (1 / log2(3.0)) / (1 + 1 / log2(3.0)), u0_3 = (1 / log2(3.0)) / (1 + 1 / log2(3.0) + 0.5);
    CHECK_EQ_U64(r.users, 2);
    CHECK_NEAR(r.recall[0], (1 / 3.0 + 1.0) / 2, TOL);
    CHECK_NEAR(r.ndcg[0], (u0_2 + 1.0) / 2, TOL);
    CHECK_NEAR(r.recall[1], (1 / 3.0 + 1.0) / 2, TOL);
    CHECK_NEAR(r.ndcg[1], (u0_3 + 1.0) / 2, TOL);
}

/* A user row of zeros (a test user without a vector) ranks nothing: recall and NDCG 0, though a tie-break by
 * item id would put its test item 0 first; the user still counts. */
static void test_topk_zero_row(void) {
    enum { NI = 6, D = 2 };
    float U[2 * D] = {0, 0, 1, 0}, V[NI * D] = {1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0};
    uint64_t teoff[] = {0, 1, 2};
    uint32_t teidx[] = {0, 0};
    sp_lists test = {2, NI, teoff, teidx};
    const uint32_t ks[] = {1, 20};
    sp_topk_result r;
    CHECK_RC(sp_metrics_topk(U, 2, V, NI, D, NULL, &test, ks, 2, 1, &r), SP_OK);
    CHECK_EQ_U64(r.users, 2);
    CHECK_NEAR(r.recall[0], 0.5, TOL); /* user 1 (scores all tie) hits item 0 first; user 0 nothing */
    CHECK_NEAR(r.recall[1], 0.5, TOL);
    CHECK_NEAR(r.ndcg[0], 0.5, TOL);
}

/* The LightGCN formulas on a hand-made case: scores 4 > 3 > 2 > 1 > 0. */
static void test_topk_formulas(void) {
    float U[1] = {1}, V[5] = {4, 3, 2, 1, 0};
    uint64_t off[] = {0, 3};
    uint32_t idx[] = {1, 4, 1}; /* test {1, 4}, listed with a repeat */
    sp_lists test = {1, 5, off, idx};
    uint32_t ks[] = {1, 2, 4, 5, 9};
    sp_topk_result r;
    CHECK_RC(sp_metrics_topk(U, 1, V, 5, 1, NULL, &test, ks, 5, 1, &r), SP_OK);
    double idcg2 = 1 + 1 / log2(3.0);
    CHECK_NEAR(r.recall[0], 0.0, TOL);
    CHECK_NEAR(r.ndcg[0], 0.0, TOL);
    CHECK_NEAR(r.recall[1], 0.5, TOL);
    CHECK_NEAR(r.ndcg[1], (1 / log2(3.0)) / idcg2, TOL);
    CHECK_NEAR(r.recall[2], 0.5, TOL);
    CHECK_NEAR(r.recall[3], 1.0, TOL);
    CHECK_NEAR(r.ndcg[3], (1 / log2(3.0) + 1 / log2(6.0)) / idcg2, TOL);
    CHECK_NEAR(r.recall[4], 1.0, TOL);
    CHECK_NEAR(r.ndcg[4], r.ndcg[3], TOL);
    /* excluding item 0 moves item 1 to the top */
    uint64_t troff[] = {0, 1};
    uint32_t tridx[] = {0};
    sp_lists train = {1, 5, troff, tridx};
    CHECK_RC(sp_metrics_topk(U, 1, V, 5, 1, &train, &test, ks, 5, 1, &r), SP_OK);
    CHECK_NEAR(r.recall[0], 0.5, TOL);
    CHECK_NEAR(r.ndcg[0], 1.0, TOL);
    CHECK_NEAR(r.ndcg[1], 1.0 / idcg2, TOL);
    CHECK_NEAR(r.ndcg[2], (1 + 1 / log2(5.0)) / idcg2, TOL);
}

static void test_topk_errors(void) {
    float U[4] = {1, 0, 0, 1}, V[6] = {1, 2, 3, 4, 5, 6};
    uint64_t off[] = {0, 1, 2};
    uint32_t idx[] = {0, 3};
    sp_lists test = {2, 4, off, idx};
    uint32_t ks[] = {2};
    sp_topk_result r;
    CHECK_RC(sp_metrics_topk(U, 2, V, 3, 2, NULL, &test, ks, 1, 1, &r), SP_EINPUT); /* item 3 >= 3 items */
    CHECK(strstr(sp_errmsg(), "user 1 lists item 3") != NULL);
    idx[1] = 1;
    CHECK_RC(sp_metrics_topk(U, 1, V, 3, 2, NULL, &test, ks, 1, 1, &r), SP_EINPUT); /* user 1 has no row */
    CHECK(strstr(sp_errmsg(), "user 1 has test items but no embedding") != NULL);
    U[3] = NAN;
    CHECK_RC(sp_metrics_topk(U, 2, V, 3, 2, NULL, &test, ks, 1, 1, &r), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "user embedding row 1 column 1 is not finite") != NULL);
    U[3] = 1;
    uint32_t k0[] = {0};
    CHECK_RC(sp_metrics_topk(U, 2, V, 3, 2, NULL, &test, k0, 1, 1, &r), SP_EUSAGE);
    CHECK_RC(sp_metrics_topk(U, 2, V, 3, 2, NULL, &test, ks, 1, 0, &r), SP_EUSAGE);
    CHECK_RC(sp_metrics_topk(U, 2, V, 3, 2, NULL, &test, ks, SP_METRICS_MAX_K + 1, 1, &r), SP_EUSAGE);
    CHECK_RC(sp_metrics_topk(U, 2, V, 3, 2, NULL, &test, ks, 1, 2, &r), SP_OK);
    CHECK_EQ_U64(r.users, 2);
}

/* ------------------------------------------------------------------ loo */

static void test_loo_vs_reference(int integer) {
    const uint32_t nu = 300, ni = 5000, d = 8;
    emb e = make_emb(nu, ni, d, integer, integer ? 31 : 32);
    sp_lists hist = make_lists(nu - 10, ni, 30, 0.05, 41);
    uint32_t *target = malloc(sizeof *target * nu);
    sp_rng r;
    sp_rng_init(&r, 5, 6, 7);
    for (uint32_t u = 0; u < nu; u++) {
        double x = sp_rng_unif(&r);
        target[u] = x < 0.1 ? SP_NO_ITEM : (uint32_t)sp_rng_below(&r, ni);
        if (x > 0.9 && u < hist.n && hist.off[u + 1] > hist.off[u]) target[u] = hist.idx[hist.off[u + 1] - 1];
    }
    const uint32_t ks[] = {1, 10, 20, 100000};
    sp_loo_result got, got2, want = ref_loo(&e, &hist, target, ks, 4);
    CHECK_RC(sp_metrics_loo(e.U, nu, e.V, ni, d, &hist, target, ks, 4, 1, &got), SP_OK);
    CHECK_EQ_U64(got.users, want.users);
    CHECK_EQ_U64(got.skipped, want.skipped);
    CHECK_EQ_U64(got.target_in_history, want.target_in_history);
    CHECK(want.target_in_history > 10);
    for (int k = 0; k < 4; k++) {
        CHECK_MSG(fabs(got.hr[k] - want.hr[k]) <= TOL, "HR@%u = %.15g, reference %.15g", ks[k], got.hr[k], want.hr[k]);
        CHECK_MSG(fabs(got.ndcg[k] - want.ndcg[k]) <= TOL, "NDCG@%u = %.15g, reference %.15g", ks[k], got.ndcg[k],
                  want.ndcg[k]);
    }
    CHECK_NEAR(got.hr[3], 1.0, 0); /* K > items: every target is found */
    CHECK_NEAR(got.mrr, want.mrr, TOL);
    CHECK_RC(sp_metrics_loo(e.U, nu, e.V, ni, d, &hist, target, ks, 4, 3, &got2), SP_OK);
    CHECK_MSG(!memcmp(&got, &got2, sizeof got), "loo differs between 1 and 3 threads");
    free(target);
    sp_lists_free(&hist);
    free_emb(&e);
}

/* Hand-made: scores 5 4 4 3 for items 0..3; ties by index; history excluded. */
static void test_loo_formulas(void) {
    float U[1] = {1}, V[4] = {5, 4, 4, 3};
    uint64_t off[] = {0, 0};
    sp_lists hist = {1, 4, off, NULL};
    uint32_t t = 2, ks[] = {1, 2, 3};
    sp_loo_result r;
    CHECK_RC(sp_metrics_loo(U, 1, V, 4, 1, &hist, &t, ks, 3, 1, &r), SP_OK); /* rank 2 (after 0 and 1) */
    CHECK_NEAR(r.hr[0], 0, 0);
    CHECK_NEAR(r.hr[1], 0, 0);
    CHECK_NEAR(r.hr[2], 1, 0);
    CHECK_NEAR(r.ndcg[2], 1 / log2(4.0), TOL);
    CHECK_NEAR(r.mrr, 1 / 3.0, TOL);
    uint64_t off2[] = {0, 3};
    uint32_t h[] = {1, 0, 1};
    sp_lists hist2 = {1, 4, off2, h};
    CHECK_RC(sp_metrics_loo(U, 1, V, 4, 1, &hist2, &t, ks, 3, 1, &r), SP_OK); /* 0, 1 excluded: rank 0 */
    CHECK_NEAR(r.hr[0], 1, 0);
    CHECK_NEAR(r.ndcg[0], 1, 0);
    CHECK_EQ_U64(r.target_in_history, 0);
    t = 1; /* the target is also a history item: it stays a candidate; item 0 is excluded -> rank 0 */
    CHECK_RC(sp_metrics_loo(U, 1, V, 4, 1, &hist2, &t, ks, 3, 1, &r), SP_OK);
    CHECK_EQ_U64(r.target_in_history, 1);
    CHECK_NEAR(r.hr[0], 1, 0);
    t = 4;
    CHECK_RC(sp_metrics_loo(U, 1, V, 4, 1, &hist2, &t, ks, 3, 1, &r), SP_EINPUT);
    t = SP_NO_ITEM;
    CHECK_RC(sp_metrics_loo(U, 1, V, 4, 1, &hist2, &t, ks, 3, 1, &r), SP_OK);
    CHECK_EQ_U64(r.users, 0);
    CHECK_EQ_U64(r.skipped, 1);
}

static void test_loo_split(void) {
    uint64_t off[] = {0, 4, 6, 7, 7};
    uint32_t idx[] = {10, 11, 12, 13, 20, 21, 30};
    sp_lists seq = {4, 31, off, idx}, h;
    uint32_t t[4];
    CHECK_RC(sp_metrics_loo_split(&seq, 1, &h, t), SP_OK);
    CHECK_EQ_U64(h.n, 4);
    CHECK_EQ_U64(h.off[1], 3);
    CHECK_EQ_U64(h.off[2], 4);
    CHECK_EQ_U64(h.off[4], 4);
    CHECK_EQ_U64(h.idx[2], 12);
    CHECK_EQ_U64(h.idx[3], 20);
    CHECK_EQ_U64(t[0], 13);
    CHECK_EQ_U64(t[1], 21);
    CHECK_EQ_U64(t[2], SP_NO_ITEM); /* one item: no history */
    CHECK_EQ_U64(t[3], SP_NO_ITEM);
    sp_lists_free(&h);
    CHECK_RC(sp_metrics_loo_split(&seq, 2, &h, t), SP_OK);
    CHECK_EQ_U64(h.off[1], 2);
    CHECK_EQ_U64(t[0], 12);
    CHECK_EQ_U64(t[1], SP_NO_ITEM);
    sp_lists_free(&h);
    CHECK_RC(sp_metrics_loo_split(&seq, 0, &h, t), SP_EUSAGE);
}

/* -------------------------------------------------------------- related */

static void same_related(const sp_related_result *g, const sp_related_result *w, const char *what) {
    CHECK_EQ_U64(g->pairs, w->pairs);
    CHECK_EQ_U64(g->pool, w->pool);
    for (int k = 0; k < w->nk; k++)
        CHECK_MSG(fabs(g->hit[k] - w->hit[k]) <= TOL, "%s: hit@%u = %.15g, reference %.15g", what, w->k[k], g->hit[k],
                  w->hit[k]);
    CHECK_MSG(fabs(g->mrr_scaled - w->mrr_scaled) <= TOL, "%s: scaled MRR %.15g, reference %.15g", what,
              g->mrr_scaled, w->mrr_scaled);
    CHECK_MSG(fabs(g->mrr - w->mrr) <= TOL, "%s: MRR %.15g, reference %.15g", what, g->mrr, w->mrr);
}

static void test_related_vs_reference(int integer) {
    const uint32_t n = 3000, d = 8, npairs = 700;
    emb e = make_emb(1, n, d, integer, integer ? 51 : 52);
    uint32_t *q = malloc(sizeof *q * npairs), *p = malloc(sizeof *p * npairs), *pool = malloc(sizeof *pool * n);
    sp_rng r;
    sp_rng_init(&r, 9, 9, 9);
    for (uint32_t i = 0; i < npairs; i++) {
        q[i] = (uint32_t)sp_rng_below(&r, n);
        do p[i] = (uint32_t)sp_rng_below(&r, n);
        while (p[i] == q[i]);
    }
    /* pool: a shuffled half of the rows (some q and p in it, some not) */
    for (uint32_t i = 0; i < n; i++) pool[i] = i;
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t j = (uint32_t)sp_rng_below(&r, i + 1), t = pool[i];
        pool[i] = pool[j];
        pool[j] = t;
    }
    const uint32_t npool = n / 2, ks[] = {1, 10, 50, 5000};
    sp_related_result got, got3;
    sp_related_result want = ref_related(&e, pool, npool, q, p, npairs, ks, 4, 7);
    CHECK_RC(sp_metrics_related(e.V, n, d, pool, npool, q, p, npairs, ks, 4, 7, 1, &got), SP_OK);
    same_related(&got, &want, "pool");
    CHECK_RC(sp_metrics_related(e.V, n, d, pool, npool, q, p, npairs, ks, 4, 7, 3, &got3), SP_OK);
    CHECK_MSG(!memcmp(&got, &got3, sizeof got), "related differs between 1 and 3 threads");
    want = ref_related(&e, NULL, 0, q, p, npairs, ks, 4, 100);
    CHECK_RC(sp_metrics_related(e.V, n, d, NULL, 0, q, p, npairs, ks, 4, 0, 2, &got), SP_OK);
    CHECK_EQ_U64(got.mrr_scale, 100);
    same_related(&got, &want, "all rows");
    CHECK_NEAR(got.hit[3], 1.0, 0);
    free(q);
    free(p);
    free(pool);
    free_emb(&e);
}

/* Hand-made: E rows on a line, q = row 0 (score = row value). */
static void test_related_formulas(void) {
    float E[6] = {1, 5, 3, 3, 2, 9};     /* d = 1 */
    uint32_t q[] = {0, 0, 0}, p[] = {2, 3, 4}, ks[] = {1, 2, 3};
    /* candidates (all rows but q): 1:5 2:3 3:3 4:2 5:9 -> order 5,1,2,3,4
     * rank(2) = 3, rank(3) = 4 (tie with 2, larger index), rank(4) = 5 */
    sp_related_result r;
    CHECK_RC(sp_metrics_related(E, 6, 1, NULL, 0, q, p, 3, ks, 3, 2, 1, &r), SP_OK);
    CHECK_NEAR(r.hit[0], 0, 0);
    CHECK_NEAR(r.hit[2], 1 / 3.0, TOL);
    CHECK_NEAR(r.mrr, (1 / 3.0 + 1 / 4.0 + 1 / 5.0) / 3, TOL);
    CHECK_NEAR(r.mrr_scaled, (1 / 2.0 + 1 / 2.0 + 1 / 3.0) / 3, TOL); /* ceil(rank / 2) = 2, 2, 3 */
    uint32_t pool[] = {4, 1, 0};      /* q is in the pool (ignored), p = 2 and 3 are not */
    CHECK_RC(sp_metrics_related(E, 6, 1, pool, 3, q, p, 3, ks, 3, 2, 1, &r), SP_OK);
    /* rank(2) = 1 + |{1}| = 2, rank(3) = 2, rank(4) = 1 + |{1}| = 2 */
    CHECK_NEAR(r.mrr, 0.5, TOL);
    CHECK_NEAR(r.hit[0], 0, 0);
    CHECK_NEAR(r.hit[1], 1, 0);
    uint32_t dup[] = {1, 4, 1};
    CHECK_RC(sp_metrics_related(E, 6, 1, dup, 3, q, p, 3, ks, 3, 2, 1, &r), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "pool lists row 1 twice") != NULL);
    uint32_t qq[] = {2};
    CHECK_RC(sp_metrics_related(E, 6, 1, NULL, 0, qq, qq, 1, ks, 3, 2, 1, &r), SP_EINPUT);
}

int main(void) {
    test_topk_vs_reference(1);
    test_topk_vs_reference(0);
    test_topk_ties_by_index();
    test_topk_zero_row();
    test_topk_formulas();
    test_topk_errors();
    test_loo_vs_reference(1);
    test_loo_vs_reference(0);
    test_loo_formulas();
    test_loo_split();
    test_related_vs_reference(1);
    test_related_vs_reference(0);
    test_related_formulas();
    return CHECK_DONE();
}
