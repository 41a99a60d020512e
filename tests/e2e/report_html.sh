#!/usr/bin/env bash
# report_html: the run report renders in a real browser. tests/report_sample.c
# writes report.json/report.html (real metric calls on synthetic data); headless
# Chromium loads the page from disk: the DOM it builds holds the SVG charts with
# their polylines and every metric value of report.json (as "%.6g"), the page
# loads nothing from elsewhere, and a screenshot is a non-empty PNG.
# Needs the Debian package chromium (tools/install-deps.sh --optional installs
# it; tried here when running as root); without it the test is skipped (77).
. "$(dirname "$0")/lib.sh" "$@"
SRC=${SP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SAMPLE=${SP_REPORT_SAMPLE:-$(dirname "$SAGEPIPE")/report_sample}
[ -x "$SAMPLE" ] || fail "report_sample program not found ($SAMPLE); build it with cmake"

find_chromium() {
    local c
    for c in chromium chromium-browser google-chrome; do
        command -v "$c" >/dev/null && { command -v "$c"; return 0; }
    done
    return 1
}
CHROMIUM=$(find_chromium) || {
    if [ "$(id -u)" = 0 ]; then
        echo "report_html: chromium not found; trying tools/install-deps.sh --optional" >&2
        "$SRC/tools/install-deps.sh" --optional >&2 || true
    fi
    CHROMIUM=$(find_chromium) || { echo "SKIP: chromium is not installed and could not be installed" >&2; exit 77; }
}

REP=$E2E_TMP/report
mkdir -p "$REP"
"$SAMPLE" "$REP" || fail "report_sample failed"

# Headless Chromium as root needs --no-sandbox; its own profile dir keeps runs apart.
browse() {
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --no-first-run --user-data-dir="$E2E_TMP/profile" "$@" "file://$REP/report.html"
}

t_dom() {
    browse --dump-dom >"$E2E_TMP/dom.html" 2>"$E2E_TMP/chromium.err" || {
        tail -5 "$E2E_TMP/chromium.err"
        fail "chromium --dump-dom failed"
    }
    python3 - "$REP/report.json" "$E2E_TMP/dom.html" <<'EOF'
import html, json, re, sys
rep = json.load(open(sys.argv[1]))
dom = open(sys.argv[2], encoding="utf-8").read()
def need(cond, what):
    if not cond:
        sys.exit("DOM check failed: " + what)
need("<svg" in dom, "no <svg> element")
nseries = sum(len(c["series"]) for c in rep["charts"])
lines = re.findall(r'<polyline[^>]*points="([^"]*)"', dom)
need(len(lines) == nseries, "%d polylines, report.json has %d series" % (len(lines), nseries))
for pts, s in zip(lines, [s for c in rep["charts"] for s in c["series"]]):
    n = len([p for p in s["points"] if p[0] is not None and p[1] is not None])
    need(len(pts.split()) == n, "series %r: %d points drawn, %d in report.json" % (s["name"], len(pts.split()), n))
need(len(rep["metrics"]) >= 5, "too few metrics in report.json")
for name, value in rep["metrics"].items():
    shown = "n/a" if value is None else "%.6g" % value
    cell = 'data-metric="%s">%s</td>' % (html.escape(name, quote=False).replace("\"", "&quot;"), shown)
    need(cell in dom, "metric %s = %s not in the DOM as %s" % (name, shown, cell))
for c in rep["charts"]:
    for s in c["series"]:
        need(">%s</text>" % html.escape(s["name"], quote=False) in dom, "legend entry %r missing" % s["name"])
need(html.escape(rep["title"], quote=False) in dom, "title missing")
need("<b>" not in dom, "note text was not escaped")
need(not re.search(r'(src|href)="(https?:)?//', dom), "page references an external asset")
EOF
}
check "DOM holds the charts and every metric value" t_dom

t_screenshot() {
    (cd "$E2E_TMP" && browse --window-size=1000,1600 --screenshot="$E2E_TMP/shot.png") \
        >"$E2E_TMP/shot.log" 2>&1 || { tail -5 "$E2E_TMP/shot.log"; fail "chromium --screenshot failed"; }
    [ -s "$E2E_TMP/shot.png" ] || fail "no screenshot written"
    python3 - "$E2E_TMP/shot.png" <<'EOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
if b[:8] != b"\x89PNG\r\n\x1a\n" or b[12:16] != b"IHDR":
    sys.exit("not a PNG file")
w, h = struct.unpack(">II", b[16:24])
if (w, h) != (1000, 1600) or len(b) < 10000:
    sys.exit("unexpected screenshot: %dx%d, %d bytes" % (w, h, len(b)))
EOF
}
check "screenshot is a non-empty PNG" t_screenshot

finish
