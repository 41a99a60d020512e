/* test_train_feature: the train stage's entity-feature task (train.w_feature).
 * sp_feat_init finds the pins with content and leaves the task off without any;
 * sp_feat_step's loss ignores the id table, the neighbour lists and the degrees
 * (the pins are encoded from content alone); its gradients with respect to the
 * minibatch's output rows (in-batch candidates and shared negatives) and,
 * through sp_feat_backward, to the dense weights and the token rows match
 * finite differences; accidental hits (a query pin among the negatives) are masked. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train_feature.h"

enum { NP = 6, NB = 2, N = NP + NB, D = 4, TOK = 5 };

typedef struct {
    sp_sage_data D;
    float logdeg[N], out[16 * D];
    uint64_t pn_off[N + 1], bn_off[N + 1], tok_off[NP + 1];
    uint32_t pn_idx[16], bn_idx[16], tok_row[12];
    float pn_w[16], bn_w[16];
    sp_sage_params P, G;
} fixture;

/* pins 0..5 (pin 4 without tokens), boards 6, 7; every node lists two pin and one board neighbours */
static void setup(fixture *f) {
    memset(f, 0, sizeof *f);
    sp_rng r;
    sp_rng_init(&r, 3, SP_RNG_GEN, 0);
    for (int v = 0; v < N; v++) {
        f->logdeg[v] = (float)(1 + v % 3);
        f->pn_off[v + 1] = f->pn_off[v] + 2;
        f->pn_idx[2 * v] = (uint32_t)((v + 1) % NP), f->pn_idx[2 * v + 1] = (uint32_t)((v + 2) % NP);
        f->pn_w[2 * v] = 0.6f, f->pn_w[2 * v + 1] = 0.4f;
        f->bn_off[v + 1] = f->bn_off[v] + 1;
        f->bn_idx[v] = (uint32_t)(NP + v % NB), f->bn_w[v] = 1.f;
    }
    int k = 0;
    for (int p = 0; p < NP; p++) {
        if (p != 4)
            for (int j = 0; j < 2; j++) f->tok_row[k++] = (uint32_t)((p + 2 * j) % TOK);
        f->tok_off[p + 1] = (uint64_t)k;
    }
    sp_sage_data *d = &f->D;
    d->n = N, d->npins = NP, d->nboards = NB;
    d->tok_off = f->tok_off, d->tok_row = f->tok_row, d->tok_rows = TOK;
    d->g = (sp_sage_graph){.n = N, .npins = NP, .logdeg = f->logdeg, .pn_off = f->pn_off, .pn_idx = f->pn_idx,
                           .pn_w = f->pn_w, .bn_off = f->bn_off, .bn_idx = f->bn_idx, .bn_w = f->bn_w,
                           .tok_off = f->tok_off, .tok_row = f->tok_row};
    sp_sage_cfg c = {.d = D, .layers = 2, .id_emb = 1, .tok_rows = TOK, .dense_dim = 0};
    CHECK_RC(sp_sage_params_init(&f->P, &c, N, &r), SP_OK);
    CHECK_RC(sp_sage_params_zeros(&f->G, &c, N), SP_OK);
    /* biases away from 0 so that no ReLU sits at its kink */
    for (size_t i = 0; i < f->P.ndense; i++) f->P.dense[i] += 0.05f * ((float)sp_rng_unif(&r) - 0.5f);
    for (int i = 0; i < 16 * D; i++) f->out[i] = (float)sp_rng_unif(&r) - 0.5f;
}

/* queries 0, 4, 3 (pin 4 has no content), positives 1, 2, 7 (a board), negatives 5, 1: the task's
 * queries are pins 0, 3, 1, 2 in that order, capped at min(blk, nq) = 3: 0, 3, 1 (rows 0, 2, 3) */
static const uint32_t targets[] = {0, 4, 3, 1, 2, 7, 5, 1};
enum { NQ = 3, NNEG = 2, ROWS = 2 * NQ + NNEG };

static double loss_of(fixture *f, sp_feat *F, float *dout) {
    float loss = 0, dtau = 0;
    memset(dout, 0, sizeof(float) * ROWS * D);
    CHECK_RC(sp_feat_step(F, &f->P, targets, NQ, NNEG, f->out, 0.3f, 4, 1.f, dout, &loss, &dtau), SP_OK);
    return loss;
}

