/* export stage: the infer stage's per-rank embeddings (and, later, the users
 * stage's) become the LMDB shards and MANIFEST.json of DESIGN §6 under
 * <export.dir>/<date>/, verified, then published by flipping `latest`
 * (unless eval.gate leaves that to the eval stage). */
#ifndef SP_EXPORT_H
#define SP_EXPORT_H

#include "stage.h"

/* Collective. Reads <date_dir>/infer/part-RRRRR-of-NNNNN.bin (sfile kind
 * "emb": "meta" u64[4] = {rank, nranks, dim, 0}, "pin_ids" u64[np],
 * "pin_vecs" f32[np*dim], "board_ids" u64[nb], "board_vecs" f32[nb*dim]),
 * any infer rank count. Shard s of each entity is written by rank
 * s % size; records reach it through sp_shuffle. Rank 0 verifies every
 * shard, writes MANIFEST.json last, and moves the set into place in one
 * rename (a reader never sees half a date); a copy of the manifest is the
 * stage's output file. Entities: "items" (pins and boards) and, by
 * export.users, none / "users" with user k = board k's vector (boards) /
 * the users stage's vectors (users: SP_ENOTIMPL until that stage exists). */
int sp_export_run(const sp_run_ctx *ctx, sp_stage_result *res);

#endif
