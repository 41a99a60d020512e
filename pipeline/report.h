/* report: the run report of sagepipe -- report.json (machine-readable) and
 * report.html (one self-contained page: inline CSS, inline SVG line charts,
 * tables; no external asset, no script) -- from one in-memory description.
 * Ownership: sp_report and everything it points to belong to the caller and
 * are only read; the writers keep no pointer after they return. */
#ifndef SP_REPORT_H
#define SP_REPORT_H

#include <stddef.h>

typedef struct {
    const char *name; /* unique within the report, e.g. "recall@20" */
    double value;     /* non-finite values are written as null / "n/a" */
} sp_report_metric;

typedef struct {
    double x, y;
} sp_report_point;

typedef struct {
    const char *name;            /* legend entry */
    const sp_report_point *pts;  /* (n) in drawing order; non-finite points are skipped */
    size_t n;
} sp_report_series;

/* One line chart: several series on shared axes (e.g. train and validation loss by epoch). */
typedef struct {
    const char *title;
    const char *x_label, *y_label; /* NULL = none */
    const sp_report_series *series;
    size_t nseries;
} sp_report_chart;

/* A table of strings: ncols column names, nrows rows of ncols cells
 * (cells[r * ncols + c]; NULL cells are empty). */
typedef struct {
    const char *title;
    const char *const *columns;
    size_t ncols;
    const char *const *cells;
    size_t nrows;
} sp_report_table;

typedef struct {
    const char *title;     /* e.g. "sagepipe eval" */
    const char *date;      /* the run's date, "YYYY-MM-DD" */
    const char *created_at;/* free text, e.g. ISO time; NULL = omitted */
    const sp_report_metric *metrics;
    size_t nmetrics;
    const sp_report_chart *charts;
    size_t ncharts;
    const sp_report_table *tables; /* e.g. stages: name, wall time, counts */
    size_t ntables;
    const char *const *notes; /* paragraphs (protocol remarks, warnings) */
    size_t nnotes;
} sp_report;

/* JSON text of the report (one line plus '\n'):
 *   {"format":"sagepipe-report","format_version":1,"title":…,"date":…,
 *    "created_at":…,"metrics":{"name":value,…},
 *    "charts":[{"title":…,"x_label":…,"y_label":…,
 *               "series":[{"name":…,"points":[[x,y],…]}]}],
 *    "tables":[{"title":…,"columns":[…],"rows":[[…],…]}],"notes":[…]}
 * Metrics keep their order; non-finite numbers are null.
 * *text is malloc'ed (caller frees). SP_EINPUT for a missing title/date, a
 * metric without a name or a repeated metric name, a NULL array with a
 * non-zero count; SP_ENOMEM. */
int sp_report_json(const sp_report *r, char **text, size_t *len);

/* The HTML page (UTF-8, well-formed: every element closed, void elements
 * self-closed, all text and attribute values escaped). Metric values are
 * shown with "%.6g". *text is malloc'ed. Errors as for sp_report_json. */
int sp_report_html(const sp_report *r, char **text, size_t *len);

/* Writes dir/report.json and dir/report.html, each via a temporary file
 * and rename (sp_write_atomic); dir must exist. SP_EIO naming the file. */
int sp_report_write(const sp_report *r, const char *dir);

#endif
