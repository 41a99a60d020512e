/* bench_users: the users stage's encoding path on synthetic histories, one
 * process: users encoded per second (decode the history, gather item
 * vectors, causal transformer, last position) at M actions per user with 1
 * and 2 threads, against the same users through a full forward pass (every
 * position, as training computes it) in the same run; and the history
 * store's bytes per action (random 64-bit pin ids, gaps of seconds to days);
 * and the training loss of one block (the users stage's shapes: 1024 queries,
 * their 2 x 1024 targets and 4096 shared pins as candidates): the two targets
 * over one set of logits (nn_sampled_softmax_multi) against one call per
 * target summed (the earlier path) in the same run, without and with the
 * candidates' gradient (frozen and joint mode).
 * Prints one JSON object per measurement.
 *   bench_users [--users U] [--len M] [--width W] [--layers L] [--heads H] [--items I] [--dim D] */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas_env.h"
#include "encoder.h"
#include "history.h"
#include "log.h"
#include "nn.h"
#include "seq_batch.h"

/* The users stage's block loss, both ways (see the header); best of 7 each, alternating. */
static int bench_loss(int d) {
    enum { BQ = 1024, NEG = 4096, NC = 2 * BQ + NEG, REPS = 7 };
    float *q = malloc(4 * (size_t)BQ * d), *c = malloc(4 * (size_t)NC * d), *lq = malloc(4 * NC);
    float *dq = malloc(4 * (size_t)BQ * d), *dc = malloc(4 * (size_t)NC * d);
    float *g[2] = {malloc(4 * (size_t)BQ * d), malloc(4 * (size_t)BQ * d)};
    float *cg[2] = {malloc(4 * (size_t)NC * d), malloc(4 * (size_t)NC * d)};
    float *scratch = malloc(4 * (size_t)(BQ + 2) * NC);
    uint64_t *cid = malloc(8 * NC);
    int *pos = malloc(sizeof *pos * 2 * BQ);
    if (!q || !c || !lq || !dq || !dc || !g[0] || !g[1] || !cg[0] || !cg[1] || !scratch || !cid || !pos) return 1;
    sp_rng r;
    sp_rng_init(&r, 9, SP_RNG_GEN, 1);
    for (size_t i = 0; i < (size_t)BQ * d; i++) q[i] = (float)(sp_rng_unif(&r) - 0.5);
    for (size_t i = 0; i < (size_t)NC * d; i++) c[i] = (float)(sp_rng_unif(&r) - 0.5);
    for (int j = 0; j < NC; j++) lq[j] = (float)(-8 - 2 * sp_rng_unif(&r)), cid[j] = sp_rng_below(&r, 50000);
    for (int i = 0; i < 2 * BQ; i++) pos[i] = i;
    const float w[2] = {0.5f, 0.5f};
    for (int with_dc = 0; with_dc < 2; with_dc++) {
        double best[2] = {1e30, 1e30};
        float loss[2] = {0, 0};
        for (int rep = 0; rep < REPS; rep++)
            for (int way = 0; way < 2; way++) {
                float dtau = 0, tt;
                double t0 = sp_now();
                if (way == 0) {
                    loss[0] = nn_sampled_softmax_multi(q, c, 2, pos, w, cid, lq, NULL, NULL, BQ, NC, d, 0.05f, dq,
                                                       with_dc ? dc : NULL, &dtau, NULL, scratch);
                } else { /* one call per target, then the gradients combined */
                    loss[1] = 0;
                    for (int k = 0; k < 2; k++) {
                        loss[1] += w[k] * nn_sampled_softmax_ex(q, c, pos + k * BQ, cid, lq, NULL, NULL, BQ, NC, d,
                                                                0.05f, g[k], with_dc ? cg[k] : NULL, &tt, scratch);
                        dtau += w[k] * tt;
                    }
                    for (size_t i = 0; i < (size_t)BQ * d; i++) dq[i] = w[0] * g[0][i] + w[1] * g[1][i];
                    for (size_t i = 0; with_dc && i < (size_t)NC * d; i++) dc[i] = w[0] * cg[0][i] + w[1] * cg[1][i];
                }
                double s = sp_now() - t0;
                best[way] = s < best[way] ? s : best[way];
            }
        printf("{\"bench\":\"users_loss\",\"queries\":%d,\"candidates\":%d,\"dim\":%d,\"targets\":2,"
               "\"candidate_grad\":%s,\"one_pass_ms\":%.2f,\"per_target_ms\":%.2f,\"speedup\":%.3f,"
               "\"loss_diff\":%.2g}\n",
               BQ, NC, d, with_dc ? "true" : "false", 1e3 * best[0], 1e3 * best[1], best[1] / best[0],
               fabs((double)loss[0] - loss[1]));
        fflush(stdout);
    }
    free(q), free(c), free(lq), free(dq), free(dc), free(scratch), free(cid), free(pos);
    free(g[0]), free(g[1]), free(cg[0]), free(cg[1]);
    return 0;
}

