/* test_pairs_mpi (run at 1, 2, 4 ranks): engagement pairs mined on the
 * users' owner ranks and merged at owner(q) equal a brute-force pass over the
 * whole event list on one process (same (q, p, count) set, same summed stats,
 * each pair on its owner, sorted and unique per rank), for a small pin set
 * (many repeats) and a large one (many shuffle rounds); a bad input on one
 * rank fails every rank without a hang; walk pairs on a hand-made list. */
#include <stdlib.h>

#include "check.h"
#include "dist.h"
#include "pairs.h"
#include "sort.h"
#include "sp_base.h"

#define HIDE 3u
#define MAX_GAP 60000 /* ms */

/* ---- the synthetic global event list, the same on every rank ---- */

/* Events of nusers users over npins pins; per user about 2*avg/2 events in
 * random ts order (the caller sorts), gaps mostly within MAX_GAP, some equal
 * ts, some far beyond; actions 0..4 (3 = hide). */
static sp_event_rec *gen_events(uint64_t seed, uint64_t nusers, uint64_t npins, uint64_t avg, uint64_t *n) {
    size_t cap = 0, m = 0;
    sp_event_rec *v = NULL;
    for (uint64_t u = 0; u < nusers; u++) {
        sp_rng r;
        sp_rng_init(&r, seed, SP_RNG_GEN, u);
        uint64_t user = sp_mix64(u + 1) >> 20, cnt = sp_rng_below(&r, 2 * avg + 1);
        int64_t ts = 1700000000000LL + (int64_t)sp_rng_below(&r, SP_DAY_MS);
        uint64_t last_pin = 1000 + sp_rng_below(&r, npins);
        for (uint64_t j = 0; j < cnt; j++) {
            uint64_t g = sp_rng_below(&r, 10);
            ts += g == 0 ? 0 : g == 1 ? MAX_GAP : g == 2 ? MAX_GAP + 1 + (int64_t)sp_rng_below(&r, 10 * MAX_GAP)
                                                         : (int64_t)sp_rng_below(&r, MAX_GAP / 2);
            /* repeat the last pin sometimes, so same-pin candidates occur */
            uint64_t pin = sp_rng_below(&r, 5) == 0 ? last_pin : 1000 + sp_rng_below(&r, npins);
            last_pin = pin;
            if (sp_grow((void **)&v, &cap, m + 1, sizeof *v)) abort();
            v[m++] = (sp_event_rec){.user = user, .pin = pin, .ts = ts, .action = (uint8_t)sp_rng_below(&r, 5)};
        }
    }
    /* scramble the order, so the sort has work to do */
    sp_rng r;
    sp_rng_init(&r, seed, SP_RNG_GEN, UINT64_MAX);
    for (size_t i = m; i > 1; i--) {
        size_t j = (size_t)sp_rng_below(&r, i);
        sp_event_rec t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
    *n = m;
    return v;
}

static int cmp_event(const void *a, const void *b) {
    const sp_event_rec *x = a, *y = b;
    if (x->user != y->user) return x->user < y->user ? -1 : 1;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    if (x->pin != y->pin) return x->pin < y->pin ? -1 : 1;
    return (x->action > y->action) - (x->action < y->action);
}
static int cmp_pair(const void *a, const void *b) {
    const sp_pair_rec *x = a, *y = b;
    if (x->q != y->q) return x->q < y->q ? -1 : 1;
    return (x->p > y->p) - (x->p < y->p);
}

/* The reference: one process, the whole list, qsort, the definition in pairs.h
 * written out again. Returns unique pairs sorted by (q, p) with counts. */
static sp_pair_rec *brute(sp_event_rec *all, uint64_t n, uint32_t mask, uint64_t *npairs, sp_pair_stats *st) {
    qsort(all, n, sizeof *all, cmp_event);
    memset(st, 0, sizeof *st);
    sp_pair_rec *v = malloc(sizeof *v * (n ? n : 1));
    size_t m = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (all[i].action < 32 && (mask >> all[i].action & 1)) {
            st->negative++;
            continue;
        }
        /* previous positive event of the same user, if any */
        int64_t j = (int64_t)i - 1;
        while (j >= 0 && all[j].user == all[i].user && all[j].action < 32 && (mask >> all[j].action & 1)) j--;
        if (j < 0 || all[j].user != all[i].user) continue;
        st->candidates++;
        if (all[j].pin == all[i].pin) st->same_pin++;
        else if (all[i].ts - all[j].ts > MAX_GAP) st->too_far++;
        else {
            st->kept++;
            v[m++] = (sp_pair_rec){all[j].pin, all[i].pin, 1, SP_PAIR_ENGAGE};
        }
    }
    qsort(v, m, sizeof *v, cmp_pair);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        if (k && !cmp_pair(&v[i], &v[k - 1])) v[k - 1].count++;
        else v[k++] = v[i];
    }
    *npairs = k;
    return v;
}

