"""
Bad input across the operator, the hook and the connection, one table; plus the inputs that look bad but
must be *encoded*, not refused (20,000 ids, non-ASCII and reserved characters).

Each refusal must name what to change (asserted as a phrase of the error) and cancel nothing: the
emulator holds the same messages afterwards and, unless the case says otherwise, saw no bulk cancel.
Server-answer cases run against requests-mock instead of the emulator.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
import requests_mock as requests_mock_lib
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.hooks.qstash import QStashHook
from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from airflow_qstash.protocol.endpoints import MAX_URL_LENGTH
from qstash_emulator import FaultConfig, QStashEmulator
from tests.conftest import FAKE_BASE_URL, TEST_TOKEN, connection_json
from tests.integration.reliability import soak_lib
from tests.integration.reliability.soak_lib import TASK_START, TASK_START_MS, first_event

FAST = {"max_retries": 2, "backoff_initial": 0, "backoff_max": 0, "timeout": 5}
MAY_1 = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
MAY_2 = dt.datetime(2024, 5, 2, tzinfo=dt.timezone.utc)
BASELINE = [
    {
        "messageId": f"msg_base_{i:04d}",
        "url": f"https://svc{i % 3}.example/jobs/{i % 5}",
        "label": ("a", "b", "report")[i % 3],
        "queueName": "q1" if i % 2 else None,
        "createdAt": TASK_START_MS - 1000 * (i + 1),
    }
    for i in range(300)
]
FIGURES: dict[str, Any] = {"refused": [], "encoded": []}


@dataclass
class Env:
    """What a case may use: the emulator and a way to point ``qstash_default`` elsewhere."""

    emu: QStashEmulator
    monkeypatch: pytest.MonkeyPatch
    #: requests the requests-mock server answered (server-answer cases)
    mock_calls: int | None = None
    #: run operator cases on this path (``deferrable=``), whatever the case says; ``None``: as the case says
    deferrable: bool | None = None
    #: every ``defer`` the operator made: a refusal happens before deferring, so it stays empty
    defer_calls: list[dict[str, Any]] = field(default_factory=list)

    def connection(self, host: str | None = None, token: str | None = TEST_TOKEN, **extra: Any) -> None:
        conn = connection_json(self.emu.base_url if host is None else host, token, **{**FAST, **extra})
        self.monkeypatch.setenv("AIRFLOW_CONN_QSTASH_DEFAULT", conn)


@dataclass
class Case:
    """One bad input: what runs, the error it must end in, and a phrase telling the user what to change."""

    id: str
    layer: str
    run: Callable[[Env], Any]
    error: type[BaseException]
    phrase: str
    #: bulk cancels the emulator may see (a wrong token is sent once, and must be sent only once)
    bulk_requests: int = 0
    setup: Callable[[Env], None] = field(default=lambda env: None)


def context(**extra: Any) -> Any:
    return {"ti": SimpleNamespace(start_date=TASK_START), "params": {}, **extra}


def op(template_context: dict[str, Any] | None = None, **kwargs: Any) -> Callable[..., Any]:
    """Build, render and execute the operator (through the trigger if it defers)."""

    def run(env: Env | None = None) -> Any:
        path = {} if env is None or env.deferrable is None else {"deferrable": env.deferrable}
        task = QStashBulkCancelOperator(task_id="bad_input", **{**kwargs, **path})
        ctx = context(**(template_context or {}))
        task.render_template_fields(ctx)
        try:
            return task.execute(ctx)
        except TaskDeferred as deferred:
            event = asyncio.run(first_event(deferred.trigger))
            return task.execute_complete(ctx, event)

    run.via_operator = True  # type: ignore[attr-defined]  # an operator fails a refusal without retries
    return run


def hook(method: str, *args: Any, **kwargs: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        qstash = QStashHook()
        try:
            return getattr(qstash, method)(*args, **kwargs)
        finally:
            qstash.close()

    return run


def conn(**settings: Any) -> Callable[[Env], None]:
    return lambda env: env.connection(**settings)


def mocked(answer: dict[str, Any], method: str = "op") -> Callable[[Env], Any]:
    """Run against requests-mock answering every bulk cancel with ``answer``; checks it was asked once."""

    def run(env: Env) -> Any:
        env.connection(host=FAKE_BASE_URL)
        with requests_mock_lib.Mocker() as mock:
            mock.delete(f"{FAKE_BASE_URL}/v2/messages", **answer)
            try:
                if method == "op":
                    return op(labels="a")(env)
                return hook("bulk_cancel", labels="a")(env)
            finally:
                env.mock_calls = mock.call_count

    return run


#: Every refusal before a request is a QStashInputError (a ValueError; QStashConnectionError is one too); an
#: operator turns it into an AirflowFailException (no retries) whose cause it is.
ERR = ValueError
LONG_URLS = [f"https://h.example/{'x' * 300}/{i}" for i in range(20)]

CASES: list[Case] = [
    # ---- operator: the filter set (every operator case runs on the sync and the deferrable path)
    Case("op-no-filter", "operator", op(), ERR, "No filter given"),
    Case("op-labels-empty-string", "operator", op(labels="", queue_names="q1"), ERR, "labels is empty ('')"),
    Case(
        "op-labels-empty-list",
        "operator",
        op(labels=[], queue_names="q1"),
        ERR,
        "leave labels unset (None) for no labels filter, or list 'labels' in optional_filters",
    ),
    Case(
        "op-labels-render-empty-list",
        "operator",
        op({"params": {"v": []}}, labels="{{ params.v }}", queue_names="q1"),
        ERR,
        "labels is templated but rendered empty ('[]')",
    ),
    Case(
        "op-labels-render-None",
        "operator",
        op({"params": {"v": None}}, labels="{{ params.v }}", queue_names="q1"),
        ERR,
        "or list 'labels' in optional_filters if an empty labels should mean 'any'",
    ),
    Case(
        "op-every-optional-filter-renders-empty",
        "operator",
        op(
            {"params": {"v": None}},
            labels="[]",
            queue_names="{{ params.v }}",
            urls="",
            hosts="{{ params.v | tojson }}",
            to_date="now",
            optional_filters=["labels", "queue_names", "urls", "hosts"],
        ),
        ERR,
        "queue_names, urls, hosts, labels rendered empty and are optional",
    ),
    Case(
        "op-optional-filters-unknown-name",
        "operator",
        op(labels="{{ params.v }}", optional_filters=["label"]),
        ERR,
        "optional_filters names unknown filter(s) ['label']",
    ),
    Case(
        "op-optional-filters-a-string",
        "operator",
        op(labels="{{ params.v }}", optional_filters="labels"),
        ERR,
        "optional_filters must be a list of filter names",
    ),
    Case(
        "op-ids-with-labels",
        "operator",
        op(message_ids=["m1"], labels="a"),
        ERR,
        "message_ids cannot be combined with labels",
    ),
    Case(
        "op-ids-with-from-date",
        "operator",
        op(message_ids="m1", from_date=MAY_1),
        ERR,
        "Give either message_ids or filters",
    ),
    Case(
        "op-message-ids-dot-segment",
        "operator",
        op({"params": {"ids": ["m1", ".."]}}, message_ids="{{ params.ids }}"),
        ERR,
        "message_ids[1]='..' is or contains a dot segment",
    ),
    Case("op-cancel-all-maybe", "operator", op(cancel_all="maybe"), ERR, "cancel_all must be True or False"),
    # ---- operator: dates
    Case(
        "op-from-after-to",
        "operator",
        op(labels="a", from_date=MAY_2, to_date=MAY_1),
        ERR,
        "swap them or fix the window",
    ),
    Case(
        "op-from-after-task-start",
        "operator",
        op(labels="a", from_date=TASK_START + dt.timedelta(days=1)),
        ERR,
        "is after the task's start",
    ),
    Case(
        "op-zero-width-window",
        "operator",
        op(labels="a", from_date=MAY_1, to_date=MAY_1),
        ERR,
        "CronDataIntervalTimetable",
    ),
    Case(
        "op-to-date-in-the-future-alone",
        "operator",
        op(to_date="2099-01-01"),
        ERR,
        "so it selects every message and is no filter",
    ),
    Case(
        "op-to-date-at-the-task-start-alone",
        "operator",
        op(to_date=TASK_START),
        ERR,
        "or set cancel_all=True if that is really meant. Note: to_date",
    ),
    Case(
        "op-to-date-or-0-fallback",
        "operator",
        op({"params": {"to_date": None}}, labels="a", to_date="{{ params.to_date or 0 }}"),
        ERR,
        "For 'up to the task's start' use 'now'",
    ),
    Case("op-to-date-0", "operator", op(labels="a", to_date=0), ERR, "to_date=0 is 1970-01-01"),
    Case(
        "op-from-date-1999", "operator", op(labels="a", from_date="1999-12-31T00:00:00Z"), ERR, "is before 2000-01-01"
    ),
    Case(
        "op-to-date-1990-datetime",
        "operator",
        op(labels="a", to_date=dt.datetime(1990, 1, 1)),
        ERR,
        "give a later date in Unix milliseconds",
    ),
    Case("op-date-unparseable", "operator", op(labels="a", from_date="yesterday"), ERR, "give ISO-8601 such as"),
    Case(
        "op-date-not-a-calendar-date", "operator", op(labels="a", from_date="2024-13-45"), ERR, "give ISO-8601 such as"
    ),
    Case("op-date-time-only", "operator", op(labels="a", from_date="12:00"), ERR, "is a Time, not a date and time"),
    Case(
        "op-date-seconds-int",
        "operator",
        op(labels="a", from_date=1_714_521_600),
        ERR,
        "Pass 1714521600000 (milliseconds)",
    ),
    Case("op-date-seconds-string", "operator", op(labels="a", to_date="1714521600"), ERR, "looks like Unix seconds"),
    Case(
        "op-date-microseconds",
        "operator",
        op(labels="a", to_date=1_714_521_600_000_000),
        ERR,
        "microseconds or nanoseconds?",
    ),
    Case("op-date-negative", "operator", op(labels="a", from_date=-1), ERR, "give Unix milliseconds (>= 0)"),
    Case("op-date-bool", "operator", op(labels="a", from_date=True), ERR, "must be a date, not a boolean"),
    Case(
        "op-date-wrong-type",
        "operator",
        op(labels="a", from_date=[2024, 5, 1]),
        ERR,
        "must be a datetime, an ISO-8601 string or Unix milliseconds",
    ),
    Case(
        "op-date-renders-None",
        "operator",
        op({"data_interval_start": None}, labels="a", from_date="{{ data_interval_start }}"),
        ERR,
        "trigger with a logical date",
    ),
    # ---- operator: loop settings
    Case("op-batch-size-0", "operator", op(labels="a", batch_size=0), ERR, "must be a whole number from 1 to 500"),
    Case("op-batch-size-501", "operator", op(labels="a", batch_size=501), ERR, "must be a whole number from 1 to 500"),
    Case(
        "op-batch-size-abc", "operator", op(labels="a", batch_size="abc"), ERR, "must be a whole number from 1 to 500"
    ),
    Case(
        "op-batch-size-float", "operator", op(labels="a", batch_size=2.5), ERR, "must be a whole number from 1 to 500"
    ),
    Case(
        "op-batch-size-bool", "operator", op(labels="a", batch_size=True), ERR, "must be a whole number from 1 to 500"
    ),
    Case("op-max-batches-0", "operator", op(labels="a", max_batches=0), ERR, "max_batches must be a whole number >= 1"),
    Case(
        "op-max-batches-negative-text",
        "operator",
        op(labels="a", max_batches="-3"),
        ERR,
        "or None for the default (100,000 requests)",
    ),
    Case(
        "op-max-batches-abc",
        "operator",
        op(labels="a", max_batches="abc"),
        ERR,
        "max_batches must be a whole number >= 1",
    ),
    Case(
        "op-action-timeout-nan",
        "operator",
        op(labels="a", action_timeout="nan"),
        ERR,
        "action_timeout must be a finite number of seconds > 0 or a timedelta",
    ),
    # ---- operator: list values and renderings that are not lists
    Case("op-labels-int", "operator", op(labels=5), ERR, "labels rendered an int (5)"),
    Case("op-labels-dict", "operator", op(labels={"a": 1}), ERR, "labels rendered a dict"),
    Case("op-labels-list-with-int", "operator", op(labels=["a", 3]), ERR, "every labels value must be a string"),
    Case("op-labels-blank-item", "operator", op(labels=["a", "  "]), ERR, "remove it or give a value"),
    Case("op-labels-comma-inside", "operator", op(labels=["a,b"]), ERR, "Pass the parts as separate values"),
    Case(
        "op-labels-broken-list-text",
        "operator",
        op(labels="['a', b]"),
        ERR,
        "give a list of strings or a comma-separated string",
    ),
    Case(
        "op-labels-jinja-select",
        "operator",
        op({"params": {"v": ["a", ""]}}, labels="{{ params.v | select }}"),
        ERR,
        "End the template with | list",
    ),
    Case(
        "op-labels-jinja-map-trim",
        "operator",
        op({"params": {"v": [" a "]}}, labels="{{ params.v | map('trim') }}"),
        ERR,
        "labels rendered the text of a generator",
    ),
    Case(
        "op-labels-jinja-unique",
        "operator",
        op({"params": {"v": ["a", "a"]}}, labels="{{ params.v | unique }}"),
        ERR,
        "select, reject, map, unique and reverse return a generator",
    ),
    Case(
        "op-labels-jinja-reverse",
        "operator",
        op({"params": {"v": ["a", "b"]}}, labels="{{ params.v | reverse }}"),
        ERR,
        "the text of a list_reverseiterator",
    ),
    Case(
        "op-labels-set-repr",
        "operator",
        op({"params": {"v": {"a", "b"}}}, labels="{{ params.v }}"),
        ERR,
        "the text of a set",
    ),
    Case(
        "op-labels-dict-repr",
        "operator",
        op({"params": {"v": {"a": "b"}}}, labels="{{ params.v }}"),
        ERR,
        "the text of a dict",
    ),
    Case(
        "op-labels-dict-keys-repr",
        "operator",
        op({"params": {"v": {"a": "b"}}}, labels="{{ params.v.keys() }}"),
        ERR,
        "the text of a dict_keys",
    ),
    Case("op-labels-generator-object", "operator", op(labels=(x for x in "ab")), ERR, "labels rendered a generator"),
    Case("op-urls-too-long", "operator", op(urls=LONG_URLS), ERR, "use fewer or shorter values"),
    # ---- hook
    Case("hook-no-filter", "hook", hook("bulk_cancel"), ERR, "set cancel_all=True if that is really meant"),
    Case(
        "hook-labels-empty-string",
        "hook",
        hook("bulk_cancel", labels="", queue_names="q1"),
        ERR,
        "give a value, or leave labels unset (None)",
    ),
    Case(
        "hook-labels-whitespace",
        "hook",
        hook("bulk_cancel", labels=" \t ", queue_names="q1"),
        ERR,
        "labels is empty (' \\t ')",
    ),
    Case(
        "hook-labels-empty-list",
        "hook",
        hook("bulk_cancel", labels=[], queue_names="q1"),
        ERR,
        "labels is an empty list: give at least one value",
    ),
    Case("hook-labels-blank-item", "hook", hook("bulk_cancel", labels=[""]), ERR, "labels[0] is empty"),
    Case(
        "hook-message-ids-encoded-dot-segment",
        "hook",
        hook("bulk_cancel", message_ids=["m1", "%2e%2e"]),
        ERR,
        "URL normalisation removes it",
    ),
    Case(
        "hook-to-date-in-the-future-alone",
        "hook",
        hook("bulk_cancel", to_date="2099-01-01"),
        ERR,
        "is in the future: it selects every message, so it is no filter",
    ),
    Case("hook-to-date-0", "hook", hook("bulk_cancel", labels="a", to_date=0), ERR, "leave to_date unset"),
    Case(
        "hook-from-date-1990",
        "hook",
        hook("bulk_cancel", labels="a", from_date=dt.datetime(1990, 1, 1)),
        ERR,
        "from_date=0, 'since the beginning', is the one exception",
    ),
    Case("hook-count-0", "hook", hook("bulk_cancel", labels="a", count=0), ERR, "must be a whole number from 1 to 500"),
    Case(
        "hook-count-501",
        "hook",
        hook("bulk_cancel", labels="a", count=501),
        ERR,
        "must be a whole number from 1 to 500",
    ),
    Case(
        "hook-count-abc",
        "hook",
        hook("bulk_cancel", labels="a", count="abc"),
        ERR,
        "must be a whole number from 1 to 500",
    ),
    Case(
        "hook-date-now", "hook", hook("bulk_cancel", labels="a", from_date="now"), ERR, "only accepted by the operator"
    ),
    Case(
        "hook-ids-with-labels",
        "hook",
        hook("bulk_cancel", message_ids="m1", labels="a"),
        ERR,
        "Give either message_ids or filters",
    ),
    Case(
        "hook-labels-set-of-ints",
        "hook",
        hook("bulk_cancel", labels={1, 2}),
        ERR,
        "every labels value must be a string",
    ),
    Case("hook-cancel-message-empty", "hook", hook("cancel_message", ""), ERR, "Give the id."),
    Case(
        "hook-cancel-message-blank", "hook", hook("cancel_message", "   "), ERR, "would reach the collection endpoint"
    ),
    Case("hook-cancel-message-None", "hook", hook("cancel_message", None), ERR, "a request with no id"),
    # ---- connection
    Case(
        "conn-missing-token",
        "connection",
        op(labels="a"),
        ERR,
        "put it in the connection's password",
        setup=conn(token=None),
    ),
    Case(
        "conn-blank-token",
        "connection",
        hook("bulk_cancel", labels="a"),
        ERR,
        "has no QStash token",
        setup=conn(token="   "),
    ),
    Case(
        "conn-wrong-token",
        "connection",
        op(labels="a"),
        AirflowException,
        "Check the token in the connection's password",
        bulk_requests=1,
        setup=conn(token="wrong-token-123"),
    ),
    Case(
        "conn-wrong-token-deferrable",
        "connection",
        op(labels="a", deferrable=True),
        AirflowException,
        "Check the token in the connection's password",
        bulk_requests=1,
        setup=conn(token="wrong-token-123"),
    ),
    Case(
        "conn-unknown-region",
        "connection",
        op(labels="a"),
        ERR,
        "known regions are eu-central-1, us-east-1",
        setup=conn(host="ap-south-9"),
    ),
    Case(
        "conn-malformed-url-one-slash",
        "connection",
        op(labels="a"),
        ERR,
        "is not a region id or a base URL",
        setup=conn(host="https:/qstash.upstash.io"),
    ),
    Case(
        "conn-ftp-scheme",
        "connection",
        op(labels="a"),
        ERR,
        "is not a region id or a base URL",
        setup=conn(host="ftp://qstash.example"),
    ),
    Case(
        "conn-url-with-query",
        "connection",
        op(labels="a"),
        ERR,
        "is not a region id or a base URL",
        setup=conn(host="http://127.0.0.1:9/?token=x"),
    ),
    Case(
        "conn-bad-port",
        "connection",
        hook("bulk_cancel", labels="a"),
        ERR,
        "is not a region id or a base URL",
        setup=conn(host="http://127.0.0.1:http"),
    ),
    Case(
        "conn-bad-max-retries",
        "connection",
        op(labels="a"),
        ERR,
        "give a finite int from 0 to 100",
        setup=conn(max_retries=-1),
    ),
    Case(
        "conn-bad-timeout",
        "connection",
        op(labels="a"),
        ERR,
        "'timeout'='soon' is not valid",
        setup=conn(timeout="soon"),
    ),
    Case(
        "conn-undefined", "connection", op(labels="a", qstash_conn_id="no_such_conn"), AirflowException, "isn't defined"
    ),
    Case(
        "conn-path-in-host",
        "connection",
        op(labels="a"),
        AirflowException,
        "remove '/not-qstash'",
        setup=lambda env: env.connection(host=env.emu.base_url + "/not-qstash"),
    ),
    Case(
        "conn-nothing-listening",
        "connection",
        op(labels="a"),
        AirflowException,
        "port 9 was refused: nothing listens there",
        setup=conn(host="http://127.0.0.1:9"),
    ),
    Case(
        "conn-daily-quota-spent",
        "connection",
        op(labels="a"),
        AirflowException,
        "run again after the reset",
        bulk_requests=1,
        setup=lambda env: env.emu.set_faults(FaultConfig(rate_429_daily=1.0, reset_after_s=7200)),
    ),
    # ---- server answers (requests-mock)
    Case(
        "srv-200-not-json",
        "server answer",
        mocked({"text": "<html>OK</html>"}),
        AirflowException,
        "a body that is not JSON",
    ),
    Case(
        "srv-200-no-cancelled",
        "server answer",
        mocked({"json": {"deleted": 3}}),
        AirflowException,
        "has neither an 'actionId' nor a 'cancelled' count",
    ),
    Case(
        "srv-200-cancelled-negative",
        "server answer",
        mocked({"json": {"cancelled": -1}}, "hook"),
        AirflowException,
        "no valid 'cancelled' count",
    ),
    Case(
        "srv-200-cancelled-text",
        "server answer",
        mocked({"json": {"cancelled": "3"}}, "hook"),
        AirflowException,
        "no valid 'cancelled' count",
    ),
    Case(
        "srv-200-json-list",
        "server answer",
        mocked({"json": [1, 2]}),
        AirflowException,
        "nor a 'cancelled' count: [1, 2]",
    ),
    Case(
        "srv-500-html",
        "server answer",
        mocked({"status_code": 500, "text": "<h1>boom</h1>"}),
        AirflowException,
        "gave up after 3 attempts",
    ),
]
MOCK_CALLS = {"srv-500-html": 3}
#: Layers whose refusals happen before any request at all, to any endpoint.
BEFORE_ANY_REQUEST = ("operator", "hook")
#: Every case, on each path it has: an operator case runs as a synchronous and as a deferrable task
#: (``None``: the case runs as written).
RUNS = [
    pytest.param(case, path, id=f"{case.id}-{'deferrable' if path else 'sync'}" if path is not None else case.id)
    for case in CASES
    for path in ((False, True) if case.layer == "operator" else (None,))
]


@pytest.fixture(scope="module")
def emulator() -> Iterator[QStashEmulator]:
    with QStashEmulator(token=TEST_TOKEN) as emu:
        yield emu
    if len(FIGURES["refused"]) == len(RUNS):
        soak_lib.ARTIFACTS.mkdir(exist_ok=True)
        by_layer: dict[str, int] = {}
        for case in CASES:
            by_layer[case.layer] = by_layer.get(case.layer, 0) + 1
        figures = {
            "bad_inputs_tried": len(CASES) + len(FIGURES["encoded"]),
            "refused_with_a_clear_error": len(set(FIGURES["refused"])),
            "refused_by_layer": by_layer,
            "operator_refusals_checked_on_sync_and_deferrable_paths": by_layer["operator"],
            "runs_of_the_table": len(RUNS),
            "accepted_and_encoded_exactly": len(FIGURES["encoded"]),
            "messages_cancelled_by_a_refused_input": 0,
        }
        soak_lib.BAD_INPUT_FIGURES.write_text(json.dumps(figures, indent=2) + "\n")


@pytest.fixture
def env(emulator: QStashEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    emulator.reset()
    emulator.add_messages(BASELINE)
    environment = Env(emulator, monkeypatch)
    environment.connection()
    defer = QStashBulkCancelOperator.defer

    def recording_defer(self: QStashBulkCancelOperator, **kwargs: Any) -> Any:
        environment.defer_calls.append(kwargs)
        return defer(self, **kwargs)

    monkeypatch.setattr(QStashBulkCancelOperator, "defer", recording_defer)
    yield environment
    emulator.set_faults(None)


def test_the_table_is_large_and_its_ids_unique():
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)
    assert {case.layer for case in CASES} == {"operator", "hook", "connection", "server answer"}
    operator_cases = [case for case in CASES if case.layer == "operator"]
    assert len(RUNS) == len(CASES) + len(operator_cases)  # each operator case on both paths


@pytest.mark.parametrize(("case", "deferrable"), RUNS)
def test_bad_input_is_refused_with_a_clear_error_and_cancels_nothing(env: Env, case: Case, deferrable: bool | None):
    case.setup(env)
    env.deferrable = deferrable
    env.emu.clear_request_log()
    held_before = env.emu.held_ids()

    by_operator = case.error is ERR and getattr(case.run, "via_operator", False)
    with pytest.raises(AirflowFailException if by_operator else case.error) as err:
        case.run(env)
    if by_operator:
        assert isinstance(err.value.__cause__, QStashInputError), f"{case.id}: {err.value.__cause__!r}"

    message = str(err.value)
    assert case.phrase in message, f"{case.id}: {message!r} does not say {case.phrase!r}"
    assert TEST_TOKEN not in message
    bulk = [e for e in env.emu.request_log() if (e["method"], e["path"]) == ("DELETE", "/v2/messages")]
    assert len(bulk) == case.bulk_requests, f"{case.id}: {len(bulk)} bulk cancel(s) sent"
    if case.layer in BEFORE_ANY_REQUEST:
        assert env.emu.request_log() == [], f"{case.id}: a request was sent"
    if case.bulk_requests == 0:
        assert env.defer_calls == [], f"{case.id}: the task deferred before refusing"
    if case.layer == "server answer":
        assert env.mock_calls == MOCK_CALLS.get(case.id, 1)
    assert env.emu.held_ids() == held_before, f"{case.id}: messages were cancelled"
    assert env.emu.counts()["cancelled"] == 0
    FIGURES["refused"].append(case.id)


def test_the_deferrable_path_really_defers_when_the_input_is_good(env: Env):
    """The defer spy bites: a good deferrable task does call ``defer`` (so an empty list above means something)."""
    env.deferrable = True
    env.emu.clear_request_log()
    op(labels="no-such-label")(env)
    assert len(env.defer_calls) == 1
    assert env.defer_calls[0]["method_name"] == "execute_complete"


# --------------------------------------------------------------------------- looks bad, must be encoded


def run_task(deferrable: bool, template_context: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    return op(template_context, deferrable=deferrable, **kwargs)()


def sent_url_lengths(emu: QStashEmulator) -> list[int]:
    """Length of each bulk cancel's URL as sent (its query re-encoded the way requests and httpx do)."""
    return [
        len(emu.base_url) + len(entry["path"]) + 1 + len(urlencode(entry["query"]))
        for entry in emu.request_log()
        if entry["path"] == "/v2/messages"
    ]


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_20000_message_ids_are_split_across_requests_not_refused(env: Env, deferrable: bool):
    ids = env.emu.add_messages(
        [{"url": "https://ids.example/x", "createdAt": TASK_START_MS - i - 1} for i in range(20_000)]
    )
    env.emu.clear_request_log()
    # The ids arrive as one template (from params or XCom), as a long list would in a DAG. (A literal
    # 20,000-element list works too, but Airflow compiles every element as a Jinja template: seconds.)
    result = run_task(deferrable, {"params": {"ids": ids}}, message_ids="{{ params.ids }}", batch_size=500)

    assert result["cancelled"] == 20_000
    assert env.emu.held_ids() == {m["messageId"] for m in BASELINE}
    log = env.emu.request_log()
    lengths = sent_url_lengths(env.emu)
    assert max(lengths) <= MAX_URL_LENGTH
    assert len(log) >= 2 * (20_000 * 48 // MAX_URL_LENGTH)  # two batches: the cancelling one, then the empty one
    first_batch = log[: len(log) // 2]
    sent = [value for entry in first_batch for key, value in entry["query"] if key == "messageIds"]
    assert sorted(sent) == sorted(ids), "every id is sent exactly once per batch"
    FIGURES["encoded"].append(f"20000-ids-{'deferrable' if deferrable else 'sync'}")


#: Labels that need encoding, each with decoys that a wrong encoding or normalisation would hit instead.
ODD_LABELS = {
    "café": ["cafe", "CAFÉ", unicodedata.normalize("NFD", "café")],
    "日本語": ["日本", "日本語語"],
    "a b": ["a+b", "a%20b", "a_b"],
    "a+b": ["a b", "a%2Bb"],
    "x&y=z": ["x", "y=z", "x&y"],
    "50%": ["50%25", "50"],
    "path/with?query#frag": ["path/with", "path/with?query"],
    "emoji🙂": ["emoji", "emoji🙃"],
    "quote'\"<>": ["quote"],
}
ODD_URLS = {
    "https://h.example/p?q=1&r=2": ["https://h.example/p?q=1", "https://h.example/p?q=1&r=3"],
    "https://h.example/a b": ["https://h.example/a+b", "https://h.example/a%20b"],
    "https://h.example/ü/ñ?x=é": ["https://h.example/u/n?x=e", "https://h.example/%C3%BC/%C3%B1?x=%C3%A9"],
    "https://h.example/semi;colon": ["https://h.example/semi"],
    "https://user@h.example/at": ["https://h.example/at"],
}


def _odd_messages(table: dict[str, list[str]], key: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def message(value: str, n: int) -> dict[str, Any]:
        data: dict[str, Any] = {"createdAt": TASK_START_MS - 10_000 - n}
        if key == "label":
            data.update(url="https://odd.example/x", labels=[value])
        else:
            data.update(url=value)
        return data

    targets = [message(value, n) for n, value in enumerate(table)]
    # a decoy that is another entry's target (e.g. "a b" and "a+b") is a target, not a decoy
    look_alikes = [d for ds in table.values() for d in ds if d not in table]
    decoys = [message(decoy, 100 + n) for n, decoy in enumerate(look_alikes)]
    return targets, decoys


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
@pytest.mark.parametrize(("key", "table"), [("label", ODD_LABELS), ("url", ODD_URLS)], ids=["labels", "urls"])
def test_non_ascii_and_reserved_characters_are_encoded_and_matched_exactly(
    env: Env, key: str, table: dict[str, list[str]], deferrable: bool
):
    targets, decoys = _odd_messages(table, key)
    target_ids = set(env.emu.add_messages(targets))
    decoy_ids = set(env.emu.add_messages(decoys))
    env.emu.clear_request_log()
    filter_name = "labels" if key == "label" else "urls"
    filters: dict[str, Any] = {filter_name: list(table)}
    result = run_task(deferrable, None, **filters)

    assert result["cancelled"] == len(table)
    held = env.emu.held_ids()
    assert not target_ids & held, "a value was not matched"
    assert decoy_ids <= held, "a look-alike value was cancelled"
    assert {m["messageId"] for m in BASELINE} <= held
    first = env.emu.request_log()[0]
    assert sorted(v for k, v in first["query"] if k == key) == sorted(table), "the server decoded other values"
    FIGURES["encoded"].append(f"odd-{key}-{'deferrable' if deferrable else 'sync'}")


def test_a_value_that_would_split_on_a_comma_is_refused_but_its_parts_are_accepted(env: Env):
    """The comma is the one character QStash treats specially in a value; the parts work as separate values."""
    env.emu.add_messages([{"url": "https://c.example/x", "labels": ["a", "b"], "createdAt": TASK_START_MS - 5}])
    with pytest.raises(AirflowFailException, match="contains a comma") as refused:
        run_task(False, labels=["a,b"])
    assert isinstance(refused.value.__cause__, QStashInputError)
    assert env.emu.counts()["cancelled"] == 0
    assert run_task(False, labels=["b"], urls="https://c.example/x")["cancelled"] == 1
    FIGURES["encoded"].append("comma-parts")


def test_hook_bulk_cancel_with_20000_ids_returns_the_total_across_requests(env: Env):
    ids = env.emu.add_messages(
        [{"url": "https://ids.example/y", "createdAt": TASK_START_MS - 1} for _ in range(20_000)]
    )
    env.emu.clear_request_log()
    qstash = QStashHook()
    started = time.monotonic()
    try:
        answer = qstash.bulk_cancel(message_ids=ids)
        assert getattr(answer, "cancelled", answer) == 20_000  # a batch answer (ids cancel synchronously)
    finally:
        qstash.close()
    assert time.monotonic() - started < 60
    assert len(env.emu.request_log()) > 200
    assert max(sent_url_lengths(env.emu)) <= MAX_URL_LENGTH
    assert env.emu.held_ids() == {m["messageId"] for m in BASELINE}
    FIGURES["encoded"].append("hook-20000-ids")


def test_the_refusal_phrases_are_not_all_the_same():
    """The table asserts what to change, case by case, not one catch-all phrase."""
    assert len({case.phrase for case in CASES}) >= 25
