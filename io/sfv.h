/* sfv: the dense pin feature file (DESIGN §3).
 * Little-endian: "SFV1" magic (4 bytes), u32 version (=1), u32 dim, u64 count,
 * then count records of {u64 id, f32[dim]}. Header is 20 bytes. */
#ifndef SP_SFV_H
#define SP_SFV_H

#include <stdint.h>
#include <stdio.h>

#define SP_SFV_MAGIC "SFV1"
#define SP_SFV_VERSION 1u
#define SP_SFV_HEADER_BYTES 20u
#define SP_SFV_MAX_DIM 65536u

typedef struct sp_sfv_reader sp_sfv_reader;

/* Opens and checks the header: magic, version, 1 <= dim <= SP_SFV_MAX_DIM,
 * and file size == header + count * (8 + 4*dim). A bad file returns
 * SP_EFORMAT with the path and what is wrong in sp_errmsg (never crashes);
 * an unreadable one SP_EIO. Positions on the records of this share:
 * records [count*part/nparts, count*(part+1)/nparts). */
int sp_sfv_open(sp_sfv_reader **out, const char *path, int part, int nparts);
uint32_t sp_sfv_dim(const sp_sfv_reader *r);
uint64_t sp_sfv_count(const sp_sfv_reader *r);       /* records in the file */
uint64_t sp_sfv_share_first(const sp_sfv_reader *r); /* index of this share's first record */
uint64_t sp_sfv_share_count(const sp_sfv_reader *r);
/* Reads the next record of the share into *id and vec[dim]. Returns 1, 0 at
 * the end of the share, or an error (SP_EIO / SP_EFORMAT on a short read).
 * Does NOT reject NaN/Inf itself (the caller counts them as rejects); use
 * sp_sfv_finite to check. *index is the record's 0-based index in the file. */
int sp_sfv_next(sp_sfv_reader *r, uint64_t *index, uint64_t *id, float *vec);
int sp_sfv_finite(const float *vec, uint32_t dim);
void sp_sfv_close(sp_sfv_reader *r);

/* Writer: sp_sfv_write_begin writes a header with count 0; records follow;
 * sp_sfv_write_end seeks back, writes the real count, flushes and fsyncs.
 * Write to a temporary name and rename for atomicity (caller's job). */
typedef struct sp_sfv_writer sp_sfv_writer;
int sp_sfv_write_begin(sp_sfv_writer **out, const char *path, uint32_t dim);
int sp_sfv_write(sp_sfv_writer *w, uint64_t id, const float *vec);
int sp_sfv_write_end(sp_sfv_writer *w);   /* frees w, also on error */
void sp_sfv_write_abort(sp_sfv_writer *w); /* closes, unlinks, frees */

#endif
