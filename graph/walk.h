/* walk: random walks with restart on the partitioned bipartite graph
 * (PinSage §3.2, DGL PinSAGESampler semantics). A walk from a source takes
 * up to `traversals` two-hop traversals (pin -> board -> pin from a pin,
 * board -> pin -> board from a board); after each traversal but the last it
 * stops with probability `stop`. A walk visits the node it reaches after
 * every step: for a pin source, boards after odd steps and pins after even
 * steps (board sources: the other way round).
 *
 * Randomness is stateless. Step s (0-based: the number of steps taken
 * before it) of walk w of source x of type t moves to neighbour
 * floor(u * deg / 2^64) (Lemire's multiply-shift) of the current node, with
 * u = sp_walk_draw(seed, t, x, w, s); after traversal k (step count 2k,
 * k < traversals) the walk stops when the draw
 * sp_walk_draw(seed, t, x, w, 0x8000 | 2k), as a double in [0, 1), is below
 * `stop` (config bounds traversals to 1000, so the two kinds of draws never
 * collide). Neighbour lists are in ascending external id order, so the visits
 * of a source are the same for any rank count and any thread count. Walkers
 * that step onto another rank's node leave this rank and continue there (the
 * caller exchanges them). */
#ifndef SP_WALK_H
#define SP_WALK_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"
#include "sp_base.h"

/* A node as the engine reads it, in one 16-byte record (never across two
 * cache lines): `od` = adjacency offset << 16 | min(degree, 0xffff) and the
 * external id, so the degree and the id of a visit come with one cache miss
 * (a degree of 0xffff or more is read from the next record's offset). */
typedef struct { uint64_t od, ext; } sp_walk_node;
#define SP_WALK_DEG_BITS 16

/* This rank's part of the graph (views into a graph partition), plus the
 * node records sp_walk_prepare builds from them (owned, sp_walk_release). */
typedef struct {
    int rank;
    uint64_t npins, nboards;
    const uint64_t *pin_ids, *board_ids; /* sorted external ids of owned nodes */
    const uint64_t *pin_off, *pin_adj;   /* pin -> boards, grefs, (npins+1) / (pin_off[npins]) */
    const uint64_t *board_off, *board_adj; /* board -> pins, grefs */
    sp_walk_node *pin_node, *board_node; /* (npins+1), (nboards+1): built by sp_walk_prepare */
} sp_walk_graph;

/* Builds the node records (16 bytes per node); required before
 * sp_walk_advance. SP_ENOMEM on failure, SP_EINPUT for an adjacency of
 * 2^48 entries or more. */
int sp_walk_prepare(sp_walk_graph *g);
void sp_walk_release(sp_walk_graph *g);

typedef struct {
    uint32_t walks;      /* walks per source (DGL default 200) */
    uint32_t traversals; /* at most this many two-hop traversals per walk (3) */
    double stop;         /* stop probability after each traversal (0.5) */
    uint64_t seed;
} sp_walk_params;

/* A walker in flight (32 bytes). An input record with step == 0 and
 * starts > 1 stands for `starts` walks of its source, walk .. walk + starts - 1
 * (the engine starts them one by one: a source's walks need one record, not
 * one each); starts 0 or 1 is one walk. */
typedef struct {
    uint64_t src;      /* source external id */
    sp_gref node;      /* current node (owned by the rank processing it) */
    uint32_t slot;     /* the source's slot at its owner (window-local) */
    uint32_t walk;     /* walk index 0..walks-1 (the first one of a multi-start record) */
    uint16_t step;     /* steps taken so far */
    uint8_t src_type;  /* SP_PIN or SP_BOARD */
    uint8_t pad;
    uint16_t starts;   /* step == 0: walks this record starts (0 and 1: one) */
    uint8_t pad2[2];
} sp_walker;
#define SP_WALK_MAX_STARTS 65535

/* A visit, reported to the source's owner (24 bytes). */
typedef struct {
    uint64_t key;      /* slot << 8 | visited node type: sorts visits by source, then type */
    uint64_t ext;      /* visited node's external id */
    sp_gref ref;       /* visited node's global reference */
} sp_visit;

/* A walk's last visit before its node id is known (engine scratch). */
typedef struct {
    uint64_t key;
    sp_gref ref;
} sp_visit_tail;

/* The uniform draw of step `step` of walk `walk` of source (type, id). */
static inline uint64_t sp_walk_draw(uint64_t seed, sp_type type, uint64_t src, uint32_t walk, uint32_t step) {
    return sp_mix64(sp_mix64(seed ^ 0x5bd1e9955bd1e995ULL) ^ sp_mix64(src ^ sp_type_salt[type]) ^
                    (((uint64_t)walk << 16 | step) * 0x9e3779b97f4a7c15ULL));
}

