"""
Run example DAGs with ``dag.test()`` in a separate Python process with its own ``AIRFLOW_HOME``.

Airflow reads ``AIRFLOW_HOME`` and its configuration once, at import, and other test modules import
Airflow early in the pytest process. So the end-to-end tests run the DAGs here, in a child process that
is started with the environment it needs (a temporary ``AIRFLOW_HOME``, whose SQLite DB it migrates when
it starts, the ``dags_examples`` folder, ``AIRFLOW_CONN_QSTASH_DEFAULT`` pointing at an emulator that runs in the pytest
process and is reached over loopback).

The child serves one request per line, so Airflow is imported and its in-process execution API started
once for the whole session rather than once per DAG run:

* request (stdin, one JSON object a line): ``{"dag_id": ..., "logical_date": "<ISO-8601>" | null,
  "run_conf": {...}, "no_retries": bool, "env": {...}}``. Without ``logical_date`` the run gets
  ``dag.test()``'s default (now); ``null`` asks for a run without a logical date, hence without a data
  interval. ``env`` holds environment variables set for this run only (e.g. another
  ``AIRFLOW_CONN_QSTASH_DEFAULT``: the task and its trigger run in this process and read it there).
* answer (the original stdout, one JSON object a line): the run's ``state``, ``run_type``,
  ``logical_date``, ``data_interval_start``/``_end``, per task its ``state``, ``try_number`` and XCom
  ``return_value``, the run's ``seconds`` and the Airflow output written during the run (``log``); or
  ``{"error": traceback}`` when ``dag.test()`` itself raised.

Everything Airflow prints (stdout and stderr) goes to the log file given as the only argument.

:class:`DagTestRunner` is the parent's side.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any

RUNNER_SCRIPT = Path(__file__).resolve()
NOT_SET = object()
LOG_SLICE_CHARS = 200_000


class DagTestRunner:
    """
    The parent's side: start the child, send it runs, read the answers.

    :param env: the child's complete environment (``AIRFLOW_HOME`` etc. must be in it).
    :param log_file: where the child writes everything Airflow prints.
    :param timeout: seconds to wait for one run's answer.
    """

    def __init__(self, env: dict[str, str], log_file: Path, *, timeout: float = 180.0) -> None:
        self.log_file = log_file
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [sys.executable, str(RUNNER_SCRIPT), str(log_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )

    def run(
        self,
        dag_id: str,
        *,
        logical_date: Any = NOT_SET,
        run_conf: dict[str, Any] | None = None,
        no_retries: bool = False,
        env: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """
        Run ``dag_id`` once with ``dag.test()``; the answer (see the module docstring).

        :param env: environment variables for this run only, over the runner's own.
        """
        request: dict[str, Any] = {"dag_id": dag_id, "run_conf": run_conf, "no_retries": no_retries, "env": env or {}}
        if logical_date is not NOT_SET:
            request["logical_date"] = None if logical_date is None else logical_date.isoformat()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the dag.test runner exited with {self.proc.returncode}:\n{self.log_tail()}")
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = _readline(self.proc.stdout, self.timeout)
        if not line:
            raise RuntimeError(f"the dag.test runner gave no answer for {dag_id}:\n{self.log_tail()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"dag.test({dag_id}) raised:\n{answer['error']}\n{self.log_tail()}")
        return answer

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError as err:
            return f"({self.log_file}: {err.strerror})"

    def close(self) -> None:
        """Close the child's stdin (it exits) and wait; kill it if it does not."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _readline(stream: IO[str], timeout: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError(f"no answer from the dag.test runner within {timeout:.0f} s")
    return stream.readline()


# -- the child ----------------------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def run_once(request: dict[str, Any]) -> dict[str, Any]:
    """Run one request with its ``env`` set, then put the environment back as it was."""
    overrides: dict[str, str] = request.get("env") or {}
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        return run_dag_test(request)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_dag_test(request: dict[str, Any]) -> dict[str, Any]:
    """Parse the DAGs folder afresh, run one DAG with ``dag.test()``, read back its states and XComs."""
    import pendulum
    from airflow.utils.session import create_session

    from tests.support.airflow_versions import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = _testable(bag, bag.dags[request["dag_id"]])
    if request.get("no_retries"):
        for task in dag.tasks:
            task.retries = 0
    kwargs: dict[str, Any] = {"run_conf": request.get("run_conf")}
    if "logical_date" in request:
        logical = request["logical_date"]
        # Airflow 2 names it execution_date, and has no run without one
        kwargs["logical_date" if AIRFLOW_V_3_0_PLUS else "execution_date"] = (
            None if logical is None else pendulum.parse(logical)
        )
    elif AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS:
        kwargs["logical_date"] = pendulum.now("UTC")  # Airflow 3.0's default is no logical date, later ones now
    started = time.monotonic()
    dag_run = dag.test(**kwargs)
    seconds = time.monotonic() - started
    tasks: dict[str, dict[str, Any]] = {}
    with create_session() as session:
        for ti in dag_run.get_task_instances(session=session):
            tasks[ti.task_id] = {
                "state": None if ti.state is None else str(ti.state),
                "try_number": ti.try_number,
                "xcom": _return_value(session, dag_run.dag_id, dag_run.run_id, ti.task_id),
            }
    return {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "state": str(dag_run.state),
        "run_type": str(dag_run.run_type),
        "logical_date": _iso(dag_run.logical_date),
        "data_interval_start": _iso(dag_run.data_interval_start),
        "data_interval_end": _iso(dag_run.data_interval_end),
        "tasks": tasks,
        "seconds": round(seconds, 3),
    }


