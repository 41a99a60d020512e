/* sage: the PinSage / OmniSage item encoder (DESIGN §4.1). Layer-0 inputs
 * from learned id embeddings, hashed content tokens, dense features and the
 * log degree; K CONVOLVE layers with importance pooling over a node's top
 * pins and top boards (separately, then concatenated with the node's own
 * vector); an output head G2·ReLU(G1 z + g1), L2-normalised.
 * The same code serves training (a minibatch "plan": the targets and, level
 * by level, the nodes their layers need) and inference (every node, level by
 * level). No I/O; errors are returned. */
#ifndef SP_SAGE_H
#define SP_SAGE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "nn.h"

#define SP_SAGE_MAXK 3

/* The graph as the encoder sees it: nodes [0, npins) are pins, [npins, n)
 * boards, each with up to tp top pins and tb top boards from the walks stage
 * (global node indices, weights L1-normalised per list). Owned by the caller. */
typedef struct {
    uint64_t n, npins;
    const float *logdeg;                                        /* (n) log(1 + degree) */
    const uint64_t *pn_off; const uint32_t *pn_idx; const float *pn_w; /* (n+1), pin neighbours */
    const uint64_t *bn_off; const uint32_t *bn_idx; const float *bn_w; /* (n+1), board neighbours */
    /* content (pins only; may be absent) */
    int dense_dim; const float *dense;          /* (npins, dense_dim) or NULL; rows of pins without features are 0 */
    const uint64_t *tok_off; const uint32_t *tok_row; /* (npins+1) rows of the token table per pin, or NULL */
    /* the id-table row of node u: row[u], or u when NULL (a minibatch's own subgraph of a partitioned
     * training view numbers its nodes locally; the id table and touched flags stay global) */
    const uint32_t *row;
} sp_sage_graph;

typedef struct {
    int d;         /* width of every layer and of the output (64) */
    int layers;    /* K, 0..SP_SAGE_MAXK */
    int id_emb;    /* learned per-node id embeddings (needed without content features) */
    int tok_rows;  /* rows of the hashed-token table (0: no tokens) */
    int dense_dim; /* dense feature width (0: none) */
} sp_sage_cfg;

/* Parameters. Dense parameters live in one allocation split by a size table;
 * the id and token tables are separate (sparse row updates). */
enum { SP_P_TYPEB, SP_P_WDEG, SP_P_DENSE, SP_P_Q, SP_P_QB, SP_P_W, SP_P_WB, SP_P_G1, SP_P_G1B, SP_P_G2, SP_P_COUNT };
typedef struct {
    sp_sage_cfg c;
    uint64_t n;     /* rows of the id table */
    size_t ndense;  /* floats in dense */
    float *dense;   /* all dense parameters */
    float *p[SP_P_COUNT][SP_SAGE_MAXK]; /* views into dense (only [0] for non-layer params) */
    float *emb;     /* (n, d) id embeddings, or NULL */
    float *tok;     /* (tok_rows, d) token embeddings, or NULL */
} sp_sage_params;
/* Shapes: TYPEB (2, d) type bias; WDEG (2, d) log-degree weight per type;
 * DENSE (dense_dim, d); per layer k: Q (d, d), QB (d), W (3d, d), WB (d);
 * G1 (d, d), G1B (d), G2 (d, d). */

/* Allocates and initialises (Xavier for matrices, N(0, 0.1²)·… for tables)
 * from rng. n = nodes (rows of the id table). SP_ENOMEM or SP_ECONFIG. */
int sp_sage_params_init(sp_sage_params *P, const sp_sage_cfg *c, uint64_t n, sp_rng *rng);
/* Same layout, all zero (gradients, Adam moments). */
int sp_sage_params_zeros(sp_sage_params *P, const sp_sage_cfg *c, uint64_t n);
void sp_sage_params_free(sp_sage_params *P);
/* Running mean: A += (P - A) / k over the dense parameters and the id and
 * token tables (same layout), so after calls with k = 1..m A is the mean of
 * the m parameter sets (train.average_epochs). */
void sp_sage_params_average(sp_sage_params *A, const sp_sage_params *P, int k);
/* Copies every table of src into dst (same configuration and rows). */
void sp_sage_params_copy(sp_sage_params *dst, const sp_sage_params *src);

/* A minibatch plan: level K holds the targets; level k-1 the nodes that level
 * k needs (its nodes themselves and their neighbours), re-indexed. */
