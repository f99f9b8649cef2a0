"""
What the bulk-cancel and DLQ loops share (:mod:`airflow_qstash.runs.common`): progress judged on what is
left, the stop flag checked before the request bound, the bounded poll of one action, the summary basics and
the one clock reader; each shared piece is checked on every run that uses it.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

import pytest

from tests.support.procedures import drive, sleeps


def _in_progress(call: Any) -> dict[str, Any]:
    return {"actionId": "act-1", "state": "IN_PROGRESS", "total": 10, "processed": 1}


def _runs() -> list[Any]:
    from airflow_qstash.filters import DELETE, RETRY, BulkCancelFilter, DLQFilter
    from airflow_qstash.runs.bulk_cancel import BulkCancelRun
    from airflow_qstash.runs.dlq import make_run

    return [
        BulkCancelRun(BulkCancelFilter.build(labels="a", from_date=0), batch_size=10, action_timeout=20),
        make_run(DELETE, DLQFilter.build(labels="a", from_date=0), action_timeout=20),
        make_run(RETRY, DLQFilter.build(labels="a", from_date=0), action_timeout=20),
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
    from airflow_qstash.runs.common import POLL_GROWTH, POLL_INITIAL, ActionRun

    run = _runs()[index]
    assert isinstance(run, ActionRun)
    now = [0.0]
    run.clock = lambda: now[0]
    polls: list[float] = []

    def answer(call: Any) -> Any:
        return _in_progress(call)

    def advance(seconds: float) -> None:
        now[0] += seconds

    procedure = run.poll_action("act-1", 4.0, lambda action, elapsed: polls.append(elapsed))
    effects: list[Any] = []
    with pytest.raises(QStashRunIncomplete, match=r"still IN_PROGRESS .* past action_timeout=20 s") as info:
        drive(procedure, repeat(answer), effects, sleep=advance)
    pauses = sleeps(effects)
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
        drive(run.poll_action("act-1", 4.0, lambda action, elapsed: None), repeat(_in_progress))
    assert run.polls == 1


def test_a_finished_action_ends_the_poll_and_is_returned():
    run = _runs()[0]
    action, effects = drive(
        run.poll_action("act-1", 4.0, lambda action, elapsed: None),
        repeat(lambda call: {"actionId": "act-1", "state": "FINISHED", "total": 3, "processed": 3}),
    )
    assert (action.action_id, action.finished, len(effects)) == ("act-1", True, 1)


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
    from tests.support.clock import pin_wall_clock

    now = pin_wall_clock(monkeypatch)
    assert _runs()[index].started_ms == int(now * 1000)
