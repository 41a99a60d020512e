/* import: LightGCN (train.txt) and S3Rec (sequence file + item2attributes.json)
 * benchmark splits -> DESIGN §3 input directory. One streaming pass over the
 * lines; memory is O(users + items + longest line). All output files are
 * written as NAME.tmp and renamed only when every file is complete. */
#include "import.h"
#include "json.h"
#include "fsutil.h"
#include "sp_base.h"
#include "tsv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TS_BASE_MS 1700000000000LL
#define LIGHTGCN_STEP_MS 1000LL
#define S3REC_STEP_MS 60000LL
#define OUT_BUF (4u << 20)

/* ---- u64 -> u64 map (open addressing, value 0 = empty slot) ---- */

typedef struct { uint64_t *k, *v; size_t cap, n; } u64map;

static uint64_t *map_slot(u64map *m, uint64_t key) {
    size_t mask = m->cap - 1, h = (size_t)sp_mix64(key ^ 0x5bd1e995u) & mask;
    while (m->v[h] && m->k[h] != key) h = (h + 1) & mask;
    m->k[h] = key;
    return &m->v[h];
}

static int map_grow(u64map *m) {
    u64map nm = {0};
    nm.cap = m->cap ? m->cap * 2 : 1024;
    nm.k = calloc(nm.cap, sizeof *nm.k);
    nm.v = calloc(nm.cap, sizeof *nm.v);
    if (!nm.k || !nm.v) { free(nm.k); free(nm.v); return -1; }
    for (size_t i = 0; i < m->cap; i++)
        if (m->v[i]) *map_slot(&nm, m->k[i]) = m->v[i];
    nm.n = m->n;
    free(m->k);
    free(m->v);
    *m = nm;
    return 0;
}

/* Value slot for key (0 if new; caller sets non-zero); NULL when out of memory. */
static uint64_t *map_get(u64map *m, uint64_t key) {
    if (2 * (m->n + 1) > m->cap && map_grow(m)) return NULL;
    uint64_t *v = map_slot(m, key);
    return v;
}

static uint64_t map_find(const u64map *m, uint64_t key) {
    if (!m->cap) return 0;
    size_t mask = m->cap - 1, h = (size_t)sp_mix64(key ^ 0x5bd1e995u) & mask;
    while (m->v[h] && m->k[h] != key) h = (h + 1) & mask;
    return m->v[h];
}

static void map_free(u64map *m) {
    free(m->k);
    free(m->v);
    memset(m, 0, sizeof *m);
}

/* ---- output files ---- */

typedef struct {
    FILE *f;
    char *buf;
    char tmp[4096], final[4096];
} ofile;

static int of_open(ofile *o, const char *dir, const char *name) {
    if ((size_t)snprintf(o->final, sizeof o->final, "%s/%s", dir, name) >= sizeof o->final ||
        (size_t)snprintf(o->tmp, sizeof o->tmp, "%s/%s.tmp", dir, name) >= sizeof o->tmp)
        return sp_err(SP_EUSAGE, "output path too long: %s/%s", dir, name);
    o->buf = malloc(OUT_BUF);
    if (!o->buf) return sp_err(SP_ENOMEM, "import: output buffer");
    o->f = fopen(o->tmp, "wb");
    if (!o->f) return sp_err(SP_EIO, "%s: cannot create: %s", o->tmp, strerror(errno));
    setvbuf(o->f, o->buf, _IOFBF, OUT_BUF);
    return SP_OK;
}

/* Flushes, fsyncs and closes (does not rename yet). */
static int of_close(ofile *o) {
    int rc = SP_OK;
    if (!o->f) return rc;
    if (ferror(o->f) || fflush(o->f) != 0 || fsync(fileno(o->f)) != 0)
        rc = sp_err(SP_EIO, "%s: write error: %s", o->tmp, strerror(errno));
    if (fclose(o->f) != 0 && rc == SP_OK) rc = sp_err(SP_EIO, "%s: close: %s", o->tmp, strerror(errno));
    o->f = NULL;
    free(o->buf);
    o->buf = NULL;
    return rc;
}

