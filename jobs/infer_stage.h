/* infer stage: layer-wise (MapReduce) inference of every pin and board from
 * the train checkpoint; writes infer/part-RRRRR-of-NNNNN.bin (sfile kind
 * "emb": sections meta u64[4] = {rank, ranks, dim, 0}, pin_ids u64, pin_vecs
 * f32 (pins x dim), board_ids u64, board_vecs f32). Runs on the rank count of
 * the walks stage. */
#ifndef SP_INFER_STAGE_H
#define SP_INFER_STAGE_H

#include "stage.h"

int sp_infer_run(const sp_run_ctx *ctx, sp_stage_result *res);
/* Every embedding of the date's infer parts (any rank count), in memory:
 * [0] pins, [1] boards, part by part; vec rows of d floats. Each part is read
 * (and verified) once. Free with sp_emb_set_free (also after an error). */
typedef struct {
    uint64_t n[2];
    uint64_t *ids[2];
    float *vec[2];
    int d;
} sp_emb_set;
int sp_infer_load(const sp_run_ctx *ctx, sp_emb_set *e);
/* Only the parts p with p % size == rank (part p holds the nodes owned by rank p of the infer stage's
 * rank count); e->d stays 0 when there are none. */
int sp_infer_load_parts(const sp_run_ctx *ctx, int rank, int size, sp_emb_set *e);
void sp_emb_set_free(sp_emb_set *e);
/* Debug/test view: every embedding of the date's infer parts (any rank
 * count), one line per node "p<id>" / "b<id>" and its values (%.6g), sorted. */
#include <stdio.h>
int sp_infer_dump(const sp_run_ctx *ctx, FILE *out);
/* One dump line "<type><id> v v v ..." (%.6g) into lines (the dump views' shared format). */
#include "lines.h"
int sp_emb_line(sp_lines *lines, char type, uint64_t id, const float *v, int d);
/* The same view computed in one process from the train checkpoint by
 * sp_sage_embed_all (no MapReduce): the reference the infer stage must equal. */
int sp_infer_dump_reference(const sp_run_ctx *ctx, FILE *out);

#endif
