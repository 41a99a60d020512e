/* ingest: the first stage. Parses and validates the day's input files
 * (DESIGN §3; the events from the date's Kafka window with input.events =
 * kafka), counts rejects by reason, writes the first rows of each reason
 * to rejects.tsv, shuffles rows to their owner ranks and writes one sorted,
 * deduplicated binary part per rank (sfile kind "ingest"). */
#ifndef SP_INGEST_H
#define SP_INGEST_H

#include <stdint.h>

#include "records.h"
#include "stage.h"

int sp_ingest_run(const sp_run_ctx *ctx, sp_stage_result *res);
int sp_ingest_digest(const sp_run_ctx *ctx, uint64_t *digest);

#endif