static void of_discard(ofile *o) {
    if (o->f) fclose(o->f);
    o->f = NULL;
    free(o->buf);
    o->buf = NULL;
    if (o->tmp[0]) unlink(o->tmp);
}

static int of_rename(ofile *o) {
    if (rename(o->tmp, o->final) != 0) return sp_err(SP_EIO, "rename %s -> %s: %s", o->tmp, o->final, strerror(errno));
    o->tmp[0] = 0;
    return SP_OK;
}


/* Strict decimal u64: digits only, fits. 0 ok, -1 not a number, -2 too large. */
static int parse_u64(const char *s, size_t n, uint64_t *v) {
    if (!n) return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10) return -2;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

/* ---- the shared line loop ---- */

typedef struct {
    const char *path;
    int64_t step_ms;
    int per_user_clock; /* 1: each user's timeline starts at TS_BASE_MS */
    uint64_t holdout;   /* each user's last `holdout` items held out */
    double valfrac;     /* > 0: round(valfrac * n) of each user's n items (1..n-1) held out: */
    int val_last;       /* 0: at random (fixed by the user id), 1: the last ones in file order */
} seq_spec;

/* The token is quoted escaped (bytes that are not UTF-8 as \xNN), so that the message is valid text. */
static int bad_token(const char *path, unsigned long long line, const char *tok, size_t n, int why) {
    char q[48];
    sp_text_escape(q, sizeof q, tok, n > 40 ? 40 : n);
    return sp_err(SP_EINPUT, "%s:%llu: bad id '%s': %s", path, line, q,
                  why == -2 ? "does not fit in 64 bits" : "not a non-negative decimal integer");
}