/* Output buffers of sp_walk_advance, growable, owned by the caller
 * (sp_walk_out_free). */
typedef struct {
    sp_visit *visits;
    size_t nvisits, capvisits;
    sp_walker *away; /* walkers now on another rank's node */
    size_t naway, capaway;
    uint64_t steps;  /* transitions taken */
    void *threads;   /* per-thread buffers kept between calls (engine-owned) */
    sp_visit_tail *tail; /* engine scratch: last visits of walks, appended with their ids after the loop */
    size_t captail;
    int nparts;      /* parts of the visits after the last call (sp_walk_out_part) */
} sp_walk_out;
void sp_walk_out_free(sp_walk_out *o);
/* Part i (0 <= i < o->nparts) of the visits: *n visits. After sp_walk_advance
 * there is one part, o->visits[0, o->nvisits); after sp_walk_advance_parts one
 * per thread, part 0 being o->visits[0, o->nvisits) and the others the engine's
 * per-thread buffers (valid until the next call or sp_walk_out_free). */
const sp_visit *sp_walk_out_part(const sp_walk_out *o, int i, size_t *n);
/* The visits in all parts. */
size_t sp_walk_out_total(const sp_walk_out *o);

/* Advances the n walkers in `w` (each on a node owned by g->rank; n counts
 * records, a multi-start record starting all its walks) until each
 * walk ends or steps onto another rank's node, using `nthreads` threads, each
 * interleaving many walkers with software prefetch. A walker with step == 0
 * sits on its source and starts there (no visit of the source); a walker with
 * step > 0 has just arrived at its node and that node's visit is not yet
 * recorded: the engine records it first (walkers in `out->away` are in that
 * state, so the receiving rank records the visit; only it knows the node's
 * external id). Appends every visit and every walker that left to `out` (in
 * an order that may depend on thread timing; results built from them do
 * not). The stop after a traversal is decided by the rank that took the
 * step: a walker in `out->away` that stopped there has step = 2 * traversals
 * (its receiver only records the visit). A dangling node (no neighbours)
 * ends the walk. Returns SP_OK,
 * SP_ENOMEM, or SP_EINTERNAL for a walker whose node is not local or whose
 * local index is out of range, or for a graph not prepared (sp_walk_prepare). */
int sp_walk_advance(const sp_walk_graph *g, const sp_walk_params *p, const sp_walker *w, size_t n, int nthreads,
                    sp_walk_out *out);
/* The same walk, but the visits of threads other than the caller's stay in
 * their per-thread buffers (parts, sp_walk_out_part) instead of being copied
 * after out->visits: on 2 threads that copy of half the visits ran on one core
 * while the other waited. Walkers that left and steps are appended to `out` as
 * by sp_walk_advance. The walks stage and bench_walks use this form. */
int sp_walk_advance_parts(const sp_walk_graph *g, const sp_walk_params *p, const sp_walker *w, size_t n,
                          int nthreads, sp_walk_out *out);

/* Neighbourhood selection for one source from its visits of one type (in
 * any order): counts visits per node, orders by (count desc, ext asc), writes
 * the top `t` (ext, ref, weight = count / sum of the kept counts) and returns
 * how many (SP_WALK_TOPT_ENOMEM, with sp_errmsg set, if scratch memory fails or n >= 2^32 - 1, which the
 * config's bounds on walks and traversals rule out); the node *self (the source, when it is of this type) is
 * excluded; self NULL excludes nothing. `ranked` (may be NULL) receives
 * all distinct visited nodes in that order (capacity >= n) for the
 * hard-negative band. */
typedef struct { uint64_t ext; sp_gref ref; float weight; uint32_t count; } sp_nbr;
/* Importance weights of a neighbour list cut to its first min(n, keep)
 * entries: visit counts L1-normalised over the kept entries, into w (0 when
 * they sum to 0). Returns the kept count. The encoder's training view
 * (jobs/sage_data.c) and its MapReduce inference (jobs/infer_stage.c) both
 * pool with these weights. */
uint64_t sp_nbr_weights(const sp_nbr *v, uint64_t n, uint64_t keep, float *w);
/* sp_walk_topt's result when its scratch memory cannot be allocated. */
#define SP_WALK_TOPT_ENOMEM ((size_t)-1)
size_t sp_walk_topt(const sp_visit *v, size_t n, const uint64_t *self, size_t t, sp_nbr *top, sp_nbr *ranked,
                    size_t *nranked);

#endif
