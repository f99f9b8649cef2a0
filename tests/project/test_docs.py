"""
The docs set (``docs/``) and the README front page.

The README used to carry everything (623 lines); it is now a front page and every fact-bearing section of the
old README has a home in ``docs/``. :data:`OLD_README_HOMES` pins that: for each old heading, the page that
took it and phrases of the facts it carried. ``test_docs_build`` builds the pages as ``make docs`` does
(warnings are errors); it runs Sphinx, so it is slow.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_qstash.connection_fields import BOOLEAN_EXTRAS, NUMERIC_EXTRAS
from airflow_qstash.filters import BULK_CANCEL_FILTERS, DLQ_FILTERS

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
README = REPO / "README.md"


def text_of(page: str) -> str:
    """A page's text with inline-literal backticks dropped and white space collapsed, for phrase checks."""
    return " ".join((DOCS / page).read_text(encoding="utf-8").replace("`", "").split())


def missing(page: str, phrases: list[str]) -> list[str]:
    text = text_of(page)
    return [phrase for phrase in phrases if " ".join(phrase.split()) not in text]


#: Every fact-bearing section of the old README -> (the docs page that holds it, phrases of its facts).
OLD_README_HOMES: dict[str, tuple[str, list[str]]] = {
    "# airflow-provider-qstash (intro)": (
        "index.rst",
        [
            "DELETE /v2/messages",
            "Since September 2026 hosted QStash runs every filter cancel as a background",
            "older servers cancel at most count (1..500) per call",
            "a working *Test* button",
            "a mapped fan-out per tenant label, a weekly DLQ cleanup and a DLQ replay form",
        ],
    ),
    "## Quickstart": (
        "development.rst",
        [
            "make demo",
            "make test",
            ".airflow_home/demo-logs/demo.log",
            "0 -> 242 -> 490 -> 640 of 640",
            "scripts/demo.py --server legacy",
            "It exits non-zero if any run did otherwise",
            "make unit",
            "make matrix",
            "make live-airflow",
            "make bench",
        ],
    ),
    "## Install": (
        "index.rst",
        [
            "pip install airflow-provider-qstash",
            "apache_airflow_provider entry point",
            "airflow providers list",
            ">=2.11.0",
            ">=1.22.0",
        ],
    ),
    "### Supported Airflow versions": (
        "index.rst",
        [
            "3.3.2",
            "3.2.0",
            "3.1.0",
            "3.0.0",
            "2.11.0",
            "amask_secret",
            "WTForms (the FAB provider)",
            "get_connection_form_widgets",
            "airflow_qstash/compat.py",
        ],
    ),
    "### Supported Airflow versions (matrix timings)": (
        "development.rst",
        [
            "constraints/airflow-<version>.txt",
            "python scripts/matrix.py lock",
            "566 s",
            "392 s warm",
            "3,447 tests",
            "8 min 12 s",
            "2,545 tests per version",
            "21 minutes (2026-11-30, 2 cores)",
        ],
    ),
    "## The `qstash` connection": (
        "connections/qstash.rst",
        [
            "QStash token",
            "Region or base URL",
            "https://qstash.upstash.io",
            "eu-central-1",
            "us-east-1",
            "127.0.0.0/8",
            "GET /v2/queues",
            "[core] test_connection",
            "qstash://:<token>@eu-central-1",
            "airflow connections add qstash_default --conn-type qstash",
            "AirflowFailException",
            "airflow_qstash/connection_fields.py",
            "an extra stored as a JSON string is parsed",
            "Bearer <anything>",
            "No request follows a redirect",
        ],
    ),
    "## Usage": (
        "operators/bulk_cancel.rst",
        [
            "optional_filters",
            "action_timeout=3600",
            "BULK_CANCEL_FILTERS",
            "Values within one filter are ORed",
            "filters are ANDed",
            "falls in two consecutive windows",
            "duration_seconds",
            "BatchCancelled(cancelled)",
            "ActionStarted(action_id)",
            "list_bulk_actions(state=None)",
            "cancel_message(id)",
            "test_connection()",
            # 0.3.0: how a run ends and the new XCom keys.
            "How the run ends",
            "MAX_ROUNDS_WITHOUT_PROGRESS (3)",
            '"rounds": R',
            '"left": L',
            '"unconfirmed": U',
        ],
    ),
    "### Two server generations": (
        "operators/bulk_cancel.rst",
        [
            "--bulk-cancel actions",
            "--bulk-cancel legacy",
            "async=true",
            "GET /v2/bulkActions/{id}",
            "\u00d71.5",
            "confirming round must report zero",
            "ceil(N / batch_size) + 1 requests",
            "This QStash runs filter cancels as background bulk actions",
            "tests/spec/qstash-bulk-actions-overlay.yaml",
        ],
    ),
    "### Safety rules": (
        "safety.rst",
        [
            "No accidental cancel-all.",
            "A value you set is never silently dropped.",
            "Airflow pitfalls are refused, not absorbed.",
            "An id never leaves its path segment.",
            "It ends, on what is left.",
            "Re-running is safe.",
            "The token stays secret",
            "raise AirflowFailException",
        ],
    ),
    "### Safety rules (cancelled count)": (
        "operators/bulk_cancel.rst",
        ["the messages cancelled by the failed attempt are not in the total: QStash does not report them"],
    ),
    "## Dead-letter queue": (
        "operators/dlq.rst",
        [
            "delete_all=True",
            "retry_all=True",
            "max_requests",
            "QStashDLQTrigger",
            "override_retries",
            "override_delay",
            "override_timeout",
            "override_headers",
            "Upstash-",
            "a 404 for entries that vanished",
            # 0.3.0: a filter run is a bulk action on today's API (paging only on an older server), and the
            # page says what each costs and what the confirming round's fresh snapshot acts on.
            "How a run talks to QStash",
            "bulk_action",
            "detection_requests",
            "action_timeout",
            "the confirming round starts a new action, whose snapshot is taken when it starts",
            "ceil(N/100) listing requests plus ceil(N/batch_size) deletes",
            "What is assumed",
            "selected",
            "list_requests",
            "None above 1,000",
            "vanished",
            "dlq_delete",
            "dlq_retry",
            "list_dlq",
            "delete_dlq_message(dlq_id)",
            "qstash_dlq_weekly_cleanup",
            "qstash_dlq_replay",
        ],
    ),
    "## Scaling out: one cleanup per tenant": (
        "operators/bulk_cancel.rst",
        [
            "QStashBulkCancelOperator.partial(...).expand(labels=...)",
            "large_tenants",
            "tests/integration/live/test_celery_live.py",
            "50 mapped cleanups (25 in workers, 25 deferrable)",
            "leaves no process behind",
        ],
    ),
    "## Local QStash emulator": (
        "emulator.rst",
        [
            "Upstash-Flow-Control-Key",
            "upstash/docs@ef0ce438 of 2026-08-21",
            "--action-rate",
            "--sync-wait",
            "kept 7 days",
            "count 1..1000",
            "--fault-seed",
            "--fault-429",
            "--fault-429-daily",
            "--fault-5xx",
            "--fault-drop",
            "--latency-ms",
            "--fault-partial",
            "--fail-always-status",
            "--fault-spurious-412",
            "--fault-start-lost",
            "--fault-action-partial",
            "Numbers out of range answer 400",
            "POST /_emulator/seed",
            "POST /_emulator/messages",
            "GET /_emulator/messages",
            "state (held default, cancelled, all)",
            "GET /_emulator/stats",
            "GET|DELETE /_emulator/requests",
            "--request-log-size N",
            "GET|PUT /_emulator/faults",
            "GET /_emulator/bulk-actions",
            "POST /_emulator/fail",
            "POST /_emulator/dlq",
            "GET /_emulator/dlq",
            "POST /_emulator/dlq/seed",
            "GET /_emulator/dlq/count",
            "POST /_emulator/reset",
            "FaultConfig(rate_5xx=0.1)",
            # 0.3.0: its own distribution, port 8787, the admin API's own description and the counts.
            "pip install 'airflow-provider-qstash[emulator]'",
            "qstash-emulator --token dev-token",
            "python -m qstash_emulator",
            "QStash emulator ready at http://127.0.0.1:8787",
            "--request-log-bytes B",
            "GET /_emulator/openapi.json",
            "GET /_emulator/health",
            "GET /_emulator/message-ids",
            "GET /_emulator/counts",
            "qstash-emulator counts",
            "X-Request-Log-Dropped",
        ],
    ),
    "## Reliability": (
        "reliability.rst",
        [
            "test_soak.py",
            "test_dlq_soak.py",
            "test_bad_input.py",
            "test_secrets.py",
            "test_token_hygiene.py",
            "bench/soak_report.py",
            "800 bulk cancels",
            "723: 448 bulk cancels, 262 polls, 13 listings",
            "192,460",
            "189,962",
            "Bad inputs tried",
            "102: 94 refused",
            "99 s for both test files",
            "89,592",
            "1,440 retried",
            "seconds for 20,000",
        ],
    ),
    "## Benchmarks": (
        "benchmarks.rst",
        [
            "1. Requests per run",
            "2. Client overhead",
            "3. Parse-time cost",
            "4. Memory",
            "5. Throughput with a realistic round trip",
            "6. Emulator at scale",
            "7. Deferrable: 100 triggers on one event loop",
            "8. Bulk actions (today's hosted QStash)",
            "9. Dead-letter queue",
            "10. Mapped fan-out on CeleryExecutor",
            "100,001",
            "1.008",
            "1.034",
            "\u22120.05 MB",
            "9,502",
            "58.7 / 52.2 / 16.1",
            "4.2x",
            "33.8x",
            "308.8",
            "204.5",
        ],
    ),
    "## Design": (
        "design.rst",
        # Module paths are left out on purpose: the design page follows the code's layout as it changes.
        ["sans-IO", "Call (send this) and Sleep (pause this long)", "bench/bench_parse_time.py"],
    ),
}

