/* history: the lifelong user history store (history.h) -- the per-user record
 * encoding, the day merge that streams over the previous store, and the sfile
 * save/load with a user filter for a changed rank count. */
#include "history.h"

#include "sfile.h"
#include "sp_base.h"

#include <stdlib.h>
#include <string.h>

struct sq_hist_part {
    char *path;     /* file loaded */
    uint64_t first; /* index in h of its first kept user (at load time) */
};

#define TAG_PIN_DELTA 0x40u
#define TAG_AS 0x80u
#define AS_ESCAPE 0x0Fu /* action nibble that announces two raw bytes */

/* ---- record coding ---- */

static uint64_t zz_enc(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static int64_t zz_dec(uint64_t u) { return (int64_t)(u >> 1) ^ -(int64_t)(u & 1); }

/* Byte-count code of v: 0 for 0, 1..6 for 1..6 bytes, 7 for 8 bytes. */
static unsigned len_code(uint64_t v) {
    unsigned n = 0;
    while (n < 8 && (v >> (8 * n))) n++;
    return n >= 7 ? 7 : n;
}
static unsigned code_bytes(unsigned c) { return c == 7 ? 8 : c; }

static uint8_t *put_le(uint8_t *p, uint64_t v, unsigned nb) {
    for (unsigned k = 0; k < nb; k++) p[k] = (uint8_t)(v >> (8 * k));
    return p + nb;
}
static uint64_t get_le(const uint8_t *p, unsigned nb) {
    uint64_t v = 0;
    for (unsigned k = 0; k < nb; k++) v |= (uint64_t)p[k] << (8 * k);
    return v;
}

/* (ts, pin, action, surface) order: <0, 0, >0. */
static int act_cmp(const sq_action *a, const sq_action *b) {
    if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
    if (a->pin != b->pin) return a->pin < b->pin ? -1 : 1;
    if (a->action != b->action) return a->action < b->action ? -1 : 1;
    if (a->surface != b->surface) return a->surface < b->surface ? -1 : 1;
    return 0;
}
static int act_qcmp(const void *x, const void *y) { return act_cmp(x, y); }

/* Encodes a[0..n) (sorted) into dst, which has room for n * SQ_HIST_REC_MAX
 * bytes; returns the bytes written. */
static uint64_t enc_user(const sq_action *a, uint64_t n, uint8_t *dst) {
    uint8_t *p = dst;
    uint64_t ppin = 0;
    int64_t pts = 0;
    uint8_t pact = 0, psurf = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t *tag = p++;
        uint64_t tv = i ? (uint64_t)a[i].ts - (uint64_t)pts : zz_enc(a[i].ts);
        unsigned tc = len_code(tv);
        unsigned pc = 0, delta = 0;
        uint64_t pv = 0;
        if (a[i].pin != ppin) {
            uint64_t dv = zz_enc((int64_t)(a[i].pin - ppin));
            /* code 0 means "same pin", so a changed pin takes at least one byte (pin 0 too) */
            unsigned rc_ = a[i].pin ? len_code(a[i].pin) : 1, dc = len_code(dv);
            if (dc < rc_) pc = dc, pv = dv, delta = 1;
            else pc = rc_, pv = a[i].pin;
        }
        p = put_le(p, pv, code_bytes(pc));
        p = put_le(p, tv, code_bytes(tc));
        unsigned as = a[i].action != pact || a[i].surface != psurf;
        if (as) {
            if (a[i].action < AS_ESCAPE && a[i].surface < 16) {
                *p++ = (uint8_t)(a[i].action | a[i].surface << 4);
            } else {
                *p++ = AS_ESCAPE;
                *p++ = a[i].action;
                *p++ = a[i].surface;
            }
        }
        *tag = (uint8_t)(tc | pc << 3 | (delta ? TAG_PIN_DELTA : 0) | (as ? TAG_AS : 0));
        ppin = a[i].pin, pts = a[i].ts, pact = a[i].action, psurf = a[i].surface;
    }
    return (uint64_t)(p - dst);
}

