"""
Issue 17 item 6: a 2xx answer the provider cannot read is redacted and cut like an error answer, on both
hooks and in trigger events; and no answer is read past :data:`~airflow_qstash.protocol.answers.MAX_ANSWER_BYTES`.

Before the fix, ``{answer!r:.200}`` quoted a 2xx body raw into the error (and so into the trigger event
stored in the metadata database), while the same body with status 400 was redacted; and ``response.text``
read a 2xx body of any size into memory.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from airflow_qstash.exceptions import QStashAPIError, redact
from airflow_qstash.filters import BulkCancelFilter, DLQFilter
from airflow_qstash.protocol import answers
from airflow_qstash.triggers.dlq import QStashDLQTrigger
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger
from tests.conftest import TEST_TOKEN
from tests.doubles.fake_qstash import Answer, HookClient, use_connection
from tests.doubles.transports import route_async_hook
from tests.support.token_pieces import SECRET, assert_no_piece

LABELS = BulkCancelFilter.build(labels="a")
MANGLED = f"{SECRET[:10]}\n{SECRET[10:]}"
#: The longest error text an unreadable 2xx answer may produce (the quoted part is cut to 200 characters).
MESSAGE_BOUND = 600
PADDING = "p" * 5_000


def _action(**fields: Any) -> dict[str, Any]:
    return {"actionId": "act_1", "state": "FINISHED", "total": 1, "processed": 1, "filter": {}, **fields}


#: (hook method, its arguments, the route, an unreadable 2xx answer that echoes the token).
UNREADABLE = {
    "bulk-cancel-neither": ("bulk_cancel_by_filter", (LABELS,), ("DELETE", "/v2/messages"), {"echo": SECRET}),
    "bulk-cancel-count": ("bulk_cancel_by_filter", (LABELS,), ("DELETE", "/v2/messages"), {"cancelled": SECRET}),
    "bulk-cancel-mangled": ("bulk_cancel_by_filter", (LABELS,), ("DELETE", "/v2/messages"), {"x": MANGLED}),
    "bulk-cancel-long": (
        "bulk_cancel_by_filter",
        (LABELS,),
        ("DELETE", "/v2/messages"),
        {"x": PADDING, "y": SECRET},
    ),
    "action-no-id": ("get_bulk_action", ("act_1",), ("GET", "/v2/bulkActions/act_1"), {"token": SECRET}),
    "action-state": (
        "get_bulk_action",
        ("act_1",),
        ("GET", "/v2/bulkActions/act_1"),
        _action(state=f"{SECRET}{PADDING}"),
    ),
    "action-id-in-state-error": (
        "get_bulk_action",
        ("act_1",),
        ("GET", "/v2/bulkActions/act_1"),
        _action(actionId=SECRET + PADDING, state="?"),
    ),
    "action-total": ("get_bulk_action", ("act_1",), ("GET", "/v2/bulkActions/act_1"), _action(total=MANGLED)),
    "action-list": ("list_bulk_actions", (), ("GET", "/v2/bulkActions"), {"bulkActions": SECRET}),
    "dlq-list": ("list_dlq", (), ("GET", "/v2/dlq"), {"messages": [SECRET]}),
    "dlq-list-cursor": ("list_dlq", (), ("GET", "/v2/dlq"), {"messages": [], "cursor": {"c": SECRET}}),
    "dlq-delete": ("delete_dlq_message", ("dlq_1",), ("DELETE", "/v2/dlq/dlq_1"), None),
}


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_an_unreadable_2xx_answer_that_echoes_the_token_is_redacted_and_cut(client: HookClient, monkeypatch, case):
    method, args, (verb, path), body = UNREADABLE[case]
    # body None: a 2xx that is not JSON at all (redacted before this fix too, kept honest here)
    answer = Answer(200, text=f"<html>{MANGLED}{PADDING}</html>") if body is None else Answer(200, body)
    conn_id = use_connection(monkeypatch, conn_id="qstash_echo", token=SECRET)
    client.server.route(verb, path, answer)
    with pytest.raises(QStashAPIError) as info:
        client.run(method, *args, conn_id=conn_id)
    assert_no_piece(info.value)
    assert len(str(info.value)) < MESSAGE_BOUND, str(info.value)


@pytest.mark.parametrize("status", [200, 400])
def test_a_2xx_and_a_4xx_body_are_redacted_alike(client: HookClient, monkeypatch, status):
    conn_id = use_connection(monkeypatch, conn_id="qstash_echo", token=SECRET)
    client.server.route("GET", "/v2/dlq", Answer(status, {"messages": f"token {SECRET}"}))
    with pytest.raises(QStashAPIError) as info:
        client.run("list_dlq", conn_id=conn_id)
    assert_no_piece(info.value)
    assert "***" in str(info.value)


def test_redact_quotes_any_value_and_cuts_it_after_redacting():
    text = redact({"a": "x" * 195 + SECRET}, SECRET, limit=200)
    assert SECRET[:4] not in text and text.endswith("…") and len(text) == 201
    assert redact("short", limit=200) == "short"
    assert redact(["a"]) == "['a']"


# --------------------------------------------------------------------------- the deferrable path


def _run_trigger(trigger: Any, handler: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    route_async_hook(monkeypatch, handler)

    async def drain() -> list[Any]:
        return [event async for event in trigger.run()]

    return asyncio.run(drain())


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"deleted": TEST_TOKEN}, id="count"),
        pytest.param({"deleted": 1, "cursor": [TEST_TOKEN]}, id="cursor"),
        pytest.param({"x": TEST_TOKEN[:9] + "\\n" + TEST_TOKEN[9:]}, id="escaped-newline"),
    ],
)
def test_a_dlq_trigger_event_carries_no_token_from_a_2xx_answer(qstash_conn, monkeypatch, body):
    trigger = QStashDLQTrigger(
        action="delete",
        qstash_conn_id="qstash_default",
        dlq_filter=DLQFilter.build(labels="a").to_dict(),
        max_requests=10,
    )
    [event] = _run_trigger(trigger, lambda request: httpx.Response(200, json=body), monkeypatch)
    assert event.payload["status"] == "error"
    stored = json.dumps(event.payload)
    assert TEST_TOKEN[:12] not in stored and TEST_TOKEN[-12:] not in stored


def test_a_bulk_cancel_trigger_event_carries_no_token_from_a_2xx_answer(qstash_conn, monkeypatch):
    trigger = QStashBulkCancelTrigger(
        qstash_conn_id="qstash_default", bulk_filter=BulkCancelFilter.build(labels="a").to_dict(), batch_size=500
    )
    handler = lambda request: httpx.Response(200, json={"neither": TEST_TOKEN})  # noqa: E731
    [event] = _run_trigger(trigger, handler, monkeypatch)
    assert event.payload["status"] == "error"
    stored = json.dumps(event.payload)
    assert TEST_TOKEN[:12] not in stored and TEST_TOKEN[-12:] not in stored


# --------------------------------------------------------------------------- the size cap


@pytest.mark.parametrize("status", [200, 400, 500])
def test_an_answer_larger_than_the_cap_is_an_error_that_says_so(client: HookClient, monkeypatch, status):
    monkeypatch.setattr(answers, "MAX_ANSWER_BYTES", 1_000)
    client.server.route("DELETE", "/v2/messages", Answer(status, {"cancelled": 1, "pad": "x" * 2_000}))
    with pytest.raises(QStashAPIError, match="more than the 1,000 bytes this provider reads") as info:
        client.run("bulk_cancel_by_filter", LABELS)
    assert info.value.http_status == status
    assert len(client.server.sent) == 1  # not retried: the same server would send the same body


def test_an_answer_at_the_cap_is_read(client: HookClient, monkeypatch):
    body = json.dumps({"cancelled": 2, "pad": ""})
    body = json.dumps({"cancelled": 2, "pad": "x" * (1_000 - len(body))})
    assert len(body) == 1_000
    monkeypatch.setattr(answers, "MAX_ANSWER_BYTES", 1_000)
    client.server.route("DELETE", "/v2/messages", Answer(200, text=body))
    assert client.run("bulk_cancel_by_filter", LABELS).cancelled == 2


def test_a_trigger_event_message_passes_redact_even_when_the_run_quotes_an_answer(qstash_conn, monkeypatch):
    """A run's own incomplete message may quote an answer (a cursor): the stored event text is redacted."""
    trigger = QStashDLQTrigger(
        action="delete",
        qstash_conn_id="qstash_default",
        dlq_filter=DLQFilter.build(labels="a").to_dict(),
        max_requests=10,
    )
    # the same cursor twice without deleting: the run's own message quotes the cursor
    handler = lambda request: httpx.Response(200, json={"deleted": 0, "cursor": f"c-{TEST_TOKEN}"})  # noqa: E731
    [event] = _run_trigger(trigger, handler, monkeypatch)
    assert event.payload["status"] == "error"
    assert TEST_TOKEN[:12] not in event.payload["message"] and TEST_TOKEN[-12:] not in event.payload["message"]
