/* metrics: full-ranking evaluation (recall/NDCG, leave-one-out HR/NDCG,
 * PinSage hit-rate/MRR). Scores come from cblas_sgemm over blocks of query
 * rows; excluded items are overwritten with NaN in the score block, which
 * every comparison below treats as "not a candidate". */
#include "metrics.h"

#include "sp_base.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Score blocks: topk keeps a per-user heap across item chunks, so it scores
 * TOPK_ROWS users x TOPK_CHUNK items at a time (a 2 MiB block that stays in
 * L2/L3 between the sgemm and the scan). loo and related need a query's whole
 * row at once (the target's score must come from the same sgemm as the
 * others), so their blocks are as many full rows as fit FULL_ROW_BYTES. */
#define TOPK_ROWS 128
#define TOPK_CHUNK 4096
#define FULL_ROWS_MAX 256
#define FULL_ROW_BYTES (8u << 20)

/* ---------------------------------------------------------------- shared */

static int check_args(const uint32_t *ks, int nk, int nthreads, uint32_t d, uint32_t ni, const char *fn) {
    if (nk < 1 || nk > SP_METRICS_MAX_K || !ks)
        return sp_err(SP_EUSAGE, "%s: need 1..%d cut-offs K, got %d", fn, SP_METRICS_MAX_K, nk);
    for (int i = 0; i < nk; i++)
        if (ks[i] < 1) return sp_err(SP_EUSAGE, "%s: cut-off K must be >= 1 (ks[%d] = %u)", fn, i, ks[i]);
    if (nthreads < 1 || nthreads > SP_METRICS_MAX_THREADS)
        return sp_err(SP_EUSAGE, "%s: nthreads %d not in [1, %d]", fn, nthreads, SP_METRICS_MAX_THREADS);
    if (d < 1 || d > INT_MAX) return sp_err(SP_EUSAGE, "%s: dimension %u not in [1, %d]", fn, d, INT_MAX);
    if (ni > INT_MAX) return sp_err(SP_EUSAGE, "%s: %u items is more than %d", fn, ni, INT_MAX);
    return SP_OK;
}

/* Every value of M (rows, d) finite. */
static int check_finite(const float *M, uint32_t rows, uint32_t d, const char *fn, const char *what) {
    if (rows && !M) return sp_err(SP_EUSAGE, "%s: %s is NULL", fn, what);
    size_t n = (size_t)rows * d;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(M[i]))
            return sp_err(SP_EINPUT, "%s: %s row %zu column %zu is not finite (%g)", fn, what, i / d, i % d,
                          (double)M[i]);
    return SP_OK;
}

/* Offsets non-decreasing from 0 and every item below ni. */
static int check_lists(const sp_lists *l, uint32_t ni, const char *fn, const char *what) {
    if (!l) return SP_OK;
    if (l->n && (!l->off || (l->off[l->n] && !l->idx)))
        return sp_err(SP_EUSAGE, "%s: %s lists have NULL arrays", fn, what);
    if (l->n && l->off[0] != 0) return sp_err(SP_EINPUT, "%s: %s lists: off[0] = %llu, not 0", fn, what,
                                              (unsigned long long)l->off[0]);
    for (uint32_t u = 0; u < l->n; u++) {
        if (l->off[u + 1] < l->off[u])
            return sp_err(SP_EINPUT, "%s: %s lists: offsets decrease at user %u", fn, what, u);
        for (uint64_t e = l->off[u]; e < l->off[u + 1]; e++)
            if (l->idx[e] >= ni)
                return sp_err(SP_EINPUT, "%s: %s: user %u lists item %u, but there are only %u items", fn, what,
                              u, l->idx[e], ni);
    }
    return SP_OK;
}

static inline uint64_t list_len(const sp_lists *l, uint32_t u) {
    return l && u < l->n ? l->off[u + 1] - l->off[u] : 0;
}
static inline const uint32_t *list_at(const sp_lists *l, uint32_t u) { return l->idx + l->off[u]; }

/* S (m, j1-j0) = A (m, d) . B[j0..j1)^T, all row-major. */
static void score_block(const float *A, uint32_t m, const float *B, uint32_t j0, uint32_t j1, uint32_t d,
                        float *S) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)(j1 - j0), (int)d, 1.0f, A, (int)d,
                B + (size_t)j0 * d, (int)d, 0.0f, S, (int)(j1 - j0));
}

