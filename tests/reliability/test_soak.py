"""
Fault soak: seeded scenarios against the in-process emulator with faults on, for the sync operator and
the deferrable path, each checked message by message against an independent oracle.

Plus: producers publishing matching messages while the task runs (it still ends, and leaves what was
created after its pinned ``to_date``), and a task killed between batches (``on_kill`` from another
thread, SIGTERM to a worker subprocess, a cancelled trigger) then run again to an exact final state.

Figures go to ``test-artifacts/soak-figures.json``; ``python bench/soak_report.py`` prints them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

from airflow_qstash.emulator import FaultConfig, QStashEmulator
from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from tests.conftest import TEST_TOKEN, connection_json
from tests.reliability import soak_lib
from tests.reliability.soak_lib import (
    SOAK_RETRIES,
    TASK_START_MS,
    Figures,
    check_exact,
    first_event,
    make_scenario,
    oracle,
    run_deferrable,
    run_sync,
)

pytestmark = pytest.mark.soak

SCENARIO_SEEDS = range(64)
#: Scenarios run again with one retry per request (``max_retries=1``), where task re-runs are expected.
SCARCE_SEEDS = range(1000, 1008)
FIGURES = Figures()


@pytest.fixture(scope="module")
def emu() -> Iterator[QStashEmulator]:
    """One emulator for the module, ``qstash_default`` pointing at it with the soak's retry settings."""
    with QStashEmulator(token=TEST_TOKEN) as emulator, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_QSTASH_DEFAULT", connection_json(emulator.base_url, **SOAK_RETRIES))
        yield emulator
    if FIGURES.scenarios or FIGURES.scarce_scenarios:
        soak_lib.ARTIFACTS.mkdir(exist_ok=True)
        soak_lib.SOAK_FIGURES.write_text(json.dumps(FIGURES.to_dict(), indent=2) + "\n")


@pytest.fixture
def fresh(emu: QStashEmulator) -> Iterator[QStashEmulator]:
    emu.reset()
    yield emu
    emu.set_faults(None)


# --------------------------------------------------------------------------- seeded scenarios


def test_scenarios_are_reproducible_and_varied():
    assert oracle(make_scenario(7)) == oracle(make_scenario(7))
    assert make_scenario(7).op_kwargs == make_scenario(7).op_kwargs
    scenarios = [make_scenario(seed) for seed in SCENARIO_SEEDS]
    assert {s.profile for s in scenarios} == set(soak_lib.FAULT_PROFILES)
    assert all(s.wanted or s.window != (None, None) or s.message_ids for s in scenarios), "an empty filter set"
    assert sum(1 for s in scenarios if s.message_ids) >= 3
    assert sum(1 for s in scenarios if s.window != (None, None)) >= 10
    assert sum(1 for s in scenarios if len(s.wanted) >= 2) >= 10
    # each scenario both cancels something and leaves something
    selected = [len(oracle(s)) for s in scenarios]
    assert sum(1 for n in selected if n > 0) >= 0.8 * len(scenarios)
    assert all(n < len(s.messages) for n, s in zip(selected, scenarios, strict=True))


def _soak(emu: QStashEmulator, seed: int, *, max_runs: int) -> list[int]:
    """Run one scenario on both paths and check it message by message; returns the re-runs per path."""
    scenario = make_scenario(seed)
    expected = oracle(scenario)
    all_ids = {r["id"] for r in scenario.records}
    FIGURES.profiles[scenario.profile] += 1
    reruns_per_path = []
    for path, run in (("sync", run_sync), ("deferrable", run_deferrable)):
        emu.reset()
        emu.add_messages(scenario.messages)
        emu.set_faults(scenario.faults)
        summary, reruns = run(scenario.op_kwargs, max_runs=max_runs)
        emu.set_faults(None)
        log = emu.request_log()
        collateral, left = check_exact(emu, all_ids, expected)

        reruns_per_path.append(reruns)
        FIGURES.count_requests(log)
        FIGURES.messages_checked += len(all_ids)
        FIGURES.messages_expected_cancelled += len(expected)
        FIGURES.collateral_cancels += len(collateral)
        FIGURES.left_behind += len(left)

        context = f"{path}: {scenario.describe()}"
        assert not collateral, f"{context}: cancelled {len(collateral)} unselected, e.g. {sorted(collateral)[:3]}"
        assert not left, f"{context}: left {len(left)} selected messages held, e.g. {sorted(left)[:3]}"
        # Only bulk cancels were sent, and QStash was never asked for everything.
        assert {(e["method"], e["path"]) for e in log} == {("DELETE", "/v2/messages")}, context
        assert all(any(k != "count" for k, _ in e["query"]) for e in log), context
        # The XCom value: a partial failure's cancels (answered 500) and earlier runs' are not counted.
        assert summary["cancelled"] <= len(expected), context
        if reruns == 0 and not scenario.faults.rate_partial:
            assert summary["cancelled"] == len(expected), context
        if scenario.message_ids is None:
            assert summary["to_date"] == (scenario.window[1] or TASK_START_MS), context
    return reruns_per_path


