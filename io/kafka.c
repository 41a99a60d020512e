/* kafka: librdkafka clients behind io/kafka.h: the window reader (metadata,
 * watermarks, offsets-for-times, assign + poll), group offset commits and the
 * idempotent producer. librdkafka's log lines do not go to stderr: the last
 * warning or error of each client is kept and quoted in our error messages. */
#include "kafka.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sp_base.h"

typedef struct {
    rd_kafka_t *rk;
    int consumer;
    pthread_mutex_t mu;
    char last[256]; /* librdkafka's last warning/error log line ("" if none) */
} client;

/* Runs on librdkafka's threads. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    client *c = rd_kafka_opaque(rk);
    (void)fac;
    if (!c || level > 4) return; /* syslog levels: keep warnings (4) and worse */
    pthread_mutex_lock(&c->mu);
    snprintf(c->last, sizeof c->last, "%s", buf);
    pthread_mutex_unlock(&c->mu);
}

/* Opens a client with bootstrap.servers = brokers and the extra settings
 * kv = {key, value, ..., NULL} and, for a producer, the delivery report
 * callback dr. On failure *c needs no cleanup. */
static int client_new(client *c, rd_kafka_type_t type, const char *brokers, const char *const *kv,
                      void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *)) {
    memset(c, 0, sizeof *c);
    if (pthread_mutex_init(&c->mu, NULL)) return sp_err(SP_EINTERNAL, "kafka: pthread_mutex_init failed");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512] = "";
    const char *common[] = {"bootstrap.servers", brokers, "client.id", "sagepipe", "log.connection.close", "false",
                            NULL};
    int rc = conf ? SP_OK : SP_ENOMEM;
    for (const char *const *p = common; !rc && *p; p += 2)
        if (rd_kafka_conf_set(conf, p[0], p[1], err, sizeof err) != RD_KAFKA_CONF_OK)
            rc = sp_err(SP_ECONFIG, "kafka: %s = '%s': %s", p[0], p[1], err);
    for (const char *const *p = kv; !rc && p && *p; p += 2)
        if (rd_kafka_conf_set(conf, p[0], p[1], err, sizeof err) != RD_KAFKA_CONF_OK)
            rc = sp_err(SP_EINTERNAL, "kafka: %s = '%s': %s", p[0], p[1], err);
    if (!rc) {
        rd_kafka_conf_set_opaque(conf, c);
        rd_kafka_conf_set_log_cb(conf, log_cb);
        if (dr) rd_kafka_conf_set_dr_msg_cb(conf, dr);
        c->rk = rd_kafka_new(type, conf, err, sizeof err); /* takes conf only on success */
        if (!c->rk) rc = sp_err(SP_EEXTERNAL, "kafka: cannot create a client for brokers %s: %s", brokers, err);
        else conf = NULL;
    }
    if (conf) rd_kafka_conf_destroy(conf);
    if (rc) pthread_mutex_destroy(&c->mu);
    c->consumer = type == RD_KAFKA_CONSUMER;
    return rc;
}

static void client_free(client *c) {
    if (!c->rk) return;
    if (c->consumer) rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    c->rk = NULL;
    pthread_mutex_destroy(&c->mu);
}

/* A consumer that never commits by itself and stops at errors instead of
 * jumping (auto.offset.reset = error). librdkafka needs a group.id for
 * assign(); with auto commit off it joins nothing and commits nothing. */
static int consumer_new(client *c, const sp_kafka_opts *o) {
    const char *kv[] = {"group.id", o->group, "enable.auto.commit", "false", "enable.auto.offset.store", "false",
                        "enable.partition.eof", "true", "auto.offset.reset", "error", "fetch.wait.max.ms", "100",
                        NULL};
    return client_new(c, RD_KAFKA_CONSUMER, o->brokers, kv, NULL);
}

