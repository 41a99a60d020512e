/* export stage: infer parts -> records (9-byte key + encoded value, encoded
 * once at the sender) -> sp_shuffle to the rank of each record's shard
 * (shard s lives on rank s % size) -> per shard: index sort by key, LMDB
 * writer -> counts/bytes/xxh64 of every shard summed to all ranks -> rank 0
 * verifies the set, writes MANIFEST.json, swaps the staging directory
 * <export.dir>/.<date>.tmp into <export.dir>/<date> and flips `latest`.
 * A rank holds its shards' records in memory until it writes them. */
#include "export.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dist.h"
#include "fsutil.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "ops.h"
#include "sfile.h"
#include "shard.h"
#include "sort.h"
#include "sp_base.h"
#include "users_stage.h"

enum { ENT_ITEMS = 0, ENT_USERS = 1, MAX_ENT = 2 };
static const char *const ENT_NAME[MAX_ENT] = {"items", "users"};
enum { USERS_NONE, USERS_BOARDS, USERS_STAGE };

/* Received records of one local shard: (n, recsz) bytes, unsorted. */
typedef struct {
    uint8_t *rec;
    size_t n, cap;
} arena;

typedef struct {
    const sp_run_ctx *ctx;
    sp_dtype dt;
    uint32_t dim, nshards, nlocal; /* nlocal: shards of this rank (s % size == rank) */
    size_t vbytes, recsz;          /* recsz = 9 + vbytes */
    int nent, users;
    arena *loc[MAX_ENT]; /* [nlocal] each */
} exporter;

/* One infer part being read. */
typedef struct {
    sp_sfile_r *f;
    char path[PATH_MAX];
    const uint64_t *ids[2]; /* pins, boards */
    const float *vecs[2];
    uint64_t cnt[2];
    uint32_t dim;
} part;

static uint64_t be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static int part_open(const sp_run_ctx *ctx, int p, int n, part *o) {
    memset(o, 0, sizeof *o);
    sp_stage_part(ctx, "infer", p, n, NULL, 0, o->path, sizeof o->path);
    int rc = sp_sfile_open(&o->f, o->path, "emb");
    const uint64_t *meta = NULL;
    uint64_t nm = 0, nv[2];
    if (!rc) rc = sp_sfile_get(o->f, "meta", 8, (const void **)&meta, &nm);
    if (!rc && (nm != 4 || meta[0] != (uint64_t)p || meta[1] != (uint64_t)n || meta[2] == 0 ||
                meta[2] > SP_MANIFEST_MAX_DIM))
        rc = sp_err(SP_EFORMAT, "%s: meta = {rank, nranks, dim} should be {%d, %d, 1..%d}", o->path, p, n,
                    SP_MANIFEST_MAX_DIM);
    if (!rc) o->dim = (uint32_t)meta[2];
    static const char *const TAG[2][2] = {{"pin_ids", "pin_vecs"}, {"board_ids", "board_vecs"}};
    for (int k = 0; k < 2 && !rc; k++) {
        rc = sp_sfile_get(o->f, TAG[k][0], 8, (const void **)&o->ids[k], &o->cnt[k]);
        if (!rc) rc = sp_sfile_get(o->f, TAG[k][1], 4, (const void **)&o->vecs[k], &nv[k]);
        if (!rc && nv[k] != o->cnt[k] * o->dim)
            rc = sp_err(SP_EFORMAT, "%s: %s has %" PRIu64 " values, %" PRIu64 " ids x dim %u need %" PRIu64, o->path,
                        TAG[k][1], nv[k], o->cnt[k], o->dim, o->cnt[k] * o->dim);
    }
    if (rc) {
        sp_sfile_close(o->f);
        o->f = NULL;
    }
    return rc;
}

static int sink(void *c, int src, const void *rec, size_t len) {
    exporter *x = c;
    (void)src;
    const uint8_t *r = rec;
    int ent = r[0] == 'u' ? ENT_USERS : ENT_ITEMS;
    uint32_t s = sp_shard_of(be64(r + 1), x->nshards);
    int size = x->ctx->size;
    if (len != x->recsz || ent >= x->nent || (int)(s % (uint32_t)size) != x->ctx->rank)
        return sp_err(SP_EINTERNAL, "export: a record of %zu bytes for shard %u reached rank %d", len, s, x->ctx->rank);
    arena *a = &x->loc[ent][s / (uint32_t)size];
    if (sp_grow((void **)&a->rec, &a->cap, a->n + 1, x->recsz)) return SP_ENOMEM;
    memcpy(a->rec + a->n * x->recsz, rec, len);
    a->n++;
    return SP_OK;
}

