"""
Both hooks against a real server on 127.0.0.1 (issue 11 items 1 and 9): a redirect is never followed (the
server counts every request, so a second one to the ``Location`` would show), and every attempt ends at its
total deadline however slowly the server trickles its status line, headers or body.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from airflow_qstash.exceptions import QStashAPIError, QStashRetryableError, QStashTransportError
from airflow_qstash.protocol.messages import BatchCancelled
from tests.conftest import TEST_TOKEN
from tests.support.loopback import LoopbackServer, Received, Reply
from tests.support.real_hooks import (
    DEADLINE_TRANSPORTS,
    GENEROUS_BOUND,
    LABELS,
    SLOW_BODY,
    TRANSPORTS,
    loopback_connection,
    run,
    use_deadline_of,
)

#: Each operation as (hook method, its arguments, the request it must send).
OPERATIONS = {
    "bulk-cancel": ("bulk_cancel_by_filter", (LABELS,), "DELETE /v2/messages?label=a&async=true"),
    "cancel-message": ("cancel_message", ("msg_1",), "DELETE /v2/messages/msg_1"),
    "get-bulk-action": ("get_bulk_action", ("act_1",), "GET /v2/bulkActions/act_1"),
}


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_redirect_is_never_followed(monkeypatch, transport, status, operation):
    method, args, expected_request = OPERATIONS[operation]

    def redirect(received: Received) -> Reply:
        # back to this same server, without the query: a followed redirect would be a cancel of everything
        return Reply(status, {"Location": f"{server.base_url}/v2/messages"})

    server = LoopbackServer(redirect)
    with server:
        conn_id = loopback_connection(monkeypatch, server, max_retries=3)
        with pytest.raises(QStashAPIError) as info:
            run(transport, conn_id, method, *args)
    message = str(info.value)
    assert len(server.requests) == 1, "a second request reached the server: the redirect was followed"
    assert f"{server.requests[0].method} {server.requests[0].target}" == expected_request
    assert server.requests[0].headers["authorization"] == f"Bearer {TEST_TOKEN}"
    assert not isinstance(info.value, QStashRetryableError)
    assert info.value.http_status == status
    assert f"answered {status}" in message
    assert f"{server.base_url}/v2/messages" in message
    assert "never follows redirects" in message
    assert TEST_TOKEN not in message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_redirect_without_a_location_is_refused_too(monkeypatch, transport):
    with LoopbackServer(lambda received: Reply(307)) as server:
        conn_id = loopback_connection(monkeypatch, server)
        with pytest.raises(QStashAPIError, match="answered 307 redirecting to \\(no Location header\\)"):
            run(transport, conn_id, "bulk_cancel_by_filter", LABELS)
    assert len(server.requests) == 1


# --------------------------------------------------------------------------- total deadline per attempt


@pytest.mark.parametrize("part", ["head", "body"])
@pytest.mark.parametrize("transport", DEADLINE_TRANSPORTS)
def test_an_attempt_ends_at_its_total_deadline_however_slowly_the_server_trickles(monkeypatch, transport, part):
    use_deadline_of(monkeypatch, transport)
    reply = Reply(200, {"Content-Type": "application/json"}, SLOW_BODY, trickle=part, pause=0.2)
    assert len(reply.body) * reply.pause > 4 * GENEROUS_BOUND  # the trickle outlasts the bound by far
    with LoopbackServer(lambda received: reply) as server:
        conn_id = loopback_connection(monkeypatch, server, timeout=1, max_retries=0)
        started = time.monotonic()
        with pytest.raises(QStashAPIError) as info:
            run(transport, conn_id, "bulk_cancel_by_filter", LABELS)
        elapsed = time.monotonic() - started
    assert elapsed < GENEROUS_BOUND
    assert "the attempt's deadline passed" in str(info.value)
    assert isinstance(info.value.__cause__, QStashTransportError)
    assert len(server.requests) == 1
    assert server.completed == 0  # the client hung up before the answer was complete


@pytest.mark.parametrize("transport", DEADLINE_TRANSPORTS)
def test_each_retry_gets_its_own_deadline(monkeypatch, transport):
    use_deadline_of(monkeypatch, transport)
    reply = Reply(200, {"Content-Type": "application/json"}, SLOW_BODY, trickle="body", pause=0.2)
    with LoopbackServer(lambda received: reply) as server:
        conn_id = loopback_connection(monkeypatch, server, timeout=1, max_retries=1)
        started = time.monotonic()
        with pytest.raises(QStashAPIError) as info:
            run(transport, conn_id, "bulk_cancel_by_filter", LABELS)
        elapsed = time.monotonic() - started
    assert elapsed < 2 * GENEROUS_BOUND
    assert "the attempt's deadline passed" in str(info.value)
    assert "gave up after 2 attempts" in str(info.value)
    assert len(server.requests) == 2


@pytest.mark.parametrize("transport", DEADLINE_TRANSPORTS)
def test_a_prompt_answer_larger_than_a_read_buffer_passes_through_the_deadline(monkeypatch, transport):
    use_deadline_of(monkeypatch, transport)
    big = json.dumps({"cancelled": 3, "padding": "y" * 300_000}).encode()
    with LoopbackServer(lambda received: Reply(200, {"Content-Type": "application/json"}, big)) as server:
        conn_id = loopback_connection(monkeypatch, server, timeout=5, max_retries=0)
        assert run(transport, conn_id, "bulk_cancel_by_filter", LABELS) == BatchCancelled(3)
        assert run(transport, conn_id, "bulk_cancel_by_filter", LABELS) == BatchCancelled(3)
    assert len(server.requests) == 2
    assert server.completed == 2


@pytest.mark.parametrize("deadline", ["asyncio.timeout", "async_timeout.timeout"])
def test_a_cancel_that_lands_as_the_wait_completes_is_not_swallowed(deadline):
    """The reason the hook uses a timeout block, not ``wait_for``, holds for Python 3.10's deadline too."""
    import async_timeout

    bounded = {"asyncio.timeout": asyncio.timeout, "async_timeout.timeout": async_timeout.timeout}[deadline]

    async def scenario() -> None:
        answer = asyncio.get_running_loop().create_future()

        async def attempt() -> str:
            async with bounded(5):
                await answer
            return "ran on after the cancel"

        task = asyncio.create_task(attempt())
        await asyncio.sleep(0)  # the attempt now waits for its answer
        answer.set_result(None)  # the answer arrives ...
        task.cancel()  # ... in the same loop turn as the triggerer's cancel
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