/* SP_EEXTERNAL naming what failed, where, and librdkafka's last words. */
static int fail(client *c, const sp_kafka_opts *o, int attempts, const char *what, rd_kafka_resp_err_t e) {
    char last[256];
    pthread_mutex_lock(&c->mu);
    snprintf(last, sizeof last, "%s", c->last);
    pthread_mutex_unlock(&c->mu);
    return sp_err(SP_EEXTERNAL, "kafka: %s of topic %s on brokers %s failed after %d attempt%s of %d ms: %s%s%s%s",
                  what, o->topic, o->brokers, attempts, attempts == 1 ? "" : "s", o->timeout_ms, rd_kafka_err2str(e),
                  last[0] ? " (last client log: " : "", last, last[0] ? ")" : "");
}

/* Sleeps before attempt a + 1: 100 ms, 200 ms, 400 ms, ... at most timeout_ms. */
static void backoff(const sp_kafka_opts *o, int a) {
    long ms = 100L << (a < 16 ? a : 16);
    if (ms > o->timeout_ms) ms = o->timeout_ms;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Retry loop around one broker call (an expression of type rd_kafka_resp_err_t). */
#define RETRY(o, e, call)                                  \
    do {                                                   \
        for (int a_ = 0;; a_++) {                          \
            (e) = (call);                                  \
            if (!(e) || a_ >= (o)->retries) break;         \
            backoff((o), a_);                              \
        }                                                  \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static rd_kafka_resp_err_t meta_count(client *c, const char *topic, int timeout_ms, int32_t *count) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(c->rk, topic, NULL);
    if (!t) return rd_kafka_last_error();
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(c->rk, 0, t, &md, timeout_ms);
    if (!e) {
        if (md->topic_cnt != 1 || md->topics[0].partition_cnt <= 0)
            e = md->topic_cnt == 1 && md->topics[0].err ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        else if (md->topics[0].err) e = md->topics[0].err;
        else *count = md->topics[0].partition_cnt;
    }
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return e;
}

int sp_kafka_partitions(const sp_kafka_opts *o, int32_t *count) {
    client c;
    int rc = consumer_new(&c, o);
    if (rc) return rc;
    rd_kafka_resp_err_t e;
    RETRY(o, e, meta_count(&c, o->topic, o->timeout_ms, count));
    if (e) rc = fail(&c, o, o->retries + 1, "metadata", e);
    client_free(&c);
    return rc;
}

/* ---------- reading a window ---------- */

enum { S_DONE, S_PROBE, S_WAIT, S_READ }; /* S_WAIT: to read, after the partitions before it */

typedef struct {
    const sp_kafka_opts *o;
    client c;
    int64_t t0, t1;
    int n;
    sp_kafka_span *spans;
    int *state, *started, *skip; /* per partition index */
    int *index;                  /* partition number -> index, -1 if not ours */
    int32_t maxp;
    sp_kafka_msg_fn fn;
    void *arg;
} reader;

static int idx_of(const reader *r, int32_t p) { return p >= 0 && p <= r->maxp ? r->index[p] : -1; }

/* Errors librdkafka recovers from by itself (reconnects, leader moves):
 * the no-progress limit bounds how long we let it try. */
static int transient(rd_kafka_resp_err_t e) {
    switch (e) {
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
        return 1;
    default:
        return 0;
    }
}

static void pause_one(reader *r, int32_t p) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    if (!l) return; /* only an optimisation: messages of done partitions are dropped anyway */
    rd_kafka_topic_partition_list_add(l, r->o->topic, p);
    rd_kafka_pause_partitions(r->c.rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Assigns the partitions in state `st` at offset = off(i) on client c. */
static int assign_state(reader *r, client *c, int st, int probe) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->n);
    if (!l) return SP_ENOMEM;
    for (int i = 0; i < r->n; i++)
        if (r->state[i] == st)
            rd_kafka_topic_partition_list_add(l, r->o->topic, r->spans[i].partition)->offset =
                probe ? r->spans[i].high - 1 : r->skip[i] ? r->spans[i].low : r->spans[i].start;
    rd_kafka_resp_err_t e = rd_kafka_assign(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return e ? fail(c, r->o, 1, "assign", e) : SP_OK;
}

/* Polls c until no partition is in state `st`; handle(i, m) moves them on.
 * Fails when nothing arrives for timeout_ms * (retries + 1). */
static int poll_until(reader *r, client *c, int st, int (*handle)(reader *, int, rd_kafka_message_t *)) {
    const sp_kafka_opts *o = r->o;
    double limit = (double)o->timeout_ms * (o->retries + 1) / 1000.0, last = now_s();
    int rc = SP_OK;
    for (;;) {
        int left = 0;
        for (int i = 0; i < r->n; i++) left += r->state[i] == st;
        if (!left) break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (!m) {
            if (now_s() - last > limit) {
                char parts[128] = "";
                size_t k = 0;
                for (int i = 0; i < r->n && k + 12 < sizeof parts; i++)
                    if (r->state[i] == st)
                        k += (size_t)snprintf(parts + k, sizeof parts - k, "%s%d", k ? "," : "", r->spans[i].partition);
                rc = fail(c, o, o->retries + 1, "reading partitions", RD_KAFKA_RESP_ERR__TIMED_OUT);
                rc = sp_err(rc, "%s; no message for %.1f s (kafka.timeout_ms x (kafka.retries + 1)) from partitions %s",
                            sp_errmsg(), limit, parts);
                break;
            }
            continue;
        }
        int i = m->rkt && !strcmp(rd_kafka_topic_name(m->rkt), o->topic) ? idx_of(r, m->partition) : -1;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (!transient(m->err)) {
                char what[96];
                snprintf(what, sizeof what, "reading partition %d at offset %lld", (int)m->partition,
                         (long long)m->offset);
                rc = fail(c, o, 1, what, m->err);
            }
        } else if (i >= 0 && r->state[i] == st) {
            last = now_s();
            rc = handle(r, i, m);
        }
        rd_kafka_message_destroy(m);
        if (rc) break;
    }
    return rc;
}

