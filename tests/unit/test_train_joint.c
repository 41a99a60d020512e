/* test_train_joint: the train stage's user-entity task (sequence.mode = joint).
 * sp_joint_fill samples the windows of one step deterministically and covers
 * every user once over an epoch's steps; sp_joint_step's gradients with respect
 * to the item encoder's outputs (the targets' and the shared negatives' rows)
 * and to the user encoder's parameters match finite differences of its loss,
 * across several softmax blocks, with both losses on. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train_joint.h"

enum { NI = 40, D = 8, NU = 9, NNEG = 5 };

typedef struct {
    sp_joint J;
    sq_hist h;
    float table[NI * D], logq[NI];
    uint64_t ext[NI], train[NU];
    sp_idrow idx[NI];
} fixture;

static void setup(fixture *f) {
    memset(f, 0, sizeof *f);
    sp_rng r;
    sp_rng_init(&r, 11, SP_RNG_GEN, 0);
    for (int v = 0; v < NI; v++) {
        f->ext[v] = 1000 + 3 * (uint64_t)v;
        f->idx[v] = (sp_idrow){f->ext[v], (uint64_t)v};
        f->logq[v] = (float)(sp_rng_unif(&r) - 3.0);
        for (int k = 0; k < D; k++) f->table[v * D + k] = (float)sp_rng_unif(&r) - 0.5f;
    }
    for (int u = 0; u < NU; u++) {
        sq_action a[12];
        int n = 2 + (int)sp_rng_below(&r, 10);
        for (int j = 0; j < n; j++)
            a[j] = (sq_action){f->ext[sp_rng_below(&r, NI)], 1700000000000LL + 3600000LL * (j + 1) * (u + 1) + j,
                               (uint8_t)sp_rng_below(&r, 3), (uint8_t)sp_rng_below(&r, 2)};
        CHECK_RC(sq_hist_append(&f->h, (uint64_t)(u + 1), 0, a, (uint64_t)n), SP_OK);
        f->train[u] = (uint64_t)u;
    }
    sp_joint *J = &f->J;
    J->uc = (sp_users_cfg){.positions = 4, .inbatch = 3, .negatives = NNEG, .w_next = 1, .w_all = 0.5,
                           .window_days = 28, .tau = 0.2, .seed = 5,
                           .mc = {.d_item = D, .n_actions = 3, .n_surfaces = 2, .d_e = 4, .width = 8, .layers = 1,
                                  .heads = 2, .max_len = 6}};
    J->w = 0.7, J->d = D, J->size = 1, J->npins = NI;
    J->ext = f->ext, J->logq = f->logq, J->idx = f->idx, J->table = f->table;
    J->it = (sq_items){NI, D, f->table, f->idx};
    J->h = f->h;
    J->train = f->train, J->ntrain = NU, J->per_step = 4, J->longest = 12;
    CHECK_RC(sp_seq_state_init(&J->S, &J->uc), SP_OK);
    J->grad = calloc(J->S.m.n + 1, 4);
    J->acts = sq_acts_new();
    CHECK(J->grad && J->acts);
}

static void teardown(fixture *f) {
    sp_joint *J = &f->J;
    /* the fixture's arrays are not J's to free */
    J->idx = NULL, J->table = NULL, J->logq = NULL, J->train = NULL;
    memset(&J->h, 0, sizeof J->h);
    sp_joint_free(J);
    sq_hist_free(&f->h);
}

static void test_fill(void) {
    fixture f;
    setup(&f);
    sp_joint_batch a = {0}, b = {0};
    int seen[NU] = {0};
    /* NU = 9 users, 4 per step: steps 0..2 are epoch 0 (4 + 4 + 1 windows) */
    for (int64_t s = 0; s < 3; s++) {
        CHECK_RC(sp_joint_fill(&f.J, &a, s), SP_OK);
        CHECK_EQ_INT(a.pk.B, s < 2 ? 4 : 1);
        for (int k = 0; k < a.pk.B; k++) { /* which user: the packed window's first timestamp */
            for (int u = 0; u < NU; u++) {
                sq_action buf[12];
                CHECK_RC(sq_hist_user(&f.h, (uint64_t)u, buf, 12), SP_OK);
                for (uint64_t j = 0; j < f.h.nact[u]; j++) seen[u] += buf[j].ts == a.pk.ts[a.pk.off[k]]; /* unique */
            }
        }
    }
    for (int u = 0; u < NU; u++) CHECK_MSG(seen[u] == 1, "user %d seen %d times in one epoch", u, seen[u]);
    /* the same step samples the same windows and targets */
    CHECK_RC(sp_joint_fill(&f.J, &a, 4), SP_OK);
    CHECK_RC(sp_joint_fill(&f.J, &b, 4), SP_OK);
    CHECK_EQ_U64(a.nq, b.nq);
    CHECK(a.nq > 0 && !memcmp(a.Q.tgt, b.Q.tgt, 8 * a.nq) && !memcmp(a.Q.qrow, b.Q.qrow, 8 * a.nq));
    for (uint64_t i = 0; i < 2 * a.nq; i++) CHECK(a.Q.tgt[i] < NI);
    sp_joint_batch_free(&a);
    sp_joint_batch_free(&b);
    teardown(&f);
}

