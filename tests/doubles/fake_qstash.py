"""
Both transports behind one test interface.

:class:`FakeQStash` is a scripted server (answers per method and path, every request recorded with its raw
path and query). The ``client`` fixture runs the same hook call through :class:`~airflow_qstash.hooks.qstash.
QStashHook` (requests, mocked by requests-mock) or :class:`~airflow_qstash.hooks.qstash.QStashAsyncHook`
(httpx, through ``httpx.MockTransport``), so a test written once checks both wires. Every pause either hook
takes (retry waits and the procedures' :class:`~airflow_qstash.protocol.calls.Sleep`) is recorded instead of slept.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import requests
from requests_mock import ANY
from tenacity import AsyncRetrying

import airflow_qstash.hooks.qstash as qstash_module
from airflow_qstash.config import QStashConnectionConfig
from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from tests.conftest import FAKE_BASE_URL, connection_json
from tests.doubles.transports import route_async_hook

_NO_JSON = object()


@dataclass(frozen=True)
class Answer:
    """One scripted answer: a status, headers and a JSON or text body."""

    status: int = 200
    json: Any = _NO_JSON
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def body(self) -> bytes:
        return (self.text if self.json is _NO_JSON else json.dumps(self.json)).encode()


@dataclass(frozen=True)
class Drop:
    """
    A dropped connection: requests raises ``ConnectionError``, httpx ``ConnectError``; or, with ``error``, that
    exception as it is (a transport's own failure, e.g. ``httpx.ReadTimeout``).
    """

    error: Exception | None = None


DROP = Drop()


@dataclass(frozen=True)
class Sent:
    """One request as it left the hook: the raw (percent-encoded) path and query, header names lowercased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    #: the whole URL as sent (scheme, host, path and query)
    url: str = ""


Script = Answer | Drop | Callable[[Sent], "Answer | Drop"]


class FakeQStash:
    """
    Scripted answers per ``(method, path)``: given in order, the last one repeated. A request to an
    unscripted route gets 404, so a stray request fails the test that made it.
    """

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], list[Script]] = {}
        self.sent: list[Sent] = []

    def route(self, method: str, path: str, *answers: Script) -> None:
        self._routes[(method, path)] = list(answers)

    def handle(self, sent: Sent) -> Answer | Drop:
        self.sent.append(sent)
        answers = self._routes.get((sent.method, sent.path))
        if not answers:
            return Answer(404, {"error": f"unscripted route {sent.method} {sent.path}"})
        script = answers.pop(0) if len(answers) > 1 else answers[0]
        return script(sent) if callable(script) else script

    def calls(self, method: str | None = None, path: str | None = None) -> list[Sent]:
        return [s for s in self.sent if (method is None or s.method == method) and (path is None or s.path == path)]

    def request(self, method: str, path: str, query: str = "") -> Answer | Drop:
        """One request as a hook would send it, for a test that moves the server on between tries."""
        return self.handle(Sent(method, path, query, {}))

    # ----------------------------------------------------------------------- the two transports' mocks

    def requests_callback(self, request: Any, context: Any) -> bytes:
        """For ``requests_mock.register_uri(..., content=fake.requests_callback)``."""
        parts = urlsplit(request.url)  # not request.path: requests-mock lowercases it
        headers = {name.lower(): value for name, value in request.headers.items()}
        answer = self.handle(Sent(request.method, parts.path, parts.query, headers, request.url))
        if isinstance(answer, Drop):
            raise answer.error or requests.exceptions.ConnectionError("connection dropped")
        context.status_code = answer.status
        context.headers.update(answer.headers)
        return answer.body

    def httpx_handler(self, request: httpx.Request) -> httpx.Response:
        """An ``httpx.MockTransport`` handler."""
        raw_path, _, query = request.url.raw_path.decode("ascii").partition("?")
        headers = {name.lower(): value for name, value in request.headers.items()}
        answer = self.handle(Sent(request.method, raw_path, query, headers, str(request.url)))
        if isinstance(answer, Drop):
            raise answer.error or httpx.ConnectError("connection dropped", request=request)
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body)

    def serve(self, requests_mock: Any, monkeypatch: pytest.MonkeyPatch, base_url: str = FAKE_BASE_URL) -> None:
        """Answer every hook (the operators' and the triggers') that sends to ``base_url``, on both transports."""
        requests_mock.register_uri(ANY, re.compile(re.escape(base_url) + "/"), content=self.requests_callback)
        route_async_hook(monkeypatch, self.httpx_handler)


#: The requests that start a bulk action: a filter cancel, a DLQ filter delete.
START_ROUTES = (("DELETE", "/v2/messages"), ("DELETE", "/v2/dlq/bulk"))
#: What an action's outcome script gives: ``(start number, total) -> (reported processed, really cancelled)``.
Outcome = Callable[[int, int], tuple[int, int]]


