/* ingest: read shares of every input file on every rank, validate each row,
 * shuffle valid rows to their owner rank, then sort, deduplicate and write.
 * Reject line numbers: a rank knows the line numbers inside its share; the
 * lines of earlier shares come from an exclusive scan once a file is read,
 * and rows shuffled away carry (origin rank, local line) so duplicates found
 * at the owner are reported with their real file line too.
 * With input.events = kafka, each rank reads the date's window of its Kafka
 * partitions into <date_dir>/ingest/kafka-RRRRR.tsv ("partition:offset" then
 * the events.tsv columns) and validates that file like events.tsv; a Kafka
 * row's position is partition:offset instead of a line. The group's offsets
 * are committed after the marker (commit_after_marker). */
#include "ingest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "dist.h"
#include "json.h"
#include "kafka.h"
#include "lines.h"
#include "log.h"
#include "sfile.h"
#include "sfv.h"
#include "sort.h"
#include "sp_base.h"
#include "tsv.h"

enum { F_PIN_BOARD, F_PIN_PIN, F_DENSE, F_TOKENS, F_EVENTS, NFILES }; /* the order of sp_input_files */
_Static_assert(NFILES == SP_INPUT_FILES, "ingest reads every input file");
static const char *const *const FILE_NAMES = sp_input_files;

/* Timestamps past 9999-12-31 are rejected: day arithmetic on them (histories' windows, gaps) would overflow. */
#define TS_END ((int64_t)253402300800000)

/* New reasons go last: the order is that of the counts in _SUCCESS.json and of the rejects log line. */
enum { R_PARSE, R_BAD_ID, R_ID_RANGE, R_BAD_TS, R_WINDOW, R_ACTION, R_WEIGHT, R_SELF_LOOP, R_NAN, R_DUP,
       R_TOO_LONG, R_NUL, R_UTF8, NREASONS };
static const char *const REASONS[NREASONS] = {"parse_error", "bad_id", "id_out_of_range", "bad_timestamp",
                                              "outside_window", "unknown_action", "bad_weight", "self_loop",
                                              "nan_feature", "duplicate", "too_many_tokens", "nul_byte",
                                              "not_utf8"};

#define MAX_TOKENS 8192
#define MAX_VOCAB 64
#define LINE_BITS 40 /* a shuffled row's tag: origin rank << 40 | local line */
#define KAFKA_OFF_BITS 48 /* a Kafka row's tag: partition << 48 | offset */
#define KAFKA_OFF_MASK ((1ULL << KAFKA_OFF_BITS) - 1)
#define KAFKA_MAX_PART 65535
#define KAFKA_MAX_FIELD 1024 /* longer JSON fields cannot be valid: parse_error */

typedef struct {
    uint8_t file, reason;
    int32_t src;   /* rank whose share held the line */
    int32_t part;  /* Kafka partition (line = offset), -1 for a file row */
    uint64_t line; /* line inside that share (or global when known) */
    int known;     /* line is already global */
    char detail[112];
} reject_row;

typedef struct {
    const sp_run_ctx *ctx;
    int rank, size;
    uint64_t reject[NREASONS];
    uint64_t rows[NFILES];
    uint64_t per_reason_cap; /* rows kept per reason on this rank */
    uint64_t kept[NREASONS];
    size_t dup_last;  /* the last kept duplicate in rejects.tsv's order, when dup_last_ok */
    int dup_last_ok;
    reject_row *rj;
    size_t nrj, caprj;
    uint64_t line_offset[NFILES]; /* lines in earlier shares, for plain files */
    int line_known[NFILES];
    /* vocabularies */
    char *actions[MAX_VOCAB], *surfaces[MAX_VOCAB];
    int nactions, nsurfaces;
    uint64_t unknown_surface;
    int window_day;
    /* received rows */
    struct edge_in { uint64_t pin, board; int64_t ts; uint64_t tag; } *edges;
    size_t nedges, capedges;
    struct pp_in { uint64_t a, b; float w; uint32_t pad; uint64_t tag; } *pp;
    size_t npp, cappp;
    struct ev_in { sp_event_rec e; uint64_t tag; } *ev;
    size_t nev, capev;
    uint32_t dim;
    char *dense; /* rows of {u64 id, u64 tag, f32[dim]} */
    size_t ndense, capdense;
    char *tok; /* variable rows: {u64 pin, u64 tag, u32 n, u32 pad, u64 hash[n]} appended */
    size_t toklen, tokcap, ntok;
    char *list_buf[2];
    /* Kafka (input.events = kafka) */
    int kafka;
    int32_t cur_part; /* partition of the Kafka row being validated, -1 for file rows; reject() records it */
    const char *topic;
    sp_kafka_span *spans; /* this rank's partitions */
    int nspans;
} ingest;

/* ---------- rejects ---------- */

static void reject(ingest *g, int file, int reason, uint64_t line, int src, int known, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* a before b in rejects.tsv's order (file name, then position), for two rows
 * recorded on one rank: a share's lines (src, line) are in file order, a
 * known line is global, and Kafka rows order by (partition, offset). */
/* strcmp("kafka:<topic>", name), without building the string. */
static int kafka_cmp(const char *topic, const char *name) {
    int c = strncmp("kafka:", name, 6);
    return c ? c : strcmp(topic, name + 6);
}

static int rj_before(const ingest *g, const reject_row *a, const reject_row *b) {
    int ka = a->part >= 0, kb = b->part >= 0; /* a Kafka row's file column is "kafka:<topic>" */
    int c = ka == kb ? (ka ? 0 : strcmp(FILE_NAMES[a->file], FILE_NAMES[b->file]))
            : ka     ? kafka_cmp(g->topic, FILE_NAMES[b->file])
                     : -kafka_cmp(g->topic, FILE_NAMES[a->file]);
    if (c) return c < 0;
    if (a->part != b->part) return a->part < b->part;
    if (a->src != b->src) return a->src < b->src;
    return a->line < b->line;
}

static void reject(ingest *g, int file, int reason, uint64_t line, int src, int known, const char *fmt, ...) {
    g->reject[reason]++;
    reject_row *r;
    if (g->kept[reason] >= g->per_reason_cap) {
        /* Duplicates are found in key order, not in line order: past the cap, a
         * duplicate replaces the last kept one (in rejects.tsv's order) if it
         * comes before it, so each rank keeps its first rows by line and
         * rank 0's pick of the first rows over all ranks does not depend on the
         * rank count. Every other reason is found in line order. */
        if (reason != R_DUP || !g->per_reason_cap) return;
        reject_row cand = {.file = (uint8_t)file, .src = src, .part = g->cur_part, .line = line};
        if (!g->dup_last_ok) { /* found again only after a replacement */
            g->dup_last = SIZE_MAX;
            for (size_t i = 0; i < g->nrj; i++)
                if (g->rj[i].reason == R_DUP &&
                    (g->dup_last == SIZE_MAX || rj_before(g, &g->rj[g->dup_last], &g->rj[i])))
                    g->dup_last = i;
            g->dup_last_ok = 1;
        }
        if (g->dup_last == SIZE_MAX || !rj_before(g, &cand, &g->rj[g->dup_last])) return;
        r = &g->rj[g->dup_last];
        g->dup_last_ok = 0;
    } else {
        if (sp_grow((void **)&g->rj, &g->caprj, g->nrj + 1, sizeof *g->rj)) return; /* the count still stands */
        r = &g->rj[g->nrj++];
        g->kept[reason]++;
    }
    r->file = (uint8_t)file;
    r->reason = (uint8_t)reason;
    r->line = line;
    r->src = src;
    r->part = g->cur_part;
    r->known = known;
    /* rejects.tsv stays valid UTF-8 text: a detail is cut at a character boundary, and a byte that is not
     * UTF-8 (a message quoting a Kafka payload, say) is written as \xNN */
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    sp_text_escape(r->detail, sizeof r->detail, text, strlen(text));
    for (char *p = r->detail; *p; p++)
        if (*p == '\t' || *p == '\n' || *p == '\r') *p = ' ';
}

/* Shortened copy of a field for messages: cut at a character boundary ("..." marks the cut), bytes that
 * are not UTF-8 as \xNN. */
static const char *clip(const char *s) {
    static _Thread_local char b[48];
    size_t n = strlen(s);
    if (sp_text_escape(b, sizeof b, s, n) < n) { /* does not fit: room for the "..." */
        sp_text_escape(b, sizeof b - 3, s, n);
        memcpy(b + strlen(b), "...", 4);
    }
    return b;
}

/* Checks a row's bytes before any field is parsed (DESIGN §3: text inputs are UTF-8; a NUL byte would cut
 * the C strings the parsers see): records a nul_byte or not_utf8 reject, with the bad byte's position and
 * the bytes around it escaped, and returns 1; 0 for a row of valid text. */
static int bad_text(ingest *g, int file, const char *line, size_t len, uint64_t lno, int known) {
    size_t at = 0;
    int k = sp_text_check(line, len, &at);
    if (k == SP_TEXT_OK) return 0;
    char ex[56];
    size_t from = at > 16 ? at - 16 : 0, used = sp_text_escape(ex, sizeof ex, line + from, len - from);
    reject(g, file, k == SP_TEXT_NUL ? R_NUL : R_UTF8, lno, g->rank, known, "%s at byte %zu: '%s%s%s'",
           k == SP_TEXT_NUL ? "NUL byte" : "not valid UTF-8", at + 1, from ? "..." : "", ex,
           from + used < len ? "..." : "");
    return 1;
}

/* Parses an id field; on failure records the reject and returns -1. */
static int parse_id(ingest *g, int file, uint64_t line, int known, const char *field, const char *name, uint64_t *v) {
    int e = sp_parse_u64(field, v);
    if (!e) return 0;
    reject(g, file, e == -2 ? R_ID_RANGE : R_BAD_ID, line, g->rank, known, "%s '%s' is %s", name, clip(field),
           e == -2 ? "larger than 2^64-1" : "not an unsigned integer");
    return -1;
}

static int vocab_find(char *const *v, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], s)) return i;
    return -1;
}