/* Central differences of the loss in every stride-th element of p against grad; returns the misses. */
static int fd_check(fixture *f, sp_feat *F, float *p, const float *grad, size_t n, size_t stride, const char *name,
                    int *checked) {
    const double h = 1e-3;
    float scratch[ROWS * D];
    int bad = 0;
    for (size_t i = 0; i < n; i += stride) {
        float keep = p[i];
        p[i] = keep + (float)h;
        double lp = loss_of(f, F, scratch);
        p[i] = keep - (float)h;
        double lm = loss_of(f, F, scratch);
        p[i] = keep;
        double fd = (lp - lm) / (2 * h);
        (*checked)++;
        if (!(fabs(fd - grad[i]) <= 2e-3 + 2e-2 * fabs(fd))) {
            bad++;
            fprintf(stderr, "%s[%zu]: fd %.6g, analytic %.6g\n", name, i, fd, grad[i]);
        }
    }
    return bad;
}

int main(void) {
    fixture f;
    setup(&f);
    sp_feat F;
    CHECK_RC(sp_feat_init(&F, &f.D, 2, D, 0, 0), SP_OK);
    CHECK(F.w == 0);
    CHECK_RC(sp_feat_init(&F, &f.D, 2, D, 0.8, 0), SP_OK);
    CHECK(F.w > 0.79f && F.w < 0.81f);
    CHECK_EQ_U64(F.ncontent, NP - 1);
    float dout[ROWS * D], d2[ROWS * D];
    double l0 = loss_of(&f, &F, dout);
    CHECK_EQ_INT(F.nf, 3);
    CHECK(l0 > 0);
    CHECK_EQ_U64(F.tgt[0], 0);
    CHECK_EQ_U64(F.tgt[1], 3);
    CHECK_EQ_U64(F.tgt[2], 1);
    CHECK(F.loss_n == 1);
    /* content alone: the id table, the neighbours and the degrees do not move the loss */
    for (int i = 0; i < N * D; i++) f.P.emb[i] += 0.3f;
    f.logdeg[0] += 1.f;
    f.pn_w[0] = 0.1f;
    CHECK_NEAR(loss_of(&f, &F, d2), l0, 1e-6);
    for (int i = 0; i < N * D; i++) f.P.emb[i] -= 0.3f;
    /* the output rows: finite differences against dout */
    loss_of(&f, &F, dout);
    int checked = 0;
    int bad = fd_check(&f, &F, f.out, dout, ROWS * D, 1, "out", &checked);
    CHECK_EQ_INT(bad, 0);
    /* rows 1 (pin 4: no content), 4 (pin 2: past the cap) and 5 (a board) are no candidates */
    for (int k = 0; k < D; k++) CHECK(dout[D + k] == 0.f && dout[4 * D + k] == 0.f && dout[5 * D + k] == 0.f);
    for (int k = 0; k < D; k++) CHECK(dout[k] != 0.f && dout[6 * D + k] != 0.f);
    /* the parameters: dense weights and token rows through sp_feat_backward */
    loss_of(&f, &F, dout);
    uint8_t ttouched[TOK] = {0};
    memset(f.G.dense, 0, sizeof(float) * f.G.ndense);
    memset(f.G.tok, 0, sizeof(float) * TOK * D);
    memset(f.G.emb, 0, sizeof(float) * N * D);
    CHECK_RC(sp_feat_backward(&F, &f.G, ttouched), SP_OK);
    CHECK_EQ_INT(F.nf, 0);
    for (int i = 0; i < N * D; i++) CHECK(f.G.emb[i] == 0.f); /* no id rows */
    for (int t = 0; t < TOK; t++) CHECK(ttouched[t] == (t < 4)); /* pins 0, 3, 1: rows 0, 2, 3, 0, 1, 3 */
    bad = fd_check(&f, &F, f.P.dense, f.G.dense, f.P.ndense, 3, "dense", &checked);
    bad += fd_check(&f, &F, f.P.tok, f.G.tok, TOK * D, 1, "tok", &checked);
    CHECK(checked > 80 + ROWS * D);
    CHECK_EQ_INT(bad, 0);
    /* a date without content: the task stays off */
    sp_feat F2;
    f.D.tok_off = NULL, f.D.tok_rows = 0;
    CHECK_RC(sp_feat_init(&F2, &f.D, 2, D, 0.8, 0), SP_OK);
    CHECK(F2.w == 0);
    sp_feat_free(&F2);
    sp_feat_free(&F);
    sp_sage_params_free(&f.P);
    sp_sage_params_free(&f.G);
    return CHECK_DONE();
}