/* Decodes the n records in b[0..len) of user `user` into out[0..n),
 * verifying them. `where` names the file (or "memory") for errors. */
static int dec_user(const uint8_t *b, uint64_t len, uint64_t n, sq_action *out, const char *where, uint64_t user) {
    uint64_t pos = 0, ppin = 0;
    int64_t pts = 0;
    uint8_t pact = 0, psurf = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (pos >= len) goto truncated;
        unsigned tag = b[pos++];
        unsigned tc = tag & 7u, pc = (tag >> 3) & 7u;
        unsigned tb = code_bytes(tc), pb = code_bytes(pc);
        if ((tag & TAG_PIN_DELTA) && pc == 0)
            return sp_err(SP_EFORMAT, "%s: user %llu action %llu: tag 0x%02x marks a pin delta without bytes",
                          where, (unsigned long long)user, (unsigned long long)i, tag);
        if (len - pos < (uint64_t)pb + tb) goto truncated;
        uint64_t pv = get_le(b + pos, pb);
        pos += pb;
        uint64_t tv = get_le(b + pos, tb);
        pos += tb;
        sq_action a;
        a.pin = pc == 0 ? ppin : (tag & TAG_PIN_DELTA) ? ppin + (uint64_t)zz_dec(pv) : pv;
        if (i == 0) {
            a.ts = zz_dec(tv);
        } else {
            /* INT64_MAX - pts as an unsigned number is exact for any pts */
            if (tv > (uint64_t)INT64_MAX - (uint64_t)pts)
                return sp_err(SP_EFORMAT, "%s: user %llu action %llu: timestamp overflows (previous %lld + %llu)",
                              where, (unsigned long long)user, (unsigned long long)i, (long long)pts,
                              (unsigned long long)tv);
            a.ts = (int64_t)((uint64_t)pts + tv);
        }
        a.action = pact, a.surface = psurf;
        if (tag & TAG_AS) {
            if (pos >= len) goto truncated;
            uint8_t c = b[pos++];
            if ((c & 0x0Fu) == AS_ESCAPE) {
                if (c != AS_ESCAPE)
                    return sp_err(SP_EFORMAT, "%s: user %llu action %llu: bad action/surface byte 0x%02x", where,
                                  (unsigned long long)user, (unsigned long long)i, c);
                if (len - pos < 2) goto truncated;
                a.action = b[pos], a.surface = b[pos + 1];
                pos += 2;
            } else {
                a.action = c & 0x0Fu, a.surface = c >> 4;
            }
        }
        if (i > 0 && act_cmp(&out[i - 1], &a) >= 0)
            return sp_err(SP_EFORMAT,
                          "%s: user %llu action %llu: not after the previous action (ts %lld pin %llu after ts %lld "
                          "pin %llu): actions must be strictly increasing by (ts, pin, action, surface)",
                          where, (unsigned long long)user, (unsigned long long)i, (long long)a.ts,
                          (unsigned long long)a.pin, (long long)out[i - 1].ts, (unsigned long long)out[i - 1].pin);
        out[i] = a;
        ppin = a.pin, pts = a.ts, pact = a.action, psurf = a.surface;
    }
    if (pos != len)
        return sp_err(SP_EFORMAT, "%s: user %llu: %llu bytes left after its %llu actions", where,
                      (unsigned long long)user, (unsigned long long)(len - pos), (unsigned long long)n);
    return SP_OK;
truncated:
    return sp_err(SP_EFORMAT, "%s: user %llu: records truncated (%llu bytes for %llu actions)", where,
                  (unsigned long long)user, (unsigned long long)len, (unsigned long long)n);
}

/* ---- store building ---- */

