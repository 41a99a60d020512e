/* reader_cmds: verify / get / nn on a MANIFEST.json. Results go to stdout,
 * messages to stderr. Exit codes: 0 ok, 2 usage (or no such manifest),
 * 3 corrupt set or an id that is not in it, 4 I/O, 1 internal. */
#include "reader_cmds.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "manifest.h"
#include "metrics.h"
#include "sagepipe_reader.h"
#include "sfv.h"
#include "sp_base.h"
#include "tsv.h"
#include "userlists.h"

static const char *HELP_VERIFY =
    "usage: sagepipe verify --manifest FILE\n"
    "Checks a shard set against its MANIFEST.json: every shard's size and xxh64, then every key (9 bytes,\n"
    "a type of the entity, strictly ascending, routed to its shard by xxh64 of the big-endian id), every\n"
    "value (the dtype's size, finite numbers) and every count. Prints one line per entity and a summary.\n"
    "exit 0: all good; 3: corrupt (each bad shard named on stderr); 2: no such manifest.\n";
static const char *HELP_GET =
    "usage: sagepipe get --manifest FILE ID...\n"
    "Looks up each ID (p123 pin, b7 board, u5 user) as a downstream service would (one shard, no scan)\n"
    "and prints 'ID<TAB>v1 v2 ...' (the vector decoded to floats, %.9g), or 'ID<TAB>NOT_FOUND', one line\n"
    "per ID in the order given. exit 0: all found; 3: some ID not in the set (or a corrupt set);\n"
    "2: a malformed ID, no such manifest or a set of a newer format.\n";
static const char *HELP_NN =
    "usage: sagepipe nn --manifest FILE --id ID [-k 10]\n"
    "Exact cosine nearest neighbours of ID among the entries of its entity (items: pins and boards;\n"
    "users), by scanning every shard. Prints 'ID<TAB>cosine' for the k best, best first (ties by key),\n"
    "the query itself left out. exit 0 ok; 3: ID not in the set or its vector is zero; 2: usage.\n";

static int has_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

static int usage(const char *cmd, const char *what, const char *arg) {
    fprintf(stderr, "sagepipe %s: %s%s\n(see sagepipe %s --help)\n", cmd, what, arg, cmd);
    return SP_EXIT_USAGE;
}

/* LMDB trusts its file: a damaged shard can make a read fault (SIGSEGV, or SIGBUS past a truncated end),
 * or fail one of LMDB's assertions (which aborts), instead of returning an error. While a command reads shards, such a fault ends it with exit 3 and a message
 * naming the set, rather than a crash; nothing is being written then. The message is built beforehand (a
 * signal handler may only write(2) and _exit). */
static char fault_msg[4352];
static size_t fault_len;

static void fault_handler(int sig) {
    (void)sig;
    const char *last = sp_shard_r_last(), *pre = "  (the last shard opened: ";
    ssize_t w = write(STDERR_FILENO, fault_msg, fault_len);
    if (*last) {
        w = write(STDERR_FILENO, pre, strlen(pre));
        w = write(STDERR_FILENO, last, strlen(last));
        w = write(STDERR_FILENO, ")\n", 2);
    }
    (void)w;
    _exit(SP_EXIT_INPUT);
}

/* LMDB's assertion on a damaged page (it aborts when this returns) */
static void lmdb_assert(const char *msg) {
    fprintf(stderr, "LMDB: %s\n", msg);
    fault_handler(0);
}

static void fault_guard(const char *cmd, const char *manifest) {
    int n = strcmp(cmd, "verify")
                ? snprintf(fault_msg, sizeof fault_msg,
                           "sagepipe %s: reading a shard of %s failed: a shard is damaged "
                           "(sagepipe verify --manifest %s checks each shard's checksum)\n", cmd, manifest, manifest)
                : snprintf(fault_msg, sizeof fault_msg, "sagepipe verify: reading a shard of %s failed: "
                           "a shard is damaged (its checksum matches the manifest's)\n", manifest);
    fault_len = n < 0 ? 0 : (size_t)n < sizeof fault_msg ? (size_t)n : sizeof fault_msg - 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fault_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sp_shard_r_assert_hook(lmdb_assert);
}

