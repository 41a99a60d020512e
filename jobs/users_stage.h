/* users stage: lifelong user histories and user embeddings (DESIGN §4,
 * §4.1 "User encoder"). Appends the day's events to each owned user's
 * history, trains the causal transformer user encoder on the frozen item
 * embeddings of the infer stage (starting from the model the train stage
 * trained with the item encoder in joint mode, else from the previous
 * date's), encodes the users active in the day's window and carries the
 * others over from the previous date, or re-encodes everyone with --full or
 * whenever the encoder or the item embeddings changed. */
#ifndef SP_USERS_STAGE_H
#define SP_USERS_STAGE_H

#include <stdint.h>

#include "stage.h"

int sp_users_run(const sp_run_ctx *ctx, sp_stage_result *res);
/* Input digest outside the date's stage chain: the previous users stage's marker (history and model). */
int sp_users_digest(const sp_run_ctx *ctx, uint64_t *digest);

/* Every user embedding of the date's users parts (any rank count), each part
 * read and verified once; ids ascending within a part. Free with sp_user_set_free. */
typedef struct {
    uint64_t n;
    int d;
    uint64_t *ids;
    float *vec; /* (n, d) */
} sp_user_set;
int sp_users_load(const sp_run_ctx *ctx, sp_user_set *u);

/* One users part of ctx's date (sfile "uemb": meta {rank, nranks, dim, encoder version}, user_ids,
 * user_vecs), opened and checked; pointers valid until sp_users_part_close. */
struct sp_sfile_r;
typedef struct {
    struct sp_sfile_r *f;
    const uint64_t *ids;
    const float *vec;
    uint64_t n, version;
    int d;
} sp_users_part;
int sp_users_part_open(const sp_run_ctx *ctx, int p, int nparts, sp_users_part *u);
void sp_users_part_close(sp_users_part *u);
/* Debug/test view: every user vector of the date's users parts (any rank count), "u<id> v v ...", sorted. */
#include <stdio.h>
int sp_users_dump(const sp_run_ctx *ctx, FILE *out);
void sp_user_set_free(sp_user_set *u);

#endif
