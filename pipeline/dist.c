/* dist: MPI runtime helpers. Every collective here is non-blocking underneath
 * and waited for with a deadline, so a dead or stuck peer turns into a clear
 * abort (exit 4) instead of a hang. MPI errors are returned, not fatal. */
#include "dist.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

#include "log.h"
#include "sp_base.h"

static int d_rank = 0, d_size = 1, d_inited = 0;
static double d_timeout = 3600.0;

int sp_dist_init(int *argc, char ***argv) {
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return sp_err(SP_EEXTERNAL, "MPI_Init failed");
    d_inited = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d_size);
    return SP_OK;
}

void sp_dist_finalize(void) {
    if (d_inited) MPI_Finalize();
    d_inited = 0;
}

int sp_dist_rank(void) { return d_rank; }

int sp_dist_local_rank(void) {
    if (!d_inited) return 0;
    MPI_Comm node;
    int r = 0;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d_rank, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return d_rank;
    MPI_Comm_rank(node, &r);
    MPI_Comm_free(&node);
    return r;
}
int sp_dist_size(void) { return d_size; }
void sp_dist_set_timeout(double s) { d_timeout = s; }

void sp_dist_abort(int exit_code, const char *msg) {
    SP_ERROR("abort", "exit_code=%d cause=%s", exit_code, sp_log_q(msg));
    if (d_inited && d_size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
    exit(exit_code);
}

static int mpi_fail(int mrc, const char *what) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(mrc, s, &len);
    return sp_err(SP_EEXTERNAL, "rank %d: MPI %s failed: %s", d_rank, what, s);
}

/* Waits for a non-blocking collective with the deadline. Such a collective advances only inside MPI
 * calls: a large all-reduce is many rounds, each waiting for the next MPI_Test. So it polls back to
 * back for the first SPIN_S seconds of a wait (yielding the core, for oversubscribed ranks: 4 on 2
 * cores), then backs off to sleeps (a long wait: a slow or dead peer). Sleeping from the 64th test on,
 * as this did before, made an 18 MiB sum 2-8x slower than a blocking MPI_Allreduce (bench_dist_mpi). */
#define SPIN_S 0.05
static int coll_wait(MPI_Request *req, int mrc, const char *what) {
    if (mrc != MPI_SUCCESS) return mpi_fail(mrc, what);
    double t0 = sp_now(), deadline = t0 + d_timeout;
    int polling = 1;
    for (long spins = 1;; spins++) {
        int flag = 0;
        mrc = MPI_Test(req, &flag, MPI_STATUS_IGNORE);
        if (mrc != MPI_SUCCESS) return mpi_fail(mrc, what);
        if (flag) return SP_OK;
        if (polling) {
            if (spins % 64 == 0 && sp_now() - t0 >= SPIN_S) polling = 0, spins = 0;
            else sched_yield();
            continue;
        }
        if (sp_now() > deadline) {
            char msg[256];
            snprintf(msg, sizeof msg, "rank %d waited %.0f s at %s: another rank is stuck or dead "
                     "(pipeline.collective_timeout_s)", d_rank, d_timeout, what);
            sp_dist_abort(SP_EXIT_EXTERNAL, msg);
        }
        struct timespec ts = {0, spins < 10000 ? 20000 : 1000000};
        nanosleep(&ts, NULL);
    }
}

int sp_dist_barrier(void) {
    if (d_size == 1) return SP_OK;
    MPI_Request r;
    return coll_wait(&r, MPI_Ibarrier(MPI_COMM_WORLD, &r), "barrier");
}

int sp_dist_agree(int rc) {
    if (d_size == 1) {
        if (rc && strncmp(sp_errmsg(), "rank ", 5)) {
            char m[1024];
            snprintf(m, sizeof m, "%s", sp_errmsg()[0] ? sp_errmsg() : sp_strerror(rc));
            return sp_err(rc, "rank 0: %s", m);
        }
        return rc;
    }
    struct { int ok, rank; } in = {rc == SP_OK, d_rank}, out;
    MPI_Request r;
    int e = coll_wait(&r, MPI_Iallreduce(&in, &out, 1, MPI_2INT, MPI_MINLOC, MPI_COMM_WORLD, &r), "agree");
    if (e) return e;
    if (out.ok) return SP_OK;
    /* The lowest failing rank tells everyone its code and message. */
    struct { int rc; char msg[1020]; } m;
    if (d_rank == out.rank) {
        m.rc = rc;
        snprintf(m.msg, sizeof m.msg, "%s", sp_errmsg()[0] ? sp_errmsg() : sp_strerror(rc));
    }
    e = coll_wait(&r, MPI_Ibcast(&m, sizeof m, MPI_BYTE, out.rank, MPI_COMM_WORLD, &r), "agree-bcast");
    if (e) return e;
    m.msg[sizeof m.msg - 1] = 0;
    if (strncmp(m.msg, "rank ", 5)) return sp_err(m.rc, "rank %d: %s", out.rank, m.msg);
    return sp_err(m.rc, "%s", m.msg);
}

