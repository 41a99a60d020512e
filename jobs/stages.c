/* stages: the DAG (DESIGN §4) in order, with what each stage's output
 * depends on. Stages with run == NULL are not built yet and say so. */
#include "export.h"
#include "eval_stage.h"
#include "graph_stage.h"
#include "publish.h"
#include "infer_stage.h"
#include "ingest.h"
#include "stage.h"
#include "train_stage.h"
#include "users_stage.h"
#include "walks_stage.h"

static const char *const S_INPUT[] = {"input", NULL};
static const char *const S_GRAPH[] = {"graph", "pipeline", NULL};
static const char *const S_WALKS[] = {"walks", "pipeline", NULL};
static const char *const U_WALKS_IN[] = {"graph", "ingest", NULL};
static const char *const S_TRAIN[] = {"train", "sage", NULL};
static const char *const S_INFER[] = {"sage", NULL};
static const char *const S_USERS[] = {"sequence", NULL};
static const char *const S_EXPORT[] = {"export", NULL};
static const char *const S_EVAL[] = {"eval", NULL};
static const char *const S_KAFKA[] = {"kafka", NULL};

static const char *const U_NONE[] = {NULL};
static const char *const U_INGEST[] = {"ingest", NULL};
static const char *const U_TRAIN_IN[] = {"walks", "graph", "ingest", NULL};
static const char *const U_INFER_IN[] = {"train", "walks", "graph", "ingest", NULL};
static const char *const U_USERS_IN[] = {"infer", "ingest", NULL};
static const char *const U_EXPORT_IN[] = {"infer", "users", NULL};
static const char *const U_EVAL[] = {"export", "infer", "users", "train", "ingest", NULL};
static const char *const U_PUBLISH[] = {"export", "eval", NULL};

/* Upstream lists of not-yet-built stages are their intended inputs. */
const sp_stage_def sp_stages[] = {
    {"ingest", S_INPUT, U_NONE, sp_ingest_run, sp_ingest_digest, "parse + validate inputs, shuffle rows to owner ranks"},
    {"graph", S_GRAPH, U_INGEST, sp_graph_run, NULL, "CSR both ways, id maps, degree pruning"},
    {"walks", S_WALKS, U_WALKS_IN, sp_walks_run, NULL, "random walks with restart, importance neighbourhoods, training pairs"},
    {"train", S_TRAIN, U_TRAIN_IN, sp_train_run, sp_train_digest, "multi-task training of the item and user encoders"},
    {"infer", S_INFER, U_INFER_IN, sp_infer_run, NULL, "layer-wise inference of every pin and board"},
    {"users", S_USERS, U_USERS_IN, sp_users_run, sp_users_digest, "user histories, user encoder, user embeddings"},
    {"export", S_EXPORT, U_EXPORT_IN, sp_export_run, NULL, "LMDB shards + manifest, verified, published"},
    {"eval", S_EVAL, U_EVAL, sp_eval_run, NULL, "held-out quality, drift, quality gate"},
    {"publish", S_KAFKA, U_PUBLISH, sp_publish_run, NULL, "announce the manifest on Kafka"},
};
const int sp_nstages = (int)(sizeof sp_stages / sizeof sp_stages[0]);
