"""QStashBulkCancelOperator without a metadata DB: rendering, the batch loop, refusals and deferral.

HTTP is mocked with requests-mock; :class:`~tests.doubles.fake_qstash.PendingMessages` (the trigger tests' server
too) keeps a count of pending messages and answers each ``DELETE /v2/messages``
with ``cancelled = min(pending, count)``, as QStash does.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pendulum
import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashHook
from airflow_qstash.inputs import DEFAULT_ACTION_TIMEOUT, DEFAULT_MAX_REQUESTS
from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger
from tests.conftest import TEST_TOKEN
from tests.doubles.fake_qstash import PendingMessages
from tests.support.bulk_cancel_task import (
    BULK_URL,
    ENVIRONMENTS,
    TASK_START,
    TASK_START_MS,
    make_op,
    query_of,
    rendered,
    sent_query,
    ti_context,
)
from tests.support.connections import MISSING, serve_connections
from tests.support.summary_keys import BULK_CANCEL_SUMMARY_KEYS
from tests.support.task_logs import capture_task_logs

MAY_1 = pendulum.datetime(2024, 5, 1, tz="UTC")
MAY_1_MS = 1_714_521_600_000
MAY_2 = pendulum.datetime(2024, 5, 2, tz="UTC")
MAY_2_MS = 1_714_608_000_000

#: The list filters and the query parameter each must be sent as (QStash's names, stated independently).
LIST_FILTERS = {
    "message_ids": "messageIds",
    "url_groups": "topicName",
    "queue_names": "queueName",
    "urls": "url",
    "hosts": "host",
    "paths": "path",
    "labels": "label",
    "flow_control_keys": "flowControlKey",
    "schedule_ids": "scheduleId",
    "caller_ips": "callerIp",
}
DATE_FILTERS = ("from_date", "to_date")
ALL_TEMPLATED = (*LIST_FILTERS, *DATE_FILTERS, "batch_size", "max_batches", "cancel_all", "action_timeout")
SUMMARY_KEYS = BULK_CANCEL_SUMMARY_KEYS


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def struct_logs() -> Any:
    """Everything the operator and hook log through Airflow's structlog loggers."""
    with capture_task_logs() as logs:
        yield logs


def log_text(struct_logs: list[dict[str, Any]]) -> str:
    return "\n".join(str(entry) for entry in struct_logs)


# --------------------------------------------------------------------------- construction


def test_template_fields_cover_every_filter_date_and_loop_setting():
    assert set(ALL_TEMPLATED) <= set(QStashBulkCancelOperator.template_fields)


def test_init_keeps_every_templated_value_unchanged():
    templates = {name: f"{{{{ params.{name} }}}}" for name in ALL_TEMPLATED}
    op = make_op(**templates)
    for name, template in templates.items():
        assert getattr(op, name) == template, name


def test_init_creates_no_hook_and_reads_no_connection(monkeypatch: pytest.MonkeyPatch):
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a hook was created while building the operator")

    monkeypatch.setattr(QStashHook, "__init__", refuse)
    monkeypatch.setattr(QStashAsyncHook, "__init__", refuse)
    monkeypatch.setattr(QStashHook, "get_connection", classmethod(refuse))
    op = make_op(labels=["a"], from_date="{{ data_interval_start }}", deferrable=True)
    assert op.labels == ["a"]
    # The patch does bite: the execute path does create a hook.
    with pytest.raises(AssertionError, match="hook was created"):
        make_op(labels=["a"]).execute(ti_context())


# --------------------------------------------------------------------------- the batch loop


LOOP_CASES = [
    *[(n, size) for n in (0, 1, 499, 500, 501, 1234) for size in (100, 500)],
    *[(n, 1) for n in (0, 1, 7)],
]


@pytest.mark.parametrize(("pending", "batch_size"), LOOP_CASES)
def test_loop_sends_ceil_n_over_batch_size_plus_one_requests(qstash, requests_mock, pending: int, batch_size: int):
    fake = qstash(pending)
    op = make_op(labels=["report"], from_date=MAY_1, batch_size=batch_size)

    result = op.execute(ti_context())

    expected_requests = math.ceil(pending / batch_size) + 1
    assert requests_mock.call_count == expected_requests
    assert fake.pending == 0
    assert set(result) == SUMMARY_KEYS
    assert result["cancelled"] == pending
    assert result["batches"] == expected_requests
    assert result["from_date"] == MAY_1_MS
    assert result["to_date"] == TASK_START_MS
    for request in requests_mock.request_history:
        assert request.method == "DELETE"
        assert urlsplit(request.url).path == "/v2/messages"
        assert [value for key, value in query_of(request) if key == "count"] == [str(batch_size)]


def test_batch_size_and_max_batches_may_be_rendered_text(qstash, requests_mock):
    fake = qstash(250)
    op = rendered(
        make_op(labels=["a"], batch_size="{{ params.size }}", max_batches="{{ params.most }}"),
        params={"size": 100, "most": 10},
    )
    assert op.execute(ti_context())["cancelled"] == 250
    assert fake.pending == 0
    assert requests_mock.call_count == 4
    assert {dict(query_of(r))["count"] for r in requests_mock.request_history} == {"100"}


# --------------------------------------------------------------------------- rendering and the query sent


