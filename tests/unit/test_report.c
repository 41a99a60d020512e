/* test_report: report.json parses back (io/json) with every value; the HTML is
 * well-formed (a tag-stack check: every element closed in order, attributes
 * quoted, no raw '<' or stray '&' in text), escapes hostile text, holds one
 * polyline per series and the metric values; files are written atomically. */
#include "check.h"
#include "json.h"
#include "report.h"
#include "sp_base.h"

#include <ctype.h>
#include <stdlib.h>
#include <unistd.h>

static const char *const HOSTILE = "<script>alert(\"x\")</script> & 'q'";

/* ------------------------------------------------ a well-formedness check */

/* Returns NULL when html is well-formed, else a static description. */
static const char *html_problem(const char *html) {
    static char why[200];
    const char *stack[64];
    size_t slen[64];
    int depth = 0;
    const char *p = html;
    if (strncmp(p, "<!DOCTYPE html>", 15)) return "no <!DOCTYPE html> first";
    p += 15;
    while (*p) {
        if (*p == '&') {
            const char *q = p + 1;
            if (*q == '#') {
                q++;
                while (isdigit((unsigned char)*q)) q++;
            } else {
                while (isalpha((unsigned char)*q)) q++;
            }
            if (*q != ';' || q == p + 1) {
                snprintf(why, sizeof why, "stray '&' at offset %td", p - html);
                return why;
            }
            p = q + 1;
            continue;
        }
        if (*p == '>') {
            snprintf(why, sizeof why, "raw '>' in text at offset %td", p - html);
            return why;
        }
        if (*p != '<') {
            p++;
            continue;
        }
        if (p[1] == '/') { /* closing tag */
            const char *n = p + 2, *e = n;
            while (isalnum((unsigned char)*e)) e++;
            if (*e != '>' || !depth || (size_t)(e - n) != slen[depth - 1] || strncmp(n, stack[depth - 1], slen[depth - 1])) {
                snprintf(why, sizeof why, "unexpected </%.*s> at offset %td (open: %.*s)", (int)(e - n), n, p - html,
                         depth ? (int)slen[depth - 1] : 4, depth ? stack[depth - 1] : "none");
                return why;
            }
            depth--;
            p = e + 1;
            continue;
        }
        const char *n = p + 1, *e = n;
        while (isalnum((unsigned char)*e)) e++;
        if (e == n) {
            snprintf(why, sizeof why, "raw '<' in text at offset %td", p - html);
            return why;
        }
        const char *q = e; /* attributes: name="value", value without '<' */
        for (;;) {
            while (*q == ' ' || *q == '\n') q++;
            if (*q == '>' || (q[0] == '/' && q[1] == '>')) break;
            while (isalnum((unsigned char)*q) || *q == '-' || *q == ':') q++;
            if (q[0] != '=' || q[1] != '"') {
                snprintf(why, sizeof why, "unquoted attribute in <%.*s> at offset %td", (int)(e - n), n, q - html);
                return why;
            }
            q += 2;
            while (*q && *q != '"') {
                if (*q == '<') return "'<' inside an attribute value";
                q++;
            }
            if (!*q) return "unterminated attribute";
            q++;
        }
        if (*q == '/') {
            p = q + 2;
            continue;
        }
        if (depth == 64) return "nesting too deep";
        stack[depth] = n;
        slen[depth++] = (size_t)(e - n);
        p = q + 1;
        if (e - n == 5 && !strncmp(n, "style", 5)) { /* raw text up to </style> */
            const char *end = strstr(p, "</style>");
            if (!end) return "unclosed <style>";
            if (memchr(p, '<', (size_t)(end - p))) return "'<' inside <style>";
            p = end;
        }
    }
    if (depth) {
        snprintf(why, sizeof why, "%d elements left open (innermost <%.*s>)", depth, (int)slen[depth - 1],
                 stack[depth - 1]);
        return why;
    }
    return NULL;
}

