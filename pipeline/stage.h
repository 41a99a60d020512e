/* stage: the DAG of stages and their _SUCCESS.json markers (DESIGN §4).
 * A stage writes into <work_dir>/<date>/<stage>/ and its marker last; a
 * stage whose marker matches (version, config digest, input digest, rank
 * count) is skipped like make; a failed stage leaves no marker, and readers
 * refuse a stage directory without a matching marker.
 * work_dir must be the same path on every rank (a shared file system, or one
 * machine); rank 0 writes markers, every rank its own part files. */
#ifndef SP_STAGE_H
#define SP_STAGE_H

#include <limits.h>
#include <stdint.h>

#include "config.h"

#define SP_MAX_COUNTS 48
#define SP_MAX_OUTPUTS 32

struct nn_backend;
/* Everything a stage needs to run for one date. */
typedef struct {
    sp_config *cfg;
    const char *date;        /* YYYY-MM-DD */
    int64_t day_ms;          /* 00:00 UTC of date */
    int rank, size;
    int full;                /* --full: the users stage re-encodes every user */
    const struct nn_backend *be; /* --device: where the encoders compute (NULL: the CPU) */
    const char *device;      /* what --device asked for: "cpu", "cuda" or "auto" */
    char date_dir[PATH_MAX]; /* <work_dir>/<date> */
    char input_dir[PATH_MAX];/* input.dir with {date} replaced */
} sp_run_ctx;

/* What one rank's run of a stage produced. */
typedef struct {
    int ncounts;
    char count_name[SP_MAX_COUNTS][40];
    uint64_t count[SP_MAX_COUNTS]; /* summed over ranks into the marker */
    int noutputs;
    char out_file[SP_MAX_OUTPUTS][96]; /* relative to the stage directory */
    uint64_t out_bytes[SP_MAX_OUTPUTS], out_xxh[SP_MAX_OUTPUTS];
    char *extra_json; /* rank 0 only: a JSON object for the marker's "stats" (malloc'd) */
    /* Optional, set by run: called once on this rank after the marker is
     * written (written = 1), e.g. to commit Kafka offsets only then; or after
     * the stage failed (written = 0) only to release after_arg. A failure
     * with written = 1 is logged as a warning: the stage's outputs stand. */
    int (*after_marker)(const sp_run_ctx *ctx, void *arg, int written);
    void *after_arg;
} sp_stage_result;

typedef struct sp_stage_def {
    const char *name;
    const char *const *sections; /* config sections its output depends on (NULL-terminated) */
    const char *const *upstream; /* stages whose outputs it reads (NULL-terminated) */
    int (*run)(const sp_run_ctx *ctx, sp_stage_result *res); /* NULL: not implemented yet */
    /* Digest of inputs outside the work dir (e.g. input files); NULL if none. */
    int (*external_digest)(const sp_run_ctx *ctx, uint64_t *digest);
    const char *doc;
} sp_stage_def;

/* The stages in DAG order (jobs/stages.c). */
extern const sp_stage_def sp_stages[];
extern const int sp_nstages;
const sp_stage_def *sp_stage_find(const char *name);

/* Adds a named count (every rank must add the same names in the same order). */
void sp_stage_count(sp_stage_result *r, const char *name, uint64_t v);
/* Records an output file of this rank with its size and checksum. */
void sp_stage_output(sp_stage_result *r, const char *file, uint64_t bytes, uint64_t xxh);
/* Records the finished file <date_dir>/<stage>/<file> as an output: its size and whole-file xxh64
 * (what a skip verifies). SP_EIO naming the file when it cannot be read. */
int sp_stage_output_file(sp_stage_result *r, const sp_run_ctx *ctx, const char *stage, const char *file);

/* The context of the date before ctx's: date (into date_buf, 16 bytes),
 * day_ms and date_dir; everything else, input_dir included, stays ctx's. For
 * reading the previous date's stage outputs (warm start, drift). */
void sp_stage_prev_ctx(const sp_run_ctx *ctx, sp_run_ctx *prev, char *date_buf);
/* Paths: <date_dir>/<stage>[/<file>]. */
void sp_stage_path(const sp_run_ctx *ctx, const char *stage, const char *file, char *out, size_t cap);
/* "<prefix>-RRRRR-of-NNNNN.bin" for this rank. */
void sp_part_name(const char *prefix, int rank, int size, char *out, size_t cap);
/* A rank's part file of a stage: name "part-RRRRR-of-NNNNN.bin" (may be
 * NULL) and path <date_dir>/<stage>/<name>. */
void sp_stage_part(const sp_run_ctx *ctx, const char *stage, int rank, int size, char *name, size_t ncap, char *path,
                   size_t pcap);

struct sp_sfile_w;
/* Finishes a part file: when rc != 0 discards w and returns rc; else commits
 * it (temp file, fsync, rename) and records it as an output of this rank
 * with its size and digest. */
int sp_stage_commit_part(sp_stage_result *res, struct sp_sfile_w *w, int rc, const char *name, const char *path);
/* The rank count a completed stage was written with (its marker's "ranks");
 * SP_EUSAGE naming the marker when the stage has not completed. */
int sp_stage_ranks(const sp_run_ctx *ctx, const char *stage, int *nranks);

typedef enum { SP_STAGE_RAN, SP_STAGE_SKIPPED, SP_STAGE_FAILED, SP_STAGE_NOTIMPL } sp_stage_status;

/* Collective: runs (or skips) one stage. Checks that every upstream stage
 * has a marker matching the current config first (else SP_EUSAGE naming the
 * stage to run). On success the marker is written; *status and *seconds say
 * what happened. */
int sp_stage_execute(const sp_run_ctx *ctx, const sp_stage_def *st, int force, sp_stage_status *status,
                     double *seconds, sp_stage_result *res);

/* Test hook (docs/OPERATIONS.md): sleeps when SAGEPIPE_TEST_STALL names this
 * rank and STAGE (point NULL, before the stage) or STAGE@POINT. */
void sp_test_stall_at(const sp_run_ctx *ctx, const char *stage, const char *point);

/* Checks that `stage` has a complete, current marker (for readers and for
 * upstream checks); on success *output_digest is its outputs' digest. */
int sp_stage_check_done(const sp_run_ctx *ctx, const sp_stage_def *st, uint64_t *output_digest);

/* The same without the config digests (for `dump`, which may be given other --set than the run): the stage
 * and every stage upstream of it have complete markers whose inputs are still the outputs of the stages
 * before them, the external inputs (input files, warm-start checkpoints) unchanged. */
int sp_stage_check_chain(const sp_run_ctx *ctx, const sp_stage_def *st);

#endif
