"""
The bulk-cancel loop ends on what is LEFT, never on what the server says it processed (issue 17, items 3
and 4, and the log lines of a bulk-action server), on the synchronous operator (requests) and on the
deferrable path (``execute`` defers, the trigger runs over httpx, ``execute_complete``).

The server here is a scripted bulk-action QStash: each filter cancel starts an action whose ``total`` is
what matches now; the script says what the action reports ``processed`` and how many it really cancels.

:func:`~airflow_qstash.runs.bulk_cancel.bulk_cancel_total`, the hook's one-pass cancel, is driven without a
server by :func:`tests.support.procedures.drive`.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

from airflow_qstash.exceptions import QStashAPIError
from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.hooks.qstash import QStashHook
from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from airflow_qstash.protocol.messages import ActionStarted, BatchCancelled, bulk_cancel_requests
from airflow_qstash.runs.bulk_cancel import bulk_cancel_total
from airflow_qstash.runs.common import MAX_ROUNDS_WITHOUT_PROGRESS
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger
from tests.doubles.fake_qstash import BulkActions, Outcome
from tests.support.procedures import calls, drive
from tests.support.task_logs import capture_task_logs

TASK_START = pendulum.datetime(2024, 6, 1, tz="UTC")
BASE_URL = "https://qstash.test"


def action_server(left: int, outcome: Outcome) -> BulkActions:
    """A bulk-action QStash over ``left`` matching messages; every action is FINISHED at its start."""
    return BulkActions(left, outcome=outcome, start_status=200)


def run_sync(server: BulkActions, requests_mock: Any, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Any:
    monkeypatch.setattr(QStashHook, "sleep", staticmethod(lambda seconds: None))
    server.serve(requests_mock, monkeypatch)
    task = QStashBulkCancelOperator(task_id="cancel", labels="a", from_date=0, deferrable=False, **kwargs)
    return task.execute({"ti": SimpleNamespace(start_date=TASK_START)})


def run_deferred(server: BulkActions, requests_mock: Any, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Any:
    server.serve(requests_mock, monkeypatch)
    real_sleep = asyncio.sleep

    async def no_sleep(seconds: float, *args: Any) -> Any:
        return await real_sleep(0, *args)

    monkeypatch.setattr("airflow_qstash.hooks.qstash.asyncio.sleep", no_sleep)
    task = QStashBulkCancelOperator(task_id="cancel", labels="a", from_date=0, deferrable=True, **kwargs)
    context = {"ti": SimpleNamespace(start_date=TASK_START)}
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context)
    _, serialized = deferred.value.trigger.serialize()

    async def events() -> list[Any]:
        return [event async for event in QStashBulkCancelTrigger(**serialized).run()]

    (event,) = asyncio.run(events())
    return getattr(task, deferred.value.method_name)(context, event.payload)


PATHS = [pytest.param(run_sync, id="sync"), pytest.param(run_deferred, id="deferrable")]


@pytest.fixture
def run(request: pytest.FixtureRequest, qstash_conn: str, requests_mock: Any, monkeypatch: pytest.MonkeyPatch):
    def go(server: BulkActions, **kwargs: Any) -> Any:
        return request.param(server, requests_mock, monkeypatch, **kwargs)

    return go


def rendered(entries: list[Any]) -> str:
    lines = []
    for entry in entries:
        args = entry.get("positional_args") or ()
        lines.append(entry["event"] % tuple(args) if args else str(entry["event"]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- item 3


@pytest.mark.parametrize("run", PATHS, indirect=True)
def test_a_finished_action_that_reports_zero_processed_is_followed_by_a_confirming_round(run: Any):
    """total=3, processed=0 used to end the job as a success after one start: processed decided the end."""
    server = action_server(3, lambda start, total: (0, total))  # the count lags; the messages go

    result = run(server)

    assert len(server.starts) == 2 and server.left == 0
    assert (result["cancelled"], result["batches"], result["rounds"]) == (3, 2, 2)
    assert (result["left"], result["unconfirmed"]) == (0, 0)


@pytest.mark.parametrize("run", PATHS, indirect=True)
def test_an_action_that_did_nothing_is_not_a_success(run: Any):
    """An action that finds 3, processes 0 and cancels 0, every time: the run must not say done."""
    server = action_server(3, lambda start, total: (0, 0))

    with pytest.raises(AirflowException) as err:
        run(server)

    assert server.left == 3
    assert len(server.starts) == MAX_ROUNDS_WITHOUT_PROGRESS + 1
    assert "3 message(s) left" in str(err.value)


# --------------------------------------------------------------------------- item 4


@pytest.mark.parametrize("run", PATHS, indirect=True)
def test_a_message_that_cannot_be_cancelled_stops_the_run_after_a_few_rounds(run: Any):
    """Every action reports processed == total == 1 and nothing goes: "cancelled 12" in 12 s, before."""
    server = action_server(1, lambda start, total: (total, 0))

    with pytest.raises(AirflowException) as err:
        run(server, max_batches=50)

    message = str(err.value)
    assert len(server.starts) == MAX_ROUNDS_WITHOUT_PROGRESS + 1  # not 50
    assert "no progress" in message and "1 message(s) left" in message
    for action_id in server.actions:
        assert action_id in message
    assert "0 message(s) confirmed cancelled" in message
    assert "cancelled 4" not in message.lower()


@pytest.mark.parametrize("run", PATHS, indirect=True)
def test_cancelled_counts_what_went_not_what_the_server_says_it_processed(run: Any):
    """Each action reports all it found processed but cancels 70 %: the count is the drop of total."""
    server = action_server(10, lambda start, total: (total, (total * 7) // 10 or total))

    result = run(server)

    # totals 10 -> 3 -> 1 -> 0: processed claims 10 + 3 + 1 = 14, what went is 10
    assert [a["total"] for a in server.actions.values()] == [10, 3, 1, 0]
    assert (result["cancelled"], result["batches"], result["rounds"], result["mode"]) == (10, 4, 4, "bulk_action")


@pytest.mark.parametrize("run", PATHS, indirect=True)
def test_shrinking_rounds_are_progress_however_many(run: Any):
    """One message goes per action: slow, but every round leaves less, so the run is not stopped."""
    server = action_server(6, lambda start, total: (total, min(total, 1)))

    result = run(server)

    assert (result["cancelled"], len(server.starts), server.left) == (6, 7, 0)


# --------------------------------------------------------------------------- #21.5: the log speaks of rounds


@pytest.mark.parametrize("run", PATHS, indirect=True)
def test_a_bulk_action_server_logs_rounds_and_actions_not_batches(run: Any):
    server = action_server(54, lambda start, total: (total, total))

    with capture_task_logs() as entries:
        result = run(server, batch_size=500)

    text = rendered(entries)
    assert result["cancelled"] == 54
    assert text.count("batch_size=500 is ignored") == 1
    assert "Round 1: bulk action act-1 found 54 matching message(s) and reports 54 processed" in text
    assert "Round 2: bulk action act-2 found no matching message: done; 54 message(s) confirmed cancelled" in text
    assert "54 message(s) confirmed cancelled in 2 round(s) of bulk actions" in text
    assert "Batch " not in text and "per batch" not in text and "batch(es)" not in text


# --------------------------------------------------------------------------- the hook's one-pass cancel


def test_bulk_cancel_total_adds_the_counts_of_a_split_id_list():
    ids = [f"msg_{i:030d}" for i in range(1500)]
    parts = bulk_cancel_requests(BulkCancelFilter.build(message_ids=ids), None, BASE_URL)
    got, effects = drive(
        bulk_cancel_total(BulkCancelFilter.build(message_ids=ids), None, BASE_URL),
        [{"cancelled": index + 1} for index in range(len(parts))],
    )
    assert got == BatchCancelled(sum(range(1, len(parts) + 1)))
    assert len(calls(effects)) == len(parts) > 1


def test_bulk_cancel_total_refuses_a_bulk_action_for_a_split_id_list():
    ids = [f"msg_{i:030d}" for i in range(1500)]
    with pytest.raises(QStashAPIError, match="split message_ids cancel with a bulk action"):
        drive(bulk_cancel_total(BulkCancelFilter.build(message_ids=ids), None, BASE_URL), [{"actionId": "a"}] * 5)


def test_bulk_cancel_total_returns_a_started_action():
    got, effects = drive(bulk_cancel_total(BulkCancelFilter.build(labels="a"), 100, BASE_URL), [{"actionId": "a"}])
    assert got == ActionStarted("a")
    assert calls(effects)[0].params == (("label", "a"), ("count", "100"), ("async", "true"))
