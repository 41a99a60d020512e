/* sagepipe: the command line (DESIGN §5). Parses arguments, loads the config,
 * runs stages under MPI and maps error codes to exit codes; the only place
 * besides pipeline/ that decides to stop the process. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blas_env.h"
#include "config.h"
#include "dist.h"
#include "gen.h"
#include "graph_stage.h"
#include "infer_stage.h"
#include "walks_stage.h"
#include "backend.h"
#include "import.h"
#include "log.h"
#include "ops.h"
#include "reader_cmds.h"
#include "sp_base.h"
#include "stage.h"
#include "tsv.h"
#include "users_stage.h"

static const char *USAGE =
    "sagepipe " SAGEPIPE_VERSION " - nightly PinSage/OmniSage item and user embeddings as LMDB shards\n"
    "\n"
    "usage:\n"
    "  sagepipe run    --config FILE --date YYYY-MM-DD [--from STAGE] [--to STAGE] [--force] [--full]\n"
    "                  [--device cpu|cuda|auto] [--set k=v]...\n"
    "  sagepipe job    STAGE --config FILE --date YYYY-MM-DD [--force] [--full] [--device cpu|cuda|auto]\n"
    "                  [--set k=v]...\n"
    "  sagepipe get    --manifest FILE ID...\n"
    "  sagepipe verify --manifest FILE\n"
    "  sagepipe nn     --manifest FILE --id ID [-k 10]\n"
    "  sagepipe eval   --manifest FILE --test FILE [--train FILE] [-k 20]   (held-out recall/NDCG of a set)\n"
    "  sagepipe import lightgcn DATA_DIR OUT_DIR\n"
    "  sagepipe import s3rec SEQ_FILE OUT_DIR [--attributes JSON] [--holdout N]\n"
    "  sagepipe gen    --pins N --boards N --edges N [--users N] [--events N] [--seed S] [--dim D]\n"
    "                  [--date YYYY-MM-DD] [--no-tokens] OUT_DIR\n"
    "  sagepipe config defaults|reference | config show --config FILE [--set k=v]...\n"
    "  sagepipe dump   graph|walks|emb|emb-ref|users --config FILE --date YYYY-MM-DD   (debug: tables by external id)\n"
    "  sagepipe --help | --version | COMMAND --help\n"
    "\n"
    "stages, in order: ingest graph walks train infer users export eval publish\n"
    "  (all built; the users stage with --device cuda answers \"not implemented yet\" with exit 2)\n"
    "\n"
    "exit codes: 0 ok, 1 internal error, 2 usage or config error, 3 input validation failed,\n"
    "            4 an external system failed (MPI peer, Kafka, disk), 5 quality gate failed\n"
    "Run under MPI as `mpirun -np N sagepipe run ...`; one process alone is a valid deployment.\n";

static const char *HELP_RUN =
    "usage: sagepipe run --config FILE --date YYYY-MM-DD [--from STAGE] [--to STAGE] [--force] [--full]\n"
    "                    [--device cpu|cuda|auto] [--set section.key=value]...\n"
    "Runs the stages from --from (default ingest) to --to (default publish) for one date. A stage whose\n"
    "_SUCCESS.json matches its inputs and config is skipped; --force reruns every selected stage; --full\n"
    "reruns the users stage encoding every user (not only those active in the day's window).\n"
    "Stops at the first stage that fails, with its exit code. Ends with a summary table.\n"
    "--device: where the encoders compute: cpu (the reference), cuda (one GPU per rank: the node-local\n"
    "rank picks it; exit 2 when none can start) or auto (default: cuda when a GPU starts, else cpu).\n"
    "On cuda, train's minibatch steps and evaluation and infer's layers run on the GPU; the users stage\n"
    "refuses cuda (exit 2: not implemented yet; auto runs it on the CPU).\n";
static const char *HELP_JOB =
    "usage: sagepipe job STAGE --config FILE --date YYYY-MM-DD [--force] [--full] [--device cpu|cuda|auto]\n"
    "                    [--set section.key=value]...\n"
    "Runs one stage for one date (a backfill). Its upstream stages must have completed for that date\n"
    "with the same config, else exit 2 names the stage to run first.\n";
static const char *HELP_IMPORT =
    "usage: sagepipe import lightgcn DATA_DIR OUT_DIR [--validation F [--validation-order random|last]]\n"
    "       sagepipe import s3rec SEQ_FILE OUT_DIR [--attributes JSON] [--holdout N]\n"
    "Writes a DESIGN section 3 input directory. lightgcn: DATA_DIR/train.txt ('user item item ...') becomes\n"
    "pin-board edges (board k = user k's items) and 'engage' events in file order; --validation F leaves a\n"
    "random F of each user's items out (at least one, fixed by the user id) into OUT_DIR/heldout.txt, a\n"
    "validation split for eval.test; with --validation-order last, the last F of each line in file order.\n"
    "s3rec: each line's items\n"
    "become that user's events one minute apart and pin-board edges; --holdout N leaves each user's last N\n"
    "items out; --attributes turns item2attributes.json into pin_tokens.tsv.\n"
    "Timestamps are synthetic: run these inputs with input.window = all (configs/gowalla.ini, beauty.ini).\n";
static const char *HELP_GEN =
    "usage: sagepipe gen --pins N --boards N --edges N [--users N] [--events N] [--seed S] [--dim D]\n"
    "                    [--date YYYY-MM-DD] [--communities C] [--no-tokens] OUT_DIR\n"
    "Synthetic inputs: power-law board sizes, uniform pins, planted communities; dense features (dim D,\n"
    "default 16) and tokens correlated with the communities; users whose typed, time-stamped actions on\n"
    "--date (default 2026-11-21) follow them. Deterministic from --seed (default 1).\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "sagepipe: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see sagepipe --help)\n");
    return SP_EXIT_USAGE;
}

static int has_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

/* ---- run / job ---- */

