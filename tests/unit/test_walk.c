/* test_walk: the random-walk engine (graph/walk.h) on small in-memory graphs.
 *  1. sp_walk_advance equals an independent, simple reference walker that uses
 *     the same draws (same visit multiset per source, same step count) at 1, 2
 *     and 4 threads, for pin and board sources, walker order shuffled; every
 *     visit's ref is the gref of its ext; every reference step is an edge.
 *  2. Visit counts match the exact expectation of the walk process (truncated
 *     PPR by matrix products) within 5 sd, top-10 overlap >= 0.9.
 *  3. One traversal: the boards of a pin are hit uniformly (chi-square).
 *  4. Edge cases: isolated source, one-pin board, stop 1 / stop 0,
 *     traversals 0, no walkers.
 *  5. sp_walk_topt on hand-built visits.
 *  7. Degrees the node record cannot hold (>= 0xffff, read from the next
 *     record): boards of 65534, 65535 and 70000 pins walk as the reference
 *     does; an adjacency of 2^48 entries is SP_EINPUT at sp_walk_prepare.
 *  6. A non-local walker is SP_EINTERNAL; walkers resumed mid-walk (step > 0:
 *     just arrived, visit pending, as walk.c documents) continue exactly as
 *     the uninterrupted walk.
 * Draws (the engine's contract, see the lead's brief): step s (steps taken
 * so far = s) picks adj[off + ((u * deg) >> 64)] with u = sp_walk_draw(seed,
 * src_type, src, walk, s); after traversal k < traversals (steps taken = 2k)
 * the walk stops iff (u2 >> 11) * 2^-53 < stop, u2 = sp_walk_draw(seed,
 * src_type, src, walk, 0x8000 | 2k). */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "graph.h"
#include "walk.h"

#define NBR_DRAW(steps_taken) ((uint32_t)(steps_taken))
#define STOP_DRAW(steps_taken) (0x8000u | (uint32_t)(steps_taken))

static sp_type other(sp_type t) { return t == SP_PIN ? SP_BOARD : SP_PIN; }

/* ---------------------------------------------------------------- graphs */

typedef struct {
    sp_walk_graph g;
    uint64_t *pin_ids, *board_ids, *pin_off, *pin_adj, *board_off, *board_adj;
} tgraph;

/* Builds a rank-0 graph from an np x nb 0/1 incidence matrix inc[i * nb + j].
 * Pin i has id 100 + 3i, board j has id 5000 + 7j (ascending with the index,
 * so lists in index order are in ascending external id order). */
static void tg_build(tgraph *G, uint64_t np, uint64_t nb, const unsigned char *inc) {
    memset(G, 0, sizeof *G);
    G->pin_ids = malloc(sizeof(uint64_t) * (np + 1));
    G->board_ids = malloc(sizeof(uint64_t) * (nb + 1));
    G->pin_off = calloc(np + 1, sizeof(uint64_t));
    G->board_off = calloc(nb + 1, sizeof(uint64_t));
    uint64_t m = 0;
    for (uint64_t i = 0; i < np * nb; i++) m += inc[i] != 0;
    G->pin_adj = malloc(sizeof(uint64_t) * (m + 1));
    G->board_adj = malloc(sizeof(uint64_t) * (m + 1));
    for (uint64_t i = 0; i < np; i++) G->pin_ids[i] = 100 + 3 * i;
    for (uint64_t j = 0; j < nb; j++) G->board_ids[j] = 5000 + 7 * j;
    uint64_t e = 0;
    for (uint64_t i = 0; i < np; i++) {
        G->pin_off[i] = e;
        for (uint64_t j = 0; j < nb; j++)
            if (inc[i * nb + j]) G->pin_adj[e++] = sp_gref_make(0, j);
    }
    G->pin_off[np] = e;
    e = 0;
    for (uint64_t j = 0; j < nb; j++) {
        G->board_off[j] = e;
        for (uint64_t i = 0; i < np; i++)
            if (inc[i * nb + j]) G->board_adj[e++] = sp_gref_make(0, i);
    }
    G->board_off[nb] = e;
    G->g = (sp_walk_graph){.rank = 0, .npins = np, .nboards = nb, .pin_ids = G->pin_ids, .board_ids = G->board_ids,
                           .pin_off = G->pin_off, .pin_adj = G->pin_adj, .board_off = G->board_off,
                           .board_adj = G->board_adj};
    if (sp_walk_prepare(&G->g)) abort();
}

static void tg_free(tgraph *G) {
    sp_walk_release(&G->g);
    free(G->pin_ids);
    free(G->board_ids);
    free(G->pin_off);
    free(G->pin_adj);
    free(G->board_off);
    free(G->board_adj);
}

static const uint64_t *tg_off(const tgraph *G, sp_type t) { return t == SP_PIN ? G->pin_off : G->board_off; }
static const uint64_t *tg_adj(const tgraph *G, sp_type t) { return t == SP_PIN ? G->pin_adj : G->board_adj; }
static const uint64_t *tg_ids(const tgraph *G, sp_type t) { return t == SP_PIN ? G->pin_ids : G->board_ids; }
static uint64_t tg_n(const tgraph *G, sp_type t) { return t == SP_PIN ? G->g.npins : G->g.nboards; }
static uint64_t tg_deg(const tgraph *G, sp_type t, uint64_t i) {
    return tg_off(G, t)[i + 1] - tg_off(G, t)[i];
}

/* ------------------------------------------------------ reference walker */

typedef struct { sp_type type; uint64_t local; } rnode;
#define MAXPATH 64

/* Plain one-walker-at-a-time reference: continues walk `w` of source
 * (st, src) from node `local` (of the type that step parity gives) with
 * `step` steps taken; writes every node reached to path and returns the
 * number of steps taken. */
static size_t ref_walk(const tgraph *G, const sp_walk_params *p, sp_type st, uint64_t src, uint32_t w, uint64_t local,
                       unsigned step, rnode *path) {
    size_t n = 0;
    const unsigned maxs = 2 * p->traversals;
    while (step < maxs) {
        sp_type ct = (step & 1) ? other(st) : st;
        uint64_t deg = tg_deg(G, ct, local);
        if (!deg) break;
        uint64_t u = sp_walk_draw(p->seed, st, src, w, NBR_DRAW(step));
        uint64_t idx = (uint64_t)(((unsigned __int128)u * deg) >> 64);
        local = sp_gref_local(tg_adj(G, ct)[tg_off(G, ct)[local] + idx]);
        step++;
        if (n < MAXPATH) path[n] = (rnode){other(ct), local};
        n++;
        if (!(step & 1) && step < maxs) {
            uint64_t u2 = sp_walk_draw(p->seed, st, src, w, STOP_DRAW(step));
            if ((double)(u2 >> 11) * 0x1.0p-53 < p->stop) break;
        }
    }
    return n;
}