/* Encodes the record of (type, id) with vector v into rec after checking that every value is
 * finite (SP_EINPUT naming `where`, the node and the value otherwise). */
static int encode_record(const exporter *x, uint8_t *rec, sp_type type, uint64_t id, const float *v, const char *where) {
    static const char *const TYPE_NAME[SP_NTYPES] = {"pin", "board", "user"};
    for (uint32_t j = 0; j < x->dim; j++)
        if (!isfinite(v[j]))
            return sp_err(SP_EINPUT, "%s: %s %" PRIu64 ": value %u is %g", where, TYPE_NAME[type], id, j, (double)v[j]);
    sp_shard_key(rec, type, id);
    sp_vec_encode(x->dt, v, x->dim, rec + SP_SHARD_KEY_LEN);
    return SP_OK;
}

/* Queues rec (of id) for the rank that writes id's shard. */
static int route_record(const exporter *x, sp_shuffle *s, const uint8_t *rec, uint64_t id) {
    return sp_shuffle_put(s, (int)(sp_shard_of(id, x->nshards) % (uint32_t)x->ctx->size), rec, x->recsz);
}

/* Sends every record of this rank's infer parts (parts p with p % size ==
 * rank; *first is already open) to the ranks of their shards. Collective. */
static int send_all(exporter *x, int ninfer, part *cur, size_t buffer, uint64_t *sent) {
    const sp_run_ctx *ctx = x->ctx;
    sp_shuffle *s = NULL;
    int rc = sp_dist_agree(sp_shuffle_new(&s, buffer, sink, x));
    if (rc) return rc;
    uint8_t *rec = malloc(x->recsz);
    int lrc = rec ? SP_OK : SP_ENOMEM, all_done = 0, p = ctx->rank, kind = 0, copy = 0;
    uint64_t i = 0;
    int done = !cur->f;
    sp_progress prog = {.interval = sp_config_f64(ctx->cfg, "pipeline", "progress_seconds")};
    sp_progress_begin(&prog, "export_records_sent", 0);
    while (!rc && !all_done) {
        while (!lrc && !done && !sp_shuffle_full(s)) {
            if (kind == 2) { /* next part */
                sp_sfile_close(cur->f);
                cur->f = NULL;
                p += ctx->size;
                if (p >= ninfer) {
                    done = 1;
                    break;
                }
                if ((lrc = part_open(ctx, p, ninfer, cur))) break;
                if (cur->dim != x->dim)
                    lrc = sp_err(SP_EFORMAT, "%s: dim %u, other infer parts have %u", cur->path, cur->dim, x->dim);
                kind = 0, i = 0;
                continue;
            }
            if (i == cur->cnt[kind]) {
                kind++, i = 0;
                continue;
            }
            uint64_t id = cur->ids[kind][i];
            if (copy == 0)
                lrc = encode_record(x, rec, kind ? SP_BOARD : SP_PIN, id, cur->vecs[kind] + i * x->dim, cur->path);
            else sp_shard_key(rec, SP_USER, id); /* user k = board k: same value, same shard */
            if (lrc || (lrc = route_record(x, s, rec, id))) break;
            (*sent)++;
            if (kind == 1 && x->users == USERS_BOARDS && copy == 0) copy = 1;
            else copy = 0, i++;
            sp_progress_add(&prog, 1);
        }
        rc = sp_shuffle_exchange(s, done || lrc, lrc, &all_done);
    }
    sp_progress_end(&prog);
    sp_shuffle_free(s);
    free(rec);
    return rc;
}

/* Sends every user vector of this rank's users parts (p % size == rank) to the ranks of their
 * shards. Collective. */
