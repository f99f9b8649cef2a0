"""
The operator task the properties run (:func:`run_task`): render, execute and, on the deferrable path, run
the trigger and resume, as Airflow would; shared by the input properties and the loop-progress properties.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_qstash.operators.dlq import QStashDLQDeleteOperator, QStashDLQRetryOperator
from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from tests.doubles.harness import NOW_MS
from tests.integration.properties import strategies as s
from tests.support.trigger_events import first_event

CONN_ID = "qstash_prop_op"
TASK_START = pendulum.from_timestamp(NOW_MS / 1000, tz="UTC")
OPERATORS = {
    "cancel": (QStashBulkCancelOperator, s.MESSAGE_TABLE, "cancel_all"),
    "dlq_delete": (QStashDLQDeleteOperator, s.DLQ_TABLE, "delete_all"),
    "dlq_retry": (QStashDLQRetryOperator, s.DLQ_TABLE, "retry_all"),
}


def run_task(case: dict[str, Any]) -> tuple[Any, list[Any], BaseException | None]:
    """Render, execute (and on the deferrable path run the trigger and resume); returns XCom, events, error."""
    cls = OPERATORS[case["kind"]][0]
    events: list[Any] = []
    context: Any = {"ti": SimpleNamespace(start_date=TASK_START), **case["context"]}
    try:
        op = cls(task_id="prop", qstash_conn_id=CONN_ID, deferrable=case["deferrable"], **case["kwargs"])
        op.render_template_fields(context)
        try:
            return op.execute(context), events, None
        except TaskDeferred as deferred:
            _, trigger_kwargs = deferred.trigger.serialize()
            trigger = type(deferred.trigger)(**json.loads(json.dumps(trigger_kwargs)))
            events.append(asyncio.run(first_event(trigger)))
            return getattr(op, deferred.method_name)(context, events[-1]), events, None
    except Exception as err:
        return None, events, err
