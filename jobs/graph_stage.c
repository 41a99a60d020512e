/* graph stage: edges arrive grouped by pin owner from ingest; the board side
 * is a second shuffle to board owners; the optional pin-pin relation is made
 * symmetric with a third. Pruning is decided per node from (seed, node id)
 * over the neighbour list sorted by external id, so the kept edges do not
 * depend on the rank count. External ids are then resolved to global
 * references with one request/reply shuffle per node type. */
#include "graph_stage.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dist.h"
#include "graph.h"
#include "ingest.h"
#include "json.h"
#include "lines.h"
#include "log.h"
#include "sfile.h"
#include "sort.h"
#include "sp_base.h"

typedef struct { uint64_t src, dst; } pair;

typedef struct {
    pair *v;
    size_t n, cap;
} pairs;

static int sink_pair(void *c, int src, const void *rec, size_t len) {
    pairs *p = c;
    (void)src;
    if (len != sizeof(pair)) return sp_err(SP_EINTERNAL, "graph: pair record of %zu bytes", len);
    if (sp_grow((void **)&p->v, &p->cap, p->n + 1, sizeof *p->v)) return SP_ENOMEM;
    memcpy(&p->v[p->n++], rec, sizeof(pair));
    return SP_OK;
}

/* Sort + unique in place; on ENOMEM *n is left as is and the error returned. */
static int sort_unique_pairs(pair *v, size_t *n) {
    int rc = sp_radix_sort(v, *n, sizeof *v, (size_t[]){0, 8}, 2);
    size_t k = 0;
    for (size_t i = 0; !rc && i < *n; i++)
        if (!k || v[i].src != v[k - 1].src || v[i].dst != v[k - 1].dst) v[k++] = v[i];
    if (!rc) *n = k;
    return rc;
}
static int sort_unique_u64(uint64_t *v, uint64_t *n) {
    int rc = sp_radix_sort(v, *n, 8, (size_t[]){0}, 1);
    size_t k = 0;
    for (size_t i = 0; !rc && i < *n; i++)
        if (!k || v[i] != v[k - 1]) v[k++] = v[i];
    if (!rc) *n = k;
    return rc;
}

/* Collective: sends every pair to owner(type, key(pair)) and collects what arrives. */
static int shuffle_pairs(const sp_run_ctx *ctx, const pair *v, size_t n, sp_type type, int swap, pairs *out) {
    sp_shuffle *s;
    int rc = sp_shuffle_new(&s, (size_t)sp_config_int(ctx->cfg, "pipeline", "shuffle_buffer_mb") << 20, sink_pair, out);
    rc = sp_dist_agree(rc);
    if (rc) return rc;
    size_t i = 0;
    int all_done = 0;
    while (!rc && !all_done) {
        int lrc = SP_OK;
        for (; i < n && !lrc && !sp_shuffle_full(s); i++) {
            pair p = swap ? (pair){v[i].dst, v[i].src} : v[i];
            lrc = sp_shuffle_put(s, sp_owner(type, p.src, ctx->size), &p, sizeof p);
        }
        rc = sp_shuffle_exchange(s, i == n, lrc, &all_done);
    }
    sp_shuffle_free(s);
    return rc;
}

/* ---- id resolution: external id -> gref, by asking the owners ---- */

typedef struct {
    const uint64_t *own_ids; /* the responder's sorted ids of this type */
    uint64_t own_n;
    uint64_t **reply;        /* [size] per requester: local indices, request order */
    size_t *nreply, *capreply;
    uint64_t *answer;        /* requester: local index per unique id */
    uint64_t **slot;         /* requester: [size] unique-id positions asked of each owner */
    size_t *cursor;          /* requester: replies consumed per owner */
    int rank;
} resolver;

static int sink_request(void *c, int src, const void *rec, size_t len) {
    resolver *r = c;
    uint64_t id;
    if (len != 8) return sp_err(SP_EINTERNAL, "graph: request of %zu bytes", len);
    memcpy(&id, rec, 8);
    int64_t at = sp_id_find(r->own_ids, r->own_n, id);
    if (at < 0) return sp_err(SP_EINTERNAL, "graph: rank %d asked rank %d for node %" PRIu64 " it does not own", src,
                              r->rank, id);
    if (sp_grow((void **)&r->reply[src], &r->capreply[src], r->nreply[src] + 1, 8)) return SP_ENOMEM;
    r->reply[src][r->nreply[src]++] = (uint64_t)at;
    return SP_OK;
}

