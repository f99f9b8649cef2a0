"""
Fault soak: seeded scenarios against the in-process emulator with faults on, for both server generations
(``legacy``: ``count`` honoured, synchronous batches; ``actions``: today's hosted QStash, filter cancels
run as background bulk actions followed with polls), each on the sync operator and on the deferrable
path, every message checked against an independent oracle.

Plus, on both generations: producers publishing matching messages while the task runs (it still ends,
and leaves what was created after its pinned ``to_date``), and a task killed (``on_kill`` from another
thread, SIGTERM to a worker subprocess, a cancelled trigger) between batches or in the middle of
following a bulk action, then run again: the re-run joins the running action and ends exact.

Figures go to ``test-artifacts/soak-figures.json``; ``python bench/soak_report.py`` prints them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger
from qstash_emulator import FaultConfig, QStashEmulator
from tests.conftest import TEST_TOKEN, connection_json
from tests.integration.reliability import soak_lib
from tests.integration.reliability.soak_lib import (
    MODES,
    SCARCE_RETRIES,
    SOAK_RETRIES,
    TASK_START_MS,
    SoakFigures,
    check_exact,
    conn_env,
    effective_to_date,
    first_event,
    make_scenario,
    oracle,
    polled_ids,
    request_kind,
    run_deferrable,
    run_sync,
    soak_emulator,
)

pytestmark = [pytest.mark.soak, pytest.mark.slow]

#: Scenarios per server generation (distinct seeds, so the two generations see different data).
SCENARIO_SEEDS: dict[str, range] = {"legacy": range(0, 32), "actions": range(200, 232)}
#: Scenarios run again with one retry per request (``max_retries=1``), where task re-runs are expected.
#: Their profiles are request-level faults (429, 5xx, drops, mixed): the ones that exhaust retries.
SCARCE_SEEDS: dict[str, tuple[int, ...]] = {"legacy": (1000, 1001, 1002, 1003), "actions": (1504, 1505, 1506, 1502)}
FIGURES = SoakFigures()
LEGACY = "legacy"
SCENARIOS = [pytest.param(mode, seed, id=f"{mode}-{seed}") for mode in MODES for seed in SCENARIO_SEEDS[mode]]


def conn_id(mode: str, *, scarce: bool = False) -> str:
    """The connection the soak uses against the ``mode`` emulator (scarce: one retry per request)."""
    return f"qstash_soak_{mode}{'_scarce' if scarce else ''}"


@pytest.fixture(scope="module")
def emulators() -> Iterator[dict[str, QStashEmulator]]:
    """One emulator per server generation for the module, with a connection each (generous and scarce)."""
    with contextlib.ExitStack() as stack, pytest.MonkeyPatch.context() as mp:
        running: dict[str, QStashEmulator] = {}
        for mode in MODES:
            emu = stack.enter_context(soak_emulator(mode))
            mp.setenv(conn_env(conn_id(mode)), connection_json(emu.base_url, **SOAK_RETRIES))
            mp.setenv(conn_env(conn_id(mode, scarce=True)), connection_json(emu.base_url, **SCARCE_RETRIES))
            running[mode] = emu
        yield running
    if FIGURES.ran_scenarios:
        FIGURES.write()


@pytest.fixture
def fresh(emulators: dict[str, QStashEmulator], mode: str) -> Iterator[QStashEmulator]:
    """The ``mode`` emulator, emptied; its faults are switched off afterwards."""
    emu = emulators[mode]
    emu.reset()
    yield emu
    emu.set_faults(None)


@pytest.fixture
def fresh_legacy(emulators: dict[str, QStashEmulator]) -> Iterator[QStashEmulator]:
    """The ``legacy`` emulator, emptied; its faults are switched off afterwards."""
    emu = emulators[LEGACY]
    emu.reset()
    yield emu
    emu.set_faults(None)


# --------------------------------------------------------------------------- seeded scenarios


@pytest.mark.parametrize("mode", MODES)
def test_scenarios_are_reproducible_and_varied(mode: str):
    assert oracle(make_scenario(7, mode)) == oracle(make_scenario(7, mode))
    assert make_scenario(7, mode).op_kwargs == make_scenario(7, mode).op_kwargs
    assert make_scenario(7, mode).faults == make_scenario(7, mode).faults
    scenarios = [make_scenario(seed, mode) for seed in SCENARIO_SEEDS[mode]]
    assert {s.profile for s in scenarios} == set(soak_lib.FAULT_PROFILES[mode])
    assert all(s.wanted or s.window != (None, None) or s.message_ids for s in scenarios), "an empty filter set"
    assert sum(1 for s in scenarios if s.message_ids) >= 2
    assert sum(1 for s in scenarios if s.window != (None, None)) >= 8
    assert sum(1 for s in scenarios if len(s.wanted) >= 2) >= 5
    assert any((s.window[1] or 0) > TASK_START_MS for s in scenarios), "no to_date after the start to pin"
    # each scenario both cancels something and leaves something
    selected = [len(oracle(s)) for s in scenarios]
    assert sum(1 for n in selected if n > 0) >= 0.8 * len(scenarios)
    assert all(n < len(s.messages) for n, s in zip(selected, scenarios, strict=True))
    if mode == "actions":
        # every bulk-action fault is on in some filter scenario (ids cancels start no action)
        filtered = [s.faults for s in scenarios if s.message_ids is None]
        assert any(f.rate_spurious_412 for f in filtered)
        assert any(f.rate_start_lost for f in filtered)
        assert any(f.rate_action_partial for f in filtered)


def _check_bulk_actions(
    emu: QStashEmulator, log: list[dict[str, Any]], summary: dict[str, Any], reruns: int, context: str
) -> int:
    """The bulk-action bookkeeping of one scenario run against the server's own record; returns the actions."""
    actions = {a["actionId"]: a for a in emu.bulk_actions()}
    # nothing goes on in the background once the task has succeeded
    assert all(a["state"] == "FINISHED" for a in actions.values()), context
    assert polled_ids(log) <= set(actions), f"{context}: polled an id the server never gave"
    followed = summary["action_ids"]
    assert summary["mode"] == "bulk_action", context
    assert len(set(followed)) == len(followed) == summary["batches"], f"{context}: one action per round"
    assert set(followed) <= set(actions), context
    # the XCom total is what went: the first action's total minus the last's (0), never the processed sum a
    # partial action overstates; and the last round found nothing
    assert summary["cancelled"] == actions[followed[0]]["total"] - actions[followed[-1]]["total"], context
    assert summary["cancelled"] <= sum(actions[i]["processed"] for i in followed), context
    assert actions[followed[-1]]["total"] == 0, f"{context}: the confirming round was not empty"
    if reruns == 0:
        # one run did everything: it followed every action the server started, none was left unwatched
        assert set(followed) == set(actions), f"{context}: an action started but not followed"
    return len(actions)


