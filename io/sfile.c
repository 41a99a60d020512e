/* sfile: writer and verifying reader of the binary stage-file container laid
 * out in sfile.h (64-byte header, 64-byte aligned sections, 48-byte directory
 * entries, xxh64 seed 0 checksums). Every byte of a file is covered by a check. */
#include "sfile.h"
#include "sp_base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* The on-disk integers are little-endian and are read and written as host
 * integers with memcpy; a big-endian port would byte-swap in get/put below. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "sfile assumes a little-endian host");

#define HDR_BYTES 64
#define HDR_SUMMED 56 /* header_xxh64 covers the bytes before it */
#define DIR_ENTRY 48
#define ALIGN 64
#define WBUF_BYTES (1u << 20)
static const char MAGIC[8] = {'S', 'P', 'S', 'T', 'A', 'G', 'E', '1'};

/* header field offsets */
enum { H_MAGIC = 0, H_VERSION = 8, H_NSEC = 12, H_KIND = 16, H_DIROFF = 32, H_FBYTES = 40, H_DIRXXH = 48, H_HXXH = 56 };
/* directory entry field offsets */
enum { D_TAG = 0, D_ELEM = 16, D_RESV = 20, D_COUNT = 24, D_OFF = 32, D_XXH = 40 };

static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

/* A name field (kind or tag): 1..16 chars, NUL-padded. Returns its length, or 0 if
 * it is empty or has non-NUL bytes after the first NUL. */
static size_t name_len(const unsigned char *f) {
    size_t n = strnlen((const char *)f, SP_SFILE_TAG);
    for (size_t i = n; i < SP_SFILE_TAG; i++)
        if (f[i]) return 0;
    return n;
}
static int name_eq(const unsigned char *f, const char *s) {
    size_t n = strlen(s);
    return n <= SP_SFILE_TAG && name_len(f) == n && memcmp(f, s, n) == 0;
}
static int name_ok(const char *s) { return s && s[0] && strlen(s) <= SP_SFILE_TAG; }

/* ---- writer ---- */

struct sp_sfile_w {
    char *path, *tmp;
    int fd;
    int err;             /* sticky error */
    unsigned char *wbuf; /* write buffer: wn bytes pending at file offset pos - wn */
    size_t wn;
    uint64_t pos;        /* logical file size so far */
    unsigned char *dir;  /* nsec entries of DIR_ENTRY bytes */
    uint32_t nsec, dcap;
    int in_section;
    XXH64_state_t *xs;
    char kind[SP_SFILE_TAG];
};

static int w_fail(sp_sfile_w *w, int rc) {
    if (!w->err) w->err = rc;
    return rc;
}

static int write_all(sp_sfile_w *w, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t r = write(w->fd, c, n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return w_fail(w, sp_err(SP_EIO, "%s: write failed: %s", w->tmp, strerror(errno)));
        c += r;
        n -= (size_t)r;
    }
    return SP_OK;
}

static int w_flush(sp_sfile_w *w) {
    int rc = write_all(w, w->wbuf, w->wn);
    w->wn = 0;
    return rc;
}

static int w_bytes(sp_sfile_w *w, const void *p, size_t n) {
    if (w->wn + n > WBUF_BYTES) {
        int rc = w_flush(w);
        if (rc) return rc;
    }
    if (n >= WBUF_BYTES) {
        int rc = write_all(w, p, n);
        if (rc) return rc;
    } else {
        memcpy(w->wbuf + w->wn, p, n);
        w->wn += n;
    }
    w->pos += n;
    return SP_OK;
}

static int w_pad(sp_sfile_w *w) {
    static const unsigned char zero[ALIGN];
    size_t pad = (size_t)((ALIGN - w->pos % ALIGN) % ALIGN);
    return pad ? w_bytes(w, zero, pad) : SP_OK;
}

static void w_free(sp_sfile_w *w) {
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    XXH64_freeState(w->xs);
    free(w->wbuf);
    free(w->dir);
    free(w->tmp);
    free(w->path);
    free(w);
}

