"""
The join policy: when a run follows a bulk action that it did not start itself.

Re-running is always safe because a run re-attaches to an action instead of starting a second one over
the same messages or entries:

* by the id an earlier try stored (:func:`resume_action_id`): both runs follow that action first;
* a bulk cancel whose start meets an identical running cancel (412, or a 429 without rate-limit
  headers) lists the bulk actions and joins the one with its filter (:func:`start_or_join`,
  :func:`joinable_action`), or tries the start again after a pause, a bounded number of times;
* a DLQ ``/bulk`` start that meets an identical running action gets that action back from the server
  ("identical filters submitted while an action is already in-progress return the existing action");
  :func:`joined_by_server` tells the log whether that happened.

Nothing here sends a request: :func:`start_or_join` is a sans-IO procedure over
:mod:`airflow_qstash.protocol.messages`, imported when it runs (the operator module imports the runs at
DAG parse time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from airflow_qstash.exceptions import QStashActionConflict, QStashAPIError
from airflow_qstash.runs.common import DEFAULT_POLL_INTERVAL_MAX

if TYPE_CHECKING:
    from airflow_qstash.protocol.calls import Procedure
    from airflow_qstash.protocol.messages import BulkAction, BulkCancelAnswer

#: How often a conflicting start (412 / 429 without rate-limit headers) is tried when no matching action
#: can be found, and the first pause between tries (seconds, doubling up to the caller's ceiling).
CONFLICT_ATTEMPTS = 8
CONFLICT_BACKOFF = 1.0
#: A finished bulk action with our filter, created at most this long before the run started (server and
#: worker clocks differ), may be the one whose start answer was lost, and is joined.
JOIN_CLOCK_SKEW_MS = 5 * 60 * 1000


def resume_action_id(resume_action_ids: Iterable[str], action_ids: list[str]) -> str | None:
    """
    Joining by stored id: the actions an earlier try started join ``action_ids`` (never to be joined by
    filter again), and the last of them is the one to re-attach to; ``None`` when there is none.
    """
    resume = list(resume_action_ids)
    for action_id in resume:
        if action_id not in action_ids:
            action_ids.append(action_id)
    return resume[-1] if resume else None


def start_or_join(
    params: list[tuple[str, str]],
    *,
    max_pause: float = DEFAULT_POLL_INTERVAL_MAX,
    exclude: Iterable[str] = (),
    not_before_ms: int | None = None,
) -> Procedure[BulkCancelAnswer]:
    """
    Start one bulk cancel with these query parameters, or join the identical one that runs.

    When the server says an identical cancel is already running (412, or a 429 without rate-limit
    headers, e.g. after the one-minute wait of a cancel sent without ``async``), the bulk actions are
    listed and the one with our filter is joined (``joined``): the ``IN_PROGRESS`` one, or else, since a
    small action may finish before the listing, the newest ``FINISHED`` one created at or after
    ``not_before_ms`` that is not in ``exclude`` (the actions this run already followed). If none is found
    the start is tried again after a pause, at most :data:`CONFLICT_ATTEMPTS` times. A task never fails
    only because the server's wait ran out.

    :param params: the query, from :func:`~airflow_qstash.protocol.messages.bulk_cancel_requests`.
    :param max_pause: the ceiling of the pause between tries, in seconds.
    :param exclude: action ids never to join.
    :param not_before_ms: the earliest ``createdAt`` (Unix ms) of a finished action that may be joined;
        ``None`` joins only running actions.
    """
    from airflow_qstash.protocol.calls import Sleep
    from airflow_qstash.protocol.endpoints import IN_PROGRESS
    from airflow_qstash.protocol.messages import ActionStarted, filter_key, list_bulk_actions, start_bulk_cancel

    ours = filter_key(params)
    excluded = set(exclude)
    pause = min(CONFLICT_BACKOFF, max_pause)
    last: QStashActionConflict | None = None
    for attempt in range(CONFLICT_ATTEMPTS):
        if attempt:
            yield Sleep(pause)
            pause = min(pause * 2, max_pause)
        try:
            return (yield from start_bulk_cancel(params))
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


def joined_by_server(action_id: str, created_at: int | None, followed: Iterable[str], run_started_ms: int) -> bool:
    """
    Whether a DLQ ``/bulk`` start answered with an action this run did not start: one it already followed,
    or one created before the run started (an identical earlier request's, which the server returned).
    """
    return action_id in followed or (created_at is not None and created_at < run_started_ms)
