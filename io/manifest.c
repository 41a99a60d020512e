/* manifest: MANIFEST.json parse / write (io/json.h DOM and sp_jw writer) and
 * the verifier of a shard set (checksums first, then LMDB, read-only and
 * without a lock file). */
#include "manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "json.h"

/* ---- parse ---- */

static int bad(const char *what, const char *field, const char *why) {
    return sp_err(SP_EFORMAT, "%s: %s: %s", what, field, why);
}

/* Copies a required string field into dst (cap bytes). */
static int get_str(const sp_json *obj, const char *key, char *dst, size_t cap, const char *what, const char *path) {
    char f[160];
    snprintf(f, sizeof f, "%s%s", path, key);
    const char *s = sp_json_str(sp_json_get(obj, key));
    if (!s) return bad(what, f, "missing or not a string");
    if (strlen(s) >= cap) return bad(what, f, "too long");
    memcpy(dst, s, strlen(s) + 1);
    return SP_OK;
}

static int get_u64(const sp_json *obj, const char *key, uint64_t lo, uint64_t hi, uint64_t *v, const char *what,
                   const char *path) {
    char f[160];
    snprintf(f, sizeof f, "%s%s", path, key);
    if (sp_json_type(sp_json_get(obj, key)) != SP_JSON_NUM || sp_json_u64(sp_json_get(obj, key), v))
        return bad(what, f, "missing or not an unsigned integer");
    if (*v < lo || *v > hi) {
        char why[96];
        snprintf(why, sizeof why, "%" PRIu64 " out of range [%" PRIu64 ", %" PRIu64 "]", *v, lo, hi);
        return bad(what, f, why);
    }
    return SP_OK;
}

/* A relative path without "." or ".." components (a manifest cannot point outside its directory). */
/* A digit run ending just before end, of at most 9 digits, that starts right after `sep` in s: its
 * value, or -1. */
static long digits_before(const char *s, const char *end, char sep) {
    const char *b = end;
    while (b > s && b[-1] >= '0' && b[-1] <= '9' && end - b < 9) b--;
    if (b == end || b == s || b[-1] != sep) return -1;
    return strtol(b, NULL, 10);
}

/* For a file named like the writer names shards ("...-<shard>-of-<nshards>.mdb", sp_shard_file_name): 0 if
 * the name says shard i of n, 1 if it says another; a name of another form is not checked (0). */
static int shard_name_mismatch(const char *file, uint32_t i, uint32_t n, long *name_i, long *name_n) {
    size_t len = strlen(file);
    if (len < 4 || strcmp(file + len - 4, ".mdb")) return 0;
    const char *end = file + len - 4;
    *name_n = digits_before(file, end, '-');
    if (*name_n < 0) return 0;
    const char *of = end;
    while (of > file && of[-1] != '-') of--; /* of: the first digit of <nshards> */
    if (of - file < 4 || strncmp(of - 4, "-of-", 4)) return 0;
    *name_i = digits_before(file, of - 4, '-');
    if (*name_i < 0) return 0;
    return *name_i != (long)i || *name_n != (long)n;
}

static int safe_rel_path(const char *p) {
    if (!*p || p[0] == '/') return 0;
    for (const char *c = p; *c;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return 0;
        c += n + (e ? 1 : 0);
    }
    return 1;
}

