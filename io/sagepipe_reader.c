/* sagepipe_reader: the public reader of shard sets (sagepipe_reader.h), a
 * thin layer over manifest.c (parse, verify) and shard.c (routing, decoding)
 * that maps their SP_ codes to the library's own codes. Built into
 * sagepipe_core and, separately, as libsagepipe_reader.so. */
#include "sagepipe_reader.h"

#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "manifest.h"
#include "shard.h"

typedef struct {
    MDB_env *env;
    MDB_txn *txn; /* one read-only transaction for the set's lifetime: the data never changes */
    MDB_dbi dbi;
} shard_h;

struct spr_iter {
    spr_set *set;
    int ent;
    uint32_t shard;
    MDB_cursor *cur;
    spr_iter *next; /* the set's list of open iterators */
};

struct spr_set {
    sp_manifest m;
    char dir[PATH_MAX];
    char types[SP_MANIFEST_MAX_ENTITIES][SP_NTYPES + 1];
    shard_h *sh[SP_MANIFEST_MAX_ENTITIES]; /* (nshards) per entity; env NULL until first use */
    spr_iter *iters;
};

/* Maps an internal code to the library's (keeping the message). */
static int map_rc(int rc) {
    switch (rc) {
    case SP_OK: return SPR_SUCCESS;
    case SP_ENOMEM: return ENOMEM;
    case SP_EFORMAT: case SP_EINPUT: return SPR_CORRUPT;
    case SP_ENOTIMPL: return SPR_VERSION;
    case SP_EUSAGE: case SP_ECONFIG: return EINVAL;
    default: return rc > 0 ? rc : EIO;
    }
}

/* Type of a key byte ('p', 'b', 'u'), or -1. */
static int type_of_char(char c) {
    for (int t = 0; t < SP_NTYPES; t++)
        if (c && sp_type_char[t] == c) return t;
    return -1;
}

/* Entity index holding a type byte, or -1 (then the message says so). */
static int entity_of_char(const spr_set *s, char type) {
    int t = type_of_char(type);
    int e = t < 0 ? -1 : sp_manifest_entity_of(&s->m, (sp_type)t);
    if (e < 0) sp_err(SP_EUSAGE, "the set has no entity holding type '%c'", type);
    return e;
}

SPR_API const char *spr_strerror(int rc) {
    switch (rc) {
    case SPR_SUCCESS: return "success";
    case SPR_NOTFOUND: return "SPR_NOTFOUND: no such entry";
    case SPR_CORRUPT: return "SPR_CORRUPT: the manifest or a shard is malformed or fails a check";
    case SPR_VERSION: return "SPR_VERSION: unsupported manifest format_version";
    case SPR_NOTYPE: return "SPR_NOTYPE: the set holds no such entity or type";
    default: return mdb_strerror(rc); /* LMDB codes and errno values */
    }
}

SPR_API const char *spr_errmsg(void) { return sp_errmsg(); }

SPR_API int spr_open(const char *manifest_path, unsigned flags, spr_set **out) {
    if (!out) return EINVAL;
    *out = NULL;
    if (!manifest_path || strlen(manifest_path) >= PATH_MAX - 300 || (flags & ~SPR_VERIFY)) return EINVAL;
    sp_err_clear();
    spr_set *s = calloc(1, sizeof *s);
    if (!s) return ENOMEM;
    int rc = sp_manifest_load(&s->m, manifest_path);
    if (rc == SP_EUSAGE) {
        free(s);
        return ENOENT; /* the message names the file */
    }
    if (rc) {
        free(s);
        return map_rc(rc);
    }
    snprintf(s->dir, sizeof s->dir, "%s", manifest_path);
    char *slash = strrchr(s->dir, '/');
    if (slash) *slash = 0;
    else snprintf(s->dir, sizeof s->dir, ".");
    for (int e = 0; e < s->m.nentities && !rc; e++) {
        const sp_manifest_entity *en = &s->m.ent[e];
        int n = 0;
        for (int t = 0; t < SP_NTYPES; t++)
            if (en->types & (1u << t)) s->types[e][n++] = sp_type_char[t];
        if (!(s->sh[e] = calloc(en->nshards, sizeof *s->sh[e]))) rc = ENOMEM;
        for (uint32_t i = 0; i < en->nshards && !rc; i++) {
            char path[PATH_MAX];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", s->dir, en->shards[i].file);
            if (stat(path, &st)) {
                sp_err(SP_EFORMAT, "%s: shard missing: %s", path, strerror(errno));
                rc = SPR_CORRUPT;
            } else if ((uint64_t)st.st_size != en->shards[i].bytes) {
                sp_err(SP_EFORMAT, "%s: %lld bytes, the manifest says %llu", path, (long long)st.st_size,
                       (unsigned long long)en->shards[i].bytes);
                rc = SPR_CORRUPT;
            }
        }
    }
    if (!rc && (flags & SPR_VERIFY)) {
        sp_verify_report rep;
        rc = map_rc(sp_manifest_verify(&s->m, s->dir, &rep));
    }
    if (rc) {
        spr_close(s);
        return rc;
    }
    *out = s;
    return SPR_SUCCESS;
}