int sp_sfile_create(sp_sfile_w **out, const char *path, const char *kind) {
    int rc;
    if (!out) return sp_err(SP_EINTERNAL, "sp_sfile_create: out is NULL");
    *out = NULL;
    if (!path || !name_ok(kind))
        return sp_err(SP_EINTERNAL, "sp_sfile_create(%s): kind '%s' must be 1..16 chars",
                      path ? path : "NULL", kind ? kind : "NULL");
    sp_sfile_w *w = calloc(1, sizeof *w);
    if (!w) return sp_err(SP_ENOMEM, "%s: out of memory", path);
    w->fd = -1;
    size_t tn = strlen(path) + 32;
    w->path = strdup(path);
    w->tmp = malloc(tn);
    w->wbuf = malloc(WBUF_BYTES);
    w->xs = XXH64_createState();
    if (!w->path || !w->tmp || !w->wbuf || !w->xs) { rc = sp_err(SP_ENOMEM, "%s: out of memory", path); goto fail; }
    snprintf(w->tmp, tn, "%s.tmp.%ld", path, (long)getpid());
    memcpy(w->kind, kind, strlen(kind)); /* rest stays NUL from calloc */
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) { rc = sp_err(SP_EIO, "%s: cannot create: %s", w->tmp, strerror(errno)); goto fail; }
    static const unsigned char zero_hdr[HDR_BYTES];
    rc = w_bytes(w, zero_hdr, HDR_BYTES); /* the real header is written at commit */
    if (rc) { sp_sfile_discard(w); return rc; }
    *out = w;
    return SP_OK;
fail:
    w_free(w);
    return rc;
}

int sp_sfile_begin(sp_sfile_w *w, const char *tag, uint32_t elem_size) {
    if (!w) return sp_err(SP_EINTERNAL, "sp_sfile_begin: w is NULL");
    if (w->err) return w->err;
    if (w->in_section) return w_fail(w, sp_err(SP_EINTERNAL, "%s: sp_sfile_begin(%s) inside a section", w->path, tag ? tag : "NULL"));
    if (!name_ok(tag) || elem_size == 0)
        return w_fail(w, sp_err(SP_EINTERNAL, "%s: bad section (tag '%s' must be 1..16 chars, elem_size %u > 0)",
                                w->path, tag ? tag : "NULL", elem_size));
    for (uint32_t i = 0; i < w->nsec; i++)
        if (name_eq(w->dir + (size_t)i * DIR_ENTRY + D_TAG, tag))
            return w_fail(w, sp_err(SP_EINTERNAL, "%s: duplicate section '%s'", w->path, tag));
    if (w->nsec == UINT32_MAX) return w_fail(w, sp_err(SP_EINTERNAL, "%s: too many sections", w->path));
    if (w->nsec == w->dcap) {
        uint32_t nc = w->dcap ? (w->dcap > UINT32_MAX / 2 ? UINT32_MAX : w->dcap * 2) : 8;
        unsigned char *nd = realloc(w->dir, (size_t)nc * DIR_ENTRY);
        if (!nd) return w_fail(w, sp_err(SP_ENOMEM, "%s: out of memory", w->path));
        w->dir = nd;
        w->dcap = nc;
    }
    int rc = w_pad(w);
    if (rc) return rc;
    unsigned char *e = w->dir + (size_t)w->nsec * DIR_ENTRY;
    memset(e, 0, DIR_ENTRY);
    memcpy(e + D_TAG, tag, strlen(tag));
    put32(e + D_ELEM, elem_size);
    put64(e + D_OFF, w->pos);
    XXH64_reset(w->xs, 0);
    w->in_section = 1;
    return SP_OK;
}

int sp_sfile_append(sp_sfile_w *w, const void *data, uint64_t nelem) {
    if (!w) return sp_err(SP_EINTERNAL, "sp_sfile_append: w is NULL");
    if (w->err) return w->err;
    if (!w->in_section) return w_fail(w, sp_err(SP_EINTERNAL, "%s: sp_sfile_append outside a section", w->path));
    unsigned char *e = w->dir + (size_t)w->nsec * DIR_ENTRY;
    uint64_t es = get32(e + D_ELEM), count = get64(e + D_COUNT);
    if (nelem > (UINT64_MAX / 2) / es || count + nelem > (UINT64_MAX / 2) / es)
        return w_fail(w, sp_err(SP_EINTERNAL, "%s: section too large", w->path));
    if (nelem == 0) return SP_OK;
    if (!data) return w_fail(w, sp_err(SP_EINTERNAL, "%s: sp_sfile_append: data is NULL", w->path));
    uint64_t n = nelem * es;
    if (n > SIZE_MAX) return w_fail(w, sp_err(SP_EINTERNAL, "%s: section too large", w->path));
    XXH64_update(w->xs, data, (size_t)n);
    int rc = w_bytes(w, data, (size_t)n);
    if (rc) return rc;
    put64(e + D_COUNT, count + nelem);
    return SP_OK;
}

