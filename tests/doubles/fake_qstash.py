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
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

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
    unscripted route gets 404, so a stray request fails the test that made it. With a ``budget``, every
    request past it gets a 500 and sets ``overflow``: a loop that does not end shows instead of hanging.
    """

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], list[Script]] = {}
        self.sent: list[Sent] = []
        self.budget: int | None = None
        self.overflow = False

    def route(self, method: str, path: str, *answers: Script) -> None:
        self._routes[(method, path)] = list(answers)

    def handle(self, sent: Sent) -> Answer | Drop:
        """Record ``sent`` and answer it."""
        self.sent.append(sent)
        if self.budget is not None and len(self.sent) > self.budget:
            self.overflow = True
            return Answer(500, {"error": "the test's request budget is spent"})
        return self.respond(sent)

    def respond(self, sent: Sent) -> Answer | Drop:
        """The answer to one recorded request: its route's script (a route set may answer otherwise)."""
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


# --------------------------------------------------------------------------- the message store: pending messages


def _json_or_none(status: int, body: Any) -> Answer:
    """An answer with ``body`` as JSON, or with no body at all when it is ``None``."""
    return Answer(status, text="") if body is None else Answer(status, body)


Intercept = Callable[[int, "PendingMessages"], "tuple[int, dict[str, Any]] | None"]


