/* test_seq_history: the lifelong history store. Merge equals a plain reference
 * (sort, unique, keep the newest) on random data; reruns append nothing and
 * give identical bytes; save/load round-trips extreme values; a filtered load
 * over parts re-partitions 2 -> 3 ranks; corrupt and hand-forged files are
 * SP_EFORMAT naming the file; records stay within 16 bytes in the documented
 * domain (prints bytes/action of typical data). */
#include "check.h"
#include "file_testutil.h"
#include "history.h"
#include "sfile.h"
#include "sp_base.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];
static char *tpath(const char *name) {
    static char buf[8][256];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static int act_eq(const sq_action *a, const sq_action *b) {
    return a->pin == b->pin && a->ts == b->ts && a->action == b->action && a->surface == b->surface;
}
static int act_cmp(const void *x, const void *y) {
    const sq_action *a = x, *b = y;
    if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
    if (a->pin != b->pin) return a->pin < b->pin ? -1 : 1;
    if (a->action != b->action) return a->action < b->action ? -1 : 1;
    return (a->surface > b->surface) - (a->surface < b->surface);
}
/* ingest's order: (user, ts, pin, action) -- surface is not a key */
static int ev_cmp(const void *x, const void *y) {
    const sp_event_rec *a = x, *b = y;
    if (a->user != b->user) return a->user < b->user ? -1 : 1;
    if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
    if (a->pin != b->pin) return a->pin < b->pin ? -1 : 1;
    return (a->action > b->action) - (a->action < b->action);
}
static sp_event_rec ev(uint64_t user, uint64_t pin, int64_t ts, uint8_t action, uint8_t surface) {
    return (sp_event_rec){.user = user, .pin = pin, .ts = ts, .action = action, .surface = surface};
}
static sq_action act(uint64_t pin, int64_t ts, uint8_t action, uint8_t surface) {
    return (sq_action){.pin = pin, .ts = ts, .action = action, .surface = surface};
}

/* Decoded actions of user index i (malloc'd, at least one slot). */
static sq_action *dec(const sq_hist *h, uint64_t i) {
    sq_action *b = malloc(((size_t)h->nact[i] + 1) * sizeof *b);
    CHECK_RC(sq_hist_user(h, i, b, h->nact[i]), SP_OK);
    return b;
}
/* Checks that user `user` of h holds exactly want[0..n) and last_day ld. */
static void check_user(const sq_hist *h, uint64_t user, const sq_action *want, uint64_t n, int64_t ld) {
    uint64_t i = sq_hist_find(h, user);
    CHECK_MSG(i != UINT64_MAX, "user %llu missing", (unsigned long long)user);
    if (i == UINT64_MAX) return;
    CHECK_EQ_U64(h->nact[i], n);
    CHECK_EQ_INT(h->last_day[i], ld);
    if (h->nact[i] != n) return;
    sq_action *got = dec(h, i);
    for (uint64_t k = 0; k < n; k++)
        CHECK_MSG(act_eq(&got[k], &want[k]), "user %llu action %llu: got (pin %llu ts %lld a %u s %u), want (pin %llu "
                  "ts %lld a %u s %u)", (unsigned long long)user, (unsigned long long)k,
                  (unsigned long long)got[k].pin, (long long)got[k].ts, got[k].action, got[k].surface,
                  (unsigned long long)want[k].pin, (long long)want[k].ts, want[k].action, want[k].surface);
    free(got);
}
/* Two stores hold the same users, days, counts and bytes. */
static void check_same(const sq_hist *a, const sq_hist *b) {
    CHECK_EQ_U64(a->n, b->n);
    CHECK_EQ_U64(a->nactions, b->nactions);
    if (a->n != b->n) return;
    for (uint64_t i = 0; i < a->n; i++) {
        CHECK_EQ_U64(a->user[i], b->user[i]);
        CHECK_EQ_INT(a->last_day[i], b->last_day[i]);
        CHECK_EQ_U64(a->nact[i], b->nact[i]);
        CHECK_EQ_U64(a->boff[i + 1], b->boff[i + 1]);
    }
    if (a->n && a->boff[a->n] == b->boff[b->n])
        CHECK(!memcmp(a->blob, b->blob, (size_t)a->boff[a->n]));
}

/* ---- merge ---- */

#define D0 (20000LL * SP_DAY_MS)
#define D1 (20001LL * SP_DAY_MS)

static void build_prev(sq_hist *p) {
    sq_action u10[] = {act(1, 100, 0, 0), act(2, 200, 1, 0)};
    sq_action u20[] = {act(5, 100, 0, 0)};
    sq_action u30[] = {act(7, 50, 2, 1)};
    CHECK_RC(sq_hist_append(p, 10, D0, u10, 2), SP_OK);
    CHECK_RC(sq_hist_append(p, 20, D0, u20, 1), SP_OK);
    CHECK_RC(sq_hist_append(p, 30, D0, u30, 1), SP_OK);
}
/* The day: user 5 new; user 20 repeats its old action, has one event twice
 * and one that differs only in surface; user 40 new. Ingest order. */
static const sp_event_rec *day1(uint64_t *n) {
    static sp_event_rec e[6];
    e[0] = ev(5, 9, 300, 0, 0);
    e[1] = ev(20, 5, 100, 0, 0);
    e[2] = ev(20, 6, 300, 0, 1); /* surface 1 before 0: surface is not an ingest key */
    e[3] = ev(20, 6, 300, 0, 0);
    e[4] = ev(20, 6, 300, 0, 0);
    e[5] = ev(40, 1, 400, 3, 2);
    *n = 6;
    return e;
}

static void test_merge_small(void) {
    sq_hist prev = {0}, out = {0};
    build_prev(&prev);
    uint64_t nev;
    const sp_event_rec *e = day1(&nev);
    sq_hist_stats st;
    CHECK_RC(sq_hist_merge(&prev, e, nev, 10, D1, &out, &st), SP_OK);
    /* appended: u5 one, u20 two (surfaces 0 and 1 of pin 6), u40 one */
    CHECK_EQ_U64(st.appended, 4);
    CHECK_EQ_U64(st.duplicates, 2); /* pin 5 again, pin 6 surface 0 twice */
    CHECK_EQ_U64(st.trimmed, 0);
    CHECK_EQ_U64(st.users_new, 2);
    CHECK_EQ_U64(st.users_touched, 3);
    CHECK_EQ_U64(out.n, 5);
    CHECK_EQ_U64(out.nactions, prev.nactions + st.appended - st.trimmed);
    for (uint64_t i = 1; i < out.n; i++) CHECK(out.user[i - 1] < out.user[i]);
    sq_action w5[] = {act(9, 300, 0, 0)};
    sq_action w10[] = {act(1, 100, 0, 0), act(2, 200, 1, 0)};
    sq_action w20[] = {act(5, 100, 0, 0), act(6, 300, 0, 0), act(6, 300, 0, 1)};
    sq_action w30[] = {act(7, 50, 2, 1)};
    sq_action w40[] = {act(1, 400, 3, 2)};
    check_user(&out, 5, w5, 1, D1);
    check_user(&out, 10, w10, 2, D0);
    check_user(&out, 20, w20, 3, D1);
    check_user(&out, 30, w30, 1, D0);
    check_user(&out, 40, w40, 1, D1);
    /* untouched users keep their bytes */
    for (uint64_t u = 10; u <= 30; u += 20) {
        uint64_t i = sq_hist_find(&prev, u), j = sq_hist_find(&out, u);
        uint64_t len = prev.boff[i + 1] - prev.boff[i];
        CHECK_EQ_U64(out.boff[j + 1] - out.boff[j], len);
        CHECK(!memcmp(prev.blob + prev.boff[i], out.blob + out.boff[j], (size_t)len));
    }
    sq_hist_free(&out);

    /* max 2: user 20 keeps its two newest; user 10 (2) stays */
    CHECK_RC(sq_hist_merge(&prev, e, nev, 2, D1, &out, &st), SP_OK);
    CHECK_EQ_U64(st.trimmed, 1);
    check_user(&out, 20, w20 + 1, 2, D1);
    check_user(&out, 10, w10, 2, D0);
    CHECK_EQ_U64(out.nactions, prev.nactions + st.appended - st.trimmed);
    sq_hist_free(&out);
    /* max 1: the untouched user 10 is cut too (config lowered), to its newest */
    CHECK_RC(sq_hist_merge(&prev, e, nev, 1, D1, &out, &st), SP_OK);
    CHECK_EQ_U64(st.trimmed, 3);
    check_user(&out, 10, w10 + 1, 1, D0);
    check_user(&out, 20, w20 + 2, 1, D1);
    CHECK_EQ_U64(out.nactions, prev.nactions + st.appended - st.trimmed);
    sq_hist_free(&out);

    /* no previous date; events out of user order; out not empty */
    CHECK_RC(sq_hist_merge(NULL, e, nev, 0, D1, &out, &st), SP_OK);
    CHECK_EQ_U64(out.n, 3);
    CHECK_EQ_U64(st.users_new, 3);
    CHECK_EQ_U64(st.appended, 5); /* user 20's pin 5 is new without the previous date */
    CHECK_EQ_U64(st.duplicates, 1);
    CHECK_RC(sq_hist_merge(NULL, e, nev, 0, D1, &out, &st), SP_EUSAGE);
    sq_hist_free(&out);
    sp_event_rec bad[2] = {ev(7, 1, 1, 0, 0), ev(6, 1, 1, 0, 0)};
    CHECK_RC(sq_hist_merge(&prev, bad, 2, 0, D1, &out, &st), SP_EINPUT);
    CHECK_EQ_U64(out.n, 0);
    CHECK(out.user == NULL && out.blob == NULL);
    /* append rejects out-of-order users and unsorted or repeated actions */
    sq_action two[] = {act(1, 5, 0, 0), act(1, 5, 0, 0)};
    CHECK_RC(sq_hist_append(&prev, 31, 0, two, 2), SP_EUSAGE);
    CHECK_RC(sq_hist_append(&prev, 30, 0, two, 1), SP_EUSAGE);
    CHECK_EQ_U64(prev.n, 3);
    sq_action buf[1];
    CHECK_RC(sq_hist_user(&prev, 0, buf, 1), SP_EUSAGE); /* user 10 has 2 */
    CHECK_RC(sq_hist_user(&prev, 3, buf, 1), SP_EUSAGE);
    CHECK_EQ_U64(sq_hist_find(&prev, 11), UINT64_MAX);
    sq_hist_free(&prev);
}

/* Random previous stores and days against the reference. */
static void test_merge_random(void) {
    sp_rng r;
    sp_rng_init(&r, 3, 77, 0);
    for (int trial = 0; trial < 20; trial++) {
        const uint32_t maxu = trial % 4 == 0 ? 0 : 1 + (uint32_t)sp_rng_below(&r, 8);
        const uint64_t nu = 200;
        /* prev: users 0..nu step 2 for half of them, up to 12 actions (some over maxu) */
        sq_hist prev = {0};
        sq_action **pa = calloc(nu, sizeof *pa);
        uint64_t *pn = calloc(nu, sizeof *pn);
        for (uint64_t u = 0; u < nu; u++) {
            if (sp_rng_below(&r, 2)) continue;
            uint64_t n = sp_rng_below(&r, 13);
            pa[u] = malloc((n + 1) * sizeof **pa);
            for (uint64_t k = 0; k < n; k++)
                pa[u][k] = act(sp_rng_below(&r, 6), (int64_t)sp_rng_below(&r, 10), (uint8_t)sp_rng_below(&r, 2),
                               (uint8_t)sp_rng_below(&r, 2));
            qsort(pa[u], n, sizeof **pa, act_cmp);
            uint64_t m = 0;
            for (uint64_t k = 0; k < n; k++)
                if (!m || !act_eq(&pa[u][m - 1], &pa[u][k])) pa[u][m++] = pa[u][k];
            pn[u] = m;
            CHECK_RC(sq_hist_append(&prev, u, D0 - (int64_t)u, pa[u], m), SP_OK);
        }
        /* events: random users, many copies of previous actions and of each other */
        uint64_t nev = 400;
        sp_event_rec *e = malloc(nev * sizeof *e);
        for (uint64_t k = 0; k < nev; k++) {
            uint64_t u = sp_rng_below(&r, nu);
            if (pn[u] && sp_rng_below(&r, 3) == 0) {
                sq_action a = pa[u][sp_rng_below(&r, pn[u])];
                e[k] = ev(u, a.pin, a.ts, a.action, a.surface);
            } else if (k && sp_rng_below(&r, 5) == 0) {
                e[k] = e[k - 1];
            } else {
                e[k] = ev(u, sp_rng_below(&r, 6), 5 + (int64_t)sp_rng_below(&r, 10), (uint8_t)sp_rng_below(&r, 2),
                          (uint8_t)sp_rng_below(&r, 2));
            }
        }
        qsort(e, nev, sizeof *e, ev_cmp);
        sq_hist out = {0};
        sq_hist_stats st;
        CHECK_RC(sq_hist_merge(&prev, e, nev, maxu, D1, &out, &st), SP_OK);
        /* reference */
        sq_hist_stats ref = {0};
        uint64_t nusers = 0, nact = 0;
        sq_action *all = malloc((13 + nev) * sizeof *all);
        for (uint64_t u = 0; u < nu; u++) {
            uint64_t ne = 0, m = pn[u];
            if (pa[u]) memcpy(all, pa[u], m * sizeof *all);
            for (uint64_t k = 0; k < nev; k++)
                if (e[k].user == u) all[m++] = act(e[k].pin, e[k].ts, e[k].action, e[k].surface), ne++;
            if (!pa[u] && !ne) {
                CHECK_EQ_U64(sq_hist_find(&out, u), UINT64_MAX);
                continue;
            }
            qsort(all, m, sizeof *all, act_cmp);
            uint64_t q = 0;
            for (uint64_t k = 0; k < m; k++)
                if (!q || !act_eq(&all[q - 1], &all[k])) all[q++] = all[k];
            uint64_t keep = maxu && q > maxu ? maxu : q;
            if (ne) {
                ref.users_touched++;
                ref.users_new += !pa[u];
                ref.appended += q - pn[u];
                ref.duplicates += ne - (q - pn[u]);
            }
            ref.trimmed += q - keep;
            check_user(&out, u, all + (q - keep), keep, ne ? D1 : D0 - (int64_t)u);
            nusers++, nact += keep;
        }
        CHECK_EQ_U64(out.n, nusers);
        CHECK_EQ_U64(out.nactions, nact);
        CHECK_EQ_U64(st.appended, ref.appended);
        CHECK_EQ_U64(st.duplicates, ref.duplicates);
        CHECK_EQ_U64(st.trimmed, ref.trimmed);
        CHECK_EQ_U64(st.users_new, ref.users_new);
        CHECK_EQ_U64(st.users_touched, ref.users_touched);
        CHECK_EQ_U64(out.nactions, prev.nactions + st.appended - st.trimmed);
        free(all);
        free(e);
        for (uint64_t u = 0; u < nu; u++) free(pa[u]);
        free(pa);
        free(pn);
        sq_hist_free(&prev);
        sq_hist_free(&out);
    }
}

/* ---- idempotence ---- */

static void test_idempotent(void) {
    sq_hist prev = {0}, out = {0}, again = {0}, loaded = {0};
    build_prev(&prev);
    uint64_t nev, ba, bb, bc, xa, xb, xc;
    const sp_event_rec *e = day1(&nev);
    sq_hist_stats st;
    CHECK_RC(sq_hist_merge(&prev, e, nev, 10, D1, &out, &st), SP_OK);
    CHECK_RC(sq_hist_save(&out, tpath("a.hist"), &ba, &xa), SP_OK);
    CHECK_RC(sq_hist_load(&loaded, tpath("a.hist"), NULL, NULL), SP_OK);
    CHECK_RC(sq_hist_save(&loaded, tpath("b.hist"), &bb, &xb), SP_OK);
    check_same(&out, &loaded);
    CHECK_EQ_U64(ba, bb);
    CHECK_EQ_U64(xa, xb);
    /* the same day again onto its own output: nothing appended */
    CHECK_RC(sq_hist_merge(&loaded, e, nev, 10, D1, &again, &st), SP_OK);
    CHECK_EQ_U64(st.appended, 0);
    CHECK_EQ_U64(st.duplicates, nev);
    CHECK_EQ_U64(st.trimmed, 0);
    CHECK_EQ_U64(st.users_new, 0);
    CHECK_RC(sq_hist_save(&again, tpath("c.hist"), &bc, &xc), SP_OK);
    CHECK_EQ_U64(xa, xc);
    size_t na, nb, nc;
    unsigned char *fa = test_read(tpath("a.hist"), &na), *fb = test_read(tpath("b.hist"), &nb), *fc = test_read(tpath("c.hist"), &nc);
    CHECK(na > 0 && na == nb && na == nc);
    CHECK(fa && fb && fc && na == nb && !memcmp(fa, fb, na));
    CHECK(fa && fc && na == nc && !memcmp(fa, fc, na));
    CHECK_MSG(ba <= na && na - ba < 1024, "payload %llu bytes, file %zu", (unsigned long long)ba, na);
    free(fa), free(fb), free(fc);
    sq_hist_free(&prev), sq_hist_free(&out), sq_hist_free(&again), sq_hist_free(&loaded);
}

/* ---- round trips ---- */

static void roundtrip(const char *name, const sq_hist *h) {
    sq_hist g = {0};
    CHECK_RC(sq_hist_save(h, tpath(name), NULL, NULL), SP_OK);
    CHECK_RC(sq_hist_load(&g, tpath(name), NULL, NULL), SP_OK);
    check_same(h, &g);
    sq_hist_free(&g);
}

static void test_roundtrip(void) {
    sp_rng r;
    sp_rng_init(&r, 5, 77, 1);
    sq_hist big = {0}, small = {0}, edge = {0};
    sq_action *a = malloc(300 * sizeof *a);
    for (uint64_t u = 0; u < 100; u++) {
        /* random 64-bit pins, gaps up to 2^40 ms and zero, any action/surface byte */
        uint64_t n = sp_rng_below(&r, 300);
        int64_t t = (int64_t)sp_rng_below(&r, 1ULL << 44) - (1LL << 43);
        for (uint64_t k = 0; k < n; k++) {
            t += sp_rng_below(&r, 4) == 0 ? 0 : (int64_t)sp_rng_below(&r, 1ULL << (1 + sp_rng_below(&r, 40)));
            a[k] = act(sp_rng_u64(&r), t, (uint8_t)sp_rng_below(&r, 256), (uint8_t)sp_rng_below(&r, 256));
            if (k && sp_rng_below(&r, 4) == 0) a[k].pin = a[k - 1].pin; /* same pin again */
        }
        qsort(a, n, sizeof *a, act_cmp);
        uint64_t m = 0;
        for (uint64_t k = 0; k < n; k++)
            if (!m || !act_eq(&a[m - 1], &a[k])) a[m++] = a[k];
        CHECK_RC(sq_hist_append(&big, sp_rng_u64(&r) >> 8 | u << 56, D0 + (int64_t)u, a, m), SP_OK);
        /* small ids, timestamps one minute apart */
        for (uint64_t k = 0; k < 50; k++) a[k] = act(sp_rng_below(&r, 1000), 1700000000000LL + 60000 * (int64_t)k, 0, 0);
        CHECK_RC(sq_hist_append(&small, u, D0, a, 50), SP_OK);
    }
    for (uint64_t i = 0; i < big.n; i++) { /* decoded equals what went in (checked through a second store) */
        sq_action *d = dec(&big, i);
        sq_hist one = {0};
        CHECK_RC(sq_hist_append(&one, big.user[i], big.last_day[i], d, big.nact[i]), SP_OK);
        CHECK(one.boff[1] == big.boff[i + 1] - big.boff[i]);
        if (one.boff[1] == big.boff[i + 1] - big.boff[i] && one.boff[1])
            CHECK(!memcmp(one.blob, big.blob + big.boff[i], (size_t)one.boff[1]));
        sq_hist_free(&one);
        free(d);
    }
    roundtrip("big.hist", &big);
    roundtrip("small.hist", &small);
    /* extremes: the whole ts range, pins 0 and 2^64-1 and going down, the
     * escaped action/surface bytes, equal timestamps, a user without actions */
    sq_action x[] = {act(0, INT64_MIN, 0, 0), act(UINT64_MAX, INT64_MIN, 0, 0), act(3, -1, 15, 0),
                     act(2, 0, 255, 255), act(2, 0, 255, 255 - 1), act(1, 0, 14, 15), act(UINT64_MAX - 1, 1, 0, 16),
                     act(0, INT64_MAX - 1, 7, 7), act(0, INT64_MAX, 7, 7), act(5, INT64_MAX, 7, 7)};
    qsort(x, sizeof x / sizeof *x, sizeof *x, act_cmp);
    CHECK_RC(sq_hist_append(&edge, 0, INT64_MIN, x, sizeof x / sizeof *x), SP_OK);
    CHECK_RC(sq_hist_append(&edge, 1, 0, NULL, 0), SP_OK);
    CHECK_RC(sq_hist_append(&edge, UINT64_MAX, INT64_MAX, x + 3, 1), SP_OK);
    check_user(&edge, 0, x, sizeof x / sizeof *x, INT64_MIN);
    check_user(&edge, UINT64_MAX, x + 3, 1, INT64_MAX);
    roundtrip("edge.hist", &edge);
    sq_hist empty = {0};
    roundtrip("empty.hist", &empty);
    free(a);
    sq_hist_free(&big), sq_hist_free(&small), sq_hist_free(&edge);
}

/* ---- filtered loads: 2 ranks -> 3 ranks ---- */

static int owned_by(uint64_t user, void *arg) {
    const int *ra = arg; /* {rank, nranks} */
    return sp_owner(SP_USER, user, ra[1]) == ra[0];
}

static void test_repartition(void) {
    sp_rng r;
    sp_rng_init(&r, 9, 77, 2);
    sq_hist full = {0}, part[2] = {{0}, {0}};
    sq_action a[20];
    for (uint64_t u = 1; u <= 400; u++) {
        uint64_t n = 1 + sp_rng_below(&r, 20);
        int64_t t = 1700000000000LL;
        for (uint64_t k = 0; k < n; k++) a[k] = act(sp_rng_u64(&r), t += 1 + (int64_t)sp_rng_below(&r, 100000), 1, 2);
        uint64_t user = u * 7919;
        CHECK_RC(sq_hist_append(&full, user, D0 + (int64_t)(u % 3), a, n), SP_OK);
        CHECK_RC(sq_hist_append(&part[sp_owner(SP_USER, user, 2)], user, D0 + (int64_t)(u % 3), a, n), SP_OK);
    }
    CHECK_RC(sq_hist_save(&part[0], tpath("p0.hist"), NULL, NULL), SP_OK);
    CHECK_RC(sq_hist_save(&part[1], tpath("p1.hist"), NULL, NULL), SP_OK);
    uint64_t users = 0, acts = 0;
    for (int rank = 0; rank < 3; rank++) {
        int ra[2] = {rank, 3};
        sq_hist h = {0};
        CHECK_RC(sq_hist_load(&h, tpath("p0.hist"), owned_by, ra), SP_OK);
        CHECK_RC(sq_hist_load(&h, tpath("p1.hist"), owned_by, ra), SP_OK);
        CHECK(h.unsorted); /* the two parts interleave */
        sq_hist o = {0};
        CHECK_RC(sq_hist_merge(&h, NULL, 0, 0, D1, &o, NULL), SP_EUSAGE);
        CHECK_RC(sq_hist_save(&h, tpath("x.hist"), NULL, NULL), SP_EUSAGE);
        CHECK_RC(sq_hist_sort(&h), SP_OK);
        for (uint64_t i = 0; i < h.n; i++) {
            CHECK_EQ_INT(sp_owner(SP_USER, h.user[i], 3), rank);
            if (i) CHECK(h.user[i - 1] < h.user[i]);
            uint64_t j = sq_hist_find(&full, h.user[i]);
            CHECK(j != UINT64_MAX);
            if (j == UINT64_MAX) continue;
            CHECK_EQ_INT(h.last_day[i], full.last_day[j]);
            CHECK_EQ_U64(h.nact[i], full.nact[j]);
            uint64_t len = full.boff[j + 1] - full.boff[j];
            CHECK(h.boff[i + 1] - h.boff[i] == len && !memcmp(h.blob + h.boff[i], full.blob + full.boff[j], (size_t)len));
        }
        users += h.n, acts += h.nactions;
        sq_hist_free(&h);
    }
    CHECK_EQ_U64(users, full.n);
    CHECK_EQ_U64(acts, full.nactions);
    /* a user in two parts: the same part loaded twice */
    sq_hist h = {0};
    CHECK_RC(sq_hist_load(&h, tpath("p1.hist"), NULL, NULL), SP_OK);
    CHECK_RC(sq_hist_load(&h, tpath("p1.hist"), NULL, NULL), SP_OK);
    CHECK_RC(sq_hist_sort(&h), SP_EFORMAT);
    CHECK_MSG(strstr(sp_errmsg(), "p1.hist") != NULL, "message: %s", sp_errmsg());
    sq_hist_free(&h);
    sq_hist_free(&full), sq_hist_free(&part[0]), sq_hist_free(&part[1]);
}

/* ---- corruption ---- */

static int keep_none(uint64_t user, void *arg) { return (void)user, (void)arg, 0; }

/* Writes a "history" sfile with the given sections (nboff = n + 1 normally). */
static void forge(const char *path, const uint64_t meta[3], const uint64_t *users, const int64_t *last,
                  const uint32_t *nact, uint64_t n, const uint64_t *boff, uint64_t nboff, const uint8_t *blob,
                  uint64_t nb, int with_blob) {
    sp_sfile_w *w = NULL;
    CHECK_RC(sp_sfile_create(&w, path, "history"), SP_OK);
    CHECK_RC(sp_sfile_put(w, "meta", 8, meta, 3), SP_OK);
    CHECK_RC(sp_sfile_put(w, "users", 8, users, n), SP_OK);
    CHECK_RC(sp_sfile_put(w, "last_day", 8, last, n), SP_OK);
    CHECK_RC(sp_sfile_put(w, "nact", 4, nact, n), SP_OK);
    CHECK_RC(sp_sfile_put(w, "boff", 8, boff, nboff), SP_OK);
    if (with_blob) CHECK_RC(sp_sfile_put(w, "blob", 1, blob, nb), SP_OK);
    CHECK_RC(sp_sfile_commit(w, NULL), SP_OK);
}
/* Loading path fails with SP_EFORMAT, names the file and `what`, leaves h alone. */
static void check_bad(const char *path, const char *what) {
    sq_hist h = {0};
    sq_action one = act(1, 1, 0, 0);
    CHECK_RC(sq_hist_append(&h, 0, 0, &one, 1), SP_OK);
    int rc = sq_hist_load(&h, path, NULL, NULL);
    CHECK_MSG(rc == SP_EFORMAT, "%s: rc %d (%s), want SP_EFORMAT", what, rc, sp_errmsg());
    CHECK_MSG(strstr(sp_errmsg(), path) && strstr(sp_errmsg(), what), "want '%s' and the path in: %s", what,
              sp_errmsg());
    CHECK_EQ_U64(h.n, 1);
    CHECK_EQ_U64(h.nactions, 1);
    CHECK_EQ_U64(h.nparts, 0);
    sq_hist_free(&h);
}

static void test_corrupt(void) {
    /* a flipped byte inside the blob of a real file: sfile's checksum */
    sq_hist h = {0};
    sq_action a[64];
    sp_rng r;
    sp_rng_init(&r, 11, 77, 3);
    for (int k = 0; k < 64; k++) a[k] = act(sp_rng_u64(&r), 1000 + 17 * k, 0, 1);
    CHECK_RC(sq_hist_append(&h, 42, D0, a, 64), SP_OK);
    const char *p = tpath("flip.hist");
    CHECK_RC(sq_hist_save(&h, p, NULL, NULL), SP_OK);
    size_t n;
    unsigned char *f = test_read(p, &n);
    unsigned char *at = f ? memmem(f, n, h.blob + 8, 16) : NULL;
    CHECK(at != NULL);
    if (at) {
        at[5] ^= 0x20;
        test_write(p, f, n);
        check_bad(p, "'blob' checksum");
    }
    free(f);
    sq_hist_free(&h);

    /* hand-forged files with valid checksums */
    const uint64_t m1[3] = {SQ_HIST_FORMAT, 1, 1}, m2[3] = {SQ_HIST_FORMAT, 1, 2};
    const uint64_t u1[1] = {7}, u2[2] = {9, 8};
    const int64_t l1[2] = {0, 0};
    const uint32_t n1[1] = {1}, n2[1] = {2}, n11[2] = {1, 1};
    /* valid: tag = ts 1 byte, pin 1 byte; pin 5, zigzag(ts) 2 -> ts 1 */
    const uint8_t ok[3] = {0x09, 0x05, 0x02};
    const uint64_t b3[2] = {0, 3};
    p = tpath("forged.hist");
    forge(p, m1, u1, l1, n1, 1, b3, 2, ok, 3, 1);
    sq_hist g = {0};
    CHECK_RC(sq_hist_load(&g, p, NULL, NULL), SP_OK);
    sq_action want = act(5, 1, 0, 0);
    check_user(&g, 7, &want, 1, 0);
    sq_hist_free(&g);
    /* truncated: the tag announces an 8-byte pin, 2 bytes follow */
    const uint8_t trunc[3] = {0x38, 0x01, 0x02};
    forge(p, m1, u1, l1, n1, 1, b3, 2, trunc, 3, 1);
    check_bad(p, "truncated");
    /* a second action that repeats the first (ts delta 0, same pin, same action) */
    const uint8_t rep[4] = {0x09, 0x05, 0x02, 0x00};
    const uint64_t b4[2] = {0, 4};
    forge(p, m2, u1, l1, n2, 1, b4, 2, rep, 4, 1);
    check_bad(p, "strictly increasing");
    /* timestamp overflow: first ts INT64_MAX (zigzag 2^64 - 2), then +1 */
    const uint8_t ovf[11] = {0x07, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01};
    const uint64_t b11[2] = {0, 11};
    forge(p, m2, u1, l1, n2, 1, b11, 2, ovf, 11, 1);
    check_bad(p, "overflows");
    /* bytes left after the user's actions */
    forge(p, m1, u1, l1, n1, 1, b4, 2, rep, 4, 1);
    check_bad(p, "left after");
    /* a pin delta with no bytes; a bad action/surface byte */
    const uint8_t dz[2] = {0x41, 0x02};
    const uint64_t b2[2] = {0, 2};
    forge(p, m1, u1, l1, n1, 1, b2, 2, dz, 2, 1);
    check_bad(p, "pin delta");
    const uint8_t asb[2] = {0x80, 0x1f};
    forge(p, m1, u1, l1, n1, 1, b2, 2, asb, 2, 1);
    check_bad(p, "action/surface");
    /* structure: users not ascending, offsets past the blob, counts, version, missing section */
    const uint64_t m21[3] = {SQ_HIST_FORMAT, 2, 2}, b33[3] = {0, 3, 6};
    const uint8_t two[6] = {0x09, 0x05, 0x02, 0x09, 0x05, 0x02};
    forge(p, m21, u2, l1, n11, 2, b33, 3, two, 6, 1);
    check_bad(p, "not ascending");
    forge(p, m1, u1, l1, n1, 1, b4, 2, ok, 3, 1);
    check_bad(p, "blob has");
    forge(p, m2, u1, l1, n1, 1, b3, 2, ok, 3, 1);
    check_bad(p, "actions");
    forge(p, m21, u1, l1, n1, 1, b3, 2, ok, 3, 1);
    check_bad(p, "counts disagree");
    const uint64_t mv[3] = {SQ_HIST_FORMAT + 1, 1, 1};
    forge(p, mv, u1, l1, n1, 1, b3, 2, ok, 3, 1);
    check_bad(p, "format");
    forge(p, m1, u1, l1, n1, 1, b3, 2, ok, 3, 0);
    check_bad(p, "blob");
    /* the filter never reads a corrupt user it drops */
    forge(p, m1, u1, l1, n1, 1, b3, 2, trunc, 3, 1);
    CHECK_RC(sq_hist_load(&g, p, keep_none, NULL), SP_OK);
    CHECK_EQ_U64(g.n, 0);
    sq_hist_free(&g);
}

/* ---- size ---- */

static void test_bytes_per_action(void) {
    sp_rng r;
    sp_rng_init(&r, 13, 77, 4);
    /* worst case of the documented domain: random 64-bit pins, random gaps,
     * action < 15, surface < 16, |ts| < 2^47 */
    sq_hist w = {0};
    sq_action a[200];
    for (uint64_t u = 0; u < 300; u++) {
        uint64_t n = 1 + sp_rng_below(&r, 200);
        int64_t t = (int64_t)sp_rng_below(&r, 1ULL << 46) - (1LL << 46);
        for (uint64_t k = 0; k < n; k++) {
            t += (int64_t)sp_rng_below(&r, 1ULL << (1 + sp_rng_below(&r, 40)));
            a[k] = act(sp_rng_u64(&r) | 1ULL << 63, t, (uint8_t)sp_rng_below(&r, 15), (uint8_t)sp_rng_below(&r, 16));
        }
        qsort(a, n, sizeof *a, act_cmp);
        CHECK_RC(sq_hist_append(&w, u, 0, a, n), SP_OK);
    }
    /* the domain's corners: ts -2^47 and 2^47 - 1 (first record), a gap just below 2^48 */
    /* pins whose raw value and zigzag delta both need 8 bytes (2^62 from 0, 2^63 + 2^62 from 2^62) */
    sq_action c[2] = {act(1ULL << 62, -(1LL << 47), 14, 15),
                      act(3ULL << 62, -(1LL << 47) + (1LL << 48) - 1, 13, 14)};
    CHECK_RC(sq_hist_append(&w, 1000, 0, c, 2), SP_OK);
    c[0].ts = (1LL << 47) - 1;
    CHECK_RC(sq_hist_append(&w, 1001, 0, c, 1), SP_OK);
    uint64_t worst = 0;
    for (uint64_t i = 0; i < w.n; i++) {
        uint64_t len = w.boff[i + 1] - w.boff[i];
        CHECK_MSG(len <= 16 * (uint64_t)w.nact[i], "user %llu: %llu bytes for %u actions",
                  (unsigned long long)w.user[i], (unsigned long long)len, w.nact[i]);
        if (w.nact[i] == 1 && len > worst) worst = len;
    }
    uint64_t i2 = sq_hist_find(&w, 1000);
    CHECK_EQ_U64(w.boff[i2 + 1] - w.boff[i2], 32); /* both corner records take exactly 16 bytes */
    CHECK_EQ_U64(worst, 16);
    fprintf(stderr, "history bytes/action: worst-case data (random 64-bit pins, random gaps) %.2f\n",
            sq_hist_bytes_per_action(&w));
    CHECK(sq_hist_bytes_per_action(&w) <= 16.0);

    /* small-id sequential data (benchmark-like): pins < 20000, one minute apart, one action and surface */
    sq_hist s = {0};
    for (uint64_t u = 0; u < 500; u++) {
        for (int k = 0; k < 200; k++) a[k] = act(sp_rng_below(&r, 20000), 1700000000000LL + 60000LL * k, 4, 0);
        CHECK_RC(sq_hist_append(&s, u, 0, a, 200), SP_OK);
    }
    /* production-like: random 64-bit pins, gaps of seconds to days, 5 actions, 5 surfaces, repeats of the pin */
    sq_hist p = {0};
    for (uint64_t u = 0; u < 500; u++) {
        int64_t t = 1700000000000LL;
        for (int k = 0; k < 200; k++) {
            int same = k && sp_rng_below(&r, 3) == 0;
            t += same ? (int64_t)sp_rng_below(&r, 30000) : (int64_t)sp_rng_below(&r, 1ULL << (10 + sp_rng_below(&r, 26)));
            a[k] = act(same ? a[k - 1].pin : sp_rng_u64(&r), t, (uint8_t)sp_rng_below(&r, 5),
                       same ? a[k - 1].surface : (uint8_t)sp_rng_below(&r, 5));
        }
        qsort(a, 200, sizeof *a, act_cmp);
        uint64_t m = 0;
        for (int k = 0; k < 200; k++)
            if (!m || !act_eq(&a[m - 1], &a[k])) a[m++] = a[k];
        CHECK_RC(sq_hist_append(&p, u, 0, a, m), SP_OK);
    }
    double bs = sq_hist_bytes_per_action(&s), bp = sq_hist_bytes_per_action(&p);
    fprintf(stderr, "history bytes/action: small-id sequential %.2f, production-like %.2f (decoded: %zu)\n", bs, bp,
            sizeof(sq_action));
    CHECK(bs > 0 && bs < 8);
    CHECK(bp > 0 && bp <= 16);
    sq_hist_free(&w), sq_hist_free(&s), sq_hist_free(&p);
}

static void cleanup(void) {
    const char *names[] = {"a.hist", "b.hist", "c.hist", "big.hist", "small.hist", "edge.hist", "empty.hist",
                           "p0.hist", "p1.hist", "flip.hist", "forged.hist"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) unlink(tpath(names[i]));
    rmdir(tmpdir);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sp_hist_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_merge_small();
    test_merge_random();
    test_idempotent();
    test_roundtrip();
    test_repartition();
    test_corrupt();
    test_bytes_per_action();
    cleanup();
    return CHECK_DONE();
}