SPR_API void spr_close(spr_set *s) {
    if (!s) return;
    while (s->iters) spr_iter_close(s->iters);
    for (int e = 0; e < s->m.nentities; e++) {
        for (uint32_t i = 0; s->sh[e] && i < s->m.ent[e].nshards; i++) {
            if (s->sh[e][i].txn) mdb_txn_abort(s->sh[e][i].txn);
            if (s->sh[e][i].env) mdb_env_close(s->sh[e][i].env);
        }
        free(s->sh[e]);
    }
    sp_manifest_free(&s->m);
    free(s);
}

SPR_API const char *spr_date(const spr_set *s) { return s ? s->m.date : NULL; }
SPR_API const char *spr_model_version(const spr_set *s) { return s ? s->m.model_version : NULL; }
SPR_API unsigned spr_entity_count(const spr_set *s) { return s ? (unsigned)s->m.nentities : 0; }

SPR_API int spr_entity_get(const spr_set *s, unsigned i, spr_entity *out) {
    if (!s || !out || i >= (unsigned)s->m.nentities) return EINVAL;
    const sp_manifest_entity *e = &s->m.ent[i];
    out->name = e->name;
    out->types = s->types[i];
    out->dim = e->dim;
    out->dtype = sp_dtype_name(e->dtype);
    out->count = e->count;
    out->nshards = e->nshards;
    return SPR_SUCCESS;
}

SPR_API int spr_entity_of(const spr_set *s, char type, spr_entity *out) {
    if (!s || !out) return EINVAL;
    int e = entity_of_char(s, type);
    if (e < 0) return SPR_NOTYPE;
    return spr_entity_get(s, (unsigned)e, out);
}

/* Opens shard i of entity e on first use. */
static int shard_get(spr_set *s, int e, uint32_t i, shard_h **out) {
    shard_h *h = &s->sh[e][i];
    *out = h;
    if (h->env) return SPR_SUCCESS;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", s->dir, s->m.ent[e].shards[i].file);
    int rc = sp_shard_r_open(&h->env, path, s->m.ent[e].shards[i].bytes), opened = !rc;
    if (!rc) rc = mdb_txn_begin(h->env, NULL, MDB_RDONLY, &h->txn);
    if (!rc) rc = mdb_dbi_open(h->txn, NULL, 0, &h->dbi);
    if (rc) {
        if (opened) sp_err(SP_EFORMAT, "%s: %s", path, mdb_strerror(rc)); /* else sp_shard_r_open's message */
        if (h->txn) mdb_txn_abort(h->txn);
        if (h->env) mdb_env_close(h->env);
        h->env = NULL;
        h->txn = NULL;
        return rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED ? SPR_CORRUPT : rc;
    }
    return SPR_SUCCESS;
}

SPR_API int spr_get_raw(spr_set *s, char type, uint64_t id, const void **data, size_t *len) {
    if (!s || !data || !len) return EINVAL;
    int e = entity_of_char(s, type);
    if (e < 0) return SPR_NOTYPE;
    const sp_manifest_entity *en = &s->m.ent[e];
    uint32_t i = sp_shard_of(id, en->nshards);
    shard_h *h;
    int rc = shard_get(s, e, i, &h);
    if (rc) return rc;
    uint8_t key[SP_SHARD_KEY_LEN];
    sp_shard_key(key, (sp_type)type_of_char(type), id);
    MDB_val k = {SP_SHARD_KEY_LEN, key}, v;
    rc = mdb_get(h->txn, h->dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        sp_err(SP_EINPUT, "%c%llu is not in the set", type, (unsigned long long)id);
        return SPR_NOTFOUND;
    }
    if (rc) return rc;
    if (v.mv_size != sp_dtype_bytes(en->dtype, en->dim)) {
        sp_err(SP_EFORMAT, "%s: %c%llu: value of %zu bytes", en->shards[i].file, type, (unsigned long long)id,
               v.mv_size);
        return SPR_CORRUPT;
    }
    *data = v.mv_data;
    *len = v.mv_size;
    return SPR_SUCCESS;
}