/* Binary search: tg_build's lists are in ascending local index (rank-0 grefs). */
static int is_edge(const tgraph *G, rnode a, rnode b) {
    if (a.type == b.type) return 0;
    const uint64_t *off = tg_off(G, a.type), *adj = tg_adj(G, a.type), want = sp_gref_make(0, b.local);
    uint64_t lo = off[a.local], hi = off[a.local + 1];
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (adj[mid] < want) lo = mid + 1;
        else hi = mid;
    }
    return lo < off[a.local + 1] && adj[lo] == want;
}

static int cmp_visit(const void *x, const void *y) {
    const sp_visit *a = x, *b = y;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    if (a->ext != b->ext) return a->ext < b->ext ? -1 : 1;
    return a->ref < b->ref ? -1 : a->ref > b->ref;
}

typedef struct { sp_visit *v; size_t n, cap; } vbuf;
static void vb_push(vbuf *b, uint64_t key, uint64_t ext, sp_gref ref) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1024;
        b->v = realloc(b->v, sizeof *b->v * b->cap);
    }
    b->v[b->n++] = (sp_visit){.key = key, .ext = ext, .ref = ref};
}

/* Appends the visits of a reference path (slot's key) to b. */
static void push_path(vbuf *b, const tgraph *G, uint32_t slot, const rnode *path, size_t n) {
    for (size_t i = 0; i < n && i < MAXPATH; i++)
        vb_push(b, (uint64_t)slot << 8 | path[i].type, tg_ids(G, path[i].type)[path[i].local],
                sp_gref_make(0, path[i].local));
}

/* Every visit's ref is the gref of its ext, and its type is a real type. */
static int refs_consistent(const tgraph *G, const sp_visit *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t t = v[i].key & 0xff;
        if (t != SP_PIN && t != SP_BOARD) return 0;
        int64_t idx = sp_id_find(tg_ids(G, (sp_type)t), tg_n(G, (sp_type)t), v[i].ext);
        if (idx < 0 || v[i].ref != sp_gref_make(0, (uint64_t)idx)) return 0;
    }
    return 1;
}

/* Compares the engine's visits (sorted in place) with the reference's. */
static int same_visits(sp_visit *eng, size_t ne, sp_visit *ref, size_t nr, const char *what) {
    qsort(eng, ne, sizeof *eng, cmp_visit);
    qsort(ref, nr, sizeof *ref, cmp_visit);
    if (ne != nr) {
        fprintf(stderr, "  %s: engine %zu visits, reference %zu\n", what, ne, nr);
        return 0;
    }
    for (size_t i = 0; i < ne; i++)
        if (cmp_visit(&eng[i], &ref[i])) {
            fprintf(stderr, "  %s: first difference at %zu: engine (slot %llu type %llu ext %llu), "
                            "reference (slot %llu type %llu ext %llu)\n", what, i,
                    (unsigned long long)(eng[i].key >> 8), (unsigned long long)(eng[i].key & 0xff),
                    (unsigned long long)eng[i].ext, (unsigned long long)(ref[i].key >> 8),
                    (unsigned long long)(ref[i].key & 0xff), (unsigned long long)ref[i].ext);
            return 0;
        }
    return 1;
}

/* After sp_walk_advance of `ws` into *out (visits equal to ref): the parts
 * form on the same buffers has the expected part count and its parts together
 * are the same visits; the gathered form after it has one part again. */
static void check_parts(const tgraph *G, const sp_walk_params *p, const sp_walker *ws, size_t nw, int threads,
                        uint64_t ref_steps, vbuf *ref, const char *what, sp_walk_out *out) {
    CHECK_EQ_U64(out->nparts, 1);
    out->nvisits = out->naway = 0;
    out->steps = 0;
    CHECK_RC(sp_walk_advance_parts(&G->g, p, ws, nw, threads, out), SP_OK);
    int want_parts = (size_t)threads > nw / 128 + 1 ? (int)(nw / 128 + 1) : threads; /* the engine's BATCH */
    CHECK_EQ_U64(out->nparts, (uint64_t)want_parts);
    CHECK_EQ_U64(out->naway, 0);
    CHECK_EQ_U64(out->steps, ref_steps);
    size_t total = 0, pn, want = sp_walk_out_total(out);
    sp_visit *all = malloc(sizeof *all * (want ? want : 1));
    for (int i = 0; i < out->nparts; i++) {
        const sp_visit *pv = sp_walk_out_part(out, i, &pn);
        if (pn && total + pn <= want) memcpy(all + total, pv, sizeof *all * pn);
        total += pn;
    }
    CHECK_EQ_U64(total, want);
    CHECK(sp_walk_out_part(out, out->nparts, &pn) == NULL && pn == 0);
    CHECK_MSG(same_visits(all, total, ref->v, ref->n, what), "parts: %s", what);
    free(all);
    out->nvisits = out->naway = 0;
    out->steps = 0;
    CHECK_RC(sp_walk_advance(&G->g, p, ws, nw, threads, out), SP_OK);
    CHECK_EQ_U64(out->nparts, 1);
    CHECK_MSG(same_visits(out->visits, out->nvisits, ref->v, ref->n, what), "again: %s", what);
}

static void shuffle(sp_walker *w, size_t n, sp_rng *r) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)sp_rng_below(r, i);
        sp_walker t = w[i - 1];
        w[i - 1] = w[j];
        w[j] = t;
    }
}

static sp_walker mk_walker(uint64_t src, sp_type st, uint64_t local, uint32_t slot, uint32_t walk, uint16_t step) {
    sp_walker w;
    memset(&w, 0, sizeof w);
    w.src = src;
    w.node = sp_gref_make(0, local);
    w.slot = slot;
    w.walk = walk;
    w.step = step;
    w.src_type = (uint8_t)st;
    return w;
}

/* --------------------------------------------------- 1. reference equality */

/* Random bipartite graph: 300 pins, 60 boards, board j of size ~ 150/(j+1)^0.9
 * (power law), board 0 holds 260 pins, pins 0..4 isolated. */
static void build_big(tgraph *G) {
    enum { NP = 300, NB = 60 };
    unsigned char *inc = calloc(NP * NB, 1);
    sp_rng r;
    sp_rng_init(&r, 42, 7, 1);
    for (int j = 0; j < NB; j++) {
        uint64_t size = j == 0 ? 260 : 1 + (uint64_t)(150.0 / pow(j + 1, 0.9));
        for (uint64_t k = 0; k < size;) { /* size distinct pins */
            unsigned char *c = &inc[(5 + sp_rng_below(&r, NP - 5)) * NB + j];
            if (!*c) *c = 1, k++;
        }
    }
    /* pins 5.. with no board get one random board (so only 0..4 are isolated) */
    for (int i = 5; i < NP; i++) {
        int any = 0;
        for (int j = 0; j < NB; j++) any |= inc[i * NB + j];
        if (!any) inc[i * NB + 1 + sp_rng_below(&r, NB - 1)] = 1;
    }
    tg_build(G, NP, NB, inc);
    free(inc);
}

