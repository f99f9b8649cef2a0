"""The two DLQ example DAGs end to end: ``dag.test()`` in an isolated Airflow against the emulator's DLQ.

The fixtures are the end-to-end suite's (``tests/integration/e2e/conftest.py``):
one ``dag.test()`` child process and one emulator for the session. The oracle reads the emulator's DLQ and
message store back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pendulum
import pytest

from qstash_emulator import QStashEmulator
from tests.conftest import TEST_TOKEN
from tests.integration.e2e.dag_runner import DagTestRunner
from tests.integration.e2e.e2e_lib import only_task

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MS = timedelta(milliseconds=1)
WEEK_END = pendulum.datetime(2026, 10, 26, 3, tz="UTC")  # a Monday 03:00: the run's logical date
WEEK_START = WEEK_END - timedelta(days=7)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def entry(dlq_id: str, created: datetime, labels: list[str] | None, status: int = 500) -> dict[str, Any]:
    value: dict[str, Any] = {
        "dlqId": dlq_id,
        "url": f"https://dest.example/{dlq_id}",
        "createdAt": ms(created),
        "responseStatus": status,
    }
    if labels:
        value["labels"] = labels
    return value


def task_of(answer: dict[str, Any], state: str) -> dict[str, Any]:
    task = only_task(answer)
    assert (answer["state"], task["state"]) == (state, state), answer["log"][-4000:]
    assert TEST_TOKEN not in answer["log"]
    return task


def test_weekly_cleanup_deletes_exactly_its_week_of_its_labels(dag_runner: DagTestRunner, e2e_emu: QStashEmulator):
    inside = [
        entry(
            f"in-{i}", WEEK_START + i * timedelta(minutes=41), ["import-job" if i % 2 else "daily-report"], 500 + i % 4
        )
        for i in range(245)
    ]
    inside += [entry("in-start", WEEK_START, ["import-job"]), entry("in-end", WEEK_END, ["daily-report"])]
    others = [
        entry("before", WEEK_START - MS, ["import-job"]),
        entry("after", WEEK_END + MS, ["daily-report"]),
        *[entry(f"other-label-{i}", WEEK_START + timedelta(hours=i), ["weekly-report"]) for i in range(30)],
        *[entry(f"no-label-{i}", WEEK_START + timedelta(hours=i), None) for i in range(10)],
    ]
    e2e_emu.add_dlq(inside + others)

    answer = dag_runner.run("qstash_dlq_weekly_cleanup", logical_date=WEEK_END)

    xcom = task_of(answer, "success")["xcom"]
    assert (answer["data_interval_start"], answer["data_interval_end"]) == (
        WEEK_START.isoformat(),
        WEEK_END.isoformat(),
    )
    assert e2e_emu.dlq_ids() == {e["dlqId"] for e in others}
    assert xcom["deleted"] == len(inside) == 247
    # today's API: one bulk action over the week's entries, then the confirming round that selects 0
    assert (xcom["mode"], xcom["requests"], xcom["list_requests"], xcom["selected"]) == ("bulk_action", 2, 0, 247)
    assert len(xcom["action_ids"]) == 2
    starts = [e for e in e2e_emu.request_log() if e["path"] == "/v2/dlq/bulk"]
    assert [(e["method"], e["status"]) for e in starts] == [("DELETE", 202)] * 2
    assert (xcom["from_date"], xcom["to_date"]) == (ms(WEEK_START), ms(WEEK_END))


def test_replay_form_retries_exactly_what_it_selects(dag_runner: DagTestRunner, e2e_emu: QStashEmulator):
    now = pendulum.now("UTC")
    selected = [
        entry(f"sel-{i}", now - timedelta(hours=1, minutes=i), ["report"], (500, 503)[i % 2]) for i in range(130)
    ]
    others = [
        *[entry(f"not-found-{i}", now - timedelta(hours=2), ["report"], 404) for i in range(15)],
        *[entry(f"other-{i}", now - timedelta(hours=2), ["billing"], 500) for i in range(15)],
    ]
    e2e_emu.add_dlq(selected + others)
    form = {"labels": ["report"], "response_statuses": [500, 503], "retries": 0, "preview_only": False}

    answer = dag_runner.run("qstash_dlq_replay", run_conf=form)

    xcom = task_of(answer, "success")["xcom"]
    assert e2e_emu.dlq_ids() == {e["dlqId"] for e in others}
    new = e2e_emu.messages("held")
    assert {m["url"] for m in new} == {e["url"] for e in selected}
    assert len(new) == 130
    assert {m["maxRetries"] for m in new} == {0}
    assert xcom["retried"] == 130
    assert (xcom["mode"], xcom["message_ids"]) == ("bulk_action", None)  # a bulk action reports no ids
    assert xcom["overrides"] == {"Upstash-Retries": "0"}


def test_replay_form_previews_by_default_and_touches_nothing(dag_runner: DagTestRunner, e2e_emu: QStashEmulator):
    now = pendulum.now("UTC")
    selected = [
        entry(f"sel-{i}", now - timedelta(hours=1, minutes=i), ["report"], (500, 503)[i % 3 == 0]) for i in range(30)
    ]
    e2e_emu.add_dlq([*selected, entry("other", now - timedelta(hours=1), ["billing"], 500)])
    before = e2e_emu.dlq_ids()

    answer = dag_runner.run("qstash_dlq_replay", run_conf={"labels": ["report"]})

    xcom = task_of(answer, "success")["xcom"]
    assert xcom["dry_run"] is True and xcom["retried"] == 0
    assert xcom["selected"] == 30
    assert xcom["by_response_status"] == {"500": 20, "503": 10}
    assert {item["dlq_id"] for item in xcom["sample"]} <= {e["dlqId"] for e in selected}
    assert len(xcom["sample"]) == 20
    assert e2e_emu.dlq_ids() == before
    assert e2e_emu.messages("all") == []
    assert {e["method"] for e in e2e_emu.request_log()} == {"GET"}
    assert "DRY RUN: 30 entries selected" in answer["log"]


def test_replay_refuses_an_empty_form_before_any_request(dag_runner: DagTestRunner, e2e_emu: QStashEmulator):
    e2e_emu.add_dlq([entry("kept", pendulum.now("UTC") - timedelta(hours=1), ["report"])])

    answer = dag_runner.run("qstash_dlq_replay", run_conf={})

    task = task_of(answer, "failed")
    assert task["try_number"] == 1
    assert "No filter given" in answer["log"]
    assert e2e_emu.request_log() == []
    assert e2e_emu.dlq_ids() == {"kept"}
