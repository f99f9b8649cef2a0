"""
The Quickstart demo: the example DAGs cancel messages in a local QStash, and you see what went and what stayed.

    make demo                   # sets up .venv first; or, once set up:
    .venv/bin/python scripts/demo.py [--verbose] [--server actions|legacy]

What it does, with no QStash account and nothing leaving the machine:

1. Uses ``AIRFLOW_HOME`` if set, else ``<repo>/.airflow_home``, with ``dags_examples/`` as the DAGs folder,
   and migrates its SQLite metadata DB (a no-op once it is up to date).
2. Starts the QStash emulator in this process, as today's hosted QStash (``--server actions``, the
   default: a filter cancel runs as a background *bulk action* that the task follows to its end) or as a
   server that honours ``count`` (``--server legacy``: synchronous batches), and seeds a few thousand
   pending messages over the last week: ``daily-report`` and ``import-job`` (the scheduled and backfill
   DAGs' labels), ``webhook-retry`` in three queues (for the on-demand DAG), and generated background
   traffic (``label-0`` .. ``label-9``).
3. Runs the example DAGs with ``dag.test()`` against it, pointing ``qstash_default`` at the emulator:
   the scheduled cleanup for yesterday; the backfill cleanup over the three days before today, one run
   per day; the on-demand DAG with a form that selects one label, one queue and a window; and the
   on-demand DAG with a blank form, which must be refused before any request.
4. Prints, per run, what it cancelled (its XCom), what the filter should have cancelled (counted here
   from the emulator's store), the server generation the task met (``mode``) and how many requests it
   made; then each bulk action a task followed, with its progress at every poll as the task logged it;
   then what is left, by label.

Airflow's output (task logs included) goes to ``$AIRFLOW_HOME/demo-logs/demo.log``; ``--verbose`` also
prints it, run by run. The exit code is 0 only if every run did what it should: the first five succeed,
cancel exactly what their filters select and report the server generation the emulator plays (each
bulk action followed until ``FINISHED``, the last one of a run confirming that nothing is left), and the
blank form fails with zero requests.

The demo always talks to the emulator, never to the ``AIRFLOW_CONN_QSTASH_DEFAULT`` of your environment,
so it can never cancel real messages. It ends by printing the one change that points the DAGs at a real
account.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO_ROOT / "dags_examples"
TOKEN = "demo-token"
CONN_ENV = "AIRFLOW_CONN_QSTASH_DEFAULT"
REAL_ACCOUNT_CONN = '{"conn_type": "qstash", "password": "<QSTASH_TOKEN>", "host": "eu-central-1"}'
EXAMPLE_LABELS = ("daily-report", "import-job", "webhook-retry")
#: Messages per second a bulk action cancels in the emulator: slow enough that a task's polls see the
#: action part-way (the largest day, 640 messages, takes about 0.8 s), quick enough for a short demo.
ACTION_RATE = 800.0
#: The connection's ``poll_interval_max`` (seconds): the most the task waits between two polls.
POLL_INTERVAL_MAX = 0.3
#: The mode each server generation makes a task report in its XCom.
EXPECTED_MODE = {"actions": "bulk_action", "legacy": "batched"}
#: The progress line the operator logs on every poll of a bulk action.
POLL_LINE = re.compile(
    r"Bulk action (?P<action_id>\S+) (?P<state>IN_PROGRESS|FINISHED): (?P<processed>\d+) of (?P<total>\d+) processed"
)
#: At most this many per-poll figures are shown for one action; the middle ones are elided.
MAX_SHOWN_POLLS = 8

Message = dict[str, Any]


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# -- the store ----------------------------------------------------------------------------------------


def demo_messages(now: datetime, rng: random.Random) -> list[Message]:
    """The example DAGs' messages over the last week (the emulator adds the background traffic)."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    messages: list[Message] = []

    def add(n: int, start: datetime, end: datetime, url: str, labels: list[str], queues: tuple[str, ...]) -> None:
        span = min(end, now) - start
        for _ in range(n):
            created = start + span * rng.random()
            msg: Message = {"url": url, "labels": labels, "createdAt": ms(created)}
            queue = rng.choice(queues)
            if queue:
                msg["queueName"] = queue
            messages.append(msg)

    for days_ago in range(7):  # reports: one day each, yesterday 50
        day = today - timedelta(days=days_ago)
        add(
            40 + 10 * days_ago,
            day,
            day + timedelta(days=1),
            "https://reports.example.com/daily",
            ["daily-report"],
            ("reports",),
        )
    for days_ago, n in enumerate((120, 180, 640, 410, 230, 300, 260)):  # imports, today's so far included
        day = today - timedelta(days=days_ago)
        add(n, day, day + timedelta(days=1), "https://etl.example.com/import", ["import-job"], ("imports", ""))
    add(
        420,
        now - timedelta(hours=48),
        now,
        "https://hooks.example.com/retry",
        ["webhook-retry"],
        ("emails", "sms", "push"),
    )
    return messages


