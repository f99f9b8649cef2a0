"""Durable runs: the task state store keeps the window and the bulk action ids, a retry re-attaches by id.

A :class:`StateStore` double stands in for Airflow 3.3's ``context["task_state_store"]`` (values go
through JSON as the real one stores them). The scripted fake's :class:`BulkActions` is a bulk-action QStash
(today's hosted generation) behind both transports: requests-mock for the worker's hook, ``httpx.MockTransport`` for the
triggerer's. A first try is "killed" mid-poll (an exception that is not an ``Exception`` raised from the
pause between polls, as a SIGKILL stops the process there); a new operator instance with a later task
start is the retry. These tests need no Airflow 3.3: the store arrives through the context, so the
version matrix (2.11-3.2) runs them as well, and the no-op test asserts the one log line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from airflow_qstash.durable import STATE_KEY, RunMemory, RunRecord
from airflow_qstash.hooks.qstash import QStashHook
from airflow_qstash.operators.dlq import QStashDLQDeleteOperator
from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from airflow_qstash.triggers.dlq import QStashDLQTrigger
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger
from tests.conftest import connection_json
from tests.doubles.fake_qstash import BulkActions, Sent
from tests.support.task_logs import capture_task_logs

FIRST_START = pendulum.datetime(2024, 6, 1, 12, 0, 0, tz="UTC")
FIRST_START_MS = 1_717_243_200_000
RETRY_START = pendulum.datetime(2024, 6, 1, 12, 30, 0, tz="UTC")
RETRY_START_MS = 1_717_245_000_000
FROM_MS = 1_714_521_600_000  # 2024-05-01
N = 300


class Killed(BaseException):
    """What stops a first try mid-poll (not an ``Exception``: no handler of the run catches it)."""


class StateStore:
    """Airflow 3.3's ``task_state_store`` as a double: get/set/delete/clear, values stored as JSON text."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.operations: list[tuple[str, str]] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.operations.append(("get", key))
        return json.loads(self.values[key]) if key in self.values else default

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        assert value is not None
        self.operations.append(("set", key))
        self.values[key] = json.dumps(value)

    def delete(self, key: str) -> None:
        self.operations.append(("delete", key))
        self.values.pop(key, None)

    def clear(self) -> None:
        self.operations.append(("clear", ""))
        self.values.clear()

    def record(self) -> dict[str, Any]:
        return json.loads(self.values[STATE_KEY])


@pytest.fixture
def actions(requests_mock: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., BulkActions]:
    """Serve a :class:`BulkActions` behind ``qstash_default`` on both transports; pauses do not sleep."""
    monkeypatch.setenv("AIRFLOW_CONN_QSTASH_DEFAULT", connection_json(poll_interval_max=0.01))
    monkeypatch.setattr(QStashHook, "sleep", staticmethod(lambda seconds: None))

    def install(pending: int = N, rate: int = 100) -> BulkActions:
        fake = BulkActions(pending, rate=rate, created_at=FIRST_START_MS)
        fake.serve(requests_mock, monkeypatch)
        return fake

    return install


def context(start: Any, store: StateStore | None) -> dict[str, Any]:
    """A task context: the task instance's start, and the task state store when the Airflow has one."""
    ctx: dict[str, Any] = {"ti": SimpleNamespace(start_date=start)}
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


def cancel_op(**kwargs: Any) -> QStashBulkCancelOperator:
    kwargs.setdefault("task_id", "cancel")
    kwargs.setdefault("labels", ["report"])
    kwargs.setdefault("from_date", FROM_MS)
    return QStashBulkCancelOperator(**kwargs)


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capture_task_logs() as captured:
        yield captured


def text(logs: list[dict[str, Any]]) -> str:
    return "\n".join(str(entry) for entry in logs)


def kill_at_first_poll_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    def pause(seconds: float) -> None:
        raise Killed

    monkeypatch.setattr(QStashHook, "sleep", staticmethod(pause))


def request_line(sent: Sent) -> tuple[str, str]:
    return sent.method, sent.path


def to_date_sent(query: list[tuple[str, str]]) -> int:
    return int(dict(query)["toDate"])


# --------------------------------------------------------------------------- synchronous path


