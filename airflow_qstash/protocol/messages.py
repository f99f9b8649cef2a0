"""Messages: the bulk cancel's requests and answers, and the bulk actions that run a filter cancel."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_qstash.exceptions import QStashActionConflict, QStashAPIError, QStashInputError, redact
from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.inputs import parse_count
from airflow_qstash.protocol.answers import QUOTED_CHARS, _count, read_cancelled
from airflow_qstash.protocol.calls import Call, FilterQuery, Procedure, Sleep, _select_all
from airflow_qstash.protocol.endpoints import (
    ACTION_STATES,
    BULK_CANCEL,
    FINISHED,
    GET_BULK_ACTION,
    IN_PROGRESS,
    LIST_BULK_ACTIONS,
    MAX_URL_LENGTH,
)

# --------------------------------------------------------------------------- bulk cancel


@dataclass(frozen=True)
class BatchCancelled:
    """A synchronous answer: QStash cancelled ``cancelled`` messages (a legacy server, or explicit ids)."""

    cancelled: int


@dataclass(frozen=True)
class ActionStarted:
    """A background bulk action now runs (or already ran) the cancel; follow it with its id."""

    action_id: str
    joined: bool = False


BulkCancelAnswer = BatchCancelled | ActionStarted


def read_bulk_cancel_answer(answer: Any) -> BulkCancelAnswer:
    """A 2xx bulk-cancel answer: ``{"actionId"}`` is a bulk action, ``{"cancelled"}`` a synchronous batch."""
    if isinstance(answer, dict):
        action_id = answer.get("actionId")
        if isinstance(action_id, str) and action_id.strip():
            return ActionStarted(action_id)
        if "cancelled" in answer:
            return BatchCancelled(read_cancelled(answer))
    raise QStashAPIError(
        "QStash's bulk cancel answer has neither an 'actionId' nor a 'cancelled' count: "
        f"{redact(answer, limit=QUOTED_CHARS)}"
    )


def bulk_cancel_requests(
    bulk_filter: BulkCancelFilter, count: int | None, base_url: str
) -> list[list[tuple[str, str]]]:
    """
    The query of each ``DELETE /v2/messages`` request one bulk cancel needs, in the spec's names.

    Usually one; a long ``message_ids`` list is split so no URL exceeds :data:`MAX_URL_LENGTH`. A filter
    cancel asks for a background bulk action (``async=true``) and still sends ``count``, which a server of
    the 2026-08 generation honours and today's hosted QStash ignores.
    """
    count_param = [] if count is None else [("count", str(parse_count(count)))]
    async_param = [] if bulk_filter.message_ids else [("async", "true")]
    room = MAX_URL_LENGTH - len(base_url) - len(BULK_CANCEL.path) - len("?&count=500&async=true")
    return [
        FilterQuery.of(part.to_query_params() + count_param + async_param, bulk_filter.select_all)
        for part in bulk_filter.split_message_ids(room)
    ]


def filter_key(params: Iterable[tuple[str, Any]] | Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """
    A comparable form of a filter: parameter name → sorted values, from query parameters or from a bulk
    action's ``filter`` object (values split on commas, as QStash reads them). ``count`` and ``async``
    are not part of a filter.
    """
    items: Iterable[tuple[str, Any]] = params.items() if isinstance(params, Mapping) else params
    out: dict[str, list[str]] = {}
    for name, value in items:
        if name in ("count", "async", "cursor"):
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            out.setdefault(name, []).extend(part.strip() for part in str(item).split(",") if part.strip())
    return {name: tuple(sorted(values)) for name, values in out.items() if values}


# --------------------------------------------------------------------------- bulk actions


@dataclass(frozen=True)
class BulkAction:
    """One bulk action as ``GET /v2/bulkActions/{actionId}`` reports it."""

    action_id: str
    state: str
    total: int
    processed: int
    created_at: int | None = None
    completed_at: int | None = None
    filter: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state == FINISHED


def read_bulk_action(answer: Any) -> BulkAction:
    """Read a ``BulkAction`` object; anything malformed is a clear error."""
    if not isinstance(answer, dict) or not isinstance(answer.get("actionId"), str):
        raise QStashAPIError(f"QStash's bulk action answer has no 'actionId': {redact(answer, limit=QUOTED_CHARS)}")
    action = redact(answer["actionId"], limit=100)
    state = answer.get("state")
    if state not in ACTION_STATES:
        raise QStashAPIError(f"QStash's bulk action {action!r} has an unknown state {redact(repr(state), limit=100)}.")
    raw_filter = answer.get("filter") or {}
    if not isinstance(raw_filter, dict):
        raise QStashAPIError(f"QStash's bulk action {action!r} has a malformed filter.")
    return BulkAction(
        action_id=answer["actionId"],
        state=state,
        total=_count(answer, "total", "bulk action"),
        processed=_count(answer, "processed", "bulk action"),
        created_at=answer.get("createdAt") if isinstance(answer.get("createdAt"), int) else None,
        completed_at=answer.get("completedAt") if isinstance(answer.get("completedAt"), int) else None,
        filter=filter_key(raw_filter),
    )


#: The most pages one listing reads (1000 actions a page: far more than 7 days of actions).
MAX_LIST_PAGES = 10_000


def list_bulk_actions(state: str | None = None, *, page_size: int = 1000) -> Procedure[list[BulkAction]]:
    """
    Every bulk action (of ``state``): pages until no ``cursor`` comes back; a page may be short or empty
    before the end (QStash filters by state per page). Bounded by :data:`MAX_LIST_PAGES`.
    """
    if state is not None and state not in ACTION_STATES:
        raise QStashInputError(f"state must be one of {', '.join(ACTION_STATES)} or None, not {state!r}.")
    if not 1 <= page_size <= 1000:
        raise QStashInputError(f"page_size must be from 1 to 1000, not {page_size!r}.")
    actions: list[BulkAction] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_LIST_PAGES):
        params = [("count", str(page_size))] + ([("state", state)] if state else [])
        params += [("cursor", cursor)] if cursor else []
        answer = yield Call(LIST_BULK_ACTIONS, tuple(params))
        page = answer.get("bulkActions") if isinstance(answer, dict) else None
        if not isinstance(page, list):
            raise QStashAPIError(
                f"QStash's bulk action list has no 'bulkActions' array: {redact(answer, limit=QUOTED_CHARS)}"
            )
        actions.extend(read_bulk_action(item) for item in page)
        next_cursor = answer.get("cursor")
        if not next_cursor:
            return actions
        cursor = str(next_cursor)
        if cursor in seen:
            raise QStashAPIError(
                f"QStash's bulk action list returned the same cursor twice ({redact(cursor, limit=100)!r})."
            )
        seen.add(cursor)
    raise QStashAPIError(f"QStash's bulk action list did not end within {MAX_LIST_PAGES} pages.")


def get_bulk_action(action_id: str) -> Procedure[BulkAction]:
    """The current state of one bulk action."""
    return read_bulk_action((yield Call(GET_BULK_ACTION, path_id=action_id)))


#: How often a conflicting start (412 / 429 without rate-limit headers) is retried when no matching
#: action can be found, and the pauses between tries (seconds, doubling up to the poll ceiling).
CONFLICT_ATTEMPTS = 8
CONFLICT_BACKOFF = 1.0


def start_bulk_cancel(
    params: list[tuple[str, str]],
    *,
    max_pause: float = 10.0,
    exclude: Iterable[str] = (),
    not_before_ms: int | None = None,
) -> Procedure[BulkCancelAnswer]:
    """
    Send one bulk cancel with these query parameters and read its answer.

    When the server says an identical cancel is already running (412, or a 429 without rate-limit
    headers, e.g. after the one-minute wait of a cancel sent without ``async``), the bulk actions are
    listed and the one with our filter is joined (``joined``): the ``IN_PROGRESS`` one, or else, since a
    small action may finish before the listing, the newest ``FINISHED`` one created at or after
    ``not_before_ms`` that is not in ``exclude`` (the actions this run already followed). If none is found
    the start is tried again after a pause, at most :data:`CONFLICT_ATTEMPTS` times. A task never fails
    only because the server's wait ran out.

    :param params: the query, from :func:`bulk_cancel_requests`.
    :param max_pause: the ceiling of the pause between tries, in seconds.
    :param exclude: action ids never to join.
    :param not_before_ms: the earliest ``createdAt`` (Unix ms) of a finished action that may be joined;
        ``None`` joins only running actions.
    """
    is_filter_cancel = not any(name == "messageIds" for name, _ in params)
    ours = filter_key(params)
    excluded = set(exclude)
    pause = min(CONFLICT_BACKOFF, max_pause)
    last: QStashActionConflict | None = None
    for attempt in range(CONFLICT_ATTEMPTS):
        if attempt:
            yield Sleep(pause)
            pause = min(pause * 2, max_pause)
        try:
            call = Call(BULK_CANCEL, tuple(params), conflict_aware=is_filter_cancel, select_all=_select_all(params))
            return read_bulk_cancel_answer((yield call))
        except QStashActionConflict as err:
            last = err
        # A 429 without rate-limit headers: our start was accepted and its action runs or already ran, so the
        # newest action with our filter is ours. A 412 started nothing: only a running action with our filter
        # may be followed; a finished one may be an earlier run's, whose zero would end this run with
        # messages left, so the start is tried again instead.
        finished_since = not_before_ms if last.http_status == 429 else None
        actions = yield from list_bulk_actions(None if finished_since is not None else IN_PROGRESS)
        joinable = joinable_action(actions, ours, excluded, finished_since)
        if joinable is not None:
            return ActionStarted(joinable.action_id, joined=True)
    raise QStashAPIError(
        f"{last} — tried {CONFLICT_ATTEMPTS} times and found no bulk action with this filter to follow; "
        "run the task again later.",
        http_status=last.http_status if last else None,
        api_error=last.api_error if last else None,
    )


def joinable_action(
    actions: Iterable[BulkAction], ours: Mapping[str, tuple[str, ...]], exclude: set[str], not_before_ms: int | None
) -> BulkAction | None:
    """The running action with our filter, else the newest finished one that may be ours (see above)."""
    mine = [action for action in actions if action.filter == ours and action.action_id not in exclude]
    running = [action for action in mine if not action.finished]
    if running:
        return running[0]
    if not_before_ms is None:
        return None
    recent = [a for a in mine if a.created_at is not None and a.created_at >= not_before_ms]
    return max(recent, key=lambda action: action.created_at or 0, default=None)


def bulk_cancel_total(bulk_filter: BulkCancelFilter, count: int | None, base_url: str) -> Procedure[BulkCancelAnswer]:
    """
    One bulk cancel as the hook's ``bulk_cancel`` makes it: the ids split into as many synchronous requests
    as the URL length needs (their counts added), or one filter cancel.
    """
    requests = bulk_cancel_requests(bulk_filter, count, base_url)
    total = 0
    for params in requests:
        answer = yield from start_bulk_cancel(params)
        if isinstance(answer, ActionStarted):
            if len(requests) != 1:
                raise QStashAPIError("QStash answered a split message_ids cancel with a bulk action.")
            return answer
        total += answer.cancelled
    return BatchCancelled(total)
