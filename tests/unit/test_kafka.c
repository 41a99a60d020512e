/* test_kafka: io/kafka.c and the publish stage against librdkafka's mock
 * cluster (a real Kafka-protocol broker on loopback, in this process): window
 * start/stop per partition, rereads, commits that never move backwards, the
 * idempotent producer and publish's one message, and bounded failure when no
 * broker answers. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "fsutil.h"
#include "json.h"
#include "kafka.h"
#include "publish.h"
#include "sp_base.h"

#define T0 1763769600000LL /* 2025-11-22T00:00:00Z */
#define T1 (T0 + SP_DAY_MS)

static const char *brokers;

/* What a read delivered: lines "p:offset ts key value" in arrival order. */
typedef struct {
    char line[16][256];
    int n;
} got_t;

static int collect(void *arg, int32_t p, int64_t off, int64_t ts, const void *key, size_t klen, const void *val,
                   size_t vlen) {
    got_t *g = arg;
    if (g->n == 16) return SP_ENOMEM;
    snprintf(g->line[g->n++], sizeof g->line[0], "%d:%lld %lld %.*s %.*s", (int)p, (long long)off, (long long)ts,
             (int)klen, key ? (const char *)key : "", (int)vlen, val ? (const char *)val : "");
    return 0;
}


static void produce(const char *topic, int32_t p, int64_t ts, const char *value) {
    sp_kafka_msg m = {.partition = p, .ts_ms = ts, .key = "k", .klen = 1, .value = value, .vlen = strlen(value)};
    CHECK_RC(sp_kafka_produce(brokers, topic, &m, 1, 5000), SP_OK);
}

static sp_kafka_opts opts(const char *topic, const char *group) {
    return (sp_kafka_opts){brokers, topic, group, 2, 2000};
}

/* ev, 4 partitions: p0 crosses both window edges, p1 is all before, p2 is
 * empty, p3 is all inside (ends at the high watermark). */
static void test_window(void) {
    int64_t p0[] = {T0 - 5000, T0 - 1, T0, T0 + 10, T1 - 1, T1, T0 + 20};
    for (int i = 0; i < 7; i++) {
        char v[32];
        snprintf(v, sizeof v, "p0-%d", i);
        produce("ev", 0, p0[i], v);
    }
    produce("ev", 1, T0 - 100, "p1-0");
    produce("ev", 1, T0 - 50, "p1-1");
    produce("ev", 3, T0 + 1, "p3-0");
    produce("ev", 3, T0 + 2, "p3-1");

    sp_kafka_opts o = opts("ev", "t-window");
    int32_t np = 0;
    CHECK_RC(sp_kafka_partitions(&o, &np), SP_OK);
    CHECK_EQ_INT(np, 4);

    int32_t parts[] = {0, 1, 2, 3};
    sp_kafka_span s[4];
    static got_t g;
    CHECK_RC(sp_kafka_read_window(&o, parts, 4, T0, T1, collect, &g, s), SP_OK);
    CHECK_EQ_INT(g.n, 5);
    /* partition after partition in the order given, each in offset order */
    int64_t want_ts[] = {T0, T0 + 10, T1 - 1, T0 + 1, T0 + 2};
    const char *want_pos[] = {"0:2", "0:3", "0:4", "3:0", "3:1"}, *want_val[] = {"p0-2", "p0-3", "p0-4", "p3-0", "p3-1"};
    for (int i = 0; i < 5 && i < g.n; i++) {
        char want[128];
        snprintf(want, sizeof want, "%s %lld k %s", want_pos[i], (long long)want_ts[i], want_val[i]);
        CHECK_STR(g.line[i], want);
    }
    /* p0: start at the first ts >= T0 (offset 2), stop at the first ts >= T1 (offset 5) */
    CHECK_EQ_INT(s[0].start, 2);
    CHECK_EQ_INT(s[0].end, 5);
    CHECK_EQ_INT(s[0].high, 7);
    CHECK_EQ_U64(s[0].messages, 3);
    /* the mock answers every timestamp lookup with "none": the start was found by scanning */
    CHECK_EQ_INT(s[0].scanned, 1);
    /* p1: only earlier messages, nothing to read; start = end = high */
    CHECK_EQ_INT(s[1].start, 2);
    CHECK_EQ_INT(s[1].end, 2);
    CHECK_EQ_INT(s[1].scanned, 0);
    CHECK_EQ_U64(s[1].messages, 0);
    /* p2: empty */
    CHECK_EQ_INT(s[2].start, 0);
    CHECK_EQ_INT(s[2].end, 0);
    CHECK_EQ_INT(s[2].high, 0);
    /* p3: all inside, the end is the high watermark */
    CHECK_EQ_INT(s[3].start, 0);
    CHECK_EQ_INT(s[3].end, 2);
    CHECK_EQ_U64(s[3].messages, 2);

    /* The same window again: the same messages (no committed offsets involved). */
    static got_t g2, g3;
    sp_kafka_span s2[4];
    CHECK_RC(sp_kafka_read_window(&o, parts, 4, T0, T1, collect, &g2, s2), SP_OK);
    CHECK_EQ_INT(g2.n, 5);
    for (int i = 0; i < 5 && i < g2.n; i++) CHECK_STR(g2.line[i], g.line[i]);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(s2[i].start, s[i].start);
        CHECK_EQ_INT(s2[i].end, s[i].end);
    }

    /* The previous day on p0 only: offsets 0 and 1, stopped by the message at exactly T0. */
    CHECK_RC(sp_kafka_read_window(&o, parts, 1, T0 - SP_DAY_MS, T0, collect, &g3, s2), SP_OK);
    CHECK_EQ_INT(g3.n, 2);
    CHECK_EQ_INT(s2[0].start, 0);
    CHECK_EQ_INT(s2[0].end, 2);

    /* Commits: span ends, then an older date's smaller ends leave them alone. */
    sp_kafka_opts oc = opts("ev", "t-commit");
    int64_t off[4];
    CHECK_RC(sp_kafka_committed(&oc, parts, 4, off), SP_OK);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(off[i], -1);
    int done = -1;
    CHECK_RC(sp_kafka_commit(&oc, s, 4, &done), SP_OK);
    CHECK_EQ_INT(done, 4);
    CHECK_RC(sp_kafka_committed(&oc, parts, 4, off), SP_OK);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(off[i], s[i].end);
    sp_kafka_span older[1] = {{.partition = 0, .end = 2}};
    CHECK_RC(sp_kafka_commit(&oc, older, 1, &done), SP_OK);
    CHECK_EQ_INT(done, 0);
    CHECK_RC(sp_kafka_committed(&oc, parts, 1, off), SP_OK);
    CHECK_EQ_INT(off[0], 5);
}

