/* test_export_mpi (1, 2, 4 ranks): the export stage turns 3 fake infer parts
 * (another rank count than the job's) into a shard set that verifies, holds
 * every pin and board (and user k = board k) with its exact vector, flips
 * `latest`, leaves no lock, temp or staging file; a rerun of the date with
 * another dtype and shard count replaces the set; eval.gate leaves `latest`
 * alone; bad infer outputs (a duplicate id, a wrong dim) fail on every rank
 * and leave the published set untouched.
 *   test_export_mpi [--keep DIR]: write only the first set under DIR and keep
 *   it (tests/e2e/export.sh reads it with the CLI and stock LMDB clients). */
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "dist.h"
#include "export.h"
#include "fsutil.h"
#include "sagepipe_reader.h"
#include "sfile.h"
#include "shard_testutil.h"
#include "sp_base.h"
#include "stage.h"

#define NINFER 3
#define DIM 16
#define NPINS 600
#define NBOARDS 90

static char root[256];

static uint64_t pin_id(uint64_t i) { return i == 0 ? 0 : i == 1 ? UINT64_MAX : i * 7919 + 1; }

enum { GOOD, DUPLICATE, BAD_DIM };

/* Collective: writes the infer parts of ctx's date (part p by rank p % size) and the marker. */
static int make_infer(const sp_run_ctx *ctx, int variant) {
    char path[PATH_MAX];
    sp_stage_path(ctx, "infer", NULL, path, sizeof path);
    int rc = ctx->rank == 0 ? sp_mkdir_p(path) : SP_OK;
    rc = sp_dist_agree(rc);
    for (int p = ctx->rank; p < NINFER && !rc; p += ctx->size) {
        uint64_t *pins = malloc(8 * NPINS), *boards = malloc(8 * NBOARDS), np = 0, nb = 0;
        float *pv = malloc(sizeof(float) * DIM * NPINS), *bv = malloc(sizeof(float) * DIM * NBOARDS);
        for (uint64_t i = 0; i < NPINS; i++)
            if (i % NINFER == (uint64_t)p || (variant == DUPLICATE && p == 1 && i == 3)) {
                pins[np] = pin_id(i);
                test_vec(SP_PIN, pins[np], DIM, pv + np * DIM);
                np++;
            }
        for (uint64_t b = 1; b <= NBOARDS; b++)
            if (b % NINFER == (uint64_t)p) {
                boards[nb] = b;
                test_vec(SP_BOARD, b, DIM, bv + nb * DIM);
                nb++;
            }
        uint64_t meta[4] = {(uint64_t)p, NINFER, variant == BAD_DIM && p == 2 ? DIM + 1 : DIM, 0};
        sp_sfile_w *w;
        sp_stage_part(ctx, "infer", p, NINFER, NULL, 0, path, sizeof path);
        rc = sp_sfile_create(&w, path, "emb");
        if (!rc) {
            rc = sp_sfile_put(w, "meta", 8, meta, 4);
            if (!rc) rc = sp_sfile_put(w, "pin_ids", 8, pins, np);
            if (!rc) rc = sp_sfile_put(w, "pin_vecs", 4, pv, np * DIM);
            if (!rc) rc = sp_sfile_put(w, "board_ids", 8, boards, nb);
            if (!rc) rc = sp_sfile_put(w, "board_vecs", 4, bv, nb * DIM);
            if (rc) sp_sfile_discard(w);
            else rc = sp_sfile_commit(w, NULL);
        }
        free(pins), free(boards), free(pv), free(bv);
    }
    if (!rc && ctx->rank == 0) {
        char m[64];
        int n = snprintf(m, sizeof m, "{\"stage\":\"infer\",\"ranks\":%d}\n", NINFER);
        sp_stage_path(ctx, "infer", "_SUCCESS.json", path, sizeof path);
        rc = sp_write_atomic(path, m, (size_t)n);
    }
    return sp_dist_agree(rc);
}

static void make_ctx(sp_config *cfg, const char *date, sp_run_ctx *ctx) {
    memset(ctx, 0, sizeof *ctx);
    ctx->cfg = cfg;
    ctx->date = date;
    sp_date_parse(date, &ctx->day_ms);
    ctx->rank = sp_dist_rank();
    ctx->size = sp_dist_size();
    snprintf(ctx->date_dir, sizeof ctx->date_dir, "%s/work/%s", root, date);
}

static int run_export(const sp_run_ctx *ctx, sp_stage_result *res) {
    memset(res, 0, sizeof *res);
    return sp_export_run(ctx, res);
}

