"""
Replay failed deliveries when they arrive (Airflow 3 event-driven scheduling): an ``AssetWatcher`` with
:class:`~airflow_qstash.triggers.dlq_events.QStashDLQEventTrigger` watches the dead-letter queue for
entries labelled ``billing``; each new batch is an asset event that starts a run, and the run retries
exactly the DLQ entries its events announced (``dlq_ids``), nothing else.

The safety model: the run acts on ids only, never on a filter, so entries that arrived after the
announcement wait for their own event; a run without an announcing event (a manual run) is skipped
before any request. A repeated announcement (after a triggerer restart) is harmless: the entries a first
run retried have left the DLQ and the retry skips vanished ids. ``Upstash-Retries`` is 0 here: one
delivery attempt, straight back to the DLQ (as a new entry, announced again) if the destination still fails.

On Airflow 2 (no ``AssetWatcher``) the DAG has no schedule and every run is skipped.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import DAG, AirflowSkipException, Asset, task

from airflow_qstash.operators.dlq import QStashDLQRetryOperator
from airflow_qstash.triggers.dlq_events import EVENT_TRIGGERS_SUPPORTED, QStashDLQEventTrigger, announced_dlq_ids

ASSET_NAME = "qstash_dlq_billing"
schedule: Any = None
FAILED_BILLING_DELIVERIES: Any = None
if EVENT_TRIGGERS_SUPPORTED:
    from airflow.sdk import AssetWatcher

    # [START howto_trigger_qstash_dlq_events]
    FAILED_BILLING_DELIVERIES = Asset(
        ASSET_NAME,
        watchers=[
            AssetWatcher(
                name="qstash_dlq_billing_watcher",
                trigger=QStashDLQEventTrigger(
                    filters={"labels": ["billing"]},
                    poll_interval=60,  # one GET /v2/dlq a minute (up to max_pages when the DLQ is long)
                    max_pages=10,
                    max_ids_per_event=100,  # a larger batch comes as several events, each with all its ids
                ),
            )
        ],
    )
    # [END howto_trigger_qstash_dlq_events]
    schedule = [FAILED_BILLING_DELIVERIES]

with DAG(
    dag_id="qstash_dlq_events",
    description="Replay exactly the QStash DLQ entries a DLQ event announced.",
    schedule=schedule,
    tags=["qstash", "example", "dlq"],
):
    # [START howto_operator_qstash_dlq_events]
    @task
    def announced_ids(**context: Any) -> list[str]:
        """The ids the run's triggering events announced; no event, no action."""
        events = context.get("triggering_asset_events") or {}
        ids = announced_dlq_ids(event for asset in events for event in events[asset])
        if not ids:
            raise AirflowSkipException("No QStashDLQEventTrigger event started this run: nothing to replay.")
        return ids

    QStashDLQRetryOperator(
        task_id="replay_announced_entries",
        dlq_ids=announced_ids(),
        override_retries=0,
    )
    # [END howto_operator_qstash_dlq_events]
