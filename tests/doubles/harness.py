"""
The transport double and the checks the input properties share (a plain module, importable by tests).

:func:`wire` replaces the lowest layer of both transports for the length of one example: every request the
sync hook (requests) or the async hook (httpx) would put on the network is answered by the scripted fake
(:class:`~tests.doubles.fake_qstash.FakeQStash`, usually its :class:`~tests.doubles.fake_qstash.Rounds`)
instead; a socket ``connect`` fails the example. Nothing above that layer is touched, so the hooks build their
own clients (base URL, proxies, timeouts), and the encoding, the retries, the loops and the redaction run as
they do in production: this is why the property tests do not reach the fake through ``route_async_hook``,
which replaces the async hook's client.

The checks are the invariants of issue #17.11:

* :func:`check_selection`: every bulk request (``DELETE /v2/messages``, ``DELETE /v2/dlq``,
  ``POST /v2/dlq/retry``) carries every filter the author set, and none is filterless (no list filter, no
  bound that excludes anything) unless the all-flag was set; a single-id request keeps the id in its one path
  segment; every request goes to the connection's host.
* :func:`check_texts`: no text the provider produced (errors and their causes, log records, results/XCom,
  trigger events) holds a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import requests_mock

from airflow_qstash.filters import DLQ_FILTERS, BulkCancelFilter
from tests.doubles.fake_qstash import FakeQStash, Sent

#: The wall clock every property runs at (2026-12-31T23:59:59.5Z): pinned, so no example depends on the day.
NOW_MS = 1_798_761_599_500
DAY_MS = 86_400_000
#: A lower bound older than this before now selects everything QStash keeps (messages wait at most a year's
#: delay; a DLQ entry is kept at most a plan's retention, far less): sent alone it is no filter.
OLDEST_KEPT_MS = 366 * DAY_MS

BULK_PATHS = {("DELETE", "/v2/messages"): "messages", ("DELETE", "/v2/dlq"): "dlq", ("POST", "/v2/dlq/retry"): "dlq"}
#: query parameter -> filter kind, per table (from the provider's own tables: their names are tested elsewhere).
PARAMS = {
    "messages": {spec.param: spec for spec in BulkCancelFilter.TABLE.specs},
    "dlq": {spec.param: spec for spec in DLQ_FILTERS.specs},
}


@dataclass(frozen=True)
class Request:
    """One request as it would have left the process: method, scheme://host[:port], raw path, query pairs."""

    method: str
    origin: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]

    @classmethod
    def of(cls, sent: Sent) -> Request:
        parts = urlsplit(sent.url)
        query = tuple(parse_qsl(sent.query, keep_blank_values=True))
        return cls(sent.method, f"{parts.scheme}://{parts.netloc}", sent.path, query, sent.headers)

    @property
    def kind(self) -> str | None:
        """``"messages"``/``"dlq"`` for a bulk request, else ``None``."""
        return BULK_PATHS.get((self.method, self.path))


def requests_to(server: FakeQStash) -> list[Request]:
    """What ``server`` received, as :class:`Request` s."""
    return [Request.of(sent) for sent in server.sent]


class NetworkUsed(AssertionError):
    pass


@contextlib.contextmanager
def wire(server: FakeQStash) -> Iterator[FakeQStash]:
    """Route both transports to ``server`` (and fail any other socket use) for the block."""

    async def async_answer(self: Any, request: httpx.Request) -> httpx.Response:
        response = server.httpx_handler(request)
        response.request = request
        return response

    def no_socket(self: Any, address: Any) -> None:
        raise NetworkUsed(f"a socket connect({address!r}) passed the transport double")

    patches = pytest_monkeypatch()
    patches.setattr(httpx.AsyncHTTPTransport, "handle_async_request", async_answer)
    patches.setattr(socket.socket, "connect", no_socket)
    try:
        with requests_mock.Mocker() as mock:
            mock.register_uri(requests_mock.ANY, requests_mock.ANY, content=server.requests_callback)
            yield server
    finally:
        patches.undo()


def pytest_monkeypatch() -> Any:
    import pytest

    return pytest.MonkeyPatch()


# --------------------------------------------------------------------------- capturing texts


class Captured(logging.Handler):
    """Every log record emitted anywhere while installed, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("requests_mock"):  # the transport double's own log, not the provider's
            return
        try:
            text = record.getMessage()
        except Exception:  # a record whose args do not fit its format: keep both raw
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + "\n".join(exception_texts(record.exc_info[1]))
        self.texts.append(text)


def _structlog_events() -> Any:
    """structlog's event capture where structlog is installed (Airflow 3), else an empty list."""
    try:
        from structlog.testing import capture_logs
    except ImportError:  # Airflow 2 logs through the standard library only
        return contextlib.nullcontext([])
    return capture_logs()


