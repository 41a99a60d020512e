/* shard: keys, routing, vector encodings, file checksums, the LMDB shard
 * writer and the `latest` flip (DESIGN §6). The writer keeps one cursor in
 * a write transaction, appends with MDB_APPEND | MDB_RESERVE, commits every
 * TXN_BYTES of values without syncing (MDB_NOSYNC), then closes the
 * environment, syncs the file once (in a helper thread, while this one
 * hashes the file from the page cache) and renames it into place. (MDB_WRITEMAP, which would save LMDB's copy of each dirty
 * page, measured 2x slower on ext4: a page fault and block allocation per
 * page of a sparse file.) */
#include "shard.h"

#include <errno.h>
#include <fcntl.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif
#include <limits.h>
#include <lmdb.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#include "fsutil.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shard values are little-endian and encoded with memcpy: add byte swaps for this host"
#endif

/* Values per write transaction: large enough that commits cost nothing
 * measurable, small enough that a transaction's dirty pages stay well under
 * LMDB's dirty-page limit (MDB_IDL_UM_MAX, 128K pages). */
#define TXN_BYTES (64u << 20)

/* ---- keys and routing ---- */

void sp_shard_key(uint8_t key[SP_SHARD_KEY_LEN], sp_type t, uint64_t id) {
    key[0] = (uint8_t)sp_type_char[t];
    for (int i = 0; i < 8; i++) key[1 + i] = (uint8_t)(id >> (56 - 8 * i));
}

int sp_shard_key_parse(const void *key, size_t len, sp_type *t, uint64_t *id) {
    const uint8_t *k = key;
    if (len != SP_SHARD_KEY_LEN) return sp_err(SP_EFORMAT, "key of %zu bytes (want %d)", len, SP_SHARD_KEY_LEN);
    int type = -1;
    for (int i = 0; i < SP_NTYPES; i++)
        if (k[0] == (uint8_t)sp_type_char[i]) type = i;
    if (type < 0) return sp_err(SP_EFORMAT, "key with unknown type byte 0x%02x", k[0]);
    uint64_t v = 0;
    for (int i = 1; i <= 8; i++) v = v << 8 | k[i];
    *t = (sp_type)type;
    *id = v;
    return SP_OK;
}

uint32_t sp_shard_of(uint64_t id, uint32_t nshards) {
    uint8_t be[8];
    for (int i = 0; i < 8; i++) be[i] = (uint8_t)(id >> (56 - 8 * i));
    return (uint32_t)(XXH64(be, 8, 0) % nshards);
}

int sp_shard_id_parse(const char *text, sp_type *t, uint64_t *id) {
    int type = -1;
    for (int i = 0; text && i < SP_NTYPES; i++)
        if (text[0] == sp_type_char[i]) type = i;
    size_t n = text ? strlen(text) : 0;
    if (type < 0 || n < 2 || n > 21)
        return sp_err(SP_EUSAGE, "bad id '%s': expected p<id>, b<id> or u<id> (e.g. p123)", text ? text : "");
    uint64_t v = 0;
    for (size_t i = 1; i < n; i++) {
        unsigned d = (unsigned)(text[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return sp_err(SP_EUSAGE, "bad id '%s': the id must be a decimal uint64", text);
        v = v * 10 + d;
    }
    *t = (sp_type)type;
    *id = v;
    return SP_OK;
}

int sp_type_from_name(const char *name) {
    for (int i = 0; name && i < SP_NTYPES; i++)
        if (!strcmp(name, sp_type_name[i])) return i;
    return -1;
}

/* ---- encodings ---- */

static const char *const DTYPE_NAMES[] = {"f32", "f16", "i8"};

int sp_dtype_parse(const char *s) {
    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, DTYPE_NAMES[i])) return i;
    return -1;
}

const char *sp_dtype_name(sp_dtype dt) { return (unsigned)dt < 3 ? DTYPE_NAMES[dt] : "?"; }

size_t sp_dtype_bytes(sp_dtype dt, uint32_t dim) {
    switch (dt) {
    case SP_DT_F32: return 4 * (size_t)dim;
    case SP_DT_F16: return 2 * (size_t)dim;
    case SP_DT_I8: return 4 + (size_t)dim;
    }
    return 0;
}

