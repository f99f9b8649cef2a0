"""QStashBulkCancelTrigger: serialisation and the async batch loop over a mocked httpx transport.

The trigger's client is replaced by one on :class:`httpx.MockTransport`; the connection itself is still
read (from ``AIRFLOW_CONN_QSTASH_DEFAULT``), so a missing or broken connection would show up here.
The async generator is driven with :func:`asyncio.run` (pytest-asyncio is not used).
"""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger
from tests.conftest import TEST_TOKEN, connection_json
from tests.doubles.fake_qstash import PendingMessages
from tests.doubles.transports import route_async_hook
from tests.support.bulk_cancel_trigger import FROM_DATE_MS, TO_DATE_MS, collect, filter_dict, make_trigger
from tests.support.connections import MISSING, serve_connections
from tests.support.summary_keys import BULK_CANCEL_SUMMARY_KEYS

SUMMARY_KEYS = BULK_CANCEL_SUMMARY_KEYS


@pytest.fixture
def mock_qstash(qstash_conn: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., PendingMessages]:
    """Route the async hook's client to a :class:`PendingMessages`; returns a factory."""
    clients: list[httpx.AsyncClient] = []

    def install(pending: int = 0, **kwargs: Any) -> PendingMessages:
        fake = PendingMessages(pending, **kwargs)
        route_async_hook(monkeypatch, fake.httpx_handler, clients)  # the real connection is still read
        return fake

    install.clients = clients  # type: ignore[attr-defined]
    return install


# --------------------------------------------------------------------------- serialisation


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="defaults"),
        pytest.param({"max_batches": 7, "batch_size": 1}, id="bounded"),
        pytest.param(
            {"bulk_filter": filter_dict(labels=None, message_ids=["m1", "m2"], from_date=None, to_date=None)}, id="ids"
        ),
        pytest.param(
            {"bulk_filter": filter_dict(labels=None, from_date=None, cancel_all=True), "qstash_conn_id": "other"},
            id="all",
        ),
    ],
)
def test_serialize_round_trips_without_the_token(kwargs: dict[str, Any]):
    trigger = make_trigger(**kwargs)
    cls_path, serialized = trigger.serialize()

    module_name, _, class_name = cls_path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    assert cls is QStashBulkCancelTrigger
    rebuilt = cls(**serialized)
    assert rebuilt.serialize() == (cls_path, serialized)
    assert set(serialized) == {
        "qstash_conn_id",
        "bulk_filter",
        "batch_size",
        "max_batches",
        "action_timeout",
        "resume_action_ids",
    }
    # JSON-serialisable as Airflow stores it, and holds only the connection id, never the token.
    text = json.dumps(serialized)
    assert json.loads(text) == serialized
    assert TEST_TOKEN not in text
    assert TEST_TOKEN not in repr(trigger.serialize())


def test_serialized_filter_rebuilds_the_same_filter():
    original = BulkCancelFilter.build(labels=["a", "b"], queue_names="q", from_date=FROM_DATE_MS, to_date=TO_DATE_MS)
    _, serialized = make_trigger(bulk_filter=original.to_dict()).serialize()
    assert BulkCancelFilter.from_dict(json.loads(json.dumps(serialized))["bulk_filter"]) == original


# --------------------------------------------------------------------------- run()


@pytest.mark.parametrize(("pending", "batch_size"), [(0, 500), (1, 500), (500, 500), (1234, 500), (250, 100)])
def test_run_cancels_until_zero_and_fires_one_success_event(mock_qstash, pending: int, batch_size: int):
    fake = mock_qstash(pending)
    events = collect(make_trigger(batch_size=batch_size))

    expected_batches = -(-pending // batch_size) + 1
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success"
    assert set(payload) == {"status", *SUMMARY_KEYS}
    assert payload["cancelled"] == pending
    assert payload["batches"] == expected_batches
    assert (payload["from_date"], payload["to_date"]) == (FROM_DATE_MS, TO_DATE_MS)
    assert fake.pending == 0
    assert len(fake.sent) == expected_batches
    for query in fake.queries():
        assert sorted(query) == sorted(
            [
                ("label", "report"),
                ("fromDate", str(FROM_DATE_MS)),
                ("toDate", str(TO_DATE_MS)),
                ("count", str(batch_size)),
                ("async", "true"),
            ]
        )


def test_run_sends_the_connection_token_and_closes_its_client(mock_qstash):
    fake = mock_qstash(3)
    collect(make_trigger())
    assert fake.sent
    assert all(sent.headers["authorization"] == f"Bearer {TEST_TOKEN}" for sent in fake.sent)
    assert all(TEST_TOKEN not in sent.url for sent in fake.sent)
    assert mock_qstash.clients and all(client.is_closed for client in mock_qstash.clients)


def test_run_api_error_fires_one_error_event_naming_the_status(mock_qstash):
    fake = mock_qstash(100, status=401, body={"error": "invalid token"})
    events = collect(make_trigger())

    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "error"
    assert "401" in payload["message"]
    assert "invalid token" in payload["message"]
    assert (payload["cancelled"], payload["batches"]) == (0, 0)
    assert len(fake.sent) == 1  # a 401 is not retried
    assert TEST_TOKEN not in json.dumps(payload)


def test_run_server_error_is_retried_then_fires_an_error_event(mock_qstash):
    fake = mock_qstash(100, status=500, body={"error": "failed to cancel"})
    events = collect(make_trigger())

    assert len(events) == 1
    assert events[0].payload["status"] == "error"
    assert "500" in events[0].payload["message"]
    assert len(fake.sent) == 4  # first attempt + max_retries=3 from the test connection


def test_run_max_batches_reached_fires_an_error_event_with_the_running_total(mock_qstash):
    fake = mock_qstash(1000)
    events = collect(make_trigger(batch_size=100, max_batches=3))

    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "error"
    assert "max_batches=3 reached" in payload["message"]
    assert "Cancelled 300 message(s) in 3 batch(es)" in payload["message"]
    assert (payload["cancelled"], payload["batches"]) == (300, 3)
    assert len(fake.sent) == 3
    assert fake.pending == 700


def test_run_message_ids_sends_no_dates(mock_qstash):
    fake = mock_qstash(2)
    events = collect(make_trigger(bulk_filter=filter_dict(labels=None, from_date=None, to_date=None, message_ids="m1")))
    assert events[0].payload["status"] == "success"
    assert events[0].payload["cancelled"] == 2
    for query in fake.queries():
        assert sorted(query) == [("count", "500"), ("messageIds", "m1")]


def test_run_with_a_connection_without_token_fires_an_error_event(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW_CONN_QSTASH_NO_TOKEN", connection_json(token=None))
    events = collect(make_trigger(qstash_conn_id="qstash_no_token"))
    assert len(events) == 1
    assert events[0].payload["status"] == "error"
    assert "'qstash_no_token' has no QStash token" in events[0].payload["message"]
    assert (events[0].payload["cancelled"], events[0].payload["batches"]) == (0, 0)


def test_missing_connection_yields_one_error_event_naming_it(monkeypatch):

    from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger

    serve_connections(monkeypatch, {"qstash_nowhere": MISSING})
    trigger = QStashBulkCancelTrigger(
        qstash_conn_id="qstash_nowhere", bulk_filter={"labels": ["a"]}, batch_size=500, max_batches=None
    )

    async def collect():
        return [event async for event in trigger.run()]

    events = asyncio.run(collect())
    assert len(events) == 1
    assert events[0].payload["status"] == "error"
    assert "qstash_nowhere" in events[0].payload["message"]
    assert events[0].payload["cancelled"] == 0