typedef struct {
    const char *config, *date, *from, *to, *stage, *device;
    int force, full;
    const char *sets[256];
    int nsets;
} run_args;

static int parse_run_args(int argc, char **argv, int is_job, run_args *a) {
    memset(a, 0, sizeof *a);
    int i = 0;
    if (is_job) {
        if (argc < 1 || argv[0][0] == '-') return usage_error("job: missing STAGE%s", "");
        a->stage = argv[i++];
    }
    for (; i < argc; i++) {
        const char *o = argv[i];
        int more = i + 1 < argc;
        const char **one = !strcmp(o, "--config") ? &a->config : !strcmp(o, "--date") ? &a->date
                           : !strcmp(o, "--device") ? &a->device : !strcmp(o, "--from") && !is_job ? &a->from
                           : !strcmp(o, "--to") && !is_job ? &a->to : NULL;
        if (one && more) { /* given twice is a mistake (a scheduler's template, say), not "the last one wins" */
            if (*one) return usage_error("%s given twice", o);
            *one = argv[++i];
        } else if (!strcmp(o, "--force")) a->force = 1;
        else if (!strcmp(o, "--full")) a->full = 1;
        else if (!strcmp(o, "--set") && more) {
            if (a->nsets == 256) return usage_error("too many --set options%s", "");
            a->sets[a->nsets++] = argv[++i];
        } else return usage_error("unknown or incomplete option '%s'", o);
    }
    if (!a->config) return usage_error("missing --config FILE%s", "");
    if (!a->date) return usage_error("missing --date YYYY-MM-DD%s", "");
    if (!a->device) a->device = "auto";
    if (strcmp(a->device, "cpu") && strcmp(a->device, "cuda") && strcmp(a->device, "auto"))
        return usage_error("--device '%s': expected cpu, cuda or auto", a->device);
    return 0;
}

static int load_config(const char *path, const char *const *sets, int nsets, sp_config **out) {
    sp_config *c;
    int rc = sp_config_new(&c);
    if (!rc && path) rc = sp_config_load(c, path);
    for (int i = 0; !rc && i < nsets; i++) rc = sp_config_set(c, sets[i]);
    if (!rc) rc = sp_config_check(c);
    if (rc) {
        sp_config_free(c);
        return rc;
    }
    *out = c;
    return SP_OK;
}