uint16_t sp_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((ax >> 13) & 0x3ff); /* NaN, made quiet */
    if (ax >= 0x47800000u) return sign | 0x7c00;                                   /* >= 2^16 (and inf) */
    if (ax >= 0x38800000u) {
        /* Normal half: rebias the exponent (127 -> 15) and round the low 13
         * mantissa bits to nearest even; a carry moves into the exponent,
         * which also turns [65520, 65536) into inf as it should. */
        uint32_t v = ax - 0x38000000u;
        v += 0xfffu + ((v >> 13) & 1u);
        return sign | (uint16_t)(v >> 13);
    }
    /* Subnormal half or zero (|f| < 2^-14): adding 0.5 aligns the value so
     * that the float adder's own round-to-nearest-even leaves q * 2^-24 in
     * the low mantissa bits (needs the default rounding mode, no fast-math). */
    float a, magic = 0.5f;
    memcpy(&a, &ax, 4);
    volatile float s = a + magic; /* volatile: keep the rounding add */
    float sv = s;
    uint32_t sb, mb;
    memcpy(&sb, &sv, 4);
    memcpy(&mb, &magic, 4);
    return sign | (uint16_t)(sb - mb);
}

float sp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, x;
    if (e == 0) {
        float v = (float)m * 0x1p-24f; /* zero or subnormal, exact */
        memcpy(&x, &v, 4);
        x |= sign;
    } else if (e == 31) x = sign | 0x7f800000u | (m << 13);
    else x = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The F16C instruction converts 8 floats at once with the same rounding
 * (nearest even, subnormals, inf, quiet NaN); the scalar code is the
 * reference and finishes the tail. Used when the CPU has AVX and F16C. */
__attribute__((target("avx,f16c"))) static void f16_encode_f16c(const float *x, uint32_t dim, uint8_t *o) {
    uint32_t j = 0;
    for (; j + 8 <= dim; j += 8)
        _mm_storeu_si128((__m128i *)(void *)(o + 2 * (size_t)j),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + j), _MM_FROUND_TO_NEAREST_INT));
    for (; j < dim; j++) {
        uint16_t h = sp_f32_to_f16(x[j]);
        memcpy(o + 2 * (size_t)j, &h, 2);
    }
}
static int have_f16c(void) {
    static int have = -1; /* a benign race: every thread computes the same value */
    if (have < 0) have = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
    return have;
}
#else
static int have_f16c(void) { return 0; }
static void f16_encode_f16c(const float *x, uint32_t dim, uint8_t *o) { (void)x, (void)dim, (void)o; }
#endif

/* q = round-to-nearest-even(clamp(r, -127, 127)): adding and removing
 * 1.5 * 2^23 rounds in the float adder (exact for |r| <= 127; no libm). */
static inline int8_t i8_round(float r) {
    const float magic = 0x1.8p23f;
    r = r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r;
    return (int8_t)(int)((r + magic) - magic);
}

/* i8: f32 scale = max|x| / 127, then q_j. The SSE2 path (every x86-64) does
 * the same operations 4 and 16 at a time (cvtps rounds to nearest even in
 * the default MXCSR mode): the results are identical to the scalar tail's. */
static void i8_encode(const float *x, uint32_t dim, uint8_t *o) {
    uint32_t j = 0;
    float m = 0;
#ifdef __SSE2__
    __m128 mx = _mm_setzero_ps(), sign = _mm_set1_ps(-0.0f);
    for (; j + 4 <= dim; j += 4) mx = _mm_max_ps(mx, _mm_andnot_ps(sign, _mm_loadu_ps(x + j)));
    float t[4];
    _mm_storeu_ps(t, mx);
    for (int k = 0; k < 4; k++) m = t[k] > m ? t[k] : m;
#endif
    for (; j < dim; j++) m = fabsf(x[j]) > m ? fabsf(x[j]) : m;
    float scale = m / 127.0f;
    memcpy(o, &scale, 4);
    int8_t *q = (int8_t *)(o + 4);
    if (m == 0) {
        memset(q, 0, dim);
        return;
    }
    float inv = 127.0f / m;
    j = 0;
#ifdef __SSE2__
    __m128 vi = _mm_set1_ps(inv), hi = _mm_set1_ps(127.0f), lo = _mm_set1_ps(-127.0f);
    for (; j + 16 <= dim; j += 16) {
        __m128i v[4];
        for (int k = 0; k < 4; k++)
            v[k] = _mm_cvtps_epi32(_mm_max_ps(lo, _mm_min_ps(hi, _mm_mul_ps(_mm_loadu_ps(x + j + 4 * k), vi))));
        __m128i w = _mm_packs_epi16(_mm_packs_epi32(v[0], v[1]), _mm_packs_epi32(v[2], v[3]));
        _mm_storeu_si128((__m128i *)(void *)(q + j), w);
    }
#endif
    for (; j < dim; j++) q[j] = i8_round(x[j] * inv);
}

