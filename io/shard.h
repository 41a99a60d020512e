/* shard: the LMDB shard files of DESIGN §6 -- key encoding and routing, the
 * vector encodings (f32, f16, i8), whole-file xxh64, the shard writer (one
 * LMDB environment per file, keys appended in order, synced, renamed into
 * place, no lock file), and the atomic flip of the `latest` symlink.
 * The manifest and the verifier live in manifest.h. */
#ifndef SP_SHARD_H
#define SP_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "sp_base.h"

#define SP_SHARD_KEY_LEN 9 /* type byte + 8-byte big-endian id */

/* ---- keys and routing ---- */

/* key[0] = sp_type_char[t], key[1..8] = id big-endian (byte order = numeric order). */
void sp_shard_key(uint8_t key[SP_SHARD_KEY_LEN], sp_type t, uint64_t id);
/* Decodes a key; SP_EFORMAT when len != 9 or the type byte is unknown. */
int sp_shard_key_parse(const void *key, size_t len, sp_type *t, uint64_t *id);
/* Shard of an id: xxh64(8-byte big-endian id, seed 0) % nshards. The type
 * does not take part, so pin 7, board 7 and user 7 route alike. */
uint32_t sp_shard_of(uint64_t id, uint32_t nshards);
/* "p123" / "b7" / "u5" <-> (type, id). parse: SP_EUSAGE on anything else
 * (no sign, no spaces, decimal id that fits uint64). */
int sp_shard_id_parse(const char *text, sp_type *t, uint64_t *id);
/* Type from its manifest name ("pin", "board", "user"); -1 if unknown. */
int sp_type_from_name(const char *name);

/* ---- value encodings (all little-endian) ---- */

typedef enum { SP_DT_F32 = 0, SP_DT_F16 = 1, SP_DT_I8 = 2 } sp_dtype;
/* "f32" / "f16" / "i8" -> dtype; -1 if unknown. */
int sp_dtype_parse(const char *s);
const char *sp_dtype_name(sp_dtype dt);
/* Bytes of one encoded vector: f32 4*dim, f16 2*dim, i8 4 + dim. */
size_t sp_dtype_bytes(sp_dtype dt, uint32_t dim);

/* IEEE 754 binary16 <-> binary32. f32 -> f16 rounds to nearest, ties to
 * even; overflow gives +-inf, tiny values subnormals or +-0; NaN stays a
 * (quiet) NaN. f16 -> f32 is exact. */
uint16_t sp_f32_to_f16(float f);
float sp_f16_to_f32(uint16_t h);

/* Encodes x (dim, finite values) into out (sp_dtype_bytes bytes).
 * i8: scale = max|x| / 127 as a leading f32, then q_j = round(x_j / scale)
 * clamped to [-127, 127] (scale 0 and q 0 for an all-zero vector); decoding
 * is q_j * scale, so the error per value is at most scale / 2. */
void sp_vec_encode(sp_dtype dt, const float *x, uint32_t dim, void *out);
/* Decodes sp_dtype_bytes bytes at in into out (dim). */
void sp_vec_decode(sp_dtype dt, const void *in, uint32_t dim, float *out);

/* xxh64 (seed 0) and size of a whole file, read in a streaming loop.
 * SP_EIO naming the file on failure (ENOENT too). */
int sp_file_xxh64(const char *path, uint64_t *xxh, uint64_t *bytes);

/* ---- reader ---- */

/* Opens a published shard read-only (MDB_RDONLY | MDB_NOLOCK | MDB_NOSUBDIR, mapped to its manifest size
 * `bytes` plus room) into *env, and checks
 * that the file holds every page its LMDB header counts: a file cut short in a page LMDB would read past
 * its end as zeros (or fault on). Returns 0, or an LMDB code (MDB_CORRUPTED for a short file) or errno
 * value, with sp_errmsg naming the file; *env is NULL then. */
