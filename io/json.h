/* json: a small RFC 8259 DOM parser (Kafka messages, item attribute files,
 * manifests) and a compact writer into a growable buffer.
 * Ownership: a tree from sp_json_parse is owned by the caller and freed with
 * sp_json_free; every pointer obtained from it (nodes, keys, strings) lives
 * until then. A writer owns its buffer until sp_jw_free. */
#ifndef SP_JSON_H
#define SP_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum { SP_JSON_NULL, SP_JSON_BOOL, SP_JSON_NUM, SP_JSON_STR, SP_JSON_ARR, SP_JSON_OBJ } sp_json_kind;
typedef struct sp_json sp_json;

#define SP_JSON_MAX_DEPTH 64

/* Parses text[0..len) (need not be NUL-terminated). On error returns SP_EINPUT
 * with "line L col C: what" in sp_errmsg() (1-based, col in bytes) and *out
 * NULL; SP_ENOMEM when out of memory. Nesting deeper than 64 is an error.
 * Strings are unescaped to UTF-8 (\uXXXX incl. surrogate pairs); a NUL in a
 * string (raw or \u0000), invalid UTF-8, lone surrogates, raw control
 * characters, numbers that overflow a double and trailing text are errors. */
int sp_json_parse(sp_json **out, const char *text, size_t len);
void sp_json_free(sp_json *j); /* NULL is fine */
sp_json_kind sp_json_type(const sp_json *j);
/* Value of `key` in an object; NULL if obj is not an object or the key is
 * absent; with duplicate keys the last one wins. Linear in the object size. */
const sp_json *sp_json_get(const sp_json *obj, const char *key);
size_t sp_json_len(const sp_json *j);                  /* array/object element count, else 0 */
const sp_json *sp_json_at(const sp_json *j, size_t i); /* i-th array element or object value; NULL out of range */
const char *sp_json_key_at(const sp_json *obj, size_t i); /* NULL unless object and i in range */
const char *sp_json_str(const sp_json *j);             /* NULL unless string (NUL-terminated UTF-8) */
double sp_json_num(const sp_json *j);                  /* NAN unless number */
int sp_json_bool(const sp_json *j);                    /* 0/1, -1 unless bool */
/* Exact unsigned integer: a number token made only of digits that fits uint64
 * (no '.', 'e', '-'), or a string of only decimal digits (at least one) that
 * fits. 0 ok, -1 otherwise. Uses the original token text, so it is exact
 * above 2^53. */
int sp_json_u64(const sp_json *j, uint64_t *v);
/* The text of a scalar as it appeared: a number's token ("17", "-1.5e3") or
 * a string's unescaped value; NULL for other kinds (and for NULL). */
const char *sp_json_text(const sp_json *j);

/* Writer into a growable buffer. Compact output (no spaces); sp_jw_finish
 * appends one '\n'. `key` must be non-NULL inside objects and NULL at top
 * level and inside arrays; a misuse or nesting deeper than 64 makes finish
 * return SP_EINTERNAL. All calls after an error are ignored. */
typedef struct { char *buf; size_t len, cap; int err; int depth; unsigned char need_comma[64]; } sp_jw;
void sp_jw_init(sp_jw *w);
void sp_jw_obj_begin(sp_jw *w, const char *key);
void sp_jw_obj_end(sp_jw *w);
void sp_jw_arr_begin(sp_jw *w, const char *key);
void sp_jw_arr_end(sp_jw *w);
void sp_jw_str(sp_jw *w, const char *key, const char *v); /* escapes per RFC 8259; v NULL -> null */
void sp_jw_u64(sp_jw *w, const char *key, uint64_t v);
void sp_jw_i64(sp_jw *w, const char *key, int64_t v);
void sp_jw_f64(sp_jw *w, const char *key, double v);     /* "%.17g"; non-finite -> null */
void sp_jw_bool(sp_jw *w, const char *key, int v);
void sp_jw_null(sp_jw *w, const char *key);
void sp_jw_raw(sp_jw *w, const char *key, const char *json); /* pre-formatted JSON value, not checked */
/* Returns SP_OK and the NUL-terminated text (owned by w, valid until
 * sp_jw_free) or SP_ENOMEM if any append failed (SP_EINTERNAL on misuse or
 * unclosed containers). Call once. */
int sp_jw_finish(sp_jw *w, const char **text, size_t *len);
void sp_jw_free(sp_jw *w);

#endif
