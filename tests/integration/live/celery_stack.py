"""
A scaled-out Airflow on one machine: CeleryExecutor, a Redis broker, PostgreSQL, several Celery workers
and several triggerers, for the live Celery test and ``bench/bench_fanout.py``.

:class:`CeleryAirflow` starts, in order, a throw-away PostgreSQL cluster and Redis server
(:mod:`tests.integration.live.services`), then a
:class:`~tests.integration.live.airflow_runtime.LiveAirflow` on them: API server, scheduler, DAG
processor, ``triggerers`` triggerers and ``workers`` ``airflow celery worker`` processes. Every process names
itself through ``[core] hostname_callable``
(:mod:`tests.integration.live.hostname`): ``worker-1``, ``worker-2``, ``triggerer-1``, ... so task instances show
which worker ran them and triggers which triggerer holds them. :meth:`CeleryAirflow.stop` stops
Airflow, then Redis, then PostgreSQL; :meth:`CeleryAirflow.leftover_processes` lists anything of any
of them still alive (should be nothing).

The footprint is kept small for a 2-core machine: few worker processes, one API server worker, a
small connection pool per process, Celery's sender pool of one, no gossip or mingle between workers.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psutil

from tests.integration.live.airflow_runtime import REPO_ROOT, AirflowError, Component, LiveAirflow, tail
from tests.integration.live.hostname import HOSTNAME_ENV
from tests.integration.live.services import PostgresCluster, RedisServer


@dataclass(frozen=True)
class CeleryLayout:
    """
    How many of each process, and how big.

    :param workers: ``airflow celery worker`` processes.
    :param worker_concurrency: task slots (prefork children) per worker.
    :param triggerers: ``airflow triggerer`` processes.
    :param triggerer_capacity: triggers each triggerer runs at most at once.
    """

    workers: int = 2
    worker_concurrency: int = 4
    triggerers: int = 2
    triggerer_capacity: int = 50

    def __post_init__(self) -> None:
        for name in ("workers", "worker_concurrency", "triggerers", "triggerer_capacity"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")

    @property
    def worker_names(self) -> tuple[str, ...]:
        return tuple(f"worker-{n}" for n in range(1, self.workers + 1))

    @property
    def triggerer_names(self) -> tuple[str, ...]:
        return tuple(f"triggerer-{n}" for n in range(1, self.triggerers + 1))

    def components(self) -> tuple[Component, ...]:
        """The API server, scheduler, DAG processor, then the triggerers and workers, each with its name."""
        fixed = tuple(
            Component(name, (name, *args), {HOSTNAME_ENV: name})
            for name, args in (
                ("api-server", ()),
                ("scheduler", ("--skip-serve-logs",)),
                ("dag-processor", ()),
            )
        )
        triggerers = tuple(
            Component(
                name,
                ("triggerer", "--skip-serve-logs", "--capacity", str(self.triggerer_capacity)),
                {HOSTNAME_ENV: name},
            )
            for name in self.triggerer_names
        )
        workers = tuple(
            Component(
                name,
                (
                    *("celery", "worker", "--skip-serve-logs", "--without-gossip", "--without-mingle"),
                    *("--concurrency", str(self.worker_concurrency), "--celery-hostname", f"{name}@%h"),
                ),
                {HOSTNAME_ENV: name},
            )
            for name in self.worker_names
        )
        return fixed + triggerers + workers


def celery_settings(layout: CeleryLayout, broker_url: str, database_url: str) -> dict[str, str]:
    """The ``AIRFLOW__*`` settings every process of the deployment gets (besides :class:`LiveAirflow`'s own)."""
    slots = layout.workers * layout.worker_concurrency
    return {
        "PYTHONPATH": str(REPO_ROOT),  # for the hostname callable
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.integration.live.hostname.from_env",
        "AIRFLOW__CORE__PARALLELISM": str(slots),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(max(64, slots)),
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database_url}",
        "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "2",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "8",
        # A triggerer that stops for good hands its triggers over as soon as its job ends; one killed
        # outright is given up on after this many seconds without a heartbeat.
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
    }


class CeleryAirflow:
    """
    PostgreSQL, Redis and a Celery-executed Airflow, started together and stopped together.

    :param home: the ``AIRFLOW_HOME`` to create.
    :param connections: ``conn_id -> AIRFLOW_CONN_* value`` for every Airflow process.
    :param layout: workers and triggerers.
    :param dag_ids: the DAGs :meth:`start` waits for.
    :param extra_env: more settings for every Airflow process.
    """

    def __init__(
        self,
        home: Path,
        *,
        connections: Mapping[str, str],
        layout: CeleryLayout | None = None,
        dag_ids: Iterable[str] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.home = Path(home)
        self.connections = dict(connections)
        self.layout = layout or CeleryLayout()
        self.dag_ids = tuple(dag_ids)
        self.extra_env = dict(extra_env or {})
        self.postgres: PostgresCluster | None = None
        self.redis: RedisServer | None = None
        self._airflow: LiveAirflow | None = None
        self.startup_seconds = 0.0

    def __enter__(self) -> CeleryAirflow:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def airflow(self) -> LiveAirflow:
        if self._airflow is None:
            raise AirflowError("the Celery deployment is not started")
        return self._airflow

    def start(self, timeout: float = 240.0) -> CeleryAirflow:
        """Start everything; return once Airflow is healthy, the DAGs are parsed and every worker is ready."""
        started = time.monotonic()
        try:
            self.postgres = PostgresCluster()
            self.postgres.start()
            self.redis = RedisServer()
            self.redis.start()
            self._airflow = LiveAirflow(
                self.home,
                connections=self.connections,
                executor="CeleryExecutor",
                database_url=self.postgres.url,
                components=self.layout.components(),
                dag_ids=self.dag_ids,
                extra_env={**celery_settings(self.layout, self.redis.url, self.postgres.url), **self.extra_env},
            )
            self._airflow.start(timeout=timeout)
            self.wait_workers_ready(started + timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def wait_workers_ready(self, deadline: float) -> None:
        """Wait until each worker's log says Celery is ready (``celery@worker-N... ready.``)."""
        pending = set(self.layout.worker_names)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                log = self.airflow.log_dir / f"{name}.log"
                text = log.read_text(errors="replace") if log.exists() else ""
                if re.search(rf"{re.escape(name)}@\S* ready\.", text):
                    pending.discard(name)
                proc = self.airflow.procs[name]
                if proc.poll() is not None:
                    raise AirflowError(f"{name} exited with code {proc.returncode}:\n{tail(log)}")
            time.sleep(0.5)
        if pending:
            raise AirflowError(f"Celery workers not ready in time: {sorted(pending)}\n{self.airflow.log_tails()}")

    def stop(self) -> None:
        """Stop Airflow, then Redis, then PostgreSQL (each idempotent)."""
        with contextlib.ExitStack() as stack:  # every step runs even if one fails
            if self.postgres is not None:
                stack.callback(self.postgres.stop)
            if self.redis is not None:
                stack.callback(self.redis.stop)
            if self._airflow is not None:
                stack.callback(self._airflow.stop)

    def leftover_processes(self) -> list[psutil.Process]:
        """Every process of Airflow, Redis or PostgreSQL still alive after :meth:`stop` (should be none)."""
        left: list[psutil.Process] = []
        if self._airflow is not None:
            left += self._airflow.leftover_processes()
        for service in (self.redis, self.postgres):
            if service is not None:
                left += service.leftover_processes()
        return left
