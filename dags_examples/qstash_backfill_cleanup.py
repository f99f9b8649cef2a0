"""
Backfill cleanup: clean history window by window.

``catchup=True`` with a per-day data interval lets ``airflow backfill create --dag-id
qstash_backfill_cleanup --from-date 2026-10-01 --to-date 2026-10-31`` (or the UI's backfill) create one
run per day; each run cancels only the messages created inside its own day, so runs can go in parallel,
fail and be retried independently. On today's hosted QStash each run is one background bulk action over
its day, followed to ``FINISHED``, then a confirming cancel that finds nothing; a retry while the action
still runs joins it instead of starting another. ``batch_size`` is left at its default: only a server
that honours ``count`` uses it.

On a SQLite metadata database (``airflow standalone``) Airflow can refuse the backfill with ``503 Database
is locked`` when the scheduler writes at the same moment; it removes what it had created, so submit the
same backfill again.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_qstash.operators.qstash import QStashBulkCancelOperator

# [START howto_operator_qstash_backfill_cleanup]
with DAG(
    dag_id="qstash_backfill_cleanup",
    description="Per-day QStash cleanup of the 'import-job' messages, built for backfills over history.",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 10, 1, tz="UTC"),
    catchup=True,
    max_active_runs=3,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["qstash", "example"],
):
    QStashBulkCancelOperator(
        task_id="cancel_window",
        labels=["import-job"],
        from_date="{{ data_interval_start }}",
        to_date="{{ data_interval_end }}",
        max_batches=500,  # rounds: requests of 500 on a count-honouring server, bulk actions on hosted QStash
    )
# [END howto_operator_qstash_backfill_cleanup]
