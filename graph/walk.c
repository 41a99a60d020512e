/* walk: the walk engine. Each thread keeps a batch of walkers in flight and
 * advances them round-robin, one memory access per walker per turn, with the
 * next access prefetched: stage A reads the node's record (offsets and id),
 * records the visit of the node and prefetches the chosen adjacency entry;
 * stage B reads the neighbour, decides whether the walk stops there and, if
 * it goes on, prefetches the neighbour's record. One dependent cache miss
 * costs ~330 ns here; with 128 walkers per thread the misses overlap. A node
 * record (16 bytes, never across two cache lines) holds the offset, the degree
 * (up to 0xfffe; larger ones come from the next record's offset) and the id,
 * so a step reads one line for it; reading the next record's offset for every
 * degree took a second line for a quarter of the nodes. A walk that ends never
 * reads its last node's record: its visit goes to a side list without the id,
 * and after the loop those visits are appended with their ids read by
 * independent (prefetched) loads; reading the record inside the loop was a
 * dependent miss per walk and cost a third of the throughput (patching the ids
 * into the visits in place, as before, wrote most of their lines twice).
 * Visits are written with non-temporal stores (put_visit).
 * Live walkers stay packed at the front of the batch; a finished walker's
 * slot takes the next input walker at once.
 * A walker that steps onto another rank's node leaves with its visit pending
 * (step > 0 means "just arrived, visit not yet recorded"): the owner of the
 * node records it, because only the owner knows the node's external id. The
 * stop after a traversal is decided by the rank that took the step; a walker
 * that stopped on another rank's node leaves with step = 2 * traversals, so
 * the owner only records its visit. */
#include "walk.h"

#include <pthread.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

#define BATCH 128
#define DEG_CAP ((1u << SP_WALK_DEG_BITS) - 1)

static void fill_nodes(sp_walk_node *nd, const uint64_t *off, const uint64_t *ids, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        uint64_t deg = off[i + 1] - off[i];
        nd[i] = (sp_walk_node){off[i] << SP_WALK_DEG_BITS | (deg < DEG_CAP ? deg : DEG_CAP), ids[i]};
    }
    nd[n] = (sp_walk_node){off[n] << SP_WALK_DEG_BITS, 0};
}

int sp_walk_prepare(sp_walk_graph *g) {
    sp_walk_release(g);
    g->pin_node = sp_alloc_huge(sizeof *g->pin_node * (g->npins + 1));
    g->board_node = sp_alloc_huge(sizeof *g->board_node * (g->nboards + 1));
    if (!g->pin_node || !g->board_node) {
        sp_walk_release(g);
        return sp_err(SP_ENOMEM, "walk: cannot allocate node records for %llu nodes",
                      (unsigned long long)(g->npins + g->nboards));
    }
    if (g->pin_off[g->npins] >> (64 - SP_WALK_DEG_BITS) || g->board_off[g->nboards] >> (64 - SP_WALK_DEG_BITS)) {
        sp_walk_release(g);
        return sp_err(SP_EINPUT, "walk: adjacency of %llu + %llu entries exceeds the node records' 48-bit offsets",
                      (unsigned long long)g->pin_off[g->npins], (unsigned long long)g->board_off[g->nboards]);
    }
    fill_nodes(g->pin_node, g->pin_off, g->pin_ids, g->npins);
    fill_nodes(g->board_node, g->board_off, g->board_ids, g->nboards);
    return SP_OK;
}

void sp_walk_release(sp_walk_graph *g) {
    free(g->pin_node);
    free(g->board_node);
    g->pin_node = g->board_node = NULL;
}

typedef struct {
    int n;
    sp_walk_out *t;
} thread_bufs;

void sp_walk_out_free(sp_walk_out *o) {
    free(o->visits);
    free(o->away);
    free(o->tail);
    thread_bufs *tb = o->threads;
    if (tb) {
        for (int i = 0; i < tb->n; i++) sp_walk_out_free(&tb->t[i]);
        free(tb->t);
        free(tb);
    }
    memset(o, 0, sizeof *o);
}