#: The inputs of the safety page's bad-input table (first column), one per kind the old README named.
BAD_INPUT_ROWS = [
    "no filter, no cancel_all=True",
    "only from_date=0, or only a to_date at or after the task's start",
    'an empty literal (labels="", labels=[])',
    "a template that renders empty",
    "a date bound that renders None",
    'labels="none"',
    "a rendering that is not a list or text",
    "a comma inside one value",
    "message_ids with other filters",
    "dlq_ids with other DLQ filters",
    "hosts or paths on a DLQ operator",
    "an unknown name in optional_filters",
    'schedule="@daily" on Airflow 3',
    "to_date=0",
    "a date before 2000-01-01 other than from_date=0",
    "an empty, white-space-only or dot-segment id",
    'QStashHook().bulk_cancel(labels="")',
    "override_headers with a name that does not start with Upstash-",
    "20,000 message_ids",
    "non-ASCII and reserved characters",
    "a token with a line break, white space, a zero-width or other non-header character",
    "no token, an unknown region, a host that is not a region or a base URL",
    "http:// to a host that is not loopback",
    "an extra that is not a finite number in its range",
    "a 3xx answer",
    "a 429 whose reset is further away than max_rate_limit_wait",
    # 0.3.0 (issues 17 and 21): the base URL, old from_date, quoted renderings, proxies, override headers.
    "a connection host with a path or an empty query or fragment",
    "http://127.0.0.1:<port>/v2/messages#",
    "a host with a path prefix",
    "a host EU-CENTRAL-1",
    "a host http//127.0.0.1:8080 (a missing colon",
    "a host http://locahost:8080",
    "a port nothing listens on, or an unknown host",
    'from_date="2000-01-01" alone',
    "a tojson-quoted label",
    "a filterless bulk request built by hand",
    "a proxy extra that is not http(s)://[user:password@]host:port",
    "HTTP_PROXY/HTTPS_PROXY/ALL_PROXY and the proxy extra set",
    "a .netrc with machine 127.0.0.1",
    'override_headers={"Upstash-Retries": 99999}',
    "an override header with a credential",
]

