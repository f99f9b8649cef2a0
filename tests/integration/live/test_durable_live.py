"""
Durable runs on a real Airflow 3.3 (API server, scheduler with the LocalExecutor, DAG processor,
triggerer) against the emulator in today's bulk-action generation with a slow ``--action-rate``.

A one-task DAG cancels the messages labelled ``durable`` with ``retries=1``. While the task follows its
bulk action (after its second poll), the task's own process (the one holding a connection to the
emulator) is killed with SIGKILL: no handler, no ``on_kill``, nothing written on the way out. Airflow
retries the task; the retry reads the task state store, re-attaches to the running action by its id
(its log says so), keeps the first try's window and starts no second action: the emulator's request log
holds exactly one start that selected messages (the first try's) and one confirming start (the retry's,
which found none), both with the first try's ``toDate``, and the XCom counts exactly the seeded messages.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from tests.conftest import TEST_TOKEN, connection_json
from tests.integration.live.airflow_runtime import LiveAirflow

pytestmark = [pytest.mark.airflow_live, pytest.mark.timeout(600)]

DAG_ID = "qstash_durable_probe"
TASK_ID = "cancel"
LABEL = "durable"
N = 600
#: Messages a bulk action cancels per second: 600 take 30 s, so the kill and the retry land mid-action.
ACTION_RATE = 20.0

DAG_FILE = textwrap.dedent(
    f"""
    from datetime import timedelta

    import pendulum
    from airflow.providers.common.compat.sdk import DAG

    from airflow_qstash.operators.qstash import QStashBulkCancelOperator

    with DAG(
        dag_id={DAG_ID!r},
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        default_args={{"retries": 1, "retry_delay": timedelta(seconds=1)}},
    ):
        QStashBulkCancelOperator(task_id={TASK_ID!r}, labels=[{LABEL!r}])
    """
)


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[Any]:
    from qstash_emulator import QStashEmulator

    with QStashEmulator(token=TEST_TOKEN, bulk_cancel="actions", action_rate=ACTION_RATE) as emu:
        yield emu


@pytest.fixture(scope="module")
def durable_airflow(slow_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAirflow]:
    home = tmp_path_factory.mktemp("airflow_home_durable")
    dags = tmp_path_factory.mktemp("durable_dags")
    (dags / "durable_probe.py").write_text(DAG_FILE)
    airflow = LiveAirflow(
        home,
        connections={
            "qstash_default": connection_json(
                slow_emulator.base_url, slow_emulator.token, timeout=30, poll_interval_max=0.5
            )
        },
        extra_env={"AIRFLOW__CORE__DAGS_FOLDER": str(dags)},
        dag_ids=[DAG_ID],
    )
    try:
        airflow.start(timeout=300)
        yield airflow
    finally:
        airflow.stop()


def task_processes(port: int) -> list[psutil.Process]:
    """Processes other than this one with a TCP connection to the emulator: the running task's."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            connections = process.net_connections(kind="tcp")
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if any(conn.raddr and conn.raddr.port == port for conn in connections):
            found.append(process)
    return found


def starts(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in log if (e["method"], e["path"]) == ("DELETE", "/v2/messages")]


def test_a_sigkilled_task_is_retried_and_reattaches_to_its_running_action_by_id(
    durable_airflow: LiveAirflow, slow_emulator: Any
) -> None:
    emu = slow_emulator
    emu.reset()
    now = int(time.time() * 1000)
    emu.add_messages([{"url": "https://a.example/h", "labels": [LABEL], "createdAt": now - 60_000} for _ in range(N)])
    bystanders = emu.add_messages([{"url": "https://a.example/h", "labels": ["other"]} for _ in range(50)])
    api = durable_airflow.api
    api.set_paused(DAG_ID, False)
    run_id = api.trigger(DAG_ID, {})

    # wait until the first try is mid-poll: its start answered and two polls of the action seen
    deadline = time.monotonic() + 180
    while True:
        log = emu.request_log()
        polls = [e for e in log if e["method"] == "GET" and e["path"].startswith("/v2/bulkActions/")]
        if starts(log) and len(polls) >= 2:
            break
        assert time.monotonic() < deadline, f"the task did not start polling within 180 s: {log}"
        time.sleep(0.2)
    action_id = polls[0]["path"].rsplit("/", 1)[1]
    victims = task_processes(emu.port)
    assert len(victims) == 1, victims
    victims[0].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    in_progress = next(a for a in emu.bulk_actions() if a["actionId"] == action_id)
    assert in_progress["state"] == "IN_PROGRESS"

    run = api.wait_run(DAG_ID, run_id, timeout=300)
    retry_log = api.task_log(DAG_ID, run_id, TASK_ID, try_number=2)
    assert run["state"] == "success", retry_log
    task = api.task_instance(DAG_ID, run_id, TASK_ID)
    assert task["try_number"] == 2, task

    log = emu.request_log()
    sent = starts(log)
    # exactly one start that selected messages (the first try's); the retry sent only the confirming one
    actions = [a for a in emu.bulk_actions() if a.get("total", 0) > 0]
    assert [a["actionId"] for a in actions] == [action_id], emu.bulk_actions()
    assert len(sent) == 2, sent
    first_to = {v for k, v in sent[0]["query"] if k == "toDate"}
    assert {v for e in sent for k, v in e["query"] if k == "toDate"} == first_to, "the retry re-pinned to_date"
    # the retry's first request is the read of the stored action by id, before any start
    retry_first = [e for e in log[log.index(sent[0]) + 1 :] if e["path"] != f"/v2/bulkActions/{action_id}"]
    assert retry_first[0] == sent[1]
    assert f"bulk action {action_id} re-attached by its id" in retry_log
    assert "keeping the first try's window" in retry_log

    summary = api.xcom(DAG_ID, run_id, TASK_ID)
    assert summary["cancelled"] == N, summary
    assert summary["action_ids"][0] == action_id
    assert {m["messageId"] for m in emu.messages("held")} == set(bystanders)
    print(f"killed the task process; the retry finished {time.monotonic() - killed_at:.1f} s later")
    assert TEST_TOKEN not in retry_log