class PendingMessages(FakeQStash):
    """
    A ``DELETE /v2/messages`` over ``pending`` messages (the older, synchronous API): each call cancels
    ``min(pending, count)`` and answers ``{"cancelled": n}``. ``status``/``body`` answer every call with that
    error instead; ``intercept(call_number, fake)`` may answer one call instead: return ``(status, json_body)``
    (after changing ``fake.pending`` if that call should cancel some before failing), or ``None`` to answer
    normally. The operator's tests and the trigger's meet this same server.
    """

    def __init__(
        self,
        pending: int,
        intercept: Intercept | None = None,
        *,
        status: int = 200,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.pending = pending
        self.intercept = intercept
        self.status = status
        self.body = body
        self.calls = 0
        self.cancelled_answers: list[int] = []
        self.route("DELETE", "/v2/messages", self._cancel)

    def _cancel(self, sent: Sent) -> Answer:
        self.calls += 1
        if self.status != 200:
            return _json_or_none(self.status, self.body)
        if self.intercept is not None:
            answer = self.intercept(self.calls, self)
            if answer is not None:
                return _json_or_none(*answer)
        count = int(dict(parse_qsl(sent.query, keep_blank_values=True))["count"])
        cancelled = min(self.pending, count)
        self.pending -= cancelled
        self.cancelled_answers.append(cancelled)
        return Answer(200, {"cancelled": cancelled})

    def queries(self) -> list[list[tuple[str, str]]]:
        """Each request's query, case preserved (requests-mock's ``qs`` lowercases values)."""
        return [parse_qsl(sent.query) for sent in self.sent]


# --------------------------------------------------------------------------- the dead-letter queue

#: A DLQ answer as its ``script`` and ``intercept`` give it: status, JSON body (``""``: none) and headers.
DLQAnswer = tuple[int, Any, dict[str, str]]
#: Today's DLQ endpoints (the 2026-12 API), which an older server answers with 404.
TODAYS_PATHS = frozenset({"/v2/dlq/bulk", "/v2/dlq/retry/bulk", "/v2/dlq/multi", "/v2/dlq/retry/multi"})


@dataclass
class Seen:
    """One request the DLQ received, its query parsed."""

    method: str
    path: str
    query: list[tuple[str, str]]
    #: header names lowercased (httpx and requests spell them differently)
    headers: dict[str, str]


@dataclass(eq=False)
class FakeDLQ(FakeQStash):
    """
    A small stateful DLQ. It keeps entries ``{"dlqId", "label", "responseStatus"}`` and answers the four DLQ
    routes the way the spec reads: ``count`` (default 100) and an opaque ``cursor`` (the dlqId after which the
    next page starts), a cursor back only while more entries match, 404 on a retry whose ``dlqIds`` are not
    all there (nothing retried then), 201 with one new message id per retried entry. Only ``label``,
    ``responseStatus`` and ``dlqIds`` filter here; that is all the hook tests need. ``script`` answers
    requests before the state does. Its answers come from its state, not from :meth:`FakeQStash.route`.
    """

    entries: list[dict[str, Any]] = field(default_factory=list)
    retried: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    #: Answers to give instead of the state's, by request number (1-based), or a callable deciding.
    script: dict[int, DLQAnswer] = field(default_factory=dict)
    intercept: Callable[[Seen, FakeDLQ], DLQAnswer | None] | None = None
    #: An older server (the 2026-08 API: paging only). Its 404s on today's endpoints (a run's detection)
    #: are answered before ``seen`` and ``script``, and counted in ``probes``.
    legacy: bool = True
    probes: int = 0
    #: Today's server: the bulk actions (``actionId`` -> state), and entries each poll processes.
    actions: dict[str, dict[str, Any]] = field(default_factory=dict)
    action_rate: int = 1_000_000
    #: What a ``/bulk`` start answers: ``"action"`` (the BulkAction object, 202) or ``"id"`` (``{"actionId"}``, 200).
    start_answer: str = "action"

    def __post_init__(self) -> None:
        FakeQStash.__init__(self)

    @classmethod
    def with_entries(cls, n: int, label: str = "report", status: int = 500, start: int = 0) -> FakeDLQ:
        fake = cls()
        fake.add(n, label, status, start)
        return fake

    def add(self, n: int, label: str = "report", status: int = 500, start: int = 0) -> None:
        self.entries += [
            {"dlqId": f"dlq-{label}-{i:07d}", "label": label, "responseStatus": status} for i in range(start, start + n)
        ]

    def ids(self, label: str | None = None) -> set[str]:
        return {e["dlqId"] for e in self.entries if label is None or e["label"] == label}

    def respond(self, sent: Sent) -> Answer | Drop:
        status, body, headers = self.answer(sent.method, sent.path, sent.query, sent.headers)
        return Answer(status, text="", headers=headers) if body == "" else Answer(status, body, headers=headers)

    # ----------------------------------------------------------------------- the server

    def answer(self, method: str, path: str, query_string: str, headers: dict[str, str]) -> DLQAnswer:
        """The status, body and headers the state (or ``script``, ``intercept``) gives one request."""
        lowered = {name.lower(): value for name, value in headers.items()}
        if self.legacy and (path in TODAYS_PATHS or path.startswith("/v2/bulkActions")):
            self.probes += 1
            return 404, {"error": f"message {path.rsplit('/', 1)[-1]} not found in the DLQ"}, {}
        seen = Seen(method, path, parse_qsl(query_string, keep_blank_values=True), lowered)
        self.seen.append(seen)
        scripted = self.script.get(len(self.seen))
        if scripted is None and self.intercept is not None:
            scripted = self.intercept(seen, self)
        if scripted is not None:
            return scripted
        query: dict[str, list[str]] = {}
        for name, value in seen.query:
            query.setdefault(name, []).extend(part for part in value.split(",") if part)
        if seen.path == "/v2/dlq" and method == "GET":
            page, cursor = self._page(query, ids_allowed=False)
            return 200, self._with_cursor({"messages": page}, cursor), {}
        if seen.path == "/v2/dlq" and method == "DELETE":
            page, cursor = self._page(query)
            self._remove(page)
            return 200, self._with_cursor({"deleted": len(page)}, cursor), {}
        if seen.path == "/v2/dlq/retry" and method == "POST":
            missing = [i for i in query.get("dlqIds", []) if i not in self.ids()]
            if missing:
                return 404, {"error": f"dlq messages not found: {', '.join(missing)}"}, {}
            page, cursor = self._page(query)
            self._remove(page)
            upstash = {k.lower(): v for k, v in headers.items() if k.lower().startswith("upstash-")}
            self.retried += [(entry["dlqId"], upstash) for entry in page]
            body = {"responses": [{"messageId": f"msg-{entry['dlqId']}"} for entry in page]}
            return 201, self._with_cursor(body, cursor), {}
        todays = None if self.legacy else self._todays(seen, query, method, headers)
        if todays is not None:
            return todays
        if seen.path.startswith("/v2/dlq/retry/") and method == "POST":
            dlq_id = unquote(seen.path.removeprefix("/v2/dlq/retry/"))
            found = [e for e in self.entries if e["dlqId"] == dlq_id]
            if not found:
                return 404, {"error": "not found"}, {}
            self._remove(found)
            upstash = {k.lower(): v for k, v in headers.items() if k.lower().startswith("upstash-")}
            self.retried.append((dlq_id, upstash))
            return 201, {"messageId": f"msg-{dlq_id}"}, {}
        if seen.path.startswith("/v2/dlq/") and method == "DELETE":
            dlq_id = unquote(seen.path.removeprefix("/v2/dlq/"))
            found = [e for e in self.entries if e["dlqId"] == dlq_id]
            if not found:
                return 404, {"error": "not found"}, {}
            self._remove(found)
            return 200, "", {}
        return 404, {"error": f"no route {method} {seen.path}"}, {}

    def _todays(
        self, seen: Seen, query: dict[str, list[str]], method: str, headers: dict[str, str]
    ) -> DLQAnswer | None:
        """Today's endpoints: ``/bulk`` (bulk actions), ``/multi``, ``GET /v2/bulkActions[/{id}]``."""
        upstash = {k.lower(): v for k, v in headers.items() if k.lower().startswith("upstash-")}
        kind = {("DELETE", "/v2/dlq/bulk"): "dlqDelete", ("POST", "/v2/dlq/retry/bulk"): "dlqRetry"}.get(
            (method, seen.path)
        )
        if kind is not None:
            key = (kind, tuple(sorted((n, v) for n, v in seen.query if n != "count")), tuple(sorted(upstash.items())))
            for action in self.actions.values():
                if action["key"] == key and action["state"] == "IN_PROGRESS":
                    return self._started(action)
            matching, _ = self._page({**query, "count": [str(10**9)]}, ids_allowed=False)
            action_id = f"act-{len(self.actions) + 1}"
            self.actions[action_id] = {
                "actionId": action_id,
                "kind": kind,
                "key": key,
                "state": "IN_PROGRESS" if matching else "FINISHED",
                "total": len(matching),
                "processed": 0,
                "createdAt": int(time.time() * 1000),
                "pending": [e["dlqId"] for e in matching],
                "headers": upstash,
            }
            return self._started(self.actions[action_id])
        if method == "GET" and seen.path.startswith("/v2/bulkActions/"):
            action = self.actions.get(unquote(seen.path.removeprefix("/v2/bulkActions/")))
            if action is None:
                return 404, {"error": "no such action"}, {}
            self._advance(action)
            return 200, self._public(action), {}
        if method == "GET" and seen.path == "/v2/bulkActions":
            return 200, {"bulkActions": [self._public(a) for a in self.actions.values()]}, {}
        if seen.path in ("/v2/dlq/multi", "/v2/dlq/retry/multi"):
            ids = query.get("dlqIds", [])
            if not ids or any(name != "dlqIds" for name in query):
                return 400, {"error": "dlqIds only"}, {}
            found = [e for e in self.entries if e["dlqId"] in set(ids)]
            if method == "DELETE":
                self._remove(found)
                return 200, {"deleted": len(found)}, {}
            if len(found) < len(set(ids)):
                return 404, {"error": "some dlq messages not found"}, {}
            self._remove(found)
            self.retried += [(e["dlqId"], upstash) for e in found]
            return 201, {"responses": [{"messageId": f"msg-{e['dlqId']}"} for e in found]}, {}
        return None

    def _started(self, action: dict[str, Any]) -> DLQAnswer:
        if self.start_answer == "id":
            return 200, {"actionId": action["actionId"]}, {}
        return 202, {**self._public(action), "extra": {"unknown": True}}, {}

    @staticmethod
    def _public(action: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in action.items() if k not in ("key", "pending", "headers")}

    def _advance(self, action: dict[str, Any]) -> None:
        """One poll's worth of work: ``action_rate`` snapshot entries processed (gone ones count too)."""
        if action["state"] == "FINISHED":
            return
        step, action["pending"] = action["pending"][: self.action_rate], action["pending"][self.action_rate :]
        found = [e for e in self.entries if e["dlqId"] in set(step)]
        self._remove(found)
        if action["kind"] == "dlqRetry":
            self.retried += [(e["dlqId"], action["headers"]) for e in found]
        action["processed"] += len(step)
        if not action["pending"]:
            action["state"] = "FINISHED"

    @staticmethod
    def _with_cursor(body: dict[str, Any], cursor: str | None) -> dict[str, Any]:
        return {**body, "cursor": cursor} if cursor else body

    def _page(self, query: dict[str, list[str]], ids_allowed: bool = True) -> tuple[list[dict[str, Any]], str | None]:
        if ids_allowed and query.get("dlqIds"):
            wanted = set(query["dlqIds"])
            return [e for e in self.entries if e["dlqId"] in wanted], None
        matching = [
            e
            for e in self.entries
            if ("label" not in query or e["label"] in query["label"])
            and ("responseStatus" not in query or str(e["responseStatus"]) in query["responseStatus"])
        ]
        after = query.get("cursor", [None])[0]
        if after is not None:
            matching = [e for e in matching if e["dlqId"] > after]
        count = int(query.get("count", ["100"])[0])
        page = matching[:count]
        return page, (page[-1]["dlqId"] if len(matching) > count else None)

    def _remove(self, page: list[dict[str, Any]]) -> None:
        gone = {e["dlqId"] for e in page}
        self.entries = [e for e in self.entries if e["dlqId"] not in gone]


# --------------------------------------------------------------------------- every route at once, in rounds


class Rounds(FakeQStash):
    """
    Every route the property tests reach, answered like QStash with batches (``{"cancelled": n}``,
    ``{"deleted": n}``, ``{"responses": [...]}``): the first bulk request of each route acts on ``first``
    items, later ones on none, so a correct loop ends after its confirming round; ``GET /v2/dlq`` lists
    nothing, ``GET /v2/queues`` none, a single-id ``DELETE`` succeeds. ``hostile`` answers (in order, one per
    request, before all of these) carry a secret in 2xx and error bodies. More than 200 requests fail the
    example: an unbounded loop.
    """

    def __init__(self, first: int = 2, hostile: list[Answer] | None = None) -> None:
        super().__init__()
        self.first = first
        self.hostile = list(hostile or [])
        #: requests so far per path (any method), this one's number among them
        self._rounds: dict[str, int] = {}
        self._round = 0
        self.route("DELETE", "/v2/messages", lambda sent: Answer(200, {"cancelled": self._acts_on()}))
        self.route("DELETE", "/v2/dlq", lambda sent: Answer(200, {"deleted": self._acts_on()}))
        self.route("POST", "/v2/dlq/retry", self._retry)
        self.route("GET", "/v2/dlq", Answer(200, {"messages": []}))
        self.route("GET", "/v2/queues", Answer(200, []))

    def _acts_on(self) -> int:
        return self.first if self._round == 0 else 0

    def _retry(self, sent: Sent) -> Answer:
        return Answer(201, {"responses": [{"messageId": f"msg_{self._round}_{i}"} for i in range(self._acts_on())]})

    def respond(self, sent: Sent) -> Answer | Drop:
        if len(self.sent) > 200:
            raise AssertionError("more than 200 requests: an unbounded loop")
        if self.hostile:
            return self.hostile.pop(0)
        self._round = self._rounds.get(sent.path, 0)
        self._rounds[sent.path] = self._round + 1
        if sent.method == "DELETE" and sent.path.startswith(("/v2/messages/", "/v2/dlq/")):
            return Answer(200, text="")
        return super().respond(sent)


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
