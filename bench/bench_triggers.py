"""Benchmark: 100 QStashBulkCancelTrigger.run() on one event loop, concurrently vs one after another.

Run from the repository root::

    python bench/bench_triggers.py                       # 100 triggers x 2,000 messages, batch 500, 20 ms
    python bench/bench_triggers.py --repeats 3 --latency-ms 50
    python bench/bench_triggers.py --triggers 20 --messages 500 --batch-size 100

What a triggerer does with many deferred bulk-cancel tasks: each trigger has its own label
(``bench-000`` ...), its own ``QStashAsyncHook`` and httpx client, and cancels its label's messages in
batches until one cancels zero (``ceil(messages / batch) + 1`` requests). The emulator runs in a child
process (``QStashEmulator(subprocess=True)``) so the server does not share this process's GIL, and adds
``--latency-ms`` to every request so a round trip resembles one to QStash.

Both modes run on one ``asyncio`` event loop: ``concurrent`` gathers all the triggers, ``sequential``
awaits them one at a time. Before each timed run the store is emptied and loaded again (the label
messages plus ``--noise`` messages under another label that must stay held); after it, every event, the
store's counts and the request log are checked, so a figure is only printed for a run that cancelled
exactly what it should. The wall time covers the triggers only (reading the connection, opening the
clients, all requests), not the loading. Also shown: this process's CPU time, and the server's own work
per request (its time per request in the sequential run, less the added latency): the emulator does that
work one request at a time, so it bounds how fast the concurrent run can be.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# The triggers' per-batch progress lines (INFO) would drown the table; read before Airflow is imported.
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

from _common import label_of, load_labelled

from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger
from qstash_emulator import QStashEmulator
from qstash_emulator.faults import FaultConfig

CONN_ID = "qstash_bench"
TOKEN = "bench-token-not-secret"
FROM_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
TO_MS = FROM_MS + 86_400_000 - 1
LOAD_CHUNK = 20_000


def load(emu: QStashEmulator, triggers: int, messages: int, noise: int) -> None:
    """Empty the store and add ``messages`` per label plus ``noise`` others, in chunks over the admin API."""
    load_labelled(emu, triggers, messages, noise, FROM_MS, TO_MS, chunk=LOAD_CHUNK)


def make_triggers(triggers: int, batch_size: int) -> list[QStashBulkCancelTrigger]:
    return [
        QStashBulkCancelTrigger(
            qstash_conn_id=CONN_ID,
            bulk_filter=BulkCancelFilter.build(labels=[label_of(i)], from_date=FROM_MS, to_date=TO_MS).to_dict(),
            batch_size=batch_size,
        )
        for i in range(triggers)
    ]


async def drain(trigger: QStashBulkCancelTrigger, timeout: float) -> list[Any]:
    async def events() -> list[Any]:
        return [event async for event in trigger.run()]

    return await asyncio.wait_for(events(), timeout)


async def run_concurrent(triggers: list[QStashBulkCancelTrigger], timeout: float) -> list[list[Any]]:
    return list(await asyncio.gather(*(drain(t, timeout) for t in triggers)))


async def run_sequential(triggers: list[QStashBulkCancelTrigger], timeout: float) -> list[list[Any]]:
    return [await drain(t, timeout) for t in triggers]


def measure(emu: QStashEmulator, mode: str, args: argparse.Namespace) -> tuple[float, float, list[float]]:
    """Load, run the triggers in ``mode`` on a fresh event loop, check everything.

    :return: wall seconds, this process's CPU seconds, and the server's time per request (ms, arrival to
        answer, the added latency and any queueing included).
    """
    load(emu, args.triggers, args.messages, args.noise)
    triggers = make_triggers(args.triggers, args.batch_size)
    runner = run_concurrent if mode == "concurrent" else run_sequential
    cpu_started = time.process_time()
    started = time.perf_counter()
    results = asyncio.run(runner(triggers, args.timeout))
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started

    batches = math.ceil(args.messages / args.batch_size) + 1
    for i, events in enumerate(results):
        if len(events) != 1:
            raise SystemExit(f"{mode}: trigger {i} fired {len(events)} events")
        payload = events[0].payload
        if (payload["status"], payload["cancelled"], payload["batches"]) != ("success", args.messages, batches):
            raise SystemExit(f"{mode}: trigger {i} ended with {payload}")
    expected_counts = {"held": args.noise, "cancelled": args.triggers * args.messages}
    if emu.counts() != expected_counts:
        raise SystemExit(f"{mode}: store holds {emu.counts()}, expected {expected_counts}")
    log = emu.request_log()
    if len(log) != args.triggers * batches or any(entry["status"] != 200 for entry in log):
        raise SystemExit(f"{mode}: {len(log)} requests logged, expected {args.triggers * batches} answered 200")
    print(f"... {mode:<10} {wall:7.2f} s wall, {cpu:5.2f} s client CPU", file=sys.stderr, flush=True)
    return wall, cpu, [float(entry["durationMs"]) for entry in log]


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} cores, {model}; Python {platform.python_version()}, {platform.system()} {platform.release()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triggers", type=int, default=100, help="triggers (one label each), max 1000")
    parser.add_argument("--messages", type=int, default=2000, help="messages per label, max 100000")
    parser.add_argument("--batch-size", type=int, default=500, help="messages per request, 1..500")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="delay the emulator adds to each request")
    parser.add_argument("--noise", type=int, default=10_000, help="other messages that must stay held")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each mode (max 10); medians shown")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one trigger may take")
    args = parser.parse_args()
    args.triggers = max(1, min(args.triggers, 1000))
    args.messages = max(1, min(args.messages, 100_000))
    args.repeats = max(1, min(args.repeats, 10))

    faults = FaultConfig(latency_ms=args.latency_ms)
    runs: dict[str, list[tuple[float, float, list[float]]]] = {"concurrent": [], "sequential": []}
    with QStashEmulator(token=TOKEN, subprocess=True, faults=faults, bulk_cancel="legacy") as emu:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {
                "conn_type": "qstash",
                "host": emu.base_url,
                "password": TOKEN,
                "extra": {"timeout": args.timeout, "max_retries": 0},
            }
        )
        for _ in range(args.repeats):
            for mode in ("concurrent", "sequential"):
                runs[mode].append(measure(emu, mode, args))

    batches = math.ceil(args.messages / args.batch_size) + 1
    requests = args.triggers * batches
    wall = {mode: statistics.median(run[0] for run in runs[mode]) for mode in runs}
    cpu = {mode: statistics.median(run[1] for run in runs[mode]) for mode in runs}
    # One at a time, the server's time per request is its own work plus the added latency, no queueing.
    server_ms = statistics.median(ms for run in runs["sequential"] for ms in run[2])
    work_ms = max(server_ms - args.latency_ms, 0.0)
    rows = [
        ("command", shlex.join(["python", *sys.argv])),
        ("date", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("machine", machine()),
        (
            "workload",
            f"{args.triggers} triggers x {args.messages:,} messages (own label), batch {args.batch_size}, "
            f"{batches} requests each = {requests:,}; +{args.noise:,} others held",
        ),
        ("server", f"emulator in a child process, +{args.latency_ms:g} ms per request, SQLite :memory:"),
        ("runs", f"median of {args.repeats}" if args.repeats > 1 else "1"),
    ]
    for mode in ("concurrent", "sequential"):
        rows.append(
            (mode, f"{wall[mode]:.2f} s  ({requests / wall[mode]:,.0f} requests/s, client CPU {cpu[mode]:.2f} s)")
        )
    rows += [
        ("speed-up", f"{wall['sequential'] / wall['concurrent']:.1f}x"),
        (
            "server time",
            f"{server_ms:.1f} ms per request one at a time ({work_ms:.1f} ms of work + latency); the emulator "
            f"does that work one request at a time: about {requests * work_ms / 1000:.2f} s for {requests:,} "
            "requests however many run at once",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"QStashBulkCancelTrigger.run(): {args.triggers} at once vs one after another, one event loop")
    for name, value in rows:
        print(f"| {name:<{width}} | {value}")
    if args.repeats > 1:
        for mode in ("concurrent", "sequential"):
            print(f"| {'':<{width}} | {mode} runs: {', '.join(f'{run[0]:.2f}' for run in runs[mode])} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
