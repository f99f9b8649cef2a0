"""
A :class:`QStashBulkCancelOperator` task without a metadata DB, as the operator tests build, render and read
it: the task start every ``to_date`` is pinned to, the task context, and the query of a sent batch.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pendulum
import pytest

from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from tests.conftest import FAKE_BASE_URL

#: Where the bulk cancel sends its batches on the tests' connection.
BULK_URL = f"{FAKE_BASE_URL}/v2/messages"
#: The task instance's start (what an unset ``to_date`` is pinned to) and the same instant in Unix ms.
TASK_START = pendulum.datetime(2024, 6, 1, 12, 0, 0, 123456, tz="UTC")
TASK_START_MS = 1_717_243_200_123


def query_of(request: Any) -> list[tuple[str, str]]:
    """
    The filter and count of a recorded request, case preserved (requests-mock's ``qs`` lowercases values).

    The ``async=true`` flag of the bulk-action protocol is left out: tests/unit/hooks checks the wire.
    """
    return [(k, v) for k, v in parse_qsl(urlsplit(request.url).query, keep_blank_values=True) if k != "async"]


def sent_query(requests_mock: Any) -> list[tuple[str, str]]:
    """The (sorted) query of the single batch-sending request all rendering tests expect."""
    assert requests_mock.call_count == 1
    return sorted(query_of(requests_mock.request_history[0]))


def ti_context(**extra: Any) -> dict[str, Any]:
    """A minimal task context: a task instance with a start date, plus any template variables."""
    return {"ti": SimpleNamespace(start_date=TASK_START), **extra}


def make_op(**kwargs: Any) -> QStashBulkCancelOperator:
    kwargs.setdefault("task_id", "cancel")
    return QStashBulkCancelOperator(**kwargs)


def rendered(op: QStashBulkCancelOperator, **template_context: Any) -> QStashBulkCancelOperator:
    """Render the operator's templated fields the way a task run does (no metadata DB involved)."""
    op.render_template_fields(ti_context(**template_context))
    return op


def native_op(**kwargs: Any) -> QStashBulkCancelOperator:
    """An operator in a DAG that renders templates as native Python objects (``NativeEnvironment``)."""
    from airflow.providers.common.compat.sdk import DAG

    dag = DAG(f"native_{id(kwargs)}", schedule=None, render_template_as_native_obj=True)
    return QStashBulkCancelOperator(task_id="cancel", dag=dag, **kwargs)


ENVIRONMENTS = [pytest.param(make_op, id="sandboxed"), pytest.param(native_op, id="native")]
