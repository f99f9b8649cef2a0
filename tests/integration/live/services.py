"""
Throw-away Redis and PostgreSQL servers on loopback, for the live tests that run a distributed Airflow.

CeleryExecutor needs a broker (Redis here) and a metadata database other than SQLite (Airflow refuses
SQLite with any executor but the local ones). Both come from Debian's packages and are started by the
test itself, each in its own process group on ``127.0.0.1`` and a free port, with a random password and
all its files in a new temporary directory; :meth:`stop` ends the whole group and removes the files.

PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs to Debian's
``postgres`` system user (created by the ``postgresql`` package): the directory is handed to that user
and ``initdb``/``postgres`` run under its uid.
"""

from __future__ import annotations

import abc
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import psutil

from tests.integration.live.airflow_runtime import free_port, tail

REDIS_INSTALL = "apt-get install -y --no-install-recommends redis-server"
POSTGRES_INSTALL = "apt-get install -y --no-install-recommends postgresql"
#: Where Debian keeps the PostgreSQL server programs (``initdb`` is not on ``PATH`` there).
POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"


class ServiceError(RuntimeError):
    """A service is not installed, did not start, or did not stop."""


def _which(program: str, install: str, extra_dirs: list[Path] | None = None) -> str:
    """The path of ``program`` on ``PATH`` or in ``extra_dirs``; a :class:`ServiceError` that says how to install it."""
    found = shutil.which(program)
    for directory in extra_dirs or []:
        if found:
            break
        candidate = directory / program
        found = str(candidate) if os.access(candidate, os.X_OK) else None
    if not found:
        raise ServiceError(f"{program!r} not found: install it with `{install}` (or `make live-services`)")
    return found


_ServiceT = TypeVar("_ServiceT", bound="_Service")