/* ---------- shuffle sinks: store received rows ---------- */

static int sink_edge(void *c, int src, const void *rec, size_t len) {
    ingest *g = c;
    (void)src;
    if (len != sizeof(struct edge_in)) return sp_err(SP_EINTERNAL, "ingest: edge record of %zu bytes", len);
    if (sp_grow((void **)&g->edges, &g->capedges, g->nedges + 1, sizeof *g->edges)) return SP_ENOMEM;
    memcpy(&g->edges[g->nedges++], rec, len);
    return SP_OK;
}
static int sink_pp(void *c, int src, const void *rec, size_t len) {
    ingest *g = c;
    (void)src;
    if (len != sizeof(struct pp_in)) return sp_err(SP_EINTERNAL, "ingest: pin_pin record of %zu bytes", len);
    if (sp_grow((void **)&g->pp, &g->cappp, g->npp + 1, sizeof *g->pp)) return SP_ENOMEM;
    memcpy(&g->pp[g->npp++], rec, len);
    return SP_OK;
}
static int sink_ev(void *c, int src, const void *rec, size_t len) {
    ingest *g = c;
    (void)src;
    if (len != sizeof(struct ev_in)) return sp_err(SP_EINTERNAL, "ingest: event record of %zu bytes", len);
    if (sp_grow((void **)&g->ev, &g->capev, g->nev + 1, sizeof *g->ev)) return SP_ENOMEM;
    memcpy(&g->ev[g->nev++], rec, len);
    return SP_OK;
}
static int sink_dense(void *c, int src, const void *rec, size_t len) {
    ingest *g = c;
    (void)src;
    size_t row = 16 + 4 * (size_t)g->dim;
    if (len != row) return sp_err(SP_EINTERNAL, "ingest: dense record of %zu bytes", len);
    if (sp_grow((void **)&g->dense, &g->capdense, g->ndense + 1, row)) return SP_ENOMEM;
    memcpy(g->dense + g->ndense++ * row, rec, len);
    return SP_OK;
}
static int sink_tok(void *c, int src, const void *rec, size_t len) {
    ingest *g = c;
    (void)src;
    if (sp_grow((void **)&g->tok, &g->tokcap, g->toklen + len, 1)) return SP_ENOMEM;
    memcpy(g->tok + g->toklen, rec, len);
    g->toklen += len;
    g->ntok++;
    return SP_OK;
}

/* ---------- per-file parsing ---------- */

/* One row: line[0..len) NUL-terminated, which may hold NUL bytes (sp_tsv_keep_nul_lines): bad_text first. */
typedef int (*row_fn)(ingest *g, sp_shuffle *s, char *line, size_t len, uint64_t lno, int known);

/* A row's tag orders rows as the file does: the global line when this share
 * knows it (rank 0's share, .zst), else (origin rank, line in the share) —
 * shares are contiguous in file order, so both sort by file position. A
 * Kafka row's tag is (partition, offset): the earliest message wins. */
static uint64_t tag_of(const ingest *g, uint64_t lno, int known) {
    if (g->cur_part >= 0) return ((uint64_t)g->cur_part << KAFKA_OFF_BITS) | lno;
    return known ? lno : ((uint64_t)g->rank << LINE_BITS) | lno;
}

static int row_pin_board(ingest *g, sp_shuffle *s, char *line, size_t len, uint64_t lno, int known) {
    if (bad_text(g, F_PIN_BOARD, line, len, lno, known)) return SP_OK;
    char *f[4];
    int n = sp_tsv_split(line, f, 4);
    if (n < 2 || n > 3) {
        reject(g, F_PIN_BOARD, R_PARSE, lno, g->rank, known, "expected 2 or 3 tab-separated fields "
               "(pin_id board_id [ts_ms]), got %d", n);
        return SP_OK;
    }
    struct edge_in e = {.ts = -1, .tag = tag_of(g, lno, known)};
    if (parse_id(g, F_PIN_BOARD, lno, known, f[0], "pin_id", &e.pin) ||
        parse_id(g, F_PIN_BOARD, lno, known, f[1], "board_id", &e.board))
        return SP_OK;
    if (n == 3 && (sp_parse_i64(f[2], &e.ts) || e.ts < 0 || e.ts >= TS_END)) {
        reject(g, F_PIN_BOARD, R_BAD_TS, lno, g->rank, known, "ts_ms '%s' is not an integer in [0, %" PRId64 ") (the "
               "years 1970-9999)", clip(f[2]), TS_END);
        return SP_OK;
    }
    return sp_shuffle_put(s, sp_owner(SP_PIN, e.pin, g->size), &e, sizeof e);
}

