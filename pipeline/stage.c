/* stage: marker digests, skip/force decisions, running one stage on every
 * rank and writing its _SUCCESS.json last (rank 0, temp file + rename). */
#include "stage.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "dist.h"
#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "sfile.h"
#include "sp_base.h"

#define MARKER "_SUCCESS.json"

const sp_stage_def *sp_stage_find(const char *name) {
    for (int i = 0; i < sp_nstages; i++)
        if (!strcmp(sp_stages[i].name, name)) return &sp_stages[i];
    return NULL;
}

void sp_stage_count(sp_stage_result *r, const char *name, uint64_t v) {
    for (int i = 0; i < r->ncounts; i++)
        if (!strcmp(r->count_name[i], name)) {
            r->count[i] += v;
            return;
        }
    if (r->ncounts == SP_MAX_COUNTS) return;
    snprintf(r->count_name[r->ncounts], sizeof r->count_name[0], "%s", name);
    r->count[r->ncounts++] = v;
}

void sp_stage_output(sp_stage_result *r, const char *file, uint64_t bytes, uint64_t xxh) {
    if (r->noutputs == SP_MAX_OUTPUTS) return;
    snprintf(r->out_file[r->noutputs], sizeof r->out_file[0], "%s", file);
    r->out_bytes[r->noutputs] = bytes;
    r->out_xxh[r->noutputs++] = xxh;
}

void sp_stage_path(const sp_run_ctx *ctx, const char *stage, const char *file, char *out, size_t cap) {
    if (file) snprintf(out, cap, "%s/%s/%s", ctx->date_dir, stage, file);
    else snprintf(out, cap, "%s/%s", ctx->date_dir, stage);
}

void sp_part_name(const char *prefix, int rank, int size, char *out, size_t cap) {
    snprintf(out, cap, "%s-%05d-of-%05d.bin", prefix, rank, size);
}


void sp_stage_part(const sp_run_ctx *ctx, const char *stage, int rank, int size, char *name, size_t ncap, char *path,
                   size_t pcap) {
    char n[96];
    sp_part_name("part", rank, size, n, sizeof n);
    if (name) snprintf(name, ncap, "%s", n);
    sp_stage_path(ctx, stage, n, path, pcap);
}

int sp_stage_output_file(sp_stage_result *r, const sp_run_ctx *ctx, const char *stage, const char *file) {
    char path[PATH_MAX];
    uint64_t bytes, xxh;
    sp_stage_path(ctx, stage, file, path, sizeof path);
    int rc = sp_file_digest(path, &bytes, &xxh);
    if (!rc) sp_stage_output(r, file, bytes, xxh);
    return rc;
}

int sp_stage_commit_part(sp_stage_result *res, sp_sfile_w *w, int rc, const char *name, const char *path) {
    if (rc) {
        sp_sfile_discard(w);
        return rc;
    }
    /* the marker records the whole file's xxh64 (as for every output), which a
     * skip verifies; the sfile's own digest is a checksum of its checksums */
    uint64_t xxh, bytes;
    if ((rc = sp_sfile_commit(w, NULL)) || (rc = sp_file_digest(path, &bytes, &xxh))) return rc;
    sp_stage_output(res, name, bytes, xxh);
    return SP_OK;
}

/* A marker's text; SP_EUSAGE (no detail) when it does not exist. */
static int read_file(const char *path, char **out, size_t *len) {
    int rc = sp_read_file(path, out, len);
    return rc == ENOENT ? SP_EUSAGE : rc;
}

static const char *hex64(uint64_t v, char buf[17]) {
    snprintf(buf, 17, "%016" PRIx64, v);
    return buf;
}

static int compute_input_digest(const sp_run_ctx *ctx, const sp_stage_def *st, int any_config, uint64_t *digest);

int sp_stage_ranks(const sp_run_ctx *ctx, const char *stage, int *nranks) {
    char path[PATH_MAX], *text = NULL;
    size_t len = 0;
    sp_stage_path(ctx, stage, MARKER, path, sizeof path);
    int rc = read_file(path, &text, &len);
    if (rc == SP_EUSAGE) return sp_err(SP_EUSAGE, "stage %s of %s has not completed (no %s)", stage, ctx->date, path);
    if (rc) return rc;
    sp_json *j = NULL;
    rc = sp_json_parse(&j, text, len);
    free(text);
    uint64_t n = 0;
    if (!rc && (sp_json_u64(sp_json_get(j, "ranks"), &n) || n < 1 || n > 65536))
        rc = sp_err(SP_EFORMAT, "%s: no valid \"ranks\"", path);
    else if (rc) rc = sp_err(SP_EFORMAT, "%s: %s", path, sp_errmsg());
    sp_json_free(j);
    if (!rc) *nranks = (int)n;
    return rc;
}

