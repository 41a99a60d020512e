/* graph stage: builds this rank's partition of the bipartite graph from the
 * ingest parts: pin -> boards, board -> pins and pin -> pins CSR with degree
 * pruning, neighbours resolved to global references (sfile kind "graph"). */
#ifndef SP_GRAPH_STAGE_H
#define SP_GRAPH_STAGE_H

#include <stdio.h>

#include "stage.h"

int sp_graph_run(const sp_run_ctx *ctx, sp_stage_result *res);
/* Debug/test view: loads every partition of the date (any rank count) in one
 * process and prints each kept edge by external ids, sorted:
 * "p<pin>\tb<board>" (pin side), "b<board>\tp<pin>" (board side),
 * "p<pin>\tp<pin>" (pin-pin). */
int sp_graph_dump(const sp_run_ctx *ctx, FILE *out);

#endif
