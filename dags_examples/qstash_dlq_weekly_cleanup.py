"""
Weekly DLQ cleanup: every Monday, delete the dead-letter-queue entries of the previous week for a few
labels, once whoever looks at failures has had a week to replay what mattered.

``CronDataIntervalTimetable`` gives each run the previous week as its data interval, so each run deletes
exactly its own week (both bounds inclusive). (A plain cron ``schedule`` uses Airflow 3's
CronTriggerTimetable, whose ``data_interval_start`` equals ``data_interval_end``: the operator refuses
that zero-width window instead of deleting nothing.) A retry, or a re-run of the same week, is safe:
deleted entries are gone.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_qstash.operators.dlq import QStashDLQDeleteOperator

# [START howto_operator_qstash_dlq_weekly_cleanup]
with DAG(
    dag_id="qstash_dlq_weekly_cleanup",
    description="Weekly: delete the previous week's QStash DLQ entries of the import and report jobs.",
    schedule=CronDataIntervalTimetable("0 3 * * 1", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 5, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["qstash", "example", "dlq"],
):
    QStashDLQDeleteOperator(
        task_id="delete_last_weeks_dlq_entries",
        labels=["import-job", "daily-report"],
        from_date="{{ data_interval_start }}",
        to_date="{{ data_interval_end }}",
        batch_size=100,
        max_requests=10_000,
    )
# [END howto_operator_qstash_dlq_weekly_cleanup]
