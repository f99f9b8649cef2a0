"""The readers of user input (:mod:`airflow_qstash.inputs`): dates, list values and their renderings, the
templated-or-literal judgement, the operator's reader of its rendered filters, booleans and counts; no network.

The filter tables and value objects they read into are :mod:`airflow_qstash.filters`'s (``test_filters.py``).
"""

from __future__ import annotations

import datetime as dt

import pendulum
import pytest

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.filters import (
    BULK_CANCEL_FILTERS,
    DLQ_FILTERS,
    BulkCancelFilter,
    DLQFilter,
)
from airflow_qstash.inputs import (
    MIN_DATE_MS,
    is_templated,
    parse_bool,
    parse_count,
    read_rendered_filter,
    read_rendered_values,
    read_values,
    renders_empty,
    to_unix_ms,
)

UTC = dt.timezone.utc
JAN_1_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
JAN_2_MS = JAN_1_MS + 86_400_000
JUL_1_MS = 1_719_792_000_000  # 2024-07-01T00:00:00Z
NOW_MS = 1_760_000_000_000  # the task start read_rendered_filter tests pin to (2025-10-09, in the past)
WIPE_ALL_FILTERS = BULK_CANCEL_FILTERS.with_all_flag("wipe_all")


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
    result = to_unix_ms(value, "from_date", zero_allowed=True)
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
        pytest.param(1, "before 2000-01-01", id="one"),
        pytest.param(946_684_800, "Unix seconds", id="seconds-of-2000"),
        pytest.param(946_684_799, "before 2000-01-01", id="seconds-of-1999"),
        pytest.param(100_000_000_000, "before 2000-01-01", id="ms-of-1973"),
        pytest.param(MIN_DATE_MS - 1, "before 2000-01-01", id="last-ms-of-1999"),
        pytest.param(dt.datetime(1999, 12, 31, tzinfo=UTC), "before 2000-01-01", id="datetime-1999"),
        pytest.param("1990-01-01", "before 2000-01-01", id="iso-1990"),
        pytest.param(0, "use 'now'", id="zero-not-allowed"),
        pytest.param("0", "use 'now'", id="zero-text-not-allowed"),
        pytest.param(99_999_999_999, "before 2000-01-01", id="seconds-of-year-5138"),
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
    with pytest.raises(QStashInputError) as info:
        to_unix_ms(value, "my_bound")
    message = str(info.value)
    assert "my_bound" in message
    assert fragment in message


def test_to_unix_ms_seconds_refusal_suggests_the_millisecond_value():
    with pytest.raises(QStashInputError, match="Pass 1704067200000"):
        to_unix_ms(1_704_067_200, "from_date")


def test_to_unix_ms_accepts_2000_and_zero_only_where_allowed():
    assert to_unix_ms(MIN_DATE_MS, "to_date") == MIN_DATE_MS
    assert to_unix_ms("2000-01-01T00:00:00Z", "to_date") == MIN_DATE_MS
    assert to_unix_ms(0, "from_date", zero_allowed=True) == 0
    with pytest.raises(QStashInputError, match=r"to_date=0 is 1970-01-01.*use 'now'"):
        to_unix_ms(0, "to_date")


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
    with pytest.raises(QStashInputError) as info:
        parse_count(value, name)
    message = str(info.value)
    assert name in message
    assert "1" in message and "500" in message


#: The list filter the reader tests below read (the hook's and the operator's readers take its spec).
LABELS = BULK_CANCEL_FILTERS["labels"]


def _rendered_labels(value, *, templated: bool = True):
    """An operator's labels after rendering: () when it renders empty, else the rendered-list reader's answer."""
    return () if renders_empty(value, templated=templated) else read_rendered_values(LABELS, value)