/* Exit code of a reader library code, after printing it. */
static int reader_fail(const char *cmd, int rc) {
    if (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE) { /* LMDB's own codes on a read-only set: a damaged shard */
        fprintf(stderr, "sagepipe %s: a shard is damaged: %s%s%s (sagepipe verify checks each shard's checksum)\n",
                cmd, spr_strerror(rc), *spr_errmsg() ? ": " : "", spr_errmsg());
        return SP_EXIT_INPUT;
    }
    fprintf(stderr, "sagepipe %s: %s: %s\n", cmd, spr_strerror(rc), spr_errmsg());
    if (rc == ENOENT || rc == EINVAL) return SP_EXIT_USAGE;
    if (rc == SPR_VERSION) return SP_EXIT_USAGE; /* a set of a newer format: as verify (not implemented here) */
    if (rc == SPR_CORRUPT || rc == SPR_NOTFOUND || rc == SPR_NOTYPE) return SP_EXIT_INPUT;
    if (rc == ENOMEM) return SP_EXIT_INTERNAL;
    return SP_EXIT_EXTERNAL;
}

/* Loads the manifest at path and checks every shard (sp_manifest_verify), naming each bad shard on stderr.
 * Returns the exit code: SP_EXIT_OK, SP_EXIT_INPUT with rep->nproblems > 0 (m then loaded: the caller
 * frees it), or another code with m freed and rep->nproblems = 0. */
