/* sage_ckpt: the item encoder's checkpoint (sfile kind "ckpt"): model
 * dimensions, the external ids of the id-table rows, every parameter, the
 * Adam moments and the step, checksummed like every stage file. Written by
 * the train stage every epoch (temp file + rename), read by infer, and by the
 * next date's train stage for a warm start. */
#ifndef SP_SAGE_CKPT_H
#define SP_SAGE_CKPT_H

#include <stdint.h>

#include "sage.h"

#define SP_CKPT_VERSION 1

typedef struct {
    sp_sage_params P, M, V; /* parameters and Adam moments (same layout) */
    uint64_t npins;         /* rows [0, npins) of the id table are pins, the rest boards */
    uint64_t *ids;          /* (P.n) external id of each id-table row */
    float tau, tau_m, tau_v;
    int64_t step, epoch;
} sp_ckpt;

/* Writes c to path atomically; *xxh (may be NULL) gets the file digest. */
int sp_ckpt_write(const char *path, const sp_ckpt *c, uint64_t *xxh);
/* Reads path (every section checked); SP_EFORMAT naming the file on any
 * mismatch, errno (ENOENT) when absent. Free with sp_ckpt_free. */
int sp_ckpt_read(const char *path, sp_ckpt *c);
void sp_ckpt_free(sp_ckpt *c);

#endif