/* Runs one configuration and checks it against the brute force on rank 0. */
static void check_engagement(const char *name, uint64_t seed, uint64_t nusers, uint64_t npins, uint64_t avg,
                             size_t buffer_bytes) {
    int rank = sp_dist_rank(), size = sp_dist_size();
    uint32_t mask = 1u << HIDE;
    uint64_t nall, nmine = 0;
    sp_event_rec *all = gen_events(seed, nusers, npins, avg, &nall);
    sp_event_rec *mine = malloc(sizeof *mine * (nall ? nall : 1));
    for (uint64_t i = 0; i < nall; i++)
        if (sp_owner(SP_USER, all[i].user, size) == rank) mine[nmine++] = all[i];
    /* sort by (user, ts, pin, action): stable LSD, least significant first
     * (action is the low byte of the u64 at 24, surface and pad are 0 here) */
    CHECK_RC(sp_radix_sort(mine, nmine, sizeof *mine, (size_t[]){24}, 1), SP_OK);
    CHECK_RC(sp_radix_sort(mine, nmine, sizeof *mine, (size_t[]){0, 16, 8}, 3), SP_OK);

    sp_pair_rec *got = NULL;
    uint64_t ngot = 0;
    sp_pair_stats st;
    CHECK_RC(sp_pairs_engagement(mine, nmine, MAX_GAP, mask, buffer_bytes, &got, &ngot, &st), SP_OK);
    /* local: sorted, unique, owned, right kind */
    uint64_t bad_order = 0, bad_owner = 0, bad_kind = 0;
    for (uint64_t i = 0; i < ngot; i++) {
        if (i && cmp_pair(&got[i - 1], &got[i]) >= 0) bad_order++;
        if (sp_owner(SP_PIN, got[i].q, size) != rank) bad_owner++;
        if (got[i].kind != SP_PAIR_ENGAGE || got[i].q == got[i].p || !got[i].count) bad_kind++;
    }
    CHECK_EQ_U64(bad_order, 0);
    CHECK_EQ_U64(bad_owner, 0);
    CHECK_EQ_U64(bad_kind, 0);
    CHECK_RC(sp_dist_sum_u64(&st.candidates, (int)(sizeof st / 8)), SP_OK);

    char *cat = NULL;
    uint64_t *lens = calloc((size_t)size, sizeof *lens);
    CHECK_RC(sp_dist_gather_bytes(got, sizeof *got * ngot, &cat, lens), SP_OK);
    if (rank == 0) {
        uint64_t nref, ntot = 0;
        sp_pair_stats ref;
        sp_pair_rec *want = brute(all, nall, mask, &nref, &ref);
        /* every pair sits on the rank that owns q */
        sp_pair_rec *g = (sp_pair_rec *)cat;
        uint64_t misplaced = 0;
        for (int r = 0; r < size; r++) {
            uint64_t cnt = lens[r] / sizeof *g;
            CHECK_EQ_U64(lens[r] % sizeof *g, 0);
            for (uint64_t i = 0; i < cnt; i++) misplaced += sp_owner(SP_PIN, g[ntot + i].q, size) != r;
            ntot += cnt;
        }
        CHECK_EQ_U64(misplaced, 0);
        qsort(g, ntot, sizeof *g, cmp_pair);
        CHECK_EQ_U64(ntot, nref);
        uint64_t diff = 0;
        for (uint64_t i = 0; i < ntot && i < nref; i++) {
            if (g[i].q != want[i].q || g[i].p != want[i].p || g[i].count != want[i].count) {
                if (!diff)
                    fprintf(stderr, "%s: first difference at %" PRIu64 ": got (%" PRIu64 ", %" PRIu64 ") x%u, want (%" PRIu64
                                    ", %" PRIu64 ") x%u\n",
                            name, i, g[i].q, g[i].p, g[i].count, want[i].q, want[i].p, want[i].count);
                diff++;
            }
        }
        CHECK_MSG(diff == 0, "%s: %" PRIu64 " of %" PRIu64 " pairs differ", name, diff, nref);
        CHECK_EQ_U64(st.candidates, ref.candidates);
        CHECK_EQ_U64(st.kept, ref.kept);
        CHECK_EQ_U64(st.too_far, ref.too_far);
        CHECK_EQ_U64(st.same_pin, ref.same_pin);
        CHECK_EQ_U64(st.negative, ref.negative);
        CHECK_EQ_U64(st.candidates, st.kept + st.too_far + st.same_pin);
        /* the data exercises every branch */
        CHECK_MSG(ref.too_far && ref.same_pin && ref.negative && ref.kept > nref, "%s: kept %" PRIu64
                  " unique %" PRIu64 " too_far %" PRIu64 " same_pin %" PRIu64 " negative %" PRIu64,
                  name, ref.kept, nref, ref.too_far, ref.same_pin, ref.negative);
        fprintf(stderr, "%s: %" PRIu64 " events, %" PRIu64 " mined, %" PRIu64 " unique pairs\n", name, nall,
                ref.kept, nref);
        free(want);
    }
    free(cat);
    free(lens);
    free(got);
    free(mine);
    free(all);
}