void sp_vec_encode(sp_dtype dt, const float *x, uint32_t dim, void *out) {
    uint8_t *o = out;
    if (dt == SP_DT_F32) {
        memcpy(o, x, 4 * (size_t)dim);
    } else if (dt == SP_DT_F16) {
        if (have_f16c()) {
            f16_encode_f16c(x, dim, o);
            return;
        }
        for (uint32_t j = 0; j < dim; j++) {
            uint16_t h = sp_f32_to_f16(x[j]);
            memcpy(o + 2 * (size_t)j, &h, 2);
        }
    } else {
        i8_encode(x, dim, o);
    }
}

void sp_vec_decode(sp_dtype dt, const void *in, uint32_t dim, float *out) {
    const uint8_t *p = in;
    if (dt == SP_DT_F32) {
        memcpy(out, p, 4 * (size_t)dim);
    } else if (dt == SP_DT_F16) {
        for (uint32_t j = 0; j < dim; j++) {
            uint16_t h;
            memcpy(&h, p + 2 * (size_t)j, 2);
            out[j] = sp_f16_to_f32(h);
        }
    } else {
        float scale;
        memcpy(&scale, p, 4);
        const int8_t *q = (const int8_t *)(p + 4);
        for (uint32_t j = 0; j < dim; j++) out[j] = (float)q[j] * scale;
    }
}

/* xxh64 of the first `size` bytes of an open file: hashed through a
 * read-only mapping (no copy; a shard just written is in the page cache),
 * or read in chunks where mmap fails. */
static int fd_xxh64(int fd, uint64_t size, const char *path, uint64_t *xxh) {
    if (size == 0) {
        *xxh = XXH64(NULL, 0, 0);
        return SP_OK;
    }
    if (size <= SIZE_MAX) {
        void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            madvise(p, (size_t)size, MADV_SEQUENTIAL); /* measured faster than MAP_POPULATE or pread */
            *xxh = XXH64(p, (size_t)size, 0);
            munmap(p, (size_t)size);
            return SP_OK;
        }
    }
    size_t cap = 1u << 20;
    char *buf = malloc(cap);
    XXH64_state_t *h = XXH64_createState();
    int rc = buf && h ? SP_OK : SP_ENOMEM;
    uint64_t n = 0;
    if (!rc) XXH64_reset(h, 0);
    while (!rc && n < size) {
        ssize_t r = pread(fd, buf, size - n < cap ? (size_t)(size - n) : cap, (off_t)n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = sp_err(SP_EIO, "cannot read %s: %s", path, strerror(errno));
        else if (r == 0) rc = sp_err(SP_EIO, "%s: shorter than %llu bytes", path, (unsigned long long)size);
        else {
            XXH64_update(h, buf, (size_t)r);
            n += (uint64_t)r;
        }
    }
    if (!rc) *xxh = XXH64_digest(h);
    XXH64_freeState(h);
    free(buf);
    return rc;
}

int sp_file_xxh64(const char *path, uint64_t *xxh, uint64_t *bytes) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return sp_err(SP_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st) ? sp_err(SP_EIO, "cannot stat %s: %s", path, strerror(errno))
                            : fd_xxh64(fd, (uint64_t)st.st_size, path, xxh);
    if (!rc && bytes) *bytes = (uint64_t)st.st_size;
    close(fd);
    return rc;
}

/* ---- writer ---- */

struct sp_shard_w {
    MDB_env *env;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_dbi dbi;
    char path[PATH_MAX], tmp[PATH_MAX + 32];
    uint32_t dim;
    sp_dtype dt;
    size_t vbytes, psize;
    uint64_t count, txn_count, txn_max;
    uint8_t last[SP_SHARD_KEY_LEN];
};