@pytest.mark.parametrize("seed", SCENARIO_SEEDS)
def test_soak_scenario_cancels_exactly_the_oracle_on_both_paths(fresh: QStashEmulator, seed: int):
    FIGURES.scenarios += 1
    reruns = _soak(fresh, seed, max_runs=soak_lib.MAX_TASK_RUNS)
    FIGURES.task_runs += len(reruns) + sum(reruns)
    FIGURES.task_reruns += sum(reruns)


@pytest.mark.parametrize("seed", SCARCE_SEEDS)
def test_soak_with_scarce_retries_reruns_the_task_to_an_exact_state(
    fresh: QStashEmulator, monkeypatch: pytest.MonkeyPatch, seed: int
):
    """One retry per request: faults exhaust it, the task fails, Airflow runs it again; still exact."""
    monkeypatch.setenv("AIRFLOW_CONN_QSTASH_DEFAULT", connection_json(fresh.base_url, **soak_lib.SCARCE_RETRIES))
    FIGURES.scarce_scenarios += 1
    reruns = _soak(fresh, seed, max_runs=soak_lib.SCARCE_MAX_TASK_RUNS)
    FIGURES.scarce_task_runs += len(reruns) + sum(reruns)
    FIGURES.scarce_task_reruns += sum(reruns)


def test_scarce_retries_did_force_reruns():
    """Not vacuous: with one retry per request some scenario did need a task re-run (runs after the soak)."""
    if FIGURES.scarce_scenarios < len(SCARCE_SEEDS):
        pytest.skip("the scarce-retry scenarios did not all run in this session")
    assert FIGURES.scarce_task_reruns > 0


# --------------------------------------------------------------------------- concurrent producers


