/* walks stage: sources are started in windows of walks.window_sources per
 * rank. Each round advances the walkers that are on this rank's nodes (all
 * threads), then one shuffle moves the walkers that stepped onto other ranks'
 * nodes to those ranks and the visits recorded away from home to the
 * sources' owners; rounds repeat until no walker is in flight anywhere. The
 * owner then sorts a window's visits and keeps, per source, the top pins and
 * top boards and a band of lower-ranked pins as hard negatives.
 * A walker's slot is (owner rank << 20 | index in the window): visits find
 * their way home without carrying the source id, which limits a job to 4096
 * ranks and a window to 2^20 sources (checked). */
#include "walks_stage.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dist.h"
#include "graph.h"
#include "ingest.h"
#include "json.h"
#include "lines.h"
#include "log.h"
#include "pairs.h"
#include "sfile.h"
#include "sort.h"
#include "sp_base.h"
#include "walk.h"

#define SLOT_BITS 20
#define MAX_RANKS 4096

typedef struct {
    sp_walker *in;
    size_t nin, capin;
    sp_visit *mine;
    size_t nmine, capmine;
} round_bufs;

static int sink(void *c, int src, const void *rec, size_t len) {
    round_bufs *b = c;
    (void)src;
    if (len == sizeof(sp_walker)) {
        if (sp_grow((void **)&b->in, &b->capin, b->nin + 1, sizeof *b->in)) return SP_ENOMEM;
        memcpy(&b->in[b->nin++], rec, len);
    } else if (len == sizeof(sp_visit)) {
        if (sp_grow((void **)&b->mine, &b->capmine, b->nmine + 1, sizeof *b->mine)) return SP_ENOMEM;
        memcpy(&b->mine[b->nmine++], rec, len);
    } else return sp_err(SP_EINTERNAL, "walks: record of %zu bytes", len);
    return SP_OK;
}

/* A growable table of per-source neighbour lists. */
typedef struct {
    uint64_t *off; /* (nsrc + 1) */
    sp_nbr *v;
    size_t n, cap;
} nbr_table;

/* Appends one source's entries (replayed from a finishing part: part_add has
 * already turned sp_walk_topt's failure into SP_ENOMEM). */
static int table_add(nbr_table *t, uint64_t src_index, const sp_nbr *v, size_t n) {
    if (sp_grow((void **)&t->v, &t->cap, t->n + n, sizeof *t->v)) return SP_ENOMEM;
    if (n) memcpy(t->v + t->n, v, sizeof *v * n); /* t->v is NULL before the first entry */
    t->n += n;
    t->off[src_index + 1] = t->n;
    return SP_OK;
}


enum { T_PP, T_PB, T_BP, T_BB, T_HARD, NTAB };

/* One finishing thread's share of a window: the table entries of its
 * sources in the order finish_source made them (the caller replays them
 * into the tables, thread by thread, so the tables do not depend on the
 * thread count), and its scratch. */
typedef struct {
    sp_nbr *v;
    size_t n, cap;
    struct fin_rec { uint64_t idx; size_t n; int tab; } *log;
    size_t nlog, caplog;
    sp_nbr *top, *ranked;
    size_t capranked;
    uint64_t distinct_pins;
} fin_part;

#define MAX_FIN_THREADS 64

typedef struct {
    const sp_run_ctx *ctx;
    sp_walk_graph g;
    sp_walk_params p;
    int threads;
    size_t top_pins, top_boards, hard_max, tmax;
    uint64_t hard_lo, hard_hi;
    double hard_lo_frac, hard_hi_frac;
    nbr_table pp, pb, bp, bb, hard;
    fin_part parts[MAX_FIN_THREADS];
    size_t *hist, caphist; /* group_visits' per-thread bucket counts */
    uint64_t steps, visits, moved, distinct_pins;
} walks;

static int part_add(fin_part *f, int tab, uint64_t idx, const sp_nbr *v, size_t n) {
    if (n == SP_WALK_TOPT_ENOMEM) return SP_ENOMEM; /* sp_walk_topt could not count */
    if (sp_grow((void **)&f->v, &f->cap, f->n + n, sizeof *f->v) ||
        sp_grow((void **)&f->log, &f->caplog, f->nlog + 1, sizeof *f->log))
        return SP_ENOMEM;
    if (n) memcpy(f->v + f->n, v, sizeof *v * n);
    f->n += n;
    f->log[f->nlog++] = (struct fin_rec){idx, n, tab};
    return SP_OK;
}

