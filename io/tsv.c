/* tsv: buffered line reader for TSV inputs (plain files split into byte-range
 * shares, or ".zst" streams decompressed with ZSTD_decompressStream), the tab
 * and whitespace field splitters, strict number parsers and input lookup. */
#include "tsv.h"
#include "sp_base.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define TSV_BUF_INIT (1u << 20)      /* line buffer starts at 1 MiB and grows for long lines */
#define TSV_MAX_LINE (16u << 20)     /* longest line, '\n' excluded ('\r' included) */
#define TSV_BUF_MAX (TSV_MAX_LINE + 2) /* the longest line + its '\n' + the NUL we add */
#define TSV_ZIN_SIZE (1u << 20)      /* compressed input chunk */
/* Compressed bytes handed to one ZSTD_decompressStream call. On an error the decoder does not say how far
 * it got (zin.pos stays where the call began), so a small step is what places a corruption: the error
 * message names the step's bytes. Smaller than a block (128 KiB), zstd copies the block into its own
 * buffer first: a memcpy of compressed bytes, small next to decoding them. */
#define TSV_ZSTEP (64u << 10)

struct sp_tsv {
    char *path;
    int fd;
    int part, nparts;
    int zst;             /* 1: ".zst" stream */
    int done;            /* 1: end of share reached */
    int err;             /* sticky error (< 0) after a failure */
    int eof;             /* 1: no more data can be put into buf */
    int keep_nul;        /* sp_tsv_keep_nul_lines: a line holding NUL bytes is returned, not an error */
    /* Line buffer: unconsumed data is buf[beg, end); one byte stays free after
     * end so that a last line without '\n' can be NUL-terminated in place. */
    char *buf;
    size_t cap, beg, end;
    size_t nul_at;       /* index in buf of the first NUL in buf[beg, end), or SIZE_MAX */
    uint64_t lines;      /* lines consumed (sp_tsv_lines_seen) */
    uint64_t line_no;    /* line number of the line last returned */
    uint64_t bytes_read; /* progress, see sp_tsv_bytes_read */
    uint64_t share_bytes;
    /* plain: file offset of buf[beg], the share end offset and the file size */
    uint64_t off, share_end, fsize, rd_off;
    uint64_t share_first; /* plain: file offset of the share's first line */
    /* zst */
    ZSTD_DStream *ds;
    ZSTD_inBuffer zin;
    char *zbuf;
    int zin_eof;
    size_t zlast;        /* last ZSTD_decompressStream hint; 0 = at a frame boundary */
};

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && memcmp(s + n - m, suf, m) == 0;
}

/* read() that retries EINTR; returns bytes read (0 at EOF) or -1. */
static ssize_t read_retry(int fd, void *p, size_t n) {
    for (;;) {
        ssize_t r = read(fd, p, n);
        if (r >= 0 || errno != EINTR) return r;
    }
}

/* Moves the unconsumed bytes to the front of buf and, when the buffer is full
 * anyway, doubles it (up to TSV_BUF_MAX). Returns the free room after end. */
static int make_room(sp_tsv *t) {
    if (t->beg > 0) {
        size_t n = t->end - t->beg;
        memmove(t->buf, t->buf + t->beg, n);
        if (t->nul_at != SIZE_MAX) t->nul_at -= t->beg;
        t->beg = 0;
        t->end = n;
    }
    if (t->end + 1 >= t->cap && t->cap < TSV_BUF_MAX) {
        size_t ncap = t->cap * 2 > TSV_BUF_MAX ? TSV_BUF_MAX : t->cap * 2;
        char *nb = realloc(t->buf, ncap);
        if (!nb) return sp_err(SP_ENOMEM, "%s: cannot grow line buffer to %zu bytes", t->path, ncap);
        t->buf = nb;
        t->cap = ncap;
    }
    return SP_OK;
}

/* Plain file: reads more bytes into buf[end, cap-1). Sets eof at the end of
 * the file (as sized at open: bytes appended later are ignored). */
static int fill_plain(sp_tsv *t) {
    size_t room = t->cap - 1 - t->end;
    uint64_t left = t->fsize - t->rd_off;
    if (left == 0) { t->eof = 1; return SP_OK; }
    if (room > left) room = (size_t)left;
    ssize_t r = read_retry(t->fd, t->buf + t->end, room);
    if (r < 0) return sp_err(SP_EIO, "%s: read failed: %s", t->path, strerror(errno));
    if (r == 0) return sp_err(SP_EIO, "%s: file shrank while reading (expected %llu bytes)",
                              t->path, (unsigned long long)t->fsize);
    t->rd_off += (uint64_t)r;
    t->end += (size_t)r;
    return SP_OK;
}