static int verify_set(const char *cmd, const char *path, sp_manifest *m, sp_verify_report *rep) {
    memset(rep, 0, sizeof *rep);
    int rc = sp_manifest_load(m, path);
    if (rc) {
        fprintf(stderr, "sagepipe %s: %s: %s\n", cmd, sp_strerror(rc), sp_errmsg());
        return sp_exit_code(rc);
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    rc = sp_manifest_verify(m, dir, rep);
    if (rc && rc != SP_EFORMAT) {
        fprintf(stderr, "sagepipe %s: %s: %s\n", cmd, sp_strerror(rc), sp_errmsg());
        sp_manifest_free(m);
        rep->nproblems = 0;
        return sp_exit_code(rc);
    }
    for (int i = 0; i < rep->nproblems && i < SP_VERIFY_MAX_PROBLEMS; i++)
        fprintf(stderr, "CORRUPT %s\n", rep->problem[i]);
    if (rep->nproblems > SP_VERIFY_MAX_PROBLEMS)
        fprintf(stderr, "... and %d more bad shards\n", rep->nproblems - SP_VERIFY_MAX_PROBLEMS);
    return rep->nproblems ? SP_EXIT_INPUT : SP_EXIT_OK;
}

int sp_cmd_verify(int argc, char **argv) {
    if (has_help(argc, argv)) {
        fputs(HELP_VERIFY, stdout);
        return 0;
    }
    if (argc != 2 || strcmp(argv[0], "--manifest")) return usage("verify", "expected --manifest FILE", "");
    const char *path = argv[1];
    sp_manifest m;
    double t0 = sp_now();
    fault_guard("verify", path);
    sp_verify_report rep;
    int ex = verify_set("verify", path, &m, &rep);
    if (ex != SP_EXIT_OK && !rep.nproblems) return ex;
    uint64_t nshards = 0;
    for (int e = 0; e < m.nentities; e++) {
        const sp_manifest_entity *en = &m.ent[e];
        char types[32] = "";
        for (int t = 0; t < SP_NTYPES; t++)
            if (en->types & (1u << t)) snprintf(types + strlen(types), sizeof types - strlen(types), "%s%s",
                                                types[0] ? "," : "", sp_type_name[t]);
        printf("%-8s types=%s dim=%u dtype=%s shards=%u entries=%" PRIu64 " %s\n", en->name, types, en->dim,
               sp_dtype_name(en->dtype), en->nshards, en->count, rep.ent_problems[e] ? "CORRUPT" : "ok");
        nshards += en->nshards;
    }
    if (rep.nproblems)
        printf("CORRUPT: %d of %" PRIu64 " shards failed (%s, date %s)\n", rep.nproblems, nshards, path, m.date);
    else
        printf("ok: %s, date %s, %d entities, %" PRIu64 " shards, %" PRIu64 " entries, %" PRIu64
               " bytes verified in %.2f s\n", path, m.date, m.nentities, rep.shards, rep.entries, rep.bytes,
               sp_now() - t0);
    sp_manifest_free(&m);
    return rep.nproblems ? SP_EXIT_INPUT : SP_EXIT_OK;
}

/* What is wrong with an argument the loop did not take: one of the command's options (space-separated in
 * opts) with nothing after it, or an argument it does not know. */
static const char *arg_problem(const char *a, const char *opts) {
    size_t n = strlen(a);
    for (const char *o = opts; *o;) {
        size_t m = strcspn(o, " ");
        if (m == n && !strncmp(o, a, n)) return "a value is missing after ";
        o += m + (o[m] == ' ');
    }
    return "unexpected argument ";
}

/* A vector with a NaN or an infinity: export never writes one, so the set is damaged. */
static int not_finite(const char *cmd, char t, uint64_t id) {
    fprintf(stderr, "sagepipe %s: the vector of %c%" PRIu64 " has a value that is not finite: a shard is damaged "
            "(sagepipe verify checks each shard)\n", cmd, t, id);
    return SP_EXIT_INPUT;
}

int sp_cmd_get(int argc, char **argv) {
    if (has_help(argc, argv)) {
        fputs(HELP_GET, stdout);
        return 0;
    }
    const char *path = NULL;
    int nids = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--manifest") && i + 1 < argc) {
            if (path) return usage("get", "given twice: ", argv[i]);
            path = argv[++i];
        } else if (argv[i][0] == '-') return usage("get", arg_problem(argv[i], "--manifest"), argv[i]);
        else {
            char t;
            uint64_t id;
            if (spr_parse_id(argv[i], &t, &id)) return usage("get", "bad ID (want p123, b7 or u5): ", argv[i]);
            nids++;
        }
    }
    if (!path) return usage("get", "missing --manifest FILE", "");
    if (!nids) return usage("get", "no ID given", "");
    fault_guard("get", path);
    spr_set *set;
    int rc = spr_open(path, 0, &set);
    if (rc) return reader_fail("get", rc);
    unsigned maxdim = 0;
    for (unsigned e = 0; e < spr_entity_count(set); e++) {
        spr_entity en;
        spr_entity_get(set, e, &en);
        if (en.dim > maxdim) maxdim = en.dim;
    }
    float *vec = malloc(sizeof *vec * maxdim);
    int missing = 0, ex = SP_EXIT_OK;
    if (!vec) ex = reader_fail("get", ENOMEM);
    for (int i = 0; i < argc && ex == SP_EXIT_OK; i++) {
        char t;
        uint64_t id;
        if (!strcmp(argv[i], "--manifest")) {
            i++;
            continue;
        }
        spr_parse_id(argv[i], &t, &id);
        spr_entity en;
        rc = spr_entity_of(set, t, &en);
        if (!rc) rc = spr_get(set, t, id, vec, maxdim);
        if (rc == SPR_NOTFOUND || rc == SPR_NOTYPE) {
            printf("%s\tNOT_FOUND\n", argv[i]);
            missing++;
            continue;
        }
        if (rc) {
            ex = reader_fail("get", rc);
            break;
        }
        if (!sp_sfv_finite(vec, en.dim)) {
            ex = not_finite("get", t, id);
            break;
        }
        printf("%c%" PRIu64 "\t", t, id);
        for (unsigned j = 0; j < en.dim; j++) printf(j ? " %.9g" : "%.9g", (double)vec[j]);
        putchar('\n');
    }
    free(vec);
    spr_close(set);
    if (ex == SP_EXIT_OK && missing) {
        fprintf(stderr, "sagepipe get: %d of %d ids not found\n", missing, nids);
        ex = SP_EXIT_INPUT;
    }
    if (fflush(stdout)) ex = SP_EXIT_EXTERNAL;
    return ex;
}

/* ---- nn: a bounded min-heap of the k best (score, key) ---- */

typedef struct {
    double score;
    char type;
    uint64_t id;
} hit;

/* a ranks below b: lower score, or equal score and a later key */
static int worse(const hit *a, const hit *b) {
    if (a->score != b->score) return a->score < b->score;
    if (a->type != b->type) return a->type > b->type;
    return a->id > b->id;
}