@pytest.mark.parametrize(
    ("value", "template_context", "expected"),
    [
        pytest.param(["a", "b"], {}, ["a", "b"], id="list"),
        pytest.param(("a", "b"), {}, ["a", "b"], id="tuple"),
        pytest.param("a", {}, ["a"], id="single-string"),
        pytest.param("a, b", {}, ["a", "b"], id="comma-separated"),
        pytest.param("a,b,a", {}, ["a", "b"], id="comma-separated-duplicates"),
        pytest.param("['a', 'b']", {}, ["a", "b"], id="list-text"),
        pytest.param("{{ params.v }}", {"params": {"v": ["a", "b"]}}, ["a", "b"], id="jinja-list"),
        pytest.param("{{ params.v }}", {"params": {"v": "a"}}, ["a"], id="jinja-string"),
        pytest.param("{{ params.v | join(',') }}", {"params": {"v": ["a", "b"]}}, ["a", "b"], id="jinja-joined"),
        pytest.param(["{{ params.v }}", "b"], {"params": {"v": "a"}}, ["a", "b"], id="list-of-templates"),
    ],
)
@pytest.mark.parametrize("name", [name for name in LIST_FILTERS if name != "message_ids"])
def test_list_filter_forms_render_to_repeated_query_params(
    qstash, requests_mock, name: str, value: Any, template_context: dict[str, Any], expected: list[str]
):
    qstash(0)
    op = rendered(make_op(**{name: value}), **template_context)
    op.execute(ti_context())
    param = LIST_FILTERS[name]
    assert sent_query(requests_mock) == sorted(
        [*((param, v) for v in expected), ("toDate", str(TASK_START_MS)), ("count", "500")]
    )


@pytest.mark.parametrize(
    ("value", "template_context"),
    [
        pytest.param(["m1", "m2"], {}, id="list"),
        pytest.param("m1,m2", {}, id="comma-separated"),
        pytest.param("{{ params.ids }}", {"params": {"ids": ["m1", "m2"]}}, id="jinja-list"),
    ],
)
def test_message_ids_render_without_any_date(qstash, requests_mock, value: Any, template_context: dict[str, Any]):
    qstash(2)
    result = rendered(make_op(message_ids=value), **template_context).execute(ti_context())
    first = sorted(query_of(requests_mock.request_history[0]))
    assert first == [("count", "500"), ("messageIds", "m1"), ("messageIds", "m2")]
    assert result["to_date"] is None
    assert result["from_date"] is None
    assert result["cancelled"] == 2


EMPTY_RENDERINGS = [
    pytest.param("[]", {}, id="empty-list-text"),
    pytest.param("", {}, id="empty-string"),
    pytest.param("  ", {}, id="blank"),
    pytest.param([], {}, id="empty-list"),
    pytest.param("{{ params.v }}", {"params": {"v": []}}, id="jinja-empty-list"),
    pytest.param("{{ params.v }}", {"params": {"v": None}}, id="jinja-None"),
    pytest.param("{{ params.v }}", {"params": {"v": ""}}, id="jinja-empty-string"),
    pytest.param("{{ params.v | tojson }}", {"params": {"v": None}}, id="jinja-tojson-null"),
    pytest.param("{{ params.v | join(',') }}", {"params": {"v": []}}, id="jinja-joined-empty"),
]


@pytest.mark.parametrize(("value", "template_context"), EMPTY_RENDERINGS)
def test_an_optional_list_filter_rendering_empty_is_absent(
    qstash, requests_mock, value: Any, template_context: dict[str, Any]
):
    qstash(0)
    op = rendered(make_op(labels=value, queue_names="q", optional_filters=["labels"]), **template_context)
    result = op.execute(ti_context())
    assert sent_query(requests_mock) == sorted([("queueName", "q"), ("toDate", str(TASK_START_MS)), ("count", "500")])
    assert "labels" not in result["filters"]


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
@pytest.mark.parametrize(("value", "template_context"), EMPTY_RENDERINGS)
def test_a_list_filter_set_but_empty_is_refused_not_dropped(
    qstash, requests_mock, no_deferral, value: Any, template_context: dict[str, Any], deferrable: bool
):
    """``labels`` empty beside ``queue_names="q"`` would cancel every message of q: refused, naming labels."""
    qstash(10)
    op = rendered(make_op(labels=value, queue_names="q", deferrable=deferrable), **template_context)
    with pytest.raises(AirflowFailException) as err:
        op.execute(ti_context())
    message = str(err.value)
    assert message.startswith("labels is ")
    assert "list 'labels' in optional_filters" in message
    assert requests_mock.call_count == 0
    assert no_deferral == []


@pytest.mark.parametrize(
    ("value", "template_context"),
    [
        pytest.param(dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc), {}, id="datetime-utc"),
        pytest.param(dt.datetime(2024, 5, 1), {}, id="naive-datetime-is-utc"),
        pytest.param(dt.datetime(2024, 5, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))), {}, id="datetime-offset"),
        pytest.param(MAY_1, {}, id="pendulum"),
        pytest.param(pendulum.datetime(2024, 5, 1, 2, tz="Europe/Berlin"), {}, id="pendulum-berlin"),
        pytest.param("{{ data_interval_start }}", {"data_interval_start": MAY_1}, id="jinja-data-interval"),
        pytest.param("{{ ds }}", {"ds": "2024-05-01"}, id="jinja-ds"),
        pytest.param("2024-05-01T00:00:00Z", {}, id="iso-z"),
        pytest.param("2024-05-01T02:00:00+02:00", {}, id="iso-offset"),
        pytest.param(MAY_1_MS, {}, id="epoch-ms"),
        pytest.param(str(MAY_1_MS), {}, id="epoch-ms-text"),
        pytest.param("{{ params.t }}", {"params": {"t": MAY_1_MS}}, id="jinja-epoch-ms"),
    ],
)
@pytest.mark.parametrize(("name", "param"), [("from_date", "fromDate"), ("to_date", "toDate")])
def test_date_forms_render_to_unix_ms(
    qstash, requests_mock, name: str, param: str, value: Any, template_context: dict[str, Any]
):
    qstash(0)
    op = rendered(make_op(labels="a", **{name: value}), **template_context)
    result = op.execute(ti_context())
    to_date = MAY_1_MS if name == "to_date" else TASK_START_MS
    expected = [("label", "a"), (param, str(MAY_1_MS)), ("count", "500")]
    if name == "from_date":
        expected.append(("toDate", str(TASK_START_MS)))
    assert sent_query(requests_mock) == sorted(expected)
    assert result[name] == MAY_1_MS
    assert result["to_date"] == to_date


