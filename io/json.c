/* json: recursive-descent RFC 8259 parser building a small DOM, and a compact
 * writer. Number nodes keep their token text so integers above 2^53 can be
 * read exactly (sp_json_u64). Errors carry line and column. */
#include "json.h"
#include "sp_base.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sp_json {
    sp_json_kind kind;
    int b;
    double num;
    char *text;    /* string value (NUL-terminated) or number token */
    size_t n, cap; /* children count / capacity */
    sp_json **kids;
    char **keys;   /* objects only */
};

typedef struct {
    const char *s;
    size_t len, pos;
    int rc;
} parser;

static int perr(parser *p, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(parser *p, size_t at, const char *fmt, ...) {
    if (p->rc) return p->rc;
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < p->len; i++) {
        if (p->s[i] == '\n') { line++; col = 1; }
        else col++;
    }
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    p->rc = sp_err(SP_EINPUT, "line %zu col %zu: %s", line, col, what);
    return p->rc;
}

static int pnomem(parser *p) {
    if (!p->rc) p->rc = sp_err(SP_ENOMEM, "json: out of memory");
    return p->rc;
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') p->pos++;
        else break;
    }
}

static const char *describe(parser *p) {
    if (p->pos >= p->len) return "end of input";
    return NULL;
}

static int unexpected(parser *p, const char *want) {
    if (describe(p)) return perr(p, p->pos, "unexpected end of input, expected %s", want);
    unsigned char c = (unsigned char)p->s[p->pos];
    if (c >= 0x20 && c < 0x7f) return perr(p, p->pos, "unexpected '%c', expected %s", c, want);
    return perr(p, p->pos, "unexpected byte 0x%02x, expected %s", c, want);
}

/* Growable byte buffer for string unescaping. */
typedef struct { char *b; size_t n, cap; } sbuf;
static int sb_put(sbuf *s, const char *d, size_t n) {
    if (s->n + n + 1 > s->cap) {
        size_t c = s->cap ? s->cap * 2 : 32;
        while (c < s->n + n + 1) c *= 2;
        char *nb = realloc(s->b, c);
        if (!nb) return -1;
        s->b = nb;
        s->cap = c;
    }
    memcpy(s->b + s->n, d, n);
    s->n += n;
    s->b[s->n] = 0;
    return 0;
}

static int hex4(const char *s, unsigned *v) {
    unsigned x = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        x <<= 4;
        if (c >= '0' && c <= '9') x |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') x |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') x |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *v = x;
    return 0;
}

static size_t utf8_enc(unsigned cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xc0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of a valid UTF-8 sequence starting at s[0] (non-ASCII lead), 0 if invalid. */
static size_t utf8_valid(const unsigned char *s, size_t avail) {
    unsigned char c = s[0];
    size_t n;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { n = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; }
    else return 0;
    if (avail < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Parses a string at p->pos (which is '"'); returns malloc'd text or NULL on error. */
static char *parse_string(parser *p) {
    sbuf sb = {0};
    size_t start = p->pos++;
    for (;;) {
        if (p->pos >= p->len) { perr(p, start, "unterminated string"); goto fail; }
        /* copy a run of plain bytes */
        size_t run = p->pos;
        while (run < p->len) {
            unsigned char c = (unsigned char)p->s[run];
            if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
            run++;
        }
        if (run > p->pos && sb_put(&sb, p->s + p->pos, run - p->pos)) { pnomem(p); goto fail; }
        p->pos = run;
        if (p->pos >= p->len) continue;
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') { p->pos++; break; }
        if (c == 0) { perr(p, p->pos, "NUL byte in string"); goto fail; }
        if (c < 0x20) { perr(p, p->pos, "raw control character 0x%02x in string (must be escaped)", c); goto fail; }
        if (c >= 0x80) {
            size_t n = utf8_valid((const unsigned char *)p->s + p->pos, p->len - p->pos);
            if (!n) { perr(p, p->pos, "invalid UTF-8 in string"); goto fail; }
            if (sb_put(&sb, p->s + p->pos, n)) { pnomem(p); goto fail; }
            p->pos += n;
            continue;
        }
        /* backslash */
        size_t esc = p->pos;
        if (p->pos + 1 >= p->len) { perr(p, start, "unterminated string"); goto fail; }
        char e = p->s[p->pos + 1], o[4];
        p->pos += 2;
        switch (e) {
        case '"': o[0] = '"'; break;
        case '\\': o[0] = '\\'; break;
        case '/': o[0] = '/'; break;
        case 'b': o[0] = '\b'; break;
        case 'f': o[0] = '\f'; break;
        case 'n': o[0] = '\n'; break;
        case 'r': o[0] = '\r'; break;
        case 't': o[0] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (p->pos + 4 > p->len || hex4(p->s + p->pos, &cp)) { perr(p, esc, "bad \\u escape"); goto fail; }
            p->pos += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff) { perr(p, esc, "lone low surrogate \\u%04x", cp); goto fail; }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (p->pos + 6 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                    hex4(p->s + p->pos + 2, &lo) || lo < 0xdc00 || lo > 0xdfff) {
                    perr(p, esc, "high surrogate \\u%04x not followed by a low surrogate", cp);
                    goto fail;
                }
                p->pos += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0) { perr(p, esc, "\\u0000 (NUL) in string"); goto fail; }
            if (sb_put(&sb, o, utf8_enc(cp, o))) { pnomem(p); goto fail; }
            continue;
        }
        default:
            perr(p, esc, "bad escape '\\%c'", (e >= 0x20 && e < 0x7f) ? e : '?');
            goto fail;
        }
        if (sb_put(&sb, o, 1)) { pnomem(p); goto fail; }
    }
    if (!sb.b && sb_put(&sb, "", 0)) { pnomem(p); goto fail; }
    return sb.b;
fail:
    free(sb.b);
    return NULL;
}

