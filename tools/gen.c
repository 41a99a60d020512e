/* gen: synthetic pin-board graph, pin features, tokens and one day of user
 * events with planted communities (DESIGN §3 files), streamed board by board.
 *
 * Model (all draws from per-entity RNG streams, so output depends only on the
 * options, never on processing order):
 * - pins are laid out by a keyed bijection pos = perm(pin-1) on [0, P);
 *   community c owns the contiguous positions [c*P/C, (c+1)*P/C), so
 *   community(pin) is O(1) and "a random pin of community c" is perm^-1 of a
 *   random position in that block, also O(1);
 * - board b has community mix64(b ^ key) % C and a Pareto(alpha 1.2) weight;
 *   sizes are 1 + the weights' share of E - B (cumulative rounding, so they
 *   sum to exactly E), clipped to a cap of max(community size, 4E/B) (<= P);
 * - a board's pins come from its community with prob 0.8, else uniform, with
 *   no duplicates (an open-addressing set of the board's pins);
 * - dense features: community centroid ~ N(0, I) plus N(0, 0.5^2 I) noise;
 * - tokens: 3-8 per pin, 85% "c<comm>_w<0..31>", else "g<0..999>";
 * - users have 1-3 favourite communities and an Exp(1) activity weight; their
 *   share of N events fall in jittered slots of a random span of the day, so
 *   each user's timestamps strictly increase (no duplicate rows). */
#include "gen.h"
#include "sfv.h"
#include "fsutil.h"
#include "sp_base.h"
#include "tsv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define GEN_BUF (8u << 20)
#define PARETO_ALPHA 1.2
#define P_IN_COMMUNITY_OF_5 4 /* 4/5 = 0.8 */
#define NOISE_SIGMA 0.5f
#define COMM_WORDS 32
#define GLOBAL_WORDS 1000
#define EDGE_HISTORY_DAYS 730

/* Stream ids for sp_rng_init(seed, SP_RNG_GEN, id): high byte = use. */
enum { ST_BOARD = 1, ST_PIN_DENSE = 2, ST_PIN_TOK = 3, ST_CENTROID = 4, ST_USER = 5, ST_USER_W = 6, ST_KEYS = 7,
       ST_BOARD_W = 8 };
#define STREAM(kind, id) (((uint64_t)(kind) << 56) ^ (uint64_t)(id))

/* ---- keyed permutation of [0, P) ---- */

typedef struct {
    uint64_t P, C, mask;
    unsigned k, s1, s2;
    uint64_t a1, a2, x1, m1, m2, im1, im2;
    uint64_t board_key;
} gen_ctx;

static uint64_t inv_odd(uint64_t m) {
    uint64_t x = m; /* Newton: 3 -> 6 -> 12 -> 24 -> 48 -> 96 correct bits */
    for (int i = 0; i < 5; i++) x *= 2 - m * x;
    return x;
}

static uint64_t unxorshift(uint64_t y, unsigned s, unsigned k) {
    uint64_t r = y;
    for (unsigned t = s; t < k; t += s) r ^= y >> t;
    return r;
}

static uint64_t bij(const gen_ctx *g, uint64_t x) {
    uint64_t m = g->mask;
    x = (x + g->a1) & m;
    x ^= x >> g->s1;
    x = (x * g->m1) & m;
    x ^= g->x1;
    x ^= x >> g->s2;
    x = (x * g->m2) & m;
    x = (x + g->a2) & m;
    return x;
}

static uint64_t bij_inv(const gen_ctx *g, uint64_t x) {
    uint64_t m = g->mask;
    x = (x - g->a2) & m;
    x = (x * g->im2) & m;
    x = unxorshift(x, g->s2, g->k);
    x ^= g->x1;
    x = (x * g->im1) & m;
    x = unxorshift(x, g->s1, g->k);
    x = (x - g->a1) & m;
    return x;
}

