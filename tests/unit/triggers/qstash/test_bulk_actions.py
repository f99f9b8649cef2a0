"""The round loop against today's hosted QStash (the emulator's ``actions`` mode), on both paths.

A round is a background bulk action followed to ``FINISHED``, then one more filter cancel that must find
nothing. Each test runs the synchronous operator and the deferrable path (``execute`` defers, the trigger
runs on an event loop, ``execute_complete``) against the in-process emulator over real HTTP, and checks
the emulator's store and request log, not only the XCom.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger
from qstash_emulator import QStashEmulator
from qstash_emulator.faults import FaultConfig
from tests.conftest import TEST_TOKEN, connection_json
from tests.support.task_logs import capture_task_logs

pytestmark = pytest.mark.timeout(120)

CONN_ID = "qstash_actions"
LABEL = "report"
TASK_START = pendulum.datetime(2024, 6, 1, tz="UTC")
FROM_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
TO_MS = FROM_MS + 86_400_000 - 1
N_MATCHING = 900
EVENT_TIMEOUT_S = 60.0

Runner = Callable[..., dict[str, Any]]


def dataset(n_matching: int = N_MATCHING) -> tuple[list[dict[str, Any]], set[str], set[str]]:
    """Matching: label ``report`` inside the window; others: outside it by 1 ms, or another label."""
    messages: list[dict[str, Any]] = []
    matching: set[str] = set()
    others: set[str] = set()
    span = TO_MS - FROM_MS
    for i in range(n_matching):
        created = FROM_MS if i == 0 else TO_MS if i == 1 else FROM_MS + (i * 7_919_993) % span
        messages.append(
            {"messageId": f"match-{i:05d}", "url": "https://a.example/h", "createdAt": created, "labels": [LABEL]}
        )
        matching.add(f"match-{i:05d}")
    for i in range(100):
        for prefix, created, labels in (
            ("before", FROM_MS - 1 - i, [LABEL]),
            ("after", TO_MS + 1 + i, [LABEL]),
            ("other", FROM_MS + i * 1000, ["other"]),
        ):
            message_id = f"{prefix}-{i:03d}"
            messages.append(
                {"messageId": message_id, "url": "https://a.example/h", "createdAt": created, "labels": labels}
            )
            others.add(message_id)
    return messages, matching, others


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[QStashEmulator]:
    with QStashEmulator(token=TEST_TOKEN, bulk_cancel="actions", action_rate=20_000, sync_wait=0.2) as emu:
        yield emu


@pytest.fixture
def emu(shared_emulator: QStashEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[QStashEmulator]:
    shared_emulator.reset()
    shared_emulator.set_faults(None)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        connection_json(shared_emulator.base_url, max_retries=10, poll_interval_max=0.02),
    )
    yield shared_emulator
    shared_emulator.wait_actions_idle(30)
    shared_emulator.set_faults(None)


@pytest.fixture
def data(emu: QStashEmulator) -> tuple[set[str], set[str]]:
    messages, matching, others = dataset()
    emu.add_messages(messages)
    return matching, others


def operator(**kwargs: Any) -> QStashBulkCancelOperator:
    kwargs.setdefault("labels", [LABEL])
    kwargs.setdefault("from_date", FROM_MS)
    kwargs.setdefault("to_date", TO_MS)
    return QStashBulkCancelOperator(task_id="cancel", qstash_conn_id=CONN_ID, **kwargs)


def context() -> Any:
    return {"ti": SimpleNamespace(start_date=TASK_START)}


def run_sync(**kwargs: Any) -> dict[str, Any]:
    return operator(deferrable=False, **kwargs).execute(context())


def run_deferred(**kwargs: Any) -> dict[str, Any]:
    task = operator(deferrable=True, **kwargs)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context())
    trigger = deferred.value.trigger
    path, serialized = trigger.serialize()
    assert path.endswith("QStashBulkCancelTrigger")
    rebuilt = QStashBulkCancelTrigger(**serialized)

    async def events() -> list[Any]:
        return [event async for event in rebuilt.run()]

    (event,) = asyncio.run(asyncio.wait_for(events(), EVENT_TIMEOUT_S))
    return getattr(task, deferred.value.method_name)(context(), event.payload)


PATHS = [pytest.param(run_sync, id="sync"), pytest.param(run_deferred, id="deferrable")]


def log_of(emu: QStashEmulator) -> list[dict[str, Any]]:
    return sorted(emu.request_log(), key=lambda entry: entry["time"])


def assert_exact(emu: QStashEmulator, matching: set[str], others: set[str]) -> None:
    assert {m["messageId"] for m in emu.messages("cancelled")} == matching
    assert emu.held_ids() == others


# --------------------------------------------------------------------------- the happy path


@pytest.mark.parametrize("run", PATHS)
def test_one_action_then_a_confirming_round_that_finds_nothing(emu: QStashEmulator, data: Any, run: Runner):
    matching, others = data

    result = run()

    assert result["mode"] == "bulk_action"
    assert result["cancelled"] == N_MATCHING
    assert result["batches"] == 2  # the action, then the confirming round
    assert len(result["action_ids"]) == 2 and len(set(result["action_ids"])) == 2
    assert_exact(emu, matching, others)
    actions = {a["actionId"]: a for a in emu.bulk_actions()}
    assert [actions[i]["total"] for i in result["action_ids"]] == [N_MATCHING, 0]
    starts = [e for e in log_of(emu) if (e["method"], e["path"]) == ("DELETE", "/v2/messages")]
    assert len(starts) == 2
    for entry in starts:
        assert ("async", "true") in entry["query"] and ("label", LABEL) in entry["query"]
    polls = [e for e in log_of(emu) if e["path"].startswith("/v2/bulkActions/")]
    assert {p["path"].rsplit("/", 1)[1] for p in polls} == set(result["action_ids"])
    assert TEST_TOKEN not in repr(result)


@pytest.mark.parametrize("run", PATHS)
def test_nothing_matching_is_one_empty_action(emu: QStashEmulator, run: Runner):
    messages, _, others = dataset(n_matching=0)
    emu.add_messages(messages)

    result = run()

    assert (result["cancelled"], result["batches"], result["mode"]) == (0, 1, "bulk_action")
    assert emu.held_ids() == others


def rendered_logs(entries: list[dict[str, Any]]) -> str:
    lines = []
    for entry in entries:
        args = entry.get("positional_args") or ()
        lines.append(entry["event"] % tuple(args) if args else str(entry["event"]))
    return "\n".join(lines)


def test_progress_lines_name_the_action_and_batch_size_is_said_to_be_ignored_once(emu: QStashEmulator, data: Any):
    with capture_task_logs() as entries:
        result = run_sync(batch_size=100)

    text = rendered_logs(entries)
    first = result["action_ids"][0]
    assert f"Bulk action {first} FINISHED: {N_MATCHING} of {N_MATCHING} processed (100.0%)" in text
    assert "messages/s, about" in text
    assert text.count("batch_size=100 is ignored") == 1


def test_ids_stay_synchronous_and_exact(emu: QStashEmulator, data: Any):
    matching, others = data
    ids = sorted(matching)[:50]
    before = emu.held_ids()

    result = operator(labels=None, from_date=None, to_date=None, message_ids=ids, deferrable=False).execute(context())

    assert (result["cancelled"], result["mode"], result["action_ids"]) == (50, "batched", [])
    assert {m["messageId"] for m in emu.messages("cancelled")} == set(ids)
    assert emu.held_ids() == before - set(ids) and others <= emu.held_ids()
    assert not emu.bulk_actions()


# --------------------------------------------------------------------------- faults on the new endpoints


@pytest.mark.parametrize("run", PATHS)
@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(FaultConfig(rate_start_lost=1.0, seed=3), id="start-answer-lost"),
        pytest.param(FaultConfig(rate_spurious_412=0.5, seed=4), id="spurious-412"),
        pytest.param(FaultConfig(rate_action_partial=0.5, seed=5), id="action-partial"),
        pytest.param(
            FaultConfig(rate_5xx=0.2, rate_drop=0.1, rate_429=0.1, reset_after_s=0, seed=6), id="5xx-drop-429"
        ),
    ],
)
def test_faults_still_end_exact(emu: QStashEmulator, data: Any, run: Runner, faults: FaultConfig):
    matching, others = data
    emu.set_faults(faults)

    result = run()

    emu.set_faults(None)
    assert_exact(emu, matching, others)
    assert result["mode"] == "bulk_action"
    if faults.rate_action_partial:
        assert result["batches"] >= 2
    if faults.rate_start_lost:
        # every start answered 429 without headers: each action was found by its filter and joined
        assert any(e["path"] == "/v2/bulkActions" for e in log_of(emu))
        assert set(result["action_ids"]) <= {a["actionId"] for a in emu.bulk_actions()}


def test_a_running_identical_action_is_joined_not_duplicated(emu: QStashEmulator, data: Any):
    """A re-run while the first run's action still goes on: the 412 leads to that action, which is followed."""
    matching, others = data
    emu.set_faults(None)
    slow = QStashEmulator(token=TEST_TOKEN, bulk_cancel="actions", action_rate=600, sync_wait=0.1)
    with slow:
        messages, matching, others = dataset()
        slow.add_messages(messages)
        import requests

        query = [("label", LABEL), ("fromDate", str(FROM_MS)), ("toDate", str(TO_MS)), ("async", "true")]
        first = requests.delete(slow.base_url + "/v2/messages", params=query, headers=slow.auth_headers, timeout=5)
        assert first.status_code == 202
        first_id = first.json()["actionId"]
        env = connection_json(slow.base_url, max_retries=5, poll_interval_max=0.05)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", env)
            result = run_sync()
        assert result["action_ids"][0] == first_id
        assert [e["status"] for e in slow.request_log() if e["path"] == "/v2/messages"][1] == 412
        assert {m["messageId"] for m in slow.messages("cancelled")} == matching
        assert slow.held_ids() == others
        assert len(slow.bulk_actions()) == 2  # the joined one and the confirming one, no duplicate