/* Rank 0: the published set of date has every vector (users = boards). */
static void check_set(const char *date, const char *dtype, unsigned nshards, int with_users) {
    char man[PATH_MAX];
    snprintf(man, sizeof man, "%s/emb/%s/MANIFEST.json", root, date);
    spr_set *set = NULL;
    CHECK_RC(spr_open(man, SPR_VERIFY, &set), SPR_SUCCESS);
    if (!set) {
        fprintf(stderr, "spr_open: %s\n", spr_errmsg());
        return;
    }
    spr_entity en;
    CHECK_RC(spr_entity_of(set, 'p', &en), SPR_SUCCESS);
    CHECK_EQ_U64(en.count, NPINS + NBOARDS);
    CHECK_EQ_INT(en.nshards, nshards);
    CHECK_STR(en.dtype, dtype);
    CHECK_STR(spr_date(set), date);
    CHECK_EQ_INT(spr_entity_count(set), with_users ? 2 : 1);
    float v[DIM], want[DIM];
    double tol = !strcmp(dtype, "i8") ? 500.0 / 256 / 254 + 1e-6 : 0;
    uint64_t wrong = 0;
    for (uint64_t i = 0; i < NPINS; i++) {
        test_vec(SP_PIN, pin_id(i), DIM, want);
        if (spr_get(set, 'p', pin_id(i), v, DIM)) wrong++;
        else
            for (int j = 0; j < DIM; j++) wrong += fabs(v[j] - want[j]) > tol;
    }
    for (uint64_t b = 1; b <= NBOARDS; b++) {
        test_vec(SP_BOARD, b, DIM, want);
        if (spr_get(set, 'b', b, v, DIM)) wrong++;
        else
            for (int j = 0; j < DIM; j++) wrong += fabs(v[j] - want[j]) > tol;
        if (with_users) {
            if (spr_get(set, 'u', b, v, DIM)) wrong++;
            else
                for (int j = 0; j < DIM; j++) wrong += fabs(v[j] - want[j]) > tol;
        }
    }
    CHECK_EQ_U64(wrong, 0);
    CHECK_RC(spr_get(set, 'p', 2, v, DIM), SPR_NOTFOUND);
    if (with_users) {
        CHECK_RC(spr_entity_of(set, 'u', &en), SPR_SUCCESS);
        CHECK_EQ_U64(en.count, NBOARDS);
    }
    spr_close(set);
}

static char *read_all(const char *path) {
    char *t = NULL;
    size_t n;
    return sp_read_file(path, &t, &n) ? NULL : t;
}

