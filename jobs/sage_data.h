/* sage_data: what the train stage reads: every walks part (neighbourhoods,
 * hard negatives, pairs), the graph parts' degrees and the ingest parts'
 * pin-board edges and content features, numbered as global nodes (pins of
 * part 0, 1, … then boards of part 0, 1, …).
 * Replicated (own_size 1): every rank holds everything (Gowalla: 70k nodes,
 * 60 MB). Owned (train.view = owned, own_size = ranks): a rank holds the
 * neighbour lists and content features only of the nodes of the walks parts p
 * with p mod own_size = own_rank, numbered locally (sp_sage_data_local); ids,
 * degrees, pairs and hard-negative bands stay replicated. The lists of the
 * other nodes a minibatch reads are fetched from their owners per step
 * (train_view.h). */
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
    /* ownership of the lists and features above: the nodes of parts p with p mod own_size = own_rank,
     * own_np pins then own_nb boards, a part's nodes at own_pbase[p] / own_np + own_bbase[p] onwards
     * (own_size 1: every node, local index = global index, and g is the whole graph) */
    int own_rank, own_size;
    uint64_t own_np, own_nb;
    uint64_t *own_pbase, *own_bbase; /* (parts) */
} sp_sage_data;

/* Loads this date's view. nbr_pins / nbr_boards truncate the neighbour lists
 * (weights renormalised); tok_rows = 0 ignores tokens. own_size <= 1: the
 * whole view; else the lists and features of own_rank's parts only (above). */
int sp_sage_data_load(const sp_run_ctx *ctx, int nbr_pins, int nbr_boards, int tok_rows, int own_rank, int own_size,
                      sp_sage_data *d);
/* The walks part of node u, the rank holding its lists and features, and its index into them (an owned node). */
int sp_sage_data_part(const sp_sage_data *d, uint32_t u);
static inline int sp_sage_data_owner(const sp_sage_data *d, uint32_t u) { return sp_sage_data_part(d, u) % d->own_size; }
uint64_t sp_sage_data_local(const sp_sage_data *d, uint32_t u);
/* Bytes of the lists and features this rank holds (the part a partitioned view divides). */
uint64_t sp_sage_data_view_bytes(const sp_sage_data *d);
void sp_sage_data_free(sp_sage_data *d);
/* Global index of (type, external id); UINT32_MAX when absent. */
uint32_t sp_sage_data_find(const sp_sage_data *d, sp_type t, uint64_t id);

#endif