static int lmdb_err(const sp_shard_w *w, int rc, const char *what) {
    /* LMDB turns a failed write (ENOSPC, EFBIG) into EIO: say how full the file system is */
    struct statvfs vfs;
    if (rc == EIO && !statvfs(w->tmp, &vfs))
        return sp_err(SP_EIO, "%s: %s: %s (%llu bytes free on its file system; a full disk or the file size limit "
                      "shows as this)", w->tmp, what, strerror(rc),
                      (unsigned long long)vfs.f_bavail * (unsigned long long)vfs.f_frsize);
    if (rc == ENOSPC || rc == EIO || rc == EACCES || rc == ENOENT || rc == EROFS)
        return sp_err(SP_EIO, "%s: %s: %s", w->tmp, what, strerror(rc));
    if (rc == ENOMEM) return sp_err(SP_ENOMEM, "%s: %s: out of memory", w->tmp, what);
    return sp_err(rc == MDB_MAP_FULL ? SP_EINTERNAL : SP_EIO, "%s: %s: %s", w->tmp, what, mdb_strerror(rc));
}

/* Upper bound of the pages `entries` appended values can add to the file:
 * leaf nodes (8-byte header + key + value + 2-byte slot) on pages filled at
 * least half, or, for values too big for a leaf (LMDB's limit is about half
 * a page), their overflow pages plus a small leaf node each; then branch
 * pages and the copied right-most path of each commit. */
static uint64_t pages_bound(uint64_t entries, size_t vbytes, size_t psize) {
    size_t body = psize - 16, node = 8 + SP_SHARD_KEY_LEN + vbytes + 2;
    uint64_t pages;
    if (node + 64 < body / 2) pages = 2 * ((entries * node + body - 1) / body);
    else pages = entries * ((vbytes + 16 + psize - 1) / psize) + 2 * ((entries * 27 + body - 1) / body);
    return pages + pages / 8 + 64;
}

/* Grows the map (only between transactions) so that the next transaction
 * of at most txn_max entries fits. */
static int ensure_map(sp_shard_w *w) {
    MDB_envinfo info;
    int rc = mdb_env_info(w->env, &info);
    if (rc) return lmdb_err(w, rc, "mdb_env_info");
    uint64_t need = ((uint64_t)info.me_last_pgno + 1 + pages_bound(w->txn_max, w->vbytes, w->psize)) * w->psize;
    if (need <= info.me_mapsize) return SP_OK;
    need += need / 4;
    need = (need + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
    if ((rc = mdb_env_set_mapsize(w->env, (size_t)need))) return lmdb_err(w, rc, "mdb_env_set_mapsize");
    return SP_OK;
}

static int begin_txn(sp_shard_w *w) {
    int rc = ensure_map(w);
    if (rc) return rc;
    if ((rc = mdb_txn_begin(w->env, NULL, 0, &w->txn))) return lmdb_err(w, rc, "mdb_txn_begin");
    if (!rc) rc = mdb_dbi_open(w->txn, NULL, 0, &w->dbi);
    if (!rc) rc = mdb_cursor_open(w->txn, w->dbi, &w->cur);
    if (rc) {
        mdb_txn_abort(w->txn);
        w->txn = NULL;
        return lmdb_err(w, rc, "opening the main database");
    }
    w->txn_count = 0;
    return SP_OK;
}

static int commit_txn(sp_shard_w *w) {
    int rc = mdb_txn_commit(w->txn); /* frees the cursor and the txn, also on failure */
    w->txn = NULL;
    w->cur = NULL;
    return rc ? lmdb_err(w, rc, "mdb_txn_commit") : SP_OK;
}

static void remove_lock_file(const char *path) {
    char lock[PATH_MAX + 40];
    snprintf(lock, sizeof lock, "%s-lock", path);
    unlink(lock);
}

static int fsync_parent(const char *path) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    return sp_fsync_dir(dir);
}