#: The inputs of the safety page's bad-server table: answers and behaviours the run loops must survive.
BAD_SERVER_ROWS = [
    "a 2xx answer the provider cannot read that echoes the token",
    "Content-Length: 10737418240",
    "an endless answer without Content-Length",
    "a bulk action that finishes with total=3, processed=0",
    "one message that cannot be cancelled",
    "150 old messages fail into the DLQ while a cleanup runs",
    "a DLQ page that answers the same cursor and acts on nothing",
    "max_requests smaller than the DLQ listing",
]


@pytest.mark.parametrize("heading", sorted(OLD_README_HOMES))
def test_every_old_readme_section_has_a_home_in_the_docs(heading: str):
    page, phrases = OLD_README_HOMES[heading]
    assert missing(page, phrases) == [], f"{heading!r} lost facts in docs/{page}"


def test_the_bad_input_table_lists_every_kind_of_refusal():
    safety = text_of("safety.rst")
    table = safety[safety.index("Bad input: what happens") :]
    assert [row for row in BAD_INPUT_ROWS if row not in table] == []


def test_the_bad_server_table_lists_every_answer_the_loops_survive():
    safety = text_of("safety.rst")
    table = safety[safety.index("Bad server answers: what happens") :]
    assert [row for row in BAD_SERVER_ROWS if row not in table] == []


