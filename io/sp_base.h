/* sp_base: error codes, the thread-local error detail, id hashing, owner ranks
 * and the explicit RNG shared by every sagepipe module.
 * Library code returns these codes; only jobs/ and pipeline/ map them to exit codes. */
#ifndef SP_BASE_H
#define SP_BASE_H

#include <stddef.h>
#include <stdint.h>

/* Error codes: 0 is success, our own codes live in a reserved negative range,
 * positive values are errno values passed through (like LMDB). */
enum {
    SP_OK = 0,
    SP_ENOMEM = -30800, /* allocation failed                          -> exit 1 */
    SP_EINTERNAL,       /* a bug or broken invariant                  -> exit 1 */
    SP_EUSAGE,          /* bad command line                           -> exit 2 */
    SP_ECONFIG,         /* bad config: unknown key, bad value         -> exit 2 */
    SP_ENOTIMPL,        /* feature not built yet                      -> exit 2 */
    SP_EINPUT,          /* input data failed validation               -> exit 3 */
    SP_EFORMAT,         /* a binary file is corrupt/truncated/foreign -> exit 3 */
    SP_EIO,             /* I/O failed (disk full, unreadable)         -> exit 4 */
    SP_EEXTERNAL,       /* an external system failed (MPI peer, Kafka)-> exit 4 */
    SP_EQUALITY,        /* quality gate failed                        -> exit 5 */
    SP_ELAST
};

/* Process exit codes (DESIGN §5). */
enum { SP_EXIT_OK = 0, SP_EXIT_INTERNAL = 1, SP_EXIT_USAGE = 2, SP_EXIT_INPUT = 3,
       SP_EXIT_EXTERNAL = 4, SP_EXIT_QUALITY = 5 };

/* Short description of an error code (ours or errno). Never NULL. */
const char *sp_strerror(int rc);
/* Maps an error code to the process exit code above. */
int sp_exit_code(int rc);

/* Records a detailed message for rc in this thread and returns rc, so that
 *   return sp_err(SP_EINPUT, "%s:%llu: bad pin id '%s'", path, line, tok);
 * reports which file, which line, what is wrong. */
int sp_err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last detail recorded in this thread ("" when none). Owned by the thread. */
const char *sp_errmsg(void);
void sp_err_clear(void);

/* Entity types. The type salt makes pin 7 and board 7 independent keys. */
typedef enum { SP_PIN = 0, SP_BOARD = 1, SP_USER = 2, SP_NTYPES = 3 } sp_type;
extern const uint64_t sp_type_salt[SP_NTYPES];
extern const char sp_type_char[SP_NTYPES]; /* 'p' 'b' 'u' (shard key byte) */
extern const char *const sp_type_name[SP_NTYPES];

/* splitmix64 finaliser (Steele, Lea, Flood 2014): a bijection on uint64. */
static inline uint64_t sp_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
/* Owner rank of a node (DESIGN §2): mix64(id ^ salt[type]) % nranks.
 * Independent of input order; any rank can compute any node's owner. */
static inline int sp_owner(sp_type t, uint64_t id, int nranks) {
    return (int)(sp_mix64(id ^ sp_type_salt[t]) % (uint64_t)nranks);
}

/* Explicit RNG (splitmix64 stream). State is derived from (seed, purpose, id):
 * nothing is seeded from the clock, and a node's stream does not depend on
 * which rank processes it. */
typedef struct { uint64_t s; } sp_rng;
static inline void sp_rng_init(sp_rng *r, uint64_t seed, uint64_t purpose, uint64_t id) {
    r->s = sp_mix64(sp_mix64(seed ^ 0x9e3779b97f4a7c15ULL) ^ sp_mix64(purpose + 0x632be59bd9b4e019ULL) ^ id);
}
static inline uint64_t sp_rng_u64(sp_rng *r) {
    r->s += 0x9e3779b97f4a7c15ULL;
    return sp_mix64(r->s);
}
/* Uniform in [0, n) (Lemire's multiply-shift; bias < n/2^64). */
static inline uint64_t sp_rng_below(sp_rng *r, uint64_t n) {
    return (uint64_t)(((unsigned __int128)sp_rng_u64(r) * n) >> 64);
}
/* Uniform in [0, 1). */
static inline double sp_rng_unif(sp_rng *r) { return (double)(sp_rng_u64(r) >> 11) * 0x1.0p-53; }

/* Purposes for sp_rng_init, one per use, so streams never collide. */
enum { SP_RNG_PRUNE = 1, SP_RNG_GEN = 2, SP_RNG_WALK = 3, SP_RNG_TRAIN = 4, SP_RNG_IMPORT = 5 };

/* Timestamps: milliseconds since the Unix epoch, UTC. */
/* Parses YYYY-MM-DD into the ms of its 00:00 UTC; SP_EUSAGE on a bad date. */
int sp_date_parse(const char *s, int64_t *day_start_ms);
/* The inverse: "YYYY-MM-DD" (UTC) of the day holding `ms`, into out (at least 11 bytes; "?" if the
 * time cannot be broken down). */
void sp_date_format(int64_t ms, char *out, size_t cap);
#define SP_DAY_MS 86400000LL

/* SP_HOT marks our own hot loops (not BLAS's): GCC builds an x86-64-v4 (AVX-512) clone beside the
 * baseline one and the loader picks it on CPUs that have it. The build turns FP contraction off
 * (-ffp-contract=off) and the loops keep their reductions in explicit lanes, so both clones give the
 * same bits (a rerun on another machine gives the same result). SAGEPIPE_CLONES=OFF (cmake) drops it. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(SP_NO_CLONES)
#define SP_HOT __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define SP_HOT
#endif

/* Grows *p (an array of elem-byte items with capacity *cap) to hold at least
 * `need` items, doubling. Returns SP_OK or SP_ENOMEM (then *p is unchanged). */
int sp_grow(void **p, size_t *cap, size_t need, size_t elem);

/* malloc for large arrays read at random (graph offsets and adjacency, walk
 * node records): at 2 MiB and above the block is 2 MiB aligned and advised
 * as transparent huge pages (MADV_HUGEPAGE; the kernel's default here is
 * "madvise"), so a random access rarely misses the TLB (a 4 KiB page walk per
 * access halved the random-walk loop's throughput). Free with free(). NULL
 * on failure; the advice failing is not an error. SAGEPIPE_HUGE_PAGES=0 in the
 * environment makes it a plain malloc. */
void *sp_alloc_huge(size_t n);

#endif
