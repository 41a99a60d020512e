"""sagepipe as an Airflow DAG: one BashOperator per stage, in DAG order.

Each task runs `mpirun -np N sagepipe job STAGE --date {{ ds }}` (docs/OPERATIONS.md): `ds` is the
start of the DAG run's data interval, so the daily run that Airflow starts after midnight processes
the day before. A retried or cleared task reruns one stage (a stage whose marker already matches is
skipped); sagepipe's per-date lock makes a second task of the same date exit 4 instead of racing it
(max_active_runs=1 keeps Airflow from trying).

Settings come from the worker's environment:
  SAGEPIPE_BIN      the binary (default: sagepipe on PATH)
  SAGEPIPE_CONFIG   the INI file (default /srv/sagepipe/prod.ini)
  SAGEPIPE_NP       MPI ranks (default 4)
  SAGEPIPE_MPIRUN   mpirun and its options (default "mpirun"; e.g. "mpirun --hostfile /etc/sagepipe/hosts")
Workers that run as root need OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 for
Open MPI; they are set below in each task's env (append_env keeps the worker's own environment), and
`--oversubscribe` is needed only when N exceeds the worker's cores.

Exit codes: 2 (config), 3 (input) and 5 (quality gate) do not go away on a retry; 4 (an external
system: Kafka, disk, an MPI peer, the date locked by another run) may. Retries are cheap either way:
a retry reruns the one stage.
"""
import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

SAGEPIPE = os.environ.get("SAGEPIPE_BIN", "sagepipe")
CONFIG = os.environ.get("SAGEPIPE_CONFIG", "/srv/sagepipe/prod.ini")
NP = int(os.environ.get("SAGEPIPE_NP", "4"))
MPIRUN = os.environ.get("SAGEPIPE_MPIRUN", "mpirun")

# DAG order (DESIGN section 4). The users stage is not built yet; export reads infer directly while
# export.users != users. Add "users" after "infer" once it exists.
STAGES = ["ingest", "graph", "walks", "train", "infer", "export", "eval", "publish"]

MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OPENBLAS_NUM_THREADS": "1",
}

default_args = {
    "owner": "sagepipe",
    "retries": 2,
    "retry_delay": timedelta(minutes=10),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=12),
}

with DAG(
    dag_id="sagepipe_daily",
    description="nightly PinSage/OmniSage embeddings as LMDB shards",
    schedule="30 2 * * *",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["sagepipe"],
) as dag:
    previous = None
    for stage in STAGES:
        task = BashOperator(
            task_id=stage,
            bash_command=(
                f"{MPIRUN} -np {NP} {SAGEPIPE} job {stage} --config {CONFIG} --date {{{{ ds }}}}"
            ),
            env=MPI_ENV,
            append_env=True,
        )
        if previous is not None:
            previous >> task
        previous = task
    # Last: `run` of the whole date. Every stage is up to date, so all are skipped (a cheap check of
    # the markers), and a successful run applies retention (pipeline.keep_days), which `job` never does.
    previous >> BashOperator(
        task_id="retention",
        bash_command=f"{MPIRUN} -np {NP} {SAGEPIPE} run --config {CONFIG} --date {{{{ ds }}}}",
        env=MPI_ENV,
        append_env=True,
    )