static int parse_entity(sp_manifest_entity *e, const char *name, const sp_json *j, unsigned *seen_types,
                        const char *what) {
    char path[96];
    snprintf(path, sizeof path, "entities.%.40s.", name);
    if (sp_json_type(j) != SP_JSON_OBJ) return bad(what, path, "not an object");
    if (strlen(name) >= sizeof e->name || !*name) return bad(what, path, "bad entity name");
    snprintf(e->name, sizeof e->name, "%s", name);
    const sp_json *types = sp_json_get(j, "types");
    char f[160];
    snprintf(f, sizeof f, "%stypes", path);
    if (sp_json_type(types) != SP_JSON_ARR || sp_json_len(types) == 0) return bad(what, f, "missing or empty list");
    for (size_t i = 0; i < sp_json_len(types); i++) {
        int t = sp_type_from_name(sp_json_str(sp_json_at(types, i)));
        if (t < 0) return bad(what, f, "unknown type (pin, board, user)");
        if (*seen_types & (1u << t)) return bad(what, f, "a type listed twice (in this or another entity)");
        *seen_types |= 1u << t;
        e->types |= 1u << t;
    }
    uint64_t dim, count, nshards;
    char dt[8];
    int rc = get_u64(j, "dim", 1, SP_MANIFEST_MAX_DIM, &dim, what, path);
    if (!rc) rc = get_str(j, "dtype", dt, sizeof dt, what, path);
    if (!rc && sp_dtype_parse(dt) < 0) {
        snprintf(f, sizeof f, "%sdtype", path);
        rc = bad(what, f, "unknown dtype (f32, f16, i8)");
    }
    if (!rc) rc = get_u64(j, "count", 0, UINT64_MAX, &count, what, path);
    if (!rc) rc = get_u64(j, "nshards", 1, SP_MANIFEST_MAX_SHARDS, &nshards, what, path);
    if (rc) return rc;
    e->dim = (uint32_t)dim;
    e->dtype = (sp_dtype)sp_dtype_parse(dt);
    e->count = count;
    e->nshards = (uint32_t)nshards;
    const sp_json *sh = sp_json_get(j, "shards");
    snprintf(f, sizeof f, "%sshards", path);
    if (sp_json_type(sh) != SP_JSON_ARR) return bad(what, f, "missing or not a list");
    if (sp_json_len(sh) != nshards) return bad(what, f, "the number of shards differs from nshards");
    if (!(e->shards = calloc(nshards, sizeof *e->shards))) return SP_ENOMEM;
    uint64_t sum = 0;
    for (uint32_t i = 0; i < nshards; i++) {
        const sp_json *s = sp_json_at(sh, i);
        sp_manifest_shard *o = &e->shards[i];
        char sp[128], hex[24];
        snprintf(sp, sizeof sp, "%sshards[%u].", path, i);
        if (sp_json_type(s) != SP_JSON_OBJ) return bad(what, sp, "not an object");
        if ((rc = get_str(s, "file", o->file, sizeof o->file, what, sp))) return rc;
        snprintf(f, sizeof f, "%sfile", sp);
        if (!safe_rel_path(o->file)) return bad(what, f, "must be a relative path without '.' or '..' parts");
        long ni, nn;
        if (shard_name_mismatch(o->file, i, nshards, &ni, &nn))
            return sp_err(SP_EFORMAT, "%s: %s: '%s' is named shard %ld of %ld, but is entry %u of %" PRIu64
                          " (shards must be listed in routing order)", what, f, o->file, ni, nn, i, nshards);
        if ((rc = get_u64(s, "count", 0, UINT64_MAX, &o->count, what, sp))) return rc;
        if ((rc = get_u64(s, "bytes", 0, UINT64_MAX, &o->bytes, what, sp))) return rc;
        if ((rc = get_str(s, "xxh64", hex, sizeof hex, what, sp))) return rc;
        snprintf(f, sizeof f, "%sxxh64", sp);
        if (strlen(hex) != 16 || strspn(hex, "0123456789abcdef") != 16)
            return bad(what, f, "expected 16 lowercase hex digits");
        o->xxh64 = strtoull(hex, NULL, 16);
        if (sum + o->count < sum) return bad(what, sp, "counts overflow");
        sum += o->count;
    }
    snprintf(f, sizeof f, "%scount", path);
    if (sum != count) return bad(what, f, "differs from the sum of the shards' counts");
    return SP_OK;
}

static int parse_tree(sp_manifest *m, const sp_json *j, const char *what);

int sp_manifest_parse(sp_manifest *m, const char *text, size_t len, const char *what) {
    memset(m, 0, sizeof *m);
    sp_json *j = NULL;
    int rc = sp_json_parse(&j, text, len);
    if (rc == SP_EINPUT) return sp_err(SP_EFORMAT, "%s: not JSON: %s", what, sp_errmsg());
    if (rc) return rc;
    rc = parse_tree(m, j, what);
    sp_json_free(j);
    if (rc) sp_manifest_free(m); /* keeps the message */
    return rc;
}

/* Writes a parsed JSON value back (the "eval" object is kept verbatim in meaning). */
static void jw_value(sp_jw *w, const char *key, const sp_json *v) {
    uint64_t u;
    switch (sp_json_type(v)) {
    case SP_JSON_NULL: sp_jw_null(w, key); break;
    case SP_JSON_BOOL: sp_jw_bool(w, key, sp_json_bool(v)); break;
    case SP_JSON_STR: sp_jw_str(w, key, sp_json_str(v)); break;
    case SP_JSON_NUM:
        if (!sp_json_u64(v, &u)) sp_jw_u64(w, key, u);
        else sp_jw_f64(w, key, sp_json_num(v));
        break;
    case SP_JSON_ARR:
        sp_jw_arr_begin(w, key);
        for (size_t i = 0; i < sp_json_len(v); i++) jw_value(w, NULL, sp_json_at(v, i));
        sp_jw_arr_end(w);
        break;
    case SP_JSON_OBJ:
        sp_jw_obj_begin(w, key);
        for (size_t i = 0; i < sp_json_len(v); i++) jw_value(w, sp_json_key_at(v, i), sp_json_at(v, i));
        sp_jw_obj_end(w);
        break;
    }
}

