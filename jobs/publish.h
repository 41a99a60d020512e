/* publish: the optional last stage (DESIGN §4). Announces a date's shards on
 * Kafka: one message to kafka.publish_topic, key = the date, value = a small
 * JSON object naming <export.dir>/<date>/MANIFEST.json with its counts. */
#ifndef SP_PUBLISH_H
#define SP_PUBLISH_H

#include "stage.h"

/* Rank 0 reads the manifest and produces the message (idempotent producer,
 * acks=all, delivery checked); other ranks only add the same count. Value:
 *   {"date": "2026-11-21", "manifest": "/abs/path/MANIFEST.json",
 *    "manifest_xxh64": "<16 hex>", "counts": {"items": 123, "users": 45},
 *    "sagepipe_version": "0.1.0"}
 * Errors: SP_EUSAGE when the manifest is missing (run export first),
 * SP_EFORMAT when it is not a manifest of that date, SP_EEXTERNAL when
 * Kafka does not take the message within kafka.timeout_ms x (kafka.retries + 1). */
int sp_publish_run(const sp_run_ctx *ctx, sp_stage_result *res);

#endif
