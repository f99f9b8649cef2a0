"""
The token never leaves the Authorization header.

* The suite-wide scan in ``tests/conftest.py`` is not vacuous: run with pytester, it fails tests that leak
  the token through stdout, stderr, logging, a failure message, output read back through capsys, and a
  fixture's setup, passes a clean one, and redacts the token from what pytest prints.
* A representative run against each server generation (sync and deferrable, successes, retried faults,
  failures, a refused token, the connection test; against a bulk-action server also polls and listings
  through faults, joins after a lost start answer and after a running action's 412, a start refused with
  nothing to join, and an action followed past ``action_timeout``) produces log lines, exception texts,
  rendered fields, XCom values, trigger serialisations, trigger events and reprs: all are collected and
  none contains the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger
from qstash_emulator import FaultConfig, QStashEmulator
from tests.conftest import TEST_TOKEN, connection_json, find_secret
from tests.integration.reliability.soak_lib import MODES, SOAK_RETRIES, TASK_START_MS, soak_emulator, ti_context
from tests.support.task_logs import capture_task_logs

CONFTEST = Path(__file__).resolve().parents[2] / "conftest.py"

# --------------------------------------------------------------------------- the scan itself


def test_find_secret_names_each_text_that_contains_the_token():
    texts = {"stdout": f"Bearer {TEST_TOKEN}", "log": "clean", "failure": f"x{TEST_TOKEN}x", "empty": ""}
    assert find_secret(texts) == ["stdout", "failure"]
    assert find_secret({"log": "qstash-test-token"}) == []  # a prefix is not the token
    assert find_secret({}) == []


LEAKY_TESTS = f'''
import logging, sys
import pytest

TOKEN = "{TEST_TOKEN}"

@pytest.fixture
def leaky_fixture():
    print("setting up with", TOKEN)
    yield

def test_clean():
    print("nothing secret here")
    logging.getLogger("x").warning("still nothing")

def test_leak_stdout():
    print("Authorization: Bearer " + TOKEN)

def test_leak_stderr():
    print(TOKEN, file=sys.stderr)

def test_leak_logging():
    logging.getLogger("airflow.task").warning("token is %s", TOKEN)

def test_leak_failure_message():
    assert TOKEN == "something else"

def test_leak_read_back_through_capsys(capsys):
    print(TOKEN)
    assert TOKEN in capsys.readouterr().out  # consumed: the report would never show it

def test_leak_read_back_through_capfd(capfd):
    sys.stdout.write(TOKEN)
    sys.stdout.flush()
    capfd.readouterr()

def test_leak_in_setup(leaky_fixture):
    pass
'''


def test_the_suite_wide_scan_fails_every_kind_of_leak_and_redacts_it(pytester: pytest.Pytester):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")

    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 1, result.stdout.str()
    assert outcomes.get("failed") == 6, result.stdout.str()
    assert outcomes.get("errors", outcomes.get("error")) == 1  # the leak in a fixture's setup
    output = result.stdout.str() + result.stderr.str()
    for where in (
        "'Captured stdout call'",
        "'Captured stderr call'",
        "'Captured log call'",
        "the failure text",
        "output the test read back (1)",
        "'Captured stdout setup'",
    ):
        assert f"TEST_TOKEN leaked into {where}" in output or f", {where}" in output, where
    assert "PASSED test_leaky.py::test_clean" in output
    assert TEST_TOKEN not in output, "the token was printed by pytest itself"
    assert "<TEST_TOKEN>" in output


# --------------------------------------------------------------------------- a representative run


class Collected:
    """Every text a run produced, by where it came from."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, value: Any) -> None:
        text = value if isinstance(value, str) else repr(value)
        self.texts.append((where, text))
        if not isinstance(value, str):
            with contextlib.suppress(TypeError):
                self.texts.append((f"{where} (json)", json.dumps(value, default=str)))

    def exception(self, where: str, err: BaseException) -> None:
        self.add(f"{where}: str", str(err))
        self.add(f"{where}: repr", repr(err))
        self.add(f"{where}: traceback", "".join(traceback.format_exception(err)))
        cause = err.__cause__ or err.__context__
        while cause is not None:
            self.add(f"{where}: cause", f"{cause!s} {cause!r}")
            cause = cause.__cause__ or cause.__context__

    def joined(self) -> str:
        return "\n".join(text for _, text in self.texts)