/* Room for `users` more users and `bytes` more blob bytes. */
static int reserve(sq_hist *h, uint64_t users, uint64_t bytes) {
    uint64_t need_u = h->n + users;
    if (need_u + 1 > h->ucap) {
        size_t cap = h->ucap;
        /* the four user arrays grow to one capacity; sp_grow leaves an array
         * unchanged on failure, and a larger capacity in the others is harmless */
        size_t c1 = cap, c2 = cap, c3 = cap, c4 = cap;
        if (sp_grow((void **)&h->user, &c1, (size_t)need_u + 1, sizeof *h->user) ||
            sp_grow((void **)&h->last_day, &c2, (size_t)need_u + 1, sizeof *h->last_day) ||
            sp_grow((void **)&h->nact, &c3, (size_t)need_u + 1, sizeof *h->nact) ||
            sp_grow((void **)&h->boff, &c4, (size_t)need_u + 1, sizeof *h->boff))
            return sp_err(SP_ENOMEM, "history: no memory for %llu users", (unsigned long long)need_u);
        h->ucap = c1 < c2 ? c1 : c2;
        if (c3 < h->ucap) h->ucap = c3;
        if (c4 < h->ucap) h->ucap = c4;
        if (h->n == 0) h->boff[0] = 0;
    }
    /* blob is allocated even when empty, so that blob + offset is always valid */
    uint64_t used = h->n ? h->boff[h->n] : 0;
    if (sp_grow((void **)&h->blob, &h->bcap, (size_t)(used + bytes) + 1, 1))
        return sp_err(SP_ENOMEM, "history: no memory for %llu encoded bytes", (unsigned long long)(used + bytes));
    return SP_OK;
}

/* Records the user whose nb bytes (na actions) were just written at the end
 * of h's blob; reserve() made room. */
static void add_user(sq_hist *h, uint64_t user, int64_t last_day, uint64_t na, uint64_t nb) {
    h->user[h->n] = user;
    h->last_day[h->n] = last_day;
    h->nact[h->n] = (uint32_t)na;
    h->boff[h->n + 1] = h->boff[h->n] + nb;
    h->n++;
    h->nactions += na;
}

/* Adds user with nb already-encoded bytes b holding na actions. */
static int push_bytes(sq_hist *h, uint64_t user, int64_t last_day, uint64_t na, const uint8_t *b, uint64_t nb) {
    int rc = reserve(h, 1, nb);
    if (rc) return rc;
    if (nb) memcpy(h->blob + h->boff[h->n], b, nb);
    add_user(h, user, last_day, na, nb);
    return SP_OK;
}

/* Adds user with the sorted actions a[0..n) (encoded in place). */
static int push_actions(sq_hist *h, uint64_t user, int64_t last_day, const sq_action *a, uint64_t n) {
    if (n > UINT32_MAX)
        return sp_err(SP_EINPUT, "history: user %llu has %llu actions (at most %u per user)",
                      (unsigned long long)user, (unsigned long long)n, UINT32_MAX);
    int rc = reserve(h, 1, n * SQ_HIST_REC_MAX);
    if (rc) return rc;
    add_user(h, user, last_day, n, enc_user(a, n, h->blob + h->boff[h->n]));
    return SP_OK;
}

int sq_hist_append(sq_hist *h, uint64_t user, int64_t last_day, const sq_action *a, uint64_t n) {
    if (!h || (n && !a)) return sp_err(SP_EUSAGE, "sq_hist_append: h and a are required");
    if (h->unsorted) return sp_err(SP_EUSAGE, "sq_hist_append: the store is out of order: call sq_hist_sort first");
    if (h->n && user <= h->user[h->n - 1])
        return sp_err(SP_EUSAGE, "sq_hist_append: user %llu is not after the last user %llu",
                      (unsigned long long)user, (unsigned long long)h->user[h->n - 1]);
    for (uint64_t i = 1; i < n; i++)
        if (act_cmp(&a[i - 1], &a[i]) >= 0)
            return sp_err(SP_EUSAGE, "sq_hist_append: user %llu: action %llu is not after action %llu",
                          (unsigned long long)user, (unsigned long long)i, (unsigned long long)(i - 1));
    return push_actions(h, user, last_day, a, n);
}