static void part_free(fin_part *f) {
    free(f->v);
    free(f->log);
    free(f->top);
    free(f->ranked);
    memset(f, 0, sizeof *f);
}

/* Turns one source's visits (its pins', then its boards') into its table entries, appended to the
 * part. j: local source index (pins first, then boards). */
static int finish_source(const walks *w, fin_part *f, uint64_t j, const sp_visit *v, size_t n) {
    int is_pin = j < w->g.npins;
    uint64_t self = is_pin ? w->g.pin_ids[j] : w->g.board_ids[j - w->g.npins];
    size_t np = 0;
    while (np < n && (v[np].key & 0xff) == SP_PIN) np++;
    const sp_visit *pv = v, *bv = v + np;
    size_t nb = n - np;
    if (!f->top && !(f->top = malloc(sizeof *f->top * (w->tmax + 1)))) return SP_ENOMEM;
    if (np > f->capranked) {
        free(f->ranked);
        f->capranked = np;
        if (!(f->ranked = malloc(sizeof *f->ranked * np))) {
            f->capranked = 0;
            return SP_ENOMEM;
        }
    }
    size_t nranked = 0, k;
    int rc;
    if (is_pin) {
        k = sp_walk_topt(pv, np, &self, w->top_pins, f->top, f->ranked, &nranked);
        if ((rc = part_add(f, T_PP, j, f->top, k))) return rc;
        k = sp_walk_topt(bv, nb, NULL, w->top_boards, f->top, NULL, NULL);
        if ((rc = part_add(f, T_PB, j, f->top, k))) return rc;
        /* hard-negative band over the ranked distinct pins */
        double V = (double)nranked;
        uint64_t lo = (uint64_t)(w->hard_lo_frac * V), hi = (uint64_t)(w->hard_hi_frac * V);
        if (lo > w->hard_lo) lo = w->hard_lo;
        if (lo < w->top_pins) lo = w->top_pins;
        if (hi > w->hard_hi) hi = w->hard_hi;
        if (hi > nranked) hi = nranked;
        size_t nh = 0;
        if (hi > lo && w->hard_max) {
            uint64_t band = hi - lo, take = band < w->hard_max ? band : w->hard_max;
            for (uint64_t i = 0; i < take; i++) f->top[nh++] = f->ranked[lo + i * band / take];
        }
        f->distinct_pins += nranked;
        if ((rc = part_add(f, T_HARD, j, f->top, nh))) return rc;
    } else {
        uint64_t b = j - w->g.npins;
        k = sp_walk_topt(pv, np, NULL, w->top_pins, f->top, NULL, NULL);
        if ((rc = part_add(f, T_BP, b, f->top, k))) return rc;
        k = sp_walk_topt(bv, nb, &self, w->top_boards, f->top, NULL, NULL);
        if ((rc = part_add(f, T_BB, b, f->top, k))) return rc;
    }
    return SP_OK;
}

/* Runs fn on each of the T jobs (job t at jobs + t * size): job 0 on the calling thread, the others on
 * threads of their own, or on the calling thread when no thread can be had; returns when all are done. */
static void run_jobs(void *(*fn)(void *), void *jobs, size_t size, int T) {
    pthread_t th[MAX_FIN_THREADS];
    int started[MAX_FIN_THREADS] = {0};
    char *j = jobs;
    for (int t = 1; t < T; t++) started[t] = !pthread_create(&th[t], NULL, fn, j + (size_t)t * size);
    fn(j);
    for (int t = 1; t < T; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else fn(j + (size_t)t * size); /* no thread to be had: this one does it */
    }
}

/* A finishing thread's sources: window indices [a, b), visits grouped by
 * (source, type), bucket ends in `end` (source i's visits span
 * [i ? end[2i-1] : 0, end[2i+1])). */
typedef struct {
    const walks *w;
    fin_part *f;
    uint64_t first;
    size_t a, b;
    const sp_visit *grouped;
    const size_t *end;
    int rc;
} fin_job;