static void heap_push(hit *h, size_t *n, size_t k, hit x) {
    if (*n == k) {
        if (!worse(&h[0], &x)) return;
        h[0] = x; /* replace the worst, sift down */
        for (size_t i = 0;;) {
            size_t l = 2 * i + 1, r = l + 1, m = i;
            if (l < *n && worse(&h[l], &h[m])) m = l;
            if (r < *n && worse(&h[r], &h[m])) m = r;
            if (m == i) break;
            hit t = h[i];
            h[i] = h[m], h[m] = t, i = m;
        }
        return;
    }
    size_t i = (*n)++;
    h[i] = x;
    while (i && worse(&h[i], &h[(i - 1) / 2])) {
        hit t = h[i];
        h[i] = h[(i - 1) / 2], h[(i - 1) / 2] = t, i = (i - 1) / 2;
    }
}

static int by_rank(const void *a, const void *b) {
    return worse(a, b) ? 1 : worse(b, a) ? -1 : 0;
}

int sp_cmd_nn(int argc, char **argv) {
    if (has_help(argc, argv)) {
        fputs(HELP_NN, stdout);
        return 0;
    }
    const char *path = NULL, *qtext = NULL;
    uint64_t k = 10;
    int k_set = 0;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "--manifest") && path) || (!strcmp(argv[i], "--id") && qtext) ||
            (!strcmp(argv[i], "-k") && k_set++))
            return usage("nn", "given twice: ", argv[i]);
        if (!strcmp(argv[i], "--manifest") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--id") && i + 1 < argc) qtext = argv[++i];
        else if (!strcmp(argv[i], "-k") && i + 1 < argc) {
            if (sp_parse_u64(argv[++i], &k) || k < 1 || k > 1000000)
                return usage("nn", "-k: expected an integer in [1, 1000000], got ", argv[i]);
        } else return usage("nn", arg_problem(argv[i], "--manifest --id -k"), argv[i]);
    }
    if (!path || !qtext) return usage("nn", "expected --manifest FILE --id ID", "");
    fault_guard("nn", path);
    char qt, t;
    uint64_t qid, id;
    if (spr_parse_id(qtext, &qt, &qid)) return usage("nn", "bad ID (want p123, b7 or u5): ", qtext);
    spr_set *set;
    int rc = spr_open(path, 0, &set);
    if (rc) return reader_fail("nn", rc);
    spr_entity en;
    spr_iter *it = NULL;
    float *q = NULL, *v = NULL;
    hit *heap = NULL;
    size_t n = 0;
    rc = spr_entity_of(set, qt, &en);
    if (!rc) {
        q = malloc(sizeof *q * en.dim);
        v = malloc(sizeof *v * en.dim);
        heap = malloc(sizeof *heap * (size_t)k);
        rc = q && v && heap ? spr_get(set, qt, qid, q, en.dim) : ENOMEM;
    }
    int ex = SP_EXIT_OK;
    if (rc == SPR_NOTFOUND || rc == SPR_NOTYPE) {
        printf("%s\tNOT_FOUND\n", qtext);
        fprintf(stderr, "sagepipe nn: %s is not in the set\n", qtext);
        ex = SP_EXIT_INPUT;
    } else if (rc) ex = reader_fail("nn", rc);
    if (ex == SP_EXIT_OK && !sp_sfv_finite(q, en.dim)) ex = not_finite("nn", qt, qid);
    double qn = 0;
    for (unsigned j = 0; ex == SP_EXIT_OK && j < en.dim; j++) qn += (double)q[j] * q[j];
    if (ex == SP_EXIT_OK && qn == 0) {
        fprintf(stderr, "sagepipe nn: %s has a zero vector: cosine is undefined\n", qtext);
        ex = SP_EXIT_INPUT;
    }
    if (ex == SP_EXIT_OK && (rc = spr_iter_open(set, en.name, &it))) ex = reader_fail("nn", rc);
    while (ex == SP_EXIT_OK && !(rc = spr_iter_next(it, &t, &id, v, en.dim))) {
        if (t == qt && id == qid) continue;
        if (!sp_sfv_finite(v, en.dim)) {
            ex = not_finite("nn", t, id);
            break;
        }
        double dot = 0, vn = 0;
        for (unsigned j = 0; j < en.dim; j++) {
            dot += (double)q[j] * v[j];
            vn += (double)v[j] * v[j];
        }
        if (vn > 0) heap_push(heap, &n, (size_t)k, (hit){dot / sqrt(qn * vn), t, id});
    }
    if (ex == SP_EXIT_OK && rc != SPR_NOTFOUND) ex = reader_fail("nn", rc);
    if (ex == SP_EXIT_OK) {
        qsort(heap, n, sizeof *heap, by_rank);
        for (size_t i = 0; i < n; i++) printf("%c%" PRIu64 "\t%.6f\n", heap[i].type, heap[i].id, heap[i].score);
    }
    spr_iter_close(it);
    spr_close(set);
    free(q);
    free(v);
    free(heap);
    if (fflush(stdout)) ex = SP_EXIT_EXTERNAL;
    return ex;
}

