/* ingest: the first stage. Parses and validates the day's input files
 * (DESIGN §3; the events from the date's Kafka window with input.events =
 * kafka), counts rejects by reason, writes the first rows of each reason
 * to rejects.tsv, shuffles rows to their owner ranks and writes one sorted,
 * deduplicated binary part per rank (sfile kind "ingest"). */
#ifndef SP_INGEST_H
#define SP_INGEST_H

#include <stdint.h>

#include "stage.h"

/* Records of an ingest part (sections of the same names). */
typedef struct { uint64_t pin, board; int64_t ts; } sp_edge_rec;      /* "edges", by (pin, board); ts -1 = none */
typedef struct { uint64_t a, b; float w; uint32_t pad; } sp_pinpin_rec; /* "pinpin", by (a, b) */
typedef struct { uint64_t user, pin; int64_t ts; uint8_t action, surface; uint8_t pad[6]; } sp_event_rec;
/* "events", by (user, ts, pin, action); action/surface index the config vocabularies.
 * "dense_ids" u64 + "dense" f32[dim] rows by id; "tok_ids" u64, "tok_off" u64
 * (n+1), "tok_hash" u64 (xxh64 of the token text) by pin id. */

int sp_ingest_run(const sp_run_ctx *ctx, sp_stage_result *res);
int sp_ingest_digest(const sp_run_ctx *ctx, uint64_t *digest);

#endif
