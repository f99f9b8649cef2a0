"""
The token never leaves the Authorization header.

* The suite-wide scan in ``tests/conftest.py`` is not vacuous: run with pytester, it fails tests that leak
  the token through stdout, stderr, logging, a failure message, output read back through capsys, and a
  fixture's setup, passes a clean one, and redacts the token from what pytest prints.
* A representative run (sync and deferrable, successes, retried faults, failures, a refused token, the
  connection test) produces log lines, exception texts, rendered fields, XCom values, trigger
  serialisations and reprs: all are collected and none contains the token.
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
import structlog
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

from airflow_qstash.emulator import FaultConfig, QStashEmulator
from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger
from tests.conftest import TEST_TOKEN, connection_json, find_secret
from tests.reliability.soak_lib import SOAK_RETRIES, TASK_START_MS, ti_context

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

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


@pytest.fixture
def leak_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[QStashEmulator, QStashEmulator]]:
    """An emulator that accepts the token, and one that refuses it (another token)."""
    with QStashEmulator(token=TEST_TOKEN) as good, QStashEmulator(token="a-different-token") as refusing:
        monkeypatch.setenv("AIRFLOW_CONN_QSTASH_DEFAULT", connection_json(good.base_url, **SOAK_RETRIES))
        monkeypatch.setenv("AIRFLOW_CONN_QSTASH_FAILING", connection_json(good.base_url, max_retries=2))
        monkeypatch.setenv("AIRFLOW_CONN_QSTASH_REFUSED", connection_json(refusing.base_url))
        yield good, refusing


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


def _run_deferred(op: QStashBulkCancelOperator, context: Any, out: Collected) -> Any:
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    out.add("trigger serialize", trigger.serialize())
    out.add("trigger repr", repr(trigger))
    out.add("TaskDeferred", repr(deferred.value))

    async def all_events() -> list[Any]:
        return [event async for event in QStashBulkCancelTrigger(**trigger.serialize()[1]).run()]

    events = asyncio.run(all_events())
    out.add("trigger events", [repr(e) for e in events])
    out.add("trigger event payloads", [e.payload for e in events])
    return op.execute_complete(context, events[0].payload)


def test_a_representative_run_never_shows_the_token(
    leak_env: tuple[QStashEmulator, QStashEmulator], caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture
):
    good, _ = leak_env
    caplog.set_level(logging.DEBUG)
    out = Collected()
    faults = FaultConfig(rate_429=0.1, rate_5xx=0.1, rate_drop=0.05, reset_after_s=0, seed=11)
    with structlog.testing.capture_logs() as struct_logs:
        # sync success through retried faults
        good.add_messages(_messages(450))
        good.set_faults(faults)
        op = _operator()
        out.add("sync XCom", op.execute(_render(op, out)))
        # deferrable success through retried faults
        good.add_messages(_messages(450))
        op = _operator(deferrable=True)
        out.add("deferrable XCom", _run_deferred(op, _render(op, out), out))
        # failures: retries exhausted, on both paths
        good.add_messages(_messages(10))
        good.set_faults(FaultConfig(fail_always_status=503))
        for deferrable in (False, True):
            op = _operator(qstash_conn_id="qstash_failing", deferrable=deferrable)
            context = _render(op, out)
            with pytest.raises(AirflowException) as failed:
                if deferrable:
                    _run_deferred(op, context, out)
                else:
                    op.execute(context)
            out.exception(f"exhausted retries ({'deferrable' if deferrable else 'sync'})", failed.value)
        good.set_faults(None)
        # a refused token (401) on both paths, and the connection's Test button
        for deferrable in (False, True):
            op = _operator(qstash_conn_id="qstash_refused", deferrable=deferrable)
            context = _render(op, out)
            with pytest.raises(AirflowException) as refused:
                if deferrable:
                    _run_deferred(op, context, out)
                else:
                    op.execute(context)
            out.exception(f"401 ({'deferrable' if deferrable else 'sync'})", refused.value)
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
    for expected in (
        "Batch 1: cancelled",  # structlog progress lines
        "retrying in",  # retry warnings
        "gave up after",  # exhausted retries
        "Check the token in the connection's password",  # 401
        "airflow_qstash.triggers.qstash.QStashBulkCancelTrigger",  # trigger serialisation
        "'cancelled': 450",  # XCom values
        "secret-test",  # rendered fields
        "DELETE /v2/messages",  # urllib3 / httpx debug logs carry request lines
    ):
        assert expected in text, f"nothing collected contains {expected!r}"
    leaks = [where for where, value in out.texts if TEST_TOKEN in value]
    assert not leaks, f"the token appears in: {leaks}"
