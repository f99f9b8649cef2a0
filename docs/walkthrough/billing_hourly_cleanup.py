"""
The walkthrough's own DAG (docs/walkthrough.rst): every hour, cancel the pending QStash messages labelled
``billing`` that were created in the previous hour.

``CronDataIntervalTimetable`` gives each run the hour before it as its data interval, so
``{{ data_interval_start }}``..``{{ data_interval_end }}`` is that hour (both bounds inclusive). The
walkthrough runs it with ``airflow dags test`` against the local emulator; tests/integration/docs/test_walkthrough.py
runs the page's commands and this file, so the page cannot drift from what works.
"""

from __future__ import annotations

# [START walkthrough_billing_hourly_cleanup]
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_qstash.operators.qstash import QStashBulkCancelOperator

with DAG(
    dag_id="billing_hourly_cleanup",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),  # each run covers the hour before it
    start_date=pendulum.datetime(2025, 12, 1, tz="UTC"),
    catchup=False,
):
    QStashBulkCancelOperator(
        task_id="cancel_billing_messages",
        labels=["billing"],  # only this label; every other message is left alone
        from_date="{{ data_interval_start }}",  # both bounds inclusive
        to_date="{{ data_interval_end }}",
    )
# [END walkthrough_billing_hourly_cleanup]
