"""Benchmark 8: following bulk actions (today's hosted QStash, the emulator's ``actions`` mode).

Run from the repository root::

    .venv/bin/python bench/bench_actions.py                 # all three parts, about 3 minutes
    .venv/bin/python bench/bench_actions.py --parts a,b     # only the sync runs
    .venv/bin/python bench/bench_actions.py --repeats 3 --triggers 200

Against a bulk-action server a filter cancel starts a background action; the provider polls it until
``FINISHED`` (first pause ``min(1 s, poll_interval_max)``, each next one 1.5 times longer, capped at
``poll_interval_max``), then sends one more cancel that must find nothing (the confirming round). The
emulator runs in a child process at ``--action-rate`` messages per second per action.

(a) **Overhead.** ``QStashBulkCancelOperator.execute`` from task start to done, against the action's own
    duration (``completedAt - createdAt`` from the emulator), for several sizes, action rates and
    ``poll_interval_max``. The overhead splits into *before* (task start to the action's ``createdAt``:
    reading the connection, the start request and the server's snapshot), *wait* (the action's
    ``completedAt`` to the poll that sees it, at most the pause in effect then, itself at most
    ``poll_interval_max``) and *after* (that poll's answer and the confirming round: a few round trips).
    Expected: overhead <= one pause + a few round trips (+ the server's snapshot time).
(b) **Requests per run** (same runs): starts, polls and listings from the emulator's request log, against
    the bound from the poll schedule: 2 starts + (1 + K) polls of the action + 1 poll of the confirming
    one, where K is the fewest pauses that add up to the action's duration. A run above the bound sets
    the exit code.
(c) **100 deferrable tasks on one event loop.** ``QStashBulkCancelTrigger.run()`` x N, each following its
    own action (own label; other messages must stay held), all at once (``asyncio.gather``) and one after
    another, on one event loop, with ``--latency-ms`` added to every request. Each trigger's event and the
    store are checked before a figure is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

if TYPE_CHECKING:
    from qstash_emulator import QStashEmulator

from _common import (
    ALL_SEEDED,
    TOKEN,
    emulator_process,
    header,
    label_of,
    load_labelled,
    median,
    progress,
    reseed,
    table,
    task_logging,
    ti_context,
    use_connection,
)

from airflow_qstash.runs.common import POLL_GROWTH, POLL_INITIAL  # the provider's poll schedule, not a copy

#: (messages, action rate msgs/s) of part (a)/(b): actions of about 1, 10, 2 and 10 seconds.
CELLS = ((2_000, 2_000.0), (20_000, 2_000.0), (20_000, 10_000.0), (100_000, 10_000.0))
POLL_MAXES = (0.5, 2.0, 10.0)
CONN_ID = "qstash_bench_actions"
FROM_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z, part (c)
TO_MS = FROM_MS + 86_400_000 - 1


# --------------------------------------------------------------------------- the poll schedule


def pauses(poll_max: float) -> list[float]:
    """The provider's pauses between polls, long enough to cover any action of this benchmark."""
    out: list[float] = []
    pause = min(POLL_INITIAL, poll_max)
    while sum(out) < 3600:
        out.append(pause)
        pause = min(pause * POLL_GROWTH, poll_max)
    return out


def polls_bound(duration_s: float, poll_max: float) -> int:
    """Polls of one action: the first one right after the start, then one after each pause until the pauses
    cover the action's duration (a poll that late sees it ``FINISHED``)."""
    covered, k = 0.0, 0
    for pause in pauses(poll_max):
        if covered >= duration_s:
            break
        covered += pause
        k += 1
    return 1 + k


def requests_bound(duration_s: float, poll_max: float) -> int:
    """Requests of one run: 2 starts, the action's polls, 1 poll of the (empty) confirming action."""
    return 2 + polls_bound(duration_s, poll_max) + 1


# --------------------------------------------------------------------------- (a) and (b)


