"""
Try the provider by hand in a real Airflow 3, against the local QStash emulator (nothing leaves the machine).

    make live-airflow            # or: .venv/bin/python scripts/live_airflow.py [--port 8080]

Starts the emulator (in this process, seeded with demo messages) and the same Airflow the live tests use
(API server + UI, scheduler, DAG processor, triggerer; SQLite, LocalExecutor, a temporary AIRFLOW_HOME,
the DAGs of ``dags_examples/``, ``qstash_default`` pointing at the emulator), prints the UI's URL, user
and password, and runs until Ctrl-C, which stops every process it started.

The emulator plays today's hosted QStash by default (``--server actions``: a filter cancel runs as a
background bulk action at ``--action-rate`` messages per second, which the task, or the triggerer, follows
with polls; its log shows each poll's progress), or a server that honours ``count`` (``--server legacy``).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import socket
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from qstash_emulator import InProcessEmulator  # noqa: E402
from tests.integration.live.airflow_runtime import LiveAirflow, free_port  # noqa: E402

TOKEN = "local-emulator-token"
#: The connection's ``poll_interval_max`` (seconds): short, so a run's log shows progress often.
POLL_INTERVAL_MAX = 2.0


def demo_messages(now: datetime) -> list[dict[str, object]]:
    """Messages the example DAGs act on: daily ``import-job`` and ``daily-report`` ones, recent ``cleanup-me``."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    messages: list[dict[str, object]] = []
    for days_ago in range(1, 15):
        day = today - timedelta(days=days_ago)
        for hour in (2, 9, 15, 21):
            created = int((day + timedelta(hours=hour)).timestamp() * 1000)
            messages.append({"url": "https://api.example.com/import", "labels": ["import-job"], "createdAt": created})
        created = int((day + timedelta(hours=6)).timestamp() * 1000)
        messages.append(
            {
                "url": "https://hooks.example.com/report",
                "labels": ["daily-report"],
                "queueName": "reports",
                "createdAt": created,
            }
        )
    for minutes_ago in range(10, 300, 10):
        created = int((now - timedelta(minutes=minutes_ago)).timestamp() * 1000)
        label = "cleanup-me" if minutes_ago % 20 else "keep-me"
        messages.append({"url": "https://api.example.com/webhook", "labels": [label], "createdAt": created})
    return messages


def rate(text: str) -> float:
    """``--action-rate``: a finite number of messages per second > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number of messages per second > 0, not {text!r}")
    return value


def port_or_free(port: int) -> int:
    if port:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
        print(f"Port {port} is taken; using a free one.")
    return free_port()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8080, help="Airflow UI/API port (default 8080, else a free one)")
    parser.add_argument("--emulator-port", type=int, default=0, help="emulator port (default: a free one)")
    parser.add_argument("--generated", type=int, default=2000, help="extra generated messages (label-0..label-9)")
    parser.add_argument("--home", type=Path, help="AIRFLOW_HOME to use and keep (default: a temporary one)")
    parser.add_argument(
        "--server",
        choices=("actions", "legacy"),
        default="actions",
        help="the QStash generation the emulator plays: actions (hosted QStash today, default) or legacy",
    )
    parser.add_argument(
        "--action-rate",
        type=rate,
        default=50.0,
        help="messages per second a bulk action cancels (actions mode; default 50, so progress shows in task logs)",
    )
    args = parser.parse_args()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored (`cmd &`)
    home = args.home or Path(tempfile.mkdtemp(prefix="qstash-live-airflow-"))
    emulator = InProcessEmulator(
        token=TOKEN, port=args.emulator_port, bulk_cancel=args.server, action_rate=args.action_rate
    )
    airflow: LiveAirflow | None = None
    try:
        emulator.start()
        emulator.add_messages(demo_messages(datetime.now(timezone.utc)))
        if args.generated:
            emulator.seed(args.generated)
        extra = {"timeout": 30, "poll_interval_max": POLL_INTERVAL_MAX}
        conn = {"conn_type": "qstash", "host": emulator.base_url, "password": TOKEN, "extra": extra}
        airflow = LiveAirflow(
            home,
            connections={"qstash_default": json.dumps(conn)},
            port=port_or_free(args.port),
            keep_home=bool(args.home),
        )
        print(f"Starting Airflow in {home} (component logs in {airflow.log_dir}) ...", flush=True)
        airflow.start()
        counts = emulator.counts()
        mode_line = (
            f"plays today's hosted QStash: bulk actions at {args.action_rate:g} messages/s, listed at "
            f"{emulator.base_url}/_emulator/bulk-actions"
            if args.server == "actions"
            else "plays a server that honours count (--server legacy): synchronous batches"
        )
        print(
            f"""
Airflow is up (started in {airflow.startup_seconds:.0f} s).

  UI:        {airflow.base_url}
  user:      {airflow.username}
  password:  {airflow.password}

  QStash emulator: {emulator.base_url}  (token {TOKEN!r}; connection qstash_default points here)
                   {counts["held"]} held messages; watch them at {emulator.base_url}/_emulator/stats
                   {mode_line}
  DAGs:  qstash_on_demand_cancel[_deferrable]: Trigger, e.g. Labels = cleanup-me
         qstash_backfill_cleanup: Trigger > Backfill over recent days (label import-job)

Press Ctrl-C to stop everything.""",
            flush=True,
        )
        while True:
            time.sleep(1)
            dead = [name for name, proc in airflow.procs.items() if proc.poll() is not None]
            if dead:
                print(f"airflow {', '.join(dead)} exited; see {airflow.log_dir}. Stopping.", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
        return 0
    finally:
        if airflow is not None:
            airflow.stop()
        emulator.stop()
        print("Stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
