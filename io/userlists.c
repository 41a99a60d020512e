/* userlists: "user item item ..." files (LightGCN split, S3Rec sequences) into
 * per-user item lists. One pass collects each line's items into one buffer in
 * file order, then a CSR in user order is built from the line table. */
#include "userlists.h"

#include "sp_base.h"
#include "tsv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define ID_LIMIT ((uint64_t)UINT32_MAX) /* ids (after the base) must be below this */

/* Parses the token tok[0..n) (tok[n] may be overwritten: the line buffer is
 * ours) as an id of `what` ("user"/"item"), base subtracted. */
static int parse_id(const char *path, uint64_t lno, const char *what, char *tok, size_t n, uint32_t base,
                    uint64_t limit, uint32_t *id) {
    uint64_t v = 0;
    char save = tok[n];
    tok[n] = 0;
    /* digits only, no sign: -1 syntax, -2 out of range; a NUL byte inside
     * the token would end the string early, so it is a syntax error here */
    int pr = memchr(tok, 0, n) ? -1 : sp_parse_u64(tok, &v);
    tok[n] = save;
    int shown = (int)(n > 40 ? 40 : n);
    if (pr == -1)
        return sp_err(SP_EINPUT, "%s:%llu: bad %s id '%.*s': not a non-negative decimal integer", path,
                      (unsigned long long)lno, what, shown, tok);
    if (pr == 0 && v < base)
        return sp_err(SP_EINPUT, "%s:%llu: %s id %llu is below the id base %u (ids are %u-based here)", path,
                      (unsigned long long)lno, what, (unsigned long long)v, base, base);
    if (pr == -2 || v - base >= limit)
        return sp_err(SP_EINPUT, "%s:%llu: %s id '%.*s' is too large (at most %llu%s)", path, (unsigned long long)lno,
                      what, shown, tok, (unsigned long long)(limit - 1 + base),
                      limit < ID_LIMIT ? ": ids here are dense indices" : "");
    *id = (uint32_t)(v - base);
    return SP_OK;
}

typedef struct {
    uint64_t start;  /* first item in the buffer */
    uint64_t count;  /* items kept */
} line_rec;

