"""Benchmark 5: messages cancelled per second when every request takes a realistic round trip.

Run from the repository root::

    .venv/bin/python bench/bench_throughput.py                  # 50 ms latency, N = 50,000, 3 rounds (~2 min)
    .venv/bin/python bench/bench_throughput.py --latency-ms 100 -n 100000 --rounds 5

The emulator (a child process) adds ``--latency-ms`` to every ``/v2`` answer (its fault injection's
``latency_ms``). First the round trip of an empty request is measured: a ``DELETE /v2/messages`` that
matches nothing, over a kept-alive ``requests`` session. A batch loop sends one request at a time, so it
can cancel at most ``batch / RTT`` messages per second; a whole job of N also pays the final empty batch,
``N / ((ceil(N / batch) + 1) * RTT)``. Each round re-seeds N messages and cancels them with the operator,
the deferrable trigger and a bare ``requests`` loop (batch 500), interleaved; medians are reported.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BULK_PATH, emulator_process, header, median, progress, reseed, table, task_logging, use_connection
from bench_overhead import BATCH, bare_requests, operator, timed, trigger


def empty_rtts(base_url: str, token: str, samples: int) -> list[float]:
    """Round trips (s) of bulk cancels that match nothing, on one kept-alive session."""
    import requests

    params = [("label", "no-such-label"), ("count", str(BATCH))]
    rtts = []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        session.delete(base_url + BULK_PATH, params=params, timeout=30).raise_for_status()  # connect
        for _ in range(samples):
            started = time.perf_counter()
            answer = session.delete(base_url + BULK_PATH, params=params, timeout=30)
            rtts.append(time.perf_counter() - started)
            if answer.json()["cancelled"] != 0:
                raise RuntimeError("the empty request cancelled something")
    return rtts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="latency the emulator adds (default 50)")
    parser.add_argument("-n", type=int, default=50_000, help="messages cancelled per run (default 50,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three runs (default 3)")
    args = parser.parse_args()
    n = args.n
    requests_per_job = -(-n // BATCH) + 1

    task_logging()
    header(f"Benchmark 5: throughput with {args.latency_ms:g} ms added to every request, batch {BATCH}, N = {n:,}")
    rtts: list[float] = []
    samples: dict[str, list[tuple[float, float, float]]] = {}
    with emulator_process(bulk_cancel="legacy", faults={"latency_ms": args.latency_ms}) as emu:
        use_connection(emu.base_url)
        ways = {
            "operator": operator,
            "trigger": trigger,
            "bare requests": lambda: bare_requests(emu.base_url, emu.token),
        }
        samples = {name: [] for name in ways}
        for round_number in range(1, args.rounds + 1):
            rtts += empty_rtts(emu.base_url, emu.token, 10)
            for name, run in ways.items():
                reseed(emu, n, seed=11)
                samples[name].append(timed(run, n, emu))
                progress(f"round {round_number}: {name} {samples[name][-1][0]:.2f} s")

    rtt = median(rtts)
    bound = BATCH / rtt
    job_bound = n / (requests_per_job * rtt)
    print(f"empty-request RTT: median {rtt * 1000:.1f} ms over {len(rtts)} requests (min {min(rtts) * 1000:.1f} ms)")
    print(
        f"bounds: {BATCH} / RTT = {bound:,.0f} messages/s; with the final empty batch, for N = {n:,}: {job_bound:,.0f}"
    )
    print()
    rows = []
    for name, runs in samples.items():
        wall = median(r[0] for r in runs)
        outside = median(r[2] for r in runs) / requests_per_job * 1000
        per_request = wall / requests_per_job * 1000
        rate = n / wall
        rows.append((name, wall, per_request, per_request - outside, outside, rate, rate / bound, rate / job_bound))
    columns = ("way", "wall s", "ms/req", "server ms/req", "client+wire ms/req", "messages/s", f"of {BATCH}/RTT")
    table((*columns, "of job bound"), rows)
    print()
    print(
        "server ms/req: time inside the emulator (its request log): the added latency plus the SQLite work of a "
        "500-message cancel, which the empty RTT does not include; client+wire: the rest."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