int sq_hist_user(const sq_hist *h, uint64_t i, sq_action *buf, uint64_t cap) {
    if (!h || i >= h->n)
        return sp_err(SP_EUSAGE, "sq_hist_user: user index %llu out of range (%llu users)", (unsigned long long)i,
                      (unsigned long long)(h ? h->n : 0));
    if (cap < h->nact[i] || (h->nact[i] && !buf))
        return sp_err(SP_EUSAGE, "sq_hist_user: user %llu has %u actions, buffer holds %llu",
                      (unsigned long long)h->user[i], h->nact[i], (unsigned long long)cap);
    return dec_user(h->blob + h->boff[i], h->boff[i + 1] - h->boff[i], h->nact[i], buf, "history (memory)",
                    h->user[i]);
}

uint64_t sq_hist_find(const sq_hist *h, uint64_t user) {
    uint64_t lo = 0, hi = h ? h->n : 0;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (h->user[mid] < user) lo = mid + 1;
        else hi = mid;
    }
    return h && lo < h->n && h->user[lo] == user ? lo : UINT64_MAX;
}

double sq_hist_bytes_per_action(const sq_hist *h) {
    return h && h->nactions ? (double)h->boff[h->n] / (double)h->nactions : 0.0;
}

void sq_hist_free(sq_hist *h) {
    if (!h) return;
    free(h->user);
    free(h->last_day);
    free(h->nact);
    free(h->boff);
    free(h->blob);
    for (uint32_t k = 0; k < h->nparts; k++) free(h->parts[k].path);
    free(h->parts);
    memset(h, 0, sizeof *h);
}

/* ---- merge ---- */

typedef struct {
    sq_action *a; size_t acap;   /* merged actions of one user */
    sq_action *p; size_t pcap;   /* previous actions of one user */
    sq_action *e; size_t ecap;   /* events of one user */
} scratch;

/* Merges user u: previous index pi (UINT64_MAX = none) and events e[0..ne). */
static int merge_user(const sq_hist *prev, uint64_t pi, uint64_t u, const sp_event_rec *ev, uint64_t ne,
                      uint32_t maxu, int64_t day_ms, scratch *s, sq_hist *out, sq_hist_stats *st) {
    uint64_t np = pi == UINT64_MAX ? 0 : prev->nact[pi];
    int rc;
    if (sp_grow((void **)&s->p, &s->pcap, (size_t)np + 1, sizeof *s->p) ||
        sp_grow((void **)&s->e, &s->ecap, (size_t)ne + 1, sizeof *s->e) ||
        sp_grow((void **)&s->a, &s->acap, (size_t)(np + ne) + 1, sizeof *s->a))
        return sp_err(SP_ENOMEM, "sq_hist_merge: no memory for user %llu (%llu + %llu actions)",
                      (unsigned long long)u, (unsigned long long)np, (unsigned long long)ne);
    if (np && (rc = sq_hist_user(prev, pi, s->p, np))) return rc;
    int sorted = 1;
    for (uint64_t k = 0; k < ne; k++) {
        s->e[k] = (sq_action){.pin = ev[k].pin, .ts = ev[k].ts, .action = ev[k].action, .surface = ev[k].surface};
        if (k && act_cmp(&s->e[k - 1], &s->e[k]) > 0) sorted = 0;
    }
    if (!sorted) qsort(s->e, (size_t)ne, sizeof *s->e, act_qcmp);
    /* two-way merge; an event equal to the last kept action is a duplicate
     * (previous actions are distinct, events sorted, so equal ones are adjacent) */
    uint64_t i = 0, j = 0, m = 0, added = 0, dups = 0;
    while (i < np || j < ne) {
        const sq_action *x;
        int from_ev;
        if (j >= ne || (i < np && act_cmp(&s->p[i], &s->e[j]) <= 0)) x = &s->p[i++], from_ev = 0;
        else x = &s->e[j++], from_ev = 1;
        if (m && act_cmp(&s->a[m - 1], x) == 0) {
            dups++; /* only an event can equal an earlier kept action */
            continue;
        }
        s->a[m++] = *x;
        added += (uint64_t)from_ev;
    }
    uint64_t first = maxu && m > maxu ? m - maxu : 0;
    st->appended += added;
    st->duplicates += dups;
    st->trimmed += first;
    st->users_touched++;
    st->users_new += pi == UINT64_MAX;
    return push_actions(out, u, day_ms, s->a + first, m - first);
}