def test_data_interval_window_renders_both_bounds(qstash, requests_mock):
    qstash(0)
    op = rendered(
        make_op(labels="a", from_date="{{ data_interval_start }}", to_date="{{ data_interval_end }}"),
        data_interval_start=MAY_1,
        data_interval_end=MAY_2,
    )
    result = op.execute(ti_context())
    assert sent_query(requests_mock) == sorted(
        [("label", "a"), ("fromDate", str(MAY_1_MS)), ("toDate", str(MAY_2_MS)), ("count", "500")]
    )
    assert (result["from_date"], result["to_date"]) == (MAY_1_MS, MAY_2_MS)


def test_on_demand_fallbacks_in_templates_mean_open_window(qstash, requests_mock):
    """``{{ params.from_date or 0 }}`` / ``{{ params.to_date or 'now' }}``: since the beginning, up to the start."""
    qstash(0)
    op = rendered(
        make_op(labels="a", from_date="{{ params.f or 0 }}", to_date="{{ params.t or 'now' }}"),
        params={"f": None, "t": None},
    )
    result = op.execute(ti_context())
    assert sent_query(requests_mock) == sorted([("label", "a"), ("toDate", str(TASK_START_MS)), ("count", "500")])
    assert result["from_date"] is None


def test_filters_are_anded_and_values_ored_in_one_request(qstash, requests_mock):
    qstash(0)
    op = make_op(labels=["a", "b"], queue_names="q", url_groups="g1, g2", from_date=MAY_1, to_date=MAY_2)
    op.execute(ti_context())
    assert sent_query(requests_mock) == sorted(
        [
            ("label", "a"),
            ("label", "b"),
            ("queueName", "q"),
            ("topicName", "g1"),
            ("topicName", "g2"),
            ("fromDate", str(MAY_1_MS)),
            ("toDate", str(MAY_2_MS)),
            ("count", "500"),
        ]
    )


# --------------------------------------------------------------------------- refusals (no request at all)


EMPTY_PARAMS = {"labels": [], "queues": "", "ids": None}
EMPTY_FILTERS = {
    "labels": "{{ params.labels }}",
    "queue_names": "{{ params.queues }}",
    "message_ids": "{{ params.ids }}",
}


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("cancel_all", [False, "False", "{{ params.cancel_all }}"])
def test_every_filter_rendering_empty_is_refused_before_any_request(
    qstash, requests_mock, cancel_all: Any, deferrable: bool
):
    qstash(10)
    op = rendered(
        make_op(**EMPTY_FILTERS, optional_filters=list(EMPTY_FILTERS), cancel_all=cancel_all, deferrable=deferrable),
        params={**EMPTY_PARAMS, "cancel_all": False},
    )
    with pytest.raises(AirflowFailException, match="No filter given") as err:
        op.execute(ti_context())
    assert "cancel_all=True" in str(err.value)
    assert "rendered empty and are optional" in str(err.value)
    assert requests_mock.call_count == 0


def test_no_filter_at_all_is_refused(qstash, requests_mock):
    qstash(10)
    with pytest.raises(AirflowFailException, match="No filter given"):
        make_op().execute(ti_context())
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("cancel_all", [True, "True", "true", "{{ params.cancel_all }}"])
def test_cancel_all_allows_the_empty_filter_pinned_to_the_task_start(qstash, requests_mock, cancel_all: Any):
    fake = qstash(3)
    op = rendered(
        make_op(**EMPTY_FILTERS, optional_filters=list(EMPTY_FILTERS), cancel_all=cancel_all),
        params={**EMPTY_PARAMS, "cancel_all": True},
    )
    result = op.execute(ti_context())
    assert sorted(query_of(requests_mock.request_history[0])) == [("count", "500"), ("toDate", str(TASK_START_MS))]
    assert result["cancelled"] == 3
    assert fake.pending == 0


@pytest.mark.parametrize("name", DATE_FILTERS)
@pytest.mark.parametrize(
    ("template", "template_context"),
    [
        pytest.param("{{ data_interval_start }}", {"data_interval_start": None}, id="manual-run-data-interval"),
        pytest.param("{{ params.d }}", {"params": {"d": None}}, id="params-None"),
        pytest.param("{{ params.d }}", {"params": {"d": ""}}, id="params-empty"),
    ],
)
def test_set_date_rendering_to_nothing_is_refused(
    qstash, requests_mock, name: str, template: str, template_context: dict[str, Any]
):
    qstash(10)
    op = rendered(make_op(labels="a", **{name: template}), **template_context)
    with pytest.raises(AirflowFailException, match=f"{name} is templated but rendered empty") as err:
        op.execute(ti_context())
    assert "data interval" in str(err.value)
    assert requests_mock.call_count == 0