/* .zst: decompresses more bytes into buf[end, cap-1). Sets eof when the file
 * ended exactly at a frame boundary; a stream that stops inside a frame is
 * SP_EFORMAT. */
static int fill_zst(sp_tsv *t) {
    ZSTD_outBuffer out = {t->buf + t->end, t->cap - 1 - t->end, 0};
    for (;;) {
        if (t->zin.pos == t->zin.size && !t->zin_eof) {
            ssize_t r = read_retry(t->fd, t->zbuf, TSV_ZIN_SIZE);
            if (r < 0) return sp_err(SP_EIO, "%s: read failed: %s", t->path, strerror(errno));
            if (r == 0) t->zin_eof = 1;
            t->zin.size = (size_t)r;
            t->zin.pos = 0;
            t->bytes_read += (uint64_t)r;
        }
        if (t->zin.pos == t->zin.size && t->zin_eof && t->zlast == 0) {
            t->eof = 1; /* every frame complete and flushed */
            break;
        }
        /* one step of the chunk; the bytes of the file before it are bytes_read - (zin.size - zin.pos) */
        size_t from = t->zin.pos, step = t->zin.size - from < TSV_ZSTEP ? t->zin.size - from : TSV_ZSTEP;
        ZSTD_inBuffer in = {t->zin.src, from + step, from};
        size_t ret = ZSTD_decompressStream(t->ds, &out, &in);
        if (ZSTD_isError(ret)) {
            uint64_t at = t->bytes_read - (t->zin.size - from);
            return sp_err(SP_EFORMAT, "%s: corrupt zstd data, found in compressed bytes %llu-%llu (of %llu): %s",
                          t->path, (unsigned long long)at, (unsigned long long)(at + step),
                          (unsigned long long)t->fsize, ZSTD_getErrorName(ret));
        }
        t->zin.pos = in.pos;
        t->zlast = ret;
        if (out.pos > 0) break;
        if (t->zin.pos == t->zin.size && t->zin_eof && ret != 0)
            return sp_err(SP_EFORMAT, "%s: truncated zstd stream (ends inside a frame after %llu compressed bytes)",
                          t->path, (unsigned long long)t->bytes_read);
    }
    t->end += out.pos;
    return SP_OK;
}

/* Appends data to buf and updates nul_at for the new bytes. */
static int fill(sp_tsv *t) {
    int rc = make_room(t);
    if (rc) return rc;
    if (t->end + 1 >= t->cap) return SP_EINTERNAL; /* caller checks the line limit first */
    size_t old = t->end;
    rc = t->zst ? fill_zst(t) : fill_plain(t);
    if (rc) return rc;
    if (t->nul_at == SIZE_MAX && t->end > old) {
        const char *z = memchr(t->buf + old, 0, t->end - old);
        if (z) t->nul_at = (size_t)(z - t->buf);
    }
    return SP_OK;
}

/* Plain share with part > 0: drops bytes up to and including the first '\n'
 * at or after the share's start offset. Sets done if no line starts in the share. */
static int skip_partial_line(sp_tsv *t) {
    for (;;) {
        char *nl = memchr(t->buf + t->beg, '\n', t->end - t->beg);
        if (nl) {
            size_t n = (size_t)(nl + 1 - (t->buf + t->beg));
            t->beg += n;
            t->off += n;
            break;
        }
        t->off += t->end - t->beg;
        t->beg = t->end = 0;
        t->nul_at = SIZE_MAX;
        if (t->off > t->share_end || t->eof) { t->done = 1; return SP_OK; }
        int rc = fill(t);
        if (rc) return rc;
    }
    if (t->off > t->share_end) t->done = 1;
    if (t->nul_at != SIZE_MAX && t->nul_at < t->beg) {
        /* the NUL was in the skipped bytes: look again in what is left */
        const char *z = memchr(t->buf + t->beg, 0, t->end - t->beg);
        t->nul_at = z ? (size_t)(z - t->buf) : SIZE_MAX;
    }
    return SP_OK;
}

