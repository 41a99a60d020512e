/* sage_data: what the train stage reads, gathered into one process: every
 * walks part (neighbourhoods, hard negatives, pairs), the graph parts' degrees
 * and the ingest parts' pin-board edges and content features, numbered as
 * global nodes (pins of part 0, 1, … then boards of part 0, 1, …).
 * Replicated on every rank: fine up to tens of millions of nodes per rank
 * (Gowalla: 70k nodes, 60 MB); the owner-sharded version for billion-node
 * graphs is described in docs/ARCHITECTURE.md and not built yet. */
#ifndef SP_SAGE_DATA_H
#define SP_SAGE_DATA_H

#include <stdint.h>

#include "sage.h"
#include "stage.h"

typedef struct { uint32_t q, p; } sp_tpair; /* query node, positive node (global indices) */

typedef struct {
    sp_sage_graph g;            /* views into the arrays below */
    uint64_t n, npins, nboards;
    int parts;                  /* rank count of the walks stage */
    uint64_t *ext;              /* (n) external ids: pins then boards */
    uint64_t *pin_base, *board_base; /* (parts + 1) first global index of each part's pins / boards (boards from 0) */
    float *logdeg;
    uint64_t *pn_off, *bn_off;
    uint32_t *pn_idx, *bn_idx;
    float *pn_w, *bn_w;
    uint64_t *hard_off; uint32_t *hard_idx; /* (npins + 1) hard-negative band per pin */
    sp_tpair *board_pin; uint64_t nboard_pin; /* board -> pin (every ingest edge) */
    sp_tpair *pin_pin; uint64_t npin_pin;     /* walk and engagement pairs */
    float *dense; int dense_dim;
    uint64_t *tok_off; uint32_t *tok_row; int tok_rows;
} sp_sage_data;

/* Loads everything for this date (every rank reads every part). nbr_pins /
 * nbr_boards truncate the neighbour lists (weights renormalised); tok_rows = 0
 * ignores tokens. */
int sp_sage_data_load(const sp_run_ctx *ctx, int nbr_pins, int nbr_boards, int tok_rows, sp_sage_data *d);
void sp_sage_data_free(sp_sage_data *d);
/* Global index of (type, external id); UINT32_MAX when absent. */
uint32_t sp_sage_data_find(const sp_sage_data *d, sp_type t, uint64_t id);

#endif