@pytest.mark.parametrize("deferrable", [False, True])
def test_zero_width_window_is_refused_naming_cron_data_interval_timetable(qstash, requests_mock, deferrable: bool):
    qstash(10)
    op = rendered(
        make_op(
            labels="a", from_date="{{ data_interval_start }}", to_date="{{ data_interval_end }}", deferrable=deferrable
        ),
        data_interval_start=MAY_1,
        data_interval_end=MAY_1,
    )
    with pytest.raises(AirflowFailException, match="zero-width") as err:
        op.execute(ti_context())
    assert "CronDataIntervalTimetable" in str(err.value)
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"labels": "a", "batch_size": 0}, "batch_size", id="batch-size-0"),
        pytest.param({"labels": "a", "batch_size": "501"}, "batch_size", id="batch-size-501"),
        pytest.param({"labels": "a", "max_batches": 0}, "max_batches", id="max-batches-0"),
        # "²" is a digit to str.isdigit() but not to int(): still a clear refusal, not a bare int() error.
        pytest.param({"labels": "a", "max_batches": "²"}, "max_batches must be a whole number", id="max-batches-sup2"),
        pytest.param({"labels": "a", "cancel_all": "yes"}, "cancel_all", id="cancel-all-text"),
        pytest.param({"labels": "a", "from_date": MAY_2, "to_date": MAY_1}, "after to_date", id="reversed-window"),
        pytest.param({"labels": "a", "from_date": 1_714_521_600}, "Unix seconds", id="epoch-seconds"),
        pytest.param({"message_ids": "m1", "labels": "a"}, "cannot be combined", id="ids-with-filters"),
        pytest.param({"labels": "['a', 1]"}, "must be a string", id="non-string-item"),
        pytest.param({"labels": ["a,b"]}, "contains a comma", id="comma-inside-a-list-item"),
        pytest.param({"labels": "['a,b']"}, "contains a comma", id="comma-inside-list-text"),
    ],
)
def test_bad_input_is_refused_before_any_request(qstash, requests_mock, kwargs: dict[str, Any], message: str):
    qstash(10)
    with pytest.raises(AirflowFailException, match=message):
        make_op(**kwargs).execute(ti_context())
    assert requests_mock.call_count == 0


# --------------------------------------------------------------------------- to_date pinning


@pytest.mark.parametrize("to_date", [None, "now", "{{ params.t or 'now' }}"])
def test_unset_to_date_is_pinned_to_the_task_start_in_every_batch(qstash, requests_mock, struct_logs, to_date: Any):
    fake = qstash(1234)
    op = rendered(make_op(labels="a", to_date=to_date, batch_size=500), params={"t": None})
    result = op.execute(ti_context())
    assert requests_mock.call_count == 4
    assert fake.pending == 0
    for request in requests_mock.request_history:
        assert [v for k, v in query_of(request) if k == "toDate"] == [str(TASK_START_MS)]
    assert result["to_date"] == TASK_START_MS
    if to_date is None:
        assert any("pinned" in entry["event"] and str(TASK_START_MS) in entry["event"] for entry in struct_logs)


def test_pinning_is_logged_only_when_to_date_was_not_given(qstash, struct_logs):
    qstash(0)
    make_op(labels="a", to_date=MAY_2).execute(ti_context())
    assert not any("pinned" in entry["event"] for entry in struct_logs)


def test_without_a_task_instance_to_date_is_pinned_to_now(qstash, requests_mock):
    qstash(0)
    before = pendulum.now("UTC").int_timestamp * 1000
    result = make_op(labels="a").execute({})
    after = (pendulum.now("UTC").int_timestamp + 1) * 1000
    assert before <= result["to_date"] <= after
    assert dict(query_of(requests_mock.request_history[0]))["toDate"] == str(result["to_date"])


def test_message_ids_send_no_to_date(qstash, requests_mock):
    qstash(600)
    op = make_op(message_ids=["m1", "m2"], batch_size=500)
    result = op.execute(ti_context())
    assert requests_mock.call_count == 3
    for request in requests_mock.request_history:
        keys = {k for k, _ in query_of(request)}
        assert "toDate" not in keys
        assert "fromDate" not in keys
    assert result["to_date"] is None


# --------------------------------------------------------------------------- max_batches


def test_max_batches_reached_fails_with_the_total_and_a_rerun_finishes(qstash, requests_mock):
    fake = qstash(700)
    first = make_op(labels="a", batch_size=100, max_batches=5)
    with pytest.raises(AirflowException, match="max_batches=5 reached") as err:
        first.execute(ti_context())
    assert "Cancelled 500 message(s) in 5 batch(es)" in str(err.value)
    assert requests_mock.call_count == 5
    assert fake.pending == 200

    second = make_op(labels="a", batch_size=100, max_batches=5)
    result = second.execute(ti_context())
    assert requests_mock.call_count == 5 + 3
    assert result["cancelled"] == 200
    assert result["batches"] == 3
    assert fake.pending == 0


def test_max_batches_not_reached_succeeds(qstash, requests_mock):
    qstash(400)
    result = make_op(labels="a", batch_size=100, max_batches=5).execute(ti_context())
    assert (result["cancelled"], result["batches"], requests_mock.call_count) == (400, 5, 5)


# --------------------------------------------------------------------------- failures


def test_partial_failure_then_success_finishes_with_the_acknowledged_totals(qstash, requests_mock):
    def fail_second_call_after_cancelling_some(call: int, fake: PendingMessages) -> tuple[int, dict[str, Any]] | None:
        if call == 2:
            fake.pending -= 30  # QStash cancelled some of the batch, then failed
            return 500, {"error": "failed to cancel"}
        return None

    fake = qstash(250, fail_second_call_after_cancelling_some)
    result = make_op(labels="a", batch_size=100).execute(ti_context())

    assert fake.pending == 0
    # Five HTTP calls: 100, 500 (30 gone unacknowledged), retried 100, 20, 0.
    assert requests_mock.call_count == 5
    assert fake.cancelled_answers == [100, 100, 20, 0]
    assert result["cancelled"] == sum(fake.cancelled_answers) == 220
    assert result["batches"] == 4


def test_a_batch_that_keeps_failing_fails_the_task_with_the_running_total(qstash, requests_mock):
    def fail_from_third_call(call: int, fake: PendingMessages) -> tuple[int, dict[str, Any]] | None:
        return (500, {"error": "failed to cancel"}) if call >= 3 else None

    fake = qstash(1000, fail_from_third_call)
    with pytest.raises(AirflowException) as err:
        make_op(labels="a", batch_size=100).execute(ti_context())
    message = str(err.value)
    assert "batch 3 failed" in message
    assert "500" in message and "failed to cancel" in message
    assert "Cancelled 200 message(s) in 2 batch(es)" in message
    # Two good calls, then the first attempt and three retries (max_retries=3 in the test connection).
    assert requests_mock.call_count == 2 + 4
    assert fake.pending == 800


