"""
The clock-dependent logic, run at pinned edge instants (tests/support/clock.py EDGE_INSTANTS): year, month and day
ends, a day 1-9, the EU and US DST switches, a leap day. Nothing here reads the wall clock.

* the scheduled example DAGs' windows (daily cleanup, backfill, weekly DLQ cleanup) rendered from their
  timetables' data interval and planned with the edge as the task's start;
* the on-demand form's ``to_date`` pin to the task's start;
* the task start read from a ``ti.start_date`` in a DST zone (the same instant, in UTC ms);
* the helpers the suite's own clock pins use (``clear_of_midnight``, ``pin_wall_clock``).
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest

from airflow_qstash.operators._common import task_start_ms
from airflow_qstash.protocol.answers import rate_limit_wait
from tests.support.clock import EDGE_INSTANTS, PINNED_NOW, clear_of_midnight, pin_wall_clock

EDGES = [pytest.param(moment, id=moment.isoformat()) for moment in EDGE_INSTANTS]
SCHEDULED = {
    "qstash_scheduled_cleanup": timedelta(days=1),
    "qstash_backfill_cleanup": timedelta(days=1),
    "qstash_dlq_weekly_cleanup": timedelta(weeks=1),
}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.mark.parametrize("moment", EDGES)
@pytest.mark.parametrize("dag_id", sorted(SCHEDULED))
def test_scheduled_window_at_an_edge_is_the_whole_period_before_it(parsed: Any, dag_id: str, moment: datetime):
    dag = parsed.dagbag.dags[dag_id]
    start = pendulum.instance(moment)
    interval = dag.timetable.infer_manual_data_interval(run_after=start)
    task = copy.deepcopy(dag.tasks[0])
    task.render_template_fields({"data_interval_start": interval.start, "data_interval_end": interval.end})
    run = task.plan(now_ms=ms(moment))
    window = getattr(run, "bulk_filter", None) or run.dlq_filter
    # Exactly the interval, in ms; the interval is one whole period (UTC: no 23- or 25-hour day) ending at
    # or before the task's start and less than one period before it.
    assert (window.from_date, window.to_date) == (ms(interval.start), ms(interval.end))
    assert window.to_date - window.from_date == SCHEDULED[dag_id] // timedelta(milliseconds=1)
    assert ms(moment) - SCHEDULED[dag_id] // timedelta(milliseconds=1) < window.to_date <= ms(moment)


@pytest.mark.parametrize("moment", EDGES)
def test_on_demand_to_date_pins_to_the_task_start_at_an_edge(parsed: Any, moment: datetime):
    dag = parsed.dagbag.dags["qstash_on_demand_cancel"]
    task = copy.deepcopy(dag.tasks[0])
    task.render_template_fields({"params": {**dag.params.dump(), "labels": ["a"]}})
    run = task.plan(now_ms=ms(moment))
    assert (run.bulk_filter.from_date, run.bulk_filter.to_date) == (None, ms(moment))


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize("moment", EDGES)
def test_task_start_in_any_zone_is_the_same_utc_instant(moment: datetime, zone: str):
    local = pendulum.instance(moment).in_timezone(zone)
    assert task_start_ms({"ti": SimpleNamespace(start_date=local)}) == ms(moment)  # type: ignore[typeddict-item]


@pytest.mark.parametrize("moment", EDGES)
def test_a_rate_limit_reset_at_an_edge_waits_the_exact_difference(moment: datetime, monkeypatch: pytest.MonkeyPatch):
    now = pin_wall_clock(monkeypatch, moment.timestamp())
    reset = int(now) + 3
    assert rate_limit_wait({"Burst-RateLimit-Remaining": "0", "Burst-RateLimit-Reset": str(reset)}, now) == reset - now


@pytest.mark.parametrize(
    ("now", "wait"),
    [
        (datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc), timedelta(seconds=2)),
        (datetime(2026, 12, 31, 23, 53, 0, tzinfo=timezone.utc), timedelta(0)),  # exactly 420 s left
        (
            datetime(2026, 12, 31, 23, 53, 0, 1, tzinfo=timezone.utc),
            timedelta(minutes=7, seconds=1) - timedelta(microseconds=1),
        ),
        (datetime(2027, 1, 1, 0, 0, 0, tzinfo=timezone.utc), timedelta(0)),
        (datetime(2028, 2, 28, 23, 58, tzinfo=timezone.utc), timedelta(minutes=2, seconds=1)),
        # a local time in a DST zone is read as its UTC instant (01:59:30 CET, a minute before clocks go forward)
        (
            datetime(2026, 3, 29, 0, 59, 30, tzinfo=timezone.utc).astimezone(pendulum.timezone("Europe/Berlin")),
            timedelta(0),
        ),
        (
            datetime(2026, 3, 28, 23, 59, 30, tzinfo=timezone.utc).astimezone(pendulum.timezone("Europe/Berlin")),
            timedelta(seconds=31),
        ),
    ],
)
def test_clear_of_midnight_waits_past_a_utc_midnight_inside_the_run(now: datetime, wait: timedelta):
    needed = timedelta(seconds=420)
    assert clear_of_midnight(now, needed) == wait
    start = now + wait
    next_midnight = (start.astimezone(timezone.utc) + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    assert start + needed <= next_midnight


def test_pinned_now_is_half_a_second_before_a_year_ends():
    assert datetime.fromtimestamp(PINNED_NOW, timezone.utc) == datetime(
        2026, 12, 31, 23, 59, 59, 500000, tzinfo=timezone.utc
    )
