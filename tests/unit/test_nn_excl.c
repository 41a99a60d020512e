/* test_nn_excl: nn_sampled_softmax_ex's per-query exclusions equal, query by
 * query, a plain sampled softmax over the candidates that remain (a query's
 * own positive is never excluded; an id present in several columns is
 * excluded in all of them). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nn.h"

int main(void) {
    enum { NQ = 3, NC = 10, D = 8 };
    sp_rng r;
    sp_rng_init(&r, 3, 9, 0);
    float q[NQ * D], c[NC * D], lq[NC], dq[NQ * D], dc[NC * D], dtau, scratch[NQ * NC];
    for (int i = 0; i < NQ * D; i++) q[i] = (float)(sp_rng_unif(&r) - 0.5);
    for (int i = 0; i < NC * D; i++) c[i] = (float)(sp_rng_unif(&r) - 0.5);
    for (int j = 0; j < NC; j++) lq[j] = (float)(-2 * sp_rng_unif(&r));
    uint64_t cid[NC] = {100, 101, 102, 103, 104, 105, 106, 105, 108, 109}; /* 105 twice */
    int pos[NQ] = {0, 1, 2};
    /* q0 excludes 105 (two columns) and 107 (absent); q1 nothing; q2 its own positive (kept) and 109 */
    uint64_t off[NQ + 1] = {0, 2, 2, 4}, ex[4] = {105, 107, 102, 109};
    float tau = 0.3f;
    float loss = nn_sampled_softmax_ex(q, c, pos, cid, lq, off, ex, NQ, NC, D, tau, dq, dc, &dtau, scratch);
    double ref = 0;
    for (int i = 0; i < NQ; i++) {
        /* the remaining columns for query i */
        float ci[NC * D], li[NC], dqi[D], dci[NC * D], dti, sc[NC];
        uint64_t idi[NC];
        int n = 0, pi = -1;
        for (int j = 0; j < NC; j++) {
            int out = 0;
            for (uint64_t e = off[i]; e < off[i + 1]; e++) out |= cid[j] == ex[e] && j != pos[i];
            if (out) continue;
            if (j == pos[i]) pi = n;
            memcpy(ci + n * D, c + j * D, sizeof(float) * D);
            li[n] = lq[j];
            idi[n++] = cid[j];
        }
        CHECK(pi >= 0);
        float l = nn_sampled_softmax(q + i * D, ci, &pi, idi, li, 1, n, D, tau, dqi, dci, &dti, sc);
        ref += l / NQ;
        for (int k = 0; k < D; k++) CHECK_NEAR(dq[i * D + k], dqi[k] / NQ, 1e-6);
    }
    CHECK_NEAR(loss, ref, 1e-5);
    /* without exclusions it is nn_sampled_softmax */
    float l2 = nn_sampled_softmax_ex(q, c, pos, cid, lq, NULL, NULL, NQ, NC, D, tau, dq, dc, &dtau, scratch);
    float l3 = nn_sampled_softmax(q, c, pos, cid, lq, NQ, NC, D, tau, dq, dc, &dtau, scratch);
    CHECK_NEAR(l2, l3, 0);
    CHECK(loss != l3);
    return CHECK_DONE();
}