/* Runs all sources of both types through the engine and the reference. */
static void test_reference(const tgraph *G, const sp_walk_params *p) {
    const uint32_t W = p->walks;
    size_t nw = (size_t)(G->g.npins + G->g.nboards) * W;
    sp_walker *ws = malloc(sizeof *ws * nw);
    vbuf ref = {0};
    uint64_t ref_steps = 0, nonedge = 0;
    size_t k = 0;
    rnode path[MAXPATH];
    for (int t = 0; t < 2; t++) {
        sp_type st = t ? SP_BOARD : SP_PIN;
        for (uint64_t i = 0; i < tg_n(G, st); i++) {
            uint64_t src = tg_ids(G, st)[i];
            uint32_t slot = (uint32_t)(t ? 1000 + i : i);
            for (uint32_t w = 0; w < W; w++) {
                ws[k++] = mk_walker(src, st, i, slot, w, 0);
                size_t n = ref_walk(G, p, st, src, w, i, 0, path);
                CHECK(n <= 2 * p->traversals);
                ref_steps += n;
                rnode prev = {st, i};
                for (size_t s = 0; s < n; s++) {
                    if (!is_edge(G, prev, path[s])) nonedge++;
                    prev = path[s];
                }
                push_path(&ref, G, slot, path, n);
            }
        }
    }
    CHECK_EQ_U64(nonedge, 0);
    CHECK_EQ_U64(ref_steps, ref.n);
    sp_rng r;
    sp_rng_init(&r, 3, 3, p->seed);
    const int threads[] = {1, 2, 4};
    for (int ti = 0; ti < 3; ti++) {
        shuffle(ws, nw, &r);
        sp_walk_out out;
        memset(&out, 0, sizeof out);
        CHECK_RC(sp_walk_advance(&G->g, p, ws, nw, threads[ti], &out), SP_OK);
        CHECK_EQ_U64(out.naway, 0);
        CHECK_EQ_U64(out.steps, ref_steps);
        CHECK(refs_consistent(G, out.visits, out.nvisits));
        char what[96];
        snprintf(what, sizeof what, "T=%u stop=%g seed=%llu threads=%d", p->traversals, p->stop,
                 (unsigned long long)p->seed, threads[ti]);
        CHECK_MSG(same_visits(out.visits, out.nvisits, ref.v, ref.n, what), "%s", what);
        check_parts(G, p, ws, nw, threads[ti], ref_steps, &ref, what, &out);
        sp_walk_out_free(&out);
    }
    /* multi-start records: a source's walks as one record (walk 0, starts W), or for odd sources two
     * (walk 0 alone, then 1 .. W-1), shuffled: the same visits at every thread count */
    size_t nm = 0;
    for (int t = 0; t < 2; t++) {
        sp_type st = t ? SP_BOARD : SP_PIN;
        for (uint64_t i = 0; i < tg_n(G, st); i++) {
            sp_walker m = mk_walker(tg_ids(G, st)[i], st, i, (uint32_t)(t ? 1000 + i : i), 0, 0);
            if (i & 1 && W > 1) {
                ws[nm++] = m; /* starts 0: one walk */
                m.walk = 1, m.starts = (uint16_t)(W - 1);
            } else m.starts = (uint16_t)W;
            ws[nm++] = m;
        }
    }
    for (int ti = 0; ti < 3; ti++) {
        shuffle(ws, nm, &r);
        sp_walk_out out;
        memset(&out, 0, sizeof out);
        CHECK_RC(sp_walk_advance_parts(&G->g, p, ws, nm, threads[ti], &out), SP_OK);
        CHECK_EQ_U64(out.steps, ref_steps);
        size_t total = sp_walk_out_total(&out), pn, at = 0;
        sp_visit *all = malloc(sizeof *all * (total ? total : 1));
        for (int i = 0; i < out.nparts; i++) {
            const sp_visit *pv = sp_walk_out_part(&out, i, &pn);
            if (pn && at + pn <= total) memcpy(all + at, pv, sizeof *all * pn);
            at += pn;
        }
        char what[96];
        snprintf(what, sizeof what, "multi-start T=%u seed=%llu threads=%d", p->traversals,
                 (unsigned long long)p->seed, threads[ti]);
        CHECK_MSG(same_visits(all, total, ref.v, ref.n, what), "%s", what);
        free(all);
        sp_walk_out_free(&out);
    }
    free(ref.v);
    free(ws);
}

/* ----------------------------------------------------- 2. exact expectation */

/* Expected visit counts per walk of a source s of type st: expS over the
 * source's side (even steps), expO over the other side (odd steps). */
static void expected(const tgraph *G, const sp_walk_params *p, sp_type st, uint64_t s, double *expS, double *expO) {
    sp_type ot = other(st);
    uint64_t nS = tg_n(G, st), nO = tg_n(G, ot);
    double *pi = calloc(nS, sizeof(double)), *q = calloc(nO, sizeof(double)), *nx = calloc(nS, sizeof(double));
    for (uint64_t i = 0; i < nS; i++) expS[i] = 0;
    for (uint64_t j = 0; j < nO; j++) expO[j] = 0;
    pi[s] = 1;
    double wk = 1;
    for (uint32_t k = 1; k <= p->traversals; k++) {
        /* q = pi * (S -> O uniform): a dangling node loses its mass */
        for (uint64_t j = 0; j < nO; j++) q[j] = 0;
        for (uint64_t i = 0; i < nS; i++) {
            uint64_t d = tg_deg(G, st, i);
            for (uint64_t e = tg_off(G, st)[i]; e < tg_off(G, st)[i + 1]; e++)
                q[sp_gref_local(tg_adj(G, st)[e])] += pi[i] / (double)d;
        }
        for (uint64_t i = 0; i < nS; i++) nx[i] = 0;
        for (uint64_t j = 0; j < nO; j++) {
            uint64_t d = tg_deg(G, ot, j);
            for (uint64_t e = tg_off(G, ot)[j]; e < tg_off(G, ot)[j + 1]; e++)
                nx[sp_gref_local(tg_adj(G, ot)[e])] += q[j] / (double)d;
        }
        for (uint64_t j = 0; j < nO; j++) expO[j] += wk * q[j];
        for (uint64_t i = 0; i < nS; i++) expS[i] += wk * nx[i];
        memcpy(pi, nx, sizeof(double) * nS);
        wk *= 1 - p->stop;
    }
    free(pi);
    free(q);
    free(nx);
}