/* 1/log2(r+2) for 0-based rank r. */
static inline double discount(uint64_t r) { return 1.0 / log2((double)r + 2.0); }

/* Full-row blocks: as many rows of `cols` floats as fit FULL_ROW_BYTES. */
static uint32_t full_rows(uint32_t cols) {
    size_t r = FULL_ROW_BYTES / ((size_t)(cols ? cols : 1) * sizeof(float));
    return r < 1 ? 1 : r > FULL_ROWS_MAX ? FULL_ROWS_MAX : (uint32_t)r;
}

/* Runs fn(ctx, tid, b) for every block b in [0, nblocks) on up to nthreads
 * threads (the caller is thread 0); blocks are claimed from an atomic counter.
 * fn cannot fail (all memory is allocated before). A thread that cannot be
 * started leaves its share to the others. */
typedef void (*block_fn)(void *ctx, int tid, uint64_t b);
typedef struct {
    block_fn fn;
    void *ctx;
    int tid;
    uint64_t nblocks;
    _Atomic uint64_t *next;
} runner;

static void *run_loop(void *arg) {
    runner *r = arg;
    for (uint64_t b; (b = atomic_fetch_add(r->next, 1)) < r->nblocks;) r->fn(r->ctx, r->tid, b);
    return NULL;
}

static void run_blocks(int nthreads, uint64_t nblocks, block_fn fn, void *ctx) {
    _Atomic uint64_t next = 0;
    runner rs[SP_METRICS_MAX_THREADS];
    pthread_t th[SP_METRICS_MAX_THREADS];
    int started[SP_METRICS_MAX_THREADS] = {0};
    if ((uint64_t)nthreads > nblocks) nthreads = nblocks ? (int)nblocks : 1;
    for (int t = 0; t < nthreads; t++) rs[t] = (runner){fn, ctx, t, nblocks, &next};
    for (int t = 1; t < nthreads; t++) started[t] = pthread_create(&th[t], NULL, run_loop, &rs[t]) == 0;
    run_loop(&rs[0]);
    for (int t = 1; t < nthreads; t++)
        if (started[t]) pthread_join(th[t], NULL);
}

/* Per-thread scratch: one allocation split by a size table. */
typedef struct {
    float *A;        /* (rows, d) gathered query rows */
    float *S;        /* (rows, cols) scores */
    void *heap;      /* topk: (rows, kmax) heap entries */
    uint32_t *hn;    /* topk: (rows) heap fill */
    uint32_t *who;   /* (rows) query of each gathered row */
    uint32_t *stamp; /* topk: (ni) test-item marks, 0 = none */
    void *mem;
} scratch;

static int scratch_alloc(scratch *s, uint32_t rows, uint32_t d, uint32_t cols, size_t heap_bytes, uint32_t ni_stamp) {
    size_t sz[6] = {(size_t)rows * d * sizeof(float), (size_t)rows * cols * sizeof(float), heap_bytes,
                    (size_t)rows * sizeof(uint32_t), (size_t)rows * sizeof(uint32_t), (size_t)ni_stamp * sizeof(uint32_t)};
    size_t total = 0, at[6];
    for (int i = 0; i < 6; i++) {
        at[i] = total;
        total += (sz[i] + 63) & ~(size_t)63;
    }
    char *m = NULL;
    if (posix_memalign((void **)&m, 64, total ? total : 64)) return SP_ENOMEM;
    memset(m + at[5], 0, sz[5]);
    *s = (scratch){(float *)(m + at[0]), (float *)(m + at[1]), m + at[2], (uint32_t *)(m + at[3]),
                   (uint32_t *)(m + at[4]), (uint32_t *)(m + at[5]), m};
    return SP_OK;
}

static void scratch_free(scratch *s, int n) {
    for (int i = 0; i < n; i++) free(s[i].mem);
}

/* Allocates n scratch sets; SP_ENOMEM naming fn. */
static int scratch_all(scratch *s, int n, uint32_t rows, uint32_t d, uint32_t cols, size_t heap_bytes,
                       uint32_t ni_stamp, const char *fn) {
    for (int t = 0; t < n; t++)
        if (scratch_alloc(&s[t], rows, d, cols, heap_bytes, ni_stamp)) {
            scratch_free(s, t);
            return sp_err(SP_ENOMEM, "%s: no memory for the score blocks of %d threads", fn, n);
        }
    return SP_OK;
}

/* ---------------------------------------------------------------- top-K */

