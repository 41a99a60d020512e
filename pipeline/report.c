/* report: report.json through the io/json writer, and a self-contained
 * report.html (inline CSS, inline SVG charts drawn here: axes with "nice"
 * ticks, one polyline per series, legend) with every text escaped. */
#include "report.h"

#include "fsutil.h"
#include "json.h"
#include "sp_base.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SAGEPIPE_VERSION
#define SAGEPIPE_VERSION "dev"
#endif

/* ------------------------------------------------------------ validation */

static int check_report(const sp_report *r) {
    if (!r || !r->title || !r->date) return sp_err(SP_EINPUT, "report: title and date are required");
    if ((r->nmetrics && !r->metrics) || (r->ncharts && !r->charts) || (r->ntables && !r->tables) ||
        (r->nnotes && !r->notes))
        return sp_err(SP_EINPUT, "report: a list has a count but no array");
    for (size_t i = 0; i < r->nmetrics; i++) {
        if (!r->metrics[i].name) return sp_err(SP_EINPUT, "report: metric %zu has no name", i);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(r->metrics[i].name, r->metrics[j].name))
                return sp_err(SP_EINPUT, "report: metric '%s' appears twice (entries %zu and %zu)",
                              r->metrics[i].name, j, i);
    }
    for (size_t c = 0; c < r->ncharts; c++) {
        const sp_report_chart *ch = &r->charts[c];
        if (ch->nseries && !ch->series) return sp_err(SP_EINPUT, "report: chart %zu has no series array", c);
        for (size_t s = 0; s < ch->nseries; s++)
            if (ch->series[s].n && !ch->series[s].pts)
                return sp_err(SP_EINPUT, "report: chart %zu series %zu has no points array", c, s);
    }
    for (size_t t = 0; t < r->ntables; t++) {
        const sp_report_table *tb = &r->tables[t];
        if ((tb->ncols && !tb->columns) || (tb->nrows && tb->ncols && !tb->cells))
            return sp_err(SP_EINPUT, "report: table %zu has a count but no array", t);
    }
    return SP_OK;
}

static const char *orempty(const char *s) { return s ? s : ""; }

/* ------------------------------------------------------------------ JSON */