# --------------------------------------------------------------------------- read_values (lists given in Python)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ("a", ("a",)),
        ("  a  ", ("a",)),
        (["a", "b"], ("a", "b")),
        (("b", "a"), ("b", "a")),
        ({"b", "a"}, ("a", "b")),
        (frozenset({"z", "y"}), ("y", "z")),
        (["a", "a", "b", "a"], ("a", "b")),
        ([" a ", "a"], ("a",)),
        ("none", ("none",)),
        ("null", ("null",)),
    ],
)
def test_read_values_accepts(value, expected):
    assert read_values(LABELS, value) == expected


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
        # Given but empty: refused like [""], never dropped (dropping would widen to the other filters).
        ("", "labels is empty (''): give a value, or leave labels unset (None)"),
        ("   ", "labels is empty ('   ')"),
        ("\t\n", "labels is empty"),
        ([], "labels is an empty list: give at least one value, or leave labels unset (None)"),
        ((), "labels is an empty tuple"),
        (set(), "labels is an empty set"),
    ],
)
def test_read_values_refuses(value, fragment):
    with pytest.raises(QStashInputError, match=r"labels") as info:
        read_values(LABELS, value)
    assert fragment in str(info.value)


# --------------------------------------------------------------------------- read_rendered_values


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
        ('["a", "b"]', ("a", "b")),
        ('[\n  "a",\n  "b"\n]', ("a", "b")),
        ("https://x/Foo_(bar)", ("https://x/Foo_(bar)",)),
        ("https://x/Foo_(bar), https://x/Baz_(qux)", ("https://x/Foo_(bar)", "https://x/Baz_(qux)")),
        ("report (v2)", ("report (v2)",)),
        ("get(x)", ("get(x)",)),
        ("('a')", ("a",)),
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
def test_read_rendered_values_accepts(value, expected):
    assert _rendered_labels(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("[a, b]", "looks like a list"),
        ("['a', 1]", "labels[1] is int"),
        ("['a', '']", "labels[1] is empty"),
        ("[None]", "labels[0] is NoneType"),
        ('["a", null]', "labels[1] is NoneType"),
        (["a", ""], "labels[1] is empty"),
        (42, "rendered an int"),
        ("<generator object select_or_reject at 0x7f3a2c1d5e40>", "the text of a generator"),
        ("<list_reverseiterator object at 0x7f3a2c1d5e40>", "the text of a list_reverseiterator"),
        ("<map object at 0x7f3a2c1d5e40>", "the text of a map"),
        ("{'a', 'b'}", "the text of a set"),
        ("{'a': 1}", "the text of a dict"),
        ("{a, b}", "the text of a set or dict"),
        ("dict_keys(['a', 'b'])", "the text of a dict_keys"),
        ("frozenset({'a'})", "the text of a frozenset"),
        ("[1, 2][0]", "looks like a list"),
        ("['a'] + ['b']", "looks like a list"),
        ((x for x in ["a"]), "rendered a generator"),
        ({"a", "b"}, "rendered a set"),
        ({"a": 1}, "rendered a dict"),
        ({"a": 1}.keys(), "rendered a dict_keys"),
        (True, "rendered a bool"),
    ],
)
def test_read_rendered_values_refuses(value, fragment):
    with pytest.raises(QStashInputError) as info:
        _rendered_labels(value)
    assert "labels" in str(info.value)
    assert fragment in str(info.value)


@pytest.mark.parametrize("value", ["<generator object x at 0x1>", "{'a'}", (x for x in "a"), "dict_values([1])"])
def test_renderings_that_are_not_lists_say_what_to_give_instead(value):
    with pytest.raises(QStashInputError) as info:
        _rendered_labels(value)
    assert "give a list or tuple, a single value, comma-separated text, a JSON array" in str(info.value)


@pytest.mark.parametrize(
    "text", ["<generator object select_or_reject at 0x7f>", "<list_reverseiterator object at 0x7f>"]
)
def test_a_generator_rendering_suggests_ending_the_template_with_list(text):
    with pytest.raises(QStashInputError, match=r"End the template with \| list"):
        _rendered_labels(text)