def _producer(base_url: str, stop: threading.Event, published: list[str], deadline: float) -> None:
    """Publish matching messages (label ``live``) until told to stop; bounded in count and time."""
    with requests.Session() as session:
        session.headers.update({"Authorization": f"Bearer {TEST_TOKEN}", "Upstash-Label": "live"})
        for _ in range(2000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            answer = session.post(f"{base_url}/v2/publish/https://consumer.example/live", data="x", timeout=5)
            if answer.status_code == 200:
                published.append(answer.json()["messageId"])


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_producers_publishing_during_the_run_do_not_keep_it_alive(fresh: QStashEmulator, deferrable: bool):
    now = pendulum.now("UTC")
    now_ms = int(now.timestamp() * 1000)
    before = fresh.add_messages(
        [{"url": "https://consumer.example/live", "label": "live", "createdAt": now_ms - 1000 - i} for i in range(1500)]
    )
    fresh.set_faults(FaultConfig(latency_ms=8, rate_5xx=0.05, seed=3))
    # The task starts a little later than the pre-existing messages, as a real one would.
    start = pendulum.now("UTC")
    start_ms = int(start.timestamp() * 1000)
    stop, published = threading.Event(), list[str]()
    producer = threading.Thread(
        target=_producer, args=(fresh.base_url, stop, published, time.monotonic() + 60), daemon=True
    )
    outcome: dict[str, Any] = {}

    def task() -> None:
        op = QStashBulkCancelOperator(task_id="live", labels="live", batch_size=25, deferrable=deferrable)
        context: Any = {"ti": SimpleNamespace(start_date=start)}
        try:
            try:
                outcome["result"] = op.execute(context)
            except TaskDeferred as deferred:
                event = asyncio.run(first_event(deferred.trigger))
                outcome["result"] = op.execute_complete(context, event)
        except BaseException as err:  # reported below
            outcome["error"] = err

    runner = threading.Thread(target=task, daemon=True)
    started = time.monotonic()
    producer.start()
    runner.start()
    runner.join(timeout=45)
    elapsed = time.monotonic() - started
    stop.set()
    producer.join(timeout=10)
    fresh.set_faults(None)
    assert not runner.is_alive(), "the task did not end while producers kept publishing"
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"]["to_date"] == start_ms
    assert len(published) >= 10, "the producer barely published: the test would prove nothing"

    by_id = {m["messageId"]: m for m in fresh.messages("all")}
    held = fresh.held_ids()
    assert not set(before) & held, "a message created before the task started is still held"
    late = {mid for mid in published if by_id[mid]["createdAt"] > start_ms}
    early = set(published) - late
    assert late, "no message was published after the task's start"
    assert late <= held, "a message created after the pinned to_date was cancelled"
    assert not early & held, "a message created before the pinned to_date is still held"
    FIGURES.extra.setdefault("producer_runs", []).append(
        {
            "path": "deferrable" if deferrable else "sync",
            "seconds": round(elapsed, 2),
            "published_during_run": len(published),
            "left_for_next_run": len(late),
            "batches": outcome["result"]["batches"],
        }
    )


# --------------------------------------------------------------------------- kill and retry

KILL_MESSAGES = 2000
KILL_AFTER_BATCHES = 4


def _seed_for_kill(emu: QStashEmulator) -> tuple[set[str], set[str]]:
    """Matching (label ``doomed``) and non-matching messages, all created before the task's start."""
    doomed = emu.add_messages(
        [{"url": "https://k.example/a", "label": "doomed", "createdAt": TASK_START_MS - 1 - i} for i in range(2000)]
    )
    kept = emu.add_messages(
        [{"url": "https://k.example/a", "label": "kept", "createdAt": TASK_START_MS - 1 - i} for i in range(500)]
        + [
            {"url": "https://k.example/a", "label": "doomed", "createdAt": TASK_START_MS + 1 + i}  # after the start
            for i in range(100)
        ]
    )
    return set(doomed), set(kept)


def _successful_batches(emu: QStashEmulator) -> int:
    return sum(1 for e in emu.request_log() if e["path"] == "/v2/messages" and e["status"] == 200)


def _when_batches(emu: QStashEmulator, k: int, action: Any, deadline: float) -> threading.Thread:
    """Call ``action`` from another thread once ``k`` batches were answered 200 (polls the request log)."""

    def watch() -> None:
        while time.monotonic() < deadline:
            if _successful_batches(emu) >= k:
                action()
                return
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _assert_partial_then_rerun_exact(emu: QStashEmulator, doomed: set[str], kept: set[str]) -> dict[str, Any]:
    """The kill left work undone; a second run (faults off) finishes it exactly; returns its XCom value."""
    held = emu.held_ids()
    assert doomed & held, "the kill came too late: everything was already cancelled"
    assert doomed - held, "the kill came too early: nothing was cancelled"
    assert kept <= held
    summary, reruns = run_sync({"labels": "doomed", "batch_size": 100})
    assert reruns == 0
    held = emu.held_ids()
    assert not doomed & held
    assert held == kept
    return summary


def _reported(error: str) -> tuple[int, int]:
    """(cancelled, batches) as the task's error reports them."""
    found = re.search(r"Cancelled (\d+) message\(s\) in (\d+) batch", error)
    assert found is not None, error
    return int(found.group(1)), int(found.group(2))


def test_on_kill_from_another_thread_between_batches_then_rerun(fresh: QStashEmulator):
    doomed, kept = _seed_for_kill(fresh)
    fresh.set_faults(FaultConfig(latency_ms=15, seed=1))
    op = QStashBulkCancelOperator(task_id="kill", labels="doomed", batch_size=100)
    recorded_at_kill: list[int] = []

    def kill() -> None:
        assert op._run is not None
        recorded_at_kill.append(op._run.batches)
        op.on_kill()

    watcher = _when_batches(fresh, KILL_AFTER_BATCHES, kill, time.monotonic() + 30)
    with pytest.raises(AirflowException, match=r"stopped on request \(task killed\)") as err:
        op.execute(soak_lib.ti_context())
    watcher.join(5)
    fresh.set_faults(None)
    assert "running the task again continues safely" in str(err.value)
    batches_before_stop = _successful_batches(fresh)
    # only the batch in flight when on_kill was called finishes; no further one is sent
    assert recorded_at_kill[0] <= batches_before_stop <= recorded_at_kill[0] + 1
    assert _reported(str(err.value)) == (100 * batches_before_stop, batches_before_stop)
    second = _assert_partial_then_rerun_exact(fresh, doomed, kept)
    assert second["cancelled"] == len(doomed) - 100 * batches_before_stop
    FIGURES.extra.setdefault("kill_runs", []).append({"how": "on_kill thread", "killed_after": batches_before_stop})


SIGTERM_WORKER = textwrap.dedent(
    """
    import json, signal, sys
    from types import SimpleNamespace
    import pendulum
    from airflow_qstash.operators.qstash import QStashBulkCancelOperator

    op = QStashBulkCancelOperator(task_id="kill", labels="doomed", batch_size=50)

    def on_term(signum, frame):
        # What Airflow's task runner does on SIGTERM: call the task's on_kill.
        print("killed-at", op._run.batches if op._run else -1, file=sys.stderr, flush=True)
        op.on_kill()

    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    try:
        result = op.execute({"ti": SimpleNamespace(start_date=pendulum.from_timestamp(%d / 1000))})
    except Exception as err:
        print(json.dumps({"error": str(err)}), flush=True)
        sys.exit(1)
    print(json.dumps({"result": result}), flush=True)
    """
)


def test_sigterm_to_a_worker_process_between_batches_then_rerun(fresh: QStashEmulator):
    doomed, kept = _seed_for_kill(fresh)
    fresh.set_faults(FaultConfig(latency_ms=20, seed=2))
    env = {
        **os.environ,
        "AIRFLOW_CONN_QSTASH_DEFAULT": connection_json(fresh.base_url, **SOAK_RETRIES),
        "PYTHONPATH": str(soak_lib.REPO_ROOT),
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_WORKER % TASK_START_MS],
        env=env,
        cwd=soak_lib.REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        for line in worker.stdout:  # Airflow may log a line or two at import
            if line.strip() == "ready":
                break
        else:
            pytest.fail("the worker exited before it was ready")
        watcher = _when_batches(
            fresh, KILL_AFTER_BATCHES, lambda: worker.send_signal(signal.SIGTERM), time.monotonic() + 60
        )
        out, err = worker.communicate(timeout=60)
        watcher.join(5)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    fresh.set_faults(None)
    assert worker.returncode == 1, err[-2000:]
    answer = json.loads(out.strip().splitlines()[-1])
    assert "stopped on request (task killed)" in answer["error"]
    assert TEST_TOKEN not in out + err
    killed_at = re.search(r"^killed-at (\d+)$", err, re.MULTILINE)
    assert killed_at is not None, err[-2000:]
    batches_before_stop = _successful_batches(fresh)
    # The signal lands while the worker waits on a batch: that batch finishes, no further one is sent.
    assert int(killed_at.group(1)) <= batches_before_stop <= int(killed_at.group(1)) + 1
    assert _reported(answer["error"]) == (50 * batches_before_stop, batches_before_stop)
    assert KILL_AFTER_BATCHES <= batches_before_stop < len(doomed) // 50
    _assert_partial_then_rerun_exact(fresh, doomed, kept)
    FIGURES.extra.setdefault("kill_runs", []).append({"how": "SIGTERM subprocess", "killed_after": batches_before_stop})


def test_cancelled_trigger_then_rerun(fresh: QStashEmulator):
    """A triggerer that stops (restart, task cleared) cancels the trigger's coroutine mid-request."""
    doomed, kept = _seed_for_kill(fresh)
    fresh.set_faults(FaultConfig(latency_ms=15, seed=4))
    op = QStashBulkCancelOperator(task_id="kill", labels="doomed", batch_size=100, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(soak_lib.ti_context())
    trigger = deferred.value.trigger

    async def run_then_cancel() -> None:
        task = asyncio.ensure_future(first_event(trigger))
        deadline = time.monotonic() + 30
        while _successful_batches(fresh) < KILL_AFTER_BATCHES and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_then_cancel())
    fresh.set_faults(None)
    batches_before_stop = _successful_batches(fresh)
    assert batches_before_stop >= KILL_AFTER_BATCHES
    _assert_partial_then_rerun_exact(fresh, doomed, kept)
    # and the deferrable re-run (a fresh trigger) also finds nothing left
    summary, _ = run_deferrable({"labels": "doomed", "batch_size": 100})
    assert summary["cancelled"] == 0
    assert fresh.held_ids() == kept
    FIGURES.extra.setdefault("kill_runs", []).append({"how": "trigger cancelled", "killed_after": batches_before_stop})
