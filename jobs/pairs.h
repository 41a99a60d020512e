/* pairs: the positive training pairs of PinSage. Engagement pairs (q, p): a
 * user engaged with pin q and, as the next positive action, with a different
 * pin p soon after; they are mined per user on the user's owner rank and
 * shuffled to owner(q). Walk pairs: a pin and its top random-walk neighbours. */
#ifndef SP_PAIRS_H
#define SP_PAIRS_H

#include <stddef.h>
#include <stdint.h>

#include "ingest.h"

enum { SP_PAIR_ENGAGE = 1, SP_PAIR_WALK = 2 };

/* One pair, query pin q -> positive pin p (external pin ids). count: how many
 * times it was mined (saturates at UINT32_MAX); kind: SP_PAIR_ENGAGE/WALK.
 * 24 bytes, a multiple of 8 so that sp_radix_sort takes it as is. */
typedef struct { uint64_t q, p; uint32_t count; uint32_t kind; } sp_pair_rec;

/* Local counts of sp_pairs_engagement, before any dedupe:
 *   negative   events skipped because their action is in negative_mask;
 *   candidates consecutive (q, p) pairs of positive actions of one user;
 *   same_pin   candidates with q == p (dropped);
 *   too_far    candidates with q != p and ts(p) - ts(q) > max_gap_ms (dropped);
 *   kept       the rest, mined pairs: candidates = same_pin + too_far + kept. */
typedef struct { uint64_t candidates, kept, too_far, same_pin, negative; } sp_pair_stats;

/* Collective (every rank calls it, also with nev == 0).
 * ev[nev]: this rank's events, all events of the users it owns, sorted by
 * (user, ts, pin, action) as ingest writes them; only the (user, ts) order is
 * relied on (a ts that goes back within a user is SP_EINPUT). Events with equal
 * ts keep their given order.
 * An action a is negative when a < 32 and bit a of negative_mask is set (e.g.
 * 1u << 3 for 'hide'). Negative actions are skipped: they do NOT break the
 * chain, so "q, hide x, p" yields (q, p). Every consecutive pair (q, p) of a
 * user's positive actions with q != p and ts(p) - ts(q) <= max_gap_ms
 * (max_gap_ms >= 0, else SP_ECONFIG) is mined.
 * The pairs are pre-aggregated locally, shuffled to sp_owner(SP_PIN, q, size)
 * with at most buffer_bytes of send memory, and merged there: on return *out
 * (malloc'd, the caller frees it; NULL when *nout == 0) holds this rank's
 * unique pairs sorted by (q, p), count = times mined summed over all ranks,
 * kind = SP_PAIR_ENGAGE. *stats (may be NULL) gets this rank's local counts;
 * the caller sums them over ranks.
 * Returns the error agreed over all ranks (SP_OK, SP_ENOMEM, SP_EINPUT, ...);
 * on error *out = NULL and *nout = 0 on every rank. */
int sp_pairs_engagement(const sp_event_rec *ev, uint64_t nev, int64_t max_gap_ms, uint32_t negative_mask,
                        size_t buffer_bytes, sp_pair_rec **out, uint64_t *nout, sp_pair_stats *stats);

/* Local, no communication. src_ext[nsrc]: source pin ids; nbr_off[nsrc + 1]:
 * offsets into nbr_ext of each source's neighbours, best first (non-decreasing,
 * else SP_EINPUT). Writes (q = source, p = neighbour) for the first k
 * neighbours of each source, skipping p == q; *out (malloc'd, caller frees;
 * NULL when *nout == 0) is sorted by (q, p) and unique, count = how many times
 * the pair occurred among those first-k lists (normally 1), kind = SP_PAIR_WALK.
 * Returns SP_OK, SP_ENOMEM or SP_EINPUT (then *out = NULL, *nout = 0). */
int sp_pairs_walk(const uint64_t *src_ext, const uint64_t *nbr_off, const uint64_t *nbr_ext, uint64_t nsrc,
                  uint32_t k, sp_pair_rec **out, uint64_t *nout);

#endif