int sp_report_json(const sp_report *r, char **text, size_t *len) {
    int rc = check_report(r);
    if (rc) return rc;
    sp_jw w;
    sp_jw_init(&w);
    sp_jw_obj_begin(&w, NULL);
    sp_jw_str(&w, "format", "sagepipe-report");
    sp_jw_u64(&w, "format_version", 1);
    sp_jw_str(&w, "title", r->title);
    sp_jw_str(&w, "date", r->date);
    if (r->created_at) sp_jw_str(&w, "created_at", r->created_at);
    sp_jw_obj_begin(&w, "metrics");
    for (size_t i = 0; i < r->nmetrics; i++) sp_jw_f64(&w, r->metrics[i].name, r->metrics[i].value);
    sp_jw_obj_end(&w);
    sp_jw_arr_begin(&w, "charts");
    for (size_t c = 0; c < r->ncharts; c++) {
        const sp_report_chart *ch = &r->charts[c];
        sp_jw_obj_begin(&w, NULL);
        sp_jw_str(&w, "title", orempty(ch->title));
        sp_jw_str(&w, "x_label", ch->x_label);
        sp_jw_str(&w, "y_label", ch->y_label);
        sp_jw_arr_begin(&w, "series");
        for (size_t s = 0; s < ch->nseries; s++) {
            const sp_report_series *se = &ch->series[s];
            sp_jw_obj_begin(&w, NULL);
            sp_jw_str(&w, "name", orempty(se->name));
            sp_jw_arr_begin(&w, "points");
            for (size_t i = 0; i < se->n; i++) {
                sp_jw_arr_begin(&w, NULL);
                sp_jw_f64(&w, NULL, se->pts[i].x);
                sp_jw_f64(&w, NULL, se->pts[i].y);
                sp_jw_arr_end(&w);
            }
            sp_jw_arr_end(&w);
            sp_jw_obj_end(&w);
        }
        sp_jw_arr_end(&w);
        sp_jw_obj_end(&w);
    }
    sp_jw_arr_end(&w);
    sp_jw_arr_begin(&w, "tables");
    for (size_t t = 0; t < r->ntables; t++) {
        const sp_report_table *tb = &r->tables[t];
        sp_jw_obj_begin(&w, NULL);
        sp_jw_str(&w, "title", orempty(tb->title));
        sp_jw_arr_begin(&w, "columns");
        for (size_t c = 0; c < tb->ncols; c++) sp_jw_str(&w, NULL, orempty(tb->columns[c]));
        sp_jw_arr_end(&w);
        sp_jw_arr_begin(&w, "rows");
        for (size_t i = 0; i < tb->nrows; i++) {
            sp_jw_arr_begin(&w, NULL);
            for (size_t c = 0; c < tb->ncols; c++) sp_jw_str(&w, NULL, orempty(tb->cells[i * tb->ncols + c]));
            sp_jw_arr_end(&w);
        }
        sp_jw_arr_end(&w);
        sp_jw_obj_end(&w);
    }
    sp_jw_arr_end(&w);
    sp_jw_arr_begin(&w, "notes");
    for (size_t i = 0; i < r->nnotes; i++) sp_jw_str(&w, NULL, orempty(r->notes[i]));
    sp_jw_arr_end(&w);
    sp_jw_obj_end(&w);
    const char *out;
    size_t n;
    rc = sp_jw_finish(&w, &out, &n);
    if (!rc) {
        if ((*text = malloc(n + 1))) {
            memcpy(*text, out, n + 1);
            if (len) *len = n;
        } else {
            rc = SP_ENOMEM;
        }
    }
    sp_jw_free(&w);
    return rc ? sp_err(rc, "report: cannot build report.json: %s", sp_strerror(rc)) : SP_OK;
}

/* ------------------------------------------------------------------ HTML */

/* Growable text; the first failed append sets err and later ones do nothing. */
typedef struct {
    char *b;
    size_t n, cap;
    int err;
} sbuf;

static void put(sbuf *s, const char *d, size_t n) {
    if (s->err) return;
    if (s->n + n + 1 > s->cap && sp_grow((void **)&s->b, &s->cap, s->n + n + 1, 1)) {
        s->err = SP_ENOMEM;
        return;
    }
    memcpy(s->b + s->n, d, n);
    s->n += n;
    s->b[s->n] = 0;
}

static void puts_(sbuf *s, const char *t) { put(s, t, strlen(t)); }

static void putf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(sbuf *s, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        s->err = SP_EINTERNAL;
        return;
    }
    if ((size_t)n < sizeof tmp) {
        put(s, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        s->err = SP_ENOMEM;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    put(s, big, (size_t)n);
    free(big);
}

/* Text or attribute value, escaped (& < > " '). */
static void esc(sbuf *s, const char *t) {
    if (!t) return;
    const char *run = t;
    for (; *t; t++) {
        const char *e = NULL;
        switch (*t) {
        case '&': e = "&amp;"; break;
        case '<': e = "&lt;"; break;
        case '>': e = "&gt;"; break;
        case '"': e = "&quot;"; break;
        case '\'': e = "&#39;"; break;
        default: continue;
        }
        put(s, run, (size_t)(t - run));
        puts_(s, e);
        run = t + 1;
    }
    put(s, run, (size_t)(t - run));
}

/* A number as shown on the page: %.6g, "n/a" when not finite. */
static void fmt_num(char *b, size_t cap, double v) {
    if (isfinite(v)) snprintf(b, cap, "%.6g", v);
    else snprintf(b, cap, "n/a");
}

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                      "#9467bd", "#8c564b", "#e377c2", "#17becf"};
#define NPALETTE (sizeof palette / sizeof palette[0])

/* Chart geometry (SVG user units). */
enum { CH_W = 820, CH_H = 360, PL_X0 = 72, PL_X1 = 600, PL_Y0 = 24, PL_Y1 = 300, LEG_X = 620, LEG_DY = 18,
       MARKERS_MAX = 40, TICKS_MAX = 12 };

