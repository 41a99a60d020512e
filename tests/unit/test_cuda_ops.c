/* Each op of the CUDA backend against the CPU reference backend on the same
 * random inputs: outputs poisoned (NaN) before the run so that an unwritten
 * element fails, 256 guard bytes after every device buffer (inputs too) that
 * must come back untouched, and a per-op bound on ‖gpu − cpu‖ / ‖cpu‖ and on
 * the largest element error. Without a CUDA device (or a build without CUDA)
 * it prints why and exits 77: ctest reports it skipped, never passed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "nn.h"
#include "sage.h"

#define GUARD 256
static const nn_backend *cu, *cpu;
static sp_rng rng;

static float *rnd(size_t n, float scale) {
    float *x = malloc(sizeof *x * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)(2 * sp_rng_unif(&rng) - 1);
    return x;
}

/* A device copy of host (or of NaN bytes when host is NULL) followed by GUARD bytes of 0xA5. */
static void *dup_dev(const void *host, size_t bytes) {
    unsigned char *d = cu->alloc(bytes + GUARD), *g = malloc(bytes + GUARD);
    if (!d || !g) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    if (host) memcpy(g, host, bytes);
    else memset(g, 0xFF, bytes); /* 0xFFFFFFFF is a NaN */
    memset(g + bytes, 0xA5, GUARD);
    cu->put(d, g, bytes + GUARD);
    free(g);
    return d;
}
/* Copies the buffer back into host (may be NULL), checks and frees it. */
static void back(const char *what, void *d, size_t bytes, void *host) {
    unsigned char *g = malloc(bytes + GUARD);
    cu->get(g, d, bytes + GUARD);
    int bad = 0;
    for (size_t i = 0; i < GUARD; i++) bad += g[bytes + i] != 0xA5;
    CHECK_MSG(bad == 0, "%s: %d guard bytes after the buffer were overwritten", what, bad);
    if (host) memcpy(host, g, bytes);
    free(g);
    cu->free(d);
}

/* ‖got − ref‖ / ‖ref‖ ≤ rel and every element finite */
static void close_to(const char *what, const float *got, const float *ref, size_t n, double rel) {
    double num = 0, den = 0, worst = 0;
    size_t nonfinite = 0, at = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]) && isfinite(ref[i])) nonfinite++;
        double e = fabs((double)got[i] - ref[i]);
        num += e * e, den += (double)ref[i] * ref[i];
        if (e > worst) worst = e, at = i;
    }
    double r = den > 0 ? sqrt(num / den) : sqrt(num);
    fprintf(stderr, "  %-28s n %-8zu rel %.2e (bound %.0e)  worst |d| %.2e at %zu\n", what, n, r, rel, worst, at);
    CHECK_MSG(nonfinite == 0, "%s: %zu elements not written or not finite", what, nonfinite);
    CHECK_MSG(r <= rel, "%s: relative error %.3e over %.1e", what, r, rel);
}

static void test_gemm(void) {
    const int m = 123, n = 77, k = 300;
    for (int tA = 0; tA < 2; tA++)
        for (int tB = 0; tB < 2; tB++) {
            float *A = rnd((size_t)m * k, 1), *B = rnd((size_t)k * n, 1), *C = rnd((size_t)m * n, 1);
            float *got = malloc(sizeof *got * m * n);
            float *dA = dup_dev(A, 4 * (size_t)m * k), *dB = dup_dev(B, 4 * (size_t)k * n),
                  *dC = dup_dev(C, 4 * (size_t)m * n);
            cu->gemm(tA, tB, m, n, k, 0.7f, dA, dB, 0.5f, dC);
            cpu->gemm(tA, tB, m, n, k, 0.7f, A, B, 0.5f, C);
            CHECK_RC(cu->sync(), SP_OK);
            back("A", dA, 4 * (size_t)m * k, NULL), back("B", dB, 4 * (size_t)k * n, NULL);
            back("C", dC, 4 * (size_t)m * n, got);
            char name[32];
            snprintf(name, sizeof name, "gemm tA=%d tB=%d", tA, tB);
            close_to(name, got, C, (size_t)m * n, 1e-5);
            free(A), free(B), free(C), free(got);
        }
}

