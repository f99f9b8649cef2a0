"""Shared fixtures: a ``qstash_default`` connection from an env var, so no metadata DB is needed."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Generator
from typing import Any

import pytest

#: The token every test uses; the secret-hygiene checks scan captured output for it.
TEST_TOKEN = "qstash-test-token-5ecr3t-Do-Not-Log"
FAKE_BASE_URL = "https://qstash.test"

# Fast retries for the whole suite; individual tests override the connection when they need others.
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")


def connection_json(host: str = FAKE_BASE_URL, token: str | None = TEST_TOKEN, **extra: object) -> str:
    """An ``AIRFLOW_CONN_*`` value for a ``qstash`` connection with quick retries."""
    extra = {"max_retries": 3, "backoff_initial": 0, "backoff_max": 0, "timeout": 5, **extra}
    conn: dict[str, object] = {"conn_type": "qstash", "host": host, "extra": extra}
    if token is not None:
        conn["password"] = token
    return json.dumps(conn)


@pytest.fixture
def qstash_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """``qstash_default`` pointing at :data:`FAKE_BASE_URL` (for requests-mock); returns the base URL."""
    monkeypatch.setenv("AIRFLOW_CONN_QSTASH_DEFAULT", connection_json())
    return FAKE_BASE_URL


# --------------------------------------------------------------------------- secrets remembered per process
#
# What a test registers as a secret is forgotten after it: the tokens the provider remembers for
# ``exceptions.redact`` (up to 256, each checked on every later redaction) and the patterns of Airflow's
# secrets masker (one regex over every log record). The input properties generate hundreds of tokens; left
# in place, they made every later test's redactions slower (``make unit`` 43 s -> 60 s once those tests ran
# first). A test that needs a remembered secret registers it itself.

#: The modules that hold Airflow's masker, by Airflow version; only those already imported are touched.
_MASKER_MODULES = (
    "airflow.sdk._shared.secrets_masker.secrets_masker",
    "airflow._shared.secrets_masker.secrets_masker",
    "airflow.utils.log.secrets_masker",
)


def _maskers() -> list[Any]:
    found = (getattr(sys.modules.get(name), "_secrets_masker", None) for name in _MASKER_MODULES)
    return [factory() for factory in found if callable(factory)]


@pytest.fixture(autouse=True)
def _forget_secrets_after_each_test() -> Generator[None, None, None]:
    exceptions = sys.modules.get("airflow_qstash.exceptions")
    remembered = dict(exceptions._remembered) if exceptions is not None else None
    masked = {id(masker): (set(masker.patterns), masker.replacer) for masker in _maskers()}
    yield
    exceptions = sys.modules.get("airflow_qstash.exceptions")
    if exceptions is not None:
        with exceptions._remembered_lock:
            exceptions._remembered.clear()
            exceptions._remembered.update(remembered or {})
    for masker in _maskers():
        patterns, replacer = masked.get(id(masker), (set(), None))
        if masker.patterns != patterns:
            masker.patterns, masker.replacer = patterns, replacer


# --------------------------------------------------------------------------- the unit/slow split
#
# ``slow``: a test that needs a network server (the emulator or a loopback server, even in this process), a
# real Airflow process (dag.test runs, the live stack) or a browser, or that builds and installs the wheel.
# Everything else is a unit test: ``make unit`` runs ``pytest -m "not slow"``. A test is slow when it carries
# one of SLOW_MARKERS, lives under one of SLOW_PATHS, or uses one of SLOW_FIXTURES (directly or through
# another fixture); a test module may also mark itself with ``pytest.mark.slow``.

SLOW_MARKERS = frozenset({"e2e", "airflow_live", "soak"})
SLOW_PATHS = (
    "tests/integration/e2e/",
    "tests/integration/live/",
    "tests/integration/emulator/",
    "tests/unit/hooks/transport/test_loopback.py",
    "tests/unit/hooks/transport/test_dlq_loopback.py",
    "tests/project/test_packaging.py",
)
#: Fixtures that start the emulator or an Airflow child process.
SLOW_FIXTURES = frozenset(
    {"shared_emulator", "e2e_emulator", "dag_runner", "emulator", "leak_env", "fast_server", "slow_server"}
)


def is_slow(item: pytest.Item) -> bool:
    """Whether ``item`` needs a server, a real Airflow process or a browser (see SLOW_PATHS and co.)."""
    path = item.path.relative_to(item.config.rootpath).as_posix()
    return (
        any(item.get_closest_marker(name) for name in SLOW_MARKERS)
        or path.startswith(SLOW_PATHS)
        or not SLOW_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if is_slow(item):
            item.add_marker(pytest.mark.slow)


# --------------------------------------------------------------------------- suite-wide secret scan
#
# Every test's report is scanned for TEST_TOKEN: the output and log records captured in each phase, what
# the test itself read back through capsys/capfd (which never reaches the report), and the failure text.
# A hit fails the test and the token is redacted from what pytest then prints.
# tests/integration/reliability/test_secrets.py proves the scan catches each kind of leak (with pytester).

pytest_plugins = ["pytester"]

_READ_BACK = pytest.StashKey[list[str]]()
_REDACTED = "<TEST_TOKEN>"


def find_secret(texts: dict[str, str], secret: str = TEST_TOKEN) -> list[str]:
    """The names of the texts that contain ``secret``."""
    return [where for where, text in texts.items() if text and secret in text]


@pytest.fixture(autouse=True)
def _keep_output_read_back(request: pytest.FixtureRequest) -> None:
    """Record what a test reads through capsys/capfd, so the scan sees output the report will not carry."""
    reads = request.node.stash.setdefault(_READ_BACK, [])
    for name in ("capsys", "capfd", "capsysbinary", "capfdbinary"):
        if name not in request.fixturenames:
            continue
        capture = request.getfixturevalue(name)
        read = capture.readouterr

        def recording_read(read: Callable[[], Any] = read) -> Any:
            result = read()
            reads.append(f"{result.out!s}\n{result.err!s}")
            return result

        capture.readouterr = recording_read


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    texts = {f"'{name}'": content for name, content in report.sections if name.endswith(f" {report.when}")}
    if report.when == "call":
        read_back: list[str] = item.stash.get(_READ_BACK, [])
        for number, text in enumerate(read_back, 1):
            texts[f"output the test read back ({number})"] = text
    if report.longrepr is not None:
        texts["the failure text"] = report.longreprtext
    leaks = find_secret(texts)
    if leaks:
        failure = report.longreprtext.replace(TEST_TOKEN, _REDACTED) if report.longrepr is not None else ""
        report.outcome = "failed"
        report.longrepr = f"TEST_TOKEN leaked into {', '.join(leaks)} (redacted below).\n{failure}".rstrip()
        report.sections = [(name, text.replace(TEST_TOKEN, _REDACTED)) for name, text in report.sections]
    return report