def rtt_ms(emu: QStashEmulator, action_id: str, n: int = 20) -> float:
    """Median round trip of one poll (``GET /v2/bulkActions/{id}``) with ``requests``, in ms."""
    import requests

    times = []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        for _ in range(n):
            started = time.perf_counter()
            session.get(f"{emu.base_url}/v2/bulkActions/{action_id}", timeout=10).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return median(times)


def one_run(emu: QStashEmulator, n: int, poll_max: float) -> dict[str, Any]:
    """Seed ``n`` matching messages, run the operator, and read what happened from the emulator."""
    from airflow_qstash.operators.qstash import QStashBulkCancelOperator

    reseed(emu, n)
    use_connection(emu.base_url, poll_interval_max=poll_max)
    operator = QStashBulkCancelOperator(
        task_id="cancel", from_date=ALL_SEEDED["from_date"], to_date=ALL_SEEDED["to_date"]
    )
    context: Any = ti_context()
    started = time.time()
    result = operator.execute(context)
    ended = time.time()
    actions = {a["actionId"]: a for a in emu.bulk_actions()}
    log = sorted(emu.request_log(), key=lambda e: e["time"])
    first, confirming = (actions[i] for i in result["action_ids"])
    if (result["cancelled"], result["mode"], len(actions), confirming["total"]) != (n, "bulk_action", 2, 0):
        raise SystemExit(f"N={n:,}: unexpected run {result} with actions {list(actions.values())}")
    if emu.counts()["held"] != 0:
        raise SystemExit(f"N={n:,}: {emu.counts()['held']} messages left")
    polls = [e for e in log if e["path"] == f"/v2/bulkActions/{first['actionId']}"]
    duration = (first["completedAt"] - first["createdAt"]) / 1000
    seeing = next(e for e in polls if e["time"] * 1000 >= first["completedAt"])
    index = polls.index(seeing)
    return {
        "wall": ended - started,
        "duration": duration,
        "overhead": ended - started - duration,
        "wait": seeing["time"] - first["completedAt"] / 1000,
        "before": first["createdAt"] / 1000 - started,
        "start_server": next(e for e in log if e["path"] == "/v2/messages")["durationMs"] / 1000,
        "after": ended - seeing["time"],
        "pause": seeing["time"] - polls[index - 1]["time"] if index else 0.0,
        "starts": sum(1 for e in log if e["path"] == "/v2/messages"),
        "polls": sum(1 for e in log if e["path"].startswith("/v2/bulkActions/")),
        "listings": sum(1 for e in log if e["path"] == "/v2/bulkActions"),
        "bound": requests_bound(duration, poll_max),
        "action_id": first["actionId"],
    }


