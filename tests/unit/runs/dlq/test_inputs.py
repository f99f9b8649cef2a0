"""The DLQ run's inputs, without I/O: the DLQ filter, the refusals, the bounds and the retry overrides."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.filters import BULK_CANCEL_FILTERS, DLQ_ACTION_FILTERS, DLQ_FILTERS, DLQFilter
from airflow_qstash.inputs import (
    DEFAULT_MAX_REQUESTS,
    DLQ_MAX_COUNT,
    parse_bound,
    parse_count,
    read_rendered_filter,
    retry_overrides,
)
from airflow_qstash.runs.dlq import DLQDeleteRun, DLQRetryRun, make_run

NOW_MS = 1_795_000_000_000
MAY_1_MS = 1_714_521_600_000

#: The DLQ filters and the query parameter each must be sent as (the spec's names, stated independently).
SPEC_PARAMS = {
    "dlq_ids": "dlqIds",
    "message_ids": "messageId",
    "urls": "url",
    "url_groups": "topicName",
    "schedule_ids": "scheduleId",
    "queue_names": "queueName",
    "labels": "label",
    "flow_control_keys": "flowControlKey",
    "caller_ips": "callerIp",
    "response_statuses": "responseStatus",
    "from_date": "fromDate",
    "to_date": "toDate",
}


def rendered(action: str = "delete", select_all: Any = False, optional: tuple[str, ...] = (), **values: Any):
    """Read values as the operator does after rendering (with its action's table): every given value templated."""
    return read_rendered_filter(
        values,
        set_by_author=list(values),
        templated=list(values),
        optional=optional,
        select_all=select_all,
        now_ms=NOW_MS,
        filter_class=DLQFilter,
        table=DLQ_ACTION_FILTERS[action],
    )


def built(action: str = "delete", **values: Any) -> DLQFilter:
    """Build values given in Python as the hook does, with its action's table."""
    return DLQFilter.build(table=DLQ_ACTION_FILTERS[action], **values)


# --------------------------------------------------------------------------- the filter


def test_dlq_filter_fields_follow_the_table():
    assert DLQFilter.TABLE is DLQ_FILTERS
    assert {spec.name: spec.param for spec in DLQ_FILTERS.specs} == SPEC_PARAMS


@pytest.mark.parametrize(
    ("name", "value", "sent"),
    [
        ("labels", ["a", "b"], [("label", "a"), ("label", "b")]),
        ("response_statuses", [500, "503"], [("responseStatus", "500"), ("responseStatus", "503")]),
        ("message_ids", "msg_1", [("messageId", "msg_1")]),
        ("url_groups", "g", [("topicName", "g")]),
        ("caller_ips", ["1.2.3.4"], [("callerIp", "1.2.3.4")]),
    ],
)
def test_each_filter_goes_out_under_its_spec_name(name: str, value: Any, sent: list[tuple[str, str]]):
    assert built("delete", **{name: value}).to_query_params() == sent


def test_dates_go_out_as_unix_milliseconds():
    value = built("delete", labels="a", from_date=dt.datetime(2024, 5, 1), to_date=MAY_1_MS + 1)
    assert value.to_query_params() == [("label", "a"), ("fromDate", str(MAY_1_MS)), ("toDate", str(MAY_1_MS + 1))]


@pytest.mark.parametrize("action", ["delete", "retry"])
def test_no_filter_is_refused_naming_the_actions_own_flag(action: str):
    with pytest.raises(QStashInputError, match=f"{action}_all=True") as info:
        built(action)
    assert "select_all" not in str(info.value)
    assert "dead-letter queue" in str(info.value)


@pytest.mark.parametrize("action", ["delete", "retry"])
def test_a_value_quoted_in_a_refusal_is_quoted_as_given(action: str):
    """The flag is named where the refusal is written, so no text is rewritten afterwards: a value that
    looks like the flag's generic name reaches the message unchanged."""
    with pytest.raises(QStashInputError, match=r"labels\[0\]='select_all=True,x' contains a comma"):
        built(action, labels=["select_all=True,x"])
    with pytest.raises(QStashInputError, match=r"labels\[0\]='select_all must,x' contains a comma"):
        rendered(action, labels='["select_all must,x"]')


def test_the_flag_allows_a_run_with_no_filter():
    value = built("retry", retry_all=True)
    assert value.to_query_params() == []
    assert value.select_all is True


@pytest.mark.parametrize("table", [DLQ_FILTERS, *DLQ_ACTION_FILTERS.values()], ids=["dlq", "delete", "retry"])
@pytest.mark.parametrize("name", ["hosts", "paths", "host", "path"])
def test_host_and_path_are_refused_with_the_reason_by_every_dlq_table(name: str, table: Any):
    """The DLQ table declares them (not a list beside it): building with the DLQ's own table or an
    action's refuses them alike, with the same words."""
    param = name.removesuffix("s")
    with pytest.raises(QStashInputError) as info:
        DLQFilter.build(table=table, labels="a", **{name: "x"})
    assert str(info.value) == (
        f"{name} is not a DLQ filter: QStash's DLQ endpoints reject the {param!r} parameter (400), so this run "
        "could not do what it says. Filter by urls (the whole destination URL) instead."
    )


def test_the_rejected_filters_are_declared_by_the_dlq_table_and_kept_by_each_actions():
    assert DLQ_FILTERS.rejected == {"hosts": "host", "paths": "path"}
    assert all(table.rejected == DLQ_FILTERS.rejected for table in DLQ_ACTION_FILTERS.values())
    assert BULK_CANCEL_FILTERS.rejected == {}


def test_dlq_ids_with_another_filter_are_refused():
    with pytest.raises(QStashInputError, match="dlq_ids cannot be combined with labels"):
        built("delete", dlq_ids=["d1"], labels="a")


def test_message_id_takes_one_value():
    with pytest.raises(QStashInputError, match="at most 1"):
        built("delete", message_ids=["m1", "m2"])


@pytest.mark.parametrize("bad", [["500x"], [True], "abc", [1.5]])
def test_response_statuses_must_be_whole_numbers(bad: Any):
    with pytest.raises(QStashInputError, match="response_statuses"):
        built("delete", response_statuses=bad)


def test_unknown_filter_is_refused():
    with pytest.raises(QStashInputError, match="Unknown filter"):
        built("delete", label="a")


def test_dict_round_trip_rebuilds_the_same_filter():
    value = built("retry", labels=["a"], response_statuses=[500], from_date=MAY_1_MS, to_date=NOW_MS)
    assert DLQFilter.from_dict(value.to_dict()) == value


# --------------------------------------------------------------------------- the operator's reader


def test_rendered_to_date_is_pinned_to_the_task_start():
    assert rendered(labels="a").to_date == NOW_MS
    assert rendered(labels="a", to_date="2099-01-01T00:00:00+00:00").to_date == NOW_MS
    assert rendered(labels="a", to_date=str(MAY_1_MS)).to_date == MAY_1_MS


def test_a_to_date_in_the_future_is_no_filter():
    with pytest.raises(QStashInputError, match="delete_all=True"):
        rendered(to_date="2099-01-01T00:00:00+00:00")


def test_a_template_that_renders_empty_is_refused_unless_optional():
    with pytest.raises(QStashInputError, match="labels is templated but rendered empty"):
        rendered(labels="None", queue_names="q1")
    assert rendered(labels="None", queue_names="q1", optional=("labels",)).labels == ()


def test_an_empty_form_is_refused_even_with_every_field_optional():
    fields = ("labels", "response_statuses", "from_date", "to_date")
    with pytest.raises(QStashInputError, match="retry_all=True"):
        rendered("retry", optional=fields, **dict.fromkeys(fields, "None"))


def test_rendered_response_statuses_read_a_jinja_list():
    assert rendered(response_statuses="[500, 503]").response_statuses == (500, 503)


def test_rendered_flag_reads_text():
    assert rendered(select_all="True").select_all is True
    with pytest.raises(QStashInputError, match="delete_all must be True or False"):
        rendered(select_all="yes")


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize(("value", "expected"), [(1, 1), (100, 100), ("42", 42), (" 7 ", 7)])
def test_batch_size_accepts_1_to_100(value: Any, expected: int):
    assert parse_count(value, "batch_size", maximum=DLQ_MAX_COUNT, what="QStash's DLQ count") == expected


@pytest.mark.parametrize("value", [0, 101, 500, -1, "1e2", True, None, 1.0, "²"])
def test_batch_size_outside_1_to_100_is_refused(value: Any):
    with pytest.raises(QStashInputError, match="batch_size must be a whole number from 1 to 100"):
        parse_count(value, "batch_size", maximum=DLQ_MAX_COUNT, what="QStash's DLQ count")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, DEFAULT_MAX_REQUESTS), ("None", DEFAULT_MAX_REQUESTS), ("", DEFAULT_MAX_REQUESTS), (3, 3), ("12", 12)],
)
def test_max_requests_defaults_to_a_finite_bound(value: Any, expected: int):
    assert parse_bound(value, "max_requests") == expected
    assert math.isfinite(parse_bound(value, "max_requests"))


