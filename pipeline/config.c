/* config: schema table, INI parsing, --set overrides, validation,
 * digests and the generated default.ini / README reference. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "sp_base.h"

typedef enum { T_STR, T_INT, T_F64, T_BOOL, T_ENUM, T_LIST } ktype;
enum { F_REQUIRED = 1, F_NODIGEST = 2 };

typedef struct {
    const char *section, *key;
    ktype type;
    const char *def;   /* default value as text; NULL = none */
    double min, max;   /* for T_INT / T_F64 */
    const char *enums; /* "a|b|c" for T_ENUM */
    int flags;
    const char *doc;
} kdef;

static const char *const SECTIONS[] = {"input", "pipeline", "graph", "walks", "train", "sage",
                                       "sequence", "export", "eval", "kafka", NULL};

static const char *const SECTION_DOCS[] = {
    "Where the day's inputs are (DESIGN section 3) and how they are validated.",
    "Work directory, seeds, logging and MPI behaviour.",
    "The graph stage: CSR build and degree pruning.",
    "The walks stage: random walks with restart, importance neighbourhoods, hard negatives, training pairs.",
    "Training of the item and user encoders.",
    "The PinSage/OmniSage item encoder (train and infer stages).",
    "The user sequence encoder. Keys arrive with that stage.",
    "LMDB shards and the manifest (DESIGN section 6).",
    "Quality evaluation (held-out data) and the quality gate.",
    "Kafka: the day's events (input.events = kafka) and the publish message.",
};