def test_the_safety_rules_say_what_holds_since_0_3_0():
    rules = text_of("safety.rst")
    rules = rules[rules.index("Safety rules") : rules.index("Bad input: what happens")]
    facts = [
        "more than 365 days before the task's start",
        "more than 92 days for DLQ entries",
        "MAX_ROUNDS_WITHOUT_PROGRESS (3)",
        "2xx included",
        "airflow_qstash.exceptions.redact",
        "MAX_ANSWER_BYTES",
        "an http:// base URL or a loopback host never goes through a proxy",
        "show as *** in the XCom overrides",
        "The base URL is scheme, host and port only.",
        "refused with QStashInputError",
        "A DLQ run acts on a snapshot, with one stated gap.",
        "the confirming round's action takes a fresh snapshot",
        'labels="{{ params.label | tojson }}"',
        "render_template_as_native_obj=True",
    ]
    assert [fact for fact in facts if fact not in rules] == []


def test_every_connection_extra_and_filter_is_documented():
    assert missing("connections/qstash.rst", [*NUMERIC_EXTRAS, *BOOLEAN_EXTRAS]) == []
    assert missing("operators/bulk_cancel.rst", list(BULK_CANCEL_FILTERS.names)) == []
    assert missing("operators/dlq.rst", list(DLQ_FILTERS.names)) == []


def test_the_connection_page_gives_the_proxy_extra_host_rules_and_connection_mistakes():
    facts = [
        "* - proxy",
        "http(s)://[user:password@]host:port",
        "Never used for an http:// or a loopback host",
        "scheme://host[:port] only",
        "starts with 'http//', not 'http://'",
        "looks like a typo of 'localhost'",
        "QStashConnectionError",
        "airflow connections test qstash_default",
    ]
    assert missing("connections/qstash.rst", facts) == []


def test_the_connection_page_gives_every_extra_default_and_range():
    text = text_of("connections/qstash.rst")
    for name, extra in NUMERIC_EXTRAS.items():
        row = text[text.index(f"* - {name}") :][:400]
        for number in (extra.default, extra.minimum, extra.maximum):
            assert f"{number:g}" in row, (name, number)


EXAMPLE_INCLUDE = re.compile(r"^\.\. exampleinclude:: /\.\./(?P<path>\S+)\n(?P<options>(?:    :.*\n)+)", re.MULTILINE)


