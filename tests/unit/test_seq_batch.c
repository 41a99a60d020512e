/* test_seq_batch: packing histories into encoder batches (item gather, zero
 * vectors for pins the table lacks, query times), sq_query_time, and
 * sq_encode_users: equal to encoding each user's last max_len actions by hand,
 * and bit-identical for 1 and 3 threads. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "seq_batch.h"

static void test_packer(void) {
    float vec[3 * 2] = {1, 2, 3, 4, 5, 6};
    sp_idrow idx[3] = {{10, 0}, {20, 1}, {30, 2}};
    sq_items it = {3, 2, vec, idx};
    sq_action a[3] = {{20, 100, 1, 2}, {99, 200, 0, 1}, {10, 260, 2, 0}};
    sq_packer pk = {0};
    CHECK_RC(sq_packer_add(&pk, a, 3, 1000, &it), SP_OK);
    CHECK_RC(sq_packer_add(&pk, a + 2, 1, 5000, &it), SP_OK);
    sq_batch b = sq_packer_batch(&pk);
    CHECK_EQ_INT(b.B, 2);
    CHECK_EQ_U64(pk.N, 4);
    CHECK_EQ_U64(b.off[1], 3);
    CHECK_EQ_U64(b.off[2], 4);
    CHECK(b.item[0] == 3 && b.item[1] == 4); /* pin 20 -> row 1 */
    CHECK(b.item[2] == 0 && b.item[3] == 0); /* pin 99: not in the table */
    CHECK(b.item[4] == 1 && b.item[6] == 1);
    CHECK_EQ_U64(pk.missing, 1);
    CHECK(b.qt[0] == 200 && b.qt[1] == 260 && b.qt[2] == 1000 && b.qt[3] == 5000);
    CHECK(b.act[0] == 1 && b.surf[0] == 2 && b.ts[2] == 260);
    sq_packer_reset(&pk);
    CHECK_EQ_U64(pk.N, 0);
    sq_packer_free(&pk);
}

static void test_query_time(void) {
    sq_action a[5] = {{1, 0, 0, 0}, {1, 10, 0, 0}, {1, 40, 0, 0}, {1, 50, 0, 0}, {1, 150, 0, 0}};
    /* gaps 10, 30, 10, 100: median (upper of sorted [10 10 30 100] at k/2) = 30 */
    CHECK_EQ_INT(sq_query_time(a, 5, 1000), 180);
    CHECK_EQ_INT(sq_query_time(a, 5, 20), 170); /* capped */
    CHECK_EQ_INT(sq_query_time(a, 1, 1000), 0); /* one action: its ts */
}

static void test_encode_users(void) {
    enum { NI = 50, D = 8, NU = 70, M = 6 };
    sp_rng r;
    sp_rng_init(&r, 3, SP_RNG_GEN, 0);
    float vec[NI * D];
    sp_idrow idx[NI];
    for (int i = 0; i < NI * D; i++) vec[i] = (float)sp_rng_unif(&r) - 0.5f;
    for (int i = 0; i < NI; i++) idx[i] = (sp_idrow){(uint64_t)(7 * i + 1), (uint64_t)i};
    sq_items it = {NI, D, vec, idx};
    sq_hist h = {0};
    uint64_t todo[NU];
    for (int u = 0; u < NU; u++) {
        sq_action a[20];
        int n = 1 + (int)sp_rng_below(&r, 20);
        for (int j = 0; j < n; j++)
            a[j] = (sq_action){7 * sp_rng_below(&r, NI + 5) + 1, 1700000000000LL + 60000LL * j, (uint8_t)sp_rng_below(&r, 3),
                               (uint8_t)sp_rng_below(&r, 2)};
        CHECK_RC(sq_hist_append(&h, (uint64_t)(u + 1), 0, a, (uint64_t)n), SP_OK);
        todo[u] = (uint64_t)(NU - 1 - u); /* any order */
    }
    sq_cfg c = {.d_item = D, .n_actions = 3, .n_surfaces = 2, .d_e = 4, .width = 8, .layers = 2, .heads = 2, .max_len = M};
    sq_model m;
    CHECK_RC(sq_model_init(&m, &c, 5), SP_OK);
    float *v1 = calloc(NU * D, 4), *v3 = calloc(NU * D, 4), ref[D];
    uint64_t miss = 0;
    CHECK_RC(sq_encode_users(&m, &h, &it, todo, NU, 86400000, 1, v1, &miss), SP_OK);
    CHECK(miss > 0); /* ids 7·(50..54)+1 are not in the table */
    CHECK_RC(sq_encode_users(&m, &h, &it, todo, NU, 86400000, 3, v3, NULL), SP_OK);
    CHECK(memcmp(v1, v3, sizeof(float) * NU * D) == 0);
    /* by hand: user u's last M actions, query time from all of its actions */
    sq_packer pk = {0};
    sq_acts *acts = sq_acts_new();
    double worst = 0;
    for (int u = 0; u < NU; u++) {
        sq_action a[20];
        uint64_t n = h.nact[u], s = n > M ? n - M : 0;
        CHECK_RC(sq_hist_user(&h, (uint64_t)u, a, 20), SP_OK);
        sq_packer_reset(&pk);
        CHECK_RC(sq_packer_add(&pk, a + s, n - s, sq_query_time(a, n, 86400000), &it), SP_OK);
        sq_batch b = sq_packer_batch(&pk);
        CHECK_RC(sq_encode_last(&m, &b, acts, ref), SP_OK);
        for (int k = 0; k < D; k++) worst = fmax(worst, fabs(ref[k] - v1[u * D + k]));
    }
    CHECK_MSG(worst < 1e-6, "encode_users differs from one-by-one encoding by %g", worst);
    sq_acts_free(acts);
    sq_packer_free(&pk);
    free(v1);
    free(v3);
    sq_model_free(&m);
    sq_hist_free(&h);
}

int main(void) {
    test_packer();
    test_query_time();
    test_encode_users();
    return CHECK_DONE();
}
