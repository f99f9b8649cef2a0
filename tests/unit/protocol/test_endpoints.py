"""
The endpoints (:mod:`airflow_qstash.protocol.endpoints`): each declared once with its method, and an id
put in its path as exactly one percent-encoded segment, never a dot segment.
"""

from __future__ import annotations

import pytest

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.inputs import has_dot_segment
from airflow_qstash.protocol.calls import Call
from airflow_qstash.protocol.endpoints import (
    BULK_CANCEL,
    CANCEL_MESSAGE,
    ENDPOINTS,
    GET_BULK_ACTION,
    LIST_BULK_ACTIONS,
    path_segment,
)


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS.values() if "{id}" in e.path], ids=lambda e: e.path)
@pytest.mark.parametrize("bad_id", [".", "..", " . ", "./.", "a/..", "%2e%2e", "..\\", "", "  ", None, 5, b".."])
def test_every_endpoint_with_an_id_refuses_an_id_that_is_not_one_segment(endpoint, bad_id):
    with pytest.raises(QStashInputError):
        endpoint.url_path(bad_id)
    with pytest.raises(QStashInputError):
        Call(endpoint, path_id=bad_id)  # refused when the request is made, not when it is sent


@pytest.mark.parametrize(
    ("value", "segment"),
    [("msg_1", "msg_1"), ("a/b", "a%2Fb"), ("a b?#", "a%20b%3F%23"), ("50%", "50%25"), ("..a", "..a"), ("ü", "%C3%BC")],
)
def test_an_id_is_one_percent_encoded_segment(value, segment):
    assert path_segment(value, "message_id") == segment
    assert CANCEL_MESSAGE.url_path(value) == f"/v2/messages/{segment}"
    assert GET_BULK_ACTION.url_path(value) == f"/v2/bulkActions/{segment}"


def test_an_endpoint_without_an_id_ignores_none():
    assert BULK_CANCEL.url_path() == "/v2/messages"
    assert Call(LIST_BULK_ACTIONS, (("count", "1"),)).path == "/v2/bulkActions"


def test_endpoints_are_declared_once_with_their_methods():
    declared = {name: (e.method, e.path) for name, e in ENDPOINTS.items()}
    assert {
        "bulk_cancel": ("DELETE", "/v2/messages"),
        "cancel_message": ("DELETE", "/v2/messages/{id}"),
        "list_bulk_actions": ("GET", "/v2/bulkActions"),
        "get_bulk_action": ("GET", "/v2/bulkActions/{id}"),
        "list_queues": ("GET", "/v2/queues"),
    }.items() <= declared.items()


@pytest.mark.parametrize(
    ("value", "dotted"),
    [
        *[(".", True), ("..", True), ("a/..", True), ("a\\.", True), ("%2e%2E", True), ("a/%2E/b", True)],
        *[("a.b", False), ("...", False), ("msg_1", False), ("a/b", False), ("%2e%2e%2e", False)],
    ],
)
def test_one_dot_segment_judgement_for_path_ids_and_filter_values(value, dotted):
    """A path id and a filter value (``message_ids``) are judged by the same :func:`has_dot_segment`."""
    assert has_dot_segment(value) is dotted
    path_refused = filter_refused = False
    try:
        path_segment(value, "message_id")
    except QStashInputError:
        path_refused = True
    try:
        BulkCancelFilter.build(message_ids=[value])
    except QStashInputError as err:
        filter_refused = "dot segment" in str(err)
    assert path_refused is filter_refused is dotted
