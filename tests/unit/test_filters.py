"""The filter tables and their value objects (:mod:`airflow_qstash.filters`): building, validation, the
query, the JSON form, the refusals of a filter as a whole; no network. The readers of single values are
``test_inputs.py``'s."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, fields

import pytest

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.filters import (
    BULK_CANCEL_FILTERS,
    DLQ_ACTION_FILTERS,
    DLQ_FILTERS,
    MAX_DLQ_RETENTION_MS,
    MAX_MESSAGE_DELAY_MS,
    BulkCancelFilter,
    DLQFilter,
    FilterSpec,
    FilterTable,
    FilterValue,
)
from airflow_qstash.inputs import MIN_DATE_MS

UTC = dt.timezone.utc
JAN_1_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
JAN_2_MS = JAN_1_MS + 86_400_000
NOW_MS = 1_760_000_000_000  # a task start some tests pin to (2025-10-09, in the past)


def test_filter_error_is_a_value_error():
    assert issubclass(QStashInputError, ValueError)


# --------------------------------------------------------------------------- BulkCancelFilter.build


def test_build_normalises_every_filter():
    bulk_filter = BulkCancelFilter.build(
        url_groups="g",
        queue_names=["q1", "q2"],
        urls=("https://example.com/hook",),
        hosts="example.com",
        paths="/hook",
        labels={"b", "a"},
        flow_control_keys="fk",
        schedule_ids="s1",
        caller_ips="203.0.113.7",
        from_date="2024-01-01 00:00:00+00:00",
        to_date=dt.datetime(2024, 1, 2),
    )
    assert bulk_filter.url_groups == ("g",)
    assert bulk_filter.queue_names == ("q1", "q2")
    assert bulk_filter.urls == ("https://example.com/hook",)
    assert bulk_filter.hosts == ("example.com",)
    assert bulk_filter.paths == ("/hook",)
    assert bulk_filter.labels == ("a", "b")
    assert bulk_filter.flow_control_keys == ("fk",)
    assert bulk_filter.schedule_ids == ("s1",)
    assert bulk_filter.caller_ips == ("203.0.113.7",)
    assert bulk_filter.from_date == JAN_1_MS
    assert bulk_filter.to_date == JAN_2_MS
    assert bulk_filter.message_ids == ()
    assert bulk_filter.select_all is False
    assert bulk_filter.active_filters() == [name for name in BULK_CANCEL_FILTERS.names if name != "message_ids"]
    assert bulk_filter.to_query_params() == [
        ("topicName", "g"),
        ("queueName", "q1"),
        ("queueName", "q2"),
        ("url", "https://example.com/hook"),
        ("host", "example.com"),
        ("path", "/hook"),
        ("label", "a"),
        ("label", "b"),
        ("flowControlKey", "fk"),
        ("scheduleId", "s1"),
        ("callerIp", "203.0.113.7"),
        ("fromDate", str(JAN_1_MS)),
        ("toDate", str(JAN_2_MS)),
    ]


@pytest.mark.parametrize(("name", "param"), [*BULK_CANCEL_FILTERS.list_params.items()])
def test_each_list_filter_alone_is_enough_and_maps_to_its_api_name(name, param):
    bulk_filter = BulkCancelFilter.build(**{name: ["v1", "v2"]})
    assert bulk_filter.active_filters() == [name]
    assert bulk_filter.to_query_params() == [(param, "v1"), (param, "v2")]


@pytest.mark.parametrize(("name", "param"), [*BULK_CANCEL_FILTERS.date_params.items()])
def test_each_date_filter_alone_is_enough_and_goes_out_as_ms(name, param):
    # now pinned a day later: a from_date more than a year before now would be no filter (#17.2)
    bulk_filter = BulkCancelFilter.build(now_ms=JAN_1_MS + 86_400_000, **{name: "2024-01-01T00:00:00Z"})
    assert bulk_filter.active_filters() == [name]
    assert bulk_filter.to_query_params() == [(param, str(JAN_1_MS))]


def test_build_message_ids_alone():
    bulk_filter = BulkCancelFilter.build(message_ids=["m1", "m2"])
    assert bulk_filter.message_ids == ("m1", "m2")
    assert bulk_filter.to_query_params() == [("messageIds", "m1"), ("messageIds", "m2")]


def test_build_cancel_all_without_filters_is_allowed_and_selects_everything():
    bulk_filter = BulkCancelFilter.build(cancel_all=True)
    assert bulk_filter.select_all is True
    assert bulk_filter.active_filters() == []
    assert bulk_filter.to_query_params() == []
    assert "ALL MESSAGES" in bulk_filter.describe()


def test_build_from_and_to_equal_is_allowed_in_python():
    # Only the operator's reader refuses a zero-width window (it is what a cron timetable renders).
    bulk_filter = BulkCancelFilter.build(labels="a", from_date=JAN_1_MS, to_date=JAN_1_MS)
    assert (bulk_filter.from_date, bulk_filter.to_date) == (JAN_1_MS, JAN_1_MS)


def test_from_date_zero_is_no_filter():
    bulk_filter = BulkCancelFilter.build(labels="a", from_date=0)
    assert bulk_filter.from_date is None
    assert bulk_filter.active_filters() == ["labels"]
    with pytest.raises(QStashInputError, match="No filter given"):
        BulkCancelFilter.build(from_date=0)
    with pytest.raises(QStashInputError, match="No filter given"):
        BulkCancelFilter.build(from_date="0")


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        pytest.param({}, ["No filter given", "EVERY message", "cancel_all=True"], id="nothing"),
        pytest.param(
            {name: None for name in BULK_CANCEL_FILTERS.list_params} | {"from_date": None, "to_date": None},
            ["No filter given", "cancel_all"],
            id="all-none",
        ),
        pytest.param({"labels": []}, ["labels is an empty list"], id="empty-list"),
        pytest.param({"labels": ""}, ["labels is empty", "leave labels unset (None)"], id="empty-string"),
        pytest.param({"hosts": "  ", "labels": "a"}, ["hosts is empty ('  ')"], id="blank-string"),
        pytest.param({"urls": (), "labels": "a"}, ["urls is an empty tuple"], id="empty-tuple-beside-a-filter"),
        pytest.param({"to_date": "2099-01-01"}, ["No filter given", "is in the future"], id="future-to-date-alone"),
        pytest.param({"to_date": 0}, ["to_date=0", "'now'"], id="to-date-zero"),
        pytest.param({"labels": "a", "from_date": "1999-12-31"}, ["from_date", "before 2000-01-01"], id="from-1999"),
        pytest.param({"labels": None}, ["No filter given"], id="none"),
        pytest.param({"message_ids": "m1", "labels": "a"}, ["message_ids", "labels"], id="ids-and-labels"),
        pytest.param(
            {"message_ids": ["m1"], "from_date": JAN_1_MS, "queue_names": "q"},
            ["message_ids", "queue_names", "from_date"],
            id="ids-and-dates",
        ),
        pytest.param({"message_ids": ["m1"], "to_date": JAN_1_MS}, ["message_ids", "to_date"], id="ids-and-to"),
        pytest.param({"from_date": JAN_2_MS, "to_date": JAN_1_MS}, ["from_date", "is after", "to_date"], id="from>to"),
        pytest.param({"labels": "a", "from_date": 1_704_067_200}, ["from_date", "Unix seconds"], id="seconds"),
        pytest.param({"labels": "a", "to_date": -5}, ["to_date", "negative"], id="negative"),
        pytest.param({"labels": "a", "to_date": 10**17}, ["to_date", "too large"], id="microseconds"),
        pytest.param({"labels": "a", "from_date": "yesterday-ish"}, ["from_date", "not a date"], id="unparseable"),
        pytest.param({"labels": "a", "from_date": True}, ["from_date", "boolean"], id="bool-date"),
        pytest.param({"labels": "a", "to_date": 1.5}, ["to_date", "float"], id="float-date"),
        pytest.param({"labels": ["a", ""]}, ["labels[1] is empty"], id="empty-item"),
        pytest.param({"hosts": ["a", 3]}, ["hosts[1] is int"], id="int-item"),
        pytest.param({"queue_names": 7}, ["queue_names", "not int"], id="wrong-type"),
        pytest.param({"caller_ips": {"ip": 1}}, ["caller_ips", "not dict"], id="dict"),
        pytest.param({"label": "a"}, ["Unknown filter", "label"], id="unknown-name"),
    ],
)
def test_build_refuses(kwargs, fragments):
    with pytest.raises(QStashInputError) as info:
        BulkCancelFilter.build(**kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_cancel_all_does_not_lift_the_other_refusals():
    with pytest.raises(QStashInputError, match="message_ids cannot be combined"):
        BulkCancelFilter.build(cancel_all=True, message_ids="m", labels="a")
    with pytest.raises(QStashInputError, match="is after"):
        BulkCancelFilter.build(cancel_all=True, from_date=JAN_2_MS, to_date=JAN_1_MS)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"labels": ["a"]}, "labels must be a tuple"),
        ({"labels": ("a", "")}, "labels must be a tuple of non-empty strings"),
        ({"hosts": ("a", 1)}, "hosts must be a tuple"),
        ({"labels": ("a",), "from_date": 1.5}, "from_date must be Unix milliseconds"),
        ({"labels": ("a",), "to_date": True}, "to_date must be Unix milliseconds"),
        ({"labels": ("a",), "to_date": "1704067200000"}, "to_date must be Unix milliseconds"),
        ({"select_all": "True"}, "select_all must be True or False"),
        ({"select_all": 1}, "select_all must be True or False"),
    ],
)
def test_constructor_validates_normalised_values(kwargs, fragment):
    with pytest.raises(QStashInputError) as info:
        BulkCancelFilter(**kwargs)
    assert fragment in str(info.value)


def test_filter_is_immutable():
    bulk_filter = BulkCancelFilter.build(labels="a")
    with pytest.raises(AttributeError):
        bulk_filter.labels = ()  # type: ignore[misc]


# --------------------------------------------------------------------------- to_dict / from_dict


@pytest.mark.parametrize(
    "bulk_filter",
    [
        pytest.param(
            BulkCancelFilter.build(
                url_groups=["g1", "g2"],
                queue_names="q",
                urls="https://example.com/ü?x=1",
                hosts="example.com",
                paths="/p",
                labels=["a", "b"],
                flow_control_keys="fk",
                schedule_ids="s",
                caller_ips="::1",
                from_date=JAN_1_MS,
                to_date=JAN_2_MS,
            ),
            id="every-filter",
        ),
        pytest.param(BulkCancelFilter.build(message_ids=["m1", "m2"]), id="message-ids"),
        pytest.param(BulkCancelFilter.build(cancel_all=True), id="cancel-all"),
        pytest.param(BulkCancelFilter.build(cancel_all=True, to_date=NOW_MS), id="cancel-all-pinned"),
    ],
)
def test_to_dict_from_dict_round_trip_through_json(bulk_filter):
    data = bulk_filter.to_dict()
    assert set(data) == {*BULK_CANCEL_FILTERS.names, "select_all"}
    assert all(isinstance(data[name], list) for name in BULK_CANCEL_FILTERS.list_params)
    rebuilt = BulkCancelFilter.from_dict(json.loads(json.dumps(data)))
    assert rebuilt == bulk_filter
    assert rebuilt.to_query_params() == bulk_filter.to_query_params()


def test_from_dict_trusts_what_the_operator_planned_whatever_the_clock_says():
    """The trigger's side does not judge again: a filter planned at the task's start (a from_date within the
    365 days QStash keeps messages) is rebuilt as it was on a triggerer that reads a clock two years later,
    where building it anew would be refused as no filter."""
    from tests.doubles.harness import pinned_clock

    start = 1_793_577_600_000  # 2026-11-02T00:00:00Z, the task's start
    planned = BulkCancelFilter.build(from_date=start - 30 * 86_400_000, now_ms=start)
    two_years_later = start + 2 * 365 * 86_400_000
    with pinned_clock(two_years_later):
        with pytest.raises(QStashInputError, match="No filter given"):
            BulkCancelFilter.build(from_date=planned.from_date)
        rebuilt = BulkCancelFilter.from_dict(json.loads(json.dumps(planned.to_dict())))
    assert rebuilt == planned
    assert rebuilt.to_query_params() == [("fromDate", str(start - 30 * 86_400_000))]


def test_from_dict_refuses_an_unknown_key():
    data = {**BulkCancelFilter.build(labels="a").to_dict(), "lables": ["b"]}
    with pytest.raises(TypeError, match="lables"):
        BulkCancelFilter.from_dict(data)


# --------------------------------------------------------------------------- the table and the value object


def test_the_bulk_cancel_table_declares_the_spec_names_in_query_order():
    assert [(spec.name, spec.param) for spec in BULK_CANCEL_FILTERS.specs] == [
        ("message_ids", "messageIds"),
        ("url_groups", "topicName"),
        ("queue_names", "queueName"),
        ("urls", "url"),
        ("hosts", "host"),
        ("paths", "path"),
        ("labels", "label"),
        ("flow_control_keys", "flowControlKey"),
        ("schedule_ids", "scheduleId"),
        ("caller_ips", "callerIp"),
        ("from_date", "fromDate"),
        ("to_date", "toDate"),
    ]
    assert BULK_CANCEL_FILTERS.ids_name == "message_ids"
    assert BULK_CANCEL_FILTERS.all_flag == "cancel_all"
    assert {spec.name: spec.param for spec in BULK_CANCEL_FILTERS.specs[:-2]} == BULK_CANCEL_FILTERS.list_params
    assert BULK_CANCEL_FILTERS.date_params == {"from_date": "fromDate", "to_date": "toDate"}
    assert BULK_CANCEL_FILTERS.renderers == dict.fromkeys(BULK_CANCEL_FILTERS.list_params, "json")


def test_the_value_object_fields_follow_the_table():
    assert [f.name for f in fields(BulkCancelFilter)] == [*BULK_CANCEL_FILTERS.names, "select_all"]


def test_a_value_object_whose_fields_drift_from_its_table_is_refused_when_defined():
    with pytest.raises(TypeError, match="must declare the fields"):

        @dataclass(frozen=True)
        class Drifted(FilterValue):
            TABLE = BULK_CANCEL_FILTERS
            labels: tuple[str, ...] = ()
            select_all: bool = False


def test_the_dlq_table_has_the_dlq_filters_and_no_host_or_path():
    params = {spec.param for spec in DLQ_FILTERS.specs}
    assert params == {
        "dlqIds",
        "messageId",
        "url",
        "topicName",
        "scheduleId",
        "queueName",
        "label",
        "flowControlKey",
        "callerIp",
        "responseStatus",
        "fromDate",
        "toDate",
    }
    assert DLQ_FILTERS.ids_name == "dlq_ids"
    assert "hosts" not in DLQ_FILTERS and "paths" not in DLQ_FILTERS
    assert DLQ_FILTERS["response_statuses"].item is int


@pytest.mark.parametrize(
    ("specs", "fragment"),
    [
        ((FilterSpec("a", "x"), FilterSpec("a", "y")), "unique"),
        ((FilterSpec("a", "x"), FilterSpec("b", "x")), "unique"),
        ((FilterSpec("from_date", "fromDate", "date"),), "exactly the dates"),
        ((FilterSpec("a", "a", ids=True), FilterSpec("b", "b", ids=True)), "at most one ids filter"),
    ],
)
def test_a_malformed_table_is_refused(specs, fragment):
    dates = (
        ()
        if any(spec.kind == "date" for spec in specs)
        else (
            FilterSpec("from_date", "fromDate", "date"),
            FilterSpec("to_date", "toDate", "date"),
        )
    )
    with pytest.raises(ValueError, match=fragment):
        FilterTable(*specs, *dates, all_flag="all", everything="everything", selects_all="ALL")


def test_the_dlq_value_object_sits_with_the_bulk_cancel_one():
    from airflow_qstash import filters

    assert [f.name for f in fields(filters.DLQFilter)] == [*DLQ_FILTERS.names, "select_all"]


WIPE_ALL_FILTERS = BULK_CANCEL_FILTERS.with_all_flag("wipe_all")


def test_the_callers_table_names_its_all_flag_in_the_refusals():
    """The flag's name in a refusal is the one the caller's table declares (``all_flag``), read as that
    keyword; the value object calls it ``select_all`` whatever the caller's name."""
    with pytest.raises(QStashInputError, match=r"set wipe_all=True if that is really meant") as info:
        BulkCancelFilter.build(table=WIPE_ALL_FILTERS)
    assert "cancel_all" not in str(info.value) and "select_all" not in str(info.value)
    with pytest.raises(QStashInputError, match=r"^wipe_all must be True or False, not 'yes'"):
        BulkCancelFilter.build(labels="a", wipe_all="yes", table=WIPE_ALL_FILTERS)
    with pytest.raises(QStashInputError, match=r"Unknown filter\(s\) \['cancel_all'\]"):
        BulkCancelFilter.build(labels="a", cancel_all=True, table=WIPE_ALL_FILTERS)
    assert BulkCancelFilter.build(wipe_all=True, table=WIPE_ALL_FILTERS).select_all is True
    with pytest.raises(QStashInputError, match=r"set cancel_all=True"):
        BulkCancelFilter.build()  # the value object's own table by default
    with pytest.raises(TypeError, match="takes the filters of"):
        BulkCancelFilter.build(labels="a", table=DLQ_FILTERS)