/* tmpl with every "{date}" replaced by date (truncated to cap). */
static void replace_date(const char *tmpl, const char *date, char *out, size_t cap) {
    size_t n = 0;
    out[0] = 0;
    for (const char *p = tmpl; *p && n + 1 < cap;) {
        const char *q = strstr(p, "{date}");
        size_t lit = q ? (size_t)(q - p) : strlen(p);
        int w = snprintf(out + n, cap - n, "%.*s%s", (int)lit, p, q ? date : "");
        if (w < 0) break;
        n += (size_t)w < cap - n ? (size_t)w : cap - n - 1;
        if (!q) break;
        p = q + 6;
    }
}

/* path with a leading "./", "//", "/./" and a trailing '/' taken out (no "..", no links: a lexical form). */
static void path_lex(const char *p, char *out, size_t cap) {
    size_t o = 0;
    while (p[0] == '.' && p[1] == '/') /* "./x" is "x" */
        for (p++; *p == '/'; p++) {}
    for (const char *c = p; *c && o + 1 < cap;) {
        if (*c == '/' && (c[1] == '/' || (c[1] == '.' && (c[2] == '/' || !c[2])))) {
            c += c[1] == '/' ? 1 : 2;
            continue;
        }
        out[o++] = *c++;
    }
    while (o > 1 && out[o - 1] == '/') o--;
    out[o] = 0;
}

/* 1 when a and b name the same directory: resolved where both exist, else compared lexically. */
static int same_dir(const char *a, const char *b) {
    char ra[PATH_MAX], rb[PATH_MAX];
    if (realpath(a, ra) && realpath(b, rb)) return !strcmp(ra, rb);
    path_lex(a, ra, sizeof ra);
    path_lex(b, rb, sizeof rb);
    return !strcmp(ra, rb);
}

/* What is wrong with the work and export directories, found before any stage runs (export.dir was found
 * out only by the export stage, after the stages before it). */
static int check_dirs(const sp_config *cfg) {
    const char *work = sp_config_str(cfg, "pipeline", "work_dir"), *exp = sp_config_str(cfg, "export", "dir");
    if (strlen(work) > PATH_MAX - 512 || strlen(sp_config_str(cfg, "input", "dir")) > PATH_MAX - 512)
        return sp_err(SP_ECONFIG, "pipeline.work_dir or input.dir is longer than %d bytes", PATH_MAX - 512);
    if (strlen(exp) > PATH_MAX - 256) return sp_err(SP_ECONFIG, "export.dir is longer than %d bytes", PATH_MAX - 256);
    /* the same directory: the export's swap took the date's work directory for the old set and deleted it */
    if (same_dir(work, exp))
        return sp_err(SP_ECONFIG, "export.dir and pipeline.work_dir are the same directory (%s): give the shard sets "
                      "their own", exp);
    struct stat st;
    if (!stat(exp, &st) && !S_ISDIR(st.st_mode)) return sp_err(SP_ECONFIG, "export.dir %s is not a directory", exp);
    return SP_OK;
}

static int make_ctx(sp_config *cfg, const char *date, sp_run_ctx *ctx) {
    memset(ctx, 0, sizeof *ctx);
    ctx->cfg = cfg;
    ctx->date = date;
    int rc = sp_date_parse(date, &ctx->day_ms);
    if (rc) return rc;
    if ((rc = check_dirs(cfg))) return rc;
    ctx->rank = sp_dist_rank();
    ctx->size = sp_dist_size();
    snprintf(ctx->date_dir, sizeof ctx->date_dir, "%s/%s", sp_config_str(cfg, "pipeline", "work_dir"), date);
    replace_date(sp_config_str(cfg, "input", "dir"), date, ctx->input_dir, sizeof ctx->input_dir);
    return SP_OK;
}

static const char *status_name(sp_stage_status s) {
    static const char *n[] = {"ran", "skipped", "FAILED", "not implemented yet"};
    return n[s];
}