int main(int argc, char **argv) {
    sp_blas_setup(argv);
    int U = 1000, M = 256, width = 64, layers = 2, heads = 2, d = 64;
    uint64_t ni = 100000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--users")) U = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--len")) M = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--width")) width = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--layers")) layers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--heads")) heads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--items")) ni = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--dim")) d = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_users [--users U] [--len M] [--width W] [--layers L] [--heads H] [--items I] "
                            "[--dim D]\n");
            return 2;
        }
    }
    if (U < 1 || M < 1 || ni < 1 || d < 1) {
        fprintf(stderr, "bench_users: bad sizes\n");
        return 2;
    }
    /* items: random unit vectors under random 64-bit ids */
    sp_rng r;
    sp_rng_init(&r, 7, SP_RNG_GEN, 0);
    float *iv = malloc(4 * ni * (size_t)d);
    sp_idrow *idx = malloc(sizeof *idx * ni);
    if (!iv || !idx) return 1;
    for (uint64_t i = 0; i < ni; i++) {
        double s = 0;
        for (int k = 0; k < d; k++) {
            float v = (float)(sp_rng_unif(&r) - 0.5);
            iv[i * d + k] = v;
            s += (double)v * v;
        }
        for (int k = 0; k < d; k++) iv[i * d + k] /= (float)sqrt(s);
        idx[i] = (sp_idrow){sp_rng_u64(&r), i};
    }
    sp_idrow_sort(idx, ni);
    sq_items it = {ni, d, iv, idx};
    /* histories: M actions per user, popular pins more often (squared uniform), gaps 1 s .. 3 days */
    sq_hist h = {0};
    sq_action *a = malloc(sizeof *a * (size_t)M);
    uint64_t *todo = malloc(8 * (size_t)U);
    float *vec = malloc(4 * (size_t)U * d);
    if (!a || !todo || !vec) return 1;
    for (int u = 0; u < U; u++) {
        int64_t ts = 1700000000000LL + (int64_t)sp_rng_below(&r, 86400000);
        for (int j = 0; j < M; j++) {
            double x = sp_rng_unif(&r);
            a[j].pin = idx[(uint64_t)(x * x * (double)ni)].id;
            ts += 1000 + (int64_t)(sp_rng_unif(&r) * sp_rng_unif(&r) * sp_rng_unif(&r) * 259200000.0);
            a[j].ts = ts;
            a[j].action = (uint8_t)sp_rng_below(&r, 5);
            a[j].surface = (uint8_t)sp_rng_below(&r, 5);
        }
        /* (ts, pin, ...) strictly increasing: ts strictly increases here */
        if (sq_hist_append(&h, (uint64_t)u * 2654435761u + 1, 0, a, (uint64_t)M)) {
            fprintf(stderr, "bench_users: %s\n", sp_errmsg());
            return 1;
        }
        todo[u] = (uint64_t)u;
    }
    printf("{\"bench\":\"users_history\",\"users\":%d,\"actions_per_user\":%d,\"bytes_per_action\":%.2f,"
           "\"decoded_bytes_per_action\":%zu}\n",
           U, M, sq_hist_bytes_per_action(&h), sizeof(sq_action));
    sq_cfg c = {.d_item = d, .n_actions = 5, .n_surfaces = 5, .d_e = 16, .width = width, .layers = layers,
                .heads = heads, .max_len = M};
    sq_model m;
    if (sq_model_init(&m, &c, 1)) {
        fprintf(stderr, "bench_users: %s\n", sp_errmsg());
        return 2;
    }
    /* baseline of the same run: the full forward of every position (what a training step computes) */
    double tfull;
    {
        sq_packer pk = {0};
        sq_acts *acts = sq_acts_new();
        int nb = U < 64 ? U : 64;
        for (int u = 0; u < nb; u++) {
            if (sq_hist_user(&h, (uint64_t)u, a, (uint64_t)M) || sq_packer_add(&pk, a, (uint64_t)M, a[M - 1].ts, &it)) return 1;
        }
        float *out = malloc(4 * (size_t)pk.N * d);
        sq_batch b = sq_packer_batch(&pk);
        if (!out || sq_forward(&m, &b, acts, out)) return 1; /* warm-up */
        double t0 = sp_now();
        int reps = 0;
        do {
            if (sq_forward(&m, &b, acts, out)) return 1;
            reps++;
        } while (sp_now() - t0 < 1.0);
        tfull = (sp_now() - t0) / (reps * (double)nb);
        free(out);
        sq_acts_free(acts);
        sq_packer_free(&pk);
    }
    double rate1 = 0;
    for (int threads = 1; threads <= 2; threads++) {
        if (sq_encode_users(&m, &h, &it, todo, (uint64_t)U, 86400000, threads, vec, NULL)) return 1; /* warm-up */
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = sp_now();
            if (sq_encode_users(&m, &h, &it, todo, (uint64_t)U, 86400000, threads, vec, NULL)) {
                fprintf(stderr, "bench_users: %s\n", sp_errmsg());
                return 1;
            }
            double t = sp_now() - t0;
            best = t < best ? t : best;
        }
        double rate = U / best;
        if (threads == 1) rate1 = rate;
        printf("{\"bench\":\"users_encode\",\"threads\":%d,\"users\":%d,\"M\":%d,\"width\":%d,\"layers\":%d,"
               "\"heads\":%d,\"dim\":%d,\"users_per_s\":%.1f,\"full_forward_users_per_s\":%.1f,"
               "\"ratio_vs_full_forward\":%.3f,\"speedup_vs_1_thread\":%.3f}\n",
               threads, U, M, width, layers, heads, d, rate, 1.0 / tfull, rate * tfull, rate / rate1);
        fflush(stdout);
    }
    if (bench_loss(d)) return 1;
    sq_model_free(&m);
    sq_hist_free(&h);
    free(a), free(todo), free(vec), free(iv), free(idx);
    return 0;
}
