"""Running the emulator: a uvicorn thread (:class:`ServerThread`) and the test/benchmark
runner :class:`QStashEmulator` (in-process by default, or the CLI in a child process).
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess as sp
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from airflow_qstash.emulator.actions import DEFAULT_ACTION_RATE
from airflow_qstash.emulator.app import DEFAULT_REQUEST_LOG_SIZE, EmulatorState, check_token, create_app
from airflow_qstash.emulator.bulk_cancel import DEFAULT_SYNC_WAIT
from airflow_qstash.emulator.faults import FaultConfig
from airflow_qstash.emulator.store import MessageStore

#: Token used when neither ``--token`` nor ``QSTASH_EMULATOR_TOKEN`` is given.
DEFAULT_TOKEN = "emulator-token"
#: Environment variable the CLI reads its default token from.
TOKEN_ENV = "QSTASH_EMULATOR_TOKEN"
#: The line the CLI prints when it is ready; the base URL follows.
READY_PREFIX = "QStash emulator ready at "

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
    except OSError:
        sock.close()
        raise
    return sock


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
    """The directory that contains the ``airflow_qstash`` package (for the child's ``PYTHONPATH``)."""
    return str(Path(__file__).resolve().parents[2])


class QStashEmulator:
    """A local QStash for tests and benchmarks, used as a context manager.

    In-process (default): uvicorn runs in a daemon thread of this process on a free loopback
    port and the helper methods talk to the store directly. With ``subprocess=True`` the CLI
    (``python -m airflow_qstash.emulator``) runs in a child process, so that a benchmarking
    client does not share the GIL with the server; the helpers then use the admin HTTP API.

    >>> with QStashEmulator(token="t") as emu:  # doctest: +SKIP
    ...     emu.seed(1000)
    ...     requests.delete(emu.base_url + "/v2/messages?count=10", headers=emu.auth_headers)

    :param token: the bearer token the ``/v2`` routes require.
    :param db: ``":memory:"`` or an SQLite file (state survives a restart).
    :param faults: initial fault configuration (also what :meth:`reset` goes back to).
    :param host: loopback interface to bind.
    :param port: port, ``0`` (default) for a free one.
    :param subprocess: run the CLI in a child process instead of a thread.
    :param seed_messages: pre-load this many generated messages at start.
    :param seed_random: seed of those generated messages.
    :param request_log_size: how many ``/v2`` requests :meth:`request_log` keeps (the oldest go first).
    :param bulk_cancel: server generation, ``"actions"`` (default: hosted QStash since September
        2026) or ``"legacy"`` (the 2026-08 spec: ``count`` honoured, synchronous).
    :param action_rate: messages per second a bulk action cancels (``actions`` mode).
    :param sync_wait: seconds a filter cancel without ``async=true`` waits before its 429.
    :param startup_timeout: seconds to wait for the server to answer.
    :param log_level: uvicorn's log level.
    :param http: uvicorn HTTP implementation (``"auto"``, ``"httptools"``, ``"h11"``).
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        db: str = ":memory:",
        faults: FaultConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        subprocess: bool = False,
        seed_messages: int = 0,
        seed_random: int = 0,
        request_log_size: int = DEFAULT_REQUEST_LOG_SIZE,
        bulk_cancel: str = "actions",
        action_rate: float = DEFAULT_ACTION_RATE,
        sync_wait: float = DEFAULT_SYNC_WAIT,
        startup_timeout: float = 15.0,
        log_level: str = "warning",
        http: str = "auto",
    ) -> None:
        self.token = check_token(token)
        self.db = db
        self.host = host
        self.subprocess = subprocess
        self._initial_faults = faults
        self._requested_port = port
        self._seed_messages = seed_messages
        self._seed_random = seed_random
        self._request_log_size = request_log_size
        self.bulk_cancel = bulk_cancel
        self.action_rate = action_rate
        self.sync_wait = sync_wait
        self._startup_timeout = startup_timeout
        self._log_level = log_level
        self._http = http
        self._thread: ServerThread | None = None
        self._state: EmulatorState | None = None
        self._proc: sp.Popen[str] | None = None
        self._port: int | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> QStashEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is up."""
        if self._proc is not None:
            return self._proc.poll() is None
        return self._thread is not None and self._thread.is_alive()

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

    def start(self) -> QStashEmulator:
        """Start the server and wait until it answers; returns ``self``."""
        if self._port is not None:
            raise RuntimeError("the emulator is already started")
        if self.subprocess:
            self._start_subprocess()
        else:
            self._start_thread()
        return self

    def _start_thread(self) -> None:
        store = MessageStore(self.db)
        try:
            if self._seed_messages:
                store.seed(self._seed_messages, self._seed_random)
            app = create_app(
                store,
                self.token,
                self._initial_faults,
                request_log_size=self._request_log_size,
                bulk_cancel=self.bulk_cancel,
                action_rate=self.action_rate,
                sync_wait=self.sync_wait,
            )
            self._state = app.state.emulator
            self._thread = ServerThread(
                app, self.host, self._requested_port, log_level=self._log_level, http=self._http
            )
            self._thread.start(self._startup_timeout)
        except BaseException:
            store.close()
            self._thread = None
            self._state = None
            raise
        self._port = self._thread.port

    def _start_subprocess(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "airflow_qstash.emulator",
            "--host",
            self.host,
            "--port",
            str(self._requested_port),
            "--db",
            self.db,
            "--log-level",
            self._log_level,
            "--http",
            self._http,
            "--request-log-size",
            str(self._request_log_size),
            "--bulk-cancel",
            self.bulk_cancel,
            "--action-rate",
            repr(float(self.action_rate)),
            "--sync-wait",
            repr(float(self.sync_wait)),
        ]
        if self._initial_faults is not None:
            cmd += ["--faults-json", json.dumps(self._initial_faults.to_dict())]
        if self._seed_messages:
            cmd += ["--seed", str(self._seed_messages), "--seed-random", str(self._seed_random)]
        env = dict(os.environ)
        env[TOKEN_ENV] = self.token  # not on the command line, where `ps` would show it
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        self._proc = sp.Popen(cmd, stdout=sp.PIPE, stdin=sp.DEVNULL, text=True, env=env)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(stream: Any) -> None:
            for line in stream:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, args=(self._proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + self._startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                line = ""
                if remaining <= 0:
                    self._kill()
                    raise RuntimeError("the emulator subprocess did not report ready in time") from None
                continue
            if line is None:
                code = self._proc.wait()
                self._proc = None
                raise RuntimeError(f"the emulator subprocess exited with code {code} during startup")
            match = _URL_RE.search(line)
            if match:
                self._port = int(match.group(1).rsplit(":", 1)[1])
                return

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def stop(self) -> None:
        """Stop the server (SIGTERM for the subprocess) and release the store. Idempotent."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except sp.TimeoutExpired:
                self._kill()
            self._proc = None
        if self._thread is not None:
            self._thread.stop()
            self._thread = None
        if self._state is not None:
            self._state.close()
            self._state = None
        self._port = None

    # -- helpers -------------------------------------------------------------------------

    @property
    def store(self) -> MessageStore:
        """The message store (in-process mode only)."""
        return self._local().store

    @property
    def state(self) -> EmulatorState:
        """The app's shared state: store, bulk actions, faults, request log (in-process mode only)."""
        return self._local()

    def _local(self) -> EmulatorState:
        if self._state is None:
            raise RuntimeError(
                "not available: the emulator is not started" if not self.subprocess else "in-process mode only"
            )
        return self._state

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
        if self.subprocess:
            ids: list[str] = self._admin("POST", "/_emulator/messages", list(messages))["messageIds"]
            return ids
        return self._local().store.add_messages(messages)

    def seed(self, n: int, seed: int = 0, *, now: int | None = None) -> int:
        """Insert ``n`` generated messages (reproducible for a given ``seed``); returns ``n``."""
        if self.subprocess:
            body: dict[str, Any] = {"count": n, "seed": seed}
            if now is not None:
                body["now"] = now
            seeded: int = self._admin("POST", "/_emulator/seed", body)["seeded"]
            return seeded
        return self._local().store.seed(n, seed, now=now)

    def held_ids(self) -> set[str]:
        """Ids of the messages still held (not cancelled)."""
        if self.subprocess:
            return set(self._admin("GET", "/_emulator/message-ids?state=held"))
        return self._local().store.message_ids("held")

    def messages(self, state: str = "held", limit: int | None = None) -> list[dict[str, Any]]:
        """Messages (``"held"``, ``"cancelled"`` or ``"all"``) with ``state`` and ``cancelledAt``."""
        if self.subprocess:
            suffix = "" if limit is None else f"&limit={limit}"
            result: list[dict[str, Any]] = self._admin("GET", f"/_emulator/messages?state={state}{suffix}")
            return result
        return self._local().store.messages(state, limit)

    def counts(self) -> dict[str, int]:
        """``{"held": n, "cancelled": m}``."""
        if self.subprocess:
            result: dict[str, int] = self._admin("GET", "/_emulator/stats")
            return result
        return self._local().store.counts()

    def request_log(self) -> list[dict[str, Any]]:
        """The ``/v2`` requests answered so far (see :class:`~airflow_qstash.emulator.app.RequestLog`)."""
        if self.subprocess:
            entries: list[dict[str, Any]] = self._admin("GET", "/_emulator/requests")
            for entry in entries:
                entry["query"] = [tuple(pair) for pair in entry["query"]]
            return entries
        return self._local().request_log.entries()

    def clear_request_log(self) -> None:
        """Forget the logged requests."""
        if self.subprocess:
            self._admin("DELETE", "/_emulator/requests")
        else:
            self._local().request_log.clear()

    def set_faults(self, faults: FaultConfig | None) -> None:
        """Switch fault injection (``None``: off); the random sequence restarts from ``faults.seed``."""
        if self.subprocess:
            self._admin("PUT", "/_emulator/faults", None if faults is None else faults.to_dict())
        else:
            self._local().faults.configure(faults)

    def get_faults(self) -> FaultConfig | None:
        """The active fault configuration."""
        if self.subprocess:
            data = self._admin("GET", "/_emulator/faults")
            return None if data is None else FaultConfig.from_dict(data)
        return self._local().faults.config

    def bulk_actions(self) -> list[dict[str, Any]]:
        """Every stored bulk action, oldest first (API fields plus ``cancelled`` and ``cancelLimit``)."""
        if self.subprocess:
            actions: list[dict[str, Any]] = self._admin("GET", "/_emulator/bulk-actions")
            return actions
        return self._local().actions.all()

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

    def reset(self) -> None:
        """Empty the store and the request log and go back to the initial fault configuration."""
        if self.subprocess:
            self._admin("POST", "/_emulator/reset")
        else:
            self._local().reset()


__all__ = ["DEFAULT_TOKEN", "READY_PREFIX", "TOKEN_ENV", "QStashEmulator", "ServerThread", "base_url_for"]