int sp_tsv_open(sp_tsv **out, const char *path, int part, int nparts) {
    int rc = SP_OK;
    if (!out) return sp_err(SP_EINTERNAL, "sp_tsv_open: out is NULL");
    *out = NULL;
    if (!path || nparts < 1 || part < 0 || part >= nparts)
        return sp_err(SP_EINTERNAL, "sp_tsv_open: bad arguments (path %s, part %d of %d)",
                      path ? path : "NULL", part, nparts);
    sp_tsv *t = calloc(1, sizeof *t);
    if (!t) return sp_err(SP_ENOMEM, "%s: out of memory", path);
    t->fd = -1;
    t->part = part;
    t->nparts = nparts;
    t->nul_at = SIZE_MAX;
    t->zst = ends_with(path, ".zst");
    t->path = strdup(path);
    t->cap = TSV_BUF_INIT;
    t->buf = malloc(t->cap);
    if (!t->path || !t->buf) { rc = sp_err(SP_ENOMEM, "%s: out of memory", path); goto fail; }
    rc = sp_input_open(path, &t->fd);
    if (rc > 0) rc = sp_err(SP_EIO, "%s", sp_errmsg()); /* open/fstat failed (errno): the message names path */
    if (rc) goto fail;
    struct stat st;
    if (fstat(t->fd, &st) != 0) { rc = sp_err(SP_EIO, "%s: cannot stat: %s", path, strerror(errno)); goto fail; }
    t->fsize = (uint64_t)st.st_size;
    (void)posix_fadvise(t->fd, 0, 0, POSIX_FADV_SEQUENTIAL);

    if (t->zst) {
        t->share_bytes = t->fsize;
        t->zbuf = malloc(TSV_ZIN_SIZE);
        t->ds = ZSTD_createDStream();
        if (!t->zbuf || !t->ds) { rc = sp_err(SP_ENOMEM, "%s: out of memory", path); goto fail; }
        size_t zr = ZSTD_initDStream(t->ds);
        if (ZSTD_isError(zr)) { rc = sp_err(SP_EINTERNAL, "%s: ZSTD_initDStream: %s", path, ZSTD_getErrorName(zr)); goto fail; }
        t->zin.src = t->zbuf;
        /* Check the first frame's magic now, so a foreign file fails at open. */
        size_t got = 0;
        while (got < 4) {
            ssize_t r = read_retry(t->fd, t->zbuf + got, TSV_ZIN_SIZE - got);
            if (r < 0) { rc = sp_err(SP_EIO, "%s: read failed: %s", path, strerror(errno)); goto fail; }
            if (r == 0) break;
            got += (size_t)r;
        }
        t->zin.size = got;
        t->bytes_read = got;
        uint32_t magic = 0;
        if (got >= 4) memcpy(&magic, t->zbuf, 4);
        if (got < 4 || (magic != ZSTD_MAGICNUMBER &&
                        (magic & ZSTD_MAGIC_SKIPPABLE_MASK) != ZSTD_MAGIC_SKIPPABLE_START)) {
            rc = sp_err(SP_EFORMAT, "%s: not a zstd stream (%s)", path,
                        got < 4 ? "file shorter than a frame header" : "bad frame magic");
            goto fail;
        }
        t->zlast = 1; /* inside a frame until the decoder says otherwise */
    } else {
        uint64_t start = (uint64_t)((unsigned __int128)t->fsize * (unsigned)part / (unsigned)nparts);
        t->share_end = (uint64_t)((unsigned __int128)t->fsize * ((unsigned)part + 1) / (unsigned)nparts);
        t->share_bytes = t->share_end - start;
        t->off = t->rd_off = start;
        if (start > 0 && lseek(t->fd, (off_t)start, SEEK_SET) < 0) {
            rc = sp_err(SP_EIO, "%s: cannot seek to %llu: %s", path, (unsigned long long)start, strerror(errno));
            goto fail;
        }
        if (part > 0) {
            rc = skip_partial_line(t);
            if (rc) goto fail;
        }
        t->share_first = t->off;
    }
    *out = t;
    return SP_OK;
fail:
    sp_tsv_close(t);
    return rc;
}

/* Newlines in the file's bytes [0, upto) (pread, so the reader's position is untouched); -1 on a read error. */
static int64_t newlines_before(int fd, uint64_t upto) {
    enum { CHUNK = 1 << 20 };
    char *b = malloc(CHUNK);
    if (!b) return -1;
    int64_t n = 0;
    for (uint64_t o = 0; o < upto;) {
        size_t want = upto - o < CHUNK ? (size_t)(upto - o) : CHUNK;
        ssize_t got = pread(fd, b, want, (off_t)o);
        if (got <= 0) {
            n = -1;
            break;
        }
        for (const char *p = b, *e = b + got; (p = memchr(p, '\n', (size_t)(e - p))); p++) n++;
        o += (uint64_t)got;
    }
    free(b);
    return n;
}