int sp_shard_w_open(sp_shard_w **out, const char *path, uint32_t dim, sp_dtype dt, uint64_t expected) {
    *out = NULL;
    if (dim == 0 || (unsigned)dt > SP_DT_I8 || strlen(path) >= PATH_MAX)
        return sp_err(SP_EINTERNAL, "sp_shard_w_open(%s): bad dim %u, dtype %d or path", path, dim, (int)dt);
    sp_shard_w *w = calloc(1, sizeof *w);
    if (!w) return SP_ENOMEM;
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%d", path, (int)getpid());
    w->dim = dim;
    w->dt = dt;
    w->vbytes = sp_dtype_bytes(dt, dim);
    w->txn_max = TXN_BYTES / (w->vbytes + SP_SHARD_KEY_LEN) + 1;
    long ps = sysconf(_SC_PAGESIZE);
    w->psize = ps > 0 ? (size_t)ps : 4096; /* LMDB's page size is the OS page size */
    unlink(w->tmp);
    remove_lock_file(w->tmp);
    int rc = mdb_env_create(&w->env);
    if (rc) {
        free(w);
        return sp_err(SP_ENOMEM, "mdb_env_create: %s", mdb_strerror(rc));
    }
    uint64_t map = (pages_bound(expected, w->vbytes, w->psize) + 16) * w->psize;
    map = (map + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
    rc = mdb_env_set_mapsize(w->env, (size_t)map);
    if (!rc)
        rc = mdb_env_open(w->env, w->tmp, MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOSYNC | MDB_NOMETASYNC, 0644);
    if (rc) {
        rc = lmdb_err(w, rc, "mdb_env_open");
        sp_shard_w_discard(w);
        return rc;
    }
    MDB_stat st;
    if (!mdb_env_stat(w->env, &st)) w->psize = st.ms_psize;
    *out = w;
    return SP_OK;
}

/* Checks the order of key against the previous one. */
static int check_order(sp_shard_w *w, const uint8_t *key) {
    if (w->count == 0) return SP_OK;
    int c = memcmp(key, w->last, SP_SHARD_KEY_LEN);
    if (c > 0) return SP_OK;
    sp_type t, pt;
    uint64_t id = 0, pid = 0;
    sp_shard_key_parse(key, SP_SHARD_KEY_LEN, &t, &id);
    sp_shard_key_parse(w->last, SP_SHARD_KEY_LEN, &pt, &pid);
    if (c == 0) return sp_err(SP_EINPUT, "%s: duplicate %c%llu", w->path, key[0], (unsigned long long)id);
    return sp_err(SP_EINTERNAL, "%s: key %c%llu after %c%llu: keys must be put in ascending order", w->path, key[0],
                  (unsigned long long)id, w->last[0], (unsigned long long)pid);
}

/* Reserves room for one value under key; *dst receives where to write it. */
static int put_reserve(sp_shard_w *w, const uint8_t *key, void **dst) {
    int rc = check_order(w, key);
    if (rc) return rc;
    if (!w->txn && (rc = begin_txn(w))) return rc;
    MDB_val k = {SP_SHARD_KEY_LEN, (void *)key}, v = {w->vbytes, NULL};
    rc = mdb_cursor_put(w->cur, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc) return lmdb_err(w, rc, "mdb_cursor_put");
    *dst = v.mv_data;
    memcpy(w->last, key, SP_SHARD_KEY_LEN);
    w->count++;
    return SP_OK;
}

static int after_put(sp_shard_w *w) {
    return ++w->txn_count >= w->txn_max ? commit_txn(w) : SP_OK;
}

int sp_shard_w_put(sp_shard_w *w, sp_type t, uint64_t id, const float *vec) {
    uint8_t key[SP_SHARD_KEY_LEN];
    void *dst = NULL;
    sp_shard_key(key, t, id);
    int rc = put_reserve(w, key, &dst);
    if (rc) return rc;
    sp_vec_encode(w->dt, vec, w->dim, dst);
    return after_put(w);
}

int sp_shard_w_put_enc(sp_shard_w *w, const uint8_t key[SP_SHARD_KEY_LEN], const void *val) {
    void *dst = NULL;
    int rc = put_reserve(w, key, &dst);
    if (rc) return rc;
    memcpy(dst, val, w->vbytes);
    return after_put(w);
}

typedef struct {
    int fd, err;
} sync_job;

static void *sync_main(void *arg) {
    sync_job *j = arg;
    j->err = fdatasync(j->fd) ? errno : 0;
    return NULL;
}

int sp_shard_w_commit(sp_shard_w *w, sp_shard_info *info) {
    int rc = w->txn ? commit_txn(w) : SP_OK, fd = -1;
    sp_shard_info in = {.count = w->count};
    if (rc) {
        sp_shard_w_discard(w);
        return rc;
    }
    mdb_env_close(w->env);
    w->env = NULL;
    remove_lock_file(w->tmp); /* MDB_NOLOCK makes none; make sure */
    remove_lock_file(w->path);
    struct stat st;
    if ((fd = open(w->tmp, O_RDONLY)) < 0) rc = sp_err(SP_EIO, "cannot open %s: %s", w->tmp, strerror(errno));
    if (!rc && fstat(fd, &st)) rc = sp_err(SP_EIO, "cannot stat %s: %s", w->tmp, strerror(errno));
    if (!rc) {
        /* the file is final: hash it from the page cache while another thread waits for the disk */
        in.bytes = (uint64_t)st.st_size;
        sync_job job = {.fd = fd};
        pthread_t th;
        int threaded = !pthread_create(&th, NULL, sync_main, &job);
        if (!threaded) sync_main(&job);
        if (info) rc = fd_xxh64(fd, in.bytes, w->tmp, &in.xxh64);
        if (threaded) pthread_join(th, NULL);
        if (job.err && !rc) rc = sp_err(SP_EIO, "cannot sync %s: %s", w->tmp, strerror(job.err));
    }
    if (fd >= 0) close(fd);
    if (!rc && rename(w->tmp, w->path)) rc = sp_err(SP_EIO, "cannot rename %s: %s", w->tmp, strerror(errno));
    if (!rc) rc = fsync_parent(w->path);
    if (!rc && info) *info = in;
    if (rc) unlink(w->tmp);
    free(w);
    return rc;
}

void sp_shard_w_discard(sp_shard_w *w) {
    if (!w) return;
    if (w->txn) mdb_txn_abort(w->txn);
    if (w->env) mdb_env_close(w->env);
    unlink(w->tmp);
    remove_lock_file(w->tmp);
    free(w);
}

/* ---- reader ---- */

static void (*r_assert_hook)(const char *msg);

static char r_last[PATH_MAX];

void sp_shard_r_assert_hook(void (*fn)(const char *msg)) { r_assert_hook = fn; }

const char *sp_shard_r_last(void) { return r_last; }

static void r_on_assert(MDB_env *env, const char *msg) {
    (void)env;
    if (r_assert_hook) r_assert_hook(msg);
}

int sp_shard_r_open(MDB_env **out, const char *path, uint64_t bytes) {
    MDB_env *env = NULL;
    *out = NULL;
    snprintf(r_last, sizeof r_last, "%s", path);
    int rc = mdb_env_create(&env);
    if (rc) return sp_err(SP_ENOMEM, "%s: mdb_env_create: %s", path, mdb_strerror(rc)), rc;
    if (r_assert_hook) (void)mdb_env_set_assert(env, r_on_assert); /* EINVAL where LMDB has no assertions */
    /* map the file (LMDB raises the map to the data size its header records if that is larger) */
    if (!(rc = mdb_env_set_mapsize(env, (size_t)bytes + 65536)))
        rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOLOCK | MDB_NOSUBDIR, 0);
    if (rc) {
        sp_err(SP_EFORMAT, "%s: not a readable LMDB file: %s", path, mdb_strerror(rc));
        mdb_env_close(env);
        return rc;
    }
    MDB_envinfo info;
    MDB_stat st;
    mdb_filehandle_t fd;
    struct stat fs;
    if ((rc = mdb_env_info(env, &info)) || (rc = mdb_env_stat(env, &st)) || (rc = mdb_env_get_fd(env, &fd))) {
        sp_err(SP_EFORMAT, "%s: not a readable LMDB file: %s", path, mdb_strerror(rc));
    } else if (fstat(fd, &fs)) {
        rc = errno;
        sp_err(SP_EIO, "%s: %s", path, strerror(rc));
    } else {
        uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
        if ((uint64_t)fs.st_size < need) {
            rc = MDB_CORRUPTED;
            sp_err(SP_EFORMAT, "%s: cut short: %llu bytes, but its LMDB header counts %llu pages of %u bytes",
                   path, (unsigned long long)fs.st_size, (unsigned long long)info.me_last_pgno + 1, st.ms_psize);
        }
    }
    if (rc) {
        mdb_env_close(env);
        return rc;
    }
    *out = env;
    return 0;
}

