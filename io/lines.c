/* lines: growable sorted text output. */
#include "lines.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sp_base.h"

int sp_lines_addf(sp_lines *l, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (sp_grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v)) return SP_ENOMEM;
    if (!(l->v[l->n] = strdup(buf))) return sp_err(SP_ENOMEM, "cannot copy a line");
    l->n++;
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
