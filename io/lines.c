/* lines: growable sorted text output. */
#include "lines.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sp_base.h"

int sp_lines_addf(sp_lines *l, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap); /* the whole line, however long (a vector of 4096 floats) */
    va_end(ap);
    if (n < 0) return sp_err(SP_EINTERNAL, "lines: bad format \"%s\"", fmt);
    if (sp_grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v)) return SP_ENOMEM;
    char *s = malloc((size_t)n + 1);
    if (!s) return sp_err(SP_ENOMEM, "cannot copy a line");
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    l->v[l->n++] = s;
    return SP_OK;
}

int sp_strcmp_ptr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void sp_lines_sort_write(sp_lines *l, FILE *out) {
    qsort(l->v, l->n, sizeof *l->v, sp_strcmp_ptr);
    for (size_t i = 0; i < l->n; i++) fprintf(out, "%s\n", l->v[i]);
}

void sp_lines_free(sp_lines *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}