/* ---- publishing ---- */

void sp_shard_file_name(const char *entity, uint32_t shard, uint32_t nshards, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s-%05u-of-%05u.mdb", entity, entity, shard, nshards);
}

/* 1 if s is a name of the form YYYY-MM-DD (digits and dashes; such names sort as their dates) */
static int date_shaped(const char *s) {
    if (strlen(s) != 10) return 0;
    for (int i = 0; i < 10; i++)
        if (i == 4 || i == 7 ? s[i] != '-' : (s[i] < '0' || s[i] > '9')) return 0;
    return 1;
}

int sp_shard_latest_date(const char *export_dir, char date[11]) {
    char link[PATH_MAX], text[PATH_MAX], target[PATH_MAX], root[PATH_MAX];
    date[0] = 0;
    snprintf(link, sizeof link, "%s/latest", export_dir);
    ssize_t n = readlink(link, text, sizeof text - 1);
    if (n <= 0) return 0;
    text[n] = 0;
    /* where it resolves: a date directory right inside export_dir ("2026-11-21", "./2026-11-21/", an
     * absolute path to it, ...) */
    if (realpath(link, target) && realpath(export_dir, root)) {
        char *slash = strrchr(target, '/');
        if (slash && (size_t)(slash - target) == strlen(root) - (strcmp(root, "/") ? 0 : 1) &&
            !strncmp(target, root, (size_t)(slash - target)) && date_shaped(slash + 1)) {
            snprintf(date, 11, "%s", slash + 1);
            return 1;
        }
        return 0;
    }
    /* dangling: its text's last component, if a date */
    while (n > 1 && text[n - 1] == '/') text[--n] = 0;
    const char *last = strrchr(text, '/');
    last = last ? last + 1 : text;
    if (!date_shaped(last)) return 0;
    snprintf(date, 11, "%s", last);
    return 1;
}