/* Compares observed counts with expectations (per walk) times walks.
 * Variance bound: count(v) = sum over walks of X_w(v) with X_w(v) in
 * [0, T] (a walk reaches a node of either side at most T times), so
 * Var X <= E[X^2] <= T * E[X] and Var count <= walks * T * E[X] =
 * T * expected count; we require |obs - exp| <= 5 * sqrt(T * exp) (and
 * obs == 0 exactly where exp == 0). Then the top 10 by observed count
 * (count desc, index asc) must hit at least 9 of the expected top 10, where
 * the expected top 10 is widened by any node tied (within 1e-12 relative)
 * with the 10th. */
static void compare_counts(const double *e1, const uint64_t *obs, uint64_t n, uint32_t walks, uint32_t T,
                           const char *what) {
    int bad = 0;
    for (uint64_t i = 0; i < n; i++) {
        double ex = e1[i] * walks, sd = sqrt(T * ex);
        if (ex < 1e-12) {
            if (obs[i]) bad++, fprintf(stderr, "  %s node %llu: %llu visits, expected none\n", what,
                                       (unsigned long long)i, (unsigned long long)obs[i]);
        } else if (fabs((double)obs[i] - ex) > 5 * sd) {
            bad++;
            fprintf(stderr, "  %s node %llu: %llu visits, expected %.1f (5 sd = %.1f)\n", what,
                    (unsigned long long)i, (unsigned long long)obs[i], ex, 5 * sd);
        }
    }
    CHECK_MSG(!bad, "%s: %d node counts off", what, bad);
    /* top-10 overlap */
    uint64_t *oi = malloc(sizeof(uint64_t) * n), *ei = malloc(sizeof(uint64_t) * n);
    for (uint64_t i = 0; i < n; i++) oi[i] = ei[i] = i;
    for (uint64_t a = 0; a < n; a++) /* selection sorts, n is small */
        for (uint64_t b = a + 1; b < n; b++) {
            if (obs[oi[b]] > obs[oi[a]]) { uint64_t t = oi[a]; oi[a] = oi[b]; oi[b] = t; }
            if (e1[ei[b]] > e1[ei[a]]) { uint64_t t = ei[a]; ei[a] = ei[b]; ei[b] = t; }
        }
    uint64_t top = n < 10 ? n : 10, nz = 0;
    for (uint64_t i = 0; i < n; i++) nz += e1[i] > 1e-12;
    if (top > nz) top = nz;
    if (top) {
        double tenth = e1[ei[top - 1]];
        uint64_t hit = 0;
        for (uint64_t a = 0; a < top; a++) hit += e1[oi[a]] >= tenth * (1 - 1e-12) && e1[oi[a]] > 1e-12;
        CHECK_MSG(hit * 10 >= top * 9, "%s: top-%llu overlap %llu", what, (unsigned long long)top,
                  (unsigned long long)hit);
    }
    free(oi);
    free(ei);
}

static void test_expectation(void) {
    enum { NP = 40, NB = 12 };
    unsigned char inc[NP * NB];
    memset(inc, 0, sizeof inc);
    sp_rng r;
    sp_rng_init(&r, 9, 9, 9);
    for (int i = 2; i < NP; i++) /* pins 0, 1 isolated */
        for (int j = 0; j < NB; j++) inc[i * NB + j] = sp_rng_below(&r, 100) < 15 + (j < 3 ? 15 : 0);
    for (int i = 2; i < NP; i++) { /* every other pin has a board */
        int any = 0;
        for (int j = 0; j < NB; j++) any |= inc[i * NB + j];
        if (!any) inc[i * NB + sp_rng_below(&r, NB)] = 1;
    }
    tgraph G;
    tg_build(&G, NP, NB, inc);
    const sp_walk_params p = {.walks = 200000, .traversals = 3, .stop = 0.5, .seed = 2024};
    /* two pin sources (a high- and a low-degree one) and one board source */
    uint64_t hi = 2, lo = 2;
    for (uint64_t i = 2; i < NP; i++) {
        if (tg_deg(&G, SP_PIN, i) > tg_deg(&G, SP_PIN, hi)) hi = i;
        if (tg_deg(&G, SP_PIN, i) < tg_deg(&G, SP_PIN, lo)) lo = i;
    }
    struct { sp_type t; uint64_t i; } srcs[3] = {{SP_PIN, hi}, {SP_PIN, lo}, {SP_BOARD, 5}};
    sp_walker *ws = malloc(sizeof *ws * p.walks);
    for (int si = 0; si < 3; si++) {
        sp_type st = srcs[si].t, ot = other(st);
        uint64_t s = srcs[si].i, nS = tg_n(&G, st), nO = tg_n(&G, ot);
        uint32_t slot = 17 + (uint32_t)si;
        for (uint32_t w = 0; w < p.walks; w++) ws[w] = mk_walker(tg_ids(&G, st)[s], st, s, slot, w, 0);
        sp_walk_out out;
        memset(&out, 0, sizeof out);
        CHECK_RC(sp_walk_advance(&G.g, &p, ws, p.walks, 2, &out), SP_OK);
        uint64_t obsS[NP], obsO[NP], wrongkey = 0, badid = 0;
        memset(obsS, 0, sizeof obsS);
        memset(obsO, 0, sizeof obsO);
        for (size_t v = 0; v < out.nvisits; v++) {
            const sp_visit *x = &out.visits[v];
            if (x->key >> 8 != slot) { wrongkey++; continue; }
            sp_type t = (sp_type)(x->key & 0xff);
            int64_t idx = t == SP_PIN || t == SP_BOARD ? sp_id_find(tg_ids(&G, t), tg_n(&G, t), x->ext) : -1;
            if (idx < 0) { badid++; continue; }
            (t == st ? obsS : obsO)[idx]++;
        }
        CHECK_EQ_U64(wrongkey, 0);
        CHECK_EQ_U64(badid, 0);
        CHECK_EQ_U64(out.steps, out.nvisits);
        double eS[NP], eO[NP];
        expected(&G, &p, st, s, eS, eO);
        /* expected steps per walk = total expected visits */
        double esteps = 0;
        for (uint64_t i = 0; i < nS; i++) esteps += eS[i];
        for (uint64_t j = 0; j < nO; j++) esteps += eO[j];
        esteps *= p.walks;
        CHECK_MSG(fabs((double)out.steps - esteps) <= 5 * sqrt(2.0 * p.traversals * esteps), "steps %llu, expected %.1f",
                  (unsigned long long)out.steps, esteps);
        char what[64];
        snprintf(what, sizeof what, "%s source %llu, %s visits", sp_type_name[st], (unsigned long long)s,
                 sp_type_name[st]);
        compare_counts(eS, obsS, nS, p.walks, p.traversals, what);
        snprintf(what, sizeof what, "%s source %llu, %s visits", sp_type_name[st], (unsigned long long)s,
                 sp_type_name[ot]);
        compare_counts(eO, obsO, nO, p.walks, p.traversals, what);
        sp_walk_out_free(&out);
    }
    free(ws);
    tg_free(&G);
}

