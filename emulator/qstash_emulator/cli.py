"""Command line of the emulator: ``python -m qstash_emulator``.

Prints ``QStash emulator ready at http://HOST:PORT`` (one line, flushed) once it
answers, then serves until SIGINT or SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import math
import os
import signal
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

from qstash_emulator.faults import FaultConfig

#: The port the emulator listens on unless told otherwise: not 8080, where Airflow's API server listens.
DEFAULT_PORT = 8787

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
    from qstash_emulator.state import DEFAULT_REQUEST_LOG_BYTES, DEFAULT_REQUEST_LOG_SIZE

    parser = argparse.ArgumentParser(
        prog="qstash-emulator",
        description="Local emulator of the Upstash QStash API (messages are held, never delivered). "
        "Its admin API is under /_emulator/ (schema: GET /_emulator/openapi.json). "
        "'qstash-emulator counts --help': a running emulator's messages counted by label.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}, not Airflow's 8080; 0 = any free port)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV, DEFAULT_TOKEN),
        help=f"bearer token required on /v2 routes (default: ${TOKEN_ENV} or {DEFAULT_TOKEN!r})",
    )
    parser.add_argument("--db", default=":memory:", help="SQLite file to keep state across restarts")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="pre-load N generated messages: labels label-0..label-9 (20%% none, 15%% two), queues queue-0..queue-4 "
        "(40%% none), URL groups group-0..group-2, destinations on api.example.com, hooks.example.com and "
        "worker.example.net:8443, createdAt spread evenly over the 30 days before now. To seed your own "
        "messages at chosen times, POST them to /_emulator/messages (schema: GET /_emulator/openapi.json)",
    )
    parser.add_argument(
        "--seed-random", type=int, default=0, metavar="S", help="seed of the generated messages (same S, same messages)"
    )
    parser.add_argument(
        "--request-log-size",
        type=_positive_int,
        default=DEFAULT_REQUEST_LOG_SIZE,
        metavar="N",
        help=f"how many /v2 requests the admin API's request log keeps (default {DEFAULT_REQUEST_LOG_SIZE:,})",
    )
    parser.add_argument(
        "--request-log-bytes",
        type=_positive_int,
        default=DEFAULT_REQUEST_LOG_BYTES,
        metavar="B",
        help=f"how many bytes of entries the request log keeps, the oldest going first (default "
        f"{DEFAULT_REQUEST_LOG_BYTES:,}); requests without the token keep no query",
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


#: Where ``qstash-emulator counts`` asks unless told otherwise.
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


def build_counts_parser() -> argparse.ArgumentParser:
    """The parser of ``qstash-emulator counts``."""
    parser = argparse.ArgumentParser(
        prog="qstash-emulator counts",
        description="Print how many messages a running emulator holds and has cancelled, by label (or queue, or "
        "state), for the messages the filters select: GET /_emulator/counts. E.g. check that a run cancelled "
        "only billing in one hour: qstash-emulator counts --state all --from 2025-12-05T04:00:00Z "
        "--to 2025-12-05T05:00:00Z",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the emulator's base URL (default {DEFAULT_URL})")
    parser.add_argument("--by", default="label", choices=["label", "queue", "state"], help="group by (default label)")
    parser.add_argument(
        "--state", default="all", choices=["held", "cancelled", "all"], help="which messages (default all)"
    )
    parser.add_argument("--label", action="append", default=[], help="only messages with this label (repeatable)")
    parser.add_argument("--queue", action="append", default=[], help="only messages in this queue (repeatable)")
    parser.add_argument(
        "--from", dest="from_", metavar="WHEN", help="created at or after: Unix ms or ISO 8601 with a timezone"
    )
    parser.add_argument("--to", metavar="WHEN", help="created at or before: Unix ms or ISO 8601 with a timezone")
    parser.add_argument("--json", action="store_true", help="print the route's JSON answer instead of a table")
    return parser


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch_counts(url: str, params: Sequence[tuple[str, str]], timeout: float = 30.0) -> dict[str, Any]:
    """``GET {url}/_emulator/counts`` with ``params``: the answer's JSON.

    :raises ValueError: for a URL that is not ``http(s)://host[:port]``, or the emulator's 400 (its message).
    :raises OSError: when the emulator cannot be reached.
    """
    parts = urllib.parse.urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query or parts.fragment:
        raise ValueError(f"--url must be the emulator's base URL such as {DEFAULT_URL}, got {url!r}")
    target = f"{parts.scheme}://{parts.netloc}/_emulator/counts?" + urllib.parse.urlencode(list(params))
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(target, timeout=timeout) as answer:
            data: dict[str, Any] = json.loads(answer.read(10_000_000))
            return data
    except urllib.error.HTTPError as exc:
        text = exc.read(10_000).decode("utf-8", "replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            text = json.loads(text)["error"]
        raise ValueError(f"the emulator answered {exc.code}: {text}") from None


def counts_table(answer: Mapping[str, Any]) -> str:
    """The rows of a ``GET /_emulator/counts`` answer as a text table (what ``make demo`` prints by label)."""
    by = answer["by"]
    none = {"label": "(no label)", "queue": "(no queue)", "state": "(none)"}[by]
    rows = [[by, "held", "cancelled", "total"]]
    for row in answer["counts"]:
        rows.append([none if row[by] is None else str(row[by]), *(str(row[k]) for k in ("held", "cancelled", "total"))])
    total = answer["total"]
    rows.append(["all messages", *(str(total[k]) for k in ("held", "cancelled", "total"))])
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in rows
    )


def counts_main(argv: Sequence[str]) -> int:
    """``qstash-emulator counts``: print the counts table (exit 0), or why not (1: unreachable, 2: refused)."""
    args = build_counts_parser().parse_args(argv)
    params: list[tuple[str, str]] = [("by", args.by), ("state", args.state)]
    params += [("label", v) for v in args.label] + [("queue", v) for v in args.queue]
    params += [(name, v) for name, v in (("from", args.from_), ("to", args.to)) if v is not None]
    try:
        answer = fetch_counts(args.url, params)
    except ValueError as exc:
        print(f"qstash-emulator counts: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        print(
            f"qstash-emulator counts: cannot reach the emulator at {args.url} ({reason}): start it "
            f"(qstash-emulator --port {DEFAULT_PORT}) or pass its --url",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(answer, indent=2) if args.json else counts_table(answer))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM (or, with ``counts`` first, print a running one's counts); returns
    the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["counts"]:
        return counts_main(argv[1:])
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
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
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