def part_ab(args: argparse.Namespace) -> int:
    """Parts (a) and (b); returns how many runs exceeded the request bound."""
    rows_a, rows_b, over = [], [], 0
    rates = sorted({rate for _, rate in CELLS})
    rtts: list[float] = []
    for rate in rates:
        with emulator_process(bulk_cancel="actions", action_rate=rate, sync_wait=1.0) as emu:
            one_run(emu, 100, POLL_MAXES[0])  # warm-up: imports, the connection, the first session
            for n, cell_rate in CELLS:
                if cell_rate != rate:
                    continue
                for poll_max in POLL_MAXES:
                    runs = [one_run(emu, n, poll_max) for _ in range(args.repeats)]
                    rtts.append(rtt_ms(emu, runs[-1]["action_id"]))
                    rtt = rtts[-1] / 1000
                    m = {key: median(r[key] for r in runs) for key in runs[0] if key != "action_id"}
                    rows_a.append(
                        (
                            f"{n:,}",
                            f"{rate:,.0f}",
                            f"{poll_max:g}",
                            m["duration"],
                            m["wall"],
                            m["overhead"],
                            m["pause"],
                            m["wait"],
                            f"{m['before'] * 1000:.0f} ({m['start_server'] * 1000:.0f})",
                            f"{m['after'] * 1000:.0f} = {m['after'] / rtt:.1f} RTT",
                        )
                    )
                    worst = max(r["starts"] + r["polls"] + r["listings"] - r["bound"] for r in runs)
                    over += sum(r["starts"] + r["polls"] + r["listings"] > r["bound"] for r in runs)
                    rows_b.append(
                        (
                            f"{n:,}",
                            f"{rate:,.0f}",
                            f"{poll_max:g}",
                            int(m["starts"]),
                            int(m["polls"]),
                            int(m["listings"]),
                            int(m["starts"] + m["polls"] + m["listings"]),
                            int(m["bound"]),
                            "ok" if worst <= 0 else f"OVER by {worst}",
                        )
                    )
                    progress(
                        f"N={n:,} rate={rate:,.0f}/s poll max {poll_max:g} s: action {m['duration']:.2f} s, "
                        f"task {m['wall']:.2f} s"
                    )
    median_rtt = median(rtts)
    print(f"(a) task start to done against the action's own duration; median of {args.repeats} run(s), seconds")
    table(
        ("N", "msgs/s", "poll max", "action", "task", "overhead", "pause then", "wait", "before ms", "after ms"),
        rows_a,
    )
    print(
        "overhead = task - action = before + wait + after. before: task start to the action's createdAt (in\n"
        "brackets: the start request's whole time in the emulator, mostly the snapshot of the N messages, part\n"
        "of it after createdAt is stamped, so it may exceed before); pause then:\n"
        "the pause before the poll that saw FINISHED; wait: from completedAt to that poll (at most that pause);\n"
        "after: from that poll to done (its answer, the confirming round's start and poll); RTT: one poll's\n"
        f"round trip, median {median_rtt:.1f} ms."
    )
    print()
    print("(b) requests per run against the bound from the poll schedule (2 starts + 1 + K polls + 1 poll)")
    table(("N", "msgs/s", "poll max", "starts", "polls", "listings", "total", "bound", "result"), rows_b)
    print()
    return over


# --------------------------------------------------------------------------- (c)


def load(emu: QStashEmulator, triggers: int, messages: int, noise: int) -> None:
    """Empty the store and add ``messages`` per label plus ``noise`` others."""
    load_labelled(emu, triggers, messages, noise, FROM_MS, TO_MS)


async def drain(trigger: Any, timeout: float) -> list[Any]:
    async def events() -> list[Any]:
        return [event async for event in trigger.run()]

    return await asyncio.wait_for(events(), timeout)


def measure_triggers(emu: QStashEmulator, mode: str, args: argparse.Namespace) -> tuple[float, float, int]:
    """Load, run the triggers (``concurrent`` or ``sequential``), check; (wall s, client CPU s, requests)."""
    from airflow_qstash.filters import BulkCancelFilter
    from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger

    load(emu, args.triggers, args.messages, args.noise)
    triggers = [
        QStashBulkCancelTrigger(
            qstash_conn_id=CONN_ID,
            bulk_filter=BulkCancelFilter.build(labels=[label_of(i)], from_date=FROM_MS, to_date=TO_MS).to_dict(),
            batch_size=500,
        )
        for i in range(args.triggers)
    ]

    async def concurrent() -> list[list[Any]]:
        return list(await asyncio.gather(*(drain(t, args.timeout) for t in triggers)))

    async def sequential() -> list[list[Any]]:
        return [await drain(t, args.timeout) for t in triggers]

    cpu = time.process_time()
    started = time.perf_counter()
    results = asyncio.run(concurrent() if mode == "concurrent" else sequential())
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    for i, events in enumerate(results):
        payload = events[0].payload if len(events) == 1 else {}
        got = (payload.get("status"), payload.get("cancelled"), payload.get("mode"), len(payload.get("action_ids", ())))
        if got != ("success", args.messages, "bulk_action", 2):
            raise SystemExit(f"{mode}: trigger {i} ended with {[e.payload for e in events]}")
    expected = {"held": args.noise, "cancelled": args.triggers * args.messages}
    if emu.counts() != expected:
        raise SystemExit(f"{mode}: store holds {emu.counts()}, expected {expected}")
    actions = emu.bulk_actions()
    if len(actions) != 2 * args.triggers or any(a["state"] != "FINISHED" for a in actions):
        raise SystemExit(f"{mode}: {len(actions)} bulk actions, expected {2 * args.triggers}, all FINISHED")
    progress(f"{mode:<10} {wall:7.2f} s wall, {cpu:5.2f} s client CPU")
    return wall, cpu, len(emu.request_log())