int sp_sfile_end(sp_sfile_w *w) {
    if (!w) return sp_err(SP_EINTERNAL, "sp_sfile_end: w is NULL");
    if (w->err) return w->err;
    if (!w->in_section) return w_fail(w, sp_err(SP_EINTERNAL, "%s: sp_sfile_end outside a section", w->path));
    put64(w->dir + (size_t)w->nsec * DIR_ENTRY + D_XXH, XXH64_digest(w->xs));
    w->nsec++;
    w->in_section = 0;
    return SP_OK;
}

int sp_sfile_put(sp_sfile_w *w, const char *tag, uint32_t elem_size, const void *data, uint64_t nelem) {
    int rc = sp_sfile_begin(w, tag, elem_size);
    if (!rc) rc = sp_sfile_append(w, data, nelem);
    if (!rc) rc = sp_sfile_end(w);
    return rc;
}

/* fsyncs the directory holding path so that the rename is durable. */
static int fsync_parent(const char *path) {
    char *d = strdup(path);
    if (!d) return SP_ENOMEM;
    char *slash = strrchr(d, '/');
    const char *dir = slash ? (slash == d ? "/" : (*slash = 0, d)) : ".";
    int rc = SP_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) rc = sp_err(SP_EIO, "%s: cannot fsync directory %s: %s", path, dir, strerror(errno));
    if (fd >= 0) close(fd);
    free(d);
    return rc;
}

int sp_sfile_commit(sp_sfile_w *w, uint64_t *xxh) {
    int rc;
    if (!w) return sp_err(SP_EINTERNAL, "sp_sfile_commit: w is NULL");
    if (w->err) { rc = w->err; goto fail; }
    if (w->in_section) { rc = sp_err(SP_EINTERNAL, "%s: sp_sfile_commit inside a section", w->path); goto fail; }
    if ((rc = w_pad(w))) goto fail;
    uint64_t dir_off = w->pos;
    size_t dir_bytes = (size_t)w->nsec * DIR_ENTRY;
    if (dir_bytes && (rc = w_bytes(w, w->dir, dir_bytes))) goto fail;
    if ((rc = w_flush(w))) goto fail;
    unsigned char h[HDR_BYTES] = {0};
    memcpy(h + H_MAGIC, MAGIC, 8);
    put32(h + H_VERSION, SP_SFILE_VERSION);
    put32(h + H_NSEC, w->nsec);
    memcpy(h + H_KIND, w->kind, SP_SFILE_TAG);
    put64(h + H_DIROFF, dir_off);
    put64(h + H_FBYTES, w->pos);
    put64(h + H_DIRXXH, XXH64(w->dir, dir_bytes, 0));
    uint64_t hx = XXH64(h, HDR_SUMMED, 0);
    put64(h + H_HXXH, hx);
    ssize_t r;
    do r = pwrite(w->fd, h, HDR_BYTES, 0); while (r < 0 && errno == EINTR);
    if (r != HDR_BYTES) {
        rc = sp_err(SP_EIO, "%s: header write failed: %s", w->tmp, r < 0 ? strerror(errno) : "short write");
        goto fail;
    }
    if (fsync(w->fd) != 0) { rc = sp_err(SP_EIO, "%s: fsync failed: %s", w->tmp, strerror(errno)); goto fail; }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0) { rc = sp_err(SP_EIO, "%s: close failed: %s", w->tmp, strerror(errno)); goto fail; }
    if (rename(w->tmp, w->path) != 0) {
        rc = sp_err(SP_EIO, "%s: cannot rename %s into place: %s", w->path, w->tmp, strerror(errno));
        goto fail;
    }
    rc = fsync_parent(w->path);
    if (!rc && xxh) *xxh = hx;
    w_free(w);
    return rc;
fail:
    sp_sfile_discard(w);
    return rc;
}

void sp_sfile_discard(sp_sfile_w *w) {
    if (!w) return;
    if (w->fd >= 0) { close(w->fd); w->fd = -1; }
    if (w->tmp) unlink(w->tmp);
    w_free(w);
}

/* ---- reader ---- */

typedef struct {
    char tag[SP_SFILE_TAG + 1];
    uint32_t elem_size;
    uint64_t count, offset;
} sec;