static void test_rows(int n, int d) {
    size_t nd = (size_t)n * d;
    float *x = rnd(nd, 3), *b = rnd((size_t)d, 1), *g = rnd((size_t)d, 2), *dy = rnd(nd, 1);
    float *ref = malloc(4 * nd), *got = malloc(4 * nd), *nr = malloc(4 * (size_t)n), *nr2 = malloc(4 * (size_t)n);
    float *mu = malloc(4 * (size_t)n), *rs = malloc(4 * (size_t)n), *mu2 = malloc(4 * (size_t)n),
          *rs2 = malloc(4 * (size_t)n);
    for (int j = 0; j < d; j++) x[j] = 0.f; /* row 0 all zero: the l2 clamp */
    char name[64];
    for (int act = NN_ACT_NONE; act <= NN_ACT_GELU; act++) {
        float *dx = dup_dev(x, 4 * nd), *db = dup_dev(b, 4 * (size_t)d);
        memcpy(ref, x, 4 * nd);
        cpu->bias_act(ref, b, n, d, act);
        cu->bias_act(dx, db, n, d, act);
        back("b", db, 4 * (size_t)d, NULL), back("y", dx, 4 * nd, got);
        snprintf(name, sizeof name, "bias_act act=%d d=%d", act, d);
        close_to(name, got, ref, nd, 1e-6);
    }
    { /* relu_bwd */
        float *dd = dup_dev(dy, 4 * nd), *dyv = dup_dev(x, 4 * nd), *dx = dup_dev(NULL, 4 * nd);
        cu->relu_bwd(dx, dd, dyv, nd);
        cpu->relu_bwd(ref, dy, x, nd);
        back("dy", dd, 4 * nd, NULL), back("y", dyv, 4 * nd, NULL), back("dx", dx, 4 * nd, got);
        close_to("relu_bwd", got, ref, nd, 0);
    }
    { /* l2norm forward and backward */
        float *dxx = dup_dev(x, 4 * nd), *dyy = dup_dev(NULL, 4 * nd), *dn = dup_dev(NULL, 4 * (size_t)n);
        float *yref = malloc(4 * nd);
        cu->l2norm(dyy, dn, dxx, n, d);
        cpu->l2norm(yref, nr, x, n, d);
        float *dg = dup_dev(dy, 4 * nd), *ddx = dup_dev(NULL, 4 * nd);
        cu->l2norm_bwd(ddx, dg, dyy, dn, n, d);
        cpu->l2norm_bwd(ref, dy, yref, nr, n, d);
        back("x", dxx, 4 * nd, NULL), back("dy", dg, 4 * nd, NULL);
        back("norm", dn, 4 * (size_t)n, nr2), back("y", dyy, 4 * nd, got);
        snprintf(name, sizeof name, "l2norm d=%d", d);
        close_to(name, got, yref, nd, 1e-6);
        close_to("l2norm norms", nr2, nr, (size_t)n, 1e-6);
        back("dx", ddx, 4 * nd, got);
        /* row 0 is clamped: its gradient is dy / 1e-12, compare the others relatively and row 0 apart */
        close_to("l2norm_bwd (rows 1..)", got + d, ref + d, nd - d, 1e-5);
        close_to("l2norm_bwd (clamped row)", got, ref, (size_t)d, 1e-6);
        free(yref);
    }
    { /* layernorm */
        float *dxx = dup_dev(x, 4 * nd), *dg = dup_dev(g, 4 * (size_t)d), *db = dup_dev(b, 4 * (size_t)d);
        float *dyy = dup_dev(NULL, 4 * nd), *dm = dup_dev(NULL, 4 * (size_t)n), *dr = dup_dev(NULL, 4 * (size_t)n);
        cu->layernorm(dyy, dm, dr, dxx, dg, db, n, d);
        cpu->layernorm(ref, mu, rs, x, g, b, n, d);
        back("x", dxx, 4 * nd, NULL), back("g", dg, 4 * (size_t)d, NULL), back("b", db, 4 * (size_t)d, NULL);
        back("mean", dm, 4 * (size_t)n, mu2), back("rstd", dr, 4 * (size_t)n, rs2), back("y", dyy, 4 * nd, got);
        snprintf(name, sizeof name, "layernorm d=%d", d);
        close_to(name, got, ref, nd, 1e-5);
        close_to("layernorm mean", mu2, mu, (size_t)n, 1e-6);
        close_to("layernorm rstd", rs2, rs, (size_t)n, 1e-5);
    }
    { /* softmax, in place as the callers use it */
        float *dxx = dup_dev(x, 4 * nd);
        cu->softmax(dxx, dxx, n, d);
        memcpy(ref, x, 4 * nd);
        cpu->softmax(ref, ref, n, d);
        back("y", dxx, 4 * nd, got);
        snprintf(name, sizeof name, "softmax d=%d", d);
        close_to(name, got, ref, nd, 1e-6);
    }
    { /* colsum accumulates */
        float *dd = dup_dev(dy, 4 * nd), *db = dup_dev(b, 4 * (size_t)d), *s = malloc(4 * (size_t)d);
        memcpy(s, b, 4 * (size_t)d);
        cu->colsum(db, dd, n, d);
        cpu->colsum(s, dy, n, d);
        back("dy", dd, 4 * nd, NULL), back("db", db, 4 * (size_t)d, got);
        close_to("colsum", got, s, (size_t)d, 1e-5);
        free(s);
    }
    CHECK_RC(cu->sync(), SP_OK);
    free(x), free(b), free(g), free(dy), free(ref), free(got), free(nr), free(nr2), free(mu), free(rs), free(mu2),
        free(rs2);
}

