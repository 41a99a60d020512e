/* bench_dist_mpi: the pipeline's float all-reduce (sp_dist_sum_f32: a non-blocking
 * MPI_Iallreduce waited for with a deadline) against a blocking MPI_Allreduce of the
 * same buffer in the same run. Run under mpirun (bench/dist.sh runs it on 2 ranks):
 *
 *   mpirun -np N bench_dist_mpi [--floats 65536,1048576,4718592] [--repeat 10]
 *
 * 4718592 floats = 18 MiB: one training step's id-embedding row gradients on Gowalla
 * (70k rows × 64). Both sums are checked against the exact value (every rank adds
 * rank + 1 to every element: small integers, exact in float). One JSON line per size
 * on rank 0: the median of --repeat calls of each, and ours / blocking. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_median.h"
#include "dist.h"
#include "log.h"
#include "sp_base.h"

static void usage(void) {
    fprintf(stderr, "usage: bench_dist_mpi [--floats N[,N...]] [--repeat R]\n");
    exit(2);
}

static int check(const float *v, size_t n, float want) {
    for (size_t i = 0; i < n; i++)
        if (v[i] != want) return 0;
    return 1;
}

int main(int argc, char **argv) {
    if (sp_dist_init(&argc, &argv)) {
        fprintf(stderr, "bench_dist_mpi: %s\n", sp_errmsg());
        return 4;
    }
    const char *sizes = "65536,1048576,4718592";
    int repeat = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--floats") && i + 1 < argc) sizes = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else usage();
    }
    if (repeat < 1 || repeat > 1000) usage();
    int rank = sp_dist_rank(), size = sp_dist_size(), status = 0;
    float want = (float)size * (float)(size + 1) / 2;
    double *t_ours = malloc(sizeof(double) * (size_t)repeat), *t_mpi = malloc(sizeof(double) * (size_t)repeat);
    char *list = strdup(sizes);
    if (!t_ours || !t_mpi || !list) return 1;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        long n = atol(tok);
        if (n < 1 || n > 1L << 28) usage();
        float *v = malloc(sizeof(float) * (size_t)n);
        if (!v) return 1;
        int ok = 1;
        for (int r = 0; r < repeat; r++) {
            for (long i = 0; i < n; i++) v[i] = (float)(rank + 1);
            sp_dist_barrier();
            double t0 = sp_now();
            if (sp_dist_sum_f32(v, (size_t)n)) ok = 0;
            t_ours[r] = sp_now() - t0;
            ok &= check(v, (size_t)n, want);
            for (long i = 0; i < n; i++) v[i] = (float)(rank + 1);
            sp_dist_barrier();
            t0 = sp_now();
            if (MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS) ok = 0;
            t_mpi[r] = sp_now() - t0;
            ok &= check(v, (size_t)n, want);
        }
        /* the slowest rank's median is the collective's time */
        double m[2] = {bench_median(t_ours, repeat), bench_median(t_mpi, repeat)};
        sp_dist_max_f64(m, 2);
        int okall = ok;
        MPI_Allreduce(MPI_IN_PLACE, &okall, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        if (!okall) status = 1;
        if (rank == 0)
            printf("{\"bench\":\"dist_allreduce\",\"ranks\":%d,\"floats\":%ld,\"mib\":%.2f,\"seconds\":%.6f,"
                   "\"gb_s\":%.3f,\"blocking_seconds\":%.6f,\"blocking_gb_s\":%.3f,\"ratio\":%.3f,\"correct\":%s}\n",
                   size, n, n * 4.0 / (1 << 20), m[0], n * 4e-9 / m[0], m[1], n * 4e-9 / m[1], m[1] / m[0],
                   okall ? "true" : "false");
        free(v);
    }
    fflush(stdout);
    free(list);
    free(t_ours);
    free(t_mpi);
    sp_dist_finalize();
    return status;
}
