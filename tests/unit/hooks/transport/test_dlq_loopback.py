"""The DLQ calls of both hooks against a real server on 127.0.0.1: a redirect is never followed.

Mocks cannot show it (they answer whatever URL a redirect leads to); the loopback server counts every
request that reaches it, so a followed redirect would show as one request more than scripted.

Each case scripts the server's answers in order and redirects at one request: on the paths the provider
uses first (today's API: ``/v2/dlq/bulk``, ``/v2/dlq/retry/bulk``, the ``GET /v2/bulkActions/{id}`` polls,
``/multi`` for id lists, the single-id paths) and on the deprecated paging fallback (the server answers
404 on today's paths, as an older server does, and redirects on the paging request).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from airflow_qstash.exceptions import QStashAPIError, QStashRetryableError, QStashRunIncomplete
from tests.conftest import TEST_TOKEN
from tests.support.loopback import LoopbackServer, Received, Reply
from tests.support.real_hooks import (
    DEADLINE_TRANSPORTS,
    GENEROUS_BOUND,
    SLOW_BODY,
    loopback_connection,
    run,
    use_deadline_of,
)

#: Scripted answers before the redirect.
NOT_FOUND = Reply(404, {"Content-Type": "application/json"}, b'{"error":"not found"}')
ACTION = Reply(200, {"Content-Type": "application/json"}, json.dumps({"actionId": "act_1"}).encode())
LISTED = Reply(
    200, {"Content-Type": "application/json"}, json.dumps({"messages": [{"dlqId": "d1"}, {"dlqId": "d2"}]}).encode()
)
DLQ_API = Reply(200, {"Content-Type": "application/json"}, b'{"messages":[]}')
REDIRECT = None  # the redirect, at the last scripted request

#: Each case as (hook method, its keyword arguments, the requests it must send in order, each with the
#: scripted answer; the last one is answered with the redirect).
CASES: dict[str, tuple[str, dict[str, Any], list[tuple[str, Reply | None]]]] = {
    # ---- today's API, the paths the provider uses first
    "delete-filter-bulk": ("dlq_delete", {"labels": "a"}, [("DELETE /v2/dlq/bulk?label=a", REDIRECT)]),
    "retry-filter-bulk": ("dlq_retry", {"labels": "a"}, [("POST /v2/dlq/retry/bulk?label=a", REDIRECT)]),
    "delete-filter-poll": (
        "dlq_delete",
        {"labels": "a"},
        [("DELETE /v2/dlq/bulk?label=a", ACTION), ("GET /v2/bulkActions/act_1", REDIRECT)],
    ),
    "retry-filter-poll": (
        "dlq_retry",
        {"labels": "a"},
        [("POST /v2/dlq/retry/bulk?label=a", ACTION), ("GET /v2/bulkActions/act_1", REDIRECT)],
    ),
    "delete-ids-multi": (
        "dlq_delete",
        {"dlq_ids": ["d1", "d2"]},
        [("DELETE /v2/dlq/multi?dlqIds=d1&dlqIds=d2", REDIRECT)],
    ),
    "retry-ids-multi": (
        "dlq_retry",
        {"dlq_ids": ["d1", "d2"]},
        [("POST /v2/dlq/retry/multi?dlqIds=d1&dlqIds=d2", REDIRECT)],
    ),
    "delete-one-id": ("dlq_delete", {"dlq_ids": "d1"}, [("DELETE /v2/dlq/d1", REDIRECT)]),
    "retry-one-id": ("dlq_retry", {"dlq_ids": "d1"}, [("POST /v2/dlq/retry/d1", REDIRECT)]),
    # a retry's /multi 404 is told apart from an older server by listing bulk actions
    "retry-ids-detection": (
        "dlq_retry",
        {"dlq_ids": ["d1", "d2"]},
        [("POST /v2/dlq/retry/multi?dlqIds=d1&dlqIds=d2", NOT_FOUND), ("GET /v2/bulkActions?count=1", REDIRECT)],
    ),
    # a single id's 404 is "gone" only once the DLQ API is confirmed there
    "retry-one-id-confirm": (
        "dlq_retry",
        {"dlq_ids": "d1"},
        [("POST /v2/dlq/retry/d1", NOT_FOUND), ("GET /v2/dlq?count=1", REDIRECT)],
    ),
    "delete-message": ("delete_dlq_message", {"dlq_id": "d_1"}, [("DELETE /v2/dlq/d_1", REDIRECT)]),
    "list": ("list_dlq", {"labels": "a"}, [("GET /v2/dlq?label=a&count=100", REDIRECT)]),
    # ---- an older server (404 on today's paths): the deprecated paging API
    "delete-filter-paged-list": (
        "dlq_delete",
        {"labels": "a"},
        [("DELETE /v2/dlq/bulk?label=a", NOT_FOUND), ("GET /v2/dlq?label=a&count=100", REDIRECT)],
    ),
    "retry-filter-paged-list": (
        "dlq_retry",
        {"labels": "a"},
        [("POST /v2/dlq/retry/bulk?label=a", NOT_FOUND), ("GET /v2/dlq?label=a&count=100", REDIRECT)],
    ),
    "delete-filter-paged": (
        "dlq_delete",
        {"labels": "a"},
        [
            ("DELETE /v2/dlq/bulk?label=a", NOT_FOUND),
            ("GET /v2/dlq?label=a&count=100", LISTED),
            ("DELETE /v2/dlq?dlqIds=d1&dlqIds=d2&count=100", REDIRECT),
        ],
    ),
    "retry-filter-paged": (
        "dlq_retry",
        {"labels": "a"},
        [
            ("POST /v2/dlq/retry/bulk?label=a", NOT_FOUND),
            ("GET /v2/dlq?label=a&count=100", LISTED),
            ("POST /v2/dlq/retry?dlqIds=d1&dlqIds=d2", REDIRECT),
        ],
    ),
    "delete-ids-paged": (
        "dlq_delete",
        {"dlq_ids": ["d1", "d2"]},
        [
            ("DELETE /v2/dlq/multi?dlqIds=d1&dlqIds=d2", NOT_FOUND),
            ("DELETE /v2/dlq?dlqIds=d1&dlqIds=d2&count=100", REDIRECT),
        ],
    ),
    "retry-ids-paged": (
        "dlq_retry",
        {"dlq_ids": ["d1", "d2"]},
        [
            ("POST /v2/dlq/retry/multi?dlqIds=d1&dlqIds=d2", NOT_FOUND),
            ("GET /v2/bulkActions?count=1", NOT_FOUND),
            ("POST /v2/dlq/retry?dlqIds=d1&dlqIds=d2", REDIRECT),
        ],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("status", [301, 307, 308])
@pytest.mark.parametrize("transport", ["requests", "httpx"])
def test_a_dlq_redirect_is_never_followed(monkeypatch, transport, status, case):
    method, kwargs, script = CASES[case]

    def respond(received: Received) -> Reply:
        index = len(server.requests) - 1  # this request is already counted
        if index >= len(script):
            return Reply(500, body=b"unscripted request")
        reply = script[index][1]
        # back to this server, without the query: a followed redirect would delete or retry everything
        return reply if reply is not None else Reply(status, {"Location": f"{server.base_url}/v2/dlq"})

    server = LoopbackServer(respond)
    with server:
        conn_id = loopback_connection(monkeypatch, server, max_retries=3)
        with pytest.raises((QStashAPIError, QStashRunIncomplete)) as info:
            if method == "delete_dlq_message":
                run(transport, conn_id, method, *kwargs.values())
            else:
                run_kw(transport, conn_id, method, kwargs)
    message = str(info.value)
    sent = [f"{r.method} {r.target}" for r in server.requests]
    # exactly the scripted requests: one more would be the followed redirect
    assert sent == [request for request, _ in script]
    assert not isinstance(info.value, QStashRetryableError)
    assert f"answered {status} redirecting to {server.base_url}/v2/dlq" in message
    assert TEST_TOKEN not in message


#: The deadline cases: each path a run can stop on first, today's and the paging fallback's.
DEADLINE_CASES = [
    "delete-filter-bulk",
    "retry-filter-poll",
    "delete-ids-multi",
    "retry-one-id",
    "delete-filter-paged",
    "retry-ids-paged",
]


@pytest.mark.parametrize("case", DEADLINE_CASES)
@pytest.mark.parametrize("transport", DEADLINE_TRANSPORTS)
def test_a_dlq_request_ends_at_its_total_deadline_however_slowly_the_server_trickles(monkeypatch, transport, case):
    use_deadline_of(monkeypatch, transport)
    method, kwargs, script = CASES[case]
    slow = Reply(200, {"Content-Type": "application/json"}, SLOW_BODY, trickle="body", pause=0.2)
    assert len(slow.body) * slow.pause > 4 * GENEROUS_BOUND  # the trickle outlasts the bound by far

    def respond(received: Received) -> Reply:
        index = len(server.requests) - 1
        if index >= len(script):
            return Reply(500, body=b"unscripted request")
        reply = script[index][1]
        return reply if reply is not None else slow

    server = LoopbackServer(respond)
    with server:
        conn_id = loopback_connection(monkeypatch, server, timeout=1, max_retries=0)
        started = time.monotonic()
        with pytest.raises((QStashAPIError, QStashRunIncomplete)) as info:
            run_kw("httpx" if transport.startswith("httpx") else transport, conn_id, method, kwargs)
        elapsed = time.monotonic() - started
    assert elapsed < GENEROUS_BOUND
    assert "the attempt's deadline passed" in str(info.value)
    assert [f"{r.method} {r.target}" for r in server.requests] == [request for request, _ in script]
    assert server.completed == len(script) - 1  # the client hung up before the slow answer was complete


def run_kw(transport: str, conn_id: str, method: str, kwargs: dict[str, Any]) -> object:
    """:func:`tests.unit.hooks.transport.test_loopback.run` with keyword arguments."""
    import asyncio

    from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook

    if transport == "httpx":

        async def call() -> object:
            hook = QStashAsyncHook(conn_id)
            try:
                return await getattr(hook, method)(**kwargs)
            finally:
                await hook.aclose()

        return asyncio.run(call())
    hook = QStashHook(conn_id)
    try:
        return getattr(hook, method)(**kwargs)
    finally:
        hook.close()
