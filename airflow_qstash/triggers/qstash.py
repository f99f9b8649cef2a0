"""QStashBulkCancelTrigger: the operator's batch loop, run asynchronously in the triggerer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_qstash.batching import BulkCancelIncomplete, BulkCancelRun
from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.hooks.qstash import QStashAsyncHook, QStashError


class QStashBulkCancelTrigger(BaseTrigger):
    """
    Cancel in batches until one cancels zero, on the triggerer's event loop, then fire one event.

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
    :param max_batches: the most requests to make, or ``None``.
    """

    def __init__(
        self,
        *,
        qstash_conn_id: str,
        bulk_filter: dict[str, Any],
        batch_size: int,
        max_batches: int | None = None,
    ) -> None:
        super().__init__()
        self.qstash_conn_id = qstash_conn_id
        self.bulk_filter = bulk_filter
        self.batch_size = batch_size
        self.max_batches = max_batches

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "qstash_conn_id": self.qstash_conn_id,
                "bulk_filter": self.bulk_filter,
                "batch_size": self.batch_size,
                "max_batches": self.max_batches,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        run = BulkCancelRun(
            BulkCancelFilter.from_dict(self.bulk_filter), batch_size=self.batch_size, max_batches=self.max_batches
        )
        hook = QStashAsyncHook(qstash_conn_id=self.qstash_conn_id)
        try:
            while run.wants_more():
                try:
                    run.record(await hook.bulk_cancel_by_filter(run.bulk_filter, run.batch_size))
                except QStashError as err:
                    raise run.incomplete(f"batch {run.batches + 1} failed: {err}") from err
                self.log.info(*run.progress_line())
        except BulkCancelIncomplete as err:
            yield TriggerEvent({"status": "error", "message": str(err), **err.summary})
            return
        except (AirflowException, ValueError) as err:  # a missing connection too: still one event
            yield TriggerEvent({"status": "error", "message": f"QStash bulk cancel failed: {err}", **run.summary()})
            return
        finally:
            await hook.aclose()
        yield TriggerEvent({"status": "success", **run.summary()})
