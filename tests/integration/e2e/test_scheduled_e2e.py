"""
``qstash_scheduled_cleanup`` end to end: ``dag.test()`` in an isolated Airflow against the emulator.

The DAG cancels the ``daily-report`` messages created during the run's data interval (the previous day,
``CronDataIntervalTimetable``); both bounds are inclusive, as in QStash. The main run is made against both
server generations: today's hosted QStash (a bulk action followed to ``FINISHED``, then a confirming one)
and a server that honours ``count`` (batches of 500 until one cancels zero).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pendulum
import pytest

from qstash_emulator import QStashEmulator
from tests.integration.e2e.dag_runner import DagTestRunner
from tests.integration.e2e.e2e_lib import (
    MS,
    assert_batched_run,
    assert_bulk_action_run,
    assert_failed,
    assert_succeeded,
    cancelled_ids,
    message,
    ms,
    requests,
    seed,
    spread,
    with_async,
)
from tests.support.airflow_versions import AIRFLOW_V_3_0_PLUS

pytestmark = pytest.mark.e2e

DAG_ID = "qstash_scheduled_cleanup"
LOGICAL_DATE = pendulum.datetime(2026, 10, 2, tz="UTC")
START = pendulum.datetime(2026, 10, 1, tz="UTC")
END = pendulum.datetime(2026, 10, 2, tz="UTC")
LABEL = "daily-report"
BATCH = 500


@pytest.mark.parametrize("server", ["actions", "legacy"])
def test_scheduled_run_cancels_exactly_its_window_of_its_label(
    dag_runner: DagTestRunner,
    emu: QStashEmulator,
    legacy_emu: QStashEmulator,
    legacy_env: dict[str, str],
    server: str,
):
    store, env = (emu, None) if server == "actions" else (legacy_emu, legacy_env)
    ids = seed(
        store,
        {
            # 1233 spread over the day, the first exactly at the start bound, the last exactly at the end
            # bound (inclusive), plus one that carries a second label: 1234, three full batches and a bit.
            "inside": [message([LABEL], t) for t in spread(START, END, 1233)]
            + [message(["ops", LABEL], START + timedelta(hours=12))],
            "just_outside": [message([LABEL], START - MS), message([LABEL], END + MS)],
            "other_days": [message([LABEL], t) for t in spread(START - timedelta(days=3), START - 2 * MS, 20)]
            + [message([LABEL], t) for t in spread(END + 2 * MS, END + timedelta(days=2), 20)],
            "other_labels_inside": [message(["weekly-report"], t) for t in spread(START, END, 60)]
            + [message(["import-job"], t) for t in spread(START, END, 60)]
            + [message(["daily-report-v2"], t) for t in spread(START, END, 10)]
            + [message(["daily"], t) for t in spread(START, END, 10)]
            + [message(None, t) for t in spread(START, END, 30)],
        },
    )
    inside = ids["inside"]
    n_inside = len(inside)
    assert n_inside == 1234

    answer = dag_runner.run(DAG_ID, logical_date=LOGICAL_DATE, env=env)

    xcom = assert_succeeded(answer)
    assert (answer["data_interval_start"], answer["data_interval_end"]) == (START.isoformat(), END.isoformat())
    assert cancelled_ids(store) == inside
    assert store.held_ids() == set().union(*ids.values()) - inside
    assert (xcom["from_date"], xcom["to_date"]) == (ms(START), ms(END))
    query = with_async(
        [("label", LABEL), ("fromDate", str(ms(START))), ("toDate", str(ms(END))), ("count", str(BATCH))]
    )
    if server == "actions":
        assert_bulk_action_run(store, answer, xcom, query, n_inside)
        assert "batch_size=500 is ignored" in answer["log"]
    else:
        assert_batched_run(store, xcom, query, n_inside, BATCH)  # 3 full batches, a part one, one of zero
        assert "Bulk action" not in answer["log"]


def test_run_without_a_logical_date_has_no_window_and_fails_before_any_request(
    dag_runner: DagTestRunner, emu: QStashEmulator
):
    """
    ``dag.test(logical_date=None)`` makes the run an API/UI trigger makes: no logical date, no data interval.

    In Airflow 3.3 the task context then has no ``data_interval_start`` at all, so the template fails to
    render (``'data_interval_start' is undefined``, the DAG's StrictUndefined) before the operator runs; an
    Airflow that renders it as ``None`` instead meets the operator's own refusal. Either way: no request.
    Retries are turned off for this run only: the DAG retries twice, five minutes apart, and every try
    fails the same way.
    """
    now = pendulum.now("UTC")
    ids = seed(emu, {"recent": [message([LABEL], t) for t in spread(now - timedelta(days=3), now, 50)]})

    answer = dag_runner.run(DAG_ID, logical_date=None, no_retries=True)
    after = pendulum.now("UTC")

    if not AIRFLOW_V_3_0_PLUS:
        # Airflow 2 has no run without a logical date: its UI and API trigger at now, and the timetable gives
        # that run the previous full day, so the run cleans that day and keeps the rest. The run reads its
        # own clock: a run that crosses midnight UTC gets the day that ended while it ran.
        xcom = assert_succeeded(answer)
        end = pendulum.parse(answer["data_interval_end"])
        assert end in {now.start_of("day"), after.start_of("day")}
        assert (answer["data_interval_start"], answer["data_interval_end"]) == (
            (end - timedelta(days=1)).isoformat(),
            end.isoformat(),
        )
        assert (xcom["from_date"], xcom["to_date"]) == (ms(end - timedelta(days=1)), ms(end))
        assert cancelled_ids(emu) and cancelled_ids(emu) | emu.held_ids() == ids["recent"]
        return
    assert_failed(answer)
    assert (answer["logical_date"], answer["data_interval_start"], answer["data_interval_end"]) == (None, None, None)
    assert requests(emu) == []
    assert emu.held_ids() == ids["recent"]
    assert "'data_interval_start' is undefined" in answer["log"] or "rendered to nothing" in answer["log"]


def test_run_with_default_logical_date_cleans_yesterday(dag_runner: DagTestRunner, emu: QStashEmulator):
    """``dag.test()`` with no logical date uses now, and the timetable gives it the previous full day."""
    today = pendulum.now("UTC").start_of("day")
    days = [today - timedelta(days=2), today - timedelta(days=1), today]
    ids = seed(
        emu,
        {
            day.date().isoformat(): [message([LABEL], t) for t in spread(day + MS, day + timedelta(hours=23), 7)]
            for day in days
        },
    )

    answer = dag_runner.run(DAG_ID)

    xcom = assert_succeeded(answer)
    start = datetime.fromisoformat(answer["data_interval_start"])
    assert datetime.fromisoformat(answer["data_interval_end"]) == start + timedelta(days=1)
    assert datetime.fromisoformat(answer["logical_date"]) >= start + timedelta(days=1)
    assert cancelled_ids(emu) == ids[start.date().isoformat()]
    end = start + timedelta(days=1)
    assert (xcom["from_date"], xcom["to_date"]) == (ms(start), ms(end))
    query = with_async(
        [("label", LABEL), ("fromDate", str(ms(start))), ("toDate", str(ms(end))), ("count", str(BATCH))]
    )
    assert_bulk_action_run(emu, answer, xcom, query, 7)
