"""
The DLQ data set of the operators' emulator tests, and how those tests run an operator and read the log.

:func:`dataset` puts :data:`N_MATCHING` entries that :data:`FILTERS` selects among entries just outside each
of its bounds.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from qstash_emulator import QStashEmulator

FROM_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
TO_MS = FROM_MS + 7 * 86_400_000 - 1  # the end of that week, inclusive
#: The task start of every run over the data set.
TASK_START = pendulum.datetime(2024, 6, 1, tz="UTC")
N_MATCHING = 345


def dataset() -> tuple[list[dict[str, Any]], set[str]]:
    """DLQ entries and the dlqIds of the ones ``labels=report, response_statuses=[500, 503]`` in the week select.

    Not selected: the same label one millisecond outside either bound, another status inside the window,
    another label, no label.
    """
    entries: list[dict[str, Any]] = []
    matching: set[str] = set()
    for i in range(N_MATCHING):
        dlq_id = f"dlq-match-{i:05d}"
        created = FROM_MS if i == 0 else TO_MS if i == 1 else FROM_MS + i * 1_000
        status = 500 if i % 2 else 503
        entries.append(dlq_entry(dlq_id, created, status, ["report", "extra"] if i % 5 == 0 else ["report"]))
        matching.add(dlq_id)
    entries += [
        dlq_entry("dlq-before", FROM_MS - 1, 500, ["report"]),
        dlq_entry("dlq-after", TO_MS + 1, 500, ["report"]),
        *[dlq_entry(f"dlq-404-{i}", FROM_MS + i, 404, ["report"]) for i in range(20)],
        *[dlq_entry(f"dlq-other-{i}", FROM_MS + i, 500, ["other"]) for i in range(20)],
        *[dlq_entry(f"dlq-nolabel-{i}", FROM_MS + i, 500, None) for i in range(10)],
    ]
    return entries, matching


def dlq_entry(dlq_id: str, created: int, status: int, labels: list[str] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "dlqId": dlq_id,
        "url": f"https://dest.example/{dlq_id}",
        "createdAt": created,
        "responseStatus": status,
        "maxRetries": 3,
    }
    if labels:
        entry["labels"] = labels
    return entry


FILTERS = {"labels": ["report"], "response_statuses": [500, 503], "from_date": FROM_MS, "to_date": TO_MS}


def run_operator(op: Any, deferrable: bool) -> dict[str, Any]:
    """Execute ``op``; when it defers, run its trigger to its one event and complete the task with it."""
    context = {"ti": SimpleNamespace(start_date=TASK_START)}
    if not deferrable:
        return dict(op.execute(context))
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)

    async def drain() -> list[Any]:
        return [event async for event in info.value.trigger.run()]

    events = asyncio.run(drain())
    assert len(events) == 1
    return dict(op.execute_complete(context, events[0].payload))


def v2_requests(emu: QStashEmulator, method: str, path: str) -> list[dict[str, Any]]:
    return [r for r in emu.request_log() if (r["method"], r["path"]) == (method, path)]