/* Probe: the message at high - 1, or the end of the partition. */
static int handle_probe(reader *r, int i, rd_kafka_message_t *m) {
    sp_kafka_span *s = &r->spans[i];
    int64_t ts = m->err ? -1 : rd_kafka_message_timestamp(m, NULL);
    if (ts >= r->t0) { /* the broker said "none" but there is one: scan */
        r->state[i] = S_READ;
        r->skip[i] = 1;
        s->scanned = 1;
    } else {
        r->state[i] = S_DONE;
        s->start = s->end = s->high;
    }
    return SP_OK;
}

static void finish(reader *r, int i, int64_t end) {
    sp_kafka_span *s = &r->spans[i];
    s->end = end;
    if (!r->started[i]) s->start = end;
    r->state[i] = S_DONE;
    pause_one(r, s->partition);
}

static int handle_read(reader *r, int i, rd_kafka_message_t *m) {
    sp_kafka_span *s = &r->spans[i];
    if (m->err) { /* end of partition */
        if (m->offset >= s->high) finish(r, i, s->high);
        return SP_OK;
    }
    if (m->offset >= s->high) {
        finish(r, i, s->high);
        return SP_OK;
    }
    int64_t ts = rd_kafka_message_timestamp(m, NULL); /* -1: none, never stops or skips */
    if (r->skip[i] && ts >= 0 && ts < r->t0) return SP_OK; /* before the window, while scanning */
    if (!r->started[i]) {
        r->started[i] = 1;
        r->skip[i] = 0;
        s->start = m->offset;
    }
    if (ts >= r->t1) {
        finish(r, i, m->offset);
        return SP_OK;
    }
    int rc = r->fn(r->arg, m->partition, m->offset, ts, m->key, m->key_len, m->payload, m->len);
    s->messages++;
    if (!rc && m->offset + 1 >= s->high) finish(r, i, s->high);
    return rc;
}