class BulkActions(FakeQStash):
    """
    Today's bulk actions over ``left`` matching messages. A start (a request on ``START_ROUTES``) begins an
    action ``act-<n>`` over what is left then, or answers 412 while an identical one (same query but
    ``count``/``async``) is in progress; ``starts`` keeps every start's query. Each ``GET /v2/bulkActions/{id}``
    processes (and takes away) up to ``rate`` messages. With ``outcome``, an action is instead FINISHED at its
    start, reporting the ``processed`` the script says and taking away its ``cancelled``: a server whose count
    may lie.
    """

    def __init__(
        self,
        left: int,
        *,
        rate: int = 100,
        outcome: Outcome | None = None,
        start_status: int = 202,
        created_at: int = 1,
    ) -> None:
        super().__init__()
        self.left = left
        self.rate = rate
        self.outcome = outcome
        self.start_status = start_status
        self.created_at = created_at
        self.actions: dict[str, dict[str, Any]] = {}
        self.starts: list[list[tuple[str, str]]] = []
        for method, path in START_ROUTES:
            self.route(method, path, self._start)

    def _start(self, sent: Sent) -> Answer:
        query = parse_qsl(sent.query, keep_blank_values=True)
        self.starts.append(query)
        key = sorted((name, value) for name, value in query if name not in ("count", "async"))
        if any(a["key"] == key and a["state"] == "IN_PROGRESS" for a in self.actions.values()):
            return Answer(412, {"error": "an identical bulk action is already in progress"})
        action_id = f"act-{len(self.actions) + 1}"
        action = {"key": key, "state": "IN_PROGRESS", "total": self.left, "processed": 0}
        if self.outcome is not None:
            action["processed"], cancelled = self.outcome(len(self.starts), self.left)
            self.left -= cancelled
            action["state"] = "FINISHED"
        elif not self.left:
            action["state"] = "FINISHED"
        self.actions[action_id] = action
        self.route("GET", f"/v2/bulkActions/{action_id}", functools.partial(self._poll, action_id))
        return Answer(self.start_status, {"actionId": action_id})

    def _poll(self, action_id: str, sent: Sent) -> Answer:
        action = self.actions[action_id]
        if action["state"] == "IN_PROGRESS":
            step = min(self.rate, action["total"] - action["processed"])
            action["processed"] += step
            self.left -= step
            if action["processed"] >= action["total"]:
                action["state"] = "FINISHED"
        public = {name: action[name] for name in ("state", "total", "processed")}
        return Answer(200, {"actionId": action_id, **public, "createdAt": self.created_at, "filter": {}})


def use_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = "qstash_custom", **kwargs: Any) -> str:
    """Define ``conn_id`` through its ``AIRFLOW_CONN_*`` variable (see :func:`tests.conftest.connection_json`)."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(**kwargs))
    return conn_id


class _RecordingAsyncio:
    """The ``asyncio`` module as the hook module sees it, with ``sleep`` recorded instead of slept."""

    def __init__(self, recorded: list[float]) -> None:
        self._recorded = recorded

    async def sleep(self, seconds: float) -> None:
        self._recorded.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


class HookClient(ABC):
    """Runs a hook method on one transport against a :class:`FakeQStash`; ``sleeps`` records every pause."""

    name = ""

    def __init__(self, server: FakeQStash, sleeps: list[float], conn_id: str = "qstash_default") -> None:
        self.server = server
        self.sleeps = sleeps
        self.conn_id = conn_id

    @abstractmethod
    def run(self, method: str, *args: Any, conn_id: str | None = None, **kwargs: Any) -> Any:
        """Call the hook's ``method`` (on connection ``conn_id``) and return its result."""

    @abstractmethod
    def read_config(self, conn_id: str | None = None) -> QStashConnectionConfig:
        """Read the connection the way this hook does."""


class SyncClient(HookClient):
    name = "requests"

    def __init__(self, server: FakeQStash, sleeps: list[float], requests_mock: Any, **kwargs: Any) -> None:
        super().__init__(server, sleeps, **kwargs)
        requests_mock.register_uri(ANY, ANY, content=server.requests_callback)

    def run(self, method: str, *args: Any, conn_id: str | None = None, **kwargs: Any) -> Any:
        hook = QStashHook(conn_id or self.conn_id)
        try:
            return getattr(hook, method)(*args, **kwargs)
        finally:
            hook.close()

    def read_config(self, conn_id: str | None = None) -> QStashConnectionConfig:
        return QStashHook(conn_id or self.conn_id).config


class AsyncClient(HookClient):
    name = "httpx"

    async def _run(self, conn_id: str, method: str, *args: Any, **kwargs: Any) -> Any:
        hook = QStashAsyncHook(conn_id)
        try:
            config = await hook.get_config()
            hook._client = httpx.AsyncClient(
                transport=httpx.MockTransport(self.server.httpx_handler),
                base_url=config.base_url,
                headers=config.headers,
                timeout=config.timeout,
            )
            return await getattr(hook, method)(*args, **kwargs)
        finally:
            await hook.aclose()

    def run(self, method: str, *args: Any, conn_id: str | None = None, **kwargs: Any) -> Any:
        return asyncio.run(self._run(conn_id or self.conn_id, method, *args, **kwargs))

    def read_config(self, conn_id: str | None = None) -> QStashConnectionConfig:
        return asyncio.run(QStashAsyncHook(conn_id or self.conn_id).get_config())


@pytest.fixture
def fake_qstash() -> FakeQStash:
    return FakeQStash()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every pause of either hook (retry waits, procedure pauses), recorded instead of slept."""
    recorded: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(QStashHook, "sleep", staticmethod(recorded.append))
    monkeypatch.setattr(qstash_module, "AsyncRetrying", functools.partial(AsyncRetrying, sleep=fake_sleep))
    monkeypatch.setattr(qstash_module, "asyncio", _RecordingAsyncio(recorded))
    return recorded


@pytest.fixture(params=["requests", "httpx"])
def client(
    request: pytest.FixtureRequest, qstash_conn: str, fake_qstash: FakeQStash, sleeps: list[float]
) -> Iterator[HookClient]:
    """The same hook calls over requests (``QStashHook``) and over httpx (``QStashAsyncHook``)."""
    if request.param == "requests":
        yield SyncClient(fake_qstash, sleeps, request.getfixturevalue("requests_mock"))
    else:
        yield AsyncClient(fake_qstash, sleeps)