def test_the_callers_table_is_not_part_of_the_value():
    named = BulkCancelFilter.build(labels="a", table=WIPE_ALL_FILTERS)
    assert named == BulkCancelFilter.build(labels="a")
    assert named.to_dict() == BulkCancelFilter.build(labels="a").to_dict()
    assert BulkCancelFilter.from_dict(named.to_dict()) == named


def test_a_bulk_cancel_payload_written_with_cancel_all_is_read_as_select_all():
    """A trigger deferred before the flag was ``select_all`` everywhere resumes after the upgrade."""
    value = BulkCancelFilter.build(cancel_all=True, to_date=NOW_MS)
    old_payload = {**{k: v for k, v in value.to_dict().items() if k != "select_all"}, "cancel_all": True}
    assert BulkCancelFilter.from_dict(old_payload) == value
    with pytest.raises(QStashInputError, match="No filter given in the serialised filter"):
        BulkCancelFilter.from_dict({**old_payload, "to_date": None, "cancel_all": False})


# --------------------------------------------------------------------------- bounds that select everything


def test_a_future_to_date_is_kept_in_python_but_is_no_filter():
    bulk_filter = BulkCancelFilter.build(labels="a", to_date="2099-01-01")
    assert bulk_filter.to_date == 4_070_908_800_000
    assert bulk_filter.selecting_filters() == ["labels"]
    with pytest.raises(QStashInputError, match=r"to_date 2099-01-01T00:00:00.000\+00:00 is in the future"):
        BulkCancelFilter.build(to_date="2099-01-01")
    with pytest.raises(QStashInputError):
        BulkCancelFilter(to_date=4_070_908_800_000)  # the constructor keeps the rule too