def test_a_client_error_is_not_retried_and_fails_with_the_status(qstash, requests_mock):
    requests_mock.delete(BULK_URL, status_code=401, json={"error": "unauthorized"})
    with pytest.raises(AirflowException, match="401") as err:
        make_op(labels="a").execute(ti_context())
    assert "Cancelled 0 message(s)" in str(err.value)
    assert requests_mock.call_count == 1


def test_on_kill_between_batches_stops_the_loop(qstash, requests_mock):
    op = make_op(labels="a", batch_size=100)

    def kill_after_second_call(call: int, fake: PendingMessages) -> None:
        if call == 2:
            op.on_kill()  # the batch in flight still finishes
        return None

    fake = qstash(1000, kill_after_second_call)
    with pytest.raises(AirflowException, match=r"stopped on request \(task killed\)") as err:
        op.execute(ti_context())
    assert "Cancelled 200 message(s) in 2 batch(es)" in str(err.value)
    assert requests_mock.call_count == 2
    assert fake.pending == 800


def test_on_kill_before_execute_is_harmless():
    make_op(labels="a").on_kill()


# --------------------------------------------------------------------------- deferrable


def test_deferrable_defers_with_the_normalised_filter_and_no_token(qstash, requests_mock):
    qstash(10)
    op = rendered(
        make_op(
            labels="{{ params.labels }}",
            queue_names="q",
            from_date="{{ data_interval_start }}",
            batch_size="250",
            max_batches=7,
            qstash_conn_id="qstash_default",
            deferrable=True,
        ),
        params={"labels": ["b", "a", "b"]},
        data_interval_start=MAY_1,
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ti_context())

    assert requests_mock.call_count == 0
    trigger = deferred.value.trigger
    assert isinstance(trigger, QStashBulkCancelTrigger)
    assert deferred.value.method_name == "execute_complete"
    cls_path, kwargs = trigger.serialize()
    assert cls_path == "airflow_qstash.triggers.qstash.QStashBulkCancelTrigger"
    assert kwargs == {
        "qstash_conn_id": "qstash_default",
        "bulk_filter": {
            "message_ids": [],
            "url_groups": [],
            "queue_names": ["q"],
            "urls": [],
            "hosts": [],
            "paths": [],
            "labels": ["b", "a"],
            "flow_control_keys": [],
            "schedule_ids": [],
            "caller_ips": [],
            "from_date": MAY_1_MS,
            "to_date": TASK_START_MS,
            "select_all": False,
        },
        "batch_size": 250,
        "max_batches": 7,
        "action_timeout": DEFAULT_ACTION_TIMEOUT,
        "resume_action_ids": [],
    }
    serialized = json.dumps(kwargs)
    assert TEST_TOKEN not in serialized
    assert TEST_TOKEN not in repr(trigger.serialize())


def test_deferrable_uses_the_given_connection_id(monkeypatch: pytest.MonkeyPatch):
    from tests.conftest import connection_json

    monkeypatch.setenv("AIRFLOW_CONN_OTHER_QSTASH", connection_json())
    op = make_op(labels="a", qstash_conn_id="other_qstash", deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ti_context())
    assert deferred.value.trigger.serialize()[1]["qstash_conn_id"] == "other_qstash"


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"labels": "[]"}, id="empty-filter"),
        pytest.param({"labels": "a", "batch_size": 0}, id="bad-batch-size"),
        pytest.param({"labels": "a", "from_date": "None"}, id="date-rendered-None"),
    ],
)
def test_deferrable_bad_input_fails_before_deferral(qstash, requests_mock, kwargs: dict[str, Any]):
    qstash(10)
    op = make_op(deferrable=True, **kwargs)
    with pytest.raises(AirflowFailException):
        op.execute(ti_context())
    assert requests_mock.call_count == 0


def test_execute_complete_returns_the_sync_summary_shape(qstash):
    qstash(3)
    sync_result = make_op(labels="a", from_date=MAY_1).execute(ti_context())

    event = {
        "status": "success",
        "cancelled": 1234,
        "batches": 4,
        "rounds": 4,
        "mode": "batched",
        "action_ids": [],
        "left": None,
        "unconfirmed": 0,
        "from_date": MAY_1_MS,
        "to_date": TASK_START_MS,
        "filters": "labels=['a']",
        "duration_seconds": 0.5,
    }
    result = make_op(labels="a", deferrable=True).execute_complete(ti_context(), event)
    assert set(result) == set(sync_result) == SUMMARY_KEYS
    assert result == {k: v for k, v in event.items() if k != "status"}


def test_execute_complete_with_an_error_event_fails_with_its_message():
    event = {
        "status": "error",
        "message": "QStash bulk cancel incomplete: max_batches=3 reached. Cancelled 300 message(s) in 3 batch(es)",
        "cancelled": 300,
        "batches": 3,
    }
    with pytest.raises(AirflowException) as err:
        make_op(labels="a", deferrable=True).execute_complete(ti_context(), event)
    assert str(err.value) == event["message"]


def test_execute_complete_with_a_malformed_event_fails():
    with pytest.raises(AirflowException, match="trigger failed"):
        make_op(labels="a", deferrable=True).execute_complete(ti_context(), {"unexpected": True})


DEFAULT_DEFERRABLE_PROBE = textwrap.dedent(
    """
    from airflow_qstash.operators.qstash import QStashBulkCancelOperator
    print("deferrable=%r" % QStashBulkCancelOperator(task_id="t", labels="a").deferrable)
    print("explicit=%r" % QStashBulkCancelOperator(task_id="t", labels="a", deferrable=False).deferrable)
    """
)


