"""
One cleanup per tenant: a mapped fan-out of bulk cancels, one task per tenant label.

Each tenant tags its QStash messages with its own label. Trigger the DAG with the tenants to clean up
(the form's two lists, or ``conf``); dynamic task mapping
(``QStashBulkCancelOperator.partial(...).expand(labels=...)``) makes one task per label, so every
tenant's cleanup is its own task instance: its own log, state, retry and XCom summary, shown under the
tenant's label in the UI. On a scaled-out Airflow (CeleryExecutor or KubernetesExecutor, several
workers and triggerers) the tasks run in parallel across them.

- ``tenants``: cancelled in a worker slot, batch by batch (small tenants: over in a few requests).
- ``large_tenants``: ``deferrable=True``; the task hands the batch loop to a triggerer at once and
  frees its worker slot, so long cleanups do not hold workers. If a triggerer stops, another one picks
  the trigger up and runs it again from the start, which is safe: cancelled messages are gone.

Every mapped task gets a one-element list, never a bare string, so a label is always exactly one label.
Each run cancels the messages created up to the task's start (``to_date`` is pinned there): messages
the tenants publish meanwhile wait for the next run. Re-running is safe.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_qstash.operators.qstash import QStashBulkCancelOperator

_LABELS = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "pattern": "^[^,]+$"},
    "uniqueItems": True,
}

PARAMS = {
    "tenants": Param([], **_LABELS, title="Tenant labels", description="One cleanup task per label, run in a worker."),
    "large_tenants": Param(
        [],
        **_LABELS,
        title="Large tenant labels",
        description="One deferrable cleanup task per label, run in a triggerer.",
    ),
    "batch_size": Param(500, type="integer", minimum=1, maximum=500, title="Batch size"),
}


@task
def one_label_per_task(param: str, params: dict[str, Any] | None = None) -> list[list[str]]:
    """The labels of the ``param`` list, each as a one-label list: one mapped task per tenant."""
    labels = (params or {})[param]
    return [[label] for label in labels]


with DAG(
    dag_id="qstash_mapped_fanout",
    description="Cancel each tenant's pending QStash messages: one mapped task per tenant label.",
    schedule=None,
    params=PARAMS,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["qstash", "example"],
):
    # [START howto_operator_qstash_mapped_fanout]
    QStashBulkCancelOperator.partial(
        task_id="cancel_tenant",
        batch_size="{{ params.batch_size }}",
        map_index_template="{{ task.labels | join(',') }}",
    ).expand(labels=one_label_per_task.override(task_id="tenant_labels")("tenants"))

    QStashBulkCancelOperator.partial(
        task_id="cancel_large_tenant",
        batch_size="{{ params.batch_size }}",
        map_index_template="{{ task.labels | join(',') }}",
        deferrable=True,
    ).expand(labels=one_label_per_task.override(task_id="large_tenant_labels")("large_tenants"))
    # [END howto_operator_qstash_mapped_fanout]
