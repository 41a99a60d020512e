/* seq_batch: packing histories into encoder batches (seq_batch.h). */
#include "seq_batch.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sp_base.h"

void sq_packer_reset(sq_packer *p) {
    p->B = 0;
    p->N = 0;
    p->missing = 0;
}

int sq_packer_add(sq_packer *p, const sq_action *a, uint64_t n, int64_t qt_last, const sq_items *it) {
    size_t d = (size_t)it->d, N = (size_t)(p->N + n);
    if (sp_grow((void **)&p->off, &p->cap_b, (size_t)p->B + 2, sizeof *p->off) ||
        sp_grow((void **)&p->item, &p->cap_item, N * d, sizeof *p->item) ||
        sp_grow((void **)&p->act, &p->cap_act, N, 1) || sp_grow((void **)&p->surf, &p->cap_surf, N, 1) ||
        sp_grow((void **)&p->ts, &p->cap_ts, N, 8) || sp_grow((void **)&p->qt, &p->cap_qt, N, 8))
        return sp_err(SP_ENOMEM, "users: packing %zu actions", N);
    if (p->B == 0) p->off[0] = 0;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t r = p->N + j, row = sq_items_row(it, a[j].pin);
        float *dst = p->item + r * d;
        if (row == UINT64_MAX) {
            memset(dst, 0, 4 * d);
            p->missing++;
        } else memcpy(dst, it->vec + row * d, 4 * d);
        p->act[r] = a[j].action;
        p->surf[r] = a[j].surface;
        p->ts[r] = a[j].ts;
        p->qt[r] = j + 1 < n ? a[j + 1].ts : qt_last;
    }
    p->N += n;
    p->B++;
    p->off[p->B] = p->N;
    return SP_OK;
}

sq_batch sq_packer_batch(const sq_packer *p) {
    return (sq_batch){.B = p->B, .off = p->off, .item = p->item, .act = p->act, .surf = p->surf, .ts = p->ts, .qt = p->qt};
}

void sq_packer_free(sq_packer *p) {
    free(p->off);
    free(p->item);
    free(p->act);
    free(p->surf);
    free(p->ts);
    free(p->qt);
    memset(p, 0, sizeof *p);
}

static int cmp_i64(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

int64_t sq_query_time(const sq_action *a, uint64_t n, int64_t cap_ms) {
    if (n == 0) return 0;
    int64_t last = a[n - 1].ts, g[32];
    int k = 0;
    for (uint64_t j = n - 1; j > 0 && k < 32; j--) g[k++] = a[j].ts - a[j - 1].ts;
    if (k == 0) return last;
    qsort(g, (size_t)k, sizeof *g, cmp_i64);
    int64_t m = g[k / 2];
    return last + (m < cap_ms ? m : cap_ms);
}

/* ---- encoding users, in chunks, on worker threads ---- */

#define ENC_CHUNK 64

typedef struct {
    const sq_model *m;
    const sq_hist *h;
    const sq_items *it;
    const uint64_t *todo;
    uint64_t ntodo, next, missing; /* next: shared chunk counter */
    uint64_t longest;              /* actions of the longest history to encode */
    float *vec;
    int64_t cap_ms;
    pthread_mutex_t mu;
    int rc;
} enc_job;

static void *enc_worker(void *arg) {
    enc_job *J = arg;
    sq_packer pk = {0};
    sq_acts *acts = sq_acts_new();
    int d = J->it->d, rc = acts ? SP_OK : SP_ENOMEM;
    uint64_t M = (uint64_t)J->m->c.max_len, miss = 0, cap = J->longest;
    float *out = malloc(4 * (size_t)ENC_CHUNK * d);
    sq_action *buf = malloc(sizeof *buf * cap);
    if (!out || !buf) rc = SP_ENOMEM;
    for (;;) {
        pthread_mutex_lock(&J->mu);
        uint64_t c0 = J->next;
        J->next += ENC_CHUNK;
        if (rc && !J->rc) J->rc = rc;
        int stop = J->rc != 0;
        pthread_mutex_unlock(&J->mu);
        if (stop || c0 >= J->ntodo) break;
        uint64_t c1 = c0 + ENC_CHUNK < J->ntodo ? c0 + ENC_CHUNK : J->ntodo;
        sq_packer_reset(&pk);
        for (uint64_t i = c0; i < c1 && !rc; i++) {
            uint64_t u = J->todo[i], n = J->h->nact[u], s = n > M ? n - M : 0;
            if (n == 0) rc = sp_err(SP_EINPUT, "users: user %" PRIu64 " has an empty history", J->h->user[u]);
            if (!rc) rc = sq_hist_user(J->h, u, buf, cap);
            if (!rc) rc = sq_packer_add(&pk, buf + s, n - s, sq_query_time(buf, n, J->cap_ms), J->it);
        }
        miss += pk.missing;
        sq_batch b = sq_packer_batch(&pk);
        if (!rc) rc = sq_encode_last(J->m, &b, acts, out);
        for (uint64_t i = c0; i < c1 && !rc; i++) memcpy(J->vec + J->todo[i] * d, out + (i - c0) * d, 4 * (size_t)d);
    }
    pthread_mutex_lock(&J->mu);
    if (rc && !J->rc) J->rc = rc;
    J->missing += miss;
    pthread_mutex_unlock(&J->mu);
    free(out);
    free(buf);
    sq_acts_free(acts);
    sq_packer_free(&pk);
    return NULL;
}

int sq_encode_users(const sq_model *m, const sq_hist *h, const sq_items *it, const uint64_t *todo, uint64_t n,
                    int64_t cap_ms, int threads, float *vec, uint64_t *missing) {
    enc_job J = {.m = m, .h = h, .it = it, .todo = todo, .ntodo = n, .vec = vec, .cap_ms = cap_ms, .longest = 1};
    for (uint64_t i = 0; i < n; i++) J.longest = h->nact[todo[i]] > J.longest ? h->nact[todo[i]] : J.longest;
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    pthread_t th[64];
    int started = 0;
    pthread_mutex_init(&J.mu, NULL);
    for (int i = 1; i < threads; i++) {
        if (pthread_create(&th[i], NULL, enc_worker, &J)) break;
        started = i;
    }
    enc_worker(&J);
    for (int i = 1; i <= started; i++) pthread_join(th[i], NULL);
    pthread_mutex_destroy(&J.mu);
    if (missing) *missing += J.missing;
    return J.rc;
}