static int sink_reply(void *c, int src, const void *rec, size_t len) {
    resolver *r = c;
    if (len != 8) return sp_err(SP_EINTERNAL, "graph: reply of %zu bytes", len);
    size_t k = r->cursor[src]++;
    memcpy(&r->answer[r->slot[src][k]], rec, 8);
    return SP_OK;
}

/* Rewrites adj[0..nadj) of `nlists` lists from external ids of `type` to
 * grefs. All entries are sorted once as (id, position): the unique ids fall
 * out in order, go to their owners, and the answers are written back by a
 * sequential walk (no per-edge search). */
static int resolve(const sp_run_ctx *ctx, sp_type type, const uint64_t *own_ids, uint64_t own_n, uint64_t **adj,
                   const uint64_t *nadj, int nlists) {
    int size = ctx->size, rc = SP_OK;
    size_t total = 0;
    for (int l = 0; l < nlists; l++) total += nadj[l];
    pair *ent = malloc(sizeof *ent * (total ? total : 1)); /* {id, list << 58 | index} */
    uint64_t *uniq = malloc(8 * (total ? total : 1));
    resolver r = {.own_ids = own_ids, .own_n = own_n, .rank = ctx->rank};
    r.reply = calloc((size_t)size, sizeof *r.reply);
    r.nreply = calloc((size_t)size, sizeof *r.nreply);
    r.capreply = calloc((size_t)size, sizeof *r.capreply);
    r.slot = calloc((size_t)size, sizeof *r.slot);
    r.cursor = calloc((size_t)size, sizeof *r.cursor);
    size_t *nslot = calloc((size_t)size, sizeof *nslot);
    if (!ent || !uniq || !r.reply || !r.nreply || !r.capreply || !r.slot || !r.cursor || !nslot) rc = SP_ENOMEM;
    size_t nu = 0;
    if (!rc) {
        size_t t = 0;
        for (int l = 0; l < nlists; l++)
            for (uint64_t e = 0; e < nadj[l]; e++) ent[t++] = (pair){adj[l][e], ((uint64_t)l << 58) | e};
        rc = sp_radix_sort(ent, total, sizeof *ent, (size_t[]){0}, 1);
    }
    if (!rc) {
        for (size_t i = 0; i < total; i++)
            if (!nu || ent[i].src != uniq[nu - 1]) uniq[nu++] = ent[i].src;
        r.answer = malloc(8 * (nu ? nu : 1));
        if (!r.answer) rc = SP_ENOMEM;
        for (size_t i = 0; !rc && i < nu; i++) nslot[sp_owner(type, uniq[i], size)]++;
        for (int o = 0; !rc && o < size; o++)
            if (!(r.slot[o] = malloc(8 * (nslot[o] ? nslot[o] : 1)))) rc = SP_ENOMEM;
        if (!rc) {
            memset(nslot, 0, sizeof *nslot * (size_t)size);
            for (size_t i = 0; i < nu; i++) {
                int o = sp_owner(type, uniq[i], size);
                r.slot[o][nslot[o]++] = i;
            }
        }
    }
    rc = sp_dist_agree(rc);
    /* Round 1: requests, in ascending id order per owner. */
    sp_shuffle *s = NULL;
    size_t buf = (size_t)sp_config_int(ctx->cfg, "pipeline", "shuffle_buffer_mb") << 20;
    if (!rc) rc = sp_dist_agree(sp_shuffle_new(&s, buf, sink_request, &r));
    size_t i = 0;
    int all_done = 0;
    while (!rc && !all_done) {
        int lrc = SP_OK;
        for (; i < nu && !lrc && !sp_shuffle_full(s); i++)
            lrc = sp_shuffle_put(s, sp_owner(type, uniq[i], size), &uniq[i], 8);
        rc = sp_shuffle_exchange(s, i == nu, lrc, &all_done);
    }
    sp_shuffle_free(s);
    s = NULL;
    /* Round 2: replies go back in the order the requests came. */
    if (!rc) rc = sp_dist_agree(sp_shuffle_new(&s, buf, sink_reply, &r));
    int src = 0;
    size_t at = 0;
    all_done = 0;
    while (!rc && !all_done) {
        int lrc = SP_OK;
        while (src < size && !lrc && !sp_shuffle_full(s)) {
            if (at == r.nreply[src]) {
                src++;
                at = 0;
                continue;
            }
            lrc = sp_shuffle_put(s, src, &r.reply[src][at++], 8);
        }
        rc = sp_shuffle_exchange(s, src == size, lrc, &all_done);
    }
    sp_shuffle_free(s);
    for (int o = 0; !rc && o < size; o++)
        if (r.cursor[o] != nslot[o])
            rc = sp_err(SP_EINTERNAL, "graph: rank %d answered %zu of %zu lookups", o, r.cursor[o], nslot[o]);
    rc = sp_dist_agree(rc);
    for (size_t e = 0, u = 0; !rc && e < total; e++) {
        if (e && ent[e].src != ent[e - 1].src) u++;
        uint64_t g = sp_gref_make(sp_owner(type, ent[e].src, size), r.answer[u]);
        adj[ent[e].dst >> 58][ent[e].dst & ((1ULL << 58) - 1)] = g;
    }
    for (int o = 0; r.reply && o < size; o++) free(r.reply[o]);
    for (int o = 0; r.slot && o < size; o++) free(r.slot[o]);
    free(r.reply);
    free(r.nreply);
    free(r.capreply);
    free(r.slot);
    free(r.cursor);
    free(r.answer);
    free(nslot);
    free(uniq);
    free(ent);
    return rc;
}

