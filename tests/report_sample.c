/* report_sample: writes OUT_DIR/report.json and OUT_DIR/report.html for the
 * e2e test of the report page (tests/e2e/report_html.sh). The figures are real:
 * the three metric functions run on a small clustered synthetic data set
 * (users and items in 8 clusters; a user's train and test items come from its
 * cluster; user vector = mean of its train items), and the stage table holds
 * their measured wall times.
 *
 *   report_sample OUT_DIR */
#include "metrics.h"
#include "report.h"
#include "sp_base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { NU = 300, NI = 800, D = 16, NC = 8, NTRAIN = 12, NTEST = 4 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(const char *what, int rc) {
    fprintf(stderr, "report_sample: %s: %s: %s\n", what, sp_strerror(rc), sp_errmsg());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: report_sample OUT_DIR\n");
        return 2;
    }
    static float U[NU * D], V[NI * D], centre[NC * D];
    static uint64_t troff[NU + 1], teoff[NU + 1];
    static uint32_t tridx[NU * NTRAIN], teidx[NU * NTEST], target[NU], q[NI], p[NI];
    sp_rng r;
    sp_rng_init(&r, 2026, 99, 0);
    for (int i = 0; i < NC * D; i++) centre[i] = (float)(sp_rng_unif(&r) * 2 - 1);
    for (int j = 0; j < NI; j++) /* item j in cluster j % NC */
        for (int k = 0; k < D; k++) V[j * D + k] = centre[(j % NC) * D + k] + (float)(sp_rng_unif(&r) - 0.5) * 1.5f;
    for (int u = 0; u < NU; u++) {
        int c = u % NC;
        troff[u + 1] = troff[u] + NTRAIN;
        teoff[u + 1] = teoff[u] + NTEST;
        memset(U + u * D, 0, sizeof(float) * D);
        for (int e = 0; e < NTRAIN + NTEST; e++) {
            uint32_t item = (uint32_t)(c + NC * (int)sp_rng_below(&r, NI / NC));
            if (e < NTRAIN) {
                tridx[u * NTRAIN + e] = item;
                for (int k = 0; k < D; k++) U[u * D + k] += V[item * D + k] / NTRAIN;
            } else {
                teidx[u * NTEST + e - NTRAIN] = item;
            }
        }
        target[u] = teidx[u * NTEST];
    }
    sp_lists train = {NU, NI, troff, tridx}, test = {NU, NI, teoff, teidx};
    uint32_t npairs = 0; /* related pins: an item and the next item of its cluster */
    for (uint32_t j = 0; j + NC < NI; j += 3) q[npairs] = j, p[npairs++] = j + NC;

    const uint32_t ks[] = {1, 5, 10, 20, 50, 100, 200, 400};
    sp_topk_result tk;
    sp_loo_result lo;
    sp_related_result rel;
    double t0 = now_s();
    int rc = sp_metrics_topk(U, NU, V, NI, D, &train, &test, ks, 8, 2, &tk);
    double t1 = now_s();
    if (!rc) rc = sp_metrics_loo(U, NU, V, NI, D, &train, target, ks, 8, 2, &lo);
    double t2 = now_s();
    if (!rc) rc = sp_metrics_related(V, NI, D, NULL, 0, q, p, npairs, ks, 8, 10, 2, &rel);
    double t3 = now_s();
    if (rc) return fail("metrics", rc);

    sp_report_metric m[] = {
        {"recall@20", tk.recall[3]}, {"ndcg@20", tk.ndcg[3]}, {"hr@10 (leave-one-out)", lo.hr[2]},
        {"ndcg@10 (leave-one-out)", lo.ndcg[2]}, {"hit-rate@10 (related pins)", rel.hit[2]},
        {"mrr (scaled by 10)", rel.mrr_scaled}, {"users evaluated", (double)tk.users}};
    sp_report_point rec[8], ndcg[8], hr[8], hit[8];
    for (int k = 0; k < 8; k++) {
        rec[k] = (sp_report_point){ks[k], tk.recall[k]};
        ndcg[k] = (sp_report_point){ks[k], tk.ndcg[k]};
        hr[k] = (sp_report_point){ks[k], lo.hr[k]};
        hit[k] = (sp_report_point){ks[k], rel.hit[k]};
    }
    sp_report_series s1[] = {{"recall@K", rec, 8}, {"NDCG@K", ndcg, 8}};
    sp_report_series s2[] = {{"HR@K (leave-one-out)", hr, 8}, {"hit-rate@K (related pins)", hit, 8}};
    sp_report_chart charts[] = {{"Full ranking by cut-off K", "K", "value", s1, 2},
                                {"Leave-one-out and related pins", "K", "rate", s2, 2}};
    char cells[3][3][32];
    const char *cellp[9];
    const char *names[] = {"topk", "loo", "related"};
    double secs[] = {t1 - t0, t2 - t1, t3 - t2};
    uint64_t counts[] = {tk.users, lo.users, rel.pairs};
    for (int i = 0; i < 3; i++) {
        snprintf(cells[i][0], 32, "%s", names[i]);
        snprintf(cells[i][1], 32, "%.4f", secs[i]);
        snprintf(cells[i][2], 32, "%llu", (unsigned long long)counts[i]);
        for (int c = 0; c < 3; c++) cellp[i * 3 + c] = cells[i][c];
    }
    const char *cols[] = {"metric call", "wall s", "queries"};
    sp_report_table tables[] = {{"Stages", cols, 3, cellp, 3}};
    const char *notes[] = {"Synthetic clustered data (report_sample); seen items are excluded from the "
                           "ranking (-inf), not scored 0 as in the public S3Rec code. <b>not bold</b> & escaped."};
    sp_report rep = {.title = "sagepipe eval <sample>", .date = "2026-11-21", .created_at = "test",
                     .metrics = m, .nmetrics = sizeof m / sizeof *m, .charts = charts, .ncharts = 2,
                     .tables = tables, .ntables = 1, .notes = notes, .nnotes = 1};
    if ((rc = sp_report_write(&rep, argv[1]))) return fail("write", rc);
    return 0;
}