/* Axis range and tick step: "nice" steps (1, 2, 5 x 10^k) giving about five
 * ticks, bounds widened to whole steps. A degenerate range is widened first. */
typedef struct {
    double lo, hi, step;
} axis;

static axis nice_axis(double lo, double hi) {
    if (!(lo <= hi)) lo = 0, hi = 1; /* no finite data */
    if (hi - lo < 1e-12 * (fabs(lo) + fabs(hi)) || hi == lo) {
        double pad = lo == 0 ? 1 : fabs(lo) * 0.1;
        lo -= pad;
        hi += pad;
    }
    double raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
    axis a = {floor(lo / step) * step, ceil(hi / step) * step, step};
    if (a.hi <= a.lo) a.hi = a.lo + step;
    /* values near the double range overflow the arithmetic above: draw the
     * frame with a plain range instead (points off it are not drawn sensibly,
     * but nothing hangs or prints nan) */
    if (!isfinite(a.lo) || !isfinite(a.hi) || !isfinite(a.hi - a.lo) || !(step > 0) || !isfinite(step))
        a = (axis){0, 1, 0.2};
    return a;
}

/* Data value -> SVG coordinate, clamped so that extreme data still gives a valid number. */
static double map(double v, axis a, double p0, double p1) {
    double c = p0 + (v - a.lo) / (a.hi - a.lo) * (p1 - p0);
    return isnan(c) ? p0 : fmax(-1e6, fmin(1e6, c));
}

/* Grid line and label at every tick of axis a: vertical lines for the x
 * axis (is_x), horizontal ones for the y axis. */