@contextlib.contextmanager
def captured_logs() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    # The provider's loggers (its hooks and operators log under airflow.task, its modules under their names)
    # at DEBUG; every record anywhere reaches the root's handlers, so the handler sits there.
    loggers = [logging.getLogger("airflow.task"), logging.getLogger("airflow_qstash")]
    levels = [lg.level for lg in loggers]
    root.addHandler(handler)
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    try:
        # Airflow 3's ``self.log`` is structlog: its events (formatted, before any masking) are captured too.
        with _structlog_events() as events:
            yield handler
        for event in events:
            error = event.get("exc_info")
            if isinstance(error, BaseException):
                handler.texts += exception_texts(error)
            handler.texts.append(json.dumps(event, default=repr))
    finally:
        root.removeHandler(handler)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def exception_texts(err: BaseException | None) -> list[str]:
    """What a task log shows of an exception (its traceback with every cause), and ``str``/``repr`` of each."""
    if err is None:
        return []
    texts = ["".join(traceback.format_exception(err))]
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        texts += [str(err), repr(err)]
        err = err.__cause__ or err.__context__
    return texts


def check_texts(texts: Iterable[str], secrets: Sequence[str]) -> None:
    for text in texts:
        for secret in secrets:
            at = text.find(secret)
            assert at < 0, f"a secret reached a text: ...{text[max(0, at - 300) : at + 100]!r}"


def dump(value: Any) -> str:
    return json.dumps(value, default=repr, sort_keys=True)


# --------------------------------------------------------------------------- the selection checks


def _date(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def selecting_params(request: Request) -> set[str]:
    """The parameters of a bulk request that narrow what it acts on (a bound that keeps everything does not)."""
    assert request.kind is not None
    table = PARAMS[request.kind]
    selecting: set[str] = set()
    for name, value in request.query:
        spec = table.get(name)
        if spec is None:
            continue
        if (
            spec.kind == "list"
            or (name == "fromDate" and (_date(value) or 0) > NOW_MS - OLDEST_KEPT_MS)
            or (name == "toDate" and (_date(value) or NOW_MS) < NOW_MS)
        ):
            selecting.add(name)
    return selecting


def check_selection(
    sent: Sequence[Request],
    *,
    origin: str,
    set_filters: Mapping[str, str],
    all_flag: bool,
    single: tuple[str, str] | None = None,
) -> None:
    """
    The invariants of a run that sent ``sent``.

    :param origin: ``scheme://host[:port]`` every request must go to.
    :param set_filters: filter name -> query parameter, for every filter the author set to a value.
    :param all_flag: the author set the all-flag (``cancel_all``/``delete_all``/``retry_all``).
    :param single: ``(path prefix, id)`` for a single-id call: its requests' paths are exactly prefix + id.
    """
    for request in sent:
        assert request.origin == origin, f"request to {request.origin}, the connection says {origin}"
        assert request.path.startswith("/v2/"), f"{request.method} {request.path}: the base URL swallowed the path"
        if single is not None:
            prefix, ident = single
            # the id whole (white space around it may be trimmed), percent-encoded into its one segment
            assert request.path in {prefix + quote(ident, safe=""), prefix + quote(ident.strip(), safe="")}, (
                f"the id {ident!r} left its path segment: {request.method} {request.path}?{request.query}"
            )
            continue
        if request.kind is None:
            continue
        names = {name for name, _ in request.query}
        for filter_name, param in set_filters.items():
            assert param in names, (
                f"{filter_name} was set but {request.method} {request.path} has no {param}: {request.query}"
            )
        for name, value in request.query:
            if name in PARAMS[request.kind] and PARAMS[request.kind][name].kind == "list":
                assert value.strip(), f"an empty {name} value: {request.query}"
        if not all_flag:
            assert selecting_params(request), f"a filterless bulk request without the all-flag: {request.query}"


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


def set_env(name: str, value: str | None) -> Callable[[], None]:
    """Set (or unset) an environment variable; returns the undo."""
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value

    def undo() -> None:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old

    return undo


@contextlib.contextmanager
def pinned_clock(now_ms: int = NOW_MS) -> Iterator[None]:
    """The provider's one wall-clock reader (``inputs.now_ms``) sees ``now_ms``; monotonic time runs."""
    import time
    from types import SimpleNamespace

    from airflow_qstash import inputs

    clock = SimpleNamespace(
        time=lambda: now_ms / 1000,
        time_ns=lambda: now_ms * 1_000_000,
        monotonic=time.monotonic,
        sleep=time.sleep,
    )
    patches = pytest_monkeypatch()
    patches.setattr(inputs, "time", clock)  # the provider's one wall-clock reader
    try:
        yield
    finally:
        patches.undo()


@contextlib.contextmanager
def no_sleep() -> Iterator[list[float]]:
    """Every pause of either hook (retry waits, polls) recorded instead of slept (as tests/doubles/fake_qstash.py)."""
    import functools

    from tenacity import AsyncRetrying

    import airflow_qstash.hooks.qstash as qstash_module
    from airflow_qstash.hooks.qstash import QStashHook

    recorded: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    class _Asyncio:
        sleep = staticmethod(fake_sleep)

        def __getattr__(self, name: str) -> Any:
            return getattr(asyncio, name)

    patches = pytest_monkeypatch()
    patches.setattr(QStashHook, "sleep", staticmethod(recorded.append))
    patches.setattr(qstash_module, "AsyncRetrying", functools.partial(AsyncRetrying, sleep=fake_sleep))
    patches.setattr(qstash_module, "asyncio", _Asyncio())
    try:
        yield recorded
    finally:
        patches.undo()