static float loss_at(fixture *f, sp_joint_batch *b, const float *out, uint32_t ubase, const uint32_t *neg,
                     float *dout) {
    float loss = 0;
    CHECK_RC(sp_joint_step(&f->J, b, out, ubase, 0, neg, NNEG, dout, 1.f, &loss), SP_OK);
    return loss;
}

static void test_grad(void) {
    fixture f;
    setup(&f);
    sp_joint_batch b = {0};
    CHECK_RC(sp_joint_fill(&f.J, &b, 1), SP_OK);
    CHECK(b.nq > 3); /* more than one softmax block */
    uint32_t ubase = NNEG, nrow = ubase + 2 * (uint32_t)b.nq;
    uint32_t neg[NNEG] = {3, 17, 17, 29, 0};
    float *out = malloc(4 * (size_t)nrow * D), *dout = calloc((size_t)nrow * D, 4), *dd = calloc((size_t)nrow * D, 4);
    sp_rng r;
    sp_rng_init(&r, 2, SP_RNG_GEN, 1);
    for (size_t i = 0; i < (size_t)nrow * D; i++) out[i] = (float)sp_rng_unif(&r) - 0.5f;
    float l0 = loss_at(&f, &b, out, ubase, neg, dout);
    CHECK(isfinite(l0) && l0 > 0);
    size_t np = f.J.S.m.n;
    float *g = malloc(4 * np);
    memcpy(g, f.J.grad, 4 * np);
    const float eps = 1e-2f;
    int bad = 0, nz = 0;
    for (uint32_t row = 0; row < nrow; row++)
        for (int k = 0; k < D; k += 3) {
            size_t i = (size_t)row * D + k;
            float x = out[i];
            out[i] = x + eps;
            memset(dd, 0, 4 * (size_t)nrow * D);
            float lp = loss_at(&f, &b, out, ubase, neg, dd);
            out[i] = x - eps;
            memset(dd, 0, 4 * (size_t)nrow * D);
            float lm = loss_at(&f, &b, out, ubase, neg, dd);
            out[i] = x;
            float fd = (lp - lm) / (2 * eps);
            nz += fabsf(dout[i]) > 1e-4f;
            if (fabsf(fd - dout[i]) > 2e-3f + 0.02f * fabsf(fd)) {
                if (bad++ < 5) fprintf(stderr, "d out[%u][%d]: fd %g analytic %g\n", row, k, fd, dout[i]);
            }
        }
    CHECK_EQ_INT(bad, 0);
    CHECK(nz > 10);
    bad = 0;
    for (size_t i = 0; i < np; i += np / 37 + 1) {
        float x = f.J.S.m.p[i];
        f.J.S.m.p[i] = x + eps;
        memset(dd, 0, 4 * (size_t)nrow * D);
        float lp = loss_at(&f, &b, out, ubase, neg, dd);
        f.J.S.m.p[i] = x - eps;
        memset(dd, 0, 4 * (size_t)nrow * D);
        float lm = loss_at(&f, &b, out, ubase, neg, dd);
        f.J.S.m.p[i] = x;
        float fd = (lp - lm) / (2 * eps);
        if (fabsf(fd - g[i]) > 2e-3f + 0.03f * fabsf(fd)) {
            if (bad++ < 5) fprintf(stderr, "d param[%zu]: fd %g analytic %g\n", i, fd, g[i]);
        }
    }
    CHECK_EQ_INT(bad, 0);
    /* a step with no windows adds nothing and leaves a zero gradient */
    sp_joint_batch e = {0};
    float le = -1;
    memset(dd, 0, 4 * (size_t)nrow * D);
    CHECK_RC(sp_joint_step(&f.J, &e, out, ubase, 0, neg, NNEG, dd, 1.f, &le), SP_OK);
    CHECK(le == 0);
    free(out), free(dout), free(dd), free(g);
    sp_joint_batch_free(&b);
    teardown(&f);
}

int main(void) {
    test_fill();
    test_grad();
    return CHECK_DONE();
}
