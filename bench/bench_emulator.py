"""Benchmark: time of one 500-message bulk cancel on the emulator as the store grows.

Run from the repository root::

    python bench/bench_emulator.py                  # 10k, 100k, 1M stored messages, in-process server
    python bench/bench_emulator.py --subprocess     # server in a child process (no shared GIL)
    python bench/bench_emulator.py --sizes 10000,100000 --repeats 5
    python bench/bench_emulator.py --json docs/_data/bench_emulator.json   # also the figures for the docs' plot

For each size the store is grown with the reproducible seed distribution (same ``now``), then
two kinds of ``DELETE /v2/messages`` are timed, each cancelling 500 messages:

* ``label+window``: ``label=label-K&fromDate=now-25d&toDate=now-5d&count=500`` (K changes per
  repeat so that every repeat finds 500 fresh matches even at 10k messages);
* ``count only``: ``count=500`` and no filter (the oldest 500 held messages).

Reported, as medians: the HTTP round trip seen by a ``requests`` client, the time the server
spent inside the app (``durationMs`` of the emulator's request log), and the thread-CPU time of
the SQLite work (``storeCpuMs``), which is the figure least disturbed by other load on the
machine. The figures should stay flat as the store grows: every statement walks an index in
``createdAt`` order and stops after 500 rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_figures

from qstash_emulator import QStashEmulator

DAY_MS = 86_400_000
NOW_MS = 1_800_000_000_000  # fixed reference so every size has the same distribution
BATCH = 500


def _time_cancel(
    emu: QStashEmulator, session: requests.Session, params: dict[str, str | int]
) -> tuple[float, float, float, int]:
    """One bulk cancel: (client ms, server ms, store CPU ms, cancelled)."""
    emu.clear_request_log()
    started = time.perf_counter()
    response = session.delete(emu.base_url + "/v2/messages", params=params, timeout=120)
    client_ms = (time.perf_counter() - started) * 1000.0
    response.raise_for_status()
    entry = emu.request_log()[-1]
    return client_ms, float(entry["durationMs"]), float(entry["storeCpuMs"]), int(response.json()["cancelled"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated store sizes")
    parser.add_argument("--repeats", type=int, default=5, help="timed cancels per kind and size (max 10)")
    parser.add_argument("--subprocess", action="store_true", help="run the server in a child process")
    parser.add_argument("--json", metavar="PATH", help="also write the table as JSON (bench/plot.py draws it)")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    repeats = max(1, min(args.repeats, 10))

    rows = []
    with QStashEmulator(token="bench", subprocess=args.subprocess, bulk_cancel="legacy") as emu:
        session = requests.Session()
        session.headers.update(emu.auth_headers)
        session.get(emu.base_url + "/v2/queues", timeout=10).raise_for_status()  # warm the connection
        stored = 0
        for size in sizes:
            started = time.perf_counter()
            emu.seed(size - stored, seed=size, now=NOW_MS)
            seed_s = time.perf_counter() - started
            stored = size
            label_runs = [
                _time_cancel(
                    emu,
                    session,
                    {
                        "label": f"label-{k}",
                        "fromDate": NOW_MS - 25 * DAY_MS,
                        "toDate": NOW_MS - 5 * DAY_MS,
                        "count": BATCH,
                    },
                )
                for k in range(repeats)
            ]
            count_runs = [_time_cancel(emu, session, {"count": BATCH}) for _ in range(repeats)]
            rows.append((size, seed_s, label_runs, count_runs))
            print(f"... {size:>9,} stored: seeded in {seed_s:.1f} s", file=sys.stderr, flush=True)

    mode = "subprocess" if args.subprocess else "in-process"
    print(f"Bulk cancel of {BATCH} messages, median of {repeats} ({mode} server, SQLite :memory:)")
    print("times in ms: client = HTTP round trip, server = time in the app, cpu = thread CPU of the SQLite work")
    header = (
        f"{'stored':>10} | {'label+window client':>19} {'server':>7} {'cpu':>6} | "
        f"{'count only client':>17} {'server':>7} {'cpu':>6} | {'cancelled/call':>14} | {'seed':>7}"
    )
    print(header)
    print("-" * len(header))
    figures = []
    for size, seed_s, label_runs, count_runs in rows:
        cancelled = sorted({run[3] for run in label_runs + count_runs})
        medians = [statistics.median(run[i] for run in runs) for runs in (label_runs, count_runs) for i in range(3)]
        print(
            f"{size:>10,} | {medians[0]:>19.2f} {medians[1]:>7.2f} {medians[2]:>6.2f} | "
            f"{medians[3]:>17.2f} {medians[4]:>7.2f} {medians[5]:>6.2f} | "
            f"{','.join(map(str, cancelled)):>14} | {seed_s:>5.1f} s"
        )
        figures.append([size, *(round(m, 2) for m in medians), cancelled, round(seed_s, 2)])
    if args.json:
        columns = ["stored"]
        columns += [
            f"{kind} {what} ms" for kind in ("label+window", "count only") for what in ("client", "server", "cpu")
        ]
        title = f"Bulk cancel of {BATCH} messages as the store grows, median of {repeats} ({mode} server)"
        write_figures(args.json, title, [*columns, "cancelled per call", "seed s"], figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