static int row_pin_pin(ingest *g, sp_shuffle *s, char *line, size_t len, uint64_t lno, int known) {
    if (bad_text(g, F_PIN_PIN, line, len, lno, known)) return SP_OK;
    char *f[4];
    int n = sp_tsv_split(line, f, 4);
    if (n < 2 || n > 3) {
        reject(g, F_PIN_PIN, R_PARSE, lno, g->rank, known, "expected 2 or 3 tab-separated fields "
               "(pin_id pin_id [weight]), got %d", n);
        return SP_OK;
    }
    struct pp_in e = {.w = 1.0f, .tag = tag_of(g, lno, known)};
    if (parse_id(g, F_PIN_PIN, lno, known, f[0], "pin_id", &e.a) ||
        parse_id(g, F_PIN_PIN, lno, known, f[1], "pin_id", &e.b))
        return SP_OK;
    if (n == 3 && (sp_parse_f32(f[2], &e.w) || !(e.w > 0))) {
        reject(g, F_PIN_PIN, R_WEIGHT, lno, g->rank, known, "weight '%s' is not a finite number > 0", clip(f[2]));
        return SP_OK;
    }
    if (e.a == e.b) {
        reject(g, F_PIN_PIN, R_SELF_LOOP, lno, g->rank, known, "pin %" PRIu64 " linked to itself", e.a);
        return SP_OK;
    }
    return sp_shuffle_put(s, sp_owner(SP_PIN, e.a, g->size), &e, sizeof e);
}

static int row_tokens(ingest *g, sp_shuffle *s, char *line, size_t len, uint64_t lno, int known) {
    if (bad_text(g, F_TOKENS, line, len, lno, known)) return SP_OK;
    char **f = (char **)g->list_buf[0];
    int n = sp_tsv_split_ws(line, f, MAX_TOKENS + 1);
    if (n < 2) {
        reject(g, F_TOKENS, R_PARSE, lno, g->rank, known, "expected pin_id and at least one token, got %d field%s",
               n, n == 1 ? "" : "s");
        return SP_OK;
    }
    if (n > MAX_TOKENS + 1) {
        reject(g, F_TOKENS, R_TOO_LONG, lno, g->rank, known, "%d tokens, at most %d allowed", n - 1, MAX_TOKENS);
        return SP_OK;
    }
    uint64_t *rec = (uint64_t *)g->list_buf[1], pin;
    if (parse_id(g, F_TOKENS, lno, known, f[0], "pin_id", &pin)) return SP_OK;
    rec[0] = pin;
    rec[1] = tag_of(g, lno, known);
    rec[2] = (uint64_t)(n - 1);
    for (int i = 1; i < n; i++) rec[2 + i] = XXH64(f[i], strlen(f[i]), 0);
    return sp_shuffle_put(s, sp_owner(SP_PIN, pin, g->size), rec, 8 * (size_t)(n + 2));
}

static int row_events(ingest *g, sp_shuffle *s, char *line, size_t len, uint64_t lno, int known) {
    if (bad_text(g, F_EVENTS, line, len, lno, known)) return SP_OK;
    char *f[6];
    int n = sp_tsv_split(line, f, 6);
    if (n < 4 || n > 5) {
        reject(g, F_EVENTS, R_PARSE, lno, g->rank, known, "expected 4 or 5 tab-separated fields "
               "(user_id pin_id action ts_ms [surface]), got %d", n);
        return SP_OK;
    }
    struct ev_in e = {.tag = tag_of(g, lno, known)};
    if (parse_id(g, F_EVENTS, lno, known, f[0], "user_id", &e.e.user) ||
        parse_id(g, F_EVENTS, lno, known, f[1], "pin_id", &e.e.pin))
        return SP_OK;
    int a = vocab_find(g->actions, g->nactions, f[2]);
    if (a < 0) {
        reject(g, F_EVENTS, R_ACTION, lno, g->rank, known, "action '%s' is not in input.actions", clip(f[2]));
        return SP_OK;
    }
    if (sp_parse_i64(f[3], &e.e.ts) || e.e.ts < 0 || e.e.ts >= TS_END) {
        reject(g, F_EVENTS, R_BAD_TS, lno, g->rank, known, "ts_ms '%s' is not an integer in [0, %" PRId64 ") (the "
               "years 1970-9999)", clip(f[3]), TS_END);
        return SP_OK;
    }
    if (g->window_day && (e.e.ts < g->ctx->day_ms || e.e.ts >= g->ctx->day_ms + SP_DAY_MS)) {
        reject(g, F_EVENTS, R_WINDOW, lno, g->rank, known, "ts_ms %" PRId64 " is outside %s [00:00, 24:00) UTC",
               e.e.ts, g->ctx->date);
        return SP_OK;
    }
    int sf = g->nsurfaces - 1;
    if (n == 5 && (sf = vocab_find(g->surfaces, g->nsurfaces, f[4])) < 0) {
        sf = g->nsurfaces - 1;
        g->unknown_surface++;
    }
    e.e.action = (uint8_t)a;
    e.e.surface = (uint8_t)sf;
    return sp_shuffle_put(s, sp_owner(SP_USER, e.e.user, g->size), &e, sizeof e);
}

/* Reads this rank's share of one TSV file through the shuffle; own: the file
 * is this rank's alone (a Kafka staging file) and is read whole. */
static int read_tsv(ingest *g, int file, const char *path, row_fn fn, sp_shuffle_sink sink, int own) {
    sp_shuffle *s = NULL;
    sp_tsv *t = NULL;
    int rc = sp_shuffle_new(&s, (size_t)sp_config_int(g->ctx->cfg, "pipeline", "shuffle_buffer_mb") << 20, sink, g);
    if (!rc) rc = sp_tsv_open(&t, path, own ? 0 : g->rank, own ? 1 : g->size);
    if (!rc) sp_tsv_keep_nul_lines(t); /* a NUL byte makes one nul_byte reject, not a failed ingest */
    rc = sp_dist_agree(rc);
    if (rc) {
        sp_tsv_close(t);
        sp_shuffle_free(s);
        return rc;
    }
    sp_progress p = {.interval = sp_config_f64(g->ctx->cfg, "pipeline", "progress_seconds")};
    sp_progress_begin(&p, FILE_NAMES[file], 0);
    int known = sp_tsv_first_line_known(t), all_done = 0, have = 1, lrc = SP_OK;
    uint64_t rows = 0;
    while (!all_done) {
        while (have && !lrc && !sp_shuffle_full(s)) {
            char *line;
            size_t len;
            int r = sp_tsv_next(t, &line, &len);
            if (r < 0) lrc = r;
            else if (r == 0) have = 0;
            else {
                rows++;
                lrc = fn(g, s, line, len, sp_tsv_line_no(t), known);
                if ((rows & 4095) == 0) {
                    p.total = sp_tsv_share_bytes(t);
                    p.done = sp_tsv_bytes_read(t) - 4096;
                    sp_progress_add(&p, 4096);
                }
            }
        }
        rc = sp_shuffle_exchange(s, !have || lrc, lrc, &all_done);
    }
    g->rows[file] += rows;
    uint64_t seen = sp_tsv_lines_seen(t), before = 0;
    g->line_known[file] = known;
    sp_tsv_close(t);
    sp_shuffle_free(s);
    if (rc) return rc;
    rc = sp_dist_exscan_u64(&seen, &before, 1);
    g->line_offset[file] = known ? 0 : before;
    p.done = rows;
    SP_INFO("read", "file=%s rows=%" PRIu64, sp_log_q(path), rows);
    return rc;
}