/* -------------------------------------------------------- 3. one traversal */

static void test_one_step(void) {
    enum { NP = 10, NB = 9, D = 7, WALKS = 100000 };
    unsigned char inc[NP * NB];
    memset(inc, 0, sizeof inc);
    for (int j = 0; j < D; j++) inc[0 * NB + j + 1] = 1; /* pin 0: boards 1..7 */
    for (int i = 1; i < NP; i++) inc[i * NB + (i % NB)] = 1;
    inc[3 * NB + 2] = inc[4 * NB + 5] = 1;
    tgraph G;
    tg_build(&G, NP, NB, inc);
    CHECK_EQ_U64(tg_deg(&G, SP_PIN, 0), D);
    const sp_walk_params p = {.walks = WALKS, .traversals = 1, .stop = 0.5, .seed = 77};
    sp_walker *ws = malloc(sizeof *ws * WALKS);
    for (uint32_t w = 0; w < WALKS; w++) ws[w] = mk_walker(G.pin_ids[0], SP_PIN, 0, 0, w, 0);
    sp_walk_out out;
    memset(&out, 0, sizeof out);
    CHECK_RC(sp_walk_advance(&G.g, &p, ws, WALKS, 4, &out), SP_OK);
    CHECK_EQ_U64(out.steps, 2 * WALKS); /* every board has a pin: exactly one traversal */
    uint64_t cnt[NB] = {0}, pins = 0, other_boards = 0;
    for (size_t v = 0; v < out.nvisits; v++) {
        if ((out.visits[v].key & 0xff) == SP_PIN) { pins++; continue; }
        int64_t j = sp_id_find(G.board_ids, NB, out.visits[v].ext);
        if (j >= 1 && j <= D) cnt[j]++;
        else other_boards++;
    }
    CHECK_EQ_U64(pins, WALKS);
    CHECK_EQ_U64(other_boards, 0);
    /* chi-square with D-1 = 6 dof: mean 6, sd sqrt(12); 6 + 8 sd ~ 33.7
     * (p < 1e-5) and each count within 5 binomial sd of WALKS/D */
    double e = (double)WALKS / D, chi = 0, sd = sqrt(WALKS * (1.0 / D) * (1 - 1.0 / D));
    for (int j = 1; j <= D; j++) {
        chi += ((double)cnt[j] - e) * ((double)cnt[j] - e) / e;
        CHECK_MSG(fabs((double)cnt[j] - e) < 5 * sd, "board %d: %llu, want %.0f", j, (unsigned long long)cnt[j], e);
    }
    CHECK_MSG(chi < (D - 1) + 8 * sqrt(2.0 * (D - 1)), "chi2 %.2f", chi);
    sp_walk_out_free(&out);
    free(ws);
    tg_free(&G);
}

/* ------------------------------------------------------------ 4. edge cases */

static void run1(const tgraph *G, const sp_walk_params *p, const sp_walker *w, size_t n, sp_walk_out *out) {
    memset(out, 0, sizeof *out);
    CHECK_RC(sp_walk_advance(&G->g, p, w, n, 2, out), SP_OK);
}

static void test_edges(const tgraph *big) {
    /* pins: 0 isolated, 1 on board 0 only (board 0 holds pin 1 only),
     * 2 and 3 on board 1 */
    enum { NP = 4, NB = 2 };
    unsigned char inc[NP * NB] = {0, 0, 1, 0, 0, 1, 0, 1};
    tgraph G;
    tg_build(&G, NP, NB, inc);
    sp_walk_params p = {.walks = 50, .traversals = 3, .stop = 0.5, .seed = 5};
    sp_walker ws[200];
    sp_walk_out out;
    /* isolated source pin: nothing */
    for (uint32_t w = 0; w < 50; w++) ws[w] = mk_walker(G.pin_ids[0], SP_PIN, 0, 3, w, 0);
    run1(&G, &p, ws, 50, &out);
    CHECK_EQ_U64(out.nvisits, 0);
    CHECK_EQ_U64(out.steps, 0);
    CHECK_EQ_U64(out.naway, 0);
    sp_walk_out_free(&out);
    /* one-pin board and its pin: with stop 0 the walk bounces T times */
    p.stop = 0;
    for (uint32_t w = 0; w < 50; w++) {
        ws[w] = mk_walker(G.board_ids[0], SP_BOARD, 0, 1, w, 0);
        ws[50 + w] = mk_walker(G.pin_ids[1], SP_PIN, 1, 2, w, 0);
    }
    run1(&G, &p, ws, 100, &out);
    CHECK_EQ_U64(out.steps, 100 * 2 * 3);
    CHECK_EQ_U64(out.nvisits, 100 * 2 * 3);
    uint64_t badv = 0;
    for (size_t v = 0; v < out.nvisits; v++) {
        const sp_visit *x = &out.visits[v];
        int pin = (x->key & 0xff) == SP_PIN;
        if ((x->key >> 8) != 1 && (x->key >> 8) != 2) badv++;
        else if (pin && (x->ext != G.pin_ids[1] || x->ref != sp_gref_make(0, 1))) badv++;
        else if (!pin && (x->ext != G.board_ids[0] || x->ref != sp_gref_make(0, 0))) badv++;
    }
    CHECK_EQ_U64(badv, 0);
    sp_walk_out_free(&out);
    /* traversals = 0: nothing at all */
    p.traversals = 0;
    run1(&G, &p, ws, 100, &out);
    CHECK_EQ_U64(out.nvisits, 0);
    CHECK_EQ_U64(out.steps, 0);
    sp_walk_out_free(&out);
    /* no walkers */
    p.traversals = 3;
    run1(&G, &p, ws, 0, &out);
    CHECK_EQ_U64(out.nvisits, 0);
    CHECK_EQ_U64(out.steps, 0);
    sp_walk_out_free(&out);
    tg_free(&G);

    /* the big graph (no dead end but pins 0..4, which we skip as sources):
     * stop 1 -> exactly one traversal, stop 0 -> exactly T traversals */
    const uint32_t W = 4;
    size_t n = 0;
    sp_walker *bw = malloc(sizeof *bw * (big->g.npins + big->g.nboards) * W);
    for (uint64_t i = 5; i < big->g.npins; i++)
        for (uint32_t w = 0; w < W; w++) bw[n++] = mk_walker(big->pin_ids[i], SP_PIN, i, (uint32_t)i, w, 0);
    for (uint64_t j = 0; j < big->g.nboards; j++)
        for (uint32_t w = 0; w < W; w++) bw[n++] = mk_walker(big->board_ids[j], SP_BOARD, j, 1000 + (uint32_t)j, w, 0);
    for (int si = 0; si < 2; si++) {
        sp_walk_params q = {.walks = W, .traversals = 4, .stop = si ? 0.0 : 1.0, .seed = 11};
        uint32_t trav = si ? q.traversals : 1;
        run1(big, &q, bw, n, &out);
        CHECK_EQ_U64(out.steps, (uint64_t)n * 2 * trav);
        CHECK_EQ_U64(out.nvisits, (uint64_t)n * 2 * trav);
        uint64_t npin = 0;
        for (size_t v = 0; v < out.nvisits; v++) npin += (out.visits[v].key & 0xff) == SP_PIN;
        CHECK_EQ_U64(npin, (uint64_t)n * trav);
        sp_walk_out_free(&out);
    }
    free(bw);
}