/* ---- the stage ---- */

static void degstats_json(sp_jw *w, const char *key, const sp_degstats *s) {
    sp_jw_obj_begin(w, key);
    sp_jw_u64(w, "nodes", s->nodes);
    sp_jw_u64(w, "edges", s->edges);
    sp_jw_f64(w, "mean", s->nodes ? (double)s->edges / (double)s->nodes : 0);
    sp_jw_u64(w, "zero", s->exact[0]);
    sp_jw_u64(w, "p50", sp_degstats_quantile(s, 0.5));
    sp_jw_u64(w, "p90", sp_degstats_quantile(s, 0.9));
    sp_jw_u64(w, "p99", sp_degstats_quantile(s, 0.99));
    sp_jw_u64(w, "max", s->max);
    sp_jw_obj_end(w);
}

/* Sums degree statistics over ranks (max separately). */
static int degstats_reduce(sp_degstats *s) {
    uint64_t mx = s->max;
    int rc = sp_dist_sum_u64(&s->nodes, (int)(sizeof *s / 8));
    if (!rc) rc = sp_dist_max_u64(&mx, 1);
    s->max = mx;
    return rc;
}

int sp_graph_run(const sp_run_ctx *ctx, sp_stage_result *res) {
    const sp_config *cfg = ctx->cfg;
    char name[96], path[4096];
    sp_stage_part(ctx, "ingest", ctx->rank, ctx->size, NULL, 0, path, sizeof path);
    sp_sfile_r *in = NULL;
    const sp_edge_rec *edges = NULL;
    const sp_pinpin_rec *ppin = NULL;
    const uint64_t *dense_ids = NULL, *tok_ids = NULL;
    uint64_t nedges = 0, npp = 0, ndense = 0, ntok = 0;
    int rc = sp_sfile_open(&in, path, "ingest");
    if (!rc) rc = sp_sfile_get(in, "edges", sizeof *edges, (const void **)&edges, &nedges);
    if (!rc) rc = sp_sfile_get(in, "pinpin", sizeof *ppin, (const void **)&ppin, &npp);
    if (!rc) rc = sp_sfile_get(in, "dense_ids", 8, (const void **)&dense_ids, &ndense);
    if (!rc) rc = sp_sfile_get(in, "tok_ids", 8, (const void **)&tok_ids, &ntok);
    rc = sp_dist_agree(rc);
    if (rc) {
        sp_sfile_close(in);
        return rc;
    }
    uint64_t seed = (uint64_t)sp_config_int(cfg, "pipeline", "seed");
    double ex = sp_config_f64(cfg, "graph", "prune_exponent");
    uint64_t cap = (uint64_t)sp_config_int(cfg, "graph", "prune_cap");
    uint64_t flo = (uint64_t)sp_config_int(cfg, "graph", "prune_floor");

    double t0 = sp_now();
#define PHASE(name) SP_INFO("phase", "name=%s seconds=%.3f", name, sp_now() - t0)
    /* Pin side pairs (pin, board): already sorted and unique from ingest. */
    pair *pb = malloc(sizeof *pb * (nedges ? nedges : 1));
    pairs bp = {0}, pp = {0};
    rc = pb ? SP_OK : SP_ENOMEM;
    for (uint64_t i = 0; !rc && i < nedges; i++) pb[i] = (pair){edges[i].pin, edges[i].board};
    rc = sp_dist_agree(rc);
    /* Board side: (board, pin) at the board's owner. */
    if (!rc) rc = shuffle_pairs(ctx, pb, nedges, SP_BOARD, 1, &bp);
    /* Pin-pin: symmetric; both directions at the first pin's owner. */
    pair *ppl = NULL;
    if (!rc) {
        ppl = malloc(sizeof *ppl * (npp ? npp : 1));
        rc = sp_dist_agree(ppl ? SP_OK : SP_ENOMEM);
    }
    for (uint64_t i = 0; !rc && i < npp; i++) ppl[i] = (pair){ppin[i].a, ppin[i].b};
    if (!rc) rc = shuffle_pairs(ctx, ppl, npp, SP_PIN, 1, &pp);
    if (!rc) {
        rc = sp_grow((void **)&pp.v, &pp.cap, pp.n + npp, sizeof *pp.v);
        if (!rc) {
            if (npp) memcpy(pp.v + pp.n, ppl, sizeof *ppl * npp); /* pp.v may be NULL when both are empty */
            pp.n += npp;
            rc = sort_unique_pairs(pp.v, &pp.n);
        }
        if (!rc) rc = sort_unique_pairs(bp.v, &bp.n);
        rc = sp_dist_agree(rc);
    }
    free(ppl);
    if (!rc) PHASE("shuffle_sort");

    /* Owned node ids: pins from edges, pin-pin, features, tokens; boards from edges. */
    uint64_t *pin_ids = NULL, *board_ids = NULL, npins = 0, nboards = 0;
    if (!rc) {
        pin_ids = malloc(8 * (nedges + pp.n + ndense + ntok + 1));
        board_ids = malloc(8 * (bp.n + 1));
        rc = sp_dist_agree(pin_ids && board_ids ? SP_OK : SP_ENOMEM);
    }
    if (!rc) {
        size_t k = 0;
        for (uint64_t i = 0; i < nedges; i++) pin_ids[k++] = edges[i].pin;
        for (size_t i = 0; i < pp.n; i++) pin_ids[k++] = pp.v[i].src;
        memcpy(pin_ids + k, dense_ids, 8 * ndense);
        k += ndense;
        memcpy(pin_ids + k, tok_ids, 8 * ntok);
        k += ntok;
        npins = k;
        nboards = bp.n;
        for (size_t i = 0; i < bp.n; i++) board_ids[i] = bp.v[i].src;
        rc = sort_unique_u64(pin_ids, &npins);
        if (!rc) rc = sort_unique_u64(board_ids, &nboards);
        rc = sp_dist_agree(rc);
    }
    sp_sfile_close(in);
    in = NULL;
    edges = NULL;

    /* CSR with pruning, relation tags: 0 pin->board, 1 board->pin, 2 pin->pin. */
    sp_csr gp = {0}, gb = {0}, gpp = {0};
    uint32_t *pdeg = NULL, *bdeg = NULL, *ppdeg = NULL;
    sp_degstats *st = calloc(6, sizeof *st); /* pin before/after, board before/after, pp before/after */
    if (!rc) {
        pdeg = malloc(4 * (npins + 1));
        bdeg = malloc(4 * (nboards + 1));
        ppdeg = malloc(4 * (npins + 1));
        rc = (pdeg && bdeg && ppdeg && st) ? SP_OK : SP_ENOMEM;
        if (!rc) rc = sp_csr_build(&gp, pin_ids, npins, pb, nedges, sizeof(pair), 0, 8, SP_PIN, 0, seed, ex, cap, flo,
                                   pdeg, &st[0], &st[1]);
        if (!rc) rc = sp_csr_build(&gb, board_ids, nboards, bp.v, bp.n, sizeof(pair), 0, 8, SP_BOARD, 1, seed, ex,
                                   cap, flo, bdeg, &st[2], &st[3]);
        if (!rc) rc = sp_csr_build(&gpp, pin_ids, npins, pp.v, pp.n, sizeof(pair), 0, 8, SP_PIN, 2, seed, ex, cap,
                                   flo, ppdeg, &st[4], &st[5]);
        rc = sp_dist_agree(rc);
    }
    free(pb);
    free(bp.v);
    free(pp.v);
    if (!rc) PHASE("csr_prune");
    /* Neighbour ids -> global references. */
    if (!rc) rc = resolve(ctx, SP_BOARD, board_ids, nboards, (uint64_t *[]){gp.adj}, (uint64_t[]){gp.off[npins]}, 1);
    if (!rc)
        rc = resolve(ctx, SP_PIN, pin_ids, npins, (uint64_t *[]){gb.adj, gpp.adj},
                     (uint64_t[]){gb.off[nboards], gpp.off[npins]}, 2);
    if (!rc) PHASE("resolve");
    /* Write the partition. */
    uint64_t bytes_mem = 0;
    if (!rc) {
        sp_stage_part(ctx, "graph", ctx->rank, ctx->size, name, sizeof name, path, sizeof path);
        sp_sfile_w *w;
        uint64_t meta[4] = {(uint64_t)ctx->rank, (uint64_t)ctx->size, npins, nboards};
        rc = sp_sfile_create(&w, path, "graph");
        if (!rc) {
            rc = sp_sfile_put(w, "meta", 8, meta, 4);
            if (!rc) rc = sp_sfile_put(w, "pin_ids", 8, pin_ids, npins);
            if (!rc) rc = sp_sfile_put(w, "board_ids", 8, board_ids, nboards);
            if (!rc) rc = sp_sfile_put(w, "pin_off", 8, gp.off, npins + 1);
            if (!rc) rc = sp_sfile_put(w, "pin_adj", 8, gp.adj, gp.off[npins]);
            if (!rc) rc = sp_sfile_put(w, "pin_deg", 4, pdeg, npins);
            if (!rc) rc = sp_sfile_put(w, "board_off", 8, gb.off, nboards + 1);
            if (!rc) rc = sp_sfile_put(w, "board_adj", 8, gb.adj, gb.off[nboards]);
            if (!rc) rc = sp_sfile_put(w, "board_deg", 4, bdeg, nboards);
            if (!rc) rc = sp_sfile_put(w, "pp_off", 8, gpp.off, npins + 1);
            if (!rc) rc = sp_sfile_put(w, "pp_adj", 8, gpp.adj, gpp.off[npins]);
            rc = sp_stage_commit_part(res, w, rc, name, path);
        }
        /* The in-memory graph a later stage loads: ids, offsets, adjacency, degrees. */
        bytes_mem = 8 * (npins + nboards) + 8 * (2 * npins + nboards + 3) +
                    8 * (gp.off[npins] + gb.off[nboards] + gpp.off[npins]) + 4 * (npins + nboards);
        rc = sp_dist_agree(rc);
    }
    if (!rc) PHASE("write");
#undef PHASE
    uint64_t tot[2] = {bytes_mem, nedges};
    if (!rc) rc = sp_dist_sum_u64(tot, 2);
    for (int i = 0; !rc && i < 6; i++) rc = degstats_reduce(&st[i]);
    if (!rc) {
        sp_stage_count(res, "pins", npins);
        sp_stage_count(res, "boards", nboards);
        sp_stage_count(res, "pin_board_edges", nedges);
        sp_stage_count(res, "pin_side_kept", gp.off[npins]);
        sp_stage_count(res, "board_side_kept", gb.off[nboards]);
        sp_stage_count(res, "pin_pin_kept", gpp.off[npins]);
        sp_stage_count(res, "graph_bytes", bytes_mem);
        double bpe = tot[1] ? (double)tot[0] / (double)tot[1] : 0;
        if (ctx->rank == 0) SP_INFO("graph", "pins=%" PRIu64 " boards=%" PRIu64 " edges=%" PRIu64 " pin_deg_max=%" PRIu64
                " board_deg_max=%" PRIu64 " board_deg_p99=%" PRIu64 " bytes=%" PRIu64 " bytes_per_edge=%.2f",
                st[0].nodes, st[2].nodes, tot[1], st[0].max, st[2].max, sp_degstats_quantile(&st[2], 0.99), tot[0], bpe);
        if (ctx->rank == 0) {
            sp_jw w;
            sp_jw_init(&w);
            sp_jw_obj_begin(&w, NULL);
            degstats_json(&w, "pin_degree", &st[0]);
            degstats_json(&w, "pin_degree_pruned", &st[1]);
            degstats_json(&w, "board_degree", &st[2]);
            degstats_json(&w, "board_degree_pruned", &st[3]);
            degstats_json(&w, "pin_pin_degree", &st[4]);
            degstats_json(&w, "pin_pin_degree_pruned", &st[5]);
            sp_jw_u64(&w, "graph_bytes", tot[0]);
            sp_jw_f64(&w, "bytes_per_edge", bpe);
            sp_jw_obj_end(&w);
            const char *t;
            size_t tl;
            if (!sp_jw_finish(&w, &t, &tl)) {
                res->extra_json = strdup(t);
                char *nl = res->extra_json ? strchr(res->extra_json, '\n') : NULL;
                if (nl) *nl = 0;
            }
            sp_jw_free(&w);
        }
    }
    sp_csr_free(&gp);
    sp_csr_free(&gb);
    sp_csr_free(&gpp);
    free(pdeg);
    free(bdeg);
    free(ppdeg);
    free(st);
    free(pin_ids);
    free(board_ids);
    return rc;
}