static int parse_tree(sp_manifest *m, const sp_json *j, const char *what) {
    if (sp_json_type(j) != SP_JSON_OBJ) return bad(what, "(top level)", "not an object");
    char fmt[32];
    uint64_t ver;
    int rc = get_str(j, "format", fmt, sizeof fmt, what, "");
    if (!rc && strcmp(fmt, SP_MANIFEST_FORMAT)) rc = bad(what, "format", "not \"" SP_MANIFEST_FORMAT "\"");
    if (!rc) rc = get_u64(j, "format_version", 0, UINT64_MAX, &ver, what, "");
    if (!rc && ver != SP_MANIFEST_VERSION)
        rc = sp_err(SP_ENOTIMPL, "%s: format_version %" PRIu64 " is not supported (this reader knows %d)", what, ver,
                    SP_MANIFEST_VERSION);
    if (!rc) rc = get_str(j, "date", m->date, sizeof m->date, what, "");
    int64_t day;
    if (!rc && sp_date_parse(m->date, &day)) rc = bad(what, "date", "not a YYYY-MM-DD date");
    if (!rc) rc = get_str(j, "model_version", m->model_version, sizeof m->model_version, what, "");
    if (!rc) rc = get_str(j, "created_at", m->created_at, sizeof m->created_at, what, "");
    if (rc) return rc;
    const sp_json *ents = sp_json_get(j, "entities");
    if (sp_json_type(ents) != SP_JSON_OBJ || sp_json_len(ents) == 0)
        return bad(what, "entities", "missing or empty object");
    if (sp_json_len(ents) > SP_MANIFEST_MAX_ENTITIES) return bad(what, "entities", "too many entities");
    unsigned seen = 0;
    for (size_t i = 0; i < sp_json_len(ents); i++) {
        const char *name = sp_json_key_at(ents, i);
        for (int k = 0; k < m->nentities; k++)
            if (!strcmp(m->ent[k].name, name)) return bad(what, "entities", "an entity listed twice");
        m->nentities++;
        if ((rc = parse_entity(&m->ent[i], name, sp_json_at(ents, i), &seen, what))) return rc;
    }
    const sp_json *ev = sp_json_get(j, "eval");
    if (ev) {
        if (sp_json_type(ev) != SP_JSON_OBJ) return bad(what, "eval", "not an object");
        sp_jw w;
        const char *t;
        size_t n;
        sp_jw_init(&w);
        jw_value(&w, NULL, ev);
        rc = sp_jw_finish(&w, &t, &n);
        if (!rc && !(m->eval_json = strndup(t, n - 1))) rc = SP_ENOMEM; /* without the '\n' */
        sp_jw_free(&w);
    }
    return rc;
}

