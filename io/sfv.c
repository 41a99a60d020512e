/* sfv: reader and writer of the dense pin feature file (DESIGN §3, io/sfv.h).
 * Every header field and the file size are checked before a record is read;
 * a bad file is SP_EFORMAT with the path and what is wrong, never a crash.
 * Values are little-endian on disk; hosts of either byte order are handled. */
#include "sfv.h"
#include "sp_base.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SFV_READ_BUF (1u << 20)
#define SFV_WRITE_BUF (8u << 20)

struct sp_sfv_reader {
    FILE *f;
    char *path;
    char *iobuf;
    uint32_t dim;
    uint64_t count, first, share, next; /* next: records of the share read */
    unsigned char *rec;                 /* (8 + 4*dim) bytes */
};

struct sp_sfv_writer {
    FILE *f;
    char *path;
    char *iobuf;
    uint32_t dim;
    uint64_t count;
    unsigned char *rec;
};

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const unsigned char *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }
static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}
static void put64(unsigned char *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int sp_sfv_open(sp_sfv_reader **out, const char *path, int part, int nparts) {
    *out = NULL;
    if (!path || nparts < 1 || part < 0 || part >= nparts)
        return sp_err(SP_EINTERNAL, "sp_sfv_open: bad share %d of %d", part, nparts);
    sp_sfv_reader *r = calloc(1, sizeof *r);
    if (!r) return sp_err(SP_ENOMEM, "sfv reader for %s", path);
    int rc = SP_OK;
    r->path = dupstr(path);
    r->iobuf = malloc(SFV_READ_BUF);
    if (!r->path || !r->iobuf) { rc = sp_err(SP_ENOMEM, "sfv reader for %s", path); goto fail; }
    r->f = fopen(path, "rb");
    if (!r->f) { rc = sp_err(SP_EIO, "%s: cannot open: %s", path, strerror(errno)); goto fail; }
    setvbuf(r->f, r->iobuf, _IOFBF, SFV_READ_BUF);
    struct stat st;
    if (fstat(fileno(r->f), &st) != 0) { rc = sp_err(SP_EIO, "%s: stat: %s", path, strerror(errno)); goto fail; }
    if (!S_ISREG(st.st_mode)) { rc = sp_err(SP_EFORMAT, "%s: not a regular file", path); goto fail; }
    uint64_t size = (uint64_t)st.st_size;
    unsigned char h[SP_SFV_HEADER_BYTES];
    if (size < SP_SFV_HEADER_BYTES) {
        rc = sp_err(SP_EFORMAT, "%s: %llu bytes, shorter than the %u-byte sfv header", path,
                    (unsigned long long)size, SP_SFV_HEADER_BYTES);
        goto fail;
    }
    if (fread(h, 1, sizeof h, r->f) != sizeof h) {
        rc = ferror(r->f) ? sp_err(SP_EIO, "%s: read error in header", path)
                          : sp_err(SP_EFORMAT, "%s: truncated header", path);
        goto fail;
    }
    if (memcmp(h, SP_SFV_MAGIC, 4) != 0) { rc = sp_err(SP_EFORMAT, "%s: bad magic (not an SFV1 file)", path); goto fail; }
    uint32_t ver = le32(h + 4);
    if (ver != SP_SFV_VERSION) {
        rc = sp_err(SP_EFORMAT, "%s: unsupported sfv version %u (want %u)", path, ver, SP_SFV_VERSION);
        goto fail;
    }
    r->dim = le32(h + 8);
    if (r->dim < 1 || r->dim > SP_SFV_MAX_DIM) {
        rc = sp_err(SP_EFORMAT, "%s: bad dim %u (want 1..%u)", path, r->dim, SP_SFV_MAX_DIM);
        goto fail;
    }
    r->count = le64(h + 12);
    uint64_t recb = 8 + 4 * (uint64_t)r->dim;
    uint64_t body = size - SP_SFV_HEADER_BYTES;
    if (r->count > body / recb || body != r->count * recb) {
        if (r->count > body / recb)
            rc = sp_err(SP_EFORMAT, "%s: truncated: header says %llu records of dim %u, file has %llu bytes "
                        "(room for %llu)", path, (unsigned long long)r->count, r->dim,
                        (unsigned long long)size, (unsigned long long)(body / recb));
        else
            rc = sp_err(SP_EFORMAT, "%s: size %llu bytes does not match header (%llu records of dim %u = %llu bytes)",
                        path, (unsigned long long)size, (unsigned long long)r->count, r->dim,
                        (unsigned long long)(SP_SFV_HEADER_BYTES + r->count * recb));
        goto fail;
    }
    r->rec = malloc(recb);
    if (!r->rec) { rc = sp_err(SP_ENOMEM, "sfv record buffer for %s", path); goto fail; }
    unsigned __int128 c = r->count;
    r->first = (uint64_t)(c * (unsigned)part / (unsigned)nparts);
    uint64_t end = (uint64_t)(c * (unsigned)(part + 1) / (unsigned)nparts);
    r->share = end - r->first;
    if (r->first && fseeko(r->f, (off_t)(SP_SFV_HEADER_BYTES + r->first * recb), SEEK_SET) != 0) {
        rc = sp_err(SP_EIO, "%s: seek: %s", path, strerror(errno));
        goto fail;
    }
    *out = r;
    return SP_OK;
fail:
    sp_sfv_close(r);
    return rc;
}

uint32_t sp_sfv_dim(const sp_sfv_reader *r) { return r->dim; }
uint64_t sp_sfv_count(const sp_sfv_reader *r) { return r->count; }
uint64_t sp_sfv_share_first(const sp_sfv_reader *r) { return r->first; }
uint64_t sp_sfv_share_count(const sp_sfv_reader *r) { return r->share; }

int sp_sfv_next(sp_sfv_reader *r, uint64_t *index, uint64_t *id, float *vec) {
    if (r->next >= r->share) return 0;
    size_t recb = 8 + 4 * (size_t)r->dim;
    if (fread(r->rec, 1, recb, r->f) != recb) {
        if (ferror(r->f)) return sp_err(SP_EIO, "%s: read error at record %llu", r->path,
                                        (unsigned long long)(r->first + r->next));
        return sp_err(SP_EFORMAT, "%s: truncated at record %llu (file shrank after open?)", r->path,
                      (unsigned long long)(r->first + r->next));
    }
    if (index) *index = r->first + r->next;
    *id = le64(r->rec);
    for (uint32_t k = 0; k < r->dim; k++) {
        uint32_t bits = le32(r->rec + 8 + 4 * (size_t)k);
        memcpy(&vec[k], &bits, 4);
    }
    r->next++;
    return 1;
}

int sp_sfv_finite(const float *vec, uint32_t dim) {
    for (uint32_t k = 0; k < dim; k++)
        if (!isfinite(vec[k])) return 0;
    return 1;
}

void sp_sfv_close(sp_sfv_reader *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    free(r->iobuf);
    free(r->rec);
    free(r->path);
    free(r);
}

static void writer_free(sp_sfv_writer *w) {
    free(w->iobuf);
    free(w->rec);
    free(w->path);
    free(w);
}

int sp_sfv_write_begin(sp_sfv_writer **out, const char *path, uint32_t dim) {
    *out = NULL;
    if (dim < 1 || dim > SP_SFV_MAX_DIM)
        return sp_err(SP_EINTERNAL, "%s: sfv dim %u out of range 1..%u", path, dim, SP_SFV_MAX_DIM);
    sp_sfv_writer *w = calloc(1, sizeof *w);
    if (!w) return sp_err(SP_ENOMEM, "sfv writer for %s", path);
    w->dim = dim;
    w->path = dupstr(path);
    w->iobuf = malloc(SFV_WRITE_BUF);
    w->rec = malloc(8 + 4 * (size_t)dim);
    if (!w->path || !w->iobuf || !w->rec) { writer_free(w); return sp_err(SP_ENOMEM, "sfv writer for %s", path); }
    w->f = fopen(path, "wb");
    if (!w->f) {
        int e = errno;
        writer_free(w);
        return sp_err(SP_EIO, "%s: cannot create: %s", path, strerror(e));
    }
    setvbuf(w->f, w->iobuf, _IOFBF, SFV_WRITE_BUF);
    unsigned char h[SP_SFV_HEADER_BYTES];
    memcpy(h, SP_SFV_MAGIC, 4);
    put32(h + 4, SP_SFV_VERSION);
    put32(h + 8, dim);
    put64(h + 12, 0);
    if (fwrite(h, 1, sizeof h, w->f) != sizeof h) {
        int rc = sp_err(SP_EIO, "%s: write error: %s", path, strerror(errno));
        sp_sfv_write_abort(w);
        return rc;
    }
    *out = w;
    return SP_OK;
}

int sp_sfv_write(sp_sfv_writer *w, uint64_t id, const float *vec) {
    size_t recb = 8 + 4 * (size_t)w->dim;
    put64(w->rec, id);
    for (uint32_t k = 0; k < w->dim; k++) {
        uint32_t bits;
        memcpy(&bits, &vec[k], 4);
        put32(w->rec + 8 + 4 * (size_t)k, bits);
    }
    if (fwrite(w->rec, 1, recb, w->f) != recb)
        return sp_err(SP_EIO, "%s: write error: %s", w->path, strerror(errno));
    w->count++;
    return SP_OK;
}

int sp_sfv_write_end(sp_sfv_writer *w) {
    int rc = SP_OK;
    unsigned char c[8];
    put64(c, w->count);
    if (fflush(w->f) != 0 || fseeko(w->f, 12, SEEK_SET) != 0 || fwrite(c, 1, 8, w->f) != 8 ||
        fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        rc = sp_err(SP_EIO, "%s: write error: %s", w->path, strerror(errno));
    if (fclose(w->f) != 0 && rc == SP_OK) rc = sp_err(SP_EIO, "%s: close: %s", w->path, strerror(errno));
    writer_free(w);
    return rc;
}

void sp_sfv_write_abort(sp_sfv_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    unlink(w->path);
    writer_free(w);
}
