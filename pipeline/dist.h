/* dist: the MPI runtime of sagepipe. One process per rank; one rank alone is a
 * valid deployment. Errors are agreed collectively at phase boundaries so that
 * every rank stops with the same exit code and a message naming the failing
 * rank; a rank that waits too long at a barrier aborts the job rather than
 * hang. The shuffle moves variable-size records to their owner ranks in
 * rounds of bounded memory (MPI_Alltoallv per round). */
#ifndef SP_DIST_H
#define SP_DIST_H

#include <stddef.h>
#include <stdint.h>

int sp_dist_init(int *argc, char ***argv);
/* MPI_Finalize (when initialised). */
void sp_dist_finalize(void);
int sp_dist_rank(void);
/* This rank's index among the ranks on its node (0 without MPI): picks its GPU. Collective. */
int sp_dist_local_rank(void);
int sp_dist_size(void);
/* Seconds a barrier or agreement may wait before the job is aborted. */
void sp_dist_set_timeout(double seconds);

/* Collective: every rank passes its local result; all ranks get back the
 * error of the lowest-numbered failing rank (SP_OK if none), and sp_errmsg()
 * on every rank becomes "rank R: <that rank's message>". Waits at most the
 * timeout, then aborts the job (exit 4) naming the ranks that did not arrive. */
int sp_dist_agree(int rc);
/* Barrier with the same timeout behaviour. */
int sp_dist_barrier(void);
/* Kills every rank with exit_code after logging msg (MPI_Abort). */
void sp_dist_abort(int exit_code, const char *msg) __attribute__((noreturn));

/* Reductions in place over all ranks. */
int sp_dist_sum_u64(uint64_t *v, int n);
int sp_dist_max_u64(uint64_t *v, int n);
int sp_dist_max_f64(double *v, int n);
int sp_dist_sum_f64(double *v, int n);
/* Element-wise sums / maxima of large arrays over all ranks, in place (in
 * chunks of 2^30 elements; every rank passes the same n). */
int sp_dist_sum_f32(float *v, size_t n);
int sp_dist_max_u8(uint8_t *v, size_t n);
/* Exclusive prefix sum over ranks (rank 0 gets 0). */
int sp_dist_exscan_u64(const uint64_t *v, uint64_t *out, int n);
/* Gathers n u64 from every rank to all ranks: out has size*n entries. */
int sp_dist_allgather_u64(const uint64_t *v, uint64_t *out, int n);
/* Gathers a variable-length byte string from every rank at rank 0:
 * *out (malloc'd, rank 0 only) holds the concatenation, lens[size] each length. */
int sp_dist_gather_bytes(const void *data, size_t len, char **out, uint64_t *lens);
int sp_dist_bcast(void *data, size_t len, int root);

/* ---- shuffle: records to destination ranks with bounded memory ----
 * Usage (collective, every rank runs the same loop):
 *   while (!all_done) {
 *       while (have_input && !sp_shuffle_full(s)) sp_shuffle_put(s, dest, rec, len);
 *       rc = sp_shuffle_exchange(s, !have_input, local_rc, &all_done);
 *   }
 * Received records are handed to `sink` in order of source rank, and within a
 * source in put order, so results do not depend on timing. */
typedef int (*sp_shuffle_sink)(void *ctx, int src_rank, const void *rec, size_t len);
typedef struct sp_shuffle sp_shuffle;
#define SP_SHUFFLE_MAX_RECORD (1u << 17) /* 128 KiB: a token row of 8192 tokens fits */
/* buffer_bytes: send memory of this rank (split over destinations); receive
 * memory is bounded by the same amount from each sender. */
int sp_shuffle_new(sp_shuffle **out, size_t buffer_bytes, sp_shuffle_sink sink, void *ctx);
/* Queues one record (len <= SP_SHUFFLE_MAX_RECORD) for dest. Never blocks. */
int sp_shuffle_put(sp_shuffle *s, int dest, const void *rec, size_t len);
/* Queues a record of len bytes for dest and returns where to write it (before
 * the next call on s); NULL (sp_errmsg set) where sp_shuffle_put fails. */
void *sp_shuffle_reserve(sp_shuffle *s, int dest, size_t len);
/* 1 when some destination's buffer cannot take a maximal record: time to exchange. */
int sp_shuffle_full(const sp_shuffle *s);
/* Collective round: sends what is queued, delivers what arrives. local_done:
 * this rank has no more input; local_rc: this rank's error (the round still
 * runs so no rank hangs). *all_done = every rank done or any failed. Returns
 * the agreed error (as sp_dist_agree), or the sink's error. */
int sp_shuffle_exchange(sp_shuffle *s, int local_done, int local_rc, int *all_done);
/* Bytes and records sent by this rank so far. */
uint64_t sp_shuffle_bytes_sent(const sp_shuffle *s);
void sp_shuffle_free(sp_shuffle *s);

#endif
