/* publish: one Kafka message per date announcing the manifest (publish.h).
 * The manifest is parsed to check it is the date's and to copy its counts;
 * the message carries its absolute path and checksum, not its content. */
#include "publish.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fsutil.h"
#include "json.h"
#include "kafka.h"
#include "log.h"
#include "sp_base.h"

/* The message value for the manifest text at path (caller frees *out). */
static int message_of(const sp_run_ctx *ctx, const char *path, const char *text, size_t len, char **out) {
    sp_json *m = NULL;
    int rc = sp_json_parse(&m, text, len);
    if (rc) return rc == SP_ENOMEM ? rc : sp_err(SP_EFORMAT, "%s: %s", path, sp_errmsg());
    const char *fmt = sp_json_str(sp_json_get(m, "format")), *date = sp_json_str(sp_json_get(m, "date"));
    const sp_json *ents = sp_json_get(m, "entities");
    if (!fmt || strcmp(fmt, "sagepipe-shards") || sp_json_type(ents) != SP_JSON_OBJ)
        rc = sp_err(SP_EFORMAT, "%s is not a sagepipe-shards manifest (no \"format\" or \"entities\")", path);
    else if (!date || strcmp(date, ctx->date))
        rc = sp_err(SP_EFORMAT, "%s is the manifest of date %s, not %s", path, date ? date : "(none)", ctx->date);
    char abs[PATH_MAX] = "", h[17];
    if (!rc && !realpath(path, abs)) snprintf(abs, sizeof abs, "%s", path);
    snprintf(h, sizeof h, "%016" PRIx64, (uint64_t)XXH64(text, len, 0));
    sp_jw w;
    sp_jw_init(&w);
    sp_jw_obj_begin(&w, NULL);
    sp_jw_str(&w, "date", ctx->date);
    sp_jw_str(&w, "manifest", abs);
    sp_jw_str(&w, "manifest_xxh64", h);
    sp_jw_obj_begin(&w, "counts");
    for (size_t i = 0; !rc && i < sp_json_len(ents); i++) {
        uint64_t n;
        if (sp_json_u64(sp_json_get(sp_json_at(ents, i), "count"), &n))
            rc = sp_err(SP_EFORMAT, "%s: entities.%s has no integer \"count\"", path, sp_json_key_at(ents, i));
        else sp_jw_u64(&w, sp_json_key_at(ents, i), n);
    }
    sp_jw_obj_end(&w);
    sp_jw_str(&w, "sagepipe_version", SAGEPIPE_VERSION);
    sp_jw_obj_end(&w);
    const char *v;
    size_t vlen;
    if (!rc) rc = sp_jw_finish(&w, &v, &vlen);
    if (!rc && !(*out = strndup(v, vlen - 1))) rc = SP_ENOMEM; /* without the writer's '\n' */
    sp_jw_free(&w);
    sp_json_free(m);
    return rc;
}

static int announce(const sp_run_ctx *ctx) {
    const sp_config *cfg = ctx->cfg;
    char path[PATH_MAX], *text = NULL, *msg = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/%s/MANIFEST.json", sp_config_str(cfg, "export", "dir"), ctx->date);
    int rc = sp_read_file(path, &text, &len);
    if (rc == ENOENT)
        return sp_err(SP_EUSAGE, "publish: no manifest %s; run `sagepipe job export --date %s` first", path, ctx->date);
    if (rc) return rc;
    rc = message_of(ctx, path, text, len, &msg);
    free(text);
    const char *brokers = sp_config_str(cfg, "kafka", "brokers"), *topic = sp_config_str(cfg, "kafka", "publish_topic");
    int64_t timeout = sp_config_int(cfg, "kafka", "timeout_ms") * (sp_config_int(cfg, "kafka", "retries") + 1);
    if (!rc) rc = sp_kafka_announce(brokers, topic, ctx->date, msg, strlen(msg), timeout > INT_MAX ? INT_MAX : (int)timeout);
    if (!rc) SP_INFO("published", "topic=%s key=%s brokers=%s value=%s", sp_log_q(topic), ctx->date, sp_log_q(brokers),
                     sp_log_q(msg));
    free(msg);
    return rc;
}

int sp_publish_run(const sp_run_ctx *ctx, sp_stage_result *res) {
    if (!sp_config_bool(ctx->cfg, "kafka", "publish")) {
        if (ctx->rank == 0) SP_INFO("publish_off", "reason=\"kafka.publish = false: no message\"");
        sp_stage_count(res, "messages", 0);
        return SP_OK;
    }
    int rc = ctx->rank == 0 ? announce(ctx) : SP_OK;
    sp_stage_count(res, "messages", ctx->rank == 0 && !rc ? 1 : 0);
    return rc;
}
