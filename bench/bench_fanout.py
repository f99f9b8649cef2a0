"""Benchmark: 50 tenant cleanups as 50 mapped tasks on CeleryExecutor, against one task doing all 50 labels.

Run from the repository root (needs Debian's ``redis-server`` and ``postgresql``: ``make live-services``)::

    python bench/bench_fanout.py                         # 50 tenants x 200 messages, batch 20, +50 ms
    python bench/bench_fanout.py --repeats 3 --messages 1000 --batch-size 100 --latency-ms 100
    python bench/bench_fanout.py --bulk-cancel actions   # today's hosted QStash: one bulk action per round

Starts the deployment of ``tests/integration/live/test_celery_live.py``
(:class:`tests.integration.live.celery_stack.CeleryAirflow`:
PostgreSQL, Redis, API server, scheduler, DAG processor, 2 Celery workers of 4 slots, 2 triggerers) and
the QStash emulator in a child process, which adds ``--latency-ms`` to every request so a round trip
resembles one to QStash. ``--bulk-cancel legacy`` (default) emulates a server that honours ``count``, so
the client drives the batches; ``actions``, today's hosted QStash, where each round is a bulk action the
server works through at ``--action-rate`` messages per second. Each tenant has its own label
and ``--messages`` messages; ``--noise`` others must stay held. Then, in turn, each way cancels the 50
tenants' messages through one DAG run triggered over the REST API:

- ``mapped, 25 + 25 deferred``: ``qstash_mapped_fanout`` with 25 ``tenants`` and 25 ``large_tenants``
  (the live test's run: 25 mapped tasks in the workers, 25 deferred to the triggerers);
- ``mapped, 50 in workers``: the same DAG, all 50 as ``tenants``;
- ``mapped, 50 deferred``: all 50 as ``large_tenants``;
- ``one task, 50 labels``: ``qstash_on_demand_cancel`` with ``labels`` = the 50 labels: one operator, one
  loop over their union.

Wall time is from the trigger request to the run's end as Airflow recorded it; ``task s`` adds up the
task instances' durations (a deferred task's includes its time in the triggerer). A figure is printed
only for a run that succeeded with every task instance in its first try and left exactly the noise held.
Before timing, one small run of each DAG warms the workers up (not reported). Every wait is bounded.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common then puts the repository there too

from _common import (
    TOKEN,
    bulk_cancels,
    emulator_process,
    header,
    median,
    progress,
    table,
)

from tests.conftest import connection_json
from tests.integration.live.airflow_runtime import AirflowAPI
from tests.integration.live.celery_stack import CeleryAirflow, CeleryLayout

MAPPED = "qstash_mapped_fanout"
ONE_TASK = "qstash_on_demand_cancel"
TENANTS = 50
LAYOUT = CeleryLayout(workers=2, worker_concurrency=4, triggerers=2)
WAYS = ("mapped, 25 + 25 deferred", "mapped, 50 in workers", "mapped, 50 deferred", "one task, 50 labels")
LOAD_CHUNK = 20_000


def labels(n: int = TENANTS) -> list[str]:
    return [f"tenant-{i:02d}" for i in range(1, n + 1)]


def run_for(way: str, tenants: list[str], batch_size: int) -> tuple[str, dict[str, Any]]:
    """The DAG and ``conf`` of one way."""
    half = len(tenants) // 2
    if way == "one task, 50 labels":
        return ONE_TASK, {"labels": tenants, "batch_size": batch_size}
    split = {"mapped, 25 + 25 deferred": half, "mapped, 50 in workers": len(tenants), "mapped, 50 deferred": 0}
    cut = split[way]
    return MAPPED, {"tenants": tenants[:cut], "large_tenants": tenants[cut:], "batch_size": batch_size}


def load(emu: Any, tenants: list[str], messages: int, noise: int) -> None:
    """Empty the store; each tenant's messages under its label, plus ``noise`` messages that must stay.

    Created in the minute before now: a run cancels what was created up to its task's start.
    """
    emu.reset()
    created = int(time.time() * 1000) - 60_000
    pending: list[dict[str, Any]] = []
    rows = [(label, k) for label in tenants for k in range(messages)] + [("not-a-tenant", k) for k in range(noise)]
    for label, k in rows:
        pending.append({"url": "https://tenant.example.com/hook", "label": label, "createdAt": created - k % 1000})
        if len(pending) >= LOAD_CHUNK:
            emu.add_messages(pending)
            pending.clear()
    if pending:
        emu.add_messages(pending)
    emu.clear_request_log()


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def one_run(api: AirflowAPI, dag_id: str, conf: dict[str, Any], timeout: float) -> tuple[float, float, int]:
    """Trigger, wait for the end, check every task instance; wall s, summed task s, task instances."""
    started = time.time()
    run_id = api.trigger(dag_id, conf)
    run = api.wait_run(dag_id, run_id, timeout=timeout, interval=0.25)
    # A mapped task over an empty list is one skipped placeholder (map index -1): nothing ran.
    tis = [ti for ti in api.task_instances(dag_id, run_id) if (ti["map_index"], ti["state"]) != (-1, "skipped")]
    bad = [(ti["task_id"], ti["map_index"], ti["state"], ti["try_number"]) for ti in tis if ti["state"] != "success"]
    bad += [(ti["task_id"], ti["map_index"], "try", ti["try_number"]) for ti in tis if ti["try_number"] != 1]
    if run["state"] != "success" or bad:
        raise SystemExit(f"{dag_id} run {run_id} ended {run['state']}; task instances: {bad}")
    return _epoch(run["end_date"]) - started, sum(ti["duration"] or 0.0 for ti in tis), len(tis)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200, help="messages per tenant label, 1..100000")
    parser.add_argument("--batch-size", type=int, default=20, help="messages per request, 1..500")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="delay the emulator adds to each request")
    parser.add_argument("--noise", type=int, default=1_000, help="other messages that must stay held")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each way (max 5); medians shown")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one DAG run may take")
    parser.add_argument("--bulk-cancel", choices=("legacy", "actions"), default="legacy", help="server generation")
    parser.add_argument("--action-rate", type=float, default=2000.0, help="actions mode: messages/s per action")
    args = parser.parse_args()
    args.messages = max(1, min(args.messages, 100_000))
    args.batch_size = max(1, min(args.batch_size, 500))
    args.repeats = max(1, min(args.repeats, 5))

    header("50 tenant cleanups: mapped tasks on CeleryExecutor vs one task")
    tenants = labels()
    results: dict[str, list[tuple[float, float, int, int]]] = {way: [] for way in WAYS}
    home = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    server = {"bulk_cancel": args.bulk_cancel}
    if args.bulk_cancel == "actions":
        server["action_rate"] = args.action_rate
    with emulator_process(faults={"latency_ms": args.latency_ms}, **server) as emu:
        deployment = CeleryAirflow(
            home,
            connections={"qstash_default": connection_json(emu.base_url, TOKEN, timeout=60)},
            layout=LAYOUT,
            dag_ids=[MAPPED, ONE_TASK],
        )
        progress(f"starting PostgreSQL, Redis and Airflow (CeleryExecutor) in {home}")
        with deployment:
            progress(f"deployment ready in {deployment.startup_seconds:.0f} s")
            api = deployment.airflow.api
            for dag_id in (MAPPED, ONE_TASK):
                api.set_paused(dag_id, False)
            for way in ("mapped, 25 + 25 deferred", "one task, 50 labels"):  # warm-up, not reported
                load(emu, tenants[:2], 1, 0)
                one_run(api, *run_for(way, tenants[:2], args.batch_size), timeout=args.timeout)
            for repeat in range(args.repeats):
                for way in WAYS:
                    load(emu, tenants, args.messages, args.noise)
                    wall, task_seconds, tis = one_run(api, *run_for(way, tenants, args.batch_size), args.timeout)
                    counts = emu.counts()
                    expected = {"held": args.noise, "cancelled": TENANTS * args.messages}
                    if counts != expected:
                        raise SystemExit(f"{way}: the store holds {counts}, expected {expected}")
                    requests = bulk_cancels(emu)
                    results[way].append((wall, task_seconds, tis, requests))
                    progress(f"run {repeat + 1}: {way}: {wall:.1f} s wall, {tis} task instances, {requests} cancels")
        leftovers = deployment.leftover_processes()
    if leftovers:
        raise SystemExit(f"processes left running: {leftovers}")
    shutil.rmtree(home, ignore_errors=True)

    per_tenant = math.ceil(args.messages / args.batch_size) + 1
    print(
        f"workload  {TENANTS} tenants x {args.messages:,} messages (own label), batch {args.batch_size}, "
        f"+{args.latency_ms:g} ms per request; {args.noise:,} others held"
    )
    print(
        f"airflow   CeleryExecutor, {LAYOUT.workers} workers x {LAYOUT.worker_concurrency} slots, "
        f"{LAYOUT.triggerers} triggerers, PostgreSQL, Redis; emulator in a child process"
    )
    generation = "legacy (count honoured)" if args.bulk_cancel == "legacy" else f"actions, {args.action_rate:g} msg/s"
    print(f"server    {generation}")
    print(f"runs      {'median of ' + str(args.repeats) if args.repeats > 1 else '1'} per way")
    print()
    one_task = median(run[0] for run in results["one task, 50 labels"])
    rows = []
    for way in WAYS:
        wall = median(run[0] for run in results[way])
        rows.append(
            (
                way,
                results[way][0][2],
                results[way][0][3],
                wall,
                median(run[1] for run in results[way]),
                f"{one_task / wall:.2f}x",
            )
        )
    table(("way", "task instances", "bulk cancels", "wall s", "task s", "speed-up vs one task"), rows)
    if args.bulk_cancel == "legacy":
        print()
        print(
            f"bulk cancels: each mapped task sends ceil({args.messages}/{args.batch_size}) + 1 = {per_tenant}; "
            f"the one task sends ceil({TENANTS * args.messages}/{args.batch_size}) + 1 = "
            f"{math.ceil(TENANTS * args.messages / args.batch_size) + 1}."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
