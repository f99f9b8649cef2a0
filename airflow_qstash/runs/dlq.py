"""
Dead-letter-queue runs without I/O: the loop of a delete or a retry run that the worker and the
triggerer both drive. The DLQ filter itself is :class:`~airflow_qstash.filters.DLQFilter`, built with an
action's table (:data:`~airflow_qstash.filters.DLQ_ACTION_FILTERS`, which names the action's all-flag in
refusals and in the summary's ``filters``) next to the bulk-cancel filter.

Today's QStash (the 2026-12 API): a filter run is rounds of one async bulk action each
(``DELETE /v2/dlq/bulk`` / ``POST /v2/dlq/retry/bulk``), followed by id to ``FINISHED`` and confirmed by a
round that selects 0 (:meth:`DLQRun._action_steps`); QStash takes an action's entries when it accepts it,
so entries failing during an action are not in it. A ``dlq_ids`` run goes to ``/multi`` (one id: the
single-id endpoint). The deprecated paging API below is used only when the server lacks those endpoints
(a 404: an older server), detected once per run; the summary's ``mode`` says which.

On the paging API, a run acts on the set that existed when it started. A DLQ entry's ``createdAt`` is the ORIGINAL
message's creation time, so a ``toDate`` pinned to the task's start does not keep out entries that fail
during the run (an old message that fails meanwhile has an old ``createdAt``). So a filter run first
collects the ``dlqId`` of every matching entry with ``GET /v2/dlq`` (100 a page, following the cursor),
then acts on exactly those ids: ``DELETE /v2/dlq?dlqIds=...`` (``batch_size`` ids a request) or
``POST /v2/dlq/retry?dlqIds=...`` (100 a request); ``dlqIds`` makes QStash ignore every other filter.
Entries that land in the DLQ after their page was listed are left for the next run. A ``dlq_ids`` run
acts on its ids directly. For N matching entries that is ``ceil(N / 100)`` listing requests (the listing
of a ``flow_control_keys`` filter, which ``GET /v2/dlq`` does not take, reads the entries matching the
other filters and keeps those whose ``flowControlKey`` matches) plus ``ceil(N / k)`` deletes or retries,
``k`` being ``batch_size`` (delete) or 100 (retry), or fewer ids when their request URL would pass
:data:`~airflow_qstash.protocol.endpoints.MAX_URL_LENGTH` (4,096 characters: 87 ids of 36 characters on the hosted
base URL). :meth:`DLQRun.steps` is a sans-IO procedure (see :mod:`airflow_qstash.protocol`);
the hook's ``drive`` sends its calls::

    run = DLQDeleteRun(dlq_filter, batch_size=100)
    summary = hook.drive(run.steps(hook.config.base_url, log=log))

A retry whose selected entries vanish meanwhile (deleted by someone else, or expired) gets a 404; that
is part of a run that continues: the id list is split until the ids that are gone are found and skipped.
The first 404 of a run is checked with one ``GET /v2/dlq``, so a base URL without a DLQ API fails instead
of passing as "all vanished".

It ends: every request (listing included) counts against ``max_requests`` (default
:data:`~airflow_qstash.inputs.DEFAULT_MAX_REQUESTS`), a listing cursor seen twice stops the run, and
repeated 404s are bounded. The stop flag, the request bound, the bounded poll of a bulk action and the
judgement on what is left are shared with the bulk cancel (:mod:`.common`); the listing of the selected
entries (:class:`DLQListing`) with the dry run (:mod:`.dlq_preview`).

Nothing here imports an HTTP client: the operator module imports this one at DAG parse time.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Collection, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_qstash.exceptions import DLQEndpointsMissing, QStashAPIError, QStashInputError, QStashRunIncomplete, redact
from airflow_qstash.filters import DELETE, DLQ_ACTION_FILTERS, RETRY, DLQFilter
from airflow_qstash.inputs import DLQ_MAX_COUNT, parse_bound, parse_count, retry_overrides, shown_overrides
from airflow_qstash.runs.common import DEFAULT_POLL_INTERVAL_MAX, ActionRun, Progress, Run
from airflow_qstash.runs.join import joined_by_server, resume_action_id

if TYPE_CHECKING:
    from airflow_qstash.protocol.dlq import DLQActionStarted, DLQPage, DLQRetried
    from airflow_qstash.protocol.messages import BulkAction

#: Which API a run used (the summary's ``mode``): today's async bulk actions (a filter run), today's
#: ``/multi`` and single-id endpoints (a ``dlq_ids`` run), or the deprecated paging API (an older server).
MODE_BULK_ACTION = "bulk_action"
MODE_MULTI = "multi"
MODE_PAGED = "paged"
#: How many new message ids a retry run reports in its summary; above that only their count.
MAX_REPORTED_MESSAGE_IDS = 1_000


# --------------------------------------------------------------------------- the listing


class DLQListing(Run):
    """
    The listing a DLQ run (:meth:`DLQRun.collect`) and its dry run (:class:`~.dlq_preview.DLQPreview`)
    read: ``GET /v2/dlq`` pages of 100 with the filters the listing takes, following the cursor; each page
    counts against ``max_requests``, and a cursor seen twice stops the run. ``flowControlKey``, which the
    listing does not take, is matched on each listed entry (:meth:`listed`).
    """

    dlq_filter: DLQFilter
    max_requests: int
    requests: int
    list_requests: int

    def list_pages(self, on_page: Callable[[DLQPage], bool], doing: Callable[[], str]) -> Generator[Any, Any, None]:
        """
        Read the pages until the cursor ends or ``on_page`` (given each page) returns true; ``doing`` says,
        when the bound is spent, what the run was doing.
        """
        from airflow_qstash.protocol.dlq import DLQ_LIST_UNSUPPORTED, list_dlq_page

        params = [
            (name, value) for name, value in self.dlq_filter.to_query_params() if name not in DLQ_LIST_UNSUPPORTED
        ]
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            self.check_before_request(self.requests, self.max_requests, "max_requests", doing())
            try:
                page = yield from list_dlq_page(params, cursor, DLQ_MAX_COUNT)
            except QStashAPIError as err:
                raise self.incomplete(f"listing request {self.list_requests + 1} failed: {err}") from err
            self.requests += 1
            self.list_requests += 1
            if on_page(page) or page.cursor is None:
                return
            if page.cursor in seen:
                raise self.incomplete(
                    f"GET /v2/dlq answered the cursor {redact(page.cursor, limit=60)!r} twice while listing"
                )
            seen.add(page.cursor)
            cursor = page.cursor

    def listed(self, page: DLQPage) -> Iterator[dict[str, Any]]:
        """The entries of a page that the filter selects (``flow_control_keys`` matched here)."""
        keys = set(self.dlq_filter.flow_control_keys)
        return (entry for entry in page.messages if not keys or entry.get("flowControlKey") in keys)


# --------------------------------------------------------------------------- the runs


@dataclass
class DLQRun(ActionRun, DLQListing):
    """
    Counters and the stop decision of one DLQ delete or retry run. A filter run keeps the ``dlqId`` of
    every entry it selected when it started (:meth:`collect`): about 130 bytes each (a 36-character id as
    a Python string and its slot; measured 12.4 MB for 100,000 entries with tracemalloc); the listing is bounded by
    ``max_requests``, so at most ``100 * max_requests`` ids. A retry also keeps at most
    :data:`MAX_REPORTED_MESSAGE_IDS` new message ids.

    :param dlq_filter: what the run selects.
    :param max_requests: the most requests (every request counts: the listing pages, the parts a long id
        list is split into, and the ones sent again after a 404).

    The keywords of :class:`~airflow_qstash.runs.common.ActionRun` (``action_timeout``,
    ``resume_action_ids``, ``on_action``, ``clock``) apply.
    """

    ACTION: ClassVar[str]
    #: The summary key of the main count (``deleted``/``retried``), and the action as a doing.
    DONE_KEY: ClassVar[str]
    ACTING: ClassVar[str]

    dlq_filter: DLQFilter
    max_requests: Any = None
    requests: int = 0
    #: Entries the run selected when it started (the ids it collected, or the ``dlq_ids`` given).
    selected: int = 0
    #: ``GET /v2/dlq`` pages read to collect them.
    list_requests: int = 0
    #: Which API the run used: :data:`MODE_BULK_ACTION`, :data:`MODE_MULTI` or :data:`MODE_PAGED`.
    mode: str | None = None
    #: Requests that found an older server (404 on today's endpoints) before the run fell back to paging.
    detection_requests: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.dlq_filter, DLQFilter):
            raise QStashInputError(f"dlq_filter must be a DLQFilter, not {type(self.dlq_filter).__name__}.")
        self.max_requests = parse_bound(self.max_requests, "max_requests")
        super().__post_init__()

    @property
    @abstractmethod
    def done(self) -> int:
        """Entries deleted or retried so far."""

    def _before_request(self, doing: str = "with entries possibly left") -> None:
        self.check_before_request(self.requests, self.max_requests, "max_requests", doing)

    def _send(
        self, procedure: Generator[Any, Any, Any], what: str = "request", doing: str = "with entries possibly left"
    ) -> Generator[Any, Any, Any]:
        """
        One counted request within the bound: its answer, or the run stopped as incomplete naming ``what``
        failed. A 404 that tells an older server (:class:`~airflow_qstash.exceptions.DLQEndpointsMissing`)
        is counted and passed on: the run falls back to paging.
        """
        self._before_request(doing)
        try:
            answer = yield from procedure
        except DLQEndpointsMissing:
            self.requests += 1
            raise
        except QStashAPIError as err:
            raise self.incomplete(f"{what} {self.requests + 1} failed: {err}") from err
        self.requests += 1
        return answer

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """The run's own options as JSON-safe values, for :func:`make_run` (the trigger rebuilds the run)."""

    def steps(
        self, base_url: str, *, log: Any = None, poll_interval_max: float = DEFAULT_POLL_INTERVAL_MAX
    ) -> Generator[Any, Any, dict[str, Any]]:
        """
        The whole run as a sans-IO procedure; returns :meth:`summary`.

        Today's API first (:meth:`_action_steps` for a filter, :meth:`_id_steps` for ``dlq_ids``); when the
        server lacks it (its first request answers 404, see :class:`~airflow_qstash.exceptions.DLQEndpointsMissing`)
        the deprecated paging API, detected once per run: ``mode`` in the summary says which.

        :param base_url: the connection's base URL (the URL length limit depends on it).
        :param log: a logger for progress lines, or ``None``.
        :param poll_interval_max: the ceiling of the pause between polls of a bulk action, in seconds.
        """
        if self.mode != MODE_PAGED:
            try:
                if self.dlq_filter.dlq_ids:
                    yield from self._id_steps(base_url, log)
                else:
                    yield from self._action_steps(base_url, log, poll_interval_max)
                return self.summary()
            except DLQEndpointsMissing as err:
                if self.mode is not None:
                    raise self.incomplete(f"the DLQ API disappeared in the middle of the run: {err}") from err
                # The 404s that told an older server apart (at most two) acted on nothing: they are reported
                # as ``detection_requests``, and ``requests``/``max_requests`` cover the paging run alone.
                self.mode = MODE_PAGED
                self.detection_requests, self.requests = self.requests, 0
                self._reset_detection()
                if log is not None:
                    log.info(
                        "DLQ %s: %s; this is an older QStash server: using the deprecated paging API (the "
                        "selected ids are listed first, then acted on).",
                        self.ACTION,
                        err,
                    )
        return (yield from self._paged_steps(base_url, log=log))

    def _reset_detection(self) -> None:  # a hook with nothing to do for a delete
        """Forget what the detecting requests counted (a retry's 404 counters)."""

    @abstractmethod
    def _paged_steps(self, base_url: str, *, log: Any = None) -> Generator[Any, Any, dict[str, Any]]:
        """The run on the deprecated paging API: list the selected ids (a filter run), then act on them."""

    @abstractmethod
    def _id_steps(self, base_url: str, log: Any) -> Generator[Any, Any, None]:
        """A ``dlq_ids`` run on today's API: ``/multi`` parts, or the single-id endpoint for one id."""

    @abstractmethod
    def _add_done(self, count: int) -> None:
        """Add entries confirmed deleted or retried."""

    # ----------------------------------------------------------------------- today's API: bulk actions

    def _bulk_endpoint(self) -> Any:
        from airflow_qstash.protocol.endpoints import DLQ_DELETE_BULK, DLQ_RETRY_BULK

        return DLQ_DELETE_BULK if self.ACTION == DELETE else DLQ_RETRY_BULK

    def _action_headers(self) -> tuple[tuple[str, str], ...]:
        """The request headers of a bulk action's start: a retry's overrides."""
        return ()

    def _action_steps(self, base_url: str, log: Any, poll_interval_max: float) -> Generator[Any, Any, None]:
        """
        A filter run on today's API: rounds of one bulk action each (``DELETE /v2/dlq/bulk`` /
        ``POST /v2/dlq/retry/bulk``), followed by id to ``FINISHED``, until a round's action selects 0.

        QStash takes the action's entries at accept time, so entries that fail while an action runs (an old
        message has an old ``createdAt``: the pinned ``to_date`` cannot keep it out) are not in it. Every
        finished action is followed by a confirming round with the same filters that must select 0; its
        snapshot is taken when it starts, so entries that failed in between are in it (and in the counts),
        and entries that fail after it started are left for the next run. What is done is the drop of the
        action's ``total`` from one round to the next (never the ``processed`` the server reports); rounds
        that leave as much as the one before stop the run after
        :data:`~airflow_qstash.runs.common.MAX_ROUNDS_WITHOUT_PROGRESS`. "Identical filters submitted while an
        action is already in-progress return the existing action": a re-run or retried task follows that
        one (the log says "joined" when its ``createdAt`` is before this run started).
        """
        from airflow_qstash.protocol.dlq import dlq_requests, start_dlq_action

        endpoint = self._bulk_endpoint()
        params = dlq_requests(self.dlq_filter, endpoint, base_url)[0]
        progress = Progress()
        resumed = yield from self._reattach(poll_interval_max, log)
        if resumed is not None:
            self.mode = MODE_BULK_ACTION
            self.rounds += 1
            self.selected = resumed.total
            progress.record_left(resumed.total)
            if resumed.total == 0:
                return
        while True:
            started = yield from self._send(
                start_dlq_action(endpoint, params, self._action_headers()),
                "bulk action request",
                "before starting the next bulk action",
            )
            if self.mode is None and log is not None:
                log.info(
                    "This QStash runs DLQ %ss as background bulk actions: each round is one bulk action over "
                    "every matching entry at the time it is accepted, and a finished action is followed by a "
                    "confirming round that must find none.",
                    self.ACTION,
                )
            self.mode = MODE_BULK_ACTION
            action = yield from self._follow(started, poll_interval_max, log)
            self.rounds += 1
            total = action.total
            if progress.left is None:
                self.selected = total
            self._add_done(progress.record_left(total))
            if log is not None:
                log.info(
                    "DLQ %s round %d: bulk action %s FINISHED, %d matching at its start, %d reported processed "
                    "(total %d %s confirmed).",
                    self.ACTION,
                    self.rounds,
                    action.action_id,
                    total,
                    action.processed,
                    self.done,
                    self.DONE_KEY,
                )
            if total == 0:
                return
            if progress.stuck:
                raise self.incomplete(
                    f"{progress.stalled + 1} bulk actions in a row found {total} matching entr"
                    f"{'y' if total == 1 else 'ies'} and left them (no progress)"
                )

    def _reattach(self, poll_interval_max: float, log: Any) -> Generator[Any, Any, BulkAction | None]:
        """
        Re-attach to the last bulk action an earlier try started (:attr:`resume_action_ids`), by id, and
        follow it to ``FINISHED`` as this run's first round (no start is sent for it); ``None`` when there is
        none, or when it cannot be read (logged: the run then starts afresh and meets "identical filters
        return the existing action").
        """
        from airflow_qstash.protocol.dlq import DLQActionStarted
        from airflow_qstash.protocol.messages import get_bulk_action

        action_id = resume_action_id(self.resume_action_ids, self.action_ids)
        if action_id is None:
            return None
        try:
            yield from get_bulk_action(action_id)
        except QStashAPIError as err:
            if log is not None:
                log.warning(
                    "DLQ bulk action %s from an earlier try could not be read (%s); going on as a fresh run.",
                    action_id,
                    err,
                )
            return None
        return (yield from self._follow(DLQActionStarted(action_id), poll_interval_max, log, reattached=True))

    def _follow(
        self, started: DLQActionStarted, poll_interval_max: float, log: Any, *, reattached: bool = False
    ) -> Generator[Any, Any, BulkAction]:
        """Poll one bulk action (``GET /v2/bulkActions/{actionId}``) until ``FINISHED``; return it as last read."""
        joined = joined_by_server(started.action_id, started.created_at, self.action_ids, self.started_ms)
        self.note_action(started.action_id)
        if log is not None:
            how = "started (QStash returns an identical running action under its own id)"
            if reattached:
                how = "re-attached by its id (stored in the task state store by an earlier try; no new start)"
            elif joined:
                how = "created before this run started: an identical request's action, joined"
            log.info(
                "DLQ %s round %d: bulk action %s %s; following it.",
                self.ACTION,
                self.rounds + 1,
                started.action_id,
                how,
            )

        def on_poll(action: BulkAction, elapsed: float) -> None:
            if log is not None:
                log.info(
                    "DLQ %s bulk action %s: %s, %d of %d processed (%.0f s).",
                    self.ACTION,
                    action.action_id,
                    action.state,
                    action.processed,
                    action.total,
                    elapsed,
                )

        try:
            return (
                yield from self.poll_action(
                    started.action_id, poll_interval_max, on_poll, stop_note="; the bulk action goes on in QStash"
                )
            )
        except QStashAPIError as err:
            raise self.incomplete(f"reading bulk action {started.action_id} failed: {err}") from err

    #: How many ids one action request carries (the delete's ``batch_size``; 100 for a retry).
    def _per_request(self) -> int:
        return DLQ_MAX_COUNT

    def collect(self, log: Any = None) -> Generator[Any, Any, Collection[str]]:
        """
        The ``dlqId`` of every entry the filter selects now, in listing order: ``GET /v2/dlq`` pages of 100,
        following the cursor until none (each page counts against ``max_requests``). A ``dlq_ids`` run
        returns its ids without a request. ``flowControlKey``, which the listing does not take, is matched
        on each listed entry's ``flowControlKey``. An entry without a usable ``dlqId`` (text without a
        comma, which QStash would read as two ids) stops the run: acting on it could act on another.
        """
        if self.dlq_filter.dlq_ids:
            self.selected = len(self.dlq_filter.dlq_ids)
            return self.dlq_filter.dlq_ids
        ids: dict[str, None] = {}

        def on_page(page: DLQPage) -> bool:
            for entry in self.listed(page):
                dlq_id = entry.get("dlqId")
                if not isinstance(dlq_id, str) or not dlq_id.strip() or "," in dlq_id:
                    raise self.incomplete(
                        f"GET /v2/dlq listed an entry without a usable dlqId ({redact(str(dlq_id), limit=60)!r}); "
                        "nothing was acted on"
                    )
                ids[dlq_id] = None
            return False

        def doing() -> str:
            return (
                f"while listing the entries to act on ({len(ids)} listed in {self.list_requests} request(s), nothing "
                f"acted on yet; a run needs a listing request per 100 selected entries plus its action requests: "
                "raise max_requests, or narrow the filters)"
            )

        yield from self.list_pages(on_page, doing)
        self.selected = len(ids)
        if log is not None:
            log.info(
                "DLQ %s: %d entr%s selected in %d listing request(s); acting on exactly these (entries that land "
                "in the DLQ from now on are left for the next run).",
                self.ACTION,
                self.selected,
                "y" if self.selected == 1 else "ies",
                self.list_requests,
            )
        return ids.keys()

    def _judge_page(self, progress: Progress, sent: str | None, answered: str, acted: int) -> None:
        """
        A paging answer that acted on nothing and handed back the cursor it was sent stalls; after
        :data:`~airflow_qstash.runs.common.MAX_ROUNDS_WITHOUT_PROGRESS` in a row the run stops, naming
        what may be left.
        """
        progress.note(answered != sent or acted > 0)
        if progress.stuck:
            raise self.incomplete(
                f"QStash answered the same cursor {redact(str(sent), limit=60)!r} {progress.stalled + 1} times in a "
                f"row without {self.ACTING}: no progress; {self.left} of the {self.selected} "
                "selected entries may be left"
            )

    @property
    def left(self) -> int:
        """Selected entries not known to be done (nor gone)."""
        return self.selected - self.done

    def _progress(self, log: Any, in_request: int, cursor: str | None) -> None:
        if log is not None:
            log.info(
                "DLQ %s request %d: %s %d (total %d of the %d selected, %.0f entries/s)%s.",
                self.ACTION,
                self.requests,
                self.DONE_KEY,
                in_request,
                self.done,
                self.selected,
                self.rate,
                "; more pages follow" if cursor else "",
            )

    @property
    def rate(self) -> float:
        """Entries per second so far."""
        return self.per_second(self.done)

    def summary(self) -> dict[str, Any]:
        """
        The XCom value: totals, requests (listing included), ``selected`` (entries the run selected when it
        started) and ``list_requests`` (the listing pages among ``requests``), the window used (Unix ms), the
        filters and the duration.
        """
        return {
            self.DONE_KEY: self.done,
            "requests": self.requests,
            "selected": self.selected,
            "list_requests": self.list_requests,
            **self.window_summary(self.dlq_filter, DLQ_ACTION_FILTERS[self.ACTION]),
            "mode": self.mode,
            "action_ids": list(self.action_ids),
            "rounds": self.rounds,
            "polls": self.polls,
            "detection_requests": self.detection_requests,
        }

    def incomplete(self, reason: str) -> QStashRunIncomplete:
        """The error to raise when the run stops early; it carries the running totals."""
        return QStashRunIncomplete(
            f"QStash DLQ {self.ACTION} incomplete: {reason}. {self.DONE_KEY.capitalize()} {self.done} entr"
            f"{'y' if self.done == 1 else 'ies'} of the {self.selected} selected in {self.requests} request(s) so "
            "far; running the task again "
            f"continues safely (entries already {self.DONE_KEY} are gone from the DLQ).",
            self.summary(),
        )


