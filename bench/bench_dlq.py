"""Benchmark: DLQ delete and retry runs, requests per run and peak memory, by number of DLQ entries, on both
server generations: today's async bulk actions beside the deprecated paging API.

Run from the repository root::

    .venv/bin/python bench/bench_dlq.py                                   # 10k and 100k, delete and retry
    .venv/bin/python bench/bench_dlq.py --sizes 10000,1000000 --actions delete --generations actions
    .venv/bin/python bench/bench_dlq.py --action-rate 20000               # entries/s a bulk action processes

The emulator runs in its own process. For each run its DLQ is emptied and seeded (admin bulk seed) with
N generated entries created in the 30 days before a fixed reference time; then a fresh Python process
runs ``QStashDLQDeleteOperator`` (or ``QStashDLQRetryOperator``) over a window that holds all of them and
reports its peak RSS (``getrusage`` ``ru_maxrss``), its RSS just before ``execute``, its time and its
summary. The script checks the outcome against the emulator (DLQ empty; for a retry, N new messages)
and counts the DLQ and bulk-action requests in the emulator's request log.

Targets, per generation:

* ``actions`` (today's API): one bulk action start, its polls (``GET /v2/bulkActions/{id}``: the pause
  starts at 1 s and grows by 1.5 up to the connection's ``poll_interval_max``, so their number grows with
  the action's duration, N / ``--action-rate``, not with N itself) and one confirming start that selects 0
  (and its one poll): ``2 + polls`` requests; the run holds no ids, so the peak RSS does not grow with N.
* ``legacy`` (an older server: paging): one 404 (the detection), ``ceil(N / 100)`` listing pages (the run
  acts on the set that existed when it started: it lists the matching dlqIds first) plus one delete or
  retry per part of those ids (100 a part, fewer when a part's URL would pass 4,096 characters: at most
  ``ceil(N / 87)`` for ids of 36 characters); the peak RSS grows by less than 5 MB plus
  :data:`BYTES_PER_ID` per entry between the smallest and the largest N (the listed ids, no entry bodies).
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
#: What the run holds per listed entry (its dlqId), as the operator docstrings state it.
BYTES_PER_ID = 130
PATHS = {"delete": ("DELETE", "/v2/dlq"), "retry": ("POST", "/v2/dlq/retry")}
#: Every DLQ or bulk-action path a run may call (the request log counts these).
COUNTED_PREFIXES = ("/v2/dlq", "/v2/bulkActions")
GENERATIONS = ("actions", "legacy")


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
    sent = result["requests"] + result["polls"] + result["detection_requests"]
    print(
        json.dumps(
            {
                "before": before,
                "peak": peak,
                "seconds": seconds,
                "done": done,
                "requests": sent,
                "polls": result["polls"],
                "mode": result["mode"],
            }
        )
    )


def measure(action: str, n: int, emu: QStashEmulator) -> dict[str, Any]:
    emu.reset()
    emu.seed_dlq(n, 0, now=NOW_MS)
    held_before = emu.counts()["held"]
    done = subprocess.run(
        [sys.executable, __file__, "--child", action, str(n), emu.base_url], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["done"] != n:
        raise RuntimeError(f"{action}: {figures['done']} of {n}")
    if emu.dlq_count() != 0:
        raise RuntimeError(f"{action}: {emu.dlq_count()} DLQ entries left")
    if action == "retry" and emu.counts()["held"] - held_before != n:
        raise RuntimeError(f"retry: {emu.counts()['held'] - held_before} new messages, not {n}")
    figures["logged"] = sum(1 for e in emu.request_log() if str(e["path"]).startswith(COUNTED_PREFIXES))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated N, smallest first")
    parser.add_argument("--actions", default="delete,retry", help="delete, retry or both (default both)")
    parser.add_argument("--runs", type=int, default=1, help="measuring processes per size and action (default 1)")
    parser.add_argument("--generations", default="actions,legacy", help="actions, legacy or both (default both)")
    parser.add_argument(
        "--action-rate", type=float, default=2000.0, help="entries/s a bulk action processes (emulator; default 2000)"
    )
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
    generations = [g.strip() for g in args.generations.split(",") if g.strip()]
    if set(generations) - set(GENERATIONS):
        parser.error(f"unknown generation(s) {sorted(set(generations) - set(GENERATIONS))}; use actions and/or legacy")
    header("Benchmark: DLQ delete and retry, requests per run and peak RSS, by number of DLQ entries")
    print(f"bulk action rate (emulator): {args.action_rate:,.0f} entries/s")
    samples: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for generation in generations:
        with emulator_process(bulk_cancel=generation, action_rate=args.action_rate) as emu:
            for run in range(1, args.runs + 1):
                for action in actions:
                    for n in sizes:
                        last = measure(action, n, emu)
                        samples.setdefault((generation, action, n), []).append(last)
                        progress(
                            f"run {run}: {generation} {action} N={n:,}: {last['requests']:.0f} requests "
                            f"({last['mode']}, {last['polls']} polls), {last['seconds']:.1f} s, "
                            f"peak {last['peak'] / 2**20:.1f} MiB"
                        )
    mb = 1e6
    rows = []
    verdicts = []
    notes: list[tuple[str, str, int, int, float, float]] = []
    for generation in generations:
        for action in actions:
            action_rows = []
            for n in sizes:
                runs = samples[generation, action, n]
                requests = int(median(r["requests"] for r in runs))
                paging = 1 + max(1, math.ceil(n / 100)) + math.ceil(n / 100)
                if generation == "actions":
                    expected = f"2 starts + {int(median(r['polls'] for r in runs))} polls"
                    verdicts.append(requests == 2 + int(median(r["polls"] for r in runs)))
                else:
                    expected = f"{paging} (1+2*ceil(N/100))"
                    verdicts.append(paging <= requests <= paging + math.ceil(n / 87) - math.ceil(n / 100) + 1)
                action_rows.append(
                    (
                        generation,
                        action,
                        n,
                        requests,
                        expected,
                        paging,
                        int(median(r["logged"] for r in runs)),
                        median(r["seconds"] for r in runs),
                        median(r["peak"] for r in runs) / mb,
                        median(r["peak"] - r["before"] for r in runs) / mb,
                    )
                )
            difference = action_rows[-1][8] - action_rows[0][8]
            per_entry = 0 if generation == "actions" else BYTES_PER_ID
            allowed = TARGET_MB + per_entry * (action_rows[-1][2] - action_rows[0][2]) / 1e6
            verdicts.append(difference < allowed)
            rows += action_rows
            notes.append((generation, action, action_rows[0][2], action_rows[-1][2], difference, allowed))
    columns = (
        "server",
        "action",
        "N",
        "requests",
        "made of",
        "paging would be",
        "logged",
        "seconds",
        "peak RSS MB",
        "peak - before MB",
    )
    table(columns, rows)
    print()
    for generation, action, small, big, difference, allowed in notes:
        verdict = "met" if difference < allowed else "NOT met"
        print(
            f"{generation} {action}: peak RSS, N={big:,} minus N={small:,}: {difference:+.2f} MB "
            f"(target < {allowed:.1f} MB: {verdict})"
        )
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
