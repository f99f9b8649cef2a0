"""The DLQ calls of both hooks against a real server on 127.0.0.1: a redirect is never followed.

Mocks cannot show it (they answer whatever URL a redirect leads to); the loopback server counts every
request that reaches it, so a followed redirect would show as a second request.
"""

from __future__ import annotations

import pytest

from airflow_qstash.exceptions import QStashAPIError, QStashRetryableError, QStashRunIncomplete
from tests.conftest import TEST_TOKEN
from tests.hooks.loopback import LoopbackServer, Received, Reply
from tests.hooks.test_loopback import loopback_connection, run

#: Each DLQ operation as (hook method, its keyword arguments, the request it must send).
OPERATIONS = {
    "delete": ("dlq_delete", {"dlq_ids": "d1"}, "DELETE /v2/dlq?dlqIds=d1&count=100"),
    "retry": ("dlq_retry", {"dlq_ids": "d1"}, "POST /v2/dlq/retry?dlqIds=d1"),
    # a filter run lists the entries it selects first
    "delete-filter": ("dlq_delete", {"labels": "a"}, "GET /v2/dlq?label=a&count=100"),
    "retry-filter": ("dlq_retry", {"labels": "a"}, "GET /v2/dlq?label=a&count=100"),
    "list": ("list_dlq", {"labels": "a"}, "GET /v2/dlq?label=a&count=100"),
    "delete-one": ("delete_dlq_message", {"dlq_id": "d_1"}, "DELETE /v2/dlq/d_1"),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("status", [301, 307, 308])
@pytest.mark.parametrize("transport", ["requests", "httpx"])
def test_a_dlq_redirect_is_never_followed(monkeypatch, transport, status, operation):
    method, kwargs, expected_request = OPERATIONS[operation]

    def redirect(received: Received) -> Reply:
        # back to this server, without the query: a followed redirect would delete or retry everything
        return Reply(status, {"Location": f"{server.base_url}/v2/dlq"})

    server = LoopbackServer(redirect)
    with server:
        conn_id = loopback_connection(monkeypatch, server, max_retries=3)
        with pytest.raises((QStashAPIError, QStashRunIncomplete)) as info:
            run(transport, conn_id, method, *kwargs.values()) if method == "delete_dlq_message" else run_kw(
                transport, conn_id, method, kwargs
            )
    message = str(info.value)
    assert len(server.requests) == 1, "a second request reached the server: the redirect was followed"
    assert f"{server.requests[0].method} {server.requests[0].target}" == expected_request
    assert not isinstance(info.value, QStashRetryableError)
    assert f"answered {status} redirecting to {server.base_url}/v2/dlq" in message
    assert TEST_TOKEN not in message


def run_kw(transport: str, conn_id: str, method: str, kwargs: dict[str, str]) -> object:
    """:func:`tests.hooks.test_loopback.run` with keyword arguments."""
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