#define R(lo, hi) lo, hi
static const kdef SCHEMA[] = {
    {"input", "dir", T_STR, NULL, R(0, 0), NULL, F_REQUIRED,
     "Input directory of the date (DESIGN section 3); '{date}' is replaced by the run's date."},
    {"input", "events", T_ENUM, "file", R(0, 0), "file|kafka", 0,
     "Where user actions come from: events.tsv in input.dir, or the date's [00:00, 24:00) UTC window of "
     "kafka.topic (docs/OPERATIONS.md); kafka replaces events.tsv."},
    {"input", "window", T_ENUM, "day", R(0, 0), "day|all", 0,
     "Accept events of the date's [00:00, 24:00) UTC window only (day), or of any time (all: benchmark imports, history backfill)."},
    {"input", "actions", T_LIST, "save click closeup hide engage", R(0, 0), NULL, 0,
     "Action vocabulary, space separated; any other action is rejected."},
    {"input", "surfaces", T_LIST, "homefeed search related profile other", R(0, 0), NULL, 0,
     "Surface vocabulary; an unknown surface maps to the last entry and is counted."},
    {"input", "max_reject_fraction", T_F64, "0.001", R(0, 1), NULL, 0,
     "Fail ingest (exit 3) when rejected rows exceed this fraction of all rows."},
    {"input", "rejects_per_reason", T_INT, "20", R(0, 1000000), NULL, F_NODIGEST,
     "How many rejected rows of each reason are written to rejects.tsv."},
    {"pipeline", "work_dir", T_STR, NULL, R(0, 0), NULL, F_REQUIRED | F_NODIGEST,
     "Stage outputs go to <work_dir>/<date>/<stage>/."},
    {"pipeline", "seed", T_INT, "1", R(0, 9.2e18), NULL, 0,
     "Master seed of graph pruning and walks; every random stream derives from (seed, purpose, entity id)."},
    {"pipeline", "log_level", T_ENUM, "info", R(0, 0), "debug|info|warn|error", F_NODIGEST,
     "Lowest level of log lines written to stderr."},
    {"pipeline", "progress_seconds", T_F64, "2", R(0.1, 3600), NULL, F_NODIGEST,
     "Seconds between progress lines of long loops."},
    {"pipeline", "shuffle_buffer_mb", T_INT, "64", R(1, 65536), NULL, F_NODIGEST,
     "Send-buffer memory per rank for all-to-all shuffles (bounds memory; results do not depend on it)."},
    {"pipeline", "collective_timeout_s", T_F64, "3600", R(1, 1e9), NULL, F_NODIGEST,
     "A rank that waits longer than this at a barrier aborts the job (exit 4) instead of hanging."},
    {"pipeline", "keep_days", T_INT, "0", R(0, 100000), NULL, F_NODIGEST,
     "Retention: after a successful `run` of date D, delete `<work_dir>/<X>`, `<export.dir>/<X>` and a killed "
     "export's `<export.dir>/.<X>.tmp` for dates X before D - keep_days (never the date `latest` points to, "
     "never D or later); 0 = keep everything."},
    {"graph", "prune_exponent", T_F64, "0.86", R(0, 1), NULL, 0,
     "Degree pruning (OmniSage): keep max(min(d^exponent, cap), floor) sampled edges per node."},
    {"graph", "prune_cap", T_INT, "10000", R(1, 1e12), NULL, 0, "Upper bound of kept edges per node."},
    {"graph", "prune_floor", T_INT, "10", R(0, 1e12), NULL, 0,
     "Nodes with at most this many edges keep all of them."},
    {"walks", "walks_per_source", T_INT, "200", R(1, 1000000), NULL, 0,
     "Random walks started from every pin and every board (DGL PinSAGESampler: 200)."},
    {"walks", "traversals", T_INT, "3", R(1, 1000), NULL, 0,
     "At most this many two-hop traversals (pin->board->pin, or board->pin->board) per walk."},
    {"walks", "stop_prob", T_F64, "0.5", R(0, 1), NULL, 0,
     "Probability that a walk stops after each traversal but the last (restart at the source)."},
    {"walks", "top_pins", T_INT, "50", R(0, 100000), NULL, 0,
     "Importance neighbourhood: most visited pins kept per source, weights L1-normalised (PinSage T = 50)."},
    {"walks", "top_boards", T_INT, "50", R(0, 100000), NULL, 0, "Most visited boards kept per source."},
    {"walks", "hard_lo", T_INT, "2000", R(0, 1e9), NULL, 0,
     "Hard-negative band of a pin: visited pins ranked [lo, hi) by visits (PinSage: 2000-5000), scaled to "
     "the distinct pins V a source visits: lo = max(top_pins, min(hard_lo, hard_lo_frac * V))."},
    {"walks", "hard_hi", T_INT, "5000", R(0, 1e9), NULL, 0, "hi = min(hard_hi, hard_hi_frac * V)."},
    {"walks", "hard_lo_frac", T_F64, "0.4", R(0, 1), NULL, 0, "See hard_lo."},
    {"walks", "hard_hi_frac", T_F64, "1.0", R(0, 1), NULL, 0, "See hard_hi."},
    {"walks", "hard_max", T_INT, "50", R(0, 100000), NULL, 0,
     "Hard-negative candidates kept per pin, evenly spaced over the band."},
    {"walks", "pair_max_gap_s", T_INT, "3600", R(0, 1e9), NULL, 0,
     "Engagement pairs: a user's consecutive positive actions on two pins at most this far apart."},
    {"walks", "negative_actions", T_LIST, "hide", R(0, 0), NULL, 0,
     "Actions that are not engagement (skipped when mining pairs)."},
    {"walks", "walk_pairs", T_INT, "5", R(0, 100000), NULL, 0,
     "Walk pairs: each pin paired with its this many most co-visited pins."},
    {"walks", "threads", T_INT, "0", R(0, 1024), NULL, F_NODIGEST,
     "Threads per rank for the walks and for choosing each window's neighbourhoods; "
     "0 = online CPUs / ranks on this machine (results do not depend on it)."},
    {"walks", "window_sources", T_INT, "4096", R(1, 1048576), NULL, F_NODIGEST,
     "Sources started per rank per round: bounds the memory of walkers and visits in flight."},
    {"train", "epochs", T_INT, "10", R(0, 100000), NULL, 0,
     "Training epochs (train stage); 0 = keep the previous date's model (refused when the day before has none)."},
    {"train", "average_epochs", T_INT, "0", R(0, 100000), NULL, 0,
     "The model written is the mean of the last this many epochs' end-of-epoch parameters (0 or 1: the last)."},
    {"train", "seed", T_INT, "1", R(0, 9.2e18), NULL, 0, "Seed of initialisation and minibatch sampling (train stage)."},
    {"train", "batch", T_INT, "8192", R(1, 1 << 24), NULL, 0,
     "Training pairs per step over all ranks (each rank takes its share)."},
    {"train", "inbatch", T_INT, "2048", R(1, 1 << 24), NULL, 0,
     "softmax loss: queries are scored in blocks of this many; a block's candidates are its own positives plus "
     "the step's shared negatives."},
    {"train", "negatives", T_INT, "2048", R(0, 1 << 24), NULL, 0,
     "Random negative pins per step, shared by every query of the step (besides the in-batch positives)."},
    {"train", "mask_known", T_BOOL, "false", R(0, 0), NULL, 0,
     "softmax loss: a board query does not count its own other pins among its negatives (they are positives); "
     "off by default: on Gowalla it measured the same (recall@20 0.1321 vs 0.1335 after 2 epochs)."},
    {"train", "loss", T_ENUM, "softmax", R(0, 0), "softmax|margin", 0,
     "softmax: sampled softmax over in-batch + shared negatives with logQ correction (OmniSage); margin: "
     "PinSage max-margin with shared and curriculum hard negatives."},
    {"train", "lr", T_F64, "0.01", R(0, 10), NULL, 0, "Peak learning rate (Adam; id and token rows use lazy Adam)."},
    {"train", "warmup_steps", T_INT, "100", R(0, 1e9), NULL, 0, "Linear learning-rate warm-up."},
    {"train", "lr_min", T_F64, "0.1", R(0, 1), NULL, 0,
     "Cosine decay to lr * lr_min at the last step."},
    {"train", "weight_decay", T_F64, "0", R(0, 1), NULL, 0, "Decoupled weight decay of the dense parameters (AdamW)."},
    {"train", "row_decay", T_F64, "0", R(0, 10), NULL, 0,
     "Decoupled weight decay of the id and token rows, applied when a row is updated (lazy AdamW)."},
    {"train", "row_sync", T_ENUM, "push", R(0, 0), "push|fetch", 0,
     "How ranks see the id rows their owner ranks update: push (the owners send every updated row to every "
     "rank after each step) or fetch (each rank asks the owners for the rows its next minibatch reads; the "
     "whole table moves only before evaluation, checkpoints and the joint task's refresh). Same results; "
     "fetch moves less when a step reads a small part of a large table."},
    {"train", "view", T_ENUM, "replicated", R(0, 0), "replicated|owned", 0,
     "What each rank holds of the training view: replicated (every node's neighbour lists and content "
     "features) or owned (only its walks parts' nodes; a step fetches the other nodes its minibatch reads from "
     "their owner ranks, hop by hop). Same model to the last bit; owned divides the lists' and features' memory "
     "by the ranks. Not with sequence.mode = joint or train.eval_every (exit 2)."},
    {"train", "tau", T_F64, "0.1", R(1e-4, 10), NULL, 0, "Initial softmax temperature."},
    {"train", "tau_min", T_F64, "0.03", R(1e-4, 10), NULL, 0, "Floor of the learned temperature."},
    {"train", "learn_tau", T_BOOL, "true", R(0, 0), NULL, 0, "Learn the temperature (else fixed at tau)."},
    {"train", "margin", T_F64, "0.1", R(0, 10), NULL, 0, "Margin of the max-margin loss."},
    {"train", "hard_negatives", T_BOOL, "true", R(0, 0), NULL, 0,
     "margin loss: in epoch e add e-1 hard negatives per pin query from its walks band (PinSage curriculum)."},
    {"train", "w_board_pin", T_F64, "1", R(0, 1e6), NULL, 0,
     "Task weight: a board retrieves a pin it holds (pin-board edges)."},
    {"train", "w_pin_pin", T_F64, "0.25", R(0, 1e6), NULL, 0,
     "Task weight: a pin retrieves a walk or engagement partner (walks stage pairs)."},
    {"train", "w_user", T_F64, "0.3", R(0, 1e6), NULL, 0,
     "sequence.mode = joint: weight of the user-entity task (the user encoder's output retrieves the next pin "
     "and a pin of the next sequence.window_days) beside the item tasks (Beauty validation: 0.1 / 0.3 / 0.5 / 1 "
     "gave users HR@10 0.085 / 0.090 / 0.083 / 0.051)."},
    {"train", "w_feature", T_F64, "0.3", R(0, 1e6), NULL, 0,
     "Weight of the entity-feature task: a pin encoded from its content alone (tokens, dense features; no id "
     "row, no neighbours) retrieves its graph embedding; off on data without pin content; 0 = off (Beauty "
     "validation, users / boards HR@10: 0 gave 0.090 / 0.056, 0.3 gave 0.096 / 0.058, 1 gave 0.097 / 0.056)."},
    {"train", "threads", T_INT, "0", R(0, 1024), NULL, F_NODIGEST,
     "0: one producer thread prepares the next minibatch while the current one computes; 1: no producer thread."},
    {"train", "eval_every", T_INT, "0", R(0, 100000), NULL, F_NODIGEST,
     "Every this many epochs, embed every node and score eval.test (recall@K, NDCG@K) into train/eval.tsv; 0 = off."},
    {"sage", "dim", T_INT, "64", R(1, 4096), NULL, 0, "Width of every layer and of the embeddings."},
    {"sage", "layers", T_INT, "2", R(0, 3), NULL, 0, "CONVOLVE layers K (PinSage: 2)."},
    {"sage", "nbr_pins", T_INT, "10", R(0, 100000), NULL, 0,
     "Top pins of a node's walks neighbourhood used by each layer (at most walks.top_pins)."},
    {"sage", "nbr_boards", T_INT, "10", R(0, 100000), NULL, 0,
     "Top boards of a node's walks neighbourhood used by each layer (at most walks.top_boards)."},
    {"sage", "id_embeddings", T_BOOL, "true", R(0, 0), NULL, 0,
     "Learned per-node id embedding in the layer-0 input (needed on data without content features)."},
    {"sage", "token_rows", T_INT, "262144", R(0, 1 << 30), NULL, 0,
     "Rows of the hashed-token embedding table (pin_tokens.tsv); 0 ignores tokens."},
    {"sequence", "mode", T_ENUM, "joint", R(0, 0), "frozen|joint", 0,
     "How the user encoder is trained: joint (first in the train stage with the item encoder, OmniSage's "
     "user-entity task, one pass over the users per train epoch; the users stage then continues sequence.epochs "
     "epochs on the infer stage's item embeddings); frozen (only in the users stage, on the infer stage's item "
     "embeddings)."},
    {"sequence", "joint_refresh", T_INT, "0", R(0, 1 << 30), NULL, 0,
     "sequence.mode = joint: the history tokens read the item encoder's embeddings of every node, recomputed every "
     "this many train steps (0: at the start of each epoch)."},
    {"sequence", "max_history", T_INT, "4096", R(1, 1 << 24), NULL, 0,
     "Actions kept per user in the lifelong history (the newest)."},
    {"sequence", "max_len", T_INT, "256", R(1, 8192), NULL, 0, "Latest actions M the encoder reads."},
    {"sequence", "width", T_INT, "64", R(1, 4096), NULL, 0, "Transformer width."},
    {"sequence", "layers", T_INT, "2", R(0, 64), NULL, 0, "Transformer layers (PreNorm, causal)."},
    {"sequence", "heads", T_INT, "2", R(1, 64), NULL, 0, "Attention heads (width must be a multiple)."},
    {"sequence", "action_dim", T_INT, "16", R(1, 1024), NULL, 0, "Width of the action-type and surface embeddings."},
    {"sequence", "epochs", T_INT, "10", R(0, 100000), NULL, 0,
     "Training epochs of the user encoder per date (warm-started from the previous date's model); 0 = reuse that "
     "model unchanged (then users whose history did not change are carried over)."},
    {"sequence", "average_epochs", T_INT, "0", R(0, 100000), NULL, 0,
     "The user model written is the mean of the last this many epochs' end-of-epoch parameters (0 or 1: the last)."},
    {"sequence", "batch", T_INT, "256", R(1, 1 << 20), NULL, 0, "Users per training step (summed over ranks)."},
    {"sequence", "positions", T_INT, "32", R(1, 8192), NULL, 0,
     "Latest positions of each sampled window that are trained (next-action and all-action targets)."},
    {"sequence", "window_days", T_F64, "28", R(0, 3650), NULL, 0,
     "Dense all-action loss: a position's positive is a random action of the next window_days (PinnerFormer: 28)."},
    {"sequence", "w_next", T_F64, "1", R(0, 1e6), NULL, 0, "Weight of the next-action loss."},
    {"sequence", "w_all", T_F64, "1", R(0, 1e6), NULL, 0, "Weight of the dense all-action loss."},
    {"sequence", "mask_history", T_BOOL, "false", R(0, 0), NULL, 0,
     "Pins a user engaged with up to a position are not negatives of that position (full-ranking evaluation "
     "excludes them too)."},
    {"sequence", "negatives", T_INT, "4096", R(0, 1 << 24), NULL, 0,
     "Random pins shared by the step's queries (besides the in-batch targets)."},
    {"sequence", "inbatch", T_INT, "1024", R(1, 1 << 24), NULL, 0,
     "Queries per softmax block: a block's candidates are its own targets plus the shared random pins."},
    {"sequence", "lr", T_F64, "0.003", R(0, 10), NULL, 0, "Peak learning rate (AdamW)."},
    {"sequence", "lr_min", T_F64, "0.1", R(0, 1), NULL, 0, "Final learning rate as a fraction of lr (cosine decay)."},
    {"sequence", "warmup_steps", T_INT, "100", R(0, 1e9), NULL, 0, "Linear learning-rate warm-up."},
    {"sequence", "weight_decay", T_F64, "0", R(0, 1), NULL, 0, "Decoupled weight decay (AdamW)."},
    {"sequence", "dropout", T_F64, "0", R(0, 0.99), NULL, 0,
     "Dropout while training: the token embedding and each residual branch (steps of 1/256)."},
    {"sequence", "tau", T_F64, "0.1", R(1e-4, 10), NULL, 0, "Initial softmax temperature."},
    {"sequence", "tau_min", T_F64, "0.03", R(1e-4, 10), NULL, 0, "Floor of the learned temperature."},
    {"sequence", "learn_tau", T_BOOL, "true", R(0, 0), NULL, 0, "Learn the temperature (else fixed at tau)."},
    {"sequence", "seed", T_INT, "1", R(0, 9.2e18), NULL, 0, "Seed of initialisation and sampling."},
    {"sequence", "lookback_days", T_INT, "30", R(1, 3650), NULL, 0,
     "How far back the users stage looks for the latest date with histories (a gap is logged as a warning)."},
    {"sequence", "threads", T_INT, "1", R(1, 64), NULL, F_NODIGEST, "Threads per rank encoding users."},
    {"sequence", "board_weight", T_F64, "0", R(0, 1), NULL, 0,
     "Blends into each encoded user's vector the item encoder's vector of the board with the user's id, where "
     "there is one: normalise((1 - w) user + w board). For benchmark imports where board k holds user k's items "
     "(lightgcn, s3rec); 0 = the encoder's vector alone."},
    {"export", "dir", T_STR, "out/embeddings", R(0, 0), NULL, 0,
     "Shard root: shards and MANIFEST.json land in <dir>/<date>/ (export stage)."},
    {"export", "nshards", T_INT, "16", R(1, 65536), NULL, 0, "Shards per entity kind."},
    {"export", "dtype", T_ENUM, "f32", R(0, 0), "f32|f16|i8", 0, "Vector encoding in the shards."},
    {"export", "users", T_ENUM, "none", R(0, 0), "none|boards|users", 0,
     "Users entity: none; boards (user k gets board k's vector: benchmark imports where users are boards); "
     "users (the users stage's vectors)."},
    {"eval", "gate", T_BOOL, "false", R(0, 0), NULL, 0,
     "Quality gate: export leaves `latest` unchanged and the eval stage flips it when the gate passes."},
    {"eval", "test", T_STR, "none", R(0, 0), NULL, 0,
     "Held-out user-item lists (LightGCN format: 'user item item ...'; user k is board k) scored by full ranking; "
     "none = no held-out data."},
    {"eval", "k", T_INT, "20", R(1, 100000), NULL, 0, "Cut-off K of recall@K and NDCG@K."},
    {"eval", "min_recall", T_F64, "0", R(0, 1), NULL, 0,
     "Quality gate: the eval stage fails (exit 5, nothing published) when recall@K on eval.test is below this; 0 = off."},
    {"kafka", "brokers", T_STR, "localhost:9092", R(0, 0), NULL, 0, "bootstrap.servers of the events topic."},
    {"kafka", "topic", T_STR, "sagepipe-events", R(0, 0), NULL, 0, "Topic of the user actions (JSON, key = user id)."},
    {"kafka", "group", T_STR, "sagepipe", R(0, 0), NULL, 0,
     "Consumer group whose offsets are committed after the ingest marker is written (for lag monitoring; "
     "reruns read the window by timestamp, never from these offsets). No other consumer may subscribe with it."},
    {"kafka", "retries", T_INT, "5", R(0, 100), NULL, F_NODIGEST,
     "Extra attempts of each broker call, with backoff 100 ms, 200 ms, ... (at most timeout_ms); then exit 4."},
    {"kafka", "timeout_ms", T_INT, "10000", R(100, 3600000), NULL, F_NODIGEST,
     "Limit of one broker call; reading fails when no message arrives for timeout_ms x (retries + 1)."},
    {"kafka", "publish", T_BOOL, "false", R(0, 0), NULL, 0,
     "The publish stage produces its message (true) or succeeds without one (false: no Kafka needed)."},
    {"kafka", "publish_topic", T_STR, "sagepipe-manifests", R(0, 0), NULL, 0,
     "Topic of the publish stage's one message per date (key = date, value = JSON naming the manifest)."},
};
#define NKEYS (sizeof SCHEMA / sizeof SCHEMA[0])