@pytest.fixture(params=MODES)
def leak_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[QStashEmulator, str]]:
    """A server of each generation that accepts the token, and one that refuses it (another token)."""
    mode: str = request.param
    # 2,000 messages/s: a 450-message action is polled a few times (every 20 ms)
    with (
        soak_emulator(mode, action_rate=2000) as good,
        QStashEmulator(token="a-different-token", bulk_cancel=mode) as refusing,
    ):
        monkeypatch.setenv("AIRFLOW_CONN_QSTASH_DEFAULT", connection_json(good.base_url, **SOAK_RETRIES))
        monkeypatch.setenv(
            "AIRFLOW_CONN_QSTASH_FAILING", connection_json(good.base_url, max_retries=2, poll_interval_max=0.02)
        )
        monkeypatch.setenv("AIRFLOW_CONN_QSTASH_REFUSED", connection_json(refusing.base_url))
        yield good, mode


def _messages(n: int) -> list[dict[str, Any]]:
    return [
        {"url": "https://s.example/x", "label": "secret-test", "createdAt": TASK_START_MS - 1 - i} for i in range(n)
    ]


def _operator(**kwargs: Any) -> QStashBulkCancelOperator:
    kwargs.setdefault("labels", "{{ params.labels }}")
    kwargs.setdefault("from_date", "{{ params.since }}")
    kwargs.setdefault("batch_size", 100)
    return QStashBulkCancelOperator(task_id="secret_test", **kwargs)


def _render(op: QStashBulkCancelOperator, out: Collected) -> Any:
    context: Any = {**ti_context(), "params": {"labels": ["secret-test"], "since": "2026-10-01T00:00:00+00:00"}}
    op.render_template_fields(context)
    out.add("rendered fields", {name: getattr(op, name) for name in op.template_fields})
    out.add("operator repr", repr(op))
    return context


def _defer(op: QStashBulkCancelOperator, context: Any, out: Collected) -> QStashBulkCancelTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    out.add("trigger serialize", trigger.serialize())
    out.add("trigger repr", repr(trigger))
    out.add("TaskDeferred", repr(deferred.value))
    return trigger


def _events(trigger: QStashBulkCancelTrigger, out: Collected, **overrides: Any) -> list[Any]:
    """Run the trigger rebuilt from its serialised form (``overrides`` replace some of its arguments)."""

    async def all_events() -> list[Any]:
        return [event async for event in QStashBulkCancelTrigger(**{**trigger.serialize()[1], **overrides}).run()]

    events = asyncio.run(all_events())
    out.add("trigger events", [repr(e) for e in events])
    out.add("trigger event payloads", [e.payload for e in events])
    return events


def _run_deferred(op: QStashBulkCancelOperator, context: Any, out: Collected) -> Any:
    events = _events(_defer(op, context, out), out)
    return op.execute_complete(context, events[0].payload)


def _run(op: QStashBulkCancelOperator, out: Collected) -> Any:
    """Render, then run on the operator's own path (deferrable or not); returns the XCom value."""
    context = _render(op, out)
    return _run_deferred(op, context, out) if op.deferrable else op.execute(context)


def _fails(op: QStashBulkCancelOperator, out: Collected, where: str) -> None:
    """Render, run, and collect the task's failure."""
    with pytest.raises(AirflowException) as failed:
        _run(op, out)
    out.exception(f"{where} ({'deferrable' if op.deferrable else 'sync'})", failed.value)


#: The query the operators of this module send (their rendered filter; to_date pinned to the task's start).
SAME_FILTER = [
    ("label", "secret-test"),
    ("fromDate", "1790812800000"),  # 2026-10-01T00:00:00Z
    ("toDate", str(TASK_START_MS)),
    ("async", "true"),
]


