/* graph: the partitioned bipartite pin–board graph. Each rank owns the pins
 * and boards that sp_owner() assigns it, as CSR in both directions (pin ->
 * boards, board -> pins, and the optional pin -> pins relation), with
 * neighbours stored as global references (owner rank, local index).
 * Local indices follow ascending external id, so a partition depends only on
 * the input and the rank count, never on input order. */
#ifndef SP_GRAPH_H
#define SP_GRAPH_H

#include <stdint.h>

#include "sp_base.h"

/* Global node reference: owner rank in the top 24 bits, local index in the
 * low 40 (1.1e12 nodes per rank, 16M ranks). */
typedef uint64_t sp_gref;
#define SP_GREF_LOCAL_BITS 40
static inline sp_gref sp_gref_make(int rank, uint64_t local) {
    return ((uint64_t)rank << SP_GREF_LOCAL_BITS) | local;
}
static inline int sp_gref_rank(sp_gref g) { return (int)(g >> SP_GREF_LOCAL_BITS); }
static inline uint64_t sp_gref_local(sp_gref g) { return g & ((1ULL << SP_GREF_LOCAL_BITS) - 1); }

/* Degree pruning (OmniSage): a node of degree d keeps
 * min(d, max(min(floor(d^exponent), cap), floor)) edges. */
uint64_t sp_prune_keep(uint64_t d, double exponent, uint64_t cap, uint64_t floor);

/* Keeps k of the d entries of nbr (in place, order preserved) by selection
 * sampling (Knuth's Algorithm S): every k-subset is equally likely and the
 * choice depends only on the rng state. Returns the new length min(k, d). */
uint64_t sp_prune_select(uint64_t *nbr, uint64_t d, uint64_t k, sp_rng *rng);

/* The rng stream of a node's pruning: (seed, SP_RNG_PRUNE, salted id, relation). */
void sp_prune_rng(sp_rng *r, uint64_t seed, sp_type t, uint64_t id, int relation);

/* Degree statistics, mergeable across ranks (sum the arrays). Degrees below
 * SP_DEG_EXACT are counted exactly; larger ones in log2 buckets. */
#define SP_DEG_EXACT 1024
#define SP_DEG_LOG 48
typedef struct {
    uint64_t nodes, edges, max;
    uint64_t exact[SP_DEG_EXACT];
    uint64_t log2[SP_DEG_LOG]; /* bucket b: [2^b, 2^(b+1)) for d >= SP_DEG_EXACT */
} sp_degstats;
void sp_degstats_add(sp_degstats *s, uint64_t d);
/* Element-wise sum (for merging; `max` is combined with max). */
void sp_degstats_merge(sp_degstats *into, const sp_degstats *from);
/* The q-quantile (0..1) of the degree distribution: exact below SP_DEG_EXACT,
 * the bucket's lower bound above. */
uint64_t sp_degstats_quantile(const sp_degstats *s, double q);

/* A CSR over nodes 0..n-1: neighbours of i are adj[off[i] .. off[i+1]). */
typedef struct {
    uint64_t n;
    uint64_t *off; /* (n+1) */
    uint64_t *adj; /* (off[n]) external ids while building, then grefs */
} sp_csr;

/* Builds a CSR from pairs sorted by (src, dst): ids[n] must be the sorted
 * unique source ids that the pairs use (and may hold more, isolated, nodes).
 * src/dst are read with the given stride in bytes (struct arrays).
 * Prunes every node per the rule above (relation tags the rng stream) and
 * records each node's original degree in deg[n] (may be NULL).
 * Returns SP_ENOMEM, SP_EINTERNAL if the pairs are unsorted or a src id is
 * not in ids; on success g owns its arrays (sp_csr_free). */
int sp_csr_build(sp_csr *g, const uint64_t *ids, uint64_t n, const void *pairs, uint64_t npairs, size_t stride,
                 size_t src_off, size_t dst_off, sp_type type, int relation, uint64_t seed, double exponent,
                 uint64_t cap, uint64_t floor, uint32_t *deg, sp_degstats *before, sp_degstats *after);
void sp_csr_free(sp_csr *g);

/* Index of id in the sorted array ids[n], or -1. */
int64_t sp_id_find(const uint64_t *ids, uint64_t n, uint64_t id);

#endif