typedef struct {
    uint64_t base;    /* mix(seed) ^ mix(src ^ salt): the walker's part of every draw */
    uint64_t src;
    uint64_t local;   /* current node's local index */
    uint64_t pos;     /* adjacency position chosen in stage A */
    uint32_t slot, walk;
    uint32_t step;
    uint8_t src_type;
    uint8_t on_board; /* current node type */
    uint8_t stage;    /* 0: at a node (its record prefetched); 1: adjacency entry prefetched */
} slot_t;

typedef struct {
    const sp_walk_graph *g;
    const sp_walk_params *p;
    const sp_walker *in;
    size_t n;
    sp_walk_out *out;
    int rc;
} job_t;

/* Same value as sp_walk_draw(seed, type, src, walk, step) given the base. */
static inline uint64_t draw(uint64_t base, uint32_t walk, uint32_t step) {
    return sp_mix64(base ^ (((uint64_t)walk << 16 | step) * 0x9e3779b97f4a7c15ULL));
}

static int push_away(sp_walk_out *o, const slot_t *s, sp_gref node) {
    if (o->naway == o->capaway && sp_grow((void **)&o->away, &o->capaway, o->naway + 1, sizeof *o->away))
        return SP_ENOMEM;
    sp_walker *w = &o->away[o->naway++];
    memset(w, 0, sizeof *w);
    w->src = s->src;
    w->node = node;
    w->slot = s->slot;
    w->walk = s->walk;
    w->step = (uint16_t)s->step;
    w->src_type = s->src_type;
    return SP_OK;
}

/* Checks a walker record and loads its first walk into a slot; 1 if it is valid (it may still end at once). */
static int load(const sp_walk_graph *g, const sp_walk_params *p, const sp_walker *w, slot_t *s, int *rc) {
    if (sp_gref_rank(w->node) != g->rank) {
        *rc = sp_err(SP_EINTERNAL, "walk: walker of source %llu is on rank %d's node, not on rank %d",
                     (unsigned long long)w->src, sp_gref_rank(w->node), g->rank);
        return 0;
    }
    s->src = w->src;
    s->slot = w->slot;
    s->walk = w->walk;
    s->step = w->step;
    s->src_type = w->src_type;
    s->base = sp_mix64(p->seed ^ 0x5bd1e9955bd1e995ULL) ^ sp_mix64(w->src ^ sp_type_salt[w->src_type]);
    /* pin source: pins at even steps; board source: boards at even steps */
    s->on_board = (uint8_t)((w->src_type == SP_BOARD) ^ (w->step & 1));
    s->local = sp_gref_local(w->node);
    if (s->local >= (s->on_board ? g->nboards : g->npins)) {
        *rc = sp_err(SP_EINTERNAL, "walk: node %llu out of range on rank %d", (unsigned long long)s->local, g->rank);
        return 0;
    }
    s->stage = 0;
    const sp_walk_node *nodes = s->on_board ? g->board_node : g->pin_node;
    __builtin_prefetch(&nodes[s->local]);
    return 1;
}

/* Loads the next input walk into a slot: a multi-start record is checked and
 * set up once (*first, its first walk's slot) and gives its walks one by one
 * (*sub of them so far). 0 when the input is used up or on error. */
static inline int take(const job_t *j, size_t *next, uint32_t *sub, slot_t *first, slot_t *s, int *rc) {
    if (*next >= j->n) return 0;
    const sp_walker *w = &j->in[*next];
    if (*sub == 0 && !load(j->g, j->p, w, first, rc)) return 0;
    *s = *first;
    s->walk += *sub;
    if (++*sub >= (w->step == 0 && w->starts > 1 ? w->starts : 1u)) *sub = 0, (*next)++;
    return 1;
}

/* Writes a visit with non-temporal stores where the CPU has them: the
 * visits buffer is far larger than the caches and is read back only after
 * the loop, so reading its lines in before writing them (what a plain store
 * does) is wasted memory traffic and takes line-fill buffers the walkers'
 * prefetches need. */
static inline void put_visit(sp_visit *v, uint64_t key, uint64_t ext, sp_gref ref) {
#if defined(__x86_64__)
    _mm_stream_si64((long long *)&v->key, (long long)key);
    _mm_stream_si64((long long *)&v->ext, (long long)ext);
    _mm_stream_si64((long long *)&v->ref, (long long)ref);
#else
    *v = (sp_visit){key, ext, ref};
#endif
}

