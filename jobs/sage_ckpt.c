/* sage_ckpt: checkpoint write/read on top of io/sfile (sage_ckpt.h). */
#include "sage_ckpt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sfile.h"

int sp_ckpt_write(const char *path, const sp_ckpt *c, uint64_t *xxh) {
    const sp_sage_cfg *k = &c->P.c;
    uint64_t meta[10] = {SP_CKPT_VERSION, (uint64_t)k->d, (uint64_t)k->layers, c->P.n, c->npins,
                         (uint64_t)k->tok_rows, (uint64_t)k->dense_dim, (uint64_t)k->id_emb, (uint64_t)c->step,
                         (uint64_t)c->epoch};
    float tau[3] = {c->tau, c->tau_m, c->tau_v};
    size_t d = (size_t)k->d;
    sp_sfile_w *w;
    int rc = sp_sfile_create(&w, path, "ckpt");
    if (rc) return rc;
    rc = sp_sfile_put(w, "meta", 8, meta, 10);
    if (!rc) rc = sp_sfile_put(w, "ids", 8, c->ids, c->P.n);
    if (!rc) rc = sp_sfile_put(w, "tau", 4, tau, 3);
    const sp_sage_params *ps[3] = {&c->P, &c->M, &c->V};
    static const char *const pre[3] = {"p", "m", "v"};
    for (int i = 0; i < 3 && !rc; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "%s_dense", pre[i]);
        rc = sp_sfile_put(w, tag, 4, ps[i]->dense, ps[i]->ndense);
        snprintf(tag, sizeof tag, "%s_emb", pre[i]);
        if (!rc) rc = sp_sfile_put(w, tag, 4, ps[i]->emb, ps[i]->emb ? ps[i]->n * d : 0);
        snprintf(tag, sizeof tag, "%s_tok", pre[i]);
        if (!rc) rc = sp_sfile_put(w, tag, 4, ps[i]->tok, ps[i]->tok ? (size_t)k->tok_rows * d : 0);
    }
    if (rc) {
        sp_sfile_discard(w);
        return rc;
    }
    return sp_sfile_commit(w, xxh);
}

void sp_ckpt_free(sp_ckpt *c) {
    sp_sage_params_free(&c->P);
    sp_sage_params_free(&c->M);
    sp_sage_params_free(&c->V);
    free(c->ids);
    memset(c, 0, sizeof *c);
}

static int get_exact(const sp_sfile_r *r, const char *path, const char *tag, uint32_t es, const void **p, uint64_t want) {
    uint64_t n;
    int rc = sp_sfile_get(r, tag, es, p, &n);
    if (!rc && n != want)
        rc = sp_err(SP_EFORMAT, "%s: section %s has %" PRIu64 " elements, the header implies %" PRIu64, path, tag, n,
                    want);
    return rc;
}

int sp_ckpt_read(const char *path, sp_ckpt *c) {
    memset(c, 0, sizeof *c);
    if (access(path, F_OK)) return errno; /* absent: the caller decides (ENOENT) */
    sp_sfile_r *r;
    int rc = sp_sfile_open(&r, path, "ckpt");
    if (rc) return rc;
    const uint64_t *meta;
    const float *tau;
    rc = get_exact(r, path, "meta", 8, (const void **)&meta, 10);
    if (!rc && meta[0] != SP_CKPT_VERSION)
        rc = sp_err(SP_EFORMAT, "%s: checkpoint version %" PRIu64 ", this build reads %d", path, meta[0], SP_CKPT_VERSION);
    if (!rc && (meta[1] < 1 || meta[1] > 4096 || meta[2] > SP_SAGE_MAXK || meta[4] > meta[3] || meta[5] > (1u << 30) ||
                meta[6] > (1u << 20) || meta[7] > 1))
        rc = sp_err(SP_EFORMAT, "%s: implausible model dimensions in the checkpoint header", path);
    sp_sage_cfg k = {0};
    if (!rc) {
        k = (sp_sage_cfg){(int)meta[1], (int)meta[2], (int)meta[7], (int)meta[5], (int)meta[6]};
        c->npins = meta[4];
        c->step = (int64_t)meta[8];
        c->epoch = (int64_t)meta[9];
        rc = sp_sage_params_zeros(&c->P, &k, meta[3]);
        if (!rc) rc = sp_sage_params_zeros(&c->M, &k, meta[3]);
        if (!rc) rc = sp_sage_params_zeros(&c->V, &k, meta[3]);
    }
    const void *p;
    if (!rc) rc = get_exact(r, path, "ids", 8, &p, meta[3]);
    if (!rc) {
        c->ids = malloc(8 * (meta[3] + 1));
        if (!c->ids) rc = SP_ENOMEM;
        else memcpy(c->ids, p, 8 * meta[3]);
    }
    if (!rc) rc = get_exact(r, path, "tau", 4, (const void **)&tau, 3);
    if (!rc) c->tau = tau[0], c->tau_m = tau[1], c->tau_v = tau[2];
    sp_sage_params *ps[3] = {&c->P, &c->M, &c->V};
    static const char *const pre[3] = {"p", "m", "v"};
    size_t d = (size_t)k.d;
    for (int i = 0; i < 3 && !rc; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "%s_dense", pre[i]);
        rc = get_exact(r, path, tag, 4, &p, ps[i]->ndense);
        if (!rc) memcpy(ps[i]->dense, p, 4 * ps[i]->ndense);
        snprintf(tag, sizeof tag, "%s_emb", pre[i]);
        if (!rc) rc = get_exact(r, path, tag, 4, &p, k.id_emb ? meta[3] * d : 0);
        if (!rc && k.id_emb) memcpy(ps[i]->emb, p, 4 * meta[3] * d);
        snprintf(tag, sizeof tag, "%s_tok", pre[i]);
        if (!rc) rc = get_exact(r, path, tag, 4, &p, (uint64_t)k.tok_rows * d);
        if (!rc && k.tok_rows) memcpy(ps[i]->tok, p, 4 * (size_t)k.tok_rows * d);
    }
    sp_sfile_close(r);
    if (rc) sp_ckpt_free(c);
    return rc;
}