/* Start offsets and watermarks of every partition; decides each state. */
static int plan(reader *r) {
    const sp_kafka_opts *o = r->o;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(r->n);
    if (!l) return SP_ENOMEM;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int a = 0;; a++) {
        /* offsets_for_times first, watermarks after: then start <= high. */
        for (int i = 0; i < r->n; i++) {
            if (!a) rd_kafka_topic_partition_list_add(l, o->topic, r->spans[i].partition);
            l->elems[i].offset = r->t0;
            l->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
        }
        e = rd_kafka_offsets_for_times(r->c.rk, l, o->timeout_ms);
        for (int i = 0; !e && i < r->n; i++) e = l->elems[i].err;
        if (!e || a >= o->retries) break;
        backoff(o, a);
    }
    int rc = e ? fail(&r->c, o, o->retries + 1, "offsets_for_times", e) : SP_OK;
    for (int i = 0; !rc && i < r->n; i++) {
        sp_kafka_span *s = &r->spans[i];
        RETRY(o, e, rd_kafka_query_watermark_offsets(r->c.rk, o->topic, s->partition, &s->low, &s->high,
                                                     o->timeout_ms));
        if (e) {
            char what[64];
            snprintf(what, sizeof what, "watermarks of partition %d", (int)s->partition);
            rc = fail(&r->c, o, o->retries + 1, what, e);
            break;
        }
        int64_t at = l->elems[i].offset;
        if (s->high <= s->low) {
            r->state[i] = S_DONE;
            s->start = s->end = s->high;
        } else if (at >= 0) {
            r->state[i] = at < s->high ? S_READ : S_DONE;
            s->start = at < s->high ? at : s->high;
            s->end = s->high;
            r->started[i] = 1;
        } else r->state[i] = S_PROBE;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

int sp_kafka_read_window(const sp_kafka_opts *o, const int32_t *parts, int nparts, int64_t t0_ms, int64_t t1_ms,
                         sp_kafka_msg_fn fn, void *arg, sp_kafka_span *spans) {
    if (nparts <= 0) return SP_OK;
    reader r = {.o = o, .t0 = t0_ms, .t1 = t1_ms, .n = nparts, .spans = spans, .maxp = -1, .fn = fn, .arg = arg};
    for (int i = 0; i < nparts; i++) {
        if (parts[i] < 0) return sp_err(SP_EINTERNAL, "kafka: partition %d", (int)parts[i]);
        if (parts[i] > r.maxp) r.maxp = parts[i];
        memset(&spans[i], 0, sizeof spans[i]);
        spans[i].partition = parts[i];
    }
    r.state = calloc((size_t)nparts, sizeof *r.state);
    r.started = calloc((size_t)nparts, sizeof *r.started);
    r.skip = calloc((size_t)nparts, sizeof *r.skip);
    r.index = malloc(sizeof *r.index * ((size_t)r.maxp + 1));
    int rc = r.state && r.started && r.skip && r.index ? SP_OK : SP_ENOMEM;
    for (int32_t p = 0; !rc && p <= r.maxp; p++) r.index[p] = -1;
    for (int i = 0; !rc && i < nparts; i++) {
        if (r.index[parts[i]] >= 0) rc = sp_err(SP_EINTERNAL, "kafka: partition %d listed twice", (int)parts[i]);
        r.index[parts[i]] = i;
    }
    if (!rc) rc = consumer_new(&r.c, o);
    if (rc) goto out;
    rc = plan(&r);
    int nprobe = 0;
    for (int i = 0; !rc && i < nparts; i++) nprobe += r.state[i] == S_PROBE;
    if (!rc && nprobe) {
        /* A separate client: nothing fetched for the probe can reach the read. */
        client pc;
        rc = consumer_new(&pc, o);
        if (!rc) {
            rc = assign_state(&r, &pc, S_PROBE, 1);
            if (!rc) rc = poll_until(&r, &pc, S_PROBE, handle_probe);
            client_free(&pc);
        }
    }
    /* One partition after another, in the order given: the callback sees a
     * deterministic sequence (the staging file of a rerun is the same file). */
    for (int i = 0; !rc && i < nparts; i++)
        if (r.state[i] == S_READ) r.state[i] = S_WAIT;
    for (int i = 0; !rc && i < nparts; i++) {
        if (r.state[i] != S_WAIT) continue;
        r.state[i] = S_READ;
        rc = assign_state(&r, &r.c, S_READ, 0);
        if (!rc) rc = poll_until(&r, &r.c, S_READ, handle_read);
    }
    if (!rc) rd_kafka_assign(r.c.rk, NULL);
    client_free(&r.c);
out:
    free(r.state);
    free(r.started);
    free(r.skip);
    free(r.index);
    return rc;
}

/* ---------- offsets of the group ---------- */

static int committed_list(client *c, const sp_kafka_opts *o, rd_kafka_topic_partition_list_t *l) {
    rd_kafka_resp_err_t e;
    for (int a = 0;; a++) {
        for (int i = 0; i < l->cnt; i++) {
            l->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
            l->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
        }
        e = rd_kafka_committed(c->rk, l, o->timeout_ms);
        for (int i = 0; !e && i < l->cnt; i++) e = l->elems[i].err;
        if (!e || a >= o->retries) break;
        backoff(o, a);
    }
    return e ? fail(c, o, o->retries + 1, "reading committed offsets", e) : SP_OK;
}

int sp_kafka_committed(const sp_kafka_opts *o, const int32_t *parts, int n, int64_t *offsets) {
    if (n <= 0) return SP_OK;
    client c;
    int rc = consumer_new(&c, o);
    if (rc) return rc;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    if (!l) rc = SP_ENOMEM;
    for (int i = 0; !rc && i < n; i++) rd_kafka_topic_partition_list_add(l, o->topic, parts[i]);
    if (!rc) rc = committed_list(&c, o, l);
    for (int i = 0; !rc && i < n; i++) offsets[i] = l->elems[i].offset >= 0 ? l->elems[i].offset : -1;
    if (l) rd_kafka_topic_partition_list_destroy(l);
    client_free(&c);
    return rc;
}

int sp_kafka_commit(const sp_kafka_opts *o, const sp_kafka_span *spans, int n, int *ncommitted) {
    if (ncommitted) *ncommitted = 0;
    if (n <= 0) return SP_OK;
    client c;
    int rc = consumer_new(&c, o);
    if (rc) return rc;
    rd_kafka_topic_partition_list_t *cur = rd_kafka_topic_partition_list_new(n),
                                    *todo = rd_kafka_topic_partition_list_new(n);
    if (!cur || !todo) rc = SP_ENOMEM;
    for (int i = 0; !rc && i < n; i++) rd_kafka_topic_partition_list_add(cur, o->topic, spans[i].partition);
    if (!rc) rc = committed_list(&c, o, cur);
    for (int i = 0; !rc && i < n; i++)
        if (cur->elems[i].offset < spans[i].end) /* INVALID (none) is negative */
            rd_kafka_topic_partition_list_add(todo, o->topic, spans[i].partition)->offset = spans[i].end;
    if (!rc && todo->cnt) {
        rd_kafka_resp_err_t e;
        for (int a = 0;; a++) {
            e = rd_kafka_commit(c.rk, todo, 0);
            for (int i = 0; !e && i < todo->cnt; i++) e = todo->elems[i].err;
            if (!e || a >= o->retries) break;
            backoff(o, a);
        }
        if (e) {
            char what[96];
            snprintf(what, sizeof what, "committing offsets for group %s", o->group);
            rc = fail(&c, o, o->retries + 1, what, e);
        } else if (ncommitted) *ncommitted = todo->cnt;
    }
    if (cur) rd_kafka_topic_partition_list_destroy(cur);
    if (todo) rd_kafka_topic_partition_list_destroy(todo);
    client_free(&c);
    return rc;
}

/* ---------- producing ---------- */

/* Delivery report: the message's opaque is its status slot. */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->_private) *(rd_kafka_resp_err_t *)m->_private = m->err;
}

