/* bench_walks: throughput of the random-walk engine (sp_walk_advance_parts) against
 * a reference interleaved C loop, on a synthetic graph built in memory.
 *
 *   bench_walks [--pins P] [--boards B] [--edges E] [--threads N[,N...]]
 *               [--walks 200] [--traversals 3] [--stop 0.5] [--sources S]
 *               [--seed 1] [--repeat 3] [--batch 20000] [--ref-batch 128]
 *
 * Defaults: 3M pins, 1M boards, 40M edges, threads 1 and the CPU count.
 * The graph comes from sp_gen_edges (the edges of `sagepipe gen`'s
 * pin_board.tsv: uniform pins, power-law boards), built as single-rank CSR in
 * both directions with ascending neighbour ids (gen ids 1..P and 1..B are
 * local indices 0..P-1 and 0..B-1). Walks start from S pins spread evenly
 * over the id range (default: enough for ~2.5 s of the reference loop at that
 * thread count, all pins if fewer), `walks` walks each.
 *
 * reference: N pthreads, each interleaving --ref-batch walkers (128) with
 *   prefetch of the next node's offsets and the chosen adjacency entry, the
 *   same draws (sp_walk_draw) and stop rule as the engine, counting steps only.
 * reference_visits: the same loop, also writing every visit, 16 bytes
 *   (source << 8 | type, node's local index), with plain stores into a
 *   per-thread 256 MB ring: the least a loop that reports its visits writes
 *   (it has no external ids, no walkers leaving, no input walkers).
 * engine: sp_walk_advance_parts with nthreads N over the walkers of --batch sources
 *   at a time (one multi-start record per source, as the walks stage gives
 *   them; window-local slots), reusing its output buffers; visits are
 *   counted and discarded. Only the sp_walk_advance_parts calls are timed (walker
 *   setup is not); recording visits is part of the engine's cost.
 *
 * Both must take exactly the same steps (same draws); a mismatch, a visit
 * count other than the step count, or a walker leaving the rank is an error
 * (exit 1). One JSON line per (thread count, impl) on stdout, the best of
 * --repeat runs (the three alternate within each run); ratio_to_reference is
 * to the bare loop, the engine's ratio_to_reference_visits to the recording
 * one; generation and CSR times on stderr. */
#include "gen.h"
#include "graph.h"
#include "sp_base.h"
#include "walk.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREAD_COUNTS 16

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

static void die(const char *what, int rc) {
    fprintf(stderr, "bench_walks: %s: %s%s%s\n", what, sp_strerror(rc), *sp_errmsg() ? ": " : "", sp_errmsg());
    exit(1);
}

/* The graph's arrays are read at random by both loops: 2 MiB pages
 * (sp_alloc_huge), as the pipeline's stage files and node records get them. */