static size_t count(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* ------------------------------------------------------------- fixtures */

static const sp_report_point loss[] = {{1, 2.5}, {2, 1.25}, {3, 0.9}, {4, NAN}, {5, 0.71}};
static const sp_report_point val[] = {{1, 2.75}, {3, 1.5}, {5, 1.0625}};
static const sp_report_point one[] = {{0.5, -3}};
static const sp_report_series loss_series[] = {{"train loss", loss, 5}, {"validation \"loss\"", val, 3}};
static const sp_report_series odd_series[] = {{"single", one, 1}, {"empty", NULL, 0}};
static const sp_report_chart charts[] = {{"Loss by epoch", "epoch", "loss", loss_series, 2},
                                         {HOSTILE, NULL, NULL, odd_series, 2}};
static const char *const stage_cols[] = {"stage", "wall s", "rows"};
static const char *const stage_cells[] = {"ingest", "1.5", "1000", "walks", "12.25", NULL, "<eval>", "0.5", "3"};
static const sp_report_table tables[] = {{"Stages", stage_cols, 3, stage_cells, 3}};
static const char *const notes[] = {"Seen items are excluded (-inf), not scored 0.", HOSTILE};

static sp_report sample(sp_report_metric *m) {
    m[0] = (sp_report_metric){"recall@20", 0.18301234567891};
    m[1] = (sp_report_metric){"ndcg@20", 0.1554};
    m[2] = (sp_report_metric){"a<b&c", -1e-7};
    m[3] = (sp_report_metric){"not measured", NAN};
    return (sp_report){.title = HOSTILE, .date = "2026-11-21", .created_at = "2026-11-22T03:00:00Z",
                       .metrics = m, .nmetrics = 4, .charts = charts, .ncharts = 2, .tables = tables,
                       .ntables = 1, .notes = notes, .nnotes = 2};
}

/* ---------------------------------------------------------------- tests */

static void test_json(void) {
    sp_report_metric m[4];
    sp_report r = sample(m);
    char *text = NULL;
    size_t len = 0;
    CHECK_RC(sp_report_json(&r, &text, &len), SP_OK);
    CHECK(text && len == strlen(text) && text[len - 1] == '\n');
    sp_json *j = NULL;
    CHECK_RC(sp_json_parse(&j, text, len), SP_OK);
    if (!j) {
        free(text);
        return;
    }
    CHECK_STR(sp_json_str(sp_json_get(j, "format")), "sagepipe-report");
    CHECK_NEAR(sp_json_num(sp_json_get(j, "format_version")), 1, 0);
    CHECK_STR(sp_json_str(sp_json_get(j, "title")), HOSTILE);
    CHECK_STR(sp_json_str(sp_json_get(j, "date")), "2026-11-21");
    CHECK_STR(sp_json_str(sp_json_get(j, "created_at")), "2026-11-22T03:00:00Z");
    const sp_json *ms = sp_json_get(j, "metrics");
    CHECK_EQ_INT(sp_json_len(ms), 4);
    for (size_t i = 0; i < 4 && i < sp_json_len(ms); i++) CHECK_STR(sp_json_key_at(ms, i), m[i].name);
    CHECK(sp_json_num(sp_json_get(ms, "recall@20")) == m[0].value); /* %.17g: exact */
    CHECK(sp_json_num(sp_json_get(ms, "a<b&c")) == m[2].value);
    CHECK(sp_json_type(sp_json_get(ms, "not measured")) == SP_JSON_NULL);
    const sp_json *ch = sp_json_get(j, "charts");
    CHECK_EQ_INT(sp_json_len(ch), 2);
    const sp_json *c0 = sp_json_at(ch, 0);
    CHECK_STR(sp_json_str(sp_json_get(c0, "x_label")), "epoch");
    CHECK(sp_json_type(sp_json_get(sp_json_at(ch, 1), "x_label")) == SP_JSON_NULL);
    const sp_json *s1 = sp_json_at(sp_json_get(c0, "series"), 1);
    CHECK_STR(sp_json_str(sp_json_get(s1, "name")), "validation \"loss\"");
    const sp_json *pts = sp_json_get(s1, "points");
    CHECK_EQ_INT(sp_json_len(pts), 3);
    CHECK(sp_json_num(sp_json_at(sp_json_at(pts, 2), 0)) == 5 && sp_json_num(sp_json_at(sp_json_at(pts, 2), 1)) == 1.0625);
    const sp_json *p3 = sp_json_at(sp_json_get(sp_json_at(sp_json_get(c0, "series"), 0), "points"), 3);
    CHECK(sp_json_type(sp_json_at(p3, 1)) == SP_JSON_NULL); /* NaN point */
    const sp_json *tb = sp_json_at(sp_json_get(j, "tables"), 0);
    CHECK_STR(sp_json_str(sp_json_at(sp_json_get(tb, "columns"), 1)), "wall s");
    const sp_json *rows = sp_json_get(tb, "rows");
    CHECK_EQ_INT(sp_json_len(rows), 3);
    CHECK_STR(sp_json_str(sp_json_at(sp_json_at(rows, 1), 2)), ""); /* NULL cell */
    CHECK_STR(sp_json_str(sp_json_at(sp_json_at(rows, 2), 0)), "<eval>");
    CHECK_STR(sp_json_str(sp_json_at(sp_json_get(j, "notes"), 1)), HOSTILE);
    sp_json_free(j);
    free(text);
}

/* The checker itself must catch what it is meant to catch. */
static void test_checker(void) {
    CHECK(html_problem("<!DOCTYPE html>\n<p>a</p>\n") == NULL);
    CHECK(html_problem("<!DOCTYPE html><p>a</b>") != NULL);
    CHECK(html_problem("<!DOCTYPE html><p>a") != NULL);
    CHECK(html_problem("<!DOCTYPE html><p>a & b</p>") != NULL);
    CHECK(html_problem("<!DOCTYPE html><p>a < b</p>") != NULL);
    CHECK(html_problem("<!DOCTYPE html><p class=x>a</p>") != NULL);
    CHECK(html_problem("<!DOCTYPE html><p title=\"a<b\">a</p>") != NULL);
    CHECK(html_problem("<html><p>a</p></html>") != NULL);
}

static void test_html(void) {
    sp_report_metric m[4];
    sp_report r = sample(m);
    char *html = NULL;
    size_t len = 0;
    CHECK_RC(sp_report_html(&r, &html, &len), SP_OK);
    if (!html) return;
    CHECK(len == strlen(html));
    const char *why = html_problem(html);
    CHECK_MSG(why == NULL, "report.html is not well-formed: %s", why);
    CHECK(strstr(html, "<script") == NULL);
    CHECK(strstr(html, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;") != NULL);
    CHECK(strstr(html, "http://") == NULL || count(html, "http://") == count(html, "http://www.w3.org/2000/svg"));
    CHECK(strstr(html, "<link") == NULL && strstr(html, "src=") == NULL); /* no external asset */
    CHECK_EQ_INT(count(html, "<svg"), 2);
    CHECK_EQ_INT(count(html, "<polyline"), 4);
    CHECK(strstr(html, "data-metric=\"recall@20\">0.183012</td>") != NULL);
    CHECK(strstr(html, "data-metric=\"a&lt;b&amp;c\">-1e-07</td>") != NULL);
    CHECK(strstr(html, "data-metric=\"not measured\">n/a</td>") != NULL);
    CHECK(strstr(html, "<td>&lt;eval&gt;</td>") != NULL);
    CHECK(strstr(html, ">validation &quot;loss&quot;</text>") != NULL); /* legend */
    /* the train series: 4 finite points (the NaN one skipped), x 1..5 over the
     * plot width 72..600, so the first point sits on the left axis */
    const char *pl = strstr(html, "<polyline");
    const char *pts = pl ? strstr(pl, "points=\"") : NULL;
    if (pts) {
        double x0, y0;
        CHECK_EQ_INT(sscanf(pts + 8, "%lf,%lf", &x0, &y0), 2);
        CHECK_NEAR(x0, 72, 1e-9);
        const char *end = strchr(pts + 8, '"');
        size_t commas = 0;
        for (const char *c = pts + 8; c < end; c++) commas += *c == ',';
        CHECK_EQ_INT(commas, 4);
    }
    free(html);
}

static void test_errors_and_write(void) {
    sp_report_metric m[4];
    sp_report r = sample(m);
    char *t = NULL;
    m[3].name = "recall@20";
    CHECK_RC(sp_report_json(&r, &t, NULL), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "metric 'recall@20' appears twice") != NULL);
    CHECK_RC(sp_report_html(&r, &t, NULL), SP_EINPUT);
    m[3].name = "x";
    r.date = NULL;
    CHECK_RC(sp_report_json(&r, &t, NULL), SP_EINPUT);
    r.date = "2026-11-21";
    r.nnotes = 3;
    r.notes = NULL;
    CHECK_RC(sp_report_html(&r, &t, NULL), SP_EINPUT);
    r = sample(m);

    char dir[] = "/tmp/sp_report_XXXXXX", p[64];
    if (!mkdtemp(dir)) return;
    CHECK_RC(sp_report_write(&r, dir), SP_OK);
    const char *names[] = {"report.json", "report.html"};
    for (int i = 0; i < 2; i++) {
        char *want = NULL;
        size_t wl = 0;
        CHECK_RC(i ? sp_report_html(&r, &want, &wl) : sp_report_json(&r, &want, &wl), SP_OK);
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        FILE *f = fopen(p, "rb");
        CHECK(f != NULL);
        if (f && want) {
            char *got = malloc(wl + 2);
            size_t n = fread(got, 1, wl + 1, f);
            CHECK_EQ_U64(n, wl);
            CHECK(n == wl && !memcmp(got, want, wl));
            free(got);
            fclose(f);
        }
        free(want);
        unlink(p);
    }
    rmdir(dir);
    snprintf(p, sizeof p, "%s/nonexistent", dir);
    CHECK_RC(sp_report_write(&r, p), SP_EIO);
    CHECK(strstr(sp_errmsg(), "report.json") != NULL);
    /* values at the ends of the double range: a finite, well-formed page */
    const sp_report_point huge[] = {{0, 1e308}, {1, -1e308}, {-1e308, 0}};
    const sp_report_series hs[] = {{"huge", huge, 3}};
    const sp_report_chart hc[] = {{"extreme", "x", "y", hs, 1}};
    sp_report ext = {.title = "t", .date = "d", .charts = hc, .ncharts = 1};
    char *eh = NULL;
    CHECK_RC(sp_report_html(&ext, &eh, NULL), SP_OK);
    CHECK(eh && html_problem(eh) == NULL && !strstr(eh, "nan") && !strstr(eh, "inf"));
    free(eh);
    sp_report empty = {.title = "t", .date = "d"};
    char *h = NULL;
    CHECK_RC(sp_report_html(&empty, &h, NULL), SP_OK);
    CHECK(h && html_problem(h) == NULL && strstr(h, "No metrics.") != NULL);
    free(h);
}

int main(void) {
    test_checker();
    test_json();
    test_html();
    test_errors_and_write();
    return CHECK_DONE();
}
