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


def refused(case_id: str, phrase: str, *template_context: dict[str, Any], **kwargs: Any) -> Case:
    """An operator case: the task built from ``kwargs`` (rendered with ``template_context``) refuses."""
    return Case(case_id, "operator", op(*template_context, **kwargs), ERR, phrase)


def hook_refuses(case_id: str, phrase: str, *args: Any, method: str = "bulk_cancel", **kwargs: Any) -> Case:
    """A hook case: ``QStashHook().<method>(*args, **kwargs)`` refuses."""
    return Case(case_id, "hook", hook(method, *args, **kwargs), ERR, phrase)


def conn_refuses(
    case_id: str,
    phrase: str,
    setup: Callable[[Env], None] | None = None,
    run: Callable[[Env], Any] | None = None,
    error: type[BaseException] = ERR,
    bulk_requests: int = 0,
) -> Case:
    """A connection case: ``run`` (a task with ``labels="a"`` unless given) fails on the connection ``setup`` made."""
    return Case(
        case_id,
        "connection",
        op(labels="a") if run is None else run,
        error,
        phrase,
        bulk_requests=bulk_requests,
        **({} if setup is None else {"setup": setup}),
    )


def server_answers(case_id: str, phrase: str, answer: dict[str, Any], method: str = "op") -> Case:
    """A server-answer case: requests-mock answers every bulk cancel with ``answer``."""
    return Case(case_id, "server answer", mocked(answer, method), AirflowException, phrase)


WHOLE_1_TO_500 = "must be a whole number from 1 to 500"
NOT_A_BASE_URL = "is not a region id or a base URL"
WRONG_TOKEN = "wrong-token-123"

