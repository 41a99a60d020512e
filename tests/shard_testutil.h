/* shard_testutil.h: helpers shared by the shard, manifest and export tests:
 * the deterministic test vector of a (type, id), counting files by name
 * under a directory tree, rm -rf, and writing a small shard set with the
 * writer and the manifest API. Header-only (static functions). */
#ifndef SP_SHARD_TESTUTIL_H
#define SP_SHARD_TESTUTIL_H

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "manifest.h"
#include "shard.h"

/* Values k/256 with |k| <= 500: exact in f32 and f16, so f32/f16 shards
 * compare exactly; i8 within max|v|/254. Differs by type and id. */
static inline void test_vec(sp_type t, uint64_t id, uint32_t dim, float *v) {
    for (uint32_t j = 0; j < dim; j++)
        v[j] = (float)((int)((id * 31 + (uint64_t)j * 7 + (uint64_t)t * 13) % 1001) - 500) / 256.0f;
}

/* Files and directories under dir (recursive) whose name contains s. */
static inline int test_files_with(const char *dir, const char *s) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (strstr(e->d_name, s)) n++;
        char p[PATH_MAX];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (!lstat(p, &st) && S_ISDIR(st.st_mode)) n += test_files_with(p, s);
    }
    if (d) closedir(d);
    return n;
}

static inline void test_rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[PATH_MAX];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (!lstat(p, &st) && S_ISDIR(st.st_mode)) test_rm_tree(p);
        else unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

/* Writes <dir>/items/... (npins pins 1..npins, nboards boards 1..nboards)
 * and, if nusers, <dir>/users/... (users 1..nusers), then
 * <dir>/MANIFEST.json; *m keeps the manifest (free with sp_manifest_free).
 * Returns the first error. */
static inline int test_make_set(const char *dir, sp_dtype dt, uint32_t dim, uint32_t nshards, uint64_t npins,
                                uint64_t nboards, uint64_t nusers, sp_manifest *m) {
    memset(m, 0, sizeof *m);
    snprintf(m->date, sizeof m->date, "2026-11-21");
    snprintf(m->model_version, sizeof m->model_version, "test");
    snprintf(m->created_at, sizeof m->created_at, "2026-11-22T01:02:03Z");
    float *v = malloc(sizeof *v * dim);
    int rc = v ? SP_OK : SP_ENOMEM;
    for (int e = 0; e < (nusers ? 2 : 1) && !rc; e++) {
        sp_manifest_entity *en = &m->ent[m->nentities++];
        snprintf(en->name, sizeof en->name, "%s", e ? "users" : "items");
        en->types = e ? 1u << SP_USER : (1u << SP_PIN | 1u << SP_BOARD);
        en->dim = dim;
        en->dtype = dt;
        en->nshards = nshards;
        en->shards = calloc(nshards, sizeof *en->shards);
        char d[PATH_MAX];
        snprintf(d, sizeof d, "%s/%s", dir, en->name);
        mkdir(dir, 0777);
        mkdir(d, 0777);
        for (uint32_t s = 0; s < nshards && !rc; s++) {
            sp_shard_w *w;
            char path[PATH_MAX];
            sp_shard_file_name(en->name, s, nshards, en->shards[s].file, sizeof en->shards[s].file);
            snprintf(path, sizeof path, "%s/%s", dir, en->shards[s].file);
            if ((rc = sp_shard_w_open(&w, path, dim, dt, 0))) break;
            /* keys in order: boards, pins (items) or users */
            static const sp_type ORDER[2][2] = {{SP_BOARD, SP_PIN}, {SP_USER, SP_USER}};
            for (int k = 0; k < (e ? 1 : 2) && !rc; k++) {
                sp_type t = ORDER[e][k];
                uint64_t n = t == SP_PIN ? npins : t == SP_BOARD ? nboards : nusers;
                for (uint64_t id = 1; id <= n && !rc; id++) {
                    if (sp_shard_of(id, nshards) != s) continue;
                    test_vec(t, id, dim, v);
                    rc = sp_shard_w_put(w, t, id, v);
                }
            }
            sp_shard_info si;
            if (rc) sp_shard_w_discard(w);
            else rc = sp_shard_w_commit(w, &si);
            if (rc) break;
            en->shards[s].count = si.count;
            en->shards[s].bytes = si.bytes;
            en->shards[s].xxh64 = si.xxh64;
            en->count += si.count;
        }
    }
    free(v);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/MANIFEST.json", dir);
    if (!rc) rc = sp_manifest_write(m, path);
    return rc;
}

#endif
