"""Shared pieces of the ``bench/bench_*.py`` scripts: the report header, tables, and the emulator process.

Not a benchmark itself (the Makefile runs ``bench/bench_*.py`` only). Every script runs against the local
QStash emulator on loopback; where the client's timing matters the emulator runs in a child process so
client and server do not share a GIL.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import shlex
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TOKEN = "bench-token"
#: Fixed reference time (2027-01-15T08:00Z) for seeded ``createdAt`` values: every run sees the same data.
NOW_MS = 1_800_000_000_000
DAY_MS = 86_400_000
#: A window that holds every seeded message (they are created in the 30 days before ``NOW_MS``).
ALL_SEEDED = {"from_date": NOW_MS - 31 * DAY_MS, "to_date": NOW_MS}
BULK_PATH = "/v2/messages"


# --------------------------------------------------------------------------- report


def machine() -> str:
    """``2 cores, 23.4 GiB RAM, load 3.1`` (load: 1-minute average when the run started)."""
    try:
        import psutil

        memory = psutil.virtual_memory().total
    except ImportError:  # pragma: no cover - psutil is in the test extra
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores, {memory / 2**30:.1f} GiB RAM, load {load:.1f}"


def command() -> str:
    """The command that ran this script, relative to the repository root when possible."""
    return shlex.join([_relative(Path(sys.executable)), _relative(Path(sys.argv[0]).resolve()), *sys.argv[1:]])


def _relative(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def header(title: str) -> None:
    """Print the title, the date, the machine and the command."""
    print(f"== {title}")
    print(f"date     {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"machine  {machine()}, Python {sys.version.split()[0]}")
    print(f"command  {command()}")
    print()


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain, right-aligned text table."""
    text = [[str(c) for c in columns], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in text) for i in range(len(columns))]
    for n, row in enumerate(text):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def progress(message: str) -> None:
    """A progress line on stderr (the table goes to stdout)."""
    print(f"... {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the emulator process

# The emulator in a child process, built from the same public pieces as its CLI, with one difference:
# the request log can be made longer than the default 100,000 entries (the request-count benchmark
# counts up to 100,001 requests in one run). The child exits when its stdin closes, i.e. with the parent.
_CHILD = r"""
import json, sys
from airflow_qstash.emulator.app import create_app
from airflow_qstash.emulator.faults import FaultConfig
from airflow_qstash.emulator.server import READY_PREFIX, ServerThread
from airflow_qstash.emulator.store import MessageStore

cfg = json.loads(sys.argv[1])
store = MessageStore()
faults = FaultConfig.from_dict(cfg["faults"]) if cfg["faults"] is not None else None
app = create_app(store, cfg["token"], faults, request_log_size=cfg["request_log_size"])
server = ServerThread(app, "127.0.0.1", 0)
server.start()
print(READY_PREFIX + server.base_url, flush=True)
sys.stdin.read()
server.stop()
store.close()
"""


class EmulatorProcess:
    """The QStash emulator in a child process (``with EmulatorProcess() as emu:``), driven over its admin API.

    :param faults: a ``FaultConfig`` dict (``{"latency_ms": 50}``) or ``None``.
    :param request_log_size: how many ``/v2`` requests the emulator's request log keeps.
    """

    def __init__(self, *, faults: dict[str, Any] | None = None, request_log_size: int = 100_000) -> None:
        self.token = TOKEN
        self._config = {"token": TOKEN, "faults": faults, "request_log_size": request_log_size}
        self._proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> EmulatorProcess:
        from airflow_qstash.emulator.server import READY_PREFIX

        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(self._config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        lines: queue.Queue[str] = queue.Queue()

        def pump(stream: Any) -> None:
            for line in stream:
                lines.put(line)

        threading.Thread(target=pump, args=(self._proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + 60
        while not self.base_url:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("the emulator process did not start")
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line.startswith(READY_PREFIX):
                self.base_url = line[len(READY_PREFIX) :].strip()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """One call to the emulator's admin API (``/_emulator/...``)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=900) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"admin {method} {path}: {exc.code} {exc.read()!r}") from None

    def reseed(self, n: int, seed: int = 0) -> None:
        """Empty the store and the request log, then hold ``n`` generated messages created before ``NOW_MS``."""
        self.admin("POST", "/_emulator/reset")
        if n:
            self.admin("POST", "/_emulator/seed", {"count": n, "seed": seed, "now": NOW_MS})

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = self.admin("GET", "/_emulator/stats")
        return counts

    def requests(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.admin("GET", "/_emulator/requests")
        return entries

    def clear_requests(self) -> None:
        self.admin("DELETE", "/_emulator/requests")

    def bulk_cancels(self) -> int:
        """How many ``DELETE /v2/messages`` requests the log holds."""
        return sum(1 for e in self.requests() if e["method"] == "DELETE" and e["path"] == BULK_PATH)


# --------------------------------------------------------------------------- Airflow side


def use_connection(base_url: str, **extra: Any) -> None:
    """Point ``qstash_default`` at the emulator (an ``AIRFLOW_CONN_*`` variable: no metadata DB)."""
    os.environ["AIRFLOW_CONN_QSTASH_DEFAULT"] = json.dumps(
        {"conn_type": "qstash", "host": base_url, "password": TOKEN, "extra": extra}
    )


def task_logging() -> None:
    """Log as a task process does (JSON lines to the supervisor), but into /dev/null.

    The operator logs one line per batch; keeping that cost in the measurement is fair, printing it to a
    terminal is not.
    """
    from airflow.sdk.log import configure_logging

    hook = sys.excepthook
    configure_logging(json_output=True, output=open(os.devnull, "wb"), sending_to_supervisor=True)  # noqa: SIM115
    sys.excepthook = hook  # Airflow's would log a crash of the benchmark itself into /dev/null


def ti_context() -> dict[str, Any]:
    """What ``execute`` needs without a metadata DB: a task instance with a start date (``NOW_MS``)."""
    import pendulum

    return {"ti": SimpleNamespace(start_date=pendulum.from_timestamp(NOW_MS / 1000, tz="UTC"))}