/* Parses and checks a marker against the expected digests. Returns SP_OK when
 * it matches, SP_EUSAGE (with the reason in sp_errmsg) when absent or stale. */
static int marker_matches(const sp_run_ctx *ctx, const sp_stage_def *st, uint64_t cfg_digest, int any_config,
                          uint64_t in_digest, uint64_t *out_digest) {
    char path[PATH_MAX], *text = NULL;
    size_t len = 0;
    sp_stage_path(ctx, st->name, MARKER, path, sizeof path);
    int rc = read_file(path, &text, &len);
    if (rc == SP_EUSAGE) return sp_err(SP_EUSAGE, "stage %s of %s has not completed (no %s)", st->name, ctx->date, path);
    if (rc) return rc;
    sp_json *j = NULL;
    rc = sp_json_parse(&j, text, len);
    free(text);
    if (rc) return sp_err(SP_EUSAGE, "%s is unreadable (%s): the stage will rerun", path, sp_errmsg());
    char h1[17], h2[17];
    const char *why = NULL;
    const char *ver = sp_json_str(sp_json_get(j, "sagepipe_version"));
    const char *cd = sp_json_str(sp_json_get(j, "config_digest"));
    const char *id = sp_json_str(sp_json_get(j, "input_digest"));
    const char *od = sp_json_str(sp_json_get(j, "output_digest"));
    uint64_t ranks = 0;
    if (!ver || !cd || !id || !od || sp_json_u64(sp_json_get(j, "ranks"), &ranks)) why = "marker lacks fields";
    else if (strcmp(ver, SAGEPIPE_VERSION)) why = "written by another sagepipe version";
    else if (!any_config && strcmp(cd, hex64(cfg_digest, h1))) why = "config changed";
    else if (strcmp(id, hex64(in_digest, h2))) why = "inputs changed";
    else if (ranks != (uint64_t)ctx->size) why = "written with another rank count";
    if (!why) {
        /* Every listed output must still be there with its size. */
        const sp_json *outs = sp_json_get(j, "outputs");
        for (size_t i = 0; i < sp_json_len(outs) && !why; i++) {
            const sp_json *o = sp_json_at(outs, i);
            const char *file = sp_json_str(sp_json_get(o, "file"));
            uint64_t bytes;
            char fp[PATH_MAX];
            struct stat sb;
            if (!file || sp_json_u64(sp_json_get(o, "bytes"), &bytes)) why = "bad output entry";
            else {
                sp_stage_path(ctx, st->name, file, fp, sizeof fp);
                if (stat(fp, &sb) || (uint64_t)sb.st_size != bytes) why = "an output file is missing or resized";
            }
        }
        if (out_digest) *out_digest = strtoull(od, NULL, 16);
    }
    sp_json_free(j);
    if (why) return sp_err(SP_EUSAGE, "stage %s of %s is out of date: %s", st->name, ctx->date, why);
    return SP_OK;
}

static int check_done(const sp_run_ctx *ctx, const sp_stage_def *st, int any_config, uint64_t *output_digest) {
    uint64_t in;
    int rc = compute_input_digest(ctx, st, any_config, &in);
    if (rc) return rc;
    return marker_matches(ctx, st, sp_config_digest(ctx->cfg, st->sections), any_config, in, output_digest);
}

int sp_stage_check_done(const sp_run_ctx *ctx, const sp_stage_def *st, uint64_t *output_digest) {
    return check_done(ctx, st, 0, output_digest);
}

int sp_stage_check_chain(const sp_run_ctx *ctx, const sp_stage_def *st) { return check_done(ctx, st, 1, NULL); }

static int compute_input_digest(const sp_run_ctx *ctx, const sp_stage_def *st, int any_config, uint64_t *digest) {
    XXH64_state_t *h = XXH64_createState();
    if (!h) return SP_ENOMEM;
    XXH64_reset(h, 0);
    int rc = SP_OK;
    if (st->external_digest) {
        uint64_t e = 0;
        rc = st->external_digest(ctx, &e);
        XXH64_update(h, &e, sizeof e);
    }
    for (int i = 0; !rc && st->upstream && st->upstream[i]; i++) {
        const sp_stage_def *u = sp_stage_find(st->upstream[i]);
        uint64_t od = 0;
        if (!u) rc = sp_err(SP_EINTERNAL, "stage %s: unknown upstream %s", st->name, st->upstream[i]);
        else if ((rc = check_done(ctx, u, any_config, &od)))
            rc = sp_err(SP_EUSAGE, "stage %s needs stage %s: %s; run `sagepipe job %s --date %s` (or `sagepipe run`)",
                        st->name, u->name, sp_errmsg(), u->name, ctx->date);
        XXH64_update(h, &od, sizeof od);
    }
    *digest = XXH64_digest(h);
    XXH64_freeState(h);
    return rc;
}

