/* userlists: loaders for "user item item ..." text files -- the LightGCN split
 * (train.txt / test.txt) and S3Rec sequence files (Beauty.txt) -- into per-user
 * item lists (a CSR over dense user indices) for evaluation and benchmarks. */
#ifndef SP_USERLISTS_H
#define SP_USERLISTS_H

#include <stdint.h>

/* Item lists of users 0..n-1: the items of user u are idx[off[u] .. off[u+1]).
 * Users that no line names have empty rows. Owned by whoever filled it;
 * sp_lists_free releases the arrays. Other modules (sage/metrics) also read
 * a caller-built sp_lists, so the layout is public. */
typedef struct {
    uint32_t n;     /* rows: largest user index + 1 (0 for an empty list set) */
    uint32_t ncols; /* largest item index + 1 (0 when no item at all) */
    uint64_t *off;  /* (n+1) */
    uint32_t *idx;  /* (off[n]) item indices, in file order */
} sp_lists;

#define SP_NO_ITEM UINT32_MAX /* "no item" marker (never a valid index) */

enum {
    /* Fold an item repeated within one line into its first occurrence (a set,
     * e.g. LightGCN train/test); without it repeats are kept (sequences). */
    SP_LISTS_DEDUPE = 1,
    /* Accept a line that holds only a user id (a user with no items); without
     * it such a line is an error. */
    SP_LISTS_ALLOW_EMPTY = 2,
};

typedef struct {
    unsigned flags; /* SP_LISTS_* */
    /* Subtracted from every user and item id (ids below it are errors): 0 for
     * the LightGCN split (0-based), 1 for S3Rec files (1-based ids; row 0 is
     * then user 1, column 0 item 1). */
    uint32_t id_base;
    /* Ids (after id_base) must be below this (0: the 2^32 - 1 limit). Rows are indexed by user id, so a
     * file naming one user 10^9 would take gigabytes; a loader for dense ids sets a bound. */
    uint32_t max_id;
} sp_lists_opts;

/* sp_lists_load_lightgcn's bound on user and item ids: the eval stage's and `sagepipe eval`'s tables
 * take a row per id up to the largest. */
#define SP_LISTS_LIGHTGCN_MAX_ID (1u << 28)

typedef struct {
    uint64_t lines;     /* lines read */
    uint64_t users;     /* users named by a line */
    uint64_t items;     /* items kept (off[n]) */
    uint64_t dup_items; /* repeats folded by SP_LISTS_DEDUPE */
} sp_lists_stats;

/* Loads `path`: one user per line, "user item item ...", decimal ids separated
 * by spaces or tabs, an optional '\r' before the '\n'. After id_base is
 * subtracted, ids must be below 2^32 - 1; a user may appear on one line only.
 * Errors (out untouched, nothing to free):
 *   SP_EINPUT "PATH:LINE: what" for a bad line -- a token that is not a
 *     non-negative decimal integer, an id too large (opts->max_id) or below id_base, an empty
 *     line, a user without items (unless SP_LISTS_ALLOW_EMPTY), a user seen on
 *     an earlier line; also a missing file and a file with no lines;
 *   SP_EIO (unreadable), SP_ENOMEM.
 * On success *out owns its arrays (sp_lists_free). opts NULL = {0, 0};
 * stats may be NULL. Memory: 8 bytes per user up to the largest user id, plus
 * 4 bytes per item (twice while loading). */
int sp_lists_load(const char *path, const sp_lists_opts *opts, sp_lists *out, sp_lists_stats *stats);

/* The two formats of BENCHMARKS.md with their usual options:
 * LightGCN train/test (0-based, items a set, users without items allowed, ids below
 * SP_LISTS_LIGHTGCN_MAX_ID) and
 * an S3Rec sequence file (1-based ids made 0-based, order and repeats kept). */
int sp_lists_load_lightgcn(const char *path, sp_lists *out, sp_lists_stats *stats);
int sp_lists_load_s3rec(const char *path, sp_lists *out, sp_lists_stats *stats);

/* SP_EINPUT naming path when l holds no item at all (a held-out file with nothing to score: its mean
 * would read as a score of 0), else SP_OK. */
int sp_lists_need_items(const sp_lists *l, const char *path);

/* Frees the arrays and zeroes *l (NULL and a zeroed struct are fine). */
void sp_lists_free(sp_lists *l);

/* Rows [lo, hi) of l (hi clipped to l->n) as a list set of their own: offsets
 * rebased and owned by out (free out->off only), items a view into l->idx.
 * Lets a rank score its block of users with the sp_metrics functions. SP_ENOMEM. */
int sp_lists_rows(const sp_lists *l, uint32_t lo, uint32_t hi, sp_lists *out);

#endif
