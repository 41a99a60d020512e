/* file_testutil.h: whole-file reads and writes for the unit tests, on the
 * project's own sp_read_file / sp_write_atomic (io/fsutil.h); a failure is a
 * failed check. Include check.h first. Header-only. */
#ifndef SP_FILE_TESTUTIL_H
#define SP_FILE_TESTUTIL_H

#include <stddef.h>

#include "fsutil.h"
#include "sp_base.h"

/* The whole file, NUL-terminated (malloc'd; the caller frees it); NULL and a failed check when it
 * cannot be read. */
static inline void *test_read(const char *path, size_t *n) {
    char *b = NULL;
    *n = 0;
    CHECK_RC(sp_read_file(path, &b, n), SP_OK);
    return b;
}

/* Replaces path by the n bytes of b. */
static inline void test_write(const char *path, const void *b, size_t n) {
    CHECK_RC(sp_write_atomic(path, b, n), SP_OK);
}

#endif
