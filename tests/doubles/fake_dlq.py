"""A small stateful DLQ behind both transports' mocks (requests-mock and ``httpx.MockTransport``).

It keeps entries ``{"dlqId", "label", "responseStatus"}`` and answers the four DLQ routes the way the spec
reads: ``count`` (default 100) and an opaque ``cursor`` (the dlqId after which the next page starts), a
cursor back only while more entries match, 404 on a retry whose ``dlqIds`` are not all there (nothing
retried then), 201 with one new message id per retried entry. Only ``label``, ``responseStatus`` and
``dlqIds`` filter here; that is all the hook tests need. ``script`` answers requests before the state does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

Answer = tuple[int, Any, dict[str, str]]
#: Today's DLQ endpoints (the 2026-12 API), which an older server answers with 404.
TODAYS_PATHS = frozenset({"/v2/dlq/bulk", "/v2/dlq/retry/bulk", "/v2/dlq/multi", "/v2/dlq/retry/multi"})


@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: list[tuple[str, str]]
    #: header names lowercased (httpx and requests spell them differently)
    headers: dict[str, str]


@dataclass
class FakeDLQ:
    entries: list[dict[str, Any]] = field(default_factory=list)
    retried: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    #: Answers to give instead of the state's, by request number (1-based), or a callable deciding.
    script: dict[int, Answer] = field(default_factory=dict)
    intercept: Callable[[Seen, FakeDLQ], Answer | None] | None = None
    #: An older server (the 2026-08 API: paging only). Its 404s on today's endpoints (a run's detection)
    #: are answered before ``seen`` and ``script``, and counted in ``probes``.
    legacy: bool = True
    probes: int = 0
    #: Today's server: the bulk actions (``actionId`` -> state), and entries each poll processes.
    actions: dict[str, dict[str, Any]] = field(default_factory=dict)
    action_rate: int = 1_000_000
    #: What a ``/bulk`` start answers: ``"action"`` (the BulkAction object, 202) or ``"id"`` (``{"actionId"}``, 200).
    start_answer: str = "action"

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

    # ----------------------------------------------------------------------- the server

    def answer(self, method: str, url: str, headers: dict[str, str]) -> Answer:
        parts = urlsplit(url)
        lowered = {name.lower(): value for name, value in headers.items()}
        if self.legacy and (parts.path in TODAYS_PATHS or parts.path.startswith("/v2/bulkActions")):
            self.probes += 1
            return 404, {"error": f"message {parts.path.rsplit('/', 1)[-1]} not found in the DLQ"}, {}
        seen = Seen(method, parts.path, parse_qsl(parts.query, keep_blank_values=True), lowered)
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

    def _todays(self, seen: Seen, query: dict[str, list[str]], method: str, headers: dict[str, str]) -> Answer | None:
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

    def _started(self, action: dict[str, Any]) -> Answer:
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

    # ----------------------------------------------------------------------- the two mocks

    def requests_callback(self, request: Any, context: Any) -> str:
        """For ``requests_mock.register_uri(ANY, ..., text=fake.requests_callback)``."""
        status, body, headers = self.answer(request.method, request.url, dict(request.headers))
        context.status_code = status
        context.headers.update(headers)
        return "" if body == "" else json.dumps(body)

    def httpx_handler(self, request: Any) -> Any:
        import httpx

        status, body, headers = self.answer(request.method, str(request.url), dict(request.headers))
        if body == "":
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=body, headers=headers)
