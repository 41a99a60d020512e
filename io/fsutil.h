/* fsutil: file-system helpers shared by every writer: mkdir -p, reading a whole
 * file, a whole file's digest, rm -rf, fsync of a directory, and an atomic small-file
 * write (temp file, fsync, rename). */
#ifndef SP_FSUTIL_H
#define SP_FSUTIL_H

#include <stddef.h>

/* Creates dir and its parents (mode 0777 & umask); SP_EUSAGE for an empty or
 * over-long path, SP_EIO naming the component that failed or a non-directory. */
int sp_mkdir_p(const char *dir);
/* rm -rf dir: every entry, children first, no symlink followed; an absent dir is fine. SP_EIO with
 * sp_errmsg naming the entry that could not be removed. */
int sp_rm_tree(const char *dir);
/* fsyncs a directory (makes renames and new names in it durable); SP_EIO
 * naming it on failure (EINVAL, where a file system cannot, is fine). */
int sp_fsync_dir(const char *dir);
/* Writes len bytes to "<path>.tmp.<pid>", fsyncs, renames over path. SP_EIO
 * (with the path and errno text) on failure; the temporary file is removed. */
int sp_write_atomic(const char *path, const char *data, size_t len);
/* Reads the whole file into *out (malloc'd, NUL-terminated, the caller frees
 * it; *len excludes the NUL). ENOENT (errno passed through, no detail) when
 * the file does not exist, SP_EIO naming it for other failures, SP_ENOMEM. */
int sp_read_file(const char *path, char **out, size_t *len);

/* Size and xxh64 (seed 0) of a whole file, read in 1 MiB blocks. SP_EIO
 * naming the file when it cannot be read. */
#include <stdint.h>
int sp_file_digest(const char *path, uint64_t *bytes, uint64_t *xxh);

#endif