/* Dense features: fixed-size records split by record index. */
static int read_dense(ingest *g, const char *path) {
    sp_sfv_reader *r = NULL;
    sp_shuffle *s = NULL;
    int rc = sp_sfv_open(&r, path, g->rank, g->size);
    if (!rc) {
        g->dim = sp_sfv_dim(r);
        rc = sp_shuffle_new(&s, (size_t)sp_config_int(g->ctx->cfg, "pipeline", "shuffle_buffer_mb") << 20,
                            sink_dense, g);
    }
    rc = sp_dist_agree(rc);
    size_t row = 16 + 4 * (size_t)g->dim;
    char *rec = rc ? NULL : malloc(row);
    if (!rc && !rec) rc = SP_ENOMEM;
    rc = sp_dist_agree(rc);
    int all_done = 0, have = 1, lrc = SP_OK;
    uint64_t rows = 0;
    while (!rc && !all_done) {
        while (have && !lrc && !sp_shuffle_full(s)) {
            uint64_t idx, id;
            float *vec = (float *)(rec + 16);
            int x = sp_sfv_next(r, &idx, &id, vec);
            if (x < 0) lrc = x;
            else if (x == 0) have = 0;
            else {
                rows++;
                if (!sp_sfv_finite(vec, g->dim)) {
                    reject(g, F_DENSE, R_NAN, idx + 1, g->rank, 1, "record %" PRIu64 " (pin %" PRIu64
                           ") has a NaN or infinite value", idx + 1, id);
                    continue;
                }
                memcpy(rec, &id, 8);
                uint64_t tag = idx + 1; /* record numbers are global already */
                memcpy(rec + 8, &tag, 8);
                lrc = sp_shuffle_put(s, sp_owner(SP_PIN, id, g->size), rec, row);
            }
        }
        rc = sp_shuffle_exchange(s, !have || lrc, lrc, &all_done);
    }
    g->rows[F_DENSE] += rows;
    g->line_known[F_DENSE] = 1;
    free(rec);
    sp_sfv_close(r);
    sp_shuffle_free(s);
    return rc;
}

/* ---------- Kafka events ---------- */

/* A staged Kafka row: "partition:offset", a tab, then events.tsv's columns. */
static int row_kafka(ingest *g, sp_shuffle *s, char *line, size_t len, uint64_t lno, int known) {
    (void)lno;
    (void)known;
    char *colon, *tab = strchr(line, '\t');
    long part = strtol(line, &colon, 10);
    uint64_t off;
    if (!tab || *colon != ':' || part < 0 || part > KAFKA_MAX_PART) goto bad;
    *tab = 0;
    if (sp_parse_u64(colon + 1, &off) || off > KAFKA_OFF_MASK) goto bad;
    g->cur_part = (int32_t)part;
    int rc = row_events(g, s, tab + 1, len - (size_t)(tab + 1 - line), off, 1);
    g->cur_part = -1;
    return rc;
bad:
    return sp_err(SP_EINTERNAL, "ingest: staged Kafka row '%s' does not start with partition:offset", clip(line));
}

typedef struct {
    ingest *g;
    FILE *f;
    uint64_t staged, bad;
} kstage;

/* One message of the window: a JSON object with user_id, pin_id (numbers or
 * decimal strings), action (string), ts_ms (number or string) and optional
 * surface (string or null) becomes a staged row with the fields' text as
 * sent; the row check (ids, action, window, ...) happens when the staging file
 * is read. What cannot make a row is a parse_error at partition:offset. */
static int stage_msg(void *arg, int32_t part, int64_t off, int64_t ts, const void *key, size_t klen, const void *val,
                     size_t vlen) {
    static const char *const names[5] = {"user_id", "pin_id", "action", "ts_ms", "surface"};
    kstage *k = arg;
    ingest *g = k->g;
    (void)ts;
    (void)key;
    (void)klen;
    if (part > KAFKA_MAX_PART || (uint64_t)off > KAFKA_OFF_MASK)
        return sp_err(SP_EINTERNAL, "ingest: Kafka position %d:%lld is beyond partition %d / offset 2^%d",
                      (int)part, (long long)off, KAFKA_MAX_PART, KAFKA_OFF_BITS);
    sp_json *j = NULL;
    const char *f[5] = {NULL, NULL, NULL, NULL, NULL};
    char why[160] = "";
    int rc = SP_OK;
    if (!val || !vlen) snprintf(why, sizeof why, "empty message");
    else if ((rc = sp_json_parse(&j, val, vlen))) {
        if (rc == SP_ENOMEM) return rc;
        snprintf(why, sizeof why, "not valid JSON: %s", sp_errmsg());
    } else if (sp_json_type(j) != SP_JSON_OBJ) snprintf(why, sizeof why, "not a JSON object");
    for (int i = 0; j && !why[0] && i < 5; i++) {
        const sp_json *v = sp_json_get(j, names[i]);
        sp_json_kind kind = v ? sp_json_type(v) : SP_JSON_NULL;
        int text_only = i == 2 || i == 4; /* action, surface */
        if (kind == SP_JSON_NULL) {
            if (i < 4) snprintf(why, sizeof why, "missing field %s", names[i]);
        } else if (kind != SP_JSON_STR && (text_only || kind != SP_JSON_NUM))
            snprintf(why, sizeof why, "%s is not a %s", names[i], text_only ? "string" : "number or string");
        else if (strlen(f[i] = sp_json_text(v)) > KAFKA_MAX_FIELD)
            snprintf(why, sizeof why, "%s is longer than %d bytes", names[i], KAFKA_MAX_FIELD);
        else if (strpbrk(f[i], "\t\n\r"))
            snprintf(why, sizeof why, "%s contains a tab or line break", names[i]);
    }
    rc = SP_OK;
    if (why[0]) {
        g->cur_part = part;
        reject(g, F_EVENTS, R_PARSE, (uint64_t)off, g->rank, 1, "%s", why);
        g->cur_part = -1;
        k->bad++;
    } else {
        fprintf(k->f, "%d:%lld\t%s\t%s\t%s\t%s%s%s\n", (int)part, (long long)off, f[0], f[1], f[2], f[3],
                f[4] ? "\t" : "", f[4] ? f[4] : "");
        k->staged++;
        if (ferror(k->f)) rc = sp_err(SP_EIO, "ingest: cannot write the Kafka staging file: %s", strerror(errno));
    }
    sp_json_free(j);
    return rc;
}

/* Consumes this rank's partitions (p % nranks == rank) of the date's window
 * into its staging file (temp + fsync + rename), then validates and shuffles
 * the staged rows like events.tsv. Collective. */