/* ------------------------------------------------------------- 5. topt */

static void test_topt(void) {
    /* one source (self = 20), pins, sorted by ext */
    const uint64_t ex[] = {3, 3, 5, 5, 5, 7, 7, 9, 9, 9, 11, 20, 20, 20, 20};
    enum { N = sizeof ex / sizeof *ex };
    sp_visit v[N];
    for (int i = 0; i < N; i++)
        v[i] = (sp_visit){.key = (uint64_t)42 << 8 | SP_PIN, .ext = ex[i], .ref = sp_gref_make(0, ex[i] * 2)};
    /* ranking: 5 (3), 9 (3), 3 (2), 7 (2), 11 (1); 20 is the source */
    const uint64_t want[] = {5, 9, 3, 7, 11};
    const uint32_t wantc[] = {3, 3, 2, 2, 1};
    sp_nbr top[16], ranked[N];
    size_t nr = 999;
    size_t k = sp_walk_topt(v, N, &(uint64_t){20}, 3, top, ranked, &nr);
    CHECK_EQ_U64(k, 3);
    float sum = 0;
    for (size_t i = 0; i < k && i < 3; i++) {
        CHECK_EQ_U64(top[i].ext, want[i]);
        CHECK_EQ_U64(top[i].ref, sp_gref_make(0, want[i] * 2));
        CHECK_EQ_U64(top[i].count, wantc[i]);
        CHECK_NEAR(top[i].weight, wantc[i] / 8.0, 1e-6);
        sum += top[i].weight;
    }
    CHECK_NEAR(sum, 1.0, 1e-6);
    CHECK_EQ_U64(nr, 5);
    for (size_t i = 0; i < nr && i < 5; i++) {
        CHECK_EQ_U64(ranked[i].ext, want[i]);
        CHECK_EQ_U64(ranked[i].count, wantc[i]);
        CHECK_EQ_U64(ranked[i].ref, sp_gref_make(0, want[i] * 2));
    }
    /* t larger than the distinct count: all 5, weights over all 11 visits */
    k = sp_walk_topt(v, N, &(uint64_t){20}, 10, top, NULL, NULL);
    CHECK_EQ_U64(k, 5);
    sum = 0;
    for (size_t i = 0; i < k && i < 5; i++) {
        CHECK_EQ_U64(top[i].ext, want[i]);
        CHECK_NEAR(top[i].weight, wantc[i] / 11.0, 1e-6);
        sum += top[i].weight;
    }
    CHECK_NEAR(sum, 1.0, 1e-6);
    /* self absent from the visits: it is just not there */
    k = sp_walk_topt(v, N, &(uint64_t){4}, 2, top, ranked, &nr);
    CHECK_EQ_U64(k, 2);
    CHECK_EQ_U64(top[0].ext, 20);
    CHECK_EQ_U64(top[0].count, 4);
    CHECK_EQ_U64(top[1].ext, 5);
    CHECK_NEAR(top[0].weight, 4 / 7.0, 1e-6);
    CHECK_NEAR(top[1].weight, 3 / 7.0, 1e-6);
    CHECK_EQ_U64(nr, 6);
    /* only the source visited, and no visits at all */
    k = sp_walk_topt(v + 11, 4, &(uint64_t){20}, 5, top, ranked, &nr);
    CHECK_EQ_U64(k, 0);
    CHECK_EQ_U64(nr, 0);
    nr = 999;
    k = sp_walk_topt(v, 0, &(uint64_t){20}, 5, top, ranked, &nr);
    CHECK_EQ_U64(k, 0);
    CHECK_EQ_U64(nr, 0);
    /* one node */
    k = sp_walk_topt(v, 1, &(uint64_t){20}, 5, top, ranked, &nr);
    CHECK_EQ_U64(k, 1);
    CHECK_EQ_U64(top[0].ext, 3);
    CHECK_NEAR(top[0].weight, 1.0, 1e-6);
    CHECK_EQ_U64(nr, 1);
    /* many ties: weights equal, ext ascending */
    sp_visit u[64];
    for (int i = 0; i < 64; i++)
        u[i] = (sp_visit){.key = (uint64_t)1 << 8 | SP_BOARD, .ext = 1000 + (uint64_t)(i / 2), .ref = (uint64_t)i / 2};
    { /* self NULL excludes nothing (id 0 included); unsorted input gives the same result */
        sp_visit z[6] = {{0, 5, 5}, {0, 0, 0}, {0, 9, 9}, {0, 0, 0}, {0, 5, 5}, {0, 0, 0}};
        sp_nbr zt[4];
        size_t zk = sp_walk_topt(z, 6, NULL, 4, zt, NULL, NULL);
        CHECK_EQ_U64(zk, 3);
        CHECK_EQ_U64(zt[0].ext, 0);
        CHECK_EQ_U64(zt[0].count, 3);
        CHECK_EQ_U64(zt[1].ext, 5);
        CHECK_EQ_U64(zt[2].ext, 9);
        zk = sp_walk_topt(z, 6, &(uint64_t){0}, 4, zt, NULL, NULL);
        CHECK_EQ_U64(zk, 2);
        CHECK_EQ_U64(zt[0].ext, 5);
    }
    k = sp_walk_topt(u, 64, &(uint64_t){0}, 10, top, NULL, NULL);
    CHECK_EQ_U64(k, 10);
    sum = 0;
    for (size_t i = 0; i < k && i < 10; i++) {
        CHECK_EQ_U64(top[i].ext, 1000 + i);
        CHECK_EQ_U64(top[i].count, 2);
        sum += top[i].weight;
    }
    CHECK_NEAR(sum, 1.0, 1e-6);
    /* many distinct nodes (more than any small internal buffer), with and
     * without `ranked`: the same top 10 as a reference ranking */
    enum { ND = 1500 };
    sp_visit *many = malloc(sizeof *many * ND * 8);
    uint32_t cnt[ND];
    size_t nm = 0;
    sp_rng r;
    sp_rng_init(&r, 1, 2, 3);
    for (uint32_t d = 0; d < ND; d++) {
        cnt[d] = 1 + (uint32_t)sp_rng_below(&r, 8);
        for (uint32_t c = 0; c < cnt[d]; c++)
            many[nm++] = (sp_visit){.key = (uint64_t)5 << 8 | SP_PIN, .ext = 10 + d, .ref = d};
    }
    /* reference: count desc, ext asc (selection of the 10 best) */
    uint64_t best[10];
    unsigned char used[ND];
    memset(used, 0, sizeof used);
    for (int b = 0; b < 10; b++) {
        int arg = -1;
        for (int d = 0; d < ND; d++)
            if (!used[d] && d != 3 && (arg < 0 || cnt[d] > cnt[arg])) arg = d; /* ext 13 is the source */
        used[arg] = 1;
        best[b] = 10 + (uint64_t)arg;
    }
    sp_nbr *rk = malloc(sizeof *rk * nm), top2[10];
    for (int pass = 0; pass < 2; pass++) {
        k = sp_walk_topt(many, nm, &(uint64_t){13}, 10, top2, pass ? rk : NULL, pass ? &nr : NULL);
        CHECK_EQ_U64(k, 10);
        for (size_t i = 0; i < k && i < 10; i++) CHECK_EQ_U64(top2[i].ext, best[i]);
    }
    CHECK_EQ_U64(nr, ND - 1);
    for (size_t i = 1; i < nr && i < ND; i++)
        CHECK(rk[i - 1].count > rk[i].count || (rk[i - 1].count == rk[i].count && rk[i - 1].ext < rk[i].ext));
    /* without `ranked`: the same first t as the full ranking,
     * for t across the range (ties straddle every cut: counts are 1..8 over 1499 nodes) */
    const size_t ts[] = {1, 2, 7, 17, 50, 187, 333, 1000, 1498, 1499, 1500, 4000};
    sp_nbr *tp = malloc(sizeof *tp * 4000);
    for (size_t c = 0; c < sizeof ts / sizeof *ts; c++) {
        size_t kt = sp_walk_topt(many, nm, &(uint64_t){13}, ts[c], tp, NULL, NULL), bad = 0;
        CHECK_EQ_U64(kt, ts[c] < ND - 1 ? ts[c] : ND - 1);
        for (size_t i = 0; i < kt && i < nr; i++) bad += tp[i].ext != rk[i].ext || tp[i].count != rk[i].count;
        CHECK_MSG(bad == 0, "t = %zu: %zu entries differ from the full ranking", ts[c], bad);
    }
    free(tp);
    free(rk);
    free(many);
}