static sp_json *new_node(parser *p, sp_json_kind k) {
    sp_json *j = calloc(1, sizeof *j);
    if (!j) { pnomem(p); return NULL; }
    j->kind = k;
    return j;
}

static int add_kid(parser *p, sp_json *c, sp_json *kid, char *key) {
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 4;
        sp_json **nk = realloc(c->kids, nc * sizeof *nk);
        if (!nk) return pnomem(p);
        c->kids = nk;
        if (c->kind == SP_JSON_OBJ) {
            char **kk = realloc(c->keys, nc * sizeof *kk);
            if (!kk) return pnomem(p);
            c->keys = kk;
        }
        c->cap = nc;
    }
    c->kids[c->n] = kid;
    if (c->kind == SP_JSON_OBJ) c->keys[c->n] = key;
    c->n++;
    return 0;
}

static sp_json *parse_value(parser *p, int depth);

static sp_json *parse_number(parser *p) {
    size_t st = p->pos, i = p->pos;
    const char *s = p->s;
    if (i < p->len && s[i] == '-') i++;
    if (i >= p->len || !(s[i] >= '0' && s[i] <= '9')) { perr(p, st, "bad number: expected a digit"); return NULL; }
    if (s[i] == '0') {
        i++;
        if (i < p->len && s[i] >= '0' && s[i] <= '9') { perr(p, st, "bad number: leading zero"); return NULL; }
    } else {
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || !(s[i] >= '0' && s[i] <= '9')) { perr(p, st, "bad number: digit expected after '.'"); return NULL; }
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || !(s[i] >= '0' && s[i] <= '9')) { perr(p, st, "bad number: digit expected in exponent"); return NULL; }
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    sp_json *j = new_node(p, SP_JSON_NUM);
    if (!j) return NULL;
    j->text = malloc(i - st + 1);
    if (!j->text) { free(j); pnomem(p); return NULL; }
    memcpy(j->text, s + st, i - st);
    j->text[i - st] = 0;
    errno = 0;
    j->num = strtod(j->text, NULL);
    if (!isfinite(j->num)) { perr(p, st, "number %s out of range", j->text); sp_json_free(j); return NULL; }
    p->pos = i;
    return j;
}

static int match_word(parser *p, const char *w) {
    size_t n = strlen(w);
    if (p->len - p->pos >= n && memcmp(p->s + p->pos, w, n) == 0) { p->pos += n; return 1; }
    return 0;
}

static sp_json *parse_container(parser *p, int depth, int obj) {
    size_t st = p->pos;
    if (depth >= SP_JSON_MAX_DEPTH) { perr(p, st, "nesting deeper than %d", SP_JSON_MAX_DEPTH); return NULL; }
    sp_json *c = new_node(p, obj ? SP_JSON_OBJ : SP_JSON_ARR);
    if (!c) return NULL;
    p->pos++;
    skip_ws(p);
    char close = obj ? '}' : ']';
    if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; return c; }
    for (;;) {
        char *key = NULL;
        skip_ws(p);
        if (obj) {
            if (p->pos >= p->len || p->s[p->pos] != '"') { unexpected(p, "a string key"); goto fail; }
            key = parse_string(p);
            if (!key) goto fail;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') { free(key); unexpected(p, "':'"); goto fail; }
            p->pos++;
            skip_ws(p);
        }
        sp_json *v = parse_value(p, depth + 1);
        if (!v) { free(key); goto fail; }
        if (add_kid(p, c, v, key)) { free(key); sp_json_free(v); goto fail; }
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
        if (p->pos < p->len && p->s[p->pos] == close) { p->pos++; return c; }
        unexpected(p, obj ? "',' or '}'" : "',' or ']'");
        goto fail;
    }
