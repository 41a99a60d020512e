/* infer stage: layer-wise (MapReduce) inference of every pin and board from
 * the train checkpoint; writes infer/part-RRRRR-of-NNNNN.bin (sfile kind
 * "emb": sections meta u64[4] = {rank, ranks, dim, 0}, pin_ids u64, pin_vecs
 * f32 (pins x dim), board_ids u64, board_vecs f32). Runs on the rank count of
 * the walks stage. */
#ifndef SP_INFER_STAGE_H
#define SP_INFER_STAGE_H

#include "stage.h"

int sp_infer_run(const sp_run_ctx *ctx, sp_stage_result *res);
/* Debug/test view: every embedding of the date's infer parts (any rank
 * count), one line per node "p<id>" / "b<id>" and its values (%.6g), sorted. */
#include <stdio.h>
int sp_infer_dump(const sp_run_ctx *ctx, FILE *out);
/* The same view computed in one process from the train checkpoint by
 * sp_sage_embed_all (no MapReduce): the reference the infer stage must equal. */
int sp_infer_dump_reference(const sp_run_ctx *ctx, FILE *out);

#endif
