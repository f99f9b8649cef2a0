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


# -- DLQ ------------------------------------------------------------------------------------------

#: Multi-value string filters of the DLQ endpoints (spec: ``GET``/``DELETE /v2/dlq``, ``POST /v2/dlq/retry``).
DLQ_MULTI_VALUE_FILTERS: tuple[str, ...] = (
    "messageId",
    "url",
    "topicName",
    "scheduleId",
    "queueName",
    "callerIp",
    "label",
    "flowControlKey",
)

#: Filters of ``DELETE /v2/messages`` that the DLQ endpoints do not have; the server refuses them.
DLQ_REFUSED_FILTERS: tuple[str, ...] = ("host", "path")

#: Largest and default ``count`` of the DLQ endpoints (spec: ``maximum: 100``, ``default: 100``).
DLQ_MAX_COUNT = 100

#: DLQ listing orders (as the SDKs name them); ``latestFirst`` is the SDKs' default.
DLQ_ORDERS: tuple[str, ...] = ("latestFirst", "earliestFirst")

_DLQ_CURSOR_RE = re.compile(r"(-?[0-9]{1,19})\.([0-9]{1,19})")


@dataclass(frozen=True)
class DlqQuery:
    """A validated DLQ request (list, bulk delete or bulk retry).

    :param dlq_ids: explicit DLQ ids; when non-empty every other filter (and ``count``) is ignored.
    :param values: multi-value string filters keyed by API name (see :data:`DLQ_MULTI_VALUE_FILTERS`).
    :param response_statuses: ``responseStatus`` values (OR-ed).
    :param from_date: inclusive lower bound on ``createdAt`` (Unix ms) or ``None``.
    :param to_date: inclusive upper bound on ``createdAt`` (Unix ms) or ``None``.
    :param count: page size (1..100).
    :param cursor: ``(createdAt, position)`` of the last entry of the previous page, or ``None``.
    :param latest_first: newest entries first (the default) or oldest first.
    """

    dlq_ids: tuple[str, ...] = ()
    values: Mapping[str, tuple[str, ...]] = field(default_factory=_empty_values)
    response_statuses: tuple[int, ...] = ()
    from_date: int | None = None
    to_date: int | None = None
    count: int = DLQ_MAX_COUNT
    cursor: tuple[int, int] | None = None
    latest_first: bool = True


def dlq_cursor(created_at: int, position: int) -> str:
    """The opaque cursor text of a DLQ page that ended at this entry."""
    return f"{created_at}.{position}"


def _parse_dlq_cursor(text: str) -> tuple[int, int]:
    """``(createdAt, position)`` of a cursor :func:`dlq_cursor` made; both must fit SQLite's 64-bit integers
    (a 19-digit number may not: it would reach the database and fail there).

    :raises QueryError: for any other text.
    """
    match = _DLQ_CURSOR_RE.fullmatch(text.strip())
    try:
        if match is None:
            raise QueryError("not two integers")
        return (
            parse_integer("cursor", match.group(1)),
            parse_integer("cursor", match.group(2), minimum=0),
        )
    except QueryError:
        raise QueryError(f"cursor is not one this server returned: {text[:100]!r}") from None


def parse_dlq_query(items: Iterable[tuple[str, str]], *, allow_ids: bool) -> DlqQuery:
    """Build a :class:`DlqQuery` from decoded query string pairs.

    Multi-value filters take repeated parameters and comma-separated values; empty values are
    dropped. ``callerIP`` is merged into ``callerIp``. Unknown parameters are ignored.

    :param items: ``(name, value)`` pairs in request order, blank values kept.
    :param allow_ids: read ``dlqIds`` (bulk delete and retry; the listing has no such parameter).
    :raises QueryError: for ``host`` or ``path`` (not DLQ filters), a non-integer or out-of-range
        ``count``, ``responseStatus``, date or cursor, or an unknown ``order``.
    """
    raw: dict[str, list[str]] = {}
    for name, value in items:
        raw.setdefault(DEPRECATED_ALIASES.get(name, name), []).append(value)
    for name in DLQ_REFUSED_FILTERS:
        if name in raw:
            raise QueryError(
                f"{name} is not a filter of the DLQ endpoints (they filter by url, the whole destination URL); "
                f"remove the {name} parameter"
            )
    # The spec gives no minimum; 0 would make a page that never moves on, so 1 is the least here.
    count = _parse_int("count", raw.get("count", []), minimum=1, maximum=DLQ_MAX_COUNT)
    from_date = _parse_int("fromDate", raw.get("fromDate", []))
    to_date = _parse_int("toDate", raw.get("toDate", []))
    cursor: tuple[int, int] | None = None
    raw_cursor = [c for c in raw.get("cursor", []) if c.strip()]
    if len(raw_cursor) > 1:
        raise QueryError("cursor must be given at most once")
    if raw_cursor:
        cursor = _parse_dlq_cursor(raw_cursor[0])
    orders = raw.get("order", [])
    if len(orders) > 1 or (orders and orders[0] not in DLQ_ORDERS):
        raise QueryError(f"order must be one of {list(DLQ_ORDERS)}, got {orders!r}")
    latest_first = not orders or orders[0] == "latestFirst"
    dlq_ids = split_values(raw.get("dlqIds", [])) if allow_ids else ()
    statuses = tuple(
        dict.fromkeys(parse_integer("responseStatus", value) for value in split_values(raw.get("responseStatus", [])))
    )
    values: dict[str, tuple[str, ...]] = {}
    for name in DLQ_MULTI_VALUE_FILTERS:
        parsed = split_values(raw.get(name, []))
        if parsed:
            values[name] = parsed
    return DlqQuery(
        dlq_ids=dlq_ids,
        values=MappingProxyType(values),
        response_statuses=statuses,
        from_date=from_date,
        to_date=to_date,
        count=DLQ_MAX_COUNT if count is None else count,
        cursor=cursor,
        latest_first=latest_first,
    )


