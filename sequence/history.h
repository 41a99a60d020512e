/* history: the lifelong user history store. Each user's actions (pin, action
 * type, surface, timestamp), appended date by date, deduplicated, bounded per
 * user, held per owner rank in a compact byte encoding and saved as an sfile.
 *
 * In memory the store stays encoded (about 4-16 bytes per action instead of 24
 * decoded): a rank holds its users' lifelong histories as one byte blob and
 * decodes one user at a time (sq_hist_user). sq_hist_merge streams over the
 * previous date's store user by user: users without events are copied byte for
 * byte, users with events are decoded, merged and re-encoded.
 *
 * Encoding of one user's actions, oldest first, each action one record:
 *   tag byte: bits 0-2 ts code, bits 3-5 pin code, bit 6 pin is a delta,
 *             bit 7 an action/surface byte follows;
 *   pin:  code 0 = the previous action's pin (0 before the first action),
 *         codes 1..6 = that many little-endian bytes, 7 = 8 bytes, holding the
 *         pin itself or (bit 6) zigzag(pin - previous pin), whichever is shorter;
 *   ts:   same byte-count codes (0 = no bytes, value 0): the first action stores
 *         zigzag(ts), later ones ts - previous ts (never negative: sorted);
 *   action/surface (bit 7 set; clear = same as the previous action, (0, 0)
 *         before the first): one byte action | surface << 4 when action < 15
 *         and surface < 16, else the byte 0x0F followed by action and surface.
 * A record is at most 1 + 8 + 8 + 3 = 20 bytes. It is at most 16 bytes when
 * |ts| < 2^47 ms (years -2490 .. 6430), action < 15 and surface < 16 (the
 * default vocabularies have 5 each); SQ_HIST_REC_MAX bounds any record.
 * Records depend only on the same user's previous record, so a user's bytes
 * can move between files unchanged.
 *
 * File (sfile kind "history"), sections:
 *   "meta" u64[3]   format version (SQ_HIST_FORMAT), users, actions
 *   "users" u64     (n) ascending user ids
 *   "last_day" i64  (n) day_ms of the last date whose events touched the user
 *   "nact" u32      (n) actions per user
 *   "boff" u64      (n+1) byte offsets of each user's records in "blob"
 *   "blob" u8       (boff[n]) the records, user after user */
#ifndef SQ_HISTORY_H
#define SQ_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "records.h" /* sp_event_rec */

#define SQ_HIST_FORMAT 1u
#define SQ_HIST_REC_MAX 20u /* bytes of the longest possible record */

/* One decoded action. A user's actions are kept sorted by (ts, pin, action,
 * surface), oldest first, with no two equal. */
typedef struct {
    uint64_t pin;
    int64_t ts; /* ms since the Unix epoch */
    uint8_t action, surface;
} sq_action;

/* A store: users in ascending id order, each with its encoded actions.
 * Start from a zeroed struct ({0}); sq_hist_free releases it. The public
 * fields are read-only for callers; change a store only through the functions
 * below. */
typedef struct {
    uint64_t n;         /* users */
    uint64_t nactions;  /* sum of nact */
    uint64_t *user;     /* (n) ascending ids (after sq_hist_sort) */
    int64_t *last_day;  /* (n) day_ms of the last merge that had events of the user */
    uint32_t *nact;     /* (n) actions of each user */
    uint64_t *boff;     /* (n+1) byte offsets into blob; NULL while n == 0 */
    uint8_t *blob;      /* (boff[n]) records, user after user */
    /* private */
    size_t ucap, bcap;  /* capacities of the user arrays and of blob */
    int unsorted;       /* set by sq_hist_load when users are out of order */
    struct sq_hist_part *parts; /* files loaded so far, for error messages */
    uint32_t nparts;
    size_t pcap;
} sq_hist;