def test_a_killed_try_stores_window_and_action_before_its_first_poll_and_the_retry_reattaches_by_id(
    actions: Callable[..., BulkActions], monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]
) -> None:
    fake = actions(pending=N, rate=100)
    store = StateStore()
    kill_at_first_poll_pause(monkeypatch)
    with pytest.raises(Killed):
        cancel_op().execute(context(FIRST_START, store))

    stored = store.record()
    assert stored["task_start_ms"] == FIRST_START_MS
    assert stored["plan"]["filter"]["to_date"] == FIRST_START_MS
    assert stored["plan"]["filter"]["from_date"] == FROM_MS
    assert stored["action_ids"] == ["act-1"]
    # stored before the first poll: the action id was written before any GET of it
    first_get = next(i for i, sent in enumerate(fake.sent) if sent.method == "GET")
    assert first_get == 1 and len(fake.sent) == 2  # the start, then the one poll the kill interrupted

    monkeypatch.setattr(QStashHook, "sleep", staticmethod(lambda seconds: None))
    before = len(fake.sent)
    summary = cancel_op().execute(context(RETRY_START, store))

    retry_requests = fake.sent[before:]
    assert request_line(retry_requests[0]) == ("GET", "/v2/bulkActions/act-1"), (
        "the retry must re-attach before any start"
    )
    assert len(fake.starts) == 2  # the first try's start, and the retry's confirming round only
    assert [q for q in fake.starts if ("async", "true") in q] == fake.starts
    assert {to_date_sent(q) for q in fake.starts} == {FIRST_START_MS}, "the first try's window is kept"
    assert summary["cancelled"] == N and fake.left == 0
    assert summary["to_date"] == FIRST_START_MS
    assert summary["action_ids"][0] == "act-1"
    assert STATE_KEY not in store.values, "the stored run is deleted when the run succeeds"
    assert "re-attached by its id" in text(logs)
    assert "keeping the first try's window" in text(logs)