static int read_kafka(ingest *g) {
    const sp_run_ctx *ctx = g->ctx;
    const sp_config *cfg = ctx->cfg;
    sp_kafka_opts o = {sp_config_str(cfg, "kafka", "brokers"), g->topic, sp_config_str(cfg, "kafka", "group"),
                       (int)sp_config_int(cfg, "kafka", "retries"), (int)sp_config_int(cfg, "kafka", "timeout_ms")};
    int32_t np = 0;
    int rc = sp_dist_agree(g->rank == 0 ? sp_kafka_partitions(&o, &np) : SP_OK);
    if (!rc) rc = sp_dist_bcast(&np, sizeof np, 0);
    if (!rc && np > KAFKA_MAX_PART + 1)
        rc = sp_err(SP_EINPUT, "topic %s has %d partitions; ingest reads at most %d", g->topic, (int)np,
                    KAFKA_MAX_PART + 1);
    if (rc) return rc;
    int32_t *parts = malloc(sizeof *parts * ((size_t)np / (size_t)g->size + 1));
    g->spans = calloc((size_t)np / (size_t)g->size + 1, sizeof *g->spans);
    for (int32_t p = g->rank; parts && p < np; p += g->size) parts[g->nspans++] = p;
    char name[64], path[4096], tmp[4200];
    snprintf(name, sizeof name, "kafka-%05d.tsv", g->rank);
    sp_stage_path(ctx, "ingest", name, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    kstage k = {.g = g};
    if (!parts || !g->spans) rc = SP_ENOMEM;
    else if (!(k.f = fopen(tmp, "w"))) rc = sp_err(SP_EIO, "cannot create %s: %s", tmp, strerror(errno));
    double t0 = sp_now();
    if (!rc)
        rc = sp_kafka_read_window(&o, parts, g->nspans, ctx->day_ms, ctx->day_ms + SP_DAY_MS, stage_msg, &k,
                                  g->spans);
    if (k.f) {
        if (!rc && (fflush(k.f) || fsync(fileno(k.f))))
            rc = sp_err(SP_EIO, "cannot write %s: %s", tmp, strerror(errno));
        fclose(k.f);
        if (!rc && rename(tmp, path)) rc = sp_err(SP_EIO, "cannot rename %s: %s", tmp, strerror(errno));
        if (rc) unlink(tmp);
    }
    free(parts);
    g->rows[F_EVENTS] += k.bad; /* rejected before staging; read_tsv counts the staged rows */
    if (!rc)
        SP_INFO("kafka_read", "topic=%s partitions=%d messages=%" PRIu64 " staged=%" PRIu64 " seconds=%.3f file=%s",
                sp_log_q(g->topic), g->nspans, k.staged + k.bad, k.staged, sp_now() - t0, sp_log_q(path));
    rc = sp_dist_agree(rc);
    if (!rc) rc = read_tsv(g, F_EVENTS, path, row_kafka, sink_ev, 1);
    return rc;
}

static int cmp_span(const void *a, const void *b) {
    int32_t x = ((const sp_kafka_span *)a)->partition, y = ((const sp_kafka_span *)b)->partition;
    return (x > y) - (x < y);
}

/* Collective: every rank's spans into the marker's "stats" (rank 0), by partition. */
static int kafka_stats(ingest *g, sp_stage_result *res) {
    uint64_t *lens = malloc(sizeof *lens * (size_t)g->size);
    char *all = NULL;
    int rc = sp_dist_agree(lens ? SP_OK : SP_ENOMEM);
    if (!rc) rc = sp_dist_gather_bytes(g->spans, sizeof *g->spans * (size_t)g->nspans, &all, lens);
    if (!rc && g->rank == 0) {
        size_t bytes = 0;
        for (int r = 0; r < g->size; r++) bytes += lens[r];
        sp_kafka_span *sp = (sp_kafka_span *)all;
        size_t n = bytes / sizeof *sp;
        qsort(sp, n, sizeof *sp, cmp_span);
        sp_jw w;
        sp_jw_init(&w);
        sp_jw_obj_begin(&w, NULL);
        sp_jw_obj_begin(&w, "kafka");
        sp_jw_str(&w, "topic", g->topic);
        sp_jw_i64(&w, "window_start_ms", g->ctx->day_ms);
        sp_jw_i64(&w, "window_end_ms", g->ctx->day_ms + SP_DAY_MS);
        sp_jw_arr_begin(&w, "partitions");
        for (size_t i = 0; i < n; i++) {
            sp_jw_obj_begin(&w, NULL);
            sp_jw_i64(&w, "partition", sp[i].partition);
            sp_jw_i64(&w, "start", sp[i].start);
            sp_jw_i64(&w, "end", sp[i].end);
            sp_jw_i64(&w, "low", sp[i].low);
            sp_jw_i64(&w, "high", sp[i].high);
            sp_jw_u64(&w, "messages", sp[i].messages);
            sp_jw_bool(&w, "scanned", sp[i].scanned);
            sp_jw_obj_end(&w);
        }
        sp_jw_arr_end(&w);
        sp_jw_obj_end(&w);
        sp_jw_obj_end(&w);
        const char *text;
        size_t len;
        rc = sp_jw_finish(&w, &text, &len);
        if (!rc && !(res->extra_json = strdup(text))) rc = SP_ENOMEM;
        sp_jw_free(&w);
    }
    free(all);
    free(lens);
    return sp_dist_agree(rc);
}

/* The stage's after_marker hook: commits this rank's end offsets for
 * kafka.group once the marker is on disk, never before. */
typedef struct {
    sp_kafka_opts o;
    sp_kafka_span *spans;
    int n;
} kcommit;

static int commit_after_marker(const sp_run_ctx *ctx, void *arg, int written) {
    kcommit *k = arg;
    int rc = SP_OK, done = 0;
    (void)ctx;
    if (written) {
        rc = sp_kafka_commit(&k->o, k->spans, k->n, &done);
        if (!rc)
            SP_INFO("kafka_commit", "group=%s topic=%s partitions=%d committed=%d", sp_log_q(k->o.group),
                    sp_log_q(k->o.topic), k->n, done);
    }
    free(k->spans);
    free(k);
    return rc;
}

/* ---------- sort + dedupe at the owner ---------- */

/* The line of a shuffled row for messages, once offsets are known. */
static void tag_split(uint64_t tag, int *src, uint64_t *line) {
    *src = (int)(tag >> LINE_BITS);
    *line = tag & ((1ULL << LINE_BITS) - 1);
}

/* Orders events with equal (user, ts, pin) by (action, tag): tiny runs. */
static void sort_run_by_action(struct ev_in *v, size_t n) {
    for (size_t i = 1; i < n; i++) {
        struct ev_in t = v[i];
        size_t j = i;
        while (j > 0 && (v[j - 1].e.action > t.e.action || (v[j - 1].e.action == t.e.action && v[j - 1].tag > t.tag))) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = t;
    }
}

static void dup_reject(ingest *g, int file, uint64_t tag, int known, const char *what) {
    int src;
    uint64_t line;
    if (file == F_EVENTS && g->kafka) { /* tag = (partition, offset) */
        g->cur_part = (int32_t)(tag >> KAFKA_OFF_BITS);
        reject(g, file, R_DUP, tag & KAFKA_OFF_MASK, g->rank, 1, "duplicate of an earlier row: %s", what);
        g->cur_part = -1;
        return;
    }
    if (known) {
        src = g->rank;
        line = tag;
    } else tag_split(tag, &src, &line);
    reject(g, file, R_DUP, line, src, known, "duplicate of an earlier row: %s", what);
}

/* ---------- output ---------- */

static int write_part(ingest *g, sp_stage_result *res) {
    char name[96], path[4096];
    sp_stage_part(g->ctx, "ingest", g->rank, g->size, name, sizeof name, path, sizeof path);
    sp_sfile_w *w;
    int rc = sp_sfile_create(&w, path, "ingest");
    if (rc) return rc;
    uint64_t meta[4] = {(uint64_t)g->rank, (uint64_t)g->size, g->dim, 0};
    rc = sp_sfile_put(w, "meta", 8, meta, 4);
    if (!rc) rc = sp_sfile_begin(w, "edges", sizeof(sp_edge_rec));
    for (size_t i = 0; !rc && i < g->nedges; i++) {
        sp_edge_rec e = {g->edges[i].pin, g->edges[i].board, g->edges[i].ts};
        rc = sp_sfile_append(w, &e, 1);
    }
    if (!rc) rc = sp_sfile_end(w);
    if (!rc) rc = sp_sfile_begin(w, "pinpin", sizeof(sp_pinpin_rec));
    for (size_t i = 0; !rc && i < g->npp; i++) {
        sp_pinpin_rec e = {g->pp[i].a, g->pp[i].b, g->pp[i].w, 0};
        rc = sp_sfile_append(w, &e, 1);
    }
    if (!rc) rc = sp_sfile_end(w);
    if (!rc) rc = sp_sfile_begin(w, "events", sizeof(sp_event_rec));
    for (size_t i = 0; !rc && i < g->nev; i++) rc = sp_sfile_append(w, &g->ev[i].e, 1);
    if (!rc) rc = sp_sfile_end(w);
    size_t row = 16 + 4 * (size_t)g->dim;
    if (!rc) rc = sp_sfile_begin(w, "dense_ids", 8);
    for (size_t i = 0; !rc && i < g->ndense; i++) rc = sp_sfile_append(w, g->dense + i * row, 1);
    if (!rc) rc = sp_sfile_end(w);
    if (!rc) rc = sp_sfile_begin(w, "dense", 4 * (g->dim ? g->dim : 1));
    for (size_t i = 0; !rc && g->dim && i < g->ndense; i++) rc = sp_sfile_append(w, g->dense + i * row + 16, 1);
    if (!rc) rc = sp_sfile_end(w);
    /* tokens: ids, offsets, hashes */
    uint64_t off = 0;
    if (!rc) rc = sp_sfile_begin(w, "tok_ids", 8);
    for (size_t p = 0; !rc && p < g->toklen;) {
        const uint64_t *r = (const uint64_t *)(g->tok + p);
        rc = sp_sfile_append(w, &r[0], 1);
        p += 8 * (3 + r[2]);
    }
    if (!rc) rc = sp_sfile_end(w);
    if (!rc) rc = sp_sfile_begin(w, "tok_off", 8);
    if (!rc) rc = sp_sfile_append(w, &off, 1);
    for (size_t p = 0; !rc && p < g->toklen;) {
        const uint64_t *r = (const uint64_t *)(g->tok + p);
        off += r[2];
        rc = sp_sfile_append(w, &off, 1);
        p += 8 * (3 + r[2]);
    }
    if (!rc) rc = sp_sfile_end(w);
    if (!rc) rc = sp_sfile_begin(w, "tok_hash", 8);
    for (size_t p = 0; !rc && p < g->toklen;) {
        const uint64_t *r = (const uint64_t *)(g->tok + p);
        rc = sp_sfile_append(w, r + 3, r[2]);
        p += 8 * (3 + r[2]);
    }
    if (!rc) rc = sp_sfile_end(w);
    return sp_stage_commit_part(res, w, rc, name, path);
}

/* Token rows arrive as variable records; sort them by (pin, tag) through an index. */
static int dedupe_tokens(ingest *g) {
    if (!g->ntok) return SP_OK;
    uint64_t (*idx)[3] = malloc(sizeof *idx * g->ntok); /* pin, tag, byte offset */
    char *out = malloc(g->toklen);
    if (!idx || !out) {
        free(idx);
        free(out);
        return SP_ENOMEM;
    }
    size_t n = 0;
    for (size_t p = 0; p < g->toklen; n++) {
        const uint64_t *r = (const uint64_t *)(g->tok + p);
        idx[n][0] = r[0];
        idx[n][1] = r[1];
        idx[n][2] = p;
        p += 8 * (3 + r[2]);
    }
    int rc = sp_radix_sort(idx, n, sizeof *idx, (size_t[]){0, 8}, 2); /* by (pin, tag) */
    if (rc) {
        free(idx);
        free(out);
        return rc;
    }
    size_t len = 0, kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && idx[i][0] == idx[i - 1][0]) {
            char what[64];
            snprintf(what, sizeof what, "tokens of pin %" PRIu64 " listed twice", idx[i][0]);
            dup_reject(g, F_TOKENS, idx[i][1], 0, what);
            continue;
        }
        const uint64_t *r = (const uint64_t *)(g->tok + idx[i][2]);
        size_t bytes = 8 * (3 + r[2]);
        memcpy(out + len, r, bytes);
        len += bytes;
        kept++;
    }
    free(idx);
    free(g->tok);
    g->tok = out;
    g->toklen = len;
    g->ntok = kept;
    return SP_OK;
}