int sp_manifest_load(sp_manifest *m, const char *path) {
    memset(m, 0, sizeof *m);
    char *text;
    size_t len;
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return sp_err(SP_EUSAGE, "%s: not a manifest file (%s)", path,
                      S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
    int rc = sp_read_file(path, &text, &len);
    if (rc == ENOENT) return sp_err(SP_EUSAGE, "cannot open %s: no such file", path);
    if (rc) return rc;
    rc = sp_manifest_parse(m, text, len, path);
    free(text);
    return rc;
}

/* ---- write ---- */

int sp_manifest_to_json(const sp_manifest *m, char **text, size_t *len) {
    sp_jw w;
    sp_jw_init(&w);
    sp_jw_obj_begin(&w, NULL);
    sp_jw_str(&w, "format", SP_MANIFEST_FORMAT);
    sp_jw_u64(&w, "format_version", SP_MANIFEST_VERSION);
    sp_jw_str(&w, "date", m->date);
    sp_jw_str(&w, "model_version", m->model_version);
    sp_jw_str(&w, "created_at", m->created_at);
    sp_jw_obj_begin(&w, "entities");
    for (int i = 0; i < m->nentities; i++) {
        const sp_manifest_entity *e = &m->ent[i];
        sp_jw_obj_begin(&w, e->name);
        sp_jw_arr_begin(&w, "types");
        for (int t = 0; t < SP_NTYPES; t++)
            if (e->types & (1u << t)) sp_jw_str(&w, NULL, sp_type_name[t]);
        sp_jw_arr_end(&w);
        sp_jw_u64(&w, "dim", e->dim);
        sp_jw_str(&w, "dtype", sp_dtype_name(e->dtype));
        sp_jw_u64(&w, "count", e->count);
        sp_jw_u64(&w, "nshards", e->nshards);
        sp_jw_arr_begin(&w, "shards");
        for (uint32_t s = 0; s < e->nshards; s++) {
            char hex[17];
            snprintf(hex, sizeof hex, "%016" PRIx64, e->shards[s].xxh64);
            sp_jw_obj_begin(&w, NULL);
            sp_jw_str(&w, "file", e->shards[s].file);
            sp_jw_u64(&w, "count", e->shards[s].count);
            sp_jw_u64(&w, "bytes", e->shards[s].bytes);
            sp_jw_str(&w, "xxh64", hex);
            sp_jw_obj_end(&w);
        }
        sp_jw_arr_end(&w);
        sp_jw_obj_end(&w);
    }
    sp_jw_obj_end(&w);
    if (m->eval_json) sp_jw_raw(&w, "eval", m->eval_json);
    sp_jw_obj_end(&w);
    const char *t;
    size_t n;
    int rc = sp_jw_finish(&w, &t, &n);
    if (!rc && !(*text = malloc(n + 1))) rc = SP_ENOMEM;
    if (!rc) {
        memcpy(*text, t, n + 1);
        *len = n;
    }
    sp_jw_free(&w);
    return rc;
}

int sp_manifest_write(const sp_manifest *m, const char *path) {
    char *text;
    size_t len;
    int rc = sp_manifest_to_json(m, &text, &len);
    if (rc) return rc;
    rc = sp_write_atomic(path, text, len);
    free(text);
    return rc;
}

void sp_manifest_free(sp_manifest *m) {
    for (int i = 0; i < m->nentities; i++) free(m->ent[i].shards);
    free(m->eval_json);
    memset(m, 0, sizeof *m);
}

int sp_manifest_entity_of(const sp_manifest *m, sp_type t) {
    for (int i = 0; i < m->nentities; i++)
        if (m->ent[i].types & (1u << t)) return i;
    return -1;
}

int sp_manifest_entity_find(const sp_manifest *m, const char *name) {
    for (int i = 0; i < m->nentities; i++)
        if (!strcmp(m->ent[i].name, name)) return i;
    return -1;
}

/* ---- verify ---- */

/* Scans the LMDB environment of a shard that passed its checksum. */
static int scan_shard(const char *path, const sp_manifest_entity *e, uint32_t index, const sp_manifest_shard *s,
                      uint64_t *meta_keys) {
    size_t vbytes = sp_dtype_bytes(e->dtype, e->dim);
    float *vec = malloc(sizeof *vec * e->dim);
    if (!vec) return SP_ENOMEM;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi dbi;
    MDB_val k, v;
    int rc = sp_shard_r_open(&env, path, s->bytes), lrc;
    if (rc) {
        lrc = SP_EFORMAT; /* sp_errmsg names the file and the problem */
        goto done;
    }
    rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (!rc) rc = mdb_dbi_open(txn, NULL, 0, &dbi);
    if (!rc) rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc) {
        lrc = sp_err(SP_EFORMAT, "%s: not a readable LMDB file: %s", path, mdb_strerror(rc));
        goto done;
    }
    uint8_t prev[SP_SHARD_KEY_LEN];
    uint64_t n = 0, skipped = 0;
    lrc = SP_OK;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc && !lrc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        sp_type t;
        uint64_t id;
        if (k.mv_size != SP_SHARD_KEY_LEN) { /* reserved for metadata */
            skipped++;
            continue;
        }
        if (sp_shard_key_parse(k.mv_data, k.mv_size, &t, &id)) {
            lrc = sp_err(SP_EFORMAT, "%s: entry %" PRIu64 ": %s", path, n, sp_errmsg());
            break;
        }
        char kn[32];
        snprintf(kn, sizeof kn, "%c%" PRIu64, sp_type_char[t], id);
        uint32_t want = sp_shard_of(id, e->nshards);
        if (!(e->types & (1u << t)))
            lrc = sp_err(SP_EFORMAT, "%s: key %s: type %s is not one of entity %s's", path, kn, sp_type_name[t], e->name);
        else if (n && memcmp(prev, k.mv_data, SP_SHARD_KEY_LEN) >= 0)
            lrc = sp_err(SP_EFORMAT, "%s: key %s is not after the previous key", path, kn);
        else if (want != index)
            lrc = sp_err(SP_EFORMAT, "%s: key %s routes to shard %u, found in shard %u", path, kn, want, index);
        else if (v.mv_size != vbytes)
            lrc = sp_err(SP_EFORMAT, "%s: key %s: value of %zu bytes, %s dim %u needs %zu", path, kn, v.mv_size,
                         sp_dtype_name(e->dtype), e->dim, vbytes);
        if (lrc) break;
        sp_vec_decode(e->dtype, v.mv_data, e->dim, vec);
        float scale = 0;
        if (e->dtype == SP_DT_I8) memcpy(&scale, v.mv_data, 4);
        if (!isfinite(scale) || scale < 0) lrc = sp_err(SP_EFORMAT, "%s: key %s: bad i8 scale %g", path, kn, scale);
        for (uint32_t j = 0; j < e->dim && !lrc; j++)
            if (!isfinite(vec[j])) lrc = sp_err(SP_EFORMAT, "%s: key %s: value %u is %g", path, kn, j, vec[j]);
        memcpy(prev, k.mv_data, SP_SHARD_KEY_LEN);
        n++;
    }
    if (!lrc && rc != MDB_NOTFOUND) lrc = sp_err(SP_EFORMAT, "%s: LMDB read failed: %s", path, mdb_strerror(rc));
    if (!lrc && n != s->count)
        lrc = sp_err(SP_EFORMAT, "%s: %" PRIu64 " entries, manifest says %" PRIu64, path, n, s->count);
    if (meta_keys) *meta_keys += skipped;
