/* manifest: MANIFEST.json of a shard set (DESIGN §6) -- parse with every
 * field checked, write atomically, and verify a set against it (checksums,
 * sizes, counts, key length and order, routing of every key, value sizes of
 * the dtype, finite values). Shared by the export stage, `sagepipe verify`
 * and the reader library. */
#ifndef SP_MANIFEST_H
#define SP_MANIFEST_H

#include <stdint.h>

#include "shard.h"

#define SP_MANIFEST_FORMAT "sagepipe-shards"
#define SP_MANIFEST_VERSION 1
#define SP_MANIFEST_MAX_ENTITIES 8
#define SP_MANIFEST_MAX_SHARDS 65536
#define SP_MANIFEST_MAX_DIM 32768

typedef struct {
    char file[256]; /* relative to the manifest's directory */
    uint64_t count, bytes, xxh64;
} sp_manifest_shard;

typedef struct {
    char name[32];   /* "items", "users" */
    unsigned types;  /* bit mask of 1u << sp_type */
    uint32_t dim;
    sp_dtype dtype;
    uint64_t count;  /* = sum of the shards' counts */
    uint32_t nshards;
    sp_manifest_shard *shards; /* (nshards): shards[i] holds the keys routed to i */
} sp_manifest_entity;

/* Owns shards[] of each entity and eval_json; free with sp_manifest_free. */
typedef struct {
    char date[16], model_version[128], created_at[40];
    int nentities;
    sp_manifest_entity ent[SP_MANIFEST_MAX_ENTITIES];
    char *eval_json; /* the "eval" object as compact JSON (malloc'd), or NULL */
} sp_manifest;

/* Parses text[0..len) into *m (zeroed first). `what` names the file in
 * errors. SP_EFORMAT ("<what>: entities.items.shards[3].xxh64: ...") for
 * anything malformed or inconsistent (count != sum of shard counts, nshards
 * != number of shards, a type in two entities, an absolute file name or one
 * with "..", ...), SP_ENOTIMPL for a format_version other than 1,
 * SP_ENOMEM. On failure *m holds nothing to free. */
int sp_manifest_parse(sp_manifest *m, const char *text, size_t len, const char *what);
/* Reads and parses a file: SP_EUSAGE if it does not exist, SP_EIO if unreadable. */
int sp_manifest_load(sp_manifest *m, const char *path);
/* Compact JSON of m (malloc'd into *text, caller frees). */
int sp_manifest_to_json(const sp_manifest *m, char **text, size_t *len);
/* Writes m to path via temp file + fsync + rename. */
int sp_manifest_write(const sp_manifest *m, const char *path);
void sp_manifest_free(sp_manifest *m); /* frees what m owns, zeroes it */
/* Index of the entity holding type t, or -1. */
int sp_manifest_entity_of(const sp_manifest *m, sp_type t);
/* Index of the entity named name, or -1. */
int sp_manifest_entity_find(const sp_manifest *m, const char *name);

/* ---- verify ---- */

#define SP_VERIFY_MAX_PROBLEMS 16
typedef struct {
    uint64_t entries, bytes, shards;  /* checked in all */
    uint64_t meta_keys;               /* keys of other lengths than 9 (skipped) */
    uint64_t ent_entries[SP_MANIFEST_MAX_ENTITIES];
    int ent_problems[SP_MANIFEST_MAX_ENTITIES]; /* bad shards per entity */
    int nproblems;                    /* all problems found; the first ones are kept: */
    char problem[SP_VERIFY_MAX_PROBLEMS][320]; /* "items/items-00003-of-00016.mdb: xxh64 ... != manifest ..." */
} sp_verify_report;

/* Checks one shard file against its manifest entry: size and xxh64 first
 * (LMDB never opens a file that fails them), then every key: 9 bytes, a type
 * of the entity, strictly ascending, routed to `index`; every value the
 * dtype's size with finite numbers (i8: finite scale >= 0); the count.
 * Returns SP_OK, SP_EFORMAT with the problem in sp_errmsg() (file name,
 * key), or SP_ENOMEM. *meta_keys (may be NULL) counts skipped keys. */
int sp_shard_verify(const char *path, const sp_manifest_entity *e, uint32_t index, const sp_manifest_shard *s,
                    uint64_t *meta_keys);
/* Verifies every shard of every entity (files relative to base_dir) and
 * keeps going after a bad shard, so that the report names all of them.
 * SP_OK when all pass, SP_EFORMAT (sp_errmsg() = first problem) when any
 * fails, SP_ENOMEM. */
int sp_manifest_verify(const sp_manifest *m, const char *base_dir, sp_verify_report *rep);

#endif