int sp_kafka_produce(const char *brokers, const char *topic, const sp_kafka_msg *msgs, size_t n, int timeout_ms) {
    if (!n) return SP_OK;
    char tmo[32];
    snprintf(tmo, sizeof tmo, "%d", timeout_ms);
    const char *kv[] = {"enable.idempotence", "true", "acks", "all", "message.timeout.ms", tmo, "linger.ms", "5",
                        NULL};
    sp_kafka_opts o = {.brokers = brokers, .topic = topic, .timeout_ms = timeout_ms};
    rd_kafka_resp_err_t *st = malloc(sizeof *st * n); /* delivery status per message */
    if (!st) return SP_ENOMEM;
    for (size_t i = 0; i < n; i++) st[i] = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    client c;
    int rc = client_new(&c, RD_KAFKA_PRODUCER, brokers, kv, dr_cb);
    if (rc) {
        free(st);
        return rc;
    }
    for (size_t i = 0; !rc && i < n; i++) {
        const sp_kafka_msg *m = &msgs[i];
        rd_kafka_resp_err_t e;
        double t0 = now_s();
        while ((e = rd_kafka_producev(c.rk, RD_KAFKA_V_TOPIC(topic),
                                      RD_KAFKA_V_PARTITION(m->partition < 0 ? RD_KAFKA_PARTITION_UA : m->partition),
                                      RD_KAFKA_V_KEY(m->key, m->key ? m->klen : 0),
                                      RD_KAFKA_V_VALUE((void *)m->value, m->value ? m->vlen : 0),
                                      RD_KAFKA_V_TIMESTAMP(m->ts_ms), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_OPAQUE(&st[i]), RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
               now_s() - t0 < timeout_ms / 1000.0)
            rd_kafka_poll(c.rk, 50); /* the local queue drains as deliveries complete */
        if (e) {
            char what[64];
            snprintf(what, sizeof what, "producing message %zu", i + 1);
            rc = fail(&c, &o, 1, what, e);
        }
    }
    /* Waits for every delivery report (message.timeout.ms bounds each). */
    rd_kafka_resp_err_t fe = rd_kafka_flush(c.rk, timeout_ms + 1000);
    char fatal[256];
    rd_kafka_resp_err_t ff = rd_kafka_fatal_error(c.rk, fatal, sizeof fatal);
    if (!rc && ff) rc = sp_err(SP_EEXTERNAL, "kafka: idempotent producer to topic %s on brokers %s failed: %s",
                               topic, brokers, fatal);
    for (size_t i = 0; !rc && i < n; i++)
        if (st[i]) {
            char what[64];
            snprintf(what, sizeof what, "delivery of message %zu of %zu", i + 1, n);
            rc = fail(&c, &o, 1, what, st[i] == RD_KAFKA_RESP_ERR__IN_PROGRESS && fe ? fe : st[i]);
        }
    if (fe) rd_kafka_purge(c.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT); /* destroy must not wait */
    client_free(&c);
    free(st);
    return rc;
}

int sp_kafka_announce(const char *brokers, const char *topic, const char *key, const void *payload, size_t len,
                      int timeout_ms) {
    sp_kafka_msg m = {.partition = -1, .key = key, .klen = key ? strlen(key) : 0, .value = payload, .vlen = len};
    return sp_kafka_produce(brokers, topic, &m, 1, timeout_ms);
}
