/* test_shuffle_mpi (run at 1, 2, 4 ranks): every record reaches its
 * destination exactly once and in put order per source, with a buffer so
 * small that it takes many rounds (sent from one block of send buffers) and
 * with one so large that at 4 ranks the buffers are packed for MPI; an error on one rank reaches all ranks
 * with that rank's message; reductions (float sums below and above the size where
 * sp_dist_sum_f32 switches to the blocking all-reduce) and scans agree. */
#include <stdlib.h>

#include "check.h"
#include "dist.h"
#include "sp_base.h"

typedef struct {
    int size;
    uint64_t *next;  /* [size] next expected sequence number per source */
    uint64_t got, bad;
} ctx_t;

/* record: u32 src, u32 dst, u64 seq, then (seq % 50) filler bytes of value seq & 0xff */
static int sink(void *c, int src, const void *rec, size_t len) {
    ctx_t *x = c;
    uint32_t s, d;
    uint64_t seq;
    memcpy(&s, rec, 4);
    memcpy(&d, (const char *)rec + 4, 4);
    memcpy(&seq, (const char *)rec + 8, 8);
    int ok = (int)s == src && (int)d == sp_dist_rank() && len == 16 + seq % 50 && seq == x->next[src];
    for (size_t i = 16; ok && i < len; i++) ok = ((const unsigned char *)rec)[i] == (seq & 0xff);
    if (!ok) x->bad++;
    x->next[src] = seq + (uint64_t)x->size;
    x->got++;
    return SP_OK;
}

int main(int argc, char **argv) {
    if (sp_dist_init(&argc, &argv)) return 1;
    sp_dist_set_timeout(60);
    int rank = sp_dist_rank(), size = sp_dist_size();
    ctx_t x = {.size = size, .next = calloc((size_t)size, 8)};
    for (int s = 0; s < size; s++) x.next[s] = (uint64_t)rank; /* seq ≡ dst (mod size) */
    sp_shuffle *sh;
    /* buffer 1: clamps to the minimum, many rounds, sent from one block of send buffers; 8 GiB: one
     * round, and at 4 ranks the block's offsets pass MPI's int range, so the buffers are packed */
    const size_t bufs[2] = {1, (size_t)8 << 30};
    for (int bi = 0; bi < 2; bi++) {
        for (int s = 0; s < size; s++) x.next[s] = (uint64_t)rank;
        x.got = 0;
        CHECK_RC(sp_shuffle_new(&sh, bufs[bi], sink, &x), SP_OK);
        const uint64_t N = 200000 + 5000 * (uint64_t)rank; /* ranks send different amounts */
        unsigned char rec[80];
        uint64_t i = 0;
        int all_done = 0, rounds = 0;
        while (!all_done) {
            int rc = SP_OK;
            for (; i < N && !sp_shuffle_full(sh) && !rc; i++) {
                uint32_t s = (uint32_t)rank, d = (uint32_t)(i % (uint64_t)size);
                memcpy(rec, &s, 4);
                memcpy(rec + 4, &d, 4);
                memcpy(rec + 8, &i, 8);
                memset(rec + 16, (int)(i & 0xff), i % 50);
                rc = sp_shuffle_put(sh, (int)d, rec, 16 + i % 50);
            }
            CHECK_RC(sp_shuffle_exchange(sh, i == N, rc, &all_done), SP_OK);
            rounds++;
        }
        sp_shuffle_free(sh);
        uint64_t expect = 0;
        for (int s = 0; s < size; s++) {
            uint64_t n = 200000 + 5000 * (uint64_t)s;
            expect += n / (uint64_t)size + (rank < (int)(n % (uint64_t)size));
        }
        CHECK_EQ_U64(x.got, expect);
        CHECK_EQ_U64(x.bad, 0);
        if (size > 1 && bi == 0) CHECK_MSG(rounds > 2, "only %d rounds", rounds);
    }
    int all_done;

    /* error agreement: rank size-1 fails, everyone sees its code and message */
    int rc = rank == size - 1 ? sp_err(SP_EINPUT, "bad row at x.tsv:7") : SP_OK;
    CHECK_RC(sp_dist_agree(rc), SP_EINPUT);
    char want[64];
    snprintf(want, sizeof want, "rank %d: bad row at x.tsv:7", size - 1);
    CHECK_STR(sp_errmsg(), want);
    CHECK_RC(sp_dist_agree(SP_OK), SP_OK);

    /* an error in the middle of a shuffle ends the loop on every rank */
    CHECK_RC(sp_shuffle_new(&sh, 1, sink, &x), SP_OK);
    all_done = 0;
    int loops = 0, last = SP_OK;
    while (!all_done && loops < 1000) {
        last = sp_shuffle_exchange(sh, 0, (rank == 0 && loops == 3) ? SP_EIO : SP_OK, &all_done);
        loops++;
    }
    CHECK_EQ_INT(loops, 4);
    CHECK_RC(last, SP_EIO);
    sp_shuffle_free(sh);

    /* reductions */
    uint64_t v[2] = {(uint64_t)rank + 1, 10}, pre = 99;
    CHECK_RC(sp_dist_sum_u64(v, 2), SP_OK);
    CHECK_EQ_U64(v[0], (uint64_t)size * (size + 1) / 2);
    CHECK_EQ_U64(v[1], 10 * (uint64_t)size);
    uint64_t mine = 5;
    CHECK_RC(sp_dist_exscan_u64(&mine, &pre, 1), SP_OK);
    CHECK_EQ_U64(pre, 5 * (uint64_t)rank);
    /* float sums: the non-blocking path (below 64Ki values) and the barrier + blocking one (above),
     * element i of rank r = (i % 7) + r (small integers: exact), every rank the same result */
    const size_t fn[3] = {1000, (size_t)1 << 16, ((size_t)1 << 18) + 3};
    for (int c = 0; c < 3; c++) {
        float *f = malloc(sizeof(float) * fn[c]);
        for (size_t j = 0; j < fn[c]; j++) f[j] = (float)(j % 7 + (size_t)rank);
        CHECK_RC(sp_dist_sum_f32(f, fn[c]), SP_OK);
        size_t bad = 0;
        for (size_t j = 0; j < fn[c]; j++)
            bad += f[j] != (float)((j % 7) * (size_t)size + (size_t)size * (size_t)(size - 1) / 2);
        CHECK_MSG(bad == 0, "sum of %zu floats: %zu wrong", fn[c], bad);
        free(f);
    }
    uint8_t flags[3] = {(uint8_t)(rank == 0), (uint8_t)(rank == size - 1), 0};
    CHECK_RC(sp_dist_max_u8(flags, 3), SP_OK);
    CHECK(flags[0] == 1 && flags[1] == 1 && flags[2] == 0);
    free(x.next);
    int failed = CHECK_DONE();
    rc = sp_dist_agree(failed ? SP_EINTERNAL : SP_OK);
    sp_dist_finalize();
    return rc ? 1 : 0;
}