static void *fin_run(void *arg) {
    fin_job *J = arg;
    for (size_t i = J->a; i < J->b && !J->rc; i++) {
        size_t lo = i ? J->end[2 * i - 1] : 0, hi = J->end[2 * i + 1];
        J->rc = finish_source(J->w, J->f, J->first + i, J->grouped + lo, hi - lo);
    }
    return NULL;
}

/* Finishes a window's cnt sources on w->threads threads (ranges of about
 * equal visit counts: sorting the distinct nodes is most of the work), then
 * replays the parts into the tables in source order. This ran on one
 * thread while the engine used them all: over a third of the stage's
 * profile on Gowalla (1 rank, 2 threads). */
static int finish_window(walks *w, uint64_t first, size_t cnt, const sp_visit *grouped, const size_t *end) {
    int T = w->threads < MAX_FIN_THREADS ? w->threads : MAX_FIN_THREADS;
    if ((size_t)T > cnt / 16 + 1) T = (int)(cnt / 16 + 1); /* a few sources are not worth a thread */
    size_t total = cnt ? end[2 * cnt - 1] : 0;
    fin_job jobs[MAX_FIN_THREADS];
    size_t a = 0;
    for (int t = 0; t < T; t++) {
        size_t b = cnt;
        if (t < T - 1) { /* up to about (t + 1) / T of the window's visits; the last thread takes the rest */
            size_t want = total / (size_t)T * (size_t)(t + 1);
            for (b = a; b < cnt && end[2 * b + 1] <= want; b++) {}
        }
        jobs[t] = (fin_job){.w = w, .f = &w->parts[t], .first = first, .a = a, .b = b, .grouped = grouped, .end = end};
        a = b;
    }
    run_jobs(fin_run, jobs, sizeof jobs[0], T);
    nbr_table *tabs[NTAB] = {&w->pp, &w->pb, &w->bp, &w->bb, &w->hard};
    int rc = SP_OK;
    for (int t = 0; t < T; t++) {
        fin_part *f = &w->parts[t];
        if (!rc) rc = jobs[t].rc;
        for (size_t i = 0, pos = 0; i < f->nlog && !rc; pos += f->log[i++].n)
            rc = table_add(tabs[f->log[i].tab], f->log[i].idx, f->v + pos, f->log[i].n);
        w->distinct_pins += f->distinct_pins;
        f->n = f->nlog = 0;
        f->distinct_pins = 0;
    }
    return rc;
}

/* One thread's share of group_visits: visits [lo, hi) counted per bucket into h (phase 0), then
 * moved to out[h[bucket]++] (phase 1). bad: the first visit of an unknown slot, or SIZE_MAX. */
typedef struct {
    const sp_visit *v;
    size_t lo, hi, cnt, nb, bad;
    size_t *h;
    sp_visit *out;
    int phase;
} grp_job;

static void *grp_run(void *arg) {
    grp_job *J = arg;
    const sp_visit *v = J->v;
    size_t *h = J->h;
    if (J->phase == 0) {
        memset(h, 0, sizeof *h * J->nb);
        for (size_t i = J->lo; i < J->hi; i++) {
            uint64_t idx = (v[i].key >> 8) & ((1u << SLOT_BITS) - 1), type = v[i].key & 0xff;
            if (idx >= J->cnt || type > 1) {
                J->bad = i;
                break;
            }
            h[2 * idx + type]++;
        }
    } else
        for (size_t i = J->lo; i < J->hi; i++) {
            uint64_t idx = (v[i].key >> 8) & ((1u << SLOT_BITS) - 1), type = v[i].key & 0xff;
            J->out[h[2 * idx + type]++] = v[i];
        }
    return NULL;
}

/* Runs the jobs' phase on T threads. */
static void grp_phase(grp_job *jobs, int T, int phase) {
    for (int t = 0; t < T; t++) jobs[t].phase = phase;
    run_jobs(grp_run, jobs, sizeof jobs[0], T);
}

/* Groups a window's n visits by (source, type) into `grouped`: a counting sort over the buckets
 * 2 * index + type of the window's cnt sources, on the stage's threads, each counting and then
 * moving a contiguous share (its share of each bucket placed after the shares of the threads
 * before it, so the result is the one-thread stable sort's). end[b] (2 * cnt + 2 entries) gets
 * the end of bucket b: bucket b spans [b ? end[b - 1] : 0, end[b]). On one thread this was about
 * a tenth of the stage (Gowalla, 1 rank). */