static void test_pool(int n, int nh, int d, int weighted) {
    uint64_t *off = malloc(8 * (size_t)(n + 1));
    off[0] = 0;
    for (int i = 0; i < n; i++) off[i + 1] = off[i] + (i % 7 == 3 ? 0 : sp_rng_below(&rng, 40)); /* some empty rows */
    size_t ne = off[n], nd = (size_t)n * d, hd = (size_t)nh * d;
    uint32_t *idx = malloc(4 * (ne + 1));
    for (size_t j = 0; j < ne; j++) idx[j] = (uint32_t)(j % 5 == 0 ? 0 : sp_rng_below(&rng, (uint64_t)nh)); /* row 0 hot */
    float *w = weighted ? rnd(ne, 1) : NULL, *h = rnd(hd, 1), *dout = rnd(nd, 1);
    float *ref = malloc(4 * nd), *got = malloc(4 * (hd > nd ? hd : nd)), *dh = rnd(hd, 1), *dhref = malloc(4 * hd);
    memcpy(dhref, dh, 4 * hd);
    uint64_t *doff = dup_dev(off, 8 * (size_t)(n + 1));
    uint32_t *didx = dup_dev(idx, 4 * ne);
    float *dw = w ? dup_dev(w, 4 * ne) : NULL, *dhh = dup_dev(h, 4 * hd), *dout_d = dup_dev(NULL, 4 * nd);
    cu->pool(dout_d, dhh, didx, dw, doff, n, d);
    cpu->pool(ref, h, idx, w, off, n, d);
    back("out", dout_d, 4 * nd, got);
    char name[64];
    snprintf(name, sizeof name, "pool d=%d w=%d", d, weighted);
    close_to(name, got, ref, nd, 1e-6);
    float *dgrad = dup_dev(dout, 4 * nd), *ddh = dup_dev(dh, 4 * hd);
    cu->pool_bwd(ddh, dgrad, didx, dw, doff, n, d);
    cpu->pool_bwd(dhref, dout, idx, w, off, n, d);
    back("dout", dgrad, 4 * nd, NULL), back("dh", ddh, 4 * hd, got);
    snprintf(name, sizeof name, "pool_bwd d=%d w=%d", d, weighted);
    close_to(name, got, dhref, hd, 1e-5);
    back("off", doff, 8 * (size_t)(n + 1), NULL), back("idx", didx, 4 * ne, NULL), back("h", dhh, 4 * hd, NULL);
    if (dw) back("w", dw, 4 * ne, NULL);
    CHECK_RC(cu->sync(), SP_OK);
    free(off), free(idx), free(w), free(h), free(dout), free(ref), free(got), free(dh), free(dhref);
}