int sp_lists_load(const char *path, const sp_lists_opts *opts, sp_lists *out, sp_lists_stats *stats) {
    sp_lists_opts o = opts ? *opts : (sp_lists_opts){0, 0, 0};
    if (!path || !out) return sp_err(SP_EUSAGE, "sp_lists_load: path and out are required");
    uint64_t limit = o.max_id && o.max_id < ID_LIMIT ? o.max_id : ID_LIMIT;
    FILE *in; /* a regular file, looked at without blocking (a FIFO would hang the open) */
    int orc = sp_input_fopen(path, &in);
    if (orc) return orc;

    char *line = NULL;
    size_t lcap = 0;
    uint32_t *items = NULL;          /* all kept items, line after line */
    size_t icap = 0, nitems = 0;
    line_rec *lines = NULL;          /* one per line */
    size_t lrcap = 0;
    uint64_t *user_line = NULL;      /* (ucap) 1-based line of each user, 0 = not seen */
    size_t ucap = 0;
    uint32_t *set = NULL;            /* open-addressing set for SP_LISTS_DEDUPE, slot = item + 1 */
    size_t setcap = 0;
    uint64_t lno = 0, dups = 0, nusers = 0;
    uint32_t nrows = 0, ncols = 0;
    int rc = SP_OK;
    ssize_t got;
    errno = 0;
    while ((got = getline(&line, &lcap, in)) >= 0) {
        lno++;
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        uint64_t first = nitems;
        uint32_t user = 0;
        int have_user = 0;
        size_t i = 0, s;
        while (sp_ws_next(line, len, &i, &s)) {
            uint32_t id = 0;
            rc = parse_id(path, lno, have_user ? "item" : "user", line + s, i - s, o.id_base, limit, &id);
            if (rc) goto done;
            if (!have_user) {
                user = id;
                have_user = 1;
                continue;
            }
            if ((rc = sp_grow((void **)&items, &icap, nitems + 1, sizeof *items))) {
                rc = sp_err(rc, "%s:%llu: no memory for %zu items", path, (unsigned long long)lno, nitems + 1);
                goto done;
            }
            items[nitems++] = id;
            if (id >= ncols) ncols = id + 1;
        }
        if (!have_user) {
            rc = sp_err(SP_EINPUT, "%s:%llu: empty line (expected 'user item item ...')", path,
                        (unsigned long long)lno);
            goto done;
        }
        uint64_t count = nitems - first;
        if (count == 0 && !(o.flags & SP_LISTS_ALLOW_EMPTY)) {
            rc = sp_err(SP_EINPUT, "%s:%llu: user %llu has no items", path, (unsigned long long)lno,
                        (unsigned long long)user + o.id_base);
            goto done;
        }
        if ((size_t)user >= ucap) {
            size_t old = ucap;
            if ((rc = sp_grow((void **)&user_line, &ucap, (size_t)user + 1, sizeof *user_line))) {
                rc = sp_err(rc, "%s:%llu: no memory for a table of %llu users", path, (unsigned long long)lno,
                            (unsigned long long)user + 1);
                goto done;
            }
            memset(user_line + old, 0, (ucap - old) * sizeof *user_line);
        }
        if (user_line[user]) {
            rc = sp_err(SP_EINPUT, "%s:%llu: user %llu appears again (first on line %llu)", path,
                        (unsigned long long)lno, (unsigned long long)user + o.id_base,
                        (unsigned long long)user_line[user]);
            goto done;
        }
        user_line[user] = lno;
        nusers++;
        if (user >= nrows) nrows = user + 1;
        if ((o.flags & SP_LISTS_DEDUPE) && count > 1) {
            size_t sc = 16;
            while (sc < 2 * count) sc *= 2;
            if (sc > setcap) {
                free(set);
                setcap = 0;
                if (!(set = malloc(sc * sizeof *set))) {
                    rc = sp_err(SP_ENOMEM, "%s:%llu: no memory for a set of %llu items", path,
                                (unsigned long long)lno, (unsigned long long)count);
                    goto done;
                }
                setcap = sc;
            }
            memset(set, 0, sc * sizeof *set);
            uint64_t keep = first;
            for (uint64_t k = first; k < nitems; k++) {
                uint32_t it = items[k];
                size_t h = (size_t)sp_mix64(it) & (sc - 1);
                while (set[h] && set[h] != it + 1) h = (h + 1) & (sc - 1);
                if (set[h]) {
                    dups++;
                    continue;
                }
                set[h] = it + 1;
                items[keep++] = it;
            }
            nitems = keep;
            count = nitems - first;
        }
        if ((rc = sp_grow((void **)&lines, &lrcap, (size_t)lno, sizeof *lines))) {
            rc = sp_err(rc, "%s:%llu: no memory for the line table", path, (unsigned long long)lno);
            goto done;
        }
        lines[lno - 1] = (line_rec){first, count};
        errno = 0;
    }
    if (ferror(in)) {
        rc = sp_err(SP_EIO, "%s: read error after line %llu: %s", path, (unsigned long long)lno, strerror(errno));
        goto done;
    }
    if (lno == 0) {
        rc = sp_err(SP_EINPUT, "%s: no lines (expected 'user item item ...' per line)", path);
        goto done;
    }

    /* CSR in user order: rows of users that no line named stay empty */
    uint64_t *off = malloc(((size_t)nrows + 1) * sizeof *off);
    uint32_t *idx = malloc((nitems ? nitems : 1) * sizeof *idx);
    if (!off || !idx) {
        free(off);
        free(idx);
        rc = sp_err(SP_ENOMEM, "%s: no memory for %u users and %zu items", path, nrows, nitems);
        goto done;
    }
    off[0] = 0;
    for (uint32_t u = 0; u < nrows; u++) {
        uint64_t c = 0;
        if (user_line[u]) {
            const line_rec *lr = &lines[user_line[u] - 1];
            memcpy(idx + off[u], items + lr->start, lr->count * sizeof *idx);
            c = lr->count;
        }
        off[u + 1] = off[u] + c;
    }
    *out = (sp_lists){.n = nrows, .ncols = ncols, .off = off, .idx = idx};
    if (stats) *stats = (sp_lists_stats){.lines = lno, .users = nusers, .items = nitems, .dup_items = dups};
done:
    fclose(in);
    free(line);
    free(items);
    free(lines);
    free(user_line);
    free(set);
    return rc;
}

int sp_lists_load_lightgcn(const char *path, sp_lists *out, sp_lists_stats *stats) {
    sp_lists_opts o = {.flags = SP_LISTS_DEDUPE | SP_LISTS_ALLOW_EMPTY, .id_base = 0,
                       .max_id = SP_LISTS_LIGHTGCN_MAX_ID};
    return sp_lists_load(path, &o, out, stats);
}

int sp_lists_load_s3rec(const char *path, sp_lists *out, sp_lists_stats *stats) {
    sp_lists_opts o = {.flags = 0, .id_base = 1};
    return sp_lists_load(path, &o, out, stats);
}

int sp_lists_need_items(const sp_lists *l, const char *path) {
    if (l->n && l->off[l->n]) return SP_OK;
    return sp_err(SP_EINPUT, "%s: no line holds a held-out item, nothing to score", path);
}

void sp_lists_free(sp_lists *l) {
    if (!l) return;
    free(l->off);
    free(l->idx);
    memset(l, 0, sizeof *l);
}

int sp_lists_rows(const sp_lists *l, uint32_t lo, uint32_t hi, sp_lists *out) {
    memset(out, 0, sizeof *out);
    uint32_t end = hi < l->n ? hi : l->n, n = end > lo ? end - lo : 0;
    out->off = calloc((size_t)n + 1, 8);
    if (!out->off) return SP_ENOMEM;
    uint64_t base = n ? l->off[lo] : 0;
    if (n)
        for (uint32_t u = 0; u <= n; u++) out->off[u] = l->off[lo + u] - base;
    out->n = n;
    out->ncols = l->ncols;
    out->idx = l->idx ? l->idx + base : NULL;
    return SP_OK;
}