static int read_sequences(const seq_spec *sp, ofile *pb, ofile *ev, ofile *ho, u64map *items, sp_import_stats *st) {
    FILE *in;
    int orc = sp_input_fopen(sp->path, &in);
    if (orc) return orc;
    char *line = NULL;
    size_t lcap = 0;
    uint64_t *ids = NULL, *set = NULL, *val = NULL;
    const int random_val = sp->valfrac > 0 && !sp->val_last;
    size_t idcap = 0, setcap = 0;
    u64map users = {0};
    unsigned long long lno = 0;
    int64_t clock = TS_BASE_MS;
    int rc = SP_OK;
    ssize_t got;
    errno = 0;
    while ((got = getline(&line, &lcap, in)) >= 0) {
        lno++;
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        /* split at spaces/tabs */
        size_t nids = 0, i = 0, s;
        while (sp_ws_next(line, len, &i, &s)) {
            uint64_t v;
            int pr = parse_u64(line + s, i - s, &v);
            if (pr) { rc = bad_token(sp->path, lno, line + s, i - s, pr); goto done; }
            if (nids == idcap) {
                size_t nc = idcap ? idcap * 2 : 256;
                uint64_t *n2 = realloc(ids, nc * sizeof *n2);
                if (!n2) { rc = sp_err(SP_ENOMEM, "import: line buffer"); goto done; }
                ids = n2;
                if (random_val) { /* the random split's held-out items */
                    if (!(n2 = realloc(val, nc * sizeof *n2))) {
                        rc = sp_err(SP_ENOMEM, "import: line buffer");
                        goto done;
                    }
                    val = n2;
                }
                idcap = nc;
            }
            ids[nids++] = v;
        }
        if (nids == 0) { rc = sp_err(SP_EINPUT, "%s:%llu: empty line (expected 'user item item ...')", sp->path, lno); goto done; }
        uint64_t user = ids[0];
        if (nids == 1) { rc = sp_err(SP_EINPUT, "%s:%llu: user %llu has no items", sp->path, lno, (unsigned long long)user); goto done; }
        uint64_t *seen = map_get(&users, user);
        if (!seen) { rc = sp_err(SP_ENOMEM, "import: user map"); goto done; }
        if (*seen) {
            rc = sp_err(SP_EINPUT, "%s:%llu: user %llu appears again (first on line %llu)", sp->path, lno,
                        (unsigned long long)user, (unsigned long long)*seen);
            goto done;
        }
        *seen = lno;
        users.n++;
        uint64_t n = nids - 1;
        if (n <= sp->holdout) { /* everything held out: no kept item, the user is in no file */
            st->users_held_out++;
            continue;
        }
        uint64_t keep = n - sp->holdout; /* ids[1 + keep ..] are held out */
        if (sp->valfrac > 0 && n >= 2) {
            uint64_t need = (uint64_t)(sp->valfrac * (double)n + 0.5), v = 0;
            need = need < 1 ? 1 : need > n - 1 ? n - 1 : need;
            if (!random_val) keep = n - need; /* the last ones, already at the tail */
            else { /* a uniform random subset, fixed by the user id (selection sampling) */
                sp_rng r;
                sp_rng_init(&r, 1, SP_RNG_IMPORT, user);
                keep = 0;
                for (uint64_t j = 0; j < n; j++) /* kept items move to the front in order, the others to the tail */
                    if (sp_rng_below(&r, n - j) < need) {
                        need--;
                        val[v++] = ids[1 + j];
                    } else ids[1 + keep++] = ids[1 + j];
                memcpy(ids + 1 + keep, val, v * sizeof *val);
            }
        }
        size_t sc = 16;
        while (sc < 2 * keep) sc *= 2;
        if (sc > setcap) {
            free(set);
            set = malloc(sc * sizeof *set);
            if (!set) { setcap = 0; rc = sp_err(SP_ENOMEM, "import: line set"); goto done; }
            setcap = sc;
        }
        /* slots hold item+1 (0 = empty); item UINT64_MAX is rejected below */
        memset(set, 0, sc * sizeof *set);
        if (sp->per_user_clock) clock = TS_BASE_MS;
        st->users++;
        if (ho->f && n > keep) { /* the held-out items, for eval.test (LightGCN format) */
            fprintf(ho->f, "%llu", (unsigned long long)user);
            for (uint64_t k = keep; k < n; k++) fprintf(ho->f, " %llu", (unsigned long long)ids[1 + k]);
            fputc('\n', ho->f);
        }
        for (uint64_t k = 0; k < keep; k++) {
            uint64_t item = ids[1 + k];
            if (item == UINT64_MAX) {
                rc = sp_err(SP_EINPUT, "%s:%llu: item id %llu is reserved", sp->path, lno, (unsigned long long)item);
                goto done;
            }
            fprintf(ev->f, "%llu\t%llu\tengage\t%lld\n", (unsigned long long)user, (unsigned long long)item,
                    (long long)clock);
            clock += sp->step_ms;
            st->events++;
            size_t h = (size_t)sp_mix64(item) & (sc - 1);
            while (set[h] && set[h] != item + 1) h = (h + 1) & (sc - 1);
            if (set[h]) { st->dup_edges++; continue; }
            set[h] = item + 1;
            fprintf(pb->f, "%llu\t%llu\n", (unsigned long long)item, (unsigned long long)user);
            st->edges++;
            uint64_t *iv = map_get(items, item);
            if (!iv) { rc = sp_err(SP_ENOMEM, "import: item map"); goto done; }
            if (!*iv) { *iv = 1; items->n++; }
        }
        errno = 0;
    }
    if (ferror(in)) { rc = sp_err(SP_EIO, "%s: read error after line %llu: %s", sp->path, lno, strerror(errno)); goto done; }
    if (lno == 0) rc = sp_err(SP_EINPUT, "%s: no lines", sp->path);
    else if (!st->edges)
        rc = sp_err(SP_EINPUT, "%s: nothing to import: all %llu users have at most --holdout %llu items, all held out",
                    sp->path, (unsigned long long)st->users_held_out, (unsigned long long)sp->holdout);
done:
    st->items = items->n;
    fclose(in);
    free(line);
    free(ids);
    free(val);
    free(set);
    map_free(&users);
    return rc;
}

