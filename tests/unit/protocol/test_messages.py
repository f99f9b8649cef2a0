"""
The messages part of the wire (:mod:`airflow_qstash.protocol.messages`): the bulk-cancel query, filter
comparison, bulk-cancel and bulk-action answers, and its sans-IO procedures driven by
:func:`tests.support.procedures.drive`.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from airflow_qstash.exceptions import QStashActionConflict, QStashAPIError, QStashInputError
from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.protocol import messages
from airflow_qstash.protocol.calls import Effect
from airflow_qstash.protocol.endpoints import BULK_CANCEL, MAX_URL_LENGTH
from airflow_qstash.protocol.messages import (
    ActionStarted,
    BatchCancelled,
    BulkAction,
    bulk_cancel_requests,
    filter_key,
    get_bulk_action,
    list_bulk_actions,
    read_bulk_action,
    read_bulk_cancel_answer,
    start_bulk_cancel,
)
from tests.support.procedures import PARAMS, action, calls, conflict, drive

BASE_URL = "https://qstash.test"


@pytest.mark.parametrize(
    ("bulk_filter", "count", "query"),
    [
        (BulkCancelFilter.build(labels=["a", "b"]), None, [("label", "a"), ("label", "b"), ("async", "true")]),
        (BulkCancelFilter.build(labels="a"), 10, [("label", "a"), ("count", "10"), ("async", "true")]),
        (BulkCancelFilter.build(cancel_all=True), None, [("async", "true")]),
        (BulkCancelFilter.build(message_ids=["m1", "m2"]), None, [("messageIds", "m1"), ("messageIds", "m2")]),
        (BulkCancelFilter.build(message_ids="m1"), 5, [("messageIds", "m1"), ("count", "5")]),
    ],
)
def test_bulk_cancel_query_asks_for_async_only_on_filter_cancels(bulk_filter, count, query):
    assert bulk_cancel_requests(bulk_filter, count, BASE_URL) == [query]


def test_a_long_id_list_is_split_under_the_url_limit_without_async():
    ids = [f"msg_{i:030d}" for i in range(1500)]
    parts = bulk_cancel_requests(BulkCancelFilter.build(message_ids=ids), 500, BASE_URL)
    assert len(parts) > 1
    assert [value for part in parts for name, value in part if name == "messageIds"] == ids
    for part in parts:
        assert ("async", "true") not in part
        assert part[-1] == ("count", "500")
        assert len(f"{BASE_URL}{BULK_CANCEL.path}?{urlencode(part)}") <= MAX_URL_LENGTH


@pytest.mark.parametrize("count", [0, 501, -1, "x", True, 1.5])
def test_a_bad_count_is_refused_while_encoding(count):
    with pytest.raises(QStashInputError, match="count"):
        bulk_cancel_requests(BulkCancelFilter.build(labels="a"), count, BASE_URL)


# --------------------------------------------------------------------------- comparing filters


def test_filter_key_ignores_order_commas_and_the_non_filter_parameters():
    ours = filter_key([("queueName", "q"), ("label", "b"), ("label", "a"), ("count", "10"), ("async", "true")])
    assert ours == {"label": ("a", "b"), "queueName": ("q",)}
    assert filter_key({"label": ["a,b"], "queueName": ["q"]}) == ours
    assert filter_key({"label": ["b", "a"], "queueName": "q", "cursor": "c1"}) == ours
    assert filter_key({"label": [" a ", "b,"], "queueName": ["q"], "url": []}) == ours


@pytest.mark.parametrize(
    "other",
    [
        {"label": ["a"], "queueName": ["q"]},
        {"label": ["a", "b", "c"], "queueName": ["q"]},
        {"label": ["a", "b"]},
        {"label": ["a", "b"], "queueName": ["q"], "fromDate": ["1"]},
        {"labels": ["a", "b"], "queueName": ["q"]},
        {},
    ],
)
def test_filter_key_tells_other_filters_apart(other):
    assert filter_key(other) != filter_key([("label", "a"), ("label", "b"), ("queueName", "q")])


def test_the_filter_of_a_cancel_all_is_empty():
    assert filter_key([("count", "5"), ("async", "true")]) == {} == filter_key({})


# --------------------------------------------------------------------------- bulk-cancel and bulk-action answers


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"actionId": "act_1"}, ActionStarted("act_1")),
        ({"actionId": "act_1", "cancelled": 0}, ActionStarted("act_1")),
        ({"cancelled": 0}, BatchCancelled(0)),
        ({"cancelled": 12}, BatchCancelled(12)),
        ({"actionId": "", "cancelled": 3}, BatchCancelled(3)),
    ],
)
def test_read_bulk_cancel_answer(answer, expected):
    assert read_bulk_cancel_answer(answer) == expected


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (None, "neither"),
        ({}, "neither"),
        ({"total": 3}, "neither"),
        ({"actionId": " "}, "neither"),
        ({"cancelled": -1}, "no valid 'cancelled'"),
        ({"cancelled": 1.5}, "no valid 'cancelled'"),
        ({"cancelled": False}, "no valid 'cancelled'"),
    ],
)
def test_read_bulk_cancel_answer_refuses_anything_else(answer, fragment):
    with pytest.raises(QStashAPIError, match=fragment):
        read_bulk_cancel_answer(answer)


def test_read_bulk_action_reads_the_documented_fields():
    got = read_bulk_action(
        action("act_1", state="FINISHED", total=7, processed=7, createdAt=10, completedAt=20, kind="cancel")
    )
    assert got == BulkAction("act_1", "FINISHED", 7, 7, 10, 20, {"label": ("a",)})
    assert got.finished


@pytest.mark.parametrize(
    "fields",
    [{"createdAt": "10"}, {"createdAt": None}, {"completedAt": 1.5}],
)
def test_read_bulk_action_drops_unreadable_timestamps(fields):
    got = read_bulk_action(action("act_1", **fields))
    assert (got.created_at if "createdAt" in fields else got.completed_at) is None


@pytest.mark.parametrize(
    "answer",
    [
        [],
        {"state": "IN_PROGRESS", "total": 1, "processed": 0},
        action("a", actionId=None),
        action("a", state="CANCELLED"),
        action("a", total=None),
        action("a", processed=-2),
        action("a", filter="label=a"),
    ],
)
def test_read_bulk_action_refuses_a_malformed_action(answer):
    with pytest.raises(QStashAPIError):
        read_bulk_action(answer)


# --------------------------------------------------------------------------- procedures


def test_get_bulk_action_is_one_call():
    got, effects = drive(get_bulk_action("act/1"), [action("act/1")])
    assert got.action_id == "act/1"
    assert [(c.method, c.path, c.params) for c in calls(effects)] == [("GET", "/v2/bulkActions/act%2F1", ())]


def test_list_bulk_actions_follows_cursors_until_none():
    got, effects = drive(
        list_bulk_actions("FINISHED", page_size=2),
        [
            {"bulkActions": [action("a1", "FINISHED")], "cursor": "c1"},
            {"bulkActions": [], "cursor": "c2"},
            {"bulkActions": [action("a2", "FINISHED")]},
        ],
    )
    assert [item.action_id for item in got] == ["a1", "a2"]
    assert [c.params for c in calls(effects)] == [
        (("count", "2"), ("state", "FINISHED")),
        (("count", "2"), ("state", "FINISHED"), ("cursor", "c1")),
        (("count", "2"), ("state", "FINISHED"), ("cursor", "c2")),
    ]


@pytest.mark.parametrize("page_size", [0, 1001])
def test_list_bulk_actions_refuses_a_page_size_out_of_range(page_size):
    with pytest.raises(QStashInputError, match="page_size"):
        drive(list_bulk_actions(page_size=page_size), [])


def test_list_bulk_actions_is_bounded_by_max_list_pages(monkeypatch):
    monkeypatch.setattr(messages, "MAX_LIST_PAGES", 3)
    fresh = iter(range(100))
    with pytest.raises(QStashAPIError, match="did not end within 3 pages"):
        drive(list_bulk_actions(), [lambda call: {"bulkActions": [], "cursor": f"c{next(fresh)}"}] * 10)


def test_a_page_error_reaches_the_caller():
    with pytest.raises(QStashAPIError, match="boom"):
        drive(list_bulk_actions(), [QStashAPIError("boom")])


def test_start_bulk_cancel_returns_the_answer_of_one_call():
    got, effects = drive(start_bulk_cancel(PARAMS), [{"actionId": "act_1"}])
    assert got == ActionStarted("act_1")
    assert [(c.method, c.path, c.params, c.conflict_aware) for c in calls(effects)] == [
        ("DELETE", "/v2/messages", tuple(PARAMS), True)
    ]


def test_a_cancel_by_ids_is_not_conflict_aware():
    _, effects = drive(start_bulk_cancel([("messageIds", "m1")]), [{"cancelled": 1}])
    assert calls(effects)[0].conflict_aware is False


def test_the_one_request_start_raises_a_conflict_for_the_run_to_judge():
    """The protocol sends one start and reads its answer; joining a running action is the run's policy."""
    effects: list[Effect] = []
    with pytest.raises(QStashActionConflict):
        drive(start_bulk_cancel(PARAMS), [conflict()], effects)
    assert [c.endpoint for c in calls(effects)] == [BULK_CANCEL]
