"""Parsing of the ``DELETE /v2/messages`` query string into a :class:`BulkCancelQuery`.

This module is pure (standard library only) so that it can be unit tested
without a server. It mirrors the rules of the QStash Bulk Cancel Messages API:

* multi-value filters accept both repeated parameters (``label=a&label=b``) and
  comma-separated values (``label=a,b``); values are OR-ed inside one filter and
  the filters are AND-ed together;
* ``messageIds``, when given, makes every other filter ignored;
* ``callerIP`` (deprecated) is merged into ``callerIp``;
* ``fromDate``/``toDate`` are inclusive Unix milliseconds on ``createdAt``;
* ``count`` is an integer between 1 and 500;
* integers are ASCII digits with an optional leading ``-`` (no ``_``, ``+``, ``²`` or other
  forms ``int()`` would take), and dates must fit SQLite's 64-bit integers: anything else is a
  400, never a 500.

Empty values (``label=`` or ``label=a,,b``) are dropped; a filter left with no
value counts as absent, exactly like a filter that was not sent at all. This is
deliberately the pessimistic reading: a client that sends ``?label=`` by mistake
cancels *everything* here, so the provider's own safety checks get exercised.
Unknown parameters (including ``qstash_token``) are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

#: Multi-value filters of the API, in the spelling of the query string.
MULTI_VALUE_FILTERS: tuple[str, ...] = (
    "topicName",
    "queueName",
    "url",
    "host",
    "path",
    "label",
    "flowControlKey",
    "scheduleId",
    "callerIp",
)

#: Deprecated spellings merged into their replacement.
DEPRECATED_ALIASES: Mapping[str, str] = MappingProxyType({"callerIP": "callerIp"})

MAX_COUNT = 500

#: Bounds of a 64-bit signed integer, the range SQLite stores (dates outside it answer 400).
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_INTEGER_RE = re.compile(r"-?[0-9]+")


class QueryError(ValueError):
    """A query parameter has a value the API refuses (answered with HTTP 400)."""


def _empty_values() -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({})


@dataclass(frozen=True)
class BulkCancelQuery:
    """A validated bulk-cancel request.

    :param message_ids: explicit message ids; when non-empty every other filter is ignored.
    :param values: multi-value filters keyed by API name (see :data:`MULTI_VALUE_FILTERS`),
        only the filters that carry at least one value are present.
    :param from_date: inclusive lower bound on ``createdAt`` (Unix ms) or ``None``.
    :param to_date: inclusive upper bound on ``createdAt`` (Unix ms) or ``None``.
    :param count: maximum number of messages to cancel or ``None`` for all matching.
    """

    message_ids: tuple[str, ...] = ()
    values: Mapping[str, tuple[str, ...]] = field(default_factory=_empty_values)
    from_date: int | None = None
    to_date: int | None = None
    count: int | None = None

    @property
    def has_filter(self) -> bool:
        """Whether any filter (ids, values or dates) restricts the selection."""
        return bool(self.message_ids or self.values or self.from_date is not None or self.to_date is not None)

    def action_filter(self) -> dict[str, list[str]]:
        """The ``filter`` of the bulk action this request starts: parameter name -> values as strings.

        Keys are the request's filter parameter names (``callerIP`` is reported as ``callerIp``),
        values are the distinct values after splitting on commas, in the order given; dates are
        their decimal text. An empty dict means "every message".
        """
        result = {name: list(values) for name, values in self.values.items()}
        if self.from_date is not None:
            result["fromDate"] = [str(self.from_date)]
        if self.to_date is not None:
            result["toDate"] = [str(self.to_date)]
        return result


def split_values(raw_values: Iterable[str]) -> tuple[str, ...]:
    """Split comma-separated values, strip blanks and drop empties, keeping order and uniqueness.

    :param raw_values: the raw values of one parameter (one per occurrence).
    :return: the distinct non-empty values in first-seen order.
    """
    seen: dict[str, None] = {}
    for raw in raw_values:
        for part in raw.split(","):
            value = part.strip()
            if value:
                seen.setdefault(value, None)
    return tuple(seen)


def parse_integer(name: str, text: str, *, minimum: int = INT64_MIN, maximum: int = INT64_MAX) -> int:
    """Read one decimal integer the way the API does: ASCII digits, optional leading ``-``.

    Surrounding whitespace is ignored. ``int()`` alone would also take ``5_0``, ``+5`` and
    non-ASCII digits, which the API does not.

    :param name: parameter name, for the error message.
    :param text: the raw value.
    :param minimum: smallest accepted value.
    :param maximum: largest accepted value.
    :raises QueryError: if ``text`` is not such an integer or lies outside the bounds.
    """
    stripped = text.strip()
    if not _INTEGER_RE.fullmatch(stripped):
        raise QueryError(f"{name} must be an integer (decimal digits only), got {text!r}")
    value = int(stripped)
    if not minimum <= value <= maximum:
        raise QueryError(f"{name} must be between {minimum} and {maximum}, got {stripped}")
    return value


def _parse_int(name: str, raws: list[str], *, minimum: int = INT64_MIN, maximum: int = INT64_MAX) -> int | None:
    if not raws:
        return None
    if len(raws) > 1:
        raise QueryError(f"{name} must be given at most once")
    return parse_integer(name, raws[0], minimum=minimum, maximum=maximum)


def parse_bulk_cancel_query(items: Iterable[tuple[str, str]], *, honour_count: bool = True) -> BulkCancelQuery:
    """Build a :class:`BulkCancelQuery` from decoded query string pairs.

    :param items: ``(name, value)`` pairs in request order, blank values kept.
    :param honour_count: read and validate ``count`` (a legacy server); ``False`` ignores it
        entirely, whatever its value, as today's hosted QStash does.
    :return: the validated query.
    :raises QueryError: for a non-integer or out-of-range ``count``, or a non-integer date.
    """
    raw: dict[str, list[str]] = {}
    for name, value in items:
        raw.setdefault(DEPRECATED_ALIASES.get(name, name), []).append(value)

    count = _parse_int("count", raw.get("count", []), minimum=1, maximum=MAX_COUNT) if honour_count else None
    from_date = _parse_int("fromDate", raw.get("fromDate", []))
    to_date = _parse_int("toDate", raw.get("toDate", []))

    message_ids = split_values(raw.get("messageIds", []))
    if message_ids:
        return BulkCancelQuery(message_ids=message_ids, count=count)

    values: dict[str, tuple[str, ...]] = {}
    for name in MULTI_VALUE_FILTERS:
        parsed = split_values(raw.get(name, []))
        if parsed:
            values[name] = parsed
    return BulkCancelQuery(values=MappingProxyType(values), from_date=from_date, to_date=to_date, count=count)


def parse_flag(name: str, items: Iterable[tuple[str, str]]) -> bool:
    """Read an optional boolean query parameter (``true``/``false``, any case; absent is ``False``).

    :raises QueryError: for another value or a repeated parameter.
    """
    raws = [value for key, value in items if key == name]
    if not raws:
        return False
    if len(raws) > 1:
        raise QueryError(f"{name} must be given at most once")
    text = raws[0].strip().lower()
    if text not in ("true", "false"):
        raise QueryError(f"{name} must be true or false, got {raws[0]!r}")
    return text == "true"