@pytest.mark.parametrize("value", [0, -1, True, 2.5, "inf", "nan", "1_000"])
def test_max_requests_must_be_a_whole_number_from_1(value: Any):
    with pytest.raises(QStashInputError, match="max_requests"):
        parse_bound(value, "max_requests")


def test_make_run_builds_the_actions_run():
    value = built("delete", labels="a")
    assert isinstance(make_run("delete", value, batch_size=10), DLQDeleteRun)
    assert isinstance(make_run("retry", value, headers=()), DLQRetryRun)
    with pytest.raises(QStashInputError, match="action must be"):
        make_run("purge", value)


def test_a_run_refuses_anything_but_a_dlq_filter():
    with pytest.raises(QStashInputError, match="must be a DLQFilter"):
        DLQDeleteRun({"labels": ["a"]})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- retry overrides


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"retries": 0}, (("Upstash-Retries", "0"),)),
        ({"retries": "3"}, (("Upstash-Retries", "3"),)),
        ({"delay": 90}, (("Upstash-Delay", "90s"),)),
        ({"delay": "5m"}, (("Upstash-Delay", "300s"),)),
        ({"delay": dt.timedelta(hours=2)}, (("Upstash-Delay", "7200s"),)),
        ({"delay": 0}, (("Upstash-Delay", "0s"),)),
        ({"timeout": "1d"}, (("Upstash-Timeout", "86400s"),)),
        ({"headers": {"Upstash-Callback": "https://cb.example/x"}}, (("Upstash-Callback", "https://cb.example/x"),)),
        ({"headers": '{"upstash-retries": 1}'}, (("upstash-retries", "1"),)),
        ({"headers": "{'Upstash-Method': 'PUT'}"}, (("Upstash-Method", "PUT"),)),
        ({}, ()),
    ],
)
def test_overrides_become_upstash_headers(kwargs: dict[str, Any], expected: tuple[tuple[str, str], ...]):
    assert retry_overrides(**kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"retries": -1}, "retries must be a whole number from 0"),
        ({"retries": 1.5}, "retries must be a whole number"),
        ({"retries": True}, "retries must be a whole number"),
        ({"retries": float("nan")}, "retries must be a whole number"),
        ({"delay": float("inf")}, "delay must be whole seconds"),
        ({"delay": float("nan")}, "delay must be whole seconds"),
        ({"delay": -5}, "delay must be whole seconds"),
        ({"delay": 1.5}, "delay must be whole seconds"),
        ({"delay": "soon"}, "delay must be whole seconds"),
        ({"delay": 10**12}, "delay must be whole seconds"),
        ({"timeout": 0}, "timeout must be whole seconds > 0"),
        ({"headers": {"Authorization": "Bearer x"}}, "not an Upstash-\\* header"),
        ({"headers": {"X-Upstash-Retries": "1"}}, "not an Upstash-\\* header"),
        ({"headers": {"Upstash-Retries\r\nAuthorization": "1"}}, "not an Upstash-\\* header"),
        ({"headers": {"Upstash-Callback": "https://x\r\nAuthorization: Bearer y"}}, "line break"),
        ({"headers": {"Upstash-Callback": "a\x00b"}}, "cannot go in an HTTP header"),
        ({"headers": {"Upstash-Callback": ""}}, "is empty"),
        ({"headers": {"Upstash-Callback": ["a"]}}, "must be text or a whole number"),
        ({"headers": ["Upstash-Retries", "1"]}, "must be a dict"),
        ({"headers": "Upstash-Retries: 1"}, "must be a dict"),
        ({"retries": 0, "headers": {"upstash-RETRIES": "2"}}, "given twice \\(as retries= "),
        ({"headers": {"Upstash-Delay": "1s", "upstash-delay": "2s"}}, "given twice"),
    ],
)
def test_bad_overrides_are_refused_with_the_reason(kwargs: dict[str, Any], match: str):
    with pytest.raises(QStashInputError, match=match):
        retry_overrides(**kwargs)


def test_override_refusals_use_the_callers_names():
    with pytest.raises(QStashInputError, match="override_retries must"):
        retry_overrides(retries=-1, field_prefix="override_")
    with pytest.raises(QStashInputError, match=r"override_headers name 'X-A'"):
        retry_overrides(headers={"X-A": "1"}, field_prefix="override_")


def test_retry_run_validates_its_headers_again():
    value = built("retry", labels="a")
    assert DLQRetryRun(value, headers=[["Upstash-Retries", "0"]]).headers == (("Upstash-Retries", "0"),)
    with pytest.raises(QStashInputError, match="not an Upstash"):
        DLQRetryRun(value, headers=[["Authorization", "Bearer x"]])