/* -------------------------------------------- 6. non-local walker, resume */

static void test_resume(const tgraph *G) {
    sp_walk_params p = {.walks = 8, .traversals = 4, .stop = 0.3, .seed = 99};
    sp_walk_out out;
    /* not local */
    sp_walker bad = mk_walker(G->pin_ids[7], SP_PIN, 7, 0, 0, 0);
    bad.node = sp_gref_make(1, 0);
    memset(&out, 0, sizeof out);
    CHECK_RC(sp_walk_advance(&G->g, &p, &bad, 1, 1, &out), SP_EINTERNAL);
    sp_walk_out_free(&out);
    /* a local index out of range */
    bad.node = sp_gref_make(0, G->g.npins + 5);
    memset(&out, 0, sizeof out);
    CHECK_RC(sp_walk_advance(&G->g, &p, &bad, 1, 1, &out), SP_EINTERNAL);
    sp_walk_out_free(&out);
    bad.node = sp_gref_make(1, 0);
    /* the same among good walkers, with 2 threads */
    sp_walker mix[3] = {mk_walker(G->pin_ids[7], SP_PIN, 7, 0, 0, 0), bad, mk_walker(G->pin_ids[8], SP_PIN, 8, 0, 0, 0)};
    memset(&out, 0, sizeof out);
    CHECK_RC(sp_walk_advance(&G->g, &p, mix, 3, 2, &out), SP_EINTERNAL);
    sp_walk_out_free(&out);
    /* resume: cut every reference walk at each step k (1 <= k < length) and
     * feed the engine a walker with step k on the node reached (as if it
     * had arrived from another rank); it must record that node's pending
     * visit, then exactly the remaining visits and steps */
    size_t cap = 0, n = 0;
    sp_walker *ws = NULL;
    vbuf ref = {0};
    uint64_t ref_steps = 0, selfcheck = 0;
    rnode path[MAXPATH], tail[MAXPATH];
    for (int t = 0; t < 2; t++) {
        sp_type st = t ? SP_BOARD : SP_PIN;
        for (uint64_t i = 0; i < tg_n(G, st); i += 3) {
            uint64_t src = tg_ids(G, st)[i];
            uint32_t slot = (uint32_t)(t ? 1000 + i : i);
            for (uint32_t w = 0; w < p.walks; w++) {
                size_t len = ref_walk(G, &p, st, src, w, i, 0, path);
                for (size_t k = 1; k < len; k++) {
                    size_t m = ref_walk(G, &p, st, src, w, path[k - 1].local, (unsigned)k, tail);
                    if (m != len - k) selfcheck++;
                    for (size_t q = 0; q < m && m == len - k; q++)
                        selfcheck += tail[q].type != path[k + q].type || tail[q].local != path[k + q].local;
                    if (n == cap) {
                        cap = cap ? 2 * cap : 1024;
                        ws = realloc(ws, sizeof *ws * cap);
                    }
                    ws[n++] = mk_walker(src, st, path[k - 1].local, slot, w, (uint16_t)k);
                    ref_steps += m;
                    /* a walker with step > 0 has just arrived: its node's
                     * visit is still pending and the engine records it */
                    push_path(&ref, G, slot, path + k - 1, 1);
                    push_path(&ref, G, slot, tail, m);
                }
            }
        }
    }
    CHECK_EQ_U64(selfcheck, 0);
    CHECK(n > 1000);
    for (int th = 1; th <= 4; th *= 2) {
        memset(&out, 0, sizeof out);
        CHECK_RC(sp_walk_advance(&G->g, &p, ws, n, th, &out), SP_OK);
        CHECK_EQ_U64(out.steps, ref_steps);
        CHECK_EQ_U64(out.naway, 0);
        char what[64];
        snprintf(what, sizeof what, "resumed walkers, threads=%d", th);
        CHECK_MSG(same_visits(out.visits, out.nvisits, ref.v, ref.n, what), "%s", what);
        check_parts(G, &p, ws, n, th, ref_steps, &ref, what, &out);
        sp_walk_out_free(&out);
    }
    free(ref.v);
    free(ws);
}