@pytest.mark.parametrize(
    ("value", "templated", "empty"),
    [
        (None, False, True),
        ("", False, True),
        ("  ", False, True),
        (" , ,", False, True),
        ("[]", False, True),
        ("()", False, True),
        ([], False, True),
        ((), False, True),
        ("None", True, True),
        ("null", True, True),
        (" NONE ", True, True),
        ("None", False, False),  # a literal "None" is the value None
        ("none", False, False),
        ("null", False, False),
        ("a", True, False),
        (["a"], True, False),
        ("[None]", True, False),
        ({"a"}, True, False),
        (0, True, False),
    ],
)
def test_renders_empty(value, templated, empty):
    assert renders_empty(value, templated=templated) is empty


def test_literal_none_renders_as_the_value_templated_none_as_nothing():
    assert _rendered_labels("none", templated=False) == ("none",)
    assert _rendered_labels("None", templated=True) == ()


def test_the_readers_serve_a_second_table_without_copying_the_list_logic():
    statuses = DLQ_FILTERS["response_statuses"]
    assert read_values(statuses, [500, "502", 500]) == (500, 502)
    assert read_values(statuses, 404) == (404,)
    assert read_rendered_values(statuses, "500, 503") == (500, 503)
    assert read_rendered_values(statuses, "[500, 503]") == (500, 503)
    with pytest.raises(QStashInputError, match=r"response_statuses\[0\] is str \('5xx'\).*whole number"):
        read_values(statuses, ["5xx"])
    with pytest.raises(QStashInputError, match="response_statuses must be a whole number or a list"):
        read_values(statuses, 5.0)
    message_id = DLQ_FILTERS["message_ids"]
    assert read_values(message_id, "m1") == ("m1",)
    with pytest.raises(QStashInputError, match=r"message_ids takes at most 1 value\(s\)"):
        read_values(message_id, ["m1", "m2"])


# --------------------------------------------------------------------------- templated or literal


class _Resolvable:
    """Stands for an XComArg: Airflow resolves it at run time."""

    def resolve(self, context):  # pragma: no cover - never called here
        return ["a"]


@pytest.mark.parametrize(
    ("value", "templated"),
    [
        ("{{ params.labels }}", True),
        ("{% if x %}a{% endif %}", True),
        ("{# nothing #}", True),
        (["a", "{{ params.b }}"], True),
        (("{{ x }}",), True),
        ({"k": "{{ x }}"}, True),
        (_Resolvable(), True),
        (lambda context, jinja_env: "a", True),
        ("none", False),
        ("a, b", False),
        ("{ not a template }", False),
        (["a", "b"], False),
        (None, False),
        (0, False),
        (dt.datetime(2024, 1, 1), False),
        (pendulum.datetime(2024, 1, 1), False),
    ],
)
def test_is_templated(value, templated):
    assert is_templated(value) is templated


def test_is_templated_uses_the_given_markers():
    assert is_templated("<< params.x >>", ("<<", "<%", "<#")) is True
    assert is_templated("{{ params.x }}", ("<<", "<%", "<#")) is False


# --------------------------------------------------------------------------- read_rendered_filter


def _read(rendered, *, literal=(), optional=(), cancel_all=False, set_by_author=None):
    """Read as the operator does; every value set is templated unless named in ``literal``."""
    if set_by_author is None:
        set_by_author = [name for name, value in rendered.items() if value is not None]
    templated = [name for name in set_by_author if name not in literal]
    return read_rendered_filter(
        rendered,
        set_by_author=set_by_author,
        templated=templated,
        optional=optional,
        select_all=cancel_all,
        now_ms=NOW_MS,
        filter_class=BulkCancelFilter,
        table=BULK_CANCEL_FILTERS,
    )


