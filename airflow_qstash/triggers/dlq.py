"""QStashDLQTrigger: a DLQ operator's delete or retry run, driven asynchronously in the triggerer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_qstash.filters import DLQFilter
from airflow_qstash.hooks.qstash import QStashAsyncHook
from airflow_qstash.runs.dlq import DLQRun, make_run
from airflow_qstash.runs.dlq_preview import DLQPreview
from airflow_qstash.triggers._common import drive_to_event


class QStashDLQTrigger(BaseTrigger):
    """
    Delete or retry the DLQ entries a filter selects, on the triggerer's event loop: on today's QStash
    an async bulk action followed by id to ``FINISHED`` and a confirming round (``dlq_ids``: ``/multi``);
    on an older server list their ``dlqId`` (``GET /v2/dlq``, 100 a page) and act on exactly those ids
    (see :class:`~airflow_qstash.runs.dlq.DLQRun`); then fire exactly one event (``status`` ``success`` with the
    run's summary, or ``error`` with the message and the totals so far). Listed ids (paging only) are held
    in the triggerer's memory, about 130 bytes each. A restarted trigger starting the same bulk action
    again meets "identical filters return the existing action" and follows it.

    The filter arrives validated and normalised by the operator (``to_date`` pinned); the trigger does
    not read templates. It drives the same sans-IO run as the worker (:mod:`airflow_qstash.runs.dlq`) with
    :class:`~airflow_qstash.hooks.qstash.QStashAsyncHook`. The token is never serialised: only the
    connection id travels, and the retry overrides are ``Upstash-*`` headers only (validated again here).

    A triggerer restart runs the trigger again from the start, which is safe: deleted or retried entries
    have left the DLQ, so the new run only acts on what is left (the event's totals then cover the run
    since the restart). The restarted run lists again: entries that landed in the DLQ between the first
    listing and the restart (and that the filter selects) are then part of its set.

    :param action: ``"delete"`` or ``"retry"``.
    :param qstash_conn_id: the ``qstash`` connection.
    :param dlq_filter: :meth:`~airflow_qstash.filters.DLQFilter.to_dict` of the validated filter.
    :param max_requests: the most requests the run may send.
    :param resume_action_ids: bulk actions an earlier try of the task started (from the task state store):
        the run re-attaches to the last one by id before starting any; the event's ``action_ids`` go back
        to the store.
    :param dry_run: list what the filter selects and act on nothing
        (:class:`~airflow_qstash.runs.dlq_preview.DLQPreview`); the event carries the preview's summary.
    :param options: the run's own options, :meth:`~airflow_qstash.runs.dlq.DLQRun.options` (``batch_size`` for
        a delete, ``headers`` for a retry).
    """

    def __init__(
        self,
        *,
        action: str,
        qstash_conn_id: str,
        dlq_filter: dict[str, Any],
        max_requests: int,
        options: dict[str, Any] | None = None,
        dry_run: bool = False,
        resume_action_ids: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.action = action
        self.qstash_conn_id = qstash_conn_id
        self.dlq_filter = dlq_filter
        self.max_requests = max_requests
        self.options = dict(options or {})
        self.dry_run = dry_run
        self.resume_action_ids = list(resume_action_ids or ())

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "action": self.action,
                "qstash_conn_id": self.qstash_conn_id,
                "dlq_filter": self.dlq_filter,
                "max_requests": self.max_requests,
                "options": self.options,
                "dry_run": self.dry_run,
                "resume_action_ids": self.resume_action_ids,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        def start() -> DLQRun | DLQPreview:
            dlq_filter = DLQFilter.from_dict(self.dlq_filter)
            if self.dry_run:
                return DLQPreview(self.action, dlq_filter, max_requests=self.max_requests)
            run = make_run(self.action, dlq_filter, max_requests=self.max_requests, **self.options)
            run.resume_action_ids = list(self.resume_action_ids)
            return run

        yield await drive_to_event(
            QStashAsyncHook(qstash_conn_id=self.qstash_conn_id),
            start,
            lambda run, config: run.steps(config.base_url, log=self.log, poll_interval_max=config.poll_interval_max),
            what=f"DLQ {self.action}",
        )


__all__ = ["QStashDLQTrigger"]
