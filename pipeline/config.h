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
/* Reads an INI file over the current values. Errors name "path:line": besides unknown sections and keys
 * and bad values, a NUL byte, a line longer than libinih's buffer (198 characters), an indented line
 * that is not a comment (libinih would append it to the previous value), a section header without ']',
 * and a section or key given twice. */
int sp_config_load(sp_config *c, const char *path);
/* Applies "section.key=value" (a --set). */
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
