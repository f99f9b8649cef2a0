"""
``QStashDLQEventTrigger``: an event trigger (Airflow 3's ``AssetWatcher``) that fires when new entries
matching the DLQ filters arrive in QStash's dead-letter queue.

This module is imported when a DAG file that declares the watcher is parsed, so it imports no HTTP client
and no hook at import time: :class:`~airflow_qstash.hooks.qstash.QStashAsyncHook` is imported in
:meth:`QStashDLQEventTrigger.run`, in the triggerer.

On Airflow 2.11 the module imports (``BaseEventTrigger`` is ``BaseTrigger`` there, through
``airflow.providers.common.compat.triggers``), but Airflow 2 has no ``AssetWatcher``, so nothing schedules
a DAG on its events; :data:`EVENT_TRIGGERS_SUPPORTED` says whether the running Airflow has them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException
from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS
from airflow.triggers.base import TriggerEvent

from airflow_qstash.exceptions import redact
from airflow_qstash.filters import DLQ_FILTERS, DLQFilter

if TYPE_CHECKING:
    from airflow_qstash.hooks.qstash import QStashAsyncHook

#: Whether the running Airflow schedules DAGs on an event trigger (``AssetWatcher``, Airflow 3.0+).
EVENT_TRIGGERS_SUPPORTED: bool = AIRFLOW_V_3_0_PLUS

#: The most DLQ ids one event carries: a batch of new entries larger than this is split into several
#: events, each carrying all of its ids (an event never carries a sample: the DAG acts on exactly its ids).
MAX_IDS_PER_EVENT = 1_000
#: The most ``GET /v2/dlq`` pages (of :data:`PAGE_SIZE` entries) one poll reads.
MAX_PAGES_PER_POLL = 100
#: Entries a ``GET /v2/dlq`` page asks for: the most QStash returns.
PAGE_SIZE = 100
#: DLQ filters ``GET /v2/dlq`` does not read: watching with them would announce more than they say.
NOT_LISTABLE = ("dlq_ids", "flow_control_keys")
#: Bounds of the poll interval, in seconds.
MIN_POLL_INTERVAL = 1.0
MAX_POLL_INTERVAL = 3_600.0
#: The longest pause after failed polls (backoff, or what a 429 asked for), in seconds.
MAX_BACKOFF = 3_600.0
#: The most DLQ ids the trigger remembers as announced (oldest forgotten first). A full listing (no cursor
#: left within the page bound) also forgets every id no longer in the DLQ, so the memory is at most the
#: larger of this and the listing bound.
MAX_REMEMBERED_IDS = 100_000
#: The longest DLQ id taken from an answer; a longer one is skipped as a bad answer (it would bloat events).
MAX_DLQ_ID_CHARS = 256


class QStashDLQEventTrigger(BaseEventTrigger):
    """
    Watch QStash's dead-letter queue and fire one event per new batch of entries matching the DLQ filters.

    Every ``poll_interval`` seconds it lists the DLQ (``GET /v2/dlq``, 100 entries a page, at most
    ``max_pages`` pages a poll) with the filters. The entries it has not announced yet are a new batch;
    when there are at least ``min_count`` of them it fires events of at most ``max_ids_per_event`` ids each
    (a larger batch is split into several events) with the payload::

        {"dlq_ids": [...],            # every id this event announces, in listing order
         "count": 3,                  # len(dlq_ids)
         "newest_created_at": 1764907200000,  # the newest createdAt (Unix ms) among them, or None
         "part": 1, "parts": 1,       # this event's place among the batch's events
         "listing_complete": True}    # False when the page bound stopped the listing

    Only ids, the count and a timestamp: never the token, a message body, header or URL.

    While it runs it never announces the same ``dlqId`` twice (it remembers announced ids, boundedly: see
    :data:`MAX_REMEMBERED_IDS`). After a triggerer restart the memory is empty and entries still in the DLQ
    are announced again; a DAG that acts on exactly the announced ids (``dlq_ids``) makes that harmless: the
    entries a first run handled have left the DLQ (a retry skips vanished ids; a delete deletes nothing).

    Failed polls (429 after the hook's own retries, which honour QStash's rate-limit headers; 5xx; no
    answer; a bad answer) fire nothing: the trigger waits (doubling from ``poll_interval``, at least what
    a 429 asked for, at most :data:`MAX_BACKOFF`) and polls again.

    :param qstash_conn_id: the ``qstash`` connection.
    :param filters: DLQ filters (the hook's keywords: ``labels``, ``urls``, ``response_statuses``,
        ``from_date``...). ``dlq_ids`` and ``flow_control_keys`` are refused (``GET /v2/dlq`` reads neither).
        None or empty: every DLQ entry (watching only reads; what the DAG does is bounded by the ids).
    :param min_count: fire only when at least this many new matching entries are there (they accumulate).
    :param poll_interval: seconds between polls (1 to 3600).
    :param max_pages: the most pages of 100 entries one poll lists (1 to :data:`MAX_PAGES_PER_POLL`).
    :param max_ids_per_event: the most ids one event carries (1 to :data:`MAX_IDS_PER_EVENT`).
    """

    def __init__(
        self,
        *,
        qstash_conn_id: str = "qstash_default",
        filters: Mapping[str, Any] | None = None,
        min_count: int = 1,
        poll_interval: float = 60.0,
        max_pages: int = 10,
        max_ids_per_event: int = 100,
    ) -> None:
        super().__init__()
        if not isinstance(qstash_conn_id, str) or not qstash_conn_id:
            raise ValueError(f"qstash_conn_id must be a connection id, not {qstash_conn_id!r}.")
        self.qstash_conn_id = qstash_conn_id
        self.dlq_filter = _watch_filter(filters)
        self.max_pages = _whole("max_pages", max_pages, 1, MAX_PAGES_PER_POLL)
        self.max_ids_per_event = _whole("max_ids_per_event", max_ids_per_event, 1, MAX_IDS_PER_EVENT)
        self.min_count = _whole("min_count", min_count, 1, self.max_pages * PAGE_SIZE)
        self.poll_interval = _seconds("poll_interval", poll_interval, MIN_POLL_INTERVAL, MAX_POLL_INTERVAL)
        #: announced ids, oldest first (a dict keeps insertion order)
        self._announced: dict[str, None] = {}
        self._failures = 0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "qstash_conn_id": self.qstash_conn_id,
                "filters": _active(self.dlq_filter),
                "min_count": self.min_count,
                "poll_interval": self.poll_interval,
                "max_pages": self.max_pages,
                "max_ids_per_event": self.max_ids_per_event,
            },
        )

    # ----------------------------------------------------------------------- the loop

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashError

        self.log.info(
            "Watching the QStash DLQ (%s) every %s s, at most %d pages a poll, at least %d new entries an event",
            self.dlq_filter.describe() if self.dlq_filter.active_filters() else "every entry",
            self.poll_interval,
            self.max_pages,
            self.min_count,
        )
        hook = QStashAsyncHook(qstash_conn_id=self.qstash_conn_id)
        try:
            while True:
                try:
                    events = await self.poll(hook)
                except (QStashError, AirflowException, ValueError, TypeError) as err:  # a missing connection too
                    wait = self._backoff(err)
                    self.log.warning("Polling the QStash DLQ failed (%s); next poll in %.1f s", redact(str(err)), wait)
                    await hook.aclose()
                    hook = QStashAsyncHook(qstash_conn_id=self.qstash_conn_id)  # the connection is read again
                    await self._sleep(wait)
                    continue
                self._failures = 0
                for event in events:
                    yield event
                await self._sleep(self.poll_interval)
        finally:
            await hook.aclose()

    async def poll(self, hook: QStashAsyncHook) -> list[TriggerEvent]:
        """
        One poll: list the matching entries (bounded by ``max_pages``), forget announced ids that left the
        DLQ (after a full listing), and return the events announcing the new entries (none below
        ``min_count``). Raises what the hook raises; nothing is remembered from a failed poll.
        """
        listed: dict[str, int | None] = {}
        cursor: str | None = None
        skipped = 0
        complete = False
        for _ in range(self.max_pages):
            page = await hook.list_dlq(self.dlq_filter, cursor=cursor, count=PAGE_SIZE)
            for entry in page.messages:
                dlq_id = entry.get("dlqId")
                if not isinstance(dlq_id, str) or not dlq_id or len(dlq_id) > MAX_DLQ_ID_CHARS:
                    skipped += 1
                    continue
                listed.setdefault(dlq_id, _created_at(entry.get("createdAt")))
            if page.cursor is None or page.cursor == cursor:
                complete = page.cursor is None
                break
            cursor = page.cursor
        if skipped:
            self.log.warning("Skipped %d DLQ entries without a usable dlqId in QStash's answer", skipped)
        if complete:
            self._announced = {dlq_id: None for dlq_id in self._announced if dlq_id in listed}
        new = [dlq_id for dlq_id in listed if dlq_id not in self._announced]
        if len(new) < self.min_count:
            if new:
                self.log.info("%d new DLQ entries, fewer than min_count=%d: waiting", len(new), self.min_count)
            return []
        self._remember(new)
        parts = [new[start : start + self.max_ids_per_event] for start in range(0, len(new), self.max_ids_per_event)]
        self.log.info("%d new DLQ entries: firing %d event(s)", len(new), len(parts))
        return [
            TriggerEvent(
                {
                    "dlq_ids": part,
                    "count": len(part),
                    "newest_created_at": _newest(listed[dlq_id] for dlq_id in part),
                    "part": number,
                    "parts": len(parts),
                    "listing_complete": complete,
                }
            )
            for number, part in enumerate(parts, start=1)
        ]

    def _remember(self, ids: list[str]) -> None:
        for dlq_id in ids:
            self._announced[dlq_id] = None
        excess = len(self._announced) - MAX_REMEMBERED_IDS
        if excess > 0:
            for dlq_id in list(self._announced)[:excess]:
                del self._announced[dlq_id]

    def _backoff(self, err: BaseException) -> float:
        self._failures += 1
        wait = self.poll_interval * 2 ** min(self._failures - 1, 16)
        # what a 429 asked for: on the error, or on the 429 the hook gave up on (the error's cause)
        asked = getattr(err, "wait", None)
        if asked is None:
            asked = getattr(err.__cause__, "wait", None)
        if isinstance(asked, int | float) and not isinstance(asked, bool) and math.isfinite(asked):
            wait = max(wait, asked)
        return min(wait, MAX_BACKOFF)

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# --------------------------------------------------------------------------- the DAG's side


def announced_dlq_ids(asset_events: Iterable[Any]) -> list[str]:
    """
    The DLQ ids that :class:`QStashDLQEventTrigger` events announced, from the asset events that started a
    run (``context["triggering_asset_events"][asset]``): every id of every event, once, in event order.

    Asset events without ``from_trigger`` in their ``extra`` (a producing task's, or one posted through the
    REST API without it) announce nothing; one posted with the trigger's payload is acted on like the
    trigger's own (a way to re-announce ids by hand). A trigger event whose payload is not what this
    trigger fires is refused with a clear error, before any request: acting on part of it would act on
    something else than what was announced.

    :param asset_events: the asset events (objects with an ``extra`` mapping, or mappings with ``extra``).
    :raises ValueError: when an event from a trigger carries no list of DLQ ids.
    """
    ids: dict[str, None] = {}
    for event in asset_events:
        extra = event.get("extra") if isinstance(event, Mapping) else getattr(event, "extra", None)
        if not isinstance(extra, Mapping) or extra.get("from_trigger") is not True:
            continue
        payload = extra.get("payload")
        announced = payload.get("dlq_ids") if isinstance(payload, Mapping) else None
        if (
            not isinstance(announced, list)
            or not announced
            or not all(isinstance(i, str) and 0 < len(i) <= MAX_DLQ_ID_CHARS for i in announced)
        ):
            raise ValueError(
                "A trigger's asset event carries no list of DLQ ids (payload "
                f"{redact(payload, limit=200)}); schedule this DAG on an asset watched by QStashDLQEventTrigger."
            )
        for dlq_id in announced:
            ids[dlq_id] = None
    return list(ids)


# --------------------------------------------------------------------------- helpers


def _watch_filter(filters: Mapping[str, Any] | None) -> DLQFilter:
    if filters is None:
        filters = {}
    if not isinstance(filters, Mapping):
        raise TypeError(f"filters must be a mapping of DLQ filters (e.g. {{'labels': ['a']}}), not {filters!r}.")
    if "select_all" in filters:
        raise ValueError("filters takes DLQ filters only; leave them empty to watch every entry.")
    not_listable = [name for name in NOT_LISTABLE if filters.get(name) not in (None, (), [])]
    if not_listable:
        raise ValueError(
            f"GET /v2/dlq does not filter by {', '.join(not_listable)}: the watcher would announce more than "
            f"asked. Drop {', '.join(not_listable)}; the other DLQ filters are {', '.join(_listable())}."
        )
    values: dict[str, Any] = {
        name: list(value) if isinstance(value, tuple) else value for name, value in filters.items()
    }
    return DLQFilter.build(select_all=True, **values)


def _listable() -> list[str]:
    return [name for name in DLQ_FILTERS.names if name not in NOT_LISTABLE]


def _active(dlq_filter: DLQFilter) -> dict[str, Any]:
    data = dlq_filter.to_dict()
    return {name: data[name] for name in dlq_filter.active_filters()}


def _whole(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, not {value!r}.")
    return value


def _seconds(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds from {low:g} to {high:g}, not {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low:g} to {high:g} seconds, not {value!r}.")
    return float(value)


def _created_at(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _newest(values: Iterable[int | None]) -> int | None:
    known = [value for value in values if value is not None]
    return max(known) if known else None


__all__ = [
    "EVENT_TRIGGERS_SUPPORTED",
    "MAX_IDS_PER_EVENT",
    "MAX_PAGES_PER_POLL",
    "QStashDLQEventTrigger",
    "announced_dlq_ids",
]