static int cmd_run(int argc, char **argv, int is_job) {
    if (has_help(argc, argv)) {
        fputs(is_job ? HELP_JOB : HELP_RUN, stdout);
        return 0;
    }
    run_args a;
    int ex = parse_run_args(argc, argv, is_job, &a);
    if (ex) return ex;
    int first = 0, last = sp_nstages - 1;
    const char *names[3] = {a.stage, a.from, a.to};
    for (int k = 0; k < 3; k++) {
        if (!names[k]) continue;
        const sp_stage_def *s = sp_stage_find(names[k]);
        if (!s) return usage_error("unknown stage '%s' (ingest graph walks train infer users export eval publish)",
                                   names[k]);
        int idx = (int)(s - sp_stages);
        if (k == 0) first = last = idx;
        if (k == 1) first = idx;
        if (k == 2) last = idx;
    }
    if (first > last) return usage_error("--from %s comes after --to", a.from);

    int rc = sp_dist_init(&argc, &argv);
    if (rc) {
        fprintf(stderr, "sagepipe: %s\n", sp_errmsg());
        return SP_EXIT_EXTERNAL;
    }
    int rank = sp_dist_rank();
    sp_log_init(rank, SP_LOG_INFO);
    sp_config *cfg = NULL;
    sp_run_ctx ctx;
    rc = load_config(a.config, a.sets, a.nsets, &cfg);
    if (!rc) {
        static const char *lv[] = {"debug", "info", "warn", "error"};
        const char *l = sp_config_str(cfg, "pipeline", "log_level");
        for (int i = 0; i < 4; i++)
            if (!strcmp(l, lv[i])) sp_log_init(rank, i);
        sp_dist_set_timeout(sp_config_f64(cfg, "pipeline", "collective_timeout_s"));
        rc = make_ctx(cfg, a.date, &ctx);
        ctx.full = a.full;
        ctx.device = a.device;
    }
    /* one GPU per rank on a node: the node-local rank picks the device (collective: every rank asks) */
    int local_rank = sp_dist_local_rank();
    if (!rc) rc = nn_backend_select(a.device, local_rank, &ctx.be);
    /* One run or job per (work_dir, date) at a time; the kernel drops the lock when the process ends. */
    sp_run_lock lock = {.fd = -1};
    if (!rc && rank == 0) rc = sp_run_lock_take(ctx.date_dir, &lock);
    /* The stages that read the previous date's outputs (train's warm start, the users' histories, eval's
     * drift) would find them half made while that date runs: they cold-started or failed by timing. */
    int reads_prev = 0;
    for (int i = first; i <= last; i++)
        reads_prev |= !strcmp(sp_stages[i].name, "train") || !strcmp(sp_stages[i].name, "users") ||
                      !strcmp(sp_stages[i].name, "eval");
    char prev[11], who[200];
    if (!rc && rank == 0 && reads_prev &&
        sp_prev_date_running(sp_config_str(cfg, "pipeline", "work_dir"), a.date,
                             (int)sp_config_int(cfg, "sequence", "lookback_days"), prev, who, sizeof who))
        rc = sp_err(SP_EEXTERNAL, "the run or job of %s (%s) is still in progress, and %s reads its outputs "
                    "(train's warm start, the users' histories, eval's comparison): run %s after it ends", prev, who,
                    a.date, a.date);
    rc = sp_dist_agree(rc);
    if (rc) {
        if (rank == 0) SP_ERROR("error", "exit_code=%d message=%s", sp_exit_code(rc), sp_log_q(sp_errmsg()));
        sp_run_unlock(&lock);
        sp_config_free(cfg);
        sp_dist_finalize();
        return sp_exit_code(rc);
    }
    if (rank == 0)
        SP_INFO("start", "command=%s date=%s ranks=%d config=%s input_dir=%s work=%s blas_core=%s blas=%s device=%s",
                is_job ? "job" : "run", a.date, ctx.size, sp_log_q(a.config), sp_log_q(ctx.input_dir),
                sp_log_q(ctx.date_dir), sp_blas_core(), sp_log_q(sp_blas_reason()), sp_log_q(ctx.be->device));

    sp_stage_status status[16];
    double secs[16];
    static sp_stage_result results[16];
    int ran_to = first - 1;
    for (int i = first; i <= last && !rc; i++) {
        ran_to = i;
        /* --full re-encodes every user: it reruns the users stage even when its marker matches */
        int force = a.force || (a.full && sp_stages[i].run == sp_users_run);
        rc = sp_stage_execute(&ctx, &sp_stages[i], force, &status[i], &secs[i], &results[i]);
    }
    sp_log_set_stage(NULL);
    if (rank == 0 && !is_job) {
        /* Summary table of stages, times and counts. */
        fprintf(stderr, "\n%-8s %-20s %9s  %s\n", "stage", "status", "seconds", "counts");
        for (int i = first; i <= last; i++) {
            if (i > ran_to) {
                fprintf(stderr, "%-8s %-20s %9s\n", sp_stages[i].name, "not run", "-");
                continue;
            }
            fprintf(stderr, "%-8s %-20s %9.3f  ", sp_stages[i].name, status_name(status[i]), secs[i]);
            int shown = 0;
            for (int c = 0; c < results[i].ncounts; c++) {
                if (!results[i].count[c] && strncmp(results[i].count_name[c], "reject_", 7)) continue;
                if (!results[i].count[c]) continue;
                fprintf(stderr, "%s%s=%" PRIu64, shown++ ? " " : "", results[i].count_name[c], results[i].count[c]);
            }
            fputc('\n', stderr);
        }
        fputc('\n', stderr);
    }
    if (rc) {
        if (rank == 0) {
            if (rc == SP_ENOTIMPL) {
                char built[256] = "";
                for (int i = 0; i < sp_nstages; i++)
                    if (sp_stages[i].run) {
                        strcat(built, " ");
                        strcat(built, sp_stages[i].name);
                    }
                SP_ERROR("not_implemented", "exit_code=2 message=%s built=%s", sp_log_q(sp_errmsg()), sp_log_q(built + 1));
            } else SP_ERROR("error", "exit_code=%d message=%s", sp_exit_code(rc), sp_log_q(sp_errmsg()));
        }
    } else if (rank == 0) {
        if (!is_job)
            sp_retention_apply(sp_config_str(cfg, "pipeline", "work_dir"), sp_config_str(cfg, "export", "dir"), a.date,
                               sp_config_int(cfg, "pipeline", "keep_days"));
        SP_INFO("finish", "status=ok");
    }
    sp_run_unlock(&lock);
    sp_config_free(cfg);
    sp_dist_finalize();
    return sp_exit_code(rc);
}