@pytest.mark.parametrize(
    ("rendered_labels", "expected"),
    [
        ("a, b", ("a", "b")),
        ("['a', 'b']", ("a", "b")),
        ('["a", "b"]', ("a", "b")),
        (["a", "b"], ("a", "b")),
        (("a", "b"), ("a", "b")),
        ("only", ("only",)),
    ],
)
def test_rendered_list_forms(rendered_labels, expected):
    bulk_filter = _read({"labels": rendered_labels})
    assert bulk_filter.labels == expected


@pytest.mark.parametrize("literal", ["none", "None", "null", "NULL"])
def test_an_untemplated_literal_is_taken_literally(literal):
    bulk_filter = _read({"labels": literal, "queue_names": "q1"}, literal=["labels", "queue_names"])
    assert bulk_filter.labels == (literal,)
    assert ("label", literal) in bulk_filter.to_query_params()


@pytest.mark.parametrize("empty", ["", "  ", "[]", [], " , "])
def test_an_empty_literal_is_refused_naming_the_field(empty):
    with pytest.raises(QStashInputError) as info:
        _read({"labels": empty, "queue_names": "q1"}, literal=["labels", "queue_names"])
    message = str(info.value)
    assert f"labels is empty ({empty!r})" in message
    assert "leave labels unset (None)" in message
    assert "optional_filters" in message


@pytest.mark.parametrize("empty", [None, "None", "", "[]", "null", " ", "()", []])
def test_a_template_that_renders_empty_is_refused_naming_the_field(empty):
    with pytest.raises(QStashInputError) as info:
        _read({"labels": empty, "queue_names": "q1"}, set_by_author=["labels", "queue_names"])
    message = str(info.value)
    assert "labels is templated but rendered empty" in message
    assert "list 'labels' in optional_filters" in message
    assert "widen" in message


@pytest.mark.parametrize("empty", [None, "None", "", "[]", "null", " "])
def test_an_optional_template_that_renders_empty_is_absent(empty):
    bulk_filter = _read(
        {"labels": empty, "hosts": "example.com"}, set_by_author=["labels", "hosts"], optional=["labels"]
    )
    assert bulk_filter.labels == ()
    assert bulk_filter.hosts == ("example.com",)
    assert bulk_filter.active_filters() == ["hosts", "to_date"]


@pytest.mark.parametrize("empty", [None, "None", "", "[]", "null"])
def test_everything_optional_and_empty_is_refused_unless_cancel_all(empty):
    rendered = dict.fromkeys(BULK_CANCEL_FILTERS.list_params, empty)
    with pytest.raises(QStashInputError) as info:
        _read(rendered, set_by_author=BULK_CANCEL_FILTERS.list_params, optional=BULK_CANCEL_FILTERS.list_params)
    assert "No filter given" in str(info.value)
    assert "rendered empty and are optional" in str(info.value)
    bulk_filter = _read(
        rendered,
        set_by_author=BULK_CANCEL_FILTERS.list_params,
        optional=BULK_CANCEL_FILTERS.list_params,
        cancel_all=True,
    )
    assert bulk_filter.select_all is True
    assert bulk_filter.active_filters() == ["to_date"]
    assert bulk_filter.to_date == NOW_MS


@pytest.mark.parametrize("name", ["from_date", "to_date"])
@pytest.mark.parametrize("rendered", [None, "None", "", "  ", "null"])
def test_set_date_that_renders_to_nothing_is_refused(name, rendered):
    with pytest.raises(QStashInputError) as info:
        _read({"labels": "a", name: rendered}, set_by_author=["labels", name])
    message = str(info.value)
    assert f"{name} is templated but rendered empty" in message
    assert "manual" in message
    assert "data interval" in message
    assert f"list '{name}' in optional_filters" in message


@pytest.mark.parametrize("rendered", [None, "None", "null", ""])
def test_empty_date_refused_even_with_cancel_all(rendered):
    with pytest.raises(QStashInputError, match="manual"):
        _read({"from_date": rendered}, set_by_author=["from_date"], cancel_all=True)


