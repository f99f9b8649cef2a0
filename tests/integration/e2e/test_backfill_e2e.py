"""
``qstash_backfill_cleanup`` end to end: three consecutive daily runs, each cancelling only its own day.

Against today's hosted QStash (the emulator's ``actions`` mode) each run is one bulk action over its day,
followed to ``FINISHED``, then a confirming one that finds nothing; the DAG's ``batch_size`` is ignored.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
import pytest

from qstash_emulator import QStashEmulator
from tests.integration.e2e.dag_runner import DagTestRunner
from tests.integration.e2e.e2e_lib import (
    MS,
    assert_bulk_action_run,
    assert_succeeded,
    cancelled_ids,
    message,
    ms,
    seed,
    spread,
    with_async,
)

pytestmark = pytest.mark.e2e

DAG_ID = "qstash_backfill_cleanup"
LABEL = "import-job"
DAYS = [pendulum.datetime(2026, 10, d, tz="UTC") for d in (1, 2, 3, 4)]
#: import-job messages per day (501: more than one batch of the DAG's batch_size). Day 4 is never run.
PER_DAY = [7, 501, 40, 12]


def test_three_daily_runs_each_cancel_only_their_own_day(dag_runner: DagTestRunner, emu: QStashEmulator):
    # No message exactly at midnight: both bounds are inclusive, so one would belong to two days' windows.
    groups = {}
    for day, n in zip(DAYS, PER_DAY, strict=True):
        first, last = day + MS, day + timedelta(days=1) - MS
        groups[f"{LABEL} {day.day}"] = [message([LABEL], t) for t in spread(first, last, n)]
        groups[f"others {day.day}"] = (
            [message(["daily-report"], t) for t in spread(first, last, 5)]
            + [message(["import-job-v2"], t) for t in spread(first, last, 5)]
            + [message(None, t) for t in spread(first, last, 5)]
        )
    ids = seed(emu, groups)
    everything = set().union(*ids.values())

    expected_cancelled: set[str] = set()
    for run, (day, n) in enumerate(zip(DAYS[:3], PER_DAY[:3], strict=True), start=1):
        emu.clear_request_log()
        earlier_actions = {action["actionId"] for action in emu.wait_actions_idle(30)}
        end = day + timedelta(days=1)

        answer = dag_runner.run(DAG_ID, logical_date=end)

        xcom = assert_succeeded(answer)
        assert (answer["data_interval_start"], answer["data_interval_end"]) == (day.isoformat(), end.isoformat())
        expected_cancelled |= ids[f"{LABEL} {day.day}"]
        assert cancelled_ids(emu) == expected_cancelled, f"run {run}"
        assert emu.held_ids() == everything - expected_cancelled, f"run {run}"
        assert (xcom["from_date"], xcom["to_date"]) == (ms(day), ms(end))
        query = with_async([("label", LABEL), ("fromDate", str(ms(day))), ("toDate", str(ms(end))), ("count", "500")])
        assert_bulk_action_run(emu, answer, xcom, query, n, earlier_actions=earlier_actions)

    assert ids[f"{LABEL} 4"] <= emu.held_ids()
