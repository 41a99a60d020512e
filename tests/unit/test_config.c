/* test_config: the schema rejects unknown sections and keys, bad values and
 * missing required keys with messages naming them; --set overrides and accepts
 * exactly the values a file can hold (what `config show` writes reads back the
 * same); the reader's syntax is strict; digests follow output-relevant keys only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* The config with base's required keys, then `set` as a --set; SP_OK or its error. */
static int set_on_base(const char *set, sp_config **out) {
    sp_config *c;
    sp_config_new(&c);
    int rc = sp_config_set(c, "input.dir=/in");
    if (!rc) rc = sp_config_set(c, "pipeline.work_dir=/w");
    if (!rc) rc = sp_config_set(c, set);
    if (rc) sp_config_free(c);
    else *out = c;
    return rc;
}

/* `config show` of c, as text (malloc'd). */
static char *show(const sp_config *c) {
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    sp_config_write_ini(c, f, 0);
    fclose(f);
    return text;
}

/* The value of section.key in `config show` text, in buf; NULL when absent. */
static const char *shown_value(const char *text, const char *section, const char *key, char *buf, size_t cap) {
    char head[64], line[64];
    snprintf(head, sizeof head, "\n[%s]\n", section);
    snprintf(line, sizeof line, "\n%s = ", key);
    const char *s = strstr(text, head), *next, *k;
    if (!s) return NULL;
    s += strlen(head) - 1;
    next = strstr(s, "\n[");
    if (!(k = strstr(s, line)) || (next && k > next)) return NULL;
    k += strlen(line);
    snprintf(buf, cap, "%.*s", (int)strcspn(k, "\n"), k);
    return buf;
}

