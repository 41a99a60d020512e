/* test_config: the schema rejects unknown sections and keys, bad values and
 * missing required keys with messages naming them; --set overrides; digests
 * follow output-relevant keys only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "sp_base.h"

static char dir[] = "/tmp/sp_test_cfgXXXXXX";

static int load_text(const char *text, sp_config **out) {
    char path[256];
    snprintf(path, sizeof path, "%s/c.ini", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    sp_config *c;
    sp_config_new(&c);
    int rc = sp_config_load(c, path);
    if (!rc) rc = sp_config_check(c);
    if (rc || !out) sp_config_free(c);
    else *out = c;
    return rc;
}

int main(void) {
    CHECK(mkdtemp(dir));
    sp_config *c = NULL;
    CHECK_RC(load_text("[input]\ndir = /in\n[pipeline]\nwork_dir = /w\n", &c), SP_OK);
    CHECK_STR(sp_config_str(c, "input", "dir"), "/in");
    CHECK_EQ_INT(sp_config_int(c, "graph", "prune_cap"), 10000);
    CHECK_NEAR(sp_config_f64(c, "input", "max_reject_fraction"), 0.001, 1e-12);
    uint64_t d0 = sp_config_digest(c, (const char *[]){"graph", NULL});
    uint64_t i0 = sp_config_digest(c, (const char *[]){"input", NULL});
    /* --set overrides and changes only the digest of its section */
    CHECK_RC(sp_config_set(c, "graph.prune_cap=500"), SP_OK);
    CHECK_EQ_INT(sp_config_int(c, "graph", "prune_cap"), 500);
    CHECK(sp_config_digest(c, (const char *[]){"graph", NULL}) != d0);
    CHECK_EQ_U64(sp_config_digest(c, (const char *[]){"input", NULL}), i0);
    /* speed-only keys do not change digests */
    uint64_t p0 = sp_config_digest(c, (const char *[]){"pipeline", NULL});
    CHECK_RC(sp_config_set(c, "pipeline.shuffle_buffer_mb=7"), SP_OK);
    CHECK_RC(sp_config_set(c, "input.rejects_per_reason=3"), SP_OK);
    CHECK_EQ_U64(sp_config_digest(c, (const char *[]){"pipeline", NULL}), p0);
    CHECK_EQ_U64(sp_config_digest(c, (const char *[]){"input", NULL}), i0);
    /* a digest without some keys of a section: those keys do not move it, the others do */
    {
        const char *const sq[] = {"sequence", NULL}, *const skip[] = {"epochs", NULL};
        uint64_t e0 = sp_config_digest_except(c, sq, skip), a0 = sp_config_digest(c, sq);
        CHECK_RC(sp_config_set(c, "sequence.epochs=3"), SP_OK);
        CHECK_EQ_U64(sp_config_digest_except(c, sq, skip), e0);
        CHECK(sp_config_digest(c, sq) != a0);
        CHECK_RC(sp_config_set(c, "sequence.lr=0.002"), SP_OK);
        CHECK(sp_config_digest_except(c, sq, skip) != e0);
    }
    /* bad --set forms */
    CHECK_RC(sp_config_set(c, "graph.prune_cap"), SP_ECONFIG);
    CHECK_RC(sp_config_set(c, "nope.key=1"), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "unknown section [nope]"));
    CHECK_RC(sp_config_set(c, "graph.nope=1"), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "unknown key 'nope'"));
    CHECK_RC(sp_config_set(c, "graph.prune_cap=abc"), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "not an integer"));
    CHECK_RC(sp_config_set(c, "graph.prune_cap=0"), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "out of range"));
    CHECK_RC(sp_config_set(c, "input.max_reject_fraction=2"), SP_ECONFIG);
    CHECK_RC(sp_config_set(c, "input.max_reject_fraction=nan"), SP_ECONFIG);
    CHECK_RC(sp_config_set(c, "input.events=carrier-pigeon"), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "file|kafka"));
    CHECK_RC(sp_config_set(c, "input.dir="), SP_ECONFIG);
    CHECK_RC(sp_config_set(c, "input.events=kafka"), SP_OK);
    sp_config_free(c);
    /* file errors name the file and line */
    CHECK_RC(load_text("[input]\ndir = /in\n[pipeline]\nwork_dir = /w\n\n[graph]\nprune_capp = 3\n", NULL), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "c.ini:7:") && strstr(sp_errmsg(), "prune_capp"));
    CHECK_RC(load_text("[inputs]\ndir = /in\n", NULL), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "c.ini:2:") && strstr(sp_errmsg(), "[inputs]")); /* inih reports the first key of the section */
    CHECK_RC(load_text("[graph]\nprune_exponent = 1.5\n", NULL), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "c.ini:2:") && strstr(sp_errmsg(), "out of range"));
    CHECK_RC(load_text("[graph]\nthis line has no equals\n", NULL), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "c.ini:2:"));
    CHECK_RC(load_text("[input]\ndir = /in\n", NULL), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "missing required key pipeline.work_dir"));
    /* what libinih would misread silently: caught before it parses, with the line */
    const char *base = "[input]\ndir = /in\n[pipeline]\nwork_dir = /w\n";
    char text[1024], longc[300];
    memset(longc, 'x', 210), longc[210] = 0;
    snprintf(text, sizeof text, "%s# %s\n[graph]\nprune_cap = 5\n", base, longc); /* a long comment */
    CHECK_RC(load_text(text, NULL), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "c.ini:5: line of 212 characters, longer than the 198"));
    snprintf(text, sizeof text, "%s[graph]\nprune_cap = 5\n  6\n", base); /* a continuation */
    CHECK_RC(load_text(text, NULL), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "c.ini:7: indented line '6'"));
    snprintf(text, sizeof text, "%s[graph]\nprune_cap = 5\n  # an indented comment is fine\n", base);
    CHECK_RC(load_text(text, NULL), SP_OK);
    snprintf(text, sizeof text, "%s[graph]\nprune_cap = 5\nprune_cap = 6\n", base); /* twice */
    CHECK_RC(load_text(text, NULL), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "c.ini:7: key 'prune_cap' in [graph] again (first on line 6)"));
    snprintf(text, sizeof text, "%s[train]\nepochs = 3\n[graph]\nprune_cap = 5\n[train]\nseed = 2\n", base);
    CHECK_RC(load_text(text, NULL), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "c.ini:9: section [train] again (first on line 5)"));
    snprintf(text, sizeof text, "%s[train\nepochs = 3\n", base);
    CHECK_RC(load_text(text, NULL), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "c.ini:5: section header without ']'"));
    { /* a NUL byte (written raw: load_text's fputs would stop at it) */
        char path[256];
        snprintf(path, sizeof path, "%s/nul.ini", dir);
        FILE *f = fopen(path, "w");
        fwrite("[input]\ndir = /i\0n\n", 1, 19, f);
        fclose(f);
        sp_config_new(&c);
        CHECK_RC(sp_config_load(c, path), SP_ECONFIG);
        CHECK(strstr(sp_errmsg(), "nul.ini:2: a NUL byte"));
        sp_config_free(c);
    }
    /* keys that constrain each other */
    static const struct { const char *set, *msg; } cross[] = {
        {"sequence.width=15", "sequence.width 15 is not a multiple of sequence.heads 2"},
        {"train.tau_min=0.5", "train.tau_min 0.5 is above train.tau 0.1"},
        {"sequence.tau_min=0.2", "sequence.tau_min 0.2 is above sequence.tau 0.1"},
        {"walks.hard_lo=6000", "walks.hard_lo 6000 is above walks.hard_hi 5000"},
        {"sage.nbr_pins=51", "sage.nbr_pins 51 is above walks.top_pins 50"},
        {"sage.nbr_boards=60", "sage.nbr_boards 60 is above walks.top_boards 50"},
        {"walks.negative_actions=hid", "walks.negative_actions: 'hid' is not one of input.actions"},
        {"eval.min_recall=0.5", "eval.min_recall 0.5 needs held-out data to score: eval.test is none"},
    };
    for (size_t i = 0; i < sizeof cross / sizeof cross[0]; i++) {
        CHECK_RC(load_text(base, &c), SP_OK);
        CHECK_RC(sp_config_set(c, cross[i].set), SP_OK);
        CHECK_RC(sp_config_check(c), SP_ECONFIG);
        CHECK_MSG(strstr(sp_errmsg(), cross[i].msg) != NULL, "%s: %s", cross[i].set, sp_errmsg());
        sp_config_free(c);
    }
    CHECK_RC(load_text(base, &c), SP_OK);
    CHECK_RC(sp_config_set(c, "walks.negative_actions=hide click"), SP_OK);
    CHECK_RC(sp_config_set(c, "eval.min_recall=0.5"), SP_OK);
    CHECK_RC(sp_config_set(c, "eval.test=held.txt"), SP_OK);
    CHECK_RC(sp_config_check(c), SP_OK);
    sp_config_free(c);
    sp_config_new(&c);
    CHECK_RC(sp_config_load(c, dir), SP_ECONFIG); /* a directory */
    CHECK(strstr(sp_errmsg(), "not a regular file"));
    CHECK_RC(sp_config_load(c, "/nonexistent/sagepipe.ini"), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "/nonexistent/sagepipe.ini"));
    sp_config_free(c);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return CHECK_DONE();
}