fail:
    sp_json_free(c);
    return NULL;
}

static sp_json *parse_value(parser *p, int depth) {
    skip_ws(p);
    if (p->pos >= p->len) { unexpected(p, "a value"); return NULL; }
    char c = p->s[p->pos];
    sp_json *j;
    switch (c) {
    case '{': return parse_container(p, depth, 1);
    case '[': return parse_container(p, depth, 0);
    case '"': {
        char *s = parse_string(p);
        if (!s) return NULL;
        j = new_node(p, SP_JSON_STR);
        if (!j) { free(s); return NULL; }
        j->text = s;
        return j;
    }
    case 't': case 'f': case 'n': {
        size_t st = p->pos;
        int kind = -1, b = 0;
        if (match_word(p, "true")) { kind = SP_JSON_BOOL; b = 1; }
        else if (match_word(p, "false")) kind = SP_JSON_BOOL;
        else if (match_word(p, "null")) kind = SP_JSON_NULL;
        if (kind < 0) { perr(p, st, "invalid literal (expected true, false or null)"); return NULL; }
        j = new_node(p, (sp_json_kind)kind);
        if (j) j->b = b;
        return j;
    }
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p);
        unexpected(p, "a value");
        return NULL;
    }
}

int sp_json_parse(sp_json **out, const char *text, size_t len) {
    *out = NULL;
    parser p = {text, len, 0, 0};
    if (!text) p.len = 0;
    sp_json *j = parse_value(&p, 0);
    if (!j) return p.rc ? p.rc : sp_err(SP_EINTERNAL, "json: parse failed without a message");
    skip_ws(&p);
    if (p.pos < p.len) {
        unexpected(&p, "end of input after the value");
        sp_json_free(j);
        return p.rc;
    }
    *out = j;
    return SP_OK;
}

void sp_json_free(sp_json *j) {
    if (!j) return;
    for (size_t i = 0; i < j->n; i++) {
        sp_json_free(j->kids[i]);
        if (j->keys) free(j->keys[i]);
    }
    free(j->kids);
    free(j->keys);
    free(j->text);
    free(j);
}

sp_json_kind sp_json_type(const sp_json *j) { return j ? j->kind : SP_JSON_NULL; }

const sp_json *sp_json_get(const sp_json *obj, const char *key) {
    if (!obj || obj->kind != SP_JSON_OBJ || !key) return NULL;
    for (size_t i = obj->n; i-- > 0;)
        if (strcmp(obj->keys[i], key) == 0) return obj->kids[i];
    return NULL;
}

size_t sp_json_len(const sp_json *j) {
    return j && (j->kind == SP_JSON_ARR || j->kind == SP_JSON_OBJ) ? j->n : 0;
}

const sp_json *sp_json_at(const sp_json *j, size_t i) {
    return j && (j->kind == SP_JSON_ARR || j->kind == SP_JSON_OBJ) && i < j->n ? j->kids[i] : NULL;
}

const char *sp_json_key_at(const sp_json *obj, size_t i) {
    return obj && obj->kind == SP_JSON_OBJ && i < obj->n ? obj->keys[i] : NULL;
}

const char *sp_json_str(const sp_json *j) { return j && j->kind == SP_JSON_STR ? j->text : NULL; }
double sp_json_num(const sp_json *j) { return j && j->kind == SP_JSON_NUM ? j->num : NAN; }
int sp_json_bool(const sp_json *j) { return j && j->kind == SP_JSON_BOOL ? j->b : -1; }

