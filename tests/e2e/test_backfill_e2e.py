"""``qstash_backfill_cleanup`` end to end: three consecutive daily runs, each cancelling only its own day."""

from __future__ import annotations

import math
from datetime import timedelta

import pendulum
import pytest

from airflow_qstash.emulator import QStashEmulator
from tests.e2e.dag_runner import DagTestRunner
from tests.e2e.e2e_lib import MS, assert_succeeded, bulk_cancel_queries, cancelled_ids, message, ms, seed, spread

pytestmark = pytest.mark.e2e

DAG_ID = "qstash_backfill_cleanup"
LABEL = "import-job"
DAYS = [pendulum.datetime(2026, 10, d, tz="UTC") for d in (1, 2, 3, 4)]
#: import-job messages per day; 501 makes the second run need two full batches. Day 4 is never run.
PER_DAY = [7, 501, 40, 12]
BATCH = 500


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
        end = day + timedelta(days=1)

        answer = dag_runner.run(DAG_ID, logical_date=end)

        xcom = assert_succeeded(answer)
        assert (answer["data_interval_start"], answer["data_interval_end"]) == (day.isoformat(), end.isoformat())
        expected_cancelled |= ids[f"{LABEL} {day.day}"]
        assert cancelled_ids(emu) == expected_cancelled, f"run {run}"
        assert emu.held_ids() == everything - expected_cancelled, f"run {run}"
        batches = math.ceil(n / BATCH) + 1
        assert (xcom["cancelled"], xcom["batches"]) == (n, batches), f"run {run}"
        assert (xcom["from_date"], xcom["to_date"]) == (ms(day), ms(end))
        query = sorted([("label", LABEL), ("fromDate", str(ms(day))), ("toDate", str(ms(end))), ("count", "500")])
        assert bulk_cancel_queries(emu) == [query] * batches, f"run {run}"

    assert ids[f"{LABEL} 4"] <= emu.held_ids()
