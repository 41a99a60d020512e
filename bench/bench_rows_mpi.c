/* bench_rows_mpi: one optimizer step of an embedding table's touched rows, the
 * train stage's owner-rank update (jobs/train_rows.c: gradients to the rows'
 * owners, lazy Adam there, new rows back) against the replicated update it
 * replaced (a flag per row MAX-reduced, the union's gradients packed and summed
 * with sp_dist_sum_f32, Adam on every rank), same tables, same run; and the
 * owner update in fetch mode (train.row_sync = fetch: before the step each
 * rank fetches the rows it reads — here the rows it touches — and owners push
 * nothing). Run under
 * mpirun (bench/rows.sh runs it on 2 ranks):
 *
 *   mpirun -np N bench_rows_mpi [--rows 70839] [--dim 64] [--touch 0.05,0.3,1] [--steps 20]
 *
 * Each rank touches a fraction --touch of the rows per step (its own random
 * choice). Defaults: the Gowalla training view (70,839 nodes, width 64). One
 * JSON line per fraction on rank 0: median ms per step of each, owner /
 * replicated, bytes each rank sent per step (shuffle bytes for the owner
 * modes), and the largest difference from the replicated table after the
 * steps (the owner sums in another order). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_median.h"
#include "dist.h"
#include "log.h"
#include "nn.h"
#include "sp_base.h"
#include "train_rows.h"

static void usage(void) {
    fprintf(stderr, "usage: bench_rows_mpi [--rows N] [--dim D] [--touch F[,F...]] [--steps S]\n");
    exit(2);
}

/* this rank's gradients of step s: rows chosen with probability f */
static void make_grads(float *G, uint8_t *touched, uint64_t n, int d, double f, int s, int rank) {
    for (uint64_t u = 0; u < n; u++) {
        uint64_t h = sp_mix64(((uint64_t)s << 40) ^ ((uint64_t)rank << 32) ^ u);
        if ((double)(h >> 11) * 0x1.0p-53 >= f) continue;
        touched[u] = 1;
        for (int k = 0; k < d; k++)
            G[u * (uint64_t)d + (uint64_t)k] = (float)((int)((h >> (k % 48)) & 255) - 128) / 256.f;
    }
}