static int group_visits(walks *w, const sp_visit *v, size_t n, size_t cnt, sp_visit *grouped, size_t *end) {
    size_t nb = 2 * cnt + 1;
    int T = w->threads < MAX_FIN_THREADS ? w->threads : MAX_FIN_THREADS;
    if ((size_t)T > n / 65536 + 1) T = (int)(n / 65536 + 1); /* a small window is not worth a thread */
    if (sp_grow((void **)&w->hist, &w->caphist, (size_t)T * nb, sizeof *w->hist)) return SP_ENOMEM;
    grp_job jobs[MAX_FIN_THREADS];
    for (int t = 0; t < T; t++)
        jobs[t] = (grp_job){.v = v, .lo = n * (size_t)t / (size_t)T, .hi = n * (size_t)(t + 1) / (size_t)T,
                            .cnt = cnt, .nb = nb, .bad = SIZE_MAX, .h = w->hist + (size_t)t * nb, .out = grouped};
    grp_phase(jobs, T, 0);
    for (int t = 0; t < T; t++)
        if (jobs[t].bad != SIZE_MAX)
            return sp_err(SP_EINTERNAL, "walks: visit of unknown source slot %llu",
                          (unsigned long long)((v[jobs[t].bad].key >> 8) & ((1u << SLOT_BITS) - 1)));
    size_t pos = 0;
    for (size_t b = 0; b < nb; b++) {
        for (int t = 0; t < T; t++) {
            size_t c = jobs[t].h[b];
            jobs[t].h[b] = pos;
            pos += c;
        }
        end[b] = pos;
    }
    end[nb] = pos;
    grp_phase(jobs, T, 1);
    return SP_OK;
}