def test_a_past_to_date_alone_is_a_filter():
    assert BulkCancelFilter.build(to_date=JAN_1_MS).selecting_filters() == ["to_date"]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"labels": ("a",), "to_date": 0}, "to_date=0"),
        ({"labels": ("a",), "to_date": MIN_DATE_MS - 1}, "before 2000-01-01"),
        ({"labels": ("a",), "from_date": 5}, "before 2000-01-01"),
    ],
)
def test_the_constructor_refuses_dates_before_2000(kwargs, fragment):
    with pytest.raises(QStashInputError, match=fragment):
        BulkCancelFilter(**kwargs)


# ------------------------------------------------------------------ a from_date older than QStash keeps (#17.2)


def test_the_retention_limits_are_declared_once_from_the_pricing_page():
    assert MAX_MESSAGE_DELAY_MS == 365 * 86_400_000
    assert MAX_DLQ_RETENTION_MS == 92 * 86_400_000
    assert BULK_CANCEL_FILTERS.kept_ms is MAX_MESSAGE_DELAY_MS
    assert DLQ_FILTERS.kept_ms is MAX_DLQ_RETENTION_MS


@pytest.mark.parametrize(
    ("cls", "kept_ms", "flag", "days"),
    [(BulkCancelFilter, MAX_MESSAGE_DELAY_MS, "cancel_all", 365), (DLQFilter, MAX_DLQ_RETENTION_MS, "select_all", 92)],
)
def test_a_from_date_older_than_anything_kept_is_no_filter_alone(cls, kept_ms, flag, days):
    oldest = NOW_MS - kept_ms
    assert cls.build(from_date=oldest, now_ms=NOW_MS).from_date == oldest  # the boundary still narrows
    with pytest.raises(QStashInputError) as info:
        cls.build(from_date=oldest - 1, now_ms=NOW_MS)
    message = str(info.value)
    assert "is older than anything QStash keeps" in message and f"{days} days" in message
    assert f"a from_date within the last {days} days, or set {flag}=True" in message
    assert cls.build(from_date=oldest - 1, labels="a", now_ms=NOW_MS).from_date == oldest - 1
    assert cls.build(from_date=oldest - 1, now_ms=NOW_MS, **{flag: True}).from_date == oldest - 1