def test_optional_dates_that_render_empty_are_open_and_to_date_pinned():
    bulk_filter = _read(
        {"labels": "a", "from_date": None, "to_date": ""},
        set_by_author=["labels", "from_date", "to_date"],
        optional=["from_date", "to_date"],
    )
    assert (bulk_filter.from_date, bulk_filter.to_date) == (None, NOW_MS)


def test_unset_dates_are_open_and_to_date_is_pinned_to_now():
    bulk_filter = _read({"labels": "a", "from_date": None, "to_date": None}, set_by_author=["labels"])
    assert bulk_filter.from_date is None
    assert bulk_filter.to_date == NOW_MS


def test_explicit_to_date_before_the_task_start_is_kept():
    bulk_filter = _read({"labels": "a", "to_date": "2024-01-02T00:00:00+00:00"})
    assert bulk_filter.to_date == JAN_2_MS


@pytest.mark.parametrize("to_date", ["2099-01-01", NOW_MS, NOW_MS + 1, str(NOW_MS + 86_400_000)])
def test_a_to_date_at_or_after_the_task_start_is_pinned_to_the_start(to_date):
    bulk_filter = _read({"labels": "a", "to_date": to_date})
    assert bulk_filter.to_date == NOW_MS
    assert ("toDate", str(NOW_MS)) in bulk_filter.to_query_params()


@pytest.mark.parametrize("to_date", ["2099-01-01", NOW_MS])
def test_a_to_date_at_or_after_the_task_start_is_no_filter(to_date):
    with pytest.raises(QStashInputError) as info:
        _read({"to_date": to_date})
    message = str(info.value)
    assert "No filter given" in message
    assert "is at or after the task's start" in message
    assert "set cancel_all=True" in message
    assert _read({"to_date": to_date}, cancel_all=True).to_date == NOW_MS


def test_a_to_date_just_before_the_task_start_is_a_filter():
    assert _read({"to_date": NOW_MS - 1}).to_date == NOW_MS - 1


@pytest.mark.parametrize("literal", [True, False])
@pytest.mark.parametrize("zero", [0, "0", " 0 "])
def test_to_date_zero_is_refused_pointing_at_now(zero, literal):
    with pytest.raises(QStashInputError) as info:
        _read({"labels": "a", "to_date": zero}, literal=["labels", "to_date"] if literal else ())
    assert "to_date=0" in str(info.value)
    assert "use 'now'" in str(info.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("from_date", "1999-12-31T23:59:59.999Z"),
        ("to_date", "1999-12-31"),
        ("from_date", 1),
        ("to_date", dt.datetime(1990, 1, 1)),
        ("from_date", 500_000_000_000),
    ],
)
def test_dates_before_2000_are_refused(name, value):
    with pytest.raises(QStashInputError, match="before 2000-01-01"):
        _read({"labels": "a", name: value})


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


@pytest.mark.parametrize("to_date", ["2024-01-02T00:00:00Z", "2099-01-01"])
def test_message_ids_with_an_explicit_date_is_refused(to_date):
    with pytest.raises(QStashInputError, match="message_ids cannot be combined with to_date"):
        _read({"message_ids": "m1", "to_date": to_date})


@pytest.mark.parametrize(
    "window",
    [
        ("2024-01-01 00:00:00+00:00", "2024-01-01 00:00:00+00:00"),
        ("2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00Z"),
        (str(JAN_1_MS), JAN_1_MS),
    ],
)
def test_zero_width_window_is_refused(window):
    with pytest.raises(QStashInputError) as info:
        _read({"labels": "a", "from_date": window[0], "to_date": window[1]})
    message = str(info.value)
    assert "zero-width" in message
    assert "CronDataIntervalTimetable" in message


def test_zero_width_window_is_refused_even_without_other_filters():
    with pytest.raises(QStashInputError, match="CronDataIntervalTimetable"):
        _read({"from_date": JAN_1_MS, "to_date": JAN_1_MS}, cancel_all=True)


