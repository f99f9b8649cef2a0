"""
``docs/walkthrough.rst`` is a test: its shell blocks and its two DAGs run here, as a reader would run them.

Every ``bash`` block of the page but the ``pip install`` one carries ``:name: walkthrough-<step>``; a block
``walkthrough-<step>-output`` right after one is what that step must print, compared exactly.
:func:`test_the_walkthrough_runs_as_written` runs the steps in page order in a temporary ``AIRFLOW_HOME``
whose DAGs folder holds the DAG code the page shows (the marked part of each file under
``docs/walkthrough/``, what a reader copies), with the page's own ``qstash-emulator`` command as a real
process. The one change made to the page's text is the port: ``8787`` becomes a free port. Each block runs
in a fresh ``bash -euo pipefail`` that starts from the variables the earlier blocks exported, as one
terminal would. Besides the printed outputs, the emulator's admin API pins the effects: exactly the four
``billing`` messages of 04:00-05:00 cancelled, nothing else touched; exactly the 500 and 503 DLQ entries
retried, the 404 one left.

The unit tests check what needs no process: every shell block is run, the install line names this repo's
two distributions, the port is the emulator's default, and the timetable facts the page states about
logical dates hold on the installed Airflow.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pendulum
import pytest
import tomllib

REPO = Path(__file__).resolve().parents[3]
PAGE = REPO / "docs" / "walkthrough.rst"
DAG_FILES = {
    "billing_hourly_cleanup": REPO / "docs" / "walkthrough" / "billing_hourly_cleanup.py",
    "replay_failed_webhooks": REPO / "docs" / "walkthrough" / "replay_failed_webhooks.py",
}
#: The port the page writes; the slow test puts a free one in its place.
PAGE_PORT = "8787"
#: The shell steps in page order (each ``walkthrough-<step>``). ``emulator`` is started as a server.
STEPS = [
    "migrate",
    "emulator",
    "seed",
    "counts-before",
    "connection",
    "connection-db",
    "connection-test",
    "dags-test",
    "counts-hour",
    "counts-all",
    "counts-json",
    "dlq-test",
    "dlq-count",
    "dlq-replayed",
]
#: Steps whose printed output the page shows (``walkthrough-<step>-output``).
WITH_OUTPUT = [
    "counts-before",
    "connection-test",
    "counts-hour",
    "counts-all",
    "counts-json",
    "dlq-count",
    "dlq-replayed",
]
HOUR_START = pendulum.datetime(2025, 12, 5, 4, tz="UTC")
HOUR_END = pendulum.datetime(2025, 12, 5, 5, tz="UTC")

_BLOCK = re.compile(
    r"^\.\. code-block:: (?P<lang>\w+)\n(?P<options>(?:   :[\w-]+:.*\n)*)\n(?P<body>(?:(?:   .*)?\n)+)",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Block:
    lang: str
    name: str | None
    body: str


def page_blocks() -> list[Block]:
    """The page's code blocks in order, bodies dedented."""
    blocks = []
    for match in _BLOCK.finditer(PAGE.read_text(encoding="utf-8")):
        options = dict(re.findall(r"   :([\w-]+):[ ]?(.*)", match["options"]))
        body = "\n".join(line[3:] for line in match["body"].splitlines()).strip("\n")
        blocks.append(Block(match["lang"], options.get("name"), body))
    return blocks


def named_blocks() -> dict[str, Block]:
    return {block.name.removeprefix("walkthrough-"): block for block in page_blocks() if block.name}


def shown_dag_code(dag_id: str) -> str:
    """The part of the DAG file the page shows (between its [START]/[END] markers): what a reader saves."""
    source = DAG_FILES[dag_id].read_text(encoding="utf-8")
    marker = f"walkthrough_{dag_id}"
    return source.split(f"# [START {marker}]\n", 1)[1].split(f"# [END {marker}]\n", 1)[0]


def seeded_payloads() -> list[list[dict[str, Any]]]:
    """The JSON bodies the seed step sends: the held messages, then the DLQ entries."""
    return [json.loads(body) for body in re.findall(r"-d '(.*?)'", named_blocks()["seed"].body, re.DOTALL)]


def utc(ms: int) -> pendulum.DateTime:
    return pendulum.from_timestamp(ms / 1000, tz="UTC")


# --------------------------------------------------------------------------- what the page says (unit)