@pytest.mark.parametrize("setting", [True, False])
def test_deferrable_defaults_to_operators_default_deferrable(tmp_path: Path, setting: bool):
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(setting),
    }
    probe = subprocess.run(
        [sys.executable, "-c", DEFAULT_DEFERRABLE_PROBE],
        env=env,
        cwd=Path(__file__).resolve().parents[4],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    assert f"deferrable={setting!r}" in probe.stdout
    assert "explicit=False" in probe.stdout


# --------------------------------------------------------------------------- the token stays secret


def test_token_is_sent_but_never_logged_returned_or_raised(qstash, requests_mock, caplog, capsys, struct_logs):
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    fake = qstash(700)
    op = make_op(labels="a", batch_size=100, max_batches=3)
    texts.append(repr(op))
    with pytest.raises(AirflowException) as max_err:
        op.execute(ti_context())
    texts.append(str(max_err.value))

    op = make_op(labels="a", batch_size=500)
    result = op.execute(ti_context())
    texts += [repr(op), repr(result), json.dumps(result)]
    assert fake.pending == 0

    requests_mock.delete(BULK_URL, status_code=500, json={"error": "failed to cancel"})
    with pytest.raises(AirflowException) as fail_err:
        make_op(labels="a").execute(ti_context())
    texts.append(str(fail_err.value))
    texts.append(repr(fail_err.value.__cause__))

    requests_mock.delete(BULK_URL, status_code=401, json={"error": "invalid token"})
    with pytest.raises(AirflowException) as auth_err:
        make_op(labels="a").execute(ti_context())
    texts.append(str(auth_err.value))

    with pytest.raises(TaskDeferred) as deferred:
        make_op(labels="a", deferrable=True).execute(ti_context())
    texts.append(repr(deferred.value.trigger.serialize()))

    captured = capsys.readouterr()
    texts += [caplog.text, log_text(struct_logs), captured.out, captured.err]

    # The token did travel, in the Authorization header only.
    assert all(r.headers["Authorization"] == f"Bearer {TEST_TOKEN}" for r in requests_mock.request_history)
    assert all(TEST_TOKEN not in r.url for r in requests_mock.request_history)
    # And the logs were captured at all (so the check below is not vacuous).
    assert "Batch 1: cancelled 100" in log_text(struct_logs)
    for text in texts:
        assert TEST_TOKEN not in text


# --------------------------------------------------------------------------- refusals skip Airflow's retries


def test_a_refusal_fails_the_task_without_retries_and_sends_nothing(qstash: Callable[..., PendingMessages]) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    fake = qstash(pending=10)
    op = rendered(make_op(labels="{{ params.labels }}", retries=3), params={"labels": []})
    with pytest.raises(AirflowFailException, match="labels is templated but rendered empty") as info:
        op.execute(ti_context())
    assert isinstance(info.value.__cause__, QStashInputError)  # the refusal that says why
    assert fake.calls == 0


def test_an_undefined_data_interval_on_a_manual_run_explains_itself() -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    # Airflow 3.3 gives a manual run no data_interval_start at all; Jinja's StrictUndefined raises.
    op = make_op(labels="a", from_date="{{ data_interval_start }}", to_date="{{ data_interval_end }}")
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    with pytest.raises(AirflowFailException, match="manual or API-triggered run has no data interval") as info:
        op.render_template_fields(ti_context(), jinja_env=env)
    assert "data_interval_start" in str(info.value)


def test_other_undefined_template_variables_are_not_relabelled() -> None:
    import jinja2

    op = make_op(labels="{{ no_such_thing }}")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    with pytest.raises(jinja2.UndefinedError, match="no_such_thing"):
        op.render_template_fields(ti_context(), jinja_env=env)


def test_deferrable_checks_the_connection_and_url_length_before_deferring(
    qstash: Callable[..., PendingMessages], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    fake = qstash(pending=10)
    too_long = [f"label-{i:05d}-{'x' * 40}" for i in range(200)]  # ~10 KB of labels: cannot be split
    op = make_op(labels=too_long, deferrable=True)
    with pytest.raises(AirflowFailException, match="more than the"):
        op.execute(ti_context())
    serve_connections(monkeypatch, {"qstash_default": MISSING})
    op = make_op(labels="a", deferrable=True)
    with pytest.raises(Exception, match="qstash_default") as info:
        op.execute(ti_context())
    assert not isinstance(info.value, TaskDeferred)
    assert fake.calls == 0


def test_from_date_after_the_pinned_to_date_names_the_task_start() -> None:
    op = make_op(labels="a", from_date=TASK_START + dt.timedelta(hours=1))
    with pytest.raises(AirflowFailException, match="after the task's start"):
        op.execute(ti_context())


# --------------------------------------------------------------------------- literal or templated, optional_filters


@pytest.mark.parametrize("literal", ["none", "None", "null"])
def test_an_untemplated_literal_is_the_value_itself(qstash, requests_mock, literal: str):
    qstash(0)
    rendered(make_op(labels=literal, queue_names="q1")).execute(ti_context())
    assert sent_query(requests_mock) == sorted(
        [("label", literal), ("queueName", "q1"), ("toDate", str(TASK_START_MS)), ("count", "500")]
    )


try:  # Airflow 2: its templater resolves only a ResolveMixin
    from airflow.utils.mixins import ResolveMixin
except ImportError:  # Airflow 3
    from airflow.sdk.definitions._internal.mixins import ResolveMixin  # type: ignore[no-redef]


class FakeXComArg(ResolveMixin):
    """Stands for an XComArg: Airflow calls ``resolve`` when it renders the field."""

    def __init__(self, value: Any):
        self.value = value

    def iter_references(self) -> tuple[()]:
        """No upstream task: nothing for Airflow to wire as a dependency."""
        return ()

    def resolve(self, context: Any, *, include_xcom: bool = True) -> Any:
        return self.value


def test_init_tells_templated_from_literal_values_without_changing_them():
    xcom = FakeXComArg(["a"])
    op = make_op(
        labels="{{ params.labels }}",
        queue_names="none",
        urls=["https://x/a", "{{ params.u }}"],
        hosts=xcom,
        paths=["/p"],
        from_date=MAY_1,
        to_date="{% if params.t %}{{ params.t }}{% endif %}",
    )
    assert op.templated == ("urls", "hosts", "labels", "to_date")
    assert op.set_by_author == ("queue_names", "urls", "hosts", "paths", "labels", "from_date", "to_date")
    assert op.hosts is xcom
    assert op.queue_names == "none"


def test_a_dag_with_its_own_jinja_delimiters_marks_those_as_templates():
    from airflow.providers.common.compat.sdk import DAG

    dag = DAG("custom_delimiters", schedule=None, jinja_environment_kwargs={"variable_start_string": "[["})
    op = QStashBulkCancelOperator(task_id="t", dag=dag, labels="[[ params.labels ]]", queue_names="{{ q }}")
    assert op.templated == ("labels",)


def test_an_xcom_value_that_resolves_empty_is_refused_unless_optional(qstash, requests_mock):
    qstash(10)
    op = rendered(make_op(labels=FakeXComArg([]), queue_names="q"))
    with pytest.raises(AirflowFailException, match="labels is templated but rendered empty"):
        op.execute(ti_context())
    assert requests_mock.call_count == 0
    op = rendered(make_op(labels=FakeXComArg([]), queue_names="q", optional_filters=["labels"]))
    op.execute(ti_context())
    assert query_of(requests_mock.request_history[0])[0] == ("queueName", "q")


@pytest.mark.parametrize(
    ("optional_filters", "fragment"),
    [
        pytest.param(["labels", "label"], "unknown filter(s) ['label']", id="unknown-name"),
        pytest.param(["labels", "batch_size"], "unknown filter(s) ['batch_size']", id="not-a-filter"),
        pytest.param("labels", "must be a list of filter names", id="a-string"),
        pytest.param({"labels": True}, "must be a list of filter names", id="a-dict"),
    ],
)
def test_optional_filters_is_validated_when_the_dag_is_parsed(optional_filters: Any, fragment: str):
    with pytest.raises(AirflowFailException) as err:
        make_op(labels="a", optional_filters=optional_filters)
    assert fragment in str(err.value)


def test_optional_filters_are_kept_in_filter_order():
    op = make_op(labels="a", optional_filters=("to_date", "labels", "urls", "labels"))
    assert op.optional_filters == ("urls", "labels", "to_date")


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_optional_filters_still_leave_the_no_filter_rule(qstash, requests_mock, no_deferral, deferrable: bool):
    qstash(10)
    op = rendered(
        make_op(
            labels="{{ params.labels }}",
            queue_names="{{ params.queues }}",
            optional_filters=["labels", "queue_names"],
            deferrable=deferrable,
        ),
        params={"labels": [], "queues": None},
    )
    with pytest.raises(AirflowFailException) as err:
        op.execute(ti_context())
    assert "No filter given" in str(err.value)
    assert "queue_names, labels rendered empty and are optional" in str(err.value)
    assert "set cancel_all=True" in str(err.value)
    assert requests_mock.call_count == 0
    assert no_deferral == []


# --------------------------------------------------------------------------- Jinja filters, really rendered


LABELS = {"labels": [" b", "a ", "", "b"], "one": "a", "tags": {"b", "a"}, "mapping": {"a": 1}}


@pytest.mark.parametrize("build", ENVIRONMENTS)
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
@pytest.mark.parametrize(
    ("template", "kind"),
    [
        pytest.param("{{ params.labels | select }}", "generator", id="select"),
        pytest.param("{{ params.labels | reject }}", "generator", id="reject"),
        pytest.param("{{ params.labels | map('trim') }}", "generator", id="map-trim"),
        pytest.param("{{ params.labels | unique }}", "generator", id="unique"),
        pytest.param("{{ params.labels | reverse }}", "list_reverseiterator", id="reverse"),
        pytest.param("{{ params.tags }}", "set", id="set"),
        pytest.param("{{ params.mapping }}", "dict", id="dict"),
        pytest.param("{{ params.mapping.keys() }}", "dict_keys", id="dict-keys"),
        pytest.param("{{ params.mapping | dictsort }}", "labels[0] is tuple", id="dictsort"),
    ],
)
def test_a_rendering_that_is_not_a_list_is_refused_naming_its_type(
    qstash,
    requests_mock,
    no_deferral,
    build: Callable[..., QStashBulkCancelOperator],
    template: str,
    kind: str,
    deferrable: bool,
):
    qstash(10)
    op = build(labels=template, deferrable=deferrable)
    op.render_template_fields(ti_context(params=LABELS))
    with pytest.raises(AirflowFailException) as err:
        op.execute(ti_context())
    message = str(err.value)
    assert kind in message
    assert message.startswith("labels")
    if kind in ("generator", "list_reverseiterator"):
        assert "End the template with | list" in message
    assert requests_mock.call_count == 0
    assert no_deferral == []


@pytest.mark.parametrize("build", ENVIRONMENTS)
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("{{ params.labels | select | list }}", ["a", "b"], id="select-list"),
        pytest.param("{{ params.labels | map('trim') | select | list }}", ["a", "b"], id="map-trim-list"),
        pytest.param("{{ params.labels | map('trim') | select | unique | list }}", ["a", "b"], id="unique-list"),
        pytest.param("{{ params.labels | select | reverse | list }}", ["a", "b"], id="reverse-list"),
        pytest.param("{{ params.labels | select | list | tojson }}", ["a", "b"], id="tojson"),
        pytest.param("{{ params.labels | select | join(',') }}", ["a", "b"], id="join"),
        pytest.param("{{ params.tags | sort }}", ["a", "b"], id="set-sorted"),
        pytest.param("{{ params.one }}", ["a"], id="single"),
        pytest.param("{{ params.mapping.keys() | list }}", ["a"], id="dict-keys-list"),
    ],
)
def test_list_renderings_are_accepted(
    qstash, requests_mock, build: Callable[..., QStashBulkCancelOperator], template: str, expected: list[str]
):
    qstash(0)
    op = build(labels=template)
    op.render_template_fields(ti_context(params=LABELS))
    op.execute(ti_context())
    assert sorted(v for k, v in sent_query(requests_mock) if k == "label") == expected