/* Carries previous user pi (no events) into out, trimming when over maxu. */
static int carry_user(const sq_hist *prev, uint64_t pi, uint32_t maxu, scratch *s, sq_hist *out, sq_hist_stats *st) {
    uint64_t np = prev->nact[pi];
    if (!maxu || np <= maxu)
        return push_bytes(out, prev->user[pi], prev->last_day[pi], np, prev->blob + prev->boff[pi],
                          prev->boff[pi + 1] - prev->boff[pi]);
    if (sp_grow((void **)&s->p, &s->pcap, (size_t)np, sizeof *s->p))
        return sp_err(SP_ENOMEM, "sq_hist_merge: no memory for user %llu (%llu actions)",
                      (unsigned long long)prev->user[pi], (unsigned long long)np);
    int rc = sq_hist_user(prev, pi, s->p, np);
    if (rc) return rc;
    st->trimmed += np - maxu;
    return push_actions(out, prev->user[pi], prev->last_day[pi], s->p + (np - maxu), maxu);
}

int sq_hist_merge(const sq_hist *prev, const sp_event_rec *ev, uint64_t nev, uint32_t max_per_user,
                  int64_t day_ms, sq_hist *out, sq_hist_stats *st) {
    if (!out || (nev && !ev)) return sp_err(SP_EUSAGE, "sq_hist_merge: out and ev are required");
    if (out->n || out->user || out->blob || out->parts)
        return sp_err(SP_EUSAGE, "sq_hist_merge: out must be an empty (zeroed) store");
    if (prev && prev->unsorted)
        return sp_err(SP_EUSAGE, "sq_hist_merge: the previous store is out of order: call sq_hist_sort first");
    for (uint64_t k = 1; k < nev; k++)
        if (ev[k].user < ev[k - 1].user)
            return sp_err(SP_EINPUT, "sq_hist_merge: events not grouped by ascending user: event %llu is user %llu "
                          "after user %llu", (unsigned long long)k, (unsigned long long)ev[k].user,
                          (unsigned long long)ev[k - 1].user);
    sq_hist_stats s0 = {0};
    scratch s = {0};
    uint64_t np = prev ? prev->n : 0, pi = 0, k = 0;
    int rc = SP_OK;
    uint64_t guess = (prev && prev->n ? prev->boff[prev->n] : 0) + nev * 6; /* a first reserve; grows as needed */
    if ((rc = reserve(out, np, guess))) goto fail;
    while (pi < np || k < nev) {
        if (k >= nev || (pi < np && prev->user[pi] < ev[k].user)) {
            if ((rc = carry_user(prev, pi, max_per_user, &s, out, &s0))) goto fail;
            pi++;
            continue;
        }
        uint64_t u = ev[k].user, k1 = k;
        while (k1 < nev && ev[k1].user == u) k1++;
        uint64_t match = pi < np && prev->user[pi] == u ? pi++ : UINT64_MAX;
        if ((rc = merge_user(prev, match, u, ev + k, k1 - k, max_per_user, day_ms, &s, out, &s0))) goto fail;
        k = k1;
    }
    if (st) *st = s0;
    free(s.a), free(s.p), free(s.e);
    return SP_OK;
fail:
    free(s.a), free(s.p), free(s.e);
    sq_hist_free(out);
    return rc;
}

/* ---- save / load ---- */

