/* walks stage: random walks with restart from every pin and every board
 * (graph/walk.h), importance neighbourhoods (top pins and top boards with
 * L1-normalised weights), hard-negative bands and training pairs, written
 * per rank (sfile kind "walks"). */
#ifndef SP_WALKS_STAGE_H
#define SP_WALKS_STAGE_H

#include <stdio.h>

#include "stage.h"

int sp_walks_run(const sp_run_ctx *ctx, sp_stage_result *res);
/* Debug/test view of every rank's tables by external id, sorted:
 * "N <src> <nbr> <count> <weight>" (neighbourhoods, src/nbr as p<id>/b<id>),
 * "H p<src> p<hard>" (hard negatives), "P p<q> p<p> <kind> <count>" (pairs). */
int sp_walks_dump(const sp_run_ctx *ctx, FILE *out);

#endif
