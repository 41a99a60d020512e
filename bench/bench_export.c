/* bench_export: throughput of the shard writer (io/shard.h) against a plain
 * LMDB loop writing the same keys and values in the same run.
 *
 *   bench_export [--n 2000000] [--dim 64] [--dtype f32[,f16,i8]] [--repeat 3] [--dir DIR]
 *
 * Keys: n pins with ascending ids (9-byte keys, DESIGN §6). Values: vectors
 * taken round-robin from a pool of 65536 random vectors (so neither side
 * pays for generating them).
 * writer: sp_shard_w_open + sp_shard_w_put (encodes the floats into the
 *   dtype) + sp_shard_w_commit (sync, rename, fsync of the directory, and the
 *   whole-file xxh64 the manifest needs) -- everything the export stage pays.
 * plain: mdb_env_open(MDB_NOSUBDIR | MDB_NOLOCK), one write transaction,
 *   mdb_cursor_put(MDB_APPEND) of the pre-encoded values, mdb_txn_commit
 *   (which syncs), mdb_env_close.
 * Runs alternate (writer, plain) --repeat times; each impl's best run is one
 * JSON line on stdout (seconds, puts/s, MB/s of key+value payload, file
 * size), then a line with the writer/plain ratio against the 0.8 target,
 * the time the writer's whole-file xxh64 takes (measured again on its file
 * after the run, page cache warm) and the ratio without it.
 * Exit 1 on any error or when a file does not hold n entries. */
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shard.h"
#include "sp_base.h"

#define POOL 65536

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc) {
    fprintf(stderr, "bench_export: %s: %s %s\n", what, rc < 0 && rc > -30800 ? mdb_strerror(rc) : sp_strerror(rc),
            sp_errmsg());
    exit(1);
}

static uint64_t id_of(uint64_t i) { return i * 3 + 1; }

static uint64_t file_size(const char *p) {
    struct stat st;
    return stat(p, &st) ? 0 : (uint64_t)st.st_size;
}

/* Returns the seconds of the whole writer; *xxh_s: of re-hashing its file
 * afterwards (what the checksum in sp_shard_w_commit costs). */
static double run_writer(const char *path, uint64_t n, uint32_t dim, sp_dtype dt, const float *pool, double *xxh_s) {
    double t0 = now_s();
    sp_shard_w *w;
    int rc = sp_shard_w_open(&w, path, dim, dt, n);
    if (rc) die("sp_shard_w_open", rc);
    for (uint64_t i = 0; i < n; i++)
        if ((rc = sp_shard_w_put(w, SP_PIN, id_of(i), pool + (i % POOL) * dim))) die("sp_shard_w_put", rc);
    sp_shard_info info;
    if ((rc = sp_shard_w_commit(w, &info))) die("sp_shard_w_commit", rc);
    double t = now_s() - t0, t1 = now_s();
    uint64_t x;
    if ((rc = sp_file_xxh64(path, &x, NULL))) die("sp_file_xxh64", rc);
    *xxh_s = now_s() - t1;
    if (info.count != n || x != info.xxh64) die("writer count or checksum", SP_EINTERNAL);
    return t;
}

static double run_plain(const char *path, uint64_t n, size_t vbytes, const uint8_t *enc) {
    double t0 = now_s();
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    int rc = mdb_env_create(&env);
    if (!rc) rc = mdb_env_set_mapsize(env, (size_t)(n * (vbytes + 64) * 2 + (64u << 20)));
    if (!rc) rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOLOCK, 0644);
    if (!rc) rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (!rc) rc = mdb_dbi_open(txn, NULL, 0, &dbi);
    if (!rc) rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc) die("plain: open", rc);
    uint8_t key[9];
    for (uint64_t i = 0; i < n; i++) {
        sp_shard_key(key, SP_PIN, id_of(i));
        MDB_val k = {9, key}, v = {vbytes, (void *)(enc + (i % POOL) * vbytes)};
        if ((rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND))) die("plain: mdb_cursor_put", rc);
    }
    if ((rc = mdb_txn_commit(txn))) die("plain: mdb_txn_commit", rc);
    MDB_stat st;
    mdb_env_stat(env, &st);
    mdb_env_close(env);
    double t = now_s() - t0;
    if (st.ms_entries != n) die("plain count", SP_EINTERNAL);
    return t;
}

