"""
A backfill of ``qstash_backfill_cleanup`` over three daily windows, created through the REST API (what
the UI's Backfill dialog sends): one run per day, each cancelling only the ``import-job`` messages
created inside its own data interval. The emulator plays today's hosted QStash: each run is one bulk
action over its day, followed to ``FINISHED``, then a confirming one that finds nothing.

The DAG has ``catchup=True`` from 2026-10-01, so unpausing it lets the scheduler create a run for every
day since then that has none. The test therefore backfills the last three complete days and unpauses
only once the DAG processor has moved the DAG's next run past them (it follows the newest backfill
run), so the scheduler adds no catch-up runs of its own.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.clock import clear_of_midnight

#: The longest this test runs once it has read "today" (its two waits, 90 s and 300 s, and some slack).
RUN_TIME = timedelta(seconds=420)

pytestmark = [pytest.mark.airflow_live, pytest.mark.timeout(int(2 * RUN_TIME.total_seconds()) + 5)]

DAG_ID = "qstash_backfill_cleanup"
TASK_ID = "cancel_window"
DAG_START = datetime(2026, 10, 1, tzinfo=timezone.utc)
LABEL = "import-job"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_backfill_three_days_each_run_cancels_its_own_day(airflow_api, emulator):
    # A UTC midnight inside the run would let the unpaused scheduler add a run for the day just ended.
    time.sleep(clear_of_midnight(datetime.now(timezone.utc), RUN_TIME).total_seconds())
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=n) for n in (3, 2, 1)]
    outside_day = today - timedelta(days=4)
    assert outside_day >= DAG_START, "the machine's clock is before the backfill DAG's start date + 4 days"

    per_day: dict[datetime, set[str]] = {}
    for day in days:
        per_day[day] = set(
            emulator.add_messages(
                [
                    {
                        "url": "https://example.com/import",
                        "labels": [LABEL],
                        "createdAt": _ms(day + timedelta(hours=6)),
                    },
                    {
                        "url": "https://example.com/import",
                        "labels": [LABEL],
                        "createdAt": _ms(day + timedelta(hours=18)),
                    },
                ]
            )
        )
    kept = set(
        emulator.add_messages(
            [
                # the day before the backfill: no run covers it
                {
                    "url": "https://example.com/import",
                    "labels": [LABEL],
                    "createdAt": _ms(outside_day + timedelta(hours=12)),
                },
                {
                    "url": "https://example.com/import",
                    "labels": [LABEL],
                    "createdAt": _ms(outside_day + timedelta(hours=23)),
                },
                # inside a backfilled day, but another label
                {
                    "url": "https://example.com/report",
                    "labels": ["daily-report"],
                    "createdAt": _ms(days[1] + timedelta(hours=12)),
                },
            ]
        )
    )

    assert airflow_api.dag(DAG_ID)["is_paused"] is True
    backfill = airflow_api.create_backfill(
        {
            "dag_id": DAG_ID,
            "from_date": _iso(days[0]),
            "to_date": _iso(days[-1]),
            "max_active_runs": 3,
            "reprocess_behavior": "none",
        }
    )
    assert backfill["dag_id"] == DAG_ID
    try:
        # Unpause only when the next scheduled run comes after the backfilled days (see the docstring).
        deadline = time.monotonic() + 90
        while True:
            next_logical = airflow_api.dag(DAG_ID).get("next_dagrun_logical_date")
            if next_logical and _parse(next_logical) >= today:
                break
            assert time.monotonic() < deadline, f"next run still {next_logical}; catch-up would interfere"
            time.sleep(1)
        airflow_api.set_paused(DAG_ID, False)

        deadline = time.monotonic() + 300
        while True:
            runs = airflow_api.runs(DAG_ID)
            backfill_runs = [run for run in runs if run["run_type"] == "backfill"]
            if len(backfill_runs) == 3 and all(run["state"] in ("success", "failed") for run in backfill_runs):
                break
            assert time.monotonic() < deadline, f"runs not finished: {[(r['dag_run_id'], r['state']) for r in runs]}"
            time.sleep(1)
    finally:
        airflow_api.set_paused(DAG_ID, True)

    assert runs == backfill_runs, f"the scheduler added runs: {[r['dag_run_id'] for r in runs]}"
    by_start = {_parse(run["data_interval_start"]): run for run in backfill_runs}
    assert sorted(by_start) == days
    actions = {action["actionId"]: action for action in emulator.wait_actions_idle(30)}
    followed: dict[str, datetime] = {}
    for day, run in by_start.items():
        assert run["state"] == "success", airflow_api.task_log(DAG_ID, run["dag_run_id"], TASK_ID)
        assert _parse(run["data_interval_end"]) == day + timedelta(days=1)
        summary = airflow_api.xcom(DAG_ID, run["dag_run_id"], TASK_ID)
        assert summary["cancelled"] == len(per_day[day]) == 2, (day, summary)
        assert (summary["from_date"], summary["to_date"]) == (_ms(day), _ms(day + timedelta(days=1)))
        # One bulk action over the day's 2 messages, then a confirming one over none.
        assert (summary["mode"], summary["batches"], len(summary["action_ids"])) == ("bulk_action", 2, 2), summary
        window = {"label": [LABEL], "fromDate": [str(_ms(day))], "toDate": [str(_ms(day + timedelta(days=1)))]}
        for action_id, total in zip(summary["action_ids"], (2, 0), strict=True):
            action = actions[action_id]
            assert (action["state"], action["total"], action["processed"]) == ("FINISHED", total, total), action
            assert action["filter"] == window, action
            followed[action_id] = day
    assert set(actions) == set(followed), "a bulk action no run reports"

    cancelled = {m["messageId"]: m for m in emulator.messages("cancelled")}
    assert set(cancelled) == set().union(*per_day.values())
    assert emulator.held_ids() == kept
    # Every cancel carried its run's window and the DAG's label (and asked for a bulk action); every poll
    # was for an action a run reports.
    log = emulator.request_log()
    windows = {tuple(sorted(e["query"])) for e in log if e["method"] == "DELETE" and e["path"] == "/v2/messages"}
    assert windows == {
        tuple(
            sorted(
                [
                    ("label", LABEL),
                    ("fromDate", str(_ms(day))),
                    ("toDate", str(_ms(day + timedelta(days=1)))),
                    ("count", "500"),
                    ("async", "true"),
                ]
            )
        )
        for day in days
    }
    polled = {
        e["path"].rsplit("/", 1)[1] for e in log if e["method"] == "GET" and e["path"].startswith("/v2/bulkActions/")
    }
    assert polled == set(followed)
    assert {(e["method"], e["path"]) for e in log} <= {("DELETE", "/v2/messages")} | {
        ("GET", f"/v2/bulkActions/{action_id}") for action_id in followed
    }