static inline void put_tail(sp_visit_tail *v, uint64_t key, sp_gref ref) {
#if defined(__x86_64__)
    _mm_stream_si64((long long *)&v->key, (long long)key);
    _mm_stream_si64((long long *)&v->ref, (long long)ref);
#else
    *v = (sp_visit_tail){key, ref};
#endif
}

/* sp_visit.key of the walker's current node: slot << 8 | node type. */
static inline uint64_t visit_key(const slot_t *s) {
    return (uint64_t)s->slot << 8 | (s->on_board ? SP_BOARD : SP_PIN);
}

/* The uniform double of a draw is below `stop` <=> its top 53 bits are below
 * this bound (ceil(stop * 2^53), clamped). */
static uint64_t stop_bound(double stop) {
    double st = stop * 0x1.0p53;
    if (!(st > 0)) return 0;
    if (st >= 0x1.0p53) return 1ULL << 53;
    uint64_t b = (uint64_t)st;
    return b + ((double)b < st);
}

static void *run_job(void *arg) {
    job_t *j = arg;
    const sp_walk_graph *g = j->g;
    const sp_walk_params *p = j->p;
    sp_walk_out *o = j->out;
    const uint32_t max = 2 * p->traversals;
    const int rank = g->rank;
    const sp_gref here = sp_gref_make(rank, 0); /* | local: a node of this rank */
    const uint64_t stop_lim = stop_bound(p->stop);
    const sp_walk_node *nodes[2] = {g->pin_node, g->board_node};
    const uint64_t *adjs[2] = {g->pin_adj, g->board_adj};
    const uint64_t *ids[2] = {g->pin_ids, g->board_ids};
    slot_t sl[BATCH];
    size_t next = 0, nv = o->nvisits, ntail = 0;
    uint32_t sub = 0; /* walks of in[next] started so far */
    slot_t first;     /* in[next]'s first walk, set up when it was checked */
    sp_visit *vis = o->visits;
    int nlive = 0, rc = SP_OK;
    uint64_t steps = 0;
    for (;;) {
        while (nlive < BATCH && next < j->n && !rc)
            if (take(j, &next, &sub, &first, &sl[nlive], &rc)) nlive++;
        if (rc || nlive == 0) break;
        /* room for one visit per live walker this turn */
        if (o->capvisits - nv < BATCH || o->captail - ntail < BATCH) {
            o->nvisits = nv;
            if ((rc = sp_grow((void **)&o->visits, &o->capvisits, nv + BATCH, sizeof *o->visits)) ||
                (rc = sp_grow((void **)&o->tail, &o->captail, ntail + BATCH, sizeof *o->tail)))
                break;
            vis = o->visits;
        }
        for (int b = 0; b < nlive; b++) {
            slot_t *s = &sl[b];
            if (s->stage == 0) {
                const sp_walk_node *nd = nodes[s->on_board] + s->local;
                if (s->step) /* the visit of the node just reached (a walk's start is not a visit) */
                    put_visit(&vis[nv++], visit_key(s), nd->ext, here | s->local);
                uint64_t lo = nd->od >> SP_WALK_DEG_BITS, deg = nd->od & DEG_CAP;
                if (deg == DEG_CAP) deg = (nd[1].od >> SP_WALK_DEG_BITS) - lo;
                if (s->step < max && deg) {
                    s->pos = lo + (uint64_t)(((unsigned __int128)draw(s->base, s->walk, s->step) * deg) >> 64);
                    __builtin_prefetch(adjs[s->on_board] + s->pos);
                    s->stage = 1;
                    continue;
                }
                /* a dangling node, or a walker that arrived here stopped */
            } else {
                sp_gref nb = adjs[s->on_board][s->pos];
                s->step++;
                steps++;
                s->on_board ^= 1;
                s->stage = 0;
                int ends = s->step >= max ||
                           ((s->step & 1) == 0 && draw(s->base, s->walk, 0x8000u | s->step) >> 11 < stop_lim);
                if (sp_gref_rank(nb) != rank) { /* the node's owner records the visit */
                    if (ends) s->step = max;
                    if ((rc = push_away(o, s, nb))) break;
                } else if (!ends) {
                    s->local = sp_gref_local(nb);
                    const sp_walk_node *nn = nodes[s->on_board] + s->local;
                    __builtin_prefetch(nn);
                    continue;
                } else { /* the last visit: appended with its id after the loop */
                    put_tail(&o->tail[ntail++], visit_key(s), nb);
                }
            }
            /* the walker is done here: the next input walker takes its slot, or the last live one */
            if (!take(j, &next, &sub, &first, s, &rc)) {
                if (rc) break;
                *s = sl[--nlive];
                b--;
            }
        }
        if (rc) break;
    }
    /* the last visits, appended with their ids: independent loads, prefetched ahead */
    enum { AHEAD = 16 };
    if (!rc && o->capvisits - nv < ntail) {
        o->nvisits = nv;
        rc = sp_grow((void **)&o->visits, &o->capvisits, nv + ntail, sizeof *o->visits);
        vis = o->visits;
    }
    const sp_visit_tail *tl = o->tail;
    for (size_t k = 0; k < ntail && !rc; k++) {
        if (k + AHEAD < ntail)
            __builtin_prefetch(ids[(tl[k + AHEAD].key & 0xff) == SP_BOARD] + sp_gref_local(tl[k + AHEAD].ref));
        put_visit(&vis[nv++], tl[k].key, ids[(tl[k].key & 0xff) == SP_BOARD][sp_gref_local(tl[k].ref)], tl[k].ref);
    }
#if defined(__x86_64__)
    _mm_sfence(); /* the non-temporal stores are visible before the thread's join */
#endif
    o->nvisits = nv;
    o->steps += steps;
    j->rc = rc;
    return NULL;
}

