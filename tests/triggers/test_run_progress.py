"""
The bulk-cancel loop ends on what is LEFT, never on what the server says it processed (issue 17, items 3
and 4, and the log lines of a bulk-action server), on the synchronous operator (requests) and on the
deferrable path (``execute`` defers, the trigger runs over httpx, ``execute_complete``).

The server here is a scripted bulk-action QStash: each filter cancel starts an action whose ``total`` is
what matches now; the script says what the action reports ``processed`` and how many it really cancels.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pendulum
import pytest
import requests_mock as requests_mock_module
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from airflow_qstash.runs.common import MAX_ROUNDS_WITHOUT_PROGRESS
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger
from tests.conftest import FAKE_BASE_URL
from tests.task_logs import capture_task_logs

TASK_START = pendulum.datetime(2024, 6, 1, tz="UTC")
#: (reported processed, really cancelled) of an action that found ``total``.
Script = Callable[[int, int], tuple[int, int]]


class ActionServer:
    """A bulk-action QStash over ``left`` matching messages; every action is FINISHED at its first poll."""

    def __init__(self, left: int, script: Script):
        self.left = left
        self.script = script
        self.actions: dict[str, dict[str, Any]] = {}
        self.starts = 0

    def answer(self, method: str, path: str) -> tuple[int, Any]:
        if (method, path) == ("DELETE", "/v2/messages"):
            self.starts += 1
            total = self.left
            processed, cancelled = self.script(self.starts, total)
            self.left -= cancelled
            action_id = f"act-{self.starts}"
            self.actions[action_id] = {
                "actionId": action_id,
                "state": "FINISHED",
                "total": total,
                "processed": processed,
                "createdAt": 1,
            }
            return 200, {"actionId": action_id}
        match = re.fullmatch(r"/v2/bulkActions/(.+)", path)
        if method == "GET" and match and match.group(1) in self.actions:
            return 200, self.actions[match.group(1)]
        return 404, {"error": f"no route {method} {path}"}

    def requests_callback(self, request: Any, context: Any) -> str:
        context.status_code, body = self.answer(request.method, urlsplit(request.url).path)  # .path is lowercased
        return json.dumps(body)

    def httpx_handler(self, request: httpx.Request) -> httpx.Response:
        status, body = self.answer(request.method, request.url.path)
        return httpx.Response(status, json=body)


def run_sync(server: ActionServer, requests_mock: Any, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Any:
    monkeypatch.setattr(QStashHook, "sleep", staticmethod(lambda seconds: None))
    requests_mock.register_uri(
        requests_mock_module.ANY, re.compile(re.escape(FAKE_BASE_URL) + "/"), text=server.requests_callback
    )
    task = QStashBulkCancelOperator(task_id="cancel", labels="a", from_date=0, deferrable=False, **kwargs)
    return task.execute({"ti": SimpleNamespace(start_date=TASK_START)})


def run_deferred(server: ActionServer, requests_mock: Any, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Any:
    async def get_client(self: QStashAsyncHook) -> httpx.AsyncClient:
        if self._client is None:
            config = await self.get_config()
            self._client = httpx.AsyncClient(
                transport=httpx.MockTransport(server.httpx_handler), base_url=config.base_url, headers=config.headers
            )
        return self._client

    real_sleep = asyncio.sleep

    async def no_sleep(seconds: float, *args: Any) -> Any:
        return await real_sleep(0, *args)

    monkeypatch.setattr(QStashAsyncHook, "_get_client", get_client)
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
    def go(server: ActionServer, **kwargs: Any) -> Any:
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
    server = ActionServer(3, lambda start, total: (0, total))  # the count lags; the messages go

    result = run(server)

    assert server.starts == 2 and server.left == 0
    assert (result["cancelled"], result["batches"], result["rounds"]) == (3, 2, 2)
    assert (result["left"], result["unconfirmed"]) == (0, 0)


@pytest.mark.parametrize("run", PATHS, indirect=True)
def test_an_action_that_did_nothing_is_not_a_success(run: Any):
    """An action that finds 3, processes 0 and cancels 0, every time: the run must not say done."""
    server = ActionServer(3, lambda start, total: (0, 0))

    with pytest.raises(AirflowException) as err:
        run(server)

    assert server.left == 3
    assert server.starts == MAX_ROUNDS_WITHOUT_PROGRESS + 1
    assert "3 message(s) left" in str(err.value)


# --------------------------------------------------------------------------- item 4


@pytest.mark.parametrize("run", PATHS, indirect=True)
def test_a_message_that_cannot_be_cancelled_stops_the_run_after_a_few_rounds(run: Any):
    """Every action reports processed == total == 1 and nothing goes: "cancelled 12" in 12 s, before."""
    server = ActionServer(1, lambda start, total: (total, 0))

    with pytest.raises(AirflowException) as err:
        run(server, max_batches=50)

    message = str(err.value)
    assert server.starts == MAX_ROUNDS_WITHOUT_PROGRESS + 1  # not 50
    assert "no progress" in message and "1 message(s) left" in message
    for action_id in server.actions:
        assert action_id in message
    assert "0 message(s) confirmed cancelled" in message
    assert "cancelled 4" not in message.lower()


@pytest.mark.parametrize("run", PATHS, indirect=True)
def test_cancelled_counts_what_went_not_what_the_server_says_it_processed(run: Any):
    """Each action reports all it found processed but cancels 70 %: the count is the drop of total."""
    server = ActionServer(10, lambda start, total: (total, (total * 7) // 10 or total))

    result = run(server)

    # totals 10 -> 3 -> 1 -> 0: processed claims 10 + 3 + 1 = 14, what went is 10
    assert [a["total"] for a in server.actions.values()] == [10, 3, 1, 0]
    assert (result["cancelled"], result["batches"], result["rounds"], result["mode"]) == (10, 4, 4, "bulk_action")


@pytest.mark.parametrize("run", PATHS, indirect=True)
def test_shrinking_rounds_are_progress_however_many(run: Any):
    """One message goes per action: slow, but every round leaves less, so the run is not stopped."""
    server = ActionServer(6, lambda start, total: (total, min(total, 1)))

    result = run(server)

    assert (result["cancelled"], server.starts, server.left) == (6, 7, 0)


# --------------------------------------------------------------------------- #21.5: the log speaks of rounds


@pytest.mark.parametrize("run", PATHS, indirect=True)
def test_a_bulk_action_server_logs_rounds_and_actions_not_batches(run: Any):
    server = ActionServer(54, lambda start, total: (total, total))

    with capture_task_logs() as entries:
        result = run(server, batch_size=500)

    text = rendered(entries)
    assert result["cancelled"] == 54
    assert text.count("batch_size=500 is ignored") == 1
    assert "Round 1: bulk action act-1 found 54 matching message(s) and reports 54 processed" in text
    assert "Round 2: bulk action act-2 found no matching message: done; 54 message(s) confirmed cancelled" in text
    assert "54 message(s) confirmed cancelled in 2 round(s) of bulk actions" in text
    assert "Batch " not in text and "per batch" not in text and "batch(es)" not in text


# ------------------------------------------------------------------- the pieces both loops share (runs/common.py)


def _drive(procedure: Any, answer: Callable[[Any], Any]) -> tuple[Any, list[Any]]:
    """Drive a sans-IO procedure: each Call gets ``answer(call)`` (raised when an exception), a Sleep None."""
    from airflow_qstash.protocol.calls import Call

    effects: list[Any] = []
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = procedure.throw(error) if error is not None else procedure.send(reply)
        except StopIteration as stop:
            return stop.value, effects
        effects.append(effect)
        reply, error = None, None
        if isinstance(effect, Call):
            got = answer(effect)
            reply, error = (None, got) if isinstance(got, BaseException) else (got, None)


def _in_progress(call: Any) -> dict[str, Any]:
    return {"actionId": "act-1", "state": "IN_PROGRESS", "total": 10, "processed": 1}


def _runs() -> list[Any]:
    from airflow_qstash.filters import BulkCancelFilter
    from airflow_qstash.runs.bulk_cancel import BulkCancelRun
    from airflow_qstash.runs.dlq import DELETE, RETRY, build_dlq_filter, make_run

    return [
        BulkCancelRun(BulkCancelFilter.build(labels="a", from_date=0), batch_size=10, action_timeout=20),
        make_run(DELETE, build_dlq_filter(DELETE, labels="a", from_date=0), action_timeout=20),
        make_run(RETRY, build_dlq_filter(RETRY, labels="a", from_date=0), action_timeout=20),
    ]


def test_progress_counts_the_drop_of_what_is_left_and_stalls_only_on_rounds_that_leave_as_much():
    from airflow_qstash.runs.common import Progress

    progress = Progress()
    assert progress.record_left(10) == 0 and progress.left == 10  # the first round: nothing known to have gone
    assert progress.record_left(4) == 6 and progress.stalled == 0
    assert progress.record_left(9) == 0 and progress.stalled == 1  # more left than before: never a negative drop
    assert progress.record_left(9) == 0 and progress.stalled == 2
    assert not progress.stuck
    assert progress.record_left(9) == 0 and progress.stuck  # MAX_ROUNDS_WITHOUT_PROGRESS rounds in a row
    assert progress.record_left(0) == 9 and progress.stalled == 0  # nothing left is progress
    progress.note(False)
    progress.note(True)
    assert progress.stalled == 0


@pytest.mark.parametrize("index", [0, 1, 2], ids=["bulk_cancel", "dlq_delete", "dlq_retry"])
def test_every_run_checks_stop_before_its_bound_and_names_the_bound(index: int):
    from airflow_qstash.exceptions import QStashRunIncomplete

    run = _runs()[index]
    name = "max_batches" if index == 0 else "max_requests"
    with pytest.raises(QStashRunIncomplete, match=f"{name}=5 reached while testing"):
        run.check_before_request(5, 5, name, "while testing")
    run.check_before_request(4, 5, name, "while testing")
    run.stop()
    with pytest.raises(QStashRunIncomplete, match=r"stopped on request \(task killed\)"):
        run.check_before_request(0, 5, name, "while testing")


@pytest.mark.parametrize("index", [0, 1, 2], ids=["bulk_cancel", "dlq_delete", "dlq_retry"])
def test_every_run_polls_an_action_with_growing_pauses_until_its_action_timeout(index: int):
    from airflow_qstash.exceptions import QStashRunIncomplete
    from airflow_qstash.protocol.calls import Sleep
    from airflow_qstash.runs.common import POLL_GROWTH, POLL_INITIAL, ActionRun

    run = _runs()[index]
    assert isinstance(run, ActionRun)
    now = [0.0]
    run.clock = lambda: now[0]
    polls: list[float] = []

    def answer(call: Any) -> Any:
        return _in_progress(call)

    procedure = run.poll_action("act-1", 4.0, lambda action, elapsed: polls.append(elapsed))
    effects: list[Any] = []
    with pytest.raises(QStashRunIncomplete, match=r"still IN_PROGRESS .* past action_timeout=20 s") as info:
        reply: Any = None
        while True:
            effect = procedure.send(reply)
            effects.append(effect)
            if isinstance(effect, Sleep):
                now[0] += effect.seconds
                reply = None
            else:
                reply = answer(effect)
    pauses = [effect.seconds for effect in effects if isinstance(effect, Sleep)]
    assert pauses[:3] == [POLL_INITIAL, POLL_INITIAL * POLL_GROWTH, POLL_INITIAL * POLL_GROWTH**2]
    assert max(pauses) == 4.0  # the ceiling
    assert sum(pauses) <= 20  # no pause that ends past the timeout
    assert run.polls == len(polls) == len(pauses) + 1
    assert "running the task again joins it" in str(info.value)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["bulk_cancel", "dlq_delete", "dlq_retry"])
def test_a_stop_ends_the_poll_of_an_action_after_the_reading_in_hand(index: int):
    from airflow_qstash.exceptions import QStashRunIncomplete

    run = _runs()[index]
    run.stop()
    with pytest.raises(QStashRunIncomplete, match="stopped on request"):
        _drive(run.poll_action("act-1", 4.0, lambda action, elapsed: None), _in_progress)
    assert run.polls == 1


def test_a_finished_action_ends_the_poll_and_is_returned():
    run = _runs()[0]
    action, effects = _drive(
        run.poll_action("act-1", 4.0, lambda action, elapsed: None),
        lambda call: {"actionId": "act-1", "state": "FINISHED", "total": 3, "processed": 3},
    )
    assert (action.action_id, action.finished, len(effects)) == ("act-1", True, 1)


def test_joining_by_stored_id_keeps_every_stored_id_and_reattaches_to_the_last():
    from airflow_qstash.runs.join import joined_by_server, resume_action_id

    followed = ["a1"]
    assert resume_action_id(["a1", "a2", "a3"], followed) == "a3"
    assert followed == ["a1", "a2", "a3"]  # never joined by filter again
    assert resume_action_id([], followed) is None and followed == ["a1", "a2", "a3"]
    # a DLQ /bulk start the server answered with an action this run did not start
    assert joined_by_server("a2", None, followed, 1_000)
    assert joined_by_server("new", 999, followed, 1_000)
    assert not joined_by_server("new", 1_000, followed, 1_000)
    assert not joined_by_server("new", None, followed, 1_000)


def test_the_summary_basics_are_the_same_for_every_run():
    for run in _runs():
        value = getattr(run, "bulk_filter", None) or run.dlq_filter
        summary = run.summary()
        assert (summary["from_date"], summary["to_date"], summary["filters"]) == (
            value.from_date,
            value.to_date,
            value.describe(),
        )
        assert summary["filters"] == "labels=['a']"
        assert 0 <= summary["duration_seconds"] < 60


@pytest.mark.parametrize("index", [0, 1, 2], ids=["bulk_cancel", "dlq_delete", "dlq_retry"])
def test_every_run_reads_its_start_from_the_one_wall_clock_reader(index: int, monkeypatch: pytest.MonkeyPatch):
    """``started_ms`` (what may be joined) comes from :func:`airflow_qstash.inputs.now_ms`, which tests pin."""
    from tests.clock import pin_wall_clock

    now = pin_wall_clock(monkeypatch)
    assert _runs()[index].started_ms == int(now * 1000)