/* ---- attributes -> pin_tokens.tsv ---- */

typedef struct { uint64_t item; size_t idx; } tok_row;

static int cmp_row(const void *a, const void *b) {
    const tok_row *x = a, *y = b;
    if (x->item != y->item) return x->item < y->item ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int read_file(const char *path, char **data, size_t *len) {
    FILE *f;
    int orc = sp_input_fopen(path, &f);
    if (orc) return orc;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    int rc = SP_OK;
    while (b) {
        if (n == cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (!b) rc = sp_err(SP_ENOMEM, "%s: file too large for memory", path);
    else if (ferror(f)) rc = sp_err(SP_EIO, "%s: read error", path);
    fclose(f);
    if (rc) { free(b); return rc; }
    *data = b;
    *len = n;
    return SP_OK;
}

static int write_tokens(const char *json_path, const u64map *items, ofile *tk, sp_import_stats *st) {
    char *text = NULL;
    size_t len = 0;
    sp_json *j = NULL;
    tok_row *rows = NULL;
    int rc = read_file(json_path, &text, &len);
    if (rc) return rc;
    if ((rc = sp_json_parse(&j, text, len))) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", sp_errmsg());
        rc = rc == SP_EINPUT ? sp_err(SP_EINPUT, "%s: bad JSON: %s", json_path, msg) : rc;
        goto done;
    }
    if (sp_json_type(j) != SP_JSON_OBJ) {
        rc = sp_err(SP_EINPUT, "%s: expected a JSON object {\"item\": [attr, ...]}", json_path);
        goto done;
    }
    size_t n = sp_json_len(j), nrows = 0;
    rows = malloc((n ? n : 1) * sizeof *rows);
    if (!rows) { rc = sp_err(SP_ENOMEM, "import: attribute rows"); goto done; }
    for (size_t i = 0; i < n; i++) {
        const char *key = sp_json_key_at(j, i);
        uint64_t item;
        if (parse_u64(key, strlen(key), &item)) {
            rc = sp_err(SP_EINPUT, "%s: key '%.40s' (entry %zu) is not an item id", json_path, key, i + 1);
            goto done;
        }
        const sp_json *a = sp_json_at(j, i);
        if (sp_json_type(a) != SP_JSON_ARR) {
            rc = sp_err(SP_EINPUT, "%s: item %s: attributes are not an array", json_path, key);
            goto done;
        }
        for (size_t k = 0; k < sp_json_len(a); k++) {
            uint64_t v;
            if (sp_json_u64(sp_json_at(a, k), &v)) {
                rc = sp_err(SP_EINPUT, "%s: item %s: attribute %zu is not a non-negative integer", json_path, key, k + 1);
                goto done;
            }
        }
        rows[nrows++] = (tok_row){item, i};
    }
    qsort(rows, nrows, sizeof *rows, cmp_row);
    for (size_t r = 0; r + 1 < nrows; r++)
        if (rows[r + 1].item == rows[r].item) { /* "7" and "07" too: which list would be meant is unknown */
            rc = sp_err(SP_EINPUT, "%s: item %llu is given twice (entries %zu and %zu)", json_path,
                         (unsigned long long)rows[r].item, rows[r].idx + 1, rows[r + 1].idx + 1);
            goto done;
        }
    for (size_t r = 0; r < nrows; r++) {
        if (!map_find(items, rows[r].item)) continue;
        const sp_json *a = sp_json_at(j, rows[r].idx);
        size_t na = sp_json_len(a);
        if (!na) continue;
        fprintf(tk->f, "%llu\t", (unsigned long long)rows[r].item);
        for (size_t k = 0; k < na; k++) {
            uint64_t v = 0;
            sp_json_u64(sp_json_at(a, k), &v);
            fprintf(tk->f, k ? " attr%llu" : "attr%llu", (unsigned long long)v);
        }
        fputc('\n', tk->f);
        st->tokens_rows++;
    }
done:
    free(rows);
    sp_json_free(j);
    free(text);
    return rc;
}

/* ---- entry points ---- */

static int run_import(const seq_spec *sp, const char *out_dir, const char *attributes_json, sp_import_stats *stats) {
    sp_import_stats st = {0};
    ofile pb = {0}, ev = {0}, tk = {0}, ho = {0};
    u64map items = {0};
    const int holds_out = sp->holdout || sp->valfrac > 0; /* heldout.txt is written */
    int rc = sp_mkdir_p(out_dir);
    if (rc) return rc;
    /* an input of DESIGN §3 (or its .zst twin) this import does not write, or a heldout.txt it does not write,
     * left by an earlier import or another tool, would be read with the new files: refused, nothing is written */
    const char *const written[] = {"pin_board.tsv", "events.tsv", attributes_json ? "pin_tokens.tsv" : NULL, NULL};
    char p[4096], ho_path[4096];
    struct stat sb;
    snprintf(ho_path, sizeof ho_path, "%s/heldout.txt", out_dir);
    const char *stale = sp_input_foreign(out_dir, written, p, sizeof p)  ? p
                        : !holds_out && lstat(ho_path, &sb) == 0         ? ho_path
                                                                         : NULL;
    if (stale)
        return sp_err(SP_EUSAGE, "%s exists (from an earlier import?) and would be read as an input beside this "
                      "import's files: remove it or import into an empty directory", stale);
    if ((rc = of_open(&pb, out_dir, "pin_board.tsv"))) goto done;
    if ((rc = of_open(&ev, out_dir, "events.tsv"))) goto done;
    if (attributes_json && (rc = of_open(&tk, out_dir, "pin_tokens.tsv"))) goto done;
    if (holds_out && (rc = of_open(&ho, out_dir, "heldout.txt"))) goto done;
    if ((rc = read_sequences(sp, &pb, &ev, &ho, &items, &st))) goto done;
    if (attributes_json && (rc = write_tokens(attributes_json, &items, &tk, &st))) goto done;
    if ((rc = of_close(&pb)) || (rc = of_close(&ev)) || (rc = of_close(&tk)) || (rc = of_close(&ho))) goto done;
    if ((rc = of_rename(&pb)) || (rc = of_rename(&ev))) goto done;
    if (attributes_json && (rc = of_rename(&tk))) goto done;
    if (holds_out && (rc = of_rename(&ho))) goto done;
    if (stats) *stats = st;
done:
    of_discard(&pb);
    of_discard(&ev);
    of_discard(&tk);
    of_discard(&ho);
    map_free(&items);
    return rc;
}

int sp_import_lightgcn(const char *data_dir, const char *out_dir, double validation, int validation_last,
                       sp_import_stats *stats) {
    char path[4096];
    if (!data_dir || !out_dir) return sp_err(SP_EUSAGE, "import lightgcn: DATA_DIR and OUT_DIR are required");
    if (!(validation >= 0 && validation < 1))
        return sp_err(SP_EUSAGE, "import lightgcn: --validation must be in [0, 1) (got %g)", validation);
    if ((size_t)snprintf(path, sizeof path, "%s/train.txt", data_dir) >= sizeof path)
        return sp_err(SP_EUSAGE, "path too long: %s/train.txt", data_dir);
    seq_spec sp = {path, LIGHTGCN_STEP_MS, 0, 0, validation, validation_last != 0};
    return run_import(&sp, out_dir, NULL, stats);
}

int sp_import_s3rec(const char *seq_file, const char *out_dir, const char *attributes_json, int holdout,
                    sp_import_stats *stats) {
    if (!seq_file || !out_dir) return sp_err(SP_EUSAGE, "import s3rec: SEQ_FILE and OUT_DIR are required");
    if (holdout < 0) return sp_err(SP_EUSAGE, "import s3rec: --holdout must be >= 0 (got %d)", holdout);
    seq_spec sp = {seq_file, S3REC_STEP_MS, 1, (uint64_t)holdout, 0, 0};
    return run_import(&sp, out_dir, attributes_json, stats);
}