CASES: list[Case] = [
    # ---- operator: the filter set (every operator case runs on the sync and the deferrable path)
    refused("op-no-filter", "No filter given"),
    refused("op-labels-empty-string", "labels is empty ('')", labels="", queue_names="q1"),
    refused(
        "op-labels-empty-list",
        "leave labels unset (None) for no labels filter, or list 'labels' in optional_filters",
        labels=[],
        queue_names="q1",
    ),
    refused(
        "op-labels-render-empty-list",
        "labels is templated but rendered empty ('[]')",
        {"params": {"v": []}},
        labels="{{ params.v }}",
        queue_names="q1",
    ),
    refused(
        "op-labels-render-None",
        "or list 'labels' in optional_filters if an empty labels should mean 'any'",
        {"params": {"v": None}},
        labels="{{ params.v }}",
        queue_names="q1",
    ),
    refused(
        "op-every-optional-filter-renders-empty",
        "queue_names, urls, hosts, labels rendered empty and are optional",
        {"params": {"v": None}},
        labels="[]",
        queue_names="{{ params.v }}",
        urls="",
        hosts="{{ params.v | tojson }}",
        to_date="now",
        optional_filters=["labels", "queue_names", "urls", "hosts"],
    ),
    refused(
        "op-optional-filters-unknown-name",
        "optional_filters names unknown filter(s) ['label']",
        labels="{{ params.v }}",
        optional_filters=["label"],
    ),
    refused(
        "op-optional-filters-a-string",
        "optional_filters must be a list of filter names",
        labels="{{ params.v }}",
        optional_filters="labels",
    ),
    refused("op-ids-with-labels", "message_ids cannot be combined with labels", message_ids=["m1"], labels="a"),
    refused("op-ids-with-from-date", "Give either message_ids or filters", message_ids="m1", from_date=MAY_1),
    refused(
        "op-message-ids-dot-segment",
        "message_ids[1]='..' is or contains a dot segment",
        {"params": {"ids": ["m1", ".."]}},
        message_ids="{{ params.ids }}",
    ),
    refused("op-cancel-all-maybe", "cancel_all must be True or False", cancel_all="maybe"),
    # ---- operator: dates
    refused("op-from-after-to", "swap them or fix the window", labels="a", from_date=MAY_2, to_date=MAY_1),
    refused(
        "op-from-after-task-start",
        "is after the task's start",
        labels="a",
        from_date=TASK_START + dt.timedelta(days=1),
    ),
    refused("op-zero-width-window", "CronDataIntervalTimetable", labels="a", from_date=MAY_1, to_date=MAY_1),
    refused("op-to-date-in-the-future-alone", "so it selects every message and is no filter", to_date="2099-01-01"),
    refused(
        "op-to-date-at-the-task-start-alone",
        "or set cancel_all=True if that is really meant. Note: to_date",
        to_date=TASK_START,
    ),
    refused(
        "op-to-date-or-0-fallback",
        "For 'up to the task's start' use 'now'",
        {"params": {"to_date": None}},
        labels="a",
        to_date="{{ params.to_date or 0 }}",
    ),
    refused("op-to-date-0", "to_date=0 is 1970-01-01", labels="a", to_date=0),
    refused("op-from-date-1999", "is before 2000-01-01", labels="a", from_date="1999-12-31T00:00:00Z"),
    refused(
        "op-to-date-1990-datetime",
        "give a later date in Unix milliseconds",
        labels="a",
        to_date=dt.datetime(1990, 1, 1),
    ),
    *(
        refused(f"op-date-{name}", "give ISO-8601 such as", labels="a", from_date=value)
        for name, value in (("unparseable", "yesterday"), ("not-a-calendar-date", "2024-13-45"))
    ),
    refused("op-date-time-only", "is a Time, not a date and time", labels="a", from_date="12:00"),
    refused("op-date-seconds-int", "Pass 1714521600000 (milliseconds)", labels="a", from_date=1_714_521_600),
    refused("op-date-seconds-string", "looks like Unix seconds", labels="a", to_date="1714521600"),
    refused("op-date-microseconds", "microseconds or nanoseconds?", labels="a", to_date=1_714_521_600_000_000),
    refused("op-date-negative", "give Unix milliseconds (>= 0)", labels="a", from_date=-1),
    refused("op-date-bool", "must be a date, not a boolean", labels="a", from_date=True),
    refused(
        "op-date-wrong-type",
        "must be a datetime, an ISO-8601 string or Unix milliseconds",
        labels="a",
        from_date=[2024, 5, 1],
    ),
    refused(
        "op-date-renders-None",
        "trigger with a logical date",
        {"data_interval_start": None},
        labels="a",
        from_date="{{ data_interval_start }}",
    ),
    # ---- operator: loop settings
    *(
        refused(f"op-batch-size-{name}", WHOLE_1_TO_500, labels="a", batch_size=value)
        for name, value in (("0", 0), ("501", 501), ("abc", "abc"), ("float", 2.5), ("bool", True))
    ),
    refused("op-max-batches-0", "max_batches must be a whole number >= 1", labels="a", max_batches=0),
    refused(
        "op-max-batches-negative-text",
        "or None for the default (100,000 requests)",
        labels="a",
        max_batches="-3",
    ),
    refused("op-max-batches-abc", "max_batches must be a whole number >= 1", labels="a", max_batches="abc"),
    refused(
        "op-action-timeout-nan",
        "action_timeout must be a finite number of seconds > 0 or a timedelta",
        labels="a",
        action_timeout="nan",
    ),
    # ---- operator: list values and renderings that are not lists
    refused("op-labels-int", "labels rendered an int (5)", labels=5),
    refused("op-labels-dict", "labels rendered a dict", labels={"a": 1}),
    refused("op-labels-list-with-int", "every labels value must be a string", labels=["a", 3]),
    refused("op-labels-blank-item", "remove it or give a value", labels=["a", "  "]),
    refused("op-labels-comma-inside", "Pass the parts as separate values", labels=["a,b"]),
    refused("op-labels-broken-list-text", "give a list of strings or a comma-separated string", labels="['a', b]"),
    refused(
        "op-labels-jinja-select",
        "End the template with | list",
        {"params": {"v": ["a", ""]}},
        labels="{{ params.v | select }}",
    ),
    refused(
        "op-labels-jinja-map-trim",
        "labels rendered the text of a generator",
        {"params": {"v": [" a "]}},
        labels="{{ params.v | map('trim') }}",
    ),
    refused(
        "op-labels-jinja-unique",
        "select, reject, map, unique and reverse return a generator",
        {"params": {"v": ["a", "a"]}},
        labels="{{ params.v | unique }}",
    ),
    refused(
        "op-labels-jinja-reverse",
        "the text of a list_reverseiterator",
        {"params": {"v": ["a", "b"]}},
        labels="{{ params.v | reverse }}",
    ),
    refused("op-labels-set-repr", "the text of a set", {"params": {"v": {"a", "b"}}}, labels="{{ params.v }}"),
    refused("op-labels-dict-repr", "the text of a dict", {"params": {"v": {"a": "b"}}}, labels="{{ params.v }}"),
    refused(
        "op-labels-dict-keys-repr",
        "the text of a dict_keys",
        {"params": {"v": {"a": "b"}}},
        labels="{{ params.v.keys() }}",
    ),
    refused("op-labels-generator-object", "labels rendered a generator", labels=(x for x in "ab")),
    refused("op-urls-too-long", "use fewer or shorter values", urls=LONG_URLS),
    # ---- hook
    hook_refuses("hook-no-filter", "set cancel_all=True if that is really meant"),
    hook_refuses("hook-labels-empty-string", "give a value, or leave labels unset (None)", labels="", queue_names="q1"),
    hook_refuses("hook-labels-whitespace", "labels is empty (' \\t ')", labels=" \t ", queue_names="q1"),
    hook_refuses(
        "hook-labels-empty-list", "labels is an empty list: give at least one value", labels=[], queue_names="q1"
    ),
    hook_refuses("hook-labels-blank-item", "labels[0] is empty", labels=[""]),
    hook_refuses("hook-message-ids-encoded-dot-segment", "URL normalisation removes it", message_ids=["m1", "%2e%2e"]),
    hook_refuses(
        "hook-to-date-in-the-future-alone",
        "is in the future: it selects every message, so it is no filter",
        to_date="2099-01-01",
    ),
    hook_refuses("hook-to-date-0", "leave to_date unset", labels="a", to_date=0),
    hook_refuses(
        "hook-from-date-1990",
        "from_date=0, 'since the beginning', is the one exception",
        labels="a",
        from_date=dt.datetime(1990, 1, 1),
    ),
    *(
        hook_refuses(f"hook-count-{name}", WHOLE_1_TO_500, labels="a", count=value)
        for name, value in (("0", 0), ("501", 501), ("abc", "abc"))
    ),
    hook_refuses("hook-date-now", "only accepted by the operator", labels="a", from_date="now"),
    hook_refuses("hook-ids-with-labels", "Give either message_ids or filters", message_ids="m1", labels="a"),
    hook_refuses("hook-labels-set-of-ints", "every labels value must be a string", labels={1, 2}),
    hook_refuses("hook-cancel-message-empty", "Give the id.", "", method="cancel_message"),
    hook_refuses("hook-cancel-message-blank", "would reach the collection endpoint", "   ", method="cancel_message"),
    hook_refuses("hook-cancel-message-None", "a request with no id", None, method="cancel_message"),
    # ---- connection
    conn_refuses("conn-missing-token", "put it in the connection's password", conn(token=None)),
    conn_refuses("conn-blank-token", "has no QStash token", conn(token="   "), hook("bulk_cancel", labels="a")),
    *(
        conn_refuses(
            f"conn-wrong-token{suffix}",
            "Check the token in the connection's password",
            conn(token=WRONG_TOKEN),
            op(labels="a", **path),
            AirflowException,
            bulk_requests=1,
        )
        for suffix, path in (("", {}), ("-deferrable", {"deferrable": True}))
    ),
    conn_refuses("conn-unknown-region", "known regions are eu-central-1, us-east-1", conn(host="ap-south-9")),
    *(
        conn_refuses(f"conn-{name}", NOT_A_BASE_URL, conn(host=host))
        for name, host in (
            ("malformed-url-one-slash", "https:/qstash.upstash.io"),
            ("ftp-scheme", "ftp://qstash.example"),
            ("url-with-query", "http://127.0.0.1:9/?token=x"),
        )
    ),
    conn_refuses("conn-bad-port", NOT_A_BASE_URL, conn(host="http://127.0.0.1:http"), hook("bulk_cancel", labels="a")),
    conn_refuses("conn-bad-max-retries", "give a finite int from 0 to 100", conn(max_retries=-1)),
    conn_refuses("conn-bad-timeout", "'timeout'='soon' is not valid", conn(timeout="soon")),
    conn_refuses(
        "conn-undefined", "isn't defined", run=op(labels="a", qstash_conn_id="no_such_conn"), error=AirflowException
    ),
    conn_refuses(
        "conn-path-in-host",
        "remove '/not-qstash'",
        lambda env: env.connection(host=env.emu.base_url + "/not-qstash"),
        error=AirflowException,
    ),
    conn_refuses(
        "conn-nothing-listening",
        "port 9 was refused: nothing listens there",
        conn(host="http://127.0.0.1:9"),
        error=AirflowException,
    ),
    conn_refuses(
        "conn-daily-quota-spent",
        "run again after the reset",
        lambda env: env.emu.set_faults(FaultConfig(rate_429_daily=1.0, reset_after_s=7200)),
        error=AirflowException,
        bulk_requests=1,
    ),
    # ---- server answers (requests-mock)
    server_answers("srv-200-not-json", "a body that is not JSON", {"text": "<html>OK</html>"}),
    server_answers(
        "srv-200-no-cancelled", "has neither an 'actionId' nor a 'cancelled' count", {"json": {"deleted": 3}}
    ),
    *(
        server_answers(
            f"srv-200-cancelled-{name}", "no valid 'cancelled' count", {"json": {"cancelled": value}}, "hook"
        )
        for name, value in (("negative", -1), ("text", "3"))
    ),
    server_answers("srv-200-json-list", "nor a 'cancelled' count: [1, 2]", {"json": [1, 2]}),
    server_answers("srv-500-html", "gave up after 3 attempts", {"status_code": 500, "text": "<h1>boom</h1>"}),
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
