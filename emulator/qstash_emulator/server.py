"""Running the emulator: a uvicorn thread (:class:`ServerThread`) and the test/benchmark runners.

:class:`QStashEmulator` is the runners' base (lifecycle and admin helpers) and their factory:
``QStashEmulator(...)`` builds an :class:`InProcessEmulator`, ``QStashEmulator(..., subprocess=True)``
a :class:`SubprocessEmulator`. Where the server runs is each runner's :class:`EmulatorBackend`
(:class:`InProcessBackend`, :class:`SubprocessBackend`), so the base is a concrete class and
``QStashEmulator(...)`` type-checks as one.
"""

from __future__ import annotations

import errno
import json
import math
import os
import queue
import re
import socket
import subprocess as sp
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import uvicorn
from starlette.types import ASGIApp

from qstash_emulator.actions import DEFAULT_ACTION_RATE
from qstash_emulator.app import APP_OPTIONS, open_app
from qstash_emulator.bulk_cancel import BULK_CANCEL_MODES, DEFAULT_SYNC_WAIT
from qstash_emulator.faults import FaultConfig
from qstash_emulator.state import (
    DEFAULT_REQUEST_LOG_BYTES,
    DEFAULT_REQUEST_LOG_SIZE,
    DROPPED_HEADER,
    EmulatorState,
    check_token,
)
from qstash_emulator.store import MessageStore

#: Token used when neither ``--token`` nor ``QSTASH_EMULATOR_TOKEN`` is given.
DEFAULT_TOKEN = "emulator-token"
#: Environment variable the CLI reads its default token from.
TOKEN_ENV = "QSTASH_EMULATOR_TOKEN"
#: The line the CLI prints when it is ready; the base URL follows.
READY_PREFIX = "QStash emulator ready at "

#: ``typing.Self`` is Python 3.11+: the emulator runs on 3.10 too, so its fluent methods use a bound TypeVar.
_Emulator = TypeVar("_Emulator", bound="QStashEmulator")

_URL_RE = re.compile(re.escape(READY_PREFIX) + r"(http://\S+)")