/* A hand-made chain: hide does not break it, equal ts keep (pin, action)
 * order, the gap bound is inclusive, a new user starts a new chain. All on
 * the owner of user 42 (user 43 is along for the ride: ownership is the
 * caller's business); the other ranks pass no events. */
static void check_chain(void) {
    int rank = sp_dist_rank(), size = sp_dist_size();
    const uint64_t user = 42;
    sp_event_rec ev[] = {
        {user, 1, 1000, 0, 0, {0}},
        {user, 9, 1500, HIDE, 0, {0}},            /* skipped */
        {user, 2, 2000, 1, 0, {0}},               /* (1, 2) */
        {user, 2, 2000 + MAX_GAP, 0, 0, {0}},     /* same pin */
        {user, 3, 2000 + 2 * MAX_GAP, 0, 0, {0}}, /* (2, 3): gap == MAX_GAP */
        {user, 4, 2001 + 3 * MAX_GAP, 2, 0, {0}}, /* too far */
        {user, 5, 2001 + 3 * MAX_GAP, 0, 0, {0}}, /* equal ts: (4, 5) */
        {user + 1, 6, 2001 + 3 * MAX_GAP, 0, 0, {0}}, /* another user: no (5, 6) */
    };
    uint64_t nev = sp_owner(SP_USER, user, size) == rank ? sizeof ev / sizeof *ev : 0;
    sp_pair_rec *got = NULL;
    uint64_t ngot = 0;
    sp_pair_stats st = {0};
    CHECK_RC(sp_pairs_engagement(ev, nev, MAX_GAP, 1u << HIDE, 1, &got, &ngot, &st), SP_OK);
    uint64_t want[3][2] = {{1, 2}, {2, 3}, {4, 5}};
    uint64_t tot[7] = {st.candidates, st.kept, st.too_far, st.same_pin, st.negative, ngot, 0};
    for (uint64_t i = 0; i < ngot; i++)
        for (int w = 0; w < 3; w++) tot[6] += got[i].q == want[w][0] && got[i].p == want[w][1] && got[i].count == 1;
    CHECK_RC(sp_dist_sum_u64(tot, 7), SP_OK);
    CHECK_EQ_U64(tot[0], 5); /* candidates */
    CHECK_EQ_U64(tot[1], 3); /* kept */
    CHECK_EQ_U64(tot[2], 1); /* too_far */
    CHECK_EQ_U64(tot[3], 1); /* same_pin */
    CHECK_EQ_U64(tot[4], 1); /* negative */
    CHECK_EQ_U64(tot[5], 3); /* pairs over all ranks */
    CHECK_EQ_U64(tot[6], 3); /* ... and they are the expected ones */
    free(got);
}

