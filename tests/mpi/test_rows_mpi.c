/* test_rows_mpi (1, 2, 4 ranks): owner-rank row updates (jobs/train_rows.c)
 * against the replicated update they replace: every rank touches its own
 * rows with its own gradients; the reference sums full gradient tables over
 * ranks, takes the union of the touched rows and runs lazy Adam on every
 * rank. After each step the table must match the reference (to float
 * rounding: the owner sums in another order) and be bit-identical on every
 * rank; gradients and flags must be cleared; after sp_rows_sync_moments the
 * moments must match too. The tables are large enough that both exchanges
 * take several shuffle rounds (each round holds < 1 MiB per destination);
 * the record counters must equal the touched rows owned elsewhere. Twice:
 * rows of nodes (owned by sp_owner of their pin or board id) and rows without
 * nodes (owned by row mod ranks). Then in fetch mode: after each step the
 * rows a rank owns match the reference, a fetched set of rows (others'
 * included) matches it, a row neither owned nor fetched keeps its old value
 * (nothing was pushed), and after sp_rows_owner_spread the whole table does,
 * bit-identical on every rank. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dist.h"
#include "nn.h"
#include "sp_base.h"
#include "train_rows.h"

#define NROW 12011
#define D 64
#define STEPS 4

static int touches(int step, int rank, uint64_t u) {
    /* a different half of the rows per rank and step; row 5 is never touched */
    return u != 5 && (sp_mix64((uint64_t)step * 1000003u ^ (uint64_t)rank * 7919u ^ u) & 1);
}

static float grad(int step, int rank, uint64_t u, int k) {
    uint64_t h = sp_mix64(((uint64_t)step << 48) ^ ((uint64_t)rank << 40) ^ (u << 8) ^ (uint64_t)k);
    return (float)((double)(h >> 11) * 0x1.0p-53 - 0.5);
}

static uint64_t hash_f32(const float *x, size_t n) {
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], 4);
        h = sp_mix64(h ^ b);
    }
    return h;
}

static double max_rel(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / (1e-3 + fabs((double)b[i]));
        if (e > m) m = e;
    }
    return m;
}

static uint64_t *ids; /* NULL: rows without nodes */
#define NPINS (NROW / 3)

static int owner(uint64_t u, int size) {
    return ids ? sp_owner(u < NPINS ? SP_PIN : SP_BOARD, ids[u], size) : (int)(u % (uint64_t)size);
}

static int push = 1;