def test_the_dlq_refusal_names_the_operation_flag():
    with pytest.raises(QStashInputError, match="set retry_all=True"):
        DLQFilter.build(from_date="2000-01-01", now_ms=NOW_MS, table=DLQ_ACTION_FILTERS["retry"])
    assert DLQ_ACTION_FILTERS["delete"].all_flag == "delete_all"
    assert DLQ_ACTION_FILTERS["retry"].specs == DLQ_FILTERS.specs == DLQ_ACTION_FILTERS["delete"].specs


def test_the_hook_path_refuses_an_old_from_date_alone_before_any_request(qstash_conn, requests_mock):
    from airflow_qstash.hooks.qstash import QStashHook

    requests_mock.delete(f"{qstash_conn}/v2/messages", json={"cancelled": 99})
    with pytest.raises(QStashInputError, match="older than anything QStash keeps"):
        QStashHook().bulk_cancel(from_date="2000-01-01")
    with pytest.raises(QStashInputError, match="older than anything QStash keeps"):
        QStashHook().dlq_delete(from_date="2000-01-01")
    assert requests_mock.call_count == 0


# ------------------------------------------------------------------ what a filter of everything says it is


def test_a_filter_of_everything_is_described_with_the_callers_words_and_flag():
    """The summary (log line, XCom ``filters``) names what a run of everything acts on and the flag its author
    set: never the value object's inner ``select_all``, never the bulk cancel's noun for a DLQ run."""
    assert BulkCancelFilter.build(cancel_all=True).describe() == "ALL MESSAGES (cancel_all=True)"
    everything = DLQFilter.build(select_all=True)
    assert everything.describe(DLQ_ACTION_FILTERS["delete"]) == "ALL DLQ ENTRIES (delete_all=True)"
    assert everything.describe(DLQ_ACTION_FILTERS["retry"]) == "ALL DLQ ENTRIES (retry_all=True)"
    assert DLQFilter.build(labels="a").describe(DLQ_ACTION_FILTERS["retry"]) == "labels=['a']"
    with pytest.raises(TypeError, match="takes the filters of"):
        everything.describe(BULK_CANCEL_FILTERS)