# -- the admin listing (GET /_emulator/messages, /_emulator/message-ids, /_emulator/counts) -------------

#: Message states the admin listing knows.
ADMIN_STATES: tuple[str, ...] = ("held", "cancelled", "all")
#: What ``GET /_emulator/counts`` groups by.
COUNT_BY: tuple[str, ...] = ("label", "queue", "state")
#: The parameters of the admin listing's filter (every route of it); a route adds its own (``limit``, ``by``).
ADMIN_FILTER_PARAMS: tuple[str, ...] = ("state", "label", "queue", "from", "to")

_ISO_HINT = "Unix ms (1764907200000) or ISO 8601 with a timezone (2025-12-05T04:00:00Z)"


@dataclass(frozen=True)
class AdminFilter:
    """Which stored messages an admin listing or count selects.

    :param state: ``held``, ``cancelled`` or ``all``.
    :param labels: the message has any of these labels (none: any message).
    :param queues: the message is in any of these queues (none: any message).
    :param from_ms: inclusive lower bound on ``createdAt`` (Unix ms), or ``None``.
    :param to_ms: inclusive upper bound on ``createdAt`` (Unix ms), or ``None``.
    """

    state: str = "held"
    labels: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    from_ms: int | None = None
    to_ms: int | None = None


def parse_instant(name: str, text: str) -> int:
    """Unix ms of ``text``: decimal Unix ms, or an ISO 8601 date-time with a timezone (``Z`` or ``+hh:mm``).

    :raises QueryError: for anything else (a date-time without a timezone included: it would be read in
        the server's zone), or an instant outside 0 .. 2**63 - 1 ms.
    """
    from datetime import datetime

    stripped = text.strip()
    if _INTEGER_RE.fullmatch(stripped):
        return parse_integer(name, stripped, minimum=0)
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise QueryError(f"{name} must be {_ISO_HINT}, got {text[:100]!r}") from None
    if moment.tzinfo is None:
        raise QueryError(f"{name} must name its timezone (add Z for UTC): {_ISO_HINT}, got {text[:100]!r}")
    value = int(moment.timestamp() * 1000)
    if not 0 <= value <= INT64_MAX:
        raise QueryError(f"{name} must lie after 1970-01-01T00:00:00Z, got {text[:100]!r}")
    return value


def parse_admin_filter(
    items: Iterable[tuple[str, str]], *, extra: Iterable[str] = ()
) -> tuple[AdminFilter, dict[str, str]]:
    """The :class:`AdminFilter` of decoded query pairs, and the route's ``extra`` parameters (given once each).

    ``label`` and ``queue`` take repeated parameters and comma-separated values (any of them matches);
    ``from``/``to`` take :func:`parse_instant`'s forms; ``state`` is one of :data:`ADMIN_STATES`
    (default ``held``).

    :raises QueryError: for an unknown or repeated parameter (naming the accepted ones), an unknown state,
        an unreadable instant or ``from`` after ``to``.
    """
    allowed = (*ADMIN_FILTER_PARAMS, *extra)
    raw: dict[str, list[str]] = {}
    for name, value in items:
        if name not in allowed:
            raise QueryError(f"unknown parameter {name!r}: this route takes {', '.join(allowed)}")
        raw.setdefault(name, []).append(value)
    for name, values in raw.items():
        if name not in ("label", "queue") and len(values) > 1:
            raise QueryError(f"{name} must be given at most once")
    state = raw.get("state", ["held"])[0]
    if state not in ADMIN_STATES:
        raise QueryError(f"state must be one of {', '.join(ADMIN_STATES)}, got {state[:100]!r}")
    from_ms = parse_instant("from", raw["from"][0]) if "from" in raw else None
    to_ms = parse_instant("to", raw["to"][0]) if "to" in raw else None
    if from_ms is not None and to_ms is not None and from_ms > to_ms:
        raise QueryError(f"from ({from_ms}) is after to ({to_ms}): the window selects nothing")
    selection = AdminFilter(
        state=state,
        labels=split_values(raw.get("label", [])),
        queues=split_values(raw.get("queue", [])),
        from_ms=from_ms,
        to_ms=to_ms,
    )
    return selection, {name: raw[name][0] for name in extra if name in raw}
