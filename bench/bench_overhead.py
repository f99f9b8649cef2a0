"""Benchmark 2: the provider's client overhead against a minimal hand-written loop.

Run from the repository root::

    .venv/bin/python bench/bench_overhead.py               # 3 rounds (about 4 minutes on 2 busy cores)
    .venv/bin/python bench/bench_overhead.py --rounds 7
    .venv/bin/python bench/bench_overhead.py --profile     # plus a cProfile of one operator run

Each round cancels N = 200,000 messages four ways, one after the other, against the same emulator (a
child process, so the client has its own GIL), re-seeded identically before every run, with the same
filter (a date window holding every message) and batch size 500, i.e. 401 ``DELETE /v2/messages``:

* ``operator``: ``QStashBulkCancelOperator.execute`` (requests, worker path), logging as a task does;
* ``bare requests``: a ``requests.Session`` loop that sends the same query until a batch cancels zero;
* ``trigger``: ``QStashBulkCancelTrigger.run()`` under ``asyncio.run`` (httpx, triggerer path);
* ``bare httpx``: an ``httpx.AsyncClient`` loop under ``asyncio.run``.

Reported per way: median wall time, client CPU time (this process only; the server's work is not in it)
and wall time minus the server's time from the emulator's request log; then the median over rounds of each
round's ratio provider / bare (target: wall ratio <= 1.10) and the extra milliseconds per request. The
wall ratio is dominated by the emulator's ~10-20 ms per 500-message cancel and by the machine's noise; the
per-request CPU figures show the provider's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

if TYPE_CHECKING:
    from qstash_emulator import QStashEmulator

from _common import (
    ALL_SEEDED,
    BULK_PATH,
    emulator_process,
    header,
    median,
    progress,
    reseed,
    table,
    task_logging,
    ti_context,
    use_connection,
)

BATCH = 500
TARGET = 1.10


def bare_requests(base_url: str, token: str) -> tuple[int, int]:
    """The minimal synchronous loop: (cancelled, requests)."""
    import requests

    params = [("fromDate", str(ALL_SEEDED["from_date"])), ("toDate", str(ALL_SEEDED["to_date"])), ("count", str(BATCH))]
    cancelled = batches = 0
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        while True:
            answer = session.delete(base_url + BULK_PATH, params=params, timeout=30)
            answer.raise_for_status()
            batches += 1
            n = answer.json()["cancelled"]
            cancelled += n
            if n == 0:
                return cancelled, batches


def bare_httpx(base_url: str, token: str) -> tuple[int, int]:
    """The minimal asynchronous loop: (cancelled, requests)."""
    import httpx

    params = [("fromDate", str(ALL_SEEDED["from_date"])), ("toDate", str(ALL_SEEDED["to_date"])), ("count", str(BATCH))]

    async def loop() -> tuple[int, int]:
        cancelled = batches = 0
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as client:
            while True:
                answer = await client.delete(BULK_PATH, params=params, timeout=30)
                answer.raise_for_status()
                batches += 1
                n = answer.json()["cancelled"]
                cancelled += n
                if n == 0:
                    return cancelled, batches

    return asyncio.run(loop())


def operator() -> tuple[int, int]:
    from airflow_qstash.operators.qstash import QStashBulkCancelOperator

    result = QStashBulkCancelOperator(task_id="cancel", batch_size=BATCH, **ALL_SEEDED).execute(ti_context())
    return result["cancelled"], result["batches"]


def trigger() -> tuple[int, int]:
    from airflow_qstash.filters import BulkCancelFilter
    from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger

    bulk_filter = BulkCancelFilter(**ALL_SEEDED).to_dict()
    qstash_trigger = QStashBulkCancelTrigger(qstash_conn_id="qstash_default", bulk_filter=bulk_filter, batch_size=BATCH)

    async def first_event() -> dict[str, Any]:
        async for event in qstash_trigger.run():
            return dict(event.payload)
        raise RuntimeError("the trigger fired no event")

    event = asyncio.run(first_event())
    if event["status"] != "success":
        raise RuntimeError(f"the trigger failed: {event}")
    return event["cancelled"], event["batches"]


def timed(run: Callable[[], tuple[int, int]], n: int, emu: QStashEmulator) -> tuple[float, float, float]:
    """(wall s, client CPU s, wall minus the server's time s) of one run, which must cancel all ``n`` messages."""
    wall, cpu = time.perf_counter(), time.process_time()
    cancelled, batches = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    expected = -(-n // BATCH) + 1
    if (cancelled, batches) != (n, expected):
        raise RuntimeError(f"{run.__name__}: cancelled {cancelled} in {batches} requests, not {n} in {expected}")
    server = sum(e["durationMs"] for e in emu.request_log() if e["path"] == BULK_PATH) / 1000
    return wall, cpu, wall - server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200_000, help="messages cancelled per run (default 200,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the four runs (default 3)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one extra operator run")
    args = parser.parse_args()
    n = args.n

    task_logging()
    header(f"Benchmark 2: client overhead, cancelling N = {n:,} messages in batches of {BATCH}")
    ways: dict[str, Callable[[], tuple[int, int]]] = {}
    samples: dict[str, list[tuple[float, float, float]]] = {}
    with emulator_process(bulk_cancel="legacy") as emu:
        use_connection(emu.base_url)
        ways = {
            "operator": operator,
            "bare requests": lambda: bare_requests(emu.base_url, emu.token),
            "trigger": trigger,
            "bare httpx": lambda: bare_httpx(emu.base_url, emu.token),
        }
        samples = {name: [] for name in ways}
        for run in ways.values():  # warm-up: imports, first connections
            reseed(emu, 2_000, seed=7)
            timed(run, 2_000, emu)
        for round_number in range(1, args.rounds + 1):
            for name, run in ways.items():
                reseed(emu, n, seed=7)
                samples[name].append(timed(run, n, emu))
                progress(f"round {round_number}: {name} {samples[name][-1][0]:.2f} s")
        if args.profile:
            reseed(emu, n, seed=7)
            profile = cProfile.Profile()
            profile.runcall(operator)

    per_run = -(-n // BATCH) + 1  # requests
    rows = []
    for name, runs in samples.items():
        wall, cpu, client = (median(r[i] for r in runs) for i in range(3))
        rows.append((name, wall, n / wall, cpu, cpu / per_run * 1000, client / per_run * 1000, len(runs)))
    table(("way", "wall s", "messages/s", "client CPU s", "CPU ms/req", "wall-server ms/req", "runs"), rows)
    print()
    ratios = []
    for provider, bare in (("operator", "bare requests"), ("trigger", "bare httpx")):
        pairs = list(zip(samples[provider], samples[bare], strict=True))
        wall_ratio = median(p[0] / b[0] for p, b in pairs)
        ratios.append(
            (
                f"{provider} / {bare}",
                wall_ratio,
                median(p[1] / b[1] for p, b in pairs),
                median((p[1] - b[1]) / per_run * 1000 for p, b in pairs),
                median((p[2] - b[2]) / per_run * 1000 for p, b in pairs),
                "yes" if wall_ratio <= TARGET else "NO",
            )
        )
    table(
        ("median over rounds", "wall ratio", "CPU ratio", "extra CPU ms/req", "extra wall-server ms/req", "<= 1.10"),
        ratios,
    )
    print()
    print(
        "wall-server: the run's wall time minus the time the emulator spent answering (its request log), "
        "i.e. client work plus loopback transfer."
    )
    if args.profile:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
        print()
        print("cProfile of one operator run, top 25 by own time:")
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
