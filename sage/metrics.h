/* metrics: held-out quality of embeddings by full ranking -- pure computation,
 * no I/O. Scores are dot products computed in blocks with cblas_sgemm; every
 * ranking orders candidates by (score descending, item index ascending), so
 * ties are broken deterministically and results do not depend on nthreads.
 *
 *   sp_metrics_topk     LightGCN / NGCF protocol: recall@K, NDCG@K
 *   sp_metrics_loo      leave-one-out (S3Rec protocol): HR@K, NDCG@K
 *   sp_metrics_related  PinSage related-pin protocol: hit-rate@K, MRR
 *
 * Threads: nthreads workers (pthreads, the caller's thread included) take
 * fixed blocks of query rows; per-block sums are added in block order, so
 * the figures are bit-identical for any nthreads. BLAS should run one thread
 * per caller thread (sagepipe sets OPENBLAS_NUM_THREADS=1 by default).
 * Input embeddings must be finite (checked: SP_EINPUT naming the row). */
#ifndef SP_METRICS_H
#define SP_METRICS_H

#include "userlists.h"

#include <stdint.h>

#define SP_METRICS_MAX_K 8
#define SP_METRICS_MAX_THREADS 64

/* LightGCN protocol, for each user u with at least one test item:
 *   scores s_j = <U_u, V_j> for all items j; u's train items are removed from
 *   the ranking (never in the top K; a test item that is also a train item
 *   therefore cannot be hit but still counts in |test|);
 *   recall@K = |topK ∩ test| / |test|            (|test| = distinct test items)
 *   NDCG@K   = sum_{r < K, item r in test} 1/log2(r+2) / IDCG,
 *              IDCG = sum_{r < min(K, |test|)} 1/log2(r+2)   (r 0-based)
 * and the means over the evaluated users. K larger than the candidates just
 * ranks them all. A user whose row of U is all zeros (no vector: the eval
 * stage's users without one) ranks nothing and counts with recall and NDCG 0. */
typedef struct {
    int nk;                           /* cut-offs, as given */
    uint32_t k[SP_METRICS_MAX_K];
    uint64_t users;                   /* users evaluated (>= 1 test item) */
    uint64_t skipped;                 /* users in 0..nu-1 without test items */
    double recall[SP_METRICS_MAX_K];  /* mean recall@k[i] */
    double ndcg[SP_METRICS_MAX_K];    /* mean NDCG@k[i] */
} sp_topk_result;

/* U (nu, d) user rows, V (ni, d) item rows, both row-major float.
 * train: items to exclude per user (NULL = none; rows past nu are ignored,
 * users past train->n exclude nothing). test: held-out items per user (users
 * past test->n have none). ks[nk]: cut-offs, each >= 1, 1 <= nk <=
 * SP_METRICS_MAX_K. nthreads in [1, SP_METRICS_MAX_THREADS].
 * SP_EINPUT: an item index >= ni in train or test, a user with test items but
 * no row in U (u >= nu), a non-finite embedding value. SP_EUSAGE: bad
 * arguments. SP_ENOMEM. *out is filled only on success. */
int sp_metrics_topk(const float *U, uint32_t nu, const float *V, uint32_t ni, uint32_t d, const sp_lists *train,
                    const sp_lists *test, const uint32_t *ks, int nk, int nthreads, sp_topk_result *out);
/* sp_metrics_topk over the users [lo, hi) only (hi clipped to test->n; users past the test rows have no
 * test items): U is the whole user table (rows lo.. are read), train and test the whole lists (row views
 * of the block are made and dropped here). A rank scoring its block of the users this way and summing
 * recall·users, ndcg·users and users over the ranks gets the figures of one sp_metrics_topk over all
 * users. An empty block gives users = 0. Errors as sp_metrics_topk. */
int sp_metrics_topk_rows(const float *U, const float *V, uint32_t ni, uint32_t d, const sp_lists *train,
                         const sp_lists *test, uint32_t lo, uint32_t hi, const uint32_t *ks, int nk, int nthreads,
                         sp_topk_result *out);

