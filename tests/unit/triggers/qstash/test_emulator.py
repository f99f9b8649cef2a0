"""QStashBulkCancelTrigger.run() against the in-process emulator, over real HTTP on loopback.

Unlike ``test_qstash.py`` (mocked transport), the trigger here reads its connection from an
``AIRFLOW_CONN_*`` env var with ``aget_connection`` (no metadata DB), opens a real ``httpx`` client and
talks to :class:`~qstash_emulator.QStashEmulator`. Each test checks the trigger's event against
the emulator's final state and request log. The async generator is driven with :func:`asyncio.run`.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import ssl
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pendulum
import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.hooks import transport as transport_module
from airflow_qstash.hooks.qstash import QStashAsyncHook
from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from airflow_qstash.triggers import qstash as trigger_module
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger
from qstash_emulator import QStashEmulator
from qstash_emulator.faults import FaultConfig, FaultInjector
from tests.conftest import TEST_TOKEN, connection_json
from tests.support.summary_keys import BULK_CANCEL_SUMMARY_KEYS

pytestmark = pytest.mark.timeout(60)

CONN_ID = "qstash_emulator"
LABEL = "report"
FROM_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
TO_MS = FROM_MS + 86_400_000 - 1  # the end of that day, inclusive
N_MATCHING = 1_234
SUMMARY_KEYS = BULK_CANCEL_SUMMARY_KEYS
EVENT_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------- data and helpers


def dataset(n_matching: int = N_MATCHING) -> tuple[list[dict[str, Any]], set[str], set[str]]:
    """Messages, the ids the filter selects and the ids it must leave alone.

    Matching: label ``report`` created inside ``[FROM_MS, TO_MS]``, both bounds included. Not matching:
    the same label one millisecond outside either bound, other labels inside the window, no label.
    """
    messages: list[dict[str, Any]] = []
    matching: set[str] = set()
    others: set[str] = set()

    def add(group: set[str], message_id: str, created_at: int, labels: list[str]) -> None:
        messages.append(
            {"messageId": message_id, "url": "https://api.example.com/hook", "createdAt": created_at, "labels": labels}
        )
        group.add(message_id)

    span = TO_MS - FROM_MS
    for i in range(n_matching):
        created = FROM_MS if i == 0 else TO_MS if i == 1 else FROM_MS + (i * 7_919_993) % span
        add(matching, f"match-{i:05d}", created, [LABEL] if i % 5 else [LABEL, "other"])
    for i in range(150):
        add(others, f"before-{i:03d}", FROM_MS - 1 - i * 60_000, [LABEL])
        add(others, f"after-{i:03d}", TO_MS + 1 + i * 60_000, [LABEL])
        add(others, f"other-{i:03d}", FROM_MS + i * 500_000, ["other"])
        add(others, f"reports-{i:03d}", FROM_MS + i * 500_000, ["reports"])
        add(others, f"nolabel-{i:03d}", FROM_MS + i * 500_000, [])
    return messages, matching, others


def filter_dict(**values: Any) -> dict[str, Any]:
    values.setdefault("labels", [LABEL])
    values.setdefault("from_date", FROM_MS)
    values.setdefault("to_date", TO_MS)
    return BulkCancelFilter.build(**values).to_dict()


def make_trigger(**kwargs: Any) -> QStashBulkCancelTrigger:
    kwargs.setdefault("qstash_conn_id", CONN_ID)
    kwargs.setdefault("bulk_filter", filter_dict())
    kwargs.setdefault("batch_size", 500)
    return QStashBulkCancelTrigger(**kwargs)


def expected_query(batch_size: int) -> list[tuple[str, str]]:
    return [
        ("label", LABEL),
        ("fromDate", str(FROM_MS)),
        ("toDate", str(TO_MS)),
        ("count", str(batch_size)),
        ("async", "true"),
    ]


async def drain(trigger: QStashBulkCancelTrigger) -> list[Any]:
    """Every event the trigger yields until its generator ends (bounded in time)."""

    async def events() -> list[Any]:
        return [event async for event in trigger.run()]

    return await asyncio.wait_for(events(), EVENT_TIMEOUT_S)


def run_trigger(trigger: QStashBulkCancelTrigger) -> list[Any]:
    return asyncio.run(drain(trigger))


def bulk_requests(emu: QStashEmulator) -> list[dict[str, Any]]:
    """The logged ``DELETE /v2/messages`` requests, in arrival order."""
    log = sorted(emu.request_log(), key=lambda entry: entry["time"])
    assert all((e["method"], e["path"]) == ("DELETE", "/v2/messages") for e in log), log
    return log


def assert_final_state(emu: QStashEmulator, matching: set[str], others: set[str]) -> None:
    """Every matching message cancelled, every other one still held."""
    cancelled = {m["messageId"] for m in emu.messages("cancelled")}
    assert cancelled == matching
    assert emu.held_ids() == others


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[QStashEmulator]:
    # The 2026-08 server generation, which honours count: these tests check the batched loop request by
    # request. tests/unit/triggers/qstash/test_bulk_actions.py runs the trigger against today's bulk-action server.
    with QStashEmulator(token=TEST_TOKEN, bulk_cancel="legacy") as emu:
        yield emu


@pytest.fixture
def emu(shared_emulator: QStashEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[QStashEmulator]:
    """The shared emulator, emptied, with faults off; ``CONN_ID`` points at it."""
    shared_emulator.reset()
    shared_emulator.set_faults(None)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(shared_emulator.base_url))
    yield shared_emulator
    shared_emulator.set_faults(None)


@pytest.fixture
def data(emu: QStashEmulator) -> tuple[set[str], set[str]]:
    """The :func:`dataset` loaded into :func:`emu`; returns (matching ids, other ids)."""
    messages, matching, others = dataset()
    emu.add_messages(messages)
    assert emu.counts() == {"held": len(matching) + len(others), "cancelled": 0}
    return matching, others


# --------------------------------------------------------------------------- success


@pytest.mark.parametrize("batch_size", [100, 500])
def test_run_cancels_exactly_the_matching_messages(emu: QStashEmulator, data: Any, batch_size: int):
    matching, others = data

    events = run_trigger(make_trigger(batch_size=batch_size))

    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success"
    assert set(payload) == SUMMARY_KEYS | {"status"}
    assert payload["cancelled"] == N_MATCHING
    assert payload["batches"] == math.ceil(N_MATCHING / batch_size) + 1
    assert (payload["from_date"], payload["to_date"]) == (FROM_MS, TO_MS)
    assert TEST_TOKEN not in repr(payload)
    assert_final_state(emu, matching, others)

    log = bulk_requests(emu)
    assert len(log) == payload["batches"]
    assert [entry["query"] for entry in log] == [expected_query(batch_size)] * len(log)
    assert [entry["status"] for entry in log] == [200] * len(log)


def test_run_with_nothing_matching_sends_one_request(emu: QStashEmulator):
    messages, _, others = dataset(n_matching=0)
    emu.add_messages(messages)

    (event,) = run_trigger(make_trigger(batch_size=100))

    assert (event.payload["status"], event.payload["cancelled"], event.payload["batches"]) == ("success", 0, 1)
    assert emu.held_ids() == others
    assert len(bulk_requests(emu)) == 1


def test_concurrent_triggers_build_no_tls_context_on_the_event_loop(
    emu: QStashEmulator, data: Any, monkeypatch: pytest.MonkeyPatch
):
    """Reading the CA bundle blocks for tens of ms; with many triggers on one loop that adds up."""
    matching, others = data
    real = ssl.create_default_context
    builders: list[threading.Thread] = []

    def recording(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        builders.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", recording)
    transport_module.default_ssl_context.cache_clear()  # the first build happens in this test

    async def scenario() -> tuple[threading.Thread, list[list[Any]]]:
        triggers = [make_trigger(batch_size=100), make_trigger(bulk_filter=filter_dict(labels=["reports"]))]
        return threading.current_thread(), list(await asyncio.gather(*(drain(t) for t in triggers)))

    loop_thread, results = asyncio.run(scenario())

    assert [[event.payload["status"] for event in events] for events in results] == [["success"], ["success"]]
    assert results[0][0].payload["cancelled"] == N_MATCHING
    assert results[1][0].payload["cancelled"] == 150
    assert builders, "no TLS context was built at all"
    assert loop_thread not in builders
    assert emu.held_ids() == {m for m in others if not m.startswith("reports-")}
    assert not matching & emu.held_ids()


# --------------------------------------------------------------------------- faults

#: About 30 % of requests fail: burst and daily 429 (reset "now", so waits stay short), 5xx, dropped
#: connections; and some successful-looking bulk cancels stop part-way and answer 500.
FAULTS = FaultConfig(
    rate_429=0.06,
    rate_429_daily=0.04,
    rate_5xx=0.08,
    rate_drop=0.06,
    rate_partial=0.08,
    reset_after_s=0,
    seed=5,
)
FAULTS_NO_PARTIAL = FaultConfig(rate_429=0.08, rate_5xx=0.1, rate_drop=0.08, reset_after_s=0, seed=11)


def replay(faults: FaultConfig, log: list[dict[str, Any]], batch_size: int) -> tuple[int, int]:
    """What the trigger should report for this request log: (cancelled, batches).

    Replays the emulator's seeded fault sequence (four draws per request) over the logged requests to
    learn each partial failure's fraction, then walks the store: a 200 answers ``min(count, left)``, a
    partial failure cancels ``floor(fraction * min(count, left))`` that nobody is told about.
    """
    injector = FaultInjector(faults)
    left, reported, batches = N_MATCHING, 0, 0
    for entry in log:
        decision = injector.decide(entry["method"], entry["path"])
        assert decision.label == entry["fault"], "the log is not the seeded fault sequence"
        selected = min(batch_size, left)
        if entry["status"] == 200:
            left -= selected
            reported += selected
            batches += 1
        elif entry["fault"] == "partial":
            assert decision.partial_fraction is not None
            left -= math.floor(decision.partial_fraction * selected)
    assert left == 0
    return reported, batches


@pytest.mark.parametrize("batch_size", [100, 500])
def test_run_with_faults_still_cancels_exactly(
    emu: QStashEmulator, data: Any, monkeypatch: pytest.MonkeyPatch, batch_size: int
):
    matching, others = data
    # Enough retries that ~30 % failures never exhaust them; no backoff.
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(emu.base_url, max_retries=10))
    emu.set_faults(FAULTS)

    started = time.monotonic()
    events = run_trigger(make_trigger(batch_size=batch_size))
    elapsed = time.monotonic() - started

    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success", payload
    assert_final_state(emu, matching, others)

    log = bulk_requests(emu)
    assert [entry["query"] for entry in log] == [expected_query(batch_size)] * len(log)
    faults = [entry["fault"] for entry in log if entry["status"] != 200]
    assert faults, "no fault was injected"
    # The trigger counts what QStash reported; a partial failure's cancels are never reported.
    assert (payload["cancelled"], payload["batches"]) == replay(FAULTS, log, batch_size)
    assert payload["batches"] == sum(entry["status"] == 200 for entry in log)
    assert elapsed < 15


def test_run_with_faults_all_kinds(emu: QStashEmulator, data: Any, monkeypatch: pytest.MonkeyPatch):
    """Batch size 50 makes enough requests that the seeded sequence shows every kind of fault."""
    matching, others = data
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(emu.base_url, max_retries=10))
    emu.set_faults(FAULTS)

    (event,) = run_trigger(make_trigger(batch_size=50))

    assert event.payload["status"] == "success", event.payload
    assert_final_state(emu, matching, others)
    log = bulk_requests(emu)
    seen = {entry["fault"] for entry in log if entry["status"] != 200}
    assert seen == {"drop", "429", "429_daily", "5xx", "partial"}
    statuses = {entry["fault"]: entry["status"] for entry in log if entry["status"] != 200}
    assert statuses["drop"] is None and statuses["429"] == statuses["429_daily"] == 429
    assert statuses["partial"] == 500
    assert (event.payload["cancelled"], event.payload["batches"]) == replay(FAULTS, log, 50)
    assert event.payload["cancelled"] < N_MATCHING  # some partial cancels went unreported


@pytest.mark.parametrize("batch_size", [100, 500])
def test_run_with_retried_failures_reports_exact_totals(
    emu: QStashEmulator, data: Any, monkeypatch: pytest.MonkeyPatch, batch_size: int
):
    """Without partial failures nothing is cancelled unreported: the totals are the no-fault ones."""
    matching, others = data
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(emu.base_url, max_retries=10))
    emu.set_faults(FAULTS_NO_PARTIAL)

    (event,) = run_trigger(make_trigger(batch_size=batch_size))

    assert event.payload["status"] == "success", event.payload
    assert event.payload["cancelled"] == N_MATCHING
    assert event.payload["batches"] == math.ceil(N_MATCHING / batch_size) + 1
    assert_final_state(emu, matching, others)
    log = bulk_requests(emu)
    assert any(entry["status"] != 200 for entry in log)
    assert len(log) > event.payload["batches"]


# --------------------------------------------------------------------------- failures


def test_wrong_token_fires_one_error_event_and_cancels_nothing(
    emu: QStashEmulator, data: Any, monkeypatch: pytest.MonkeyPatch
):
    matching, others = data
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(emu.base_url, token="not-the-token", max_retries=5)
    )

    events = run_trigger(make_trigger(batch_size=100))

    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "error"
    assert "401" in payload["message"]
    assert (payload["cancelled"], payload["batches"]) == (0, 0)
    assert emu.held_ids() == matching | others
    log = bulk_requests(emu)
    assert [entry["status"] for entry in log] == [401]  # not retried


def test_max_batches_too_small_then_a_second_run_finishes(emu: QStashEmulator, data: Any):
    matching, others = data

    (first,) = run_trigger(make_trigger(batch_size=100, max_batches=3))

    assert first.payload["status"] == "error"
    assert (first.payload["cancelled"], first.payload["batches"]) == (300, 3)
    assert "max_batches=3" in first.payload["message"]
    assert "Cancelled 300 message(s) in 3 batch(es)" in first.payload["message"]
    assert emu.counts() == {"held": len(matching) + len(others) - 300, "cancelled": 300}
    assert len(bulk_requests(emu)) == 3

    (second,) = run_trigger(make_trigger(batch_size=100, max_batches=20))

    assert second.payload["status"] == "success"
    assert second.payload["cancelled"] == N_MATCHING - 300
    assert second.payload["batches"] == math.ceil((N_MATCHING - 300) / 100) + 1
    assert_final_state(emu, matching, others)


# --------------------------------------------------------------------------- cancellation


def test_cancelling_the_trigger_task_stops_requests_and_closes_the_client(
    emu: QStashEmulator, data: Any, monkeypatch: pytest.MonkeyPatch
):
    """What the triggerer does when the task instance is cleared or times out: cancel the run() task."""
    matching, others = data
    latency_s = 0.05
    emu.set_faults(FaultConfig(latency_ms=latency_s * 1000))
    hooks: list[QStashAsyncHook] = []
    clients: list[httpx.AsyncClient] = []
    sent: list[httpx.URL] = []  # every HTTP request the trigger's client sends

    async def count_request(request: httpx.Request) -> None:
        sent.append(request.url)

    class RecordingHook(QStashAsyncHook):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            hooks.append(self)

        async def _get_client(self) -> httpx.AsyncClient:
            client = await super()._get_client()
            if client not in clients:
                clients.append(client)
                client.event_hooks["request"].append(count_request)
            return client

    monkeypatch.setattr(trigger_module, "QStashAsyncHook", RecordingHook)

    async def scenario() -> tuple[int, list[Any]]:
        events: list[Any] = []

        async def consume() -> None:
            async for event in make_trigger(batch_size=10).run():
                events.append(event)

        task = asyncio.create_task(consume())
        for _ in range(200):  # bounded: until a few batches went through (about 0.2 s)
            await asyncio.sleep(0.01)
            if len(sent) >= 4:
                break
        assert not task.done()
        sent_before_cancel = len(sent)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        await asyncio.sleep(latency_s * 4)  # a loop that survived the cancel would send more now
        return sent_before_cancel, events

    sent_before_cancel, events = asyncio.run(scenario())

    assert events == []
    assert len(sent) == sent_before_cancel, "the trigger sent a request after it was cancelled"
    assert 4 <= sent_before_cancel < math.ceil(N_MATCHING / 10)
    assert len(hooks) == 1 and len(clients) == 1
    assert clients[0].is_closed
    assert hooks[0]._client is None
    # The server saw those requests and no more; the one in flight at the cancel may or may not have
    # reached it (the client can be cancelled before its bytes are written).
    log: list[dict[str, Any]] = []
    for _ in range(50):  # bounded wait for an in-flight request to be logged
        log = bulk_requests(emu)
        if len(log) >= sent_before_cancel:
            break
        time.sleep(0.01)
    assert sent_before_cancel - 1 <= len(log) <= sent_before_cancel
    time.sleep(latency_s * 4)
    assert len(emu.request_log()) == len(log)
    # Nothing beyond the batches that were sent was cancelled; a later run finishes the job.
    assert emu.counts()["cancelled"] <= 10 * len(log)
    emu.set_faults(None)
    monkeypatch.setattr(trigger_module, "QStashAsyncHook", QStashAsyncHook)
    (event,) = run_trigger(make_trigger(batch_size=500))
    assert event.payload["status"] == "success"
    assert_final_state(emu, matching, others)


# --------------------------------------------------------------------------- the deferral round trip


def rebuild(trigger: QStashBulkCancelTrigger) -> QStashBulkCancelTrigger:
    """What the triggerer does with a deferred trigger: import the class path, call it with the kwargs."""
    classpath, kwargs = trigger.serialize()
    module_name, _, class_name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module_name), class_name)(**kwargs)
    assert isinstance(rebuilt, QStashBulkCancelTrigger)
    return rebuilt


def test_deferral_round_trip_matches_the_sync_path(emu: QStashEmulator, data: Any, monkeypatch: pytest.MonkeyPatch):
    matching, others = data
    context: Any = {"ti": SimpleNamespace(start_date=pendulum.datetime(2024, 6, 1, tz="UTC"))}
    task_kwargs: dict[str, Any] = {
        "labels": LABEL,
        "from_date": "2024-05-01T00:00:00Z",
        "to_date": TO_MS,
        "batch_size": 100,
    }

    deferring = QStashBulkCancelOperator(task_id="cancel", qstash_conn_id=CONN_ID, deferrable=True, **task_kwargs)
    with pytest.raises(TaskDeferred) as deferred:
        deferring.execute(context)
    assert deferred.value.method_name == "execute_complete"
    assert emu.request_log() == [], "the worker sent a request before deferring"
    (event,) = run_trigger(rebuild(deferred.value.trigger))
    deferred_result = getattr(deferring, deferred.value.method_name)(context, event.payload)

    messages, _, _ = dataset()
    with QStashEmulator(token=TEST_TOKEN, bulk_cancel="legacy") as twin:
        twin.add_messages(messages)
        monkeypatch.setenv("AIRFLOW_CONN_QSTASH_TWIN", connection_json(twin.base_url))
        sync = QStashBulkCancelOperator(task_id="cancel", qstash_conn_id="qstash_twin", deferrable=False, **task_kwargs)
        sync_result = sync.execute(context)
        twin_log = sorted(twin.request_log(), key=lambda entry: entry["time"])
        twin_cancelled = {m["messageId"] for m in twin.messages("cancelled")}
        twin_held = twin.held_ids()

    assert set(deferred_result) == set(sync_result) == SUMMARY_KEYS
    assert isinstance(deferred_result["duration_seconds"], float)
    strip = {"duration_seconds"}
    assert {k: v for k, v in deferred_result.items() if k not in strip} == {
        k: v for k, v in sync_result.items() if k not in strip
    }
    assert deferred_result["cancelled"] == N_MATCHING
    assert deferred_result["batches"] == math.ceil(N_MATCHING / 100) + 1
    assert_final_state(emu, matching, others)
    assert (twin_cancelled, twin_held) == (matching, others)
    assert [e["query"] for e in bulk_requests(emu)] == [e["query"] for e in twin_log]
    assert [e["query"] for e in twin_log] == [expected_query(100)] * len(twin_log)