typedef struct {
    int K;
    uint32_t n[SP_SAGE_MAXK + 1];
    uint32_t *node[SP_SAGE_MAXK + 1];   /* global node index per level */
    /* for level k >= 1, indices into level k-1: */
    uint32_t *self[SP_SAGE_MAXK + 1];   /* (n[k]) */
    uint64_t *poff[SP_SAGE_MAXK + 1];   /* (n[k]+1) */
    uint32_t *pidx[SP_SAGE_MAXK + 1];
    float *pw[SP_SAGE_MAXK + 1];
    uint64_t *boff[SP_SAGE_MAXK + 1];
    uint32_t *bidx[SP_SAGE_MAXK + 1];
    float *bw[SP_SAGE_MAXK + 1];
    size_t cap[SP_SAGE_MAXK + 1][8]; /* element capacities of node, self, poff, boff, pidx, pw, bidx, bw */
    uint32_t *pos;  /* (graph n) scratch: position of a node in the level being built */
    uint32_t *stamp;/* (graph n) scratch */
    uint64_t posn;  /* entries of pos and stamp (grown with the graph: a step's subgraph changes size) */
    uint32_t epoch;
} sp_sage_plan;

/* Builds the plan for ntargets targets (global node indices, duplicates
 * allowed: level K keeps them in order, so row i of the output is target i).
 * The plan's memory grows as needed and is reused; free with sp_sage_plan_free. */
int sp_sage_plan_build(sp_sage_plan *pl, const sp_sage_graph *g, int K, const uint32_t *targets, uint32_t ntargets);
void sp_sage_plan_free(sp_sage_plan *pl);

/* Activations of one forward pass (grown as needed, reused). */
typedef struct {
    float *H[SP_SAGE_MAXK + 1];  /* (n[k], d): level k's vectors (k >= 1: L2-normalised) */
    float *Z[SP_SAGE_MAXK + 1];  /* (n[k], d): pre-normalisation, post-ReLU (k >= 1) */
    float *nrm[SP_SAGE_MAXK + 1];/* (n[k]) */
    float *M[SP_SAGE_MAXK + 1];  /* (n[k-1], d): ReLU(Q_k h + q_k) */
    float *X[SP_SAGE_MAXK + 1];  /* 3 x (n[k], d) blocks: h_self, pooled pins, pooled boards */
    float *A, *Y, *out, *ynrm;   /* head: (n[K], d) ×3, (n[K]) */
    float *tmp, *tmp2;           /* scratch */
    size_t cap[SP_SAGE_MAXK + 1], capK, captmp;
    /* on a device backend (sp_sage_forward_on): the arrays above are device memory; the plan's
     * lists are mirrored there with their transposes (the backward gathers instead of scattering,
     * so a rerun gives the same bits), with identity offsets for the self gather; h0 and dh0 are
     * host buffers of level 0 */
    const nn_backend *be;        /* the backend the arrays belong to (NULL: host) */
    void *pl[SP_SAGE_MAXK + 1][12]; /* self, poff, pidx, pw, boff, bidx, bw; transposes: toff, tsrc, tw, soff, ssrc */
    size_t plcap[SP_SAGE_MAXK + 1][12];
    uint64_t *ident; size_t capident;
    float *h0, *dh0; size_t caph0;
} sp_sage_acts;
void sp_sage_acts_free(sp_sage_acts *a);

/* Forward over a plan: a->out (n[K], d) = L2-normalised embeddings of the targets. */
int sp_sage_forward(const sp_sage_params *P, const sp_sage_graph *g, const sp_sage_plan *pl, sp_sage_acts *a);
/* Backward from dout (n[K], d). Gradients are accumulated into G (same layout
 * as P; G->emb / G->tok rows of the level-0 nodes / their tokens). touched
 * (graph n, may be NULL) gets 1 for every id row written, tok_touched
 * (tok_rows, may be NULL) likewise. dout is clobbered. */
int sp_sage_backward(const sp_sage_params *P, const sp_sage_graph *g, const sp_sage_plan *pl, sp_sage_acts *a,
                     float *dout, sp_sage_params *G, uint8_t *touched, uint8_t *tok_touched);
struct sp_sage_dev;
/* The same on D's backend (the two above are these on the CPU): D holds P's dense parameters
 * there, a's arrays and a->out are backend memory, layer-0 inputs are built on the host (P's id
 * and token tables) and sent. The backward takes dout in backend memory (clobbered), accumulates
 * the dense gradients into gdense (backend memory, the layout of P->dense) and the level-0 ones
 * (type/degree rows of gdense_host, id and token rows of G) on the host. An acts struct serves
 * one backend. SP_ENOMEM, or the backend's error. */