/* Cycle walking keeps the bijection inside [0, P); < 2 rounds expected. */
static inline uint64_t perm_fwd(const gen_ctx *g, uint64_t i) {
    do i = bij(g, i); while (i >= g->P);
    return i;
}
static inline uint64_t perm_inv(const gen_ctx *g, uint64_t p) {
    do p = bij_inv(g, p); while (p >= g->P);
    return p;
}

static inline uint64_t comm_start(const gen_ctx *g, uint64_t c) {
    return (uint64_t)((unsigned __int128)c * g->P / g->C);
}

static uint64_t comm_of_pos(const gen_ctx *g, uint64_t pos) {
    uint64_t c = (uint64_t)((unsigned __int128)pos * g->C / g->P);
    while (c + 1 < g->C && comm_start(g, c + 1) <= pos) c++;
    while (c > 0 && comm_start(g, c) > pos) c--;
    return c;
}

static inline uint64_t pin_in_comm(const gen_ctx *g, sp_rng *r, uint64_t c) {
    uint64_t lo = comm_start(g, c), hi = comm_start(g, c + 1);
    return perm_inv(g, lo + sp_rng_below(r, hi - lo)) + 1;
}

static void ctx_init(gen_ctx *g, const sp_gen_opts *o) {
    memset(g, 0, sizeof *g);
    g->P = o->pins;
    uint64_t C = o->communities;
    if (!C) C = (uint64_t)llround(sqrt((double)o->boards));
    if (C < 1) C = 1;
    if (g->P && C > g->P) C = g->P;
    g->C = C;
    unsigned k = 1;
    while (k < 64 && (1ULL << k) < g->P) k++;
    g->k = k;
    g->mask = k == 64 ? ~0ULL : (1ULL << k) - 1;
    g->s1 = k / 2 ? k / 2 : 1;
    g->s2 = (k + 2) / 3 ? (k + 2) / 3 : 1;
    sp_rng r;
    sp_rng_init(&r, o->seed, SP_RNG_GEN, STREAM(ST_KEYS, 0));
    g->a1 = sp_rng_u64(&r) & g->mask;
    g->a2 = sp_rng_u64(&r) & g->mask;
    g->x1 = sp_rng_u64(&r) & g->mask;
    g->m1 = (sp_rng_u64(&r) | 1) & g->mask;
    g->m2 = (sp_rng_u64(&r) | 1) & g->mask;
    g->im1 = inv_odd(g->m1) & g->mask;
    g->im2 = inv_odd(g->m2) & g->mask;
    g->board_key = sp_rng_u64(&r);
}

static inline uint64_t board_comm(const gen_ctx *g, uint64_t b) { return sp_mix64(b ^ g->board_key) % g->C; }

uint32_t sp_gen_pin_community(const sp_gen_opts *o, uint64_t pin) {
    gen_ctx g;
    ctx_init(&g, o);
    if (pin < 1 || pin > g.P) return 0;
    return (uint32_t)comm_of_pos(&g, perm_fwd(&g, pin - 1));
}

void sp_gen_defaults(sp_gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->dim = 16;
    o->seed = 1;
    o->tokens = 1;
    sp_date_parse("2026-11-21", &o->day_ms);
}

/* ---- buffered output ---- */

typedef struct {
    FILE *f;
    char *buf;
    size_t n;
    char tmp[4096], final[4096];
    const char *what;
    const sp_gen_opts *o;
    double last_report;
} out_file;

static const char digits2[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static inline char *put_u64(char *p, uint64_t v) {
    char t[24];
    char *e = t + sizeof t, *s = e;
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100) * 2;
        v /= 100;
        *--s = digits2[d + 1];
        *--s = digits2[d];
    }
    if (v >= 10) {
        *--s = digits2[v * 2 + 1];
        *--s = digits2[v * 2];
    } else {
        *--s = (char)('0' + v);
    }
    size_t n = (size_t)(e - s);
    memcpy(p, s, n);
    return p + n;
}