struct sp_config {
    char *val[NKEYS];
};

/* The schema index of key[0, klen) in section, or -1 (the INI reader's names are not NUL-terminated). */
static int find_key_n(const char *section, const char *key, size_t klen) {
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(SCHEMA[i].section, section) && strlen(SCHEMA[i].key) == klen && !memcmp(SCHEMA[i].key, key, klen))
            return (int)i;
    return -1;
}

static int find_key(const char *section, const char *key) { return find_key_n(section, key, strlen(key)); }

/* The index in SECTIONS of name[0, n), or -1. */
static int section_index(const char *name, size_t n) {
    for (int i = 0; SECTIONS[i]; i++)
        if (strlen(SECTIONS[i]) == n && !memcmp(SECTIONS[i], name, n)) return i;
    return -1;
}

static int section_known(const char *section) { return section_index(section, strlen(section)) >= 0; }

/* The name of the first control character of s[0..n) (tab excepted), its offset in *at; NULL when none.
 * The name is a literal or written into hex. */
static const char *control_char(const char *s, size_t n, size_t *at, char hex[8]) {
    for (size_t j = 0; j < n; j++) {
        unsigned char ch = (unsigned char)s[j];
        if ((ch >= 0x20 && ch != 0x7f) || ch == '\t') continue;
        *at = j;
        if (ch == '\n') return "a newline";
        if (ch == '\r') return "a carriage return";
        snprintf(hex, 8, "0x%02x", ch);
        return hex;
    }
    return NULL;
}