/* Records a bad-line error (sticky) naming the file and the line being consumed. A later share of a plain
 * file counts the lines before it (an error is rare; the count reads the file's prefix once) so the
 * number is the file's, as for the first share. */
static int line_error(sp_tsv *t, const char *what) {
    uint64_t no = t->lines + 1;
    int64_t before = !t->zst && t->part > 0 ? newlines_before(t->fd, t->share_first) : 0;
    if (t->zst || t->part == 0 || before >= 0)
        t->err = sp_err(SP_EINPUT, "%s:%llu: %s", t->path, (unsigned long long)(no + (uint64_t)before), what);
    else
        t->err = sp_err(SP_EINPUT, "%s: line %llu of share %d/%d (counted from the share start): %s",
                        t->path, (unsigned long long)no, t->part, t->nparts, what);
    return t->err;
}

int sp_tsv_next(sp_tsv *t, char **line, size_t *len) {
    if (!t || !line || !len) return sp_err(SP_EINTERNAL, "sp_tsv_next: NULL argument");
    if (t->err) return t->err;
    size_t scanned = 0; /* bytes after beg known to hold no '\n' (long lines span fills) */
    for (;;) {
        if (t->done) return 0;
        if (!t->zst && t->off > t->share_end) { t->done = 1; return 0; }
        char *s = t->buf + t->beg;
        size_t avail = t->end - t->beg;
        char *nl = memchr(s + scanned, '\n', avail - scanned);
        size_t n, adv;
        if (nl) {
            n = (size_t)(nl - s);
            adv = n + 1;
        } else {
            if (avail > TSV_MAX_LINE) return line_error(t, "line longer than 16 MiB");
            if (!t->eof) {
                scanned = avail;
                int rc = fill(t);
                if (rc) return t->err = rc;
                continue;
            }
            if (avail == 0) { t->done = 1; return 0; }
            n = adv = avail; /* last line without '\n' */
        }
        if (n > TSV_MAX_LINE) return line_error(t, "line longer than 16 MiB");
        if (t->nul_at != SIZE_MAX && t->nul_at < t->beg + n && !t->keep_nul) return line_error(t, "NUL byte in line");
        uint64_t idx = t->lines; /* 0-based index of this line in the share (global for .zst) */
        t->lines++;
        t->beg += adv;
        if (t->beg == t->end) { t->beg = t->end = 0; t->nul_at = SIZE_MAX; } /* nul_at was >= old end */
        else if (t->nul_at != SIZE_MAX && t->nul_at < t->beg) { /* keep_nul: the NUL was in this line */
            const char *z = memchr(t->buf + t->beg, 0, t->end - t->beg); /* the next one: each byte looked at once */
            t->nul_at = z ? (size_t)(z - t->buf) : SIZE_MAX;
        }
        if (!t->zst) {
            t->off += adv;
            t->bytes_read += adv;
        }
        if (n > 0 && s[n - 1] == '\r') n--;
        if (idx == 0 && (t->zst || t->part == 0) && n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))
            s += 3, n -= 3; /* a UTF-8 byte order mark opening the file (some editors write one) */
        scanned = 0;
        if (t->zst && (int)(idx % (uint64_t)t->nparts) != t->part) continue;
        if (n == 0 || s[0] == '#') continue;
        s[n] = 0;
        t->line_no = idx + 1;
        *line = s;
        *len = n;
        return 1;
    }
}

void sp_tsv_keep_nul_lines(sp_tsv *t) { t->keep_nul = 1; }

uint64_t sp_tsv_line_no(const sp_tsv *t) { return t->line_no; }
int sp_tsv_first_line_known(const sp_tsv *t) { return t->zst || t->part == 0; }
uint64_t sp_tsv_lines_seen(const sp_tsv *t) { return t->lines; }
uint64_t sp_tsv_bytes_read(const sp_tsv *t) { return t->bytes_read; }
uint64_t sp_tsv_share_bytes(const sp_tsv *t) { return t->share_bytes; }

