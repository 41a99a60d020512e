/* mock_broker: the Kafka side of the Kafka tests (a test helper, not a test).
 * `serve` runs librdkafka's mock cluster — a real Kafka-protocol broker on
 * loopback — until stdin closes or SIGINT/SIGTERM; the other modes are
 * clients built on io/kafka.h (what sagepipe itself uses):
 *   mock_broker serve TOPIC:PARTITIONS...       prints the bootstrap servers, one line
 *   mock_broker produce BROKERS TOPIC           stdin: partition TAB ts_ms TAB key TAB value
 *                                               (partition -1 = by key, key "-" = none)
 *   mock_broker committed BROKERS TOPIC GROUP   prints "partition TAB offset" (-1 = none)
 *   mock_broker dump BROKERS TOPIC              prints "partition TAB offset TAB ts_ms TAB key TAB value"
 * Exit status: 0 ok, 2 usage, 4 a Kafka error (message on stderr). */
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka.h"
#include "sp_base.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }
static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk, (void)level, (void)fac, (void)buf; /* the cluster's host client has no brokers of its own */
}

static int serve(int argc, char **argv) {
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "mock_broker: %s\n", err);
        return 4;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
    int rc = mc ? 0 : 4;
    for (int i = 0; !rc && i < argc; i++) {
        char name[256];
        int parts;
        if (sscanf(argv[i], "%255[^:]:%d", name, &parts) != 2 || parts < 1) {
            fprintf(stderr, "mock_broker serve: expected TOPIC:PARTITIONS, got '%s'\n", argv[i]);
            rc = 2;
        } else if (rd_kafka_mock_topic_create(mc, name, parts, 1)) {
            fprintf(stderr, "mock_broker: cannot create topic %s\n", name);
            rc = 4;
        }
    }
    if (!rc) {
        struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: read() returns EINTR */
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
        fflush(stdout);
        char buf[256];
        while (!stop) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n == 0 || (n < 0 && errno != EINTR)) break;
        }
    }
    if (mc) rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return rc;
}

/* Reads every line first (the messages point into them), then produces all. */
static int produce(const char *brokers, const char *topic) {
    size_t n = 0, mcap = 0, ncap = 0, lcap = 0;
    sp_kafka_msg *msgs = NULL;
    char **lines = NULL, *line = NULL;
    ssize_t len;
    int rc = SP_OK;
    while (!rc && (len = getline(&line, &lcap, stdin)) > 0) {
        if (line[len - 1] == '\n') line[--len] = 0;
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL, *t3 = t2 ? strchr(t2 + 1, '\t') : NULL;
        if (!t3) {
            fprintf(stderr, "mock_broker produce: line %zu: expected partition, ts_ms, key, value\n", n + 1);
            rc = SP_EUSAGE;
            break;
        }
        *t1 = *t2 = *t3 = 0;
        if (sp_grow((void **)&msgs, &mcap, n + 1, sizeof *msgs) || sp_grow((void **)&lines, &ncap, n + 1, sizeof *lines)) {
            rc = SP_ENOMEM;
            break;
        }
        lines[n] = line; /* kept: the message points into it */
        int keyed = strcmp(t2 + 1, "-") != 0;
        msgs[n++] = (sp_kafka_msg){.partition = atoi(line), .ts_ms = strtoll(t1 + 1, NULL, 10),
                                   .key = keyed ? t2 + 1 : NULL, .klen = keyed ? strlen(t2 + 1) : 0,
                                   .value = t3 + 1, .vlen = strlen(t3 + 1)};
        line = NULL;
        lcap = 0;
    }
    free(line);
    if (!rc) rc = sp_kafka_produce(brokers, topic, msgs, n, 10000);
    for (size_t i = 0; i < n; i++) free(lines[i]);
    free(lines);
    free(msgs);
    return rc;
}

/* Every partition of o->topic: *parts = 0..np-1 (malloc'd) and a spare array
 * of np elements of `each` bytes for the caller (*per, malloc'd). */
static int all_partitions(const sp_kafka_opts *o, int32_t **parts, int32_t *np, void **per, size_t each) {
    *parts = NULL;
    *per = NULL;
    int rc = sp_kafka_partitions(o, np);
    if (rc) return rc;
    *parts = malloc(sizeof **parts * (size_t)*np);
    *per = malloc(each * (size_t)*np);
    if (!*parts || !*per) return SP_ENOMEM;
    for (int32_t p = 0; p < *np; p++) (*parts)[p] = p;
    return SP_OK;
}

static int committed(const char *brokers, const char *topic, const char *group) {
    sp_kafka_opts o = {brokers, topic, group, 2, 5000};
    int32_t np = 0, *parts;
    int64_t *offs;
    int rc = all_partitions(&o, &parts, &np, (void **)&offs, sizeof *offs);
    if (!rc) rc = sp_kafka_committed(&o, parts, np, offs);
    for (int32_t p = 0; !rc && p < np; p++) printf("%d\t%" PRId64 "\n", (int)p, offs[p]);
    free(parts);
    free(offs);
    return rc;
}

static int print_msg(void *arg, int32_t p, int64_t off, int64_t ts, const void *key, size_t klen, const void *val,
                     size_t vlen) {
    (void)arg;
    printf("%d\t%" PRId64 "\t%" PRId64 "\t%.*s\t%.*s\n", (int)p, off, ts, key ? (int)klen : 1,
           key ? (const char *)key : "-", (int)vlen, val ? (const char *)val : "");
    return 0;
}

static int dump(const char *brokers, const char *topic) {
    sp_kafka_opts o = {brokers, topic, "mock_broker-dump", 2, 5000};
    int32_t np = 0, *parts;
    sp_kafka_span *spans;
    int rc = all_partitions(&o, &parts, &np, (void **)&spans, sizeof *spans);
    if (!rc) rc = sp_kafka_read_window(&o, parts, np, 0, INT64_MAX, print_msg, NULL, spans);
    free(parts);
    free(spans);
    return rc;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    int rc;
    if (!strcmp(mode, "serve") && argc >= 3) return serve(argc - 2, argv + 2);
    if (!strcmp(mode, "produce") && argc == 4) rc = produce(argv[2], argv[3]);
    else if (!strcmp(mode, "committed") && argc == 5) rc = committed(argv[2], argv[3], argv[4]);
    else if (!strcmp(mode, "dump") && argc == 4) rc = dump(argv[2], argv[3]);
    else {
        fprintf(stderr, "usage: mock_broker serve TOPIC:PARTITIONS... | produce BROKERS TOPIC |\n"
                        "       committed BROKERS TOPIC GROUP | dump BROKERS TOPIC\n");
        return 2;
    }
    if (rc) fprintf(stderr, "mock_broker %s: %s (%s)\n", mode, sp_errmsg(), sp_strerror(rc));
    return rc == SP_EUSAGE ? 2 : rc ? 4 : 0;
}
