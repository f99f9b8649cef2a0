"""
Every QStash endpoint the provider calls, declared once; the longest URL sent; the states of a bulk
action; and the check that keeps an id inside its path segment (the dot-segment judgement is
:func:`~airflow_qstash.inputs.has_dot_segment`, shared with the filter readers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.inputs import has_dot_segment

#: The longest request URL sent; longer id lists are split across requests
#: (:func:`~airflow_qstash.protocol.calls.split_ids`).
MAX_URL_LENGTH = 4096


# --------------------------------------------------------------------------- endpoints, declared once


@dataclass(frozen=True)
class Endpoint:
    """One REST endpoint: its method and path; ``{id}`` stands for one percent-encoded path segment."""

    method: str
    path: str
    id_name: str = "id"

    def url_path(self, path_id: str | None = None) -> str:
        """The request path; an id is checked and encoded into exactly one segment."""
        if "{id}" not in self.path:
            return self.path
        return self.path.replace("{id}", path_segment(path_id, self.id_name))


BULK_CANCEL = Endpoint("DELETE", "/v2/messages")
CANCEL_MESSAGE = Endpoint("DELETE", "/v2/messages/{id}", "message_id")
LIST_BULK_ACTIONS = Endpoint("GET", "/v2/bulkActions")
GET_BULK_ACTION = Endpoint("GET", "/v2/bulkActions/{id}", "action_id")
#: A cheap, read-only, authenticated call for the connection's Test button.
LIST_QUEUES = Endpoint("GET", "/v2/queues")
#: The dead-letter queue: list, bulk delete, bulk retry, delete one entry.
LIST_DLQ = Endpoint("GET", "/v2/dlq")
DLQ_DELETE = Endpoint("DELETE", "/v2/dlq")
DLQ_RETRY = Endpoint("POST", "/v2/dlq/retry")
DLQ_MESSAGE = Endpoint("DELETE", "/v2/dlq/{id}", "dlq_id")

#: Async Bulk: start a bulk action over every entry the filters select at accept time.
DLQ_DELETE_BULK = Endpoint("DELETE", "/v2/dlq/bulk")
DLQ_RETRY_BULK = Endpoint("POST", "/v2/dlq/retry/bulk")
#: Multiple IDs.
DLQ_DELETE_MULTI = Endpoint("DELETE", "/v2/dlq/multi")
DLQ_RETRY_MULTI = Endpoint("POST", "/v2/dlq/retry/multi")
#: Single ID (the delete is :data:`DLQ_MESSAGE`).
DLQ_RETRY_MESSAGE = Endpoint("POST", "/v2/dlq/retry/{id}", "dlq_id")

ENDPOINTS: dict[str, Endpoint] = {
    "bulk_cancel": BULK_CANCEL,
    "cancel_message": CANCEL_MESSAGE,
    "list_bulk_actions": LIST_BULK_ACTIONS,
    "get_bulk_action": GET_BULK_ACTION,
    "list_queues": LIST_QUEUES,
    "list_dlq": LIST_DLQ,
    "dlq_delete": DLQ_DELETE,
    "dlq_retry": DLQ_RETRY,
    "delete_dlq_message": DLQ_MESSAGE,
    "dlq_delete_bulk": DLQ_DELETE_BULK,
    "dlq_retry_bulk": DLQ_RETRY_BULK,
    "dlq_delete_multi": DLQ_DELETE_MULTI,
    "dlq_retry_multi": DLQ_RETRY_MULTI,
    "dlq_retry_message": DLQ_RETRY_MESSAGE,
}

#: States of a bulk action (``GET /v2/bulkActions/{actionId}``).
IN_PROGRESS = "IN_PROGRESS"
FINISHED = "FINISHED"
ACTION_STATES = (IN_PROGRESS, FINISHED)


def path_segment(value: Any, name: str) -> str:
    """
    ``value`` as exactly one percent-encoded path segment, or a refusal.

    Empty and white-space-only ids are refused, and so is any id with a ``.`` or ``..`` segment (also
    percent-encoded, or behind ``/`` or ``\\``): clients and proxies remove dot segments, so
    ``DELETE /v2/messages/..`` would reach ``DELETE /v2/`` and an id like ``a/..`` the bulk endpoint.
    """
    if not isinstance(value, str) or not value.strip():
        raise QStashInputError(
            f"{name} is empty: a request with no id would reach the collection endpoint instead "
            "(for messages: the bulk cancel, which cancels every message). Give the id."
        )
    text = value.strip()
    if has_dot_segment(text):
        raise QStashInputError(
            f"{name}={value!r} is or contains a dot segment ('.' or '..'), which URL normalisation "
            "removes: the request would reach another path. Give the real id."
        )
    return quote(text, safe="")