static void test_sampled_softmax(int with_mask) {
    const int nq = 200, nc = 1300, d = 64;
    float *q = rnd((size_t)nq * d, 0.2f), *c = rnd((size_t)nc * d, 0.2f), *logq = rnd((size_t)nc, 3);
    int *pos = malloc(sizeof *pos * nq);
    uint64_t *cid = malloc(8 * (size_t)nc);
    for (int j = 0; j < nc; j++) cid[j] = sp_rng_below(&rng, 900); /* repeats: accidental hits */
    for (int i = 0; i < nq; i++) pos[i] = (int)sp_rng_below(&rng, (uint64_t)nc);
    float *S = malloc(4 * (size_t)nq * nc), *dq = malloc(4 * (size_t)nq * d), *dc = malloc(4 * (size_t)nc * d);
    float *gq = malloc(4 * (size_t)nq * d), *gc = malloc(4 * (size_t)nc * d), tref = 0, tgot = 0;
    float lref = cpu->sampled_softmax(q, c, pos, with_mask ? cid : NULL, with_mask ? logq : NULL, nq, nc, d, 0.07f, dq,
                                      dc, &tref, S);
    float *Dq = dup_dev(q, 4 * (size_t)nq * d), *Dc = dup_dev(c, 4 * (size_t)nc * d), *Dl = dup_dev(logq, 4 * (size_t)nc);
    int *Dp = dup_dev(pos, sizeof *pos * nq);
    uint64_t *Di = dup_dev(cid, 8 * (size_t)nc);
    float *DS = dup_dev(NULL, 4 * (size_t)nq * nc), *Ddq = dup_dev(NULL, 4 * (size_t)nq * d),
          *Ddc = dup_dev(NULL, 4 * (size_t)nc * d);
    float lgot = cu->sampled_softmax(Dq, Dc, Dp, with_mask ? Di : NULL, with_mask ? Dl : NULL, nq, nc, d, 0.07f, Ddq,
                                     Ddc, &tgot, DS);
    CHECK_RC(cu->sync(), SP_OK);
    fprintf(stderr, "  sampled_softmax mask=%d loss cpu %.7f gpu %.7f, dtau cpu %.7f gpu %.7f\n", with_mask, lref, lgot,
            tref, tgot);
    CHECK_NEAR(lgot, lref, 1e-5 * fabs(lref));
    CHECK_NEAR(tgot, tref, 1e-4 * fabs(tref) + 1e-6);
    back("dq", Ddq, 4 * (size_t)nq * d, gq), back("dc", Ddc, 4 * (size_t)nc * d, gc);
    close_to("sampled_softmax dq", gq, dq, (size_t)nq * d, 1e-4);
    close_to("sampled_softmax dc", gc, dc, (size_t)nc * d, 1e-4);
    back("q", Dq, 4 * (size_t)nq * d, NULL), back("c", Dc, 4 * (size_t)nc * d, NULL), back("logq", Dl, 4 * (size_t)nc, NULL);
    back("pos", Dp, sizeof *pos * nq, NULL), back("cid", Di, 8 * (size_t)nc, NULL), back("scratch", DS, 4 * (size_t)nq * nc, NULL);
    free(q), free(c), free(logq), free(pos), free(cid), free(S), free(dq), free(dc), free(gq), free(gc);
}

