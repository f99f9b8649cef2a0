"""
Replay after an incident, from the Airflow UI: "Trigger DAG" shows a form; the run retries the
dead-letter-queue entries the form selects (QStash publishes each again and removes it from the DLQ).

Every field may stay blank, and a blank field means "no such filter" (``optional_filters``); none is
marked required. The rule that keeps this safe: with every filter blank the task fails before any
request, because this DAG never sets ``retry_all``: an empty form can never replay the whole DLQ. The
run first lists the ``dlqId`` of every entry the form selects, then retries exactly those ids, so
entries that fail (again) during the replay are not replayed by it: a DLQ entry keeps the original
message's ``createdAt``, so the window's end alone could not keep them out. ``Upstash-Retries`` of the
replayed messages can be overridden (e.g. 0: one delivery attempt, straight back to the DLQ if the
destination still fails).

"Preview only" is on by default: such a run replays nothing, it lists what the form selects (how many
entries, how many per response status, a sample of 20 ids and URLs) in the task log and its XCom
(``dry_run``). Look, then trigger again with the switch off to replay.

The bound ("Max requests") sits in a collapsed "Advanced" section of the Trigger form
(``section="Advanced"``; Airflow 3's UI opens only the first section); blank, it is 100,000 requests.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_qstash.operators.dlq import QStashDLQRetryOperator

#: The Trigger form's collapsed section: the bounds, each with a safe default.
ADVANCED = "Advanced"

PARAMS = {
    "preview_only": Param(
        True,
        type="boolean",
        title="Preview only",
        description=(
            "On: list what the form selects (count, per response status, a sample of ids and URLs) and replay "
            "nothing. Off: replay the selection."
        ),
    ),
    "labels": Param(
        None,
        type=["null", "array"],
        items={"type": "string"},
        title="Labels",
        description="Replay entries with any of these labels (one per line). Blank: any label.",
    ),
    "response_statuses": Param(
        None,
        type=["null", "array"],
        items={"type": "integer", "minimum": 100, "maximum": 599},
        title="Response statuses",
        description="Replay entries whose last delivery got one of these HTTP statuses (e.g. 500, 503).",
    ),
    "from_date": Param(
        None,
        type=["null", "string"],
        format="date-time",
        title="Failed from",
        description="Only entries dated at or after this time (UTC), e.g. the incident's start.",
    ),
    "to_date": Param(
        None,
        type=["null", "string"],
        format="date-time",
        title="Failed until",
        description="Only entries dated at or before this time (UTC). Blank: up to the run's start.",
    ),
    "retries": Param(
        None,
        type=["null", "integer"],
        minimum=0,
        title="Retries of the replayed messages",
        description="Sent as Upstash-Retries. Blank: each message keeps its own setting.",
    ),
    "max_requests": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        title="Max requests",
        section=ADVANCED,
        description=(
            "The most requests the replay sends; reaching it with entries left fails the task, and a retry "
            "continues. Empty: 100,000."
        ),
    ),
}

with DAG(
    dag_id="qstash_dlq_replay",
    description="Replay the QStash DLQ entries chosen in the Trigger form (after an incident).",
    schedule=None,
    params=PARAMS,
    tags=["qstash", "example", "dlq"],
):
    # [START howto_operator_qstash_dlq_replay]
    QStashDLQRetryOperator(
        task_id="replay_selected_entries",
        labels="{{ params.labels }}",
        response_statuses="{{ params.response_statuses }}",
        from_date="{{ params.from_date }}",
        to_date="{{ params.to_date }}",
        override_retries="{{ params.retries }}",
        max_requests="{{ params.max_requests }}",
        dry_run="{{ params.preview_only }}",
        optional_filters=["labels", "response_statuses", "from_date", "to_date", "override_retries"],
    )
    # [END howto_operator_qstash_dlq_replay]