/* Validates `value` for key i; on success stores a copy. `where` prefixes errors. The rules every value
 * obeys, from a file or from --set, so that `config show` writes a file that reads back the same
 * (the syntax comment in config.h): at most SP_CONFIG_VALUE_MAX characters, no control character but
 * tab, no ';' at the start or after a space or tab (it would start a comment in a file), and no word twice
 * in a list. Both callers have trimmed spaces and tabs at either end already. */
static int set_value(sp_config *c, int i, const char *value, const char *where) {
    const kdef *k = &SCHEMA[i];
    char *end;
    size_t vlen = strlen(value), at;
    char hex[8];
    if (vlen > SP_CONFIG_VALUE_MAX)
        return sp_err(SP_ECONFIG, "%s%s.%s: value of %zu characters, longer than the %d a value may have", where,
                      k->section, k->key, vlen, SP_CONFIG_VALUE_MAX);
    const char *ctl = control_char(value, vlen, &at, hex);
    if (ctl)
        return sp_err(SP_ECONFIG, "%s%s.%s: %s at character %zu of the value (a value is one line of text)", where,
                      k->section, k->key, ctl, at + 1);
    for (size_t j = 0; j < vlen; j++)
        if (value[j] == ';' && (!j || value[j - 1] == ' ' || value[j - 1] == '\t'))
            return sp_err(SP_ECONFIG, "%s%s.%s: ';' at character %zu of the value, %s: it would start a comment "
                          "in a config file", where, k->section, k->key, j + 1,
                          j ? "after a space or tab" : "at its start");
    switch (k->type) {
    case T_INT: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!*value || *end || errno)
            return sp_err(SP_ECONFIG, "%s%s.%s = '%s': not an integer", where, k->section, k->key, value);
        if ((double)v < k->min || (double)v > k->max)
            return sp_err(SP_ECONFIG, "%s%s.%s = %lld: out of range [%.0f, %.0f]", where, k->section, k->key, v,
                          k->min, k->max);
        break;
    }
    case T_F64: {
        errno = 0;
        double v = strtod(value, &end);
        if (!*value || *end || errno || !isfinite(v))
            return sp_err(SP_ECONFIG, "%s%s.%s = '%s': not a number", where, k->section, k->key, value);
        if (v < k->min || v > k->max)
            return sp_err(SP_ECONFIG, "%s%s.%s = %g: out of range [%g, %g]", where, k->section, k->key, v, k->min,
                          k->max);
        break;
    }
    case T_BOOL:
        if (strcmp(value, "true") && strcmp(value, "false"))
            return sp_err(SP_ECONFIG, "%s%s.%s = '%s': expected true or false", where, k->section, k->key, value);
        break;
    case T_ENUM: {
        size_t n = strlen(value);
        const char *p = k->enums;
        int ok = 0;
        while (p && *p) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            if (n && len == n && !strncmp(p, value, n)) ok = 1;
            p = bar ? bar + 1 : NULL;
        }
        if (!ok)
            return sp_err(SP_ECONFIG, "%s%s.%s = '%s': expected one of %s", where, k->section, k->key, value,
                          k->enums);
        break;
    }
    case T_LIST:
        if (!value[strspn(value, " \t")])
            return sp_err(SP_ECONFIG, "%s%s.%s: empty list", where, k->section, k->key);
        /* every list is a vocabulary: a word given twice is a mistake (the second would never be used) */
        for (const char *p = value + strspn(value, " \t"); *p;) {
            size_t n = strcspn(p, " \t");
            for (const char *q = p + n + strspn(p + n, " \t"); *q;) {
                size_t m = strcspn(q, " \t");
                if (m == n && !memcmp(p, q, n))
                    return sp_err(SP_ECONFIG, "%s%s.%s: '%.*s' is listed twice", where, k->section, k->key,
                                  (int)(n > 64 ? 64 : n), p);
                q += m + strspn(q + m, " \t");
            }
            p += n + strspn(p + n, " \t");
        }
        break;
    case T_STR:
        if (!*value) return sp_err(SP_ECONFIG, "%s%s.%s: empty value", where, k->section, k->key);
        break;
    }
    char *copy = strdup(value);
    if (!copy) return SP_ENOMEM;
    free(c->val[i]);
    c->val[i] = copy;
    return SP_OK;
}