def base_url_for(host: str, port: int) -> str:
    """``http://host:port`` (IPv6 hosts bracketed)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port=0``: a free port chosen by the OS)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise OSError(exc.errno, port_in_use_message(host, port)) from exc
        raise
    return sock


def port_in_use_message(host: str, port: int) -> str:
    """What to do when ``host:port`` is taken (Airflow's API server listens on 8080, for one)."""
    return (
        f"{host}:{port} is already in use (another emulator, or a server such as Airflow's API server on "
        f"8080?): start the emulator on another port with --port N (port=N in Python), or --port 0 for any "
        f"free one, and point the connection's host at it"
    )


def _wait_healthy(base_url: str, deadline: float) -> None:
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base_url + "/_emulator/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (OSError, urllib.error.URLError) as exc:
            last_error = exc
        time.sleep(0.02)
    raise RuntimeError(f"emulator at {base_url} did not answer in time: {last_error}")


class ServerThread:
    """uvicorn serving ``app`` in a daemon thread on an already bound socket.

    :param app: the ASGI app.
    :param host: interface to bind (loopback by default).
    :param port: port, ``0`` for a free one.
    :param log_level: uvicorn's log level.
    :param access_log: log every request (uvicorn's access log).
    :param http: uvicorn HTTP implementation (``"auto"``, ``"httptools"`` or ``"h11"``).
    :param configure_logging: let uvicorn install its logging config (the CLI does; the
        in-process runner leaves the host process's logging alone).
    """

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_level: str = "warning",
        access_log: bool = False,
        http: str = "auto",
        configure_logging: bool = False,
    ) -> None:
        self.host = host
        self._sock = bind_socket(host, port)
        self.port: int = self._sock.getsockname()[1]
        kwargs: dict[str, Any] = {} if configure_logging else {"log_config": None}
        config = uvicorn.Config(
            app,
            log_level=log_level,
            access_log=access_log,
            lifespan="off",
            http=http,
            timeout_graceful_shutdown=5,
            **kwargs,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, name=f"qstash-emulator-{self.port}", daemon=True
        )

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return base_url_for(self.host, self.port)

    def is_alive(self) -> bool:
        """Whether the server thread still runs."""
        return self._thread.is_alive()

    def start(self, timeout: float = 15.0) -> None:
        """Start serving and return once the server answers HTTP.

        :raises RuntimeError: if it did not come up within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                self._sock.close()
                raise RuntimeError("the emulator's server thread exited during startup")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the emulator did not start in time")
            time.sleep(0.005)
        _wait_healthy(self.base_url, deadline)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, wait for the thread, close the socket."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self.server.force_exit = True
            self._thread.join(timeout)
        self._sock.close()


def _package_root() -> str:
    """The directory that contains the ``qstash_emulator`` package (for the child's ``PYTHONPATH``)."""
    return str(Path(__file__).resolve().parents[1])


class EmulatorBackend(ABC):
    """Where a :class:`QStashEmulator` runs its server: one small class per place.

    A backend is made by its runner (before :meth:`launch`) and kept after :meth:`shutdown`.
    """

    #: Whether the server runs in a child process (the admin API is then the only way in).
    child_process: ClassVar[bool] = False

    @property
    @abstractmethod
    def running(self) -> bool:
        """Whether the server is up."""

    @abstractmethod
    def launch(self, emulator: QStashEmulator) -> int:
        """Start the server ``emulator``'s settings describe and wait until it answers; returns its port.

        :raises RuntimeError: if it did not come up within ``emulator.startup_timeout`` seconds.
        """

    @abstractmethod
    def shutdown(self) -> None:
        """Stop the server if it runs (idempotent)."""


class InProcessBackend(EmulatorBackend):
    """uvicorn in a daemon thread of this process (:class:`ServerThread`), the app's state at hand."""

    def __init__(self) -> None:
        self.thread: ServerThread | None = None
        #: The app's shared state while the server runs.
        self.state: EmulatorState | None = None

    @property
    def running(self) -> bool:
        """Whether the server thread is up."""
        return self.thread is not None and self.thread.is_alive()

    def launch(self, emulator: QStashEmulator) -> int:
        """Build the app (see :func:`~qstash_emulator.app.open_app`) and serve it; returns its port."""
        app = open_app(
            emulator.db,
            emulator.token,
            emulator.initial_faults,
            seed_messages=emulator.seed_messages,
            seed_random=emulator.seed_random,
            **emulator.app_options(),
        )
        state: EmulatorState = app.state.emulator
        try:
            thread = ServerThread(
                app, emulator.host, emulator.requested_port, log_level=emulator.log_level, http=emulator.http
            )
            thread.start(emulator.startup_timeout)
        except BaseException:
            state.close()
            raise
        self.thread, self.state = thread, state
        return thread.port

    def shutdown(self) -> None:
        """Stop the thread, then the app's background work and database."""
        if self.thread is not None:
            self.thread.stop()
            self.thread = None
        if self.state is not None:
            self.state.close()
            self.state = None


class SubprocessBackend(EmulatorBackend):
    """The CLI (``python -m qstash_emulator``) in a child process.

    The token travels in the child's environment (``QSTASH_EMULATOR_TOKEN``), never on its
    command line, where ``ps`` would show it. :meth:`shutdown` sends SIGTERM (then SIGKILL after 10 s).
    """

    child_process = True

    def __init__(self) -> None:
        #: The child (``None`` before :meth:`launch`; kept after :meth:`shutdown` for its exit code).
        self.proc: sp.Popen[str] | None = None

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self.proc is not None and self.proc.poll() is None

    @staticmethod
    def command(emulator: QStashEmulator) -> list[str]:
        """The child's command line for ``emulator``'s settings (without the token)."""
        cmd = [
            sys.executable,
            "-m",
            "qstash_emulator",
            "--host",
            emulator.host,
            "--port",
            str(emulator.requested_port),
            "--db",
            emulator.db,
            "--log-level",
            emulator.log_level,
            "--http",
            emulator.http,
        ]
        for name, value in emulator.app_options().items():
            cmd += ["--" + name.replace("_", "-"), str(value)]
        if emulator.initial_faults is not None:
            cmd += ["--faults-json", json.dumps(emulator.initial_faults.to_dict())]
        if emulator.seed_messages:
            cmd += ["--seed", str(emulator.seed_messages), "--seed-random", str(emulator.seed_random)]
        return cmd

    def launch(self, emulator: QStashEmulator) -> int:
        """Start the child and wait for its ready line; returns the port it names."""
        env = dict(os.environ)
        env[TOKEN_ENV] = emulator.token
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        proc = sp.Popen(self.command(emulator), stdout=sp.PIPE, stdin=sp.DEVNULL, text=True, env=env)
        self.proc = proc
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(stream: Any) -> None:
            for line in stream:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, args=(proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + emulator.startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill()
                raise RuntimeError("the emulator subprocess did not report ready in time")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = proc.wait()
                raise RuntimeError(f"the emulator subprocess exited with code {code} during startup")
            match = _URL_RE.search(line)
            if match:
                return int(match.group(1).rsplit(":", 1)[1])

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def shutdown(self) -> None:
        """SIGTERM, then SIGKILL if the child has not exited after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except sp.TimeoutExpired:
            self._kill()


class QStashEmulator:
    """A local QStash for tests and benchmarks, used as a context manager.

    ``QStashEmulator(...)`` builds an :class:`InProcessEmulator` (default: uvicorn in a daemon
    thread of this process, on a free loopback port) or, with ``subprocess=True``, a
    :class:`SubprocessEmulator` (the CLI ``python -m qstash_emulator`` in a child
    process, so that a benchmarking client does not share the GIL with the server). Both share
    this class's lifecycle and admin helpers, which talk to the admin HTTP API under
    ``/_emulator/``; each runs its server through its :class:`EmulatorBackend`.

    >>> with QStashEmulator(token="t") as emu:  # doctest: +SKIP
    ...     emu.seed(1000)
    ...     requests.delete(emu.base_url + "/v2/messages?label=label-1", headers=emu.auth_headers)

    :param token: the bearer token the ``/v2`` routes require (not empty).
    :param db: ``":memory:"`` or an SQLite file (state, bulk actions and DLQ survive a restart).
    :param faults: initial fault configuration (also what :meth:`reset` goes back to).
    :param host: loopback interface to bind.
    :param port: port, ``0`` (default) for a free one.
    :param subprocess: build a :class:`SubprocessEmulator` instead of an :class:`InProcessEmulator`
        (a subclass takes ``None`` or the value that matches it).
    :param seed_messages: pre-load this many generated messages at start.
    :param seed_random: seed of those generated messages.
    :param request_log_size: how many ``/v2`` requests :meth:`request_log` keeps (the oldest go first).
    :param request_log_bytes: how many bytes of entries :meth:`request_log` keeps (the oldest go first).
    :param bulk_cancel: server generation, ``"actions"`` (default: hosted QStash since September
        2026) or ``"legacy"`` (the 2026-08 spec: ``count`` honoured, synchronous).
    :param action_rate: messages per second a bulk action cancels (``actions`` mode; finite, > 0).
    :param sync_wait: seconds a filter cancel without ``async=true`` waits before its 429 (finite, >= 0).
    :param startup_timeout: seconds to wait for the server to answer.
    :param log_level: uvicorn's log level.
    :param http: uvicorn HTTP implementation (``"auto"``, ``"httptools"``, ``"h11"``).
    :raises ValueError: for an empty token, an unknown mode, or a rate or wait out of range.
    """

    #: The backend each runner class runs its server with.
    _backend_type: ClassVar[type[EmulatorBackend]]

    def __new__(cls, *args: Any, subprocess: bool | None = None, **kwargs: Any) -> QStashEmulator:
        if cls is QStashEmulator:
            cls = SubprocessEmulator if subprocess else InProcessEmulator
        return super().__new__(cls)

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        db: str = ":memory:",
        faults: FaultConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        subprocess: bool | None = None,
        seed_messages: int = 0,
        seed_random: int = 0,
        request_log_size: int = DEFAULT_REQUEST_LOG_SIZE,
        request_log_bytes: int = DEFAULT_REQUEST_LOG_BYTES,
        bulk_cancel: str = "actions",
        action_rate: float = DEFAULT_ACTION_RATE,
        sync_wait: float = DEFAULT_SYNC_WAIT,
        startup_timeout: float = 15.0,
        log_level: str = "warning",
        http: str = "auto",
    ) -> None:
        if subprocess is not None and subprocess != self._backend_type.child_process:
            raise ValueError(f"{type(self).__name__} does not take subprocess={subprocess!r}")
        if bulk_cancel not in BULK_CANCEL_MODES:
            raise ValueError(f"bulk_cancel must be one of {list(BULK_CANCEL_MODES)}, got {bulk_cancel!r}")
        if isinstance(action_rate, bool) or not 0 < action_rate < math.inf:
            raise ValueError(f"action_rate must be a finite number > 0, got {action_rate!r}")
        if isinstance(sync_wait, bool) or not 0 <= sync_wait < math.inf:
            raise ValueError(f"sync_wait must be a finite number of seconds >= 0, got {sync_wait!r}")
        self.token = check_token(token)
        self.db = db
        self.host = host
        self.initial_faults = faults
        self.requested_port = port
        self.seed_messages = seed_messages
        self.seed_random = seed_random
        self.request_log_size = request_log_size
        self.request_log_bytes = request_log_bytes
        self.bulk_cancel = bulk_cancel
        self.action_rate = float(action_rate)
        self.sync_wait = float(sync_wait)
        self.startup_timeout = startup_timeout
        self.log_level = log_level
        self.http = http
        self._port: int | None = None
        self._backend = self._backend_type()

    @property
    def subprocess(self) -> bool:
        """Whether the server runs in a child process."""
        return self._backend.child_process

    def app_options(self) -> dict[str, Any]:
        """The app's :data:`~qstash_emulator.app.APP_OPTIONS`, as this runner was given them."""
        return {name: getattr(self, name) for name in APP_OPTIONS}

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self: _Emulator) -> _Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is up."""
        return self._backend.running

    @property
    def port(self) -> int:
        """The port the emulator listens on (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash."""
        return base_url_for(self.host, self.port)

    @property
    def auth_headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}``."""
        return {"Authorization": f"Bearer {self.token}"}

    def start(self: _Emulator) -> _Emulator:
        """Start the server and wait until it answers; returns ``self``."""
        if self._port is not None:
            raise RuntimeError("the emulator is already started")
        self._port = self._backend.launch(self)
        return self

    def stop(self) -> None:
        """Stop the server and release the database. Idempotent."""
        self._backend.shutdown()
        self._port = None

    # -- direct access (in-process only) -------------------------------------------------

    @property
    def store(self) -> MessageStore:
        """The message store (in-process mode only)."""
        raise RuntimeError("the store is reachable in-process mode only; use the admin helpers")

    @property
    def state(self) -> EmulatorState:
        """The app's shared state: store, bulk actions, DLQ, faults, request log (in-process mode only)."""
        raise RuntimeError("the state is reachable in-process mode only; use the admin helpers")

    # -- admin helpers (HTTP, both runners) ----------------------------------------------

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=600) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            if exc.code in (400, 409):
                raise ValueError(detail) from None
            raise RuntimeError(f"admin call {method} {path} failed: {exc.code} {detail}") from None

    def add_messages(self, messages: list[dict[str, Any]]) -> list[str]:
        """Insert held messages directly (no auth, no faults, not logged).

        Dict keys: ``url`` (required), ``label`` (may be comma-separated) or ``labels``,
        ``queueName``, ``topicName``, ``flowControlKey``, ``scheduleId``, ``callerIp``,
        ``createdAt`` (Unix ms, default now), ``messageId`` (default random), ``method``, ``body``.

        :return: the message ids, in order.
        :raises ValueError: on an invalid message or an id that already exists.
        """
        if not messages:  # the admin route refuses a body that adds nothing; here nothing is simply nothing
            return []
        ids: list[str] = self._admin("POST", "/_emulator/messages", list(messages))["messageIds"]
        return ids

    def seed(self, n: int, seed: int = 0, *, now: int | None = None) -> int:
        """Insert ``n`` generated messages (reproducible for a given ``seed``); returns ``n``."""
        return self._seed("/_emulator/seed", n, seed, now)

    def _seed(self, path: str, n: int, seed: int, now: int | None) -> int:
        """``POST`` a seed request (``now``: reference time in Unix ms, default the server's now)."""
        if n == 0:  # the admin route refuses a seed that makes nothing
            return 0
        body: dict[str, Any] = {"count": n, "seed": seed}
        if now is not None:
            body["now"] = now
        seeded: int = self._admin("POST", path, body)["seeded"]
        return seeded

    def held_ids(self) -> set[str]:
        """Ids of the messages still held (not cancelled)."""
        return set(self._admin("GET", "/_emulator/message-ids?state=held"))

    def messages(self, state: str = "held", limit: int | None = None) -> list[dict[str, Any]]:
        """Messages (``"held"``, ``"cancelled"`` or ``"all"``) with ``state`` and ``cancelledAt``."""
        suffix = "" if limit is None else f"&limit={limit}"
        result: list[dict[str, Any]] = self._admin("GET", f"/_emulator/messages?state={state}{suffix}")
        return result

    def counts(self) -> dict[str, int]:
        """``{"held": n, "cancelled": m}``."""
        result: dict[str, int] = self._admin("GET", "/_emulator/stats")
        return result

    def counts_by(self, by: str = "label", **filters: str | int | Sequence[str]) -> dict[str, Any]:
        """``GET /_emulator/counts``: held and cancelled messages per label (or ``"queue"``, ``"state"``) among
        those ``filters`` select: ``state``, ``label``, ``queue`` (a value or a list), ``from_``/``to`` (Unix ms
        or ISO 8601 with a timezone).

        :raises ValueError: for a filter the emulator refuses (its message).
        """
        pairs: list[tuple[str, str]] = [("by", by)]
        for name, value in filters.items():
            values = [value] if isinstance(value, str | int) else list(value)
            pairs += [(name.rstrip("_"), str(v)) for v in values]
        result: dict[str, Any] = self._admin("GET", "/_emulator/counts?" + urllib.parse.urlencode(pairs))
        return result

    def request_log(self) -> list[dict[str, Any]]:
        """The ``/v2`` requests answered so far (see :class:`~qstash_emulator.state.RequestLog`)."""
        entries: list[dict[str, Any]] = self._admin("GET", "/_emulator/requests")
        for entry in entries:
            entry["query"] = [tuple(pair) for pair in entry["query"]]
        return entries

    def request_log_dropped(self) -> int:
        """How many ``/v2`` requests the request log dropped to keep its bounds (``request_log_size`` entries,
        ``request_log_bytes`` bytes) since it was last cleared: a count read from :meth:`request_log` is short
        by this many."""
        with urllib.request.urlopen(self.base_url + "/_emulator/requests", timeout=600) as answer:
            return int(answer.headers[DROPPED_HEADER])

    def clear_request_log(self) -> None:
        """Forget the logged requests."""
        self._admin("DELETE", "/_emulator/requests")

    def set_faults(self, faults: FaultConfig | None) -> None:
        """Switch fault injection (``None``: off); the random sequences restart from ``faults.seed``."""
        self._admin("PUT", "/_emulator/faults", None if faults is None else faults.to_dict())

    def get_faults(self) -> FaultConfig | None:
        """The active fault configuration."""
        data = self._admin("GET", "/_emulator/faults")
        return None if data is None else FaultConfig.from_dict(data)

    def bulk_actions(self) -> list[dict[str, Any]]:
        """Every stored bulk action, oldest first (API fields plus ``cancelled`` and ``cancelLimit``)."""
        actions: list[dict[str, Any]] = self._admin("GET", "/_emulator/bulk-actions")
        return actions

    def wait_actions_idle(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until no bulk action is ``IN_PROGRESS``; returns :meth:`bulk_actions`.

        :param timeout: seconds to wait at most (finite).
        :raises TimeoutError: if some action is still in progress after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            actions = self.bulk_actions()
            running = [a["actionId"] for a in actions if a["state"] == "IN_PROGRESS"]
            if not running:
                return actions
            if time.monotonic() >= deadline:
                raise TimeoutError(f"bulk actions still in progress after {timeout} s: {running}")
            time.sleep(0.01)

    def add_dlq(self, entries: list[dict[str, Any]]) -> list[str]:
        """Put entries in the DLQ directly: message dicts (as :meth:`add_messages`) plus
        ``responseStatus`` (required), ``responseBody``, ``responseHeader``, ``dlqId``; returns the DLQ ids.

        :raises ValueError: on an invalid entry or a DLQ id that already exists.
        """
        if not entries:
            return []
        ids: list[str] = self._admin("POST", "/_emulator/dlq", list(entries))["dlqIds"]
        return ids

    def seed_dlq(self, n: int, seed: int = 0, *, now: int | None = None) -> int:
        """Put ``n`` generated entries in the DLQ (reproducible for a given ``seed``; up to millions); returns ``n``."""
        return self._seed("/_emulator/dlq/seed", n, seed, now)

    def fail_messages(
        self, message_ids: list[str], response_status: int = 500, response_body: str | None = None
    ) -> list[str]:
        """Move held messages to the DLQ as if their retries were exhausted; returns their DLQ ids."""
        if not message_ids:
            return []
        body: dict[str, Any] = {"messageIds": list(message_ids), "responseStatus": response_status}
        if response_body is not None:
            body["responseBody"] = response_body
        ids: list[str] = self._admin("POST", "/_emulator/fail", body)["dlqIds"]
        return ids

    def dlq_entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The DLQ's entries in insertion order (API ``DLQMessage`` dicts with ``dlqId``)."""
        suffix = "" if limit is None else f"?limit={limit}"
        entries: list[dict[str, Any]] = self._admin("GET", f"/_emulator/dlq{suffix}")
        return entries

    def dlq_ids(self) -> set[str]:
        """The DLQ ids of every entry."""
        return {entry["dlqId"] for entry in self.dlq_entries()}

    def dlq_count(self) -> int:
        """How many entries the DLQ holds."""
        count: int = self._admin("GET", "/_emulator/dlq/count")["dlq"]
        return count

    def reset(self) -> None:
        """Empty the store, the bulk actions, the DLQ and the request log; back to the initial faults."""
        self._admin("POST", "/_emulator/reset")


class InProcessEmulator(QStashEmulator):
    """The emulator served by uvicorn in a daemon thread of this process (see :class:`QStashEmulator`).

    :attr:`store` and :attr:`state` give direct access to the database and the app's state.
    """

    _backend_type = InProcessBackend
    _backend: InProcessBackend

    @property
    def store(self) -> MessageStore:
        """The message store."""
        return self.state.store

    @property
    def state(self) -> EmulatorState:
        """The app's shared state: store, bulk actions, faults, request log."""
        if self._backend.state is None:
            raise RuntimeError("not available: the emulator is not started")
        return self._backend.state


class SubprocessEmulator(QStashEmulator):
    """The CLI (``python -m qstash_emulator``) in a child process (see :class:`QStashEmulator`
    and :class:`SubprocessBackend`)."""

    _backend_type = SubprocessBackend
    _backend: SubprocessBackend

    @property
    def process(self) -> sp.Popen[str] | None:
        """The child process (``None`` before :meth:`start`; kept after :meth:`stop` for its exit code)."""
        return self._backend.proc

    def command(self) -> list[str]:
        """The child's command line (without the token)."""
        return self._backend.command(self)


__all__ = [
    "DEFAULT_TOKEN",
    "READY_PREFIX",
    "TOKEN_ENV",
    "EmulatorBackend",
    "InProcessBackend",
    "InProcessEmulator",
    "QStashEmulator",
    "ServerThread",
    "SubprocessBackend",
    "SubprocessEmulator",
    "base_url_for",
]