@pytest.mark.parametrize("url", ["https://x/Foo_(bar)", "https://en.example/wiki/Python_(language)"])
def test_a_value_ending_in_a_parenthesis_is_a_value(qstash, requests_mock, url: str):
    qstash(0)
    op = rendered(make_op(urls="{{ params.url }}"), params={"url": url})
    op.execute(ti_context())
    assert ("url", url) in sent_query(requests_mock)


# --------------------------------------------------------------------------- bounds that bound nothing


def test_a_to_date_after_the_task_start_is_pinned_to_the_start(qstash, requests_mock, struct_logs):
    fake = qstash(700)
    result = make_op(labels="a", to_date="2099-01-01", batch_size=500).execute(ti_context())
    assert fake.pending == 0
    for request in requests_mock.request_history:
        assert dict(query_of(request))["toDate"] == str(TASK_START_MS)
    assert result["to_date"] == TASK_START_MS
    assert any("pinned" in entry["event"] and str(TASK_START_MS) in entry["event"] for entry in struct_logs)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
@pytest.mark.parametrize(
    ("kwargs", "template_context", "phrase"),
    [
        pytest.param({"to_date": "2099-01-01"}, {}, "is at or after the task's start", id="future-to-date-alone"),
        pytest.param({"to_date": TASK_START}, {}, "is at or after the task's start", id="to-date-at-task-start"),
        pytest.param(
            {"to_date": "{{ params.t or 0 }}", "labels": "a"}, {"params": {"t": None}}, "use 'now'", id="to-date-or-0"
        ),
        pytest.param({"to_date": 0, "labels": "a"}, {}, "use 'now'", id="to-date-0"),
        pytest.param({"from_date": "1999-12-31", "labels": "a"}, {}, "before 2000-01-01", id="from-1999"),
        pytest.param({"to_date": dt.datetime(1995, 1, 1), "labels": "a"}, {}, "before 2000-01-01", id="to-1995"),
    ],
)
def test_bounds_that_bound_nothing_are_refused_before_any_request(
    qstash,
    requests_mock,
    no_deferral,
    kwargs: dict[str, Any],
    template_context: dict[str, Any],
    phrase: str,
    deferrable: bool,
):
    qstash(10)
    op = rendered(make_op(deferrable=deferrable, **kwargs), **template_context)
    with pytest.raises(AirflowFailException) as err:
        op.execute(ti_context())
    assert phrase in str(err.value)
    assert requests_mock.call_count == 0
    assert no_deferral == []