int sp_config_new(sp_config **out) {
    sp_config *c = calloc(1, sizeof *c);
    if (!c) return SP_ENOMEM;
    for (size_t i = 0; i < NKEYS; i++) {
        if (SCHEMA[i].def && !(c->val[i] = strdup(SCHEMA[i].def))) {
            sp_config_free(c);
            return SP_ENOMEM;
        }
    }
    *out = c;
    return SP_OK;
}

void sp_config_free(sp_config *c) {
    if (!c) return;
    for (size_t i = 0; i < NKEYS; i++) free(c->val[i]);
    free(c);
}

/* The INI reader. One pass over the file's bytes, which are read whole first (CONFIG_MAX_BYTES at most).
 * Line by line, after a trailing CR, spaces and tabs are dropped (and a UTF-8 BOM at the start):
 *   - blank, or '#' or ';' as the first character that is not a space or tab: a comment;
 *   - "[section]", optionally followed by spaces and a "; comment": a section, each at most once;
 *   - "key = value": the first '=' separates them, spaces and tabs around both are dropped, and a ';' after
 *     a space or tab starts a comment that ends the value; each key at most once;
 *   - anything else is an error naming path:line: an indented line (no continuation lines), a key line
 *     with ':' before its '=' or without '=' (':' is not a separator), a key outside any [section], text
 *     after a section's ']', a NUL byte, a line longer than CONFIG_LINE_MAX.
 * Values then pass set_value like a --set's, so both accept exactly the same values. It replaced libinih,
 * whose 200-byte line buffer refused long paths and which took ':' and text after ']' silently. */