/* Runs every window; collective. */
static int run_windows(walks *w, size_t window, size_t buffer) {
    const sp_run_ctx *ctx = w->ctx;
    uint64_t nsrc = w->g.npins + w->g.nboards, nwin = (nsrc + window - 1) / window;
    int rc = sp_dist_max_u64(&nwin, 1);
    round_bufs cur = {0}, nxt = {0};
    sp_walk_out out = {0};
    sp_shuffle *s = NULL;
    size_t *start = NULL, capstart = 0, capgrouped = 0;
    sp_visit *grouped = NULL;
    if (!rc) rc = sp_dist_agree(sp_shuffle_new(&s, buffer, sink, &nxt));
    sp_progress prog = {.interval = sp_config_f64(ctx->cfg, "pipeline", "progress_seconds")};
    sp_progress_begin(&prog, "walk_sources", nsrc);
    for (uint64_t win = 0; win < nwin && !rc; win++) {
        uint64_t first = win * window, cnt = first < nsrc ? (nsrc - first < window ? nsrc - first : window) : 0;
        /* walkers of this window's sources: one multi-start record per source (per 65535 walks) */
        const uint32_t recs = (w->p.walks + SP_WALK_MAX_STARTS - 1) / SP_WALK_MAX_STARTS;
        cur.nin = 0;
        rc = sp_grow((void **)&cur.in, &cur.capin, cnt * recs + 1, sizeof *cur.in);
        for (uint64_t i = 0; !rc && i < cnt; i++) {
            uint64_t j = first + i;
            int is_pin = j < w->g.npins;
            uint64_t local = is_pin ? j : j - w->g.npins;
            sp_walker t = {.src = is_pin ? w->g.pin_ids[local] : w->g.board_ids[local],
                           .node = sp_gref_make(ctx->rank, local),
                           .slot = (uint32_t)ctx->rank << SLOT_BITS | (uint32_t)i,
                           .src_type = (uint8_t)(is_pin ? SP_PIN : SP_BOARD)};
            for (uint32_t k = 0; k < w->p.walks; k += SP_WALK_MAX_STARTS) {
                t.walk = k;
                t.starts = (uint16_t)(w->p.walks - k < SP_WALK_MAX_STARTS ? w->p.walks - k : SP_WALK_MAX_STARTS);
                cur.in[cur.nin++] = t;
            }
        }
        nxt.nmine = 0;
        rc = sp_dist_agree(rc);
        for (;;) {
            if (rc) break;
            out.nvisits = out.naway = 0;
            out.steps = 0;
            int lrc = sp_walk_advance_parts(&w->g, &w->p, cur.in, cur.nin, w->threads, &out);
            size_t nvis = lrc ? 0 : sp_walk_out_total(&out), pn = 0, iv = 0, ia = 0; /* part `part`: pn, iv read */
            w->steps += out.steps;
            w->visits += nvis;
            /* visits of my own sources stay; the rest go home; walkers move on */
            int part = 0, all_done = 0;
            const sp_visit *pv = lrc ? NULL : sp_walk_out_part(&out, 0, &pn);
            nxt.nin = 0;
            if (!lrc && sp_grow((void **)&nxt.mine, &nxt.capmine, nxt.nmine + nvis, sizeof *nxt.mine))
                lrc = SP_ENOMEM;
            while (!rc && !all_done) {
                while (!lrc && !sp_shuffle_full(s) && (part < out.nparts || ia < out.naway)) {
                    if (part < out.nparts && iv == pn) { /* on to the next thread's part */
                        if (++part < out.nparts) pv = sp_walk_out_part(&out, part, &pn);
                        iv = 0;
                    } else if (part < out.nparts) {
                        /* visits of my sources are copied (room made above) up to the next one that
                         * leaves; the buffer's fill is checked after that one only */
                        while (iv < pn) {
                            const sp_visit *v = &pv[iv++];
                            int home = (int)(v->key >> (8 + SLOT_BITS));
                            if (home == ctx->rank) nxt.mine[nxt.nmine++] = *v;
                            else {
                                lrc = sp_shuffle_put(s, home, v, sizeof *v);
                                break;
                            }
                        }
                    } else {
                        const sp_walker *a = &out.away[ia++];
                        lrc = sp_shuffle_put(s, sp_gref_rank(a->node), a, sizeof *a);
                        w->moved++;
                    }
                }
                rc = sp_shuffle_exchange(s, lrc || (part == out.nparts && ia == out.naway), lrc, &all_done);
            }
            if (rc) break;
            uint64_t inflight = nxt.nin;
            if ((rc = sp_dist_sum_u64(&inflight, 1))) break;
            round_bufs t = cur; /* the received walkers become the next round's input */
            cur.in = nxt.in, cur.nin = nxt.nin, cur.capin = nxt.capin;
            nxt.in = t.in, nxt.nin = 0, nxt.capin = t.capin;
            if (inflight == 0) break;
        }
        if (rc) break;
        /* the window's visits, grouped by (source, type) by a counting sort on the stage's threads
         * (buffers kept between windows: fresh pages per window cost their faults again every time) */
        size_t nb = 2 * (size_t)cnt + 1;
        if (!(rc = sp_grow((void **)&start, &capstart, nb + 1, sizeof *start)) &&
            !(rc = sp_grow((void **)&grouped, &capgrouped, nxt.nmine + 1, sizeof *grouped)))
            rc = group_visits(w, nxt.mine, nxt.nmine, cnt, grouped, start); /* else rc is agreed on below */
        /* start[b] is now the end of bucket b: bucket b spans [start[b-1], start[b]) */
        if (!rc) rc = finish_window(w, first, (size_t)cnt, grouped, start);
        rc = sp_dist_agree(rc);
        sp_progress_add(&prog, cnt);
    }
    sp_progress_end(&prog);
    sp_shuffle_free(s);
    sp_walk_out_free(&out);
    free(start);
    free(grouped);
    free(cur.in);
    free(cur.mine);
    free(nxt.in);
    free(nxt.mine);
    return rc;
}

static int threads_auto(const sp_config *cfg) {
    int64_t t = sp_config_int(cfg, "walks", "threads");
    if (t > 0) return (int)t;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    long local = ls ? strtol(ls, NULL, 10) : 1;
    if (local < 1) local = 1;
    long n = cpus / local;
    return n < 1 ? 1 : (int)n;
}

/* Bit mask of the indices in input.actions of the actions named in
 * walks.negative_actions. */
static int negative_mask(const sp_config *cfg, uint32_t *mask) {
    char *acts[64], *negs[64], *sa = NULL, *sn = NULL;
    int na = 0, nn = 0;
    int rc = sp_config_words(cfg, "input", "actions", acts, 64, &na, &sa);
    if (!rc) rc = sp_config_words(cfg, "walks", "negative_actions", negs, 64, &nn, &sn);
    *mask = 0;
    for (int i = 0; !rc && i < na && i < 32; i++)
        for (int k = 0; k < nn; k++)
            if (!strcmp(acts[i], negs[k])) *mask |= 1u << i;
    free(sa);
    free(sn);
    return rc;
}

