/* records: the row records of ingest's stage parts (sfile kind "ingest"),
 * shared by the stages that read them and by libraries that take them as
 * input (sequence/history.c). Plain data, little-endian on disk as in memory. */
#ifndef SP_RECORDS_H
#define SP_RECORDS_H

#include <stdint.h>

/* Records of an ingest part (sections of the same names). */
typedef struct { uint64_t pin, board; int64_t ts; } sp_edge_rec;      /* "edges", by (pin, board); ts -1 = none */
typedef struct { uint64_t a, b; float w; uint32_t pad; } sp_pinpin_rec; /* "pinpin", by (a, b) */
typedef struct { uint64_t user, pin; int64_t ts; uint8_t action, surface; uint8_t pad[6]; } sp_event_rec;
/* "events", by (user, ts, pin, action); action/surface index the config vocabularies.
 * "dense_ids" u64 + "dense" f32[dim] rows by id; "tok_ids" u64, "tok_off" u64
 * (n+1), "tok_hash" u64 (xxh64 of the token text) by pin id. */

#endif