int sp_json_u64(const sp_json *j, uint64_t *v) {
    if (!j || (j->kind != SP_JSON_NUM && j->kind != SP_JSON_STR)) return -1;
    const char *s = j->text;
    if (!s[0]) return -1;
    uint64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        unsigned d = (unsigned)(*s - '0');
        if (x > (UINT64_MAX - d) / 10) return -1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

const char *sp_json_text(const sp_json *j) {
    return j && (j->kind == SP_JSON_NUM || j->kind == SP_JSON_STR) ? j->text : NULL;
}

/* ---- writer ---- */

void sp_jw_init(sp_jw *w) { memset(w, 0, sizeof *w); }

static void jw_put(sp_jw *w, const char *s, size_t n) {
    if (w->err) return;
    if (w->len + n + 2 > w->cap) { /* +2: final '\n' and NUL */
        size_t c = w->cap ? w->cap : 256;
        while (c < w->len + n + 2) c *= 2;
        char *nb = realloc(w->buf, c);
        if (!nb) { w->err = SP_ENOMEM; return; }
        w->buf = nb;
        w->cap = c;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void jw_strbody(sp_jw *w, const char *v) {
    static const char hex[] = "0123456789abcdef";
    jw_put(w, "\"", 1);
    const char *run = v;
    for (const char *s = v; ; s++) {
        unsigned char c = (unsigned char)*s;
        if (c && c != '"' && c != '\\' && c >= 0x20) continue;
        jw_put(w, run, (size_t)(s - run));
        if (!c) break;
        char e[6] = {'\\', 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default: e[1] = 'u'; e[2] = '0'; e[3] = '0'; e[4] = hex[c >> 4]; e[5] = hex[c & 15]; n = 6;
        }
        jw_put(w, e, n);
        run = s + 1;
    }
    jw_put(w, "\"", 1);
}

/* Comma and key before a value; checks key presence against the container. */
static void jw_pre(sp_jw *w, const char *key) {
    if (w->err) return;
    int in_obj = w->depth > 0 && (w->need_comma[w->depth - 1] & 2);
    if (w->depth == 0 && w->len > 0) { w->err = SP_EINTERNAL; return; } /* second top-level value */
    if ((in_obj && !key) || (!in_obj && key)) { w->err = SP_EINTERNAL; return; }
    if (w->depth > 0) {
        if (w->need_comma[w->depth - 1] & 1) jw_put(w, ",", 1);
        w->need_comma[w->depth - 1] |= 1;
    }
    if (key) {
        jw_strbody(w, key);
        jw_put(w, ":", 1);
    }
}

static void jw_open(sp_jw *w, const char *key, int obj) {
    jw_pre(w, key);
    if (w->err) return;
    if (w->depth >= 64) { w->err = SP_EINTERNAL; return; }
    jw_put(w, obj ? "{" : "[", 1);
    w->need_comma[w->depth++] = (unsigned char)(obj ? 2 : 0);
}

static void jw_close(sp_jw *w, int obj) {
    if (w->err) return;
    if (w->depth == 0 || ((w->need_comma[w->depth - 1] & 2) != 0) != obj) { w->err = SP_EINTERNAL; return; }
    w->depth--;
    jw_put(w, obj ? "}" : "]", 1);
}

void sp_jw_obj_begin(sp_jw *w, const char *key) { jw_open(w, key, 1); }
void sp_jw_obj_end(sp_jw *w) { jw_close(w, 1); }
void sp_jw_arr_begin(sp_jw *w, const char *key) { jw_open(w, key, 0); }
void sp_jw_arr_end(sp_jw *w) { jw_close(w, 0); }

void sp_jw_str(sp_jw *w, const char *key, const char *v) {
    jw_pre(w, key);
    if (v) jw_strbody(w, v);
    else jw_put(w, "null", 4);
}

void sp_jw_u64(sp_jw *w, const char *key, uint64_t v) {
    char b[24];
    int n = snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    jw_pre(w, key);
    jw_put(w, b, (size_t)n);
}

void sp_jw_i64(sp_jw *w, const char *key, int64_t v) {
    char b[24];
    int n = snprintf(b, sizeof b, "%lld", (long long)v);
    jw_pre(w, key);
    jw_put(w, b, (size_t)n);
}

void sp_jw_f64(sp_jw *w, const char *key, double v) {
    char b[40];
    int n = isfinite(v) ? snprintf(b, sizeof b, "%.17g", v) : snprintf(b, sizeof b, "null");
    jw_pre(w, key);
    jw_put(w, b, (size_t)n);
}

void sp_jw_bool(sp_jw *w, const char *key, int v) {
    jw_pre(w, key);
    jw_put(w, v ? "true" : "false", v ? 4 : 5);
}

void sp_jw_null(sp_jw *w, const char *key) {
    jw_pre(w, key);
    jw_put(w, "null", 4);
}

void sp_jw_raw(sp_jw *w, const char *key, const char *json) {
    jw_pre(w, key);
    jw_put(w, json, strlen(json));
}

int sp_jw_finish(sp_jw *w, const char **text, size_t *len) {
    if (!w->err && w->depth != 0) w->err = SP_EINTERNAL;
    if (!w->err && w->len == 0) w->err = SP_EINTERNAL;
    if (w->err) {
        if (text) *text = NULL;
        if (len) *len = 0;
        return w->err == SP_ENOMEM ? sp_err(SP_ENOMEM, "json writer: out of memory")
                                   : sp_err(SP_EINTERNAL, "json writer: misuse (key/container mismatch, "
                                                          "nesting > 64 or unclosed containers)");
    }
    w->buf[w->len++] = '\n';
    w->buf[w->len] = 0;
    if (text) *text = w->buf;
    if (len) *len = w->len;
    return SP_OK;
}

void sp_jw_free(sp_jw *w) {
    free(w->buf);
    memset(w, 0, sizeof *w);
}
