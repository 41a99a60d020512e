/* sage_data: gathers the walks, graph and ingest parts of a date into the
 * global view the trainer samples from (sage_data.h). Every id is resolved
 * by owner rank + binary search in that part's sorted id array. */
#include "sage_data.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "ingest.h"
#include "pairs.h"
#include "sfile.h"
#include "walk.h"

static uint32_t find_in(const uint64_t *ids, uint64_t n, uint64_t id) {
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (ids[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && ids[lo] == id ? (uint32_t)lo : UINT32_MAX;
}

uint32_t sp_sage_data_find(const sp_sage_data *d, sp_type t, uint64_t id) {
    if (t != SP_PIN && t != SP_BOARD) return UINT32_MAX;
    int r = sp_owner(t, id, d->parts);
    const uint64_t *base = t == SP_PIN ? d->pin_base : d->board_base;
    uint64_t off = t == SP_PIN ? 0 : d->npins;
    uint64_t lo = off + base[r], n = base[r + 1] - base[r];
    uint32_t i = find_in(d->ext + lo, n, id);
    return i == UINT32_MAX ? i : (uint32_t)(lo + i);
}

/* The part p with base[p] <= v < base[p + 1] (v < base[parts]; empty parts are skipped: base[lo] <= v
 * and base[hi] > v hold throughout, so lo ends on the last part starting at or before v) */
static int upper(const uint64_t *base, int parts, uint64_t v) {
    int lo = 0, hi = parts;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (base[mid] <= v) lo = mid;
        else hi = mid;
    }
    return lo;
}

int sp_sage_data_part(const sp_sage_data *d, uint32_t u) {
    return u < d->npins ? upper(d->pin_base, d->parts, u) : upper(d->board_base, d->parts, u - d->npins);
}

uint64_t sp_sage_data_local(const sp_sage_data *d, uint32_t u) {
    int p = sp_sage_data_part(d, u);
    return u < d->npins ? d->own_pbase[p] + (u - d->pin_base[p])
                        : d->own_np + d->own_bbase[p] + (u - d->npins - d->board_base[p]);
}

uint64_t sp_sage_data_view_bytes(const sp_sage_data *d) {
    uint64_t no = d->own_np + d->own_nb, e = (d->pn_off ? d->pn_off[no] : 0) + (d->bn_off ? d->bn_off[no] : 0);
    return 16 * (no + 1) + 8 * e + 4 * d->own_np * (uint64_t)d->dense_dim +
           (d->tok_off ? 8 * (d->own_np + 1) + 4 * d->tok_off[d->own_np] : 0);
}

void sp_sage_data_free(sp_sage_data *d) {
    free(d->own_pbase);
    free(d->own_bbase);
    free(d->ext);
    free(d->pin_base);
    free(d->board_base);
    free(d->logdeg);
    free(d->pn_off);
    free(d->bn_off);
    free(d->pn_idx);
    free(d->bn_idx);
    free(d->pn_w);
    free(d->bn_w);
    free(d->hard_off);
    free(d->hard_idx);
    free(d->board_pin);
    free(d->pin_pin);
    free(d->dense);
    free(d->tok_off);
    free(d->tok_row);
    memset(d, 0, sizeof *d);
}

/* Appends node src's first `keep` neighbours of a table (renormalised counts). */
static void add_list(const sp_nbr *v, uint64_t a, uint64_t b, int keep, uint64_t base_of_type, const uint64_t *part_base,
                     uint32_t *idx, float *w, uint64_t *pos) {
    uint64_t m = sp_nbr_weights(v + a, b - a, (uint64_t)keep, w + *pos);
    for (uint64_t j = 0; j < m; j++) {
        const sp_nbr *e = &v[a + j];
        idx[(*pos)++] = (uint32_t)(base_of_type + part_base[sp_gref_rank(e->ref)] + sp_gref_local(e->ref));
    }
}

/* Pin-board edges (board -> pin task), dense features and token rows from the ingest parts. */
static int load_ingest(const sp_run_ctx *ctx, sp_sage_data *d, int tok_rows) {
    int parts, rc = sp_stage_ranks(ctx, "ingest", &parts);
    char path[PATH_MAX + 64];
    uint64_t ne = 0;
    d->tok_rows = tok_rows;
    if (tok_rows) {
        d->tok_off = calloc(d->own_np + 1, 8);
        if (!d->tok_off) return SP_ENOMEM;
    }
    for (int pass = 0; pass < 2 && !rc; pass++) {
        uint64_t k = 0, nt = 0;
        for (int r = 0; r < parts && !rc; r++) {
            sp_sfile_r *f;
            sp_stage_part(ctx, "ingest", r, parts, NULL, 0, path, sizeof path);
            if ((rc = sp_sfile_open(&f, path, "ingest"))) break;
            const sp_edge_rec *e;
            const uint64_t *meta, *tid, *toff, *thash, *did;
            const float *dense;
            uint64_t c, nmeta, ntid, ntoff, nth, ndid, ndense;
            rc = sp_sfile_get(f, "edges", sizeof *e, (const void **)&e, &c);
            for (uint64_t i = 0; !rc && i < c; i++) {
                uint32_t b = sp_sage_data_find(d, SP_BOARD, e[i].board), p = sp_sage_data_find(d, SP_PIN, e[i].pin);
                if (b == UINT32_MAX || p == UINT32_MAX) continue; /* pruned away entirely: cannot happen, kept safe */
                if (pass) d->board_pin[k] = (sp_tpair){b, p};
                k++;
            }
            if (!rc) rc = sp_sfile_get(f, "meta", 8, (const void **)&meta, &nmeta);
            uint64_t dim = !rc && nmeta >= 3 ? meta[2] : 0;
            if (!rc && dim && pass) {
                rc = sp_sfile_get(f, "dense_ids", 8, (const void **)&did, &ndid);
                if (!rc) rc = sp_sfile_get(f, "dense", (uint32_t)(4 * dim), (const void **)&dense, &ndense);
                if (!rc && !d->dense) {
                    d->dense_dim = (int)dim;
                    d->dense = calloc(d->own_np * dim + 1, 4);
                    if (!d->dense) rc = SP_ENOMEM;
                }
                if (!rc && (uint64_t)d->dense_dim != dim)
                    rc = sp_err(SP_EFORMAT, "%s: dense dim %" PRIu64 ", other parts %d", path, dim, d->dense_dim);
                for (uint64_t i = 0; !rc && i < ndid; i++) {
                    uint32_t p = sp_sage_data_find(d, SP_PIN, did[i]);
                    if (p != UINT32_MAX && sp_sage_data_owner(d, p) == d->own_rank)
                        memcpy(d->dense + sp_sage_data_local(d, p) * dim, dense + i * dim, 4 * dim);
                }
            }
            if (!rc && tok_rows) {
                rc = sp_sfile_get(f, "tok_ids", 8, (const void **)&tid, &ntid);
                if (!rc) rc = sp_sfile_get(f, "tok_off", 8, (const void **)&toff, &ntoff);
                if (!rc) rc = sp_sfile_get(f, "tok_hash", 8, (const void **)&thash, &nth);
                if (!rc && (ntoff != ntid + 1 || toff[ntid] != nth)) rc = sp_err(SP_EFORMAT, "%s: token tables", path);
                for (uint64_t i = 0; !rc && i < ntid; i++) {
                    uint32_t p0 = sp_sage_data_find(d, SP_PIN, tid[i]);
                    if (p0 == UINT32_MAX || sp_sage_data_owner(d, p0) != d->own_rank) continue;
                    uint64_t p = sp_sage_data_local(d, p0);
                    if (!pass) d->tok_off[p + 1] = toff[i + 1] - toff[i];
                    else
                        for (uint64_t j = toff[i]; j < toff[i + 1]; j++)
                            d->tok_row[d->tok_off[p] + (j - toff[i])] = (uint32_t)(thash[j] % (uint64_t)tok_rows);
                    nt += toff[i + 1] - toff[i];
                }
            }
            sp_sfile_close(f);
        }
        if (!rc && !pass) {
            ne = k;
            d->board_pin = malloc(sizeof *d->board_pin * (ne + 1));
            if (!d->board_pin) rc = SP_ENOMEM;
            if (tok_rows) {
                for (uint64_t u = 0; u < d->own_np; u++) d->tok_off[u + 1] += d->tok_off[u];
                d->tok_row = malloc(4 * (d->tok_off[d->own_np] + 1));
                if (!d->tok_row) rc = SP_ENOMEM;
            }
        }
        (void)nt;
    }
    d->nboard_pin = ne;
    return rc;
}

/* Opens part r's walks file (and graph file when graph), closing the others first: one part's files are in
 * memory at a time (an sfile is read whole), so a rank's peak is one part plus what it keeps. Each walks
 * part is read three times (counts; sizes; lists and pairs), each graph part once (degrees). */
static int hold(const sp_run_ctx *ctx, sp_sfile_r **wf, sp_sfile_r **gf, int parts, int r, int graph) {
    char path[PATH_MAX + 64];
    for (int q = 0; q < parts; q++) {
        if (q != r && wf[q]) sp_sfile_close(wf[q]), wf[q] = NULL;
        if ((q != r || !graph) && gf[q]) sp_sfile_close(gf[q]), gf[q] = NULL;
    }
    int rc = SP_OK;
    if (!wf[r]) {
        sp_stage_part(ctx, "walks", r, parts, NULL, 0, path, sizeof path);
        rc = sp_sfile_open(&wf[r], path, "walks");
    }
    if (!rc && graph && !gf[r]) {
        sp_stage_part(ctx, "graph", r, parts, NULL, 0, path, sizeof path);
        rc = sp_sfile_open(&gf[r], path, "graph");
    }
    return rc;
}

int sp_sage_data_load(const sp_run_ctx *ctx, int nbr_pins, int nbr_boards, int tok_rows, int own_rank, int own_size,
                      sp_sage_data *d) {
    memset(d, 0, sizeof *d);
    d->own_rank = own_size > 1 ? own_rank : 0;
    d->own_size = own_size > 1 ? own_size : 1;
    int parts, rc = sp_stage_ranks(ctx, "walks", &parts);
    if (rc) return rc;
    int gparts, iparts;
    if ((rc = sp_stage_ranks(ctx, "graph", &gparts)) || (rc = sp_stage_ranks(ctx, "ingest", &iparts))) return rc;
    if (gparts != parts)
        return sp_err(SP_EUSAGE, "graph ran on %d ranks and walks on %d: rerun walks", gparts, parts);
    d->parts = parts;
    sp_sfile_r **wf = calloc((size_t)parts, sizeof *wf), **gf = calloc((size_t)parts, sizeof *gf);
    d->pin_base = calloc((size_t)parts + 1, 8);
    d->board_base = calloc((size_t)parts + 1, 8);
    d->own_pbase = calloc((size_t)parts + 1, 8);
    d->own_bbase = calloc((size_t)parts + 1, 8);
    if (!wf || !gf || !d->pin_base || !d->board_base || !d->own_pbase || !d->own_bbase) rc = SP_ENOMEM;
    /* pass 1: count */
    for (int r = 0; r < parts && !rc; r++) {
        rc = hold(ctx, wf, gf, parts, r, 0);
        const void *p;
        uint64_t np = 0, nb = 0;
        if (!rc) rc = sp_sfile_get(wf[r], "pin_ids", 8, &p, &np);
        if (!rc) rc = sp_sfile_get(wf[r], "board_ids", 8, &p, &nb);
        d->pin_base[r + 1] = d->pin_base[r] + np;
        d->board_base[r + 1] = d->board_base[r] + nb;
    }
    if (!rc && d->pin_base[parts] + d->board_base[parts] >= UINT32_MAX)
        rc = sp_err(SP_EINPUT, "train: %" PRIu64 " nodes exceed the 2^32 of one rank's replicated view",
                    d->pin_base[parts] + d->board_base[parts]);
    if (rc) goto out;
    d->npins = d->pin_base[parts];
    d->nboards = d->board_base[parts];
    d->n = d->npins + d->nboards;
    for (int r = 0; r < parts; r++)
        if (r % d->own_size == d->own_rank) {
            d->own_pbase[r] = d->own_np, d->own_np += d->pin_base[r + 1] - d->pin_base[r];
            d->own_bbase[r] = d->own_nb, d->own_nb += d->board_base[r + 1] - d->board_base[r];
        }
    uint64_t n = d->n, no = d->own_np + d->own_nb;
    d->ext = malloc(8 * (n + 1));
    d->logdeg = malloc(4 * (n + 1));
    d->pn_off = calloc(no + 1, 8);
    d->bn_off = calloc(no + 1, 8);
    d->hard_off = calloc(d->npins + 1, 8);
    if (!d->ext || !d->logdeg || !d->pn_off || !d->bn_off || !d->hard_off) {
        rc = SP_ENOMEM;
        goto out;
    }
    /* pass 2: ids, degrees, list sizes */
    static const char *const TAB[4] = {"pin_pins", "pin_boards", "board_pins", "board_boards"};
    uint64_t np_e = 0, nb_e = 0, nh = 0, npp = 0; /* npp: pin-pin pairs before the check that both pins exist */
    for (int r = 0; r < parts && !rc; r++) {
        const uint64_t *pins, *boards, *off[5];
        const uint32_t *pdeg, *bdeg;
        const sp_nbr *v[5];
        uint64_t npr, nbr_, c, nv[5];
        rc = hold(ctx, wf, gf, parts, r, 1);
        if (!rc) rc = sp_sfile_get(wf[r], "pin_ids", 8, (const void **)&pins, &npr);
        if (!rc) rc = sp_sfile_get(wf[r], "board_ids", 8, (const void **)&boards, &nbr_);
        if (!rc) rc = sp_sfile_get(gf[r], "pin_deg", 4, (const void **)&pdeg, &c);
        if (!rc && c != npr) rc = sp_err(SP_EFORMAT, "graph part %d: %" PRIu64 " pin degrees for %" PRIu64 " pins", r, c, npr);
        if (!rc) rc = sp_sfile_get(gf[r], "board_deg", 4, (const void **)&bdeg, &c);
        if (!rc && c != nbr_) rc = sp_err(SP_EFORMAT, "graph part %d: board degrees", r);
        for (int t = 0; t < 5 && !rc; t++) {
            char tag[16];
            snprintf(tag, sizeof tag, "%s_off", t < 4 ? TAB[t] : "pin_hard");
            rc = sp_sfile_get(wf[r], tag, 8, (const void **)&off[t], &c);
            if (!rc) rc = sp_sfile_get(wf[r], t < 4 ? TAB[t] : "pin_hard", sizeof(sp_nbr), (const void **)&v[t], &nv[t]);
            uint64_t ns = (t == 2 || t == 3) ? nbr_ : npr;
            if (!rc && (c != ns + 1 || off[t][ns] != nv[t]))
                rc = sp_err(SP_EFORMAT, "walks part %d: table %s is inconsistent", r, t < 4 ? TAB[t] : "pin_hard");
        }
        for (int s = 0; s < 2 && !rc; s++) {
            const void *pr;
            rc = sp_sfile_get(wf[r], s ? "engage_pairs" : "walk_pairs", sizeof(sp_pair_rec), &pr, &c);
            npp += c;
        }
        if (rc) break;
        int own = r % d->own_size == d->own_rank; /* lists of owned parts only; ids, degrees and bands of all */
        for (uint64_t i = 0; i < npr; i++) {
            uint64_t u = d->pin_base[r] + i, l = d->own_pbase[r] + i;
            d->ext[u] = pins[i];
            d->logdeg[u] = logf(1.f + (float)pdeg[i]);
            uint64_t a = off[0][i + 1] - off[0][i], b = off[1][i + 1] - off[1][i];
            if (own) {
                d->pn_off[l + 1] = a < (uint64_t)nbr_pins ? a : (uint64_t)nbr_pins;
                d->bn_off[l + 1] = b < (uint64_t)nbr_boards ? b : (uint64_t)nbr_boards;
            }
            d->hard_off[u + 1] = off[4][i + 1] - off[4][i];
            nh += d->hard_off[u + 1];
        }
        for (uint64_t i = 0; i < nbr_; i++) {
            uint64_t u = d->npins + d->board_base[r] + i, l = d->own_np + d->own_bbase[r] + i;
            d->ext[u] = boards[i];
            d->logdeg[u] = logf(1.f + (float)bdeg[i]);
            uint64_t a = off[2][i + 1] - off[2][i], b = off[3][i + 1] - off[3][i];
            if (own) {
                d->pn_off[l + 1] = a < (uint64_t)nbr_pins ? a : (uint64_t)nbr_pins;
                d->bn_off[l + 1] = b < (uint64_t)nbr_boards ? b : (uint64_t)nbr_boards;
            }
        }
    }
    if (rc) goto out;
    for (uint64_t u = 0; u < no; u++) {
        d->pn_off[u + 1] += d->pn_off[u];
        d->bn_off[u + 1] += d->bn_off[u];
    }
    for (uint64_t u = 0; u < d->npins; u++) d->hard_off[u + 1] += d->hard_off[u];
    np_e = d->pn_off[no];
    nb_e = d->bn_off[no];
    d->pn_idx = malloc(4 * (np_e + 1));
    d->pn_w = malloc(4 * (np_e + 1));
    d->bn_idx = malloc(4 * (nb_e + 1));
    d->bn_w = malloc(4 * (nb_e + 1));
    d->hard_idx = malloc(4 * (nh + 1));
    d->pin_pin = malloc(sizeof *d->pin_pin * (npp + 1));
    if (!d->pn_idx || !d->pn_w || !d->bn_idx || !d->bn_w || !d->hard_idx || !d->pin_pin) {
        rc = SP_ENOMEM;
        goto out;
    }
    /* pass 3: lists of the owned parts, written at each node's local position; the pin-pin pairs (walk + engagement) */
    for (int r = 0; r < parts && !rc; r++) {
        const uint64_t *off[5];
        const sp_nbr *v[5];
        uint64_t c, npr = d->pin_base[r + 1] - d->pin_base[r], nbr_ = d->board_base[r + 1] - d->board_base[r];
        rc = hold(ctx, wf, gf, parts, r, 0);
        for (int t = 0; t < 5 && !rc; t++) {
            char tag[16];
            snprintf(tag, sizeof tag, "%s_off", t < 4 ? TAB[t] : "pin_hard");
            rc = sp_sfile_get(wf[r], tag, 8, (const void **)&off[t], &c);
            if (!rc) rc = sp_sfile_get(wf[r], t < 4 ? TAB[t] : "pin_hard", sizeof(sp_nbr), (const void **)&v[t], &c);
        }
        /* every neighbour reference must name an existing part and node (of the tables read: an owner
         * checks its parts' lists, every rank the hard-negative bands) */
        int own = r % d->own_size == d->own_rank;
        for (int t = own ? 0 : 4; t < 5 && !rc; t++) {
            const uint64_t *base = (t == 1 || t == 3) ? d->board_base : d->pin_base;
            uint64_t ns = (t == 2 || t == 3) ? nbr_ : npr;
            for (uint64_t e = 0; e < off[t][ns]; e++) {
                int rr = sp_gref_rank(v[t][e].ref);
                if (rr >= parts || sp_gref_local(v[t][e].ref) >= base[rr + 1] - base[rr]) {
                    rc = sp_err(SP_EFORMAT, "walks part %d: neighbour reference %d:%" PRIu64 " out of range", r, rr,
                                sp_gref_local(v[t][e].ref));
                    break;
                }
            }
        }
        if (rc) break;
        for (uint64_t i = 0; i < npr; i++) {
            uint64_t u = d->pin_base[r] + i, hp = d->hard_off[u];
            for (uint64_t e = off[4][i]; e < off[4][i + 1]; e++)
                d->hard_idx[hp++] = (uint32_t)(d->pin_base[sp_gref_rank(v[4][e].ref)] + sp_gref_local(v[4][e].ref));
            if (!own) continue;
            uint64_t l = d->own_pbase[r] + i, pp = d->pn_off[l], bp = d->bn_off[l];
            add_list(v[0], off[0][i], off[0][i + 1], nbr_pins, 0, d->pin_base, d->pn_idx, d->pn_w, &pp);
            add_list(v[1], off[1][i], off[1][i + 1], nbr_boards, d->npins, d->board_base, d->bn_idx, d->bn_w, &bp);
        }
        for (uint64_t i = 0; own && i < nbr_; i++) {
            uint64_t l = d->own_np + d->own_bbase[r] + i, pp = d->pn_off[l], bp = d->bn_off[l];
            add_list(v[2], off[2][i], off[2][i + 1], nbr_pins, 0, d->pin_base, d->pn_idx, d->pn_w, &pp);
            add_list(v[3], off[3][i], off[3][i + 1], nbr_boards, d->npins, d->board_base, d->bn_idx, d->bn_w, &bp);
        }
        for (int s = 0; s < 2 && !rc; s++) {
            const sp_pair_rec *pr;
            rc = sp_sfile_get(wf[r], s ? "engage_pairs" : "walk_pairs", sizeof *pr, (const void **)&pr, &c);
            for (uint64_t i = 0; !rc && i < c; i++) {
                uint32_t q = sp_sage_data_find(d, SP_PIN, pr[i].q), p = sp_sage_data_find(d, SP_PIN, pr[i].p);
                if (q == UINT32_MAX || p == UINT32_MAX) continue; /* a pin without edges: not in the graph */
                d->pin_pin[d->npin_pin++] = (sp_tpair){q, p};
            }
        }
    }
    for (int r = 0; r < parts; r++) { /* the last part read is no longer needed */
        if (wf[r]) sp_sfile_close(wf[r]), wf[r] = NULL;
        if (gf[r]) sp_sfile_close(gf[r]), gf[r] = NULL;
    }
    if (!rc) rc = load_ingest(ctx, d, tok_rows);
    if (!rc && d->own_size == 1) { /* the whole graph: the encoder reads it by global index */
        sp_sage_graph *g = &d->g;
        g->n = d->n;
        g->npins = d->npins;
        g->logdeg = d->logdeg;
        g->pn_off = d->pn_off, g->pn_idx = d->pn_idx, g->pn_w = d->pn_w;
        g->bn_off = d->bn_off, g->bn_idx = d->bn_idx, g->bn_w = d->bn_w;
        g->dense_dim = d->dense_dim;
        g->dense = d->dense;
        g->tok_off = d->tok_rows ? d->tok_off : NULL;
        g->tok_row = d->tok_rows ? d->tok_row : NULL;
    }
out:
    for (int r = 0; r < parts; r++) {
        if (wf && wf[r]) sp_sfile_close(wf[r]);
        if (gf && gf[r]) sp_sfile_close(gf[r]);
    }
    free(wf);
    free(gf);
    if (rc) sp_sage_data_free(d);
    return rc;
}