int main(int argc, char **argv) {
    if (sp_dist_init(&argc, &argv)) return 1;
    sp_log_init(sp_dist_rank(), SP_LOG_WARN);
    uint64_t n = 70839;
    int d = 64, steps = 20;
    double fr[16] = {0.05, 0.3, 1.0};
    int nf = 3;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--rows")) n = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--dim")) d = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--touch")) {
            nf = 0;
            for (char *t = strtok(argv[++i], ","); t && nf < 16; t = strtok(NULL, ",")) fr[nf++] = atof(t);
        } else usage();
    }
    if (n < 1 || n > UINT32_MAX || d < 1 || steps < 1 || nf < 1) usage();
    const int rank = sp_dist_rank(), size = sp_dist_size();
    const size_t nd = (size_t)n * (size_t)d;
    float *P[3], *M[3], *V[3], *G = calloc(nd, 4), *grow = malloc(4 * nd);
    uint8_t *touched = calloc(n, 1);
    uint32_t *rows = malloc(4 * n);
    uint32_t *need = malloc(4 * n);
    for (int k = 0; k < 3; k++) P[k] = malloc(4 * nd), M[k] = malloc(4 * nd), V[k] = malloc(4 * nd);
    double *t_own = malloc(sizeof(double) * (size_t)steps), *t_rep = malloc(sizeof(double) * (size_t)steps);
    double *t_fet = malloc(sizeof(double) * (size_t)steps);
    if (!G || !grow || !touched || !rows || !need || !P[2] || !V[2] || !t_rep || !t_fet) {
        fprintf(stderr, "bench_rows_mpi: out of memory\n");
        return 1;
    }
    nn_adam_cfg c = {0.9f, 0.999f, 1e-8f, 0.f};
    sp_rows_owner R, RF;
    if (sp_rows_owner_init(&R, (size_t)64 << 20, d, n, 0, NULL, 1)) return 1;
    if (sp_rows_owner_init(&RF, (size_t)64 << 20, d, n, 0, NULL, 0)) return 1;
    int status = 0;
    for (int fi = 0; fi < nf; fi++) {
        for (int k = 0; k < 3; k++) {
            for (size_t i = 0; i < nd; i++) P[k][i] = (float)(i % 17) * 0.01f;
            memset(M[k], 0, 4 * nd);
            memset(V[k], 0, 4 * nd);
        }
        uint64_t own_bytes = 0, rep_bytes = 0, fet_bytes = 0;
        for (int s = 0; s < steps; s++) {
            /* replicated: flags MAX-reduced, the union packed, summed, Adam everywhere */
            make_grads(G, touched, n, d, fr[fi], s, rank);
            sp_dist_barrier();
            double t0 = sp_now();
            int rc = sp_dist_max_u8(touched, n);
            uint32_t nr = 0;
            for (uint64_t u = 0; u < n; u++)
                if (touched[u]) {
                    rows[nr] = (uint32_t)u;
                    memcpy(grow + (size_t)nr * d, G + u * d, 4 * (size_t)d);
                    memset(G + u * d, 0, 4 * (size_t)d);
                    touched[u] = 0;
                    nr++;
                }
            if (!rc && size > 1) rc = sp_dist_sum_f32(grow, (size_t)nr * d);
            nn_adam_rows(P[1], M[1], V[1], rows, grow, (int)nr, d, &c, s + 1, 0.01f);
            t_rep[s] = sp_now() - t0;
            rep_bytes += n + 4ull * nr * (uint64_t)d;
            /* owner-rank update */
            make_grads(G, touched, n, d, fr[fi], s, rank);
            sp_dist_barrier();
            uint64_t before = R.sh ? sp_shuffle_bytes_sent(R.sh) : 0;
            t0 = sp_now();
            if (!rc) rc = sp_rows_owner_step(&R, P[0], M[0], V[0], G, touched, n, rows, grow, &c, s + 1, 0.01f, NULL);
            t_own[s] = sp_now() - t0;
            own_bytes += (R.sh ? sp_shuffle_bytes_sent(R.sh) : 0) - before;
            /* fetch mode: the rows this step reads (= touches) fetched first, nothing pushed after */
            make_grads(G, touched, n, d, fr[fi], s, rank);
            uint64_t nneed = 0;
            for (uint64_t u = 0; u < n; u++)
                if (touched[u]) need[nneed++] = (uint32_t)u;
            sp_dist_barrier();
            before = RF.sh ? sp_shuffle_bytes_sent(RF.sh) : 0;
            t0 = sp_now();
            if (!rc) rc = sp_rows_owner_fetch(&RF, P[2], need, nneed);
            if (!rc) rc = sp_rows_owner_step(&RF, P[2], M[2], V[2], G, touched, n, rows, grow, &c, s + 1, 0.01f, NULL);
            t_fet[s] = sp_now() - t0;
            fet_bytes += (RF.sh ? sp_shuffle_bytes_sent(RF.sh) : 0) - before;
            if (rc) {
                fprintf(stderr, "bench_rows_mpi: %s\n", sp_errmsg());
                return 1;
            }
        }
        if (sp_rows_owner_spread(&RF, P[2])) return 1; /* the whole table, to compare */
        double diff = 0;
        for (size_t i = 0; i < nd; i++)
            diff = fmax(diff, fmax(fabs((double)P[0][i] - (double)P[1][i]), fabs((double)P[2][i] - (double)P[1][i])));
        double v[3] = {bench_median(t_own, steps), bench_median(t_rep, steps), bench_median(t_fet, steps)};
        sp_dist_max_f64(v, 3); /* the slowest rank's medians */
        if (diff > 1e-4) status = 1;
        if (rank == 0)
            printf("{\"bench\":\"rows\",\"ranks\":%d,\"rows\":%llu,\"dim\":%d,\"touch\":%g,\"steps\":%d,"
                   "\"owner_ms\":%.3f,\"replicated_ms\":%.3f,\"owner_over_replicated\":%.3f,"
                   "\"fetch_ms\":%.3f,\"fetch_over_replicated\":%.3f,"
                   "\"owner_bytes_per_step\":%llu,\"replicated_bytes_per_step\":%llu,\"fetch_bytes_per_step\":%llu,"
                   "\"max_diff\":%.3g}\n",
                   size, (unsigned long long)n, d, fr[fi], steps, 1e3 * v[0], 1e3 * v[1], v[0] / v[1], 1e3 * v[2],
                   v[2] / v[1], (unsigned long long)(own_bytes / (uint64_t)steps),
                   (unsigned long long)(rep_bytes / (uint64_t)steps), (unsigned long long)(fet_bytes / (uint64_t)steps),
                   diff);
    }
    sp_rows_owner_free(&R);
    sp_rows_owner_free(&RF);
    int rc = sp_dist_agree(status ? SP_EINTERNAL : SP_OK);
    sp_dist_finalize();
    return rc ? 1 : 0;
}
