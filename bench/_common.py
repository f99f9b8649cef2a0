"""Shared pieces of the ``bench/bench_*.py`` scripts: the report header, tables, and the emulator process.

Not a benchmark itself (the Makefile runs ``bench/bench_*.py`` only). Every script runs against the local
QStash emulator on loopback; where the client's timing matters the emulator runs in a child process so
client and server do not share a GIL.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qstash_emulator import QStashEmulator

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


def write_figures(path: str | Path, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """
    Write a script's table as JSON for the docs (``bench/plot.py`` draws it): the title, the date, the
    machine and the command as :func:`header` prints them, the column names and the rows.
    """
    figures = {
        "title": title,
        "date": f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "machine": f"{machine()}, Python {sys.version.split()[0]}",
        "command": command(),
        "columns": list(columns),
        "rows": [list(row) for row in rows],
    }
    Path(path).write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")


def progress(message: str) -> None:
    """A progress line on stderr (the table goes to stdout)."""
    print(f"... {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the emulator process


def emulator_process(*, bulk_cancel: str, faults: dict[str, Any] | None = None, **options: Any) -> QStashEmulator:
    """The QStash emulator in a child process (``with emulator_process(bulk_cancel="legacy") as emu:``), driven
    over its admin API.

    The package's own runner is imported here, not at module level: ``bench_memory``'s measuring process
    imports this module and must not load the server's modules.

    :param bulk_cancel: the server generation, always named by the caller: ``"legacy"`` (``count``
        honoured, one synchronous batch per request: what the batched-loop benchmarks measure) or
        ``"actions"`` (today's hosted QStash: background bulk actions).
    :param faults: a ``FaultConfig`` dict (``{"latency_ms": 50}``) or ``None``.
    :param options: more :class:`~qstash_emulator.QStashEmulator` arguments (``request_log_size``,
        ``request_log_bytes``).
    """
    from qstash_emulator import SubprocessEmulator
    from qstash_emulator.faults import FaultConfig

    config = None if faults is None else FaultConfig.from_dict(faults)
    return SubprocessEmulator(TOKEN, faults=config, startup_timeout=60, bulk_cancel=bulk_cancel, **options)


def reseed(emu: QStashEmulator, n: int, seed: int = 0) -> None:
    """Empty the store and the request log, then hold ``n`` generated messages created before ``NOW_MS``."""
    emu.reset()
    if n:
        emu.seed(n, seed, now=NOW_MS)


def bulk_cancels(emu: QStashEmulator) -> int:
    """How many ``DELETE /v2/messages`` requests the emulator's request log holds (all of them: a log that
    dropped entries to keep its bounds would make the count short, so that stops the benchmark)."""
    dropped = emu.request_log_dropped()
    if dropped:
        raise RuntimeError(f"the request log dropped {dropped} entries: raise request_log_size/request_log_bytes")
    return sum(1 for e in emu.request_log() if e["method"] == "DELETE" and e["path"] == BULK_PATH)


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


def label_of(i: int) -> str:
    """The label of the ``i``-th trigger's messages in the trigger benchmarks."""
    return f"bench-{i:03d}"


def load_labelled(
    emu: Any, triggers: int, messages: int, noise: int, from_ms: int, to_ms: int, *, chunk: int = 20_000
) -> None:
    """Empty the store and add ``messages`` per label plus ``noise`` others inside ``[from_ms, to_ms]``, in chunks."""
    emu.reset()
    span = to_ms - from_ms
    pending: list[dict[str, Any]] = []

    def add(label: str, k: int) -> None:
        pending.append({"url": "https://api.example.com/hook", "label": label, "createdAt": from_ms + k * 7919 % span})
        if len(pending) >= chunk:
            emu.add_messages(pending)
            pending.clear()

    for i in range(triggers):
        for k in range(messages):
            add(label_of(i), k)
    for k in range(noise):
        add("noise", k)
    if pending:
        emu.add_messages(pending)
    emu.clear_request_log()