static const char *HELP_EVAL =
    "usage: sagepipe eval --manifest FILE --test FILE [--train FILE] [-k 20] [--threads N]\n"
    "Scores a published shard set as an outside reader would (LightGCN protocol): for every user k of\n"
    "the test file ('user item item ...', 0-based ids), the vector u<k> of the users entity ranks every\n"
    "pin p<j> of the items entity by dot product (ids below the largest that the set lacks count as\n"
    "items_not_in_set and score 0); items of the user's line in --train are excluded;\n"
    "prints one JSON line {\"users\":…,\"recall@K\":…,\"ndcg@K\":…}. Every shard's checksum is checked\n"
    "first. Ids must be below 2^28. exit 0; 3: a test user not in the set, a bad line or id in the files,\n"
    "a test file without any held-out item, or a damaged set; 2: usage.\n";

int sp_cmd_eval(int argc, char **argv) {
    if (has_help(argc, argv)) {
        fputs(HELP_EVAL, stdout);
        return 0;
    }
    const char *path = NULL, *test_path = NULL, *train_path = NULL;
    uint64_t k = 20, threads = 1;
    int k_set = 0, threads_set = 0;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "--manifest") && path) || (!strcmp(argv[i], "--test") && test_path) ||
            (!strcmp(argv[i], "--train") && train_path) || (!strcmp(argv[i], "-k") && k_set++) ||
            (!strcmp(argv[i], "--threads") && threads_set++))
            return usage("eval", "given twice: ", argv[i]);
        if (!strcmp(argv[i], "--manifest") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--test") && i + 1 < argc) test_path = argv[++i];
        else if (!strcmp(argv[i], "--train") && i + 1 < argc) train_path = argv[++i];
        else if (!strcmp(argv[i], "-k") && i + 1 < argc) {
            if (sp_parse_u64(argv[++i], &k) || k < 1 || k > 100000)
                return usage("eval", "-k: expected an integer in [1, 100000], got ", argv[i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            if (sp_parse_u64(argv[++i], &threads) || threads < 1 || threads > SP_METRICS_MAX_THREADS)
                return usage("eval", "--threads: expected an integer in [1, 64], got ", argv[i]);
        } else return usage("eval", arg_problem(argv[i], "--manifest --test --train -k --threads"), argv[i]);
    }
    if (!path || !test_path) return usage("eval", "expected --manifest FILE --test FILE", "");
    sp_lists test = {0}, train = {0};
    int rc = sp_lists_load_lightgcn(test_path, &test, NULL);
    if (!rc) rc = sp_lists_need_items(&test, test_path);
    if (!rc && train_path) rc = sp_lists_load_lightgcn(train_path, &train, NULL);
    if (rc) {
        fprintf(stderr, "sagepipe eval: %s\n", sp_errmsg());
        sp_lists_free(&test);
        sp_lists_free(&train);
        return sp_exit_code(rc);
    }
    /* every item and user vector is read: the shards' checksums first, so that a damaged shard is an error and
     * not items silently missing from the set */
    fault_guard("eval", path);
    sp_manifest vm;
    sp_verify_report rep;
    int vx = verify_set("eval", path, &vm, &rep);
    if (vx == SP_EXIT_OK || rep.nproblems) sp_manifest_free(&vm);
    if (vx != SP_EXIT_OK) {
        if (rep.nproblems) fprintf(stderr, "sagepipe eval: %s: %d damaged shards\n", path, rep.nproblems);
        sp_lists_free(&test), sp_lists_free(&train);
        return vx;
    }
    spr_set *set;
    if ((rc = spr_open(path, 0, &set))) {
        sp_lists_free(&test), sp_lists_free(&train);
        return reader_fail("eval", rc);
    }
    spr_entity ue, ie;
    int ex = SP_EXIT_OK;
    if ((rc = spr_entity_of(set, 'u', &ue)) || (rc = spr_entity_of(set, 'p', &ie))) ex = reader_fail("eval", rc);
    else if (ue.dim != ie.dim) {
        fprintf(stderr, "sagepipe eval: users have dim %u, items %u\n", ue.dim, ie.dim);
        ex = SP_EXIT_INPUT;
    }
    /* every pin of the set is ranked (not only ids up to the files' largest): one pass for the largest id */
    uint32_t nu = test.n, ni = test.ncols > train.ncols ? test.ncols : train.ncols, d = ex ? 0 : ue.dim;
    float *U = NULL, *V = NULL, *row = ex ? NULL : malloc(4 * (size_t)d + 4);
    uint64_t npins = 0;
    for (int pass = 0; pass < 2 && !ex; pass++) {
        spr_iter *it = NULL;
        char type;
        uint64_t id;
        if (!row) ex = reader_fail("eval", ENOMEM);
        else if ((rc = spr_iter_open(set, ie.name, &it))) ex = reader_fail("eval", rc);
        while (!ex && !(rc = spr_iter_next(it, &type, &id, row, d))) {
            if (type != 'p') continue;
            if (pass) memcpy(V + id * d, row, 4 * (size_t)d);
            else if (id >= SP_LISTS_LIGHTGCN_MAX_ID) {
                fprintf(stderr, "sagepipe eval: %s: pin p%" PRIu64 " is too large to rank densely (ids below %u)\n",
                        path, id, (unsigned)SP_LISTS_LIGHTGCN_MAX_ID);
                ex = SP_EXIT_INPUT;
            } else {
                ni = id + 1 > ni ? (uint32_t)id + 1 : ni;
                npins++;
            }
        }
        if (!ex && rc != SPR_NOTFOUND) ex = reader_fail("eval", rc);
        spr_iter_close(it);
        if (!ex && !pass) {
            U = calloc((size_t)nu * d + 1, 4), V = calloc((size_t)ni * d + 1, 4);
            if (!U || !V) { /* ranked densely: every id below the largest of the set and the files */
                fprintf(stderr, "sagepipe eval: out of memory for %u users and %u items of dim %u (%.1f GiB); "
                        "items are ranked densely by id, up to the largest id of the set and the files\n",
                        nu, ni, d, ((double)nu + ni) * d * 4 / (1u << 30));
                ex = SP_EXIT_INTERNAL;
            }
        }
    }
    free(row);
    uint64_t missing = ni - npins; /* ids below the largest without a vector: zero rows, counted */
    /* users with test items must be in the set; items missing from the set keep a zero vector (counted) */
    for (uint32_t u = 0; !ex && u < nu; u++) {
        if (test.off[u + 1] == test.off[u]) continue;
        rc = spr_get(set, 'u', u, U + (size_t)u * d, d);
        if (rc == SPR_NOTFOUND) {
            fprintf(stderr, "sagepipe eval: test user u%u is not in the set\n", u);
            ex = SP_EXIT_INPUT;
        } else if (rc) ex = reader_fail("eval", rc);
    }
    if (!ex) {
        uint32_t ks[1] = {(uint32_t)k};
        sp_topk_result r;
        rc = sp_metrics_topk(U, nu, V, ni, d, train_path ? &train : NULL, &test, ks, 1, (int)threads, &r);
        if (rc) {
            fprintf(stderr, "sagepipe eval: %s\n", sp_errmsg());
            ex = sp_exit_code(rc);
        } else
            printf("{\"users\":%" PRIu64 ",\"items\":%u,\"items_not_in_set\":%" PRIu64 ",\"recall@%" PRIu64
                   "\":%.6f,\"ndcg@%" PRIu64 "\":%.6f}\n",
                   r.users, ni, missing, k, r.recall[0], k, r.ndcg[0]);
    }
    free(U);
    free(V);
    spr_close(set);
    sp_lists_free(&test);
    sp_lists_free(&train);
    if (fflush(stdout)) ex = SP_EXIT_EXTERNAL;
    return ex;
}