/* The announcement and publish: exactly one message, readable back. */
static void test_publish(void) {
    const char *payload = "{\"date\":\"2025-11-22\"}";
    CHECK_RC(sp_kafka_announce(brokers, "ann", "2025-11-22", payload, strlen(payload), 5000), SP_OK);
    sp_kafka_opts o = opts("ann", "t-ann");
    int32_t p0 = 0;
    sp_kafka_span s;
    static got_t g, gp, gq;
    CHECK_RC(sp_kafka_read_window(&o, &p0, 1, 0, INT64_MAX, collect, &g, &s), SP_OK);
    CHECK_EQ_INT(g.n, 1);
    CHECK_MSG(strstr(g.line[0], " 2025-11-22 {\"date\":\"2025-11-22\"}") != NULL, "read back: %s", g.line[0]);

    char dir[] = "/tmp/sp_test_kafka_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sub[256], path[300];
    snprintf(sub, sizeof sub, "%s/2025-11-22", dir);
    CHECK_RC(sp_mkdir_p(sub), SP_OK);
    snprintf(path, sizeof path, "%s/MANIFEST.json", sub);
    const char *manifest = "{\"format\": \"sagepipe-shards\", \"format_version\": 1, \"date\": \"2025-11-22\","
                           " \"entities\": {\"items\": {\"count\": 123, \"dim\": 8}, \"users\": {\"count\": 45}}}";
    sp_config *cfg = NULL;
    CHECK_RC(sp_config_new(&cfg), SP_OK);
    char set[400];
    snprintf(set, sizeof set, "export.dir=%s", dir);
    CHECK_RC(sp_config_set(cfg, set), SP_OK);
    snprintf(set, sizeof set, "kafka.brokers=%s", brokers);
    CHECK_RC(sp_config_set(cfg, set), SP_OK);
    CHECK_RC(sp_config_set(cfg, "kafka.publish_topic=pub"), SP_OK);
    CHECK_RC(sp_config_set(cfg, "kafka.publish=true"), SP_OK);
    sp_run_ctx ctx = {.cfg = cfg, .date = "2025-11-22", .day_ms = T0, .rank = 0, .size = 1};
    static sp_stage_result res;
    /* no manifest yet: a usage error naming it */
    CHECK_RC(sp_publish_run(&ctx, &res), SP_EUSAGE);
    CHECK(strstr(sp_errmsg(), "MANIFEST.json") != NULL);
    CHECK_RC(sp_write_atomic(path, manifest, strlen(manifest)), SP_OK);
    memset(&res, 0, sizeof res);
    CHECK_RC(sp_publish_run(&ctx, &res), SP_OK);
    CHECK_EQ_INT(res.ncounts, 1);
    CHECK_EQ_U64(res.count[0], 1);

    sp_kafka_opts op = opts("pub", "t-pub");
    CHECK_RC(sp_kafka_read_window(&op, &p0, 1, 0, INT64_MAX, collect, &gp, &s), SP_OK);
    CHECK_EQ_INT(gp.n, 1);
    /* "0:0 ts 2025-11-22 {json}" */
    char *json = strstr(gp.line[0], " {");
    sp_json *j = NULL;
    CHECK_MSG(json && strstr(gp.line[0], " 2025-11-22 {") && !sp_json_parse(&j, json + 1, strlen(json + 1)),
              "message: %s", gp.line[0]);
    uint64_t items = 0, users = 0;
    CHECK_STR(sp_json_str(sp_json_get(j, "date")), "2025-11-22");
    CHECK_STR(sp_json_str(sp_json_get(j, "sagepipe_version")), SAGEPIPE_VERSION);
    const char *mp = sp_json_str(sp_json_get(j, "manifest"));
    CHECK_MSG(mp && mp[0] == '/' && strstr(mp, "/2025-11-22/MANIFEST.json"), "manifest path %s", mp ? mp : "(null)");
    CHECK(sp_json_u64(sp_json_get(sp_json_get(j, "counts"), "items"), &items) == 0);
    CHECK(sp_json_u64(sp_json_get(sp_json_get(j, "counts"), "users"), &users) == 0);
    CHECK_EQ_U64(items, 123);
    CHECK_EQ_U64(users, 45);
    CHECK_EQ_INT(strlen(sp_json_str(sp_json_get(j, "manifest_xxh64"))), 16);
    sp_json_free(j);

    /* a manifest of another date is refused, and nothing more is produced */
    const char *other = "{\"format\": \"sagepipe-shards\", \"date\": \"2025-11-21\", \"entities\": {}}";
    CHECK_RC(sp_write_atomic(path, other, strlen(other)), SP_OK);
    memset(&res, 0, sizeof res);
    CHECK_RC(sp_publish_run(&ctx, &res), SP_EFORMAT);
    CHECK_RC(sp_kafka_read_window(&op, &p0, 1, 0, INT64_MAX, collect, &gq, &s), SP_OK);
    CHECK_EQ_INT(gq.n, 1);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
    sp_config_free(cfg);
}