void sp_tsv_close(sp_tsv *t) {
    if (!t) return;
    if (t->fd >= 0) close(t->fd);
    ZSTD_freeDStream(t->ds);
    free(t->zbuf);
    free(t->buf);
    free(t->path);
    free(t);
}

int sp_tsv_split(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        char *tab = strchr(p, '\t');
        if (n < max) {
            fields[n] = p;
            if (tab) *tab = 0;
        }
        n++;
        if (!tab) return n;
        p = tab + 1;
    }
}

int sp_tsv_split_ws(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) return n;
        char *q = p;
        while (*q && *q != ' ' && *q != '\t') q++;
        int last = *q == 0;
        if (n < max) {
            fields[n] = p;
            *q = 0;
        }
        n++;
        if (last) return n;
        p = q + 1;
    }
}

int sp_ws_next(const char *line, size_t len, size_t *pos, size_t *start) {
    size_t i = *pos;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i >= len) {
        *pos = i;
        return 0;
    }
    *start = i;
    while (i < len && line[i] != ' ' && line[i] != '\t') i++;
    *pos = i;
    return 1;
}

int sp_parse_u64(const char *s, uint64_t *v) {
    if (!s || !*s) return -1;
    uint64_t x = 0;
    int over = 0;
    for (const char *p = s; *p; p++) {
        unsigned d = (unsigned char)*p - (unsigned)'0';
        if (d > 9) return -1; /* checked before overflow: "99...9x" is a syntax error */
        if (x > UINT64_MAX / 10 || (x == UINT64_MAX / 10 && d > UINT64_MAX % 10)) over = 1;
        else x = x * 10 + d;
    }
    if (over) return -2;
    *v = x;
    return 0;
}

int sp_parse_i64(const char *s, int64_t *v) {
    if (!s) return -1;
    int neg = *s == '-';
    uint64_t m;
    int rc = sp_parse_u64(s + neg, &m);
    if (rc) return rc;
    if (neg) {
        if (m > (uint64_t)INT64_MAX + 1) return -2;
        *v = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
    } else {
        if (m > (uint64_t)INT64_MAX) return -2;
        *v = (int64_t)m;
    }
    return 0;
}

/* strtof follows the C locale's decimal point; sagepipe never calls setlocale. */
int sp_parse_f32(const char *s, float *v) {
    if (!s || !*s) return -1;
    /* strtof would skip leading spaces and accept '+'; after an optional '-' there must be a digit,
     * '.', or the start of "nan"/"inf" (which strtof parses and we then reject). */
    const char *p = s + (*s == '-');
    if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == 'n' || *p == 'N' || *p == 'i' || *p == 'I')) return -1;
    char *end;
    errno = 0;
    float x = strtof(s, &end);
    if (end == s || *end) return -1;
    if (isnan(x) || isinf(x)) return -2; /* "nan", "inf" and overflow (HUGE_VALF) */
    /* ERANGE with a finite result is underflow: keep the (sub)normal or zero value */
    *v = x;
    return 0;
}

/* ---------- text checks ---------- */

/* Length (1-4) of the valid UTF-8 sequence at p[0..n), n >= 1, or 0 when p[0] does not start one
 * (Unicode Table 3-7: no overlong forms, no surrogates D800-DFFF, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *p, size_t n) {
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    size_t k;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) k = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        if (c == 0xE0) lo = 0xA0;      /* shorter forms are overlong */
        else if (c == 0xED) hi = 0x9F; /* ED A0..BF are the surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        if (c == 0xF0) lo = 0x90;      /* overlong */
        else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    } else return 0; /* 80..C1 (continuation, overlong 2-byte lead), F5..FF */
    if (n < k || p[1] < lo || p[1] > hi) return 0;
    for (size_t j = 2; j < k; j++)
        if ((p[j] & 0xC0) != 0x80) return 0;
    return k;
}