/* ---- import / gen / config / dump ---- */

static int report(int rc) {
    if (rc) fprintf(stderr, "sagepipe: %s: %s\n", sp_strerror(rc), sp_errmsg()[0] ? sp_errmsg() : sp_strerror(rc));
    return sp_exit_code(rc);
}

static int cmd_import(int argc, char **argv) {
    if (has_help(argc, argv) || argc < 1) {
        fputs(HELP_IMPORT, argc < 1 ? stderr : stdout);
        return argc < 1 ? SP_EXIT_USAGE : 0;
    }
    sp_import_stats st = {0};
    int rc;
    if (!strcmp(argv[0], "lightgcn")) {
        const char *pos[2] = {NULL, NULL};
        double val = 0;
        int np = 0, last = -1;
        for (int i = 1; i < argc; i++) {
            if (!strcmp(argv[i], "--validation") && i + 1 < argc) {
                char *end;
                val = strtod(argv[++i], &end);
                if (end == argv[i] || *end || !(val > 0 && val < 1))
                    return usage_error("--validation '%s': expected a fraction in (0, 1)", argv[i]);
            } else if (!strcmp(argv[i], "--validation-order") && i + 1 < argc) {
                last = !strcmp(argv[++i], "last") ? 1 : !strcmp(argv[i], "random") ? 0 : -2;
                if (last == -2) return usage_error("--validation-order '%s': expected random or last", argv[i]);
            } else if (argv[i][0] == '-' || np == 2) return usage_error("import lightgcn: unexpected '%s'", argv[i]);
            else pos[np++] = argv[i];
        }
        if (np != 2) return usage_error("import lightgcn: expected DATA_DIR OUT_DIR%s", "");
        if (last >= 0 && val == 0) return usage_error("import lightgcn: --validation-order needs --validation%s", "");
        rc = sp_import_lightgcn(pos[0], pos[1], val, last == 1, &st);
    } else if (!strcmp(argv[0], "s3rec")) {
        const char *attrs = NULL, *pos[2] = {NULL, NULL};
        int holdout = 0, np = 0;
        for (int i = 1; i < argc; i++) {
            if (!strcmp(argv[i], "--attributes") && i + 1 < argc) attrs = argv[++i];
            else if (!strcmp(argv[i], "--holdout") && i + 1 < argc) {
                int64_t h;
                if (sp_parse_i64(argv[++i], &h) || h < 0 || h > 1000000)
                    return usage_error("--holdout '%s': expected an integer >= 0", argv[i]);
                holdout = (int)h;
            } else if (argv[i][0] == '-' || np == 2) return usage_error("import s3rec: unexpected '%s'", argv[i]);
            else pos[np++] = argv[i];
        }
        if (np != 2) return usage_error("import s3rec: expected SEQ_FILE OUT_DIR%s", "");
        rc = sp_import_s3rec(pos[0], pos[1], attrs, holdout, &st);
    } else return usage_error("import: unknown format '%s' (lightgcn, s3rec)", argv[0]);
    if (!rc)
        fprintf(stderr, "imported users=%" PRIu64 " items=%" PRIu64 " edges=%" PRIu64 " events=%" PRIu64
                " duplicate_edges_merged=%" PRIu64 " token_rows=%" PRIu64 " users_all_held_out=%" PRIu64 "\n",
                st.users, st.items, st.edges, st.events, st.dup_edges, st.tokens_rows, st.users_held_out);
    return report(rc);
}

