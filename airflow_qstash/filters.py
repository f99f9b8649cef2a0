"""What a bulk cancel selects: the filter value object, its accepted input forms and every safety refusal.

Nothing in this module touches the network. Every refusal is a :class:`BulkCancelFilterError` (a
``ValueError``) raised before the first request, with a message that says what to change.

Two readers share one value object:

* :meth:`BulkCancelFilter.build` reads values given in Python (the hook's ``bulk_cancel`` keywords):
  a single string is a one-element list, dates are datetimes, ISO-8601 strings or epoch milliseconds.
* :func:`read_rendered_filter` reads values rendered from templates (the operator): it also accepts a
  comma-separated string or the text form of a list (``"['a', 'b']"``), treats a list that renders empty
  as absent, and refuses a date bound that renders to nothing, since dropping it would widen the cancel.
"""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlencode

MIN_COUNT = 1
MAX_COUNT = 500

#: Python name of each list filter and the query parameter QStash reads it from, in query order.
LIST_FILTER_PARAMS: dict[str, str] = {
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
DATE_FILTER_PARAMS: dict[str, str] = {"from_date": "fromDate", "to_date": "toDate"}
FILTER_NAMES: tuple[str, ...] = (*LIST_FILTER_PARAMS, *DATE_FILTER_PARAMS)

# Epoch milliseconds below this (about March 1973) are almost surely Unix *seconds*; above the upper
# bound (year 5138) they are microseconds or nanoseconds. Both are refused as ambiguous; 0 is allowed
# as an explicit "since the beginning".
_MIN_PLAUSIBLE_MS = 100_000_000_000
_MAX_PLAUSIBLE_MS = 100_000_000_000_000
EMPTY_RENDERINGS = frozenset({"", "none", "null"})
NOW = "now"
#: Why a date template renders to nothing, and what to do about it.
MANUAL_RUN_HINT = (
    "A manual or API-triggered run has no data interval in Airflow 3, so {{ data_interval_start }} is "
    "None or undefined there: trigger with a logical date, pass the window in params, or write the "
    "fallback into the template (e.g. {{ params.from_date or 0 }} / {{ params.to_date or 'now' }})."
)


class BulkCancelFilterError(ValueError):
    """Bulk-cancel input that was refused before any request was sent."""


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _utc_ms(value: dt.datetime) -> int:
    """Exact Unix milliseconds of a datetime; a naive one is read as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    delta = value - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def _check_epoch_ms(ms: int, name: str) -> int:
    if ms < 0:
        raise BulkCancelFilterError(f"{name}={ms} is negative; give Unix milliseconds (>= 0) or a datetime.")
    if 0 < ms < _MIN_PLAUSIBLE_MS:
        raise BulkCancelFilterError(
            f"{name}={ms} is ambiguous: it looks like Unix seconds, but QStash takes Unix milliseconds. "
            f"Pass {ms * 1000} (milliseconds), a datetime, or an ISO-8601 string."
        )
    if ms > _MAX_PLAUSIBLE_MS:
        raise BulkCancelFilterError(
            f"{name}={ms} is too large for Unix milliseconds (microseconds or nanoseconds?); "
            "pass milliseconds, a datetime, or an ISO-8601 string."
        )
    return ms


def to_unix_ms(value: Any, name: str, *, now_ms: int | None = None) -> int | None:
    """
    Read one date bound as integer Unix milliseconds.

    Accepts ``None`` (no bound), an aware or naive ``datetime`` (naive means UTC), a pendulum
    ``DateTime``, a ``date`` (midnight UTC), integer epoch milliseconds (as int or digit string) and an
    ISO-8601 string such as a rendered ``{{ data_interval_start }}``. The string ``"now"`` means
    ``now_ms`` when the caller pins one.

    :param value: the bound as given or rendered.
    :param name: the parameter's name, for the error message.
    :param now_ms: what ``"now"`` means, in Unix milliseconds; ``None`` refuses ``"now"``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise BulkCancelFilterError(f"{name} must be a date, not a boolean ({value!r}).")
    if isinstance(value, dt.datetime):
        return _check_epoch_ms(_utc_ms(value), name)
    if isinstance(value, dt.date):
        return _check_epoch_ms(_utc_ms(dt.datetime(value.year, value.month, value.day)), name)
    if isinstance(value, int):
        return _check_epoch_ms(value, name)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in EMPTY_RENDERINGS:
            raise BulkCancelFilterError(f"{name} is empty ({value!r}); give a date or leave {name} unset.")
        if text.lower() == NOW:
            if now_ms is None:
                raise BulkCancelFilterError(f"{name}='now' is only accepted by the operator, which pins it.")
            return now_ms
        if text.isdecimal():
            return _check_epoch_ms(int(text), name)
        return _check_epoch_ms(_utc_ms(_parse_iso8601(text, name)), name)
    raise BulkCancelFilterError(
        f"{name} must be a datetime, an ISO-8601 string or Unix milliseconds, not {type(value).__name__}."
    )


def _parse_iso8601(text: str, name: str) -> dt.datetime:
    import pendulum  # local: pendulum's parser is only needed when a string date is given

    try:
        parsed = pendulum.parse(text, tz="UTC", exact=True)
    except Exception as err:  # pendulum raises several error types for bad input
        raise BulkCancelFilterError(
            f"{name}={text!r} is not a date QStash can use: give ISO-8601 such as "
            "'2024-05-01T00:00:00+00:00', a datetime, or Unix milliseconds."
        ) from err
    if not isinstance(parsed, dt.datetime):
        if isinstance(parsed, dt.date):
            return dt.datetime(parsed.year, parsed.month, parsed.day, tzinfo=dt.timezone.utc)
        raise BulkCancelFilterError(
            f"{name}={text!r} is a {type(parsed).__name__}, not a date and time; give ISO-8601 "
            "such as '2024-05-01T00:00:00+00:00'."
        )
    return parsed


def parse_count(value: Any, name: str = "count") -> int:
    """Read a per-request count (QStash's ``count``): an int, or digit string, from 1 to 500."""
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise BulkCancelFilterError(f"{name} must be an integer from {MIN_COUNT} to {MAX_COUNT}, not {value!r}.")
    if not MIN_COUNT <= value <= MAX_COUNT:
        raise BulkCancelFilterError(
            f"{name}={value} is outside QStash's range: use an integer from {MIN_COUNT} to {MAX_COUNT}."
        )
    return value


def _items(value: Iterable[Any], name: str) -> tuple[str, ...]:
    out: dict[str, None] = {}  # ordered and O(1) membership: id lists run to tens of thousands
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise BulkCancelFilterError(
                f"{name}[{index}] is {type(item).__name__} ({item!r}); every {name} value must be a string."
            )
        item = item.strip()
        if not item:
            raise BulkCancelFilterError(f"{name}[{index}] is empty; remove it or give a value.")
        if "," in item:
            raise BulkCancelFilterError(
                f"{name}[{index}]={item!r} contains a comma: QStash splits filter values on commas, so it "
                "would match each part (a wider cancel). Pass the parts as separate values if that is meant."
            )
        out.setdefault(item, None)
    return tuple(out)


def to_string_list(value: Any, name: str) -> tuple[str, ...]:
    """Read a list filter given in Python: ``None``, a string (one value) or a list/tuple/set of strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        return _items([value], name) if value.strip() else ()
    if isinstance(value, list | tuple | set | frozenset):
        return _items(sorted(value) if isinstance(value, set | frozenset) else value, name)
    raise BulkCancelFilterError(f"{name} must be a string or a list of strings, not {type(value).__name__}.")


def rendered_string_list(value: Any, name: str) -> tuple[str, ...]:
    """
    Read a list filter rendered from a template.

    Besides the forms of :func:`to_string_list` this accepts a comma-separated string (``"a, b"``,
    the same separator QStash itself accepts) and the text Jinja makes of a list (``"['a', 'b']"``).
    ``None``, ``"None"``, ``""``, ``"[]"`` all mean "no values" (the filter is absent).
    """
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in EMPTY_RENDERINGS:
            return ()
        if text.startswith(("[", "(")) or text.endswith(("]", ")")):
            try:
                literal = ast.literal_eval(text)
            except (ValueError, SyntaxError) as err:
                raise BulkCancelFilterError(
                    f"{name}={value!r} looks like a list but is not one Python can read; "
                    "give a list of strings or a comma-separated string."
                ) from err
            return to_string_list(list(literal) if isinstance(literal, tuple) else literal, name)
        return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    return to_string_list(value, name)


@dataclass(frozen=True)
class BulkCancelFilter:
    """
    The messages one bulk cancel selects, normalised: list filters as tuples, dates as Unix milliseconds.

    Values within one list filter are ORed, different filters are ANDed (QStash's rule). ``message_ids``
    cancels exactly those ids; QStash ignores every other filter when ids are given, so mixing them is
    refused. A filter that selects nothing at all would cancel *every* message in the account: it is
    refused unless ``cancel_all`` is true.
    """

    message_ids: tuple[str, ...] = ()
    url_groups: tuple[str, ...] = ()
    queue_names: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    flow_control_keys: tuple[str, ...] = ()
    schedule_ids: tuple[str, ...] = ()
    caller_ips: tuple[str, ...] = ()
    from_date: int | None = None
    to_date: int | None = None
    cancel_all: bool = False

    def __post_init__(self) -> None:
        if self.from_date == 0:
            # "Since 1970" selects nothing narrower than no bound, so it must not count as a filter.
            object.__setattr__(self, "from_date", None)
        if not isinstance(self.cancel_all, bool):
            raise BulkCancelFilterError(f"cancel_all must be True or False, not {self.cancel_all!r}.")
        for name in LIST_FILTER_PARAMS:
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
                raise BulkCancelFilterError(f"{name} must be a tuple of non-empty strings, not {value!r}.")
        for name in DATE_FILTER_PARAMS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise BulkCancelFilterError(f"{name} must be Unix milliseconds (int) or None, not {value!r}.")
        if self.from_date is not None and self.to_date is not None and self.from_date > self.to_date:
            raise BulkCancelFilterError(
                f"from_date ({_iso(self.from_date)}) is after to_date ({_iso(self.to_date)}); "
                "swap them or fix the window."
            )
        if self.message_ids:
            others = [name for name in self.active_filters() if name != "message_ids"]
            if others:
                raise BulkCancelFilterError(
                    f"message_ids cannot be combined with {', '.join(others)}: QStash would ignore those "
                    "filters and cancel the ids regardless. Give either message_ids or filters."
                )
        if not self.active_filters() and not self.cancel_all:
            raise BulkCancelFilterError(
                "No filter given: QStash would cancel EVERY message in the account. Give at least one "
                f"filter ({', '.join(FILTER_NAMES)}), or set cancel_all=True if that is really meant."
            )

    @classmethod
    def build(cls, *, cancel_all: bool = False, now_ms: int | None = None, **values: Any) -> BulkCancelFilter:
        """
        Normalise filter values given in Python (the hook's keywords) and validate them.

        :param cancel_all: allow a filter that selects everything.
        :param now_ms: what the date string ``"now"`` means, in Unix milliseconds.
        :param values: any of :data:`FILTER_NAMES`.
        """
        unknown = sorted(set(values) - set(FILTER_NAMES))
        if unknown:
            raise BulkCancelFilterError(f"Unknown filter(s) {unknown}; known filters: {', '.join(FILTER_NAMES)}.")
        normalised: dict[str, Any] = {name: to_string_list(values.get(name), name) for name in LIST_FILTER_PARAMS}
        for name in DATE_FILTER_PARAMS:
            normalised[name] = to_unix_ms(values.get(name), name, now_ms=now_ms)
        return cls(cancel_all=cancel_all, **normalised)  # type: ignore[arg-type]

    def active_filters(self) -> list[str]:
        """Names of the filters that select something, in query order."""
        return [name for name in FILTER_NAMES if getattr(self, name) not in ((), None)]

    def to_query_params(self) -> list[tuple[str, str]]:
        """The filter as QStash query parameters: list filters repeated, dates as Unix milliseconds."""
        params = [(param, value) for name, param in LIST_FILTER_PARAMS.items() for value in getattr(self, name)]
        params += [
            (param, str(getattr(self, name)))
            for name, param in DATE_FILTER_PARAMS.items()
            if getattr(self, name) is not None
        ]
        return params

    def split_message_ids(self, max_query_length: int) -> list[BulkCancelFilter]:
        """
        Split a ``message_ids`` filter so that no encoded query exceeds ``max_query_length`` characters.

        Only ids can be split: each part cancels a disjoint set, so the cancelled counts add up. Other
        filters are ANDed and cannot be split; one that does not fit is refused.
        """
        if len(urlencode(self.to_query_params())) <= max_query_length:
            return [self]
        if not self.message_ids:
            raise BulkCancelFilterError(
                f"The filters encode to {len(urlencode(self.to_query_params()))} characters, more than the "
                f"{max_query_length} a request URL may carry; use fewer or shorter values."
            )
        parts: list[BulkCancelFilter] = []
        chunk: list[str] = []
        length = 0
        for message_id in self.message_ids:
            item = len(urlencode([("messageIds", message_id)])) + 1
            if item > max_query_length:
                raise BulkCancelFilterError(f"message id {message_id[:40]!r}... is too long to send.")
            if chunk and length + item > max_query_length:
                parts.append(BulkCancelFilter(message_ids=tuple(chunk)))
                chunk, length = [], 0
            chunk.append(message_id)
            length += item
        parts.append(BulkCancelFilter(message_ids=tuple(chunk)))
        return parts

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (lists and ints) that :meth:`from_dict` reads back."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BulkCancelFilter:
        """Rebuild a filter from :meth:`to_dict` output."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})  # type: ignore[arg-type]

    def describe(self) -> str:
        """A short human-readable summary for logs, e.g. ``labels=['a'] from_date=2024-05-01T00:00:00Z``."""
        parts = []
        for name in self.active_filters():
            value = getattr(self, name)
            if name in DATE_FILTER_PARAMS:
                parts.append(f"{name}={_iso(value)}")
            elif len(value) > 5:
                parts.append(f"{name}=[{len(value)} values]")
            else:
                parts.append(f"{name}={list(value)}")
        return " ".join(parts) or "ALL MESSAGES (cancel_all=True)"


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat(timespec="milliseconds")


def read_rendered_filter(
    rendered: Mapping[str, Any],
    *,
    set_by_author: Iterable[str],
    cancel_all: Any = False,
    now_ms: int,
) -> BulkCancelFilter:
    """
    Build a filter from the operator's rendered template fields.

    The rule held everywhere: a template that renders to nothing never widens a cancel beyond what the
    DAG author meant.

    * A list filter that renders empty (``None``, ``""``, ``"[]"``) is absent; if no filter is left the
      filter is refused unless ``cancel_all`` is true.
    * A date bound the author set (``set_by_author``) that renders to nothing (``None``, ``"None"``,
      ``""``) is refused: dropping it would widen the window to all time. To make a bound optional, say
      so in the template: ``{{ params.from_date or 0 }}`` (since the beginning), ``{{ params.to_date or
      'now' }}`` (up to the task's start).
    * A bound the author did not set is open, except ``to_date``: it is pinned to ``now_ms`` (the task's
      start) so producers publishing during the run cannot keep the loop alive; ``message_ids`` runs take
      no dates.
    * ``from_date == to_date`` (a zero-width window) is refused: it is what Airflow 3's default cron
      timetable renders for ``data_interval_start``/``data_interval_end``.

    :param rendered: rendered values by filter name (see :data:`FILTER_NAMES`).
    :param set_by_author: names whose value was not ``None`` before rendering.
    :param cancel_all: rendered ``cancel_all``: a bool, or the text ``"True"``/``"False"``.
    :param now_ms: the task's start in Unix milliseconds.
    """
    set_by_author = set(set_by_author)
    lists = {name: rendered_string_list(rendered.get(name), name) for name in LIST_FILTER_PARAMS}
    dates: dict[str, int | None] = {}
    for name in DATE_FILTER_PARAMS:
        value = rendered.get(name)
        renders_empty = value is None or (isinstance(value, str) and value.strip().lower() in EMPTY_RENDERINGS)
        if name in set_by_author and renders_empty:
            raise BulkCancelFilterError(
                f"{name} was set but rendered to nothing ({value!r}), which would widen the cancel to all "
                f"time. {MANUAL_RUN_HINT}"
            )
        if name == "to_date" and isinstance(value, str) and value.strip().lower() == NOW:
            value = None  # "up to now" is the pinned default below, and is no filter of its own
        dates[name] = to_unix_ms(value, name, now_ms=now_ms)
    if dates["from_date"] is not None and dates["from_date"] == dates["to_date"]:
        raise BulkCancelFilterError(
            f"from_date and to_date are both {_iso(dates['to_date'] or 0)}: a zero-width window. With a cron "
            "schedule such as '@daily', Airflow 3's default CronTriggerTimetable makes data_interval_start "
            "equal data_interval_end; use schedule=CronDataIntervalTimetable(...) "
            "(airflow.timetables.interval) or give an explicit window."
        )
    # Built before pinning to_date, so that the pinned bound never counts as the one filter that
    # makes an otherwise empty (cancel-everything) filter acceptable.
    bulk_filter = BulkCancelFilter(cancel_all=parse_bool(cancel_all, "cancel_all"), **lists, **dates)  # type: ignore[arg-type]
    if bulk_filter.to_date is None and not bulk_filter.message_ids:
        if bulk_filter.from_date is not None and bulk_filter.from_date > now_ms:
            raise BulkCancelFilterError(
                f"from_date ({_iso(bulk_filter.from_date)}) is after the task's start ({_iso(now_ms)}), which "
                "is where to_date defaults to: no message could match. Fix from_date or give a to_date."
            )
        bulk_filter = replace(bulk_filter, to_date=now_ms)
    return bulk_filter


def parse_bool(value: Any, name: str) -> bool:
    """Read a rendered boolean: ``True``/``False`` or their text forms; anything else is refused."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise BulkCancelFilterError(f"{name} must be True or False, not {value!r}.")