/* A loopback port nobody listens on. */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof a) && !getsockname(fd, (struct sockaddr *)&a, &len))
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_down(void) {
    char bad[64];
    snprintf(bad, sizeof bad, "127.0.0.1:%d", closed_port());
    sp_kafka_opts o = {bad, "ev", "t-down", 1, 300};
    int32_t np = 0, p0 = 0;
    double t = now_s();
    CHECK_RC(sp_kafka_partitions(&o, &np), SP_EEXTERNAL);
    CHECK_MSG(strstr(sp_errmsg(), bad) && strstr(sp_errmsg(), "after 2 attempts"), "message: %s", sp_errmsg());
    sp_kafka_span s;
    static got_t g;
    CHECK_RC(sp_kafka_read_window(&o, &p0, 1, T0, T1, collect, &g, &s), SP_EEXTERNAL);
    CHECK_RC(sp_kafka_announce(bad, "ann", "k", "v", 1, 500), SP_EEXTERNAL);
    CHECK(strstr(sp_errmsg(), bad) != NULL);
    t = now_s() - t;
    CHECK_MSG(t < 8, "giving up took %.1f s", t);
}

static void quiet(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk, (void)level, (void)fac, (void)buf;
}

int main(void) {
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet);
    rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    rd_kafka_mock_cluster_t *mc = host ? rd_kafka_mock_cluster_new(host, 1) : NULL;
    CHECK_MSG(mc != NULL, "cannot start librdkafka's mock cluster: %s", host ? "" : err);
    if (!mc) return CHECK_DONE();
    brokers = rd_kafka_mock_cluster_bootstraps(mc);
    CHECK(!rd_kafka_mock_topic_create(mc, "ev", 4, 1));
    CHECK(!rd_kafka_mock_topic_create(mc, "ann", 1, 1));
    CHECK(!rd_kafka_mock_topic_create(mc, "pub", 1, 1));
    test_window();
    test_publish();
    test_down();
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(host);
    return CHECK_DONE();
}