static void latest_is(const char *date) {
    char link[PATH_MAX], buf[64];
    snprintf(link, sizeof link, "%s/emb/latest", root);
    ssize_t n = readlink(link, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    CHECK_STR(buf, date);
}

int main(int argc, char **argv) {
    if (sp_dist_init(&argc, &argv)) return 1;
    sp_dist_set_timeout(60);
    int rank = sp_dist_rank(), keep = argc == 3 && !strcmp(argv[1], "--keep");
    if (rank == 0) {
        if (keep) {
            snprintf(root, sizeof root, "%s", argv[2]);
            CHECK_RC(sp_mkdir_p(root), SP_OK);
        } else {
            strcpy(root, "/tmp/sp_export_XXXXXX");
            CHECK(mkdtemp(root) != NULL);
        }
    }
    CHECK_RC(sp_dist_bcast(root, sizeof root, 0), SP_OK);
    sp_config *cfg;
    char set[512];
    CHECK_RC(sp_config_new(&cfg), SP_OK);
    snprintf(set, sizeof set, "input.dir=%s/in", root);
    CHECK_RC(sp_config_set(cfg, set), SP_OK);
    snprintf(set, sizeof set, "pipeline.work_dir=%s/work", root);
    CHECK_RC(sp_config_set(cfg, set), SP_OK);
    snprintf(set, sizeof set, "export.dir=%s/emb", root);
    CHECK_RC(sp_config_set(cfg, set), SP_OK);
    CHECK_RC(sp_config_set(cfg, "export.nshards=7"), SP_OK);
    CHECK_RC(sp_config_set(cfg, "export.users=boards"), SP_OK);
    CHECK_RC(sp_config_set(cfg, "pipeline.shuffle_buffer_mb=1"), SP_OK); /* several rounds */
    sp_run_ctx c1, c2;
    sp_stage_result res;
    make_ctx(cfg, "2026-11-21", &c1);
    make_ctx(cfg, "2026-11-22", &c2);
    char emb[PATH_MAX], man1[PATH_MAX];
    snprintf(emb, sizeof emb, "%s/emb", root);
    snprintf(man1, sizeof man1, "%s/2026-11-21/MANIFEST.json", emb);

    /* 1. f32, 7 shards, users = boards */
    CHECK_RC(make_infer(&c1, GOOD), SP_OK);
    CHECK_RC(run_export(&c1, &res), SP_OK);
    uint64_t puts = 0, items = 0;
    for (int i = 0; i < res.ncounts; i++) {
        if (!strcmp(res.count_name[i], "puts")) puts = res.count[i];
        if (!strcmp(res.count_name[i], "items")) items = res.count[i];
    }
    CHECK_RC(sp_dist_sum_u64(&puts, 1), SP_OK);
    CHECK_RC(sp_dist_sum_u64(&items, 1), SP_OK);
    CHECK_EQ_U64(puts, NPINS + 2 * NBOARDS);
    CHECK_EQ_U64(items, NPINS + NBOARDS);
    if (rank == 0) {
        check_set("2026-11-21", "f32", 7, 1);
        latest_is("2026-11-21");
        CHECK_EQ_INT(test_files_with(emb, "-lock"), 0);
        CHECK_EQ_INT(test_files_with(emb, ".tmp"), 0);
        CHECK_EQ_INT(test_files_with(emb, ".mdb"), 14);
        CHECK_EQ_INT(res.noutputs, 1);
        char copy[PATH_MAX];
        sp_stage_path(&c1, "export", "MANIFEST.json", copy, sizeof copy);
        char *a = read_all(copy), *b = read_all(man1);
        CHECK(a && b && !strcmp(a, b));
        free(a), free(b);
    }
    if (keep) goto done;

    /* 2. rerun of the date: f16, 5 shards, no users; replaces the set */
    CHECK_RC(sp_config_set(cfg, "export.dtype=f16"), SP_OK);
    CHECK_RC(sp_config_set(cfg, "export.nshards=5"), SP_OK);
    CHECK_RC(sp_config_set(cfg, "export.users=none"), SP_OK);
    CHECK_RC(run_export(&c1, &res), SP_OK);
    if (rank == 0) {
        check_set("2026-11-21", "f16", 5, 0);
        CHECK_EQ_INT(test_files_with(emb, ".mdb"), 5);
        CHECK_EQ_INT(test_files_with(emb, "users"), 0);
        CHECK_EQ_INT(test_files_with(emb, ".tmp") + test_files_with(emb, ".old"), 0);
    }

    /* 3. eval.gate: a new date is published but `latest` stays; i8 */
    CHECK_RC(sp_config_set(cfg, "eval.gate=true"), SP_OK);
    CHECK_RC(sp_config_set(cfg, "export.dtype=i8"), SP_OK);
    CHECK_RC(make_infer(&c2, GOOD), SP_OK);
    CHECK_RC(run_export(&c2, &res), SP_OK);
    if (rank == 0) {
        check_set("2026-11-22", "i8", 5, 0);
        latest_is("2026-11-21");
        CHECK_RC(sp_shard_flip_latest(emb, "2026-11-22", NULL, 0), SP_OK); /* what eval does when the gate passes */
        latest_is("2026-11-22");
    }

    /* 4. bad infer outputs fail on every rank; the published set stays */
    char *before = rank == 0 ? read_all(man1) : NULL;
    CHECK_RC(make_infer(&c1, DUPLICATE), SP_OK);
    CHECK_RC(run_export(&c1, &res), SP_EINPUT);
    CHECK_MSG(strstr(sp_errmsg(), "p23758 twice") != NULL, "%s", sp_errmsg()); /* pin_id(3) */
    CHECK_RC(make_infer(&c1, BAD_DIM), SP_OK);
    CHECK_RC(run_export(&c1, &res), SP_EFORMAT);
    CHECK_MSG(strstr(sp_errmsg(), "dim") != NULL, "%s", sp_errmsg());
    /* users = users without a users stage for the date: a usage error naming it, nothing published */
    CHECK_RC(make_infer(&c1, GOOD), SP_OK);
    CHECK_RC(sp_config_set(cfg, "export.users=users"), SP_OK);
    CHECK_RC(run_export(&c1, &res), SP_EUSAGE);
    CHECK_MSG(strstr(sp_errmsg(), "users") != NULL, "%s", sp_errmsg());
    if (rank == 0) {
        char *after = read_all(man1);
        CHECK(before && after && !strcmp(before, after));
        free(after);
        check_set("2026-11-21", "f16", 5, 0);
        CHECK_EQ_INT(test_files_with(emb, ".tmp"), 0);
    }
    free(before);
    if (rank == 0) test_rm_tree(root);
done:
    sp_config_free(cfg);
    int rc = CHECK_DONE();
    sp_dist_finalize();
    return rc;
}