static int put_table(sp_sfile_w *f, const char *name, const nbr_table *t, uint64_t n) {
    char tag[16];
    snprintf(tag, sizeof tag, "%s_off", name);
    int rc = sp_sfile_put(f, tag, 8, t->off, n + 1);
    snprintf(tag, sizeof tag, "%s", name);
    if (!rc) rc = sp_sfile_put(f, tag, sizeof(sp_nbr), t->v, t->n);
    return rc;
}

int sp_walks_run(const sp_run_ctx *ctx, sp_stage_result *res) {
    const sp_config *cfg = ctx->cfg;
    walks w = {.ctx = ctx};
    char name[96], path[4096];
    sp_sfile_r *gf = NULL, *inf = NULL;
    uint64_t n;
    const sp_event_rec *ev = NULL;
    uint64_t nev = 0;
    int rc = ctx->size > MAX_RANKS ? sp_err(SP_EUSAGE, "the walks stage supports at most %d ranks", MAX_RANKS) : SP_OK;
    if (!rc) {
        sp_stage_part(ctx, "graph", ctx->rank, ctx->size, NULL, 0, path, sizeof path);
        rc = sp_sfile_open(&gf, path, "graph");
    }
    if (!rc) rc = sp_sfile_get(gf, "pin_ids", 8, (const void **)&w.g.pin_ids, &w.g.npins);
    if (!rc) rc = sp_sfile_get(gf, "board_ids", 8, (const void **)&w.g.board_ids, &w.g.nboards);
    if (!rc) rc = sp_sfile_get(gf, "pin_off", 8, (const void **)&w.g.pin_off, &n);
    if (!rc && n != w.g.npins + 1) rc = sp_err(SP_EFORMAT, "%s: pin_off has %" PRIu64 " entries", path, n);
    if (!rc) rc = sp_sfile_get(gf, "pin_adj", 8, (const void **)&w.g.pin_adj, &n);
    if (!rc) rc = sp_sfile_get(gf, "board_off", 8, (const void **)&w.g.board_off, &n);
    if (!rc && n != w.g.nboards + 1) rc = sp_err(SP_EFORMAT, "%s: board_off has %" PRIu64 " entries", path, n);
    if (!rc) rc = sp_sfile_get(gf, "board_adj", 8, (const void **)&w.g.board_adj, &n);
    if (!rc) {
        sp_stage_part(ctx, "ingest", ctx->rank, ctx->size, NULL, 0, path, sizeof path);
        rc = sp_sfile_open(&inf, path, "ingest");
    }
    if (!rc) rc = sp_sfile_get(inf, "events", sizeof *ev, (const void **)&ev, &nev);
    w.g.rank = ctx->rank;
    if (!rc) rc = sp_walk_prepare(&w.g);
    rc = sp_dist_agree(rc);
    w.p.walks = (uint32_t)sp_config_int(cfg, "walks", "walks_per_source");
    w.p.traversals = (uint32_t)sp_config_int(cfg, "walks", "traversals");
    w.p.stop = sp_config_f64(cfg, "walks", "stop_prob");
    w.p.seed = (uint64_t)sp_config_int(cfg, "pipeline", "seed");
    w.threads = threads_auto(cfg);
    w.top_pins = (size_t)sp_config_int(cfg, "walks", "top_pins");
    w.top_boards = (size_t)sp_config_int(cfg, "walks", "top_boards");
    w.hard_max = (size_t)sp_config_int(cfg, "walks", "hard_max");
    w.hard_lo = (uint64_t)sp_config_int(cfg, "walks", "hard_lo");
    w.hard_hi = (uint64_t)sp_config_int(cfg, "walks", "hard_hi");
    w.hard_lo_frac = sp_config_f64(cfg, "walks", "hard_lo_frac");
    w.hard_hi_frac = sp_config_f64(cfg, "walks", "hard_hi_frac");
    size_t window = (size_t)sp_config_int(cfg, "walks", "window_sources");
    if (window > (1u << SLOT_BITS)) window = 1u << SLOT_BITS;
    size_t buffer = (size_t)sp_config_int(cfg, "pipeline", "shuffle_buffer_mb") << 20;
    w.tmax = w.top_pins > w.top_boards ? w.top_pins : w.top_boards;
    if (w.tmax < w.hard_max) w.tmax = w.hard_max;
    if (!rc) {
        w.pp.off = calloc(w.g.npins + 1, 8);
        w.pb.off = calloc(w.g.npins + 1, 8);
        w.hard.off = calloc(w.g.npins + 1, 8);
        w.bp.off = calloc(w.g.nboards + 1, 8);
        w.bb.off = calloc(w.g.nboards + 1, 8);
        rc = sp_dist_agree(w.pp.off && w.pb.off && w.hard.off && w.bp.off && w.bb.off ? SP_OK : SP_ENOMEM);
    }
    if (!rc) {
        SP_INFO("walks_start", "sources=%" PRIu64 " walks=%u traversals=%u stop=%g threads=%d window=%zu",
                w.g.npins + w.g.nboards, w.p.walks, w.p.traversals, w.p.stop, w.threads, window);
        rc = run_windows(&w, window, buffer);
    }
    /* training pairs: walk pairs from the pin tables, engagement pairs from events */
    sp_pair_rec *wp = NULL, *ep = NULL;
    uint64_t nwp = 0, nep = 0;
    sp_pair_stats est = {0};
    if (!rc) {
        uint64_t *ext = malloc(8 * (w.pp.n + 1));
        rc = ext ? SP_OK : SP_ENOMEM;
        for (size_t i = 0; !rc && i < w.pp.n; i++) ext[i] = w.pp.v[i].ext;
        if (!rc) rc = sp_pairs_walk(w.g.pin_ids, w.pp.off, ext, w.g.npins,
                                    (uint32_t)sp_config_int(cfg, "walks", "walk_pairs"), &wp, &nwp);
        free(ext);
        rc = sp_dist_agree(rc);
    }
    uint32_t negatives = 0;
    if (!rc) rc = sp_dist_agree(negative_mask(cfg, &negatives));
    if (!rc)
        rc = sp_pairs_engagement(ev, nev, sp_config_int(cfg, "walks", "pair_max_gap_s") * 1000, negatives, buffer, &ep,
                                 &nep, &est);
    /* write this rank's tables */
    if (!rc) {
        sp_stage_part(ctx, "walks", ctx->rank, ctx->size, name, sizeof name, path, sizeof path);
        sp_sfile_w *f;
        uint64_t m[6] = {(uint64_t)ctx->rank, (uint64_t)ctx->size, w.g.npins, w.g.nboards, w.top_pins, w.top_boards};
        rc = sp_sfile_create(&f, path, "walks");
        if (!rc) {
            rc = sp_sfile_put(f, "meta", 8, m, 6);
            if (!rc) rc = sp_sfile_put(f, "pin_ids", 8, w.g.pin_ids, w.g.npins);
            if (!rc) rc = sp_sfile_put(f, "board_ids", 8, w.g.board_ids, w.g.nboards);
            if (!rc) rc = put_table(f, "pin_pins", &w.pp, w.g.npins);
            if (!rc) rc = put_table(f, "pin_boards", &w.pb, w.g.npins);
            if (!rc) rc = put_table(f, "board_pins", &w.bp, w.g.nboards);
            if (!rc) rc = put_table(f, "board_boards", &w.bb, w.g.nboards);
            if (!rc) rc = put_table(f, "pin_hard", &w.hard, w.g.npins);
            if (!rc) rc = sp_sfile_put(f, "walk_pairs", sizeof *wp, wp, nwp);
            if (!rc) rc = sp_sfile_put(f, "engage_pairs", sizeof *ep, ep, nep);
            rc = sp_stage_commit_part(res, f, rc, name, path);
        }
        rc = sp_dist_agree(rc);
    }
    if (!rc) {
        uint64_t engaged_mined = est.kept;
        sp_stage_count(res, "sources", w.g.npins + w.g.nboards);
        sp_stage_count(res, "steps", w.steps);
        sp_stage_count(res, "visits", w.visits);
        sp_stage_count(res, "walkers_moved", w.moved);
        sp_stage_count(res, "pin_pin_entries", w.pp.n);
        sp_stage_count(res, "pin_board_entries", w.pb.n);
        sp_stage_count(res, "board_pin_entries", w.bp.n);
        sp_stage_count(res, "board_board_entries", w.bb.n);
        sp_stage_count(res, "hard_negatives", w.hard.n);
        sp_stage_count(res, "distinct_pins_visited", w.distinct_pins);
        sp_stage_count(res, "walk_pairs", nwp);
        sp_stage_count(res, "engage_pairs", nep);
        sp_stage_count(res, "engage_pairs_mined", engaged_mined);
        sp_stage_count(res, "engage_too_far", est.too_far);
        sp_stage_count(res, "engage_same_pin", est.same_pin);
        sp_stage_count(res, "engage_negative_skipped", est.negative);
    }
    free(wp);
    free(ep);
    for (int i = 0; i < MAX_FIN_THREADS; i++) part_free(&w.parts[i]);
    free(w.hist);
    nbr_table *tabs[NTAB] = {&w.pp, &w.pb, &w.bp, &w.bb, &w.hard};
    for (int i = 0; i < NTAB; i++) {
        free(tabs[i]->off);
        free(tabs[i]->v);
    }
    sp_walk_release(&w.g);
    sp_sfile_close(gf);
    sp_sfile_close(inf);
    return rc;
}

