"""What Airflow's ProvidersManager reads about this provider (the ``apache_airflow_provider`` entry point)."""

from __future__ import annotations

from typing import Any

from airflow_qstash.connection_fields import conn_fields

INTEGRATION = "Upstash QStash"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata, validated by Airflow against its ``provider_info.schema.json``."""
    return {
        "package-name": "airflow-provider-qstash",
        "name": "Upstash QStash",
        "description": (
            "Cancel pending `Upstash QStash <https://upstash.com/docs/qstash>`__ messages in bulk, and delete or "
            "retry dead-letter queue (DLQ) entries, safely: by filter, never wider than asked."
        ),
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://upstash.com/docs/qstash/api/messages/bulk-cancel",
                "tags": ["service"],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["airflow_qstash.operators.qstash", "airflow_qstash.operators.dlq"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_qstash.hooks.qstash"]}],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_qstash.triggers.qstash",
                    "airflow_qstash.triggers.dlq",
                    "airflow_qstash.triggers.dlq_events",
                ],
            }
        ],
        "connection-types": [
            {
                "connection-type": "qstash",
                "hook-class-name": "airflow_qstash.hooks.qstash.QStashHook",
                "hook-name": "Upstash QStash",
                "conn-fields": conn_fields(),
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"password": "QStash token", "host": "Region or base URL"},
                    "placeholders": {
                        "password": "QSTASH_TOKEN from the Upstash console",
                        "host": "empty, eu-central-1, us-east-1, or http://127.0.0.1:8787",
                    },
                },
            }
        ],
    }
