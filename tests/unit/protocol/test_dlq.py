"""The DLQ part of the wire: endpoints, request encoding and answer reading, without I/O."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from airflow_qstash.exceptions import QStashAPIError, QStashInputError
from airflow_qstash.filters import DLQFilter
from airflow_qstash.protocol.calls import Call
from airflow_qstash.protocol.dlq import (
    DLQDeleted,
    DLQRetried,
    delete_dlq_message,
    dlq_delete_page,
    dlq_id_requests,
    dlq_requests,
    dlq_retry_page,
    list_dlq_page,
    read_dlq_deleted,
    read_dlq_page,
    read_dlq_retried,
)
from airflow_qstash.protocol.endpoints import DLQ_DELETE, DLQ_MESSAGE, DLQ_RETRY, ENDPOINTS, LIST_DLQ, MAX_URL_LENGTH

BASE_URL = "https://qstash.example"


def first_call(procedure: Any) -> Call:
    call = next(procedure)
    assert isinstance(call, Call)
    return call


def test_the_dlq_endpoints_are_the_specs():
    assert {name: (e.method, e.path) for name, e in ENDPOINTS.items() if "dlq" in name} == {
        "list_dlq": ("GET", "/v2/dlq"),
        "dlq_delete": ("DELETE", "/v2/dlq"),
        "dlq_retry": ("POST", "/v2/dlq/retry"),
        "delete_dlq_message": ("DELETE", "/v2/dlq/{id}"),
        # the 2026-12 API reference: Async Bulk, Multiple IDs, Single ID
        "dlq_delete_bulk": ("DELETE", "/v2/dlq/bulk"),
        "dlq_retry_bulk": ("POST", "/v2/dlq/retry/bulk"),
        "dlq_delete_multi": ("DELETE", "/v2/dlq/multi"),
        "dlq_retry_multi": ("POST", "/v2/dlq/retry/multi"),
        "dlq_retry_message": ("POST", "/v2/dlq/retry/{id}"),
    }


def test_a_filter_is_one_request():
    value = DLQFilter.build(labels=["a", "b"], response_statuses=500)
    assert dlq_requests(value, DLQ_DELETE, BASE_URL) == [[("label", "a"), ("label", "b"), ("responseStatus", "500")]]


def test_ids_are_split_by_count_and_by_url_length():
    long_ids = [f"{i:04d}-" + "x" * 200 for i in range(60)]
    parts = dlq_requests(DLQFilter.build(dlq_ids=long_ids), DLQ_RETRY, BASE_URL)
    assert [value for part in parts for _, value in part] == long_ids
    assert len(parts) > 1
    for part in parts:
        url = f"{BASE_URL}{DLQ_RETRY.path}?{urlencode(part)}&count=100&cursor={'c' * 150}"
        assert len(url) <= MAX_URL_LENGTH
    short_ids = [f"d{i}" for i in range(250)]
    parts = dlq_requests(DLQFilter.build(dlq_ids=short_ids), DLQ_DELETE, BASE_URL)
    assert [len(part) for part in parts] == [100, 100, 50]


def test_a_filter_too_long_for_one_url_is_refused():
    value = DLQFilter.build(labels=[f"label-{i}-" + "y" * 40 for i in range(100)])
    with pytest.raises(QStashInputError, match="more than the"):
        dlq_requests(value, DLQ_DELETE, BASE_URL)


def test_page_requests_add_count_and_cursor():
    call = first_call(dlq_delete_page([("label", "a")], "cur", 50))
    assert (call.endpoint, call.params) == (DLQ_DELETE, (("label", "a"), ("count", "50"), ("cursor", "cur")))
    call = first_call(dlq_retry_page([("label", "a")], None, [("Upstash-Retries", "0")]))
    assert (call.endpoint, call.params, call.headers) == (DLQ_RETRY, (("label", "a"),), (("Upstash-Retries", "0"),))
    call = first_call(list_dlq_page([], None, 1))
    assert (call.endpoint, call.params) == (LIST_DLQ, (("count", "1"),))
    call = first_call(delete_dlq_message("a b/c"))
    assert (call.endpoint, call.path) == (DLQ_MESSAGE, "/v2/dlq/a%20b%2Fc")


@pytest.mark.parametrize("count", [0, 101, True, "abc", 2.5, "101"])
def test_page_count_is_1_to_100(count: Any):
    with pytest.raises(QStashInputError, match="count must be a whole number from 1 to 100"):
        first_call(dlq_delete_page([], None, count))


def test_page_count_is_read_by_the_one_count_reader():
    """The DLQ page count reads like every other count (digits too): one reader, not three."""
    assert ("count", "5") in first_call(dlq_delete_page([], None, "5")).params


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"deleted": 3}, DLQDeleted(3, None)),
        ({"deleted": 0, "cursor": ""}, DLQDeleted(0, None)),
        ({"deleted": 100, "cursor": "abc"}, DLQDeleted(100, "abc")),
    ],
)
def test_read_deleted(answer: Any, expected: DLQDeleted):
    assert read_dlq_deleted(answer) == expected


@pytest.mark.parametrize("answer", [None, [], {}, {"deleted": -1}, {"deleted": 1.0}, {"deleted": 2, "cursor": 7}])
def test_read_deleted_refuses_malformed_answers(answer: Any):
    with pytest.raises(QStashAPIError, match="DLQ delete answer"):
        read_dlq_deleted(answer)


def test_read_retried_and_page():
    retried = read_dlq_retried(
        {"cursor": "n", "responses": [{"messageId": "m1"}, {"messageId": "m2", "deduplicated": True}]}
    )
    assert retried == DLQRetried(("m1", "m2"), 1, "n")
    page = read_dlq_page({"messages": [{"dlqId": "d1"}]})
    assert (page.messages, page.cursor) == (({"dlqId": "d1"},), None)
    with pytest.raises(QStashAPIError, match="DLQ list answer"):
        read_dlq_page({"messages": ["d1"]})


def test_dlq_id_requests_carry_only_ids_at_most_per_request_and_within_the_url_length():
    ids = [f"dlq_{i:032x}" for i in range(250)]  # 36 characters, as the hosted DLQ's ids
    parts = list(dlq_id_requests(ids, DLQ_DELETE, "https://qstash.upstash.io"))
    assert [len(part) for part in parts] == [87, 87, 76]  # the URL limit bites before 100
    assert [value for part in parts for _, value in part] == ids
    assert all(name == "dlqIds" for part in parts for name, _ in part)
    for part in parts:
        url = "https://qstash.upstash.io/v2/dlq?" + urlencode([*part, ("count", "100")])
        assert len(url) <= MAX_URL_LENGTH
    assert [len(part) for part in dlq_id_requests(ids[:25], DLQ_RETRY, BASE_URL, 10)] == [10, 10, 5]
    assert list(dlq_id_requests([], DLQ_DELETE, BASE_URL)) == []
    with pytest.raises(QStashInputError, match="per_request"):
        dlq_id_requests(ids, DLQ_DELETE, BASE_URL, 101)