#define CONFIG_LINE_MAX 8192 /* characters of one line, its '\n' not included */
#define CONFIG_MAX_BYTES (1 << 20)

static int config_parse(sp_config *c, const char *path, const char *buf, size_t n) {
    int sect_line[sizeof SECTIONS / sizeof SECTIONS[0]] = {0}, key_line[NKEYS] = {0};
    int cur = -1; /* index into SECTIONS; -1 before the first header */
    if (n >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) buf += 3, n -= 3;
    int line = 0;
    for (size_t pos = 0; pos < n;) {
        const char *l = buf + pos, *nl = memchr(l, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - l) : n - pos;
        pos += nl ? len + 1 : len;
        line++;
        if (memchr(l, 0, len)) return sp_err(SP_ECONFIG, "%s:%d: a NUL byte", path, line);
        while (len && (l[len - 1] == '\r' || l[len - 1] == ' ' || l[len - 1] == '\t')) len--;
        size_t lead = 0;
        while (lead < len && (l[lead] == ' ' || l[lead] == '\t')) lead++;
        int comment = lead == len || l[lead] == '#' || l[lead] == ';';
        if (len > CONFIG_LINE_MAX)
            return comment ? sp_err(SP_ECONFIG, "%s:%d: comment line of %zu characters, longer than the %d a line "
                                    "may have (split it over several # lines)", path, line, len, CONFIG_LINE_MAX)
                           : sp_err(SP_ECONFIG, "%s:%d: line of %zu characters, longer than the %d a line may have "
                                    "(a value may have %d)", path, line, len, CONFIG_LINE_MAX, SP_CONFIG_VALUE_MAX);
        if (comment) continue;
        if (lead)
            return sp_err(SP_ECONFIG, "%s:%d: indented line '%.*s': continuation lines are not supported (one "
                          "key = value per line)", path, line, (int)(len - lead > 40 ? 40 : len - lead), l + lead);
        if (l[0] == '[') {
            const char *close = memchr(l, ']', len);
            if (!close) return sp_err(SP_ECONFIG, "%s:%d: section header without ']'", path, line);
            size_t name = (size_t)(close - l - 1), rest = (size_t)(close + 1 - l);
            size_t sp = rest;
            while (sp < len && (l[sp] == ' ' || l[sp] == '\t')) sp++;
            if (sp < len && !(l[sp] == ';' && sp > rest))
                return sp_err(SP_ECONFIG, "%s:%d: text '%.*s' after the section header's ']' (only a '; comment' "
                              "may follow it)", path, line, (int)(len - rest > 40 ? 40 : len - rest), l + rest);
            cur = section_index(l + 1, name);
            if (cur < 0)
                return sp_err(SP_ECONFIG, "%s:%d: unknown section [%.*s] (known: input pipeline graph walks train "
                              "sage sequence export eval kafka)", path, line, (int)(name > 64 ? 64 : name), l + 1);
            if (sect_line[cur])
                return sp_err(SP_ECONFIG, "%s:%d: section [%s] again (first on line %d): one section each", path,
                              line, SECTIONS[cur], sect_line[cur]);
            sect_line[cur] = line;
            continue;
        }
        const char *eq = memchr(l, '=', len), *colon = memchr(l, ':', eq ? (size_t)(eq - l) : len);
        if (colon)
            return sp_err(SP_ECONFIG, "%s:%d: '%.*s': ':' is not a separator (key = value)", path, line,
                          (int)(len > 40 ? 40 : len), l);
        if (!eq || eq == l)
            return sp_err(SP_ECONFIG, "%s:%d: syntax error (expected [section] or key = value)", path, line);
        size_t klen = (size_t)(eq - l);
        while (klen && (l[klen - 1] == ' ' || l[klen - 1] == '\t')) klen--;
        if (cur < 0)
            return sp_err(SP_ECONFIG, "%s:%d: key '%.*s' outside any [section] (put it under one, e.g. [input])",
                          path, line, (int)(klen > 64 ? 64 : klen), l);
        int i = find_key_n(SECTIONS[cur], l, klen);
        if (i < 0)
            return sp_err(SP_ECONFIG, "%s:%d: unknown key '%.*s' in [%s] (see configs/default.ini)", path, line,
                          (int)(klen > 64 ? 64 : klen), l, SECTIONS[cur]);
        if (key_line[i])
            return sp_err(SP_ECONFIG, "%s:%d: key '%s' in [%s] again (first on line %d)", path, line, SCHEMA[i].key,
                          SECTIONS[cur], key_line[i]);
        key_line[i] = line;
        const char *v = eq + 1, *end = l + len;
        while (v < end && (*v == ' ' || *v == '\t')) v++;
        for (const char *p = v; p < end; p++) /* "x ;c": the comment ends the value */
            if (*p == ';' && (p[-1] == ' ' || p[-1] == '\t')) {
                end = p;
                break;
            }
        while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
        char *value = strndup(v, (size_t)(end - v));
        if (!value) return SP_ENOMEM;
        int rc = set_value(c, i, value, "");
        free(value);
        if (rc) return sp_err(rc, "%s:%d: %s", path, line, sp_errmsg());
    }
    return SP_OK;
}

int sp_config_load(sp_config *c, const char *path) {
    /* O_NONBLOCK: a FIFO (or a device) is refused below instead of blocking the open */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return sp_err(SP_ECONFIG, "cannot open config %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return sp_err(SP_ECONFIG, "config %s: not a regular file", path);
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        int e = errno;
        close(fd);
        return sp_err(SP_ECONFIG, "cannot open config %s: %s", path, strerror(e));
    }
    char *buf = malloc(CONFIG_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return SP_ENOMEM;
    }
    size_t n = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
    int rc = SP_OK;
    if (ferror(f)) rc = sp_err(SP_ECONFIG, "cannot read config %s: %s", path, strerror(errno));
    else if (n > CONFIG_MAX_BYTES) rc = sp_err(SP_ECONFIG, "config %s: larger than %d bytes", path, CONFIG_MAX_BYTES);
    fclose(f);
    if (!rc) rc = config_parse(c, path, buf, n);
    free(buf);
    return rc;
}

