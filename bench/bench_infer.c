/* bench_infer: layer-wise (MapReduce-style) inference of the PinSage encoder
 * on a synthetic graph, one process, on a backend (--device cpu|cuda): nodes/s
 * of sp_sage_embed_all (host inputs, transfers and all), nodes/s of the layers
 * alone on resident buffers, and the GFLOP/s of the dense part (messages Q,
 * CONVOLVE W, head G1/G2: gemm + bias + ReLU) as a ratio to plain matrix
 * products of the same shapes on the same backend in the same run (cblas_sgemm
 * on the CPU, cuBLAS on a GPU). Prints one JSON object per measurement.
 *   bench_infer [--nodes N] [--pins P] [--nbrs T] [--dim D] [--layers K] [--repeat R] [--device cpu|cuda] */
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
    const char *device = "cpu";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--nodes")) n = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--pins")) npins = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--nbrs")) T = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dim")) d = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--layers")) K = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--device")) device = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_infer [--nodes N] [--pins P] [--nbrs T] [--dim D] [--layers K] [--repeat R]\n"
                            "                   [--device cpu|cuda]\n");
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

    const nn_backend *be;
    if (nn_backend_select(device, 0, &be)) {
        fprintf(stderr, "bench_infer: %s\n", sp_errmsg());
        return 2;
    }
    /* 1. whole layer-wise inference, host to host */
    double t_all = 1e30;
    for (int it = 0; it < repeat; it++) {
        double t0 = sp_now();
        if (sp_sage_embed_all(be, &P, &g, out)) {
            fprintf(stderr, "bench_infer: %s\n", sp_errmsg());
            return 1;
        }
        t_all = best_of(t_all, sp_now() - t0);
    }
    /* 2. the layers alone on resident buffers (what a rank does per layer, less its shuffle) */
    size_t nd = n * (size_t)d;
    sp_sage_dev D;
    if (sp_sage_dev_init(&D, be, &P)) return 1;
    float *H = nn_be_upload(be, out, 4 * nd), *Hn = be->alloc(4 * nd), *M = be->alloc(4 * nd),
          *X = be->alloc(4 * 3 * nd), *Z = be->alloc(4 * nd), *nrm = be->alloc(4 * n);
    const sp_sage_lists lists = {pn_off, bn_off, pn_idx, bn_idx, pn_w, bn_w};
    sp_sage_lists L;
    if (!H || !Hn || !M || !X || !Z || !nrm || sp_sage_lists_put(be, &lists, n, &L)) {
        fprintf(stderr, "bench_infer: out of %s memory\n", be->name);
        return 1;
    }
    for (size_t i = 0; i < 3 * nd; i += 4096) { /* X: any finite values for the dense pass below */
        float blk[4096];
        size_t m = 3 * nd - i < 4096 ? 3 * nd - i : 4096;
        for (size_t j = 0; j < m; j++) blk[j] = 0.01f * (float)((i + j) % 97);
        be->put(X + i, blk, 4 * m);
    }
    double t_layers = 1e30, t_dense = 1e30, t_gemm = 1e30;
    for (int it = 0; it < repeat; it++) {
        be->sync();
        double t0 = sp_now();
        sp_sage_layers_all(&D, (uint32_t)n, H, Hn, M, X, Z, nrm, &L);
        if (be->sync()) return 1;
        t_layers = best_of(t_layers, sp_now() - t0);
    }
    /* 3. the dense part alone: the same calls on the same shapes (message, W on [h; n_p; n_b], head) */
    double flops = (double)K * (2.0 * n * d * d + 2.0 * n * 3 * d * d) + 2 * 2.0 * n * d * d;
    for (int it = 0; it < repeat; it++) {
        be->sync();
        double t0 = sp_now();
        for (int k = 1; k <= K; k++) {
            sp_sage_message(&D, k, (uint32_t)n, H, M);
            for (int blk = 0; blk < 3; blk++)
                be->gemm(0, 0, (int)n, d, d, 1.f, X + blk * nd, D.P.p[SP_P_W][k - 1] + blk * (size_t)d * d,
                         blk ? 1.f : 0.f, Z);
            be->bias_act(Z, D.P.p[SP_P_WB][k - 1], (int)n, d, NN_ACT_RELU);
        }
        be->gemm(0, 0, (int)n, d, d, 1.f, H, D.P.p[SP_P_G1][0], 0.f, M);
        be->bias_act(M, D.P.p[SP_P_G1B][0], (int)n, d, NN_ACT_RELU);
        be->gemm(0, 0, (int)n, d, d, 1.f, M, D.P.p[SP_P_G2][0], 0.f, Z);
        if (be->sync()) return 1;
        t_dense = best_of(t_dense, sp_now() - t0);
        /* 4. plain matrix products, same shapes, no bias / activation, one (n, 3d)·(3d, d) per layer */
        t0 = sp_now();
        for (int k = 1; k <= K; k++) {
            be->gemm(0, 0, (int)n, d, d, 1.f, H, D.P.p[SP_P_Q][k - 1], 0.f, M);
            be->gemm(0, 0, (int)n, d, 3 * d, 1.f, X, D.P.p[SP_P_W][k - 1], 0.f, Z);
        }
        be->gemm(0, 0, (int)n, d, d, 1.f, H, D.P.p[SP_P_G1][0], 0.f, M);
        be->gemm(0, 0, (int)n, d, d, 1.f, M, D.P.p[SP_P_G2][0], 0.f, Z);
        if (be->sync()) return 1;
        t_gemm = best_of(t_gemm, sp_now() - t0);
    }
    printf("{\"bench\":\"infer\",\"device\":\"%s\",\"nodes\":%llu,\"pins\":%llu,\"nbrs_per_type\":%d,\"dim\":%d,"
           "\"layers\":%d,\"seconds\":%.4f,\"nodes_per_s\":%.0f,\"layers_seconds\":%.4f,\"layers_nodes_per_s\":%.0f,"
           "\"dense_share\":%.3f}\n",
           be->device, (unsigned long long)n, (unsigned long long)npins, T, d, K, t_all, (double)n / t_all, t_layers,
           (double)n / t_layers, t_dense / t_layers);
    printf("{\"bench\":\"infer_dense\",\"device\":\"%s\",\"gflops\":%.3f,\"dense_gflop_s\":%.1f,\"gemm_gflop_s\":%.1f,"
           "\"ratio\":%.3f,\"target\":0.7,\"blas_core\":\"%s\"}\n",
           be->device, flops / 1e9, flops / t_dense / 1e9, flops / t_gemm / 1e9, t_gemm / t_dense,
           be->host_memory ? sp_blas_core() : "cuBLAS");
    be->free(H), be->free(Hn), be->free(M), be->free(X), be->free(Z), be->free(nrm);
    sp_sage_lists_free(be, &lists, &L);
    sp_sage_dev_free(&D);
    free(pn_off), free(bn_off), free(pn_idx), free(bn_idx), free(pn_w), free(bn_w), free(logdeg), free(out);
    sp_sage_params_free(&P);
    return 0;
}