/* Heap of the best kmax candidates so far; the root is the worst of them:
 * the lowest score, and among equal scores the largest index. */
typedef struct {
    float s;
    uint32_t j;
} hent;

static inline int worse(hent a, hent b) { return a.s < b.s || (a.s == b.s && a.j > b.j); }

static inline void sift_up(hent *h, uint32_t i) {
    hent x = h[i];
    while (i) {
        uint32_t p = (i - 1) / 2;
        if (!worse(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static inline void sift_down(hent *h, uint32_t n, uint32_t i) {
    hent x = h[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && worse(h[c + 1], h[c])) c++;
        if (!worse(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* Offers s[0..n) (items j0..j0+n, ascending) to the heap h holding *hn of
 * at most kmax entries. NaN = excluded. Because items arrive in ascending
 * index order, a candidate that only ties the root's score ranks after it,
 * so once the heap is full "s > root" is the whole test. */
static void heap_offer(hent *h, uint32_t *hn, uint32_t kmax, const float *s, uint32_t n, uint32_t j0) {
    uint32_t j = 0, c = *hn;
    for (; c < kmax && j < n; j++) {
        if (isnan(s[j])) continue;
        h[c] = (hent){s[j], j0 + j};
        sift_up(h, c++);
    }
    *hn = c;
    if (c < kmax) return;
    float thr = h[0].s;
    enum { W = 16 };
    for (; j + W <= n; j += W) {
        int any = 0; /* vectorised pre-test: most groups hold no candidate */
        for (int t = 0; t < W; t++) any |= s[j + t] > thr;
        if (!any) continue;
        for (int t = 0; t < W; t++)
            if (s[j + t] > thr) {
                h[0] = (hent){s[j + t], j0 + j + (uint32_t)t};
                sift_down(h, kmax, 0);
                thr = h[0].s;
            }
    }
    for (; j < n; j++)
        if (s[j] > thr) {
            h[0] = (hent){s[j], j0 + j};
            sift_down(h, kmax, 0);
            thr = h[0].s;
        }
}

/* Heap-sorts h[0..n) in place into best-first order. */
static void heap_sort_best_first(hent *h, uint32_t n) {
    for (uint32_t m = n; m > 1; m--) {
        hent t = h[0]; /* worst of h[0..m) goes to the end */
        h[0] = h[m - 1];
        h[m - 1] = t;
        sift_down(h, m - 1, 0);
    }
}

typedef struct {
    const float *U, *V;
    uint32_t ni, d, nusers; /* users 0..nusers-1 may have test items */
    const sp_lists *train, *test;
    const uint32_t *ks;
    int nk;
    uint32_t kmax;
    scratch *sc;
    double *sums;     /* (nblocks, 2 nk): recall sums, then NDCG sums */
    uint64_t *nusr;   /* (nblocks) users evaluated */
    const double *idcg; /* (min(kmax, ni)+1) idcg[c] = sum_{r<c} 1/log2(r+2) */
} topk_ctx;

static void topk_block(void *arg, int tid, uint64_t b) {
    topk_ctx *c = arg;
    scratch *s = &c->sc[tid];
    hent *heaps = s->heap;
    uint32_t u0 = (uint32_t)(b * TOPK_ROWS), u1 = u0 + TOPK_ROWS > c->nusers ? c->nusers : u0 + TOPK_ROWS;
    uint32_t m = 0, d = c->d;
    for (uint32_t u = u0; u < u1; u++) {
        if (!list_len(c->test, u)) continue;
        memcpy(s->A + (size_t)m * d, c->U + (size_t)u * d, d * sizeof(float));
        s->who[m] = u;
        s->hn[m++] = 0;
    }
    double *sum = c->sums + b * 2 * (uint64_t)c->nk;
    c->nusr[b] = m;
    if (!m) return;
    uint32_t kh = c->kmax < c->ni ? c->kmax : c->ni;
    for (uint32_t j0 = 0; j0 < c->ni; j0 += TOPK_CHUNK) {
        uint32_t j1 = j0 + TOPK_CHUNK > c->ni ? c->ni : j0 + TOPK_CHUNK, w = j1 - j0;
        score_block(s->A, m, c->V, j0, j1, d, s->S);
        for (uint32_t r = 0; r < m; r++) {
            float *row = s->S + (size_t)r * w;
            uint32_t u = s->who[r];
            uint64_t ntr = list_len(c->train, u);
            const uint32_t *tr = ntr ? list_at(c->train, u) : NULL;
            for (uint64_t e = 0; e < ntr; e++)
                if (tr[e] >= j0 && tr[e] < j1) row[tr[e] - j0] = NAN;
            heap_offer(heaps + (size_t)r * kh, &s->hn[r], kh, row, w, j0);
        }
    }
    for (uint32_t r = 0; r < m; r++) {
        uint32_t u = s->who[r], tag = u + 1, n = s->hn[r];
        /* a row of zeros (no vector for the user) ranks nothing: every score ties, and a tie-break by item id
         * is not a prediction */
        const float *ur = s->A + (size_t)r * d;
        uint32_t nz = 0;
        for (uint32_t t = 0; t < d; t++) nz |= ur[t] != 0.0f;
        if (!nz) n = 0;
        hent *h = heaps + (size_t)r * kh;
        heap_sort_best_first(h, n);
        const uint32_t *te = list_at(c->test, u);
        uint64_t nte = list_len(c->test, u), distinct = 0;
        for (uint64_t e = 0; e < nte; e++)
            if (s->stamp[te[e]] != tag) {
                s->stamp[te[e]] = tag;
                distinct++;
            }
        /* walk the ranked list once, closing each cut-off when it is reached
         * (or at the end of the list when K exceeds the candidates) */
        uint64_t hits = 0;
        double dcg = 0, rec_at[SP_METRICS_MAX_K], ndcg_at[SP_METRICS_MAX_K];
        int closed[SP_METRICS_MAX_K] = {0};
        for (uint32_t i = 0;; i++) {
            for (int k = 0; k < c->nk; k++)
                if (!closed[k] && (i == c->ks[k] || i == n)) {
                    uint64_t ideal = distinct < c->ks[k] ? distinct : c->ks[k];
                    rec_at[k] = (double)hits / (double)distinct;
                    ndcg_at[k] = dcg / c->idcg[ideal];
                    closed[k] = 1;
                }
            if (i == n) break;
            if (s->stamp[h[i].j] == tag) {
                hits++;
                dcg += discount(i);
            }
        }
        for (int k = 0; k < c->nk; k++) {
            sum[k] += rec_at[k];
            sum[c->nk + k] += ndcg_at[k];
        }
    }
}

int sp_metrics_topk_rows(const float *U, const float *V, uint32_t ni, uint32_t d, const sp_lists *train,
                         const sp_lists *test, uint32_t lo, uint32_t hi, const uint32_t *ks, int nk, int nthreads,
                         sp_topk_result *out) {
    if (!test || !out) return sp_err(SP_EUSAGE, "metrics topk: test lists and out are required");
    sp_lists bt, br = {0};
    int rc = sp_lists_rows(test, lo, hi, &bt);
    if (!rc && train) rc = sp_lists_rows(train, lo, hi, &br);
    if (!rc && bt.n)
        rc = sp_metrics_topk(U + (size_t)lo * d, bt.n, V, ni, d, train ? &br : NULL, &bt, ks, nk, nthreads, out);
    else if (!rc) { /* nobody to score in this block */
        memset(out, 0, sizeof *out);
        out->nk = nk;
        for (int i = 0; i < nk && i < SP_METRICS_MAX_K; i++) out->k[i] = ks[i];
    }
    free(bt.off);
    free(br.off);
    return rc;
}

int sp_metrics_topk(const float *U, uint32_t nu, const float *V, uint32_t ni, uint32_t d, const sp_lists *train,
                    const sp_lists *test, const uint32_t *ks, int nk, int nthreads, sp_topk_result *out) {
    static const char fn[] = "metrics topk";
    int rc;
    if ((rc = check_args(ks, nk, nthreads, d, ni, fn))) return rc;
    if (!test || !out) return sp_err(SP_EUSAGE, "%s: test lists and out are required", fn);
    if ((rc = check_lists(train, ni, fn, "train")) || (rc = check_lists(test, ni, fn, "test"))) return rc;
    for (uint32_t u = nu; u < test->n; u++)
        if (list_len(test, u))
            return sp_err(SP_EINPUT, "%s: user %u has test items but no embedding (%u user rows)", fn, u, nu);
    if ((rc = check_finite(U, nu, d, fn, "user embedding")) || (rc = check_finite(V, ni, d, fn, "item embedding")))
        return rc;

    uint32_t kmax = 0;
    for (int k = 0; k < nk; k++) kmax = ks[k] > kmax ? ks[k] : kmax;
    uint32_t kh = kmax < ni ? kmax : ni;
    uint32_t nusers = nu < test->n ? nu : test->n;
    uint64_t nblocks = ((uint64_t)nusers + TOPK_ROWS - 1) / TOPK_ROWS;
    uint32_t cols = ni < TOPK_CHUNK ? ni : TOPK_CHUNK;
    scratch sc[SP_METRICS_MAX_THREADS];
    int nth = (uint64_t)nthreads > nblocks ? (int)(nblocks ? nblocks : 1) : nthreads;
    double *idcg = malloc(((size_t)kh + 1) * sizeof *idcg); /* ideal lengths <= min(K, |test|) <= kh */
    double *sums = calloc(nblocks * 2 * (size_t)nk + 1, sizeof *sums);
    uint64_t *nusr = calloc(nblocks + 1, sizeof *nusr);
    if (!idcg || !sums || !nusr) {
        rc = sp_err(SP_ENOMEM, "%s: no memory for %llu blocks", fn, (unsigned long long)nblocks);
        goto done_nosc;
    }
    if ((rc = scratch_all(sc, nth, TOPK_ROWS, d, cols, (size_t)TOPK_ROWS * kh * sizeof(hent), ni, fn)))
        goto done_nosc;
    idcg[0] = 0;
    for (uint32_t r = 0; r < kh; r++) idcg[r + 1] = idcg[r] + discount(r);
    topk_ctx c = {U, V, ni, d, nusers, train, test, ks, nk, kmax, sc, sums, nusr, idcg};
    run_blocks(nth, nblocks, topk_block, &c);
    scratch_free(sc, nth);

    sp_topk_result r = {.nk = nk};
    for (uint64_t b = 0; b < nblocks; b++) {
        r.users += nusr[b];
        for (int k = 0; k < nk; k++) {
            r.recall[k] += sums[b * 2 * nk + k];
            r.ndcg[k] += sums[b * 2 * nk + nk + k];
        }
    }
    for (int k = 0; k < nk; k++) {
        r.k[k] = ks[k];
        if (r.users) {
            r.recall[k] /= (double)r.users;
            r.ndcg[k] /= (double)r.users;
        }
    }
    r.skipped = nu - r.users;
    *out = r;
done_nosc:
    free(idcg);
    free(sums);
    free(nusr);
    return rc;
}

/* ------------------------------------------------- rank of one target */

/* Number of columns of s[0..n) that rank before a target scoring st, by
 * (score desc, item asc). Columns are in ascending item order and split is the
 * target's position: columns below it win ties, the others must score higher.
 * The target's own column (if it is split) is therefore never counted; a
 * target outside [0, n) (a positive not in the pool) has split = its
 * insertion point. NaN = excluded, fails both tests. */
static uint64_t count_before(const float *s, uint32_t split, uint32_t n, float st) {
    uint64_t c = 0;
    for (uint32_t j = 0; j < split; j++) c += s[j] >= st;
    for (uint32_t j = split; j < n; j++) c += s[j] > st;
    return c;
}

/* ------------------------------------------------------- leave-one-out */

typedef struct {
    const float *U, *V;
    uint32_t nu, ni, d, rows;
    const sp_lists *hist;
    const uint32_t *target;
    const uint32_t *ks;
    int nk;
    scratch *sc;
    double *sums;   /* (nblocks, 2 nk + 1): HR sums, NDCG sums, MRR sum */
    uint64_t *cnt;  /* (nblocks, 2): users evaluated, targets in history */
} loo_ctx;

static void loo_block(void *arg, int tid, uint64_t b) {
    loo_ctx *c = arg;
    scratch *s = &c->sc[tid];
    uint32_t u0 = (uint32_t)(b * c->rows), u1 = u0 + c->rows > c->nu ? c->nu : u0 + c->rows;
    uint32_t m = 0, d = c->d;
    for (uint32_t u = u0; u < u1; u++) {
        if (c->target[u] == SP_NO_ITEM) continue;
        memcpy(s->A + (size_t)m * d, c->U + (size_t)u * d, d * sizeof(float));
        s->who[m++] = u;
    }
    double *sum = c->sums + b * (2 * (uint64_t)c->nk + 1);
    c->cnt[2 * b] = m;
    if (!m) return;
    score_block(s->A, m, c->V, 0, c->ni, d, s->S);
    for (uint32_t r = 0; r < m; r++) {
        float *row = s->S + (size_t)r * c->ni;
        uint32_t u = s->who[r], t = c->target[u];
        uint64_t nh = list_len(c->hist, u);
        const uint32_t *h = nh ? list_at(c->hist, u) : NULL;
        int in_hist = 0;
        for (uint64_t e = 0; e < nh; e++) {
            if (h[e] == t) in_hist = 1;
            else row[h[e]] = NAN;
        }
        c->cnt[2 * b + 1] += (uint64_t)in_hist;
        uint64_t rank = count_before(row, t, c->ni, row[t]);
        for (int k = 0; k < c->nk; k++)
            if (rank < c->ks[k]) {
                sum[k] += 1.0;
                sum[c->nk + k] += discount(rank);
            }
        sum[2 * c->nk] += 1.0 / (double)(rank + 1);
    }
}

int sp_metrics_loo(const float *U, uint32_t nu, const float *V, uint32_t ni, uint32_t d, const sp_lists *history,
                   const uint32_t *target, const uint32_t *ks, int nk, int nthreads, sp_loo_result *out) {
    static const char fn[] = "metrics loo";
    int rc;
    if ((rc = check_args(ks, nk, nthreads, d, ni, fn))) return rc;
    if ((nu && !target) || !out) return sp_err(SP_EUSAGE, "%s: targets and out are required", fn);
    if ((rc = check_lists(history, ni, fn, "history"))) return rc;
    for (uint32_t u = 0; u < nu; u++)
        if (target[u] != SP_NO_ITEM && target[u] >= ni)
            return sp_err(SP_EINPUT, "%s: user %u has target item %u, but there are only %u items", fn, u,
                          target[u], ni);
    if ((rc = check_finite(U, nu, d, fn, "user embedding")) || (rc = check_finite(V, ni, d, fn, "item embedding")))
        return rc;

    uint32_t rows = full_rows(ni);
    uint64_t nblocks = ((uint64_t)nu + rows - 1) / rows;
    int nth = (uint64_t)nthreads > nblocks ? (int)(nblocks ? nblocks : 1) : nthreads;
    scratch sc[SP_METRICS_MAX_THREADS];
    size_t per = 2 * (size_t)nk + 1;
    double *sums = calloc(nblocks * per + 1, sizeof *sums);
    uint64_t *cnt = calloc(2 * nblocks + 1, sizeof *cnt);
    if (!sums || !cnt) {
        rc = sp_err(SP_ENOMEM, "%s: no memory for %llu blocks", fn, (unsigned long long)nblocks);
        goto done;
    }
    if ((rc = scratch_all(sc, nth, rows, d, ni, 0, 0, fn))) goto done;
    loo_ctx c = {U, V, nu, ni, d, rows, history, target, ks, nk, sc, sums, cnt};
    run_blocks(nth, nblocks, loo_block, &c);
    scratch_free(sc, nth);

    sp_loo_result r = {.nk = nk};
    for (uint64_t b = 0; b < nblocks; b++) {
        r.users += cnt[2 * b];
        r.target_in_history += cnt[2 * b + 1];
        for (int k = 0; k < nk; k++) {
            r.hr[k] += sums[b * per + k];
            r.ndcg[k] += sums[b * per + nk + k];
        }
        r.mrr += sums[b * per + 2 * nk];
    }
    for (int k = 0; k < nk; k++) {
        r.k[k] = ks[k];
        if (r.users) {
            r.hr[k] /= (double)r.users;
            r.ndcg[k] /= (double)r.users;
        }
    }
    if (r.users) r.mrr /= (double)r.users;
    r.skipped = nu - r.users;
    *out = r;
done:
    free(sums);
    free(cnt);
    return rc;
}

int sp_metrics_loo_split(const sp_lists *seq, int holdout, sp_lists *history, uint32_t *target) {
    if (!seq || !history || (seq->n && !target)) return sp_err(SP_EUSAGE, "loo split: seq, history and target are required");
    if (holdout < 1) return sp_err(SP_EUSAGE, "loo split: holdout must be >= 1 (got %d)", holdout);
    uint64_t *off = malloc(((size_t)seq->n + 1) * sizeof *off);
    uint64_t total = 0;
    if (off) {
        off[0] = 0;
        for (uint32_t u = 0; u < seq->n; u++) {
            uint64_t len = list_len(seq, u);
            uint64_t keep = len > (uint64_t)holdout ? len - (uint64_t)holdout : 0;
            total += keep;
            off[u + 1] = total;
        }
    }
    uint32_t *idx = off ? malloc((total ? total : 1) * sizeof *idx) : NULL;
    if (!off || !idx) {
        free(off);
        return sp_err(SP_ENOMEM, "loo split: no memory for %u users", seq->n);
    }
    for (uint32_t u = 0; u < seq->n; u++) {
        uint64_t keep = off[u + 1] - off[u];
        const uint32_t *items = list_len(seq, u) ? list_at(seq, u) : NULL;
        if (keep) memcpy(idx + off[u], items, keep * sizeof *idx);
        target[u] = keep ? items[keep] : SP_NO_ITEM;
    }
    *history = (sp_lists){.n = seq->n, .ncols = seq->ncols, .off = off, .idx = idx};
    return SP_OK;
}

/* ------------------------------------------------------- related pins */

typedef struct {
    const float *E, *B; /* B (ncols, d): the pool's rows in ascending row order, then extra positives */
    uint32_t d, ncols, npool, rows;
    const uint32_t *q, *qcol, *pcol, *psplit; /* per pair: query row; columns of q (or SP_NO_ITEM), of p; insertion point of p in the pool */
    uint64_t npairs;
    const uint32_t *ks;
    int nk;
    uint32_t scale;
    scratch *sc;
    double *sums; /* (nblocks, nk + 2): hits, scaled MRR, MRR */
} rel_ctx;

static void rel_block(void *arg, int tid, uint64_t b) {
    rel_ctx *c = arg;
    scratch *s = &c->sc[tid];
    uint64_t i0 = b * c->rows, i1 = i0 + c->rows > c->npairs ? c->npairs : i0 + c->rows;
    uint32_t m = (uint32_t)(i1 - i0), d = c->d;
    for (uint32_t r = 0; r < m; r++)
        memcpy(s->A + (size_t)r * d, c->E + (size_t)c->q[i0 + r] * d, d * sizeof(float));
    score_block(s->A, m, c->B, 0, c->ncols, d, s->S);
    double *sum = c->sums + b * ((uint64_t)c->nk + 2);
    for (uint32_t r = 0; r < m; r++) {
        uint64_t i = i0 + r;
        float *row = s->S + (size_t)r * c->ncols;
        if (c->qcol[i] != SP_NO_ITEM) row[c->qcol[i]] = NAN;
        uint64_t rank = 1 + count_before(row, c->psplit[i], c->npool, row[c->pcol[i]]);
        for (int k = 0; k < c->nk; k++) sum[k] += rank <= c->ks[k];
        sum[c->nk] += 1.0 / (double)((rank + c->scale - 1) / c->scale);
        sum[c->nk + 1] += 1.0 / (double)rank;
    }
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Position of x in sorted v[n], or the insertion point with *found = 0. */
static uint32_t lower_bound(const uint32_t *v, uint32_t n, uint32_t x, int *found) {
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (v[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    *found = lo < n && v[lo] == x;
    return lo;
}

int sp_metrics_related(const float *E, uint32_t n, uint32_t d, const uint32_t *pool, uint32_t npool,
                       const uint32_t *q, const uint32_t *p, uint64_t npairs, const uint32_t *ks, int nk,
                       uint32_t mrr_scale, int nthreads, sp_related_result *out) {
    static const char fn[] = "metrics related";
    int rc;
    if ((rc = check_args(ks, nk, nthreads, d, n, fn))) return rc;
    if ((npairs && (!q || !p)) || !out) return sp_err(SP_EUSAGE, "%s: pairs and out are required", fn);
    if (!mrr_scale) mrr_scale = 100;
    for (uint64_t i = 0; i < npairs; i++) {
        if (q[i] >= n || p[i] >= n)
            return sp_err(SP_EINPUT, "%s: pair %llu (%u, %u) names a row >= %u", fn, (unsigned long long)i, q[i],
                          p[i], n);
        if (q[i] == p[i])
            return sp_err(SP_EINPUT, "%s: pair %llu has query = positive = row %u", fn, (unsigned long long)i, q[i]);
    }
    if ((rc = check_finite(E, n, d, fn, "embedding"))) return rc;

    uint32_t *sorted = NULL, *extra = NULL, *per = NULL, nextra = 0, np = pool ? npool : n;
    float *B = NULL;
    double *sums = NULL;
    scratch sc[SP_METRICS_MAX_THREADS];
    if (pool) {
        /* columns: the pool in ascending row order, then the positives that
         * are not in it, so that their scores come from the same sgemm */
        sorted = malloc(((size_t)npool + 1) * sizeof *sorted);
        extra = malloc((npairs + 1) * sizeof *extra);
        if (!sorted || !extra) goto nomem;
        memcpy(sorted, pool, (size_t)npool * sizeof *sorted);
        qsort(sorted, npool, sizeof *sorted, cmp_u32);
        for (uint32_t j = 0; j < npool; j++) {
            if (sorted[j] >= n) {
                rc = sp_err(SP_EINPUT, "%s: pool row %u >= %u", fn, sorted[j], n);
                goto done;
            }
            if (j && sorted[j] == sorted[j - 1]) {
                rc = sp_err(SP_EINPUT, "%s: pool lists row %u twice", fn, sorted[j]);
                goto done;
            }
        }
        for (uint64_t i = 0; i < npairs; i++) {
            int found;
            lower_bound(sorted, npool, p[i], &found);
            if (!found) extra[nextra++] = p[i];
        }
        qsort(extra, nextra, sizeof *extra, cmp_u32);
        uint32_t w = 0;
        for (uint32_t j = 0; j < nextra; j++)
            if (!w || extra[j] != extra[w - 1]) extra[w++] = extra[j];
        nextra = w;
        if ((uint64_t)npool + nextra > INT_MAX) {
            rc = sp_err(SP_EUSAGE, "%s: %u pool rows and %u extra positives are too many columns", fn, npool, nextra);
            goto done;
        }
        if (!(B = malloc(((size_t)npool + nextra) * d * sizeof *B + 1))) goto nomem;
        for (uint32_t j = 0; j < npool + nextra; j++) {
            uint32_t row = j < npool ? sorted[j] : extra[j - npool];
            memcpy(B + (size_t)j * d, E + (size_t)row * d, d * sizeof *B);
        }
    }
    uint32_t ncols = np + nextra;
    if (!(per = malloc((3 * npairs + 1) * sizeof *per))) goto nomem;
    uint32_t *qcol = per, *pcol = per + npairs, *psplit = per + 2 * npairs;
    for (uint64_t i = 0; i < npairs; i++) {
        if (!pool) {
            qcol[i] = q[i];
            pcol[i] = psplit[i] = p[i];
            continue;
        }
        int found;
        uint32_t at = lower_bound(sorted, npool, q[i], &found);
        qcol[i] = found ? at : SP_NO_ITEM;
        psplit[i] = lower_bound(sorted, npool, p[i], &found);
        pcol[i] = found ? psplit[i] : npool + lower_bound(extra, nextra, p[i], &found);
    }
    uint32_t rows = full_rows(ncols);
    uint64_t nblocks = (npairs + rows - 1) / rows;
    int nth = (uint64_t)nthreads > nblocks ? (int)(nblocks ? nblocks : 1) : nthreads;
    if (!(sums = calloc(nblocks * ((size_t)nk + 2) + 1, sizeof *sums))) goto nomem;
    if ((rc = scratch_all(sc, nth, rows, d, ncols, 0, 0, fn))) goto done;
    rel_ctx c = {E, pool ? B : E, d, ncols, np, rows, q, qcol, pcol, psplit, npairs, ks, nk, mrr_scale, sc, sums};
    run_blocks(nth, nblocks, rel_block, &c);
    scratch_free(sc, nth);

    sp_related_result r = {.nk = nk, .pairs = npairs, .pool = np, .mrr_scale = mrr_scale};
    for (uint64_t b = 0; b < nblocks; b++) {
        for (int k = 0; k < nk; k++) r.hit[k] += sums[b * (nk + 2) + k];
        r.mrr_scaled += sums[b * (nk + 2) + nk];
        r.mrr += sums[b * (nk + 2) + nk + 1];
    }
    for (int k = 0; k < nk; k++) {
        r.k[k] = ks[k];
        if (npairs) r.hit[k] /= (double)npairs;
    }
    if (npairs) {
        r.mrr_scaled /= (double)npairs;
        r.mrr /= (double)npairs;
    }
    *out = r;
    goto done;
nomem:
    rc = sp_err(SP_ENOMEM, "%s: no memory for a pool of %u rows and %llu pairs", fn, np, (unsigned long long)npairs);
done:
    free(sorted);
    free(extra);
    free(B);
    free(per);
    free(sums);
    return rc;
}