def test_without_the_store_the_retry_repins_to_its_own_start_and_joins_by_filter(
    actions: Callable[..., BulkActions], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The behaviour durable fixes, shown: no store, so the retry widens the window and cannot re-attach."""
    fake = actions(pending=N, rate=100)
    kill_at_first_poll_pause(monkeypatch)
    with pytest.raises(Killed):
        cancel_op().execute(context(FIRST_START, None))
    monkeypatch.setattr(QStashHook, "sleep", staticmethod(lambda seconds: None))
    cancel_op().execute(context(RETRY_START, None))
    assert to_date_sent(fake.starts[1]) == RETRY_START_MS


def test_a_finished_stored_action_is_followed_as_the_first_round_and_only_the_confirming_start_is_sent(
    actions: Callable[..., BulkActions], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = actions(pending=N, rate=N)
    store = StateStore()
    kill_at_first_poll_pause(monkeypatch)
    fake.rate = 0  # the first poll reads it IN_PROGRESS, then the kill
    with pytest.raises(Killed):
        cancel_op().execute(context(FIRST_START, store))
    fake.rate = N
    fake.request("GET", "/v2/bulkActions/act-1")  # the action finishes while no try runs
    monkeypatch.setattr(QStashHook, "sleep", staticmethod(lambda seconds: None))
    summary = cancel_op().execute(context(RETRY_START, store))
    assert len(fake.starts) == 2
    assert summary["cancelled"] == N
    assert summary["rounds"] == 2


def test_an_action_the_server_no_longer_knows_falls_back_to_a_fresh_run(
    actions: Callable[..., BulkActions], logs: list[dict[str, Any]]
) -> None:
    fake = actions(pending=N, rate=N)
    store = StateStore()
    store.set(
        STATE_KEY,
        RunRecord(FIRST_START_MS, {"action": "bulk_cancel", "filter": plan_filter()}, ["gone-1"]).to_json(),
    )
    summary = cancel_op().execute(context(RETRY_START, store))
    assert summary["cancelled"] == N
    assert request_line(fake.sent[0]) == ("GET", "/v2/bulkActions/gone-1")
    assert "could not be read" in text(logs)
    assert {to_date_sent(q) for q in fake.starts} == {FIRST_START_MS}


def plan_filter() -> dict[str, Any]:
    op = cancel_op()
    return op.plan(FIRST_START_MS).bulk_filter.to_dict()


def test_a_stored_run_with_another_plan_is_replaced_and_the_try_plans_from_its_own_start(
    actions: Callable[..., BulkActions], logs: list[dict[str, Any]]
) -> None:
    fake = actions(pending=N, rate=N)
    store = StateStore()
    other = {**plan_filter(), "labels": ["other"]}
    store.set(STATE_KEY, RunRecord(FIRST_START_MS, {"action": "bulk_cancel", "filter": other}, ["act-9"]).to_json())
    cancel_op().execute(context(RETRY_START, store))
    assert all(sent.path != "/v2/bulkActions/act-9" for sent in fake.sent)
    assert to_date_sent(fake.starts[0]) == RETRY_START_MS
    assert "another plan" in text(logs)


@pytest.mark.parametrize("value", [{"version": 99}, "text", {"version": 1, "task_start_ms": "x"}])
def test_an_unreadable_stored_value_is_ignored_with_a_warning(
    actions: Callable[..., BulkActions], logs: list[dict[str, Any]], value: Any
) -> None:
    fake = actions(pending=N, rate=N)
    store = StateStore()
    store.values[STATE_KEY] = json.dumps(value)
    summary = cancel_op().execute(context(RETRY_START, store))
    assert summary["cancelled"] == N
    assert to_date_sent(fake.starts[0]) == RETRY_START_MS
    assert "cannot read" in text(logs)


def test_a_failed_run_keeps_its_record_for_the_retry(actions: Callable[..., BulkActions]) -> None:
    fake = actions(pending=N, rate=0)
    store = StateStore()
    with pytest.raises(AirflowException, match="action_timeout"):
        cancel_op(action_timeout=0.000001).execute(context(FIRST_START, store))
    assert store.record()["action_ids"] == ["act-1"]
    assert len(fake.starts) == 1


def test_durable_false_never_touches_the_store(actions: Callable[..., BulkActions]) -> None:
    actions(pending=N, rate=N)
    store = StateStore()
    cancel_op(durable=False).execute(context(FIRST_START, store))
    assert store.operations == []


def test_without_a_task_state_store_durable_is_a_noop_with_one_log_line(
    actions: Callable[..., BulkActions], logs: list[dict[str, Any]]
) -> None:
    actions(pending=N, rate=N)
    summary = cancel_op().execute(context(FIRST_START, None))
    assert summary["cancelled"] == N
    lines = [entry for entry in logs if "durable=True has no effect here" in str(entry.get("event"))]
    assert len(lines) == 1
    assert "task state store (Airflow 3.3+)" in str(lines[0]["event"])


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_durable_must_be_a_bool(value: Any) -> None:
    with pytest.raises(AirflowFailException, match="durable must be True or False"):
        cancel_op(durable=value)


# --------------------------------------------------------------------------- deferrable path


def run_trigger(trigger: Any) -> dict[str, Any]:
    async def drain() -> list[Any]:
        return [event async for event in trigger.run()]

    events = asyncio.run(drain())
    assert len(events) == 1
    return events[0].payload


def test_deferrable_stores_the_window_before_deferring_and_the_retry_hands_the_trigger_the_stored_ids(
    actions: Callable[..., BulkActions], logs: list[dict[str, Any]]
) -> None:
    fake = actions(pending=N, rate=100)
    store = StateStore()
    with pytest.raises(TaskDeferred) as deferred:
        cancel_op(deferrable=True).execute(context(FIRST_START, store))
    assert fake.sent == []
    stored = store.record()
    assert (stored["task_start_ms"], stored["action_ids"]) == (FIRST_START_MS, [])
    trigger = deferred.value.trigger
    assert trigger.resume_action_ids == []

    # the triggerer runs an action that outlives action_timeout: the error event carries its id, stored
    trigger.action_timeout = 0.000001
    event = run_trigger(trigger)
    assert event["status"] == "error" and event["action_ids"] == ["act-1"]
    with pytest.raises(AirflowException):
        cancel_op(deferrable=True).execute_complete(context(FIRST_START, store), event)
    assert store.record()["action_ids"] == ["act-1"]

    # the retry: same window, the stored id goes to the trigger, which re-attaches (no second start)
    with pytest.raises(TaskDeferred) as retried:
        cancel_op(deferrable=True).execute(context(RETRY_START, store))
    retry_trigger = retried.value.trigger
    assert retry_trigger.resume_action_ids == ["act-1"]
    assert retry_trigger.bulk_filter["to_date"] == FIRST_START_MS
    assert QStashBulkCancelTrigger(**retry_trigger.serialize()[1]).resume_action_ids == ["act-1"]
    before = len(fake.sent)
    event = run_trigger(retry_trigger)
    assert request_line(fake.sent[before]) == ("GET", "/v2/bulkActions/act-1")
    assert event["status"] == "success" and event["cancelled"] == N
    assert len(fake.starts) == 2  # the first start, and the retry's confirming round
    summary = cancel_op(deferrable=True).execute_complete(context(RETRY_START, store), event)
    assert summary["cancelled"] == N
    assert STATE_KEY not in store.values
    assert "re-attached by its id" in text(logs)


def test_deferrable_without_a_store_logs_the_one_line_and_defers_without_ids(
    actions: Callable[..., BulkActions], logs: list[dict[str, Any]]
) -> None:
    actions()
    with pytest.raises(TaskDeferred) as deferred:
        cancel_op(deferrable=True).execute(context(FIRST_START, None))
    assert deferred.value.trigger.resume_action_ids == []
    assert sum("durable=True has no effect here" in str(e.get("event")) for e in logs) == 1


# --------------------------------------------------------------------------- DLQ operators


def dlq_op(**kwargs: Any) -> QStashDLQDeleteOperator:
    kwargs.setdefault("task_id", "dlq")
    kwargs.setdefault("labels", ["report"])
    kwargs.setdefault("from_date", FROM_MS)
    return QStashDLQDeleteOperator(**kwargs)


def test_a_killed_dlq_delete_is_retried_by_id_in_the_first_tries_window(
    actions: Callable[..., BulkActions], monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]
) -> None:
    fake = actions(pending=N, rate=100)
    store = StateStore()
    kill_at_first_poll_pause(monkeypatch)
    with pytest.raises(Killed):
        dlq_op().execute(context(FIRST_START, store))
    stored = store.record()
    assert (stored["task_start_ms"], stored["action_ids"]) == (FIRST_START_MS, ["act-1"])
    assert stored["plan"]["action"] == "dlq_delete"

    monkeypatch.setattr(QStashHook, "sleep", staticmethod(lambda seconds: None))
    before = len(fake.sent)
    summary = dlq_op().execute(context(RETRY_START, store))
    assert request_line(fake.sent[before]) == ("GET", "/v2/bulkActions/act-1"), (
        "the retry must re-attach before any start"
    )
    assert len(fake.starts) == 2  # the first try's start, and the retry's confirming round only
    assert {to_date_sent(q) for q in fake.starts} == {FIRST_START_MS}
    assert (summary["deleted"], summary["to_date"], summary["action_ids"][0]) == (N, FIRST_START_MS, "act-1")
    assert STATE_KEY not in store.values
    assert "re-attached by its id" in text(logs)


def test_dlq_deferrable_retry_hands_the_trigger_the_stored_ids(actions: Callable[..., BulkActions]) -> None:
    fake = actions(pending=N, rate=100)
    store = StateStore()
    with pytest.raises(TaskDeferred):
        dlq_op(deferrable=True).execute(context(FIRST_START, store))
    fake.request("DELETE", "/v2/dlq/bulk", "label=report")  # the first trigger's start
    # its error event (past action_timeout, say) carries the action id: stored for the retry
    with pytest.raises(AirflowException, match="action_timeout"):
        dlq_op(deferrable=True).execute_complete(
            context(FIRST_START, store),
            {"status": "error", "message": "past action_timeout", "action_ids": ["act-1"], "deleted": 0},
        )
    assert store.record()["action_ids"] == ["act-1"]
    with pytest.raises(TaskDeferred) as retried:
        dlq_op(deferrable=True).execute(context(RETRY_START, store))
    trigger = retried.value.trigger
    assert trigger.resume_action_ids == ["act-1"]
    assert trigger.dlq_filter["to_date"] == FIRST_START_MS
    assert QStashDLQTrigger(**json.loads(json.dumps(trigger.serialize()[1]))).resume_action_ids == ["act-1"]
    event = run_trigger(trigger)
    assert event["status"] == "success" and event["deleted"] == N
    assert len(fake.starts) == 2
    dlq_op(deferrable=True).execute_complete(context(RETRY_START, store), event)
    assert STATE_KEY not in store.values


def test_dlq_first_try_stores_its_window_before_deferring(requests_mock: Any, qstash_conn: str) -> None:
    store = StateStore()
    with pytest.raises(TaskDeferred) as deferred:
        dlq_op(deferrable=True).execute(context(FIRST_START, store))
    assert requests_mock.call_count == 0
    assert store.record()["task_start_ms"] == FIRST_START_MS
    with pytest.raises(TaskDeferred) as retried:
        dlq_op(deferrable=True).execute(context(RETRY_START, store))
    assert isinstance(retried.value.trigger, QStashDLQTrigger)
    assert retried.value.trigger.dlq_filter["to_date"] == deferred.value.trigger.dlq_filter["to_date"]
    assert retried.value.trigger.dlq_filter["to_date"] == FIRST_START_MS
    dlq_op(deferrable=True).execute_complete(
        context(RETRY_START, store), {"status": "success", "deleted": 0, "requests": 1, "filters": ""}
    )
    assert STATE_KEY not in store.values


def test_run_memory_is_a_noop_when_not_durable() -> None:
    store = StateStore()
    memory = RunMemory.open(context(FIRST_START, store), durable=False, log=SimpleNamespace(info=print))
    assert not memory.enabled
    assert memory.recall() is None
    memory.remember(RunRecord(1, {}))
    memory.add_actions(["a"])
    memory.forget()
    assert store.operations == []