/* ---- dump ---- */

typedef struct {
    sp_sfile_r *f;
    const uint64_t *pin_ids, *board_ids, *pin_off, *pin_adj, *board_off, *board_adj, *pp_off, *pp_adj;
    uint64_t npins, nboards;
} part_view;


int sp_graph_dump(const sp_run_ctx *ctx, FILE *out) {
    int size, rc = sp_stage_ranks(ctx, "graph", &size);
    if (rc) return rc;
    char path[4096];
    part_view *pv = calloc((size_t)size, sizeof *pv);
    if (!pv) return SP_ENOMEM;
    uint64_t n;
    for (int r = 0; r < size && !rc; r++) {
        part_view *v = &pv[r];
        sp_stage_part(ctx, "graph", r, size, NULL, 0, path, sizeof path);
        rc = sp_sfile_open(&v->f, path, "graph");
        if (!rc) rc = sp_sfile_get(v->f, "pin_ids", 8, (const void **)&v->pin_ids, &v->npins);
        if (!rc) rc = sp_sfile_get(v->f, "board_ids", 8, (const void **)&v->board_ids, &v->nboards);
        if (!rc) rc = sp_sfile_get(v->f, "pin_off", 8, (const void **)&v->pin_off, &n);
        if (!rc) rc = sp_sfile_get(v->f, "pin_adj", 8, (const void **)&v->pin_adj, &n);
        if (!rc) rc = sp_sfile_get(v->f, "board_off", 8, (const void **)&v->board_off, &n);
        if (!rc) rc = sp_sfile_get(v->f, "board_adj", 8, (const void **)&v->board_adj, &n);
        if (!rc) rc = sp_sfile_get(v->f, "pp_off", 8, (const void **)&v->pp_off, &n);
        if (!rc) rc = sp_sfile_get(v->f, "pp_adj", 8, (const void **)&v->pp_adj, &n);
    }
    sp_lines lines = {0};
    for (int r = 0; r < size && !rc; r++) {
        part_view *v = &pv[r];
        for (int rel = 0; rel < 3 && !rc; rel++) {
            uint64_t nn = rel == 1 ? v->nboards : v->npins;
            const uint64_t *ids = rel == 1 ? v->board_ids : v->pin_ids;
            const uint64_t *off = rel == 0 ? v->pin_off : rel == 1 ? v->board_off : v->pp_off;
            const uint64_t *adj = rel == 0 ? v->pin_adj : rel == 1 ? v->board_adj : v->pp_adj;
            for (uint64_t i = 0; i < nn && !rc; i++)
                for (uint64_t e = off[i]; e < off[i + 1] && !rc; e++) {
                    int o = sp_gref_rank(adj[e]);
                    uint64_t l = sp_gref_local(adj[e]);
                    int nb_board = rel == 0;
                    if (o >= size || l >= (nb_board ? pv[o].nboards : pv[o].npins)) {
                        rc = sp_err(SP_EFORMAT, "graph part %d: reference to rank %d node %" PRIu64 " out of range", r,
                                    o, l);
                        break;
                    }
                    uint64_t nid = nb_board ? pv[o].board_ids[l] : pv[o].pin_ids[l];
                    rc = sp_lines_addf(&lines, "%c%" PRIu64 "\t%c%" PRIu64, rel == 1 ? 'b' : 'p', ids[i],
                                       nb_board ? 'b' : 'p', nid);
                }
        }
    }
    if (!rc) sp_lines_sort_write(&lines, out);
    sp_lines_free(&lines);
    for (int r = 0; r < size; r++) sp_sfile_close(pv[r].f);
    free(pv);
    return rc;
}