class _Service(abc.ABC):
    """
    One server process in its own session, on a free loopback port, with a random password, logging to a
    file in its own temporary directory (``name`` names both).
    """

    name = "service"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"qstash-live-{self.name}-"))
        self.log_path = self.dir / f"{self.name}.log"
        self.port = free_port()
        self.password = secrets.token_urlsafe(24)
        self.proc: subprocess.Popen[bytes] | None = None
        self._members: list[psutil.Process] = []

    def __enter__(self: _ServiceT) -> _ServiceT:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @abc.abstractmethod
    def start(self, timeout: float = 60.0) -> None:
        """Start the server and return once it answers; :class:`ServiceError` if it does not."""

    def _spawn(self, cmd: list[str], **popen: Any) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **popen
            )

    def _wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        """Call ``ready()`` until it returns true (bounded by ``timeout``); fail early if the server exits."""
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise ServiceError(f"{self.name} exited with code {code} while starting:\n{tail(self.log_path)}")
            try:
                if ready():
                    return
            except Exception as err:  # not up yet: refused connection, still starting
                last = err
            time.sleep(0.2)
        raise ServiceError(f"{self.name} not ready in {timeout:.0f} s ({last!r}):\n{tail(self.log_path)}")

    def stop(self, grace: float = 15.0, stop_signal: signal.Signals = signal.SIGTERM) -> None:
        """
        Stop the server: ``stop_signal`` to the server itself (it stops its own children), ``grace``
        seconds, then SIGKILL to every process of it still alive; then remove its files. Idempotent.
        """
        if self.proc is not None and not self._members:
            self._members = self.processes()
            if self.proc.poll() is None:
                self.proc.send_signal(stop_signal)
            _, alive = psutil.wait_procs(self._members, timeout=grace)
            for process in alive:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            psutil.wait_procs(alive, timeout=5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def processes(self) -> list[psutil.Process]:
        """The server and its descendants (PostgreSQL's children start sessions of their own)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            leader = psutil.Process(self.proc.pid)
            return [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def leftover_processes(self) -> list[psutil.Process]:
        """Processes of the server that outlived :meth:`stop` (should be none)."""
        left = []
        for process in self._members:
            with contextlib.suppress(psutil.Error):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    left.append(process)
        return left


class RedisServer(_Service):
    """
    ``redis-server`` on ``127.0.0.1`` with a password and no persistence: a Celery broker for one test.

    The password is in a config file readable only by us (never on a command line, where ``ps`` shows it).
    """

    name = "redis"

    @property
    def url(self) -> str:
        """``redis://:PASSWORD@127.0.0.1:PORT/0`` (Celery's ``broker_url``)."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 60.0) -> None:
        server = _which("redis-server", REDIS_INSTALL)
        config = self.dir / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    "protected-mode yes",
                    f"requirepass {self.password}",
                    'save ""',
                    "appendonly no",
                    f"dir {self.dir}",
                    "daemonize no",
                    'logfile ""',
                    "databases 1",
                ]
            )
            + "\n"
        )
        config.chmod(0o600)
        self._spawn([server, str(config)])
        self._wait_ready(self.ping, timeout)

    def ping(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()


class PostgresCluster(_Service):
    """
    A new PostgreSQL cluster (``initdb``) with one database, ``airflow``, owned by the user ``airflow``.

    Tuned for a throw-away test database on a small machine: no fsync, small buffers. Stopped with
    SIGINT, PostgreSQL's "fast" shutdown.
    """

    name = "postgres"
    user = "airflow"
    database = "airflow"

    def __init__(self) -> None:
        super().__init__()
        self.run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self.run_as = pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceError(
                    f"running as root, and there is no 'postgres' user to own the cluster: `{POSTGRES_INSTALL}`"
                ) from None
            os.chown(self.dir, self.run_as.pw_uid, self.run_as.pw_gid)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the database (``postgresql+psycopg2://...``)."""
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _as_owner(self) -> dict[str, Any]:
        if self.run_as is None:
            return {}
        return {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid, "extra_groups": []}

    def _owned_file(self, path: Path, text: str) -> None:
        path.write_text(text)
        path.chmod(0o600)
        if self.run_as is not None:
            os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)

    def start(self, timeout: float = 60.0) -> None:
        bin_dirs = sorted(Path("/").glob(POSTGRES_BIN_GLOB.lstrip("/")), reverse=True)
        initdb = _which("initdb", POSTGRES_INSTALL, bin_dirs)
        postgres = _which("postgres", POSTGRES_INSTALL, bin_dirs)
        data = self.dir / "data"
        pwfile = self.dir / "pwfile"
        self._owned_file(pwfile, self.password + "\n")
        self._owned_file(self.log_path, "")
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(self.dir)}
        init = [initdb, "-D", str(data), "-U", self.user, "--auth=scram-sha-256", f"--pwfile={pwfile}"]
        with open(self.log_path, "ab") as log:
            done = subprocess.run(
                [*init, "--encoding=UTF8", "--locale=C", "--no-sync"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.dir,
                timeout=timeout,
                check=False,
                **self._as_owner(),
            )
        pwfile.unlink()
        if done.returncode != 0:
            raise ServiceError(f"initdb failed with code {done.returncode}:\n{tail(self.log_path)}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.dir),
            "max_connections": "200",
            "shared_buffers": "32MB",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        args = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        self._spawn([postgres, "-D", str(data), *args], env=env, cwd=self.dir, **self._as_owner())
        self._wait_ready(self._answers, timeout)
        self._create_database()

    def _connect(self, dbname: str) -> Any:
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname=dbname, connect_timeout=3
        )

    def _answers(self) -> bool:
        self._connect("postgres").close()
        return True

    def _create_database(self) -> None:
        connection = self._connect("postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {self.database}")
        finally:
            connection.close()

    def stop(self, grace: float = 15.0, stop_signal: signal.Signals = signal.SIGINT) -> None:
        super().stop(grace, stop_signal)
