/* bench_infer: layer-wise (MapReduce-style) inference of the PinSage encoder
 * on a synthetic graph, one process: nodes/s of sp_sage_embed_all, and the
 * GFLOP/s of its dense part (messages Q, CONVOLVE W, head G1/G2: gemm + bias
 * + ReLU) as a ratio to plain cblas_sgemm calls of the same shapes in the same
 * run. Prints one JSON object per measurement.
 *   bench_infer [--nodes N] [--pins P] [--nbrs T] [--dim D] [--layers K] [--repeat R] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas_env.h"
#include "log.h"
#include "sage.h"

static double best_of(double a, double b) { return a < b ? a : b; }

int main(int argc, char **argv) {
    sp_blas_setup(argv);
    uint64_t n = 200000, npins = 150000;
    int T = 50, d = 256, K = 2, repeat = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--nodes")) n = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--pins")) npins = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--nbrs")) T = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dim")) d = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--layers")) K = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_infer [--nodes N] [--pins P] [--nbrs T] [--dim D] [--layers K] [--repeat R]\n");
            return 2;
        }
    }
    if (npins >= n || T < 1 || d < 1 || K < 1 || K > SP_SAGE_MAXK || repeat < 1) {
        fprintf(stderr, "bench_infer: bad sizes\n");
        return 2;
    }
    /* T pins and T boards per node, power-law-ish popularity (squared uniform), weights L1-normalised */
    uint64_t *pn_off = malloc(8 * (n + 1)), *bn_off = malloc(8 * (n + 1));
    uint32_t *pn_idx = malloc(4 * n * T), *bn_idx = malloc(4 * n * T);
    float *pn_w = malloc(4 * n * T), *bn_w = malloc(4 * n * T), *logdeg = malloc(4 * n);
    float *out = malloc(4 * n * (size_t)d);
    if (!pn_off || !bn_off || !pn_idx || !bn_idx || !pn_w || !bn_w || !logdeg || !out) {
        fprintf(stderr, "bench_infer: out of memory\n");
        return 1;
    }
    sp_rng r;
    sp_rng_init(&r, 1, SP_RNG_GEN, 0);
    pn_off[0] = bn_off[0] = 0;
    for (uint64_t u = 0; u < n; u++) {
        for (int j = 0; j < T; j++) {
            double x = sp_rng_unif(&r), y = sp_rng_unif(&r);
            pn_idx[u * T + j] = (uint32_t)(x * x * (double)npins);
            bn_idx[u * T + j] = (uint32_t)(npins + y * y * (double)(n - npins));
            pn_w[u * T + j] = bn_w[u * T + j] = 1.f / (float)T;
        }
        pn_off[u + 1] = (u + 1) * T;
        bn_off[u + 1] = (u + 1) * T;
        logdeg[u] = (float)(sp_rng_unif(&r) * 5);
    }
    sp_sage_graph g = {.n = n, .npins = npins, .logdeg = logdeg, .pn_off = pn_off, .pn_idx = pn_idx, .pn_w = pn_w,
                       .bn_off = bn_off, .bn_idx = bn_idx, .bn_w = bn_w};
    sp_sage_cfg c = {d, K, 1, 0, 0};
    sp_sage_params P;
    if (sp_sage_params_init(&P, &c, n, &r)) return 1;

    /* 1. whole layer-wise inference */
    double t_all = 1e30;
    for (int it = 0; it < repeat; it++) {
        double t0 = sp_now();
        if (sp_sage_embed_all(&P, &g, out)) return 1;
        t_all = best_of(t_all, sp_now() - t0);
    }
    /* 2. its dense part alone: the same calls on the same shapes (message, W on [h; n_p; n_b], head) */
    float *H = malloc(4 * n * (size_t)d), *M = malloc(4 * n * (size_t)d), *X = malloc(4 * n * 3 * (size_t)d),
          *Z = malloc(4 * n * (size_t)d);
    if (!H || !M || !X || !Z) return 1;
    memcpy(H, out, 4 * n * (size_t)d);
    for (size_t i = 0; i < n * 3 * (size_t)d; i++) X[i] = 0.01f * (float)(i % 97);
    double flops = (double)K * (2.0 * n * d * d + 2.0 * n * 3 * d * d) + 2 * 2.0 * n * d * d;
    double t_dense = 1e30, t_gemm = 1e30;
    for (int it = 0; it < repeat; it++) {
        double t0 = sp_now();
        for (int k = 1; k <= K; k++) {
            sp_sage_message(&P, k, (uint32_t)n, H, M);
            nn_linear_fwd(Z, X, P.p[SP_P_W][k - 1], P.p[SP_P_WB][k - 1], (int)n, 3 * d, d);
            nn_relu_fwd(Z, Z, n * (size_t)d);
        }
        nn_linear_fwd(M, H, P.p[SP_P_G1][0], P.p[SP_P_G1B][0], (int)n, d, d);
        nn_relu_fwd(M, M, n * (size_t)d);
        nn_linear_fwd(Z, M, P.p[SP_P_G2][0], NULL, (int)n, d, d);
        t_dense = best_of(t_dense, sp_now() - t0);
        /* 3. plain sgemm, same shapes, no bias / activation */
        t0 = sp_now();
        for (int k = 1; k <= K; k++) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, d, d, 1.f, H, d, P.p[SP_P_Q][k - 1], d, 0.f,
                        M, d);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, d, 3 * d, 1.f, X, 3 * d, P.p[SP_P_W][k - 1],
                        d, 0.f, Z, d);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, d, d, 1.f, H, d, P.p[SP_P_G1][0], d, 0.f, M, d);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, d, d, 1.f, M, d, P.p[SP_P_G2][0], d, 0.f, Z, d);
        t_gemm = best_of(t_gemm, sp_now() - t0);
    }
    printf("{\"bench\":\"infer\",\"nodes\":%llu,\"pins\":%llu,\"nbrs_per_type\":%d,\"dim\":%d,\"layers\":%d,"
           "\"seconds\":%.4f,\"nodes_per_s\":%.0f,\"dense_share\":%.3f}\n",
           (unsigned long long)n, (unsigned long long)npins, T, d, K, t_all, (double)n / t_all, t_dense / t_all);
    printf("{\"bench\":\"infer_dense\",\"gflops\":%.3f,\"dense_gflop_s\":%.1f,\"sgemm_gflop_s\":%.1f,"
           "\"ratio\":%.3f,\"target\":0.7,\"blas_core\":\"%s\"}\n",
           flops / 1e9, flops / t_dense / 1e9, flops / t_gemm / 1e9, t_gemm / t_dense, sp_blas_core());
    free(H), free(M), free(X), free(Z);
    free(pn_off), free(bn_off), free(pn_idx), free(bn_idx), free(pn_w), free(bn_w), free(logdeg), free(out);
    sp_sage_params_free(&P);
    return 0;
}