/* The value accepted by --set survives `config show` -> file -> load: same value, same show output. */
static void check_round_trip(const char *set, const char *section, const char *key, const char *want) {
    sp_config *c = NULL, *back = NULL;
    static char got[8192];
    int rc = set_on_base(set, &c);
    CHECK_MSG(rc == SP_OK, "--set '%s': %s", set, sp_errmsg());
    if (rc) return;
    char *text = show(c);
    CHECK_STR(shown_value(text, section, key, got, sizeof got), want);
    rc = load_text(text, &back);
    CHECK_MSG(rc == SP_OK, "--set '%s' shown, read back: %s", set, sp_errmsg());
    if (!rc) {
        char *again = show(back);
        CHECK_STR(shown_value(again, section, key, got, sizeof got), want);
        CHECK_STR(again, text);
        free(again);
        sp_config_free(back);
    }
    free(text);
    sp_config_free(c);
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
    CHECK(strstr(sp_errmsg(), "c.ini:1:") && strstr(sp_errmsg(), "[inputs]")); /* the header's line */
    CHECK_RC(load_text("[graph]\nprune_exponent = 1.5\n", NULL), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "c.ini:2:") && strstr(sp_errmsg(), "out of range"));
    CHECK_RC(load_text("[graph]\nthis line has no equals\n", NULL), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "c.ini:2:"));
    CHECK_RC(load_text("[input]\ndir = /in\n", NULL), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "missing required key pipeline.work_dir"));
    /* what libinih would misread silently: caught before it parses, with the line */
    const char *base = "[input]\ndir = /in\n[pipeline]\nwork_dir = /w\n";
    char text[1024];
    { /* long lines: a path of PATH_MAX fits (libinih's 198 did not); the limits name what they are for */
        size_t cap = 3 * 8192;
        char *big = malloc(cap), *val = malloc(8300), *set = malloc(8400);
        memset(val, 'x', 8299), val[8299] = 0;
        val[0] = '/';
        val[4096] = 0; /* a value of SP_CONFIG_VALUE_MAX characters */
        snprintf(big, cap, "[input]\ndir = %s\n[pipeline]\nwork_dir = /w\n# %.300s\n", val, val + 1);
        c = NULL;
        CHECK_RC(load_text(big, &c), SP_OK);
        if (c) CHECK_EQ_INT(strlen(sp_config_str(c, "input", "dir")), SP_CONFIG_VALUE_MAX);
        sp_config_free(c);
        c = NULL;
        snprintf(set, 8400, "input.dir=%s", val);
        check_round_trip(set, "input", "dir", val);
        val[4096] = 'x', val[4097] = 0; /* one more */
        snprintf(big, cap, "[input]\ndir = %s\n[pipeline]\nwork_dir = /w\n", val);
        CHECK_RC(load_text(big, NULL), SP_ECONFIG);
        CHECK_MSG(strstr(sp_errmsg(), "c.ini:2: input.dir: value of 4097 characters, longer than the 4096 a value "
                         "may have"), "%s", sp_errmsg());
        snprintf(set, 8400, "input.dir=%s", val);
        CHECK_RC(set_on_base(set, &c), SP_ECONFIG);
        CHECK_MSG(strstr(sp_errmsg(), "--set input.dir: value of 4097 characters, longer than the 4096"), "%s",
                  sp_errmsg());
        val[4097] = 'x', val[6000] = 0;
        snprintf(big, cap, "[input]\ndir = %s\n", val); /* in a file too, the value's own length */
        CHECK_RC(load_text(big, NULL), SP_ECONFIG);
        CHECK_MSG(strstr(sp_errmsg(), "c.ini:2: input.dir: value of 6000 characters, longer than the 4096"), "%s",
                  sp_errmsg());
        val[6000] = 'x';
        snprintf(big, cap, "%s# %s\n", base, val); /* a comment line of 8301 */
        CHECK_RC(load_text(big, NULL), SP_ECONFIG);
        CHECK_MSG(strstr(sp_errmsg(), "c.ini:5: comment line of 8301 characters, longer than the 8192 a line may "
                         "have (split it over several # lines)"), "%s", sp_errmsg());
        snprintf(big, cap, "%sdir = %s\n", base, val); /* a key line of 8305 */
        CHECK_RC(load_text(big, NULL), SP_ECONFIG);
        CHECK_MSG(strstr(sp_errmsg(), "c.ini:5: line of 8305 characters, longer than the 8192 a line may have (a "
                         "value may have 4096)"), "%s", sp_errmsg());
        free(big), free(val), free(set);
    }
    /* --set accepts exactly what a file can hold: trimmed like a file's value, and what `config show`
     * writes reads back the same */
    check_round_trip("train.epochs= 3", "train", "epochs", "3");
    check_round_trip("train.epochs=3 ", "train", "epochs", "3");
    check_round_trip("input.dir= \t/a  b\t ", "input", "dir", "/a  b");
    check_round_trip("input.dir=a;b", "input", "dir", "a;b"); /* ';' not after a blank: part of the value */
    check_round_trip("input.dir=#a #b", "input", "dir", "#a #b"); /* '#' is a comment at a line's start only */
    check_round_trip("input.dir=a\tb", "input", "dir", "a\tb");
    check_round_trip("kafka.brokers=h1:9092,h2:9092", "kafka", "brokers", "h1:9092,h2:9092");
    check_round_trip("input.surfaces=a  b", "input", "surfaces", "a  b");
    static const struct { const char *set, *msg; } bad_set[] = {
        {"input.dir=x ;y", "--set input.dir: ';' at character 3 of the value, after a space or tab: it would "
                           "start a comment in a config file"},
        {"input.dir=x\t;y", "';' at character 3 of the value, after a space or tab"},
        {"input.dir=;x", "--set input.dir: ';' at character 1 of the value, at its start"},
        {"input.dir= ;x", "';' at character 1 of the value, at its start"},
        {"input.dir=a\n[pipeline]\nwork_dir=evil", "--set input.dir: a newline at character 2 of the value"},
        {"input.dir=a\rb", "--set input.dir: a carriage return at character 2"},
        {"input.dir=a\x01", "--set input.dir: 0x01 at character 2"},
        {"input.dir=\x7f", "--set input.dir: 0x7f at character 1"},
        {"input.di\nr=x", "--set: a newline at character 9, in the section.key name"},
        {"input.actions=save click closeup hide engage hide", "--set input.actions: 'hide' is listed twice"},
        {"input.surfaces=a\tb a", "--set input.surfaces: 'a' is listed twice"},
        {"walks.negative_actions=hide hide", "--set walks.negative_actions: 'hide' is listed twice"},
        {"input.dir= \t ", "--set input.dir: empty value"},
    };
    for (size_t i = 0; i < sizeof bad_set / sizeof bad_set[0]; i++) {
        int rc = set_on_base(bad_set[i].set, &c);
        CHECK_MSG(rc == SP_ECONFIG, "--set '%s' accepted", bad_set[i].set);
        if (!rc) sp_config_free(c);
        else CHECK_MSG(strstr(sp_errmsg(), bad_set[i].msg) != NULL, "--set '%s': %s", bad_set[i].set, sp_errmsg());
    }
    /* the file reader: the same values; a comment ends a value; what --set refuses, a file cannot hold */
    static const struct { const char *line, *dir, *msg; } file_vals[] = {
        {"dir = x ;y", "x", NULL},
        {"dir = x\t; y", "x", NULL},
        {"dir = ;x", NULL, "input.dir: empty value"},
        {"dir =;x", NULL, "c.ini:2: input.dir: ';' at character 1 of the value, at its start"},
        {"dir = a;b ", "a;b", NULL},
        {"dir = a\rb", NULL, "c.ini:2: input.dir: a carriage return at character 2"},
        {"dir = a\x01" "b", NULL, "c.ini:2: input.dir: 0x01 at character 2"},
        {"dir = /in\r", "/in", NULL}, /* a CRLF line end */
        {"actions = save hide hide", NULL, "c.ini:2: input.actions: 'hide' is listed twice"},
    };
    for (size_t i = 0; i < sizeof file_vals / sizeof file_vals[0]; i++) {
        snprintf(text, sizeof text, "[input]\n%s\n%s[pipeline]\nwork_dir = /w\n", file_vals[i].line,
                 strncmp(file_vals[i].line, "dir", 3) ? "dir = /in\n" : "");
        c = NULL;
        int rc = load_text(text, &c);
        if (file_vals[i].dir) {
            CHECK_MSG(rc == SP_OK, "'%s': %s", file_vals[i].line, sp_errmsg());
            if (c) CHECK_STR(sp_config_str(c, "input", "dir"), file_vals[i].dir);
        } else {
            CHECK_MSG(rc == SP_ECONFIG, "'%s' accepted", file_vals[i].line);
            CHECK_MSG(strstr(sp_errmsg(), file_vals[i].msg) != NULL, "'%s': %s", file_vals[i].line, sp_errmsg());
        }
        sp_config_free(c);
    }
    /* strict syntax: what libinih took silently */
    static const struct { const char *text, *msg; } syntax[] = {
        {"[input] junk\ndir = /in\n", "c.ini:1: text ' junk' after the section header's ']'"},
        {"[input]] \ndir = /in\n", "c.ini:1: text ']' after the section header's ']'"},
        {"[input];c\ndir = /in\n", "c.ini:1: text ';c' after"},
        {"[input]\ndir: /in\n", "c.ini:2: 'dir: /in': ':' is not a separator (key = value)"},
        {"[input]\ndir: /a=b\n", "c.ini:2: 'dir: /a=b': ':' is not a separator"},
        {"dir = /in\n[input]\n", "c.ini:1: key 'dir' outside any [section]"},
        {"[input]\n= /in\n", "c.ini:2: syntax error"},
    };
    for (size_t i = 0; i < sizeof syntax / sizeof syntax[0]; i++) {
        CHECK_MSG(load_text(syntax[i].text, NULL) == SP_ECONFIG, "'%s' accepted", syntax[i].text);
        CHECK_MSG(strstr(sp_errmsg(), syntax[i].msg) != NULL, "'%s': %s", syntax[i].text, sp_errmsg());
    }
    snprintf(text, sizeof text, "[input] ; the inputs\t\ndir = /in ; a comment\n[pipeline]\t\nwork_dir = /w\n"
             "[kafka]\nbrokers = localhost:9092\n");
    CHECK_RC(load_text(text, NULL), SP_OK);
    snprintf(text, sizeof text, "\xEF\xBB\xBF%s", base); /* a UTF-8 BOM */
    CHECK_RC(load_text(text, NULL), SP_OK);
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
    /* with kafka.publish, the collective timeout outlasts the longest Kafka wait: (2 * 5 + 1) x 10 s */
    CHECK_RC(load_text(base, &c), SP_OK);
    CHECK_RC(sp_config_set(c, "pipeline.collective_timeout_s=100"), SP_OK);
    CHECK_RC(sp_config_check(c), SP_OK); /* no publish: no Kafka wait */
    CHECK_RC(sp_config_set(c, "kafka.publish=true"), SP_OK);
    CHECK_RC(sp_config_check(c), SP_ECONFIG);
    CHECK_MSG(strstr(sp_errmsg(), "pipeline.collective_timeout_s 100 is shorter than the publish stage's longest "
                     "Kafka wait, 110 s"), "%s", sp_errmsg());
    CHECK_RC(sp_config_set(c, "pipeline.collective_timeout_s=110"), SP_OK);
    CHECK_RC(sp_config_check(c), SP_OK);
    sp_config_free(c);
    CHECK_RC(load_text(base, &c), SP_OK);
    CHECK_RC(sp_config_set(c, "walks.negative_actions=hide click"), SP_OK);
    CHECK_RC(sp_config_set(c, "eval.min_recall=0.5"), SP_OK);
    CHECK_RC(sp_config_set(c, "eval.test=held.txt"), SP_OK);
    CHECK_RC(sp_config_check(c), SP_OK);
    sp_config_free(c);
    sp_config_new(&c);
    CHECK_RC(sp_config_load(c, dir), SP_ECONFIG); /* a directory */
    CHECK(strstr(sp_errmsg(), "not a regular file"));
    CHECK_RC(sp_config_load(c, "/dev/null"), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "not a regular file"));
    { /* a FIFO no one writes to: refused at once, not a blocking open (the alarm kills a test that hangs) */
        char fifo[256];
        snprintf(fifo, sizeof fifo, "%s/fifo.ini", dir);
        CHECK(mkfifo(fifo, 0600) == 0);
        alarm(10);
        CHECK_RC(sp_config_load(c, fifo), SP_ECONFIG);
        alarm(0);
        CHECK(strstr(sp_errmsg(), "fifo.ini: not a regular file"));
    }
    CHECK_RC(sp_config_load(c, "/nonexistent/sagepipe.ini"), SP_ECONFIG);
    CHECK(strstr(sp_errmsg(), "/nonexistent/sagepipe.ini"));
    sp_config_free(c);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return CHECK_DONE();
}