struct sp_sfile_r {
    char *path;
    unsigned char *mem; /* the whole file, 64-byte aligned */
    uint64_t size, digest;
    uint32_t nsec;
    sec *secs;
};

void sp_sfile_close(sp_sfile_r *r) {
    if (!r) return;
    free(r->mem);
    free(r->secs);
    free(r->path);
    free(r);
}

/* Checks that mem[a, b) is all zero (alignment padding). */
static int zero_range(const unsigned char *m, uint64_t a, uint64_t b) {
    for (uint64_t i = a; i < b; i++)
        if (m[i]) return 0;
    return 1;
}

/* Verifies r->mem (r->size bytes) and fills r->secs. */
static int verify(sp_sfile_r *r, const char *kind) {
    const char *p = r->path;
    const unsigned char *m = r->mem;
    if (r->size < HDR_BYTES)
        return sp_err(SP_EFORMAT, "%s: file is %llu bytes, shorter than the 64-byte header (truncated?)", p,
                      (unsigned long long)r->size);
    if (memcmp(m + H_MAGIC, MAGIC, 8) != 0) return sp_err(SP_EFORMAT, "%s: bad magic, not a sagepipe stage file", p);
    if (XXH64(m, HDR_SUMMED, 0) != get64(m + H_HXXH)) return sp_err(SP_EFORMAT, "%s: header checksum mismatch", p);
    uint32_t ver = get32(m + H_VERSION);
    if (ver != SP_SFILE_VERSION) return sp_err(SP_EFORMAT, "%s: version %u, expected %u", p, ver, SP_SFILE_VERSION);
    size_t kl = name_len(m + H_KIND);
    if (kl == 0) return sp_err(SP_EFORMAT, "%s: bad kind field", p);
    if (kind && !name_eq(m + H_KIND, kind))
        return sp_err(SP_EFORMAT, "%s: kind '%.*s', expected '%s'", p, (int)kl, (const char *)(m + H_KIND), kind);
    uint64_t fbytes = get64(m + H_FBYTES), doff = get64(m + H_DIROFF);
    uint32_t ns = get32(m + H_NSEC);
    if (fbytes != r->size)
        return sp_err(SP_EFORMAT, "%s: file is %llu bytes, header says %llu (truncated or appended to?)", p,
                      (unsigned long long)r->size, (unsigned long long)fbytes);
    uint64_t dbytes = (uint64_t)ns * DIR_ENTRY; /* < 2^38: no overflow */
    /* The directory is the last thing in the file, at an aligned offset. */
    if (doff < HDR_BYTES || doff % ALIGN || doff > fbytes || fbytes - doff != dbytes)
        return sp_err(SP_EFORMAT, "%s: directory of %u entries at offset %llu does not end the %llu-byte file", p, ns,
                      (unsigned long long)doff, (unsigned long long)fbytes);
    if (XXH64(m + doff, (size_t)dbytes, 0) != get64(m + H_DIRXXH))
        return sp_err(SP_EFORMAT, "%s: directory checksum mismatch", p);
    r->secs = calloc(ns ? ns : 1, sizeof *r->secs);
    if (!r->secs) return sp_err(SP_ENOMEM, "%s: out of memory", p);
    uint64_t prev_end = HDR_BYTES;
    for (uint32_t i = 0; i < ns; i++) {
        const unsigned char *e = m + doff + (uint64_t)i * DIR_ENTRY;
        sec *s = &r->secs[i];
        size_t tl = name_len(e + D_TAG);
        if (tl == 0) return sp_err(SP_EFORMAT, "%s: section %u: bad tag field", p, i);
        memcpy(s->tag, e + D_TAG, tl);
        s->tag[tl] = 0;
        s->elem_size = get32(e + D_ELEM);
        s->count = get64(e + D_COUNT);
        s->offset = get64(e + D_OFF);
        if (s->elem_size == 0 || get32(e + D_RESV) != 0)
            return sp_err(SP_EFORMAT, "%s: section '%s': elem_size 0 or reserved field not 0", p, s->tag);
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(r->secs[j].tag, s->tag) == 0) return sp_err(SP_EFORMAT, "%s: duplicate section '%s'", p, s->tag);
        /* sections follow each other in directory order, aligned, before the directory */
        if (s->offset % ALIGN || s->offset < prev_end || s->offset > doff ||
            s->count > (doff - s->offset) / s->elem_size)
            return sp_err(SP_EFORMAT, "%s: section '%s' (%llu x %u bytes at offset %llu) is out of bounds or misaligned",
                          p, s->tag, (unsigned long long)s->count, s->elem_size, (unsigned long long)s->offset);
        uint64_t nb = s->count * s->elem_size;
        if (!zero_range(m, prev_end, s->offset))
            return sp_err(SP_EFORMAT, "%s: non-zero padding before section '%s'", p, s->tag);
        if (XXH64(m + s->offset, (size_t)nb, 0) != get64(e + D_XXH))
            return sp_err(SP_EFORMAT, "%s: section '%s' checksum mismatch", p, s->tag);
        prev_end = s->offset + nb;
    }
    if (!zero_range(m, prev_end, doff)) return sp_err(SP_EFORMAT, "%s: non-zero padding before the directory", p);
    r->nsec = ns;
    r->digest = get64(m + H_HXXH);
    return SP_OK;
}