SPR_API int spr_get(spr_set *s, char type, uint64_t id, float *vec, size_t cap) {
    if (!s || !vec) return EINVAL;
    int e = entity_of_char(s, type);
    if (e >= 0 && cap < s->m.ent[e].dim) return EINVAL;
    const void *data;
    size_t len;
    int rc = spr_get_raw(s, type, id, &data, &len);
    if (!rc) sp_vec_decode(s->m.ent[e].dtype, data, s->m.ent[e].dim, vec);
    return rc;
}

SPR_API int spr_iter_open(spr_set *s, const char *entity, spr_iter **out) {
    if (!s || !entity || !out) return EINVAL;
    *out = NULL;
    int e = sp_manifest_entity_find(&s->m, entity);
    if (e < 0) {
        sp_err(SP_EUSAGE, "the set has no entity '%s'", entity);
        return SPR_NOTYPE;
    }
    spr_iter *it = calloc(1, sizeof *it);
    if (!it) return ENOMEM;
    it->set = s;
    it->ent = e;
    it->next = s->iters;
    s->iters = it;
    *out = it;
    return SPR_SUCCESS;
}

SPR_API int spr_iter_next(spr_iter *it, char *type, uint64_t *id, float *vec, size_t cap) {
    if (!it || !type || !id || !vec) return EINVAL;
    spr_set *s = it->set;
    const sp_manifest_entity *en = &s->m.ent[it->ent];
    if (cap < en->dim) return EINVAL;
    size_t vbytes = sp_dtype_bytes(en->dtype, en->dim);
    while (it->shard < en->nshards) {
        MDB_val k, v;
        int rc;
        if (!it->cur) {
            shard_h *h;
            if ((rc = shard_get(s, it->ent, it->shard, &h))) return rc;
            if ((rc = mdb_cursor_open(h->txn, h->dbi, &it->cur))) return rc;
            rc = mdb_cursor_get(it->cur, &k, &v, MDB_FIRST);
        } else rc = mdb_cursor_get(it->cur, &k, &v, MDB_NEXT);
        if (rc == MDB_NOTFOUND) { /* next shard */
            mdb_cursor_close(it->cur);
            it->cur = NULL;
            it->shard++;
            continue;
        }
        if (rc) return rc;
        sp_type t;
        if (k.mv_size != SP_SHARD_KEY_LEN) continue; /* metadata */
        if (sp_shard_key_parse(k.mv_data, k.mv_size, &t, id) || v.mv_size != vbytes) {
            sp_err(SP_EFORMAT, "%s: bad key or value size", en->shards[it->shard].file);
            return SPR_CORRUPT;
        }
        *type = sp_type_char[t];
        sp_vec_decode(en->dtype, v.mv_data, en->dim, vec);
        return SPR_SUCCESS;
    }
    return SPR_NOTFOUND;
}

SPR_API void spr_iter_close(spr_iter *it) {
    if (!it) return;
    for (spr_iter **p = &it->set->iters; *p; p = &(*p)->next)
        if (*p == it) {
            *p = it->next;
            break;
        }
    if (it->cur) mdb_cursor_close(it->cur);
    free(it);
}

SPR_API unsigned spr_shard_of(uint64_t id, unsigned nshards) { return nshards ? sp_shard_of(id, nshards) : 0; }

SPR_API int spr_parse_id(const char *text, char *type, uint64_t *id) {
    if (!text || !type || !id) return EINVAL;
    sp_type t;
    uint64_t v;
    if (sp_shard_id_parse(text, &t, &v)) return EINVAL;
    *type = sp_type_char[t];
    *id = v;
    return SPR_SUCCESS;
}