/* Errors: a bad argument everywhere, and unsorted events on the last rank
 * only; every rank returns the same error, no rank hangs. */
static void check_errors(void) {
    int rank = sp_dist_rank(), size = sp_dist_size();
    sp_event_rec ev[] = {{7, 1, 5000, 0, 0, {0}}, {7, 2, 4000, 0, 0, {0}}};
    sp_pair_rec *got = (sp_pair_rec *)1;
    uint64_t ngot = 99;
    CHECK_RC(sp_pairs_engagement(NULL, 0, -1, 0, 1, &got, &ngot, NULL), SP_ECONFIG);
    CHECK(got == NULL && ngot == 0);
    CHECK_RC(sp_pairs_engagement(ev, rank == size - 1 ? 2 : 0, MAX_GAP, 0, 1, &got, &ngot, NULL), SP_EINPUT);
    CHECK(got == NULL && ngot == 0);
    char want[32];
    snprintf(want, sizeof want, "rank %d: pairs:", size - 1);
    CHECK_MSG(!strncmp(sp_errmsg(), want, strlen(want)), "message '%s'", sp_errmsg());
}

/* Walk pairs, local: first k of each list, no self pairs, sorted, unique. */
static void check_walk(void) {
    /* source 30: 5 30 7 9; source 10: 4 (fewer than k); source 20: none;
     * source 30 again: 7 (repeat -> count 2) 8 */
    uint64_t src[] = {30, 10, 20, 30}, off[] = {0, 4, 5, 5, 7}, nbr[] = {5, 30, 7, 9, 4, 7, 8};
    sp_pair_rec *v = NULL;
    uint64_t n = 0;
    CHECK_RC(sp_pairs_walk(src, off, nbr, 4, 3, &v, &n), SP_OK);
    sp_pair_rec want[] = {{10, 4, 1, SP_PAIR_WALK}, {30, 5, 1, SP_PAIR_WALK}, {30, 7, 2, SP_PAIR_WALK},
                          {30, 8, 1, SP_PAIR_WALK}};
    CHECK_EQ_U64(n, 4);
    for (uint64_t i = 0; i < n && i < 4; i++) {
        CHECK_EQ_U64(v[i].q, want[i].q);
        CHECK_EQ_U64(v[i].p, want[i].p);
        CHECK_EQ_U64(v[i].count, want[i].count);
        CHECK_EQ_U64(v[i].kind, SP_PAIR_WALK);
    }
    free(v);
    CHECK_RC(sp_pairs_walk(src, off, nbr, 4, 0, &v, &n), SP_OK);
    CHECK(v == NULL && n == 0);
    CHECK_RC(sp_pairs_walk(NULL, NULL, NULL, 0, 3, &v, &n), SP_OK);
    CHECK(n == 0);
    uint64_t bad[] = {0, 4, 2, 5, 7};
    CHECK_RC(sp_pairs_walk(src, bad, nbr, 4, 3, &v, &n), SP_EINPUT);
    CHECK(v == NULL && n == 0);
}

int main(int argc, char **argv) {
    if (sp_dist_init(&argc, &argv)) return 1;
    sp_dist_set_timeout(60);
    /* 300 users x 40 pins: many repeated pairs; 1-byte buffer clamps to the minimum */
    check_engagement("small", 7, 300, 40, 12, 1);
    /* 20000 users x 100000 pins: mostly unique pairs, several shuffle rounds */
    check_engagement("large", 11, 20000, 100000, 15, 1);
    check_chain();
    check_errors();
    check_walk();
    int failed = CHECK_DONE();
    int rc = sp_dist_agree(failed ? SP_EINTERNAL : SP_OK);
    sp_dist_finalize();
    return rc ? 1 : 0;
}