/* Declares `best`: the index, in the run [i, j) of rows with equal keys, of
 * the row that comes first in the file (smallest tag). The caller keeps it
 * and reports the others. (Sorting by the tag as a third radix key would do
 * the same at the cost of several more passes.) */
#define KEEP_FIRST(arr, i, j, tagexpr)                                                                            \
    size_t best = (i);                                                                                            \
    for (size_t q = (i) + 1; q < (j); q++)                                                                        \
        if ((arr)[q] tagexpr < (arr)[best] tagexpr) best = q;

static int dedupe_all(ingest *g) {
    char what[96];
    int rc = sp_radix_sort(g->edges, g->nedges, sizeof *g->edges, (size_t[]){0, 8}, 2);
    size_t k = 0;
    for (size_t i = 0, j; !rc && i < g->nedges; i = j) {
        for (j = i + 1; j < g->nedges && g->edges[j].pin == g->edges[i].pin && g->edges[j].board == g->edges[i].board; j++) {}
        KEEP_FIRST(g->edges, i, j, .tag)
        for (size_t q = i; q < j; q++)
            if (q != best) {
                snprintf(what, sizeof what, "pin %" PRIu64 " on board %" PRIu64, g->edges[q].pin, g->edges[q].board);
                dup_reject(g, F_PIN_BOARD, g->edges[q].tag, 0, what);
            }
        g->edges[k++] = g->edges[best];
    }
    g->nedges = k;
    if (!rc) rc = sp_radix_sort(g->pp, g->npp, sizeof *g->pp, (size_t[]){0, 8}, 2);
    k = 0;
    for (size_t i = 0, j; !rc && i < g->npp; i = j) {
        for (j = i + 1; j < g->npp && g->pp[j].a == g->pp[i].a && g->pp[j].b == g->pp[i].b; j++) {}
        KEEP_FIRST(g->pp, i, j, .tag)
        for (size_t q = i; q < j; q++)
            if (q != best) {
                snprintf(what, sizeof what, "pins %" PRIu64 " and %" PRIu64, g->pp[q].a, g->pp[q].b);
                dup_reject(g, F_PIN_PIN, g->pp[q].tag, 0, what);
            }
        g->pp[k++] = g->pp[best];
    }
    g->npp = k;
    /* events: by (user, ts, pin), then (action, tag) inside each tiny run */
    if (!rc) rc = sp_radix_sort(g->ev, g->nev, sizeof *g->ev, (size_t[]){0, 16, 8}, 3);
    k = 0;
    for (size_t i = 0, j; !rc && i < g->nev; i = j) {
        const sp_event_rec *a = &g->ev[i].e;
        for (j = i + 1; j < g->nev && g->ev[j].e.user == a->user && g->ev[j].e.ts == a->ts && g->ev[j].e.pin == a->pin; j++) {}
        if (j - i > 1) sort_run_by_action(g->ev + i, j - i);
        for (size_t q = i; q < j; q++) {
            const sp_event_rec *e = &g->ev[q].e;
            if (q > i && e->action == g->ev[q - 1].e.action) {
                snprintf(what, sizeof what, "user %" PRIu64 " pin %" PRIu64 " %s at %" PRId64, e->user, e->pin,
                         g->actions[e->action], e->ts);
                dup_reject(g, F_EVENTS, g->ev[q].tag, 0, what);
            } else g->ev[k++] = g->ev[q];
        }
    }
    g->nev = k;
    /* dense rows are wide: sort an index of {id, tag, row}, then gather */
    size_t row = 16 + 4 * (size_t)g->dim;
    if (!rc && g->ndense) {
        uint64_t (*ix)[3] = malloc(sizeof *ix * g->ndense);
        char *out = malloc(row * g->ndense);
        if (!ix || !out) rc = SP_ENOMEM;
        for (size_t i = 0; !rc && i < g->ndense; i++) {
            memcpy(ix[i], g->dense + i * row, 16);
            ix[i][2] = i;
        }
        if (!rc) rc = sp_radix_sort(ix, g->ndense, sizeof *ix, (size_t[]){0, 8}, 2); /* by (id, tag) */
        k = 0;
        for (size_t i = 0; !rc && i < g->ndense; i++) {
            if (i && ix[i][0] == ix[i - 1][0]) {
                snprintf(what, sizeof what, "features of pin %" PRIu64 " listed twice", ix[i][0]);
                dup_reject(g, F_DENSE, ix[i][1], 1, what);
            } else memcpy(out + k++ * row, g->dense + ix[i][2] * row, row);
        }
        if (!rc) {
            free(g->dense);
            g->dense = out;
            g->ndense = k;
            out = NULL;
        }
        free(out);
        free(ix);
    }
    return rc;
}

