"""What a filtered bulk request selects: the filter tables and their value objects, with every safety refusal
of a filter as a whole.

Nothing in this module touches the network. Every refusal is a :class:`QStashInputError` (a
``ValueError``) raised before the first request, with a message that says what to change.

The filters of an endpoint are declared once, as a :class:`FilterTable` of :class:`FilterSpec` rows
(:data:`BULK_CANCEL_FILTERS`, :data:`DLQ_FILTERS`). Everything else is derived from the table: the names
(``FilterTable.names``), the query parameters, the value object's validation, query, summary and JSON form
(:class:`FilterValue`), the operator's template fields. A table also declares what its callers call the
flag that allows a request with no filter (``all_flag``: ``cancel_all``; each DLQ action's table in
:data:`DLQ_ACTION_FILTERS`: ``delete_all``, ``retry_all``), which the refusals say; inside, every value
object calls it ``select_all``. What cannot be derived (the explicit keywords of
the hook and the operator, the value object's typed fields) is checked against the table: the value
object when its class is created, the keywords by ``tests/project/test_signatures.py``.

Reading a single value (a date, a list, a rendering) is :mod:`airflow_qstash.inputs`'s job. Two readers end
in one value object, through :meth:`FilterValue.checked`:

* :meth:`FilterValue.build` reads values given in Python (the hook's keywords): ``None`` is "no such
  filter", a single value is a one-element list, dates are datetimes, ISO-8601 strings or epoch
  milliseconds. A value that is given but empty (``""``, ``[]``) is refused, never dropped.
* :func:`airflow_qstash.inputs.read_rendered_filter` reads the operator's values after Airflow rendered
  them (templated or literal, rendered empty, optional, ``now``, the pin to the task's start).

Both take the caller's table (default: the value object's own for :meth:`FilterValue.build`), so a
refusal names the flag as the caller does (an action's: :data:`DLQ_ACTION_FILTERS`). A table also declares
the filters its endpoints reject although another endpoint takes them (the DLQ's ``hosts``/``paths``), which
every road refuses with the reason (:meth:`FilterTable.refuse_rejected`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import InitVar, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.inputs import (
    FROM_DATE,
    TO_DATE,
    check_epoch_ms,
    read_values,
    to_iso,
    to_unix_ms,
)
from airflow_qstash.inputs import (
    now_ms as read_clock,
)

#: The value objects' name of the flag that allows a request with no filter; a table declares what its
#: callers call it (:attr:`FilterTable.all_flag`).
SELECT_ALL = "select_all"

FilterKind = Literal["list", "date"]


@dataclass(frozen=True)
class FilterSpec:
    """
    One filter of an endpoint.

    :param name: the Python name: keyword of the hook and the operator, field of the value object,
        template field.
    :param param: the query parameter the API reads it from.
    :param kind: ``"list"`` (values ORed, sent as a repeated parameter) or ``"date"`` (one bound, sent as
        Unix milliseconds; the dates of a table are always ``from_date`` and ``to_date``).
    :param item: the type of a list filter's values, ``str`` or ``int``.
    :param ids: the filter selects exact items by id; the API then ignores every other filter, so
        combining them is refused, and such a run takes no dates.
    :param max_values: the most values the API takes (``None``: any number).
    :param no_dot_segments: refuse values that are or contain a ``.``/``..`` path segment (ids that also
        travel in paths, such as ``DELETE /v2/messages/{messageId}``).
    """

    name: str
    param: str
    kind: FilterKind = "list"
    item: type[str] | type[int] = str
    ids: bool = False
    max_values: int | None = None
    no_dot_segments: bool = False


class FilterTable:
    """
    The filters of one endpoint in query order, and what the caller calls the flag that allows selecting
    everything.

    Every value object names that flag ``select_all``; the table declares the name its callers give it
    (``cancel_all``, ``delete_all``, ``retry_all``), which the readers take and the refusals say.

    :param specs: one :class:`FilterSpec` per filter; the date bounds come last.
    :param all_flag: the caller's name of the flag that allows a request with no filter (``cancel_all``).
    :param everything: what a request with no filter would do, for the refusal message.
    :param kept_ms: how far back (ms before now) the oldest item QStash may still hold was created; a
        ``from_date`` older than that selects everything there is, so it is no filter. ``None``: no limit.
    :param kept: what ``kept_ms`` is, for the refusal message.
    :param selects_all: what :meth:`FilterValue.describe` says of a filter that selects everything, before
        the all-flag (``ALL MESSAGES``: ``ALL MESSAGES (cancel_all=True)``).
    :param title: the endpoints' name in a refusal (``DLQ``).
    :param rejected: filters the endpoints reject (400) although another endpoint takes them, by name, with
        the query parameter the server rejects (the DLQ's ``hosts``: ``host``). They are refused where every
        road passes (:meth:`FilterValue.build`, the operators' ``__init__``), by name or by parameter.
    :param instead: what to filter by instead of a rejected filter, for the refusal message.
    """

    def __init__(
        self,
        *specs: FilterSpec,
        all_flag: str,
        everything: str,
        selects_all: str,
        kept_ms: int | None = None,
        kept: str = "",
        title: str = "",
        rejected: Mapping[str, str] | None = None,
        instead: str = "",
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names) or len({spec.param for spec in specs}) != len(specs):
            raise ValueError(f"filter names and query parameters must be unique: {names}")
        if [spec.name for spec in specs if spec.kind == "date"] != [FROM_DATE, TO_DATE]:
            raise ValueError(f"a filter table has exactly the dates {FROM_DATE} and {TO_DATE}, in that order")
        if sum(spec.ids for spec in specs) > 1 or any(spec.ids and spec.kind != "list" for spec in specs):
            raise ValueError("a filter table has at most one ids filter, and it is a list")
        self.specs: tuple[FilterSpec, ...] = specs
        self.all_flag = all_flag
        self.everything = everything
        self.kept_ms = kept_ms
        self.kept = kept
        self.selects_all = selects_all
        self.title = title
        self.rejected: dict[str, str] = dict(rejected or {})
        self.instead = instead
        self.names: tuple[str, ...] = tuple(names)
        self.list_params: dict[str, str] = {spec.name: spec.param for spec in specs if spec.kind == "list"}
        self.date_params: dict[str, str] = {spec.name: spec.param for spec in specs if spec.kind == "date"}
        self.ids_name: str | None = next((spec.name for spec in specs if spec.ids), None)
        self._by_name = {spec.name: spec for spec in specs}

    def __getitem__(self, name: str) -> FilterSpec:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def with_all_flag(self, all_flag: str) -> FilterTable:
        """The same filters under another caller's name of the all-flag (the DLQ's ``delete_all``)."""
        return FilterTable(
            *self.specs,
            all_flag=all_flag,
            everything=self.everything,
            selects_all=self.selects_all,
            kept_ms=self.kept_ms,
            kept=self.kept,
            title=self.title,
            rejected=self.rejected,
            instead=self.instead,
        )

    def refuse_rejected(self, given: Iterable[str]) -> None:
        """Refuse a :attr:`rejected` filter among the names ``given`` (or its parameter's spelling), saying why."""
        for name in given:
            param = self.rejected.get(name) or (name if name in self.rejected.values() else None)
            if param is not None:
                raise QStashInputError(
                    f"{name} is not a {self.title} filter: QStash's {self.title} endpoints reject the {param!r} "
                    f"parameter (400), so this run could not do what it says. Filter by {self.instead} instead."
                )

    @property
    def renderers(self) -> dict[str, str]:
        """An operator's ``template_fields_renderers`` for these filters: lists show as JSON."""
        return {spec.name: "json" for spec in self.specs if spec.kind == "list"}


_DAY_MS = 86_400_000
#: The longest a QStash message may wait for delivery, so the oldest ``createdAt`` a pending message can
#: have: "Max delay: 1 year" (pay as you go; free: 7 days). Source: https://upstash.com/pricing/qstash and
#: https://upstash.com/docs/qstash/features/delay, read 2026-12-05. Fixed plans list "Unlimited"; for them
#: a from_date more than a year back may still narrow, and is treated as no filter all the same (a
#: refusal asking for another filter or cancel_all, never a wider request).
MAX_MESSAGE_DELAY_MS = 365 * _DAY_MS
#: The longest QStash keeps a dead-letter entry: "DLQ Retention: 3 months" (Fixed 10M, the longest plan
#: listed; free 3 days, pay as you go 7 days, Fixed 1M 30 days); 3 months are at most 92 days. Source:
#: https://upstash.com/pricing/qstash and https://upstash.com/docs/qstash/features/dlq ("Max DLQ
#: Retention"), read 2026-12-05.
MAX_DLQ_RETENTION_MS = 92 * _DAY_MS

#: ``DELETE /v2/messages`` (bulk cancel), in the spec's query order.
BULK_CANCEL_FILTERS = FilterTable(
    FilterSpec("message_ids", "messageIds", ids=True, no_dot_segments=True),
    FilterSpec("url_groups", "topicName"),
    FilterSpec("queue_names", "queueName"),
    FilterSpec("urls", "url"),
    FilterSpec("hosts", "host"),
    FilterSpec("paths", "path"),
    FilterSpec("labels", "label"),
    FilterSpec("flow_control_keys", "flowControlKey"),
    FilterSpec("schedule_ids", "scheduleId"),
    FilterSpec("caller_ips", "callerIp"),
    FilterSpec(FROM_DATE, "fromDate", "date"),
    FilterSpec(TO_DATE, "toDate", "date"),
    all_flag="cancel_all",
    everything="QStash would cancel EVERY message in the account",
    selects_all="ALL MESSAGES",
    kept_ms=MAX_MESSAGE_DELAY_MS,
    kept="no QStash message waits longer than 365 days, its longest delay",
)

#: ``DELETE /v2/dlq`` and ``POST /v2/dlq/retry``: no ``host``/``path`` (the server rejects them: refused
#: with the reason, :meth:`FilterTable.refuse_rejected`), one
#: ``messageId``, integer ``responseStatus`` values, and ``dlqIds`` as the exact-ids filter. A DLQ filter
#: built on its own (:meth:`DLQFilter.build`) calls its all-flag ``select_all``; each action's table
#: (:data:`DLQ_ACTION_FILTERS`) names it as the operator and the hook do.
DLQ_FILTERS = FilterTable(
    FilterSpec("dlq_ids", "dlqIds", ids=True),
    FilterSpec("message_ids", "messageId", max_values=1),
    FilterSpec("urls", "url"),
    FilterSpec("url_groups", "topicName"),
    FilterSpec("schedule_ids", "scheduleId"),
    FilterSpec("queue_names", "queueName"),
    FilterSpec("labels", "label"),
    FilterSpec("flow_control_keys", "flowControlKey"),
    FilterSpec("caller_ips", "callerIp"),
    FilterSpec("response_statuses", "responseStatus", item=int),
    FilterSpec(FROM_DATE, "fromDate", "date"),
    FilterSpec(TO_DATE, "toDate", "date"),
    all_flag="select_all",
    everything="QStash would act on EVERY message in the dead-letter queue",
    selects_all="ALL DLQ ENTRIES",
    kept_ms=MAX_DLQ_RETENTION_MS,
    kept="QStash keeps a dead-letter entry at most 92 days, its longest DLQ retention",
    title="DLQ",
    rejected={"hosts": "host", "paths": "path"},
    instead="urls (the whole destination URL)",
)

DELETE = "delete"
RETRY = "retry"
#: The DLQ filters of each action, its all-flag named as the operator's argument and the hook's keyword.
DLQ_ACTION_FILTERS = {DELETE: DLQ_FILTERS.with_all_flag("delete_all"), RETRY: DLQ_FILTERS.with_all_flag("retry_all")}

# --------------------------------------------------------------------------- the value objects

FilterValueT = TypeVar("FilterValueT", bound="FilterValue")


@dataclass(frozen=True)
class FilterValue:
    """
    The normalised filter of one request, driven by the subclass's :class:`FilterTable` (``TABLE``).

    A subclass is a frozen dataclass that declares one field per filter of its table, in table order,
    then ``select_all``: list filters as tuples, dates as Unix milliseconds or ``None``, the flag a bool.
    The declaration is checked against the table when the class is created.

    Values within one list filter are ORed, different filters are ANDed. The ids filter selects exactly
    those items and the API ignores every other filter then, so mixing them is refused. A filter that
    selects nothing at all (no filter, ``from_date=0``, a ``to_date`` in the future) would act on *every*
    item: it is refused unless ``select_all`` is true. The readers (:meth:`build`,
    :func:`~airflow_qstash.inputs.read_rendered_filter`) refuse it first, naming the flag as their caller's table does.
    """

    TABLE: ClassVar[FilterTable]

    now_ms: InitVar[int | None] = field(default=None, kw_only=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        notes = inspect.get_annotations(cls)
        declared = [name for name, note in notes.items() if "ClassVar" not in str(note)]
        expected = [*cls.TABLE.names, SELECT_ALL]
        if declared != expected:
            raise TypeError(f"{cls.__name__} must declare the fields {expected} (its TABLE), in order, not {declared}")

    def __post_init__(self, now_ms: int | None) -> None:
        table = self.TABLE
        if getattr(self, FROM_DATE) == 0:
            # "Since 1970" selects nothing narrower than no bound, so it must not count as a filter.
            object.__setattr__(self, FROM_DATE, None)
        if not isinstance(self.select_all, bool):
            raise QStashInputError(f"{SELECT_ALL} must be True or False, not {self.select_all!r}.")
        for spec in table.specs:
            value = getattr(self, spec.name)
            if spec.kind == "list":
                if not isinstance(value, tuple) or not all(_normalised(spec, item) for item in value):
                    kind = "non-empty strings" if spec.item is str else "whole numbers"
                    raise QStashInputError(f"{spec.name} must be a tuple of {kind}, not {value!r}.")
            elif value is not None:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise QStashInputError(f"{spec.name} must be Unix milliseconds (int) or None, not {value!r}.")
                check_epoch_ms(value, spec.name, zero_allowed=False)
        from_date, to_date = getattr(self, FROM_DATE), getattr(self, TO_DATE)
        if from_date is not None and to_date is not None and from_date > to_date:
            raise QStashInputError(
                f"from_date ({to_iso(from_date)}) is after to_date ({to_iso(to_date)}); swap them or fix the window."
            )
        if table.ids_name is not None and getattr(self, table.ids_name):
            others = [name for name in self.active_filters() if name != table.ids_name]
            if others:
                raise QStashInputError(
                    f"{table.ids_name} cannot be combined with {', '.join(others)}: QStash would ignore those "
                    f"filters and act on the ids regardless. Give either {table.ids_name} or filters."
                )
        if not self.select_all:
            self.refuse_selecting_nothing(table, now_ms)

    def refuse_selecting_nothing(self, table: FilterTable, now_ms: int | None) -> None:
        """
        Refuse the filter when nothing in it narrows the selection (it would act on everything), naming the
        all-flag as ``table`` does: the value's own :attr:`TABLE`, or a caller's (an action's) table.
        """
        selecting = self.selecting_filters(now_ms)
        if not selecting:
            ignored = [
                f"{name} {to_iso(getattr(self, name))} {self._why_no_filter(name)}"
                for name in self.active_filters()
                if name not in selecting
            ]
            why = f" ({'; '.join(ignored)})" if ignored else ""
            recent = ""
            if FROM_DATE in self.active_filters() and FROM_DATE not in selecting and table.kept_ms is not None:
                recent = f", a from_date within the last {table.kept_ms // _DAY_MS} days"
            raise QStashInputError(
                f"No filter given{why}: {table.everything}. Give at least one filter "
                f"({', '.join(table.names)}){recent}, or set {table.all_flag}=True if that is really meant.",
                no_filter=True,
            )

    def _why_no_filter(self, name: str) -> str:
        if name == TO_DATE:
            return "is in the future: it selects every message, so it is no filter"
        return f"is older than anything QStash keeps ({self.TABLE.kept}), so it selects everything and is no filter"

    if TYPE_CHECKING:
        select_all: bool = False  # each subclass declares it, as its last field

    @classmethod
    def build(
        cls: type[FilterValueT], *, now_ms: int | None = None, table: FilterTable | None = None, **values: Any
    ) -> FilterValueT:
        """
        Normalise filter values given in Python (the hook's keywords) and validate them.

        :param now_ms: the instant the window is judged at (Unix ms): a ``from_date`` older than what QStash
            keeps, or a ``to_date`` at or after it, is no filter. ``None`` reads the clock
            (:func:`~airflow_qstash.inputs.now_ms`). The date string ``"now"`` is refused here: it is the
            operator's, which pins it to the task's start.
        :param table: the caller's table of these filters, whose all-flag name it reads and the refusals
            say (an action's: :data:`DLQ_ACTION_FILTERS`); default the value's own :attr:`TABLE`.
        :param values: any of the table's filters, and its all-flag by the table's name (``cancel_all``).
        """
        table = _same_filters(cls, table)
        select_all = values.pop(table.all_flag, False)
        if not isinstance(select_all, bool):
            raise QStashInputError(f"{table.all_flag} must be True or False, not {select_all!r}.")
        table.refuse_rejected(values)
        unknown = sorted(set(values) - set(table.names))
        if unknown:
            raise QStashInputError(f"Unknown filter(s) {unknown}; known filters: {', '.join(table.names)}.")
        normalised: dict[str, Any] = {}
        for spec in table.specs:
            if spec.kind == "list":
                normalised[spec.name] = read_values(spec, values.get(spec.name))
            else:
                # "now" is the operator's word (it pins it to the task's start): refused here
                normalised[spec.name] = to_unix_ms(
                    values.get(spec.name), spec.name, zero_allowed=spec.name == FROM_DATE
                )
        return cls.checked(normalised, select_all=select_all, table=table, now_ms=now_ms)

    @classmethod
    def checked(
        cls: type[FilterValueT],
        values: Mapping[str, Any],
        *,
        select_all: bool,
        table: FilterTable | None = None,
        now_ms: int | None = None,
        pin_to_date: int | None = None,
    ) -> FilterValueT:
        """
        The value of normalised ``values`` (a tuple per list filter, dates in Unix ms or ``None``, every
        filter of the table), the readers' last step: built with every check, the one for a filter that
        selects nothing made with the caller's ``table`` (its all-flag named in the refusal) unless
        ``select_all``.

        :param select_all: the all-flag as read (a bool).
        :param table: the caller's table of these filters (an action's); default the value's own
            :attr:`TABLE`.
        :param now_ms: the instant the window is judged at (Unix ms); ``None`` reads the clock.
        :param pin_to_date: a ``to_date`` set after the judgement (the operator's pin to the task's start):
            it never counts as the filter that makes a selection acceptable.
        """
        table = _same_filters(cls, table)
        value = cls(**values, select_all=True, now_ms=now_ms)
        changes: dict[str, Any] = {}
        if not select_all:
            value.refuse_selecting_nothing(table, now_ms)
            changes[SELECT_ALL] = False
        if pin_to_date is not None:
            changes[TO_DATE] = pin_to_date
        return replace(value, **changes, now_ms=now_ms) if changes else value

    def active_filters(self) -> list[str]:
        """Names of the filters that carry a value, in query order."""
        return [name for name in self.TABLE.names if getattr(self, name) not in ((), None)]

    def selecting_filters(self, now_ms: int | None = None) -> list[str]:
        """
        Names of the filters that narrow the selection. Two bounds select every item there is, so they are
        not filters: a ``to_date`` at or after ``now_ms``, and a ``from_date`` older than anything QStash
        keeps (``now_ms`` minus the table's ``kept_ms``: :data:`MAX_MESSAGE_DELAY_MS`,
        :data:`MAX_DLQ_RETENTION_MS`).

        :param now_ms: the task's start in Unix milliseconds (the operator's); ``None`` reads the clock
            here, the one place a filter does.
        """
        now_ms = read_clock() if now_ms is None else now_ms
        from_date, to_date = getattr(self, FROM_DATE), getattr(self, TO_DATE)
        kept_ms = self.TABLE.kept_ms
        return [
            name
            for name in self.active_filters()
            if not (name == TO_DATE and to_date >= now_ms)
            and not (name == FROM_DATE and kept_ms is not None and from_date < now_ms - kept_ms)
        ]

    def to_query_params(self) -> list[tuple[str, str]]:
        """The filter as query parameters: list filters repeated, dates as Unix milliseconds."""
        params: list[tuple[str, str]] = []
        for spec in self.TABLE.specs:
            value = getattr(self, spec.name)
            if spec.kind == "list":
                params += [(spec.param, str(item)) for item in value]
            elif value is not None:
                params.append((spec.param, str(value)))
        return params

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (lists and ints) that :meth:`from_dict` reads back."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls: type[FilterValueT], data: Mapping[str, Any]) -> FilterValueT:
        """
        Rebuild a filter from :meth:`to_dict` output, trusting it: the trigger's side. The operator validated
        and normalised the filter against the task's start; judging it again here, against the triggerer's
        clock (a restart days later), could refuse what the task already planned. Only what needs no clock
        is checked: an unknown key is a ``TypeError``, and a payload with no filter at all and no all-flag
        is refused (it would act on everything). A bulk-cancel payload written before the flag was
        ``select_all`` everywhere carries it as ``cancel_all`` (a trigger deferred across an upgrade): it
        is read as ``select_all``.
        """
        legacy = cls.TABLE.all_flag
        if legacy != SELECT_ALL and legacy in data and SELECT_ALL not in data:
            data = {**{k: v for k, v in data.items() if k != legacy}, SELECT_ALL: data[legacy]}
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise TypeError(f"{cls.__name__}.from_dict: unknown key(s) {unknown}")
        value = object.__new__(cls)
        for name, spec in known.items():
            item = data.get(name, spec.default)
            object.__setattr__(value, name, tuple(item) if isinstance(item, list) else item)
        if not value.active_filters() and value.select_all is not True:
            # not a judgement against a clock: a payload that selects nothing at all without the all-flag
            # would act on everything, whoever wrote it
            raise QStashInputError(
                f"No filter given in the serialised filter and {SELECT_ALL} is not True: "
                f"{cls.TABLE.everything}. Nothing was sent.",
                no_filter=True,
            )
        return value

    def describe(self, table: FilterTable | None = None) -> str:
        """
        A short human-readable summary for logs and the XCom ``filters``, e.g. ``labels=['a']
        from_date=2024-05-01T00:00:00Z``; a filter that selects everything is the caller's ``table``'s
        words and flag (default the value's own :attr:`TABLE`): ``ALL MESSAGES (cancel_all=True)``,
        ``ALL DLQ ENTRIES (delete_all=True)``.
        """
        table = _same_filters(type(self), table)
        parts = []
        for name in self.active_filters():
            value = getattr(self, name)
            if self.TABLE[name].kind == "date":
                parts.append(f"{name}={to_iso(value)}")
            elif len(value) > 5:
                parts.append(f"{name}=[{len(value)} values]")
            else:
                parts.append(f"{name}={list(value)}")
        return " ".join(parts) or f"{table.selects_all} ({table.all_flag}=True)"


def _same_filters(cls: type[FilterValue], table: FilterTable | None) -> FilterTable:
    """The caller's table for ``cls`` (``None``: its own), refused when it declares other filters."""
    if table is None:
        return cls.TABLE
    if table.specs != cls.TABLE.specs:
        raise TypeError(f"{cls.__name__} takes the filters of {cls.TABLE.names}, not of {table.names}")
    return table


def _normalised(spec: FilterSpec, item: Any) -> bool:
    if spec.item is int:
        return isinstance(item, int) and not isinstance(item, bool)
    return isinstance(item, str) and bool(item)


@dataclass(frozen=True)
class BulkCancelFilter(FilterValue):
    """The messages one bulk cancel (``DELETE /v2/messages``) selects; see :class:`FilterValue`."""

    TABLE = BULK_CANCEL_FILTERS

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
    select_all: bool = False


@dataclass(frozen=True)
class DLQFilter(FilterValue):
    """
    The DLQ entries one delete or retry (``DELETE /v2/dlq``, ``POST /v2/dlq/retry``) selects; the filters
    are :data:`DLQ_FILTERS`, the rules those of :class:`FilterValue`. ``select_all`` is the action's
    ``delete_all`` or ``retry_all`` (its table in :data:`DLQ_ACTION_FILTERS` names it so in the refusals).
    """

    TABLE = DLQ_FILTERS

    dlq_ids: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    url_groups: tuple[str, ...] = ()
    schedule_ids: tuple[str, ...] = ()
    queue_names: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    flow_control_keys: tuple[str, ...] = ()
    caller_ips: tuple[str, ...] = ()
    response_statuses: tuple[int, ...] = ()
    from_date: int | None = None
    to_date: int | None = None
    select_all: bool = False