def _testable(bag: Any, dag: Any) -> Any:
    """
    ``dag`` ready for ``dag.test()``. Airflow 3.0 keeps ``test()`` on the scheduler's DAG class; 3.1 and 3.2
    need the DAG serialized in the DB first (what ``airflow dags test`` does; 3.3's ``test()`` does it itself).
    """
    if not hasattr(dag, "test"):  # Airflow 3.0
        from airflow.models.dag import DAG as SchedulerDAG

        return SchedulerDAG.from_sdk_dag(dag)
    try:
        from airflow.dag_processing.dagbag import sync_bag_to_db
    except ImportError:
        try:
            from airflow.models.dagbag import sync_bag_to_db  # type: ignore[attr-defined,no-redef]
        except ImportError:  # Airflow 2: dag.test() writes the DAG itself
            return dag
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    return dag


def _return_value(session: Any, dag_id: str, run_id: str, task_id: str) -> Any:
    """
    A task's XCom ``return_value``. ``get_many`` gives a ``Select`` on Airflow 3.1+ and a ``Query`` before;
    Airflow 2's ``XCom`` rows carry the value already deserialized (``init_on_load``).
    """
    from sqlalchemy.sql import Select

    try:
        from airflow.models.xcom import XComModel
    except ImportError:  # Airflow 2
        from airflow.models.xcom import XCom

        row = XCom.get_many(run_id=run_id, key="return_value", task_ids=task_id, dag_ids=dag_id, session=session)
        return None if (first := row.first()) is None else first.value
    found = XComModel.get_many(run_id=run_id, key="return_value", task_ids=task_id, dag_ids=dag_id)
    row = session.scalars(found).first() if isinstance(found, Select) else found.with_session(session).first()
    return None if row is None else XComModel.deserialize_value(row)


def main(log_path: str) -> int:
    # Answers go to the original stdout; everything else that writes to fd 1 or 2 goes to the log.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the life of the process
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    # The same call as `airflow db migrate`, without starting a second Airflow process.
    from airflow.utils.db import upgradedb

    # The child runs as a script (sys.path[0] is tests/integration/e2e): the repository root makes `tests` importable.
    sys.path.insert(0, str(RUNNER_SCRIPT.parents[3]))
    from tests.support.airflow_versions import AIRFLOW_V_3_1_PLUS

    upgradedb()
    if not AIRFLOW_V_3_1_PLUS:
        # Airflow 2's and 3.0's migrations load Alembic's logging file, which disables the loggers that exist and
        # adds a root handler: put Airflow's logging back. Their dag.test() gives the task logger a console
        # handler of its own, so the task logger stops propagating to the root one too (each line once).
        import logging

        from airflow.logging_config import configure_logging

        configure_logging()
        logging.getLogger("airflow.task").propagate = False
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        log.flush()
        start_offset = os.path.getsize(log_path)
        # The env's values (a connection with its token) stay out of the log; its names are enough.
        shown = dict(request, env=sorted(request.get("env") or {}))
        print(f"==== dag.test request: {json.dumps(shown)}", flush=True)
        try:
            answer = run_once(request)
        except Exception:
            answer = {"error": traceback.format_exc()}
        sys.stdout.flush()
        sys.stderr.flush()
        with open(log_path, errors="replace") as produced:
            produced.seek(start_offset)
            answer["log"] = produced.read()[-LOG_SLICE_CHARS:]
        answers.write(json.dumps(answer, default=str) + "\n")
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1])
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's shutdown: Airflow's exit handlers and threads (the in-process execution API)
    # take several seconds to wind down, and this AIRFLOW_HOME is thrown away anyway.
    os._exit(code)
