/* bench_metrics: wall time of the full-ranking evaluation (sage/metrics) on a
 * random problem of a public benchmark's size.
 *
 *   bench_metrics [--users 29858] [--items 40981] [--dim 64] [--k 20[,K...]]
 *                 [--threads 1,2] [--train 27] [--test 7] [--repeat 3]
 *                 [--loo-users 22363] [--loo-items 12101] [--seed 1]
 *                 [--gowalla DIR]
 *
 * Defaults: Gowalla's LightGCN split (29,858 users x 40,981 items; on average
 * 27 train and 7 test items per user) for sp_metrics_topk, then the Beauty
 * S3Rec size (22,363 users x 12,101 items, 8 history items) for
 * sp_metrics_loo (--loo-users 0 skips it). Embeddings are uniform in [-1, 1)
 * from the explicit RNG; only the metric call is timed (best of --repeat).
 * --gowalla DIR (train.txt/test.txt of the LightGCN split) also scores the
 * real split with the most-popular baseline (user vector 1, item vector =
 * the item's train count, d = 1) at every thread count: a check of the loader
 * and the protocol on real data, and the time of the ranking part alone.
 * One JSON line per (function, thread count) on stdout. BLAS is set up as
 * in the sagepipe binary (sp_blas_setup: one BLAS thread per metric thread,
 * OPENBLAS_CORETYPE for AVX-512 cores OpenBLAS 0.3.21 does not know). */
#include "blas_env.h"
#include "metrics.h"
#include "sp_base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc) {
    fprintf(stderr, "bench_metrics: %s: %s%s%s\n", what, sp_strerror(rc), *sp_errmsg() ? ": " : "", sp_errmsg());
    exit(1);
}

static int parse_list(const char *s, uint32_t *v, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        unsigned long x = strtoul(s, &end, 10);
        if (end == s || x == 0 || x > UINT32_MAX) return -1;
        v[n++] = (uint32_t)x;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return *s ? -1 : n;
}

static float *rand_matrix(uint32_t rows, uint32_t d, uint64_t seed, uint64_t purpose) {
    float *m = malloc(sizeof(float) * rows * d);
    if (!m) die("matrix", SP_ENOMEM);
    sp_rng r;
    sp_rng_init(&r, seed, purpose, 0);
    for (size_t i = 0; i < (size_t)rows * d; i++) m[i] = (float)(sp_rng_unif(&r) * 2 - 1);
    return m;
}

/* 1..2*mean-1 random items per user. */
static sp_lists rand_lists(uint32_t n, uint32_t ni, uint32_t mean, uint64_t seed, uint64_t purpose) {
    sp_lists l = {n, ni, malloc(sizeof(uint64_t) * (n + 1)), malloc(sizeof(uint32_t) * ((size_t)n * 2 * mean + 1))};
    if (!l.off || !l.idx) die("lists", SP_ENOMEM);
    sp_rng r;
    sp_rng_init(&r, seed, purpose, 1);
    l.off[0] = 0;
    for (uint32_t u = 0; u < n; u++) {
        uint64_t len = 1 + sp_rng_below(&r, 2 * (uint64_t)mean - 1);
        for (uint64_t k = 0; k < len; k++) l.idx[l.off[u] + k] = (uint32_t)sp_rng_below(&r, ni);
        l.off[u + 1] = l.off[u] + len;
    }
    return l;
}

/* Most-popular baseline on the LightGCN split in dir (see the header). */
static void mostpop(const char *dir, const uint32_t *ks, int nk, const uint32_t *th, int nth) {
    char path[4096];
    sp_lists train, test;
    int rc;
    snprintf(path, sizeof path, "%s/train.txt", dir);
    if ((rc = sp_lists_load_lightgcn(path, &train, NULL))) die("load train", rc);
    snprintf(path, sizeof path, "%s/test.txt", dir);
    if ((rc = sp_lists_load_lightgcn(path, &test, NULL))) die("load test", rc);
    uint32_t nu = train.n > test.n ? train.n : test.n, ni = train.ncols > test.ncols ? train.ncols : test.ncols;
    float *U = malloc(sizeof(float) * nu), *V = calloc(ni, sizeof(float));
    if (!U || !V) die("mostpop", SP_ENOMEM);
    for (uint32_t u = 0; u < nu; u++) U[u] = 1;
    for (uint64_t e = 0; e < train.off[train.n]; e++) V[train.idx[e]] += 1;
    for (int t = 0; t < nth; t++) {
        sp_topk_result r;
        double a = now_s();
        if ((rc = sp_metrics_topk(U, nu, V, ni, 1, &train, &test, ks, nk, (int)th[t], &r))) die("mostpop", rc);
        printf("{\"bench\":\"metrics_topk_mostpop\",\"data\":\"%s\",\"users\":%llu,\"items\":%u,\"k\":%u,"
               "\"threads\":%u,\"seconds\":%.3f,\"recall\":%.4f,\"ndcg\":%.4f}\n",
               dir, (unsigned long long)r.users, ni, ks[0], th[t], now_s() - a, r.recall[0], r.ndcg[0]);
        fflush(stdout);
    }
    free(U);
    free(V);
    sp_lists_free(&train);
    sp_lists_free(&test);
}