static void test_attention(int w, int heads) {
    const int B = 9;
    uint64_t off[B + 1];
    off[0] = 0;
    for (int b = 0; b < B; b++) off[b + 1] = off[b] + 1 + (b == 4 ? 299 : sp_rng_below(&rng, 70)); /* one long one */
    size_t N = off[B];
    float *qkv = rnd(N * 3 * (size_t)w, 2), *ref = malloc(4 * N * (size_t)w), *got = malloc(4 * N * (size_t)w);
    cpu->attention(ref, qkv, off, B, w, heads);
    float *Dq = dup_dev(qkv, 4 * N * 3 * (size_t)w), *Do = dup_dev(NULL, 4 * N * (size_t)w);
    uint64_t *Doff = dup_dev(off, sizeof off);
    cu->attention(Do, Dq, Doff, B, w, heads);
    CHECK_RC(cu->sync(), SP_OK);
    back("out", Do, 4 * N * (size_t)w, got), back("qkv", Dq, 4 * N * 3 * (size_t)w, NULL), back("off", Doff, sizeof off, NULL);
    char name[64];
    snprintf(name, sizeof name, "attention w=%d heads=%d", w, heads);
    close_to(name, got, ref, N * (size_t)w, 1e-5);
    free(qkv), free(ref), free(got);
}

/* The item encoder's minibatch forward and backward on the device against the CPU (the same
 * plan, parameters and output gradient): outputs, dense gradients, id-row gradients. */
