"""
Messages: the bulk cancel's requests and its one-request start, and the bulk actions that run a filter
cancel (listing, reading one, comparing filters). What to do when a start meets a running action (join
it, or try again) is run logic: :mod:`airflow_qstash.runs.join`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_qstash.exceptions import QStashAPIError, QStashInputError, redact
from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.inputs import parse_count
from airflow_qstash.protocol.answers import QUOTED_CHARS, read_cancelled, read_count
from airflow_qstash.protocol.calls import NOT_FILTERS, Call, FilterQuery, Procedure, filter_requests, selects_all
from airflow_qstash.protocol.endpoints import (
    ACTION_STATES,
    BULK_CANCEL,
    FINISHED,
    GET_BULK_ACTION,
    LIST_BULK_ACTIONS,
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


def bulk_cancel_requests(bulk_filter: BulkCancelFilter, count: int | None, base_url: str) -> list[FilterQuery]:
    """
    The query of each ``DELETE /v2/messages`` request one bulk cancel needs, in the spec's names.

    Usually one; a long ``message_ids`` list is split (:func:`~airflow_qstash.protocol.calls.split_ids`) so
    no URL exceeds :data:`~airflow_qstash.protocol.endpoints.MAX_URL_LENGTH`. A filter cancel asks for a
    background bulk action (``async=true``) and still sends ``count``, which a server of the 2026-08
    generation honours and today's hosted QStash ignores.
    """
    count_param = [] if count is None else [("count", str(parse_count(count)))]
    async_param = [] if bulk_filter.message_ids else [("async", "true")]
    return filter_requests(bulk_filter, base_url, BULK_CANCEL.path, [*count_param, *async_param])


def filter_key(params: Iterable[tuple[str, Any]] | Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """
    A comparable form of a filter: parameter name → sorted values, from query parameters or from a bulk
    action's ``filter`` object (values split on commas, as QStash reads them). ``count``, ``async`` and
    ``cursor`` (:data:`~airflow_qstash.protocol.calls.NOT_FILTERS`) are not part of a filter.
    """
    items: Iterable[tuple[str, Any]] = params.items() if isinstance(params, Mapping) else params
    out: dict[str, list[str]] = {}
    for name, value in items:
        if name in NOT_FILTERS:
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
        total=read_count(answer, "total", "bulk action"),
        processed=read_count(answer, "processed", "bulk action"),
        created_at=answer.get("createdAt") if isinstance(answer.get("createdAt"), int) else None,
        completed_at=answer.get("completedAt") if isinstance(answer.get("completedAt"), int) else None,
        filter=filter_key(raw_filter),
    )


#: The most pages one listing reads (1000 actions a page: far more than 7 days of actions).
MAX_LIST_PAGES = 10_000
#: The most bulk actions one ``GET /v2/bulkActions`` page lists.
MAX_LIST_PAGE_SIZE = 1000


def list_bulk_actions(state: str | None = None, *, page_size: int = MAX_LIST_PAGE_SIZE) -> Procedure[list[BulkAction]]:
    """
    Every bulk action (of ``state``): pages until no ``cursor`` comes back; a page may be short or empty
    before the end (QStash filters by state per page). Bounded by :data:`MAX_LIST_PAGES`.
    """
    if state is not None and state not in ACTION_STATES:
        raise QStashInputError(f"state must be one of {', '.join(ACTION_STATES)} or None, not {state!r}.")
    page_size = parse_count(page_size, "page_size", maximum=MAX_LIST_PAGE_SIZE)
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


def start_bulk_cancel(params: list[tuple[str, str]]) -> Procedure[BulkCancelAnswer]:
    """
    Send one bulk cancel with these query parameters (from :func:`bulk_cancel_requests`) and read its
    answer. A filter cancel is conflict-aware: a 412, or a 429 without rate-limit headers, raises
    :class:`~airflow_qstash.exceptions.QStashActionConflict` (an identical cancel is already running);
    :func:`airflow_qstash.runs.join.start_or_join` decides what to do then.
    """
    is_filter_cancel = not any(name == "messageIds" for name, _ in params)
    call = Call(BULK_CANCEL, tuple(params), conflict_aware=is_filter_cancel, select_all=selects_all(params))
    return read_bulk_cancel_answer((yield call))