int main(int argc, char **argv) {
    sp_blas_setup(argv); /* may re-exec */
    uint32_t nu = 29858, ni = 40981, d = 64, train_mean = 27, test_mean = 7, repeat = 3;
    uint32_t loo_users = 22363, loo_items = 12101, ks[SP_METRICS_MAX_K] = {20}, th[16] = {1, 2};
    int nk = 1, nth = 2;
    uint64_t seed = 1;
    const char *gowalla = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto usage;
        if (!strcmp(a, "--users")) nu = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--items")) ni = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--dim")) d = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--train")) train_mean = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--test")) test_mean = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--repeat")) repeat = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--loo-users")) loo_users = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--loo-items")) loo_items = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--gowalla")) gowalla = v;
        else if (!strcmp(a, "--k")) {
            if ((nk = parse_list(v, ks, SP_METRICS_MAX_K)) < 1) goto usage;
        } else if (!strcmp(a, "--threads")) {
            if ((nth = parse_list(v, th, 16)) < 1) goto usage;
        } else goto usage;
        i++;
    }
    if (!nu || !ni || !d || !train_mean || !test_mean || !repeat) goto usage;

    double t0 = now_s();
    float *U = rand_matrix(nu, d, seed, 1), *V = rand_matrix(ni, d, seed, 2);
    sp_lists train = rand_lists(nu, ni, train_mean, seed, 3), test = rand_lists(nu, ni, test_mean, seed, 4);
    fprintf(stderr, "bench_metrics: topk data %.2f s; BLAS core %s (%s)\n", now_s() - t0, sp_blas_core(),
            sp_blas_reason());
    for (int t = 0; t < nth; t++) {
        double best = 1e30;
        sp_topk_result r;
        for (uint32_t rep = 0; rep < repeat; rep++) {
            double a = now_s();
            int rc = sp_metrics_topk(U, nu, V, ni, d, &train, &test, ks, nk, (int)th[t], &r);
            double s = now_s() - a;
            if (rc) die("sp_metrics_topk", rc);
            if (s < best) best = s;
        }
        printf("{\"bench\":\"metrics_topk\",\"users\":%u,\"items\":%u,\"dim\":%u,\"k\":%u,\"threads\":%u,"
               "\"seconds\":%.3f,\"users_per_s\":%.0f,\"score_gflops\":%.1f,\"recall\":%.6f}\n",
               nu, ni, d, ks[0], th[t], best, (double)r.users / best, 2.0 * nu * ni * d / best * 1e-9, r.recall[0]);
        fflush(stdout);
    }
    free(U);
    free(V);
    sp_lists_free(&train);
    sp_lists_free(&test);

    if (loo_users && loo_items) {
        U = rand_matrix(loo_users, d, seed, 5);
        V = rand_matrix(loo_items, d, seed, 6);
        sp_lists hist = rand_lists(loo_users, loo_items, 8, seed, 7);
        uint32_t *target = malloc(sizeof *target * loo_users);
        if (!target) die("targets", SP_ENOMEM);
        sp_rng r;
        sp_rng_init(&r, seed, 8, 0);
        for (uint32_t u = 0; u < loo_users; u++) target[u] = (uint32_t)sp_rng_below(&r, loo_items);
        for (int t = 0; t < nth; t++) {
            double best = 1e30;
            sp_loo_result res;
            for (uint32_t rep = 0; rep < repeat; rep++) {
                double a = now_s();
                int rc = sp_metrics_loo(U, loo_users, V, loo_items, d, &hist, target, ks, nk, (int)th[t], &res);
                double s = now_s() - a;
                if (rc) die("sp_metrics_loo", rc);
                if (s < best) best = s;
            }
            printf("{\"bench\":\"metrics_loo\",\"users\":%u,\"items\":%u,\"dim\":%u,\"k\":%u,\"threads\":%u,"
                   "\"seconds\":%.3f,\"users_per_s\":%.0f,\"hr\":%.6f}\n",
                   loo_users, loo_items, d, ks[0], th[t], best, (double)res.users / best, res.hr[0]);
            fflush(stdout);
        }
        free(U);
        free(V);
        free(target);
        sp_lists_free(&hist);
    }
    if (gowalla) mostpop(gowalla, ks, nk, th, nth);
    return 0;
usage:
    fprintf(stderr, "usage: bench_metrics [--users N] [--items N] [--dim D] [--k K[,K..]] [--threads N[,N..]]\n"
                    "       [--train MEAN] [--test MEAN] [--repeat R] [--loo-users N] [--loo-items N] [--seed S]\n"
                    "       [--gowalla DIR]\n");
    return 2;
}
