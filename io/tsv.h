/* tsv: line reader for UTF-8 TSV inputs, plain or zstd-compressed (".zst"),
 * with byte-range splitting so that N ranks can each parse a share of one
 * plain file, plus strict field parsers. Comment lines start with '#'. */
#ifndef SP_TSV_H
#define SP_TSV_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>

typedef struct sp_tsv sp_tsv;

/* Opens `path` and positions the reader on this share (part of nparts) of it.
 * Plain file: the byte range [size*part/nparts, size*(part+1)/nparts) is
 * widened to whole lines: a share starts after the first '\n' at or after its
 * start offset (part 0 starts at byte 0) and ends with the line that contains
 * its end offset, so every line is read by exactly one share.
 * ".zst" file (detected by name suffix): the stream cannot be split, so every
 * share decompresses the whole stream and yields only the lines whose
 * 0-based line index % nparts == part (sp_tsv_line_no stays exact).
 * The open never blocks: path must name a regular file (sp_input_open).
 * On failure returns an error (SP_EIO with the path in sp_errmsg, SP_EINPUT
 * for a FIFO, a directory or a device, SP_EFORMAT for a corrupt .zst header)
 * and *out is NULL. */
int sp_tsv_open(sp_tsv **out, const char *path, int part, int nparts);

/* Opt-in for callers that reject bad rows one by one (the ingest stage): from now on sp_tsv_next returns a
 * line holding NUL bytes like any other line (1, with *len counting every byte, so strlen(*line) < *len
 * tells it) instead of failing with SP_EINPUT. Lines over 16 MiB stay an error. */
void sp_tsv_keep_nul_lines(sp_tsv *t);

/* Next data line of this share: comment ('#' first char) and empty lines are
 * skipped (they still count in the line numbers). The '\n' (and a '\r' before
 * it) is stripped; *line is NUL-terminated and valid until the next call.
 * Returns 1 for a line, 0 at the end of the share, or an error code < 0
 * (SP_EIO read error, SP_EFORMAT corrupt/truncated zstd data naming the compressed
 * bytes where the decoder found it, SP_EINPUT a line longer than 16 MiB or containing a NUL byte, the
 * latter unless sp_tsv_keep_nul_lines). */
int sp_tsv_next(sp_tsv *t, char **line, size_t *len);

/* 1-based line number of the line last returned, relative to where this share
 * started for plain files (use sp_tsv_first_line_known to see if it is
 * global), global for .zst files. */
uint64_t sp_tsv_line_no(const sp_tsv *t);
/* 1 when sp_tsv_line_no is already a global line number (part 0, or .zst);
 * 0 when the caller must add the number of lines in the earlier shares
 * (the ingest stage learns that with an MPI_Exscan of sp_tsv_lines_seen). */
int sp_tsv_first_line_known(const sp_tsv *t);
/* Total lines (data, comment, empty) consumed by this share so far. For a
 * plain file, after the end of the share this is the share's line count. */
uint64_t sp_tsv_lines_seen(const sp_tsv *t);
/* Bytes of the (compressed) file consumed so far by this share, for progress. */
uint64_t sp_tsv_bytes_read(const sp_tsv *t);
/* Size of this share in (compressed) bytes, for progress. */
uint64_t sp_tsv_share_bytes(const sp_tsv *t);
void sp_tsv_close(sp_tsv *t);

/* Splits `line` in place at tabs into at most `max` fields (NUL-terminating
 * each); returns the number of fields found, counting all of them even past
 * `max` (only the first `max` are stored). Spaces are NOT separators except in
 * sp_tsv_split_ws, which splits at runs of spaces and tabs (token lists). */
int sp_tsv_split(char *line, char **fields, int max);
int sp_tsv_split_ws(char *line, char **fields, int max);
/* The next token of line[0..len) separated by runs of spaces and tabs, from *pos on, without
 * copying or writing: 1 with the token at line[*start .. *pos), or 0 when none is left. For
 * lines of any number of tokens ('user item item ...'). */