int sp_text_check(const char *s, size_t n, size_t *at) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (n - i >= 8) { /* ASCII fast path: no byte with the high bit set and no zero byte in 8 */
            uint64_t w;
            memcpy(&w, p + i, 8);
            /* a zero byte borrows in w - 0x01..01 and sets its high bit; no false "all clear" */
            if (!(((w - 0x0101010101010101ULL) | w) & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
        size_t k = p[i] ? utf8_len(p + i, n - i) : 0;
        if (!k) {
            if (at) *at = i;
            return p[i] ? SP_TEXT_NOT_UTF8 : SP_TEXT_NUL;
        }
        i += k;
    }
    return SP_TEXT_OK;
}

size_t sp_text_escape(char *out, size_t cap, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;
    if (!cap) return 0;
    while (i < n) {
        size_t k = p[i] ? utf8_len(p + i, n - i) : 0;
        if (k) {
            if (o + k >= cap) break;
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        } else {
            if (o + 4 >= cap) break;
            snprintf(out + o, 5, "\\x%02x", p[i]);
            o += 4;
            i++;
        }
    }
    out[o] = 0;
    return i;
}

/* ---------- input files ---------- */

static const char *file_kind(mode_t m) {
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket"
           : S_ISCHR(m) || S_ISBLK(m) ? "a device" : "a special file";
}

int sp_input_open(const char *path, int *fd) {
    struct stat st;
    int e;
    *fd = -1;
    int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO opens at once, and fstat tells */
    if (f < 0) {
        e = errno;
        sp_err(e, "%s: cannot open: %s", path, strerror(e));
        return e;
    }
    if (fstat(f, &st) != 0) {
        e = errno;
        sp_err(e, "%s: cannot stat: %s", path, strerror(e));
        close(f);
        return e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(f);
        return sp_err(SP_EINPUT, "%s: not a regular file (%s)", path, file_kind(st.st_mode));
    }
    int fl = fcntl(f, F_GETFL);
    if (fl < 0 || fcntl(f, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        e = errno;
        sp_err(e, "%s: fcntl: %s", path, strerror(e));
        close(f);
        return e;
    }
    *fd = f;
    return SP_OK;
}

int sp_input_fopen(const char *path, FILE **f) {
    int fd, rc = sp_input_open(path, &fd);
    *f = NULL;
    if (rc > 0) return sp_err(rc == ENOENT ? SP_EINPUT : SP_EIO, "%s", sp_errmsg());
    if (rc) return rc;
    if (!(*f = fdopen(fd, "rb"))) {
        int e = errno;
        close(fd);
        return sp_err(SP_EIO, "%s: cannot open: %s", path, strerror(e));
    }
    return SP_OK;
}

const char *const sp_input_files[SP_INPUT_FILES] = {"pin_board.tsv", "pin_pin.tsv", "pin_dense.sfv", "pin_tokens.tsv",
                                                    "events.tsv"};

int sp_input_path(const char *dir, const char *name, char *out, size_t cap) {
    struct stat st;
    if (!dir || !name || !out || cap == 0) return 0;
    for (int z = 0; z < 2; z++) {
        int n = snprintf(out, cap, z ? "%s/%s.zst" : "%s/%s", dir, name);
        if (n < 0 || (size_t)n >= cap) {
            out[0] = 0;
            return sp_err(SP_EINPUT, "%s/%s%s: path longer than %zu bytes", dir, name, z ? ".zst" : "", cap);
        }
        if (lstat(out, &st)) {
            if (errno == ENOENT || errno == ENOTDIR) continue; /* absent: the next name, or none */
            return sp_err(SP_EIO, "%s: %s", out, strerror(errno));
        }
        /* present: it must be a readable regular file (a dangling link is not "absent"; a FIFO would block) */
        if (stat(out, &st))
            return sp_err(SP_EINPUT, "%s: a symbolic link to a missing file (%s)", out, strerror(errno));
        if (!S_ISREG(st.st_mode))
            return sp_err(SP_EINPUT, "%s: not a regular file (%s)", out, file_kind(st.st_mode));
        if (!z) { /* both names: which one is the date's input is unknown (a half-done recompression?) */
            char zp[PATH_MAX + 8];
            snprintf(zp, sizeof zp, "%s.zst", out);
            if (!lstat(zp, &st))
                return sp_err(SP_EINPUT, "%s and %s both exist: which is the input is ambiguous; remove one", out, zp);
        }
        return 1;
    }
    out[0] = 0;
    return 0;
}

int sp_input_foreign(const char *dir, const char *const *written, char *out, size_t cap) {
    struct stat st;
    for (int i = 0; i < 2 * SP_INPUT_FILES; i++) {
        const char *name = sp_input_files[i / 2];
        int zst = i % 2, ours = 0;
        for (const char *const *w = written; !zst && w && *w && !ours; w++) ours = !strcmp(*w, name);
        snprintf(out, cap, "%s/%s%s", dir, name, zst ? ".zst" : "");
        if (!ours && lstat(out, &st) == 0) return 1;
    }
    if (cap) out[0] = 0;
    return 0;
}