int sp_config_set(sp_config *c, const char *a) {
    const char *dot = strchr(a, '.'), *eq = strchr(a, '=');
    size_t at;
    char hex[8];
    const char *ctl = control_char(a, eq ? (size_t)(eq - a) : strlen(a), &at, hex);
    if (ctl) return sp_err(SP_ECONFIG, "--set: %s at character %zu, in the section.key name", ctl, at + 1);
    if (!dot || !eq || dot > eq || dot == a || eq == dot + 1)
        return sp_err(SP_ECONFIG, "--set '%s': expected section.key=value", a);
    char section[64], key[64];
    size_t sl = (size_t)(dot - a), kl = (size_t)(eq - dot - 1);
    if (sl >= sizeof section || kl >= sizeof key) return sp_err(SP_ECONFIG, "--set '%.80s': name too long", a);
    memcpy(section, a, sl);
    section[sl] = 0;
    memcpy(key, dot + 1, kl);
    key[kl] = 0;
    if (!section_known(section)) return sp_err(SP_ECONFIG, "--set '%s': unknown section [%s]", a, section);
    int i = find_key(section, key);
    if (i < 0) return sp_err(SP_ECONFIG, "--set '%s': unknown key '%s' in [%s]", a, key, section);
    /* trimmed as a file's value is; what is left obeys the same rules (set_value) */
    const char *v = eq + 1, *end = v + strlen(v);
    while (*v == ' ' || *v == '\t') v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    char *value = strndup(v, (size_t)(end - v));
    if (!value) return SP_ENOMEM;
    int rc = set_value(c, i, value, "--set ");
    free(value);
    return rc;
}