static int allreduce(void *buf, int n, MPI_Datatype t, MPI_Op op, const char *what) {
    if (d_size == 1) return SP_OK;
    MPI_Request r;
    return coll_wait(&r, MPI_Iallreduce(MPI_IN_PLACE, buf, n, t, op, MPI_COMM_WORLD, &r), what);
}
int sp_dist_sum_u64(uint64_t *v, int n) { return allreduce(v, n, MPI_UINT64_T, MPI_SUM, "sum"); }
int sp_dist_max_u64(uint64_t *v, int n) { return allreduce(v, n, MPI_UINT64_T, MPI_MAX, "max"); }
int sp_dist_max_f64(double *v, int n) { return allreduce(v, n, MPI_DOUBLE, MPI_MAX, "max"); }
int sp_dist_sum_f64(double *v, int n) { return allreduce(v, n, MPI_DOUBLE, MPI_SUM, "sum"); }
/* Large float sums (a training step's gradients): Open MPI's non-blocking all-reduce (libnbc) moved
 * 18 MiB at half the speed of the blocking one (bench_dist_mpi: 2 ranks, 14.7 vs 6.9 ms), whose tuned
 * algorithms (ring, reduce-scatter + all-gather) the non-blocking path lacks. So from BIG_SUM floats on,
 * every rank first meets the others at a non-blocking barrier waited for with the deadline (a dead or
 * stuck peer is caught there), then sums with the blocking call, which then only moves data (a rank
 * dying inside it ends the job through mpirun, as a dead process always does). Every rank passes the
 * same n (a collective), so all take the same path. */
#define BIG_SUM (1 << 16)
static int sum_f32(float *v, int n) {
    if (d_size == 1) return SP_OK;
    if (n < BIG_SUM) return allreduce(v, n, MPI_FLOAT, MPI_SUM, "sum");
    MPI_Request r;
    int e = coll_wait(&r, MPI_Ibarrier(MPI_COMM_WORLD, &r), "sum");
    if (e) return e;
    int mrc = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    return mrc == MPI_SUCCESS ? SP_OK : mpi_fail(mrc, "sum");
}
int sp_dist_sum_f32(float *v, size_t n) {
    /* in chunks: MPI counts are int */
    for (size_t i = 0; i < n;) {
        int c = n - i > (1u << 30) ? (1 << 30) : (int)(n - i);
        int rc = sum_f32(v + i, c);
        if (rc) return rc;
        i += (size_t)c;
    }
    return SP_OK;
}
int sp_dist_max_u8(uint8_t *v, size_t n) {
    for (size_t i = 0; i < n;) {
        int c = n - i > (1u << 30) ? (1 << 30) : (int)(n - i);
        int rc = allreduce(v + i, c, MPI_UINT8_T, MPI_MAX, "max");
        if (rc) return rc;
        i += (size_t)c;
    }
    return SP_OK;
}

int sp_dist_exscan_u64(const uint64_t *v, uint64_t *out, int n) {
    memset(out, 0, sizeof *out * (size_t)n);
    if (d_size == 1) return SP_OK;
    MPI_Request r;
    int e = coll_wait(&r, MPI_Iexscan(v, out, n, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD, &r), "exscan");
    if (d_rank == 0) memset(out, 0, sizeof *out * (size_t)n); /* undefined on rank 0 */
    return e;
}

int sp_dist_allgather_u64(const uint64_t *v, uint64_t *out, int n) {
    if (d_size == 1) {
        memcpy(out, v, sizeof *v * (size_t)n);
        return SP_OK;
    }
    MPI_Request r;
    return coll_wait(&r, MPI_Iallgather(v, n, MPI_UINT64_T, out, n, MPI_UINT64_T, MPI_COMM_WORLD, &r), "allgather");
}

int sp_dist_bcast(void *data, size_t len, int root) {
    if (d_size == 1) return SP_OK;
    if (len > (size_t)INT32_MAX) return sp_err(SP_EINTERNAL, "bcast of %zu bytes", len);
    MPI_Request r;
    return coll_wait(&r, MPI_Ibcast(data, (int)len, MPI_BYTE, root, MPI_COMM_WORLD, &r), "bcast");
}