int main(int argc, char **argv) {
    uint64_t n = 2000000;
    uint32_t dim = 64;
    int repeat = 3;
    const char *dtypes = "f32", *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto usage;
        if (!strcmp(a, "--n")) n = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--dim")) dim = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--repeat")) repeat = atoi(v);
        else if (!strcmp(a, "--dtype")) dtypes = v;
        else if (!strcmp(a, "--dir")) dir = v;
        else goto usage;
        i++;
    }
    if (n == 0 || dim == 0 || dim > 32768 || repeat < 1) goto usage;
    char tmpl[] = "/tmp/bench_export.XXXXXX";
    if (!dir && !(dir = mkdtemp(tmpl))) die("mkdtemp", errno);
    float *pool = malloc(sizeof *pool * POOL * dim);
    uint8_t *enc = malloc((size_t)POOL * (4 + 4 * (size_t)dim));
    if (!pool || !enc) die("malloc", SP_ENOMEM);
    sp_rng r;
    sp_rng_init(&r, 1, 12345, 0);
    for (size_t i = 0; i < (size_t)POOL * dim; i++) pool[i] = (float)(sp_rng_unif(&r) * 2 - 1);
    char list[64];
    snprintf(list, sizeof list, "%s", dtypes);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int d = sp_dtype_parse(tok);
        if (d < 0) goto usage;
        sp_dtype dt = (sp_dtype)d;
        size_t vbytes = sp_dtype_bytes(dt, dim);
        for (size_t i = 0; i < POOL; i++) sp_vec_encode(dt, pool + i * dim, dim, enc + i * vbytes);
        char pw[4096], pp[4096];
        snprintf(pw, sizeof pw, "%s/writer.mdb", dir);
        snprintf(pp, sizeof pp, "%s/plain.mdb", dir);
        double best[2] = {1e30, 1e30}, xxh_s = 0, xs;
        uint64_t fbytes[2] = {0, 0};
        for (int k = 0; k < repeat; k++) {
            double t = run_writer(pw, n, dim, dt, pool, &xs);
            fbytes[0] = file_size(pw);
            if (t < best[0]) best[0] = t, xxh_s = xs;
            unlink(pw);
            t = run_plain(pp, n, vbytes, enc);
            fbytes[1] = file_size(pp);
            if (t < best[1]) best[1] = t;
            unlink(pp);
        }
        double payload = (double)n * (double)(SP_SHARD_KEY_LEN + vbytes) / 1e6;
        static const char *const IMPL[2] = {"writer", "plain_lmdb_append"};
        for (int m = 0; m < 2; m++)
            printf("{\"bench\":\"export_shard\",\"impl\":\"%s\",\"n\":%" PRIu64 ",\"dim\":%u,\"dtype\":\"%s\","
                   "\"seconds\":%.3f,\"puts_per_s\":%.0f,\"mb_per_s\":%.1f,\"payload_mb\":%.1f,\"file_mb\":%.1f,"
                   "\"repeat\":%d}\n",
                   IMPL[m], n, dim, sp_dtype_name(dt), best[m], (double)n / best[m], payload / best[m], payload,
                   (double)fbytes[m] / 1e6, repeat);
        double ratio = best[1] / best[0];
        printf("{\"bench\":\"export_shard\",\"dtype\":\"%s\",\"ratio_writer_vs_plain\":%.3f,\"target\":0.8,"
               "\"met\":%s,\"writer_xxh64_s\":%.3f,\"ratio_without_xxh64\":%.3f}\n",
               sp_dtype_name(dt), ratio, ratio >= 0.8 ? "true" : "false", xxh_s, best[1] / (best[0] - xxh_s));
        fflush(stdout);
    }
    if (!strncmp(dir, "/tmp/bench_export.", 18)) rmdir(dir);
    free(pool);
    free(enc);
    return 0;
usage:
    fprintf(stderr, "usage: bench_export [--n 2000000] [--dim 64] [--dtype f32[,f16,i8]] [--repeat 3] [--dir DIR]\n");
    return 2;
}
