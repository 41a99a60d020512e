/* eval stage: held-out quality, drift against the previous date, training
 * curves and the quality gate; writes eval/report.json and eval/report.html. */
#ifndef SP_EVAL_STAGE_H
#define SP_EVAL_STAGE_H

#include "stage.h"

int sp_eval_run(const sp_run_ctx *ctx, sp_stage_result *res);

#endif
