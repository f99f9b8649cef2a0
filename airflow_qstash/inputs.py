"""
Every reader of user input, each once: dates (Unix ms, ISO-8601), list values and their Jinja renderings,
the templated-or-literal judgement, the operator's reader of its rendered filters
(:func:`read_rendered_filter`), booleans, counts and bounds, durations, and the DLQ retry overrides.

Nothing here knows about HTTP or the filter tables: a reader is given what it needs of a filter as a
:class:`ListSpec` or :class:`FieldSpec` (the filter tables' :class:`~airflow_qstash.filters.FilterSpec` is
one), of a table as a :class:`FieldTable` (:class:`~airflow_qstash.filters.FilterTable`) and of a value
object as a :class:`CheckedValue` (:class:`~airflow_qstash.filters.FilterValue`), so the tables import the
readers and never the other way round. Every refusal is a
:class:`~airflow_qstash.exceptions.QStashInputError` that says what to change. The clock is read here
and nowhere else in the provider (:func:`now_ms`).
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote

from airflow_qstash.exceptions import QStashInputError


class ListSpec(Protocol):
    """
    What a list reader needs to know of a filter (a :class:`~airflow_qstash.filters.FilterSpec` has it).

    :ivar name: the argument's name, for the refusals.
    :ivar param: the query parameter, for the refusal of too many values.
    :ivar item: the type of a value, ``str`` or ``int``.
    :ivar max_values: the most values taken (``None``: any number).
    :ivar no_dot_segments: refuse values that are or contain a ``.``/``..`` path segment.
    """

    @property
    def name(self) -> str: ...
    @property
    def param(self) -> str: ...
    @property
    def item(self) -> type[str] | type[int]: ...
    @property
    def max_values(self) -> int | None: ...
    @property
    def no_dot_segments(self) -> bool: ...


class FieldSpec(ListSpec, Protocol):
    """
    What the operator's reader needs to know of a filter: a :class:`ListSpec` and its kind.

    :ivar kind: ``"list"`` or ``"date"``.
    """

    @property
    def kind(self) -> str: ...


class FieldTable(Protocol):
    """
    What the operator's reader needs to know of a filter table (a :class:`~airflow_qstash.filters.FilterTable`).

    :ivar specs: the filters in query order, the dates :data:`FROM_DATE` and :data:`TO_DATE` among them.
    :ivar all_flag: the caller's name of the flag that allows a request with no filter (``cancel_all``).
    :ivar ids_name: the exact-ids filter, if the table has one.
    """

    @property
    def specs(self) -> tuple[FieldSpec, ...]: ...
    @property
    def all_flag(self) -> str: ...
    @property
    def ids_name(self) -> str | None: ...


CheckedValueT = TypeVar("CheckedValueT", bound="CheckedValue")


class CheckedValue(Protocol):
    """What the operator's reader needs of a value object's class (a :class:`~airflow_qstash.filters.FilterValue`)."""

    @classmethod
    def checked(
        cls: type[CheckedValueT],
        values: Mapping[str, Any],
        *,
        select_all: bool,
        table: Any = None,
        now_ms: int | None = None,
        pin_to_date: int | None = None,
    ) -> CheckedValueT:
        """The value of normalised ``values``, checked (:meth:`~airflow_qstash.filters.FilterValue.checked`)."""
        ...


def now_ms() -> int:
    """The wall clock in Unix milliseconds: the one place the provider reads it (hooks without a ``now_ms``)."""
    return time.time_ns() // 1_000_000


# Epoch milliseconds of 2000-01-01T00:00:00Z: an earlier bound (other than from_date=0, "since the
# beginning") is a mistake, usually Unix seconds or a fallback such as {{ params.to_date or 0 }}. Above
# the upper bound (year 5138) a number is microseconds or nanoseconds.
MIN_DATE_MS = 946_684_800_000
_MAX_PLAUSIBLE_MS = 100_000_000_000_000
# A number below MIN_DATE_MS that is Unix seconds of 2000..2099 gets the "seconds, not milliseconds" hint.
_YEAR_2100_MS = 4_102_444_800_000
#: Text a template renders for "nothing"; only for *templated* values (a literal "none" is the value none).
EMPTY_RENDERINGS = frozenset({"", "none", "null"})
NOW = "now"
#: The two date bounds every filter table has, by name.
FROM_DATE = "from_date"
TO_DATE = "to_date"
#: The default Jinja start markers; a string holding one of them is a template.
JINJA_MARKERS: tuple[str, ...] = ("{{", "{%", "{#")
#: Why a date template renders to nothing, and what to do about it.
MANUAL_RUN_HINT = (
    "A manual or API-triggered run has no data interval in Airflow 3, so {{ data_interval_start }} is "
    "None or undefined there: trigger with a logical date, pass the window in params, or write the "
    "fallback into the template (e.g. {{ params.from_date or 0 }} / {{ params.to_date or 'now' }})."
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_LITERAL_SCALARS = (str, bytes, bool, int, float, Decimal, dt.date, dt.time, dt.timedelta)
# The repr of a Python object: "<generator object select_or_reject at 0x7f...>", "<list_reverseiterator ...>".
_OBJECT_REPR = re.compile(r"^<([A-Za-z_][\w.]*)[ >]")
# The repr of a container type: "dict_keys(['a'])", "frozenset({'a'})", "deque(['a'])". A value that only
# ends in ")" ("https://x/Foo_(bar)", "report (v2)") does not match: the "(" must follow a bare name and
# open a literal.
_CALL_REPR = re.compile(r"""^([A-Za-z_][\w.]*)\(\s*[\[{(<'"]""")


def _utc_ms(value: dt.datetime) -> int:
    """Exact Unix milliseconds of a datetime; a naive one is read as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    delta = value - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def to_iso(ms: int) -> str:
    """Unix milliseconds as ISO-8601 UTC text with milliseconds, for messages."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat(timespec="milliseconds")


def check_epoch_ms(ms: int, name: str, *, zero_allowed: bool) -> int:
    if ms < 0:
        raise QStashInputError(f"{name}={ms} is negative; give Unix milliseconds (>= 0) or a datetime.")
    if ms == 0:
        if zero_allowed:
            return ms
        raise QStashInputError(
            f"{name}=0 is 1970-01-01, which selects nothing (or, on a server that reads 0 as no bound, "
            f"everything). For 'up to the task's start' use 'now' (e.g. {{{{ params.{name} or 'now' }}}}) "
            f"or leave {name} unset."
        )
    if ms < MIN_DATE_MS:
        if MIN_DATE_MS <= ms * 1000 < _YEAR_2100_MS:
            raise QStashInputError(
                f"{name}={ms} is ambiguous: it looks like Unix seconds, but QStash takes Unix milliseconds. "
                f"Pass {ms * 1000} (milliseconds), a datetime, or an ISO-8601 string."
            )
        zero = " (from_date=0, 'since the beginning', is the one exception)" if zero_allowed else ""
        raise QStashInputError(
            f"{name}={ms} ({to_iso(ms)}) is before 2000-01-01, which no QStash message is: give a later date "
            f"in Unix milliseconds, a datetime or ISO-8601{zero}."
        )
    if ms > _MAX_PLAUSIBLE_MS:
        raise QStashInputError(
            f"{name}={ms} is too large for Unix milliseconds (microseconds or nanoseconds?); "
            "pass milliseconds, a datetime, or an ISO-8601 string."
        )
    return ms


def to_unix_ms(value: Any, name: str, *, now_ms: int | None = None, zero_allowed: bool = False) -> int | None:
    """
    Read one date bound as integer Unix milliseconds.

    Accepts ``None`` (no bound), an aware or naive ``datetime`` (naive means UTC), a pendulum
    ``DateTime``, a ``date`` (midnight UTC), integer epoch milliseconds (as int or digit string) and an
    ISO-8601 string such as a rendered ``{{ data_interval_start }}``. The string ``"now"`` means
    ``now_ms`` when the caller pins one. A date before 2000-01-01 is refused, except ``0`` where
    ``zero_allowed`` (``from_date=0``: since the beginning).

    :param value: the bound as given or rendered.
    :param name: the parameter's name, for the error message.
    :param now_ms: what ``"now"`` means, in Unix milliseconds; ``None`` refuses ``"now"``.
    :param zero_allowed: accept ``0``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise QStashInputError(f"{name} must be a date, not a boolean ({value!r}).")
    if isinstance(value, dt.datetime):
        return check_epoch_ms(_utc_ms(value), name, zero_allowed=zero_allowed)
    if isinstance(value, dt.date):
        midnight = dt.datetime(value.year, value.month, value.day)
        return check_epoch_ms(_utc_ms(midnight), name, zero_allowed=zero_allowed)
    if isinstance(value, int):
        return check_epoch_ms(value, name, zero_allowed=zero_allowed)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in EMPTY_RENDERINGS:
            raise QStashInputError(f"{name} is empty ({value!r}); give a date or leave {name} unset.")
        if text.lower() == NOW:
            if now_ms is None:
                raise QStashInputError(f"{name}='now' is only accepted by the operator, which pins it.")
            return now_ms
        if text.isascii() and text.isdecimal():
            return check_epoch_ms(int(text), name, zero_allowed=zero_allowed)
        return check_epoch_ms(_utc_ms(_parse_iso8601(text, name)), name, zero_allowed=zero_allowed)
    raise QStashInputError(
        f"{name} must be a datetime, an ISO-8601 string or Unix milliseconds, not {type(value).__name__}."
    )


def _parse_iso8601(text: str, name: str) -> dt.datetime:
    import pendulum  # local: pendulum's parser is only needed when a string date is given

    try:
        parsed = pendulum.parse(text, tz="UTC", exact=True)
    except Exception as err:  # pendulum raises several error types for bad input
        raise QStashInputError(
            f"{name}={text!r} is not a date QStash can use: give ISO-8601 such as "
            "'2024-05-01T00:00:00+00:00', a datetime, or Unix milliseconds."
        ) from err
    if not isinstance(parsed, dt.datetime):
        if isinstance(parsed, dt.date):
            return dt.datetime(parsed.year, parsed.month, parsed.day, tzinfo=dt.timezone.utc)
        raise QStashInputError(
            f"{name}={text!r} is a {type(parsed).__name__}, not a date and time; give ISO-8601 "
            "such as '2024-05-01T00:00:00+00:00'."
        )
    return parsed


# --------------------------------------------------------------------------- list values


def _forms(spec: ListSpec) -> str:
    return "a string or a list of strings" if spec.item is str else "a whole number or a list of whole numbers"


def _item(spec: ListSpec, index: int, item: Any) -> Any:
    name = spec.name
    if spec.item is int:
        if isinstance(item, str) and item.strip().isascii() and item.strip().isdecimal():
            return int(item.strip())
        if isinstance(item, int) and not isinstance(item, bool):
            return item
        raise QStashInputError(
            f"{name}[{index}] is {type(item).__name__} ({item!r}); every {name} value must be a whole number."
        )
    if not isinstance(item, str):
        raise QStashInputError(
            f"{name}[{index}] is {type(item).__name__} ({item!r}); every {name} value must be a string."
        )
    item = item.strip()
    if not item:
        raise QStashInputError(f"{name}[{index}] is empty; remove it or give a value.")
    if "," in item:
        raise QStashInputError(
            f"{name}[{index}]={item!r} contains a comma: QStash splits filter values on commas, so it "
            "would match each part (a wider cancel). Pass the parts as separate values if that is meant."
        )
    if spec.no_dot_segments and has_dot_segment(item):
        raise QStashInputError(
            f"{name}[{index}]={item!r} is or contains a dot segment ('.' or '..'): no QStash id looks like "
            "that, and in a path URL normalisation removes it, so the request would reach another endpoint. "
            "Give the real id."
        )
    return item


def has_dot_segment(text: str) -> bool:
    """
    Whether ``text`` (or its percent-decoded form) is or contains a ``.`` or ``..`` segment (behind ``/``
    or ``\\``, white space around it ignored): URL normalisation removes such a segment, so an id with one
    would reach another path. The one judgement, for filter values and for path ids
    (:func:`~airflow_qstash.protocol.endpoints.path_segment`).
    """
    for candidate in (text, unquote(text)):
        if any(segment.strip() in (".", "..") for segment in candidate.replace("\\", "/").split("/")):
            return True
    return False


def _items(spec: ListSpec, values: Iterable[Any]) -> tuple[Any, ...]:
    out: dict[Any, None] = {}  # ordered and O(1) membership: id lists run to tens of thousands
    for index, item in enumerate(values):
        out.setdefault(_item(spec, index, item), None)
    if spec.max_values is not None and len(out) > spec.max_values:
        raise QStashInputError(
            f"{spec.name} takes at most {spec.max_values} value(s) ({spec.param} is one value in the API), "
            f"not {len(out)}."
        )
    return tuple(out)


def read_values(spec: ListSpec, value: Any) -> tuple[Any, ...]:
    """
    Read a list filter given in Python (the hook's keywords).

    ``None`` is "no such filter"; a string is one value; a list, tuple or set holds the values (a set in
    sorted order). A value that is given but empty (``""``, whitespace, ``[]``) is refused: dropping it
    would widen the request to whatever the other filters select.
    """
    name = spec.name
    if value is None:
        return ()
    if isinstance(value, str):
        if not value.strip():
            raise QStashInputError(
                f"{name} is empty ({value!r}): give a value, or leave {name} unset (None) for no {name} filter."
            )
        return _items(spec, [value])
    if isinstance(value, list | tuple | set | frozenset):
        if not value:
            raise QStashInputError(
                f"{name} is an empty {type(value).__name__}: give at least one value, or leave {name} unset "
                f"(None) for no {name} filter."
            )
        return _items(spec, sorted(value, key=str) if isinstance(value, set | frozenset) else value)
    if spec.item is int and isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    raise QStashInputError(f"{name} must be {_forms(spec)}, not {type(value).__name__}.")


def renders_empty(value: Any, *, templated: bool) -> bool:
    """
    Whether a (rendered) operator value is empty: ``None``, blank text, ``"[]"``, ``"()"``, a quoted empty
    string (``""`` or ``''``, what ``| tojson`` renders ``""`` as), only commas,
    an empty list or tuple; for a *templated* value also ``"None"``/``"null"`` (what ``{{ params.x }}`` and
    ``{{ params.x | tojson }}`` render for a missing value). A literal ``"none"`` is the value ``none``.
    """
    if value is None:
        return True
    if isinstance(value, str):
        text = value.strip()
        if text in ("[]", "()", '""', "''") or not text.replace(",", "").strip():
            return True
        return templated and text.lower() in EMPTY_RENDERINGS
    if isinstance(value, list | tuple):
        return not value
    return False


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _refuse_rendering(spec: ListSpec, value: Any, kind: str) -> QStashInputError:
    hint = (
        " End the template with | list (e.g. {{ params.labels | select | list }}): Jinja filters such as "
        "select, reject, map, unique and reverse return a generator, not a list."
        if kind in ("generator", "map", "filter", "reversed") or kind.startswith("dict_") or "iterator" in kind
        else ""
    )
    shown = value if len(str(value)) <= 80 else f"{str(value)[:77]}..."
    what = f"{'the text of ' if isinstance(value, str) else ''}{_article(kind)} {kind}"
    return QStashInputError(
        f"{spec.name} rendered {what} ({shown!r}), which is not a list of values: give a list or tuple, a single "
        f"value, comma-separated text, a JSON array or a Python list repr.{hint}"
    )


def _read_list_text(spec: ListSpec, text: str, original: str) -> Any:
    """Parse text that looks like a list: JSON first (``["a", null]``), then a Python literal."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as err:
        raise QStashInputError(
            f"{spec.name}={original!r} looks like a list but is not one JSON or Python can read; "
            "give a list of strings or a comma-separated string."
        ) from err


def read_rendered_values(spec: ListSpec, value: Any) -> tuple[Any, ...]:
    """
    Read a list filter as the operator has it after rendering; the caller has ruled out an empty value
    (see :func:`renders_empty`).

    Accepts a list or tuple, a single value, comma-separated text (``"a, b"``, QStash's own separator),
    a JSON array (``| tojson``), a Python list or tuple repr (``"['a', 'b']"``, what Jinja renders a
    list as) and a quoted string (``"a"``, what ``| tojson`` renders a string as: the value ``a``). Every
    other rendering is refused naming its type: the text Jinja makes of a generator (``<generator object
    ...>``), a set or dict (object or repr), a dict view, a number for a text filter.
    A value that merely ends in ``)`` (``https://x/Foo_(bar)``) is a value.
    """
    if isinstance(value, list | tuple):
        return _items(spec, value)
    if spec.item is int and isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if not isinstance(value, str):
        raise _refuse_rendering(spec, value, type(value).__name__)
    text = value.strip()
    if text.startswith("<") and text.endswith(">"):
        match = _OBJECT_REPR.match(text)
        raise _refuse_rendering(spec, value, match.group(1) if match else "Python object")
    match = _CALL_REPR.match(text)
    if match and text.endswith(")"):
        raise _refuse_rendering(spec, value, match.group(1))
    if text.startswith("{"):
        try:
            parsed: Any = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            parsed = None
        raise _refuse_rendering(spec, value, type(parsed).__name__ if parsed is not None else "set or dict")
    if text.startswith(("[", "(")) or text.endswith("]"):
        parsed = _read_list_text(spec, text, value)
        if isinstance(parsed, list | tuple):
            return _items(spec, parsed)
        if isinstance(parsed, str | int) and not isinstance(parsed, bool):
            return _items(spec, [parsed])  # "('a')" is the string a in parentheses
        raise _refuse_rendering(spec, value, type(parsed).__name__)
    if text[:1] in "\"'":
        return _items(spec, _read_quoted_text(spec, text, value))
    return _items(spec, (part.strip() for part in text.split(",") if part.strip()))


def _read_quoted_text(spec: ListSpec, text: str, original: str) -> list[Any]:
    """
    A quoted rendering: ``"a"`` (``{{ x | tojson }}`` of a string) or ``'a'`` (a Python repr) is the value
    ``a``, not a label with quotes; ``"a", "b"`` is two values. Read like a list's text: JSON first, then a
    Python literal; anything else is refused.
    """
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            parsed = None
    if isinstance(parsed, str):
        return [parsed]
    if isinstance(parsed, tuple) and all(isinstance(item, str) for item in parsed):
        return list(parsed)
    raise QStashInputError(
        f"{spec.name}={original!r} starts with a quote but is not a quoted string JSON or Python can read "
        "(as {{ x | tojson }} renders one): give the value without quotes, a list, or comma-separated text."
    )


# --------------------------------------------------------------------------- templated or literal


def is_templated(value: Any, markers: Iterable[str] = JINJA_MARKERS) -> bool:
    """
    Whether Airflow's rendering may change an operator argument, judged on its raw value.

    Templated: a string that holds a Jinja start marker (``{{``, ``{%``, ``{#``, or the DAG's own), a
    list, tuple, set or dict holding one, and any value that is not a plain literal (an ``XComArg`` or
    other object Airflow resolves, a callable, an object with its own template fields). Literal:
    ``None``, strings without markers, numbers, booleans, dates and times, and containers of those.

    :param value: the argument as the DAG author passed it.
    :param markers: the strings that start a Jinja expression, statement or comment.
    """
    markers = tuple(markers)
    if value is None:
        return False
    if isinstance(value, str):
        return any(marker in value for marker in markers)
    if isinstance(value, list | tuple | set | frozenset):
        return any(is_templated(item, markers) for item in value)
    if isinstance(value, dict):
        return any(is_templated(item, markers) for item in value.values())
    return not isinstance(value, _LITERAL_SCALARS)


# --------------------------------------------------------------------------- the operator's reader


def read_rendered_filter(
    rendered: Mapping[str, Any],
    *,
    set_by_author: Iterable[str],
    templated: Iterable[str] = (),
    optional: Iterable[str] = (),
    select_all: Any = False,
    now_ms: int,
    filter_class: type[CheckedValueT],
    table: FieldTable,
) -> CheckedValueT:
    """
    Build a filter from an operator's rendered template fields.

    The rule held everywhere: a value the DAG author set never silently widens the request.

    * A filter the author did not set (``None`` before rendering) is absent.
    * A literal (untemplated) value is taken literally: ``labels="none"`` is the label ``none``. A
      literal that is empty (``""``, ``[]``) is refused, like a template that renders empty.
    * A templated value that renders empty (see :func:`renders_empty`) is refused, naming the field,
      unless the field is in ``optional``: then it counts as absent. For a date the message explains
      manual runs (no data interval in Airflow 3).
    * ``from_date=0`` is "since the beginning" and ``to_date='now'`` "up to the task's start"; neither is
      a filter. A ``to_date`` at or after the task's start selects everything: it is no filter either,
      and the run is pinned to the task's start instead.
    * The effective ``to_date`` is the earlier of the one given and the task's start (``now_ms``), so
      producers publishing during the run cannot keep the loop alive; an ids run takes no dates.
    * With nothing left that selects, the filter is refused unless ``select_all`` is true.
    * ``from_date == to_date`` (a zero-width window) is refused: it is what Airflow 3's default cron
      timetable renders for ``data_interval_start``/``data_interval_end``.

    :param rendered: rendered values by filter name.
    :param set_by_author: names whose value was not ``None`` before rendering.
    :param templated: names whose raw value was templated (see :func:`is_templated`).
    :param optional: names that may render empty and then count as absent (``optional_filters``).
    :param select_all: the rendered all-flag (``cancel_all``): a bool, or the text ``"True"``/``"False"``.
    :param now_ms: the task's start in Unix milliseconds.
    :param filter_class: the value object to build
        (:class:`~airflow_qstash.filters.BulkCancelFilter`, :class:`~airflow_qstash.filters.DLQFilter`).
    :param table: the operator's table of those filters, whose all-flag name (``delete_all``) the refusals
        say; it must declare the value object's filters.
    """
    set_by_author, templated, optional = set(set_by_author), set(templated), set(optional)
    values: dict[str, Any] = {}
    dropped: list[str] = []
    for spec in table.specs:
        name = spec.name
        value = rendered.get(name) if name in set_by_author else None
        if name not in set_by_author:
            values[name] = () if spec.kind == "list" else None
            continue
        if renders_empty(value, templated=name in templated):
            if name not in optional:
                raise _empty_refusal(spec, value, templated=name in templated)
            dropped.append(name)
            values[name] = () if spec.kind == "list" else None
        elif spec.kind == "list":
            values[name] = read_rendered_values(spec, value)
        elif name == TO_DATE and isinstance(value, str) and value.strip().lower() == NOW:
            values[name] = None  # "up to now" is the pinned default below, and is no filter of its own
        else:
            values[name] = to_unix_ms(value, name, now_ms=now_ms, zero_allowed=name == FROM_DATE)
    from_date, to_date = values[FROM_DATE], values[TO_DATE]
    if from_date and from_date == to_date:
        raise QStashInputError(
            f"from_date and to_date are both {to_iso(to_date)}: a zero-width window. With a cron "
            "schedule such as '@daily', Airflow 3's default CronTriggerTimetable makes data_interval_start "
            "equal data_interval_end; use schedule=CronDataIntervalTimetable(...) "
            "(airflow.timetables.interval) or give an explicit window."
        )
    flag = parse_bool(select_all, table.all_flag)
    if table.ids_name is not None and values[table.ids_name]:
        # an ids run takes no dates: any date is refused
        return filter_class.checked(values, select_all=flag, table=table, now_ms=now_ms)
    pinned = to_date is None or to_date >= now_ms
    if pinned and from_date and from_date > now_ms:
        raise QStashInputError(
            f"from_date ({to_iso(from_date)}) is after the task's start ({to_iso(now_ms)}), which is where to_date "
            "ends at the latest: no message could match. Fix from_date or give an earlier to_date."
        )
    notes = []
    if to_date is not None and to_date >= now_ms:
        notes.append(
            f"to_date ({to_iso(to_date)}) is at or after the task's start ({to_iso(now_ms)}), so it selects every "
            "message and is no filter"
        )
    if dropped:
        notes.append(f"{', '.join(dropped)} rendered empty and {'is' if len(dropped) == 1 else 'are'} optional")
    # Judged with a bound that selects everything left out, so that it never counts as the one filter
    # that makes an otherwise empty (act-on-everything) filter acceptable; the pin is set afterwards.
    try:
        return filter_class.checked(
            {**values, TO_DATE: None if pinned else to_date},
            select_all=flag,
            table=table,
            now_ms=now_ms,
            pin_to_date=now_ms if pinned else None,
        )
    except QStashInputError as err:
        if not notes or not err.no_filter:
            raise
        raise QStashInputError(f"{err} Note: {'; '.join(notes)}.", no_filter=True) from None


def _empty_refusal(spec: FieldSpec, value: Any, *, templated: bool) -> QStashInputError:
    name = spec.name
    if not templated:
        return QStashInputError(
            f"{name} is empty ({value!r}): give a value, leave {name} unset (None) for no {name} filter, or "
            f"list '{name}' in optional_filters if an empty {name} should mean 'any'."
        )
    widen = "the window to all time" if spec.kind == "date" else "the selection to whatever the other filters select"
    message = (
        f"{name} is templated but rendered empty ({value!r}); dropping it would widen {widen}. Give it a "
        f"value (check the params or XCom it reads), or list '{name}' in optional_filters if an empty "
        f"{name} should mean 'any'."
    )
    return QStashInputError(f"{message} {MANUAL_RUN_HINT}" if spec.kind == "date" else message)


# --------------------------------------------------------------------------- booleans, counts, bounds


def parse_bool(value: Any, name: str, *, default: bool | None = None) -> bool:
    """
    Read a boolean: ``True``/``False`` or their text forms (a rendered template, a connection extra);
    ``None`` is ``default`` when one is given. Anything else is refused naming ``name``.
    """
    if value is None and default is not None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise QStashInputError(f"{name} must be True or False, not {value!r}.")


#: QStash's ``count`` on ``DELETE /v2/messages``: 1..500.
MIN_COUNT = 1
MAX_COUNT = 500
#: The most entries one DLQ list or delete request takes (the spec's ``count`` maximum), and the default
#: ``batch_size`` of a DLQ delete: the DLQ page size, declared once.
DLQ_MAX_COUNT = 100


def parse_count(value: Any, name: str = "count", *, maximum: int = MAX_COUNT, what: str = "") -> int:
    """
    Read a per-request count (QStash's ``count``, a ``batch_size``): a whole number from 1 to ``maximum``
    (an int, or its digits). The one count reader: bulk cancel (1..500), the DLQ (1..100).

    :param value: the count as given or rendered.
    :param name: the argument's name, for the refusal.
    :param maximum: the largest count the endpoint takes.
    :param what: what the count is, in parentheses in the refusal (``QStash's DLQ count``).
    """
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdecimal():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_COUNT <= value <= maximum:
        note = f" ({what})" if what else ""
        raise QStashInputError(f"{name} must be a whole number from {MIN_COUNT} to {maximum}{note}, not {value!r}.")
    return value


#: The bound on requests when ``max_batches``/``max_requests`` is not given: finite, so that a server that
#: keeps answering "more" cannot hold a task for ever, and far above any real job (100,000 requests of 500
#: messages is 50 million messages; of 100 DLQ entries, 10 million).
DEFAULT_MAX_REQUESTS = 100_000


def parse_bound(value: Any, name: str) -> int:
    """
    Read a bound on requests (``max_batches``, ``max_requests``): a whole number >= 1 (int or digits);
    ``None`` or a template that renders empty means :data:`DEFAULT_MAX_REQUESTS`. The one bound reader.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in EMPTY_RENDERINGS):
        return DEFAULT_MAX_REQUESTS
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdecimal():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise QStashInputError(
            f"{name} must be a whole number >= 1, or None for the default ({DEFAULT_MAX_REQUESTS:,} "
            f"requests), not {value!r}."
        )
    return value


#: How long one bulk action is followed by default (seconds).
DEFAULT_ACTION_TIMEOUT = 6 * 3600.0


def parse_action_timeout(value: Any) -> float:
    """
    Read ``action_timeout``: seconds (int, float, digit string or ``timedelta``), finite and > 0. ``None``, or
    a template that renders empty (a blank form field), means :data:`DEFAULT_ACTION_TIMEOUT`.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in EMPTY_RENDERINGS):
        return DEFAULT_ACTION_TIMEOUT
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    elif isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise QStashInputError(f"action_timeout must be seconds or a timedelta, not {value!r}.") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise QStashInputError(f"action_timeout must be a finite number of seconds > 0 or a timedelta, not {value!r}.")
    return float(value)


# --------------------------------------------------------------------------- durations and retry overrides

_DURATION_RE = re.compile(r"^(\d+)\s*([smhd]?)$")
#: QStash's compound form (``1d10h30m``, ``2h15s``): each unit at most once, largest first.
_COMPOUND_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
_HEADER_NAME_RE = re.compile(r"^Upstash-[A-Za-z0-9][A-Za-z0-9-]*$", re.IGNORECASE)
#: Overrides given as their own arguments, and the header each one is sent as.
OVERRIDE_HEADERS = {"retries": "Upstash-Retries", "delay": "Upstash-Delay", "timeout": "Upstash-Timeout"}
#: The longest delay or timeout accepted (seconds): a year. QStash refuses far less; this only keeps the
#: number finite and sane.
MAX_DURATION_SECONDS = 365 * 86_400
MAX_RETRIES_OVERRIDE = 1_000
#: ``Upstash-Method`` values QStash takes (the spec's enum).
OVERRIDE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: The latest ``Upstash-Not-Before`` accepted (Unix seconds): 9999-12-31, only to keep the number sane.
MAX_NOT_BEFORE = 253_402_300_799
#: Override header names whose value is a credential (``Upstash-Forward-Authorization``, any
#: ``*-Authorization``, ``*Cookie``, ``*-Token``, ``*-Secret``, ``*-Key``, ``*-Signature``, ``*-Password``):
#: masked in logs (Airflow's secrets masker) and shown as ``***`` in the XCom ``overrides`` and the plan
#: log line. ``Upstash-Flow-Control-Key`` is QStash's own setting (a flow-control group's name), not one.
_CREDENTIAL_HEADER_RE = re.compile(
    r"(?i)(?:^|-)(?:authorization|cookie|set-cookie|token|secret|key|signature|password|api-?key)$"
)
_NOT_CREDENTIALS = frozenset({"upstash-flow-control-key"})


def _seconds(value: Any, name: str, *, zero_allowed: bool) -> int:
    """Whole seconds from an int, a finite whole float, digits, ``"30s"``/``"5m"``/``"2h"``/``"1d"`` or a timedelta."""
    problem = (
        f"{name} must be whole seconds {'>= 0' if zero_allowed else '> 0'} up to {MAX_DURATION_SECONDS:,}: an "
        f"int, a timedelta or text such as '30s', '5m', '2h', '1d'; not {value!r}."
    )
    seconds: Any = value
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        text = value.strip().lower()
        match = _DURATION_RE.match(text)
        compound = None if match else _COMPOUND_DURATION_RE.match(text.replace(" ", ""))
        if match:
            seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
        elif compound and any(compound.groups()):
            units = (86_400, 3600, 60, 1)
            seconds = sum(int(part or 0) * unit for part, unit in zip(compound.groups(), units, strict=True))
        else:
            raise QStashInputError(problem)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise QStashInputError(problem)
    if not math.isfinite(seconds) or seconds != int(seconds):
        raise QStashInputError(problem)
    seconds = int(seconds)
    if seconds < 0 or (seconds == 0 and not zero_allowed) or seconds > MAX_DURATION_SECONDS:
        raise QStashInputError(problem)
    return seconds


def _retries(value: Any, name: str) -> int:
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdecimal():
        value = int(value.strip())
    if isinstance(value, float) and math.isfinite(value) and float.is_integer(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES_OVERRIDE:
        raise QStashInputError(
            f"{name} must be a whole number from 0 to {MAX_RETRIES_OVERRIDE} (sent as Upstash-Retries), not {value!r}."
        )
    return value


def _header_value(what: str, name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise QStashInputError(f"{what}[{name!r}] must be text or a whole number, not {type(value).__name__}.")
    text = str(value).strip()
    if not text:
        raise QStashInputError(f"{what}[{name!r}] is empty: give a value or leave the header out.")
    for index, char in enumerate(text):
        if char in "\r\n" or not (char == "\t" or " " <= char <= "~"):
            raise QStashInputError(
                f"{what}[{name!r}] has a character that cannot go in an HTTP header value (U+{ord(char):04X}) "
                f"at position {index + 1}: a line break would start another header. Remove it."
            )
    return text


def is_credential_header(name: str) -> bool:
    """Whether an override header carries a credential (see :data:`_CREDENTIAL_HEADER_RE`)."""
    key = name.strip().lower()
    return key not in _NOT_CREDENTIALS and bool(_CREDENTIAL_HEADER_RE.search(key))


def shown_overrides(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The overrides as the XCom ``overrides`` and the plan log line show them: credentials as ``***``."""
    return {name: "***" if is_credential_header(name) else value for name, value in headers}


def _mask_credentials(headers: Iterable[tuple[str, str]]) -> None:
    """Register every credential override value with Airflow's secrets masker (task and triggerer logs)."""
    credentials = [value for name, value in headers if is_credential_header(name)]
    if credentials:
        from airflow.providers.common.compat.sdk import mask_secret

        for value in credentials:
            mask_secret(value)
            mask_secret(value.split(None, 1)[-1])  # "Bearer <x>" / "Basic <x>": the credential alone too


def _typed_header_value(key: str, label: str, text: str) -> str:
    """
    An ``Upstash-*`` header that one of the typed overrides also sets, checked by the same rule and sent in
    the same form: ``override_headers`` is no way around a range check.
    """
    if key == "upstash-retries":
        return str(_retries(text, label))
    if key == "upstash-delay":
        return f"{_seconds(text, label, zero_allowed=True)}s"
    if key == "upstash-timeout":
        return f"{_seconds(text, label, zero_allowed=False)}s"
    if key == "upstash-method":
        if text.upper() not in OVERRIDE_METHODS:
            raise QStashInputError(f"{label} must be one of {', '.join(OVERRIDE_METHODS)}, not {text!r}.")
        return text.upper()
    if key == "upstash-not-before":
        if not (text.isascii() and text.isdecimal()) or int(text) > MAX_NOT_BEFORE:
            raise QStashInputError(
                f"{label} must be Unix seconds, a whole number from 0 to {MAX_NOT_BEFORE}, not {text!r}."
            )
        return str(int(text))
    if key == "upstash-content-based-deduplication":
        if text.lower() not in ("true", "false"):
            raise QStashInputError(f"{label} must be true or false, not {text!r}.")
        return text.lower()
    return text


def _headers_mapping(value: Any, what: str) -> Mapping[str, Any]:
    """A dict of headers, or the text a template makes of one (JSON, or a Python dict repr)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                raise QStashInputError(
                    f"{what} must be a dict of Upstash-* headers (or its JSON text), not the text {text[:80]!r}."
                ) from None
    if not isinstance(value, Mapping):
        raise QStashInputError(f"{what} must be a dict of Upstash-* headers, not {type(value).__name__}.")
    return value


def retry_overrides(
    *, retries: Any = None, delay: Any = None, timeout: Any = None, headers: Any = None, field_prefix: str = ""
) -> tuple[tuple[str, str], ...]:
    """
    The ``Upstash-*`` request headers that override the retried messages' settings, validated.

    :param retries: ``Upstash-Retries``: a whole number from 0 (e.g. 0: one delivery, no more retries).
    :param delay: ``Upstash-Delay``: whole seconds >= 0 (int, timedelta, or ``"30s"``, ``"5m"``, ``"2h"``,
        ``"1d"``), sent as ``"<n>s"``.
    :param timeout: ``Upstash-Timeout``: whole seconds > 0, same forms, sent as ``"<n>s"``.
    :param headers: more overrides as a dict (or its JSON text): every name must start with ``Upstash-``
        (the others would not be overrides, and ``Authorization`` would replace the token), no value may
        hold a line break or a control character, and a header also given as ``retries``/``delay``/
        ``timeout`` is refused (one value would be dropped). ``Upstash-Retries``/``-Delay``/``-Timeout``
        given here pass the same checks as the arguments (and ``Upstash-Method``, ``-Not-Before``,
        ``-Content-Based-Deduplication`` theirs). Credential values (``*-Authorization``, ``*-Token``...)
        are registered with Airflow's secrets masker; :func:`shown_overrides` shows them as ``***``.
    :param field_prefix: what the caller calls these arguments before their names, for the refusals
        (the retry operator's ``override_``).
    :return: ``(name, value)`` pairs, ``None`` arguments left out.
    """
    names = {arg: f"{field_prefix}{arg}" for arg in ("retries", "delay", "timeout", "headers")}
    out: dict[str, tuple[str, str]] = {}
    given_as: dict[str, str] = {}
    if retries is not None:
        out["upstash-retries"] = (OVERRIDE_HEADERS["retries"], str(_retries(retries, names["retries"])))
    if delay is not None:
        out["upstash-delay"] = (OVERRIDE_HEADERS["delay"], f"{_seconds(delay, names['delay'], zero_allowed=True)}s")
    if timeout is not None:
        out["upstash-timeout"] = (
            OVERRIDE_HEADERS["timeout"],
            f"{_seconds(timeout, names['timeout'], zero_allowed=False)}s",
        )
    for argument, header in OVERRIDE_HEADERS.items():
        given_as[header.lower()] = f"{names[argument]}="
    if headers is None:
        return tuple(out.values())
    for name, value in _headers_mapping(headers, names["headers"]).items():
        if not isinstance(name, str) or not _HEADER_NAME_RE.match(name.strip()):
            raise QStashInputError(
                f"{names['headers']} name {name!r} is not an Upstash-* header: only Upstash-* headers override "
                "a retried message's settings (letters, digits and '-' after 'Upstash-')."
            )
        key = name.strip().lower()
        if key in out:
            raise QStashInputError(
                f"{name} is given twice (as {given_as.get(key, 'another key')} and as "
                f"{names['headers']}[{name!r}]); keep one: the other would be dropped."
            )
        given_as[key] = f"{names['headers']}[{name!r}]"
        text = _typed_header_value(key, given_as[key], _header_value(names["headers"], name, value))
        out[key] = (name.strip(), text)
    _mask_credentials(out.values())
    return tuple(out.values())