static int send_users(exporter *x, size_t buffer, uint64_t *sent) {
    const sp_run_ctx *ctx = x->ctx;
    int nparts = 0;
    int rc = sp_dist_agree(sp_stage_ranks(ctx, "users", &nparts));
    sp_shuffle *s = NULL;
    if (!rc) rc = sp_dist_agree(sp_shuffle_new(&s, buffer, sink, x));
    if (rc) return rc;
    uint8_t *rec = malloc(x->recsz);
    int lrc = rec ? SP_OK : SP_ENOMEM, all_done = 0, done = 0, p = ctx->rank - ctx->size;
    sp_users_part up = {0};
    uint64_t i = 0;
    char where[64] = "";
    while (!rc && !all_done) {
        while (!lrc && !done && !sp_shuffle_full(s)) {
            if (i == up.n) { /* next part */
                sp_users_part_close(&up);
                i = 0;
                p += ctx->size;
                if (p >= nparts) {
                    done = 1;
                    break;
                }
                if ((lrc = sp_users_part_open(ctx, p, nparts, &up))) break;
                snprintf(where, sizeof where, "users part %d of %s", p, ctx->date);
                if ((uint32_t)up.d != x->dim)
                    lrc = sp_err(SP_EFORMAT, "users part %d of %s: dim %d, the items have %u", p, ctx->date, up.d, x->dim);
                continue;
            }
            if ((lrc = encode_record(x, rec, SP_USER, up.ids[i], up.vec + i * x->dim, where)) ||
                (lrc = route_record(x, s, rec, up.ids[i])))
                break;
            (*sent)++;
            i++;
        }
        rc = sp_shuffle_exchange(s, done || lrc, lrc, &all_done);
    }
    sp_users_part_close(&up);
    sp_shuffle_free(s);
    free(rec);
    return rc;
}

/* Sorts one shard's records by key and writes them. */
static int write_shard(exporter *x, const char *staging, int ent, uint32_t shard, arena *a, sp_shard_info *info) {
    uint64_t (*idx)[3] = malloc(sizeof *idx * (a->n ? a->n : 1)); /* {type byte, id, record} */
    if (!idx) return SP_ENOMEM;
    for (size_t i = 0; i < a->n; i++) {
        const uint8_t *r = a->rec + i * x->recsz;
        idx[i][0] = r[0];
        idx[i][1] = be64(r + 1);
        idx[i][2] = i;
    }
    static const size_t KEYS[2] = {0, 8};
    int rc = sp_radix_sort(idx, a->n, sizeof *idx, KEYS, 2);
    char rel[256], path[PATH_MAX];
    sp_shard_file_name(ENT_NAME[ent], shard, x->nshards, rel, sizeof rel);
    snprintf(path, sizeof path, "%s/%s", staging, rel);
    sp_shard_w *w = NULL;
    if (!rc) rc = sp_shard_w_open(&w, path, x->dim, x->dt, a->n);
    for (size_t i = 0; !rc && i < a->n; i++) {
        const uint8_t *r = a->rec + idx[i][2] * x->recsz;
        if (i && idx[i][0] == idx[i - 1][0] && idx[i][1] == idx[i - 1][1])
            rc = sp_err(SP_EINPUT, "infer outputs hold %c%" PRIu64 " twice", (char)idx[i][0], idx[i][1]);
        else rc = sp_shard_w_put_enc(w, r, r + SP_SHARD_KEY_LEN);
    }
    if (rc) sp_shard_w_discard(w);
    else rc = sp_shard_w_commit(w, info);
    free(idx);
    return rc;
}

/* Removes the set a publish replaced. The new set is in place by then: a failure (say, the old set's files
 * owned by another user) is a warning naming it, not a failed export of a published set. */
static int drop_old(const char *dir) {
    if (sp_rm_tree(dir)) SP_WARN("export_cleanup", "what=\"the replaced set\" path=%s error=%s", sp_log_q(dir),
                              sp_log_q(sp_errmsg()));
    return SP_OK;
}

/* Moves the verified staging directory to final in one step: rename when
 * final is absent, else an atomic exchange (renameat2 RENAME_EXCHANGE) and
 * removal of the old set. On file systems without exchange the old set is
 * moved aside first: then, for a moment, the date is absent (never half). */