# --------------------------------------------------------------------------- max_batches default


@pytest.mark.parametrize(
    ("max_batches", "template_context"),
    [
        pytest.param(None, {}, id="None"),
        pytest.param("{{ params.mb }}", {"params": {"mb": None}}, id="renders-None"),
        pytest.param("{{ params.mb or '' }}", {"params": {"mb": None}}, id="renders-empty"),
    ],
)
def test_max_batches_defaults_to_a_finite_bound(max_batches: Any, template_context: dict[str, Any]):
    op = rendered(make_op(labels="a", max_batches=max_batches), **template_context)
    assert op.plan(TASK_START_MS).max_batches == DEFAULT_MAX_REQUESTS == 100_000


def test_the_default_bound_travels_to_the_trigger_and_the_log(qstash, struct_logs):
    qstash(0)
    with pytest.raises(TaskDeferred) as deferred:
        make_op(labels="a", deferrable=True).execute(ti_context())
    assert deferred.value.trigger.serialize()[1]["max_batches"] == 100_000
    assert any("at most 100000 requests" in entry["event"] for entry in struct_logs)


def test_max_batches_is_documented_as_counting_requests_with_its_default():
    doc = QStashBulkCancelOperator.__doc__ or ""
    block = doc.split(":param max_batches:", 1)[1].split(":param", 1)[0]
    assert "requests" in block and "split into several" in block and "100,000" in block


# --------------------------------------------------------------------------- action_timeout


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
@pytest.mark.parametrize(("form", "seconds"), [(90, 90.0), (None, DEFAULT_ACTION_TIMEOUT)], ids=["90", "blank"])
def test_a_templated_action_timeout_reaches_both_paths(
    qstash, requests_mock, deferrable: bool, form: Any, seconds: float
):
    """A form field feeds it (the on-demand DAG's Advanced section): rendered, it bounds either path."""
    op = rendered(
        make_op(labels="a", action_timeout="{{ params.timeout }}", deferrable=deferrable), params={"timeout": form}
    )
    assert op.plan(TASK_START_MS).action_timeout == seconds
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(ti_context())
        assert deferred.value.trigger.serialize()[1]["action_timeout"] == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), (90, 90.0), ("90", 90.0), (dt.timedelta(minutes=2), 120.0), ("None", None), ("  ", None)],
)
def test_action_timeout_reaches_the_run(value: Any, seconds: float | None):
    op = make_op(labels="a") if value is None else make_op(labels="a", action_timeout=value)
    assert op.plan(TASK_START_MS).action_timeout == (DEFAULT_ACTION_TIMEOUT if seconds is None else seconds)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
@pytest.mark.parametrize("value", [0, -5, "nan", "inf", "soon", True])
def test_a_bad_action_timeout_is_refused_before_any_request(
    qstash, requests_mock, no_deferral, value: Any, deferrable: bool
):
    qstash(10)
    with pytest.raises(AirflowFailException, match="action_timeout must be"):
        make_op(labels="a", action_timeout=value, deferrable=deferrable).execute(ti_context())
    assert requests_mock.call_count == 0
    assert no_deferral == []
