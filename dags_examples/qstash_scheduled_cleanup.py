"""
Scheduled cleanup: every night, cancel yesterday's still-pending report messages.

``CronDataIntervalTimetable`` gives each run the previous day as its data interval. (A plain
``schedule="@daily"`` uses Airflow 3's CronTriggerTimetable, whose ``data_interval_start`` equals
``data_interval_end``: the operator refuses that zero-width window instead of cancelling nothing.)

On today's hosted QStash a run is one background bulk action over yesterday's matching messages, which
the task follows to ``FINISHED`` (its log shows the action id and progress on every poll), then one more
cancel that must find nothing; the XCom says ``mode: "bulk_action"`` and lists the ``action_ids``. On a
server that honours ``count`` (an older local dev server) the same task cancels in batches of 500 until
one cancels zero (``mode: "batched"``). ``max_batches`` bounds the rounds either way: requests in batches,
bulk actions on hosted QStash (a normal run uses two).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_qstash.operators.qstash import QStashBulkCancelOperator

# [START howto_operator_qstash_scheduled_cleanup]
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
# [END howto_operator_qstash_scheduled_cleanup]