static void gen_progress(void *ctx, const char *what, uint64_t done, uint64_t total) {
    sp_progress *p = ctx;
    double now = sp_now();
    if (done < total && now - p->last < 2.0) return;
    p->last = now;
    double rate = now > p->t0 ? (double)done / (now - p->t0) : 0;
    SP_INFO("progress", "what=%s done=%" PRIu64 " total=%" PRIu64 " rate=%.0f/s eta_s=%.0f", what, done, total, rate,
            rate > 0 ? (double)(total - done) / rate : 0);
}

static int cmd_gen(int argc, char **argv) {
    if (has_help(argc, argv)) {
        fputs(HELP_GEN, stdout);
        return 0;
    }
    sp_gen_opts o;
    sp_gen_defaults(&o);
    const char *out = NULL, *date = NULL;
    int have[3] = {0, 0, 0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        uint64_t *dst = NULL;
        if (!strcmp(a, "--no-tokens")) {
            o.tokens = 0;
            continue;
        }
        if (!strcmp(a, "--date") && i + 1 < argc) {
            date = argv[++i];
            continue;
        }
        uint64_t v = 0;
        if (a[0] == '-' && i + 1 < argc) {
            if (sp_parse_u64(argv[i + 1], &v)) return usage_error("%s: expected a non-negative integer", a);
        }
        if (!strcmp(a, "--pins")) dst = &o.pins, have[0] = 1;
        else if (!strcmp(a, "--boards")) dst = &o.boards, have[1] = 1;
        else if (!strcmp(a, "--edges")) dst = &o.edges, have[2] = 1;
        else if (!strcmp(a, "--users")) dst = &o.users;
        else if (!strcmp(a, "--events")) dst = &o.events;
        else if (!strcmp(a, "--seed")) dst = &o.seed;
        else if (!strcmp(a, "--dim") || !strcmp(a, "--communities")) {
            if (i + 1 >= argc || v > 65536) return usage_error("%s: expected an integer <= 65536", a);
            *(!strcmp(a, "--dim") ? &o.dim : &o.communities) = (uint32_t)v;
            i++;
            continue;
        } else if (a[0] == '-') return usage_error("gen: unknown or incomplete option '%s'", a);
        else if (out) return usage_error("gen: more than one OUT_DIR ('%s')", a);
        else {
            out = a;
            continue;
        }
        if (i + 1 >= argc) return usage_error("%s: missing value", a);
        *dst = v;
        i++;
    }
    if (!have[0] || !have[1] || !have[2]) return usage_error("gen: --pins, --boards and --edges are required%s", "");
    if (!out) return usage_error("gen: missing OUT_DIR%s", "");
    if (date) {
        int rc = sp_date_parse(date, &o.day_ms);
        if (rc) return report(rc);
    }
    sp_progress p = {.t0 = sp_now()};
    p.last = p.t0;
    o.progress = gen_progress;
    o.progress_ctx = &p;
    int rc = sp_gen_run(&o, out);
    if (!rc)
        SP_INFO("gen_done", "dir=%s pins=%" PRIu64 " boards=%" PRIu64 " edges=%" PRIu64 " users=%" PRIu64
                " events=%" PRIu64 " seconds=%.2f", sp_log_q(out), o.pins, o.boards, o.edges, o.users, o.events,
                sp_now() - p.t0);
    return report(rc);
}