/* Leave-one-out (S3Rec / ICLRec full ranking): one target item per user.
 *   rank(u) = #{candidates j != t : s_j > s_t, or s_j == s_t and j < t}  (0-based)
 * where candidates are all items but u's history items; the target itself
 * is never excluded, even when it also occurs in the history (a repeat
 * purchase could otherwise never be hit; such users are counted in
 * target_in_history). Excluded items are removed from the ranking -- not
 * given score 0 as the public S3Rec code does.
 *   HR@K = [rank < K],  NDCG@K = [rank < K] / log2(rank + 2),  MRR = 1/(rank+1)
 * averaged over users with a target. */
typedef struct {
    int nk;
    uint32_t k[SP_METRICS_MAX_K];
    uint64_t users;              /* users evaluated (target != SP_NO_ITEM) */
    uint64_t skipped;            /* users in 0..nu-1 without a target */
    uint64_t target_in_history;  /* evaluated users whose target is also a history item */
    double hr[SP_METRICS_MAX_K];
    double ndcg[SP_METRICS_MAX_K];
    double mrr;
} sp_loo_result;

/* U (nu, d), V (ni, d) as above; history: items to exclude per user (NULL =
 * none); target[nu]: the held-out item of each user, SP_NO_ITEM = not
 * evaluated. Errors as for sp_metrics_topk (a target >= ni is SP_EINPUT). */
int sp_metrics_loo(const float *U, uint32_t nu, const float *V, uint32_t ni, uint32_t d, const sp_lists *history,
                   const uint32_t *target, const uint32_t *ks, int nk, int nthreads, sp_loo_result *out);

/* The leave-one-out case `holdout` steps from the end of each sequence (in
 * time order): holdout 1 = test (history items[:-1], target items[-1]),
 * holdout 2 = validation (items[:-2] -> items[-2]). Users with fewer than
 * holdout + 1 items get an empty history and target SP_NO_ITEM.
 * history (seq->n rows) is owned by the caller afterwards (sp_lists_free);
 * target must hold seq->n entries. SP_EUSAGE for holdout < 1, SP_ENOMEM. */
int sp_metrics_loo_split(const sp_lists *seq, int holdout, sp_lists *history, uint32_t *target);

/* PinSage related-pin protocol (PinSage §4.2): for each pair (q, p) of item
 * rows of E, the rank of p among the candidate pool by <E_q, .>, q itself
 * excluded (p counts whether or not it is in the pool):
 *   rank = 1 + #{c in pool, c != q, c != p : s_c > s_p, or s_c == s_p and c < p}
 *   hit-rate@K = mean [rank <= K]
 *   MRR (scaled, PinSage) = mean 1 / ceil(rank / mrr_scale)   (mrr_scale 100 in
 *       the paper, pool of 5M items: ranks 1..100 score 1, 101..200 score 1/2)
 *   MRR (plain) = mean 1 / rank */
typedef struct {
    int nk;
    uint32_t k[SP_METRICS_MAX_K];
    uint64_t pairs;      /* pairs evaluated */
    uint32_t pool;       /* candidates (distinct rows) */
    uint32_t mrr_scale;
    double hit[SP_METRICS_MAX_K];
    double mrr_scaled;
    double mrr;
} sp_related_result;

/* E (n, d) item rows. pool[npool]: candidate rows, distinct (a repeat is
 * SP_EINPUT), any order; NULL = all n rows. q[npairs], p[npairs]: query and
 * positive rows (q != p). mrr_scale >= 1 (0 = 100). Errors as above (a row
 * >= n or q == p is SP_EINPUT). */
int sp_metrics_related(const float *E, uint32_t n, uint32_t d, const uint32_t *pool, uint32_t npool,
                       const uint32_t *q, const uint32_t *p, uint64_t npairs, const uint32_t *ks, int nk,
                       uint32_t mrr_scale, int nthreads, sp_related_result *out);

#endif