def _soak(emu: QStashEmulator, mode: str, seed: int, *, max_runs: int, scarce: bool) -> list[int]:
    """Run one scenario on both paths and check it message by message; returns the re-runs per path."""
    figures = FIGURES[mode]
    scenario = make_scenario(seed, mode)
    expected = oracle(scenario)
    all_ids = {r["id"] for r in scenario.records}
    figures.profiles[scenario.profile] += 1
    reruns_per_path = []
    for path, run in (("sync", run_sync), ("deferrable", run_deferrable)):
        emu.reset()
        emu.add_messages(scenario.messages)
        emu.set_faults(scenario.faults)
        summary, reruns = run(scenario.op_kwargs, max_runs=max_runs, conn_id=conn_id(mode, scarce=scarce))
        emu.set_faults(None)
        log = emu.request_log()
        collateral, left = check_exact(emu, all_ids, expected)

        reruns_per_path.append(reruns)
        figures.count_requests(log)
        figures.messages_checked += len(all_ids)
        figures.messages_expected_cancelled += len(expected)
        figures.collateral_cancels += len(collateral)
        figures.left_behind += len(left)

        context = f"{path}: {scenario.describe()}"
        assert not collateral, f"{context}: cancelled {len(collateral)} unselected, e.g. {sorted(collateral)[:3]}"
        assert not left, f"{context}: left {len(left)} selected messages held, e.g. {sorted(left)[:3]}"
        # QStash was never asked for everything: every bulk cancel carries a filter.
        starts = [e for e in log if request_kind(e) == "start"]
        assert starts, context
        assert all(any(k not in ("count", "async") for k, _ in e["query"]) for e in starts), context
        if mode == "legacy" or scenario.message_ids is not None:
            # Only bulk cancels were sent; a partial failure's cancels (answered 500) and earlier runs'
            # are not counted in the XCom value.
            assert {request_kind(e) for e in log} == {"start"}, context
            assert (summary["mode"], summary["action_ids"]) == ("batched", []), context
            assert summary["cancelled"] <= len(expected), context
            if reruns == 0 and not scenario.faults.rate_partial:
                assert summary["cancelled"] == len(expected), context
        else:
            assert {request_kind(e) for e in log} <= {"start", "poll", "listing"}, context
            figures.actions += _check_bulk_actions(emu, log, summary, reruns, context)
        if scenario.message_ids is None:
            assert summary["to_date"] == effective_to_date(scenario.window[1]), context
    return reruns_per_path