static void *xmalloc(size_t n) {
    void *p = sp_alloc_huge(n);
    if (!p) {
        fprintf(stderr, "bench_walks: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* ---- graph ---- */

typedef struct {
    uint64_t P, B, E;
    uint64_t *pin_ids, *board_ids;
    uint64_t *pin_off, *pin_adj;     /* pin -> boards (local board index = gref on rank 0) */
    uint64_t *board_off, *board_adj; /* board -> pins */
} graph;

static void sort_u64(uint64_t *a, size_t n) {
    while (n > 16) {
        uint64_t x = a[0], y = a[n / 2], z = a[n - 1];
        uint64_t piv = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t i = 0, j = n - 1;
        for (;;) {
            while (a[i] < piv) i++;
            while (a[j] > piv) j--;
            if (i >= j) break;
            uint64_t t = a[i]; a[i] = a[j]; a[j] = t;
            i++;
            j--;
        }
        /* [0, j] <= piv <= [j+1, n): recurse into the smaller part */
        size_t nl = j + 1;
        if (nl < n - nl) {
            sort_u64(a, nl);
            a += nl;
            n -= nl;
        } else {
            sort_u64(a + nl, n - nl);
            n = nl;
        }
    }
    for (size_t i = 1; i < n; i++) {
        uint64_t v = a[i];
        size_t k = i;
        while (k && a[k - 1] > v) { a[k] = a[k - 1]; k--; }
        a[k] = v;
    }
}

typedef struct {
    graph *g;
    uint64_t n, cap;   /* edges stored in board_adj, its capacity */
    uint64_t board;    /* current board id (0 before the first) */
    uint64_t start;    /* its first edge */
} build_ctx;

static void close_board(build_ctx *c) {
    if (c->board) sort_u64(c->g->board_adj + c->start, (size_t)(c->n - c->start));
}

static int on_edge(void *ctx, uint64_t pin, uint64_t board) {
    build_ctx *c = ctx;
    graph *g = c->g;
    if (pin < 1 || pin > g->P || board < 1 || board > g->B || board < c->board)
        return sp_err(SP_EINTERNAL, "edge (%" PRIu64 ", %" PRIu64 ") out of range or out of board order", pin, board);
    if (board != c->board) {
        close_board(c);
        c->board = board;
        c->start = c->n;
    }
    if (c->n == c->cap) {
        uint64_t nc = c->cap ? c->cap * 2 : 1024;
        uint64_t *p = realloc(g->board_adj, nc * sizeof *p);
        if (!p) return SP_ENOMEM;
        g->board_adj = p;
        c->cap = nc;
    }
    g->board_adj[c->n++] = sp_gref_make(0, pin - 1);
    g->board_off[board]++; /* count of local board `board-1`, prefix-summed later */
    return SP_OK;
}

static void build_graph(graph *g, uint64_t P, uint64_t B, uint64_t E, uint64_t seed) {
    memset(g, 0, sizeof *g);
    g->P = P;
    g->B = B;
    sp_gen_opts o;
    sp_gen_defaults(&o);
    o.pins = P;
    o.boards = B;
    o.edges = E;
    o.seed = seed;
    o.dim = 0;
    o.tokens = 0;
    double t0 = now_s();
    g->board_off = xmalloc((B + 1) * sizeof *g->board_off);
    g->pin_off = xmalloc((P + 1) * sizeof *g->pin_off);
    g->board_adj = xmalloc((E ? E : 1) * sizeof *g->board_adj);
    memset(g->board_off, 0, (B + 1) * sizeof *g->board_off);
    memset(g->pin_off, 0, (P + 1) * sizeof *g->pin_off);
    build_ctx c = {.g = g, .cap = E ? E : 1};
    int rc = sp_gen_edges(&o, on_edge, &c);
    if (rc) die("sp_gen_edges", rc);
    close_board(&c);
    g->E = c.n;
    for (uint64_t b = 0; b < B; b++) g->board_off[b + 1] += g->board_off[b];
    double t1 = now_s();
    /* pin -> boards by counting sort: pin_off[i] = end of pin i's list, then
     * boards placed from the highest down leave each list ascending and
     * pin_off[i] at its start. */
    g->pin_adj = xmalloc(g->E * sizeof *g->pin_adj);
    for (uint64_t e = 0; e < g->E; e++) g->pin_off[sp_gref_local(g->board_adj[e])]++;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < P; i++) {
        sum += g->pin_off[i];
        g->pin_off[i] = sum;
    }
    g->pin_off[P] = sum;
    for (uint64_t b = B; b-- > 0;)
        for (uint64_t e = g->board_off[b + 1]; e-- > g->board_off[b];)
            g->pin_adj[--g->pin_off[sp_gref_local(g->board_adj[e])]] = sp_gref_make(0, b);
    for (uint64_t b = 0; b < B; b++)
        for (uint64_t e = g->board_off[b] + 1; e < g->board_off[b + 1]; e++)
            if (g->board_adj[e - 1] >= g->board_adj[e]) die("board list not strictly ascending", SP_EINTERNAL);
    for (uint64_t i = 0; i < P; i++)
        for (uint64_t e = g->pin_off[i] + 1; e < g->pin_off[i + 1]; e++)
            if (g->pin_adj[e - 1] >= g->pin_adj[e]) die("pin list not strictly ascending", SP_EINTERNAL);
    g->pin_ids = xmalloc(P * sizeof *g->pin_ids);
    g->board_ids = xmalloc(B * sizeof *g->board_ids);
    for (uint64_t i = 0; i < P; i++) g->pin_ids[i] = i + 1;
    for (uint64_t i = 0; i < B; i++) g->board_ids[i] = i + 1;
    double t2 = now_s();
    fprintf(stderr, "bench_walks: generated %" PRIu64 " edges (pins %" PRIu64 ", boards %" PRIu64 ") in %.2f s, "
            "CSR both directions in %.2f s\n", g->E, P, B, t1 - t0, t2 - t1);
}

static uint64_t graph_bytes(const graph *g) {
    return 8 * ((g->P + 1) + (g->B + 1) + 2 * g->E + g->P + g->B);
}

static void graph_free(graph *g) {
    free(g->pin_ids);
    free(g->board_ids);
    free(g->pin_off);
    free(g->pin_adj);
    free(g->board_off);
    free(g->board_adj);
}

/* Source k of S: pin 1 + floor(k * P / S) (spread over the id range). */
static inline uint64_t source_pin(uint64_t k, uint64_t S, uint64_t P) {
    return 1 + (uint64_t)((unsigned __int128)k * P / S);
}

/* ---- reference interleaved C loop ---- */

typedef struct {
    const graph *g;
    const sp_walk_params *p;
    uint64_t S, nwalkers;  /* sources, walkers = S * walks */
    _Atomic uint64_t next; /* next unclaimed walker */
    int batch;
} ref_shared;

/* A visit as the recording reference writes it: (source << 8 | type, node). */
typedef struct { uint64_t key, node; } ref_visit;
#define REF_RING (1u << 24) /* visits per thread's ring buffer: 256 MB, far beyond the caches */

typedef struct {
    ref_shared *sh;
    uint64_t steps, visits;
    ref_visit *ring; /* recording reference only */
} ref_job;

typedef struct {
    uint64_t h;    /* mix64(mix64(seed ^ K)) ^ mix64(src ^ salt): the draw is mix64(h ^ ws * phi) */
    uint64_t ws;   /* walk << 16 | step */
    uint64_t node; /* current node's local index */
    uint64_t pos;  /* chosen adjacency entry (stage 1) */
    uint64_t src;  /* source index (recording reference) */
    uint32_t on_board, stage;
} ref_slot;

#define REF_CHUNK 1024 /* walkers claimed at a time */
#define PHI 0x9e3779b97f4a7c15ULL

/* The loop; `record` (a constant in each caller, so the bare loop carries no
 * trace of it) also writes each visit into the thread's ring buffer. */
static inline __attribute__((always_inline)) void ref_loop(ref_job *job, const int record) {
    ref_shared *sh = job->sh;
    const graph *g = sh->g;
    const sp_walk_params *p = sh->p;
    const uint64_t *offs[2] = {g->pin_off, g->board_off};
    const uint64_t *adjs[2] = {g->pin_adj, g->board_adj};
    const uint64_t hseed = sp_mix64(p->seed ^ 0x5bd1e9955bd1e995ULL), salt = sp_type_salt[SP_PIN];
    const uint64_t maxstep = 2 * (uint64_t)p->traversals;
    /* unif(u) < stop  <=>  (u >> 11) < ceil(stop * 2^53) */
    double st = p->stop * 0x1.0p53;
    uint64_t stop_lim = st <= 0 ? 0 : st >= 0x1.0p53 ? (1ULL << 53) : (uint64_t)st + ((double)(uint64_t)st < st);
    const uint32_t walks = p->walks;
    const int B = sh->batch;
    ref_slot *sl = xmalloc((size_t)B * sizeof *sl);
    uint64_t mine = 0, mine_end = 0, steps = 0, nrec = 0;
    ref_visit *ring = job->ring;
    /* cached decomposition of the claimed walker index */
    uint64_t cur_src = UINT64_MAX, cur_h = 0, cur_node = 0;
    int nlive = 0;
    if (maxstep == 0) goto out; /* no walk takes a step */

#define REFILL(s, ok)                                                                        \
    do {                                                                                     \
        if (mine == mine_end) {                                                              \
            mine = atomic_fetch_add_explicit(&sh->next, REF_CHUNK, memory_order_relaxed);    \
            mine_end = mine + REF_CHUNK;                                                     \
            if (mine > sh->nwalkers) mine = sh->nwalkers;                                    \
            if (mine_end > sh->nwalkers) mine_end = sh->nwalkers;                            \
        }                                                                                    \
        (ok) = mine < mine_end;                                                              \
        if (ok) {                                                                            \
            uint64_t k = mine / walks, w = mine % walks;                                     \
            mine++;                                                                          \
            if (k != cur_src) {                                                              \
                cur_src = k;                                                                 \
                uint64_t pin = source_pin(k, sh->S, g->P);                                   \
                cur_h = hseed ^ sp_mix64(pin ^ salt);                                        \
                cur_node = pin - 1;                                                          \
                __builtin_prefetch(&g->pin_off[cur_node]);                                   \
                __builtin_prefetch(&g->pin_off[cur_node + 1]);                               \
            }                                                                                \
            (s)->h = cur_h;                                                                  \
            (s)->ws = w << 16;                                                               \
            (s)->node = cur_node;                                                            \
            (s)->src = k;                                                                    \
            (s)->on_board = 0;                                                               \
            (s)->stage = 0;                                                                  \
        }                                                                                    \
    } while (0)

    for (int b = 0; b < B; b++) {
        int ok;
        REFILL(&sl[b], ok);
        if (!ok) break;
        nlive++;
    }
    while (nlive > 0) {
        for (int b = 0; b < nlive; b++) {
            ref_slot *s = &sl[b];
            int ended;
            if (s->stage == 0) {
                const uint64_t *off = offs[s->on_board];
                uint64_t lo = off[s->node], deg = off[s->node + 1] - lo;
                if (deg) {
                    uint64_t u = sp_mix64(s->h ^ (s->ws * PHI));
                    s->pos = lo + (uint64_t)(((unsigned __int128)u * deg) >> 64);
                    __builtin_prefetch(&adjs[s->on_board][s->pos]);
                    s->stage = 1;
                    continue;
                }
                ended = 1; /* dangling node */
            } else {
                uint64_t nb = adjs[s->on_board][s->pos];
                s->ws++;
                steps++;
                s->on_board ^= 1;
                if (record) ring[nrec++ & (REF_RING - 1)] = (ref_visit){s->src << 8 | s->on_board, nb};
                uint64_t step = s->ws & 0xffff;
                ended = step >= maxstep ||
                        ((step & 1) == 0 && (sp_mix64(s->h ^ ((s->ws | 0x8000u) * PHI)) >> 11) < stop_lim);
                if (!ended) {
                    s->node = sp_gref_local(nb);
                    const uint64_t *off = offs[s->on_board];
                    __builtin_prefetch(&off[s->node]);
                    __builtin_prefetch(&off[s->node + 1]);
                    s->stage = 0;
                    continue;
                }
            }
            if (ended) {
                int ok;
                REFILL(s, ok);
                if (!ok) {
                    sl[b] = sl[--nlive];
                    b--; /* process the moved slot in this turn */
                }
            }
        }
    }
#undef REFILL
out:
    free(sl);
    job->steps = steps;
    job->visits = nrec;
}

static void *ref_run(void *arg) {
    ref_loop(arg, 0);
    return NULL;
}

static void *ref_run_rec(void *arg) {
    ref_loop(arg, 1);
    return NULL;
}

/* rings: NULL for the bare loop, else one REF_RING buffer per thread (the recording loop). */
static double run_reference(const graph *g, const sp_walk_params *p, uint64_t S, int nthreads, int batch,
                            ref_visit **rings, uint64_t *steps_out) {
    void *(*fn)(void *) = rings ? ref_run_rec : ref_run;
    ref_shared sh = {.g = g, .p = p, .S = S, .nwalkers = S * p->walks, .batch = batch};
    atomic_init(&sh.next, 0);
    ref_job *jobs = xmalloc((size_t)nthreads * sizeof *jobs);
    pthread_t *th = xmalloc((size_t)nthreads * sizeof *th);
    double t0 = now_s();
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = (ref_job){.sh = &sh, .ring = rings ? rings[t] : NULL};
        if (t > 0 && pthread_create(&th[t], NULL, fn, &jobs[t])) die("pthread_create", SP_EINTERNAL);
    }
    fn(&jobs[0]);
    for (int t = 1; t < nthreads; t++) pthread_join(th[t], NULL);
    double dt = now_s() - t0;
    uint64_t steps = 0, visits = 0;
    for (int t = 0; t < nthreads; t++) steps += jobs[t].steps, visits += jobs[t].visits;
    if (rings && visits != steps) {
        fprintf(stderr, "bench_walks: recording reference wrote %" PRIu64 " visits for %" PRIu64 " steps\n", visits,
                steps);
        exit(1);
    }
    free(jobs);
    free(th);
    *steps_out = steps;
    return dt;
}

/* ---- engine ---- */

static double run_engine(const graph *g, const sp_walk_graph *wg, const sp_walk_params *p, uint64_t S, int nthreads,
                         uint64_t batch, sp_walker *w, sp_walk_out *out, uint64_t *steps_out, uint64_t *visits_out) {
    double t = 0;
    uint64_t steps = 0, visits = 0;
    for (uint64_t s0 = 0; s0 < S; s0 += batch) {
        uint64_t s1 = s0 + batch < S ? s0 + batch : S;
        size_t n = 0;
        for (uint64_t k = s0; k < s1; k++) {
            uint64_t pin = source_pin(k, S, g->P);
            for (uint32_t j = 0; j < p->walks; j += SP_WALK_MAX_STARTS, n++) { /* multi-start records */
                memset(&w[n], 0, sizeof w[n]);
                w[n].src = pin;
                w[n].node = sp_gref_make(0, pin - 1);
                w[n].slot = (uint32_t)(k - s0);
                w[n].walk = j;
                w[n].step = 0;
                w[n].src_type = SP_PIN;
                w[n].starts = (uint16_t)(p->walks - j < SP_WALK_MAX_STARTS ? p->walks - j : SP_WALK_MAX_STARTS);
            }
        }
        out->nvisits = out->naway = 0;
        out->steps = 0;
        double t0 = now_s();
        int rc = sp_walk_advance_parts(wg, p, w, n, nthreads, out);
        t += now_s() - t0;
        if (rc) die("sp_walk_advance_parts", rc);
        if (out->naway) {
            fprintf(stderr, "bench_walks: engine: %zu walkers left a single-rank graph\n", out->naway);
            exit(1);
        }
        steps += out->steps;
        visits += sp_walk_out_total(out);
    }
    *steps_out = steps;
    *visits_out = visits;
    return t;
}

/* ---- main ---- */

static void usage(void) {
    fputs("usage: bench_walks [--pins P] [--boards B] [--edges E] [--threads N[,N...]] [--walks 200]\n"
          "                   [--traversals 3] [--stop 0.5] [--sources S] [--seed 1] [--repeat 3]\n"
          "                   [--batch 20000] [--ref-batch 128]\n", stderr);
    exit(2);
}

static uint64_t parse_u64(const char *opt, const char *s) {
    char *e;
    if (!s || !*s || *s == '-') usage();
    unsigned long long v = strtoull(s, &e, 10);
    if (*e) {
        fprintf(stderr, "bench_walks: %s: expected a non-negative integer, got '%s'\n", opt, s);
        exit(2);
    }
    return v;
}

/* ratio_visits < 0: no ratio_to_reference_visits field. */
static void print_line(const char *impl, const graph *g, int threads, const sp_walk_params *p, uint64_t S,
                       uint64_t steps, double secs, double ratio, double ratio_visits) {
    printf("{\"bench\":\"walks\",\"impl\":\"%s\",\"pins\":%" PRIu64 ",\"boards\":%" PRIu64 ",\"edges\":%" PRIu64
           ",\"threads\":%d,\"walks\":%u,\"traversals\":%u,\"stop\":%g,\"sources\":%" PRIu64 ",\"steps\":%" PRIu64
           ",\"seconds\":%.4f,\"steps_per_s\":%.0f,\"sources_per_s\":%.1f,\"ratio_to_reference\":%.3f",
           impl, g->P, g->B, g->E, threads, p->walks, p->traversals, p->stop, S, steps, secs,
           secs > 0 ? (double)steps / secs : 0, secs > 0 ? (double)S / secs : 0, ratio);
    if (ratio_visits >= 0) printf(",\"ratio_to_reference_visits\":%.3f", ratio_visits);
    printf(",\"peak_rss_mb\":%.1f,\"graph_bytes\":%" PRIu64 "}\n", peak_rss_mb(), graph_bytes(g));
    fflush(stdout);
}

int main(int argc, char **argv) {
    uint64_t P = 3000000, B = 1000000, E = 40000000, S = 0, seed = 1, repeat = 3, batch = 20000, ref_batch = 128;
    sp_walk_params p = {.walks = 200, .traversals = 3, .stop = 0.5, .seed = 1};
    int threads[MAX_THREAD_COUNTS], nthr = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage();
        if (!v) usage();
        i++;
        if (!strcmp(a, "--pins")) P = parse_u64(a, v);
        else if (!strcmp(a, "--boards")) B = parse_u64(a, v);
        else if (!strcmp(a, "--edges")) E = parse_u64(a, v);
        else if (!strcmp(a, "--sources")) S = parse_u64(a, v);
        else if (!strcmp(a, "--seed")) seed = parse_u64(a, v);
        else if (!strcmp(a, "--repeat")) repeat = parse_u64(a, v);
        else if (!strcmp(a, "--batch")) batch = parse_u64(a, v);
        else if (!strcmp(a, "--ref-batch")) ref_batch = parse_u64(a, v);
        else if (!strcmp(a, "--walks")) {
            uint64_t x = parse_u64(a, v);
            if (x < 1 || x > 65535) { fprintf(stderr, "bench_walks: --walks must be 1..65535\n"); return 2; }
            p.walks = (uint32_t)x;
        } else if (!strcmp(a, "--traversals")) {
            uint64_t x = parse_u64(a, v);
            if (x > 16383) { fprintf(stderr, "bench_walks: --traversals must be <= 16383\n"); return 2; }
            p.traversals = (uint32_t)x;
        } else if (!strcmp(a, "--stop")) {
            char *e;
            p.stop = strtod(v, &e);
            if (*e || !(p.stop >= 0 && p.stop <= 1)) { fprintf(stderr, "bench_walks: --stop must be in [0, 1]\n"); return 2; }
        } else if (!strcmp(a, "--threads")) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                uint64_t x = parse_u64(a, t);
                if (x < 1 || x > 1024 || nthr == MAX_THREAD_COUNTS) {
                    fprintf(stderr, "bench_walks: --threads: 1..1024, at most %d counts\n", MAX_THREAD_COUNTS);
                    return 2;
                }
                threads[nthr++] = (int)x;
            }
        } else usage();
    }
    p.seed = seed;
    if (nthr == 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads[nthr++] = 1;
        if (nc > 1) threads[nthr++] = (int)nc;
    }
    if (!P || !B || !E || !repeat || !batch || !ref_batch || ref_batch > 4096) {
        fprintf(stderr, "bench_walks: pins, boards, edges, repeat, batch must be > 0, ref-batch 1..4096\n");
        return 2;
    }
    if (batch * p.walks > UINT32_MAX) batch = UINT32_MAX / p.walks;

    graph g;
    build_graph(&g, P, B, E, seed);
    sp_walk_graph wg = {.rank = 0, .npins = P, .nboards = B, .pin_ids = g.pin_ids, .board_ids = g.board_ids,
                        .pin_off = g.pin_off, .pin_adj = g.pin_adj, .board_off = g.board_off,
                        .board_adj = g.board_adj};
    int prc = sp_walk_prepare(&wg);
    if (prc) die("node records", prc);
    int status = 0;
    sp_walker *w = NULL;
    size_t wcap = 0;
    int maxT = 1, nrings = 0;
    for (int ti = 0; ti < nthr; ti++) maxT = threads[ti] > maxT ? threads[ti] : maxT;
    ref_visit **rings = xmalloc((size_t)maxT * sizeof *rings);
    sp_walk_out out;
    memset(&out, 0, sizeof out);
    for (int ti = 0; ti < nthr; ti++) {
        int T = threads[ti];
        uint64_t nsrc = S;
        if (!nsrc) { /* calibrate: ~2.5 s of the reference loop (from a 16384-source sample) */
            uint64_t cs = P < 16384 ? P : 16384, st;
            double dt = run_reference(&g, &p, cs, T, (int)ref_batch, NULL, &st);
            nsrc = dt > 0 ? (uint64_t)(3.5 * (double)cs / dt) : P;
            if (nsrc < 1) nsrc = 1;
            if (nsrc > P) nsrc = P;
            fprintf(stderr, "bench_walks: threads %d: %" PRIu64 " sources (calibrated: %" PRIu64 " in %.3f s)\n", T,
                    nsrc, cs, dt);
        }
        uint64_t bsz = batch < nsrc ? batch : nsrc;
        if (bsz * p.walks > wcap) {
            free(w);
            wcap = bsz * p.walks;
            w = xmalloc(wcap * sizeof *w);
        }
        for (; nrings < T; nrings++) { /* the recording reference's rings, faulted in before any timing */
            rings[nrings] = xmalloc(REF_RING * sizeof **rings);
            memset(rings[nrings], 0, REF_RING * sizeof **rings);
        }
        double best_ref = 0, best_rec = 0, best_eng = 0;
        uint64_t ref_steps = 0, eng_steps = 0;
        for (uint64_t r = 0; r < repeat; r++) {
            uint64_t st, vis;
            double dt = run_reference(&g, &p, nsrc, T, (int)ref_batch, NULL, &st);
            if (r == 0 || dt < best_ref) best_ref = dt;
            ref_steps = st;
            double dr = run_reference(&g, &p, nsrc, T, (int)ref_batch, rings, &st);
            if (r == 0 || dr < best_rec) best_rec = dr;
            if (st != ref_steps) {
                fprintf(stderr, "bench_walks: recording reference took %" PRIu64 " steps, reference %" PRIu64 "\n",
                        st, ref_steps);
                status = 1;
            }
            double de = run_engine(&g, &wg, &p, nsrc, T, bsz, w, &out, &st, &vis);
            if (r == 0 || de < best_eng) best_eng = de;
            eng_steps = st;
            fprintf(stderr, "bench_walks: threads %d run %" PRIu64 ": reference %.3f s, recording %.3f s, engine %.3f s"
                    " (%" PRIu64 " steps, %" PRIu64 " visits)\n", T, r + 1, dt, dr, de, st, vis);
            if (vis != st) {
                fprintf(stderr, "bench_walks: engine recorded %" PRIu64 " visits for %" PRIu64 " steps\n", vis, st);
                status = 1;
            }
            if (ref_steps != eng_steps) {
                fprintf(stderr, "bench_walks: engine took %" PRIu64 " steps, reference %" PRIu64 "\n", eng_steps,
                        ref_steps);
                status = 1;
            }
        }
        double rr = (double)ref_steps / best_ref, vr = (double)ref_steps / best_rec, er = (double)eng_steps / best_eng;
        print_line("reference", &g, T, &p, nsrc, ref_steps, best_ref, 1.0, -1);
        print_line("reference_visits", &g, T, &p, nsrc, ref_steps, best_rec, rr > 0 ? vr / rr : 0, 1.0);
        print_line("engine", &g, T, &p, nsrc, eng_steps, best_eng, rr > 0 ? er / rr : 0, vr > 0 ? er / vr : 0);
    }
    for (int t = 0; t < nrings; t++) free(rings[t]);
    free(rings);
    sp_walk_out_free(&out);
    free(w);
    sp_walk_release(&wg);
    graph_free(&g);
    return status;
}
