"""QStashDLQTrigger: serialisation without the token, and exactly one event per run, over httpx."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_qstash.filters import DLQFilter
from airflow_qstash.triggers.dlq import QStashDLQTrigger
from tests.conftest import TEST_TOKEN
from tests.doubles.fake_qstash import FakeDLQ
from tests.support.connections import MISSING, serve_connections

TO_DATE_MS = 1_793_588_400_250


def make_trigger(action: str = "delete", **kwargs: Any) -> QStashDLQTrigger:
    kwargs.setdefault("qstash_conn_id", "qstash_default")
    kwargs.setdefault("dlq_filter", DLQFilter.build(labels="a", to_date=TO_DATE_MS).to_dict())
    kwargs.setdefault("max_requests", 100_000)
    return QStashDLQTrigger(action=action, **kwargs)


def collect(trigger: QStashDLQTrigger) -> list[Any]:
    async def drain() -> list[Any]:
        return [event async for event in trigger.run()]

    return asyncio.run(drain())


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="delete"),
        pytest.param({"action": "retry", "options": {"headers": [["Upstash-Retries", "0"]]}}, id="retry"),
        pytest.param({"options": {"batch_size": 5}, "max_requests": 3, "qstash_conn_id": "other"}, id="bounded"),
    ],
)
def test_serialize_round_trips_without_the_token(kwargs: dict[str, Any]):
    trigger = make_trigger(**kwargs)
    path, data = trigger.serialize()
    assert path == "airflow_qstash.triggers.dlq.QStashDLQTrigger"
    rebuilt = QStashDLQTrigger(**json.loads(json.dumps(data)))
    assert rebuilt.serialize() == (path, data)
    assert TEST_TOKEN not in json.dumps(data)


def test_delete_run_fires_one_success_event_with_the_summary(async_fake: FakeDLQ):
    async_fake.add(150, "a")
    async_fake.add(2, "b")
    events = collect(make_trigger(options={"batch_size": 100}))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success"
    assert (payload["deleted"], payload["requests"], payload["to_date"]) == (150, 4, TO_DATE_MS)  # 2 lists, 2 deletes
    assert (payload["selected"], payload["list_requests"]) == (150, 2)
    assert async_fake.ids() == async_fake.ids("b")


@pytest.mark.parametrize(("action", "flag"), [("delete", "delete_all"), ("retry", "retry_all")])
def test_a_run_of_everything_describes_itself_with_its_actions_flag(async_fake: FakeDLQ, action: str, flag: str):
    async_fake.add(2, "a")
    [event] = collect(make_trigger(action, dlq_filter=DLQFilter.build(select_all=True).to_dict()))
    assert event.payload["status"] == "success"
    assert event.payload["filters"] == f"ALL DLQ ENTRIES ({flag}=True)"


def test_retry_run_sends_the_overrides_and_fires_one_event(async_fake: FakeDLQ):
    async_fake.add(3, "a")
    events = collect(make_trigger("retry", options={"headers": [["Upstash-Retries", "0"]]}))
    assert [event.payload["status"] for event in events] == ["success"]
    assert events[0].payload["retried"] == 3
    assert {headers["upstash-retries"] for _, headers in async_fake.retried} == {"0"}


def test_retry_404_for_vanished_ids_is_part_of_a_successful_run(async_fake: FakeDLQ):
    async_fake.add(4, "a")
    ids = sorted(async_fake.ids())
    dlq_filter = DLQFilter.build(dlq_ids=[*ids, "dlq-gone"]).to_dict()
    [event] = collect(make_trigger("retry", dlq_filter=dlq_filter))
    assert event.payload["status"] == "success"
    assert (event.payload["retried"], event.payload["vanished"]) == (4, 1)


def test_an_api_error_fires_one_error_event_with_the_totals(async_fake: FakeDLQ):
    async_fake.add(150, "a")
    async_fake.script = {4: (400, {"error": f"bad Bearer {TEST_TOKEN}"}, {})}  # the second delete
    events = collect(make_trigger())
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "error"
    assert "400" in payload["message"]
    assert payload["deleted"] == 100
    assert TEST_TOKEN not in json.dumps(payload)


def test_max_requests_reached_fires_an_error_event(async_fake: FakeDLQ):
    async_fake.add(10, "a")
    [event] = collect(make_trigger(max_requests=2, options={"batch_size": 3}))
    assert event.payload["status"] == "error"
    assert "max_requests=2" in event.payload["message"]
    assert event.payload["deleted"] == 3  # one listing request, one delete of 3 ids


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dlq_filter": {"labels": ["a"], "hosts": ["x"]}}, "QStash DLQ delete failed"),
        ({"dlq_filter": {"labels": [], "to_date": None, "select_all": False}}, "No filter given"),
        ({"action": "purge"}, "action must be"),
        ({"options": {"headers": [["Authorization", "Bearer x"]]}, "action": "retry"}, "not an Upstash"),
    ],
)
def test_a_bad_serialised_run_fires_one_error_event_and_sends_nothing(async_fake: FakeDLQ, kwargs, match):
    events = collect(make_trigger(**kwargs))
    assert len(events) == 1
    assert events[0].payload["status"] == "error"
    assert match in events[0].payload["message"]
    assert async_fake.seen == []


def test_a_missing_connection_fires_one_error_event(monkeypatch: pytest.MonkeyPatch):
    serve_connections(monkeypatch, {"qstash_nowhere": MISSING})
    [event] = collect(make_trigger(qstash_conn_id="qstash_nowhere"))
    assert event.payload["status"] == "error"
    assert "qstash_nowhere" in event.payload["message"]


@pytest.mark.parametrize(("max_requests", "status"), [(100_000, "success"), (1, "error")])
def test_the_client_is_closed_before_the_event_is_fired(
    async_fake: FakeDLQ, monkeypatch: pytest.MonkeyPatch, max_requests: int, status: str
):
    from airflow_qstash.hooks.qstash import QStashAsyncHook

    async_fake.add(150, "a")
    closed: list[bool] = []
    original = QStashAsyncHook.aclose

    async def recording(self: QStashAsyncHook) -> None:
        closed.append(self._client is not None)
        await original(self)

    monkeypatch.setattr(QStashAsyncHook, "aclose", recording)

    async def first_event() -> tuple[Any, list[bool]]:
        events: Any = make_trigger(max_requests=max_requests).run()  # an async generator: it has aclose
        event = await events.__anext__()
        closed_when_fired = list(closed)
        await events.aclose()
        return event, closed_when_fired

    event, closed_when_fired = asyncio.run(first_event())
    assert event.payload["status"] == status
    assert closed_when_fired == [True]  # the open client was closed before the event came out