/* Walkers that leave the rank: the rank that takes a step decides the stop
 * after a traversal; a walker that stopped on another rank's node leaves with
 * step = 2 * traversals and its owner only records the visit. */
static void test_away(const tgraph *G, const sp_walk_params *p) {
    const uint32_t maxs = 2 * p->traversals;
    /* the same graph with every pin -> board entry on rank 1: a walk from a
     * board takes step 1 (board -> pin) here and leaves at step 2 */
    uint64_t m = G->pin_off[G->g.npins];
    uint64_t *adj = malloc(sizeof *adj * (m + 1));
    for (uint64_t e = 0; e < m; e++) adj[e] = sp_gref_make(1, sp_gref_local(G->pin_adj[e]));
    sp_walk_graph g2 = G->g;
    g2.pin_adj = adj;
    g2.pin_node = g2.board_node = NULL;
    CHECK_RC(sp_walk_prepare(&g2), SP_OK);
    size_t n = 0, cap = G->g.nboards * p->walks;
    sp_walker *ws = malloc(sizeof *ws * cap), *expect = malloc(sizeof *expect * cap);
    size_t nexp = 0;
    rnode path[MAXPATH];
    for (uint64_t j = 0; j < G->g.nboards; j++)
        for (uint32_t w = 0; w < p->walks; w++) {
            ws[n++] = mk_walker(G->board_ids[j], SP_BOARD, j, (uint32_t)j, w, 0);
            size_t len = ref_walk(G, p, SP_BOARD, G->board_ids[j], w, j, 0, path);
            if (len < 2) continue; /* ended on this rank */
            uint64_t u = sp_walk_draw(p->seed, SP_BOARD, G->board_ids[j], w, STOP_DRAW(2));
            int stopped = maxs == 2 || (double)(u >> 11) * 0x1.0p-53 < p->stop;
            CHECK_EQ_U64(stopped, len == 2 && tg_deg(G, SP_BOARD, path[1].local) > 0 ? 1 : stopped);
            sp_walker e = mk_walker(G->board_ids[j], SP_BOARD, 0, (uint32_t)j, w, stopped ? (uint16_t)maxs : 2);
            e.node = sp_gref_make(1, path[1].local);
            expect[nexp++] = e;
        }
    sp_walk_out out = {0};
    CHECK_RC(sp_walk_advance(&g2, p, ws, n, 2, &out), SP_OK);
    CHECK_EQ_U64(out.naway, nexp);
    size_t bad = 0;
    for (size_t i = 0; i < out.naway && i < nexp; i++) {
        const sp_walker *a = NULL;
        for (size_t k = 0; k < out.naway && !a; k++) /* order depends on threads */
            if (out.away[k].slot == expect[i].slot && out.away[k].walk == expect[i].walk) a = &out.away[k];
        bad += !a || a->node != expect[i].node || a->step != expect[i].step || a->src != expect[i].src;
    }
    CHECK_EQ_U64(bad, 0);
    sp_walk_out_free(&out);
    /* the receiving side: a stopped walker records its node and ends */
    size_t nstop = 0;
    for (size_t i = 0; i < nexp; i++)
        if (expect[i].step == maxs) {
            ws[nstop] = expect[i];
            ws[nstop++].node = sp_gref_make(0, sp_gref_local(expect[i].node));
        }
    CHECK(nstop > 0);
    memset(&out, 0, sizeof out);
    CHECK_RC(sp_walk_advance(&G->g, p, ws, nstop, 1, &out), SP_OK);
    CHECK_EQ_U64(out.steps, 0);
    CHECK_EQ_U64(out.nvisits, nstop);
    bad = 0;
    for (size_t i = 0; i < out.nvisits && i < nstop; i++)
        bad += out.visits[i].ext != G->board_ids[sp_gref_local(out.visits[i].ref)] ||
               (out.visits[i].key & 0xff) != SP_BOARD;
    CHECK_EQ_U64(bad, 0);
    sp_walk_out_free(&out);
    free(ws);
    free(expect);
    free(adj);
    sp_walk_release(&g2);
}

/* ------------------------------------------------ 7. very high degrees */

static void test_high_degree(void) {
    /* pin i is on board 0 (i < 70000), 1 (65535 pins) or 2 (65534 pins) */
    enum { N0 = 70000, N1 = 65535, N2 = 65534, NP = N0 + N1 + N2, NB = 3 };
    unsigned char *inc = calloc((size_t)NP * NB, 1);
    for (uint64_t i = 0; i < NP; i++) inc[i * NB + (i < N0 ? 0 : i < N0 + N1 ? 1 : 2)] = 1;
    tgraph G;
    tg_build(&G, NP, NB, inc);
    free(inc);
    CHECK_EQ_U64(tg_deg(&G, SP_BOARD, 0), N0);
    CHECK_EQ_U64(tg_deg(&G, SP_BOARD, 1), N1);
    CHECK_EQ_U64(tg_deg(&G, SP_BOARD, 2), N2);
    test_reference(&G, &(sp_walk_params){.walks = 1, .traversals = 2, .stop = 0.3, .seed = 9});
    tg_free(&G);
    /* offsets past 48 bits: refused before anything is read of the adjacency */
    uint64_t ids[1] = {1}, off[2] = {0, 1ULL << 48}, boff[1] = {0};
    sp_walk_graph g = {.npins = 1, .nboards = 0, .pin_ids = ids, .board_ids = ids, .pin_off = off,
                       .pin_adj = off, .board_off = boff, .board_adj = boff};
    CHECK_RC(sp_walk_prepare(&g), SP_EINPUT);
    CHECK(g.pin_node == NULL && g.board_node == NULL);
}

int main(void) {
    tgraph big;
    build_big(&big);
    CHECK_EQ_U64(tg_deg(&big, SP_BOARD, 0) > 200, 1);
    for (uint64_t i = 0; i < 5; i++) CHECK_EQ_U64(tg_deg(&big, SP_PIN, i), 0);
    const sp_walk_params ps[] = {
        {.walks = 20, .traversals = 3, .stop = 0.5, .seed = 1},
        {.walks = 10, .traversals = 6, .stop = 0.2, .seed = 0xdeadbeefULL},
        {.walks = 5, .traversals = 1, .stop = 0.5, .seed = 7},
    };
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) test_reference(&big, &ps[i]);
    test_expectation();
    test_one_step();
    test_edges(&big);
    test_topt();
    test_high_degree();
    test_resume(&big);
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++) test_away(&big, &ps[i]);
    tg_free(&big);
    return CHECK_DONE();
}