int sq_hist_save(const sq_hist *h, const char *path, uint64_t *bytes, uint64_t *xxh) {
    if (!h || !path) return sp_err(SP_EUSAGE, "sq_hist_save: h and path are required");
    if (h->unsorted) return sp_err(SP_EUSAGE, "sq_hist_save: %s: the store is out of order: call sq_hist_sort first", path);
    static const uint64_t zero = 0;
    const uint64_t meta[3] = {SQ_HIST_FORMAT, h->n, h->nactions};
    const uint64_t *boff = h->n ? h->boff : &zero;
    uint64_t nb = boff[h->n];
    sp_sfile_w *w = NULL;
    int rc = sp_sfile_create(&w, path, "history");
    if (rc) return rc;
    if ((rc = sp_sfile_put(w, "meta", 8, meta, 3)) || (rc = sp_sfile_put(w, "users", 8, h->user, h->n)) ||
        (rc = sp_sfile_put(w, "last_day", 8, h->last_day, h->n)) || (rc = sp_sfile_put(w, "nact", 4, h->nact, h->n)) ||
        (rc = sp_sfile_put(w, "boff", 8, boff, h->n + 1)) || (rc = sp_sfile_put(w, "blob", 1, h->blob, nb))) {
        sp_sfile_discard(w);
        return rc;
    }
    if ((rc = sp_sfile_commit(w, xxh))) return rc;
    if (bytes) *bytes = sizeof meta + h->n * (8 + 8 + 4 + 8) + 8 + nb;
    return SP_OK;
}

int sq_hist_load(sq_hist *h, const char *path, int (*keep)(uint64_t user, void *arg), void *arg) {
    if (!h || !path) return sp_err(SP_EUSAGE, "sq_hist_load: h and path are required");
    sp_sfile_r *r = NULL;
    int rc = sp_sfile_open(&r, path, "history");
    if (rc) return rc;
    const uint64_t *meta, *users, *boff;
    const int64_t *last;
    const uint32_t *nact;
    const uint8_t *blob;
    uint64_t nmeta, nu, nl, nn, nbo, nb;
    sq_action *buf = NULL;
    size_t bcap = 0;
    /* undo point: h's sizes before this file */
    uint64_t n0 = h->n, a0 = h->nactions;
    int uns0 = h->unsorted;
    if ((rc = sp_sfile_get(r, "meta", 8, (const void **)&meta, &nmeta)) ||
        (rc = sp_sfile_get(r, "users", 8, (const void **)&users, &nu)) ||
        (rc = sp_sfile_get(r, "last_day", 8, (const void **)&last, &nl)) ||
        (rc = sp_sfile_get(r, "nact", 4, (const void **)&nact, &nn)) ||
        (rc = sp_sfile_get(r, "boff", 8, (const void **)&boff, &nbo)) ||
        (rc = sp_sfile_get(r, "blob", 1, (const void **)&blob, &nb)))
        goto done;
    rc = SP_EFORMAT;
    if (nmeta != 3 || meta[0] != SQ_HIST_FORMAT) {
        rc = sp_err(rc, "%s: history format %llu (this build reads %u)", path,
                    (unsigned long long)(nmeta ? meta[0] : 0), SQ_HIST_FORMAT);
        goto done;
    }
    if (meta[1] != nu || nl != nu || nn != nu || nbo != nu + 1) {
        rc = sp_err(rc, "%s: section counts disagree: meta says %llu users; users %llu, last_day %llu, nact %llu, "
                    "boff %llu (want users + 1)", path, (unsigned long long)meta[1], (unsigned long long)nu,
                    (unsigned long long)nl, (unsigned long long)nn, (unsigned long long)nbo);
        goto done;
    }
    if (boff[0] != 0 || boff[nu] != nb) {
        rc = sp_err(rc, "%s: byte offsets span %llu .. %llu, blob has %llu bytes", path, (unsigned long long)boff[0],
                    (unsigned long long)boff[nu], (unsigned long long)nb);
        goto done;
    }
    uint64_t total = 0, maxn = 0;
    for (uint64_t i = 0; i < nu; i++) {
        uint64_t len = boff[i + 1] - boff[i];
        if (i && users[i] <= users[i - 1]) {
            rc = sp_err(rc, "%s: users not ascending: user %llu at index %llu after %llu", path,
                        (unsigned long long)users[i], (unsigned long long)i, (unsigned long long)users[i - 1]);
            goto done;
        }
        /* each record takes 1 .. SQ_HIST_REC_MAX bytes (also rejects boff going back) */
        if (boff[i + 1] < boff[i] || len < nact[i] || len > (uint64_t)nact[i] * SQ_HIST_REC_MAX) {
            rc = sp_err(rc, "%s: user %llu: %u actions cannot take bytes %llu .. %llu", path,
                        (unsigned long long)users[i], nact[i], (unsigned long long)boff[i],
                        (unsigned long long)boff[i + 1]);
            goto done;
        }
        total += nact[i];
        if (nact[i] > maxn) maxn = nact[i];
    }
    if (total != meta[2]) {
        rc = sp_err(rc, "%s: meta says %llu actions, users hold %llu", path, (unsigned long long)meta[2],
                    (unsigned long long)total);
        goto done;
    }
    if (sp_grow((void **)&buf, &bcap, (size_t)maxn + 1, sizeof *buf)) {
        rc = sp_err(SP_ENOMEM, "%s: no memory to decode %llu actions", path, (unsigned long long)maxn);
        goto done;
    }
    /* remember the file, so that sq_hist_sort can name it for a user found twice */
    if (sp_grow((void **)&h->parts, &h->pcap, (size_t)h->nparts + 1, sizeof *h->parts) ||
        !(h->parts[h->nparts].path = strdup(path))) {
        rc = sp_err(SP_ENOMEM, "%s: no memory to record the part", path);
        goto done;
    }
    h->parts[h->nparts].first = h->n;
    h->nparts++;
    for (uint64_t i = 0; i < nu; i++) {
        if (keep && !keep(users[i], arg)) continue;
        uint64_t len = boff[i + 1] - boff[i];
        if ((rc = dec_user(blob + boff[i], len, nact[i], buf, path, users[i]))) goto undo;
        if (h->n && !h->unsorted && users[i] <= h->user[h->n - 1]) h->unsorted = 1;
        if ((rc = push_bytes(h, users[i], last[i], nact[i], blob + boff[i], len))) goto undo;
    }
    rc = SP_OK;
    goto done;
undo:
    h->n = n0, h->nactions = a0, h->unsorted = uns0;
    h->nparts--;
    free(h->parts[h->nparts].path);
done:
    free(buf);
    sp_sfile_close(r);
    return rc;
}

