# tests/e2e/lib.sh — helpers for sagepipe end-to-end tests.  Source it from a
# test script as:   . "$(dirname "$0")/lib.sh" "$@"
# $1 is the sagepipe binary.  Provides:
#   SAGEPIPE              absolute path of the binary
#   E2E_TMP               scratch directory, removed on exit (kept if E2E_KEEP=1)
#   fail MSG...           print "FAIL: MSG" to stderr and exit 1
#   expect_exit WANT CMD  run CMD (stdout -> $E2E_OUT, stderr -> $E2E_ERR); fail,
#                         showing the stderr tail, unless it exits WANT
#   json_get FILE KEYPATH print a value of a JSON file ("counts.rows_events",
#                         list items by index: "outputs.0.file"); exit 1 if absent
#   sp ARGS...            run the binary (one process)
#   mpi N ARGS...         mpirun --oversubscribe -np N ARGS with the env sagepipe needs
#   write_config FILE INPUT_DIR WORK_DIR   minimal INI
#   check NAME FUNC [ARGS]  run FUNC in a subshell, print "ok NAME" or "FAIL NAME"
#   finish                print "N passed, M failed" and exit non-zero on failures

SAGEPIPE=${1:?usage: $0 path/to/sagepipe}
[ -x "$SAGEPIPE" ] || { echo "sagepipe binary '$SAGEPIPE' is not executable" >&2; exit 2; }
case $SAGEPIPE in /*) ;; *) SAGEPIPE=$PWD/$SAGEPIPE ;; esac
export SAGEPIPE

E2E_TMP=$(mktemp -d /tmp/sp_e2e_XXXXXX) || { echo "mktemp failed" >&2; exit 2; }
E2E_OUT=$E2E_TMP/last.stdout
E2E_ERR=$E2E_TMP/last.stderr
# Subshells (check) do not inherit the EXIT trap, so this runs once, in the script.
# E2E_KEEP=1 keeps the directory for debugging.
if [ -n "${E2E_KEEP:-}" ]; then
    trap 'echo "kept $E2E_TMP" >&2' EXIT
else
    trap 'rm -rf "$E2E_TMP"' EXIT
fi
trap 'exit 130' INT TERM

E2E_PASSED=0
E2E_FAILED=0
E2E_FAILED_NAMES=()

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

expect_exit() {
    local want=$1 rc=0
    shift
    "$@" >"$E2E_OUT" 2>"$E2E_ERR" || rc=$?
    if [ "$rc" != "$want" ]; then
        {
            echo "expected exit $want, got $rc: $*"
            echo "--- stderr (tail) ---"
            tail -n 15 "$E2E_ERR"
            echo "---"
        } >&2
        fail "exit code $rc != $want"
    fi
}

json_get() {
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    if isinstance(d, list):
        d = d[int(k)]
    elif isinstance(d, dict) and k in d:
        d = d[k]
    else:
        sys.exit("json_get: %s has no %s" % (sys.argv[1], sys.argv[2]))
print(d if isinstance(d, str) else json.dumps(d))
' "$1" "$2"
}

sp() {
    OPENBLAS_NUM_THREADS=1 "$SAGEPIPE" "$@"
}

mpi() {
    local n=$1
    shift
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 \
        OMPI_MCA_rmaps_base_oversubscribe=1 mpirun --oversubscribe -np "$n" "$@"
}

write_config() {
    printf '[input]\ndir = %s\n\n[pipeline]\nwork_dir = %s\n' "$2" "$3" >"$1"
}

# check NAME FUNC [ARGS...]: one line per check; details of a failure follow it, indented.
check() {
    local name=$1 log=$E2E_TMP/check.log rc=0 t0 t
    shift
    t0=$(date +%s%N)
    ("$@") >"$log" 2>&1 || rc=$?
    t=$((($(date +%s%N) - t0) / 1000000))
    if [ "$rc" = 0 ]; then
        echo "ok   $name ($((t / 1000)).$((t % 1000 / 100))s)"
        E2E_PASSED=$((E2E_PASSED + 1))
    else
        echo "FAIL $name ($((t / 1000)).$((t % 1000 / 100))s)"
        sed 's/^/     | /' "$log"
        E2E_FAILED=$((E2E_FAILED + 1))
        E2E_FAILED_NAMES+=("$name")
    fi
}

finish() {
    if [ "$E2E_FAILED" -gt 0 ]; then
        echo "failed: ${E2E_FAILED_NAMES[*]}"
    fi
    echo "$E2E_PASSED passed, $E2E_FAILED failed"
    [ "$E2E_FAILED" = 0 ]
}
