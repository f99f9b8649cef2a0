"""The two server generations of bulk cancel, as two small strategy classes.

* :class:`LegacyBulkCancel` (``--bulk-cancel legacy``): the 2026-08 spec, what an older local
  dev server does. ``DELETE /v2/messages`` cancels synchronously, honours ``count`` (1..500)
  and answers ``{"cancelled": n}``; an ``async`` parameter is unknown to it and ignored; there
  is no ``/v2/bulkActions``.
* :class:`ActionsBulkCancel` (``--bulk-cancel actions``, the default): hosted QStash since
  September 2026 (see ``tests/spec/qstash-bulk-actions-overlay.yaml``). A cancel by
  ``messageIds`` stays synchronous and exact. A filter cancel (no filter at all = every
  message) ignores ``count``, snapshots the matching held messages and starts a bulk action
  (:mod:`qstash_emulator.actions`); ``async=true`` answers 202 ``{"actionId"}`` at
  once; otherwise the request waits up to ``sync_wait`` seconds and answers 200
  ``{"cancelled": n}`` if the action finished, else 429 ``{"error": ...}`` **without**
  rate-limit headers while the action goes on. A filter equal to the one of an action still
  in progress answers 412 and starts nothing. ``GET /v2/bulkActions`` and
  ``GET /v2/bulkActions/{actionId}`` report the actions.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from qstash_emulator.actions import ACTION_STATES, DEFAULT_ACTION_RATE, ActionRunner, ActionStore
from qstash_emulator.cancel_mode import BulkCancelMode
from qstash_emulator.query import QueryError, parse_bulk_cancel_query, parse_flag, parse_integer
from qstash_emulator.web import emulator_state, error_response, fault_decision, record_fault, store_call

#: The server generations ``--bulk-cancel`` accepts.
BULK_CANCEL_MODES: tuple[str, ...] = ("actions", "legacy")
#: How long a filter cancel without ``async=true`` waits for its action, by default (seconds).
DEFAULT_SYNC_WAIT = 60.0
#: Largest and default ``count`` of ``GET /v2/bulkActions``.
MAX_LIST_COUNT = 1000
DEFAULT_LIST_COUNT = 100

#: The answer when the synchronous wait runs out (no rate-limit headers: it is not a rate limit).
STILL_IN_PROGRESS = "bulk action still in progress"
#: The answer of a filter cancel whose filter is that of an action in progress.
SAME_FILTER_IN_PROGRESS = "a bulk action with the same filter is already in progress"


def _cancelled(result: Any, request: Request, partial: bool) -> Response:
    record_fault(request, "partial" if partial else None)
    if result.failed_message_id is not None:
        return error_response(500, f"failed to cancel message {result.failed_message_id}")
    return JSONResponse({"cancelled": result.cancelled})


class LegacyBulkCancel(BulkCancelMode):
    """The 2026-08 contract: synchronous, ``count`` honoured, no bulk actions."""

    name = "legacy"

    async def cancel(self, request: Request) -> Response:
        """Cancel the oldest ``count`` matching held messages now; ``{"cancelled": n}``."""
        try:
            query = parse_bulk_cancel_query(request.query_params.multi_items())
        except QueryError as exc:
            return error_response(400, str(exc))
        partial = fault_decision(request).partial_fraction
        store = emulator_state(request).store
        result = await store_call(request, store.bulk_cancel, query, partial_fraction=partial)
        return _cancelled(result, request, partial is not None)

    async def list_actions(self, request: Request) -> Response:
        """Unknown to this generation: 404, as any unknown route."""
        return error_response(404, "Not Found")

    async def get_action(self, request: Request) -> Response:
        """Unknown to this generation: 404, as any unknown route."""
        return error_response(404, "Not Found")


class ActionsBulkCancel(BulkCancelMode):
    """Today's hosted QStash: filter cancels run as background bulk actions.

    :param actions: the bulk-action store.
    :param rate: messages per second a bulk action cancels (finite, > 0).
    :param sync_wait: seconds a filter cancel without ``async=true`` waits for its action
        (finite, >= 0).
    """

    name = "actions"

    def __init__(
        self, actions: ActionStore, *, rate: float = DEFAULT_ACTION_RATE, sync_wait: float = DEFAULT_SYNC_WAIT
    ) -> None:
        super().__init__(actions)
        if isinstance(sync_wait, bool) or not 0 <= sync_wait < math.inf:
            raise ValueError(f"sync_wait must be a finite number of seconds >= 0, got {sync_wait!r}")
        self.sync_wait = float(sync_wait)
        self.runner = ActionRunner(actions, rate)

    def start(self) -> None:
        """Start the worker (it resumes the actions a database file left in progress)."""
        self.runner.start()
        self.runner.wake()

    def close(self) -> None:
        """Stop the worker."""
        self.runner.stop()

    async def cancel(self, request: Request) -> Response:
        """By ids: synchronous and exact. By filter: start a bulk action (see the module doc)."""
        items = request.query_params.multi_items()
        record_fault(request, None)  # set below to what is really applied
        try:
            query = parse_bulk_cancel_query(items, honour_count=False)
            asynchronous = parse_flag("async", items)
        except QueryError as exc:
            return error_response(400, str(exc))
        decision = fault_decision(request)
        if query.message_ids:
            store = emulator_state(request).store
            result = await store_call(request, store.bulk_cancel, query, partial_fraction=decision.partial_fraction)
            return _cancelled(result, request, decision.partial_fraction is not None)
        if decision.action_fault == "412":
            record_fault(request, "412")
            return error_response(412, SAME_FILTER_IN_PROGRESS)
        started = await store_call(
            request, self.actions.start, query, partial_fraction=decision.action_partial_fraction
        )
        if started.action is None:
            record_fault(request, None)
            return error_response(412, SAME_FILTER_IN_PROGRESS)
        self.runner.wake()
        labels = []
        if decision.action_fault == "start_lost":
            labels.append("start_lost")
        if decision.action_partial_fraction is not None:
            labels.append("action_partial")
        record_fault(request, "+".join(labels) or None)
        action_id: str = started.action["actionId"]
        if decision.action_fault == "start_lost":
            return error_response(429, STILL_IN_PROGRESS)
        if asynchronous:
            return JSONResponse({"actionId": action_id}, status_code=202)
        cancelled = await self._wait(request, action_id)
        if cancelled is None:
            return error_response(429, STILL_IN_PROGRESS)
        return JSONResponse({"cancelled": cancelled})

    async def _wait(self, request: Request, action_id: str) -> int | None:
        """Wait up to :attr:`sync_wait` for the action; its ``cancelled`` count, or ``None`` if still running."""
        deadline = time.monotonic() + self.sync_wait
        pause = 0.005
        while True:
            status = await store_call(request, self.actions.status, action_id)
            if status is not None and status[0] == "FINISHED":
                return status[1]
            remaining = deadline - time.monotonic()
            if status is None or remaining <= 0:
                return None
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 1.5, 0.05)

    async def list_actions(self, request: Request) -> Response:
        """``{"bulkActions": [...], "cursor"?}``; ``count`` 1..1000 (default 100), ``state``, ``cursor``."""
        params = request.query_params
        try:
            raw_count = params.get("count")
            count = (
                DEFAULT_LIST_COUNT
                if raw_count is None
                else parse_integer("count", raw_count, minimum=1, maximum=MAX_LIST_COUNT)
            )
            raw_cursor = params.get("cursor")
            cursor = None if raw_cursor in (None, "") else parse_integer("cursor", raw_cursor, minimum=0)
        except QueryError as exc:
            return error_response(400, str(exc))
        state = params.get("state")
        if state is not None and state not in ACTION_STATES:
            return error_response(400, f"state must be one of {list(ACTION_STATES)}, got {state!r}")
        page = await store_call(request, self.actions.page, cursor=cursor, count=count, state=state)
        body: dict[str, Any] = {"bulkActions": page.actions}
        if page.cursor is not None:
            body["cursor"] = page.cursor
        return JSONResponse(body)

    async def get_action(self, request: Request) -> Response:
        """The ``BulkAction``, 404 if unknown (or older than 7 days)."""
        action_id = request.path_params["actionId"]
        action = await store_call(request, self.actions.get, action_id)
        if action is None:
            return error_response(404, f"bulk action {action_id} not found")
        return JSONResponse(action)


def make_bulk_cancel(
    mode: str, actions: ActionStore, *, action_rate: float = DEFAULT_ACTION_RATE, sync_wait: float = DEFAULT_SYNC_WAIT
) -> BulkCancelMode:
    """The strategy for ``mode`` (``"actions"`` or ``"legacy"``).

    :raises ValueError: for another mode, or an invalid rate or wait.
    """
    if mode == ActionsBulkCancel.name:
        return ActionsBulkCancel(actions, rate=action_rate, sync_wait=sync_wait)
    if mode == LegacyBulkCancel.name:
        if not 0 < action_rate < math.inf or not 0 <= sync_wait < math.inf:
            raise ValueError("action_rate must be finite and > 0, sync_wait finite and >= 0")
        return LegacyBulkCancel(actions)
    raise ValueError(f"bulk_cancel must be one of {list(BULK_CANCEL_MODES)}, got {mode!r}")


__all__ = [
    "BULK_CANCEL_MODES",
    "DEFAULT_SYNC_WAIT",
    "ActionsBulkCancel",
    "BulkCancelMode",
    "LegacyBulkCancel",
    "make_bulk_cancel",
]