def matches(msg: Message, labels: set[str], queues: set[str], from_ms: int | None, to_ms: int | None) -> bool:
    """QStash's filter semantics: any of the labels, any of the queues, both date bounds inclusive."""
    created = msg["createdAt"]
    return (
        (not labels or bool(labels & set(msg.get("labels", ()))))
        and (not queues or msg.get("queueName") in queues)
        and (from_ms is None or created >= from_ms)
        and (to_ms is None or created <= to_ms)
    )


def selector(labels: set[str], queues: set[str], start: datetime, end: datetime) -> Callable[[Message], bool]:
    """:func:`matches` for one filter."""
    return lambda msg: matches(msg, labels, queues, ms(start), ms(end))


# -- the runs -----------------------------------------------------------------------------------------


@dataclass
class DemoRun:
    """One ``dag.test()`` and what it should do."""

    dag_id: str
    what: str
    test_kwargs: dict[str, Any]
    #: which held messages the run should cancel; ``None``: the run must fail before any request
    selects: Callable[[Message], bool] | None


@dataclass
class ActionProgress:
    """One bulk action a task followed, as its log tells it: what each poll found."""

    action_id: str
    states: list[str] = field(default_factory=list)
    processed: list[int] = field(default_factory=list)
    total: int = 0

    @property
    def finished(self) -> bool:
        return bool(self.states) and self.states[-1] == "FINISHED"

    def progress(self) -> str:
        """``0 -> 212 -> 430 -> 640 of 640``: processed at each poll, the middle elided when long."""
        shown = [str(n) for n in self.processed]
        if len(shown) > MAX_SHOWN_POLLS:
            shown = [*shown[: MAX_SHOWN_POLLS // 2], "...", *shown[-(MAX_SHOWN_POLLS // 2) :]]
        state = "" if self.finished else f" ({self.states[-1] if self.states else 'never polled'})"
        return f"{' -> '.join(shown)} of {self.total}{state}"


def followed_actions(log: str) -> list[ActionProgress]:
    """The bulk actions a run's log shows being polled, in the order they were first polled."""
    actions: dict[str, ActionProgress] = {}
    for match in POLL_LINE.finditer(log):
        action = actions.setdefault(match["action_id"], ActionProgress(match["action_id"]))
        action.states.append(match["state"])
        action.processed.append(int(match["processed"]))
        action.total = int(match["total"])
    return list(actions.values())


@dataclass
class RunResult:
    run: DemoRun
    state: str
    xcom: dict[str, Any] | None
    expected: int | None
    requests: int
    seconds: float
    actions: list[ActionProgress] = field(default_factory=list)
    log: str = field(default="", repr=False)
    problems: list[str] = field(default_factory=list)


def demo_runs(now: datetime) -> list[DemoRun]:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    day = timedelta(days=1)
    runs = [
        DemoRun(
            "qstash_scheduled_cleanup",
            f"daily-report, {(today - day):%Y-%m-%d} (yesterday)",
            {"logical_date": today},
            selector({"daily-report"}, set(), today - day, today),
        )
    ]
    for days_ago in (3, 2, 1):
        start = today - days_ago * day
        runs.append(
            DemoRun(
                "qstash_backfill_cleanup",
                f"import-job, {start:%Y-%m-%d}",
                {"logical_date": start + day},
                selector({"import-job"}, set(), start, start + day),
            )
        )
    window_from = (now - timedelta(hours=24)).replace(second=0, microsecond=0)
    window_to = (now - timedelta(hours=1)).replace(second=0, microsecond=0)
    form: dict[str, Any] = {"labels": ["webhook-retry"], "queue_names": ["emails"]}
    form |= {"from_date": window_from.isoformat(), "to_date": window_to.isoformat()}
    runs.append(
        DemoRun(
            "qstash_on_demand_cancel",
            "form: webhook-retry in emails, -24 h .. -1 h",
            {"run_conf": form},
            selector({"webhook-retry"}, {"emails"}, window_from, window_to),
        )
    )
    runs.append(DemoRun("qstash_on_demand_cancel", "form: blank", {"run_conf": {}}, None))
    return runs


def run_dag(run: DemoRun, emulator: Any, server: str, log_path: Path) -> RunResult:
    """``dag.test()`` one run; compare what it did with what its filter selects and the server it met."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    held_before = emulator.messages("held")
    expected = None if run.selects is None else sum(1 for m in held_before if run.selects(m))
    emulator.clear_request_log()
    known_actions = {a["actionId"] for a in emulator.bulk_actions()}
    sys.stdout.flush()
    log_offset = log_path.stat().st_size
    # A fresh parse per run: dag.test() resolves the run's conf into the DAG's Param objects, so a DAG
    # object used for a second run would take the first run's form values as its defaults.
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags[run.dag_id]
    for task in dag.tasks:
        task.retries = 0  # a failure shows at once instead of after the DAG's retry delays
    started = time.monotonic()
    dag_run = dag.test(**run.test_kwargs)
    seconds = time.monotonic() - started
    with create_session() as session:
        row = session.scalars(XComModel.get_many(run_id=dag_run.run_id, dag_ids=run.dag_id, key="return_value")).first()
        xcom = None if row is None else XComModel.deserialize_value(row)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log_path, errors="replace") as produced:
        produced.seek(log_offset)
        log = produced.read()
    requests = len(emulator.request_log())
    new_actions = {a["actionId"]: a for a in emulator.bulk_actions() if a["actionId"] not in known_actions}
    result = RunResult(run, str(dag_run.state), xcom, expected, requests, seconds, followed_actions(log), log)
    cancelled_now = len(held_before) - emulator.counts()["held"]
    if run.selects is None:
        if result.state != "failed" or requests or cancelled_now:
            result.problems.append(f"should have been refused: {result.state}, {requests} request(s)")
    elif result.state != "success" or xcom is None:
        result.problems.append(f"run {result.state}")
    else:
        if not xcom["cancelled"] == expected == cancelled_now:
            result.problems.append(f"cancelled {xcom['cancelled']} (store: {cancelled_now}), expected {expected}")
        result.problems.extend(server_problems(result, server, new_actions))
    return result


def server_problems(result: RunResult, server: str, new_actions: dict[str, dict[str, Any]]) -> list[str]:
    """
    What a successful run did that the server generation it met does not explain.

    Against bulk actions: the XCom says ``bulk_action`` and lists the actions the emulator started for this
    run; the task polled each until ``FINISHED``, all of it processed, and the last one found nothing
    (the confirming round). Against a server that honours ``count``: ``batched``, and no bulk action.
    """
    xcom = result.xcom or {}
    problems = []
    if xcom.get("mode") != EXPECTED_MODE[server]:
        problems.append(f"mode {xcom.get('mode')!r}, expected {EXPECTED_MODE[server]!r}")
    action_ids = list(xcom.get("action_ids") or [])
    if server == "legacy":
        if action_ids or new_actions:
            problems.append(f"bulk actions on a batched server: {action_ids or sorted(new_actions)}")
        return problems
    if not action_ids or set(action_ids) != set(new_actions):
        problems.append(f"action_ids {action_ids}, the emulator started {sorted(new_actions)}")
    followed = {a.action_id: a for a in result.actions}
    if [a.action_id for a in result.actions] != action_ids:
        problems.append(f"the log shows polls of {list(followed)}, the XCom lists {action_ids}")
    for action_id in action_ids:
        seen, stored = followed.get(action_id), new_actions.get(action_id)
        if seen is None or not seen.finished or (stored or {}).get("state") != "FINISHED":
            problems.append(f"bulk action {action_id} not followed to FINISHED")
        elif seen.processed[-1] != seen.total:
            problems.append(f"bulk action {action_id} processed {seen.processed[-1]} of {seen.total}")
    if action_ids and action_ids[-1] in followed and followed[action_ids[-1]].total != 0:
        problems.append("the last bulk action still found messages: no confirming round")
    return problems


# -- output -------------------------------------------------------------------------------------------


def table(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def runs_table(results: list[RunResult]) -> str:
    rows = [["#", "DAG", "selects", "state", "cancelled", "expected", "mode", "requests", "seconds", "check"]]
    for n, r in enumerate(results, start=1):
        cancelled = "-" if r.xcom is None else str(r.xcom["cancelled"])
        expected = "refused" if r.expected is None else str(r.expected)
        mode = "-" if r.xcom is None else str(r.xcom.get("mode", "?"))
        check = "FAILED" if r.problems else "ok"
        rows.append(
            [
                str(n),
                r.run.dag_id,
                r.run.what,
                r.state,
                cancelled,
                expected,
                mode,
                str(r.requests),
                f"{r.seconds:.1f}",
                check,
            ]
        )
    text = table(rows, right={0, 4, 5, 7, 8})
    problems = [
        f"  #{n} {r.run.dag_id} ({r.run.what}): {'; '.join(r.problems)}" for n, r in enumerate(results, 1) if r.problems
    ]
    return "\n".join([text, *problems])


def actions_table(results: list[RunResult]) -> str:
    """Every bulk action a run followed: its id, its round, and what each of the task's polls found."""
    rows = [["#", "bulk action", "round", "polls", "processed at each poll"]]
    for n, r in enumerate(results, start=1):
        for i, action in enumerate(r.actions, start=1):
            round_ = "confirm" if i == len(r.actions) and action.total == 0 and i > 1 else str(i)
            rows.append([str(n), action.action_id, round_, str(len(action.states)), action.progress()])
    return table(rows, right={0, 3})


def labels_table(seeded: list[Message], held: list[Message]) -> str:
    background = "label-0 .. label-9 (background)"

    def by_group(messages: list[Message]) -> Counter[str]:
        counts: Counter[str] = Counter()
        for m in messages:
            labels = m.get("labels") or ["(no label)"]
            counts.update(
                {label if label in EXAMPLE_LABELS or label == "(no label)" else background for label in labels}
            )
        return counts

    before, after = by_group(seeded), by_group(held)
    rows = [["label", "seeded", "cancelled", "left held"]]
    for label in (*EXAMPLE_LABELS, background, "(no label)"):
        rows.append([label, str(before[label]), str(before[label] - after[label]), str(after[label])])
    rows.append(["all messages", str(len(seeded)), str(len(seeded) - len(held)), str(len(held))])
    return table(rows, right={1, 2, 3})


# -- main ---------------------------------------------------------------------------------------------


def configure_airflow_env() -> Path:
    """``AIRFLOW_HOME`` and the settings the demo needs; must run before Airflow is imported."""
    home = Path(os.environ.get("AIRFLOW_HOME") or REPO_ROOT / ".airflow_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    return home


def quiet(log_path: Path) -> IO[str]:
    """Send everything written to stdout and stderr (Airflow's logs) to ``log_path``; the console's stream."""
    console = os.fdopen(os.dup(1), "w", buffering=1)
    log = open(log_path, "w", buffering=1)  # noqa: SIM115 - stays open for the life of the process
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    return console


SERVER_NOTES = {
    "actions": (
        "The emulator played today's hosted QStash (--server actions): each run started a background bulk action",
        "(DELETE /v2/messages?async=true), polled it (GET /v2/bulkActions/<id>) until FINISHED, then cancelled once",
        "more with the same filter to confirm nothing was left (the 'confirm' action, 0 of 0). Such a server ignores",
        "batch_size. The XCom's mode (bulk_action | batched) says which generation a task met; --server legacy",
        "replays the demo against a server that honours count.",
    ),
    "legacy": (
        "The emulator played a server that honours count (--server legacy, the 2026-08 API): each run cancelled in",
        "batches of 500 until one cancelled zero, ceil(N / 500) + 1 requests; no bulk actions (mode: batched).",
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="also print Airflow's output, run by run")
    parser.add_argument("--generated", type=int, default=2000, help="background messages (label-0..label-9)")
    parser.add_argument(
        "--server",
        choices=sorted(EXPECTED_MODE),
        default="actions",
        help="the QStash generation the emulator plays: actions (today's hosted QStash, default) or legacy",
    )
    args = parser.parse_args()

    began = time.monotonic()
    home = configure_airflow_env()
    log_path = home / "demo-logs" / "demo.log"
    log_path.parent.mkdir(exist_ok=True)
    console = quiet(log_path)

    def say(text: str = "") -> None:
        print(text, file=console, flush=True)

    say(f"AIRFLOW_HOME={home}")
    say(f"Airflow's output (task logs included): {log_path}")
    if os.environ.get(CONN_ENV):
        say(f"Ignoring {CONN_ENV} from your environment: the demo only talks to its local emulator.")

    from qstash_emulator import InProcessEmulator

    try:
        with InProcessEmulator(token=TOKEN, bulk_cancel=args.server, action_rate=ACTION_RATE) as emulator:
            os.environ[CONN_ENV] = json.dumps(
                {
                    "conn_type": "qstash",
                    "host": emulator.base_url,
                    "password": TOKEN,
                    "extra": {"poll_interval_max": POLL_INTERVAL_MAX},
                }
            )
            now = datetime.now(timezone.utc)
            emulator.seed(args.generated, seed=7)
            emulator.add_messages(demo_messages(now, random.Random(7)))
            seeded = emulator.messages("all")
            say(
                f"QStash emulator at {emulator.base_url} ({args.server} mode): {len(seeded)} pending messages "
                "over the last 30 days."
            )

            say("Migrating the Airflow metadata DB (a no-op when up to date) ...")
            from airflow.utils.db import upgradedb

            upgradedb()

            results = []
            for run in demo_runs(now):
                say(f"Running {run.dag_id}: {run.what} ...")
                results.append(run_dag(run, emulator, args.server, log_path))
                if args.verbose:
                    say(results[-1].log.rstrip())
            held = emulator.messages("held")
    except KeyboardInterrupt:
        say("Interrupted.")
        return 130
    except (Exception, SystemExit):
        say(traceback.format_exc())
        say(f"The demo failed; Airflow's output is in {log_path}")
        return 1

    say()
    say(f"Example DAG runs (dag.test) against the emulator ({args.server} mode):")
    say(runs_table(results))
    say()
    if any(r.actions for r in results):
        say("Bulk actions the runs followed (from each task's log: what every poll found):")
        say(actions_table(results))
        say()
    for line in SERVER_NOTES[args.server]:
        say(line)
    say()
    if any(r.run.selects is None and not r.problems for r in results):
        say("The blank form failed on purpose: with no filter (and cancel_all off) the operator refuses before")
        say("any request, since QStash would cancel every message in the account.")
        say()
    say("Messages by label:")
    say(labels_table(seeded, held))
    failed = [r for r in results if r.problems]
    say()
    elapsed = time.monotonic() - began
    say(f"{len(results) - len(failed)} of {len(results)} runs did what they should; the demo took {elapsed:.0f} s.")
    if failed:
        say(f"What went wrong is in Airflow's output: {log_path}")
    say("To point these DAGs at your QStash account instead, change only the connection:")
    say(f"  export {CONN_ENV}='{REAL_ACCOUNT_CONN}'")
    return 1 if failed else 0


def close_airflow_db() -> None:
    """Close the metadata DB's connections (SQLite checkpoints its write-ahead log), if Airflow was loaded."""
    settings = sys.modules.get("airflow.settings")
    if settings is not None:
        settings.dispose_orm()


if __name__ == "__main__":
    code = main()
    close_airflow_db()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's shutdown: after dag.test() Airflow takes several seconds to wind down.
    os._exit(code)
