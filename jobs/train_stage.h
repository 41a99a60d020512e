/* train stage: multi-task, data-parallel training of the PinSage item
 * encoder; writes train/checkpoint.bin (jobs/sage_ckpt.h) and train/loss.tsv. */
#ifndef SP_TRAIN_STAGE_H
#define SP_TRAIN_STAGE_H

#include "stage.h"

int sp_train_run(const sp_run_ctx *ctx, sp_stage_result *res);
/* Input digest outside the work dir of this date: the previous date's
 * checkpoint (warm start), 0 when there is none. */
int sp_train_digest(const sp_run_ctx *ctx, uint64_t *digest);

#endif