static int publish_dir(const char *export_dir, const char *staging, const char *final, const char *date) {
    struct stat st;
    /* refused before anything moves: `latest` that cannot be flipped, a date name that is not a set */
    int rc = sp_shard_latest_check(export_dir);
    if (rc) return sp_err(rc, "%s: nothing published (remove it)", sp_errmsg());
    if (!lstat(final, &st) && !S_ISDIR(st.st_mode))
        return sp_err(SP_EUSAGE, "%s exists and is not a shard set's directory: nothing published (remove it)",
                      final);
    if (lstat(final, &st)) {
        if (errno != ENOENT) return sp_err(SP_EIO, "%s: %s", final, strerror(errno));
        if (rename(staging, final)) return sp_err(SP_EIO, "cannot rename %s to %s: %s", staging, final, strerror(errno));
        return sp_fsync_dir(export_dir);
    }
    if (!renameat2(AT_FDCWD, staging, AT_FDCWD, final, RENAME_EXCHANGE)) {
        rc = sp_fsync_dir(export_dir);
        return rc ? rc : drop_old(staging); /* staging now holds the replaced set */
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return sp_err(SP_EIO, "cannot exchange %s and %s: %s", staging, final, strerror(errno));
    char old[PATH_MAX];
    snprintf(old, sizeof old, "%s/.%s.old", export_dir, date);
    rc = sp_rm_tree(old);
    if (!rc && rename(final, old)) rc = sp_err(SP_EIO, "cannot rename %s: %s", final, strerror(errno));
    if (!rc && rename(staging, final)) rc = sp_err(SP_EIO, "cannot rename %s: %s", staging, strerror(errno));
    if (!rc) rc = sp_fsync_dir(export_dir);
    return rc ? rc : drop_old(old);
}

/* model_version: the train stage's output digest (the checkpoint), when it has a marker. */
static void model_version(const sp_run_ctx *ctx, char *out, size_t cap) {
    char path[PATH_MAX], *text = NULL;
    size_t len;
    sp_json *j = NULL;
    snprintf(out, cap, "unknown");
    sp_stage_path(ctx, "train", "_SUCCESS.json", path, sizeof path);
    if (sp_read_file(path, &text, &len)) {
        sp_err_clear();
        return;
    }
    if (!sp_json_parse(&j, text, len) && sp_json_str(sp_json_get(j, "output_digest")))
        snprintf(out, cap, "train-%s", sp_json_str(sp_json_get(j, "output_digest")));
    sp_err_clear();
    sp_json_free(j);
    free(text);
}

/* Rank 0: manifest from the summed shard infos, verify, MANIFEST.json, swap into place, flip. */
static int finish_set(exporter *x, const uint64_t *info, const char *export_dir, const char *staging,
                      sp_stage_result *res) {
    const sp_run_ctx *ctx = x->ctx;
    sp_manifest m;
    memset(&m, 0, sizeof m);
    snprintf(m.date, sizeof m.date, "%s", ctx->date);
    model_version(ctx, m.model_version, sizeof m.model_version);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(m.created_at, sizeof m.created_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int rc = SP_OK;
    for (int e = 0; e < x->nent && !rc; e++) {
        sp_manifest_entity *en = &m.ent[m.nentities++];
        snprintf(en->name, sizeof en->name, "%s", ENT_NAME[e]);
        en->types = e == ENT_ITEMS ? (1u << SP_PIN | 1u << SP_BOARD) : 1u << SP_USER;
        en->dim = x->dim;
        en->dtype = x->dt;
        en->nshards = x->nshards;
        if (!(en->shards = calloc(x->nshards, sizeof *en->shards))) rc = SP_ENOMEM;
        for (uint32_t s = 0; !rc && s < x->nshards; s++) {
            const uint64_t *v = info + 3 * ((size_t)e * x->nshards + s);
            sp_shard_file_name(ENT_NAME[e], s, x->nshards, en->shards[s].file, sizeof en->shards[s].file);
            en->shards[s].count = v[0];
            en->shards[s].bytes = v[1];
            en->shards[s].xxh64 = v[2];
            en->count += v[0];
        }
    }
    sp_verify_report rep;
    double t0 = sp_now();
    if (!rc && (rc = sp_manifest_verify(&m, staging, &rep)))
        rc = sp_err(rc == SP_EFORMAT ? SP_EINTERNAL : rc, "export: the new shard set fails verify (%d problems): %s",
                    rep.nproblems, sp_errmsg());
    if (!rc)
        SP_INFO("export_verified", "shards=%" PRIu64 " entries=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f", rep.shards,
                rep.entries, rep.bytes, sp_now() - t0);
    char path[PATH_MAX], final[PATH_MAX];
    snprintf(path, sizeof path, "%s/MANIFEST.json", staging);
    snprintf(final, sizeof final, "%s/%s", export_dir, ctx->date);
    if (!rc) rc = sp_manifest_write(&m, path); /* last file of the set */
    /* the stage's own output: a copy of the manifest (its digest covers every shard's) */
    uint64_t xxh, bytes;
    sp_stage_path(ctx, "export", NULL, path, sizeof path);
    if (!rc) rc = sp_mkdir_p(path);
    sp_stage_path(ctx, "export", "MANIFEST.json", path, sizeof path);
    if (!rc) rc = sp_manifest_write(&m, path);
    if (!rc) rc = sp_file_xxh64(path, &xxh, &bytes);
    if (!rc) sp_stage_output(res, "MANIFEST.json", bytes, xxh);
    if (!rc) rc = publish_dir(export_dir, staging, final, ctx->date);
    if (!rc) SP_INFO("export_published", "dir=%s", sp_log_q(final));
    if (!rc && !sp_config_bool(ctx->cfg, "eval", "gate")) {
        char later[64];
        rc = sp_shard_flip_latest(export_dir, ctx->date, later, sizeof later);
        if (!rc && *later)
            SP_INFO("export_latest", "latest=unchanged reason=\"the later date %s is published\"", later);
        else if (!rc) SP_INFO("export_latest", "latest=%s", ctx->date);
    } else if (!rc) SP_INFO("export_latest", "latest=unchanged reason=\"eval.gate: the eval stage publishes\"");
    sp_manifest_free(&m);
    return rc;
}

int sp_export_run(const sp_run_ctx *ctx, sp_stage_result *res) {
    const sp_config *cfg = ctx->cfg;
    exporter x = {.ctx = ctx};
    const char *export_dir = sp_config_str(cfg, "export", "dir");
    const char *users = sp_config_str(cfg, "export", "users");
    x.dt = (sp_dtype)sp_dtype_parse(sp_config_str(cfg, "export", "dtype"));
    x.nshards = (uint32_t)sp_config_int(cfg, "export", "nshards");
    x.users = !strcmp(users, "boards") ? USERS_BOARDS : !strcmp(users, "users") ? USERS_STAGE : USERS_NONE;
    x.nent = x.users == USERS_NONE ? 1 : 2;
    if (strlen(export_dir) > PATH_MAX - 256)
        return sp_err(SP_ECONFIG, "export.dir is longer than %d bytes", PATH_MAX - 256);
    double t0 = sp_now();
    int ninfer = 0;
    int rc = sp_dist_agree(sp_stage_ranks(ctx, "infer", &ninfer));
    /* this rank's first part gives the dim; every rank must agree on it */
    part cur = {0};
    if (!rc && ctx->rank < ninfer) rc = part_open(ctx, ctx->rank, ninfer, &cur);
    uint64_t *dims = malloc(sizeof *dims * (size_t)ctx->size), mine = cur.dim;
    rc = sp_dist_agree(rc ? rc : dims ? SP_OK : SP_ENOMEM);
    if (!rc) rc = sp_dist_allgather_u64(&mine, dims, 1);
    for (int r = 0; !rc && r < ctx->size; r++) {
        if (dims[r] && x.dim && dims[r] != x.dim)
            rc = sp_err(SP_EFORMAT, "infer parts disagree on dim: %u and %" PRIu64, x.dim, dims[r]);
        if (dims[r]) x.dim = (uint32_t)dims[r];
    }
    free(dims);
    x.vbytes = sp_dtype_bytes(x.dt, x.dim);
    x.recsz = SP_SHARD_KEY_LEN + x.vbytes;
    if (!rc && x.recsz > SP_SHUFFLE_MAX_RECORD)
        rc = sp_err(SP_EINPUT, "export: dim %u (%s) makes records of %zu bytes, more than %u", x.dim,
                    sp_dtype_name(x.dt), x.recsz, SP_SHUFFLE_MAX_RECORD);
    x.nlocal = x.nshards > (uint32_t)ctx->rank ? (x.nshards - (uint32_t)ctx->rank + (uint32_t)ctx->size - 1) /
                                                  (uint32_t)ctx->size : 0;
    for (int e = 0; e < x.nent && !rc; e++)
        if (!(x.loc[e] = calloc(x.nlocal + 1, sizeof *x.loc[e]))) rc = SP_ENOMEM;
    /* staging directory, fresh */
    char staging[PATH_MAX], dir[PATH_MAX];
    snprintf(staging, sizeof staging, "%s/.%s.tmp", export_dir, ctx->date);
    int lrc = SP_OK;
    /* One export into an export.dir at a time, whatever its date and work_dir: two runs of a date with
     * different work dirs would share the staging directory (one deleted the other's shards, or swapped in
     * a half-written set), and exports of two dates race on `latest`. The other one waits (the ranks wait
     * in the collective below, so for at most half of pipeline.collective_timeout_s). */
    sp_run_lock xlock = {.fd = -1};
    if (!rc && ctx->rank == 0) {
        lrc = sp_mkdir_p(export_dir);
        if (!lrc) {
            char lpath[PATH_MAX];
            snprintf(lpath, sizeof lpath, "%s/.export.lock", export_dir);
            lrc = sp_lock_wait(lpath, sp_config_f64(cfg, "pipeline", "collective_timeout_s") / 2,
                               "another sagepipe export into this export.dir", &xlock);
        }
        if (!lrc) lrc = sp_rm_tree(staging);
        for (int e = 0; e < x.nent && !lrc; e++) {
            snprintf(dir, sizeof dir, "%s/%s", staging, ENT_NAME[e]);
            lrc = sp_mkdir_p(dir);
        }
    }
    if (!rc) rc = sp_dist_agree(lrc);
    if (!rc && ctx->rank == 0)
        SP_INFO("export_start", "infer_parts=%d dim=%u dtype=%s nshards=%u users=%s dir=%s", ninfer, x.dim,
                sp_dtype_name(x.dt), x.nshards, users, sp_log_q(export_dir));
    uint64_t sent = 0;
    size_t buffer = (size_t)sp_config_int(cfg, "pipeline", "shuffle_buffer_mb") << 20;
    if (!rc) rc = send_all(&x, ninfer, &cur, buffer, &sent);
    if (!rc && x.users == USERS_STAGE) rc = send_users(&x, buffer, &sent);
    sp_sfile_close(cur.f);
    /* write this rank's shards; info[e][s] = {count, bytes, xxh64}, summed over ranks */
    size_t ninfo = 3 * (size_t)MAX_ENT * x.nshards;
    uint64_t *info = calloc(ninfo, sizeof *info), puts = 0, bytes = 0;
    lrc = rc || info ? SP_OK : SP_ENOMEM;
    double tw = sp_now();
    for (int e = 0; e < x.nent && !rc && !lrc; e++)
        for (uint32_t l = 0; l < x.nlocal && !lrc; l++) {
            uint32_t s = (uint32_t)ctx->rank + l * (uint32_t)ctx->size;
            sp_shard_info si;
            lrc = write_shard(&x, staging, e, s, &x.loc[e][l], &si);
            free(x.loc[e][l].rec);
            x.loc[e][l] = (arena){0};
            if (lrc) break;
            uint64_t *v = info + 3 * ((size_t)e * x.nshards + s);
            v[0] = si.count, v[1] = si.bytes, v[2] = si.xxh64;
            puts += si.count;
            bytes += si.bytes;
        }
    if (!rc) sp_test_stall_at(ctx, "export", "written"); /* test hook: shards in staging, none published */
    if (!rc) rc = sp_dist_agree(lrc);
    if (!rc) SP_INFO("export_written", "puts=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f mb_s=%.1f", puts, bytes,
                     sp_now() - tw, (double)bytes / 1e6 / (sp_now() - tw + 1e-9));
    if (!rc) rc = sp_dist_sum_u64(info, (int)ninfo); /* each shard is written by exactly one rank */
    lrc = SP_OK;
    if (!rc && ctx->rank == 0) lrc = finish_set(&x, info, export_dir, staging, res);
    if (!rc) rc = sp_dist_agree(lrc);
    if (rc && ctx->rank == 0) sp_rm_tree(staging); /* a failed export leaves the published set as it was */
    sp_run_unlock(&xlock);
    uint64_t items = 0, nusers = 0;
    for (uint32_t s = 0; info && s < x.nshards; s++) {
        items += info[3 * s];
        if (x.nent > 1) nusers += info[3 * ((size_t)x.nshards + s)];
    }
    sp_stage_count(res, "items", ctx->rank == 0 ? items : 0); /* summed over ranks */
    sp_stage_count(res, "users", ctx->rank == 0 ? nusers : 0);
    sp_stage_count(res, "records_sent", sent);
    sp_stage_count(res, "puts", puts);
    sp_stage_count(res, "shard_bytes", bytes);
    if (!rc && ctx->rank == 0) SP_INFO("export_done", "items=%" PRIu64 " users=%" PRIu64 " seconds=%.3f", items, nusers, sp_now() - t0);
    for (int e = 0; e < x.nent; e++) {
        for (uint32_t l = 0; x.loc[e] && l < x.nlocal; l++) free(x.loc[e][l].rec);
        free(x.loc[e]);
    }
    free(info);
    return rc;
}
