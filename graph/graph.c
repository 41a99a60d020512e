/* graph: pruning by selection sampling, degree statistics and CSR building. */
#include "graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t sp_prune_keep(uint64_t d, double exponent, uint64_t cap, uint64_t floor_) {
    uint64_t k = (uint64_t)floor(pow((double)d, exponent));
    if (k > cap) k = cap;
    if (k < floor_) k = floor_;
    return k < d ? k : d;
}

uint64_t sp_prune_select(uint64_t *nbr, uint64_t d, uint64_t k, sp_rng *rng) {
    if (k >= d) return d;
    uint64_t kept = 0;
    for (uint64_t i = 0; i < d && kept < k; i++) {
        /* take entry i with probability (k - kept) / (d - i) */
        if (sp_rng_below(rng, d - i) < k - kept) nbr[kept++] = nbr[i];
    }
    return kept;
}

void sp_prune_rng(sp_rng *r, uint64_t seed, sp_type t, uint64_t id, int relation) {
    sp_rng_init(r, seed, SP_RNG_PRUNE + ((uint64_t)relation << 8), id ^ sp_type_salt[t]);
}

void sp_degstats_add(sp_degstats *s, uint64_t d) {
    s->nodes++;
    s->edges += d;
    if (d > s->max) s->max = d;
    if (d < SP_DEG_EXACT) s->exact[d]++;
    else s->log2[63 - __builtin_clzll(d)]++;
}

void sp_degstats_merge(sp_degstats *into, const sp_degstats *from) {
    into->nodes += from->nodes;
    into->edges += from->edges;
    if (from->max > into->max) into->max = from->max;
    for (int i = 0; i < SP_DEG_EXACT; i++) into->exact[i] += from->exact[i];
    for (int i = 0; i < SP_DEG_LOG; i++) into->log2[i] += from->log2[i];
}

uint64_t sp_degstats_quantile(const sp_degstats *s, double q) {
    if (!s->nodes) return 0;
    uint64_t target = (uint64_t)ceil(q * (double)s->nodes), seen = 0;
    if (target < 1) target = 1;
    for (int i = 0; i < SP_DEG_EXACT; i++)
        if ((seen += s->exact[i]) >= target) return (uint64_t)i;
    for (int i = 0; i < SP_DEG_LOG; i++)
        if ((seen += s->log2[i]) >= target) return 1ULL << i;
    return s->max;
}

int64_t sp_id_find(const uint64_t *ids, uint64_t n, uint64_t id) {
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && ids[lo] == id ? (int64_t)lo : -1;
}

void sp_csr_free(sp_csr *g) {
    free(g->off);
    free(g->adj);
    memset(g, 0, sizeof *g);
}

#define AT(p, i, off) (*(const uint64_t *)((const char *)(p) + (i) * stride + (off)))

int sp_csr_build(sp_csr *g, const uint64_t *ids, uint64_t n, const void *pairs, uint64_t npairs, size_t stride,
                 size_t src_off, size_t dst_off, sp_type type, int relation, uint64_t seed, double exponent,
                 uint64_t cap, uint64_t floor_, uint32_t *deg, sp_degstats *before, sp_degstats *after) {
    memset(g, 0, sizeof *g);
    g->n = n;
    g->off = malloc(sizeof *g->off * (n + 1));
    g->adj = malloc(sizeof *g->adj * (npairs ? npairs : 1));
    if (!g->off || !g->adj) {
        sp_csr_free(g);
        return sp_err(SP_ENOMEM, "graph: cannot allocate CSR of %llu nodes, %llu edges", (unsigned long long)n,
                      (unsigned long long)npairs);
    }
    uint64_t e = 0, out = 0;
    for (uint64_t i = 0; i < n; i++) {
        g->off[i] = out;
        uint64_t start = out;
        while (e < npairs && AT(pairs, e, src_off) == ids[i]) {
            uint64_t dst = AT(pairs, e, dst_off);
            if (out > start && g->adj[out - 1] >= dst) {
                sp_csr_free(g);
                return sp_err(SP_EINTERNAL, "graph: pairs not sorted/unique at node %llu", (unsigned long long)ids[i]);
            }
            g->adj[out++] = dst;
            e++;
        }
        uint64_t d = out - start;
        if (deg) deg[i] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
        if (before) sp_degstats_add(before, d);
        uint64_t k = sp_prune_keep(d, exponent, cap, floor_);
        if (k < d) {
            sp_rng r;
            sp_prune_rng(&r, seed, type, ids[i], relation);
            out = start + sp_prune_select(g->adj + start, d, k, &r);
        }
        if (after) sp_degstats_add(after, out - start);
    }
    g->off[n] = out;
    if (e != npairs) {
        sp_csr_free(g);
        return sp_err(SP_EINTERNAL, "graph: %llu pairs have a source outside the id list",
                      (unsigned long long)(npairs - e));
    }
    uint64_t *shrunk = realloc(g->adj, sizeof *g->adj * (out ? out : 1));
    if (shrunk) g->adj = shrunk;
    return SP_OK;
}