@dataclass
class DLQDeleteRun(DLQRun):
    """
    Delete the DLQ entries the filter selected when the run started (:meth:`DLQRun.collect`):
    ``DELETE /v2/dlq?dlqIds=...`` with ``batch_size`` ids a request. For N entries that is
    ``ceil(N / 100)`` listing requests plus ``ceil(N / batch_size)`` deletes (fewer ids a request when the
    URL would pass 4,096 characters; a ``dlq_ids`` run: the deletes only).

    :param batch_size: entries per request, 1..100 (QStash's ``count``).
    """

    ACTION: ClassVar[str] = DELETE
    DONE_KEY: ClassVar[str] = "deleted"
    ACTING: ClassVar[str] = "deleting"

    batch_size: Any = DLQ_MAX_COUNT
    deleted: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.batch_size = parse_count(self.batch_size, "batch_size", maximum=DLQ_MAX_COUNT, what="QStash's DLQ count")

    @property
    def done(self) -> int:
        return self.deleted

    def _add_done(self, count: int) -> None:
        self.deleted += count

    def options(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "action_timeout": self.action_timeout}

    def _id_steps(self, base_url: str, log: Any) -> Generator[Any, Any, None]:
        """
        ``DELETE /v2/dlq/multi?dlqIds=...`` (at most :data:`~airflow_qstash.inputs.DLQ_MAX_COUNT` ids a
        part, URLs within bounds; each part counts as a request), or ``DELETE /v2/dlq/{dlqId}`` for one id.
        ``batch_size`` does not apply (it is the paging API's ``count``).
        """
        from airflow_qstash.protocol.dlq import dlq_delete_multi, dlq_delete_one, dlq_id_requests
        from airflow_qstash.protocol.endpoints import DLQ_DELETE_MULTI

        ids = list(self.dlq_filter.dlq_ids)
        self.selected = len(ids)
        parts: Iterable[list[tuple[str, str]]] = (
            [[("dlqIds", ids[0])]] if len(ids) == 1 else dlq_id_requests(ids, DLQ_DELETE_MULTI, base_url)
        )
        for part in parts:
            count = yield from self._send(dlq_delete_one(part[0][1]) if len(ids) == 1 else dlq_delete_multi(part))
            self.mode = MODE_MULTI
            self.deleted += count
            self._progress(log, count, None)

    def _per_request(self) -> int:
        return int(self.batch_size)

    def _paged_steps(self, base_url: str, *, log: Any = None) -> Generator[Any, Any, dict[str, Any]]:
        from airflow_qstash.protocol.dlq import dlq_delete_page, dlq_id_requests
        from airflow_qstash.protocol.endpoints import DLQ_DELETE

        ids = yield from self.collect(log)
        for params in dlq_id_requests(ids, DLQ_DELETE, base_url, self._per_request()):
            cursor: str | None = None
            progress = Progress()
            while True:
                answer = yield from self._send(dlq_delete_page(params, cursor, self.batch_size))
                self.deleted += answer.deleted
                self._progress(log, answer.deleted, answer.cursor)
                if answer.cursor is None:
                    break
                self._judge_page(progress, cursor, answer.cursor, answer.deleted)
                cursor = answer.cursor
        return self.summary()