def test_checked_judges_with_the_callers_table_and_sets_the_pin_afterwards():
    """The readers' last step: a filter that selects nothing is refused naming the caller's flag; the pinned
    ``to_date`` (at the task's start, so no filter) is set after the judgement and never makes it pass."""
    empty = {name: () if BULK_CANCEL_FILTERS[name].kind == "list" else None for name in BULK_CANCEL_FILTERS.names}
    wipe_all = BULK_CANCEL_FILTERS.with_all_flag("wipe_all")
    with pytest.raises(QStashInputError, match=r"set wipe_all=True") as info:
        BulkCancelFilter.checked(empty, select_all=False, table=wipe_all, now_ms=NOW_MS, pin_to_date=NOW_MS)
    assert str(info.value).startswith("No filter given: ")  # the pin is not listed as an ignored bound
    pinned = BulkCancelFilter.checked(
        {**empty, "labels": ("a",)}, select_all=False, table=wipe_all, now_ms=NOW_MS, pin_to_date=NOW_MS
    )
    assert (pinned.labels, pinned.to_date, pinned.select_all) == (("a",), NOW_MS, False)
    everything = BulkCancelFilter.checked(empty, select_all=True, now_ms=NOW_MS, pin_to_date=NOW_MS)
    assert (everything.to_date, everything.select_all) == (NOW_MS, True)
