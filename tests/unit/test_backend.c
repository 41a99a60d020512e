/* The backend table on the CPU: every op is there, the reference attention
 * against a double-precision loop, bias_act and colsum against plain loops,
 * and the choice of a backend by name (cpu, cuda, auto, unknown). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "nn.h"

static void test_select(void) {
    const nn_backend *be;
    CHECK_RC(nn_backend_select("cpu", 0, &be), SP_OK);
    CHECK(be == nn_backend_cpu());
    CHECK_RC(nn_backend_select("auto", 3, &be), SP_OK);
    CHECK(be != NULL);
    CHECK(be == nn_backend_cpu() || !strcmp(be->name, "cuda"));
    int have = nn_backend_cuda(0) != NULL;
    int rc = nn_backend_select("cuda", 0, &be);
    if (have) CHECK(rc == SP_OK && !strcmp(be->name, "cuda"));
    else { /* no device or no CUDA build: a usage error that says why, never a silent CPU run */
        CHECK_RC(rc, SP_EUSAGE);
        CHECK(be == NULL);
        CHECK(strstr(sp_errmsg(), "--device cuda") != NULL);
    }
    CHECK_RC(nn_backend_select("gpu", 0, &be), SP_EUSAGE);
    CHECK(strstr(sp_errmsg(), "expected cpu, cuda or auto") != NULL);
    const nn_backend *c = nn_backend_cpu();
    for (int op = 0; op < NN_OP_COUNT; op++) CHECK(c->supports((nn_op)op));
    CHECK(!c->supports(NN_OP_COUNT));
    CHECK(c->host_memory == 1);
}

static void test_attention(void) {
    enum { B = 3, W = 12, HEADS = 3, DH = W / HEADS };
    uint64_t off[B + 1] = {0, 5, 6, 19};
    size_t N = off[B];
    sp_rng r;
    sp_rng_init(&r, 3, SP_RNG_GEN, 0);
    float *qkv = malloc(4 * N * 3 * W), *out = malloc(4 * N * W);
    for (size_t i = 0; i < N * 3 * W; i++) qkv[i] = (float)(4 * sp_rng_unif(&r) - 2);
    nn_backend_cpu()->attention(out, qkv, off, B, W, HEADS);
    double worst = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < HEADS; h++)
            for (uint64_t i = off[b]; i < off[b + 1]; i++) {
                double s[32], mx = -1e300, sum = 0, o[DH] = {0};
                int len = (int)(i - off[b] + 1);
                for (int j = 0; j < len; j++) {
                    s[j] = 0;
                    for (int c = 0; c < DH; c++)
                        s[j] += (double)qkv[i * 3 * W + h * DH + c] * qkv[(off[b] + j) * 3 * W + W + h * DH + c];
                    s[j] /= sqrt((double)DH);
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int j = 0; j < len; j++) sum += s[j] = exp(s[j] - mx);
                for (int j = 0; j < len; j++)
                    for (int c = 0; c < DH; c++) o[c] += s[j] / sum * qkv[(off[b] + j) * 3 * W + 2 * W + h * DH + c];
                for (int c = 0; c < DH; c++) {
                    double e = fabs(o[c] - out[i * W + h * DH + c]);
                    worst = e > worst ? e : worst;
                }
            }
    CHECK_MSG(worst < 1e-5, "attention: worst error %.3g against the double loop", worst);
    /* causality: changing the last row's keys and values leaves every earlier row bit-identical */
    float *out2 = malloc(4 * N * W);
    for (int c = W; c < 3 * W; c++) qkv[(N - 1) * 3 * W + c] += 1.f;
    nn_backend_cpu()->attention(out2, qkv, off, B, W, HEADS);
    CHECK(memcmp(out, out2, 4 * (N - 1) * W) == 0);
    CHECK(memcmp(out + (N - 1) * W, out2 + (N - 1) * W, 4 * W) != 0);
    free(qkv), free(out), free(out2);
}

static void test_bias_colsum(void) {
    float y[6] = {-1, 2, -3, 4, 0.5f, -0.25f}, b[3] = {0.5f, -1, 1}, g[6];
    memcpy(g, y, sizeof y);
    const nn_backend *c = nn_backend_cpu();
    c->bias_act(y, b, 2, 3, NN_ACT_RELU);
    float want[6] = {0, 1, 0, 4.5f, 0, 0.75f};
    for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], want[i], 0);
    c->bias_act(g, NULL, 2, 3, NN_ACT_GELU);
    float x = 2.f, gl;
    nn_gelu_fwd(&gl, &x, 1);
    CHECK_NEAR(g[1], gl, 1e-6);
    float db[3] = {1, 1, 1};
    c->colsum(db, want, 2, 3);
    CHECK_NEAR(db[0], 5.5, 1e-6);
    CHECK_NEAR(db[1], 2, 1e-6);
    CHECK_NEAR(db[2], 1.75, 1e-6);
}

int main(void) {
    test_select();
    test_attention();
    test_bias_colsum();
    return CHECK_DONE();
}