@pytest.mark.parametrize("to_date", [None, "now", "2099-01-01"])
def test_from_after_the_task_start_is_refused_when_to_date_ends_there(to_date):
    with pytest.raises(QStashInputError, match="is after the task's start"):
        _read({"labels": "a", "from_date": NOW_MS + 1, "to_date": to_date})


@pytest.mark.parametrize(
    ("rendered", "optional"),
    [
        ({"from_date": "0"}, ()),
        ({"from_date": 0}, ()),
        ({"to_date": "now"}, ()),
        ({"to_date": " NOW "}, ()),
        ({"from_date": "0", "to_date": "now"}, ()),
        ({"from_date": "0", "to_date": "now", "labels": "[]", "hosts": "None"}, ("labels", "hosts")),
    ],
)
def test_zero_and_now_are_not_filters(rendered, optional):
    with pytest.raises(QStashInputError, match="No filter given"):
        _read(rendered, optional=optional)
    bulk_filter = _read(rendered, optional=optional, cancel_all="True")
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
    assert bulk_filter.select_all is expected


def test_cancel_all_text_false_does_not_allow_an_empty_filter():
    with pytest.raises(QStashInputError, match="No filter given"):
        _read({}, cancel_all="False")


@pytest.mark.parametrize("cancel_all", ["yes", "1", "", "None", 1, 0, None, "Truee"])
def test_cancel_all_other_values_are_refused(cancel_all):
    with pytest.raises(QStashInputError, match="cancel_all must be True or False"):
        _read({"labels": "a"}, cancel_all=cancel_all)


def test_the_rendered_reader_names_the_callers_flag_also_after_pinning_to_date():
    read = {
        "set_by_author": ["labels"],
        "templated": [],
        "now_ms": NOW_MS,
        "filter_class": BulkCancelFilter,
        "table": WIPE_ALL_FILTERS,
    }
    with pytest.raises(QStashInputError, match=r"set wipe_all=True"):
        read_rendered_filter({"to_date": "2099-01-01"}, **{**read, "set_by_author": ["to_date"]})
    with pytest.raises(QStashInputError, match=r"^wipe_all must be True or False"):
        read_rendered_filter({"labels": "a"}, select_all="maybe", **read)
    pinned = read_rendered_filter({"labels": "a"}, **read)
    assert (pinned.labels, pinned.to_date) == (("a",), NOW_MS)


@pytest.mark.parametrize(("value", "expected"), [(True, True), ("true", True), ("False", False), (False, False)])
def test_parse_bool(value, expected):
    assert parse_bool(value, "flag") is expected


def test_rendered_refusals_name_the_parameter():
    with pytest.raises(QStashInputError, match="hosts"):
        _read({"hosts": "[example.com]"})
    with pytest.raises(QStashInputError, match="from_date"):
        _read({"labels": "a", "from_date": "not a date"})
    with pytest.raises(QStashInputError, match="to_date"):
        _read({"labels": "a", "to_date": 1_704_067_200})


def test_rendered_list_element_with_a_comma_is_refused_not_split_or_kept():
    # "['a, b']" is one element that QStash would split into two labels: refuse, never widen.
    with pytest.raises(QStashInputError, match="contains a comma"):
        _rendered_labels("['a, b']")


@pytest.mark.parametrize("text", ["['a', ", "['a'", "a']", "(a, b"])
def test_rendered_half_list_text_is_refused_not_split_into_odd_labels(text):
    # A list whose text broke in rendering must not become labels like "['a'" (it would match nothing,
    # silently); say what is wrong instead.
    with pytest.raises(QStashInputError, match="looks like a list"):
        _rendered_labels(text)


