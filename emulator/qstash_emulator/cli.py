"""Command line of the emulator: ``python -m qstash_emulator``.

Prints ``QStash emulator ready at http://HOST:PORT`` (one line, flushed) once it
answers, then serves until SIGINT or SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from qstash_emulator.faults import FaultConfig

_FAULT_FLAGS: dict[str, str] = {
    # argparse dest -> FaultConfig field
    "fault_429": "rate_429",
    "fault_429_daily": "rate_429_daily",
    "fault_5xx": "rate_5xx",
    "fault_drop": "rate_drop",
    "fault_partial": "rate_partial",
    "latency_ms": "latency_ms",
    "fault_seed": "seed",
    "reset_after_s": "reset_after_s",
    "fail_always_status": "fail_always_status",
    "fault_spurious_412": "rate_spurious_412",
    "fault_start_lost": "rate_start_lost",
    "fault_action_partial": "rate_action_partial",
}


def _positive_int(text: str) -> int:
    from qstash_emulator.query import QueryError, parse_integer

    try:
        value = parse_integer("value", text)
    except QueryError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_warning(host: str) -> str | None:
    """The warning printed when the emulator binds a non-loopback interface, else ``None``."""
    if is_loopback(host):
        return None
    return (
        f"warning: --host {host} is not a loopback address: the admin API under /_emulator/ has no "
        "authentication, so anyone who can reach this port can read, seed, reset and fault the emulator"
    )


def _finite(minimum: float, *, inclusive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, not {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    from qstash_emulator.actions import DEFAULT_ACTION_RATE
    from qstash_emulator.bulk_cancel import BULK_CANCEL_MODES, DEFAULT_SYNC_WAIT
    from qstash_emulator.server import DEFAULT_TOKEN, TOKEN_ENV
    from qstash_emulator.state import DEFAULT_REQUEST_LOG_SIZE

    parser = argparse.ArgumentParser(
        prog="python -m qstash_emulator",
        description="Local emulator of the Upstash QStash API (messages are held, never delivered).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free port)")
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV, DEFAULT_TOKEN),
        help=f"bearer token required on /v2 routes (default: ${TOKEN_ENV} or {DEFAULT_TOKEN!r})",
    )
    parser.add_argument("--db", default=":memory:", help="SQLite file to keep state across restarts")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="pre-load N generated messages")
    parser.add_argument("--seed-random", type=int, default=0, metavar="S", help="seed of the generated messages")
    parser.add_argument(
        "--request-log-size",
        type=_positive_int,
        default=DEFAULT_REQUEST_LOG_SIZE,
        metavar="N",
        help=f"how many /v2 requests the admin API's request log keeps (default {DEFAULT_REQUEST_LOG_SIZE:,})",
    )
    parser.add_argument(
        "--bulk-cancel",
        default="actions",
        choices=BULK_CANCEL_MODES,
        help="server generation: 'actions' (default; hosted QStash since September 2026: filter cancels run as "
        "background bulk actions, count ignored) or 'legacy' (the 2026-08 spec: synchronous, count honoured)",
    )
    parser.add_argument(
        "--action-rate",
        type=_finite(0, inclusive=False),
        default=DEFAULT_ACTION_RATE,
        metavar="N",
        help=f"messages per second a bulk action cancels (default {DEFAULT_ACTION_RATE:g}; actions mode)",
    )
    parser.add_argument(
        "--sync-wait",
        type=_finite(0, inclusive=True),
        default=DEFAULT_SYNC_WAIT,
        metavar="S",
        help=f"seconds a filter cancel without async=true waits for its action before answering 429 "
        f"(default {DEFAULT_SYNC_WAIT:g}; actions mode)",
    )
    faults = parser.add_argument_group("fault injection (on /v2 routes only)")
    faults.add_argument("--fault-429", type=float, metavar="RATE", help="share of 429 (burst limit) answers")
    faults.add_argument("--fault-429-daily", type=float, metavar="RATE", help="share of 429 (daily limit) answers")
    faults.add_argument("--fault-5xx", type=float, metavar="RATE", help="share of 500/503 answers")
    faults.add_argument("--fault-drop", type=float, metavar="RATE", help="share of connections closed unanswered")
    faults.add_argument(
        "--fault-partial", type=float, metavar="RATE", help="share of bulk cancels that stop part-way with a 500"
    )
    faults.add_argument(
        "--fault-spurious-412",
        type=float,
        metavar="RATE",
        help="share of filter cancels answered 412 without starting anything (actions mode)",
    )
    faults.add_argument(
        "--fault-start-lost",
        type=float,
        metavar="RATE",
        help="share of filter cancels that start their action but answer 429 without rate-limit headers (actions mode)",
    )
    faults.add_argument(
        "--fault-action-partial",
        type=float,
        metavar="RATE",
        help="share of bulk actions that finish leaving part of their snapshot un-cancelled (actions mode)",
    )
    faults.add_argument("--latency-ms", type=float, metavar="MS", help="delay added to every /v2 request")
    faults.add_argument("--fault-seed", type=int, metavar="S", help="seed of the fault sequence (default 0)")
    faults.add_argument("--reset-after-s", type=int, metavar="S", help="rate-limit reset headers say now+S (default 1)")
    faults.add_argument("--fail-always-status", type=int, metavar="STATUS", help="answer every /v2 request so")
    faults.add_argument(
        "--faults-json", metavar="JSON", help="a whole FaultConfig as JSON; the flags above override its fields"
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug", "trace"]
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--http", default="auto", choices=["auto", "httptools", "h11"], help=argparse.SUPPRESS)
    return parser


def faults_from_args(args: argparse.Namespace) -> FaultConfig | None:
    """The :class:`FaultConfig` the flags ask for, or ``None`` when no fault flag is given.

    :raises ValueError: on an invalid value.
    """
    data: dict[str, Any] = {}
    if args.faults_json:
        loaded = json.loads(args.faults_json)
        if loaded is not None:
            data.update(loaded)
    for dest, name in _FAULT_FLAGS.items():
        value = getattr(args, dest)
        if value is not None:
            data[name] = value
    return FaultConfig.from_dict(data) if data else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.token.strip():
        parser.error("--token must not be empty or blank (nor QSTASH_EMULATOR_TOKEN when --token is not given)")
    try:
        faults = faults_from_args(args)
    except ValueError as exc:
        parser.error(f"invalid fault configuration: {exc}")
    warning = host_warning(args.host)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)

    from qstash_emulator.app import APP_OPTIONS, open_app
    from qstash_emulator.server import READY_PREFIX, ServerThread

    options = {name: getattr(args, name) for name in APP_OPTIONS}
    app = open_app(args.db, args.token, faults, seed_messages=args.seed, seed_random=args.seed_random, **options)
    state = app.state.emulator
    try:
        runner = ServerThread(
            app,
            args.host,
            args.port,
            log_level=args.log_level,
            access_log=args.access_log,
            http=args.http,
            configure_logging=True,
        )
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        state.close()
        return 1

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        runner.start()
        print(READY_PREFIX + runner.base_url, flush=True)
        while not stop.wait(0.5):
            if not runner.is_alive():
                print("the emulator's server stopped unexpectedly", file=sys.stderr)
                return 1
        return 0
    finally:
        runner.stop()
        state.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
