/* pairs: engagement pairs mined per user on the user's owner rank, merged
 * locally (sort + count), shuffled to owner(q) and merged again there; walk
 * pairs cut from each source's top-k neighbour list. See pairs.h. */
#include "pairs.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "sort.h"
#include "sp_base.h"

static uint32_t add_sat_u32(uint32_t a, uint32_t b) { return a > UINT32_MAX - b ? UINT32_MAX : a + b; }

/* Sorts v[0..*n) by (q, p) and merges equal keys into one record whose count
 * is the (saturated) sum. On ENOMEM v and *n are unchanged. */
static int sort_merge(sp_pair_rec *v, size_t *n) {
    int rc = sp_radix_sort(v, *n, sizeof *v, (size_t[]){offsetof(sp_pair_rec, q), offsetof(sp_pair_rec, p)}, 2);
    if (rc) return sp_err(rc, "pairs: no memory to sort %zu pairs", *n);
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        if (k && v[i].q == v[k - 1].q && v[i].p == v[k - 1].p)
            v[k - 1].count = add_sat_u32(v[k - 1].count, v[i].count);
        else
            v[k++] = v[i];
    }
    *n = k;
    return SP_OK;
}

static int is_negative(uint8_t action, uint32_t mask) { return action < 32 && ((mask >> action) & 1u); }

/* One pass over the events: counts into *st and, when v != NULL, writes the
 * kept pairs to v (room for st->kept of a previous counting pass). */
static int mine(const sp_event_rec *ev, uint64_t nev, int64_t max_gap_ms, uint32_t mask, sp_pair_stats *st,
                sp_pair_rec *v) {
    memset(st, 0, sizeof *st);
    const sp_event_rec *prev = NULL; /* the user's last positive event */
    for (uint64_t i = 0; i < nev; i++) {
        const sp_event_rec *e = &ev[i];
        if (i && e->user == ev[i - 1].user && e->ts < ev[i - 1].ts)
            return sp_err(SP_EINPUT, "pairs: events not sorted by (user, ts): event %" PRIu64 " of user %" PRIu64
                                     " has ts %" PRId64 " after %" PRId64,
                          i, e->user, e->ts, ev[i - 1].ts);
        if (prev && prev->user != e->user) prev = NULL;
        if (is_negative(e->action, mask)) {
            st->negative++;
            continue; /* skipped: does not break the chain */
        }
        if (prev) {
            st->candidates++;
            /* ts is non-decreasing within the user, so the unsigned difference is exact. */
            uint64_t gap = (uint64_t)e->ts - (uint64_t)prev->ts;
            if (prev->pin == e->pin)
                st->same_pin++;
            else if (gap > (uint64_t)max_gap_ms)
                st->too_far++;
            else {
                if (v) v[st->kept] = (sp_pair_rec){.q = prev->pin, .p = e->pin, .count = 1, .kind = SP_PAIR_ENGAGE};
                st->kept++;
            }
        }
        prev = e;
    }
    return SP_OK;
}

typedef struct {
    sp_pair_rec *v;
    size_t n, cap;
    int rank, size;
} collect;

static int sink_pair(void *c, int src, const void *rec, size_t len) {
    collect *x = c;
    if (len != sizeof(sp_pair_rec)) return sp_err(SP_EINTERNAL, "pairs: record of %zu bytes from rank %d", len, src);
    if (sp_grow((void **)&x->v, &x->cap, x->n + 1, sizeof *x->v))
        return sp_err(SP_ENOMEM, "pairs: no memory for %zu received pairs", x->n + 1);
    memcpy(&x->v[x->n], rec, sizeof(sp_pair_rec));
    if (sp_owner(SP_PIN, x->v[x->n].q, x->size) != x->rank)
        return sp_err(SP_EINTERNAL, "pairs: rank %d sent pair of q=%" PRIu64 " to rank %d, not its owner", src,
                      x->v[x->n].q, x->rank);
    x->n++;
    return SP_OK;
}