/* Appends a thread's walkers that left and its steps, and its visits too when `visits`. */
static int append(sp_walk_out *to, const sp_walk_out *from, int visits) {
    if ((visits && sp_grow((void **)&to->visits, &to->capvisits, to->nvisits + from->nvisits, sizeof *to->visits)) ||
        sp_grow((void **)&to->away, &to->capaway, to->naway + from->naway, sizeof *to->away))
        return SP_ENOMEM;
    if (visits && from->nvisits) memcpy(to->visits + to->nvisits, from->visits, sizeof *from->visits * from->nvisits);
    if (from->naway) memcpy(to->away + to->naway, from->away, sizeof *from->away * from->naway);
    if (visits) to->nvisits += from->nvisits;
    to->naway += from->naway;
    to->steps += from->steps;
    return SP_OK;
}

const sp_visit *sp_walk_out_part(const sp_walk_out *o, int i, size_t *n) {
    const thread_bufs *tb = o->threads;
    if (i <= 0 || i >= o->nparts || !tb || i > tb->n) {
        *n = i == 0 ? o->nvisits : 0;
        return i == 0 ? o->visits : NULL;
    }
    *n = tb->t[i - 1].nvisits;
    return tb->t[i - 1].visits;
}

size_t sp_walk_out_total(const sp_walk_out *o) {
    size_t total = 0, n;
    for (int i = 0; i < o->nparts; i++) total += (sp_walk_out_part(o, i, &n), n);
    return total;
}