static void run(void) {
    const int rank = sp_dist_rank(), size = sp_dist_size();
    const size_t n = (size_t)NROW * D;
    float *P = malloc(4 * n), *M = calloc(n, 4), *V = calloc(n, 4), *G = calloc(n, 4);
    float *Pr = malloc(4 * n), *Mr = calloc(n, 4), *Vr = calloc(n, 4), *Gr = malloc(4 * n), *grow = malloc(4 * n);
    uint8_t *touched = calloc(NROW, 1), *ur = malloc(NROW);
    uint32_t *rows = malloc(4 * NROW);
    for (size_t i = 0; i < n; i++) P[i] = Pr[i] = (float)(i % 13) * 0.01f - 0.06f;
    sp_rows_owner R;
    CHECK_RC(sp_rows_owner_init(&R, 1u << 20, D, NROW, NPINS, ids, push), SP_OK); /* 512 KiB per destination */
    float *before = malloc(4 * n);
    uint32_t *need = malloc(4 * NROW);
    uint64_t nmine = 0;
    for (uint64_t u = 0; u < NROW; u++) nmine += owner(u, size) == rank;
    CHECK_EQ_U64(R.nmine, nmine);
    nn_adam_cfg c = {0.9f, 0.999f, 1e-8f, 0.01f};
    uint64_t want_sent = 0, want_recv = 0, updated_all = 0;
    for (int step = 1; step <= STEPS; step++) {
        /* this rank's minibatch gradients */
        for (uint64_t u = 0; u < NROW; u++)
            if (touches(step, rank, u)) {
                touched[u] = 1;
                for (int k = 0; k < D; k++) G[u * D + (uint64_t)k] = grad(step, rank, u, k);
                if (owner(u, size) != rank) want_sent++;
            }
        /* the reference: full tables summed, the union, Adam everywhere */
        memcpy(Gr, G, 4 * n);
        memcpy(ur, touched, NROW);
        CHECK_RC(sp_dist_sum_f32(Gr, n), SP_OK);
        CHECK_RC(sp_dist_max_u8(ur, NROW), SP_OK);
        int nr = 0;
        for (uint64_t u = 0; u < NROW; u++)
            if (ur[u]) {
                if (owner(u, size) != rank) want_recv++;
                rows[nr] = (uint32_t)u;
                memcpy(grow + (size_t)nr * D, Gr + u * D, 4 * D);
                nr++;
            }
        CHECK(ur[5] == 0 && nr > NROW / 3);
        float lr = 0.01f * (float)step;
        nn_adam_rows(Pr, Mr, Vr, rows, grow, nr, D, &c, step, lr);
        uint64_t upd = 0;
        memcpy(before, P, 4 * n);
        CHECK_RC(sp_rows_owner_step(&R, P, M, V, G, touched, NROW, rows, grow, &c, step, lr, &upd), SP_OK);
        updated_all += upd;
        size_t dirty = 0;
        for (uint64_t u = 0; u < NROW; u++) dirty += touched[u] != 0;
        for (size_t i = 0; i < n; i++) dirty += G[i] != 0;
        CHECK_MSG(dirty == 0, "step %d: %zu gradient entries or flags left set", step, dirty);
        if (!push) {
            /* owned rows current; a fetched set (every third row, owned or not) current; the rest as before */
            uint64_t nneed = 0, bad_own = 0, bad_stale = 0;
            for (uint64_t u = (uint64_t)step % 3; u < NROW; u += 3) need[nneed++] = (uint32_t)u;
            CHECK_RC(sp_rows_owner_fetch(&R, P, need, nneed), SP_OK);
            for (uint64_t u = 0; u < NROW; u++) {
                int own = owner(u, size) == rank, fetched = u % 3 == (uint64_t)step % 3;
                const float *want = own || fetched ? Pr + u * D : before + u * D;
                if (memcmp(P + u * D, want, 4 * D) && max_rel(P + u * D, want, D) > 1e-4) {
                    if (own || fetched) bad_own++;
                    else bad_stale++;
                }
            }
            CHECK_MSG(bad_own == 0, "step %d: %llu owned or fetched rows not current", step,
                      (unsigned long long)bad_own);
            CHECK_MSG(bad_stale == 0, "step %d: %llu rows neither owned nor fetched changed", step,
                      (unsigned long long)bad_stale);
            CHECK_RC(sp_rows_owner_spread(&R, P), SP_OK);
        }
        double e = max_rel(P, Pr, n);
        CHECK_MSG(e < 1e-4, "step %d: table differs from the replicated update by %g (relative)", step, e);
        uint64_t h = hash_f32(P, n), *hs = malloc(8 * (size_t)size);
        CHECK_RC(sp_dist_allgather_u64(&h, hs, 1), SP_OK);
        for (int r = 0; r < size; r++)
            CHECK_MSG(hs[r] == hs[0], "step %d: rank %d's table differs from rank 0's", step, r);
        free(hs);
        CHECK_MSG(P[5 * D] == Pr[5 * D] && P[5 * D] == (float)((5 * D) % 13) * 0.01f - 0.06f, "untouched row 5 moved");
    }
    /* each union row is updated by exactly one rank, its owner */
    uint64_t tot = updated_all;
    CHECK_RC(sp_dist_sum_u64(&tot, 1), SP_OK);
    uint64_t union_rows = 0;
    for (int step = 1; step <= STEPS; step++)
        for (uint64_t u = 0; u < NROW; u++) {
            int any = 0;
            for (int r = 0; r < size; r++) any |= touches(step, r, u);
            union_rows += (uint64_t)any;
        }
    CHECK_EQ_U64(tot, union_rows);
    CHECK_EQ_U64(R.grads_sent, want_sent);
    CHECK_EQ_U64(R.rows_recv, push ? want_recv : (uint64_t)STEPS * (NROW - R.nmine)); /* fetch: the spreads */
    uint64_t sent_sum[2] = {R.grads_sent, R.grads_recv};
    CHECK_RC(sp_dist_sum_u64(sent_sum, 2), SP_OK);
    CHECK_EQ_U64(sent_sum[0], sent_sum[1]);
    CHECK_RC(sp_rows_sync_moments(&R, M, V), SP_OK);
    double em = max_rel(M, Mr, n), ev = max_rel(V, Vr, n);
    CHECK_MSG(em < 1e-4 && ev < 1e-4, "moments after sync differ: m %g v %g", em, ev);
    sp_rows_owner_free(&R);
    free(P), free(M), free(V), free(G), free(Pr), free(Mr), free(Vr), free(Gr), free(grow);
    free(touched), free(ur), free(rows), free(before), free(need);
}

int main(int argc, char **argv) {
    if (sp_dist_init(&argc, &argv)) return 1;
    run();
    ids = malloc(8 * NROW);
    for (uint64_t u = 0; u < NROW; u++) ids[u] = u < NPINS ? 1000 + 7 * u : 3 * u + 11; /* pins, then boards */
    run();
    push = 0;
    run();
    free(ids);
    int failed = CHECK_DONE();
    int rc = sp_dist_agree(failed ? SP_EINTERNAL : SP_OK);
    sp_dist_finalize();
    return rc ? 1 : 0;
}