def _bulk_action_runs(good: QStashEmulator, out: Collected) -> None:
    """Polls through faults, joins (a lost start answer, a running action), and the bulk-action errors."""
    # polls and listings through 5xx, drops and 429s; lost start answers joined through the listing
    good.set_faults(
        FaultConfig(
            rate_429=0.1, rate_5xx=0.1, rate_drop=0.05, rate_start_lost=0.5, rate_action_partial=0.5, reset_after_s=0
        )
    )
    for deferrable in (False, True):
        good.add_messages(_messages(450))
        out.add("XCom with joins", _run(_operator(deferrable=deferrable), out))
    good.set_faults(None)
    good.wait_actions_idle(30)
    # a re-run meets the 412 of an action still running with its filter (started here, as by an earlier
    # run), and joins it
    for deferrable in (False, True):
        good.add_messages(_messages(3000))
        started = requests.delete(good.base_url + "/v2/messages", params=SAME_FILTER, headers=good.auth_headers)
        assert started.status_code == 202, started.text
        out.add("XCom after a join", _run(_operator(deferrable=deferrable), out))
    # errors: every start refused with 412 and nothing to join (a filter no earlier run used), on both paths
    good.add_messages([{**message, "label": "secret-412"} for message in _messages(10)])
    good.set_faults(FaultConfig(rate_spurious_412=1.0))
    for deferrable in (False, True):
        op = _operator(qstash_conn_id="qstash_failing", deferrable=deferrable, labels="secret-412")
        _fails(op, out, "412 with nothing to join")
    good.set_faults(None)
    # error: an action followed longer than action_timeout (the trigger's event names the action)
    good.add_messages(_messages(450))
    op = _operator(deferrable=True)
    context = _render(op, out)
    events = _events(_defer(op, context, out), out, action_timeout=0.01)
    with pytest.raises(AirflowException) as timed_out:
        op.execute_complete(context, events[0].payload)
    out.exception("action_timeout (deferrable)", timed_out.value)
    good.wait_actions_idle(30)


@pytest.mark.slow
def test_a_representative_run_never_shows_the_token(
    leak_env: tuple[QStashEmulator, str], caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture
):
    good, mode = leak_env
    caplog.set_level(logging.DEBUG)
    out = Collected()
    faults = FaultConfig(rate_429=0.1, rate_5xx=0.1, rate_drop=0.05, reset_after_s=0, seed=11)
    with capture_task_logs() as struct_logs:
        # success through retried faults, on both paths
        good.set_faults(faults)
        for deferrable in (False, True):
            good.add_messages(_messages(450))
            out.add(f"XCom ({'deferrable' if deferrable else 'sync'})", _run(_operator(deferrable=deferrable), out))
        # failures: retries exhausted, on both paths
        good.add_messages(_messages(10))
        good.set_faults(FaultConfig(fail_always_status=503))
        for deferrable in (False, True):
            _fails(_operator(qstash_conn_id="qstash_failing", deferrable=deferrable), out, "exhausted retries")
        good.set_faults(None)
        if mode == "actions":
            _bulk_action_runs(good, out)
        # a refused token (401) on both paths, and the connection's Test button
        for deferrable in (False, True):
            _fails(_operator(qstash_conn_id="qstash_refused", deferrable=deferrable), out, "401")
        for conn_id in ("qstash_default", "qstash_refused"):
            hook = QStashHook(qstash_conn_id=conn_id)
            out.add(f"test_connection {conn_id}", hook.test_connection())
            out.add("hook repr", repr(hook))
            out.add("connection config repr", repr(hook.config))
            hook.close()
        async_hook = QStashAsyncHook()
        out.add("async hook config repr", repr(asyncio.run(async_hook.get_config())))
        out.add("async hook repr", repr(async_hook))

    out.add("structlog events", struct_logs)
    out.add("caplog", caplog.text)
    captured = capfd.readouterr()
    out.add("stdout", captured.out)
    out.add("stderr", captured.err)
    out.add("emulator request log queries", [entry["query"] for entry in good.request_log()])

    text = out.joined()
    # not vacuous: every kind of output is there
    assert len(out.texts) > 40
    expected = [
        "Round 1: bulk action" if mode == "actions" else "Batch 1: cancelled",  # structlog progress lines
        "retrying in",  # retry warnings
        "gave up after",  # exhausted retries
        "Check the token in the connection's password",  # 401
        "airflow_qstash.triggers.qstash.QStashBulkCancelTrigger",  # trigger serialisation
        "'cancelled': 450",  # XCom values
        "secret-test",  # rendered fields
        "DELETE /v2/messages",  # urllib3 / httpx debug logs carry request lines
    ]
    if mode == "actions":
        expected += [
            "'mode': 'bulk_action'",  # XCom of a bulk-action run
            "processed (",  # poll progress lines
            "GET /v2/bulkActions/act_",  # polls in the transports' debug logs
            "GET /v2/bulkActions?",  # listings
            "already running with this filter: joined",  # joins
            "found no bulk action with this filter",  # a 412 with nothing to join
            "still IN_PROGRESS",  # action_timeout
        ]
    for phrase in expected:
        assert phrase in text, f"nothing collected contains {phrase!r}"
    leaks = [where for where, value in out.texts if TEST_TOKEN in value]
    assert not leaks, f"the token appears in: {leaks}"