/* Every rank fixes the line numbers of its reject rows, then rank 0 gathers,
 * sorts and writes the first rows of each reason to rejects.tsv. */
static int write_rejects(ingest *g, uint64_t total_rejects) {
    uint64_t *offs = malloc(sizeof *offs * NFILES * (size_t)g->size);
    if (!offs) return sp_dist_agree(SP_ENOMEM);
    int rc = sp_dist_allgather_u64(g->line_offset, offs, NFILES);
    char *text = NULL, *all = NULL;
    size_t tlen = 0;
    FILE *m = open_memstream(&text, &tlen);
    for (size_t i = 0; !rc && m && i < g->nrj; i++) {
        reject_row *r = &g->rj[i];
        uint64_t line = r->known ? r->line : r->line + offs[(size_t)r->src * NFILES + r->file];
        if (r->part >= 0) /* Kafka: file kafka:<topic>, line partition:offset */
            fprintf(m, "kafka:%s\t%010" PRId32 ":%020" PRIu64 "\t%s\t%s\n", g->topic, r->part, r->line,
                    REASONS[r->reason], r->detail);
        else fprintf(m, "%s\t%020" PRIu64 "\t%s\t%s\n", FILE_NAMES[r->file], line, REASONS[r->reason], r->detail);
    }
    if (m) fclose(m);
    free(offs);
    uint64_t *lens = malloc(sizeof *lens * (size_t)g->size);
    if (!rc) rc = sp_dist_agree(text && lens ? SP_OK : SP_ENOMEM);
    if (!rc) rc = sp_dist_gather_bytes(text, tlen, &all, lens);
    free(text);
    free(lens);
    int lrc = SP_OK;
    if (!rc && g->rank == 0 && total_rejects) {
        /* Lines sort as (file, zero-padded line or partition:offset): stable across rank counts. */
        size_t n = 0, cap = 0;
        char **lines = NULL;
        for (char *save, *l = strtok_r(all, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            if (sp_grow((void **)&lines, &cap, n + 1, sizeof *lines)) break;
            lines[n++] = l;
        }
        qsort(lines, n, sizeof *lines, sp_strcmp_ptr);
        char path[4096], tmp[4200];
        sp_stage_path(g->ctx, "ingest", "rejects.tsv", path, sizeof path);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        if (!f) lrc = sp_err(SP_EIO, "cannot create %s: %s", tmp, strerror(errno));
        else {
            uint64_t per[NREASONS] = {0};
            fprintf(f, "#file\tline\treason\tdetail\n");
            for (size_t i = 0; i < n; i++) {
                char *t1 = strchr(lines[i], '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
                char *t3 = t2 ? strchr(t2 + 1, '\t') : NULL;
                if (!t3) continue;
                *t1 = *t2 = *t3 = 0;
                int reason = 0;
                while (reason < NREASONS && strcmp(REASONS[reason], t2 + 1)) reason++;
                if (reason == NREASONS || per[reason]++ >= g->per_reason_cap) continue;
                char pos[48], *colon = strchr(t1 + 1, ':');
                if (colon)
                    snprintf(pos, sizeof pos, "%ld:%" PRIu64, strtol(t1 + 1, NULL, 10),
                             (uint64_t)strtoull(colon + 1, NULL, 10));
                else snprintf(pos, sizeof pos, "%" PRIu64, (uint64_t)strtoull(t1 + 1, NULL, 10));
                fprintf(f, "%s\t%s\t%s\t%s\n", lines[i], pos, t2 + 1, t3 + 1);
            }
            if (fflush(f) || ferror(f)) lrc = sp_err(SP_EIO, "cannot write %s: %s", tmp, strerror(errno));
            fclose(f);
            if (!lrc && rename(tmp, path)) lrc = sp_err(SP_EIO, "cannot rename %s: %s", tmp, strerror(errno));
        }
        free(lines);
    }
    free(all);
    return rc ? rc : sp_dist_agree(lrc);
}

int sp_ingest_digest(const sp_run_ctx *ctx, uint64_t *digest) {
    XXH64_state_t *h = XXH64_createState();
    if (!h) return SP_ENOMEM;
    XXH64_reset(h, 0);
    int rc = SP_OK, kafka = !strcmp(sp_config_str(ctx->cfg, "input", "events"), "kafka");
    if (kafka) { /* the window itself is not digested: `run` skips a done date, --force reads it again */
        const char *t = sp_config_str(ctx->cfg, "kafka", "topic");
        XXH64_update(h, "kafka.topic", 12);
        XXH64_update(h, t, strlen(t) + 1);
    }
    struct stat db;
    if (stat(ctx->input_dir, &db))
        rc = sp_err(SP_EINPUT, "input.dir %s: %s", ctx->input_dir, strerror(errno));
    else if (!S_ISDIR(db.st_mode))
        rc = sp_err(SP_EINPUT, "input.dir %s is not a directory", ctx->input_dir);
    for (int f = 0; f < NFILES && !rc; f++) {
        char path[4096];
        struct stat sb;
        if (f == F_EVENTS && kafka) continue; /* not read */
        int pr = sp_input_path(ctx->input_dir, FILE_NAMES[f], path, sizeof path);
        if (pr < 0) {
            if (!rc) rc = pr;
            continue;
        }
        if (!pr) {
            if (f == F_PIN_BOARD)
                rc = sp_err(SP_EINPUT, "required input %s/%s (or .zst) is missing", ctx->input_dir, FILE_NAMES[f]);
            continue;
        }
        if (stat(path, &sb)) {
            rc = sp_err(SP_EIO, "%s: %s", path, strerror(errno));
            continue;
        }
        uint64_t v[3] = {(uint64_t)sb.st_size, (uint64_t)sb.st_mtim.tv_sec, (uint64_t)sb.st_mtim.tv_nsec};
        XXH64_update(h, path, strlen(path) + 1);
        XXH64_update(h, v, sizeof v);
    }
    *digest = XXH64_digest(h);
    XXH64_freeState(h);
    return rc;
}

int sp_ingest_run(const sp_run_ctx *ctx, sp_stage_result *res) {
    ingest g = {.ctx = ctx, .rank = ctx->rank, .size = ctx->size, .cur_part = -1};
    const sp_config *cfg = ctx->cfg;
    char *vs[2] = {NULL, NULL};
    g.kafka = !strcmp(sp_config_str(cfg, "input", "events"), "kafka");
    g.topic = sp_config_str(cfg, "kafka", "topic");
    int rc = sp_config_words(cfg, "input", "actions", g.actions, MAX_VOCAB, &g.nactions, &vs[0]);
    if (!rc) rc = sp_config_words(cfg, "input", "surfaces", g.surfaces, MAX_VOCAB, &g.nsurfaces, &vs[1]);
    g.window_day = !strcmp(sp_config_str(cfg, "input", "window"), "day");
    g.per_reason_cap = (uint64_t)sp_config_int(cfg, "input", "rejects_per_reason");
    g.list_buf[0] = malloc(sizeof(char *) * (MAX_TOKENS + 2));
    g.list_buf[1] = malloc(8 * (MAX_TOKENS + 4));
    if (!rc && (!g.list_buf[0] || !g.list_buf[1])) rc = SP_ENOMEM;
    char path[NFILES][4096];
    int present[NFILES];
    for (int f = 0; f < NFILES; f++) {
        if (f == F_EVENTS && g.kafka) { /* not read */
            present[f] = 0;
            continue;
        }
        present[f] = sp_input_path(ctx->input_dir, FILE_NAMES[f], path[f], sizeof path[f]);
        if (present[f] < 0 && !rc) rc = present[f];
    }
    if (!rc && !present[F_PIN_BOARD])
        rc = sp_err(SP_EINPUT, "required input %s/%s (or .zst) is missing", ctx->input_dir, FILE_NAMES[F_PIN_BOARD]);
    rc = sp_dist_agree(rc);
    if (!rc) rc = read_tsv(&g, F_PIN_BOARD, path[F_PIN_BOARD], row_pin_board, sink_edge, 0);
    if (!rc && present[F_PIN_PIN]) rc = read_tsv(&g, F_PIN_PIN, path[F_PIN_PIN], row_pin_pin, sink_pp, 0);
    if (!rc && present[F_DENSE]) rc = read_dense(&g, path[F_DENSE]);
    if (!rc && present[F_TOKENS]) rc = read_tsv(&g, F_TOKENS, path[F_TOKENS], row_tokens, sink_tok, 0);
    if (!rc && g.kafka) rc = read_kafka(&g);
    else if (!rc && present[F_EVENTS]) rc = read_tsv(&g, F_EVENTS, path[F_EVENTS], row_events, sink_ev, 0);
    double t0 = sp_now();
    if (!rc) rc = dedupe_all(&g);
    if (!rc) rc = dedupe_tokens(&g);
    rc = sp_dist_agree(rc);
    if (!rc) SP_INFO("phase", "name=sort_dedupe seconds=%.3f", sp_now() - t0);
    /* Totals over ranks decide pass or fail. */
    uint64_t tot[NREASONS + NFILES + 6];
    if (!rc) {
        memcpy(tot, g.reject, sizeof g.reject);
        memcpy(tot + NREASONS, g.rows, sizeof g.rows);
        uint64_t *x = tot + NREASONS + NFILES;
        x[0] = g.nedges, x[1] = g.npp, x[2] = g.ndense, x[3] = g.ntok, x[4] = g.nev, x[5] = g.unknown_surface;
        rc = sp_dist_sum_u64(tot, NREASONS + NFILES + 6);
    }
    uint64_t rejects = 0, rows = 0;
    for (int i = 0; !rc && i < NREASONS; i++) rejects += tot[i];
    for (int i = 0; !rc && i < NFILES; i++) rows += tot[NREASONS + i];
    if (!rc) rc = write_rejects(&g, rejects);
    if (!rc && g.kafka) rc = kafka_stats(&g, res);
    if (!rc) {
        for (int f = 0; f < NFILES; f++) {
            char k[64];
            snprintf(k, sizeof k, "rows_%.*s", (int)(strchr(FILE_NAMES[f], '.') - FILE_NAMES[f]), FILE_NAMES[f]);
            sp_stage_count(res, k, g.rows[f]);
        }
        for (int i = 0; i < NREASONS; i++) {
            char k[64];
            snprintf(k, sizeof k, "reject_%s", REASONS[i]);
            sp_stage_count(res, k, g.reject[i]);
        }
        sp_stage_count(res, "edges", g.nedges);
        sp_stage_count(res, "pin_pin", g.npp);
        sp_stage_count(res, "dense_rows", g.ndense);
        sp_stage_count(res, "token_rows", g.ntok);
        sp_stage_count(res, "events", g.nev);
        sp_stage_count(res, "unknown_surface", g.unknown_surface);
        if (g.kafka) sp_stage_count(res, "kafka_partitions", (uint64_t)g.nspans);
        double frac = rows ? (double)rejects / (double)rows : 0, maxf = sp_config_f64(cfg, "input", "max_reject_fraction");
        if (rejects) {
            char by[512] = "";
            size_t o = 0;
            for (int i = 0; i < NREASONS; i++)
                if (tot[i] && o < sizeof by)
                    o += (size_t)snprintf(by + o, sizeof by - o, "%s%s=%" PRIu64, o ? "," : "", REASONS[i], tot[i]);
            char rp[4096];
            sp_stage_path(ctx, "ingest", "rejects.tsv", rp, sizeof rp);
            SP_WARN("rejects", "rejected=%" PRIu64 " rows=%" PRIu64 " fraction=%.6f max=%g by_reason=%s file=%s",
                    rejects, rows, frac, maxf, by, sp_log_q(rp));
            if (frac > maxf)
                rc = sp_err(SP_EINPUT, "input validation failed: %" PRIu64 " of %" PRIu64 " rows rejected (%.4f%% > "
                            "input.max_reject_fraction %g%%): %s; first rows of each reason in %s", rejects, rows,
                            100 * frac, 100 * maxf, by, rp);
        }
        if (!rc && tot[NREASONS + NFILES] == 0)
            rc = sp_err(SP_EINPUT, "input validation failed: %s has no valid pin-board edge", path[F_PIN_BOARD]);
        rc = sp_dist_agree(rc);
    }
    if (!rc) rc = sp_dist_agree(write_part(&g, res));
    if (!rc && ctx->rank == 0)
        SP_INFO("ingest", "edges=%" PRIu64 " pin_pin=%" PRIu64 " dense=%" PRIu64 " tokens=%" PRIu64 " events=%" PRIu64,
                tot[NREASONS + NFILES], tot[NREASONS + NFILES + 1], tot[NREASONS + NFILES + 2],
                tot[NREASONS + NFILES + 3], tot[NREASONS + NFILES + 4]);
    kcommit *kc = !rc && g.kafka ? malloc(sizeof *kc) : NULL;
    if (kc) { /* the offsets are committed after the marker, by the stage framework */
        *kc = (kcommit){{sp_config_str(cfg, "kafka", "brokers"), g.topic, sp_config_str(cfg, "kafka", "group"),
                         (int)sp_config_int(cfg, "kafka", "retries"), (int)sp_config_int(cfg, "kafka", "timeout_ms")},
                        g.spans, g.nspans};
        res->after_marker = commit_after_marker;
        res->after_arg = kc;
        g.spans = NULL;
    } else if (!rc && g.kafka) rc = SP_ENOMEM;
    free(g.spans);
    free(g.rj);
    free(g.edges);
    free(g.pp);
    free(g.ev);
    free(g.dense);
    free(g.tok);
    free(g.list_buf[0]);
    free(g.list_buf[1]);
    free(vs[0]);
    free(vs[1]);
    return rc;
}