/* Part (file) that loaded user index i. */
static const char *part_of(const sq_hist *h, uint64_t i) {
    const char *p = "(appended in memory or loaded before the last sq_hist_sort)";
    for (uint32_t k = 0; k < h->nparts; k++)
        if (h->parts[k].first <= i) p = h->parts[k].path;
    return p;
}

typedef struct { uint64_t user, idx; } upair;
static int upair_cmp(const void *x, const void *y) {
    const upair *a = x, *b = y;
    if (a->user != b->user) return a->user < b->user ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

int sq_hist_sort(sq_hist *h) {
    if (!h) return sp_err(SP_EUSAGE, "sq_hist_sort: h is required");
    if (!h->unsorted) return SP_OK;
    upair *ord = malloc((size_t)h->n * sizeof *ord);
    if (!ord) return sp_err(SP_ENOMEM, "sq_hist_sort: no memory to order %llu users", (unsigned long long)h->n);
    for (uint64_t i = 0; i < h->n; i++) ord[i] = (upair){h->user[i], i};
    qsort(ord, (size_t)h->n, sizeof *ord, upair_cmp);
    for (uint64_t i = 1; i < h->n; i++)
        if (ord[i].user == ord[i - 1].user) {
            int rc = sp_err(SP_EFORMAT, "history: user %llu is in two parts: %s and %s",
                            (unsigned long long)ord[i].user, part_of(h, ord[i - 1].idx), part_of(h, ord[i].idx));
            free(ord);
            return rc;
        }
    sq_hist t = {0};
    int rc = reserve(&t, h->n, h->n ? h->boff[h->n] : 0);
    for (uint64_t i = 0; !rc && i < h->n; i++) {
        uint64_t j = ord[i].idx;
        rc = push_bytes(&t, h->user[j], h->last_day[j], h->nact[j], h->blob + h->boff[j], h->boff[j + 1] - h->boff[j]);
    }
    free(ord);
    if (rc) {
        sq_hist_free(&t);
        return rc;
    }
    /* the parts' index ranges no longer hold after reordering: forget them */
    sq_hist_free(h);
    *h = t;
    return SP_OK;
}
