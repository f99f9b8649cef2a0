"""The DLQ operators as tasks without a metadata DB: their task start, the task context, and rendering."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pendulum

from airflow_qstash.operators.dlq import QStashDLQDeleteOperator, QStashDLQRetryOperator

#: The task instance's start (what an unset ``to_date`` is pinned to) and the same instant in Unix ms.
TASK_START = pendulum.datetime(2026, 11, 2, 3, 0, 0, 250000, tz="UTC")
TASK_START_MS = 1_793_588_400_250
OPERATORS = [QStashDLQDeleteOperator, QStashDLQRetryOperator]


def ti_context(**extra: Any) -> dict[str, Any]:
    return {"ti": SimpleNamespace(start_date=TASK_START), **extra}


def rendered(op: Any, **template_context: Any) -> Any:
    op.render_template_fields(ti_context(**template_context))
    return op