done:
    if (cur) mdb_cursor_close(cur);
    if (txn) mdb_txn_abort(txn);
    if (env) mdb_env_close(env);
    free(vec);
    return lrc;
}

int sp_shard_verify(const char *path, const sp_manifest_entity *e, uint32_t index, const sp_manifest_shard *s,
                    uint64_t *meta_keys) {
    struct stat st;
    if (stat(path, &st)) return sp_err(SP_EFORMAT, "%s: missing: %s", path, strerror(errno));
    if ((uint64_t)st.st_size != s->bytes)
        return sp_err(SP_EFORMAT, "%s: %lld bytes, manifest says %" PRIu64, path, (long long)st.st_size, s->bytes);
    uint64_t xxh = 0;
    int rc = sp_file_xxh64(path, &xxh, NULL);
    if (rc == SP_EIO) return sp_err(SP_EFORMAT, "%s", sp_errmsg());
    if (rc) return rc;
    if (xxh != s->xxh64)
        return sp_err(SP_EFORMAT, "%s: xxh64 %016" PRIx64 ", manifest says %016" PRIx64 " (the file changed)", path,
                      xxh, s->xxh64);
    return scan_shard(path, e, index, s, meta_keys);
}

int sp_manifest_verify(const sp_manifest *m, const char *base_dir, sp_verify_report *rep) {
    memset(rep, 0, sizeof *rep);
    int first = SP_OK;
    char first_msg[512] = "";
    for (int i = 0; i < m->nentities; i++) {
        const sp_manifest_entity *e = &m->ent[i];
        for (uint32_t s = 0; s < e->nshards; s++) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/%s", base_dir, e->shards[s].file);
            int rc = sp_shard_verify(path, e, s, &e->shards[s], &rep->meta_keys);
            if (rc == SP_ENOMEM) return rc;
            rep->shards++;
            if (rc) {
                /* name the shard by its manifest path, not the joined one */
                const char *msg = sp_errmsg();
                size_t bl = strlen(base_dir);
                if (!strncmp(msg, base_dir, bl) && msg[bl] == '/') msg += bl + 1;
                if (rep->nproblems < SP_VERIFY_MAX_PROBLEMS)
                    snprintf(rep->problem[rep->nproblems], sizeof rep->problem[0], "%s", msg);
                if (!rep->nproblems) snprintf(first_msg, sizeof first_msg, "%s", msg);
                rep->nproblems++;
                rep->ent_problems[i]++;
                first = SP_EFORMAT;
                continue;
            }
            rep->entries += e->shards[s].count;
            rep->ent_entries[i] += e->shards[s].count;
            rep->bytes += e->shards[s].bytes;
        }
    }
    if (first) return sp_err(first, "%s%s", first_msg, rep->nproblems > 1 ? " (and more)" : "");
    return SP_OK;
}
