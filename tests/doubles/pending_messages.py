"""
A stateful ``DELETE /v2/messages`` with ``pending`` messages, behind either transport's mock: each call cancels
``min(pending, count)`` and answers ``{"cancelled": n}``.

One model for the operator's tests (requests-mock: the instance is a ``json=`` callback) and the trigger's
(``httpx.MockTransport(fake.httpx_handler)``), so both paths meet the same server. ``status``/``body`` answer
every call with that error instead; ``intercept(call_number, fake)`` may answer one call instead: return
``(status, json_body)`` (after changing ``fake.pending`` if that call should cancel some before failing), or
``None`` to answer normally.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

Intercept = Callable[[int, "PendingMessages"], "tuple[int, dict[str, Any]] | None"]


class PendingMessages:
    def __init__(
        self,
        pending: int,
        intercept: Intercept | None = None,
        *,
        status: int = 200,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.pending = pending
        self.intercept = intercept
        self.status = status
        self.body = body
        self.calls = 0
        self.cancelled_answers: list[int] = []
        #: Every request, as its transport's mock gives it (requests-mock's or an ``httpx.Request``).
        self.requests: list[Any] = []

    def answer(self, query: str) -> tuple[int, dict[str, Any] | None]:
        """The status and JSON body for one cancel with this query string."""
        self.calls += 1
        if self.status != 200:
            return self.status, self.body
        if self.intercept is not None:
            answer = self.intercept(self.calls, self)
            if answer is not None:
                return answer
        count = int(dict(parse_qsl(query, keep_blank_values=True))["count"])
        cancelled = min(self.pending, count)
        self.pending -= cancelled
        self.cancelled_answers.append(cancelled)
        return 200, {"cancelled": cancelled}

    def queries(self) -> list[list[tuple[str, str]]]:
        """Each request's query, case preserved (requests-mock's ``qs`` lowercases values)."""
        return [parse_qsl(urlsplit(str(request.url)).query) for request in self.requests]

    def __call__(self, request: Any, context: Any) -> dict[str, Any] | None:
        """requests-mock's ``json=`` callback."""
        self.requests.append(request)
        context.status_code, body = self.answer(urlsplit(request.url).query)
        return body

    def httpx_handler(self, request: httpx.Request) -> httpx.Response:
        """An ``httpx.MockTransport`` handler: only ``DELETE /v2/messages`` is served."""
        self.requests.append(request)
        if self.status == 200:
            assert (request.method, request.url.path) == ("DELETE", "/v2/messages")
        status, body = self.answer(request.url.query.decode())
        return httpx.Response(status, json=body)