int sp_sfile_open(sp_sfile_r **out, const char *path, const char *kind) {
    int rc = SP_OK, fd = -1;
    if (!out) return sp_err(SP_EINTERNAL, "sp_sfile_open: out is NULL");
    *out = NULL;
    if (!path) return sp_err(SP_EINTERNAL, "sp_sfile_open: path is NULL");
    sp_sfile_r *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) { rc = sp_err(SP_ENOMEM, "%s: out of memory", path); goto fail; }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { rc = sp_err(SP_EIO, "%s: cannot open: %s", path, strerror(errno)); goto fail; }
    struct stat st;
    if (fstat(fd, &st) != 0) { rc = sp_err(SP_EIO, "%s: cannot stat: %s", path, strerror(errno)); goto fail; }
    if (!S_ISREG(st.st_mode)) { rc = sp_err(SP_EIO, "%s: not a regular file", path); goto fail; }
    r->size = (uint64_t)st.st_size;
    if (r->size > SIZE_MAX - ALIGN) { rc = sp_err(SP_EFORMAT, "%s: file too large", path); goto fail; }
    /* graph and embedding sections are read at random: 2 MiB pages for big files */
    void *mem = r->size >= ((uint64_t)2 << 20) ? sp_alloc_huge((size_t)r->size) : NULL;
    if (!mem && posix_memalign(&mem, ALIGN, r->size ? (size_t)r->size : ALIGN) != 0) {
        rc = sp_err(SP_ENOMEM, "%s: cannot allocate %llu bytes", path, (unsigned long long)r->size);
        goto fail;
    }
    r->mem = mem;
    for (uint64_t got = 0; got < r->size;) {
        ssize_t n = read(fd, r->mem + got, (size_t)(r->size - got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { rc = sp_err(SP_EIO, "%s: read failed: %s", path, strerror(errno)); goto fail; }
        if (n == 0) { rc = sp_err(SP_EFORMAT, "%s: file shrank while reading (truncated?)", path); goto fail; }
        got += (uint64_t)n;
    }
    if ((rc = verify(r, kind))) goto fail;
    close(fd);
    *out = r;
    return SP_OK;
fail:
    if (fd >= 0) close(fd);
    sp_sfile_close(r);
    return rc;
}

int sp_sfile_get(const sp_sfile_r *r, const char *tag, uint32_t elem_size, const void **data, uint64_t *count) {
    if (!r || !tag || !data || !count) return sp_err(SP_EINTERNAL, "sp_sfile_get: NULL argument");
    for (uint32_t i = 0; i < r->nsec; i++) {
        const sec *s = &r->secs[i];
        if (strcmp(s->tag, tag) != 0) continue;
        if (s->elem_size != elem_size)
            return sp_err(SP_EFORMAT, "%s: section '%s' has elem_size %u, expected %u", r->path, tag, s->elem_size,
                          elem_size);
        *data = r->mem + s->offset;
        *count = s->count;
        return SP_OK;
    }
    return sp_err(SP_EFORMAT, "%s: no section '%s'", r->path, tag);
}

int sp_sfile_has(const sp_sfile_r *r, const char *tag) {
    if (!r || !tag) return 0;
    for (uint32_t i = 0; i < r->nsec; i++)
        if (strcmp(r->secs[i].tag, tag) == 0) return 1;
    return 0;
}

uint64_t sp_sfile_digest(const sp_sfile_r *r) { return r ? r->digest : 0; }