int sp_dist_gather_bytes(const void *data, size_t len, char **out, uint64_t *lens) {
    uint64_t mine = len;
    int e = sp_dist_allgather_u64(&mine, lens, 1);
    if (e) return e;
    uint64_t total = 0;
    for (int i = 0; i < d_size; i++) total += lens[i];
    if (total > (uint64_t)INT32_MAX) return sp_err(SP_EINTERNAL, "gather of %llu bytes", (unsigned long long)total);
    char *buf = NULL;
    int *counts = NULL, *displs = NULL;
    if (d_rank == 0) {
        buf = malloc(total + 1);
        counts = malloc(sizeof *counts * (size_t)d_size);
        displs = malloc(sizeof *displs * (size_t)d_size);
        if (!buf || !counts || !displs) e = SP_ENOMEM;
        else
            for (int i = 0, off = 0; i < d_size; i++) {
                counts[i] = (int)lens[i];
                displs[i] = off;
                off += (int)lens[i];
            }
    }
    e = sp_dist_agree(e);
    if (!e) {
        if (d_size == 1) memcpy(buf, data, len);
        else {
            MPI_Request r;
            e = coll_wait(&r, MPI_Igatherv(data, (int)len, MPI_BYTE, buf, counts, displs, MPI_BYTE, 0,
                                           MPI_COMM_WORLD, &r), "gatherv");
        }
    }
    free(counts);
    free(displs);
    if (e) {
        free(buf);
        return e;
    }
    if (buf) buf[total] = 0;
    *out = buf;
    return SP_OK;
}

/* ---- shuffle ---- */

struct sp_shuffle {
    int size;
    size_t cap;     /* per-destination send capacity */
    char **buf;     /* [size] send buffers: records as u32 len + bytes */
    size_t *len;    /* [size] */
    int nfull;      /* destinations that cannot take a maximal record */
    sp_shuffle_sink sink;
    void *ctx;
    uint64_t bytes_sent;
    char *rbuf, *sbuf;
    size_t rcap, scap;
    char *block;    /* the send buffers as one allocation (buf[i] = block + i * cap), or NULL */
};

int sp_shuffle_new(sp_shuffle **out, size_t buffer_bytes, sp_shuffle_sink sink, void *ctx) {
    sp_shuffle *s = calloc(1, sizeof *s);
    if (!s) return SP_ENOMEM;
    s->size = d_size;
    s->cap = buffer_bytes / (size_t)d_size;
    if (s->cap < 4 * (SP_SHUFFLE_MAX_RECORD + 4)) s->cap = 4 * (SP_SHUFFLE_MAX_RECORD + 4);
    if (s->cap > (size_t)INT32_MAX / 2) s->cap = (size_t)INT32_MAX / 2;
    s->sink = sink;
    s->ctx = ctx;
    s->buf = calloc((size_t)d_size, sizeof *s->buf);
    s->len = calloc((size_t)d_size, sizeof *s->len);
    if (!s->buf || !s->len) {
        sp_shuffle_free(s);
        return SP_ENOMEM;
    }
    /* one block when MPI's int displacements reach every destination's part: the exchange then sends
     * from the buffers themselves; else a buffer per destination, packed into one for each exchange */
    if (s->cap * (size_t)d_size <= (size_t)INT32_MAX && (s->block = malloc(s->cap * (size_t)d_size)))
        for (int i = 0; i < d_size; i++) s->buf[i] = s->block + s->cap * (size_t)i;
    for (int i = 0; i < d_size && !s->block; i++)
        if (!(s->buf[i] = malloc(s->cap))) {
            size_t want = s->cap * (size_t)d_size;
            sp_shuffle_free(s);
            return sp_err(SP_ENOMEM, "shuffle: cannot allocate %zu bytes of send buffers", want);
        }
    *out = s;
    return SP_OK;
}

void sp_shuffle_free(sp_shuffle *s) {
    if (!s) return;
    if (s->block) free(s->block);
    else
        for (int i = 0; s->buf && i < s->size; i++) free(s->buf[i]);
    free(s->buf);
    free(s->len);
    free(s->rbuf);
    free(s->sbuf);
    free(s);
}

static int dest_full(const sp_shuffle *s, int d) { return s->len[d] + SP_SHUFFLE_MAX_RECORD + 4 > s->cap; }

void *sp_shuffle_reserve(sp_shuffle *s, int dest, size_t len) {
    if (dest < 0 || dest >= s->size || len > SP_SHUFFLE_MAX_RECORD) {
        sp_err(SP_EINTERNAL, "shuffle_put: dest %d len %zu", dest, len);
        return NULL;
    }
    if (s->len[dest] + 4 + len > s->cap) {
        sp_err(SP_EINTERNAL, "shuffle_put: buffer of rank %d full (call exchange when full)", dest);
        return NULL;
    }
    int was_full = dest_full(s, dest);
    uint32_t l = (uint32_t)len;
    memcpy(s->buf[dest] + s->len[dest], &l, 4);
    char *at = s->buf[dest] + s->len[dest] + 4;
    s->len[dest] += 4 + len;
    if (!was_full && dest_full(s, dest)) s->nfull++;
    return at;
}

