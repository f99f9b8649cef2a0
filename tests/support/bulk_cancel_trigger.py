"""A :class:`QStashBulkCancelTrigger` as the trigger tests build it, and a driver of its event generator."""

from __future__ import annotations

import asyncio
from typing import Any

from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger

TO_DATE_MS = 1_717_243_200_123
FROM_DATE_MS = 1_714_521_600_000


def filter_dict(**values: Any) -> dict[str, Any]:
    values.setdefault("labels", ["report"])
    values.setdefault("from_date", FROM_DATE_MS)
    values.setdefault("to_date", TO_DATE_MS)
    return BulkCancelFilter.build(**values).to_dict()


def make_trigger(**kwargs: Any) -> QStashBulkCancelTrigger:
    kwargs.setdefault("qstash_conn_id", "qstash_default")
    kwargs.setdefault("bulk_filter", filter_dict())
    kwargs.setdefault("batch_size", 500)
    return QStashBulkCancelTrigger(**kwargs)


def collect(trigger: QStashBulkCancelTrigger) -> list[Any]:
    """Every event the trigger yields, until its generator ends."""

    async def drain() -> list[Any]:
        return [event async for event in trigger.run()]

    return asyncio.run(drain())