/* ---- dump ---- */

int sp_walks_dump(const sp_run_ctx *ctx, FILE *out) {
    int size, rc = sp_stage_ranks(ctx, "walks", &size);
    if (rc) return rc;
    char path[4096];
    sp_lines lines = {0};
    static const char *const TABS[] = {"pin_pins", "pin_boards", "board_pins", "board_boards", "pin_hard"};
    for (int r = 0; r < size && !rc; r++) {
        sp_sfile_r *f;
        sp_stage_part(ctx, "walks", r, size, NULL, 0, path, sizeof path);
        if ((rc = sp_sfile_open(&f, path, "walks"))) break;
        const uint64_t *pins, *boards;
        uint64_t np, nb;
        rc = sp_sfile_get(f, "pin_ids", 8, (const void **)&pins, &np);
        if (!rc) rc = sp_sfile_get(f, "board_ids", 8, (const void **)&boards, &nb);
        for (int t = 0; t < 5 && !rc; t++) {
            char tag[16];
            const uint64_t *off;
            const sp_nbr *v;
            uint64_t noff, nv;
            snprintf(tag, sizeof tag, "%s_off", TABS[t]);
            rc = sp_sfile_get(f, tag, 8, (const void **)&off, &noff);
            if (!rc) rc = sp_sfile_get(f, TABS[t], sizeof *v, (const void **)&v, &nv);
            int src_board = t == 2 || t == 3, nbr_board = t == 1 || t == 3;
            uint64_t ns = src_board ? nb : np;
            if (!rc && noff != ns + 1) rc = sp_err(SP_EFORMAT, "%s: %s has %" PRIu64 " offsets", path, tag, noff);
            for (uint64_t i = 0; !rc && i < ns; i++)
                for (uint64_t e = off[i]; !rc && e < off[i + 1] && e < nv; e++) {
                    if (t == 4)
                        rc = sp_lines_addf(&lines, "H p%" PRIu64 " p%" PRIu64, pins[i], v[e].ext);
                    else
                        rc = sp_lines_addf(&lines, "N %c%" PRIu64 " %c%" PRIu64 " %u %.6f", src_board ? 'b' : 'p',
                                           src_board ? boards[i] : pins[i], nbr_board ? 'b' : 'p', v[e].ext,
                                           v[e].count, (double)v[e].weight);
                }
        }
        for (int k = 0; k < 2 && !rc; k++) {
            const sp_pair_rec *pr;
            uint64_t npr;
            rc = sp_sfile_get(f, k ? "engage_pairs" : "walk_pairs", sizeof *pr, (const void **)&pr, &npr);
            for (uint64_t i = 0; !rc && i < npr; i++)
                rc = sp_lines_addf(&lines, "P p%" PRIu64 " p%" PRIu64 " %u %u", pr[i].q, pr[i].p, pr[i].kind,
                                   pr[i].count);
        }
        sp_sfile_close(f);
    }
    if (!rc) sp_lines_sort_write(&lines, out);
    sp_lines_free(&lines);
    return rc;
}