int sp_pairs_engagement(const sp_event_rec *ev, uint64_t nev, int64_t max_gap_ms, uint32_t negative_mask,
                        size_t buffer_bytes, sp_pair_rec **out, uint64_t *nout, sp_pair_stats *stats) {
    sp_pair_stats st = {0};
    sp_pair_rec *loc = NULL;
    size_t nloc = 0;
    collect got = {.rank = sp_dist_rank(), .size = sp_dist_size()};
    sp_shuffle *s = NULL;
    int rc = SP_OK;
    if (out) *out = NULL;
    if (nout) *nout = 0;
    /* Local failures are not returned early: this rank must still take part
     * in the agreement below, or the others would wait for it. */
    if (!out || !nout || (nev && !ev)) rc = sp_err(SP_EINTERNAL, "pairs: NULL argument");
    else if (max_gap_ms < 0) rc = sp_err(SP_ECONFIG, "pairs: max_gap_ms %" PRId64 " < 0", max_gap_ms);
    if (!rc) rc = mine(ev, nev, max_gap_ms, negative_mask, &st, NULL); /* count, validate */
    if (!rc && st.kept && !(loc = malloc(sizeof *loc * st.kept)))
        rc = sp_err(SP_ENOMEM, "pairs: no memory for %" PRIu64 " mined pairs", st.kept);
    if (!rc && st.kept) {
        sp_pair_stats again;
        rc = mine(ev, nev, max_gap_ms, negative_mask, &again, loc);
        nloc = (size_t)st.kept;
    }
    /* Pre-aggregate: a popular (q, p) crosses the network once per rank. */
    if (!rc) rc = sort_merge(loc, &nloc);
    if (!rc) rc = sp_shuffle_new(&s, buffer_bytes, sink_pair, &got);
    rc = sp_dist_agree(rc);
    size_t i = 0;
    int all_done = 0;
    while (!rc && !all_done) {
        int lrc = SP_OK;
        for (; i < nloc && !lrc && !sp_shuffle_full(s); i++)
            lrc = sp_shuffle_put(s, sp_owner(SP_PIN, loc[i].q, got.size), &loc[i], sizeof loc[i]);
        rc = sp_shuffle_exchange(s, i == nloc, lrc, &all_done);
    }
    sp_shuffle_free(s);
    free(loc);
    if (!rc) rc = sort_merge(got.v, &got.n);
    rc = sp_dist_agree(rc);
    if (stats) *stats = st;
    if (rc) {
        free(got.v);
        return rc;
    }
    *out = got.v;
    *nout = got.n;
    return SP_OK;
}

int sp_pairs_walk(const uint64_t *src_ext, const uint64_t *nbr_off, const uint64_t *nbr_ext, uint64_t nsrc,
                  uint32_t k, sp_pair_rec **out, uint64_t *nout) {
    if (!out || !nout) return sp_err(SP_EINTERNAL, "pairs: NULL argument");
    *out = NULL;
    *nout = 0;
    if (nsrc && (!src_ext || !nbr_off)) return sp_err(SP_EINTERNAL, "pairs: NULL argument");
    size_t n = 0;
    for (uint64_t i = 0; i < nsrc; i++) {
        if (nbr_off[i + 1] < nbr_off[i])
            return sp_err(SP_EINPUT, "pairs: neighbour offsets decrease at source %" PRIu64 " (%" PRIu64
                                     " > %" PRIu64 ")",
                          i, nbr_off[i], nbr_off[i + 1]);
        uint64_t deg = nbr_off[i + 1] - nbr_off[i];
        n += (size_t)(deg < k ? deg : k);
    }
    if (n && !nbr_ext) return sp_err(SP_EINTERNAL, "pairs: NULL argument");
    if (!n) return SP_OK;
    sp_pair_rec *v = malloc(sizeof *v * n);
    if (!v) return sp_err(SP_ENOMEM, "pairs: no memory for %zu walk pairs", n);
    size_t m = 0;
    for (uint64_t i = 0; i < nsrc; i++) {
        uint64_t deg = nbr_off[i + 1] - nbr_off[i], take = deg < k ? deg : k;
        for (uint64_t j = 0; j < take; j++) {
            uint64_t p = nbr_ext[nbr_off[i] + j];
            if (p != src_ext[i]) v[m++] = (sp_pair_rec){.q = src_ext[i], .p = p, .count = 1, .kind = SP_PAIR_WALK};
        }
    }
    int rc = sort_merge(v, &m);
    if (rc || !m) {
        free(v);
        return rc;
    }
    *out = v;
    *nout = m;
    return SP_OK;
}
