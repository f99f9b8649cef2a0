"""Both DLQ operators, on the worker and in the trigger, against the emulator's dead-letter queue.

The oracle is exact: the emulator's DLQ and message store are read back after each run. A delete
leaves every entry the filter does not select and nothing else changes; a retry removes exactly the
selected entries from the DLQ and adds exactly one new held message for each (same destination and
labels, the overrides applied), whose ids are the ones the run reports. With faults on (5xx, 429,
dropped connections) the outcome is the same.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_qstash.operators.dlq import QStashDLQDeleteOperator, QStashDLQRetryOperator
from qstash_emulator import QStashEmulator
from qstash_emulator.faults import FaultConfig
from tests.conftest import TEST_TOKEN, connection_json

pytestmark = pytest.mark.timeout(120)

FROM_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
TO_MS = FROM_MS + 7 * 86_400_000 - 1  # the end of that week, inclusive
TASK_START = pendulum.datetime(2024, 6, 1, tz="UTC")
N_MATCHING = 345
FAULTS = FaultConfig(rate_5xx=0.15, rate_429=0.1, rate_drop=0.1, reset_after_s=0, seed=13)


def dataset() -> tuple[list[dict[str, Any]], set[str]]:
    """DLQ entries and the dlqIds of the ones ``labels=report, response_statuses=[500, 503]`` in the week select.

    Not selected: the same label one millisecond outside either bound, another status inside the window,
    another label, no label.
    """
    entries: list[dict[str, Any]] = []
    matching: set[str] = set()
    for i in range(N_MATCHING):
        dlq_id = f"dlq-match-{i:05d}"
        created = FROM_MS if i == 0 else TO_MS if i == 1 else FROM_MS + i * 1_000
        status = 500 if i % 2 else 503
        entries.append(_entry(dlq_id, created, status, ["report", "extra"] if i % 5 == 0 else ["report"]))
        matching.add(dlq_id)
    entries += [
        _entry("dlq-before", FROM_MS - 1, 500, ["report"]),
        _entry("dlq-after", TO_MS + 1, 500, ["report"]),
        *[_entry(f"dlq-404-{i}", FROM_MS + i, 404, ["report"]) for i in range(20)],
        *[_entry(f"dlq-other-{i}", FROM_MS + i, 500, ["other"]) for i in range(20)],
        *[_entry(f"dlq-nolabel-{i}", FROM_MS + i, 500, None) for i in range(10)],
    ]
    return entries, matching


def _entry(dlq_id: str, created: int, status: int, labels: list[str] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "dlqId": dlq_id,
        "url": f"https://dest.example/{dlq_id}",
        "createdAt": created,
        "responseStatus": status,
        "maxRetries": 3,
    }
    if labels:
        entry["labels"] = labels
    return entry


FILTERS = {"labels": ["report"], "response_statuses": [500, 503], "from_date": FROM_MS, "to_date": TO_MS}


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[QStashEmulator]:
    with QStashEmulator(token=TEST_TOKEN) as emu:
        yield emu


@pytest.fixture
def emu(shared_emulator: QStashEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[QStashEmulator]:
    shared_emulator.reset()
    shared_emulator.set_faults(None)
    monkeypatch.setenv(
        "AIRFLOW_CONN_QSTASH_DEFAULT",
        connection_json(shared_emulator.base_url, max_retries=12, backoff_initial=0, backoff_max=0),
    )
    yield shared_emulator
    shared_emulator.set_faults(None)


@pytest.fixture
def data(emu: QStashEmulator) -> SimpleNamespace:
    entries, matching = dataset()
    emu.add_dlq(entries)
    held = emu.add_messages([{"url": "https://dest.example/held", "labels": ["report"], "createdAt": FROM_MS + 5}])
    everything = {entry["dlqId"] for entry in entries}
    assert emu.dlq_ids() == everything
    return SimpleNamespace(
        matching=matching,
        others=everything - matching,
        held=set(held),
        urls={f"https://dest.example/{i}" for i in matching},
    )


def run_operator(op: Any, deferrable: bool) -> dict[str, Any]:
    """Execute ``op``; when it defers, run its trigger to its one event and complete the task with it."""
    context = {"ti": SimpleNamespace(start_date=TASK_START)}
    if not deferrable:
        return dict(op.execute(context))
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)

    async def drain() -> list[Any]:
        return [event async for event in info.value.trigger.run()]

    events = asyncio.run(drain())
    assert len(events) == 1
    return dict(op.execute_complete(context, events[0].payload))


def v2_requests(emu: QStashEmulator, method: str, path: str) -> list[dict[str, Any]]:
    return [r for r in emu.request_log() if (r["method"], r["path"]) == (method, path)]


# --------------------------------------------------------------------------- delete


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("faults", [None, FAULTS], ids=["clean", "faults"])
def test_delete_removes_exactly_the_selected_entries(emu, data, deferrable: bool, faults: FaultConfig | None):
    emu.set_faults(faults)
    op = QStashDLQDeleteOperator(task_id="delete", deferrable=deferrable, **FILTERS)

    summary = run_operator(op, deferrable)

    emu.set_faults(None)
    assert emu.dlq_ids() == data.others
    assert emu.held_ids() == data.held  # nothing published, nothing cancelled
    assert summary["deleted"] == N_MATCHING
    assert summary["requests"] == math.ceil(N_MATCHING / 100)
    answered = [r for r in v2_requests(emu, "DELETE", "/v2/dlq") if r["status"] == 200]
    assert len(answered) == summary["requests"]
    if faults is not None:
        assert any(r["fault"] for r in emu.request_log()), "the fault schedule injected nothing"


def test_delete_by_ids_deletes_those_and_nothing_else(emu, data):
    chosen = [*sorted(data.matching)[:150], "dlq-before"]
    summary = run_operator(QStashDLQDeleteOperator(task_id="delete", dlq_ids=chosen), False)
    assert summary["deleted"] == 151
    assert emu.dlq_ids() == (data.matching | data.others) - set(chosen)
    assert summary["requests"] == 2


def test_a_bounded_delete_then_a_rerun_ends_exact(emu, data):
    with pytest.raises(Exception, match="max_requests=2 reached"):
        run_operator(QStashDLQDeleteOperator(task_id="delete", batch_size=50, max_requests=2, **FILTERS), False)
    assert len(emu.dlq_ids() & data.matching) == N_MATCHING - 100
    summary = run_operator(QStashDLQDeleteOperator(task_id="delete", **FILTERS), False)
    assert summary["deleted"] == N_MATCHING - 100
    assert emu.dlq_ids() == data.others


def test_host_filters_never_reach_the_server(emu, data):
    with pytest.raises(Exception, match="DLQ endpoints reject"):
        QStashDLQDeleteOperator(task_id="delete", labels=["report"], hosts=["dest.example"])
    assert emu.request_log() == []


# --------------------------------------------------------------------------- retry


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("faults", [None, FAULTS], ids=["clean", "faults"])
def test_retry_reenqueues_exactly_the_selected_entries(emu, data, deferrable: bool, faults: FaultConfig | None):
    emu.set_faults(faults)
    op = QStashDLQRetryOperator(task_id="retry", deferrable=deferrable, override_retries=0, **FILTERS)

    summary = run_operator(op, deferrable)

    emu.set_faults(None)
    assert emu.dlq_ids() == data.others
    new = [m for m in emu.messages("held") if m["messageId"] not in data.held]
    assert len(new) == N_MATCHING
    assert {m["url"] for m in new} == data.urls  # one new message per selected entry
    assert {m["maxRetries"] for m in new} == {0}  # the override applied
    assert summary["retried"] == N_MATCHING
    assert set(summary["message_ids"]) == {m["messageId"] for m in new}
    assert summary["overrides"] == {"Upstash-Retries": "0"}
    assert (summary["vanished"], summary["not_found_answers"]) == (0, 0)
    assert summary["requests"] == math.ceil(N_MATCHING / 100)
    if faults is not None:
        assert any(r["fault"] for r in emu.request_log()), "the fault schedule injected nothing"


def test_retry_of_ids_some_gone_retries_the_rest_and_counts_the_vanished(emu, data):
    chosen = sorted(data.matching)[:40]
    gone = set(chosen[5:8])
    run_operator(QStashDLQDeleteOperator(task_id="delete", dlq_ids=sorted(gone)), False)
    emu.clear_request_log()

    summary = run_operator(QStashDLQRetryOperator(task_id="retry", dlq_ids=chosen), False)

    assert (summary["retried"], summary["vanished"]) == (37, 3)
    assert emu.dlq_ids() == (data.matching | data.others) - set(chosen)
    new = [m for m in emu.messages("held") if m["messageId"] not in data.held]
    assert {m["url"] for m in new} == {f"https://dest.example/{i}" for i in set(chosen) - gone}
    assert len(new) == 37
    retries = v2_requests(emu, "POST", "/v2/dlq/retry")
    assert len(retries) <= 2 * len(chosen)
    assert len(v2_requests(emu, "GET", "/v2/dlq")) == 1  # the one check that the DLQ API is there


def test_retry_rerun_finds_nothing_left_and_retries_nothing_twice(emu, data):
    run_operator(QStashDLQRetryOperator(task_id="retry", **FILTERS), False)
    again = run_operator(QStashDLQRetryOperator(task_id="retry", **FILTERS), False)
    assert (again["retried"], again["requests"]) == (0, 1)
    assert len(emu.messages("held")) == len(data.held) + N_MATCHING


def test_an_empty_replay_form_sends_nothing(emu, data):
    op = QStashDLQRetryOperator(
        task_id="retry",
        labels="{{ params.labels }}",
        response_statuses="{{ params.statuses }}",
        optional_filters=["labels", "response_statuses"],
    )
    op.render_template_fields({"params": {"labels": None, "statuses": []}})
    with pytest.raises(Exception, match="retry_all=True"):
        run_operator(op, False)
    assert emu.request_log() == []
    assert emu.dlq_ids() == data.matching | data.others