static int advance(const sp_walk_graph *g, const sp_walk_params *p, const sp_walker *w, size_t n, int nthreads,
                   sp_walk_out *out, int gather) {
    out->nparts = 1;
    if (!g->pin_node || !g->board_node) return sp_err(SP_EINTERNAL, "walk: graph not prepared (sp_walk_prepare)");
    if (nthreads < 1) nthreads = 1;
    if (nthreads > 64) nthreads = 64;
    size_t walks = 0; /* a thread per BATCH walks at most (multi-start records count all their walks) */
    for (size_t i = 0; i < n && walks / BATCH + 1 < (size_t)nthreads; i++)
        walks += w[i].step == 0 && w[i].starts > 1 ? w[i].starts : 1;
    if ((size_t)nthreads > walks / BATCH + 1) nthreads = (int)(walks / BATCH + 1);
    /* the calling thread takes the first share straight into `out`; the
     * others write buffers kept in out->threads between calls, appended after */
    thread_bufs *tb = out->threads;
    if (nthreads > 1 && (!tb || tb->n < nthreads - 1)) {
        sp_walk_out *t = realloc(tb ? tb->t : NULL, sizeof *t * (size_t)(nthreads - 1));
        if (!t) return sp_err(SP_ENOMEM, "walk: cannot allocate per-thread buffers");
        if (!tb && !(tb = calloc(1, sizeof *tb))) {
            free(t);
            return sp_err(SP_ENOMEM, "walk: cannot allocate per-thread buffers");
        }
        memset(t + tb->n, 0, sizeof *t * (size_t)(nthreads - 1 - tb->n));
        tb->t = t;
        tb->n = nthreads - 1;
        out->threads = tb;
    }
    job_t jobs[64];
    pthread_t th[64];
    int rc = SP_OK, started = 1;
    for (int t = 0; t < nthreads; t++) {
        size_t lo = n * (size_t)t / (size_t)nthreads, hi = n * (size_t)(t + 1) / (size_t)nthreads;
        sp_walk_out *o = t ? &tb->t[t - 1] : out;
        if (t) { /* a thread's own buffers start empty; the caller appends to `out` */
            o->nvisits = o->naway = 0;
            o->steps = 0;
        }
        jobs[t] = (job_t){.g = g, .p = p, .in = w + lo, .n = hi - lo, .out = o};
    }
    for (; started < nthreads; started++) /* started: the caller plus the threads running */
        if (pthread_create(&th[started], NULL, run_job, &jobs[started])) {
            rc = sp_err(SP_EINTERNAL, "walk: cannot start thread %d", started);
            break;
        }
    if (!rc) run_job(&jobs[0]);
    for (int t = 1; t < started; t++) pthread_join(th[t], NULL);
    if (!rc) rc = jobs[0].rc;
    for (int t = 1; t < started && !rc; t++)
        if (!(rc = jobs[t].rc)) rc = append(out, &tb->t[t - 1], gather);
    if (!rc && !gather) out->nparts = nthreads;
    return rc;
}

int sp_walk_advance(const sp_walk_graph *g, const sp_walk_params *p, const sp_walker *w, size_t n, int nthreads,
                    sp_walk_out *out) {
    return advance(g, p, w, n, nthreads, out, 1);
}

int sp_walk_advance_parts(const sp_walk_graph *g, const sp_walk_params *p, const sp_walker *w, size_t n,
                          int nthreads, sp_walk_out *out) {
    return advance(g, p, w, n, nthreads, out, 0);
}

/* a before b: more visits first, then the smaller external id */
static inline int nbr_before(const sp_nbr *a, const sp_nbr *b) {
    return a->count != b->count ? a->count > b->count : a->ext < b->ext;
}

/* Hoare partition of a[0, n) (n > 2) around the median of a[0], a[n/2],
 * a[n-1]: returns j with a[0, j] not after the pivot and a[j+1, n) not
 * before it, 0 <= j < n - 1. */
static size_t partition_nbr(sp_nbr *a, size_t n) {
    size_t mid = n / 2;
    if (nbr_before(&a[mid], &a[0])) { sp_nbr t = a[mid]; a[mid] = a[0]; a[0] = t; }
    if (nbr_before(&a[n - 1], &a[0])) { sp_nbr t = a[n - 1]; a[n - 1] = a[0]; a[0] = t; }
    if (nbr_before(&a[n - 1], &a[mid])) { sp_nbr t = a[n - 1]; a[n - 1] = a[mid]; a[mid] = t; }
    sp_nbr pivot = a[mid];
    size_t i = 0, j = n - 1;
    for (;;) {
        while (nbr_before(&a[i], &pivot)) i++;
        while (nbr_before(&pivot, &a[j])) j--;
        if (i >= j) return j;
        sp_nbr t = a[i]; a[i] = a[j]; a[j] = t;
        i++;
        j--;
    }
}

/* Quicksort specialised to sp_nbr (glibc's qsort, an indirect-call merge
 * sort, was a fifth of the walks stage). Keys are unique (ext), so the order
 * is total and the result does not depend on the algorithm. */