static inline char *put_i64(char *p, int64_t v) {
    if (v < 0) { *p++ = '-'; return put_u64(p, (uint64_t)0 - (uint64_t)v); }
    return put_u64(p, (uint64_t)v);
}

static inline char *put_str(char *p, const char *s, size_t n) {
    memcpy(p, s, n);
    return p + n;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void report(out_file *f, uint64_t done, uint64_t total, int force) {
    if (!f->o->progress) return;
    double t = now_s();
    if (!force && t - f->last_report < 0.25) return;
    f->last_report = t;
    f->o->progress(f->o->progress_ctx, f->what, done, total);
}

static int out_open(out_file *f, const sp_gen_opts *o, const char *dir, const char *name, int text) {
    memset(f, 0, sizeof *f);
    f->o = o;
    f->what = name;
    f->last_report = now_s();
    if ((size_t)snprintf(f->final, sizeof f->final, "%s/%s", dir, name) >= sizeof f->final ||
        (size_t)snprintf(f->tmp, sizeof f->tmp, "%s/%s.tmp", dir, name) >= sizeof f->tmp)
        return sp_err(SP_EUSAGE, "output path too long: %s/%s", dir, name);
    if (!text) return SP_OK;
    f->buf = malloc(GEN_BUF);
    if (!f->buf) return sp_err(SP_ENOMEM, "gen: output buffer for %s", f->tmp);
    f->f = fopen(f->tmp, "wb");
    if (!f->f) {
        int e = errno;
        free(f->buf);
        f->buf = NULL;
        return sp_err(SP_EIO, "%s: cannot create: %s", f->tmp, strerror(e));
    }
    setvbuf(f->f, NULL, _IONBF, 0); /* we buffer ourselves, in 8 MiB writes */
    return SP_OK;
}

static int out_flush(out_file *f) {
    if (f->n && fwrite(f->buf, 1, f->n, f->f) != f->n)
        return sp_err(SP_EIO, "%s: write error: %s", f->tmp, strerror(errno));
    f->n = 0;
    return SP_OK;
}

/* Room for one more row of at most `need` bytes. */
static inline int out_room(out_file *f, size_t need) {
    return f->n + need <= GEN_BUF ? SP_OK : out_flush(f);
}

static int out_commit(out_file *f) {
    int rc = out_flush(f);
    if (rc == SP_OK && (fflush(f->f) != 0 || fsync(fileno(f->f)) != 0))
        rc = sp_err(SP_EIO, "%s: write error: %s", f->tmp, strerror(errno));
    if (fclose(f->f) != 0 && rc == SP_OK) rc = sp_err(SP_EIO, "%s: close: %s", f->tmp, strerror(errno));
    f->f = NULL;
    free(f->buf);
    f->buf = NULL;
    if (rc == SP_OK && rename(f->tmp, f->final) != 0)
        rc = sp_err(SP_EIO, "rename %s -> %s: %s", f->tmp, f->final, strerror(errno));
    if (rc != SP_OK) unlink(f->tmp);
    return rc;
}

static void out_abort(out_file *f) {
    if (f->f) fclose(f->f);
    f->f = NULL;
    free(f->buf);
    f->buf = NULL;
    unlink(f->tmp);
}


/* ---- pin_board.tsv ---- */

/* Board sizes in place: w[b] holds board b+1's weight on entry, its size on
 * exit. Sizes sum to E, each >= 1 when E >= B, each <= cap. */
typedef union { float w; uint32_t n; } board_slot;

static void board_sizes(const sp_gen_opts *o, const gen_ctx *g, board_slot *s, uint64_t cap) {
    uint64_t B = o->boards, E = o->edges;
    uint64_t base = E >= B ? 1 : 0, X = E - base * B;
    for (uint64_t b = 0; b < B; b++) {
        sp_rng r;
        sp_rng_init(&r, o->seed, SP_RNG_GEN, STREAM(ST_BOARD_W, b + 1));
        double u = 1.0 - sp_rng_unif(&r); /* (0, 1] */
        s[b].w = (float)pow(u, -1.0 / PARETO_ALPHA);
    }
    (void)g;
    /* Clip weights at t so that no share exceeds cap - base: t = (cap-base) * W(t) / X,
     * found by a few fixed-point steps (leftovers are fixed below). */
    double t = INFINITY, W = 0;
    for (int it = 0; it < 8; it++) {
        W = 0;
        for (uint64_t b = 0; b < B; b++) W += fmin(s[b].w, t);
        if (X == 0) break;
        double nt = (double)(cap - base) * W / (double)X;
        if (nt >= t) break;
        t = nt;
    }
    double cum = 0;
    uint64_t prev = 0, excess = 0;
    for (uint64_t b = 0; b < B; b++) {
        cum += fmin(s[b].w, t);
        uint64_t F = b + 1 == B ? X : (uint64_t)floor(cum / W * (double)X);
        if (F > X) F = X;
        if (F < prev) F = prev;
        uint64_t n = base + (F - prev);
        prev = F;
        if (n > cap) { excess += n - cap; n = cap; }
        s[b].n = (uint32_t)n;
    }
    /* Hand clipped leftovers to boards with room, from a seeded offset. */
    if (excess && B) {
        sp_rng r;
        sp_rng_init(&r, o->seed, SP_RNG_GEN, STREAM(ST_BOARD_W, 0));
        uint64_t start = sp_rng_below(&r, B);
        for (uint64_t i = 0; i < B && excess; i++) {
            uint64_t b = (start + i) % B, room = cap - s[b].n, add = room < excess ? room : excess;
            s[b].n += (uint32_t)add;
            excess -= add;
        }
    }
}

/* The edge generator shared by pin_board.tsv and sp_gen_edges: calls edge()
 * for every (pin, board, ts) in file order (board by board) and board_end()
 * (may be NULL) after each non-empty board with the running edge count.
 * Stops at, and returns, the first non-zero edge() result. */
typedef int (*gen_edge_fn)(void *ctx, uint64_t pin, uint64_t board, int64_t ts);
typedef void (*gen_board_fn)(void *ctx, uint64_t board, uint64_t done);

static int gen_pin_board(const sp_gen_opts *o, const gen_ctx *g, gen_edge_fn edge, gen_board_fn board_end,
                         void *ctx) {
    uint64_t P = o->pins, B = o->boards, E = o->edges;
    uint64_t csize = P / g->C ? P / g->C : 1;
    uint64_t cap = csize > (4 * E + B - 1) / (B ? B : 1) ? csize : (4 * E + B - 1) / (B ? B : 1);
    if (cap > P) cap = P;
    if (cap > UINT32_MAX) cap = UINT32_MAX;
    board_slot *sizes = NULL;
    uint64_t *set = NULL;
    int rc = SP_OK;
    if (B) {
        sizes = malloc(B * sizeof *sizes);
        if (!sizes) { rc = sp_err(SP_ENOMEM, "gen: board sizes (%llu boards)", (unsigned long long)B); goto done; }
        board_sizes(o, g, sizes, cap);
    }
    uint64_t maxn = 0;
    for (uint64_t b = 0; b < B; b++) maxn = sizes[b].n > maxn ? sizes[b].n : maxn;
    size_t setcap = 16;
    while (setcap < 2 * maxn) setcap *= 2;
    set = malloc(setcap * sizeof *set);
    if (!set) { rc = sp_err(SP_ENOMEM, "gen: pin set of %zu slots", setcap); goto done; }
    uint64_t done = 0;
    /* the last EDGE_HISTORY_DAYS days and the date itself, none before 1970 (ingest rejects those) */
    const int64_t ts0 = o->day_ms > EDGE_HISTORY_DAYS * SP_DAY_MS ? o->day_ms - EDGE_HISTORY_DAYS * SP_DAY_MS : 0;
    const uint64_t ts_span = (uint64_t)(o->day_ms - ts0) + (uint64_t)SP_DAY_MS;
    for (uint64_t b = 1; b <= B; b++) {
        uint64_t n = sizes[b - 1].n;
        if (!n) continue;
        sp_rng r;
        sp_rng_init(&r, o->seed, SP_RNG_GEN, STREAM(ST_BOARD, b));
        if (n > P / 2) {
            /* Dense board: selection sampling (Knuth's algorithm S) over all pins. */
            uint64_t need = n;
            for (uint64_t pin = 1; pin <= P && need; pin++) {
                if (sp_rng_below(&r, P - pin + 1) >= need) continue;
                need--;
                if ((rc = edge(ctx, pin, b, ts0 + (int64_t)sp_rng_below(&r, ts_span)))) goto done;
            }
        } else {
            uint64_t c = board_comm(g, b);
            uint64_t comm_n = comm_start(g, c + 1) - comm_start(g, c), comm_used = 0;
            size_t sc = 16;
            while (sc < 2 * n) sc *= 2;
            size_t m = sc - 1;
            memset(set, 0, sc * sizeof *set);
            for (uint64_t i = 0; i < n; i++) {
                uint64_t pin;
                uint64_t x;
                for (;;) {
                    /* one draw: top 28 bits pick community-or-uniform, low 36 bits the timestamp */
                    x = sp_rng_u64(&r);
                    int in_comm = ((x >> 36) * 5 >> 28) < P_IN_COMMUNITY_OF_5 && 2 * comm_used < comm_n;
                    pin = in_comm ? pin_in_comm(g, &r, c) : 1 + sp_rng_below(&r, P);
                    size_t h = (size_t)sp_mix64(pin) & m;
                    while (set[h] && set[h] != pin) h = (h + 1) & m;
                    if (set[h]) continue; /* duplicate: draw again */
                    set[h] = pin;
                    comm_used += in_comm;
                    break;
                }
                if ((rc = edge(ctx, pin, b, ts0 + (int64_t)(((x & 0xfffffffffULL) * ts_span) >> 36)))) goto done;
            }
        }
        done += n;
        if (board_end) board_end(ctx, b, done);
    }
done:
    free(sizes);
    free(set);
    return rc;
}

/* pin_board.tsv rows from the generator. */
typedef struct {
    out_file f;
    uint64_t board, done; /* board whose id is in bstr; edges so far */
    size_t blen;
    char bstr[24];
} pb_writer;

static int pb_edge(void *ctx, uint64_t pin, uint64_t board, int64_t ts) {
    pb_writer *w = ctx;
    if (board != w->board) {
        w->board = board;
        w->blen = (size_t)(put_u64(w->bstr, board) - w->bstr);
    }
    int rc = out_room(&w->f, 80);
    if (rc) return rc;
    char *p = w->f.buf + w->f.n;
    p = put_u64(p, pin); *p++ = '\t';
    p = put_str(p, w->bstr, w->blen); *p++ = '\t';
    p = put_i64(p, ts); *p++ = '\n';
    w->f.n = (size_t)(p - w->f.buf);
    return SP_OK;
}

static void pb_board_end(void *ctx, uint64_t board, uint64_t done) {
    pb_writer *w = ctx;
    w->done = done;
    if ((board & 255) == 0) report(&w->f, done, w->f.o->edges, 0);
}

static int write_pin_board(const sp_gen_opts *o, const gen_ctx *g, const char *dir) {
    pb_writer w;
    memset(&w, 0, sizeof w);
    int rc = out_open(&w.f, o, dir, "pin_board.tsv", 1);
    if (rc) return rc;
    rc = gen_pin_board(o, g, pb_edge, pb_board_end, &w);
    if (rc == SP_OK) {
        rc = out_commit(&w.f);
        if (rc == SP_OK) report(&w.f, w.done, o->edges, 1);
    }
    if (rc && w.f.f) out_abort(&w.f);
    return rc;
}

/* In-memory edge stream (sp_gen_edges). */
typedef struct {
    int (*emit)(void *ctx, uint64_t pin, uint64_t board);
    void *ctx;
} edge_sink;

static int sink_edge(void *ctx, uint64_t pin, uint64_t board, int64_t ts) {
    const edge_sink *s = ctx;
    (void)ts;
    return s->emit(s->ctx, pin, board);
}

/* ---- pin_dense.sfv ---- */

static inline float gauss(sp_rng *r) {
    double u1 = ((double)(sp_rng_u64(r) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double u2 = sp_rng_unif(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static int write_dense(const sp_gen_opts *o, const gen_ctx *g, const char *dir) {
    uint32_t D = o->dim;
    out_file f;
    int rc = out_open(&f, o, dir, "pin_dense.sfv", 0);
    if (rc) return rc;
    float *cent = malloc(g->C * D * sizeof *cent), *v = malloc(D * sizeof *v);
    sp_sfv_writer *w = NULL;
    if (!cent || !v) { rc = sp_err(SP_ENOMEM, "gen: %llu centroids of dim %u", (unsigned long long)g->C, D); goto done; }
    for (uint64_t c = 0; c < g->C; c++) {
        sp_rng r;
        sp_rng_init(&r, o->seed, SP_RNG_GEN, STREAM(ST_CENTROID, c));
        for (uint32_t k = 0; k < D; k++) cent[c * D + k] = gauss(&r);
    }
    if ((rc = sp_sfv_write_begin(&w, f.tmp, D))) goto done;
    for (uint64_t pin = 1; pin <= o->pins; pin++) {
        uint64_t c = comm_of_pos(g, perm_fwd(g, pin - 1));
        sp_rng r;
        sp_rng_init(&r, o->seed, SP_RNG_GEN, STREAM(ST_PIN_DENSE, pin));
        for (uint32_t k = 0; k < D; k++) v[k] = cent[c * D + k] + NOISE_SIGMA * gauss(&r);
        if ((rc = sp_sfv_write(w, pin, v))) goto done;
        if ((pin & 65535) == 0) report(&f, pin, o->pins, 0);
    }
    rc = sp_sfv_write_end(w);
    w = NULL;
    if (rc == SP_OK && rename(f.tmp, f.final) != 0)
        rc = sp_err(SP_EIO, "rename %s -> %s: %s", f.tmp, f.final, strerror(errno));
    if (rc == SP_OK) report(&f, o->pins, o->pins, 1);
done:
    if (w) sp_sfv_write_abort(w);
    if (rc) unlink(f.tmp);
    free(cent);
    free(v);
    return rc;
}

/* ---- pin_tokens.tsv ---- */

static int write_tokens(const sp_gen_opts *o, const gen_ctx *g, const char *dir) {
    out_file f;
    int rc = out_open(&f, o, dir, "pin_tokens.tsv", 1);
    if (rc) return rc;
    for (uint64_t pin = 1; pin <= o->pins; pin++) {
        uint64_t c = comm_of_pos(g, perm_fwd(g, pin - 1));
        sp_rng r;
        sp_rng_init(&r, o->seed, SP_RNG_GEN, STREAM(ST_PIN_TOK, pin));
        unsigned nt = 3 + (unsigned)sp_rng_below(&r, 6), have = 0;
        uint64_t toks[8]; /* code: word (community) or 1<<32 | word (global) */
        while (have < nt) {
            uint64_t t = sp_rng_below(&r, 100) < 85 ? sp_rng_below(&r, COMM_WORDS)
                                                     : (1ULL << 32) | sp_rng_below(&r, GLOBAL_WORDS);
            unsigned i = 0;
            while (i < have && toks[i] != t) i++;
            if (i == have) toks[have++] = t;
        }
        if ((rc = out_room(&f, 32 + 8 * 40))) goto done;
        char *p = f.buf + f.n;
        p = put_u64(p, pin);
        *p++ = '\t';
        for (unsigned i = 0; i < have; i++) {
            if (i) *p++ = ' ';
            if (toks[i] >> 32) {
                *p++ = 'g';
                p = put_u64(p, toks[i] & 0xffffffffu);
            } else {
                *p++ = 'c';
                p = put_u64(p, c);
                p = put_str(p, "_w", 2);
                p = put_u64(p, toks[i]);
            }
        }
        *p++ = '\n';
        f.n = (size_t)(p - f.buf);
        if ((pin & 65535) == 0) report(&f, pin, o->pins, 0);
    }
    rc = out_commit(&f);
    if (rc == SP_OK) report(&f, o->pins, o->pins, 1);
done:
    if (rc && f.f) out_abort(&f);
    return rc;
}

/* ---- events.tsv ---- */

static const char *const actions[4] = {"click", "closeup", "save", "hide"};
static const size_t action_len[4] = {5, 7, 4, 4};
static const char *const surfaces[4] = {"homefeed", "search", "related", "profile"};
static const size_t surface_len[4] = {8, 6, 7, 7};

static double user_weight(const sp_gen_opts *o, uint64_t u) {
    sp_rng r;
    sp_rng_init(&r, o->seed, SP_RNG_GEN, STREAM(ST_USER_W, u));
    return -log(((double)(sp_rng_u64(&r) >> 11) + 1.0) * 0x1.0p-53); /* Exp(1) */
}

static int write_events(const sp_gen_opts *o, const gen_ctx *g, const char *dir) {
    uint64_t U = o->users, N = o->events;
    out_file f;
    int rc = out_open(&f, o, dir, "events.tsv", 1);
    if (rc) return rc;
    double W = 0;
    for (uint64_t u = 1; u <= U; u++) W += user_weight(o, u);
    double cum = 0;
    uint64_t prev = 0, done = 0;
    for (uint64_t u = 1; u <= U; u++) {
        cum += user_weight(o, u);
        uint64_t F = u == U ? N : (uint64_t)floor(cum / W * (double)N);
        if (F > N) F = N;
        if (F < prev) F = prev;
        uint64_t n = F - prev;
        prev = F;
        if (!n) continue;
        if (n > (uint64_t)SP_DAY_MS) {
            rc = sp_err(SP_EUSAGE, "gen: user %llu would get %llu events, more than the ms in a day; "
                        "use more users", (unsigned long long)u, (unsigned long long)n);
            goto done;
        }
        sp_rng r;
        sp_rng_init(&r, o->seed, SP_RNG_GEN, STREAM(ST_USER, u));
        uint64_t fav[3];
        unsigned nf = 1 + (unsigned)sp_rng_below(&r, 3);
        for (unsigned i = 0; i < nf; i++) fav[i] = sp_rng_below(&r, g->C);
        /* active span [a, a+L) of the day, L >= n; event i in slot [a + iL/n, a + (i+1)L/n) */
        uint64_t day = (uint64_t)SP_DAY_MS;
        uint64_t L = n + sp_rng_below(&r, day - n + 1);
        uint64_t a = sp_rng_below(&r, day - L + 1);
        char ustr[24];
        size_t ulen = (size_t)(put_u64(ustr, u) - ustr);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t lo = (uint64_t)((unsigned __int128)i * L / n), hi = (uint64_t)((unsigned __int128)(i + 1) * L / n);
            int64_t ts = o->day_ms + (int64_t)(a + lo + sp_rng_below(&r, hi - lo));
            uint64_t pin = pin_in_comm(g, &r, fav[sp_rng_below(&r, nf)]);
            unsigned x = (unsigned)sp_rng_below(&r, 20);
            unsigned act = x < 10 ? 0 : x < 15 ? 1 : x < 19 ? 2 : 3;
            unsigned surf = (unsigned)sp_rng_below(&r, 4);
            if ((rc = out_room(&f, 100))) goto done;
            char *p = f.buf + f.n;
            p = put_str(p, ustr, ulen); *p++ = '\t';
            p = put_u64(p, pin); *p++ = '\t';
            p = put_str(p, actions[act], action_len[act]); *p++ = '\t';
            p = put_i64(p, ts); *p++ = '\t';
            p = put_str(p, surfaces[surf], surface_len[surf]); *p++ = '\n';
            f.n = (size_t)(p - f.buf);
        }
        done += n;
        if ((u & 1023) == 0) report(&f, done, N, 0);
    }
    rc = out_commit(&f);
    if (rc == SP_OK) report(&f, N, N, 1);
done:
    if (rc && f.f) out_abort(&f);
    return rc;
}

static int check_edge_count(const sp_gen_opts *o) {
    if ((unsigned __int128)o->edges > (unsigned __int128)o->pins * o->boards)
        return sp_err(SP_EUSAGE, "gen: %llu edges cannot fit without duplicates in %llu pins x %llu boards",
                      (unsigned long long)o->edges, (unsigned long long)o->pins, (unsigned long long)o->boards);
    return SP_OK;
}

static int check_id_range(const sp_gen_opts *o) {
    if (o->pins > 0xffffffffffffULL || o->boards > UINT32_MAX)
        return sp_err(SP_EUSAGE, "gen: at most 2^48 pins and 2^32-1 boards");
    return SP_OK;
}

int sp_gen_run(const sp_gen_opts *o, const char *out_dir) {
    if (!o || !out_dir) return sp_err(SP_EUSAGE, "gen: no options or output directory");
    int rc = check_edge_count(o);
    if (rc) return rc;
    if (o->events && (!o->users || !o->pins))
        return sp_err(SP_EUSAGE, "gen: %llu events need at least one user and one pin", (unsigned long long)o->events);
    if (o->events / (o->users ? o->users : 1) > 1000000)
        return sp_err(SP_EUSAGE, "gen: %llu events for %llu users is more than 10^6 per user per day",
                      (unsigned long long)o->events, (unsigned long long)o->users);
    if (o->dim > SP_SFV_MAX_DIM) return sp_err(SP_EUSAGE, "gen: dim %u > %u", o->dim, SP_SFV_MAX_DIM);
    if ((rc = check_id_range(o))) return rc;
    gen_ctx g;
    ctx_init(&g, o);
    if ((uint64_t)g.C * (o->dim ? o->dim : 1) > (1ULL << 32))
        return sp_err(SP_EUSAGE, "gen: communities x dim too large (%llu x %u)", (unsigned long long)g.C, o->dim);
    if ((rc = sp_mkdir_p(out_dir))) return rc;
    /* an input this run does not write (an earlier gen's, another tool's) would be read beside its files */
    const char *written[5] = {"pin_board.tsv", "events.tsv"};
    int nw = 2;
    if (o->dim) written[nw++] = "pin_dense.sfv";
    if (o->tokens) written[nw++] = "pin_tokens.tsv";
    written[nw] = NULL;
    char p[4096];
    if (sp_input_foreign(out_dir, written, p, sizeof p))
        return sp_err(SP_EUSAGE, "gen: %s exists and would be read as an input beside the generated files: remove "
                      "it or generate into an empty directory", p);
    if ((rc = write_pin_board(o, &g, out_dir))) return rc;
    if (o->dim && (rc = write_dense(o, &g, out_dir))) return rc;
    if (o->tokens && (rc = write_tokens(o, &g, out_dir))) return rc;
    return write_events(o, &g, out_dir);
}

int sp_gen_edges(const sp_gen_opts *o, int (*emit)(void *ctx, uint64_t pin, uint64_t board), void *ctx) {
    if (!o || !emit) return sp_err(SP_EUSAGE, "gen: no options or edge callback");
    int rc = check_edge_count(o);
    if (rc || (rc = check_id_range(o))) return rc;
    gen_ctx g;
    ctx_init(&g, o);
    edge_sink s = {emit, ctx};
    return gen_pin_board(o, &g, sink_edge, NULL, &s);
}
