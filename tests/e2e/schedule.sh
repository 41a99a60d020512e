#!/usr/bin/env bash
# schedule: jobs/airflow_dag.py compiles and defines the DAG (one task per
# built stage, linear, in DAG order, `sagepipe job STAGE --date {{ ds }}` under
# mpirun, then a `run` that applies retention; retries); jobs/crontab.example's lines are 5 time fields + a command.
# With Airflow installed the DAG is loaded by Airflow itself; without it, by a
# minimal stand-in `airflow` package written into the test's temp dir.
. "$(dirname "$0")/lib.sh" "$@"
SRC=${SP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
DAG=$SRC/jobs/airflow_dag.py
CRON=$SRC/jobs/crontab.example

t_compile() {
    # python3 -m py_compile, with the bytecode in the temp dir (not beside the source)
    python3 -c 'import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)' \
        "$DAG" "$E2E_TMP/dag.pyc" 2>&1 || fail "py_compile"
}
check "airflow_dag.py compiles" t_compile

# The stand-in: DAG as a context manager collecting operators, BashOperator keeping its
# arguments and >> recording edges. Only what the DAG file uses.
write_shim() {
    mkdir -p "$1/airflow/operators"
    cat >"$1/airflow/__init__.py" <<'PY'
class DAG:
    current = None
    def __init__(self, dag_id, **kw):
        self.dag_id, self.kw, self.tasks = dag_id, kw, []
    def __enter__(self):
        DAG.current = self
        return self
    def __exit__(self, *a):
        DAG.current = None
PY
    : >"$1/airflow/operators/__init__.py"
    cat >"$1/airflow/operators/bash.py" <<'PY'
from airflow import DAG
class BashOperator:
    def __init__(self, task_id, bash_command, **kw):
        assert DAG.current is not None, "operator created outside a DAG context"
        self.task_id, self.bash_command, self.kw = task_id, bash_command, kw
        self.upstream, self.downstream = [], []
        DAG.current.tasks.append(self)
    def __rshift__(self, other):
        self.downstream.append(other)
        other.upstream.append(self)
        return other
PY
}

t_dag() {
    local shim=$E2E_TMP/shim
    write_shim "$shim"
    PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=$shim SAGEPIPE_NP=3 python3 - "$DAG" <<'PY' || fail "DAG check"
import importlib.util, sys
spec = importlib.util.spec_from_file_location("dagmod", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
dag = m.dag
want = ["ingest", "graph", "walks", "train", "infer", "export", "eval", "publish", "retention"]
ids = [t.task_id for t in dag.tasks]
assert ids == want, "tasks %s, want %s" % (ids, want)
for i, t in enumerate(dag.tasks):
    up = [u.task_id for u in t.upstream]
    assert up == ([want[i - 1]] if i else []), "%s: upstream %s" % (t.task_id, up)
    c = t.bash_command
    assert c.startswith("mpirun -np 3 "), c
    verb = " run " if t.task_id == "retention" else " job %s " % t.task_id
    assert verb in c and c.endswith("--date {{ ds }}") and " --config " in c, c
    env = t.kw.get("env", {})
    assert env.get("OMPI_ALLOW_RUN_AS_ROOT") == "1" and env.get("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM") == "1", env
    assert t.kw.get("append_env") is True, t.kw
args = dag.kw["default_args"]
assert args["retries"] >= 1 and args["retry_delay"].total_seconds() > 0, args
assert dag.kw.get("max_active_runs") == 1 and dag.kw.get("catchup") is False, dag.kw
print("dag ok:", " >> ".join(ids))
PY
}
t_airflow() {
    local home=$E2E_TMP/airflow
    mkdir -p "$home/dags" && cp "$DAG" "$home/dags/"
    AIRFLOW_HOME=$home AIRFLOW__CORE__LOAD_EXAMPLES=False airflow db migrate >/dev/null 2>&1 ||
        AIRFLOW_HOME=$home airflow db init >/dev/null 2>&1 || fail "airflow db"
    AIRFLOW_HOME=$home AIRFLOW__CORE__LOAD_EXAMPLES=False airflow dags list 2>&1 | grep -q sagepipe_daily ||
        fail "airflow does not list sagepipe_daily"
    AIRFLOW_HOME=$home AIRFLOW__CORE__LOAD_EXAMPLES=False airflow tasks list sagepipe_daily --tree 2>&1 | tee "$E2E_OUT"
    grep -q publish "$E2E_OUT" || fail "task tree"
}
if python3 -c 'import airflow' 2>/dev/null && command -v airflow >/dev/null; then
    check "Airflow loads the DAG" t_airflow
else
    echo "(Airflow is not installed: checking the DAG with a stand-in airflow package)"
fi
check "the DAG has one task per stage, linear, with retries and the MPI env" t_dag

t_cron() {
    local n=0 line
    while IFS= read -r line; do
        case $line in '' | '#'*) continue ;; esac
        # environment assignments (NAME=value) are allowed
        if [[ $line =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; then continue; fi
        read -r -a f <<<"$line"
        [ "${#f[@]}" -ge 6 ] || fail "not 5 time fields + command: $line"
        local i
        for i in 0 1 2 3 4; do
            [[ ${f[$i]} =~ ^(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*$ ]] ||
                fail "time field $((i + 1)) '${f[$i]}' of: $line"
        done
        # an unescaped % ends a cron command: each % must be written \%
        [[ ! $line =~ (^|[^\\])% ]] || fail "unescaped % in: $line"
        n=$((n + 1))
    done <"$CRON"
    [ $n -ge 1 ] || fail "no cron entry"
    grep -Eq '^[^#].*flock -n .*sagepipe run .*--date' "$CRON" || fail "no flock-protected sagepipe run line"
    grep -Eq '^[^#].*sagepipe run .*>>.*\.log 2>&1' "$CRON" || fail "the run line does not log to a file"
    # the date expression, unescaped as cron would, gives yesterday's date
    local expr
    expr=$(grep -Eo 'D=\$\(date[^)]*\)' "$CRON" | head -n 1 | sed 's/\\%/%/g')
    [ -n "$expr" ] || fail "no D=\$(date ...) in the run line"
    local d
    d=$(eval "$expr; echo \$D")
    [ "$d" = "$(date -u -d yesterday +%F)" ] || fail "date expression gives '$d'"
}
check "crontab.example: 5 time fields + command, flock, log file, yesterday" t_cron
finish