struct MDB_env;
int sp_shard_r_open(struct MDB_env **env, const char *path, uint64_t bytes);
/* LMDB checks parts of a page's structure by assertion and aborts the process when one fails (a damaged
 * shard). A reader that wants to end otherwise sets a hook, called with LMDB's message for every shard
 * opened after it is set; the hook must not return (LMDB aborts when it does). NULL: LMDB's default. */
void sp_shard_r_assert_hook(void (*fn)(const char *msg));
/* The path of the shard sp_shard_r_open opened last ("" before any): a fixed buffer, so that a fault
 * handler may write(2) it. */
const char *sp_shard_r_last(void);

/* ---- writer ---- */

typedef struct sp_shard_w sp_shard_w;
/* What a committed shard holds (the manifest's shard entry). */
typedef struct {
    uint64_t count, bytes, xxh64;
} sp_shard_info;

/* Creates "<path>.tmp.<pid>" as a fresh LMDB environment in one file
 * (MDB_NOSUBDIR | MDB_NOLOCK, no lock file) for vectors of `dim` values of
 * `dt`. expected: the number of entries that will be put; it sizes the map
 * (the map grows between transactions if more arrive). On failure *out is
 * NULL and nothing is left on disk. */
int sp_shard_w_open(sp_shard_w **out, const char *path, uint32_t dim, sp_dtype dt, uint64_t expected);
/* Appends one entry; keys must arrive in strictly ascending order: a key
 * equal to the previous one is SP_EINPUT ("duplicate p123"), a smaller one
 * SP_EINTERNAL. vec: dim floats, encoded with the writer's dtype. */
int sp_shard_w_put(sp_shard_w *w, sp_type t, uint64_t id, const float *vec);
/* Same with a ready key and an already encoded value of sp_dtype_bytes bytes. */
int sp_shard_w_put_enc(sp_shard_w *w, const uint8_t key[SP_SHARD_KEY_LEN], const void *val);
/* Commits the last transaction, syncs the file, closes the environment,
 * removes any "-lock" file, renames the file to `path` and fsyncs its
 * directory; *info (may be NULL) gets count, size and xxh64 of the file.
 * Frees w also on failure (then the temporary file is removed). */
int sp_shard_w_commit(sp_shard_w *w, sp_shard_info *info);
/* Abandons the shard: removes the temporary file, frees w. NULL is fine. */
void sp_shard_w_discard(sp_shard_w *w);

/* ---- publishing ---- */

/* The date directory of export_dir that its `latest` link points to, however the link is written
 * ("2026-11-21", "./2026-11-21/", an absolute path): 1 with the date in date[] (NUL-terminated), 0 when
 * there is no link or it resolves elsewhere. A dangling link gives its last component if that is a date. */
int sp_shard_latest_date(const char *export_dir, char date[11]);
/* "<entity>/<entity>-SSSSS-of-NNNNN.mdb": a shard's path relative to the date directory. */
void sp_shard_file_name(const char *entity, uint32_t shard, uint32_t nshards, char *out, size_t cap);
/* Points <export_dir>/latest at <date> atomically: a symlink "<date>" is
 * made under a temporary name and renamed over `latest`, so a reader sees
 * the old or the new target, never none. Refuses (SP_EUSAGE) a date
 * directory without MANIFEST.json, a date with '/' in it, or a `latest` that
 * is not a symlink. `latest` never moves back: when it points at a later
 * date whose set is there (a backfill of an older date), it stays, SP_OK is
 * returned and that date is copied to `later` (else `later` is ""; it may
 * be NULL). The export stage calls it after verify, unless eval.gate is on;
 * then the eval stage calls it when the gate passes. */
int sp_shard_flip_latest(const char *export_dir, const char *date, char *later, size_t later_cap);
/* SP_EUSAGE (naming it) when <export_dir>/latest exists and is not a symlink, so that it could not be
 * flipped: what sp_shard_flip_latest refuses, for a caller to check before it moves anything. */
int sp_shard_latest_check(const char *export_dir);

#endif