static void test_sage_train(void) {
    enum { N = 600, NP = 400, T = 6, D = 32, NT = 50 };
    uint64_t pn_off[N + 1], bn_off[N + 1];
    uint32_t pn_idx[N * T], bn_idx[N * T];
    float pn_w[N * T], bn_w[N * T], logdeg[N];
    pn_off[0] = bn_off[0] = 0;
    for (int u = 0; u < N; u++) {
        int a = (int)sp_rng_below(&rng, T + 1), b = (int)sp_rng_below(&rng, T + 1);
        pn_off[u + 1] = pn_off[u] + a, bn_off[u + 1] = bn_off[u] + b;
        for (int j = 0; j < a; j++) pn_idx[pn_off[u] + j] = (uint32_t)sp_rng_below(&rng, NP), pn_w[pn_off[u] + j] = 1.f / a;
        for (int j = 0; j < b; j++)
            bn_idx[bn_off[u] + j] = (uint32_t)(NP + sp_rng_below(&rng, N - NP)), bn_w[bn_off[u] + j] = 1.f / b;
        logdeg[u] = (float)(3 * sp_rng_unif(&rng));
    }
    sp_sage_graph g = {.n = N, .npins = NP, .logdeg = logdeg, .pn_off = pn_off, .pn_idx = pn_idx, .pn_w = pn_w,
                       .bn_off = bn_off, .bn_idx = bn_idx, .bn_w = bn_w};
    sp_sage_cfg c = {D, 2, 1, 0, 0};
    sp_sage_params P, Gc, Gg;
    CHECK_RC(sp_sage_params_init(&P, &c, N, &rng), SP_OK);
    CHECK_RC(sp_sage_params_zeros(&Gc, &c, N), SP_OK);
    CHECK_RC(sp_sage_params_zeros(&Gg, &c, N), SP_OK);
    uint32_t targets[NT];
    for (int i = 0; i < NT; i++) targets[i] = (uint32_t)sp_rng_below(&rng, N);
    sp_sage_plan pl = {0};
    CHECK_RC(sp_sage_plan_build(&pl, &g, 2, targets, NT), SP_OK);
    sp_sage_acts ac = {0}, ag = {0};
    sp_sage_dev DG;
    CHECK_RC(sp_sage_dev_init(&DG, cu, &P), SP_OK);
    CHECK_RC(sp_sage_forward(&P, &g, &pl, &ac), SP_OK);
    CHECK_RC(sp_sage_forward_on(&DG, &P, &g, &pl, &ag), SP_OK);
    float got[NT * D], *dout = rnd(NT * D, 1), *dd = dup_dev(dout, sizeof got), *gd = dup_dev(NULL, 4 * P.ndense);
    cu->get(got, ag.out, sizeof got);
    close_to("sage forward (minibatch)", got, ac.out, NT * D, 1e-5);
    cu->zero(gd, 4 * P.ndense);
    CHECK_RC(sp_sage_backward_on(&DG, &P, &g, &pl, &ag, dd, gd, &Gg, NULL, NULL), SP_OK);
    CHECK_RC(sp_sage_backward(&P, &g, &pl, &ac, dout, &Gc, NULL, NULL), SP_OK);
    float *gdh = malloc(4 * P.ndense);
    back("dense grads", gd, 4 * P.ndense, gdh);
    for (size_t i = 0; i < P.ndense; i++) gdh[i] += Gg.dense[i];
    close_to("sage backward dense grads", gdh, Gc.dense, P.ndense, 1e-4);
    close_to("sage backward id rows", Gg.emb, Gc.emb, (size_t)N * D, 1e-4);
    /* reproducible: the same step again gives the same bits (the backward gathers, no atomics) */
    float *g1 = malloc(4 * P.ndense), *g2 = malloc(4 * P.ndense), *e1 = malloc(4 * (size_t)N * D);
    for (int rep = 0; rep < 2; rep++) {
        memset(Gg.dense, 0, 4 * P.ndense), memset(Gg.emb, 0, 4 * (size_t)N * D);
        float *gd2 = dup_dev(NULL, 4 * P.ndense);
        cu->zero(gd2, 4 * P.ndense);
        cu->put(dd, dout, sizeof got);
        CHECK_RC(sp_sage_forward_on(&DG, &P, &g, &pl, &ag), SP_OK);
        CHECK_RC(sp_sage_backward_on(&DG, &P, &g, &pl, &ag, dd, gd2, &Gg, NULL, NULL), SP_OK);
        back("dense grads (rerun)", gd2, 4 * P.ndense, rep ? g2 : g1);
        if (rep) {
            CHECK_MSG(memcmp(g1, g2, 4 * P.ndense) == 0, "sage backward: a rerun gave other dense gradients");
            CHECK_MSG(memcmp(e1, Gg.emb, 4 * (size_t)N * D) == 0, "sage backward: a rerun gave other id-row gradients");
        } else memcpy(e1, Gg.emb, 4 * (size_t)N * D);
    }
    free(g1), free(g2), free(e1);
    back("dout", dd, sizeof got, NULL);
    free(dout), free(gdh);
    sp_sage_acts_free(&ac), sp_sage_acts_free(&ag), sp_sage_dev_free(&DG), sp_sage_plan_free(&pl);
    sp_sage_params_free(&P), sp_sage_params_free(&Gc), sp_sage_params_free(&Gg);
}

int main(void) {
    cpu = nn_backend_cpu();
    cu = nn_backend_cuda(0);
    if (!cu) {
        printf("SKIP: %s\n", sp_errmsg());
        return 77;
    }
    fprintf(stderr, "CUDA backend on %s\n", cu->device);
    for (int op = 0; op < NN_OP_COUNT; op++) CHECK_MSG(cu->supports((nn_op)op), "op %d not supported", op);
    sp_rng_init(&rng, 7, SP_RNG_GEN, 0);
    test_gemm();
    test_rows(1000, 64);
    test_rows(333, 37);
    test_rows(50, 1000);
    test_pool(2000, 500, 64, 1);
    test_pool(700, 300, 37, 0);
    test_pool(300, 3000, 256, 1);
    test_sampled_softmax(0);
    test_sampled_softmax(1);
    test_attention(64, 2);
    test_attention(96, 3);
    test_attention(256, 1);
    test_sage_train();
    return CHECK_DONE();
}
