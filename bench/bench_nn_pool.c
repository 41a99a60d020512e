/* bench_nn_pool: throughput of the importance-pooling kernels (nn_pool_fwd,
 * nn_pool_bwd, nn_pool_bwd_w) against the same loops written plainly (no
 * prefetch), on a table h larger than the caches with uniform random indices.
 *
 *   bench_nn_pool [--nh 262144] [--d 64,128,256] [--rows 20000] [--fanout 50]
 *                 [--repeat 3] [--seed 1]
 *
 * rows x fanout gathered rows per call (default 1M: one training step's
 * worth), weights random. The reference must give bit-identical results
 * (same order of operations); a mismatch is an error (exit 1). One JSON line
 * per (d, op, impl) on stdout: the best of --repeat calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn.h"
#include "sp_base.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_nn_pool [--nh N] [--d D[,D...]] [--rows N] [--fanout K] [--repeat R] [--seed S]\n");
    exit(2);
}

static long parse_pos(const char *name, const char *v) {
    char *e;
    long x = strtol(v, &e, 10);
    if (*e || x < 1 || x > 1L << 30) {
        fprintf(stderr, "bench_nn_pool: %s wants a positive integer, got '%s'\n", name, v);
        exit(2);
    }
    return x;
}

/* ---- the plain reference loops ---- */
static void ref_fwd(float *out, const float *h, const uint32_t *idx, const float *w, const uint64_t *off, int n,
                    int d) {
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)i * d;
        memset(o, 0, sizeof *o * (size_t)d);
        for (uint64_t j = off[i]; j < off[i + 1]; j++)
            for (int k = 0; k < d; k++) o[k] += w[j] * h[(size_t)idx[j] * d + k];
    }
}
static void ref_bwd(float *dh, const float *dout, const uint32_t *idx, const float *w, const uint64_t *off, int n,
                    int d) {
    for (int i = 0; i < n; i++)
        for (uint64_t j = off[i]; j < off[i + 1]; j++)
            for (int k = 0; k < d; k++) dh[(size_t)idx[j] * d + k] += w[j] * dout[(size_t)i * d + k];
}
static void ref_bwd_w(float *dw, const float *dout, const float *h, const uint32_t *idx, const uint64_t *off, int n,
                      int d) {
    for (int i = 0; i < n; i++)
        for (uint64_t j = off[i]; j < off[i + 1]; j++) dw[j] = nn_dot(dout + (size_t)i * d, h + (size_t)idx[j] * d, d);
}

static void report(const char *op, const char *impl, int d, long nh, long rows, long fanout, double s, double ref_s) {
    double ent = (double)rows * fanout;
    printf("{\"bench\":\"nn_pool\",\"op\":\"%s\",\"impl\":\"%s\",\"d\":%d,\"nh\":%ld,\"rows\":%ld,\"fanout\":%ld"
           ",\"seconds\":%.5f,\"gathered_rows_per_s\":%.0f,\"gather_gb_per_s\":%.2f,\"ratio_to_reference\":%.3f}\n",
           op, impl, d, nh, rows, fanout, s, ent / s, ent * d * sizeof(float) / s / 1e9, ref_s / s);
    fflush(stdout);
}

int main(int argc, char **argv) {
    long nh = 262144, rows = 20000, fanout = 50, repeat = 3, seed = 1;
    int ds[8] = {64, 128, 256}, nd = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        i++;
        if (!strcmp(a, "--nh")) nh = parse_pos(a, v);
        else if (!strcmp(a, "--rows")) rows = parse_pos(a, v);
        else if (!strcmp(a, "--fanout")) fanout = parse_pos(a, v);
        else if (!strcmp(a, "--repeat")) repeat = parse_pos(a, v);
        else if (!strcmp(a, "--seed")) seed = parse_pos(a, v);
        else if (!strcmp(a, "--d")) {
            char buf[128];
            snprintf(buf, sizeof buf, "%s", v);
            nd = 0;
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ","))
                if (nd < 8) ds[nd++] = (int)parse_pos(a, t);
        } else usage();
    }
    size_t ne = (size_t)rows * fanout;
    uint32_t *idx = malloc(sizeof *idx * ne);
    uint64_t *off = malloc(sizeof *off * (rows + 1));
    float *w = malloc(sizeof *w * ne), *dw = malloc(sizeof *dw * ne), *dw2 = malloc(sizeof *dw2 * ne);
    if (!idx || !off || !w || !dw || !dw2) { fprintf(stderr, "bench_nn_pool: out of memory\n"); return 1; }
    sp_rng r;
    sp_rng_init(&r, (uint64_t)seed, SP_RNG_TRAIN, 0);
    for (size_t j = 0; j < ne; j++) idx[j] = (uint32_t)sp_rng_below(&r, (uint64_t)nh), w[j] = (float)sp_rng_unif(&r);
    for (long i = 0; i <= rows; i++) off[i] = (uint64_t)i * fanout;
    if (nn_pool_check(idx, off, (int)rows, (uint64_t)nh) != SP_OK) { fprintf(stderr, "%s\n", sp_errmsg()); return 1; }
    int bad = 0;
    for (int di = 0; di < nd; di++) {
        int d = ds[di];
        size_t hn = (size_t)nh * d, on = (size_t)rows * d;
        float *h = malloc(sizeof *h * hn), *dh = calloc(hn, sizeof *dh), *dh2 = calloc(hn, sizeof *dh2);
        float *out = malloc(sizeof *out * on), *out2 = malloc(sizeof *out2 * on);
        if (!h || !dh || !dh2 || !out || !out2) { fprintf(stderr, "bench_nn_pool: out of memory at d=%d\n", d); return 1; }
        for (size_t k = 0; k < hn; k++) h[k] = (float)sp_rng_unif(&r) - 0.5f;
        double best[3][2];
        for (int op = 0; op < 3; op++) best[op][0] = best[op][1] = 1e30;
        for (long rep = 0; rep < repeat; rep++)
            for (int impl = 0; impl < 2; impl++) { /* 0 = nn, 1 = reference; interleaved */
                double t0 = now_s();
                if (impl) ref_fwd(out2, h, idx, w, off, (int)rows, d);
                else nn_pool_fwd(out, h, idx, w, off, (int)rows, d);
                double t1 = now_s();
                if (impl) ref_bwd(dh2, out2, idx, w, off, (int)rows, d);
                else nn_pool_bwd(dh, out, idx, w, off, (int)rows, d);
                double t2 = now_s();
                if (impl) ref_bwd_w(dw2, out2, h, idx, off, (int)rows, d);
                else nn_pool_bwd_w(dw, out, h, idx, off, (int)rows, d);
                double t3 = now_s();
                double t[3] = {t1 - t0, t2 - t1, t3 - t2};
                for (int op = 0; op < 3; op++) best[op][impl] = t[op] < best[op][impl] ? t[op] : best[op][impl];
            }
        if (memcmp(out, out2, sizeof *out * on) || memcmp(dh, dh2, sizeof *dh * hn) || memcmp(dw, dw2, sizeof *dw * ne)) {
            fprintf(stderr, "bench_nn_pool: d=%d: kernels and reference differ\n", d);
            bad = 1;
        }
        const char *ops[3] = {"fwd", "bwd", "bwd_w"};
        for (int op = 0; op < 3; op++) {
            report(ops[op], "nn", d, nh, rows, fanout, best[op][0], best[op][1]);
            report(ops[op], "reference", d, nh, rows, fanout, best[op][1], best[op][1]);
        }
        free(h), free(dh), free(dh2), free(out), free(out2);
    }
    free(idx), free(off), free(w), free(dw), free(dw2);
    return bad;
}
