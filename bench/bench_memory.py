"""Benchmark 4: the operator's peak memory does not grow with the number of messages it cancels.

Run from the repository root::

    .venv/bin/python bench/bench_memory.py            # 2 runs per size (about 5 minutes: seeding 1M takes ~1 min)
    .venv/bin/python bench/bench_memory.py --runs 3 --sizes 10000,1000000

The emulator runs in its own process. For each run it is emptied and seeded (admin bulk seed) with N
messages; then a fresh Python process runs ``QStashBulkCancelOperator.execute`` (batch 500) cancelling
all N and reports its peak RSS (``getrusage`` ``ru_maxrss``) and its RSS just before ``execute``. Sizes
are interleaved (small, big, small, big). Target: the peak differs by less than 5 MB between N = 10,000
and N = 1,000,000, because the batch loop keeps counters, never message lists.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

if TYPE_CHECKING:
    from qstash_emulator import QStashEmulator

from _common import (
    ALL_SEEDED,
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

TARGET_MB = 5.0


def child(n: int, base_url: str) -> None:
    """Run in the fresh process: cancel everything, print the figures as JSON."""
    import psutil

    from airflow_qstash.operators.qstash import QStashBulkCancelOperator

    task_logging()
    use_connection(base_url)
    operator = QStashBulkCancelOperator(task_id="cancel", batch_size=500, **ALL_SEEDED)
    before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    result = operator.execute(ti_context())
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({"before": before, "peak": peak, "seconds": seconds, **result}))


def measure(n: int, emu: QStashEmulator) -> dict[str, float]:
    reseed(emu, n)
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(n), emu.base_url], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed:\n{done.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["cancelled"] != n:
        raise RuntimeError(f"cancelled {figures['cancelled']} of {n}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,1000000", help="comma-separated N, smallest first")
    parser.add_argument("--runs", type=int, default=2, help="measuring processes per size (default 2)")
    parser.add_argument("--child", nargs=2, metavar=("N", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1])
        return 0

    sizes = [int(s) for s in args.sizes.split(",")]
    header("Benchmark 4: peak RSS of an operator run, by number of messages cancelled")
    samples: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
    with emulator_process(bulk_cancel="legacy") as emu:
        for run in range(1, args.runs + 1):
            for n in sizes:
                samples[n].append(measure(n, emu))
                progress(f"run {run}: N={n:,} peak {samples[n][-1]['peak'] / 2**20:.1f} MiB")
    mb = 1e6
    rows = []
    for n, runs in samples.items():
        rows.append(
            (
                n,
                int(median(r["batches"] for r in runs)),
                median(r["seconds"] for r in runs),
                median(r["before"] for r in runs) / mb,
                median(r["peak"] for r in runs) / mb,
                median((r["peak"] - r["before"]) for r in runs) / mb,
                len(runs),
            )
        )
    table(("N", "requests", "seconds", "RSS before MB", "peak RSS MB", "peak - before MB", "runs"), rows)
    print()
    small, big = rows[0], rows[-1]
    difference = big[4] - small[4]
    verdict = "met" if abs(difference) < TARGET_MB else "NOT met"
    print(f"peak RSS, N={big[0]:,} minus N={small[0]:,}: {difference:+.2f} MB (target < {TARGET_MB:.0f} MB: {verdict})")
    return 0 if abs(difference) < TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
