/* sagepipe_reader.h -- read the embeddings sagepipe publishes (docs/FORMAT.md).
 *
 * A shard set is one date's MANIFEST.json plus LMDB shard files beside it.
 * This library opens a manifest, routes a lookup by (type, id) to its shard
 * without scanning, decodes the stored vector (f32, f16 or i8) to floats, and
 * iterates every entry of an entity. Shards are opened read-only without a
 * lock file (MDB_RDONLY | MDB_NOLOCK), lazily, on first use.
 *
 * Conventions (as in LMDB):
 *  - every function that can fail returns an int: SPR_SUCCESS (0), one of
 *    the SPR_ codes below, an LMDB code (MDB_*, from lmdb.h), or an errno
 *    value; spr_strerror() describes all of them, spr_errmsg() gives the
 *    detail of the last failure in this thread (file, key, what is wrong);
 *  - results come back through out-parameters, which are left untouched on
 *    failure unless stated otherwise;
 *  - bad arguments (NULL pointers, a buffer too small) give EINVAL up front.
 *
 * Threads: a set (and its iterators) may be used by one thread at a time.
 * For concurrent lookups open one set per thread; the shards are mapped
 * read-only, so the threads share the page cache.
 *
 * Link with `pkg-config --cflags --libs sagepipe-reader`. */
#ifndef SAGEPIPE_READER_H
#define SAGEPIPE_READER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SPR_API __attribute__((visibility("default")))
#else
#define SPR_API
#endif

#define SPR_FORMAT_VERSION 1 /* the manifest format_version this library reads */

/* Error codes (the range is free in LMDB and errno). */
#define SPR_SUCCESS 0
#define SPR_NOTFOUND (-30600) /* no entry with that key; also: end of an iteration */
#define SPR_CORRUPT (-30599)  /* the manifest or a shard is malformed or fails a check */
#define SPR_VERSION (-30598)  /* manifest format_version not supported by this library */
#define SPR_NOTYPE (-30597)   /* the set holds no entity of that type, or of that name */

/* Types of keys: the first byte of a shard key. */
#define SPR_PIN 'p'
#define SPR_BOARD 'b'
#define SPR_USER 'u'

/* Flags of spr_open. */
#define SPR_VERIFY 0x1u /* check every shard fully before returning (what `sagepipe verify` checks:
                           size, xxh64, key order and routing, value sizes); reads every byte */

typedef struct spr_set spr_set;   /* an opened manifest and its shards */
typedef struct spr_iter spr_iter; /* a cursor over the entries of one entity */

/* One entity ("items": pins and boards, "users"). Strings are owned by the
 * set and valid until spr_close. */
typedef struct {
    const char *name;  /* "items", "users", ... */
    const char *types; /* the type bytes it holds, e.g. "pb" (NUL-terminated) */
    unsigned dim;      /* values per vector */
    const char *dtype; /* "f32", "f16" or "i8" (how it is stored; spr_get always gives floats) */
    uint64_t count;    /* entries */
    unsigned nshards;
} spr_entity;

/* Opens the set described by the manifest at manifest_path (shard paths are
 * relative to its directory). Checks every manifest field and that every
 * shard file exists with the listed size; with SPR_VERIFY, checks every
 * shard completely. On success *set must be closed with spr_close; on
 * failure *set is NULL and nothing needs closing.
 * Errors: ENOENT (no manifest), SPR_CORRUPT, SPR_VERSION, ENOMEM, errno values. */
SPR_API int spr_open(const char *manifest_path, unsigned flags, spr_set **set);

/* Closes the set, its shards and any iterator still open on it; every
 * pointer obtained from the set becomes invalid. NULL is fine. */
SPR_API void spr_close(spr_set *set);

/* The manifest's "date" and "model_version"; owned by the set. */
SPR_API const char *spr_date(const spr_set *set);
SPR_API const char *spr_model_version(const spr_set *set);

/* Number of entities, and entity i (0 <= i < count) into *out. EINVAL if i is out of range. */
SPR_API unsigned spr_entity_count(const spr_set *set);
SPR_API int spr_entity_get(const spr_set *set, unsigned i, spr_entity *out);
/* The entity that holds keys of `type` (SPR_PIN, ...) or SPR_NOTYPE. */
SPR_API int spr_entity_of(const spr_set *set, char type, spr_entity *out);

/* Looks up (type, id) and writes its vector, decoded to floats, to
 * vec[0..dim) (dim of the entity; cap = floats available at vec, must be
 * >= dim, else EINVAL). SPR_NOTFOUND if the id is not in the set,
 * SPR_NOTYPE if no entity holds the type. The caller owns vec. */
SPR_API int spr_get(spr_set *set, char type, uint64_t id, float *vec, size_t cap);

/* Zero-copy variant: *data points at the stored bytes (the entity's dtype
 * encoding, *len bytes), inside the read-only mapping owned by the set and
 * valid until spr_close. Do not write through it. */
SPR_API int spr_get_raw(spr_set *set, char type, uint64_t id, const void **data, size_t *len);

/* Opens an iterator over every entry of the entity named `entity`, shard by
 * shard, in key order within a shard (SPR_NOTYPE if there is no such
 * entity). Free it with spr_iter_close (or spr_close of its set). */
SPR_API int spr_iter_open(spr_set *set, const char *entity, spr_iter **it);
/* Next entry: *type, *id and its vector decoded into vec (cap >= dim, as in
 * spr_get). SPR_NOTFOUND after the last entry. Keys reserved for metadata
 * (not 9 bytes) are skipped. */
SPR_API int spr_iter_next(spr_iter *it, char *type, uint64_t *id, float *vec, size_t cap);
SPR_API void spr_iter_close(spr_iter *it); /* NULL is fine */

/* Shard index of an id (xxh64 of its 8 big-endian bytes, seed 0, modulo
 * nshards), for services that route lookups to shard servers themselves. */
SPR_API unsigned spr_shard_of(uint64_t id, unsigned nshards);

/* Parses "p123" / "b7" / "u5" into (type, id); EINVAL on anything else. */
SPR_API int spr_parse_id(const char *text, char *type, uint64_t *id);

/* A static description of any code this library returns. Never NULL. */
SPR_API const char *spr_strerror(int rc);
/* Detail of the last failure in the calling thread ("" if none); owned by
 * the library, valid until the thread's next call into it. */
SPR_API const char *spr_errmsg(void);

#ifdef __cplusplus
}
#endif
#endif
