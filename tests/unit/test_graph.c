/* test_graph: the pruning rule, selection sampling (uniform subsets, order
 * kept, deterministic per node), degree statistics and CSR building. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "graph.h"

int main(void) {
    /* keep = min(d, max(min(floor(d^0.86), 10000), 10)) */
    CHECK_EQ_U64(sp_prune_keep(0, 0.86, 10000, 10), 0);
    CHECK_EQ_U64(sp_prune_keep(5, 0.86, 10000, 10), 5);
    CHECK_EQ_U64(sp_prune_keep(10, 0.86, 10000, 10), 10);
    CHECK_EQ_U64(sp_prune_keep(11, 0.86, 10000, 10), 10);
    CHECK_EQ_U64(sp_prune_keep(100, 0.86, 10000, 10), (uint64_t)floor(pow(100, 0.86)));
    CHECK_EQ_U64(sp_prune_keep(1000000, 0.86, 10000, 10), 10000);
    CHECK_EQ_U64(sp_prune_keep(1000, 1.0, 10000, 10), 1000);
    /* selection sampling: k kept, ascending order preserved, each item ~k/d often */
    enum { D = 20, K = 7, TRIALS = 40000 };
    uint64_t hits[D] = {0};
    for (int t = 0; t < TRIALS; t++) {
        uint64_t v[D];
        for (int i = 0; i < D; i++) v[i] = (uint64_t)i * 3;
        sp_rng r;
        sp_prune_rng(&r, 1, SP_BOARD, (uint64_t)t, 1);
        uint64_t n = sp_prune_select(v, D, K, &r);
        CHECK_EQ_U64(n, K);
        for (uint64_t i = 0; i < n; i++) {
            if (i) CHECK(v[i] > v[i - 1]);
            hits[v[i] / 3]++;
        }
    }
    double want = (double)TRIALS * K / D, sd = sqrt(want * (1 - (double)K / D));
    for (int i = 0; i < D; i++) CHECK_MSG(fabs((double)hits[i] - want) < 5 * sd, "item %d kept %llu times, want %.0f", i,
                                          (unsigned long long)hits[i], want);
    /* same node, same seed: same choice; other seed: (almost surely) other */
    uint64_t a[100], b[100], c[100];
    for (int i = 0; i < 100; i++) a[i] = b[i] = c[i] = (uint64_t)i;
    sp_rng r1, r2, r3;
    sp_prune_rng(&r1, 5, SP_PIN, 77, 0);
    sp_prune_rng(&r2, 5, SP_PIN, 77, 0);
    sp_prune_rng(&r3, 6, SP_PIN, 77, 0);
    sp_prune_select(a, 100, 30, &r1);
    sp_prune_select(b, 100, 30, &r2);
    sp_prune_select(c, 100, 30, &r3);
    CHECK(!memcmp(a, b, 30 * 8));
    CHECK(memcmp(a, c, 30 * 8));
    /* degree stats */
    sp_degstats s = {0}, s2 = {0};
    for (uint64_t d = 1; d <= 100; d++) sp_degstats_add(&s, d);
    sp_degstats_add(&s2, 5000);
    sp_degstats_merge(&s, &s2);
    CHECK_EQ_U64(s.nodes, 101);
    CHECK_EQ_U64(s.max, 5000);
    CHECK_EQ_U64(sp_degstats_quantile(&s, 0.5), 51);
    CHECK_EQ_U64(sp_degstats_quantile(&s, 1.0), 4096); /* log2 bucket lower bound */
    /* CSR from sorted pairs with pruning of the one big node */
    typedef struct { uint64_t s, d; } pr;
    pr p[40];
    uint64_t ids[4] = {3, 8, 9, 12}, n = 0;
    for (uint64_t j = 0; j < 3; j++) p[n++] = (pr){3, 100 + j};
    for (uint64_t j = 0; j < 30; j++) p[n++] = (pr){9, 200 + j};
    p[n++] = (pr){12, 7};
    sp_csr g;
    uint32_t deg[4];
    CHECK_RC(sp_csr_build(&g, ids, 4, p, n, sizeof(pr), 0, 8, SP_PIN, 0, 1, 0.86, 10000, 10, deg, NULL, NULL), SP_OK);
    CHECK_EQ_U64(g.off[1] - g.off[0], 3);
    CHECK_EQ_U64(g.off[2] - g.off[1], 0); /* isolated node 8 */
    CHECK_EQ_U64(g.off[3] - g.off[2], sp_prune_keep(30, 0.86, 10000, 10));
    CHECK_EQ_U64(g.adj[g.off[3]], 7);
    CHECK_EQ_INT(deg[2], 30);
    sp_csr_free(&g);
    /* unsorted pairs and unknown sources are internal errors, not crashes */
    pr bad[2] = {{3, 5}, {3, 4}};
    CHECK_RC(sp_csr_build(&g, ids, 4, bad, 2, sizeof(pr), 0, 8, SP_PIN, 0, 1, 0.86, 10000, 10, NULL, NULL, NULL),
             SP_EINTERNAL);
    pr stray[1] = {{4, 1}};
    CHECK_RC(sp_csr_build(&g, ids, 4, stray, 1, sizeof(pr), 0, 8, SP_PIN, 0, 1, 0.86, 10000, 10, NULL, NULL, NULL),
             SP_EINTERNAL);
    CHECK_EQ_INT(sp_id_find(ids, 4, 9), 2);
    CHECK_EQ_INT(sp_id_find(ids, 4, 10), -1);
    /* grefs */
    sp_gref x = sp_gref_make(3, 123456789);
    CHECK_EQ_INT(sp_gref_rank(x), 3);
    CHECK_EQ_U64(sp_gref_local(x), 123456789);
    return CHECK_DONE();
}