int sp_ws_next(const char *line, size_t len, size_t *pos, size_t *start);

/* Strict parsers: the whole string must be the number (no sign for u64, no
 * spaces, no trailing garbage). Return 0 on success, -1 on syntax error,
 * -2 when the value does not fit the type (out of range). */
int sp_parse_u64(const char *s, uint64_t *v);
int sp_parse_i64(const char *s, int64_t *v);
/* Finite float only: "nan", "inf" and overflow return -2. */
int sp_parse_f32(const char *s, float *v);

/* Text checks for input rows (DESIGN §3: all text inputs are UTF-8). */
enum { SP_TEXT_OK = 0, SP_TEXT_NUL = 1, SP_TEXT_NOT_UTF8 = 2 };
/* Scans s[0..n): SP_TEXT_OK when it is valid UTF-8 (RFC 3629: shortest form, no surrogates, at most
 * U+10FFFF) without a NUL byte; else SP_TEXT_NUL or SP_TEXT_NOT_UTF8 for the first bad byte, whose offset
 * goes to *at (at may be NULL). ASCII runs are checked 8 bytes at a time. */
int sp_text_check(const char *s, size_t n, size_t *at);
/* Copies s[0..n) to out (cap >= 1 bytes, always NUL-terminated) as valid UTF-8 text for messages and
 * rejects.tsv: each byte that is not part of a valid UTF-8 sequence, and each NUL, is written as the four
 * characters \xNN; valid characters are copied. Stops early, at a character boundary, when out is full
 * (a cut is not marked). Returns the number of input bytes consumed (n when all of s fit). */
size_t sp_text_escape(char *out, size_t cap, const char *s, size_t n);

/* Opens `path` for reading without blocking, for an input that must be a regular file: O_NONBLOCK, then
 * fstat (a FIFO without a writer would block a plain open forever), then the flag is cleared. On success
 * *fd is the descriptor (the caller closes it). Errors (nothing to close), sp_errmsg naming path:
 * SP_EINPUT "PATH: not a regular file (a FIFO)" (or a directory, a socket, a device); when open or fstat
 * fails, the errno value itself (> 0: ENOENT for a missing file or a dangling link, EACCES, ...), so that
 * the caller decides what a missing file is (ingest: never, it looks first; importers: SP_EINPUT). */
int sp_input_open(const char *path, int *fd);
/* sp_input_open as a FILE * ("rb"), for inputs named in a config or on the command line (the list loader,
 * the importers): a missing file is SP_EINPUT like one that is not a regular file, other failures SP_EIO;
 * sp_errmsg names path. */
int sp_input_fopen(const char *path, FILE **f);

/* Path of an input: `dir/name` or `dir/name.zst`, whichever exists; writes
 * the chosen path to out (size cap) and returns 1, or 0 when neither exists.
 * Errors are our (negative) codes, sp_errmsg naming the file: both names
 * existing is SP_EINPUT (which one is current is unknown); so is a name that
 * exists but is not a regular file (a dangling symbolic link, a directory, a
 * FIFO: an error, not an absent input) and a path longer than cap; SP_EIO
 * when lstat fails otherwise. */
int sp_input_path(const char *dir, const char *name, char *out, size_t cap);

/* The input files of a date directory (DESIGN §3), each also read as NAME.zst (sp_input_path), in the
 * order of the ingest stage's enum; events.tsv is last. */
#define SP_INPUT_FILES 5
extern const char *const sp_input_files[SP_INPUT_FILES];
/* For tools that write a date directory (gen, import): 1 when dir holds an input name (or a NAME.zst twin)
 * that the tool does not write (`written`: a NULL-terminated list of plain names) and that ingest would read
 * beside the new files; its path goes to out (size cap). 0 when there is none. */
int sp_input_foreign(const char *dir, const char *const *written, char *out, size_t cap);

#endif