def test_action_timeout_fails_with_the_action_id_and_a_rerun_joins_it(
    emu: QStashEmulator, monkeypatch: pytest.MonkeyPatch
):
    slow = QStashEmulator(token=TEST_TOKEN, bulk_cancel="actions", action_rate=300, sync_wait=0.1)
    with slow:
        messages, matching, others = dataset()
        slow.add_messages(messages)
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(slow.base_url, max_retries=5, poll_interval_max=0.05)
        )
        with pytest.raises(AirflowException) as err:
            run_sync(action_timeout=0.5)
        (action,) = slow.bulk_actions()
        assert action["state"] == "IN_PROGRESS"
        assert f"bulk action {action['actionId']} still IN_PROGRESS" in str(err.value)
        assert "action_timeout=0.5" in str(err.value)

        result = run_sync()  # the retry: same filter, so the running action is joined

        assert result["action_ids"][0] == action["actionId"]
        assert {m["messageId"] for m in slow.messages("cancelled")} == matching
        assert slow.held_ids() == others


def test_cancelled_trigger_then_rerun_joins_the_running_action(monkeypatch: pytest.MonkeyPatch):
    """The triggerer dies mid-poll (the trigger task is cancelled); the re-run trigger joins the action."""
    with QStashEmulator(token=TEST_TOKEN, bulk_cancel="actions", action_rate=500, sync_wait=0.1) as slow:
        messages, matching, others = dataset()
        slow.add_messages(messages)
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(slow.base_url, max_retries=5, poll_interval_max=0.05)
        )
        task = operator(deferrable=True)
        with pytest.raises(TaskDeferred) as deferred:
            task.execute(context())
        _, serialized = deferred.value.trigger.serialize()

        async def run_until_polling() -> None:
            agen = QStashBulkCancelTrigger(**serialized).run()
            pending = asyncio.ensure_future(agen.__anext__())
            deadline = time.monotonic() + 20
            while not any(e["path"].startswith("/v2/bulkActions/") for e in slow.request_log()):
                assert time.monotonic() < deadline, "the trigger never polled"
                await asyncio.sleep(0.02)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            await agen.aclose()

        asyncio.run(run_until_polling())
        (running,) = slow.bulk_actions()
        assert running["state"] == "IN_PROGRESS"

        async def events() -> list[Any]:
            return [event async for event in QStashBulkCancelTrigger(**serialized).run()]

        (event,) = asyncio.run(asyncio.wait_for(events(), EVENT_TIMEOUT_S))
        result = task.execute_complete(context(), event.payload)
        assert result["action_ids"][0] == running["actionId"]
        assert {m["messageId"] for m in slow.messages("cancelled")} == matching
        assert slow.held_ids() == others


def test_on_kill_stops_polling(emu: QStashEmulator, monkeypatch: pytest.MonkeyPatch):
    with QStashEmulator(token=TEST_TOKEN, bulk_cancel="actions", action_rate=200, sync_wait=0.1) as slow:
        messages, _, _ = dataset()
        slow.add_messages(messages)
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{CONN_ID.upper()}", connection_json(slow.base_url, max_retries=5, poll_interval_max=0.05)
        )
        task = operator(deferrable=False)
        outcome: dict[str, BaseException] = {}

        def target() -> None:
            try:
                task.execute(context())
            except BaseException as err:
                outcome["error"] = err

        worker = threading.Thread(target=target)
        worker.start()
        deadline = time.monotonic() + 20
        while not any(e["path"].startswith("/v2/bulkActions/") for e in slow.request_log()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        task.on_kill()
        worker.join(20)
        assert not worker.is_alive()
        assert "stopped on request (task killed)" in str(outcome["error"])
