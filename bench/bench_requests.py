"""Benchmark 1: how many ``DELETE /v2/messages`` requests the operator makes for N matching messages.

Run from the repository root::

    .venv/bin/python bench/bench_requests.py          # every cell but N=100,000 at batch 1 (about a minute)
    .venv/bin/python bench/bench_requests.py --full   # that cell too: 100,001 requests, several minutes

For each N and batch size the emulator (a child process) is emptied and seeded with N messages, the
operator cancels them all, and the requests are counted in the emulator's request log. The loop stops at
the first batch that cancels zero, so the count must be exactly ``ceil(N / batch) + 1``; the script exits
1 if any cell differs (or if a message is left, or the operator's own count disagrees).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ALL_SEEDED,
    bulk_cancels,
    emulator_process,
    header,
    progress,
    reseed,
    table,
    task_logging,
    ti_context,
    use_connection,
)

SIZES = (0, 1, 499, 500, 501, 100_000)
BATCHES = (1, 100, 500)
#: The one slow cell: 100,001 sequential requests.
SLOW_CELL = (100_000, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="also run N=100,000 at batch 1 (100,001 requests)")
    args = parser.parse_args()

    from airflow_qstash.operators.qstash import QStashBulkCancelOperator

    task_logging()
    header("Benchmark 1: DELETE /v2/messages requests per operator run, against ceil(N / batch) + 1")
    rows = []
    failures = 0
    with emulator_process(bulk_cancel="legacy", request_log_size=200_000, request_log_bytes=2**30) as emu:
        use_connection(emu.base_url)
        for n in SIZES:
            for batch in BATCHES:
                limit = math.ceil(n / batch) + 1
                if (n, batch) == SLOW_CELL and not args.full:
                    rows.append((n, batch, limit, "-", "-", "-", "skipped: slow, use --full"))
                    continue
                reseed(emu, n)
                operator = QStashBulkCancelOperator(task_id="cancel", batch_size=batch, **ALL_SEEDED)
                started = time.perf_counter()
                result = operator.execute(ti_context())
                seconds = time.perf_counter() - started
                made = bulk_cancels(emu)
                held = emu.counts()["held"]
                ok = made == limit == result["batches"] and result["cancelled"] == n and held == 0
                failures += not ok
                verdict = "ok" if ok else f"MISMATCH (operator: {result['batches']} batches, {held} left)"
                rows.append((n, batch, limit, made, result["cancelled"], seconds, verdict))
                progress(f"N={n:,} batch={batch}: {made:,} requests in {seconds:.1f} s")
    table(("N", "batch", "ceil(N/b)+1", "requests", "cancelled", "seconds", "result"), rows)
    print()
    print("all cells equal the limit" if not failures else f"{failures} cell(s) differ from the limit")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
