/* kafka: the librdkafka side of sagepipe (DESIGN §3, §4): reading one date's
 * time window of the events topic partition by partition (assign, never
 * subscribe), committing the window's end offsets for a consumer group, and
 * producing messages with an idempotent producer (the publish announcement).
 * No MPI and no config here: jobs/ decides which partitions a rank reads.
 * Every call opens its own client and closes it before returning. Broker
 * calls are retried `retries` times with exponential backoff (100 ms, 200 ms,
 * ... capped at timeout_ms) and then fail with SP_EEXTERNAL naming the brokers,
 * the topic and librdkafka's last error. */
#ifndef SP_KAFKA_H
#define SP_KAFKA_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *brokers; /* bootstrap.servers */
    const char *topic;
    const char *group;   /* consumer group: commits (and librdkafka's assign() needs one) */
    int retries;         /* extra attempts per broker call (kafka.retries) */
    int timeout_ms;      /* one attempt's limit (kafka.timeout_ms) */
} sp_kafka_opts;

/* What was read from one partition. [start, end) are offsets: start is the
 * first offset whose message timestamp is >= t0 (Kafka's offsets-for-times
 * answer; == end when there is none), end the first offset not read: the
 * first message with timestamp >= t1, or the high watermark queried at the
 * start, whichever comes first. `end` is the offset to commit. */
typedef struct {
    int32_t partition;
    int64_t start, end;
    int64_t low, high; /* watermarks when the read began */
    uint64_t messages; /* messages handed to the callback (all of [start, end)
                          except transaction markers and aborted records) */
    int scanned;       /* 1: the broker gave no timestamp lookup, start was found by
                          scanning from `low` (see sp_kafka_read_window) */
} sp_kafka_span;

/* Called once per message of the window: partition after partition in the
 * order given, each in offset order. key/value may be NULL (then the length is 0); they
 * are valid only during the call. A non-zero return stops the read and is
 * returned by sp_kafka_read_window. */
typedef int (*sp_kafka_msg_fn)(void *arg, int32_t partition, int64_t offset, int64_t ts_ms, const void *key,
                               size_t klen, const void *value, size_t vlen);

/* Number of partitions of o->topic (metadata request). SP_EEXTERNAL when the
 * brokers cannot be reached or do not know the topic. */
int sp_kafka_partitions(const sp_kafka_opts *o, int32_t *count);

/* Reads the time window [t0_ms, t1_ms) of the listed partitions of o->topic
 * and hands each message to fn; spans[i] (caller's array of nparts) receives
 * what was read from parts[i]. The message timestamp (CreateTime or
 * LogAppendTime) is used only to find where to start and where to stop; what
 * is inside the window by content is the callback's business.
 * Start: rd_kafka_offsets_for_times(t0). When it answers "no such message"
 * for a non-empty partition, the partition's last message is read: if its
 * timestamp is >= t0 the broker cannot look timestamps up (librdkafka's mock
 * cluster, brokers before Kafka 0.10.1) and the start is found by reading from
 * the low watermark and skipping messages with timestamps < t0 up to the first
 * one >= t0 (the same offset as a broker lookup when timestamps increase along
 * the partition; span.scanned = 1); else there is nothing to read.
 * Partitions are probed together but read one at a time (one fetch stream;
 * the ranks of a job read in parallel). Reading the same window again gives
 * the same messages in the same order as long as the retention has not removed
 * them; committed offsets play no part.
 * Errors: SP_EEXTERNAL (brokers unreachable after the retries, an offset
 * out of range, no progress for timeout_ms * (retries + 1)), SP_ENOMEM, or
 * fn's return value. */
int sp_kafka_read_window(const sp_kafka_opts *o, const int32_t *parts, int nparts, int64_t t0_ms, int64_t t1_ms,
                         sp_kafka_msg_fn fn, void *arg, sp_kafka_span *spans);

/* Commits spans[i].end for o->group on o->topic (explicit offsets,
 * synchronous). A partition whose committed offset is already >= end is left
 * as it is, so a backfill of an older date never moves the group backwards.
 * *ncommitted (may be NULL) receives how many partitions were committed.
 * n == 0 contacts nothing. */
int sp_kafka_commit(const sp_kafka_opts *o, const sp_kafka_span *spans, int n, int *ncommitted);

/* Committed offsets of o->group for parts[0..n) of o->topic; -1 where the
 * group has none. */
int sp_kafka_committed(const sp_kafka_opts *o, const int32_t *parts, int n, int64_t *offsets);

/* One message to produce: partition -1 = the default partitioner (by key),
 * ts_ms 0 = now. key may be NULL. */
typedef struct {
    int32_t partition;
    int64_t ts_ms;
    const void *key, *value;
    size_t klen, vlen;
} sp_kafka_msg;

/* Produces msgs[0..n) to topic with enable.idempotence=true and acks=all
 * (in order per partition, no duplicates on internal retries), flushes and
 * checks every delivery report. timeout_ms bounds the whole call (it is
 * librdkafka's message.timeout.ms). SP_EEXTERNAL naming the brokers when a
 * message was not delivered. */
int sp_kafka_produce(const char *brokers, const char *topic, const sp_kafka_msg *msgs, size_t n, int timeout_ms);

/* sp_kafka_produce of one message (key, payload) to topic's key partition. */
int sp_kafka_announce(const char *brokers, const char *topic, const char *key, const void *payload, size_t len,
                      int timeout_ms);

#endif