def test_every_exampleinclude_names_a_marker_pair_that_exists_once():
    found = 0
    for page in DOCS.rglob("*.rst"):
        for match in EXAMPLE_INCLUDE.finditer(page.read_text(encoding="utf-8")):
            options = dict(re.findall(r"    :([\w-]+): (.*)", match["options"]))
            source = (REPO / match["path"]).read_text(encoding="utf-8")
            start = re.fullmatch(r"\[START (\w+)\]", options["start-after"])
            assert start and options["end-before"] == f"[END {start[1]}]", (page, options)
            assert source.count(f"# {options['start-after']}\n") == 1, (page, options)
            assert source.count(f"# {options['end-before']}\n") == 1, (page, options)
            assert source.index(options["start-after"]) < source.index(options["end-before"])
            found += 1
    assert found >= 6  # every example DAG is shown on a how-to page


def test_every_example_dag_is_on_a_how_to_page():
    pages = (DOCS / "operators" / "bulk_cancel.rst").read_text() + (DOCS / "operators" / "dlq.rst").read_text()
    for dag_file in sorted((REPO / "dags_examples").glob("*.py")):
        assert f"/../dags_examples/{dag_file.name}" in pages, dag_file.name


def test_every_committed_figure_has_a_drawing_and_a_script():
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import plot
    finally:
        sys.path.remove(str(REPO / "bench"))
    data = sorted((DOCS / "_data").glob("*.json"))
    assert data
    for path in data:
        figures = json.loads(path.read_text(encoding="utf-8"))
        assert path.stem in plot.PLOTS
        assert (REPO / "bench" / f"{path.stem}.py").exists()
        assert f"bench/{path.stem}.py" in figures["command"] and "--json" in figures["command"]
        assert {"title", "date", "machine", "columns", "rows"} <= set(figures)
        assert all(len(row) == len(figures["columns"]) for row in figures["rows"])


# --------------------------------------------------------------------------- the README front page

QUICKSTART = [
    "make demo   # venv + Airflow + provider, start the local emulator with seeded messages, run the example "
    "DAGs, print what was cancelled and what was left",
    "make test   # venv + Airflow + provider, ruff, mypy, the whole suite, and the Airflow version matrix "
    "(what CI runs: .ci/run)",
]


def test_the_readme_is_a_front_page():
    readme = README.read_text(encoding="utf-8")
    lines = readme.splitlines()
    assert all(command in lines for command in QUICKSTART)
    assert "pip install airflow-provider-qstash" in readme
    assert len(lines) <= 120
    headings = [line for line in lines if line.startswith("#")]
    for moved in ("Reliability", "Benchmarks", "Safety rules", "Local QStash emulator", "Design"):
        assert not any(moved in heading for heading in headings), moved


def test_every_readme_link_leads_to_a_file_and_every_guide_is_linked():
    readme = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(((?!https?://)[^)#]+)\)", readme)
    assert targets
    assert [target for target in targets if not (REPO / target).exists()] == []
    guides = [path.relative_to(REPO).as_posix() for path in DOCS.rglob("*.rst") if "_build" not in path.parts]
    assert [guide for guide in guides if guide not in targets and guide != "docs/index.rst"] == [
        "docs/changelog.rst"  # the README links CHANGELOG.md itself
    ]


def test_the_readme_example_dag_builds():
    readme = README.read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    assert 15 <= len(code.splitlines()) <= 25
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    from airflow_qstash.operators.qstash import QStashBulkCancelOperator

    dag = next(value for value in namespace.values() if type(value).__name__ == "DAG")
    (task,) = dag.tasks
    assert isinstance(task, QStashBulkCancelOperator)
    assert task.deferrable is True


# --------------------------------------------------------------------------- the build


@pytest.mark.slow
def test_docs_build_with_warnings_as_errors(tmp_path: Path):
    """What ``make docs`` runs, into a scratch directory: any Sphinx warning fails."""
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    api = (tmp_path / "api.html").read_text(encoding="utf-8")
    for name in (
        "QStashHook",
        "QStashAsyncHook",
        "QStashBulkCancelOperator",
        "QStashDLQDeleteOperator",
        "QStashDLQRetryOperator",
        "QStashBulkCancelTrigger",
        "QStashDLQTrigger",
    ):
        assert re.search(rf'id="airflow_qstash\.[\w.]+\.{name}"', api), name
    assert (tmp_path / "_images" / "bench_emulator.png").exists()