def test_every_shell_block_is_a_step_and_every_output_follows_its_step():
    blocks = page_blocks()
    shell = [block for block in blocks if block.lang == "bash"]
    unnamed = [block.body for block in shell if block.name is None]
    # The one block not run: installing from PyPI (test_the_install_line_names_this_repos_distributions).
    assert len(unnamed) == 1 and unnamed[0].startswith("pip install ")
    assert [block.name for block in shell if block.name] == [f"walkthrough-{step}" for step in STEPS]
    outputs = [block for block in blocks if block.name and block.name.endswith("-output")]
    assert [block.name for block in outputs] == [f"walkthrough-{step}-output" for step in WITH_OUTPUT]
    for index, block in enumerate(blocks):
        if block.name and block.name.endswith("-output"):
            assert blocks[index - 1].name == block.name.removesuffix("-output"), block.name
    assert {block.lang for block in blocks} == {"bash", "text"}


def test_the_install_line_names_this_repos_distributions():
    (install,) = [block.body for block in page_blocks() if block.lang == "bash" and block.name is None]
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg", encoding="utf-8")
    provider = setup["metadata"]["name"]
    emulator = tomllib.loads((REPO / "emulator" / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
    assert install == f'pip install "apache-airflow==$(airflow version)" {provider} {emulator}'
    # "pip install 'airflow-provider-qstash[emulator]' installs the same pair"
    assert setup["options.extras_require"]["emulator"].split() == [emulator]
    assert f"pip install '{provider}[emulator]'" in PAGE.read_text(encoding="utf-8")


def test_the_port_on_the_page_is_the_emulators_default_and_written_where_the_test_replaces_it():
    from qstash_emulator.cli import DEFAULT_PORT

    assert str(DEFAULT_PORT) == PAGE_PORT
    steps = named_blocks()
    where = {step: block.body.count(PAGE_PORT) for step, block in steps.items() if PAGE_PORT in block.body}
    assert where == {"emulator": 1, "seed": 1, "connection": 1, "connection-db": 1}
    assert steps["emulator"].body == f"qstash-emulator --port {PAGE_PORT} --token dev-token"


def test_the_seeded_times_are_the_ones_the_page_names():
    messages, dlq = seeded_payloads()
    times = {
        label: [utc(m["createdAt"]).format("HH:mm") for m in messages if m["labels"] == [label]]
        for label in ("billing", "marketing")
    }
    assert times == {
        "billing": ["03:50", "04:05", "04:20", "04:40", "04:55", "05:10"],
        "marketing": ["04:10", "04:30"],
    }
    assert {utc(m["createdAt"]).date().isoformat() for m in messages + dlq} == {"2025-12-05"}
    assert [(entry["labels"], entry["responseStatus"]) for entry in dlq] == [
        (["webhooks"], 500),
        (["webhooks"], 503),
        (["webhooks"], 404),
    ]
    text = " ".join(PAGE.read_text(encoding="utf-8").split())
    assert "created at 03:50, 04:05, 04:20, 04:40, 04:55 and 05:10 UTC on 2025-12-05" in text
    assert "two ``marketing`` ones at 04:10 and 04:30" in text


def _dag(dag_id: str) -> Any:
    """The DAG as Airflow parses it from its file (no metadata DB)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(DAG_FILES[dag_id]))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def test_the_logical_date_on_the_page_gives_the_hour_the_page_checks():
    """``dags test`` (dag.test) gives a manual run ``timetable.infer_manual_data_interval(run_after=logical
    date)``; the page's date must give 04:00-05:00, the window its counts commands ask about."""
    from airflow.timetables.interval import CronDataIntervalTimetable

    dag = _dag("billing_hourly_cleanup")
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    (command,) = named_blocks()["dags-test"].body.splitlines()
    assert command.startswith("airflow dags test billing_hourly_cleanup ")
    logical_date = pendulum.parse(command.split()[-1])
    assert isinstance(logical_date, pendulum.DateTime)
    interval = dag.timetable.infer_manual_data_interval(run_after=logical_date)
    assert (interval.start, interval.end) == (HOUR_START, HOUR_END)
    window = f"--from {HOUR_START.format('YYYY-MM-DDTHH:mm:ss')}Z --to {HOUR_END.format('YYYY-MM-DDTHH:mm:ss')}Z"
    assert window in named_blocks()["counts-hour"].body
    assert window in named_blocks()["counts-before"].body


def test_the_logical_date_rules_the_page_states_hold_on_this_airflow():
    """ "logical date 05:00 (or 05:30) gives 04:00-05:00, and 04:00 would give 03:00-04:00 ... The scheduler's
    own run for 04:00-05:00 ... its logical date is the interval's start, 04:00, and it starts after 05:00"."""
    from airflow.timetables.base import DataInterval, TimeRestriction

    timetable = _dag("billing_hourly_cleanup").timetable

    def manual(hour: int, minute: int = 0) -> tuple[pendulum.DateTime, pendulum.DateTime]:
        interval = timetable.infer_manual_data_interval(run_after=pendulum.datetime(2025, 12, 5, hour, minute))
        return interval.start, interval.end

    three = pendulum.datetime(2025, 12, 5, 3, tz="UTC")
    assert manual(5) == manual(5, 30) == (HOUR_START, HOUR_END)
    assert manual(4) == (three, HOUR_START)
    scheduled = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(three, HOUR_START),
        restriction=TimeRestriction(earliest=pendulum.datetime(2025, 12, 1, tz="UTC"), latest=None, catchup=True),
    )
    assert scheduled is not None
    assert (scheduled.data_interval.start, scheduled.data_interval.end) == (HOUR_START, HOUR_END)
    assert scheduled.logical_date == HOUR_START
    assert scheduled.run_after == HOUR_END


# --------------------------------------------------------------------------- running the page (slow)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Terminal:
    """Runs the page's blocks like one terminal: each in a fresh ``bash -euo pipefail`` that first takes the
    variables the earlier blocks exported."""

    def __init__(self, workdir: Path, env: dict[str, str], port: int) -> None:
        self.workdir = workdir
        self.env = env
        self.port = port
        self.exports = workdir / "exports.sh"
        self.exports.write_text("", encoding="utf-8")
        self.steps = named_blocks()
        self.seconds: dict[str, float] = {}
        #: What the last step wrote to stderr (Airflow's own logs go there).
        self.stderr = ""

    def text(self, step: str) -> str:
        """The step's commands with the page's port replaced by the test's (the only change)."""
        return self.steps[step].body.replace(PAGE_PORT, str(self.port))

    def run(self, step: str, timeout: float = 180, unset: tuple[str, ...] = ()) -> str:
        """Run ``step``; its stdout (its stderr: :attr:`stderr`; a failure shows both). The seconds it took go to
        :attr:`seconds`. With ``unset``, the step runs without those variables, in a subshell whose exports
        are not kept."""
        if unset:
            script = f"source {self.exports}\n(\nunset {' '.join(unset)}\n{self.text(step)}\n)\n"
        else:
            script = f"source {self.exports}\n{self.text(step)}\nexport -p > {self.exports}\n"
        started = time.monotonic()
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.seconds[step] = round(time.monotonic() - started, 1)
        self.stderr = done.stderr
        assert done.returncode == 0, f"{step} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
        return done.stdout

    def expected(self, step: str) -> str:
        return self.steps[f"{step}-output"].body

    def check(self, step: str, unset: tuple[str, ...] = ()) -> str:
        """Run ``step`` and compare what it prints with the page's output block, exactly (line ends aside)."""
        out = self.run(step, unset=unset)
        assert [line.rstrip() for line in out.strip("\n").splitlines()] == self.expected(step).splitlines(), step
        return out


@contextlib.contextmanager
def page_emulator(terminal: Terminal, timeout: float = 30) -> Iterator[str]:
    """The page's ``qstash-emulator`` command as a process (own session); yields the line it printed when ready.
    Stopped with SIGTERM (SIGKILL after 10 s) at the end."""
    process = subprocess.Popen(
        ["bash", "-c", "exec " + terminal.text("emulator")],
        cwd=terminal.workdir,
        env=terminal.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        line = ""
        while not line and time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                line = process.stdout.readline()
                if not line:
                    break
        assert line, f"the emulator printed nothing in {timeout} s (exit code {process.poll()})"
        yield line.strip()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _admin(base_url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{base_url}{path}", timeout=30) as answer:
        return json.loads(answer.read())


def _answers(out: str) -> list[Any]:
    """The JSON values ``out`` holds one after another (curl prints no newline after an answer)."""
    decoder, values, index = json.JSONDecoder(), [], 0
    out = out.strip()
    while index < len(out):
        value, index = decoder.raw_decode(out, index)
        values.append(value)
        while index < len(out) and out[index].isspace():
            index += 1
    return values


@pytest.fixture
def terminal(tmp_path: Path) -> Terminal:
    """A terminal in a fresh ``AIRFLOW_HOME`` (SQLite, no example DAGs, none of this process's ``AIRFLOW*``
    variables) whose DAGs folder holds the code the page shows; this repo's provider and emulator."""
    home, dags = tmp_path / "airflow_home", tmp_path / "dags"
    home.mkdir()
    dags.mkdir()
    for dag_id in DAG_FILES:
        (dags / f"{dag_id}.py").write_text(shown_dag_code(dag_id), encoding="utf-8")
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "emulator")]),
    )
    return Terminal(tmp_path, env, _free_port())


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_walkthrough_runs_as_written(terminal: Terminal):
    assert shutil.which("curl"), "the page's seed and check steps use curl"
    base = f"http://127.0.0.1:{terminal.port}"
    started = time.monotonic()

    # 1. Install (already installed here): migrate, and the provider is listed.
    assert "airflow-provider-qstash" in terminal.run("migrate")

    with page_emulator(terminal) as ready:
        # 2. "It prints QStash emulator ready at http://127.0.0.1:8787"
        assert ready == f"QStash emulator ready at {base}"

        # 3. Hold your own messages, exactly those.
        message_ids, dlq_ids = (next(iter(answer.values())) for answer in _answers(terminal.run("seed")))
        messages, dlq = seeded_payloads()
        assert len(message_ids) == len(messages) == 8 and len(dlq_ids) == len(dlq) == 3
        held = _admin(base, "/_emulator/messages?state=all")
        assert [(m["messageId"], m["labels"], m["createdAt"], m["state"]) for m in held] == [
            (mid, m["labels"], m["createdAt"], "held") for mid, m in zip(message_ids, messages, strict=True)
        ]
        terminal.check("counts-before")

        # 4. The connection from the env var alone (nothing stored yet), then stored in the metadata DB and
        #    tested with the env var gone: each way works on its own.
        terminal.run("connection")
        terminal.check("connection-test")
        terminal.run("connection-db")
        terminal.check("connection-test", unset=("AIRFLOW_CONN_QSTASH_DEFAULT",))
        assert "AIRFLOW_CONN_QSTASH_DEFAULT" in terminal.exports.read_text(encoding="utf-8")
        requests = [(r["method"], r["path"], r["status"]) for r in _admin(base, "/_emulator/requests")]
        assert requests == [("GET", "/v2/queues", 200)] * 2

        # 5-6. The DAG the page shows, run for the page's logical date: the window is 04:00-05:00.
        out = terminal.run("dags-test") + terminal.stderr
        # "The task's log names the window it used (from_date=... to_date=...)"
        assert "from_date=2025-12-05T04:00:00.000+00:00 to_date=2025-12-05T05:00:00.000+00:00" in out
        actions = _admin(base, "/_emulator/bulk-actions")
        assert actions and {json.dumps(a["filter"], sort_keys=True) for a in actions} == {
            json.dumps(
                {
                    "fromDate": [str(HOUR_START.int_timestamp * 1000)],
                    "label": ["billing"],
                    "toDate": [str(HOUR_END.int_timestamp * 1000)],
                },
                sort_keys=True,
            )
        }

        # 7. Exactly the billing messages of 04:00-05:00 are cancelled; everything else is held.
        in_hour = {
            mid
            for mid, m in zip(message_ids, messages, strict=True)
            if m["labels"] == ["billing"] and HOUR_START <= utc(m["createdAt"]) <= HOUR_END
        }
        assert len(in_hour) == 4
        assert set(_admin(base, "/_emulator/message-ids?state=cancelled")) == in_hour
        assert set(_admin(base, "/_emulator/message-ids?state=held")) == set(message_ids) - in_hour
        terminal.check("counts-hour")
        terminal.check("counts-all")
        terminal.check("counts-json")

        # 8. The DLQ replay: the 500 and 503 entries retried (new held messages), the 404 one left.
        terminal.run("dlq-test")
        left = _admin(base, "/_emulator/dlq")
        assert [(e["dlqId"], e["responseStatus"]) for e in left] == [(dlq_ids[2], 404)]
        replayed = _admin(base, "/_emulator/messages?label=webhooks&state=all")
        assert len(replayed) == 2
        assert all(m["state"] == "held" and m["maxRetries"] == 3 for m in replayed)
        assert {m["messageId"] for m in replayed}.isdisjoint(message_ids)
        # Today's API: the filter starts an async bulk retry action (and a confirming one that finds nothing
        # left); nothing is deleted, and nothing goes through the deprecated paging routes.
        dlq_calls = [
            (r["method"], r["path"]) for r in _admin(base, "/_emulator/requests") if r["path"].startswith("/v2/dlq")
        ]
        assert dlq_calls and set(dlq_calls) == {("POST", "/v2/dlq/retry/bulk")}
        terminal.check("dlq-count")
        terminal.check("dlq-replayed")
        # The replay touched no billing or marketing message.
        assert set(_admin(base, "/_emulator/message-ids?state=cancelled")) == in_hour

    print(f"walkthrough: {time.monotonic() - started:.1f} s in all; per step {terminal.seconds}")