/* 1 when every word of list a is a word of list b (space- or tab-separated); *bad gets the first that is not. */
static int words_within(const char *a, const char *b, char *bad, size_t cap) {
    for (const char *p = a; *p;) {
        p += strspn(p, " \t");
        size_t n = strcspn(p, " \t");
        if (!n) break;
        int found = 0;
        for (const char *q = b; *q && !found;) {
            q += strspn(q, " \t");
            size_t m = strcspn(q, " \t");
            found = m == n && !memcmp(p, q, n);
            q += m;
        }
        if (!found) {
            snprintf(bad, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
            return 0;
        }
        p += n;
    }
    return 1;
}

int sp_config_check(const sp_config *c) {
    for (size_t i = 0; i < NKEYS; i++)
        if ((SCHEMA[i].flags & F_REQUIRED) && !c->val[i])
            return sp_err(SP_ECONFIG, "missing required key %s.%s (%s)", SCHEMA[i].section, SCHEMA[i].key,
                          SCHEMA[i].doc);
    /* keys that constrain each other: checked for every command, before any stage reads them */
    int64_t w = sp_config_int(c, "sequence", "width"), h = sp_config_int(c, "sequence", "heads");
    if (w % h) return sp_err(SP_ECONFIG, "sequence.width %lld is not a multiple of sequence.heads %lld", (long long)w,
                             (long long)h);
    static const char *const tau_sections[] = {"train", "sequence"};
    for (int t = 0; t < 2; t++) {
        double tau = sp_config_f64(c, tau_sections[t], "tau"), lo = sp_config_f64(c, tau_sections[t], "tau_min");
        if (lo > tau)
            return sp_err(SP_ECONFIG, "%s.tau_min %g is above %s.tau %g (the floor of the learned temperature)",
                          tau_sections[t], lo, tau_sections[t], tau);
    }
    /* the publish stage's rank 0 waits on Kafka while the other ranks wait in a collective: that one must
     * outlast the longest Kafka wait (every attempt and its backoff, each at most timeout_ms), or the others
     * abort saying a rank is stuck */
    double kafka_s = (2.0 * (double)sp_config_int(c, "kafka", "retries") + 1) *
                     (double)sp_config_int(c, "kafka", "timeout_ms") / 1000;
    if (sp_config_bool(c, "kafka", "publish") && sp_config_f64(c, "pipeline", "collective_timeout_s") < kafka_s)
        return sp_err(SP_ECONFIG, "pipeline.collective_timeout_s %g is shorter than the publish stage's longest "
                      "Kafka wait, %g s ((2 kafka.retries + 1) x kafka.timeout_ms)",
                      sp_config_f64(c, "pipeline", "collective_timeout_s"), kafka_s);
    if (sp_config_int(c, "walks", "hard_lo") > sp_config_int(c, "walks", "hard_hi"))
        return sp_err(SP_ECONFIG, "walks.hard_lo %lld is above walks.hard_hi %lld (the band would be empty)",
                      (long long)sp_config_int(c, "walks", "hard_lo"), (long long)sp_config_int(c, "walks", "hard_hi"));
    static const char *const nbr[2][2] = {{"nbr_pins", "top_pins"}, {"nbr_boards", "top_boards"}};
    for (int t = 0; t < 2; t++)
        if (sp_config_int(c, "sage", nbr[t][0]) > sp_config_int(c, "walks", nbr[t][1]))
            return sp_err(SP_ECONFIG, "sage.%s %lld is above walks.%s %lld (a layer reads at most the kept neighbours)",
                          nbr[t][0], (long long)sp_config_int(c, "sage", nbr[t][0]), nbr[t][1],
                          (long long)sp_config_int(c, "walks", nbr[t][1]));
    char bad[64];
    if (!words_within(sp_config_str(c, "walks", "negative_actions"), sp_config_str(c, "input", "actions"), bad,
                      sizeof bad))
        return sp_err(SP_ECONFIG, "walks.negative_actions: '%s' is not one of input.actions (%s)", bad,
                      sp_config_str(c, "input", "actions"));
    if (sp_config_f64(c, "eval", "min_recall") > 0 && !strcmp(sp_config_str(c, "eval", "test"), "none"))
        return sp_err(SP_ECONFIG, "eval.min_recall %g needs held-out data to score: eval.test is none",
                      sp_config_f64(c, "eval", "min_recall"));
    return SP_OK;
}

static int lookup(const char *section, const char *key, ktype want, const char *fn) {
    int i = find_key(section, key);
    if (i < 0 || (SCHEMA[i].type != want && !(want == T_STR && (SCHEMA[i].type == T_ENUM || SCHEMA[i].type == T_LIST)))) {
        fprintf(stderr, "%s:%d: %s(%s.%s): no such key of that type\n", __FILE__, __LINE__, fn, section, key);
        abort();
    }
    return i;
}

const char *sp_config_str(const sp_config *c, const char *s, const char *k) {
    return c->val[lookup(s, k, T_STR, __func__)];
}
int64_t sp_config_int(const sp_config *c, const char *s, const char *k) {
    const char *v = c->val[lookup(s, k, T_INT, __func__)];
    return v ? strtoll(v, NULL, 10) : 0;
}
double sp_config_f64(const sp_config *c, const char *s, const char *k) {
    const char *v = c->val[lookup(s, k, T_F64, __func__)];
    return v ? strtod(v, NULL) : 0;
}
int sp_config_bool(const sp_config *c, const char *s, const char *k) {
    const char *v = c->val[lookup(s, k, T_BOOL, __func__)];
    return v && !strcmp(v, "true");
}

int sp_config_words(const sp_config *c, const char *section, const char *key, char **words, int max, int *n,
                    char **store) {
    const char *list = c->val[lookup(section, key, T_LIST, __func__)];
    *n = 0;
    if (!(*store = strdup(list ? list : ""))) return SP_ENOMEM;
    for (char *save, *t = strtok_r(*store, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (*n == max) return sp_err(SP_ECONFIG, "%s.%s has more than %d entries", section, key, max);
        words[(*n)++] = t;
    }
    return SP_OK;
}

uint64_t sp_config_digest(const sp_config *c, const char *const *sections) {
    return sp_config_digest_except(c, sections, NULL);
}

uint64_t sp_config_digest_except(const sp_config *c, const char *const *sections, const char *const *skip) {
    XXH64_state_t *st = XXH64_createState();
    XXH64_reset(st, 0);
    for (int s = 0; sections && sections[s]; s++) {
        for (size_t i = 0; i < NKEYS; i++) {
            if (strcmp(SCHEMA[i].section, sections[s]) || (SCHEMA[i].flags & F_NODIGEST)) continue;
            int skipped = 0;
            for (int k = 0; skip && skip[k] && !skipped; k++) skipped = !strcmp(SCHEMA[i].key, skip[k]);
            if (skipped) continue;
            const char *v = c->val[i] ? c->val[i] : "";
            XXH64_update(st, SCHEMA[i].section, strlen(SCHEMA[i].section));
            XXH64_update(st, ".", 1);
            XXH64_update(st, SCHEMA[i].key, strlen(SCHEMA[i].key) + 1);
            XXH64_update(st, v, strlen(v) + 1);
        }
    }
    uint64_t h = XXH64_digest(st);
    XXH64_freeState(st);
    return h;
}

static const char *type_name(const kdef *k) {
    static const char *names[] = {"string", "integer", "number", "bool", "enum", "list"};
    return names[k->type];
}

/* Writes "# text" wrapped at ~100 columns, to be read by people (the reader
 * would take lines of up to CONFIG_LINE_MAX characters). */
static void write_comment(FILE *f, const char *text) {
    const char *p = text;
    while (*p) {
        size_t n = strlen(p);
        if (n > 98) {
            n = 98;
            while (n > 40 && p[n] != ' ') n--;
        }
        fprintf(f, "# %.*s\n", (int)n, p);
        p += n;
        while (*p == ' ') p++;
    }
}

void sp_config_write_ini(const sp_config *c, FILE *f, int with_docs) {
    if (with_docs)
        fprintf(f, "# sagepipe configuration: every key with its default and meaning.\n"
                   "# Generated by `sagepipe config defaults`; a test checks that this file matches it.\n"
                   "# Override one key on the command line with --set section.key=value.\n");
    for (int s = 0; SECTIONS[s]; s++) {
        fprintf(f, "\n[%s]\n", SECTIONS[s]);
        if (with_docs) write_comment(f, SECTION_DOCS[s]);
        for (size_t i = 0; i < NKEYS; i++) {
            const kdef *k = &SCHEMA[i];
            if (strcmp(k->section, SECTIONS[s])) continue;
            const char *v = c ? c->val[i] : k->def;
            if (with_docs) {
                char doc[1024];
                snprintf(doc, sizeof doc, "%s (%s%s%s)%s", k->doc, type_name(k), k->enums ? ": " : "",
                         k->enums ? k->enums : "", (k->flags & F_REQUIRED) ? " REQUIRED" : "");
                write_comment(f, doc);
            }
            if (v) fprintf(f, "%s = %s\n", k->key, v);
            else fprintf(f, "# %s =\n", k->key);
        }
    }
}

void sp_config_write_reference(FILE *f) {
    fprintf(f, "| key | type | default | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const kdef *k = &SCHEMA[i];
        fprintf(f, "| `%s.%s` | %s", k->section, k->key, type_name(k));
        if (k->enums) { /* '|' would end the table cell */
            fputs(": ", f);
            for (const char *p = k->enums; *p; p++) fputs(*p == '|' ? " / " : (char[2]){*p, 0}, f);
        }
        fprintf(f, " | %s%s%s | %s |\n", k->def ? "`" : "", k->def ? k->def : "(required)", k->def ? "`" : "", k->doc);
    }
}
