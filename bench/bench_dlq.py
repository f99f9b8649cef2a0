"""Benchmark: DLQ delete and retry runs, requests per run and peak memory, by number of DLQ entries.

Run from the repository root::

    .venv/bin/python bench/bench_dlq.py                                   # 10k and 100k, delete and retry
    .venv/bin/python bench/bench_dlq.py --sizes 10000,1000000 --actions delete

The emulator runs in its own process. For each run its DLQ is emptied and seeded (admin bulk seed) with
N generated entries created in the 30 days before a fixed reference time; then a fresh Python process
runs ``QStashDLQDeleteOperator`` (or ``QStashDLQRetryOperator``) over a window that holds all of them and
reports its peak RSS (``getrusage`` ``ru_maxrss``), its RSS just before ``execute``, its time and its
summary. The script checks the outcome against the emulator (DLQ empty; for a retry, N new messages)
and counts the ``/v2/dlq`` requests in the emulator's request log.

Targets: requests per run = ``ceil(N / 100)``, plus one when the server answers a full last page with a
cursor (this emulator answers a cursor only while more entries match, so there is no extra page); and
the peak RSS differs by less than 5 MB between the smallest and the largest N, because the run keeps
counters (and at most 1,000 new message ids), never entry lists.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

if TYPE_CHECKING:
    from qstash_emulator import QStashEmulator

from _common import ALL_SEEDED, NOW_MS, emulator_process, header, median, progress, table, task_logging, ti_context
from _common import use_connection as _use_connection

TARGET_MB = 5.0
PATHS = {"delete": ("DELETE", "/v2/dlq"), "retry": ("POST", "/v2/dlq/retry")}


def child(action: str, n: int, base_url: str) -> None:
    """Run in the fresh process: delete or retry every seeded entry, print the figures as JSON."""
    import psutil

    from airflow_qstash.operators.dlq import QStashDLQDeleteOperator, QStashDLQRetryOperator

    task_logging()
    _use_connection(base_url)
    start, end = ALL_SEEDED["from_date"], ALL_SEEDED["to_date"]
    if action == "delete":
        operator: Any = QStashDLQDeleteOperator(task_id="dlq", batch_size=100, from_date=start, to_date=end)
    else:
        operator = QStashDLQRetryOperator(task_id="dlq", override_retries=0, from_date=start, to_date=end)
    before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    result = operator.execute(ti_context())
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    done = result["deleted"] if action == "delete" else result["retried"]
    print(
        json.dumps({"before": before, "peak": peak, "seconds": seconds, "done": done, "requests": result["requests"]})
    )


def measure(action: str, n: int, emu: QStashEmulator) -> dict[str, float]:
    emu.reset()
    emu.seed_dlq(n, 0, now=NOW_MS)
    held_before = emu.counts()["held"]
    done = subprocess.run(
        [sys.executable, __file__, "--child", action, str(n), emu.base_url], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed:\n{done.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["done"] != n:
        raise RuntimeError(f"{action}: {figures['done']} of {n}")
    if emu.dlq_count() != 0:
        raise RuntimeError(f"{action}: {emu.dlq_count()} DLQ entries left")
    if action == "retry" and emu.counts()["held"] - held_before != n:
        raise RuntimeError(f"retry: {emu.counts()['held'] - held_before} new messages, not {n}")
    method, path = PATHS[action]
    figures["logged"] = sum(1 for e in emu.request_log() if (e["method"], e["path"]) == (method, path))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated N, smallest first")
    parser.add_argument("--actions", default="delete,retry", help="delete, retry or both (default both)")
    parser.add_argument("--runs", type=int, default=1, help="measuring processes per size and action (default 1)")
    parser.add_argument("--child", nargs=3, metavar=("ACTION", "N", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return 0

    sizes = [int(s) for s in args.sizes.split(",")]
    actions = [a.strip() for a in args.actions.split(",") if a.strip()]
    unknown = set(actions) - set(PATHS)
    if unknown:
        parser.error(f"unknown action(s) {sorted(unknown)}; use delete and/or retry")
    header("Benchmark: DLQ delete and retry, requests per run and peak RSS, by number of DLQ entries")
    samples: dict[tuple[str, int], list[dict[str, float]]] = {(a, n): [] for a in actions for n in sizes}
    with emulator_process() as emu:
        for run in range(1, args.runs + 1):
            for action in actions:
                for n in sizes:
                    samples[action, n].append(measure(action, n, emu))
                    last = samples[action, n][-1]
                    progress(
                        f"run {run}: {action} N={n:,}: {last['requests']:.0f} requests, "
                        f"peak {last['peak'] / 2**20:.1f} MiB"
                    )
    mb = 1e6
    rows = []
    verdicts = []
    notes: list[tuple[str, int, int, float]] = []
    for action in actions:
        action_rows = []
        for n in sizes:
            runs = samples[action, n]
            requests = int(median(r["requests"] for r in runs))
            bound = max(1, math.ceil(n / 100))
            action_rows.append(
                (
                    action,
                    n,
                    requests,
                    bound,
                    int(median(r["logged"] for r in runs)),
                    median(r["seconds"] for r in runs),
                    median(r["before"] for r in runs) / mb,
                    median(r["peak"] for r in runs) / mb,
                    median(r["peak"] - r["before"] for r in runs) / mb,
                    len(runs),
                )
            )
            verdicts.append(bound <= requests <= bound + 1)
        difference = action_rows[-1][7] - action_rows[0][7]
        verdicts.append(abs(difference) < TARGET_MB)
        rows += action_rows
        notes.append((action, action_rows[0][1], action_rows[-1][1], difference))
    columns = (
        "action",
        "N",
        "requests",
        "ceil(N/100)",
        "logged",
        "seconds",
        "RSS before MB",
        "peak RSS MB",
        "peak - before MB",
        "runs",
    )
    table(columns, rows)
    print()
    for action, small, big, difference in notes:
        verdict = "met" if abs(difference) < TARGET_MB else "NOT met"
        print(
            f"{action}: peak RSS, N={big:,} minus N={small:,}: {difference:+.2f} MB "
            f"(target < {TARGET_MB:.0f} MB: {verdict})"
        )
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
