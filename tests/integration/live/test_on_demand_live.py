"""
The on-demand DAGs in a real Airflow, triggered through the public REST API with a JWT as the UI does.

The emulator plays today's hosted QStash (its default ``actions`` mode): a filter cancel starts a
background bulk action, which the task follows to ``FINISHED`` with polls, then cancels once more to
confirm that nothing is left. The classic DAG does that in a LocalExecutor worker; the deferrable one
defers at once and the triggerer does the polling. Either way the emulator must end with exactly the
selected messages cancelled, and the task's ``return_value`` XCom must count them and name the actions.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.e2e.e2e_lib import assert_bulk_action_run, poll_lines, with_async

pytestmark = [pytest.mark.airflow_live, pytest.mark.timeout(300)]

TASK_ID = "cancel_selected_messages"
#: How long the deferrable test's bulk action should run in the emulator, so the trigger polls it a few times.
ACTION_SECONDS = 3.0


def _query(scenario: Any, count: int) -> list[tuple[str, str]]:
    return with_async(
        [
            ("label", scenario.label),
            ("fromDate", str(scenario.from_ms)),
            ("toDate", str(scenario.to_ms)),
            ("count", str(count)),
        ]
    )


def _trigger_log_events(live_airflow: Any, run_id: str) -> tuple[list[str], list[str]]:
    """The ``event`` lines of this run's task log files: (written by the worker, written by the triggerer)."""
    worker: list[str] = []
    triggerer: list[str] = []
    for path in live_airflow.task_log_files():
        if f"run_id={run_id}" not in path.parts or path.parent.name != f"task_id={TASK_ID}":
            continue
        events = [_event(line) for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
        (triggerer if ".trigger." in path.name else worker).extend(events)
    return worker, triggerer


def _event(line: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    return str(entry.get("event", "")) if isinstance(entry, dict) else line


def test_on_demand_run_via_rest_api_cancels_only_the_window(airflow_api, emulator, seed_window):
    dag_id = "qstash_on_demand_cancel"
    scenario = seed_window("cleanup-me")
    airflow_api.set_paused(dag_id, False)

    run_id = airflow_api.trigger(dag_id, scenario.conf(batch_size=2))
    run = airflow_api.wait_run(dag_id, run_id)

    log = airflow_api.task_log(dag_id, run_id, TASK_ID)
    assert run["state"] == "success", log
    assert run["conf"]["labels"] == ["cleanup-me"]
    scenario.assert_only_targets_cancelled(emulator)

    summary = airflow_api.xcom(dag_id, run_id, TASK_ID)
    assert summary["cancelled"] == len(scenario.targets) == emulator.counts()["cancelled"]
    assert (summary["from_date"], summary["to_date"]) == (scenario.from_ms, scenario.to_ms)
    # One bulk action over the 5 messages (the form's batch_size of 2 does not split it), followed to
    # FINISHED, then the confirming one: the XCom, the wire, the emulator's actions and the log agree.
    assert_bulk_action_run(emulator, {"log": log}, summary, _query(scenario, 2), len(scenario.targets))
    assert "batch_size=2 is ignored" in log, log
    assert all(entry["status"] in (200, 202) for entry in emulator.request_log())


def test_deferrable_run_is_followed_by_the_triggerer(airflow_api, emulator, seed_window, live_airflow):
    dag_id = "qstash_on_demand_cancel_deferrable"
    scenario = seed_window("cleanup-deferred")
    # Enough more targets that the bulk action runs for about ACTION_SECONDS at the emulator's rate: the
    # trigger sees it IN_PROGRESS and polls again, and the task stays deferred meanwhile.
    n_more = math.ceil(emulator.action_rate * ACTION_SECONDS)
    inside = scenario.from_ms + 60_000
    more = set(
        emulator.add_messages(
            [{"url": "https://example.com/hooks/bulk", "labels": [scenario.label], "createdAt": inside}] * n_more
        )
    )
    targets = set(scenario.targets) | more
    airflow_api.set_paused(dag_id, False)

    run_id = airflow_api.trigger(dag_id, scenario.conf())
    states: list[str | None] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state = airflow_api.task_instance(dag_id, run_id, TASK_ID)["state"]
        if not states or states[-1] != state:
            states.append(state)
        if state in ("success", "failed", "upstream_failed"):
            break
        time.sleep(0.25)

    log = airflow_api.task_log(dag_id, run_id, TASK_ID)
    assert "deferred" in states, f"task states seen: {states}"
    assert states[-1] == "success", f"task states seen: {states}\n{log}"
    assert states.index("deferred") < states.index("success")
    assert airflow_api.wait_run(dag_id, run_id, timeout=60)["state"] == "success"
    assert {m["messageId"] for m in emulator.messages("cancelled")} == targets
    assert emulator.held_ids() == scenario.others

    summary = airflow_api.xcom(dag_id, run_id, TASK_ID)
    assert summary["cancelled"] == len(targets) == emulator.counts()["cancelled"]
    assert_bulk_action_run(emulator, {"log": log}, summary, _query(scenario, 500), len(targets))

    # The polling happened in the triggerer: its log file for this task has every progress line, the
    # first action seen part-way before FINISHED; the worker's own log has none (it deferred first).
    worker, triggerer = _trigger_log_events(live_airflow, run_id)
    assert worker and triggerer, (worker, triggerer)
    assert poll_lines("\n".join(worker)) == []
    polls = poll_lines("\n".join(triggerer))
    first = [line for line in polls if line.action_id == summary["action_ids"][0]]
    assert len(first) >= 2 and first[0].state == "IN_PROGRESS" and first[0].processed < len(targets), first
    assert (first[-1].state, first[-1].processed, first[-1].total) == ("FINISHED", len(targets), len(targets))
    assert [line.action_id for line in polls if line.state == "FINISHED"] == summary["action_ids"]