int sp_shuffle_put(sp_shuffle *s, int dest, const void *rec, size_t len) {
    void *at = sp_shuffle_reserve(s, dest, len);
    if (!at) return SP_EINTERNAL;
    memcpy(at, rec, len);
    return SP_OK;
}

int sp_shuffle_full(const sp_shuffle *s) { return s->nfull > 0; }
uint64_t sp_shuffle_bytes_sent(const sp_shuffle *s) { return s->bytes_sent; }

int sp_shuffle_exchange(sp_shuffle *s, int local_done, int local_rc, int *all_done) {
    *all_done = 1;
    int rc = sp_dist_agree(local_rc);
    if (rc) return rc;
    int n = s->size;
    if (n == 1) {
        /* Deliver locally, same framing. */
        rc = SP_OK;
        for (size_t off = 0; off < s->len[0] && !rc;) {
            uint32_t l;
            memcpy(&l, s->buf[0] + off, 4);
            rc = s->sink(s->ctx, 0, s->buf[0] + off + 4, l);
            off += 4 + l;
        }
        s->bytes_sent += s->len[0];
        s->len[0] = 0;
        s->nfull = 0;
        *all_done = local_done || rc;
        return rc;
    }
    int *scount = malloc(sizeof(int) * 4 * (size_t)n);
    if (!scount) return sp_dist_agree(SP_ENOMEM);
    int *rcount = scount + n, *sdispl = rcount + n, *rdispl = sdispl + n;
    char *sbuf = NULL;
    size_t stotal = 0, rtotal = 0;
    for (int i = 0; i < n; i++) {
        scount[i] = (int)s->len[i];
        sdispl[i] = s->block ? (int)(s->cap * (size_t)i) : (int)stotal;
        stotal += s->len[i];
    }
    MPI_Request r;
    int done = local_done;
    rc = coll_wait(&r, MPI_Iallreduce(MPI_IN_PLACE, &done, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD, &r), "shuffle-done");
    if (!rc) rc = coll_wait(&r, MPI_Ialltoall(scount, 1, MPI_INT, rcount, 1, MPI_INT, MPI_COMM_WORLD, &r),
                            "shuffle-counts");
    if (!rc) {
        for (int i = 0; i < n; i++) {
            rdispl[i] = (int)rtotal;
            rtotal += (size_t)rcount[i];
        }
        /* Without the block, the send buffers are packed into one (bounded by cap*n), kept between
         * rounds like the receive buffer (fresh pages every round were page faults on every byte). */
        if (!s->block && stotal > s->scap) {
            free(s->sbuf);
            s->sbuf = malloc(stotal);
            s->scap = s->sbuf ? stotal : 0;
        }
        sbuf = s->block ? s->block : s->sbuf;
        if (rtotal > s->rcap) {
            free(s->rbuf);
            s->rbuf = malloc(rtotal);
            s->rcap = s->rbuf ? rtotal : 0;
        }
        int e = ((stotal && !sbuf) || (rtotal && !s->rbuf)) ? SP_ENOMEM : SP_OK;
        rc = sp_dist_agree(e);
    }
    if (!rc) {
        for (int i = 0; i < n && !s->block; i++)
            if (s->len[i]) memcpy(sbuf + sdispl[i], s->buf[i], s->len[i]);
        /* every rank has just passed the agreement above (a stuck peer is caught there, with the
         * deadline): the blocking call only moves data, at about twice the speed of libnbc's
         * non-blocking one for large rounds (as for sp_dist_sum_f32) */
        int mrc = MPI_Alltoallv(sbuf, scount, sdispl, MPI_BYTE, s->rbuf, rcount, rdispl, MPI_BYTE, MPI_COMM_WORLD);
        rc = mrc == MPI_SUCCESS ? SP_OK : mpi_fail(mrc, "shuffle-data");
    }
    if (!rc) {
        s->bytes_sent += stotal;
        for (int i = 0; i < n; i++) s->len[i] = 0;
        s->nfull = 0;
        for (int src = 0; src < n && !rc; src++) {
            const char *p = s->rbuf + rdispl[src], *end = p + rcount[src];
            while (p < end && !rc) {
                uint32_t l;
                memcpy(&l, p, 4);
                rc = s->sink(s->ctx, src, p + 4, l);
                p += 4 + l;
            }
        }
        *all_done = done;
    }
    free(scount);
    /* A sink error on one rank must end the loop on every rank. */
    rc = sp_dist_agree(rc);
    if (rc) *all_done = 1;
    return rc;
}
