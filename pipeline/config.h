/* config: the INI configuration (DESIGN §5) against one schema table: every
 * key has a type, a default, a range and a doc line. Unknown sections or keys,
 * bad values and missing required keys are errors that name them (SP_ECONFIG,
 * exit 2). configs/default.ini and the README reference are generated from
 * the same table (sagepipe config defaults|reference) and tests check them. */
#ifndef SP_CONFIG_H
#define SP_CONFIG_H

#include <stdint.h>
#include <stdio.h>

typedef struct sp_config sp_config;

/* A config with every default and no file. */
int sp_config_new(sp_config **out);
/* The syntax of a config file, and what a value may be (from a file or a --set: the same rules, so that
 * `config show` writes a file that reads back the same):
 *   - one "key = value" per line under a "[section]" header; '=' is the only separator; spaces and tabs
 *     around key and value are dropped;
 *   - a line whose first character (after spaces or tabs) is '#' or ';' is a comment, and so is the rest
 *     of a key or section line from a ';' that follows a space or tab ("dir = a ;b" reads "a");
 *   - a value is at most SP_CONFIG_VALUE_MAX characters of one line: no control character (newline, CR,
 *     ...) but tab, and no ';' at its start or after a space or tab; a list value names no word twice;
 *   - a line is at most 8192 characters, comments included. */
#define SP_CONFIG_VALUE_MAX 4096 /* a path of PATH_MAX */

/* Reads an INI file (a regular file; a FIFO or device is refused without blocking) over the current
 * values. Errors name "path:line": unknown sections and keys, bad values, a NUL byte, a line too long, an
 * indented line that is not a comment (no continuation lines), a section header without ']' or with text
 * after it, a key line with ':' before its '=' or with no '=', a key before any [section], and a section
 * or key given twice. */
int sp_config_load(sp_config *c, const char *path);
/* Applies "section.key=value" (a --set): the value is trimmed of spaces and tabs at either end as a
 * file's is, then checked by the same rules. */
int sp_config_set(sp_config *c, const char *assignment);
/* Checks that every required key has a value and that keys which constrain each other agree
 * (sequence.width a multiple of sequence.heads, tau_min <= tau, walks.hard_lo <= walks.hard_hi,
 * sage.nbr_* <= walks.top_*, walks.negative_actions among input.actions). */
int sp_config_check(const sp_config *c);
void sp_config_free(sp_config *c);

/* Typed getters. The key must exist in the schema with that type; a wrong
 * lookup is a programming error and aborts with file/line (never compiled out). */
const char *sp_config_str(const sp_config *c, const char *section, const char *key);
int64_t sp_config_int(const sp_config *c, const char *section, const char *key);
double sp_config_f64(const sp_config *c, const char *section, const char *key);
int sp_config_bool(const sp_config *c, const char *section, const char *key);

/* Splits the list value of section.key at spaces/tabs into at most `max`
 * words: words[0..*n) point into *store (malloc'd, the caller frees it).
 * SP_ECONFIG naming the key when there are more than max words. */
int sp_config_words(const sp_config *c, const char *section, const char *key, char **words, int max, int *n,
                    char **store);

/* xxh64 digest of the effective values of the keys of the named sections
 * (NULL-terminated list) that can change outputs; keys that only affect
 * logging or speed (flagged in the schema) are left out. */
uint64_t sp_config_digest(const sp_config *c, const char *const *sections);
/* The same without the keys named in skip (NULL-terminated; NULL: none). */
uint64_t sp_config_digest_except(const sp_config *c, const char *const *sections, const char *const *skip);

/* Writers of the schema: the effective config as INI (show), the defaults
 * with docs as INI (defaults), and a Markdown table (reference). */
void sp_config_write_ini(const sp_config *c, FILE *f, int with_docs);
void sp_config_write_reference(FILE *f);

#endif