/* Removes the marker first, then the stage's other files (flat directory). */
static int clean_stage_dir(const char *dir) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, MARKER);
    if (unlink(p) && errno != ENOENT) return sp_err(SP_EIO, "cannot remove %s: %s", p, strerror(errno));
    int rc = sp_mkdir_p(dir);
    if (rc) return rc;
    DIR *d = opendir(dir);
    if (!d) return sp_err(SP_EIO, "cannot open %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) && errno != ENOENT) {
            closedir(d);
            return sp_err(SP_EIO, "cannot remove %s: %s", p, strerror(errno));
        }
    }
    closedir(d);
    return SP_OK;
}


/* Collective: gathers counts, outputs and times; rank 0 writes the marker. */
static int write_marker(const sp_run_ctx *ctx, const sp_stage_def *st, uint64_t cfg_digest, uint64_t in_digest,
                        sp_stage_result *res, double wall) {
    int rc = sp_dist_sum_u64(res->count, res->ncounts);
    if (rc) return rc;
    uint64_t *walls = malloc(sizeof *walls * (size_t)ctx->size), wbits;
    if (!walls) return sp_dist_agree(SP_ENOMEM);
    memcpy(&wbits, &wall, sizeof wbits);
    rc = sp_dist_allgather_u64(&wbits, walls, 1);
    /* This rank's outputs as text lines, gathered at rank 0. */
    char *mine = NULL, *all = NULL;
    size_t mlen = 0;
    FILE *mf = open_memstream(&mine, &mlen);
    for (int i = 0; mf && i < res->noutputs; i++)
        fprintf(mf, "%s\t%" PRIu64 "\t%016" PRIx64 "\n", res->out_file[i], res->out_bytes[i], res->out_xxh[i]);
    if (mf) fclose(mf);
    uint64_t *lens = malloc(sizeof *lens * (size_t)ctx->size);
    if (!rc) rc = sp_dist_agree(mine && lens ? SP_OK : SP_ENOMEM);
    if (!rc) rc = sp_dist_gather_bytes(mine, mlen, &all, lens);
    int lrc = SP_OK;
    if (!rc && ctx->rank == 0) {
        char h[17];
        sp_jw w;
        sp_jw_init(&w);
        sp_jw_obj_begin(&w, NULL);
        sp_jw_str(&w, "stage", st->name);
        sp_jw_str(&w, "date", ctx->date);
        sp_jw_str(&w, "sagepipe_version", SAGEPIPE_VERSION);
        sp_jw_str(&w, "config_digest", hex64(cfg_digest, h));
        sp_jw_str(&w, "input_digest", hex64(in_digest, h));
        sp_jw_u64(&w, "ranks", (uint64_t)ctx->size);
        sp_jw_obj_begin(&w, "counts");
        for (int i = 0; i < res->ncounts; i++) sp_jw_u64(&w, res->count_name[i], res->count[i]);
        sp_jw_obj_end(&w);
        sp_jw_arr_begin(&w, "wall_s");
        for (int i = 0; i < ctx->size; i++) {
            double d;
            memcpy(&d, &walls[i], sizeof d);
            sp_jw_f64(&w, NULL, d);
        }
        sp_jw_arr_end(&w);
        XXH64_state_t *hs = XXH64_createState();
        XXH64_reset(hs, 0);
        sp_jw_arr_begin(&w, "outputs");
        char *p = all;
        for (int r = 0; r < ctx->size; r++) {
            char *end = p + lens[r];
            while (p < end) {
                char *nl = memchr(p, '\n', (size_t)(end - p));
                if (!nl) break;
                *nl = 0;
                XXH64_update(hs, p, strlen(p));
                char *t1 = strchr(p, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
                if (t1 && t2) {
                    *t1 = *t2 = 0;
                    sp_jw_obj_begin(&w, NULL);
                    sp_jw_u64(&w, "rank", (uint64_t)r);
                    sp_jw_str(&w, "file", p);
                    sp_jw_u64(&w, "bytes", strtoull(t1 + 1, NULL, 10));
                    sp_jw_str(&w, "xxh64", t2 + 1);
                    sp_jw_obj_end(&w);
                }
                p = nl + 1;
            }
        }
        sp_jw_arr_end(&w);
        sp_jw_str(&w, "output_digest", hex64(XXH64_digest(hs), h));
        XXH64_freeState(hs);
        if (res->extra_json) sp_jw_raw(&w, "stats", res->extra_json);
        time_t now = time(NULL);
        struct tm tm;
        char ts[32];
        gmtime_r(&now, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        sp_jw_str(&w, "finished_at", ts);
        sp_jw_obj_end(&w);
        const char *text;
        size_t tlen;
        lrc = sp_jw_finish(&w, &text, &tlen);
        if (!lrc) {
            char path[PATH_MAX];
            sp_stage_path(ctx, st->name, MARKER, path, sizeof path);
            lrc = sp_write_atomic(path, text, tlen);
        }
        sp_jw_free(&w);
    }
    free(all);
    free(mine);
    free(lens);
    free(walls);
    if (!rc) rc = sp_dist_agree(lrc);
    return rc;
}

/* Test hook (fault injection, documented in docs/OPERATIONS.md):
 * SAGEPIPE_TEST_STALL=STAGE:RANK:SECONDS makes that rank sleep before running
 * that stage (its peers hit the collective timeout);
 * SAGEPIPE_TEST_STALL=STAGE@POINT:RANK:SECONDS sleeps at a named point inside
 * the stage (tests/e2e/faults.sh kills the rank there). The log line carries
 * the pid. */
void sp_test_stall_at(const sp_run_ctx *ctx, const char *stage, const char *point) {
    const char *v = getenv("SAGEPIPE_TEST_STALL");
    char where[64], want[64];
    int rank, secs;
    if (!v || sscanf(v, "%63[^:]:%d:%d", where, &rank, &secs) != 3 || rank != ctx->rank) return;
    if (point) snprintf(want, sizeof want, "%s@%s", stage, point);
    else snprintf(want, sizeof want, "%s", stage);
    if (strcmp(where, want)) return;
    SP_WARN("test_stall", "point=%s seconds=%d pid=%ld", sp_log_q(want), secs, (long)getpid());
    sleep((unsigned)secs);
}

/* Collective, after rank 0 found a matching marker: every rank hashes its
 * share of the marker's outputs (entry i on rank i % size) and compares the
 * xxh64 with the marker. Returns SP_OK when all match, SP_EUSAGE with the
 * first mismatch (on rank 0's log) otherwise, so the stage reruns. */
static int verify_outputs(const sp_run_ctx *ctx, const sp_stage_def *st, double *seconds, uint64_t *nbytes) {
    double t0 = sp_now();
    char path[PATH_MAX], *text = NULL;
    size_t len = 0;
    sp_json *j = NULL;
    uint64_t acc[2] = {0, 0}; /* mismatches, bytes hashed */
    sp_stage_path(ctx, st->name, MARKER, path, sizeof path);
    int rc = sp_read_file(path, &text, &len);
    if (!rc) rc = sp_json_parse(&j, text, len);
    free(text);
    const sp_json *outs = rc ? NULL : sp_json_get(j, "outputs");
    for (size_t i = (size_t)ctx->rank; !rc && i < sp_json_len(outs); i += (size_t)ctx->size) {
        const sp_json *o = sp_json_at(outs, i);
        const char *file = sp_json_str(sp_json_get(o, "file")), *want = sp_json_str(sp_json_get(o, "xxh64"));
        uint64_t bytes = 0, xxh = 0;
        char fp[PATH_MAX], h[17];
        if (!file || !want) {
            acc[0]++;
            continue;
        }
        sp_stage_path(ctx, st->name, file, fp, sizeof fp);
        if (sp_file_digest(fp, &bytes, &xxh) || strcmp(hex64(xxh, h), want)) {
            if (!acc[0]) SP_WARN("output_mismatch", "file=%s want_xxh64=%s", sp_log_q(fp), want);
            acc[0]++;
        }
        acc[1] += bytes;
    }
    sp_json_free(j);
    if (rc) acc[0]++; /* the marker vanished or broke since rank 0 read it */
    sp_err_clear();
    rc = sp_dist_sum_u64(acc, 2);
    *seconds = sp_now() - t0;
    *nbytes = acc[1];
    if (rc) return rc;
    if (acc[0]) return sp_err(SP_EUSAGE, "%" PRIu64 " output file(s) no longer match the xxh64 in the marker", acc[0]);
    return SP_OK;
}

/* A failed stage's counts summed over the ranks, as a successful stage's are
 * in write_marker, when every rank holds the same names (a rank that failed
 * early may have fewer; then they stay this rank's). Collective: the stage's
 * failure was agreed, so every rank calls it. The error message survives. */
static void sum_failed_counts(const sp_run_ctx *ctx, sp_stage_result *res) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", sp_errmsg());
    uint64_t mine[2] = {(uint64_t)res->ncounts,
                        XXH64(res->count_name, sizeof res->count_name[0] * (size_t)res->ncounts, 0)};
    uint64_t *all = malloc(sizeof *all * 2 * (size_t)ctx->size);
    int same = 0;
    if (!sp_dist_agree(all ? SP_OK : SP_ENOMEM) && !sp_dist_allgather_u64(mine, all, 2)) {
        same = 1;
        for (int r = 1; r < ctx->size; r++) same &= all[2 * r] == all[0] && all[2 * r + 1] == all[1];
    }
    free(all);
    if (same && res->ncounts) sp_dist_sum_u64(res->count, res->ncounts);
    sp_err(SP_OK, "%s", msg);
}

int sp_stage_execute(const sp_run_ctx *ctx, const sp_stage_def *st, int force, sp_stage_status *status,
                     double *seconds, sp_stage_result *res) {
    double t0 = sp_now();
    *seconds = 0;
    memset(res, 0, sizeof *res);
    sp_log_set_stage(st->name);
    if (!st->run) {
        *status = SP_STAGE_NOTIMPL;
        return sp_err(SP_ENOTIMPL, "stage %s is not implemented yet", st->name);
    }
    /* Rank 0 decides from the file system and tells everyone. */
    uint64_t dig[3] = {sp_config_digest(ctx->cfg, st->sections), 0, 0}; /* config, input, decision */
    int rc = SP_OK;
    if (ctx->rank == 0) {
        rc = compute_input_digest(ctx, st, 0, &dig[1]);
        if (!rc) {
            int m = marker_matches(ctx, st, dig[0], 0, dig[1], NULL);
            dig[2] = (!m && !force) ? 1 : 0; /* 1 = skip */
            if (m && m != SP_EUSAGE) rc = m;
            if (!dig[2]) SP_INFO("stage_start", "reason=%s", sp_log_q(force ? "forced" : sp_errmsg()));
        }
    }
    rc = sp_dist_agree(rc);
    if (!rc) rc = sp_dist_bcast(dig, sizeof dig, 0);
    if (rc) {
        *status = SP_STAGE_FAILED;
        return rc;
    }
    if (dig[2]) {
        double vs = 0;
        uint64_t vb = 0;
        int v = verify_outputs(ctx, st, &vs, &vb);
        if (v && v != SP_EUSAGE) {
            *status = SP_STAGE_FAILED;
            return v;
        }
        if (!v) {
            *status = SP_STAGE_SKIPPED;
            SP_INFO("stage_skip", "reason=\"marker matches inputs, config and output digests\" verified_bytes=%" PRIu64
                    " verify_seconds=%.3f", vb, vs);
            return SP_OK;
        }
        SP_INFO("stage_start", "reason=%s", sp_log_q(sp_errmsg()));
    }
    char dir[PATH_MAX];
    sp_stage_path(ctx, st->name, NULL, dir, sizeof dir);
    rc = sp_dist_agree(ctx->rank == 0 ? clean_stage_dir(dir) : SP_OK);
    if (!rc) {
        sp_err_clear();
        sp_test_stall_at(ctx, st->name, NULL);
        rc = sp_dist_agree(st->run(ctx, res));
    }
    double wall = sp_now() - t0;
    if (!rc) rc = write_marker(ctx, st, dig[0], dig[1], res, wall);
    else sum_failed_counts(ctx, res);
    if (res->after_marker) {
        int hrc = res->after_marker(ctx, res->after_arg, !rc);
        if (hrc && !rc) SP_WARN("after_marker", "message=%s", sp_log_q(sp_errmsg()));
        res->after_marker = NULL;
        res->after_arg = NULL;
    }
    free(res->extra_json);
    res->extra_json = NULL;
    *seconds = sp_now() - t0;
    *status = rc ? SP_STAGE_FAILED : SP_STAGE_RAN;
    if (!rc) SP_INFO("stage_done", "seconds=%.3f", *seconds);
    return rc;
}

void sp_stage_prev_ctx(const sp_run_ctx *ctx, sp_run_ctx *prev, char *date_buf) {
    *prev = *ctx;
    sp_date_format(ctx->day_ms - SP_DAY_MS, date_buf, 16);
    prev->date = date_buf;
    prev->day_ms = ctx->day_ms - SP_DAY_MS;
    snprintf(prev->date_dir, sizeof prev->date_dir, "%s/%s", sp_config_str(ctx->cfg, "pipeline", "work_dir"), date_buf);
}
