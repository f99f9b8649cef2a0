"""
Scheduled cleanup: every night, cancel yesterday's still-pending report messages.

``CronDataIntervalTimetable`` gives each run the previous day as its data interval. (A plain
``schedule="@daily"`` uses Airflow 3's CronTriggerTimetable, whose ``data_interval_start`` equals
``data_interval_end``: the operator refuses that zero-width window instead of cancelling nothing.)
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_qstash.operators.qstash import QStashBulkCancelOperator

with DAG(
    dag_id="qstash_scheduled_cleanup",
    description="Nightly: cancel pending QStash report messages created during the previous day.",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["qstash", "example"],
):
    QStashBulkCancelOperator(
        task_id="cancel_stale_report_messages",
        labels=["daily-report"],
        from_date="{{ data_interval_start }}",
        to_date="{{ data_interval_end }}",
        max_batches=1000,
    )
