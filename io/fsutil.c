/* fsutil: mkdir -p, rm -rf, atomic small-file writes, whole small-file reads. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "sp_base.h"

/* nftw callback of sp_rm_tree: removes an entry (children come first); 1 with sp_errmsg naming the entry
 * that could not be removed */
static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    if (remove(path) && errno != ENOENT) {
        int e = errno;
        sp_err(SP_EIO, "cannot remove %s: %s", path, strerror(e));
        return 1;
    }
    return 0;
}

int sp_rm_tree(const char *dir) {
    struct stat st;
    if (lstat(dir, &st)) return errno == ENOENT ? SP_OK : sp_err(SP_EIO, "%s: %s", dir, strerror(errno));
    int r = nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (r == 1) return SP_EIO; /* rm_entry named it */
    if (r) return sp_err(SP_EIO, "cannot remove %s: %s", dir, strerror(errno));
    return SP_OK;
}

int sp_mkdir_p(const char *dir) {
    char p[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p) return sp_err(SP_EUSAGE, "bad directory '%s'", dir);
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) return sp_err(SP_EIO, "mkdir %s: %s", p, strerror(errno));
        p[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return sp_err(SP_EIO, "%s: not a directory", dir);
    return SP_OK;
}

int sp_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return sp_err(SP_EIO, "cannot open directory %s: %s", dir, strerror(errno));
    int rc = fsync(fd) && errno != EINVAL ? sp_err(SP_EIO, "cannot sync directory %s: %s", dir, strerror(errno)) : SP_OK;
    close(fd);
    return rc;
}

int sp_write_atomic(const char *path, const char *data, size_t len) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) return sp_err(SP_EIO, "cannot create %s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return sp_err(SP_EIO, "cannot write %s: %s", tmp, strerror(e));
        }
        off += (size_t)w;
    }
    if (fsync(fd) || close(fd)) {
        int e = errno;
        unlink(tmp);
        return sp_err(SP_EIO, "cannot sync %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        return sp_err(SP_EIO, "cannot rename %s: %s", tmp, strerror(e));
    }
    return SP_OK;
}

int sp_file_digest(const char *path, uint64_t *bytes, uint64_t *xxh) {
    FILE *f = fopen(path, "rb");
    if (!f) return sp_err(SP_EIO, "%s: %s", path, strerror(errno));
    XXH64_state_t *h = XXH64_createState();
    char *buf = malloc(1 << 20);
    int rc = h && buf ? SP_OK : SP_ENOMEM;
    uint64_t n = 0;
    if (!rc) XXH64_reset(h, 0);
    while (!rc) {
        size_t k = fread(buf, 1, 1 << 20, f);
        if (k) XXH64_update(h, buf, k), n += k;
        if (k < (1 << 20)) {
            if (ferror(f)) rc = sp_err(SP_EIO, "%s: read failed", path);
            break;
        }
    }
    if (!rc) *bytes = n, *xxh = XXH64_digest(h);
    if (h) XXH64_freeState(h);
    free(buf);
    fclose(f);
    return rc;
}

int sp_read_file(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? ENOENT : sp_err(SP_EIO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(buf, cap *= 2);
        if (!nb) free(buf);
        buf = nb;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return SP_ENOMEM;
    if (err) {
        free(buf);
        return sp_err(SP_EIO, "%s: read error", path);
    }
    buf[n] = 0; /* n < cap: the loop ends on a short read */
    *out = buf;
    *len = n;
    return SP_OK;
}