@pytest.mark.parametrize("bad", [".", "..", " .. ", "./.", "a/..", "%2e%2e", "%2E", "x\\..\\y", "../m1"])
def test_message_ids_with_a_dot_segment_are_refused_by_every_reader(bad):
    spec = BULK_CANCEL_FILTERS["message_ids"]
    for read in (read_values, read_rendered_values):
        with pytest.raises(QStashInputError) as info:
            read(spec, ["m1", bad])
        assert f"{spec.name}[1]=" in str(info.value)
        assert "dot segment" in str(info.value)
        assert "Give the real id" in str(info.value)


@pytest.mark.parametrize("good", ["msg_1.2", "a..b", "...", "msg.", ".msg", "a/b"])
def test_ids_with_dots_that_are_not_segments_are_kept(good):
    assert read_values(BULK_CANCEL_FILTERS["message_ids"], [good]) == (good,)


def test_the_dot_segment_rule_is_declared_per_filter():
    assert [spec.name for spec in BULK_CANCEL_FILTERS.specs if spec.no_dot_segments] == ["message_ids"]
    assert read_values(LABELS, ["..", "."]) == ("..", ".")


@pytest.mark.parametrize("filter_class", [BulkCancelFilter, DLQFilter])
def test_the_rendered_reader_judges_the_from_date_against_the_task_start(filter_class):
    """The operator passes its task start: the same value is fine a day after it and refused a year later."""
    day = 86_400_000
    from_ms = NOW_MS - 30 * day
    later = NOW_MS + filter_class.TABLE.kept_ms
    kwargs = {"set_by_author": ["from_date"], "filter_class": filter_class, "table": filter_class.TABLE}
    assert read_rendered_filter({"from_date": from_ms}, now_ms=NOW_MS, **kwargs).from_date == from_ms
    with pytest.raises(QStashInputError, match="older than anything QStash keeps"):
        read_rendered_filter({"from_date": from_ms}, now_ms=later, **kwargs)


# ------------------------------------------------------------------ quoted renderings (#17.9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"a"', ("a",)),
        ("'a'", ("a",)),
        ('  "a"  ', ("a",)),
        ('"a", "b"', ("a", "b")),
        ('"\\u00e9t\\u00e9"', ("été",)),
        ('"none"', ("none",)),
    ],
)
def test_a_quoted_rendering_is_the_value_inside(text, expected):
    assert read_rendered_values(BULK_CANCEL_FILTERS["labels"], text) == expected


def test_a_quoted_number_is_a_whole_number_for_an_integer_filter():
    assert read_rendered_values(DLQ_FILTERS["response_statuses"], '"500"') == (500,)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('"a', "starts with a quote"),
        ('"a" b', "starts with a quote"),
        ('"a", 1', "starts with a quote"),
        ('"a,b"', "comma"),
    ],
)
def test_a_quoted_rendering_that_is_not_one_string_is_refused(text, match):
    with pytest.raises(QStashInputError, match=match):
        read_rendered_values(BULK_CANCEL_FILTERS["labels"], text)


@pytest.mark.parametrize("text", ['""', "''", ' "" '])
def test_a_quoted_empty_string_renders_empty(text):
    assert renders_empty(text, templated=True)
    assert renders_empty(text, templated=False)


def test_the_reader_is_told_the_value_class_and_the_table():
    """inputs names no filter table or value object (the tables import the readers): the operator says which."""
    with pytest.raises(TypeError, match="filter_class"):
        read_rendered_filter({"labels": "a"}, set_by_author=["labels"], now_ms=NOW_MS, table=BULK_CANCEL_FILTERS)  # type: ignore[call-arg]
    dlq = read_rendered_filter(
        {"labels": "a"}, set_by_author=["labels"], now_ms=NOW_MS, filter_class=DLQFilter, table=DLQ_FILTERS
    )
    assert (type(dlq), dlq.labels, dlq.to_date) == (DLQFilter, ("a",), NOW_MS)
    with pytest.raises(TypeError, match="takes the filters of"):
        read_rendered_filter(
            {"labels": "a"}, set_by_author=["labels"], now_ms=NOW_MS, filter_class=DLQFilter, table=BULK_CANCEL_FILTERS
        )
