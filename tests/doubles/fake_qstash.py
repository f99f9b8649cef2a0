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
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests
from requests_mock import ANY
from tenacity import AsyncRetrying

import airflow_qstash.hooks.qstash as qstash_module
from airflow_qstash.config import QStashConnectionConfig
from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from tests.conftest import connection_json

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


class Drop:
    """A dropped connection: requests raises ``ConnectionError``, httpx ``ConnectError``."""


DROP = Drop()


@dataclass(frozen=True)
class Sent:
    """One request as it left the hook: the raw (percent-encoded) path and query, header names lowercased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]


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
        requests_mock.register_uri(ANY, ANY, content=self._callback)

    def _callback(self, request: Any, context: Any) -> bytes:
        parts = urlsplit(request.url)
        headers = {name.lower(): value for name, value in request.headers.items()}
        answer = self.server.handle(Sent(request.method, parts.path, parts.query, headers))
        if isinstance(answer, Drop):
            raise requests.exceptions.ConnectionError("connection dropped")
        context.status_code = answer.status
        context.headers.update(answer.headers)
        return answer.body

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

    def _handler(self, request: httpx.Request) -> httpx.Response:
        raw_path, _, query = request.url.raw_path.decode("ascii").partition("?")
        headers = {name.lower(): value for name, value in request.headers.items()}
        answer = self.server.handle(Sent(request.method, raw_path, query, headers))
        if isinstance(answer, Drop):
            raise httpx.ConnectError("connection dropped", request=request)
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body)

    async def _run(self, conn_id: str, method: str, *args: Any, **kwargs: Any) -> Any:
        hook = QStashAsyncHook(conn_id)
        try:
            config = await hook.get_config()
            hook._client = httpx.AsyncClient(
                transport=httpx.MockTransport(self._handler),
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