typedef struct {
    uint64_t appended;      /* new distinct actions from the events */
    uint64_t duplicates;    /* events equal to a kept action or to another event */
    uint64_t trimmed;       /* actions cut by max_per_user (oldest first) */
    uint64_t users_new;     /* users with events and no previous history */
    uint64_t users_touched; /* users with events */
} sq_hist_stats;
/* out->nactions == prev->nactions + appended - trimmed. */

/* Appends user `user` with the n actions a[] (sorted by (ts, pin, action,
 * surface), strictly increasing) and last_day to h; user must be greater than
 * every user already in h. SP_EUSAGE for an out-of-order user or unsorted
 * actions, SP_ENOMEM. On failure h is unchanged. */
int sq_hist_append(sq_hist *h, uint64_t user, int64_t last_day, const sq_action *a, uint64_t n);

/* Decodes user index i (0 <= i < h->n) into buf[0 .. h->nact[i]); cap is buf's
 * length. SP_EUSAGE when i is out of range or cap < h->nact[i], SP_EFORMAT
 * when the bytes are corrupt (never after sq_hist_load or merge succeeded). */
int sq_hist_user(const sq_hist *h, uint64_t i, sq_action *buf, uint64_t cap);

/* Index of user id `user` in h (binary search; h must be sorted), or
 * UINT64_MAX when h has no such user. */
uint64_t sq_hist_find(const sq_hist *h, uint64_t user);

/* out = prev ∪ events, deduplicated (exact duplicates: same user, pin, ts,
 * action and surface), each user's list cut to its newest max_per_user actions
 * (0 = no bound; more than UINT32_MAX actions is SP_EINPUT). Users with events
 * get last_day = day_ms; the others keep theirs and, unless they exceed
 * max_per_user, their bytes. prev may be NULL (no previous date); it must be
 * sorted (SP_EUSAGE otherwise). ev[0 .. nev) must be grouped by ascending user
 * (ingest's (user, ts, pin, action) order; within a user any order is taken):
 * SP_EINPUT otherwise. *out must be zeroed; on success it owns a new store, on
 * failure it is left zeroed. st may be NULL.
 * Memory: out's encoding plus one user's decoded actions and events. */
int sq_hist_merge(const sq_hist *prev, const sp_event_rec *ev, uint64_t nev, uint32_t max_per_user,
                  int64_t day_ms, sq_hist *out, sq_hist_stats *st);

/* Writes h (sorted) to path as an sfile of kind "history" (temporary file,
 * fsync, rename). *bytes (may be NULL) receives the bytes of the sections'
 * contents (the file adds a 64-byte header, padding and a directory), *xxh
 * (may be NULL) the file digest. */
int sq_hist_save(const sq_hist *h, const char *path, uint64_t *bytes, uint64_t *xxh);

/* Reads path (whole file into memory, checksums verified by sfile) and
 * appends to h the users for which keep(user, arg) != 0 (keep NULL: all),
 * decoding each kept user to verify it. Several parts (e.g. of the previous
 * date written by another rank count) can be loaded one after another; then
 * h is out of order until sq_hist_sort. Every structural problem (counts,
 * offsets, users not ascending, truncated or overlong records, actions not
 * strictly increasing, ts overflow) is SP_EFORMAT naming the file; on any
 * failure h is left as it was before the call. */
int sq_hist_load(sq_hist *h, const char *path, int (*keep)(uint64_t user, void *arg), void *arg);

/* Puts the users of h in ascending order after several sq_hist_load calls (a
 * no-op when already sorted). A user id found twice is SP_EFORMAT naming the
 * two files. Memory: a second copy of the store while reordering. */
int sq_hist_sort(sq_hist *h);

/* Encoded bytes per action (blob bytes / actions; 0 for an empty store). */
double sq_hist_bytes_per_action(const sq_hist *h);

/* Frees everything and zeroes *h (NULL and a zeroed struct are fine). */
void sq_hist_free(sq_hist *h);

#endif
