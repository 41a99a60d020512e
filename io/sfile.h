/* sfile: the container for every binary stage file sagepipe writes
 * (ingest shares, graph partitions, later neighbourhoods and checkpoints).
 *
 * Layout, little-endian:
 *   header (64 bytes): magic "SPSTAGE1", u32 version (=1), u32 nsections,
 *     char kind[16] (NUL-padded, e.g. "ingest.edges"), u64 dir_offset,
 *     u64 file_bytes, u64 dir_xxh64, u64 header_xxh64 (of the 56 bytes before it)
 *   sections: raw arrays, each starting at a 64-byte aligned offset
 *   directory at dir_offset: nsections entries of 48 bytes:
 *     char tag[16], u32 elem_size, u32 reserved(0), u64 count, u64 offset,
 *     u64 xxh64 (of the section's count*elem_size bytes)
 * A reader checks magic, version, kind, header checksum, that the file size
 * equals file_bytes, the directory checksum, every section's bounds and
 * checksum. Any mismatch is SP_EFORMAT naming the file and what is wrong.
 *
 * Writers write to "<path>.tmp.<pid>", fsync, and rename over <path> on commit:
 * a reader never sees a half-written file. */
#ifndef SP_SFILE_H
#define SP_SFILE_H

#include <stdint.h>
#include <stddef.h>

#define SP_SFILE_VERSION 1u
#define SP_SFILE_TAG 16

typedef struct sp_sfile_w sp_sfile_w;
typedef struct sp_sfile_r sp_sfile_r;

int sp_sfile_create(sp_sfile_w **out, const char *path, const char *kind);
/* Starts a section; elements of elem_size bytes follow via sp_sfile_append. */
int sp_sfile_begin(sp_sfile_w *w, const char *tag, uint32_t elem_size);
int sp_sfile_append(sp_sfile_w *w, const void *data, uint64_t nelem);
int sp_sfile_end(sp_sfile_w *w);
/* Convenience: begin + append + end. */
int sp_sfile_put(sp_sfile_w *w, const char *tag, uint32_t elem_size, const void *data, uint64_t nelem);
/* Writes the directory and header, fsyncs, renames into place, frees w
 * (also on failure, after removing the temporary file). *xxh (may be NULL)
 * receives a digest of the whole file (the header checksum covers the
 * directory checksum, which covers every section's checksum). */
int sp_sfile_commit(sp_sfile_w *w, uint64_t *xxh);
void sp_sfile_discard(sp_sfile_w *w); /* removes the temporary file, frees w */

/* Reads and verifies the whole file into memory. */
int sp_sfile_open(sp_sfile_r **out, const char *path, const char *kind);
/* The section `tag`: pointer into the reader's memory (valid until close) and
 * element count. A missing section or another elem_size is SP_EFORMAT. */
int sp_sfile_get(const sp_sfile_r *r, const char *tag, uint32_t elem_size, const void **data, uint64_t *count);
/* 1 if the file has a section of that tag. */
int sp_sfile_has(const sp_sfile_r *r, const char *tag);
uint64_t sp_sfile_digest(const sp_sfile_r *r);
void sp_sfile_close(sp_sfile_r *r);

#endif
