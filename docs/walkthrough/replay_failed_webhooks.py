"""
The walkthrough's DLQ replay (docs/walkthrough.rst): retry the dead-letter-queue entries labelled
``webhooks`` whose last delivery got a 500 or a 503, and leave the others (a 404 will not get better by
retrying). QStash publishes each selected entry again and removes it from the DLQ.

Triggered by hand (``schedule=None``); tests/integration/docs/test_walkthrough.py runs it against the emulator.
"""

from __future__ import annotations

# [START walkthrough_replay_failed_webhooks]
import pendulum
from airflow.providers.common.compat.sdk import DAG

from airflow_qstash.operators.dlq import QStashDLQRetryOperator

with DAG(
    dag_id="replay_failed_webhooks",
    schedule=None,  # run by hand, after the incident
    start_date=pendulum.datetime(2025, 12, 1, tz="UTC"),
):
    QStashDLQRetryOperator(
        task_id="retry_server_errors",
        labels=["webhooks"],
        response_statuses=[500, 503],  # the destination's answer when it last failed
        override_retries=3,  # the replayed messages get 3 retries each (Upstash-Retries)
    )
# [END walkthrough_replay_failed_webhooks]