def part_c(args: argparse.Namespace) -> None:
    duration = args.messages / args.trigger_rate
    with emulator_process(
        bulk_cancel="actions",
        action_rate=args.trigger_rate,
        faults={"latency_ms": args.latency_ms},
        request_log_size=200_000,
        request_log_bytes=2**30,  # every poll is counted: none may be dropped
    ) as emu:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {
                "conn_type": "qstash",
                "host": emu.base_url,
                "password": TOKEN,
                "extra": {"timeout": 30, "max_retries": 3, "poll_interval_max": args.trigger_poll_max},
            }
        )
        runs: dict[str, list[tuple[float, float, int]]] = {"concurrent": [], "sequential": []}
        for _ in range(args.repeats):
            for mode in runs:
                runs[mode].append(measure_triggers(emu, mode, args))
    print(
        f"(c) {args.triggers} QStashBulkCancelTrigger.run() on one event loop, each following its own action: "
        f"{args.messages:,} messages at {args.trigger_rate:,.0f}/s (about {duration:.2f} s), poll_interval_max "
        f"{args.trigger_poll_max:g} s, +{args.latency_ms:g} ms per request; {args.noise:,} other messages held"
    )
    rows = []
    for mode, samples in runs.items():
        wall = median(s[0] for s in samples)
        requests = median(s[2] for s in samples)
        rows.append((mode, wall, median(s[1] for s in samples), int(requests), requests / wall, wall / args.triggers))
    table(("run", "wall s", "client CPU s", "requests", "requests/s", "s per task"), rows)
    concurrent, sequential = rows[0][1], rows[1][1]
    print(
        f"speed-up {sequential / concurrent:.1f}x; one task alone: {sequential / args.triggers:.2f} s "
        f"(the action's {duration:.2f} s + the wait for the next poll + the confirming round)"
    )
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="a,b,c", help="which parts to run: a,b (sync runs) and/or c")
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell or mode, medians shown (max 10)")
    parser.add_argument("--triggers", type=int, default=100, help="(c) triggers, max 1000")
    parser.add_argument("--messages", type=int, default=500, help="(c) messages per trigger's label")
    parser.add_argument("--trigger-rate", type=float, default=1000.0, help="(c) action rate, messages/s")
    parser.add_argument("--trigger-poll-max", type=float, default=0.2, help="(c) poll_interval_max, seconds")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="(c) latency added to every request")
    parser.add_argument("--noise", type=int, default=10_000, help="(c) other messages that must stay held")
    parser.add_argument("--timeout", type=float, default=600.0, help="(c) seconds one trigger may take")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or not parts <= {"a", "b", "c"}:
        parser.error("--parts takes a, b and c, comma-separated")
    args.repeats = max(1, min(args.repeats, 10))
    args.triggers = max(1, min(args.triggers, 1000))
    if not (math.isfinite(args.trigger_rate) and args.trigger_rate > 0 and 0.01 <= args.trigger_poll_max <= 600):
        parser.error("--trigger-rate must be > 0 and --trigger-poll-max within 0.01..600")

    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    task_logging()
    header("Benchmark 8: following bulk actions (emulator in actions mode, a child process)")
    over = part_ab(args) if parts & {"a", "b"} else 0
    if "c" in parts:
        part_c(args)
    if over:
        print(f"{over} run(s) sent more requests than the bound")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
