"""
A real Airflow 3 (API server, scheduler, DAG processor, triggerer) for the live tests and for people.

:class:`LiveAirflow` runs ``airflow db migrate`` and then starts the four components as separate
``airflow`` processes from this virtualenv, each in its own process group (session), in a throw-away
``AIRFLOW_HOME``: SQLite, LocalExecutor, simple auth manager, the example DAGs, the API server on a free
loopback port. Starting the components ourselves rather than through ``airflow standalone`` gives one
log file per component and lets all four boot in parallel right after the migration.

Scaled out: another executor and database (``executor``, ``database_url``), and any set of
:class:`Component` processes instead of the four, e.g. two triggerers and two Celery workers, each
with its own name and environment; :meth:`LiveAirflow.stop_component` stops one of them mid-run.

:meth:`LiveAirflow.stop` ends every process it started and all their descendants (task workers,
trigger runners, API server workers): SIGTERM to each process group and each descendant, a grace
period, then SIGKILL. It is idempotent, and also registered with ``atexit``.

:class:`AirflowAPI` is a small client of the public REST API, authenticated like the UI: ``POST
/auth/token`` with the admin's user name and password gives a JWT sent as ``Authorization: Bearer``.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil

REPO_ROOT = Path(__file__).resolve().parents[3]
DAGS_FOLDER = REPO_ROOT / "dags_examples"
VENV_BIN = Path(sys.executable).parent
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: No log servers (they bind 0.0.0.0:8793/8794, shared by every Airflow on the machine): tasks and triggers
#: run here, so the API server reads their logs from AIRFLOW_HOME/logs directly.
COMPONENT_ARGS = {"scheduler": ("--skip-serve-logs",), "triggerer": ("--skip-serve-logs",)}
EXAMPLE_DAG_IDS = (
    "qstash_scheduled_cleanup",
    "qstash_backfill_cleanup",
    "qstash_on_demand_cancel",
    "qstash_on_demand_cancel_deferrable",
)
ADMIN_USER = "admin"
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
#: The components ``/api/v2/monitor/health`` reports on; each must be healthy before a test starts.
HEALTH_PARTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


@dataclass(frozen=True)
class Component:
    """
    One ``airflow`` process of a :class:`LiveAirflow`.

    :param name: its name (log file ``<name>.log``), unique within the deployment.
    :param args: the ``airflow`` sub-command and its options, e.g. ``("celery", "worker", "-c", "2")``.
    :param env: environment for this process only, over the deployment's.
    """

    name: str
    args: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


#: The four processes of the default deployment.
DEFAULT_COMPONENTS = tuple(Component(name, (name, *COMPONENT_ARGS.get(name, ()))) for name in COMPONENTS)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file, or a note that it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        return f"({path}: {err.strerror})"
    return "\n".join(text.splitlines()[-lines:])


class AirflowError(RuntimeError):
    """Airflow did not start, or an API call failed."""


class AirflowAPI:
    """
    The public REST API (``/api/v2``) with a JWT from ``POST /auth/token``, as the UI gets one.

    :param base_url: ``http://127.0.0.1:PORT`` of the API server.
    :param username: simple auth manager user.
    :param password: its password.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        answer = self.client.post("/auth/token", json={"username": username, "password": password})
        if answer.status_code not in (200, 201):
            raise AirflowError(f"POST /auth/token failed: {answer.status_code} {answer.text[:300]}")
        self.client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def close(self) -> None:
        self.client.close()

    def call(self, method: str, path: str, *, json_body: Any = None, params: Any = None, ok: Iterable[int] = ()) -> Any:
        """One request; the parsed JSON answer, or :class:`AirflowError` on an unexpected status."""
        answer = self.client.request(method, path, json=json_body, params=params)
        if not (200 <= answer.status_code < 300 or answer.status_code in ok):
            raise AirflowError(f"{method} {path} failed: {answer.status_code} {answer.text[:1000]}")
        return answer.json() if answer.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params or None)

    # -- DAGs and runs -------------------------------------------------------------------------

    @staticmethod
    def run_path(dag_id: str, run_id: str) -> str:
        return f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"

    def dag_ids(self) -> set[str]:
        return {dag["dag_id"] for dag in self.get("/api/v2/dags", limit=100)["dags"]}

    def dag(self, dag_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/api/v2/dags/{quote(dag_id, safe='')}")
        return result

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"/api/v2/dags/{quote(dag_id, safe='')}", json_body={"is_paused": paused})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """Trigger a manual run (``logical_date`` null, as for a DAG without schedule); its run id."""
        body = {"logical_date": None, "conf": dict(conf or {})}
        run = self.call("POST", f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns", json_body=body)
        return str(run["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(self.run_path(dag_id, run_id))
        return result

    def runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        answer = self.get(f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns", limit=100, **params)
        runs: list[dict[str, Any]] = answer["dag_runs"]
        return runs

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"{self.run_path(dag_id, run_id)}/taskInstances/{quote(task_id, safe='')}")
        return result

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, mapped ones included (one per map index)."""
        found: list[dict[str, Any]] = []
        path = f"{self.run_path(dag_id, run_id)}/taskInstances"
        for _ in range(100):  # pages of 100: a bound far above any live test's run
            page = self.get(path, limit=100, offset=len(found), order_by="id")["task_instances"]
            found += page
            if len(page) < 100:
                return found
        raise AirflowError(f"more than 10,000 task instances in {dag_id}/{run_id}")

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """The (deserialized) value of one XCom entry (of one mapped task instance with ``map_index``)."""
        ti_path = f"{self.run_path(dag_id, run_id)}/taskInstances/{quote(task_id, safe='')}"
        entry = self.get(f"{ti_path}/xcomEntries/{quote(key, safe='')}", deserialize=True, map_index=map_index)
        value = entry["value"]
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        """The task's log as text (the structured entries' ``event`` lines)."""
        path = f"{self.run_path(dag_id, run_id)}/taskInstances/{quote(task_id, safe='')}/logs/{try_number}"
        params = {"full_content": True, "map_index": map_index}
        answer = self.client.get(path, params=params, headers={"Accept": "application/json"})
        if answer.status_code != 200:
            return f"(no log: {answer.status_code})"
        content = answer.json().get("content")
        if isinstance(content, list):
            return "\n".join(
                str(entry.get("event", entry)) if isinstance(entry, dict) else str(entry) for entry in content
            )
        return str(content)

    def wait_run(
        self,
        dag_id: str,
        run_id: str,
        *,
        timeout: float = 120.0,
        interval: float = 0.5,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll the run until it is ``success`` or ``failed``; the run. ``on_poll`` sees each answer."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if on_poll is not None:
                on_poll(run)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                raise AirflowError(f"run {dag_id}/{run_id} still {run['state']!r} after {timeout:.0f} s")
            time.sleep(interval)

    def create_backfill(self, body: Mapping[str, Any], *, attempts: int = 15, pause: float = 1.0) -> dict[str, Any]:
        """
        ``POST /api/v2/backfills`` (what the UI's Backfill dialog sends); the new backfill.

        On SQLite, Airflow answers ``503 Database is locked`` when another component (the scheduler's
        heartbeat, the DAG processor) writes while the backfill's runs are created. Airflow then removes
        the partial backfill and asks the caller to retry, so this retries, after checking that nothing
        of the failed attempt is left. Any other answer, or a leftover backfill, is an
        :class:`AirflowError`.
        """
        for attempt in range(1, attempts + 1):
            answer = self.client.post("/api/v2/backfills", json=dict(body))
            if not (answer.status_code == 503 and "locked" in answer.text.lower()):
                break
            leftover = self.get("/api/v2/backfills", dag_id=body["dag_id"])["backfills"]
            if leftover:
                raise AirflowError(f"a locked backfill creation left backfill(s) behind: {leftover}")
            if attempt < attempts:
                time.sleep(pause)
        if not 200 <= answer.status_code < 300:
            raise AirflowError(f"POST /api/v2/backfills failed: {answer.status_code} {answer.text[:1000]}")
        result: dict[str, Any] = answer.json()
        return result

    def test_connection(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v2/connections/test`` (what the connection form's Test button sends)."""
        result: dict[str, Any] = self.call("POST", "/api/v2/connections/test", json_body=dict(body))
        return result


class LiveAirflow:
    """
    Real Airflow 3 components in a temporary ``AIRFLOW_HOME``, with ``qstash_default`` from an env var.

    :param home: the ``AIRFLOW_HOME`` to create (removed by :meth:`stop` when ``keep_home`` is false).
    :param connections: ``conn_id -> AIRFLOW_CONN_* value`` (JSON) for every component.
    :param log_dir: where each component writes ``<component>.log``; default ``home/component-logs``.
    :param port: API server port; default a free one.
    :param extra_env: more environment for the components (``AIRFLOW__SECTION__KEY`` settings).
    :param keep_home: keep the ``AIRFLOW_HOME`` after :meth:`stop`.
    :param executor: ``[core] executor``.
    :param database_url: ``[database] sql_alchemy_conn``; default an SQLite file in the home.
    :param components: the processes to start after the migration; default the API server, scheduler,
        DAG processor and triggerer (:data:`DEFAULT_COMPONENTS`).
    :param dag_ids: the DAGs :meth:`start` waits for (parsed and visible in the API).
    """

    def __init__(
        self,
        home: Path,
        *,
        connections: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
        keep_home: bool = True,
        executor: str = "LocalExecutor",
        database_url: str | None = None,
        components: Sequence[Component] = DEFAULT_COMPONENTS,
        dag_ids: Iterable[str] = EXAMPLE_DAG_IDS,
    ) -> None:
        names = [component.name for component in components]
        if len(set(names)) != len(names):
            raise ValueError(f"component names must be unique: {names}")
        self.home = Path(home)
        self.log_dir = Path(log_dir) if log_dir else self.home / "component-logs"
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.connections = dict(connections or {})
        self.extra_env = dict(extra_env or {})
        self.keep_home = keep_home
        self.executor = executor
        self.database_url = database_url or f"sqlite:///{self.home / 'airflow.db'}"
        self.components = {component.name: component for component in components}
        self.dag_ids = frozenset(dag_ids)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.username = ADMIN_USER
        self.password = ""
        self.startup_seconds = 0.0
        self._api: AirflowAPI | None = None
        self._stopped = False

    # -- environment ---------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The components' environment: this one minus any Airflow settings, plus the live config."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
        env["PYTHONUNBUFFERED"] = "1"
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                # Parse quickly: new DAG files every 5 s, every file again every 10 s (next_dagrun follows
                # backfill runs only after a re-parse).
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            }
        )
        for conn_id, value in self.connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = value
        env.update(self.extra_env)
        return env

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> LiveAirflow:
        """Migrate the DB, start the components, wait until healthy and the DAGs (``dag_ids``) are parsed."""
        started = time.monotonic()
        deadline = started + timeout
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        env = self.environment()
        with open(self.log_dir / "db-migrate.log", "wb") as log:
            migrate = subprocess.run(
                [str(VENV_BIN / "airflow"), "db", "migrate"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                start_new_session=True,
                check=False,
            )
        if migrate.returncode != 0:
            raise AirflowError(f"airflow db migrate failed:\n{tail(self.log_dir / 'db-migrate.log')}")
        for component in self.components.values():
            with open(self.log_dir / f"{component.name}.log", "wb") as log:
                self.procs[component.name] = subprocess.Popen(
                    [str(VENV_BIN / "airflow"), *component.args],
                    env={**env, **component.env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.home,
                    start_new_session=True,
                )
        try:
            self._wait_healthy(deadline)
            self.password = self._read_password()
            self._api = AirflowAPI(self.base_url, self.username, self.password)
            self._wait_dags_parsed(deadline)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _check_alive(self) -> None:
        for component, proc in self.procs.items():
            if proc.poll() is not None:
                raise AirflowError(
                    f"airflow {component} exited with code {proc.returncode} during startup.\n{self.log_tails()}"
                )

    def _wait_healthy(self, deadline: float) -> None:
        health: Any = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                health = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
            except (httpx.HTTPError, ValueError):
                health = None
            if isinstance(health, dict) and all(
                isinstance(part, dict) and part.get("status") == "healthy"
                for part in (health.get(name) for name in HEALTH_PARTS)
            ):
                return
            time.sleep(0.5)
        raise AirflowError(f"Airflow not healthy in time (last health: {health!r}).\n{self.log_tails()}")

    def _read_password(self) -> str:
        path = self.home / "simple_auth_manager_passwords.json.generated"
        password: str = json.loads(path.read_text())[self.username]
        return password

    def _wait_dags_parsed(self, deadline: float) -> None:
        found: set[str] = set()
        while time.monotonic() < deadline:
            self._check_alive()
            found = self.api.dag_ids()
            if found >= self.dag_ids:
                return
            time.sleep(0.5)
        raise AirflowError(f"DAGs not parsed in time (found {sorted(found)}).\n{self.log_tails()}")

    @property
    def api(self) -> AirflowAPI:
        if self._api is None:
            raise AirflowError("Airflow is not started")
        return self._api

    def stop(self, grace: float = 8.0) -> None:
        """
        End every started process and its descendants: SIGTERM, ``grace`` seconds, then SIGKILL.

        The home is throw-away, so the grace is short: the scheduler and triggerer exit in ~6 s, but the
        scheduler sometimes waits on an idle LocalExecutor worker forever. The API server (uvicorn) gets
        a second SIGTERM after a second, which makes it exit without its slow graceful shutdown.
        """
        if self._stopped:
            return
        self._stopped = True
        if self._api is not None:
            self._api.close()
        victims: list[psutil.Process] = []
        for proc in self.procs.values():
            try:
                parent = psutil.Process(proc.pid)
                victims += [parent, *parent.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        for proc in self.procs.values():
            _signal_group(proc.pid, signal.SIGTERM)
        for victim in victims:
            _signal_process(victim, signal.SIGTERM)
        if "api-server" in self.procs:
            psutil.wait_procs(victims, timeout=1)
            _signal_group(self.procs["api-server"].pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(victims, timeout=grace)
        for proc in self.procs.values():
            _signal_group(proc.pid, signal.SIGKILL)
        for victim in alive:
            _signal_process(victim, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if not self.keep_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def stop_component(self, name: str, grace: float = 20.0) -> int | None:
        """
        Stop one component mid-run as an orchestrator would: SIGTERM to its process group and every
        descendant, ``grace`` seconds to shut down, then SIGKILL. Its exit code (``None`` if it was killed).
        """
        proc = self.procs[name]
        try:
            parent = psutil.Process(proc.pid)
            victims = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            victims = []
        _signal_group(proc.pid, signal.SIGTERM)
        for victim in victims:
            _signal_process(victim, signal.SIGTERM)
        _, alive = psutil.wait_procs(victims, timeout=grace)
        if not alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return proc.wait(timeout=5)
        _signal_group(proc.pid, signal.SIGKILL)
        for victim in alive:
            _signal_process(victim, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        return None

    def leftover_processes(self) -> list[psutil.Process]:
        """Processes of the started components' sessions that are still alive (should be none after stop)."""
        sessions = {proc.pid for proc in self.procs.values()}
        leftovers = []
        for process in psutil.process_iter(["pid"]):
            try:
                if os.getsid(process.pid) in sessions and process.status() != psutil.STATUS_ZOMBIE:
                    leftovers.append(process)
            except (OSError, psutil.Error):
                continue
        return leftovers

    # -- diagnostics ---------------------------------------------------------------------------

    def task_log_files(self) -> list[Path]:
        """Task and trigger log files under ``AIRFLOW_HOME/logs``, newest last."""
        logs = self.home / "logs"
        files = [p for p in logs.glob("dag_id=*/**/*.log") if p.is_file()] if logs.exists() else []
        return sorted(files, key=lambda p: p.stat().st_mtime)

    def log_tails(self, lines: int = 40, task_logs: int = 2) -> str:
        """The end of each component's log and of the newest task logs, for failure reports."""
        parts = [f"--- {name}.log ---\n{tail(self.log_dir / f'{name}.log', lines)}" for name in self.components]
        for path in self.task_log_files()[-task_logs:]:
            parts.append(f"--- {path.relative_to(self.home)} ---\n{_readable_task_log(tail(path, lines))}")
        return "\n".join(parts)


def _readable_task_log(text: str) -> str:
    """Task logs are JSON lines: keep timestamp, level and event (and an error's detail)."""
    out = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        detail = f" {entry['error_detail']}" if "error_detail" in entry else ""
        out.append(f"{entry.get('timestamp', '')} {entry.get('level', '')} {entry.get('event', '')}{detail}")
    return "\n".join(out)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # each component leads its own session, so its group id is its pid


def _signal_process(process: psutil.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(psutil.Error):
        process.send_signal(sig)