static void sort_nbr(sp_nbr *a, size_t n) {
    while (n > 16) {
        size_t j = partition_nbr(a, n);
        /* recurse into the smaller side, loop on the larger */
        if (j + 1 < n - j - 1) {
            sort_nbr(a, j + 1);
            a += j + 1;
            n -= j + 1;
        } else {
            sort_nbr(a + j + 1, n - j - 1);
            n = j + 1;
        }
    }
    for (size_t i = 1; i < n; i++) {
        sp_nbr t = a[i];
        size_t k = i;
        while (k > 0 && nbr_before(&t, &a[k - 1])) {
            a[k] = a[k - 1];
            k--;
        }
        a[k] = t;
    }
}

/* Moves the k first entries of a (in nbr_before order) to a[0, k), in any
 * order (quickselect, Hoare partition, median of three): sp_walk_topt keeps
 * the top t of a list it need not rank whole, so only those t get sorted. */
static void select_nbr(sp_nbr *a, size_t n, size_t k) {
    while (n > 16 && k > 0 && k < n) {
        size_t j = partition_nbr(a, n);
        if (k <= j + 1) n = j + 1;
        else {
            a += j + 1;
            k -= j + 1;
            n -= j + 1;
        }
    }
    if (n <= 16) sort_nbr(a, n);
}

/* Scratch of sp_walk_topt, per thread: an open-addressing table of indices
 * into the list of distinct nodes (0: empty, else index + 1), and that list
 * when the caller passes none; grown as needed. The table is 4 bytes a slot so
 * clearing it costs little; the counts live in the list, which is read in
 * order afterwards (no scan of the table). */
static _Thread_local struct {
    uint32_t *slot;
    size_t cap;
    sp_nbr *list;
    size_t listcap;
} topt_tls;

size_t sp_walk_topt(const sp_visit *v, size_t n, const uint64_t *self, size_t t, sp_nbr *top, sp_nbr *ranked,
                    size_t *nranked) {
    if (nranked) *nranked = 0;
    if (n >= UINT32_MAX) {
        sp_err(SP_ENOMEM, "walk: %zu visits of one source and type (at most 2^32 - 1)", n);
        return SP_WALK_TOPT_ENOMEM;
    }
    size_t want = 16;
    while (want < 2 * n) want *= 2;
    if (sp_grow((void **)&topt_tls.slot, &topt_tls.cap, want, sizeof *topt_tls.slot)) return SP_WALK_TOPT_ENOMEM;
    sp_nbr *list = ranked;
    if (!list) {
        if (sp_grow((void **)&topt_tls.list, &topt_tls.listcap, n, sizeof *topt_tls.list)) return SP_WALK_TOPT_ENOMEM;
        list = topt_tls.list;
    }
    /* count by external id (the caller passes visits of one type) in the
     * first `want` (a power of two >= 2n) slots of the table */
    size_t mask = want - 1, m = 0;
    uint32_t *tab = topt_tls.slot;
    memset(tab, 0, want * sizeof *tab);
    for (size_t i = 0; i < n; i++) {
        uint64_t x = v[i].ext;
        if (self && x == *self) continue;
        size_t h = (size_t)sp_mix64(x) & mask;
        while (tab[h] && list[tab[h] - 1].ext != x) h = (h + 1) & mask;
        if (!tab[h]) {
            list[m] = (sp_nbr){x, v[i].ref, 0, 0};
            tab[h] = (uint32_t)++m;
        }
        list[tab[h] - 1].count++;
    }
    size_t k = m < t ? m : t;
    if (ranked || k == m) sort_nbr(list, m); /* the whole order is asked for, or everything is kept */
    else {
        select_nbr(list, m, k);
        sort_nbr(list, k);
    }
    double sum = 0;
    for (size_t i = 0; i < k; i++) sum += list[i].count;
    for (size_t i = 0; i < k; i++) {
        top[i] = list[i];
        top[i].weight = (float)(list[i].count / sum);
    }
    if (nranked) *nranked = ranked ? m : 0;
    return k;
}

uint64_t sp_nbr_weights(const sp_nbr *v, uint64_t n, uint64_t keep, float *w) {
    uint64_t m = n < keep ? n : keep;
    double tot = 0;
    for (uint64_t j = 0; j < m; j++) tot += v[j].count;
    for (uint64_t j = 0; j < m; j++) w[j] = tot > 0 ? (float)(v[j].count / tot) : 0.f;
    return m;
}
