"""BulkCancelFilter and its readers: every accepted input form, every refusal, no network."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlencode

import pendulum
import pytest

from airflow_qstash.filters import (
    DATE_FILTER_PARAMS,
    FILTER_NAMES,
    LIST_FILTER_PARAMS,
    BulkCancelFilter,
    BulkCancelFilterError,
    parse_bool,
    parse_count,
    read_rendered_filter,
    rendered_string_list,
    to_string_list,
    to_unix_ms,
)

UTC = dt.timezone.utc
JAN_1_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
JAN_2_MS = JAN_1_MS + 86_400_000
JUL_1_MS = 1_719_792_000_000  # 2024-07-01T00:00:00Z
NOW_MS = 1_800_000_000_000  # the pinned task start used by read_rendered_filter tests


# --------------------------------------------------------------------------- to_unix_ms: accepted forms


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(dt.datetime(2024, 1, 1, tzinfo=UTC), JAN_1_MS, id="aware-utc"),
        pytest.param(dt.datetime(2024, 1, 1), JAN_1_MS, id="naive-is-utc"),
        pytest.param(dt.datetime(2024, 1, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))), JAN_1_MS, id="aware+02"),
        pytest.param(
            dt.datetime(2023, 12, 31, 19, tzinfo=dt.timezone(dt.timedelta(hours=-5))), JAN_1_MS, id="aware-05"
        ),
        pytest.param(dt.datetime(2024, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC), JAN_1_MS + 999, id="microseconds-floor"),
        pytest.param(pendulum.datetime(2024, 1, 1, 1, tz="Europe/Berlin"), JAN_1_MS, id="pendulum-berlin-winter"),
        pytest.param(pendulum.datetime(2024, 7, 1, 2, tz="Europe/Berlin"), JUL_1_MS, id="pendulum-berlin-dst"),
        pytest.param(pendulum.datetime(2023, 12, 31, 16, tz="America/Los_Angeles"), JAN_1_MS, id="pendulum-la"),
        pytest.param(pendulum.datetime(2024, 1, 1, tz="UTC"), JAN_1_MS, id="pendulum-utc"),
        pytest.param(dt.date(2024, 1, 1), JAN_1_MS, id="date-midnight-utc"),
        pytest.param(pendulum.date(2024, 7, 1), JUL_1_MS, id="pendulum-date"),
        pytest.param("2024-01-01 00:00:00+00:00", JAN_1_MS, id="jinja-data_interval_start"),
        pytest.param("2024-01-01T00:00:00+00:00", JAN_1_MS, id="iso-offset"),
        pytest.param("2024-01-01T00:00:00Z", JAN_1_MS, id="iso-z"),
        pytest.param("2024-01-01T02:00:00+02:00", JAN_1_MS, id="iso-plus-two"),
        pytest.param("2024-01-01T00:00:00", JAN_1_MS, id="iso-naive-is-utc"),
        pytest.param("2024-01-01 00:00:00", JAN_1_MS, id="iso-space-naive"),
        pytest.param("2024-01-01", JAN_1_MS, id="iso-date-only"),
        pytest.param("2024-01-01T00:00:00.123456+00:00", JAN_1_MS + 123, id="iso-microseconds"),
        pytest.param("20240101T000000Z", JAN_1_MS, id="iso-basic"),
        pytest.param("  2024-01-01T00:00:00Z \n", JAN_1_MS, id="iso-whitespace"),
        pytest.param(JAN_1_MS, JAN_1_MS, id="epoch-ms-int"),
        pytest.param(str(JAN_1_MS), JAN_1_MS, id="epoch-ms-digits"),
        pytest.param(f" {JAN_1_MS} ", JAN_1_MS, id="epoch-ms-digits-whitespace"),
        pytest.param(0, 0, id="zero-int"),
        pytest.param("0", 0, id="zero-string"),
        pytest.param(None, None, id="none-is-no-bound"),
    ],
)
def test_to_unix_ms_accepts(value, expected):
    result = to_unix_ms(value, "from_date")
    assert result == expected
    assert result is None or type(result) is int


@pytest.mark.parametrize("text", ["now", "NOW", " Now "])
def test_to_unix_ms_now_means_the_pinned_now(text):
    assert to_unix_ms(text, "to_date", now_ms=NOW_MS) == NOW_MS


# --------------------------------------------------------------------------- to_unix_ms: refusals


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        pytest.param(True, "boolean", id="true"),
        pytest.param(False, "boolean", id="false"),
        pytest.param(1_704_067_200, "Unix seconds", id="seconds-int"),
        pytest.param("1704067200", "Unix seconds", id="seconds-digits"),
        pytest.param(1, "Unix seconds", id="one"),
        pytest.param(99_999_999_999, "Unix seconds", id="just-below-plausible"),
        pytest.param(-1, "negative", id="negative-int"),
        pytest.param(dt.datetime(1969, 12, 31, 23, 59, tzinfo=UTC), "negative", id="before-epoch"),
        pytest.param("-1704067200000", "not a date", id="negative-digits"),
        pytest.param(1_704_067_200_000_000, "too large", id="microseconds"),
        pytest.param(1_704_067_200_000_000_000, "too large", id="nanoseconds"),
        pytest.param(str(1_704_067_200_000_000), "too large", id="microseconds-digits"),
        pytest.param("abc", "not a date", id="garbage"),
        pytest.param("2024-13-01", "not a date", id="month-13"),
        pytest.param("1.7e12", "not a date", id="float-text"),
        pytest.param("²", "not a date", id="superscript-digit"),
        pytest.param("12:00", "Time", id="time-only"),
        pytest.param("P1D", "Duration", id="duration"),
        pytest.param("", "empty", id="empty-string"),
        pytest.param("   ", "empty", id="blank-string"),
        pytest.param("None", "empty", id="None-text"),
        pytest.param("null", "empty", id="null-text"),
        pytest.param("now", "now", id="now-without-pin"),
        pytest.param(1.7e12, "float", id="float"),
        pytest.param([JAN_1_MS], "list", id="list"),
        pytest.param({"ms": JAN_1_MS}, "dict", id="dict"),
        pytest.param(dt.time(12, 0), "not time", id="time-object"),
    ],
)
def test_to_unix_ms_refuses(value, fragment):
    with pytest.raises(BulkCancelFilterError) as info:
        to_unix_ms(value, "my_bound")
    message = str(info.value)
    assert "my_bound" in message
    assert fragment in message


def test_to_unix_ms_seconds_refusal_suggests_the_millisecond_value():
    with pytest.raises(BulkCancelFilterError, match="Pass 1704067200000"):
        to_unix_ms(1_704_067_200, "from_date")


def test_filter_error_is_a_value_error():
    assert issubclass(BulkCancelFilterError, ValueError)


# --------------------------------------------------------------------------- parse_count


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1), (500, 500), (250, 250), ("1", 1), ("500", 500), (" 42 ", 42)],
)
def test_parse_count_accepts(value, expected):
    assert parse_count(value) == expected


@pytest.mark.parametrize(
    "value",
    [0, 501, -1, "0", "501", "abc", "", "-5", "4.5", "²", True, False, None, 5.0, [5]],
)
@pytest.mark.parametrize("name", ["count", "batch_size"])
def test_parse_count_refuses(value, name):
    with pytest.raises(BulkCancelFilterError) as info:
        parse_count(value, name)
    message = str(info.value)
    assert name in message
    assert "1" in message and "500" in message


# --------------------------------------------------------------------------- to_string_list


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ("a", ("a",)),
        ("  a  ", ("a",)),
        ("", ()),
        ("   ", ()),
        (["a", "b"], ("a", "b")),
        (("b", "a"), ("b", "a")),
        ({"b", "a"}, ("a", "b")),
        (frozenset({"z", "y"}), ("y", "z")),
        (["a", "a", "b", "a"], ("a", "b")),
        ([" a ", "a"], ("a",)),
        ([], ()),
    ],
)
def test_to_string_list_accepts(value, expected):
    assert to_string_list(value, "labels") == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (["a", ""], "labels[1] is empty"),
        (["", "a"], "labels[0] is empty"),
        (["a", "  "], "labels[1] is empty"),
        (["a", 1], "labels[1] is int"),
        (["a", None], "labels[1] is NoneType"),
        ([b"a"], "labels[0] is bytes"),
        (5, "labels must be a string or a list of strings, not int"),
        ({"a": 1}, "not dict"),
        (b"a", "not bytes"),
        # QStash splits values on commas: one value "a,b" would match a OR b, a wider cancel.
        ("a,b", "labels[0]='a,b' contains a comma"),
        (["x", "https://h.test/p?a=1,2"], "labels[1]='https://h.test/p?a=1,2' contains a comma"),
    ],
)
def test_to_string_list_refuses(value, fragment):
    with pytest.raises(BulkCancelFilterError, match=r"labels") as info:
        to_string_list(value, "labels")
    assert fragment in str(info.value)


# --------------------------------------------------------------------------- rendered_string_list


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a, b", ("a", "b")),
        ("a,b", ("a", "b")),
        (" a , , b ,", ("a", "b")),
        ("a,b,a", ("a", "b")),
        ("single", ("single",)),
        ("['a', 'b']", ("a", "b")),
        ('["a", "b"]', ("a", "b")),
        ("('a', 'b')", ("a", "b")),
        ("[]", ()),
        ("()", ()),
        ("None", ()),
        ("none", ()),
        ("null", ()),
        ("", ()),
        ("   ", ()),
        (" , ", ()),
        (None, ()),
        (["x", "y"], ("x", "y")),
        ([], ()),
        (("x",), ("x",)),
    ],
)
def test_rendered_string_list_accepts(value, expected):
    assert rendered_string_list(value, "labels") == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("[a, b]", "looks like a list"),
        ("['a', 1]", "labels[1] is int"),
        ("['a', '']", "labels[1] is empty"),
        ("[None]", "labels[0] is NoneType"),
        (["a", ""], "labels[1] is empty"),
        (42, "not int"),
    ],
)
def test_rendered_string_list_refuses(value, fragment):
    with pytest.raises(BulkCancelFilterError) as info:
        rendered_string_list(value, "labels")
    assert "labels" in str(info.value)
    assert fragment in str(info.value)


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
    assert bulk_filter.cancel_all is False
    assert bulk_filter.active_filters() == [name for name in FILTER_NAMES if name != "message_ids"]
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


@pytest.mark.parametrize(("name", "param"), [*LIST_FILTER_PARAMS.items()])
def test_each_list_filter_alone_is_enough_and_maps_to_its_api_name(name, param):
    bulk_filter = BulkCancelFilter.build(**{name: ["v1", "v2"]})
    assert bulk_filter.active_filters() == [name]
    assert bulk_filter.to_query_params() == [(param, "v1"), (param, "v2")]


@pytest.mark.parametrize(("name", "param"), [*DATE_FILTER_PARAMS.items()])
def test_each_date_filter_alone_is_enough_and_goes_out_as_ms(name, param):
    bulk_filter = BulkCancelFilter.build(**{name: "2024-01-01T00:00:00Z"})
    assert bulk_filter.active_filters() == [name]
    assert bulk_filter.to_query_params() == [(param, str(JAN_1_MS))]


def test_build_message_ids_alone():
    bulk_filter = BulkCancelFilter.build(message_ids=["m1", "m2"])
    assert bulk_filter.message_ids == ("m1", "m2")
    assert bulk_filter.to_query_params() == [("messageIds", "m1"), ("messageIds", "m2")]


def test_build_cancel_all_without_filters_is_allowed_and_selects_everything():
    bulk_filter = BulkCancelFilter.build(cancel_all=True)
    assert bulk_filter.cancel_all is True
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
    with pytest.raises(BulkCancelFilterError, match="No filter given"):
        BulkCancelFilter.build(from_date=0)
    with pytest.raises(BulkCancelFilterError, match="No filter given"):
        BulkCancelFilter.build(from_date="0")


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        pytest.param({}, ["No filter given", "EVERY message", "cancel_all=True"], id="nothing"),
        pytest.param(
            {name: [] for name in LIST_FILTER_PARAMS} | {"from_date": None, "to_date": None},
            ["No filter given", "cancel_all"],
            id="all-empty-lists",
        ),
        pytest.param({"labels": "", "hosts": "  ", "urls": ()}, ["No filter given"], id="blank-strings"),
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
    with pytest.raises(BulkCancelFilterError) as info:
        BulkCancelFilter.build(**kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_cancel_all_does_not_lift_the_other_refusals():
    with pytest.raises(BulkCancelFilterError, match="message_ids cannot be combined"):
        BulkCancelFilter.build(cancel_all=True, message_ids="m", labels="a")
    with pytest.raises(BulkCancelFilterError, match="is after"):
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
        ({"cancel_all": "True"}, "cancel_all must be True or False"),
        ({"cancel_all": 1}, "cancel_all must be True or False"),
    ],
)
def test_constructor_validates_normalised_values(kwargs, fragment):
    with pytest.raises(BulkCancelFilterError) as info:
        BulkCancelFilter(**kwargs)
    assert fragment in str(info.value)


def test_filter_is_immutable():
    bulk_filter = BulkCancelFilter.build(labels="a")
    with pytest.raises(AttributeError):
        bulk_filter.labels = ()  # type: ignore[misc]


# --------------------------------------------------------------------------- split_message_ids


def _ids(n, width=28):
    return [f"msg_{i:0{width}d}" for i in range(n)]


def test_split_keeps_a_fitting_filter_whole():
    bulk_filter = BulkCancelFilter.build(message_ids=_ids(3))
    assert bulk_filter.split_message_ids(10_000) == [bulk_filter]
    exact = len(urlencode(bulk_filter.to_query_params()))
    assert bulk_filter.split_message_ids(exact) == [bulk_filter]
    assert len(bulk_filter.split_message_ids(exact - 1)) == 2


@pytest.mark.parametrize("limit", [200, 1000, 3900])
def test_split_long_id_list_into_disjoint_parts_that_fit(limit):
    ids = _ids(2000)
    parts = BulkCancelFilter.build(message_ids=ids).split_message_ids(limit)
    assert len(parts) > 1
    for part in parts:
        assert part.active_filters() == ["message_ids"]
        assert 0 < len(urlencode(part.to_query_params())) <= limit
    assert [message_id for part in parts for message_id in part.message_ids] == ids


def test_split_counts_percent_encoding():
    ids = [f"ü/{i:04d}&" for i in range(300)]  # each id grows from 8 to 16 characters when encoded
    parts = BulkCancelFilter.build(message_ids=ids).split_message_ids(500)
    assert all(len(urlencode(part.to_query_params())) <= 500 for part in parts)
    assert [message_id for part in parts for message_id in part.message_ids] == ids


def test_split_refuses_other_filters_that_do_not_fit():
    bulk_filter = BulkCancelFilter.build(labels=[f"label-{i}" for i in range(100)])
    with pytest.raises(BulkCancelFilterError, match="more than the 100"):
        bulk_filter.split_message_ids(100)


def test_split_refuses_one_id_longer_than_the_limit():
    with pytest.raises(BulkCancelFilterError, match="too long"):
        BulkCancelFilter.build(message_ids=["short", "x" * 200]).split_message_ids(100)


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
    assert set(data) == {*FILTER_NAMES, "cancel_all"}
    assert all(isinstance(data[name], list) for name in LIST_FILTER_PARAMS)
    rebuilt = BulkCancelFilter.from_dict(json.loads(json.dumps(data)))
    assert rebuilt == bulk_filter
    assert rebuilt.to_query_params() == bulk_filter.to_query_params()


def test_from_dict_validates_again():
    data = BulkCancelFilter.build(labels="a").to_dict()
    data["labels"] = []
    with pytest.raises(BulkCancelFilterError, match="No filter given"):
        BulkCancelFilter.from_dict(data)


# --------------------------------------------------------------------------- read_rendered_filter


def _read(rendered, set_by_author=None, cancel_all=False):
    if set_by_author is None:
        set_by_author = [name for name, value in rendered.items() if value is not None]
    return read_rendered_filter(rendered, set_by_author=set_by_author, cancel_all=cancel_all, now_ms=NOW_MS)


@pytest.mark.parametrize(
    ("rendered_labels", "expected"),
    [
        ("a, b", ("a", "b")),
        ("['a', 'b']", ("a", "b")),
        (["a", "b"], ("a", "b")),
        ("only", ("only",)),
    ],
)
def test_rendered_list_forms(rendered_labels, expected):
    bulk_filter = _read({"labels": rendered_labels})
    assert bulk_filter.labels == expected


@pytest.mark.parametrize("empty", [None, "None", "", "[]", "null", " "])
def test_rendered_empty_list_is_absent(empty):
    bulk_filter = _read({"labels": empty, "hosts": "example.com"})
    assert bulk_filter.labels == ()
    assert bulk_filter.hosts == ("example.com",)
    assert bulk_filter.active_filters() == ["hosts", "to_date"]


@pytest.mark.parametrize("empty", [None, "None", "", "[]", "null"])
def test_rendered_empty_everything_is_refused_unless_cancel_all(empty):
    rendered = dict.fromkeys(LIST_FILTER_PARAMS, empty)
    with pytest.raises(BulkCancelFilterError, match="No filter given"):
        _read(rendered, set_by_author=LIST_FILTER_PARAMS)
    bulk_filter = _read(rendered, set_by_author=LIST_FILTER_PARAMS, cancel_all=True)
    assert bulk_filter.cancel_all is True
    assert bulk_filter.active_filters() == ["to_date"]
    assert bulk_filter.to_date == NOW_MS


@pytest.mark.parametrize("name", ["from_date", "to_date"])
@pytest.mark.parametrize("rendered", [None, "None", "", "  ", "null"])
def test_set_date_that_renders_to_nothing_is_refused(name, rendered):
    with pytest.raises(BulkCancelFilterError) as info:
        _read({"labels": "a", name: rendered}, set_by_author=["labels", name])
    message = str(info.value)
    assert name in message
    assert "manual" in message
    assert "data interval" in message


@pytest.mark.parametrize("rendered", [None, "None", "null", ""])
def test_empty_date_refused_even_with_cancel_all(rendered):
    with pytest.raises(BulkCancelFilterError, match="manual"):
        _read({"from_date": rendered}, set_by_author=["from_date"], cancel_all=True)


def test_unset_dates_are_open_and_to_date_is_pinned_to_now():
    bulk_filter = _read({"labels": "a", "from_date": None, "to_date": None}, set_by_author=["labels"])
    assert bulk_filter.from_date is None
    assert bulk_filter.to_date == NOW_MS


def test_explicit_to_date_is_not_replaced_by_now():
    bulk_filter = _read({"labels": "a", "to_date": "2024-01-02T00:00:00+00:00"})
    assert bulk_filter.to_date == JAN_2_MS


def test_data_interval_window_is_read_as_ms():
    bulk_filter = _read(
        {"labels": "a", "from_date": "2024-01-01 00:00:00+00:00", "to_date": "2024-01-02 00:00:00+00:00"}
    )
    assert (bulk_filter.from_date, bulk_filter.to_date) == (JAN_1_MS, JAN_2_MS)


def test_native_rendered_dates_are_accepted():
    bulk_filter = _read(
        {
            "labels": "a",
            "from_date": pendulum.datetime(2024, 1, 1, 1, tz="Europe/Berlin"),
            "to_date": dt.datetime(2024, 1, 2),
        }
    )
    assert (bulk_filter.from_date, bulk_filter.to_date) == (JAN_1_MS, JAN_2_MS)


def test_message_ids_run_gets_no_pinned_to_date():
    bulk_filter = _read({"message_ids": "m1, m2"})
    assert bulk_filter.message_ids == ("m1", "m2")
    assert bulk_filter.to_date is None
    assert bulk_filter.active_filters() == ["message_ids"]


def test_message_ids_with_to_date_now_is_accepted_without_a_date():
    bulk_filter = _read({"message_ids": "['m1']", "to_date": "now"})
    assert bulk_filter.message_ids == ("m1",)
    assert bulk_filter.to_date is None


def test_message_ids_with_an_explicit_date_is_refused():
    with pytest.raises(BulkCancelFilterError, match="message_ids cannot be combined with to_date"):
        _read({"message_ids": "m1", "to_date": "2024-01-02T00:00:00Z"})


@pytest.mark.parametrize(
    "window",
    [
        ("2024-01-01 00:00:00+00:00", "2024-01-01 00:00:00+00:00"),
        ("2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00Z"),
        (str(JAN_1_MS), JAN_1_MS),
    ],
)
def test_zero_width_window_is_refused(window):
    with pytest.raises(BulkCancelFilterError) as info:
        _read({"labels": "a", "from_date": window[0], "to_date": window[1]})
    message = str(info.value)
    assert "zero-width" in message
    assert "CronDataIntervalTimetable" in message


def test_zero_width_window_is_refused_even_without_other_filters():
    with pytest.raises(BulkCancelFilterError, match="CronDataIntervalTimetable"):
        _read({"from_date": JAN_1_MS, "to_date": JAN_1_MS}, cancel_all=True)


def test_from_after_pinned_now_is_refused():
    with pytest.raises(BulkCancelFilterError, match="is after"):
        _read({"labels": "a", "from_date": NOW_MS + 1})


@pytest.mark.parametrize(
    "rendered",
    [
        {"from_date": "0"},
        {"from_date": 0},
        {"to_date": "now"},
        {"to_date": " NOW "},
        {"from_date": "0", "to_date": "now"},
        {"from_date": "0", "to_date": "now", "labels": "[]", "hosts": "None"},
    ],
)
def test_zero_and_now_are_not_filters(rendered):
    with pytest.raises(BulkCancelFilterError, match="No filter given"):
        _read(rendered)
    bulk_filter = _read(rendered, cancel_all="True")
    assert bulk_filter.from_date is None
    assert bulk_filter.to_date == NOW_MS
    assert bulk_filter.active_filters() == ["to_date"]


def test_from_zero_and_now_with_a_real_filter():
    bulk_filter = _read({"labels": "a", "from_date": "0", "to_date": "now"})
    assert bulk_filter.from_date is None
    assert bulk_filter.to_date == NOW_MS
    assert bulk_filter.labels == ("a",)


@pytest.mark.parametrize(
    ("cancel_all", "expected"),
    [(True, True), (False, False), ("True", True), ("False", False), ("true", True), (" FALSE ", False)],
)
def test_cancel_all_text_is_parsed(cancel_all, expected):
    bulk_filter = _read({"labels": "a"}, cancel_all=cancel_all)
    assert bulk_filter.cancel_all is expected


def test_cancel_all_text_false_does_not_allow_an_empty_filter():
    with pytest.raises(BulkCancelFilterError, match="No filter given"):
        _read({}, cancel_all="False")


@pytest.mark.parametrize("cancel_all", ["yes", "1", "", "None", 1, 0, None, "Truee"])
def test_cancel_all_other_values_are_refused(cancel_all):
    with pytest.raises(BulkCancelFilterError, match="cancel_all must be True or False"):
        _read({"labels": "a"}, cancel_all=cancel_all)


@pytest.mark.parametrize(("value", "expected"), [(True, True), ("true", True), ("False", False), (False, False)])
def test_parse_bool(value, expected):
    assert parse_bool(value, "flag") is expected


def test_rendered_refusals_name_the_parameter():
    with pytest.raises(BulkCancelFilterError, match="hosts"):
        _read({"hosts": "[example.com]"})
    with pytest.raises(BulkCancelFilterError, match="from_date"):
        _read({"labels": "a", "from_date": "not a date"})
    with pytest.raises(BulkCancelFilterError, match="to_date"):
        _read({"labels": "a", "to_date": 1_704_067_200})


def test_rendered_list_element_with_a_comma_is_refused_not_split_or_kept():
    # "['a, b']" is one element that QStash would split into two labels: refuse, never widen.
    with pytest.raises(BulkCancelFilterError, match="contains a comma"):
        rendered_string_list("['a, b']", "labels")


@pytest.mark.parametrize("text", ["['a', ", "['a'", "a']", "(a, b"])
def test_rendered_half_list_text_is_refused_not_split_into_odd_labels(text):
    # A list whose text broke in rendering must not become labels like "['a'" (it would match nothing,
    # silently); say what is wrong instead.
    with pytest.raises(BulkCancelFilterError, match="looks like a list"):
        rendered_string_list(text, "labels")
