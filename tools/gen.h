/* gen: synthetic DESIGN §3 input directory with planted communities, power-law
 * board sizes and user events in one day, deterministic from the seed (the
 * library behind `sagepipe gen`). Streams board by board: memory is
 * O(boards + max board size + communities * dim), not O(edges). */
#ifndef SP_GEN_H
#define SP_GEN_H

#include <stdint.h>

typedef struct {
    uint64_t pins, boards, edges, users, events, seed;
    uint32_t dim;         /* dense feature dim, 0 = no pin_dense.sfv */
    uint32_t communities; /* 0 = auto: round(sqrt(boards)), at most pins */
    int64_t day_ms;       /* 00:00 UTC of the date the events fall in */
    int tokens;           /* write pin_tokens.tsv */
    /* Called at most ~4 times a second per file, and once at the end of each
     * file with done == total. `what` names the file. May be NULL. */
    void (*progress)(void *ctx, const char *what, uint64_t done, uint64_t total);
    void *progress_ctx;
} sp_gen_opts;

/* dim 16, date 2026-11-21, tokens 1, communities 0, seed 1, counts 0. */
void sp_gen_defaults(sp_gen_opts *o);

/* Creates out_dir (mkdir -p) and writes pin_board.tsv, pin_dense.sfv (dim > 0),
 * pin_tokens.tsv (tokens != 0) and events.tsv there, each as NAME.tmp renamed
 * into place. Identical options give identical bytes.
 * Returns SP_EUSAGE for impossible options (edges > pins*boards, edges with
 * no pins or boards, events with no users or pins, more events per user than
 * the day can hold), SP_EIO (with the path) on write errors, SP_ENOMEM. */
int sp_gen_run(const sp_gen_opts *o, const char *out_dir);

/* The edges of pin_board.tsv without writing files: calls emit(ctx, pin,
 * board) for each row of the pin_board.tsv that sp_gen_run would write with
 * the same options, in the same order (board by board). Only pins, boards,
 * edges, seed and communities matter; progress is not called. Memory is
 * O(boards + max board size). Stops at the first non-zero emit() result and
 * returns it; else SP_OK, SP_EUSAGE (edges > pins*boards, too many ids) or
 * SP_ENOMEM. */
int sp_gen_edges(const sp_gen_opts *o, int (*emit)(void *ctx, uint64_t pin, uint64_t board), void *ctx);

/* Community of pin (1..pins) under opts o (exposed for tests and eval). */
uint32_t sp_gen_pin_community(const sp_gen_opts *o, uint64_t pin);

#endif
