"""
``scripts/demo.py``'s judgement of a run, without Airflow: what a task's log and XCom must show for the
demo to call the run ``ok``. (The runs themselves are the example DAGs, covered by the other e2e tests;
``make demo`` exits non-zero when any of these checks finds a problem.)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "demo.py"
FIRST = "act_" + "1" * 32
CONFIRM = "act_" + "2" * 32


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("qstash_demo_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


demo = load_demo()


def poll(action_id: str, state: str, processed: int, total: int) -> str:
    """A progress line as the operator logs it (``BulkCancelRun.poll_line``), with Airflow's decorations."""
    percent = 100.0 * processed / total if total else 100.0
    return (
        f"2026-11-30T15:54:22.147033Z [info     ] Bulk action {action_id} {state}: {processed} of {total} processed "
        f"({percent:.1f}%), 800 messages/s, about 0 s left. [airflow.task.operators] loc=batching.py:229\n"
    )


GOOD_LOG = (
    poll(FIRST, "IN_PROGRESS", 0, 640)
    + poll(FIRST, "IN_PROGRESS", 247, 640)
    + "Batch 1: cancelled 640\n"
    + poll(FIRST, "FINISHED", 640, 640)
    + poll(CONFIRM, "FINISHED", 0, 0)
)


def stored(*action_ids: str, state: str = "FINISHED") -> dict[str, dict[str, Any]]:
    return {action_id: {"actionId": action_id, "state": state} for action_id in action_ids}


def result(log: str, xcom: dict[str, Any]) -> Any:
    run = demo.DemoRun("qstash_backfill_cleanup", "import-job", {}, lambda message: True)
    return demo.RunResult(run, "success", xcom, 640, 6, 1.0, demo.followed_actions(log), log)


def xcom(mode: str = "bulk_action", action_ids: list[str] | None = None) -> dict[str, Any]:
    return {"cancelled": 640, "mode": mode, "action_ids": [FIRST, CONFIRM] if action_ids is None else action_ids}


def test_followed_actions_reads_every_poll_of_every_action_in_order():
    actions = demo.followed_actions(GOOD_LOG)

    assert [(a.action_id, a.states, a.processed, a.total) for a in actions] == [
        (FIRST, ["IN_PROGRESS", "IN_PROGRESS", "FINISHED"], [0, 247, 640], 640),
        (CONFIRM, ["FINISHED"], [0], 0),
    ]
    assert actions[0].progress() == "0 -> 247 -> 640 of 640"


def test_progress_of_a_long_action_elides_the_middle_polls_and_names_an_unfinished_state():
    log = "".join(poll(FIRST, "IN_PROGRESS", n, 1000) for n in range(0, 1000, 50))

    (action,) = demo.followed_actions(log)

    assert action.progress() == "0 -> 50 -> 100 -> 150 -> ... -> 800 -> 850 -> 900 -> 950 of 1000 (IN_PROGRESS)"


def test_a_run_that_followed_each_action_to_finished_and_confirmed_has_no_problem():
    assert demo.server_problems(result(GOOD_LOG, xcom()), "actions", stored(FIRST, CONFIRM)) == []


@pytest.mark.parametrize(
    ("log", "summary", "actions", "problem"),
    [
        pytest.param(GOOD_LOG, xcom(mode="batched"), stored(FIRST, CONFIRM), "mode 'batched'", id="wrong-mode"),
        pytest.param(
            GOOD_LOG.replace(poll(FIRST, "FINISHED", 640, 640), ""),
            xcom(),
            stored(FIRST, CONFIRM),
            f"bulk action {FIRST} not followed to FINISHED",
            id="stopped-polling-early",
        ),
        pytest.param(
            GOOD_LOG,
            xcom(),
            {**stored(FIRST), **stored(CONFIRM, state="IN_PROGRESS")},
            f"bulk action {CONFIRM} not followed to FINISHED",
            id="emulator-still-running",
        ),
        pytest.param(
            GOOD_LOG.replace(poll(CONFIRM, "FINISHED", 0, 0), ""),
            xcom(action_ids=[FIRST]),
            stored(FIRST),
            "no confirming round",
            id="no-confirming-round",
        ),
        pytest.param(
            GOOD_LOG,
            xcom(action_ids=[FIRST]),
            stored(FIRST, CONFIRM),
            "action_ids",
            id="xcom-misses-an-action",
        ),
        pytest.param(
            GOOD_LOG.replace(poll(FIRST, "FINISHED", 640, 640), poll(FIRST, "FINISHED", 600, 640)),
            xcom(),
            stored(FIRST, CONFIRM),
            "processed 600 of 640",
            id="finished-part-processed",
        ),
    ],
)
def test_a_run_that_did_otherwise_is_a_problem(log: str, summary: dict[str, Any], actions: Any, problem: str):
    problems = demo.server_problems(result(log, summary), "actions", actions)

    assert any(problem in text for text in problems), problems


def test_on_a_legacy_server_a_batched_run_passes_and_a_bulk_action_is_a_problem():
    batched = {"cancelled": 640, "mode": "batched", "action_ids": []}

    assert demo.server_problems(result("Batch 1: cancelled 500\n", batched), "legacy", {}) == []
    problems = demo.server_problems(result(GOOD_LOG, xcom()), "legacy", stored(FIRST, CONFIRM))
    assert any("mode 'bulk_action'" in text for text in problems), problems
    assert any("bulk actions on a batched server" in text for text in problems), problems