class _NotFound(Exception):
    """A retry request answered 404: some selected entries vanished meanwhile."""


@dataclass
class DLQRetryRun(DLQRun):
    """
    Retry the DLQ entries the filter selected when the run started (:meth:`DLQRun.collect`):
    ``POST /v2/dlq/retry?dlqIds=...`` with the ``Upstash-*`` overrides, 100 ids a request (fewer when the URL
    would pass 4,096 characters). QStash creates a
    new message per entry and removes the entry from the DLQ, so running again never retries an entry twice.

    A 404 (entries vanished between the listing and the retry) does not end the run: the id list is halved
    until the vanished ids are found (counted in ``vanished``) and the others retried.

    :param headers: the ``Upstash-*`` overrides, as :func:`retry_overrides` returns them.
    """

    ACTION: ClassVar[str] = RETRY
    DONE_KEY: ClassVar[str] = "retried"
    ACTING: ClassVar[str] = "retrying"

    headers: tuple[tuple[str, str], ...] = ()
    retried: int = 0
    deduplicated: int = 0
    vanished: int = 0
    not_found_answers: int = 0
    message_ids: list[str] = field(default_factory=list)
    _answered: int = field(default=0, repr=False)
    _dlq_api_confirmed: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.headers = retry_overrides(headers=dict(self.headers)) if self.headers else ()

    @property
    def done(self) -> int:
        return self.retried

    def _add_done(self, count: int) -> None:
        self.retried += count

    def _action_headers(self) -> tuple[tuple[str, str], ...]:
        return tuple(self.headers)

    def _reset_detection(self) -> None:
        self.not_found_answers = 0

    @property
    def left(self) -> int:
        return self.selected - self.retried - self.vanished

    def options(self) -> dict[str, Any]:
        return {"headers": [list(pair) for pair in self.headers], "action_timeout": self.action_timeout}

    def _id_steps(self, base_url: str, log: Any) -> Generator[Any, Any, None]:
        """
        ``POST /v2/dlq/retry/multi?dlqIds=...`` with the overrides (at most
        :data:`~airflow_qstash.inputs.DLQ_MAX_COUNT` ids a part, each part a request), one id to
        ``POST /v2/dlq/retry/{dlqId}``; the new message ids are kept. A 404 (some ids gone) halves the part
        until the gone ids are found alone and skipped (``vanished``). The run's first 404 is told apart from
        an older server with one ``GET /v2/bulkActions``
        (see :func:`~airflow_qstash.protocol.dlq.has_bulk_actions`).
        """
        from airflow_qstash.protocol.dlq import dlq_id_requests, dlq_retry_multi, dlq_retry_one, has_bulk_actions
        from airflow_qstash.protocol.endpoints import DLQ_RETRY_MULTI

        ids = list(self.dlq_filter.dlq_ids)
        self.selected = len(ids)
        try:
            for params in dlq_id_requests(ids, DLQ_RETRY_MULTI, base_url):
                pending = [params]
                while pending:
                    part = pending.pop()
                    self._before_request()
                    try:
                        if len(part) == 1:
                            answer = yield from dlq_retry_one(part[0][1], self.headers)
                        else:
                            answer = yield from dlq_retry_multi(part, self.headers)
                    except QStashAPIError as err:
                        if err.http_status != 404:
                            raise
                        self.requests += 1
                        self.not_found_answers += 1
                        if self.mode is None and len(part) > 1:
                            self._before_request()
                            present = yield from has_bulk_actions()
                            self.requests += 1
                            if not present:
                                raise DLQEndpointsMissing(
                                    f"POST /v2/dlq/retry/multi and GET /v2/bulkActions answered 404 ({err})",
                                    http_status=404,
                                ) from err
                        elif self.mode is None:
                            yield from self._confirm_dlq_api(err)
                        self.mode = MODE_MULTI
                        pending += self._split_or_skip(part, log)
                        continue
                    self.requests += 1
                    self.mode = MODE_MULTI
                    self._answered += 1
                    self._record(answer)
                    self._progress(log, len(answer.message_ids), None)
        except DLQEndpointsMissing:
            raise
        except QStashAPIError as err:
            raise self.incomplete(f"request {self.requests + 1} failed: {err}") from err

    def _paged_steps(self, base_url: str, *, log: Any = None) -> Generator[Any, Any, dict[str, Any]]:
        from airflow_qstash.protocol.dlq import dlq_id_requests
        from airflow_qstash.protocol.endpoints import DLQ_RETRY

        ids = yield from self.collect(log)
        try:
            for params in dlq_id_requests(ids, DLQ_RETRY, base_url, self._per_request()):
                yield from self._retry_ids(params, log)
        except QStashAPIError as err:
            raise self.incomplete(f"request {self.requests + 1} failed: {err}") from err
        return self.summary()

    def _pages(self, params: list[tuple[str, str]], log: Any) -> Generator[Any, Any, None]:
        """Retry one query, following its cursor; a 404 raises :class:`_NotFound` (after one DLQ API check)."""
        from airflow_qstash.protocol.dlq import dlq_retry_page

        cursor: str | None = None
        progress = Progress()
        while True:
            self._before_request()
            try:
                answer: DLQRetried = yield from dlq_retry_page(params, cursor, self.headers)
            except QStashAPIError as err:
                if err.http_status != 404:
                    raise
                self.requests += 1
                self.not_found_answers += 1
                yield from self._confirm_dlq_api(err)
                raise _NotFound(err.api_error or str(err)) from err
            self.requests += 1
            self._answered += 1
            self._record(answer)
            self._progress(log, len(answer.message_ids), answer.cursor)
            if answer.cursor is None:
                return
            self._judge_page(progress, cursor, answer.cursor, len(answer.message_ids))
            cursor = answer.cursor

    def _retry_ids(self, params: list[tuple[str, str]], log: Any) -> Generator[Any, Any, None]:
        """Retry an id list; on a 404 halve it until each vanished id is found alone, and skip those."""
        pending = [params]
        while pending:
            part = pending.pop()
            try:
                yield from self._pages(part, log)
            except _NotFound:
                pending += self._split_or_skip(part, log)

    def _split_or_skip(self, part: list[tuple[str, str]], log: Any) -> list[list[tuple[str, str]]]:
        """
        After a 404 on ``part``: its halves to try next (the first half last, so it is popped first), or, for
        one id, nothing: that entry is gone (counted in ``vanished``) and skipped.
        """
        if len(part) > 1:
            middle = len(part) // 2
            return [part[middle:], part[:middle]]
        self.vanished += 1
        if log is not None:
            log.info("DLQ entry %s is no longer in the DLQ (404); skipped.", part[0][1])
        return []

    def _confirm_dlq_api(self, err: Exception) -> Generator[Any, Any, None]:
        """
        Once per run: a 404 means "vanished" only if the DLQ API is there; ``GET /v2/dlq`` answering 404 as
        well means the base URL is wrong, and every entry would pass as vanished.
        """
        from airflow_qstash.protocol.dlq import list_dlq_page

        if self._dlq_api_confirmed:
            return
        self._before_request()
        try:
            yield from list_dlq_page((), None, 1)
        except QStashAPIError as probe:
            self.requests += 1
            raise self.incomplete(
                f"POST /v2/dlq/retry answered 404 ({err}) and GET /v2/dlq answered {probe.http_status} too ({probe}): "
                "there is no QStash DLQ API at this base URL; check the connection's host"
            ) from probe
        self.requests += 1
        self._dlq_api_confirmed = True

    def _record(self, answer: DLQRetried) -> None:
        self.retried += len(answer.message_ids)
        self.deduplicated += answer.deduplicated
        room = MAX_REPORTED_MESSAGE_IDS - len(self.message_ids)
        if room > 0:
            self.message_ids.extend(answer.message_ids[:room])

    def summary(self) -> dict[str, Any]:
        """
        The XCom value of :meth:`DLQRun.summary` plus ``message_ids`` (the new messages, or ``None`` when
        more than :data:`MAX_REPORTED_MESSAGE_IDS` were retried: ``retried`` is their count),
        ``deduplicated``, ``vanished`` (ids found gone), ``not_found_answers`` and the ``overrides`` sent.
        """
        # A bulk action reports no per-message ids: only counts and the action ids.
        reported = self.message_ids if self.retried <= MAX_REPORTED_MESSAGE_IDS else None
        if self.mode == MODE_BULK_ACTION:
            reported = None
        return {
            **super().summary(),
            "message_ids": None if reported is None else list(reported),
            "deduplicated": self.deduplicated,
            "vanished": self.vanished,
            "not_found_answers": self.not_found_answers,
            "overrides": shown_overrides(self.headers),
        }


def make_run(action: str, dlq_filter: DLQFilter, **options: Any) -> DLQRun:
    """The run of ``action`` (``"delete"`` or ``"retry"``) with its options (``batch_size`` / ``headers``)."""
    if action == DELETE:
        return DLQDeleteRun(dlq_filter, **options)
    if action == RETRY:
        return DLQRetryRun(dlq_filter, **options)
    raise QStashInputError(f"action must be {DELETE!r} or {RETRY!r}, not {action!r}.")
