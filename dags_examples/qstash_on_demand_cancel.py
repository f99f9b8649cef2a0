"""
On demand from the Airflow UI: "Trigger DAG" shows a form; the run cancels what the form selects.

Empty form fields are allowed and mean "no such filter": the task lists them in ``optional_filters``,
the operator's explicit "blank means any" (a templated filter that renders empty is refused otherwise).
An empty list is absent, an empty "from" means since the beginning, an empty "to" means up to the
task's start. The rule that keeps this safe: with every filter empty the task fails before any request
unless "cancel_all" is ticked, so a blank form can never cancel the whole account.

In the Trigger form only "Batch size" is required (Airflow marks a param required, with a red asterisk,
unless its schema type allows ``null``); every filter, the window, "Max batches", "Action timeout" and the
cancel-all switch may stay blank.

The form has two sections: the filters, the window and the cancel-all switch come first ("Run Parameters");
the knob that only matters on older servers ("Batch size") and the bounds ("Max batches", "Action
timeout") sit in a collapsed "Advanced" section (``section="Advanced"`` on their params; Airflow 3's UI
opens only the first section). Airflow 2.11 reads the same params.

Two DAGs share the form: ``qstash_on_demand_cancel`` runs the loop in a worker,
``qstash_on_demand_cancel_deferrable`` in the triggerer (``deferrable=True``).
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_qstash.operators.qstash import QStashBulkCancelOperator

#: A list of strings that may stay blank: "null" in the type is what keeps Airflow's asterisk off.
_STRINGS = {"type": ["null", "array"], "items": {"type": "string"}}
# [START howto_operator_qstash_on_demand_optional]
#: The form fields that may be left blank and then select nothing (everything but the loop settings).
FORM_FILTERS = ["labels", "queue_names", "url_groups", "urls", "from_date", "to_date"]
# [END howto_operator_qstash_on_demand_optional]
#: The Trigger form's collapsed section: the older-server knob and the bounds, each with a safe default.
ADVANCED = "Advanced"

PARAMS = {
    "labels": Param([], **_STRINGS, title="Labels", description="Cancel messages with any of these labels."),
    "queue_names": Param([], **_STRINGS, title="Queues", description="Only messages in these queues."),
    "url_groups": Param([], **_STRINGS, title="URL groups", description="Only messages sent to these URL groups."),
    "urls": Param([], **_STRINGS, title="Destination URLs", description="Only messages to these URLs."),
    "from_date": Param(
        None,
        type=["null", "string"],
        format="date-time",
        title="Created from",
        description="Only messages created at or after this time (UTC). Empty: since the beginning.",
    ),
    "to_date": Param(
        None,
        type=["null", "string"],
        format="date-time",
        title="Created until",
        description="Only messages created at or before this time (UTC). Empty: up to the run's start.",
    ),
    "cancel_all": Param(
        False,
        type=["null", "boolean"],
        title="Cancel ALL messages if no filter is given",
        description="Leave off unless you mean to cancel every pending message in the account.",
    ),
    "batch_size": Param(
        500,
        type="integer",
        minimum=1,
        maximum=500,
        title="Batch size",
        section=ADVANCED,
        description=(
            "Only for servers that honour count (the 2026-08 API, older local dev servers): messages per "
            "request. Hosted QStash ignores it: it cancels everything the filters select in one bulk action."
        ),
    ),
    "max_batches": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        title="Max batches",
        section=ADVANCED,
        description=(
            "The most rounds: bulk actions on hosted QStash, requests on a server that honours count. Empty: 100,000."
        ),
    ),
    "action_timeout": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        title="Action timeout (seconds)",
        section=ADVANCED,
        description=(
            "The longest one bulk action (hosted QStash) is followed; past it the task fails naming the action, "
            "which goes on in QStash, and a retry joins it. Empty: 21,600 (6 hours)."
        ),
    ),
}

for dag_id, deferrable in (("qstash_on_demand_cancel", False), ("qstash_on_demand_cancel_deferrable", True)):
    with DAG(
        dag_id=dag_id,
        description="Cancel pending QStash messages chosen in the Trigger form.",
        schedule=None,
        params=PARAMS,
        tags=["qstash", "example"],
    ):
        # [START howto_operator_qstash_on_demand_form]
        QStashBulkCancelOperator(
            task_id="cancel_selected_messages",
            labels="{{ params.labels }}",
            queue_names="{{ params.queue_names }}",
            url_groups="{{ params.url_groups }}",
            urls="{{ params.urls }}",
            from_date="{{ params.from_date }}",
            to_date="{{ params.to_date }}",
            optional_filters=FORM_FILTERS,
            batch_size="{{ params.batch_size }}",
            max_batches="{{ params.max_batches }}",
            action_timeout="{{ params.action_timeout }}",
            cancel_all="{{ params.cancel_all or False }}",
            deferrable=deferrable,
        )
        # [END howto_operator_qstash_on_demand_form]