static void ticks(sbuf *s, axis a, int is_x) {
    char lab[64];
    for (int i = 0; i <= TICKS_MAX; i++) {
        double v = a.lo + i * a.step;
        if (v > a.hi + a.step * 1e-9) break;
        if (fabs(v) < a.step * 1e-9) v = 0; /* no "-0" or "1e-17" at the origin */
        fmt_num(lab, sizeof lab, v);
        if (is_x) {
            double x = map(v, a, PL_X0, PL_X1);
            putf(s, "<line class=\"grid\" x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\"/>"
                    "<text class=\"tick\" x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                 x, PL_Y0, x, PL_Y1, x, PL_Y1 + 16, lab);
        } else {
            double y = map(v, a, PL_Y1, PL_Y0);
            putf(s, "<line class=\"grid\" x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\"/>"
                    "<text class=\"tick\" x=\"%d\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n",
                 PL_X0, y, PL_X1, y, PL_X0 - 6, y + 4, lab);
        }
    }
}

static void chart_svg(sbuf *s, const sp_report_chart *ch, size_t idx) {
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (size_t k = 0; k < ch->nseries; k++)
        for (size_t i = 0; i < ch->series[k].n; i++) {
            sp_report_point p = ch->series[k].pts[i];
            if (!isfinite(p.x) || !isfinite(p.y)) continue;
            xlo = fmin(xlo, p.x), xhi = fmax(xhi, p.x), ylo = fmin(ylo, p.y), yhi = fmax(yhi, p.y);
        }
    axis ax = nice_axis(xlo, xhi), ay = nice_axis(ylo, yhi);
    size_t h = CH_H;
    if (PL_Y0 + LEG_DY * (ch->nseries + 1) > h) h = PL_Y0 + LEG_DY * (ch->nseries + 1);
    putf(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" id=\"chart-%zu\" width=\"%d\" height=\"%zu\" "
            "viewBox=\"0 0 %d %zu\" role=\"img\" aria-label=\"", idx, CH_W, h, CH_W, h);
    esc(s, orempty(ch->title));
    puts_(s, "\">\n");
    ticks(s, ax, 1);
    ticks(s, ay, 0);
    putf(s, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
            "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n",
         PL_X0, PL_Y1, PL_X1, PL_Y1, PL_X0, PL_Y0, PL_X0, PL_Y1);
    if (ch->x_label) {
        putf(s, "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (PL_X0 + PL_X1) / 2, PL_Y1 + 40);
        esc(s, ch->x_label);
        puts_(s, "</text>\n");
    }
    if (ch->y_label) {
        putf(s, "<text class=\"label\" x=\"16\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 16 %d)\">",
             (PL_Y0 + PL_Y1) / 2, (PL_Y0 + PL_Y1) / 2);
        esc(s, ch->y_label);
        puts_(s, "</text>\n");
    }
    /* one polyline per series (non-finite points skipped), markers on short series */
    for (size_t k = 0; k < ch->nseries; k++) {
        const sp_report_series *se = &ch->series[k];
        const char *col = palette[k % NPALETTE];
        size_t nfin = 0;
        for (size_t i = 0; i < se->n; i++) nfin += isfinite(se->pts[i].x) && isfinite(se->pts[i].y);
        putf(s, "<g class=\"series\" data-series=\"%zu\"><title>", k);
        esc(s, orempty(se->name));
        putf(s, "</title><polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        const char *sep = "";
        for (size_t i = 0; i < se->n; i++) {
            sp_report_point p = se->pts[i];
            if (!isfinite(p.x) || !isfinite(p.y)) continue;
            putf(s, "%s%.2f,%.2f", sep, map(p.x, ax, PL_X0, PL_X1), map(p.y, ay, PL_Y1, PL_Y0));
            sep = " ";
        }
        puts_(s, "\"/>");
        if (nfin <= MARKERS_MAX)
            for (size_t i = 0; i < se->n; i++) {
                sp_report_point p = se->pts[i];
                if (!isfinite(p.x) || !isfinite(p.y)) continue;
                putf(s, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>", map(p.x, ax, PL_X0, PL_X1),
                     map(p.y, ay, PL_Y1, PL_Y0), col);
            }
        puts_(s, "</g>\n");
        /* legend entry */
        int ly = PL_Y0 + LEG_DY * (int)k + 8;
        putf(s, "<g class=\"legend\"><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/>"
                "<text x=\"%d\" y=\"%d\">", LEG_X, ly, LEG_X + 22, ly, col, LEG_X + 28, ly + 4);
        esc(s, orempty(se->name));
        puts_(s, "</text></g>\n");
    }
    puts_(s, "</svg>\n");
}

static void table_html(sbuf *s, const char *const *columns, size_t ncols, const char *const *cells, size_t nrows) {
    puts_(s, "<table>\n<thead><tr>");
    for (size_t c = 0; c < ncols; c++) {
        puts_(s, "<th>");
        esc(s, orempty(columns[c]));
        puts_(s, "</th>");
    }
    puts_(s, "</tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < nrows; i++) {
        puts_(s, "<tr>");
        for (size_t c = 0; c < ncols; c++) {
            puts_(s, "<td>");
            esc(s, orempty(cells[i * ncols + c]));
            puts_(s, "</td>");
        }
        puts_(s, "</tr>\n");
    }
    puts_(s, "</tbody>\n</table>\n");
}

static const char css[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2em auto;"
    "max-width:900px;padding:0 1em;color:#222;background:#fff}\n"
    "h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}\n"
    ".meta{color:#666;margin-top:0}\n"
    "table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:.3em .7em;text-align:left}\n"
    "th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
    "figure{margin:1em 0}figcaption{font-weight:600;margin-bottom:.3em}\n"
    "svg.chart{max-width:100%;height:auto;background:#fff}\n"
    "svg .grid{stroke:#eee;stroke-width:1}svg .axis{stroke:#333;stroke-width:1}\n"
    "svg text{font-size:12px;fill:#333}svg .label{font-size:13px}\n"
    "footer{color:#888;font-size:.85em;margin-top:2em}\n";

int sp_report_html(const sp_report *r, char **text, size_t *len) {
    int rc = check_report(r);
    if (rc) return rc;
    sbuf s = {0};
    puts_(&s, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>");
    esc(&s, r->title);
    puts_(&s, " \xe2\x80\x94 ");
    esc(&s, r->date);
    puts_(&s, "</title>\n<style>\n");
    puts_(&s, css);
    puts_(&s, "</style>\n</head>\n<body>\n<header>\n<h1>");
    esc(&s, r->title);
    puts_(&s, "</h1>\n<p class=\"meta\">date <span id=\"date\">");
    esc(&s, r->date);
    puts_(&s, "</span>");
    if (r->created_at) {
        puts_(&s, " \xc2\xb7 created ");
        esc(&s, r->created_at);
    }
    puts_(&s, "</p>\n</header>\n");

    puts_(&s, "<section id=\"metrics\">\n<h2>Metrics</h2>\n");
    if (!r->nmetrics) puts_(&s, "<p>No metrics.</p>\n");
    else {
        puts_(&s, "<table class=\"metrics\">\n<thead><tr><th>metric</th><th>value</th></tr></thead>\n<tbody>\n");
        for (size_t i = 0; i < r->nmetrics; i++) {
            char v[64];
            fmt_num(v, sizeof v, r->metrics[i].value);
            puts_(&s, "<tr><td>");
            esc(&s, r->metrics[i].name);
            puts_(&s, "</td><td class=\"num\" data-metric=\"");
            esc(&s, r->metrics[i].name);
            putf(&s, "\">%s</td></tr>\n", v);
        }
        puts_(&s, "</tbody>\n</table>\n");
    }
    puts_(&s, "</section>\n");

    if (r->ncharts) {
        puts_(&s, "<section id=\"charts\">\n<h2>Charts</h2>\n");
        for (size_t c = 0; c < r->ncharts; c++) {
            puts_(&s, "<figure>\n<figcaption>");
            esc(&s, orempty(r->charts[c].title));
            puts_(&s, "</figcaption>\n");
            chart_svg(&s, &r->charts[c], c);
            puts_(&s, "</figure>\n");
        }
        puts_(&s, "</section>\n");
    }
    for (size_t t = 0; t < r->ntables; t++) {
        const sp_report_table *tb = &r->tables[t];
        putf(&s, "<section class=\"table\" id=\"table-%zu\">\n<h2>", t);
        esc(&s, orempty(tb->title));
        puts_(&s, "</h2>\n");
        table_html(&s, tb->columns, tb->ncols, tb->cells, tb->nrows);
        puts_(&s, "</section>\n");
    }
    if (r->nnotes) {
        puts_(&s, "<section id=\"notes\">\n<h2>Notes</h2>\n");
        for (size_t i = 0; i < r->nnotes; i++) {
            puts_(&s, "<p>");
            esc(&s, orempty(r->notes[i]));
            puts_(&s, "</p>\n");
        }
        puts_(&s, "</section>\n");
    }
    puts_(&s, "<footer>generated by sagepipe " SAGEPIPE_VERSION "</footer>\n</body>\n</html>\n");
    if (s.err) {
        free(s.b);
        return sp_err(s.err, "report: cannot build report.html: %s", sp_strerror(s.err));
    }
    *text = s.b;
    if (len) *len = s.n;
    return SP_OK;
}

int sp_report_write(const sp_report *r, const char *dir) {
    if (!dir) return sp_err(SP_EUSAGE, "report: no output directory");
    char *json = NULL, *html = NULL;
    size_t jn = 0, hn = 0;
    char path[PATH_MAX];
    int rc = sp_report_json(r, &json, &jn);
    if (!rc) rc = sp_report_html(r, &html, &hn);
    if (!rc && snprintf(path, sizeof path, "%s/report.json", dir) >= (int)sizeof path)
        rc = sp_err(SP_EUSAGE, "report: directory path too long: %s", dir);
    if (!rc) rc = sp_write_atomic(path, json, jn);
    if (!rc) {
        snprintf(path, sizeof path, "%s/report.html", dir);
        rc = sp_write_atomic(path, html, hn);
    }
    free(json);
    free(html);
    return rc;
}
