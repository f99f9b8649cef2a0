"""
The on-demand DAGs in a real Airflow, triggered through the public REST API with a JWT as the UI does.

The classic DAG runs the batch loop in a LocalExecutor worker; the deferrable one defers at once and
the triggerer runs the loop. Either way the emulator must end with exactly the selected messages
cancelled, and the task's ``return_value`` XCom must count them.
"""

from __future__ import annotations

import time

import pytest

from airflow_qstash.emulator import FaultConfig

pytestmark = [pytest.mark.airflow_live, pytest.mark.timeout(300)]

TASK_ID = "cancel_selected_messages"


def _bulk_cancels(emulator) -> list[dict]:
    return [e for e in emulator.request_log() if e["method"] == "DELETE" and e["path"] == "/v2/messages"]


def test_on_demand_run_via_rest_api_cancels_only_the_window(airflow_api, emulator, seed_window):
    dag_id = "qstash_on_demand_cancel"
    scenario = seed_window("cleanup-me")
    airflow_api.set_paused(dag_id, False)

    run_id = airflow_api.trigger(dag_id, scenario.conf(batch_size=2))
    run = airflow_api.wait_run(dag_id, run_id)

    assert run["state"] == "success", airflow_api.task_log(dag_id, run_id, TASK_ID)
    assert run["conf"]["labels"] == ["cleanup-me"]
    scenario.assert_only_targets_cancelled(emulator)

    summary = airflow_api.xcom(dag_id, run_id, TASK_ID)
    assert summary["cancelled"] == len(scenario.targets) == emulator.counts()["cancelled"]
    assert summary["batches"] == 4  # 2 + 2 + 1, then one that cancels nothing
    assert (summary["from_date"], summary["to_date"]) == (scenario.from_ms, scenario.to_ms)

    # What went over the wire: the form's filters, as QStash query parameters, in every batch.
    requests = _bulk_cancels(emulator)
    assert len(requests) == 4
    for entry in requests:
        assert sorted(entry["query"]) == sorted(
            [
                ("label", "cleanup-me"),
                ("fromDate", str(scenario.from_ms)),
                ("toDate", str(scenario.to_ms)),
                ("count", "2"),
            ]
        )
        assert entry["status"] == 200


def test_deferrable_run_is_finished_by_the_triggerer(airflow_api, emulator, seed_window):
    dag_id = "qstash_on_demand_cancel_deferrable"
    scenario = seed_window("cleanup-deferred")
    # Each QStash answer takes 1.5 s, so the loop (4 requests) keeps the task deferred for ~6 s.
    emulator.set_faults(FaultConfig(latency_ms=1500))
    airflow_api.set_paused(dag_id, False)

    run_id = airflow_api.trigger(dag_id, scenario.conf(batch_size=2))
    states: list[str | None] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state = airflow_api.task_instance(dag_id, run_id, TASK_ID)["state"]
        if not states or states[-1] != state:
            states.append(state)
        if state in ("success", "failed", "upstream_failed"):
            break
        time.sleep(0.25)

    assert "deferred" in states, f"task states seen: {states}"
    assert states[-1] == "success", f"task states seen: {states}\n{airflow_api.task_log(dag_id, run_id, TASK_ID)}"
    assert states.index("deferred") < states.index("success")
    assert airflow_api.wait_run(dag_id, run_id, timeout=60)["state"] == "success"
    scenario.assert_only_targets_cancelled(emulator)

    summary = airflow_api.xcom(dag_id, run_id, TASK_ID)
    assert summary["cancelled"] == len(scenario.targets) == emulator.counts()["cancelled"]
    assert summary["batches"] == len(_bulk_cancels(emulator)) == 4

    # The trigger's progress lines are in the task's log (the triggerer writes them there).
    log = airflow_api.task_log(dag_id, run_id, TASK_ID)
    assert "Batch 4: cancelled 0 (total 5" in log, log