int sp_shard_latest_check(const char *export_dir) {
    char link[PATH_MAX];
    struct stat st;
    snprintf(link, sizeof link, "%s/latest", export_dir);
    if (!lstat(link, &st) && !S_ISLNK(st.st_mode)) return sp_err(SP_EUSAGE, "%s exists and is not a symlink", link);
    return SP_OK;
}

int sp_shard_flip_latest(const char *export_dir, const char *date, char *later, size_t later_cap) {
    if (later && later_cap) *later = 0;
    if (!date || !*date || strchr(date, '/') || !strcmp(date, ".") || !strcmp(date, ".."))
        return sp_err(SP_EUSAGE, "flip latest: bad date '%s'", date ? date : "");
    char man[PATH_MAX], link[PATH_MAX], tmp[PATH_MAX], cur[PATH_MAX];
    struct stat st;
    snprintf(man, sizeof man, "%s/%s/MANIFEST.json", export_dir, date);
    if (stat(man, &st) || !S_ISREG(st.st_mode))
        return sp_err(SP_EUSAGE, "flip latest: %s does not exist: only a verified shard set can be published", man);
    snprintf(link, sizeof link, "%s/latest", export_dir);
    int rc = sp_shard_latest_check(export_dir);
    if (rc) return sp_err(rc, "flip latest: %s", sp_errmsg());
    /* a backfill of an older date publishes its set but leaves `latest` on the later one (however the
     * link is written) */
    if (date_shaped(date) && sp_shard_latest_date(export_dir, cur) && strcmp(cur, date) > 0) {
        snprintf(man, sizeof man, "%s/%s/MANIFEST.json", export_dir, cur);
        if (!stat(man, &st) && S_ISREG(st.st_mode)) { /* only while that later set is there */
            if (later && later_cap) snprintf(later, later_cap, "%s", cur);
            return SP_OK;
        }
    }
    snprintf(tmp, sizeof tmp, "%s/.latest.tmp.%d", export_dir, (int)getpid());
    unlink(tmp);
    if (symlink(date, tmp)) return sp_err(SP_EIO, "cannot create symlink %s: %s", tmp, strerror(errno));
    if (rename(tmp, link)) {
        int e = errno;
        unlink(tmp);
        return sp_err(SP_EIO, "cannot rename %s to %s: %s", tmp, link, strerror(e));
    }
    return fsync_parent(link);
}