static int cmd_config(int argc, char **argv) {
    if (argc < 1 || has_help(argc, argv)) {
        fputs("usage: sagepipe config defaults        (configs/default.ini: every key, documented)\n"
              "       sagepipe config reference       (the README's Markdown table)\n"
              "       sagepipe config show --config FILE [--set section.key=value]...\n", argc < 1 ? stderr : stdout);
        return argc < 1 ? SP_EXIT_USAGE : 0;
    }
    if (!strcmp(argv[0], "defaults")) {
        sp_config_write_ini(NULL, stdout, 1);
        return 0;
    }
    if (!strcmp(argv[0], "reference")) {
        sp_config_write_reference(stdout);
        return 0;
    }
    if (strcmp(argv[0], "show")) return usage_error("config: unknown action '%s'", argv[0]);
    const char *path = NULL, *sets[256];
    int nsets = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && path) return usage_error("config show: %s given twice", argv[i]);
        if (!strcmp(argv[i], "--config") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--set") && i + 1 < argc && nsets < 256) sets[nsets++] = argv[++i];
        else if ((!strcmp(argv[i], "--config") || !strcmp(argv[i], "--set")) && i + 1 == argc)
            return usage_error("config show: a value is missing after '%s'", argv[i]);
        else return usage_error("config show: unexpected '%s'", argv[i]);
    }
    if (!path) return usage_error("config show: missing --config FILE%s", "");
    sp_config *c;
    int rc = load_config(path, sets, nsets, &c);
    if (rc) return report(rc);
    sp_config_write_ini(c, stdout, 0);
    sp_config_free(c);
    return 0;
}