int sp_sage_forward_on(const struct sp_sage_dev *D, const sp_sage_params *P, const sp_sage_graph *g,
                       const sp_sage_plan *pl, sp_sage_acts *a);
int sp_sage_backward_on(const struct sp_sage_dev *D, const sp_sage_params *P, const sp_sage_graph *g,
                        const sp_sage_plan *pl, sp_sage_acts *a, float *dout, float *gdense, sp_sage_params *G,
                        uint8_t *touched, uint8_t *tok_touched);

/* Layer-0 input of nodes[0..n) into h (n, d) (used by forward and by the
 * layer-wise inference). Host memory, host parameters. */
void sp_sage_input(const sp_sage_params *P, const sp_sage_graph *g, const uint32_t *nodes, uint32_t n, float *h);

/* ---- the layers on a backend (nn/backend.h) ----
 * The dense parameters where the backend computes: on the CPU a view of the host
 * parameters (no copy), on a device a copy (sp_sage_dev_put refreshes it). The
 * id and token tables stay on the host (layer-0 inputs are built there). */
typedef struct sp_sage_dev {
    const nn_backend *be;
    sp_sage_params P; /* dense views in backend memory; emb, tok NULL */
    float *owned;     /* the device copy, or NULL */
} sp_sage_dev;
int sp_sage_dev_init(sp_sage_dev *D, const nn_backend *be, const sp_sage_params *P); /* SP_ENOMEM */
void sp_sage_dev_put(sp_sage_dev *D, const sp_sage_params *P);                      /* host -> backend */
void sp_sage_dev_free(sp_sage_dev *D);

/* Every pointer below is memory of D->be. */
/* One CONVOLVE layer k (1-based) given m = ReLU(Q_k h + q_k) rows of the
 * previous level and this level's self vectors and neighbour lists (indices
 * into m): writes x (three (n, d) blocks: self, pooled pins, pooled boards),
 * z (n, d), nrm (n) and h (n, d). hself may alias x. */
void sp_sage_convolve(const sp_sage_dev *D, int k, uint32_t n, const float *hself, const float *m,
                      const uint64_t *poff, const uint32_t *pidx, const float *pw, const uint64_t *boff,
                      const uint32_t *bidx, const float *bw, float *x, float *z, float *nrm, float *h);
/* m (n, d) = ReLU(h Q_k + q_k). */
void sp_sage_message(const sp_sage_dev *D, int k, uint32_t n, const float *h, float *m);
/* Output head: out (n, d) = l2norm(ReLU(h G1 + g1) G2); a, y, ynrm scratch/saved. */
void sp_sage_head(const sp_sage_dev *D, uint32_t n, const float *h, float *a, float *y, float *ynrm, float *out);
/* A graph's neighbour lists of n rows (the layout of sp_sage_graph) where a backend reads them:
 * the host arrays themselves on the CPU, device copies elsewhere. */
typedef struct {
    const uint64_t *poff, *boff;
    const uint32_t *pidx, *bidx;
    const float *pw, *bw;
} sp_sage_lists;
/* dev = host's lists on be. SP_ENOMEM (then dev holds nothing to free). */
int sp_sage_lists_put(const nn_backend *be, const sp_sage_lists *host, uint64_t n, sp_sage_lists *dev);
void sp_sage_lists_free(const nn_backend *be, const sp_sage_lists *host, sp_sage_lists *dev);
/* Layers 1..K and the head over all n rows, every buffer resident on D's backend: H (n, d) the
 * level-0 inputs; Hn, M, Z (n, d), X (3n, d), nrm (n) scratch (H and Hn clobbered); L the lists
 * on the backend. Returns where the embeddings are (X's first block). */
float *sp_sage_layers_all(const sp_sage_dev *D, uint32_t n, float *H, float *Hn, float *M, float *X, float *Z,
                          float *nrm, const sp_sage_lists *L);
/* Every node of g, layer by layer on backend be (each message computed once per layer):
 * out (g->n, d, host memory) = the embeddings, the same as a plan's forward for any
 * target (within float rounding on a device). One process; the distributed version is
 * the infer stage. SP_ENOMEM, or the backend's error. */
int sp_sage_embed_all(const nn_backend *be, const sp_sage_params *P, const sp_sage_graph *g, float *out);

#endif
