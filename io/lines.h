/* lines: a growable list of text lines to sort and print (debug dumps),
 * and the qsort comparator for arrays of C strings. */
#ifndef SP_LINES_H
#define SP_LINES_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    char **v;
    size_t n, cap;
} sp_lines;

/* Appends one formatted line (copied). SP_ENOMEM on failure. */
int sp_lines_addf(sp_lines *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sorts by strcmp and writes each line with a '\n'. */
void sp_lines_sort_write(sp_lines *l, FILE *out);
void sp_lines_free(sp_lines *l);
/* qsort comparator for an array of `char *`. */
int sp_strcmp_ptr(const void *a, const void *b);

#endif