static int cmd_dump(int argc, char **argv) {
    if (argc < 1 || has_help(argc, argv) ||
        (strcmp(argv[0], "graph") && strcmp(argv[0], "walks") && strcmp(argv[0], "emb") && strcmp(argv[0], "emb-ref") &&
         strcmp(argv[0], "users"))) {
        if (argc >= 1 && !has_help(argc, argv)) fprintf(stderr, "sagepipe dump: unknown kind '%s'\n", argv[0]);
        fputs("usage: sagepipe dump graph|walks|emb|emb-ref|users --config FILE --date YYYY-MM-DD [--set section.key=value]...\n"
              "graph: every kept edge of the date's graph partitions by external id, sorted (any rank count).\n"
              "walks: every neighbourhood entry, hard negative and training pair by external id, sorted.\n"
              "emb:   every pin and board embedding of the infer stage, sorted by id (p<id>/b<id> then values).\n"
              "emb-ref: the same computed in one process from the train checkpoint (the reference of infer).\n"
              "users: every user embedding of the users stage, sorted by id (u<id> then values).\n",
              stderr);
        return has_help(argc, argv) ? 0 : SP_EXIT_USAGE;
    }
    run_args a;
    int ex = parse_run_args(argc - 1, argv + 1, 0, &a);
    if (ex) return ex;
    if (a.from || a.to || a.force || a.full)
        return usage_error("dump: --from, --to, --force and --full are options of run and job, not of dump%s", "");
    sp_config *cfg;
    int rc = load_config(a.config, a.sets, a.nsets, &cfg);
    if (rc) return report(rc);
    sp_run_ctx ctx;
    rc = make_ctx(cfg, a.date, &ctx);
    if (!rc) {
        /* the stage's outputs are current: its marker, and every stage upstream of it (a failed forced rerun of
         * ingest removed ingest's marker, and the graph left from before would be printed as today's); the
         * config may differ from the run's (a dump need not repeat settings such as walks.threads) */
        static const char *const kind[][2] = {{"graph", "graph"}, {"walks", "walks"}, {"emb", "infer"},
                                               {"emb-ref", "train"}, {"users", "users"}};
        const sp_stage_def *st = NULL;
        for (size_t i = 0; i < sizeof kind / sizeof kind[0]; i++)
            if (!strcmp(argv[0], kind[i][0])) st = sp_stage_find(kind[i][1]);
        sp_run_ctx chk = ctx;
        rc = st ? sp_stage_ranks(&ctx, st->name, &chk.size) : sp_err(SP_EINTERNAL, "dump: no stage for %s", argv[0]);
        if (!rc) rc = sp_stage_check_chain(&chk, st);
        if (rc == SP_EUSAGE)
            rc = sp_err(SP_EUSAGE, "dump %s: %s", argv[0], sp_errmsg());
    }
    if (!rc) {
        ctx.size = 1;
        rc = !strcmp(argv[0], "walks") ? sp_walks_dump(&ctx, stdout)
             : !strcmp(argv[0], "emb") ? sp_infer_dump(&ctx, stdout)
             : !strcmp(argv[0], "emb-ref") ? sp_infer_dump_reference(&ctx, stdout)
             : !strcmp(argv[0], "users") ? sp_users_dump(&ctx, stdout)
                                       : sp_graph_dump(&ctx, stdout);
    }
    sp_config_free(cfg);
    return report(rc);
}

int main(int argc, char **argv) {
    /* Past RLIMIT_FSIZE a write then fails with EFBIG (exit 4 naming the file)
     * instead of the kernel killing the process with SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    /* A reader of the log that goes away (`sagepipe run ... 2>&1 | head`) killed the run with SIGPIPE
     * (exit 141) mid-stage; the log's writes now fail quietly, as they do on a full disk, and a command's
     * results on a closed stdout are exit 4 (its fflush fails). */
    signal(SIGPIPE, SIG_IGN);
    sp_blas_setup(argv);
    sp_log_init(0, SP_LOG_INFO);
    if (argc < 2) {
        fputs(USAGE, stderr);
        return SP_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("sagepipe %s (CPU path; CUDA toolkit %s at build time, no CUDA ops built yet)\n", SAGEPIPE_VERSION,
               SAGEPIPE_HAVE_CUDA ? "found" : "not found");
        return 0;
    }
    if (!strcmp(cmd, "run")) return cmd_run(argc - 2, argv + 2, 0);
    if (!strcmp(cmd, "job")) return cmd_run(argc - 2, argv + 2, 1);
    if (!strcmp(cmd, "import")) return cmd_import(argc - 2, argv + 2);
    if (!strcmp(cmd, "gen")) return cmd_gen(argc - 2, argv + 2);
    if (!strcmp(cmd, "config")) return cmd_config(argc - 2, argv + 2);
    if (!strcmp(cmd, "dump")) return cmd_dump(argc - 2, argv + 2);
    if (!strcmp(cmd, "get")) return sp_cmd_get(argc - 2, argv + 2);
    if (!strcmp(cmd, "verify")) return sp_cmd_verify(argc - 2, argv + 2);
    if (!strcmp(cmd, "nn")) return sp_cmd_nn(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval")) return sp_cmd_eval(argc - 2, argv + 2);
    return usage_error("unknown command '%s'", cmd);
}