@pytest.mark.parametrize(("mode", "seed"), SCENARIOS)
def test_soak_scenario_cancels_exactly_the_oracle_on_both_paths(fresh: QStashEmulator, mode: str, seed: int):
    FIGURES[mode].count_scenario(_soak(fresh, mode, seed, max_runs=soak_lib.MAX_TASK_RUNS, scarce=False))


@pytest.mark.parametrize("mode", MODES)
def test_soak_with_scarce_retries_reruns_the_task_to_an_exact_state(fresh: QStashEmulator, mode: str):
    """One retry per request: faults exhaust it, the task fails, Airflow runs it again; still exact."""
    reruns = 0
    for seed in SCARCE_SEEDS[mode]:
        per_path = _soak(fresh, mode, seed, max_runs=soak_lib.SCARCE_MAX_TASK_RUNS, scarce=True)
        reruns += FIGURES[mode].scarce.count_scenario(per_path)
    # not vacuous: with one retry per request some run did give up and was run again
    assert reruns > 0


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


PRODUCER_CONN = "qstash_soak_producers"


@pytest.fixture
def producer_server(
    emulators: dict[str, QStashEmulator], mode: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[QStashEmulator]:
    """
    The ``mode`` server for the producer test, connection :data:`PRODUCER_CONN`: the soak's legacy emulator
    (a batch of 25 per request keeps the task busy), or a bulk-action server at a realistic 2,000 messages/s
    (at the soak's rate the whole cancel would be over before the producer got going).
    """
    with contextlib.ExitStack() as stack:
        if mode == LEGACY:
            emu = emulators[LEGACY]
            emu.reset()
        else:
            emu = stack.enter_context(soak_emulator(mode, action_rate=2000))
        monkeypatch.setenv(conn_env(PRODUCER_CONN), connection_json(emu.base_url, **SOAK_RETRIES))
        yield emu
        emu.set_faults(None)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
@pytest.mark.parametrize("mode", MODES)
def test_producers_publishing_during_the_run_do_not_keep_it_alive(
    producer_server: QStashEmulator, mode: str, deferrable: bool
):
    fresh = producer_server
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
        op = QStashBulkCancelOperator(
            task_id="live", labels="live", batch_size=25, deferrable=deferrable, qstash_conn_id=PRODUCER_CONN
        )
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
    result = outcome["result"]
    assert result["to_date"] == start_ms
    assert result["mode"] == ("bulk_action" if mode == "actions" else "batched")
    assert len(published) >= 10, "the producer barely published: the test would prove nothing"

    by_id = {m["messageId"]: m for m in fresh.messages("all")}
    held = fresh.held_ids()
    assert not set(before) & held, "a message created before the task started is still held"
    late = {mid for mid in published if by_id[mid]["createdAt"] > start_ms}
    early = set(published) - late
    assert late, "no message was published after the task's start"
    assert late <= held, "a message created after the pinned to_date was cancelled"
    assert not early & held, "a message created before the pinned to_date is still held"
    FIGURES.producer_runs.append(
        {
            "mode": mode,
            "path": "deferrable" if deferrable else "sync",
            "seconds": round(elapsed, 2),
            "published_during_run": len(published),
            "left_for_next_run": len(late),
            "batches": result["batches"],
        }
    )


# --------------------------------------------------------------------------- kill between batches (legacy)

KILL_MESSAGES = 2000
KILL_AFTER_BATCHES = 4


def _seed_for_kill(emu: QStashEmulator) -> tuple[set[str], set[str]]:
    """Matching (label ``doomed``) and non-matching messages, all created before the task's start."""
    doomed = emu.add_messages(
        [
            {"url": "https://k.example/a", "label": "doomed", "createdAt": TASK_START_MS - 1 - i}
            for i in range(KILL_MESSAGES)
        ]
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


def _successful_polls(emu: QStashEmulator) -> int:
    return sum(1 for e in emu.request_log() if request_kind(e) == "poll" and e["status"] == 200)


def _when(count: Callable[[], int], k: int, action: Callable[[], Any], deadline: float) -> threading.Thread:
    """Call ``action`` from another thread once ``count()`` reaches ``k`` (polls the request log)."""

    def watch() -> None:
        while time.monotonic() < deadline:
            if count() >= k:
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
    summary, reruns = run_sync({"labels": "doomed", "batch_size": 100}, conn_id=conn_id(LEGACY))
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


@pytest.mark.parametrize("mode", [LEGACY])
def test_on_kill_from_another_thread_between_batches_then_rerun(fresh: QStashEmulator, mode: str):
    doomed, kept = _seed_for_kill(fresh)
    fresh.set_faults(FaultConfig(latency_ms=15, seed=1))
    op = QStashBulkCancelOperator(task_id="kill", labels="doomed", batch_size=100, qstash_conn_id=conn_id(mode))
    recorded_at_kill: list[int] = []

    def kill() -> None:
        assert op._run is not None
        recorded_at_kill.append(op._run.batches)
        op.on_kill()

    watcher = _when(lambda: _successful_batches(fresh), KILL_AFTER_BATCHES, kill, time.monotonic() + 30)
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
    FIGURES.kill_runs.append({"mode": mode, "how": "on_kill thread", "killed_after": f"{batches_before_stop} batches"})


#: A worker process running the operator; argv: conn id, batch size, the task's start (Unix ms).
SIGTERM_WORKER = textwrap.dedent(
    """
    import json, signal, sys
    from types import SimpleNamespace
    import pendulum
    from airflow_qstash.operators.qstash import QStashBulkCancelOperator

    conn_id, batch_size, start_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    op = QStashBulkCancelOperator(task_id="kill", labels="doomed", batch_size=batch_size, qstash_conn_id=conn_id)

    def on_term(signum, frame):
        # What Airflow's task runner does on SIGTERM: call the task's on_kill.
        run = op._run
        print("killed-at", run.batches if run else -1, run.polls if run else -1, file=sys.stderr, flush=True)
        op.on_kill()

    signal.signal(signal.SIGTERM, on_term)
    print("ready", flush=True)
    try:
        result = op.execute({"ti": SimpleNamespace(start_date=pendulum.from_timestamp(start_ms / 1000))})
    except Exception as err:
        summary = getattr(err.__cause__, "summary", {})
        print(json.dumps({"error": str(err), "action_ids": summary.get("action_ids")}), flush=True)
        sys.exit(1)
    print(json.dumps({"result": result}), flush=True)
    """
)


def _sigterm_worker(
    emu: QStashEmulator, connection: str, batch_size: int, kill_when: Callable[[], bool]
) -> tuple[dict[str, Any], str]:
    """Run the operator in a worker process, SIGTERM it once ``kill_when()``; its last JSON line and stderr."""
    env = {**os.environ, "PYTHONPATH": str(soak_lib.REPO_ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_WORKER, connection, str(batch_size), str(TASK_START_MS)],
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
        watcher = _when(lambda: int(kill_when()), 1, lambda: worker.send_signal(signal.SIGTERM), time.monotonic() + 60)
        out, err = worker.communicate(timeout=60)
        watcher.join(5)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 1, err[-2000:]
    assert TEST_TOKEN not in out + err
    answer = json.loads(out.strip().splitlines()[-1])
    assert "stopped on request (task killed)" in answer["error"], answer
    return answer, err


@pytest.mark.parametrize("mode", [LEGACY])
def test_sigterm_to_a_worker_process_between_batches_then_rerun(fresh: QStashEmulator, mode: str):
    doomed, kept = _seed_for_kill(fresh)
    fresh.set_faults(FaultConfig(latency_ms=20, seed=2))
    answer, err = _sigterm_worker(fresh, conn_id(mode), 50, lambda: _successful_batches(fresh) >= KILL_AFTER_BATCHES)
    fresh.set_faults(None)
    killed_at = re.search(r"^killed-at (\d+) ", err, re.MULTILINE)
    assert killed_at is not None, err[-2000:]
    batches_before_stop = _successful_batches(fresh)
    # The signal lands while the worker waits on a batch: that batch finishes, no further one is sent.
    assert int(killed_at.group(1)) <= batches_before_stop <= int(killed_at.group(1)) + 1
    assert _reported(answer["error"]) == (50 * batches_before_stop, batches_before_stop)
    assert KILL_AFTER_BATCHES <= batches_before_stop < len(doomed) // 50
    _assert_partial_then_rerun_exact(fresh, doomed, kept)
    FIGURES.kill_runs.append(
        {"mode": mode, "how": "SIGTERM subprocess", "killed_after": f"{batches_before_stop} batches"}
    )


@pytest.mark.parametrize("mode", [LEGACY])
def test_cancelled_trigger_between_batches_then_rerun(fresh: QStashEmulator, mode: str):
    """A triggerer that stops (restart, task cleared) cancels the trigger's coroutine mid-request."""
    doomed, kept = _seed_for_kill(fresh)
    fresh.set_faults(FaultConfig(latency_ms=15, seed=4))
    op = QStashBulkCancelOperator(
        task_id="kill", labels="doomed", batch_size=100, deferrable=True, qstash_conn_id=conn_id(mode)
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(soak_lib.ti_context())
    trigger = deferred.value.trigger

    async def run_then_cancel() -> None:
        task = asyncio.ensure_future(first_event(trigger))
        deadline = time.monotonic() + 30
        while _successful_batches(fresh) < KILL_AFTER_BATCHES and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        assert not task.done(), task.result()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_then_cancel())
    fresh.set_faults(None)
    batches_before_stop = _successful_batches(fresh)
    assert batches_before_stop >= KILL_AFTER_BATCHES
    _assert_partial_then_rerun_exact(fresh, doomed, kept)
    # and the deferrable re-run (a fresh trigger) also finds nothing left
    summary, _ = run_deferrable({"labels": "doomed", "batch_size": 100}, conn_id=conn_id(mode))
    assert summary["cancelled"] == 0
    assert fresh.held_ids() == kept
    FIGURES.kill_runs.append(
        {"mode": mode, "how": "trigger cancelled", "killed_after": f"{batches_before_stop} batches"}
    )


def test_the_triggers_requests_never_swallow_the_triggerers_cancel(fresh_legacy: QStashEmulator):
    """
    A cancel that lands as a request completes must still cancel: every request of a trigger goes through
    ``QStashAsyncHook.send``, cancelled here at random points of hundreds of requests (3 ms each).
    """
    from airflow_qstash.hooks.qstash import QStashAsyncHook
    from airflow_qstash.protocol.calls import Call
    from airflow_qstash.protocol.endpoints import LIST_QUEUES

    fresh_legacy.set_faults(FaultConfig(latency_ms=3, seed=5))
    outcomes: dict[str, int] = {"cancelled": 0, "finished first": 0, "kept running": 0}

    async def cancel_at_random_points() -> None:
        hook = QStashAsyncHook(qstash_conn_id=conn_id(LEGACY))
        rng = random.Random(12)
        try:
            await hook.send(Call(LIST_QUEUES))  # the connection and the client, once
            for _ in range(300):
                task = asyncio.ensure_future(hook.send(Call(LIST_QUEUES)))
                await asyncio.sleep(rng.uniform(0.002, 0.0045))
                if not task.cancel():
                    outcomes["finished first"] += 1
                    continue
                try:
                    await task
                except asyncio.CancelledError:
                    outcomes["cancelled"] += 1
                else:
                    outcomes["kept running"] += 1
        finally:
            await hook.aclose()

    asyncio.run(cancel_at_random_points())
    assert outcomes["cancelled"] >= 100, outcomes  # not vacuous: most cancels landed mid-request
    assert outcomes["kept running"] == 0, f"a cancelled request kept running and returned its answer: {outcomes}"


# --------------------------------------------------------------------------- a re-run within minutes


@pytest.mark.parametrize("run", [run_sync, run_deferrable], ids=["sync", "deferrable"])
@pytest.mark.parametrize("mode", ["actions"])
def test_a_412_never_lets_an_earlier_runs_finished_action_confirm_zero(
    fresh: QStashEmulator, mode: str, run: Callable[..., tuple[dict[str, Any], int]]
):
    """
    A run with the same filter as one that ended minutes ago, whose starts all meet a 412 (not an action
    of ours: a server refusing for another reason): it cannot cancel anything, so it must fail, never
    report success by following the earlier run's finished actions, whose last one found zero.
    """
    first = fresh.add_messages(
        [{"url": "https://a.example/x", "label": "again", "createdAt": TASK_START_MS - 1 - i} for i in range(100)]
    )
    summary, _ = run({"labels": "again"}, conn_id=conn_id(mode))
    assert summary["cancelled"] == len(first) and len(summary["action_ids"]) == 2
    later = set(
        fresh.add_messages(
            [{"url": "https://a.example/x", "label": "again", "createdAt": TASK_START_MS - 1 - i} for i in range(10)]
        )
    )
    fresh.set_faults(FaultConfig(rate_spurious_412=1.0))

    with pytest.raises(AirflowException) as failed:
        run({"labels": "again"}, conn_id=conn_id(mode), max_runs=1)

    fresh.set_faults(None)
    assert "found no bulk action with this filter" in str(failed.value)
    assert fresh.held_ids() == later
    # the next run, with the server answering again, cancels them
    summary, _ = run({"labels": "again"}, conn_id=conn_id(mode))
    assert summary["cancelled"] == len(later)
    assert not fresh.held_ids()


# --------------------------------------------------------------------------- kill while following an action

#: The slow server of these tests cancels this many messages per second: the 2,000 doomed messages take
#: about 4 s, long enough for the kill and the re-run to happen while the action still runs.
SLOW_ACTION_RATE = 500.0
KILL_AFTER_POLLS = 3
SLOW_CONN = "qstash_soak_slow_actions"
#: Faults of the kill tests: latency, and 5xx on some requests (polls included), all retried.
KILL_FAULTS = FaultConfig(latency_ms=5, rate_5xx=0.1, reset_after_s=0, seed=8)


@pytest.fixture
def slow_actions(monkeypatch: pytest.MonkeyPatch) -> Iterator[QStashEmulator]:
    """A bulk-action server whose actions take seconds, with light faults; connection :data:`SLOW_CONN`."""
    with soak_emulator("actions", action_rate=SLOW_ACTION_RATE, faults=KILL_FAULTS) as emu:
        monkeypatch.setenv(
            conn_env(SLOW_CONN), connection_json(emu.base_url, **{**SOAK_RETRIES, "poll_interval_max": 0.05})
        )
        yield emu


def _running_action(emu: QStashEmulator) -> dict[str, Any]:
    """The one bulk action, which must still be running (else the re-run could not join it)."""
    (action,) = emu.bulk_actions()
    assert action["state"] == "IN_PROGRESS", "the action finished before the re-run: the test would prove nothing"
    assert action["processed"] < action["total"] == KILL_MESSAGES, action
    return action


def _rerun_joins(
    emu: QStashEmulator, killed: dict[str, Any], doomed: set[str], kept: set[str], how: str, polls: int
) -> None:
    """Re-run on both paths in turn: the first joins the killed run's action; both end exact."""
    summary, reruns = run_sync({"labels": "doomed"}, conn_id=SLOW_CONN)
    assert reruns == 0
    assert summary["mode"] == "bulk_action"
    assert summary["action_ids"][0] == killed["actionId"], "the re-run did not join the running action"
    actions = emu.wait_actions_idle(30)
    assert len(actions) == 2, "the re-run started a second action beside the running one"
    assert actions[1]["total"] == 0  # the confirming round
    assert emu.held_ids() == kept
    assert not doomed & emu.held_ids()
    assert any(e["status"] == 412 for e in emu.request_log() if request_kind(e) == "start"), "no join by 412"
    FIGURES.kill_runs.append(
        {"mode": "actions", "how": how, "killed_after": f"{polls} polls of its action", "rerun_joined": True}
    )


def test_sigterm_to_a_worker_process_mid_poll_then_rerun_joins_the_action(slow_actions: QStashEmulator):
    emu = slow_actions
    doomed, kept = _seed_for_kill(emu)
    answer, err = _sigterm_worker(emu, SLOW_CONN, 100, lambda: _successful_polls(emu) >= KILL_AFTER_POLLS)
    killed = _running_action(emu)
    killed_at = re.search(r"^killed-at (\d+) (\d+)$", err, re.MULTILINE)
    assert killed_at is not None, err[-2000:]
    assert killed_at.group(1) == "0" and int(killed_at.group(2)) >= KILL_AFTER_POLLS - 1, "not killed mid-poll"
    assert answer["action_ids"] == [killed["actionId"]]
    _rerun_joins(emu, killed, doomed, kept, "SIGTERM subprocess", int(killed_at.group(2)))


def test_cancelled_trigger_mid_poll_then_rerun_joins_the_action(slow_actions: QStashEmulator):
    emu = slow_actions
    doomed, kept = _seed_for_kill(emu)
    op = QStashBulkCancelOperator(task_id="kill", labels="doomed", deferrable=True, qstash_conn_id=SLOW_CONN)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(soak_lib.ti_context())
    _, serialized = deferred.value.trigger.serialize()

    async def run_then_cancel() -> int:
        task = asyncio.ensure_future(first_event(QStashBulkCancelTrigger(**serialized)))
        deadline = time.monotonic() + 30
        while (polls := _successful_polls(emu)) < KILL_AFTER_POLLS:
            assert time.monotonic() < deadline, "the trigger never polled"
            assert not task.done(), "the trigger ended before it was cancelled"
            await asyncio.sleep(0.002)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return polls

    polls = asyncio.run(run_then_cancel())
    killed = _running_action(emu)
    # the triggerer's restart: the same serialised trigger runs again and joins
    event = asyncio.run(asyncio.wait_for(first_event(QStashBulkCancelTrigger(**serialized)), 60))
    summary = op.execute_complete(soak_lib.ti_context(), event)
    assert summary["action_ids"][0] == killed["actionId"], "the re-run trigger did not join the running action"
    assert emu.held_ids() == kept
    actions = emu.wait_actions_idle(30)
    assert len(actions) == 2 and actions[1]["total"] == 0
    assert any(e["status"] == 412 for e in emu.request_log() if request_kind(e) == "start"), "no join by 412"
    FIGURES.kill_runs.append(
        {
            "mode": "actions",
            "how": "trigger cancelled",
            "killed_after": f"{polls} polls of its action",
            "rerun_joined": True,
        }
    )
    # and a sync re-run after that finds nothing left
    summary, _ = run_sync({"labels": "doomed"}, conn_id=SLOW_CONN)
    assert summary["cancelled"] == 0
    assert not doomed & emu.held_ids()


def test_on_kill_from_another_thread_mid_poll_then_rerun_joins_the_action(slow_actions: QStashEmulator):
    emu = slow_actions
    doomed, kept = _seed_for_kill(emu)
    op = QStashBulkCancelOperator(task_id="kill", labels="doomed", qstash_conn_id=SLOW_CONN)
    watcher = _when(lambda: _successful_polls(emu), KILL_AFTER_POLLS, op.on_kill, time.monotonic() + 30)
    with pytest.raises(AirflowException, match=r"stopped on request \(task killed\)") as err:
        op.execute(soak_lib.ti_context())
    watcher.join(5)
    killed = _running_action(emu)
    assert err.value.__cause__ is not None
    assert getattr(err.value.__cause__, "summary", {}).get("action_ids") == [killed["actionId"]]
    assert op._run is not None
    _rerun_joins(emu, killed, doomed, kept, "on_kill thread", op._run.polls)
