"""QStashBulkCancelTrigger: the operator's round loop, run asynchronously in the triggerer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.hooks.qstash import QStashAsyncHook
from airflow_qstash.inputs import DEFAULT_ACTION_TIMEOUT, DEFAULT_MAX_REQUESTS
from airflow_qstash.runs.bulk_cancel import BulkCancelRun
from airflow_qstash.triggers._common import drive_to_event


class QStashBulkCancelTrigger(BaseTrigger):
    """
    Cancel in rounds until a round finds nothing left (a batch that cancels 0, or a bulk action whose
    ``total`` is 0), on the triggerer's event loop, then fire one event. Rounds that leave as much as the
    one before stop the run after :data:`~airflow_qstash.runs.common.MAX_ROUNDS_WITHOUT_PROGRESS` (an
    ``error`` event naming what is left).

    A round is a batch on a server that honours ``count``, or a bulk action followed to ``FINISHED`` with
    polls (today's hosted QStash); a triggerer restart re-sends the same filter, and the server's 412 for
    the action still running makes the new run join it.

    The filter arrives already validated and normalised by the operator (``to_date`` pinned); the
    trigger does not re-read templates. It uses :class:`~airflow_qstash.hooks.qstash.QStashAsyncHook`,
    which shares the synchronous hook's encoding, answer reading and retry policy. The token is never
    serialised: only the connection id travels.

    A triggerer restart runs the trigger again from the start. That is safe for bulk cancel: messages
    already cancelled are gone, so the new run only counts what is left (the event's totals then cover
    the run since the restart).

    :param qstash_conn_id: the ``qstash`` connection.
    :param bulk_filter: :meth:`BulkCancelFilter.to_dict` of the validated filter.
    :param batch_size: messages per request, 1..500.
    :param max_batches: the most rounds (requests on a batched server, bulk actions on today's QStash).
    :param action_timeout: the longest one bulk action is followed, in seconds.
    :param resume_action_ids: bulk actions an earlier try of the task started (the operator read them from
        the task state store): the run re-attaches to the last one by id before starting any. The event
        carries every action followed (``action_ids``), which the operator stores.
    """

    def __init__(
        self,
        *,
        qstash_conn_id: str,
        bulk_filter: dict[str, Any],
        batch_size: int,
        max_batches: int = DEFAULT_MAX_REQUESTS,
        action_timeout: float = DEFAULT_ACTION_TIMEOUT,
        resume_action_ids: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.qstash_conn_id = qstash_conn_id
        self.bulk_filter = bulk_filter
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.action_timeout = action_timeout
        self.resume_action_ids = list(resume_action_ids or ())

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "qstash_conn_id": self.qstash_conn_id,
                "bulk_filter": self.bulk_filter,
                "batch_size": self.batch_size,
                "max_batches": self.max_batches,
                "action_timeout": self.action_timeout,
                "resume_action_ids": self.resume_action_ids,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        def start() -> BulkCancelRun:
            return BulkCancelRun(
                BulkCancelFilter.from_dict(self.bulk_filter),
                batch_size=self.batch_size,
                max_batches=self.max_batches,
                action_timeout=self.action_timeout,
                resume_action_ids=list(self.resume_action_ids),
            )

        yield await drive_to_event(
            QStashAsyncHook(qstash_conn_id=self.qstash_conn_id),
            start,
            lambda run, config: run.steps(config.base_url, poll_interval_max=config.poll_interval_max, log=self.log),
            what="bulk cancel",
        )
